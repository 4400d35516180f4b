/* test_parse.c: the parser: precedence and associativity (checked on the
 * tree's shape), indexing, dotted names, statements, fn blocks, locations,
 * and syntax errors with recovery. */
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
    Fixture *fx = parse("loss = cross_entropy(logi$ts, y)\nh = relu(x\n");
    assert_string_equal(diag_text(fx), "m.nn:1:26: error: unexpected character '$'\n"
                                       "    1 | loss = cross_entropy(logi$ts, y)\n"
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

static void test_parse_index_binds_like_a_call(void **state) {
    (void)state;
    assert_tree("E[ids]", "(index E ids)");
    assert_tree("E[x + 1]", "(index E (+ x 1))");
    assert_tree("a[i][j]", "(index (index a i) j)");
    assert_tree("E[ids[k]]", "(index E (index ids k))");
    assert_tree("-E[i]^2", "(neg (^ (index E i) 2))");
    assert_tree("x ^ E[i]", "(^ x (index E i))");
    assert_tree("E[i] @ W + b", "(+ (@ (index E i) W) b)");
    assert_tree("f(x)[0]", "(index (call f x) 0)");
    assert_tree("(a + b)[i]", "(index (+ a b) i)");
    assert_tree("h.W[0]", "(index h.W 0)");

    /* the same, on the tree's fields */
    Fixture *fx = parse("v = -E[i]^2\n");
    const Expr *e = fx->ast->stmts.items[0]->value;
    assert_int_equal(e->kind, EX_NEG);
    const Expr *pow = e->u.operand;
    assert_int_equal(pow->u.bin.op, BIN_POW);
    const Expr *ix = pow->u.bin.lhs;
    assert_int_equal(ix->kind, EX_INDEX);
    assert_int_equal(ix->u.index.base->kind, EX_NAME);
    assert_string_equal(ix->u.index.base->u.name, "E");
    assert_int_equal(ix->u.index.index->kind, EX_NAME);
    assert_string_equal(ix->u.index.index->u.name, "i");
    assert_int_equal(ix->u.index.bracket_loc.col, 7);
    assert_int_equal(ix->loc.col, 6);
    assert_int_equal(ix->loc.len, 4); /* E[i] */
    assert_int_equal(ix->height, 2);
}

static void test_parse_bracket_after_a_literal_or_on_a_new_line_is_not_an_index(void **state) {
    (void)state;
    Fixture *fx = parse("a = [1, 2][0]\n"
                        "b = 2[0]\n"
                        "c = f(a\n"
                        "      [0])\n"
                        "d = E[i, j]\n");
    assert_string_equal(diag_text(fx), "m.nn:1:11: error: expected end of line, found '['\n"
                                       "    1 | a = [1, 2][0]\n"
                                       "      |           ^\n"
                                       "m.nn:2:6: error: expected end of line, found '['\n"
                                       "    2 | b = 2[0]\n"
                                       "      |      ^\n"
                                       "m.nn:3:8: error: expected ',' or ')', found end of line\n"
                                       "    3 | c = f(a\n"
                                       "      |        ^\n"
                                       "m.nn:5:8: error: expected ']', found ','\n"
                                       "    5 | d = E[i, j]\n"
                                       "      |        ^\n");
    assert_int_equal(fx->ast->stmts.len, 0);
}

static void test_parse_long_index_chains_are_an_error_not_a_crash(void **state) {
    (void)state;
    char *chain = arena_strdup(arena, "x");
    for (int i = 0; i < 2000; i++)
        chain = arena_printf(arena, "%s[0]", chain);
    Fixture *fx = parse(arena_printf(arena, "v = %s\ny = 1\n", chain));
    assert_int_equal(fx->d.nerrors, 1);
    assert_string_equal(fx->d.list.items[0].msg, "expression is too large (more than 1000 "
                                                 "levels deep); split it into several "
                                                 "assignments");
    assert_int_equal(fx->d.list.items[0].loc.col, 5);
    assert_int_equal(fx->ast->stmts.len, 1); /* y = 1 */

    char *nest = arena_strdup(arena, "i");
    for (int i = 0; i < 300; i++)
        nest = arena_printf(arena, "E[%s]", nest);
    fx = parse(arena_printf(arena, "v = %s\n", nest));
    assert_int_equal(fx->d.nerrors, 1);
    assert_string_equal(fx->d.list.items[0].msg,
                        "expression is nested too deeply (more than 256 levels)");
}

static void test_parse_dotted_name_is_one_name(void **state) {
    (void)state;
    assert_tree("h.W + block1.h.b", "(+ h.W block1.h.b)");
    assert_tree("relu(x @ h.W)", "(call relu (@ x h.W))");
    Fixture *fx = parse("v = x @ block1.h.W\n");
    const Expr *name = fx->ast->stmts.items[0]->value->u.bin.rhs;
    assert_int_equal(name->kind, EX_NAME);
    assert_string_equal(name->u.name, "block1.h.W");
    assert_int_equal(name->loc.col, 9);
    assert_int_equal(name->loc.len, 10);
}

static void test_parse_dotted_name_cannot_be_declared_or_assigned(void **state) {
    (void)state;
    Fixture *fx = parse("h.W = 1\n"
                        "fn f(x.y) {\n"
                        "  return 1\n"
                        "}\n"
                        "c. = 1\n");
    /* the lexer's error comes first and is the only one on its line */
    assert_string_equal(diag_text(fx),
                        "m.nn:5:1: error: invalid name 'c.': a name cannot end with '.'\n"
                        "    5 | c. = 1\n"
                        "      | ^~\n"
                        "m.nn:1:1: error: cannot declare or assign the dotted name 'h.W' (dotted "
                        "names are made by layers and function calls)\n"
                        "    1 | h.W = 1\n"
                        "      | ^~~\n"
                        "m.nn:2:6: error: cannot declare or assign the dotted name 'x.y' (dotted "
                        "names are made by layers and function calls)\n"
                        "    2 | fn f(x.y) {\n"
                        "      |      ^~~\n");
}

static const char fn_model[] = "fn block(x, n, p = 0.1) {\n"
                               "  # a comment line\n"
                               "  h = dense(x, n, relu)\n"
                               "\n"
                               "  const K = 2\n"
                               "  param s ~ normal(0, 1)\n"
                               "  h = dropout(h, p) * s\n"
                               "  return h\n"
                               "}\n"
                               "a = block(x, 64)\n";

static void test_parse_fn_with_defaults_and_body_statements(void **state) {
    (void)state;
    Fixture *fx = parse(fn_model);
    assert_int_equal(fx->d.nerrors, 0);
    assert_int_equal(fx->ast->stmts.len, 2);
    const Stmt *fn = fx->ast->stmts.items[0];
    assert_string_equal(ast_stmt_str(fx->a, fn),
                        "(fn block (x n (p = 0.1)) ((= h (call dense x n relu)) (const K 2) "
                        "(param s ~ (call normal 0 1)) (= h (* (call dropout h p) s)) "
                        "(return h)))");
    assert_string_equal(ast_stmt_str(fx->a, fx->ast->stmts.items[1]),
                        "(= a (call block x 64))");

    assert_int_equal(fn->kind, ST_FN);
    assert_string_equal(fn->name, "block");
    assert_int_equal(fn->name_loc.col, 4);
    assert_int_equal(fn->name_loc.len, 5);
    assert_int_equal(fn->loc.line, 1);
    assert_int_equal(fn->loc.len, 25); /* the fn line */
    assert_int_equal(fn->u.fn.params.len, 3);
    assert_string_equal(fn->u.fn.params.items[1].name, "n");
    assert_int_equal(fn->u.fn.params.items[1].name_loc.col, 13);
    assert_null(fn->u.fn.params.items[1].default_value);
    const Expr *p = fn->u.fn.params.items[2].default_value;
    assert_non_null(p);
    assert_int_equal(p->kind, EX_NUM);
    assert_true(p->u.num == 0.1);
    assert_int_equal(fn->u.fn.body.len, 5);
    const Stmt *ret = fn->u.fn.body.items[4];
    assert_int_equal(ret->kind, ST_RETURN);
    assert_int_equal(ret->loc.line, 8);
    assert_int_equal(ret->loc.col, 3);
    assert_int_equal(ret->loc.len, 8);
    assert_int_equal(ret->value->kind, EX_NAME);
    assert_int_equal(fn->u.fn.close_loc.line, 9);
    assert_int_equal(fn->u.fn.close_loc.col, 1);
}

static void test_parse_fn_short_forms(void **state) {
    (void)state;
    Fixture *fx = parse("fn f() { return 1 }\n"
                        "fn g(x,\n"
                        "     y = 2,) {\n"
                        "  return x + y }\n"
                        "fn e() {\n"
                        "}\n");
    assert_int_equal(fx->d.nerrors, 0);
    assert_int_equal(fx->ast->stmts.len, 3);
    assert_string_equal(ast_stmt_str(fx->a, fx->ast->stmts.items[0]), "(fn f () ((return 1)))");
    assert_string_equal(ast_stmt_str(fx->a, fx->ast->stmts.items[1]),
                        "(fn g (x (y = 2)) ((return (+ x y))))");
    assert_string_equal(ast_stmt_str(fx->a, fx->ast->stmts.items[2]), "(fn e () ())");
}

static void test_parse_input_output_train_and_fn_are_not_allowed_in_a_fn(void **state) {
    (void)state;
    Fixture *fx = parse("fn outer(x) {\n"
                        "  input y[B, 4]\n"
                        "  fn inner(z) {\n"
                        "    return z\n"
                        "  }\n"
                        "  train {\n"
                        "    batch = 8\n"
                        "  }\n"
                        "  output p = x\n"
                        "  h = x\n"
                        "  return h\n"
                        "}\n"
                        "loss = mean(outer(x))\n");
    assert_string_equal(diag_text(fx),
                        "m.nn:2:3: error: 'input' is not allowed inside a function\n"
                        "    2 |   input y[B, 4]\n"
                        "      |   ^~~~~\n"
                        "m.nn:3:3: error: 'fn' is not allowed inside a function\n"
                        "    3 |   fn inner(z) {\n"
                        "      |   ^~\n"
                        "m.nn:6:3: error: 'train' is not allowed inside a function\n"
                        "    6 |   train {\n"
                        "      |   ^~~~~\n"
                        "m.nn:9:3: error: 'output' is not allowed inside a function\n"
                        "    9 |   output p = x\n"
                        "      |   ^~~~~~\n");
    /* the nested blocks were skipped whole: their lines are not the outer body's */
    assert_int_equal(fx->ast->stmts.len, 2);
    assert_string_equal(ast_stmt_str(fx->a, fx->ast->stmts.items[0]),
                        "(fn outer (x) ((= h x) (return h)))");
    assert_string_equal(ast_stmt_str(fx->a, fx->ast->stmts.items[1]),
                        "(= loss (call mean (call outer x)))");
}

static void test_parse_return_outside_a_fn_is_an_error(void **state) {
    (void)state;
    Fixture *fx = parse("return x\ny = 1\n");
    assert_string_equal(diag_text(fx),
                        "m.nn:1:1: error: 'return' is allowed only inside a function\n"
                        "    1 | return x\n"
                        "      | ^~~~~~\n");
    assert_int_equal(fx->ast->stmts.len, 1);
}

static void test_parse_broken_line_in_a_fn_skips_only_that_line(void **state) {
    (void)state;
    Fixture *fx = parse("fn f(x) {\n"
                        "  h = x @ @ W\n"
                        "  k = h h\n"
                        "  return h\n"
                        "}\n"
                        "y = f(1)\n");
    assert_string_equal(diag_text(fx), "m.nn:2:11: error: expected an expression, found '@'\n"
                                       "    2 |   h = x @ @ W\n"
                                       "      |           ^\n"
                                       "m.nn:3:9: error: expected end of line, found 'h'\n"
                                       "    3 |   k = h h\n"
                                       "      |         ^\n");
    assert_int_equal(fx->ast->stmts.len, 2);
    assert_string_equal(ast_stmt_str(fx->a, fx->ast->stmts.items[0]), "(fn f (x) ((return h)))");

    /* an unclosed ( joins every later line; the body still ends at its '}' */
    fx = parse("fn f(x) {\n"
               "  h = relu(x\n"
               "  return h\n"
               "}\n"
               "y = f(1)\n");
    assert_string_equal(diag_text(fx), "m.nn:2:13: error: expected ',' or ')', found end of line\n"
                                       "    2 |   h = relu(x\n"
                                       "      |             ^\n");
    assert_int_equal(fx->ast->stmts.len, 2);
    assert_string_equal(ast_stmt_str(fx->a, fx->ast->stmts.items[0]), "(fn f (x) ((return h)))");
    assert_string_equal(ast_stmt_str(fx->a, fx->ast->stmts.items[1]), "(= y (call f 1))");
}

static void test_parse_unclosed_fn_is_reported_at_its_brace(void **state) {
    (void)state;
    Fixture *fx = parse("fn block(x, n) {\n"
                        "  h = dense(x, n, relu)\n"
                        "  return h\n"
                        "y = block(x, 4)\n");
    assert_string_equal(diag_text(fx),
                        "m.nn:1:16: error: '{' of function 'block' is never closed\n"
                        "    1 | fn block(x, n) {\n"
                        "      |                ^\n");
    assert_int_equal(fx->ast->stmts.len, 0);
}

static void test_parse_fn_default_before_required_parameter_is_an_error(void **state) {
    (void)state;
    Fixture *fx = parse("fn f(x, p = 0.1, q) {\n  return x\n}\n");
    assert_string_equal(diag_text(fx), "m.nn:1:18: error: parameter 'q' without a default follows "
                                       "a parameter with a default\n"
                                       "    1 | fn f(x, p = 0.1, q) {\n"
                                       "      |                  ^\n");
    assert_int_equal(fx->ast->stmts.len, 1);
    assert_string_equal(ast_stmt_str(fx->a, fx->ast->stmts.items[0]),
                        "(fn f (x (p = 0.1) q) ((return x)))");
}

static void test_parse_brace_on_the_next_line_is_reported_and_taken(void **state) {
    (void)state;
    Fixture *fx = parse("fn f(x)\n"
                        "{\n"
                        "  return x\n"
                        "}\n"
                        "train\n"
                        "{\n"
                        "  batch = 8\n"
                        "}\n");
    assert_string_equal(diag_text(fx),
                        "m.nn:2:1: error: the '{' must be on the same line as 'fn'\n"
                        "    2 | {\n"
                        "      | ^\n"
                        "m.nn:6:1: error: the '{' must be on the same line as 'train'\n"
                        "    6 | {\n"
                        "      | ^\n");
    assert_int_equal(fx->ast->stmts.len, 2);
    assert_string_equal(ast_stmt_str(fx->a, fx->ast->stmts.items[0]), "(fn f (x) ((return x)))");
    assert_string_equal(ast_stmt_str(fx->a, fx->ast->stmts.items[1]), "(train (batch 8))");
}

static void test_parse_misspelled_fn_and_return_are_suggested(void **state) {
    (void)state;
    Fixture *fx = parse("fn f(x) {\n"
                        "  retrun x\n"
                        "  return x\n"
                        "}\n"
                        "fun g(x) {\n"
                        "  return x\n"
                        "}\n");
    assert_string_equal(diag_text(fx), "m.nn:2:3: error: unknown statement 'retrun'; did you mean "
                                       "'return'?\n"
                                       "    2 |   retrun x\n"
                                       "      |   ^~~~~~\n"
                                       "m.nn:5:1: error: unknown statement 'fun'; did you mean "
                                       "'fn'?\n"
                                       "    5 | fun g(x) {\n"
                                       "      | ^~~\n");
    assert_int_equal(fx->ast->stmts.len, 1);
    assert_string_equal(ast_stmt_str(fx->a, fx->ast->stmts.items[0]), "(fn f (x) ((return x)))");
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
        TEST(test_parse_index_binds_like_a_call),
        TEST(test_parse_bracket_after_a_literal_or_on_a_new_line_is_not_an_index),
        TEST(test_parse_long_index_chains_are_an_error_not_a_crash),
        TEST(test_parse_dotted_name_is_one_name),
        TEST(test_parse_dotted_name_cannot_be_declared_or_assigned),
        TEST(test_parse_fn_with_defaults_and_body_statements),
        TEST(test_parse_fn_short_forms),
        TEST(test_parse_input_output_train_and_fn_are_not_allowed_in_a_fn),
        TEST(test_parse_return_outside_a_fn_is_an_error),
        TEST(test_parse_broken_line_in_a_fn_skips_only_that_line),
        TEST(test_parse_unclosed_fn_is_reported_at_its_brace),
        TEST(test_parse_fn_default_before_required_parameter_is_an_error),
        TEST(test_parse_brace_on_the_next_line_is_reported_and_taken),
        TEST(test_parse_misspelled_fn_and_return_are_suggested),
        TEST(test_parse_deep_nesting_is_an_error_not_a_crash),
        TEST(test_parse_overlong_expression_is_an_error_not_a_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
