/* test_rt_hostile.c: hostile data for the loaders, the cases the format
 * tests (test_rt_csv.c, test_rt_data.c) leave out: NaN and infinities in
 * every spelling and dtype path (CSV "inf" and "1e999", .npy float32 and
 * float64 in both byte orders, values beyond float32), empty files in every
 * format (no bytes, a header only, a gzip stream of nothing), labels out of
 * range for the model's classes in every int dtype (negative, too large,
 * not an integer, "nan" in a column of numbers), and files whose row counts
 * differ. Every error names the file and the row (and column or element),
 * and leaves the dataset empty. The files are made here, in a temporary
 * directory. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "runtime/rt_internal.h"

#define assert_contains(hay, needle)                                                        \
    do {                                                                                    \
        if (!strstr((hay), (needle)))                                                       \
            fail_msg("expected \"%s\" in \"%s\"", (needle), (hay));                         \
    } while (0)

static char tmpdir[] = "/tmp/gradc_test_hostile_XXXXXX";

static const char *tmp_path(const char *name) {
    static char path[8][256];
    static int k;
    k = (k + 1) % 8;
    snprintf(path[k], sizeof path[k], "%s/%s", tmpdir, name);
    return path[k];
}

/* A temporary file holding bytes[0, n); returns its path. */
static const char *write_tmp(const char *name, const void *bytes, size_t n) {
    const char *path = tmp_path(name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    fclose(f);
    return path;
}

static const char *write_text(const char *name, const char *text) {
    return write_tmp(name, text, strlen(text));
}

/* bytes[0, n) gzip-compressed (n may be 0: a gzip stream of nothing). */
static const char *write_gz(const char *name, const void *bytes, size_t n) {
    const char *path = tmp_path(name);
    gzFile g = gzopen(path, "wb");
    assert_non_null(g);
    if (n > 0)
        assert_int_equal(gzwrite(g, bytes, (unsigned)n), (int)n);
    assert_int_equal(gzclose(g), Z_OK);
    return path;
}

/* A .npy (format 1.0) of dtype descr and shape (rows, cols) or (rows,)
 * when cols is 0, holding the n bytes of data. */
static const char *write_npy(const char *name, const char *descr, int64_t rows, int64_t cols,
                             const void *data, size_t n) {
    char dict[128], head[256];
    if (cols)
        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%lld, "
                                    "%lld), }",
                 descr, (long long)rows, (long long)cols);
    else
        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%lld,), }",
                 descr, (long long)rows);
    size_t len = strlen(dict), total = 10 + len + 1;
    size_t pad = (64 - total % 64) % 64;
    memcpy(head, "\x93NUMPY\x01\x00", 8);
    head[8] = (char)((len + 1 + pad) & 0xff);
    head[9] = (char)((len + 1 + pad) >> 8);
    memcpy(head + 10, dict, len);
    memset(head + 10 + len, ' ', pad);
    head[10 + len + pad] = '\n';
    size_t hn = 10 + len + pad + 1;
    unsigned char *all = malloc(hn + n + 1);
    memcpy(all, head, hn);
    if (n)
        memcpy(all + hn, data, n);
    const char *path = write_tmp(name, all, hn + n);
    free(all);
    return path;
}

/* The bytes of v in the other byte order than this host's. */
static void swap8(void *v) {
    unsigned char *p = v;
    for (int a = 0, b = 7; a < b; a++, b--) {
        unsigned char t = p[a];
        p[a] = p[b];
        p[b] = t;
    }
}

static bool host_little(void) {
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

/* ---- models (only their inputs matter) ------------------------------------
 * xy:  x [B, 2] float @0, y [B] int @1024, limit 3 (a 3-class softmax)
 * img: x [B, 2, 2] float @0, y [B] int @1024, limit 3
 * lm:  ctx [B, 2] int @0, next [B] int @1024 */
static const RtTensor xy_inputs[] = {
    {.name = "x", .dtype = RT_FLOAT, .rank = 2, .dims = {RT_DIM_BATCH, 2}, .offset = 0},
    {.name = "y", .dtype = RT_INT, .rank = 1, .dims = {RT_DIM_BATCH}, .offset = 1024, .limit = 3},
};
static const RtTensor img_inputs[] = {
    {.name = "x", .dtype = RT_FLOAT, .rank = 3, .dims = {RT_DIM_BATCH, 2, 2}, .offset = 0},
    {.name = "y", .dtype = RT_INT, .rank = 1, .dims = {RT_DIM_BATCH}, .offset = 1024, .limit = 3},
};
static const RtTensor lm_inputs[] = {
    {.name = "ctx", .dtype = RT_INT, .rank = 2, .dims = {RT_DIM_BATCH, 2}, .offset = 0},
    {.name = "next", .dtype = RT_INT, .rank = 1, .dims = {RT_DIM_BATCH}, .offset = 1024},
};

static RtModel model_of(const char *name, int elem_size, const RtTensor *inputs) {
    RtModel m = {.name = name, .elem_size = elem_size, .max_batch = 8, .arena_bytes = 2048,
                 .ninputs = 2, .inputs = inputs};
    return m;
}

static void assert_empty(const RtDataset *d) {
    assert_int_equal(d->n, 0);
    assert_null(d->data);
    assert_null(d->row_elems);
}

/* ---- CSV ------------------------------------------------------------------ */

static RtCsvSpec csv_spec(const char *path) {
    static const RtColumnSel xcols[] = {{NULL, 0}, {NULL, 1}}, ycol[] = {{NULL, 2}};
    static const RtCsvInput ins[] = {{"x", 2, xcols}, {"y", 1, ycol}};
    return (RtCsvSpec){.path = path, .header = false, .ninputs = 2, .inputs = ins};
}

static void expect_csv_error(int elem_size, const char *path, const char *want) {
    RtModel m = model_of("xy", elem_size, xy_inputs);
    RtCsvSpec spec = csv_spec(path);
    RtDataset d;
    RtError err = {""};
    assert_int_equal(rt_load_csv(&d, &m, &spec, &err), RT_FAIL);
    assert_contains(err.msg, want);
    assert_empty(&d);
}

/* Every spelling strtod takes for a NaN or an infinity, and a number that
 * overflows a double, in a float column: named by line and column. */
static void test_csv_every_nonfinite_spelling_names_line_and_column(void **state) {
    (void)state;
    static const char *const bad[] = {"nan", "NaN", "-nan", "inf", "+inf", "Infinity",
                                      "-INFINITY", "1e999", "-1e400", "nan(0x1)"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char text[128], want[128];
        snprintf(text, sizeof text, "1,2,0\n3,4,1\n5,%s,2\n", bad[i]);
        snprintf(want, sizeof want, "bad.csv:3:2: expected a finite number, found '%s'", bad[i]);
        expect_csv_error(4, write_text("bad.csv", text), want);
        expect_csv_error(8, write_text("bad.csv", text), want);
    }
}

/* 1e39 is finite as a double but beyond float32: an error for a float32
 * model, the value itself for a float64 one. */
static void test_csv_value_beyond_float32_is_an_error_for_float32_only(void **state) {
    (void)state;
    const char *path = write_text("big.csv", "1,2,0\n1e39,4,1\n");
    expect_csv_error(4, path, "big.csv:2:1: '1e39' is too large for float32 (at most 3.40282347e+38)");
    RtModel m = model_of("xy", 8, xy_inputs);
    RtCsvSpec spec = csv_spec(path);
    RtDataset d;
    RtError err = {""};
    if (rt_load_csv(&d, &m, &spec, &err) != RT_OK)
        fail_msg("%s", err.msg);
    assert_true(((double *)d.data[0])[2] == 1e39);
    rt_dataset_free(&d);
}

/* A label column of numbers with a "nan" or "inf" among them is a column of
 * numbers with a bad value (not string labels named "nan"); so are labels
 * that are not whole numbers, or out of [0, 3), in any spelling. */
static void test_csv_labels_must_be_whole_classes_of_the_model(void **state) {
    (void)state;
    static const struct {
        const char *label, *want;
    } cases[] = {
        {"nan", "lab.csv:2:3: expected an integer, found 'nan'"},
        {"inf", "lab.csv:2:3: expected an integer, found 'inf'"},
        {"2.5", "lab.csv:2:3: expected an integer, found '2.5'"},
        {"1e10", "lab.csv:2:3: expected an integer, found '1e10'"},
        {"3", "lab.csv:2:3: value 3 is out of range for input 'y', which takes 0 to 2"},
        {"3.0", "lab.csv:2:3: value 3 is out of range for input 'y', which takes 0 to 2"},
        {"-1", "lab.csv:2:3: value -1 is out of range for input 'y', which takes 0 to 2"},
        {"10", "lab.csv:2:3: value 10 is out of range for input 'y', which takes 0 to 2"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char text[128];
        snprintf(text, sizeof text, "1,2,0\n3,4,%s\n5,6,1\n", cases[i].label);
        expect_csv_error(4, write_text("lab.csv", text), cases[i].want);
    }
    /* "2.0" is the integer 2. */
    RtModel m = model_of("xy", 4, xy_inputs);
    RtCsvSpec spec = csv_spec(write_text("ok.csv", "1,2,0\n3,4,2.0\n"));
    RtDataset d;
    RtError err = {""};
    if (rt_load_csv(&d, &m, &spec, &err) != RT_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(((int32_t *)d.data[1])[1], 2);
    rt_dataset_free(&d);
}

/* A row with more fields than the first, or fewer, names its line. */
static void test_csv_rows_with_the_wrong_number_of_columns(void **state) {
    (void)state;
    expect_csv_error(4, write_text("wide.csv", "1,2,0\n3,4,1\n5,6,2,7\n"),
                     "wide.csv:3: expected 3 fields, found 4");
    expect_csv_error(4, write_text("narrow.csv", "1,2,0\n\n3,4\n"),
                     "narrow.csv:3: expected 3 fields, found 2");
    expect_csv_error(4, write_text("first.csv", "1,2\n3,4,1\n"),
                     "first.csv: column index 2 (for input 'y') is out of range: the file has 2 "
                     "columns");
}

/* Empty in every way: no bytes, blank lines, a header only, a gzip stream
 * of nothing, a NUL byte; and a gzipped CSV loads as the plain one. */
static void test_csv_empty_gzip_and_binary_files(void **state) {
    (void)state;
    expect_csv_error(4, write_text("zero.csv", ""), "zero.csv: the file is empty");
    expect_csv_error(4, write_gz("nothing.csv.gz", "", 0), "nothing.csv.gz: the file is empty");
    expect_csv_error(4, write_gz("blank.csv.gz", "\n\n", 2), "blank.csv.gz: the file is empty");
    RtModel m = model_of("xy", 4, xy_inputs);
    RtCsvSpec spec = csv_spec(write_text("hdr.csv", "a,b,c\n"));
    spec.header = true;
    RtDataset d;
    RtError err = {""};
    assert_int_equal(rt_load_csv(&d, &m, &spec, &err), RT_FAIL);
    assert_contains(err.msg, "hdr.csv: no data rows");
    expect_csv_error(4, write_tmp("nul.csv", "1,2,0\n3,\0,1\n", 12),
                     "nul.csv:2: a NUL byte (byte offset 8); CSV data must be text");
    const char rows[] = "1,2,0\n3.5,-4,2\n";
    spec = csv_spec(write_gz("rows.csv.gz", rows, strlen(rows)));
    if (rt_load_csv(&d, &m, &spec, &err) != RT_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(d.n, 2);
    assert_true(((float *)d.data[0])[2] == 3.5f && ((float *)d.data[0])[3] == -4.0f);
    assert_int_equal(((int32_t *)d.data[1])[1], 2);
    rt_dataset_free(&d);
    expect_csv_error(4, write_tmp("cut.csv.gz", "\x1f\x8b\x08\x00", 4),
                     "cut.csv.gz: the gzip stream is truncated");
}

/* ---- .npy ----------------------------------------------------------------- */

static void expect_npy_error(int elem_size, const char *x, const char *y, const char *want) {
    RtModel m = model_of("xy", elem_size, xy_inputs);
    RtNpyFile files[] = {{"x", x}, {"y", y}};
    RtDataset d;
    RtError err = {""};
    assert_int_equal(rt_load_npy(&d, &m, 2, files, &err), RT_FAIL);
    assert_contains(err.msg, want);
    assert_empty(&d);
}

static const char *labels_i4(const char *name, int32_t a, int32_t b, int32_t c) {
    int32_t y[3] = {a, b, c};
    return write_npy(name, host_little() ? "<i4" : ">i4", 3, 0, y, sizeof y);
}

/* NaN and infinities through every float path: float32 (the blocked scan),
 * float64 into float32 and float64 models, float64 in the other byte order
 * (element by element); named by row, element and byte offset (the header
 * is 128 bytes). */
static void test_npy_nonfinite_floats_on_every_dtype_path(void **state) {
    (void)state;
    const char *y = labels_i4("y.npy", 0, 1, 2);
    float f[6] = {1, 2, 3, 4, 5, 6};
    f[3] = -INFINITY;
    const char *fx = write_npy("f4.npy", host_little() ? "<f4" : ">f4", 3, 2, f, sizeof f);
    expect_npy_error(4, fx, y, "f4.npy: row 1, element 1 (byte offset 140): -inf; float data "
                               "must be finite");
    expect_npy_error(8, fx, y, "f4.npy: row 1, element 1 (byte offset 140): -inf");
    double g[6] = {1, 2, 3, 4, 5, 6};
    g[4] = NAN;
    const char *gx = write_npy("f8.npy", host_little() ? "<f8" : ">f8", 3, 2, g, sizeof g);
    expect_npy_error(4, gx, y, "f8.npy: row 2, element 0 (byte offset 160): nan");
    expect_npy_error(8, gx, y, "f8.npy: row 2, element 0 (byte offset 160): nan");
    double h[6] = {1, 2, 3, 4, 5, INFINITY};
    for (int i = 0; i < 6; i++)
        swap8(&h[i]);
    const char *hx = write_npy("swapped.npy", host_little() ? ">f8" : "<f8", 3, 2, h, sizeof h);
    expect_npy_error(4, hx, y, "swapped.npy: row 2, element 1 (byte offset 168): inf");
    expect_npy_error(8, hx, y, "swapped.npy: row 2, element 1 (byte offset 168): inf");
    /* Beyond float32: an error for a float32 model only. */
    double big[6] = {1, 2, -1e300, 4, 5, 6};
    const char *bx = write_npy("big.npy", host_little() ? "<f8" : ">f8", 3, 2, big, sizeof big);
    expect_npy_error(4, bx, y, "big.npy: row 1, element 0 (byte offset 144): -1e+300 is too large "
                               "for float32");
    RtModel m = model_of("xy", 8, xy_inputs);
    RtNpyFile files[] = {{"x", bx}, {"y", y}};
    RtDataset d;
    RtError err = {""};
    if (rt_load_npy(&d, &m, 2, files, &err) != RT_OK)
        fail_msg("%s", err.msg);
    assert_true(((double *)d.data[0])[2] == -1e300);
    rt_dataset_free(&d);
}

/* Labels out of [0, 3) in every int dtype path: negative, the class count
 * itself, int64 beyond int32, uint8, int8, big-endian int16; named by row. */
static void test_npy_labels_out_of_range_in_every_int_dtype(void **state) {
    (void)state;
    float x[6] = {1, 2, 3, 4, 5, 6};
    const char *xs = write_npy("x.npy", host_little() ? "<f4" : ">f4", 3, 2, x, sizeof x);
    expect_npy_error(4, xs, labels_i4("neg.npy", 0, -1, 2),
                     "neg.npy: row 1, element 0 (byte offset 132): value -1 is out of range for "
                     "input 'y', which takes 0 to 2");
    expect_npy_error(4, xs, labels_i4("three.npy", 0, 1, 3),
                     "three.npy: row 2, element 0 (byte offset 136): value 3 is out of range");
    int64_t y8[3] = {0, (int64_t)1 << 40, 1};
    expect_npy_error(4, xs, write_npy("i8.npy", host_little() ? "<i8" : ">i8", 3, 0, y8, 24),
                     "i8.npy: row 1, element 0 (byte offset 136): value 1099511627776 is out of "
                     "range");
    uint8_t u1[3] = {0, 1, 200};
    expect_npy_error(4, xs, write_npy("u1.npy", "|u1", 3, 0, u1, 3),
                     "u1.npy: row 2, element 0 (byte offset 130): value 200 is out of range");
    int8_t i1[3] = {-128, 1, 2};
    expect_npy_error(4, xs, write_npy("i1.npy", "|i1", 3, 0, i1, 3),
                     "i1.npy: row 0, element 0 (byte offset 128): value -128 is out of range");
    unsigned char i2[6] = {0, 0, 0, 1, 0, 3}; /* big-endian 0, 1, 3 */
    expect_npy_error(4, xs, write_npy("i2.npy", ">i2", 3, 0, i2, 6),
                     "i2.npy: row 2, element 0 (byte offset 132): value 3 is out of range");
    float yf[3] = {0, 1, 2.5f};
    expect_npy_error(4, xs, write_npy("yf.npy", "<f4", 3, 0, yf, 12),
                     "yf.npy: dtype <f4 (float32) cannot feed the int input 'y'");
}

/* No bytes, a gzip stream of nothing, a header with no rows, and image and
 * label arrays of different lengths. */
static void test_npy_empty_files_and_row_counts_that_differ(void **state) {
    (void)state;
    const char *y = labels_i4("y.npy", 0, 1, 2);
    expect_npy_error(4, write_tmp("zero.npy", "", 0), y, "zero.npy: the file is empty");
    expect_npy_error(4, write_gz("nothing.npy.gz", "", 0), y,
                     "nothing.npy.gz: the file is empty (after gzip decompression)");
    expect_npy_error(4, write_npy("norows.npy", "<f4", 0, 2, "", 0), y,
                     "norows.npy: the array has no rows");
    float x[8] = {0};
    const char *x4 = write_npy("x4.npy", "<f4", 4, 2, x, sizeof x);
    expect_npy_error(4, x4, y, "y.npy has 3; every file needs the same row count");
    int32_t y2[2] = {0, 1};
    expect_npy_error(4, write_npy("x3.npy", "<f4", 3, 2, x, 24),
                     write_npy("y2.npy", host_little() ? "<i4" : ">i4", 2, 0, y2, 8),
                     "y2.npy has 2; every file needs the same row count");
}

/* ---- IDX ------------------------------------------------------------------ */

/* An IDX file: magic 0x0000080<ndims>, the dims, then n bytes. */
static const char *write_idx(const char *name, int ndims, const uint32_t *dims,
                             const uint8_t *bytes, size_t n, bool gz) {
    unsigned char buf[256];
    size_t k = 0;
    buf[k++] = 0;
    buf[k++] = 0;
    buf[k++] = 8;
    buf[k++] = (unsigned char)ndims;
    for (int i = 0; i < ndims; i++)
        for (int s = 24; s >= 0; s -= 8)
            buf[k++] = (unsigned char)(dims[i] >> s);
    assert_true(k + n <= sizeof buf);
    memcpy(buf + k, bytes, n);
    return gz ? write_gz(name, buf, k + n) : write_tmp(name, buf, k + n);
}

static void expect_idx_error(int elem_size, const char *im, const char *lb, double scale,
                             const char *want) {
    RtModel m = model_of("img", elem_size, img_inputs);
    RtDataset d;
    RtError err = {""};
    assert_int_equal(rt_load_idx(&d, &m, im, lb, scale, &err), RT_FAIL);
    assert_contains(err.msg, want);
    assert_empty(&d);
}

/* Empty images or labels (no bytes, a gzip stream of nothing, a header of
 * zero items), more labels than images, a label the model has no class for,
 * and a pixel scale that overflows the float type. */
static void test_idx_empty_files_counts_labels_and_scale(void **state) {
    (void)state;
    const uint32_t im3[] = {3, 2, 2}, lb3[] = {3}, lb4[] = {4}, im0[] = {0, 2, 2};
    const uint8_t px[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255}, ok[4] = {0, 1, 2, 0};
    const char *im = write_idx("im", 3, im3, px, 12, false);
    const char *lb = write_idx("lb", 1, lb3, ok, 3, false);
    expect_idx_error(4, write_tmp("zero", "", 0), lb, 1, "zero: the file is empty");
    expect_idx_error(4, im, write_gz("nothing.gz", "", 0), 1,
                     "nothing.gz: the file is empty (after gzip decompression)");
    expect_idx_error(4, write_idx("none", 3, im0, px, 0, true), lb, 1,
                     "none: dimension 0 of the IDX header is 0: the file holds no items");
    expect_idx_error(4, im, write_idx("lb4", 1, lb4, ok, 4, false), 1,
                     "im has 3 images, but ");
    const uint8_t three[3] = {0, 3, 1};
    expect_idx_error(4, im, write_idx("lb-three", 1, lb3, three, 3, true), 1,
                     "lb-three: label 1 (byte offset 9): value 3 is out of range for input 'y', "
                     "which takes 0 to 2");
    expect_idx_error(4, im, lb, 1e37, "im: the pixel scale 1e+37 makes pixel 255 2.55e+39, "
                                      "too large for float32");
    expect_idx_error(8, im, lb, 1e307, "too large for float64");
    /* A scale float32 holds loads, to the value. */
    RtModel m = model_of("img", 4, img_inputs);
    RtDataset d;
    RtError err = {""};
    if (rt_load_idx(&d, &m, im, lb, 1e36, &err) != RT_OK)
        fail_msg("%s", err.msg);
    assert_true(((float *)d.data[0])[11] == (float)(255 * 1e36));
    rt_dataset_free(&d);
}

/* ---- text ----------------------------------------------------------------- */

static void test_text_empty_files(void **state) {
    (void)state;
    RtModel m = model_of("lm", 4, lm_inputs);
    RtDataset d;
    RtVocab v;
    RtError err = {""};
    assert_int_equal(rt_load_text(&d, &m, write_tmp("zero.txt", "", 0), 2, NULL, &v, &err),
                     RT_FAIL);
    assert_contains(err.msg, "zero.txt: the file is empty");
    assert_empty(&d);
    assert_int_equal(rt_load_text(&d, &m, write_gz("nothing.txt.gz", "", 0), 2, NULL, &v, &err),
                     RT_FAIL);
    assert_contains(err.msg, "nothing.txt.gz: the file is empty (after gzip decompression)");
    assert_int_equal(rt_load_text(&d, &m, write_text("ab.txt", "ab"), 2, NULL, &v, &err),
                     RT_FAIL);
    assert_contains(err.msg, "ab.txt: the text has 2 characters, but a context of 2 needs at "
                             "least 3");
    assert_empty(&d);
}

static int setup(void **state) {
    (void)state;
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_every_nonfinite_spelling_names_line_and_column),
        cmocka_unit_test(test_csv_value_beyond_float32_is_an_error_for_float32_only),
        cmocka_unit_test(test_csv_labels_must_be_whole_classes_of_the_model),
        cmocka_unit_test(test_csv_rows_with_the_wrong_number_of_columns),
        cmocka_unit_test(test_csv_empty_gzip_and_binary_files),
        cmocka_unit_test(test_npy_nonfinite_floats_on_every_dtype_path),
        cmocka_unit_test(test_npy_labels_out_of_range_in_every_int_dtype),
        cmocka_unit_test(test_npy_empty_files_and_row_counts_that_differ),
        cmocka_unit_test(test_idx_empty_files_counts_labels_and_scale),
        cmocka_unit_test(test_text_empty_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
