/* test_cli_lib.c: `gradc build M.nn --lib -o NAME`, the C library of a
 * model: examples/embed builds and runs (the loss goes down, the reloaded
 * instance predicts new points well, a bad label is an error naming its
 * row); the library exports nothing but its API, so two models' libraries
 * (and two builds of one) link into one program; a library computes what
 * the JIT computes, bit for bit, also on four threads at once; errors are
 * codes with messages and leave the instance usable; weight files go both
 * ways between gradc and a library; the header is C++ too; a CPU without
 * the target's features gets an error code, not SIGILL. */
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
#include "support.h"

/* gradc build model --lib -o out (both in the temporary directory unless
 * absolute), failing the test with gradc's message if it fails. */
static void build_for(const char *model, const char *out, const char *target) {
    char m[512], o[512];
    snprintf(m, sizeof m, "%s", model[0] == '/' ? model : tmp(model));
    snprintf(o, sizeof o, "%s", out[0] == '/' ? out : tmp(out));
    if (gradc("build '%s' --lib --target %s -q -o '%s'", m, target, o) != 0)
        fail_msg("gradc build %s --lib -o %s:\n%s%s", m, o, out_text, err_text);
    assert_string_equal(out_text, ""); /* -q */
}

static void build(const char *model, const char *out) {
    build_for(model, out, "native");
}

#define CIRCLE GRADC_SOURCE_DIR "/examples/embed/circle.nn"

/* compiler, with warnings as errors (and the sanitizers of a sanitized
 * build, whose runtime the library contains), on files (quoted as needed)
 * and the libraries into tmp(prog); fails the test with the compiler's
 * output. */
static void link_with(const char *compiler, const char *prog, const char *files) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && %s %s -Wall -Wextra -Werror -pedantic -I. -o '%s' %s -lopenblas -lz -lm "
             ">cc.log 2>&1",
             tmpdir, compiler, GRADC_TEST_CC_FLAGS, prog, files);
    if (system(cmd) != 0) {
        char *log = read_all(tmp("cc.log"));
        fail_msg("%s\n%s", cmd, log);
    }
}

static void link_program(const char *prog, const char *files) {
    link_with("cc -std=c11 -pthread", prog, files);
}

/* Run tmp(prog) in the temporary directory with env (may be ""); its
 * output (malloc'd). Fails unless it exits 0. */
static char *run_exe(const char *env, const char *prog) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd '%s' && %s './%s' >run.out 2>&1", tmpdir, env, prog);
    int st = system(cmd);
    char *out = read_all(tmp("run.out"));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("%s failed:\n%s", cmd, out);
    return out;
}

/* ---- the example --------------------------------------------------------------- */

static void test_embed_example_trains_saves_reloads_and_predicts(void **state) {
    (void)state;
    build(CIRCLE, "circle");
    link_program("circle_demo", "'" GRADC_SOURCE_DIR "/examples/embed/main.c' circle.o");
    char *out = run_exe("", "circle_demo");
    /* The loss of epoch 1, then of epochs 5, 10, ..., 30: falling. */
    double loss[7];
    const char *p = out;
    for (int i = 0; i < 7; i++) {
        p = strstr(p, "loss ");
        assert_non_null(p);
        loss[i] = strtod(p + 5, NULL);
        p += 5;
    }
    assert_true(loss[0] > 0.4);
    assert_true(loss[6] < 0.25);
    assert_true(loss[6] < loss[0] / 2);
    p = strstr(out, "accuracy ");
    assert_non_null(p);
    double acc = strtod(p + 9, NULL);
    if (acc < 0.95)
        fail_msg("accuracy %.3f, expected at least 0.95:\n%s", acc, out);
    assert_non_null(strstr(out, "saved circle.safetensors after 1890 steps"));
    assert_non_null(strstr(out, "a label of 7: code 1 (CIRCLE_EINVAL is 1): input 'y', row 3: "
                                "7 is out of range [0, 2)"));
    free(out);
}

/* ---- linking ------------------------------------------------------------------- */

/* A linear regression with a CSV data source (line.csv, written by
 * write_line_data), for gradc train and predict. */
static const char line_nn[] = "input x[B, 3]\n"
                              "input t[B, 1]\n"
                              "output yhat = dense(x, 1)\n"
                              "loss = mse(yhat, t)\n"
                              "train {\n"
                              "  data = csv(\"line.csv\", x = [\"a\", \"b\", \"c\"], t = \"t\")\n"
                              "  optimizer = sgd(lr = 0.1)\n"
                              "  batch = 8\n"
                              "  epochs = 20\n"
                              "  seed = 1\n"
                              "}\n";

/* Row i of line.csv, as the C programs below make it too: eighths, exact
 * in float. */
static void line_row(int i, float x[3], float *t) {
    x[0] = (float)(i % 8) / 8;
    x[1] = (float)(i * 3 % 8) / 8;
    x[2] = (float)(i * 5 % 7) / 8;
    *t = 2 * x[0] - x[1] + 0.5f * x[2] + 1;
}

static void write_line_model(void) {
    write_file("line.nn", line_nn);
    FILE *f = fopen(tmp("line.csv"), "w");
    assert_non_null(f);
    fputs("a,b,c,t\n", f);
    for (int i = 0; i < 64; i++) {
        float x[3], t;
        line_row(i, x, &t);
        fprintf(f, "%.9g,%.9g,%.9g,%.9g\n", x[0], x[1], x[2], t);
    }
    assert_int_equal(fclose(f), 0);
}

/* The C of line_row, for the programs. */
#define LINE_ROW_C                                                                             \
    "static void line_row(int i, float x[3], float *t) {\n"                                    \
    "    x[0] = (float)(i % 8) / 8;\n"                                                         \
    "    x[1] = (float)(i * 3 % 8) / 8;\n"                                                     \
    "    x[2] = (float)(i * 5 % 7) / 8;\n"                                                     \
    "    *t = 2 * x[0] - x[1] + 0.5f * x[2] + 1;\n"                                            \
    "}\n"

/* The global symbols an object defines, one per line, sorted (malloc'd). */
static char *defined_globals(const char *object) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "nm -g --defined-only '%s' | awk '{print $3}' | sort >'%s'",
             tmp(object), tmp("nm.out"));
    assert_int_equal(system(cmd), 0);
    return read_all(tmp("nm.out"));
}

static void test_library_defines_only_its_api(void **state) {
    (void)state;
    write_line_model();
    build("line.nn", "line");
    char *syms = defined_globals("line.o");
    assert_string_equal(syms, "line_create\nline_error\nline_evaluate\nline_free\nline_load\n"
                              "line_predict\nline_save\nline_set_epoch\nline_set_hyper\n"
                              "line_setup\nline_steps\nline_train_step\n");
    free(syms);
    /* What the user's link provides: OpenBLAS, zlib, libm, libc. */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "nm -u '%s' | grep -q cblas_sgemm && nm -u '%s' | grep -q inflate",
             tmp("line.o"), tmp("line.o"));
    assert_int_equal(system(cmd), 0);
}

/* Three libraries in one program: circle.nn built twice (as c1 and c2: the
 * same model's entry points and the same runtime twice) and line.nn. c1 and
 * c2, created with the same seed and fed the same rows, must agree bit for
 * bit (no shared state); line must learn its line. */
static const char three_c[] =
    "#include <stdio.h>\n"
    "#include <string.h>\n"
    "#include \"c1.h\"\n"
    "#include \"c2.h\"\n"
    "#include \"line.h\"\n"
    LINE_ROW_C
    "int main(void) {\n"
    "    c1 *a = c1_create(5);\n"
    "    c2 *b = c2_create(5);\n"
    "    line *l = line_create(1);\n"
    "    float x[64], lx[24], lt[8];\n"
    "    int32_t y[32];\n"
    "    double la = 0, lb = 0, ll = 0, first = 0;\n"
    "    for (int step = 0; step < 200; step++) {\n"
    "        for (int i = 0; i < 32; i++) {\n"
    "            x[2 * i] = (float)((i * 7 + step) % 13) / 3.0f - 2;\n"
    "            x[2 * i + 1] = (float)((i * 5 + step) % 11) / 2.75f - 2;\n"
    "            y[i] = x[2 * i] * x[2 * i] + x[2 * i + 1] * x[2 * i + 1] < 2.56f;\n"
    "        }\n"
    "        for (int i = 0; i < 8; i++)\n"
    "            line_row(8 * step + i, lx + 3 * i, lt + i);\n"
    "        if (c1_train_step(a, x, y, 32, &la) || c2_train_step(b, x, y, 32, &lb) ||\n"
    "            line_train_step(l, lx, lt, 8, &ll)) {\n"
    "            printf(\"error: %s %s %s\\n\", c1_error(a), c2_error(b), line_error(l));\n"
    "            return 1;\n"
    "        }\n"
    "        if (step == 0) first = ll;\n"
    "        if (memcmp(&la, &lb, sizeof la)) { printf(\"step %d: %a != %a\\n\", step, la, lb); return 1; }\n"
    "    }\n"
    "    float p1[64], p2[64];\n"
    "    if (c1_predict(a, x, 32, p1) || c2_predict(b, x, 32, p2) || memcmp(p1, p2, sizeof p1))\n"
    "        return 1;\n"
    "    printf(\"same %a line %g -> %g\\n\", la, first, ll);\n"
    "    c1_free(a); c2_free(b); line_free(l);\n"
    "    return 0;\n"
    "}\n";

static void test_two_models_and_two_builds_link_into_one_program(void **state) {
    (void)state;
    build(CIRCLE, "c1");
    build(CIRCLE, "c2.o"); /* -o c2.o names the library c2 too */
    write_line_model();
    build("line.nn", "line");
    /* Written by rename: no temporary file is left beside them. */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q tmp", tmpdir);
    assert_int_not_equal(system(cmd), 0);
    write_file("three.c", three_c);
    link_program("three", "three.c c1.o c2.o line.o");
    char *out = run_exe("", "three");
    double first = 1, last = 1;
    const char *p = strstr(out, "line ");
    assert_non_null(p);
    assert_int_equal(sscanf(p, "line %lf -> %lf", &first, &last), 2);
    if (!(last < first / 20))
        fail_msg("line's loss went from %g to %g:\n%s", first, last, out);
    free(out);
}

/* ---- the same numbers as the JIT ----------------------------------------------- */

/* Ten steps of circle.nn on fixed rows, seed 3; the losses as %a lines. */
static const char steps_c[] =
    "#include <stdio.h>\n"
    "#include \"circle.h\"\n"
    "int main(void) {\n"
    "    circle_setup(0);\n"
    "    circle *m = circle_create(3);\n"
    "    float x[64];\n"
    "    int32_t y[32];\n"
    "    for (int step = 0; step < 10; step++) {\n"
    "        for (int i = 0; i < 32; i++) {\n"
    "            x[2 * i] = (float)((i * 7 + step) % 13) / 3.0f - 2;\n"
    "            x[2 * i + 1] = (float)((i * 5 + step) % 11) / 2.75f - 2;\n"
    "            y[i] = (i + step) % 2;\n"
    "        }\n"
    "        double loss;\n"
    "        if (circle_train_step(m, x, y, 32 - step, &loss)) return 1;\n"
    "        printf(\"%a\\n\", loss);\n"
    "    }\n"
    "    circle_free(m);\n"
    "    return 0;\n"
    "}\n";

static void test_library_matches_the_jit_bit_for_bit(void **state) {
    (void)state;
    build(CIRCLE, "circle");
    write_file("steps.c", steps_c);
    link_program("steps", "steps.c circle.o");
    char *lib = run_exe("", "steps");

    rt_setup(0);
    Compiled *c = compile_file(CIRCLE, 32, 4);
    RtError err;
    rt_session_free(&c->s);
    assert_int_equal(rt_session_init(&c->s, c->rm, 3, &err), RT_OK);
    rt_init_params(&c->s);
    float *x = rt_ptr(&c->s, &c->rm->inputs[0]);
    int32_t *y = rt_ptr(&c->s, &c->rm->inputs[1]);
    char jit[2048] = "";
    size_t len = 0;
    for (int step = 0; step < 10; step++) {
        for (int i = 0; i < 32; i++) {
            x[2 * i] = (float)((i * 7 + step) % 13) / 3.0f - 2;
            x[2 * i + 1] = (float)((i * 5 + step) % 11) / 2.75f - 2;
            y[i] = (i + step) % 2;
        }
        rt_step_hypers(&c->s, 30);
        c->rm->train.fn(c->s.arena, 32 - step);
        c->s.step++;
        len += (size_t)snprintf(jit + len, sizeof jit - len, "%a\n",
                                (double)*(float *)rt_ptr(&c->s, &c->rm->train.roots[0]));
    }
    assert_string_equal(lib, jit);
    compiled_free(c);
    free(lib);
}

/* Four threads, each with its own instance, train at the same time; each
 * must end where one instance trained alone ends, bit for bit. */
static const char threads_c[] =
    "#include <pthread.h>\n"
    "#include <stdio.h>\n"
    "#include <string.h>\n"
    "#include \"circle.h\"\n"
    "static float x[64 * 32];\n"
    "static int32_t y[32 * 32];\n"
    "static void *train(void *arg) {\n"
    "    double *loss = arg;\n"
    "    circle *m = circle_create(4);\n"
    "    for (int step = 0; step < 300; step++)\n"
    "        if (circle_train_step(m, x + 64 * (step % 32), y + 32 * (step % 32), 32, loss))\n"
    "            *loss = -1;\n"
    "    circle_free(m);\n"
    "    return NULL;\n"
    "}\n"
    "int main(void) {\n"
    "    for (int i = 0; i < 32 * 32; i++) {\n"
    "        x[2 * i] = (float)(i * 37 % 101) / 25.0f - 2;\n"
    "        x[2 * i + 1] = (float)(i * 53 % 103) / 25.5f - 2;\n"
    "        y[i] = x[2 * i] * x[2 * i] + x[2 * i + 1] * x[2 * i + 1] < 2.56f;\n"
    "    }\n"
    "    double alone, loss[4];\n"
    "    train(&alone);\n"
    "    pthread_t t[4];\n"
    "    for (int k = 0; k < 4; k++) pthread_create(&t[k], NULL, train, &loss[k]);\n"
    "    for (int k = 0; k < 4; k++) pthread_join(t[k], NULL);\n"
    "    for (int k = 0; k < 4; k++)\n"
    "        if (memcmp(&loss[k], &alone, sizeof alone)) { printf(\"%a %a\\n\", loss[k], alone); return 1; }\n"
    "    printf(\"loss %a\\n\", alone);\n"
    "    return 0;\n"
    "}\n";

static void test_instances_train_on_threads_at_once(void **state) {
    (void)state;
    build(CIRCLE, "circle");
    write_file("threads.c", threads_c);
    link_program("threads", "threads.c circle.o");
    char *out = run_exe("", "threads");
    double loss = strtod(strstr(out, "loss ") + 5, NULL);
    assert_true(loss > 0 && loss < 0.5);
    free(out);
}

/* ---- errors -------------------------------------------------------------------- */

static const char errors_c[] =
    "#include <math.h>\n"
    "#include <stdio.h>\n"
    "#include <string.h>\n"
    "#include \"circle.h\"\n"
    "#include \"line.h\"\n"
    "static void show(const char *what, int rc, circle *m) {\n"
    "    printf(\"%s: %d %s\\n\", what, rc, rc ? circle_error(m) : \"\");\n"
    "}\n"
    "int main(void) {\n"
    "    circle *m = circle_create(1);\n"
    "    float x[80] = {0};\n"
    "    int32_t y[40] = {0};\n"
    "    double loss = -1;\n"
    "    y[3] = 12;\n"
    "    show(\"id\", circle_train_step(m, x, y, 8, &loss), m);\n"
    "    y[3] = -1;\n"
    "    show(\"negative id\", circle_train_step(m, x, y, 8, &loss), m);\n"
    "    y[3] = 0;\n"
    "    show(\"predict n=0\", circle_predict(m, x, 0, x), m);\n"
    "    show(\"n=0\", circle_train_step(m, x, y, 0, &loss), m);\n"
    "    show(\"n=33\", circle_train_step(m, x, y, 33, &loss), m);\n"
    "    x[5] = NAN;\n"
    "    show(\"nan\", circle_train_step(m, x, y, 8, &loss), m);\n"
    "    x[5] = 0;\n"
    "    show(\"null\", circle_train_step(m, NULL, y, 8, &loss), m);\n"
    "    float probs[80];\n"
    "    show(\"null output\", circle_predict(m, x, 8, NULL), m);\n"
    "    show(\"missing file\", circle_load(m, \"no/such.safetensors\"), m);\n"
    "    show(\"unwritable\", circle_save(m, \"no/such/dir/c.safetensors\"), m);\n"
    "    line *l = line_create(1);\n"
    "    if (line_save(l, \"line.safetensors\")) return 1;\n"
    "    show(\"another model's file\", circle_load(m, \"line.safetensors\"), m);\n"
    "    show(\"hyper\", circle_set_hyper(m, \"lr\", 0.5), m);\n"
    "    show(\"no hyper\", circle_set_hyper(m, \"momentum\", 0.5), m);\n"
    "    show(\"epoch\", circle_set_epoch(m, -1, 3), m);\n"
    "    printf(\"steps %lld loss %g\\n\", (long long)circle_steps(m), loss);\n"
    "    show(\"good step\", circle_train_step(m, x, y, 8, &loss), m);\n"
    "    printf(\"steps %lld loss %.3f\\n\", (long long)circle_steps(m), loss);\n"
    "    show(\"evaluate\", circle_evaluate(m, x, y, 40, &loss, NULL), m);\n"
    "    show(\"predict\", circle_predict(m, x, 40, probs), m);\n"
    "    circle_set_hyper(m, \"lr\", 3e38);\n"
    "    x[0] = 1e30f;\n"
    "    int rc = circle_train_step(m, x, y, 8, &loss);\n"
    "    for (int k = 0; k < 10 && rc == 0; k++) rc = circle_train_step(m, x, y, 8, &loss);\n"
    "    show(\"blown up\", rc, m);\n"
    "    printf(\"error of NULL: %s\\n\", circle_error(NULL));\n"
    "    circle_free(m);\n"
    "    line_free(l);\n"
    "    return 0;\n"
    "}\n";

static void test_errors_are_codes_naming_the_row_and_the_instance_goes_on(void **state) {
    (void)state;
    build(CIRCLE, "circle");
    write_line_model();
    build("line.nn", "line");
    write_file("errors.c", errors_c);
    link_program("errors", "errors.c circle.o line.o");
    char *out = run_exe("", "errors");
    static const char *const want[] = {
        "id: 1 input 'y', row 3: 12 is out of range [0, 2)\n",
        "negative id: 1 input 'y', row 3: -1 is out of range [0, 2)\n",
        "predict n=0: 0 \n",
        "n=0: 1 n is 0, but a training step takes 1 to 32 rows (the batch size the library "
        "was built for)\n",
        "n=33: 1 n is 33, but a training step takes 1 to 32 rows",
        "nan: 1 input 'x', row 2, element 1: nan is not a finite number\n",
        "null: 1 input 'x' is NULL\n",
        "null output: 1 output 'probs' is NULL\n",
        "missing file: 2 cannot open 'no/such.safetensors': No such file or directory\n",
        "unwritable: 2 cannot write 'no/such/dir/c.safetensors': No such file or directory\n",
        "another model's file: 2 line.safetensors: parameter 'h.W' [2, 16] is missing\n",
        "hyper: 0 \n",
        "no hyper: 1 model 'circle' has no hyperparameter 'momentum'; it has: lr, ",
        "epoch: 1 circle_set_epoch: epoch -1 and epochs 3; expected counts\n",
        "steps 0 loss -1\n",
        "good step: 0 \n",
        "steps 1 loss 0.",
        "evaluate: 0 \n",
        "predict: 0 \n",
        "blown up: 4 the loss became ",
        "the parameters are no longer usable",
        "error of NULL: no instance (NULL): circle_create ran out of memory\n",
    };
    const char *p = out;
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        const char *q = strstr(p, want[i]);
        if (!q)
            fail_msg("expected \"%s\" after \"%.60s\" in:\n%s", want[i], p, out);
        p = q + strlen(want[i]);
    }
    free(out);
}

/* Built for x86-64-v3, on a CPU pretending to lack AVX2 (as built programs
 * are tested), the library refuses to run the code instead of dying of
 * SIGILL. */
static const char cpu_c[] = "#include <stdio.h>\n"
                            "#include \"cpu.h\"\n"
                            "int main(void) {\n"
                            "    cpu *m = cpu_create(1);\n"
                            "    float x[3] = {0}, t[1] = {0}, yhat[1];\n"
                            "    int a = cpu_train_step(m, x, t, 1, NULL);\n"
                            "    int b = cpu_predict(m, x, 1, yhat);\n"
                            "    int c = cpu_load(m, \"x.safetensors\");\n"
                            "    printf(\"%d %d %d %d: %s\\n\", m != NULL, a, b, c, cpu_error(m));\n"
                            "    cpu_free(m);\n"
                            "    return 0;\n"
                            "}\n";

static void test_missing_cpu_feature_is_an_error_code(void **state) {
    (void)state;
    write_line_model();
    build_for("line.nn", "cpu", "x86-64-v3");
    write_file("cpu.c", cpu_c);
    link_program("cpu", "cpu.c cpu.o");
    char *out = run_exe("GRADC_TEST_PRETEND_CPU_LACKS=bmi2,avx2", "cpu");
    assert_string_equal(out, "1 5 5 5: cpu.o was built for the x86-64-v3 target, whose code "
                             "needs the 'avx2' instructions, and this CPU lacks them (rebuild "
                             "it with gradc build --lib --target native on this machine)\n");
    free(out);
    out = run_exe("GRADC_TEST_PRETEND_CPU_LACKS=avx512f", "cpu"); /* not v3's */
    assert_string_equal(out, "1 0 0 2: cannot open 'x.safetensors': No such file or "
                             "directory\n");
    free(out);
}

/* ---- weight files and other languages ------------------------------------------ */

/* Load what gradc train saved, predict the rows of line.csv, train one more
 * step and save. */
static const char interop_c[] =
    "#include <stdio.h>\n"
    "#include \"line.h\"\n"
    LINE_ROW_C
    "int main(void) {\n"
    "    line *m = line_create(0);\n"
    "    float x[64 * 3], t[64], yhat[64];\n"
    "    for (int i = 0; i < 64; i++) line_row(i, x + 3 * i, t + i);\n"
    "    if (line_load(m, \"trained.safetensors\") || line_predict(m, x, 64, yhat)) {\n"
    "        printf(\"%s\\n\", line_error(m));\n"
    "        return 1;\n"
    "    }\n"
    "    printf(\"steps %lld\\nyhat\\n\", (long long)line_steps(m));\n"
    "    for (int i = 0; i < 64; i++) printf(\"%.9g\\n\", yhat[i]);\n"
    "    double loss;\n"
    "    if (line_train_step(m, x, t, 8, &loss) || line_save(m, \"lib.safetensors\")) return 1;\n"
    "    line_free(m);\n"
    "    return 0;\n"
    "}\n";

static void test_weights_go_both_ways_between_gradc_and_the_library(void **state) {
    (void)state;
    write_line_model();
    if (gradc("train '%s' -q --save '%s'", tmp("line.nn"), tmp("trained.safetensors")) != 0)
        fail_msg("gradc train: %s", err_text);
    build("line.nn", "line");
    write_file("interop.c", interop_c);
    link_program("interop", "interop.c line.o");
    char *lib = run_exe("", "interop");
    /* 64 rows, batches of 8, 20 epochs. */
    assert_true(!strncmp(lib, "steps 160\n", 10));
    /* The same predictions as gradc predict's (the native code is the JIT's). */
    assert_int_equal(gradc("predict '%s' --weights '%s' -q", tmp("line.nn"),
                           tmp("trained.safetensors")),
                     0);
    assert_string_equal(lib + 10, out_text);
    free(lib);
    /* gradc reads what the library saved: predict and eval, and train
     * --resume (the library stores the model hash gradc train checks). */
    assert_int_equal(gradc("eval '%s' --weights '%s' -q", tmp("line.nn"), tmp("lib.safetensors")),
                     0);
    if (gradc("train '%s' -q --resume '%s' --epochs 21 --save '%s'", tmp("line.nn"),
              tmp("lib.safetensors"), tmp("resumed.safetensors")) != 0)
        fail_msg("gradc train --resume: %s", err_text);
}

/* The header compiles as C++ too, and a C++ program links the library. */
static const char cxx_cc[] = "#include \"circle.h\"\n"
                             "#include <cstdio>\n"
                             "int main() {\n"
                             "    circle *m = circle_create(1);\n"
                             "    float x[2] = {0.1f, 0.2f}, p[2];\n"
                             "    int rc = circle_predict(m, x, 1, p);\n"
                             "    std::printf(\"%d %.3f\\n\", rc, p[0] + p[1]);\n"
                             "    circle_free(m);\n"
                             "    return rc;\n"
                             "}\n";

static void test_header_is_cxx_too(void **state) {
    (void)state;
    build(CIRCLE, "circle");
    write_file("cxx.cc", cxx_cc);
    link_with("c++", "cxx", "cxx.cc circle.o");
    char *out = run_exe("", "cxx");
    assert_string_equal(out, "0 1.000\n");
    free(out);
}

/* ---- the name ---------------------------------------------------------------------- */

static void test_library_name_must_be_a_c_identifier(void **state) {
    (void)state;
    write_line_model();
    assert_int_equal(gradc("build '%s' --lib -o '%s'", tmp("line.nn"), tmp("my-line")), 1);
    assert_contains(err_text, "'my-line' is not a C identifier");
    assert_int_equal(gradc("build '%s' --lib -o '%s'", tmp("line.nn"), tmp("int")), 1);
    assert_contains(err_text, "'int' is a C or C++ keyword");
    assert_int_equal(access(tmp("my-line.o"), F_OK), -1);
    assert_int_equal(access(tmp("int.h"), F_OK), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embed_example_trains_saves_reloads_and_predicts),
        cmocka_unit_test(test_library_defines_only_its_api),
        cmocka_unit_test(test_two_models_and_two_builds_link_into_one_program),
        cmocka_unit_test(test_library_matches_the_jit_bit_for_bit),
        cmocka_unit_test(test_instances_train_on_threads_at_once),
        cmocka_unit_test(test_errors_are_codes_naming_the_row_and_the_instance_goes_on),
        cmocka_unit_test(test_missing_cpu_feature_is_an_error_code),
        cmocka_unit_test(test_weights_go_both_ways_between_gradc_and_the_library),
        cmocka_unit_test(test_header_is_cxx_too),
        cmocka_unit_test(test_library_name_must_be_a_c_identifier),
    };
    return cli_main("gradc-lib", tests);
}
