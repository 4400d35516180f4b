/* timing.c: --time-passes (timing.h). */
#include "timing.h"

#include <string.h>

#include "run.h"

void timing_start(Timing *t, bool on) {
    *t = (Timing){.on = on, .last = run_now_ms()};
}

void timing_mark(Timing *t, const char *stage) {
    if (!t || !t->on)
        return;
    double now = run_now_ms();
    int i = 0;
    while (i < t->n && strcmp(t->stage[i], stage))
        i++;
    if (i == t->n) {
        if (t->n == TIMING_MAX_STAGES) {
            t->last = now;
            return;
        }
        t->stage[t->n++] = stage;
    }
    t->ms[i] += now - t->last;
    t->runs[i]++;
    t->last = now;
}

void timing_pass_observer(Graph *g, const char *pass, void *ud) {
    (void)g;
    timing_mark(ud, pass);
}

void timing_stage_observer(const char *stage, void *ud) { timing_mark(ud, stage); }

void timing_print(const Timing *t, FILE *out) {
    if (!t || !t->on)
        return;
    double total = 0;
    for (int i = 0; i < t->n; i++)
        total += t->ms[i];
    fprintf(out, "gradc: time per compile stage\n");
    for (int i = 0; i < t->n; i++) {
        char runs[32] = "";
        if (t->runs[i] > 1)
            snprintf(runs, sizeof runs, " (%d runs)", t->runs[i]);
        fprintf(out, "  %-22s %10.3f ms %5.1f%%%s\n", t->stage[i], t->ms[i],
                total > 0 ? 100 * t->ms[i] / total : 0, runs);
    }
    fprintf(out, "  %-22s %10.3f ms\n", "total", total);
}
