/* test_rt_predict.c: the predict program over a dataset as CSV (the outputs,
 * or each row's most likely classes), sampling with a temperature, and text
 * generation, driven by hand-written
 * "compiled" programs over a hand-laid-out arena. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/rt_internal.h"

#define assert_contains(hay, needle)                                                        \
    do {                                                                                    \
        if (!strstr((hay), (needle)))                                                       \
            fail_msg("expected \"%s\" in \"%s\"", (needle), (hay));                         \
    } while (0)

#define F(arena, off) ((float *)((char *)(arena) + (off)))
#define I(arena, off) ((int32_t *)((char *)(arena) + (off)))

/* Everything written to a FILE, as a string (open_memstream). */
typedef struct Capture {
    FILE *f;
    char *text;
    size_t len;
} Capture;

static void capture_open(Capture *c) {
    c->text = NULL;
    c->len = 0;
    c->f = open_memstream(&c->text, &c->len);
    assert_non_null(c->f);
}

static void capture_close(Capture *c) {
    fclose(c->f);
}

/* ---- a two-output model -------------------------------------------------------
 * Arena (float32):  x [B, 2] @0   y [B] int @64 (unused by predict)
 *                   out [B, 2] @128 = 2 x   score [B] @192 = x0 + x1
 * max_batch 4; the program records its batch sizes. */
static int64_t batches[16];
static int nbatches;

static void dbl_predict(void *arena, int64_t B) {
    batches[nbatches++ % 16] = B;
    for (int64_t b = 0; b < B; b++) {
        const float *x = F(arena, 0) + 2 * b;
        F(arena, 128)[2 * b] = 2 * x[0];
        F(arena, 128)[2 * b + 1] = 2 * x[1];
        F(arena, 192)[b] = x[0] + x[1];
    }
}

static const RtTensor dbl_inputs[] = {
    {.name = "x", .dtype = RT_FLOAT, .rank = 2, .dims = {RT_DIM_BATCH, 2}, .offset = 0},
    {.name = "y", .dtype = RT_INT, .rank = 1, .dims = {RT_DIM_BATCH}, .offset = 64},
};
static const RtTensor dbl_outputs[] = {
    {.name = "out", .rank = 2, .dims = {RT_DIM_BATCH, 2}, .offset = 128},
    {.name = "score", .rank = 1, .dims = {RT_DIM_BATCH}, .offset = 192},
};
static const RtModel dbl_model = {
    .name = "dbl",
    .elem_size = 4,
    .max_batch = 4,
    .arena_bytes = 256,
    .ninputs = 2,
    .inputs = dbl_inputs,
    .predict = {dbl_predict, 2, dbl_outputs},
};

static RtSession session_of(const RtModel *m, uint64_t seed) {
    RtSession s;
    RtError err = {""};
    if (rt_session_init(&s, m, seed, &err) != RT_OK)
        fail_msg("%s", err.msg);
    return s;
}

static void test_predict_writes_a_header_and_one_line_per_row_in_batches(void **state) {
    (void)state;
    float xs[12];
    for (int k = 0; k < 12; k++)
        xs[k] = (float)k * 0.25f;
    void *data[2] = {xs, NULL}; /* the labels are not needed */
    int64_t row_elems[2] = {2, 1};
    RtDataset d = {.n = 6, .ninputs = 2, .data = data, .row_elems = row_elems};
    RtSession s = session_of(&dbl_model, 0);
    Capture c;
    capture_open(&c);
    RtError err = {""};
    nbatches = 0;
    if (rt_predict(&s, &d, c.f, &err) != RT_OK)
        fail_msg("%s", err.msg);
    capture_close(&c);
    assert_string_equal(c.text, "out[0],out[1],score\n"
                                "0,0.5,0.25\n"
                                "1,1.5,1.25\n"
                                "2,2.5,2.25\n"
                                "3,3.5,3.25\n"
                                "4,4.5,4.25\n"
                                "5,5.5,5.25\n");
    assert_int_equal(nbatches, 2);
    assert_int_equal(batches[0], 4);
    assert_int_equal(batches[1], 2);
    free(c.text);
    rt_session_free(&s);
}

static void test_predict_names_multi_axis_columns_and_needs_outputs(void **state) {
    (void)state;
    RtTensor grid[] = {{.name = "g", .rank = 3, .dims = {RT_DIM_BATCH, 2, 3}, .offset = 128}};
    RtModel m = dbl_model;
    m.predict = (RtProgram){dbl_predict, 1, grid};
    float xs[2] = {0, 0};
    void *data[2] = {xs, NULL};
    int64_t row_elems[2] = {2, 1};
    RtDataset d = {.n = 0, .ninputs = 2, .data = data, .row_elems = row_elems};
    RtSession s = session_of(&m, 0);
    Capture c;
    capture_open(&c);
    RtError err = {""};
    assert_int_equal(rt_predict(&s, &d, c.f, &err), RT_OK);
    capture_close(&c);
    assert_string_equal(c.text, "g[0][0],g[0][1],g[0][2],g[1][0],g[1][1],g[1][2]\n");
    free(c.text);
    rt_session_free(&s);

    m.predict = (RtProgram){0};
    s = session_of(&m, 0);
    capture_open(&c);
    assert_int_equal(rt_predict(&s, &d, c.f, &err), RT_FAIL);
    capture_close(&c);
    assert_string_equal(err.msg, "model 'dbl' has no predict program (it declares no outputs)");
    free(c.text);
    rt_session_free(&s);
}

/* ---- sampling -------------------------------------------------------------- */

/* ---- the top classes ----------------------------------------------------------
 * A "classifier" whose output is its input: probs [B, 3] @128 = x [B, 3] @0. */
static void copy_predict(void *arena, int64_t B) {
    memcpy(F(arena, 128), F(arena, 0), sizeof(float) * 3 * (size_t)B);
}

static const RtTensor copy_inputs[] = {
    {.name = "x", .dtype = RT_FLOAT, .rank = 2, .dims = {RT_DIM_BATCH, 3}, .offset = 0}};
static const RtTensor copy_outputs[] = {
    {.name = "probs", .rank = 2, .dims = {RT_DIM_BATCH, 3}, .offset = 128}};
static const RtModel copy_model = {.name = "copy", .elem_size = 4, .max_batch = 4,
                                   .arena_bytes = 256, .ninputs = 1, .inputs = copy_inputs,
                                   .predict = {copy_predict, 1, copy_outputs}};

/* Most likely first, the smaller id first among equal probabilities;
 * names quoted as CSV needs; ids past the names as numbers. */
static void test_predict_top_orders_classes_and_quotes_names(void **state) {
    (void)state;
    float xs[] = {0.2f, 0.5f, 0.3f, 0.25f, 0.5f, 0.25f, 0, 0, 1, 1, 0, 0, 0.5f, 0, 0.5f};
    void *data[1] = {xs};
    int64_t row_elems[1] = {3};
    RtDataset d = {.n = 5, .ninputs = 1, .data = data, .row_elems = row_elems};
    RtSession s = session_of(&copy_model, 0);
    static const char *const names[] = {"a,b", "say \"hi\"", " pad"};
    Capture c;
    capture_open(&c);
    RtError err = {""};
    if (rt_predict_top(&s, &d, 2, 3, names, c.f, &err) != RT_OK)
        fail_msg("%s", err.msg);
    capture_close(&c);
    assert_string_equal(c.text, "top1,p1,top2,p2\n"
                                "\"say \"\"hi\"\"\",0.5,\" pad\",0.300000012\n"
                                "\"say \"\"hi\"\"\",0.5,\"a,b\",0.25\n"
                                "\" pad\",1,\"a,b\",0\n"
                                "\"a,b\",1,\"say \"\"hi\"\"\",0\n"
                                "\"a,b\",0.5,\" pad\",0.5\n");
    free(c.text);
    capture_open(&c);
    if (rt_predict_top(&s, &d, 3, 2, names, c.f, &err) != RT_OK) /* no name for id 2 */
        fail_msg("%s", err.msg);
    capture_close(&c);
    assert_contains(c.text, "top1,p1,top2,p2,top3,p3\n\"say \"\"hi\"\"\",0.5,2,0.300000012,"
                            "\"a,b\",0.200000003\n");
    free(c.text);
    rt_session_free(&s);
}

/* A row that is not a distribution fails naming it, and its batch is not
 * written (the batches before it are); K above the classes, or an output
 * that is not [B, classes], fails before anything is written. */
static void test_predict_top_needs_probability_rows(void **state) {
    (void)state;
    float xs[18] = {1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0.5f, 0.6f, 0};
    void *data[1] = {xs};
    int64_t row_elems[1] = {3};
    RtDataset d = {.n = 6, .ninputs = 1, .data = data, .row_elems = row_elems};
    RtSession s = session_of(&copy_model, 0);
    Capture c;
    capture_open(&c);
    RtError err = {""};
    assert_int_equal(rt_predict_top(&s, &d, 1, 0, NULL, c.f, &err), RT_FAIL);
    capture_close(&c);
    assert_string_equal(err.msg, "row 6: the first output 'probs' is not a probability row (its "
                                 "3 entries sum to 1.1); the top classes need softmax "
                                 "probabilities");
    assert_string_equal(c.text, "top1,p1\n0,1\n0,1\n0,1\n0,1\n");
    free(c.text);
    capture_open(&c);
    assert_int_equal(rt_predict_top(&s, &d, 4, 0, NULL, c.f, &err), RT_FAIL);
    assert_string_equal(err.msg, "asked for the top 4 classes, but the first output 'probs' "
                                 "[B, 3] has 3");
    RtTensor flat[] = {{.name = "p", .rank = 1, .dims = {RT_DIM_BATCH}, .offset = 128}};
    RtModel m = copy_model;
    m.predict.roots = flat;
    RtSession t = session_of(&m, 0);
    assert_int_equal(rt_predict_top(&t, &d, 1, 0, NULL, c.f, &err), RT_FAIL);
    assert_contains(err.msg, "the model's first output 'p' [B] is not a row of class "
                             "probabilities per example");
    capture_close(&c);
    assert_int_equal(c.len, 0);
    free(c.text);
    rt_session_free(&s);
    rt_session_free(&t);
}

static void test_sample_temperature_zero_is_argmax(void **state) {
    (void)state;
    RtRng r;
    rt_rng_seed(&r, 3);
    const double p[] = {0.1, 0.5, 0.5, 0.2};
    for (int k = 0; k < 10; k++)
        assert_int_equal(rt_sample(p, 4, 0, &r), 1);
}

/* At T = 1 the frequencies follow p (within 5 standard deviations); at T =
 * 0.25 the weights are p^4, so 0.8 vs 0.2 becomes 256 : 1; zeros never. */
static void test_sample_follows_p_to_the_power_one_over_t(void **state) {
    (void)state;
    RtRng r;
    rt_rng_seed(&r, 11);
    const double p[] = {0.2, 0.0, 0.8};
    int count[3] = {0}, n = 20000;
    for (int k = 0; k < n; k++)
        count[rt_sample(p, 3, 1.0, &r)]++;
    assert_int_equal(count[1], 0);
    double sd = sqrt(n * 0.2 * 0.8);
    assert_true(fabs(count[0] - 0.2 * n) < 5 * sd);
    memset(count, 0, sizeof count);
    for (int k = 0; k < n; k++)
        count[rt_sample(p, 3, 0.25, &r)]++;
    double want0 = n * (1.0 / 257);
    assert_true(fabs(count[0] - want0) < 5 * sqrt(want0) + 1);
    assert_int_equal(count[1], 0);
}

static void test_sample_same_seed_same_choices(void **state) {
    (void)state;
    const double p[] = {0.25, 0.25, 0.25, 0.25};
    RtRng a, b;
    rt_rng_seed(&a, 42);
    rt_rng_seed(&b, 42);
    int differ = 0;
    for (int k = 0; k < 100; k++) {
        int64_t x = rt_sample(p, 4, 1.0, &a);
        assert_int_equal(x, rt_sample(p, 4, 1.0, &b));
        differ += x != 0;
    }
    assert_true(differ > 0);
}

/* ---- generation -------------------------------------------------------------
 * A "language model" over 4 characters that always predicts the id after the
 * last one of its context (3 ids): probs [B, 4] @64 is one-hot at
 * (ctx[b][2] + 1) % 4. ctx [B, 3] int @0, next [B] int @32 (unused). The
 * program records the contexts it saw. */
static int32_t seen_ctx[64][3];
static int nseen;
static float prob_scale = 1;

static void next_predict(void *arena, int64_t B) {
    for (int64_t b = 0; b < B; b++) {
        const int32_t *ctx = I(arena, 0) + 3 * b;
        memcpy(seen_ctx[nseen++ % 64], ctx, sizeof seen_ctx[0]);
        for (int v = 0; v < 4; v++)
            F(arena, 64)[4 * b + v] = v == (ctx[2] + 1) % 4 ? prob_scale : 0;
    }
}

static const RtTensor lm_inputs[] = {
    {.name = "ctx", .dtype = RT_INT, .rank = 2, .dims = {RT_DIM_BATCH, 3}, .offset = 0},
    {.name = "next", .dtype = RT_INT, .rank = 1, .dims = {RT_DIM_BATCH}, .offset = 32},
};
static const RtTensor lm_outputs[] = {
    {.name = "probs", .rank = 2, .dims = {RT_DIM_BATCH, 4}, .offset = 64},
};
static const RtModel lm_model = {
    .name = "lm",
    .elem_size = 4,
    .max_batch = 2,
    .arena_bytes = 128,
    .ninputs = 2,
    .inputs = lm_inputs,
    .predict = {next_predict, 1, lm_outputs},
};

static char *generate(const RtModel *m, const RtVocab *v, const char *prompt, int64_t length,
                      double t, RtStatus want, RtError *err) {
    RtSession s = session_of(m, 0);
    Capture c;
    capture_open(&c);
    assert_int_equal(rt_generate(&s, v, 3, prompt, length, t, c.f, err), want);
    capture_close(&c);
    rt_session_free(&s);
    return c.text;
}

static void test_generate_feeds_the_last_context_ids_padded_with_the_first(void **state) {
    (void)state;
    RtVocab v;
    rt_vocab_build(&v, "dcba", 4);
    RtError err = {""};
    nseen = 0;
    prob_scale = 1;
    char *text = generate(&lm_model, &v, "b", 6, 1.0, RT_OK, &err);
    assert_string_equal(text, "bcdabcd");
    free(text);
    /* "b" padded with itself: [b b b], then [b b c], [b c d], ... */
    const int32_t want[3][3] = {{1, 1, 1}, {1, 1, 2}, {1, 2, 3}};
    for (int k = 0; k < 3; k++)
        assert_memory_equal(seen_ctx[k], want[k], sizeof want[k]);
    nseen = 0;
    text = generate(&lm_model, &v, "dcab", 1, 0, RT_OK, &err); /* the last 3: c a b */
    assert_string_equal(text, "dcabc");
    const int32_t last3[3] = {2, 0, 1};
    assert_memory_equal(seen_ctx[0], last3, sizeof last3);
    free(text);
}

static void test_generate_errors_say_what_is_wrong(void **state) {
    (void)state;
    RtVocab v;
    rt_vocab_build(&v, "abcd", 4);
    RtError err = {""};
    free(generate(&lm_model, &v, "abz", 3, 1, RT_FAIL, &err));
    assert_string_equal(err.msg, "the prompt: character 'z' at position 3 is not in the "
                                 "vocabulary (4 characters)");
    prob_scale = 0.5f;
    free(generate(&lm_model, &v, "a", 3, 1, RT_FAIL, &err));
    prob_scale = 1;
    assert_contains(err.msg, "the model's first output 'probs' is not a probability row (its 4 "
                             "entries sum to 0.5); text generation needs the first output to be "
                             "softmax probabilities over the vocabulary");
    RtVocab big;
    rt_vocab_build(&big, "abcde", 5);
    free(generate(&lm_model, &big, "a", 3, 1, RT_FAIL, &err));
    assert_contains(err.msg, "'probs' [B, 4] has 4 entries per row, but the vocabulary has 5 "
                             "characters");
    RtModel no_ctx = lm_model;
    no_ctx.inputs = lm_inputs + 1;
    no_ctx.ninputs = 1;
    free(generate(&no_ctx, &v, "a", 3, 1, RT_FAIL, &err));
    assert_contains(err.msg, "model 'lm' has no int input of shape [B, 3] for the context; its "
                             "inputs: next [B] int");
    free(generate(&lm_model, &v, "", 3, 1, RT_FAIL, &err));
    assert_contains(err.msg, "the prompt is empty");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_predict_writes_a_header_and_one_line_per_row_in_batches),
        cmocka_unit_test(test_predict_names_multi_axis_columns_and_needs_outputs),
        cmocka_unit_test(test_predict_top_orders_classes_and_quotes_names),
        cmocka_unit_test(test_predict_top_needs_probability_rows),
        cmocka_unit_test(test_sample_temperature_zero_is_argmax),
        cmocka_unit_test(test_sample_follows_p_to_the_power_one_over_t),
        cmocka_unit_test(test_sample_same_seed_same_choices),
        cmocka_unit_test(test_generate_feeds_the_last_context_ids_padded_with_the_first),
        cmocka_unit_test(test_generate_errors_say_what_is_wrong),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
