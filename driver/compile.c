/* compile.c: reading a model file, the model hash, and the RunModel of a
 * model: what gradc's commands and gradc build do before and around the
 * code generator. See compile.h.
 *
 * Owns the mapping of the front end's DataSpec and train block onto the
 * run library's terms; must not run the model.
 */
#include "compile.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen/cg.h"
#include "frontend/lexer.h"
#include "timing.h"

/* ---- reading a model ------------------------------------------------------------ */

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

void print_diags(Diags *d) {
    diags_print(d, stderr, isatty(fileno(stderr)) && !getenv("NO_COLOR"));
}

Model *load_model(Arena *a, Diags *d, const char *path) {
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
        print_diags(d);
        return NULL;
    }
    /* Test hooks for autodiff (docs/testing.md); unset in normal use. */
    m->graph->test_broken_grad = getenv("GRADC_TEST_BREAK_GRAD");
    m->graph->test_no_grad = getenv("GRADC_TEST_NO_GRAD");
    return m;
}

CgModule *compile_programs(Diags *d, Graph *g, int64_t batch, unsigned mask, int elem_size,
                           Timing *t, Plan **plan_out) {
    return compile_programs_flags(d, g, batch, mask, elem_size, 0, t, plan_out);
}

CgModule *compile_programs_flags(Diags *d, Graph *g, int64_t batch, unsigned mask, int elem_size,
                                 unsigned plan_flags, Timing *t, Plan **plan_out) {
    ir_optimize_observed(g, timing_pass_observer, t);
    Plan *plan = ir_plan_flags(g, batch, elem_size, mask, plan_flags);
    timing_mark(t, "fuse and plan");
    CgOptions co = {.elem_size = elem_size, .opt_level = 2, .no_ir_text = true,
                    .stage = timing_stage_observer,
                    .stage_ud = t};
    CgModule *cg = cg_compile(g, plan, &co, d);
    if (!cg) {
        print_diags(d);
        return NULL;
    }
    if (plan_out)
        *plan_out = plan;
    return cg;
}

/* ---- the model hash ----------------------------------------------------------- */

typedef struct Fnv {
    uint64_t h;
} Fnv;

static void fnv_bytes(Fnv *f, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        f->h ^= p[i];
        f->h *= 0x100000001b3ull;
    }
}

/* Every token of text but the final EOF: its kind, its length, its bytes. */
static void fnv_tokens(Fnv *f, const char *name, const char *text, size_t len) {
    Arena *a = arena_new();
    Diags d;
    diags_init(&d, a);
    SrcFile src = {name, text, len};
    TokenVec toks = lex_file(a, &d, &src);
    for (int i = 0; i < toks.len; i++) {
        const Token *t = &toks.items[i];
        if (t->kind == TK_EOF)
            continue;
        unsigned char head[5] = {(unsigned char)t->kind, (unsigned char)t->len,
                                 (unsigned char)(t->len >> 8), (unsigned char)(t->len >> 16),
                                 (unsigned char)(t->len >> 24)};
        fnv_bytes(f, head, sizeof head);
        fnv_bytes(f, t->text, (size_t)t->len);
    }
    arena_free(a);
}

/* Contract: see compile.h. A version tag first, so that a later change of
 * what is hashed cannot collide with these hashes. */
char *ckpt_model_hash(const SrcFile *model, const char *optimizer, char buf[CKPT_HASH_LEN]) {
    static const char tag[] = "gradc model hash 1";
    Fnv f = {0xcbf29ce484222325ull};
    fnv_bytes(&f, tag, sizeof tag);
    fnv_tokens(&f, model->path, model->text, model->len);
    unsigned char mark = optimizer ? 0xff : 0xfe;
    fnv_bytes(&f, &mark, 1);
    if (optimizer)
        fnv_tokens(&f, "--optimizer", optimizer, strlen(optimizer));
    snprintf(buf, CKPT_HASH_LEN, "%016llx", (unsigned long long)f.h);
    return buf;
}

/* ---- the model for the run library ----------------------------------------------- */

/* path made absolute: the file's real path when it exists, else path
 * after the working directory. */
static const char *absolute_path(Arena *a, const char *path) {
    char buf[PATH_MAX];
    if (realpath(path, buf))
        return arena_strdup(a, buf);
    if (path[0] == '/' || !getcwd(buf, sizeof buf))
        return path;
    return arena_printf(a, "%s/%s", buf, path);
}

static RunDataKind run_kind(DataKind k) {
    switch (k) {
    case DATA_NONE: return RUN_DATA_NONE;
    case DATA_CSV: return RUN_DATA_CSV;
    case DATA_IDX: return RUN_DATA_IDX;
    case DATA_NPY: return RUN_DATA_NPY;
    case DATA_TEXT: return RUN_DATA_TEXT;
    }
    return RUN_DATA_NONE;
}

/* The train block's data source in the run library's terms. */
static RunData run_data(Arena *a, const DataSpec *ds, bool absolute) {
    RunData r = {.kind = run_kind(ds->kind), .header = ds->header, .scale = ds->scale,
                 .context = ds->context};
    /* A front end may set only DataSpec.path. */
    int nfiles = ds->nfiles > 0 && ds->files ? ds->nfiles : ds->path ? 1 : 0;
    RtNpyFile *files = arena_alloc(a, sizeof *files * (size_t)(nfiles + 1));
    for (int k = 0; k < nfiles; k++) {
        const char *path = ds->nfiles > 0 && ds->files ? ds->files[k].path : ds->path;
        files[k] = (RtNpyFile){ds->nfiles > 0 && ds->files ? ds->files[k].input : NULL,
                               absolute ? absolute_path(a, path) : path};
    }
    r.nfiles = nfiles;
    r.files = files;
    RtCsvInput *ins = arena_alloc(a, sizeof *ins * (size_t)(ds->ninputs + 1));
    for (int i = 0; i < ds->ninputs; i++) {
        const DataColumns *dc = &ds->inputs[i];
        RtColumnSel *cols = arena_alloc(a, sizeof *cols * (size_t)(dc->ncols + 1));
        for (int c = 0; c < dc->ncols; c++) {
            cols[c].name = dc->names ? dc->names[c] : NULL;
            cols[c].index = dc->indices ? dc->indices[c] : 0;
        }
        ins[i] = (RtCsvInput){dc->input, dc->ncols, cols};
    }
    r.ncolumns = ds->ninputs;
    r.columns = ins;
    return r;
}

void run_model_from(Arena *a, RunModel *r, const Model *m, const char *optimizer, bool absolute) {
    const Graph *g = m->graph;
    char *hash = arena_alloc(a, CKPT_HASH_LEN);
    *r = (RunModel){
        .path = m->src->path,
        .hash = ckpt_model_hash(m->src, optimizer, hash),
        .data = run_data(a, &m->train.data, absolute),
        .batch = m->train.batch,
        .epochs = m->train.epochs,
        .seed = m->train.seed,
        .split = m->train.split,
        .has_loss = g->loss != NULL,
        .noutputs = g->outputs.len,
        .optimizer = optimizer,
    };
    for (int i = 0; i < g->params.len && !r->random_param; i++) {
        const Param *p = &g->params.items[i];
        if (p->init.kind != INIT_CONST && p->init.kind != INIT_VALUES)
            r->random_param = p->name;
    }
}

bool *inputs_needed(Arena *a, const Graph *g) {
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
