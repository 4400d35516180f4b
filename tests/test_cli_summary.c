/* test_cli_summary.c: gradc summary (layers, parameter totals, FLOPs, the
 * memory plan, kernels) against hand counts and against what a real
 * compile allocates, and --time-passes on the compiling commands. Runs the
 * built binary (GRADC_BINARY) from the source root; the real compiles use
 * the libraries, as gradc train does. */
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

#include "cli.h"
#include "codegen/cg.h"
#include "codegen/rtmodel.h"
#include "frontend/frontend.h"
#include "runtime/rt.h"

/* ---- reading the report ------------------------------------------------------------- */

/* The number (with thousands separators) after the first `label` in text,
 * skipping blanks; fails the test if there is none. */
static long long number_after(const char *text, const char *label) {
    const char *p = strstr(text, label);
    if (!p)
        fail_msg("expected \"%s\" in \"%s\"", label, text);
    p += strlen(label);
    while (*p == ' ' || *p == ':')
        p++;
    if (!(*p >= '0' && *p <= '9'))
        fail_msg("no number after \"%s\"", label);
    long long v = 0;
    for (; (*p >= '0' && *p <= '9') || *p == ','; p++)
        if (*p != ',')
            v = v * 10 + (*p - '0');
    return v;
}

/* The line of text that starts with start (malloc'ed); fails if none. */
static char *line_starting(const char *text, const char *start) {
    for (const char *p = text; p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, start, strlen(start))) {
            const char *eol = strchr(p, '\n');
            size_t n = eol ? (size_t)(eol - p) : strlen(p);
            char *line = malloc(n + 1);
            memcpy(line, p, n);
            line[n] = '\0';
            return line;
        }
    fail_msg("no line starting \"%s\" in \"%s\"", start, text);
    return NULL;
}

/* The peak the summary reports. */
static long long summary_peak(void) {
    return number_after(out_text, "peak: the arena the runtime allocates");
}

/* ---- a real compile ------------------------------------------------------------------ */

/* The arena a real compile of the model file allocates: the pipeline of
 * gradc train (cmd_train in driver/gradc.c: the train block's or the given
 * optimizer, every program but grad, float32, batch) or, for a model
 * without a loss, gradc predict's (the predict program). The JIT'd model's
 * RtModel.arena_bytes, after a session has allocated it. */
static size_t real_arena(const char *path, int64_t batch, const char *optimizer) {
    char full[700];
    snprintf(full, sizeof full, "%s/%s", GRADC_SOURCE_DIR, path);
    char *text = read_all(path[0] == '/' ? path : full);
    Arena *a = arena_new();
    Diags d;
    diags_init(&d, a);
    Model *m = fe_compile(a, &d, path, text);
    assert_non_null(m);
    Graph *g = m->graph;
    if (g->loss)
        assert_true(fe_build_training(m, &d, optimizer, NAN));
    ir_optimize(g);
    if (batch <= 0)
        batch = m->train.batch;
    Plan *plan = ir_plan_programs(g, batch, 4, g->loss ? ~(1u << PROG_GRAD) : 1u << PROG_PREDICT);
    CgOptions co = {.elem_size = 4, .opt_level = 2};
    CgModule *cg = cg_compile(g, plan, &co, &d);
    assert_non_null(cg);
    RtModel *rm = cg_rt_model_jit(a, g, plan, cg);
    RtSession s;
    RtError err;
    assert_int_equal(rt_session_init(&s, rm, 1, &err), RT_OK);
    assert_non_null(s.arena);
    size_t bytes = rm->arena_bytes;
    rt_session_free(&s);
    cg_free(cg);
    arena_free(a);
    free(text);
    return bytes;
}

/* ---- the peak is the runtime's arena ------------------------------------------------ */

static void test_summary_peak_is_the_arena_gradc_train_allocates(void **state) {
    (void)state;
    struct {
        const char *model;
        int64_t batch; /* 0: the train block's */
        const char *optimizer;
    } cases[] = {
        {"examples/xor.nn", 0, NULL},
        {"examples/mnist_mlp.nn", 0, NULL},
        {"examples/mnist_mlp.nn", 200, NULL},
        {"examples/mnist_mlp.nn", 7, "sgd(lr = 0.1)"},
        {"examples/nplm.nn", 0, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char args[300] = "";
        int k = snprintf(args, sizeof args, "summary %s", cases[i].model);
        if (cases[i].batch)
            k += snprintf(args + k, sizeof args - (size_t)k, " --batch %lld",
                          (long long)cases[i].batch);
        if (cases[i].optimizer)
            snprintf(args + k, sizeof args - (size_t)k, " --optimizer '%s'", cases[i].optimizer);
        assert_int_equal(gradc("%s", args), 0);
        long long peak = summary_peak();
        size_t real = real_arena(cases[i].model, cases[i].batch, cases[i].optimizer);
        if ((size_t)peak != real)
            fail_msg("%s: summary says %lld bytes, the runtime allocates %zu", args, peak, real);
    }
}

/* Two batch sizes give two different arenas, each the runtime's. */
static void test_summary_peak_follows_the_batch(void **state) {
    (void)state;
    assert_int_equal(gradc("summary examples/mnist_mlp.nn --batch 32"), 0);
    long long small = summary_peak();
    assert_int_equal(gradc("summary examples/mnist_mlp.nn --batch 512"), 0);
    long long big = summary_peak();
    assert_true(big > small);
    assert_int_equal((size_t)small, real_arena("examples/mnist_mlp.nn", 32, NULL));
    assert_int_equal((size_t)big, real_arena("examples/mnist_mlp.nn", 512, NULL));
    /* The batch's inputs: x [B, 784] float32 and y [B] int32. */
    assert_int_equal(number_after(out_text, "inputs (a batch)"), 512 * (784 + 1) * 4);
}

/* The persistent region and the temporaries at the peak add up to the peak. */
static void test_summary_memory_parts_add_up_to_the_peak(void **state) {
    (void)state;
    const char *models[] = {"examples/xor.nn", "examples/mnist_mlp.nn", "examples/nplm.nn",
                            "examples/iris.nn", "examples/sentiment.nn"};
    static const char *const parts[] = {
        "    parameters",   "optimizer state", "inputs (a batch)",
        "hyperparameters",  "gradients",       "activations kept for backward",
        "workspace (other temporaries)", "fragmentation (gaps)"};
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) {
        assert_int_equal(gradc("summary %s", models[i]), 0);
        long long sum = 0;
        for (size_t k = 0; k < sizeof parts / sizeof *parts; k++)
            sum += number_after(out_text, parts[k]);
        /* Two alignment lines: the persistent region's, the temporaries'. */
        const char *pad = strstr(out_text, "alignment padding");
        assert_non_null(pad);
        sum += number_after(pad, "alignment padding");
        sum += number_after(pad + 1, "alignment padding");
        assert_int_equal(sum, summary_peak());
    }
    /* Adam keeps two states per parameter value; the only gradient live
     * at the peak of mnist_mlp is the first layer's weights' [784, 256],
     * being made: every other one was freed by its update, which runs as
     * soon as the gradient is complete. */
    assert_int_equal(gradc("summary examples/mnist_mlp.nn"), 0);
    long long params = number_after(out_text, "    parameters");
    assert_int_equal(params, 203530 * 4);
    assert_int_equal(number_after(out_text, "optimizer state"), 2 * params);
    assert_int_equal(number_after(out_text, "gradients"), 784 * 256 * 4);
}

/* ---- parameters and FLOPs ------------------------------------------------------------ */

static void test_summary_counts_the_parameters_of_each_layer(void **state) {
    (void)state;
    assert_int_equal(gradc("summary examples/mnist_mlp.nn"), 0);
    /* h = dense(x, 256, relu): 784 * 256 + 256; logits = dense(h, 10): 256 * 10 + 10. */
    assert_contains(out_text, "h       dense: matmul, add, relu   [B, 256]  200,960");
    assert_contains(out_text, "logits  dense: matmul, add         [B, 10]     2,570");
    assert_contains(out_text, "y       input (int)                [B]             0");
    assert_int_equal(number_after(out_text, "trainable parameters"),
                     784 * 256 + 256 + 256 * 10 + 10);
    assert_contains(out_text,
                    "trainable parameters: 203,530 (814,120 bytes = 795.0 KiB as float32)");

    assert_int_equal(gradc("summary examples/nplm.nn"), 0);
    /* e.E [65, 16]; hidden [128, 256] + [256]; logits [256, 65] + [65] and
     * the direct connection logits_1.W [128, 65] (the same statement). */
    assert_int_equal(number_after(out_text, "trainable parameters"),
                     65 * 16 + 128 * 256 + 256 + 256 * 65 + 65 + 128 * 65);
    assert_int_equal(number_after(out_text, "[B, 65]  "), 256 * 65 + 65 + 128 * 65);

    /* Plain params go to the layer that first reads them. */
    assert_int_equal(gradc("summary examples/xor.nn"), 0);
    assert_contains(out_text, "h      matmul, add, sigmoid  [B, 4]      12  examples/xor.nn:15");
    assert_contains(out_text, "p      matmul, add, sigmoid  [B, 1]       5  examples/xor.nn:16");
}

/* A function instance's layer is named by its parameters' prefix. */
static void test_summary_names_layers_of_function_instances(void **state) {
    (void)state;
    write_file("fn.nn", "fn block(x, n) {\n  h = dense(x, n, relu)\n  return h\n}\n"
                        "input x[B, 8]\ninput y[B] : int\na = block(x, 16)\nb = block(a, 4)\n"
                        "loss = cross_entropy(b, y)\n");
    assert_int_equal(gradc("summary %s", tmp("fn.nn")), 0);
    char *a = line_starting(out_text, "a.h "), *b = line_starting(out_text, "b.h ");
    assert_contains(a, "dense: matmul, add, relu");
    assert_contains(b, "dense: matmul, add, relu");
    assert_int_equal(number_after(a, "[B, 16]"), 8 * 16 + 16);
    assert_int_equal(number_after(b, "[B, 4]"), 16 * 4 + 4);
    free(a);
    free(b);
    assert_int_equal(number_after(out_text, "trainable parameters"), 8 * 16 + 16 + 16 * 4 + 4);
}

/* xor at batch B = 4, every node of the train program (gradc grad
 * --kernels lists them):
 *   forward   x @ W1       2 * B*4 * 2 (M N K)   64
 *             + b1, sigmoid                 2 * B*4 = 32
 *             h @ W2       2 * B*1 * 4           32
 *             + b2, sigmoid                 2 * B   =  8
 *             bce                               B   =  4
 *             mean (1 per input element)        B   =  4   -> 144
 *   backward  the bce' and sigmoid' loop: div, sub, mul, maximum, sub,
 *             div, mul, mul, mul on [B, 1]   9 * B  = 36
 *             db2 = sum over [B, 1]              B  =  4
 *             dh = g @ W2^T: [B, 4], K = 1   2*B*4  = 32
 *             dW2 = h^T @ g: [4, 1], K = B   2*4*B  = 32
 *             sigmoid' of h: sub, mul, mul  3 * B*4 = 48
 *             db1 = sum over [B, 4]            B*4  = 16
 *             dW1 = x^T @ g: [2, 4], K = B  2*8*B   = 64   -> 232
 *   update    sgd: g + wd * p, lr * g, p - . : 4 ops per value, 17 values = 68
 *   total     444
 * Forward and backward scale with the batch, the update does not. */
static void test_summary_counts_xor_flops_by_hand(void **state) {
    (void)state;
    assert_int_equal(gradc("summary examples/xor.nn"), 0);
    assert_contains(out_text, "FLOPs per training step at batch 4");
    assert_int_equal(number_after(out_text, "\n  forward"), 144);
    assert_int_equal(number_after(out_text, "\n  backward"), 232);
    assert_int_equal(number_after(out_text, "\n  update"), 68);
    assert_int_equal(number_after(out_text, "\n  total"), 444);
    assert_int_equal(gradc("summary examples/xor.nn --batch 8"), 0);
    assert_int_equal(number_after(out_text, "\n  forward"), 288);
    assert_int_equal(number_after(out_text, "\n  backward"), 464);
    assert_int_equal(number_after(out_text, "\n  update"), 68);
    assert_int_equal(number_after(out_text, "\n  total"), 820);
}

/* The train program's kernels: xor's 17, first the forward gemm, last the
 * update of W1 (whose gradient is made last); the FLOPs column adds up to
 * the total. */
static void test_summary_lists_the_kernels_after_fusion(void **state) {
    (void)state;
    assert_int_equal(gradc("summary examples/xor.nn"), 0);
    assert_contains(out_text, "kernels of the train program after fusion: 17\n");
    assert_contains(out_text, "     0  gemm ");
    assert_contains(out_text, "    16  update of W1, 4 ops, 1 store ");
    const char *p = strstr(out_text, "kernels of the train program");
    p = strchr(strchr(p, '\n') + 1, '\n') + 1; /* past the header line */
    long long sum = 0;
    int rows = 0;
    for (; *p; rows++) {
        const char *eol = strchr(p, '\n');
        /* FLOPs: the number before the source column (last field). */
        const char *src = eol;
        while (src[-1] != ' ')
            src--;
        const char *f = src - 1;
        while (*f == ' ')
            f--;
        while (f[-1] != ' ')
            f--;
        sum += number_after(f, "");
        p = eol + 1;
    }
    assert_int_equal(rows, 17);
    assert_int_equal(sum, 444);
}

/* ---- a model without a loss ------------------------------------------------------------ */

static void test_summary_of_a_forward_only_model(void **state) {
    (void)state;
    write_file("fwd.nn", "input x[B, 3]\nparam W[3, 5] ~ glorot\nh = relu(x @ W)\n"
                         "output y = softmax(h)\n");
    assert_int_equal(gradc("summary %s --batch 10", tmp("fwd.nn")), 0);
    assert_contains(out_text, "no loss (forward only)");
    assert_contains(out_text, "FLOPs per forward pass at batch 10 (the predict program)");
    /* x @ W: 2 * 10 * 5 * 3 = 300; relu 50; softmax 5 per element = 250. */
    assert_int_equal(number_after(out_text, "\n  forward"), 600);
    assert_null(strstr(out_text, "backward"));
    assert_null(strstr(out_text, "gradients"));
    assert_null(strstr(out_text, "optimizer state"));
    assert_contains(out_text, "kernels of the predict program after fusion: 3");
    assert_int_equal((size_t)summary_peak(), real_arena(tmp("fwd.nn"), 10, NULL));
}

/* ---- errors -------------------------------------------------------------------------- */

static void test_summary_errors(void **state) {
    (void)state;
    assert_int_equal(gradc("summary"), 2);
    assert_contains(err_text, "no model file given");
    assert_int_equal(gradc("summary examples/xor.nn --bogus"), 2);
    assert_contains(err_text, "unknown option '--bogus'");
    assert_int_equal(gradc("summary examples/xor.nn --batch 0"), 2);
    assert_contains(err_text, "--batch expects an integer from 1 to 16777216, got '0'");
    assert_int_equal(gradc("summary no/such.nn"), 1);
    assert_contains(err_text, "cannot read 'no/such.nn'");
    assert_string_equal(out_text, "");
    assert_int_equal(gradc("summary examples/xor.nn --optimizer 'sdg(lr = 1)'"), 1);
    assert_contains(err_text, "unknown optimizer 'sdg'");
    assert_string_equal(out_text, "");
    write_file("noloss.nn", "input x[B, 1]\nparam w[1, 1] = 0\noutput y = x @ w\n");
    assert_int_equal(gradc("summary %s --optimizer adam", tmp("noloss.nn")), 1);
    assert_contains(err_text, "the model has no 'loss = ...', so --optimizer has nothing");
    assert_int_equal(gradc("summary --help"), 0);
    assert_contains(out_text, "--time-passes");
}

/* ---- --time-passes ---------------------------------------------------------------------- */

/* The table on stderr names every stage in `stages` and ends with a total
 * equal to the sum of its rows (each rounded to 0.001 ms). */
static void assert_timing_table(const char *text, const char *const *stages) {
    const char *t = strstr(text, "gradc: time per compile stage\n");
    if (!t)
        fail_msg("no timing table in \"%s\"", text);
    for (int i = 0; stages[i]; i++) {
        char line[64];
        snprintf(line, sizeof line, "\n  %s ", stages[i]);
        assert_contains(t, line);
    }
    double sum = 0, total = -1;
    int rows = 0;
    for (const char *p = strchr(t, '\n') + 1; *p == ' '; p = strchr(p, '\n') + 1) {
        char name[64];
        double ms;
        assert_int_equal(sscanf(p, " %63[^0-9] %lf ms", name, &ms), 2);
        if (!strncmp(name, "total ", 6)) {
            total = ms;
            break;
        }
        sum += ms;
        rows++;
    }
    assert_true(total > 0);
    assert_true(fabs(sum - total) <= 0.001 * rows + 1e-9);
}

static void test_time_passes_on_train_emit_build_and_summary(void **state) {
    (void)state;
    /* gradc train compiles on every core (one module on one). */
    static const char *const jit[] = {"front end", "autodiff and update", "simplify", "cse",
                                      "dce", "fuse and plan", "llvm-setup", "llvm-lower",
                                      "llvm-verify", "llvm-opt", "llvm-jit", NULL};
    static const char *const jit_threads[] = {"front end", "autodiff and update", "simplify",
                                              "cse", "dce", "fuse and plan", "llvm-setup",
                                              "llvm-compile (threads)", "llvm-link", NULL};
    assert_int_equal(gradc("train examples/xor.nn --steps 1 --time-passes -q --save %s",
                           tmp("x.safetensors")),
                     0);
    bool threads = sysconf(_SC_NPROCESSORS_ONLN) > 1;
    assert_timing_table(err_text, threads ? jit_threads : jit);
    if (threads)
        assert_null(strstr(err_text, "llvm-opt"));

    static const char *const emit[] = {"front end", "llvm-lower", "llvm-opt", "llvm-ir-text",
                                       "llvm-jit", "print", NULL};
    assert_int_equal(gradc("emit examples/xor.nn --llvm --time-passes"), 0);
    assert_timing_table(err_text, emit);
    assert_contains(out_text, "define void @xor_train(");
    static const char *const emit_asm[] = {"llvm-jit", "llvm-asm", "print", NULL};
    assert_int_equal(gradc("emit examples/xor.nn --asm --time-passes"), 0);
    assert_timing_table(err_text, emit_asm);

    static const char *const build[] = {"front end", "fuse and plan", "llvm-lower", "llvm-opt",
                                        "llvm-object", "C source", "cc", NULL};
    assert_int_equal(gradc("build examples/xor.nn -o %s --time-passes -q", tmp("xorprog")), 0);
    assert_timing_table(err_text, build);
    assert_null(strstr(err_text, "llvm-jit"));
    static const char *const lib[] = {"llvm-object", "C source", "objcopy", "cc", "ld",
                                      "install", NULL};
    assert_int_equal(gradc("build examples/xor.nn --lib -o %s --time-passes -q", tmp("xorlib")),
                     0);
    assert_timing_table(err_text, lib);

    static const char *const summary[] = {"front end", "autodiff and update", "fuse and plan",
                                          "report", NULL};
    assert_int_equal(gradc("summary examples/xor.nn"), 0);
    assert_string_equal(err_text, "");
    char *plain = strdup(out_text);
    assert_int_equal(gradc("summary examples/xor.nn --time-passes"), 0);
    assert_timing_table(err_text, summary);
    assert_string_equal(out_text, plain); /* the report is the same, the table on stderr */
    free(plain);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_summary_peak_is_the_arena_gradc_train_allocates),
        cmocka_unit_test(test_summary_peak_follows_the_batch),
        cmocka_unit_test(test_summary_memory_parts_add_up_to_the_peak),
        cmocka_unit_test(test_summary_counts_the_parameters_of_each_layer),
        cmocka_unit_test(test_summary_names_layers_of_function_instances),
        cmocka_unit_test(test_summary_counts_xor_flops_by_hand),
        cmocka_unit_test(test_summary_lists_the_kernels_after_fusion),
        cmocka_unit_test(test_summary_of_a_forward_only_model),
        cmocka_unit_test(test_summary_errors),
        cmocka_unit_test(test_time_passes_on_train_emit_build_and_summary),
    };
    return cli_main("gradc-summary", tests);
}
