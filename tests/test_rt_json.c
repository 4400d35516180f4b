/* test_rt_json.c: the runtime's strict JSON reader (safetensors headers,
 * training logs): values, escapes, lookups, and what it must reject. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/rt_internal.h"

#define assert_contains(hay, needle)                                                        \
    do {                                                                                    \
        if (!strstr((hay), (needle)))                                                       \
            fail_msg("expected \"%s\" in \"%s\"", (needle), (hay));                         \
    } while (0)

static RtJson *parse(const char *text) {
    char why[200] = "";
    RtJson *j = rt_json_parse(text, strlen(text), why, sizeof why);
    if (!j)
        fail_msg("parse failed: %s", why);
    return j;
}

static void expect_reject(const char *text, const char *want) {
    char why[200] = "";
    RtJson *j = rt_json_parse(text, strlen(text), why, sizeof why);
    if (j) {
        rt_json_free(j);
        fail_msg("accepted %s", text);
    }
    assert_contains(why, want);
}

static void test_json_reads_nested_values_and_looks_up_keys(void **state) {
    (void)state;
    RtJson *j = parse(" {\"b\": [1, -2.5e3, 0.125, true, false, null], \"a\": {\"x\": \"y\"},"
                      " \"c\": {}} \n");
    assert_int_equal(j->kind, RT_JSON_OBJECT);
    assert_int_equal(j->n, 3);
    assert_string_equal(j->keys[0], "b"); /* text order kept */
    const RtJson *b = rt_json_get(j, "b");
    assert_non_null(b);
    assert_int_equal(b->kind, RT_JSON_ARRAY);
    assert_int_equal(b->n, 6);
    assert_true(b->items[0].number == 1 && b->items[1].number == -2500 &&
                b->items[2].number == 0.125);
    assert_true(b->items[3].kind == RT_JSON_BOOL && b->items[3].boolean);
    assert_true(b->items[4].kind == RT_JSON_BOOL && !b->items[4].boolean);
    assert_int_equal(b->items[5].kind, RT_JSON_NULL);
    assert_string_equal(rt_json_get(rt_json_get(j, "a"), "x")->string, "y");
    assert_int_equal(rt_json_get(j, "c")->n, 0);
    assert_null(rt_json_get(j, "d"));
    assert_null(rt_json_get(b, "b")); /* not an object */
    rt_json_free(j);
}

static void test_json_decodes_every_escape_and_surrogate_pairs(void **state) {
    (void)state;
    RtJson *j = parse("\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t \\u00e9 \\u20AC \\ud83d\\ude00\"");
    assert_int_equal(j->kind, RT_JSON_STRING);
    assert_string_equal(j->string, "q\" b\\ s/ \b\f\n\r\t \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    rt_json_free(j);
}

/* Lookups go through a sorted index: many keys in scrambled order. */
static void test_json_finds_every_key_of_a_large_object(void **state) {
    (void)state;
    char *text = malloc(20000);
    size_t len = 0;
    len += (size_t)sprintf(text + len, "{");
    for (int i = 0; i < 500; i++)
        len += (size_t)sprintf(text + len, "%s\"k%d\":%d", i ? "," : "", (i * 7919) % 500,
                               (i * 7919) % 500);
    sprintf(text + len, "}");
    RtJson *j = parse(text);
    for (int i = 0; i < 500; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        const RtJson *v = rt_json_get(j, key);
        assert_non_null(v);
        assert_true(v->number == i);
    }
    rt_json_free(j);
    free(text);
}

static void test_json_rejects_what_the_rfc_rejects(void **state) {
    (void)state;
    expect_reject("", "expected a value, found the end of the text at byte 0");
    expect_reject("[1,]", "expected a value, found ']' at byte 3");
    expect_reject("{'a':1}", "expected a string key, found ''' at byte 1");
    expect_reject("01", "expected the end of the text, found '1' at byte 1");
    expect_reject("1.", "expected a digit after '.'");
    expect_reject("-", "expected a digit");
    expect_reject("+1", "expected a value, found '+'");
    expect_reject("1e", "expected a digit in the exponent");
    expect_reject("1e999", "number out of range");
    expect_reject("\"a\nb\"", "raw control character 0x0a in a string at byte 2");
    expect_reject("\"abc", "unterminated string");
    expect_reject("\"\\x\"", "invalid escape '\\x'");
    expect_reject("\"\\u12\"", "expected four hex digits after \\u");
    expect_reject("\"\\ude00\"", "lone low surrogate");
    expect_reject("\"\\ud83d x\"", "without a low surrogate");
    expect_reject("\"\\u0000\"", "\\u0000 in a string is not supported");
    expect_reject("tru", "expected a value");
    expect_reject("NaN", "expected a value, found 'N'");
    expect_reject("{\"a\":1,\"a\":2}", "duplicate key \"a\"");
    expect_reject("{\"a\" 1}", "expected ':' after a key, found '1' at byte 5");
    expect_reject("[1 2]", "expected ',' or ']' in an array, found '2' at byte 3");
    expect_reject("{} {}", "expected the end of the text, found '{' at byte 3");
}

static void test_json_limits_nesting_depth(void **state) {
    (void)state;
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    char why[200] = "";
    RtJson *j = rt_json_parse(deep, 200, why, sizeof why);
    assert_null(j);
    assert_contains(why, "nesting deeper than 64");
    RtJson *ok = rt_json_parse(deep + 40, 120, why, sizeof why); /* 60 deep */
    assert_non_null(ok);
    rt_json_free(ok);
}

/* Text need not be NUL-terminated: only [0, len) is read. */
static void test_json_reads_only_the_given_length(void **state) {
    (void)state;
    const char text[] = {'[', '1', ']', 'x'};
    char why[100];
    RtJson *j = rt_json_parse(text, 3, why, sizeof why);
    assert_non_null(j);
    assert_int_equal(j->n, 1);
    rt_json_free(j);
    assert_null(rt_json_parse(text, 2, why, sizeof why));
    assert_contains(why, "expected ',' or ']' in an array, found the end of the text");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_reads_nested_values_and_looks_up_keys),
        cmocka_unit_test(test_json_decodes_every_escape_and_surrogate_pairs),
        cmocka_unit_test(test_json_finds_every_key_of_a_large_object),
        cmocka_unit_test(test_json_rejects_what_the_rfc_rejects),
        cmocka_unit_test(test_json_limits_nesting_depth),
        cmocka_unit_test(test_json_reads_only_the_given_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
