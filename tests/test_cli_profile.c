/* test_cli_profile.c: gradc train --profile as a user runs it: the report
 * on stderr lists every kernel of the train program exactly once, with
 * gradc summary's kind, root, shape and source for its index; the shares
 * (kernels and the time outside the program) add up to 100%, and so do the
 * shares by kind, whose gemm share is the gemm rows'; the step count and
 * batch are the run's; the start-up line is inside the process's wall time;
 * stdout and the checkpoint are those of a run without the flag; a run
 * that fails (a NaN loss, with and without --check-numerics) still reports
 * its steps; a built program refuses the flag. Runs the built binary
 * (GRADC_BINARY) from the source root.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define assert_lacks(hay, needle)                                                           \
    do {                                                                                    \
        if (strstr((hay), (needle)))                                                        \
            fail_msg("did not expect \"%s\" in \"%s\"", (needle), (hay));                   \
    } while (0)

enum { MAXK = 256 };

/* One kernel's row of the report. */
typedef struct Row {
    double share, ms;
    char label[300]; /* kind, root, shape and source, single-spaced */
} Row;

/* What the report says. */
typedef struct Report {
    long steps, batch;
    double ms_prog, ms_all;
    int nrows;      /* kernel rows */
    bool seen[MAXK]; /* by kernel index */
    Row rows[MAXK];
    int dup;        /* a kernel index listed twice (-1: none) */
    double outside, outside_ms;
    double by_kind_sum, by_kind_gemm;
    double first_step; /* seconds; -1: no such line */
} Report;

/* s with every run of spaces made one space, no leading or trailing one. */
static void squeeze(char *out, size_t n, const char *s) {
    size_t k = 0;
    for (; *s == ' '; s++)
        ;
    for (; *s && *s != '\n' && k + 1 < n; s++)
        if (*s != ' ' || (s[1] != ' ' && s[1] != '\n' && s[1]))
            out[k++] = *s;
    out[k] = '\0';
}

/* Parse the report in text; fails the test when a line is malformed. */
static void parse_report(const char *text, Report *r) {
    memset(r, 0, sizeof *r);
    r->dup = -1;
    r->first_step = -1;
    const char *h = strstr(text, "gradc: profile of the train program: ");
    if (!h)
        fail_msg("no profile in \"%s\"", text);
    if (sscanf(h, "gradc: profile of the train program: %ld step%*[s] (batch %ld), %lf ms a step "
                  "in the program, %lf ms a step in all",
               &r->steps, &r->batch, &r->ms_prog, &r->ms_all) != 4 &&
        sscanf(h, "gradc: profile of the train program: %ld step (batch %ld), %lf ms a step "
                  "in the program, %lf ms a step in all",
               &r->steps, &r->batch, &r->ms_prog, &r->ms_all) != 4)
        fail_msg("bad header in \"%s\"", h);
    const char *line = strchr(h, '\n') + 1;
    assert_true(strncmp(line, "   share    ms/step     #  kind", 31) == 0);
    for (line = strchr(line, '\n') + 1; *line == ' '; line = strchr(line, '\n') + 1) {
        double share, ms;
        int k, used = 0;
        if (sscanf(line, " %lf%% %lf %d %n", &share, &ms, &k, &used) == 3 && used > 0) {
            assert_true(k >= 0 && k < MAXK);
            if (r->seen[k])
                r->dup = k;
            r->seen[k] = true;
            r->rows[k].share = share;
            r->rows[k].ms = ms;
            squeeze(r->rows[k].label, sizeof r->rows[k].label, line + used);
            r->nrows++;
        } else if (sscanf(line, " %lf%% %lf - outside the program (gathering the batch, "
                                "per-step hyperparameters)",
                          &share, &ms) == 2) {
            r->outside = share;
            r->outside_ms = ms;
        } else if (!strncmp(line, "  by kind:", 10)) {
            for (const char *p = line + 10; *p && *p != '\n';) {
                const char *pct = strchr(p, '%');
                if (!pct || pct > strchr(line, '\n'))
                    break;
                const char *num = pct;
                while (num > p && (num[-1] == '.' || (num[-1] >= '0' && num[-1] <= '9')))
                    num--;
                double v = strtod(num, NULL);
                r->by_kind_sum += v;
                if (!strncmp(p, " gemm ", 6))
                    r->by_kind_gemm = v;
                p = pct + 2;
            }
        } else if (sscanf(line, "  first step finished %lf s after the process started",
                          &r->first_step) == 1) {
        } else {
            fail_msg("unexpected line in the report: \"%.120s\"", line);
        }
    }
}

/* gradc summary's kernel rows: label[k] single-spaced without the FLOPs;
 * returns the kernel count it states. */
static int summary_kernels(const char *model, char label[][300]) {
    assert_int_equal(gradc("summary %s", model), 0);
    const char *t = strstr(out_text, "kernels of the train program after fusion: ");
    assert_non_null(t);
    int n = atoi(t + strlen("kernels of the train program after fusion: "));
    assert_true(n > 0 && n <= MAXK);
    const char *line = strchr(strchr(t, '\n') + 1, '\n') + 1; /* past the column names */
    for (int k = 0; k < n; k++, line = strchr(line, '\n') + 1) {
        char row[400];
        squeeze(row, sizeof row, line);
        int idx = -1, used = 0;
        assert_int_equal(sscanf(row, "%d %n", &idx, &used), 1);
        assert_int_equal(idx, k);
        /* Drop the FLOPs, the last field but one. */
        char *src = strrchr(row, ' ');
        *src = '\0';
        *strrchr(row, ' ') = '\0';
        snprintf(label[k], 300, "%s %s", row + used, src + 1);
    }
    return n;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Every kernel of the train program once, labelled as gradc summary
 * labels it; the shares add up; gemm rows; a plausible start-up time. */
static void test_mnist_report_lists_every_kernel_once(void **state) {
    (void)state;
    static char label[MAXK][300];
    int nk = summary_kernels("examples/mnist_mlp.nn", label);
    double t0 = now_s();
    assert_int_equal(gradc("train examples/mnist_mlp.nn --steps 20 --profile -q --save %s",
                           tmp("p.safetensors")),
                     0);
    double wall = now_s() - t0;
    assert_string_equal(out_text, "");
    static Report r;
    parse_report(err_text, &r);
    assert_int_equal(r.steps, 20);
    assert_int_equal(r.batch, 64);
    assert_true(r.ms_prog > 0 && r.ms_prog <= r.ms_all);
    assert_int_equal(r.dup, -1);
    assert_int_equal(r.nrows, nk);
    int gemms = 0;
    double total = r.outside, gemm_share = 0, prog_ms = 0;
    for (int k = 0; k < nk; k++) {
        assert_true(r.seen[k]);
        if (strcmp(r.rows[k].label, label[k]) != 0)
            fail_msg("kernel %d: the profile says \"%s\", gradc summary \"%s\"", k,
                     r.rows[k].label, label[k]);
        assert_true(r.rows[k].share >= 0 && r.rows[k].ms >= 0);
        total += r.rows[k].share;
        prog_ms += r.rows[k].ms;
        if (!strncmp(r.rows[k].label, "gemm ", 5)) {
            gemms++;
            gemm_share += r.rows[k].share;
        }
    }
    assert_int_equal(gemms, 5);
    /* Each share is rounded to 0.05: the sums are 100 within that. */
    assert_true(fabs(total - 100) <= 0.05 * (nk + 1) + 1e-9);
    assert_true(fabs(r.by_kind_sum - 100) <= 0.05 * 5 + 1e-9);
    assert_true(fabs(r.by_kind_gemm - gemm_share) <= 0.05 * (gemms + 1) + 1e-9);
    /* The kernels' ms a step add up to the program's (rounded to 0.00005
     * each), the program's and the outside's to the whole. */
    assert_true(fabs(prog_ms - r.ms_prog) <= 0.00005 * nk + 0.0005 * r.ms_prog);
    assert_true(fabs(prog_ms + r.outside_ms - r.ms_all) <= 0.00005 * (nk + 1) + 0.0005 * r.ms_all);
    /* After the JIT compile and the data, within the process's life (its
     * start is read in 10 ms clock ticks, so up to 10 ms early). */
    assert_true(r.first_step > 0 && r.first_step < wall + 0.011);
}

/* The flag changes no result: the same checkpoint bit for bit, the same
 * stdout; without it, no report. */
static void test_profile_changes_no_result(void **state) {
    (void)state;
    assert_int_equal(gradc("train examples/mnist_mlp.nn --steps 20 --save %s", tmp("a.st")), 0);
    char *plain_out = strdup(out_text);
    assert_lacks(err_text, "profile of");
    assert_int_equal(
        gradc("train examples/mnist_mlp.nn --steps 20 --profile --save %s", tmp("b.st")), 0);
    assert_contains(err_text, "gradc: profile of the train program: 20 steps (batch 64)");
    assert_same_file(tmp("a.st"), tmp("b.st"));
    /* The progress line's samples/s and the compile time differ; the
     * rest is the same. */
    assert_contains(out_text, "epoch 1/1");
    assert_lacks(out_text, "profile of");
    assert_contains(plain_out, "epoch 1/1");
    free(plain_out);
}

/* Four rows, all but the last labelled 1; SGD with lr 1000 saturates the
 * sigmoid in the first step, so the loss of the second is NaN (as in
 * test_cli_numerics.c). */
static const char lr_csv[] = "x,y\n1,1\n2,1\n0.5,1\n-0.001,0\n";
static const char lr_nn[] = "input x[B, 1]\n"
                            "input y[B, 1]\n"
                            "param w[1, 1] = 0\n"
                            "param b[1] = 0\n"
                            "p = sigmoid(x @ w + b)\n"
                            "lp = log(p)\n"
                            "lq = log(1 - p)\n"
                            "loss = -mean(y * lp + (1 - y) * lq)\n"
                            "train {\n"
                            "  data = csv(\"lr.csv\", x = \"x\", y = \"y\")\n"
                            "  optimizer = sgd(lr = 1000)\n"
                            "  batch = 4\n"
                            "  epochs = 5\n"
                            "}\n";

/* Training that ends in an error still reports the steps that ran: the
 * second, whose loss is NaN, is in the counts, also when --check-numerics
 * stopped it before its update (its kernels ran up to the failing one). */
static void test_failed_run_still_reports(void **state) {
    (void)state;
    write_file("lr.csv", lr_csv);
    write_file("lr.nn", lr_nn);
    static char label[MAXK][300];
    int nk = summary_kernels(tmp("lr.nn"), label);
    static Report r;
    for (int checked = 0; checked < 2; checked++) {
        assert_int_equal(gradc("train %s --profile -q %s --save %s", tmp("lr.nn"),
                               checked ? "--check-numerics" : "", tmp("lr.st")),
                         1);
        assert_contains(err_text, checked ? "--check-numerics: step 2 (epoch 2) made a NaN"
                                          : "gradc: error: loss became nan at epoch 2, step 2");
        parse_report(err_text, &r);
        assert_int_equal(r.steps, 2);
        assert_int_equal(r.batch, 4);
        assert_int_equal(r.nrows, nk);
        assert_int_equal(r.dup, -1);
    }
    /* Nothing ran: no report. */
    assert_int_equal(gradc("train %s --profile -q --data %s", tmp("lr.nn"), tmp("none.csv")), 1);
    assert_lacks(err_text, "profile of");
}

/* -q keeps the report (it is on stderr, like --time-passes); --help lists
 * the flag; a built program refuses it, as it refuses --check-numerics. */
static void test_help_and_built_program(void **state) {
    (void)state;
    assert_int_equal(gradc("train --help"), 0);
    assert_contains(out_text, "--profile");
    assert_int_equal(gradc("build examples/xor.nn -o %s -q", tmp("xorprog")), 0);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' train --profile --steps 1 >'%s' 2>'%s'", tmpdir,
             tmp("xorprog"), tmp("o"), tmp("e"));
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 2);
    char *err = read_all(tmp("e"));
    assert_contains(err, "--profile: only gradc's own train compiles the model (gradc train ");
    free(err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mnist_report_lists_every_kernel_once),
        cmocka_unit_test(test_profile_changes_no_result),
        cmocka_unit_test(test_failed_run_still_reports),
        cmocka_unit_test(test_help_and_built_program),
    };
    return cli_main("gradc-profile", tests);
}
