/* dataset.c: what the data loaders, the training loop and prediction share:
 * sizing and freeing an RtDataset, checking it against a model, copying a
 * batch of rows into the arena, reading a (possibly gzipped) data file whole
 * or in pieces (RtReader), and the range check of int values.
 *
 * Must not know any file format beyond gzip framing (csv.c, idx.c, npy.c and
 * text.c own theirs) and must not run compiled code.
 */
#include "rt_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

struct RtGunzip {
    z_stream z;
    bool file_eof;   /* every compressed byte has been read from the file */
    bool ended;      /* the last member ended; only zero padding followed it */
    uint64_t fed;    /* compressed bytes read from the file so far */
    unsigned char in[1 << 16];
};

RtStatus rt_reader_open(RtReader *r, const char *path, RtError *err) {
    memset(r, 0, sizeof *r);
    r->path = path;
    if (!(r->f = fopen(path, "rb")))
        return rt_fail(err, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    bool regular = fstat(fileno(r->f), &sb) == 0 && S_ISREG(sb.st_mode);
    unsigned char magic[2];
    size_t k = fread(magic, 1, sizeof magic, r->f);
    if (k < sizeof magic && ferror(r->f)) {
        int e = errno;
        rt_reader_close(r);
        return rt_fail(err, "cannot read '%s': %s", path, strerror(e));
    }
    r->gzipped = k == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    if (!r->gzipped) {
        memcpy(r->peek, magic, k);
        r->npeek = (int)k;
        r->sized = regular;
        r->file_bytes = regular ? (uint64_t)sb.st_size : 0;
        r->max_bytes = regular ? r->file_bytes : UINT64_MAX;
        return RT_OK;
    }
    r->max_bytes = regular && (uint64_t)sb.st_size < UINT64_MAX / 2048
                       ? 1032 * (uint64_t)sb.st_size + (1u << 20)
                       : UINT64_MAX;
    struct RtGunzip *gz = calloc(1, sizeof *gz);
    if (!gz) {
        rt_reader_close(r);
        return rt_fail(err, "%s: out of memory decompressing", path);
    }
    r->gz = gz;
    memcpy(gz->in, magic, 2);
    gz->z.next_in = gz->in;
    gz->z.avail_in = 2;
    gz->fed = 2;
    if (inflateInit2(&gz->z, 16 + MAX_WBITS) != Z_OK) {
        free(gz);
        r->gz = NULL;
        rt_reader_close(r);
        return rt_fail(err, "%s: cannot start gzip decompression", path);
    }
    return RT_OK;
}

/* More compressed input, once what there was is used up. */
static RtStatus gz_refill(RtReader *r, RtError *err) {
    struct RtGunzip *gz = r->gz;
    size_t k = fread(gz->in, 1, sizeof gz->in, r->f);
    if (k < sizeof gz->in) {
        if (ferror(r->f))
            return rt_fail(err, "cannot read '%s': %s", r->path, strerror(errno));
        gz->file_eof = true;
    }
    gz->z.next_in = gz->in;
    gz->z.avail_in = (uInt)k;
    gz->fed += k;
    return RT_OK;
}

/* Inflate into buf[0, n) until it is full or the last member ends; *got is
 * what was made. Gzip members follow each other; zero bytes may pad the end. */
static RtStatus gz_read(RtReader *r, unsigned char *buf, size_t n, size_t *got, RtError *err) {
    struct RtGunzip *gz = r->gz;
    z_stream *z = &gz->z;
    size_t have = 0;
    while (have < n && !gz->ended) {
        if (z->avail_in == 0 && !gz->file_eof && gz_refill(r, err) != RT_OK)
            return RT_FAIL;
        size_t room = n - have;
        z->next_out = buf + have;
        z->avail_out = room > UINT32_MAX ? UINT32_MAX : (uInt)room;
        uInt before = z->avail_out;
        int rc = inflate(z, Z_NO_FLUSH);
        size_t made = before - z->avail_out;
        have += made;
        if (rc == Z_STREAM_END) {
            for (;;) {
                while (z->avail_in > 0 && *z->next_in == 0) {
                    z->next_in++;
                    z->avail_in--;
                }
                if (z->avail_in > 0 || gz->file_eof)
                    break;
                if (gz_refill(r, err) != RT_OK)
                    return RT_FAIL;
            }
            if (z->avail_in == 0)
                gz->ended = true;
            else if (inflateReset(z) != Z_OK)
                return rt_fail(err, "%s: cannot restart gzip decompression", r->path);
        } else if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT) {
            return rt_fail(err, "%s: corrupt gzip data near compressed byte %zu: %s", r->path,
                           (size_t)(gz->fed - z->avail_in), z->msg ? z->msg : "invalid data");
        } else if (rc == Z_MEM_ERROR) {
            return rt_fail(err, "%s: out of memory decompressing", r->path);
        } else if (made == 0 && z->avail_in == 0 && gz->file_eof) {
            return rt_fail(err, "%s: the gzip stream is truncated (it ends after %zu "
                                "decompressed bytes)",
                           r->path, (size_t)(r->at + have));
        }
    }
    *got = have;
    return RT_OK;
}

RtStatus rt_reader_read(RtReader *r, void *buf, size_t n, size_t *got, RtError *err) {
    *got = 0;
    if (r->gz) {
        if (gz_read(r, buf, n, got, err) != RT_OK) {
            r->failed = true;
            *got = 0;
            return RT_FAIL;
        }
        r->at += *got;
        return RT_OK;
    }
    unsigned char *out = buf;
    size_t have = 0;
    while (have < n && r->npeek > 0) {
        out[have++] = r->peek[0];
        r->peek[0] = r->peek[1];
        r->npeek--;
    }
    if (have < n) {
        size_t k = fread(out + have, 1, n - have, r->f);
        if (k < n - have && ferror(r->f)) {
            r->failed = true;
            return rt_fail(err, "cannot read '%s': %s", r->path, strerror(errno));
        }
        have += k;
    }
    r->at += have;
    *got = have;
    return RT_OK;
}

RtStatus rt_reader_rest(RtReader *r, uint64_t *rest, RtError *err) {
    *rest = 0;
    if (r->sized) {
        *rest = r->file_bytes > r->at ? r->file_bytes - r->at : 0;
        r->at += *rest;
        return RT_OK;
    }
    unsigned char sink[1 << 14];
    size_t got;
    do {
        if (rt_reader_read(r, sink, sizeof sink, &got, err) != RT_OK)
            return RT_FAIL;
        *rest += got;
    } while (got == sizeof sink);
    return RT_OK;
}

void rt_reader_close(RtReader *r) {
    if (r->gz) {
        inflateEnd(&r->gz->z);
        free(r->gz);
    }
    if (r->f)
        fclose(r->f);
    r->gz = NULL;
    r->f = NULL;
}

RtStatus rt_read_data_file(const char *path, unsigned char **data, size_t *len, bool *gzipped,
                           RtError *err) {
    *data = NULL;
    *len = 0;
    RtReader r;
    if (rt_reader_open(&r, path, err) != RT_OK)
        return RT_FAIL;
    const char *oom = r.gzipped ? "%s: out of memory decompressing"
                                : "%s: out of memory reading the file";
    /* A plain file's size is known: one allocation, one byte over for the
     * NUL and for the read that finds the end. */
    size_t cap = r.sized && r.file_bytes < SIZE_MAX - 2 ? (size_t)r.file_bytes + 2 : 1 << 16;
    unsigned char *buf = malloc(cap);
    size_t n = 0, got = 0;
    RtStatus st = buf ? RT_OK : rt_fail(err, oom, path);
    while (st == RT_OK) {
        if (cap - n < 2) {
            unsigned char *b = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (!b) {
                st = rt_fail(err, oom, path);
                break;
            }
            buf = b;
            cap *= 2;
        }
        size_t want = cap - n - 1;
        st = rt_reader_read(&r, buf + n, want, &got, err);
        n += got;
        if (got < want)
            break;
    }
    if (gzipped)
        *gzipped = r.gzipped;
    rt_reader_close(&r);
    if (st != RT_OK) {
        free(buf);
        return st;
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return RT_OK;
}
