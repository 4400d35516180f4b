/* fuzz_common.c: what the runtime fuzz bodies share: the fuzz input as a
 * file a loader can open by path (a memfd, gzipped on request), the cutting
 * of one input into a flags byte and two files, the loaders' models and the
 * check of their contract. See fuzz.h.
 */
#include "fuzz.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include "runtime/rt_internal.h"

static int write_all(int fd, const void *bytes, size_t n) {
    const char *p = bytes;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return 0;
        p += w;
        n -= (size_t)w;
    }
    return 1;
}

/* bytes[0, n) as one gzip member at level 1 into fd. */
static int write_gzip(int fd, const void *bytes, size_t n) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return 0;
    size_t cap = deflateBound(&z, (uLong)n);
    unsigned char *out = malloc(cap);
    int ok = out != NULL;
    if (ok) {
        z.next_in = (Bytef *)(uintptr_t)bytes;
        z.avail_in = (uInt)n;
        z.next_out = out;
        z.avail_out = (uInt)cap;
        ok = deflate(&z, Z_FINISH) == Z_STREAM_END && write_all(fd, out, cap - z.avail_out);
    }
    deflateEnd(&z);
    free(out);
    return ok;
}

int fuzz_file_open(FuzzFile *f, const void *bytes, size_t n, int gzip) {
    f->fd = memfd_create("gradc-fuzz", MFD_CLOEXEC);
    if (f->fd < 0)
        return 0;
    snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
    if (!(gzip ? write_gzip(f->fd, bytes, n) : write_all(f->fd, bytes, n))) {
        close(f->fd);
        return 0;
    }
    return 1;
}

void fuzz_file_close(FuzzFile *f) {
    close(f->fd);
}

FuzzSplit fuzz_split(const uint8_t *data, size_t size) {
    FuzzSplit s = {0};
    s.flags = size > 0 ? data[0] : 0;
    size_t head = size < 3 ? size : 3;
    size_t want = size >= 3 ? (size_t)data[1] | (size_t)data[2] << 8 : 0;
    size_t rest = size - head;
    s.part[0] = data + head;
    s.len[0] = want < rest ? want : rest;
    s.part[1] = s.part[0] + s.len[0];
    s.len[1] = rest - s.len[0];
    return s;
}

/* ---- the loaders' contract ------------------------------------------------------ */

void fuzz_contract(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz: the loader broke its contract: %s\n", what);
        abort();
    }
}

/* d as rt.h promises it after RT_OK (need: the inputs that must be
 * loaded, NULL: all), or all zero after RT_FAIL. */
static void check_dataset(const RtModel *m, const RtDataset *d, const bool *need, RtStatus st) {
    if (st != RT_OK) {
        fuzz_contract(d->n == 0 && !d->data && !d->row_elems, "a failed load left data behind");
        return;
    }
    fuzz_contract(d->n >= 0 && d->ninputs == m->ninputs, "row or input count");
    for (int i = 0; i < m->ninputs; i++) {
        const RtTensor *t = &m->inputs[i];
        if (need && !need[i])
            continue;
        fuzz_contract(d->data[i] != NULL, "an input needed is not loaded");
        fuzz_contract(d->row_elems[i] == rt_numel(t, 1), "elements per row");
        if (d->n == 0)
            continue;
        int64_t elems = (d->n - 1) * rt_row_stride(d, i) + d->row_elems[i];
        for (int64_t k = 0; k < elems; k++) {
            if (t->dtype == RT_FLOAT) {
                fuzz_contract(isfinite(rt_load_float(d->data[i], m->elem_size, k)),
                              "a float that is not finite");
            } else {
                int32_t v = ((const int32_t *)d->data[i])[k];
                fuzz_contract(t->limit <= 0 || (v >= 0 && v < t->limit),
                              "an int out of its input's limit");
            }
        }
    }
}

void fuzz_check_load(const RtModel *m, RtDataset *d, const bool *need, RtStatus st,
                     const RtError *err, FuzzResult *r) {
    check_dataset(m, d, need, st);
    if (st != RT_OK) {
        r->errors = 1;
        snprintf(r->msg, sizeof r->msg, "%s", err->msg);
    }
    rt_dataset_free(d);
}

RtModel fuzz_model(const char *name, unsigned flags, int ninputs, const RtTensor *inputs) {
    RtModel m = {.name = name, .elem_size = flags & FUZZ_F64 ? 8 : 4, .max_batch = 8,
                 .arena_bytes = 4096, .ninputs = ninputs, .inputs = inputs};
    return m;
}
