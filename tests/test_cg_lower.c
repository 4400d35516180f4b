/* test_cg_lower.c: codegen/lower.c and cg.c: every kernel kind, run through
 * the JIT against a naive C reference computed here.
 *
 * Graphs are built with the ir_* builders, optimised and planned, compiled
 * with cg_compile, and run on an arena filled at the planned offsets.
 * Tolerances are stated per check: exact where the arithmetic is the same
 * as the reference's, a few float ulps where the kernel reassociates a sum
 * or uses the float32 polynomials of mathfn.c.
 *
 * Dimension legend: B batch (max_batch MAXB, run with a smaller batch where
 * stated), M, N, K matmul dims, C classes.
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

#include "codegen/cg.h"
#include "codegen/cg_internal.h"

#define B DIM_BATCH
enum { MAXB = 8 };
static const Loc L0 = {0};

#define SH0() ((Shape){.rank = 0})
#define SH1(a) ((Shape){.rank = 1, .d = {(a)}})
#define SH2(a, b) ((Shape){.rank = 2, .d = {(a), (b)}})
#define SH3(a, b, c) ((Shape){.rank = 3, .d = {(a), (b), (c)}})

/* |got - want| <= tol, or both NaN. */
#define assert_near(got, want, tol)                                                          \
    do {                                                                                     \
        double g_ = (got), w_ = (want), t_ = (tol);                                          \
        if (!(fabs(g_ - w_) <= t_) && !(isnan(g_) && isnan(w_)))                             \
            fail_msg("%s = %.9g, want %.9g (tolerance %g)", #got, g_, w_, t_);               \
    } while (0)
/* Relative: |got - want| <= tol * max(1, |want|). */
#define assert_rel(got, want, tol) assert_near(got, want, (tol) * fmax(1.0, fabs(want)))

/* ---- the fixture: one graph, its plan, its code and its arena ------------------ */

typedef struct T {
    Arena *a;
    Diags d;
    Graph *g;
    Plan *plan;
    CgModule *m;
    unsigned char *mem;
    int elem_size;
} T;

static void t_init(T *t, const char *name) {
    *t = (T){.a = arena_new()};
    diags_init(&t->d, t->a);
    t->g = graph_new(t->a, &t->d, name);
}

static void t_output(T *t, const char *name, Node *n) {
    assert_non_null(n);
    Output o = {name, n};
    vec_push(t->a, &t->g->outputs, o);
}

/* Optimise, plan for MAXB rows (or max_batch), compile, zero the arena. */
static void t_compile(T *t, int64_t max_batch, int elem_size) {
    assert_int_equal(t->d.nerrors, 0);
    t->elem_size = elem_size;
    ir_optimize(t->g);
    t->plan = ir_plan(t->g, max_batch, elem_size);
    CgOptions o = {.elem_size = elem_size, .opt_level = 2};
    t->m = cg_compile(t->g, t->plan, &o, &t->d);
    if (!t->m) {
        diags_print(&t->d, stderr, false);
        fail_msg("cg_compile failed");
    }
    size_t n = (t->plan->arena_bytes + 63) & ~(size_t)63;
    t->mem = aligned_alloc(64, n ? n : 64);
    assert_non_null(t->mem);
    memset(t->mem, 0, n ? n : 64);
}

static void t_run(T *t, ProgramKind k, int64_t batch) {
    RtFn f = cg_program(t->m, k);
    assert_non_null(f);
    f(t->mem, batch);
}

static void t_free(T *t) {
    cg_free(t->m);
    free(t->mem);
    arena_free(t->a);
}

/* Output i after optimisation (passes may forward the node we built). */
static const Node *t_out(T *t, int i) { return t->g->outputs.items[i].node; }

static void *t_ptr(T *t, ProgramKind k, const Node *n) {
    size_t off = t->plan->prog[k].offset[n->id];
    assert_true(off != PLAN_NONE);
    return t->mem + off;
}

/* Element i of float tensor n in program k, whatever the element type. */
static double get(T *t, ProgramKind k, const Node *n, int64_t i) {
    void *p = t_ptr(t, k, n);
    return t->elem_size == 4 ? ((float *)p)[i] : ((double *)p)[i];
}
static void set(T *t, const Node *n, int64_t i, double v) {
    void *p = t_ptr(t, PROG_PREDICT, n); /* leaves: the same offset in every program */
    if (t->elem_size == 4)
        ((float *)p)[i] = (float)v;
    else
        ((double *)p)[i] = v;
}
static void set_int(T *t, const Node *n, int64_t i, int32_t v) {
    ((int32_t *)t_ptr(t, PROG_PREDICT, n))[i] = v;
}
/* The value set() stores, as the kernels see it. */
static double as_elem(T *t, double v) { return t->elem_size == 4 ? (double)(float)v : v; }

/* Deterministic values in [lo, hi). */
static double rnd(uint64_t *s, double lo, double hi) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (double)(*s >> 11) / 9007199254740992.0;
}

/* Fill n (numel elements) with values in [lo, hi); returns them as stored. */
static double *fill(T *t, const Node *n, int64_t numel, double lo, double hi, uint64_t seed) {
    double *v = malloc(sizeof *v * (size_t)numel);
    for (int64_t i = 0; i < numel; i++) {
        v[i] = as_elem(t, rnd(&seed, lo, hi));
        set(t, n, i, v[i]);
    }
    return v;
}

static Node *input(T *t, const char *name, Shape s) { return ir_input(t->g, name, DT_FLOAT, &s, L0); }
static Node *param(T *t, const char *name, Shape s) {
    return ir_param(t->g, name, &s, (Init){.kind = INIT_CONST}, L0);
}

/* ---- broadcasting and index maps ---------------------------------------------- */

/* y[b, j] = x[b, j] + bias[j]: [B, 16] + [16] */
static void test_lower_broadcast_adds_row_vector(void **state) {
    (void)state;
    T t;
    t_init(&t, "bcast");
    Node *x = input(&t, "x", SH2(B, 16)), *bias = param(&t, "bias", SH1(16));
    t_output(&t, "y", ir_binary(t.g, OP_ADD, x, bias, L0));
    t_compile(&t, MAXB, 4);
    double *xv = fill(&t, x, MAXB * 16, -2, 2, 1), *bv = fill(&t, bias, 16, -1, 1, 2);
    t_run(&t, PROG_PREDICT, MAXB);
    for (int b = 0; b < MAXB; b++)
        for (int j = 0; j < 16; j++)
            assert_near(get(&t, PROG_PREDICT, t_out(&t, 0), b * 16 + j),
                        (float)((float)xv[b * 16 + j] + (float)bv[j]), 0);
    free(xv), free(bv);
    t_free(&t);
}

/* y = x * s + 0.5 with a rank-0 parameter s; z = s * s (a scalar kernel) */
static void test_lower_broadcast_scalar_param(void **state) {
    (void)state;
    T t;
    t_init(&t, "scalar");
    Node *x = input(&t, "x", SH2(B, 5)), *s = param(&t, "s", SH0());
    t_output(&t, "y",
             ir_binary(t.g, OP_ADD, ir_binary(t.g, OP_MUL, x, s, L0), ir_const(t.g, 0.5, L0), L0));
    t_output(&t, "z", ir_binary(t.g, OP_MUL, s, s, L0));
    t_compile(&t, MAXB, 4);
    double *xv = fill(&t, x, MAXB * 5, -3, 3, 3);
    set(&t, s, 0, 1.75);
    t_run(&t, PROG_PREDICT, 6);
    for (int i = 0; i < 6 * 5; i++)
        assert_near(get(&t, PROG_PREDICT, t_out(&t, 0), i), (float)((float)xv[i] * 1.75f) + 0.5f,
                    1e-6);
    assert_near(get(&t, PROG_PREDICT, t_out(&t, 1), 0), 1.75 * 1.75, 0);
    free(xv);
    t_free(&t);
}

/* The outer product [B, 1] * [1, H] -> [B, H]: both operands broadcast. */
static void test_lower_broadcast_outer_product(void **state) {
    (void)state;
    T t;
    t_init(&t, "outer");
    Node *x = input(&t, "x", SH2(B, 1)), *w = param(&t, "w", SH2(1, 7));
    t_output(&t, "y", ir_binary(t.g, OP_MUL, x, w, L0));
    t_compile(&t, MAXB, 4);
    double *xv = fill(&t, x, MAXB, -2, 2, 4), *wv = fill(&t, w, 7, -2, 2, 5);
    t_run(&t, PROG_PREDICT, 5);
    for (int b = 0; b < 5; b++)
        for (int j = 0; j < 7; j++)
            assert_near(get(&t, PROG_PREDICT, t_out(&t, 0), b * 7 + j), (float)(xv[b] * wv[j]), 0);
    free(xv), free(wv);
    t_free(&t);
}

/* Rank 3 with a middle broadcast: y[b, i, j] = x[b, i, j] * c[i, 0] - x[b, i, j] */
static void test_lower_broadcast_rank3_middle_axis(void **state) {
    (void)state;
    T t;
    t_init(&t, "rank3");
    Node *x = input(&t, "x", SH3(B, 3, 4)), *c = param(&t, "c", SH2(3, 1));
    t_output(&t, "y", ir_binary(t.g, OP_SUB, ir_binary(t.g, OP_MUL, x, c, L0), x, L0));
    t_compile(&t, MAXB, 4);
    double *xv = fill(&t, x, MAXB * 12, -2, 2, 6), *cv = fill(&t, c, 3, -2, 2, 7);
    t_run(&t, PROG_PREDICT, 3);
    for (int b = 0; b < 3; b++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 4; j++) {
                int at = (b * 3 + i) * 4 + j;
                assert_near(get(&t, PROG_PREDICT, t_out(&t, 0), at), xv[at] * cv[i] - xv[at], 1e-6);
            }
    free(xv), free(cv);
    t_free(&t);
}

/* A transpose fused into a broadcast, and the same node under two maps:
 * y[i, b] = x[b, i] * w[i, 0]; z = p + p^T for a square parameter p. */
static void test_lower_fused_transpose_and_two_maps(void **state) {
    (void)state;
    T t;
    t_init(&t, "transp");
    Node *x = input(&t, "x", SH2(B, 3)), *w = param(&t, "w", SH2(3, 1));
    Node *p = param(&t, "p", SH2(4, 4));
    t_output(&t, "y", ir_binary(t.g, OP_MUL, ir_transpose(t.g, x, NULL, L0), w, L0));
    t_output(&t, "z", ir_binary(t.g, OP_ADD, p, ir_transpose(t.g, p, NULL, L0), L0));
    t_compile(&t, MAXB, 4);
    double *xv = fill(&t, x, MAXB * 3, -2, 2, 8), *wv = fill(&t, w, 3, -2, 2, 9);
    double *pv = fill(&t, p, 16, -2, 2, 10);
    t_run(&t, PROG_PREDICT, 5);
    /* y is [3, B]: planned for MAXB columns, computed with 5: row stride 5 */
    for (int i = 0; i < 3; i++)
        for (int b = 0; b < 5; b++)
            assert_near(get(&t, PROG_PREDICT, t_out(&t, 0), i * 5 + b), (float)(xv[b * 3 + i] * wv[i]),
                        0);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            assert_near(get(&t, PROG_PREDICT, t_out(&t, 1), i * 4 + j),
                        (float)(pv[i * 4 + j] + pv[j * 4 + i]), 0);
    free(xv), free(wv), free(pv);
    t_free(&t);
}

/* ---- elementwise ops ------------------------------------------------------------ */

typedef struct Unary {
    Op op;
    double lo, hi; /* input range */
    double tol;    /* relative to max(1, |want|) */
    double (*ref)(double);
} Unary;

static double ref_neg(double x) { return -x; }
static double ref_sigmoid(double x) { return 1 / (1 + exp(-x)); }
static double ref_relu(double x) { return x > 0 ? x : 0; }
static double ref_step(double x) { return x > 0 ? 1 : 0; }

/* Every one-source op on 256 values per row range, float32, against libm in
 * double: exact for neg/relu/step, 3e-6 relative for the polynomials. */
static void test_lower_unary_ops_match_libm(void **state) {
    (void)state;
    static const Unary ops[] = {
        {OP_NEG, -5, 5, 0, ref_neg},          {OP_EXP, -20, 20, 3e-6, exp},
        {OP_LOG, 1e-4, 1e4, 3e-6, log},       {OP_SQRT, 0, 100, 3e-7, sqrt},
        {OP_TANH, -10, 10, 3e-6, tanh},       {OP_SIGMOID, -30, 30, 3e-6, ref_sigmoid},
        {OP_RELU, -3, 3, 0, ref_relu},        {OP_STEP, -3, 3, 0, ref_step},
    };
    enum { NOPS = sizeof ops / sizeof ops[0], W = 32 };
    T t;
    t_init(&t, "unary");
    Node *x[NOPS];
    for (int o = 0; o < NOPS; o++) {
        x[o] = input(&t, op_info[ops[o].op].name, SH2(B, W));
        t_output(&t, op_info[ops[o].op].name, ir_unary(t.g, ops[o].op, x[o], L0));
    }
    t_compile(&t, MAXB, 4);
    double *xv[NOPS];
    for (int o = 0; o < NOPS; o++) {
        xv[o] = fill(&t, x[o], MAXB * W, ops[o].lo, ops[o].hi, 20 + (uint64_t)o);
        xv[o][0] = ops[o].op == OP_LOG ? 1 : 0; /* relu(0) = step(0) = 0, log(1) = 0 */
        set(&t, x[o], 0, xv[o][0]);
    }
    t_run(&t, PROG_PREDICT, MAXB);
    for (int o = 0; o < NOPS; o++) {
        for (int i = 0; i < MAXB * W; i++) {
            double want = ops[o].ref(xv[o][i]);
            double got = get(&t, PROG_PREDICT, t_out(&t, o), i);
            if (!(fabs(got - want) <= ops[o].tol * fmax(1, fabs(want))))
                fail_msg("%s(%.9g) = %.9g, want %.9g", op_info[ops[o].op].name, xv[o][i], got, want);
        }
        free(xv[o]);
    }
    t_free(&t);
}

/* ADD SUB MUL DIV MAX BCE on broadcast operands [B, 8] op [8]; MAX's ties
 * give a (seen through the sign of zero); BCE clamps each log at -100. */
static void test_lower_binary_ops(void **state) {
    (void)state;
    static const Op ops[] = {OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MAX, OP_BCE};
    enum { NOPS = sizeof ops / sizeof ops[0] };
    T t;
    t_init(&t, "binary");
    Node *a = input(&t, "a", SH2(B, 8)), *b = param(&t, "b", SH1(8));
    for (int o = 0; o < NOPS; o++)
        t_output(&t, op_info[ops[o]].name, ir_binary(t.g, ops[o], a, b, L0));
    t_compile(&t, MAXB, 4);
    /* a in (0, 1) so that bce's p is a probability; b in [0, 1] */
    double *av = fill(&t, a, MAXB * 8, 0.01, 0.99, 30), *bv = fill(&t, b, 8, 0, 1, 31);
    av[0] = -0.0, bv[0] = 0.0; /* max tie: a = -0 wins */
    av[1] = 0.0, bv[1] = 1.0;  /* bce(0, 1) = 100 (log 0 clamped) */
    av[2] = 1.0, bv[2] = 0.0;  /* bce(1, 0) = 100 */
    for (int i = 0; i < 3; i++)
        set(&t, a, i, av[i]), set(&t, b, i, bv[i]);
    t_run(&t, PROG_PREDICT, MAXB);
    for (int i = 0; i < MAXB * 8; i++) {
        double x = av[i], y = bv[i % 8];
        /* The kernels compute in float: so does the reference (the values
         * are floats; float arithmetic rounds each result correctly). */
        const float xf = (float)x, yf = (float)y;
        double want[NOPS] = {
            xf + yf,
            xf - yf,
            xf * yf,
            xf / yf,
            x >= y ? x : y,
            -(y * fmax(log(x), -100) + (1 - y) * fmax(log(1 - x), -100)),
        };
        for (int o = 0; o < NOPS; o++) {
            double got = get(&t, PROG_PREDICT, t_out(&t, o), i);
            double tol = ops[o] == OP_BCE ? 3e-6 * fmax(1, fabs(want[o])) : 0;
            if ((isinf(want[o]) && got == want[o]) || (isnan(want[o]) && isnan(got)))
                continue;
            if (!(fabs(got - want[o]) <= tol))
                fail_msg("%s(%.9g, %.9g) = %.9g, want %.9g", op_info[ops[o]].name, x, y, got,
                         want[o]);
        }
    }
    assert_true(signbit(get(&t, PROG_PREDICT, t_out(&t, 4), 0))); /* max(-0, +0) = -0 */
    assert_near(get(&t, PROG_PREDICT, t_out(&t, 5), 1), 100, 0);
    assert_near(get(&t, PROG_PREDICT, t_out(&t, 5), 2), 100, 0);
    free(av), free(bv);
    t_free(&t);
}

/* x^p for the special exponents, small integers and the general case. */
static void test_lower_powc_cases(void **state) {
    (void)state;
    static const double ps[] = {2, 0.5, -1, 3, -2, 5, 8, -0.5, 1.5, -2.25, 0};
    enum { NP = sizeof ps / sizeof ps[0], W = 16 };
    T t;
    t_init(&t, "powc");
    Node *x = input(&t, "x", SH2(B, W));
    for (int k = 0; k < NP; k++)
        t_output(&t, "y", ir_powc(t.g, x, ps[k], L0));
    t_compile(&t, MAXB, 4);
    double *xv = fill(&t, x, MAXB * W, 0.1, 3, 40);
    t_run(&t, PROG_PREDICT, MAXB);
    for (int k = 0; k < NP; k++)
        for (int i = 0; i < MAXB * W; i++) {
            double want = pow(xv[i], ps[k]), got = get(&t, PROG_PREDICT, t_out(&t, k), i);
            if (!(fabs(got - want) <= 5e-6 * fmax(1, fabs(want))))
                fail_msg("%.9g ^ %g = %.9g, want %.9g", xv[i], ps[k], got, want);
        }
    free(xv);
    t_free(&t);
}

/* cast(labels) * 0.5 + NUMEL: an i32 load converted in the loop. */
static void test_lower_cast_int_input(void **state) {
    (void)state;
    T t;
    t_init(&t, "cast");
    Shape s = SH2(B, 3);
    Node *y = ir_input(t.g, "labels", DT_INT, &s, L0);
    Node *c = ir_unary(t.g, OP_CAST, y, L0);
    t_output(&t, "z",
             ir_binary(t.g, OP_ADD, ir_binary(t.g, OP_MUL, c, ir_const(t.g, 0.5, L0), L0),
                       ir_numel(t.g, &s, 3, L0), L0));
    t_compile(&t, MAXB, 4);
    for (int i = 0; i < MAXB * 3; i++)
        set_int(&t, y, i, i * 7 - 20);
    t_run(&t, PROG_PREDICT, 4);
    for (int i = 0; i < 4 * 3; i++) /* numel of [4, 3] is 12 */
        assert_near(get(&t, PROG_PREDICT, t_out(&t, 0), i), (i * 7 - 20) * 0.5 + 12, 0);
    t_free(&t);
}

/* Movement only: an integer transpose (an i32 kernel) and expands of a
 * parameter to [3, 4] and to [B, 4]. Exact. */
static void test_lower_int_transpose_and_expand(void **state) {
    (void)state;
    T t;
    t_init(&t, "move");
    Shape s = SH2(B, 3), to = SH2(3, 4), tob = SH2(B, 4);
    Node *y = ir_input(t.g, "labels", DT_INT, &s, L0);
    Node *w = param(&t, "w", SH2(1, 4));
    t_output(&t, "yt", ir_transpose(t.g, y, NULL, L0));
    t_output(&t, "w3", ir_expand(t.g, w, &to, L0));
    t_output(&t, "wb", ir_expand(t.g, w, &tob, L0));
    t_compile(&t, MAXB, 4);
    for (int i = 0; i < MAXB * 3; i++)
        set_int(&t, y, i, 100 + i);
    double *wv = fill(&t, w, 4, -1, 1, 45);
    t_run(&t, PROG_PREDICT, 6);
    const int32_t *yt = t_ptr(&t, PROG_PREDICT, t_out(&t, 0));
    for (int i = 0; i < 3; i++)
        for (int b = 0; b < 6; b++)
            assert_int_equal(yt[i * 6 + b], 100 + b * 3 + i);
    for (int i = 0; i < 3 * 4; i++)
        assert_near(get(&t, PROG_PREDICT, t_out(&t, 1), i), wv[i % 4], 0);
    for (int i = 0; i < 6 * 4; i++)
        assert_near(get(&t, PROG_PREDICT, t_out(&t, 2), i), wv[i % 4], 0);
    free(wv);
    t_free(&t);
}

/* ---- matmul ----------------------------------------------------------------------- */

/* C[m, n] = sum_k op(A)[m, k] op(B)[k, n], A stored [ra, ca], B [rb, cb]. */
static void naive_matmul(const double *a, int64_t ca, bool ta, const double *b, int64_t cb, bool tb,
                         int64_t m, int64_t n, int64_t k, double *c) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t l = 0; l < k; l++)
                s += (ta ? a[l * ca + i] : a[i * ca + l]) * (tb ? b[j * cb + l] : b[l * cb + j]);
            c[i * n + j] = s;
        }
}

/* All four transpose combinations, with the batch as M (outputs 0-3) and as
 * K (outputs 4-7), run with a partial batch of 6. Relative 1e-5. */
static void test_lower_matmul_all_transpose_flags(void **state) {
    (void)state;
    enum { KK = 5, NN = 3, MM = 4, RUN = 6 };
    T t;
    t_init(&t, "mm");
    /* batch as M: A is [B, K] or, transposed, [K, B]; B is [K, N] or [N, K] */
    Node *xa = input(&t, "xa", SH2(B, KK)), *xt = input(&t, "xt", SH2(KK, B));
    Node *w = param(&t, "w", SH2(KK, NN)), *wt = param(&t, "wt", SH2(NN, KK));
    /* batch as K: A is [M, B] or [B, M]; B is [B, N] or [N, B] */
    Node *pa = input(&t, "pa", SH2(MM, B)), *pt = input(&t, "pt", SH2(B, MM));
    Node *qa = input(&t, "qa", SH2(B, NN)), *qt = input(&t, "qt", SH2(NN, B));
    for (int f = 0; f < 4; f++) {
        bool ta = f & 1, tb = f & 2;
        t_output(&t, "m", ir_matmul(t.g, ta ? xt : xa, tb ? wt : w, ta, tb, L0));
    }
    for (int f = 0; f < 4; f++) {
        bool ta = f & 1, tb = f & 2;
        t_output(&t, "k", ir_matmul(t.g, ta ? pt : pa, tb ? qt : qa, ta, tb, L0));
    }
    t_compile(&t, MAXB, 4);
    /* Tensors with the batch in axis 1 are laid out for the run's batch. */
    double *xav = fill(&t, xa, RUN * KK, -1, 1, 50), *xtv = fill(&t, xt, KK * RUN, -1, 1, 51);
    double *wv = fill(&t, w, KK * NN, -1, 1, 52), *wtv = fill(&t, wt, NN * KK, -1, 1, 53);
    double *pav = fill(&t, pa, MM * RUN, -1, 1, 54), *ptv = fill(&t, pt, RUN * MM, -1, 1, 55);
    double *qav = fill(&t, qa, RUN * NN, -1, 1, 56), *qtv = fill(&t, qt, NN * RUN, -1, 1, 57);
    t_run(&t, PROG_PREDICT, RUN);
    double want[RUN * NN > MM * NN ? RUN * NN : MM * NN];
    for (int f = 0; f < 4; f++) {
        bool ta = f & 1, tb = f & 2;
        naive_matmul(ta ? xtv : xav, ta ? RUN : KK, ta, tb ? wtv : wv, tb ? KK : NN, tb, RUN, NN, KK,
                     want);
        for (int i = 0; i < RUN * NN; i++)
            assert_rel(get(&t, PROG_PREDICT, t_out(&t, f), i), want[i], 1e-5);
        naive_matmul(ta ? ptv : pav, ta ? MM : RUN, ta, tb ? qtv : qav, tb ? RUN : NN, tb, MM, NN,
                     RUN, want);
        for (int i = 0; i < MM * NN; i++)
            assert_rel(get(&t, PROG_PREDICT, t_out(&t, 4 + f), i), want[i], 1e-5);
    }
    free(xav), free(xtv), free(wv), free(wtv), free(pav), free(ptv), free(qav), free(qtv);
    t_free(&t);
}

/* ---- reductions --------------------------------------------------------------- */

/* sum/mean of x[B, 3, 4] over axes (bitmask) with keepdims, reference in
 * double; the output is laid out as x without the reduced axes. */
static void ref_reduce(const double *x, int64_t nb, unsigned axes, bool mean, double *out) {
    int64_t d[3] = {nb, 3, 4}, no = 1, count = 1;
    for (int i = 0; i < 3; i++) {
        if (axes >> i & 1)
            count *= d[i];
        else
            no *= d[i];
    }
    for (int64_t o = 0; o < no; o++)
        out[o] = 0;
    for (int64_t b = 0; b < nb; b++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 4; j++) {
                int64_t idx[3] = {b, i, j}, o = 0;
                for (int a = 0; a < 3; a++)
                    if (!(axes >> a & 1))
                        o = o * d[a] + idx[a];
                out[o] += x[(b * 3 + i) * 4 + j];
            }
    if (mean)
        for (int64_t o = 0; o < no; o++)
            out[o] /= (double)count;
}

/* SUM and MEAN over every subset of the axes of [B, 3, 4], with and without
 * keepdims, run with batch 5 of 8. Relative 1e-5. */
static void test_lower_sum_mean_every_axis_set(void **state) {
    (void)state;
    enum { RUN = 5 };
    T t;
    t_init(&t, "reduce");
    Node *x = input(&t, "x", SH3(B, 3, 4));
    for (unsigned axes = 1; axes < 8; axes++)
        for (int mean = 0; mean < 2; mean++)
            for (int keep = 0; keep < 2; keep++)
                t_output(&t, "r", ir_reduce(t.g, mean ? OP_MEAN : OP_SUM, x, axes, keep, L0));
    t_compile(&t, MAXB, 4);
    double *xv = fill(&t, x, MAXB * 12, -2, 2, 60);
    t_run(&t, PROG_PREDICT, RUN);
    double want[MAXB * 12];
    int o = 0;
    for (unsigned axes = 1; axes < 8; axes++)
        for (int mean = 0; mean < 2; mean++)
            for (int keep = 0; keep < 2; keep++, o++) {
                ref_reduce(xv, RUN, axes, mean, want);
                int64_t no = 1;
                for (int a = 0; a < 3; a++)
                    if (!(axes >> a & 1))
                        no *= a == 0 ? RUN : a == 1 ? 3 : 4;
                for (int64_t i = 0; i < no; i++) {
                    double got = get(&t, PROG_PREDICT, t_out(&t, o), i);
                    if (!(fabs(got - want[i]) <= 1e-5 * fmax(1, fabs(want[i]))))
                        fail_msg("%s axes=%#x keepdims=%d [%lld] = %.9g, want %.9g",
                                 mean ? "mean" : "sum", axes, keep, (long long)i, got, want[i]);
                }
            }
    free(xv);
    t_free(&t);
}

/* The two hot cases on a wide tensor: column sums (axis 0, the bias
 * gradient) and row sums (last axis) of [B, 300]. Relative 1e-5. */
static void test_lower_sum_hot_cases_wide(void **state) {
    (void)state;
    enum { H = 300, RUN = 7 };
    T t;
    t_init(&t, "hot");
    Node *x = input(&t, "x", SH2(B, H));
    t_output(&t, "cols", ir_reduce(t.g, OP_SUM, x, 1, false, L0));
    t_output(&t, "rows", ir_reduce(t.g, OP_MEAN, x, 2, true, L0));
    t_compile(&t, MAXB, 4);
    double *xv = fill(&t, x, MAXB * H, -1, 1, 61);
    t_run(&t, PROG_PREDICT, RUN);
    for (int j = 0; j < H; j++) {
        double s = 0;
        for (int b = 0; b < RUN; b++)
            s += xv[b * H + j];
        assert_rel(get(&t, PROG_PREDICT, t_out(&t, 0), j), s, 1e-5);
    }
    for (int b = 0; b < RUN; b++) {
        double s = 0;
        for (int j = 0; j < H; j++)
            s += xv[b * H + j];
        assert_rel(get(&t, PROG_PREDICT, t_out(&t, 1), b), s / H, 1e-5);
    }
    free(xv);
    t_free(&t);
}

/* ---- softmax, cross-entropy, one-hot ---------------------------------------------- */

/* softmax and log_softmax of x[B, 5] along axis 0 and axis 1, batch 6. */
static void test_lower_softmax_log_softmax_both_axes(void **state) {
    (void)state;
    enum { W = 5, RUN = 6 };
    T t;
    t_init(&t, "softmax");
    Node *x = input(&t, "x", SH2(B, W));
    for (int axis = 0; axis < 2; axis++) {
        t_output(&t, "s", ir_softmax(t.g, OP_SOFTMAX, x, axis, L0));
        t_output(&t, "l", ir_softmax(t.g, OP_LOG_SOFTMAX, x, axis, L0));
    }
    t_compile(&t, MAXB, 4);
    double *xv = fill(&t, x, MAXB * W, -8, 8, 70);
    xv[3] = 60, set(&t, x, 3, 60); /* large: needs the max subtracted */
    t_run(&t, PROG_PREDICT, RUN);
    for (int axis = 0; axis < 2; axis++) {
        int nlines = axis ? RUN : W, len = axis ? W : RUN;
        for (int line = 0; line < nlines; line++) {
#define AT(j) (axis ? line * W + (j) : (j) * W + line)
            double m = -INFINITY, s = 0;
            for (int j = 0; j < len; j++)
                m = fmax(m, xv[AT(j)]);
            for (int j = 0; j < len; j++)
                s += exp(xv[AT(j)] - m);
            for (int j = 0; j < len; j++) {
                assert_near(get(&t, PROG_PREDICT, t_out(&t, 2 * axis), AT(j)),
                            exp(xv[AT(j)] - m) / s, 1e-6);
                assert_rel(get(&t, PROG_PREDICT, t_out(&t, 2 * axis + 1), AT(j)),
                           xv[AT(j)] - m - log(s), 2e-6);
            }
#undef AT
        }
    }
    free(xv);
    t_free(&t);
}

/* xent(z[B, 4], labels[B]) with labels -1, 4 and 1000 out of range: NaN
 * there, logsumexp - z[label] elsewhere; onehot(labels, 4): a zero row for
 * an out-of-range label. */
static void test_lower_xent_onehot_out_of_range_label(void **state) {
    (void)state;
    enum { C = 4, RUN = 7 };
    static const int32_t labels[RUN] = {0, 3, -1, 2, 4, 1, 1000};
    T t;
    t_init(&t, "xent");
    Node *z = input(&t, "z", SH2(B, C));
    Shape ls = SH1(B);
    Node *y = ir_input(t.g, "y", DT_INT, &ls, L0);
    t_output(&t, "loss", ir_xent(t.g, z, y, L0));
    t_output(&t, "onehot", ir_onehot(t.g, y, C, L0));
    t_compile(&t, MAXB, 4);
    double *zv = fill(&t, z, MAXB * C, -5, 5, 80);
    for (int r = 0; r < RUN; r++)
        set_int(&t, y, r, labels[r]);
    t_run(&t, PROG_PREDICT, RUN);
    for (int r = 0; r < RUN; r++) {
        double got = get(&t, PROG_PREDICT, t_out(&t, 0), r);
        bool ok = labels[r] >= 0 && labels[r] < C;
        if (!ok) {
            assert_true(isnan(got));
        } else {
            double m = -INFINITY, s = 0;
            for (int j = 0; j < C; j++)
                m = fmax(m, zv[r * C + j]);
            for (int j = 0; j < C; j++)
                s += exp(zv[r * C + j] - m);
            assert_rel(got, m + log(s) - zv[r * C + labels[r]], 2e-6);
        }
        for (int j = 0; j < C; j++)
            assert_near(get(&t, PROG_PREDICT, t_out(&t, 1), r * C + j), j == labels[r] ? 1 : 0, 0);
    }
    free(zv);
    t_free(&t);
}

/* ---- training: a fused SGD update in place ---------------------------------------- */

/* y = x @ W + b, loss = mean((y - t)^2); one train step with lr = 0.1:
 * W -= lr x^T dy, b -= lr sum_rows(dy), dy = 2 (y - t) / (B N). Batch 5. */
static void test_lower_sgd_step_updates_params_in_place(void **state) {
    (void)state;
    enum { KK = 3, NN = 2, RUN = 5 };
    T t;
    t_init(&t, "sgd");
    Node *x = input(&t, "x", SH2(B, KK)), *tg = input(&t, "t", SH2(B, NN));
    Node *w = param(&t, "W", SH2(KK, NN)), *b = param(&t, "b", SH1(NN));
    Node *y = ir_binary(t.g, OP_ADD, ir_matmul(t.g, x, w, false, false, L0), b, L0);
    Node *e = ir_binary(t.g, OP_SUB, y, tg, L0);
    t.g->loss = ir_reduce(t.g, OP_MEAN, ir_binary(t.g, OP_MUL, e, e, L0), 0, false, L0);
    ad_backward(t.g);
    opt_build(t.g, opt_lookup("sgd"));
    t_compile(&t, MAXB, 4);
    double *xv = fill(&t, x, MAXB * KK, -1, 1, 90), *tv = fill(&t, tg, MAXB * NN, -1, 1, 91);
    double *wv = fill(&t, w, KK * NN, -1, 1, 92), *bv = fill(&t, b, NN, -1, 1, 93);
    set(&t, t.g->hypers.items[0].node, 0, 0.1);

    double loss = 0, dy[RUN * NN];
    for (int r = 0; r < RUN; r++)
        for (int j = 0; j < NN; j++) {
            double s = bv[j];
            for (int k = 0; k < KK; k++)
                s += xv[r * KK + k] * wv[k * NN + j];
            double d = s - tv[r * NN + j];
            loss += d * d / (RUN * NN);
            dy[r * NN + j] = 2 * d / (RUN * NN);
        }
    t_run(&t, PROG_TRAIN, RUN);
    assert_rel(get(&t, PROG_TRAIN, t.g->loss, 0), loss, 1e-5);
    for (int k = 0; k < KK; k++)
        for (int j = 0; j < NN; j++) {
            double gsum = 0;
            for (int r = 0; r < RUN; r++)
                gsum += xv[r * KK + k] * dy[r * NN + j];
            assert_near(get(&t, PROG_TRAIN, w, k * NN + j), wv[k * NN + j] - 0.1 * gsum, 1e-6);
        }
    for (int j = 0; j < NN; j++) {
        double gsum = 0;
        for (int r = 0; r < RUN; r++)
            gsum += dy[r * NN + j];
        assert_near(get(&t, PROG_TRAIN, b, j), bv[j] - 0.1 * gsum, 1e-6);
    }
    /* The ASSIGN kernels store into the parameters' own buffers. */
    const Program *p = &t.plan->prog[PROG_TRAIN];
    int nassign = 0;
    for (int k = 0; k < p->kernels.len; k++)
        if (p->kernels.items[k].root->op == OP_ASSIGN) {
            nassign++;
            assert_true(p->kernels.items[k].fused);
        }
    assert_int_equal(nassign, 2);
    free(xv), free(tv), free(wv), free(bv);
    t_free(&t);
}

/* ---- batch size at run time ------------------------------------------------------- */

/* h = tanh(x @ W + c), p = softmax(h, 1), s = sum(p * h, 1), m = mean(h, 0):
 * planned for 8 rows, run with 8 and then with the first 5 rows. The per-row
 * results agree (1e-6), and m averages only the 5 rows. */
static void test_lower_partial_batch_gives_same_rows(void **state) {
    (void)state;
    enum { KK = 6, H = 9, RUN = 5 };
    T t;
    t_init(&t, "partial");
    Node *x = input(&t, "x", SH2(B, KK));
    Node *w = param(&t, "W", SH2(KK, H)), *c = param(&t, "c", SH1(H));
    Node *h = ir_unary(t.g, OP_TANH, ir_binary(t.g, OP_ADD, ir_matmul(t.g, x, w, 0, 0, L0), c, L0), L0);
    Node *p = ir_softmax(t.g, OP_SOFTMAX, h, 1, L0);
    t_output(&t, "p", p);
    t_output(&t, "s", ir_reduce(t.g, OP_SUM, ir_binary(t.g, OP_MUL, p, h, L0), 2, false, L0));
    t_output(&t, "m", ir_reduce(t.g, OP_MEAN, h, 1, false, L0));
    t_output(&t, "h", h);
    t_compile(&t, MAXB, 4);
    double *xv = fill(&t, x, MAXB * KK, -1, 1, 100), *wv = fill(&t, w, KK * H, -1, 1, 101);
    double *cv = fill(&t, c, H, -1, 1, 102);
    (void)xv, (void)wv, (void)cv;
    t_run(&t, PROG_PREDICT, MAXB);
    double full_p[MAXB * H], full_s[MAXB];
    for (int i = 0; i < MAXB * H; i++)
        full_p[i] = get(&t, PROG_PREDICT, t_out(&t, 0), i);
    for (int i = 0; i < MAXB; i++)
        full_s[i] = get(&t, PROG_PREDICT, t_out(&t, 1), i);
    t_run(&t, PROG_PREDICT, RUN);
    for (int i = 0; i < RUN * H; i++)
        assert_near(get(&t, PROG_PREDICT, t_out(&t, 0), i), full_p[i], 1e-6);
    for (int i = 0; i < RUN; i++)
        assert_near(get(&t, PROG_PREDICT, t_out(&t, 1), i), full_s[i], 1e-6);
    for (int j = 0; j < H; j++) {
        double s = 0;
        for (int r = 0; r < RUN; r++)
            s += get(&t, PROG_PREDICT, t_out(&t, 3), r * H + j);
        assert_near(get(&t, PROG_PREDICT, t_out(&t, 2), j), s / RUN, 1e-6);
    }
    free(xv), free(wv), free(cv);
    t_free(&t);
}

/* ---- float64 ------------------------------------------------------------------------- */

/* A mixed model in float64 against the same formulas in double, 1e-12
 * relative: matmul, exp, log, tanh, sigmoid, pow, softmax, mean. */
static void test_lower_float64_matches_double_reference(void **state) {
    (void)state;
    enum { KK = 4, H = 6, RUN = 5 };
    T t;
    t_init(&t, "f64");
    Node *x = input(&t, "x", SH2(B, KK)), *w = param(&t, "W", SH2(KK, H));
    Node *a = ir_matmul(t.g, x, w, false, false, L0);
    Node *f = ir_binary(t.g, OP_ADD, ir_unary(t.g, OP_TANH, a, L0), ir_unary(t.g, OP_SIGMOID, a, L0), L0);
    f = ir_binary(t.g, OP_MUL, f, ir_unary(t.g, OP_LOG, ir_unary(t.g, OP_EXP, ir_powc(t.g, a, 2, L0), L0), L0), L0);
    f = ir_binary(t.g, OP_ADD, f, ir_powc(t.g, ir_unary(t.g, OP_EXP, a, L0), 1.5, L0), L0);
    t_output(&t, "f", f);
    t_output(&t, "p", ir_softmax(t.g, OP_LOG_SOFTMAX, f, 1, L0));
    t_output(&t, "m", ir_reduce(t.g, OP_MEAN, f, 1, false, L0)); /* axis 0 */
    t_compile(&t, MAXB, 8);
    double *xv = fill(&t, x, MAXB * KK, -1, 1, 110), *wv = fill(&t, w, KK * H, -1, 1, 111);
    t_run(&t, PROG_PREDICT, RUN);
    double fv[RUN * H], av[RUN * H], m = 0;
    naive_matmul(xv, KK, false, wv, H, false, RUN, H, KK, av);
    for (int i = 0; i < RUN * H; i++) {
        double v = av[i];
        fv[i] = (tanh(v) + 1 / (1 + exp(-v))) * log(exp(v * v)) + exp(1.5 * log(exp(v)));
        assert_rel(get(&t, PROG_PREDICT, t_out(&t, 0), i), fv[i], 1e-12);
        m += fv[i];
    }
    for (int r = 0; r < RUN; r++) {
        double mx = -INFINITY, s = 0;
        for (int j = 0; j < H; j++)
            mx = fmax(mx, fv[r * H + j]);
        for (int j = 0; j < H; j++)
            s += exp(fv[r * H + j] - mx);
        for (int j = 0; j < H; j++)
            assert_rel(get(&t, PROG_PREDICT, t_out(&t, 1), r * H + j), fv[r * H + j] - mx - log(s),
                       1e-12);
    }
    double col[H] = {0};
    for (int r = 0; r < RUN; r++)
        for (int j = 0; j < H; j++)
            col[j] += fv[r * H + j] / RUN;
    for (int j = 0; j < H; j++)
        assert_rel(get(&t, PROG_PREDICT, t_out(&t, 2), j), col[j], 1e-12);
    (void)m;
    free(xv), free(wv);
    t_free(&t);
}

/* ---- the generated code ------------------------------------------------------------ */

/* A fused elementwise loop with exp becomes packed SIMD code with no libm
 * call; kernels carry noalias and prefer-vector-width=512. */
static void test_lower_fused_exp_vectorises(void **state) {
    (void)state;
    T t;
    t_init(&t, "vec");
    Node *x = input(&t, "x", SH2(B, 256));
    t_output(&t, "y",
             ir_binary(t.g, OP_MUL, ir_unary(t.g, OP_EXP, x, L0), ir_const(t.g, 2, L0), L0));
    t_compile(&t, 64, 4);
    char *err = NULL;
    char *as = cg_module_asm(t.m, &err);
    if (!as)
        fail_msg("cg_module_asm: %s", err);
    assert_true(strstr(as, "zmm") || strstr(as, "ymm"));
    assert_null(strstr(as, "expf"));
    assert_non_null(strstr(as, "vfmadd")); /* the polynomial, packed */
    free(as);
    char *ir = cg_llvm_ir(t.m);
    assert_non_null(strstr(ir, "define void @vec_predict(ptr"));
    assert_non_null(strstr(ir, "\"prefer-vector-width\"=\"512\""));
    free(ir);
    /* Correct too: exp to the polynomial's accuracy (relative 3e-6). */
    double *xv = fill(&t, x, 64 * 256, -5, 5, 120);
    t_run(&t, PROG_PREDICT, 37);
    for (int i = 0; i < 37 * 256; i++)
        assert_rel(get(&t, PROG_PREDICT, t_out(&t, 0), i), 2 * exp(xv[i]), 6e-6);
    free(xv);
    t_free(&t);
}

/* Row sums (an accumulator: needs reassoc on the fadd) and column sums (a
 * unit-stride accumulation into the output) both become vector code. */
static void test_lower_reductions_vectorise(void **state) {
    (void)state;
    T t;
    t_init(&t, "red");
    Node *x = input(&t, "x", SH2(B, 300));
    t_output(&t, "rows", ir_reduce(t.g, OP_SUM, x, 2, false, L0));
    t_output(&t, "cols", ir_reduce(t.g, OP_SUM, x, 1, false, L0));
    t_compile(&t, MAXB, 4);
    char *ir = cg_llvm_ir(t.m);
    assert_non_null(strstr(ir, "@llvm.vector.reduce.fadd")); /* the row sums, widened */
    assert_non_null(strstr(ir, "fadd contract <16 x float>")); /* the column sums */
    free(ir);
    t_free(&t);
}

/* Every optimisation level computes the same values (1e-6: O2 reassociates
 * the row sums); O0 keeps the kernels as separate internal functions. */
static void test_lower_opt_levels_agree(void **state) {
    (void)state;
    double got[4][MAXB];
    for (int level = 0; level < 4; level++) {
        T t;
        t_init(&t, "lvl");
        Node *x = input(&t, "x", SH2(B, 40));
        t_output(&t, "s", ir_reduce(t.g, OP_SUM, ir_unary(t.g, OP_TANH, x, L0), 2, false, L0));
        ir_optimize(t.g);
        t.elem_size = 4;
        t.plan = ir_plan(t.g, MAXB, 4);
        CgOptions o = {.elem_size = 4, .opt_level = level};
        t.m = cg_compile(t.g, t.plan, &o, &t.d);
        assert_non_null(t.m);
        t.mem = aligned_alloc(64, (t.plan->arena_bytes + 63) & ~(size_t)63);
        double *xv = fill(&t, x, MAXB * 40, -2, 2, 130);
        t_run(&t, PROG_PREDICT, MAXB);
        for (int b = 0; b < MAXB; b++)
            got[level][b] = get(&t, PROG_PREDICT, t_out(&t, 0), b);
        if (level == 0) {
            char *ir = cg_llvm_ir(t.m);
            assert_non_null(strstr(ir, "define internal void @lvl_predict_k0(ptr noalias"));
            free(ir);
        }
        free(xv);
        t_free(&t);
    }
    for (int level = 1; level < 4; level++)
        for (int b = 0; b < MAXB; b++)
            assert_near(got[level][b], got[0][b], 1e-6 * fmax(1, fabs(got[0][b])));
}

/* A program without roots gets no function; the others do. */
static void test_lower_programs_without_roots_have_no_function(void **state) {
    (void)state;
    T t;
    t_init(&t, "noloss");
    Node *x = input(&t, "x", SH1(B));
    t_output(&t, "y", ir_unary(t.g, OP_NEG, x, L0));
    t_compile(&t, MAXB, 4);
    assert_non_null(cg_program(t.m, PROG_PREDICT));
    assert_null(cg_program(t.m, PROG_TRAIN));
    assert_null(cg_program(t.m, PROG_GRAD));
    assert_null(cg_program(t.m, PROG_EVAL));
    char *ir = cg_llvm_ir(t.m);
    assert_null(strstr(ir, "@noloss_train"));
    free(ir);
    t_free(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lower_broadcast_adds_row_vector),
        cmocka_unit_test(test_lower_broadcast_scalar_param),
        cmocka_unit_test(test_lower_broadcast_outer_product),
        cmocka_unit_test(test_lower_broadcast_rank3_middle_axis),
        cmocka_unit_test(test_lower_fused_transpose_and_two_maps),
        cmocka_unit_test(test_lower_unary_ops_match_libm),
        cmocka_unit_test(test_lower_binary_ops),
        cmocka_unit_test(test_lower_powc_cases),
        cmocka_unit_test(test_lower_cast_int_input),
        cmocka_unit_test(test_lower_int_transpose_and_expand),
        cmocka_unit_test(test_lower_matmul_all_transpose_flags),
        cmocka_unit_test(test_lower_sum_mean_every_axis_set),
        cmocka_unit_test(test_lower_sum_hot_cases_wide),
        cmocka_unit_test(test_lower_softmax_log_softmax_both_axes),
        cmocka_unit_test(test_lower_xent_onehot_out_of_range_label),
        cmocka_unit_test(test_lower_sgd_step_updates_params_in_place),
        cmocka_unit_test(test_lower_partial_batch_gives_same_rows),
        cmocka_unit_test(test_lower_float64_matches_double_reference),
        cmocka_unit_test(test_lower_fused_exp_vectorises),
        cmocka_unit_test(test_lower_reductions_vectorise),
        cmocka_unit_test(test_lower_opt_levels_agree),
        cmocka_unit_test(test_lower_programs_without_roots_have_no_function),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
