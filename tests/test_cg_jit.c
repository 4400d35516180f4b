/* test_cg_jit.c: codegen/jit.c: host target machines, the verifier in front
 * of the optimiser, ORC LLJIT with absolute symbols for OpenBLAS, error
 * messages that name what is missing, independent JITs, no leaks.
 *
 * Matrix legend: C[M×N] = op(A)[M×K] · op(B)[K×N], row-major.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen/cg_internal.h"

enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };
enum { M = 5, N = 7, K = 3 };

/* ---- helpers ------------------------------------------------------------------ */

static CgJit *new_jit(void) {
    char *err = NULL;
    CgJit *j = cg_jit_new(&err);
    if (!j)
        fail_msg("cg_jit_new: %s", err);
    return j;
}

static LLVMModuleRef new_module(CgJit *j, const char *name) {
    return LLVMModuleCreateWithNameInContext(name, cg_jit_context(j));
}

/* Optimise m for the host at O2 and hand it to j. */
static void optimize_and_add(CgJit *j, LLVMModuleRef m) {
    char *err = NULL;
    LLVMTargetMachineRef tm = cg_host_target_machine(2, &err);
    if (!tm)
        fail_msg("cg_host_target_machine: %s", err);
    if (!cg_optimize(m, tm, 2, &err))
        fail_msg("cg_optimize: %s", err);
    LLVMDisposeTargetMachine(tm);
    if (!cg_jit_add(j, m, &err))
        fail_msg("cg_jit_add: %s", err);
}

static void *lookup(CgJit *j, const char *name) {
    char *err = NULL;
    void *p = cg_jit_lookup(j, name, &err);
    if (!p)
        fail_msg("cg_jit_lookup(%s): %s", name, err);
    return p;
}

/* int32_t <name>(void) { return value; } */
static void add_const_fn(LLVMModuleRef m, const char *name, int value) {
    LLVMContextRef ctx = LLVMGetModuleContext(m);
    LLVMTypeRef i32 = LLVMInt32TypeInContext(ctx);
    LLVMValueRef f = LLVMAddFunction(m, name, LLVMFunctionType(i32, NULL, 0, 0));
    LLVMBuilderRef b = LLVMCreateBuilderInContext(ctx);
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(ctx, f, "entry"));
    LLVMBuildRet(b, LLVMConstInt(i32, (unsigned long long)value, 1));
    LLVMDisposeBuilder(b);
}

typedef int32_t (*ConstFn)(void);

/* The declaration lowered code uses for cblas_?gemm (blasint and the CBLAS
 * enums are all C int here, so i32):
 *   void cblas_sgemm(i32 order, i32 transa, i32 transb, i32 m, i32 n, i32 k,
 *                    T alpha, ptr a, i32 lda, ptr b, i32 ldb, T beta, ptr c, i32 ldc) */
static LLVMValueRef declare_gemm(LLVMModuleRef m, bool f64, LLVMTypeRef *fty) {
    LLVMContextRef ctx = LLVMGetModuleContext(m);
    LLVMTypeRef i32 = LLVMInt32TypeInContext(ctx);
    LLVMTypeRef t = f64 ? LLVMDoubleTypeInContext(ctx) : LLVMFloatTypeInContext(ctx);
    LLVMTypeRef p = LLVMPointerTypeInContext(ctx, 0);
    LLVMTypeRef params[14] = {i32, i32, i32, i32, i32, i32, t, p, i32, p, i32, t, p, i32};
    *fty = LLVMFunctionType(LLVMVoidTypeInContext(ctx), params, 14, 0);
    const char *name = f64 ? "cblas_dgemm" : "cblas_sgemm";
    LLVMValueRef fn = LLVMGetNamedFunction(m, name);
    return fn ? fn : LLVMAddFunction(m, name, *fty);
}

/* void <name>(T *c, const T *a, const T *b): C = op(A)·op(B) through cblas,
 * with op(A) = A (M×K) or Aᵀ (A stored K×M), op(B) = B (K×N) or Bᵀ (B stored
 * N×K). */
static void add_gemm_fn(LLVMModuleRef m, const char *name, bool f64, bool ta, bool tb) {
    LLVMContextRef ctx = LLVMGetModuleContext(m);
    LLVMTypeRef i32 = LLVMInt32TypeInContext(ctx);
    LLVMTypeRef t = f64 ? LLVMDoubleTypeInContext(ctx) : LLVMFloatTypeInContext(ctx);
    LLVMTypeRef p = LLVMPointerTypeInContext(ctx, 0);
    LLVMTypeRef params[3] = {p, p, p};
    LLVMTypeRef fty = LLVMFunctionType(LLVMVoidTypeInContext(ctx), params, 3, 0);
    LLVMValueRef f = LLVMAddFunction(m, name, fty);
    LLVMTypeRef gty;
    LLVMValueRef gemm = declare_gemm(m, f64, &gty);
    LLVMBuilderRef b = LLVMCreateBuilderInContext(ctx);
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(ctx, f, "entry"));
#define I(v) LLVMConstInt(i32, (unsigned long long)(v), 0)
    LLVMValueRef args[14] = {I(CBLAS_ROW_MAJOR), I(ta ? CBLAS_TRANS : CBLAS_NO_TRANS),
                             I(tb ? CBLAS_TRANS : CBLAS_NO_TRANS), I(M), I(N), I(K),
                             LLVMConstReal(t, 1.0), LLVMGetParam(f, 1), I(ta ? M : K),
                             LLVMGetParam(f, 2), I(tb ? K : N), LLVMConstReal(t, 0.0),
                             LLVMGetParam(f, 0), I(N)};
#undef I
    LLVMBuildCall2(b, gty, gemm, args, 14, "");
    LLVMBuildRetVoid(b);
    LLVMDisposeBuilder(b);
}

/* Naive reference: C = op(A)·op(B) in double. */
static void gemm_naive(double *c, const double *a, const double *b, bool ta, bool tb) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (ta ? a[k * M + i] : a[i * K + k]) * (tb ? b[j * K + k] : b[k * N + j]);
            c[i * N + j] = s;
        }
}

/* ---- tests ---------------------------------------------------------------------- */

typedef void (*GemmF32)(float *c, const float *a, const float *b);
typedef void (*GemmF64)(double *c, const double *a, const double *b);

static void test_cg_jit_calls_cblas_gemm_like_a_naive_matmul(void **state) {
    (void)state;
    CgJit *j = new_jit();
    LLVMModuleRef m = new_module(j, "gemm");
    static const struct {
        const char *name;
        bool f64, ta, tb;
    } cases[] = {{"mm_f32", false, false, false}, {"mm_f32_ta", false, true, false},
                 {"mm_f32_tb", false, false, true}, {"mm_f64", true, false, false},
                 {"mm_f64_tatb", true, true, true}};
    enum { NCASES = sizeof cases / sizeof cases[0] };
    for (int c = 0; c < NCASES; c++)
        add_gemm_fn(m, cases[c].name, cases[c].f64, cases[c].ta, cases[c].tb);
    optimize_and_add(j, m);

    /* Small dyadic values: every product and sum is exact in float. */
    double a[M * K], b[K * N], want[M * N];
    float af[M * K], bf[K * N], cf[M * N];
    double cd[M * N];
    for (int i = 0; i < M * K; i++)
        af[i] = (float)(a[i] = 0.5 * ((i * 5) % 11) - 2.0);
    for (int i = 0; i < K * N; i++)
        bf[i] = (float)(b[i] = 0.25 * ((i * 3) % 13) - 1.5);
    for (int c = 0; c < NCASES; c++) {
        gemm_naive(want, a, b, cases[c].ta, cases[c].tb);
        if (cases[c].f64) {
            memset(cd, 0xff, sizeof cd);
            ((GemmF64)(uintptr_t)lookup(j, cases[c].name))(cd, a, b);
            for (int i = 0; i < M * N; i++)
                assert_true(cd[i] == want[i]);
        } else {
            memset(cf, 0xff, sizeof cf);
            ((GemmF32)(uintptr_t)lookup(j, cases[c].name))(cf, af, bf);
            for (int i = 0; i < M * N; i++)
                assert_true(cf[i] == (float)want[i]);
        }
    }
    cg_jit_free(j);
}

/* define i32 @bad() with a block that has no terminator. */
static LLVMModuleRef invalid_module(LLVMContextRef ctx) {
    LLVMModuleRef m = LLVMModuleCreateWithNameInContext("bad", ctx);
    LLVMTypeRef i32 = LLVMInt32TypeInContext(ctx);
    LLVMValueRef f = LLVMAddFunction(m, "bad", LLVMFunctionType(i32, NULL, 0, 0));
    LLVMBuilderRef b = LLVMCreateBuilderInContext(ctx);
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(ctx, f, "entry"));
    LLVMBuildAlloca(b, i32, "slot");
    LLVMDisposeBuilder(b);
    return m;
}

static void test_cg_jit_invalid_ir_gives_the_verifier_message(void **state) {
    (void)state;
    char *err = NULL;
    LLVMTargetMachineRef tm = cg_host_target_machine(2, &err);
    assert_non_null(tm);

    /* cg_optimize verifies first and leaves the module to the caller. */
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef m = invalid_module(ctx);
    assert_false(cg_optimize(m, tm, 2, &err));
    assert_non_null(err);
    assert_non_null(strstr(err, "invalid LLVM IR"));
    assert_non_null(strstr(err, "terminator"));
    free(err);
    err = NULL;
    char *text = cg_emit_asm(m, tm, &err);
    assert_null(text);
    assert_non_null(strstr(err, "terminator"));
    free(err);
    err = NULL;
    LLVMDisposeModule(m);
    LLVMContextDispose(ctx);
    LLVMDisposeTargetMachine(tm);

    /* cg_jit_add verifies too, consumes the module, and the JIT stays usable. */
    CgJit *j = new_jit();
    assert_false(cg_jit_add(j, invalid_module(cg_jit_context(j)), &err));
    assert_non_null(strstr(err, "terminator"));
    free(err);
    err = NULL;
    LLVMModuleRef ok = new_module(j, "ok");
    add_const_fn(ok, "bad", 42); /* the name is still free */
    optimize_and_add(j, ok);
    assert_int_equal(((ConstFn)(uintptr_t)lookup(j, "bad"))(), 42);
    cg_jit_free(j);
}

static void test_cg_jit_rejects_a_module_of_another_context(void **state) {
    (void)state;
    char *err = NULL;
    CgJit *j = new_jit();
    LLVMContextRef other = LLVMContextCreate();
    LLVMModuleRef m = LLVMModuleCreateWithNameInContext("elsewhere", other);
    add_const_fn(m, "f", 1);
    assert_false(cg_jit_add(j, m, &err)); /* m is consumed */
    assert_non_null(strstr(err, "context"));
    free(err);
    LLVMContextDispose(other);
    cg_jit_free(j);
}

static void test_cg_jit_lookup_of_an_undefined_function_names_it(void **state) {
    (void)state;
    char *err = NULL;
    CgJit *j = new_jit();
    LLVMModuleRef m = new_module(j, "m");
    add_const_fn(m, "defined_fn", 7);
    optimize_and_add(j, m);
    assert_null(cg_jit_lookup(j, "gradc_no_such_function", &err));
    assert_non_null(err);
    assert_non_null(strstr(err, "gradc_no_such_function"));
    free(err);
    assert_int_equal(((ConstFn)(uintptr_t)lookup(j, "defined_fn"))(), 7);
    cg_jit_free(j);
}

/* A module whose function calls an external nobody defines: the lookup's own
 * error only says "Failed to materialize symbols"; the session's report
 * names the missing symbol and must be in the message. */
static void test_cg_jit_missing_external_symbol_is_reported_by_name(void **state) {
    (void)state;
    char *err = NULL;
    CgJit *j = new_jit();
    LLVMModuleRef m = new_module(j, "m");
    LLVMContextRef ctx = cg_jit_context(j);
    LLVMTypeRef i32 = LLVMInt32TypeInContext(ctx);
    LLVMTypeRef fty = LLVMFunctionType(i32, NULL, 0, 0);
    LLVMValueRef ext = LLVMAddFunction(m, "gradc_missing_external", fty);
    LLVMValueRef f = LLVMAddFunction(m, "calls_missing", fty);
    LLVMBuilderRef b = LLVMCreateBuilderInContext(ctx);
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(ctx, f, "entry"));
    LLVMBuildRet(b, LLVMBuildCall2(b, fty, ext, NULL, 0, ""));
    LLVMDisposeBuilder(b);
    optimize_and_add(j, m);
    assert_null(cg_jit_lookup(j, "calls_missing", &err));
    assert_non_null(err);
    printf("  %s\n", err);
    assert_non_null(strstr(err, "calls_missing"));
    assert_non_null(strstr(err, "gradc_missing_external"));
    free(err);
    cg_jit_free(j);
}

static void test_cg_jit_two_jits_are_independent(void **state) {
    (void)state;
    CgJit *a = new_jit(), *b = new_jit();
    assert_ptr_not_equal(cg_jit_context(a), cg_jit_context(b));
    LLVMModuleRef ma = new_module(a, "a"), mb = new_module(b, "b");
    add_const_fn(ma, "answer", 1);
    add_const_fn(mb, "answer", 2);
    optimize_and_add(a, ma);
    optimize_and_add(b, mb);
    ConstFn fa = (ConstFn)(uintptr_t)lookup(a, "answer");
    ConstFn fb = (ConstFn)(uintptr_t)lookup(b, "answer");
    assert_int_equal(fa(), 1);
    assert_int_equal(fb(), 2);
    cg_jit_free(a);
    assert_int_equal(fb(), 2);
    assert_int_equal(((ConstFn)(uintptr_t)lookup(b, "answer"))(), 2);
    cg_jit_free(b);
}

/* Resident set size in bytes. */
static long rss_bytes(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

/* One JIT's life: create, add a module that uses cblas and libm, run, free. */
static void jit_life(void) {
    CgJit *j = new_jit();
    LLVMModuleRef m = new_module(j, "life");
    add_gemm_fn(m, "mm", false, false, false);
    add_const_fn(m, "one", 1);
    optimize_and_add(j, m);
    float a[M * K] = {0}, b[K * N] = {0}, c[M * N];
    ((GemmF32)(uintptr_t)lookup(j, "mm"))(c, a, b);
    assert_true(c[0] == 0.0f);
    assert_int_equal(((ConstFn)(uintptr_t)lookup(j, "one"))(), 1);
    cg_jit_free(j);
}

/* Leaks are LeakSanitizer's to find in the sanitizer build; without it, a
 * leaked JIT (~600 KB each) shows in the resident set. */
static void test_cg_jit_create_and_free_repeatedly_does_not_leak(void **state) {
    (void)state;
    for (int i = 0; i < 5; i++)
        jit_life();
    long before = rss_bytes();
    for (int i = 0; i < 40; i++)
        jit_life();
    long after = rss_bytes();
    printf("  RSS %.1f MB -> %.1f MB over 40 JITs\n", before / 1e6, after / 1e6);
#ifndef __SANITIZE_ADDRESS__
    assert_true(before > 0 && after > 0);
    assert_true(after - before < 8l * 1000 * 1000);
#endif
}

static void test_cg_jit_emit_asm_leaves_the_module_unchanged(void **state) {
    (void)state;
    char *err = NULL;
    LLVMTargetMachineRef tm = cg_host_target_machine(2, &err);
    assert_non_null(tm);
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef m = LLVMModuleCreateWithNameInContext("asm", ctx);
    add_gemm_fn(m, "mm", false, false, false);
    assert_true(cg_optimize(m, tm, 2, &err));
    char *before = LLVMPrintModuleToString(m);
    char *text = cg_emit_asm(m, tm, &err);
    char *after = LLVMPrintModuleToString(m);
    assert_non_null(text);
    assert_non_null(strstr(text, "mm:"));
    assert_non_null(strstr(text, "cblas_sgemm"));
    assert_string_equal(before, after);
    free(text);
    LLVMDisposeMessage(before);
    LLVMDisposeMessage(after);
    LLVMDisposeModule(m);
    LLVMContextDispose(ctx);
    LLVMDisposeTargetMachine(tm);
}

static void test_cg_jit_targets_the_host_cpu_and_its_features(void **state) {
    (void)state;
    char *err = NULL;
    LLVMTargetMachineRef tm = cg_host_target_machine(2, &err);
    assert_non_null(tm);
    char *cpu = LLVMGetTargetMachineCPU(tm), *host = LLVMGetHostCPUName();
    assert_string_equal(cpu, host);
    LLVMDisposeMessage(cpu);
    LLVMDisposeMessage(host);
    LLVMDisposeTargetMachine(tm);

    /* void add16(float *y, const float *x): one <16 x float> add. Compiled
     * for the host, its first instruction is an EVEX (0x62) load on an
     * AVX-512 machine and a VEX (0xc4/0xc5) one on an AVX machine; a JIT for
     * a generic x86-64 would use SSE. */
    CgJit *j = new_jit();
    LLVMContextRef ctx = cg_jit_context(j);
    LLVMModuleRef m = new_module(j, "v");
    LLVMTypeRef p = LLVMPointerTypeInContext(ctx, 0);
    LLVMTypeRef v16 = LLVMVectorType(LLVMFloatTypeInContext(ctx), 16);
    LLVMTypeRef params[2] = {p, p};
    LLVMTypeRef fty = LLVMFunctionType(LLVMVoidTypeInContext(ctx), params, 2, 0);
    LLVMValueRef f = LLVMAddFunction(m, "add16", fty);
    LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(ctx, "prefer-vector-width", 19, "512", 3));
    LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(ctx, "min-legal-vector-width", 22, "512", 3));
    LLVMBuilderRef b = LLVMCreateBuilderInContext(ctx);
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(ctx, f, "entry"));
    LLVMValueRef x = LLVMBuildLoad2(b, v16, LLVMGetParam(f, 1), "");
    LLVMValueRef y = LLVMBuildLoad2(b, v16, LLVMGetParam(f, 0), "");
    LLVMSetAlignment(x, 4);
    LLVMSetAlignment(y, 4);
    LLVMSetAlignment(LLVMBuildStore(b, LLVMBuildFAdd(b, x, y, ""), LLVMGetParam(f, 0)), 4);
    LLVMBuildRetVoid(b);
    LLVMDisposeBuilder(b);
    optimize_and_add(j, m);
    void *code = lookup(j, "add16");
    const unsigned char *first = code;
    float yv[16], xv[16];
    for (int i = 0; i < 16; i++)
        yv[i] = (float)i, xv[i] = 100.0f;
    ((void (*)(float *, const float *))(uintptr_t)code)(yv, xv);
    for (int i = 0; i < 16; i++)
        assert_true(yv[i] == 100.0f + (float)i);
    __builtin_cpu_init();
    printf("  add16 starts with byte 0x%02x\n", first[0]);
    if (__builtin_cpu_supports("avx512f"))
        assert_int_equal(first[0], 0x62);
    else if (__builtin_cpu_supports("avx"))
        assert_true(first[0] == 0xc4 || first[0] == 0xc5);
    cg_jit_free(j);
}

int main(void) {
    cg_llvm_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cg_jit_calls_cblas_gemm_like_a_naive_matmul),
        cmocka_unit_test(test_cg_jit_invalid_ir_gives_the_verifier_message),
        cmocka_unit_test(test_cg_jit_rejects_a_module_of_another_context),
        cmocka_unit_test(test_cg_jit_lookup_of_an_undefined_function_names_it),
        cmocka_unit_test(test_cg_jit_missing_external_symbol_is_reported_by_name),
        cmocka_unit_test(test_cg_jit_two_jits_are_independent),
        cmocka_unit_test(test_cg_jit_create_and_free_repeatedly_does_not_leak),
        cmocka_unit_test(test_cg_jit_emit_asm_leaves_the_module_unchanged),
        cmocka_unit_test(test_cg_jit_targets_the_host_cpu_and_its_features),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
