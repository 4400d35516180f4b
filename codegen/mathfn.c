/* mathfn.c: exp, log, tanh and sigmoid as inline LLVM IR, and calls of
 * overloaded LLVM intrinsics.
 *
 * Owns the float32 polynomial approximations. They are built only from
 * operations the loop vectoriser can widen (fmul/fadd/fdiv, llvm.fmuladd,
 * llvm.floor, llvm.minnum/maxnum, llvm.fabs, integer ops, bit casts, fcmp and
 * select), so a fused elementwise loop containing them becomes packed SIMD
 * code with no libm call per element. float64 (gradient checking) uses the
 * llvm.exp/llvm.log intrinsics and libm's tanh: accuracy over speed.
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
 *   tanh:    tanh(±0) = ±0, tanh(±inf) = ±1 exactly (and for |x| > 9.01),
 *            tanh(NaN) = NaN, |tanh(x)| ≤ 1.
 *   sigmoid: 1/(1 + exp(-x)) with the exp above: sigmoid(x) = 1 exactly for
 *            x > 16.7, and +0 for x < -88.7228 (exp(-x) = +inf), never NaN
 *            unless x is NaN.
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

/* ---- float64 ----------------------------------------------------------------- */

/* libm's `double tanh(double)`, declared in m if it is not yet. */
static LLVMValueRef libm_tanh(LLVMModuleRef m, LLVMTypeRef *fty) {
    LLVMContextRef ctx = LLVMGetModuleContext(m);
    LLVMTypeRef f64 = LLVMDoubleTypeInContext(ctx);
    *fty = LLVMFunctionType(f64, &f64, 1, 0);
    LLVMValueRef fn = LLVMGetNamedFunction(m, "tanh");
    if (fn)
        return fn;
    fn = LLVMAddFunction(m, "tanh", *fty);
    /* tanh sets no errno and reads no memory: the calls may be hoisted,
     * merged, and kept inside a vectorised loop (scalarised). */
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
    if (!is_f32(x)) {
        LLVMTypeRef fty;
        LLVMValueRef fn = libm_tanh(m, &fty);
        return LLVMBuildCall2(b, fty, fn, &x, 1, "");
    }
    Em e = em_new(b, m);
    return tanh_f32(&e, x);
}

LLVMValueRef cg_emit_sigmoid(LLVMBuilderRef b, LLVMModuleRef m, LLVMValueRef x) {
    if (!is_f32(x))
        return sigmoid_f64(b, m, x);
    Em e = em_new(b, m);
    return sigmoid_f32(&e, x);
}
