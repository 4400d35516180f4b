/* test_cg_update.c: optimizer updates through fusion, codegen and the JIT:
 * an update rule built by hand the way the front end lowers one (hypers,
 * STATE leaves, one ASSIGN per parameter and state), planned, compiled and
 * stepped, against the same rule in C (double).
 *
 * What is checked: each parameter's update is one loop that stores the
 * parameter and all its states (one Kernel with root + more; in the
 * optimised IR every vector block of the loop stores all of them and calls
 * no function); several steps of Adam with bias correction match the
 * reference (float64 to 1e-12, float32 to 1e-6); each iteration loads the
 * old values before it stores a new one; a value read from another
 * parameter, or a reduction of the parameter itself, is computed before
 * any update overwrites it; a scalar schedule of t shared by two updates is
 * computed once and is the train program's lr root; the RtModel describes
 * hypers' kinds, states and the lr root.
 *
 * Dimension legend: B batch (planned MAXB, run RUN), K the input width, N
 * the output width; W is [K, N] = [37, 5] (185 elements: not a multiple of
 * any vector width, so the loop's remainder runs too).
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

enum { K = 37, N = 5, RUN = 6 };

/* ---- the model and the rule ------------------------------------------------------ */

/* loss = mean((x @ W - y)^2), x [B, K], y [B, N], W [K, N]. */
typedef struct Lsq {
    Node *x, *y, *w;
} Lsq;

static Lsq lsq_model(T *t, const char *wname) {
    Lsq m = {input(t, "x", SH2(B, K)), input(t, "y", SH2(B, N)), param(t, wname, SH2(K, N))};
    Node *e = ir_binary(t->g, OP_SUB, ir_matmul(t->g, m.x, m.w, false, false, L0), m.y, L0);
    t->g->loss = ir_reduce(t->g, OP_MEAN, ir_binary(t->g, OP_MUL, e, e, L0), 0, false, L0);
    return m;
}

/* dW = x^T (2 (x W - y) / (B N)) for the first `run` rows, in double. */
static void ref_lsq_grad(const double *x, const double *y, const double *w, int run, double *dw) {
    memset(dw, 0, sizeof(double) * K * N);
    for (int r = 0; r < run; r++)
        for (int j = 0; j < N; j++) {
            double s = -y[r * N + j];
            for (int k = 0; k < K; k++)
                s += x[r * K + k] * w[k * N + j];
            double d = 2 * s / (run * N);
            for (int k = 0; k < K; k++)
                dw[k * N + j] += x[r * K + k] * d;
        }
}

typedef struct AdamHypers {
    Node *lr, *b1, *b2, *eps, *t;
} AdamHypers;

static Node *bin(Graph *g, Op op, Node *a, Node *b) { return ir_binary(g, op, a, b, L0); }

/* PyTorch's Adam for parameter i, states m then v:
 *   m' = b1 m + (1 - b1) g,  v' = b2 v + (1 - b2) g^2
 *   p' = p - lr (m' / (1 - b1^t)) / (sqrt(v' / (1 - b2^t)) + eps)
 * stored in the order m, v, p; returns the new m (m'). */
static Node *adam_param(Graph *g, int i, const AdamHypers *h) {
    Param *p = &g->params.items[i];
    Init zero = {.kind = INIT_CONST};
    Node *m = ir_state(g, arena_printf(g->arena, "opt.m.%s", p->name), i, zero, L0);
    Node *v = ir_state(g, arena_printf(g->arena, "opt.v.%s", p->name), i, zero, L0);
    Node *one = ir_const(g, 1, L0), *dp = p->grad;
    Node *m2 = bin(g, OP_ADD, bin(g, OP_MUL, h->b1, m), bin(g, OP_MUL, bin(g, OP_SUB, one, h->b1), dp));
    Node *v2 = bin(g, OP_ADD, bin(g, OP_MUL, h->b2, v),
                   bin(g, OP_MUL, bin(g, OP_SUB, one, h->b2), bin(g, OP_MUL, dp, dp)));
    ir_assign(g, m, m2);
    ir_assign(g, v, v2);
    Node *bc1 = bin(g, OP_SUB, one, bin(g, OP_POW, h->b1, h->t));
    Node *bc2 = bin(g, OP_SUB, one, bin(g, OP_POW, h->b2, h->t));
    Node *den = bin(g, OP_ADD, ir_unary(g, OP_SQRT, bin(g, OP_DIV, v2, bc2), L0), h->eps);
    Node *step = bin(g, OP_MUL, h->lr, bin(g, OP_DIV, bin(g, OP_DIV, m2, bc1), den));
    ir_assign(g, p->node, bin(g, OP_SUB, p->node, step));
    return m2;
}

static AdamHypers adam_hypers(Graph *g) {
    AdamHypers h = {ir_hyper(g, "lr", 0.01), ir_hyper(g, "b1", 0.9), ir_hyper(g, "b2", 0.999),
                    ir_hyper(g, "eps", 1e-8), ir_hyper_kind(g, HYPER_STEP)};
    g->lr = h.lr;
    return h;
}

/* The same in double, on n elements, for step t. */
static void ref_adam(double *p, double *m, double *v, const double *dp, int n, double lr, double b1,
                     double b2, double eps, int t) {
    for (int i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1 - b1) * dp[i];
        v[i] = b2 * v[i] + (1 - b2) * dp[i] * dp[i];
        double mh = m[i] / (1 - pow(b1, t)), vh = v[i] / (1 - pow(b2, t));
        p[i] -= lr * mh / (sqrt(vh) + eps);
    }
}

/* The largest error check_rel saw, relative to its bound's scale. */
static double worst_seen;

/* |got - want| <= tol * max(floor, |want|) for element i of tensor `what`. */
static void check_rel(double got, double want, double tol, double floor_, const char *what, int i) {
    double rel = fabs(got - want) / fmax(floor_, fabs(want));
    if (rel > worst_seen)
        worst_seen = rel;
    if (!(fabs(got - want) <= tol * fmax(floor_, fabs(want))))
        fail_msg("%s[%d] = %.17g, want %.17g (relative %.3g)", what, i, got, want,
                 fabs(got - want) / fmax(floor_, fabs(want)));
}

/* The kernels of the train program whose root is an ASSIGN. */
static int update_kernels(const T *t, const Kernel **out, int cap) {
    const Program *p = &t->plan->prog[PROG_TRAIN];
    int n = 0;
    for (int k = 0; k < p->kernels.len; k++)
        if (p->kernels.items[k].root->op == OP_ASSIGN) {
            assert_true(n < cap);
            out[n++] = &p->kernels.items[k];
        }
    return n;
}

/* ---- the optimised IR ---------------------------------------------------------------- */

/* The body of `define ... @name(` in the module's IR text (malloc'ed). */
static char *ir_function(const char *ir, const char *name) {
    char head[128];
    snprintf(head, sizeof head, "@%s(", name);
    const char *at = strstr(ir, head);
    assert_non_null(at);
    const char *end = strstr(at, "\n}\n");
    assert_non_null(end);
    size_t len = (size_t)(end - at);
    char *fn = malloc(len + 1);
    memcpy(fn, at, len);
    fn[len] = '\0';
    return fn;
}

static int count_of(const char *s, const char *needle) {
    int n = 0;
    for (const char *at = strstr(s, needle); at; at = strstr(at + 1, needle))
        n++;
    return n;
}

/* The number of distinct `!alias.scope !<n>` tags on the vector stores of
 * block: with the kernels inlined, one per buffer the kernel stores. */
static int store_scopes(const char *block) {
    int tags[16], ntags = 0;
    for (const char *at = strstr(block, "store <"); at; at = strstr(at + 1, "store <")) {
        const char *eol = strchr(at, '\n'), *sc = strstr(at, "!alias.scope !");
        if (!sc || (eol && sc > eol))
            continue;
        int tag = atoi(sc + 14), k = 0;
        while (k < ntags && tags[k] != tag)
            k++;
        if (k == ntags && ntags < 16)
            tags[ntags++] = tag;
    }
    return ntags;
}

/* Every call in block is to an LLVM intrinsic (no libm, no function). */
static void assert_only_intrinsic_calls(const char *block) {
    for (const char *at = strstr(block, " call "); at; at = strstr(at + 1, " call ")) {
        const char *at_sign = strchr(at, '@'), *eol = strchr(at, '\n');
        if (!at_sign || (eol && at_sign > eol) || strncmp(at_sign, "@llvm.", 6) != 0)
            fail_msg("a call in the update loop: %.80s", at);
    }
}

/* Checks the basic blocks of fn (separated by blank lines) that compute a
 * vector square root, the update's sqrt(v' / (1 - b2^t)): each is a body
 * of the one update loop (the vectoriser's main body, its unrolled copies,
 * its narrower epilogue), so each must store the new W, m and v (three
 * buffers, three vector stores per square root) and call nothing but
 * intrinsics. Returns how many such blocks use 16 floats per vector. */
static int check_update_loop_blocks(const char *fn) {
    int nblocks = 0, wide = 0;
    for (const char *start = fn; *start;) {
        const char *end = strstr(start, "\n\n");
        size_t len = end ? (size_t)(end - start) : strlen(start);
        char *block = malloc(len + 1);
        memcpy(block, start, len);
        block[len] = '\0';
        int nsqrt = count_of(block, "@llvm.sqrt.v");
        if (nsqrt) {
            nblocks++;
            wide += strstr(block, "<16 x float>") != NULL;
            int nstores = count_of(block, "store <"), nscopes = store_scopes(block);
            if (nstores != 3 * nsqrt || nscopes != 3)
                fail_msg("a vector block with %d square roots, %d vector stores into %d buffers:\n%s",
                         nsqrt, nstores, nscopes, block);
            assert_only_intrinsic_calls(block);
        }
        free(block);
        start += len;
        while (*start == '\n')
            start++;
    }
    assert_true(nblocks >= 1);
    return wide;
}

/* ---- Adam: one loop, the reference's values ------------------------------------------ */

/* Three Adam steps (t = 1, 2, 3) on W [37, 5] in float64 (1e-12) and
 * float32 (1e-6): W, m and v after each step, each element relative to
 * max(1, |want|) for W and to the largest |element| of m and of v (their
 * small elements come from sums that cancel, where float32's gradient
 * differs from double's in its last bits). The train program has exactly one update kernel, storing m, v
 * and W (root m, more v and W), with m' inline in it; in float32 that
 * kernel is one vector loop: the optimised IR has one block with a vector
 * sqrt, and that block stores W, m and v (three vector stores, or more
 * when interleaved, a multiple of three) and calls nothing but intrinsics;
 * the assembly uses packed square roots on ymm/zmm and never calls sqrtf. */
static void test_update_adam_is_one_vector_loop_and_matches_reference(void **state) {
    (void)state;
    for (int es = 8; es >= 4; es -= 4) {
        T t;
        t_init(&t, "adam");
        Lsq md = lsq_model(&t, "W");
        ad_backward(t.g);
        ir_update_begin(t.g);
        AdamHypers h = adam_hypers(t.g);
        Node *m2 = adam_param(t.g, 0, &h);
        ir_update_end(t.g);
        t_compile(&t, MAXB, es);

        const Kernel *up[4];
        assert_int_equal(update_kernels(&t, up, 4), 1);
        assert_int_equal(up[0]->more.len, 2);
        assert_ptr_equal(up[0]->root->src[0], t.g->states.items[0].node);
        assert_ptr_equal(up[0]->more.items[0]->src[0], t.g->states.items[1].node);
        assert_ptr_equal(up[0]->more.items[1]->src[0], md.w);
        assert_true(t.plan->prog[PROG_TRAIN].offset[m2->id] == PLAN_NONE);

        double *xv = fill(&t, md.x, MAXB * K, -1, 1, 500), *yv = fill(&t, md.y, MAXB * N, -1, 1, 501);
        double *wv = fill(&t, md.w, K * N, -1, 1, 502);
        double m[K * N] = {0}, v[K * N] = {0}, dw[K * N];
        double lr = as_elem(&t, 0.01), b1 = as_elem(&t, 0.9), b2 = as_elem(&t, 0.999);
        double eps = as_elem(&t, 1e-8);
        set(&t, h.lr, 0, lr), set(&t, h.b1, 0, b1), set(&t, h.b2, 0, b2), set(&t, h.eps, 0, eps);
        double tol = es == 8 ? 1e-12 : 1e-6;
        for (int step = 1; step <= 3; step++) {
            set(&t, h.t, 0, step);
            ref_lsq_grad(xv, yv, wv, RUN, dw);
            ref_adam(wv, m, v, dw, K * N, lr, b1, b2, eps, step);
            t_run(&t, PROG_TRAIN, RUN);
            double mmax = 0, vmax = 0;
            for (int i = 0; i < K * N; i++)
                mmax = fmax(mmax, fabs(m[i])), vmax = fmax(vmax, v[i]);
            for (int i = 0; i < K * N; i++) {
                check_rel(get(&t, PROG_TRAIN, md.w, i), wv[i], tol, 1, "W", i);
                check_rel(get(&t, PROG_TRAIN, t.g->states.items[0].node, i), m[i], tol, mmax, "m", i);
                check_rel(get(&t, PROG_TRAIN, t.g->states.items[1].node, i), v[i], tol, vmax, "v", i);
            }
        }

        printf("  float%d: largest relative error %.2e (tolerance %g)\n", es * 8, worst_seen, tol);
        worst_seen = 0;
        if (es == 4) {
            char *ir = cg_llvm_ir(t.m);
            char *fn = ir_function(ir, "adam_train");
            assert_true(check_update_loop_blocks(fn) >= 1);
            free(fn), free(ir);
            char *err = NULL, *as = cg_module_asm(t.m, &err);
            if (!as)
                fail_msg("cg_module_asm: %s", err);
            assert_true(strstr(as, "vsqrtps\t%zmm") || strstr(as, "vsqrtps\t%ymm"));
            assert_null(strstr(as, "sqrtf"));
            free(as);
        }
        free(xv), free(yv), free(wv);
        t_free(&t);
    }
}

/* ---- loads before stores ---------------------------------------------------------------- */

/* A rule whose parameter step reads its state's old value after the state's
 * new value is stored (the state's ASSIGN is built first, so it is the
 * kernel's root and the parameter's is in `more`):
 *   s' = s + g^2,   p' = p - lr * g / sqrt(s + 1)      (s, not s')
 * Each iteration loads s before it stores s': at O0, where the kernel
 * stays a function of its own as lower.c emitted it, every load of its
 * loop comes before the first store. Three steps, float32 and float64,
 * against the reference (1e-6 and 1e-12). */
static void test_update_reads_old_state_values_before_storing(void **state) {
    (void)state;
    for (int es = 4; es <= 8; es += 4) {
        T t;
        t_init(&t, "oldstate");
        Lsq md = lsq_model(&t, "W");
        ad_backward(t.g);
        Graph *g = t.g;
        ir_update_begin(g);
        Node *lr = g->lr = ir_hyper(g, "lr", 0.1), *dw = g->params.items[0].grad;
        Node *s = ir_state(g, "opt.s.W", 0, (Init){.kind = INIT_CONST, .a = 0.25}, L0);
        ir_assign(g, s, bin(g, OP_ADD, s, bin(g, OP_MUL, dw, dw)));
        Node *den = ir_unary(g, OP_SQRT, bin(g, OP_ADD, s, ir_const(g, 1, L0)), L0);
        ir_assign(g, md.w, bin(g, OP_SUB, md.w, bin(g, OP_MUL, lr, bin(g, OP_DIV, dw, den))));
        ir_update_end(g);
        t_compile(&t, MAXB, es);
        const Kernel *up[2];
        assert_int_equal(update_kernels(&t, up, 2), 1);
        assert_ptr_equal(up[0]->root->src[0], s);
        assert_int_equal(up[0]->more.len, 1);
        if (es == 4) {
            CgOptions o0 = {.elem_size = 4, .opt_level = 0};
            CgModule *m0 = cg_compile(t.g, t.plan, &o0, &t.d);
            assert_non_null(m0);
            char *ir = cg_llvm_ir(m0), name[64];
            snprintf(name, sizeof name, "oldstate_train_k%d", t.plan->prog[PROG_TRAIN].kernels.len - 1);
            char *fn = ir_function(ir, name);
            const char *first_store = strstr(fn, " store "), *last_load = NULL;
            for (const char *at = strstr(fn, " load "); at; at = strstr(at + 1, " load "))
                last_load = at;
            assert_true(first_store && last_load && last_load < first_store);
            assert_int_equal(count_of(fn, " store "), 2);
            free(fn), free(ir);
            cg_free(m0);
        }

        double *xv = fill(&t, md.x, MAXB * K, -1, 1, 530), *yv = fill(&t, md.y, MAXB * N, -1, 1, 531);
        double *wv = fill(&t, md.w, K * N, -1, 1, 532), sv[K * N], dwv[K * N];
        for (int i = 0; i < K * N; i++)
            set(&t, s, i, sv[i] = 0.25);
        set(&t, lr, 0, 0.1);
        double lrv = as_elem(&t, 0.1), tol = es == 8 ? 1e-12 : 1e-6;
        for (int step = 0; step < 3; step++) {
            ref_lsq_grad(xv, yv, wv, RUN, dwv);
            for (int i = 0; i < K * N; i++) {
                wv[i] -= lrv * dwv[i] / sqrt(sv[i] + 1);
                sv[i] += dwv[i] * dwv[i];
            }
            t_run(&t, PROG_TRAIN, RUN);
            for (int i = 0; i < K * N; i++) {
                check_rel(get(&t, PROG_TRAIN, md.w, i), wv[i], tol, 1, "W", i);
                check_rel(get(&t, PROG_TRAIN, s, i), sv[i], tol, 1, "s", i);
            }
        }
        free(xv), free(yv), free(wv);
        t_free(&t);
    }
}

/* ---- reads of storage that updates overwrite -------------------------------------------- */

/* Two parameters, V's update stored first (it is built first):
 *   V' = V - lr * |W| * dV      |W| = sqrt(sum(W^2)), a reduction of W
 *   W' = W - lr * (dW + 0.5 V)  V read elementwise
 * Both must see the old values: the reads are kernels of their own that
 * run before either update; two steps against the reference, float64. */
static void test_update_reads_of_other_parameters_see_old_values(void **state) {
    (void)state;
    T t;
    t_init(&t, "cross");
    Lsq md = lsq_model(&t, "W");
    Node *vp = param(&t, "V", SH2(K, N));
    t.g->loss = bin(t.g, OP_ADD, t.g->loss,
                    ir_reduce(t.g, OP_SUM, bin(t.g, OP_MUL, vp, vp), 0, false, L0)); /* dV = 2 V */
    ad_backward(t.g);
    ir_update_begin(t.g);
    Graph *g = t.g;
    Node *lr = g->lr = ir_hyper(g, "lr", 0.05);
    Node *w = md.w, *dw = g->params.items[0].grad, *dv = g->params.items[1].grad;
    Node *norm = ir_unary(g, OP_SQRT, ir_reduce(g, OP_SUM, bin(g, OP_MUL, w, w), 0, false, L0), L0);
    ir_assign(g, vp, bin(g, OP_SUB, vp, bin(g, OP_MUL, lr, bin(g, OP_MUL, norm, dv))));
    Node *tie = bin(g, OP_MUL, ir_const(g, 0.5, L0), vp);
    ir_assign(g, w, bin(g, OP_SUB, w, bin(g, OP_MUL, lr, bin(g, OP_ADD, dw, tie))));
    ir_update_end(g);
    t_compile(&t, MAXB, 8);

    const Kernel *up[4];
    assert_int_equal(update_kernels(&t, up, 4), 2);
    assert_ptr_equal(up[0]->root->src[0], vp); /* V's update runs first */
    for (int u = 0; u < 2; u++)
        for (int b = 0; b < up[u]->body.len; b++)
            assert_true(up[u]->body.items[b] != tie);
    assert_true(t.plan->prog[PROG_TRAIN].offset[tie->id] != PLAN_NONE);

    double *xv = fill(&t, md.x, MAXB * K, -1, 1, 510), *yv = fill(&t, md.y, MAXB * N, -1, 1, 511);
    double *wv = fill(&t, w, K * N, -1, 1, 512), *vv = fill(&t, vp, K * N, -1, 1, 513);
    set(&t, lr, 0, 0.05);
    double dwv[K * N];
    for (int step = 0; step < 2; step++) {
        ref_lsq_grad(xv, yv, wv, RUN, dwv);
        double nw = 0;
        for (int i = 0; i < K * N; i++)
            nw += wv[i] * wv[i];
        nw = sqrt(nw);
        for (int i = 0; i < K * N; i++) {
            double vold = vv[i];
            vv[i] -= 0.05 * nw * 2 * vold;
            wv[i] -= 0.05 * (dwv[i] + 0.5 * vold);
        }
        t_run(&t, PROG_TRAIN, RUN);
        for (int i = 0; i < K * N; i++) {
            check_rel(get(&t, PROG_TRAIN, w, i), wv[i], 1e-12, 1, "W", i);
            check_rel(get(&t, PROG_TRAIN, vp, i), vv[i], 1e-12, 1, "V", i);
        }
    }
    free(xv), free(yv), free(wv), free(vv);
    t_free(&t);
}

/* ---- a schedule shared by two updates; the runtime's description ---------------------- */

/* SGD with warm-up on two parameters: lr_t = lr * min(1, t / 500), with
 * min(a, b) = -max(-a, -b), is Graph.lr. It is computed once, by a scalar
 * kernel of its own before the updates (each update reads it), and is the
 * train program's root 1; at t = 1, 250 and 600 both parameters step by
 * lr_t * grad. The RtModel says which hyper is t, describes no states
 * (SGD has none) and has train_lr_root 1 at lr_t's offset. float32. */
static void test_update_schedule_of_t_is_computed_once_for_two_updates(void **state) {
    (void)state;
    T t;
    t_init(&t, "warm");
    Lsq md = lsq_model(&t, "W");
    Node *c = param(&t, "c", SH1(N)); /* loss += sum(c * c): dc = 2 c */
    t.g->loss = bin(t.g, OP_ADD, t.g->loss, ir_reduce(t.g, OP_SUM, bin(t.g, OP_MUL, c, c), 0, false, L0));
    ad_backward(t.g);
    Graph *g = t.g;
    ir_update_begin(g);
    Node *lr = ir_hyper(g, "lr", 0.1), *tt = ir_hyper_kind(g, HYPER_STEP);
    Node *ramp = bin(g, OP_DIV, tt, ir_const(g, 500, L0));
    Node *mn = ir_unary(g, OP_NEG, bin(g, OP_MAX, ir_const(g, -1, L0), ir_unary(g, OP_NEG, ramp, L0)), L0);
    Node *sched = g->lr = bin(g, OP_MUL, lr, mn);
    for (int i = 0; i < 2; i++) {
        Param *p = &g->params.items[i];
        ir_assign(g, p->node, bin(g, OP_SUB, p->node, bin(g, OP_MUL, sched, p->grad)));
    }
    ir_update_end(g);
    t_compile(&t, MAXB, 4);

    const Program *p = &t.plan->prog[PROG_TRAIN];
    const Kernel *up[4];
    assert_int_equal(update_kernels(&t, up, 4), 2);
    assert_int_equal(p->roots.len, 4);
    assert_ptr_equal(p->roots.items[1], t.g->lr);
    int sched_k = -1;
    for (int k = 0; k < p->kernels.len; k++)
        if (p->kernels.items[k].root == t.g->lr)
            sched_k = k;
    assert_true(sched_k >= 0 && p->kernels.items[sched_k].root->shape.rank == 0);
    assert_true(p->kernels.items[sched_k].root->op != OP_ASSIGN);
    for (int u = 0; u < 2; u++)
        for (int b = 0; b < up[u]->body.len; b++)
            assert_true(up[u]->body.items[b] != t.g->lr);

    RtModel *rm = cg_rt_model_jit(t.a, t.g, t.plan, t.m);
    assert_int_equal(rm->train_lr_root, 1);
    assert_int_equal(rm->train.roots[1].offset, p->offset[t.g->lr->id]);
    assert_int_equal(rm->train.roots[1].rank, 0);
    assert_int_equal(rm->nstates, 0);
    assert_int_equal(rm->nhypers, 2);
    for (int i = 0; i < rm->nhypers; i++)
        assert_int_equal(rm->hyper_kinds[i],
                         strcmp(rm->hypers[i].name, "t") == 0 ? RT_HYPER_STEP : RT_HYPER_VALUE);

    double *xv = fill(&t, md.x, MAXB * K, -1, 1, 520), *yv = fill(&t, md.y, MAXB * N, -1, 1, 521);
    double *wv = fill(&t, md.w, K * N, -1, 1, 522), *cv = fill(&t, c, N, -1, 1, 523);
    set(&t, lr, 0, 0.1);
    static const int steps[] = {1, 250, 600};
    double dwv[K * N];
    for (int s = 0; s < 3; s++) {
        double lr_t = as_elem(&t, 0.1) * fmin(1, steps[s] / 500.0);
        set(&t, tt, 0, steps[s]);
        ref_lsq_grad(xv, yv, wv, RUN, dwv);
        for (int i = 0; i < K * N; i++)
            wv[i] -= lr_t * dwv[i];
        for (int j = 0; j < N; j++)
            cv[j] -= lr_t * 2 * cv[j];
        t_run(&t, PROG_TRAIN, RUN);
        check_rel(get(&t, PROG_TRAIN, t.g->lr, 0), lr_t, 1e-6, 0, "lr_t", 0);
        for (int i = 0; i < K * N; i++)
            check_rel(get(&t, PROG_TRAIN, md.w, i), wv[i], 1e-6, 1, "W", i);
        for (int j = 0; j < N; j++)
            check_rel(get(&t, PROG_TRAIN, c, j), cv[j], 1e-6, 1, "c", j);
    }
    free(xv), free(yv), free(wv), free(cv);
    t_free(&t);
}

/* Adam on two parameters: the RtModel lists the four states with their
 * names, shapes, planned offsets, parameters and initial values, and the
 * hypers' kinds (lr b1 b2 eps values, t the step); each parameter has one
 * update kernel of three stores; the bias corrections (scalars of t that
 * both updates use) are computed before them. */
static void test_update_rt_model_describes_states_and_hyper_kinds(void **state) {
    (void)state;
    T t;
    t_init(&t, "adam2");
    Lsq md = lsq_model(&t, "W");
    Node *c = param(&t, "c", SH1(N));
    t.g->loss = bin(t.g, OP_ADD, t.g->loss, ir_reduce(t.g, OP_SUM, bin(t.g, OP_MUL, c, c), 0, false, L0));
    ad_backward(t.g);
    ir_update_begin(t.g);
    AdamHypers h = adam_hypers(t.g);
    adam_param(t.g, 0, &h);
    adam_param(t.g, 1, &h);
    t.g->states.items[3].init.a = 0.5; /* opt.v.c starts at 0.5 */
    ir_update_end(t.g);
    t_compile(&t, MAXB, 8);
    (void)md;

    const Kernel *up[4];
    assert_int_equal(update_kernels(&t, up, 4), 2);
    if (up[0]->more.items[1]->src[0] == c) { /* c's gradient may be ready first */
        const Kernel *first = up[0];
        up[0] = up[1];
        up[1] = first;
    }
    assert_int_equal(up[0]->more.len, 2);
    assert_int_equal(up[1]->more.len, 2);
    assert_ptr_equal(up[1]->more.items[1]->src[0], c);

    RtModel *rm = cg_rt_model_jit(t.a, t.g, t.plan, t.m);
    assert_int_equal(rm->nstates, 4);
    static const char *const names[] = {"opt.m.W", "opt.v.W", "opt.m.c", "opt.v.c"};
    for (int i = 0; i < 4; i++) {
        const RtTensor *st = &rm->states[i];
        assert_string_equal(st->name, names[i]);
        assert_int_equal(rm->state_param[i], i / 2);
        assert_int_equal(st->dtype, RT_FLOAT);
        assert_int_equal(st->rank, i < 2 ? 2 : 1);
        assert_int_equal(st->dims[0], i < 2 ? K : N);
        assert_int_equal(st->offset, t.plan->prog[PROG_TRAIN].offset[t.g->states.items[i].node->id]);
        assert_true(st->offset < t.plan->persistent_bytes);
        assert_int_equal(rm->state_inits[i].kind, RT_INIT_CONST);
        assert_true(rm->state_inits[i].a == (i == 3 ? 0.5 : 0));
    }
    assert_int_equal(rm->train_lr_root, 1);
    assert_int_equal(rm->train.nroots, 2 + 6);
    assert_int_equal(rm->nhypers, 5);
    for (int i = 0; i < rm->nhypers; i++)
        assert_int_equal(rm->hyper_kinds[i],
                         strcmp(rm->hypers[i].name, "t") == 0 ? RT_HYPER_STEP : RT_HYPER_VALUE);
    assert_true(rm->hyper_defaults[0] == 0.01); /* lr */
    t_free(&t);
}

/* ---- SGD in place (the simplest rule) -------------------------------------------------- */

/* y = x @ W + b, loss = mean((y - t)^2); one train step with lr = 0.1:
 * W -= lr x^T dy, b -= lr sum_rows(dy), dy = 2 (y - t) / (B N). Batch 5. */
static void test_update_sgd_step_updates_params_in_place(void **state) {
    (void)state;
    enum { KK = 3, NN = 2, RUN5 = 5 };
    T t;
    t_init(&t, "sgd");
    Node *x = input(&t, "x", SH2(B, KK)), *tg = input(&t, "t", SH2(B, NN));
    Node *w = param(&t, "W", SH2(KK, NN)), *b = param(&t, "b", SH1(NN));
    Node *y = ir_binary(t.g, OP_ADD, ir_matmul(t.g, x, w, false, false, L0), b, L0);
    Node *e = ir_binary(t.g, OP_SUB, y, tg, L0);
    t.g->loss = ir_reduce(t.g, OP_MEAN, ir_binary(t.g, OP_MUL, e, e, L0), 0, false, L0);
    ad_backward(t.g);
    sgd_update(t.g, 0.01);
    t_compile(&t, MAXB, 4);
    double *xv = fill(&t, x, MAXB * KK, -1, 1, 90), *tv = fill(&t, tg, MAXB * NN, -1, 1, 91);
    double *wv = fill(&t, w, KK * NN, -1, 1, 92), *bv = fill(&t, b, NN, -1, 1, 93);
    set(&t, t.g->lr, 0, 0.1);

    double loss = 0, dy[RUN5 * NN];
    for (int r = 0; r < RUN5; r++)
        for (int j = 0; j < NN; j++) {
            double s = bv[j];
            for (int k = 0; k < KK; k++)
                s += xv[r * KK + k] * wv[k * NN + j];
            double d = s - tv[r * NN + j];
            loss += d * d / (RUN5 * NN);
            dy[r * NN + j] = 2 * d / (RUN5 * NN);
        }
    t_run(&t, PROG_TRAIN, RUN5);
    assert_rel(get(&t, PROG_TRAIN, t.g->loss, 0), loss, 1e-5);
    for (int k = 0; k < KK; k++)
        for (int j = 0; j < NN; j++) {
            double gsum = 0;
            for (int r = 0; r < RUN5; r++)
                gsum += xv[r * KK + k] * dy[r * NN + j];
            assert_near(get(&t, PROG_TRAIN, w, k * NN + j), wv[k * NN + j] - 0.1 * gsum, 1e-6);
        }
    for (int j = 0; j < NN; j++) {
        double gsum = 0;
        for (int r = 0; r < RUN5; r++)
            gsum += dy[r * NN + j];
        assert_near(get(&t, PROG_TRAIN, b, j), bv[j] - 0.1 * gsum, 1e-6);
    }
    /* One fused update kernel per parameter, storing into its own buffer. */
    const Kernel *up[4];
    assert_int_equal(update_kernels(&t, up, 4), 2);
    for (int u = 0; u < 2; u++) {
        assert_true(up[u]->fused);
        assert_int_equal(up[u]->more.len, 0);
    }
    free(xv), free(tv), free(wv), free(bv);
    t_free(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_update_adam_is_one_vector_loop_and_matches_reference),
        cmocka_unit_test(test_update_reads_old_state_values_before_storing),
        cmocka_unit_test(test_update_reads_of_other_parameters_see_old_values),
        cmocka_unit_test(test_update_schedule_of_t_is_computed_once_for_two_updates),
        cmocka_unit_test(test_update_rt_model_describes_states_and_hyper_kinds),
        cmocka_unit_test(test_update_sgd_step_updates_params_in_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
