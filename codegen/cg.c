/* cg.c: the code generator's entry points (cg.h) and the compiled module.
 *
 * Owns the order of a compile: lower every program (lower.c), verify and
 * optimise for the host (jit.c), keep the optimised IR as text, hand the
 * module to the JIT and look up each program's entry point, telling
 * CgOptions.stage as each stage ends (--time-passes). Every LLVM or
 * JIT failure becomes one diagnostic with LLVM's message; nothing leaks on
 * any path. Must not build IR (lower.c) or call ORC itself (jit.c).
 */
#include "cg.h"

#include "cg_internal.h"

#include <llvm-c/IRReader.h>

#include <stdlib.h>
#include <string.h>

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

/* Lower plan's programs into a module in ctx (*out, which the caller
 * disposes of or hands on, whatever the result), then verify and optimise
 * it for tm, reporting each stage. false with a diagnostic when LLVM
 * refuses it. */
static bool build_module(LLVMContextRef ctx, const Graph *g, const Plan *plan,
                         const CgOptions *opt, LLVMTargetMachineRef tm, Arena *a,
                         const char **names, LLVMModuleRef *out, Diags *d) {
    char *err = NULL;
    LLVMModuleRef mod = *out = cg_lower(ctx, g, plan, opt->elem_size, a, names);
    stage(opt, "llvm-lower");
    if (!cg_verify(mod, tm, &err)) {
        fail(d, "cannot optimise the generated code", err);
        return false;
    }
    stage(opt, "llvm-verify");
    if (!cg_run_passes(mod, tm, opt->opt_level, &err)) {
        fail(d, "cannot optimise the generated code", err);
        return false;
    }
    stage(opt, "llvm-opt");
    return true;
}

static char *copy_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c)
        memcpy(c, s, n);
    return c;
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

    LLVMTargetMachineRef tm = cg_host_target_machine(opt.opt_level, &err);
    if (!tm) {
        fail(d, "cannot target the host CPU", err);
        cg_free(m);
        return NULL;
    }
    stage(&opt, "llvm-setup");
    Arena *a = arena_new();
    const char *names[PROG_COUNT];
    LLVMModuleRef mod;
    bool ok = build_module(cg_jit_context(m->jit), g, plan, &opt, tm, a, names, &mod, d);
    LLVMDisposeTargetMachine(tm);
    if (ok && !opt.no_ir_text) {
        char *text = LLVMPrintModuleToString(mod);
        m->ir = copy_str(text);
        LLVMDisposeMessage(text);
        if (!m->ir) {
            diag_error(d, (Loc){0}, "out of memory for the module's IR text");
            ok = false;
        } else {
            stage(&opt, "llvm-ir-text");
        }
    }
    if (!ok)
        LLVMDisposeModule(mod);
    else if (!(ok = cg_jit_add(m->jit, mod, &err))) /* takes mod */
        fail(d, "cannot JIT the generated code", err);
    for (int k = 0; ok && k < PROG_COUNT; k++) {
        if (!names[k])
            continue;
        void *addr = cg_jit_lookup(m->jit, names[k], &err);
        if (!addr) {
            fail(d, "cannot compile the generated code", err);
            ok = false;
            break;
        }
        _Static_assert(sizeof m->fn[k] == sizeof addr, "function and data pointers differ");
        memcpy(&m->fn[k], &addr, sizeof addr);
    }
    if (ok)
        stage(&opt, "llvm-jit");
    arena_free(a);
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
    bool ok = build_module(ctx, g, plan, &opt, tm, a, names, &mod, d);
    if (ok && !(ok = cg_emit_object_file(mod, tm, path, &err)))
        fail(d, "cannot emit the object file", err);
    else if (ok)
        stage(&opt, "llvm-object");
    LLVMDisposeTargetMachine(tm);
    LLVMDisposeModule(mod);
    LLVMContextDispose(ctx);
    arena_free(a);
    return ok;
}
