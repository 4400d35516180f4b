/* test_cli_mpi.c: data-parallel training as a user runs it, under Open
 * MPI's `mpirun -np 2 --oversubscribe`: two processes with --batch B train
 * as one with --batch 2B (logs and checkpoints; SGD, momentum and Adam; a
 * last step with fewer rows than processes); a program from `gradc build
 * --mpi` trains bit for bit as `gradc train --mpi`, and alone as one
 * process; only process 0 prints and writes files; --resume with 1 or 2
 * processes; kill -9 of either process, a process that stops answering
 * (the watchdog, GRADC_MPI_TIMEOUT), a failure or a disagreement in one
 * process only, and SIGTERM to mpirun each end the run within a bound,
 * with the last checkpoint whole; usage errors.
 *
 * Every mpirun runs under a time limit (its process tree killed past it:
 * the suite never hangs). Without mpirun on PATH, or with a gradc built
 * without MPI, the MPI tests skip, saying so. Under ASan, LeakSanitizer
 * reads tests/lsan-mpi.supp: the leaks of Open MPI's own libraries at
 * exit (docs/testing.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "runtime/rt.h"
#include "runtime/rt_internal.h"

/* How every run starts mpirun: two processes on a two-core machine
 * (--oversubscribe in case it counts fewer slots), not pinned to cores (the
 * other tests run beside them), with the sanitizers' options passed on. In
 * an ASan build LeakSanitizer then takes whole stacks (the slow unwinder:
 * Open MPI's libraries have no frame pointers, and its components are
 * unloaded before the leak check, so that the quick stacks name no
 * library), which tests/lsan-mpi.supp matches; see need_mpi for
 * LSAN_OPTIONS. SAN_ENV alone: for a program that starts MPI without
 * mpirun. The variables mean nothing to a build without ASan. */
#define SAN_ENV "env ASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0\" "
#define MPIRUN SAN_ENV "mpirun --oversubscribe --bind-to none -x ASAN_OPTIONS -x LSAN_OPTIONS "

/* ---- running commands under a time limit --------------------------------------------- */

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The parent of process pid from /proc/pid/stat (-1 when it is gone), and
 * its state letter into *state ('Z' a zombie). */
static pid_t parent_of(pid_t pid, char *state) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the name in parentheses may hold anything */
    char st = 0;
    int ppid = -1;
    if (!p || sscanf(p + 1, " %c %d", &st, &ppid) != 2)
        return -1;
    if (state)
        *state = st;
    return (pid_t)ppid;
}

/* Every process id in /proc, into ids[0, cap); how many. */
static int list_pids(pid_t *ids, int cap) {
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < cap;)
        if (isdigit((unsigned char)e->d_name[0]))
            ids[n++] = (pid_t)atoi(e->d_name);
    closedir(d);
    return n;
}

/* SIGCONT and SIGKILL to root and every process below it. Open MPI starts
 * each process in a process group of its own, so killing mpirun's group
 * would leave them running. */
static void kill_tree(pid_t root) {
    enum { CAP = 8192 };
    static pid_t ids[CAP], ppids[CAP];
    static bool mine[CAP];
    int n = list_pids(ids, CAP);
    for (int i = 0; i < n; i++) {
        ppids[i] = parent_of(ids[i], NULL);
        mine[i] = ids[i] == root;
    }
    for (bool more = true; more;) {
        more = false;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n && !mine[i]; j++)
                if (mine[j] && ppids[i] == ids[j])
                    mine[i] = more = true;
    }
    for (int i = 0; i < n; i++)
        if (mine[i]) {
            kill(ids[i], SIGCONT);
            kill(ids[i], SIGKILL);
        }
}

/* Start `cmd` (a shell command line, which must exec its last program) in
 * the source root, in a process group of its own, stdout and stderr into
 * the temporary directory's out and err. Its process id. */
static pid_t start_cmd(const char *cmd) {
    char line[4096];
    snprintf(line, sizeof line, "cd '%s' && exec %s >'%s/out' 2>'%s/err' </dev/null",
             GRADC_SOURCE_DIR, cmd, tmpdir, tmpdir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        execl("/bin/sh", "sh", "-c", line, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Wait for pid, started by start_cmd, at most limit_s seconds: past that
 * its process tree is killed and the test fails. Returns its exit status
 * (128 + the signal that ended it, as a shell says), with its stdout and
 * stderr in out_text and err_text; *took (may be NULL): the seconds it ran
 * since `since`. */
static int wait_cmd(pid_t pid, double since, double limit_s, double *took) {
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            break;
        assert_int_equal(r, 0);
        if (now_s() - since > limit_s) {
            kill_tree(pid);
            waitpid(pid, &st, 0);
            fail_msg("the command did not end within %g s (killed): %s", limit_s,
                     read_all(tmp("err")));
        }
        sleep_ms(10);
    }
    if (took)
        *took = now_s() - since;
    free(out_text);
    free(err_text);
    out_text = read_all(tmp("out"));
    err_text = read_all(tmp("err"));
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Run the shell command line fmt (exec'd) in the source root, at most
 * limit_s seconds; its exit status, output in out_text and err_text. */
static int run_cmd(double limit_s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run_cmd(double limit_s, const char *fmt, ...) {
    char cmd[3000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    double t0 = now_s();
    return wait_cmd(start_cmd(cmd), t0, limit_s, NULL);
}

/* The exit status of a command run here must be want; if not, the failure
 * shows its stderr. */
#define assert_status(call, want)                                                              \
    do {                                                                                       \
        int status_ = (call);                                                                  \
        if (status_ != (want))                                                                 \
            fail_msg("exit status %d, expected %d; stderr:\n%s", status_, (want), err_text);   \
    } while (0)

/* ---- the gradc processes of a run ------------------------------------------------------ */

/* Whether file `name` of /proc/pid holds `want` between its NULs (the
 * command line's arguments, the environment's entries). */
static bool proc_has(pid_t pid, const char *name, const char *want) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    for (size_t at = 0; at < n; at += strlen(buf + at) + 1)
        if (!strcmp(buf + at, want))
            return true;
    return false;
}

/* The live gradc process of rank `rank` (-1: any) whose command line has
 * the argument `tag` (a path in the temporary directory, so only this
 * test's); -1 when there is none. */
static pid_t find_gradc(const char *tag, int rank) {
    enum { CAP = 8192 };
    static pid_t ids[CAP];
    int n = list_pids(ids, CAP);
    char env[64];
    snprintf(env, sizeof env, "OMPI_COMM_WORLD_RANK=%d", rank);
    for (int i = 0; i < n; i++) {
        char state = 0;
        if (parent_of(ids[i], &state) < 0 || state == 'Z')
            continue;
        if (proc_has(ids[i], "cmdline", tag) && proc_has(ids[i], "cmdline", GRADC_BINARY) &&
            (rank < 0 || proc_has(ids[i], "environ", env)))
            return ids[i];
    }
    return -1;
}

/* Wait (at most 20 s) until no gradc process of the run tagged tag is left:
 * after mpirun has ended, every process of the run must be gone. */
static void assert_no_gradc_left(const char *tag) {
    double t0 = now_s();
    pid_t p;
    while ((p = find_gradc(tag, -1)) > 0) {
        if (now_s() - t0 > 20) {
            kill(p, SIGCONT);
            kill(p, SIGKILL);
            fail_msg("gradc process %d of the run outlived mpirun", (int)p);
        }
        sleep_ms(20);
    }
}

/* Wait (at most limit_s seconds, while pid runs) until path exists. */
static void wait_for_file(const char *path, pid_t pid, double limit_s) {
    double t0 = now_s();
    struct stat sb;
    while (stat(path, &sb) != 0 || sb.st_size == 0) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            fail_msg("the run ended before it wrote %s: %s", path, read_all(tmp("err")));
        if (now_s() - t0 > limit_s) {
            kill_tree(pid);
            waitpid(pid, &st, 0);
            fail_msg("no %s within %g s", path, limit_s);
        }
        sleep_ms(5);
    }
}

/* ---- is MPI here? ---------------------------------------------------------------------- */

/* Skip the calling test, loudly, unless mpirun is on PATH and gradc was
 * built with MPI. Sets what mpirun and LeakSanitizer need: Open MPI's own
 * leaks at exit suppressed (never a frame of ours: a leak of ours has no
 * frame in MPI's libraries), and use_tls=0, as GCC 12's LeakSanitizer
 * crashes now and then ("Tracer caught signal 11") reading the thread-local
 * storage of an Open MPI component unloaded at MPI_Finalize. Leaving out
 * thread-local storage as a root can only report more leaks, never fewer. */
static void need_mpi(void) {
    static int have = -1;
    if (have < 0) {
        /* Open MPI refuses root without these (a CI container); harmless
         * otherwise. */
        setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
        setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
        setenv("LSAN_OPTIONS",
               "suppressions=" GRADC_SOURCE_DIR "/tests/lsan-mpi.supp:print_suppressions=0:"
               "use_tls=0",
               1);
        have = system("command -v mpirun >/dev/null 2>&1") == 0;
        if (!have) {
            fprintf(stderr, "\n*** test_cli_mpi: mpirun is not on PATH: SKIPPING the MPI tests "
                            "(apt-get install openmpi-bin libopenmpi-dev) ***\n\n");
        } else if (run_cmd(60, MPIRUN "-np 1 '%s' train examples/iris.nn --mpi --steps 1 -q "
                                      "--save '%s/probe.st'",
                           GRADC_BINARY, tmpdir) != 0) {
            if (!strstr(err_text, "built without MPI"))
                fail_msg("gradc train --mpi under mpirun -np 1 failed: %s", err_text);
            have = 0;
            fprintf(stderr, "\n*** test_cli_mpi: this gradc was built without MPI: SKIPPING the "
                            "MPI tests ***\n\n");
        }
    }
    if (!have)
        skip();
}

/* ---- reading logs and checkpoints ------------------------------------------------------ */

/* The per-epoch figures of a --log file. */
typedef struct Epoch {
    double epoch, step, processes, loss, val_loss, accuracy;
} Epoch;

static double json_num(const RtJson *o, const char *key) {
    const RtJson *v = rt_json_get(o, key);
    return v && v->kind == RT_JSON_NUMBER ? v->number : NAN;
}

/* The lines of the log at path into e[0, cap); how many. */
static int read_log(const char *path, Epoch *e, int cap) {
    char *text = read_all(path);
    int n = 0;
    for (char *line = text, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        assert_non_null(nl);
        assert_true(n < cap);
        char why[200];
        RtJson *o = rt_json_parse(line, (size_t)(nl - line), why, sizeof why);
        if (!o)
            fail_msg("%s: line %d: %s", path, n + 1, why);
        e[n++] = (Epoch){json_num(o, "epoch"),    json_num(o, "step"),
                         json_num(o, "processes"), json_num(o, "loss"),
                         json_num(o, "val_loss"), json_num(o, "accuracy")};
        rt_json_free(o);
    }
    free(text);
    return n;
}

/* A safetensors file as written by gradc: the header and the float32 data. */
typedef struct Ckpt {
    char *bytes;
    long size;
    RtJson *header;
    const float *data; /* the data section (4-byte aligned: gradc pads the header) */
} Ckpt;

static void ckpt_read(const char *path, Ckpt *c) {
    c->bytes = file_bytes(path, &c->size);
    uint64_t n;
    assert_true(c->size >= 8);
    memcpy(&n, c->bytes, 8);
    assert_true(n <= (uint64_t)c->size - 8);
    char why[200];
    c->header = rt_json_parse(c->bytes + 8, (size_t)n, why, sizeof why);
    if (!c->header)
        fail_msg("%s: %s", path, why);
    assert_int_equal((8 + n) % 4, 0);
    c->data = (const float *)(const void *)(c->bytes + 8 + n);
}

static void ckpt_free(Ckpt *c) {
    rt_json_free(c->header);
    free(c->bytes);
}

static const char *ckpt_meta(const Ckpt *c, const char *key) {
    const RtJson *v = rt_json_get(rt_json_get(c->header, "__metadata__"), key);
    return v && v->kind == RT_JSON_STRING ? v->string : "";
}

/* Tensor `name` of c: its float32 elements and count. */
static const float *ckpt_tensor(const Ckpt *c, const char *name, int64_t *count) {
    const RtJson *t = rt_json_get(c->header, name);
    if (!t)
        fail_msg("no tensor '%s'", name);
    const RtJson *dtype = rt_json_get(t, "dtype"), *off = rt_json_get(t, "data_offsets");
    assert_string_equal(dtype->string, "F32");
    assert_int_equal(off->n, 2);
    *count = (int64_t)(off->items[1].number - off->items[0].number) / 4;
    return c->data + (int64_t)off->items[0].number / 4;
}

/* How far the checkpoint a is from b: for each tensor (parameters and
 * optimizer states: the same names in both), max |a - b| / max |b| over
 * its elements, an error relative to the tensor's scale (an element that
 * is a difference of larger terms, such as a momentum buffer near 0, is
 * only as exact as those terms); the largest over the tensors, whose name
 * and worst element go to worst. */
static double ckpt_error(const Ckpt *a, const Ckpt *b, char *worst, size_t nworst) {
    double err = 0;
    int tensors = 0;
    snprintf(worst, nworst, "none");
    for (int i = 0; i < b->header->n; i++) {
        const char *name = b->header->keys[i];
        if (!strcmp(name, "__metadata__"))
            continue;
        int64_t na, nb, at = 0;
        const float *x = ckpt_tensor(a, name, &na), *y = ckpt_tensor(b, name, &nb);
        assert_int_equal(na, nb);
        double diff = 0, scale = 1e-30;
        for (int64_t k = 0; k < nb; k++) {
            double d = fabs((double)x[k] - (double)y[k]);
            if (!(d <= diff)) {
                diff = d;
                at = k;
            }
            scale = fmax(scale, fabs((double)y[k]));
        }
        if (!(diff / scale <= err)) {
            err = diff / scale;
            snprintf(worst, nworst, "%s (max %.4g): [%lld] %.9g against %.9g", name, scale,
                     (long long)at, (double)x[at], (double)y[at]);
        }
        tensors++;
    }
    assert_int_equal(tensors, a->header->n - 1); /* no tensor only a has */
    return err;
}

/* The checkpoints at paths a and b hold the same tensors within tol (as
 * ckpt_error measures), and the same step, epoch, row and RNG. */
static void assert_ckpt_close(const char *a, const char *b, double tol) {
    Ckpt x, y;
    ckpt_read(a, &x);
    ckpt_read(b, &y);
    static const char *const keys[] = {"step", "epoch", "epoch_rows", "rng", "seed",
                                       "model_hash"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        if (strcmp(ckpt_meta(&x, keys[k]), ckpt_meta(&y, keys[k])) != 0)
            fail_msg("%s: \"%s\" is \"%s\"; %s has \"%s\"", a, keys[k], ckpt_meta(&x, keys[k]),
                     b, ckpt_meta(&y, keys[k]));
    char worst[300];
    double err = ckpt_error(&x, &y, worst, sizeof worst);
    print_message("  %s vs %s: %.3g, in %s\n", strrchr(a, '/') + 1, strrchr(b, '/') + 1, err,
                  worst);
    if (!(err <= tol))
        fail_msg("%s and %s differ by %.3g, past %g: %s", a, b, err, tol, worst);
    ckpt_free(&x);
    ckpt_free(&y);
}

/* How many times needle occurs in hay. */
static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* ---- 1. semantics ---------------------------------------------------------------------- */

/* The tolerance between two processes with --batch B and one with --batch
 * 2B, in float32. The runs differ only in the order of the sums of a
 * step's gradient: one process sums 2B rows' contributions inside its
 * matrix products; two sum B each, scale by their rows, add the two
 * partial sums and divide by 2B. Each element of a step's gradient thus
 * differs by a few float32 roundings (1.2e-7 relative each) of the terms
 * it sums, and the differences pass from step to step through the weights
 * and the optimizer states. Measured after the 40 steps below, over five
 * seeds: at most 1.5e-6 of a tensor's largest element (ckpt_error), and
 * 3e-7 relative for the losses. TOL, 2e-5 (170 float32 roundings), is 13
 * times that. (A learning rate at which the loss jumps from epoch to epoch
 * amplifies the differences, momentum(lr = 0.01) to 8.5e-6: the rules
 * below train smoothly.) A real fault is far larger: with the mean of the
 * processes' means instead of the mean over the rows (the last step's
 * single row weighing half), tried by changing runtime/dist.c, the first
 * epoch's val_loss is 0.6% off and a bias 23% of its tensor's scale.
 * Accuracies must be equal: a class decision flips only where two logits
 * are within the weights' difference, and none is here (both runs are
 * deterministic). */
static const double TOL = 2e-5;

/* One training run's logs against the other's, epoch by epoch. */
static void assert_logs_close(const char *a, const char *b, int epochs) {
    Epoch x[64], y[64];
    int nx = read_log(a, x, 64), ny = read_log(b, y, 64);
    assert_int_equal(nx, epochs);
    assert_int_equal(ny, epochs);
    double worst = 0;
    for (int k = 0; k < epochs; k++) {
        assert_true(x[k].epoch == k + 1 && y[k].epoch == k + 1);
        assert_true(x[k].step == y[k].step);
        const double va[] = {x[k].loss, x[k].val_loss}, vb[] = {y[k].loss, y[k].val_loss};
        for (int i = 0; i < 2; i++) {
            double e = fabs(va[i] - vb[i]) / fabs(vb[i]);
            if (!(e <= TOL))
                fail_msg("epoch %d: %s %.9g in %s, %.9g in %s", k + 1, i ? "val_loss" : "loss",
                         va[i], a, vb[i], b);
            worst = e > worst ? e : worst;
        }
        assert_true(x[k].accuracy == y[k].accuracy);
    }
    print_message("  logs: losses within %.3g\n", worst);
}

/* Two processes with --batch 67 against one with --batch 134 on Iris with
 * 15 rows held out: 135 training rows, so every epoch is a step of 134 rows
 * and one of a single row, which only process 1 has (process 0 computes on
 * a stand-in row that weighs nothing). For SGD, momentum and Adam: every
 * epoch's loss, val_loss and accuracy and every weight and optimizer state
 * of the final checkpoint agree within the tolerance above. */
static void test_two_processes_train_as_one_with_twice_the_batch(void **state) {
    (void)state;
    need_mpi();
    static const char *const rules[] = {"", "--optimizer 'momentum(lr = 0.001, beta = 0.9)'",
                                        "--optimizer 'adam(lr = 0.01)'"};
    for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
        print_message("  %s\n", r ? rules[r] : "sgd(lr = 0.01)");
        char one[600], two[600], one_log[600], two_log[600];
        snprintf(one, sizeof one, "%s/one%zu.st", tmpdir, r);
        snprintf(two, sizeof two, "%s/two%zu.st", tmpdir, r);
        snprintf(one_log, sizeof one_log, "%s/one%zu.jsonl", tmpdir, r);
        snprintf(two_log, sizeof two_log, "%s/two%zu.jsonl", tmpdir, r);
        assert_status(run_cmd(60, "'%s' train examples/iris.nn --split 0.1 --batch 134 "
                                  "--epochs 20 --threads 1 -q %s --log '%s' --save '%s'",
                              GRADC_BINARY, rules[r], one_log, one),
                      0);
        assert_status(run_cmd(60, MPIRUN "-np 2 '%s' train examples/iris.nn --mpi --split 0.1 "
                                         "--batch 67 --epochs 20 --threads 1 -q %s --log '%s' "
                                         "--save '%s'",
                              GRADC_BINARY, rules[r], two_log, two),
                      0);
        assert_string_equal(err_text, "");
        assert_logs_close(two_log, one_log, 20);
        Epoch e[20];
        read_log(two_log, e, 20);
        assert_true(e[19].processes == 2 && e[19].step == 40);
        assert_ckpt_close(two, one, TOL);
        if (r > 0)
            continue;
        /* The comparison can fail: the same 20 epochs in steps of 67 rows
         * on one process are far from it. */
        assert_status(run_cmd(60, "'%s' train examples/iris.nn --split 0.1 --batch 67 "
                                  "--epochs 20 --threads 1 -q %s --save '%s'",
                              GRADC_BINARY, rules[r], one),
                      0);
        Ckpt x, y;
        ckpt_read(two, &x);
        ckpt_read(one, &y);
        char worst[300];
        assert_true(ckpt_error(&x, &y, worst, sizeof worst) > 100 * TOL);
        ckpt_free(&x);
        ckpt_free(&y);
    }
}

/* ---- 2. a built program ---------------------------------------------------------------- */

/* `gradc build --mpi`'s program under mpirun trains bit for bit as gradc
 * train --mpi: the JIT and the ahead-of-time compile make the same machine
 * code for the native CPU, and a sum of two processes' buckets is one
 * addition, the same whichever adds. Started without mpirun it is one
 * process and trains as gradc train without --mpi, byte for byte. */
static void test_built_program_under_mpirun_trains_as_gradc_train_mpi(void **state) {
    (void)state;
    need_mpi();
    char prog[600];
    snprintf(prog, sizeof prog, "%s/iris-mpi", tmpdir);
    if (gradc("build examples/iris.nn --mpi --batch 134 -o %s", prog) != 0)
        fail_msg("gradc build --mpi failed: %s", err_text);
    assert_contains(out_text, "gradc: built ");

    assert_status(run_cmd(60, MPIRUN "-np 2 '%s' train --split 0.1 --batch 67 --epochs 20 "
                                     "--threads 1 --log '%s/p2.jsonl' --save '%s/p2.st'",
                          prog, tmpdir, tmpdir),
                  0);
    assert_contains(out_text, "built for native; 150 rows; OpenBLAS");
    assert_contains(out_text, "; 2 processes, 67 rows a step each\n");
    assert_status(run_cmd(60, MPIRUN "-np 2 '%s' train examples/iris.nn --mpi --split 0.1 "
                                     "--batch 67 --epochs 20 --threads 1 -q --log "
                                     "'%s/g2.jsonl' --save '%s/g2.st'",
                          GRADC_BINARY, tmpdir, tmpdir),
                  0);
    assert_same_file(tmp("p2.st"), tmp("g2.st"));
    Epoch p[20], g[20];
    assert_int_equal(read_log(tmp("p2.jsonl"), p, 20), 20);
    assert_int_equal(read_log(tmp("g2.jsonl"), g, 20), 20);
    for (int k = 0; k < 20; k++)
        assert_true(p[k].loss == g[k].loss && p[k].val_loss == g[k].val_loss &&
                    p[k].accuracy == g[k].accuracy && p[k].processes == 2);

    /* Alone: one process, no "processes" in its summary line. */
    assert_status(run_cmd(60, SAN_ENV "'%s' train --split 0.1 --batch 134 --epochs 20 --threads 1 "
                              "--save '%s/p1.st'",
                          prog, tmpdir),
                  0);
    assert_contains(out_text, "built for native; 150 rows; OpenBLAS");
    assert_null(strstr(out_text, "process"));
    assert_status(gradc("train examples/iris.nn --split 0.1 --batch 134 --epochs 20 "
                        "--threads 1 -q --save %s",
                        tmp("g1.st")),
                  0);
    assert_same_file(tmp("p1.st"), tmp("g1.st"));
}

/* ---- 3. only process 0 prints and writes ------------------------------------------------ */

/* Each process in a directory of its own, with relative paths for the log,
 * the plot and the checkpoints: process 1's stays empty. stdout has one
 * summary line, one progress line per epoch, one save line per checkpoint. */
static void test_only_process_0_prints_logs_and_saves(void **state) {
    (void)state;
    need_mpi();
    char d0[600], d1[600];
    snprintf(d0, sizeof d0, "%s/rank0", tmpdir);
    snprintf(d1, sizeof d1, "%s/rank1", tmpdir);
    assert_int_equal(mkdir(d0, 0755), 0);
    assert_int_equal(mkdir(d1, 0755), 0);
    assert_status(run_cmd(60, MPIRUN "-np 2 sh -c \"cd '%s/rank'\\$OMPI_COMM_WORLD_RANK && "
                                     "exec '%s' train '%s/examples/iris.nn' --mpi --epochs 3 "
                                     "--threads 1 --save-every 1 --log run.jsonl --plot "
                                     "run.svg --save run.st\"",
                          tmpdir, GRADC_BINARY, GRADC_SOURCE_DIR),
                  0);
    assert_string_equal(err_text, "");
    assert_int_equal(count(out_text, "\n"), 1 + 3 + 3 + 2);
    assert_int_equal(count(out_text, "gradc: "), 1 + 3 + 2);
    assert_int_equal(count(out_text, "; 2 processes, 16 rows a step each\n"), 1);
    assert_int_equal(count(out_text, "epoch 3/3  loss "), 1);
    for (int k = 1; k <= 3; k++) {
        char line[100];
        snprintf(line, sizeof line, "gradc: saved checkpoint to run.st (epoch %d)\n", k);
        assert_int_equal(count(out_text, line), 1);
    }
    assert_int_equal(count(out_text, "gradc: saved weights to run.st\n"), 1);
    assert_int_equal(count(out_text, "gradc: plotted the training curves in run.svg\n"), 1);

    DIR *dir = opendir(d1);
    assert_non_null(dir);
    for (struct dirent *e; (e = readdir(dir));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            fail_msg("process 1 wrote %s", e->d_name);
    closedir(dir);
    Epoch e[8];
    assert_int_equal(read_log(tmp("rank0/run.jsonl"), e, 8), 3);
    assert_true(e[2].processes == 2 && e[2].epoch == 3);
    assert_true(xml_well_formed(tmp("rank0/run.svg")));
    Ckpt c;
    ckpt_read(tmp("rank0/run.st"), &c);
    assert_string_equal(ckpt_meta(&c, "epoch"), "3");
    ckpt_free(&c);
}

/* ---- 4. --resume with any number of processes -------------------------------------------- */

/* 5 steps on 2 processes (--epochs 6 --steps 5: two epochs of 2 steps,
 * 134 rows and 1, and the first step of epoch 3), then on to 6 epochs with
 * 2 (the uninterrupted run's checkpoint byte for byte) or with 1 and twice
 * the batch (within the tolerance); and 3 epochs on one process continued
 * on 2. */
static void test_resume_with_one_or_two_processes(void **state) {
    (void)state;
    need_mpi();
    const char *two = MPIRUN "-np 2 '%s' train examples/iris.nn --mpi --split 0.1 --batch 67 "
                             "--threads 1 -q --save '%s/%s' --epochs 6 %s%s%s";
    const char *one = "'%s' train examples/iris.nn --split 0.1 --batch 134 --threads 1 -q "
                      "--save '%s/%s' --epochs %s%s%s";
    char resume[700];
    snprintf(resume, sizeof resume, "%s/ck2.st", tmpdir);
    assert_status(run_cmd(60, two, GRADC_BINARY, tmpdir, "ck2.st", "--steps 5", "", ""), 0);
    Ckpt c;
    ckpt_read(resume, &c);
    assert_string_equal(ckpt_meta(&c, "step"), "5");
    assert_string_equal(ckpt_meta(&c, "epoch"), "2");
    assert_string_equal(ckpt_meta(&c, "epoch_rows"), "134");
    ckpt_free(&c);
    assert_status(run_cmd(60, two, GRADC_BINARY, tmpdir, "straight2.st", "", "", ""), 0);
    assert_status(run_cmd(60, two, GRADC_BINARY, tmpdir, "r22.st", "--resume '", resume, "'"), 0);
    assert_same_file(tmp("r22.st"), tmp("straight2.st"));
    assert_status(run_cmd(60, one, GRADC_BINARY, tmpdir, "r21.st", "6 --resume '", resume, "'"),
                  0);
    assert_ckpt_close(tmp("r21.st"), tmp("straight2.st"), TOL);

    snprintf(resume, sizeof resume, "%s/ck1.st", tmpdir);
    assert_status(run_cmd(60, one, GRADC_BINARY, tmpdir, "ck1.st", "3", "", ""), 0);
    assert_status(run_cmd(60, one, GRADC_BINARY, tmpdir, "straight1.st", "6", "", ""), 0);
    assert_status(run_cmd(60, two, GRADC_BINARY, tmpdir, "r12.st", "--resume '", resume, "'"), 0);
    assert_ckpt_close(tmp("r12.st"), tmp("straight1.st"), TOL);
    ckpt_read(tmp("r12.st"), &c);
    assert_string_equal(ckpt_meta(&c, "step"), "12");
    assert_string_equal(ckpt_meta(&c, "epoch"), "6");
    ckpt_free(&c);
}

/* ---- 5, 6. a process that dies or stops ------------------------------------------------- */

/* A long run (10^8 Iris epochs, a checkpoint after every one) with tag
 * (the checkpoint's path) in its command line; extra before mpirun
 * ("env VAR=value "). Returns mpirun's process id once the first
 * checkpoint is there; *t0 when it started. */
static pid_t start_long_run(const char *tag, const char *extra, double *t0) {
    char cmd[2000];
    snprintf(cmd, sizeof cmd,
             "%s" MPIRUN "-np 2 '%s' train examples/iris.nn --mpi --epochs 100000000 "
             "--threads 1 --save-every 1 -q --save '%s'",
             extra, GRADC_BINARY, tag);
    unlink(tag);
    *t0 = now_s();
    pid_t pid = start_cmd(cmd);
    wait_for_file(tag, pid, 30);
    return pid;
}

/* The gradc process of `rank` in the run tagged tag (waiting at most 10 s
 * for it to show). */
static pid_t rank_pid(const char *tag, int rank, pid_t mpirun) {
    double t0 = now_s();
    pid_t p;
    while ((p = find_gradc(tag, rank)) < 0) {
        if (now_s() - t0 > 10) {
            kill_tree(mpirun);
            fail_msg("no gradc process of rank %d", rank);
        }
        sleep_ms(10);
    }
    return p;
}

/* The checkpoint a run left at path is whole: gradc eval loads it. */
static void assert_checkpoint_evaluates(const char *path) {
    assert_status(gradc("eval examples/iris.nn --weights %s", path), 0);
    assert_contains(out_text, "accuracy");
    Ckpt c;
    ckpt_read(path, &c);
    assert_true(atoll(ckpt_meta(&c, "epoch")) >= 1);
    ckpt_free(&c);
}

/* kill -9 of process 1 (the one that saves nothing) and then of process 0
 * (mid-save, likely: it saves after every epoch): mpirun ends the other
 * and exits non-zero within 30 s, no gradc process is left, and the last
 * checkpoint loads. */
static void test_kill_9_of_one_process_ends_the_run_with_the_checkpoint_whole(void **state) {
    (void)state;
    need_mpi();
    for (int rank = 1; rank >= 0; rank--) {
        char tag[600];
        snprintf(tag, sizeof tag, "%s/kill%d.st", tmpdir, rank);
        double t0, took;
        pid_t mpirun = start_long_run(tag, "", &t0);
        pid_t victim = rank_pid(tag, rank, mpirun);
        sleep_ms(300);
        assert_int_equal(kill(victim, SIGKILL), 0);
        double t1 = now_s();
        int rc = wait_cmd(mpirun, t1, 30, &took);
        print_message("  kill -9 of process %d: mpirun exited %d after %.2f s\n", rank, rc, took);
        assert_int_not_equal(rc, 0);
        assert_contains(err_text, "exited on signal 9");
        assert_no_gradc_left(tag);
        assert_checkpoint_evaluates(tag);
    }
}

/* A process that stops answering (SIGSTOP) without dying: with
 * GRADC_MPI_TIMEOUT=2 the other's watchdog ends the run, saying so, and
 * mpirun exits non-zero within 30 s; the checkpoint is whole. */
static void test_watchdog_ends_a_run_whose_process_stopped_answering(void **state) {
    (void)state;
    need_mpi();
    for (int rank = 1; rank >= 0; rank--) {
        char tag[600];
        snprintf(tag, sizeof tag, "%s/stop%d.st", tmpdir, rank);
        double t0, took;
        pid_t mpirun = start_long_run(tag, "env GRADC_MPI_TIMEOUT=2 ", &t0);
        pid_t victim = rank_pid(tag, rank, mpirun);
        assert_int_equal(kill(victim, SIGSTOP), 0);
        double t1 = now_s();
        int rc = wait_cmd(mpirun, t1, 30, &took);
        /* mpirun continues and ends it; in case it did not. */
        if (find_gradc(tag, rank) == victim) {
            kill(victim, SIGCONT);
            kill(victim, SIGKILL);
        }
        print_message("  SIGSTOP of process %d: mpirun exited %d after %.2f s\n", rank, rc, took);
        assert_int_equal(rc, 1);
        char want[100];
        snprintf(want, sizeof want, "gradc: error: process %d: no answer from the other "
                                    "processes for 2 s in MPI_",
                 1 - rank);
        assert_contains(err_text, want);
        assert_true(took >= 2);
        assert_no_gradc_left(tag);
        assert_checkpoint_evaluates(tag);
    }
}

/* ---- 7. a failure or a disagreement in one process ------------------------------------- */

/* A data file only process 1 lacks: status 1, the error once, as process
 * 1's, no hang and no checkpoint. Processes given different batch sizes
 * are refused the same way. */
static void test_a_failure_in_one_process_is_reported_once(void **state) {
    (void)state;
    need_mpi();
    const char *cmd = MPIRUN "-np 1 '%s' train examples/iris.nn --mpi --threads 1 --save "
                             "'%s/%s' --epochs 2 %s : -np 1 '%s' train examples/iris.nn --mpi "
                             "--threads 1 --save '%s/%s' --epochs 2 %s";
    char missing[700];
    snprintf(missing, sizeof missing, "--data '%s/missing.csv'", tmpdir);
    assert_status(run_cmd(60, cmd, GRADC_BINARY, tmpdir, "m.st", "", GRADC_BINARY, tmpdir,
                          "m.st", missing),
                  1);
    char want[800];
    snprintf(want, sizeof want, "gradc: error: process 1: cannot open '%s/missing.csv': No such "
                                "file or directory\n",
             tmpdir);
    assert_contains(err_text, want);
    assert_int_equal(count(err_text, "error"), 1);
    assert_string_equal(out_text, "");
    assert_int_not_equal(access(tmp("m.st"), F_OK), 0);

    assert_status(run_cmd(60, cmd, GRADC_BINARY, tmpdir, "b.st", "--batch 16", GRADC_BINARY,
                          tmpdir, "b.st", "--batch 8"),
                  1);
    assert_contains(err_text, "gradc: error: the 2 processes disagree on the batch size (8 in "
                              "one, 16 in another): every process must run the same command on "
                              "the same files\n");
    assert_int_equal(count(err_text, "error"), 1);
    assert_int_not_equal(access(tmp("b.st"), F_OK), 0);
}

/* ---- 8. SIGTERM to mpirun ------------------------------------------------------------------ */

/* Open MPI's mpirun, sent SIGTERM (or SIGINT), sends SIGTERM to every
 * process, waits a second for them, kills what is left and exits 1,
 * whatever their statuses. The processes agree on the step to stop after,
 * process 0 saves the checkpoint within that second and says where it
 * stopped, and --resume on 2 processes ends bit for bit where the
 * uninterrupted run does. */
static void test_sigterm_to_mpirun_stops_at_one_step_and_saves(void **state) {
    (void)state;
    need_mpi();
    char ck[600], log[600];
    snprintf(ck, sizeof ck, "%s/term.st", tmpdir);
    snprintf(log, sizeof log, "%s/term.jsonl", tmpdir);
    char cmd[2000];
    snprintf(cmd, sizeof cmd,
             MPIRUN "-np 2 '%s' train examples/iris.nn --mpi --epochs 100000000 --threads 1 -q "
                    "--log '%s' --save '%s'",
             GRADC_BINARY, log, ck);
    unlink(log);
    double t0 = now_s(), took;
    pid_t mpirun = start_cmd(cmd);
    wait_for_file(log, mpirun, 30);
    assert_int_equal(kill(mpirun, SIGTERM), 0);
    int rc = wait_cmd(mpirun, now_s(), 30, &took);
    print_message("  SIGTERM: mpirun exited %d after %.2f s (%.2f s in all)\n", rc, took,
                  now_s() - t0);
    assert_int_equal(rc, 1);
    assert_no_gradc_left(ck);
    /* Process 0 alone reports the stop. */
    assert_contains(err_text, "gradc: SIGTERM: stopping after this step to save a checkpoint");
    assert_int_equal(count(err_text, "gradc: stopped by SIGTERM after step "), 1);
    long long step = 0, epochs = 0;
    const char *at = strstr(err_text, "stopped by SIGTERM after step ");
    assert_int_equal(sscanf(at, "stopped by SIGTERM after step %lld (%lld epochs done)", &step,
                            &epochs),
                     2);
    Ckpt c;
    ckpt_read(ck, &c);
    assert_int_equal(atoll(ckpt_meta(&c, "step")), step);
    assert_int_equal(atoll(ckpt_meta(&c, "epoch")), epochs);
    long long rows = atoll(ckpt_meta(&c, "epoch_rows"));
    ckpt_free(&c);
    /* 120 training rows, 32 a step: a step ends at rows 32, 64, 96 or 120. */
    assert_true(rows == 0 || rows == 32 || rows == 64 || rows == 96);
    assert_int_equal(step, epochs * 4 + rows / 32);

    const char *run = MPIRUN "-np 2 '%s' train examples/iris.nn --mpi --epochs %lld --threads 1 "
                             "-q --save '%s/%s' %s%s%s";
    assert_status(run_cmd(60, run, GRADC_BINARY, epochs + 2, tmpdir, "term2.st", "--resume '",
                          ck, "'"),
                  0);
    assert_status(run_cmd(60, run, GRADC_BINARY, epochs + 2, tmpdir, "straight.st", "", "",
                          ""),
                  0);
    assert_same_file(tmp("term2.st"), tmp("straight.st"));
}

/* ---- 9. usage ------------------------------------------------------------------------------ */

static void test_mpi_usage_errors(void **state) {
    (void)state;
    assert_status(gradc("train examples/iris.nn --mpi --check-numerics"), 2);
    assert_contains(err_text, "--check-numerics does not work with --mpi");
    assert_status(gradc("build examples/iris.nn --mpi --lib -o %s", tmp("x")), 2);
    assert_contains(err_text, "--mpi makes training programs, not libraries (--lib)");
    assert_int_not_equal(access(tmp("x"), F_OK), 0);
    assert_int_not_equal(access(tmp("x.o"), F_OK), 0);
    assert_int_not_equal(access(tmp("x.h"), F_OK), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_processes_train_as_one_with_twice_the_batch),
        cmocka_unit_test(test_built_program_under_mpirun_trains_as_gradc_train_mpi),
        cmocka_unit_test(test_only_process_0_prints_logs_and_saves),
        cmocka_unit_test(test_resume_with_one_or_two_processes),
        cmocka_unit_test(test_kill_9_of_one_process_ends_the_run_with_the_checkpoint_whole),
        cmocka_unit_test(test_watchdog_ends_a_run_whose_process_stopped_answering),
        cmocka_unit_test(test_a_failure_in_one_process_is_reported_once),
        cmocka_unit_test(test_sigterm_to_mpirun_stops_at_one_step_and_saves),
        cmocka_unit_test(test_mpi_usage_errors),
    };
    return cli_main("gradc-cli-mpi", tests);
}
