/* checkpoint.c: the model hash, class names in the metadata, and the stop
 * signals of gradc train. See checkpoint.h.
 *
 * Owns the signal handlers and the flag they set; must not save, print or
 * exit from a handler beyond one write(2) and _exit. Saving is the
 * runtime's (rt_save_checkpoint: temporary file, fsync, rename); this file
 * only keeps signals from ending the process in the middle of it.
 */
#include "checkpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frontend/lexer.h"

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

/* Contract: see checkpoint.h. A version tag first, so that a later change
 * of what is hashed cannot collide with these hashes. */
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

/* ---- class names ------------------------------------------------------------------ */

/* Contract: see checkpoint.h. */
char *ckpt_classes_to_string(int n, char *const *names) {
    if (n < 1 || !names)
        return NULL;
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        if (!names[i] || strchr(names[i], '\n'))
            return NULL;
        len += strlen(names[i]) + 1;
    }
    char *s = malloc(len);
    if (!s)
        return NULL;
    char *p = s;
    for (int i = 0; i < n; i++) {
        size_t k = strlen(names[i]);
        memcpy(p, names[i], k);
        p += k;
        *p++ = i + 1 < n ? '\n' : '\0';
    }
    if (!rt_utf8_valid(s)) {
        free(s);
        return NULL;
    }
    return s;
}

/* Contract: see checkpoint.h. */
int ckpt_classes_from_string(char *s, const char ***names) {
    int n = 1;
    for (const char *p = s; *p; p++)
        n += *p == '\n';
    const char **v = malloc(sizeof *v * (size_t)n);
    *names = v;
    if (!v)
        return 0;
    v[0] = s;
    for (int k = 1; *s; s++)
        if (*s == '\n') {
            *s = '\0';
            v[k++] = s + 1;
        }
    return n;
}

/* ---- stop signals ------------------------------------------------------------------ */

volatile sig_atomic_t ckpt_stop_signal;
static volatile sig_atomic_t saving;         /* ckpt_save is writing */
static volatile sig_atomic_t second_signal;  /* arrived while saving */

static void say(const char *s, size_t n) {
    ssize_t w = write(STDERR_FILENO, s, n);
    (void)w;
}

#define SAY(lit) say(lit, sizeof lit - 1)

/* First signal: ask for a stop. Second: quit, unless a save is under way
 * (then ckpt_save quits when the file is in place). */
static void on_stop_signal(int sig) {
    int saved_errno = errno;
    if (!ckpt_stop_signal) {
        ckpt_stop_signal = sig;
        if (sig == SIGINT)
            SAY("\ngradc: SIGINT: stopping after this step to save a checkpoint "
                "(send it again to quit without saving)\n");
        else
            SAY("\ngradc: SIGTERM: stopping after this step to save a checkpoint "
                "(send it again to quit without saving)\n");
    } else if (saving) {
        second_signal = sig;
    } else {
        SAY("gradc: second signal: quitting now\n");
        _exit(128 + sig);
    }
    errno = saved_errno;
}

void ckpt_catch_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

void ckpt_release_signals(void) {
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
}

const char *ckpt_signal_name(int sig) {
    static char buf[32];
    if (sig == SIGINT)
        return "SIGINT";
    if (sig == SIGTERM)
        return "SIGTERM";
    snprintf(buf, sizeof buf, "signal %d", sig);
    return buf;
}

/* Contract: see checkpoint.h. `saving` rather than a signal mask: a signal
 * meant for the process may be handled by any thread (OpenBLAS has its
 * own), and the flag holds for all of them. The handler then returns, the
 * interrupted write or fsync resumes (SA_RESTART; write_all retries EINTR
 * too), and the quit waits for the rename. */
RtStatus ckpt_save(const RtSession *s, const char *path, int nmeta, const char *const *keys,
                   const char *const *values, RtError *err) {
    saving = 1;
    RtStatus st = rt_save_checkpoint(s, path, nmeta, keys, values, err);
    saving = 0;
    int late = second_signal;
    if (late) {
        if (st == RT_OK)
            fprintf(stderr, "gradc: second signal: quitting; the checkpoint %s is complete\n",
                    path);
        else
            fprintf(stderr, "gradc: second signal: quitting; error: %s\n", err->msg);
        _exit(128 + late);
    }
    return st;
}
