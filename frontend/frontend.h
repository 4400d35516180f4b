/* frontend.h: model source text to graph IR.
 *
 * The front end lexes and parses a .nn file, checks names and shapes, and
 * lowers the model to a Graph (ir/ir.h) plus the settings of its train { }
 * block. Every error is a diagnostic with a location; nothing here prints or
 * exits.
 */
#ifndef GRADC_FRONTEND_H
#define GRADC_FRONTEND_H

#include "../ir/ir.h"

/* One model input's columns in a CSV file: x = ["a", "b"] or x = 1 or
 * x = [1, 2, 3]. Exactly one of names/indices is used per column. */
typedef struct DataColumns {
    const char *input;
    int ncols;
    const char **names;  /* names[i] non-NULL: a header name */
    int *indices;        /* else indices[i]: a 0-based column */
    Loc loc;
} DataColumns;

typedef enum DataKind {
    DATA_NONE,
    DATA_CSV,  /* csv(file, input = columns..., header = true) */
    DATA_IDX,  /* idx(images, labels, scale = 1): MNIST IDX files, gzip or not */
    DATA_NPY,  /* npy(file) for a model with one input, or npy(input = file, ...) */
    DATA_TEXT, /* text(file, context = N): character-level language-model data */
} DataKind;

/* One file of a data source. path is resolved against the model file's
 * directory; written is the path as written in the model file. */
typedef struct DataFile {
    const char *input; /* npy: the model input it feeds (NULL: the only input) */
    const char *path, *written;
    Loc loc;           /* the path string */
} DataFile;

typedef struct DataSpec {
    DataKind kind;
    /* csv, text: files[0]; idx: files[0] images, files[1] labels; npy: one
     * per input. */
    int nfiles;
    DataFile *files;
    const char *path;         /* = files[0].path (kept for the CSV code) */
    const char *path_written; /* = files[0].written */
    bool header;      /* csv: default true */
    int ninputs;      /* csv: the columns of each input */
    DataColumns *inputs;
    double scale;     /* idx: every pixel value is multiplied by it; default 1 */
    int64_t context;  /* text: characters of context per example */
    Loc loc;          /* the data source's call */
} DataSpec;

struct Expr;

/* The train { } block. Fields not written keep the defaults:
 * optimizer sgd with its defaults, batch 32, epochs 10, seed 0, split 0,
 * no clipping. */
typedef struct TrainConfig {
    DataSpec data;
    const char *optimizer;             /* the rule's name: "sgd" */
    Loc optimizer_loc;
    const struct Expr *optimizer_call; /* `optimizer = ...` as written; NULL: sgd */
    double clip_norm;                  /* global gradient-norm bound; 0: none */
    int64_t batch;
    int epochs;
    uint64_t seed;
    double split;
} TrainConfig;

typedef struct Model {
    SrcFile *src;
    Graph *graph; /* forward graph: inputs, params, outputs, loss, metric */
    TrainConfig train;
    struct Lower *lower; /* the front end's state, for fe_build_training */
} Model;

/* Parse and lower the model in text (path names it in diagnostics and is the
 * base for relative data paths). NULL when d has errors. The model's name is
 * path's base name without its extension, made a C identifier. A model
 * without a loss is not an error here (gradc grad prints it); commands that
 * train must check graph->loss. Lowering is skipped when the file has
 * syntax errors, so that a broken line does not cause errors elsewhere. */
Model *fe_compile(Arena *a, Diags *d, const char *path, const char *text);

/* Makes m's graph a training graph: the gradients (ad_backward), the
 * clipping of the train block's clip_norm, and the update of its optimizer
 * rule, or of `optimizer` when not NULL (the text of a rule call given on
 * the command line, "adam(lr = 3e-4)", reported as coming from
 * "--optimizer"); lr, when finite, replaces the rule's lr argument (--lr).
 * The rules are the prelude's (frontend/prelude.nn) and the model's own
 * `optimizer` blocks, which take precedence. Requires graph->loss. false
 * after reporting errors in d. */
bool fe_build_training(Model *m, Diags *d, const char *optimizer, double lr);

/* The names of the optimizers m can use, prelude and model, for messages;
 * *n is their count. */
const char *const *fe_optimizer_names(const Model *m, int *n);

/* Whether the train block's data files can be opened; if not, reports
 * "cannot open data file '<as written>' (resolved to '<absolute>'): <why>"
 * at the path string. true when the model names no data file. */
bool fe_check_data(const Model *m, Diags *d);

#endif
