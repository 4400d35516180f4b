/* test_cli_check.c: gradc check (the compiled float64 gradients against
 * finite differences) and derivative coverage (every op without a gradient
 * rule reported at once), through the gradc binary and its test-only hooks
 * GRADC_TEST_BREAK_GRAD and GRADC_TEST_NO_GRAD (docs/testing.md).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

/* ---- reading the table ---------------------------------------------------------- */

enum { MAX_ROWS = 32 };

typedef struct Row {
    char name[64], shape[64], result[8];
    long long checked, total, kinks;
    double abs_err, rel_err;
} Row;

/* The rows of the table in out_text (between the "parameter" header and the
 * first line that is not a row); their count. */
static int table_rows(Row *rows) {
    const char *p = strstr(out_text, "\nparameter ");
    assert_non_null(p);
    p = strchr(p + 1, '\n') + 1;
    int n = 0;
    while (*p && n < MAX_ROWS) {
        Row *r = &rows[n];
        const char *open = strchr(p, '['), *close = open ? strchr(open, ']') : NULL;
        const char *eol = strchr(p, '\n');
        if (!open || !close || !eol || open > eol)
            break;
        assert_int_equal(sscanf(p, "%63s", r->name), 1);
        snprintf(r->shape, sizeof r->shape, "%.*s", (int)(close - open + 1), open);
        if (sscanf(close + 1, " %lld/%lld %lld %lg %lg %7s", &r->checked, &r->total, &r->kinks,
                   &r->abs_err, &r->rel_err, r->result) != 6)
            break;
        n++;
        p = eol + 1;
    }
    return n;
}

static const Row *row_named(const Row *rows, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(rows[i].name, name))
            return &rows[i];
    fail_msg("no row for parameter '%s' in:\n%s", name, out_text);
    return NULL;
}

/* ---- every example passes ------------------------------------------------------------ */

/* The examples' parameters, in the model's order, as the table must list
 * them; an example not listed here is checked for exit status 0 and a
 * table that agrees with its summary line. */
static const struct {
    const char *file, *params;
} known[] = {
    {"examples/xor.nn", "W1 b1 W2 b2"},
    {"examples/iris.nn", "W1 b1 W2 b2"},
    {"examples/logreg.nn", "w b"},
    {"examples/perceptron.nn", "z.W z.b"},
    {"examples/simple_nn.nn", "W1 b1 W2 b2"},
    {"examples/sentiment.nn", "e.E logits.W logits.b"},
    {"examples/token_tagger.nn", "word.E before.E h.W h.b logits.W logits.b"},
    {"examples/mnist_mlp.nn", "h.W h.b logits.W logits.b"},
    {"examples/nplm.nn", "e.E hidden.W hidden.b logits.W logits.b logits_1.W"},
    {"examples/embed/circle.nn", "h.W h.b logits.W logits.b"},
};

static void test_check_passes_on_every_example(void **state) {
    (void)state;
    glob_t gl;
    assert_int_equal(glob(GRADC_SOURCE_DIR "/examples/*.nn", 0, NULL, &gl), 0);
    glob(GRADC_SOURCE_DIR "/examples/embed/*.nn", GLOB_APPEND, NULL, &gl);
    assert_true(gl.gl_pathc >= 10);
    int nknown = 0;
    for (size_t k = 0; k < gl.gl_pathc; k++) {
        const char *file = gl.gl_pathv[k] + strlen(GRADC_SOURCE_DIR) + 1;
        if (gradc("check %s --samples 24", file) != 0)
            fail_msg("gradc check %s failed:\n%s%s", file, out_text, err_text);
        Row rows[MAX_ROWS];
        int n = table_rows(rows);
        char summary[128];
        snprintf(summary, sizeof summary, "gradc check: ok: %d parameters,", n);
        assert_contains(out_text, summary);
        for (int i = 0; i < n; i++) {
            assert_string_equal(rows[i].result, "ok");
            long long want = rows[i].total < 24 ? rows[i].total : 24;
            assert_int_equal(rows[i].checked, want);
            assert_true(rows[i].rel_err <= 1e-6);
        }
        for (size_t e = 0; e < sizeof known / sizeof known[0]; e++) {
            if (strcmp(known[e].file, file) != 0)
                continue;
            nknown++;
            char names[512] = "";
            for (int i = 0; i < n; i++) {
                size_t len = strlen(names);
                if (len + strlen(rows[i].name) + 2 > sizeof names)
                    fail_msg("parameter names of %s longer than %zu bytes", file, sizeof names);
                if (i)
                    names[len++] = ' ';
                strcpy(names + len, rows[i].name);
            }
            assert_string_equal(names, known[e].params);
        }
    }
    assert_int_equal(nknown, (int)(sizeof known / sizeof known[0]));
    globfree(&gl);
}

/* The table's shapes and counts for mnist: a sample of the large matrix,
 * every element of the 10 biases. */
static void test_check_samples_large_parameters(void **state) {
    (void)state;
    assert_int_equal(gradc("check examples/mnist_mlp.nn --samples 10 --batch 8"), 0);
    assert_contains(out_text, "the first 8 of 10000 rows of examples/data/");
    Row rows[MAX_ROWS];
    assert_int_equal(table_rows(rows), 4);
    const Row *w = row_named(rows, 4, "h.W");
    assert_string_equal(w->shape, "[784, 256]");
    assert_int_equal(w->checked, 10);
    assert_int_equal(w->total, 784 * 256);
    const Row *b = row_named(rows, 4, "logits.b");
    assert_int_equal(b->checked, 10);
    assert_int_equal(b->total, 10);
}

/* ---- a broken rule is found -------------------------------------------------------------- */

/* xor's two sigmoid layers with the sigmoid rule scaled by 1.25: every
 * parameter's gradient is wrong, and b2's (one sigmoid between it and the
 * loss) by exactly 1.25. The same model with a rule it does not use broken
 * passes. */
static void test_check_fails_on_a_broken_gradient_rule(void **state) {
    (void)state;
    setenv("GRADC_TEST_BREAK_GRAD", "sigmoid", 1);
    int rc = gradc("check examples/xor.nn");
    unsetenv("GRADC_TEST_BREAK_GRAD");
    assert_int_equal(rc, 1);
    Row rows[MAX_ROWS];
    assert_int_equal(table_rows(rows), 4);
    for (int i = 0; i < 4; i++)
        assert_string_equal(rows[i].result, "FAIL");
    assert_contains(out_text, "gradc check: FAIL: 4 of 4 parameters");
    const char *worst = strstr(out_text, "\nb2: 1 of 1 checked elements differ; the worst, b2[0]");
    assert_non_null(worst);
    double analytic, numeric;
    const char *at = strstr(worst, "analytic ");
    assert_non_null(at);
    assert_int_equal(sscanf(at, "analytic %lg, numeric %lg", &analytic, &numeric), 2);
    assert_true(fabs(analytic / numeric - 1.25) < 1e-6);
    assert_contains(out_text, "\nW1: 8 of 8 checked elements differ; the worst, W1[");

    setenv("GRADC_TEST_BREAK_GRAD", "tanh", 1);
    rc = gradc("check examples/xor.nn");
    unsetenv("GRADC_TEST_BREAK_GRAD");
    assert_int_equal(rc, 0);
}

/* A broken relu in iris: W1 and b1 (behind the relu) fail, W2 and b2 pass. */
static void test_check_names_only_the_parameters_behind_the_broken_op(void **state) {
    (void)state;
    setenv("GRADC_TEST_BREAK_GRAD", "relu", 1);
    int rc = gradc("check examples/iris.nn");
    unsetenv("GRADC_TEST_BREAK_GRAD");
    assert_int_equal(rc, 1);
    Row rows[MAX_ROWS];
    assert_int_equal(table_rows(rows), 4);
    assert_string_equal(row_named(rows, 4, "W1")->result, "FAIL");
    assert_string_equal(row_named(rows, 4, "b1")->result, "FAIL");
    assert_string_equal(row_named(rows, 4, "W2")->result, "ok");
    assert_string_equal(row_named(rows, 4, "b2")->result, "ok");
    assert_contains(out_text, "gradc check: FAIL: 2 of 4 parameters");
}

/* ---- kinks ------------------------------------------------------------------------------- */

/* A zero-initialised layer before relu: every pre-activation is exactly 0,
 * where relu'(0) = 0 need not lie between the one-sided derivatives (the
 * rows' kinks meet). Seed 2 is such a case. Every element of W is a kink,
 * none a false alarm; v's gradient is exactly 0 (h = 0). */
static void test_check_passes_at_relu_kinks_and_counts_them(void **state) {
    (void)state;
    write_file("zrelu.nn", "input  x[B, 2]\ninput  y[B, 1]\nparam  W[2, 4] = 0\n"
                           "param  v[4, 1] ~ uniform(-1, 1)\nh      = relu(x @ W)\n"
                           "loss   = mse(h @ v, y)\n");
    for (int seed = 0; seed < 4; seed++) {
        if (gradc("check %s --seed %d", tmp("zrelu.nn"), seed) != 0)
            fail_msg("seed %d:\n%s%s", seed, out_text, err_text);
        assert_contains(out_text, "rows of random inputs");
        Row rows[MAX_ROWS];
        assert_int_equal(table_rows(rows), 2);
        const Row *w = row_named(rows, 2, "W");
        assert_int_equal(w->checked, 8);
        assert_int_equal(w->kinks, 8);
        assert_string_equal(w->result, "ok");
        const Row *v = row_named(rows, 2, "v");
        assert_int_equal(v->kinks, 0);
        assert_true(v->abs_err == 0);
        assert_contains(out_text, "gradc check: ok: 2 parameters, 12 elements checked (8 at kinks)");
    }
}

/* Ties of a max over an axis share the gradient evenly (torch.amax); abs
 * and leaky_relu at 0. All pass. */
static void test_check_passes_at_max_ties_and_abs_at_zero(void **state) {
    (void)state;
    write_file("ties.nn", "input  x[B, 3]\ninput  y[B] : int\nparam  a[3, 4] = 0\n"
                          "param  W[4, 2] ~ glorot\nparam  c[2, 4] = 1\nz = x @ a\n"
                          "t = max(z, axis = 1, keepdims = true) + max(c, axis = 0) + abs(z)"
                          " + leaky_relu(z, 0.1)\n"
                          "loss = cross_entropy(tanh(t @ W + z @ W), y)\n");
    assert_int_equal(gradc("check %s", tmp("ties.nn")), 0);
    Row rows[MAX_ROWS];
    assert_int_equal(table_rows(rows), 3);
    assert_int_equal(row_named(rows, 3, "a")->kinks, 12);
    assert_string_equal(row_named(rows, 3, "c")->result, "ok");
}

/* ---- weights, inputs, errors ----------------------------------------------------------- */

/* At trained weights the loss is lower than at the initial ones, and the
 * check still passes. */
static void test_check_at_trained_weights(void **state) {
    (void)state;
    assert_int_equal(gradc("check examples/xor.nn"), 0);
    double initial = NAN;
    const char *l = strstr(out_text, "\nloss ");
    assert_non_null(l);
    initial = strtod(l + 6, NULL);
    assert_int_equal(gradc("train examples/xor.nn -q --epochs 300 --save %s", tmp("xor.safetensors")),
                     0);
    assert_int_equal(gradc("check examples/xor.nn --weights %s", tmp("xor.safetensors")), 0);
    char want[600];
    snprintf(want, sizeof want, "weights from %s", tmp("xor.safetensors"));
    assert_contains(out_text, want);
    l = strstr(out_text, "\nloss ");
    assert_non_null(l);
    double trained = strtod(l + 6, NULL);
    assert_true(trained < initial / 2);

    assert_int_equal(gradc("check examples/xor.nn --weights %s", tmp("missing.safetensors")), 1);
    assert_contains(err_text, "missing.safetensors");
    assert_string_equal(out_text, "");
}

/* --random-inputs replaces the data; an int input nothing bounds cannot be
 * drawn at random. */
static void test_check_random_inputs(void **state) {
    (void)state;
    assert_int_equal(gradc("check examples/sentiment.nn --random-inputs --batch 5"), 0);
    assert_contains(out_text, "5 rows of random inputs");
    write_file("kint.nn", "input x[B, 1]\ninput k[B] : int\nparam w[1, 1] = 1\n"
                          "loss = mean(x @ w * k)\n");
    assert_int_equal(gradc("check %s", tmp("kint.nn")), 1);
    assert_contains(err_text, "input 'k' is an int input that no op bounds");
}

static void test_check_usage_and_user_errors(void **state) {
    (void)state;
    assert_int_equal(gradc("check --help"), 0);
    assert_contains(out_text, "--samples K");
    assert_int_equal(gradc("check"), 2);
    assert_int_equal(gradc("check examples/xor.nn --bogus"), 2);
    assert_contains(err_text, "unknown option '--bogus'");
    assert_int_equal(gradc("check examples/xor.nn --eps 0"), 2);
    assert_contains(err_text, "--eps expects a number in (0, 0.1], got '0'");
    assert_int_equal(gradc("check examples/xor.nn --tol -1"), 2);
    assert_int_equal(gradc("check examples/xor.nn --samples 0"), 2);
    assert_int_equal(gradc("check examples/xor.nn --batch"), 2);
    assert_int_equal(gradc("check examples/xor.nn examples/iris.nn"), 2);
    write_file("noloss.nn", "input x[B, 1]\nparam w[1, 1] = 0\noutput y = x @ w\n");
    assert_int_equal(gradc("check %s", tmp("noloss.nn")), 1);
    assert_contains(err_text, "the model has no 'loss = ...' statement");
    assert_int_equal(gradc("check no/such.nn"), 1);
}

/* ---- derivative coverage --------------------------------------------------------------- */

/* Two ops without a rule on two lines (tanh twice on its line: each use),
 * and one more use off the path to the loss (not reported): all at once,
 * exit status 1, for train and check alike. */
static void test_every_op_without_a_rule_is_reported_at_once(void **state) {
    (void)state;
    write_file("norule.csv", "a,b,c\n0,1,1\n1,0,1\n");
    write_file("norule.nn", "input x[B, 2]\ninput y[B, 1]\nparam W[2, 1] ~ glorot\n"
                            "h = tanh(x @ W) * tanh(x @ W + 1)\n"
                            "z = exp(h)\n"
                            "output p = exp(x)\n"
                            "loss = mse(z, y)\n"
                            "train {\n  data = csv(\"norule.csv\", x = [\"a\", \"b\"], y = \"c\")\n}\n");
    setenv("GRADC_TEST_NO_GRAD", "tanh,exp", 1);
    int rc_check = gradc("check %s", tmp("norule.nn"));
    char *check_err = strdup(err_text);
    int rc_train = gradc("train %s", tmp("norule.nn"));
    unsetenv("GRADC_TEST_NO_GRAD");
    assert_int_equal(rc_check, 1);
    assert_int_equal(rc_train, 1);
    char want[800];
    snprintf(want, sizeof want,
             "%s:4:5: error: 'tanh' has no gradient rule; gradc cannot train through it\n"
             "    4 | h = tanh(x @ W) * tanh(x @ W + 1)\n"
             "      |     ^~~~~~~~~~~\n"
             "%s:4:19: error: 'tanh' has no gradient rule; gradc cannot train through it\n",
             tmp("norule.nn"), tmp("norule.nn"));
    assert_contains(check_err, want);
    snprintf(want, sizeof want, "%s:5:5: error: 'exp' has no gradient rule", tmp("norule.nn"));
    assert_contains(check_err, want);
    snprintf(want, sizeof want, "%s:6:", tmp("norule.nn"));
    assert_null(strstr(check_err, want)); /* exp(x) does not lead to the loss */
    assert_string_equal(err_text, check_err);
    free(check_err);
    /* Without the hook the same model trains through every op. */
    assert_int_equal(gradc("check %s", tmp("norule.nn")), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_passes_on_every_example),
        cmocka_unit_test(test_check_samples_large_parameters),
        cmocka_unit_test(test_check_fails_on_a_broken_gradient_rule),
        cmocka_unit_test(test_check_names_only_the_parameters_behind_the_broken_op),
        cmocka_unit_test(test_check_passes_at_relu_kinks_and_counts_them),
        cmocka_unit_test(test_check_passes_at_max_ties_and_abs_at_zero),
        cmocka_unit_test(test_check_at_trained_weights),
        cmocka_unit_test(test_check_random_inputs),
        cmocka_unit_test(test_check_usage_and_user_errors),
        cmocka_unit_test(test_every_op_without_a_rule_is_reported_at_once),
    };
    return cli_main("gradc-check", tests);
}
