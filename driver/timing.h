/* timing.h: --time-passes, the time each stage of a compile took.
 *
 * A Timing is a clock and a list of (stage, milliseconds): timing_mark(t,
 * "lower") records the time since the previous mark (or timing_start) as
 * the stage "lower". A stage marked twice adds up (simplify runs twice).
 * Every function takes t == NULL or a timing that is off and then does
 * nothing, so callers time unconditionally.
 */
#ifndef GRADC_DRIVER_TIMING_H
#define GRADC_DRIVER_TIMING_H

#include <stdbool.h>
#include <stdio.h>

#include "ir/ir.h"

enum { TIMING_MAX_STAGES = 48 };

typedef struct Timing {
    bool on;
    int n;
    const char *stage[TIMING_MAX_STAGES];
    double ms[TIMING_MAX_STAGES];
    int runs[TIMING_MAX_STAGES];
    double last; /* the clock at the last mark, ms */
} Timing;

/* Start the clock (on: whether to record anything at all). */
void timing_start(Timing *t, bool on);
/* The stage that just ended. stage must outlive t (a string literal). */
void timing_mark(Timing *t, const char *stage);
/* For ir_optimize_observed and CgOptions.stage: ud is the Timing. */
void timing_pass_observer(Graph *g, const char *pass, void *ud);
void timing_stage_observer(const char *stage, void *ud);
/* The table, on out: one line per stage in first-marked order, its
 * milliseconds and share of the total, then the total. Nothing when off. */
void timing_print(const Timing *t, FILE *out);

#endif
