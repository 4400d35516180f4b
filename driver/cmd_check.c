/* cmd_check.c: gradc check, every parameter's gradient from the compiled
 * kernels against central finite differences of the compiled loss, in
 * float64.
 *
 * Compiles the model for training as gradc train does, but plans and JITs
 * only the grad program (loss, then every parameter's gradient), with
 * float64 elements: the same fused loops and GEMMs, in double precision.
 * Owns the check's numerics: the step, the tolerances, which elements are
 * checked and the rule at kinks (docs/commands.md, "gradc check"). Must not
 * change what is compiled: a gradient bug it finds is one gradc train has.
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "codegen/cg.h"
#include "codegen/rtmodel.h"
#include "compile.h"
#include "frontend/frontend.h"
#include "timing.h"

static const char usage_check[] =
    "usage: gradc check M.nn [options]\n"
    "\n"
    "Compiles the model's gradient program in float64 and compares every\n"
    "parameter's gradient with central finite differences of the compiled loss,\n"
    "on one batch of the train block's data (or random inputs) at the model's\n"
    "initial weights (or --weights F). Prints a row per parameter; exit status 0\n"
    "when every checked element agrees, 1 when one does not.\n"
    "  --eps E          the finite-difference step, relative: E * max(1, |x|)\n"
    "                   (default 1e-6)\n"
    "  --tol T          relative tolerance (default 1e-6); the absolute one is\n"
    "                   64 * 2.2e-16 * max(1, |loss|) / E\n"
    "  --weights F      check at these weights (a safetensors file gradc saved)\n"
    "  --batch N        rows of data (default: the train block's batch)\n"
    "  --samples K      check at most K elements of each parameter: all of a\n"
    "                   parameter with at most K, else the K/2 with the largest\n"
    "                   gradient and K/2 others at random (default 64)\n"
    "  --seed S         seed for the initial weights, random inputs and the\n"
    "                   sample (default: the train block's)\n"
    "  --random-inputs  random inputs of the right shapes instead of the data:\n"
    "                   floats normal(0, 1), ints uniform in their range\n"
    "  --time-passes    time each compile stage (on stderr)\n"
    "  --max-memory SIZE  refuse a model whose arena needs more (512M, 2G;\n"
    "                  default: the machine's memory and limits)\n"
    "  -h, --help       this text\n";

typedef struct CheckOpts {
    const char *model, *weights;
    double eps, tol;
    int64_t batch, samples, seed;
    bool have_seed, random_inputs, time_passes, help;
} CheckOpts;

/* 0 after filling o (-h: o->help, after printing the usage), or
 * EXIT_USAGE after saying what is wrong. */
static int parse_check(int argc, char **argv, CheckOpts *o) {
    *o = (CheckOpts){.eps = 1e-6, .tol = 1e-6, .samples = 64};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_check, stdout);
            o->help = true;
            return 0;
        } else if ((v = run_opt_value(argc, argv, &i, "--eps"))) {
            if (!run_parse_f64(v, &o->eps) || o->eps <= 0 || o->eps > 0.1)
                return usage_error("check", "--eps expects a number in (0, 0.1], got '%s'", v);
        } else if ((v = run_opt_value(argc, argv, &i, "--tol"))) {
            if (!run_parse_f64(v, &o->tol) || o->tol <= 0)
                return usage_error("check", "--tol expects a positive number, got '%s'", v);
        } else if ((v = run_opt_value(argc, argv, &i, "--weights"))) {
            if (!*v)
                return usage_error("check", "--weights expects a file");
            o->weights = v;
        } else if ((v = run_opt_value(argc, argv, &i, "--batch"))) {
            if (!run_parse_i64(v, 1, &o->batch) || o->batch > (1 << 24))
                return usage_error("check", "--batch expects an integer from 1 to 16777216, got "
                                            "'%s'",
                                   v);
        } else if ((v = run_opt_value(argc, argv, &i, "--samples"))) {
            if (!run_parse_i64(v, 1, &o->samples))
                return usage_error("check", "--samples expects a positive integer, got '%s'", v);
        } else if ((v = run_opt_value(argc, argv, &i, "--seed"))) {
            if (!run_parse_i64(v, 0, &o->seed))
                return usage_error("check", "--seed expects a non-negative integer, got '%s'", v);
            o->have_seed = true;
        } else if (!strcmp(a, "--random-inputs")) {
            o->random_inputs = true;
        } else if (!strcmp(a, "--time-passes")) {
            o->time_passes = true;
        } else if (a[0] == '-') {
            return usage_error("check", "unknown option '%s'", a);
        } else if (o->model) {
            return usage_error("check", "one model file at a time ('%s' and '%s')", o->model, a);
        } else {
            o->model = a;
        }
    }
    if (!o->model)
        return usage_error("check", "no model file given");
    return 0;
}

/* ---- the numerics ------------------------------------------------------------------
 * f is the grad program's loss as a function of one parameter element x,
 * everything else fixed (inputs, other weights, the dropout key). With the
 * step h = eps * max(1, |x|) and f(s) the loss at x + s:
 *   n  = (f(h) - f(-h)) / 2h     the central difference, error O(h^2 f''')
 *   d+ = (f(h) - f(0)) / h,  d- = (f(0) - f(-h)) / h   one-sided, error O(h f'')
 * The tolerance at v is tau(v) = atol + tol * |v| (numpy.allclose), with
 * atol = 64 * DBL_EPSILON * max(1, |f(0)|) / eps: 64 rounding errors of the
 * loss over the step, the noise floor of a difference quotient (1.4e-8 for a
 * loss near 1 at the default step; at least 80 times the largest error
 * measured on the examples; the O(h^2) error of n is far below it).
 *
 * An element passes when |a - n| <= tau(n), a the analytic gradient. When
 * it does not, f is probed at +-h/2 too. The element passes when a agrees
 * within tau with n4 = (4 n(h/2) - n(h)) / 3, whose error is O(h^4) (so
 * that a large --eps does not fail on the O(h^2) error alone). Else the
 * right and left derivatives at x are extrapolated to step 0 (Richardson:
 * R = 2 d+(h/2) - d+(h), L likewise), which removes the O(h f'') term of
 * the one-sided differences:
 *   - |R - L| <= 2 tau(n): f is smooth at x and a is wrong: FAIL.
 *   - Otherwise f has a kink within h of x (relu at 0, abs at 0, a max tie,
 *     or a step that crosses one), and the element is counted as a kink.
 *     It passes when a lies between the smallest and the largest of d-, d+,
 *     L and R, within tau: a one-sided derivative or a subgradient (a step
 *     that crosses a kink at x + t leaves a the slope on x's side).
 *   - It passes too when x sits exactly on the kink: R and L extrapolated
 *     from h/2 and h/4 instead agree with them within 4 tau (f is smooth on
 *     each side of x). There the chain rule's convention decides a (relu'(0)
 *     = 0, as in PyTorch), and where the kinks of several rows meet (a
 *     zero-initialised layer before relu puts every pre-activation at 0)
 *     that sum of conventions need not lie between the one-sided
 *     derivatives: finite differences cannot judge it, and its error is not
 *     counted.
 *   - Else FAIL. */

typedef struct Elem {
    int64_t index;
    double analytic, numeric; /* numeric: n, or at a kink the nearest value allowed */
    double abs_err, rel_err;  /* |a - numeric|; that over (|numeric| + atol / tol) */
    bool kink, ok;
} Elem;

/* What the check of one parameter found. */
typedef struct ParamResult {
    int64_t checked, total, kinks, failed;
    double max_abs, max_rel;
    Elem worst; /* the failing element with the largest rel_err */
} ParamResult;

typedef struct Checker {
    RtSession *s;
    const RtModel *rm;
    int64_t nrows;
    double eps, tol, atol, f0;
} Checker;

/* The loss after one run of the grad program. */
static double run_loss(const Checker *c) {
    c->rm->grad.fn(c->s->arena, c->nrows);
    return *(const double *)rt_ptr(c->s, &c->rm->grad.roots[0]);
}

/* (f(x0 + s) - f(x0)) / s for element i of p (s may be negative), over the
 * step actually taken in double; p[i] is restored exactly. */
static double slope(const Checker *c, double *p, int64_t i, double s) {
    double x0 = p[i];
    p[i] = x0 + s;
    double dx = p[i] - x0, f = run_loss(c);
    p[i] = x0;
    return (f - c->f0) / dx;
}

/* Compare a, the analytic gradient of element i of p (float64 storage),
 * with finite differences, by the rule above. */
static Elem check_elem(const Checker *c, double *p, int64_t i, double a) {
    double h = c->eps * fmax(1.0, fabs(p[i]));
    double dp = slope(c, p, i, h), dm = slope(c, p, i, -h);
    double n = (dp + dm) / 2;
    Elem e = {.index = i, .analytic = a, .numeric = n};
    double tau = c->atol + c->tol * fabs(n);
    e.ok = fabs(a - n) <= tau;
    if (!e.ok) {
        double dp2 = slope(c, p, i, h / 2), dm2 = slope(c, p, i, -h / 2);
        double r = 2 * dp2 - dp, l = 2 * dm2 - dm;
        double n4 = (2 * (dp2 + dm2) - n) / 3; /* (4 n(h/2) - n(h)) / 3 */
        if (fabs(a - n4) <= c->atol + c->tol * fabs(n4)) {
            e.ok = true;
            e.numeric = n4;
        } else if (fabs(r - l) > 2 * tau) {
            double lo = fmin(fmin(dp, dm), fmin(r, l)), hi = fmax(fmax(dp, dm), fmax(r, l));
            double near = fmin(fmax(a, lo), hi);
            if (fabs(a - near) <= c->atol + c->tol * fabs(near)) {
                e.ok = e.kink = true;
                e.numeric = near;
            } else {
                double r2 = 2 * slope(c, p, i, h / 4) - dp2;
                double l2 = 2 * slope(c, p, i, -h / 4) - dm2;
                if (fabs(r2 - r) <= 4 * tau && fabs(l2 - l) <= 4 * tau) {
                    e.ok = e.kink = true;
                    e.numeric = a; /* exactly on the kink: not judged */
                }
            }
        }
    }
    e.abs_err = fabs(a - e.numeric);
    e.rel_err = e.abs_err / (fabs(e.numeric) + c->atol / c->tol);
    if (isnan(e.abs_err)) { /* a NaN gradient or loss never passes */
        e.ok = e.kink = false;
        e.abs_err = e.rel_err = INFINITY;
    }
    return e;
}

static const double *sort_key; /* for by_magnitude: |sort_key[i]| descending */

static int by_magnitude(const void *x, const void *y) {
    int64_t i = *(const int64_t *)x, j = *(const int64_t *)y;
    double a = fabs(sort_key[i]), b = fabs(sort_key[j]);
    return a > b ? -1 : a < b ? 1 : (i > j) - (i < j);
}

/* The elements of a parameter of n elements to check, into idx (room for
 * min(n, k)); returns their count: all when n <= k, else the k/2 with the
 * largest |grad| and k - k/2 others drawn uniformly without replacement. */
static int64_t pick_elems(const double *grad, int64_t n, int64_t k, RtRng *rng, int64_t *idx) {
    if (n <= k) {
        for (int64_t i = 0; i < n; i++)
            idx[i] = i;
        return n;
    }
    int64_t *order = malloc(sizeof *order * (size_t)n);
    bool *taken = calloc((size_t)n, 1);
    if (!order || !taken) {
        fprintf(stderr, "gradc: out of memory\n");
        abort();
    }
    for (int64_t i = 0; i < n; i++)
        order[i] = i;
    sort_key = grad;
    qsort(order, (size_t)n, sizeof *order, by_magnitude);
    int64_t m = 0;
    for (; m < k / 2; m++)
        taken[idx[m] = order[m]] = true;
    while (m < k) {
        int64_t i = (int64_t)rt_rng_below(rng, (uint64_t)n);
        if (!taken[i])
            taken[idx[m++] = i] = true;
    }
    free(order);
    free(taken);
    return m;
}

/* Check parameter number pi: its analytic gradient is grad (copied out of
 * the arena after the first run). */
static ParamResult check_param(const Checker *c, int pi, const double *grad, int64_t samples,
                               RtRng *rng) {
    const RtTensor *t = &c->rm->params[pi];
    ParamResult r = {.total = rt_numel(t, 1)};
    int64_t *idx = malloc(sizeof *idx * (size_t)(r.total < samples ? r.total : samples) + 1);
    if (!idx) {
        fprintf(stderr, "gradc: out of memory\n");
        abort();
    }
    r.checked = pick_elems(grad, r.total, samples, rng, idx);
    double *p = rt_ptr(c->s, t);
    for (int64_t k = 0; k < r.checked; k++) {
        Elem e = check_elem(c, p, idx[k], grad[idx[k]]);
        r.kinks += e.kink;
        r.max_abs = fmax(r.max_abs, e.abs_err);
        r.max_rel = fmax(r.max_rel, e.rel_err);
        if (!e.ok && (r.failed == 0 || e.rel_err > r.worst.rel_err))
            r.worst = e;
        r.failed += !e.ok;
    }
    free(idx);
    return r;
}

/* ---- inputs ------------------------------------------------------------------------ */

/* Random inputs for batch rows: floats normal(0, 1), ints uniform in
 * [0, limit). An int input that no op bounds has no range to draw from. */
static RtStatus random_inputs(const char *path, RtSession *s, int64_t batch, RtRng *rng,
                              RtError *err) {
    const RtModel *rm = s->m;
    for (int i = 0; i < rm->ninputs; i++) {
        const RtTensor *t = &rm->inputs[i];
        if (t->dtype == RT_INT && t->limit <= 0)
            return rt_fail(err, "%s: input '%s' is an int input that no op bounds (it is not "
                                "the labels of cross_entropy or onehot, nor the ids of an "
                                "embedding), so gradc check cannot choose random values for "
                                "it; give the model a data source",
                           path, t->name);
    }
    for (int i = 0; i < rm->ninputs; i++) {
        const RtTensor *t = &rm->inputs[i];
        int64_t n = rt_numel(t, batch);
        void *p = rt_ptr(s, t);
        for (int64_t k = 0; k < n; k++) {
            if (t->dtype == RT_INT)
                ((int32_t *)p)[k] = (int32_t)rt_rng_below(rng, (uint64_t)t->limit);
            else
                ((double *)p)[k] = rt_rng_normal(rng);
        }
    }
    return RT_OK;
}

/* ---- the report -------------------------------------------------------------------- */

/* "[2, 4]" of t (no batch dimension: a parameter). */
static char *dims_str(const RtTensor *t, char *buf, size_t n) {
    size_t len = (size_t)snprintf(buf, n, "[");
    for (int k = 0; k < t->rank && len < n; k++)
        len += (size_t)snprintf(buf + len, n - len, "%s%lld", k ? ", " : "",
                                (long long)t->dims[k]);
    if (len < n)
        snprintf(buf + len, n - len, "]");
    return buf;
}

/* Element i of t as "[1, 3]" (row-major). */
static char *index_str(const RtTensor *t, int64_t i, char *buf, size_t n) {
    int64_t at[RT_MAX_RANK];
    for (int k = t->rank - 1; k >= 0; k--) {
        at[k] = i % t->dims[k];
        i /= t->dims[k];
    }
    size_t len = (size_t)snprintf(buf, n, "[");
    for (int k = 0; k < t->rank && len < n; k++)
        len += (size_t)snprintf(buf + len, n - len, "%s%lld", k ? ", " : "", (long long)at[k]);
    if (len < n)
        snprintf(buf + len, n - len, "]");
    return buf;
}

/* The table, the failures and the summary line on stdout; true when every
 * parameter passed. */
static bool report(const RtModel *rm, const ParamResult *res) {
    int wname = (int)strlen("parameter"), wshape = (int)strlen("shape"), wck = 7;
    char buf[160];
    for (int i = 0; i < rm->nparams; i++) {
        int l = (int)strlen(rm->params[i].name);
        wname = l > wname ? l : wname;
        l = (int)strlen(dims_str(&rm->params[i], buf, sizeof buf));
        wshape = l > wshape ? l : wshape;
        l = snprintf(buf, sizeof buf, "%lld/%lld", (long long)res[i].checked,
                     (long long)res[i].total);
        wck = l > wck ? l : wck;
    }
    printf("%-*s  %-*s  %*s  %5s  %11s  %11s  %s\n", wname, "parameter", wshape, "shape", wck,
           "checked", "kinks", "max abs err", "max rel err", "result");
    int64_t nfail = 0, checked = 0, kinks = 0;
    for (int i = 0; i < rm->nparams; i++) {
        const ParamResult *r = &res[i];
        char ck[64];
        snprintf(ck, sizeof ck, "%lld/%lld", (long long)r->checked, (long long)r->total);
        printf("%-*s  %-*s  %*s  %5lld  %11.3g  %11.3g  %s\n", wname, rm->params[i].name, wshape,
               dims_str(&rm->params[i], buf, sizeof buf), wck, ck, (long long)r->kinks,
               r->max_abs, r->max_rel, r->failed ? "FAIL" : "ok");
        nfail += r->failed > 0;
        checked += r->checked;
        kinks += r->kinks;
    }
    for (int i = 0; i < rm->nparams; i++) {
        const ParamResult *r = &res[i];
        if (!r->failed)
            continue;
        printf("%s: %lld of %lld checked elements differ; the worst, %s%s (element %lld): "
               "analytic %.9g, numeric %.9g\n",
               rm->params[i].name, (long long)r->failed, (long long)r->checked,
               rm->params[i].name, index_str(&rm->params[i], r->worst.index, buf, sizeof buf),
               (long long)r->worst.index, r->worst.analytic, r->worst.numeric);
    }
    if (nfail)
        printf("gradc check: FAIL: %lld of %d parameters have gradients that disagree with "
               "finite differences\n",
               (long long)nfail, rm->nparams);
    else
        printf("gradc check: ok: %d parameters, %lld elements checked (%lld at kinks)\n",
               rm->nparams, (long long)checked, (long long)kinks);
    return nfail == 0;
}

/* ---- the command ------------------------------------------------------------------- */

/* Everything after compiling: the session, the weights, the inputs, the
 * runs, the report. The exit status. */
static int run_check(const CheckOpts *o, const RunModel *r) {
    const RtModel *rm = r->rm;
    RtSession s = {0};
    RtError err;
    int rc = EXIT_USER;
    double *grads = NULL;
    ParamResult *res = NULL;
    /* One thread: the runs repeat bit for bit, and the problems are small. */
    rt_setup(1);
    uint64_t seed = o->have_seed ? (uint64_t)o->seed : r->seed;
    if (rt_session_init(&s, rm, seed, &err) != RT_OK)
        goto rt_error;
    if (o->weights) {
        if (rt_load_weights(&s, o->weights, &err) != RT_OK)
            goto rt_error;
    } else {
        rt_init_params(&s);
    }
    /* Its own stream, apart from the session's (initialisation, dropout). */
    RtRng rng;
    rt_rng_seed(&rng, seed ^ 0x636865636b000000ull);
    int64_t nrows = rm->max_batch, total = 0;
    bool random_in = o->random_inputs || r->data.kind == RUN_DATA_NONE;
    if (random_in ? random_inputs(r->path, &s, nrows, &rng, &err) != RT_OK
               : run_load_batch(r, o->weights, &s, rm->max_batch, &nrows, &total, &err) != RT_OK)
        goto rt_error;
    /* The dropout key and t, epoch, epochs: drawn once, the same in every run. */
    rt_step_hypers(&s, r->epochs);

    Checker c = {.s = &s, .rm = rm, .nrows = nrows, .eps = o->eps, .tol = o->tol};
    c.f0 = run_loss(&c);
    if (!isfinite(c.f0)) {
        rt_fail(&err, "%s: the loss is %g at these weights and inputs, so its gradient cannot "
                      "be checked",
                r->path, c.f0);
        goto rt_error;
    }
    c.atol = 64 * DBL_EPSILON * fmax(1.0, fabs(c.f0)) / o->eps;
    /* The analytic gradients, copied out before the runs overwrite them. */
    size_t nvalues = 0;
    for (int i = 0; i < rm->nparams; i++)
        nvalues += (size_t)rt_numel(&rm->params[i], 1);
    grads = malloc(sizeof *grads * (nvalues + 1));
    res = calloc((size_t)rm->nparams + 1, sizeof *res);
    if (!grads || !res) {
        rt_fail(&err, "out of memory for %zu gradient values", nvalues);
        goto rt_error;
    }
    gc_assert(rm->grad.nroots == rm->nparams + 1);
    size_t at = 0;
    for (int i = 0; i < rm->nparams; i++) {
        const RtTensor *g = &rm->grad.roots[1 + i];
        size_t n = (size_t)rt_numel(g, nrows);
        memcpy(grads + at, rt_ptr(&s, g), n * sizeof *grads);
        at += n;
    }

    printf("gradc check: %s in float64: ", r->path);
    if (o->weights)
        printf("weights from %s", o->weights);
    else
        printf("initial weights (seed %llu)", (unsigned long long)seed);
    if (random_in)
        printf(", %lld rows of random inputs\n", (long long)nrows);
    else
        printf(", the first %lld of %lld rows of %s\n", (long long)nrows, (long long)total,
               r->data.files[0].path);
    printf("loss %.9g; eps %g, tol %g, atol %.2g\n", c.f0, o->eps, o->tol, c.atol);
    at = 0;
    for (int i = 0; i < rm->nparams; i++) {
        res[i] = check_param(&c, i, grads + at, o->samples, &rng);
        at += (size_t)rt_numel(&rm->params[i], 1);
    }
    rc = report(rm, res) ? 0 : EXIT_USER;
    goto out;
rt_error:
    fprintf(stderr, "gradc: error: %s\n", err.msg);
    rc = EXIT_USER;
out:
    free(grads);
    free(res);
    if (s.arena)
        rt_session_free(&s);
    return rc;
}

int cmd_check(int argc, char **argv) {
    CheckOpts o;
    int rc = parse_check(argc, argv, &o);
    if (rc || o.help)
        return rc;
    Arena *a = arena_new();
    if (!a)
        return compile_out_of_memory(NULL, o.model);
    Diags d;
    diags_init(&d, a);
    rc = EXIT_USER;
    CgModule *volatile cg = NULL; /* volatile: read after a longjmp */
    jmp_buf oom;
    if (setjmp(oom)) {
        rc = compile_out_of_memory(a, o.model);
        goto out;
    }
    arena_set_oom(a, &oom);
    Timing tm;
    timing_start(&tm, o.time_passes);
    Model *m = load_model(a, &d, o.model);
    if (!m)
        goto out;
    timing_mark(&tm, "front end");
    Graph *g = m->graph;
    if (!g->loss) {
        fprintf(stderr, "%s: error: the model has no 'loss = ...' statement, so it has no "
                        "gradient to check\n",
                o.model);
        goto out;
    }
    bool random_in = o.random_inputs || m->train.data.kind == DATA_NONE;
    if (!random_in && !fe_check_data(m, &d)) {
        print_diags(&d);
        goto out;
    }
    if (!fe_build_training(m, &d, NULL, NAN)) {
        print_diags(&d);
        goto out;
    }
    timing_mark(&tm, "autodiff and update");
    RunModel r;
    run_model_from(a, &r, m, NULL, false);
    Plan *plan;
    int64_t batch = o.batch > 0 ? o.batch : m->train.batch;
    if (!(cg = compile_programs(&d, g, batch, 1u << PROG_GRAD, 8, &tm, &plan)))
        goto out;
    timing_print(&tm, stderr);
    r.rm = cg_rt_model_jit(a, g, plan, cg);
    arena_set_oom(a, NULL); /* the compile is over */
    rc = run_check(&o, &r);
out:
    cg_free(cg);
    arena_free(a);
    return rc;
}
