/* idx.c: MNIST-style IDX files into an RtDataset.
 *
 * The format (LeCun et al., the MNIST database): a 4-byte magic 00 00 <type>
 * <ndims>, ndims big-endian uint32 dimensions, then the elements row-major.
 * gradc reads type 0x08 (unsigned byte) only: images with magic 0x00000803
 * [n, rows, cols] and labels with magic 0x00000801 [n]. Either file may be
 * gzip-compressed (RtReader undoes it as it reads). Neither is held whole:
 * the pixels go in pieces straight into the dataset.
 *
 * Owns the header checks, the choice of model inputs (the float input with
 * rows * cols elements per row takes the images, the int input with one
 * element per row the labels) and the conversion (pixel * scale; labels
 * checked against the input's limit). Every error names the file; errors in
 * the data name the item and its byte offset in the (decompressed) file.
 */
#include "rt_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { IDX_UBYTE = 0x08 };

/* One opened file: its header is read, its elements come next. */
typedef struct Idx {
    const char *path;
    RtReader rd;
    bool opened;  /* rd is open */
    bool parsed;  /* the header is read and checked; the data is count bytes */
    bool checked; /* nothing more to read or check */
    int ndims;
    int64_t dims[4];
    size_t data_at; /* byte offset of the first element */
    uint64_t count; /* elements (bytes) the header promises */
    const char *what; /* "images" or "labels" */
} Idx;

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* "images [n, rows, cols]" or "labels [n]": what a magic number means. */
static const char *magic_meaning(uint32_t magic) {
    switch (magic) {
    case 0x00000803: return "unsigned-byte images [n, rows, cols]";
    case 0x00000801: return "unsigned-byte labels [n]";
    default: return NULL;
    }
}

/* " (after gzip decompression)" for a gzipped file, else "". */
static const char *gz_note(const Idx *x) {
    return x->rd.gzipped ? " (after gzip decompression)" : "";
}

/* The data after the header must be exactly count bytes; have is what
 * there is. */
static RtStatus check_length(const Idx *x, uint64_t have, RtError *err) {
    if (have < x->count)
        return rt_fail(err, "%s: the file is truncated: the header promises %llu bytes of "
                            "%s data, but %llu follow it%s",
                       x->path, (unsigned long long)x->count, x->what,
                       (unsigned long long)have, gz_note(x));
    if (have > x->count)
        return rt_fail(err, "%s: %llu extra bytes after the %llu bytes of %s data the header "
                            "promises",
                       x->path, (unsigned long long)(have - x->count),
                       (unsigned long long)x->count, x->what);
    return RT_OK;
}

/* Read the rest of x, dropping it: a gzip stream must read to its end, and
 * once the header is parsed the data must be exactly as long as it says
 * (plain files were checked against their size when opened). */
static RtStatus finish(Idx *x, RtError *err) {
    if (!x->opened || x->checked || x->rd.failed)
        return RT_OK;
    x->checked = true;
    uint64_t rest;
    if (rt_reader_rest(&x->rd, &rest, err) != RT_OK)
        return RT_FAIL;
    return x->parsed ? check_length(x, x->rd.at - x->data_at, err) : RT_OK;
}

/* The error reading the files [0, upto] whole first would have reported
 * (each file read and checked in turn before anything else): the first
 * whose rest fails to read or check, else the one in err. RT_FAIL. */
static RtStatus settle(Idx *xs, int upto, RtError *err) {
    RtError first;
    for (int f = 0; f <= upto; f++)
        if (finish(&xs[f], &first) != RT_OK) {
            *err = first;
            return RT_FAIL;
        }
    return RT_FAIL;
}

/* Open path and check that it is an unsigned-byte IDX file with ndims
 * dimensions (magic 0x000008<ndims>); a plain file's data must be exactly
 * as long as its header says (a gzipped one's is checked when it has been
 * read: finish). what: "images" or "labels", for messages. */
static RtStatus open_idx(Idx *x, const char *path, int ndims, const char *what, RtError *err) {
    x->path = path;
    x->what = what;
    if (rt_reader_open(&x->rd, path, err) != RT_OK)
        return RT_FAIL;
    x->opened = true;
    unsigned char head[4 + 4 * 4];
    size_t got;
    if (rt_reader_read(&x->rd, head, 4, &got, err) != RT_OK)
        return RT_FAIL;
    const char *gz = gz_note(x);
    uint32_t want = (uint32_t)IDX_UBYTE << 8 | (uint32_t)ndims;
    if (got == 0)
        return rt_fail(err, "%s: the file is empty%s", path, gz);
    if (got < 4)
        return rt_fail(err, "%s: the file is too short (%zu bytes%s) to be an IDX file", path,
                       got, gz);
    uint32_t magic = be32(head);
    if (magic != want) {
        const char *meaning = magic_meaning(magic);
        if (meaning)
            return rt_fail(err, "%s: expected IDX %s (magic 0x%08x), but this file holds %s "
                                "(magic 0x%08x); are the images and labels swapped?",
                           path, what, want, meaning, magic);
        if (head[0] == 0 && head[1] == 0 && head[3] == ndims)
            return rt_fail(err, "%s: IDX element type 0x%02x is not supported; gradc reads "
                                "unsigned bytes (0x08)",
                           path, head[2]);
        return rt_fail(err, "%s: bad magic 0x%08x%s: expected 0x%08x, IDX %s", path, magic, gz,
                       want, what);
    }
    x->ndims = ndims;
    x->data_at = 4 + 4 * (size_t)ndims;
    if (rt_reader_read(&x->rd, head + 4, 4 * (size_t)ndims, &got, err) != RT_OK)
        return RT_FAIL;
    if (got < 4 * (size_t)ndims)
        return rt_fail(err, "%s: the file is truncated: %zu bytes%s, but the IDX header alone "
                            "needs %zu",
                       path, 4 + got, gz, x->data_at);
    uint64_t count = 1;
    for (int i = 0; i < ndims; i++) {
        x->dims[i] = be32(head + 4 + 4 * i);
        if (x->dims[i] == 0)
            return rt_fail(err, "%s: dimension %d of the IDX header is 0%s", path, i,
                           i == 0 ? ": the file holds no items" : "");
        if (count > UINT64_MAX / (uint64_t)x->dims[i])
            return rt_fail(err, "%s: the IDX dimensions are implausibly large", path);
        count *= (uint64_t)x->dims[i];
    }
    x->count = count;
    x->parsed = true;
    if (x->rd.sized) {
        x->checked = true;
        return check_length(x, x->rd.file_bytes - x->data_at, err);
    }
    if (count > x->rd.max_bytes - x->data_at) {
        /* Gzipped data that cannot be that long: its length now, before
         * anything of the promised size is allocated. */
        x->checked = true;
        uint64_t rest;
        if (rt_reader_rest(&x->rd, &rest, err) != RT_OK)
            return RT_FAIL;
        return check_length(x, x->rd.at - x->data_at, err);
    }
    return RT_OK;
}

/* The one input of m with dtype and per-row element count per; -1 if none,
 * -2 if several. */
static int find_input(const RtModel *m, RtDType dtype, int64_t per) {
    int found = -1;
    for (int i = 0; i < m->ninputs; i++)
        if (m->inputs[i].dtype == dtype && rt_numel(&m->inputs[i], 1) == per)
            found = found == -1 ? i : -2;
    return found;
}

/* Pixels p[0, n) into dst[0, n) of the model's float type: lut[p[k]]. */
static void pixels_to_float(void *dst, int elem_size, const unsigned char *p, int64_t n,
                            const double *lut) {
    if (elem_size == 4) {
        float lutf[256];
        for (int b = 0; b < 256; b++)
            lutf[b] = (float)lut[b];
        for (int64_t k = 0; k < n; k++)
            ((float *)dst)[k] = lutf[p[k]];
    } else {
        for (int64_t k = 0; k < n; k++)
            ((double *)dst)[k] = lut[p[k]];
    }
}

/* Bytes of a file read at a time. */
enum { PIECE = 1 << 18 };

/* Contract: see rt.h. On RT_FAIL d is empty. Each file is read once, in
 * pieces; the errors are those of reading both files whole first
 * (settle). */
RtStatus rt_load_idx(RtDataset *d, const RtModel *m, const char *images, const char *labels,
                     double scale, RtError *err) {
    memset(d, 0, sizeof *d);
    char have[512];
    if (!isfinite(scale))
        return rt_fail(err, "%s: the pixel scale %g is not a finite number", images, scale);
    double top = 255 * fabs(scale);
    if (!isfinite(top) || (m->elem_size == 4 && !isfinite((float)top)))
        return rt_fail(err, "%s: the pixel scale %g makes pixel 255 %g, too large for float%d, "
                            "the model's float type",
                       images, scale, 255 * scale, 8 * m->elem_size);
    if (labels && m->ninputs != 2)
        return rt_fail(err, "%s: IDX data feeds two inputs, the images (float) and the labels "
                            "(int), but model '%s' has %d: %s",
                       images, m->name, m->ninputs, rt_inputs_str(m, have, sizeof have));
    Idx xs[2];
    memset(xs, 0, sizeof xs);
    Idx *im = &xs[0], *lb = &xs[1];
    RtStatus st = open_idx(im, images, 3, "images", err);
    if (st != RT_OK)
        st = settle(xs, 0, err);
    if (st == RT_OK && labels && (st = open_idx(lb, labels, 1, "labels", err)) != RT_OK)
        st = settle(xs, 1, err);
    int xi = -1, yi = -1;
    /* Each dimension is below 2^32: their product fits uint64_t, not int64_t. */
    uint64_t per_u = (uint64_t)im->dims[1] * (uint64_t)im->dims[2];
    int64_t n = im->dims[0], per = per_u > INT64_MAX ? INT64_MAX : (int64_t)per_u;
    if (st == RT_OK) {
        xi = find_input(m, RT_FLOAT, per);
        if (xi < 0)
            st = rt_fail(err, "%s: the images are %lld x %lld (%lld values each), but model '%s' "
                              "has %s float input with %lld values per row; its inputs: %s",
                         images, (long long)im->dims[1], (long long)im->dims[2],
                         (long long)per, m->name, xi == -1 ? "no" : "more than one",
                         (long long)per, rt_inputs_str(m, have, sizeof have));
    }
    if (st == RT_OK && labels) {
        yi = find_input(m, RT_INT, 1);
        if (yi < 0)
            st = rt_fail(err, "%s: the labels need an int input with one value per row, but "
                              "model '%s' has %s; its inputs: %s",
                         labels, m->name, yi == -1 ? "none" : "several",
                         rt_inputs_str(m, have, sizeof have));
        else if (lb->dims[0] != n)
            st = rt_fail(err, "%s has %lld images, but %s has %lld labels", images,
                         (long long)n, labels, (long long)lb->dims[0]);
    }
    bool *mask = NULL;
    if (st == RT_OK) {
        mask = calloc((size_t)m->ninputs, sizeof *mask);
        if (!mask)
            st = rt_fail(err, "%s: out of memory", images);
    }
    if (st == RT_OK) {
        mask[xi] = true;
        if (yi >= 0)
            mask[yi] = true;
        st = rt_dataset_alloc(d, m, n, mask, images, err);
    }
    free(mask);
    unsigned char *piece = NULL;
    if (st == RT_OK && !(piece = malloc(PIECE)))
        st = rt_fail(err, "%s: out of memory", images);
    if (st != RT_OK && im->opened)
        st = settle(xs, 1, err);
    /* The pixels, piece by piece: pixel * scale, exactly as the double
     * product rounds to the model's float type. */
    double lut[256];
    for (int b = 0; b < 256; b++)
        lut[b] = (double)b * scale;
    uint64_t total = (uint64_t)n * (uint64_t)per;
    for (uint64_t k0 = 0; st == RT_OK && k0 < total; k0 += PIECE) {
        size_t want = total - k0 < PIECE ? (size_t)(total - k0) : PIECE, got;
        if (rt_reader_read(&im->rd, piece, want, &got, err) != RT_OK) {
            st = settle(xs, 0, err);
        } else if (got < want) {
            im->checked = true;
            check_length(im, im->rd.at - im->data_at, err);
            st = settle(xs, 0, err);
        } else {
            pixels_to_float((char *)d->data[xi] + (size_t)k0 * (size_t)m->elem_size,
                            m->elem_size, piece, (int64_t)want, lut);
        }
    }
    if (st == RT_OK && finish(im, err) != RT_OK)
        st = settle(xs, 0, err);
    /* The labels, checked against the label input's limit; errors in them
     * come after both files' own. */
    RtStatus label_st = RT_OK;
    RtError label_err;
    for (int64_t k0 = 0; st == RT_OK && yi >= 0 && k0 < n; k0 += PIECE) {
        size_t want = n - k0 < PIECE ? (size_t)(n - k0) : PIECE, got;
        if (rt_reader_read(&lb->rd, piece, want, &got, err) != RT_OK) {
            st = settle(xs, 1, err);
            break;
        }
        if (got < want) {
            lb->checked = true;
            check_length(lb, lb->rd.at - lb->data_at, err);
            st = settle(xs, 1, err);
            break;
        }
        int32_t *out = (int32_t *)d->data[yi] + k0;
        int64_t limit = m->inputs[yi].limit;
        for (size_t k = 0; k < want; k++) {
            if (limit > 0 && piece[k] >= limit && label_st == RT_OK) {
                char where[96];
                snprintf(where, sizeof where, "label %lld (byte offset %zu)",
                         (long long)(k0 + (int64_t)k), lb->data_at + (size_t)k0 + k);
                label_st = rt_check_int(&m->inputs[yi], piece[k], labels, where, &label_err);
            }
            out[k] = piece[k];
        }
        if (label_st != RT_OK)
            break;
    }
    if (st == RT_OK && yi >= 0 && label_st == RT_OK && finish(lb, err) != RT_OK)
        st = settle(xs, 1, err);
    if (st == RT_OK && label_st != RT_OK) {
        *err = label_err;
        st = settle(xs, 1, err);
    }
    free(piece);
    for (int f = 0; f < 2; f++)
        if (xs[f].opened)
            rt_reader_close(&xs[f].rd);
    if (st != RT_OK)
        rt_dataset_free(d);
    return st;
}
