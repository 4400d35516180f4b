/* test_cg_kernels.c: codegen/kernels.c, the one-node kernel ops: matrix
 * products (BLAS, every transpose flag, stacks of rows), reductions (every
 * axis set, NaN and ties), softmax and log-softmax, cross-entropy and
 * one-hot, concat and slice, gather and scatter_add; each run through the
 * JIT against a naive C reference computed here.
 *
 * Tolerances are stated per check: exact for copies and one-hot, a few
 * float ulps where a kernel reassociates a sum (BLAS, vectorised
 * reductions) or uses the float32 polynomials of mathfn.c.
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

#include "cg_fixture.h"

/* ---- matmul ----------------------------------------------------------------------- */

/* All four transpose combinations, with the batch as M (outputs 0-3) and as
 * K (outputs 4-7), run with a partial batch of 6. Relative 1e-5. */
static void test_kernels_matmul_all_transpose_flags(void **state) {
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
static void test_kernels_sum_mean_every_axis_set(void **state) {
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
static void test_kernels_sum_hot_cases_wide(void **state) {
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
static void test_kernels_softmax_log_softmax_both_axes(void **state) {
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

/* Rows of 100 (vectorised row maxima) with a NaN, a -inf or a +inf: a NaN
 * makes every softmax, log_softmax and cross-entropy output of its row NaN
 * (as in PyTorch), a -inf is a probability of 0 beside the others' right
 * values, a +inf is NaN (inf - inf); the other rows are untouched. */
static void test_kernels_softmax_rows_with_nan_and_inf(void **state) {
    (void)state;
    enum { C = 100, RUN = 6 };
    for (int es = 4; es <= 8; es += 4) {
        T t;
        t_init(&t, "nanrows");
        Node *z = input(&t, "z", SH2(B, C));
        Shape ys = SH1(B);
        Node *y = ir_input(t.g, "y", DT_INT, &ys, L0);
        t_output(&t, "s", ir_softmax(t.g, OP_SOFTMAX, z, 1, L0));
        t_output(&t, "l", ir_softmax(t.g, OP_LOG_SOFTMAX, z, 1, L0));
        t_output(&t, "xent", ir_xent(t.g, z, y, L0));
        t_compile(&t, MAXB, es);
        double *zv = fill(&t, z, MAXB * C, -5, 5, 81);
        set(&t, z, 1 * C + 37, zv[1 * C + 37] = NAN);
        set(&t, z, 2 * C + 50, zv[2 * C + 50] = -INFINITY);
        set(&t, z, 4 * C + 3, zv[4 * C + 3] = INFINITY);
        for (int r = 0; r < RUN; r++)
            set_int(&t, y, r, 7 * r);
        t_run(&t, PROG_PREDICT, RUN);
        double tol = es == 4 ? 2e-6 : 1e-13;
        for (int r = 0; r < RUN; r++) {
            bool nan_row = r == 1 || r == 4;
            double m = -INFINITY, sum = 0;
            for (int j = 0; j < C; j++)
                m = fmax(m, zv[r * C + j]);
            for (int j = 0; j < C; j++)
                sum += exp(zv[r * C + j] - m);
            double xe = get(&t, PROG_PREDICT, t_out(&t, 2), r);
            if (nan_row)
                assert_true(isnan(xe));
            else
                assert_rel(xe, m + log(sum) - zv[r * C + 7 * r], tol);
            for (int j = 0; j < C; j++) {
                double sm = get(&t, PROG_PREDICT, t_out(&t, 0), r * C + j);
                double ls = get(&t, PROG_PREDICT, t_out(&t, 1), r * C + j);
                if (nan_row) {
                    if (!isnan(sm) || !isnan(ls))
                        fail_msg("float%d row %d column %d: %g %g, want NaN", 8 * es, r, j, sm, ls);
                    continue;
                }
                assert_near(sm, exp(zv[r * C + j] - m) / sum, tol);
                if (isinf(zv[r * C + j]))
                    assert_true(sm == 0 && ls == -INFINITY);
                else
                    assert_rel(ls, zv[r * C + j] - m - log(sum), tol);
            }
        }
        free(zv);
        t_free(&t);
    }
}

/* xent(z[B, 4], labels[B]) with labels -1, 4 and 1000 out of range: NaN
 * there, logsumexp - z[label] elsewhere; onehot(labels, 4): a zero row for
 * an out-of-range label. */
static void test_kernels_xent_onehot_out_of_range_label(void **state) {
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
static void test_kernels_amax_every_axis_set_ties_and_nan(void **state) {
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
static void test_kernels_matmul_rank3_and_gradient_forms(void **state) {
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
static void test_kernels_concat_and_slice(void **state) {
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
static void test_kernels_gather_rows_and_out_of_range_ids(void **state) {
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
static void test_kernels_scatter_add_repeats_and_skips(void **state) {
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernels_matmul_all_transpose_flags),
        cmocka_unit_test(test_kernels_sum_mean_every_axis_set),
        cmocka_unit_test(test_kernels_sum_hot_cases_wide),
        cmocka_unit_test(test_kernels_softmax_log_softmax_both_axes),
        cmocka_unit_test(test_kernels_xent_onehot_out_of_range_label),
        cmocka_unit_test(test_kernels_amax_every_axis_set_ties_and_nan),
        cmocka_unit_test(test_kernels_softmax_rows_with_nan_and_inf),
        cmocka_unit_test(test_kernels_matmul_rank3_and_gradient_forms),
        cmocka_unit_test(test_kernels_concat_and_slice),
        cmocka_unit_test(test_kernels_gather_rows_and_out_of_range_ids),
        cmocka_unit_test(test_kernels_scatter_add_repeats_and_skips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
