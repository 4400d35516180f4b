/* test_cli_hostile.c: hostile data and damaged checkpoints as a user of
 * gradc meets them. Bad rows (NaN, infinities, the wrong number of
 * columns), empty files, labels the model has no class for and files of
 * different lengths each stop `gradc train` (and `gradc predict`'s
 * --input) with exit status 1 and a message naming the file and the row.
 * A checkpoint with a flipped bit or cut short is "corrupt checkpoint" to
 * --resume, --weights, predict, eval and a program from `gradc build`:
 * exit status 1, the file untouched, nothing saved. Runs the built binary
 * (GRADC_BINARY) from the source root; every file is in the temporary
 * directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

/* A 2-feature, 3-class softmax classifier on csv(x = columns 0 and 1,
 * y = column 2); --data points it at each file. */
static void write_model(const char *name, const char *data) {
    char text[1000];
    snprintf(text, sizeof text,
             "input  x[B, 2]\n"
             "input  y[B] : int\n"
             "param  W[2, 3] = 0\n"
             "param  b[3] = 0\n"
             "logits = x @ W + b\n"
             "output probs = softmax(logits)\n"
             "loss   = cross_entropy(logits, y)\n"
             "train {\n"
             "  data      = %s\n"
             "  optimizer = adam(lr = 0.1)\n"
             "  batch     = 4\n"
             "  epochs    = 2\n"
             "}\n",
             data);
    write_file(name, text);
}

static const char good_csv[] = "0,0,0\n1,0,1\n0,1,2\n1,1,0\n0.5,0.5,1\n0.25,1,2\n";

/* The model and its data, written once. */
static const char *model(void) {
    static char path[512];
    if (!path[0]) {
        write_model("num.nn", "csv(\"good.csv\", x = [0, 1], y = 2, header = false)");
        write_file("good.csv", good_csv);
        snprintf(path, sizeof path, "%s", tmp("num.nn"));
    }
    return path;
}

/* gradc train on the CSV text must fail with status 1 and want in the
 * message (after the file's path), and save nothing. */
static void expect_train_error(const char *name, const char *text, const char *want) {
    write_file(name, text);
    unlink(tmp("never.safetensors"));
    int rc = gradc("train %s --data %s -q --save %s", model(), tmp(name),
                   tmp("never.safetensors"));
    if (rc != 1)
        fail_msg("%s: exit status %d, stderr: %s", name, rc, err_text);
    char full[700];
    snprintf(full, sizeof full, "%s%s", tmp(name), want);
    assert_contains(err_text, full);
    assert_int_equal(access(tmp("never.safetensors"), F_OK), -1);
}

/* ---- data ---------------------------------------------------------------------- */

static void test_train_refuses_nonfinite_values_naming_line_and_column(void **state) {
    (void)state;
    expect_train_error("nan.csv", "0,0,0\n1,nan,1\n", ":2:2: expected a finite number, found 'nan'");
    expect_train_error("inf.csv", "0,0,0\n1,1,1\n-inf,1,2\n",
                       ":3:1: expected a finite number, found '-inf'");
    expect_train_error("huge.csv", "1e999,0,0\n", ":1:1: expected a finite number, found '1e999'");
    expect_train_error("f32.csv", "0,0,0\n0,4e38,0\n", ":2:2: '4e38' is too large for float32");
}

static void test_train_refuses_rows_with_the_wrong_number_of_columns(void **state) {
    (void)state;
    expect_train_error("wide.csv", "0,0,0\n1,1,1,1\n", ":2: expected 3 fields, found 4");
    expect_train_error("narrow.csv", "0,0,0\n1,1,1\n\n1,1\n", ":4: expected 3 fields, found 2");
}

static void test_train_refuses_empty_files(void **state) {
    (void)state;
    expect_train_error("empty.csv", "", ": the file is empty");
    expect_train_error("blank.csv", "\n\n  \n", ": the file is empty");
    /* A gzip stream of nothing: gzip's own bytes for an empty input. */
    static const unsigned char empty_gz[] = {0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03,
                                             0x03, 0x00, 0, 0, 0, 0, 0, 0, 0, 0};
    FILE *f = fopen(tmp("empty.csv.gz"), "wb");
    assert_non_null(f);
    fwrite(empty_gz, 1, sizeof empty_gz, f);
    fclose(f);
    assert_int_equal(gradc("train %s --data %s -q --save %s", model(), tmp("empty.csv.gz"),
                           tmp("never.safetensors")),
                     1);
    assert_contains(err_text, "empty.csv.gz: the file is empty");
}

/* Labels for a 3-class softmax: 3 (= the class count), -1, 2.5, nan. */
static void test_train_refuses_labels_out_of_range_for_the_classes(void **state) {
    (void)state;
    expect_train_error("three.csv", "0,0,0\n1,1,3\n",
                       ":2:3: value 3 is out of range for input 'y', which takes 0 to 2");
    expect_train_error("neg.csv", "0,0,-1\n", ":1:3: value -1 is out of range for input 'y'");
    expect_train_error("half.csv", "0,0,0\n0,0,2.5\n", ":2:3: expected an integer, found '2.5'");
    expect_train_error("nanlab.csv", "0,0,0\n0,0,nan\n", ":2:3: expected an integer, found 'nan'");
    /* String labels: a fourth species for Iris's three classes. */
    write_file("iris4.csv", "sepal_length,sepal_width,petal_length,petal_width,species\n"
                            "5.1,3.5,1.4,0.2,Iris-setosa\n"
                            "7.0,3.2,4.7,1.4,Iris-versicolor\n"
                            "6.3,3.3,6.0,2.5,Iris-virginica\n"
                            "6.0,3.0,5.0,2.0,Iris-unknown\n");
    assert_int_equal(gradc("train examples/iris.nn --data %s -q --save %s", tmp("iris4.csv"),
                           tmp("never.safetensors")),
                     1);
    /* The sorted labels make the unknown one class 1 and virginica 3. */
    assert_contains(err_text, "iris4.csv:4:5: label 'Iris-virginica' is class 3, out of range "
                              "for 3 classes");
}

/* .npy inputs of different lengths, and IDX images and labels of different
 * counts. */
static void test_train_refuses_files_of_different_lengths(void **state) {
    (void)state;
    /* x: (4, 2) float32 zeros, y: (3,) int32 zeros; .npy 1.0, 64-byte header. */
    const char *dicts[2] = {"{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2), }",
                            "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }"};
    const char *names[2] = {"x.npy", "y.npy"};
    size_t data[2] = {32, 12};
    for (int k = 0; k < 2; k++) {
        unsigned char buf[200] = {0};
        memcpy(buf, "\x93NUMPY\x01\x00\x76\x00", 10); /* header length 118: 10 + 118 = 128 */
        size_t len = strlen(dicts[k]);
        memcpy(buf + 10, dicts[k], len);
        memset(buf + 10 + len, ' ', 117 - len);
        buf[127] = '\n';
        FILE *f = fopen(tmp(names[k]), "wb");
        assert_non_null(f);
        fwrite(buf, 1, 128 + data[k], f);
        fclose(f);
    }
    write_model("npy.nn", "npy(x = \"x.npy\", y = \"y.npy\")");
    assert_int_equal(gradc("train %s -q --save %s", tmp("npy.nn"), tmp("never.safetensors")), 1);
    assert_contains(err_text, "x.npy has 4 rows, but ");
    assert_contains(err_text, "y.npy has 3; every file needs the same row count");
    /* IDX: 2 images of 1 x 2 pixels, 3 labels. */
    static const unsigned char im[] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, 1, 2, 3, 4};
    static const unsigned char lb[] = {0, 0, 8, 1, 0, 0, 0, 3, 0, 1, 2};
    FILE *f = fopen(tmp("im-ubyte"), "wb");
    fwrite(im, 1, sizeof im, f);
    fclose(f);
    f = fopen(tmp("lb-ubyte"), "wb");
    fwrite(lb, 1, sizeof lb, f);
    fclose(f);
    write_model("idx.nn", "idx(\"im-ubyte\", \"lb-ubyte\")");
    assert_int_equal(gradc("train %s -q --save %s", tmp("idx.nn"), tmp("never.safetensors")), 1);
    assert_contains(err_text, "im-ubyte has 2 images, but ");
    assert_contains(err_text, "lb-ubyte has 3 labels");
}

/* predict's --input goes through the same checks: a NaN feature is an
 * error, not a NaN prediction. */
static void test_predict_refuses_nonfinite_input(void **state) {
    (void)state;
    write_file("in.csv", "0,0\n1,inf\n");
    assert_int_equal(gradc("predict %s --input %s", model(), tmp("in.csv")), 1);
    assert_contains(err_text, "in.csv:2:2: expected a finite number, found 'inf'");
    assert_string_equal(out_text, "");
}

/* ---- checkpoints ---------------------------------------------------------------- */

/* A checkpoint of the model trained on good.csv, once. */
static const char *checkpoint(void) {
    static char path[512];
    if (!path[0]) {
        snprintf(path, sizeof path, "%s", tmp("good.safetensors"));
        assert_int_equal(gradc("train %s -q --save %s", model(), path), 0);
    }
    return path;
}

/* A copy of the checkpoint with bit `bit` of byte `at` flipped (at < 0:
 * from the end), or cut to `cut` bytes (cut >= 0); its path. */
static const char *damaged(const char *name, long at, int bit, long cut) {
    long n;
    char *b = file_bytes(checkpoint(), &n);
    if (at < 0)
        at += n;
    if (cut < 0)
        b[at] ^= (char)(1 << bit);
    const char *path = tmp(name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(b, 1, (size_t)(cut >= 0 ? cut : n), f);
    fclose(f);
    free(b);
    return path;
}

/* Every command that reads weights (train --resume and --weights, predict,
 * eval) refuses the damaged file at path with status 1 and "corrupt
 * checkpoint: <want>", saves nothing, and leaves the file as it was. */
static void expect_refused_everywhere(const char *damaged_path, const char *want) {
    char path[512], never[512], good[512];
    snprintf(path, sizeof path, "%s", damaged_path);
    snprintf(never, sizeof never, "%s", tmp("never.safetensors"));
    snprintf(good, sizeof good, "%s", tmp("good.csv"));
    long n0;
    char *before = file_bytes(path, &n0);
    for (int i = 0; i < 4; i++) {
        int rc = i == 0   ? gradc("train %s --resume %s -q --save %s", model(), path, never)
                 : i == 1 ? gradc("train %s --weights %s -q --save %s", model(), path, never)
                 : i == 2 ? gradc("predict %s --weights %s --input %s", model(), path, good)
                          : gradc("eval %s --weights %s", model(), path);
        if (rc != 1)
            fail_msg("command %d: exit status %d: %s", i, rc, err_text);
        char full[800];
        snprintf(full, sizeof full, "%s: corrupt checkpoint: %s", path, want);
        assert_contains(err_text, full);
        assert_int_equal(access(never, F_OK), -1);
    }
    long n1;
    char *after = file_bytes(path, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, (size_t)n0);
    free(before);
    free(after);
}

static void test_flipped_data_bit_is_a_corrupt_checkpoint(void **state) {
    (void)state;
    expect_refused_everywhere(damaged("data.safetensors", -3, 5, -1),
                              "data checksum mismatch: data_crc32 says ");
}

static void test_flipped_header_bit_is_a_corrupt_checkpoint(void **state) {
    (void)state;
    /* Byte 100 is in the metadata after the checksums (the model name or
     * a counter). */
    expect_refused_everywhere(damaged("header.safetensors", 100, 0, -1),
                              "header checksum mismatch: header_crc32 says ");
}

static void test_truncated_checkpoint_is_a_corrupt_checkpoint(void **state) {
    (void)state;
    struct stat st;
    assert_int_equal(stat(checkpoint(), &st), 0);
    char want[200];
    snprintf(want, sizeof want, "truncated: expected %lld bytes, found %lld",
             (long long)st.st_size, (long long)st.st_size - 7);
    expect_refused_everywhere(damaged("cut.safetensors", 0, 0, (long)st.st_size - 7), want);
    expect_refused_everywhere(damaged("empty.safetensors", 0, 0, 0), "truncated: the file is empty");
}

/* The program `gradc build` makes reads weights with the same checks. */
static void test_built_program_refuses_a_corrupt_checkpoint(void **state) {
    (void)state;
    char prog[512], bad[512], cmd[2000];
    snprintf(prog, sizeof prog, "%s", tmp("num_prog"));
    assert_int_equal(gradc("build %s -o %s", model(), prog), 0);
    snprintf(bad, sizeof bad, "%s", damaged("built.safetensors", -1, 7, -1));
    const char *weights[2] = {bad, checkpoint()};
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd, "'%s' predict --weights '%s' --input '%s/good.csv' "
                                  ">'%s/pout' 2>'%s/perr'",
                 prog, weights[k], tmpdir, tmpdir, tmpdir);
        int st = system(cmd);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), k == 0 ? 1 : 0);
    }
    char *msg = read_all(tmp("perr"));
    assert_string_equal(msg, "");
    free(msg);
    snprintf(cmd, sizeof cmd, "'%s' predict --weights '%s' --input '%s/good.csv' 2>'%s/perr'",
             prog, bad, tmpdir, tmpdir);
    assert_int_not_equal(system(cmd), 0);
    msg = read_all(tmp("perr"));
    assert_contains(msg, "built.safetensors: corrupt checkpoint: data checksum mismatch");
    free(msg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_refuses_nonfinite_values_naming_line_and_column),
        cmocka_unit_test(test_train_refuses_rows_with_the_wrong_number_of_columns),
        cmocka_unit_test(test_train_refuses_empty_files),
        cmocka_unit_test(test_train_refuses_labels_out_of_range_for_the_classes),
        cmocka_unit_test(test_train_refuses_files_of_different_lengths),
        cmocka_unit_test(test_predict_refuses_nonfinite_input),
        cmocka_unit_test(test_flipped_data_bit_is_a_corrupt_checkpoint),
        cmocka_unit_test(test_flipped_header_bit_is_a_corrupt_checkpoint),
        cmocka_unit_test(test_truncated_checkpoint_is_a_corrupt_checkpoint),
        cmocka_unit_test(test_built_program_refuses_a_corrupt_checkpoint),
    };
    return cli_main("gradc-hostile", tests);
}
