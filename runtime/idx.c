/* idx.c: MNIST-style IDX files into an RtDataset.
 *
 * The format (LeCun et al., the MNIST database): a 4-byte magic 00 00 <type>
 * <ndims>, ndims big-endian uint32 dimensions, then the elements row-major.
 * gradc reads type 0x08 (unsigned byte) only: images with magic 0x00000803
 * [n, rows, cols] and labels with magic 0x00000801 [n]. Either file may be
 * gzip-compressed (rt_read_data_file undoes it).
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

/* One parsed file: its dimensions and where its elements start. */
typedef struct Idx {
    const char *path;
    unsigned char *bytes; /* the whole (decompressed) file */
    size_t len;
    bool gzipped;
    int ndims;
    int64_t dims[4];
    size_t data_at; /* byte offset of the first element */
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

/* Read path and check that it is an unsigned-byte IDX file with ndims
 * dimensions (magic 0x000008<ndims>) whose data is exactly as long as its
 * header says. what: "images" or "labels", for messages. */
static RtStatus read_idx(Idx *x, const char *path, int ndims, const char *what, RtError *err) {
    memset(x, 0, sizeof *x);
    x->path = path;
    if (rt_read_data_file(path, &x->bytes, &x->len, &x->gzipped, err) != RT_OK)
        return RT_FAIL;
    const char *gz = x->gzipped ? " (after gzip decompression)" : "";
    uint32_t want = (uint32_t)IDX_UBYTE << 8 | (uint32_t)ndims;
    if (x->len < 4)
        return rt_fail(err, "%s: the file is too short (%zu bytes%s) to be an IDX file", path,
                       x->len, gz);
    uint32_t magic = be32(x->bytes);
    if (magic != want) {
        const char *meaning = magic_meaning(magic);
        if (meaning)
            return rt_fail(err, "%s: expected IDX %s (magic 0x%08x), but this file holds %s "
                                "(magic 0x%08x); are the images and labels swapped?",
                           path, what, want, meaning, magic);
        if (x->bytes[0] == 0 && x->bytes[1] == 0 && x->bytes[3] == ndims)
            return rt_fail(err, "%s: IDX element type 0x%02x is not supported; gradc reads "
                                "unsigned bytes (0x08)",
                           path, x->bytes[2]);
        return rt_fail(err, "%s: bad magic 0x%08x%s: expected 0x%08x, IDX %s", path, magic, gz,
                       want, what);
    }
    x->ndims = ndims;
    x->data_at = 4 + 4 * (size_t)ndims;
    if (x->len < x->data_at)
        return rt_fail(err, "%s: the file is truncated: %zu bytes%s, but the IDX header alone "
                            "needs %zu",
                       path, x->len, gz, x->data_at);
    uint64_t count = 1;
    for (int i = 0; i < ndims; i++) {
        x->dims[i] = be32(x->bytes + 4 + 4 * i);
        if (x->dims[i] == 0)
            return rt_fail(err, "%s: dimension %d of the IDX header is 0%s", path, i,
                           i == 0 ? ": the file holds no items" : "");
        if (count > UINT64_MAX / (uint64_t)x->dims[i])
            return rt_fail(err, "%s: the IDX dimensions are implausibly large", path);
        count *= (uint64_t)x->dims[i];
    }
    size_t have = x->len - x->data_at;
    if (have < count)
        return rt_fail(err, "%s: the file is truncated: the header promises %llu bytes of "
                            "%s data, but %zu follow it%s",
                       path, (unsigned long long)count, what, have, gz);
    if (have > count)
        return rt_fail(err, "%s: %zu extra bytes after the %llu bytes of %s data the header "
                            "promises",
                       path, have - (size_t)count, (unsigned long long)count, what);
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

/* Contract: see rt.h. On RT_FAIL d is empty. */
RtStatus rt_load_idx(RtDataset *d, const RtModel *m, const char *images, const char *labels,
                     double scale, RtError *err) {
    memset(d, 0, sizeof *d);
    char have[512];
    if (!isfinite(scale))
        return rt_fail(err, "%s: the pixel scale %g is not a finite number", images, scale);
    if (labels && m->ninputs != 2)
        return rt_fail(err, "%s: IDX data feeds two inputs, the images (float) and the labels "
                            "(int), but model '%s' has %d: %s",
                       images, m->name, m->ninputs, rt_inputs_str(m, have, sizeof have));
    Idx im, lb;
    memset(&lb, 0, sizeof lb);
    RtStatus st = read_idx(&im, images, 3, "images", err);
    if (st == RT_OK && labels)
        st = read_idx(&lb, labels, 1, "labels", err);
    int xi = -1, yi = -1;
    int64_t n = im.dims[0], per = im.dims[1] * im.dims[2];
    if (st == RT_OK) {
        xi = find_input(m, RT_FLOAT, per);
        if (xi < 0)
            st = rt_fail(err, "%s: the images are %lld x %lld (%lld values each), but model '%s' "
                              "has %s float input with %lld values per row; its inputs: %s",
                         images, (long long)im.dims[1], (long long)im.dims[2], (long long)per,
                         m->name, xi == -1 ? "no" : "more than one", (long long)per,
                         rt_inputs_str(m, have, sizeof have));
    }
    if (st == RT_OK && labels) {
        yi = find_input(m, RT_INT, 1);
        if (yi < 0)
            st = rt_fail(err, "%s: the labels need an int input with one value per row, but "
                              "model '%s' has %s; its inputs: %s",
                         labels, m->name, yi == -1 ? "none" : "several",
                         rt_inputs_str(m, have, sizeof have));
        else if (lb.dims[0] != n)
            st = rt_fail(err, "%s has %lld images, but %s has %lld labels", images,
                         (long long)n, labels, (long long)lb.dims[0]);
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
    if (st == RT_OK) {
        const unsigned char *px = im.bytes + im.data_at;
        for (int64_t k = 0; k < n * per; k++)
            rt_store_float(d->data[xi], m->elem_size, k, (double)px[k] * scale);
    }
    if (st == RT_OK && yi >= 0) {
        const unsigned char *y = lb.bytes + lb.data_at;
        int32_t *out = d->data[yi];
        char where[96];
        for (int64_t k = 0; k < n && st == RT_OK; k++) {
            if (m->inputs[yi].limit > 0 && y[k] >= m->inputs[yi].limit) {
                snprintf(where, sizeof where, "label %lld (byte offset %zu)", (long long)k,
                         lb.data_at + (size_t)k);
                st = rt_check_int(&m->inputs[yi], y[k], labels, where, err);
            }
            out[k] = y[k];
        }
    }
    free(im.bytes);
    free(lb.bytes);
    if (st != RT_OK)
        rt_dataset_free(d);
    return st;
}
