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
 * [0, nparts), each part claimed by whichever thread, the caller's
 * included, gets to it first, and returns when all are done. nparts is 1 (the caller alone, no
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
#include "rt_internal.h"

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
    /* The current post, claimed part by part with compare-and-swap: its
     * generation (bits 32-63), its part count (16-31) and the next part
     * to claim (0-15). */
    _Atomic uint64_t claim;
    _Atomic uint32_t seq;  /* the generation again: the futex word */
    _Atomic int sleepers;  /* workers in (or about to enter) futex_wait */
    _Atomic int64_t done;  /* parts of the current post finished */
    RtPartFn fn;
    void *ctx;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .nthreads = 1};

#define POST_GEN(w) ((uint32_t)((w) >> 32))
#define POST_PARTS(w) ((int64_t)((w) >> 16 & 0xffff))
#define POST_NEXT(w) ((int64_t)((w)&0xffff))

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

/* Claim and run parts of post gen until none is left. Parts are claimed,
 * not assigned: a thread the OS has not scheduled holds nothing up, the
 * others take its share. fn and ctx are read after a successful claim:
 * the post cannot end, nor the next be posted, before that part is done. */
static void run_parts(uint32_t gen) {
    uint64_t w = atomic_load(&pool.claim);
    while (POST_GEN(w) == gen && POST_NEXT(w) < POST_PARTS(w)) {
        if (!atomic_compare_exchange_weak(&pool.claim, &w, w + 1))
            continue; /* w holds the new value */
        pool.fn(pool.ctx, POST_NEXT(w), POST_PARTS(w));
        atomic_fetch_add_explicit(&pool.done, 1, memory_order_release);
        w = atomic_load(&pool.claim);
    }
}

/* A worker: run parts of each post it sees, forever. */
static void *worker(void *arg) {
    (void)arg;
#if defined(__x86_64__)
    _mm_setcsr(_mm_getcsr() | 0x8040); /* FTZ | DAZ, as the caller has them */
#endif
    uint32_t seen = 0;
    for (;;) {
        int64_t until = clock_ns() + RT_POOL_SPIN_NS;
        for (int spin = 0; atomic_load(&pool.seq) == seen; spin++) {
            cpu_relax();
            if ((spin & 255) == 255 && clock_ns() > until) {
                atomic_fetch_add(&pool.sleepers, 1);
                while (atomic_load(&pool.seq) == seen)
                    futex_wait(&pool.seq, seen);
                atomic_fetch_sub(&pool.sleepers, 1);
            }
        }
        seen = atomic_load(&pool.seq);
        run_parts(seen);
    }
    return NULL;
}

int pool_available_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* Contract: see rt.h. Workers live as long as the process; a later call
 * starts more or uses fewer. */
void rt_pool_setup(int threads) {
    pthread_mutex_lock(&pool.lock);
    int want = threads > 0 ? threads : pool_available_cpus();
    if (want > RT_POOL_MAX)
        want = RT_POOL_MAX;
    int started = pool.workers + 1;
    while (started < want) {
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        int bad = pthread_create(&t, &at, worker, NULL);
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
    uint32_t gen = POST_GEN(atomic_load(&pool.claim)) + 1;
    pool.fn = fn;
    pool.ctx = ctx;
    atomic_store(&pool.done, 0);
    atomic_store(&pool.claim, (uint64_t)gen << 32 | (uint64_t)nparts << 16);
    atomic_store(&pool.seq, gen);
    if (atomic_load(&pool.sleepers) > 0)
        futex_wake_all(&pool.seq);
    run_parts(gen);
    /* Only parts a worker claimed and is still running are left; on a
     * machine with more busy threads than cores, let it have ours. */
    for (int spin = 0; atomic_load_explicit(&pool.done, memory_order_acquire) < nparts; spin++)
        if (spin < 4096)
            cpu_relax();
        else
            sched_yield();
    pthread_mutex_unlock(&pool.lock);
}

/* ---- matrix products ------------------------------------------------------------
 * C[M, N] = op(A) @ op(B) + beta C, row-major, split into row blocks of C
 * (or column blocks when C is wider than tall), each a single-threaded
 * OpenBLAS call (two, or a few matrix-vector products, where OpenBLAS
 * would malloc: gemm_block). A block boundary is a multiple of 16 rows or
 * columns. */

typedef struct Gemm {
    bool f64, ta, tb;
    int m, n, k, lda, ldb, ldc;
    const void *a, *b;
    void *c;
    double beta;
} Gemm;

/* One OpenBLAS call: C[m, n] = op(A) op(B) + beta C with g's flags, k and
 * leading dimensions, at the given corners. */
static void blas_gemm(const Gemm *g, int m, int n, const char *a, const char *b, char *c) {
    enum CBLAS_TRANSPOSE ta = g->ta ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE tb = g->tb ? CblasTrans : CblasNoTrans;
    if (g->f64)
        cblas_dgemm(CblasRowMajor, ta, tb, m, n, g->k, 1.0, (const double *)a, g->lda,
                    (const double *)b, g->ldb, g->beta, (double *)c, g->ldc);
    else
        cblas_sgemm(CblasRowMajor, ta, tb, m, n, g->k, 1.0f, (const float *)a, g->lda,
                    (const float *)b, g->ldb, (float)g->beta, (float *)c, g->ldc);
}

/* Column j of C: C[:, j] = A B[:, j] + beta C[:, j] (no transposes), one
 * OpenBLAS matrix-vector product; b and c point at the column's top. */
static void blas_gemv(const Gemm *g, int m, const char *a, const char *b, char *c) {
    if (g->f64)
        cblas_dgemv(CblasRowMajor, CblasNoTrans, m, g->k, 1.0, (const double *)a, g->lda,
                    (const double *)b, g->ldb, g->beta, (double *)c, g->ldc);
    else
        cblas_sgemv(CblasRowMajor, CblasNoTrans, m, g->k, 1.0f, (const float *)a, g->lda,
                    (const float *)b, g->ldb, (float)g->beta, (float *)c, g->ldc);
}

/* Would OpenBLAS malloc in this call? Its small-matrix kernels for AVX-512
 * cores (0.3.21 and later: kernel/x86_64/sgemm_small_kernel_nn_skylakex.c
 * and the dgemm one), taken for products of at most 100^3 multiply-adds,
 * malloc and free a copy of the last rows of A in the column-major
 * no-transpose kernel, that is a row-major product without transposes,
 * when n (their M) leaves a remainder of 1 to 8 over a multiple of 16
 * (float; 1 to 4 over 8 for double) and k is at least 32 (16). Applied
 * on every core (elsewhere the detour is merely not needed). Its cost, for
 * these small products only: a split about a quarter (64 x 24 x 128 from
 * 3.8 to 4.8 us), the matrix-vector products up to 2.8 times when n is 2
 * to 8 (32 x 4 x 784 from 2.2 to 6.2 us), about the same for n = 1. */
static bool blas_would_malloc(const Gemm *g, int m, int n) {
    int w = g->f64 ? 8 : 16, r = n % w;
    return !g->ta && !g->tb && r >= 1 && r <= w / 2 && g->k >= (g->f64 ? 16 : 32) &&
           (double)m * (double)n * (double)g->k <= 1e6;
}

/* C[m, n] of g at the given corners, without a malloc in OpenBLAS (the
 * training step allocates nothing): a product blas_would_malloc flags is
 * split by columns into parts whose widths leave a remainder over w/2
 * (w = 16 float, 8 double), which the kernel handles in place: for a
 * remainder r >= 2 and n > w, [0, n - r - (w/2 - 1)) and the rest (w/2 + 1
 * mod w and w/2 - 1 + r wide); otherwise the whole multiples of w, then
 * each of the last r columns as a matrix-vector product (OpenBLAS's gemv
 * allocates nothing). Each element is still one dot product over k. */
static void gemm_block(const Gemm *g, int m, int n, const char *a, const char *b, char *c) {
    if (!blas_would_malloc(g, m, n)) {
        blas_gemm(g, m, n, a, b, c);
        return;
    }
    int w = g->f64 ? 8 : 16, r = n % w;
    size_t es = g->f64 ? 8 : 4;
    if (r >= 2 && n > w) {
        int left = n - r - (w / 2 - 1);
        blas_gemm(g, m, left, a, b, c);
        blas_gemm(g, m, n - left, a, b + (size_t)left * es, c + (size_t)left * es);
        return;
    }
    int whole = n - r;
    if (whole > 0)
        blas_gemm(g, m, whole, a, b, c);
    for (int j = whole; j < n; j++)
        blas_gemv(g, m, a, b + (size_t)j * es, c + (size_t)j * es);
}

/* Split C by rows, unless it has too few for two blocks of 32 and more
 * columns: measured on the products of bench/, row blocks run 5-20%
 * faster than column blocks even where they pack more of B twice. */
static bool split_rows(const Gemm *g) { return g->m >= 64 || g->m >= g->n; }

static void gemm_part(void *ctx, int64_t part, int64_t nparts) {
    const Gemm *g = ctx;
    bool rows = split_rows(g);
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
    gemm_block(g, m, n, a, b, c);
}

static void gemm(Gemm *g) {
    int64_t work = (int64_t)g->m * g->n * g->k;
    int64_t len = split_rows(g) ? g->m : g->n;
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
