/* gradc.c: the command-line driver.
 *
 * Owns argument parsing, reading the model file, running the pipeline (front
 * end, autodiff, optimizer, passes, plan, code generation) and handing the
 * compiled model to the runtime. Decides exit statuses: 0 success, 1 a user
 * error (the model, the data, a file), 2 bad usage. Every other layer
 * reports errors and returns; only this file prints them and exits.
 */
#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codegen/cg.h"
#include "codegen/rtmodel.h"
#include "frontend/frontend.h"
#include "runtime/rt.h"

#define GRADC_VERSION "0.1.0"

enum { EXIT_USER = 1, EXIT_USAGE = 2 };

static const char usage_main[] =
    "usage: gradc <command> [options]\n"
    "\n"
    "commands:\n"
    "  train M.nn    compile the model with the JIT and train it\n"
    "  grad M.nn     print the forward graph, the gradient graph and the update\n"
    "\n"
    "gradc <command> --help describes a command's options.\n"
    "gradc --version prints the version.\n";

static const char usage_train[] =
    "usage: gradc train M.nn [options]\n"
    "\n"
    "Compiles the model (parse, autodiff, fuse, LLVM JIT) and trains it on the\n"
    "data of its train { } block. Options override that block:\n"
    "  --data F        read this CSV file instead (same columns)\n"
    "  --epochs N      passes over the training data\n"
    "  --steps N       stop after N optimizer steps\n"
    "  --batch N       mini-batch size\n"
    "  --lr X          learning rate\n"
    "  --seed N        seed for initialisation, shuffling and the split\n"
    "  --split X       hold out this fraction of the rows for val_loss and accuracy\n"
    "  --weights F     start from these weights (safetensors) instead of initialising\n"
    "  --save F        write the trained weights here (default: <model>.safetensors)\n"
    "  --log F.jsonl   one JSON object per epoch: epoch, step, loss, val_loss,\n"
    "                  accuracy, samples_per_s, seconds\n"
    "  --threads N     OpenBLAS threads (default: OpenBLAS's choice)\n"
    "  -q, --quiet     no progress output\n"
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

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "gradc %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see 'gradc %s --help')\n", cmd);
    va_end(ap);
    return EXIT_USAGE;
}

/* The whole file into an arena string; NULL with errno set on failure. */
static char *read_file(Arena *a, const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (size_t k; buf && (k = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += k;
        if (n == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb)
                free(buf);
            buf = nb;
        }
    }
    int bad = ferror(f) || !buf;
    int saved = errno;
    fclose(f);
    if (bad) {
        free(buf);
        errno = saved ? saved : EIO;
        return NULL;
    }
    char *text = arena_strndup(a, buf, n);
    free(buf);
    *len = n;
    return text;
}

static bool parse_i64(const char *s, int64_t lo, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo)
        return false;
    *out = v;
    return true;
}

static bool parse_f64(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return false;
    *out = v;
    return true;
}

/* Reads the value of option argv[*i] ("--x v" or "--x=v"); NULL if absent. */
static const char *opt_value(int argc, char **argv, int *i, const char *name) {
    const char *arg = argv[*i];
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0)
        return NULL;
    if (arg[n] == '=')
        return arg + n + 1;
    if (arg[n] != 0)
        return NULL;
    if (*i + 1 >= argc)
        return "";
    return argv[++*i];
}

static bool want_color(void) { return isatty(fileno(stderr)) && !getenv("NO_COLOR"); }

/* Parse and lower the model file; prints diagnostics. NULL on any error. */
static Model *load_model(Arena *a, Diags *d, const char *path) {
    size_t len;
    char *text = read_file(a, path, &len);
    if (!text) {
        fprintf(stderr, "gradc: error: cannot read '%s': %s\n", path, strerror(errno));
        return NULL;
    }
    if (strlen(text) != len) {
        fprintf(stderr, "gradc: error: '%s' is not a text file (it contains a NUL byte)\n", path);
        return NULL;
    }
    Model *m = fe_compile(a, d, path, text);
    if (!m || d->nerrors) {
        diags_print(d, stderr, want_color());
        return NULL;
    }
    return m;
}

/* ---- gradc train -------------------------------------------------------------- */

typedef struct TrainOpts {
    const char *model, *data, *weights, *save, *log;
    int64_t epochs, steps, batch, seed, threads;
    double lr, split;
    bool have_lr, have_seed, have_split, quiet;
} TrainOpts;

static int parse_train_opts(int argc, char **argv, TrainOpts *o) {
    *o = (TrainOpts){.epochs = -1, .steps = 0, .batch = -1, .threads = 0};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_train, stdout);
            exit(0);
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o->quiet = true;
        } else if ((v = opt_value(argc, argv, &i, "--epochs"))) {
            if (!parse_i64(v, 1, &o->epochs))
                return usage_error("train", "--epochs expects a positive integer, got '%s'", v);
        } else if ((v = opt_value(argc, argv, &i, "--steps"))) {
            if (!parse_i64(v, 1, &o->steps))
                return usage_error("train", "--steps expects a positive integer, got '%s'", v);
        } else if ((v = opt_value(argc, argv, &i, "--batch"))) {
            if (!parse_i64(v, 1, &o->batch) || o->batch > (1 << 24))
                return usage_error("train", "--batch expects an integer from 1 to 16777216, got '%s'", v);
        } else if ((v = opt_value(argc, argv, &i, "--seed"))) {
            if (!parse_i64(v, 0, &o->seed))
                return usage_error("train", "--seed expects a non-negative integer, got '%s'", v);
            o->have_seed = true;
        } else if ((v = opt_value(argc, argv, &i, "--threads"))) {
            if (!parse_i64(v, 1, &o->threads) || o->threads > 1024)
                return usage_error("train", "--threads expects a positive integer, got '%s'", v);
        } else if ((v = opt_value(argc, argv, &i, "--lr"))) {
            if (!parse_f64(v, &o->lr) || o->lr < 0)
                return usage_error("train", "--lr expects a non-negative number, got '%s'", v);
            o->have_lr = true;
        } else if ((v = opt_value(argc, argv, &i, "--split"))) {
            if (!parse_f64(v, &o->split) || o->split < 0 || o->split >= 1)
                return usage_error("train", "--split expects a number in [0, 1), got '%s'", v);
            o->have_split = true;
        } else if ((v = opt_value(argc, argv, &i, "--data"))) {
            o->data = v;
        } else if ((v = opt_value(argc, argv, &i, "--weights"))) {
            o->weights = v;
        } else if ((v = opt_value(argc, argv, &i, "--save"))) {
            o->save = v;
        } else if ((v = opt_value(argc, argv, &i, "--log"))) {
            o->log = v;
        } else if (a[0] == '-') {
            return usage_error("train", "unknown option '%s'", a);
        } else if (o->model) {
            return usage_error("train", "one model file at a time ('%s' and '%s')", o->model, a);
        } else {
            o->model = a;
        }
        if (v && !*v)
            return usage_error("train", "%s needs a value", a);
    }
    if (!o->model)
        return usage_error("train", "no model file given");
    return 0;
}

/* The optimizer of the train block with its arguments and --lr applied.
 * Reports unknown names at their location; false on error. */
static bool choose_optimizer(const Model *m, const TrainOpts *o, Diags *d, Optimizer *out) {
    const char *name = m->train.optimizer ? m->train.optimizer : "sgd";
    const Optimizer *opt = opt_lookup(name);
    if (!opt) {
        int n;
        const char *const *known = opt_names(&n);
        const char *near = closest_name(name, known, n);
        if (near) {
            diag_error(d, m->train.optimizer_loc, "unknown optimizer '%s'; did you mean '%s'?", name, near);
        } else {
            char list[256] = "";
            for (int i = 0; i < n; i++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", known[i]);
            diag_error(d, m->train.optimizer_loc, "unknown optimizer '%s' (known: %s)", name, list);
        }
        return false;
    }
    *out = *opt;
    for (int i = 0; i < m->train.nopt_args; i++) {
        const OptArg *arg = &m->train.opt_args[i];
        int k = 0;
        while (k < out->nhyper && strcmp(out->hyper_names[k], arg->name) != 0)
            k++;
        if (k == out->nhyper) {
            diag_error(d, arg->loc, "optimizer '%s' has no hyperparameter '%s'", name, arg->name);
            return false;
        }
        out->hyper_values[k] = arg->value;
    }
    for (int k = 0; k < out->nhyper && o->have_lr; k++)
        if (!strcmp(out->hyper_names[k], "lr"))
            out->hyper_values[k] = o->lr;
    return true;
}

/* The train block's CSV description as the runtime's. */
static RtCsvSpec csv_spec(Arena *a, const DataSpec *ds, const char *path_override) {
    RtCsvSpec s = {.path = path_override ? path_override : ds->path, .header = ds->header,
                   .ninputs = ds->ninputs};
    RtCsvInput *ins = arena_alloc(a, sizeof(RtCsvInput) * (size_t)(ds->ninputs + 1));
    for (int i = 0; i < ds->ninputs; i++) {
        const DataColumns *dc = &ds->inputs[i];
        RtColumnSel *cols = arena_alloc(a, sizeof(RtColumnSel) * (size_t)(dc->ncols + 1));
        for (int c = 0; c < dc->ncols; c++) {
            cols[c].name = dc->names ? dc->names[c] : NULL;
            cols[c].index = dc->indices ? dc->indices[c] : 0;
        }
        ins[i] = (RtCsvInput){dc->input, dc->ncols, cols};
    }
    s.inputs = ins;
    return s;
}

static int cmd_train(int argc, char **argv) {
    TrainOpts o;
    int rc = parse_train_opts(argc, argv, &o);
    if (rc)
        return rc;
    double t0 = now_ms();
    Arena *a = arena_new();
    Diags d;
    diags_init(&d, a);
    rc = EXIT_USER;
    CgModule *cg = NULL;
    RtSession s = {0};
    RtDataset data = {0};
    RtError err;

    Model *m = load_model(a, &d, o.model);
    if (!m)
        goto out;
    Graph *g = m->graph;
    if (!g->loss) {
        fprintf(stderr, "%s: error: the model has no 'loss = ...' statement, so there is nothing to train\n", o.model);
        goto out;
    }
    Optimizer opt;
    if (!choose_optimizer(m, &o, &d, &opt)) {
        diags_print(&d, stderr, want_color());
        goto out;
    }
    if (m->train.data.kind == DATA_NONE) {
        fprintf(stderr, "%s: error: the train block has no 'data = csv(...)', so gradc does not know "
                        "what to train on\n", o.model);
        goto out;
    }
    if (!o.data && !fe_check_data(m, &d)) {
        diags_print(&d, stderr, want_color());
        goto out;
    }
    int64_t batch = o.batch > 0 ? o.batch : m->train.batch;
    ad_backward(g);
    opt_build(g, &opt);
    ir_optimize(g);
    /* The grad program is for gradient checks; training needs the rest. */
    Plan *plan = ir_plan_programs(g, batch, 4, ~(1u << PROG_GRAD));
    CgOptions co = {.elem_size = 4, .opt_level = 2};
    cg = cg_compile(g, plan, &co, &d);
    if (!cg) {
        diags_print(&d, stderr, want_color());
        goto out;
    }
    RtModel *rm = cg_rt_model_jit(a, g, plan, cg);
    double compile_ms = now_ms() - t0;

    rt_setup((int)o.threads);
    uint64_t seed = o.have_seed ? (uint64_t)o.seed : m->train.seed;
    if (rt_session_init(&s, rm, seed, &err) != RT_OK)
        goto rt_error;
    if (o.weights) {
        if (rt_load_weights(&s, o.weights, &err) != RT_OK)
            goto rt_error;
    } else {
        rt_init_params(&s);
    }
    RtCsvSpec spec = csv_spec(a, &m->train.data, o.data);
    if (rt_load_csv(&data, rm, &spec, &err) != RT_OK)
        goto rt_error;
    if (!o.quiet) {
        int64_t nvalues = 0;
        for (int i = 0; i < rm->nparams; i++)
            nvalues += rt_numel(&rm->params[i], 1);
        printf("gradc: %s: %d parameters (%lld values), %d kernels, compiled in %.0f ms; "
               "%lld rows; OpenBLAS %s\n",
               o.model, rm->nparams, (long long)nvalues, plan->prog[PROG_TRAIN].kernels.len,
               compile_ms, (long long)data.n, rt_blas_corename());
    }
    RtTrainConfig tc = {
        .epochs = o.epochs > 0 ? (int)o.epochs : m->train.epochs,
        .steps = o.steps,
        .batch = batch,
        .seed = seed,
        .split = o.have_split ? o.split : m->train.split,
        .log_path = o.log,
        .quiet = o.quiet,
        .out = stdout,
    };
    RtEpochStats last;
    if (rt_train(&s, &data, &tc, &last, &err) != RT_OK)
        goto rt_error;
    const char *save = o.save ? o.save : arena_printf(a, "%s.safetensors", g->name);
    if (rt_save_weights(&s, save, &err) != RT_OK)
        goto rt_error;
    if (!o.quiet)
        printf("gradc: saved weights to %s\n", save);
    rc = 0;
    goto out;
rt_error:
    fprintf(stderr, "gradc: error: %s\n", err.msg);
out:
    rt_dataset_free(&data);
    if (s.arena)
        rt_session_free(&s);
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
        Optimizer opt;
        TrainOpts none = {0};
        if (!choose_optimizer(m, &none, &d, &opt)) {
            diags_print(&d, stderr, want_color());
            goto out;
        }
        ad_backward(g);
        opt_build(g, &opt);
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
    if (!strcmp(cmd, "grad"))
        return cmd_grad(argc, argv);
    static const char *const commands[] = {"train", "grad"};
    const char *near = closest_name(cmd, commands, 2);
    fprintf(stderr, "gradc: unknown command '%s'%s%s%s\n\n%s", cmd, near ? "; did you mean '" : "",
            near ? near : "", near ? "'?" : "", usage_main);
    return EXIT_USAGE;
}
