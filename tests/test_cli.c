/* test_cli.c: the gradc command as a user runs it: exit statuses, messages,
 * the bundled examples trained to their targets (gradc grad's tests are in
 * test_cli_grad.c). Runs the built binary (GRADC_BINARY) from the
 * source root. */
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

static void test_no_arguments_is_a_usage_error(void **state) {
    (void)state;
    assert_int_equal(gradc("%s", ""), 2);
    assert_non_null(strstr(err_text, "usage: gradc <command>"));
}

static void test_unknown_command_suggests_the_closest(void **state) {
    (void)state;
    assert_int_equal(gradc("trian examples/xor.nn"), 2);
    assert_non_null(strstr(err_text, "gradc: unknown command 'trian'; did you mean 'train'?"));
}

static void test_bad_option_values_are_usage_errors(void **state) {
    (void)state;
    assert_int_equal(gradc("train examples/xor.nn --epochs ten"), 2);
    assert_non_null(strstr(err_text, "--epochs expects a positive integer, got 'ten'"));
    assert_int_equal(gradc("train examples/xor.nn --lr"), 2);
    assert_int_equal(gradc("train examples/xor.nn --bogus"), 2);
    assert_non_null(strstr(err_text, "unknown option '--bogus'"));
    assert_int_equal(gradc("train"), 2);
}

static void test_help_describes_the_options(void **state) {
    (void)state;
    assert_int_equal(gradc("--help"), 0);
    assert_non_null(strstr(out_text, "train M.nn"));
    assert_int_equal(gradc("train --help"), 0);
    assert_non_null(strstr(out_text, "--log F.jsonl"));
    assert_int_equal(gradc("grad --help"), 0);
}

static void test_missing_model_file_is_a_user_error(void **state) {
    (void)state;
    assert_int_equal(gradc("train no/such/model.nn"), 1);
    assert_string_equal(err_text, "gradc: error: cannot read 'no/such/model.nn': No such file or directory\n");
}

static void test_bad_model_prints_located_diagnostic(void **state) {
    (void)state;
    write_file("bad.nn", "input x[B, 2]\nparam W[2, 3] ~ glorot\nh = relu(x @ W2)\n");
    char args[600];
    snprintf(args, sizeof args, "grad %s/bad.nn", tmpdir);
    assert_int_equal(gradc("%s", args), 1);
    char want[1024];
    snprintf(want, sizeof want,
             "%s/bad.nn:3:14: error: undefined name 'W2'; did you mean 'W'?\n"
             "    3 | h = relu(x @ W2)\n"
             "      |              ^~\n",
             tmpdir);
    assert_string_equal(err_text, want);
}

static void test_missing_data_file_points_at_the_path(void **state) {
    (void)state;
    write_file("nodata.nn", "input x[B, 1]\ninput y[B, 1]\nparam w[1, 1] = 0\n"
                            "loss = mse(x @ w, y)\n"
                            "train {\n  data = csv(\"missing.csv\", x = 0, y = 1)\n}\n");
    char args[600];
    snprintf(args, sizeof args, "train %s/nodata.nn", tmpdir);
    assert_int_equal(gradc("%s", args), 1);
    assert_non_null(strstr(err_text, "nodata.nn:6:14: error: cannot open data file 'missing.csv'"));
    assert_non_null(strstr(err_text, "No such file or directory"));
}

static void test_unknown_optimizer_suggests_the_closest(void **state) {
    (void)state;
    write_file("opt.csv", "x,y\n1,2\n");
    write_file("opt.nn", "input x[B, 1]\ninput y[B, 1]\nparam w[1, 1] = 1\nloss = mse(x @ w, y)\n"
                         "train {\n  data = csv(\"opt.csv\", x = 0, y = 1)\n  optimizer = sdg(lr = 0.1)\n}\n");
    char args[600], want[1024];
    snprintf(args, sizeof args, "train %s/opt.nn", tmpdir);
    assert_int_equal(gradc("%s", args), 1);
    snprintf(want, sizeof want,
             "%s/opt.nn:7:15: error: unknown optimizer 'sdg'; did you mean 'sgd'?\n"
             "    7 |   optimizer = sdg(lr = 0.1)\n"
             "      |               ^~~\n",
             tmpdir);
    assert_string_equal(err_text, want);
}

static void test_model_without_loss_cannot_train(void **state) {
    (void)state;
    write_file("noloss.nn", "input x[B, 1]\nparam w[1, 1] = 0\noutput y = x @ w\n");
    char args[600];
    snprintf(args, sizeof args, "train %s/noloss.nn", tmpdir);
    assert_int_equal(gradc("%s", args), 1);
    assert_non_null(strstr(err_text, "the model has no 'loss = ...' statement"));
}

/* The target: XOR's binary cross-entropy falls below 0.05. */
static void test_xor_example_trains_below_0_05(void **state) {
    (void)state;
    char args[800];
    snprintf(args, sizeof args, "train examples/xor.nn -q --log %s/xor.jsonl --save %s/xor.safetensors",
             tmpdir, tmpdir);
    assert_int_equal(gradc("%s", args), 0);
    assert_string_equal(out_text, ""); /* -q */
    char log[512];
    snprintf(log, sizeof log, "%s/xor.jsonl", tmpdir);
    assert_true(last_log_value(log, "loss") < 0.05);
    assert_true(last_log_value(log, "accuracy") == 1);
    assert_true(last_log_value(log, "epoch") == 2000);
    char w[512];
    snprintf(w, sizeof w, "%s/xor.safetensors", tmpdir);
    assert_int_equal(access(w, R_OK), 0);
}

/* The target: Iris reaches at least 95% training accuracy, and the
 * held-out accuracy of the example as shipped is reported. */
static void test_iris_example_reaches_95_percent(void **state) {
    (void)state;
    char args[800], log[512];
    snprintf(args, sizeof args, "train examples/iris.nn -q --split 0 --log %s/iris.jsonl --save %s/iris.safetensors",
             tmpdir, tmpdir);
    assert_int_equal(gradc("%s", args), 0);
    snprintf(log, sizeof log, "%s/iris.jsonl", tmpdir);
    assert_true(last_log_value(log, "accuracy") >= 0.95);
    assert_true(isnan(last_log_value(log, "val_loss")));

    snprintf(args, sizeof args, "train examples/iris.nn --log %s/iris2.jsonl --save %s/iris.safetensors",
             tmpdir, tmpdir);
    assert_int_equal(gradc("%s", args), 0);
    assert_non_null(strstr(out_text, "epoch 600/600"));
    assert_non_null(strstr(out_text, "val_loss"));
    snprintf(log, sizeof log, "%s/iris2.jsonl", tmpdir);
    assert_true(last_log_value(log, "accuracy") >= 0.95);
    assert_false(isnan(last_log_value(log, "val_loss")));
}

/* The quick new examples reach their README figures as shipped (MNIST and
 * the language model are examples/check.sh's). */
static void test_small_examples_reach_their_targets(void **state) {
    (void)state;
    static const struct {
        const char *name;
        double accuracy;
    } examples[] = {{"logreg", 1}, {"perceptron", 1}, {"sentiment", 0.95}, {"token_tagger", 0.95}};
    for (size_t i = 0; i < sizeof examples / sizeof examples[0]; i++) {
        char args[800], log[512];
        snprintf(args, sizeof args, "train examples/%s.nn -q --log %s/%s.jsonl --save %s/%s.st",
                 examples[i].name, tmpdir, examples[i].name, tmpdir, examples[i].name);
        assert_int_equal(gradc("%s", args), 0);
        snprintf(log, sizeof log, "%s/%s.jsonl", tmpdir, examples[i].name);
        double acc = last_log_value(log, "accuracy");
        if (!(acc >= examples[i].accuracy))
            fail_msg("%s: held-out accuracy %g, below %g", examples[i].name, acc,
                     examples[i].accuracy);
    }
}

/* gradc grad on the language model shows the embedding table's gradient
 * as a scatter-add of the incoming rows. */
static void test_nplm_gradient_of_embedding_is_scatter_add(void **state) {
    (void)state;
    assert_int_equal(gradc("grad examples/nplm.nn"), 0);
    assert_non_null(strstr(out_text, "de.E       = scatter_add"));
    assert_non_null(strstr(out_text, "adjoint of gather at examples/nplm.nn:"));
    assert_non_null(strstr(out_text, ": scatter_add(g, ids): dtable[ids[i]] += g[i]\n"));
}

/* The same seed gives the same training, bit for bit. */
static void test_same_seed_same_log(void **state) {
    (void)state;
    char args[800], a[512], b[512];
    snprintf(args, sizeof args, "train examples/iris.nn -q --epochs 5 --log %s/s1.jsonl --save %s/s.safetensors", tmpdir, tmpdir);
    assert_int_equal(gradc("%s", args), 0);
    snprintf(args, sizeof args, "train examples/iris.nn -q --epochs 5 --log %s/s2.jsonl --save %s/s.safetensors", tmpdir, tmpdir);
    assert_int_equal(gradc("%s", args), 0);
    snprintf(a, sizeof a, "%s/s1.jsonl", tmpdir);
    snprintf(b, sizeof b, "%s/s2.jsonl", tmpdir);
    assert_true(last_log_value(a, "loss") == last_log_value(b, "loss"));
    assert_true(last_log_value(a, "val_loss") == last_log_value(b, "val_loss"));
}

/* Adam for 4 epochs straight, or 2, a checkpoint, and --resume to 4: the
 * same checkpoint, byte for byte (weights, Adam's states, step, RNG). */
static void test_resume_continues_exactly(void **state) {
    (void)state;
    const char *opt = "--optimizer \"adam(lr = 0.01)\" -q";
    assert_int_equal(gradc("train examples/iris.nn %s --epochs 4 --save %s", opt, tmp("a.st")), 0);
    assert_int_equal(gradc("train examples/iris.nn %s --epochs 2 --save %s", opt, tmp("b.st")), 0);
    assert_int_equal(gradc("train examples/iris.nn %s --epochs 4 --resume %s --save %s", opt,
                           tmp("b.st"), tmp("c.st")),
                     0);
    long na, nc;
    char *a = file_bytes(tmp("a.st"), &na), *c = file_bytes(tmp("c.st"), &nc);
    assert_non_null(a);
    assert_non_null(c);
    assert_int_equal(na, nc);
    assert_memory_equal(a, c, (size_t)na);
    assert_non_null(memmem(a, (size_t)na, "opt.m.W1", 8));
    free(a);
    free(c);
    assert_int_equal(gradc("train examples/iris.nn --weights %s --resume %s", tmp("a.st"),
                           tmp("b.st")),
                     2);
}

/* The learning rate of each epoch's last step, from the JSON Lines log:
 * 4 rows in batches of 1 are 4 steps an epoch. */
static void test_schedules_are_logged_per_epoch(void **state) {
    (void)state;
    write_file("four.csv", "x,y\n1,2\n2,4\n3,6\n4,8\n");
    write_file("sched.nn", "input x[B, 1]\n"
                           "input y[B, 1]\n"
                           "param w[1, 1] = 0\n"
                           "loss = mse(x @ w, y)\n"
                           "train {\n"
                           "  data = csv(\"four.csv\", x = \"x\", y = \"y\")\n"
                           "  batch = 1\n"
                           "  epochs = 5\n"
                           "  optimizer = sgd(lr = 0.01 * 0.5 ^ floor(epoch / 2))\n"
                           "}\n");
    struct {
        const char *opt;
        double lr[5];
    } cases[] = {
        {NULL, {0.01, 0.01, 0.005, 0.005, 0.0025}},
        {"sgd(lr = 0.01 * min(1, t / 10))", {0.004, 0.008, 0.01, 0.01, 0.01}},
    };
    for (int k = 0; k < 2; k++) {
        if (cases[k].opt)
            assert_int_equal(gradc("train %s -q --log %s --save %s --optimizer \"%s\"",
                                   tmp("sched.nn"), tmp("s.jsonl"), tmp("s.st"), cases[k].opt),
                             0);
        else
            assert_int_equal(gradc("train %s -q --log %s --save %s", tmp("sched.nn"),
                                   tmp("s.jsonl"), tmp("s.st")),
                             0);
        char *log = read_all(tmp("s.jsonl"));
        const char *line = log;
        for (int e = 0; e < 5; e++) {
            const char *lr = strstr(line, "\"lr\":");
            assert_non_null(lr);
            double v = strtod(lr + 5, NULL);
            if (fabs(v - cases[k].lr[e]) > 1e-9)
                fail_msg("%s, epoch %d: lr %g, expected %g", cases[k].opt ? cases[k].opt : "sched.nn",
                         e + 1, v, cases[k].lr[e]);
            line = strchr(lr, '\n');
            assert_non_null(line);
        }
        free(log);
    }
}

/* gradc emit: the kernels (the Adam update of each parameter is one loop
 * storing it and its two states), the LLVM IR, the assembly. */
static void test_emit_prints_kernels_llvm_and_assembly(void **state) {
    (void)state;
    assert_int_equal(gradc("emit examples/iris.nn --optimizer adam"), 0);
    assert_non_null(strstr(out_text, "update of W1: 3 stores) -> "));
    assert_non_null(strstr(out_text, "opt.m.W1, "));
    assert_non_null(strstr(out_text, "# program train"));
    assert_int_equal(gradc("emit examples/iris.nn --llvm"), 0);
    assert_non_null(strstr(out_text, "define void @iris_train(ptr"));
    assert_int_equal(gradc("emit examples/iris.nn --asm"), 0);
    assert_non_null(strstr(out_text, "iris_train:"));
    assert_int_equal(gradc("emit examples/iris.nn --bogus"), 2);
    assert_int_equal(gradc("emit examples/iris.nn --optimizer \"adam(lr = )\""), 1);
    assert_non_null(strstr(err_text, "--optimizer:1:11: error: expected an expression"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_arguments_is_a_usage_error),
        cmocka_unit_test(test_unknown_command_suggests_the_closest),
        cmocka_unit_test(test_bad_option_values_are_usage_errors),
        cmocka_unit_test(test_help_describes_the_options),
        cmocka_unit_test(test_missing_model_file_is_a_user_error),
        cmocka_unit_test(test_bad_model_prints_located_diagnostic),
        cmocka_unit_test(test_missing_data_file_points_at_the_path),
        cmocka_unit_test(test_unknown_optimizer_suggests_the_closest),
        cmocka_unit_test(test_model_without_loss_cannot_train),
        cmocka_unit_test(test_xor_example_trains_below_0_05),
        cmocka_unit_test(test_iris_example_reaches_95_percent),
        cmocka_unit_test(test_small_examples_reach_their_targets),
        cmocka_unit_test(test_resume_continues_exactly),
        cmocka_unit_test(test_schedules_are_logged_per_epoch),
        cmocka_unit_test(test_emit_prints_kernels_llvm_and_assembly),
        cmocka_unit_test(test_nplm_gradient_of_embedding_is_scatter_add),
        cmocka_unit_test(test_same_seed_same_log),
    };
    return cli_main("gradc-cli", tests);
}
