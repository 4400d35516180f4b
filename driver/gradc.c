/* gradc.c: the command-line driver.
 *
 * Owns argument parsing, reading the model file, running the pipeline (front
 * end, autodiff, optimizer, passes, plan, code generation) and handing the
 * compiled model to the runtime: training, prediction over a file, text
 * generation. Maps the train block's data source (csv, idx, npy, text) onto
 * the runtime's loaders. Decides exit statuses: 0 success, 1 a user error
 * (the model, the data, a file), 2 bad usage. Every other layer reports
 * errors and returns; only this file prints them and exits.
 */
#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
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
    "  predict M.nn  run a trained model on new data, or generate text\n"
    "  eval M.nn     loss and accuracy of trained weights on a data set\n"
    "  grad M.nn     print the forward graph, the gradient graph and the update\n"
    "  emit M.nn     print the compiled programs: kernels, LLVM IR or assembly\n"
    "\n"
    "gradc <command> --help describes a command's options.\n"
    "gradc --version prints the version.\n";

static const char usage_train[] =
    "usage: gradc train M.nn [options]\n"
    "\n"
    "Compiles the model (parse, autodiff, fuse, LLVM JIT) and trains it on the\n"
    "data of its train { } block. Options override that block:\n"
    "  --data F        read this file instead of the data source's (first) file:\n"
    "                  csv: same columns; text: same context; npy: only when it\n"
    "                  names one file; idx: the images (the labels stay)\n"
    "  --epochs N      passes over the training data, in all (a resumed run\n"
    "                  continues up to epoch N)\n"
    "  --steps N       stop after N optimizer steps\n"
    "  --batch N       mini-batch size\n"
    "  --optimizer R   the update rule, as in the train block: \"adam(lr = 3e-4)\";\n"
    "                  sgd momentum nesterov adagrad rmsprop adam adamw, or the\n"
    "                  model's own optimizer blocks\n"
    "  --lr X          the rule's learning rate (replaces a schedule too)\n"
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
    "  --threads N     OpenBLAS threads (default: OpenBLAS's choice)\n"
    "  -q, --quiet     no progress output\n"
    "  -h, --help      this text\n"
    "\n"
    "SIGINT (Ctrl-C) or SIGTERM stops training after the current step, saves the\n"
    "checkpoint and exits with status 130 or 143; --resume F continues the run.\n"
    "A second signal quits at once (never in the middle of writing the file).\n";

static const char usage_predict[] =
    "usage: gradc predict M.nn [--weights W] [options]\n"
    "\n"
    "Compiles the model's predict program (its outputs), loads trained weights\n"
    "and runs it. Only the inputs the outputs depend on are read, so a CSV\n"
    "without the label column will do.\n"
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
    "                  class names when the weights carry them (string labels)\n"
    "  --batch N       rows per run of the predict program (default 256)\n"
    "  --threads N     OpenBLAS threads\n"
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

static const char usage_eval[] =
    "usage: gradc eval M.nn [--weights W] [options]\n"
    "\n"
    "Compiles the model's eval program (its loss and accuracy metric: no\n"
    "gradient, no optimizer, dropout off), loads trained weights and runs it\n"
    "over every row of a data set, labels included. Prints the row count, the\n"
    "mean loss and, when the model has a metric, the accuracy.\n"
    "  --weights W     the trained weights (safetensors); required unless every\n"
    "                  parameter's value is written in the model\n"
    "  --data F        read this file instead of the train block's (first) file,\n"
    "                  as gradc train --data does\n"
    "  --batch N       rows per run of the eval program (default 256)\n"
    "  --threads N     OpenBLAS threads\n"
    "  -q, --quiet     only the figures, not the summary line before them\n"
    "  -h, --help      this text\n";

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
    const char *resume; /* --resume: a checkpoint to continue from */
    const char *optimizer; /* --optimizer "adam(lr = 3e-4)" */
    int64_t epochs, steps, batch, seed, threads;
    int64_t save_every; /* --save-every N epochs; 0: only at the end */
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
        } else if ((v = opt_value(argc, argv, &i, "--optimizer"))) {
            o->optimizer = v;
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
        } else if ((v = opt_value(argc, argv, &i, "--resume"))) {
            o->resume = v;
        } else if ((v = opt_value(argc, argv, &i, "--save-every"))) {
            if (!parse_i64(v, 1, &o->save_every))
                return usage_error("train", "--save-every expects a positive number of epochs, "
                                            "got '%s'", v);
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
    if (o->weights && o->resume)
        return usage_error("train", "--weights and --resume do not go together: --weights starts "
                                    "a new run from weights, --resume continues a checkpoint");
    return 0;
}

/* ---- data sources ----------------------------------------------------------- */

/* The train block's CSV description as the runtime's. need: the inputs to
 * load (NULL: all). */
static RtCsvSpec csv_spec(Arena *a, const DataSpec *ds, const char *path_override,
                          const bool *need) {
    RtCsvSpec s = {.path = path_override ? path_override : ds->path, .header = ds->header,
                   .ninputs = ds->ninputs, .need = need};
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

/* File k of a data source (DataSpec.path for a front end that sets only it). */
static const char *data_path(const DataSpec *ds, int k) {
    if (k < ds->nfiles && ds->files)
        return ds->files[k].path;
    return k == 0 ? ds->path : NULL;
}

static const char *data_kind_name(DataKind k) {
    switch (k) {
    case DATA_NONE: return "no";
    case DATA_CSV: return "csv";
    case DATA_IDX: return "idx";
    case DATA_NPY: return "npy";
    case DATA_TEXT: return "text";
    }
    return "?";
}

/* What weights trained earlier fix about the data, so that ids keep the
 * meaning they had in training: a text model's vocabulary, the class names
 * of a column of string labels. */
typedef struct Known {
    bool have_vocab;
    RtVocab vocab;
    int nclasses;
    const char **classes; /* malloc'd, pointing into classes_text */
    char *classes_text;   /* malloc'd */
} Known;

/* Load the train block's data source ds for rm. override replaces its
 * (first) file. need NULL: every input, labels included (training); else
 * only those inputs (prediction: idx reads no labels). known (may be NULL):
 * a text file must use its vocabulary (else the file's own is built), and
 * string labels its class names (else the file's sorted labels); the
 * vocabulary used goes to vocab_out. */
static RtStatus load_data(Arena *a, const DataSpec *ds, const RtModel *rm, const char *override,
                          const bool *need, const Known *known, RtVocab *vocab_out,
                          RtDataset *d, RtError *err) {
    const char *first = override ? override : data_path(ds, 0);
    switch (ds->kind) {
    case DATA_NONE:
        return rt_fail(err, "the train block names no data");
    case DATA_CSV: {
        RtCsvSpec spec = csv_spec(a, ds, override, need);
        if (known && known->nclasses > 0) {
            spec.nclasses = known->nclasses;
            spec.classes = known->classes;
        }
        return rt_load_csv(d, rm, &spec, err);
    }
    case DATA_IDX:
        return rt_load_idx(d, rm, first, need ? NULL : data_path(ds, 1), ds->scale, err);
    case DATA_NPY: {
        if (override && ds->nfiles > 1)
            return rt_fail(err, "--data replaces one file, but the train block's npy(...) names "
                                "%d; write the files into the model instead",
                           ds->nfiles);
        RtNpyFile *files = arena_alloc(a, sizeof *files * (size_t)(ds->nfiles + 1));
        for (int i = 0; i < ds->nfiles; i++)
            files[i] = (RtNpyFile){ds->files[i].input, i == 0 ? first : ds->files[i].path};
        return rt_load_npy_inputs(d, rm, need, ds->nfiles, files, err);
    }
    case DATA_TEXT:
        return rt_load_text(d, rm, first, ds->context,
                            known && known->have_vocab ? &known->vocab : NULL, vocab_out, err);
    }
    return rt_fail(err, "unknown data source");
}

/* The vocabulary stored with text-model weights; *found false when the file
 * has none. */
static RtStatus weights_vocab(const char *path, RtVocab *v, bool *found, RtError *err) {
    char *s = NULL;
    *found = false;
    if (rt_read_weights_meta(path, "vocab", &s, err) != RT_OK)
        return RT_FAIL;
    if (!s)
        return RT_OK;
    RtError why;
    RtStatus st = rt_vocab_from_string(v, s, &why);
    free(s);
    if (st != RT_OK)
        return rt_fail(err, "%s: the vocabulary in the metadata is corrupt: %s", path, why.msg);
    *found = true;
    return RT_OK;
}

/* What the weights at path fix about the data (nothing for path NULL). */
static RtStatus known_from(const char *path, Known *k, RtError *err) {
    memset(k, 0, sizeof *k);
    if (!path)
        return RT_OK;
    if (weights_vocab(path, &k->vocab, &k->have_vocab, err) != RT_OK ||
        rt_read_weights_meta(path, "classes", &k->classes_text, err) != RT_OK)
        return RT_FAIL;
    if (k->classes_text)
        k->nclasses = ckpt_classes_from_string(k->classes_text, &k->classes);
    return RT_OK;
}

static void known_free(Known *k) {
    free(k->classes);
    free(k->classes_text);
    memset(k, 0, sizeof *k);
}

/* The seed a resumed run must use: the one the checkpoint at path was
 * trained with (its "seed" metadata), which decides the held-out split and
 * the data order. *seed is left alone when the checkpoint does not say; a
 * different --seed is an error. */
static RtStatus resume_seed(const char *path, const TrainOpts *o, uint64_t *seed, RtError *err) {
    char *v = NULL;
    if (rt_read_weights_meta(path, "seed", &v, err) != RT_OK)
        return RT_FAIL;
    if (!v)
        return RT_OK;
    int64_t saved;
    RtStatus st = RT_OK;
    if (!parse_i64(v, 0, &saved))
        st = rt_fail(err, "%s: corrupt checkpoint: metadata \"seed\" is \"%.40s\"", path, v);
    else if (o->have_seed && (uint64_t)o->seed != (uint64_t)saved)
        st = rt_fail(err, "%s was trained with seed %lld; resuming with --seed %lld would change "
                          "the held-out rows and the data order",
                     path, (long long)saved, (long long)o->seed);
    else
        *seed = (uint64_t)saved;
    free(v);
    return st;
}

/* --resume F must continue a run of this model and optimizer: F's
 * model_hash must be hash. A checkpoint without one (an older gradc's) is
 * taken as it is. */
static RtStatus check_resume_hash(const char *path, const TrainOpts *o, const char *hash,
                                  RtError *err) {
    char *v = NULL;
    if (rt_read_weights_meta(path, "model_hash", &v, err) != RT_OK)
        return RT_FAIL;
    RtStatus st = RT_OK;
    if (v && strcmp(v, hash) != 0)
        st = rt_fail(err, "'%s' was saved by a different model (or optimizer): its model_hash is "
                          "%.40s, but %s%s hashes to %s; continuing it would not be the run it "
                          "saved (to start from its weights anyway, use --weights %s)",
                     path, v, o->model, o->optimizer ? " with this --optimizer" : "", hash, path);
    free(v);
    return st;
}

/* Where gradc train's checkpoints go, what their metadata says, and when
 * one was last written. */
typedef struct Saver {
    const char *path;
    int nmeta;
    const char *keys[8], *values[8];
    int64_t every;      /* --save-every N; 0: at the end only */
    int64_t saved_step; /* the session's step at the last save; -1: none yet */
    bool quiet;
} Saver;

static void saver_add(Saver *sv, const char *key, const char *value) {
    sv->keys[sv->nmeta] = key;
    sv->values[sv->nmeta++] = value;
}

static RtStatus save_now(Saver *sv, const RtSession *s, RtError *err) {
    if (ckpt_save(s, sv->path, sv->nmeta, sv->keys, sv->values, err) != RT_OK)
        return RT_FAIL;
    sv->saved_step = s->step;
    return RT_OK;
}

/* RtTrainConfig.on_epoch for --save-every N: the checkpoint after every
 * N-th epoch (counted over the whole run, resumed or not). */
static RtStatus save_every_epochs(const RtSession *s, const RtEpochStats *e, void *user,
                                  RtError *err) {
    Saver *sv = user;
    (void)e;
    if (s->epoch % sv->every != 0)
        return RT_OK;
    if (save_now(sv, s, err) != RT_OK)
        return RT_FAIL;
    if (!sv->quiet) {
        printf("gradc: saved checkpoint to %s (epoch %lld)\n", sv->path, (long long)s->epoch);
        fflush(stdout);
    }
    return RT_OK;
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
    char *classes = NULL;
    Known known = {0};

    Model *m = load_model(a, &d, o.model);
    if (!m)
        goto out;
    Graph *g = m->graph;
    if (!g->loss) {
        fprintf(stderr, "%s: error: the model has no 'loss = ...' statement, so there is nothing to train\n", o.model);
        goto out;
    }
    if (m->train.data.kind == DATA_NONE) {
        fprintf(stderr, "%s: error: the train block has no 'data = ...' (csv, idx, npy or text), "
                        "so gradc does not know what to train on\n", o.model);
        goto out;
    }
    if (!o.data && !fe_check_data(m, &d)) {
        diags_print(&d, stderr, want_color());
        goto out;
    }
    int64_t batch = o.batch > 0 ? o.batch : m->train.batch;
    if (!fe_build_training(m, &d, o.optimizer, o.have_lr ? o.lr : NAN)) {
        diags_print(&d, stderr, want_color());
        goto out;
    }
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
    char hash[CKPT_HASH_LEN];
    ckpt_model_hash(m->src, o.optimizer, hash);
    uint64_t seed = o.have_seed ? (uint64_t)o.seed : m->train.seed;
    if (o.resume && (check_resume_hash(o.resume, &o, hash, &err) != RT_OK ||
                     resume_seed(o.resume, &o, &seed, &err) != RT_OK))
        goto rt_error;
    if (rt_session_init(&s, rm, seed, &err) != RT_OK)
        goto rt_error;
    if (o.resume) {
        if (rt_load_checkpoint(&s, o.resume, &err) != RT_OK)
            goto rt_error;
    } else if (o.weights) {
        if (rt_load_weights(&s, o.weights, &err) != RT_OK)
            goto rt_error;
    } else {
        rt_init_params(&s);
    }
    const DataSpec *ds = &m->train.data;
    RtVocab vocab;
    if (known_from(o.resume ? o.resume : o.weights, &known, &err) != RT_OK ||
        load_data(a, ds, rm, o.data, NULL, &known, &vocab, &data, &err) != RT_OK)
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
    /* Every checkpoint carries the seed for --resume, the version and model
     * hash, and for text the vocabulary and context (gradc predict needs
     * them), for string labels the class names (gradc predict --top). */
    Saver sv = {.path = o.save ? o.save : arena_printf(a, "%s.safetensors", g->name),
                .every = o.save_every, .saved_step = -1, .quiet = o.quiet};
    char sbuf[32], vbuf[RT_VOCAB_STR_MAX], cbuf[32];
    snprintf(sbuf, sizeof sbuf, "%llu", (unsigned long long)seed);
    saver_add(&sv, "seed", sbuf);
    saver_add(&sv, "gradc_version", GRADC_VERSION);
    saver_add(&sv, "model_hash", hash);
    if (ds->kind == DATA_TEXT) {
        snprintf(cbuf, sizeof cbuf, "%lld", (long long)ds->context);
        saver_add(&sv, "vocab", rt_vocab_to_string(&vocab, vbuf));
        saver_add(&sv, "context", cbuf);
    }
    if ((classes = ckpt_classes_to_string(data.nclasses, data.class_names)))
        saver_add(&sv, "classes", classes);
    if (o.save_every) {
        tc.on_epoch = save_every_epochs;
        tc.on_epoch_user = &sv;
    }
    tc.stop = &ckpt_stop_signal;
    RtEpochStats last;
    ckpt_catch_signals();
    RtStatus st = rt_train(&s, &data, &tc, &last, &err);
    if (st == RT_OK && sv.saved_step != s.step)
        st = save_now(&sv, &s, &err);
    ckpt_release_signals();
    if (st != RT_OK)
        goto rt_error;
    int sig = ckpt_stop_signal;
    if (sig) {
        /* 128 + the signal, as a shell reports a process the signal ended:
         * a script looping over runs stops too. */
        if (last.stopped)
            fprintf(stderr, "gradc: stopped by %s after step %lld (%lld epochs done); saved the "
                            "checkpoint to %s\n",
                    ckpt_signal_name(sig), (long long)s.step, (long long)s.epoch, sv.path);
        else
            fprintf(stderr, "gradc: %s arrived after the last step; saved the checkpoint to %s\n",
                    ckpt_signal_name(sig), sv.path);
        fprintf(stderr, "gradc: to continue: gradc train %s --resume %s (with the same "
                        "options)\n",
                o.model, sv.path);
        rc = 128 + sig;
        goto out;
    }
    if (!o.quiet)
        printf("gradc: saved weights to %s\n", sv.path);
    rc = 0;
    goto out;
rt_error:
    fprintf(stderr, "gradc: error: %s\n", err.msg);
out:
    free(classes);
    known_free(&known);
    rt_dataset_free(&data);
    if (s.arena)
        rt_session_free(&s);
    cg_free(cg);
    arena_free(a);
    return rc;
}

/* ---- gradc predict ------------------------------------------------------------ */

/* Without weights, only a model whose every parameter is written out (=
 * value) predicts or evaluates anything meaningful, and a text model needs
 * the vocabulary its weights carry; false after saying so. */
static bool weights_optional(Arena *a, const char *model, const Graph *g, bool text) {
    for (int i = 0; i < g->params.len; i++) {
        const Param *p = &g->params.items[i];
        if (text || (p->init.kind != INIT_CONST && p->init.kind != INIT_VALUES)) {
            fprintf(stderr, "%s: error: --weights is required: %s\n", model,
                    text ? "a text model's vocabulary is stored with its weights"
                         : arena_printf(a, "parameter '%s' is random until trained (give the "
                                           "file 'gradc train' saved)",
                                        p->name));
            return false;
        }
    }
    return true;
}

enum { MAX_INPUTS = 16 };

typedef struct PredictOpts {
    const char *model, *weights, *output, *prompt;
    const char *inputs[MAX_INPUTS]; /* --input, in order; "NAME=F.npy" allowed */
    int ninputs;
    int64_t length, batch, seed, threads;
    int64_t top; /* --top K; 0: the outputs themselves */
    double temperature;
    bool quiet;
} PredictOpts;

static int parse_predict_opts(int argc, char **argv, PredictOpts *o) {
    *o = (PredictOpts){.length = 200, .batch = 256, .temperature = 1.0};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_predict, stdout);
            exit(0);
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o->quiet = true;
        } else if ((v = opt_value(argc, argv, &i, "--weights"))) {
            o->weights = v;
        } else if ((v = opt_value(argc, argv, &i, "--input"))) {
            if (o->ninputs == MAX_INPUTS)
                return usage_error("predict", "at most %d --input files", MAX_INPUTS);
            o->inputs[o->ninputs++] = v;
        } else if ((v = opt_value(argc, argv, &i, "--output"))) {
            o->output = v;
        } else if ((v = opt_value(argc, argv, &i, "--top"))) {
            if (!parse_i64(v, 1, &o->top) || o->top > (1 << 24))
                return usage_error("predict", "--top expects a positive number of classes, got "
                                              "'%s'", v);
        } else if ((v = opt_value(argc, argv, &i, "--prompt"))) {
            o->prompt = v;
        } else if ((v = opt_value(argc, argv, &i, "--length"))) {
            if (!parse_i64(v, 0, &o->length))
                return usage_error("predict", "--length expects a non-negative integer, got '%s'", v);
        } else if ((v = opt_value(argc, argv, &i, "--temperature"))) {
            if (!parse_f64(v, &o->temperature) || o->temperature < 0)
                return usage_error("predict", "--temperature expects a number >= 0, got '%s'", v);
        } else if ((v = opt_value(argc, argv, &i, "--seed"))) {
            if (!parse_i64(v, 0, &o->seed))
                return usage_error("predict", "--seed expects a non-negative integer, got '%s'", v);
        } else if ((v = opt_value(argc, argv, &i, "--batch"))) {
            if (!parse_i64(v, 1, &o->batch) || o->batch > (1 << 24))
                return usage_error("predict", "--batch expects an integer from 1 to 16777216, got '%s'", v);
        } else if ((v = opt_value(argc, argv, &i, "--threads"))) {
            if (!parse_i64(v, 1, &o->threads) || o->threads > 1024)
                return usage_error("predict", "--threads expects a positive integer, got '%s'", v);
        } else if (a[0] == '-') {
            return usage_error("predict", "unknown option '%s'", a);
        } else if (o->model) {
            return usage_error("predict", "one model file at a time ('%s' and '%s')", o->model, a);
        } else {
            o->model = a;
        }
        if (v && !*v)
            return usage_error("predict", "%s needs a value", a);
    }
    if (!o->model)
        return usage_error("predict", "no model file given");
    if (o->prompt && o->ninputs)
        return usage_error("predict", "--prompt (text generation) and --input do not go together");
    if (o->prompt && o->top)
        return usage_error("predict", "--top is for predictions over a file, not for text "
                                      "generation (--prompt)");
    return 0;
}

/* need[i]: do the model's outputs depend on input i? A walk from the
 * outputs over the (optimized) graph. */
static bool *inputs_needed(Arena *a, const Graph *g) {
    bool *seen = arena_alloc(a, (size_t)g->nodes.len + 1);
    Node **stack = arena_alloc(a, sizeof *stack * ((size_t)g->nodes.len + 1));
    int top = 0;
    memset(seen, 0, (size_t)g->nodes.len + 1);
    for (int i = 0; i < g->outputs.len; i++) {
        Node *n = g->outputs.items[i].node;
        if (n && !seen[n->id]) {
            seen[n->id] = true;
            stack[top++] = n;
        }
    }
    while (top > 0) {
        Node *n = stack[--top];
        for (int k = 0; k < n->nsrc; k++)
            if (n->src[k] && !seen[n->src[k]->id]) {
                seen[n->src[k]->id] = true;
                stack[top++] = n->src[k];
            }
    }
    bool *need = arena_alloc(a, sizeof *need * ((size_t)g->inputs.len + 1));
    for (int i = 0; i < g->inputs.len; i++)
        need[i] = seen[g->inputs.items[i].node->id];
    return need;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

/* The base name of a path. */
static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* The --input files as a dataset for rm, by their names: .csv, .npy, IDX. */
static RtStatus load_inputs(Arena *a, const Model *m, const PredictOpts *o, const RtModel *rm,
                            const bool *need, RtDataset *d, RtError *err) {
    const DataSpec *ds = &m->train.data;
    const char *f = o->inputs[0];
    bool npy = true;
    for (int i = 0; i < o->ninputs; i++) {
        const char *eq = strchr(o->inputs[i], '=');
        const char *path = eq && ends_with(o->inputs[i], ".npy") ? eq + 1 : o->inputs[i];
        npy &= ends_with(path, ".npy") || ends_with(path, ".npy.gz");
    }
    if (npy) {
        RtNpyFile *files = arena_alloc(a, sizeof *files * (size_t)o->ninputs);
        for (int i = 0; i < o->ninputs; i++) {
            const char *eq = strchr(o->inputs[i], '=');
            files[i].input = eq ? arena_strndup(a, o->inputs[i], (size_t)(eq - o->inputs[i])) : NULL;
            files[i].path = eq ? eq + 1 : o->inputs[i];
        }
        return rt_load_npy_inputs(d, rm, need, o->ninputs, files, err);
    }
    if (o->ninputs > 1)
        return rt_fail(err, "several --input files are for .npy inputs only; '%s' is not one",
                       o->inputs[1]);
    if (ends_with(f, ".csv")) {
        if (ds->kind != DATA_CSV)
            return rt_fail(err, "%s: a CSV input needs the column selection of a csv(...) data "
                                "source, but the train block reads %s data",
                           f, data_kind_name(ds->kind));
        RtCsvSpec spec = csv_spec(a, ds, f, need);
        return rt_load_csv(d, rm, &spec, err);
    }
    const char *base = base_name(f);
    if (strstr(base, "idx") || ends_with(base, "-ubyte") || ends_with(base, "-ubyte.gz"))
        return rt_load_idx(d, rm, f, NULL, ds->kind == DATA_IDX ? ds->scale : 1.0, err);
    return rt_fail(err, "%s: cannot tell the format from the name; give a .csv, a .npy or an "
                        "IDX image file (*-ubyte, *-ubyte.gz)",
                   f);
}

/* Where predictions go: stdout, or a temporary file beside o->output that
 * finish_output renames into place. */
typedef struct OutFile {
    FILE *f;
    char *tmp;
} OutFile;

static RtStatus open_output(Arena *a, const char *path, OutFile *out, RtError *err) {
    out->tmp = NULL;
    if (!path) {
        out->f = stdout;
        return RT_OK;
    }
    out->tmp = arena_printf(a, "%s.tmp.%ld", path, (long)getpid());
    if (!(out->f = fopen(out->tmp, "w")))
        return rt_fail(err, "cannot write '%s': %s", path, strerror(errno));
    return RT_OK;
}

/* ok: everything was written; then flush, sync and rename into place. On
 * failure the temporary file is removed and path left as it was. */
static RtStatus finish_output(const char *path, OutFile *out, bool ok, RtError *err) {
    if (!out->tmp)
        return fflush(stdout) == 0 || !ok ? RT_OK : rt_fail(err, "cannot write to stdout");
    int e = 0;
    if (ok && (fflush(out->f) != 0 || fsync(fileno(out->f)) != 0))
        e = errno;
    if (fclose(out->f) != 0 && !e)
        e = errno;
    if (ok && !e && rename(out->tmp, path) != 0)
        e = errno;
    if (!ok || e) {
        unlink(out->tmp);
        return ok ? rt_fail(err, "cannot write '%s': %s", path, strerror(e)) : RT_FAIL;
    }
    return RT_OK;
}

/* Text generation from --prompt with the vocabulary in the weights. */
static RtStatus generate(const Model *m, const PredictOpts *o, RtSession *s, FILE *out,
                         RtError *err) {
    RtVocab v;
    bool found;
    if (weights_vocab(o->weights, &v, &found, err) != RT_OK)
        return RT_FAIL;
    if (!found)
        return rt_fail(err, "%s: these weights were not trained on text data (their metadata "
                            "has no vocabulary)",
                       o->weights);
    int64_t context = m->train.data.context;
    char *c = NULL;
    if (rt_read_weights_meta(o->weights, "context", &c, err) != RT_OK)
        return RT_FAIL;
    if (c && strtoll(c, NULL, 10) != context) {
        rt_fail(err, "%s: these weights were trained with a context of %s characters, but the "
                     "model's train block says %lld",
                o->weights, c, (long long)context);
        free(c);
        return RT_FAIL;
    }
    free(c);
    if (rt_generate(s, &v, context, o->prompt, o->length, o->temperature, out, err) != RT_OK)
        return RT_FAIL;
    fputc('\n', out);
    return RT_OK;
}

/* --top K: each row's most likely classes, named by the weights' "classes"
 * metadata (string labels at training) when they have it, else by id. */
static RtStatus predict_top(const PredictOpts *o, RtSession *s, const RtDataset *data, FILE *out,
                            RtError *err) {
    Known known;
    if (known_from(o->weights, &known, err) != RT_OK)
        return RT_FAIL;
    RtStatus st = rt_predict_top(s, data, o->top, known.nclasses, known.classes, out, err);
    known_free(&known);
    return st;
}

static int cmd_predict(int argc, char **argv) {
    PredictOpts o;
    int rc = parse_predict_opts(argc, argv, &o);
    if (rc)
        return rc;
    Arena *a = arena_new();
    Diags d;
    diags_init(&d, a);
    rc = EXIT_USER;
    CgModule *cg = NULL;
    RtSession s = {0};
    RtDataset data = {0};
    RtError err;
    OutFile out = {0};

    Model *m = load_model(a, &d, o.model);
    if (!m)
        goto out;
    Graph *g = m->graph;
    bool text = m->train.data.kind == DATA_TEXT;
    if (g->outputs.len == 0) {
        fprintf(stderr, "%s: error: the model has no 'output' statement, so there is nothing to predict\n", o.model);
        goto out;
    }
    if (text && !o.prompt) {
        fprintf(stderr, "%s: error: the model is trained on text(...) data; give --prompt S to generate text\n", o.model);
        goto out;
    }
    if (!text && o.prompt) {
        fprintf(stderr, "%s: error: --prompt generates text, but the model is not trained on text(...) data\n", o.model);
        goto out;
    }
    if (!text && o.ninputs == 0 && m->train.data.kind == DATA_NONE) {
        fprintf(stderr, "%s: error: no --input given and the train block names no data\n", o.model);
        goto out;
    }
    if (!o.weights && !weights_optional(a, o.model, g, text))
        goto out;
    ir_optimize(g);
    bool *need = inputs_needed(a, g);
    Plan *plan = ir_plan_programs(g, text ? 1 : o.batch, 4, 1u << PROG_PREDICT);
    CgOptions co = {.elem_size = 4, .opt_level = 2};
    cg = cg_compile(g, plan, &co, &d);
    if (!cg) {
        diags_print(&d, stderr, want_color());
        goto out;
    }
    RtModel *rm = cg_rt_model_jit(a, g, plan, cg);
    rt_setup((int)o.threads);
    if (rt_session_init(&s, rm, (uint64_t)o.seed, &err) != RT_OK)
        goto rt_error;
    if (!o.weights)
        rt_init_params(&s); /* every value is written in the model */
    else if (rt_load_weights(&s, o.weights, &err) != RT_OK)
        goto rt_error;
    if (!text) {
        RtStatus st = o.ninputs ? load_inputs(a, m, &o, rm, need, &data, &err)
                                : load_data(a, &m->train.data, rm, NULL, need, NULL, NULL, &data, &err);
        if (st != RT_OK)
            goto rt_error;
    }
    if (open_output(a, o.output, &out, &err) != RT_OK)
        goto rt_error;
    RtStatus st = text    ? generate(m, &o, &s, out.f, &err)
                  : o.top ? predict_top(&o, &s, &data, out.f, &err)
                          : rt_predict(&s, &data, out.f, &err);
    if (finish_output(o.output, &out, st == RT_OK, &err) != RT_OK || st != RT_OK)
        goto rt_error;
    if (o.output && !o.quiet) {
        if (text)
            printf("gradc: wrote %lld generated characters to %s\n", (long long)o.length, o.output);
        else
            printf("gradc: wrote predictions for %lld rows to %s\n", (long long)data.n, o.output);
    }
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

/* ---- gradc eval --------------------------------------------------------------- */

typedef struct EvalOpts {
    const char *model, *weights, *data;
    int64_t batch, threads;
    bool quiet;
} EvalOpts;

static int parse_eval_opts(int argc, char **argv, EvalOpts *o) {
    *o = (EvalOpts){.batch = 256};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_eval, stdout);
            exit(0);
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o->quiet = true;
        } else if ((v = opt_value(argc, argv, &i, "--weights"))) {
            o->weights = v;
        } else if ((v = opt_value(argc, argv, &i, "--data"))) {
            o->data = v;
        } else if ((v = opt_value(argc, argv, &i, "--batch"))) {
            if (!parse_i64(v, 1, &o->batch) || o->batch > (1 << 24))
                return usage_error("eval", "--batch expects an integer from 1 to 16777216, got '%s'", v);
        } else if ((v = opt_value(argc, argv, &i, "--threads"))) {
            if (!parse_i64(v, 1, &o->threads) || o->threads > 1024)
                return usage_error("eval", "--threads expects a positive integer, got '%s'", v);
        } else if (a[0] == '-') {
            return usage_error("eval", "unknown option '%s'", a);
        } else if (o->model) {
            return usage_error("eval", "one model file at a time ('%s' and '%s')", o->model, a);
        } else {
            o->model = a;
        }
        if (v && !*v)
            return usage_error("eval", "%s needs a value", a);
    }
    if (!o->model)
        return usage_error("eval", "no model file given");
    return 0;
}

static int cmd_eval(int argc, char **argv) {
    EvalOpts o;
    int rc = parse_eval_opts(argc, argv, &o);
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
    int64_t *rows = NULL;
    Known known = {0};

    Model *m = load_model(a, &d, o.model);
    if (!m)
        goto out;
    Graph *g = m->graph;
    const DataSpec *ds = &m->train.data;
    bool text = ds->kind == DATA_TEXT;
    if (!g->loss) {
        fprintf(stderr, "%s: error: the model has no 'loss = ...' statement, so there is nothing to evaluate\n", o.model);
        goto out;
    }
    if (ds->kind == DATA_NONE) {
        fprintf(stderr, "%s: error: the train block has no 'data = ...', so gradc does not know "
                        "how to read the rows to evaluate\n", o.model);
        goto out;
    }
    if (!o.data && !fe_check_data(m, &d)) {
        diags_print(&d, stderr, want_color());
        goto out;
    }
    if (!o.weights && !weights_optional(a, o.model, g, text))
        goto out;
    /* The eval program reads the forward graph only: no gradient, no
     * optimizer (and so no optimizer state to load). */
    ir_optimize(g);
    Plan *plan = ir_plan_programs(g, o.batch, 4, 1u << PROG_EVAL);
    CgOptions co = {.elem_size = 4, .opt_level = 2};
    cg = cg_compile(g, plan, &co, &d);
    if (!cg) {
        diags_print(&d, stderr, want_color());
        goto out;
    }
    RtModel *rm = cg_rt_model_jit(a, g, plan, cg);
    double compile_ms = now_ms() - t0;
    rt_setup((int)o.threads);
    if (rt_session_init(&s, rm, 0, &err) != RT_OK)
        goto rt_error;
    if (!o.weights)
        rt_init_params(&s); /* every value is written in the model */
    else if (rt_load_weights(&s, o.weights, &err) != RT_OK)
        goto rt_error;
    RtVocab vocab;
    if (known_from(o.weights, &known, &err) != RT_OK)
        goto rt_error;
    if (text && !known.have_vocab) {
        rt_fail(&err, "%s: these weights were not trained on text data (their metadata has no "
                      "vocabulary)", o.weights);
        goto rt_error;
    }
    if (load_data(a, ds, rm, o.data, NULL, &known, &vocab, &data, &err) != RT_OK)
        goto rt_error;
    if (!(rows = malloc(sizeof *rows * (size_t)(data.n > 0 ? data.n : 1)))) {
        rt_fail(&err, "out of memory for %lld rows", (long long)data.n);
        goto rt_error;
    }
    for (int64_t i = 0; i < data.n; i++)
        rows[i] = i;
    double loss, accuracy;
    if (rt_evaluate(&s, &data, rows, data.n, &loss, &accuracy, &err) != RT_OK)
        goto rt_error;
    if (!o.quiet)
        printf("gradc: %s: eval program compiled in %.0f ms; weights %s; OpenBLAS %s\n", o.model,
               compile_ms, o.weights ? o.weights : "(written in the model)", rt_blas_corename());
    printf("rows      %lld\n", (long long)data.n);
    printf("loss      %.6g\n", loss);
    if (!isnan(accuracy))
        printf("accuracy  %.2f%%\n", 100 * accuracy);
    rc = 0;
    goto out;
rt_error:
    fprintf(stderr, "gradc: error: %s\n", err.msg);
out:
    free(rows);
    known_free(&known);
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
        if (!fe_build_training(m, &d, NULL, NAN)) {
            diags_print(&d, stderr, want_color());
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
        } else if ((v = opt_value(argc, argv, &i, "--batch"))) {
            if (!parse_i64(v, 1, &batch) || batch > (1 << 24))
                return usage_error("emit", "--batch expects an integer from 1 to 16777216, got '%s'", v);
        } else if ((v = opt_value(argc, argv, &i, "--optimizer"))) {
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
        diags_print(&d, stderr, want_color());
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
        diags_print(&d, stderr, want_color());
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
    if (!strcmp(cmd, "grad"))
        return cmd_grad(argc, argv);
    if (!strcmp(cmd, "emit"))
        return cmd_emit(argc, argv);
    static const char *const commands[] = {"train", "predict", "eval", "grad", "emit"};
    const char *near = closest_name(cmd, commands, 5);
    fprintf(stderr, "gradc: unknown command '%s'%s%s%s\n\n%s", cmd, near ? "; did you mean '" : "",
            near ? near : "", near ? "'?" : "", usage_main);
    return EXIT_USAGE;
}
