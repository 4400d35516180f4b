/* test_lower.c: lowering to the graph: inputs, params and their
 * initializers, the op chains of expressions and losses, names, metrics and
 * locations. Errors are test_frontend_diag.c's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "frontend/frontend.h"

static Arena *arena;

static int setup(void **state) {
    (void)state;
    arena = arena_new();
    return 0;
}

static int teardown(void **state) {
    (void)state;
    arena_free(arena);
    arena = NULL;
    return 0;
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

/* The model of text, which must compile without errors. */
static Model *compile(const char *text) {
    Diags *d = arena_alloc(arena, sizeof *d);
    diags_init(d, arena);
    Model *m = fe_compile(arena, d, "m.nn", text);
    if (!m || d->nerrors) {
        char *s = arena_strdup(arena, "");
        for (int i = 0; i < d->list.len; i++)
            s = arena_printf(arena, "%s%s", s, diag_format(arena, &d->list.items[i]));
        fail_msg("unexpected errors:\n%s", s);
    }
    return m;
}

static void assert_shape(const Shape *s, int rank, int64_t d0, int64_t d1) {
    assert_int_equal(s->rank, rank);
    if (rank > 0)
        assert_int_equal(s->d[0], d0);
    if (rank > 1)
        assert_int_equal(s->d[1], d1);
}

static void assert_loc(Loc l, int line, int col, int len) {
    assert_non_null(l.file);
    assert_int_equal(l.line, line);
    assert_int_equal(l.col, col);
    assert_int_equal(l.len, len);
}

/* The value bound to a variable is the node the graph names after it. */
static Node *named(const Model *m, const char *name) {
    const Graph *g = m->graph;
    for (int i = 0; i < g->nodes.len; i++)
        if (g->nodes.items[i]->name && !strcmp(g->nodes.items[i]->name, name))
            return g->nodes.items[i];
    fail_msg("no node named %s", name);
    return NULL;
}

static const char mlp[] = "const H = 16\n"                          /* 1 */
                          "input  x[B, 4]\n"                        /* 2 */
                          "input  y[B] : int\n"                     /* 3 */
                          "param  W1[4, H] ~ he\n"                  /* 4 */
                          "param  b1[H]    = 0\n"                   /* 5 */
                          "param  W2[H, 3] ~ glorot\n"              /* 6 */
                          "param  b2[3]    = 0.5\n"                 /* 7 */
                          "h      = relu(x @ W1 + b1)\n"            /* 8 */
                          "logits = h @ W2 + b2\n"                  /* 9 */
                          "output probs = softmax(logits)\n"        /* 10 */
                          "loss   = cross_entropy(logits, y)\n";    /* 11 */

static void test_lower_mlp_declares_inputs_and_params(void **state) {
    (void)state;
    Model *m = compile(mlp);
    Graph *g = m->graph;
    assert_int_equal(g->inputs.len, 2);
    const Input *x = &g->inputs.items[0], *y = &g->inputs.items[1];
    assert_string_equal(x->name, "x");
    assert_int_equal(x->node->op, OP_INPUT);
    assert_int_equal(x->node->dtype, DT_FLOAT);
    assert_shape(&x->node->shape, 2, DIM_BATCH, 4);
    assert_string_equal(y->name, "y");
    assert_int_equal(y->node->dtype, DT_INT);
    assert_int_equal(y->node->attr.leaf.index, 1);
    assert_shape(&y->node->shape, 1, DIM_BATCH, 0);

    assert_int_equal(g->params.len, 4);
    const Param *p = g->params.items;
    assert_string_equal(p[0].name, "W1");
    assert_shape(&p[0].node->shape, 2, 4, 16);
    assert_int_equal(p[0].init.kind, INIT_HE);
    assert_string_equal(p[1].name, "b1");
    assert_shape(&p[1].node->shape, 1, 16, 0);
    assert_int_equal(p[1].init.kind, INIT_CONST);
    assert_true(p[1].init.a == 0.0);
    assert_string_equal(p[2].name, "W2");
    assert_shape(&p[2].node->shape, 2, 16, 3);
    assert_int_equal(p[2].init.kind, INIT_GLOROT);
    assert_int_equal(p[3].init.kind, INIT_CONST);
    assert_true(p[3].init.a == 0.5);
    assert_string_equal(m->graph->name, "m");
}

static void test_lower_mlp_loss_is_mean_of_xent_of_the_logits(void **state) {
    (void)state;
    Model *m = compile(mlp);
    Graph *g = m->graph;
    Node *loss = g->loss;
    assert_non_null(loss);
    assert_ptr_equal(loss, named(m, "loss"));
    assert_int_equal(loss->op, OP_MEAN);
    assert_int_equal(loss->shape.rank, 0);
    assert_int_equal(loss->attr.red.axes, 1u);
    assert_false(loss->attr.red.keepdims);
    Node *xent = loss->src[0];
    assert_int_equal(xent->op, OP_XENT);
    assert_shape(&xent->shape, 1, DIM_BATCH, 0);
    Node *logits = xent->src[0];
    assert_ptr_equal(logits, named(m, "logits"));
    assert_ptr_equal(xent->src[1], g->inputs.items[1].node);
    /* logits = h @ W2 + b2 */
    assert_int_equal(logits->op, OP_ADD);
    assert_shape(&logits->shape, 2, DIM_BATCH, 3);
    assert_ptr_equal(logits->src[1], g->params.items[3].node);
    Node *mm = logits->src[0];
    assert_int_equal(mm->op, OP_MATMUL);
    assert_false(mm->attr.mm.ta);
    assert_false(mm->attr.mm.tb);
    assert_ptr_equal(mm->src[1], g->params.items[2].node);
    /* h = relu(x @ W1 + b1) */
    Node *h = mm->src[0];
    assert_ptr_equal(h, named(m, "h"));
    assert_int_equal(h->op, OP_RELU);
    assert_shape(&h->shape, 2, DIM_BATCH, 16);
    assert_int_equal(h->src[0]->op, OP_ADD);
    assert_int_equal(h->src[0]->src[0]->op, OP_MATMUL);
    assert_ptr_equal(h->src[0]->src[0]->src[0], g->inputs.items[0].node);
    assert_ptr_equal(h->src[0]->src[0]->src[1], g->params.items[0].node);
    assert_ptr_equal(h->src[0]->src[1], g->params.items[1].node);
    /* the metric: argmax of the logits against y */
    assert_int_equal(g->metric.kind, METRIC_ARGMAX);
    assert_ptr_equal(g->metric.pred, logits);
    assert_int_equal(g->metric.label, 1);
}

static void test_lower_output_is_named_and_bound(void **state) {
    (void)state;
    Model *m = compile(mlp);
    Graph *g = m->graph;
    assert_int_equal(g->outputs.len, 1);
    assert_string_equal(g->outputs.items[0].name, "probs");
    Node *probs = g->outputs.items[0].node;
    assert_int_equal(probs->op, OP_SOFTMAX);
    assert_int_equal(probs->attr.axis, 1);
    assert_string_equal(probs->name, "probs");
    assert_ptr_equal(probs->src[0], named(m, "logits"));
}

static void test_lower_nodes_carry_source_locations(void **state) {
    (void)state;
    Model *m = compile(mlp);
    Graph *g = m->graph;
    assert_loc(g->inputs.items[0].node->loc, 2, 8, 7); /* x[B, 4] */
    assert_loc(g->params.items[0].node->loc, 4, 8, 8); /* W1[4, H] */
    Node *logits = named(m, "logits");
    assert_loc(logits->loc, 9, 10, 11);         /* h @ W2 + b2 */
    assert_loc(logits->src[0]->loc, 9, 10, 6);  /* h @ W2 */
    Node *h = named(m, "h");
    assert_loc(h->loc, 8, 10, 17);              /* relu(...) */
    assert_loc(h->src[0]->loc, 8, 15, 11);      /* x @ W1 + b1 */
    assert_loc(g->loss->loc, 11, 10, 24);       /* cross_entropy(logits, y) */
    assert_loc(g->loss->src[0]->loc, 11, 10, 24);
    assert_loc(g->outputs.items[0].node->loc, 10, 16, 15);
    assert_ptr_equal(h->loc.file, m->src);
}

static void test_lower_consts_fold_into_dims_and_scalars(void **state) {
    (void)state;
    Model *m = compile("const H = 8\n"
                       "const N = H * 2\n"
                       "const S = 1/255\n"
                       "input x[B, N]\n"
                       "param W[N, H / 4] = -S\n"
                       "h = x * S\n"
                       "k = x + (N - 1) * 2\n");
    Graph *g = m->graph;
    assert_shape(&g->inputs.items[0].node->shape, 2, DIM_BATCH, 16);
    assert_shape(&g->params.items[0].node->shape, 2, 16, 2);
    assert_true(g->params.items[0].init.a == -1.0 / 255);
    Node *h = named(m, "h");
    assert_int_equal(h->op, OP_MUL);
    Node *s = h->src[1];
    assert_int_equal(s->op, OP_CONST);
    assert_int_equal(s->shape.rank, 0);
    assert_true(s->attr.cst.value == 1.0 / 255);
    assert_loc(s->loc, 6, 9, 1);
    Node *k = named(m, "k");
    assert_int_equal(k->src[1]->op, OP_CONST); /* (N - 1) * 2 is one constant */
    assert_true(k->src[1]->attr.cst.value == 30.0);
    assert_loc(k->src[1]->loc, 7, 9, 11);
}

static void test_lower_param_initializers(void **state) {
    (void)state;
    Model *m = compile("param W[2, 3] = [[0.1, 0.6, 0.7], [0.2, 0.8, -1 / 2]]\n"
                       "param w = [1, 2]\n"
                       "param theta = 1.5\n"
                       "param n[3] ~ normal(0.5, std = 0.1)\n"
                       "param u[2, 2] ~ uniform(-1, 1)\n"
                       "param d[2] ~ normal\n"
                       "param g[4, 2] ~ he()\n");
    const Param *p = m->graph->params.items;
    assert_int_equal(m->graph->params.len, 7);
    assert_int_equal(p[0].init.kind, INIT_VALUES);
    assert_int_equal(p[0].init.nvalues, 6);
    const double want[] = {0.1, 0.6, 0.7, 0.2, 0.8, -0.5};
    for (int i = 0; i < 6; i++)
        assert_true(p[0].init.values[i] == want[i]);
    assert_shape(&p[1].node->shape, 1, 2, 0); /* from the literal */
    assert_int_equal(p[1].init.kind, INIT_VALUES);
    assert_true(p[1].init.values[1] == 2.0);
    assert_int_equal(p[2].node->shape.rank, 0); /* a scalar param */
    assert_int_equal(p[2].init.kind, INIT_CONST);
    assert_true(p[2].init.a == 1.5);
    assert_int_equal(p[3].init.kind, INIT_NORMAL);
    assert_true(p[3].init.a == 0.5);
    assert_true(p[3].init.b == 0.1);
    assert_int_equal(p[4].init.kind, INIT_UNIFORM);
    assert_true(p[4].init.a == -1.0);
    assert_true(p[4].init.b == 1.0);
    assert_int_equal(p[5].init.kind, INIT_NORMAL); /* defaults: mean 0, std 1 */
    assert_true(p[5].init.a == 0.0);
    assert_true(p[5].init.b == 1.0);
    assert_int_equal(p[6].init.kind, INIT_HE);
    assert_loc(p[0].node->loc, 1, 7, 7);
    assert_loc(p[1].node->loc, 2, 7, 1);
}

static void test_lower_int_input_is_cast_in_float_arithmetic(void **state) {
    (void)state;
    Model *m = compile("input ids[B, 3] : int\n"
                       "z = ids * 2\n"
                       "s = -ids\n"
                       "e = exp(ids)\n");
    Node *in = m->graph->inputs.items[0].node;
    Node *z = named(m, "z");
    assert_int_equal(z->op, OP_MUL);
    assert_int_equal(z->dtype, DT_FLOAT);
    assert_int_equal(z->src[0]->op, OP_CAST);
    assert_ptr_equal(z->src[0]->src[0], in);
    assert_loc(z->src[0]->loc, 2, 5, 3);
    Node *s = named(m, "s");
    assert_int_equal(s->op, OP_NEG);
    assert_int_equal(s->src[0]->op, OP_CAST);
    assert_int_equal(named(m, "e")->src[0]->op, OP_CAST);
}

static void test_lower_mse_is_mean_of_squared_difference(void **state) {
    (void)state;
    Model *m = compile("input x[B, 2]\n"
                       "input t[B, 1]\n"
                       "param W[2, 1] = 0\n"
                       "pred = x @ W\n"
                       "loss = mse(pred, t)\n");
    Graph *g = m->graph;
    Node *loss = g->loss;
    assert_int_equal(loss->op, OP_MEAN);
    assert_int_equal(loss->attr.red.axes, 3u);
    assert_int_equal(loss->shape.rank, 0);
    Node *sq = loss->src[0];
    assert_int_equal(sq->op, OP_POWC);
    assert_true(sq->attr.pow.p == 2.0);
    Node *diff = sq->src[0];
    assert_int_equal(diff->op, OP_SUB);
    assert_ptr_equal(diff->src[0], named(m, "pred"));
    assert_ptr_equal(diff->src[1], g->inputs.items[1].node);
    assert_int_equal(g->metric.kind, METRIC_NONE);
}

static void test_lower_bce_on_an_input_sets_the_threshold_metric(void **state) {
    (void)state;
    Model *m = compile("input x[B, 2]\n"
                       "input t[B, 1]\n"
                       "param W[2, 1] = 0\n"
                       "p = sigmoid(x @ W)\n"
                       "loss = bce(p, t)\n");
    Graph *g = m->graph;
    assert_int_equal(g->loss->op, OP_MEAN);
    assert_int_equal(g->loss->src[0]->op, OP_BCE);
    assert_ptr_equal(g->loss->src[0]->src[0], named(m, "p"));
    assert_ptr_equal(g->loss->src[0]->src[1], g->inputs.items[1].node);
    assert_int_equal(g->metric.kind, METRIC_THRESHOLD);
    assert_ptr_equal(g->metric.pred, named(m, "p"));
    assert_int_equal(g->metric.label, 1);
    assert_true(g->metric.threshold == 0.5);
}

static void test_lower_metric_comes_only_from_the_loss_top_level_call(void **state) {
    (void)state;
    Model *m = compile("input x[B, 3]\n"
                       "input y[B] : int\n"
                       "param W[3, 3] = 0\n"
                       "loss = cross_entropy(x @ W, y) + 0.01 * sum(W ^ 2)\n");
    assert_int_equal(m->graph->loss->op, OP_ADD);
    assert_int_equal(m->graph->metric.kind, METRIC_NONE);
    m = compile("input x[B, 3]\n"
                "input y[B] : int\n"
                "l = cross_entropy(x, y)\n"
                "loss = l\n");
    assert_int_equal(m->graph->metric.kind, METRIC_NONE);
}

static void test_lower_reductions_take_axes_and_keepdims(void **state) {
    (void)state;
    Model *m = compile("input x[B, 3]\n"
                       "a = sum(x, axis = -1)\n"
                       "b = mean(x, axis = [0, 1], keepdims = true)\n"
                       "c = mean(x)\n"
                       "d = sum(x, 0, true)\n");
    Node *a = named(m, "a"), *b = named(m, "b"), *c = named(m, "c"), *d = named(m, "d");
    assert_int_equal(a->op, OP_SUM);
    assert_int_equal(a->attr.red.axes, 2u);
    assert_shape(&a->shape, 1, DIM_BATCH, 0);
    assert_int_equal(b->op, OP_MEAN);
    assert_int_equal(b->attr.red.axes, 3u);
    assert_true(b->attr.red.keepdims);
    assert_shape(&b->shape, 2, 1, 1);
    assert_int_equal(c->attr.red.axes, 3u);
    assert_int_equal(c->shape.rank, 0);
    assert_int_equal(d->attr.red.axes, 1u);
    assert_shape(&d->shape, 2, 1, 3);
}

static void test_lower_softmax_transpose_power_and_negation(void **state) {
    (void)state;
    Model *m = compile("const P = 3\n"
                       "input x[B, 3]\n"
                       "param W[3, 2] = 0\n"
                       "a = log_softmax(x, axis = 0)\n"
                       "s = softmax(x)\n"
                       "t = transpose(W)\n"
                       "p = x ^ (P - 1)\n"
                       "n = -x^2\n"
                       "q = tanh(x) / sqrt(x) - log(x)\n");
    Node *a = named(m, "a");
    assert_int_equal(a->op, OP_LOG_SOFTMAX);
    assert_int_equal(a->attr.axis, 0);
    assert_int_equal(named(m, "s")->attr.axis, 1);
    Node *t = named(m, "t");
    assert_int_equal(t->op, OP_TRANSPOSE);
    assert_shape(&t->shape, 2, 2, 3);
    Node *p = named(m, "p");
    assert_int_equal(p->op, OP_POWC);
    assert_true(p->attr.pow.p == 2.0);
    Node *n = named(m, "n");
    assert_int_equal(n->op, OP_NEG);
    assert_int_equal(n->src[0]->op, OP_POWC);
    Node *q = named(m, "q");
    assert_int_equal(q->op, OP_SUB);
    assert_int_equal(q->src[0]->op, OP_DIV);
    assert_int_equal(q->src[0]->src[0]->op, OP_TANH);
    assert_int_equal(q->src[0]->src[1]->op, OP_SQRT);
    assert_int_equal(q->src[1]->op, OP_LOG);
}

static void test_lower_names_may_be_rebound(void **state) {
    (void)state;
    Model *m = compile("input x[B, 3]\n"
                       "h = relu(x)\n"
                       "h = sigmoid(h)\n"
                       "k = h\n"
                       "output out = h\n");
    Graph *g = m->graph;
    Node *sig = g->outputs.items[0].node;
    assert_int_equal(sig->op, OP_SIGMOID);
    assert_string_equal(sig->name, "h"); /* the first name sticks */
    assert_int_equal(sig->src[0]->op, OP_RELU);
    assert_string_equal(sig->src[0]->name, "h");
    assert_string_equal(g->outputs.items[0].name, "out");
}

static void test_lower_model_without_loss_compiles(void **state) {
    (void)state;
    Model *m = compile("input x[B, 3]\noutput y = relu(x)\n");
    assert_null(m->graph->loss);
    assert_int_equal(m->graph->metric.kind, METRIC_NONE);
    assert_int_equal(m->graph->outputs.len, 1);
}

static void test_lower_model_name_is_the_sanitized_base_name(void **state) {
    (void)state;
    const char *cases[][2] = {
        {"examples/mnist-mlp.nn", "mnist_mlp"},
        {"2layer.nn", "_2layer"},
        {"/tmp/a.b/x.v1.nn", "x_v1"},
        {"model", "model"},
        {"dir/.nn", "_nn"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Diags d;
        diags_init(&d, arena);
        Model *m = fe_compile(arena, &d, cases[i][0], "input x[B, 1]\n");
        assert_non_null(m);
        assert_string_equal(m->graph->name, cases[i][1]);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        TEST(test_lower_mlp_declares_inputs_and_params),
        TEST(test_lower_mlp_loss_is_mean_of_xent_of_the_logits),
        TEST(test_lower_output_is_named_and_bound),
        TEST(test_lower_nodes_carry_source_locations),
        TEST(test_lower_consts_fold_into_dims_and_scalars),
        TEST(test_lower_param_initializers),
        TEST(test_lower_int_input_is_cast_in_float_arithmetic),
        TEST(test_lower_mse_is_mean_of_squared_difference),
        TEST(test_lower_bce_on_an_input_sets_the_threshold_metric),
        TEST(test_lower_metric_comes_only_from_the_loss_top_level_call),
        TEST(test_lower_reductions_take_axes_and_keepdims),
        TEST(test_lower_softmax_transpose_power_and_negation),
        TEST(test_lower_names_may_be_rebound),
        TEST(test_lower_model_without_loss_compiles),
        TEST(test_lower_model_name_is_the_sanitized_base_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
