/* test_rt_csv.c: loading CSV files for a model: the dialect, column
 * selection, numbers, class ids, and errors that name file, row and column.
 * Files under tests/data are read relative to tests/ (the working
 * directory); edge cases are written to a temporary directory. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtime/rt.h"

#define assert_contains(hay, needle)                                                        \
    do {                                                                                    \
        if (!strstr((hay), (needle)))                                                       \
            fail_msg("expected \"%s\" in \"%s\"", (needle), (hay));                         \
    } while (0)

static char tmpdir[] = "/tmp/gradc_test_csv_XXXXXX";

/* A file in the temporary directory holding text; returns its path. */
static const char *write_tmp(const char *name, const char *text) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* Model: x [B, 2] float, y [B] int with y in [0, 3). */
static const RtTensor xy_inputs[] = {
    {.name = "x", .dtype = RT_FLOAT, .rank = 2, .dims = {RT_DIM_BATCH, 2}, .offset = 0},
    {.name = "y", .dtype = RT_INT, .rank = 1, .dims = {RT_DIM_BATCH}, .offset = 512, .limit = 3},
};

static RtModel xy_model(int elem_size) {
    RtModel m = {.name = "xy", .elem_size = elem_size, .max_batch = 16, .arena_bytes = 1024,
                 .ninputs = 2, .inputs = xy_inputs};
    return m;
}

static const RtColumnSel cols_01[] = {{NULL, 0}, {NULL, 1}};
static const RtColumnSel cols_2[] = {{NULL, 2}};
static const RtCsvInput feed_by_index[] = {{"x", 2, cols_01}, {"y", 1, cols_2}};

static RtCsvSpec by_index(const char *path, bool header) {
    RtCsvSpec spec = {.path = path, .header = header, .ninputs = 2, .inputs = feed_by_index};
    return spec;
}

static float xf(const RtDataset *d, int64_t i) {
    return ((const float *)d->data[0])[i];
}

static int32_t yi(const RtDataset *d, int64_t i) {
    return ((const int32_t *)d->data[1])[i];
}

/* Load and expect an error containing want; the dataset stays empty. */
static void expect_error(const RtModel *m, const RtCsvSpec *spec, const char *want) {
    RtDataset d;
    RtError err = {""};
    assert_int_equal(rt_load_csv(&d, m, spec, &err), RT_FAIL);
    assert_contains(err.msg, want);
    assert_int_equal(d.n, 0);
    assert_null(d.data);
}

/* tests/data/tiny.csv: CRLF, a quoted header name, quoted numbers, spaces
 * around fields, a blank line, string labels (bird 0, cat 1, dog 2). */
static void test_csv_reads_quotes_crlf_blank_lines_and_string_labels(void **state) {
    (void)state;
    RtModel m = xy_model(4);
    static const RtColumnSel xcols[] = {{"x1", 0}, {"x2", 0}};
    static const RtColumnSel ycols[] = {{"label", 0}};
    RtCsvInput feeds[] = {{"y", 1, ycols}, {"x", 2, xcols}}; /* any order */
    RtCsvSpec spec = {.path = "data/tiny.csv", .header = true, .ninputs = 2, .inputs = feeds};
    RtDataset d;
    RtError err = {""};
    assert_int_equal(rt_load_csv(&d, &m, &spec, &err), RT_OK);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.ninputs, 2);
    assert_int_equal(d.row_elems[0], 2);
    assert_int_equal(d.row_elems[1], 1);
    const float want_x[] = {1.5f, -2.0f, 3.0f, 0.4f, 0.25f, 7.0f};
    for (int i = 0; i < 6; i++)
        assert_true(xf(&d, i) == want_x[i]);
    assert_int_equal(yi(&d, 0), 1);
    assert_int_equal(yi(&d, 1), 2);
    assert_int_equal(yi(&d, 2), 0);
    assert_int_equal(d.nclasses, 3);
    assert_string_equal(d.class_names[0], "bird");
    assert_string_equal(d.class_names[1], "cat");
    assert_string_equal(d.class_names[2], "dog");
    rt_dataset_free(&d);
    assert_null(d.data);
}

static void test_csv_without_header_by_index_with_integer_labels_as_double(void **state) {
    (void)state;
    RtModel m = xy_model(8);
    RtCsvSpec spec = by_index(write_tmp("nohdr.csv", "1,2,0\n3.25,-4,2\n5,6e3,1"), false);
    RtDataset d;
    RtError err = {""};
    assert_int_equal(rt_load_csv(&d, &m, &spec, &err), RT_OK);
    assert_int_equal(d.n, 3);
    const double *x = d.data[0];
    assert_true(x[0] == 1 && x[1] == 2 && x[2] == 3.25 && x[3] == -4 && x[4] == 5 && x[5] == 6000);
    assert_int_equal(yi(&d, 0), 0);
    assert_int_equal(yi(&d, 1), 2);
    assert_int_equal(yi(&d, 2), 1);
    assert_int_equal(d.nclasses, 0);
    assert_null(d.class_names);
    rt_dataset_free(&d);
}

static void test_csv_quoted_labels_keep_commas_and_doubled_quotes(void **state) {
    (void)state;
    RtModel m = xy_model(4);
    RtCsvSpec spec = by_index(
        write_tmp("quoted.csv", "1,2,\"a, b\"\n3,4,\"say \"\"hi\"\"\"\n5,6, \"a, b\" \n"), false);
    RtDataset d;
    RtError err = {""};
    assert_int_equal(rt_load_csv(&d, &m, &spec, &err), RT_OK);
    assert_int_equal(d.nclasses, 2);
    assert_string_equal(d.class_names[0], "a, b");
    assert_string_equal(d.class_names[1], "say \"hi\"");
    assert_int_equal(yi(&d, 0), 0);
    assert_int_equal(yi(&d, 1), 1);
    assert_int_equal(yi(&d, 2), 0);
    rt_dataset_free(&d);
}

static void test_csv_reports_row_and_column_of_bad_number(void **state) {
    (void)state;
    RtModel m = xy_model(4);
    RtCsvSpec spec = by_index("data/bad_number.csv", true);
    expect_error(&m, &spec, "data/bad_number.csv:3:2: expected a number, found 'abc'");
}

static void test_csv_rejects_nan_and_inf(void **state) {
    (void)state;
    RtModel m = xy_model(4);
    RtCsvSpec spec = by_index(write_tmp("nan.csv", "1,2,0\n\n4,nan,1\n"), false);
    expect_error(&m, &spec, "nan.csv:3:2: expected a finite number, found 'nan'");
    spec = by_index(write_tmp("inf.csv", "-inf,2,0\n"), false);
    expect_error(&m, &spec, "inf.csv:1:1: expected a finite number, found '-inf'");
}

static void test_csv_reports_row_with_wrong_number_of_fields(void **state) {
    (void)state;
    RtModel m = xy_model(4);
    RtCsvSpec spec = by_index("data/bad_row.csv", true);
    expect_error(&m, &spec, "data/bad_row.csv:4: expected 3 fields, found 2");
}

static void test_csv_label_out_of_range_names_value_and_limit(void **state) {
    (void)state;
    RtModel m = xy_model(4);
    RtCsvSpec spec = by_index(write_tmp("range.csv", "a,b,c\n1,2,0\n1,2,2\n1,2,3\n"), true);
    expect_error(&m, &spec, "range.csv:4:3: value 3 is out of range for input 'y', which takes 0 to 2");
    spec = by_index(write_tmp("neg.csv", "1,2,-1\n"), false);
    expect_error(&m, &spec, "neg.csv:1:3: value -1 is out of range for input 'y', which takes 0 to 2");
}

static void test_csv_string_labels_beyond_limit_are_an_error(void **state) {
    (void)state;
    RtModel m = xy_model(4);
    RtCsvSpec spec = by_index(write_tmp("four.csv", "1,2,a\n1,2,b\n1,2,d\n1,2,c\n"), false);
    expect_error(&m, &spec, "four.csv:3:3: label 'd' is class 3, out of range for 3 classes");
}

static void test_csv_int_input_rejects_fractional_number(void **state) {
    (void)state;
    RtModel m = xy_model(4);
    RtCsvSpec spec = by_index(write_tmp("frac.csv", "1,2,0\n1,2,1.5\n"), false);
    expect_error(&m, &spec, "frac.csv:2:3: expected an integer, found '1.5'");
}

static void test_csv_rejects_a_second_string_label_column(void **state) {
    (void)state;
    static const RtTensor in[] = {
        {.name = "a", .dtype = RT_INT, .rank = 2, .dims = {RT_DIM_BATCH, 2}, .offset = 0},
    };
    RtModel m = {.name = "t", .elem_size = 4, .max_batch = 4, .arena_bytes = 64,
                 .ninputs = 1, .inputs = in};
    RtCsvInput feed[] = {{"a", 2, cols_01}};
    RtCsvSpec spec = {write_tmp("two.csv", "x,1\ny,z\n"), false, 1, feed, NULL, 0, NULL};
    expect_error(&m, &spec, "two.csv:2:2: a second column of string labels");
}

static void test_csv_unknown_header_name_suggests_closest(void **state) {
    (void)state;
    RtModel m = xy_model(4);
    static const RtColumnSel xcols[] = {{"x1", 0}, {"x3", 0}};
    static const RtColumnSel ycols[] = {{"lable", 0}};
    RtCsvInput feeds[] = {{"x", 2, xcols}, {"y", 1, cols_2}};
    RtCsvSpec spec = {"data/tiny.csv", true, 2, feeds, NULL, 0, NULL};
    expect_error(&m, &spec, "data/tiny.csv:1: no column named 'x3' in the header; did you mean "
                            "'x1'?");
    RtCsvInput feeds2[] = {{"x", 2, cols_01}, {"y", 1, ycols}};
    spec.inputs = feeds2;
    expect_error(&m, &spec, "no column named 'lable' in the header; did you mean 'label'?");
    static const RtColumnSel far[] = {{"species", 0}};
    RtCsvInput feeds3[] = {{"x", 2, cols_01}, {"y", 1, far}};
    spec.inputs = feeds3;
    RtDataset d;
    RtError err = {""};
    assert_int_equal(rt_load_csv(&d, &m, &spec, &err), RT_FAIL);
    assert_contains(err.msg, "no column named 'species' in the header");
    assert_null(strstr(err.msg, "did you mean"));
}

static void test_csv_name_without_header_and_index_out_of_range(void **state) {
    (void)state;
    RtModel m = xy_model(4);
    static const RtColumnSel ycols[] = {{"label", 0}};
    RtCsvInput feeds[] = {{"x", 2, cols_01}, {"y", 1, ycols}};
    RtCsvSpec spec = {"data/tiny.csv", false, 2, feeds, NULL, 0, NULL};
    expect_error(&m, &spec, "column 'label' (for input 'y') is selected by name, but the file "
                            "has no header");
    static const RtColumnSel col5[] = {{NULL, 5}};
    RtCsvInput feeds2[] = {{"x", 2, cols_01}, {"y", 1, col5}};
    spec.inputs = feeds2;
    spec.header = true;
    expect_error(&m, &spec, "column index 5 (for input 'y') is out of range: the file has 3 "
                            "columns, 0 to 2");
}

static void test_csv_column_count_must_match_row_elements(void **state) {
    (void)state;
    RtModel m = xy_model(4);
    RtCsvInput feeds[] = {{"x", 1, cols_2}, {"y", 1, cols_2}};
    RtCsvSpec spec = {"data/tiny.csv", true, 2, feeds, NULL, 0, NULL};
    expect_error(&m, &spec, "input 'x' [B, 2] takes 2 values per row, but 1 columns are selected");
}

/* Prediction: an input left out by need is not loaded, and its columns need
 * not exist (the file has no "species"); a needed input still must be fed. */
static void test_csv_need_skips_inputs_and_their_columns(void **state) {
    (void)state;
    RtModel m = xy_model(4);
    static const RtColumnSel xcols[] = {{"x1", 0}, {"x2", 0}};
    static const RtColumnSel ycols[] = {{"species", 0}};
    RtCsvInput feeds[] = {{"x", 2, xcols}, {"y", 1, ycols}};
    const bool need_x[] = {true, false};
    RtCsvSpec spec = {.path = "data/tiny.csv", .header = true, .ninputs = 2, .inputs = feeds,
                      .need = need_x};
    RtDataset d;
    RtError err = {""};
    if (rt_load_csv(&d, &m, &spec, &err) != RT_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(d.n, 3);
    assert_non_null(d.data[0]);
    assert_null(d.data[1]);
    assert_int_equal(d.nclasses, 0);
    assert_true(xf(&d, 5) == 7.0f);
    rt_dataset_free(&d);
    const bool need_y[] = {false, true};
    spec.need = need_y;
    expect_error(&m, &spec, "no column named 'species' in the header");
    spec.ninputs = 1;
    expect_error(&m, &spec, "data for input 'y' is missing");
}

static void test_csv_every_input_fed_exactly_once(void **state) {
    (void)state;
    RtModel m = xy_model(4);
    RtCsvInput only_x[] = {{"x", 2, cols_01}};
    RtCsvSpec spec = {"data/tiny.csv", true, 1, only_x, NULL, 0, NULL};
    expect_error(&m, &spec, "data for input 'y' is missing");
    RtCsvInput extra[] = {{"x", 2, cols_01}, {"y", 1, cols_2}, {"z", 1, cols_2}};
    spec.inputs = extra;
    spec.ninputs = 3;
    expect_error(&m, &spec, "no model input named 'z'");
    RtCsvInput twice[] = {{"x", 2, cols_01}, {"y", 1, cols_2}, {"x", 2, cols_01}};
    spec.inputs = twice;
    expect_error(&m, &spec, "input 'x' is fed twice");
}

static void test_csv_missing_empty_and_header_only_files(void **state) {
    (void)state;
    RtModel m = xy_model(4);
    RtCsvSpec spec = by_index("data/no_such_file.csv", true);
    expect_error(&m, &spec, "cannot open 'data/no_such_file.csv': No such file or directory");
    spec = by_index(write_tmp("empty.csv", ""), true);
    expect_error(&m, &spec, "empty.csv: the file is empty");
    spec = by_index(write_tmp("blank.csv", "\n  \r\n\n"), false);
    expect_error(&m, &spec, "blank.csv: the file is empty");
    spec = by_index(write_tmp("hdr.csv", "a,b,c\n\n"), true);
    expect_error(&m, &spec, "hdr.csv: no data rows");
}

static void test_csv_unterminated_quote_and_junk_after_quote(void **state) {
    (void)state;
    RtModel m = xy_model(4);
    RtCsvSpec spec = by_index(write_tmp("q1.csv", "1,2,0\n1,\"2,0\n"), false);
    expect_error(&m, &spec, "q1.csv:2:2: unterminated quote");
    spec = by_index(write_tmp("q2.csv", "1,\"2\"x,0\n"), false);
    expect_error(&m, &spec, "q2.csv:1:2: expected ',' after a closing quote, found 'x'");
}

/* examples/data/iris.csv: 150 rows; species sorted gives setosa 0,
 * versicolor 1, virginica 2, in blocks of 50. */
static void test_csv_loads_iris_with_class_ids_in_sorted_order(void **state) {
    (void)state;
    static const RtTensor in[] = {
        {.name = "x", .dtype = RT_FLOAT, .rank = 2, .dims = {RT_DIM_BATCH, 4}, .offset = 0},
        {.name = "species", .dtype = RT_INT, .rank = 1, .dims = {RT_DIM_BATCH}, .offset = 2048,
         .limit = 3},
    };
    RtModel m = {.name = "iris", .elem_size = 4, .max_batch = 32, .arena_bytes = 4096,
                 .ninputs = 2, .inputs = in};
    static const RtColumnSel xcols[] = {
        {"sepal_length", 0}, {"sepal_width", 0}, {"petal_length", 0}, {"petal_width", 0}};
    static const RtColumnSel ycols[] = {{"species", 0}};
    RtCsvInput feeds[] = {{"x", 4, xcols}, {"species", 1, ycols}};
    RtCsvSpec spec = {GRADC_SOURCE_DIR "/examples/data/iris.csv", true, 2, feeds, NULL, 0, NULL};
    RtDataset d;
    RtError err = {""};
    assert_int_equal(rt_load_csv(&d, &m, &spec, &err), RT_OK);
    assert_int_equal(d.n, 150);
    assert_true(xf(&d, 0) == 5.1f && xf(&d, 1) == 3.5f && xf(&d, 2) == 1.4f && xf(&d, 3) == 0.2f);
    assert_true(xf(&d, 149 * 4) == 5.9f && xf(&d, 149 * 4 + 3) == 1.8f);
    assert_int_equal(d.nclasses, 3);
    assert_string_equal(d.class_names[0], "Iris-setosa");
    assert_string_equal(d.class_names[1], "Iris-versicolor");
    assert_string_equal(d.class_names[2], "Iris-virginica");
    for (int i = 0; i < 150; i++)
        assert_int_equal(yi(&d, i), i / 50);
    rt_dataset_free(&d);
}

/* Class names given in id order (the weights' for a file with other
 * rows): a label gets the id of its name, whichever labels the file holds
 * and in whatever order; a label not among them, or a name given twice, is
 * an error. */
static void test_csv_given_class_names_fix_the_ids(void **state) {
    (void)state;
    static const RtTensor in[] = {
        {.name = "x", .dtype = RT_FLOAT, .rank = 2, .dims = {RT_DIM_BATCH, 1}, .offset = 0},
        {.name = "y", .dtype = RT_INT, .rank = 1, .dims = {RT_DIM_BATCH}, .offset = 512,
         .limit = 3},
    };
    RtModel m = {.name = "c", .elem_size = 4, .max_batch = 8, .arena_bytes = 1024,
                 .ninputs = 2, .inputs = in};
    static const RtColumnSel xcols[] = {{"x", 0}}, ycols[] = {{"y", 0}};
    RtCsvInput feeds[] = {{"x", 1, xcols}, {"y", 1, ycols}};
    static const char *const names[] = {"zebra", "ant", "moth"}; /* not sorted */
    RtCsvSpec spec = {.path = write_tmp("cls.csv", "x,y\n1,moth\n2,zebra\n3,moth\n"),
                      .header = true, .ninputs = 2, .inputs = feeds, .nclasses = 3,
                      .classes = names};
    RtDataset d;
    RtError err = {""};
    if (rt_load_csv(&d, &m, &spec, &err) != RT_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(yi(&d, 0), 2);
    assert_int_equal(yi(&d, 1), 0);
    assert_int_equal(yi(&d, 2), 2);
    assert_int_equal(d.nclasses, 3);
    assert_string_equal(d.class_names[0], "zebra");
    assert_string_equal(d.class_names[2], "moth");
    rt_dataset_free(&d);
    spec.path = write_tmp("cls2.csv", "x,y\n1,moth\n2,bee\n");
    expect_error(&m, &spec, "cls2.csv:3:2: label 'bee' is not one of the 3 classes the model "
                            "was trained on: 'zebra', 'ant', 'moth'");
    static const char *const twice[] = {"ant", "moth", "ant"};
    spec.classes = twice;
    expect_error(&m, &spec, "the class name 'ant' is given twice");
}

static int setup(void **state) {
    (void)state;
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state) {
    (void)state;
    return nftw(tmpdir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_reads_quotes_crlf_blank_lines_and_string_labels),
        cmocka_unit_test(test_csv_without_header_by_index_with_integer_labels_as_double),
        cmocka_unit_test(test_csv_quoted_labels_keep_commas_and_doubled_quotes),
        cmocka_unit_test(test_csv_reports_row_and_column_of_bad_number),
        cmocka_unit_test(test_csv_rejects_nan_and_inf),
        cmocka_unit_test(test_csv_reports_row_with_wrong_number_of_fields),
        cmocka_unit_test(test_csv_label_out_of_range_names_value_and_limit),
        cmocka_unit_test(test_csv_string_labels_beyond_limit_are_an_error),
        cmocka_unit_test(test_csv_int_input_rejects_fractional_number),
        cmocka_unit_test(test_csv_rejects_a_second_string_label_column),
        cmocka_unit_test(test_csv_unknown_header_name_suggests_closest),
        cmocka_unit_test(test_csv_name_without_header_and_index_out_of_range),
        cmocka_unit_test(test_csv_column_count_must_match_row_elements),
        cmocka_unit_test(test_csv_every_input_fed_exactly_once),
        cmocka_unit_test(test_csv_need_skips_inputs_and_their_columns),
        cmocka_unit_test(test_csv_missing_empty_and_header_only_files),
        cmocka_unit_test(test_csv_unterminated_quote_and_junk_after_quote),
        cmocka_unit_test(test_csv_loads_iris_with_class_ids_in_sorted_order),
        cmocka_unit_test(test_csv_given_class_names_fix_the_ids),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
