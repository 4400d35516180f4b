/* error.c: error reporting and small tensor facts shared by the runtime. */
#include "rt_internal.h"

#include <stdarg.h>

RtStatus rt_fail(RtError *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return RT_FAIL;
}

int64_t rt_numel(const RtTensor *t, int64_t batch) {
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++)
        n *= t->dims[i] == RT_DIM_BATCH ? batch : t->dims[i];
    return n;
}

char *rt_dims_str(const RtTensor *t, char *buf, size_t n) {
    size_t len = 0;
    if (n == 0)
        return buf;
    buf[0] = '\0';
    len += (size_t)snprintf(buf + len, n - len, "[");
    for (int i = 0; i < t->rank && len < n; i++) {
        const char *sep = i ? ", " : "";
        if (t->dims[i] == RT_DIM_BATCH)
            len += (size_t)snprintf(buf + len, n - len, "%sB", sep);
        else
            len += (size_t)snprintf(buf + len, n - len, "%s%lld", sep, (long long)t->dims[i]);
    }
    if (len < n)
        snprintf(buf + len, n - len, "]");
    return buf;
}
