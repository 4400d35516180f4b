/* test_alloc_fail.c: every allocation of a compile may fail, and each
 * failure is a clean error with nothing left behind.
 *
 * A compile as the commands run it (driver/compile.h): load_model (reading
 * the file, front end), run_model_from (the model hash), fe_build_training
 * (autodiff, the optimizer rule), compile_plan (passes, fusion, the memory
 * plan), under the out-of-memory handler the commands set. The hook
 * (alloc_set_hook) first counts the allocations of a whole compile, N_total;
 * then for every N in 1..N_total the Nth allocation fails, and the test
 * checks that the compile stopped with the handler's "out of memory"
 * message (compile_out_of_memory, on stderr) and that after freeing the
 * arena every allocation made since the start has been freed.
 * One test goes on through code generation (the code generator's own
 * arenas); LLVM's internal allocations are not the hook's.
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
#include <unistd.h>

#include "codegen/cg.h"
#include "driver/compile.h"

/* ---- the hook ------------------------------------------------------------------ */

static long nallocs; /* allocations so far */
static long live;    /* allocated and not yet freed */
static long fail_at; /* the allocation that fails (1-based); 0: none */

static void *counting_hook(void *ptr, size_t size, void *ud) {
    (void)ud;
    if (size == 0) {
        if (ptr)
            live--;
        free(ptr);
        return NULL;
    }
    if (ptr) /* a resize: base.c makes none, but the hook is general */
        return realloc(ptr, size);
    if (++nallocs == fail_at)
        return NULL;
    void *p = malloc(size);
    if (p)
        live++;
    return p;
}

/* ---- stderr into a file, to read the messages back ----------------------------------- */

static FILE *err_file;
static int saved_stderr = -1;

static void capture_stderr(void) {
    fflush(stderr);
    err_file = tmpfile();
    assert_non_null(err_file);
    saved_stderr = dup(2);
    dup2(fileno(err_file), 2);
}

/* What was written to stderr since the last call (or capture_stderr), into
 * buf; the file is emptied. */
static const char *captured(char *buf, size_t n) {
    fflush(stderr);
    rewind(err_file); /* fd 2 shares the file offset */
    size_t k = fread(buf, 1, n - 1, err_file);
    buf[k] = 0;
    assert_int_equal(ftruncate(fileno(err_file), 0), 0);
    rewind(err_file);
    return buf;
}

static void release_stderr(void) {
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    fclose(err_file);
}

/* ---- one compile ------------------------------------------------------------------ */

typedef enum Outcome { DONE, FAILED, OUT_OF_MEMORY } Outcome;

/* Compile the model at path as gradc train does, up to and including the
 * plan, and with codegen, the code generator on one thread (the hook's
 * counters are not atomic) at -O0 (the JIT's own work is LLVM's, not the
 * hook's). The arena is freed before returning. */
static Outcome compile_once(const char *path, bool codegen) {
    Arena *a = arena_new();
    if (!a) {
        compile_out_of_memory(NULL, path);
        return OUT_OF_MEMORY;
    }
    jmp_buf oom;
    if (setjmp(oom)) {
        compile_out_of_memory(a, path);
        arena_free(a);
        return OUT_OF_MEMORY;
    }
    arena_set_oom(a, &oom);
    Diags d;
    diags_init(&d, a);
    Outcome out = FAILED;
    Model *m = load_model(a, &d, path);
    if (m) {
        RunModel r;
        run_model_from(a, &r, m, NULL, false);
        Plan *plan = NULL;
        if (fe_build_training(m, &d, NULL, NAN) && r.hash)
            plan = compile_plan(&d, m->graph, m->train.batch, 1u << PROG_TRAIN | 1u << PROG_EVAL,
                                4, 0, NULL);
        if (plan && !codegen)
            out = DONE;
        if (plan && codegen) {
            CgOptions co = {.elem_size = 4, .opt_level = 0, .no_ir_text = true, .threads = 1};
            CgModule *cg = cg_compile(m->graph, plan, &co, &d);
            if (cg && cg_program(cg, PROG_TRAIN))
                out = DONE;
            else
                print_diags(&d);
            if (d.nerrors && strstr(d.list.items[0].msg, "out of memory"))
                out = OUT_OF_MEMORY;
            cg_free(cg);
        }
    }
    arena_free(a);
    return out;
}

/* Counts the allocations of a whole compile of path, then fails each one
 * whose number n has (n - 1) % stride == 0 or is within 3 of the end: a
 * clean "out of memory" and no leak every time. Returns N_total. */
static long fail_each(const char *path, bool codegen, long stride) {
    char msg[4096];
    alloc_set_hook(counting_hook, NULL);
    arena_set_chunk_size(16); /* every request above 4 bytes its own allocation */
    capture_stderr();
    nallocs = live = fail_at = 0;
    Outcome o = compile_once(path, codegen);
    const char *text = captured(msg, sizeof msg);
    if (o != DONE) {
        release_stderr();
        fail_msg("%s does not compile: %s", path, text);
    }
    assert_int_equal(live, 0);
    long total = nallocs, tried = 0;
    for (long n = 1; n <= total; n++) {
        if ((n - 1) % stride != 0 && n < total - 3)
            continue;
        nallocs = live = 0;
        fail_at = n;
        o = compile_once(path, codegen);
        text = captured(msg, sizeof msg);
        if (o != OUT_OF_MEMORY || live != 0 || !strstr(text, "out of memory")) {
            release_stderr();
            fail_msg("%s, allocation %ld of %ld failing: outcome %d, %ld allocations left, "
                     "stderr: %s",
                     path, n, total, (int)o, live, text);
        }
        tried++;
    }
    release_stderr();
    alloc_set_hook(NULL, NULL);
    arena_set_chunk_size(0);
    fail_at = 0;
    printf("%s: %ld allocations, %ld of them made to fail\n", path, total, tried);
    return total;
}

/* A 2-4-1 network, sgd: a compile of a few arena chunks. */
static void test_alloc_fail_xor_every_allocation(void **state) {
    (void)state;
    long total = fail_each(GRADC_SOURCE_DIR "/examples/xor.nn", false, 1);
    assert_true(total >= 3);
}

/* Adam, dropout, a 784-256-10 MLP: more allocations (big node arrays). */
static void test_alloc_fail_mnist_mlp_every_allocation(void **state) {
    (void)state;
    long total = fail_each(GRADC_SOURCE_DIR "/examples/mnist_mlp.nn", false, 1);
    assert_true(total >= 3);
}

/* An embedding (gather), the text loader's data spec, adam. */
static void test_alloc_fail_nplm_every_allocation(void **state) {
    (void)state;
    long total = fail_each(GRADC_SOURCE_DIR "/examples/nplm.nn", false, 1);
    assert_true(total >= 3);
}

/* The same through code generation (lowering to LLVM IR and the JIT):
 * the code generator's own arenas, every allocation. */
static void test_alloc_fail_xor_codegen(void **state) {
    (void)state;
    long total = fail_each(GRADC_SOURCE_DIR "/examples/xor.nn", true, 1);
    long front = fail_each(GRADC_SOURCE_DIR "/examples/xor.nn", false, 1 << 30);
    assert_true(total > front); /* codegen allocated through the hook too */
}

/* A model that cannot be read is an error, not out of memory, and leaves
 * nothing behind either. */
static void test_alloc_fail_missing_file_is_an_error(void **state) {
    (void)state;
    char msg[4096];
    alloc_set_hook(counting_hook, NULL);
    capture_stderr();
    nallocs = live = fail_at = 0;
    Outcome o = compile_once(GRADC_SOURCE_DIR "/examples/no-such-model.nn", false);
    const char *text = captured(msg, sizeof msg);
    release_stderr();
    alloc_set_hook(NULL, NULL);
    assert_int_equal(o, FAILED);
    assert_int_equal(live, 0);
    assert_non_null(strstr(text, "cannot read"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_fail_xor_every_allocation),
        cmocka_unit_test(test_alloc_fail_mnist_mlp_every_allocation),
        cmocka_unit_test(test_alloc_fail_nplm_every_allocation),
        cmocka_unit_test(test_alloc_fail_xor_codegen),
        cmocka_unit_test(test_alloc_fail_missing_file_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
