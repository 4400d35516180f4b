/* test_ir.c: the graph IR without a front end or code generator: shapes,
 * builder diagnostics, autodiff structure, simplification, CSE, hypers and
 * optimizer states, the verifier, fusion (update kernels included), the
 * printer and the memory plan's invariants. */
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

/* p <- p - lr * dp for every parameter, built the way the front end builds
 * an update rule. Requires ad_backward. */
static void sgd_update(Graph *g, double lr) {
    ir_update_begin(g);
    g->lr = ir_hyper(g, "lr", lr);
    g->cur_rule = "sgd";
    g->cur_math = "p - lr * g";
    for (int i = 0; i < g->params.len; i++) {
        Param *p = &g->params.items[i];
        Node *step = ir_binary(g, OP_MUL, g->lr, p->grad, (Loc){0});
        ir_assign(g, p->node, ir_binary(g, OP_SUB, p->node, step, (Loc){0}));
    }
    ir_update_end(g);
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

/* A relu MLP x[B, 64] -> 256 -> 256 -> 10 with SGD: no two temporaries
 * live at the same kernel share a byte (lifetimes worked out here from the
 * kernels' reads), and the plan needs no more than the most bytes live at
 * once: the largest-first placement packs it without gaps, where the scan
 * in kernel order left some. */
static void test_plan_packs_temporaries_without_gaps(void **state) {
    Fx *f = *state;
    Graph *g = f->g;
    Shape xs = shp(2, DIM_BATCH, 64), ys = shp(1, DIM_BATCH, 0);
    Node *h = ir_input(g, "x", DT_FLOAT, &xs, (Loc){0});
    Node *y = ir_input(g, "y", DT_INT, &ys, (Loc){0});
    static const int64_t width[] = {64, 256, 256, 10};
    static const char *const names[] = {"W1", "W2", "W3"};
    for (int l = 0; l < 3; l++) {
        Shape ws = shp(2, width[l], width[l + 1]);
        Node *w = ir_param(g, names[l], &ws, zero_init(), (Loc){0});
        h = ir_matmul(g, h, w, false, false, (Loc){0});
        if (l < 2)
            h = ir_unary(g, OP_RELU, h, (Loc){0});
    }
    g->loss = ir_reduce(g, OP_MEAN, ir_xent(g, h, y, (Loc){0}), 0, false, (Loc){0});
    ad_backward(g);
    sgd_update(g, 0.01);
    ir_optimize(g);
    Plan *plan = ir_plan(g, 32, 4);
    Program *p = &plan->prog[PROG_TRAIN];
    int nk = p->kernels.len;
    /* [first, last] kernel of each kernel's output buffer */
    int *last = calloc((size_t)g->nodes.len, sizeof *last);
    for (int i = 0; i < g->nodes.len; i++)
        last[i] = -1;
    for (int k = 0; k < nk; k++) {
        Kernel *kn = &p->kernels.items[k];
        Node *single[1] = {kn->root};
        Node **body = kn->fused ? kn->body.items : single;
        int nb = kn->fused ? kn->body.len : 1;
        for (int b = 0; b < nb; b++)
            for (int s = 0; s < body[b]->nsrc; s++) {
                Node *src = body[b]->src[s];
                while (op_has(src->op, OPF_VIEW))
                    src = src->src[0];
                if (k > last[src->id])
                    last[src->id] = k;
            }
    }
    for (int r = 0; r < p->roots.len; r++)
        last[p->roots.items[r]->id] = nk;
    size_t most = 0;
    for (int k = 0; k < nk; k++) {
        size_t live = 0;
        for (int i = 0; i < nk; i++) {
            Node *a = p->kernels.items[i].root;
            if (a->op == OP_ASSIGN || i > k || (last[a->id] < k && i != k))
                continue;
            live += (node_bytes(a, 32, 4) + 63) / 64 * 64;
            for (int j = 0; j < nk; j++) {
                Node *b = p->kernels.items[j].root;
                if (j == i || b->op == OP_ASSIGN || j > k || (last[b->id] < k && j != k))
                    continue;
                size_t ao = p->offset[a->id], bo = p->offset[b->id];
                if (!(ao + node_bytes(a, 32, 4) <= bo || bo + node_bytes(b, 32, 4) <= ao))
                    fail_msg("kernels %d and %d: outputs live at kernel %d overlap", i, j, k);
            }
        }
        if (live > most)
            most = live;
    }
    free(last);
    assert_int_equal(p->peak_temp_bytes, most);
    assert_int_equal(p->peak_live_bytes, most);
    assert_int_equal(p->bytes, plan->persistent_bytes + most);
}

/* The train program of the small MLP: the sigmoid and the squared error and
 * their derivatives fuse; no two buffers live at once overlap. */
static void test_fusion_and_plan_of_small_mlp(void **state) {
    Fx *f = *state;
    Graph *g = small_mlp(f);
    ad_backward(g);
    sgd_update(g, 0.01);
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

/* ---- hypers, optimizer states, updates -------------------------------------- */

/* Adam without bias correction, for every parameter: states m and v (in
 * that order, each stored before the parameter), hypers lr b1 b2 eps. */
static void adam_update(Graph *g) {
    const Loc l = {0};
    ir_update_begin(g);
    Node *lr = g->lr = ir_hyper(g, "lr", 1e-3);
    Node *b1 = ir_hyper(g, "b1", 0.9), *b2 = ir_hyper(g, "b2", 0.999);
    Node *eps = ir_hyper(g, "eps", 1e-8), *one = ir_const(g, 1, l);
    g->cur_rule = "adam";
    for (int i = 0; i < g->params.len; i++) {
        Param *p = &g->params.items[i];
        Node *m = ir_state(g, arena_printf(g->arena, "opt.m.%s", p->name), i, zero_init(), l);
        Node *v = ir_state(g, arena_printf(g->arena, "opt.v.%s", p->name), i, zero_init(), l);
        Node *dp = p->grad;
        Node *m2 = ir_binary(g, OP_ADD, ir_binary(g, OP_MUL, b1, m, l),
                             ir_binary(g, OP_MUL, ir_binary(g, OP_SUB, one, b1, l), dp, l), l);
        Node *v2 = ir_binary(g, OP_ADD, ir_binary(g, OP_MUL, b2, v, l),
                             ir_binary(g, OP_MUL, ir_binary(g, OP_SUB, one, b2, l),
                                       ir_binary(g, OP_MUL, dp, dp, l), l), l);
        m2->name = "m";
        ir_assign(g, m, m2);
        ir_assign(g, v, v2);
        Node *den = ir_binary(g, OP_ADD, ir_unary(g, OP_SQRT, v2, l), eps, l);
        Node *step = ir_binary(g, OP_DIV, ir_binary(g, OP_MUL, lr, m2, l), den, l);
        ir_assign(g, p->node, ir_binary(g, OP_SUB, p->node, step, l));
    }
    ir_update_end(g);
}

static void test_hypers_have_kinds_and_states_their_params_shape(void **state) {
    Fx *f = *state;
    Graph *g = f->g;
    Shape ws = shp(2, 3, 4);
    ir_param(g, "b", &ws, zero_init(), (Loc){0});
    ir_param(g, "W", &ws, zero_init(), (Loc){0});
    Node *lr = ir_hyper(g, "lr", 0.5);
    Node *t = ir_hyper_kind(g, HYPER_STEP), *ep = ir_hyper_kind(g, HYPER_EPOCH);
    Node *eps = ir_hyper_kind(g, HYPER_EPOCHS), *rng = ir_rng_key(g);
    assert_ptr_equal(ir_hyper_kind(g, HYPER_STEP), t); /* made once */
    assert_ptr_equal(ir_hyper(g, "lr", 0.7), lr);
    assert_ptr_equal(ir_rng_key(g), rng);
    assert_int_equal(g->hypers.len, 5);
    static const char *const names[] = {"lr", "t", "epoch", "epochs", "rng"};
    static const HyperKind kinds[] = {HYPER_VALUE, HYPER_STEP, HYPER_EPOCH, HYPER_EPOCHS, HYPER_RNG};
    Node *nodes[] = {lr, t, ep, eps, rng};
    for (int i = 0; i < 5; i++) {
        Hyper *h = &g->hypers.items[i];
        assert_string_equal(h->name, names[i]);
        assert_int_equal(h->kind, kinds[i]);
        assert_ptr_equal(h->node, nodes[i]);
        assert_int_equal(nodes[i]->op, OP_HYPER);
        assert_int_equal(nodes[i]->attr.leaf.index, i);
        assert_int_equal(nodes[i]->shape.rank, 0);
        assert_int_equal(nodes[i]->dtype, i == 4 ? DT_INT : DT_FLOAT);
    }
    assert_true(g->hypers.items[0].value == 0.5);

    Node *m = ir_state(g, "opt.m.W", 1, (Init){.kind = INIT_CONST, .a = 0.25}, (Loc){0});
    assert_int_equal(m->op, OP_STATE);
    assert_int_equal(m->dtype, DT_FLOAT);
    assert_true(shape_eq(&m->shape, &ws));
    assert_int_equal(m->attr.leaf.index, 0);
    assert_int_equal(g->states.len, 1);
    assert_ptr_equal(g->states.items[0].node, m);
    assert_int_equal(g->states.items[0].param, 1);
    assert_true(g->states.items[0].init.a == 0.25);
    const char *why = NULL;
    assert_true(ir_verify(g, &why));
}

/* The verifier checks state leaves against Graph.states, ASSIGN
 * destinations, that nothing reads an ASSIGN, and hyper dtypes. */
static void test_verify_checks_states_assigns_and_hypers(void **state) {
    Fx *f = *state;
    Graph *g = small_mlp(f);
    ad_backward(g);
    adam_update(g);
    const char *why = NULL;
    assert_true(ir_verify(g, &why));
    Node *m = g->states.items[0].node;   /* opt.m.W, [2, 3] */
    Node *up = g->updates.items[0];       /* opt.m.W <- ... */

    m->shape = shp(2, 3, 2);
    assert_false(ir_verify(g, &why));
    assert_non_null(strstr(why, "state"));
    m->shape = g->params.items[0].node->shape;

    up->src[0] = g->lr; /* into a hyper */
    assert_false(ir_verify(g, &why));
    assert_non_null(strstr(why, "not a parameter or a state"));
    up->src[0] = m;

    Node *bad = ir_unary(g, OP_NEG, g->params.items[0].node, (Loc){0});
    bad->src[0] = up; /* reading a sink */
    assert_false(ir_verify(g, &why));
    assert_non_null(strstr(why, "assign"));
    bad->dead = true;

    g->hypers.items[0].kind = HYPER_RNG; /* lr: a float, so not the int rng */
    assert_false(ir_verify(g, &why));
    assert_non_null(strstr(why, "hyper"));
    g->hypers.items[0].kind = HYPER_VALUE;

    Node *pw = ir_binary(g, OP_POW, g->params.items[1].node, ir_const(g, 2, (Loc){0}), (Loc){0});
    assert_true(ir_verify(g, &why));
    pw->shape = shp(1, 4, 0);
    assert_false(ir_verify(g, &why));
    assert_non_null(strstr(why, "shape"));
    pw->dead = true;
    assert_true(ir_verify(g, &why));
}

/* Adam on the small MLP: one loop per parameter stores the parameter and
 * both states; the new first moment (stored into m and used by the step)
 * is computed inline, never stored apart; each update runs right after the
 * last kernel that makes its gradient or reads its parameter; the roots
 * are loss, lr, then the six ASSIGNs. */
static void test_fusion_makes_one_update_loop_per_parameter(void **state) {
    Fx *f = *state;
    Graph *g = small_mlp(f);
    ad_backward(g);
    adam_update(g);
    ir_optimize(g);
    Plan *plan = ir_plan(g, 8, 4);
    Program *p = &plan->prog[PROG_TRAIN];
    assert_int_equal(p->roots.len, 2 + 6);
    assert_ptr_equal(p->roots.items[0], g->loss);
    assert_ptr_equal(p->roots.items[1], g->lr);
    int nk = p->kernels.len, nupdates = 0;
    for (int k = 0; k < nk; k++) {
        Kernel *kn = &p->kernels.items[k];
        if (kn->root->op != OP_ASSIGN)
            continue;
        nupdates++;
        int param = kn->more.len == 2 && kn->more.items[1]->src[0] == g->params.items[1].node;
        /* Scheduled after the kernel of its gradient and after every
         * kernel that reads the parameter's old value, and no earlier. */
        const Node *pn = g->params.items[param].node, *grad = g->params.items[param].grad;
        int after = -1;
        for (int j = 0; j < nk; j++) {
            const Kernel *kj = &p->kernels.items[j];
            bool reads = false, makes = kj->root == grad;
            Node *single[1] = {kj->root};
            Node **body = kj->fused ? kj->body.items : single;
            int nbody = kj->fused ? kj->body.len : 1;
            for (int b = 0; b < nbody; b++) {
                makes |= body[b] == grad;
                for (int s = 0; s < body[b]->nsrc && kj->root->op != OP_ASSIGN; s++)
                    reads |= body[b]->src[s] == pn;
            }
            if ((reads || makes) && j != k)
                after = j;
        }
        assert_true(after >= 0 && k == after + 1);
        assert_int_equal(kn->root->op, OP_ASSIGN);
        assert_ptr_equal(kn->root->src[0], g->states.items[2 * param].node); /* m first */
        assert_int_equal(kn->more.len, 2);
        assert_ptr_equal(kn->more.items[0]->src[0], g->states.items[2 * param + 1].node);
        assert_ptr_equal(kn->more.items[1]->src[0], g->params.items[param].node);
        assert_ptr_equal(kn->body.items[kn->body.len - 1], kn->root);
        /* Stored in place, and the new m once, inline. */
        assert_int_equal(p->offset[kn->root->id], p->offset[kn->root->src[0]->id]);
        assert_int_equal(p->offset[kn->more.items[1]->id], p->offset[g->params.items[param].node->id]);
        Node *m2 = kn->root->src[1];
        int seen = 0;
        for (int b = 0; b < kn->body.len; b++)
            seen += kn->body.items[b] == m2;
        assert_int_equal(seen, 1);
        assert_true(p->offset[m2->id] == PLAN_NONE);
        assert_ptr_equal(kn->more.items[1]->src[1]->src[1]->src[0]->src[1], m2); /* p - lr*m2/den */
    }
    assert_int_equal(nupdates, 2);
    for (int i = 0; i < g->states.len; i++) {
        size_t off = p->offset[g->states.items[i].node->id];
        assert_true(off + node_bytes(g->states.items[i].node, 8, 4) <= plan->persistent_bytes);
        assert_int_equal(plan->prog[PROG_EVAL].offset[g->states.items[i].node->id], off);
    }
}

/* W's update reads V (another parameter) elementwise and W transposed;
 * V's update reads W's norm (a reduction). Each of those reads is stored
 * by a kernel of its own that runs before every update. */
static void test_fusion_keeps_reads_of_other_storage_out_of_updates(void **state) {
    Fx *f = *state;
    Graph *g = f->g;
    const Loc l = {0};
    Shape s = shp(2, 3, 3);
    Node *w = ir_param(g, "W", &s, zero_init(), l), *v = ir_param(g, "V", &s, zero_init(), l);
    g->loss = ir_reduce(g, OP_SUM, ir_binary(g, OP_MUL, w, v, l), 0, false, l);
    ad_backward(g);
    ir_update_begin(g);
    Node *lr = g->lr = ir_hyper(g, "lr", 0.1);
    Node *tie = ir_binary(g, OP_MUL, ir_const(g, 0.5, l), v, l);
    Node *wt = ir_transpose(g, w, NULL, l);
    Node *dw = ir_binary(g, OP_ADD, ir_binary(g, OP_ADD, g->params.items[0].grad, tie, l), wt, l);
    ir_assign(g, w, ir_binary(g, OP_SUB, w, ir_binary(g, OP_MUL, lr, dw, l), l));
    Node *norm = ir_unary(g, OP_SQRT, ir_reduce(g, OP_SUM, ir_binary(g, OP_MUL, w, w, l), 0, false, l), l);
    Node *dv = ir_binary(g, OP_MUL, norm, g->params.items[1].grad, l);
    ir_assign(g, v, ir_binary(g, OP_SUB, v, ir_binary(g, OP_MUL, lr, dv, l), l));
    ir_update_end(g);
    ir_optimize(g);
    Plan *plan = ir_plan(g, 4, 8);
    Program *p = &plan->prog[PROG_TRAIN];
    int first_update = -1, tie_k = -1, wt_k = -1;
    for (int k = 0; k < p->kernels.len; k++) {
        Node *r = p->kernels.items[k].root;
        if (r->op == OP_ASSIGN && first_update < 0)
            first_update = k;
        if (r == tie)
            tie_k = k;
        if (r == wt)
            wt_k = k;
        if (r->op == OP_ASSIGN) {
            assert_int_equal(p->kernels.items[k].more.len, 0);
            for (int b = 0; b < p->kernels.items[k].body.len; b++) {
                Node *x = p->kernels.items[k].body.items[b];
                assert_true(x != tie && x != wt && x->op != OP_SUM);
            }
        }
    }
    assert_int_equal(first_update, p->kernels.len - 2);
    assert_true(tie_k >= 0 && tie_k < first_update);
    assert_true(wt_k >= 0 && wt_k < first_update);
    assert_true(p->offset[norm->id] != PLAN_NONE || p->offset[norm->src[0]->id] != PLAN_NONE);
}

/* The printed graph lists the states in a section of their own and names
 * each ASSIGN's destination; an update kernel names all its stores. */
static void test_print_shows_states_and_update_kernels(void **state) {
    Fx *f = *state;
    Graph *g = small_mlp(f);
    ad_backward(g);
    adam_update(g);
    ir_optimize(g);
    Plan *plan = ir_plan(g, 8, 4);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    ir_print_graph(out, g);
    ir_print_program(out, g, &plan->prog[PROG_TRAIN]);
    fclose(out);
    const char *st = strstr(text, "# optimizer state");
    const char *up = strstr(text, "# optimizer update");
    assert_non_null(st);
    assert_non_null(up);
    assert_true(st < up);
    const char *m = strstr(st, "opt.m.W");
    assert_non_null(m);
    assert_true(m < up);
    assert_non_null(strstr(m, "= state"));
    assert_non_null(strstr(st, "of W init=0"));
    assert_non_null(strstr(up, "-> opt.v.b"));
    assert_non_null(strstr(up, "  lr = %"));
    assert_null(strstr(up, "= state")); /* printed once, in their section */
    assert_non_null(strstr(text, "(fused loop, update of W: 3 stores) -> %"));
    assert_non_null(strstr(text, "opt.m.W, %"));
    free(text);
}

/* a ^ c with a constant c becomes the constant-exponent op; scalar
 * constants fold through power, sin, cos and floor. */
static void test_simplify_power_and_folds_schedule_ops(void **state) {
    Fx *f = *state;
    Graph *g = f->g;
    const Loc l = {0};
    Shape xs = shp(2, DIM_BATCH, 3);
    Node *x = ir_input(g, "x", DT_FLOAT, &xs, l);
    Node *c = ir_const(g, 2, l);
    Node *sq = ir_binary(g, OP_POW, x, c, l);
    Node *k = ir_binary(g, OP_POW, c, ir_const(g, 3, l), l);              /* 8 */
    k = ir_binary(g, OP_ADD, k, ir_unary(g, OP_COS, ir_const(g, 0, l), l), l);   /* 9 */
    k = ir_binary(g, OP_ADD, k, ir_unary(g, OP_FLOOR, ir_const(g, -2.5, l), l), l); /* 6 */
    k = ir_binary(g, OP_ADD, k, ir_unary(g, OP_SIN, ir_const(g, 0, l), l), l);   /* 6 */
    Output o1 = {"sq", sq}, o2 = {"k", k};
    vec_push(f->a, &g->outputs, o1);
    vec_push(f->a, &g->outputs, o2);
    ir_optimize(g);
    assert_int_equal(g->outputs.items[0].node->op, OP_POWC);
    assert_true(g->outputs.items[0].node->attr.pow.p == 2);
    assert_int_equal(g->outputs.items[0].node->nsrc, 1);
    assert_int_equal(g->outputs.items[1].node->op, OP_CONST);
    assert_true(g->outputs.items[1].node->attr.cst.value == 6);
    const char *why = NULL;
    assert_true(ir_verify(g, &why));
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
        cmocka_unit_test_setup_teardown(test_plan_packs_temporaries_without_gaps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hypers_have_kinds_and_states_their_params_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_checks_states_assigns_and_hypers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fusion_makes_one_update_loop_per_parameter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fusion_keeps_reads_of_other_storage_out_of_updates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_print_shows_states_and_update_kernels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_simplify_power_and_folds_schedule_ops, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
