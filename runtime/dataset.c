/* dataset.c: what the data loaders, the training loop and prediction share:
 * sizing and freeing an RtDataset, checking it against a model, copying a
 * batch of rows into the arena, reading a (possibly gzipped) data file whole,
 * and the range check of int values.
 *
 * Must not know any file format beyond gzip framing (csv.c, idx.c, npy.c and
 * text.c own theirs) and must not run compiled code.
 */
#include "rt_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

char *rt_inputs_str(const RtModel *m, char *buf, size_t n) {
    char dims[96];
    size_t len = 0;
    if (n == 0)
        return buf;
    buf[0] = '\0';
    if (m->ninputs == 0)
        snprintf(buf, n, "none");
    for (int i = 0; i < m->ninputs && len < n; i++) {
        const RtTensor *t = &m->inputs[i];
        len += (size_t)snprintf(buf + len, n - len, "%s%s %s %s", i ? ", " : "", t->name,
                                rt_dims_str(t, dims, sizeof dims),
                                t->dtype == RT_INT ? "int" : "float");
    }
    return buf;
}

RtStatus rt_dataset_alloc(RtDataset *d, const RtModel *m, int64_t n, const bool *load,
                          const char *path, RtError *err) {
    memset(d, 0, sizeof *d);
    size_t slots = (size_t)(m->ninputs ? m->ninputs : 1);
    d->n = n;
    d->ninputs = m->ninputs;
    d->data = calloc(slots, sizeof *d->data);
    d->row_elems = calloc(slots, sizeof *d->row_elems);
    if (!d->data || !d->row_elems) {
        rt_dataset_free(d);
        return rt_fail(err, "%s: out of memory", path);
    }
    for (int i = 0; i < m->ninputs; i++) {
        d->row_elems[i] = rt_numel(&m->inputs[i], 1);
        if (load && !load[i])
            continue;
        size_t row = rt_tensor_bytes(m, &m->inputs[i], 1);
        if (n > 0 && row > SIZE_MAX / (size_t)n) {
            rt_dataset_free(d);
            return rt_fail(err, "%s: %lld rows of input '%s' do not fit in memory", path,
                           (long long)n, m->inputs[i].name);
        }
        size_t bytes = (size_t)n * row;
        if (!(d->data[i] = malloc(bytes ? bytes : 1))) {
            rt_dataset_free(d);
            return rt_fail(err, "%s: out of memory for %lld rows", path, (long long)n);
        }
    }
    return RT_OK;
}

void rt_dataset_free(RtDataset *d) {
    if (!d)
        return;
    if (d->data)
        for (int i = 0; i < d->ninputs; i++)
            free(d->data[i]);
    free(d->data);
    free(d->row_elems);
    free(d->row_stride);
    for (int i = 0; i < d->nclasses; i++)
        free(d->class_names[i]);
    free(d->class_names);
    memset(d, 0, sizeof *d);
}

RtStatus rt_dataset_check(const RtModel *m, const RtDataset *d, bool allow_missing,
                          RtError *err) {
    char dims[96];
    if (d->ninputs != m->ninputs)
        return rt_fail(err, "the dataset has %d inputs; model '%s' takes %d", d->ninputs,
                       m->name, m->ninputs);
    for (int i = 0; i < m->ninputs; i++) {
        const RtTensor *t = &m->inputs[i];
        if (t->rank < 1 || t->dims[0] != RT_DIM_BATCH)
            return rt_fail(err, "input '%s' %s has no leading batch dimension", t->name,
                           rt_dims_str(t, dims, sizeof dims));
        if (d->row_elems[i] != rt_numel(t, 1))
            return rt_fail(err, "the dataset has %lld values per row for input '%s' %s, which "
                                "takes %lld",
                           (long long)d->row_elems[i], t->name, rt_dims_str(t, dims, sizeof dims),
                           (long long)rt_numel(t, 1));
        if (!d->data[i] && !allow_missing)
            return rt_fail(err, "the dataset has no data for input '%s' %s", t->name,
                           rt_dims_str(t, dims, sizeof dims));
        if (rt_row_stride(d, i) < 0)
            return rt_fail(err, "the dataset's row stride for input '%s' is negative", t->name);
    }
    return RT_OK;
}

void rt_dataset_gather(RtSession *s, const RtDataset *d, const int64_t *rows, int64_t nb) {
    const RtModel *m = s->m;
    for (int i = 0; i < m->ninputs; i++) {
        if (!d->data[i])
            continue;
        size_t row_bytes = rt_tensor_bytes(m, &m->inputs[i], 1);
        size_t stride_bytes = (size_t)rt_row_stride(d, i) * rt_elem_bytes(m, &m->inputs[i]);
        char *dst = rt_ptr(s, &m->inputs[i]);
        const char *src = d->data[i];
        for (int64_t k = 0; k < nb; k++)
            memcpy(dst + (size_t)k * row_bytes, src + (size_t)rows[k] * stride_bytes, row_bytes);
    }
}

RtStatus rt_check_int(const RtTensor *t, int64_t v, const char *path, const char *where,
                      RtError *err) {
    if (t->limit > 0 && (v < 0 || v >= t->limit))
        return rt_fail(err, "%s: %s: value %lld is out of range for input '%s', which takes 0 "
                            "to %lld",
                       path, where, (long long)v, t->name, (long long)(t->limit - 1));
    if (v < INT32_MIN || v > INT32_MAX)
        return rt_fail(err, "%s: %s: value %lld does not fit the int32 input '%s'", path, where,
                       (long long)v, t->name);
    return RT_OK;
}

/* ---- reading files ----------------------------------------------------------- */

/* Append n bytes to a growable buffer; false when out of memory. */
static bool grow_put(unsigned char **buf, size_t *len, size_t *cap, const void *src, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 1 << 16;
        while (c < *len + n + 1) {
            if (c > SIZE_MAX / 2)
                return false;
            c *= 2;
        }
        unsigned char *b = realloc(*buf, c);
        if (!b)
            return false;
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *len, src, n);
    *len += n;
    (*buf)[*len] = 0;
    return true;
}

/* Inflate the gzip members of raw[0, n) into *out. */
static RtStatus gunzip(const char *path, const unsigned char *raw, size_t n, unsigned char **out,
                       size_t *out_len, RtError *err) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
        return rt_fail(err, "%s: cannot start gzip decompression", path);
    unsigned char *buf = NULL, chunk[1 << 16];
    size_t len = 0, cap = 0, at = 0;
    RtStatus st = RT_OK;
    while (st == RT_OK) {
        size_t avail = n - at;
        z.next_in = (unsigned char *)raw + at;
        z.avail_in = avail > UINT32_MAX ? UINT32_MAX : (uInt)avail;
        z.next_out = chunk;
        z.avail_out = sizeof chunk;
        uInt before = z.avail_in;
        int r = inflate(&z, Z_NO_FLUSH);
        at += before - z.avail_in;
        size_t got = sizeof chunk - z.avail_out;
        if (got && !grow_put(&buf, &len, &cap, chunk, got)) {
            st = rt_fail(err, "%s: out of memory decompressing", path);
        } else if (r == Z_STREAM_END) {
            /* Another member may follow; trailing zero padding is allowed. */
            while (at < n && raw[at] == 0)
                at++;
            if (at == n)
                break;
            if (inflateReset(&z) != Z_OK)
                st = rt_fail(err, "%s: cannot restart gzip decompression", path);
        } else if (r == Z_DATA_ERROR || r == Z_NEED_DICT) {
            st = rt_fail(err, "%s: corrupt gzip data near compressed byte %zu: %s", path, at,
                         z.msg ? z.msg : "invalid data");
        } else if (r == Z_MEM_ERROR) {
            st = rt_fail(err, "%s: out of memory decompressing", path);
        } else if (r == Z_BUF_ERROR || (r == Z_OK && at == n && got == 0)) {
            st = rt_fail(err, "%s: the gzip stream is truncated (it ends after %zu "
                              "decompressed bytes)",
                         path, len);
        }
    }
    inflateEnd(&z);
    if (st != RT_OK) {
        free(buf);
        return st;
    }
    if (!buf && !(buf = calloc(1, 1)))
        return rt_fail(err, "%s: out of memory", path);
    *out = buf;
    *out_len = len;
    return RT_OK;
}

RtStatus rt_read_data_file(const char *path, unsigned char **data, size_t *len, bool *gzipped,
                           RtError *err) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return rt_fail(err, "cannot open '%s': %s", path, strerror(errno));
    unsigned char *buf = NULL, chunk[1 << 16];
    size_t n = 0, cap = 0, k;
    bool oom = false;
    while (!oom && (k = fread(chunk, 1, sizeof chunk, f)) > 0)
        oom = !grow_put(&buf, &n, &cap, chunk, k);
    int failed = ferror(f), e = errno;
    fclose(f);
    if (oom || failed) {
        free(buf);
        return oom ? rt_fail(err, "%s: out of memory reading the file", path)
                   : rt_fail(err, "cannot read '%s': %s", path, strerror(e));
    }
    if (!buf && !(buf = calloc(1, 1)))
        return rt_fail(err, "%s: out of memory", path);
    bool gz = n >= 2 && buf[0] == 0x1f && buf[1] == 0x8b;
    if (gzipped)
        *gzipped = gz;
    if (!gz) {
        *data = buf;
        *len = n;
        return RT_OK;
    }
    RtStatus st = gunzip(path, buf, n, data, len, err);
    free(buf);
    return st;
}
