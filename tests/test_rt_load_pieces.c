/* test_rt_load_pieces.c: the loaders read files in pieces (RtReader) and
 * never hold a file whole. Files larger than a piece, written here: the
 * .npy fast paths (float32, float64, int32, int64, uint8 in this host's
 * byte order) give exactly what the element-by-element path gives for the
 * same values stored big-endian; a bad value in a later piece is named by
 * row, element and byte offset; gzip (several members, zero padding) gives
 * the same data as the plain file; and a file with two faults reports the
 * one gradc reports when it reads every file whole first (stream, then
 * length, then values). Runs in tests/. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "runtime/rt_internal.h"

#define assert_contains(hay, needle)                                                        \
    do {                                                                                    \
        if (!strstr((hay), (needle)))                                                       \
            fail_msg("expected \"%s\" in \"%s\"", (needle), (hay));                         \
    } while (0)

static char tmpdir[] = "/tmp/gradc_test_pieces_XXXXXX";

/* A path in tmpdir; each stays valid (and distinct) for the whole run. */
static const char *tmp_path(const char *name) {
    static char path[64][256];
    static int k;
    assert_true(k < 64);
    snprintf(path[k], sizeof path[k], "%s/%s", tmpdir, name);
    return path[k++];
}

/* ---- writing files --------------------------------------------------------- */

typedef struct Buf {
    unsigned char *p;
    size_t n, cap;
} Buf;

static void put(Buf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = 2 * (b->n + n) + 4096;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

/* A .npy 1.0 header for descr and shape (rows[, cols]), padded to a
 * multiple of 64 bytes as NumPy pads it: 128 bytes for every file here. */
static void npy_header(Buf *b, const char *descr, int64_t rows, int64_t cols) {
    char dict[256];
    if (cols > 0)
        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%lld, %lld), }",
                 descr, (long long)rows, (long long)cols);
    else
        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%lld,), }",
                 descr, (long long)rows);
    size_t len = strlen(dict), total = 10 + len + 1;
    size_t pad = (64 - total % 64) % 64;
    uint16_t hlen = (uint16_t)(len + pad + 1);
    put(b, "\x93NUMPY\x01\x00", 8);
    unsigned char hl[2] = {(unsigned char)(hlen & 0xff), (unsigned char)(hlen >> 8)};
    put(b, hl, 2);
    put(b, dict, len);
    for (size_t i = 0; i < pad; i++)
        put(b, " ", 1);
    put(b, "\n", 1);
}

/* n elements of size bytes each, in this host's order (x86: little-endian)
 * or swapped. */
static void put_elems(Buf *b, const void *src, size_t n, size_t size, bool swap) {
    const unsigned char *s = src;
    unsigned char e[8];
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < size; j++)
            e[j] = s[i * size + (swap ? size - 1 - j : j)];
        put(b, e, size);
    }
}

static const char *write_file(const char *name, const Buf *b) {
    const char *path = tmp_path(name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b->p, 1, b->n, f), b->n);
    fclose(f);
    return path;
}

/* b gzipped as two members split at byte `split`, then `zeros` zero bytes
 * (padding that gzip readers allow). */
static const char *write_gz(const char *name, const Buf *b, size_t split, int zeros) {
    const char *path = tmp_path(name);
    for (int member = 0; member < 2; member++) {
        gzFile g = gzopen(path, member == 0 ? "wb" : "ab");
        assert_non_null(g);
        size_t from = member == 0 ? 0 : split, to = member == 0 ? split : b->n;
        if (to > from)
            assert_int_equal(gzwrite(g, b->p + from, (unsigned)(to - from)), (int)(to - from));
        assert_int_equal(gzclose(g), Z_OK);
    }
    FILE *f = fopen(path, "ab");
    for (int i = 0; i < zeros; i++)
        fputc(0, f);
    fclose(f);
    return path;
}

/* The first half of the file at path, as another file. */
static const char *cut_file(const char *path, const char *name) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    Buf b = {malloc((size_t)n), (size_t)n / 2, (size_t)n};
    assert_int_equal(fread(b.p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    const char *out = write_file(name, &b);
    free(b.p);
    return out;
}

/* ---- models -------------------------------------------------------------------
 * vec: x [B, 3] float, y [B] int with limit 0 (unchecked), 5 or 7. */
static const RtTensor vec_inputs[3][2] = {
#define VEC(lim)                                                                            \
    {{.name = "x", .dtype = RT_FLOAT, .rank = 2, .dims = {RT_DIM_BATCH, 3}},                \
     {.name = "y", .dtype = RT_INT, .rank = 1, .dims = {RT_DIM_BATCH}, .offset = 64,        \
      .limit = (lim)}}
    VEC(0), VEC(5), VEC(7),
#undef VEC
};

static RtModel vec_model(int elem_size, int64_t limit) {
    int i = limit == 0 ? 0 : limit == 5 ? 1 : 2;
    assert_true(vec_inputs[i][1].limit == limit);
    return (RtModel){.name = "vec", .elem_size = elem_size, .max_batch = 4, .arena_bytes = 128,
                     .ninputs = 2, .inputs = vec_inputs[i]};
}

/* Rows: 3 x ROWS float32 elements are 1.2 MB, more than a piece (1 MiB);
 * odd, so that the vectorised blocks leave a tail. */
enum { ROWS = 100003 };

static RtStatus load(RtDataset *d, const RtModel *m, const char *x, const char *y, RtError *err) {
    RtNpyFile files[] = {{"x", x}, {"y", y}};
    memset(err->msg, 0, sizeof err->msg);
    return rt_load_npy(d, m, 2, files, err);
}

/* x: a deterministic mix of magnitudes and signs; y: k mod 7 (or as set). */
static double xval(int64_t k) {
    return (double)((k * 2654435761u) % 100003) / 97.0 - 500.0 + 1e-7 * (double)k;
}

/* ---- .npy fast paths ------------------------------------------------------------ */

static void test_npy_float_fast_paths_match_the_element_path(void **state) {
    (void)state;
    int64_t n = 3 * (int64_t)ROWS;
    float *f4 = malloc(sizeof *f4 * (size_t)n);
    double *f8 = malloc(sizeof *f8 * (size_t)n);
    int32_t *y = malloc(sizeof *y * ROWS);
    for (int64_t k = 0; k < n; k++) {
        f8[k] = xval(k);
        f4[k] = (float)f8[k];
    }
    for (int64_t r = 0; r < ROWS; r++)
        y[r] = (int32_t)(r % 7);
    Buf yb = {0};
    npy_header(&yb, "<i4", ROWS, 0);
    put_elems(&yb, y, ROWS, 4, false);
    const char *ypath = write_file("y.npy", &yb);
    const char *descr[2][2] = {{"<f4", ">f4"}, {"<f8", ">f8"}};
    for (int es = 4; es <= 8; es += 4) {
        RtModel m = vec_model(es, 7);
        for (int src = 0; src < 2; src++) {
            RtDataset d[2];
            for (int swap = 0; swap < 2; swap++) {
                Buf b = {0};
                npy_header(&b, descr[src][swap], ROWS, 3);
                put_elems(&b, src ? (const void *)f8 : (const void *)f4, (size_t)n, src ? 8 : 4,
                          swap);
                const char *path = write_file(swap ? "x_be.npy" : "x_le.npy", &b);
                free(b.p);
                RtError err;
                if (load(&d[swap], &m, path, ypath, &err) != RT_OK)
                    fail_msg("%s", err.msg);
                assert_int_equal(d[swap].n, ROWS);
            }
            /* The same bytes from both paths, and the values NumPy would give. */
            assert_memory_equal(d[0].data[0], d[1].data[0], (size_t)n * (size_t)es);
            assert_memory_equal(d[0].data[1], y, sizeof *y * ROWS);
            for (int64_t k = 0; k < n; k += 4999) {
                double want = src ? f8[k] : (double)f4[k];
                if (es == 4)
                    assert_true(((float *)d[0].data[0])[k] == (float)want);
                else
                    assert_true(((double *)d[0].data[0])[k] == want);
            }
            rt_dataset_free(&d[0]);
            rt_dataset_free(&d[1]);
        }
    }
    free(yb.p);
    free(f4);
    free(f8);
    free(y);
}

static void test_npy_int_fast_paths_match_the_element_path(void **state) {
    (void)state;
    /* Labels as int32, int64 and uint8, 3 x ROWS of them feeding a [B, 3]
     * int input: more than a piece as int32 and int64. */
    static RtTensor in[1];
    in[0] = (RtTensor){.name = "ids", .dtype = RT_INT, .rank = 2, .dims = {RT_DIM_BATCH, 3},
                       .limit = 250};
    RtModel m = {.name = "ids", .elem_size = 4, .max_batch = 4, .arena_bytes = 64,
                 .ninputs = 1, .inputs = in};
    int64_t n = 3 * (int64_t)ROWS;
    int64_t *v = malloc(sizeof *v * (size_t)n);
    int32_t *v4 = malloc(sizeof *v4 * (size_t)n);
    uint8_t *v1 = malloc((size_t)n);
    for (int64_t k = 0; k < n; k++) {
        v[k] = (k * 37) % 250;
        v4[k] = (int32_t)v[k];
        v1[k] = (uint8_t)v[k];
    }
    const char *le[] = {"<i4", "<i8", "|u1"}, *be[] = {">i4", ">i8", NULL};
    const void *src[] = {v4, v, v1};
    size_t size[] = {4, 8, 1};
    for (int t = 0; t < 3; t++) {
        RtDataset d[2];
        for (int swap = 0; swap < (be[t] ? 2 : 1); swap++) {
            Buf b = {0};
            npy_header(&b, swap ? be[t] : le[t], ROWS, 3);
            put_elems(&b, src[t], (size_t)n, size[t], swap);
            RtNpyFile files[] = {{NULL, write_file("ids.npy", &b)}};
            free(b.p);
            RtError err;
            if (rt_load_npy(&d[swap], &m, 1, files, &err) != RT_OK)
                fail_msg("%s: %s", le[t], err.msg);
            assert_memory_equal(d[swap].data[0], v4, sizeof *v4 * (size_t)n);
        }
        rt_dataset_free(&d[0]);
        if (be[t])
            rt_dataset_free(&d[1]);
    }
    free(v);
    free(v4);
    free(v1);
}

/* A .npy of ROWS x 3 elements of descr (size bytes each, from src) with a
 * y file; the error loading it, which must fail. */
static void expect_x_error(const RtModel *m, const char *descr, const void *src, size_t size,
                           const char *want) {
    Buf b = {0}, yb = {0};
    npy_header(&b, descr, ROWS, 3);
    put_elems(&b, src, 3 * (size_t)ROWS, size, false);
    int32_t *y = calloc(ROWS, sizeof *y);
    npy_header(&yb, "<i4", ROWS, 0);
    put_elems(&yb, y, ROWS, 4, false);
    RtDataset d;
    RtError err;
    assert_int_equal(load(&d, m, write_file("bad_x.npy", &b), write_file("y0.npy", &yb), &err),
                     RT_FAIL);
    assert_contains(err.msg, want);
    assert_null(d.data);
    free(b.p);
    free(yb.p);
    free(y);
}

static void test_npy_bad_value_in_a_later_piece_is_named_exactly(void **state) {
    (void)state;
    int64_t n = 3 * (int64_t)ROWS;
    float *f4 = calloc((size_t)n, sizeof *f4);
    double *f8 = calloc((size_t)n, sizeof *f8);
    /* Element 300001 = row 100000, element 1; after the 128-byte header. */
    f4[300001] = -INFINITY;
    f8[300001] = NAN;
    RtModel m = vec_model(4, 0);
    expect_x_error(&m, "<f4", f4, 4, "bad_x.npy: row 100000, element 1 (byte offset 1200132): "
                                     "-inf; float data must be finite");
    expect_x_error(&m, "<f8", f8, 8, "bad_x.npy: row 100000, element 1 (byte offset 2400136): "
                                     "nan; float data must be finite");
    f4[300001] = 0;
    f4[5] = NAN; /* the first of two */
    f4[299999] = INFINITY;
    expect_x_error(&m, "<f4", f4, 4, "row 1, element 2 (byte offset 148): nan");
    free(f4);
    free(f8);

    /* int64 labels: out of the limit, then out of int32 without a limit. */
    int64_t *y = calloc(ROWS, sizeof *y);
    y[ROWS - 1] = 7;
    RtModel lim = vec_model(4, 7);
    Buf xb = {0}, yb = {0};
    float *x = calloc((size_t)n, sizeof *x);
    npy_header(&xb, "<f4", ROWS, 3);
    put_elems(&xb, x, (size_t)n, 4, false);
    const char *xpath = write_file("x0.npy", &xb);
    npy_header(&yb, "<i8", ROWS, 0);
    put_elems(&yb, y, ROWS, 8, false);
    RtDataset d;
    RtError err;
    assert_int_equal(load(&d, &lim, xpath, write_file("y_lim.npy", &yb), &err), RT_FAIL);
    assert_contains(err.msg, "y_lim.npy: row 100002, element 0 (byte offset 800144): value 7 "
                             "is out of range for input 'y', which takes 0 to 6");
    free(yb.p);
    yb = (Buf){0};
    y[ROWS - 1] = 0;
    y[70000] = (int64_t)1 << 31;
    npy_header(&yb, "<i8", ROWS, 0);
    put_elems(&yb, y, ROWS, 8, false);
    RtModel open = vec_model(4, 0);
    assert_int_equal(load(&d, &open, xpath, write_file("y_wide.npy", &yb), &err), RT_FAIL);
    assert_contains(err.msg, "y_wide.npy: row 70000, element 0 (byte offset 560128): value "
                             "2147483648 does not fit the int32 input 'y'");
    y[70000] = -1;
    free(yb.p);
    yb = (Buf){0};
    npy_header(&yb, "<i8", ROWS, 0);
    put_elems(&yb, y, ROWS, 8, false);
    const char *neg = write_file("y_neg.npy", &yb);
    RtDataset ok;
    if (load(&ok, &open, xpath, neg, &err) != RT_OK) /* -1 fits int32 and there is no limit */
        fail_msg("%s", err.msg);
    assert_int_equal(((int32_t *)ok.data[1])[70000], -1);
    rt_dataset_free(&ok);
    assert_int_equal(load(&d, &lim, xpath, neg, &err), RT_FAIL);
    assert_contains(err.msg, "row 70000, element 0 (byte offset 560128): value -1 is out of "
                             "range");
    free(yb.p);
    free(xb.p);
    free(x);
    free(y);
}

/* ---- gzip ------------------------------------------------------------------------ */

static void test_gzip_npy_in_members_gives_the_plain_data(void **state) {
    (void)state;
    int64_t n = 3 * (int64_t)ROWS;
    float *x = malloc(sizeof *x * (size_t)n);
    int32_t *y = malloc(sizeof *y * ROWS);
    for (int64_t k = 0; k < n; k++)
        x[k] = (float)xval(k);
    for (int64_t r = 0; r < ROWS; r++)
        y[r] = (int32_t)(r % 5);
    Buf xb = {0}, yb = {0};
    npy_header(&xb, "<f4", ROWS, 3);
    put_elems(&xb, x, (size_t)n, 4, false);
    npy_header(&yb, "<i4", ROWS, 0);
    put_elems(&yb, y, ROWS, 4, false);
    RtModel m = vec_model(4, 5);
    RtDataset d;
    RtError err;
    /* The member boundary inside the header, and inside the data. */
    const size_t splits[] = {30, 700001};
    for (int s = 0; s < 2; s++) {
        if (load(&d, &m, write_gz("x.npy.gz", &xb, splits[s], 3 * s),
                 write_gz("y.npy.gz", &yb, splits[s] / 2, 0), &err) != RT_OK)
            fail_msg("%s", err.msg);
        assert_int_equal(d.n, ROWS);
        assert_memory_equal(d.data[0], x, sizeof *x * (size_t)n);
        assert_memory_equal(d.data[1], y, sizeof *y * ROWS);
        rt_dataset_free(&d);
    }
    /* The same reader under rt_read_data_file: the whole file. */
    unsigned char *whole;
    size_t len;
    bool gz;
    assert_int_equal(rt_read_data_file(write_gz("x2.npy.gz", &xb, 12345, 5), &whole, &len, &gz,
                                       &err),
                     RT_OK);
    assert_true(gz);
    assert_int_equal(len, xb.n);
    assert_memory_equal(whole, xb.p, xb.n);
    assert_int_equal(whole[len], 0);
    free(whole);
    assert_int_equal(rt_read_data_file(write_file("x2.npy", &xb), &whole, &len, &gz, &err),
                     RT_OK);
    assert_false(gz);
    assert_int_equal(len, xb.n);
    assert_memory_equal(whole, xb.p, xb.n);
    free(whole);
    free(xb.p);
    free(yb.p);
    free(x);
    free(y);
}

static void test_gzip_npy_errors_come_in_the_order_of_reading_whole_files(void **state) {
    (void)state;
    int64_t n = 3 * (int64_t)ROWS;
    float *x = calloc((size_t)n + 1, sizeof *x); /* one more for the long file */
    int32_t *y = calloc(ROWS, sizeof *y);
    Buf xb = {0}, yb = {0};
    npy_header(&yb, "<i4", ROWS, 0);
    put_elems(&yb, y, ROWS, 4, false);
    const char *ypath = write_file("y.npy", &yb);
    RtModel m = vec_model(4, 0);
    RtDataset d;
    RtError err;

    /* A short array: its length, found only at the end of the stream. */
    npy_header(&xb, "<f4", ROWS, 3);
    put_elems(&xb, x, (size_t)n - 1, 4, false);
    assert_int_equal(load(&d, &m, write_gz("short.npy.gz", &xb, 1000, 0), ypath, &err), RT_FAIL);
    assert_contains(err.msg, "short.npy.gz: the file is truncated: shape (100003, 3) of <f4 "
                             "needs 1200036 bytes of data, 1200032 follow the header");
    assert_null(d.data);

    /* A NaN and 4 extra bytes: the length wins, as if the file were read whole. */
    x[7] = NAN;
    free(xb.p);
    xb = (Buf){0};
    npy_header(&xb, "<f4", ROWS, 3);
    put_elems(&xb, x, (size_t)n + 1, 4, false); /* one float too many */
    const char *longer = write_gz("long.npy.gz", &xb, 600000, 0);
    assert_int_equal(load(&d, &m, longer, ypath, &err), RT_FAIL);
    assert_contains(err.msg, "long.npy.gz: 4 extra bytes after the 1200036 bytes of data the "
                             "header promises");

    /* The gzip stream cut in the data: the stream's error. */
    const char *cut = cut_file(longer, "cut.npy.gz");
    assert_int_equal(load(&d, &m, cut, ypath, &err), RT_FAIL);
    assert_contains(err.msg, "cut.npy.gz: the gzip stream is truncated (it ends after ");
    /* ... in the data, after the header: the file opens, the cut is met later. */
    assert_true(strtoll(strstr(err.msg, "ends after ") + 11, NULL, 10) > 128);

    /* A file after it that fails at once does not hide it: gradc reads the
     * files in order, so the first file's fault is the one reported. */
    RtNpyFile files[] = {{"x", cut}, {"y", "data/tiny.txt"}};
    assert_int_equal(rt_load_npy(&d, &m, 2, files, &err), RT_FAIL);
    assert_contains(err.msg, "cut.npy.gz: the gzip stream is truncated");
    files[1].path = "data/no-such-file.npy";
    assert_int_equal(rt_load_npy(&d, &m, 2, files, &err), RT_FAIL);
    assert_contains(err.msg, "cut.npy.gz: the gzip stream is truncated");
    /* Nor does a mismatch found after both are open (row counts). */
    free(yb.p);
    yb = (Buf){0};
    npy_header(&yb, "<i4", ROWS - 1, 0);
    put_elems(&yb, y, ROWS - 1, 4, false);
    files[1].path = write_file("y_short.npy", &yb);
    assert_int_equal(rt_load_npy(&d, &m, 2, files, &err), RT_FAIL);
    assert_contains(err.msg, "cut.npy.gz: the gzip stream is truncated");
    files[0].path = longer;
    assert_int_equal(rt_load_npy(&d, &m, 2, files, &err), RT_FAIL);
    assert_contains(err.msg, "long.npy.gz: 4 extra bytes");
    assert_null(d.data);
    free(xb.p);
    free(yb.p);
    free(x);
    free(y);
}

/* ---- IDX ------------------------------------------------------------------------- */

static void put_be32(Buf *b, uint32_t v) {
    unsigned char e[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    put(b, e, 4);
}

static void test_idx_images_in_pieces_plain_and_gzip(void **state) {
    (void)state;
    /* 401 images of 28 x 28: 314,384 pixels, more than a piece (256 KiB). */
    enum { N = 401, PX = 784 };
    Buf im = {0}, lb = {0};
    put_be32(&im, 0x803);
    put_be32(&im, N);
    put_be32(&im, 28);
    put_be32(&im, 28);
    for (int64_t k = 0; k < (int64_t)N * PX; k++) {
        unsigned char px = (unsigned char)((k * 131) % 256);
        put(&im, &px, 1);
    }
    put_be32(&lb, 0x801);
    put_be32(&lb, N);
    for (int i = 0; i < N; i++) {
        unsigned char l = (unsigned char)(i % 10);
        put(&lb, &l, 1);
    }
    static RtTensor in[2];
    in[0] = (RtTensor){.name = "x", .dtype = RT_FLOAT, .rank = 2, .dims = {RT_DIM_BATCH, PX}};
    in[1] = (RtTensor){.name = "y", .dtype = RT_INT, .rank = 1, .dims = {RT_DIM_BATCH},
                       .offset = 4096, .limit = 10};
    for (int es = 4; es <= 8; es += 4) {
        RtModel m = {.name = "mnist", .elem_size = es, .max_batch = 1, .arena_bytes = 8192,
                     .ninputs = 2, .inputs = in};
        RtDataset plain, gz;
        RtError err;
        if (rt_load_idx(&plain, &m, write_file("im", &im), write_file("lb", &lb), 1.0 / 255,
                        &err) != RT_OK)
            fail_msg("%s", err.msg);
        if (rt_load_idx(&gz, &m, write_gz("im.gz", &im, 100000, 2), write_gz("lb.gz", &lb, 5, 0),
                        1.0 / 255, &err) != RT_OK)
            fail_msg("%s", err.msg);
        assert_memory_equal(plain.data[0], gz.data[0], (size_t)N * PX * (size_t)es);
        assert_memory_equal(plain.data[1], gz.data[1], N * sizeof(int32_t));
        for (int64_t k = 0; k < (int64_t)N * PX; k += 1009) {
            double want = (double)((k * 131) % 256) * (1.0 / 255);
            assert_true(rt_load_float(plain.data[0], es, k) == (es == 4 ? (float)want : want));
        }
        assert_int_equal(((int32_t *)plain.data[1])[N - 1], (N - 1) % 10);
        rt_dataset_free(&plain);
        rt_dataset_free(&gz);
    }
    /* Gzipped images with a byte too many and a label out of range: the
     * images' length comes first, then the labels' values. */
    put(&im, "x", 1);
    lb.p[8 + 300] = 10;
    RtModel m = {.name = "mnist", .elem_size = 4, .max_batch = 1, .arena_bytes = 8192,
                 .ninputs = 2, .inputs = in};
    RtDataset d;
    RtError err;
    const char *lbad = write_file("lb_bad", &lb);
    assert_int_equal(rt_load_idx(&d, &m, write_gz("im_long.gz", &im, 7, 0), lbad, 1, &err),
                     RT_FAIL);
    assert_contains(err.msg, "im_long.gz: 1 extra bytes after the 314384 bytes of images data");
    im.n--;
    assert_int_equal(rt_load_idx(&d, &m, write_gz("im_ok.gz", &im, 7, 0), lbad, 1, &err),
                     RT_FAIL);
    assert_contains(err.msg, "lb_bad: label 300 (byte offset 308): value 10 is out of range");
    assert_null(d.data);
    free(im.p);
    free(lb.p);
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
        cmocka_unit_test(test_npy_float_fast_paths_match_the_element_path),
        cmocka_unit_test(test_npy_int_fast_paths_match_the_element_path),
        cmocka_unit_test(test_npy_bad_value_in_a_later_piece_is_named_exactly),
        cmocka_unit_test(test_gzip_npy_in_members_gives_the_plain_data),
        cmocka_unit_test(test_gzip_npy_errors_come_in_the_order_of_reading_whole_files),
        cmocka_unit_test(test_idx_images_in_pieces_plain_and_gzip),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
