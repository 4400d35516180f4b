/* rtmodel.h: describe a planned graph to the runtime.
 *
 * The runtime sees a compiled model only as an RtModel (runtime/rt.h): where
 * each parameter, input, hyperparameter and program result lives in the
 * arena, how parameters and optimizer states are initialised, what kind of
 * value each hyperparameter holds, which functions to call. This
 * builds that description from the Graph and its Plan; the JIT fills in the
 * function pointers, an ahead-of-time build writes the same data out.
 * No LLVM here.
 */
#ifndef GRADC_RTMODEL_H
#define GRADC_RTMODEL_H

#include "../ir/ir.h"
#include "../runtime/rt.h"
#include "cg.h"

/* All allocations in a. fns[k] is the entry point of program k or NULL. */
RtModel *cg_rt_model(Arena *a, const Graph *g, const Plan *plan, RtFn const fns[PROG_COUNT]);
/* The same with the entry points of a JIT-compiled module. */
RtModel *cg_rt_model_jit(Arena *a, const Graph *g, const Plan *plan, const CgModule *m);

/* rtmodel_c.c: m as C source defining `const RtModel <var>` (and static
 * tables it points to), for a file that includes runtime/rt.h, <math.h>
 * and <stdint.h>. fn_names[k]: the extern entry point of program k, or NULL.
 * Doubles are written as hex floats, so every value reads back exactly. */
void cg_write_rt_model_c(FILE *f, const RtModel *m, const char *const fn_names[PROG_COUNT],
                         const char *var);

/* s as a C string literal ("NULL" for NULL), every byte outside printable
 * ASCII (and '?', against trigraphs) as an octal escape. */
void cg_put_c_string(FILE *f, const char *s);

#endif
