/* compile.h: the compile half that gradc's commands and gradc build share:
 * reading a model file into the front end, the model hash, and describing a
 * model to the run library (run.h) as a RunModel.
 */
#ifndef GRADC_DRIVER_COMPILE_H
#define GRADC_DRIVER_COMPILE_H

#include <stdbool.h>
#include <stdint.h>

#include "checkpoint.h"
#include "frontend/frontend.h"
#include "run.h"

/* Read and compile the model file at path (fe_compile); on any error print
 * it (diagnostics with their source lines) and return NULL. Sets the graph's
 * autodiff test hooks from GRADC_TEST_BREAK_GRAD and GRADC_TEST_NO_GRAD
 * (docs/testing.md). */
Model *load_model(Arena *a, Diags *d, const char *path);

struct CgModule;
struct Timing;

/* The first half of compile_programs_flags: optimise g, plan the programs
 * in mask, refuse a plan past the memory limit (compile_check_memory).
 * NULL after printing the diagnostics. */
Plan *compile_plan(Diags *d, Graph *g, int64_t batch, unsigned mask, int elem_size,
                   unsigned plan_flags, struct Timing *t);

/* The JIT half of every compiling command: optimise g (timed by t, which
 * may be NULL), plan the programs whose bit (1u << ProgramKind) is in mask
 * for batches up to batch with elem_size (4 or 8), generate and JIT their
 * code. *plan_out (may be NULL) gets the plan. NULL after printing the
 * diagnostics. */
struct CgModule *compile_programs(Diags *d, Graph *g, int64_t batch, unsigned mask,
                                  int elem_size, struct Timing *t, Plan **plan_out);
/* The same, planned with plan_flags (PlanFlag: PLAN_CHECK_NUMERICS). */
struct CgModule *compile_programs_flags(Diags *d, Graph *g, int64_t batch, unsigned mask,
                                        int elem_size, unsigned plan_flags, struct Timing *t,
                                        Plan **plan_out);

/* ---- out of memory --------------------------------------------------------------
 * Every allocation of a compile is in the command's arena (or goes to its
 * handler: codegen's own arenas, the model hash). A command sets the
 * handler in its own frame, before anything else allocates in a:
 *
 *     jmp_buf oom;
 *     if (setjmp(oom)) {
 *         rc = compile_out_of_memory(a, path);
 *         goto out;  (frees a, and what else the command holds)
 *     }
 *     arena_set_oom(a, &oom);
 *
 * A local the cleanup reads that changes after setjmp must be volatile
 * (CgModule *volatile cg). The handler is unset (arena_set_oom(a, NULL))
 * before the run library takes over, so that nothing jumps out of a
 * training run. */

/* "gradc: error: out of memory compiling 'path' (a request for N bytes
 * failed)" on stderr (a NULL: no arena could be made); returns
 * RUN_EXIT_USER. */
int compile_out_of_memory(Arena *a, const char *path);

/* ---- the memory limit -------------------------------------------------------------
 * A plan whose arena exceeds the memory limit is refused before any of it
 * is allocated. The limit is the smallest of the physical memory, the
 * address-space and data-size limits (ulimit -v, -d), cgroup v2's
 * memory.max, and --max-memory. */

/* --max-memory: bytes (0: not given). */
void compile_set_max_memory(uint64_t bytes);
/* A size: digits, optionally followed by K, M, G or T (powers of 1024;
 * "KiB", "MB" and lowercase accepted); more than 0, at most 2^64 - 1. */
bool compile_parse_size(const char *s, uint64_t *out);
/* The limit in bytes, and what sets it ("the physical memory",
 * "--max-memory", ...) in *what. */
uint64_t compile_memory_limit(const char **what);
/* Whether plan's arena (Plan.arena_bytes, SIZE_MAX when its sizes
 * overflow) is within the limit; else an error in d at the largest
 * tensor's declaration, with the bytes needed and the limit. */
bool compile_check_memory(Diags *d, const Graph *g, const Plan *plan);

/* Print d's diagnostics to stderr, in colour on a terminal. */
void print_diags(Diags *d);

/* ---- the model hash ---------------------------------------------------------
 * What must match for --resume to continue a run: the model file's tokens
 * (so comments, blank lines and spacing do not count, but every name,
 * number and string does, the train block's optimizer, clip_norm and data
 * included) and the --optimizer rule's tokens when one was given. FNV-1a 64
 * over each token's kind and bytes; 16 lowercase hex digits into buf. Out
 * of memory goes to a's handler (arena_set_oom). */
char *ckpt_model_hash(Arena *a, const SrcFile *model, const char *optimizer,
                      char buf[CKPT_HASH_LEN]);

/* ---- the model for the run library -------------------------------------------- */

/* Fill r from m (before compiling: r->rm, need, nkernels and compile_ms
 * are left to the caller): the data source, the train block's defaults, the
 * hash (with the --optimizer text, NULL: none), whether it has a loss and
 * outputs, its first random parameter. absolute: make the data paths
 * absolute (a built program runs from any directory). All in a. */
void run_model_from(Arena *a, RunModel *r, const Model *m, const char *optimizer, bool absolute);

/* need[i]: do the model's outputs depend on input i? A walk from the
 * outputs over the (optimized) graph. */
bool *inputs_needed(Arena *a, const Graph *g);

#endif
