/* test_rt_session.c: the arena, hyperparameters (float values, and the
 * per-step kinds: t, epoch, epochs and the int32 dropout key), the model
 * checks, and the initialisation of parameters and optimizer states. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/rt.h"

#define assert_contains(hay, needle)                                                        \
    do {                                                                                    \
        if (!strstr((hay), (needle)))                                                       \
            fail_msg("expected \"%s\" in \"%s\"", (needle), (hay));                         \
    } while (0)

/* Laid out for float64 (float32 uses the same offsets, with gaps):
 *   c         [3]        CONST 0.25           at 0
 *   v         [2, 2]     VALUES 1 2 3 4       at 32
 *   u         [1000]     UNIFORM [-2, 3)      at 64
 *   n         [100, 100] NORMAL mean 1, std 2 at 8064
 *   lr        hyper                           at 88064
 *   momentum  hyper                           at 88072 */
static const double v_values[] = {1, 2, 3, 4};
static const RtTensor params[] = {
    {.name = "c", .rank = 1, .dims = {3}, .offset = 0},
    {.name = "v", .rank = 2, .dims = {2, 2}, .offset = 32},
    {.name = "u", .rank = 1, .dims = {1000}, .offset = 64},
    {.name = "n", .rank = 2, .dims = {100, 100}, .offset = 8064},
};
static const RtInit inits[] = {
    {.kind = RT_INIT_CONST, .a = 0.25},
    {.kind = RT_INIT_VALUES, .values = v_values, .nvalues = 4},
    {.kind = RT_INIT_UNIFORM, .a = -2, .b = 3},
    {.kind = RT_INIT_NORMAL, .a = 1, .b = 2},
};
static const RtTensor hypers[] = {
    {.name = "lr", .rank = 0, .offset = 88064},
    {.name = "momentum", .rank = 0, .offset = 88072},
};
static const double hyper_defaults[] = {0.125, 0.9};

static RtModel make_model(int elem_size) {
    RtModel m = {
        .name = "toy",
        .elem_size = elem_size,
        .max_batch = 1,
        .arena_bytes = 88080 + 3, /* not a multiple of 64 on purpose */
        .nparams = 4,
        .params = params,
        .inits = inits,
        .nhypers = 2,
        .hypers = hypers,
        .hyper_defaults = hyper_defaults,
    };
    return m;
}

static double get(const RtSession *s, const RtTensor *t, int64_t i) {
    void *p = rt_ptr(s, t);
    return s->m->elem_size == 4 ? ((float *)p)[i] : ((double *)p)[i];
}

static void test_session_arena_is_aligned_zeroed_with_hyper_defaults(void **state) {
    (void)state;
    for (int es = 4; es <= 8; es += 4) {
        RtModel m = make_model(es);
        RtSession s;
        RtError err = {""};
        assert_int_equal(rt_session_init(&s, &m, 1, &err), RT_OK);
        assert_int_equal((uintptr_t)s.arena % 64, 0);
        assert_true(s.m == &m && s.step == 0 && s.epoch == 0);
        assert_float_equal(get(&s, &hypers[0], 0), 0.125, 0);
        assert_float_equal(get(&s, &hypers[1], 0), es == 4 ? (double)0.9f : 0.9, 0);
        const unsigned char *b = s.arena;
        for (size_t i = 0; i < hypers[0].offset; i++)
            if (b[i])
                fail_msg("arena byte %zu is %d, not zero", i, b[i]);
        rt_session_free(&s);
        assert_null(s.arena);
    }
}

static void test_session_seeds_rng_from_seed(void **state) {
    (void)state;
    RtModel m = make_model(4);
    RtSession s;
    RtRng r;
    assert_int_equal(rt_session_init(&s, &m, 77, NULL), RT_OK);
    rt_rng_seed(&r, 77);
    assert_memory_equal(&s.rng, &r, sizeof r);
    rt_session_free(&s);
}

static void test_session_rejects_tensor_past_arena_end(void **state) {
    (void)state;
    RtModel m = make_model(4);
    m.arena_bytes = 8064 + 100 * 100 * 4 - 1; /* one byte short for 'n' */
    m.nhypers = 0;
    RtSession s;
    RtError err = {""};
    assert_int_equal(rt_session_init(&s, &m, 1, &err), RT_FAIL);
    assert_contains(err.msg, "parameter 'n' [100, 100] at byte 8064 needs 40000 bytes");
    assert_null(s.arena);
}

static void test_session_rejects_values_init_of_wrong_length(void **state) {
    (void)state;
    RtModel m = make_model(4);
    RtInit bad[4];
    memcpy(bad, inits, sizeof bad);
    bad[1].nvalues = 3;
    m.inits = bad;
    RtSession s;
    RtError err = {""};
    assert_int_equal(rt_session_init(&s, &m, 1, &err), RT_FAIL);
    assert_contains(err.msg, "parameter 'v' [2, 2] has 3 initial values for 4 elements");
}

static void test_session_rejects_bad_elem_size(void **state) {
    (void)state;
    RtModel m = make_model(2);
    RtSession s;
    RtError err = {""};
    assert_int_equal(rt_session_init(&s, &m, 1, &err), RT_FAIL);
    assert_contains(err.msg, "element size 2");
}

static void test_set_hyper_writes_model_elem_type_and_rejects_unknown(void **state) {
    (void)state;
    for (int es = 4; es <= 8; es += 4) {
        RtModel m = make_model(es);
        RtSession s;
        RtError err = {""};
        assert_int_equal(rt_session_init(&s, &m, 1, &err), RT_OK);
        assert_int_equal(rt_set_hyper(&s, "momentum", 0.5, &err), RT_OK);
        assert_float_equal(get(&s, &hypers[1], 0), 0.5, 0);
        assert_float_equal(get(&s, &hypers[0], 0), 0.125, 0);
        assert_int_equal(rt_set_hyper(&s, "lrr", 1.0, &err), RT_FAIL);
        assert_contains(err.msg, "no hyperparameter 'lrr'; it has: lr, momentum");
        rt_session_free(&s);
    }
}

static void test_init_params_const_values_uniform_normal(void **state) {
    (void)state;
    for (int es = 4; es <= 8; es += 4) {
        RtModel m = make_model(es);
        RtSession s;
        assert_int_equal(rt_session_init(&s, &m, 3, NULL), RT_OK);
        rt_init_params(&s);
        for (int i = 0; i < 3; i++)
            assert_float_equal(get(&s, &params[0], i), 0.25, 0);
        for (int i = 0; i < 4; i++)
            assert_float_equal(get(&s, &params[1], i), i + 1, 0);
        double sum = 0, lo = 1e9, hi = -1e9;
        for (int i = 0; i < 1000; i++) {
            double x = get(&s, &params[2], i);
            sum += x;
            lo = fmin(lo, x);
            hi = fmax(hi, x);
        }
        assert_true(lo >= -2 && hi < 3 && lo < -1.95 && hi > 2.95);
        assert_float_equal(sum / 1000, 0.5, 0.25); /* std error 0.046 */
        double s1 = 0, s2 = 0;
        for (int i = 0; i < 10000; i++) {
            double x = get(&s, &params[3], i);
            s1 += x;
            s2 += x * x;
        }
        double mean = s1 / 10000, sd = sqrt(s2 / 10000 - mean * mean);
        assert_float_equal(mean, 1.0, 0.08); /* std error 0.02 */
        assert_float_equal(sd, 2.0, 0.06);   /* std error 0.014 */
        rt_session_free(&s);
    }
}

/* Draws happen parameter by parameter, element by element, from s->rng. */
static void test_init_params_draws_in_model_then_element_order(void **state) {
    (void)state;
    RtModel m = make_model(8);
    RtSession s;
    assert_int_equal(rt_session_init(&s, &m, 11, NULL), RT_OK);
    rt_init_params(&s);
    RtRng r;
    rt_rng_seed(&r, 11);
    for (int i = 0; i < 1000; i++)
        assert_float_equal(get(&s, &params[2], i), -2 + 5 * rt_rng_uniform(&r), 1e-15);
    for (int i = 0; i < 10000; i++)
        assert_float_equal(get(&s, &params[3], i), 1 + 2 * rt_rng_normal(&r), 1e-15);
    rt_session_free(&s);
}

/* One weight per test model: returns its values after rt_init_params. */
static void init_single(const RtTensor *t, RtInitKind kind, double *out, int64_t n) {
    RtModel m = {.name = "w", .elem_size = 8, .max_batch = 1, .arena_bytes = (size_t)n * 8,
                 .nparams = 1, .params = t};
    RtInit in = {.kind = kind};
    m.inits = &in;
    RtSession s;
    assert_int_equal(rt_session_init(&s, &m, 5, NULL), RT_OK);
    rt_init_params(&s);
    memcpy(out, s.arena, (size_t)n * 8);
    rt_session_free(&s);
}

static void check_glorot(const RtTensor *t, int64_t n, double limit) {
    static double v[20000];
    init_single(t, RT_INIT_GLOROT, v, n);
    double maxabs = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++) {
        maxabs = fmax(maxabs, fabs(v[i]));
        s2 += v[i] * v[i];
    }
    assert_true(maxabs <= limit);
    assert_true(maxabs > 0.9 * limit);
    if (n >= 10000) /* variance of U(-L, L) is L^2 / 3 */
        assert_float_equal(s2 / (double)n, limit * limit / 3, 0.05 * limit * limit / 3);
}

/* [in, out] = [300, 50]: L = sqrt(6 / 350). Swapping the fans would not
 * change L, so rank 3 [4, 5, 6] checks fan_in = 20, fan_out = 6 and rank 1
 * [1000] checks fan_in = fan_out = 1000. */
static void test_init_glorot_uses_fan_in_and_fan_out(void **state) {
    (void)state;
    RtTensor w2 = {.name = "W", .rank = 2, .dims = {300, 50}};
    check_glorot(&w2, 15000, sqrt(6.0 / 350));
    RtTensor w3 = {.name = "W", .rank = 3, .dims = {4, 5, 6}};
    check_glorot(&w3, 120, sqrt(6.0 / 26));
    RtTensor w1 = {.name = "b", .rank = 1, .dims = {1000}};
    check_glorot(&w1, 1000, sqrt(6.0 / 2000));
    RtTensor w0 = {.name = "s", .rank = 0};
    double one;
    init_single(&w0, RT_INIT_GLOROT, &one, 1);
    assert_true(fabs(one) <= sqrt(3.0));
}

/* He: std sqrt(2 / fan_in) with fan_in the first axis of [in, out]. */
static void test_init_he_has_std_sqrt_2_over_fan_in(void **state) {
    (void)state;
    static double v[20000];
    RtTensor w = {.name = "W", .rank = 2, .dims = {500, 40}};
    init_single(&w, RT_INIT_HE, v, 20000);
    double s1 = 0, s2 = 0;
    for (int i = 0; i < 20000; i++) {
        s1 += v[i];
        s2 += v[i] * v[i];
    }
    double mean = s1 / 20000, sd = sqrt(s2 / 20000 - mean * mean);
    assert_float_equal(mean, 0, 0.003);             /* std error 0.00045 */
    assert_float_equal(sd, sqrt(2.0 / 500), 0.002); /* 0.0632; fan_out would give 0.224 */
}

/* ---- the dropout key ---------------------------------------------------------
 * A model with a float lr, an int32 "rng" hyper (the dropout key, by the
 * convention for models without hyper_kinds) and an int32 value "k"; the
 * defaults are not whole numbers, to show that an int hyper never receives
 * float bits. */
static const RtTensor rng_hypers[] = {
    {.name = "lr", .rank = 0, .offset = 0},
    {.name = "rng", .dtype = RT_INT, .rank = 0, .offset = 8},
    {.name = "k", .dtype = RT_INT, .rank = 0, .offset = 12},
};
static const double rng_defaults[] = {0.5, 7.5, 2.75};

static RtModel rng_model(void) {
    RtModel m = {.name = "drop", .elem_size = 4, .max_batch = 1, .arena_bytes = 16,
                 .nhypers = 3, .hypers = rng_hypers, .hyper_defaults = rng_defaults};
    return m;
}

static int32_t rng_value(const RtSession *s) {
    return *(const int32_t *)rt_ptr(s, &rng_hypers[1]);
}

static void test_int_hyper_starts_as_int_and_set_hyper_keeps_it_int(void **state) {
    (void)state;
    RtModel m = rng_model();
    RtSession s;
    RtError err = {""};
    assert_int_equal(rt_session_init(&s, &m, 1, &err), RT_OK);
    assert_int_equal(rng_value(&s), 0); /* the key starts at 0, whatever its default */
    assert_int_equal(*(const int32_t *)rt_ptr(&s, &rng_hypers[2]), 2); /* (int32_t)2.75 */
    assert_float_equal(*(const float *)rt_ptr(&s, &rng_hypers[0]), 0.5, 0);
    assert_int_equal(rt_set_hyper(&s, "rng", 1234.0, &err), RT_OK);
    assert_int_equal(rng_value(&s), 1234);
    rt_session_free(&s);
}

/* Each call stores the low 32 bits of the session RNG's next draw. */
static void test_step_hypers_store_fresh_session_bits_in_rng(void **state) {
    (void)state;
    RtModel m = rng_model();
    RtSession a, b;
    RtError err = {""};
    assert_int_equal(rt_session_init(&a, &m, 9, &err), RT_OK);
    assert_int_equal(rt_session_init(&b, &m, 9, &err), RT_OK);
    RtRng ref;
    rt_rng_seed(&ref, 9);
    int32_t prev = 0;
    for (int k = 0; k < 4; k++) {
        rt_step_hypers(&a, 0);
        rt_step_hypers(&b, 0);
        uint32_t low = (uint32_t)rt_rng_next(&ref);
        int32_t want;
        memcpy(&want, &low, sizeof want);
        assert_int_equal(rng_value(&a), want);
        assert_int_equal(rng_value(&b), rng_value(&a)); /* same seed, same sequence */
        assert_int_not_equal(rng_value(&a), prev);
        prev = rng_value(&a);
    }
    assert_float_equal(*(const float *)rt_ptr(&a, &rng_hypers[0]), 0.5, 0); /* lr untouched */
    assert_int_equal(*(const int32_t *)rt_ptr(&a, &rng_hypers[2]), 2);     /* k too */
    RtSession c;
    assert_int_equal(rt_session_init(&c, &m, 10, &err), RT_OK);
    rt_step_hypers(&c, 0);
    rt_step_hypers(&a, 0);
    assert_int_not_equal(rng_value(&c), rng_value(&a));
    rt_session_free(&a);
    rt_session_free(&b);
    rt_session_free(&c);
}

/* A float "rng" (not the dropout key) and models without one draw nothing. */
static void test_step_hypers_ignore_float_rng_and_draw_nothing(void **state) {
    (void)state;
    RtModel m = make_model(4);
    RtTensor hs[2] = {hypers[0], hypers[1]};
    hs[1].name = "rng";
    m.hypers = hs;
    RtSession s;
    RtError err = {""};
    assert_int_equal(rt_session_init(&s, &m, 5, &err), RT_OK);
    RtRng before = s.rng;
    rt_step_hypers(&s, 0);
    assert_memory_equal(&before, &s.rng, sizeof before);
    assert_float_equal(get(&s, &hs[1], 0), (double)0.9f, 0);
    rt_session_free(&s);
}

/* ---- per-step hyperparameters by kind -------------------------------------------
 * lr (value), t (step), e (epoch), n (epochs) and key (an int32 RNG key
 * not named "rng"), float64 offsets; every default is 9, to show that only
 * the value gets its default. */
static const RtTensor kind_hypers[] = {
    {.name = "lr", .rank = 0, .offset = 0},  {.name = "t", .rank = 0, .offset = 8},
    {.name = "e", .rank = 0, .offset = 16},  {.name = "n", .rank = 0, .offset = 24},
    {.name = "key", .dtype = RT_INT, .rank = 0, .offset = 32},
};
static const RtHyperKind kinds[] = {RT_HYPER_VALUE, RT_HYPER_STEP, RT_HYPER_EPOCH,
                                    RT_HYPER_EPOCHS, RT_HYPER_RNG};
static const double nines[] = {9, 9, 9, 9, 9};

static RtModel kind_model(int elem_size) {
    RtModel m = {.name = "kinds", .elem_size = elem_size, .max_batch = 1, .arena_bytes = 40,
                 .nhypers = 5, .hypers = kind_hypers, .hyper_defaults = nines,
                 .hyper_kinds = kinds};
    return m;
}

/* t = step + 1, epoch = epochs finished, epochs = the argument, in the
 * model's float type; the key gets the session's next bits. */
static void test_step_hypers_store_t_epoch_epochs_and_key_by_kind(void **state) {
    (void)state;
    for (int es = 4; es <= 8; es += 4) {
        RtModel m = kind_model(es);
        RtSession s;
        RtError err = {""};
        assert_int_equal(rt_session_init(&s, &m, 21, &err), RT_OK);
        assert_float_equal(get(&s, &kind_hypers[0], 0), 9, 0);
        for (int i = 1; i < 4; i++)
            assert_float_equal(get(&s, &kind_hypers[i], 0), 0, 0);
        assert_int_equal(*(const int32_t *)rt_ptr(&s, &kind_hypers[4]), 0);
        s.step = 41;
        s.epoch = 3;
        RtRng ref = s.rng;
        rt_step_hypers(&s, 10);
        assert_float_equal(get(&s, &kind_hypers[0], 0), 9, 0);
        assert_float_equal(get(&s, &kind_hypers[1], 0), 42, 0);
        assert_float_equal(get(&s, &kind_hypers[2], 0), 3, 0);
        assert_float_equal(get(&s, &kind_hypers[3], 0), 10, 0);
        uint32_t low = (uint32_t)rt_rng_next(&ref);
        int32_t want;
        memcpy(&want, &low, sizeof want);
        assert_int_equal(*(const int32_t *)rt_ptr(&s, &kind_hypers[4]), want);
        assert_memory_equal(&s.rng, &ref, sizeof ref); /* exactly one draw */
        assert_int_equal(s.step, 41);                  /* not advanced */
        rt_session_free(&s);
    }
}

/* t, epoch and epochs must be floats, the key an int; an unknown kind is
 * refused. */
static void test_session_rejects_hyper_kinds_that_do_not_fit_their_type(void **state) {
    (void)state;
    RtModel m = kind_model(8);
    RtTensor hs[5];
    memcpy(hs, kind_hypers, sizeof hs);
    m.hypers = hs;
    RtSession s;
    RtError err = {""};
    hs[1].dtype = RT_INT;
    assert_int_equal(rt_session_init(&s, &m, 1, &err), RT_FAIL);
    assert_contains(err.msg, "hyperparameter 't' holds the step number, so it must be a float");
    hs[1].dtype = RT_FLOAT;
    hs[4].dtype = RT_FLOAT;
    assert_int_equal(rt_session_init(&s, &m, 1, &err), RT_FAIL);
    assert_contains(err.msg, "hyperparameter 'key' holds random bits, so it must be an int");
    hs[4].dtype = RT_INT;
    RtHyperKind bad[5];
    memcpy(bad, kinds, sizeof bad);
    bad[2] = (RtHyperKind)17;
    m.hyper_kinds = bad;
    assert_int_equal(rt_session_init(&s, &m, 1, &err), RT_FAIL);
    assert_contains(err.msg, "hyperparameter 'e' has unknown kind 17");
}

/* ---- optimizer states ------------------------------------------------------------
 * The toy model plus three states of parameter 'v' [2, 2] and 'c' [3]:
 * opt.m.v CONST 0 at 88080, opt.s.c VALUES at 88112, opt.r.v NORMAL at 88136. */
static const double sc_values[] = {7, 8, 9};
static const RtTensor states[] = {
    {.name = "opt.m.v", .rank = 2, .dims = {2, 2}, .offset = 88080},
    {.name = "opt.s.c", .rank = 1, .dims = {3}, .offset = 88112},
    {.name = "opt.r.v", .rank = 2, .dims = {2, 2}, .offset = 88136},
};
static const RtInit state_inits[] = {
    {.kind = RT_INIT_CONST, .a = 0},
    {.kind = RT_INIT_VALUES, .values = sc_values, .nvalues = 3},
    {.kind = RT_INIT_NORMAL, .a = 0, .b = 1},
};
static const int state_param[] = {1, 0, 1};

static RtModel state_model(void) {
    RtModel m = make_model(8);
    m.arena_bytes = 88168;
    m.nstates = 3;
    m.states = states;
    m.state_inits = state_inits;
    m.state_param = state_param;
    return m;
}

/* States are initialised after every parameter, so that adding states does
 * not change the parameters a seed gives. */
static void test_init_params_initialises_states_after_the_parameters(void **state) {
    (void)state;
    RtModel m = state_model(), plain = make_model(8);
    RtSession s, p;
    assert_int_equal(rt_session_init(&s, &m, 4, NULL), RT_OK);
    assert_int_equal(rt_session_init(&p, &plain, 4, NULL), RT_OK);
    memset(rt_ptr(&s, &states[0]), 0xff, 32); /* CONST 0 must overwrite this */
    rt_init_params(&s);
    rt_init_params(&p);
    assert_memory_equal(s.arena, p.arena, 88064); /* the parameters */
    for (int i = 0; i < 4; i++)
        assert_float_equal(get(&s, &states[0], i), 0, 0);
    for (int i = 0; i < 3; i++)
        assert_float_equal(get(&s, &states[1], i), 7 + i, 0);
    RtRng after_params = p.rng;
    for (int i = 0; i < 4; i++)
        assert_float_equal(get(&s, &states[2], i), rt_rng_normal(&after_params), 1e-15);
    rt_session_free(&s);
    rt_session_free(&p);
}

static void test_session_rejects_bad_states_and_learning_rate_root(void **state) {
    (void)state;
    RtTensor st[3];
    memcpy(st, states, sizeof st);
    RtModel m = state_model();
    m.states = st;
    RtSession s;
    RtError err = {""};
    st[0].dims[0] = RT_DIM_BATCH;
    assert_int_equal(rt_session_init(&s, &m, 1, &err), RT_FAIL);
    assert_contains(err.msg, "optimizer state 'opt.m.v' [B, 2] must be a float tensor without a "
                             "batch dimension");
    st[0].dims[0] = 2;
    st[2].offset = 88144; /* 32 bytes from here pass the end */
    assert_int_equal(rt_session_init(&s, &m, 1, &err), RT_FAIL);
    assert_contains(err.msg, "optimizer state 'opt.r.v' [2, 2] at byte 88144 needs 32 bytes");
    st[2].offset = 88136;
    int owners[] = {1, 4, 1};
    m.state_param = owners;
    assert_int_equal(rt_session_init(&s, &m, 1, &err), RT_FAIL);
    assert_contains(err.msg, "optimizer state 'opt.s.c' belongs to parameter 4; the model has 4");
    m.state_param = NULL;
    assert_int_equal(rt_session_init(&s, &m, 1, &err), RT_FAIL);
    assert_contains(err.msg, "the optimizer state table is missing");
    m.state_param = state_param;
    assert_int_equal(rt_session_init(&s, &m, 1, &err), RT_OK);
    rt_session_free(&s);

    /* the learning-rate root: after the loss, a float scalar */
    static const RtTensor roots[] = {{.name = "loss", .rank = 0, .offset = 88064},
                                     {.name = "lr", .rank = 1, .dims = {2}, .offset = 88064}};
    m.train = (RtProgram){NULL, 2, roots};
    m.train_lr_root = 2;
    assert_int_equal(rt_session_init(&s, &m, 1, &err), RT_FAIL);
    assert_contains(err.msg, "learning-rate root 2; the train program has 2 roots");
    m.train_lr_root = 1;
    assert_int_equal(rt_session_init(&s, &m, 1, &err), RT_FAIL);
    assert_contains(err.msg, "the train program's learning rate 'lr' must be a float scalar");
    m.train.nroots = 1;
    m.train_lr_root = 0;
    assert_int_equal(rt_session_init(&s, &m, 1, &err), RT_OK);
    rt_session_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session_arena_is_aligned_zeroed_with_hyper_defaults),
        cmocka_unit_test(test_session_seeds_rng_from_seed),
        cmocka_unit_test(test_session_rejects_tensor_past_arena_end),
        cmocka_unit_test(test_session_rejects_values_init_of_wrong_length),
        cmocka_unit_test(test_session_rejects_bad_elem_size),
        cmocka_unit_test(test_set_hyper_writes_model_elem_type_and_rejects_unknown),
        cmocka_unit_test(test_init_params_const_values_uniform_normal),
        cmocka_unit_test(test_init_params_draws_in_model_then_element_order),
        cmocka_unit_test(test_init_glorot_uses_fan_in_and_fan_out),
        cmocka_unit_test(test_init_he_has_std_sqrt_2_over_fan_in),
        cmocka_unit_test(test_int_hyper_starts_as_int_and_set_hyper_keeps_it_int),
        cmocka_unit_test(test_step_hypers_store_fresh_session_bits_in_rng),
        cmocka_unit_test(test_step_hypers_ignore_float_rng_and_draw_nothing),
        cmocka_unit_test(test_step_hypers_store_t_epoch_epochs_and_key_by_kind),
        cmocka_unit_test(test_session_rejects_hyper_kinds_that_do_not_fit_their_type),
        cmocka_unit_test(test_init_params_initialises_states_after_the_parameters),
        cmocka_unit_test(test_session_rejects_bad_states_and_learning_rate_root),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
