/* run_data.c: the train block's data source mapped onto the runtime's
 * loaders (csv, idx, npy, text), predict's --input files, and what trained
 * weights fix about the data (a text model's vocabulary, the class names of
 * string labels). Also the run library's small allocations and messages.
 *
 * Loads and reports through RtError; must not print or exit.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "checkpoint.h"
#include "run_internal.h"

/* ---- allocations ------------------------------------------------------------------- */

void *run_alloc(RunPool *p, size_t size) {
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 16;
        void **blocks = realloc(p->blocks, sizeof *blocks * (size_t)cap);
        if (!blocks)
            goto oom;
        p->blocks = blocks;
        p->cap = cap;
    }
    void *b = calloc(1, size ? size : 1);
    if (!b)
        goto oom;
    return p->blocks[p->n++] = b;
oom:
    fprintf(stderr, "gradc: out of memory (allocating %zu bytes)\n", size);
    abort();
}

char *run_printf(RunPool *p, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = run_alloc(p, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

char *run_strndup(RunPool *p, const char *s, size_t n) {
    char *d = run_alloc(p, n + 1);
    memcpy(d, s, n);
    return d;
}

void run_pool_free(RunPool *p) {
    for (int i = 0; i < p->n; i++)
        free(p->blocks[i]);
    free(p->blocks);
    memset(p, 0, sizeof *p);
}

/* ---- messages ---------------------------------------------------------------------- */

int run_error(const RunCli *c, const char *msg) {
    fprintf(stderr, "%s: error: %s\n", c->name, msg);
    return RUN_EXIT_USER;
}

int run_model_error(const RunModel *m, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: error: ", m->path);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return RUN_EXIT_USER;
}

/* ---- what weights fix about the data ------------------------------------------------- */

RtStatus run_weights_vocab(const char *path, RtVocab *v, bool *found, RtError *err) {
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

RtStatus run_known_from(const char *path, RunKnown *k, RtError *err) {
    memset(k, 0, sizeof *k);
    if (!path)
        return RT_OK;
    if (run_weights_vocab(path, &k->vocab, &k->have_vocab, err) != RT_OK ||
        rt_read_weights_meta(path, "classes", &k->classes_text, err) != RT_OK)
        return RT_FAIL;
    if (k->classes_text)
        k->nclasses = ckpt_classes_from_string(k->classes_text, &k->classes);
    return RT_OK;
}

void run_known_free(RunKnown *k) {
    free(k->classes);
    free(k->classes_text);
    memset(k, 0, sizeof *k);
}

/* ---- data sources ------------------------------------------------------------------ */

/* The train block's CSV description for the runtime, reading path. need:
 * the inputs to load (NULL: all). */
static RtCsvSpec csv_spec(const RunData *ds, const char *path, const bool *need) {
    return (RtCsvSpec){.path = path, .header = ds->header, .ninputs = ds->ncolumns,
                       .inputs = ds->columns, .need = need};
}

/* File k of the data source, or NULL. */
static const char *data_path(const RunData *ds, int k) {
    return k < ds->nfiles ? ds->files[k].path : NULL;
}

static const char *data_kind_name(RunDataKind k) {
    switch (k) {
    case RUN_DATA_NONE: return "no";
    case RUN_DATA_CSV: return "csv";
    case RUN_DATA_IDX: return "idx";
    case RUN_DATA_NPY: return "npy";
    case RUN_DATA_TEXT: return "text";
    }
    return "?";
}

RtStatus run_load_data(RunPool *p, const RunModel *m, const char *override, const bool *need,
                       const RunKnown *known, RtVocab *vocab_out, RtDataset *d, RtError *err) {
    const RunData *ds = &m->data;
    const char *first = override ? override : data_path(ds, 0);
    switch (ds->kind) {
    case RUN_DATA_NONE:
        return rt_fail(err, "the train block names no data");
    case RUN_DATA_CSV: {
        RtCsvSpec spec = csv_spec(ds, first, need);
        if (known && known->nclasses > 0) {
            spec.nclasses = known->nclasses;
            spec.classes = known->classes;
        }
        return rt_load_csv(d, m->rm, &spec, err);
    }
    case RUN_DATA_IDX:
        return rt_load_idx(d, m->rm, first, need ? NULL : data_path(ds, 1), ds->scale, err);
    case RUN_DATA_NPY: {
        if (override && ds->nfiles > 1)
            return rt_fail(err, "--data replaces one file, but the train block's npy(...) names "
                                "%d; write the files into the model instead",
                           ds->nfiles);
        RtNpyFile *files = run_alloc(p, sizeof *files * (size_t)(ds->nfiles + 1));
        for (int i = 0; i < ds->nfiles; i++)
            files[i] = (RtNpyFile){ds->files[i].input, i == 0 ? first : ds->files[i].path};
        return rt_load_npy_inputs(d, m->rm, need, ds->nfiles, files, err);
    }
    case RUN_DATA_TEXT:
        return rt_load_text(d, m->rm, first, ds->context,
                            known && known->have_vocab ? &known->vocab : NULL, vocab_out, err);
    }
    return rt_fail(err, "unknown data source");
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

RtStatus run_load_inputs(RunPool *p, const RunModel *m, int ninputs, const char *const *inputs,
                         RtDataset *d, RtError *err) {
    const RunData *ds = &m->data;
    const char *f = inputs[0];
    bool npy = true;
    for (int i = 0; i < ninputs; i++) {
        const char *eq = strchr(inputs[i], '=');
        const char *path = eq && ends_with(inputs[i], ".npy") ? eq + 1 : inputs[i];
        npy &= ends_with(path, ".npy") || ends_with(path, ".npy.gz");
    }
    if (npy) {
        RtNpyFile *files = run_alloc(p, sizeof *files * (size_t)ninputs);
        for (int i = 0; i < ninputs; i++) {
            const char *eq = strchr(inputs[i], '=');
            files[i].input = eq ? run_strndup(p, inputs[i], (size_t)(eq - inputs[i])) : NULL;
            files[i].path = eq ? eq + 1 : inputs[i];
        }
        return rt_load_npy_inputs(d, m->rm, m->need, ninputs, files, err);
    }
    if (ninputs > 1)
        return rt_fail(err, "several --input files are for .npy inputs only; '%s' is not one",
                       inputs[1]);
    if (ends_with(f, ".csv")) {
        if (ds->kind != RUN_DATA_CSV)
            return rt_fail(err, "%s: a CSV input needs the column selection of a csv(...) data "
                                "source, but the train block reads %s data",
                           f, data_kind_name(ds->kind));
        RtCsvSpec spec = csv_spec(ds, f, m->need);
        return rt_load_csv(d, m->rm, &spec, err);
    }
    const char *base = base_name(f);
    if (strstr(base, "idx") || ends_with(base, "-ubyte") || ends_with(base, "-ubyte.gz"))
        return rt_load_idx(d, m->rm, f, NULL, ds->kind == RUN_DATA_IDX ? ds->scale : 1.0, err);
    return rt_fail(err, "%s: cannot tell the format from the name; give a .csv, a .npy or an "
                        "IDX image file (*-ubyte, *-ubyte.gz)",
                   f);
}

RtStatus run_load_batch(const RunModel *m, const char *weights, RtSession *s, int64_t batch,
                        int64_t *nrows, int64_t *total, RtError *err) {
    RunPool pool = {0};
    RunKnown known = {0};
    RtDataset d = {0};
    RunModel mm = *m;
    mm.rm = s->m;
    RtStatus st = run_known_from(weights, &known, err);
    if (st == RT_OK)
        st = run_load_data(&pool, &mm, NULL, NULL, &known, NULL, &d, err);
    if (st == RT_OK && d.n < 1)
        st = rt_fail(err, "%s: the data source has no rows", data_path(&m->data, 0));
    if (st == RT_OK) {
        int64_t nb = batch < d.n ? batch : d.n;
        /* Rows [0, nb), as rt_train lays a batch out: row-major, batch first. */
        for (int i = 0; i < s->m->ninputs; i++) {
            const RtTensor *t = &s->m->inputs[i];
            size_t elem = t->dtype == RT_INT ? sizeof(int32_t) : (size_t)s->m->elem_size;
            size_t row = (size_t)d.row_elems[i] * elem;
            int64_t stride = d.row_stride && d.row_stride[i] ? d.row_stride[i] : d.row_elems[i];
            char *dst = rt_ptr(s, t);
            for (int64_t r = 0; r < nb; r++)
                memcpy(dst + (size_t)r * row, (const char *)d.data[i] + (size_t)(r * stride) * elem,
                       row);
        }
        *nrows = nb;
        *total = d.n;
    }
    rt_dataset_free(&d);
    run_known_free(&known);
    run_pool_free(&pool);
    return st;
}

const RtModel *run_batch_model(RunPool *p, const RtModel *rm, int64_t batch) {
    if (batch <= 0 || batch >= rm->max_batch)
        return rm;
    RtModel *copy = run_alloc(p, sizeof *copy);
    *copy = *rm;
    copy->max_batch = batch;
    return copy;
}
