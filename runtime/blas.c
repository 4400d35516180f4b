/* blas.c: process set-up for fast numerics: which OpenBLAS kernels run, how
 * many OpenBLAS threads, and flush-to-zero for denormals.
 *
 * Owns the OpenBLAS core-type workaround: Debian's OpenBLAS 0.3.21
 * (DYNAMIC_ARCH) does not recognise some AVX-512 CPUs (e.g. Sapphire and
 * Emerald Rapids) and falls back to its "Prescott" SSE3 kernels, five times
 * slower: https://github.com/OpenMathLib/OpenBLAS/issues/4267 (fixed in
 * 0.3.25 by https://github.com/OpenMathLib/OpenBLAS/pull/4268). It must not
 * override a core type the user chose with OPENBLAS_CORETYPE, must not leave
 * that variable set for child processes, and must not call any BLAS routine.
 *
 * Also owns mapping OpenBLAS's work buffers up front (map_blas_buffers), so
 * that no matrix product of a training step maps one.
 */
#include "rt_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

/* OpenBLAS's own entry points, declared here so that no particular cblas.h
 * is needed. The two dynamic-arch hooks exist only in DYNAMIC_ARCH builds,
 * so they are weak: with a single-target OpenBLAS they are NULL and the core
 * cannot (and need not) be switched. */
extern char *openblas_get_corename(void);
extern void openblas_set_num_threads(int num_threads);
extern int openblas_get_num_procs(void);
extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));
/* OpenBLAS's work buffers (driver/others/memory.c), weak like the hooks
 * above: NULL with another BLAS. */
extern void *blas_memory_alloc(int procpos) __attribute__((weak));
extern void blas_memory_free(void *buffer) __attribute__((weak));

/* Core names, as openblas_get_corename() spells them, by vector ISA. */
static const char *const avx512_cores[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
static const char *const avx2_cores[] = {"Haswell", "Zen", "SkylakeX", "Cooperlake",
                                         "SapphireRapids"};

static bool name_in(const char *name, const char *const *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(name, list[i]) == 0)
            return true;
    return false;
}

RtCpuFeatures rt_cpu_features(void) {
    RtCpuFeatures f = {0};
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    f.avx512f = __builtin_cpu_supports("avx512f");
    f.avx512bw = __builtin_cpu_supports("avx512bw");
    f.avx512vl = __builtin_cpu_supports("avx512vl");
    f.avx512dq = __builtin_cpu_supports("avx512dq");
    f.avx2 = __builtin_cpu_supports("avx2");
    f.fma = __builtin_cpu_supports("fma");
#endif
    return f;
}

const char *rt_blas_pick_core(const char *corename, const RtCpuFeatures *cpu) {
    const char *core = corename ? corename : "";
    if (cpu->avx512f && cpu->avx512bw && cpu->avx512vl && cpu->avx512dq) {
        if (!name_in(core, avx512_cores, sizeof avx512_cores / sizeof *avx512_cores))
            return "SkylakeX";
        return NULL;
    }
    if (cpu->avx2 && cpu->fma) {
        if (!name_in(core, avx2_cores, sizeof avx2_cores / sizeof *avx2_cores))
            return "Haswell";
        return NULL;
    }
    return NULL;
}

/* Re-run OpenBLAS's kernel selection with OPENBLAS_CORETYPE=core, then take
 * the variable out of the environment again. Requires that no BLAS call is
 * in flight (the kernel tables are swapped under it). */
static void force_core(const char *core) {
    if (!gotoblas_dynamic_init || !gotoblas_dynamic_quit)
        return;
    if (setenv("OPENBLAS_CORETYPE", core, 1) != 0)
        return;
    gotoblas_dynamic_quit();
    gotoblas_dynamic_init();
    unsetenv("OPENBLAS_CORETYPE");
}

/* ---- OpenBLAS's work buffers ------------------------------------------------
 * Every matrix product past OpenBLAS's small-matrix kernels takes a work
 * buffer from a process-wide table (driver/others/memory.c: the first one
 * not in use) for the length of the call, and mmaps a new one (BUFFER_SIZE,
 * 128 MB of address space, touched only as far as used) when every mapped
 * one is in use. How many are in use at once depends on how the pool's
 * products happen to overlap, and on OpenBLAS's own idle threads (one per
 * CPU but one, started when the library loads), each of which takes one
 * for good when it first runs, possibly after this. So the table could
 * otherwise grow at any step of a run. Taking, here, as many at once as the
 * pool's threads and OpenBLAS's could hold maps them all (up to 64). Builds
 * with USE_TLS keep a table per thread instead: each pool thread takes one
 * of its own too. */

enum { MAX_HELD = 64 };

static void take_buffer(void *ctx, int64_t part, int64_t nparts) {
    (void)ctx;
    (void)part;
    (void)nparts;
    blas_memory_free(blas_memory_alloc(0));
}

/* Map the work buffers that the pool and OpenBLAS's threads can use at
 * once, now. */
static void map_blas_buffers(void) {
    if (!blas_memory_alloc || !blas_memory_free)
        return;
    int n = rt_pool_threads() + openblas_get_num_procs() - 1;
    if (n > MAX_HELD)
        n = MAX_HELD;
    void *held[MAX_HELD];
    for (int i = 0; i < n; i++)
        held[i] = blas_memory_alloc(0);
    for (int i = 0; i < n; i++)
        if (held[i])
            blas_memory_free(held[i]);
    rt_parallel_parts(take_buffer, NULL, rt_pool_threads());
}

/* Contract: see rt.h. Safe to call more than once: a second call finds the
 * right core already in place. Must run before any BLAS call of this
 * process is in flight. FTZ/DAZ are per thread: they apply to the calling
 * thread, the one that runs the compiled elementwise code. */
void rt_setup(int threads) {
    const char *user = getenv("OPENBLAS_CORETYPE");
    if (!user || !*user) {
        RtCpuFeatures cpu = rt_cpu_features();
        const char *core = rt_blas_pick_core(openblas_get_corename(), &cpu);
        if (core)
            force_core(core);
    }
    /* The pool splits the products; OpenBLAS's own threads would spin
     * beside it (pool.c). */
    openblas_set_num_threads(1);
    rt_pool_setup(threads);
    map_blas_buffers();
#if defined(__x86_64__)
    _mm_setcsr(_mm_getcsr() | 0x8040); /* FTZ (bit 15) | DAZ (bit 6) */
#endif
}

const char *rt_blas_corename(void) {
    const char *name = openblas_get_corename();
    return name ? name : "unknown";
}
