/* test_dist_plan.c: the plan of a data-parallel train program
 * (PLAN_DATA_PARALLEL, ir/fuse.c: collect_roots, schedule_data_parallel),
 * from models written in the language.
 *
 * What is checked: the train program's roots from grad_root on are the
 * gradients of exactly the parameters whose gradient depends on the batch,
 * in parameter order (an input, or the dropout key, which differs between
 * processes, somewhere below it; a parameter only in an L2 term is left
 * out); every kernel before sync_at reads none of those gradients, and
 * every one that makes a gradient root or the loss is before it; every
 * update, and the gradient clipping, is after it; the updates are the
 * plain plan's; without the flag, and in the other programs, sync_at is
 * -1 and the train program has no gradient roots.
 *
 * Dimension legend: B the batch (planned MAXB).
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

#include "support.h"

enum { MAXB = 8 };

/* W and b see the rows; c only an L2 term (dc = 0.2 c, the same in every
 * process); e a dropout mask (de depends on the key, not on the rows). */
static const char model_nn[] = "input x[B, 4]\n"
                               "input y[B] : int\n"
                               "param W[4, 3] ~ glorot\n"
                               "param b[3] = 0\n"
                               "param c[5] = 1\n"
                               "param e[5] = 1\n"
                               "h = tanh(x @ W + b)\n"
                               "logits = dense(h, 3)\n"
                               "loss = cross_entropy(logits, y) + 0.1 * sum(c ^ 2) + "
                               "0.1 * sum(dropout(e, 0.5) ^ 2)\n"
                               "train {\n"
                               "  optimizer = adam(lr = 0.01)\n"
                               "  clip_norm = 1\n"
                               "}\n";

/* Does kernel k read node x (as an operand of a node it computes)? */
static bool kernel_reads(const Kernel *k, const Node *x) {
    Node *single[1] = {k->root};
    Node *const *body = k->fused ? k->body.items : single;
    int n = k->fused ? k->body.len : 1;
    for (int i = 0; i < n; i++)
        for (int s = 0; s < body[i]->nsrc; s++)
            if (body[i]->src[s] == x && !(body[i]->op == OP_ASSIGN && s == 0))
                return true;
    return false;
}

/* The kernel that stores x (its root or one of its more), or -1. */
static int kernel_of(const Program *p, const Node *x) {
    for (int k = 0; k < p->kernels.len; k++) {
        const Kernel *kk = &p->kernels.items[k];
        if (kk->root == x)
            return k;
        for (int i = 0; i < kk->more.len; i++)
            if (kk->more.items[i] == x)
                return k;
    }
    return -1;
}

static int param_index(const Graph *g, const char *name) {
    for (int i = 0; i < g->params.len; i++)
        if (!strcmp(g->params.items[i].name, name))
            return i;
    fail_msg("no parameter %s", name);
    return -1;
}

static int count_updates(const Program *p) {
    int n = 0;
    for (int k = 0; k < p->kernels.len; k++)
        n += p->kernels.items[k].root->op == OP_ASSIGN;
    return n;
}

static void test_gradient_roots_are_the_batch_dependent_ones(void **state) {
    (void)state;
    Compiled *c = build_graph("dist_plan.nn", model_nn);
    Graph *g = c->g;
    Plan *plan = ir_plan_flags(g, MAXB, 4, (1u << PROG_COUNT) - 1, PLAN_DATA_PARALLEL);
    const Program *p = &plan->prog[PROG_TRAIN];
    /* W, b, e and the dense layer's logits.W, logits.b: not c */
    const char *want[] = {"W", "b", "e", "logits.W", "logits.b"};
    int nwant = (int)(sizeof want / sizeof want[0]);
    assert_int_equal(g->params.len, nwant + 1);
    assert_int_equal(p->roots.len - p->grad_root, nwant);
    int prev = -1;
    for (int i = 0; i < nwant; i++) {
        const Node *root = p->roots.items[p->grad_root + i];
        int at = -1;
        for (int j = 0; j < g->params.len; j++)
            if (g->params.items[j].grad == root)
                at = j;
        if (at < 0 || strcmp(g->params.items[at].name, want[i]) != 0)
            fail_msg("gradient root %d is not the gradient of %s", i, want[i]);
        assert_true(at > prev); /* parameter order */
        prev = at;
    }
    /* Before grad_root: the loss first, no gradient. */
    assert_ptr_equal(p->roots.items[0], g->loss);
    for (int r = 0; r < p->grad_root; r++)
        for (int j = 0; j < g->params.len; j++)
            assert_ptr_not_equal(p->roots.items[r], g->params.items[j].grad);
    /* c's gradient is computed (its update reads it) but is no root. */
    const Node *dc = g->params.items[param_index(g, "c")].grad;
    for (int r = 0; r < p->roots.len; r++)
        assert_ptr_not_equal(p->roots.items[r], dc);
    arena_free(c->a);
    free(c);
}

static void test_sync_point_splits_backward_from_clipping_and_updates(void **state) {
    (void)state;
    Compiled *c = build_graph("dist_plan.nn", model_nn);
    Graph *g = c->g;
    Plan *dp = ir_plan_flags(g, MAXB, 4, (1u << PROG_COUNT) - 1, PLAN_DATA_PARALLEL);
    const Program *p = &dp->prog[PROG_TRAIN];
    int nk = p->kernels.len, at = p->sync_at;
    assert_true(at > 0 && at < nk);
    for (int k = 0; k < at; k++) {
        const Kernel *kk = &p->kernels.items[k];
        assert_int_not_equal(kk->root->op, OP_ASSIGN);
        for (int r = p->grad_root; r < p->roots.len; r++)
            if (kernel_reads(kk, p->roots.items[r]))
                fail_msg("kernel %d, before the sync at %d, reads gradient root %d", k, at, r);
    }
    for (int r = p->grad_root; r < p->roots.len; r++) {
        int k = kernel_of(p, p->roots.items[r]);
        assert_true(k >= 0 && k < at);
    }
    int lk = kernel_of(p, g->loss);
    assert_true(lk >= 0 && lk < at);
    /* After it: every update, and something that is not one (the clip's
     * norm of all the gradients), which reads the averaged gradients. */
    bool clip_reads = false;
    for (int k = at; k < nk; k++)
        for (int r = p->grad_root; r < p->roots.len; r++)
            clip_reads |= p->kernels.items[k].root->op != OP_ASSIGN &&
                          kernel_reads(&p->kernels.items[k], p->roots.items[r]);
    assert_true(clip_reads);
    /* The other programs have no sync. */
    for (int k = 0; k < PROG_COUNT; k++)
        if (k != PROG_TRAIN)
            assert_int_equal(dp->prog[k].sync_at, -1);

    /* The plain plan of the same graph: no sync, no gradient roots, the
     * same updates. */
    Plan *plain = ir_plan_flags(g, MAXB, 4, (1u << PROG_COUNT) - 1, 0);
    for (int k = 0; k < PROG_COUNT; k++)
        assert_int_equal(plain->prog[k].sync_at, -1);
    const Program *q = &plain->prog[PROG_TRAIN];
    for (int r = 0; r < q->roots.len; r++)
        for (int j = 0; j < g->params.len; j++)
            assert_ptr_not_equal(q->roots.items[r], g->params.items[j].grad);
    assert_int_equal(q->roots.len, p->grad_root);
    assert_int_equal(count_updates(q), count_updates(p));
    assert_int_equal(count_updates(p), g->params.len);
    arena_free(c->a);
    free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradient_roots_are_the_batch_dependent_ones),
        cmocka_unit_test(test_sync_point_splits_backward_from_clipping_and_updates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
