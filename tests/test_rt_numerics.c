/* test_rt_numerics.c: rt_train with a model that checks numerics
 * (RtModel.nonfinite_status), driven by a hand-written "compiled" train
 * program that sets the status word at a chosen step, as a checked program
 * does (and, as it does, leaves the parameter as it was).
 *
 * What is checked: the stop comes at that step with RT_NONFINITE, the
 * kernel and batch size in `last`, the epoch and number of the step that
 * was not taken; the session's step, epoch_rows and RNG are those from
 * before the step (the RNG as a run limited to the steps before it leaves
 * it); the step's batch is still in the arena; finished epochs were
 * printed, the partial one not; a status word left set before rt_train is
 * cleared, not taken for a failure.
 *
 * Arena (float32): w @0, lr @8, rng (int32) @16, x [B, 1] @64, y [B, 1]
 * @128, loss @192, status (int64) @256.
 */
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

enum { MAXB = 4, NROWS = 8, STATUS = 256 };

#define F(arena, off) ((float *)((char *)(arena) + (off)))

static struct {
    int calls;  /* train program runs */
    int bad_at; /* the run (1-based) that sets the status word; 0: none */
} rec;

/* w -= lr; loss = w; at run bad_at, status = 3 (kernel 2) and w as it was. */
static void train_fn(void *arena, int64_t batch) {
    (void)batch;
    float w = *F(arena, 0);
    *F(arena, 0) = w - *F(arena, 8);
    *F(arena, 192) = *F(arena, 0);
    if (++rec.calls == rec.bad_at) {
        int64_t st = 3;
        memcpy((char *)arena + STATUS, &st, sizeof st);
        *F(arena, 0) = w;
    }
}

static const RtTensor params[] = {{.name = "w", .rank = 0, .offset = 0}};
static const RtInit inits[] = {{.kind = RT_INIT_CONST, .a = 1}};
static const RtTensor hypers[] = {{.name = "lr", .rank = 0, .offset = 8},
                                  {.name = "rng", .dtype = RT_INT, .rank = 0, .offset = 16}};
static const double defaults[] = {0.125, 0};
static const RtHyperKind kinds[] = {RT_HYPER_VALUE, RT_HYPER_RNG};
static const RtTensor inputs[] = {
    {.name = "x", .rank = 2, .dims = {RT_DIM_BATCH, 1}, .offset = 64},
    {.name = "y", .rank = 2, .dims = {RT_DIM_BATCH, 1}, .offset = 128},
};
static const RtTensor loss[] = {{.name = "loss", .rank = 0, .offset = 192}};

static const RtModel model = {
    .name = "chk",
    .elem_size = 4,
    .max_batch = MAXB,
    .arena_bytes = 320,
    .nparams = 1,
    .params = params,
    .inits = inits,
    .ninputs = 2,
    .inputs = inputs,
    .nhypers = 2,
    .hypers = hypers,
    .hyper_defaults = defaults,
    .hyper_kinds = kinds,
    .train = {train_fn, 1, loss},
    .nonfinite_status = STATUS,
};

static float xs[NROWS], ys[NROWS];
static void *ptrs[2] = {xs, ys};
static int64_t row_elems[2] = {1, 1};

static RtDataset data(void) {
    for (int i = 0; i < NROWS; i++)
        xs[i] = (float)i, ys[i] = (float)(100 + i);
    return (RtDataset){.n = NROWS, .ninputs = 2, .data = ptrs, .row_elems = row_elems};
}

static RtSession session(void) {
    RtSession s;
    RtError err = {""};
    if (rt_session_init(&s, &model, 1, &err) != RT_OK)
        fail_msg("%s", err.msg);
    rt_init_params(&s);
    return s;
}

static int64_t status_of(const RtSession *s) {
    int64_t v;
    memcpy(&v, (char *)s->arena + STATUS, sizeof v);
    return v;
}

/* 8 rows in batches of 3: 3, 3, 2 each epoch. Run 5 fails: epoch 2, its
 * second step (rows 3..5 of that epoch's order, 3 of them). */
static void test_stop_at_the_failing_step_leaves_the_session_before_it(void **state) {
    (void)state;
    RtDataset d = data();
    RtError err = {""};
    /* The reference: the same run limited to the 4 steps before. */
    memset(&rec, 0, sizeof rec);
    RtSession ref = session();
    RtTrainConfig cfg = {.epochs = 5, .steps = 4, .batch = 3, .seed = 7, .quiet = true};
    assert_int_equal(rt_train(&ref, &d, &cfg, NULL, &err), RT_OK);

    memset(&rec, 0, sizeof rec);
    rec.bad_at = 5;
    RtSession s = session();
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    cfg = (RtTrainConfig){.epochs = 5, .batch = 3, .seed = 7, .out = out};
    RtEpochStats last;
    assert_int_equal(rt_train(&s, &d, &cfg, &last, &err), RT_NONFINITE);
    fclose(out);
    assert_int_equal(rec.calls, 5);
    assert_int_equal(last.bad_kernel, 2);
    assert_int_equal(last.bad_batch, 3);
    assert_int_equal(last.epoch, 2);
    assert_int_equal(last.step, 5);
    assert_true(isnan(last.loss));
    assert_int_equal(s.step, 4);
    assert_int_equal(s.epoch, 1);
    assert_int_equal(s.epoch_rows, 3);
    assert_memory_equal(&s.rng, &ref.rng, sizeof s.rng);
    assert_int_equal(s.step, ref.step);
    assert_true(*F(s.arena, 0) == *F(ref.arena, 0)); /* w as the program left it */
    assert_int_equal(status_of(&s), 3);
    assert_non_null(strstr(err.msg, "a NaN or Inf at step 5 (epoch 2): kernel 2 of the train "
                                    "program stored it; the step was not taken"));
    /* The step's batch: rows 3..5 of epoch 2's order, not those of the
     * reference's last step (rows 0..2). */
    assert_true(memcmp(F(s.arena, 64), F(ref.arena, 64), 3 * sizeof(float)) != 0);
    /* Epoch 1 printed; epoch 2 (partial) not. */
    assert_non_null(strstr(text, "epoch 1/5"));
    assert_null(strstr(text, "epoch 2/5"));
    free(text);
    rt_session_free(&s);
    rt_session_free(&ref);
}

/* A status word already set (a previous run's) is cleared: training runs. */
static void test_a_stale_status_word_is_cleared(void **state) {
    (void)state;
    RtDataset d = data();
    RtError err = {""};
    memset(&rec, 0, sizeof rec);
    RtSession s = session();
    int64_t st = 7;
    memcpy((char *)s.arena + STATUS, &st, sizeof st);
    RtTrainConfig cfg = {.epochs = 2, .batch = 4, .seed = 7, .quiet = true};
    assert_int_equal(rt_train(&s, &d, &cfg, NULL, &err), RT_OK);
    assert_int_equal(s.step, 4);
    assert_int_equal(status_of(&s), 0);
    rt_session_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_at_the_failing_step_leaves_the_session_before_it),
        cmocka_unit_test(test_a_stale_status_word_is_cleared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
