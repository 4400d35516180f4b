/* test_rt_data.c: the IDX, .npy and text loaders and the vocabulary: exact
 * values from small fixtures (tests/data, made by make_fixtures.py: the .npy
 * files by NumPy itself), gzip undone transparently, and every error naming
 * the file and what is wrong, with the dataset left empty. Damaged variants
 * are written to a temporary directory. Runs in tests/. */
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

#include "runtime/rt_internal.h"

#define assert_contains(hay, needle)                                                        \
    do {                                                                                    \
        if (!strstr((hay), (needle)))                                                       \
            fail_msg("expected \"%s\" in \"%s\"", (needle), (hay));                         \
    } while (0)

static char tmpdir[] = "/tmp/gradc_test_data_XXXXXX";

static const char *tmp_path(const char *name) {
    static char path[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/%s", tmpdir, name);
    return path[k];
}

static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
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

/* The first n bytes (or all but the last -n) of a fixture, as a temporary file. */
static const char *cut_copy(const char *fixture, const char *name, long n) {
    size_t len;
    unsigned char *b = slurp(fixture, &len);
    size_t keep = n >= 0 ? (size_t)n : len - (size_t)-n;
    const char *path = write_tmp(name, b, keep);
    free(b);
    return path;
}

static void assert_empty(const RtDataset *d) {
    assert_int_equal(d->n, 0);
    assert_null(d->data);
    assert_null(d->row_elems);
}

/* ---- models (only their inputs matter to the loaders) -----------------------
 * img:  x [B, 3, 4] float @0, y [B] int @1024, limit 4
 * flat: x [B, 12] float @0,   y [B] int @1024, no limit
 * xy:   x [B, 2] float @0,    y [B] int @1024, limit 3
 * lm:   ctx [B, 3] int @0,    next [B] int @1024 */
static const RtTensor img_inputs[] = {
    {.name = "x", .dtype = RT_FLOAT, .rank = 3, .dims = {RT_DIM_BATCH, 3, 4}, .offset = 0},
    {.name = "y", .dtype = RT_INT, .rank = 1, .dims = {RT_DIM_BATCH}, .offset = 1024, .limit = 4},
    {.name = "z", .dtype = RT_FLOAT, .rank = 2, .dims = {RT_DIM_BATCH, 1}, .offset = 1536},
};
static const RtTensor flat_inputs[] = {
    {.name = "x", .dtype = RT_FLOAT, .rank = 2, .dims = {RT_DIM_BATCH, 12}, .offset = 0},
    {.name = "y", .dtype = RT_INT, .rank = 1, .dims = {RT_DIM_BATCH}, .offset = 1024},
};
static const RtTensor xy_inputs[] = {
    {.name = "x", .dtype = RT_FLOAT, .rank = 2, .dims = {RT_DIM_BATCH, 2}, .offset = 0},
    {.name = "y", .dtype = RT_INT, .rank = 1, .dims = {RT_DIM_BATCH}, .offset = 1024, .limit = 3},
};
static const RtTensor lm_inputs[] = {
    {.name = "ctx", .dtype = RT_INT, .rank = 2, .dims = {RT_DIM_BATCH, 3}, .offset = 0},
    {.name = "next", .dtype = RT_INT, .rank = 1, .dims = {RT_DIM_BATCH}, .offset = 1024},
};

static RtModel model_of(const char *name, int elem_size, int ninputs, const RtTensor *inputs) {
    RtModel m = {.name = name, .elem_size = elem_size, .max_batch = 8, .arena_bytes = 2048,
                 .ninputs = ninputs, .inputs = inputs};
    return m;
}

static double fget(const RtModel *m, const RtDataset *d, int i, int64_t k) {
    return rt_load_float(d->data[i], m->elem_size, k);
}

static int32_t iget(const RtDataset *d, int i, int64_t k) {
    return ((const int32_t *)d->data[i])[k];
}

/* ---- IDX ------------------------------------------------------------------- */

static void test_idx_reads_images_and_labels_in_both_float_types(void **state) {
    (void)state;
    for (int es = 4; es <= 8; es += 4) {
        RtModel m = model_of("img", es, 2, img_inputs);
        RtDataset d;
        RtError err = {""};
        if (rt_load_idx(&d, &m, "data/five-images-idx3-ubyte", "data/five-labels-idx1-ubyte",
                        1.0 / 255, &err) != RT_OK)
            fail_msg("%s", err.msg);
        assert_int_equal(d.n, 5);
        assert_int_equal(d.row_elems[0], 12);
        assert_int_equal(d.row_elems[1], 1);
        for (int i = 0; i < 5; i++)
            for (int k = 0; k < 12; k++) {
                double want = (double)(50 * i + k) * (1.0 / 255);
                assert_float_equal(fget(&m, &d, 0, i * 12 + k), es == 4 ? (float)want : want, 0);
            }
        const int32_t labels[] = {3, 0, 2, 1, 2};
        for (int i = 0; i < 5; i++)
            assert_int_equal(iget(&d, 1, i), labels[i]);
        rt_dataset_free(&d);
    }
}

static void test_idx_gzip_gives_the_same_data_as_raw(void **state) {
    (void)state;
    RtModel m = model_of("flat", 4, 2, flat_inputs);
    RtDataset a, b;
    RtError err = {""};
    assert_int_equal(rt_load_idx(&a, &m, "data/five-images-idx3-ubyte",
                                 "data/five-labels-idx1-ubyte", 2.0, &err), RT_OK);
    if (rt_load_idx(&b, &m, "data/five-images-idx3-ubyte.gz", "data/five-labels-idx1-ubyte.gz",
                    2.0, &err) != RT_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(b.n, 5);
    assert_memory_equal(a.data[0], b.data[0], 5 * 12 * sizeof(float));
    assert_memory_equal(a.data[1], b.data[1], 5 * sizeof(int32_t));
    assert_float_equal(fget(&m, &b, 0, 12 + 3), 2.0 * 53, 0);
    rt_dataset_free(&a);
    rt_dataset_free(&b);
}

static void test_idx_without_labels_loads_only_the_images(void **state) {
    (void)state;
    RtModel m = model_of("img", 4, 2, img_inputs);
    RtDataset d;
    RtError err = {""};
    assert_int_equal(rt_load_idx(&d, &m, "data/five-images-idx3-ubyte.gz", NULL, 1, &err), RT_OK);
    assert_int_equal(d.n, 5);
    assert_non_null(d.data[0]);
    assert_null(d.data[1]);
    assert_int_equal(d.row_elems[1], 1);
    assert_float_equal(fget(&m, &d, 0, 59), 4 * 50 + 11, 0);
    rt_dataset_free(&d);
}

static void expect_idx_error(const RtModel *m, const char *images, const char *labels,
                             const char *want) {
    RtDataset d;
    RtError err = {""};
    assert_int_equal(rt_load_idx(&d, m, images, labels, 1, &err), RT_FAIL);
    assert_contains(err.msg, want);
    assert_empty(&d);
}

static void test_idx_errors_name_the_file_and_the_problem(void **state) {
    (void)state;
    RtModel m = model_of("img", 4, 2, img_inputs);
    const char *im = "data/five-images-idx3-ubyte", *lb = "data/five-labels-idx1-ubyte";
    expect_idx_error(&m, lb, im, "data/five-labels-idx1-ubyte: expected IDX images (magic "
                                 "0x00000803), but this file holds unsigned-byte labels [n] "
                                 "(magic 0x00000801); are the images and labels swapped?");
    expect_idx_error(&m, "data/tiny.txt", lb, "data/tiny.txt: bad magic 0x68656c6c: expected "
                                              "0x00000803, IDX images");
    expect_idx_error(&m, "data/no-such-file", lb, "cannot open 'data/no-such-file': No such file");
    expect_idx_error(&m, im, "data/four-labels-idx1-ubyte",
                     "data/five-images-idx3-ubyte has 5 images, but "
                     "data/four-labels-idx1-ubyte has 4 labels");
    expect_idx_error(&m, "data/truncated-images-idx3-ubyte.gz", lb,
                     "data/truncated-images-idx3-ubyte.gz: the gzip stream is truncated");
    expect_idx_error(&m, cut_copy(im, "cut-images", 40), lb,
                     "cut-images: the file is truncated: the header promises 60 bytes of images "
                     "data, but 24 follow it");
    expect_idx_error(&m, cut_copy(im, "short", 10), lb, "the IDX header alone needs 16");
    size_t len;
    unsigned char *b = slurp(im, &len);
    b = realloc(b, len + 3);
    memset(b + len, 7, 3);
    expect_idx_error(&m, write_tmp("long-images", b, len + 3), lb,
                     "long-images: 3 extra bytes after the 60 bytes of images data");
    b[2] = 0x0D; /* float elements */
    expect_idx_error(&m, write_tmp("float-images", b, len), lb,
                     "IDX element type 0x0d is not supported");
    free(b);
}

static void test_idx_label_out_of_range_names_the_item(void **state) {
    (void)state;
    RtTensor in[2] = {img_inputs[0], img_inputs[1]};
    in[1].limit = 3;
    RtModel m = model_of("img", 4, 2, in);
    expect_idx_error(&m, "data/five-images-idx3-ubyte", "data/five-labels-idx1-ubyte",
                     "data/five-labels-idx1-ubyte: label 0 (byte offset 8): value 3 is out of "
                     "range for input 'y', which takes 0 to 2");
}

static void test_idx_needs_a_matching_image_input_and_exactly_two_inputs(void **state) {
    (void)state;
    RtModel three = model_of("img3", 4, 3, img_inputs);
    expect_idx_error(&three, "data/five-images-idx3-ubyte", "data/five-labels-idx1-ubyte",
                     "IDX data feeds two inputs, the images (float) and the labels (int), but "
                     "model 'img3' has 3: x [B, 3, 4] float, y [B] int, z [B, 1] float");
    RtModel xy = model_of("xy", 4, 2, xy_inputs);
    expect_idx_error(&xy, "data/five-images-idx3-ubyte", "data/five-labels-idx1-ubyte",
                     "the images are 3 x 4 (12 values each), but model 'xy' has no float input "
                     "with 12 values per row; its inputs: x [B, 2] float, y [B] int");
}

/* ---- .npy ------------------------------------------------------------------ */

static RtDataset load_npy_ok(const RtModel *m, int n, const RtNpyFile *files) {
    RtDataset d;
    RtError err = {""};
    if (rt_load_npy(&d, m, n, files, &err) != RT_OK)
        fail_msg("%s", err.msg);
    return d;
}

static const double npy_x[] = {0.5, 1.0, 2.0, -3.0, 4.25, 5.0};

static void test_npy_reads_dtypes_versions_and_byte_orders(void **state) {
    (void)state;
    const char *xs[] = {"data/x_f4.npy", "data/x_f8_v2.npy", "data/x_f4_be.npy"};
    for (int es = 4; es <= 8; es += 4)
        for (int f = 0; f < 3; f++) {
            RtModel m = model_of("xy", es, 2, xy_inputs);
            RtNpyFile files[] = {{"x", xs[f]}, {"y", "data/y_i8.npy"}};
            RtDataset d = load_npy_ok(&m, 2, files);
            assert_int_equal(d.n, 3);
            for (int k = 0; k < 6; k++)
                assert_float_equal(fget(&m, &d, 0, k), npy_x[k], 0);
            assert_int_equal(iget(&d, 1, 0), 0);
            assert_int_equal(iget(&d, 1, 1), 2);
            assert_int_equal(iget(&d, 1, 2), 1);
            rt_dataset_free(&d);
        }
}

static void test_npy_unnamed_files_find_the_input_they_fit(void **state) {
    (void)state;
    RtModel m = model_of("xy", 4, 2, xy_inputs);
    /* (3, 1, 2) uint8: 2 values per row, so only x; (3,) uint8: only y. */
    RtNpyFile files[] = {{NULL, "data/y_u1.npy"}, {NULL, "data/x_u1_3d.npy"}};
    RtDataset d = load_npy_ok(&m, 2, files);
    const double want[] = {1, 2, 3, 4, 5, 255};
    for (int k = 0; k < 6; k++)
        assert_float_equal(fget(&m, &d, 0, k), want[k], 0);
    assert_int_equal(iget(&d, 1, 0), 2);
    assert_int_equal(iget(&d, 1, 2), 0);
    rt_dataset_free(&d);
}

static void test_npy_need_mask_loads_only_the_needed_inputs(void **state) {
    (void)state;
    RtModel m = model_of("xy", 4, 2, xy_inputs);
    const bool need[] = {true, false};
    RtNpyFile files[] = {{NULL, "data/x_f4.npy"}};
    RtDataset d;
    RtError err = {""};
    if (rt_load_npy_inputs(&d, &m, need, 1, files, &err) != RT_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(d.n, 3);
    assert_null(d.data[1]);
    assert_float_equal(fget(&m, &d, 0, 3), -3.0, 0);
    rt_dataset_free(&d);
    assert_int_equal(rt_load_npy(&d, &m, 1, files, &err), RT_FAIL);
    assert_contains(err.msg, "no .npy file for input 'y' [B] of model 'xy'");
    assert_empty(&d);
}

static void expect_npy_error(const RtModel *m, int n, const RtNpyFile *files, const char *want) {
    RtDataset d;
    RtError err = {""};
    assert_int_equal(rt_load_npy(&d, m, n, files, &err), RT_FAIL);
    assert_contains(err.msg, want);
    assert_empty(&d);
}

static void test_npy_errors_name_the_file_and_the_problem(void **state) {
    (void)state;
    RtModel m = model_of("xy", 4, 2, xy_inputs);
    RtNpyFile f[2] = {{"x", "data/x_fortran.npy"}, {"y", "data/y_i8.npy"}};
    expect_npy_error(&m, 2, f, "data/x_fortran.npy: the array is in Fortran order");
    f[0].path = "data/x_nan.npy";
    expect_npy_error(&m, 2, f, "data/x_nan.npy: row 1, element 1 (byte offset 140): nan; float "
                               "data must be finite");
    f[0].path = "data/x_rows4.npy";
    expect_npy_error(&m, 2, f, "data/x_rows4.npy has 4 rows, but data/y_i8.npy has 3");
    f[0].path = "data/x_f4.npy";
    f[1].path = "data/y_f4.npy";
    expect_npy_error(&m, 2, f, "data/y_f4.npy: dtype <f4 (float32) cannot feed the int input "
                               "'y'");
    f[1].path = "data/y_big.npy";
    expect_npy_error(&m, 2, f, "data/y_big.npy: row 2, element 0 (byte offset 136): value 7 is "
                               "out of range for input 'y', which takes 0 to 2");
    f[1] = (RtNpyFile){"x", "data/y_i8.npy"};
    expect_npy_error(&m, 2, f, "input 'x' is given two files, data/x_f4.npy and data/y_i8.npy");
    f[1] = (RtNpyFile){"z", "data/y_i8.npy"};
    expect_npy_error(&m, 2, f, "data/y_i8.npy: model 'xy' has no input named 'z'");
    RtNpyFile one[] = {{"x", "data/y_i8.npy"}};
    const bool need_x[] = {true, false};
    RtDataset d;
    RtError err = {""};
    assert_int_equal(rt_load_npy_inputs(&d, &m, need_x, 1, one, &err), RT_FAIL);
    assert_contains(err.msg, "data/y_i8.npy: an array of shape (3,) has 1 values per row, but "
                             "input 'x' [B, 2] takes 2");
    RtNpyFile fits_none[] = {{NULL, "data/y_f4.npy"}, {NULL, "data/x_f4.npy"}};
    expect_npy_error(&m, 2, fits_none, "data/y_f4.npy: an array of shape (3,) and dtype <f4 fits "
                                       "no input of model 'xy'");
    RtNpyFile text[] = {{"x", "data/tiny.txt"}, {"y", "data/y_i8.npy"}};
    expect_npy_error(&m, 2, text, "data/tiny.txt: not a .npy file (bad magic");
    RtNpyFile cut[] = {{"x", cut_copy("data/x_f4.npy", "cut.npy", -1)}, {"y", "data/y_i8.npy"}};
    expect_npy_error(&m, 2, cut, "cut.npy: the file is truncated: shape (3, 2) of <f4 needs 24 "
                                 "bytes of data, 23 follow the header");
}

/* ---- text and the vocabulary ------------------------------------------------
 * tiny.txt is "hello world\nhold the door\n": 26 bytes, 10 distinct:
 * '\n' 0, ' ' 1, d 2, e 3, h 4, l 5, o 6, r 7, t 8, w 9. */

static const char tiny[] = "hello world\nhold the door\n";

static int tiny_id(char c) {
    return (int)(strchr("\n dehlortw", c) - "\n dehlortw");
}

static void test_text_rows_are_context_windows_and_next_characters(void **state) {
    (void)state;
    RtModel m = model_of("lm", 4, 2, lm_inputs);
    RtDataset d;
    RtVocab v;
    RtError err = {""};
    if (rt_load_text(&d, &m, "data/tiny.txt", 3, NULL, &v, &err) != RT_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(v.n, 10);
    assert_memory_equal(v.chars, "\n dehlortw", 10);
    assert_int_equal(d.n, 26 - 3);
    assert_int_equal(d.row_elems[0], 3);
    assert_int_equal(rt_row_stride(&d, 0), 1);
    assert_int_equal(rt_row_stride(&d, 1), 1);
    /* Through the same copy training uses: rows 5 and 0 into the arena. */
    RtSession s;
    assert_int_equal(rt_session_init(&s, &m, 0, &err), RT_OK);
    const int64_t rows[] = {5, 0};
    rt_dataset_gather(&s, &d, rows, 2);
    const int32_t *ctx = rt_ptr(&s, &m.inputs[0]), *next = rt_ptr(&s, &m.inputs[1]);
    for (int k = 0; k < 3; k++) {
        assert_int_equal(ctx[k], tiny_id(tiny[5 + k]));
        assert_int_equal(ctx[3 + k], tiny_id(tiny[k]));
    }
    assert_int_equal(next[0], tiny_id(tiny[8]));
    assert_int_equal(next[1], tiny_id(tiny[3]));
    rt_session_free(&s);
    rt_dataset_free(&d);
}

static void expect_text_error(const RtModel *m, const char *path, int64_t context,
                              const RtVocab *vocab, const char *want) {
    RtDataset d;
    RtVocab out = {.n = -1};
    RtError err = {""};
    assert_int_equal(rt_load_text(&d, m, path, context, vocab, &out, &err), RT_FAIL);
    assert_contains(err.msg, want);
    assert_empty(&d);
    assert_int_equal(out.n, -1);
}

static void test_text_errors_name_the_file_and_the_problem(void **state) {
    (void)state;
    RtModel m = model_of("lm", 4, 2, lm_inputs);
    RtVocab v;
    rt_vocab_build(&v, "\n delortw", 9); /* no 'h' */
    expect_text_error(&m, "data/tiny.txt", 3, &v, "data/tiny.txt:1:1: character 'h' (byte "
                                                  "offset 0) is not in the vocabulary of the "
                                                  "weights (9 characters)");
    RtModel short_ctx = m;
    RtTensor in[2] = {lm_inputs[0], lm_inputs[1]};
    in[0].dims[1] = 26;
    short_ctx.inputs = in;
    expect_text_error(&short_ctx, "data/tiny.txt", 26, NULL, "data/tiny.txt: the text has 26 "
                                                             "characters, but a context of 26 "
                                                             "needs at least 27");
    expect_text_error(&m, "data/tiny.txt", 4, NULL, "text data with context 4 feeds two int "
                                                    "inputs, [B, 4] (the context) and [B] (the "
                                                    "next character), but model 'lm' has: ctx "
                                                    "[B, 3] int, next [B] int");
    in[0] = lm_inputs[0];
    in[0].limit = 8;
    expect_text_error(&short_ctx, "data/tiny.txt", 3, NULL, "the text has 10 distinct characters, "
                                                            "but the model's embedding has 8 rows");
    in[0].limit = 0;
    in[1].limit = 9;
    expect_text_error(&short_ctx, "data/tiny.txt", 3, NULL, "the text has 10 distinct characters, "
                                                            "but the model predicts 9 classes");
    expect_text_error(&m, write_tmp("nul.txt", "ab\0cdef", 7), 3, NULL,
                      "nul.txt: byte offset 2: a NUL byte");
}

static void test_vocab_string_round_trips_every_byte(void **state) {
    (void)state;
    unsigned char all[255];
    for (int i = 0; i < 255; i++)
        all[i] = (unsigned char)(255 - i);
    RtVocab v, back;
    rt_vocab_build(&v, all, sizeof all);
    assert_int_equal(v.n, 255);
    char buf[RT_VOCAB_STR_MAX];
    rt_vocab_to_string(&v, buf);
    RtError err = {""};
    if (rt_vocab_from_string(&back, buf, &err) != RT_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(back.n, 255);
    assert_memory_equal(back.chars, v.chars, 255);
    rt_vocab_build(&v, "ba\n", 3);
    assert_string_equal(rt_vocab_to_string(&v, buf), "\nab");
    rt_vocab_build(&v, "\xe9", 1);
    assert_string_equal(rt_vocab_to_string(&v, buf), "\xc3\xa9"); /* U+00E9 */
    assert_int_equal(rt_vocab_from_string(&back, "ba", &err), RT_FAIL);
    assert_contains(err.msg, "not in increasing order at character 2");
    assert_int_equal(rt_vocab_from_string(&back, "\xe2\x82\xac", &err), RT_FAIL); /* U+20AC */
    assert_contains(err.msg, "above U+00FF");
    assert_int_equal(rt_vocab_from_string(&back, "", &err), RT_FAIL);
}

static void test_vocab_encode_and_decode_name_the_bad_character(void **state) {
    (void)state;
    RtVocab v;
    rt_vocab_build(&v, tiny, strlen(tiny));
    int32_t ids[8];
    RtError err = {""};
    assert_int_equal(rt_vocab_encode(&v, "hold", 4, ids, "the prompt", &err), RT_OK);
    assert_int_equal(ids[0], 4);
    assert_int_equal(ids[3], 2);
    assert_int_equal(rt_vocab_id(&v, 'w'), 9);
    assert_int_equal(rt_vocab_id(&v, 'z'), -1);
    char out[5] = "";
    assert_int_equal(rt_vocab_decode(&v, ids, 4, out, &err), RT_OK);
    assert_memory_equal(out, "hold", 4);
    assert_int_equal(rt_vocab_encode(&v, "hoLd", 4, ids, "the prompt", &err), RT_FAIL);
    assert_string_equal(err.msg, "the prompt: character 'L' at position 3 is not in the "
                                 "vocabulary (10 characters)");
    ids[1] = 10;
    assert_int_equal(rt_vocab_decode(&v, ids, 2, out, &err), RT_FAIL);
    assert_contains(err.msg, "id 10 at position 2 is outside the vocabulary of 10 characters");
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
        cmocka_unit_test(test_idx_reads_images_and_labels_in_both_float_types),
        cmocka_unit_test(test_idx_gzip_gives_the_same_data_as_raw),
        cmocka_unit_test(test_idx_without_labels_loads_only_the_images),
        cmocka_unit_test(test_idx_errors_name_the_file_and_the_problem),
        cmocka_unit_test(test_idx_label_out_of_range_names_the_item),
        cmocka_unit_test(test_idx_needs_a_matching_image_input_and_exactly_two_inputs),
        cmocka_unit_test(test_npy_reads_dtypes_versions_and_byte_orders),
        cmocka_unit_test(test_npy_unnamed_files_find_the_input_they_fit),
        cmocka_unit_test(test_npy_need_mask_loads_only_the_needed_inputs),
        cmocka_unit_test(test_npy_errors_name_the_file_and_the_problem),
        cmocka_unit_test(test_text_rows_are_context_windows_and_next_characters),
        cmocka_unit_test(test_text_errors_name_the_file_and_the_problem),
        cmocka_unit_test(test_vocab_string_round_trips_every_byte),
        cmocka_unit_test(test_vocab_encode_and_decode_name_the_bad_character),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
