/* gradc.c: the command-line driver.
 *
 * Owns the command line of gradc and the compile half of its commands:
 * reading the model file, running the pipeline (front end, autodiff,
 * optimizer, passes, plan, code generation with the JIT) and handing the
 * compiled model to the run library (run.h), which trains, predicts and
 * evaluates, exactly as in the programs gradc build makes (build.c).
 * Decides exit statuses: 0 success, 1 a user error (the model, the data, a
 * file), 2 bad usage. Every other layer reports errors and returns; only
 * the driver prints them.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build.h"
#include "cmds.h"
#include "codegen/cg.h"
#include "codegen/rtmodel.h"
#include "compile.h"
#include "frontend/frontend.h"
#include "numerics.h"
#include "profile.h"
#include "release.h"
#include "run.h"
#include "timing.h"
#ifdef GRADC_HAVE_MPI
#include "mpi_plugin.h"
#endif

const RunCli gradc_cli = {.name = "gradc", .invoke = "gradc", .built = NULL};

static const char usage_main[] =
    "usage: gradc <command> [options]\n"
    "\n"
    "commands:\n"
    "  train M.nn    compile the model with the JIT and train it\n"
    "  predict M.nn  run a trained model on new data, or generate text\n"
    "  eval M.nn     loss and accuracy of trained weights on a data set\n"
    "  build M.nn    compile the model into a training program (or a C library)\n"
    "                that runs without LLVM\n"
    "  grad M.nn     print the forward graph, the gradient graph and the update\n"
    "  emit M.nn     print the compiled programs: kernels, LLVM IR or assembly\n"
    "  check M.nn    compare every gradient with finite differences (float64)\n"
    "  summary M.nn  layers, parameters, FLOPs per step, memory plan, kernels\n"
    "\n"
    "gradc <command> --help describes a command's options.\n"
    "gradc --version prints the version.\n";

/* ---- small helpers ---------------------------------------------------------- */

int usage_error(const char *cmd, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return run_usage_error(&gradc_cli, cmd, "%s", msg);
}

/* Compile the model's programs in mask for the JIT at batch, planned with
 * plan_flags (PlanFlag); r->rm and r->nkernels from the result, *plan_out
 * (may be NULL) the plan. NULL after printing the diagnostics. */
static CgModule *compile_jit_flags(Arena *a, Diags *d, Graph *g, int64_t batch, unsigned mask,
                                   unsigned plan_flags, RunModel *r, Timing *t, Plan **plan_out) {
    Plan *plan;
    CgModule *cg = compile_programs_flags(d, g, batch, mask, 4, plan_flags, t, &plan);
    if (!cg)
        return NULL;
    r->rm = cg_rt_model_jit(a, g, plan, cg);
    r->nkernels = plan->prog[PROG_TRAIN].kernels.len;
    if (plan_out)
        *plan_out = plan;
    timing_print(t, stderr);
    return cg;
}

static CgModule *compile_jit(Arena *a, Diags *d, Graph *g, int64_t batch, unsigned mask,
                             RunModel *r, Timing *t) {
    return compile_jit_flags(a, d, g, batch, mask, 0, r, t, NULL);
}

/* ---- gradc train, predict, eval ----------------------------------------------------
 * Parse the options (the run library's parser, as built programs do), read
 * the model, make the checks that need no code, compile, run. */

static int cmd_train(int argc, char **argv) {
    RunTrainOpts o;
    int rc = run_parse_train(&gradc_cli, argc - 1, argv + 1, &o);
    if (rc || o.help)
        return rc;
    double t0 = run_now_ms();
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
    RunModel r;
    Timing tm;
    timing_start(&tm, o.time_passes);
    Model *m = load_model(a, &d, o.model);
    if (!m)
        goto out;
    timing_mark(&tm, "front end");
    run_model_from(a, &r, m, o.optimizer, false);
#ifdef GRADC_HAVE_MPI
    r.dist_start = mpi_plugin_start;
    r.dist_finish = mpi_plugin_finish;
#endif
    if ((rc = run_train_check(&gradc_cli, &o, &r)))
        goto out;
    rc = EXIT_USER;
    if (!o.data && !fe_check_data(m, &d)) {
        print_diags(&d);
        goto out;
    }
    if (!fe_build_training(m, &d, o.optimizer, o.have_lr ? o.lr : NAN)) {
        print_diags(&d);
        goto out;
    }
    timing_mark(&tm, "autodiff and update");
    /* Training runs the train program, and the eval program for the
     * held-out loss and accuracy when something shows them; predict is for gradc predict (nothing in
     * training or its checkpoints uses it) and grad for gradient checks.
     * --check-numerics: a finite check after every kernel of the train
     * program, and the explanation when one fails (numerics.c).
     * --profile: the train program times its kernels, and the report
     * comes after training (profile.c). --mpi: the train program averages
     * its gradients over the processes before its updates
     * (PLAN_DATA_PARALLEL). */
    int64_t batch = o.batch > 0 ? o.batch : m->train.batch;
    Plan *plan;
    unsigned plan_flags = (o.check_numerics ? PLAN_CHECK_NUMERICS : 0) |
                          (o.profile ? PLAN_PROFILE : 0) | (o.mpi ? PLAN_DATA_PARALLEL : 0);
    unsigned progs = 1u << PROG_TRAIN | (run_train_evaluates(&o) ? 1u << PROG_EVAL : 0);
    if (!(cg = compile_jit_flags(a, &d, m->graph, batch, progs, plan_flags, &r, &tm, &plan)))
        goto out;
    r.compile_ms = run_now_ms() - t0;
    Numerics nx = {m->graph, plan};
    if (o.check_numerics) {
        r.explain_nonfinite = numerics_explain;
        r.explain_user = &nx;
    }
    Profile pf = {m->graph, plan};
    if (o.profile) {
        r.report_profile = profile_report;
        r.profile_user = &pf;
    }
    /* Training needs none of LLVM's code: out of the resident set with it,
     * before the data comes in (release.h). */
    release_compiler_memory();
    arena_set_oom(a, NULL); /* the compile is over; nothing jumps out of a run */
    rc = run_train(&gradc_cli, &o, &r);
out:
    cg_free(cg);
    arena_free(a);
    return rc;
}

static int cmd_predict(int argc, char **argv) {
    RunPredictOpts o;
    int rc = run_parse_predict(&gradc_cli, argc - 1, argv + 1, &o);
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
    RunModel r;
    Timing tm;
    timing_start(&tm, o.time_passes);
    Model *m = load_model(a, &d, o.model);
    if (!m)
        goto out;
    timing_mark(&tm, "front end");
    run_model_from(a, &r, m, NULL, false);
    if ((rc = run_predict_check(&gradc_cli, &o, &r)))
        goto out;
    rc = EXIT_USER;
    /* Text is generated one character at a time. */
    bool text = r.data.kind == RUN_DATA_TEXT;
    if (!(cg = compile_jit(a, &d, m->graph, text ? 1 : o.batch, 1u << PROG_PREDICT, &r, &tm)))
        goto out;
    r.need = inputs_needed(a, m->graph);
    arena_set_oom(a, NULL); /* the compile is over; nothing jumps out of a run */
    rc = run_predict(&gradc_cli, &o, &r);
out:
    cg_free(cg);
    arena_free(a);
    return rc;
}

static int cmd_eval(int argc, char **argv) {
    RunEvalOpts o;
    int rc = run_parse_eval(&gradc_cli, argc - 1, argv + 1, &o);
    if (rc || o.help)
        return rc;
    double t0 = run_now_ms();
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
    RunModel r;
    Timing tm;
    timing_start(&tm, o.time_passes);
    Model *m = load_model(a, &d, o.model);
    if (!m)
        goto out;
    timing_mark(&tm, "front end");
    run_model_from(a, &r, m, NULL, false);
    if ((rc = run_eval_check(&gradc_cli, &o, &r)))
        goto out;
    rc = EXIT_USER;
    if (!o.data && !fe_check_data(m, &d)) {
        print_diags(&d);
        goto out;
    }
    /* The eval program reads the forward graph only: no gradient, no
     * optimizer (and so no optimizer state to load). */
    if (!(cg = compile_jit(a, &d, m->graph, o.batch, 1u << PROG_EVAL, &r, &tm)))
        goto out;
    r.compile_ms = run_now_ms() - t0;
    arena_set_oom(a, NULL); /* the compile is over; nothing jumps out of a run */
    rc = run_eval(&gradc_cli, &o, &r);
out:
    cg_free(cg);
    arena_free(a);
    return rc;
}

/* ---- main ------------------------------------------------------------------------ */

/* --max-memory SIZE (or --max-memory=SIZE) of the commands that plan an
 * arena to allocate (train, predict, eval, check, build; summary reports
 * against it): taken out of argv (compile_set_max_memory) before the
 * command parses the rest. 0, or EXIT_USAGE after saying what is wrong. */
static int take_max_memory(const char *cmd, int *argc, char **argv) {
    int w = 2;
    for (int i = 2; i < *argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--max-memory")) {
            if (i + 1 >= *argc)
                return usage_error(cmd, "--max-memory needs a size (like 512M, 2G or 1500000000)");
            v = argv[++i];
        } else if (!strncmp(a, "--max-memory=", 13)) {
            v = a + 13;
        } else {
            argv[w++] = argv[i];
            continue;
        }
        uint64_t n;
        if (!compile_parse_size(v, &n))
            return usage_error(cmd, "--max-memory expects a size like 512M, 2G or 1500000000, "
                                    "got '%s'",
                               v);
        compile_set_max_memory(n);
    }
    argv[w] = NULL;
    *argc = w;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs(usage_main, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        fputs(usage_main, stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("gradc %s\n", GRADC_VERSION);
        return 0;
    }
    static const char *const planning[] = {"train", "predict", "eval", "build", "check",
                                           "summary"};
    for (int i = 0; i < 6; i++) {
        int rc;
        if (!strcmp(cmd, planning[i]) && (rc = take_max_memory(cmd, &argc, argv)))
            return rc;
    }
    if (!strcmp(cmd, "train"))
        return cmd_train(argc, argv);
    if (!strcmp(cmd, "predict"))
        return cmd_predict(argc, argv);
    if (!strcmp(cmd, "eval"))
        return cmd_eval(argc, argv);
    if (!strcmp(cmd, "build"))
        return cmd_build(argc - 1, argv + 1);
    if (!strcmp(cmd, "grad"))
        return cmd_grad(argc, argv);
    if (!strcmp(cmd, "emit"))
        return cmd_emit(argc, argv);
    if (!strcmp(cmd, "check"))
        return cmd_check(argc, argv);
    if (!strcmp(cmd, "summary"))
        return cmd_summary(argc, argv);
    static const char *const commands[] = {"train", "predict", "eval",  "build",
                                           "grad",  "emit",    "check", "summary"};
    const char *near = closest_name(cmd, commands, 8);
    fprintf(stderr, "gradc: unknown command '%s'%s%s%s\n\n%s", cmd, near ? "; did you mean '" : "",
            near ? near : "", near ? "'?" : "", usage_main);
    return EXIT_USAGE;
}
