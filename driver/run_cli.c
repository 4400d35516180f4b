/* run_cli.c: the options of train, predict and eval, their --help texts,
 * and the main of a built program (run_program), with its CPU check.
 *
 * The same parser serves gradc (whose commands take the model file first
 * and may change what is compiled: --optimizer, any --batch) and a built
 * program (whose model is compiled in: no model file, no --optimizer, a
 * batch up to the one it was built for). Usage errors print here and return
 * RUN_EXIT_USAGE; nothing exits.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "run_internal.h"

/* ---- helpers ----------------------------------------------------------------------- */

double run_now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

int run_usage_error(const RunCli *c, const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s %s: ", c->name, cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see '%s %s --help')\n", c->invoke, cmd);
    va_end(ap);
    return RUN_EXIT_USAGE;
}

bool run_parse_i64(const char *s, int64_t lo, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo)
        return false;
    *out = v;
    return true;
}

bool run_parse_f64(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return false;
    *out = v;
    return true;
}

const char *run_opt_value(int argc, char **argv, int *i, const char *name) {
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

/* ---- usage texts ---------------------------------------------------------------------
 * gradc's and a built program's differ in their first lines, --batch and
 * --optimizer; the rest is shared. */

/* "(built for native: avx2, fma, ...)"-style description of b's target. */
static void print_target(FILE *f, const RunModel *b) {
    fprintf(f, "%s", b->target);
    for (int i = 0; b->cpu_features && b->cpu_features[i]; i++)
        fprintf(f, "%s%s", i ? ", " : " (", b->cpu_features[i]);
    if (b->cpu_features && b->cpu_features[0])
        fputc(')', f);
}

static const char train_data[] =
    "  --data F        read this file instead of the data source's (first) file:\n"
    "                  csv: same columns; text: same context; npy: only when it\n"
    "                  names one file; idx: the images (the labels stay)\n"
    "  --epochs N      passes over the training data, in all (a resumed run\n"
    "                  continues up to epoch N)\n"
    "  --steps N       stop after N optimizer steps\n";

static const char train_rest[] =
    "  --seed N        seed for initialisation, shuffling and the split\n"
    "  --split X       hold out this fraction of the rows for val_loss and accuracy\n"
    "  --weights F     start from these weights (safetensors) instead of initialising\n"
    "  --resume F      continue the run that saved checkpoint F, exactly where it\n"
    "                  stopped: weights, optimizer state, step, epoch, RNG, seed\n"
    "  --save F        write a checkpoint (the trained weights, the optimizer state\n"
    "                  and where training stopped) here (default: <model>.safetensors)\n"
    "  --save-every N  also write it after every N finished epochs\n"
    "  --log F.jsonl   one JSON object per epoch: epoch, step, lr, loss, val_loss,\n"
    "                  accuracy, samples_per_s, seconds (a resumed run appends)\n"
    "  --plot F.svg    draw the training curves (loss, val_loss, accuracy per epoch)\n"
    "  --threads N     threads for the compiled code (default: one per CPU)\n"
    "  -q, --quiet     no progress output\n"
    "  -h, --help      this text\n"
    "\n"
    "SIGINT (Ctrl-C) or SIGTERM stops training after the current step, saves the\n"
    "checkpoint and exits with status 130 or 143; --resume F continues the run.\n"
    "A second signal quits at once (never in the middle of writing the file).\n";

static void usage_train(FILE *f, const RunCli *c) {
    const RunModel *b = c->built;
    if (!b) {
        fputs("usage: gradc train M.nn [options]\n"
              "\n"
              "Compiles the model (parse, autodiff, fuse, LLVM JIT) and trains it on the\n"
              "data of its train { } block. Options override that block:\n",
              f);
        fputs(train_data, f);
        fputs("  --batch N       mini-batch size\n"
              "  --optimizer R   the update rule, as in the train block: \"adam(lr = 3e-4)\";\n"
              "                  sgd momentum nesterov adagrad rmsprop adam adamw, or the\n"
              "                  model's own optimizer blocks\n"
              "  --lr X          the rule's learning rate (replaces a schedule too)\n"
              "  --check-numerics  stop at the first NaN or Inf and say which op made it\n"
              "  --profile       after training, the time of each kernel of the train\n"
              "                  program as a share of the step (on stderr)\n"
              "  --time-passes   print the time each compile stage took\n"
              "  --max-memory SIZE  refuse a model whose arena needs more (512M, 2G;\n"
              "                  default: the machine's memory and limits)\n"
              "  --mpi           train as one of the processes of `mpirun -np N gradc\n"
              "                  train M.nn --mpi`: each takes --batch rows of every step\n"
              "                  and the gradients are averaged (docs/distributed.md)\n",
              f);
    } else {
        fprintf(f,
                "usage: %s train [options]\n"
                "\n"
                "Trains the model compiled into this program (%s)\n"
                "on the data of its train { } block. Options override that block:\n",
                c->invoke, b->path);
        fputs(train_data, f);
        fprintf(f,
                "  --batch N       mini-batch size, at most %lld (the batch it was built for)\n"
                "  --lr X          the rule's learning rate, when it is a constant (a\n"
                "                  schedule is compiled in)\n",
                (long long)b->batch);
    }
    fputs(train_rest, f);
    if (b)
        fputs("\nThe update rule is compiled in: gradc build --optimizer R changes it.\n", f);
    if (b && b->dist_start)
        fprintf(f, "\nBuilt with --mpi: `mpirun -np N %s train` trains on N processes, each\n"
                   "taking --batch rows of every step, with the gradients averaged over them\n"
                   "(docs/distributed.md). Started alone, it is one process.\n",
                c->invoke);
}

static const char predict_opts[] =
    "  --weights W     the trained weights (safetensors); required unless every\n"
    "                  parameter's value is written in the model (param W = [...])\n"
    "  --input F       the rows to predict; the format comes from the name:\n"
    "                  .csv (the train block's csv column selection), .npy\n"
    "                  (repeat --input NAME=F.npy for several inputs), or MNIST\n"
    "                  IDX images (*-ubyte, *-ubyte.gz, or a name with 'idx').\n"
    "                  Default: the train block's data file(s)\n"
    "  --output F      write the CSV here (atomically) instead of to stdout\n"
    "  --top K         instead of the outputs, each row's K most likely classes\n"
    "                  from the first output (softmax probabilities): top1,p1,...;\n"
    "                  class names when the weights carry them (string labels)\n";

static const char predict_rest[] =
    "  --threads N     threads for the compiled code (default: one per CPU)\n"
    "  -q, --quiet     no summary line\n"
    "  -h, --help      this text\n"
    "\n"
    "Output: a header naming each output's columns (probs[0],probs[1],...; an\n"
    "output with one value per row is just its name), then one line per row.\n"
    "\n"
    "Models trained on text(...) data generate text instead, one character at\n"
    "a time, with the vocabulary stored in the weights:\n"
    "  --prompt S      the text to continue (required; every character must be\n"
    "                  in the vocabulary); shorter than the context, it is\n"
    "                  left-padded with its own first character\n"
    "  --length N      characters to generate (default 200)\n"
    "  --temperature T sample from p^(1/T); 0 picks the most likely (default 1)\n"
    "  --seed N        seed for the sampling (default 0)\n"
    "The prompt and the generated text go to stdout (or --output).\n";

static void usage_predict(FILE *f, const RunCli *c) {
    const RunModel *b = c->built;
    if (!b)
        fputs("usage: gradc predict M.nn [--weights W] [options]\n"
              "\n"
              "Compiles the model's predict program (its outputs), loads trained weights\n"
              "and runs it. Only the inputs the outputs depend on are read, so a CSV\n"
              "without the label column will do.\n",
              f);
    else
        fprintf(f,
                "usage: %s predict [--weights W] [options]\n"
                "\n"
                "Runs the predict program compiled into this program (%s):\n"
                "its outputs, with trained weights. Only the inputs the outputs depend\n"
                "on are read, so a CSV without the label column will do.\n",
                c->invoke, b->path);
    fputs(predict_opts, f);
    if (!b)
        fputs("  --batch N       rows per run of the predict program (default 256)\n"
              "  --time-passes   print the time each compile stage took\n"
              "  --max-memory SIZE  refuse a model whose arena needs more (512M, 2G;\n"
              "                  default: the machine's memory and limits)\n",
              f);
    else
        fprintf(f, "  --batch N       rows per run of the predict program (default and at\n"
                   "                  most %lld, the batch it was built for)\n",
                (long long)b->batch);
    fputs(predict_rest, f);
}

static void usage_eval(FILE *f, const RunCli *c) {
    const RunModel *b = c->built;
    if (!b)
        fputs("usage: gradc eval M.nn [--weights W] [options]\n"
              "\n"
              "Compiles the model's eval program (its loss and accuracy metric: no\n"
              "gradient, no optimizer, dropout off), loads trained weights and runs it\n",
              f);
    else
        fprintf(f,
                "usage: %s eval [--weights W] [options]\n"
                "\n"
                "Runs the eval program compiled into this program (%s):\n"
                "its loss and accuracy metric (no gradient, no optimizer, dropout off),\n"
                "with trained weights,\n",
                c->invoke, b->path);
    fputs("over every row of a data set, labels included. Prints the row count, the\n"
          "mean loss and, when the model has a metric, the accuracy.\n"
          "  --weights W     the trained weights (safetensors); required unless every\n"
          "                  parameter's value is written in the model\n"
          "  --data F        read this file instead of the train block's (first) file,\n"
          "                  as train --data does\n",
          f);
    if (!b)
        fputs("  --batch N       rows per run of the eval program (default 256)\n"
              "  --time-passes   print the time each compile stage took\n"
              "  --max-memory SIZE  refuse a model whose arena needs more (512M, 2G;\n"
              "                  default: the machine's memory and limits)\n",
              f);
    else
        fprintf(f, "  --batch N       rows per run of the eval program (default and at most\n"
                   "                  %lld, the batch it was built for)\n",
                (long long)b->batch);
    fputs("  --threads N     threads for the compiled code (default: one per CPU)\n"
          "  -q, --quiet     only the figures, not the summary line before them\n"
          "  -h, --help      this text\n",
          f);
}

/* ---- the parsers ------------------------------------------------------------------------ */

/* A positional argument: gradc's model file, or an error. */
static int positional(const RunCli *c, const char *cmd, const char **model, const char *a) {
    if (c->built)
        return run_usage_error(c, cmd, "unexpected argument '%s' (the model is compiled into "
                                       "this program)", a);
    if (*model)
        return run_usage_error(c, cmd, "one model file at a time ('%s' and '%s')", *model, a);
    *model = a;
    return 0;
}

/* --batch N: any size for gradc (it compiles for it), at most the built
 * batch for a program. */
static int parse_batch(const RunCli *c, const char *cmd, const char *v, int64_t *batch) {
    int64_t max = c->built ? c->built->batch : 1 << 24;
    if (run_parse_i64(v, 1, batch) && *batch <= max)
        return 0;
    if (c->built)
        return run_usage_error(c, cmd, "--batch expects an integer from 1 to %lld (this program "
                                       "was built for batches of at most %lld; gradc build "
                                       "--batch N builds for more), got '%s'",
                               (long long)max, (long long)max, v);
    return run_usage_error(c, cmd, "--batch expects an integer from 1 to 16777216, got '%s'", v);
}

static int parse_threads(const RunCli *c, const char *cmd, const char *v, int64_t *threads) {
    if (!run_parse_i64(v, 1, threads) || *threads > 1024)
        return run_usage_error(c, cmd, "--threads expects a positive integer, got '%s'", v);
    return 0;
}

/* --time-passes, --check-numerics, --profile: compile-time switches of gradc's JIT.
 * In a built program, 0 after refusing them (RUN_EXIT_USAGE). */
static int gradc_only(const RunCli *c, const char *cmd, const char *opt, bool *flag) {
    if (c->built)
        return run_usage_error(c, cmd, "%s: only gradc's own %s compiles the model "
                                       "(gradc %s %s %s)",
                               opt, cmd, cmd, c->built->path, opt);
    *flag = true;
    return 0;
}

int run_parse_train(const RunCli *c, int argc, char **argv, RunTrainOpts *o) {
    *o = (RunTrainOpts){.epochs = -1, .steps = 0, .batch = -1, .threads = 0};
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i], *v = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage_train(stdout, c);
            o->help = true;
            return 0;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o->quiet = true;
        } else if ((v = run_opt_value(argc, argv, &i, "--epochs"))) {
            if (!run_parse_i64(v, 1, &o->epochs))
                rc = run_usage_error(c, "train", "--epochs expects a positive integer, got '%s'",
                                     v);
        } else if ((v = run_opt_value(argc, argv, &i, "--steps"))) {
            if (!run_parse_i64(v, 1, &o->steps))
                rc = run_usage_error(c, "train", "--steps expects a positive integer, got '%s'", v);
        } else if ((v = run_opt_value(argc, argv, &i, "--batch"))) {
            rc = parse_batch(c, "train", v, &o->batch);
        } else if ((v = run_opt_value(argc, argv, &i, "--seed"))) {
            if (!run_parse_i64(v, 0, &o->seed))
                rc = run_usage_error(c, "train", "--seed expects a non-negative integer, got "
                                                 "'%s'", v);
            o->have_seed = true;
        } else if ((v = run_opt_value(argc, argv, &i, "--threads"))) {
            rc = parse_threads(c, "train", v, &o->threads);
        } else if ((v = run_opt_value(argc, argv, &i, "--optimizer"))) {
            if (c->built)
                return run_usage_error(c, "train", "--optimizer: the optimizer is compiled in; "
                                                   "rebuild to change it (gradc build %s "
                                                   "--optimizer R)",
                                       c->built->path);
            o->optimizer = v;
        } else if ((v = run_opt_value(argc, argv, &i, "--lr"))) {
            if (!run_parse_f64(v, &o->lr) || o->lr < 0)
                rc = run_usage_error(c, "train", "--lr expects a non-negative number, got '%s'", v);
            o->have_lr = true;
        } else if ((v = run_opt_value(argc, argv, &i, "--split"))) {
            if (!run_parse_f64(v, &o->split) || o->split < 0 || o->split >= 1)
                rc = run_usage_error(c, "train", "--split expects a number in [0, 1), got '%s'", v);
            o->have_split = true;
        } else if ((v = run_opt_value(argc, argv, &i, "--data"))) {
            o->data = v;
        } else if ((v = run_opt_value(argc, argv, &i, "--weights"))) {
            o->weights = v;
        } else if ((v = run_opt_value(argc, argv, &i, "--resume"))) {
            o->resume = v;
        } else if ((v = run_opt_value(argc, argv, &i, "--save-every"))) {
            if (!run_parse_i64(v, 1, &o->save_every))
                rc = run_usage_error(c, "train", "--save-every expects a positive number of "
                                                 "epochs, got '%s'", v);
        } else if ((v = run_opt_value(argc, argv, &i, "--save"))) {
            o->save = v;
        } else if ((v = run_opt_value(argc, argv, &i, "--log"))) {
            o->log = v;
        } else if ((v = run_opt_value(argc, argv, &i, "--plot"))) {
            o->plot = v;
        } else if (!strcmp(a, "--check-numerics")) {
            rc = gradc_only(c, "train", a, &o->check_numerics);
        } else if (!strcmp(a, "--profile")) {
            rc = gradc_only(c, "train", a, &o->profile);
        } else if (!strcmp(a, "--time-passes")) {
            rc = gradc_only(c, "train", a, &o->time_passes);
        } else if (!strcmp(a, "--mpi")) {
            o->mpi = true;
            if (c->built && !c->built->dist_start)
                rc = run_usage_error(c, "train", "--mpi: this program was built without it "
                                                 "(gradc build %s --mpi)",
                                     c->built->path);
        } else if (a[0] == '-') {
            rc = run_usage_error(c, "train", "unknown option '%s'", a);
        } else {
            rc = positional(c, "train", &o->model, a);
        }
        if (!rc && v && !*v)
            rc = run_usage_error(c, "train", "%s needs a value", a);
    }
    if (rc)
        return rc;
    if (o->mpi && o->check_numerics)
        return run_usage_error(c, "train", "--check-numerics does not work with --mpi: find the "
                                           "NaN in a run of one process");
    if (!c->built && !o->model)
        return run_usage_error(c, "train", "no model file given");
    if (o->weights && o->resume)
        return run_usage_error(c, "train", "--weights and --resume do not go together: --weights "
                                           "starts a new run from weights, --resume continues a "
                                           "checkpoint");
    return 0;
}

int run_parse_predict(const RunCli *c, int argc, char **argv, RunPredictOpts *o) {
    *o = (RunPredictOpts){.length = 200, .batch = c->built ? c->built->batch : 256,
                          .temperature = 1.0};
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i], *v = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage_predict(stdout, c);
            o->help = true;
            return 0;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o->quiet = true;
        } else if (!strcmp(a, "--time-passes")) {
            rc = gradc_only(c, "predict", a, &o->time_passes);
        } else if ((v = run_opt_value(argc, argv, &i, "--weights"))) {
            o->weights = v;
        } else if ((v = run_opt_value(argc, argv, &i, "--input"))) {
            if (o->ninputs == RUN_MAX_INPUTS)
                return run_usage_error(c, "predict", "at most %d --input files", RUN_MAX_INPUTS);
            o->inputs[o->ninputs++] = v;
        } else if ((v = run_opt_value(argc, argv, &i, "--output"))) {
            o->output = v;
        } else if ((v = run_opt_value(argc, argv, &i, "--top"))) {
            if (!run_parse_i64(v, 1, &o->top) || o->top > (1 << 24))
                rc = run_usage_error(c, "predict", "--top expects a positive number of classes, "
                                                   "got '%s'", v);
        } else if ((v = run_opt_value(argc, argv, &i, "--prompt"))) {
            o->prompt = v;
        } else if ((v = run_opt_value(argc, argv, &i, "--length"))) {
            if (!run_parse_i64(v, 0, &o->length))
                rc = run_usage_error(c, "predict", "--length expects a non-negative integer, "
                                                   "got '%s'", v);
        } else if ((v = run_opt_value(argc, argv, &i, "--temperature"))) {
            if (!run_parse_f64(v, &o->temperature) || o->temperature < 0)
                rc = run_usage_error(c, "predict", "--temperature expects a number >= 0, got "
                                                   "'%s'", v);
        } else if ((v = run_opt_value(argc, argv, &i, "--seed"))) {
            if (!run_parse_i64(v, 0, &o->seed))
                rc = run_usage_error(c, "predict", "--seed expects a non-negative integer, got "
                                                   "'%s'", v);
        } else if ((v = run_opt_value(argc, argv, &i, "--batch"))) {
            rc = parse_batch(c, "predict", v, &o->batch);
        } else if ((v = run_opt_value(argc, argv, &i, "--threads"))) {
            rc = parse_threads(c, "predict", v, &o->threads);
        } else if (a[0] == '-') {
            rc = run_usage_error(c, "predict", "unknown option '%s'", a);
        } else {
            rc = positional(c, "predict", &o->model, a);
        }
        if (!rc && v && !*v)
            rc = run_usage_error(c, "predict", "%s needs a value", a);
    }
    if (rc)
        return rc;
    if (!c->built && !o->model)
        return run_usage_error(c, "predict", "no model file given");
    if (o->prompt && o->ninputs)
        return run_usage_error(c, "predict", "--prompt (text generation) and --input do not go "
                                             "together");
    if (o->prompt && o->top)
        return run_usage_error(c, "predict", "--top is for predictions over a file, not for "
                                             "text generation (--prompt)");
    return 0;
}

int run_parse_eval(const RunCli *c, int argc, char **argv, RunEvalOpts *o) {
    *o = (RunEvalOpts){.batch = c->built ? c->built->batch : 256};
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i], *v = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage_eval(stdout, c);
            o->help = true;
            return 0;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o->quiet = true;
        } else if (!strcmp(a, "--time-passes")) {
            rc = gradc_only(c, "eval", a, &o->time_passes);
        } else if ((v = run_opt_value(argc, argv, &i, "--weights"))) {
            o->weights = v;
        } else if ((v = run_opt_value(argc, argv, &i, "--data"))) {
            o->data = v;
        } else if ((v = run_opt_value(argc, argv, &i, "--batch"))) {
            rc = parse_batch(c, "eval", v, &o->batch);
        } else if ((v = run_opt_value(argc, argv, &i, "--threads"))) {
            rc = parse_threads(c, "eval", v, &o->threads);
        } else if (a[0] == '-') {
            rc = run_usage_error(c, "eval", "unknown option '%s'", a);
        } else {
            rc = positional(c, "eval", &o->model, a);
        }
        if (!rc && v && !*v)
            rc = run_usage_error(c, "eval", "%s needs a value", a);
    }
    if (rc)
        return rc;
    if (!c->built && !o->model)
        return run_usage_error(c, "eval", "no model file given");
    return 0;
}

/* ---- a built program --------------------------------------------------------------------- */

/* Does the comma-separated list hold name? */
static bool listed(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t k = end ? (size_t)(end - p) : strlen(p);
        if (k == n && !strncmp(p, name, n))
            return true;
        p = end ? end + 1 : NULL;
    }
    return false;
}

const char *run_cpu_missing(const RunModel *m, int (*supports)(const char *feature),
                            const char *lacks) {
    for (int i = 0; m->cpu_features && m->cpu_features[i]; i++) {
        const char *f = m->cpu_features[i];
        if (listed(lacks, f) || (supports && !supports(f)))
            return f;
    }
    return NULL;
}

static void usage_program(FILE *f, const RunCli *c) {
    const RunModel *m = c->built;
    fprintf(f,
            "usage: %s <command> [options]\n"
            "\n"
            "The model of %s, compiled for training by gradc %s\n"
            "for ",
            c->invoke, m->path, GRADC_VERSION);
    print_target(f, m);
    fprintf(f,
            ".\n"
            "\n"
            "commands:\n"
            "  train      train the model on the data of its train { } block\n"
            "  predict    run trained weights on new data, or generate text\n"
            "  eval       loss and accuracy of trained weights on a data set\n"
            "\n"
            "%s <command> --help describes a command's options: those of gradc train,\n"
            "predict and eval, without the model file (and without --optimizer).\n"
            "%s --version prints the gradc version that built it and the model hash.\n",
            c->invoke, c->invoke);
}

int run_program(const RunModel *m, int (*supports)(const char *feature), int argc, char **argv) {
    const char *argv0 = argc > 0 ? argv[0] : "prog";
    const char *slash = strrchr(argv0, '/');
    RunCli cli = {.name = slash ? slash + 1 : argv0, .invoke = argv0, .built = m};
    const RunCli *c = &cli;

    /* Before any of the model's code can run: an instruction the CPU lacks
     * would end the process with SIGILL. */
    const char *missing = run_cpu_missing(m, supports, getenv("GRADC_TEST_PRETEND_CPU_LACKS"));
    if (missing) {
        fprintf(stderr, "%s: error: this program was built for ", c->name);
        print_target(stderr, m);
        /* AVX-512 is what x86-64-v3 leaves out; without AVX2 only this
         * machine's own build will do. */
        fprintf(stderr, " but this CPU lacks %s; rebuild it with gradc build --target %s\n",
                missing,
                strstr(missing, "avx512") ? "x86-64-v3 (or --target native on this machine)"
                                          : "native on this machine");
        return RUN_EXIT_USER;
    }
    if (argc < 2) {
        usage_program(stderr, c);
        return RUN_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage_program(stdout, c);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("%s: %s built by gradc %s for ", c->name, m->path, GRADC_VERSION);
        print_target(stdout, m);
        printf("; model_hash %s\n", m->hash);
        return 0;
    }
    int rc;
    if (!strcmp(cmd, "train")) {
        RunTrainOpts o;
        if ((rc = run_parse_train(c, argc - 1, argv + 1, &o)) || o.help)
            return rc;
        return run_train(c, &o, m);
    }
    if (!strcmp(cmd, "predict")) {
        RunPredictOpts o;
        if ((rc = run_parse_predict(c, argc - 1, argv + 1, &o)) || o.help)
            return rc;
        return run_predict(c, &o, m);
    }
    if (!strcmp(cmd, "eval")) {
        RunEvalOpts o;
        if ((rc = run_parse_eval(c, argc - 1, argv + 1, &o)) || o.help)
            return rc;
        return run_eval(c, &o, m);
    }
    fprintf(stderr, "%s: unknown command '%s'\n\n", c->name, cmd);
    usage_program(stderr, c);
    return RUN_EXIT_USAGE;
}
