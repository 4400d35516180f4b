/* test_cg_aot.c: ahead-of-time code: cg_emit_object writes an object file,
 * cg_write_rt_model_c the model's description as C; linked with the runtime
 * by the system C compiler, the program computes exactly what the JIT does
 * (same code for the native target), and the x86-64-v3 build runs too. */
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

#include "support.h"

static char dir[256];

static const char *in_dir(const char *name) {
    static char path[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/%s", dir, name);
    return path[k];
}

/* A main that trains 3 steps on fixed data and prints every parameter. */
static const char main_c[] =
    "#include <math.h>\n"
    "#include <stdint.h>\n"
    "#include <stdio.h>\n"
    "#include \"runtime/rt.h\"\n"
    "extern const RtModel model;\n"
    "int main(void) {\n"
    "    RtSession s; RtError err;\n"
    "    if (rt_session_init(&s, &model, 7, &err) != RT_OK) { puts(err.msg); return 1; }\n"
    "    rt_init_params(&s);\n"
    "    float *x = rt_ptr(&s, &model.inputs[0]);\n"
    "    float *y = rt_ptr(&s, &model.inputs[1]);\n"
    "    for (int step = 0; step < 3; step++) {\n"
    "        for (int i = 0; i < 8; i++) { x[i] = (float)sin(i + step); y[i / 2] = (float)(i % 3); }\n"
    "        rt_step_hypers(&s, 1);\n"
    "        model.train.fn(s.arena, 4);\n"
    "        s.step++;\n"
    "    }\n"
    "    for (int p = 0; p < model.nparams; p++) {\n"
    "        const float *v = rt_ptr(&s, &model.params[p]);\n"
    "        for (int64_t i = 0; i < rt_numel(&model.params[p], 1); i++) printf(\"%a\\n\", v[i]);\n"
    "    }\n"
    "    rt_session_free(&s);\n"
    "    return 0;\n"
    "}\n";

static const char src[] = "input x[B, 2]\n"
                          "input y[B, 1]\n"
                          "h = dense(x, 3, tanh)\n"
                          "output p = dense(h, 1)\n"
                          "loss = mse(p, y)\n"
                          "train {\n"
                          "  optimizer = adam(lr = 0.01)\n"
                          "}\n";

/* The JIT's parameters after the same 3 steps, as %a lines. */
static char *jit_params(void) {
    Compiled *c = compile_model("aotm.nn", src, 4, 4);
    RtError err;
    rt_session_free(&c->s);
    assert_int_equal(rt_session_init(&c->s, c->rm, 7, &err), RT_OK);
    rt_init_params(&c->s);
    float *x = rt_ptr(&c->s, &c->rm->inputs[0]), *y = rt_ptr(&c->s, &c->rm->inputs[1]);
    for (int step = 0; step < 3; step++) {
        for (int i = 0; i < 8; i++) {
            x[i] = (float)sin(i + step);
            y[i / 2] = (float)(i % 3);
        }
        rt_step_hypers(&c->s, 1);
        c->rm->train.fn(c->s.arena, 4);
        c->s.step++;
    }
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    out[0] = 0;
    for (int p = 0; p < c->rm->nparams; p++) {
        const float *v = rt_ptr(&c->s, &c->rm->params[p]);
        for (int64_t i = 0; i < rt_numel(&c->rm->params[p], 1); i++)
            len += (size_t)snprintf(out + len, cap - len, "%a\n", v[i]);
    }
    compiled_free(c);
    return out;
}

/* Build the model for target into dir/prog and return its output. */
static char *aot_params(const char *target) {
    Compiled *c = compile_model("aotm.nn", src, 4, 4);
    assert_true(cg_emit_object(c->g, c->plan, NULL, target, in_dir("model.o"), &c->d));
    const char *names[PROG_COUNT] = {0};
    RtFn fns[PROG_COUNT] = {0};
    static const char *const progs[PROG_COUNT] = {"train", "grad", "eval", "predict"};
    for (int k = 0; k < PROG_COUNT; k++)
        if (c->plan->prog[k].roots.len)
            names[k] = arena_printf(c->a, "%s_%s", c->g->name, progs[k]);
    RtModel *rm = cg_rt_model(c->a, c->g, c->plan, fns);
    FILE *f = fopen(in_dir("desc.c"), "w");
    assert_non_null(f);
    fputs("#include <math.h>\n#include <stdint.h>\n#include \"runtime/rt.h\"\n", f);
    cg_write_rt_model_c(f, rm, names, "model");
    fclose(f);
    f = fopen(in_dir("main.c"), "w");
    fputs(main_c, f);
    fclose(f);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cc -std=c11 %s -I'%s' -o '%s' '%s' '%s' '%s' '%s' -lopenblas -lz -lm 2>'%s'",
             GRADC_TEST_CC_FLAGS, GRADC_SOURCE_DIR, in_dir("prog"), in_dir("main.c"), in_dir("desc.c"),
             in_dir("model.o"), GRADC_RT_LIB, in_dir("cc.err"));
    if (system(cmd) != 0)
        fail_msg("linking failed: %s", cmd);
    snprintf(cmd, sizeof cmd, "'%s' > '%s'", in_dir("prog"), in_dir("out"));
    int st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    char *out = slurp(in_dir("out"));
    compiled_free(c);
    return out;
}

static void test_native_build_matches_the_jit_bit_for_bit(void **state) {
    (void)state;
    char *jit = jit_params(), *aot = aot_params("native");
    assert_string_equal(aot, jit);
    free(jit);
    free(aot);
}

static void test_portable_targets_build_and_agree_closely(void **state) {
    (void)state;
    char *jit = jit_params(), *v3 = aot_params("x86-64-v3");
    /* Different vector code may round differently: compare as numbers. */
    char *a = jit, *b = v3;
    int n = 0;
    for (;;) {
        char *ea, *eb;
        double x = strtod(a, &ea), y = strtod(b, &eb);
        if (ea == a || eb == b) {
            assert_true(ea == a && eb == b); /* the same number of values */
            break;
        }
        assert_float_equal(x, y, 1e-5 * (1 + fabs(x)));
        a = ea, b = eb, n++;
    }
    assert_int_equal(n, 2 * 3 + 3 + 3 + 1);
    free(jit);
    free(v3);
}

static void test_unknown_target_is_a_diagnostic(void **state) {
    (void)state;
    Compiled *c = compile_model("aotm.nn", src, 4, 4);
    assert_false(cg_emit_object(c->g, c->plan, NULL, "pentium", in_dir("x.o"), &c->d));
    assert_non_null(strstr(c->d.list.items[c->d.list.len - 1].msg, "unknown target 'pentium'"));
    assert_null(cg_target_cpu_features("pentium"));
    const char *const *v4 = cg_target_cpu_features("x86-64-v4");
    assert_string_equal(v4[6], "avx512f");
    compiled_free(c);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/gradc-aot-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_native_build_matches_the_jit_bit_for_bit),
        cmocka_unit_test(test_portable_targets_build_and_agree_closely),
        cmocka_unit_test(test_unknown_target_is_a_diagnostic),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        rc = 1;
    return rc;
}
