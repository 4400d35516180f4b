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

typedef enum DataKind { DATA_NONE, DATA_CSV } DataKind;

typedef struct DataSpec {
    DataKind kind;
    const char *path; /* resolved against the model file's directory */
    bool header;      /* default true */
    int ninputs;
    DataColumns *inputs;
    Loc loc;
} DataSpec;

/* A keyword argument of the optimizer call: optimizer = sgd(lr = 0.1). */
typedef struct OptArg {
    const char *name;
    double value;
    Loc loc;
} OptArg;

/* The train { } block. Fields not written keep the defaults:
 * optimizer sgd, lr from the optimizer's default, batch 32, epochs 10,
 * seed 0, split 0. */
typedef struct TrainConfig {
    DataSpec data;
    const char *optimizer; /* "sgd" */
    Loc optimizer_loc;
    int nopt_args;
    OptArg *opt_args;
    int64_t batch;
    int epochs;
    uint64_t seed;
    double split;
} TrainConfig;

typedef struct Model {
    SrcFile *src;
    Graph *graph; /* forward graph: inputs, params, outputs, loss, metric */
    TrainConfig train;
} Model;

/* Parse and lower the model in text (path names it in diagnostics and is the
 * base for relative data paths). NULL when d has errors. */
Model *fe_compile(Arena *a, Diags *d, const char *path, const char *text);

#endif
