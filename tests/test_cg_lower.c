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
 * stated), M, N, K matmul dims, C classes, V rows of a gathered table, W a
 * row's width.
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
#define SH4(a, b, c, e) ((Shape){.rank = 4, .d = {(a), (b), (c), (e)}})

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

/* ---- new elementwise ops --------------------------------------------------------- */

static Node *int_input(T *t, const char *name, Shape s) {
    return ir_input(t->g, name, DT_INT, &s, L0);
}

/* Tolerance of the polynomial ops: relative to max(1, |want|). */
static double poly_tol(const T *t, double f32) { return t->elem_size == 4 ? f32 : 1e-13; }

static double ref_gelu(double x) { return x * 0.5 * erfc(-x / sqrt(2)); }
static double ref_dgelu(double x) {
    return 0.5 * erfc(-x / sqrt(2)) + x * exp(-0.5 * x * x) / sqrt(2 * M_PI);
}
static double ref_softplus(double x) { return fmax(x, 0) + log1p(exp(-fabs(x))); }

/* ABS SIGN LEAKY_RELU GELU DGELU SOFTPLUS on a rank-4 [B, 2, 3, 4] input, in
 * float32 and float64, run with batch 5: the exact ops exactly (signed
 * zeros and NaN included), the others to the float polynomials' accuracy
 * (3e-6 relative to max(1, |y|)) or 1e-13 in float64; softplus(±1000) is
 * exact. */
static void test_lower_new_unary_ops_float32_and_float64(void **state) {
    (void)state;
    enum { RUN = 5, NE = RUN * 24, NOPS = 6 };
    static const double lo[NOPS] = {-3, -3, -3, -6, -6, -30}, hi[NOPS] = {3, 3, 3, 6, 6, 30};
    for (int es = 4; es <= 8; es += 4) {
        T t;
        t_init(&t, "unary2");
        Node *x[NOPS];
        for (int o = 0; o < NOPS; o++)
            x[o] = input(&t, "x", SH4(B, 2, 3, 4));
        t_output(&t, "abs", ir_unary(t.g, OP_ABS, x[0], L0));
        t_output(&t, "sign", ir_unary(t.g, OP_SIGN, x[1], L0));
        t_output(&t, "leaky", ir_leaky_relu(t.g, x[2], 0.1, L0));
        t_output(&t, "gelu", ir_unary(t.g, OP_GELU, x[3], L0));
        t_output(&t, "dgelu", ir_unary(t.g, OP_DGELU, x[4], L0));
        t_output(&t, "softplus", ir_unary(t.g, OP_SOFTPLUS, x[5], L0));
        t_compile(&t, MAXB, es);
        double *xv[NOPS];
        for (int o = 0; o < NOPS; o++) {
            xv[o] = fill(&t, x[o], MAXB * 24, lo[o], hi[o], 200 + (uint64_t)o);
            static const double special[] = {0.0, -0.0, NAN, 1000, -1000};
            for (int s = 0; s < 5; s++)
                set(&t, x[o], s, xv[o][s] = special[s]);
        }
        t_run(&t, PROG_PREDICT, RUN);
        for (int i = 0; i < NE; i++) {
            const float alpha = 0.1f;
            double v[NOPS];
            for (int o = 0; o < NOPS; o++)
                v[o] = xv[o][i];
            double want[NOPS] = {
                fabs(v[0]),
                v[1] > 0 ? 1 : v[1] < 0 ? -1 : v[1],
                v[2] > 0 ? v[2] : es == 4 ? (double)(alpha * (float)v[2]) : 0.1 * v[2],
                ref_gelu(v[3]),
                ref_dgelu(v[4]),
                ref_softplus(v[5]),
            };
            for (int o = 0; o < NOPS; o++) {
                double got = get(&t, PROG_PREDICT, t_out(&t, o), i);
                double tol = o < 3 ? 0 : poly_tol(&t, 3e-6) * fmax(1, fabs(want[o]));
                if (isnan(want[o]) ? !isnan(got) : !(fabs(got - want[o]) <= tol))
                    fail_msg("f%d %s(%.9g) = %.9g, want %.9g", es * 8,
                             t.g->outputs.items[o].name, v[o], got, want[o]);
            }
        }
        assert_true(signbit(get(&t, PROG_PREDICT, t_out(&t, 1), 1))); /* sign(-0) = -0 */
        assert_true(get(&t, PROG_PREDICT, t_out(&t, 5), 3) == 1000);  /* softplus(1000) */
        assert_true(get(&t, PROG_PREDICT, t_out(&t, 5), 4) == 0);     /* softplus(-1000) */
        for (int o = 0; o < NOPS; o++)
            free(xv[o]);
        t_free(&t);
    }
}

/* EQ and BCE_LOGITS on [B, 8] op [8], float32 and float64. bce_logits
 * against max(z, 0) - z y + log1p(e^-|z|) in long double (2e-6 relative to
 * max(1, |want|) in float32); at |z| = 1000 finite and exact. */
static void test_lower_eq_and_bce_logits(void **state) {
    (void)state;
    enum { W = 8, RUN = 6 };
    for (int es = 4; es <= 8; es += 4) {
        T t;
        t_init(&t, "binary2");
        Node *a = input(&t, "a", SH2(B, W)), *b = param(&t, "b", SH1(W));
        t_output(&t, "eq", ir_binary(t.g, OP_EQ, a, b, L0));
        t_output(&t, "bce", ir_binary(t.g, OP_BCE_LOGITS, a, b, L0));
        t_compile(&t, MAXB, es);
        double *av = fill(&t, a, MAXB * W, -10, 10, 210), *bv = fill(&t, b, W, 0, 1, 211);
        bv[1] = 1, bv[2] = 0, bv[3] = 0.3;
        for (int j = 1; j <= 3; j++) {
            set(&t, b, j, bv[j]);
            bv[j] = as_elem(&t, bv[j]);
            set(&t, a, j, av[j] = 1000);      /* row 0: z = 1000 */
            set(&t, a, W + j, av[W + j] = -1000); /* row 1: z = -1000 */
        }
        for (int r = 2; r < RUN; r++) /* equal pairs, and a NaN */
            set(&t, a, r * W + r, av[r * W + r] = bv[r]);
        set(&t, a, 5 * W, av[5 * W] = NAN);
        t_run(&t, PROG_PREDICT, RUN);
        for (int i = 0; i < RUN * W; i++) {
            double z = av[i], y = bv[i % W];
            assert_near(get(&t, PROG_PREDICT, t_out(&t, 0), i), z == y ? 1 : 0, 0);
            long double zl = z, yl = y;
            double want = (double)(fmaxl(zl, 0) - zl * yl + log1pl(expl(-fabsl(zl))));
            double got = get(&t, PROG_PREDICT, t_out(&t, 1), i);
            assert_near(got, want, poly_tol(&t, 2e-6) * fmax(1, fabs(want)));
        }
        /* |z| = 1000: y = 1, 0, 0.3 */
        assert_true(get(&t, PROG_PREDICT, t_out(&t, 1), 1) == 0);
        assert_true(get(&t, PROG_PREDICT, t_out(&t, 1), 2) == 1000);
        assert_true(get(&t, PROG_PREDICT, t_out(&t, 1), W + 1) == 1000);
        assert_true(get(&t, PROG_PREDICT, t_out(&t, 1), W + 2) == 0);
        double g3 = get(&t, PROG_PREDICT, t_out(&t, 1), 3);
        double h3 = get(&t, PROG_PREDICT, t_out(&t, 1), W + 3);
        assert_true(isfinite(g3) && isfinite(h3));
        assert_near(g3, 1000 - 1000 * bv[3], es == 4 ? 6.2e-5 : 1.2e-13); /* one ulp of 700 */
        assert_near(h3, 1000 * bv[3], es == 4 ? 3.1e-5 : 6e-14);
        free(av), free(bv);
        t_free(&t);
    }
}

/* ---- dropout ------------------------------------------------------------------------ */

/* The mask of codegen/lower.c, documented there, written out again. */
static uint32_t ref_lowbias32(uint32_t v) {
    v ^= v >> 16;
    v *= 0x7feb352du;
    v ^= v >> 15;
    v *= 0x846ca68bu;
    v ^= v >> 16;
    return v;
}
static bool ref_keep(int32_t key, int salt, int64_t i, double p) {
    uint32_t salt_mix = ref_lowbias32(0x9e3779b9u * ((uint32_t)salt + 1u));
    uint32_t seed = ref_lowbias32((uint32_t)key ^ salt_mix);
    uint32_t h = ref_lowbias32(ref_lowbias32((uint32_t)i ^ seed) ^ (uint32_t)((uint64_t)i >> 32));
    return (h >> 8) >= (uint32_t)ceil(p * 16777216.0);
}

/* The rng key of the graph (the int32 hyper "rng"). */
static void set_key(T *t, int32_t key) { set_int(t, ir_rng_key(t->g), 0, key); }

/* The first DROPOUT node's salt (the forward one). */
static int first_salt(T *t) {
    for (int i = 0; i < t->g->nodes.len; i++)
        if (t->g->nodes.items[i]->op == OP_DROPOUT)
            return t->g->nodes.items[i]->attr.drop.salt;
    fail_msg("no dropout");
    return -1;
}

/* loss = sum(dropout(x, p) * c) with parameters x, c of 1e5 elements: in
 * the grad program dc = dropout(x) (the forward mask) and dx = dropout(c)
 * (the backward one). For p = 0.1 and 0.5, in float32 (and p = 0.5 in
 * float64): the kept fraction is within 4 sigma of 1 - p; kept values are
 * exactly x * (1 / (1 - p)) (the scale rounded to the element type), the
 * rest 0; forward and backward drop the same elements, those the
 * documented hash gives; another key gives another mask, the same key the
 * same one. */
static void test_lower_dropout_masks_are_bernoulli_and_shared_with_gradient(void **state) {
    (void)state;
    enum { N = 100000 };
    static const struct { double p; int es; } cases[] = {{0.1, 4}, {0.5, 4}, {0.5, 8}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        double p = cases[c].p;
        T t;
        t_init(&t, "drop");
        Node *x = param(&t, "x", SH1(N)), *w = param(&t, "c", SH1(N));
        Node *d = ir_dropout(t.g, x, p, -1, L0);
        t.g->loss = ir_reduce(t.g, OP_SUM, ir_binary(t.g, OP_MUL, d, w, L0), 0, false, L0);
        ad_backward(t.g);
        t_compile(&t, MAXB, cases[c].es);
        int salt = first_salt(&t);
        double *xv = fill(&t, x, N, 0.5, 2, 220), *cv = fill(&t, w, N, -2, -0.5, 221);
        const Node *dx = t.g->params.items[0].grad, *dc = t.g->params.items[1].grad;
        double scale = as_elem(&t, 1 / (1 - p));
        bool *mask = malloc(N);
        set_key(&t, 12345);
        t_run(&t, PROG_GRAD, MAXB);
        int64_t kept = 0;
        for (int i = 0; i < N; i++) {
            double f = get(&t, PROG_GRAD, dc, i), b = get(&t, PROG_GRAD, dx, i);
            mask[i] = f != 0;
            kept += mask[i];
            if ((b != 0) != mask[i] || mask[i] != ref_keep(12345, salt, i, p))
                fail_msg("p=%g element %d: forward %g, backward %g, hash keeps %d", p, i, f, b,
                         ref_keep(12345, salt, i, p));
            assert_true(f == (mask[i] ? as_elem(&t, xv[i] * scale) : 0));
            assert_true(b == (mask[i] ? as_elem(&t, cv[i] * scale) : 0));
        }
        double frac = (double)kept / N, sigma = sqrt(p * (1 - p) / N);
        printf("  p=%g f%d: kept %.5f (1 - p = %g, sigma %.2g)\n", p, cases[c].es * 8, frac, 1 - p,
               sigma);
        assert_true(fabs(frac - (1 - p)) <= 4 * sigma);
        /* The same key: the same mask; another key: another one. */
        t_run(&t, PROG_GRAD, MAXB);
        for (int i = 0; i < N; i++)
            assert_true((get(&t, PROG_GRAD, dc, i) != 0) == mask[i]);
        set_key(&t, 12346);
        t_run(&t, PROG_GRAD, MAXB);
        int64_t differ = 0;
        for (int i = 0; i < N; i++)
            differ += (get(&t, PROG_GRAD, dc, i) != 0) != mask[i];
        /* independent masks differ in 2 p (1 - p) of the elements */
        assert_true(fabs((double)differ / N - 2 * p * (1 - p)) <= 8 * sigma);
        free(mask), free(xv), free(cv);
        t_free(&t);
    }
}

/* The mask depends on the element's index in the dropout's own shape
 * only. (1) loss = sum(dropout(x^T) * c): the forward dropout is the root
 * of its kernel, the backward one is computed under a transpose inside
 * dx's kernel, and they agree element for element. (2) A [B, 3, 7] dropout
 * with a parameter broadcast over the batch: the loss and dc = sum over
 * rows of the kept elements follow the hash of the row-major index with
 * the run's batch size, for batch 8 and batch 5. */
static void test_lower_dropout_mask_follows_the_nodes_own_index(void **state) {
    (void)state;
    {
        T t;
        t_init(&t, "dropt");
        Node *x = param(&t, "x", SH2(4, 6)), *w = param(&t, "c", SH2(6, 4));
        Node *d = ir_dropout(t.g, ir_transpose(t.g, x, NULL, L0), 0.5, -1, L0);
        t.g->loss = ir_reduce(t.g, OP_SUM, ir_binary(t.g, OP_MUL, d, w, L0), 0, false, L0);
        ad_backward(t.g);
        t_compile(&t, MAXB, 4);
        int salt = first_salt(&t);
        double *xv = fill(&t, x, 24, 1, 2, 230), *cv = fill(&t, w, 24, 1, 2, 231);
        set_key(&t, -7);
        t_run(&t, PROG_GRAD, 1);
        const Node *dx = t.g->params.items[0].grad, *dc = t.g->params.items[1].grad;
        int nkept = 0;
        for (int i = 0; i < 6; i++)
            for (int j = 0; j < 4; j++) {
                bool keep = ref_keep(-7, salt, i * 4 + j, 0.5);
                nkept += keep;
                assert_true((get(&t, PROG_GRAD, dc, i * 4 + j) != 0) == keep);
                assert_true((get(&t, PROG_GRAD, dx, j * 6 + i) != 0) == keep);
                assert_true(get(&t, PROG_GRAD, dx, j * 6 + i) == (keep ? 2 * cv[i * 4 + j] : 0));
                assert_true(get(&t, PROG_GRAD, dc, i * 4 + j) == (keep ? 2 * xv[j * 6 + i] : 0));
            }
        assert_true(nkept > 0 && nkept < 24);
        free(xv), free(cv);
        t_free(&t);
    }
    {
        enum { W = 7 };
        T t;
        t_init(&t, "dropb");
        Node *x = input(&t, "x", SH3(B, 3, W)), *w = param(&t, "c", SH1(W));
        Node *d = ir_dropout(t.g, x, 0.3, -1, L0);
        t.g->loss = ir_reduce(t.g, OP_SUM, ir_binary(t.g, OP_MUL, d, w, L0), 0, false, L0);
        ad_backward(t.g);
        t_compile(&t, MAXB, 8);
        int salt = first_salt(&t);
        double *xv = fill(&t, x, MAXB * 3 * W, -1, 1, 232), *cv = fill(&t, w, W, -1, 1, 233);
        set_key(&t, 99);
        const Node *dc = t.g->params.items[0].grad;
        for (int run = MAXB; run >= 5; run -= 3) {
            t_run(&t, PROG_GRAD, run);
            double loss = 0, want[W] = {0};
            for (int i = 0; i < run * 3 * W; i++)
                if (ref_keep(99, salt, i, 0.3)) {
                    double v = xv[i] * (1 / 0.7);
                    loss += v * cv[i % W];
                    want[i % W] += v;
                }
            assert_rel(get(&t, PROG_GRAD, t.g->loss, 0), loss, 1e-12);
            for (int j = 0; j < W; j++)
                assert_rel(get(&t, PROG_GRAD, dc, j), want[j], 1e-12);
        }
        free(xv), free(cv);
        t_free(&t);
    }
}

/* Eval and predict programs pass x through unchanged (any key); the train
 * step's dropout is a vectorised loop of integer mixing. */
static void test_lower_dropout_identity_in_eval_and_predict(void **state) {
    (void)state;
    enum { W = 256, RUN = 6 };
    T t;
    t_init(&t, "dropev");
    Node *x = input(&t, "x", SH2(B, W)), *w = param(&t, "c", SH1(W));
    Node *d = ir_dropout(t.g, x, 0.5, -1, L0);
    t_output(&t, "y", d);
    t.g->loss = ir_reduce(t.g, OP_SUM, ir_binary(t.g, OP_MUL, d, w, L0), 0, false, L0);
    ad_backward(t.g);
    opt_build(t.g, opt_lookup("sgd"));
    t_compile(&t, MAXB, 4);
    double *xv = fill(&t, x, MAXB * W, -1, 1, 240), *cv = fill(&t, w, W, -1, 1, 241);
    set_key(&t, 5);
    t_run(&t, PROG_PREDICT, RUN);
    for (int i = 0; i < RUN * W; i++)
        assert_true(get(&t, PROG_PREDICT, t_out(&t, 0), i) == xv[i]);
    t_run(&t, PROG_EVAL, RUN);
    double loss = 0;
    for (int i = 0; i < RUN * W; i++)
        loss += xv[i] * cv[i % W];
    assert_rel(get(&t, PROG_EVAL, t.g->loss, 0), loss, 1e-5);
    char *ir = cg_llvm_ir(t.m);
    char *train = strstr(ir, "@dropev_train("), *eval = strstr(ir, "@dropev_eval(");
    assert_non_null(train);
    assert_non_null(eval);
    *strstr(train, "\n}\n") = '\0'; /* the train step's body only */
    assert_non_null(strstr(train, "mul <16 x i32>")); /* lowbias32, widened */
    assert_null(strstr(eval, " mul <")); /* no mask in eval */
    free(ir);
    free(xv), free(cv);
    t_free(&t);
}

/* ---- amax ----------------------------------------------------------------------------- */

/* amax of x (rank r, dims d) over the axes in mask; out laid out as x
 * without the reduced axes. NaN if any reduced element is NaN. */
static void ref_amax(const double *x, const int64_t *d, int r, unsigned axes, double *out) {
    int64_t n = 1, no = 1;
    for (int a = 0; a < r; a++) {
        n *= d[a];
        if (!(axes >> a & 1))
            no *= d[a];
    }
    for (int64_t o = 0; o < no; o++)
        out[o] = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        int64_t rest = i, idx[IR_MAX_RANK], o = 0;
        for (int a = r - 1; a >= 0; a--)
            idx[a] = rest % d[a], rest /= d[a];
        for (int a = 0; a < r; a++)
            if (!(axes >> a & 1))
                o = o * d[a] + idx[a];
        if (isnan(x[i]) || isnan(out[o]))
            out[o] = NAN;
        else if (x[i] > out[o])
            out[o] = x[i];
    }
}

/* AMAX over every subset of the axes of [B, 3, 4, 2], with and without
 * keepdims, float32 and float64, batch 5: exact, with ties (values on a
 * coarse grid), and NaN wherever a reduced set holds the one NaN. */
static void test_lower_amax_every_axis_set_ties_and_nan(void **state) {
    (void)state;
    enum { RUN = 5, NX = MAXB * 24 };
    for (int es = 4; es <= 8; es += 4) {
        T t;
        t_init(&t, "amax");
        Node *x = input(&t, "x", SH4(B, 3, 4, 2));
        for (unsigned axes = 1; axes < 16; axes++)
            for (int keep = 0; keep < 2; keep++)
                t_output(&t, "m", ir_reduce(t.g, OP_AMAX, x, axes, keep, L0));
        t_compile(&t, MAXB, es);
        double *xv = fill(&t, x, NX, -3, 3, 250);
        for (int i = 0; i < NX; i++) /* ties */
            set(&t, x, i, xv[i] = floor(xv[i] * 2) / 2);
        set(&t, x, 37, xv[37] = NAN); /* b = 1, i = 1, j = 2, k = 1 */
        t_run(&t, PROG_PREDICT, RUN);
        const int64_t d[4] = {RUN, 3, 4, 2};
        double want[NX];
        int o = 0, nnan = 0;
        for (unsigned axes = 1; axes < 16; axes++)
            for (int keep = 0; keep < 2; keep++, o++) {
                ref_amax(xv, d, 4, axes, want);
                int64_t no = 1;
                for (int a = 0; a < 4; a++)
                    if (!(axes >> a & 1))
                        no *= d[a];
                for (int64_t i = 0; i < no; i++) {
                    double got = get(&t, PROG_PREDICT, t_out(&t, o), i);
                    nnan += isnan(want[i]);
                    if (isnan(want[i]) ? !isnan(got) : got != want[i])
                        fail_msg("f%d amax axes=%#x keepdims=%d [%lld] = %g, want %g", es * 8,
                                 axes, keep, (long long)i, got, want[i]);
                }
            }
        assert_true(nnan > 0);
        free(xv);
        t_free(&t);
    }
}

/* ---- matmul of stacks of rows ------------------------------------------------------ */

/* The product of rank-3 and rank-4 operands, as the matrices [product of the
 * leading dims, last dim]: [2,3,4] @ [4,5], its gradient forms g @ W^T (tb)
 * and a^T @ g (ta, contracting 2*3), the same with the batch dim leading
 * ([B,3,4]: M = 3B, and K = 3B for the ta form), [B,2,3,4] @ [4,5], and
 * a^T @ b^T for a [2,3,4]. float32 (1e-5) and float64 (1e-12), batch 5. */
static void test_lower_matmul_rank3_and_gradient_forms(void **state) {
    (void)state;
    enum { RUN = 5 };
    for (int es = 4; es <= 8; es += 4) {
        T t;
        t_init(&t, "mm3");
        Node *a = input(&t, "a", SH3(2, 3, 4)), *w = param(&t, "w", SH2(4, 5));
        Node *g = input(&t, "g", SH3(2, 3, 5)), *xb = input(&t, "xb", SH3(B, 3, 4));
        Node *gb = input(&t, "gb", SH3(B, 3, 5)), *a4 = input(&t, "a4", SH4(B, 2, 3, 4));
        Node *bt = param(&t, "bt", SH2(5, 6));
        t_output(&t, "a@w", ir_matmul(t.g, a, w, false, false, L0));
        t_output(&t, "g@wT", ir_matmul(t.g, g, w, false, true, L0));
        t_output(&t, "aT@g", ir_matmul(t.g, a, g, true, false, L0));
        t_output(&t, "xb@w", ir_matmul(t.g, xb, w, false, false, L0));
        t_output(&t, "gb@wT", ir_matmul(t.g, gb, w, false, true, L0));
        t_output(&t, "xbT@gb", ir_matmul(t.g, xb, gb, true, false, L0));
        t_output(&t, "a4@w", ir_matmul(t.g, a4, w, false, false, L0));
        t_output(&t, "aT@btT", ir_matmul(t.g, a, bt, true, true, L0));
        t_compile(&t, MAXB, es);
        double *av = fill(&t, a, 24, -1, 1, 260), *wv = fill(&t, w, 20, -1, 1, 261);
        double *gv = fill(&t, g, 30, -1, 1, 262), *xbv = fill(&t, xb, MAXB * 12, -1, 1, 263);
        double *gbv = fill(&t, gb, MAXB * 15, -1, 1, 264);
        double *a4v = fill(&t, a4, MAXB * 24, -1, 1, 265);
        double *btv = fill(&t, bt, 30, -1, 1, 266);
        t_run(&t, PROG_PREDICT, RUN);
        static const int64_t shape[8][2] = {{6, 5}, {6, 4}, {4, 5}, {3 * RUN, 5},
                                            {3 * RUN, 4}, {4, 5}, {6 * RUN, 5}, {4, 5}};
        double want[8][6 * RUN * 5];
        naive_matmul(av, 4, false, wv, 5, false, 6, 5, 4, want[0]);
        naive_matmul(gv, 5, false, wv, 5, true, 6, 4, 5, want[1]);
        naive_matmul(av, 4, true, gv, 5, false, 4, 5, 6, want[2]);
        naive_matmul(xbv, 4, false, wv, 5, false, 3 * RUN, 5, 4, want[3]);
        naive_matmul(gbv, 5, false, wv, 5, true, 3 * RUN, 4, 5, want[4]);
        naive_matmul(xbv, 4, true, gbv, 5, false, 4, 5, 3 * RUN, want[5]);
        naive_matmul(a4v, 4, false, wv, 5, false, 6 * RUN, 5, 4, want[6]);
        naive_matmul(av, 4, true, btv, 6, true, 4, 5, 6, want[7]);
        for (int o = 0; o < 8; o++) {
            assert_int_equal(shape_numel(&t_out(&t, o)->shape, RUN), shape[o][0] * shape[o][1]);
            for (int i = 0; i < shape[o][0] * shape[o][1]; i++)
                assert_rel(get(&t, PROG_PREDICT, t_out(&t, o), i), want[o][i],
                           es == 4 ? 1e-5 : 1e-12);
        }
        free(av), free(wv), free(gv), free(xbv), free(gbv), free(a4v), free(btv);
        t_free(&t);
    }
}

/* ---- concat, slice ------------------------------------------------------------------ */

/* Flat index of idx in a row-major tensor of dims d. */
static int64_t flat(const int64_t *idx, const int64_t *d, int r) {
    int64_t f = 0;
    for (int a = 0; a < r; a++)
        f = f * d[a] + idx[a];
    return f;
}

/* The value out[idx] of concat(a, b, axis) (dims da, db) or slice(x, axis,
 * start) (b NULL, start >= 0), by multi-index. */
static double ref_join(const double *a, const int64_t *da, const double *b, const int64_t *db,
                       int r, int axis, int64_t start, const int64_t *idx) {
    int64_t j[IR_MAX_RANK];
    memcpy(j, idx, sizeof j);
    if (!b) {
        j[axis] += start;
        return a[flat(j, da, r)];
    }
    if (j[axis] < da[axis])
        return a[flat(j, da, r)];
    j[axis] -= da[axis];
    return b[flat(j, db, r)];
}

/* Compare every element of out (dims d, rank r) with ref_join. */
static void check_join(T *t, const Node *out, const int64_t *d, int r, const double *a,
                       const int64_t *da, const double *b, const int64_t *db, int axis,
                       int64_t start) {
    int64_t n = 1, idx[IR_MAX_RANK] = {0};
    for (int k = 0; k < r; k++)
        n *= d[k];
    for (int64_t i = 0; i < n; i++) {
        int64_t rest = i;
        for (int k = r - 1; k >= 0; k--)
            idx[k] = rest % d[k], rest /= d[k];
        double want = ref_join(a, da, b, db, r, axis, start, idx);
        if (get(t, PROG_PREDICT, out, i) != want)
            fail_msg("%s axis %d [%lld] = %g, want %g", b ? "concat" : "slice", axis,
                     (long long)i, get(t, PROG_PREDICT, out, i), want);
    }
}

/* CONCAT along axis 1, the last axis (given as -1) and axis 0 (with the
 * batch dim after it), and along axis 2 of rank-4 tensors; SLICE of a
 * concat along axis 1, of one along axis 0, and along the last axis. Exact,
 * float32 and float64, batch 5. */
static void test_lower_concat_and_slice(void **state) {
    (void)state;
    enum { R = 5 };
    for (int es = 4; es <= 8; es += 4) {
        T t;
        t_init(&t, "cat");
        Node *a1 = input(&t, "a1", SH3(B, 2, 3)), *b1 = input(&t, "b1", SH3(B, 4, 3));
        Node *b2 = input(&t, "b2", SH3(B, 2, 5));
        Node *a0 = input(&t, "a0", SH2(2, B)), *b0 = input(&t, "b0", SH2(3, B));
        Node *a4 = input(&t, "a4", SH4(B, 2, 3, 2)), *b4 = input(&t, "b4", SH4(B, 2, 1, 2));
        Node *c1 = ir_concat(t.g, a1, b1, 1, L0), *c0 = ir_concat(t.g, a0, b0, 0, L0);
        t_output(&t, "c1", c1);
        t_output(&t, "c2", ir_concat(t.g, a1, b2, -1, L0));
        t_output(&t, "c0", c0);
        t_output(&t, "c4", ir_concat(t.g, a4, b4, 2, L0));
        t_output(&t, "s1", ir_slice(t.g, c1, 1, 2, 3, L0));
        t_output(&t, "s0", ir_slice(t.g, c0, 0, 1, 3, L0));
        t_output(&t, "s2", ir_slice(t.g, b2, 2, 1, 3, L0));
        t_compile(&t, MAXB, es);
        double *a1v = fill(&t, a1, MAXB * 6, -1, 1, 270);
        double *b1v = fill(&t, b1, MAXB * 12, -1, 1, 271);
        double *b2v = fill(&t, b2, MAXB * 10, -1, 1, 272), *a0v = fill(&t, a0, 2 * R, -1, 1, 273);
        double *b0v = fill(&t, b0, 3 * R, -1, 1, 274), *a4v = fill(&t, a4, MAXB * 12, -1, 1, 275);
        double *b4v = fill(&t, b4, MAXB * 4, -1, 1, 276);
        t_run(&t, PROG_PREDICT, R);
        /* concat(a1, b1, 1) computed the same way, for the slice of it */
        double c1v[R * 18], c0v[5 * R];
        {
            const int64_t d[3] = {R, 6, 3}, da[3] = {R, 2, 3}, db[3] = {R, 4, 3};
            check_join(&t, t_out(&t, 0), d, 3, a1v, da, b1v, db, 1, 0);
            for (int i = 0; i < R * 18; i++)
                c1v[i] = get(&t, PROG_PREDICT, t_out(&t, 0), i);
        }
        {
            const int64_t d[3] = {R, 2, 8}, da[3] = {R, 2, 3}, db[3] = {R, 2, 5};
            check_join(&t, t_out(&t, 1), d, 3, a1v, da, b2v, db, 2, 0);
        }
        {
            const int64_t d[2] = {5, R}, da[2] = {2, R}, db[2] = {3, R};
            check_join(&t, t_out(&t, 2), d, 2, a0v, da, b0v, db, 0, 0);
            for (int i = 0; i < 5 * R; i++)
                c0v[i] = get(&t, PROG_PREDICT, t_out(&t, 2), i);
        }
        {
            const int64_t d[4] = {R, 2, 4, 2}, da[4] = {R, 2, 3, 2}, db[4] = {R, 2, 1, 2};
            check_join(&t, t_out(&t, 3), d, 4, a4v, da, b4v, db, 2, 0);
        }
        {
            const int64_t d[3] = {R, 3, 3}, dx[3] = {R, 6, 3};
            check_join(&t, t_out(&t, 4), d, 3, c1v, dx, NULL, NULL, 1, 2);
        }
        {
            const int64_t d[2] = {3, R}, dx[2] = {5, R};
            check_join(&t, t_out(&t, 5), d, 2, c0v, dx, NULL, NULL, 0, 1);
        }
        {
            const int64_t d[3] = {R, 2, 3}, dx[3] = {R, 2, 5};
            check_join(&t, t_out(&t, 6), d, 3, b2v, dx, NULL, NULL, 2, 1);
        }
        free(a1v), free(b1v), free(b2v), free(a0v), free(b0v), free(a4v), free(b4v);
        t_free(&t);
    }
}

/* ---- gather, scatter_add ----------------------------------------------------------- */

/* GATHER from [5, 3] by ids [B] and [B, 3], from [5] by [B, 3], from
 * [5, 2, 3] by [B, 2] (a rank-4 result); ids -1, 5 and 2^30 give rows of
 * NaN (and read nothing out of bounds: ASan builds check). Exact, float32
 * and float64, batch 6. */
static void test_lower_gather_rows_and_out_of_range_ids(void **state) {
    (void)state;
    enum { V = 5, RUN = 6 };
    static const int32_t ids1[RUN] = {0, 4, -1, 2, 5, 2};
    static const int32_t ids2[RUN * 3] = {1, 1, 0, 4, 3, 2, 1 << 30, 0, -1,
                                          2, 2, 2, 3, 4, 5, 0, 0, 1};
    for (int es = 4; es <= 8; es += 4) {
        T t;
        t_init(&t, "gather");
        Node *tab = param(&t, "tab", SH2(V, 3)), *tab1 = param(&t, "tab1", SH1(V));
        Node *tab3 = param(&t, "tab3", SH3(V, 2, 3));
        Node *i1 = int_input(&t, "i1", SH1(B)), *i2 = int_input(&t, "i2", SH2(B, 3));
        Node *i3 = int_input(&t, "i3", SH2(B, 2));
        t_output(&t, "g1", ir_gather(t.g, tab, i1, L0));
        t_output(&t, "g2", ir_gather(t.g, tab, i2, L0));
        t_output(&t, "g3", ir_gather(t.g, tab1, i2, L0));
        t_output(&t, "g4", ir_gather(t.g, tab3, i3, L0));
        t_compile(&t, MAXB, es);
        double *tv = fill(&t, tab, V * 3, -1, 1, 280), *t1v = fill(&t, tab1, V, -1, 1, 281);
        double *t3v = fill(&t, tab3, V * 6, -1, 1, 282);
        for (int i = 0; i < RUN; i++)
            set_int(&t, i1, i, ids1[i]);
        for (int i = 0; i < RUN * 3; i++)
            set_int(&t, i2, i, ids2[i]);
        for (int i = 0; i < RUN * 2; i++)
            set_int(&t, i3, i, ids2[i + 3]);
        t_run(&t, PROG_PREDICT, RUN);
#define CHECK_ROW(out, at, id, table, len)                                             \
    for (int j_ = 0; j_ < (len); j_++) {                                                 \
        double got_ = get(&t, PROG_PREDICT, t_out(&t, out), (at) * (len) + j_);          \
        bool ok_ = (id) >= 0 && (id) < V;                                                 \
        if (ok_ ? got_ != (table)[(id) * (len) + j_] : !isnan(got_))                    \
            fail_msg("gather %d: row %d (id %d) [%d] = %g", out, (int)(at), (int)(id), j_, \
                     got_);                                                                \
    }
        for (int i = 0; i < RUN; i++)
            CHECK_ROW(0, i, ids1[i], tv, 3);
        for (int i = 0; i < RUN * 3; i++) {
            CHECK_ROW(1, i, ids2[i], tv, 3);
            CHECK_ROW(2, i, ids2[i], t1v, 1);
        }
        for (int i = 0; i < RUN * 2; i++)
            CHECK_ROW(3, i, ids2[i + 3], t3v, 6);
#undef CHECK_ROW
        free(tv), free(t1v), free(t3v);
        t_free(&t);
    }
}

/* SCATTER_ADD of x[B, 3] by ids [B] and of x[B, 2, 3] by ids [B, 2] into
 * [5, 3]: repeated ids accumulate, ids -3, 5 and 99 are skipped, untouched
 * rows are 0. Against the sums in double (1e-6 in float32), batch 7. */
static void test_lower_scatter_add_repeats_and_skips(void **state) {
    (void)state;
    enum { V = 5, RUN = 7 };
    static const int32_t ids1[RUN] = {2, 0, 2, -3, 5, 2, 0};
    static const int32_t ids2[RUN * 2] = {1, 1, 99, 4, 4, 1, 0, -1, 1, 1, 3, 3, 1, 4};
    for (int es = 4; es <= 8; es += 4) {
        T t;
        t_init(&t, "scatter");
        Node *x1 = input(&t, "x1", SH2(B, 3)), *x2 = input(&t, "x2", SH3(B, 2, 3));
        Node *i1 = int_input(&t, "i1", SH1(B)), *i2 = int_input(&t, "i2", SH2(B, 2));
        t_output(&t, "s1", ir_scatter_add(t.g, x1, i1, V, L0));
        t_output(&t, "s2", ir_scatter_add(t.g, x2, i2, V, L0));
        t_compile(&t, MAXB, es);
        double *x1v = fill(&t, x1, MAXB * 3, -1, 1, 290), *x2v = fill(&t, x2, MAXB * 6, -1, 1, 291);
        for (int i = 0; i < RUN; i++)
            set_int(&t, i1, i, ids1[i]);
        for (int i = 0; i < RUN * 2; i++)
            set_int(&t, i2, i, ids2[i]);
        t_run(&t, PROG_PREDICT, RUN);
        double w1[V * 3] = {0}, w2[V * 3] = {0};
        for (int i = 0; i < RUN; i++)
            for (int j = 0; j < 3; j++)
                if (ids1[i] >= 0 && ids1[i] < V)
                    w1[ids1[i] * 3 + j] += x1v[i * 3 + j];
        for (int i = 0; i < RUN * 2; i++)
            for (int j = 0; j < 3; j++)
                if (ids2[i] >= 0 && ids2[i] < V)
                    w2[ids2[i] * 3 + j] += x2v[i * 3 + j];
        for (int i = 0; i < V * 3; i++) {
            assert_near(get(&t, PROG_PREDICT, t_out(&t, 0), i), w1[i], es == 4 ? 1e-6 : 1e-15);
            assert_near(get(&t, PROG_PREDICT, t_out(&t, 1), i), w2[i], es == 4 ? 1e-6 : 1e-15);
        }
        for (int j = 0; j < 3; j++) /* rows 1, 3, 4 of s1 get nothing */
            assert_true(get(&t, PROG_PREDICT, t_out(&t, 0), 3 + j) == 0 &&
                        get(&t, PROG_PREDICT, t_out(&t, 0), 9 + j) == 0 &&
                        get(&t, PROG_PREDICT, t_out(&t, 0), 12 + j) == 0);
        free(x1v), free(x2v);
        t_free(&t);
    }
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
        cmocka_unit_test(test_lower_new_unary_ops_float32_and_float64),
        cmocka_unit_test(test_lower_eq_and_bce_logits),
        cmocka_unit_test(test_lower_dropout_masks_are_bernoulli_and_shared_with_gradient),
        cmocka_unit_test(test_lower_dropout_mask_follows_the_nodes_own_index),
        cmocka_unit_test(test_lower_dropout_identity_in_eval_and_predict),
        cmocka_unit_test(test_lower_amax_every_axis_set_ties_and_nan),
        cmocka_unit_test(test_lower_matmul_rank3_and_gradient_forms),
        cmocka_unit_test(test_lower_concat_and_slice),
        cmocka_unit_test(test_lower_gather_rows_and_out_of_range_ids),
        cmocka_unit_test(test_lower_scatter_add_repeats_and_skips),
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
