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
/* Write m, optimised for tm, as a relocatable object file at path. false and
 * *err (malloc'ed) on failure. */
bool cg_emit_object_file(LLVMModuleRef m, LLVMTargetMachineRef tm, const char *path, char **err);
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
 * Builds the module of every program of plan in ctx; names[k] is program
 * k's entry point, or NULL when it has no roots. All allocation in a. */
LLVMModuleRef cg_lower(LLVMContextRef ctx, const Graph *g, const Plan *plan, int elem_size,
                       Arena *a, const char *names[PROG_COUNT]);

#endif
