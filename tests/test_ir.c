/* test_ir.c: the graph IR without a front end or code generator: shapes,
 * builder diagnostics, autodiff structure, simplification, CSE, fusion and
 * the memory plan's invariants. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

typedef struct Fx {
    Arena *a;
    Diags d;
    Graph *g;
} Fx;

static int setup(void **state) {
    Fx *f = calloc(1, sizeof *f);
    f->a = arena_new();
    diags_init(&f->d, f->a);
    f->g = graph_new(f->a, &f->d, "t");
    *state = f;
    return 0;
}

static int teardown(void **state) {
    Fx *f = *state;
    arena_free(f->a);
    free(f);
    return 0;
}

static Shape shp(int rank, int64_t d0, int64_t d1) {
    Shape s = {.rank = rank, .d = {d0, d1}};
    return s;
}

static Init zero_init(void) { return (Init){.kind = INIT_CONST}; }

static void test_shape_broadcast_follows_numpy(void **state) {
    (void)state;
    Shape a = shp(2, DIM_BATCH, 16), b = shp(1, 16, 0), out;
    assert_true(shape_broadcast(&a, &b, &out));
    assert_int_equal(out.rank, 2);
    assert_true(out.d[0] == DIM_BATCH && out.d[1] == 16);
    Shape c = shp(2, 3, 1), d = shp(2, 1, 4);
    assert_true(shape_broadcast(&c, &d, &out));
    assert_true(out.d[0] == 3 && out.d[1] == 4);
    Shape e = shp(1, 3, 0);
    assert_false(shape_broadcast(&b, &e, &out));
    Shape bb = shp(1, DIM_BATCH, 0), five = shp(1, 5, 0);
    assert_false(shape_broadcast(&bb, &five, &out));
    char buf[64];
    assert_string_equal(shape_str(&a, buf, sizeof buf), "[B, 16]");
}

static void test_builder_reports_both_shapes_on_mismatch(void **state) {
    Fx *f = *state;
    Shape xs = shp(2, DIM_BATCH, 4), bs = shp(1, 3, 0);
    Node *x = ir_input(f->g, "x", DT_FLOAT, &xs, (Loc){0});
    Node *b = ir_param(f->g, "b", &bs, zero_init(), (Loc){0});
    assert_null(ir_binary(f->g, OP_ADD, x, b, (Loc){0}));
    assert_int_equal(f->d.nerrors, 1);
    assert_string_equal(f->d.list.items[0].msg, "cannot broadcast shapes [B, 4] and [3] in 'add'");
    /* A NULL operand propagates silently: one mistake, one error. */
    assert_null(ir_unary(f->g, OP_EXP, NULL, (Loc){0}));
    assert_int_equal(f->d.nerrors, 1);
}

static void test_matmul_checks_inner_dimensions(void **state) {
    Fx *f = *state;
    Shape xs = shp(2, DIM_BATCH, 4), ws = shp(2, 3, 8);
    Node *x = ir_input(f->g, "x", DT_FLOAT, &xs, (Loc){0});
    Node *w = ir_param(f->g, "W", &ws, zero_init(), (Loc){0});
    assert_null(ir_matmul(f->g, x, w, false, false, (Loc){0}));
    assert_string_equal(f->d.list.items[0].msg, "inner dimensions of '@' differ: [B, 4] @ [3, 8]");
    Node *y = ir_matmul(f->g, x, w, false, true, (Loc){0}); /* [B,4] @ [3,8]^T: still 4 vs 8 */
    assert_null(y);
    Shape w2s = shp(2, 8, 4);
    Node *w2 = ir_param(f->g, "W2", &w2s, zero_init(), (Loc){0});
    y = ir_matmul(f->g, x, w2, false, true, (Loc){0});
    assert_non_null(y);
    assert_true(y->shape.d[0] == DIM_BATCH && y->shape.d[1] == 8);
}

/* loss = mean((sigmoid(x @ W + b) - y)^2): the gradient graph has one
 * gradient per parameter with the parameter's shape, made by named rules. */
static Graph *small_mlp(Fx *f) {
    Shape xs = shp(2, DIM_BATCH, 2), ws = shp(2, 2, 3), bs = shp(1, 3, 0), ys = shp(2, DIM_BATCH, 3);
    Graph *g = f->g;
    Node *x = ir_input(g, "x", DT_FLOAT, &xs, (Loc){0});
    Node *y = ir_input(g, "y", DT_FLOAT, &ys, (Loc){0});
    Node *w = ir_param(g, "W", &ws, zero_init(), (Loc){0});
    Node *b = ir_param(g, "b", &bs, zero_init(), (Loc){0});
    Node *h = ir_unary(g, OP_SIGMOID, ir_binary(g, OP_ADD, ir_matmul(g, x, w, false, false, (Loc){0}), b, (Loc){0}), (Loc){0});
    h->name = "h";
    Node *e = ir_powc(g, ir_binary(g, OP_SUB, h, y, (Loc){0}), 2, (Loc){0});
    g->loss = ir_reduce(g, OP_MEAN, e, 0, false, (Loc){0});
    return g;
}

static void test_autodiff_gives_each_param_a_gradient_of_its_shape(void **state) {
    Fx *f = *state;
    Graph *g = small_mlp(f);
    ad_backward(g);
    for (int i = 0; i < g->params.len; i++) {
        Param *p = &g->params.items[i];
        assert_non_null(p->grad);
        assert_true(shape_eq(&p->grad->shape, &p->node->shape));
        assert_non_null(p->grad->rule);
    }
    /* dW = x^T @ d(x @ W): a product with the transpose as a flag. */
    Node *dw = g->params.items[0].grad;
    assert_int_equal(dw->op, OP_MATMUL);
    assert_true(dw->attr.mm.ta);
    assert_string_equal(dw->rule, "matmul'");
    assert_string_equal(dw->math, "op(a)^T @ g");
    /* db undoes the broadcast of b over the batch: a sum over axis 0. */
    Node *db = g->params.items[1].grad;
    assert_int_equal(db->op, OP_SUM);
    assert_int_equal(db->attr.red.axes, 1u);
    assert_string_equal(db->name, "db");
    /* The sigmoid rule reuses the forward value and records its formula. */
    bool found = false;
    for (int i = g->grad_start; i < g->nodes.len; i++) {
        Node *n = g->nodes.items[i];
        if (n->rule && strcmp(n->rule, "sigmoid'") == 0) {
            found = true;
            assert_string_equal(n->math, "g * s * (1 - s)");
            assert_int_equal(n->origin->op, OP_SIGMOID);
        }
    }
    assert_true(found);
    const char *why = NULL;
    assert_true(ir_verify(g, &why));
}

static void test_autodiff_gives_zero_to_unused_params(void **state) {
    Fx *f = *state;
    Graph *g = small_mlp(f);
    Shape us = shp(1, 5, 0);
    ir_param(g, "unused", &us, zero_init(), (Loc){0});
    ad_backward(g);
    Node *d = g->params.items[2].grad;
    assert_int_equal(d->op, OP_EXPAND);
    assert_int_equal(d->src[0]->op, OP_CONST);
    assert_true(d->src[0]->attr.cst.value == 0);
    assert_string_equal(d->rule, "zero");
}

static void test_simplify_folds_transposes_into_matmul_flags(void **state) {
    Fx *f = *state;
    Graph *g = f->g;
    Shape as = shp(2, 3, 4), bs = shp(2, 3, 5);
    Node *a = ir_param(g, "a", &as, zero_init(), (Loc){0});
    Node *b = ir_param(g, "b", &bs, zero_init(), (Loc){0});
    Node *m = ir_matmul(g, ir_transpose(g, a, NULL, (Loc){0}), b, false, false, (Loc){0});
    Node *tt = ir_transpose(g, ir_transpose(g, m, NULL, (Loc){0}), NULL, (Loc){0});
    Node *one = ir_binary(g, OP_MUL, tt, ir_const(g, 1, (Loc){0}), (Loc){0});
    g->loss = ir_reduce(g, OP_SUM, ir_binary(g, OP_ADD, one, ir_const(g, 0, (Loc){0}), (Loc){0}), 0, false, (Loc){0});
    ir_optimize(g);
    Node *s = g->loss->src[0];
    assert_ptr_equal(s, m); /* (transpose(transpose(m)) * 1) + 0 == m */
    assert_ptr_equal(m->src[0], a);
    assert_true(m->attr.mm.ta && !m->attr.mm.tb);
}

static void test_cse_merges_equal_nodes_and_folds_constants(void **state) {
    Fx *f = *state;
    Graph *g = f->g;
    Shape xs = shp(2, DIM_BATCH, 3);
    Node *x = ir_input(g, "x", DT_FLOAT, &xs, (Loc){0});
    Node *e1 = ir_unary(g, OP_EXP, x, (Loc){0});
    Node *e2 = ir_unary(g, OP_EXP, x, (Loc){0});
    Node *c = ir_binary(g, OP_MUL, ir_const(g, 2, (Loc){0}), ir_const(g, 3, (Loc){0}), (Loc){0});
    Node *s = ir_binary(g, OP_MUL, ir_binary(g, OP_ADD, e1, e2, (Loc){0}), c, (Loc){0});
    g->loss = ir_reduce(g, OP_SUM, s, 0, false, (Loc){0});
    ir_optimize(g);
    Node *add = g->loss->src[0]->src[0];
    assert_int_equal(add->op, OP_ADD);
    assert_ptr_equal(add->src[0], add->src[1]);
    assert_true(e2->dead);
    Node *k = g->loss->src[0]->src[1];
    assert_int_equal(k->op, OP_CONST);
    assert_true(k->attr.cst.value == 6);
}

/* The train program of the small MLP: the sigmoid and the squared error and
 * their derivatives fuse; no two buffers live at once overlap. */
static void test_fusion_and_plan_of_small_mlp(void **state) {
    Fx *f = *state;
    Graph *g = small_mlp(f);
    ad_backward(g);
    opt_build(g, opt_lookup("sgd"));
    ir_optimize(g);
    Plan *plan = ir_plan(g, 8, 4);
    Program *p = &plan->prog[PROG_TRAIN];
    int fused = 0, gemm = 0, reduce = 0, assign = 0;
    for (int k = 0; k < p->kernels.len; k++) {
        Kernel *kn = &p->kernels.items[k];
        fused += kn->fused;
        gemm += kn->root->op == OP_MATMUL;
        reduce += op_has(kn->root->op, OPF_REDUCE);
        assign += kn->root->op == OP_ASSIGN;
        if (kn->fused)
            assert_ptr_equal(kn->body.items[kn->body.len - 1], kn->root);
    }
    assert_int_equal(gemm, 2);   /* x @ W and x^T @ dz; dx is not needed */
    assert_int_equal(assign, 2); /* W and b, each one fused update loop */
    assert_true(reduce >= 2);    /* the mean loss and db */
    /* Every elementwise node of the forward and backward pass is in a
     * fused loop: kernels are far fewer than nodes. */
    int live_nodes = 0;
    for (int i = 0; i < g->nodes.len; i++)
        live_nodes += !g->nodes.items[i]->dead;
    assert_true(p->kernels.len * 2 < live_nodes);
    /* Offsets are aligned, the persistent region holds the leaves. */
    for (int i = 0; i < g->params.len; i++)
        assert_true(p->offset[g->params.items[i].node->id] < plan->persistent_bytes);
    for (int k = 0; k < p->kernels.len; k++) {
        Node *r = p->kernels.items[k].root;
        assert_int_equal(p->offset[r->id] % 64, 0);
        assert_true(p->offset[r->id] + node_bytes(r, 8, 4) <= plan->arena_bytes);
    }
    /* A kernel's output does not overlap any buffer it reads. */
    for (int k = 0; k < p->kernels.len; k++) {
        Kernel *kn = &p->kernels.items[k];
        if (kn->root->op == OP_ASSIGN)
            continue;
        size_t o = p->offset[kn->root->id], e = o + node_bytes(kn->root, 8, 4);
        Node *single[1] = {kn->root};
        Node **body = kn->fused ? kn->body.items : single;
        int nb = kn->fused ? kn->body.len : 1;
        for (int b = 0; b < nb; b++)
            for (int s = 0; s < body[b]->nsrc; s++) {
                Node *src = body[b]->src[s];
                if (p->offset[src->id] == PLAN_NONE)
                    continue;
                size_t so = p->offset[src->id], se = so + node_bytes(src, 8, 4);
                assert_true(se <= o || e <= so);
            }
    }
    assert_int_equal(plan->prog[PROG_PREDICT].kernels.len, 0); /* no outputs */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape_broadcast_follows_numpy),
        cmocka_unit_test_setup_teardown(test_builder_reports_both_shapes_on_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_matmul_checks_inner_dimensions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_autodiff_gives_each_param_a_gradient_of_its_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_autodiff_gives_zero_to_unused_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_simplify_folds_transposes_into_matmul_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cse_merges_equal_nodes_and_folds_constants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fusion_and_plan_of_small_mlp, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
