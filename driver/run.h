/* run.h: the run-time half of gradc train, predict and eval, shared by the
 * gradc command (which compiles the model with the JIT first) and the
 * programs `gradc build` makes (whose model was compiled ahead of time).
 *
 * The input is a RunModel: a compiled model as the runtime sees it (an
 * RtModel) plus what the commands need from the model file: its train
 * block's data source and defaults, the model hash, which inputs the
 * outputs read. Nothing here knows the front end, the IR or LLVM (this is
 * the library gradc_run, linked into built programs): no frontend/, ir/ or
 * codegen/ headers. Functions print their messages (the commands' users
 * read them) and return exit statuses; none calls exit().
 */
#ifndef GRADC_DRIVER_RUN_H
#define GRADC_DRIVER_RUN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "runtime/rt.h"

#define GRADC_VERSION "0.1.0"

/* Exit statuses: 0 success; 1 a user error (the model, the data, a file);
 * 2 bad usage; 128 + signal for a training run a signal stopped. */
enum { RUN_EXIT_USER = 1, RUN_EXIT_USAGE = 2 };

/* ---- the compiled model ------------------------------------------------------ */

/* The train block's data source in runtime terms (the front end's DataSpec). */
typedef enum RunDataKind {
    RUN_DATA_NONE,
    RUN_DATA_CSV,
    RUN_DATA_IDX,
    RUN_DATA_NPY,
    RUN_DATA_TEXT,
} RunDataKind;

typedef struct RunData {
    RunDataKind kind;
    /* csv, text: files[0]; idx: files[0] the images, files[1] the labels;
     * npy: one per input (.input the model input it feeds, NULL: the only
     * one). Paths as the loaders open them (a built program's are
     * absolute, so that it runs from any directory). */
    int nfiles;
    const RtNpyFile *files;
    bool header;                /* csv: the file has a header line */
    int ncolumns;               /* csv: the columns of each input */
    const RtCsvInput *columns;
    double scale;               /* idx: pixel * scale */
    int64_t context;            /* text: characters of context per row */
} RunData;

typedef struct RunModel {
    const RtModel *rm;     /* the compiled model (gradc: set after compiling) */
    const char *path;      /* the model file, for messages */
    const char *hash;      /* ckpt_model_hash of the model (and --optimizer) */
    RunData data;
    /* The train block's defaults; batch is also the largest batch the
     * programs were compiled for (rm->max_batch) in a built program. */
    int64_t batch;
    int epochs;
    uint64_t seed;
    double split;
    bool has_loss;         /* the model has a loss: it trains and evaluates */
    int noutputs;          /* its `output` statements */
    /* The first parameter whose value is not written in the model (random
     * until trained), or NULL: without --weights, predict and eval then
     * refuse to run. */
    const char *random_param;
    const bool *need;      /* predict: need[i], the outputs read input i (NULL: all) */
    int nkernels;          /* the train program's kernels, for the summary line */
    double compile_ms;     /* gradc: the compile time, for the summary line */
    /* gradc train --check-numerics (rm->nonfinite_status set): says where
     * the NaN or Inf that stopped training came from, on stderr. s is the
     * session as it was before the failing step, with that step's batch of
     * `batch` rows and its hypers in the arena; kernel the train program's
     * kernel whose check failed. NULL: the stop message only. */
    void (*explain_nonfinite)(void *user, const RtSession *s, int64_t kernel, int64_t batch);
    void *explain_user;
    /* gradc train --profile (rm->profile_counters set): called once
     * training has ended (finished, stopped or failed), with the session
     * and the run's batch size; prints the time per kernel on stderr when
     * a step ran. NULL: none. */
    void (*report_profile)(void *user, const RtSession *s, int64_t batch);
    void *profile_user;
    /* A built program: the target it was built for, the x86 features that
     * target needs (__builtin_cpu_supports names, NULL-terminated), the
     * --optimizer text it was built with (NULL: the train block's). NULL
     * target: gradc's JIT. */
    const char *target;
    const char *const *cpu_features;
    const char *optimizer;
    /* Data-parallel training (docs/distributed.md): start the transport and
     * return this process's RtDist (rt_mpi_start), and end it
     * (rt_mpi_finish). NULL: this gradc or program has no MPI. gradc trains
     * so with --mpi; a program built with --mpi always does (one process
     * when mpirun did not start it). */
    RtStatus (*dist_start)(RtDist **d, RtError *err);
    void (*dist_finish)(RtDist *d);
} RunModel;

/* Who runs the commands: gradc (built NULL; every command's first argument
 * is the model file) or a built program (built: its model). */
typedef struct RunCli {
    const char *name;       /* message prefix: "gradc", or the program's base name */
    const char *invoke;     /* the command as the user types it: "gradc", argv[0] */
    const RunModel *built;  /* a built program's model; NULL: gradc */
} RunCli;

/* ---- options ----------------------------------------------------------------- */

typedef struct RunTrainOpts {
    const char *model; /* gradc: M.nn */
    const char *data, *weights, *save, *log;
    const char *resume;    /* --resume: a checkpoint to continue from */
    const char *optimizer; /* --optimizer "adam(lr = 3e-4)" (gradc only) */
    int64_t epochs, steps, batch, seed, threads;
    int64_t save_every;    /* --save-every N epochs; 0: only at the end */
    double lr, split;
    const char *plot;     /* --plot F.svg: the training curves, drawn at the end */
    bool check_numerics;  /* --check-numerics (gradc only): stop at the first NaN or Inf */
    bool time_passes;     /* --time-passes (gradc only): time per compile stage */
    bool profile;         /* --profile (gradc only): time per kernel of the train program */
    bool mpi;             /* --mpi: one process of a data-parallel run */
    bool have_lr, have_seed, have_split, quiet, help;
} RunTrainOpts;

enum { RUN_MAX_INPUTS = 16 };

typedef struct RunPredictOpts {
    const char *model, *weights, *output, *prompt;
    const char *inputs[RUN_MAX_INPUTS]; /* --input, in order; "NAME=F.npy" allowed */
    int ninputs;
    int64_t length, batch, seed, threads;
    int64_t top; /* --top K; 0: the outputs themselves */
    double temperature;
    bool time_passes; /* gradc only */
    bool quiet, help;
} RunPredictOpts;

typedef struct RunEvalOpts {
    const char *model, *weights, *data;
    int64_t batch, threads;
    bool time_passes; /* gradc only */
    bool quiet, help;
} RunEvalOpts;

/* Parse a command's options: argv[0] is the command ("train"), the options
 * follow. -h or --help prints the command's usage to stdout and sets
 * o->help. Returns 0, or RUN_EXIT_USAGE after printing what is wrong. */
int run_parse_train(const RunCli *c, int argc, char **argv, RunTrainOpts *o);
int run_parse_predict(const RunCli *c, int argc, char **argv, RunPredictOpts *o);
int run_parse_eval(const RunCli *c, int argc, char **argv, RunEvalOpts *o);

/* The checks that need no compiled code (m->rm may be NULL): a model
 * without a loss cannot train, one without outputs predict nothing, ...
 * 0, or RUN_EXIT_USER after saying why. The run functions make them too;
 * gradc makes them first, before spending time on compiling. */
int run_train_check(const RunCli *c, const RunTrainOpts *o, const RunModel *m);
int run_predict_check(const RunCli *c, const RunPredictOpts *o, const RunModel *m);
int run_eval_check(const RunCli *c, const RunEvalOpts *o, const RunModel *m);

/* The commands: train (and save the checkpoint), predict or generate text,
 * evaluate. m->rm must be set. They return the exit status. */
int run_train(const RunCli *c, const RunTrainOpts *o, const RunModel *m);
/* Whether training with o evaluates: without -q, or with --log or --plot,
 * which show the held-out loss and accuracy (checkpoints keep neither).
 * When it does not, gradc train compiles no eval program. */
bool run_train_evaluates(const RunTrainOpts *o);
int run_predict(const RunCli *c, const RunPredictOpts *o, const RunModel *m);
int run_eval(const RunCli *c, const RunEvalOpts *o, const RunModel *m);

/* ---- a built program -------------------------------------------------------------
 * The main of a program gradc build writes: checks that the CPU has every
 * feature m->cpu_features lists (supports(name): __builtin_cpu_supports),
 * before any of the model's code runs, then runs `PROG train | predict |
 * eval [options]`, `PROG --help` or `PROG --version`. Returns the exit
 * status.
 *
 * For tests only: the environment variable GRADC_TEST_PRETEND_CPU_LACKS,
 * a comma-separated list of feature names, makes the check treat those as
 * missing. */
int run_program(const RunModel *m, int (*supports)(const char *feature), int argc, char **argv);

/* The first feature of m->cpu_features that supports() denies or that
 * `lacks` (a comma-separated list, may be NULL) names; NULL when the CPU has
 * them all. */
const char *run_cpu_missing(const RunModel *m, int (*supports)(const char *feature),
                            const char *lacks);

/* ---- option helpers, for gradc's other commands too ------------------------------- */

/* "NAME CMD: message" and "(see 'INVOKE CMD --help')" on stderr;
 * returns RUN_EXIT_USAGE. */
int run_usage_error(const RunCli *c, const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The value of option argv[*i] when it is `name` ("--x v" or "--x=v"),
 * advancing *i past it; "" when the value is missing; NULL when argv[*i] is
 * another option. */
const char *run_opt_value(int argc, char **argv, int *i, const char *name);
/* Whole-string integer >= lo / finite number. */
bool run_parse_i64(const char *s, int64_t lo, int64_t *out);
bool run_parse_f64(const char *s, double *out);
/* A file written atomically: into a temporary file beside path
 * ("<path>.tmp.<pid>") that run_out_finish syncs and renames into place, so
 * that path is the old file or the new one, whole. path NULL: stdout. A
 * path that names a device or a pipe (/dev/null, /dev/stdout) is written
 * in place. */
typedef struct RunOut {
    FILE *f;
    char *tmp;     /* malloc'ed; NULL for stdout and in place */
    bool in_place; /* a device or pipe, opened directly */
} RunOut;
RtStatus run_out_open(const char *path, RunOut *out, RtError *err);
/* ok: everything was written; then flush, sync and rename. Otherwise (or
 * when that fails) the temporary file is removed and path left as it was. */
RtStatus run_out_finish(const char *path, RunOut *out, bool ok, RtError *err);

/* Monotonic milliseconds. */
double run_now_ms(void);

/* ---- one batch of data, for gradc check ------------------------------------------
 * Load the train block's data source (every input, labels included; with
 * weights, the vocabulary and class names stored in that weight file) for
 * s's model and copy its first min(batch, rows) rows into the inputs'
 * arena storage; *nrows gets that count and *total the file's rows. The
 * data is freed again. RT_FAIL as the loaders fail (and for a source with
 * no rows). */
RtStatus run_load_batch(const RunModel *m, const char *weights, RtSession *s, int64_t batch,
                        int64_t *nrows, int64_t *total, RtError *err);

#endif
