/* checkpoint.c: class names in the metadata, and the stop signals of the
 * train command. See checkpoint.h.
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

/* The handler's messages, made before it can run: it may only write(2). */
static char msg_int[160], msg_term[160], msg_quit[96], name_buf[64];
static size_t len_int, len_term, len_quit;

static void say(const char *s, size_t n) {
    ssize_t w = write(STDERR_FILENO, s, n);
    (void)w;
}

/* First signal: ask for a stop. Second: quit, unless a save is under way
 * (then ckpt_save quits when the file is in place). */
static void on_stop_signal(int sig) {
    int saved_errno = errno;
    if (!ckpt_stop_signal) {
        ckpt_stop_signal = sig;
        if (sig == SIGINT)
            say(msg_int, len_int);
        else
            say(msg_term, len_term);
    } else if (saving) {
        second_signal = sig;
    } else {
        say(msg_quit, len_quit);
        _exit(128 + sig);
    }
    errno = saved_errno;
}

/* The length of the message snprintf made in buf (of size bytes). */
static size_t made(int n, size_t size) {
    return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

void ckpt_catch_signals(const char *name, bool quiet) {
    snprintf(name_buf, sizeof name_buf, "%s", name);
    len_int = len_term = 0;
    for (int k = 0; k < 2 && !quiet; k++) {
        char *buf = k ? msg_term : msg_int;
        size_t n = made(snprintf(buf, sizeof msg_int,
                                 "\n%s: %s: stopping after this step to save a checkpoint "
                                 "(send it again to quit without saving)\n",
                                 name_buf, k ? "SIGTERM" : "SIGINT"),
                        sizeof msg_int);
        *(k ? &len_term : &len_int) = n;
    }
    len_quit = made(snprintf(msg_quit, sizeof msg_quit, "%s: second signal: quitting now\n",
                             name_buf),
                    sizeof msg_quit);
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
            fprintf(stderr, "%s: second signal: quitting; the checkpoint %s is complete\n",
                    name_buf, path);
        else
            fprintf(stderr, "%s: second signal: quitting; error: %s\n", name_buf, err->msg);
        _exit(128 + late);
    }
    return st;
}
