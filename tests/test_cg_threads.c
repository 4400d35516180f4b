/* test_cg_threads.c: cg_compile on several threads (cg.c, compile_parallel):
 * the programs split into parts, each lowered, optimised and compiled to an
 * object file by a thread of its own; a parallel kernel may be compiled in
 * another part than its program's entry point.
 *
 * What is checked: the split (cg_split_programs) puts every entry point
 * and every kernel in exactly one part, no part empty, only parallel
 * kernels away from their entry point; on two threads the train and eval
 * programs' entry points are apart and each part compiles some of the
 * train program's parallel loops; a train program that checks numerics
 * stays whole. Every function a part defines (entry points, parallel
 * kernels' wrappers) is, once optimised, the one-module function (up to
 * its own linkage, attribute groups and metadata numbers). The code
 * compiled on 2, 3 and 4 threads leaves the whole arena (parameters,
 * optimizer states, every temporary and root) after STEPS train steps and
 * a run of each other program as the one-module code does, to the bit,
 * for examples/mnist_mlp.nn (dropout, Adam with a schedule),
 * examples/nplm.nn (embedding: gather and scatter-add, tanh, softmax),
 * examples/sentiment.nn, examples/mnist_mlp.nn in float64 (the grad
 * program gradc check runs) and with numerics checks; the train steps
 * changed the parameters and the loss is finite. LLVM's failure on one
 * thread, or on two, is one diagnostic each, the verifier's message as on
 * one thread, and nothing leaks (ASan); a compile that keeps the IR text
 * uses one module.
 *
 * Dimension legend: B the batch dimension (planned and run with BATCH).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cg_internal.h"
#include "support.h"

enum { BATCH = 24, STEPS = 3 };

#define EXAMPLE(name) GRADC_SOURCE_DIR "/examples/" name

/* A model's training graph, optimised and planned for every program. */
static Compiled *load(const char *path, int elem_size, unsigned plan_flags) {
    char *text = slurp(path);
    Compiled *c = build_graph(path, text);
    free(text);
    c->plan = ir_plan_flags(c->g, BATCH, elem_size, (1u << PROG_COUNT) - 1, plan_flags);
    return c;
}

static void release(Compiled *c) {
    arena_free(c->a);
    free(c);
}

/* Every input filled with the same made-up rows (ids below the input's
 * limit), every step's hypers set as rt_train sets them, STEPS runs of the
 * train program, then one of grad, eval and predict: the arena, malloc'ed. */
static unsigned char *run_model(Compiled *c, CgModule *cg, double *loss) {
    RtModel *rm = cg_rt_model_jit(c->a, c->g, c->plan, cg);
    RtSession s;
    RtError err;
    if (rt_session_init(&s, rm, 1, &err) != RT_OK)
        fail_msg("%s", err.msg);
    rt_init_params(&s);
    for (int i = 0; i < rm->ninputs; i++) {
        const RtTensor *t = &rm->inputs[i];
        int64_t n = rt_numel(t, BATCH), limit = t->limit > 0 ? t->limit : 2;
        for (int64_t j = 0; j < n; j++) {
            void *p = rt_ptr(&s, t);
            if (t->dtype == RT_INT)
                ((int32_t *)p)[j] = (int32_t)((j * 7 + 3) % limit);
            else if (rm->elem_size == 4)
                ((float *)p)[j] = (float)(0.5 + 0.5 * sin(0.37 * (double)j));
            else
                ((double *)p)[j] = 0.5 + 0.5 * sin(0.37 * (double)j);
        }
    }
    const RtTensor *w = &rm->params[0];
    size_t wbytes = (size_t)rt_numel(w, 1) * (size_t)rm->elem_size;
    unsigned char *w0 = malloc(wbytes);
    memcpy(w0, rt_ptr(&s, w), wbytes);
    assert_non_null(rm->train.fn);
    for (int k = 0; k < STEPS; k++) {
        rt_step_hypers(&s, 1);
        rm->train.fn(s.arena, BATCH);
        s.step++;
    }
    assert_memory_not_equal(w0, rt_ptr(&s, w), wbytes); /* the steps trained */
    free(w0);
    const RtTensor *l = &rm->train.roots[0];
    *loss = rm->elem_size == 4 ? *(float *)rt_ptr(&s, l) : *(double *)rt_ptr(&s, l);
    const RtProgram *others[] = {&rm->grad, &rm->eval, &rm->predict};
    for (int k = 0; k < 3; k++)
        if (others[k]->fn)
            others[k]->fn(s.arena, BATCH);
    unsigned char *mem = malloc(rm->arena_bytes);
    memcpy(mem, s.arena, rm->arena_bytes);
    rt_session_free(&s);
    return mem;
}

static CgModule *compile_on(Compiled *c, int elem_size, int threads, Diags *d) {
    CgOptions o = {.elem_size = elem_size, .opt_level = 2, .no_ir_text = true, .threads = threads};
    return cg_compile(c->g, c->plan, &o, d);
}

/* The arena after run_model() for code compiled on 2, 3 and 4 threads is the
 * one-module code's, byte for byte. */
static void check_same_bits(const char *path, int elem_size, unsigned plan_flags) {
    Compiled *c = load(path, elem_size, plan_flags);
    size_t bytes = c->plan->arena_bytes;
    unsigned char *want = NULL;
    for (int threads = 1; threads <= 4; threads++) {
        CgModule *cg = compile_on(c, elem_size, threads, &c->d);
        if (!cg) {
            diags_print(&c->d, stderr, false);
            fail_msg("%s on %d threads does not compile", path, threads);
        }
        double loss;
        unsigned char *got = run_model(c, cg, &loss);
        assert_true(isfinite(loss));
        if (!want) {
            want = got;
        } else {
            for (size_t i = 0; i < bytes; i++)
                if (got[i] != want[i])
                    fail_msg("%s, %d threads: arena byte %zu is %d, one module's %d", path,
                             threads, i, got[i], want[i]);
            free(got);
        }
        cg_free(cg);
    }
    free(want);
    release(c);
}

/* ---- the split ------------------------------------------------------------------ */

static void test_split_places_everything_once_and_cuts_only_parallel_kernels(void **state) {
    (void)state;
    Compiled *c = load(EXAMPLE("mnist_mlp.nn"), 4, 0);
    /* gradc train's programs: train and eval. */
    Plan *plan = ir_plan_flags(c->g, BATCH, 4, 1u << PROG_TRAIN | 1u << PROG_EVAL, 0);
    for (int n = 1; n <= CG_MAX_THREADS; n++) {
        CgSplit s;
        cg_split_programs(plan, n, c->a, &s);
        assert_int_equal(s.nparts, n);
        bool used[CG_MAX_THREADS] = {false};
        for (int k = 0; k < PROG_COUNT; k++) {
            const Program *p = &plan->prog[k];
            if (p->roots.len == 0) {
                assert_int_equal(s.entry[k], -1);
                continue;
            }
            assert_true(s.entry[k] >= 0 && s.entry[k] < n);
            used[s.entry[k]] = true;
            for (int i = 0; i < p->kernels.len; i++) {
                int at = s.kernel[k][i];
                assert_true(at < n);
                used[at] = true;
                /* Only parallel kernels leave their entry point's part. */
                if (!cg_kernel_parallel(p, &p->kernels.items[i]))
                    assert_int_equal(at, s.entry[k]);
            }
        }
        for (int i = 0; i < n; i++)
            assert_true(used[i]);
    }
    /* Two threads: the train program's entry point in part 0, the eval
     * program's in part 1, which also compiles some of the train program's
     * parallel loops (and part 0 some too). */
    CgSplit s;
    cg_split_programs(plan, 2, c->a, &s);
    assert_int_equal(s.entry[PROG_TRAIN], 0);
    assert_int_equal(s.entry[PROG_EVAL], 1);
    int in[2] = {0, 0};
    const Program *t = &plan->prog[PROG_TRAIN];
    for (int i = 0; i < t->kernels.len; i++)
        if (cg_kernel_parallel(t, &t->kernels.items[i]))
            in[s.kernel[PROG_TRAIN][i]]++;
    assert_true(in[0] > 0 && in[1] > 0);
    /* A train program that checks numerics has no parallel kernel: it
     * stays whole, one part. */
    Plan *chk = ir_plan_flags(c->g, BATCH, 4, 1u << PROG_TRAIN, PLAN_CHECK_NUMERICS);
    cg_split_programs(chk, 4, c->a, &s);
    assert_int_equal(s.nparts, 1);
    for (int i = 0; i < chk->prog[PROG_TRAIN].kernels.len; i++)
        assert_int_equal(s.kernel[PROG_TRAIN][i], 0);
    release(c);
}

/* Remove every occurrence of word from the first line of text that
 * starts with "define". */
static void drop_from_define(char *text, const char *word) {
    char *line = strstr(text, "define ");
    if (!line)
        return;
    size_t n = strlen(word);
    for (char *w; (w = strstr(line, word)) && w < line + strcspn(line, "\n");)
        memmove(w, w + n, strlen(w + n) + 1);
}

/* f's code: its text with attribute group references dropped, metadata
 * numbered in order of first use and the symbol's own linkage and
 * unnamed_addr left out (a function in another part is external), so that
 * functions of different modules compare. */
static char *function_text(LLVMModuleRef m, const char *name) {
    LLVMValueRef f = LLVMGetNamedFunction(m, name);
    if (!f)
        fail_msg("no function %s", name);
    char *raw = LLVMPrintValueToString(f);
    size_t n = strlen(raw);
    char *out = malloc(n + 1);
    long seen[4096];
    int nseen = 0;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if ((raw[i] == '#' || raw[i] == '!') && i + 1 < n && raw[i + 1] >= '0' && raw[i + 1] <= '9') {
            char *end;
            long v = strtol(raw + i + 1, &end, 10);
            if (raw[i] == '!') {
                int j = 0;
                while (j < nseen && seen[j] != v)
                    j++;
                if (j == nseen && nseen < 4096)
                    seen[nseen++] = v;
                o += (size_t)sprintf(out + o, "!%d", j);
            }
            i = (size_t)(end - raw);
            continue;
        }
        out[o++] = raw[i++];
    }
    out[o] = '\0';
    LLVMDisposeMessage(raw);
    drop_from_define(out, "internal ");
    drop_from_define(out, "dso_local ");
    drop_from_define(out, " local_unnamed_addr");
    return out;
}

/* Part `part` of split (one module: NULL) lowered and optimised as
 * cg_compile does it. */
static LLVMModuleRef optimised(Compiled *c, LLVMContextRef ctx, const CgSplit *split, int part,
                               const char *names[PROG_COUNT]) {
    LLVMModuleRef m = cg_lower(ctx, c->g, c->plan, 4, split, part, c->a, names);
    char *err = NULL;
    LLVMTargetMachineRef tm = cg_host_target_machine(2, &err);
    assert_non_null(tm);
    if (!cg_optimize(m, tm, 2, &err))
        fail_msg("%s", err);
    LLVMDisposeTargetMachine(tm);
    return m;
}

static void test_split_keeps_every_function_as_one_module_optimises_it(void **state) {
    (void)state;
    Compiled *c = load(EXAMPLE("mnist_mlp.nn"), 4, 0);
    LLVMContextRef ctx = LLVMContextCreate();
    const char *whole_names[PROG_COUNT];
    LLVMModuleRef whole = optimised(c, ctx, NULL, 0, whole_names);
    CgSplit s;
    cg_split_programs(c->plan, 2, c->a, &s);
    int compared = 0, wrappers = 0;
    for (int part = 0; part < s.nparts; part++) {
        const char *names[PROG_COUNT];
        LLVMModuleRef m = optimised(c, ctx, &s, part, names);
        /* Every function this part defines: entry points and the parallel
         * kernels' wrappers. */
        for (LLVMValueRef f = LLVMGetFirstFunction(m); f; f = LLVMGetNextFunction(f)) {
            if (LLVMIsDeclaration(f))
                continue;
            size_t len;
            const char *name = LLVMGetValueName2(f, &len);
            char *want = function_text(whole, name), *got = function_text(m, name);
            if (strcmp(want, got)) {
                fprintf(stderr, "%s in part %d:\n%s\nin one module:\n%s\n", name, part, got,
                        want);
                fail_msg("%s differs from the one-module code", name);
            }
            free(want);
            free(got);
            compared++;
            wrappers += strstr(name, "_part") != NULL;
        }
        LLVMDisposeModule(m);
    }
    /* Four entry points and every parallel kernel of every program. */
    int par = 0;
    for (int k = 0; k < PROG_COUNT; k++)
        for (int i = 0; i < c->plan->prog[k].kernels.len; i++)
            par += cg_kernel_parallel(&c->plan->prog[k], &c->plan->prog[k].kernels.items[i]);
    assert_int_equal(wrappers, par);
    assert_int_equal(compared, PROG_COUNT + par);
    LLVMDisposeModule(whole);
    LLVMContextDispose(ctx);
    release(c);
}

/* ---- the same bits ------------------------------------------------------------- */

static void test_threads_give_the_bits_of_one_module_mnist(void **state) {
    (void)state;
    rt_pool_setup(2);
    check_same_bits(EXAMPLE("mnist_mlp.nn"), 4, 0);
}

static void test_threads_give_the_bits_of_one_module_embedding(void **state) {
    (void)state;
    rt_pool_setup(2);
    check_same_bits(EXAMPLE("nplm.nn"), 4, 0);
    check_same_bits(EXAMPLE("sentiment.nn"), 4, 0);
}

static void test_threads_give_the_bits_of_one_module_float64(void **state) {
    (void)state;
    rt_pool_setup(2);
    check_same_bits(EXAMPLE("mnist_mlp.nn"), 8, 0);
}

static void test_threads_give_the_bits_of_one_module_checking_numerics(void **state) {
    (void)state;
    rt_pool_setup(2);
    check_same_bits(EXAMPLE("mnist_mlp.nn"), 4, PLAN_CHECK_NUMERICS);
}

/* ---- failures ------------------------------------------------------------------ */

/* The diagnostics of a compile with the given programs' modules broken. */
static Diags fail_with(Compiled *c, int threads, unsigned broken) {
    Diags d;
    diags_init(&d, c->a);
    CgOptions o = {.elem_size = 4, .opt_level = 2, .no_ir_text = true, .threads = threads,
                   .test_break_progs = broken};
    assert_null(cg_compile(c->g, c->plan, &o, &d));
    return d;
}

static const char verifier[] = "cannot optimise the generated code: invalid LLVM IR: ";

static void test_a_failure_on_a_thread_is_the_diagnostic_of_one_module(void **state) {
    (void)state;
    Compiled *c = load(EXAMPLE("mnist_mlp.nn"), 4, 0);
    Diags one = fail_with(c, 1, 1u << PROG_EVAL);
    assert_int_equal(one.nerrors, 1);
    const char *want = one.list.items[0].msg;
    assert_non_null(strstr(want, verifier));
    assert_non_null(strstr(want, "gradc_test_broken"));
    for (int threads = 2; threads <= 4; threads++) {
        Diags d = fail_with(c, threads, 1u << PROG_EVAL);
        assert_int_equal(d.nerrors, 1);
        assert_string_equal(d.list.items[0].msg, want);
    }
    /* The eval and predict programs are in different parts on 4 threads:
     * a diagnostic for each. */
    CgSplit s;
    cg_split_programs(c->plan, 4, c->a, &s);
    assert_int_not_equal(s.entry[PROG_EVAL], s.entry[PROG_PREDICT]);
    Diags d = fail_with(c, 4, 1u << PROG_EVAL | 1u << PROG_PREDICT);
    assert_int_equal(d.nerrors, 2);
    assert_string_equal(d.list.items[0].msg, want);
    assert_string_equal(d.list.items[1].msg, want);
    release(c);
}

static void test_ir_text_means_one_module(void **state) {
    (void)state;
    Compiled *c = load(EXAMPLE("xor.nn"), 4, 0);
    CgOptions keep = {.elem_size = 4, .opt_level = 2, .threads = 2};
    CgModule *cg = cg_compile(c->g, c->plan, &keep, &c->d);
    assert_non_null(cg);
    char *ir = cg_llvm_ir(cg);
    assert_non_null(ir);
    /* Every program's entry point, with its kernels inlined into it. */
    assert_non_null(strstr(ir, "define void @xor_train("));
    assert_non_null(strstr(ir, "define void @xor_predict("));
    assert_null(strstr(ir, "declare void @xor_train_k"));
    free(ir);
    cg_free(cg);
    CgModule *par = compile_on(c, 4, 2, &c->d);
    assert_non_null(par);
    assert_null(cg_llvm_ir(par));
    for (int k = 0; k < PROG_COUNT; k++)
        assert_true((cg_program(par, (ProgramKind)k) != NULL) == (c->plan->prog[k].roots.len > 0));
    cg_free(par);
    release(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_places_everything_once_and_cuts_only_parallel_kernels),
        cmocka_unit_test(test_split_keeps_every_function_as_one_module_optimises_it),
        cmocka_unit_test(test_threads_give_the_bits_of_one_module_mnist),
        cmocka_unit_test(test_threads_give_the_bits_of_one_module_embedding),
        cmocka_unit_test(test_threads_give_the_bits_of_one_module_float64),
        cmocka_unit_test(test_threads_give_the_bits_of_one_module_checking_numerics),
        cmocka_unit_test(test_a_failure_on_a_thread_is_the_diagnostic_of_one_module),
        cmocka_unit_test(test_ir_text_means_one_module),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
