/* test_cli_numerics.c: gradc train --check-numerics as a user runs it: a
 * log that reaches 0 stops training at the right step with the log's line
 * and its input's figures; a gradient that becomes infinite names the
 * adjoint and the forward op's line; an update that overflows names the
 * rule and the parameter; the last good checkpoint is kept byte for byte;
 * without the flag the run fails as it always did; a model that stays
 * finite trains to the same bits with the flag as without it. Runs the
 * built binary (GRADC_BINARY) from the source root.
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
#include <unistd.h>

#include "cli.h"

#define assert_lacks(hay, needle)                                                           \
    do {                                                                                    \
        if (strstr((hay), (needle)))                                                        \
            fail_msg("did not expect \"%s\" in \"%s\"", (needle), (hay));                   \
    } while (0)

/* Four rows, all but the last labelled 1. */
static const char lr_csv[] = "x,y\n1,1\n2,1\n0.5,1\n-0.001,0\n";

/* Logistic regression by hand. The first step (p = 0.5 everywhere) moves w
 * and b to about 1000 * 0.5: then x @ w + b > 17 for every row, sigmoid
 * rounds p to exactly 1 in float32, log(p) is 0 and log(1 - p) = log(0) =
 * -inf on line 8 (and never on line 7): the second step fails. One batch
 * per epoch, so step 2 is epoch 2. */
static const char lr_nn[] = "# logistic regression by hand, with a step far too large\n"
                            "input x[B, 1]\n"
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
                            "  seed = 1\n"
                            "}\n";

static void write_lr_model(void) {
    write_file("lr.csv", lr_csv);
    write_file("lr.nn", lr_nn);
}

static void test_log_of_zero_stops_at_its_line_and_keeps_the_checkpoint(void **state) {
    (void)state;
    write_lr_model();
    /* The checkpoint of epoch 1, as a run of one epoch saves it. */
    assert_int_equal(
        gradc("train %s --epochs 1 -q --save %s", tmp("lr.nn"), tmp("ref.safetensors")), 0);
    int rc = gradc("train %s --check-numerics --save-every 1 --save %s", tmp("lr.nn"),
                   tmp("lr.safetensors"));
    assert_int_equal(rc, 1);
    assert_contains(out_text, "epoch 1/5");
    assert_lacks(out_text, "epoch 2/5");
    assert_contains(err_text, "gradc: error: --check-numerics: step 2 (epoch 2) made a NaN or Inf");
    char want[1024];
    snprintf(want, sizeof want,
             "%s:8:6: note: -inf first appeared in the forward pass: log at %s:8 stored it "
             "(4 of 4 values)\n"
             "    8 | lq = log(1 - p)\n"
             "      |      ^~~~~~~~~~\n",
             tmp("lr.nn"), tmp("lr.nn"));
    assert_contains(err_text, want);
    /* Its one input, 1 - p, is exactly 0 in every row. */
    assert_contains(err_text, "= sub [B, 1]: min 0, max 0, mean 0; 4 values, none NaN or Inf");
    snprintf(want, sizeof want, "%s:7:", tmp("lr.nn"));
    assert_lacks(err_text, want);
    snprintf(want, sizeof want, "gradc: kept the last good checkpoint %s (epoch 1, step 1)",
             tmp("lr.safetensors"));
    assert_contains(err_text, want);
    assert_lacks(out_text, "saved weights");
    assert_same_file(tmp("lr.safetensors"), tmp("ref.safetensors"));
}

static void test_no_checkpoint_is_written_when_none_was_due(void **state) {
    (void)state;
    write_lr_model();
    assert_int_equal(gradc("train %s --check-numerics -q --save %s", tmp("lr.nn"),
                           tmp("none.safetensors")),
                     1);
    assert_contains(err_text, "gradc: no checkpoint was written in this run (none was due "
                              "before step 2)");
    assert_int_equal(access(tmp("none.safetensors"), F_OK), -1);
}

/* Without the flag: no check, the NaN loss of step 2 ends the run as it
 * always did (rt_train refuses to go on), with no checkpoint at the end. */
static void test_without_the_flag_the_run_fails_as_before(void **state) {
    (void)state;
    write_lr_model();
    assert_int_equal(
        gradc("train %s --epochs 1 -q --save %s", tmp("lr.nn"), tmp("ref.safetensors")), 0);
    int rc = gradc("train %s --save-every 1 --save %s", tmp("lr.nn"), tmp("plain.safetensors"));
    assert_int_equal(rc, 1);
    assert_contains(err_text, "gradc: error: loss became nan at epoch 2, step 2");
    assert_lacks(err_text, "check-numerics");
    assert_lacks(err_text, "note:");
    assert_same_file(tmp("plain.safetensors"), tmp("ref.safetensors"));
}

/* sqrt(|x @ w|) at w = 0: the forward value is 0, finite; its adjoint
 * g / (2 sqrt(x)) is +inf in the first step. */
static void test_infinite_gradient_names_the_adjoint_and_the_forward_line(void **state) {
    (void)state;
    write_file("lr.csv", lr_csv);
    write_file("sq.nn", "input x[B, 1]\n"
                        "input y[B, 1]\n"
                        "param w[1, 1] = 0\n"
                        "r = abs(x @ w)\n"
                        "s = sqrt(r)\n"
                        "loss = mean(s) + mse(x @ w, y)\n"
                        "train {\n"
                        "  data = csv(\"lr.csv\", x = \"x\", y = \"y\")\n"
                        "  optimizer = adam(lr = 0.1)\n"
                        "  batch = 4\n"
                        "  epochs = 3\n"
                        "}\n");
    assert_int_equal(gradc("train %s --check-numerics -q --save %s", tmp("sq.nn"),
                           tmp("sq.safetensors")),
                     1);
    assert_contains(err_text, "step 1 (epoch 1) made a NaN or Inf");
    char want[1024];
    snprintf(want, sizeof want,
             "%s:5:5: note: +inf first appeared in the backward pass (gradients): the adjoint of "
             "sqrt at %s:5 stored it (4 of 4 values)\n"
             "    5 | s = sqrt(r)\n",
             tmp("sq.nn"), tmp("sq.nn"));
    assert_contains(err_text, want);
    snprintf(want, sizeof want, "adjoint of sqrt at %s:5: g / (2 * sqrt(x))\n", tmp("sq.nn"));
    assert_contains(err_text, want);
    /* The upstream gradient (1/4, from the mean) and 2 sqrt(r) = 0. */
    assert_contains(err_text, "min 0.25, max 0.25, mean 0.25; 4 values, none NaN or Inf");
    assert_contains(err_text, "min 0, max 0, mean 0; 4 values, none NaN or Inf");
}

/* lr * g overflows in the update kernel: the update is named, with the
 * parameter's declaration: b's, whose gradient is complete first, so its
 * update runs first. The unfused re-run reproduces it only because the
 * fast program put b back (with b = -inf the forward pass would fail
 * first). */
static void test_overflowing_update_names_the_rule_and_the_parameter(void **state) {
    (void)state;
    write_file("lr.csv", lr_csv);
    write_file("up.nn", "input x[B, 1]\n"
                        "input y[B, 1]\n"
                        "param w[1, 1] = 0\n"
                        "param b[1] = 0\n"
                        "loss = mse(x @ w + b, y * 1000)\n"
                        "train {\n"
                        "  data = csv(\"lr.csv\", x = \"x\", y = \"y\")\n"
                        "  optimizer = sgd(lr = 1e36)\n"
                        "  batch = 4\n"
                        "}\n");
    assert_int_equal(gradc("train %s --check-numerics -q --save %s", tmp("up.nn"),
                           tmp("up.safetensors")),
                     1);
    char want[1024];
    snprintf(want, sizeof want,
             "%s:4:7: note: -inf first appeared in the optimizer update: the sgd update of b at "
             "%s:4 stored it (1 of 1 values)\n",
             tmp("up.nn"), tmp("up.nn"));
    assert_contains(err_text, want);
    assert_contains(err_text, "lr = hyper []: min 9.99999962e+35");
}

/* The fallback when the unfused run does not reproduce (forced by the
 * test hook): the fused kernel, the ops in it, what it read. */
static void test_unreproduced_value_reports_the_fused_kernel(void **state) {
    (void)state;
    write_lr_model();
    setenv("GRADC_TEST_NUMERICS_NO_REPRO", "1", 1);
    int rc = gradc("train %s --check-numerics -q --save %s", tmp("lr.nn"), tmp("f.safetensors"));
    unsetenv("GRADC_TEST_NUMERICS_NO_REPRO");
    assert_int_equal(rc, 1);
    assert_contains(err_text, "the same step run again without fusion made no NaN or Inf");
    assert_contains(err_text, "of the train step stored it, in the forward pass");
    assert_contains(err_text, "with the ops fused into it");
    assert_contains(err_text, "lq         = log");
    assert_contains(err_text, "lp         = log");
    assert_contains(err_text, "what it read, in the step that failed:");
}

/* The checks change no result: the same checkpoint, bit for bit, with
 * and without the flag (XOR; SGD logistic regression; MNIST's MLP with
 * dropout, Adam and an lr schedule). */
static void test_finite_models_train_to_the_same_bits(void **state) {
    (void)state;
    const char *runs[] = {"examples/xor.nn --epochs 20", "examples/logreg.nn --epochs 20",
                          "examples/mnist_mlp.nn --steps 20"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(gradc("train %s -q --save %s", runs[i], tmp("a.safetensors")), 0);
        assert_int_equal(gradc("train %s -q --check-numerics --save %s", runs[i],
                               tmp("b.safetensors")),
                         0);
        assert_same_file(tmp("a.safetensors"), tmp("b.safetensors"));
    }
}

/* gradc train --help lists the flag. */
static void test_help_mentions_the_flag(void **state) {
    (void)state;
    assert_int_equal(gradc("train --help"), 0);
    assert_contains(out_text, "--check-numerics");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_of_zero_stops_at_its_line_and_keeps_the_checkpoint),
        cmocka_unit_test(test_no_checkpoint_is_written_when_none_was_due),
        cmocka_unit_test(test_without_the_flag_the_run_fails_as_before),
        cmocka_unit_test(test_infinite_gradient_names_the_adjoint_and_the_forward_line),
        cmocka_unit_test(test_overflowing_update_names_the_rule_and_the_parameter),
        cmocka_unit_test(test_unreproduced_value_reports_the_fused_kernel),
        cmocka_unit_test(test_finite_models_train_to_the_same_bits),
        cmocka_unit_test(test_help_mentions_the_flag),
    };
    return cli_main("gradc-numerics", tests);
}
