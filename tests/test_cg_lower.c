/* test_cg_lower.c: codegen/lower.c and cg.c: fused loop kernels
 * (broadcasting, index maps, every elementwise op, dropout), partial
 * batches, float64, optimisation levels and the generated code, run through
 * the JIT against a naive C reference computed here. The one-node kernel
 * ops are test_cg_kernels.c's, optimizer updates test_cg_update.c's.
 *
 * Graphs are built with the ir_* builders, optimised and planned, compiled
 * with cg_compile, and run on an arena filled at the planned offsets
 * (cg_fixture.h).
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
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cg_fixture.h"

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

/* ---- new elementwise ops --------------------------------------------------------- */

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

/* SIN COS FLOOR on [B, W] and POWER [B, W] ^ [W] (the exponent broadcast),
 * float32 and float64, run with batch 5, against libm in double: floor
 * exactly (integers, -0, halves and NaN included); sin, cos and pow as
 * sinf/cosf/powf (float32: 2 float ulps of the double result, relative to
 * max(1, |want|)) or exactly as sin/cos/pow (float64). pow keeps libm's
 * special cases: a negative base to an integer power, to a fraction NaN,
 * 0 ^ 0 = 1. */
static void test_lower_schedule_ops_sin_cos_floor_power(void **state) {
    (void)state;
    enum { W = 12, RUN = 5, NE = RUN * W, NOPS = 4 };
    for (int es = 4; es <= 8; es += 4) {
        T t;
        t_init(&t, "sched");
        Node *xs = input(&t, "xs", SH2(B, W)), *xf = input(&t, "xf", SH2(B, W));
        Node *a = input(&t, "a", SH2(B, W)), *e = param(&t, "e", SH1(W));
        t_output(&t, "sin", ir_unary(t.g, OP_SIN, xs, L0));
        t_output(&t, "cos", ir_unary(t.g, OP_COS, xs, L0));
        t_output(&t, "floor", ir_unary(t.g, OP_FLOOR, xf, L0));
        t_output(&t, "power", ir_binary(t.g, OP_POW, a, e, L0));
        t_compile(&t, MAXB, es);
        double *sv = fill(&t, xs, MAXB * W, -10, 10, 300), *fv = fill(&t, xf, MAXB * W, -4, 4, 301);
        double *av = fill(&t, a, MAXB * W, 0.05, 3, 302), *ev = fill(&t, e, W, -3, 3, 303);
        static const double fspecial[] = {2, -2, -0.0, -2.5, 2.5, NAN, 0.999, -1e-3};
        for (int i = 0; i < 8; i++)
            set(&t, xf, i, fv[i] = fspecial[i]);
        set(&t, e, 0, ev[0] = 3), set(&t, a, 0, av[0] = -2);      /* -8 */
        set(&t, e, 1, ev[1] = 0.5), set(&t, a, 1, av[1] = -2);    /* NaN */
        set(&t, e, 2, ev[2] = 0), set(&t, a, 2, av[2] = 0);       /* 1 */
        set(&t, a, W + 2, av[W + 2] = -0.0);                       /* (-0) ^ 0 = 1 */
        set(&t, a, 2 * W + 1, av[2 * W + 1] = 0);                  /* 0 ^ 0.5 = 0 */
        t_run(&t, PROG_PREDICT, RUN);
        for (int i = 0; i < NE; i++) {
            double want[NOPS] = {sin(sv[i]), cos(sv[i]), floor(fv[i]), pow(av[i], ev[i % W])};
            for (int o = 0; o < NOPS; o++) {
                double got = get(&t, PROG_PREDICT, t_out(&t, o), i);
                double tol = es == 8 || o == 2 ? 0 : 2 * FLT_EPSILON * fmax(1, fabs(want[o]));
                if (isnan(want[o]) ? !isnan(got) : !(fabs(got - want[o]) <= tol))
                    fail_msg("f%d %s at %d: %.9g, want %.9g", es * 8, t.g->outputs.items[o].name,
                             i, got, want[o]);
            }
        }
        assert_true(get(&t, PROG_PREDICT, t_out(&t, 3), 0) == -8);
        assert_true(isnan(get(&t, PROG_PREDICT, t_out(&t, 3), 1)));
        assert_true(get(&t, PROG_PREDICT, t_out(&t, 3), 2) == 1);
        assert_true(signbit(get(&t, PROG_PREDICT, t_out(&t, 2), 2))); /* floor(-0) = -0 */
        free(sv), free(fv), free(av), free(ev);
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
    sgd_update(t.g, 0.01);
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
    /* The train step's dropout loop (a kernel run on the thread pool
     * through its _part wrapper) is widened; eval has no mask at all. */
    bool train_widened = false, eval_mul = false;
    for (char *f = strstr(ir, "\ndefine "); f; f = strstr(f + 1, "\ndefine ")) {
        char *end = strstr(f, "\n}\n"), *name = strchr(f, '@');
        assert_non_null(end);
        char *mul = strstr(f, "mul <16 x i32>"), *anymul = strstr(f, " mul <");
        if (!strncmp(name, "@dropev_train", 13) && mul && mul < end)
            train_widened = true; /* lowbias32 */
        if (!strncmp(name, "@dropev_eval", 12) && anymul && anymul < end)
            eval_mul = true;
    }
    assert_true(train_widened);
    assert_false(eval_mul);
    free(ir);
    free(xv), free(cv);
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
        cmocka_unit_test(test_lower_new_unary_ops_float32_and_float64),
        cmocka_unit_test(test_lower_eq_and_bce_logits),
        cmocka_unit_test(test_lower_schedule_ops_sin_cos_floor_power),
        cmocka_unit_test(test_lower_dropout_masks_are_bernoulli_and_shared_with_gradient),
        cmocka_unit_test(test_lower_dropout_mask_follows_the_nodes_own_index),
        cmocka_unit_test(test_lower_dropout_identity_in_eval_and_predict),
        cmocka_unit_test(test_lower_partial_batch_gives_same_rows),
        cmocka_unit_test(test_lower_float64_matches_double_reference),
        cmocka_unit_test(test_lower_fused_exp_vectorises),
        cmocka_unit_test(test_lower_reductions_vectorise),
        cmocka_unit_test(test_lower_opt_levels_agree),
        cmocka_unit_test(test_lower_programs_without_roots_have_no_function),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
