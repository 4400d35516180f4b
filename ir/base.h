/* base.h: what every compiler layer shares: the allocation hook, arenas,
 * growable arrays, source locations and diagnostics.
 *
 * Owns no compiler concept. Must not include anything from frontend/,
 * codegen/ or LLVM. Library code never exits: errors are recorded in a Diags
 * and the driver chooses the exit status.
 */
#ifndef GRADC_BASE_H
#define GRADC_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- allocation ------------------------------------------------------------
 * Every compiler allocation goes through gc_realloc, so that a test can make
 * the Nth allocation fail. On failure the arena that asked jumps to its
 * out-of-memory handler (see arena_set_oom); with none set it aborts. */
typedef void *(*AllocHook)(void *ptr, size_t size, void *ud);

void alloc_set_hook(AllocHook hook, void *ud);
void *gc_realloc(void *ptr, size_t size); /* size 0 frees; may return NULL */

/* An arena owns every allocation of one compilation; arena_free releases all
 * of them at once. Allocations are zeroed and 16-byte aligned. */
typedef struct Arena Arena;

Arena *arena_new(void);
void arena_free(Arena *a);
void *arena_alloc(Arena *a, size_t size);
void *arena_grow(Arena *a, void *old, size_t old_size, size_t new_size);
char *arena_strdup(Arena *a, const char *s);
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_printf(Arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Tests only: the size of the chunks arenas allocate (0: the default, 64
 * KiB). A tiny size makes nearly every arena_alloc an allocation of its
 * own, so that failing each allocation in turn reaches every place that
 * allocates (tests/test_alloc_fail.c). */
void arena_set_chunk_size(size_t bytes);

/* Where out-of-memory goes: a jmp_buf to longjmp to with value 1. NULL
 * restores the default (abort with a message). */
void arena_set_oom(Arena *a, void *jmp_buf_ptr);
/* The size of the request that ran a out of memory (0: none did; a NULL:
 * 0), for the message. */
size_t arena_oom_size(const Arena *a);
/* Report that a request of size bytes for a failed (an allocation outside
 * the arena that belongs to its compile): to a's handler, as arena_alloc
 * would. */
_Noreturn void arena_out_of_memory(Arena *a, size_t size);

/* Growable array in an arena: `Vec(Node *) v = {0}; vec_push(arena, &v, n);` */
#define Vec(T)                                                                 \
    struct {                                                                   \
        T *items;                                                              \
        int len, cap;                                                          \
    }
#define vec_push(arena, v, x)                                                  \
    do {                                                                       \
        if ((v)->len == (v)->cap) {                                            \
            int ncap_ = (v)->cap ? 2 * (v)->cap : 8;                           \
            (v)->items = arena_grow((arena), (v)->items,                       \
                                    sizeof(*(v)->items) * (size_t)(v)->cap,    \
                                    sizeof(*(v)->items) * (size_t)ncap_);      \
            (v)->cap = ncap_;                                                  \
        }                                                                      \
        (v)->items[(v)->len] = (x);                                            \
        (v)->len++;                                                            \
    } while (0)

/* ---- source locations ------------------------------------------------------ */
typedef struct SrcFile {
    const char *path; /* as the user named it */
    const char *text; /* whole file, NUL-terminated */
    size_t len;
} SrcFile;

/* A span in a source file: line and col are 1-based, col counts bytes; len is
 * the span's length in bytes on that line (0 for a point). file NULL means
 * "no location" (built-in code). */
typedef struct Loc {
    const SrcFile *file;
    int line, col, len;
} Loc;

/* ---- diagnostics -----------------------------------------------------------
 * Collected, not printed: tests read them back, the driver prints them. */
typedef enum DiagLevel { DIAG_ERROR, DIAG_NOTE } DiagLevel;

typedef struct Diag {
    DiagLevel level;
    Loc loc;
    char *msg;
} Diag;

typedef struct Diags {
    Arena *arena;
    Vec(Diag) list;
    int nerrors;
    int max_errors; /* stop recording errors past this many (default 20) */
} Diags;

void diags_init(Diags *d, Arena *a);
void diag_error(Diags *d, Loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void diag_note(Diags *d, Loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void diag_verror(Diags *d, DiagLevel level, Loc loc, const char *fmt,
                 va_list ap);

/* Print every diagnostic like a C compiler:
 *   file:line:col: error: message
 *       h = x @ W
 *           ^~~~~
 * color: use ANSI colours. */
void diags_print(const Diags *d, FILE *out, bool color);
/* One diagnostic into a string in the arena (same format, no colour). */
char *diag_format(Arena *a, const Diag *dg);

/* "Did you mean": the candidate with the smallest edit distance to name, if
 * that distance is small relative to the name's length; else NULL. */
const char *closest_name(const char *name, const char *const *cands, int n);

/* ---- internal invariants ---------------------------------------------------
 * A broken invariant is a bug in gradc, never a user error. */
#define gc_assert(cond)                                                        \
    ((cond) ? (void)0 : gc_assert_fail(#cond, __FILE__, __LINE__))
_Noreturn void gc_assert_fail(const char *what, const char *file, int line);
#define gc_unreachable() gc_assert_fail("unreachable", __FILE__, __LINE__)

#endif
