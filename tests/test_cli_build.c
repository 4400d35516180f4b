/* test_cli_build.c: `gradc build M.nn -o PROG`, the native training
 * program, as a user runs it: it trains bit for bit as gradc train does
 * (whole checkpoint files equal, Iris and MNIST), needs no LLVM, runs when
 * copied alone into another directory, predicts and evaluates, refuses what
 * is compiled in (--optimizer, a larger --batch) and a CPU without its
 * target's features, and the portable x86-64-v3 build runs. Runs the built
 * gradc (GRADC_BINARY) from the source root, and the programs it builds
 * from the temporary directory. */
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
#include "driver/run.h"

/* Run `cmd` (a shell command) in dir, stdout and stderr into out_text and
 * err_text; the exit status. */
static int run_in(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run_in(const char *dir, const char *fmt, ...) {
    char args[1500], cmd[2400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "cd '%s' && ( %s ) >'%s/out' 2>'%s/err' </dev/null", dir, args,
             tmpdir, tmpdir);
    int st = system(cmd);
    free(out_text);
    free(err_text);
    out_text = read_all(tmp("out"));
    err_text = read_all(tmp("err"));
    assert_true(WIFEXITED(st)); /* never a crash */
    return WEXITSTATUS(st);
}

/* examples/NAME.nn built once into the temporary directory (extra: more
 * gradc build options); the program's path. */
static const char *program(const char *name, const char *target) {
    static char paths[4][600];
    static char keys[4][64];
    char key[64];
    snprintf(key, sizeof key, "%s-%s", name, target);
    int k = 0;
    for (; k < 4 && keys[k][0]; k++)
        if (!strcmp(keys[k], key))
            return paths[k];
    assert_true(k < 4);
    snprintf(keys[k], sizeof keys[k], "%s", key);
    snprintf(paths[k], sizeof paths[k], "%s/%s", tmpdir, key);
    assert_int_equal(gradc("build examples/%s.nn -o %s --target %s", name, paths[k], target), 0);
    assert_contains(out_text, "gradc: built ");
    assert_int_equal(access(paths[k], X_OK), 0);
    return paths[k];
}

static void test_built_iris_trains_bit_for_bit_as_gradc_train(void **state) {
    (void)state;
    const char *prog = program("iris", "native");
    assert_int_equal(run_in(tmpdir, "'%s' train --epochs 5 --seed 3 --threads 1 --save A.st",
                            prog),
                     0);
    assert_contains(out_text, "epoch 5/5  loss");
    assert_contains(out_text, "saved weights to A.st");
    assert_int_equal(gradc("train examples/iris.nn --epochs 5 --seed 3 --threads 1 -q --save %s",
                           tmp("B.st")),
                     0);
    assert_same_file(tmp("A.st"), tmp("B.st"));
    /* --lr sets the rule's constant learning rate as gradc train's does. */
    assert_int_equal(run_in(tmpdir, "'%s' train --epochs 2 --lr 0.05 --threads 1 -q --save "
                                    "C.st", prog),
                     0);
    assert_int_equal(gradc("train examples/iris.nn --epochs 2 --lr 0.05 --threads 1 -q --save %s",
                           tmp("D.st")),
                     0);
    assert_same_file(tmp("C.st"), tmp("D.st"));
    /* The program's checkpoint is gradc's: gradc resumes it. */
    assert_int_equal(gradc("train examples/iris.nn --epochs 6 --threads 1 -q --resume %s --save "
                           "%s", tmp("A.st"), tmp("E.st")),
                     0);
}

static void test_built_mnist_trains_bit_for_bit_as_gradc_train(void **state) {
    (void)state;
    const char *prog = program("mnist_mlp", "native");
    /* Dropout, shuffling, the held-out split and Adam's schedule included. */
    assert_int_equal(run_in(tmpdir, "'%s' train --epochs 2 --threads 1 -q --save M1.st", prog),
                     0);
    assert_int_equal(gradc("train examples/mnist_mlp.nn --epochs 2 --threads 1 -q --save %s",
                           tmp("M2.st")),
                     0);
    assert_same_file(tmp("M1.st"), tmp("M2.st"));
    /* A learning-rate schedule is compiled in: --lr cannot change it. */
    assert_int_equal(run_in(tmpdir, "'%s' train --epochs 1 --lr 0.1 -q", prog), 1);
    assert_contains(err_text, "--lr: the learning rate of this program's update rule is not a "
                              "constant");
}

static void test_program_needs_no_llvm_and_runs_alone_elsewhere(void **state) {
    (void)state;
    const char *prog = program("iris", "native");
    assert_int_equal(run_in(tmpdir, "ldd '%s'", prog), 0);
    assert_contains(out_text, "libopenblas");
    if (strstr(out_text, "LLVM"))
        fail_msg("ldd lists LLVM: %s", out_text);
    /* Alone in a fresh directory: the data path is absolute. */
    assert_int_equal(run_in(tmpdir, "mkdir alone && cp '%s' alone/iris_train", prog), 0);
    char alone[600];
    snprintf(alone, sizeof alone, "%s/alone", tmpdir);
    assert_int_equal(run_in(alone, "./iris_train train --epochs 1 -q --save x"), 0);
    assert_string_equal(out_text, "");
    assert_int_equal(run_in(alone, "./iris_train predict --weights x"), 0);
    assert_contains(out_text, "probs[0],probs[1],probs[2]\n");
    int lines = 0;
    for (const char *p = out_text; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 151);
    assert_int_equal(run_in(alone, "./iris_train predict --weights x --top 1 --batch 7"), 0);
    assert_contains(out_text, "top1,p1\nIris-");
    assert_int_equal(run_in(alone, "./iris_train eval --weights x"), 0);
    assert_contains(out_text, "iris_train: ");
    assert_contains(out_text, "eval program built for native; weights x;");
    assert_contains(out_text, "\nrows      150\nloss      ");
    assert_contains(out_text, "accuracy  ");
    /* Without --save, the checkpoint goes where gradc's would: <model>.safetensors. */
    assert_int_equal(run_in(alone, "./iris_train train --epochs 1 -q && test -f iris.safetensors"),
                     0);
}

static void test_program_help_and_usage_errors(void **state) {
    (void)state;
    const char *prog = program("iris", "native");
    assert_int_equal(run_in(tmpdir, "'%s' --help", prog), 0);
    assert_contains(out_text, "train      train the model");
    assert_contains(out_text, "examples/iris.nn");
    assert_int_equal(run_in(tmpdir, "'%s' train --help", prog), 0);
    assert_contains(out_text, "--save-every N");
    assert_contains(out_text, "--batch N       mini-batch size, at most 16");
    if (strstr(out_text, "--optimizer R  "))
        fail_msg("a built program's help offers --optimizer");
    assert_int_equal(run_in(tmpdir, "'%s' predict --help", prog), 0);
    assert_contains(out_text, "--top K");
    assert_int_equal(run_in(tmpdir, "'%s' --version", prog), 0);
    assert_contains(out_text, "built by gradc " GRADC_VERSION " for native");
    assert_int_equal(run_in(tmpdir, "'%s'", prog), 2);
    assert_int_equal(run_in(tmpdir, "'%s' fly", prog), 2);
    assert_contains(err_text, "unknown command 'fly'");
    assert_int_equal(run_in(tmpdir, "'%s' train --optimizer adam", prog), 2);
    assert_contains(err_text, "--optimizer: the optimizer is compiled in; rebuild to change it");
    assert_int_equal(run_in(tmpdir, "'%s' train --batch 17", prog), 2);
    assert_contains(err_text, "--batch expects an integer from 1 to 16");
    assert_int_equal(run_in(tmpdir, "'%s' train examples/iris.nn", prog), 2);
    assert_contains(err_text, "unexpected argument 'examples/iris.nn'");
    assert_int_equal(run_in(tmpdir, "'%s' eval", prog), 1);
    assert_contains(err_text, "--weights is required: parameter 'W1' is random until trained");
    assert_int_equal(run_in(tmpdir, "'%s' predict --weights %s", prog, tmp("none.st")), 1);
    assert_contains(err_text, "iris-native: error: cannot open '");
}

static void test_gradc_build_errors(void **state) {
    (void)state;
    assert_int_equal(gradc("build examples/iris.nn -o %s --target pentium", tmp("p")), 2);
    assert_contains(err_text, "--target expects native, x86-64-v3 or x86-64-v4, got 'pentium'");
    assert_int_equal(gradc("build examples/iris.nn"), 2);
    assert_contains(err_text, "no output given: -o PROG");
    assert_int_equal(gradc("build -o %s", tmp("p")), 2);
    assert_int_equal(gradc("build examples/iris.nn -o %s --bogus", tmp("p")), 2);
    assert_int_equal(gradc("build examples/iris.nn -o %s/no/such/dir/p", tmpdir), 1);
    assert_contains(err_text, "cannot write '");
    write_file("noloss.nn", "input x[B, 1]\nparam w[1, 1] = 0\noutput y = x @ w\n");
    assert_int_equal(gradc("build %s -o %s", tmp("noloss.nn"), tmp("p")), 1);
    assert_contains(err_text, "the model has no 'loss = ...' statement");
    assert_int_not_equal(access(tmp("p"), F_OK), 0);
    /* A failed link leaves neither the program nor a temporary file. */
    char cmd[800];
    snprintf(cmd, sizeof cmd, "CC=no-such-cc '%s' build examples/xor.nn -o '%s'", GRADC_BINARY,
             tmp("p"));
    assert_int_equal(run_in(GRADC_SOURCE_DIR, "%s", cmd), 1);
    assert_contains(err_text, "gradc: error: linking the program failed");
    assert_int_equal(run_in(tmpdir, "ls | grep -c '^p' || true"), 0);
    assert_string_equal(out_text, "0\n");
    assert_int_equal(gradc("build --help"), 0);
    assert_contains(out_text, "--target T");
    assert_int_equal(gradc("--help"), 0);
    assert_contains(out_text, "build M.nn");
}

/* The portable build runs here too (the host has AVX2 at least), and a CPU
 * without its features is refused before any model code runs. */
static void test_x86_64_v3_program_runs_and_a_missing_feature_refuses(void **state) {
    (void)state;
    const char *prog = program("iris", "x86-64-v3");
    assert_int_equal(run_in(tmpdir, "'%s' train --epochs 30 -q --save v3.st", prog), 0);
    assert_int_equal(run_in(tmpdir, "'%s' eval --weights v3.st -q", prog), 0);
    assert_contains(out_text, "rows      150\n");
    assert_int_equal(run_in(tmpdir, "GRADC_TEST_PRETEND_CPU_LACKS=bmi2,avx2 '%s' train -q "
                                    "--save refused.st", prog),
                     1);
    assert_contains(err_text, "error: this program was built for x86-64-v3 (sse4.2, avx, avx2, "
                              "fma, bmi, bmi2) but this CPU lacks avx2; rebuild it with gradc "
                              "build --target native on this machine\n");
    assert_string_equal(out_text, "");
    assert_int_not_equal(access(tmp("refused.st"), F_OK), 0);
    assert_int_equal(run_in(tmpdir, "GRADC_TEST_PRETEND_CPU_LACKS=avx512f '%s' --help", prog), 0);
}

/* run_cpu_missing: the check the programs' main makes, with a fake CPU. */
static int has_no_avx512(const char *feature) { return strncmp(feature, "avx512", 6) != 0; }
static int has_everything(const char *feature) { return feature != NULL; }

static void test_cpu_check_names_the_first_missing_feature(void **state) {
    (void)state;
    static const char *const v4[] = {"avx2", "fma", "avx512f", "avx512bw", NULL};
    RunModel m = {.target = "x86-64-v4", .cpu_features = v4};
    assert_null(run_cpu_missing(&m, has_everything, NULL));
    assert_string_equal(run_cpu_missing(&m, has_no_avx512, NULL), "avx512f");
    assert_string_equal(run_cpu_missing(&m, has_everything, "sse3,fma"), "fma");
    assert_null(run_cpu_missing(&m, has_everything, "avx512"));
    RunModel none = {.target = "native", .cpu_features = NULL};
    assert_null(run_cpu_missing(&none, has_no_avx512, "avx2"));
}

/* Parameters written in the model (their values compiled into the
 * program's description): no weights needed. */
static void test_written_out_parameters_need_no_weights(void **state) {
    (void)state;
    const char *prog = program("simple_nn", "native");
    assert_int_equal(run_in(tmpdir, "'%s' predict -q", prog), 0);
    assert_contains(out_text, "yhat\n");
    assert_float_equal(strtod(strstr(out_text, "yhat\n") + 5, NULL), 0.8617, 5e-5);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_built_iris_trains_bit_for_bit_as_gradc_train),
        cmocka_unit_test(test_built_mnist_trains_bit_for_bit_as_gradc_train),
        cmocka_unit_test(test_program_needs_no_llvm_and_runs_alone_elsewhere),
        cmocka_unit_test(test_program_help_and_usage_errors),
        cmocka_unit_test(test_gradc_build_errors),
        cmocka_unit_test(test_x86_64_v3_program_runs_and_a_missing_feature_refuses),
        cmocka_unit_test(test_cpu_check_names_the_first_missing_feature),
        cmocka_unit_test(test_written_out_parameters_need_no_weights),
    };
    return cli_main("gradc-cli-build", tests);
}
