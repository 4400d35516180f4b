/* test_cg_math.c: codegen/mathfn.c compiled for real: exp, log, tanh,
 * sigmoid, erf, log1p, the normal CDF Phi, gelu, its derivative and softplus
 * in float32 and float64, each as the map loop
 *     void f(T *restrict y, const T *restrict x, int64_t n)   y[i] = op(x[i])
 * optimised at O2 for the host and JIT'd, then run on dense sweeps and special
 * values and compared with libm (float: double-precision libm; double: long
 * double libm). The float loops' assembly must be packed SIMD with no call.
 *
 * Dimension legend: n is the number of points of a sweep.
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

#include "codegen/cg_internal.h"

typedef LLVMValueRef (*EmitFn)(LLVMBuilderRef b, LLVMModuleRef m, LLVMValueRef x);
typedef void (*KernelF32)(float *y, const float *x, int64_t n);
typedef void (*KernelF64)(double *y, const double *x, int64_t n);

/* ---- kernels ---------------------------------------------------------------- */

static LLVMValueRef emit_sqrt(LLVMBuilderRef b, LLVMModuleRef m, LLVMValueRef x) {
    return cg_emit_intrinsic1(b, m, "llvm.sqrt", x);
}
/* max(x, 0.5): llvm.maxnum overloaded on one type. */
static LLVMValueRef emit_max_half(LLVMBuilderRef b, LLVMModuleRef m, LLVMValueRef x) {
    return cg_emit_intrinsic2(b, m, "llvm.maxnum", x, LLVMConstReal(LLVMTypeOf(x), 0.5));
}
/* x³: llvm.powi overloaded on (float type, i32). */
static LLVMValueRef emit_cube(LLVMBuilderRef b, LLVMModuleRef m, LLVMValueRef x) {
    LLVMTypeRef i32 = LLVMInt32TypeInContext(LLVMGetModuleContext(m));
    return cg_emit_intrinsic2(b, m, "llvm.powi", x, LLVMConstInt(i32, 3, 0));
}

typedef struct KernelDef {
    const char *name;
    EmitFn op;
    bool f64;
    bool zmm; /* add "prefer-vector-width"="512" */
} KernelDef;

static const KernelDef kernels[] = {
    {"exp_f32", cg_emit_exp, false, false},
    {"log_f32", cg_emit_log, false, false},
    {"tanh_f32", cg_emit_tanh, false, false},
    {"sigmoid_f32", cg_emit_sigmoid, false, false},
    {"sigmoid_f32_zmm", cg_emit_sigmoid, false, true},
    {"exp_f64", cg_emit_exp, true, false},
    {"log_f64", cg_emit_log, true, false},
    {"tanh_f64", cg_emit_tanh, true, false},
    {"sigmoid_f64", cg_emit_sigmoid, true, false},
    {"sqrt_f32", emit_sqrt, false, false},
    {"max_half_f64", emit_max_half, true, false},
    {"cube_f32", emit_cube, false, false},
    {"erf_f32", cg_emit_erf, false, false},
    {"log1p_f32", cg_emit_log1p, false, false},
    {"ncdf_f32", cg_emit_normal_cdf, false, false},
    {"gelu_f32", cg_emit_gelu, false, false},
    {"dgelu_f32", cg_emit_dgelu, false, false},
    {"softplus_f32", cg_emit_softplus, false, false},
    {"erf_f64", cg_emit_erf, true, false},
    {"log1p_f64", cg_emit_log1p, true, false},
    {"ncdf_f64", cg_emit_normal_cdf, true, false},
    {"gelu_f64", cg_emit_gelu, true, false},
    {"dgelu_f64", cg_emit_dgelu, true, false},
    {"softplus_f64", cg_emit_softplus, true, false},
};
enum { NKERNELS = sizeof kernels / sizeof kernels[0] };

static void add_attr(LLVMValueRef f, unsigned idx, const char *name) {
    LLVMContextRef ctx = LLVMGetTypeContext(LLVMTypeOf(f));
    unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
    LLVMAddAttributeAtIndex(f, idx, LLVMCreateEnumAttribute(ctx, kind, 0));
}

/* void <name>(T *noalias y, const T *noalias x, i64 n): y[i] = op(x[i]) for
 * i in [0, n), the counted-loop shape the loop vectoriser accepts: an n > 0
 * guard and an i64 induction variable with an nsw increment. */
static void add_map_kernel(LLVMModuleRef m, const KernelDef *k) {
    LLVMContextRef ctx = LLVMGetModuleContext(m);
    LLVMTypeRef elem = k->f64 ? LLVMDoubleTypeInContext(ctx) : LLVMFloatTypeInContext(ctx);
    LLVMTypeRef ptr = LLVMPointerTypeInContext(ctx, 0);
    LLVMTypeRef i64 = LLVMInt64TypeInContext(ctx);
    LLVMTypeRef params[3] = {ptr, ptr, i64};
    LLVMTypeRef fty = LLVMFunctionType(LLVMVoidTypeInContext(ctx), params, 3, 0);
    LLVMValueRef f = LLVMAddFunction(m, k->name, fty);
    add_attr(f, 1, "noalias");
    add_attr(f, 2, "noalias");
    add_attr(f, LLVMAttributeFunctionIndex, "nounwind");
    if (k->zmm) {
        LLVMAttributeRef a = LLVMCreateStringAttribute(ctx, "prefer-vector-width", 19, "512", 3);
        LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex, a);
    }
    LLVMValueRef y = LLVMGetParam(f, 0), x = LLVMGetParam(f, 1), n = LLVMGetParam(f, 2);
    LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(ctx, f, "entry");
    LLVMBasicBlockRef loop = LLVMAppendBasicBlockInContext(ctx, f, "loop");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(ctx, f, "done");
    LLVMBuilderRef b = LLVMCreateBuilderInContext(ctx);

    LLVMPositionBuilderAtEnd(b, entry);
    LLVMValueRef zero = LLVMConstInt(i64, 0, 0);
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSGT, n, zero, ""), loop, done);

    LLVMPositionBuilderAtEnd(b, loop);
    LLVMValueRef i = LLVMBuildPhi(b, i64, "i");
    LLVMValueRef xi = LLVMBuildLoad2(b, elem, LLVMBuildInBoundsGEP2(b, elem, x, &i, 1, ""), "");
    LLVMSetAlignment(xi, k->f64 ? 8 : 4);
    LLVMValueRef yi = k->op(b, m, xi);
    LLVMValueRef st = LLVMBuildStore(b, yi, LLVMBuildInBoundsGEP2(b, elem, y, &i, 1, ""));
    LLVMSetAlignment(st, k->f64 ? 8 : 4);
    LLVMValueRef next = LLVMBuildNSWAdd(b, i, LLVMConstInt(i64, 1, 0), "");
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntEQ, next, n, ""), done, loop);
    LLVMValueRef in_vals[2] = {zero, next};
    LLVMBasicBlockRef in_blocks[2] = {entry, loop};
    LLVMAddIncoming(i, in_vals, in_blocks, 2);

    LLVMPositionBuilderAtEnd(b, done);
    LLVMBuildRetVoid(b);
    LLVMDisposeBuilder(b);
}

/* ---- fixture: one module of every kernel, JIT'd once ------------------------ */

typedef struct Fx {
    LLVMTargetMachineRef tm;
    CgJit *jit;
    char *asm_text;
    void *fn[NKERNELS];
} Fx;

static Fx fx;

static int setup_group(void **state) {
    (void)state;
    char *err = NULL;
    cg_llvm_init();
    fx.tm = cg_host_target_machine(2, &err);
    if (!fx.tm)
        goto fail;
    fx.jit = cg_jit_new(&err);
    if (!fx.jit)
        goto fail;
    LLVMModuleRef m = LLVMModuleCreateWithNameInContext("math", cg_jit_context(fx.jit));
    for (int k = 0; k < NKERNELS; k++)
        add_map_kernel(m, &kernels[k]);
    if (!cg_optimize(m, fx.tm, 2, &err)) {
        LLVMDisposeModule(m);
        goto fail;
    }
    fx.asm_text = cg_emit_asm(m, fx.tm, &err);
    if (!fx.asm_text) {
        LLVMDisposeModule(m);
        goto fail;
    }
    /* GRADC_TEST_ASM=<file>: keep the assembly for reading. */
    const char *dump = getenv("GRADC_TEST_ASM");
    FILE *f = dump ? fopen(dump, "w") : NULL;
    if (f) {
        fputs(fx.asm_text, f);
        fclose(f);
    }
    if (!cg_jit_add(fx.jit, m, &err))
        goto fail;
    for (int k = 0; k < NKERNELS; k++)
        if (!(fx.fn[k] = cg_jit_lookup(fx.jit, kernels[k].name, &err)))
            goto fail;
    return 0;
fail:
    fprintf(stderr, "setup: %s\n", err ? err : "(no message)");
    free(err);
    return -1;
}

static int teardown_group(void **state) {
    (void)state;
    free(fx.asm_text);
    cg_jit_free(fx.jit);
    if (fx.tm)
        LLVMDisposeTargetMachine(fx.tm);
    return 0;
}

static void *kernel(const char *name) {
    for (int k = 0; k < NKERNELS; k++)
        if (!strcmp(kernels[k].name, name))
            return fx.fn[k];
    fail_msg("no kernel %s", name);
    return NULL;
}

static KernelF32 kf32(const char *name) { return (KernelF32)(uintptr_t)kernel(name); }
static KernelF64 kf64(const char *name) { return (KernelF64)(uintptr_t)kernel(name); }

static float run1_f32(const char *name, float x) {
    float y = 0;
    kf32(name)(&y, &x, 1);
    return y;
}
static double run1_f64(const char *name, double x) {
    double y = 0;
    kf64(name)(&y, &x, 1);
    return y;
}

/* ---- error measurement -------------------------------------------------------- */

/* The spacing of floats (mant_bits = 24) or doubles (53) at |r|; subnormal
 * spacing below the smallest normal. */
static double ulp_at(double r, int mant_bits, int min_exp) {
    int e;
    frexp(fabs(r), &e);
    if (e < min_exp)
        e = min_exp;
    return ldexp(1.0, e - mant_bits);
}

typedef struct Stats {
    double ulp, rel, abs;        /* maxima */
    double at_ulp, at_rel, at_abs; /* where */
} Stats;

static void stats_add(Stats *s, double x, double got, double ref, int mant_bits, int min_exp) {
    double d = fabs(got - ref);
    if (isnan(got) != isnan(ref) || isinf(got) != isinf(ref) || (isinf(ref) && got != ref))
        d = INFINITY;
    else if (isinf(ref) || isnan(ref))
        d = 0;
    double u = d / ulp_at(ref, mant_bits, min_exp);
    double r = ref != 0 ? d / fabs(ref) : (d == 0 ? 0 : INFINITY);
    if (u > s->ulp)
        s->ulp = u, s->at_ulp = x;
    if (r > s->rel)
        s->rel = r, s->at_rel = x;
    if (d > s->abs)
        s->abs = d, s->at_abs = x;
}

static void stats_print(const char *what, const Stats *s) {
    printf("  %-34s max %.3g ulp (x=%.9g), rel %.3g (x=%.9g), abs %.3g (x=%.9g)\n", what, s->ulp,
           s->at_ulp, s->rel, s->at_rel, s->abs, s->at_abs);
}

enum { NSWEEP = 200003 }; /* not a multiple of any vector width: the remainder runs too */

/* x[i] = a + (b − a)·i/(n−1). */
static void linspace_f32(float *x, int n, double a, double b) {
    for (int i = 0; i < n; i++)
        x[i] = (float)(a + (b - a) * i / (n - 1));
}
/* x[i] = sign·2^(a + (b − a)·i/(n−1)). */
static void logspace_f32(float *x, int n, double a, double b, double sign) {
    for (int i = 0; i < n; i++)
        x[i] = (float)(sign * exp2(a + (b - a) * i / (n - 1)));
}
static void linspace_f64(double *x, int n, double a, double b) {
    for (int i = 0; i < n; i++)
        x[i] = a + (b - a) * i / (n - 1);
}
static void logspace_f64(double *x, int n, double a, double b, double sign) {
    for (int i = 0; i < n; i++)
        x[i] = sign * exp2(a + (b - a) * i / (n - 1));
}

typedef double (*RefF32)(double x);
typedef long double (*RefF64)(long double x);

/* Run the float kernel on x[0..n) and add every point to s. */
static void sweep_f32(Stats *s, const char *name, RefF32 ref, const float *x, int n) {
    float *y = malloc(sizeof(float) * (size_t)n);
    kf32(name)(y, x, n);
    for (int i = 0; i < n; i++)
        stats_add(s, x[i], y[i], ref(x[i]), 24, -125);
    free(y);
}
static void sweep_f64(Stats *s, const char *name, RefF64 ref, const double *x, int n) {
    double *y = malloc(sizeof(double) * (size_t)n);
    kf64(name)(y, x, n);
    for (int i = 0; i < n; i++)
        stats_add(s, x[i], y[i], (double)ref(x[i]), 53, -1021);
    free(y);
}

static double ref_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static long double ref_sigmoidl(long double x) { return 1.0L / (1.0L + expl(-x)); }

/* ---- float32 accuracy ---------------------------------------------------------- */

static void test_cg_math_exp_f32_within_2_ulp_and_flushes_subnormal_results(void **state) {
    (void)state;
    float *x = malloc(sizeof(float) * NSWEEP);
    Stats s = {0}, t = {0};
    /* Every result a normal float: x ∈ [ln FLT_MIN, ln FLT_MAX]. */
    linspace_f32(x, NSWEEP, -87.33, 88.72);
    sweep_f32(&s, "exp_f32", exp, x, NSWEEP);
    logspace_f32(x, NSWEEP, -40, 6, 1.0);
    sweep_f32(&s, "exp_f32", exp, x, NSWEEP);
    logspace_f32(x, NSWEEP, -40, 6, -1.0);
    sweep_f32(&s, "exp_f32", exp, x, NSWEEP);
    stats_print("exp f32 [-87.33, 88.72]", &s);
    assert_true(s.ulp <= 2.0); /* measured 1.01 */
    assert_true(s.rel <= 2.5e-7);
    /* Subnormal results are flushed to zero. */
    linspace_f32(x, NSWEEP, -120, -87.34);
    sweep_f32(&t, "exp_f32", exp, x, NSWEEP);
    stats_print("exp f32 [-120, -87.34] (flushed)", &t);
    assert_true(t.abs <= FLT_MIN);
    free(x);
}

static void test_cg_math_exp_f32_special_values(void **state) {
    (void)state;
    assert_true(run1_f32("exp_f32", 0.0f) == 1.0f);
    assert_true(run1_f32("exp_f32", -0.0f) == 1.0f);
    assert_true(run1_f32("exp_f32", 1e-30f) == 1.0f);
    assert_true(run1_f32("exp_f32", -INFINITY) == 0.0f);
    assert_true(run1_f32("exp_f32", INFINITY) == INFINITY);
    assert_true(isnan(run1_f32("exp_f32", NAN)));
    /* Overflow exactly where the true result passes FLT_MAX. */
    assert_true(run1_f32("exp_f32", 88.72f) < INFINITY);
    double e_hi = exp(88.72f);
    assert_true(fabs(run1_f32("exp_f32", 88.72f) - e_hi) <= 2 * ulp_at(e_hi, 24, -125));
    assert_true(run1_f32("exp_f32", 88.73f) == INFINITY);
    assert_true(run1_f32("exp_f32", 89.0f) == INFINITY);
    assert_true(run1_f32("exp_f32", 1e30f) == INFINITY);
    assert_true(run1_f32("exp_f32", FLT_MAX) == INFINITY);
    /* Underflow: smallest normal results, then +0, never garbage. */
    assert_true(run1_f32("exp_f32", -87.33f) >= FLT_MIN);
    assert_true(run1_f32("exp_f32", -87.34f) == 0.0f);
    assert_true(run1_f32("exp_f32", -88.0f) == 0.0f);
    assert_true(run1_f32("exp_f32", -100.0f) == 0.0f);
    assert_true(run1_f32("exp_f32", -1e30f) == 0.0f);
    assert_true(run1_f32("exp_f32", -FLT_MAX) == 0.0f);
    assert_true(!signbit(run1_f32("exp_f32", -FLT_MAX)));
    float e1 = run1_f32("exp_f32", 1.0f);
    assert_true(fabs(e1 - M_E) <= ulp_at(M_E, 24, -125));
}

static void test_cg_math_log_f32_within_1_5_ulp_including_subnormal_x(void **state) {
    (void)state;
    float *x = malloc(sizeof(float) * NSWEEP);
    Stats s = {0}, t = {0};
    /* Every binade of positive normal floats, and densely around 1, where
     * log(x) → 0 and only a relative-accurate log1p core keeps the ulps. */
    logspace_f32(x, NSWEEP, -126, 128, 1.0);
    sweep_f32(&s, "log_f32", log, x, NSWEEP);
    linspace_f32(x, NSWEEP, 0.5, 2.0);
    sweep_f32(&s, "log_f32", log, x, NSWEEP);
    linspace_f32(x, NSWEEP, 0.999, 1.001);
    sweep_f32(&s, "log_f32", log, x, NSWEEP);
    stats_print("log f32 [2^-126, 2^128)", &s);
    assert_true(s.ulp <= 1.5); /* measured 0.78 */
    assert_true(s.rel <= 2e-7);
    /* Subnormal inputs are rescaled, not cut off at FLT_MIN. */
    logspace_f32(x, NSWEEP, -149, -126, 1.0);
    sweep_f32(&t, "log_f32", log, x, NSWEEP);
    stats_print("log f32 subnormal x", &t);
    assert_true(t.ulp <= 1.5); /* measured 0.50 */
    free(x);
}

static void test_cg_math_log_f32_special_values(void **state) {
    (void)state;
    assert_true(run1_f32("log_f32", 1.0f) == 0.0f);
    assert_true(run1_f32("log_f32", 0.0f) == -INFINITY);
    assert_true(run1_f32("log_f32", -0.0f) == -INFINITY);
    assert_true(isnan(run1_f32("log_f32", -1.0f)));
    assert_true(isnan(run1_f32("log_f32", -1e-40f)));
    assert_true(isnan(run1_f32("log_f32", -INFINITY)));
    assert_true(isnan(run1_f32("log_f32", NAN)));
    assert_true(run1_f32("log_f32", INFINITY) == INFINITY);
    float lmax = run1_f32("log_f32", FLT_MAX);
    assert_true(fabs(lmax - log(FLT_MAX)) <= ulp_at(log(FLT_MAX), 24, -125));
    float ltrue_min = run1_f32("log_f32", 0x1p-149f);
    assert_true(fabs(ltrue_min - log(0x1p-149)) <= ulp_at(log(0x1p-149), 24, -125));
    float l2 = run1_f32("log_f32", 2.0f);
    assert_true(fabs(l2 - M_LN2) <= ulp_at(M_LN2, 24, -125));
}

static void test_cg_math_tanh_f32_absolute_and_relative_error(void **state) {
    (void)state;
    float *x = malloc(sizeof(float) * NSWEEP);
    Stats s = {0}, t = {0};
    linspace_f32(x, NSWEEP, -10, 10);
    sweep_f32(&s, "tanh_f32", tanh, x, NSWEEP);
    /* Small |x|, both signs, down to the subnormals: relative accuracy. */
    logspace_f32(x, NSWEEP, -140, 3, 1.0);
    sweep_f32(&t, "tanh_f32", tanh, x, NSWEEP);
    logspace_f32(x, NSWEEP, -140, 3, -1.0);
    sweep_f32(&t, "tanh_f32", tanh, x, NSWEEP);
    stats_print("tanh f32 [-10, 10]", &s);
    stats_print("tanh f32 ±2^[-140, 3]", &t);
    /* measured: 1.48 ulp, abs 8.8e-8, rel 1.1e-7 */
    assert_true(s.abs <= 2e-7 && t.abs <= 2e-7);
    assert_true(s.ulp <= 2.5 && t.ulp <= 2.5);
    assert_true(s.rel <= 2.5e-7 && t.rel <= 2.5e-7);
    free(x);
}

static void test_cg_math_tanh_f32_special_values(void **state) {
    (void)state;
    assert_true(run1_f32("tanh_f32", 0.0f) == 0.0f);
    assert_true(signbit(run1_f32("tanh_f32", -0.0f)));
    assert_true(run1_f32("tanh_f32", INFINITY) == 1.0f);
    assert_true(run1_f32("tanh_f32", -INFINITY) == -1.0f);
    assert_true(run1_f32("tanh_f32", 20.0f) == 1.0f);
    assert_true(run1_f32("tanh_f32", -20.0f) == -1.0f);
    assert_true(run1_f32("tanh_f32", FLT_MAX) == 1.0f);
    assert_true(isnan(run1_f32("tanh_f32", NAN)));
    assert_true(fabs(run1_f32("tanh_f32", 1e-5f) - tanh(1e-5f)) <= 1e-6 * tanh(1e-5f));
    assert_true(run1_f32("tanh_f32", 1e-30f) == 1e-30f);
    /* |tanh| never exceeds 1 where it rounds to 1. */
    for (float v = 7.0f; v < 10.0f; v += 0.001f) {
        assert_true(run1_f32("tanh_f32", v) <= 1.0f);
        assert_true(run1_f32("tanh_f32", -v) >= -1.0f);
    }
}

static void test_cg_math_sigmoid_f32_absolute_and_relative_error(void **state) {
    (void)state;
    float *x = malloc(sizeof(float) * NSWEEP);
    Stats s = {0}, t = {0};
    linspace_f32(x, NSWEEP, -20, 20);
    sweep_f32(&s, "sigmoid_f32", ref_sigmoid, x, NSWEEP);
    linspace_f32(x, NSWEEP, -150, 150);
    sweep_f32(&s, "sigmoid_f32", ref_sigmoid, x, NSWEEP);
    /* Relative accuracy wherever the result is a normal float. */
    linspace_f32(x, NSWEEP, -87.3, 40);
    sweep_f32(&t, "sigmoid_f32", ref_sigmoid, x, NSWEEP);
    logspace_f32(x, NSWEEP, -40, 6, -1.0);
    sweep_f32(&t, "sigmoid_f32", ref_sigmoid, x, NSWEEP);
    stats_print("sigmoid f32 [-150, 150]", &s);
    stats_print("sigmoid f32 [-87.3, 40]", &t);
    /* measured: abs 8.9e-8, 2.16 ulp, rel 1.4e-7 */
    assert_true(s.abs <= 2e-7 && t.abs <= 2e-7);
    assert_true(t.ulp <= 3.0);
    assert_true(t.rel <= 2.5e-7);
    free(x);
}

static void test_cg_math_sigmoid_f32_special_values(void **state) {
    (void)state;
    assert_true(run1_f32("sigmoid_f32", 0.0f) == 0.5f);
    assert_true(run1_f32("sigmoid_f32", -0.0f) == 0.5f);
    assert_true(run1_f32("sigmoid_f32", 1e-30f) == 0.5f);
    assert_true(run1_f32("sigmoid_f32", 100.0f) == 1.0f);
    assert_true(run1_f32("sigmoid_f32", 17.0f) == 1.0f);
    assert_true(run1_f32("sigmoid_f32", INFINITY) == 1.0f);
    float lo = run1_f32("sigmoid_f32", -100.0f);
    assert_true(lo >= 0.0f && lo <= 1e-38f);
    assert_true(run1_f32("sigmoid_f32", -INFINITY) == 0.0f);
    assert_true(run1_f32("sigmoid_f32", -FLT_MAX) == 0.0f);
    assert_true(isnan(run1_f32("sigmoid_f32", NAN)));
    /* The 512-bit variant is the same code. */
    assert_true(run1_f32("sigmoid_f32_zmm", -3.25f) == run1_f32("sigmoid_f32", -3.25f));
}

/* ---- float64 accuracy ----------------------------------------------------------- */

static void test_cg_math_f64_functions_within_1e_15_relative(void **state) {
    (void)state;
    double *x = malloc(sizeof(double) * NSWEEP);
    Stats e = {0}, l = {0}, t = {0}, s = {0};
    linspace_f64(x, NSWEEP, -708, 709.7);
    sweep_f64(&e, "exp_f64", expl, x, NSWEEP);
    logspace_f64(x, NSWEEP, -1074, 1024, 1.0);
    sweep_f64(&l, "log_f64", logl, x, NSWEEP);
    linspace_f64(x, NSWEEP, 0.99, 1.01);
    sweep_f64(&l, "log_f64", logl, x, NSWEEP);
    linspace_f64(x, NSWEEP, -25, 25);
    sweep_f64(&t, "tanh_f64", tanhl, x, NSWEEP);
    logspace_f64(x, NSWEEP, -1074, 4, -1.0);
    sweep_f64(&t, "tanh_f64", tanhl, x, NSWEEP);
    linspace_f64(x, NSWEEP, -700, 700);
    sweep_f64(&s, "sigmoid_f64", ref_sigmoidl, x, NSWEEP);
    stats_print("exp f64 [-708, 709.7]", &e);
    stats_print("log f64 [2^-1074, 2^1024)", &l);
    stats_print("tanh f64 [-25, 25] and small", &t);
    stats_print("sigmoid f64 [-700, 700]", &s);
    assert_true(e.rel <= 1e-15);
    assert_true(l.rel <= 1e-15);
    assert_true(t.rel <= 1e-15);
    assert_true(s.rel <= 1e-15);
    free(x);
}

static void test_cg_math_f64_special_values(void **state) {
    (void)state;
    assert_true(run1_f64("exp_f64", 0.0) == 1.0);
    assert_true(run1_f64("exp_f64", -INFINITY) == 0.0);
    assert_true(run1_f64("exp_f64", INFINITY) == INFINITY);
    assert_true(run1_f64("exp_f64", 710.0) == INFINITY);
    assert_true(isnan(run1_f64("exp_f64", NAN)));
    assert_true(run1_f64("log_f64", 0.0) == -INFINITY);
    assert_true(isnan(run1_f64("log_f64", -1.0)));
    assert_true(run1_f64("log_f64", INFINITY) == INFINITY);
    assert_true(run1_f64("tanh_f64", INFINITY) == 1.0);
    assert_true(signbit(run1_f64("tanh_f64", -0.0)));
    assert_true(run1_f64("tanh_f64", 1e-300) == 1e-300);
    assert_true(run1_f64("sigmoid_f64", 0.0) == 0.5);
    assert_true(run1_f64("sigmoid_f64", 1000.0) == 1.0);
    assert_true(run1_f64("sigmoid_f64", -1000.0) == 0.0);
    assert_true(isnan(run1_f64("sigmoid_f64", NAN)));
}

/* ---- erf, Phi, gelu, log1p, softplus ------------------------------------------- */

/* References in long double (float results are compared with them rounded
 * to double, which is exact enough for a float's ulp). */
static long double ncdfl(long double x) { return 0.5L * erfcl(-x / sqrtl(2.0L)); }
static long double phil(long double x) { return expl(-0.5L * x * x) / sqrtl(2.0L * M_PIl); }
static long double gelul(long double x) { return x * ncdfl(x); }
static long double dgelul(long double x) { return ncdfl(x) + x * phil(x); }
static long double softplusl(long double x) {
    return (x > 0 ? x : 0) + log1pl(expl(-fabsl(x)));
}
static double ref_erf(double x) { return (double)erfl(x); }
static double ref_log1p(double x) { return (double)log1pl(x); }
static double ref_ncdf(double x) { return (double)ncdfl(x); }
static double ref_gelu(double x) { return (double)gelul(x); }
static double ref_dgelu(double x) { return (double)dgelul(x); }
static double ref_softplus(double x) { return (double)softplusl(x); }

static void test_cg_math_erf_f32_within_2_ulp(void **state) {
    (void)state;
    float *x = malloc(sizeof(float) * NSWEEP);
    Stats s = {0}, t = {0};
    /* Densely across both branches (the switch at |x| = 0.921875) to where
     * erf rounds to ±1, and beyond. */
    linspace_f32(x, NSWEEP, -4.5, 4.5);
    sweep_f32(&s, "erf_f32", ref_erf, x, NSWEEP);
    linspace_f32(x, NSWEEP, 0.8, 1.2);
    sweep_f32(&s, "erf_f32", ref_erf, x, NSWEEP);
    linspace_f32(x, NSWEEP, -1.2, -0.8);
    sweep_f32(&s, "erf_f32", ref_erf, x, NSWEEP);
    /* Small |x| down to the subnormals: relative accuracy. */
    logspace_f32(x, NSWEEP, -140, 2, 1.0);
    sweep_f32(&t, "erf_f32", ref_erf, x, NSWEEP);
    logspace_f32(x, NSWEEP, -140, 2, -1.0);
    sweep_f32(&t, "erf_f32", ref_erf, x, NSWEEP);
    stats_print("erf f32 [-4.5, 4.5]", &s);
    stats_print("erf f32 ±2^[-140, 2]", &t);
    /* measured: 1.15 ulp */
    assert_true(s.ulp <= 2.0 && t.ulp <= 2.0);
    free(x);
}

static void test_cg_math_erf_f32_special_values(void **state) {
    (void)state;
    assert_true(run1_f32("erf_f32", 0.0f) == 0.0f);
    assert_true(signbit(run1_f32("erf_f32", -0.0f)));
    assert_true(run1_f32("erf_f32", INFINITY) == 1.0f);
    assert_true(run1_f32("erf_f32", -INFINITY) == -1.0f);
    assert_true(run1_f32("erf_f32", 4.0f) == 1.0f);
    assert_true(run1_f32("erf_f32", 5.0f) == 1.0f);
    assert_true(run1_f32("erf_f32", -FLT_MAX) == -1.0f);
    assert_true(isnan(run1_f32("erf_f32", NAN)));
    float tiny = run1_f32("erf_f32", 1e-30f);
    assert_true(fabs(tiny - erf(1e-30f)) <= ulp_at(erf(1e-30f), 24, -125));
    /* |erf| never exceeds 1, and is odd. */
    for (float v = 0.0f; v < 6.0f; v += 0.0007f) {
        float p = run1_f32("erf_f32", v), m = run1_f32("erf_f32", -v);
        assert_true(p <= 1.0f && p == -m);
    }
}

static void test_cg_math_log1p_f32_within_2_ulp(void **state) {
    (void)state;
    float *x = malloc(sizeof(float) * NSWEEP);
    Stats s = {0};
    logspace_f32(x, NSWEEP, -140, 100, 1.0);
    sweep_f32(&s, "log1p_f32", ref_log1p, x, NSWEEP);
    logspace_f32(x, NSWEEP, -140, -1e-7, -1.0); /* (-1, 0) */
    sweep_f32(&s, "log1p_f32", ref_log1p, x, NSWEEP);
    linspace_f32(x, NSWEEP, -0.99999, 1.0);
    sweep_f32(&s, "log1p_f32", ref_log1p, x, NSWEEP);
    stats_print("log1p f32 (-1, 2^100]", &s);
    assert_true(s.ulp <= 2.0); /* measured 1.44 */
    free(x);
}

static void test_cg_math_log1p_f32_special_values(void **state) {
    (void)state;
    assert_true(run1_f32("log1p_f32", 0.0f) == 0.0f);
    assert_true(run1_f32("log1p_f32", 1e-30f) == 1e-30f);
    assert_true(run1_f32("log1p_f32", -1e-30f) == -1e-30f);
    assert_true(run1_f32("log1p_f32", -1.0f) == -INFINITY);
    assert_true(isnan(run1_f32("log1p_f32", -1.5f)));
    assert_true(isnan(run1_f32("log1p_f32", -INFINITY)));
    assert_true(isnan(run1_f32("log1p_f32", NAN)));
    assert_true(run1_f32("log1p_f32", INFINITY) == INFINITY);
    float l = run1_f32("log1p_f32", FLT_MAX);
    assert_true(fabs(l - log(FLT_MAX)) <= ulp_at(log(FLT_MAX), 24, -125));
}

/* Phi, gelu and gelu' in float32. Phi's relative error grows in the lower
 * tail, where the roundings of x/√2 and of Q (up to 18) in erfc(|t|) =
 * exp(−Q) are amplified by |x|: a few ulps above x = −1.3 (the erf branch,
 * where 1 + erf(t) cancels up to two bits for t near −0.92),
 * relative 3e-6 down to −3, 1e-5 down to −5.6 (where Phi becomes 0; for
 * comparison, 1 + erff(x/√2) in float loses 8 bits at x = −3 already).
 * gelu is checked in ulps where Phi is, and absolutely everywhere. */
static void test_cg_math_ncdf_gelu_f32_accuracy(void **state) {
    (void)state;
    float *x = malloc(sizeof(float) * NSWEEP);
    Stats p = {0}, pmid = {0}, ptail = {0}, g = {0}, gabs = {0}, d = {0};
    linspace_f32(x, NSWEEP, -1.3, 10);
    sweep_f32(&p, "ncdf_f32", ref_ncdf, x, NSWEEP);
    sweep_f32(&g, "gelu_f32", ref_gelu, x, NSWEEP);
    logspace_f32(x, NSWEEP, -140, 0.37, -1.0);
    sweep_f32(&p, "ncdf_f32", ref_ncdf, x, NSWEEP);
    sweep_f32(&g, "gelu_f32", ref_gelu, x, NSWEEP);
    logspace_f32(x, NSWEEP, -140, 3.3, 1.0);
    sweep_f32(&g, "gelu_f32", ref_gelu, x, NSWEEP);
    linspace_f32(x, NSWEEP, -3, -1.3);
    sweep_f32(&pmid, "ncdf_f32", ref_ncdf, x, NSWEEP);
    linspace_f32(x, NSWEEP, -5.6, -3);
    sweep_f32(&ptail, "ncdf_f32", ref_ncdf, x, NSWEEP);
    linspace_f32(x, NSWEEP, -20, 20);
    sweep_f32(&gabs, "gelu_f32", ref_gelu, x, NSWEEP);
    sweep_f32(&d, "dgelu_f32", ref_dgelu, x, NSWEEP);
    stats_print("Phi f32 [-1.3, 10]", &p);
    stats_print("Phi f32 [-3, -1.3]", &pmid);
    stats_print("Phi f32 [-5.6, -3]", &ptail);
    stats_print("gelu f32 [-1.3, 10] and ±small", &g);
    stats_print("gelu f32 [-20, 20]", &gabs);
    stats_print("dgelu f32 [-20, 20]", &d);
    /* measured: Phi 5.1 ulp, rel 1.4e-6, rel 4.3e-6; gelu 3.2 ulp, abs 3.8e-7;
     * dgelu abs 1.1e-7 */
    assert_true(p.ulp <= 8.0);
    assert_true(pmid.rel <= 3e-6);
    assert_true(ptail.rel <= 1e-5);
    assert_true(g.ulp <= 4.0);
    assert_true(gabs.abs <= 1e-6);
    assert_true(d.abs <= 3e-7);
    free(x);
}

static void test_cg_math_gelu_softplus_f32_special_values(void **state) {
    (void)state;
    assert_true(run1_f32("ncdf_f32", 0.0f) == 0.5f);
    assert_true(run1_f32("ncdf_f32", 10.0f) == 1.0f);
    assert_true(run1_f32("ncdf_f32", -10.0f) == 0.0f);
    assert_true(run1_f32("ncdf_f32", INFINITY) == 1.0f);
    assert_true(run1_f32("ncdf_f32", -INFINITY) == 0.0f);
    assert_true(isnan(run1_f32("ncdf_f32", NAN)));
    assert_true(run1_f32("gelu_f32", 0.0f) == 0.0f);
    assert_true(run1_f32("gelu_f32", 10.0f) == 10.0f);
    assert_true(run1_f32("gelu_f32", 1e6f) == 1e6f);
    assert_true(run1_f32("gelu_f32", -10.0f) == 0.0f);
    assert_true(run1_f32("gelu_f32", INFINITY) == INFINITY);
    assert_true(isnan(run1_f32("gelu_f32", NAN)));
    assert_true(run1_f32("dgelu_f32", 0.0f) == 0.5f);
    assert_true(run1_f32("dgelu_f32", 20.0f) == 1.0f);
    assert_true(run1_f32("dgelu_f32", -20.0f) == 0.0f);
    /* softplus: x itself for large x, 0 far below, never inf or NaN. */
    assert_true(run1_f32("softplus_f32", 1000.0f) == 1000.0f);
    assert_true(run1_f32("softplus_f32", 20.0f) == 20.0f);
    assert_true(run1_f32("softplus_f32", -1000.0f) == 0.0f);
    assert_true(run1_f32("softplus_f32", FLT_MAX) == FLT_MAX);
    assert_true(run1_f32("softplus_f32", INFINITY) == INFINITY);
    assert_true(run1_f32("softplus_f32", -INFINITY) == 0.0f);
    assert_true(isnan(run1_f32("softplus_f32", NAN)));
    assert_true(fabs(run1_f32("softplus_f32", 0.0f) - M_LN2) <= ulp_at(M_LN2, 24, -125));
}

static void test_cg_math_softplus_f32_within_2_ulp(void **state) {
    (void)state;
    float *x = malloc(sizeof(float) * NSWEEP);
    Stats s = {0};
    /* Wherever the result is a normal float: e^x > FLT_MIN. */
    linspace_f32(x, NSWEEP, -87.3, 100);
    sweep_f32(&s, "softplus_f32", ref_softplus, x, NSWEEP);
    linspace_f32(x, NSWEEP, -2, 2);
    sweep_f32(&s, "softplus_f32", ref_softplus, x, NSWEEP);
    stats_print("softplus f32 [-87.3, 100]", &s);
    assert_true(s.ulp <= 2.5); /* measured 1.82 */
    free(x);
}

static void test_cg_math_f64_erf_gelu_log1p_softplus(void **state) {
    (void)state;
    double *x = malloc(sizeof(double) * NSWEEP);
    Stats e = {0}, l = {0}, p = {0}, g = {0}, d = {0}, s = {0};
    linspace_f64(x, NSWEEP, -6, 6);
    sweep_f64(&e, "erf_f64", erfl, x, NSWEEP);
    logspace_f64(x, NSWEEP, -1074, 2, -1.0);
    sweep_f64(&e, "erf_f64", erfl, x, NSWEEP);
    logspace_f64(x, NSWEEP, -1074, 1000, 1.0);
    sweep_f64(&l, "log1p_f64", log1pl, x, NSWEEP);
    linspace_f64(x, NSWEEP, -0.999999, 1);
    sweep_f64(&l, "log1p_f64", log1pl, x, NSWEEP);
    linspace_f64(x, NSWEEP, -8, 8);
    sweep_f64(&p, "ncdf_f64", ncdfl, x, NSWEEP);
    sweep_f64(&g, "gelu_f64", gelul, x, NSWEEP);
    sweep_f64(&d, "dgelu_f64", dgelul, x, NSWEEP);
    linspace_f64(x, NSWEEP, -700, 700);
    sweep_f64(&s, "softplus_f64", softplusl, x, NSWEEP);
    stats_print("erf f64 [-6, 6] and small", &e);
    stats_print("log1p f64 (-1, 2^1000]", &l);
    stats_print("Phi f64 [-8, 8]", &p);
    stats_print("gelu f64 [-8, 8]", &g);
    stats_print("dgelu f64 [-8, 8]", &d);
    stats_print("softplus f64 [-700, 700]", &s);
    /* erf in ulps: its subnormal results have few significant bits */
    assert_true(e.ulp <= 1.5 && l.rel <= 1e-15 && s.rel <= 1e-15);
    /* x/√2 rounds: Phi's relative error grows like x² 2^-53 in the lower
     * tail (measured 9.7e-15 at x = -8) */
    assert_true(p.rel <= 2e-14 && g.rel <= 2e-14);
    assert_true(d.abs <= 1e-15);
    assert_true(run1_f64("softplus_f64", 1000.0) == 1000.0);
    assert_true(run1_f64("softplus_f64", -1000.0) == 0.0);
    assert_true(run1_f64("log1p_f64", -1.0) == -INFINITY);
    assert_true(run1_f64("gelu_f64", 0.0) == 0.0);
    assert_true(isnan(run1_f64("erf_f64", NAN)));
    free(x);
}

/* ---- intrinsics ------------------------------------------------------------------ */

static void test_cg_math_intrinsics_overload_on_the_argument_types(void **state) {
    (void)state;
    assert_true(run1_f32("sqrt_f32", 2.0f) == sqrtf(2.0f));
    assert_true(isnan(run1_f32("sqrt_f32", -1.0f)));
    assert_true(run1_f64("max_half_f64", 0.25) == 0.5);
    assert_true(run1_f64("max_half_f64", 3.0) == 3.0);
    assert_true(run1_f64("max_half_f64", NAN) == 0.5);
    assert_true(run1_f32("cube_f32", 3.0f) == 27.0f);
    assert_true(run1_f32("cube_f32", -0.5f) == -0.125f);
}

/* ---- vectorisation -------------------------------------------------------------- */

/* The assembly of function `name` (its label to .Lfunc_end), malloc'ed. */
static char *function_asm(const char *name) {
    char label[128];
    snprintf(label, sizeof label, "\n%s:", name);
    const char *start = strstr(fx.asm_text, label);
    assert_non_null(start);
    const char *end = strstr(start, ".Lfunc_end");
    assert_non_null(end);
    size_t n = (size_t)(end - start);
    char *s = malloc(n + 1);
    memcpy(s, start, n);
    s[n] = '\0';
    return s;
}

/* Packed float FMAs on 256/512-bit registers ("vfmadd213ps %ymm1, %ymm2,
 * %ymm3"); counts those on zmm in *nzmm. */
static int count_packed_fma(const char *body, int *nzmm) {
    int n = 0;
    *nzmm = 0;
    for (const char *line = body, *eol; *line; line = eol ? eol + 1 : line + strlen(line)) {
        eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        char buf[256];
        if (len >= sizeof buf)
            len = sizeof buf - 1;
        memcpy(buf, line, len);
        buf[len] = '\0';
        const char *op = strstr(buf, "vf");
        if (!op || !(strstr(op, "madd") || strstr(op, "msub")) || !strstr(op, "ps\t"))
            continue;
        if (strstr(buf, "%zmm"))
            n++, (*nzmm)++;
        else if (strstr(buf, "%ymm"))
            n++;
    }
    return n;
}

/* No call and no jump out of the function (a tail call), and no libm name. */
static void assert_no_calls(const char *name, const char *body) {
    for (const char *p = body; (p = strstr(p, "call")); p++)
        fail_msg("%s calls: %.60s", name, p);
    for (const char *p = body; (p = strstr(p, "\tjmp\t")); p++)
        if (strncmp(p + 5, ".L", 2))
            fail_msg("%s tail-calls: %.60s", name, p);
    static const char *const libm[] = {"expf", "logf", "tanhf", "exp@", "exp\n", "@PLT"};
    for (size_t i = 0; i < sizeof libm / sizeof libm[0]; i++)
        if (strstr(body, libm[i]))
            fail_msg("%s mentions %s", name, libm[i]);
}

static void test_cg_math_f32_loops_vectorise_without_libm_calls(void **state) {
    (void)state;
    /* The packed-FMA check needs what LLVM sees of the host (valgrind, for
     * one, hides AVX2 and FMA); the no-call check holds everywhere. */
    char *features = LLVMGetHostCPUFeatures();
    bool simd = strstr(features, "+avx2") && strstr(features, "+fma");
    LLVMDisposeMessage(features);
    if (!simd)
        printf("  host without AVX2+FMA: checking only that no libm call is left\n");
    static const struct {
        const char *name;
        int min_fma; /* FMAs in one evaluation of the polynomial(s) */
    } fns[] = {{"exp_f32", 8},   {"log_f32", 11},         {"tanh_f32", 11},
               {"sigmoid_f32", 8}, {"sigmoid_f32_zmm", 8}, {"erf_f32", 19},
               {"log1p_f32", 11},  {"ncdf_f32", 19},       {"gelu_f32", 19},
               {"dgelu_f32", 27},  {"softplus_f32", 19}};
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        char *body = function_asm(fns[i].name);
        int nzmm, n = count_packed_fma(body, &nzmm);
        printf("  %-16s %3d packed FMAs on ymm/zmm (%d on zmm), no calls\n", fns[i].name, n, nzmm);
        assert_no_calls(fns[i].name, body);
        if (!simd) {
            free(body);
            continue;
        }
        if (n < fns[i].min_fma)
            fail_msg("%s: %d packed FMAs, expected >= %d:\n%s", fns[i].name, n, fns[i].min_fma,
                     body);
        if (!strcmp(fns[i].name, "sigmoid_f32_zmm") && nzmm < fns[i].min_fma)
            fail_msg("sigmoid_f32_zmm: %d FMAs on zmm", nzmm);
        free(body);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cg_math_exp_f32_within_2_ulp_and_flushes_subnormal_results),
        cmocka_unit_test(test_cg_math_exp_f32_special_values),
        cmocka_unit_test(test_cg_math_log_f32_within_1_5_ulp_including_subnormal_x),
        cmocka_unit_test(test_cg_math_log_f32_special_values),
        cmocka_unit_test(test_cg_math_tanh_f32_absolute_and_relative_error),
        cmocka_unit_test(test_cg_math_tanh_f32_special_values),
        cmocka_unit_test(test_cg_math_sigmoid_f32_absolute_and_relative_error),
        cmocka_unit_test(test_cg_math_sigmoid_f32_special_values),
        cmocka_unit_test(test_cg_math_f64_functions_within_1e_15_relative),
        cmocka_unit_test(test_cg_math_f64_special_values),
        cmocka_unit_test(test_cg_math_erf_f32_within_2_ulp),
        cmocka_unit_test(test_cg_math_erf_f32_special_values),
        cmocka_unit_test(test_cg_math_log1p_f32_within_2_ulp),
        cmocka_unit_test(test_cg_math_log1p_f32_special_values),
        cmocka_unit_test(test_cg_math_ncdf_gelu_f32_accuracy),
        cmocka_unit_test(test_cg_math_gelu_softplus_f32_special_values),
        cmocka_unit_test(test_cg_math_softplus_f32_within_2_ulp),
        cmocka_unit_test(test_cg_math_f64_erf_gelu_log1p_softplus),
        cmocka_unit_test(test_cg_math_intrinsics_overload_on_the_argument_types),
        cmocka_unit_test(test_cg_math_f32_loops_vectorise_without_libm_calls),
    };
    return cmocka_run_group_tests(tests, setup_group, teardown_group);
}
