/* rt.h: the gradc runtime, what compiled models link against.
 *
 * The runtime knows nothing of the compiler: a compiled model reaches it as
 * an RtModel, a plain description of where every tensor lives in one arena
 * and which compiled functions to call. It owns memory, BLAS set-up, the RNG,
 * data loading, the training loop and weight files. No LLVM here, and no
 * exit(): every function that can fail returns an RtStatus and fills an
 * RtError.
 */
#ifndef GRADC_RT_H
#define GRADC_RT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum RtStatus {
    RT_OK = 0,
    RT_FAIL = 1,
    RT_NONFINITE = 2, /* rt_train only: the checked train program stored a NaN or Inf
                         (RtModel.nonfinite_status); the step was not taken */
} RtStatus;

typedef struct RtError {
    char msg[1024]; /* "file:row:col: what", ready to print */
} RtError;

/* Format into err->msg; returns RT_FAIL for `return rt_fail(err, ...)`. */
RtStatus rt_fail(RtError *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- the model description ------------------------------------------------ */

enum { RT_MAX_RANK = 4 };
#define RT_DIM_BATCH ((int64_t)-1)

typedef enum RtDType { RT_FLOAT, RT_INT } RtDType; /* float: the model's elem type; int: int32 */

typedef struct RtTensor {
    const char *name;
    RtDType dtype;
    int rank;
    int64_t dims[RT_MAX_RANK]; /* RT_DIM_BATCH for the batch dimension */
    size_t offset;             /* byte offset in the arena */
    int64_t limit;             /* int inputs: values must lie in [0, limit); 0: unchecked */
} RtTensor;

/* Same order and meaning as the IR's InitKind. */
typedef enum RtInitKind {
    RT_INIT_CONST,
    RT_INIT_VALUES,
    RT_INIT_NORMAL,
    RT_INIT_UNIFORM,
    RT_INIT_GLOROT,
    RT_INIT_HE,
} RtInitKind;

typedef struct RtInit {
    RtInitKind kind;
    double a, b;
    const double *values;
    int64_t nvalues;
} RtInit;

/* A compiled entry point: reads and writes the arena; batch <= max_batch. */
typedef void (*RtFn)(void *arena, int64_t batch);

typedef struct RtProgram {
    RtFn fn;
    int nroots;
    const RtTensor *roots; /* where its results are after a run */
} RtProgram;

typedef enum RtMetric { RT_METRIC_NONE, RT_METRIC_ARGMAX, RT_METRIC_THRESHOLD } RtMetric;

/* What the runtime stores in a hyperparameter, and when (the IR's HyperKind). */
typedef enum RtHyperKind {
    RT_HYPER_VALUE,  /* hyper_defaults[i] when a session starts; rt_set_hyper changes it */
    RT_HYPER_STEP,   /* t, float: the number of the step being taken, from 1 */
    RT_HYPER_EPOCH,  /* epoch, float: the epochs finished before this step */
    RT_HYPER_EPOCHS, /* epochs, float: the run's total epochs (RtTrainConfig.epochs) */
    RT_HYPER_RNG,    /* rng, int32: fresh bits from the session RNG */
} RtHyperKind;

typedef struct RtModel {
    const char *name;
    int elem_size; /* 4: float32, 8: float64 */
    int64_t max_batch;
    size_t arena_bytes;
    int nparams;
    const RtTensor *params;
    const RtInit *inits;
    int ninputs;
    const RtTensor *inputs;
    int nhypers;
    const RtTensor *hypers; /* scalars, e.g. "lr" */
    const double *hyper_defaults;
    const RtHyperKind *hyper_kinds; /* NULL: all RT_HYPER_VALUE, except an RT_INT "rng" */
    /* Optimizer states: persistent like the parameters, saved with them
     * under their names ("opt.m.h.W"); state_param[i] is the index of the
     * parameter state i belongs to; state_inits[i] its initial value. */
    int nstates;
    const RtTensor *states;
    const RtInit *state_inits;
    const int *state_param;
    RtProgram train;   /* roots: loss, then the learning rate if train_lr_root is 1 */
    int train_lr_root; /* index in train.roots of the scalar learning rate; 0: none */
    RtProgram eval;    /* roots: loss, then the metric's prediction if any */
    RtProgram predict; /* roots: the outputs */
    RtProgram grad;    /* roots: loss, then each parameter's gradient */
    RtMetric metric;
    int metric_label; /* input index of the labels */
    double metric_threshold;
    /* gradc train --check-numerics: the byte offset of an int64 status word
     * in the persistent region (after every parameter, state, input and
     * hyper) that the train program sets to k + 1 when its kernel k stored a
     * NaN or Inf, and then returns at once, with the parameters and states
     * as they were before it ran; 0: the model has no checks. */
    size_t nonfinite_status;
    /* gradc train --profile: the byte offset of the train program's time
     * counters in the persistent region (after everything else there):
     * profile_kernels + 2 int64s, the nanoseconds each of its kernels ran,
     * the nanoseconds of the whole program, and its runs, summed over every
     * run since the arena was zeroed (rt_profile_clock); 0: not profiled. */
    size_t profile_counters;
    int profile_kernels; /* the train program's kernels */
    /* gradc train --mpi, gradc build --mpi: the train program of one
     * process of a data-parallel run. It calls rt_dist_sync(arena) once
     * its loss and gradients are made and before anything reads a
     * gradient (clipping, the updates); train.roots[train_grad_root, nroots)
     * are the gradients that depend on the batch, which the sync averages
     * over the processes. */
    bool data_parallel;
    int train_grad_root;
} RtModel;

/* Elements of t for a given batch size. */
int64_t rt_numel(const RtTensor *t, int64_t batch);

/* ---- process set-up -------------------------------------------------------
 * Make OpenBLAS use its AVX-512 (or AVX2) kernels when the CPU has them, even
 * where OpenBLAS's own detection falls back to SSE3, unless the user set
 * OPENBLAS_CORETYPE; run it single-threaded and start the thread pool with
 * `threads` threads (rt_pool_setup; 0: one per CPU); map OpenBLAS's work
 * buffers, as many as the pool's threads and OpenBLAS's own can use at
 * once, so that no product maps one later (the training step allocates
 * nothing); set flush-to-zero and denormals-are-zero. Call once before
 * training. */
void rt_setup(int threads);
/* The OpenBLAS kernel family in use ("SkylakeX", "Haswell", ...). */
const char *rt_blas_corename(void);

/* ---- the thread pool (runtime/pool.c) ----------------------------------------
 * One process-wide pool runs the compiled code's matrix products and large
 * loops on every core; OpenBLAS itself runs single-threaded (rt_setup), so
 * no second pool spins beside it. Idle workers sleep. */
/* Use `threads` threads, the caller included (<= 0: one per CPU this process
 * may run on). Starts the workers the first time; later calls may change
 * the count. Called by rt_setup. */
void rt_pool_setup(int threads);
int rt_pool_threads(void);
/* One part of a parallel loop: part of nparts, each part a disjoint share
 * of the work that does not depend on nparts for its results. */
typedef void (*RtPartFn)(void *ctx, int64_t part, int64_t nparts);
/* fn(ctx, p, n) for p in [0, n), on the pool, returning when all are done;
 * n is min(threads, work / grain) (when another thread holds the pool, the
 * caller runs the n parts itself). Called by the compiled code with work =
 * the loop's element count. */
void rt_parallel_for(RtPartFn fn, void *ctx, int64_t work);
/* The same with nparts chosen by the caller (capped at the thread count). */
void rt_parallel_parts(RtPartFn fn, void *ctx, int64_t nparts);
/* C[m, n] = op(A) op(B) + beta C, row-major (CBLAS's arguments without the
 * order and alpha = 1; ta, tb nonzero: transposed), split into blocks of C
 * across the pool, each a single-threaded OpenBLAS call. The compiled
 * code's matrix products. */
void rt_gemm_f32(int ta, int tb, int m, int n, int k, const float *a, int lda, const float *b,
                 int ldb, float beta, float *c, int ldc);
void rt_gemm_f64(int ta, int tb, int m, int n, int k, const double *a, int lda, const double *b,
                 int ldb, double beta, double *c, int ldc);

/* ---- profiling (runtime/profile.c) -------------------------------------------
 * CLOCK_MONOTONIC in nanoseconds: what a profiled train program
 * (RtModel.profile_counters) reads before its first kernel and after each. */
int64_t rt_profile_clock(void);

/* ---- RNG --------------------------------------------------------------------
 * xoshiro256** seeded through splitmix64: the same seed gives the same
 * stream on every machine. */
typedef struct RtRng {
    uint64_t s[4];
} RtRng;

void rt_rng_seed(RtRng *r, uint64_t seed);
uint64_t rt_rng_next(RtRng *r);
double rt_rng_uniform(RtRng *r);          /* [0, 1) */
double rt_rng_normal(RtRng *r);           /* mean 0, std 1 */
uint64_t rt_rng_below(RtRng *r, uint64_t n); /* uniform in [0, n), unbiased */

/* ---- a model instance ------------------------------------------------------ */

typedef struct RtSession {
    const RtModel *m;
    void *arena; /* m->arena_bytes, 64-byte aligned, zeroed */
    RtRng rng;   /* initialisation, then the dropout keys (rt_step_hypers) */
    int64_t step;  /* optimizer steps taken */
    int64_t epoch; /* epochs finished */
    /* Training rows of epoch epoch + 1 already stepped on: nonzero only when
     * a step limit stopped rt_train inside an epoch; the next rt_train
     * continues that epoch from there. */
    int64_t epoch_rows;
    /* For gradc train --profile, kept by rt_train over the session's life:
     * the seconds spent in training batches (gathering the rows, the
     * per-step hypers and the train program: the time samples_per_s
     * divides by), and CLOCK_BOOTTIME in seconds when the session's first
     * step finished (0: none yet). */
    double train_seconds;
    double first_step_boottime;
} RtSession;

/* VALUE hypers hold their defaults, the other kinds 0 until rt_step_hypers. */
RtStatus rt_session_init(RtSession *s, const RtModel *m, uint64_t seed, RtError *err);
void rt_session_free(RtSession *s);
/* Initialise every parameter from its RtInit, in order, then every
 * optimizer state from its state_inits entry, in order, drawing from
 * s->rng (RT_INIT_CONST draws nothing). */
void rt_init_params(RtSession *s);
/* A tensor's storage in the arena. */
void *rt_ptr(const RtSession *s, const RtTensor *t);
/* Set a hyperparameter by name (an int hyper gets (int32_t)value); RT_FAIL
 * if the model has none of that name. */
RtStatus rt_set_hyper(RtSession *s, const char *name, double value, RtError *err);
/* The per-step hyperparameters, by kind (RtModel.hyper_kinds), for the step
 * about to be taken:
 *   RT_HYPER_STEP    t = s->step + 1
 *   RT_HYPER_EPOCH   s->epoch (epochs finished)
 *   RT_HYPER_EPOCHS  epochs (the run's total: rt_train passes
 *                    RtTrainConfig.epochs, or with epochs 0 the epoch its
 *                    step limit ends in)
 *   RT_HYPER_RNG     the low 32 bits of one rt_rng_next(&s->rng), as int32;
 *                    every RNG hyper gets the same bits
 * t, epoch and epochs are stored in the model's float type; VALUE hypers are
 * left alone. One draw from s->rng per call when the model has an RNG hyper,
 * none otherwise. Changes nothing else (s->step is rt_train's to advance).
 * rt_train calls it immediately before every run of the train program;
 * whoever runs the train or grad program by hand must do the same. Eval and
 * predict never read these hypers (dropout is the identity there). Same
 * seed, same sequence. */
void rt_step_hypers(RtSession *s, int64_t epochs);

/* ---- data -------------------------------------------------------------------
 * A dataset holds, for each model input, n rows of that input's per-row
 * elements (its shape without the batch dimension), as float (in the model's
 * elem type) or int32.
 *
 * Every loader fills one data[i] per model input, in the model's input
 * order, and on failure leaves the dataset empty (all zero) with an error
 * naming the file and what is wrong, with the row or byte offset where there
 * is one. Float data must be finite; an int input with a limit (RtTensor.limit
 * > 0) takes values in [0, limit) only.
 *
 * Loading for prediction: an input the outputs do not use (the labels) need
 * not be in the file. Loaders that take a `need` mask (one bool per model
 * input; NULL: every input) load only the inputs with need[i] and leave
 * data[i] NULL for the others. rt_train refuses a dataset with a NULL input;
 * rt_predict leaves such an input's arena storage as it is. */
typedef struct RtColumnSel {
    const char *name; /* a header name, or NULL to use index */
    int index;        /* 0-based column index */
} RtColumnSel;

typedef struct RtCsvInput {
    const char *input; /* the model input these columns feed */
    int ncols;
    const RtColumnSel *cols;
} RtCsvInput;

typedef struct RtCsvSpec {
    const char *path;
    bool header;
    int ninputs;
    const RtCsvInput *inputs;
    const bool *need; /* NULL: every input; else only these (see above); the
                         columns of the others need not exist */
    /* The class names of a string label column, in id order (those that
     * trained weights were trained with): a label gets the id of its name,
     * and a label that is none of them is an error. 0: the sorted distinct
     * labels of the file. */
    int nclasses;
    const char *const *classes;
} RtCsvSpec;

typedef struct RtDataset {
    int64_t n;
    int ninputs;            /* == m->ninputs, in the model's input order */
    void **data;            /* data[i]: the rows of input i; NULL: not loaded */
    int64_t *row_elems;
    /* NULL: rows are packed (row r of input i starts at element
     * r * row_elems[i]). Else row r starts at element r * row_stride[i]; a
     * stride below row_elems[i] makes overlapping windows of one sequence
     * (text data: the context of position r is ids[r, r + context)). */
    int64_t *row_stride;
    /* For an int input read from a string column: the class names, id order. */
    int nclasses;
    char **class_names;
} RtDataset;

/* Load a CSV file for model m. Numeric columns become floats; an int input
 * from a column of strings gets class ids in sorted order of the names (Iris:
 * setosa 0, versicolor 1, virginica 2), or by spec->classes when given; an
 * int input from numbers must hold integers. Errors name file, row and
 * column. */
RtStatus rt_load_csv(RtDataset *d, const RtModel *m, const RtCsvSpec *spec, RtError *err);

/* Load MNIST-style IDX files: images (magic 0x00000803: unsigned bytes
 * [n, rows, cols]) and labels (magic 0x00000801: unsigned bytes [n]), each
 * gzip-compressed or not (told apart by the gzip magic 1f 8b). The images
 * feed the model's one float input with rows * cols elements per row ([B,
 * 784] and [B, 28, 28] both do), as pixel * scale; the labels its one int
 * input with one element per row. With labels, the model must have exactly
 * those two inputs. labels NULL (prediction): images only, and every other
 * input is left NULL. */
RtStatus rt_load_idx(RtDataset *d, const RtModel *m, const char *images, const char *labels,
                     double scale, RtError *err);

/* A NumPy .npy file (format 1.0, 2.0 or 3.0, C order) for a model input. */
typedef struct RtNpyFile {
    const char *input; /* model input name; NULL: the model's only input, or the
                          only one this file can feed (by size and dtype) */
    const char *path;
} RtNpyFile;

/* Load .npy files, one per input. dtypes <f4 <f8 <i1 <i2 <i4 <i8 |u1 <u2 <u4
 * <u8 |b1 (and big-endian '>'); the first dimension is the row count, the
 * rest must multiply to the input's elements per row. Float inputs take any
 * of them; int inputs integer (and bool) dtypes only. All files must have
 * the same row count, and every model input needs a file. */
RtStatus rt_load_npy(RtDataset *d, const RtModel *m, int nfiles, const RtNpyFile *files,
                     RtError *err);
/* The same for the inputs with need[i] only (NULL: all); files for other
 * inputs are an error only if they name no model input. */
RtStatus rt_load_npy_inputs(RtDataset *d, const RtModel *m, const bool *need, int nfiles,
                            const RtNpyFile *files, RtError *err);

/* A character-level vocabulary: chars[0, n) are distinct bytes in increasing
 * order, and a byte's id is its rank. */
typedef struct RtVocab {
    int n;
    unsigned char chars[256];
} RtVocab;

/* The sorted set of distinct bytes of bytes[0, len), NUL bytes left out
 * (text data rejects them). */
void rt_vocab_build(RtVocab *v, const void *bytes, size_t len);
/* The id of byte c, or -1 if it is not in v. */
int rt_vocab_id(const RtVocab *v, unsigned char c);
/* ids[k] = the id of s[k] for k < len; RT_FAIL naming the first character
 * (and its position) that v lacks. `what` names s in the message ("the
 * prompt"). */
RtStatus rt_vocab_encode(const RtVocab *v, const char *s, size_t len, int32_t *ids,
                         const char *what, RtError *err);
/* out[k] = the byte of ids[k]; RT_FAIL if an id is outside [0, v->n). */
RtStatus rt_vocab_decode(const RtVocab *v, const int32_t *ids, size_t n, char *out, RtError *err);

/* The vocabulary as a UTF-8 string for weight-file metadata: its bytes in id
 * order, each byte b as the code point U+00bb (so ASCII text reads as
 * itself). buf needs RT_VOCAB_STR_MAX bytes. v must not hold NUL. */
enum { RT_VOCAB_STR_MAX = 512 };
char *rt_vocab_to_string(const RtVocab *v, char *buf);
/* The inverse of rt_vocab_to_string; RT_FAIL if s is not such a string
 * (invalid UTF-8, a code point above U+00FF, or characters not in strictly
 * increasing order). */
RtStatus rt_vocab_from_string(RtVocab *v, const char *s, RtError *err);

/* Character-level language-model data from a text file (bytes; gzip is
 * undone). Position i >= context gives a row: the model's int input of shape
 * [B, context] gets the ids of bytes [i - context, i), its int input of
 * shape [B] the id of byte i. The model must have exactly those two inputs.
 * vocab NULL: the vocabulary is built from the file (rt_vocab_build); else
 * every byte of the file must be in vocab. The vocabulary used is copied to
 * vocab_out (may be NULL). Errors: a file shorter than context + 1 bytes, a
 * NUL byte, more distinct characters than the inputs' limits allow ("the
 * text has 65 distinct characters, but the model's embedding has 60 rows").
 * The context rows overlap: data[context input] is the whole id sequence
 * with row_stride 1. */
RtStatus rt_load_text(RtDataset *d, const RtModel *m, const char *path, int64_t context,
                      const RtVocab *vocab, RtVocab *vocab_out, RtError *err);

void rt_dataset_free(RtDataset *d);

/* ---- training -------------------------------------------------------------- */

/* Per-epoch figures, also what the log records. */
typedef struct RtEpochStats {
    int64_t epoch, step;
    double lr;       /* the train program's learning rate at the epoch's last step;
                        NaN when the model reports none (train_lr_root 0) */
    double loss;     /* mean training loss over the epoch's batches */
    double val_loss; /* NaN without held-out data */
    double accuracy; /* on held-out data, else on training data; NaN without a metric */
    double samples_per_s, seconds;
    /* rt_train's `last` only: RtTrainConfig.stop ended the call early. epoch
     * and step are then the session's (where it stopped), the figures NaN. */
    bool stopped;
    /* rt_train's `last` only, when it returned RT_NONFINITE: the train
     * program's kernel that stored the first NaN or Inf (from 0) and the
     * rows in that step's batch; epoch and step are those of the step that
     * was not taken (s->epoch + 1, s->step + 1), the figures NaN. */
    int64_t bad_kernel, bad_batch;
} RtEpochStats;

/* ---- data parallelism (runtime/dist.c) --------------------------------------------
 * One process of a data-parallel run: `size` processes (ranks 0 to
 * size - 1) each hold the whole model and train it on their own share of
 * every batch; after the backward pass the compiled train program calls
 * rt_dist_sync, which averages the gradients over the processes, so that
 * every process applies the same update and all keep the same weights.
 * The collectives come from a transport: MPI (runtime/mpi/, rt_mpi.h), or
 * anything that can sum, take extremes and broadcast. */
typedef enum RtDistType { RT_DIST_F32, RT_DIST_F64, RT_DIST_I64 } RtDistType;
typedef enum RtDistOp { RT_DIST_SUM, RT_DIST_MIN, RT_DIST_MAX } RtDistOp;

typedef struct RtDist {
    int rank, size;
    /* buf[0, count) of every process, combined elementwise by op, into buf
     * in every process. Every process must make the same calls in the same
     * order. */
    RtStatus (*allreduce)(struct RtDist *d, void *buf, int64_t count, RtDistType type,
                          RtDistOp op, RtError *err);
    /* bytes of process 0's buf into buf in every process. */
    RtStatus (*broadcast)(struct RtDist *d, void *buf, size_t bytes, RtError *err);
    /* Ends every process of the run at once with exit status `status`, for
     * a failure that leaves the others waiting in a collective. Does not
     * return. */
    void (*abort)(struct RtDist *d, int status);
    void *impl; /* the transport's */
    /* What its messages start with ("gradc", a built program's name);
     * the caller may set it, the transport starts it as "gradc". */
    const char *name;
    int local_size; /* the processes of the run on this machine, this one included */
} RtDist;

/* The threads one process of d should run (rt_setup) when the user did not
 * say: the CPUs it may run on, but no more than its part of the machine's
 * (the CPUs online over d->local_size), so that processes that mpirun did
 * not bind to CPUs of their own (--bind-to none, or bound to a socket
 * they share) do not start a thread per CPU each. At least 1. */
int rt_dist_threads(const RtDist *d);

/* What the compiled train program of a data-parallel model
 * (RtModel.data_parallel) calls between its backward pass and its updates.
 * Inside rt_train with a RtTrainConfig.dist, it replaces every gradient
 * (train.roots[train_grad_root, nroots)) and the loss by their means over
 * the step's rows of every process (each process's figures weighted by its
 * rows), in buckets of RT_DIST_BUCKET_BYTES, one allreduce each; a
 * failure there is reported on stderr and ends the run (RtDist.abort).
 * Anywhere else (one process, the model's grad program) it does nothing. */
void rt_dist_sync(void *arena);
/* Gradients of at least RT_DIST_IN_PLACE_BYTES are summed where they are,
 * without packing, in the steps whose rows every process shares equally
 * (then divided by the processes). */
enum { RT_DIST_BUCKET_BYTES = 8 << 20, RT_DIST_IN_PLACE_BYTES = 1 << 20 };

/* Process 0's parameters, optimizer states and session counters (step,
 * epoch, epoch_rows, the RNG) into every process: after each has
 * initialised, loaded weights or resumed, so that all start alike. */
RtStatus rt_dist_broadcast_session(RtDist *d, RtSession *s, RtError *err);

/* The processes' verdict, where some may have failed alone (a file only
 * one of them reads): mine is this process's status, with its message in
 * err when RT_FAIL. Returns RT_OK when every process passed RT_OK, else
 * RT_FAIL in every process, with err the message of the lowest-ranked
 * process that failed ("process 2: ..." unless that is process 0), so
 * that process 0 alone can report it. */
RtStatus rt_dist_agree(RtDist *d, RtStatus mine, RtError *err);

typedef struct RtTrainConfig {
    int epochs;    /* the run's total: train up to epoch `epochs` (0: steps decide) */
    int64_t steps; /* stop after this many optimizer steps of this call; 0: no limit */
    int64_t batch; /* <= m->max_batch */
    uint64_t seed; /* shuffling and the held-out split */
    double split;  /* held-out fraction, [0, 1) */
    const char *log_path; /* JSON Lines, one object per epoch; NULL: none */
    bool quiet;
    FILE *out; /* progress lines; NULL: stdout */
    /* Called after every finished epoch (not the partial one a step limit
     * or `stop` ends in), after its progress line and log entry, with s
     * where the epoch left it and the epoch's figures: the place to save a
     * checkpoint every N epochs. RT_FAIL stops training; rt_train then
     * returns RT_FAIL with the callback's err. NULL: none. */
    RtStatus (*on_epoch)(const RtSession *s, const RtEpochStats *e, void *user, RtError *err);
    void *on_epoch_user;
    /* Read after every step (and before every epoch): nonzero ends the call
     * there, with the session consistent (s->step, s->epoch, s->epoch_rows:
     * a checkpoint saved now resumes exactly) and `last->stopped` set. The
     * partial epoch is neither evaluated, printed nor logged. A signal
     * handler's flag fits (a sig_atomic_t it sets). NULL: never stops. */
    const volatile sig_atomic_t *stop;
    /* Nothing reads an epoch's val_loss and accuracy (no progress lines,
     * log or on_epoch that uses them): skip the evaluation passes that
     * make them, and leave them NaN (the model's eval program is then
     * never needed: it may be NULL). Training is the same either way. */
    bool skip_eval;
    /* One process of a data-parallel run (NULL: training alone). Every
     * process must call rt_train with the same config (but quiet, log_path,
     * out and on_epoch, which are usually process 0's only), the same
     * data, and a session in the same state (rt_dist_broadcast_session);
     * rt_train checks that they agree. cfg->batch is each process's: a step
     * takes batch * size rows of the epoch's order, process k the k-th
     * share (the last step's rows are shared as evenly as they go; a
     * process without any computes on a stand-in row that counts for
     * nothing), and the step's loss and gradients are the means over all
     * of them, so that the run trains as one process with batch * size
     * would, up to the order of the sums, and every process stays alike.
     * Dropout masks differ between processes. Stops (cfg->stop) and
     * failures in any process are agreed after every step or epoch, so all
     * stop at the same step. The model must be data_parallel and have no
     * numerics checks. */
    RtDist *dist;
} RtTrainConfig;

/* Train s on d, continuing from s->epoch: runs epochs s->epoch + 1 to
 * cfg->epochs (a session restored by rt_load_checkpoint at epoch 2 of 4 runs
 * epochs 3 and 4; one at or past cfg->epochs trains nothing and says so),
 * or until cfg->steps steps of this call, or until *cfg->stop; an epoch a
 * step limit or a stop ended (s->epoch_rows > 0) continues from its next
 * row. The rows: cfg->seed shuffles them and holds out cfg->split (shuffled
 * first, so sorted files split fairly); an epoch's order of the training
 * rows depends on cfg->seed and the epoch number only (a call starting at
 * epoch k replays the k reshuffles before it), so that a resumed run sees
 * the rows the uninterrupted one would have. Mini-batches with a last partial batch; one
 * progress line per epoch, then cfg->on_epoch; the log (cfg->log_path) is
 * truncated when s has taken no step yet and appended to otherwise. last:
 * the final epoch's figures (may be NULL; when nothing is trained, or a stop
 * ended the call, epoch and step are s's and the rest NaN).
 *
 * A model with numerics checks (m->nonfinite_status set): its train program
 * leaves the parameters and optimizer states as they were when it sets the
 * status word; rt_train then leaves s->step, s->epoch_rows and s->rng as
 * they were before that step too, and returns RT_NONFINITE with `last`
 * saying where (bad_kernel, bad_batch) and err a message. The arena still
 * holds that step's batch, its hypers and the status word, so that the
 * caller can run the step again to see more. */
RtStatus rt_train(RtSession *s, const RtDataset *d, const RtTrainConfig *cfg,
                  RtEpochStats *last, RtError *err);

/* Mean loss and metric of the eval program over the rows rows[0, nrows) of d,
 * in batches of at most m->max_batch; accuracy is NaN without a metric, and
 * loss or accuracy may be NULL. */
RtStatus rt_evaluate(RtSession *s, const RtDataset *d, const int64_t *rows, int64_t nrows,
                     double *loss, double *accuracy, RtError *err);

/* ---- prediction ---------------------------------------------------------------
 * The predict program over every row of d, in batches of at most
 * m->max_batch, written to out as CSV: a header naming each output's columns
 * ("probs[0],probs[1],probs[2]"; an output with one element per row is just
 * its name; more axes flatten row-major), then one line per row of d, values
 * as %.9g. Inputs with data[i] NULL are not copied (see "data" above). */
RtStatus rt_predict(RtSession *s, const RtDataset *d, FILE *out, RtError *err);

/* The k most likely classes of every row of d instead of the outputs: the
 * predict program's first output must be [B, C] floats holding a
 * probability row per example (entries in [0, 1] summing to 1 within 1e-3,
 * as softmax gives; a row that is not fails naming it), and 1 <= k <= C.
 * CSV: the header "top1,p1,top2,p2,...", then per row of d its k classes in
 * order of decreasing probability (the smaller id first among equals), each
 * as names[id] when id < nnames (quoted as CSV needs) or else the id, and
 * its probability as %.9g. */
RtStatus rt_predict_top(RtSession *s, const RtDataset *d, int64_t k, int nnames,
                        const char *const *names, FILE *out, RtError *err);

/* Sample an index of p[0, n) (probabilities, not necessarily normalised)
 * from p^(1/temperature) renormalised, with r; temperature 0 is argmax (the
 * first maximum). p must be finite and non-negative with a positive sum. */
int64_t rt_sample(const double *p, int64_t n, double temperature, RtRng *r);

/* Generate text with a character-level model: write prompt, then length
 * characters to out, each sampled (rt_sample, s->rng) from the predict
 * program's first output for the last `context` ids. The model's int input of
 * shape [B, context] is fed; a prompt shorter than context is left-padded
 * with the id of its first character. The first output's last axis must
 * have at least v->n entries summing to 1 (softmax probabilities over the
 * vocabulary); entries past v->n are ignored. prompt must not be empty, and
 * every byte of it must be in v. */
RtStatus rt_generate(RtSession *s, const RtVocab *v, int64_t context, const char *prompt,
                     int64_t length, double temperature, FILE *out, RtError *err);

/* ---- weight files: safetensors ---------------------------------------------
 * Every parameter under its name, then every optimizer state under its name
 * ("opt.m.h.W"), F32 or F64 by the model's elem type; the __metadata__
 * object holds first "header_crc32" and "data_crc32" (CRC-32s of the header
 * and of the data section, runtime/safetensors.c), then "format": "gradc",
 * "model": the model's name, and any extra string pairs the caller adds (the
 * vocabulary of text data, its context length). Written atomically: a temporary file beside the target
 * ("<path>.tmp.<pid>"), fsync, rename, fsync of the directory; a process
 * killed mid-save leaves the old file at path and its temporary file, which
 * the next save to path removes (the temporary files of processes that no
 * longer exist). */
RtStatus rt_save_weights(const RtSession *s, const char *path, RtError *err);
/* The same with nmeta extra metadata pairs keys[k]: values[k]. Keys must be
 * distinct and not "format" or "model"; keys and values valid UTF-8
 * (rt_utf8_valid). */
RtStatus rt_save_weights_meta(const RtSession *s, const char *path, int nmeta,
                              const char *const *keys, const char *const *values, RtError *err);
/* Is s (NUL-terminated) valid UTF-8, as metadata must be? */
bool rt_utf8_valid(const char *s);
/* A file with checksums (every file gradc writes) must match them: a
 * flipped bit or a cut fails as "F: corrupt checkpoint: ..." (checksum
 * mismatch with both values, or truncated with both sizes); a file without
 * them (another tool's) is read unchecked.
 * Every parameter must be present with its shape; dtype F32 or F64 converts.
 * The header must describe a whole file: every tensor's data_offsets fit its
 * dtype and shape, and the tensors (the model's and any others) tile the
 * data section from its first byte to the end of the file, as the format
 * requires; a truncated or lengthened file, overlapping tensors or a gap
 * fail, naming the tensor.
 * The optimizer states are loaded when the file has any of them, and then
 * every one must be present; a file with none (weights from an older gradc
 * or another tool) leaves them as they are. Tensors the model does not have
 * are ignored. All or nothing: on RT_FAIL the arena is unchanged. */
RtStatus rt_load_weights(RtSession *s, const char *path, RtError *err);

/* A checkpoint: the weight file above plus what continuing needs, in the
 * metadata: "step" and "epoch" (decimal s->step and s->epoch), "epoch_rows"
 * (decimal s->epoch_rows) and "rng" (s->rng, its 4 words as 16 hex digits
 * each, separated by spaces). The caller's pairs come after those keys,
 * which it may not use. */
RtStatus rt_save_checkpoint(const RtSession *s, const char *path, int nmeta,
                            const char *const *keys, const char *const *values, RtError *err);
/* rt_load_weights, requiring every optimizer state and the checkpoint
 * metadata, and restoring s->step, s->epoch, s->epoch_rows and s->rng: with
 * the same data and configuration, rt_train then continues exactly as the
 * saved session would have. RT_FAIL ("'F' is not a checkpoint: ...") for a
 * file without them; on RT_FAIL s is unchanged. */
RtStatus rt_load_checkpoint(RtSession *s, const char *path, RtError *err);
/* The metadata value under key in the weight file at path: on RT_OK
 * *value_out is a malloc'd copy (free it), or NULL when the file has no such
 * key. RT_FAIL when the file cannot be read or its header is corrupt (the
 * header's checksum is checked; the data is not read). */
RtStatus rt_read_weights_meta(const char *path, const char *key, char **value_out, RtError *err);

/* ---- a model as a C library (embed.c) ----------------------------------------
 * What the library `gradc build M.nn --lib -o NAME` makes calls: one
 * training step, evaluation and prediction on rows in arrays the caller owns,
 * and weight files. Each input array holds n rows of one model input, in the
 * model's input order, packed row-major (row r starts at element r * the
 * input's elements per row): the model's float type for float inputs, int32
 * for int inputs. Nothing here prints, exits or keeps global state: sessions
 * of different models (or of the same one) are independent, and a session
 * may be used by one thread at a time. The compiled code runs with
 * flush-to-zero and denormals-are-zero, as in gradc train (rt_setup), and the
 * caller's floating-point mode is restored before each function returns. */

/* Why a library call failed; the message is in the RtError. */
typedef enum RtLibCode {
    RT_LIB_OK = 0,
    RT_LIB_EINVAL = 1, /* a bad argument: a row count out of range, a NULL array, an int
                          value outside its input's range, a NaN or infinite float */
    RT_LIB_EIO = 2,    /* a weight file that cannot be read or written, or does not fit
                          the model */
    RT_LIB_ENOMEM = 3, /* out of memory */
    RT_LIB_ELOSS = 4,  /* the loss became NaN or infinite: the step spoilt the parameters */
    RT_LIB_ECPU = 5,   /* the CPU lacks an instruction set the code was compiled for */
} RtLibCode;

/* rt_setup's OpenBLAS kernel choice and thread count (0: leave as is),
 * without changing the calling thread's floating-point mode. Process-wide:
 * call it before any session runs, from one thread. */
void rt_lib_setup(int threads);

/* One optimizer step on rows [0, n) of inputs (every input; 1 <= n <=
 * max_batch): checks the rows (int values in [0, limit) when the input has a
 * limit; float values finite), copies them into the arena, stores the
 * per-step hypers (rt_step_hypers with epochs), runs the train program and
 * advances s->step. *loss (loss may be NULL): the batch's mean loss, computed
 * before the update. RT_LIB_ELOSS when it is NaN or infinite (the step was
 * taken; the parameters are spoilt). Errors name the input and the row:
 * "input 'y', row 3: 12 is out of range [0, 10)". */
RtLibCode rt_lib_train_step(RtSession *s, const void *const *inputs, int64_t n, int64_t epochs,
                            double *loss, RtError *err);

/* The eval program over rows [0, n) of inputs (every input; n >= 1), in
 * batches of at most max_batch: the mean loss and the metric's accuracy
 * (NaN when the model has none); either pointer may be NULL. The rows are
 * checked as rt_lib_train_step checks them. Parameters do not change. */
RtLibCode rt_lib_evaluate(RtSession *s, const void *const *inputs, int64_t n, double *loss,
                          double *accuracy, RtError *err);

/* The predict program over rows [0, n) of inputs (n >= 0), in batches of at
 * most max_batch. need: one flag per input, NULL for all; inputs[i] of an
 * input without need[i] is not read (pass NULL: the outputs do not depend
 * on it). Int values are checked against their limits (floats are not: a
 * NaN feature gives a NaN prediction). outputs[r] receives output r (the
 * predict program's roots, in order): n rows of its per-row elements for an
 * output with a leading batch dimension, else its elements once. */
RtLibCode rt_lib_predict(RtSession *s, const void *const *inputs, const bool *need, int64_t n,
                         void *const *outputs, RtError *err);

/* Load a weight file: a checkpoint (a file with "step" in its metadata)
 * with rt_load_checkpoint, restoring the step, the epoch and the RNG too;
 * any other weight file with rt_load_weights. All or nothing. */
RtLibCode rt_lib_load(RtSession *s, const char *path, RtError *err);

/* rt_save_checkpoint with the caller's metadata pairs: atomically, so that
 * a crash leaves the previous file intact. */
RtLibCode rt_lib_save(const RtSession *s, const char *path, int nmeta, const char *const *keys,
                      const char *const *values, RtError *err);

#endif
