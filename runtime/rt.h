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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum RtStatus { RT_OK = 0, RT_FAIL = 1 } RtStatus;

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
    RtProgram train;   /* roots: loss */
    RtProgram eval;    /* roots: loss, then the metric's prediction if any */
    RtProgram predict; /* roots: the outputs */
    RtProgram grad;    /* roots: loss, then each parameter's gradient */
    RtMetric metric;
    int metric_label; /* input index of the labels */
    double metric_threshold;
} RtModel;

/* Elements of t for a given batch size. */
int64_t rt_numel(const RtTensor *t, int64_t batch);

/* ---- process set-up -------------------------------------------------------
 * Make OpenBLAS use its AVX-512 (or AVX2) kernels when the CPU has them, even
 * where OpenBLAS's own detection falls back to SSE3, unless the user set
 * OPENBLAS_CORETYPE; set its thread count (0: leave as is); set flush-to-zero
 * and denormals-are-zero. Call once before training. */
void rt_setup(int threads);
/* The OpenBLAS kernel family in use ("SkylakeX", "Haswell", ...). */
const char *rt_blas_corename(void);

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
    RtRng rng;
    int64_t step;  /* optimizer steps taken */
    int64_t epoch; /* epochs finished */
} RtSession;

RtStatus rt_session_init(RtSession *s, const RtModel *m, uint64_t seed, RtError *err);
void rt_session_free(RtSession *s);
/* Initialise every parameter from its RtInit, in order, from s->rng. */
void rt_init_params(RtSession *s);
/* A tensor's storage in the arena. */
void *rt_ptr(const RtSession *s, const RtTensor *t);
/* Set a hyperparameter by name; RT_FAIL if the model has none of that name. */
RtStatus rt_set_hyper(RtSession *s, const char *name, double value, RtError *err);

/* ---- data -------------------------------------------------------------------
 * A dataset holds, for each model input, n rows of that input's per-row
 * elements (its shape without the batch dimension), as float (in the model's
 * elem type) or int32. */
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
} RtCsvSpec;

typedef struct RtDataset {
    int64_t n;
    int ninputs;            /* == m->ninputs, in the model's input order */
    void **data;            /* data[i]: n * row_elems[i] elements */
    int64_t *row_elems;
    /* For an int input read from a string column: the class names, id order. */
    int nclasses;
    char **class_names;
} RtDataset;

/* Load a CSV file for model m. Numeric columns become floats; an int input
 * from a column of strings gets class ids in sorted order of the names (Iris:
 * setosa 0, versicolor 1, virginica 2); an int input from numbers must hold
 * integers. Errors name file, row and column. */
RtStatus rt_load_csv(RtDataset *d, const RtModel *m, const RtCsvSpec *spec, RtError *err);
void rt_dataset_free(RtDataset *d);

/* ---- training -------------------------------------------------------------- */

typedef struct RtTrainConfig {
    int epochs;
    int64_t steps; /* stop after this many optimizer steps; 0: no limit */
    int64_t batch; /* <= m->max_batch */
    uint64_t seed; /* shuffling and the held-out split */
    double split;  /* held-out fraction, [0, 1) */
    const char *log_path; /* JSON Lines, one object per epoch; NULL: none */
    bool quiet;
    FILE *out; /* progress lines; NULL: stdout */
} RtTrainConfig;

/* Per-epoch figures, also what the log records. */
typedef struct RtEpochStats {
    int64_t epoch, step;
    double loss;     /* mean training loss over the epoch's batches */
    double val_loss; /* NaN without held-out data */
    double accuracy; /* on held-out data, else on training data; NaN without a metric */
    double samples_per_s, seconds;
} RtEpochStats;

/* Train s on d: shuffle with cfg->seed, hold out cfg->split of the rows
 * (shuffled first, so sorted files split fairly), mini-batches with a last
 * partial batch, one progress line per epoch. last: the final epoch's
 * figures (may be NULL). */
RtStatus rt_train(RtSession *s, const RtDataset *d, const RtTrainConfig *cfg,
                  RtEpochStats *last, RtError *err);

/* Mean loss and metric of the eval program over the rows rows[0, nrows) of d,
 * in batches of at most m->max_batch; accuracy is NaN without a metric, and
 * loss or accuracy may be NULL. */
RtStatus rt_evaluate(RtSession *s, const RtDataset *d, const int64_t *rows, int64_t nrows,
                     double *loss, double *accuracy, RtError *err);

/* ---- weight files: safetensors ---------------------------------------------
 * Every parameter under its name, F32 or F64 by the model's elem type.
 * Written atomically: a temporary file beside the target, fsync, rename. */
RtStatus rt_save_weights(const RtSession *s, const char *path, RtError *err);
/* Every parameter must be present with its shape; dtype F32 or F64 converts. */
RtStatus rt_load_weights(RtSession *s, const char *path, RtError *err);

#endif
