/* jit.c: LLVM's native target, host target machines, the optimisation
 * pipeline, ORC LLJIT and the symbols JIT'd code may call, assembly dumps.
 *
 * Owns every call into the LLVM-C target, pass-builder and Orc APIs, and the
 * ownership rules that go with them (see /work/shared/notes/llvm-c.md §2).
 * Must not build IR of its own (lower.c and mathfn.c do) and must not print:
 * every failure comes back as a malloc'ed message.
 *
 * Code models: cg_host_target_machine makes the PIC, default (small) code
 * model machine that is right for optimising modules, dumping assembly and
 * emitting AOT objects. The JIT gets its own machine, made the same way but
 * with LLVMCodeModelJITDefault (large on x86-64: JIT'd code and the host's
 * functions may be further apart than ±2 GiB). Both use the host CPU and its
 * features, so the data layouts agree and a module optimised with the first
 * can be compiled by the second. cg_jit_target_machine is that machine, for
 * the objects cg_compile's threads compile for the JIT to link
 * (cg_emit_object_memory, cg_jit_add_object): the code the JIT would have
 * compiled from the module itself.
 */
#include "cg_internal.h"

#include "../ir/base.h"
#include "../runtime/rt.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Session error reports kept per operation; older text is dropped past this. */
enum { REPORT_CAP = 16384 };

struct CgJit {
    LLVMOrcLLJITRef lljit;
    LLVMOrcThreadSafeContextRef tsc; /* kept so cg_jit_context stays valid */
    LLVMContextRef ctx;
    /* Messages from the execution session's error reporter since the last
     * cg_jit_add / cg_jit_lookup began (NUL-terminated, "; "-separated). */
    pthread_mutex_t lock;
    char reports[REPORT_CAP];
    size_t nreports;
};

/* ---- errors ---------------------------------------------------------------- */

/* *err = a malloc'ed formatted message (if err is not NULL). */
__attribute__((format(printf, 2, 3))) static void set_err(char **err, const char *fmt, ...) {
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        *err = strdup(fmt);
        return;
    }
    *err = malloc((size_t)n + 1);
    if (*err) {
        va_start(ap, fmt);
        vsnprintf(*err, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
}

/* Consume e and return its message as a malloc'ed string. */
static char *take_error(LLVMErrorRef e) {
    char *m = LLVMGetErrorMessage(e);
    char *s = strdup(m ? m : "unknown LLVM error");
    LLVMDisposeErrorMessage(m);
    return s;
}

/* ---- target ---------------------------------------------------------------- */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_native(void) {
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
}

void cg_llvm_init(void) { pthread_once(&init_once, init_native); }

static LLVMCodeGenOptLevel codegen_level(int opt_level) {
    gc_assert(opt_level >= 0 && opt_level <= 3);
    static const LLVMCodeGenOptLevel levels[] = {LLVMCodeGenLevelNone, LLVMCodeGenLevelLess,
                                                 LLVMCodeGenLevelDefault,
                                                 LLVMCodeGenLevelAggressive};
    return levels[opt_level];
}

/* A PIC target machine for the host triple with the given code model: for
 * `cpu` (and no extra features), or for the host's CPU and features when
 * cpu is NULL; NULL and *err on failure. */
static LLVMTargetMachineRef make_tm(const char *cpu_name, LLVMCodeGenOptLevel level,
                                    LLVMCodeModel cm, char **err) {
    cg_llvm_init();
    char *triple = LLVMGetDefaultTargetTriple();
    char *msg = NULL;
    LLVMTargetRef target;
    LLVMTargetMachineRef tm = NULL;
    if (LLVMGetTargetFromTriple(triple, &target, &msg)) {
        set_err(err, "no LLVM target for %s: %s", triple, msg ? msg : "");
    } else {
        char *cpu = cpu_name ? NULL : LLVMGetHostCPUName();
        char *features = cpu_name ? NULL : LLVMGetHostCPUFeatures();
        tm = LLVMCreateTargetMachine(target, triple, cpu_name ? cpu_name : cpu,
                                     cpu_name ? "" : features, level, LLVMRelocPIC, cm);
        if (!tm)
            set_err(err, "cannot create a target machine for %s (cpu %s)", triple,
                    cpu_name ? cpu_name : cpu);
        LLVMDisposeMessage(cpu);
        LLVMDisposeMessage(features);
    }
    LLVMDisposeMessage(msg);
    LLVMDisposeMessage(triple);
    return tm;
}

LLVMTargetMachineRef cg_host_target_machine(int opt_level, char **err) {
    return make_tm(NULL, codegen_level(opt_level), LLVMCodeModelDefault, err);
}

LLVMTargetMachineRef cg_target_machine(const char *cpu, int opt_level, char **err) {
    return make_tm(cpu, codegen_level(opt_level), LLVMCodeModelDefault, err);
}

LLVMTargetMachineRef cg_jit_target_machine(char **err) {
    return make_tm(NULL, LLVMCodeGenLevelDefault, LLVMCodeModelJITDefault, err);
}


/* Give m the triple and data layout of tm. */
static void set_target(LLVMModuleRef m, LLVMTargetMachineRef tm) {
    char *triple = LLVMGetTargetMachineTriple(tm);
    LLVMSetTarget(m, triple);
    LLVMDisposeMessage(triple);
    LLVMTargetDataRef dl = LLVMCreateTargetDataLayout(tm);
    LLVMSetModuleDataLayout(m, dl);
    LLVMDisposeTargetData(dl);
}

/* Run LLVM's verifier on m; false and *err = "invalid LLVM IR: <what>" if it
 * is broken. Nothing else may run on broken IR: the optimiser and the code
 * generator assert or crash on it. */
static bool verify(LLVMModuleRef m, char **err) {
    char *msg = NULL;
    bool bad = LLVMVerifyModule(m, LLVMReturnStatusAction, &msg);
    if (bad)
        set_err(err, "invalid LLVM IR: %s", msg ? msg : "");
    LLVMDisposeMessage(msg);
    return !bad;
}

bool cg_verify(LLVMModuleRef m, LLVMTargetMachineRef tm, char **err) {
    set_target(m, tm);
    return verify(m, err);
}

bool cg_optimize(LLVMModuleRef m, LLVMTargetMachineRef tm, int opt_level, char **err) {
    return cg_verify(m, tm, err) && cg_run_passes(m, tm, opt_level, err);
}

bool cg_run_passes(LLVMModuleRef m, LLVMTargetMachineRef tm, int opt_level, char **err) {
    gc_assert(opt_level >= 0 && opt_level <= 3);
    static const char *const pipelines[] = {"default<O0>", "default<O1>", "default<O2>",
                                            "default<O3>"};
    LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
    LLVMErrorRef e = LLVMRunPasses(m, pipelines[opt_level], tm, opts);
    LLVMDisposePassBuilderOptions(opts);
    if (e) {
        char *s = take_error(e);
        set_err(err, "LLVM optimisation failed: %s", s ? s : "");
        free(s);
        return false;
    }
    return true;
}

/* Cloning broken IR crashes too, so m is verified before it is cloned. */
char *cg_emit_asm(LLVMModuleRef m, LLVMTargetMachineRef tm, char **err) {
    if (!verify(m, err))
        return NULL;
    LLVMModuleRef clone = LLVMCloneModule(m);
    set_target(clone, tm);
    char *text = NULL, *msg = NULL;
    LLVMMemoryBufferRef buf = NULL;
    if (LLVMTargetMachineEmitToMemoryBuffer(tm, clone, LLVMAssemblyFile, &msg, &buf)) {
        set_err(err, "LLVM code generation failed: %s", msg ? msg : "");
    } else {
        size_t n = LLVMGetBufferSize(buf);
        text = malloc(n + 1);
        if (text) {
            memcpy(text, LLVMGetBufferStart(buf), n);
            text[n] = '\0';
        } else {
            set_err(err, "out of memory for %zu bytes of assembly", n);
        }
        LLVMDisposeMemoryBuffer(buf);
    }
    LLVMDisposeMessage(msg);
    LLVMDisposeModule(clone);
    return text;
}

bool cg_emit_object_memory(LLVMModuleRef m, LLVMTargetMachineRef tm, LLVMMemoryBufferRef *obj,
                           char **err) {
    *obj = NULL;
    if (!verify(m, err))
        return false;
    char *msg = NULL;
    bool ok = !LLVMTargetMachineEmitToMemoryBuffer(tm, m, LLVMObjectFile, &msg, obj);
    if (!ok) {
        set_err(err, "LLVM code generation failed: %s", msg ? msg : "");
        *obj = NULL;
    }
    LLVMDisposeMessage(msg);
    return ok;
}

bool cg_emit_object_file(LLVMModuleRef m, LLVMTargetMachineRef tm, const char *path, char **err) {
    if (!verify(m, err))
        return false;
    char *msg = NULL;
    bool ok = !LLVMTargetMachineEmitToFile(tm, m, (char *)path, LLVMObjectFile, &msg);
    if (!ok)
        set_err(err, "cannot write the object file '%s': %s", path, msg ? msg : "");
    LLVMDisposeMessage(msg);
    return ok;
}

/* ---- the JIT --------------------------------------------------------------- */

/* The execution session's error reporter: materialisation failures (such as
 * "Symbols not found: [ f ]") arrive here, not in the lookup's own error. */
static void report_error(void *ud, LLVMErrorRef e) {
    CgJit *j = ud;
    char *msg = LLVMGetErrorMessage(e);
    pthread_mutex_lock(&j->lock);
    size_t room = REPORT_CAP - j->nreports; /* >= 1: the NUL always fits */
    int n = snprintf(j->reports + j->nreports, room, "%s%s", j->nreports ? "; " : "",
                     msg ? msg : "");
    if (n > 0)
        j->nreports += (size_t)n < room ? (size_t)n : room - 1;
    pthread_mutex_unlock(&j->lock);
    LLVMDisposeErrorMessage(msg);
}

static void reports_clear(CgJit *j) {
    pthread_mutex_lock(&j->lock);
    j->nreports = 0;
    j->reports[0] = '\0';
    pthread_mutex_unlock(&j->lock);
}

/* Consume e and set *err to "<what>: <e's message>[ (<session reports>)]". */
static void set_jit_err(CgJit *j, char **err, const char *what, LLVMErrorRef e) {
    char *s = take_error(e);
    pthread_mutex_lock(&j->lock);
    if (j->nreports)
        set_err(err, "%s: %s (JIT session: %s)", what, s ? s : "", j->reports);
    else
        set_err(err, "%s: %s", what, s ? s : "");
    pthread_mutex_unlock(&j->lock);
    free(s);
}

/* What JIT'd code may call, at addresses taken here: taking them makes the
 * linker keep libopenblas and libm even under --as-needed, and defining them
 * as absolute symbols needs no dynamic symbol lookup. Plain libm names
 * because LLVM lowers llvm.exp.f64 to `exp`, llvm.pow.f32 to `powf`, and
 * so on; erf, erfc and log1p for float64 gelu and softplus; sin and cos for
 * schedules (llvm.sin, llvm.cos); memset/memcpy/
 * memmove because it turns loops into them; the runtime's matrix products
 * and parallel loops (pool.c) and the gradient average of a data-parallel
 * run (dist.c). */
#define JIT_SYMBOLS(X)                                                                        \
    X(cblas_sgemm) X(cblas_dgemm) X(exp) X(expf) X(exp2) X(exp2f) X(log) X(logf) X(log2)      \
    X(log2f) X(tanh) X(tanhf) X(pow) X(powf) X(sqrt) X(sqrtf) X(floor) X(floorf) X(ceil)      \
    X(ceilf) X(fmod) X(fmodf) X(erf) X(erff) X(erfc) X(erfcf) X(log1p) X(log1pf) X(sin)       \
    X(sinf) X(cos) X(cosf) X(memset) X(memcpy) X(memmove) X(rt_gemm_f32) X(rt_gemm_f64)        \
    X(rt_parallel_for) X(rt_profile_clock) X(rt_dist_sync)

/* Define JIT_SYMBOLS in jd as absolute, exported, callable symbols. */
static LLVMErrorRef define_host_symbols(LLVMOrcLLJITRef lljit, LLVMOrcJITDylibRef jd) {
#define SYM_NAME(s) #s,
#define SYM_ADDR(s) (uintptr_t)&s,
    static const char *const names[] = {JIT_SYMBOLS(SYM_NAME)};
    const uintptr_t addrs[] = {JIT_SYMBOLS(SYM_ADDR)};
#undef SYM_NAME
#undef SYM_ADDR
    enum { N = sizeof(names) / sizeof(names[0]) };
    LLVMOrcCSymbolMapPair pairs[N];
    for (int i = 0; i < N; i++) {
        pairs[i].Name = LLVMOrcLLJITMangleAndIntern(lljit, names[i]);
        pairs[i].Sym.Address = (LLVMOrcExecutorAddress)addrs[i];
        pairs[i].Sym.Flags.GenericFlags =
            LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable;
        pairs[i].Sym.Flags.TargetFlags = 0;
    }
    /* Takes the interned names; jd owns the unit on success only. */
    LLVMOrcMaterializationUnitRef mu = LLVMOrcAbsoluteSymbols(pairs, N);
    LLVMErrorRef e = LLVMOrcJITDylibDefine(jd, mu);
    if (e)
        LLVMOrcDisposeMaterializationUnit(mu);
    return e;
}

CgJit *cg_jit_new(char **err) {
    CgJit *j = calloc(1, sizeof *j);
    if (!j) {
        set_err(err, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&j->lock, NULL);
    LLVMTargetMachineRef tm = cg_jit_target_machine(err);
    if (!tm) {
        cg_jit_free(j);
        return NULL;
    }
    /* tm -> jtmb (tm is destroyed there) -> builder -> LLJIT, even on failure. */
    LLVMOrcJITTargetMachineBuilderRef jtmb =
        LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm);
    LLVMOrcLLJITBuilderRef builder = LLVMOrcCreateLLJITBuilder();
    LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(builder, jtmb);
    LLVMErrorRef e = LLVMOrcCreateLLJIT(&j->lljit, builder);
    if (e) {
        j->lljit = NULL;
        char *s = take_error(e);
        set_err(err, "cannot create the JIT: %s", s ? s : "");
        free(s);
        cg_jit_free(j);
        return NULL;
    }
    LLVMOrcExecutionSessionSetErrorReporter(LLVMOrcLLJITGetExecutionSession(j->lljit),
                                            report_error, j);
    j->tsc = LLVMOrcCreateNewThreadSafeContext();
    j->ctx = LLVMOrcThreadSafeContextGetContext(j->tsc);

    LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(j->lljit);
    e = define_host_symbols(j->lljit, jd);
    if (e) {
        set_jit_err(j, err, "cannot define the host symbols", e);
        cg_jit_free(j);
        return NULL;
    }
    /* Fallback for anything else in the process's global symbol scope. */
    LLVMOrcDefinitionGeneratorRef gen;
    e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(
        &gen, LLVMOrcLLJITGetGlobalPrefix(j->lljit), NULL, NULL);
    if (e) {
        set_jit_err(j, err, "cannot search the process for symbols", e);
        cg_jit_free(j);
        return NULL;
    }
    LLVMOrcJITDylibAddGenerator(jd, gen); /* jd takes the generator */
    return j;
}

LLVMContextRef cg_jit_context(CgJit *j) { return j->ctx; }

/* m is verified again here: code generation on broken IR would crash the
 * process, and a module that skipped cg_optimize would reach it. */
bool cg_jit_add(CgJit *j, LLVMModuleRef m, char **err) {
    if (LLVMGetModuleContext(m) != j->ctx) {
        LLVMDisposeModule(m); /* ours now, whatever its context */
        set_err(err, "module was not built in the JIT's context (cg_jit_context)");
        return false;
    }
    if (!verify(m, err)) {
        LLVMDisposeModule(m);
        return false;
    }
    reports_clear(j);
    /* m -> tsm -> LLJIT, even on failure. */
    LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(m, j->tsc);
    LLVMErrorRef e =
        LLVMOrcLLJITAddLLVMIRModule(j->lljit, LLVMOrcLLJITGetMainJITDylib(j->lljit), tsm);
    if (e) {
        set_jit_err(j, err, "cannot add the module to the JIT", e);
        return false;
    }
    return true;
}

/* The object's symbols are looked up like a module's; a symbol it needs
 * that nothing defines shows at the first lookup, as for a module. */
bool cg_jit_add_object(CgJit *j, LLVMMemoryBufferRef obj, char **err) {
    reports_clear(j);
    /* obj -> LLJIT, even on failure. */
    LLVMErrorRef e =
        LLVMOrcLLJITAddObjectFile(j->lljit, LLVMOrcLLJITGetMainJITDylib(j->lljit), obj);
    if (e) {
        set_jit_err(j, err, "cannot add the object file to the JIT", e);
        return false;
    }
    return true;
}

/* The error names `name`, then LLVM's reason, then what the session
 * reported while materialising (e.g. "Symbols not found: [ x ]"). */
void *cg_jit_lookup(CgJit *j, const char *name, char **err) {
    reports_clear(j);
    LLVMOrcExecutorAddress addr = 0;
    LLVMErrorRef e = LLVMOrcLLJITLookup(j->lljit, &addr, name);
    if (e) {
        char what[256];
        snprintf(what, sizeof what, "cannot compile or find '%s'", name);
        set_jit_err(j, err, what, e);
        return NULL;
    }
    if (!addr) {
        set_err(err, "'%s' resolved to address 0", name);
        return NULL;
    }
    return (void *)(uintptr_t)addr;
}

void cg_jit_free(CgJit *j) {
    if (!j)
        return;
    if (j->lljit) {
        LLVMErrorRef e = LLVMOrcDisposeLLJIT(j->lljit);
        if (e)
            LLVMConsumeError(e);
    }
    if (j->tsc)
        LLVMOrcDisposeThreadSafeContext(j->tsc);
    pthread_mutex_destroy(&j->lock);
    free(j);
}
