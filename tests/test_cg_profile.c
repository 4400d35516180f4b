/* test_cg_profile.c: the profiled train program (PLAN_PROFILE) through
 * planning, codegen and the JIT, on examples/mnist_mlp.nn (matrix products,
 * fused loops split across the pool, dropout, softmax and cross-entropy,
 * Adam with an lr schedule).
 *
 * What is checked: the counters come after everything else in the
 * persistent region (after the leaves, and after the numerics status word
 * and backups when both flags are on) and move no other offset; only the
 * train program is profiled; the optimised module calls rt_profile_clock
 * once before the kernels and once after each (none without the flag);
 * after N runs from the same weights and data, a profiled program (and a
 * profiled and checked one) leaves every parameter, optimizer state and
 * root bit for bit as the plain program does; the runs counter is N, every
 * kernel's nanoseconds are >= 0 and add up to the program's, the matrix
 * products' are > 0, and the program's lie between 1 us a run and the wall
 * time around the runs; the RtModel says where the counters are.
 *
 * Dimension legend: B the batch dimension (planned and run with BATCH).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "support.h"

enum { BATCH = 32, RUNS = 7 };

static const char model_path[] = GRADC_SOURCE_DIR "/examples/mnist_mlp.nn";

/* examples/mnist_mlp.nn with its training graph, optimised (not planned). */
static Compiled *load(void) {
    char *text = slurp(model_path);
    Compiled *c = build_graph(model_path, text);
    free(text);
    return c;
}

/* Plan the train and eval programs with flags, JIT them, and start a
 * session (seed 1) with the model's initial weights. */
static Compiled *compile(unsigned flags) {
    Compiled *c = load();
    c->plan = ir_plan_flags(c->g, BATCH, 4, 1u << PROG_TRAIN | 1u << PROG_EVAL, flags);
    jit_session(c, 4);
    return c;
}

static void release(Compiled *c) {
    if (c->s.arena)
        rt_session_free(&c->s);
    cg_free(c->cg);
    arena_free(c->a);
    free(c);
}

static bool is_leaf(const Node *x) {
    return !x->dead &&
           (x->op == OP_INPUT || x->op == OP_PARAM || x->op == OP_STATE || x->op == OP_HYPER);
}

/* ---- plans ----------------------------------------------------------------------- */

static void test_counters_come_after_everything_else(void **state) {
    (void)state;
    Compiled *c = load();
    unsigned both = 1u << PROG_TRAIN | 1u << PROG_EVAL;
    Plan *plain = ir_plan_flags(c->g, BATCH, 4, both, 0);
    Plan *prof = ir_plan_flags(c->g, BATCH, 4, both, PLAN_PROFILE);
    Plan *chk = ir_plan_flags(c->g, BATCH, 4, both, PLAN_CHECK_NUMERICS);
    Plan *chkprof = ir_plan_flags(c->g, BATCH, 4, both, PLAN_CHECK_NUMERICS | PLAN_PROFILE);
    assert_true(plain->profile_counters == PLAN_NONE && chk->profile_counters == PLAN_NONE);
    int nk = prof->prog[PROG_TRAIN].kernels.len;
    assert_true(nk > 10);
    assert_int_equal(plain->prog[PROG_TRAIN].kernels.len, nk);
    assert_int_equal(chkprof->prog[PROG_TRAIN].kernels.len, nk);
    /* Right after the leaves; with checks, after the status word and the
     * backups; nk + 2 int64s before the temporaries. */
    assert_int_equal(prof->profile_counters, plain->persistent_bytes);
    assert_int_equal(chkprof->profile_counters, chk->persistent_bytes);
    assert_int_equal(chkprof->numerics_status, chk->numerics_status);
    assert_true(prof->persistent_bytes >= prof->profile_counters + 8 * (size_t)(nk + 2));
    assert_true(prof->persistent_bytes < prof->profile_counters + 8 * (size_t)(nk + 2) + 64);
    /* Only the train program is profiled. */
    assert_true(prof->prog[PROG_TRAIN].profile && chkprof->prog[PROG_TRAIN].profile);
    assert_false(prof->prog[PROG_EVAL].profile || plain->prog[PROG_TRAIN].profile);
    assert_true(chkprof->prog[PROG_TRAIN].check_numerics);
    for (int i = 0; i < c->g->nodes.len; i++) {
        const Node *x = c->g->nodes.items[i];
        if (!is_leaf(x))
            continue;
        size_t off = plain->prog[PROG_TRAIN].offset[i];
        assert_int_equal(prof->prog[PROG_TRAIN].offset[i], off);
        assert_int_equal(chkprof->prog[PROG_TRAIN].offset[i], off);
        assert_true(off < prof->profile_counters);
        if (x->op == OP_PARAM || x->op == OP_STATE)
            assert_int_equal(chkprof->numerics_backup[i], chk->numerics_backup[i]);
    }
    /* The temporaries move up by the counters' bytes, and no further. */
    size_t shift = prof->persistent_bytes - plain->persistent_bytes;
    for (int k = PROG_TRAIN; k <= PROG_EVAL; k += PROG_EVAL - PROG_TRAIN)
        for (int i = 0; i < c->g->nodes.len; i++) {
            size_t a = plain->prog[k].offset[i], b = prof->prog[k].offset[i];
            if (a == PLAN_NONE || a < plain->persistent_bytes)
                assert_int_equal(b, a);
            else
                assert_int_equal(b, a + shift);
        }
    /* Without the train program there is nothing to count. */
    Plan *eval = ir_plan_flags(c->g, BATCH, 4, 1u << PROG_EVAL, PLAN_PROFILE);
    assert_true(eval->profile_counters == PLAN_NONE);
    release(c);
}

/* Occurrences of needle in hay. */
static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void test_module_reads_the_clock_around_every_kernel(void **state) {
    (void)state;
    for (int checked = 0; checked < 2; checked++) {
        Compiled *plain = compile(checked ? PLAN_CHECK_NUMERICS : 0);
        Compiled *prof = compile(PLAN_PROFILE | (checked ? PLAN_CHECK_NUMERICS : 0));
        char *a = cg_llvm_ir(plain->cg), *b = cg_llvm_ir(prof->cg);
        assert_non_null(a);
        assert_non_null(b);
        assert_null(strstr(a, "rt_profile_clock"));
        int nk = prof->plan->prog[PROG_TRAIN].kernels.len;
        /* After O2: still one call before the kernels and one after each. */
        assert_int_equal(count(b, "call i64 @rt_profile_clock()"), nk + 1);
        assert_int_equal(count(b, "declare i64 @rt_profile_clock()"), 1);
        free(a);
        free(b);
        release(plain);
        release(prof);
    }
}

/* ---- running ----------------------------------------------------------------------- */

/* The same batch before every run: pixels in [0, 1), labels 0..9. */
static void fill_batch(Compiled *c) {
    const RtModel *m = c->rm;
    for (int i = 0; i < m->ninputs; i++) {
        const RtTensor *t = &m->inputs[i];
        int64_t n = rt_numel(t, BATCH);
        void *p = rt_ptr(&c->s, t);
        uint64_t s = 99 + (uint64_t)i;
        for (int64_t k = 0; k < n; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            if (t->dtype == RT_INT)
                ((int32_t *)p)[k] = (int32_t)(s >> 33) % 10;
            else
                ((float *)p)[k] = (float)(s >> 40) / 16777216.0f;
        }
    }
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* RUNS steps as rt_train takes them (data, per-step hypers, the program);
 * the wall nanoseconds around the runs. */
static int64_t train(Compiled *c) {
    int64_t ns = 0;
    for (int r = 0; r < RUNS; r++) {
        fill_batch(c);
        rt_step_hypers(&c->s, 1);
        c->s.step++;
        int64_t t0 = now_ns();
        c->rm->train.fn(c->s.arena, BATCH);
        ns += now_ns() - t0;
    }
    return ns;
}

static void assert_same_tensor(const Compiled *a, const Compiled *b, const RtTensor *ta,
                               const RtTensor *tb) {
    assert_string_equal(ta->name ? ta->name : "", tb->name ? tb->name : "");
    size_t n = (size_t)rt_numel(ta, BATCH) * 4;
    assert_int_equal(n, (size_t)rt_numel(tb, BATCH) * 4);
    if (memcmp(rt_ptr(&a->s, ta), rt_ptr(&b->s, tb), n) != 0)
        fail_msg("'%s' differs between the plain and the profiled program",
                 ta->name ? ta->name : "a root");
}

static void test_profiled_program_computes_the_same_bits_and_counts(void **state) {
    (void)state;
    for (int checked = 0; checked < 2; checked++) {
        unsigned chk = checked ? PLAN_CHECK_NUMERICS : 0;
        Compiled *plain = compile(chk), *prof = compile(PLAN_PROFILE | chk);
        const RtModel *pm = plain->rm, *rm = prof->rm;
        int nk = prof->plan->prog[PROG_TRAIN].kernels.len;
        assert_int_equal(rm->profile_counters, prof->plan->profile_counters);
        assert_int_equal(rm->profile_kernels, nk);
        assert_int_equal(pm->profile_counters, 0);
        size_t wbytes = (size_t)rt_numel(&rm->params[0], 1) * 4;
        void *w0 = malloc(wbytes);
        memcpy(w0, rt_ptr(&prof->s, &rm->params[0]), wbytes);
        train(plain);
        int64_t wall = train(prof);
        assert_memory_not_equal(w0, rt_ptr(&prof->s, &rm->params[0]), wbytes);
        free(w0);
        /* Every parameter, optimizer state and root (loss, lr) as the
         * plain program leaves them, bit for bit; the steps changed them. */
        for (int i = 0; i < pm->nparams; i++)
            assert_same_tensor(plain, prof, &pm->params[i], &rm->params[i]);
        for (int i = 0; i < pm->nstates; i++)
            assert_same_tensor(plain, prof, &pm->states[i], &rm->states[i]);
        assert_int_equal(pm->train.nroots, rm->train.nroots);
        assert_true(pm->train_lr_root == 1 && rm->train_lr_root == 1);
        for (int i = 0; i <= pm->train_lr_root; i++)
            assert_same_tensor(plain, prof, &pm->train.roots[i], &rm->train.roots[i]);
        float loss = *(float *)rt_ptr(&prof->s, &rm->train.roots[0]);
        assert_true(isfinite(loss) && loss > 0);
        if (checked)
            assert_int_equal(*(int64_t *)((char *)prof->s.arena + rm->nonfinite_status), 0);

        int64_t c[256];
        assert_true(nk + 2 <= 256);
        memcpy(c, (char *)prof->s.arena + rm->profile_counters, sizeof *c * (size_t)(nk + 2));
        assert_int_equal(c[nk + 1], RUNS);
        int64_t sum = 0;
        const Program *p = &prof->plan->prog[PROG_TRAIN];
        int gemms = 0;
        for (int k = 0; k < nk; k++) {
            assert_true(c[k] >= 0);
            sum += c[k];
            if (p->kernels.items[k].root->op == OP_MATMUL) {
                assert_true(c[k] > 0);
                gemms++;
            }
        }
        assert_int_equal(gemms, 5);
        /* The program's time is its kernels' (the same clock reads), in
         * nanoseconds: inside the wall time around the runs, and more than a
         * microsecond a run (its matrix products are 26 MFLOP). */
        assert_int_equal(sum, c[nk]);
        assert_true(c[nk] <= wall);
        assert_true(c[nk] > 1000 * RUNS);
        release(plain);
        release(prof);
    }
}

int main(void) {
    rt_setup(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters_come_after_everything_else),
        cmocka_unit_test(test_module_reads_the_clock_around_every_kernel),
        cmocka_unit_test(test_profiled_program_computes_the_same_bits_and_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
