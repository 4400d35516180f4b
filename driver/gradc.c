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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build.h"
#include "codegen/cg.h"
#include "codegen/rtmodel.h"
#include "compile.h"
#include "frontend/frontend.h"
#include "run.h"

enum { EXIT_USER = RUN_EXIT_USER, EXIT_USAGE = RUN_EXIT_USAGE };

static const RunCli gradc_cli = {.name = "gradc", .invoke = "gradc", .built = NULL};

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
    "\n"
    "gradc <command> --help describes a command's options.\n"
    "gradc --version prints the version.\n";

static const char usage_emit[] =
    "usage: gradc emit M.nn [--ir | --llvm | --asm] [--batch N] [--optimizer R]\n"
    "\n"
    "Compiles the model for training as gradc train does and prints, to stdout:\n"
    "  --ir            the graph after the optimisation passes and the kernels of\n"
    "                  every program after fusion (the default)\n"
    "  --llvm          the LLVM IR after LLVM's optimisation\n"
    "  --asm           the host CPU's assembly\n"
    "  --batch N       the largest batch to compile for (default: the train block's)\n"
    "  --optimizer R   the update rule (default: the train block's)\n"
    "  -h, --help      this text\n";

static const char usage_grad[] =
    "usage: gradc grad M.nn [options]\n"
    "\n"
    "Prints the model's forward graph, its gradient graph (every node with its\n"
    "shape, source line and the chain rule that made it) and the optimizer\n"
    "update, after the optimisation passes.\n"
    "  --raw           print the graph before the optimisation passes\n"
    "  --kernels       also print the train step's kernels after fusion\n"
    "  -h, --help      this text\n";

/* ---- small helpers ---------------------------------------------------------- */

static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const char *cmd, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return run_usage_error(&gradc_cli, cmd, "%s", msg);
}

/* Compile the model's programs in mask for the JIT at batch; r->rm and
 * r->nkernels from the result. NULL after printing the diagnostics. */
static CgModule *compile_jit(Arena *a, Diags *d, Graph *g, int64_t batch, unsigned mask,
                             RunModel *r) {
    ir_optimize(g);
    Plan *plan = ir_plan_programs(g, batch, 4, mask);
    CgOptions co = {.elem_size = 4, .opt_level = 2};
    CgModule *cg = cg_compile(g, plan, &co, d);
    if (!cg) {
        print_diags(d);
        return NULL;
    }
    r->rm = cg_rt_model_jit(a, g, plan, cg);
    r->nkernels = plan->prog[PROG_TRAIN].kernels.len;
    return cg;
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
    Diags d;
    diags_init(&d, a);
    rc = EXIT_USER;
    CgModule *cg = NULL;
    RunModel r;
    Model *m = load_model(a, &d, o.model);
    if (!m)
        goto out;
    run_model_from(a, &r, m, o.optimizer, false);
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
    /* The grad program is for gradient checks; training needs the rest. */
    int64_t batch = o.batch > 0 ? o.batch : m->train.batch;
    if (!(cg = compile_jit(a, &d, m->graph, batch, ~(1u << PROG_GRAD), &r)))
        goto out;
    r.compile_ms = run_now_ms() - t0;
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
    Diags d;
    diags_init(&d, a);
    rc = EXIT_USER;
    CgModule *cg = NULL;
    RunModel r;
    Model *m = load_model(a, &d, o.model);
    if (!m)
        goto out;
    run_model_from(a, &r, m, NULL, false);
    if ((rc = run_predict_check(&gradc_cli, &o, &r)))
        goto out;
    rc = EXIT_USER;
    /* Text is generated one character at a time. */
    bool text = r.data.kind == RUN_DATA_TEXT;
    if (!(cg = compile_jit(a, &d, m->graph, text ? 1 : o.batch, 1u << PROG_PREDICT, &r)))
        goto out;
    r.need = inputs_needed(a, m->graph);
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
    Diags d;
    diags_init(&d, a);
    rc = EXIT_USER;
    CgModule *cg = NULL;
    RunModel r;
    Model *m = load_model(a, &d, o.model);
    if (!m)
        goto out;
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
    if (!(cg = compile_jit(a, &d, m->graph, o.batch, 1u << PROG_EVAL, &r)))
        goto out;
    r.compile_ms = run_now_ms() - t0;
    rc = run_eval(&gradc_cli, &o, &r);
out:
    cg_free(cg);
    arena_free(a);
    return rc;
}

/* ---- gradc grad --------------------------------------------------------------- */

static int cmd_grad(int argc, char **argv) {
    const char *model = NULL;
    bool raw = false, kernels = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_grad, stdout);
            return 0;
        } else if (!strcmp(a, "--raw")) {
            raw = true;
        } else if (!strcmp(a, "--kernels")) {
            kernels = true;
        } else if (a[0] == '-') {
            return usage_error("grad", "unknown option '%s'", a);
        } else if (model) {
            return usage_error("grad", "one model file at a time ('%s' and '%s')", model, a);
        } else {
            model = a;
        }
    }
    if (!model)
        return usage_error("grad", "no model file given");
    Arena *a = arena_new();
    Diags d;
    diags_init(&d, a);
    int rc = EXIT_USER;
    Model *m = load_model(a, &d, model);
    if (!m)
        goto out;
    Graph *g = m->graph;
    if (g->loss) {
        if (!fe_build_training(m, &d, NULL, NAN)) {
            print_diags(&d);
            goto out;
        }
    } else {
        fprintf(stderr, "%s: note: the model has no 'loss = ...', so it has no gradient graph\n", model);
    }
    if (!raw)
        ir_optimize(g);
    ir_print_graph(stdout, g);
    if (kernels && g->loss) {
        Plan *plan = ir_plan(g, m->train.batch, 4);
        printf("\n");
        ir_print_program(stdout, g, &plan->prog[PROG_TRAIN]);
    }
    rc = 0;
out:
    arena_free(a);
    return rc;
}

/* ---- gradc emit --------------------------------------------------------------- */

static int cmd_emit(int argc, char **argv) {
    const char *model = NULL, *optimizer = NULL;
    enum { EMIT_IR, EMIT_LLVM, EMIT_ASM } what = EMIT_IR;
    int64_t batch = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_emit, stdout);
            return 0;
        } else if (!strcmp(a, "--ir")) {
            what = EMIT_IR;
        } else if (!strcmp(a, "--llvm")) {
            what = EMIT_LLVM;
        } else if (!strcmp(a, "--asm")) {
            what = EMIT_ASM;
        } else if ((v = run_opt_value(argc, argv, &i, "--batch"))) {
            if (!run_parse_i64(v, 1, &batch) || batch > (1 << 24))
                return usage_error("emit", "--batch expects an integer from 1 to 16777216, got '%s'", v);
        } else if ((v = run_opt_value(argc, argv, &i, "--optimizer"))) {
            optimizer = v;
        } else if (a[0] == '-') {
            return usage_error("emit", "unknown option '%s'", a);
        } else if (model) {
            return usage_error("emit", "one model file at a time ('%s' and '%s')", model, a);
        } else {
            model = a;
        }
    }
    if (!model)
        return usage_error("emit", "no model file given");
    Arena *a = arena_new();
    Diags d;
    diags_init(&d, a);
    int rc = EXIT_USER;
    CgModule *cg = NULL;
    Model *m = load_model(a, &d, model);
    if (!m)
        goto out;
    Graph *g = m->graph;
    if (g->loss && !fe_build_training(m, &d, optimizer, NAN)) {
        print_diags(&d);
        goto out;
    }
    ir_optimize(g);
    Plan *plan = ir_plan(g, batch ? batch : m->train.batch, 4);
    if (what == EMIT_IR) {
        ir_print_graph(stdout, g);
        for (int k = 0; k < PROG_COUNT; k++)
            if (plan->prog[k].roots.len) {
                printf("\n");
                ir_print_program(stdout, g, &plan->prog[k]);
            }
        rc = 0;
        goto out;
    }
    CgOptions co = {.elem_size = 4, .opt_level = 2};
    cg = cg_compile(g, plan, &co, &d);
    if (!cg) {
        print_diags(&d);
        goto out;
    }
    char *err = NULL;
    char *text = what == EMIT_LLVM ? cg_llvm_ir(cg) : cg_module_asm(cg, &err);
    if (!text) {
        fprintf(stderr, "gradc: error: %s\n", err ? err : "no code");
        free(err);
        goto out;
    }
    fputs(text, stdout);
    free(text);
    rc = 0;
out:
    cg_free(cg);
    arena_free(a);
    return rc;
}

/* ---- main ------------------------------------------------------------------------ */

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
    static const char *const commands[] = {"train", "predict", "eval", "build", "grad", "emit"};
    const char *near = closest_name(cmd, commands, 6);
    fprintf(stderr, "gradc: unknown command '%s'%s%s%s\n\n%s", cmd, near ? "; did you mean '" : "",
            near ? near : "", near ? "'?" : "", usage_main);
    return EXIT_USAGE;
}
