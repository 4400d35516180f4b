/* test_cli_predict.c: gradc predict and gradc eval as a user runs them:
 * predictions for every row of a CSV file (with or without the label
 * column), the top classes by name, text generation from a prompt with the
 * vocabulary stored in the weights, loss and accuracy over a data set, exit
 * statuses and messages. Runs the built binary (GRADC_BINARY) from the
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

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Every line after the header has ncols numbers that sum to 1. */
static void assert_probability_rows(const char *csv, int ncols, int nrows) {
    const char *line = strchr(csv, '\n');
    assert_non_null(line);
    int rows = 0;
    for (line++; *line; rows++) {
        double sum = 0;
        char *end;
        for (int c = 0; c < ncols; c++) {
            double v = strtod(line, &end);
            assert_true(end != line && v >= 0 && v <= 1);
            sum += v;
            line = end;
            if (c + 1 < ncols) {
                assert_int_equal(*line, ',');
                line++;
            }
        }
        assert_int_equal(*line, '\n');
        line++;
        assert_float_equal(sum, 1.0, 1e-5);
    }
    assert_int_equal(rows, nrows);
}

/* Iris trained briefly once, for every test that needs weights. */
static const char *iris_weights(void) {
    static char path[512];
    if (!path[0]) {
        snprintf(path, sizeof path, "%s/iris.safetensors", tmpdir);
        assert_int_equal(gradc("train examples/iris.nn -q --epochs 200 --save %s", path), 0);
    }
    return path;
}

static void test_predict_iris_writes_three_probabilities_per_row(void **state) {
    (void)state;
    const char *w = iris_weights();
    assert_int_equal(gradc("predict examples/iris.nn --weights %s", w), 0);
    assert_string_equal(err_text, "");
    assert_true(strncmp(out_text, "probs[0],probs[1],probs[2]\n", 27) == 0);
    assert_int_equal(count_lines(out_text), 151); /* the train block's 150 rows */
    assert_probability_rows(out_text, 3, 150);
}

/* The label column is not needed: the outputs do not depend on y. */
static void test_predict_reads_a_csv_without_labels_into_an_output_file(void **state) {
    (void)state;
    const char *w = iris_weights();
    write_file("new.csv", "petal_width,sepal_length,sepal_width,petal_length\n"
                          "0.2,5.1,3.5,1.4\n2.5,6.3,3.3,6.0\n1.3,5.7,2.8,4.1\n");
    assert_int_equal(gradc("predict examples/iris.nn --weights %s --input %s --output %s", w,
                           tmp("new.csv"), tmp("pred.csv")), 0);
    assert_contains(out_text, "gradc: wrote predictions for 3 rows to");
    char *pred = read_all(tmp("pred.csv"));
    assert_probability_rows(pred, 3, 3);
    /* The first flower is a setosa, the second a virginica. */
    double p[6];
    assert_int_equal(sscanf(strchr(pred, '\n') + 1, "%lf,%lf,%lf\n%lf,%lf,%lf", &p[0], &p[1],
                            &p[2], &p[3], &p[4], &p[5]), 6);
    assert_true(p[0] > p[1] && p[0] > p[2]);
    assert_true(p[5] > p[3] && p[5] > p[4]);
    free(pred);
    /* Same answers on stdout; -q leaves the summary out. */
    assert_int_equal(gradc("predict examples/iris.nn --weights %s --input %s -q", w,
                           tmp("new.csv")), 0);
    assert_int_equal(count_lines(out_text), 4);
}

static void test_predict_user_errors_exit_1_with_a_message(void **state) {
    (void)state;
    const char *w = iris_weights();
    assert_int_equal(gradc("predict examples/iris.nn --weights %s", tmp("missing.safetensors")),
                     1);
    assert_contains(err_text, "gradc: error: cannot open '");
    assert_contains(err_text, "missing.safetensors': No such file or directory");
    write_file("cols.csv", "sepal_length,sepal_width,petal_length\n5.1,3.5,1.4\n");
    assert_int_equal(gradc("predict examples/iris.nn --weights %s --input %s", w,
                           tmp("cols.csv")), 1);
    assert_contains(err_text, "no column named 'petal_width' in the header");
    assert_int_equal(gradc("predict examples/iris.nn --weights %s --input %s", w,
                           tmp("rows.txt")), 1);
    assert_contains(err_text, "cannot tell the format from the name");
    assert_int_equal(gradc("predict examples/iris.nn --weights %s --prompt hi", w), 1);
    assert_contains(err_text, "--prompt generates text, but the model is not trained on text");
    write_file("noout.nn", "input x[B, 1]\nparam w[1, 1] = 0\nh = x @ w\n");
    assert_int_equal(gradc("predict %s --weights %s", tmp("noout.nn"), w), 1);
    assert_contains(err_text, "the model has no 'output' statement");
    /* A failed run leaves no output file behind. */
    assert_int_equal(gradc("predict examples/iris.nn --weights %s --input %s --output %s", w,
                           tmp("cols.csv"), tmp("never.csv")), 1);
    assert_int_not_equal(access(tmp("never.csv"), F_OK), 0);
}

static void test_predict_bad_usage_exits_2(void **state) {
    (void)state;
    assert_int_equal(gradc("predict examples/iris.nn --weights w --bogus"), 2);
    assert_contains(err_text, "gradc predict: unknown option '--bogus'");
    /* Random parameters need trained weights; written-out ones do not. */
    assert_int_equal(gradc("predict examples/iris.nn"), 1);
    assert_contains(err_text, "--weights is required: parameter 'W1' is random until trained");
    assert_int_equal(gradc("predict examples/simple_nn.nn --input examples/data/simple_nn.csv"), 0);
    assert_contains(out_text, "yhat\n");
    assert_float_equal(strtod(strstr(out_text, "yhat\n") + 5, NULL), 0.8617, 5e-5);
    assert_int_equal(gradc("predict --weights w"), 2);
    assert_contains(err_text, "no model file given");
    assert_int_equal(gradc("predict examples/iris.nn --weights w --temperature -1"), 2);
    assert_int_equal(gradc("predict examples/iris.nn --weights w --prompt a --input x.csv"), 2);
    assert_int_equal(gradc("predict --help"), 0);
    assert_contains(out_text, "--temperature T");
    assert_int_equal(gradc("--help"), 0);
    assert_contains(out_text, "predict M.nn");
    assert_int_equal(gradc("predcit"), 2);
    assert_contains(err_text, "did you mean 'predict'?");
}

/* ---- text generation ----------------------------------------------------------
 * A small character model over tests/data/tiny.txt (10 distinct characters),
 * context 3. */
static const char text_model[] =
    "input  ctx[B, 3] : int\n"
    "input  next[B] : int\n"
    "e      = embedding(ctx, 10, 8)\n"
    "x      = reshape(e, [B, 24])\n"
    "logits = dense(x, 10)\n"
    "output probs = softmax(logits)\n"
    "loss   = cross_entropy(logits, next)\n"
    "train {\n"
    "  data      = %s\n"
    "  optimizer = sgd(lr = 0.5)\n"
    "  batch     = 4\n"
    "  epochs    = 60\n"
    "}\n";

static void write_text_model(const char *name, const char *data) {
    char text[1024];
    snprintf(text, sizeof text, text_model, data);
    write_file(name, text);
}

static void test_predict_generates_text_from_a_prompt(void **state) {
    (void)state;
    write_text_model("lm.nn", "text(\"" GRADC_SOURCE_DIR "/tests/data/tiny.txt\", context = 3)");
    assert_int_equal(gradc("train %s -q --save %s", tmp("lm.nn"), tmp("lm.safetensors")), 0);
    char *w = read_all(tmp("lm.safetensors"));
    assert_contains(w + 8, "\"vocab\":\"\\u000a dehlortw\",\"context\":\"3\"");
    free(w);
    assert_int_equal(gradc("predict %s --weights %s --prompt hel --length 20 --seed 3",
                           tmp("lm.nn"), tmp("lm.safetensors")), 0);
    assert_int_equal(strlen(out_text), 3 + 20 + 1);
    assert_true(strncmp(out_text, "hel", 3) == 0);
    assert_int_equal(out_text[23], '\n');
    for (int k = 3; k < 23; k++)
        assert_non_null(strchr("\n dehlortw", out_text[k]));
    char *first = strdup(out_text);
    assert_int_equal(gradc("predict %s --weights %s --prompt hel --length 20 --seed 3",
                           tmp("lm.nn"), tmp("lm.safetensors")), 0);
    assert_string_equal(out_text, first); /* same seed, same text */
    free(first);
    /* Greedy decoding of a well-fit model continues the training text. */
    assert_int_equal(gradc("predict %s --weights %s --prompt \"hold t\" --length 3 "
                           "--temperature 0", tmp("lm.nn"), tmp("lm.safetensors")), 0);
    assert_string_equal(out_text, "hold the \n");
}

static void test_predict_text_errors_name_the_problem(void **state) {
    (void)state;
    write_text_model("lm2.nn", "text(\"" GRADC_SOURCE_DIR "/tests/data/tiny.txt\", context = 3)");
    assert_int_equal(gradc("train %s -q --epochs 1 --save %s", tmp("lm2.nn"),
                           tmp("lm2.safetensors")), 0);
    assert_int_equal(gradc("predict %s --weights %s --prompt hex", tmp("lm2.nn"),
                           tmp("lm2.safetensors")), 1);
    assert_contains(err_text, "the prompt: character 'x' at position 3 is not in the vocabulary "
                              "(10 characters)");
    assert_int_equal(gradc("predict %s --weights %s", tmp("lm2.nn"), tmp("lm2.safetensors")), 1);
    assert_contains(err_text, "give --prompt S to generate text");
    /* The same parameters trained from a CSV of ids carry no vocabulary. */
    write_file("ids.csv", "c0,c1,c2,n\n1,2,3,4\n2,3,4,5\n");
    write_text_model("ids.nn", "csv(\"ids.csv\", ctx = [\"c0\", \"c1\", \"c2\"], next = \"n\")");
    assert_int_equal(gradc("train %s -q --epochs 1 --save %s", tmp("ids.nn"),
                           tmp("ids.safetensors")), 0);
    assert_int_equal(gradc("predict %s --weights %s --prompt hel", tmp("lm2.nn"),
                           tmp("ids.safetensors")), 1);
    assert_contains(err_text, "these weights were not trained on text data");
}

/* ---- --top K ---------------------------------------------------------------------- */

/* Each row's K most likely species by name (the weights carry the class
 * names of the string labels), most likely first, agreeing with the full
 * probabilities. */
static void test_predict_top_names_the_most_likely_classes(void **state) {
    (void)state;
    const char *w = iris_weights();
    write_file("two.csv", "sepal_length,sepal_width,petal_length,petal_width\n"
                          "5.1,3.5,1.4,0.2\n6.3,3.3,6.0,2.5\n");
    assert_int_equal(gradc("predict examples/iris.nn --weights %s --input %s", w, tmp("two.csv")),
                     0);
    double p[6];
    assert_int_equal(sscanf(strchr(out_text, '\n') + 1, "%lf,%lf,%lf\n%lf,%lf,%lf", &p[0],
                            &p[1], &p[2], &p[3], &p[4], &p[5]),
                     6);
    assert_int_equal(gradc("predict examples/iris.nn --weights %s --input %s --top 2", w,
                           tmp("two.csv")),
                     0);
    char want[400];
    snprintf(want, sizeof want,
             "top1,p1,top2,p2\n"
             "Iris-setosa,%.9g,Iris-versicolor,%.9g\n"
             "Iris-virginica,%.9g,Iris-versicolor,%.9g\n",
             p[0], p[1], p[5], p[4]);
    assert_true(p[1] > p[2] && p[4] > p[3]); /* the second choices above */
    assert_string_equal(out_text, want);
    /* every row of the train block's data, all three classes */
    assert_int_equal(gradc("predict examples/iris.nn --weights %s --top 3 -q", w), 0);
    assert_int_equal(count_lines(out_text), 151);
    assert_true(strncmp(out_text, "top1,p1,top2,p2,top3,p3\n", 24) == 0);
}

/* Weights without class names (integer labels) give ids; an output that is
 * not a probability row, or K above the class count, is an error that
 * writes nothing; --top does not go with --prompt. */
static void test_predict_top_uses_ids_without_names_and_checks_the_output(void **state) {
    (void)state;
    write_file("ids.csv", "a,b,label\n0,1,0\n1,0,1\n1,1,2\n0,0,0\n");
    write_file("ids3.nn", "input x[B, 2]\ninput y[B] : int\n"
                          "logits = dense(x, 3)\noutput probs = softmax(logits)\n"
                          "loss = cross_entropy(logits, y)\n"
                          "train {\n  data = csv(\"ids.csv\", x = [\"a\", \"b\"], y = \"label\")\n"
                          "  epochs = 200\n  batch = 4\n  optimizer = sgd(lr = 0.5)\n}\n");
    assert_int_equal(gradc("train %s -q --save %s", tmp("ids3.nn"), tmp("ids3.st")), 0);
    assert_int_equal(gradc("predict %s --weights %s --top 1", tmp("ids3.nn"), tmp("ids3.st")), 0);
    assert_true(strncmp(out_text, "top1,p1\n0,", 10) == 0);
    assert_contains(out_text, "\n1,");
    assert_contains(out_text, "\n2,");
    assert_int_equal(gradc("predict %s --weights %s --top 4", tmp("ids3.nn"), tmp("ids3.st")), 1);
    assert_contains(err_text, "asked for the top 4 classes, but the first output 'probs' [B, 3] "
                              "has 3");
    assert_int_equal(gradc("predict examples/simple_nn.nn --input examples/data/simple_nn.csv "
                           "--top 1 --output %s",
                           tmp("top.csv")),
                     1);
    assert_contains(err_text, "row 1: the first output 'yhat' is not a probability row");
    assert_int_not_equal(access(tmp("top.csv"), F_OK), 0);
    assert_int_equal(gradc("predict examples/simple_nn.nn --input examples/data/simple_nn.csv "
                           "--top 1"),
                     1);
    assert_string_equal(out_text, ""); /* not even the header */
    assert_int_equal(gradc("predict examples/iris.nn --weights w --top 0"), 2);
    assert_contains(err_text, "--top expects a positive number of classes, got '0'");
    assert_int_equal(gradc("predict examples/iris.nn --weights w --top 2 --prompt hi"), 2);
    assert_contains(err_text, "--top is for predictions over a file");
}

/* ---- gradc eval ---------------------------------------------------------------- */

/* The value after `key` in eval's output; NAN when absent. */
static double eval_value(const char *key) {
    const char *at = strstr(out_text, key);
    return at ? strtod(at + strlen(key), NULL) : NAN;
}

/* Trained with --split 0, the training log's last accuracy is on every
 * row, after the last step: gradc eval of the saved weights on the same
 * rows reports the same. */
static void test_eval_reports_the_training_accuracy_of_the_weights(void **state) {
    (void)state;
    assert_int_equal(gradc("train examples/iris.nn -q --split 0 --epochs 300 --log %s --save %s",
                           tmp("e.jsonl"), tmp("e.st")),
                     0);
    double logged = last_log_value(tmp("e.jsonl"), "accuracy");
    assert_int_equal(gradc("eval examples/iris.nn --weights %s", tmp("e.st")), 0);
    assert_contains(out_text, "gradc: examples/iris.nn: eval program compiled in ");
    assert_contains(out_text, "\nrows      150\nloss      ");
    double acc = eval_value("accuracy  ");
    assert_float_equal(acc, 100 * logged, 0.005);
    double loss = eval_value("loss      ");
    assert_true(loss > 0 && loss < 1);
    /* -q: the figures only; --batch changes nothing but the batching. */
    char *first = strdup(strstr(out_text, "rows"));
    assert_int_equal(gradc("eval examples/iris.nn --weights %s -q --batch 7", tmp("e.st")), 0);
    assert_string_equal(out_text, first);
    free(first);
    /* --data: other rows, the same columns */
    write_file("three.csv", "sepal_length,sepal_width,petal_length,petal_width,species\n"
                            "5.1,3.5,1.4,0.2,Iris-setosa\n6.3,3.3,6.0,2.5,Iris-virginica\n"
                            "5.0,3.4,1.5,0.2,Iris-setosa\n");
    assert_int_equal(gradc("eval examples/iris.nn --weights %s -q --data %s", tmp("e.st"),
                           tmp("three.csv")),
                     0);
    assert_contains(out_text, "rows      3\n");
    assert_contains(out_text, "accuracy  100.00%\n");
}

/* A model without a metric reports its loss only; written-out parameters
 * need no weights. */
static void test_eval_without_metric_prints_the_loss(void **state) {
    (void)state;
    assert_int_equal(gradc("eval examples/simple_nn.nn -q"), 0);
    assert_string_equal(out_text, "rows      1\nloss      0.742521\n");
}

static void test_eval_errors_and_usage(void **state) {
    (void)state;
    const char *w = iris_weights();
    assert_int_equal(gradc("eval examples/iris.nn"), 1);
    assert_contains(err_text, "--weights is required: parameter 'W1' is random until trained");
    assert_int_equal(gradc("eval examples/iris.nn --weights %s", tmp("nothing.st")), 1);
    assert_contains(err_text, "nothing.st': No such file or directory");
    write_file("nolabel.csv", "sepal_length,sepal_width,petal_length,petal_width\n5,3,1,0\n");
    assert_int_equal(gradc("eval examples/iris.nn --weights %s --data %s", w,
                           tmp("nolabel.csv")),
                     1);
    assert_contains(err_text, "no column named 'species' in the header");
    write_file("noloss.nn", "input x[B, 1]\nparam w[1, 1] = 0\noutput y = x @ w\n");
    assert_int_equal(gradc("eval %s", tmp("noloss.nn")), 1);
    assert_contains(err_text, "the model has no 'loss = ...' statement, so there is nothing to "
                              "evaluate");
    assert_int_equal(gradc("eval examples/iris.nn --weights %s --bogus", w), 2);
    assert_contains(err_text, "gradc eval: unknown option '--bogus'");
    assert_int_equal(gradc("eval"), 2);
    assert_int_equal(gradc("eval examples/iris.nn --batch 0"), 2);
    assert_int_equal(gradc("eval --help"), 0);
    assert_contains(out_text, "usage: gradc eval M.nn");
    assert_int_equal(gradc("--help"), 0);
    assert_contains(out_text, "eval M.nn");
    assert_int_equal(gradc("evl"), 2);
    assert_contains(err_text, "did you mean 'eval'?");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_predict_iris_writes_three_probabilities_per_row),
        cmocka_unit_test(test_predict_reads_a_csv_without_labels_into_an_output_file),
        cmocka_unit_test(test_predict_user_errors_exit_1_with_a_message),
        cmocka_unit_test(test_predict_bad_usage_exits_2),
        cmocka_unit_test(test_predict_generates_text_from_a_prompt),
        cmocka_unit_test(test_predict_text_errors_name_the_problem),
        cmocka_unit_test(test_predict_top_names_the_most_likely_classes),
        cmocka_unit_test(test_predict_top_uses_ids_without_names_and_checks_the_output),
        cmocka_unit_test(test_eval_reports_the_training_accuracy_of_the_weights),
        cmocka_unit_test(test_eval_without_metric_prints_the_loss),
        cmocka_unit_test(test_eval_errors_and_usage),
    };
    return cli_main("gradc-cli-predict", tests);
}
