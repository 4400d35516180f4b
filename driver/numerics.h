/* numerics.h: gradc train --check-numerics, what made the NaN or Inf that
 * stopped training (numerics.c).
 */
#ifndef GRADC_DRIVER_NUMERICS_H
#define GRADC_DRIVER_NUMERICS_H

#include "ir/ir.h"
#include "run.h"

/* What the explanation needs from the compile: the optimized graph and the
 * plan of the checked train program that ran (PLAN_CHECK_NUMERICS). */
typedef struct Numerics {
    Graph *g;
    const Plan *plan;
} Numerics;

/* RunModel.explain_nonfinite, with user a Numerics: compiles the train
 * program once more without fusion (PLAN_NO_FUSE, every node a checked
 * kernel of its own, the same persistent region), runs it on a copy of the
 * session's arena, and prints on stderr the first node that made a NaN or
 * Inf: its op, forward or which gradient or update, its source line, and
 * the min, max and mean of each of its inputs. When that run makes none
 * (fusion rounds differently), says so and prints the fused kernel that
 * did, with the inputs it read.
 *
 * For tests: the environment variable GRADC_TEST_NUMERICS_NO_REPRO, set,
 * skips the unfused run as if it had made no NaN or Inf. */
void numerics_explain(void *user, const RtSession *s, int64_t kernel, int64_t batch);

#endif
