/* base.c: allocation hook, arenas, diagnostics. See base.h. */
#include "base.h"

#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

/* ---- allocation ------------------------------------------------------------ */

static void *default_hook(void *ptr, size_t size, void *ud) {
    (void)ud;
    if (size == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, size);
}

static AllocHook alloc_hook = default_hook;
static void *alloc_ud;

void alloc_set_hook(AllocHook hook, void *ud) {
    alloc_hook = hook ? hook : default_hook;
    alloc_ud = ud;
}

void *gc_realloc(void *ptr, size_t size) { return alloc_hook(ptr, size, alloc_ud); }

/* ---- arenas ----------------------------------------------------------------
 * A list of chunks; big requests get a chunk of their own. */
typedef struct Chunk {
    struct Chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} Chunk;

struct Arena {
    Chunk *head;
    jmp_buf *oom;
    size_t oom_size; /* the request that failed, for the message */
};

enum { CHUNK_SIZE = 64 * 1024 };

static size_t chunk_size = CHUNK_SIZE;

void arena_set_chunk_size(size_t bytes) { chunk_size = bytes ? bytes : CHUNK_SIZE; }

Arena *arena_new(void) {
    Arena *a = gc_realloc(NULL, sizeof *a);
    if (!a)
        return NULL;
    a->head = NULL;
    a->oom = NULL;
    a->oom_size = 0;
    return a;
}

void arena_free(Arena *a) {
    if (!a)
        return;
    for (Chunk *c = a->head, *next; c; c = next) {
        next = c->next;
        gc_realloc(c, 0);
    }
    gc_realloc(a, 0);
}

void arena_set_oom(Arena *a, void *jmp_buf_ptr) { a->oom = jmp_buf_ptr; }

size_t arena_oom_size(const Arena *a) { return a ? a->oom_size : 0; }

_Noreturn void arena_out_of_memory(Arena *a, size_t size) {
    a->oom_size = size;
    if (a->oom)
        longjmp(*a->oom, 1);
    fprintf(stderr, "gradc: out of memory (allocating %zu bytes)\n", size);
    abort();
}

void *arena_alloc(Arena *a, size_t size) {
    if (size > SIZE_MAX / 2) /* a size computed with a wrap: no chunk can hold it */
        arena_out_of_memory(a, size);
    size = (size + 15) & ~(size_t)15;
    if (!a->head || a->head->cap - a->head->used < size) {
        size_t cap = size > chunk_size / 4 ? size : chunk_size;
        Chunk *c = gc_realloc(NULL, sizeof(Chunk) + cap);
        if (!c)
            arena_out_of_memory(a, size);
        c->used = 0;
        c->cap = cap;
        if (cap == size && a->head) { /* keep the current chunk at the head */
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
        c->used = size;
        memset(c->data, 0, size);
        return c->data;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += size;
    memset(p, 0, size);
    return p;
}

void *arena_grow(Arena *a, void *old, size_t old_size, size_t new_size) {
    void *p = arena_alloc(a, new_size);
    if (old && old_size)
        memcpy(p, old, old_size < new_size ? old_size : new_size);
    return p;
}

char *arena_strndup(Arena *a, const char *s, size_t n) {
    char *p = arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *arena_strdup(Arena *a, const char *s) { return arena_strndup(a, s, strlen(s)); }

static char *arena_vprintf(Arena *a, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    char *p = arena_alloc(a, (size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    return p;
}

char *arena_printf(Arena *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *p = arena_vprintf(a, fmt, ap);
    va_end(ap);
    return p;
}

/* ---- diagnostics ----------------------------------------------------------- */

void diags_init(Diags *d, Arena *a) {
    memset(d, 0, sizeof *d);
    d->arena = a;
    d->max_errors = 20;
}

void diag_verror(Diags *d, DiagLevel level, Loc loc, const char *fmt, va_list ap) {
    if (level == DIAG_ERROR) {
        d->nerrors++;
        if (d->nerrors > d->max_errors)
            return;
    } else if (d->nerrors > d->max_errors) {
        return; /* a note belongs to a dropped error */
    }
    Diag dg = {level, loc, arena_vprintf(d->arena, fmt, ap)};
    vec_push(d->arena, &d->list, dg);
}

void diag_error(Diags *d, Loc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_verror(d, DIAG_ERROR, loc, fmt, ap);
    va_end(ap);
}

void diag_note(Diags *d, Loc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_verror(d, DIAG_NOTE, loc, fmt, ap);
    va_end(ap);
}

/* The text of line `line` of f (without the newline), its length in *n. */
static const char *source_line(const SrcFile *f, int line, int *n) {
    const char *p = f->text, *end = f->text + f->len;
    for (int l = 1; l < line && p < end; p++)
        if (*p == '\n')
            l++;
    const char *e = p;
    while (e < end && *e != '\n' && *e != '\r')
        e++;
    *n = (int)(e - p);
    return p;
}

/* Writes one diagnostic through `emit` (fputs-like on a FILE or a buffer). */
typedef struct Sink {
    FILE *f;
    char *buf;
    size_t len, cap;
    Arena *arena;
} Sink;

static void sink_printf(Sink *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (s->f) {
        vfprintf(s->f, fmt, ap);
    } else {
        va_list ap2;
        va_copy(ap2, ap);
        int n = vsnprintf(NULL, 0, fmt, ap2);
        va_end(ap2);
        if (s->len + (size_t)n + 1 > s->cap) {
            size_t ncap = (s->cap + (size_t)n + 1) * 2;
            s->buf = arena_grow(s->arena, s->buf, s->cap, ncap);
            s->cap = ncap;
        }
        vsnprintf(s->buf + s->len, (size_t)n + 1, fmt, ap);
        s->len += (size_t)n;
    }
    va_end(ap);
}

static void write_diag(Sink *s, const Diag *dg, bool color) {
    const char *bold = color ? "\033[1m" : "", *reset = color ? "\033[0m" : "";
    const char *lvl_color = !color ? "" : dg->level == DIAG_ERROR ? "\033[1;31m" : "\033[1;36m";
    const char *lvl = dg->level == DIAG_ERROR ? "error" : "note";
    if (dg->loc.file)
        sink_printf(s, "%s%s:%d:%d: %s", bold, dg->loc.file->path, dg->loc.line,
                    dg->loc.col, reset);
    else
        sink_printf(s, "%sgradc: %s", bold, reset);
    sink_printf(s, "%s%s:%s %s%s%s\n", lvl_color, lvl, reset, bold, dg->msg, reset);
    if (!dg->loc.file || dg->loc.line <= 0)
        return;
    int n;
    const char *line = source_line(dg->loc.file, dg->loc.line, &n);
    int col = dg->loc.col - 1;
    /* A long line (a generated file, a 10 MB expression) is shown as a
     * window of DIAG_WIDTH bytes around the column, "..." at each cut. */
    enum { DIAG_WIDTH = 160 };
    int from = 0, to = n;
    if (n > DIAG_WIDTH) {
        from = col - DIAG_WIDTH / 2;
        if (from > n - DIAG_WIDTH)
            from = n - DIAG_WIDTH;
        if (from < 0)
            from = 0;
        to = from + DIAG_WIDTH;
    }
    const char *cut = from > 0 ? "..." : "";
    sink_printf(s, "%5d | %s%.*s%s\n      | %s", dg->loc.line, cut, to - from, line + from,
                to < n ? "..." : "", from > 0 ? "   " : "");
    for (int i = from; i < col && i < to; i++)
        sink_printf(s, "%c", line[i] == '\t' ? '\t' : ' ');
    sink_printf(s, "%s^", color ? "\033[1;32m" : "");
    for (int i = 1; i < dg->loc.len && col + i < to; i++)
        sink_printf(s, "~");
    sink_printf(s, "%s\n", reset);
}

void diags_print(const Diags *d, FILE *out, bool color) {
    Sink s = {.f = out};
    for (int i = 0; i < d->list.len; i++)
        write_diag(&s, &d->list.items[i], color);
    if (d->nerrors > d->max_errors)
        fprintf(out, "gradc: too many errors (%d), stopping\n", d->nerrors);
}

char *diag_format(Arena *a, const Diag *dg) {
    Sink s = {.arena = a};
    write_diag(&s, dg, false);
    return s.buf ? s.buf : arena_strdup(a, "");
}

/* ---- "did you mean" -------------------------------------------------------- */

/* Edits between a and b: insertions, deletions, substitutions, and swaps
 * of adjacent letters (optimal string alignment), so "sdg" is one edit from
 * "sgd", as the runtime's CSV column suggestions count it. */
static int edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 64 || lb > 64)
        return 1 << 20;
    int d[65][65];
    for (int i = 0; i <= la; i++)
        d[i][0] = i;
    for (int j = 0; j <= lb; j++)
        d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

const char *closest_name(const char *name, const char *const *cands, int n) {
    const char *best = NULL;
    int best_d = 1 << 20;
    for (int i = 0; i < n; i++) {
        int d = edit_distance(name, cands[i]);
        if (d < best_d) {
            best_d = d;
            best = cands[i];
        }
    }
    int len = (int)strlen(name);
    int limit = len <= 1 ? 0 : len <= 3 ? 1 : len <= 6 ? 2 : 3;
    return best_d <= limit ? best : NULL;
}

_Noreturn void gc_assert_fail(const char *what, const char *file, int line) {
    fprintf(stderr, "gradc: internal error: %s:%d: assertion failed: %s\n", file, line, what);
    abort();
}
