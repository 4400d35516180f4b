/* test_frontend.c: fe_compile as the driver uses it: the train block into
 * TrainConfig (csv columns, data paths, optimizer arguments, defaults), the
 * data file check, and the limits of one run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static char *diag_text(const Diags *d) {
    char *s = arena_strdup(arena, "");
    for (int i = 0; i < d->list.len; i++)
        s = arena_printf(arena, "%s%s", s, diag_format(arena, &d->list.items[i]));
    return s;
}

/* The model at path, which must compile without errors. */
static Model *compile_at(const char *path, const char *text) {
    Diags *d = arena_alloc(arena, sizeof *d);
    diags_init(d, arena);
    Model *m = fe_compile(arena, d, path, text);
    if (!m)
        fail_msg("unexpected errors:\n%s", diag_text(d));
    return m;
}

static const char iris[] =
    "input x[B, 4]\n"
    "input y[B] : int\n"
    "train {\n"
    "  data      = csv(\"data/iris.csv\",\n"
    "                  x = [\"sepal_length\", \"sepal_width\", 2, \"petal_width\"],\n"
    "                  y = 4, header = false)\n"
    "  optimizer = adam(lr = 1e-3, beta1 = 0.9)\n"
    "  batch     = 16\n"
    "  epochs    = 100\n"
    "  seed      = 7\n"
    "  split     = 0.1\n"
    "}\n";

static void test_frontend_train_block_fills_train_config(void **state) {
    (void)state;
    Model *m = compile_at("models/iris/iris.nn", iris);
    const TrainConfig *tc = &m->train;
    const DataSpec *ds = &tc->data;
    assert_int_equal(ds->kind, DATA_CSV);
    assert_string_equal(ds->path, "models/iris/data/iris.csv");
    assert_string_equal(ds->path_written, "data/iris.csv");
    assert_false(ds->header);
    assert_int_equal(ds->nfiles, 1);
    assert_int_equal(ds->files[0].loc.line, 4);
    assert_int_equal(ds->files[0].loc.col, 19);
    assert_int_equal(ds->files[0].loc.len, 15);
    assert_int_equal(ds->loc.line, 4);
    assert_int_equal(ds->loc.col, 15);
    assert_int_equal(ds->ninputs, 2);
    const DataColumns *x = &ds->inputs[0], *y = &ds->inputs[1];
    assert_string_equal(x->input, "x");
    assert_int_equal(x->ncols, 4);
    assert_string_equal(x->names[0], "sepal_length");
    assert_string_equal(x->names[1], "sepal_width");
    assert_null(x->names[2]);
    assert_int_equal(x->indices[2], 2);
    assert_string_equal(x->names[3], "petal_width");
    assert_int_equal(x->loc.line, 5);
    assert_int_equal(x->loc.col, 23);
    assert_string_equal(y->input, "y");
    assert_int_equal(y->ncols, 1);
    assert_null(y->names[0]);
    assert_int_equal(y->indices[0], 4);

    assert_string_equal(tc->optimizer, "adam");
    assert_int_equal(tc->optimizer_loc.line, 7);
    assert_int_equal(tc->optimizer_loc.col, 15);
    assert_int_equal(tc->optimizer_loc.len, 4);
    assert_non_null(tc->optimizer_call); /* its arguments are checked by fe_build_training */
    assert_int_equal(tc->batch, 16);
    assert_int_equal(tc->epochs, 100);
    assert_int_equal(tc->seed, 7);
    assert_true(tc->split == 0.1);
}

static void test_frontend_defaults_without_train_block(void **state) {
    (void)state;
    Model *m = compile_at("m.nn", "input x[B, 1]\n");
    const TrainConfig *tc = &m->train;
    assert_int_equal(tc->data.kind, DATA_NONE);
    assert_true(tc->data.header);
    assert_string_equal(tc->optimizer, "sgd");
    assert_null(tc->optimizer_call);
    assert_true(tc->clip_norm == 0);
    assert_int_equal(tc->batch, 32);
    assert_int_equal(tc->epochs, 10);
    assert_int_equal(tc->seed, 0);
    assert_true(tc->split == 0.0);
    assert_true(fe_check_data(m, &(Diags){0}));
}

static void test_frontend_data_path_is_relative_to_the_model_directory(void **state) {
    (void)state;
    const char *model = "input x[B, 1]\n"
                        "train {\n"
                        "  data = csv(\"%s\", x = 0)\n"
                        "  optimizer = momentum\n"
                        "}\n";
    const char *cases[][3] = {
        /* model path, path written, path resolved */
        {"iris.nn", "data/iris.csv", "data/iris.csv"},
        {"./iris.nn", "iris.csv", "./iris.csv"},
        {"/abs/dir/m.nn", "d.csv", "/abs/dir/d.csv"},
        {"rel/dir/m.nn", "../d.csv", "rel/dir/../d.csv"},
        {"rel/m.nn", "/srv/d.csv", "/srv/d.csv"},
        {"/m.nn", "d.csv", "/d.csv"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Model *m = compile_at(cases[i][0], arena_printf(arena, model, cases[i][1]));
        assert_string_equal(m->train.data.path, cases[i][2]);
        assert_true(m->train.data.header);
        assert_string_equal(m->train.optimizer, "momentum");
        assert_int_equal(m->train.optimizer_loc.line, 4);
    }
}

static void test_frontend_check_data_reports_a_missing_file_at_the_path(void **state) {
    (void)state;
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    Model *m = compile_at("sub/m.nn", "input x[B, 1]\n"
                                      "train {\n"
                                      "  data = csv(\"no/such.csv\", x = 0)\n"
                                      "}\n");
    Diags d;
    diags_init(&d, arena);
    assert_false(fe_check_data(m, &d));
    assert_int_equal(d.nerrors, 1);
    char *want = arena_printf(arena,
                              "sub/m.nn:3:14: error: cannot open data file 'no/such.csv' "
                              "(resolved to '%s/sub/no/such.csv'): No such file or directory\n"
                              "    3 |   data = csv(\"no/such.csv\", x = 0)\n"
                              "      |              ^~~~~~~~~~~~~\n",
                              cwd);
    assert_string_equal(diag_text(&d), want);
}

static void test_frontend_check_data_accepts_a_readable_file_only(void **state) {
    (void)state;
    char dir[] = "/tmp/gradc_fe_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *csv = arena_printf(arena, "%s/data.csv", dir);
    FILE *f = fopen(csv, "w");
    assert_non_null(f);
    fputs("a,b\n1,2\n", f);
    fclose(f);
    char *path = arena_printf(arena, "%s/m.nn", dir);
    Model *m = compile_at(path, "input x[B, 1]\n"
                                "input y[B, 1]\n"
                                "train {\n"
                                "  data = csv(\"data.csv\", x = \"a\", y = [\"b\"])\n"
                                "}\n");
    Diags d;
    diags_init(&d, arena);
    assert_true(fe_check_data(m, &d));
    assert_int_equal(d.nerrors, 0);

    /* a directory is not a data file */
    m = compile_at(path, "input x[B, 1]\n"
                         "train {\n"
                         "  data = csv(\".\", x = 0)\n"
                         "}\n");
    assert_false(fe_check_data(m, &d));
    assert_string_equal(diag_text(&d),
                        arena_printf(arena,
                                     "%s:3:14: error: cannot open data file '.' (resolved to "
                                     "'%s/.'): Is a directory\n"
                                     "    3 |   data = csv(\".\", x = 0)\n"
                                     "      |              ^~~\n",
                                     path, dir));
    remove(csv);
    rmdir(dir);
}

static void test_frontend_keeps_its_own_copy_of_the_source(void **state) {
    (void)state;
    char text[] = "input x[B, 1]\nh = relu(x) + bias\n";
    Diags d;
    diags_init(&d, arena);
    assert_null(fe_compile(arena, &d, "m.nn", text));
    memset(text, '#', sizeof text - 1); /* the caller may free or reuse its buffer */
    assert_string_equal(diag_text(&d), "m.nn:2:15: error: undefined name 'bias'\n"
                                       "    2 | h = relu(x) + bias\n"
                                       "      |               ^~~~\n");
}

static void test_frontend_stops_after_too_many_errors(void **state) {
    (void)state;
    char *text = arena_strdup(arena, "");
    for (int i = 0; i < 100; i++)
        text = arena_printf(arena, "%sh%d = = 1\n", text, i);
    Diags d;
    diags_init(&d, arena);
    assert_null(fe_compile(arena, &d, "m.nn", text));
    assert_int_equal(d.list.len, d.max_errors);
    assert_int_equal(d.nerrors, d.max_errors + 1); /* parsing stopped at the first one past */
}

/* The text of a file of the source tree. */
static char *read_source(const char *rel) {
    char *path = arena_printf(arena, "%s/%s", GRADC_SOURCE_DIR, rel);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    char *text = arena_alloc(arena, 1 << 16);
    size_t n = fread(text, 1, (1 << 16) - 1, f);
    fclose(f);
    text[n] = 0;
    return text;
}

static void test_frontend_bundled_examples_compile_and_find_their_data(void **state) {
    (void)state;
    char *path = arena_printf(arena, "%s/examples/iris.nn", GRADC_SOURCE_DIR);
    Model *m = compile_at(path, read_source("examples/iris.nn"));
    assert_string_equal(m->graph->name, "iris");
    assert_int_equal(m->graph->metric.kind, METRIC_ARGMAX);
    assert_string_equal(m->train.data.path,
                        arena_printf(arena, "%s/examples/data/iris.csv", GRADC_SOURCE_DIR));
    assert_int_equal(m->train.data.inputs[0].ncols, 4);
    assert_true(m->train.split == 0.2);
    Diags d;
    diags_init(&d, arena);
    assert_true(fe_check_data(m, &d));

    path = arena_printf(arena, "%s/examples/xor.nn", GRADC_SOURCE_DIR);
    m = compile_at(path, read_source("examples/xor.nn"));
    assert_int_equal(m->graph->metric.kind, METRIC_THRESHOLD);
    assert_string_equal(m->graph->outputs.items[0].name, "p");
    assert_true(fe_check_data(m, &d));
    assert_int_equal(d.nerrors, 0);

    /* Every other example: its data source's kind, and its files exist. */
    static const struct {
        const char *name;
        DataKind kind;
        int nfiles;
    } more[] = {{"logreg", DATA_CSV, 1},    {"perceptron", DATA_CSV, 1},
                {"simple_nn", DATA_CSV, 1}, {"mnist_mlp", DATA_IDX, 2},
                {"nplm", DATA_TEXT, 1},     {"token_tagger", DATA_CSV, 1},
                {"sentiment", DATA_CSV, 1}};
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
        const char *rel = arena_printf(arena, "examples/%s.nn", more[i].name);
        m = compile_at(arena_printf(arena, "%s/%s", GRADC_SOURCE_DIR, rel), read_source(rel));
        assert_int_equal(m->train.data.kind, more[i].kind);
        assert_int_equal(m->train.data.nfiles, more[i].nfiles);
        assert_true(fe_check_data(m, &d));
    }
    assert_int_equal(d.nerrors, 0);
    m = compile_at("nplm.nn", read_source("examples/nplm.nn"));
    assert_int_equal(m->train.data.context, 8);
    m = compile_at("mnist_mlp.nn", read_source("examples/mnist_mlp.nn"));
    assert_true(fabs(m->train.data.scale - 1 / 255.0) < 1e-15);
}

static const char mlp[] =
    "# a small classifier\n"
    "const H = 8\n"
    "input  x[B, 4]\n"
    "input  y[B] : int\n"
    "param  W1[4, H] ~ he\n"
    "param  b1[H]    = 0\n"
    "param  W2[H, 3] ~ normal(0, std = 0.1)\n"
    "param  b2[3]    = [0.1, -0.2, 1/3]\n"
    "h      = relu(x @ W1 + b1)\n"
    "h      = h * sigmoid(h) - mean(h, axis = -1, keepdims = true) ^ 2\n"
    "logits = h @ W2 + b2\n"
    "output probs = softmax(logits, axis = 1)\n"
    "loss   = cross_entropy(logits, y)\n"
    "train {\n"
    "  data      = csv(\"d.csv\", x = [\"a\", \"b\", 2, 3], y = \"c\", header = true)\n"
    "  optimizer = sgd(lr = 0.1)\n"
    "  batch     = 16\n"
    "  epochs    = 2\n"
    "  split     = 0.1\n"
    "}\n";

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Whatever the input, fe_compile returns a model exactly when it reports no
 * error, every diagnostic points into the file, and a model it returns is
 * well formed. Sanitizers turn any memory or UB mistake into a failure. */
static void test_frontend_survives_mutated_sources(void **state) {
    (void)state;
    static const char alphabet[] = "()[]{},=~+-*/@^:#\"\n 0123456789.eBHxyzW_\t\\";
    size_t base_len = strlen(mlp);
    int compiled = 0;
    for (int iter = 0; iter < 4000; iter++) {
        Arena *a = arena_new();
        char *text = arena_alloc(a, base_len + 64);
        memcpy(text, mlp, base_len + 1);
        size_t len = base_len;
        int nmut = 1 + (int)(rng() % 3);
        for (int k = 0; k < nmut; k++) {
            size_t at = (size_t)(rng() % (len + 1));
            switch (rng() % 3) {
            case 0: /* delete a byte */
                if (at < len) {
                    memmove(text + at, text + at + 1, len - at);
                    len--;
                }
                break;
            case 1: /* insert a byte */
                memmove(text + at + 1, text + at, len - at + 1);
                text[at] = alphabet[rng() % (sizeof alphabet - 1)];
                len++;
                break;
            default: /* replace a byte */
                if (at < len)
                    text[at] = alphabet[rng() % (sizeof alphabet - 1)];
                break;
            }
        }
        int nlines = 1;
        for (size_t i = 0; i < len; i++)
            nlines += text[i] == '\n';
        Diags d;
        diags_init(&d, a);
        Model *m = fe_compile(a, &d, "m.nn", text);
        if ((m != NULL) != (d.nerrors == 0))
            fail_msg("model %p with %d errors for:\n%s", (void *)m, d.nerrors, text);
        for (int i = 0; i < d.list.len; i++) {
            const Diag *dg = &d.list.items[i];
            assert_true(dg->msg[0] != 0);
            assert_non_null(dg->loc.file);
            if (dg->loc.line < 1 || dg->loc.line > nlines || dg->loc.col < 1 || dg->loc.len < 0)
                fail_msg("bad location %d:%d+%d of '%s' in:\n%s", dg->loc.line, dg->loc.col,
                         dg->loc.len, dg->msg, text);
            assert_non_null(diag_format(a, dg));
        }
        if (m) {
            compiled++;
            const Graph *g = m->graph;
            assert_true(!g->loss || g->loss->shape.rank == 0);
            for (int i = 0; i < g->params.len; i++)
                assert_false(shape_has_batch(&g->params.items[i].node->shape));
            for (int i = 0; i < g->nodes.len; i++)
                for (int j = 0; j < g->nodes.items[i]->nsrc; j++)
                    assert_true(g->nodes.items[i]->src[j]->id < g->nodes.items[i]->id);
        }
        arena_free(a);
    }
    /* the mutations are small: some sources still compile, most do not */
    assert_true(compiled > 100);
    assert_true(compiled < 3900);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        TEST(test_frontend_train_block_fills_train_config),
        TEST(test_frontend_defaults_without_train_block),
        TEST(test_frontend_data_path_is_relative_to_the_model_directory),
        TEST(test_frontend_check_data_reports_a_missing_file_at_the_path),
        TEST(test_frontend_check_data_accepts_a_readable_file_only),
        TEST(test_frontend_keeps_its_own_copy_of_the_source),
        TEST(test_frontend_stops_after_too_many_errors),
        TEST(test_frontend_survives_mutated_sources),
        TEST(test_frontend_bundled_examples_compile_and_find_their_data),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
