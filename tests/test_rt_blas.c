/* test_rt_blas.c: the OpenBLAS core decision, rt_setup's environment
 * handling, FTZ/DAZ, and that SGEMM still computes correctly afterwards. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "runtime/rt_internal.h"

#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

/* cblas_sgemm, declared by hand like runtime/blas.c does. */
enum { ROW_MAJOR = 101, NO_TRANS = 111 };
extern void cblas_sgemm(int order, int ta, int tb, int m, int n, int k, float alpha,
                        const float *a, int lda, const float *b, int ldb, float beta, float *c,
                        int ldc);

static const RtCpuFeatures avx512 = {true, true, true, true, true, true};
static const RtCpuFeatures avx2_only = {false, false, false, false, true, true};
static const RtCpuFeatures sse_only = {0};

static void test_blas_prescott_on_avx512_cpu_becomes_skylakex(void **state) {
    (void)state;
    assert_string_equal(rt_blas_pick_core("Prescott", &avx512), "SkylakeX");
    assert_string_equal(rt_blas_pick_core("Haswell", &avx512), "SkylakeX");
    assert_string_equal(rt_blas_pick_core("Zen", &avx512), "SkylakeX");
    assert_string_equal(rt_blas_pick_core("Unknown", &avx512), "SkylakeX");
    assert_string_equal(rt_blas_pick_core(NULL, &avx512), "SkylakeX");
}

static void test_blas_keeps_an_avx512_core_in_any_case(void **state) {
    (void)state;
    assert_null(rt_blas_pick_core("SkylakeX", &avx512));
    assert_null(rt_blas_pick_core("skylakex", &avx512));
    assert_null(rt_blas_pick_core("COOPERLAKE", &avx512));
    assert_null(rt_blas_pick_core("SapphireRapids", &avx512));
}

static void test_blas_prescott_on_avx2_cpu_becomes_haswell(void **state) {
    (void)state;
    assert_string_equal(rt_blas_pick_core("Prescott", &avx2_only), "Haswell");
    assert_string_equal(rt_blas_pick_core("Sandybridge", &avx2_only), "Haswell");
    assert_null(rt_blas_pick_core("Haswell", &avx2_only));
    assert_null(rt_blas_pick_core("zen", &avx2_only));
    assert_null(rt_blas_pick_core("SkylakeX", &avx2_only));
}

/* AVX-512F alone (no BW/VL/DQ, e.g. Knights Landing) is not SkylakeX. */
static void test_blas_partial_avx512_falls_back_to_avx2_rule(void **state) {
    (void)state;
    RtCpuFeatures knl = avx2_only;
    knl.avx512f = true;
    assert_string_equal(rt_blas_pick_core("Prescott", &knl), "Haswell");
}

static void test_blas_cpu_without_avx2_keeps_its_core(void **state) {
    (void)state;
    assert_null(rt_blas_pick_core("Prescott", &sse_only));
    RtCpuFeatures avx2_no_fma = avx2_only;
    avx2_no_fma.fma = false;
    assert_null(rt_blas_pick_core("Prescott", &avx2_no_fma));
}

/* A user's OPENBLAS_CORETYPE is left alone: still set, and the core is
 * whatever the library picked before. */
static void test_blas_setup_respects_user_coretype(void **state) {
    (void)state;
    char before[64];
    snprintf(before, sizeof before, "%s", rt_blas_corename());
    setenv("OPENBLAS_CORETYPE", "Prescott", 1);
    rt_setup(0);
    assert_string_equal(getenv("OPENBLAS_CORETYPE"), "Prescott");
    assert_string_equal(rt_blas_corename(), before);
    unsetenv("OPENBLAS_CORETYPE");
}

/* Without a user setting, rt_setup leaves no OPENBLAS_CORETYPE behind, and
 * afterwards the core is one the decision function would keep. */
static void test_blas_setup_leaves_no_environment_and_a_kept_core(void **state) {
    (void)state;
    unsetenv("OPENBLAS_CORETYPE");
    rt_setup(2);
    assert_null(getenv("OPENBLAS_CORETYPE"));
    assert_non_null(rt_blas_corename());
    RtCpuFeatures cpu = rt_cpu_features();
    assert_null(rt_blas_pick_core(rt_blas_corename(), &cpu));
    rt_setup(1); /* a second call is harmless */
    assert_null(getenv("OPENBLAS_CORETYPE"));
}

static void test_blas_setup_sets_ftz_and_daz(void **state) {
    (void)state;
    rt_setup(0);
#if defined(__x86_64__)
    assert_int_equal(_mm_getcsr() & 0x8040, 0x8040);
    volatile float tiny = 1e-39f; /* a denormal: DAZ reads it as zero */
    volatile float one = 1.0f;
    assert_true(tiny * one == 0.0f);
    volatile float small = 1e-30f; /* 1e-60 underflows: FTZ gives zero */
    assert_true(small * small == 0.0f);
#else
    skip();
#endif
}

/* The child half of the next test: started with OPENBLAS_CORETYPE=Prescott
 * so that OpenBLAS loads its SSE3 kernels, as it does on its own on CPUs it
 * does not recognise; then, with the variable gone, rt_setup must switch to
 * the core the decision function names and leave no variable behind. */
static int child_prescott(void) {
    const char *before = rt_blas_corename();
    if (strcasecmp(before, "Prescott") != 0) {
        fprintf(stderr, "child: OpenBLAS started on %s, not Prescott\n", before);
        return 3;
    }
    unsetenv("OPENBLAS_CORETYPE");
    RtCpuFeatures cpu = rt_cpu_features();
    const char *want = rt_blas_pick_core("Prescott", &cpu);
    rt_setup(0);
    const char *after = rt_blas_corename();
    if (!want || strcasecmp(after, want) != 0 || getenv("OPENBLAS_CORETYPE")) {
        fprintf(stderr, "child: after rt_setup: core %s, wanted %s\n", after,
                want ? want : "(none)");
        return 1;
    }
    return 0;
}

static void test_blas_setup_switches_prescott_kernels_at_run_time(void **state) {
    (void)state;
    RtCpuFeatures cpu = rt_cpu_features();
    if (!rt_blas_pick_core("Prescott", &cpu))
        skip(); /* a CPU without AVX2: Prescott is right */
    char *argv[] = {"test_rt_blas", "--child-prescott", NULL};
    char *envp[] = {"OPENBLAS_CORETYPE=Prescott", "ASAN_OPTIONS=detect_leaks=0", NULL};
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, envp), 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* The kernel switch must not break BLAS: a 37x29x41 product against a naive
 * triple loop. */
static void test_blas_sgemm_is_correct_after_setup(void **state) {
    (void)state;
    rt_setup(2);
    enum { M = 37, N = 29, K = 41 };
    static float a[M * K], b[K * N], c[M * N];
    for (int i = 0; i < M * K; i++)
        a[i] = (float)((i * 7 % 13) - 6) / 8.0f;
    for (int i = 0; i < K * N; i++)
        b[i] = (float)((i * 5 % 11) - 5) / 4.0f;
    cblas_sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double want = 0;
            for (int k = 0; k < K; k++)
                want += (double)a[i * K + k] * b[k * N + j];
            assert_float_equal(c[i * N + j], want, 1e-4);
        }
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--child-prescott") == 0)
        return child_prescott();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blas_prescott_on_avx512_cpu_becomes_skylakex),
        cmocka_unit_test(test_blas_keeps_an_avx512_core_in_any_case),
        cmocka_unit_test(test_blas_prescott_on_avx2_cpu_becomes_haswell),
        cmocka_unit_test(test_blas_partial_avx512_falls_back_to_avx2_rule),
        cmocka_unit_test(test_blas_cpu_without_avx2_keeps_its_core),
        cmocka_unit_test(test_blas_setup_respects_user_coretype),
        cmocka_unit_test(test_blas_setup_leaves_no_environment_and_a_kept_core),
        cmocka_unit_test(test_blas_setup_sets_ftz_and_daz),
        cmocka_unit_test(test_blas_setup_switches_prescott_kernels_at_run_time),
        cmocka_unit_test(test_blas_sgemm_is_correct_after_setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
