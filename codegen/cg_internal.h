/* cg_internal.h: shared by the files of codegen/ only.
 *   jit.c     target machine, optimisation pipeline, ORC LLJIT, symbols
 *   mathfn.c  vectorisable exp, log, tanh, erf, ... as inline IR
 *   lower.c   programs, kernel functions and fused loop kernels to LLVM IR
 *   kernels.c the one-node kernel ops (matmul, reductions, gather, ...);
 *             lower.c and kernels.c share kern.h
 *   cg.c      cg.h's entry points
 */
#ifndef GRADC_CG_INTERNAL_H
#define GRADC_CG_INTERNAL_H

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>
#include <stdbool.h>

#include "cg.h"

/* ---- jit.c ----------------------------------------------------------------- */

typedef struct CgJit CgJit;

/* Initialise LLVM's native target once per process (idempotent). */
void cg_llvm_init(void);
/* A target machine for the host CPU and features, PIC, default code model;
 * NULL and *err (malloc'ed) on failure. Free with LLVMDisposeTargetMachine. */
LLVMTargetMachineRef cg_host_target_machine(int opt_level, char **err);
/* The same for a named CPU ("x86-64-v3") with its own features only. */
LLVMTargetMachineRef cg_target_machine(const char *cpu, int opt_level, char **err);
/* The machine the JIT compiles modules with: the host CPU and features, the
 * JIT's (large) code model, code generation level Default. */
LLVMTargetMachineRef cg_jit_target_machine(char **err);
/* Write m, optimised for tm, as a relocatable object file at path. false and
 * *err (malloc'ed) on failure. */
bool cg_emit_object_file(LLVMModuleRef m, LLVMTargetMachineRef tm, const char *path, char **err);
/* The same into memory: *obj (free with LLVMDisposeMemoryBuffer, or hand
 * it to cg_jit_add_object); NULL and *err on failure. Like
 * cg_emit_object_file, codegen rewrites m: dispose of it afterwards. */
bool cg_emit_object_memory(LLVMModuleRef m, LLVMTargetMachineRef tm, LLVMMemoryBufferRef *obj,
                           char **err);
/* Set m's triple and data layout from tm, verify it, run the
 * "default<O<level>>" pipeline. false and *err (malloc'ed) on failure.
 * The same as cg_verify, then cg_run_passes (timed apart for
 * --time-passes). */
bool cg_optimize(LLVMModuleRef m, LLVMTargetMachineRef tm, int opt_level, char **err);
/* Set m's triple and data layout from tm and run LLVM's verifier on it:
 * false and *err ("invalid LLVM IR: ...") when it is broken. */
bool cg_verify(LLVMModuleRef m, LLVMTargetMachineRef tm, char **err);
/* The "default<O<level>>" pipeline on m, which cg_verify accepted. */
bool cg_run_passes(LLVMModuleRef m, LLVMTargetMachineRef tm, int opt_level, char **err);
/* A JIT for the host. Symbols the generated code may call (cblas_sgemm,
 * cblas_dgemm, and the C library's math functions) are defined as absolute
 * addresses, so they resolve whatever the linker kept. */
CgJit *cg_jit_new(char **err);
/* Takes ownership of m, which must live in the context of
 * cg_jit_context(j). false and *err (malloc'ed, with the session's error
 * reports) on failure. */
bool cg_jit_add(CgJit *j, LLVMModuleRef m, char **err);
/* Takes ownership of obj, an object file compiled by a
 * cg_jit_target_machine (cg_emit_object_memory), and links it into the JIT
 * beside its modules. false and *err on failure. */
bool cg_jit_add_object(CgJit *j, LLVMMemoryBufferRef obj, char **err);

/* ---- cache.c: compiled objects on disk ----------------------------------------
 * Where: $GRADC_CACHE_DIR ("" or "off": no cache), else
 * $XDG_CACHE_HOME/gradc/jit, else $HOME/.cache/gradc/jit. */
typedef struct CgCacheKey {
    uint64_t h[2];
} CgCacheKey;
/* The cache directory into buf (created if missing); false: no cache
 * (also when the directory is not this user's, or others may write it). */
bool cg_cache_dir(char *buf, size_t n);
/* The key of the object that mod (lowered, verified, not yet optimised)
 * compiles to at opt_level on this host with this LLVM: a 128-bit hash of
 * its bitcode, LLVM's version, the host's triple, CPU and features. false
 * when LLVM cannot write the bitcode. */
bool cg_cache_key(LLVMModuleRef mod, int opt_level, CgCacheKey *key);
/* The object stored under key in dir, or NULL (a miss; an entry that does
 * not check out is removed). */
LLVMMemoryBufferRef cg_cache_load(const char *dir, CgCacheKey key);
/* Store obj under key in dir (atomically; silently nothing on failure),
 * then drop the least recently used entries past the cache's size. */
void cg_cache_store(const char *dir, CgCacheKey key, LLVMMemoryBufferRef obj);
LLVMContextRef cg_jit_context(CgJit *j);
/* The address of a defined function; NULL and *err on failure. The first
 * lookup compiles the module. */
void *cg_jit_lookup(CgJit *j, const char *name, char **err);
void cg_jit_free(CgJit *j);
/* Assembly text for m (a clone is emitted; m is unchanged). malloc'ed. */
char *cg_emit_asm(LLVMModuleRef m, LLVMTargetMachineRef tm, char **err);

/* ---- mathfn.c ----------------------------------------------------------------
 * Elementwise math on a float or double scalar value x (the type of x says
 * which). For float: inline polynomials made of vectorisable operations
 * (fmuladd, floor, minnum/maxnum, bit casts) accurate to a few ulp. For
 * double: the llvm.exp / llvm.log intrinsics and libm calls (tanh, erf,
 * erfc, log1p: float64 is for gradient checking, where accuracy matters
 * more than speed). */
LLVMValueRef cg_emit_exp(LLVMBuilderRef b, LLVMModuleRef m, LLVMValueRef x);
LLVMValueRef cg_emit_log(LLVMBuilderRef b, LLVMModuleRef m, LLVMValueRef x);
/* log(1 + x), relative-accurate for small x. */
LLVMValueRef cg_emit_log1p(LLVMBuilderRef b, LLVMModuleRef m, LLVMValueRef x);
LLVMValueRef cg_emit_tanh(LLVMBuilderRef b, LLVMModuleRef m, LLVMValueRef x);
LLVMValueRef cg_emit_sigmoid(LLVMBuilderRef b, LLVMModuleRef m, LLVMValueRef x);
LLVMValueRef cg_emit_erf(LLVMBuilderRef b, LLVMModuleRef m, LLVMValueRef x);
/* Phi(x) = (1 + erf(x / sqrt 2)) / 2, the standard normal CDF. */
LLVMValueRef cg_emit_normal_cdf(LLVMBuilderRef b, LLVMModuleRef m, LLVMValueRef x);
/* gelu(x) = x Phi(x) (exact, not the tanh approximation); dgelu its
 * derivative Phi(x) + x phi(x). */
LLVMValueRef cg_emit_gelu(LLVMBuilderRef b, LLVMModuleRef m, LLVMValueRef x);
LLVMValueRef cg_emit_dgelu(LLVMBuilderRef b, LLVMModuleRef m, LLVMValueRef x);
/* log(1 + e^x) as max(x, 0) + log1p(e^-|x|): never overflows. */
LLVMValueRef cg_emit_softplus(LLVMBuilderRef b, LLVMModuleRef m, LLVMValueRef x);
/* A call of an LLVM intrinsic overloaded on x's type, e.g. "llvm.sqrt". */
LLVMValueRef cg_emit_intrinsic1(LLVMBuilderRef b, LLVMModuleRef m, const char *name, LLVMValueRef x);
LLVMValueRef cg_emit_intrinsic2(LLVMBuilderRef b, LLVMModuleRef m, const char *name, LLVMValueRef x, LLVMValueRef y);

/* ---- lower.c (with kernels.c) ---------------------------------------------------
 * How plan's programs are split between the modules (parts) of a compile
 * on threads: program k's entry point is in part entry[k] (-1: it has no
 * roots), its kernel i in part kernel[k][i]. A kernel outside its entry
 * point's part is always a parallel kernel (cg_kernel_parallel), which the
 * entry point calls through rt_parallel_for by its `_part` wrapper and
 * never inlines: there the wrapper is declared, in its own part it is an
 * external function (`<entry>_k<i>_part`). So every function's code is the
 * same however the programs are split. */
typedef struct CgSplit {
    int nparts;
    int entry[PROG_COUNT];
    const unsigned char *kernel[PROG_COUNT];
} CgSplit;

/* Builds in ctx the module of part `part` of split (of every program,
 * whole, when split is NULL); names[k] is program k's entry point, or NULL
 * when it has no roots or is in another part. All allocation in a; reads
 * g and plan only, so threads may lower at once, each in its own context
 * and arena. NULL when a ran out of memory (nothing of the module is
 * left; a's out-of-memory handler is unset on return). */
LLVMModuleRef cg_lower(LLVMContextRef ctx, const Graph *g, const Plan *plan, int elem_size,
                       const CgSplit *split, int part, Arena *a, const char *names[PROG_COUNT]);
/* Whether kernel kr of program p runs on the runtime's thread pool: its
 * function runs a share of the loop, called through a `_part` wrapper. */
bool cg_kernel_parallel(const Program *p, const Kernel *kr);
/* Tests only (CgOptions.test_break_progs): add to m a function whose block
 * has no terminator, which LLVM's verifier rejects. */
void cg_lower_break(LLVMModuleRef m);

/* ---- cg.c --------------------------------------------------------------------- */

/* How cg_compile splits plan's programs with roots between at most n
 * threads (1 <= n <= CG_MAX_THREADS), into *split (its kernel[] arrays in
 * a): each program's entry point and its kernels that are not parallel
 * stay together, the parallel kernels go wherever they balance the parts
 * best, by LLVM's estimated work (cg.c, kernel_cost). No part is empty;
 * split->nparts is at most n. */
void cg_split_programs(const Plan *plan, int n, Arena *a, CgSplit *split);

#endif
