/* run_internal.h: what the files of the run library (run_*.c) share: the
 * data sources, what trained weights fix about the data, small allocations.
 * Not for gradc.c or build.c: their interface is run.h.
 */
#ifndef GRADC_DRIVER_RUN_INTERNAL_H
#define GRADC_DRIVER_RUN_INTERNAL_H

#include "run.h"

/* ---- allocations that live as long as a command ---------------------------------
 * Every block is freed by run_pool_free; out of memory aborts with a
 * message, as the compiler's arenas do. */
typedef struct RunPool {
    void **blocks;
    int n, cap;
} RunPool;

void *run_alloc(RunPool *p, size_t size); /* zeroed */
char *run_printf(RunPool *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *run_strndup(RunPool *p, const char *s, size_t n);
void run_pool_free(RunPool *p);

/* ---- messages -------------------------------------------------------------------- */

/* "NAME: error: msg" on stderr; returns RUN_EXIT_USER. */
int run_error(const RunCli *c, const char *msg);
/* "PATH: error: " and the formatted message (the model file's errors). */
int run_model_error(const RunModel *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- data ------------------------------------------------------------------------ */

/* What weights trained earlier fix about the data, so that ids keep the
 * meaning they had in training: a text model's vocabulary, the class names
 * of a column of string labels. */
typedef struct RunKnown {
    bool have_vocab;
    RtVocab vocab;
    int nclasses;
    const char **classes; /* malloc'd, pointing into classes_text */
    char *classes_text;   /* malloc'd */
} RunKnown;

/* What the weights at path fix about the data (nothing for path NULL). */
RtStatus run_known_from(const char *path, RunKnown *k, RtError *err);
void run_known_free(RunKnown *k);
/* The vocabulary stored with text-model weights; *found false when the
 * file has none. */
RtStatus run_weights_vocab(const char *path, RtVocab *v, bool *found, RtError *err);

/* Load the train block's data source for m->rm. override replaces its
 * (first) file. need NULL: every input, labels included (training); else
 * only those inputs (prediction: idx reads no labels). known (may be NULL):
 * a text file must use its vocabulary (else the file's own is built), and
 * string labels its class names (else the file's sorted labels); the
 * vocabulary used goes to vocab_out. */
RtStatus run_load_data(RunPool *p, const RunModel *m, const char *override, const bool *need,
                       const RunKnown *known, RtVocab *vocab_out, RtDataset *d, RtError *err);
/* The --input files of predict as a dataset, the format by their names:
 * .csv (the train block's column selection), .npy, IDX images. */
RtStatus run_load_inputs(RunPool *p, const RunModel *m, int ninputs, const char *const *inputs,
                         RtDataset *d, RtError *err);

/* rm with max_batch lowered to batch when batch is smaller (a built
 * program's --batch: its arena fits the larger batch it was built for). */
const RtModel *run_batch_model(RunPool *p, const RtModel *rm, int64_t batch);

#endif
