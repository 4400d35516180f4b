/* test_cg_numerics.c: numerics checks (PLAN_CHECK_NUMERICS) and the unfused
 * plan (PLAN_NO_FUSE) through planning, codegen and the JIT.
 *
 * What is checked: without flags the plan and the module are exactly
 * ir_plan's; checks keep every leaf where it was and put the status word
 * and the backups after them; the unfused plan has the same persistent
 * region and a kernel per computed node; a checked program computes what
 * the unchecked one does, bit for bit, and leaves the status word 0; a NaN
 * or Inf stored by a kernel op (a matrix product), by a fused loop or by
 * an update kernel sets the status to that kernel's index + 1, runs no
 * kernel after it, and leaves every parameter and state as it was, also
 * those an earlier update kernel had already overwritten; the unfused
 * program stops at the very node that made the value.
 *
 * Dimension legend: B batch (planned MAXB, run RUN), K the input width, N
 * the output width; W is [K, N].
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

#include "cg_fixture.h"
#include "codegen/rtmodel.h"

enum { K = 7, N = 3, RUN = 6 };

static Node *bin(Graph *g, Op op, Node *a, Node *b) { return ir_binary(g, op, a, b, L0); }

/* loss = mean(log(x @ W + 1) * y): a matrix product (a kernel op), then a
 * fused loop with the log in it; SGD on W plus a second parameter V
 * updated by p * big, with a state s of W updated by s + g. */
typedef struct M {
    Node *x, *y, *w, *v, *s, *big, *logn;
} M;

static M build(T *t) {
    Graph *g = t->g;
    M m = {.x = input(t, "x", SH2(B, K)), .y = input(t, "y", SH2(B, N)),
           .w = param(t, "W", SH2(K, N)), .v = param(t, "V", SH1(4))};
    Node *z = bin(g, OP_ADD, ir_matmul(g, m.x, m.w, false, false, L0), ir_const(g, 1, L0));
    m.logn = ir_unary(g, OP_LOG, z, L0);
    Node *lv = ir_reduce(g, OP_SUM, m.v, 0, false, L0);
    g->loss = bin(g, OP_ADD, ir_reduce(g, OP_MEAN, bin(g, OP_MUL, m.logn, m.y), 0, false, L0),
                  bin(g, OP_MUL, lv, ir_const(g, 0.5, L0)));
    ad_backward(g);
    ir_update_begin(g);
    g->lr = ir_hyper(g, "lr", 0.1);
    m.big = ir_hyper(g, "big", 2);
    Param *pw = &g->params.items[0], *pv = &g->params.items[1];
    m.s = ir_state(g, "opt.s.W", 0, (Init){.kind = INIT_CONST}, L0);
    ir_assign(g, m.s, bin(g, OP_ADD, m.s, pw->grad));
    ir_assign(g, pw->node, bin(g, OP_SUB, pw->node, bin(g, OP_MUL, g->lr, pw->grad)));
    /* V's rule also reads mix * sum(dW) (mix is 0): V's update waits for
     * W's gradient, so it runs after W's update (schedule_updates_early). */
    Node *mix = ir_hyper(g, "mix", 0);
    Node *dw = bin(g, OP_MUL, mix, ir_reduce(g, OP_SUM, pw->grad, 0, false, L0));
    ir_assign(g, pv->node, bin(g, OP_ADD, bin(g, OP_ADD, bin(g, OP_MUL, pv->node, m.big), pv->grad), dw));
    ir_update_end(g);
    return m;
}

/* t_compile with plan flags, for the train program only. */
static void compile_flags(T *t, unsigned flags) {
    assert_int_equal(t->d.nerrors, 0);
    t->elem_size = 4;
    ir_optimize(t->g);
    t->plan = ir_plan_flags(t->g, MAXB, 4, 1u << PROG_TRAIN, flags);
    CgOptions o = {.elem_size = 4, .opt_level = 2};
    t->m = cg_compile(t->g, t->plan, &o, &t->d);
    assert_non_null(t->m);
    size_t n = (t->plan->arena_bytes + 63) & ~(size_t)63;
    t->mem = aligned_alloc(64, n);
    assert_non_null(t->mem);
    memset(t->mem, 0, n);
}

static void set_hyper(T *t, const Node *h, double v) { set(t, h, 0, v); }

/* Inputs and parameters: finite, x @ W + 1 in [0.5, 1.5]. */
static void fill_all(T *t, const M *m) {
    free(fill(t, m->x, MAXB * K, -0.5, 0.5, 1));
    free(fill(t, m->y, MAXB * N, 0, 1, 2));
    free(fill(t, m->w, K * N, -0.1, 0.1, 3));
    free(fill(t, m->v, 4, 1, 2, 4));
    free(fill(t, m->s, K * N, -1, 1, 5));
    set_hyper(t, t->g->lr, 0.1);
    set_hyper(t, m->big, 2);
}

static int64_t status(T *t) {
    int64_t v;
    memcpy(&v, t->mem + t->plan->numerics_status, sizeof v);
    return v;
}

/* The persistent bytes of every parameter and state, to compare. */
static unsigned char *params_copy(T *t, const M *m) {
    unsigned char *c = malloc(4 * (K * N * 2 + 4));
    memcpy(c, t_ptr(t, PROG_TRAIN, m->w), 4 * K * N);
    memcpy(c + 4 * K * N, t_ptr(t, PROG_TRAIN, m->s), 4 * K * N);
    memcpy(c + 8 * K * N, t_ptr(t, PROG_TRAIN, m->v), 4 * 4);
    return c;
}

static void assert_params_are(T *t, const M *m, const unsigned char *c) {
    unsigned char *now = params_copy(t, m);
    if (memcmp(now, c, 4 * (K * N * 2 + 4)) != 0)
        fail_msg("the parameters or states changed");
    free(now);
}

/* The index of the train program's kernel whose root (or a further root)
 * is n, or -1. */
static int kernel_of(T *t, const Node *n) {
    const Program *p = &t->plan->prog[PROG_TRAIN];
    for (int k = 0; k < p->kernels.len; k++) {
        const Kernel *kn = &p->kernels.items[k];
        if (kn->root == n)
            return k;
        for (int i = 0; i < kn->more.len; i++)
            if (kn->more.items[i] == n)
                return k;
    }
    return -1;
}

/* The update kernel that stores parameter or state dest. */
static int update_kernel_of(T *t, const Node *dest) {
    for (int i = 0; i < t->g->updates.len; i++)
        if (t->g->updates.items[i]->src[0] == dest)
            return kernel_of(t, t->g->updates.items[i]);
    return -1;
}

/* ---- plans ------------------------------------------------------------------------ */

static void test_plan_without_flags_is_ir_plan(void **state) {
    (void)state;
    T a, b;
    t_init(&a, "m");
    t_init(&b, "m");
    build(&a);
    build(&b);
    ir_optimize(a.g);
    ir_optimize(b.g);
    Plan *pa = ir_plan(a.g, MAXB, 4), *pb = ir_plan_flags(b.g, MAXB, 4, (1u << PROG_COUNT) - 1, 0);
    assert_int_equal(pa->arena_bytes, pb->arena_bytes);
    assert_int_equal(pa->persistent_bytes, pb->persistent_bytes);
    assert_true(pb->numerics_status == PLAN_NONE && !pb->numerics_backup);
    for (int k = 0; k < PROG_COUNT; k++) {
        assert_int_equal(pa->prog[k].kernels.len, pb->prog[k].kernels.len);
        assert_false(pb->prog[k].check_numerics);
        for (int i = 0; i < a.g->nodes.len; i++)
            assert_int_equal(pa->prog[k].offset[i], pb->prog[k].offset[i]);
    }
    /* The same module, to the byte. */
    CgOptions o = {.elem_size = 4, .opt_level = 2};
    CgModule *ma = cg_compile(a.g, pa, &o, &a.d), *mb = cg_compile(b.g, pb, &o, &b.d);
    assert_non_null(ma);
    assert_non_null(mb);
    char *ia = cg_llvm_ir(ma), *ib = cg_llvm_ir(mb);
    assert_string_equal(ia, ib);
    assert_null(strstr(ia, "nonfinite"));
    free(ia);
    free(ib);
    cg_free(ma);
    cg_free(mb);
    arena_free(a.a);
    arena_free(b.a);
}

static void test_checks_and_no_fuse_keep_the_persistent_layout(void **state) {
    (void)state;
    T t;
    t_init(&t, "m");
    build(&t);
    ir_optimize(t.g);
    Plan *plain = ir_plan_flags(t.g, MAXB, 4, 1u << PROG_TRAIN, 0);
    Plan *chk = ir_plan_flags(t.g, MAXB, 4, 1u << PROG_TRAIN, PLAN_CHECK_NUMERICS);
    Plan *slow =
        ir_plan_flags(t.g, MAXB, 4, 1u << PROG_TRAIN, PLAN_CHECK_NUMERICS | PLAN_NO_FUSE);
    assert_true(chk->prog[PROG_TRAIN].check_numerics && !chk->prog[PROG_EVAL].check_numerics);
    assert_int_equal(chk->numerics_status, plain->persistent_bytes);
    assert_int_equal(chk->persistent_bytes, slow->persistent_bytes);
    assert_int_equal(chk->numerics_status, slow->numerics_status);
    size_t backups = 0;
    for (int i = 0; i < t.g->nodes.len; i++) {
        Node *x = t.g->nodes.items[i];
        if (x->dead || !(x->op == OP_INPUT || x->op == OP_PARAM || x->op == OP_STATE ||
                         x->op == OP_HYPER))
            continue;
        size_t off = plain->prog[PROG_TRAIN].offset[i];
        assert_int_equal(chk->prog[PROG_TRAIN].offset[i], off);
        assert_int_equal(slow->prog[PROG_TRAIN].offset[i], off);
        if (x->op == OP_PARAM || x->op == OP_STATE) {
            size_t bk = chk->numerics_backup[i];
            assert_true(bk > chk->numerics_status && bk < chk->persistent_bytes);
            assert_int_equal(slow->numerics_backup[i], bk);
            backups += node_bytes(x, MAXB, 4);
        } else {
            assert_true(chk->numerics_backup[i] == PLAN_NONE);
        }
    }
    assert_true(chk->persistent_bytes >= plain->persistent_bytes + 8 + backups);
    /* Fused: fewer kernels than computed nodes. Unfused: one per computed
     * node that is not a constant (the ASSIGNs of W, s share one). */
    const Program *pf = &chk->prog[PROG_TRAIN], *ps = &slow->prog[PROG_TRAIN];
    int computed = 0, assigns = 0;
    for (int i = 0; i < t.g->nodes.len; i++) {
        Node *x = t.g->nodes.items[i];
        if (x->dead || ps->offset[i] == PLAN_NONE || x->op == OP_INPUT || x->op == OP_PARAM ||
            x->op == OP_STATE || x->op == OP_HYPER || op_has(x->op, OPF_VIEW))
            continue;
        if (x->op == OP_ASSIGN)
            assigns++;
        else
            computed++;
    }
    assert_int_equal(assigns, 3);
    assert_int_equal(ps->kernels.len, computed + 2);
    assert_true(pf->kernels.len < ps->kernels.len);
    for (int k = 0; k < ps->kernels.len; k++) {
        const Kernel *kn = &ps->kernels.items[k];
        for (int b = 0; b < kn->body.len; b++) {
            Node *x = kn->body.items[b];
            assert_true(x == kn->root || x->op == OP_CONST || x->op == OP_NUMEL ||
                        x->op == OP_ASSIGN);
        }
    }
    arena_free(t.a);
}

/* ---- running ------------------------------------------------------------------------ */

static void test_checked_program_computes_the_same_bits(void **state) {
    (void)state;
    T a, b;
    t_init(&a, "m");
    t_init(&b, "m");
    M ma = build(&a), mb = build(&b);
    compile_flags(&a, 0);
    compile_flags(&b, PLAN_CHECK_NUMERICS);
    fill_all(&a, &ma);
    fill_all(&b, &mb);
    for (int step = 0; step < 3; step++) {
        t_run(&a, PROG_TRAIN, RUN);
        t_run(&b, PROG_TRAIN, RUN);
        assert_int_equal(status(&b), 0);
    }
    const Node *outs[] = {ma.w, ma.s, ma.v};
    const Node *outs_b[] = {mb.w, mb.s, mb.v};
    int64_t sizes[] = {K * N, K * N, 4};
    for (int i = 0; i < 3; i++)
        assert_memory_equal(t_ptr(&a, PROG_TRAIN, outs[i]), t_ptr(&b, PROG_TRAIN, outs_b[i]),
                            4 * (size_t)sizes[i]);
    assert_memory_equal(t_ptr(&a, PROG_TRAIN, a.g->loss), t_ptr(&b, PROG_TRAIN, b.g->loss), 4);
    t_free(&a);
    t_free(&b);
}

/* A NaN in x: the matrix product (a kernel op, scanned after the BLAS
 * call) is the first kernel to store one. */
static void test_nan_in_a_matmul_stops_at_that_kernel(void **state) {
    (void)state;
    T t;
    t_init(&t, "m");
    M m = build(&t);
    compile_flags(&t, PLAN_CHECK_NUMERICS);
    fill_all(&t, &m);
    set(&t, m.x, 2 * K + 3, NAN);
    float *loss = t_ptr(&t, PROG_TRAIN, t.g->loss);
    *loss = 12345;
    unsigned char *before = params_copy(&t, &m);
    t_run(&t, PROG_TRAIN, RUN);
    const Program *p = &t.plan->prog[PROG_TRAIN];
    int64_t k = status(&t) - 1;
    assert_true(k >= 0 && k < p->kernels.len);
    assert_int_equal(p->kernels.items[k].root->op, OP_MATMUL);
    assert_false(p->kernels.items[k].fused);
    assert_true(*loss == 12345); /* the loss's kernel did not run */
    assert_params_are(&t, &m, before);
    free(before);
    t_free(&t);
}

/* x @ W + 1 = 0 somewhere: log gives -inf inside the fused loop of the
 * loss's terms; the unfused program stops at the log itself. */
static void test_log_of_zero_stops_the_fused_loop_and_the_unfused_log(void **state) {
    (void)state;
    for (int unfused = 0; unfused < 2; unfused++) {
        T t;
        t_init(&t, "m");
        M m = build(&t);
        compile_flags(&t, PLAN_CHECK_NUMERICS | (unfused ? PLAN_NO_FUSE : 0));
        fill_all(&t, &m);
        for (int i = 0; i < K * N; i++)
            set(&t, m.w, i, 0);
        set(&t, m.x, 0, 1); /* row 0: x[0, 0] * W[0, :] + 1 = 0 */
        for (int j = 0; j < N; j++)
            set(&t, m.w, j, -1);
        unsigned char *before = params_copy(&t, &m);
        t_run(&t, PROG_TRAIN, RUN);
        const Program *p = &t.plan->prog[PROG_TRAIN];
        int64_t k = status(&t) - 1;
        assert_true(k >= 0 && k < p->kernels.len);
        const Kernel *kn = &p->kernels.items[k];
        if (unfused) {
            assert_ptr_equal(kn->root, m.logn);
        } else {
            assert_true(kn->fused);
            bool has_log = false;
            for (int b = 0; b < kn->body.len; b++)
                has_log |= kn->body.items[b] == m.logn;
            assert_true(has_log);
        }
        float *z = t_ptr(&t, PROG_TRAIN, kn->root);
        if (unfused)
            assert_true(isinf(z[0]) && z[0] < 0);
        else
            assert_false(isfinite(z[0]));
        assert_params_are(&t, &m, before);
        free(before);
        t_free(&t);
    }
}

/* V * big overflows in V's update kernel, which runs after W's (which
 * stored W and s already): status names V's kernel and W, s and V are all
 * back to their values before the run. */
static void test_update_overflow_restores_every_parameter_and_state(void **state) {
    (void)state;
    T t;
    t_init(&t, "m");
    M m = build(&t);
    compile_flags(&t, PLAN_CHECK_NUMERICS);
    fill_all(&t, &m);
    set_hyper(&t, m.big, 1e38);
    free(fill(&t, m.v, 4, 10, 20, 6)); /* V * big > FLT_MAX */
    int kw = update_kernel_of(&t, m.w), kv = update_kernel_of(&t, m.v);
    assert_int_equal(update_kernel_of(&t, m.s), kw);
    assert_true(kw >= 0 && kv > kw);
    unsigned char *before = params_copy(&t, &m);
    t_run(&t, PROG_TRAIN, RUN);
    assert_int_equal(status(&t), kv + 1);
    assert_params_are(&t, &m, before);
    /* The backups hold the old values W's kernel overwrote. */
    assert_memory_equal(t.mem + t.plan->numerics_backup[m.w->id], before, 4 * K * N);
    /* With big finite again the same arena trains: W moves, status 0. */
    set_hyper(&t, m.big, 2);
    memset(t.mem + t.plan->numerics_status, 0, 8);
    t_run(&t, PROG_TRAIN, RUN);
    assert_int_equal(status(&t), 0);
    assert_memory_not_equal(t_ptr(&t, PROG_TRAIN, m.w), before, 4 * K * N);
    free(before);
    t_free(&t);
}

/* The RtModel tells the runtime where the status word is; 0 without. */
static void test_rt_model_has_the_status_word_only_when_checked(void **state) {
    (void)state;
    for (int checked = 0; checked < 2; checked++) {
        T t;
        t_init(&t, "m");
        build(&t);
        compile_flags(&t, checked ? PLAN_CHECK_NUMERICS : 0);
        RtModel *rm = cg_rt_model_jit(t.a, t.g, t.plan, t.m);
        assert_int_equal(rm->nonfinite_status, checked ? t.plan->numerics_status : 0);
        t_free(&t);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_without_flags_is_ir_plan),
        cmocka_unit_test(test_checks_and_no_fuse_keep_the_persistent_layout),
        cmocka_unit_test(test_checked_program_computes_the_same_bits),
        cmocka_unit_test(test_nan_in_a_matmul_stops_at_that_kernel),
        cmocka_unit_test(test_log_of_zero_stops_the_fused_loop_and_the_unfused_log),
        cmocka_unit_test(test_update_overflow_restores_every_parameter_and_state),
        cmocka_unit_test(test_rt_model_has_the_status_word_only_when_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
