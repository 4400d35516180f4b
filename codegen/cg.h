/* cg.h: the code generator: planned graph programs to native code.
 *
 * Each program becomes one function, `void <model>_<program>(void *arena,
 * int64_t batch)`, built from the program's kernels (ir.h) and the memory
 * plan, optimised with the O2 pipeline for the host CPU and compiled to
 * machine code for ORC LLJIT. Programs share nothing but the runtime's
 * symbols, and a program calls its parallel loops through the runtime's
 * pool, never inlined, so cg_compile shares the programs and their
 * parallel loops out between threads: each thread lowers its part into a
 * module of its own (its own LLVM context, arena and target machines),
 * optimises it and compiles it to an object file in memory, and the JIT
 * links the objects. With one thread, or when the IR text is wanted
 * (gradc emit), all programs are one module that the JIT compiles itself;
 * every function's code is the same either way.
 * Matrix products call the runtime's rt_gemm_f32 / rt_gemm_f64; fused
 * loops are vectorised, including exp, log, tanh and sigmoid (inline
 * polynomials, no libm call per element).
 */
#ifndef GRADC_CG_H
#define GRADC_CG_H

#include "../ir/ir.h"
#include "../runtime/rt.h"

typedef struct CgOptions {
    int elem_size;   /* 4: float32, 8: float64 (must equal plan->elem_size) */
    int opt_level;   /* 0..3; 2 by default */
    /* Called, when set, as each stage of code generation ends, with its
     * name, for --time-passes: "llvm-setup" (the target machine, and for
     * cg_compile the JIT), "llvm-lower" (building the LLVM IR),
     * "llvm-verify" (LLVM's verifier), "llvm-opt" (the pass pipeline);
     * then cg_compile's "llvm-ir-text" (keeping the optimised IR as text)
     * and "llvm-jit" (ORC compiles the module to machine code), or
     * cg_emit_object's "llvm-object" (machine code into the object file).
     * cg_compile on threads (no_ir_text) reports "llvm-setup" (the JIT),
     * then "llvm-compile (threads)" (the wall time of the threads lowering,
     * verifying, optimising and compiling their modules; "llvm-compile
     * (cached)" when every module's object came from the object cache,
     * "(threads, some cached)" when some did) and "llvm-link" (the JIT
     * linking the objects and finding the entry points).
     * A stage that fails is not reported, nor any after it. */
    void (*stage)(const char *stage, void *ud);
    void *stage_ud;
    /* cg_compile: do not keep the IR text (cg_llvm_ir and cg_module_asm
     * then return NULL); saves the time of printing the module, for
     * commands that only run the code. Only then may it compile on
     * several threads. */
    bool no_ir_text;
    /* cg_compile with no_ir_text: threads to compile on (at most
     * CG_MAX_THREADS, and one per program and parallel loop); 0: one per
     * CPU the process may run on; 1: one module, compiled by the JIT.
     * Except with 1, each thread's object comes from, or goes to, the
     * object cache on disk (codegen/cache.c, $GRADC_CACHE_DIR). */
    int threads;
    /* Tests only: the module of each program whose bit (1u << ProgramKind)
     * is set gets a function that LLVM's verifier rejects, so that a
     * failure on a compile thread can be provoked. 0 in normal use. */
    unsigned test_break_progs;
} CgOptions;

enum { CG_MAX_THREADS = 4 };

typedef struct CgModule CgModule;

/* Compile every program of plan with roots for the JIT, on o->threads
 * threads. NULL on failure, with the reason in d (LLVM's own message
 * included; one diagnostic per failing thread). */
CgModule *cg_compile(const Graph *g, const Plan *plan, const CgOptions *o, Diags *d);
/* The compiled entry point of a program; NULL if the plan has none. */
RtFn cg_program(const CgModule *m, ProgramKind kind);
/* The module's LLVM IR as text, after optimisation (malloc'ed; free());
 * NULL when it was compiled with no_ir_text. */
char *cg_llvm_ir(const CgModule *m);
/* The host assembly of the optimised module (malloc'ed), or NULL and *err
 * (malloc'ed). */
char *cg_module_asm(const CgModule *m, char **err);
void cg_free(CgModule *m);

/* Ahead of time: lower every program of plan as cg_compile does, optimise
 * for `target` and write a relocatable, position-independent object file
 * at path that defines `void <model>_<program>(void *arena, int64_t batch)`
 * for each program with roots (calling cblas_sgemm/dgemm and libm). target:
 * "native" (the host CPU and all its features: the code cg_compile's JIT
 * runs, so results are bit for bit the JIT's), "x86-64-v3" (AVX2, FMA) or
 * "x86-64-v4" (AVX-512). false with a diagnostic on failure. */
bool cg_emit_object(const Graph *g, const Plan *plan, const CgOptions *o, const char *target,
                    const char *path, Diags *d);
/* The x86 features code built for target needs at run time, as names of
 * GCC's __builtin_cpu_supports ("avx2", "avx512f", ...), NULL-terminated;
 * for "native" those of the host that matter to code generation. NULL for
 * an unknown target. */
const char *const *cg_target_cpu_features(const char *target);

#endif
