/* test_cli_ckpt.c: checkpoints that never lose work, as a user of gradc
 * train meets them: the version and model hash in every checkpoint and
 * --resume refusing another model's, --save-every, SIGINT and SIGTERM
 * (stop, save, exit 130 or 143, resume bit for bit), and kill -9 at any
 * moment of a save leaving either no checkpoint or a whole one. Runs the
 * built binary (GRADC_BINARY); the signal tests start it with fork and
 * exec to have its process id. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
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

/* ---- helpers ------------------------------------------------------------------- */

/* Metadata value of a weight file (malloc'd; NULL when absent). */
static char *meta(const char *path, const char *key) {
    char *v = NULL;
    RtError err;
    if (rt_read_weights_meta(path, key, &v, &err) != RT_OK)
        fail_msg("%s", err.msg);
    return v;
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Start gradc with args (NULL-terminated, without argv[0]); its stdout goes
 * to a pipe whose read end is *out (when out is not NULL; else /dev/null),
 * its stderr to err_path. */
static pid_t spawn_gradc(const char *const *args, int *out, const char *err_path) {
    int fds[2] = {-1, -1};
    if (out)
        assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        const char *argv[32] = {"gradc"};
        for (int i = 0; args[i] && i < 30; i++)
            argv[i + 1] = args[i];
        int null = open("/dev/null", O_RDWR);
        int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(null, 0);
        dup2(out ? fds[1] : null, 1);
        dup2(err, 2);
        if (out)
            close(fds[0]);
        execv(GRADC_BINARY, (char *const *)argv);
        _exit(127);
    }
    if (out) {
        close(fds[1]);
        *out = fds[0];
    }
    return pid;
}

/* Read fd until its text so far contains want (true) or it ends (false);
 * the text read goes to buf. */
static bool read_until(int fd, const char *want, char *buf, size_t cap) {
    size_t len = strlen(buf);
    while (!strstr(buf, want)) {
        if (len + 1 >= cap) { /* keep the tail: want may straddle */
            memmove(buf, buf + len / 2, len - len / 2 + 1);
            len -= len / 2;
        }
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        len += (size_t)r;
        buf[len] = '\0';
    }
    return true;
}

/* The exit status of pid (which must exit, not die of a signal). */
static int wait_exit(pid_t pid) {
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st))
        fail_msg("gradc died of signal %d", WIFSIGNALED(st) ? WTERMSIG(st) : -1);
    return WEXITSTATUS(st);
}

static void drain(int fd) {
    char buf[4096];
    while (read(fd, buf, sizeof buf) > 0) {
    }
    close(fd);
}

/* A copy of examples/iris.nn in the temporary directory, with the data path
 * made absolute and `extra` appended (a comment, say), and the hidden layer
 * `hidden` wide. */
static void write_iris(const char *name, int hidden, const char *extra) {
    char text[2048];
    snprintf(text, sizeof text,
             "input  x[B, 4]\n"
             "input  y[B] : int\n"
             "param  W1[4, %d] ~ he\n"
             "param  b1[%d]    = 0\n"
             "param  W2[%d, 3] ~ glorot\n"
             "param  b2[3]     = 0\n"
             "h            = relu(x @ W1 + b1)\n"
             "logits       = h @ W2 + b2\n"
             "output probs = softmax(logits)\n"
             "loss         = cross_entropy(logits, y)\n"
             "train {\n"
             "  data      = csv(\"%s/examples/data/iris.csv\", x = [\"sepal_length\", "
             "\"sepal_width\", \"petal_length\", \"petal_width\"], y = \"species\")\n"
             "  optimizer = sgd(lr = 0.01)\n"
             "  batch     = 16\n"
             "  epochs    = 4\n"
             "  seed      = 1\n"
             "}\n%s",
             hidden, hidden, hidden, GRADC_SOURCE_DIR, extra);
    write_file(name, text);
}

/* ---- metadata and --resume --------------------------------------------------------- */

/* Every checkpoint says which gradc wrote it and which model (and
 * optimizer) it belongs to; the hash ignores comments and spacing. */
static void test_checkpoint_records_version_and_model_hash(void **state) {
    (void)state;
    write_iris("h1.nn", 16, "");
    write_iris("h2.nn", 16, "\n# a comment, and some spacing:   \n\n");
    write_iris("h3.nn", 32, "");
    const char *names[] = {"h1.nn", "h2.nn", "h3.nn"};
    char *hash[4];
    for (int k = 0; k < 3; k++) {
        assert_int_equal(gradc("train %s -q --epochs 1 --save %s", tmp(names[k]), tmp("h.st")), 0);
        hash[k] = meta(tmp("h.st"), "model_hash");
        assert_non_null(hash[k]);
        assert_int_equal(strlen(hash[k]), 16);
        assert_int_equal(strspn(hash[k], "0123456789abcdef"), 16);
    }
    assert_int_equal(gradc("train %s -q --epochs 1 --save %s --optimizer \"adam(lr = 0.01)\"",
                           tmp("h1.nn"), tmp("h.st")),
                     0);
    hash[3] = meta(tmp("h.st"), "model_hash");
    assert_string_equal(hash[0], hash[1]);
    assert_string_not_equal(hash[0], hash[2]);
    assert_string_not_equal(hash[0], hash[3]);
    char *version = meta(tmp("h.st"), "gradc_version");
    assert_non_null(version);
    assert_int_equal(gradc("--version"), 0);
    assert_contains(out_text, version);
    /* String labels: the class names, in id order, one per line. */
    char *classes = meta(tmp("h.st"), "classes");
    assert_string_equal(classes, "Iris-setosa\nIris-versicolor\nIris-virginica");
    free(classes);
    free(version);
    for (int k = 0; k < 4; k++)
        free(hash[k]);
}

/* --resume continues only the model (and optimizer) that saved the
 * checkpoint; an edited comment is still the same model. */
static void test_resume_refuses_a_checkpoint_of_a_different_model(void **state) {
    (void)state;
    write_iris("r1.nn", 16, "");
    write_iris("r2.nn", 16, "# only a comment differs\n");
    write_iris("r3.nn", 16, "");
    /* the same shapes, another rule: a different model all the same */
    char text[4096], *r3 = read_all(tmp("r3.nn"));
    snprintf(text, sizeof text, "%s", r3);
    free(r3);
    char *lr = strstr(text, "lr = 0.01");
    assert_non_null(lr);
    lr[7] = '2';
    write_file("r3.nn", text);
    assert_int_equal(gradc("train %s -q --epochs 2 --save %s", tmp("r1.nn"), tmp("r.st")), 0);
    assert_int_equal(gradc("train %s -q --epochs 3 --resume %s --save %s", tmp("r2.nn"),
                           tmp("r.st"), tmp("r2.st")),
                     0);
    assert_int_equal(gradc("train %s -q --epochs 3 --resume %s --save %s", tmp("r3.nn"),
                           tmp("r.st"), tmp("r3.st")),
                     1);
    assert_contains(err_text, "gradc: error: '");
    assert_contains(err_text, "r.st' was saved by a different model (or optimizer): its "
                              "model_hash is ");
    assert_contains(err_text, "use --weights ");
    assert_int_not_equal(access(tmp("r3.st"), F_OK), 0);
    assert_int_equal(gradc("train %s -q --epochs 3 --resume %s --save %s --optimizer adam",
                           tmp("r1.nn"), tmp("r.st"), tmp("r3.st")),
                     1);
    assert_contains(err_text, "with this --optimizer hashes to ");
    /* --weights takes any file with the parameters. */
    assert_int_equal(gradc("train %s -q --epochs 1 --weights %s --save %s", tmp("r3.nn"),
                           tmp("r.st"), tmp("r3.st")),
                     0);
}

/* --save-every N writes the checkpoint after every N-th epoch (counted over
 * the whole run) and at the end; a usage error otherwise. */
static void test_save_every_writes_the_checkpoint_every_n_epochs(void **state) {
    (void)state;
    write_iris("e.nn", 16, "");
    assert_int_equal(gradc("train %s --epochs 5 --save-every 2 --save %s", tmp("e.nn"),
                           tmp("e.st")),
                     0);
    char want[600];
    for (int e = 1; e <= 5; e++) {
        snprintf(want, sizeof want, "gradc: saved checkpoint to %s (epoch %d)\n", tmp("e.st"), e);
        if ((e % 2 == 0) != (strstr(out_text, want) != NULL))
            fail_msg("epoch %d: %s in \"%s\"", e, e % 2 ? "unexpected save" : "no save",
                     out_text);
    }
    assert_contains(out_text, "epoch 2/5  loss");
    assert_true(strstr(out_text, "epoch 2/5  loss") <
                strstr(out_text, "saved checkpoint to"));
    char *epoch = meta(tmp("e.st"), "epoch");
    assert_string_equal(epoch, "5");
    free(epoch);
    assert_int_equal(gradc("train %s --save-every 0", tmp("e.nn")), 2);
    assert_contains(err_text, "--save-every expects a positive number of epochs, got '0'");
    assert_int_equal(gradc("train --help"), 0);
    assert_contains(out_text, "--save-every N");
    assert_contains(out_text, "SIGINT");
}

/* ---- signals ------------------------------------------------------------------- */

/* A small classifier with dropout (the RNG is part of what must resume) and
 * batches of 1 (so that a signal lands inside an epoch), on 120 rows of
 * two features, 10% held out. */
static void write_dropout_model(void) {
    FILE *f = fopen(tmp("sig.csv"), "w");
    assert_non_null(f);
    fputs("a,b,label\n", f);
    for (int i = 0; i < 120; i++) {
        double a = sin(1.7 * i), b = cos(2.3 * i + 0.5);
        fprintf(f, "%.4f,%.4f,%s\n", a, b, a * b > 0 ? "same" : "differ");
    }
    fclose(f);
    write_file("sig.nn", "input  x[B, 2]\n"
                         "input  y[B] : int\n"
                         "h      = dense(x, 16, relu)\n"
                         "h      = dropout(h, 0.2)\n"
                         "logits = dense(h, 2)\n"
                         "output probs = softmax(logits)\n"
                         "loss   = cross_entropy(logits, y)\n"
                         "train {\n"
                         "  data      = csv(\"sig.csv\", x = [\"a\", \"b\"], y = \"label\")\n"
                         "  optimizer = adam(lr = 0.01)\n"
                         "  batch     = 1\n"
                         "  epochs    = 1500\n"
                         "  split     = 0.1\n"
                         "}\n");
}

/* 4 epochs straight and 2 + --resume to 4 give the same checkpoint, byte
 * for byte, for SGD and Adam, with dropout and shuffling on. */
static void test_resume_is_exact_for_sgd_and_adam_with_dropout(void **state) {
    (void)state;
    write_dropout_model();
    static const char *const opts[] = {"sgd(lr = 0.05)", "adam(lr = 0.01)"};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(gradc("train %s -q --epochs 4 --optimizer \"%s\" --save %s",
                               tmp("sig.nn"), opts[k], tmp("r4.st")),
                         0);
        assert_int_equal(gradc("train %s -q --epochs 2 --optimizer \"%s\" --save %s",
                               tmp("sig.nn"), opts[k], tmp("r2.st")),
                         0);
        assert_int_equal(gradc("train %s -q --epochs 4 --optimizer \"%s\" --resume %s --save %s",
                               tmp("sig.nn"), opts[k], tmp("r2.st"), tmp("r22.st")),
                         0);
        assert_same_file(tmp("r4.st"), tmp("r22.st"));
    }
}

/* Start `gradc train sig.nn --save sig.st` (with --resume sig.st), wait for
 * its first progress line, send sig, and return its exit status; its
 * stderr is left in err_text. */
static int train_and_signal(int sig, bool resume) {
    char model[512], save[512], errs[512];
    snprintf(model, sizeof model, "%s", tmp("sig.nn"));
    snprintf(save, sizeof save, "%s", tmp("sig.st"));
    snprintf(errs, sizeof errs, "%s", tmp("sig.err"));
    const char *args[] = {"train", model, "--save", save, resume ? "--resume" : NULL, save, NULL};
    int out;
    pid_t pid = spawn_gradc(args, &out, errs);
    char buf[8192] = "";
    bool seen = read_until(out, "  loss ", buf, sizeof buf);
    kill(pid, sig);
    drain(out);
    int rc = wait_exit(pid);
    free(err_text);
    err_text = read_all(errs);
    if (!seen)
        fail_msg("no progress line before the end: %s", err_text);
    return rc;
}

/* SIGINT: finish the step, save, say where and how to resume, exit 130.
 * SIGTERM: the same with 143. Two interruptions and a last resume end
 * with the checkpoint of an uninterrupted run, byte for byte. */
static void test_sigint_and_sigterm_save_and_resume_exactly(void **state) {
    (void)state;
    write_dropout_model();
    assert_int_equal(gradc("train %s -q --save %s", tmp("sig.nn"), tmp("straight.st")), 0);

    assert_int_equal(train_and_signal(SIGINT, false), 130);
    assert_contains(err_text, "gradc: SIGINT: stopping after this step to save a checkpoint");
    char want[700];
    snprintf(want, sizeof want, "epochs done); saved the checkpoint to %s\n", tmp("sig.st"));
    assert_contains(err_text, "gradc: stopped by SIGINT after step ");
    assert_contains(err_text, want);
    snprintf(want, sizeof want, "gradc: to continue: gradc train %s --resume %s", tmp("sig.nn"),
             tmp("sig.st"));
    assert_contains(err_text, want);
    char *epoch = meta(tmp("sig.st"), "epoch");
    assert_true(atoi(epoch) < 1500);
    free(epoch);

    assert_int_equal(train_and_signal(SIGTERM, true), 143);
    assert_contains(err_text, "gradc: stopped by SIGTERM after step ");

    assert_int_equal(gradc("train %s -q --resume %s --save %s", tmp("sig.nn"), tmp("sig.st"),
                           tmp("resumed.st")),
                     0);
    assert_same_file(tmp("resumed.st"), tmp("straight.st"));
}

/* A second SIGINT quits at once: status 130, and whatever is at the path
 * then is a whole checkpoint or nothing. */
static void test_second_sigint_quits_without_a_partial_file(void **state) {
    (void)state;
    write_dropout_model();
    unlink(tmp("sig.st"));
    char model[512], save[512], errs[512];
    snprintf(model, sizeof model, "%s", tmp("sig.nn"));
    snprintf(save, sizeof save, "%s", tmp("sig.st"));
    snprintf(errs, sizeof errs, "%s", tmp("sig.err"));
    const char *args[] = {"train", model, "--save", save, NULL};
    int out;
    pid_t pid = spawn_gradc(args, &out, errs);
    char buf[8192] = "";
    assert_true(read_until(out, "  loss ", buf, sizeof buf));
    kill(pid, SIGINT);
    kill(pid, SIGINT);
    drain(out);
    assert_int_equal(wait_exit(pid), 130);
    if (access(tmp("sig.st"), F_OK) == 0)
        assert_int_equal(gradc("train %s -q --resume %s --epochs 1500 --steps 1 --save %s",
                               tmp("sig.nn"), tmp("sig.st"), tmp("sig2.st")),
                         0);
}

/* ---- kill -9 during saves ---------------------------------------------------------- */

/* A model whose checkpoint (a 4 MB parameter) takes a while to write, on 8
 * rows: each epoch is one step and one save. */
static void write_big_model(void) {
    FILE *f = fopen(tmp("big.csv"), "w");
    assert_non_null(f);
    fputs("a,b,c,d,label\n", f);
    for (int i = 0; i < 8; i++)
        fprintf(f, "%d,%d,%d,%d,%d\n", i, i % 3, i % 2, 7 - i, i % 3);
    fclose(f);
    write_file("big.nn", "input  x[B, 4]\n"
                         "input  y[B] : int\n"
                         "param  W[4, 3] ~ glorot\n"
                         "param  big[1000, 1000] ~ normal(0, 1)\n"
                         "loss   = cross_entropy(x @ W, y) + 1e-6 * mean(big * big)\n"
                         "train {\n"
                         "  data      = csv(\"big.csv\", x = [\"a\", \"b\", \"c\", \"d\"], "
                         "y = \"label\")\n"
                         "  optimizer = sgd(lr = 0.01)\n"
                         "  batch     = 8\n"
                         "  epochs    = 100000\n"
                         "}\n");
}

/* The big model as the runtime sees it, enough to load its checkpoints:
 * W [4, 3] @0, big [1000, 1000] @64. */
static const RtTensor big_params[] = {
    {.name = "W", .rank = 2, .dims = {4, 3}, .offset = 0},
    {.name = "big", .rank = 2, .dims = {1000, 1000}, .offset = 64},
};
static const RtInit big_inits[] = {{.kind = RT_INIT_CONST}, {.kind = RT_INIT_CONST}};
static const RtModel big_model = {.name = "big", .elem_size = 4, .max_batch = 1,
                                  .arena_bytes = 64 + 4000000, .nparams = 2,
                                  .params = big_params, .inits = big_inits};

/* Temporary files of saves to tmp(name): "<name>.tmp.<pid>". */
static int count_temps(const char *name) {
    DIR *dir = opendir(tmpdir);
    assert_non_null(dir);
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s.tmp.", name);
    int n = 0;
    for (struct dirent *e; (e = readdir(dir));)
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(dir);
    return n;
}

/* kill -9 at moments spread over the first saves (from the moment the
 * first save starts to write, its temporary file or the path itself, 0 to
 * 13.5 ms later): what is at the checkpoint's path is then nothing (the
 * first save never finished) or a checkpoint that loads, never a partial
 * file. A killed save leaves its temporary file (never read: --resume reads
 * the path itself), and the next save to the path removes it. */
static void test_kill_9_during_saves_never_leaves_a_partial_checkpoint(void **state) {
    (void)state;
    write_big_model();
    char target[512], model[512], errs[512], keep[512];
    snprintf(target, sizeof target, "%s", tmp("big.st"));
    snprintf(keep, sizeof keep, "%s", tmp("big.whole"));
    snprintf(model, sizeof model, "%s", tmp("big.nn"));
    snprintf(errs, sizeof errs, "%s", tmp("big.err"));
    int absent = 0, whole = 0, mid_save = 0;
    for (int k = 0; k < 10; k++) {
        unlink(target);
        const char *args[] = {"train", model, "-q", "--save", target, "--save-every", "1", NULL};
        pid_t pid = spawn_gradc(args, NULL, errs);
        char temp[600];
        snprintf(temp, sizeof temp, "%s.tmp.%ld", target, (long)pid);
        double waited = 0;
        while (access(temp, F_OK) != 0 && access(target, F_OK) != 0) {
            int st;
            if (waitpid(pid, &st, WNOHANG) == pid)
                fail_msg("gradc ended before saving: %s", read_all(errs));
            sleep_us(20);
            if ((waited += 20e-6) > 20)
                fail_msg("no save within 20 s");
        }
        sleep_us(k * 1500L);
        bool saving = access(temp, F_OK) == 0;
        kill(pid, SIGKILL);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        mid_save += saving && access(temp, F_OK) == 0;
        assert_true(count_temps("big.st") <= 1); /* earlier runs' were removed */
        if (access(target, F_OK) != 0) {
            absent++;
            continue;
        }
        RtSession s;
        RtError err = {""};
        assert_int_equal(rt_session_init(&s, &big_model, 1, &err), RT_OK);
        if (rt_load_checkpoint(&s, target, &err) != RT_OK)
            fail_msg("kill after %d us: %s", k * 1500, err.msg);
        assert_true(s.step >= 1 && s.epoch == s.step);
        rt_session_free(&s);
        whole++;
        unlink(keep); /* the last whole one, for the resume below */
        assert_int_equal(link(target, keep), 0);
    }
    print_message("kill -9: %d runs left no checkpoint, %d a whole one; %d killed mid-save\n",
                  absent, whole, mid_save);
    assert_true(mid_save >= 1); /* the test reached inside a save */
    assert_true(whole >= 1);
    /* gradc itself takes the survivor, and its save clears the leftovers.
     * (The last kill may have come before the first save: then the last
     * whole checkpoint is the survivor.) */
    if (access(target, F_OK) != 0)
        assert_int_equal(rename(keep, target), 0);
    char *epoch = meta(target, "epoch");
    assert_int_equal(gradc("train %s -q --resume %s --epochs %d --save %s", model, target,
                           atoi(epoch) + 1, target),
                     0);
    free(epoch);
    assert_int_equal(count_temps("big.st"), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkpoint_records_version_and_model_hash),
        cmocka_unit_test(test_resume_refuses_a_checkpoint_of_a_different_model),
        cmocka_unit_test(test_save_every_writes_the_checkpoint_every_n_epochs),
        cmocka_unit_test(test_resume_is_exact_for_sgd_and_adam_with_dropout),
        cmocka_unit_test(test_sigint_and_sigterm_save_and_resume_exactly),
        cmocka_unit_test(test_second_sigint_quits_without_a_partial_file),
        cmocka_unit_test(test_kill_9_during_saves_never_leaves_a_partial_checkpoint),
    };
    return cli_main("gradc-cli-ckpt", tests);
}
