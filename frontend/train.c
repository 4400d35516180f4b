/* train.c: the train { } block into TrainConfig, and the data file check.
 *
 * Owns the block's keys (data, optimizer, batch, epochs, seed, split,
 * clip_norm), the
 * data sources (csv with its columns, idx, npy, text), and resolving data paths against
 * the model file's directory. Must not validate optimizer names or
 * hyperparameters (optim.c does, when it builds the update) and must not
 * read the data (the runtime does).
 */
#include "lower.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef enum TrainKey { KEY_DATA, KEY_OPTIMIZER, KEY_BATCH, KEY_EPOCHS, KEY_SEED, KEY_SPLIT,
                        KEY_CLIP_NORM, NKEYS } TrainKey;
static const char *const key_names[NKEYS] = {"data", "optimizer", "batch", "epochs", "seed",
                                             "split", "clip_norm"};

/* ---- numbers ------------------------------------------------------------------ */

static bool is_numeric_kind(const Expr *e) {
    switch (e->kind) {
    case EX_NUM:
    case EX_NAME:
    case EX_NEG:
    case EX_BINARY:
        return true;
    case EX_BOOL:
    case EX_STR:
    case EX_CALL:
    case EX_LIST:
    case EX_INDEX:
        return false;
    }
    gc_unreachable();
}

static bool entry_int(Lower *L, const TrainEntry *e, int64_t min, int64_t max, int64_t *out) {
    if (!is_numeric_kind(e->value)) {
        diag_error(L->d, e->value->loc, "%s must be an integer, but this is %s", e->key,
                   fe_describe_expr(L, e->value));
        return false;
    }
    return fe_const_int(L, e->value, e->key, min, max, out);
}

static bool entry_number(Lower *L, const TrainEntry *e, double *out) {
    if (!is_numeric_kind(e->value)) {
        diag_error(L->d, e->value->loc, "%s must be a number, but this is %s", e->key,
                   fe_describe_expr(L, e->value));
        return false;
    }
    return fe_const_eval(L, e->value, out);
}

/* ---- data ------------------------------------------------------------------------ */

/* path relative to the model file's directory (the current directory when
 * the model's path has none); absolute paths are kept. */
static const char *resolve_path(Lower *L, const char *path) {
    const char *model = L->m->src->path;
    const char *slash = strrchr(model, '/');
    if (path[0] == '/' || !slash)
        return path;
    return arena_printf(L->a, "%.*s/%s", (int)(slash - model), model, path);
}

/* One column: a header name (string) or a 0-based index. */
static bool column(Lower *L, const Expr *e, const char **name, int *index) {
    if (e->kind == EX_STR) {
        if (!e->u.str[0]) {
            diag_error(L->d, e->loc, "a column name cannot be empty");
            return false;
        }
        *name = e->u.str;
        return true;
    }
    if (!is_numeric_kind(e)) {
        diag_error(L->d, e->loc, "a column must be a name (a string) or a 0-based index, but "
                                 "this is %s",
                   fe_describe_expr(L, e));
        return false;
    }
    int64_t i;
    if (!fe_const_int(L, e, "a column index", 0, 0x7fffffff, &i))
        return false;
    *name = NULL;
    *index = (int)i;
    return true;
}

/* input = "col" | 3 | ["a", "b", 4] */
static bool columns(Lower *L, const Arg *arg, DataColumns *out) {
    const Expr *v = arg->value;
    const Expr *const *items = (const Expr *const *)&v;
    int n = 1;
    if (v->kind == EX_LIST) {
        items = (const Expr *const *)v->u.items.items;
        n = v->u.items.len;
        if (n == 0) {
            diag_error(L->d, v->loc, "the list of columns for input '%s' is empty", arg->name);
            return false;
        }
    }
    *out = (DataColumns){.input = arg->name, .ncols = n, .loc = v->loc};
    out->names = arena_alloc(L->a, sizeof *out->names * (size_t)n);
    out->indices = arena_alloc(L->a, sizeof *out->indices * (size_t)n);
    bool ok = true;
    for (int i = 0; i < n; i++)
        ok &= column(L, items[i], &out->names[i], &out->indices[i]);
    return ok;
}

static const Input *find_input(const Graph *g, const char *name) {
    for (int i = 0; i < g->inputs.len; i++)
        if (!strcmp(g->inputs.items[i].name, name))
            return &g->inputs.items[i];
    return NULL;
}

static void unknown_input(Lower *L, const Arg *arg) {
    const Graph *g = L->g;
    const char **names = arena_alloc(L->a, sizeof *names * (size_t)(g->inputs.len + 1));
    for (int i = 0; i < g->inputs.len; i++)
        names[i] = g->inputs.items[i].name;
    const char *best = closest_name(arg->name, names, g->inputs.len);
    if (best)
        diag_error(L->d, arg->name_loc, "'%s' is not an input of the model; did you mean '%s'?",
                   arg->name, best);
    else
        diag_error(L->d, arg->name_loc, "'%s' is not an input of the model", arg->name);
}

/* A file-name argument: a string, resolved against the model's directory. */
static bool data_file(Lower *L, const char *source, const char *what, const Expr *e,
                      const char *input, DataFile *out) {
    if (e->kind != EX_STR) {
        diag_error(L->d, e->loc, "the %s of %s must be a string, but this is %s", what, source,
                   fe_describe_expr(L, e));
        return false;
    }
    if (!e->u.str[0]) {
        diag_error(L->d, e->loc, "the %s of %s is empty", what, source);
        return false;
    }
    *out = (DataFile){input, resolve_path(L, e->u.str), e->u.str, e->loc};
    return true;
}

static void set_files(Lower *L, DataSpec *ds, int n) {
    ds->nfiles = n;
    ds->files = arena_alloc(L->a, sizeof *ds->files * (size_t)(n + 1));
}

/* csv(path, <input> = columns, ..., header = true | false) */
static bool lower_csv(Lower *L, const Expr *v, int npos, DataSpec *ds) {
    const ArgVec *args = &v->u.call.args;
    if (npos != 1) {
        diag_error(L->d, v->loc, "csv expects the file name as its one positional argument, "
                                 "got %d positional arguments",
                   npos);
        return false;
    }
    set_files(L, ds, 1);
    if (!data_file(L, "csv", "file name", args->items[0].value, NULL, &ds->files[0]))
        return false;
    ds->header = true;
    ds->inputs = arena_alloc(L->a, sizeof *ds->inputs * (size_t)args->len);
    const Arg *header = NULL;
    bool ok = true;
    for (int i = npos; i < args->len; i++) {
        const Arg *arg = &args->items[i];
        if (!strcmp(arg->name, "header")) {
            if (header) {
                diag_error(L->d, arg->name_loc, "header is given twice");
                ok = false;
            } else if (arg->value->kind != EX_BOOL) {
                diag_error(L->d, arg->value->loc, "header must be true or false, but this is %s",
                           fe_describe_expr(L, arg->value));
                ok = false;
            }
            header = arg;
            ds->header = arg->value->kind == EX_BOOL && arg->value->u.boolean;
            continue;
        }
        if (!find_input(L->g, arg->name)) {
            unknown_input(L, arg);
            ok = false;
            continue;
        }
        bool dup = false;
        for (int j = 0; j < ds->ninputs; j++)
            dup |= !strcmp(ds->inputs[j].input, arg->name);
        if (dup) {
            diag_error(L->d, arg->name_loc, "the columns of input '%s' are given twice", arg->name);
            ok = false;
            continue;
        }
        if (columns(L, arg, &ds->inputs[ds->ninputs]))
            ds->ninputs++;
        else
            ok = false;
    }
    for (int i = 0; i < L->g->inputs.len && ok; i++) {
        const char *name = L->g->inputs.items[i].name;
        bool given = false;
        for (int j = 0; j < ds->ninputs; j++)
            given |= !strcmp(ds->inputs[j].input, name);
        if (!given) {
            diag_error(L->d, v->loc, "csv gives no columns for input '%s' (add %s = ...)", name,
                       name);
            ok = false;
        }
    }
    return ok;
}

/* idx(images, labels, scale = 1) */
static bool lower_idx(Lower *L, const Expr *v, DataSpec *ds) {
    static const char *const params[] = {"images", "labels", "scale"};
    const Expr *a[3];
    if (!fe_bind_args(L, v, "idx", 2, 3, params, a))
        return false;
    set_files(L, ds, 2);
    bool ok = data_file(L, "idx", "images file", a[0], NULL, &ds->files[0]);
    ok &= data_file(L, "idx", "labels file", a[1], NULL, &ds->files[1]);
    ds->scale = 1;
    if (a[2] && fe_const_eval(L, a[2], &ds->scale) && !(ds->scale > 0)) {
        diag_error(L->d, a[2]->loc, "scale must be positive, but this is %g", ds->scale);
        ok = false;
    }
    return ok && (!a[2] || ds->scale > 0);
}

/* text(file, context = N) */
static bool lower_text(Lower *L, const Expr *v, DataSpec *ds) {
    static const char *const params[] = {"file", "context"};
    const Expr *a[2];
    if (!fe_bind_args(L, v, "text", 2, 2, params, a))
        return false;
    set_files(L, ds, 1);
    bool ok = data_file(L, "text", "file name", a[0], NULL, &ds->files[0]);
    return fe_const_int(L, a[1], "context", 1, 1 << 20, &ds->context) && ok;
}

/* npy(file) for a model with one input, or npy(<input> = file, ...) */
static bool lower_npy(Lower *L, const Expr *v, int npos, DataSpec *ds) {
    const ArgVec *args = &v->u.call.args;
    if (npos > 1 || (npos == 1 && args->len > 1) || args->len == 0) {
        diag_error(L->d, v->loc, "npy takes one file for a model with one input, npy(\"x.npy\"), "
                                 "or one file per input, npy(x = \"x.npy\", y = \"y.npy\")");
        return false;
    }
    set_files(L, ds, args->len);
    if (npos == 1) {
        if (L->g->inputs.len != 1) {
            diag_error(L->d, v->loc, "npy(file) needs a model with one input, but this one has "
                                     "%d; name a file for each: npy(%s = \"...\", ...)",
                       L->g->inputs.len, L->g->inputs.len ? L->g->inputs.items[0].name : "x");
            return false;
        }
        return data_file(L, "npy", "file name", args->items[0].value, NULL, &ds->files[0]);
    }
    bool ok = true;
    for (int i = 0; i < args->len; i++) {
        const Arg *arg = &args->items[i];
        bool dup = false;
        for (int j = 0; j < i; j++)
            dup |= !strcmp(args->items[j].name, arg->name);
        if (dup) {
            diag_error(L->d, arg->name_loc, "the file of input '%s' is given twice", arg->name);
            ok = false;
        } else if (!find_input(L->g, arg->name)) {
            unknown_input(L, arg);
            ok = false;
        } else {
            ok &= data_file(L, "npy", "file name", arg->value, arg->name, &ds->files[i]);
        }
    }
    for (int i = 0; i < L->g->inputs.len && ok; i++) {
        const char *name = L->g->inputs.items[i].name;
        bool given = false;
        for (int j = 0; j < args->len; j++)
            given |= !strcmp(args->items[j].name, name);
        if (!given) {
            diag_error(L->d, v->loc, "npy gives no file for input '%s' (add %s = \"...\")", name,
                       name);
            ok = false;
        }
    }
    return ok;
}

static const char *const source_names[] = {"csv", "idx", "npy", "text"};
enum { NSOURCES = sizeof source_names / sizeof source_names[0] };

/* data = csv(...) | idx(...) | npy(...) | text(...) */
static void lower_data(Lower *L, const TrainEntry *e, DataSpec *ds) {
    const Expr *v = e->value;
    if (v->kind != EX_CALL) {
        diag_error(L->d, v->loc, "data must be a data source such as csv(\"file.csv\", x = [...], "
                                 "y = \"label\"), but this is %s",
                   fe_describe_expr(L, v));
        return;
    }
    const char *name = v->u.call.name;
    const ArgVec *args = &v->u.call.args;
    int npos = 0;
    while (npos < args->len && !args->items[npos].name)
        npos++;
    DataSpec d = {.loc = v->loc};
    bool ok;
    if (!strcmp(name, "csv")) {
        d.kind = DATA_CSV;
        ok = lower_csv(L, v, npos, &d);
    } else if (!strcmp(name, "idx")) {
        d.kind = DATA_IDX;
        ok = lower_idx(L, v, &d);
    } else if (!strcmp(name, "npy")) {
        d.kind = DATA_NPY;
        ok = lower_npy(L, v, npos, &d);
    } else if (!strcmp(name, "text")) {
        d.kind = DATA_TEXT;
        ok = lower_text(L, v, &d);
    } else {
        const char *best = closest_name(name, source_names, NSOURCES);
        if (best)
            diag_error(L->d, v->u.call.name_loc, "unknown data source '%s'; did you mean '%s'?",
                       name, best);
        else
            diag_error(L->d, v->u.call.name_loc, "unknown data source '%s' (expected csv, idx, "
                                                 "npy or text)",
                       name);
        return;
    }
    if (!ok)
        return;
    d.path = d.files[0].path;
    d.path_written = d.files[0].written;
    *ds = d;
}

/* optimizer = NAME or NAME(hyper = expr, ...): kept as written; the rule
 * and its arguments are checked when the update is built
 * (fe_build_training), which knows every rule. */
static void lower_optimizer(Lower *L, const TrainEntry *e, TrainConfig *tc) {
    const Expr *v = e->value;
    if (v->kind != EX_NAME && v->kind != EX_CALL) {
        diag_error(L->d, v->loc, "optimizer must be an optimizer such as sgd(lr = 0.1), but "
                                 "this is %s",
                   fe_describe_expr(L, v));
        return;
    }
    tc->optimizer = v->kind == EX_NAME ? v->u.name : v->u.call.name;
    tc->optimizer_loc = v->kind == EX_NAME ? v->loc : v->u.call.name_loc;
    tc->optimizer_call = v;
}

void fe_lower_train(Lower *L, const Stmt *s) {
    TrainConfig *tc = &L->m->train;
    const TrainEntry *seen[NKEYS] = {0};
    for (int i = 0; i < s->u.train.entries.len; i++) {
        const TrainEntry *e = &s->u.train.entries.items[i];
        int k = 0;
        while (k < NKEYS && strcmp(key_names[k], e->key))
            k++;
        if (k == NKEYS) {
            const char *best = closest_name(e->key, key_names, NKEYS);
            if (best)
                diag_error(L->d, e->key_loc, "unknown train setting '%s'; did you mean '%s'?",
                           e->key, best);
            else
                diag_error(L->d, e->key_loc, "unknown train setting '%s' (expected data, "
                                             "optimizer, batch, epochs, seed, split or "
                                             "clip_norm)",
                           e->key);
            continue;
        }
        if (seen[k]) {
            diag_error(L->d, e->key_loc, "%s is set twice", e->key);
            diag_note(L->d, seen[k]->key_loc, "%s is first set here", e->key);
            continue;
        }
        seen[k] = e;
        int64_t n;
        double x;
        switch ((TrainKey)k) {
        case KEY_DATA:
            lower_data(L, e, &tc->data);
            break;
        case KEY_OPTIMIZER:
            lower_optimizer(L, e, tc);
            break;
        case KEY_BATCH:
            if (entry_int(L, e, 1, 0x7fffffff, &n))
                tc->batch = n;
            break;
        case KEY_EPOCHS:
            if (entry_int(L, e, 1, 0x7fffffff, &n))
                tc->epochs = (int)n;
            break;
        case KEY_SEED:
            if (entry_int(L, e, 0, (int64_t)1 << 53, &n))
                tc->seed = (uint64_t)n;
            break;
        case KEY_SPLIT:
            if (!entry_number(L, e, &x))
                break;
            if (x < 0 || x >= 1)
                diag_error(L->d, e->value->loc, "split must be a fraction in [0, 1), but this "
                                                "is %g",
                           x);
            else
                tc->split = x;
            break;
        case KEY_CLIP_NORM:
            if (!entry_number(L, e, &x))
                break;
            if (!(x > 0))
                diag_error(L->d, e->value->loc, "clip_norm must be positive, but this is %g", x);
            else
                tc->clip_norm = x;
            break;
        case NKEYS:
            gc_unreachable();
        }
    }
}

/* ---- the data file ------------------------------------------------------------- */

/* Whether f can be opened for reading; if not, reports why at its string. */
static bool check_file(const DataFile *f, Diags *d) {
    int err = 0;
    struct stat st;
    if (stat(f->path, &st) != 0) {
        err = errno;
    } else if (S_ISDIR(st.st_mode)) {
        err = EISDIR;
    } else {
        FILE *fp = fopen(f->path, "r");
        if (fp)
            fclose(fp);
        else
            err = errno;
    }
    if (!err)
        return true;
    const char *abs = f->path;
    char cwd[4096];
    if (f->path[0] != '/' && getcwd(cwd, sizeof cwd))
        abs = arena_printf(d->arena, "%s/%s", cwd, f->path);
    diag_error(d, f->loc, "cannot open data file '%s' (resolved to '%s'): %s", f->written, abs,
               strerror(err));
    return false;
}

bool fe_check_data(const Model *m, Diags *d) {
    const DataSpec *ds = &m->train.data;
    bool ok = true;
    for (int i = 0; i < ds->nfiles; i++)
        ok &= check_file(&ds->files[i], d);
    return ok;
}
