/* npy.c: NumPy .npy files into an RtDataset.
 *
 * The format (numpy.lib.format, versions 1.0, 2.0 and 3.0): the magic
 * "\x93NUMPY", a major and a minor version byte, the header length (uint16
 * little-endian in 1.0, uint32 in 2.0 and 3.0), then the header: a Python
 * dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (n, ...), }
 * padded with spaces and a newline; then the elements, C order when
 * fortran_order is False. gradc reads plain numeric dtypes: f4 f8 i1 i2 i4 i8
 * u1 u2 u4 u8 b1, either byte order. A gzipped .npy is undone first.
 *
 * Owns the header parser, pairing files with model inputs (by name, or the
 * only input that an unnamed file can feed), and the conversion: any dtype
 * into a float input; integer and bool dtypes only into an int input, each
 * value checked against the input's limit. Floats must be finite. Errors
 * name the file, and the row, element and byte offset of a bad value.
 */
#include "rt_internal.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { NPY_MAX_RANK = 32 };

/* A dtype gradc reads: kind 'f' float, 'i' signed, 'u' unsigned, 'b' bool. */
typedef struct NpyType {
    char kind;
    int size;   /* bytes per element */
    bool swap;  /* stored in the other byte order than this host's */
    char descr[64];
} NpyType;

/* One opened file. */
typedef struct Npy {
    const char *path;
    unsigned char *bytes;
    size_t len;
    NpyType type;
    int rank;
    int64_t shape[NPY_MAX_RANK];
    int64_t rows, per_row; /* shape[0]; the product of the rest */
    size_t data_at;
    int input; /* the model input it feeds, or -1 */
} Npy;

static bool host_little(void) {
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

/* ---- the header: a Python dict literal ---------------------------------- */

typedef struct Hdr {
    const char *p, *end;
} Hdr;

static void hdr_ws(Hdr *h) {
    while (h->p < h->end && isspace((unsigned char)*h->p))
        h->p++;
}

static bool hdr_eat(Hdr *h, char c) {
    hdr_ws(h);
    if (h->p < h->end && *h->p == c) {
        h->p++;
        return true;
    }
    return false;
}

/* A '...' or "..." literal without escapes into buf. */
static bool hdr_string(Hdr *h, char *buf, size_t n) {
    hdr_ws(h);
    if (h->p >= h->end || (*h->p != '\'' && *h->p != '"'))
        return false;
    char q = *h->p++;
    size_t k = 0;
    while (h->p < h->end && *h->p != q) {
        if (*h->p == '\\' || k + 1 >= n)
            return false;
        buf[k++] = *h->p++;
    }
    if (h->p >= h->end)
        return false;
    h->p++;
    buf[k] = 0;
    return true;
}

static bool hdr_word(Hdr *h, const char *w) {
    hdr_ws(h);
    size_t n = strlen(w);
    if ((size_t)(h->end - h->p) >= n && memcmp(h->p, w, n) == 0) {
        h->p += n;
        return true;
    }
    return false;
}

/* (d0, d1, ...) with an optional trailing comma; () for a scalar. */
static bool hdr_shape(Hdr *h, Npy *x) {
    if (!hdr_eat(h, '('))
        return false;
    x->rank = 0;
    for (;;) {
        if (hdr_eat(h, ')'))
            return true;
        hdr_ws(h);
        if (h->p >= h->end || !isdigit((unsigned char)*h->p) || x->rank == NPY_MAX_RANK)
            return false;
        int64_t v = 0;
        while (h->p < h->end && isdigit((unsigned char)*h->p)) {
            if (v > (INT64_MAX - 9) / 10)
                return false;
            v = v * 10 + (*h->p++ - '0');
        }
        if (h->p < h->end && *h->p == 'L') /* Python 2 longs */
            h->p++;
        x->shape[x->rank++] = v;
        if (!hdr_eat(h, ',')) {
            return hdr_eat(h, ')');
        }
    }
}

static RtStatus parse_type(const char *path, const char *descr, NpyType *t, RtError *err) {
    memset(t, 0, sizeof *t);
    snprintf(t->descr, sizeof t->descr, "%s", descr);
    char order = descr[0];
    if (strchr("<>|=", order) && order)
        descr++;
    else
        order = '=';
    char kind = descr[0];
    char *end = (char *)descr;
    long size = kind ? strtol(descr + 1, &end, 10) : 0;
    bool int_size = size == 1 || size == 2 || size == 4 || size == 8;
    bool ok = kind && descr[1] && *end == 0 &&
              ((kind == 'f' && (size == 4 || size == 8)) ||
               ((kind == 'i' || kind == 'u') && int_size) || (kind == 'b' && size == 1));
    if (!ok)
        return rt_fail(err, "%s: dtype '%s' is not supported; gradc reads float32/64, "
                            "int8/16/32/64, uint8/16/32/64 and bool arrays",
                       path, t->descr);
    t->kind = kind;
    t->size = (int)size;
    t->swap = size > 1 && ((order == '<' && !host_little()) || (order == '>' && host_little()));
    return RT_OK;
}

/* "(150, 4)" into buf. */
static char *shape_str(const Npy *x, char *buf, size_t n) {
    size_t len = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < x->rank && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%lld", i ? ", " : "",
                                (long long)x->shape[i]);
    if (len < n)
        snprintf(buf + len, n - len, x->rank == 1 ? ",)" : ")");
    return buf;
}

/* Read path and parse its header; the data must be exactly as long as the
 * shape says. */
static RtStatus open_npy(Npy *x, const char *path, RtError *err) {
    x->path = path;
    x->input = -1;
    if (rt_read_data_file(path, &x->bytes, &x->len, NULL, err) != RT_OK)
        return RT_FAIL;
    const unsigned char *b = x->bytes;
    if (x->len < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
        return rt_fail(err, "%s: not a .npy file (bad magic: expected \\x93NUMPY)", path);
    int major = b[6];
    size_t hlen, at;
    if (major == 1) {
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
        at = 10;
    } else if (major == 2 || major == 3) {
        if (x->len < 12)
            return rt_fail(err, "%s: the file is truncated inside the .npy preamble", path);
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        at = 12;
    } else {
        return rt_fail(err, "%s: .npy format version %d.%d is not supported (1.0 to 3.0 are)",
                       path, major, b[7]);
    }
    if (hlen > x->len - at)
        return rt_fail(err, "%s: the file is truncated: the header needs %zu bytes, %zu follow",
                       path, hlen, x->len - at);
    Hdr h = {(const char *)b + at, (const char *)b + at + hlen};
    x->data_at = at + hlen;
    bool have_descr = false, have_order = false, have_shape = false, fortran = false;
    char key[64], descr[64];
    if (!hdr_eat(&h, '{'))
        return rt_fail(err, "%s: corrupt .npy header: expected a dict", path);
    while (!hdr_eat(&h, '}')) {
        if (!hdr_string(&h, key, sizeof key) || !hdr_eat(&h, ':'))
            return rt_fail(err, "%s: corrupt .npy header near byte %zu", path,
                           (size_t)(h.p - (const char *)b));
        bool ok;
        if (!strcmp(key, "descr")) {
            hdr_ws(&h);
            if (h.p < h.end && *h.p == '[')
                return rt_fail(err, "%s: structured dtypes are not supported; save a plain "
                                    "numeric array",
                               path);
            ok = have_descr = hdr_string(&h, descr, sizeof descr);
        } else if (!strcmp(key, "fortran_order")) {
            ok = have_order = (fortran = hdr_word(&h, "True")) || hdr_word(&h, "False");
        } else if (!strcmp(key, "shape")) {
            ok = have_shape = hdr_shape(&h, x);
        } else {
            return rt_fail(err, "%s: unexpected key '%s' in the .npy header", path, key);
        }
        if (!ok)
            return rt_fail(err, "%s: corrupt .npy header: bad value for '%s'", path, key);
        if (!hdr_eat(&h, ',')) {
            if (!hdr_eat(&h, '}'))
                return rt_fail(err, "%s: corrupt .npy header near byte %zu", path,
                               (size_t)(h.p - (const char *)b));
            break;
        }
    }
    if (!have_descr || !have_order || !have_shape)
        return rt_fail(err, "%s: corrupt .npy header: '%s' is missing", path,
                       !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");
    if (fortran)
        return rt_fail(err, "%s: the array is in Fortran order; save it in C order "
                            "(numpy.ascontiguousarray)",
                       path);
    if (parse_type(path, descr, &x->type, err) != RT_OK)
        return RT_FAIL;
    if (x->rank == 0)
        return rt_fail(err, "%s: a 0-d array has no rows; the first dimension is the row count",
                       path);
    x->rows = x->shape[0];
    x->per_row = 1;
    uint64_t total = (uint64_t)x->rows;
    for (int i = 1; i < x->rank; i++) {
        uint64_t d = (uint64_t)x->shape[i];
        if (d && (uint64_t)x->per_row > (uint64_t)INT64_MAX / d)
            return rt_fail(err, "%s: the array's shape is implausibly large", path);
        x->per_row *= x->shape[i];
    }
    if (x->per_row && total > UINT64_MAX / (uint64_t)x->per_row / (uint64_t)x->type.size)
        return rt_fail(err, "%s: the array's shape is implausibly large", path);
    uint64_t need = total * (uint64_t)x->per_row * (uint64_t)x->type.size;
    size_t have = x->len - x->data_at;
    char shp[96];
    if (have < need)
        return rt_fail(err, "%s: the file is truncated: shape %s of %s needs %llu bytes of data, "
                            "%zu follow the header",
                       path, shape_str(x, shp, sizeof shp), x->type.descr,
                       (unsigned long long)need, have);
    if (have > need)
        return rt_fail(err, "%s: %zu extra bytes after the %llu bytes of data the header "
                            "promises",
                       path, have - (size_t)need, (unsigned long long)need);
    if (x->rows == 0)
        return rt_fail(err, "%s: the array has no rows", path);
    return RT_OK;
}

static bool is_integer_type(const NpyType *t) {
    return t->kind != 'f';
}

/* Element k of the array, as a double (floats) or an int64 (the rest; uint64
 * above INT64_MAX saturates). */
static void element(const Npy *x, int64_t k, double *f, int64_t *i) {
    unsigned char raw[8];
    const unsigned char *p = x->bytes + x->data_at + (size_t)k * (size_t)x->type.size;
    memcpy(raw, p, (size_t)x->type.size);
    if (x->type.swap)
        for (int a = 0, b = x->type.size - 1; a < b; a++, b--) {
            unsigned char t = raw[a];
            raw[a] = raw[b];
            raw[b] = t;
        }
    switch (x->type.kind) {
    case 'f':
        if (x->type.size == 4) {
            float v;
            memcpy(&v, raw, 4);
            *f = v;
        } else {
            memcpy(f, raw, 8);
        }
        return;
    case 'b':
    case 'u': {
        uint64_t v = 0;
        uint8_t v1;
        uint16_t v2;
        uint32_t v4;
        switch (x->type.size) {
        case 1: memcpy(&v1, raw, 1); v = v1; break;
        case 2: memcpy(&v2, raw, 2); v = v2; break;
        case 4: memcpy(&v4, raw, 4); v = v4; break;
        default: memcpy(&v, raw, 8); break;
        }
        *i = v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
        break;
    }
    default: {
        int8_t v1;
        int16_t v2;
        int32_t v4;
        int64_t v8;
        switch (x->type.size) {
        case 1: memcpy(&v1, raw, 1); *i = v1; break;
        case 2: memcpy(&v2, raw, 2); *i = v2; break;
        case 4: memcpy(&v4, raw, 4); *i = v4; break;
        default: memcpy(&v8, raw, 8); *i = v8; break;
        }
        break;
    }
    }
    *f = (double)*i;
}

/* Can file x feed input t (element count and dtype)? */
static bool fits(const Npy *x, const RtTensor *t) {
    return rt_numel(t, 1) == x->per_row && (t->dtype == RT_FLOAT || is_integer_type(&x->type));
}

/* Pair every file with a model input: named files first, then each unnamed
 * file with the only wanted, unfed input it fits. */
static RtStatus match_files(const RtModel *m, const bool *need, Npy *xs, int nfiles,
                            const RtNpyFile *files, int *fed_by, RtError *err) {
    char have[512], shp[96];
    for (int i = 0; i < m->ninputs; i++)
        fed_by[i] = -1;
    for (int f = 0; f < nfiles; f++) {
        if (!files[f].input)
            continue;
        int found = -1;
        for (int i = 0; i < m->ninputs && found < 0; i++)
            if (!strcmp(m->inputs[i].name, files[f].input))
                found = i;
        if (found < 0)
            return rt_fail(err, "%s: model '%s' has no input named '%s'; its inputs: %s",
                           files[f].path, m->name, files[f].input,
                           rt_inputs_str(m, have, sizeof have));
        if (need && !need[found])
            continue;
        if (fed_by[found] >= 0)
            return rt_fail(err, "input '%s' is given two files, %s and %s", files[f].input,
                           files[fed_by[found]].path, files[f].path);
        fed_by[found] = f;
        xs[f].input = found;
    }
    for (int f = 0; f < nfiles; f++) {
        if (files[f].input)
            continue;
        int found = -1, count = 0;
        for (int i = 0; i < m->ninputs; i++) {
            if ((need && !need[i]) || fed_by[i] >= 0)
                continue;
            if (m->ninputs == 1 || fits(&xs[f], &m->inputs[i])) {
                found = i;
                count++;
            }
        }
        if (count == 0)
            return rt_fail(err, "%s: an array of shape %s and dtype %s fits no %sinput of model "
                                "'%s'; its inputs: %s",
                           files[f].path, shape_str(&xs[f], shp, sizeof shp), xs[f].type.descr,
                           need ? "needed " : "", m->name, rt_inputs_str(m, have, sizeof have));
        if (count > 1)
            return rt_fail(err, "%s: the array could feed more than one input of model '%s' (%s); "
                                "say which input it is for",
                           files[f].path, m->name, rt_inputs_str(m, have, sizeof have));
        fed_by[found] = f;
        xs[f].input = found;
    }
    for (int i = 0; i < m->ninputs; i++)
        if ((!need || need[i]) && fed_by[i] < 0)
            return rt_fail(err, "no .npy file for input '%s' %s of model '%s'", m->inputs[i].name,
                           rt_dims_str(&m->inputs[i], shp, sizeof shp), m->name);
    return RT_OK;
}

/* File x into data (n rows of input t), checking every value. */
static RtStatus convert(const RtModel *m, const Npy *x, const RtTensor *t, void *data,
                        RtError *err) {
    char dims[96], shp[96], where[160];
    if (x->per_row != rt_numel(t, 1))
        return rt_fail(err, "%s: an array of shape %s has %lld values per row, but input '%s' "
                            "%s takes %lld",
                       x->path, shape_str(x, shp, sizeof shp), (long long)x->per_row, t->name,
                       rt_dims_str(t, dims, sizeof dims), (long long)rt_numel(t, 1));
    if (t->dtype == RT_INT && !is_integer_type(&x->type))
        return rt_fail(err, "%s: dtype %s (float%d) cannot feed the int input '%s'; save the "
                            "array with an integer dtype",
                       x->path, x->type.descr, 8 * x->type.size, t->name);
    int64_t total = x->rows * x->per_row;
    for (int64_t k = 0; k < total; k++) {
        double f = 0;
        int64_t v = 0;
        element(x, k, &f, &v);
        bool bad = t->dtype == RT_INT ? (t->limit > 0 && (v < 0 || v >= t->limit)) ||
                                            v < INT32_MIN || v > INT32_MAX
                                      : !isfinite(f);
        if (bad) {
            snprintf(where, sizeof where, "row %lld, element %lld (byte offset %zu)",
                     (long long)(k / x->per_row), (long long)(k % x->per_row),
                     x->data_at + (size_t)k * (size_t)x->type.size);
            if (t->dtype == RT_INT)
                return rt_check_int(t, v, x->path, where, err);
            return rt_fail(err, "%s: %s: %s; float data must be finite", x->path, where,
                           isnan(f) ? "nan" : f > 0 ? "inf" : "-inf");
        }
        if (t->dtype == RT_INT)
            ((int32_t *)data)[k] = (int32_t)v;
        else
            rt_store_float(data, m->elem_size, k, f);
    }
    return RT_OK;
}

/* Contract: see rt.h. On RT_FAIL d is empty. */
RtStatus rt_load_npy_inputs(RtDataset *d, const RtModel *m, const bool *need, int nfiles,
                            const RtNpyFile *files, RtError *err) {
    memset(d, 0, sizeof *d);
    if (nfiles < 1)
        return rt_fail(err, "no .npy files given");
    Npy *xs = calloc((size_t)nfiles, sizeof *xs);
    int *fed_by = calloc((size_t)(m->ninputs ? m->ninputs : 1), sizeof *fed_by);
    bool *load = calloc((size_t)(m->ninputs ? m->ninputs : 1), sizeof *load);
    RtStatus st = xs && fed_by && load ? RT_OK : rt_fail(err, "%s: out of memory", files[0].path);
    for (int f = 0; f < nfiles && st == RT_OK; f++)
        st = open_npy(&xs[f], files[f].path, err);
    if (st == RT_OK)
        st = match_files(m, need, xs, nfiles, files, fed_by, err);
    int64_t n = 0;
    int first = -1;
    for (int f = 0; f < nfiles && st == RT_OK; f++) {
        if (xs[f].input < 0)
            continue;
        if (first < 0) {
            first = f;
            n = xs[f].rows;
        } else if (xs[f].rows != n) {
            st = rt_fail(err, "%s has %lld rows, but %s has %lld; every file needs the same "
                              "row count",
                         xs[first].path, (long long)n, xs[f].path, (long long)xs[f].rows);
        }
    }
    if (st == RT_OK && first < 0)
        st = rt_fail(err, "%s: none of the .npy files feeds an input that is needed",
                     files[0].path);
    if (st == RT_OK) {
        for (int i = 0; i < m->ninputs; i++)
            load[i] = fed_by[i] >= 0;
        st = rt_dataset_alloc(d, m, n, load, xs[first].path, err);
    }
    for (int i = 0; i < m->ninputs && st == RT_OK; i++)
        if (fed_by[i] >= 0)
            st = convert(m, &xs[fed_by[i]], &m->inputs[i], d->data[i], err);
    if (xs)
        for (int f = 0; f < nfiles; f++)
            free(xs[f].bytes);
    free(xs);
    free(fed_by);
    free(load);
    if (st != RT_OK)
        rt_dataset_free(d);
    return st;
}

RtStatus rt_load_npy(RtDataset *d, const RtModel *m, int nfiles, const RtNpyFile *files,
                     RtError *err) {
    return rt_load_npy_inputs(d, m, NULL, nfiles, files, err);
}
