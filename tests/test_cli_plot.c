/* test_cli_plot.c: gradc train --plot F.svg, the training curves.
 *
 * The chart must be well-formed XML (checked by xmllint), hold one series
 * per figure the run has, with one point per epoch, and the values in its
 * tooltips must be the ones the JSON Lines log records for the same run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "cli.h"

/* Occurrences of needle in hay. */
static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* The value after `"key":` on line `line` (0-based) of JSON Lines text. */
static double log_value(const char *text, int line, const char *key) {
    const char *p = text;
    for (int i = 0; i < line; i++)
        p = strchr(p, '\n') + 1;
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *k = strstr(p, pat);
    const char *eol = strchr(p, '\n');
    assert_true(k && (!eol || k < eol));
    return strtod(k + strlen(pat), NULL);
}

/* The value in the tooltip "epoch E: NAME V". */
static double tooltip(const char *svg, int epoch, const char *name) {
    char pat[96];
    snprintf(pat, sizeof pat, "<title>epoch %d: %s ", epoch, name);
    const char *k = strstr(svg, pat);
    if (!k)
        fail_msg("no point for %s at epoch %d", name, epoch);
    return strtod(k + strlen(pat), NULL);
}

static void test_plot_has_every_series_and_the_logged_values(void **state) {
    (void)state;
    const char *svg = tmp("iris.svg"), *log = tmp("iris.jsonl");
    assert_int_equal(gradc("train examples/iris.nn --epochs 5 --split 0.2 -q --save %s "
                           "--plot %s --log %s",
                           tmp("iris.safetensors"), svg, log),
                     0);
    assert_true(xml_well_formed(svg));
    char *text = read_all(svg), *logged = read_all(log);
    assert_contains(text, "<svg");
    assert_contains(text, ">epoch</text>");
    for (const char *const *s = (const char *const[]){"loss", "val_loss", "accuracy", NULL}; *s;
         s++) {
        char id[64];
        snprintf(id, sizeof id, "id=\"%s\"", *s);
        assert_int_equal(count(text, id), 1);
        for (int e = 1; e <= 5; e++) {
            double want = log_value(logged, e - 1, *s);
            assert_float_equal(tooltip(text, e, *s), want, 1e-5 * fabs(want) + 1e-9);
        }
    }
    /* Five points per series, three series. */
    assert_int_equal(count(text, "<circle"), 15);
    assert_int_equal(count(text, "<polyline"), 3);
    free(text);
    free(logged);
}

/* No held-out rows and no metric: only the training loss is drawn. */
static void test_plot_draws_only_the_figures_there_are(void **state) {
    (void)state;
    const char *svg = tmp("simple_nn.svg");
    assert_int_equal(gradc("train examples/simple_nn.nn --epochs 3 -q --save %s --plot %s",
                           tmp("simple_nn.safetensors"), svg),
                     0);
    assert_true(xml_well_formed(svg));
    char *text = read_all(svg);
    assert_int_equal(count(text, "<polyline"), 1);
    assert_contains(text, "id=\"loss\"");
    assert_null(strstr(text, "val_loss"));
    assert_null(strstr(text, "accuracy"));
    free(text);
}

/* An unwritable path fails before training: exit 1, no checkpoint. */
static void test_plot_to_an_unwritable_path_fails_before_training(void **state) {
    (void)state;
    assert_int_equal(gradc("train examples/xor.nn --epochs 3 --save %s --plot %s/no/such/dir/p.svg",
                           tmp("never.safetensors"), tmpdir),
                     1);
    assert_contains(err_text, "no/such/dir/p.svg");
    assert_int_equal(access(tmp("never.safetensors"), F_OK), -1);
    assert_int_equal(gradc("train examples/xor.nn --plot"), 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plot_has_every_series_and_the_logged_values),
        cmocka_unit_test(test_plot_draws_only_the_figures_there_are),
        cmocka_unit_test(test_plot_to_an_unwritable_path_fails_before_training),
    };
    return cli_main("gradc-plot", tests);
}
