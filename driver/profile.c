/* profile.c: gradc train --profile's report, where the time of a training
 * step goes.
 *
 * The profiled train program (PLAN_PROFILE, codegen/lower.c) counts, in
 * int64 counters in the arena, the nanoseconds each kernel ran, those of the
 * whole program and its runs; the runtime keeps the seconds rt_train spent
 * in training batches (RtSession.train_seconds: gathering the batch, the
 * per-step hyperparameters and the program) and when the first step
 * finished. This file turns them into the report on stderr. Owns the
 * report's text and reading the process's start time; the kernels' labels
 * are ir_kernel_label's, as in gradc summary. Runs nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "profile.h"

double profile_since_start(double boottime) {
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f)
        return -1;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Field 2, the command name in parentheses, may hold spaces and ')':
     * the fields after it start after the last ')'. Field 22 is the start
     * time, in clock ticks since boot. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;
    unsigned long long start = 0;
    int field = 2;
    for (char *tok = strtok(p, " "); tok; tok = strtok(NULL, " "))
        if (++field == 22) {
            char *end;
            start = strtoull(tok, &end, 10);
            if (end == tok)
                return -1;
            break;
        }
    long tck = sysconf(_SC_CLK_TCK);
    if (field != 22 || tck <= 0)
        return -1;
    return boottime - (double)start / (double)tck;
}

typedef struct Row {
    int k;      /* the kernel */
    int64_t ns; /* its nanoseconds over every run */
} Row;

/* Largest time first; among equal times, the kernel that runs first. */
static int by_time(const void *pa, const void *pb) {
    const Row *a = pa, *b = pb;
    if (a->ns != b->ns)
        return a->ns > b->ns ? -1 : 1;
    return (a->k > b->k) - (a->k < b->k);
}

void profile_report(void *user, const RtSession *s, int64_t batch) {
    const Profile *pf = user;
    const RtModel *rm = s->m;
    const Program *p = &pf->plan->prog[PROG_TRAIN];
    int nk = p->kernels.len;
    gc_assert(p->profile && rm->profile_counters == pf->plan->profile_counters &&
              rm->profile_kernels == nk);
    int64_t *c = malloc(sizeof *c * (size_t)(nk + 2));
    Row *rows = malloc(sizeof *rows * (size_t)(nk + 1));
    if (!c || !rows) {
        free(c);
        free(rows);
        return;
    }
    memcpy(c, (const char *)s->arena + rm->profile_counters, sizeof *c * (size_t)(nk + 2));
    int64_t runs = c[nk + 1];
    if (runs <= 0) {
        free(c);
        free(rows);
        return;
    }
    /* Shares are of the runtime's time in training batches ("in all"),
     * which holds every run of the program. */
    double in_prog = 1e-9 * (double)c[nk], in_all = s->train_seconds;
    if (in_all < in_prog)
        in_all = in_prog;
    double outside = in_all - in_prog, ms = 1e3 / (double)runs;
    double share = in_all > 0 ? 100 / in_all : 0;

    Arena *a = arena_new();
    KernelLabel *lab = arena_alloc(a, sizeof *lab * (size_t)(nk + 1));
    size_t wk = strlen("kind"), wr = strlen("root"), ws = strlen("shape");
    char buf[64];
    double group[KG_COUNT] = {0};
    bool has[KG_COUNT] = {false};
    for (int k = 0; k < nk; k++) {
        lab[k] = ir_kernel_label(a, pf->g, &p->kernels.items[k]);
        rows[k] = (Row){k, c[k]};
        group[lab[k].group] += 1e-9 * (double)c[k];
        has[lab[k].group] = true;
        size_t len;
        if ((len = strlen(lab[k].kind)) > wk)
            wk = len;
        if ((len = strlen(lab[k].root)) > wr)
            wr = len;
        if ((len = strlen(shape_str(&p->kernels.items[k].root->shape, buf, sizeof buf))) > ws)
            ws = len;
    }
    qsort(rows, (size_t)nk, sizeof *rows, by_time);
    /* --mpi: the program's time outside its kernels is the gradient
     * average (rt_dist_sync, Program.sync_at), waiting for the other
     * processes included. */
    double sync = 0;
    if (p->sync_at >= 0) {
        sync = in_prog;
        for (int k = 0; k < nk; k++)
            sync -= 1e-9 * (double)c[k];
        if (sync < 0)
            sync = 0;
    }

    FILE *f = stderr;
    fprintf(f, "gradc: profile of the train program: %lld step%s (batch %lld), %.4g ms a step "
               "in the program, %.4g ms a step in all\n",
            (long long)runs, runs == 1 ? "" : "s", (long long)batch, in_prog * ms, in_all * ms);
    fprintf(f, "  %6s  %9s  %4s  %-*s  %-*s  %-*s  %s\n", "share", "ms/step", "#", (int)wk, "kind",
            (int)wr, "root", (int)ws, "shape", "source");
    for (int i = 0; i < nk; i++) {
        const Row *r = &rows[i];
        double sec = 1e-9 * (double)r->ns;
        fprintf(f, "  %5.1f%%  %9.4f  %4d  %-*s  %-*s  %-*s  %s\n", sec * share, sec * ms, r->k,
                (int)wk, lab[r->k].kind, (int)wr, lab[r->k].root, (int)ws,
                shape_str(&p->kernels.items[r->k].root->shape, buf, sizeof buf),
                lab[r->k].source);
    }
    if (p->sync_at >= 0)
        fprintf(f, "  %5.1f%%  %9.4f  %4s  averaging the gradients over the processes (waits "
                   "for the slowest included)\n",
                sync * share, sync * ms, "-");
    fprintf(f, "  %5.1f%%  %9.4f  %4s  outside the program (gathering the batch, per-step "
               "hyperparameters)\n",
            outside * share, outside * ms, "-");
    static const char *const names[KG_COUNT] = {
        [KG_GEMM] = "gemm", [KG_LOOP] = "loops", [KG_UPDATE] = "updates",
        [KG_OTHER] = "other kernels"};
    fprintf(f, "  by kind:");
    for (int g = 0; g < KG_COUNT; g++)
        if (has[g])
            fprintf(f, " %s %.1f%%,", names[g], group[g] * share);
    if (p->sync_at >= 0)
        fprintf(f, " gradient average %.1f%%,", sync * share);
    fprintf(f, " outside %.1f%%\n", outside * share);
    double since = s->first_step_boottime > 0 ? profile_since_start(s->first_step_boottime) : -1;
    if (since >= 0)
        fprintf(f, "  first step finished %.3f s after the process started\n", since);
    fflush(f);
    arena_free(a);
    free(c);
    free(rows);
}
