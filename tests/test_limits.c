/* test_limits.c: hostile sizes are errors with a location, never a stack
 * overflow, a wrapped size or a process the OS kills: deep nesting, long
 * lines, huge literals and names, huge shapes, recursion, 100000-op
 * chains, plans past the memory limit and --max-memory. Runs the built
 * binary (GRADC_BINARY) on generated model files; --max-memory's sizes are
 * checked in-process (compile_parse_size). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cli.h"
#include "driver/compile.h"

/* A model file in the temporary directory: head, then `n` copies of rep,
 * then tail. Returns its path. */
static const char *write_repeated(const char *name, const char *head, const char *rep, long n,
                                  const char *tail) {
    const char *path = tmp(name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(head, f);
    for (long i = 0; i < n; i++)
        fputs(rep, f);
    fputs(tail, f);
    fclose(f);
    return path;
}

/* ---- the front end ---------------------------------------------------------------- */

static void test_limits_100000_parentheses_are_an_error(void **state) {
    (void)state;
    char *close = malloc(100001);
    memset(close, ')', 100000);
    close[100000] = 0;
    const char *m = write_repeated("paren.nn", "input x[B, 2]\noutput y = ", "(", 100000, "");
    FILE *f = fopen(m, "a");
    fprintf(f, "x%s\n", close);
    fclose(f);
    free(close);
    assert_int_equal(gradc("summary %s", m), 1);
    assert_contains(err_text, "paren.nn:2:");
    assert_contains(err_text, "error: expression is nested too deeply (more than 256 levels)");
}

static void test_limits_100000_unary_minus_are_an_error(void **state) {
    (void)state;
    const char *m = write_repeated("neg.nn", "input x[B, 2]\noutput y = ", "-", 100000, "x\n");
    assert_int_equal(gradc("summary %s", m), 1);
    assert_contains(err_text, "neg.nn:2:");
    assert_contains(err_text, "nested too deeply");
}

/* A 10 MB line: an error at its start, and the diagnostic shows a window
 * of the line, not 10 MB. */
static void test_limits_10mb_line_is_an_error_with_a_short_diagnostic(void **state) {
    (void)state;
    const char *m =
        write_repeated("long.nn", "input x[B, 2]\noutput y = x", " + x", 2500000, "\n");
    assert_int_equal(gradc("summary %s", m), 1);
    assert_contains(err_text, "long.nn:2:12: error: expression is too large (more than 1000 "
                              "levels deep)");
    assert_true(strlen(err_text) < 2000);
    assert_contains(err_text, "x + x...\n");
}

static void test_limits_1mb_number_is_an_error(void **state) {
    (void)state;
    const char *m = write_repeated("num.nn", "input x[B, 2]\noutput y = x * ", "1", 1000000, "\n");
    assert_int_equal(gradc("summary %s", m), 1);
    assert_contains(err_text, "num.nn:2:16: error: number '11111111111111111111111111111111...' "
                              "is too long (1000000 characters; at most 256)");
    assert_true(strlen(err_text) < 2000);
}

static void test_limits_number_past_double_is_an_error(void **state) {
    (void)state;
    write_file("inf.nn", "input x[B, 2]\noutput y = x * 1e400\n");
    assert_int_equal(gradc("summary %s", tmp("inf.nn")), 1);
    assert_contains(err_text, "inf.nn:2:16: error: number '1e400' is too large");
}

static void test_limits_huge_dimension_is_an_error(void **state) {
    (void)state;
    write_file("dim.nn", "input x[B, 99999999999999999999]\noutput y = x\n");
    assert_int_equal(gradc("summary %s", tmp("dim.nn")), 1);
    assert_contains(err_text, "dim.nn:1:12: error: a dimension must be at most 2147483647");
}

static void test_limits_long_name_is_an_error(void **state) {
    (void)state;
    const char *m = write_repeated("name.nn", "input x[B, 2]\n", "a", 100000, " = x\n");
    assert_int_equal(gradc("summary %s", m), 1);
    assert_contains(err_text, "name.nn:2:1: error: name 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' is "
                              "too long (100000 characters; at most 256)");
}

static void test_limits_recursive_function_is_an_error(void **state) {
    (void)state;
    write_file("rec.nn", "fn f(x) {\n  return f(x) + 1\n}\ninput x[B, 2]\noutput y = f(x)\n");
    assert_int_equal(gradc("summary %s", tmp("rec.nn")), 1);
    assert_contains(err_text, "rec.nn:2:10: error: recursive call of function 'f'");
}

/* 100000 lines `h = h + 1`: no recursive pass overflows the stack, and
 * fusion cuts the chain into loops of at most 1000 ops (FUSE_MAX_DEPTH). */
static void test_limits_100000_op_chain_is_planned_in_bounded_loops(void **state) {
    (void)state;
    const char *m = write_repeated("chain.nn", "input x[B, 2]\nparam w[2] = 1\nh = x * w\n",
                                   "h = h + 1\n", 100000, "output y = h\nloss = mse(h, x)\n");
    assert_int_equal(gradc("summary %s", m), 0);
    assert_contains(out_text, "loop, 1001 ops");
    assert_null(strstr(out_text, "loop, 1002 ops"));
    assert_null(strstr(out_text, "loop, 100002 ops"));
}

/* A chain longer than a loop may be, compiled and run: cutting it keeps
 * the value (y = x * 1 + 2500). */
static void test_limits_long_chain_computes_the_same_value(void **state) {
    (void)state;
    const char *m = write_repeated("chain2.nn", "input x[B, 2]\nparam w[2] = 1\nh = x * w\n",
                                   "h = h + 1\n", 2500,
                                   "output y = h\ntrain {\n  data = csv(\"x.csv\", x = [\"a\", "
                                   "\"b\"])\n}\n");
    write_file("x.csv", "a,b\n1,2\n-3,0.5\n");
    assert_int_equal(gradc("predict %s --input %s --output %s", m, tmp("x.csv"), tmp("y.csv")),
                     0);
    char *y = read_all(tmp("y.csv"));
    assert_contains(y, "2501");
    assert_contains(y, "2502");
    assert_contains(y, "2497");
    assert_contains(y, "2500.5");
    free(y);
}

/* ---- the memory limit ------------------------------------------------------------- */

static const char huge_nn[] = "input x[B, 100000]\n"
                              "param W[100000, 100000] ~ glorot\n"
                              "output y = x @ W\n"
                              "loss = mse(y, x)\n"
                              "train {\n"
                              "  data = csv(\"d.csv\", x = [\"a\", \"b\"])\n"
                              "}\n";

/* 40 GB of weights (80 GB with the gradient): refused at compile time with
 * the bytes it would need, exit 1, not killed. */
static void test_limits_plan_past_memory_is_refused(void **state) {
    (void)state;
    write_file("huge.nn", huge_nn);
    write_file("d.csv", "a,b\n1,2\n");
    assert_int_equal(gradc("train %s --max-memory 64G", tmp("huge.nn")), 1);
    assert_contains(err_text, "huge.nn:2:7: error: the model needs 80,025,600,192 bytes (74.5 GiB) "
                              "of memory at batch 32 (float32); the limit is");
    assert_contains(err_text, "note: the largest tensor is 'W', [100000, 100000]: "
                              "40,000,000,000 bytes (37.3 GiB)");
    assert_int_equal(gradc("build %s -o %s --max-memory 64G", tmp("huge.nn"), tmp("prog")), 1);
    assert_contains(err_text, "the model needs 80,025,600,192 bytes");
    assert_int_equal(access(tmp("prog"), F_OK), -1);
    /* summary reports it, and says the others refuse it */
    assert_int_equal(gradc("summary %s --max-memory=1G", tmp("huge.nn")), 0);
    assert_contains(out_text, "note: the arena (80025600192 bytes) is more than the memory limit "
                              "(1073741824 bytes, set by --max-memory)");
}

/* --max-memory lowers the limit: xor's 832-byte arena fits 1K, not 512. */
static void test_limits_max_memory_lowers_the_limit(void **state) {
    (void)state;
    assert_int_equal(gradc("train examples/xor.nn --steps 1 -q --save %s --max-memory 512",
                           tmp("w.safetensors")),
                     1);
    assert_contains(err_text, "the model needs 832 bytes of memory at batch 4 (float32); the "
                              "limit is 512 bytes, set by --max-memory");
    assert_int_equal(gradc("train examples/xor.nn --steps 1 -q --save %s --max-memory 1K",
                           tmp("w.safetensors")),
                     0);
    assert_int_equal(gradc("check examples/xor.nn --max-memory 1K"), 1); /* float64: 1,152 */
    assert_contains(err_text, "1,088 bytes (1.1 KiB) of memory at batch 4 (float64)");
    assert_int_equal(gradc("train examples/xor.nn --max-memory 12X"), 2);
    assert_contains(err_text, "--max-memory expects a size like 512M, 2G or 1500000000, got "
                              "'12X'");
    assert_int_equal(gradc("train examples/xor.nn --max-memory"), 2);
}

/* Shapes whose bytes pass 2^64: detected, not wrapped. */
static void test_limits_size_overflow_is_detected(void **state) {
    (void)state;
    write_file("ovf.nn", "input a[B, 2000000000, 1, 1]\n"
                         "param b[2000000000, 1, 1] = 0\n"
                         "param c[2000000000, 1] = 0\n"
                         "output y = a * b * c\n"
                         "loss = mean(y)\n");
    assert_int_equal(gradc("eval %s --weights x", tmp("ovf.nn")), 1);
    assert_int_equal(gradc("summary %s", tmp("ovf.nn")), 1);
    assert_contains(err_text, "ovf.nn:4:12: error: the model needs more bytes than a 64-bit size "
                              "can count of memory at batch 32");
}

/* The address-space limit (ulimit -v) lowers the default. (Not under
 * AddressSanitizer, whose shadow memory needs terabytes of address space:
 * a sanitized gradc cannot start under such a limit.) */
static void test_limits_ulimit_sets_the_limit(void **state) {
    (void)state;
#ifdef __SANITIZE_ADDRESS__
    printf("  skipped: AddressSanitizer cannot run under ulimit -v\n");
    skip();
#endif
    write_file("big.nn", "input x[B, 1000]\nparam W[1000, 1000000] ~ glorot\noutput y = x @ W\n"
                         "loss = mean(y)\ntrain {\n  data = csv(\"d.csv\", x = [\"a\"])\n}\n");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "ulimit -v 3000000 && '%s' train '%s' 2>'%s'", GRADC_BINARY,
             tmp("big.nn"), tmp("ulimit.err"));
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    char *err = read_all(tmp("ulimit.err"));
    assert_contains(err, "set by the address-space limit, ulimit -v");
    free(err);
}

static void test_limits_parse_size(void **state) {
    (void)state;
    uint64_t n;
    assert_true(compile_parse_size("1500000000", &n));
    assert_int_equal(n, 1500000000);
    assert_true(compile_parse_size("512M", &n));
    assert_int_equal(n, 512ull << 20);
    assert_true(compile_parse_size("2G", &n));
    assert_int_equal(n, 2ull << 30);
    assert_true(compile_parse_size("2GiB", &n));
    assert_int_equal(n, 2ull << 30);
    assert_true(compile_parse_size("3k", &n));
    assert_int_equal(n, 3072);
    assert_true(compile_parse_size("1T", &n));
    assert_int_equal(n, 1ull << 40);
    assert_false(compile_parse_size("0", &n));
    assert_false(compile_parse_size("-1G", &n));
    assert_false(compile_parse_size("12X", &n));
    assert_false(compile_parse_size("2G5", &n));
    assert_false(compile_parse_size("", &n));
    assert_false(compile_parse_size("99999999999T", &n));
    assert_false(compile_parse_size("99999999999999999999", &n));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits_100000_parentheses_are_an_error),
        cmocka_unit_test(test_limits_100000_unary_minus_are_an_error),
        cmocka_unit_test(test_limits_10mb_line_is_an_error_with_a_short_diagnostic),
        cmocka_unit_test(test_limits_1mb_number_is_an_error),
        cmocka_unit_test(test_limits_number_past_double_is_an_error),
        cmocka_unit_test(test_limits_huge_dimension_is_an_error),
        cmocka_unit_test(test_limits_long_name_is_an_error),
        cmocka_unit_test(test_limits_recursive_function_is_an_error),
        cmocka_unit_test(test_limits_100000_op_chain_is_planned_in_bounded_loops),
        cmocka_unit_test(test_limits_long_chain_computes_the_same_value),
        cmocka_unit_test(test_limits_plan_past_memory_is_refused),
        cmocka_unit_test(test_limits_max_memory_lowers_the_limit),
        cmocka_unit_test(test_limits_size_overflow_is_detected),
        cmocka_unit_test(test_limits_ulimit_sets_the_limit),
        cmocka_unit_test(test_limits_parse_size),
    };
    return cli_main("gradc-limits", tests);
}
