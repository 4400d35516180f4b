/* test_rt_train.c: the training loop and evaluation, driven by hand-written
 * "compiled" programs over a hand-laid-out arena.
 *
 * The regression model is y = w * x + b with MSE loss and plain SGD reading
 * lr from its hyperparameter slot. Rows are identified by their x value:
 * row i has x = (i - 32) / 8 and y = 3x + 1, both exact in float32. The
 * programs record what they see, so the tests can check batching, the split
 * and shuffling from the outside. A second model, an "optimizer" with a
 * state and a step-dependent update, checks that a run resumed from a
 * checkpoint continues bit for bit, also after a stop requested through
 * RtTrainConfig.stop (as a signal handler does) inside an epoch. */
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

/* ---- the regression model ---------------------------------------------------
 * Arena (float32):  w [1, 1] @0   b [1] @4   lr @8
 *                   x [B, 1] @64  y [B, 1] @128  loss @192  pred [B, 1] @256 */
enum { MAXB = 16, NROWS_MAX = 256 };

#define F(arena, off) ((float *)((char *)(arena) + (off)))

static struct {
    int train_calls, eval_calls;
    int64_t train_batch[1024], eval_batch[1024];
    int seen[NROWS_MAX];      /* times each row went through train */
    int eval_seen[NROWS_MAX]; /* times each row went through eval */
    bool mismatch;            /* a gathered y did not belong to its x */
    int order[4096], norder;  /* rows in the order train saw them */
    int nan_at;               /* train call (1-based) that reports NaN; 0: never */
    double nan_value;
    int stop_at;              /* train call (1-based) after which stop_flag is set */
} rec;

/* RtTrainConfig.stop of the tests, set as a signal handler would. */
static volatile sig_atomic_t stop_flag;

static int row_of(float x) {
    return (int)lrintf(x * 8) + 32;
}

/* Forward, MSE loss, gradient, SGD update:
 *   pred = w x + b; loss = mean (pred - y)^2
 *   dw = mean 2 (pred - y) x; db = mean 2 (pred - y); w -= lr dw; b -= lr db */
static void lin_train(void *arena, int64_t B) {
    float *w = F(arena, 0), *b = F(arena, 4), lr = *F(arena, 8);
    const float *x = F(arena, 64), *y = F(arena, 128);
    double loss = 0, dw = 0, db = 0;
    for (int64_t i = 0; i < B; i++) {
        double e = (double)*w * x[i] + *b - y[i];
        loss += e * e;
        dw += 2 * e * x[i];
        db += 2 * e;
        rec.mismatch |= y[i] != 3 * x[i] + 1;
        rec.seen[row_of(x[i])]++;
        rec.order[rec.norder++ % 4096] = row_of(x[i]);
    }
    *w -= (float)(lr * dw / (double)B);
    *b -= (float)(lr * db / (double)B);
    *F(arena, 192) = (float)(loss / (double)B);
    rec.train_batch[rec.train_calls++ % 1024] = B;
    if (rec.stop_at && rec.train_calls == rec.stop_at)
        stop_flag = 1;
    if (rec.nan_at && rec.train_calls == rec.nan_at)
        *F(arena, 192) = (float)rec.nan_value;
}

static void lin_eval(void *arena, int64_t B) {
    float w = *F(arena, 0), b = *F(arena, 4);
    const float *x = F(arena, 64), *y = F(arena, 128);
    double loss = 0;
    for (int64_t i = 0; i < B; i++) {
        float p = w * x[i] + b;
        F(arena, 256)[i] = p;
        loss += ((double)p - y[i]) * ((double)p - y[i]);
        rec.mismatch |= y[i] != 3 * x[i] + 1;
        rec.eval_seen[row_of(x[i])]++;
    }
    *F(arena, 192) = (float)(loss / (double)B);
    rec.eval_batch[rec.eval_calls++ % 1024] = B;
}

static const RtTensor lin_params[] = {
    {.name = "w", .rank = 2, .dims = {1, 1}, .offset = 0},
    {.name = "b", .rank = 1, .dims = {1}, .offset = 4},
};
static const RtInit lin_inits[] = {{.kind = RT_INIT_CONST, .a = 0}, {.kind = RT_INIT_CONST}};
static const RtTensor lin_hypers[] = {{.name = "lr", .rank = 0, .offset = 8}};
static const double lin_lr[] = {0.05};
static const RtTensor lin_inputs[] = {
    {.name = "x", .rank = 2, .dims = {RT_DIM_BATCH, 1}, .offset = 64},
    {.name = "y", .rank = 2, .dims = {RT_DIM_BATCH, 1}, .offset = 128},
};
static const RtTensor lin_loss[] = {{.name = "loss", .rank = 0, .offset = 192}};
static const RtTensor lin_eval_roots[] = {
    {.name = "loss", .rank = 0, .offset = 192},
    {.name = "pred", .rank = 2, .dims = {RT_DIM_BATCH, 1}, .offset = 256},
};

static const RtModel lin_model = {
    .name = "lin",
    .elem_size = 4,
    .max_batch = MAXB,
    .arena_bytes = 320,
    .nparams = 2,
    .params = lin_params,
    .inits = lin_inits,
    .ninputs = 2,
    .inputs = lin_inputs,
    .nhypers = 1,
    .hypers = lin_hypers,
    .hyper_defaults = lin_lr,
    .train = {lin_train, 1, lin_loss},
    .eval = {lin_eval, 2, lin_eval_roots},
};

/* n rows of y = 3x + 1. */
static float xs[NROWS_MAX], ys[NROWS_MAX];
static void *lin_data_ptrs[2] = {xs, ys};
static int64_t lin_row_elems[2] = {1, 1};

static RtDataset lin_data(int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        xs[i] = (float)(i - 32) / 8;
        ys[i] = 3 * xs[i] + 1;
    }
    RtDataset d = {.n = n, .ninputs = 2, .data = lin_data_ptrs, .row_elems = lin_row_elems};
    return d;
}

static RtSession lin_session(void) {
    RtSession s;
    RtError err = {""};
    if (rt_session_init(&s, &lin_model, 1, &err) != RT_OK)
        fail_msg("%s", err.msg);
    rt_init_params(&s);
    return s;
}

static RtTrainConfig quiet_cfg(int epochs, int64_t batch) {
    RtTrainConfig cfg = {.epochs = epochs, .batch = batch, .seed = 7, .quiet = true};
    return cfg;
}

static char tmpdir[] = "/tmp/gradc_test_train_XXXXXX";

static int setup_each(void **state) {
    (void)state;
    memset(&rec, 0, sizeof rec);
    stop_flag = 0;
    return 0;
}

/* ---- tests ----------------------------------------------------------------- */

static void test_train_fits_y_equals_3x_plus_1(void **state) {
    (void)state;
    RtDataset d = lin_data(64);
    RtSession s = lin_session();
    RtTrainConfig cfg = quiet_cfg(200, 8);
    RtEpochStats last;
    RtError err = {""};
    assert_int_equal(rt_train(&s, &d, &cfg, &last, &err), RT_OK);
    assert_float_equal(*F(s.arena, 0), 3.0, 1e-3);
    assert_float_equal(*F(s.arena, 4), 1.0, 1e-3);
    assert_true(last.loss < 1e-6);
    assert_int_equal(last.epoch, 200);
    assert_int_equal(last.step, 200 * 8);
    assert_int_equal(s.step, 1600);
    assert_int_equal(s.epoch, 200);
    assert_true(isnan(last.val_loss) && isnan(last.accuracy));
    assert_false(rec.mismatch);
    rt_session_free(&s);
}

/* 10 rows in batches of 4: 4, 4, 2 each epoch, every row once per epoch,
 * in a shuffled order that differs between the epochs. */
static void test_train_handles_partial_last_batch(void **state) {
    (void)state;
    RtDataset d = lin_data(10);
    RtSession s = lin_session();
    RtTrainConfig cfg = quiet_cfg(2, 4);
    RtError err = {""};
    assert_int_equal(rt_train(&s, &d, &cfg, NULL, &err), RT_OK);
    const int64_t want[] = {4, 4, 2, 4, 4, 2};
    assert_int_equal(rec.train_calls, 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(rec.train_batch[i], want[i]);
    for (int i = 0; i < 10; i++)
        assert_int_equal(rec.seen[i], 2);
    int sorted = 0, same = 0;
    for (int i = 0; i < 10; i++) {
        sorted += rec.order[i] == i;
        same += rec.order[i] == rec.order[10 + i];
    }
    assert_true(sorted < 10 && same < 10);
    assert_int_equal(s.step, 6);
    assert_int_equal(s.epoch, 2);
    rt_session_free(&s);
}

/* The loss is a mean over samples: with batches 4, 4, 2 the epoch loss is
 * the batch losses weighted 4, 4, 2. With lr 0 nothing moves, so the loss
 * is mean (3x + 1)^2 over all rows. */
static void test_train_epoch_loss_is_sample_weighted_mean(void **state) {
    (void)state;
    RtDataset d = lin_data(10);
    RtSession s = lin_session();
    RtError err = {""};
    assert_int_equal(rt_set_hyper(&s, "lr", 0, &err), RT_OK);
    RtTrainConfig cfg = quiet_cfg(1, 4);
    RtEpochStats last;
    assert_int_equal(rt_train(&s, &d, &cfg, &last, &err), RT_OK);
    double want = 0;
    for (int i = 0; i < 10; i++)
        want += (double)ys[i] * ys[i];
    assert_float_equal(last.loss, want / 10, 1e-4);
    rt_session_free(&s);
}

static void test_train_steps_limit_stops_mid_epoch(void **state) {
    (void)state;
    RtDataset d = lin_data(10);
    RtSession s = lin_session();
    RtTrainConfig cfg = quiet_cfg(100, 4);
    cfg.steps = 5;
    RtEpochStats last;
    RtError err = {""};
    assert_int_equal(rt_train(&s, &d, &cfg, &last, &err), RT_OK);
    assert_int_equal(rec.train_calls, 5);
    assert_int_equal(s.step, 5);
    assert_int_equal(s.epoch, 1); /* the second epoch did not finish */
    assert_int_equal(last.epoch, 2);
    assert_int_equal(last.step, 5);
    /* steps count from the start of each call */
    assert_int_equal(rt_train(&s, &d, &cfg, &last, &err), RT_OK);
    assert_int_equal(s.step, 10);
    /* epochs 0 with a step limit: as many epochs as the steps need */
    cfg.epochs = 0;
    cfg.steps = 7;
    assert_int_equal(rt_train(&s, &d, &cfg, &last, &err), RT_OK);
    assert_int_equal(s.step, 17);
    rt_session_free(&s);
}

/* split 0.25 of 10 rows: round(2.5) = 3 held out, 7 trained, never mixed. */
static void test_train_split_holds_out_rows_never_trained_on(void **state) {
    (void)state;
    RtDataset d = lin_data(10);
    RtSession s = lin_session();
    RtTrainConfig cfg = quiet_cfg(3, 4);
    cfg.split = 0.25;
    RtEpochStats last;
    RtError err = {""};
    assert_int_equal(rt_train(&s, &d, &cfg, &last, &err), RT_OK);
    int trained = 0, held = 0;
    for (int i = 0; i < 10; i++) {
        assert_true(rec.seen[i] == 0 || rec.eval_seen[i] == 0);
        assert_true(rec.seen[i] + rec.eval_seen[i] == 3);
        trained += rec.seen[i] > 0;
        held += rec.eval_seen[i] > 0;
    }
    assert_int_equal(trained, 7);
    assert_int_equal(held, 3);
    assert_int_equal(rec.train_calls, 3 * 2); /* 4 + 3 rows per epoch */
    assert_true(isfinite(last.val_loss) && last.val_loss > 0);
    assert_true(isnan(last.accuracy)); /* the model has no metric */
    rt_session_free(&s);
}

/* skip_eval: no evaluation pass at all, NaN figures, and the same training
 * (same rows, same parameters) as with the evaluation. */
static void test_train_skip_eval_skips_only_the_evaluation(void **state) {
    (void)state;
    float wb[2][2];
    for (int skip = 0; skip < 2; skip++) {
        memset(&rec, 0, sizeof rec);
        RtDataset d = lin_data(10);
        RtSession s = lin_session();
        RtTrainConfig cfg = quiet_cfg(3, 4);
        cfg.split = 0.25;
        cfg.skip_eval = skip;
        RtEpochStats last;
        RtError err = {""};
        assert_int_equal(rt_train(&s, &d, &cfg, &last, &err), RT_OK);
        assert_int_equal(rec.train_calls, 3 * 2);
        assert_int_equal(rec.eval_calls, skip ? 0 : 3);
        assert_true(skip ? isnan(last.val_loss) : isfinite(last.val_loss));
        assert_true(isfinite(last.loss));
        wb[skip][0] = *F(s.arena, 0);
        wb[skip][1] = *F(s.arena, 4);
        rt_session_free(&s);
    }
    assert_memory_equal(wb[0], wb[1], sizeof wb[0]);
    assert_true(wb[0][0] != 0);
}

static int count_held_out(double split, int64_t n) {
    memset(&rec, 0, sizeof rec);
    RtDataset d = lin_data(n);
    RtSession s = lin_session();
    RtTrainConfig cfg = quiet_cfg(1, 4);
    cfg.split = split;
    RtError err = {""};
    assert_int_equal(rt_train(&s, &d, &cfg, NULL, &err), RT_OK);
    rt_session_free(&s);
    int held = 0;
    for (int i = 0; i < n; i++)
        held += rec.eval_seen[i] > 0;
    return held;
}

static void test_train_split_keeps_at_least_one_row_each_side(void **state) {
    (void)state;
    assert_int_equal(count_held_out(0.01, 10), 1);
    assert_int_equal(count_held_out(0.99, 10), 9);
    assert_int_equal(count_held_out(0.5, 1), 0); /* one row: nothing to hold out */
    assert_int_equal(count_held_out(0.2, 64), 13);
}

static void train_copy(uint64_t seed, float wb[2], double *loss) {
    RtDataset d = lin_data(40);
    RtSession s = lin_session();
    RtTrainConfig cfg = quiet_cfg(3, 8);
    cfg.seed = seed;
    cfg.split = 0.2;
    RtEpochStats last;
    RtError err = {""};
    assert_int_equal(rt_train(&s, &d, &cfg, &last, &err), RT_OK);
    memcpy(wb, s.arena, 2 * sizeof(float));
    *loss = last.val_loss;
    rt_session_free(&s);
}

static void test_train_same_seed_gives_identical_results(void **state) {
    (void)state;
    float a[2], b[2], c[2];
    double la, lb, lc;
    train_copy(123, a, &la);
    train_copy(123, b, &lb);
    train_copy(124, c, &lc);
    assert_memory_equal(a, b, sizeof a);
    assert_true(la == lb);
    assert_memory_not_equal(a, c, sizeof a);
}

static void test_train_stops_with_error_on_nan_loss(void **state) {
    (void)state;
    RtDataset d = lin_data(16);
    RtSession s = lin_session();
    RtTrainConfig cfg = quiet_cfg(5, 4);
    char log_path[300];
    snprintf(log_path, sizeof log_path, "%s/nan.jsonl", tmpdir);
    cfg.log_path = log_path;
    rec.nan_at = 7; /* epoch 2, its third batch */
    rec.nan_value = NAN;
    RtEpochStats last = {0};
    RtError err = {""};
    assert_int_equal(rt_train(&s, &d, &cfg, &last, &err), RT_FAIL);
    assert_string_equal(err.msg, "loss became nan at epoch 2, step 7");
    assert_int_equal(rec.train_calls, 7);
    assert_int_equal(s.epoch, 1);
    assert_int_equal(last.epoch, 1);
    FILE *f = fopen(log_path, "r");
    assert_non_null(f);
    int lines = 0, ch;
    while ((ch = fgetc(f)) != EOF)
        lines += ch == '\n';
    fclose(f);
    assert_int_equal(lines, 1); /* the first epoch only */
    memset(&rec, 0, sizeof rec);
    rec.nan_at = 1;
    rec.nan_value = INFINITY;
    assert_int_equal(rt_train(&s, &d, &cfg, &last, &err), RT_FAIL);
    assert_string_equal(err.msg, "loss became inf at epoch 2, step 8");
    rt_session_free(&s);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static double num(const RtJson *obj, const char *key) {
    const RtJson *v = rt_json_get(obj, key);
    if (!v || v->kind != RT_JSON_NUMBER)
        fail_msg("log line lacks number \"%s\"", key);
    return v->number;
}

/* One JSON object per line per epoch, with epoch, step, loss, val_loss (a
 * split is set), samples_per_s and seconds, and no accuracy (no metric). */
static void test_train_log_has_one_json_object_per_epoch(void **state) {
    (void)state;
    RtDataset d = lin_data(20);
    RtSession s = lin_session();
    RtTrainConfig cfg = quiet_cfg(4, 8);
    cfg.split = 0.25;
    char log_path[300];
    snprintf(log_path, sizeof log_path, "%s/train.jsonl", tmpdir);
    FILE *old = fopen(log_path, "w"); /* an old log is truncated */
    fputs("old line\nold line\n", old);
    fclose(old);
    cfg.log_path = log_path;
    RtEpochStats last;
    RtError err = {""};
    assert_int_equal(rt_train(&s, &d, &cfg, &last, &err), RT_OK);
    char *text = slurp(log_path);
    int lines = 0;
    for (char *line = text, *nl; (nl = strchr(line, '\n')); line = nl + 1, lines++) {
        char why[200];
        RtJson *j = rt_json_parse(line, (size_t)(nl - line), why, sizeof why);
        if (!j)
            fail_msg("log line %d is not JSON (%s): %.*s", lines + 1, why, (int)(nl - line), line);
        assert_int_equal(j->kind, RT_JSON_OBJECT);
        assert_int_equal(j->n, 6);
        assert_float_equal(num(j, "epoch"), lines + 1, 0);
        assert_float_equal(num(j, "step"), 2 * (lines + 1), 0); /* 15 rows: batches 8, 7 */
        assert_true(num(j, "loss") >= 0 && num(j, "val_loss") >= 0);
        assert_true(num(j, "samples_per_s") > 0 && num(j, "seconds") > 0);
        assert_null(rt_json_get(j, "accuracy"));
        if (lines == 3) {
            assert_float_equal(num(j, "loss"), last.loss, 1e-8 * last.loss);
            assert_float_equal(num(j, "val_loss"), last.val_loss, 1e-8 * last.val_loss);
        }
        rt_json_free(j);
    }
    assert_int_equal(lines, 4);
    rt_session_free(&s);
}

static void test_train_prints_one_progress_line_per_epoch_unless_quiet(void **state) {
    (void)state;
    RtDataset d = lin_data(20);
    RtSession s = lin_session();
    RtTrainConfig cfg = quiet_cfg(3, 8);
    cfg.split = 0.25;
    cfg.quiet = false;
    char *buf = NULL;
    size_t len = 0;
    cfg.out = open_memstream(&buf, &len);
    RtError err = {""};
    assert_int_equal(rt_train(&s, &d, &cfg, NULL, &err), RT_OK);
    fclose(cfg.out);
    assert_contains(buf, "epoch 1/3  loss ");
    assert_contains(buf, "epoch 3/3  loss ");
    assert_contains(buf, "  val_loss ");
    assert_contains(buf, " samples/s\n");
    assert_null(strstr(buf, "accuracy"));
    assert_null(strstr(buf, "nan"));
    int lines = 0;
    for (char *p = buf; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 3);
    free(buf);
    buf = NULL;
    cfg.quiet = true;
    cfg.out = open_memstream(&buf, &len);
    assert_int_equal(rt_train(&s, &d, &cfg, NULL, &err), RT_OK);
    fclose(cfg.out);
    assert_int_equal(len, 0);
    free(buf);
    rt_session_free(&s);
}

static void test_train_rejects_bad_config(void **state) {
    (void)state;
    RtDataset d = lin_data(10);
    RtSession s = lin_session();
    RtError err = {""};
    RtTrainConfig cfg = quiet_cfg(1, 0);
    assert_int_equal(rt_train(&s, &d, &cfg, NULL, &err), RT_FAIL);
    assert_contains(err.msg, "batch size 0 is out of range: model 'lin' takes 1 to 16");
    cfg = quiet_cfg(1, 17);
    assert_int_equal(rt_train(&s, &d, &cfg, NULL, &err), RT_FAIL);
    assert_contains(err.msg, "batch size 17 is out of range");
    cfg = quiet_cfg(0, 4);
    assert_int_equal(rt_train(&s, &d, &cfg, NULL, &err), RT_FAIL);
    assert_contains(err.msg, "epochs is 0");
    cfg = quiet_cfg(1, 4);
    cfg.split = 1.0;
    assert_int_equal(rt_train(&s, &d, &cfg, NULL, &err), RT_FAIL);
    assert_contains(err.msg, "split is 1; expected a fraction in [0, 1)");
    cfg.split = NAN;
    assert_int_equal(rt_train(&s, &d, &cfg, NULL, &err), RT_FAIL);
    cfg.split = 0;
    cfg.log_path = "/nonexistent-dir/log.jsonl";
    assert_int_equal(rt_train(&s, &d, &cfg, NULL, &err), RT_FAIL);
    assert_contains(err.msg, "cannot open log '/nonexistent-dir/log.jsonl': No such file");
    assert_int_equal(rec.train_calls, 0);
    assert_int_equal(s.step, 0);
    rt_session_free(&s);
}

/* ---- dropout key and dataset shape ---------------------------------------------
 * The regression model with an int32 "rng" hyper @12: each train step must
 * see fresh bits from the session RNG, drawn in step order. */
static int32_t rng_seen[64];
static int nrng_seen;

static void rng_train(void *arena, int64_t B) {
    rng_seen[nrng_seen++ % 64] = *(const int32_t *)((const char *)arena + 12);
    lin_train(arena, B);
}

static void test_train_refreshes_the_rng_hyper_before_every_step(void **state) {
    (void)state;
    static const RtTensor hypers[] = {
        {.name = "lr", .rank = 0, .offset = 8},
        {.name = "rng", .dtype = RT_INT, .rank = 0, .offset = 12},
    };
    static const double defaults[] = {0.05, 0};
    RtModel m = lin_model;
    m.nhypers = 2;
    m.hypers = hypers;
    m.hyper_defaults = defaults;
    m.train.fn = rng_train;
    int32_t first[8];
    for (int run = 0; run < 2; run++) {
        RtDataset d = lin_data(16);
        RtSession s;
        RtError err = {""};
        assert_int_equal(rt_session_init(&s, &m, 3, &err), RT_OK);
        rt_init_params(&s); /* constant inits: no draws */
        nrng_seen = 0;
        RtTrainConfig cfg = quiet_cfg(2, 4);
        assert_int_equal(rt_train(&s, &d, &cfg, NULL, &err), RT_OK);
        assert_int_equal(nrng_seen, 8);
        RtRng ref;
        rt_rng_seed(&ref, 3);
        for (int k = 0; k < 8; k++) {
            uint32_t low = (uint32_t)rt_rng_next(&ref);
            int32_t want;
            memcpy(&want, &low, sizeof want);
            assert_int_equal(rng_seen[k], want);
            if (k > 0)
                assert_int_not_equal(rng_seen[k], rng_seen[k - 1]);
            if (run == 0)
                first[k] = rng_seen[k];
            else
                assert_int_equal(rng_seen[k], first[k]); /* same seed, same keys */
        }
        rt_session_free(&s);
    }
}

/* Rows are read at their stride (text data uses strides below the row
 * length, so that rows overlap), and an input without data cannot be
 * trained on. */
static void test_train_gathers_strided_rows_and_rejects_missing_inputs(void **state) {
    (void)state;
    RtDataset d = lin_data(40);
    static float spread[80]; /* x of row r at 2r, junk between */
    for (int r = 0; r < 40; r++) {
        spread[2 * r] = xs[r];
        spread[2 * r + 1] = 1000;
    }
    void *ptrs[2] = {spread, ys};
    int64_t stride[2] = {2, 0}; /* 0: packed */
    d.data = ptrs;
    d.row_stride = stride;
    RtSession s = lin_session();
    RtError err = {""};
    RtTrainConfig cfg = quiet_cfg(300, 8);
    assert_int_equal(rt_train(&s, &d, &cfg, NULL, &err), RT_OK);
    assert_false(rec.mismatch);
    assert_float_equal(*F(s.arena, 0), 3.0, 1e-3);
    void *half[2] = {xs, NULL};
    d.data = half;
    assert_int_equal(rt_train(&s, &d, &cfg, NULL, &err), RT_FAIL);
    assert_contains(err.msg, "the dataset has no data for input 'y' [B, 1]");
    rt_session_free(&s);
}

/* ---- metrics ------------------------------------------------------------------
 * Classifier: x [B, 3] float @0, label [B] int @128 (max_batch 2, so that
 * evaluation runs in several batches); the eval program copies x to the
 * prediction [B, 3] @256 and reports loss = mean of x[:, 0]. */
static void clf_eval(void *arena, int64_t B) {
    const float *x = F(arena, 0);
    double loss = 0;
    for (int64_t i = 0; i < B; i++) {
        for (int c = 0; c < 3; c++)
            F(arena, 256)[i * 3 + c] = x[i * 3 + c];
        loss += x[i * 3];
    }
    *F(arena, 512) = (float)(loss / (double)B);
    rec.eval_batch[rec.eval_calls++ % 1024] = B;
}

static void clf_train(void *arena, int64_t B) {
    (void)B;
    *F(arena, 512) = 1.0f;
    rec.train_calls++;
}

static const RtTensor clf_inputs[] = {
    {.name = "x", .rank = 2, .dims = {RT_DIM_BATCH, 3}, .offset = 0},
    {.name = "label", .dtype = RT_INT, .rank = 1, .dims = {RT_DIM_BATCH}, .offset = 128},
};
static const RtTensor clf_loss[] = {{.name = "loss", .rank = 0, .offset = 512}};
static const RtTensor clf_roots[] = {
    {.name = "loss", .rank = 0, .offset = 512},
    {.name = "pred", .rank = 2, .dims = {RT_DIM_BATCH, 3}, .offset = 256},
};

/* 5 rows; argmax of x is 1, 0, 2, 0 (tie: first), 2; labels 1, 0, 0, 0, 1:
 * rows 0, 1 and 3 are right, accuracy 3/5. */
static float clf_x[] = {0, 5, 1, 9, 2, 3, -1, -2, 4, 7, 7, 7, 1, 2, 3};
static int32_t clf_y[] = {1, 0, 0, 0, 1};
static void *clf_ptrs[] = {clf_x, clf_y};
static int64_t clf_elems[] = {3, 1};

static void test_evaluate_argmax_accuracy_in_batches_of_max_batch(void **state) {
    (void)state;
    RtModel m = {.name = "clf", .elem_size = 4, .max_batch = 2, .arena_bytes = 1024,
                 .ninputs = 2, .inputs = clf_inputs, .train = {clf_train, 1, clf_loss},
                 .eval = {clf_eval, 2, clf_roots}, .metric = RT_METRIC_ARGMAX,
                 .metric_label = 1};
    RtDataset d = {.n = 5, .ninputs = 2, .data = clf_ptrs, .row_elems = clf_elems};
    RtSession s;
    RtError err = {""};
    assert_int_equal(rt_session_init(&s, &m, 1, &err), RT_OK);
    const int64_t rows[] = {0, 1, 2, 3, 4};
    double loss, acc;
    assert_int_equal(rt_evaluate(&s, &d, rows, 5, &loss, &acc, &err), RT_OK);
    assert_float_equal(acc, 0.6, 1e-12);
    /* batches of 2, 2, 1, weighted: the mean of x[:, 0] over all rows */
    assert_int_equal(rec.eval_calls, 3);
    assert_int_equal(rec.eval_batch[2], 1);
    assert_float_equal(loss, (0 + 9 - 1 + 7 + 1) / 5.0, 1e-6);
    /* a subset, in a given order */
    const int64_t some[] = {4, 2};
    assert_int_equal(rt_evaluate(&s, &d, some, 2, &loss, &acc, &err), RT_OK);
    assert_float_equal(acc, 0.0, 0);
    const int64_t bad[] = {5};
    assert_int_equal(rt_evaluate(&s, &d, bad, 1, &loss, &acc, &err), RT_FAIL);
    assert_contains(err.msg, "row 5 is out of range for a dataset of 5 rows");
    /* without a split, training reports accuracy on the training rows */
    RtTrainConfig cfg = quiet_cfg(2, 2);
    RtEpochStats last;
    assert_int_equal(rt_train(&s, &d, &cfg, &last, &err), RT_OK);
    assert_float_equal(last.accuracy, 0.6, 1e-12);
    assert_true(isnan(last.val_loss));
    rt_session_free(&s);
}

/* Threshold: prediction [B, 1] is x[:, 0]; correct when (pred > 0.5) equals
 * (label > 0.5), for float and for int labels. */
static void thr_eval(void *arena, int64_t B) {
    for (int64_t i = 0; i < B; i++)
        F(arena, 256)[i] = F(arena, 0)[i];
    *F(arena, 512) = 0.25f;
}

static void test_evaluate_threshold_accuracy_with_float_and_int_labels(void **state) {
    (void)state;
    static const RtTensor in_f[] = {
        {.name = "x", .rank = 2, .dims = {RT_DIM_BATCH, 1}, .offset = 0},
        {.name = "t", .rank = 2, .dims = {RT_DIM_BATCH, 1}, .offset = 128},
    };
    static const RtTensor roots[] = {
        {.name = "loss", .rank = 0, .offset = 512},
        {.name = "pred", .rank = 2, .dims = {RT_DIM_BATCH, 1}, .offset = 256},
    };
    RtModel m = {.name = "thr", .elem_size = 4, .max_batch = 4, .arena_bytes = 1024,
                 .ninputs = 2, .inputs = in_f, .eval = {thr_eval, 2, roots},
                 .metric = RT_METRIC_THRESHOLD, .metric_label = 1, .metric_threshold = 0.5};
    /* pred > 0.5: no, yes, yes, no, yes, no; labels 0, 1, 0, 0, 1, 1: 4 of 6 */
    static float x[] = {0.1f, 0.9f, 0.7f, 0.5f, 2.0f, -3.0f};
    static float tf[] = {0, 1, 0, 0, 1, 1};
    static int32_t ti[] = {0, 1, 0, 0, 1, 1};
    void *pf[] = {x, tf};
    int64_t elems[] = {1, 1};
    RtDataset d = {.n = 6, .ninputs = 2, .data = pf, .row_elems = elems};
    const int64_t rows[] = {0, 1, 2, 3, 4, 5};
    RtSession s;
    RtError err = {""};
    double loss, acc;
    assert_int_equal(rt_session_init(&s, &m, 1, &err), RT_OK);
    assert_int_equal(rt_evaluate(&s, &d, rows, 6, &loss, &acc, &err), RT_OK);
    assert_float_equal(acc, 4.0 / 6, 1e-12);
    assert_float_equal(loss, 0.25, 0);
    rt_session_free(&s);
    RtTensor in_i[2] = {in_f[0], in_f[1]};
    in_i[1].dtype = RT_INT;
    m.inputs = in_i;
    void *pi[] = {x, ti};
    d.data = pi;
    assert_int_equal(rt_session_init(&s, &m, 1, &err), RT_OK);
    assert_int_equal(rt_evaluate(&s, &d, rows, 6, &loss, &acc, &err), RT_OK);
    assert_float_equal(acc, 4.0 / 6, 1e-12);
    rt_session_free(&s);
}

/* ---- the learning rate in the log ----------------------------------------------
 * The regression model with a step hyper t @12 and a train program that also
 * reports a learning rate of 0.25 / t at root 1 (@16). */
static const RtTensor lr_hypers[] = {
    {.name = "lr", .rank = 0, .offset = 8},
    {.name = "t", .rank = 0, .offset = 12},
};
static const RtHyperKind lr_kinds[] = {RT_HYPER_VALUE, RT_HYPER_STEP};
static const double lr_defaults[] = {0.05, 0};
static const RtTensor lr_roots[] = {
    {.name = "loss", .rank = 0, .offset = 192},
    {.name = "lr", .rank = 0, .offset = 16},
};

static void lr_train(void *arena, int64_t B) {
    lin_train(arena, B);
    *F(arena, 16) = 0.25f / *F(arena, 12);
}

/* 15 training rows in batches of 8: epoch k ends with step 2k, whose lr is
 * 0.25 / 2k; the log has it right after "step", the progress line too. */
static void test_train_logs_the_learning_rate_of_the_epochs_last_step(void **state) {
    (void)state;
    RtModel m = lin_model;
    m.nhypers = 2;
    m.hypers = lr_hypers;
    m.hyper_kinds = lr_kinds;
    m.hyper_defaults = lr_defaults;
    m.train = (RtProgram){lr_train, 2, lr_roots};
    m.train_lr_root = 1;
    RtDataset d = lin_data(20);
    RtSession s;
    RtError err = {""};
    assert_int_equal(rt_session_init(&s, &m, 1, &err), RT_OK);
    rt_init_params(&s);
    RtTrainConfig cfg = quiet_cfg(3, 8);
    cfg.split = 0.25;
    char log_path[300];
    snprintf(log_path, sizeof log_path, "%s/lr.jsonl", tmpdir);
    cfg.log_path = log_path;
    cfg.quiet = false;
    char *buf = NULL;
    size_t len = 0;
    cfg.out = open_memstream(&buf, &len);
    RtEpochStats last;
    assert_int_equal(rt_train(&s, &d, &cfg, &last, &err), RT_OK);
    fclose(cfg.out);
    assert_true(last.lr == (double)(0.25f / 6.0f));
    assert_contains(buf, "epoch 1/3  loss ");
    assert_contains(buf, "  lr 0.125  ");
    assert_contains(buf, "  lr 0.04167  ");
    free(buf);
    char *text = slurp(log_path);
    assert_contains(text, "{\"epoch\":1,\"step\":2,\"lr\":0.125,\"loss\":");
    assert_contains(text, "{\"epoch\":2,\"step\":4,\"lr\":0.0625,\"loss\":");
    assert_contains(text, "{\"epoch\":3,\"step\":6,\"lr\":0.0416666679,\"loss\":");
    rt_session_free(&s);

    /* without a learning-rate root: NaN, and no "lr" anywhere */
    s = lin_session();
    cfg.out = NULL;
    cfg.quiet = true;
    assert_int_equal(rt_train(&s, &d, &cfg, &last, &err), RT_OK);
    assert_true(isnan(last.lr));
    assert_null(strstr(slurp(log_path), "\"lr\""));
    rt_session_free(&s);
}

/* An epoch's order depends on the seed and the epoch's number only: three
 * epochs in one call see the rows in the same order as in three calls. */
static void test_train_epoch_order_depends_on_seed_and_epoch_number_only(void **state) {
    (void)state;
    RtDataset d = lin_data(12);
    int one_call[36];
    RtSession s = lin_session();
    RtTrainConfig cfg = quiet_cfg(3, 5);
    cfg.split = 0.25;
    RtError err = {""};
    assert_int_equal(rt_train(&s, &d, &cfg, NULL, &err), RT_OK);
    assert_int_equal(rec.norder, 27); /* 9 training rows, 3 epochs */
    memcpy(one_call, rec.order, sizeof(int) * 27);
    rt_session_free(&s);
    memset(&rec, 0, sizeof rec);
    s = lin_session();
    for (int e = 1; e <= 3; e++) {
        cfg.epochs = e;
        assert_int_equal(rt_train(&s, &d, &cfg, NULL, &err), RT_OK);
        assert_int_equal(s.epoch, e);
    }
    assert_int_equal(rec.norder, 27);
    assert_memory_equal(rec.order, one_call, sizeof(int) * 27);
    assert_memory_not_equal(one_call, one_call + 9, sizeof(int) * 9);
    rt_session_free(&s);
}

/* ---- resuming from a checkpoint ---------------------------------------------------
 * An Adam-like "optimizer" on y = w0 x + w1, float64. Everything that a
 * resumed run could get wrong moves the weights: the update is a running
 * mean m of the gradients (an optimizer state) with bias correction
 * 1 / (1 - 0.9^t) (the step hyper t), a schedule lr (1 - epoch / (epochs +
 * 1)) (the epoch and epochs hypers), a nudge from the dropout key (the
 * session RNG), and, as SGD does, each batch's gradient depends on the
 * weights left by the batches before it (the row order).
 * Arena (float64):  w [2] @0   opt.m.w [2] @16   lr @32  t @40  epoch @48
 *                   epochs @56  key (int32) @64  x [B, 1] @128  y [B, 1] @192
 *                   loss @256  lr_now @264  pred [B, 1] @320 */
enum { OPT_MAXB = 4, OPT_ROWS = 23 };

#define D(arena, off) ((double *)((char *)(arena) + (off)))

static int opt_train_calls;
static int opt_stop_at; /* train call after which stop_flag is set; 0: never */

static void opt_train(void *arena, int64_t B) {
    double *w = D(arena, 0), *mo = D(arena, 16);
    double lr = *D(arena, 32), t = *D(arena, 40), epoch = *D(arena, 48), epochs = *D(arena, 56);
    int32_t key = *(const int32_t *)((const char *)arena + 64);
    const double *x = D(arena, 128), *y = D(arena, 192);
    double g0 = 0, g1 = 0, loss = 0;
    for (int64_t i = 0; i < B; i++) {
        double e = w[0] * x[i] + w[1] - y[i];
        loss += e * e;
        g0 += 2 * e * x[i];
        g1 += 2 * e;
    }
    mo[0] = 0.9 * mo[0] + 0.1 * g0 / (double)B;
    mo[1] = 0.9 * mo[1] + 0.1 * g1 / (double)B;
    double step = lr * (1 - epoch / (epochs + 1)) / (1 - pow(0.9, t));
    w[0] -= step * mo[0] + (double)(key & 0xffff) * 1e-9;
    w[1] -= step * mo[1];
    *D(arena, 256) = loss / (double)B;
    *D(arena, 264) = step;
    opt_train_calls++;
    if (opt_stop_at && opt_train_calls == opt_stop_at)
        stop_flag = 1;
}

static void opt_eval(void *arena, int64_t B) {
    const double *w = D(arena, 0), *x = D(arena, 128), *y = D(arena, 192);
    double loss = 0;
    for (int64_t i = 0; i < B; i++) {
        D(arena, 320)[i] = w[0] * x[i] + w[1];
        loss += (D(arena, 320)[i] - y[i]) * (D(arena, 320)[i] - y[i]);
    }
    *D(arena, 256) = loss / (double)B;
}

static const RtTensor opt_params[] = {{.name = "w", .rank = 1, .dims = {2}, .offset = 0}};
static const RtInit opt_inits[] = {{.kind = RT_INIT_NORMAL, .a = 0, .b = 1}};
static const RtTensor opt_states[] = {
    {.name = "opt.m.w", .rank = 1, .dims = {2}, .offset = 16}};
static const RtInit opt_state_inits[] = {{.kind = RT_INIT_CONST, .a = 0}};
static const int opt_state_param[] = {0};
static const RtTensor opt_hypers[] = {
    {.name = "lr", .rank = 0, .offset = 32},     {.name = "t", .rank = 0, .offset = 40},
    {.name = "epoch", .rank = 0, .offset = 48},  {.name = "epochs", .rank = 0, .offset = 56},
    {.name = "key", .dtype = RT_INT, .rank = 0, .offset = 64},
};
static const RtHyperKind opt_kinds[] = {RT_HYPER_VALUE, RT_HYPER_STEP, RT_HYPER_EPOCH,
                                        RT_HYPER_EPOCHS, RT_HYPER_RNG};
static const double opt_defaults[] = {0.1, 0, 0, 0, 0};
static const RtTensor opt_inputs[] = {
    {.name = "x", .rank = 2, .dims = {RT_DIM_BATCH, 1}, .offset = 128},
    {.name = "y", .rank = 2, .dims = {RT_DIM_BATCH, 1}, .offset = 192},
};
static const RtTensor opt_train_roots[] = {
    {.name = "loss", .rank = 0, .offset = 256},
    {.name = "lr", .rank = 0, .offset = 264},
};
static const RtTensor opt_eval_roots[] = {
    {.name = "loss", .rank = 0, .offset = 256},
    {.name = "pred", .rank = 2, .dims = {RT_DIM_BATCH, 1}, .offset = 320},
};

static const RtModel opt_model = {
    .name = "opt",
    .elem_size = 8,
    .max_batch = OPT_MAXB,
    .arena_bytes = 352,
    .nparams = 1,
    .params = opt_params,
    .inits = opt_inits,
    .ninputs = 2,
    .inputs = opt_inputs,
    .nhypers = 5,
    .hypers = opt_hypers,
    .hyper_defaults = opt_defaults,
    .hyper_kinds = opt_kinds,
    .nstates = 1,
    .states = opt_states,
    .state_inits = opt_state_inits,
    .state_param = opt_state_param,
    .train = {opt_train, 2, opt_train_roots},
    .train_lr_root = 1,
    .eval = {opt_eval, 2, opt_eval_roots},
};

/* 23 rows of y = 2x - 1 + a wobble; 5 held out, 18 trained in batches of
 * 4, 4, 4, 4, 2. */
static double oxs[OPT_ROWS], oys[OPT_ROWS];
static void *opt_ptrs[2] = {oxs, oys};
static int64_t opt_elems[2] = {1, 1};

static RtDataset opt_data(void) {
    for (int i = 0; i < OPT_ROWS; i++) {
        oxs[i] = (i - 11) / 4.0;
        oys[i] = 2 * oxs[i] - 1 + 0.3 * sin(7.0 * i);
    }
    RtDataset d = {.n = OPT_ROWS, .ninputs = 2, .data = opt_ptrs, .row_elems = opt_elems};
    return d;
}

static RtTrainConfig opt_cfg(int epochs) {
    RtTrainConfig cfg = {.epochs = epochs, .batch = OPT_MAXB, .seed = 5, .split = 0.2,
                         .quiet = true};
    return cfg;
}

/* The weights, the state and the counters a run ends with. */
typedef struct OptResult {
    double wm[4]; /* w, then opt.m.w: the arena's first 32 bytes */
    int64_t step, epoch;
    RtRng rng;
} OptResult;

static OptResult opt_result(const RtSession *s) {
    OptResult r;
    memcpy(r.wm, s->arena, sizeof r.wm);
    r.step = s->step;
    r.epoch = s->epoch;
    r.rng = s->rng;
    return r;
}

static void assert_same_result(const OptResult *a, const OptResult *b) {
    assert_memory_equal(a->wm, b->wm, sizeof a->wm);
    assert_int_equal(a->step, b->step);
    assert_int_equal(a->epoch, b->epoch);
    assert_memory_equal(&a->rng, &b->rng, sizeof a->rng);
}

/* 4 epochs in one session, straight through. */
static OptResult opt_straight(void) {
    RtDataset d = opt_data();
    RtSession s;
    RtError err = {""};
    assert_int_equal(rt_session_init(&s, &opt_model, 11, &err), RT_OK);
    rt_init_params(&s);
    RtTrainConfig cfg = opt_cfg(4);
    assert_int_equal(rt_train(&s, &d, &cfg, NULL, &err), RT_OK);
    OptResult r = opt_result(&s);
    rt_session_free(&s);
    return r;
}

/* Train a session of seed 11 towards 4 epochs for `steps` steps (an
 * interruption), save a checkpoint at path, and return. */
static void opt_first_part(int64_t steps, const char *path, const char *log_path) {
    RtDataset d = opt_data();
    RtSession s;
    RtError err = {""};
    assert_int_equal(rt_session_init(&s, &opt_model, 11, &err), RT_OK);
    rt_init_params(&s);
    RtTrainConfig cfg = opt_cfg(4);
    cfg.steps = steps;
    cfg.log_path = log_path;
    assert_int_equal(rt_train(&s, &d, &cfg, NULL, &err), RT_OK);
    if (rt_save_checkpoint(&s, path, 0, NULL, NULL, &err) != RT_OK)
        fail_msg("%s", err.msg);
    rt_session_free(&s);
}

typedef enum Spoil { SPOIL_NONE, SPOIL_STEP, SPOIL_STATE, SPOIL_RNG, SPOIL_EPOCH_ROWS } Spoil;

/* A fresh session (another seed) restored from the checkpoint at path, one
 * thing spoiled, trained to 4 epochs. out: the progress lines (may be NULL). */
static OptResult opt_resume(const char *path, Spoil spoil, const char *log_path, char **out) {
    RtDataset d = opt_data();
    RtSession s;
    RtError err = {""};
    assert_int_equal(rt_session_init(&s, &opt_model, 999, &err), RT_OK);
    if (rt_load_checkpoint(&s, path, &err) != RT_OK)
        fail_msg("%s", err.msg);
    switch (spoil) {
    case SPOIL_NONE: break;
    case SPOIL_STEP: s.step = 0; break;
    case SPOIL_STATE: memset(rt_ptr(&s, &opt_states[0]), 0, 16); break;
    case SPOIL_RNG: rt_rng_seed(&s.rng, 11); break;
    case SPOIL_EPOCH_ROWS: s.epoch_rows = 0; break;
    }
    RtTrainConfig cfg = opt_cfg(4);
    cfg.log_path = log_path;
    size_t len = 0;
    if (out) {
        cfg.quiet = false;
        cfg.out = open_memstream(out, &len);
    }
    assert_int_equal(rt_train(&s, &d, &cfg, NULL, &err), RT_OK);
    if (out)
        fclose(cfg.out);
    OptResult r = opt_result(&s);
    rt_session_free(&s);
    return r;
}

/* 4 epochs straight, and 2 epochs + checkpoint + a fresh session + 2 more,
 * give the same weights, state, counters and RNG, bit for bit; the resumed
 * run numbers its epochs 3 and 4 of 4 and appends to the log. Spoiling any
 * one thing a checkpoint restores changes the result. */
static void test_train_resumed_from_checkpoint_matches_straight_run_bit_for_bit(void **state) {
    (void)state;
    OptResult straight = opt_straight();
    assert_int_equal(straight.step, 20);
    char path[300], log_path[300];
    snprintf(path, sizeof path, "%s/ckpt.safetensors", tmpdir);
    snprintf(log_path, sizeof log_path, "%s/resume.jsonl", tmpdir);
    opt_first_part(10, path, log_path); /* epochs 1 and 2: 5 steps each */
    char *out = NULL;
    opt_train_calls = 0;
    OptResult resumed = opt_resume(path, SPOIL_NONE, log_path, &out);
    assert_same_result(&resumed, &straight);
    assert_int_equal(opt_train_calls, 10);
    assert_null(strstr(out, "epoch 1/4"));
    assert_null(strstr(out, "epoch 2/4"));
    assert_contains(out, "epoch 3/4  loss ");
    assert_contains(out, "epoch 4/4  loss ");
    free(out);
    char *log = slurp(log_path);
    for (int e = 1; e <= 4; e++) {
        char want[64];
        snprintf(want, sizeof want, "{\"epoch\":%d,\"step\":%d,\"lr\":", e, 5 * e);
        assert_contains(log, want);
    }

    static const Spoil spoils[] = {SPOIL_STEP, SPOIL_STATE, SPOIL_RNG};
    for (size_t k = 0; k < sizeof spoils / sizeof *spoils; k++) {
        OptResult bad = opt_resume(path, spoils[k], NULL, NULL);
        assert_memory_not_equal(bad.wm, straight.wm, sizeof bad.wm);
    }
    /* a plain weight file (no counters) cannot continue exactly either */
    RtDataset d = opt_data();
    RtSession s;
    RtError err = {""};
    assert_int_equal(rt_session_init(&s, &opt_model, 11, &err), RT_OK);
    assert_int_equal(rt_load_weights(&s, path, &err), RT_OK);
    RtTrainConfig cfg = opt_cfg(2);
    assert_int_equal(rt_train(&s, &d, &cfg, NULL, &err), RT_OK);
    assert_memory_not_equal(s.arena, straight.wm, sizeof straight.wm);
    rt_session_free(&s);
}

/* Interrupted inside an epoch (a step limit of 7: epoch 2 after 2 of its 5
 * batches), the resumed run finishes that epoch from its third batch and
 * still matches the straight run. */
static void test_train_resumed_mid_epoch_continues_from_the_next_batch(void **state) {
    (void)state;
    OptResult straight = opt_straight();
    char path[300];
    snprintf(path, sizeof path, "%s/mid.safetensors", tmpdir);
    opt_first_part(7, path, NULL);
    char *v = NULL;
    RtError err = {""};
    assert_int_equal(rt_read_weights_meta(path, "epoch_rows", &v, &err), RT_OK);
    assert_string_equal(v, "8");
    free(v);
    opt_train_calls = 0;
    OptResult resumed = opt_resume(path, SPOIL_NONE, NULL, NULL);
    assert_same_result(&resumed, &straight);
    assert_int_equal(opt_train_calls, 13);
    OptResult bad = opt_resume(path, SPOIL_EPOCH_ROWS, NULL, NULL);
    assert_memory_not_equal(bad.wm, straight.wm, sizeof bad.wm);
}

/* A session that has done all of cfg->epochs trains nothing, says so, and
 * leaves the log alone. */
static void test_train_with_every_epoch_done_trains_nothing(void **state) {
    (void)state;
    RtDataset d = lin_data(10);
    RtSession s = lin_session();
    RtTrainConfig cfg = quiet_cfg(2, 4);
    char log_path[300];
    snprintf(log_path, sizeof log_path, "%s/done.jsonl", tmpdir);
    cfg.log_path = log_path;
    RtError err = {""};
    assert_int_equal(rt_train(&s, &d, &cfg, NULL, &err), RT_OK);
    char before[4096];
    const char *log = slurp(log_path);
    assert_true(strlen(log) < sizeof before);
    memcpy(before, log, strlen(log) + 1);
    int calls = rec.train_calls;
    cfg.quiet = false;
    char *buf = NULL;
    size_t len = 0;
    cfg.out = open_memstream(&buf, &len);
    RtEpochStats last;
    assert_int_equal(rt_train(&s, &d, &cfg, &last, &err), RT_OK);
    fclose(cfg.out);
    assert_string_equal(buf, "nothing to train: 2 of 2 epochs are done\n");
    free(buf);
    assert_int_equal(rec.train_calls, calls);
    assert_int_equal(last.epoch, 2);
    assert_int_equal(last.step, 6);
    assert_true(isnan(last.loss));
    assert_string_equal(slurp(log_path), before);
    rt_session_free(&s);
}

/* A stop requested inside an epoch (after the 7th step: 2 of epoch 2's 5
 * batches) ends the call right after that step, with the partial epoch
 * neither printed nor logged; a checkpoint saved then resumes into the
 * straight run, bit for bit. */
static void test_train_stop_flag_ends_after_that_step_and_resumes_exactly(void **state) {
    (void)state;
    OptResult straight = opt_straight();
    char path[300], log_path[300];
    snprintf(path, sizeof path, "%s/stop.safetensors", tmpdir);
    snprintf(log_path, sizeof log_path, "%s/stop.jsonl", tmpdir);
    RtDataset d = opt_data();
    RtSession s;
    RtError err = {""};
    assert_int_equal(rt_session_init(&s, &opt_model, 11, &err), RT_OK);
    rt_init_params(&s);
    RtTrainConfig cfg = opt_cfg(4);
    cfg.stop = &stop_flag;
    cfg.log_path = log_path;
    cfg.quiet = false;
    char *out = NULL;
    size_t len = 0;
    cfg.out = open_memstream(&out, &len);
    opt_train_calls = 0;
    opt_stop_at = 7;
    RtEpochStats last;
    assert_int_equal(rt_train(&s, &d, &cfg, &last, &err), RT_OK);
    fclose(cfg.out);
    opt_stop_at = 0;
    assert_int_equal(opt_train_calls, 7);
    assert_true(last.stopped);
    assert_true(s.step == 7 && s.epoch == 1 && s.epoch_rows == 8);
    assert_true(last.step == 7 && last.epoch == 1 && isnan(last.loss));
    assert_contains(out, "epoch 1/4  loss ");
    assert_null(strstr(out, "epoch 2/4"));
    free(out);
    char *log = slurp(log_path);
    assert_non_null(strstr(log, "{\"epoch\":1,"));
    assert_null(strstr(log, "{\"epoch\":2,"));
    if (rt_save_checkpoint(&s, path, 0, NULL, NULL, &err) != RT_OK)
        fail_msg("%s", err.msg);
    rt_session_free(&s);
    stop_flag = 0;
    OptResult resumed = opt_resume(path, SPOIL_NONE, NULL, NULL);
    assert_same_result(&resumed, &straight);
    unlink(path);
    unlink(log_path);
}

/* on_epoch calls of the tests: the figures it was given and the session's
 * counters then. */
static struct {
    int calls, fail_at;
    int64_t epoch[16], step[16], s_epoch[16], s_rows[16];
} cb;

static RtStatus record_epoch(const RtSession *s, const RtEpochStats *e, void *user,
                             RtError *err) {
    assert_ptr_equal(user, &cb);
    int k = cb.calls++ % 16;
    cb.epoch[k] = e->epoch;
    cb.step[k] = e->step;
    cb.s_epoch[k] = s->epoch;
    cb.s_rows[k] = s->epoch_rows;
    if (cb.calls == cb.fail_at)
        return rt_fail(err, "cannot write 'ckpt': No space left on device");
    return RT_OK;
}

/* A stop after an epoch's last step lets that epoch finish (printed,
 * logged, on_epoch) and stops before the next; a stop already requested
 * trains nothing. */
static void test_train_stop_after_an_epochs_last_step_finishes_that_epoch(void **state) {
    (void)state;
    RtDataset d = lin_data(10); /* batches 4, 4, 2: 3 steps an epoch */
    RtSession s = lin_session();
    RtTrainConfig cfg = quiet_cfg(5, 4);
    cfg.stop = &stop_flag;
    cfg.on_epoch = record_epoch;
    cfg.on_epoch_user = &cb;
    memset(&cb, 0, sizeof cb);
    rec.stop_at = 3;
    RtEpochStats last;
    RtError err = {""};
    assert_int_equal(rt_train(&s, &d, &cfg, &last, &err), RT_OK);
    assert_int_equal(rec.train_calls, 3);
    assert_true(last.stopped);
    assert_true(s.epoch == 1 && s.epoch_rows == 0 && s.step == 3);
    assert_int_equal(cb.calls, 1);
    assert_int_equal(cb.epoch[0], 1);
    assert_true(rt_train(&s, &d, &cfg, &last, &err) == RT_OK && last.stopped);
    assert_int_equal(rec.train_calls, 3);
    assert_int_equal(s.step, 3);
    stop_flag = 0;
    assert_true(rt_train(&s, &d, &cfg, &last, &err) == RT_OK && !last.stopped);
    assert_true(s.epoch == 5 && s.step == 15);
    rt_session_free(&s);
}

/* on_epoch follows every finished epoch with its figures and the session
 * as the epoch left it, not the partial epoch of a step limit; its failure
 * is rt_train's, and training stops there. */
static void test_train_on_epoch_follows_every_finished_epoch_and_its_failure_stops(
    void **state) {
    (void)state;
    RtDataset d = lin_data(10);
    RtSession s = lin_session();
    RtTrainConfig cfg = quiet_cfg(5, 4);
    cfg.steps = 7; /* epochs 1 and 2, and a step of epoch 3 */
    cfg.on_epoch = record_epoch;
    cfg.on_epoch_user = &cb;
    memset(&cb, 0, sizeof cb);
    RtError err = {""};
    assert_int_equal(rt_train(&s, &d, &cfg, NULL, &err), RT_OK);
    assert_int_equal(cb.calls, 2);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(cb.epoch[k], k + 1);
        assert_int_equal(cb.s_epoch[k], k + 1);
        assert_int_equal(cb.step[k], 3 * (k + 1));
        assert_int_equal(cb.s_rows[k], 0);
    }
    cfg.steps = 0;
    cb.fail_at = 3; /* at the end of epoch 3 (the rest of it) */
    assert_int_equal(rt_train(&s, &d, &cfg, NULL, &err), RT_FAIL);
    assert_string_equal(err.msg, "cannot write 'ckpt': No space left on device");
    assert_int_equal(cb.epoch[2], 3);
    assert_int_equal(s.epoch, 3);
    assert_int_equal(rec.train_calls, 9);
    rt_session_free(&s);
}

static int setup(void **state) {
    (void)state;
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char path[300];
    const char *names[] = {"nan.jsonl",  "train.jsonl",       "lr.jsonl",       "resume.jsonl",
                           "done.jsonl", "ckpt.safetensors", "mid.safetensors"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    return rmdir(tmpdir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_train_fits_y_equals_3x_plus_1, setup_each),
        cmocka_unit_test_setup(test_train_refreshes_the_rng_hyper_before_every_step, setup_each),
        cmocka_unit_test_setup(test_train_gathers_strided_rows_and_rejects_missing_inputs,
                               setup_each),
        cmocka_unit_test_setup(test_train_handles_partial_last_batch, setup_each),
        cmocka_unit_test_setup(test_train_epoch_loss_is_sample_weighted_mean, setup_each),
        cmocka_unit_test_setup(test_train_steps_limit_stops_mid_epoch, setup_each),
        cmocka_unit_test_setup(test_train_split_holds_out_rows_never_trained_on, setup_each),
        cmocka_unit_test_setup(test_train_skip_eval_skips_only_the_evaluation, setup_each),
        cmocka_unit_test_setup(test_train_split_keeps_at_least_one_row_each_side, setup_each),
        cmocka_unit_test_setup(test_train_same_seed_gives_identical_results, setup_each),
        cmocka_unit_test_setup(test_train_stops_with_error_on_nan_loss, setup_each),
        cmocka_unit_test_setup(test_train_log_has_one_json_object_per_epoch, setup_each),
        cmocka_unit_test_setup(test_train_prints_one_progress_line_per_epoch_unless_quiet,
                               setup_each),
        cmocka_unit_test_setup(test_train_rejects_bad_config, setup_each),
        cmocka_unit_test_setup(test_evaluate_argmax_accuracy_in_batches_of_max_batch, setup_each),
        cmocka_unit_test_setup(test_evaluate_threshold_accuracy_with_float_and_int_labels,
                               setup_each),
        cmocka_unit_test_setup(test_train_logs_the_learning_rate_of_the_epochs_last_step,
                               setup_each),
        cmocka_unit_test_setup(test_train_epoch_order_depends_on_seed_and_epoch_number_only,
                               setup_each),
        cmocka_unit_test_setup(test_train_resumed_from_checkpoint_matches_straight_run_bit_for_bit,
                               setup_each),
        cmocka_unit_test_setup(test_train_resumed_mid_epoch_continues_from_the_next_batch,
                               setup_each),
        cmocka_unit_test_setup(test_train_with_every_epoch_done_trains_nothing, setup_each),
        cmocka_unit_test_setup(test_train_stop_flag_ends_after_that_step_and_resumes_exactly,
                               setup_each),
        cmocka_unit_test_setup(test_train_stop_after_an_epochs_last_step_finishes_that_epoch,
                               setup_each),
        cmocka_unit_test_setup(test_train_on_epoch_follows_every_finished_epoch_and_its_failure_stops,
                               setup_each),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
