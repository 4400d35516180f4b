/* profile.c: the clocks of gradc train --profile.
 *
 * Owns rt_profile_clock, which a profiled train program (Plan.profile_counters)
 * calls before its first kernel and after each one, and the boot-time clock
 * that rt_train reads when a session's first step finishes. Must stay cheap
 * (a vDSO clock_gettime, no system call) and must not touch the arena: the
 * generated code adds the differences to its counters itself.
 */
#include "rt_internal.h"

#include <time.h>

int64_t rt_profile_clock(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + (int64_t)ts.tv_nsec;
}

double rt_boottime_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
