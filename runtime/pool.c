/* pool.c: the one pool of threads that the compiled code runs on, and the
 * matrix products split across it.
 *
 * A training step alternates matrix products with elementwise loops (the
 * bias and activation, the loss, the optimizer update). Splitting only the
 * products across the cores (OpenBLAS's own threads) leaves the loops on
 * one core, and a second pool beside OpenBLAS's, both spinning while they
 * wait, steals the core the other needs (../shared/notes/performance.md).
 * So there is one pool, this one: OpenBLAS runs single-threaded (rt_setup)
 * and every product and every large loop is split here.
 *
 * rt_parallel_for(fn, ctx, work) runs fn(ctx, part, nparts) for part in
 * [0, nparts) with the caller taking part 0 and each worker one other part,
 * and returns when all are done. nparts is 1 (the caller alone, no
 * synchronisation) when the pool has one thread or `work` is too small to
 * repay waking a worker; it depends only on the thread count and the work,
 * so a run repeats to the bit. When another thread holds the pool
 * (instances of a gradc build --lib library on different threads) the
 * caller runs the same parts itself, one after the other, with the same
 * results.
 *
 * Waiting: a worker spins for about RT_POOL_SPIN_NS after its last part
 * (a step posts parts every few microseconds) and then sleeps on a futex,
 * so an idle pool costs nothing. The caller wakes sleepers only when
 * there are any (a counter), so a busy step makes no system calls.
 *
 * Workers set flush-to-zero and denormals-are-zero, as rt_setup does for
 * the caller. Must not know what the parts compute.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "rt.h"

#include <cblas.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

enum {
    RT_POOL_MAX = 64,            /* threads, the caller included */
    RT_POOL_SPIN_NS = 200000,    /* a worker's spin before it sleeps */
    RT_PAR_GRAIN = 32768,        /* elements of a loop worth one part */
    RT_GEMM_GRAIN = 1 << 19,     /* M*N*K of a product worth one part */
};

static struct {
    pthread_mutex_t lock; /* held by the thread whose parts are in flight */
    int nthreads;         /* used: the caller included; 1: no workers */
    int workers;          /* running (nthreads - 1 or more: setup can lower nthreads) */
    _Atomic uint32_t gen; /* bumped to post parts; the futex word */
    _Atomic int sleepers; /* workers in (or about to enter) futex_wait */
    _Atomic int pending;  /* workers that have not finished the current post */
    RtPartFn fn;
    void *ctx;
    int64_t nparts;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .nthreads = 1};

static void cpu_relax(void) {
#if defined(__x86_64__)
    _mm_pause();
#endif
}

static int64_t clock_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void futex_wait(_Atomic uint32_t *w, uint32_t seen) {
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
}

static void futex_wake_all(_Atomic uint32_t *w) {
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE_PRIVATE, RT_POOL_MAX, NULL, NULL, 0);
}

/* Worker `self` (1 .. nthreads-1): run part self of each post, forever. */
static void *worker(void *arg) {
    int64_t self = (int64_t)(intptr_t)arg;
#if defined(__x86_64__)
    _mm_setcsr(_mm_getcsr() | 0x8040); /* FTZ | DAZ, as the caller has them */
#endif
    uint32_t seen = 0;
    for (;;) {
        int64_t until = clock_ns() + RT_POOL_SPIN_NS;
        for (int spin = 0; atomic_load(&pool.gen) == seen; spin++) {
            cpu_relax();
            if ((spin & 255) == 255 && clock_ns() > until) {
                atomic_fetch_add(&pool.sleepers, 1);
                while (atomic_load(&pool.gen) == seen)
                    futex_wait(&pool.gen, seen);
                atomic_fetch_sub(&pool.sleepers, 1);
            }
        }
        seen = atomic_load(&pool.gen);
        if (self < pool.nparts)
            pool.fn(pool.ctx, self, pool.nparts);
        atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_release);
    }
    return NULL;
}

/* The CPUs this process may run on. */
static int available_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* Contract: see rt.h. Workers are started once, by the first call, and
 * live as long as the process; a later call can only lower the count. */
void rt_pool_setup(int threads) {
    pthread_mutex_lock(&pool.lock);
    int want = threads > 0 ? threads : available_cpus();
    if (want > RT_POOL_MAX)
        want = RT_POOL_MAX;
    int started = pool.workers + 1;
    while (started < want) {
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        int bad = pthread_create(&t, &at, worker, (void *)(intptr_t)started);
        pthread_attr_destroy(&at);
        if (bad)
            break; /* fewer threads: slower, still correct */
        started++;
    }
    pool.workers = started - 1;
    pool.nthreads = want < started ? want : started;
    pthread_mutex_unlock(&pool.lock);
}

int rt_pool_threads(void) { return pool.nthreads; }

/* Contract: see rt.h. */
void rt_parallel_for(RtPartFn fn, void *ctx, int64_t work) {
    int64_t nparts = work / RT_PAR_GRAIN;
    rt_parallel_parts(fn, ctx, nparts);
}

void rt_parallel_parts(RtPartFn fn, void *ctx, int64_t nparts) {
    if (nparts > pool.nthreads)
        nparts = pool.nthreads;
    if (nparts < 2) {
        fn(ctx, 0, 1);
        return;
    }
    if (pthread_mutex_trylock(&pool.lock) != 0) {
        /* Busy: the same parts, one after the other, so that the results
         * are those of the pool to the bit. */
        for (int64_t p = 0; p < nparts; p++)
            fn(ctx, p, nparts);
        return;
    }
    pool.fn = fn;
    pool.ctx = ctx;
    pool.nparts = nparts;
    atomic_store(&pool.pending, pool.workers);
    atomic_fetch_add(&pool.gen, 1);
    if (atomic_load(&pool.sleepers) > 0)
        futex_wake_all(&pool.gen);
    fn(ctx, 0, nparts);
    while (atomic_load_explicit(&pool.pending, memory_order_acquire) > 0)
        cpu_relax();
    pthread_mutex_unlock(&pool.lock);
}

/* ---- matrix products ------------------------------------------------------------
 * C[M, N] = op(A) @ op(B) + beta C, row-major, split into row blocks of C
 * (or column blocks when C is wider than tall), each a single-threaded
 * OpenBLAS call. A block boundary is a multiple of 16 rows or columns. */

typedef struct Gemm {
    bool f64, ta, tb;
    int m, n, k, lda, ldb, ldc;
    const void *a, *b;
    void *c;
    double beta;
} Gemm;

static void gemm_part(void *ctx, int64_t part, int64_t nparts) {
    const Gemm *g = ctx;
    bool rows = g->m >= g->n;
    int64_t len = rows ? g->m : g->n;
    int64_t lo = len * part / nparts / 16 * 16, hi = part + 1 == nparts ? len : len * (part + 1) / nparts / 16 * 16;
    if (hi <= lo)
        return;
    int es = g->f64 ? 8 : 4;
    const char *a = g->a, *b = g->b;
    char *c = g->c;
    int m = g->m, n = g->n;
    if (rows) { /* rows [lo, hi) of op(A) and C */
        a += (size_t)lo * (size_t)(g->ta ? 1 : g->lda) * (size_t)es;
        c += (size_t)lo * (size_t)g->ldc * (size_t)es;
        m = (int)(hi - lo);
    } else { /* columns [lo, hi) of op(B) and C */
        b += (size_t)lo * (size_t)(g->tb ? g->ldb : 1) * (size_t)es;
        c += (size_t)lo * (size_t)es;
        n = (int)(hi - lo);
    }
    enum CBLAS_TRANSPOSE ta = g->ta ? CblasTrans : CblasNoTrans, tb = g->tb ? CblasTrans : CblasNoTrans;
    if (g->f64)
        cblas_dgemm(CblasRowMajor, ta, tb, m, n, g->k, 1.0, (const double *)a, g->lda,
                    (const double *)b, g->ldb, g->beta, (double *)c, g->ldc);
    else
        cblas_sgemm(CblasRowMajor, ta, tb, m, n, g->k, 1.0f, (const float *)a, g->lda,
                    (const float *)b, g->ldb, (float)g->beta, (float *)c, g->ldc);
}

static void gemm(Gemm *g) {
    int64_t work = (int64_t)g->m * g->n * g->k;
    int64_t len = g->m >= g->n ? g->m : g->n;
    int64_t nparts = work / RT_GEMM_GRAIN;
    if (nparts > len / 16)
        nparts = len / 16;
    rt_parallel_parts(gemm_part, g, nparts);
}

void rt_gemm_f32(int ta, int tb, int m, int n, int k, const float *a, int lda, const float *b,
                 int ldb, float beta, float *c, int ldc) {
    Gemm g = {false, ta != 0, tb != 0, m, n, k, lda, ldb, ldc, a, b, c, beta};
    gemm(&g);
}

void rt_gemm_f64(int ta, int tb, int m, int n, int k, const double *a, int lda, const double *b,
                 int ldb, double beta, double *c, int ldc) {
    Gemm g = {true, ta != 0, tb != 0, m, n, k, lda, ldb, ldc, a, b, c, beta};
    gemm(&g);
}
