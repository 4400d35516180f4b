/* profile.h: gradc train --profile, where the time of a training step goes
 * (profile.c).
 */
#ifndef GRADC_DRIVER_PROFILE_H
#define GRADC_DRIVER_PROFILE_H

#include "ir/ir.h"
#include "run.h"

/* What the report needs from the compile: the optimized graph and the plan
 * of the profiled train program that ran (PLAN_PROFILE). */
typedef struct Profile {
    const Graph *g;
    const Plan *plan;
} Profile;

/* RunModel.report_profile, with user a Profile: when the train program ran
 * at least once, prints on stderr its time per kernel from the counters in
 * s's arena (RtModel.profile_counters), largest first, labelled as gradc
 * summary labels its kernels, each as milliseconds a step and as a share of
 * the time rt_train spent in training batches (RtSession.train_seconds);
 * the time outside the program; the shares by kind of kernel; and how long
 * after the process started its first step finished (from /proc/self/stat;
 * left out without /proc). */
void profile_report(void *user, const RtSession *s, int64_t batch);

/* Seconds from the start of this process to boottime (CLOCK_BOOTTIME
 * seconds), from the start time in /proc/self/stat (clock ticks since
 * boot, so at most one tick, 10 ms, too long); a negative value when /proc
 * cannot be read. */
double profile_since_start(double boottime);

#endif
