/* cg.c: the code generator's entry points (cg.h) and the compiled module.
 *
 * Owns the order of a compile: lower the programs (lower.c), verify and
 * optimise for the host (jit.c), keep the optimised IR as text, hand the
 * code to the JIT and look up each program's entry point, telling
 * CgOptions.stage as each stage ends (--time-passes); and, for a compile on
 * threads, which programs each thread compiles, and whether its object
 * comes from the object cache (cache.c). Every LLVM or JIT
 * failure becomes one diagnostic with LLVM's message; nothing leaks on any
 * path. Must not build IR (lower.c) or call ORC itself (jit.c).
 */
#include "cg.h"

#include "cg_internal.h"

#include <llvm-c/IRReader.h>

#include <pthread.h>
#include <setjmp.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct CgModule {
    CgJit *jit;                 /* owns the compiled code */
    RtFn fn[PROG_COUNT];        /* entry points; NULL for programs without roots */
    char *ir;                   /* the optimised module as text */
    int opt_level;
};

/* diag "<what>: <err>" and free err. */
static void fail(Diags *d, const char *what, char *err) {
    diag_error(d, (Loc){0}, "%s: %s", what, err ? err : "unknown error");
    free(err);
}

/* The stage that just ended, to o->stage (--time-passes). */
static void stage(const CgOptions *o, const char *name) {
    if (o->stage)
        o->stage(name, o->stage_ud);
}

static char *copy_str(const char *s);

/* Lower part `part` of split (every program: NULL) into a module in ctx
 * (*out, which the caller disposes of or hands on, whatever the result)
 * and verify it for tm, reporting each stage when report is set. NULL
 * when all went well, else what failed, with LLVM's message in *err. */
static const char *lower_module(LLVMContextRef ctx, const Graph *g, const Plan *plan,
                                const CgSplit *split, int part, const CgOptions *opt,
                                bool report, LLVMTargetMachineRef tm, Arena *a,
                                const char **names, LLVMModuleRef *out, char **err) {
    LLVMModuleRef mod = *out = cg_lower(ctx, g, plan, opt->elem_size, split, part, a, names);
    if (!mod) {
        char buf[96];
        snprintf(buf, sizeof buf, "a request for %zu bytes failed", arena_oom_size(a));
        *err = copy_str(buf);
        return "out of memory in the code generator";
    }
    for (int k = 0; k < PROG_COUNT; k++)
        if (names[k] && (opt->test_break_progs >> k & 1))
            cg_lower_break(mod);
    if (report)
        stage(opt, "llvm-lower");
    if (!cg_verify(mod, tm, err))
        return "cannot optimise the generated code";
    if (report)
        stage(opt, "llvm-verify");
    return NULL;
}

/* lower_module, then optimise the module for tm. */
static const char *build_module(LLVMContextRef ctx, const Graph *g, const Plan *plan,
                                const CgSplit *split, int part, const CgOptions *opt,
                                bool report, LLVMTargetMachineRef tm, Arena *a,
                                const char **names, LLVMModuleRef *out, char **err) {
    const char *what = lower_module(ctx, g, plan, split, part, opt, report, tm, a, names, out, err);
    if (what)
        return what;
    if (!cg_run_passes(*out, tm, opt->opt_level, err))
        return "cannot optimise the generated code";
    if (report)
        stage(opt, "llvm-opt");
    return NULL;
}

static char *copy_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c)
        memcpy(c, s, n);
    return c;
}

/* Look up the entry point of every program in names (NULL: none) into
 * m->fn. false with a diagnostic when one cannot be compiled or found. */
static bool look_up_programs(CgModule *m, const char *const names[PROG_COUNT], Diags *d) {
    for (int k = 0; k < PROG_COUNT; k++) {
        if (!names[k])
            continue;
        char *err = NULL;
        void *addr = cg_jit_lookup(m->jit, names[k], &err);
        if (!addr) {
            fail(d, "cannot compile the generated code", err);
            return false;
        }
        _Static_assert(sizeof m->fn[k] == sizeof addr, "function and data pointers differ");
        memcpy(&m->fn[k], &addr, sizeof addr);
    }
    return true;
}

/* One module of every program, compiled by the JIT at the first lookup;
 * the IR text kept unless opt->no_ir_text. */
static bool compile_serial(CgModule *m, const Graph *g, const Plan *plan, const CgOptions *opt,
                           Diags *d) {
    char *err = NULL;
    LLVMTargetMachineRef tm = cg_host_target_machine(opt->opt_level, &err);
    if (!tm) {
        fail(d, "cannot target the host CPU", err);
        return false;
    }
    stage(opt, "llvm-setup");
    Arena *a = arena_new();
    if (!a) {
        LLVMDisposeTargetMachine(tm);
        diag_error(d, (Loc){0}, "out of memory for the code generator");
        return false;
    }
    const char *names[PROG_COUNT];
    LLVMModuleRef mod;
    const char *what = build_module(cg_jit_context(m->jit), g, plan, NULL, 0, opt, true, tm, a,
                                    names, &mod, &err);
    LLVMDisposeTargetMachine(tm);
    bool ok = !what;
    if (!ok)
        fail(d, what, err);
    if (ok && !opt->no_ir_text) {
        char *text = LLVMPrintModuleToString(mod);
        m->ir = copy_str(text);
        LLVMDisposeMessage(text);
        if (!m->ir) {
            diag_error(d, (Loc){0}, "out of memory for the module's IR text");
            ok = false;
        } else {
            stage(opt, "llvm-ir-text");
        }
    }
    if (!ok)
        LLVMDisposeModule(mod);
    else if (!(ok = cg_jit_add(m->jit, mod, &err))) /* takes mod */
        fail(d, "cannot JIT the generated code", err);
    if (ok && (ok = look_up_programs(m, names, d)))
        stage(opt, "llvm-jit");
    arena_free(a);
    return ok;
}

/* ---- compiling on threads -------------------------------------------------------
 * Each thread compiles a part (cg_split_programs): a module of its own in
 * an LLVM context of its own, lowered with an arena of its own and
 * optimised and compiled with target machines of its own, so the threads
 * share nothing but the graph and the plan, which they only read. The main
 * thread is one of them; it then hands the objects to the JIT. The
 * machines are those of the one-module path (cg_host_target_machine to
 * optimise, cg_jit_target_machine to compile), and a program's entry
 * point keeps every kernel it would inline, so each function's code is
 * the one-module code and the results are the same to the bit
 * (tests/test_cg_threads.c). */

typedef struct Part {
    /* in */
    const Graph *g;
    const Plan *plan;
    const CgOptions *opt;
    const CgSplit *split;
    int index; /* the part of split this is */
    Arena *a;  /* holds names */
    /* out */
    const char *names[PROG_COUNT];
    LLVMMemoryBufferRef obj; /* the object file; NULL when what is set */
    const char *what;        /* what failed, with LLVM's message in err */
    char *err;
    bool cached; /* obj came from the cache */
} Part;

/* A Part's compile, on any thread: from the cache (cache.c) when the
 * lowered module's object is there, else optimised and compiled, and
 * stored there. cache_dir NULL: no cache. */
static void compile_part(Part *p, const char *cache_dir) {
    char *err = NULL;
    LLVMTargetMachineRef tm = cg_host_target_machine(p->opt->opt_level, &err);
    LLVMTargetMachineRef jtm = tm ? cg_jit_target_machine(&err) : NULL;
    if (!tm || !jtm) {
        p->what = "cannot target the host CPU";
        p->err = err;
        if (tm)
            LLVMDisposeTargetMachine(tm);
        return;
    }
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef mod;
    CgCacheKey key;
    p->what = lower_module(ctx, p->g, p->plan, p->split, p->index, p->opt, false, tm, p->a,
                           p->names, &mod, &err);
    bool keyed = !p->what && cache_dir && cg_cache_key(mod, p->opt->opt_level, &key);
    if (keyed && (p->obj = cg_cache_load(cache_dir, key))) {
        p->cached = true;
    } else if (!p->what) {
        if (!cg_run_passes(mod, tm, p->opt->opt_level, &err))
            p->what = "cannot optimise the generated code";
        else if (!cg_emit_object_memory(mod, jtm, &p->obj, &err))
            p->what = "cannot compile the generated code";
        else if (keyed)
            cg_cache_store(cache_dir, key, p->obj);
    }
    p->err = err;
    LLVMDisposeModule(mod);
    LLVMContextDispose(ctx);
    LLVMDisposeTargetMachine(jtm);
    LLVMDisposeTargetMachine(tm);
}

typedef struct PartThread {
    Part *part;
    const char *cache_dir;
} PartThread;

static void *compile_part_thread(void *arg) {
    PartThread *t = arg;
    compile_part(t->part, t->cache_dir);
    return NULL;
}

/* The work LLVM does on kernel k of program p, roughly, in quarters of a
 * millisecond of one core (measured on bench/mlp_mnist.nn, each kernel in
 * a module of its own): a matrix product is a call, a parallel loop is two
 * functions and the code that splits it, a scalar loop is tiny. */
static long kernel_cost(const Program *p, const Kernel *k) {
    if (!k->fused)
        return k->root->op == OP_MATMUL ? 2 : 28;
    if (shape_numel(&k->root->shape, 2) == 1)
        return 2;
    return cg_kernel_parallel(p, k) ? 36 : 20;
}

/* What cg_split_programs places: a program's entry point with every kernel
 * it inlines (kernel -1), or one of its parallel kernels. */
typedef struct Item {
    int prog, kernel;
    long cost;
} Item;

/* Costliest first; ties in program and kernel order. */
static int by_cost(const void *x, const void *y) {
    const Item *a = x, *b = y;
    if (a->cost != b->cost)
        return a->cost > b->cost ? -1 : 1;
    if (a->prog != b->prog)
        return a->prog - b->prog;
    return a->kernel - b->kernel;
}

/* Contract: cg_internal.h. The items, costliest first, each to the part
 * with the least work so far (the longest-processing-time rule); the first
 * n go to parts 0..n-1 in order, so no part is empty. */
void cg_split_programs(const Plan *plan, int n, Arena *a, CgSplit *split) {
    gc_assert(n >= 1 && n <= CG_MAX_THREADS);
    enum { ENTRY_COST = 6 }; /* the entry point itself: calls */
    int nitems = 0;
    for (int k = 0; k < PROG_COUNT; k++)
        nitems += plan->prog[k].roots.len > 0 ? 1 + plan->prog[k].kernels.len : 0;
    Item *items = arena_alloc(a, sizeof *items * (size_t)(nitems + 1));
    int m = 0;
    for (int k = 0; k < PROG_COUNT; k++) {
        const Program *p = &plan->prog[k];
        split->entry[k] = -1;
        split->kernel[k] = NULL;
        if (p->roots.len == 0)
            continue;
        int entry = m++;
        items[entry] = (Item){k, -1, ENTRY_COST};
        for (int i = 0; i < p->kernels.len; i++) {
            const Kernel *kr = &p->kernels.items[i];
            if (cg_kernel_parallel(p, kr))
                items[m++] = (Item){k, i, kernel_cost(p, kr)};
            else
                items[entry].cost += kernel_cost(p, kr);
        }
    }
    qsort(items, (size_t)m, sizeof *items, by_cost);
    unsigned char *owner[PROG_COUNT] = {NULL};
    long load[CG_MAX_THREADS] = {0};
    split->nparts = m < n ? m : n;
    for (int j = 0; j < m; j++) {
        int to = 0;
        for (int i = 1; i < split->nparts; i++)
            if (load[i] < load[to])
                to = i;
        load[to] += items[j].cost;
        int k = items[j].prog;
        const Program *p = &plan->prog[k];
        if (!owner[k])
            split->kernel[k] = owner[k] = arena_alloc(a, (size_t)p->kernels.len + 1);
        if (items[j].kernel >= 0) {
            owner[k][items[j].kernel] = (unsigned char)to;
            continue;
        }
        split->entry[k] = to;
        for (int i = 0; i < p->kernels.len; i++)
            if (!cg_kernel_parallel(p, &p->kernels.items[i]))
                owner[k][i] = (unsigned char)to;
    }
}

/* cg_split_programs under sa's out-of-memory handler: false, with a
 * diagnostic, when sa ran out. (A function of its own, so that no local
 * of the caller lives across the setjmp.) */
static bool split_guarded(const Plan *plan, int n, Arena *sa, CgSplit *split, Diags *d) {
    jmp_buf oom;
    if (setjmp(oom)) {
        diag_error(d, (Loc){0}, "out of memory in the code generator: a request for %zu bytes "
                                "failed", arena_oom_size(sa));
        return false;
    }
    arena_set_oom(sa, &oom);
    cg_split_programs(plan, n, sa, split);
    arena_set_oom(sa, NULL);
    return true;
}

/* The programs of plan compiled by up to n threads (n >= 1) and linked
 * into m's JIT. */
static bool compile_parallel(CgModule *m, const Graph *g, const Plan *plan, const CgOptions *opt,
                             int n, Diags *d) {
    Arena *sa = arena_new();
    if (!sa) {
        diag_error(d, (Loc){0}, "out of memory for the code generator");
        return false;
    }
    CgSplit split;
    if (!split_guarded(plan, n, sa, &split, d)) {
        arena_free(sa);
        return false;
    }
    n = split.nparts;
    Part parts[CG_MAX_THREADS];
    for (int i = 0; i < n; i++) {
        parts[i] = (Part){.g = g, .plan = plan, .opt = opt, .split = &split, .index = i,
                          .a = arena_new()};
        if (!parts[i].a) {
            for (int j = 0; j < i; j++)
                arena_free(parts[j].a);
            arena_free(sa);
            diag_error(d, (Loc){0}, "out of memory for the code generator");
            return false;
        }
    }
    char dir_buf[4096];
    const char *cache_dir = cg_cache_dir(dir_buf, sizeof dir_buf) ? dir_buf : NULL;
    pthread_t tid[CG_MAX_THREADS];
    PartThread pt[CG_MAX_THREADS];
    bool started[CG_MAX_THREADS] = {false};
    for (int i = 1; i < n; i++) {
        pt[i] = (PartThread){&parts[i], cache_dir};
        started[i] = pthread_create(&tid[i], NULL, compile_part_thread, &pt[i]) == 0;
    }
    compile_part(&parts[0], cache_dir);
    for (int i = 1; i < n; i++) {
        if (started[i])
            pthread_join(tid[i], NULL);
        else /* no thread to be had: compile it here */
            compile_part(&parts[i], cache_dir);
    }
    int hits = 0;
    for (int i = 0; i < n; i++)
        hits += parts[i].cached;
    bool ok = true;
    for (int i = 0; i < n; i++)
        if (parts[i].what) {
            fail(d, parts[i].what, parts[i].err);
            ok = false;
        }
    if (ok)
        stage(opt, hits == n ? "llvm-compile (cached)"
                   : hits > 0 ? "llvm-compile (threads, some cached)"
                              : "llvm-compile (threads)");
    const char *names[PROG_COUNT] = {NULL};
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < PROG_COUNT; k++)
            if (parts[i].names[k])
                names[k] = parts[i].names[k];
        if (!parts[i].obj)
            continue;
        char *err = NULL;
        if (!ok)
            LLVMDisposeMemoryBuffer(parts[i].obj);
        else if (!(ok = cg_jit_add_object(m->jit, parts[i].obj, &err))) /* takes obj */
            fail(d, "cannot JIT the generated code", err);
    }
    if (ok && (ok = look_up_programs(m, names, d)))
        stage(opt, "llvm-link");
    for (int i = 0; i < n; i++)
        arena_free(parts[i].a);
    arena_free(sa);
    return ok;
}

/* The CPUs this process may run on (as the runtime's pool counts them). */
static long available_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    return sysconf(_SC_NPROCESSORS_ONLN);
}

/* Threads for opt: 1 unless the IR text may be dropped; opt->threads, or
 * the CPUs the process may use, up to CG_MAX_THREADS and the number of
 * things cg_split_programs may place apart (programs with roots and their
 * parallel kernels). */
static int compile_threads(const Plan *plan, const CgOptions *opt) {
    if (!opt->no_ir_text || opt->threads == 1)
        return 1;
    long n = opt->threads;
    if (n <= 0)
        n = available_cpus();
    if (n > CG_MAX_THREADS)
        n = CG_MAX_THREADS;
    long items = 0;
    for (int k = 0; k < PROG_COUNT; k++) {
        const Program *p = &plan->prog[k];
        if (p->roots.len == 0)
            continue;
        items++;
        for (int i = 0; i < p->kernels.len; i++)
            items += cg_kernel_parallel(p, &p->kernels.items[i]);
    }
    if (n > items)
        n = items;
    return n < 1 ? 1 : (int)n;
}

CgModule *cg_compile(const Graph *g, const Plan *plan, const CgOptions *o, Diags *d) {
    CgOptions opt = o ? *o : (CgOptions){.elem_size = plan->elem_size, .opt_level = 2};
    gc_assert(opt.elem_size == plan->elem_size);
    gc_assert(opt.opt_level >= 0 && opt.opt_level <= 3);
    cg_llvm_init();
    CgModule *m = calloc(1, sizeof *m);
    if (!m) {
        diag_error(d, (Loc){0}, "out of memory for the compiled module");
        return NULL;
    }
    m->opt_level = opt.opt_level;
    char *err = NULL;
    m->jit = cg_jit_new(&err);
    if (!m->jit) {
        fail(d, "cannot start the JIT", err);
        free(m);
        return NULL;
    }
    int nthreads = compile_threads(plan, &opt);
    bool ok;
    if (opt.no_ir_text && opt.threads != 1) { /* also on one CPU: for the cache */
        stage(&opt, "llvm-setup");
        ok = compile_parallel(m, g, plan, &opt, nthreads, d);
    } else {
        ok = compile_serial(m, g, plan, &opt, d);
    }
    if (!ok) {
        cg_free(m);
        return NULL;
    }
    return m;
}

RtFn cg_program(const CgModule *m, ProgramKind kind) {
    gc_assert((unsigned)kind < PROG_COUNT);
    return m->fn[kind];
}

char *cg_llvm_ir(const CgModule *m) { return m->ir ? copy_str(m->ir) : NULL; }

void cg_free(CgModule *m) {
    if (!m)
        return;
    cg_jit_free(m->jit);
    free(m->ir);
    free(m);
}

/* The kept IR text is parsed into a fresh context, so this works whatever
 * the JIT has done with the module. */
char *cg_module_asm(const CgModule *m, char **err) {
    if (!m->ir) {
        *err = copy_str("the module was compiled without its IR text (no_ir_text)");
        return NULL;
    }
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMMemoryBufferRef buf =
        LLVMCreateMemoryBufferWithMemoryRangeCopy(m->ir, strlen(m->ir), "module");
    LLVMModuleRef mod = NULL;
    char *msg = NULL, *text = NULL;
    if (LLVMParseIRInContext(ctx, buf, &mod, &msg)) { /* takes buf */
        *err = copy_str(msg ? msg : "cannot parse the module's IR");
        LLVMDisposeMessage(msg);
    } else {
        LLVMTargetMachineRef tm = cg_host_target_machine(m->opt_level, err);
        if (tm) {
            text = cg_emit_asm(mod, tm, err);
            LLVMDisposeTargetMachine(tm);
        }
        LLVMDisposeModule(mod);
    }
    LLVMContextDispose(ctx);
    return text;
}

/* ---- ahead of time ---------------------------------------------------------------- */

/* Feature names as __builtin_cpu_supports spells them, and as LLVM does. */
static const struct {
    const char *gcc, *llvm;
} x86_features[] = {
    {"sse4.2", "sse4.2"},     {"avx", "avx"},           {"avx2", "avx2"},
    {"fma", "fma"},           {"bmi", "bmi"},           {"bmi2", "bmi2"},
    {"avx512f", "avx512f"},   {"avx512bw", "avx512bw"}, {"avx512vl", "avx512vl"},
    {"avx512dq", "avx512dq"}, {"avx512cd", "avx512cd"},
};
enum { NX86 = sizeof x86_features / sizeof x86_features[0] };

const char *const *cg_target_cpu_features(const char *target) {
    static const char *const v3[] = {"sse4.2", "avx", "avx2", "fma", "bmi", "bmi2", NULL};
    static const char *const v4[] = {"sse4.2", "avx", "avx2", "fma", "bmi", "bmi2", "avx512f",
                                     "avx512bw", "avx512vl", "avx512dq", "avx512cd", NULL};
    static const char *native[NX86 + 1];
    if (!strcmp(target, "x86-64-v3"))
        return v3;
    if (!strcmp(target, "x86-64-v4"))
        return v4;
    if (strcmp(target, "native"))
        return NULL;
    cg_llvm_init();
    char *features = LLVMGetHostCPUFeatures(); /* "+avx2,-avx512f,..." */
    int n = 0;
    for (int i = 0; i < NX86; i++) {
        size_t len = strlen(x86_features[i].llvm);
        for (const char *p = features; p && *p;) {
            const char *end = strchr(p, ',');
            size_t k = end ? (size_t)(end - p) : strlen(p);
            if (p[0] == '+' && k == len + 1 && !strncmp(p + 1, x86_features[i].llvm, len))
                native[n++] = x86_features[i].gcc;
            p = end ? end + 1 : NULL;
        }
    }
    native[n] = NULL;
    LLVMDisposeMessage(features);
    return native;
}

bool cg_emit_object(const Graph *g, const Plan *plan, const CgOptions *o, const char *target,
                    const char *path, Diags *d) {
    CgOptions opt = o ? *o : (CgOptions){.elem_size = plan->elem_size, .opt_level = 2};
    gc_assert(opt.elem_size == plan->elem_size);
    if (!cg_target_cpu_features(target)) {
        diag_error(d, (Loc){0}, "unknown target '%s' (native, x86-64-v3 or x86-64-v4)", target);
        return false;
    }
    cg_llvm_init();
    char *err = NULL;
    bool native = !strcmp(target, "native");
    LLVMTargetMachineRef tm = native ? cg_host_target_machine(opt.opt_level, &err)
                                     : cg_target_machine(target, opt.opt_level, &err);
    if (!tm) {
        diag_error(d, (Loc){0}, "cannot target %s: %s", target, err ? err : "unknown error");
        free(err);
        return false;
    }
    LLVMContextRef ctx = LLVMContextCreate();
    stage(&opt, "llvm-setup");
    Arena *a = arena_new();
    const char *names[PROG_COUNT];
    LLVMModuleRef mod;
    const char *what =
        build_module(ctx, g, plan, NULL, 0, &opt, true, tm, a, names, &mod, &err);
    bool ok = !what;
    if (!ok)
        fail(d, what, err);
    else if (!(ok = cg_emit_object_file(mod, tm, path, &err)))
        fail(d, "cannot emit the object file", err);
    else
        stage(&opt, "llvm-object");
    LLVMDisposeTargetMachine(tm);
    LLVMDisposeModule(mod);
    LLVMContextDispose(ctx);
    arena_free(a);
    return ok;
}
