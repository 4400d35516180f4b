/* npy.c: NumPy .npy files into an RtDataset.
 *
 * The format (numpy.lib.format, versions 1.0, 2.0 and 3.0): the magic
 * "\x93NUMPY", a major and a minor version byte, the header length (uint16
 * little-endian in 1.0, uint32 in 2.0 and 3.0), then the header: a Python
 * dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (n, ...), }
 * padded with spaces and a newline; then the elements, C order when
 * fortran_order is False. gradc reads plain numeric dtypes: f4 f8 i1 i2 i4 i8
 * u1 u2 u4 u8 b1, either byte order. A gzipped .npy is undone as it is read.
 *
 * Owns the header parser, pairing files with model inputs (by name, or the
 * only input that an unnamed file can feed), and the conversion: any dtype
 * into a float input; integer and bool dtypes only into an int input, each
 * value checked against the input's limit. Floats must be finite. Errors
 * name the file, and the row, element and byte offset of a bad value.
 *
 * Memory: a file is never held whole. Its header is read when it is
 * opened; its data goes in bounded pieces straight into the dataset (or
 * through one scratch piece when it needs converting), so loading takes the
 * dataset and a megabyte, not the dataset and the file.
 */
#include "rt_internal.h"

#include <ctype.h>
#include <float.h>
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

/* One opened file: its header is read, its data comes next. */
typedef struct Npy {
    const char *path;
    RtReader rd;
    bool opened;  /* rd is open */
    bool parsed;  /* the header is read and checked; the data is need bytes */
    bool checked; /* nothing more to read or check: the file's length is known to
                     be right, or reading it failed */
    NpyType type;
    int rank;
    int64_t shape[NPY_MAX_RANK];
    int64_t rows, per_row; /* shape[0]; the product of the rest */
    size_t data_at;
    uint64_t need; /* bytes of data the header promises */
    int input;     /* the model input it feeds, or -1 */
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

/* The length check: the data after the header must be exactly need bytes;
 * have is what there is. */
static RtStatus check_length(const Npy *x, uint64_t have, RtError *err) {
    char shp[96];
    if (have < x->need)
        return rt_fail(err, "%s: the file is truncated: shape %s of %s needs %llu bytes of data, "
                            "%llu follow the header",
                       x->path, shape_str(x, shp, sizeof shp), x->type.descr,
                       (unsigned long long)x->need, (unsigned long long)have);
    if (have > x->need)
        return rt_fail(err, "%s: %llu extra bytes after the %llu bytes of data the header "
                            "promises",
                       x->path, (unsigned long long)(have - x->need),
                       (unsigned long long)x->need);
    return RT_OK;
}

/* Read the rest of x, dropping it: a gzip stream must read to its end, and
 * once the header is parsed the data must be exactly as long as it says.
 * Plain files are not read (their size told their length at open). */
static RtStatus finish(Npy *x, RtError *err) {
    if (!x->opened || x->checked || x->rd.failed)
        return RT_OK;
    x->checked = true;
    uint64_t rest;
    if (rt_reader_rest(&x->rd, &rest, err) != RT_OK)
        return RT_FAIL;
    return x->parsed ? check_length(x, x->rd.at - x->data_at, err) : RT_OK;
}

/* The error that reading each file whole before anything else would report
 * (gradc's order: every file is read and its length checked, in file order,
 * before the files are matched and converted): the first of files [0, upto]
 * whose rest fails to read or to check (finish), else the error in err.
 * Only gzipped files are read here (a plain file's length was checked when
 * it was opened). Always RT_FAIL. */
static RtStatus settle(Npy *xs, int upto, RtError *err) {
    RtError first;
    for (int f = 0; f <= upto; f++)
        if (finish(&xs[f], &first) != RT_OK) {
            *err = first;
            return RT_FAIL;
        }
    return RT_FAIL;
}

/* Read the .npy preamble and header of path; for a plain file also check
 * that the data is exactly as long as the shape says (a gzipped file's
 * length is checked when it has been read: finish). */
static RtStatus open_npy(Npy *x, const char *path, RtError *err) {
    x->path = path;
    x->input = -1;
    if (rt_reader_open(&x->rd, path, err) != RT_OK)
        return RT_FAIL;
    x->opened = true;
    unsigned char b[12];
    size_t got;
    if (rt_reader_read(&x->rd, b, 10, &got, err) != RT_OK)
        return RT_FAIL;
    if (got == 0)
        return rt_fail(err, "%s: the file is empty%s", path,
                       x->rd.gzipped ? " (after gzip decompression)" : "");
    if (got < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
        return rt_fail(err, "%s: not a .npy file (bad magic: expected \\x93NUMPY)", path);
    int major = b[6];
    size_t hlen, at;
    if (major == 1) {
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
        at = 10;
    } else if (major == 2 || major == 3) {
        if (rt_reader_read(&x->rd, b + 10, 2, &got, err) != RT_OK)
            return RT_FAIL;
        if (got < 2)
            return rt_fail(err, "%s: the file is truncated inside the .npy preamble", path);
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        at = 12;
    } else {
        return rt_fail(err, "%s: .npy format version %d.%d is not supported (1.0 to 3.0 are)",
                       path, major, b[7]);
    }
    /* The header, read as far as the file goes (a gzipped file's length is
     * not known before). */
    size_t hgot = 0;
    char *hdr = NULL;
    if (x->rd.sized && hlen > x->rd.file_bytes - at) {
        hgot = (size_t)(x->rd.file_bytes - at);
    } else {
        size_t cap = 0;
        do {
            size_t piece = hlen - hgot < (1 << 16) ? hlen - hgot : 1 << 16;
            char *bigger = realloc(hdr, cap + piece + 1);
            if (!bigger) {
                free(hdr);
                return rt_fail(err, "%s: out of memory", path);
            }
            hdr = bigger;
            cap += piece;
            if (rt_reader_read(&x->rd, hdr + hgot, piece, &got, err) != RT_OK) {
                free(hdr);
                return RT_FAIL;
            }
            hgot += got;
            if (got < piece)
                break;
        } while (hgot < hlen);
    }
    if (hgot < hlen) {
        free(hdr);
        return rt_fail(err, "%s: the file is truncated: the header needs %zu bytes, %zu follow",
                       path, hlen, hgot);
    }
    RtStatus st = RT_OK;
    Hdr h = {hdr, hdr + hlen};
    x->data_at = at + hlen;
    bool have_descr = false, have_order = false, have_shape = false, fortran = false;
    char key[64], descr[64];
    if (!hdr_eat(&h, '{'))
        st = rt_fail(err, "%s: corrupt .npy header: expected a dict", path);
    while (st == RT_OK && !hdr_eat(&h, '}')) {
        if (!hdr_string(&h, key, sizeof key) || !hdr_eat(&h, ':')) {
            st = rt_fail(err, "%s: corrupt .npy header near byte %zu", path,
                         at + (size_t)(h.p - hdr));
            break;
        }
        bool ok;
        if (!strcmp(key, "descr")) {
            hdr_ws(&h);
            if (h.p < h.end && *h.p == '[') {
                st = rt_fail(err, "%s: structured dtypes are not supported; save a plain "
                                  "numeric array",
                             path);
                break;
            }
            ok = have_descr = hdr_string(&h, descr, sizeof descr);
        } else if (!strcmp(key, "fortran_order")) {
            ok = have_order = (fortran = hdr_word(&h, "True")) || hdr_word(&h, "False");
        } else if (!strcmp(key, "shape")) {
            ok = have_shape = hdr_shape(&h, x);
        } else {
            st = rt_fail(err, "%s: unexpected key '%s' in the .npy header", path, key);
            break;
        }
        if (!ok) {
            st = rt_fail(err, "%s: corrupt .npy header: bad value for '%s'", path, key);
            break;
        }
        if (!hdr_eat(&h, ',')) {
            if (!hdr_eat(&h, '}'))
                st = rt_fail(err, "%s: corrupt .npy header near byte %zu", path,
                             at + (size_t)(h.p - hdr));
            break;
        }
    }
    free(hdr);
    if (st != RT_OK)
        return st;
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
    x->need = total * (uint64_t)x->per_row * (uint64_t)x->type.size;
    x->parsed = true;
    if (x->rd.sized) {
        x->checked = true;
        if (check_length(x, x->rd.file_bytes - x->data_at, err) != RT_OK)
            return RT_FAIL;
    } else if (x->need > (x->rd.max_bytes > x->data_at ? x->rd.max_bytes - x->data_at : 0)) {
        /* Gzipped data that cannot be that long: its length now, before
         * anything of the promised size is allocated. */
        x->checked = true;
        uint64_t rest;
        if (rt_reader_rest(&x->rd, &rest, err) != RT_OK ||
            check_length(x, x->rd.at - x->data_at, err) != RT_OK)
            return RT_FAIL;
    }
    if (x->rows == 0)
        return rt_fail(err, "%s: the array has no rows", path);
    return RT_OK;
}

static bool is_integer_type(const NpyType *t) {
    return t->kind != 'f';
}

/* The element of type t at p, as a double (floats) or an int64 (the rest;
 * uint64 above INT64_MAX saturates). */
static void element(const NpyType *t, const unsigned char *p, double *f, int64_t *i) {
    unsigned char raw[8];
    memcpy(raw, p, (size_t)t->size);
    if (t->swap)
        for (int a = 0, b = t->size - 1; a < b; a++, b--) {
            unsigned char c = raw[a];
            raw[a] = raw[b];
            raw[b] = c;
        }
    switch (t->kind) {
    case 'f':
        if (t->size == 4) {
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
        switch (t->size) {
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
        switch (t->size) {
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

/* ---- conversion -------------------------------------------------------------
 * A file's data is read in pieces of PIECE_BYTES: straight into the dataset
 * when it is already in the input's layout (float32 into a float32 input,
 * float64 into float64, int32 into an int input, this host's byte order),
 * else into a scratch piece that is converted. Every piece is checked
 * before the next is read. The common cases are loops over whole blocks
 * that the compiler vectorises; any other dtype goes element by element
 * through element(). */

enum { PIECE_BYTES = 1 << 20, BLOCK = 256 };

/* The first k < n with p[k] a NaN or an infinity; n if none. */
static int64_t first_nonfinite_f32(const float *p, int64_t n) {
    int64_t k = 0;
    for (; k + BLOCK <= n; k += BLOCK) {
        int bad = 0;
        for (int i = 0; i < BLOCK; i++)
            bad |= !(fabsf(p[k + i]) <= FLT_MAX);
        if (bad)
            break;
    }
    for (; k < n; k++)
        if (!isfinite(p[k]))
            return k;
    return n;
}

/* The same for float64; the blocks test the exponent bits (all ones: NaN
 * or infinity), which vectorises where the comparison does not. */
static int64_t first_nonfinite_f64(const double *p, int64_t n) {
    int64_t k = 0;
    for (; k + BLOCK <= n; k += BLOCK) {
        int bad = 0;
        for (int i = 0; i < BLOCK; i++) {
            uint64_t b;
            memcpy(&b, p + k + i, sizeof b);
            bad |= (uint32_t)(b >> 32 & 0x7ff00000u) == 0x7ff00000u;
        }
        if (bad)
            break;
    }
    for (; k < n; k++)
        if (!isfinite(p[k]))
            return k;
    return n;
}

/* The first k < n with p[k] >= lim; n if none (uint8 data for an int input
 * with a limit of lim, at most 256). */
static int64_t first_at_least_u8(const uint8_t *p, int64_t n, unsigned lim) {
    int64_t k = 0;
    for (; k + BLOCK <= n; k += BLOCK) {
        int bad = 0;
        for (int i = 0; i < BLOCK; i++)
            bad |= p[k + i] >= lim;
        if (bad)
            break;
    }
    for (; k < n; k++)
        if (p[k] >= lim)
            return k;
    return n;
}

/* The first k < n with (uint32_t)p[k] >= lim; n if none. With lim = min(limit,
 * 2^31): int32 data outside [0, limit). */
static int64_t first_outside_i32(const int32_t *p, int64_t n, uint32_t lim) {
    int64_t k = 0;
    for (; k + BLOCK <= n; k += BLOCK) {
        int bad = 0;
        for (int i = 0; i < BLOCK; i++)
            bad |= (uint32_t)p[k + i] >= lim;
        if (bad)
            break;
    }
    for (; k < n; k++)
        if ((uint32_t)p[k] >= lim)
            return k;
    return n;
}

/* The first k < n with (uint64_t)p[k] + off >= lim; n if none. off 0, lim
 * min(limit, 2^31): int64 data outside [0, limit) or int32; off 2^31, lim
 * 2^32: outside int32. */
static int64_t first_outside_i64(const int64_t *p, int64_t n, uint64_t off, uint64_t lim) {
    int64_t k = 0;
    for (; k + BLOCK <= n; k += BLOCK) {
        int bad = 0;
        for (int i = 0; i < BLOCK; i++)
            bad |= (uint64_t)p[k + i] + off >= lim;
        if (bad)
            break;
    }
    for (; k < n; k++)
        if ((uint64_t)p[k] + off >= lim)
            return k;
    return n;
}

/* Conversions, in whole blocks so that they vectorise at -O2 as well. */
#define CONVERT_BLOCKED(name, Dst, Src)                                                     \
    static void name(Dst *d, const Src *s, int64_t n) {                                     \
        int64_t k = 0;                                                                      \
        for (; k + BLOCK <= n; k += BLOCK)                                                  \
            for (int i = 0; i < BLOCK; i++)                                                 \
                d[k + i] = (Dst)s[k + i];                                                   \
        for (; k < n; k++)                                                                  \
            d[k] = (Dst)s[k];                                                               \
    }
CONVERT_BLOCKED(f32_to_f64, double, float)
CONVERT_BLOCKED(f64_to_f32, float, double)
CONVERT_BLOCKED(u8_to_f32, float, uint8_t)
CONVERT_BLOCKED(u8_to_f64, double, uint8_t)
CONVERT_BLOCKED(u8_to_i32, int32_t, uint8_t)
CONVERT_BLOCKED(i64_to_i32, int32_t, int64_t)
#undef CONVERT_BLOCKED

/* Raw elements p[0, n) of type x->type (this host's byte order unless
 * swapped) into dst[0, n) of input t, checking each: the index of the first
 * bad one, or n when all are good and stored. */
static int64_t convert_piece(const Npy *x, const RtTensor *t, int elem_size,
                             const unsigned char *p, int64_t n, void *dst) {
    const NpyType *ty = &x->type;
    bool native = !ty->swap;
    int64_t bad;
    if (t->dtype == RT_FLOAT && native && ty->kind == 'f') {
        if (ty->size == 4) {
            const float *s = (const void *)p;
            if ((bad = first_nonfinite_f32(s, n)) < n)
                return bad;
            if (elem_size == 8)
                f32_to_f64(dst, s, n);
            else if (dst != p)
                memcpy(dst, s, (size_t)n * 4);
        } else {
            const double *s = (const void *)p;
            if ((bad = first_nonfinite_f64(s, n)) < n)
                return bad;
            if (elem_size == 4) {
                /* A finite double beyond float32's range becomes an infinity. */
                f64_to_f32(dst, s, n);
                if ((bad = first_nonfinite_f32(dst, n)) < n)
                    return bad;
            } else if (dst != p) {
                memcpy(dst, s, (size_t)n * 8);
            }
        }
        return n;
    }
    if (t->dtype == RT_FLOAT && ty->kind == 'u' && ty->size == 1) {
        if (elem_size == 4)
            u8_to_f32(dst, p, n);
        else
            u8_to_f64(dst, p, n);
        return n;
    }
    if (t->dtype == RT_INT && native && ty->kind == 'i' && (ty->size == 4 || ty->size == 8)) {
        if (ty->size == 4) {
            const int32_t *s = (const void *)p;
            if (t->limit > 0 &&
                (bad = first_outside_i32(s, n, t->limit > INT32_MAX ? 1u << 31
                                                                    : (uint32_t)t->limit)) < n)
                return bad;
            if (dst != p)
                memcpy(dst, s, (size_t)n * 4);
        } else {
            const int64_t *s = (const void *)p;
            bad = t->limit > 0 ? first_outside_i64(s, n, 0,
                                                   t->limit > INT32_MAX ? (uint64_t)1 << 31
                                                                        : (uint64_t)t->limit)
                               : first_outside_i64(s, n, (uint64_t)1 << 31, (uint64_t)1 << 32);
            if (bad < n)
                return bad;
            i64_to_i32(dst, s, n);
        }
        return n;
    }
    if (t->dtype == RT_INT && ty->kind == 'u' && ty->size == 1) {
        if (t->limit > 0 && t->limit < 256 &&
            (bad = first_at_least_u8(p, n, (unsigned)t->limit)) < n)
            return bad;
        u8_to_i32(dst, p, n);
        return n;
    }
    for (int64_t k = 0; k < n; k++) {
        double f = 0;
        int64_t v = 0;
        element(ty, p + (size_t)k * (size_t)ty->size, &f, &v);
        if (t->dtype == RT_INT) {
            if ((t->limit > 0 && (v < 0 || v >= t->limit)) || v < INT32_MIN || v > INT32_MAX)
                return k;
            ((int32_t *)dst)[k] = (int32_t)v;
        } else {
            if (!isfinite(f) || (elem_size == 4 && !isfinite((float)f)))
                return k;
            rt_store_float(dst, elem_size, k, f);
        }
    }
    return n;
}

/* File x into data (n rows of input t), checking every value; scratch holds
 * PIECE_BYTES. *file_level: the error is x's reading or length (what gradc
 * reports in file order before any conversion), not one of its values. */
static RtStatus convert(const RtModel *m, Npy *x, const RtTensor *t, void *data,
                        unsigned char *scratch, bool *file_level, RtError *err) {
    char dims[96], shp[96], where[160];
    *file_level = false;
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
    size_t size = (size_t)x->type.size, out = rt_elem_bytes(m, t);
    bool direct = !x->type.swap && size == out &&
                  (t->dtype == RT_FLOAT ? x->type.kind == 'f' : x->type.kind == 'i');
    int64_t per_piece = (int64_t)(PIECE_BYTES / size);
    for (int64_t k0 = 0; k0 < total; k0 += per_piece) {
        int64_t n = total - k0 < per_piece ? total - k0 : per_piece;
        unsigned char *dst = (unsigned char *)data + (size_t)k0 * out;
        unsigned char *raw = direct ? dst : scratch;
        size_t want = (size_t)n * size, got;
        *file_level = true;
        if (rt_reader_read(&x->rd, raw, want, &got, err) != RT_OK) {
            x->checked = true;
            return RT_FAIL;
        }
        if (got < want) {
            x->checked = true;
            return check_length(x, x->rd.at - x->data_at, err);
        }
        *file_level = false;
        int64_t bad = convert_piece(x, t, m->elem_size, raw, n, dst);
        if (bad < n) {
            double f = 0;
            int64_t v = 0, k = k0 + bad;
            element(&x->type, raw + (size_t)bad * size, &f, &v);
            snprintf(where, sizeof where, "row %lld, element %lld (byte offset %zu)",
                     (long long)(k / x->per_row), (long long)(k % x->per_row),
                     x->data_at + (size_t)k * size);
            if (t->dtype == RT_INT)
                return rt_check_int(t, v, x->path, where, err);
            if (isfinite(f))
                return rt_fail(err, "%s: %s: %.9g is too large for float32 (at most %.9g)",
                               x->path, where, f, (double)FLT_MAX);
            return rt_fail(err, "%s: %s: %s; float data must be finite", x->path, where,
                           isnan(f) ? "nan" : f > 0 ? "inf" : "-inf");
        }
    }
    *file_level = true;
    return finish(x, err);
}

/* Contract: see rt.h. On RT_FAIL d is empty. Each file is read once, in
 * pieces, into the dataset; the errors are those of reading every file
 * whole first (settle). */
RtStatus rt_load_npy_inputs(RtDataset *d, const RtModel *m, const bool *need, int nfiles,
                            const RtNpyFile *files, RtError *err) {
    memset(d, 0, sizeof *d);
    if (nfiles < 1)
        return rt_fail(err, "no .npy files given");
    Npy *xs = calloc((size_t)nfiles, sizeof *xs);
    int *fed_by = calloc((size_t)(m->ninputs ? m->ninputs : 1), sizeof *fed_by);
    bool *load = calloc((size_t)(m->ninputs ? m->ninputs : 1), sizeof *load);
    unsigned char *scratch = NULL;
    RtStatus st = xs && fed_by && load ? RT_OK : rt_fail(err, "%s: out of memory", files[0].path);
    for (int f = 0; f < nfiles && st == RT_OK; f++)
        if ((st = open_npy(&xs[f], files[f].path, err)) != RT_OK)
            st = settle(xs, f, err);
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
    if (st == RT_OK && !(scratch = malloc(PIECE_BYTES)))
        st = rt_fail(err, "%s: out of memory", xs[first].path);
    if (st != RT_OK && xs)
        st = settle(xs, nfiles - 1, err);
    for (int i = 0; i < m->ninputs && st == RT_OK; i++) {
        bool file_level;
        if (fed_by[i] >= 0 && convert(m, &xs[fed_by[i]], &m->inputs[i], d->data[i], scratch,
                                      &file_level, err) != RT_OK)
            st = settle(xs, file_level ? fed_by[i] : nfiles - 1, err);
    }
    /* Files that feed nothing needed are read to their end too. */
    for (int f = 0; f < nfiles && st == RT_OK; f++)
        if (finish(&xs[f], err) != RT_OK)
            st = settle(xs, f, err);
    if (xs)
        for (int f = 0; f < nfiles; f++)
            if (xs[f].opened)
                rt_reader_close(&xs[f].rd);
    free(scratch);
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
