/* test_lex.c: the lexer: token kinds, values, locations, line ends and the
 * diagnostics for bad characters and literals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "frontend/lexer.h"

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
    TokenVec toks;
} Fixture;

static Fixture *lex(const char *text) {
    Arena *a = arena;
    Fixture *fx = arena_alloc(a, sizeof *fx);
    fx->a = a;
    diags_init(&fx->d, a);
    fx->f = (SrcFile){"m.nn", text, strlen(text)};
    fx->toks = lex_file(a, &fx->d, &fx->f);
    return fx;
}


static void assert_kinds(const Fixture *fx, const TokenKind *kinds, int n) {
    assert_int_equal(fx->toks.len, n);
    for (int i = 0; i < n; i++) {
        if (fx->toks.items[i].kind != kinds[i])
            fail_msg("token %d is %s, expected %s", i, lex_kind_name(fx->toks.items[i].kind),
                     lex_kind_name(kinds[i]));
    }
}

static void assert_loc(const Token *t, int line, int col, int len) {
    assert_int_equal(t->loc.line, line);
    assert_int_equal(t->loc.col, col);
    assert_int_equal(t->loc.len, len);
}

/* Every diagnostic, formatted, one after another. */
static char *diag_text(Fixture *fx) {
    char *s = arena_strdup(fx->a, "");
    for (int i = 0; i < fx->d.list.len; i++)
        s = arena_printf(fx->a, "%s%s", s, diag_format(fx->a, &fx->d.list.items[i]));
    return s;
}

static void test_lex_param_declaration_kinds_and_locations(void **state) {
    (void)state;
    Fixture *fx = lex("param  W1[4, H] ~ he   # init\n");
    const TokenKind kinds[] = {TK_PARAM, TK_IDENT, TK_LBRACKET, TK_NUMBER, TK_COMMA, TK_IDENT,
                               TK_RBRACKET, TK_TILDE, TK_IDENT, TK_NEWLINE, TK_EOF};
    assert_kinds(fx, kinds, 11);
    const Token *t = fx->toks.items;
    assert_loc(&t[0], 1, 1, 5);
    assert_loc(&t[1], 1, 8, 2);
    assert_string_equal(t[1].str, "W1");
    assert_loc(&t[2], 1, 10, 1);
    assert_loc(&t[3], 1, 11, 1);
    assert_true(t[3].num == 4.0);
    assert_loc(&t[5], 1, 14, 1);
    assert_loc(&t[7], 1, 17, 1);
    assert_loc(&t[8], 1, 19, 2);
    assert_string_equal(t[8].str, "he");
    assert_loc(&t[9], 1, 21, 0); /* the line ends right after "he" */
    assert_ptr_equal(t[0].loc.file, &fx->f);
    assert_true(t[0].at_bol);
    assert_false(t[1].at_bol);
    assert_int_equal(fx->d.nerrors, 0);
}

static void test_lex_numbers_have_values_and_division_is_an_operator(void **state) {
    (void)state;
    Fixture *fx = lex("1 0.5 1e-3 2.5E+2 7. 1/255");
    const TokenKind kinds[] = {TK_NUMBER, TK_NUMBER, TK_NUMBER, TK_NUMBER, TK_NUMBER,
                               TK_NUMBER, TK_SLASH,  TK_NUMBER, TK_NEWLINE, TK_EOF};
    assert_kinds(fx, kinds, 10);
    const Token *t = fx->toks.items;
    assert_true(t[0].num == 1.0);
    assert_true(t[1].num == 0.5);
    assert_true(t[2].num == 1e-3);
    assert_loc(&t[2], 1, 7, 4);
    assert_true(t[3].num == 250.0);
    assert_true(t[4].num == 7.0);
    assert_true(t[5].num == 1.0);
    assert_true(t[7].num == 255.0);
    assert_loc(&t[7], 1, 24, 3);
    assert_int_equal(fx->d.nerrors, 0);
}

static void test_lex_string_escapes_are_decoded(void **state) {
    (void)state;
    Fixture *fx = lex("s = \"a\\\"b\\\\c\\n\"");
    const TokenKind kinds[] = {TK_IDENT, TK_ASSIGN, TK_STRING, TK_NEWLINE, TK_EOF};
    assert_kinds(fx, kinds, 5);
    assert_string_equal(fx->toks.items[2].str, "a\"b\\c\n");
    assert_loc(&fx->toks.items[2], 1, 5, 11);
    assert_int_equal(fx->d.nerrors, 0);
}

static void test_lex_keywords_are_reserved_but_longer_names_are_identifiers(void **state) {
    (void)state;
    Fixture *fx = lex("input inputs const train true false param output outputs _x9");
    const TokenKind kinds[] = {TK_INPUT, TK_IDENT, TK_CONST, TK_TRAIN,  TK_TRUE,    TK_FALSE,
                               TK_PARAM, TK_OUTPUT, TK_IDENT, TK_IDENT, TK_NEWLINE, TK_EOF};
    assert_kinds(fx, kinds, 12);
    assert_string_equal(fx->toks.items[1].str, "inputs");
    assert_string_equal(fx->toks.items[9].str, "_x9");
}

static void test_lex_fn_and_return_are_keywords(void **state) {
    (void)state;
    Fixture *fx = lex("fn return fns returns fn_ fn.x");
    const TokenKind kinds[] = {TK_FN,    TK_RETURN, TK_IDENT,   TK_IDENT,
                               TK_IDENT, TK_IDENT,  TK_NEWLINE, TK_EOF};
    assert_kinds(fx, kinds, 8);
    assert_string_equal(fx->toks.items[0].str, "fn");
    assert_string_equal(fx->toks.items[5].str, "fn.x");
    assert_string_equal(lex_describe(fx->a, &fx->toks.items[1]), "'return'");
    assert_string_equal(lex_kind_name(TK_FN), "'fn'");
    assert_int_equal(fx->d.nerrors, 0);
}

static void test_lex_dotted_name_is_one_identifier(void **state) {
    (void)state;
    Fixture *fx = lex("y = h.W + block1.h.b * _a._9\n");
    const TokenKind kinds[] = {TK_IDENT, TK_ASSIGN, TK_IDENT,   TK_PLUS, TK_IDENT,
                               TK_STAR,  TK_IDENT,  TK_NEWLINE, TK_EOF};
    assert_kinds(fx, kinds, 9);
    const Token *t = fx->toks.items;
    assert_string_equal(t[2].str, "h.W");
    assert_loc(&t[2], 1, 5, 3);
    assert_string_equal(t[4].str, "block1.h.b");
    assert_loc(&t[4], 1, 11, 10);
    assert_string_equal(t[6].str, "_a._9");
    assert_loc(&t[6], 1, 24, 5);
    assert_int_equal(fx->d.nerrors, 0);
}

static void test_lex_dot_apart_from_a_name_is_not_part_of_one(void **state) {
    (void)state;
    /* numbers keep their dot; a dot after a space or before one is not in a name */
    Fixture *fx = lex("1.5 7. .5 x .y\n");
    const TokenKind kinds[] = {TK_NUMBER, TK_NUMBER, TK_NUMBER, TK_IDENT,
                               TK_IDENT,  TK_NEWLINE, TK_EOF};
    assert_kinds(fx, kinds, 7);
    assert_true(fx->toks.items[0].num == 1.5);
    assert_true(fx->toks.items[2].num == 5.0);
    assert_string_equal(fx->toks.items[4].str, "y");
    assert_string_equal(diag_text(fx), "m.nn:1:8: error: unexpected character '.'\n"
                                       "    1 | 1.5 7. .5 x .y\n"
                                       "      |        ^\n"
                                       "m.nn:1:13: error: unexpected character '.'\n"
                                       "    1 | 1.5 7. .5 x .y\n"
                                       "      |             ^\n");
}

static void test_lex_name_with_a_misplaced_dot_is_invalid(void **state) {
    (void)state;
    Fixture *fx = lex("v = a..b + c. + d.5\n");
    const TokenKind kinds[] = {TK_IDENT, TK_ASSIGN, TK_IDENT,   TK_PLUS, TK_IDENT,
                               TK_PLUS,  TK_IDENT,  TK_NEWLINE, TK_EOF};
    assert_kinds(fx, kinds, 9);
    assert_string_equal(fx->toks.items[2].str, "a..b");
    assert_int_equal(fx->d.nerrors, 3);
    assert_string_equal(diag_text(fx),
                        "m.nn:1:5: error: invalid name 'a..b': two '.' in a row\n"
                        "    1 | v = a..b + c. + d.5\n"
                        "      |     ^~~~\n"
                        "m.nn:1:12: error: invalid name 'c.': a name cannot end with '.'\n"
                        "    1 | v = a..b + c. + d.5\n"
                        "      |            ^~\n"
                        "m.nn:1:17: error: invalid name 'd.5': a '.' in a name must be "
                        "followed by a letter or '_'\n"
                        "    1 | v = a..b + c. + d.5\n"
                        "      |                 ^~~\n");
}

static void test_lex_comments_and_blank_lines_give_no_newlines(void **state) {
    (void)state;
    Fixture *fx = lex("# header\n\n  x = 1  # one\n\n# trailing\n\ny = 2\n");
    const TokenKind kinds[] = {TK_IDENT,  TK_ASSIGN, TK_NUMBER,  TK_NEWLINE,
                               TK_IDENT,  TK_ASSIGN, TK_NUMBER,  TK_NEWLINE, TK_EOF};
    assert_kinds(fx, kinds, 9);
    assert_loc(&fx->toks.items[0], 3, 3, 1);
    assert_loc(&fx->toks.items[3], 3, 8, 0);
    assert_loc(&fx->toks.items[4], 7, 1, 1);
}

static void test_lex_newlines_vanish_inside_parens_and_brackets_but_not_braces(void **state) {
    (void)state;
    Fixture *fx = lex("h = f(a,\n  b)\nw = [1,\n 2]\ntrain {\n  batch = 1\n}\n");
    const TokenKind kinds[] = {
        TK_IDENT,  TK_ASSIGN, TK_IDENT, TK_LPAREN,   TK_IDENT,   TK_COMMA,  TK_IDENT,
        TK_RPAREN, TK_NEWLINE,                                                 /* line 1-2 */
        TK_IDENT,  TK_ASSIGN, TK_LBRACKET, TK_NUMBER, TK_COMMA,  TK_NUMBER, TK_RBRACKET,
        TK_NEWLINE,                                                            /* line 3-4 */
        TK_TRAIN,  TK_LBRACE, TK_NEWLINE,  TK_IDENT,  TK_ASSIGN, TK_NUMBER, TK_NEWLINE,
        TK_RBRACE, TK_NEWLINE, TK_EOF};
    assert_kinds(fx, kinds, 27);
    const Token *b = &fx->toks.items[6];
    assert_loc(b, 2, 3, 1);
    assert_true(b->at_bol); /* still marks the start of a source line */
}

static void test_lex_last_line_without_line_break_still_ends_with_newline(void **state) {
    (void)state;
    Fixture *fx = lex("x = 1");
    const TokenKind kinds[] = {TK_IDENT, TK_ASSIGN, TK_NUMBER, TK_NEWLINE, TK_EOF};
    assert_kinds(fx, kinds, 5);
    assert_loc(&fx->toks.items[3], 1, 6, 0);
    assert_loc(&fx->toks.items[4], 1, 6, 0);
}

static void test_lex_unclosed_paren_swallows_later_line_breaks(void **state) {
    (void)state;
    Fixture *fx = lex("h = f(x\ny = 2\n");
    const TokenKind kinds[] = {TK_IDENT, TK_ASSIGN, TK_IDENT, TK_LPAREN, TK_IDENT,
                               TK_IDENT, TK_ASSIGN, TK_NUMBER, TK_EOF};
    assert_kinds(fx, kinds, 9);
    assert_true(fx->toks.items[5].at_bol);
}

static void test_lex_bad_character_is_reported_at_its_location(void **state) {
    (void)state;
    Fixture *fx = lex("x = 3 $ 4\n");
    const TokenKind kinds[] = {TK_IDENT, TK_ASSIGN, TK_NUMBER, TK_NUMBER, TK_NEWLINE, TK_EOF};
    assert_kinds(fx, kinds, 6);
    assert_int_equal(fx->d.nerrors, 1);
    assert_string_equal(diag_text(fx), "m.nn:1:7: error: unexpected character '$'\n"
                                       "    1 | x = 3 $ 4\n"
                                       "      |       ^\n");
}

static void test_lex_bad_utf8_character_is_one_error_over_its_bytes(void **state) {
    (void)state;
    Fixture *fx = lex("y = a \xc3\x97 b\n");
    assert_int_equal(fx->d.nerrors, 1);
    assert_string_equal(diag_text(fx), "m.nn:1:7: error: unexpected character '\xc3\x97'\n"
                                       "    1 | y = a \xc3\x97 b\n"
                                       "      |       ^~\n");
}

static void test_lex_unterminated_string_and_bad_escape_are_reported(void **state) {
    (void)state;
    Fixture *fx = lex("a = \"x\\q\"\nb = \"open\nc = 1\n");
    assert_int_equal(fx->d.nerrors, 2);
    assert_string_equal(diag_text(fx),
                        "m.nn:1:7: error: unknown escape sequence '\\q' in string\n"
                        "    1 | a = \"x\\q\"\n"
                        "      |       ^~\n"
                        "m.nn:2:5: error: unterminated string\n"
                        "    2 | b = \"open\n"
                        "      |     ^~~~~\n");
    /* lexing went on: line 3 is intact */
    const Token *t = &fx->toks.items[fx->toks.len - 4];
    assert_int_equal(t->kind, TK_ASSIGN);
    assert_loc(t, 3, 3, 1);
}

static void test_lex_number_run_into_letters_is_invalid(void **state) {
    (void)state;
    Fixture *fx = lex("n = 3x + 1e\n");
    assert_int_equal(fx->d.nerrors, 2);
    assert_string_equal(diag_text(fx), "m.nn:1:5: error: invalid number '3x'\n"
                                       "    1 | n = 3x + 1e\n"
                                       "      |     ^~\n"
                                       "m.nn:1:10: error: invalid number '1e'\n"
                                       "    1 | n = 3x + 1e\n"
                                       "      |          ^~\n");
}

static void test_lex_describe_names_found_tokens(void **state) {
    (void)state;
    Fixture *fx = lex("foo 1e-3 \"s\" ]\n");
    assert_string_equal(lex_describe(fx->a, &fx->toks.items[0]), "'foo'");
    assert_string_equal(lex_describe(fx->a, &fx->toks.items[1]), "'1e-3'");
    assert_string_equal(lex_describe(fx->a, &fx->toks.items[2]), "string \"s\"");
    assert_string_equal(lex_describe(fx->a, &fx->toks.items[3]), "']'");
    assert_string_equal(lex_describe(fx->a, &fx->toks.items[4]), "end of line");
    assert_string_equal(lex_describe(fx->a, &fx->toks.items[5]), "end of file");
    assert_string_equal(lex_kind_name(TK_RBRACKET), "']'");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        TEST(test_lex_param_declaration_kinds_and_locations),
        TEST(test_lex_numbers_have_values_and_division_is_an_operator),
        TEST(test_lex_string_escapes_are_decoded),
        TEST(test_lex_keywords_are_reserved_but_longer_names_are_identifiers),
        TEST(test_lex_fn_and_return_are_keywords),
        TEST(test_lex_dotted_name_is_one_identifier),
        TEST(test_lex_dot_apart_from_a_name_is_not_part_of_one),
        TEST(test_lex_name_with_a_misplaced_dot_is_invalid),
        TEST(test_lex_comments_and_blank_lines_give_no_newlines),
        TEST(test_lex_newlines_vanish_inside_parens_and_brackets_but_not_braces),
        TEST(test_lex_last_line_without_line_break_still_ends_with_newline),
        TEST(test_lex_unclosed_paren_swallows_later_line_breaks),
        TEST(test_lex_bad_character_is_reported_at_its_location),
        TEST(test_lex_bad_utf8_character_is_one_error_over_its_bytes),
        TEST(test_lex_unterminated_string_and_bad_escape_are_reported),
        TEST(test_lex_number_run_into_letters_is_invalid),
        TEST(test_lex_describe_names_found_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
