/* test_frontend_diag.c: every diagnostic of the front end, checked as the
 * user sees it: the full text of diag_format (file:line:col, message,
 * source line, caret), notes included. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "frontend/frontend.h"

static Arena *arena;

static int setup(void **state) {
    (void)state;
    arena = arena_new();
    return 0;
}

static int teardown(void **state) {
    (void)state;
    arena_free(arena);
    arena = NULL;
    return 0;
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

/* Every diagnostic of compiling text as m.nn, which must fail. */
static char *errors_of(const char *text) {
    Diags d;
    diags_init(&d, arena);
    Model *m = fe_compile(arena, &d, "m.nn", text);
    assert_null(m);
    assert_true(d.nerrors > 0);
    char *s = arena_strdup(arena, "");
    for (int i = 0; i < d.list.len; i++)
        s = arena_printf(arena, "%s%s", s, diag_format(arena, &d.list.items[i]));
    return s;
}

/* ---- names ----------------------------------------------------------------- */

static void test_diag_undefined_name_suggests_a_close_one(void **state) {
    (void)state;
    assert_string_equal(errors_of("input x1[B, 2]\n"
                                  "h = relu(x2)\n"),
                        "m.nn:2:10: error: undefined name 'x2'; did you mean 'x1'?\n"
                        "    2 | h = relu(x2)\n"
                        "      |          ^~\n");
}

static void test_diag_undefined_name_without_a_close_one(void **state) {
    (void)state;
    assert_string_equal(errors_of("input x[B, 2]\n"
                                  "h = x * scale\n"),
                        "m.nn:2:9: error: undefined name 'scale'\n"
                        "    2 | h = x * scale\n"
                        "      |         ^~~~~\n");
}

static void test_diag_function_used_as_a_value(void **state) {
    (void)state;
    assert_string_equal(errors_of("input x[B, 2]\n"
                                  "h = relu\n"),
                        "m.nn:2:5: error: 'relu' is a function; call it: relu(...)\n"
                        "    2 | h = relu\n"
                        "      |     ^~~~\n");
}

static void test_diag_batch_dimension_is_not_a_value(void **state) {
    (void)state;
    assert_string_equal(errors_of("input x[B, 2]\n"
                                  "h = x * B\n"),
                        "m.nn:2:9: error: the batch dimension 'B' is not a value; it can only be "
                        "the first dimension of an input\n"
                        "    2 | h = x * B\n"
                        "      |         ^\n");
}

static void test_diag_redefinition_of_input_param_and_const(void **state) {
    (void)state;
    assert_string_equal(errors_of("const H = 2\n"
                                  "input x[B, H]\n"
                                  "param x[2] = 0\n"
                                  "const H = 3\n"
                                  "input H[B, 1]\n"),
                        "m.nn:3:7: error: redefinition of 'x'\n"
                        "    3 | param x[2] = 0\n"
                        "      |       ^\n"
                        "m.nn:2:7: note: previous definition of 'x' is here\n"
                        "    2 | input x[B, H]\n"
                        "      |       ^\n"
                        "m.nn:4:7: error: redefinition of 'H'\n"
                        "    4 | const H = 3\n"
                        "      |       ^\n"
                        "m.nn:1:7: note: previous definition of 'H' is here\n"
                        "    1 | const H = 2\n"
                        "      |       ^\n"
                        "m.nn:5:7: error: redefinition of 'H'\n"
                        "    5 | input H[B, 1]\n"
                        "      |       ^\n"
                        "m.nn:1:7: note: previous definition of 'H' is here\n"
                        "    1 | const H = 2\n"
                        "      |       ^\n");
}

static void test_diag_assignment_to_an_input(void **state) {
    (void)state;
    assert_string_equal(errors_of("input x[B, 2]\n"
                                  "x = relu(x)\n"),
                        "m.nn:2:1: error: cannot assign to input 'x'\n"
                        "    2 | x = relu(x)\n"
                        "      | ^\n"
                        "m.nn:1:7: note: 'x' is declared here\n"
                        "    1 | input x[B, 2]\n"
                        "      |       ^\n");
}

static void test_diag_second_loss_is_a_redefinition(void **state) {
    (void)state;
    assert_string_equal(errors_of("input x[B, 2]\n"
                                  "loss = mean(x)\n"
                                  "loss = sum(x)\n"),
                        "m.nn:3:1: error: redefinition of 'loss': a model has one loss\n"
                        "    3 | loss = sum(x)\n"
                        "      | ^~~~\n"
                        "m.nn:2:1: note: previous definition of 'loss' is here\n"
                        "    2 | loss = mean(x)\n"
                        "      | ^~~~\n");
}

/* ---- functions and arguments ------------------------------------------------- */

static void test_diag_unknown_function_suggests_a_builtin(void **state) {
    (void)state;
    assert_string_equal(errors_of("input x[B, 2]\n"
                                  "h = rellu(x)\n"),
                        "m.nn:2:5: error: unknown function 'rellu'; did you mean 'relu'?\n"
                        "    2 | h = rellu(x)\n"
                        "      |     ^~~~~\n");
}

static void test_diag_wrong_number_of_arguments(void **state) {
    (void)state;
    assert_string_equal(errors_of("input x[B, 2]\n"
                                  "h = relu(x, x)\n"
                                  "l = mse(x)\n"
                                  "s = sum(x, 0, true, 1)\n"),
                        "m.nn:2:5: error: relu expects 1 argument, got 2\n"
                        "    2 | h = relu(x, x)\n"
                        "      |     ^~~~~~~~~~\n"
                        "m.nn:3:5: error: mse expects 2 arguments, got 1\n"
                        "    3 | l = mse(x)\n"
                        "      |     ^~~~~~\n"
                        "m.nn:4:5: error: sum expects 1 to 3 arguments, got 4\n"
                        "    4 | s = sum(x, 0, true, 1)\n"
                        "      |     ^~~~~~~~~~~~~~~~~~\n");
}

static void test_diag_unknown_and_repeated_keyword_arguments(void **state) {
    (void)state;
    assert_string_equal(errors_of("input x[B, 2]\n"
                                  "p = softmax(x, axes = 0)\n"
                                  "q = softmax(x, 0, axis = 1)\n"),
                        "m.nn:2:16: error: softmax has no argument named 'axes'; did you mean "
                        "'axis'?\n"
                        "    2 | p = softmax(x, axes = 0)\n"
                        "      |                ^~~~\n"
                        "m.nn:3:19: error: argument 'axis' of softmax is given twice\n"
                        "    3 | q = softmax(x, 0, axis = 1)\n"
                        "      |                   ^~~~\n");
}

static void test_diag_axis_out_of_range_names_the_rank(void **state) {
    (void)state;
    assert_string_equal(errors_of("input x[B, 3]\n"
                                  "s = sum(x, axis = 2)\n"
                                  "m = mean(x, axis = [0, -3])\n"
                                  "p = softmax(x, axis = 2)\n"),
                        "m.nn:2:19: error: axis 2 is out of range for a tensor of rank 2 (shape "
                        "[B, 3])\n"
                        "    2 | s = sum(x, axis = 2)\n"
                        "      |                   ^\n"
                        "m.nn:3:24: error: axis -3 is out of range for a tensor of rank 2 (shape "
                        "[B, 3])\n"
                        "    3 | m = mean(x, axis = [0, -3])\n"
                        "      |                        ^~\n"
                        "m.nn:4:5: error: axis 2 is out of range for a tensor of shape [B, 3]\n"
                        "    4 | p = softmax(x, axis = 2)\n"
                        "      |     ^~~~~~~~~~~~~~~~~~~~\n");
}

static void test_diag_exponent_must_be_constant(void **state) {
    (void)state;
    assert_string_equal(errors_of("input x[B, 2]\n"
                                  "h = x ^ x\n"),
                        "m.nn:2:9: error: exponent of '^' must be a constant\n"
                        "    2 | h = x ^ x\n"
                        "      |         ^\n");
}

static void test_diag_arithmetic_on_two_integer_tensors(void **state) {
    (void)state;
    assert_string_equal(errors_of("input y[B] : int\n"
                                  "z = y + y\n"),
                        "m.nn:2:5: error: cannot apply '+' to two integer tensors\n"
                        "    2 | z = y + y\n"
                        "      |     ^~~~~\n");
}

/* ---- shapes -------------------------------------------------------------------- */

static void test_diag_matmul_shape_mismatch_names_both_shapes(void **state) {
    (void)state;
    assert_string_equal(errors_of("input x[B, 3]\n"
                                  "param W[2, 4] = 0\n"
                                  "h = relu(x @ W)\n"),
                        "m.nn:3:10: error: inner dimensions of '@' differ: [B, 3] @ [2, 4]\n"
                        "    3 | h = relu(x @ W)\n"
                        "      |          ^~~~~\n"
                        "m.nn:1:7: note: the left operand has shape [B, 3]\n"
                        "    1 | input x[B, 3]\n"
                        "      |       ^~~~~~~\n"
                        "m.nn:2:7: note: the right operand has shape [2, 4]\n"
                        "    2 | param W[2, 4] = 0\n"
                        "      |       ^~~~~~~\n");
}

static void test_diag_broadcast_mismatch_names_both_shapes(void **state) {
    (void)state;
    assert_string_equal(errors_of("input x[B, 3]\n"
                                  "param b[4] = 0\n"
                                  "h = x + b\n"
                                  "k = h * 2\n"),
                        "m.nn:3:5: error: cannot broadcast shapes [B, 3] and [4] in 'add'\n"
                        "    3 | h = x + b\n"
                        "      |     ^~~~~\n"
                        "m.nn:1:7: note: the left operand has shape [B, 3]\n"
                        "    1 | input x[B, 3]\n"
                        "      |       ^~~~~~~\n"
                        "m.nn:2:7: note: the right operand has shape [4]\n"
                        "    2 | param b[4] = 0\n"
                        "      |       ^~~~\n");
}

static void test_diag_loss_must_be_a_scalar(void **state) {
    (void)state;
    assert_string_equal(errors_of("input x[B, 2]\n"
                                  "input t[B, 1]\n"
                                  "param W[2, 1] = 0\n"
                                  "loss = (x @ W - t) ^ 2\n"),
                        "m.nn:4:8: error: loss must be a scalar, but this has shape [B, 1] "
                        "(reduce it with mean(...) or sum(...))\n"
                        "    4 | loss = (x @ W - t) ^ 2\n"
                        "      |        ^~~~~~~~~~~~~~~\n");
}

static void test_diag_mse_needs_exactly_the_same_shapes(void **state) {
    (void)state;
    assert_string_equal(errors_of("input x[B, 2]\n"
                                  "input t[B]\n"
                                  "param W[2, 1] = 0\n"
                                  "loss = mse(x @ W, t)\n"),
                        "m.nn:4:8: error: mse: prediction has shape [B, 1] but target has shape "
                        "[B]\n"
                        "    4 | loss = mse(x @ W, t)\n"
                        "      |        ^~~~~~~~~~~~~\n");
}

static void test_diag_bce_needs_exactly_the_same_shapes(void **state) {
    (void)state;
    assert_string_equal(errors_of("input p[B, 1]\n"
                                  "input t[B, 2]\n"
                                  "loss = bce(p, t)\n"),
                        "m.nn:3:8: error: bce: prediction has shape [B, 1] but target has shape "
                        "[B, 2]\n"
                        "    3 | loss = bce(p, t)\n"
                        "      |        ^~~~~~~~~\n");
}

static void test_diag_cross_entropy_needs_integer_labels(void **state) {
    (void)state;
    assert_string_equal(errors_of("input x[B, 3]\n"
                                  "input y[B]\n"
                                  "loss = cross_entropy(x, y)\n"),
                        "m.nn:3:8: error: cross_entropy needs integer labels of shape [B] for "
                        "logits of shape [B, 3], but the labels are floats of shape [B]\n"
                        "    3 | loss = cross_entropy(x, y)\n"
                        "      |        ^~~~~~~~~~~~~~~~~~~\n"
                        "m.nn:1:7: note: the logits has shape [B, 3]\n"
                        "    1 | input x[B, 3]\n"
                        "      |       ^~~~~~~\n"
                        "m.nn:2:7: note: the labels has shape [B]\n"
                        "    2 | input y[B]\n"
                        "      |       ^~~~\n");
}

/* ---- declarations -------------------------------------------------------------- */

static void test_diag_batch_dimension_must_come_first_in_inputs_only(void **state) {
    (void)state;
    assert_string_equal(errors_of("input x[4, B]\n"
                                  "param W[B, 3] = 0\n"),
                        "m.nn:1:9: error: the first dimension of input 'x' must be the batch "
                        "dimension B\n"
                        "    1 | input x[4, B]\n"
                        "      |         ^\n"
                        "m.nn:2:9: error: the batch dimension B can only be the first dimension "
                        "of an input\n"
                        "    2 | param W[B, 3] = 0\n"
                        "      |         ^\n");
}

static void test_diag_dimensions_must_be_positive_integers(void **state) {
    (void)state;
    assert_string_equal(errors_of("const H = 5\n"
                                  "input y[B, 2]\n"
                                  "param W[H - 5, H / 2] = 0\n"
                                  "input x[B, y]\n"),
                        "m.nn:3:9: error: a dimension must be a positive integer, but this is 0\n"
                        "    3 | param W[H - 5, H / 2] = 0\n"
                        "      |         ^~~~~\n"
                        "m.nn:3:16: error: a dimension must be a positive integer, but this is "
                        "2.5\n"
                        "    3 | param W[H - 5, H / 2] = 0\n"
                        "      |                ^~~~~\n"
                        "m.nn:4:12: error: expected a constant expression, but 'y' is an input\n"
                        "    4 | input x[B, y]\n"
                        "      |            ^\n");
}

static void test_diag_constant_expressions(void **state) {
    (void)state;
    assert_string_equal(errors_of("input x[B, 2]\n"
                                  "const Z = 1 / (2 - 2)\n"
                                  "const X = x * 2\n"
                                  "h = x * Z\n"),
                        "m.nn:2:11: error: division by zero in a constant expression\n"
                        "    2 | const Z = 1 / (2 - 2)\n"
                        "      |           ^~~~~~~~~~~\n"
                        "m.nn:3:11: error: expected a constant expression, but 'x' is an input\n"
                        "    3 | const X = x * 2\n"
                        "      |           ^\n");
}

static void test_diag_initializers(void **state) {
    (void)state;
    assert_string_equal(errors_of("param b[3] ~ he\n"
                                  "param W[2, 2] ~ glorrot\n"
                                  "param V[2, 2] = he\n"
                                  "param U[2, 2] ~ 0.5\n"
                                  "param N[2] ~ normal(0, -1)\n"),
                        "m.nn:1:14: error: he needs the fan-in and fan-out of a matrix, but param "
                        "'b' has shape [3]\n"
                        "    1 | param b[3] ~ he\n"
                        "      |              ^~\n"
                        "m.nn:2:17: error: unknown initializer 'glorrot'; did you mean 'glorot'?\n"
                        "    2 | param W[2, 2] ~ glorrot\n"
                        "      |                 ^~~~~~~\n"
                        "m.nn:3:17: error: 'he' is an initializer: write param V ~ he\n"
                        "    3 | param V[2, 2] = he\n"
                        "      |                 ^~\n"
                        "m.nn:4:17: error: expected an initializer after '~' (normal, uniform, "
                        "glorot or he), found a number; to give a value use '='\n"
                        "    4 | param U[2, 2] ~ 0.5\n"
                        "      |                 ^~~\n"
                        "m.nn:5:24: error: std of normal must not be negative, but this is -1\n"
                        "    5 | param N[2] ~ normal(0, -1)\n"
                        "      |                        ^~\n");
}

static void test_diag_array_literals(void **state) {
    (void)state;
    assert_string_equal(errors_of("param W[2, 2] = [1, 2]\n"
                                  "param V = [[1, 2], [3]]\n"
                                  "h = [1, 2]\n"),
                        "m.nn:1:17: error: param 'W' is declared with shape [2, 2], but its "
                        "value has shape [2]\n"
                        "    1 | param W[2, 2] = [1, 2]\n"
                        "      |                 ^~~~~~\n"
                        "m.nn:2:20: error: this row has length 1, but the first row has length 2 "
                        "(the array literal is not rectangular)\n"
                        "    2 | param V = [[1, 2], [3]]\n"
                        "      |                    ^~~\n"
                        "m.nn:3:5: error: an array literal can only be the value of a param\n"
                        "    3 | h = [1, 2]\n"
                        "      |     ^~~~~~\n");
}

/* ---- one run, many errors ----------------------------------------------------- */

static void test_diag_syntax_errors_stop_before_lowering(void **state) {
    (void)state;
    /* undefined_thing would be an error too, but the file does not parse */
    assert_string_equal(errors_of("param W[2, 3]\n"
                                  "h = undefined_thing\n"
                                  "k = (1 +\n"),
                        "m.nn:1:14: error: expected '=' or '~', found end of line\n"
                        "    1 | param W[2, 3]\n"
                        "      |              ^\n"
                        "m.nn:3:9: error: expected an expression, found end of file\n"
                        "    3 | k = (1 +\n"
                        "      |         ^\n");
}

static void test_diag_bad_definition_does_not_cascade(void **state) {
    (void)state;
    /* W and h are bad, and their uses are silent; the unrelated error is still found */
    assert_string_equal(errors_of("input x[B, 2]\n"
                                  "param W[2, 2] ~ hee\n"
                                  "h = x @ W\n"
                                  "k = relu(h) + h\n"
                                  "loss = mean(foo(x))\n"),
                        "m.nn:2:17: error: unknown initializer 'hee'; did you mean 'he'?\n"
                        "    2 | param W[2, 2] ~ hee\n"
                        "      |                 ^~~\n"
                        "m.nn:5:13: error: unknown function 'foo'\n"
                        "    5 | loss = mean(foo(x))\n"
                        "      |             ^~~\n");
}

/* ---- the train block ------------------------------------------------------------ */

static void test_diag_train_unknown_setting_and_wrong_types(void **state) {
    (void)state;
    assert_string_equal(errors_of("input x[B, 2]\n"
                                  "train {\n"
                                  "  epoch = 5\n"
                                  "  batch = \"16\"\n"
                                  "  split = 1.5\n"
                                  "  seed = 2.5\n"
                                  "  optimizer = 0.1\n"
                                  "  data = \"x.csv\"\n"
                                  "  split = 0.1\n"
                                  "}\n"),
                        "m.nn:3:3: error: unknown train setting 'epoch'; did you mean 'epochs'?\n"
                        "    3 |   epoch = 5\n"
                        "      |   ^~~~~\n"
                        "m.nn:4:11: error: batch must be an integer, but this is a string\n"
                        "    4 |   batch = \"16\"\n"
                        "      |           ^~~~\n"
                        "m.nn:5:11: error: split must be a fraction in [0, 1), but this is 1.5\n"
                        "    5 |   split = 1.5\n"
                        "      |           ^~~\n"
                        "m.nn:6:10: error: seed must be a non-negative integer, but this is 2.5\n"
                        "    6 |   seed = 2.5\n"
                        "      |          ^~~\n"
                        "m.nn:7:15: error: optimizer must be an optimizer such as sgd(lr = 0.1), "
                        "but this is a number\n"
                        "    7 |   optimizer = 0.1\n"
                        "      |               ^~~\n"
                        "m.nn:8:10: error: data must be a data source such as csv(\"file.csv\", "
                        "x = [...], y = \"label\"), but this is a string\n"
                        "    8 |   data = \"x.csv\"\n"
                        "      |          ^~~~~~~\n"
                        "m.nn:9:3: error: split is set twice\n"
                        "    9 |   split = 0.1\n"
                        "      |   ^~~~~\n"
                        "m.nn:5:3: note: split is first set here\n"
                        "    5 |   split = 1.5\n"
                        "      |   ^~~~~\n");
}

static void test_diag_csv_columns(void **state) {
    (void)state;
    assert_string_equal(
        errors_of("input x[B, 2]\n"
                  "input y[B] : int\n"
                  "train {\n"
                  "  data = csv(\"d.csv\", x = [\"a\", true], xx = 1, header = 1)\n"
                  "}\n"),
        "m.nn:4:33: error: a column must be a name (a string) or a 0-based index, but this is "
        "'true'\n"
        "    4 |   data = csv(\"d.csv\", x = [\"a\", true], xx = 1, header = 1)\n"
        "      |                                 ^~~~\n"
        "m.nn:4:40: error: 'xx' is not an input of the model; did you mean 'x'?\n"
        "    4 |   data = csv(\"d.csv\", x = [\"a\", true], xx = 1, header = 1)\n"
        "      |                                        ^~\n"
        "m.nn:4:57: error: header must be true or false, but this is a number\n"
        "    4 |   data = csv(\"d.csv\", x = [\"a\", true], xx = 1, header = 1)\n"
        "      |                                                         ^\n");
    assert_string_equal(errors_of("input x[B, 2]\n"
                                  "input y[B] : int\n"
                                  "train {\n"
                                  "  data = csv(\"d.csv\", x = [0, 1])\n"
                                  "  batch = 0\n"
                                  "}\n"),
                        "m.nn:4:10: error: csv gives no columns for input 'y' (add y = ...)\n"
                        "    4 |   data = csv(\"d.csv\", x = [0, 1])\n"
                        "      |          ^~~~~~~~~~~~~~~~~~~~~~~~\n"
                        "m.nn:5:11: error: batch must be a positive integer, but this is 0\n"
                        "    5 |   batch = 0\n"
                        "      |           ^\n");
}

static void test_diag_train_block_appears_once(void **state) {
    (void)state;
    assert_string_equal(errors_of("train {\n"
                                  "  batch = 1\n"
                                  "}\n"
                                  "train {\n"
                                  "}\n"),
                        "m.nn:4:1: error: a model has one train block\n"
                        "    4 | train {\n"
                        "      | ^~~~~~~\n"
                        "m.nn:1:1: note: the first train block is here\n"
                        "    1 | train {\n"
                        "      | ^~~~~~~\n");
}

/* ---- layers, functions, gather and the tensor builtins ------------------- */

static void test_diag_reduction_axis_out_of_range(void **state) {
    (void)state;
    assert_string_equal(errors_of("input x[B, 4]\n"
                                  "a = max(x, axis = 2)\n"),
                        "m.nn:2:19: error: axis 2 is out of range for a tensor of rank 2 (shape "
                        "[B, 4])\n"
                        "    2 | a = max(x, axis = 2)\n"
                        "      |                   ^\n");
}

static void test_diag_gather_needs_integer_ids_and_a_table(void **state) {
    (void)state;
    assert_string_equal(errors_of("input x[B, 4]\n"
                                  "input ids[B] : int\n"
                                  "param E[10, 3] ~ normal\n"
                                  "b = E[x]\n"
                                  "r = x[ids]\n"),
                        "m.nn:4:5: error: indexing needs integer ids (declare the input ': int'), "
                        "but the index is a float tensor of shape [B, 4]\n"
                        "    4 | b = E[x]\n"
                        "      |     ^~~~\n"
                        "m.nn:1:7: note: the index has shape [B, 4]\n"
                        "    1 | input x[B, 4]\n"
                        "      |       ^~~~~~~\n"
                        "m.nn:5:5: error: only a float table of fixed size (a param) can be "
                        "indexed, but this has shape [B, 4]\n"
                        "    5 | r = x[ids]\n"
                        "      |     ^~~~~~\n"
                        "m.nn:1:7: note: the table has shape [B, 4]\n"
                        "    1 | input x[B, 4]\n"
                        "      |       ^~~~~~~\n");
}

static void test_diag_dropout_probability_must_be_below_one(void **state) {
    (void)state;
    assert_string_equal(errors_of("input x[B, 4]\n"
                                  "c = dropout(x, 1)\n"
                                  "d = dropout(x, -0.1)\n"),
                        "m.nn:2:16: error: the drop probability of dropout must be in [0, 1), but "
                        "this is 1\n"
                        "    2 | c = dropout(x, 1)\n"
                        "      |                ^\n"
                        "m.nn:3:16: error: the drop probability of dropout must be in [0, 1), but "
                        "this is -0.1\n"
                        "    3 | d = dropout(x, -0.1)\n"
                        "      |                ^~~~\n");
}

static void test_diag_recursive_function(void **state) {
    (void)state;
    assert_string_equal(errors_of("input x[B, 4]\n"
                                  "fn f(x) {\n"
                                  "  return g(x)\n"
                                  "}\n"
                                  "fn g(x) {\n"
                                  "  return f(x)\n"
                                  "}\n"
                                  "e = f(x)\n"),
                        "m.nn:6:10: error: recursive call of function 'f': a function cannot call "
                        "itself, directly or through others\n"
                        "    6 |   return f(x)\n"
                        "      |          ^\n"
                        "m.nn:2:4: note: 'f' is defined here\n"
                        "    2 | fn f(x) {\n"
                        "      |    ^\n");
}

static void test_diag_function_without_return_and_redefined(void **state) {
    (void)state;
    assert_string_equal(errors_of("input x[B, 4]\n"
                                  "fn f(x) {\n"
                                  "  y = x\n"
                                  "}\n"
                                  "fn f(x) {\n"
                                  "  return x\n"
                                  "}\n"
                                  "p = f(x)\n"),
                        "m.nn:5:4: error: redefinition of function 'f'\n"
                        "    5 | fn f(x) {\n"
                        "      |    ^\n"
                        "m.nn:2:4: note: previous definition of 'f' is here\n"
                        "    2 | fn f(x) {\n"
                        "      |    ^\n"
                        "m.nn:4:1: error: function 'f' ends without 'return'\n"
                        "    4 | }\n"
                        "      | ^\n");
}

static void test_diag_layers_and_tensor_builtins(void **state) {
    (void)state;
    assert_string_equal(errors_of("input x[B, 4]\n"
                                  "input ids[B, 2] : int\n"
                                  "h = dense(x, 4, relux)\n"
                                  "k = reshape(x, [B, 3])\n"
                                  "m = concat([x, x], axis = 0)\n"
                                  "n = onehot(x, 3)\n"
                                  "o = nll(x, ids)\n"),
                        "m.nn:3:17: error: unknown activation 'relux'; did you mean 'relu'? "
                        "(expected linear, sigmoid, tanh, relu, leaky_relu, gelu, softplus, "
                        "softmax or log_softmax)\n"
                        "    3 | h = dense(x, 4, relux)\n"
                        "      |                 ^~~~~\n"
                        "m.nn:4:5: error: cannot reshape [B, 4] into [B, 3]: 4 elements per "
                        "example against 3\n"
                        "    4 | k = reshape(x, [B, 3])\n"
                        "      |     ^~~~~~~~~~~~~~~~~~\n"
                        "m.nn:5:5: error: concat cannot join along the batch dimension (axis 0)\n"
                        "    5 | m = concat([x, x], axis = 0)\n"
                        "      |     ^~~~~~~~~~~~~~~~~~~~~~~~\n"
                        "m.nn:6:12: error: onehot needs integer ids, but this is a float tensor\n"
                        "    6 | n = onehot(x, 3)\n"
                        "      |            ^\n"
                        "m.nn:7:5: error: nll needs integer labels of shape [B] for "
                        "log-probabilities of shape [B, 4], but the labels are integers of shape "
                        "[B, 2]\n"
                        "    7 | o = nll(x, ids)\n"
                        "      |     ^~~~~~~~~~~\n");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        TEST(test_diag_undefined_name_suggests_a_close_one),
        TEST(test_diag_undefined_name_without_a_close_one),
        TEST(test_diag_function_used_as_a_value),
        TEST(test_diag_batch_dimension_is_not_a_value),
        TEST(test_diag_redefinition_of_input_param_and_const),
        TEST(test_diag_assignment_to_an_input),
        TEST(test_diag_second_loss_is_a_redefinition),
        TEST(test_diag_unknown_function_suggests_a_builtin),
        TEST(test_diag_wrong_number_of_arguments),
        TEST(test_diag_unknown_and_repeated_keyword_arguments),
        TEST(test_diag_axis_out_of_range_names_the_rank),
        TEST(test_diag_exponent_must_be_constant),
        TEST(test_diag_arithmetic_on_two_integer_tensors),
        TEST(test_diag_matmul_shape_mismatch_names_both_shapes),
        TEST(test_diag_broadcast_mismatch_names_both_shapes),
        TEST(test_diag_loss_must_be_a_scalar),
        TEST(test_diag_mse_needs_exactly_the_same_shapes),
        TEST(test_diag_bce_needs_exactly_the_same_shapes),
        TEST(test_diag_cross_entropy_needs_integer_labels),
        TEST(test_diag_batch_dimension_must_come_first_in_inputs_only),
        TEST(test_diag_dimensions_must_be_positive_integers),
        TEST(test_diag_constant_expressions),
        TEST(test_diag_initializers),
        TEST(test_diag_array_literals),
        TEST(test_diag_syntax_errors_stop_before_lowering),
        TEST(test_diag_bad_definition_does_not_cascade),
        TEST(test_diag_train_unknown_setting_and_wrong_types),
        TEST(test_diag_csv_columns),
        TEST(test_diag_train_block_appears_once),
        TEST(test_diag_reduction_axis_out_of_range),
        TEST(test_diag_gather_needs_integer_ids_and_a_table),
        TEST(test_diag_dropout_probability_must_be_below_one),
        TEST(test_diag_recursive_function),
        TEST(test_diag_function_without_return_and_redefined),
        TEST(test_diag_layers_and_tensor_builtins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
