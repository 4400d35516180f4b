/* mathfn.c: exp, log, log1p, tanh, sigmoid, erf, the normal CDF, gelu and
 * its derivative, and softplus as inline LLVM IR, and calls of overloaded
 * LLVM intrinsics.
 *
 * Owns the float32 polynomial approximations. They are built only from
 * operations the loop vectoriser can widen (fmul/fadd/fdiv, llvm.fmuladd,
 * llvm.floor, llvm.minnum/maxnum, llvm.fabs, llvm.copysign, integer ops, bit
 * casts, fcmp and select), so a fused elementwise loop containing them
 * becomes packed SIMD code with no libm call per element. float64 (gradient
 * checking) uses the llvm.exp/llvm.log intrinsics and libm's tanh, erf,
 * erfc and log1p: accuracy over speed.
 * Must not create functions, blocks or loops: every emitter appends
 * straight-line code at the builder's position.
 *
 * float32 special values (all implemented with selects, so they vectorise):
 *   exp:     exp(NaN) = NaN, exp(+inf) = +inf, exp(-inf) = +0;
 *            exp(x) = +inf for x > 88.7228 (true overflow, as libm);
 *            exp(x) = +0 for x < -87.3365 = ln(FLT_MIN): results that would
 *            be subnormal are flushed to zero (absolute error < 1.2e-38),
 *            which keeps subnormal arithmetic, and its microcode assists,
 *            out of the loop.
 *   log:     log(±0) = -inf, log(x < 0) = NaN, log(NaN) = NaN,
 *            log(+inf) = +inf; subnormal x is handled exactly (rescaled).
 *   log1p:   log1p(-1) = -inf, log1p(x < -1) = NaN, log1p(+inf) = +inf,
 *            log1p(0) = 0, log1p(x) = x for |x| < 2^-25, NaN stays NaN.
 *   tanh:    tanh(±0) = ±0, tanh(±inf) = ±1 exactly (and for |x| > 9.01),
 *            tanh(NaN) = NaN, |tanh(x)| ≤ 1.
 *   sigmoid: 1/(1 + exp(-x)) with the exp above: sigmoid(x) = 1 exactly for
 *            x > 16.7, and +0 for x < -88.7228 (exp(-x) = +inf), never NaN
 *            unless x is NaN.
 *   erf:     erf(±0) = ±0, erf(±inf) = ±1 (and for |x| > 4), NaN stays NaN.
 *   Phi:     the normal CDF; 0 for x < -4 sqrt 2 (true value < 7.7e-9), 1
 *            for x > 4 sqrt 2; NaN stays NaN.
 *   gelu:    x Phi(x): gelu(+inf) = +inf, gelu(-inf) = NaN (-inf * 0, as
 *            PyTorch's formula gives).
 *   softplus: max(x, 0) + log1p(exp(-|x|)): x exactly for x > 16.7, never
 *            overflows, softplus(-inf) = 0, softplus(+inf) = +inf.
 */
#include "cg_internal.h"

#include "../ir/base.h"

#include <math.h>
#include <string.h>

/* ---- intrinsics ------------------------------------------------------------ */

/* A call of the intrinsic `name` overloaded on the given types (ignored for
 * an intrinsic that is not overloaded). An unknown name is a bug in gradc. */
static LLVMValueRef call_intrinsic(LLVMBuilderRef b, LLVMModuleRef m, const char *name,
                                   LLVMTypeRef *tys, size_t ntys, LLVMValueRef *args,
                                   unsigned nargs) {
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    gc_assert(id != 0 && "unknown LLVM intrinsic");
    if (!LLVMIntrinsicIsOverloaded(id))
        ntys = 0;
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(m, id, tys, ntys);
    LLVMTypeRef fty = LLVMIntrinsicGetType(LLVMGetModuleContext(m), id, tys, ntys);
    return LLVMBuildCall2(b, fty, fn, args, nargs, "");
}

LLVMValueRef cg_emit_intrinsic1(LLVMBuilderRef b, LLVMModuleRef m, const char *name,
                                LLVMValueRef x) {
    LLVMTypeRef ty = LLVMTypeOf(x);
    return call_intrinsic(b, m, name, &ty, 1, &x, 1);
}

/* Overloaded on x's type alone when x and y have the same type
 * (llvm.pow.f32, llvm.maxnum.f64, llvm.copysign.f32), on both types when
 * they differ (llvm.powi.f32.i32). */
LLVMValueRef cg_emit_intrinsic2(LLVMBuilderRef b, LLVMModuleRef m, const char *name,
                                LLVMValueRef x, LLVMValueRef y) {
    LLVMTypeRef tys[2] = {LLVMTypeOf(x), LLVMTypeOf(y)};
    LLVMValueRef args[2] = {x, y};
    return call_intrinsic(b, m, name, tys, tys[0] == tys[1] ? 1 : 2, args, 2);
}

/* ---- helpers for the float32 polynomials ------------------------------------ */

typedef struct Em {
    LLVMBuilderRef b;
    LLVMModuleRef m;
    LLVMTypeRef f32, i32;
} Em;

static Em em_new(LLVMBuilderRef b, LLVMModuleRef m) {
    LLVMContextRef ctx = LLVMGetModuleContext(m);
    return (Em){b, m, LLVMFloatTypeInContext(ctx), LLVMInt32TypeInContext(ctx)};
}

static LLVMValueRef cf(Em *e, double v) { return LLVMConstReal(e->f32, v); }
static LLVMValueRef ci(Em *e, int v) { return LLVMConstInt(e->i32, (unsigned long long)v, 1); }
static LLVMValueRef em_add(Em *e, LLVMValueRef a, LLVMValueRef c) {
    return LLVMBuildFAdd(e->b, a, c, "");
}
static LLVMValueRef em_sub(Em *e, LLVMValueRef a, LLVMValueRef c) {
    return LLVMBuildFSub(e->b, a, c, "");
}
static LLVMValueRef em_mul(Em *e, LLVMValueRef a, LLVMValueRef c) {
    return LLVMBuildFMul(e->b, a, c, "");
}
static LLVMValueRef em_div(Em *e, LLVMValueRef a, LLVMValueRef c) {
    return LLVMBuildFDiv(e->b, a, c, "");
}
static LLVMValueRef sel(Em *e, LLVMValueRef c, LLVMValueRef t, LLVMValueRef f) {
    return LLVMBuildSelect(e->b, c, t, f, "");
}
static LLVMValueRef fcmp(Em *e, LLVMRealPredicate p, LLVMValueRef a, LLVMValueRef c) {
    return LLVMBuildFCmp(e->b, p, a, c, "");
}
static LLVMValueRef fn1(Em *e, const char *name, LLVMValueRef x) {
    return cg_emit_intrinsic1(e->b, e->m, name, x);
}
static LLVMValueRef fn2(Em *e, const char *name, LLVMValueRef x, LLVMValueRef y) {
    return cg_emit_intrinsic2(e->b, e->m, name, x, y);
}
/* a·c + d, fused where the target has FMA. */
static LLVMValueRef fma3(Em *e, LLVMValueRef a, LLVMValueRef c, LLVMValueRef d) {
    LLVMTypeRef ty = LLVMTypeOf(a);
    LLVMValueRef args[3] = {a, c, d};
    return call_intrinsic(e->b, e->m, "llvm.fmuladd", &ty, 1, args, 3);
}
/* c[0]·xⁿ + c[1]·xⁿ⁻¹ + … + c[n] by Horner's rule. */
static LLVMValueRef horner(Em *e, LLVMValueRef x, const double *c, int n) {
    LLVMValueRef y = cf(e, c[0]);
    for (int i = 1; i <= n; i++)
        y = fma3(e, y, x, cf(e, c[i]));
    return y;
}
/* 2^k as a float for integer k in [-126, 127]: the exponent field k + 127. */
static LLVMValueRef pow2i(Em *e, LLVMValueRef k) {
    LLVMValueRef bits = LLVMBuildShl(e->b, LLVMBuildAdd(e->b, k, ci(e, 127), ""), ci(e, 23), "");
    return LLVMBuildBitCast(e->b, bits, e->f32, "");
}

/* ---- float32 exp ------------------------------------------------------------
 * Cephes expf (S. L. Moshier, Cephes Math Library, expf.c), with a two-step
 * scale so that results up to FLT_MAX are reachable:
 *   xc = clamp(x, -87.3365, 89)
 *   n  = floor(xc·log2(e) + 1/2)                       (n ∈ [-126, 128])
 *   r  = xc − n·C1 − n·C2, C1 = 0.693359375 (9 bits: n·C1 is exact),
 *                          C2 = −2.12194440e−4, C1 + C2 ≈ ln 2   (|r| ≤ ln2/2)
 *   e^r ≈ 1 + r + r²·P(r),
 *   P(r) = ((((p0·r + p1)·r + p2)·r + p3)·r + p4)·r + p5,
 *     p0 = 1.9875691500e−4, p1 = 1.3981999507e−3, p2 = 8.3334519073e−3,
 *     p3 = 4.1665795894e−2, p4 = 1.6666665459e−1, p5 = 5.0000001201e−1
 *   e^x = e^r · 2^n₁ · 2^n₂,  n₁ = n >> 1, n₂ = n − n₁  (each in [-63, 64],
 *         so both factors are normal floats and n = 128 overflows to +inf
 *         only when the true result does)
 * then x < ln(FLT_MIN) → +0 and NaN → NaN by selects. */
static LLVMValueRef exp_f32(Em *e, LLVMValueRef x) {
    static const double P[] = {1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                               4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1};
    const double lo = -87.33654475, hi = 89.0;
    LLVMValueRef xc = fn2(e, "llvm.maxnum", fn2(e, "llvm.minnum", x, cf(e, hi)), cf(e, lo));
    LLVMValueRef fx = fn1(e, "llvm.floor", fma3(e, xc, cf(e, 1.44269504088896341), cf(e, 0.5)));
    LLVMValueRef r = fma3(e, fx, cf(e, -0.693359375), xc);
    r = fma3(e, fx, cf(e, 2.12194440e-4), r);
    LLVMValueRef p = horner(e, r, P, 5);
    p = em_add(e, fma3(e, p, em_mul(e, r, r), r), cf(e, 1.0));
    LLVMValueRef n = LLVMBuildFPToSI(e->b, fx, e->i32, "");
    LLVMValueRef n1 = LLVMBuildAShr(e->b, n, ci(e, 1), "");
    LLVMValueRef n2 = LLVMBuildSub(e->b, n, n1, "");
    LLVMValueRef y = em_mul(e, em_mul(e, p, pow2i(e, n1)), pow2i(e, n2));
    y = sel(e, fcmp(e, LLVMRealOLT, x, cf(e, lo)), cf(e, 0.0), y);
    return sel(e, fcmp(e, LLVMRealUNO, x, x), x, y);
}

/* ---- float32 log ------------------------------------------------------------
 * Cephes logf (S. L. Moshier, Cephes Math Library, logf.c):
 *   subnormal x: x ← x·2²³, and 23 is taken off the exponent below
 *   x = m·2^k, m ∈ [0.5, 1):   k = (bits >> 23) − 126,
 *                              m = bits(x & 0x007fffff | 0x3f000000)
 *   m < √½:  k ← k − 1, f = 2m − 1;   else f = m − 1      (f ∈ [√½−1, √2−1),
 *            both subtractions exact)
 *   log(1 + f) ≈ f − f²/2 + f³·P(f),
 *   P(f) = (((((((p0·f + p1)·f + p2)·f + p3)·f + p4)·f + p5)·f + p6)·f + p7)·f + p8,
 *     p0 = 7.0376836292e−2, p1 = −1.1514610310e−1, p2 = 1.1676998740e−1,
 *     p3 = −1.2420140846e−1, p4 = 1.4249322787e−1, p5 = −1.6668057665e−1,
 *     p6 = 2.0000714765e−1,  p7 = −2.4999993993e−1, p8 = 3.3333331174e−1
 *   log(x) = k·q2 + (f + (f³·P(f) + k·q1 − f²/2)),
 *     q1 = −2.12194440e−4, q2 = 0.693359375 (q1 + q2 ≈ ln 2, k·q2 exact)
 * then ±0 → −inf, x < 0 or NaN → NaN, +inf → +inf by selects. */
static LLVMValueRef log_f32(Em *e, LLVMValueRef x) {
    static const double P[] = {7.0376836292e-2,  -1.1514610310e-1, 1.1676998740e-1,
                               -1.2420140846e-1, 1.4249322787e-1,  -1.6668057665e-1,
                               2.0000714765e-1,  -2.4999993993e-1, 3.3333331174e-1};
    LLVMValueRef sub = fcmp(e, LLVMRealOLT, x, cf(e, 0x1p-126));
    LLVMValueRef xs = sel(e, sub, em_mul(e, x, cf(e, 0x1p23)), x);
    LLVMValueRef bits = LLVMBuildBitCast(e->b, xs, e->i32, "");
    LLVMValueRef k = LLVMBuildSub(e->b, LLVMBuildLShr(e->b, bits, ci(e, 23), ""),
                                  sel(e, sub, ci(e, 126 + 23), ci(e, 126)), "");
    LLVMValueRef mbits = LLVMBuildOr(e->b, LLVMBuildAnd(e->b, bits, ci(e, 0x007fffff), ""),
                                     ci(e, 0x3f000000), "");
    LLVMValueRef mant = LLVMBuildBitCast(e->b, mbits, e->f32, "");
    LLVMValueRef small = fcmp(e, LLVMRealOLT, mant, cf(e, 0.707106781186547524));
    LLVMValueRef f = em_sub(e, sel(e, small, em_add(e, mant, mant), mant), cf(e, 1.0));
    LLVMValueRef fk = LLVMBuildSIToFP(e->b, k, e->f32, "");
    fk = sel(e, small, em_sub(e, fk, cf(e, 1.0)), fk);
    LLVMValueRef f2 = em_mul(e, f, f);
    LLVMValueRef y = em_mul(e, em_mul(e, horner(e, f, P, 8), f), f2);
    y = fma3(e, fk, cf(e, -2.12194440e-4), y);
    y = fma3(e, f2, cf(e, -0.5), y);
    y = fma3(e, fk, cf(e, 0.693359375), em_add(e, f, y));
    y = sel(e, fcmp(e, LLVMRealOEQ, x, cf(e, INFINITY)), x, y);
    y = sel(e, fcmp(e, LLVMRealOEQ, x, cf(e, 0.0)), cf(e, -INFINITY), y);
    return sel(e, fcmp(e, LLVMRealULT, x, cf(e, 0.0)), cf(e, NAN), y);
}

/* ---- float32 tanh -----------------------------------------------------------
 * Eigen's accurate float tanh (Eigen/src/Core/arch/Default/
 * GenericPacketMathFunctions.h, ptanh_float without EIGEN_FAST_MATH; the
 * rational part is an rminimax fit of tanh(x) − x on [−1.25, 1.25]), on
 * a = |x| with the sign put back at the end:
 *   a ≤ 1.25:  tanh(a) ≈ a + a³·P(a²)/Q(a²)
 *     P(s) = p0·s + p1,        p0 = −1.46725140511989593505859375e−2,
 *                              p1 = −3.333333432674407958984375e−1
 *     Q(s) = (q0·s + q1)·s + 1, q0 = 1.570280082523822784423828125e−2,
 *                              q1 = 4.4401752948760986328125e−1
 *   a > 1.25:  tanh(a) = 1 − 2/(1 + e^(2a))   (e^(2a) = +inf gives exactly 1)
 *   tanh(x) = copysign(tanh(a), x)
 * Both branches have the form c + n/d, so they share one division:
 * (c, n, d) = (a, a³·P, Q) or (1, −2, 1 + e^(2a)). The copysign keeps
 * tanh(−0) = −0; NaN stays NaN through both branches. */
static LLVMValueRef tanh_f32(Em *e, LLVMValueRef x) {
    static const double P[] = {-1.46725140511989593505859375e-02,
                               -3.333333432674407958984375e-01};
    static const double Q[] = {1.570280082523822784423828125e-02,
                               4.4401752948760986328125e-01, 1.0};
    LLVMValueRef a = fn1(e, "llvm.fabs", x);
    LLVMValueRef s = em_mul(e, a, a);
    LLVMValueRef big = fcmp(e, LLVMRealOGT, a, cf(e, 1.25));
    LLVMValueRef ex = exp_f32(e, em_add(e, a, a));
    LLVMValueRef c = sel(e, big, cf(e, 1.0), a);
    LLVMValueRef n = sel(e, big, cf(e, -2.0), em_mul(e, em_mul(e, a, s), horner(e, s, P, 1)));
    LLVMValueRef d = sel(e, big, em_add(e, ex, cf(e, 1.0)), horner(e, s, Q, 2));
    return fn2(e, "llvm.copysign", em_add(e, c, em_div(e, n, d)), x);
}

/* sigmoid(x) = 1 / (1 + e^(−x)). */
static LLVMValueRef sigmoid_f32(Em *e, LLVMValueRef x) {
    LLVMValueRef ex = exp_f32(e, LLVMBuildFNeg(e->b, x, ""));
    return em_div(e, cf(e, 1.0), em_add(e, cf(e, 1.0), ex));
}

/* ---- float32 log1p ----------------------------------------------------------
 * log1p(x) = log(u) + (x − (u − 1))/u,  u = 1 + x rounded to float
 * (D. Goldberg, "What every computer scientist should know about
 * floating-point arithmetic", 1991, theorem 4 and its remark): the quotient
 * is the first-order correction for the rounding of u, so x near 0 keeps
 * its relative accuracy (u = 1 gives log(u) = 0 and exactly x), and the
 * log above is relative-accurate near 1. Where u is 0 or +inf the
 * correction would be 0/0 or inf − inf; it is dropped there, leaving log's
 * special values: log1p(−1) = −inf, log1p(x < −1) = NaN (log of u < 0),
 * log1p(+inf) = +inf. */
static LLVMValueRef log1p_f32(Em *e, LLVMValueRef x) {
    LLVMValueRef u = em_add(e, cf(e, 1.0), x);
    LLVMValueRef c = em_div(e, em_sub(e, x, em_sub(e, u, cf(e, 1.0))), u);
    LLVMValueRef ok = LLVMBuildAnd(e->b, fcmp(e, LLVMRealOGT, u, cf(e, 0.0)),
                                   fcmp(e, LLVMRealOLT, u, cf(e, INFINITY)), "");
    return em_add(e, log_f32(e, u), sel(e, ok, c, cf(e, 0.0)));
}

/* ---- float32 erf and the normal CDF ------------------------------------------
 * Two minimax fits made for gradc (Lawson's iteratively reweighted least
 * squares in long double against glibc's erfl and erfcl on Chebyshev-spaced
 * points, coefficients rounded to float), on a = |x|:
 *   a < 0.921875:  erf(x) ≈ x + x·P(x²), P of degree 5 (fit's max relative
 *                  error in erf 1.6e-8), evaluated as fmuladd(x, P, x)
 *     P(s) = p0 + p1·s + … + p5·s⁵,
 *       p0 = 0x1.06eba6p-3,  p1 = −0x1.8126e6p-2, p2 = 0x1.ce1a6ap-4,
 *       p3 = −0x1.b68b54p-6, p4 = 0x1.473baap-8,  p5 = −0x1.3a17e0p-11
 *   0.921875 ≤ a ≤ 4:  erfc(a) ≈ exp(−Q(a)), Q of degree 8 fit to
 *                  −log erfc(a) (max absolute error 4.1e-10, so erfc's
 *                  relative error is essentially exp's and the rounding of Q)
 *     Q(a) = q0 + q1·a + … + q8·a⁸,
 *       q0 = −0x1.34aae8p-12, q1 = 0x1.215052p+0,  q2 = 0x1.4394cep-1,
 *       q3 = 0x1.c2418ap-4,   q4 = −0x1.af7cacp-6, q5 = 0x1.3602ecp-8,
 *       q6 = −0x1.35b7c4p-11, q7 = 0x1.7c7c6cp-15, q8 = −0x1.ae342ap-20
 *     and erf(x) = copysign(1 − erfc(a), x)
 *   a > 4:  erfc(a) = 0 (erfc(4) = 1.5e-8 is below half an ulp of 1), erf = ±1
 * Both branches are computed and one is selected; NaN takes the first
 * (a < 0.921875 compares unordered-or-less) and stays NaN. Measured
 * (test_cg_math): at most 1.18 ulp from the true erf, and never more than
 * one float from glibc's erff. */
static const double ERF_P[] = {-0x1.3a17e0p-11, 0x1.473baap-8, -0x1.b68b54p-6,
                               0x1.ce1a6ap-4,   -0x1.8126e6p-2, 0x1.06eba6p-3};
static const double ERFC_Q[] = {-0x1.ae342ap-20, 0x1.7c7c6cp-15, -0x1.35b7c4p-11,
                                0x1.3602ecp-8,   -0x1.af7cacp-6, 0x1.c2418ap-4,
                                0x1.4394cep-1,   0x1.215052p+0,  -0x1.34aae8p-12};

typedef struct ErfParts {
    LLVMValueRef small; /* i1: |x| < 0.921875 or NaN */
    LLVMValueRef p;     /* erf(x) there: x + x·P(x²) */
    LLVMValueRef r;     /* erfc(|x|) elsewhere: exp(−Q(|x|)), 0 for |x| > 4 */
} ErfParts;

static ErfParts erf_parts(Em *e, LLVMValueRef x) {
    LLVMValueRef a = fn1(e, "llvm.fabs", x);
    ErfParts pt;
    pt.small = fcmp(e, LLVMRealULT, a, cf(e, 0.921875));
    pt.p = fma3(e, x, horner(e, em_mul(e, x, x), ERF_P, 5), x);
    LLVMValueRef q = horner(e, fn2(e, "llvm.minnum", a, cf(e, 4.0)), ERFC_Q, 8);
    LLVMValueRef r = exp_f32(e, LLVMBuildFNeg(e->b, q, ""));
    pt.r = sel(e, fcmp(e, LLVMRealOGT, a, cf(e, 4.0)), cf(e, 0.0), r);
    return pt;
}

static LLVMValueRef erf_f32(Em *e, LLVMValueRef x) {
    ErfParts pt = erf_parts(e, x);
    LLVMValueRef big = fn2(e, "llvm.copysign", em_sub(e, cf(e, 1.0), pt.r), x);
    return sel(e, pt.small, pt.p, big);
}

/* Phi(x) = (1 + erf(t))/2, t = x·(1/√2). Where the erfc branch applies,
 * 1 + erf(t) is erfc(|t|) itself for t < 0 (no cancellation: in the lower
 * tail only the roundings of t and of Q count, relative error below 1e-5
 * down to Phi(−4√2) ≈ 7.7e-9, below which it is 0) and 2 − erfc(|t|) for
 * t > 0. */
static LLVMValueRef ncdf_f32(Em *e, LLVMValueRef x) {
    LLVMValueRef t = em_mul(e, x, cf(e, M_SQRT1_2));
    ErfParts pt = erf_parts(e, t);
    LLVMValueRef big = sel(e, fcmp(e, LLVMRealOLT, t, cf(e, 0.0)), pt.r,
                           em_sub(e, cf(e, 2.0), pt.r));
    LLVMValueRef ope = sel(e, pt.small, em_add(e, cf(e, 1.0), pt.p), big);
    return em_mul(e, ope, cf(e, 0.5));
}

/* ---- float64 ----------------------------------------------------------------- */

/* libm's `double name(double)` (tanh, erf, erfc, log1p), declared in m if
 * it is not yet. */
static LLVMValueRef libm_fn(LLVMModuleRef m, const char *name, LLVMTypeRef *fty) {
    LLVMContextRef ctx = LLVMGetModuleContext(m);
    LLVMTypeRef f64 = LLVMDoubleTypeInContext(ctx);
    *fty = LLVMFunctionType(f64, &f64, 1, 0);
    LLVMValueRef fn = LLVMGetNamedFunction(m, name);
    if (fn)
        return fn;
    fn = LLVMAddFunction(m, name, *fty);
    /* These read no memory, and the errno they may set is never read: the
     * calls may be hoisted, merged, and kept inside a vectorised loop
     * (scalarised). */
    static const char *const attrs[] = {"nounwind", "willreturn", "nosync"};
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
        unsigned kind = LLVMGetEnumAttributeKindForName(attrs[i], strlen(attrs[i]));
        LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                                LLVMCreateEnumAttribute(ctx, kind, 0));
    }
    unsigned memory = LLVMGetEnumAttributeKindForName("memory", 6);
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                            LLVMCreateEnumAttribute(ctx, memory, 0)); /* memory(none) */
    return fn;
}

static LLVMValueRef call_libm(LLVMBuilderRef b, LLVMModuleRef m, const char *name, LLVMValueRef x) {
    LLVMTypeRef fty;
    LLVMValueRef fn = libm_fn(m, name, &fty);
    return LLVMBuildCall2(b, fty, fn, &x, 1, "");
}

static LLVMValueRef sigmoid_f64(LLVMBuilderRef b, LLVMModuleRef m, LLVMValueRef x) {
    LLVMValueRef one = LLVMConstReal(LLVMTypeOf(x), 1.0);
    LLVMValueRef ex = cg_emit_intrinsic1(b, m, "llvm.exp", LLVMBuildFNeg(b, x, ""));
    return LLVMBuildFDiv(b, one, LLVMBuildFAdd(b, one, ex, ""), "");
}

/* ---- entry points -------------------------------------------------------------- */

/* true for float, false for double; anything else is a bug in gradc. */
static bool is_f32(LLVMValueRef x) {
    LLVMTypeKind k = LLVMGetTypeKind(LLVMTypeOf(x));
    gc_assert(k == LLVMFloatTypeKind || k == LLVMDoubleTypeKind);
    return k == LLVMFloatTypeKind;
}

LLVMValueRef cg_emit_exp(LLVMBuilderRef b, LLVMModuleRef m, LLVMValueRef x) {
    if (!is_f32(x))
        return cg_emit_intrinsic1(b, m, "llvm.exp", x);
    Em e = em_new(b, m);
    return exp_f32(&e, x);
}

LLVMValueRef cg_emit_log(LLVMBuilderRef b, LLVMModuleRef m, LLVMValueRef x) {
    if (!is_f32(x))
        return cg_emit_intrinsic1(b, m, "llvm.log", x);
    Em e = em_new(b, m);
    return log_f32(&e, x);
}

LLVMValueRef cg_emit_tanh(LLVMBuilderRef b, LLVMModuleRef m, LLVMValueRef x) {
    if (!is_f32(x))
        return call_libm(b, m, "tanh", x);
    Em e = em_new(b, m);
    return tanh_f32(&e, x);
}

LLVMValueRef cg_emit_sigmoid(LLVMBuilderRef b, LLVMModuleRef m, LLVMValueRef x) {
    if (!is_f32(x))
        return sigmoid_f64(b, m, x);
    Em e = em_new(b, m);
    return sigmoid_f32(&e, x);
}

LLVMValueRef cg_emit_log1p(LLVMBuilderRef b, LLVMModuleRef m, LLVMValueRef x) {
    if (!is_f32(x))
        return call_libm(b, m, "log1p", x);
    Em e = em_new(b, m);
    return log1p_f32(&e, x);
}

LLVMValueRef cg_emit_erf(LLVMBuilderRef b, LLVMModuleRef m, LLVMValueRef x) {
    if (!is_f32(x))
        return call_libm(b, m, "erf", x);
    Em e = em_new(b, m);
    return erf_f32(&e, x);
}

static LLVMValueRef cst(LLVMValueRef like, double v) { return LLVMConstReal(LLVMTypeOf(like), v); }

/* float64: Phi(x) = erfc(−x/√2)/2, accurate in the lower tail too. */
LLVMValueRef cg_emit_normal_cdf(LLVMBuilderRef b, LLVMModuleRef m, LLVMValueRef x) {
    if (!is_f32(x)) {
        LLVMValueRef t = LLVMBuildFMul(b, x, cst(x, -M_SQRT1_2), "");
        return LLVMBuildFMul(b, call_libm(b, m, "erfc", t), cst(x, 0.5), "");
    }
    Em e = em_new(b, m);
    return ncdf_f32(&e, x);
}

/* gelu(x) = x·Phi(x). */
LLVMValueRef cg_emit_gelu(LLVMBuilderRef b, LLVMModuleRef m, LLVMValueRef x) {
    return LLVMBuildFMul(b, x, cg_emit_normal_cdf(b, m, x), "");
}

/* gelu'(x) = Phi(x) + x·phi(x), phi(x) = e^(−x²/2)/√(2π). */
LLVMValueRef cg_emit_dgelu(LLVMBuilderRef b, LLVMModuleRef m, LLVMValueRef x) {
    LLVMValueRef h = LLVMBuildFMul(b, LLVMBuildFMul(b, x, x, ""), cst(x, -0.5), "");
    LLVMValueRef phi = LLVMBuildFMul(b, cg_emit_exp(b, m, h), cst(x, 0.39894228040143267794), "");
    return LLVMBuildFAdd(b, cg_emit_normal_cdf(b, m, x), LLVMBuildFMul(b, x, phi, ""), "");
}

/* softplus(x) = max(x, 0) + log1p(e^−|x|): the exponential is at most 1. */
LLVMValueRef cg_emit_softplus(LLVMBuilderRef b, LLVMModuleRef m, LLVMValueRef x) {
    LLVMValueRef zero = cst(x, 0.0);
    LLVMValueRef pos = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOGT, x, zero, ""), x, zero, "");
    LLVMValueRef a = cg_emit_intrinsic1(b, m, "llvm.fabs", x);
    LLVMValueRef t = cg_emit_log1p(b, m, cg_emit_exp(b, m, LLVMBuildFNeg(b, a, "")));
    return LLVMBuildFAdd(b, pos, t, "");
}
