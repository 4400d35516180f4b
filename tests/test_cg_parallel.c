/* test_cg_parallel.c: fused loops split across the thread pool (lower.c's
 * parallel kernels, runtime/pool.c). A parallel kernel runs its share of
 * the outermost loop, so the program must compute exactly what it computes
 * on one thread: the same bits in every buffer of the arena, for a loop
 * that coalesces into one (split at multiples of 16), a broadcast that
 * keeps two loops (split by rows), dropout (whose mask follows each
 * element's own index), an update of a large parameter, a batch that is
 * not a multiple of anything, float32 and float64; and what the parts
 * compute is right, to the last element, against libm. The row kernels
 * (softmax, log_softmax, cross-entropy and the one-hot of its gradient)
 * split their rows the same way, checked against a C reference.
 *
 * Dimension legend: B batch (run with 101 of at most 128), W a row's width,
 * R, C a parameter's rows and columns.
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

#include "cg_fixture.h"

enum { ROWS = 128, RUN = 101, W = 999, R = 300, C = 400, STEPS = 3 };

/* The arena after STEPS train steps on threads threads, from the same
 * start: x, w, P filled, dropout key 7. */
static unsigned char *train_on(T *t, Node *x, Node *w, Node *p, int threads, size_t *changed) {
    size_t n = t->plan->arena_bytes;
    memset(t->mem, 0, n);
    free(fill(t, x, (int64_t)ROWS * W, -2, 2, 11));
    free(fill(t, w, W, -1, 1, 12));
    free(fill(t, p, (int64_t)R * C, -1, 1, 13));
    set_int(t, ir_rng_key(t->g), 0, 7);
    set(t, t->g->lr, 0, 1e-3);
    unsigned char *start = malloc(n);
    memcpy(start, t->mem, n);
    rt_pool_setup(threads);
    for (int s = 0; s < STEPS; s++)
        t_run(t, PROG_TRAIN, RUN);
    /* The steps did something: P's bytes moved. */
    size_t off = t->plan->prog[PROG_TRAIN].offset[p->id], bytes = (size_t)R * C * t->elem_size;
    *changed = 0;
    for (size_t i = off; i < off + bytes; i++)
        *changed += start[i] != t->mem[i];
    free(start);
    unsigned char *copy = malloc(n);
    memcpy(copy, t->mem, n);
    return copy;
}

static void test_parallel_loops_give_the_bits_of_one_thread(void **state) {
    (void)state;
    for (int es = 4; es <= 8; es += 4) {
        T t;
        t_init(&t, "par");
        Node *x = input(&t, "x", SH2(B, W));
        Node *w = param(&t, "w", SH1(W)), *p = param(&t, "P", SH2(R, C));
        /* y = dropout(tanh(x * w + 0.5)): w broadcast over rows, two loops */
        Node *pre = ir_binary(t.g, OP_ADD, ir_binary(t.g, OP_MUL, x, w, L0),
                              ir_const(t.g, 0.5, L0), L0);
        Node *y = ir_dropout(t.g, ir_unary(t.g, OP_TANH, pre, L0), 0.3, -1, L0);
        /* z = sigmoid(x) * x: one coalesced loop */
        Node *z = ir_binary(t.g, OP_MUL, ir_unary(t.g, OP_SIGMOID, x, L0), x, L0);
        t_output(&t, "y", y);
        t_output(&t, "z", z);
        Node *ly = ir_reduce(t.g, OP_SUM, ir_binary(t.g, OP_MUL, y, y, L0), 0, false, L0);
        Node *lz = ir_reduce(t.g, OP_SUM, ir_binary(t.g, OP_MUL, z, w, L0), 0, false, L0);
        Node *lp = ir_reduce(t.g, OP_SUM, ir_binary(t.g, OP_MUL, p, p, L0), 0, false, L0);
        t.g->loss = ir_binary(t.g, OP_ADD, ir_binary(t.g, OP_ADD, ly, lz, L0), lp, L0);
        ad_backward(t.g);
        sgd_update(t.g, 1e-3);
        t_compile(&t, ROWS, es);
        /* The forward loops, the backward loops and P's update are split. */
        char *ir = cg_llvm_ir(t.m);
        int calls = 0;
        for (const char *c = strstr(ir, "call void @rt_parallel_for"); c;
             c = strstr(c + 1, "call void @rt_parallel_for"))
            calls++;
        printf("  float%d: %d parallel kernels\n", 8 * es, calls);
        assert_true(calls >= 4);
        free(ir);
        size_t changed;
        unsigned char *one = train_on(&t, x, w, p, 1, &changed);
        printf("  float%d: %zu bytes of P changed\n", 8 * es, changed);
        assert_true(changed >= (size_t)R * C);
        for (int threads = 2; threads <= 3; threads++) {
            unsigned char *many = train_on(&t, x, w, p, threads, &changed);
            assert_memory_equal(many, one, t.plan->arena_bytes);
            free(many);
        }
        free(one);
        /* And what every part computes is right, tails included: the
         * predict program's y and z on 3 threads against libm. */
        memset(t.mem, 0, t.plan->arena_bytes);
        double *xv = fill(&t, x, (int64_t)ROWS * W, -2, 2, 21), *wv = fill(&t, w, W, -1, 1, 22);
        t_run(&t, PROG_PREDICT, RUN);
        double tol = es == 4 ? 1e-6 : 1e-13;
        for (int64_t i = 0; i < (int64_t)RUN * W; i++) {
            double zi = get(&t, PROG_PREDICT, t_out(&t, 1), i);
            double yi = get(&t, PROG_PREDICT, t_out(&t, 0), i);
            double zr = xv[i] / (1 + exp(-xv[i])), yr = tanh(xv[i] * wv[i % W] + 0.5);
            if (fabs(zi - zr) > tol * 4 || fabs(yi - yr) > tol)
                fail_msg("float%d element %lld: y %.17g (want %.17g), z %.17g (want %.17g)",
                         8 * es, (long long)i, yi, yr, zi, zr);
        }
        free(xv), free(wv);
        rt_pool_setup(1);
        t_free(&t);
    }
}

/* Row kernels: loss = sum(xent(x * w, y)) + sum(log_softmax(x * w) * x),
 * whose gradient also needs softmax and one-hot of [B, W]. */
static unsigned char *rows_train_on(T *t, Node *x, Node *y, Node *w, int threads) {
    memset(t->mem, 0, t->plan->arena_bytes);
    free(fill(t, x, (int64_t)ROWS * W, -3, 3, 31));
    free(fill(t, w, W, -1, 1, 32));
    for (int r = 0; r < ROWS; r++)
        set_int(t, y, r, (int32_t)((r * 37) % W));
    set(t, t->g->lr, 0, 1e-2);
    rt_pool_setup(threads);
    for (int s = 0; s < STEPS; s++)
        t_run(t, PROG_TRAIN, RUN);
    unsigned char *copy = malloc(t->plan->arena_bytes);
    memcpy(copy, t->mem, t->plan->arena_bytes);
    return copy;
}

static void test_row_kernels_split_their_rows(void **state) {
    (void)state;
    for (int es = 4; es <= 8; es += 4) {
        T t;
        t_init(&t, "rows");
        Node *x = input(&t, "x", SH2(B, W));
        Node *y = int_input(&t, "y", SH1(B));
        Node *w = param(&t, "w", SH1(W));
        Node *z = ir_binary(t.g, OP_MUL, x, w, L0);
        Node *xe = ir_xent(t.g, z, y, L0);
        Node *ls = ir_softmax(t.g, OP_LOG_SOFTMAX, z, 1, L0);
        t_output(&t, "xent", xe);
        t_output(&t, "log_softmax", ls);
        t.g->loss = ir_binary(t.g, OP_ADD, ir_reduce(t.g, OP_SUM, xe, 0, false, L0),
                              ir_reduce(t.g, OP_SUM, ir_binary(t.g, OP_MUL, ls, x, L0), 0,
                                        false, L0),
                              L0);
        ad_backward(t.g);
        sgd_update(t.g, 1e-2);
        t_compile(&t, ROWS, es);
        /* xent, log_softmax, and the gradient's softmax and one-hot run on
         * the pool, each a `_part` of its own. */
        char *ir = cg_llvm_ir(t.m);
        const char *kinds[] = {"xent", "log_softmax", "softmax", "onehot"};
        for (int i = 0; i < 4; i++) {
            bool found = false;
            for (int j = 0; j < t.plan->prog[PROG_TRAIN].kernels.len && !found; j++) {
                const Kernel *kr = &t.plan->prog[PROG_TRAIN].kernels.items[j];
                if (!kr->fused && kr->root->op == op_lookup(kinds[i])) {
                    char name[64];
                    snprintf(name, sizeof name, "define internal void @rows_train_k%d_part(", j);
                    assert_non_null(strstr(ir, name));
                    found = true;
                }
            }
            if (!found)
                fail_msg("no %s kernel in the train program", kinds[i]);
        }
        free(ir);
        unsigned char *one = rows_train_on(&t, x, y, w, 1);
        for (int threads = 2; threads <= 3; threads++) {
            unsigned char *many = rows_train_on(&t, x, y, w, threads);
            assert_memory_equal(many, one, t.plan->arena_bytes);
            free(many);
        }
        free(one);
        /* Every row of every part against C: the predict program's xent
         * and log_softmax of x * w on 3 threads. */
        memset(t.mem, 0, t.plan->arena_bytes);
        double *xv = fill(&t, x, (int64_t)ROWS * W, -3, 3, 41), *wv = fill(&t, w, W, -1, 1, 42);
        for (int r = 0; r < ROWS; r++)
            set_int(&t, y, r, (int32_t)((r * 53) % W));
        t_run(&t, PROG_PREDICT, RUN);
        double tol = es == 4 ? 2e-5 : 1e-12;
        for (int r = 0; r < RUN; r++) {
            double m = -INFINITY, s = 0;
            for (int j = 0; j < W; j++)
                m = fmax(m, xv[r * W + j] * wv[j]);
            for (int j = 0; j < W; j++)
                s += exp(xv[r * W + j] * wv[j] - m);
            double lse = m + log(s);
            int label = (r * 53) % W;
            assert_near(get(&t, PROG_PREDICT, t_out(&t, 0), r),
                        lse - xv[r * W + label] * wv[label], tol * 10);
            for (int j = 0; j < W; j++)
                assert_near(get(&t, PROG_PREDICT, t_out(&t, 1), (int64_t)r * W + j),
                            xv[r * W + j] * wv[j] - lse, tol * 10);
        }
        free(xv), free(wv);
        rt_pool_setup(1);
        t_free(&t);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parallel_loops_give_the_bits_of_one_thread),
        cmocka_unit_test(test_row_kernels_split_their_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
