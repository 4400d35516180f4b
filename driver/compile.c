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
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codegen/cg.h"
#include "frontend/lexer.h"
#include "timing.h"

/* ---- reading a model ------------------------------------------------------------ */

/* The largest model file: token lengths and columns are ints. */
#define MAX_MODEL_FILE (1u << 30)

/* The whole file into an arena string, *len its length; NULL with errno
 * set on failure (EFBIG: longer than MAX_MODEL_FILE). Read into the arena
 * itself (a regular file in one piece, anything else in doubling pieces),
 * so that running out of memory leaves nothing behind. */
static char *read_file(Arena *a, const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct stat st;
    size_t cap = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= 0 &&
                         (uint64_t)st.st_size <= MAX_MODEL_FILE
                     ? (size_t)st.st_size + 1
                     : 4096;
    size_t n = 0;
    char *buf = arena_alloc(a, cap);
    int err = 0;
    for (;;) {
        n += fread(buf + n, 1, cap - 1 - n, f);
        int c;
        if (n < cap - 1 || (c = fgetc(f)) == EOF) /* the end, or an error */
            break;
        if (n >= MAX_MODEL_FILE) {
            err = EFBIG;
            break;
        }
        buf = arena_grow(a, buf, cap, cap * 2);
        cap *= 2;
        buf[n++] = (char)c;
    }
    if (!err && ferror(f))
        err = errno ? errno : EIO;
    fclose(f);
    if (err) {
        errno = err;
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

void print_diags(Diags *d) {
    diags_print(d, stderr, isatty(fileno(stderr)) && !getenv("NO_COLOR"));
}

Model *load_model(Arena *a, Diags *d, const char *path) {
    size_t len;
    char *text = read_file(a, path, &len);
    if (!text && errno == EFBIG) {
        fprintf(stderr, "gradc: error: '%s' is too large for a model file (more than %u bytes)\n",
                path, MAX_MODEL_FILE);
        return NULL;
    }
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

Plan *compile_plan(Diags *d, Graph *g, int64_t batch, unsigned mask, int elem_size,
                   unsigned plan_flags, Timing *t) {
    ir_optimize_observed(g, timing_pass_observer, t);
    Plan *plan = ir_plan_flags(g, batch, elem_size, mask, plan_flags);
    timing_mark(t, "fuse and plan");
    if (!compile_check_memory(d, g, plan)) {
        print_diags(d);
        return NULL;
    }
    return plan;
}

CgModule *compile_programs_flags(Diags *d, Graph *g, int64_t batch, unsigned mask, int elem_size,
                                 unsigned plan_flags, Timing *t, Plan **plan_out) {
    Plan *plan = compile_plan(d, g, batch, mask, elem_size, plan_flags, t);
    if (!plan)
        return NULL;
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

/* Every token of text but the final EOF: its kind, its length, its bytes.
 * Lexed into an arena of its own, freed here; running out of memory frees
 * it and goes to outer's handler. */
static void fnv_tokens(Fnv *f, Arena *outer, const char *name, const char *text, size_t len) {
    Arena *a = arena_new();
    if (!a)
        arena_out_of_memory(outer, sizeof(Arena *));
    jmp_buf oom;
    if (setjmp(oom)) {
        size_t size = arena_oom_size(a);
        arena_free(a);
        arena_out_of_memory(outer, size);
    }
    arena_set_oom(a, &oom);
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
char *ckpt_model_hash(Arena *a, const SrcFile *model, const char *optimizer,
                      char buf[CKPT_HASH_LEN]) {
    static const char tag[] = "gradc model hash 1";
    Fnv f = {0xcbf29ce484222325ull};
    fnv_bytes(&f, tag, sizeof tag);
    fnv_tokens(&f, a, model->path, model->text, model->len);
    unsigned char mark = optimizer ? 0xff : 0xfe;
    fnv_bytes(&f, &mark, 1);
    if (optimizer)
        fnv_tokens(&f, a, "--optimizer", optimizer, strlen(optimizer));
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
        .hash = ckpt_model_hash(a, m->src, optimizer, hash),
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

/* ---- out of memory and the memory limit ------------------------------------------ */

int compile_out_of_memory(Arena *a, const char *path) {
    size_t n = arena_oom_size(a);
    if (n)
        fprintf(stderr, "gradc: error: out of memory compiling '%s' (a request for %zu bytes "
                        "failed)\n",
                path, n);
    else
        fprintf(stderr, "gradc: error: out of memory compiling '%s'\n", path);
    return RUN_EXIT_USER;
}

static uint64_t max_memory_option; /* --max-memory; 0: not given */

void compile_set_max_memory(uint64_t bytes) { max_memory_option = bytes; }

bool compile_parse_size(const char *s, uint64_t *out) {
    if (!s || !(*s >= '0' && *s <= '9'))
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return false;
    unsigned shift = 0;
    if (*end) {
        const char *units = "KMGT";
        const char *u = strchr(units, *end >= 'a' ? *end - 'a' + 'A' : *end);
        if (!u || !*u)
            return false;
        shift = 10 * (unsigned)(u - units + 1);
        end++;
        if (*end == 'i') /* 2G and 2GiB are the same: powers of 1024 */
            end++;
        if (*end == 'B')
            end++;
        if (*end)
            return false;
    }
    if (v == 0 || v > UINT64_MAX >> shift)
        return false;
    *out = (uint64_t)v << shift;
    return true;
}

/* cgroup v2's memory.max for this process: the smallest over its cgroup
 * and their parents; UINT64_MAX when none is set or it cannot be read. */
static uint64_t cgroup_memory_max(void) {
    uint64_t best = UINT64_MAX;
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f)
        return best;
    char line[PATH_MAX];
    char path[PATH_MAX + 64] = "";
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "0::", 3)) { /* the unified hierarchy */
            line[strcspn(line, "\n")] = 0;
            snprintf(path, sizeof path, "/sys/fs/cgroup%s", line + 3);
        }
    fclose(f);
    for (size_t len = strlen(path); len > strlen("/sys/fs/cgroup") - 1;) {
        char file[PATH_MAX + 96];
        snprintf(file, sizeof file, "%.*s/memory.max", (int)len, path);
        FILE *m = fopen(file, "r");
        unsigned long long v;
        if (m && fscanf(m, "%llu", &v) == 1 && v < best)
            best = v;
        if (m)
            fclose(m);
        while (len > 0 && path[len - 1] != '/') /* up to the parent */
            len--;
        if (len > 0)
            len--;
    }
    return best;
}

uint64_t compile_memory_limit(const char **what) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t limit = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : UINT64_MAX;
    *what = "the physical memory";
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < limit) {
        limit = rl.rlim_cur;
        *what = "the address-space limit, ulimit -v";
    }
    if (getrlimit(RLIMIT_DATA, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < limit) {
        limit = rl.rlim_cur;
        *what = "the data-size limit, ulimit -d";
    }
    uint64_t cg = cgroup_memory_max();
    if (cg < limit) {
        limit = cg;
        *what = "the cgroup's memory.max";
    }
    if (max_memory_option && max_memory_option < limit) {
        limit = max_memory_option;
        *what = "--max-memory";
    }
    return limit;
}

/* n with thousands separators and, from 1 KiB up, its size in binary
 * units: "40,025,600,000 bytes (37.3 GiB)". */
static char *bytes_text(Arena *a, uint64_t n) {
    char digits[32], grouped[48];
    int len = snprintf(digits, sizeof digits, "%llu", (unsigned long long)n), k = 0;
    for (int i = 0; i < len; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            grouped[k++] = ',';
        grouped[k++] = digits[i];
    }
    grouped[k] = 0;
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)n;
    int u = -1;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    if (u < 0)
        return arena_printf(a, "%s bytes", grouped);
    return arena_printf(a, "%s bytes (%.1f %s)", grouped, v, units[u]);
}

/* The largest tensor the plan stores (a leaf or a temporary of a planned
 * program), for pointing at it. */
static const Node *largest_tensor(const Graph *g, const Plan *plan, size_t *bytes) {
    const Node *best = NULL;
    *bytes = 0;
    for (int i = 0; i < g->nodes.len; i++) {
        const Node *n = g->nodes.items[i];
        bool stored = false;
        for (int k = 0; k < PROG_COUNT && !stored; k++)
            stored = plan->prog[k].offset && plan->prog[k].offset[i] != PLAN_NONE;
        if (!stored || n->dead)
            continue;
        size_t b = node_bytes(n, plan->max_batch, plan->elem_size);
        if (!best || b > *bytes) {
            best = n;
            *bytes = b;
        }
    }
    return best;
}

bool compile_check_memory(Diags *d, const Graph *g, const Plan *plan) {
    const char *what;
    uint64_t limit = compile_memory_limit(&what);
    if (plan->arena_bytes <= limit)
        return true;
    Arena *a = g->arena;
    size_t big_bytes;
    const Node *big = largest_tensor(g, plan, &big_bytes);
    Loc loc = big ? big->loc : (Loc){0};
    const char *need = plan->arena_bytes == SIZE_MAX
                           ? "more bytes than a 64-bit size can count"
                           : bytes_text(a, plan->arena_bytes);
    diag_error(d, loc,
               "the model needs %s of memory at batch %lld (%s); the limit is %s, set by %s",
               need, (long long)plan->max_batch,
               plan->elem_size == 8 ? "float64" : "float32", bytes_text(a, limit), what);
    if (big) {
        char shape[128];
        diag_note(d, loc, "the largest tensor is %s%s%s, %s: %s", big->name ? "'" : "",
                  big->name ? big->name : "this expression's value", big->name ? "'" : "",
                  shape_str(&big->shape, shape, sizeof shape),
                  big_bytes == SIZE_MAX ? "more bytes than a 64-bit size can count"
                                        : bytes_text(a, big_bytes));
    }
    return false;
}
