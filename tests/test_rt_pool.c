/* test_rt_pool.c: runtime/pool.c, the thread pool the compiled code runs
 * on, and its matrix products: every part runs exactly once, whatever the
 * thread count; two threads using the pool at once both finish correctly;
 * rt_gemm_f32 / rt_gemm_f64 equal a naive double product (all transposes,
 * beta 0 and 1, odd shapes) on 1, 2 and 3 threads, and give the same bits
 * every time on the same thread count. (Not across thread counts: a block
 * of C may take another OpenBLAS kernel, summing in another order, than
 * the whole product.)
 *
 * Dimension legend: M, N, K the product's dims.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/rt.h"

enum { MAXPARTS = 8 };

typedef struct Count {
    _Atomic int ran[MAXPARTS];
    _Atomic int64_t nparts;
} Count;

static void count_part(void *ctx, int64_t part, int64_t nparts) {
    Count *c = ctx;
    assert_true(part >= 0 && part < nparts && nparts <= MAXPARTS);
    atomic_fetch_add(&c->ran[part], 1);
    atomic_store(&c->nparts, nparts);
}

static void test_pool_runs_every_part_once(void **state) {
    (void)state;
    for (int threads = 1; threads <= 4; threads++) {
        rt_pool_setup(threads);
        assert_int_equal(rt_pool_threads(), threads);
        for (int want = 1; want <= 6; want++)
            for (int rep = 0; rep < 200; rep++) {
                Count c = {0};
                rt_parallel_parts(count_part, &c, want);
                int64_t n = atomic_load(&c.nparts);
                assert_int_equal(n, want < threads ? want : threads);
                for (int p = 0; p < MAXPARTS; p++)
                    assert_int_equal(atomic_load(&c.ran[p]), p < n ? 1 : 0);
            }
        /* rt_parallel_for: one part per 32768 elements of work, at most
         * one per thread; small work stays on the caller. */
        Count c = {0};
        rt_parallel_for(count_part, &c, 1000);
        assert_int_equal(atomic_load(&c.nparts), 1);
        Count d = {0};
        rt_parallel_for(count_part, &d, 1 << 20);
        assert_int_equal(atomic_load(&d.nparts), threads);
    }
}

/* Sums of disjoint shares, from two threads at once: the one that finds the
 * pool busy runs its parts itself, and both get every element. */
typedef struct Sum {
    const int64_t *v;
    int64_t n;
    int64_t partial[MAXPARTS];
} Sum;

static void sum_part(void *ctx, int64_t part, int64_t nparts) {
    Sum *s = ctx;
    int64_t lo = s->n * part / nparts, hi = s->n * (part + 1) / nparts, acc = 0;
    for (int64_t i = lo; i < hi; i++)
        acc += s->v[i];
    s->partial[part] = acc;
}

static void *summer(void *arg) {
    const int64_t *v = arg;
    for (int rep = 0; rep < 2000; rep++) {
        Sum s = {.v = v, .n = 100000};
        memset(s.partial, 0, sizeof s.partial);
        rt_parallel_parts(sum_part, &s, 4);
        int64_t total = 0;
        for (int p = 0; p < MAXPARTS; p++)
            total += s.partial[p];
        if (total != 100000LL * 99999 / 2)
            return (void *)1;
    }
    return NULL;
}

static void test_pool_two_callers_at_once(void **state) {
    (void)state;
    rt_pool_setup(3);
    int64_t *v = malloc(sizeof *v * 100000);
    for (int i = 0; i < 100000; i++)
        v[i] = i;
    pthread_t t1, t2;
    assert_int_equal(pthread_create(&t1, NULL, summer, v), 0);
    assert_int_equal(pthread_create(&t2, NULL, summer, v), 0);
    void *r1, *r2;
    pthread_join(t1, &r1);
    pthread_join(t2, &r2);
    assert_null(r1);
    assert_null(r2);
    free(v);
}

/* ---- matrix products ------------------------------------------------------------ */

static double val(uint64_t i, uint64_t salt) {
    uint64_t h = (i + 1) * 0x9e3779b97f4a7c15ull ^ salt;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return (double)(h % 2001) / 1000.0 - 1.0;
}

typedef struct Case {
    int m, n, k;
    bool ta, tb;
    double beta;
} Case;

/* op(A)[M, K] @ op(B)[K, N] + beta C for one case, on 1, 2 and 3 threads,
 * float32 and float64: within a few ulps of the double reference each
 * time, and the same bits when run again on the same thread count. */
static void check_case(const Case *c) {
    int m = c->m, n = c->n, k = c->k;
    int lda = c->ta ? m : k, ldb = c->tb ? k : n;
    size_t na = (size_t)m * (size_t)k, nb = (size_t)k * (size_t)n, nc = (size_t)m * (size_t)n;
    double *a = malloc(na * 8), *b = malloc(nb * 8), *c0 = malloc(nc * 8), *ref = malloc(nc * 8);
    for (size_t i = 0; i < na; i++)
        a[i] = val(i, 1);
    for (size_t i = 0; i < nb; i++)
        b[i] = val(i, 2);
    for (size_t i = 0; i < nc; i++)
        c0[i] = val(i, 3);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int l = 0; l < k; l++)
                s += (c->ta ? a[(size_t)l * lda + i] : a[(size_t)i * lda + l]) *
                     (c->tb ? b[(size_t)j * ldb + l] : b[(size_t)l * ldb + j]);
            ref[(size_t)i * n + j] = s + c->beta * c0[(size_t)i * n + j];
        }
    float *af = malloc(na * 4), *bf = malloc(nb * 4), *cf[2];
    double *cd[2];
    for (size_t i = 0; i < na; i++)
        af[i] = (float)a[i];
    for (size_t i = 0; i < nb; i++)
        bf[i] = (float)b[i];
    double tol32 = 1e-5 * (k + 1), tol64 = 1e-13 * (k + 1);
    for (int t = 1; t <= 3; t++) {
        rt_pool_setup(t);
        for (int rep = 0; rep < 2; rep++) {
            cf[rep] = malloc(nc * 4);
            cd[rep] = malloc(nc * 8);
            for (size_t i = 0; i < nc; i++)
                cf[rep][i] = (float)c0[i], cd[rep][i] = c0[i];
            rt_gemm_f32(c->ta, c->tb, m, n, k, af, lda, bf, ldb, (float)c->beta, cf[rep], n);
            rt_gemm_f64(c->ta, c->tb, m, n, k, a, lda, b, ldb, c->beta, cd[rep], n);
        }
        for (size_t i = 0; i < nc; i++)
            if (fabs(cf[0][i] - ref[i]) > tol32 || fabs(cd[0][i] - ref[i]) > tol64)
                fail_msg("%dx%dx%d ta %d tb %d beta %g, %d threads: element %zu: f32 %g f64 "
                         "%.17g, want %.17g",
                         m, n, k, c->ta, c->tb, c->beta, t, i, cf[0][i], cd[0][i], ref[i]);
        assert_memory_equal(cf[1], cf[0], nc * 4);
        assert_memory_equal(cd[1], cd[0], nc * 8);
        for (int rep = 0; rep < 2; rep++)
            free(cf[rep]), free(cd[rep]);
    }
    free(a), free(b), free(c0), free(ref), free(af), free(bf);
}

static void test_gemm_matches_naive_on_any_thread_count(void **state) {
    (void)state;
    static const Case cases[] = {
        {1, 1, 1, false, false, 0},    {3, 5, 7, true, false, 0},
        {37, 300, 41, false, false, 0}, {300, 37, 41, false, true, 0},
        {129, 131, 67, true, true, 1},  {256, 512, 64, false, false, 0},
        {512, 200, 64, true, false, 1}, {97, 1000, 33, false, true, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&cases[i]);
    rt_pool_setup(1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_runs_every_part_once),
        cmocka_unit_test(test_pool_two_callers_at_once),
        cmocka_unit_test(test_gemm_matches_naive_on_any_thread_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
