/* test_noalloc.c: the training step allocates nothing: not the runtime, not
 * the generated code, not OpenBLAS.
 *
 * The test executable defines malloc, calloc, realloc, free, posix_memalign,
 * aligned_alloc, memalign, valloc, pvalloc and mmap itself. The dynamic
 * linker binds every library's calls to them here (the executable comes
 * first in the lookup order), so the calls that glibc, OpenBLAS, LLVM and
 * the runtime make all pass through them; they forward to glibc's
 * __libc_malloc family (mmap to the system call) and, while a window is
 * open, count each call and keep its size and caller. The first test shows
 * that calls from inside libc are counted, the last that OpenBLAS's mmap
 * is, so the counting cannot pass by seeing nothing.
 *
 * Under AddressSanitizer, which owns malloc, the executable defines only
 * mmap and counts the rest through ASan's allocation hooks
 * (__sanitizer_install_malloc_and_free_hooks): every kind then counts as
 * "malloc" or "free", and callers are unknown.
 *
 * Everything runs on a pool of 2 threads (rt_setup(2)), which also maps
 * OpenBLAS's work buffers; nothing is warmed up beyond that.
 *   - rt_gemm_f32/f64 over shapes around OpenBLAS's small-matrix kernel that
 *     mallocs (runtime/pool.c, gemm_block): no call, and the naive product.
 *   - For each model (the MNIST MLP with dropout and Adam, the NPLM with its
 *     embedding and Adam, the sentiment model with embedding, mean and SGD,
 *     and a dropout model with momentum SGD and clip_norm under
 *     bce_logits), compiled with the JIT: rt_train for K steps and for
 *     K + M steps, fresh sessions, the same configuration (held-out split,
 *     progress lines, a JSON log): the two counts must be equal, kind by
 *     kind. M spans three epoch boundaries, so neither a step nor an epoch
 *     may allocate. Then the step itself, as rt_train takes it
 *     (rt_dataset_gather, rt_step_hypers, m->train.fn), and as gradc build
 *     --lib's rt_lib_train_step takes it, 20 steps each from the first step
 *     of a fresh session: no call at all.
 *
 * What rt_train allocates, once per call and never per epoch or step:
 *   - run.perm, the row order (malloc, freed at the end);
 *   - the log's FILE and its buffer (fopen, the first write; fclose frees);
 *   - the buffer of the progress output (cfg->out), at its first write, if
 *     it has none yet (here a fresh FILE per call; stdout gets one per
 *     process).
 * Not per step either, but outside this test: rt_evaluate allocates
 * nothing, rt_lib_evaluate two arrays per call.
 *
 * Dimension legend: B the batch dimension; a product is C[m, n] = op(A)[m, k]
 * op(B)[k, n].
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/rt_internal.h"
#include "support.h"

#if defined(__SANITIZE_ADDRESS__)
#define NOALLOC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NOALLOC_ASAN 1
#endif
#endif

/* ---- counting ------------------------------------------------------------------ */

typedef enum Kind { K_MALLOC, K_CALLOC, K_REALLOC, K_MEMALIGN, K_FREE, K_MMAP, K_COUNT } Kind;
static const char *const kind_names[K_COUNT] = {"malloc", "calloc", "realloc",
                                                "memalign", "free", "mmap"};

typedef struct Counts {
    long n[K_COUNT];
} Counts;

/* One counted call: its kind, the bytes asked for, the return address. */
typedef struct Event {
    Kind kind;
    size_t size;
    void *caller;
} Event;

enum { MAX_EVENTS = 64 };
static atomic_int counting;
static atomic_long counts[K_COUNT];
static Event events[MAX_EVENTS];
static atomic_int nevents;

/* Called by every interposer, on any thread. */
static void note(Kind k, size_t size, void *caller) {
    if (!atomic_load_explicit(&counting, memory_order_relaxed))
        return;
    atomic_fetch_add(&counts[k], 1);
    int i = atomic_fetch_add(&nevents, 1);
    if (i < MAX_EVENTS)
        events[i] = (Event){k, size, caller};
}

static void count_start(void) {
    for (int k = 0; k < K_COUNT; k++)
        atomic_store(&counts[k], 0);
    atomic_store(&nevents, 0);
    atomic_store(&counting, 1);
}

static Counts count_stop(void) {
    atomic_store(&counting, 0);
    Counts c;
    for (int k = 0; k < K_COUNT; k++)
        c.n[k] = atomic_load(&counts[k]);
    return c;
}

static long total(const Counts *c) {
    long t = 0;
    for (int k = 0; k < K_COUNT; k++)
        t += c->n[k];
    return t;
}

/* "malloc 1, free 1" (kinds with a count only; "none" when all are 0). */
static const char *counts_str(const Counts *c, char *buf, size_t n) {
    size_t len = 0;
    buf[0] = '\0';
    for (int k = 0; k < K_COUNT && len < n; k++)
        if (c->n[k])
            len += (size_t)snprintf(buf + len, n - len, "%s%s %ld", len ? ", " : "",
                                    kind_names[k], c->n[k]);
    if (!len)
        snprintf(buf, n, "none");
    return buf;
}

/* The events of the last window, one per line with the caller's library and
 * symbol, for failure messages. Call with counting stopped. */
static const char *events_str(char *buf, size_t n) {
    size_t len = 0;
    int ne = atomic_load(&nevents);
    buf[0] = '\0';
    for (int i = 0; i < ne && i < MAX_EVENTS && len < n; i++) {
        const Event *e = &events[i];
        Dl_info info = {0};
        const char *lib = "?", *sym = "?";
        if (e->caller && dladdr(e->caller, &info)) {
            lib = info.dli_fname ? strrchr(info.dli_fname, '/') ? strrchr(info.dli_fname, '/') + 1
                                                                : info.dli_fname
                                 : "?";
            sym = info.dli_sname ? info.dli_sname : "?";
        }
        if (e->kind == K_FREE)
            len += (size_t)snprintf(buf + len, n - len, "\n  free from %s (%s)", lib, sym);
        else
            len += (size_t)snprintf(buf + len, n - len, "\n  %s(%zu) from %s (%s)",
                                    kind_names[e->kind], e->size, lib, sym);
    }
    if (ne > MAX_EVENTS && len < n)
        snprintf(buf + len, n - len, "\n  ... %d more", ne - MAX_EVENTS);
    return buf;
}

/* ---- the interposers --------------------------------------------------------------
 * Without ASan: the malloc family, forwarded to glibc's own entry points. */
#ifndef NOALLOC_ASAN
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void __libc_free(void *p);
extern void *__libc_memalign(size_t align, size_t size);
extern void *__libc_valloc(size_t size);
extern void *__libc_pvalloc(size_t size);

void *malloc(size_t size) {
    note(K_MALLOC, size, __builtin_return_address(0));
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size) {
    note(K_CALLOC, n * size, __builtin_return_address(0));
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size) {
    note(K_REALLOC, size, __builtin_return_address(0));
    return __libc_realloc(p, size);
}

void free(void *p) {
    if (p)
        note(K_FREE, 0, __builtin_return_address(0));
    __libc_free(p);
}

int posix_memalign(void **out, size_t align, size_t size) {
    note(K_MEMALIGN, size, __builtin_return_address(0));
    if (align % sizeof(void *) != 0 || (align & (align - 1)) != 0)
        return EINVAL;
    void *p = __libc_memalign(align, size);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

void *aligned_alloc(size_t align, size_t size) {
    note(K_MEMALIGN, size, __builtin_return_address(0));
    return __libc_memalign(align, size);
}

void *memalign(size_t align, size_t size) {
    note(K_MEMALIGN, size, __builtin_return_address(0));
    return __libc_memalign(align, size);
}

void *valloc(size_t size) {
    note(K_MEMALIGN, size, __builtin_return_address(0));
    return __libc_valloc(size);
}

void *pvalloc(size_t size) {
    note(K_MEMALIGN, size, __builtin_return_address(0));
    return __libc_pvalloc(size);
}

static bool counting_installed(void) { return true; }
#else
/* Under ASan: its allocator calls these for every allocation and free. */
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));

static void asan_malloc_hook(const volatile void *p, size_t size) {
    (void)p;
    note(K_MALLOC, size, NULL);
}

static void asan_free_hook(const volatile void *p) {
    (void)p;
    note(K_FREE, 0, NULL);
}

static bool counting_installed(void) {
    static int installed;
    if (!installed)
        installed = __sanitizer_install_malloc_and_free_hooks(asan_malloc_hook, asan_free_hook);
    return installed != 0;
}
#endif

/* mmap straight to the system call (OpenBLAS maps its GEMM buffers with
 * it). glibc's own internal mappings (large mallocs, thread stacks) do not
 * come through here. */
void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    note(K_MMAP, len, __builtin_return_address(0));
    return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

/* OpenBLAS's work buffers (driver/others/memory.c), as runtime/blas.c
 * uses them. */
extern void *blas_memory_alloc(int procpos);
extern void blas_memory_free(void *buffer);

/* ---- models and data ------------------------------------------------------------- */

typedef struct Case {
    const char *path; /* a model file, or a name for text */
    const char *text; /* NULL: read path (relative to the source root) */
    int64_t batch;
} Case;

/* x[B, 32] -> 64 relu, dropout 0.5 -> 1 logit, bce_logits, momentum SGD,
 * clip_norm. */
static const char dropout_momentum_nn[] =
    "input x[B, 32]\n"
    "input t[B, 1]\n"
    "h = dense(x, 64, relu)\n"
    "h = dropout(h, 0.5)\n"
    "z = dense(h, 1)\n"
    "output p = sigmoid(z)\n"
    "loss = bce_logits(z, t)\n"
    "train {\n"
    "  optimizer = momentum(lr = 0.05, beta = 0.9)\n"
    "  clip_norm = 1\n"
    "  batch = 16\n"
    "}\n";

static const Case cases[] = {
    {"examples/mnist_mlp.nn", NULL, 64},
    {"examples/nplm.nn", NULL, 128},
    {"examples/sentiment.nn", NULL, 32},
    {"dropout_momentum.nn", dropout_momentum_nn, 16},
};

static Compiled *compile_case(const Case *k) {
    if (k->text)
        return compile_model(k->path, k->text, k->batch, 4);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", GRADC_SOURCE_DIR, k->path);
    return compile_file(path, k->batch, 4);
}

/* n rows for every input of m: floats in [0, 1), ints in [0, limit) (or
 * {0, 1} without a limit), from a fixed seed. */
static RtDataset synthetic(const RtModel *m, int64_t n) {
    RtDataset d;
    RtError err;
    if (rt_dataset_alloc(&d, m, n, NULL, "synthetic", &err) != RT_OK)
        fail_msg("%s", err.msg);
    RtRng r;
    rt_rng_seed(&r, 42);
    for (int i = 0; i < m->ninputs; i++) {
        const RtTensor *t = &m->inputs[i];
        int64_t count = n * d.row_elems[i];
        for (int64_t k = 0; k < count; k++) {
            if (t->dtype == RT_INT)
                ((int32_t *)d.data[i])[k] =
                    (int32_t)rt_rng_below(&r, t->limit > 0 ? (uint64_t)t->limit : 2);
            else
                rt_store_float(d.data[i], m->elem_size, k, rt_rng_uniform(&r));
        }
    }
    return d;
}

static RtSession fresh_session(const RtModel *m) {
    RtSession s;
    RtError err;
    if (rt_session_init(&s, m, 3, &err) != RT_OK)
        fail_msg("%s", err.msg);
    rt_init_params(&s);
    return s;
}

static char log_path[] = "/tmp/gradc_test_noalloc_XXXXXX";

/* rt_train for `steps` steps of a fresh session, with a held-out split,
 * progress lines (to /dev/null) and a log; the calls it makes. */
static Counts train_steps(const RtModel *m, const RtDataset *d, int64_t batch, int64_t steps) {
    RtSession s = fresh_session(m);
    FILE *out = fopen("/dev/null", "w");
    assert_non_null(out);
    RtTrainConfig cfg = {.steps = steps, .batch = batch, .seed = 5, .split = 0.2,
                         .log_path = log_path, .out = out};
    RtEpochStats last;
    RtError err;
    count_start();
    RtStatus st = rt_train(&s, d, &cfg, &last, &err);
    Counts c = count_stop();
    if (st != RT_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(s.step, steps);
    assert_true(isfinite(last.loss));
    fclose(out);
    rt_session_free(&s);
    return c;
}

/* ---- tests ----------------------------------------------------------------------- */

static int setup(void **state) {
    (void)state;
    rt_setup(2);
    int fd = mkstemp(log_path);
    if (fd < 0)
        return -1;
    close(fd);
    return counting_installed() ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    unlink(log_path);
    return 0;
}

/* The counting sees calls made inside other libraries (libc's strdup calls
 * malloc; OpenBLAS's mmap: the last test), so a window with nothing in it
 * means nothing was called. */
static void test_counting_sees_calls_from_other_libraries(void **state) {
    (void)state;
    char *(*volatile dup)(const char *) = strdup;
    count_start();
    char *p = dup("allocated inside libc");
    Counts c = count_stop();
    assert_non_null(p);
    assert_int_equal(c.n[K_MALLOC], 1); /* under ASan: its hook, whatever the entry point */
    assert_int_equal(total(&c), 1);
    count_start();
    free(p);
    c = count_stop();
    assert_int_equal(c.n[K_FREE], 1);
    assert_int_equal(total(&c), 1);
}

/* OpenBLAS maps a work buffer when every mapped one is taken (see
 * runtime/blas.c): take them until it maps one; the mmap is seen, from
 * libopenblas. Runs last: the buffer stays mapped, one more than rt_setup
 * mapped, which would hide a missing one from the tests above. */
static void test_counting_sees_openblas_map_a_buffer(void **state) {
    (void)state;
    enum { MAX_TAKEN = 64 };
    void *taken[MAX_TAKEN];
    int ntaken = 0;
    count_start();
    while (ntaken < MAX_TAKEN && atomic_load(&counts[K_MMAP]) == 0)
        taken[ntaken++] = blas_memory_alloc(0);
    Counts c = count_stop();
    for (int i = 0; i < ntaken; i++)
        blas_memory_free(taken[i]);
    assert_int_equal(c.n[K_MMAP], 1);
    assert_int_equal(total(&c), 1);
    Dl_info info = {0};
    assert_true(dladdr(events[0].caller, &info) && info.dli_fname);
    assert_non_null(strstr(info.dli_fname, "openblas"));
}

/* ---- matrix products -------------------------------------------------------------
 * rt_gemm_f32/f64 (runtime/pool.c) over shapes around OpenBLAS's
 * small-matrix kernel that mallocs (a product without transposes of at
 * most 100^3 multiply-adds, n 1 to 8 over a multiple of 16 for float or 1
 * to 4 over 8 for double, k at least 32 or 16): no call to the allocator,
 * and every element equal to a naive product. C starts as NaN when beta is
 * 0 (it must not be read) and the leading dimensions are padded, so a
 * wrong column offset or stride shows. */

enum { GM = 300, GN = 65, GK = 129, PAD = 3 };
static double ga[(GM + PAD) * (GK + PAD)], gb[(GK + PAD) * (GN + PAD)], gc[GM * (GN + PAD)];
static float fa[(GM + PAD) * (GK + PAD)], fb[(GK + PAD) * (GN + PAD)], fc[GM * (GN + PAD)];

/* C[m, n] = op(A) op(B) + beta C naively, from the double copies. */
static double naive_elem(bool ta, bool tb, int i, int j, int k, int lda, int ldb, double c0,
                         double beta) {
    double s = beta * c0;
    for (int l = 0; l < k; l++)
        s += (ta ? ga[l * lda + i] : ga[i * lda + l]) * (tb ? gb[j * ldb + l] : gb[l * ldb + j]);
    return s;
}

/* One product through rt_gemm_f32/f64 on fresh operands: no allocator
 * call, every element right, the padding columns of C untouched. */
static void check_gemm(bool f64, bool ta, bool tb, int m, int n, int k, double beta) {
    int lda = (ta ? m : k) + PAD, ldb = (tb ? k : n) + PAD, ldc = n + PAD;
    uint64_t seed = (uint64_t)(m * 1000003 + n * 1009 + k);
    RtRng r;
    rt_rng_seed(&r, seed);
    for (int i = 0; i < (ta ? k : m) * lda; i++)
        fa[i] = (float)(ga[i] = (double)(float)(2 * rt_rng_uniform(&r) - 1));
    for (int i = 0; i < (tb ? n : k) * ldb; i++)
        fb[i] = (float)(gb[i] = (double)(float)(2 * rt_rng_uniform(&r) - 1));
    for (int i = 0; i < m * ldc; i++)
        fc[i] = (float)(gc[i] = beta == 0 ? NAN : (double)(float)(2 * rt_rng_uniform(&r) - 1));
    static double c0[GM * (GN + PAD)];
    memcpy(c0, gc, sizeof(double) * (size_t)(m * ldc));
    char a[256], ev[4096];
    count_start();
    if (f64)
        rt_gemm_f64(ta, tb, m, n, k, ga, lda, gb, ldb, beta, gc, ldc);
    else
        rt_gemm_f32(ta, tb, m, n, k, fa, lda, fb, ldb, (float)beta, fc, ldc);
    Counts cnt = count_stop();
    if (total(&cnt) != 0)
        fail_msg("rt_gemm_%s(ta %d, tb %d, m %d, n %d, k %d, beta %g) makes %s:%s",
                 f64 ? "f64" : "f32", ta, tb, m, n, k, beta, counts_str(&cnt, a, sizeof a),
                 events_str(ev, sizeof ev));
    double tol = (f64 ? 1e-13 : 1e-5) * (k + 1);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < ldc; j++) {
            double got = f64 ? gc[i * ldc + j] : fc[i * ldc + j];
            if (j >= n) { /* padding: untouched */
                if (!(got == c0[i * ldc + j] || (isnan(got) && isnan(c0[i * ldc + j]))))
                    fail_msg("rt_gemm_%s(ta %d, tb %d, m %d, n %d, k %d) wrote C[%d, %d] past "
                             "column n",
                             f64 ? "f64" : "f32", ta, tb, m, n, k, i, j);
                continue;
            }
            double want = naive_elem(ta, tb, i, j, k, lda, ldb, beta == 0 ? 0 : c0[i * ldc + j],
                                     beta);
            if (!(fabs(got - want) <= tol))
                fail_msg("rt_gemm_%s(ta %d, tb %d, m %d, n %d, k %d, beta %g): C[%d, %d] = %.9g, "
                         "want %.9g",
                         f64 ? "f64" : "f32", ta, tb, m, n, k, beta, i, j, got, want);
        }
}

static void test_matrix_products_allocate_nothing_and_match_naive(void **state) {
    (void)state;
    static const int ms[] = {1, 5, 33, 300};
    static const int ns[] = {1, 2, 4, 5, 8, 9, 17, 20, 24, 25, 33, 65};
    static const int ks[] = {1, 15, 16, 31, 32, 64, 129};
    /* No warm-up: rt_setup mapped OpenBLAS's work buffers, one per pool
     * thread, and nothing before this test ran a product. */
    for (int f64 = 0; f64 < 2; f64++)
        for (int t = 0; t < 4; t++)
            for (int bi = 0; bi < 2; bi++)
                for (size_t i = 0; i < sizeof ms / sizeof *ms; i++)
                    for (size_t j = 0; j < sizeof ns / sizeof *ns; j++)
                        for (size_t l = 0; l < sizeof ks / sizeof *ks; l++)
                            check_gemm(f64, t & 1, t >> 1, ms[i], ns[j], ks[l], bi);
}

/* For one model: rt_train for K and for K + M steps make the same calls
 * (M crosses three epochs: 4 steps an epoch), and the step run by hand
 * makes none, from a fresh session's first step on. */
static void check_case(const Case *k) {
    enum { K = 2, M = 12, STEPS = 20 };
    char a[256], b[256], ev[4096];
    Compiled *c = compile_case(k);
    const RtModel *m = c->rm;
    /* 4 training batches and one held out (split 0.2). */
    RtDataset d = synthetic(m, 5 * k->batch);

    Counts first = train_steps(m, &d, k->batch, K);
    Counts ck = train_steps(m, &d, k->batch, K);
    Counts ckm = train_steps(m, &d, k->batch, K + M);
    for (int i = 0; i < K_COUNT; i++)
        if (ck.n[i] != ckm.n[i])
            fail_msg("%s: rt_train makes %s in %d steps but %s in %d steps; the longer run's "
                     "calls:%s",
                     k->path, counts_str(&ck, a, sizeof a), K, counts_str(&ckm, b, sizeof b),
                     K + M, events_str(ev, sizeof ev));

    /* The step by hand: a batch of rows, the per-step hypers, the program. */
    RtSession s = fresh_session(m);
    int64_t rows[256];
    assert_true(k->batch <= 256);
    for (int64_t r = 0; r < k->batch; r++)
        rows[r] = (r * 7) % d.n;
    const RtTensor *loss = &m->train.roots[0];
    double loss0 = NAN, loss1 = NAN;
    count_start();
    for (int i = 0; i < STEPS; i++) {
        rt_dataset_gather(&s, &d, rows, k->batch);
        rt_step_hypers(&s, 1);
        m->train.fn(s.arena, k->batch);
        s.step++;
        if (i == 0)
            loss0 = rt_load_float(rt_ptr(&s, loss), m->elem_size, 0);
    }
    Counts steps = count_stop();
    loss1 = rt_load_float(rt_ptr(&s, loss), m->elem_size, 0);
    if (total(&steps) != 0)
        fail_msg("%s: %d training steps make %s:%s", k->path, STEPS,
                 counts_str(&steps, a, sizeof a), events_str(ev, sizeof ev));
    /* The steps ran: the same batch, trained on 19 times, has a lower loss. */
    assert_true(isfinite(loss0) && isfinite(loss1));
    assert_true(loss1 < loss0);

    /* The same steps through gradc build --lib's entry point, which also
     * checks the caller's rows: rows [0, batch) of the dataset, packed. */
    RtSession ls = fresh_session(m);
    const void *const *inputs = (const void *const *)d.data;
    double lib0 = NAN, lib1 = NAN;
    RtError err;
    count_start();
    for (int i = 0; i < STEPS; i++) {
        RtLibCode code = rt_lib_train_step(&ls, inputs, k->batch, 1, i == 0 ? &lib0 : &lib1, &err);
        if (code != RT_LIB_OK) {
            count_stop();
            fail_msg("%s: rt_lib_train_step: %s", k->path, err.msg);
        }
    }
    Counts lib = count_stop();
    if (total(&lib) != 0)
        fail_msg("%s: %d rt_lib_train_step calls make %s:%s", k->path, STEPS,
                 counts_str(&lib, a, sizeof a), events_str(ev, sizeof ev));
    assert_true(isfinite(lib0) && isfinite(lib1) && lib1 < lib0);

    print_message("%s: first rt_train of the model: %s; each later call: %s; per step: "
                  "none\n",
                  k->path, counts_str(&first, a, sizeof a), counts_str(&ck, b, sizeof b));
    rt_session_free(&ls);
    rt_session_free(&s);
    rt_dataset_free(&d);
    compiled_free(c);
}

static void test_mnist_mlp_adam_dropout_step_allocates_nothing(void **state) {
    (void)state;
    check_case(&cases[0]);
}

static void test_nplm_embedding_adam_step_allocates_nothing(void **state) {
    (void)state;
    check_case(&cases[1]);
}

static void test_sentiment_embedding_mean_sgd_step_allocates_nothing(void **state) {
    (void)state;
    check_case(&cases[2]);
}

static void test_dropout_momentum_clip_norm_step_allocates_nothing(void **state) {
    (void)state;
    check_case(&cases[3]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counting_sees_calls_from_other_libraries),
        cmocka_unit_test(test_matrix_products_allocate_nothing_and_match_naive),
        cmocka_unit_test(test_mnist_mlp_adam_dropout_step_allocates_nothing),
        cmocka_unit_test(test_nplm_embedding_adam_step_allocates_nothing),
        cmocka_unit_test(test_sentiment_embedding_mean_sgd_step_allocates_nothing),
        cmocka_unit_test(test_dropout_momentum_clip_norm_step_allocates_nothing),
        cmocka_unit_test(test_counting_sees_openblas_map_a_buffer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
