/* compile.h: the compile half that gradc's commands and gradc build share:
 * reading a model file into the front end, the model hash, and describing a
 * model to the run library (run.h) as a RunModel.
 */
#ifndef GRADC_DRIVER_COMPILE_H
#define GRADC_DRIVER_COMPILE_H

#include <stdbool.h>

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

/* Print d's diagnostics to stderr, in colour on a terminal. */
void print_diags(Diags *d);

/* ---- the model hash ---------------------------------------------------------
 * What must match for --resume to continue a run: the model file's tokens
 * (so comments, blank lines and spacing do not count, but every name,
 * number and string does, the train block's optimizer, clip_norm and data
 * included) and the --optimizer rule's tokens when one was given. FNV-1a 64
 * over each token's kind and bytes; 16 lowercase hex digits into buf. */
char *ckpt_model_hash(const SrcFile *model, const char *optimizer, char buf[CKPT_HASH_LEN]);

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
