/* test_parse.c: the parser: precedence and associativity (checked on the
 * tree's shape), statements, locations, and syntax errors with recovery. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "frontend/ast.h"

/* Everything a test allocates; freed by teardown even when the test fails. */
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

typedef struct Fixture {
    Arena *a;
    Diags d;
    SrcFile f;
    AstFile *ast;
} Fixture;

static Fixture *parse(const char *text) {
    Arena *a = arena;
    Fixture *fx = arena_alloc(a, sizeof *fx);
    fx->a = a;
    diags_init(&fx->d, a);
    fx->f = (SrcFile){"m.nn", text, strlen(text)};
    fx->ast = parse_file(a, &fx->d, &fx->f);
    return fx;
}


static char *diag_text(Fixture *fx) {
    char *s = arena_strdup(fx->a, "");
    for (int i = 0; i < fx->d.list.len; i++)
        s = arena_printf(fx->a, "%s%s", s, diag_format(fx->a, &fx->d.list.items[i]));
    return s;
}

/* The tree of the expression in `v = <text>`, as an S-expression. */
static void assert_tree(const char *expr, const char *want) {
    char *text = arena_printf(arena, "v = %s\n", expr);
    Fixture *fx = parse(text);
    if (fx->d.nerrors)
        fail_msg("syntax error in %s: %s", expr, diag_text(fx));
    assert_int_equal(fx->ast->stmts.len, 1);
    const Stmt *s = fx->ast->stmts.items[0];
    assert_int_equal(s->kind, ST_ASSIGN);
    assert_string_equal(ast_expr_str(fx->a, s->value), want);
}

static void test_parse_power_binds_tighter_than_unary_minus(void **state) {
    (void)state;
    assert_tree("-x^2", "(neg (^ x 2))");
    assert_tree("-x^2 * 3", "(* (neg (^ x 2)) 3)");

    /* the same, on the tree's fields */
    Fixture *fx = parse("v = -x^2\n");
    const Expr *e = fx->ast->stmts.items[0]->value;
    assert_int_equal(e->kind, EX_NEG);
    const Expr *pow = e->u.operand;
    assert_int_equal(pow->kind, EX_BINARY);
    assert_int_equal(pow->u.bin.op, BIN_POW);
    assert_int_equal(pow->u.bin.lhs->kind, EX_NAME);
    assert_string_equal(pow->u.bin.lhs->u.name, "x");
    assert_int_equal(pow->u.bin.rhs->kind, EX_NUM);
    assert_true(pow->u.bin.rhs->u.num == 2.0);
}

static void test_parse_power_is_right_associative(void **state) {
    (void)state;
    assert_tree("a ^ b ^ c", "(^ a (^ b c))");
    assert_tree("2 ^ -1", "(^ 2 (neg 1))");
    assert_tree("(a ^ b) ^ c", "(^ (^ a b) c)");
}

static void test_parse_subtraction_and_division_are_left_associative(void **state) {
    (void)state;
    assert_tree("a - b - c", "(- (- a b) c)");
    assert_tree("a / b / c", "(/ (/ a b) c)");
    assert_tree("a - b + c", "(+ (- a b) c)");
}

static void test_parse_matmul_binds_tighter_than_addition(void **state) {
    (void)state;
    assert_tree("a @ b + c", "(+ (@ a b) c)");
    assert_tree("c + a @ b", "(+ c (@ a b))");
    assert_tree("a + b * c", "(+ a (* b c))");
}

static void test_parse_matmul_shares_the_level_of_mul_left_to_right(void **state) {
    (void)state;
    assert_tree("a * b @ c", "(@ (* a b) c)");
    assert_tree("a @ b * c", "(* (@ a b) c)");
    assert_tree("a @ b / c", "(/ (@ a b) c)");
}

static void test_parse_unary_minus_binds_tighter_than_mul(void **state) {
    (void)state;
    assert_tree("-a * b", "(* (neg a) b)");
    assert_tree("a * -b", "(* a (neg b))");
    assert_tree("- -a", "(neg (neg a))");
    assert_tree("(a + b) * c", "(* (+ a b) c)");
}

static void test_parse_call_takes_positional_then_keyword_arguments(void **state) {
    (void)state;
    assert_tree("softmax(h @ W, axis = -1)", "(call softmax (@ h W) (axis = (neg 1)))");
    assert_tree("relu(x)^2", "(^ (call relu x) 2)");
    assert_tree("f()", "(call f)");
    assert_tree("[[1, 2], [3, 4],]", "[[1 2] [3 4]]");
    assert_tree("csv(\"a.csv\", header = false)", "(call csv \"a.csv\" (header = false))");
}

static void test_parse_call_arguments_may_span_lines(void **state) {
    (void)state;
    Fixture *fx = parse("h = f(a,\n      b,\n      k = 1)\ny = 2\n");
    assert_int_equal(fx->d.nerrors, 0);
    assert_int_equal(fx->ast->stmts.len, 2);
    assert_string_equal(ast_expr_str(fx->a, fx->ast->stmts.items[0]->value),
                        "(call f a b (k = 1))");
    assert_int_equal(fx->ast->stmts.items[1]->loc.line, 4);
}

static const char model[] =
    "# comment\n"
    "const H = 16\n"
    "const N = H * 2\n"
    "input  x[B, 4]\n"
    "input  y[B] : int\n"
    "param  W1[4, H] ~ he\n"
    "param  b1[H]    = 0\n"
    "param  W[2, 3]  = [[0.1, 0.6, 0.7], [0.2, 0.8, 1.0]]\n"
    "param  theta    = 1.5\n"
    "param  n[3]     ~ normal(0, std = 0.1)\n"
    "h      = relu(x @ W1 + b1)\n"
    "output probs = softmax(h)\n"
    "loss   = cross_entropy(h, y)\n"
    "train {\n"
    "  data      = csv(\"data/iris.csv\", x = [\"a\", \"b\"], y = 4, header = true)\n"
    "  optimizer = sgd(lr = 0.1)\n"
    "\n"
    "  batch     = 16\n"
    "}\n";

static void test_parse_statements_of_a_whole_model(void **state) {
    (void)state;
    Fixture *fx = parse(model);
    assert_int_equal(fx->d.nerrors, 0);
    const char *want[] = {
        "(const H 16)",
        "(const N (* H 2))",
        "(input x [B 4] float)",
        "(input y [B] int)",
        "(param W1 [4 H] ~ he)",
        "(param b1 [H] = 0)",
        "(param W [2 3] = [[0.1 0.6 0.7] [0.2 0.8 1]])",
        "(param theta = 1.5)",
        "(param n [3] ~ (call normal 0 (std = 0.1)))",
        "(= h (call relu (+ (@ x W1) b1)))",
        "(output probs (call softmax h))",
        "(= loss (call cross_entropy h y))",
        "(train (data (call csv \"data/iris.csv\" (x = [\"a\" \"b\"]) (y = 4) (header = true))) "
        "(optimizer (call sgd (lr = 0.1))) (batch 16))",
    };
    int n = (int)(sizeof want / sizeof want[0]);
    assert_int_equal(fx->ast->stmts.len, n);
    for (int i = 0; i < n; i++)
        assert_string_equal(ast_stmt_str(fx->a, fx->ast->stmts.items[i]), want[i]);
    const Stmt *train = fx->ast->stmts.items[n - 1];
    assert_int_equal(train->u.train.entries.items[2].key_loc.line, 18);
    assert_int_equal(train->u.train.entries.items[2].key_loc.col, 3);
}

static void test_parse_locations_cover_names_and_expressions(void **state) {
    (void)state;
    Fixture *fx = parse("\nh      = relu(x @ W1 + b1)\n");
    const Stmt *s = fx->ast->stmts.items[0];
    assert_int_equal(s->name_loc.line, 2);
    assert_int_equal(s->name_loc.col, 1);
    assert_int_equal(s->name_loc.len, 1);
    assert_int_equal(s->loc.len, 26); /* the whole statement */
    const Expr *call = s->value;
    assert_int_equal(call->kind, EX_CALL);
    assert_int_equal(call->loc.col, 10);
    assert_int_equal(call->loc.len, 17);
    assert_int_equal(call->u.call.name_loc.len, 4);
    const Expr *add = call->u.call.args.items[0].value;
    assert_int_equal(add->loc.col, 15);
    assert_int_equal(add->loc.len, 11); /* x @ W1 + b1 */
    assert_int_equal(add->u.bin.op_loc.col, 22);
    const Expr *mm = add->u.bin.lhs;
    assert_int_equal(mm->loc.col, 15);
    assert_int_equal(mm->loc.len, 6); /* x @ W1 */
    assert_int_equal(mm->u.bin.op_loc.col, 17);
}

static void test_parse_missing_initializer_is_reported_at_the_line_end(void **state) {
    (void)state;
    Fixture *fx = parse("param W[2, 3]\n");
    assert_int_equal(fx->d.nerrors, 1);
    assert_string_equal(diag_text(fx), "m.nn:1:14: error: expected '=' or '~', found end of line\n"
                                       "    1 | param W[2, 3]\n"
                                       "      |              ^\n");
    assert_int_equal(fx->ast->stmts.len, 0);
}

static void test_parse_missing_operand_names_the_token_found(void **state) {
    (void)state;
    Fixture *fx = parse("h = relu(x @ )\n");
    assert_string_equal(diag_text(fx), "m.nn:1:14: error: expected an expression, found ')'\n"
                                       "    1 | h = relu(x @ )\n"
                                       "      |              ^\n");
}

static void test_parse_input_type_must_be_int_or_float(void **state) {
    (void)state;
    Fixture *fx = parse("input x[B, 4] : double\n");
    assert_string_equal(diag_text(fx),
                        "m.nn:1:17: error: expected 'int' or 'float', found 'double'\n"
                        "    1 | input x[B, 4] : double\n"
                        "      |                 ^~~~~~\n");
}

static void test_parse_reports_every_broken_line(void **state) {
    (void)state;
    Fixture *fx = parse("const H = 4\n"
                        "input x[B, 4 5]\n"
                        "param W[4, H] ~ he\n"
                        "h = x @ @ W\n"
                        "output = h\n"
                        "loss = mean(h)\n");
    assert_int_equal(fx->d.nerrors, 3);
    assert_string_equal(diag_text(fx), "m.nn:2:14: error: expected ',' or ']', found '5'\n"
                                       "    2 | input x[B, 4 5]\n"
                                       "      |              ^\n"
                                       "m.nn:4:9: error: expected an expression, found '@'\n"
                                       "    4 | h = x @ @ W\n"
                                       "      |         ^\n"
                                       "m.nn:5:8: error: expected a name, found '='\n"
                                       "    5 | output = h\n"
                                       "      |        ^\n");
    /* the good lines are all there */
    assert_int_equal(fx->ast->stmts.len, 3);
    assert_string_equal(ast_stmt_str(fx->a, fx->ast->stmts.items[0]), "(const H 4)");
    assert_string_equal(ast_stmt_str(fx->a, fx->ast->stmts.items[1]), "(param W [4 H] ~ he)");
    assert_string_equal(ast_stmt_str(fx->a, fx->ast->stmts.items[2]), "(= loss (call mean h))");
}

static void test_parse_unclosed_paren_reports_end_of_line_and_goes_on(void **state) {
    (void)state;
    Fixture *fx = parse("h = relu(x @ W1 + b1\n"
                        "logits = h @ W2\n"
                        "loss = mean(logits\n"
                        "output p = logits\n");
    assert_string_equal(diag_text(fx),
                        "m.nn:1:21: error: expected ',' or ')', found end of line\n"
                        "    1 | h = relu(x @ W1 + b1\n"
                        "      |                     ^\n"
                        "m.nn:3:19: error: expected ',' or ')', found end of line\n"
                        "    3 | loss = mean(logits\n"
                        "      |                   ^\n");
    assert_int_equal(fx->ast->stmts.len, 2);
    assert_string_equal(ast_stmt_str(fx->a, fx->ast->stmts.items[0]), "(= logits (@ h W2))");
    assert_string_equal(ast_stmt_str(fx->a, fx->ast->stmts.items[1]), "(output p logits)");
}

static void test_parse_missing_comma_between_argument_lines(void **state) {
    (void)state;
    Fixture *fx = parse("train {\n"
                        "  data = csv(\"d.csv\",\n"
                        "             x = [0, 1]\n"
                        "             y = 2)\n"
                        "  batch = 8\n"
                        "}\n");
    assert_int_equal(fx->d.nerrors, 1);
    assert_string_equal(diag_text(fx),
                        "m.nn:3:24: error: expected ',' or ')', found end of line\n"
                        "    3 |              x = [0, 1]\n"
                        "      |                        ^\n");
    assert_int_equal(fx->ast->stmts.len, 1);
    assert_string_equal(ast_stmt_str(fx->a, fx->ast->stmts.items[0]), "(train (batch 8))");
}

static void test_parse_train_entry_error_skips_only_that_entry(void **state) {
    (void)state;
    Fixture *fx = parse("train {\n"
                        "  batch = 16\n"
                        "  epochs 100\n"
                        "  seed = 1 }\n");
    assert_string_equal(diag_text(fx), "m.nn:3:10: error: expected '=', found '100'\n"
                                       "    3 |   epochs 100\n"
                                       "      |          ^~~\n");
    assert_int_equal(fx->ast->stmts.len, 1);
    assert_string_equal(ast_stmt_str(fx->a, fx->ast->stmts.items[0]),
                        "(train (batch 16) (seed 1))");
}

static void test_parse_unclosed_train_block_is_reported_at_the_end(void **state) {
    (void)state;
    Fixture *fx = parse("train {\n  batch = 16\n");
    assert_string_equal(diag_text(fx), "m.nn:2:13: error: expected '}', found end of file\n"
                                       "    2 |   batch = 16\n"
                                       "      |             ^\n");
}

static void test_parse_positional_argument_after_keyword_is_an_error(void **state) {
    (void)state;
    Fixture *fx = parse("p = softmax(axis = 0, x)\n");
    assert_string_equal(diag_text(fx),
                        "m.nn:1:23: error: positional argument after keyword arguments\n"
                        "    1 | p = softmax(axis = 0, x)\n"
                        "      |                       ^\n");
}

static void test_parse_statement_must_end_at_line_end(void **state) {
    (void)state;
    Fixture *fx = parse("h = x y\nz = (x\n");
    assert_string_equal(diag_text(fx), "m.nn:1:7: error: expected end of line, found 'y'\n"
                                       "    1 | h = x y\n"
                                       "      |       ^\n"
                                       "m.nn:2:7: error: expected ')', found end of file\n"
                                       "    2 | z = (x\n"
                                       "      |       ^\n");
}

static void test_parse_misspelled_statement_keyword_is_suggested(void **state) {
    (void)state;
    Fixture *fx = parse("cont H = 8\ninpt x[B, H]\nh x = 1\n");
    assert_string_equal(diag_text(fx), "m.nn:1:1: error: unknown statement 'cont'; did you mean "
                                       "'const'?\n"
                                       "    1 | cont H = 8\n"
                                       "      | ^~~~\n"
                                       "m.nn:2:1: error: unknown statement 'inpt'; did you mean "
                                       "'input'?\n"
                                       "    2 | inpt x[B, H]\n"
                                       "      | ^~~~\n"
                                       "m.nn:3:3: error: expected '=', found 'x'\n"
                                       "    3 | h x = 1\n"
                                       "      |   ^\n");
}

static void test_parse_lexer_error_silences_syntax_errors_on_its_line(void **state) {
    (void)state;
    Fixture *fx = parse("loss = cross_entropy(logi.ts, y)\nh = relu(x\n");
    assert_string_equal(diag_text(fx), "m.nn:1:26: error: unexpected character '.'\n"
                                       "    1 | loss = cross_entropy(logi.ts, y)\n"
                                       "      |                          ^\n"
                                       "m.nn:2:11: error: expected ',' or ')', found end of file\n"
                                       "    2 | h = relu(x\n"
                                       "      |           ^\n");
}

static void test_parse_broken_train_header_skips_the_whole_block(void **state) {
    (void)state;
    Fixture *fx = parse("tra/in {\n"
                        "  batch = 16\n"
                        "}\n"
                        "loss = mean(x)\n");
    assert_string_equal(diag_text(fx), "m.nn:1:4: error: expected '=', found '/'\n"
                                       "    1 | tra/in {\n"
                                       "      |    ^\n");
    assert_int_equal(fx->ast->stmts.len, 1);
    assert_string_equal(ast_stmt_str(fx->a, fx->ast->stmts.items[0]), "(= loss (call mean x))");
}

static void test_parse_deep_nesting_is_an_error_not_a_crash(void **state) {
    (void)state;
    enum { N = 100000 };
    char *text = arena_alloc(arena, 2 * N + 16);
    strcpy(text, "v = ");
    memset(text + 4, '(', N);
    strcpy(text + 4 + N, "x");
    memset(text + 5 + N, ')', N);
    strcpy(text + 5 + 2 * N, "\ny = 1\n");
    Fixture *fx = parse(text);
    assert_int_equal(fx->d.nerrors, 1);
    const Diag *dg = &fx->d.list.items[0];
    assert_string_equal(dg->msg, "expression is nested too deeply (more than 256 levels)");
    assert_int_equal(dg->loc.line, 1);
    assert_int_equal(dg->loc.col, 4 + 257);
    assert_int_equal(fx->ast->stmts.len, 1); /* y = 1 */

    char *negs = arena_alloc(arena, 2 * 300 + 16);
    for (int i = 0; i < 300; i++)
        memcpy(negs + 2 * i, "- ", 2);
    fx = parse(arena_printf(arena, "v = %sx\n", negs));
    assert_int_equal(fx->d.nerrors, 1);
    assert_string_equal(fx->d.list.items[0].msg,
                        "expression is nested too deeply (more than 256 levels)");
}

static void test_parse_overlong_expression_is_an_error_not_a_crash(void **state) {
    (void)state;
    char *sum = arena_strdup(arena, "x");
    for (int i = 1; i < 5000; i++)
        sum = arena_printf(arena, "%s + x", sum);
    Fixture *fx = parse(arena_printf(arena, "v = %s\n", sum));
    assert_int_equal(fx->d.nerrors, 1);
    assert_string_equal(fx->d.list.items[0].msg, "expression is too large (more than 1000 "
                                                 "levels deep); split it into several "
                                                 "assignments");
    assert_int_equal(fx->d.list.items[0].loc.col, 5);
    /* just under the limit is fine */
    sum = arena_strdup(arena, "x");
    for (int i = 1; i < PARSE_MAX_HEIGHT; i++)
        sum = arena_printf(arena, "%s + x", sum);
    fx = parse(arena_printf(arena, "v = %s\n", sum));
    assert_int_equal(fx->d.nerrors, 0);
    assert_int_equal(fx->ast->stmts.items[0]->value->height, PARSE_MAX_HEIGHT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        TEST(test_parse_power_binds_tighter_than_unary_minus),
        TEST(test_parse_power_is_right_associative),
        TEST(test_parse_subtraction_and_division_are_left_associative),
        TEST(test_parse_matmul_binds_tighter_than_addition),
        TEST(test_parse_matmul_shares_the_level_of_mul_left_to_right),
        TEST(test_parse_unary_minus_binds_tighter_than_mul),
        TEST(test_parse_call_takes_positional_then_keyword_arguments),
        TEST(test_parse_call_arguments_may_span_lines),
        TEST(test_parse_statements_of_a_whole_model),
        TEST(test_parse_locations_cover_names_and_expressions),
        TEST(test_parse_missing_initializer_is_reported_at_the_line_end),
        TEST(test_parse_missing_operand_names_the_token_found),
        TEST(test_parse_input_type_must_be_int_or_float),
        TEST(test_parse_reports_every_broken_line),
        TEST(test_parse_unclosed_paren_reports_end_of_line_and_goes_on),
        TEST(test_parse_missing_comma_between_argument_lines),
        TEST(test_parse_train_entry_error_skips_only_that_entry),
        TEST(test_parse_unclosed_train_block_is_reported_at_the_end),
        TEST(test_parse_positional_argument_after_keyword_is_an_error),
        TEST(test_parse_statement_must_end_at_line_end),
        TEST(test_parse_misspelled_statement_keyword_is_suggested),
        TEST(test_parse_lexer_error_silences_syntax_errors_on_its_line),
        TEST(test_parse_broken_train_header_skips_the_whole_block),
        TEST(test_parse_deep_nesting_is_an_error_not_a_crash),
        TEST(test_parse_overlong_expression_is_an_error_not_a_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
