/* test_layers.c: the model language's layers, user functions, gather and
 * the tensor builtins, through the whole pipeline: the parameters they
 * create (names, shapes, initialisers), and the values the compiled model
 * computes against references worked out here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "support.h"

static const Param *find_param(const Graph *g, const char *name) {
    for (int i = 0; i < g->params.len; i++)
        if (!strcmp(g->params.items[i].name, name))
            return &g->params.items[i];
    return NULL;
}

static void assert_param(const Graph *g, const char *name, int rank, int64_t d0, int64_t d1,
                         InitKind init) {
    const Param *p = find_param(g, name);
    if (!p)
        fail_msg("no param '%s'", name);
    assert_int_equal(p->node->shape.rank, rank);
    assert_int_equal(p->node->shape.d[0], d0);
    if (rank > 1)
        assert_int_equal(p->node->shape.d[1], d1);
    assert_int_equal(p->init.kind, init);
}

/* dense names its parameters after the variable, He before relu, Glorot
 * otherwise; a reused name gets _1; bias = false makes no b. */
static void test_dense_creates_named_parameters(void **state) {
    (void)state;
    Compiled *c = compile_model("m.nn",
                                "input x[B, 4]\n"
                                "h = dense(x, 8, relu)\n"
                                "h = dense(h, 8, activation = tanh)\n"
                                "out = dense(h, 3, bias = false) + dense(x, 3)\n"
                                "output o = out\n",
                                4, 4);
    const Graph *g = c->g;
    assert_int_equal(g->params.len, 7);
    assert_param(g, "h.W", 2, 4, 8, INIT_HE);
    assert_param(g, "h.b", 1, 8, 0, INIT_CONST);
    assert_param(g, "h_1.W", 2, 8, 8, INIT_GLOROT);
    assert_param(g, "h_1.b", 1, 8, 0, INIT_CONST);
    assert_param(g, "out.W", 2, 8, 3, INIT_GLOROT);
    assert_null(find_param(g, "out.b"));
    assert_param(g, "out_1.W", 2, 4, 3, INIT_GLOROT);
    assert_param(g, "out_1.b", 1, 3, 0, INIT_CONST);
    compiled_free(c);
}

/* dense(x, 2, sigmoid) = sigmoid(x @ W + b), computed with set weights. */
static void test_dense_computes_activation_of_affine_map(void **state) {
    (void)state;
    Compiled *c = compile_model("m.nn",
                                "input x[B, 3]\n"
                                "output y = dense(x, 2, sigmoid)\n",
                                2, 8);
    const double W[6] = {0.1, -0.2, 0.3, 0.4, -0.5, 0.6}, b[2] = {0.05, -0.05};
    for (int i = 0; i < 6; i++)
        set_elem(c, param(c, "y.W"), i, W[i]);
    for (int i = 0; i < 2; i++)
        set_elem(c, param(c, "y.b"), i, b[i]);
    const double x[6] = {1, 2, 3, -1, 0.5, 2};
    set_input(c, "x", x, 6);
    run(c, &c->rm->predict, 2);
    for (int r = 0; r < 2; r++)
        for (int j = 0; j < 2; j++) {
            double z = b[j];
            for (int k = 0; k < 3; k++)
                z += x[r * 3 + k] * W[k * 2 + j];
            assert_float_equal(get_elem(c, &c->rm->predict.roots[0], r * 2 + j),
                               1 / (1 + exp(-z)), 1e-14);
        }
    compiled_free(c);
}

/* Each call of a function gets its own parameters, prefixed with the
 * call's target; nested calls nest the prefix; args may size layers. */
static void test_functions_instantiate_parameters_per_call(void **state) {
    (void)state;
    Compiled *c = compile_model("m.nn",
                                "input x[B, 4]\n"
                                "fn block(x, n, p = 0.5) {\n"
                                "  h = dense(x, n, relu)\n"
                                "  h = dropout(h, p)\n"
                                "  return h\n"
                                "}\n"
                                "fn tower(x) {\n"
                                "  a = block(x, 6)\n"
                                "  return block(a, 2)\n"
                                "}\n"
                                "a = block(x, 5)\n"
                                "b = block(a, 3, p = 0.1)\n"
                                "t = tower(x)\n"
                                "loss = mean(b) + mean(t)\n",
                                4, 4);
    const Graph *g = c->g;
    assert_param(g, "a.h.W", 2, 4, 5, INIT_HE);
    assert_param(g, "a.h.b", 1, 5, 0, INIT_CONST);
    assert_param(g, "b.h.W", 2, 5, 3, INIT_HE);
    assert_param(g, "t.a.h.W", 2, 4, 6, INIT_HE);
    assert_param(g, "t.out.h.W", 2, 6, 2, INIT_HE);
    assert_int_equal(g->params.len, 8);
    int dropouts = 0;
    for (int i = 0; i < g->nodes.len; i++)
        dropouts += g->nodes.items[i]->op == OP_DROPOUT && i < g->grad_start;
    assert_int_equal(dropouts, 4);
    compiled_free(c);
}

/* A layer's parameters can be named later: weight tying. */
static void test_layer_parameters_are_visible_by_dotted_name(void **state) {
    (void)state;
    Compiled *c = compile_model("m.nn",
                                "input ids[B] : int\n"
                                "e = embedding(ids, 5, 3)\n"
                                "output logits = e @ transpose(e.E)\n",
                                2, 8);
    assert_int_equal(c->g->params.len, 1);
    assert_param(c->g, "e.E", 2, 5, 3, INIT_NORMAL);
    const RtTensor *E = param(c, "e.E");
    for (int i = 0; i < 15; i++)
        set_elem(c, E, i, i * 0.1);
    const double ids[2] = {4, 1};
    set_input(c, "ids", ids, 2);
    run(c, &c->rm->predict, 2);
    for (int r = 0; r < 2; r++)
        for (int j = 0; j < 5; j++) {
            double s = 0;
            for (int k = 0; k < 3; k++)
                s += (ids[r] * 3 + k) * 0.1 * (j * 3 + k) * 0.1;
            assert_float_equal(get_elem(c, &c->rm->predict.roots[0], r * 5 + j), s, 1e-12);
        }
    compiled_free(c);
}

/* E[ids] with ids [B, 2], reshape to [B, 6], concat, max, the rank-3 @. */
static void test_gather_reshape_concat_max_and_rank3_matmul(void **state) {
    (void)state;
    Compiled *c = compile_model("m.nn",
                                "input ids[B, 2] : int\n"
                                "param E[4, 3] = [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]]\n"
                                "param W[3, 2] = [[1, 0], [0, 1], [1, 1]]\n"
                                "e = E[ids]\n"
                                "output flat = reshape(e, [B, -1])\n"
                                "output both = concat([flat, max(e, axis = 1)], axis = 1)\n"
                                "output proj = e @ W\n"
                                "output pooled = mean(e @ W, axis = [1, 2], keepdims = true)\n",
                                2, 8);
    const double ids[4] = {0, 3, 2, 2};
    set_input(c, "ids", ids, 4);
    run(c, &c->rm->predict, 2);
    const RtTensor *flat = &c->rm->predict.roots[0], *both = &c->rm->predict.roots[1];
    const RtTensor *proj = &c->rm->predict.roots[2], *pooled = &c->rm->predict.roots[3];
    for (int r = 0; r < 2; r++) {
        double mean = 0;
        for (int t = 0; t < 2; t++) {
            int id = (int)ids[r * 2 + t];
            for (int k = 0; k < 3; k++) {
                double v = id * 3 + k + 1;
                assert_float_equal(get_elem(c, flat, r * 6 + t * 3 + k), v, 0);
                assert_float_equal(get_elem(c, both, r * 9 + t * 3 + k), v, 0);
            }
            double p0 = id * 3 + 1 + id * 3 + 3, p1 = id * 3 + 2 + id * 3 + 3;
            assert_float_equal(get_elem(c, proj, r * 4 + t * 2), p0, 0);
            assert_float_equal(get_elem(c, proj, r * 4 + t * 2 + 1), p1, 0);
            mean += (p0 + p1) / 4;
        }
        for (int k = 0; k < 3; k++) {
            double a = ids[r * 2] * 3 + k + 1, b = ids[r * 2 + 1] * 3 + k + 1;
            assert_float_equal(get_elem(c, both, r * 9 + 6 + k), a > b ? a : b, 0);
        }
        assert_float_equal(get_elem(c, pooled, r), mean, 1e-12);
    }
    assert_int_equal(c->rm->predict.roots[3].rank, 3);
    compiled_free(c);
}

/* The losses against hand-computed values, in float64. */
static void test_losses_match_reference_values(void **state) {
    (void)state;
    Compiled *c = compile_model("m.nn",
                                "input z[B, 3]\n"
                                "input t[B, 3]\n"
                                "input y[B] : int\n"
                                "output l_mae = mae(z, t)\n"
                                "output l_bcel = bce_logits(z, t)\n"
                                "output l_xent = cross_entropy(z, y)\n"
                                "output l_soft = cross_entropy(z, t)\n"
                                "output l_nll = nll(log_softmax(z), y)\n"
                                "output l_bce = bce(sigmoid(z), t)\n",
                                2, 8);
    const double z[6] = {1000, -1000, 0.5, -2, 3, 0.25}, t[6] = {1, 0, 0.5, 0.2, 0.3, 0.5};
    const double y[2] = {0, 1};
    set_input(c, "z", z, 6);
    set_input(c, "t", t, 6);
    set_input(c, "y", y, 2);
    run(c, &c->rm->predict, 2);
    double mae = 0, bcel = 0, xent = 0, soft = 0, bce = 0;
    for (int i = 0; i < 6; i++) {
        mae += fabs(z[i] - t[i]) / 6;
        bcel += (fmax(z[i], 0) - z[i] * t[i] + log1p(exp(-fabs(z[i])))) / 6;
        double p = 1 / (1 + exp(-z[i]));
        bce += -(t[i] * fmax(log(p), -100) + (1 - t[i]) * fmax(log(1 - p), -100)) / 6;
    }
    for (int r = 0; r < 2; r++) {
        double m = fmax(z[r * 3], fmax(z[r * 3 + 1], z[r * 3 + 2])), s = 0;
        for (int k = 0; k < 3; k++)
            s += exp(z[r * 3 + k] - m);
        double lse = m + log(s);
        xent += (lse - z[r * 3 + (int)y[r]]) / 2;
        for (int k = 0; k < 3; k++)
            soft += -t[r * 3 + k] * (z[r * 3 + k] - lse) / 2;
    }
    const RtTensor *roots = c->rm->predict.roots;
    assert_float_equal(get_elem(c, &roots[0], 0), mae, 1e-12);
    assert_float_equal(get_elem(c, &roots[1], 0), bcel, 1e-12);
    assert_float_equal(get_elem(c, &roots[2], 0), xent, 1e-12);
    assert_float_equal(get_elem(c, &roots[3], 0), soft, 1e-9);
    assert_float_equal(get_elem(c, &roots[4], 0), xent, 1e-12);
    assert_float_equal(get_elem(c, &roots[5], 0), bce, 1e-9);
    for (int i = 0; i < 6; i++)
        assert_true(isfinite(get_elem(c, &roots[i], 0)));
    compiled_free(c);
}

/* Logits of magnitude 1000 give finite losses and gradients in float32. */
static void test_losses_are_stable_for_huge_logits(void **state) {
    (void)state;
    Compiled *c = compile_model("m.nn",
                                "input y[B] : int\n"
                                "input t[B, 2]\n"
                                "param z[2] = [1000, -1000]\n"
                                "loss = cross_entropy(z * t, y) + bce_logits(z * t, t) + "
                                "cross_entropy(z * t, t) + bce(sigmoid(z * t), t)\n",
                                2, 4);
    const double y[2] = {1, 0}, t[4] = {1, 1, 0, 1};
    set_input(c, "y", y, 2);
    set_input(c, "t", t, 4);
    run(c, &c->rm->grad, 2);
    for (int r = 0; r < c->rm->grad.nroots; r++)
        for (int64_t i = 0; i < rt_numel(&c->rm->grad.roots[r], 2); i++)
            assert_true(isfinite(get_elem(c, &c->rm->grad.roots[r], i)));
    compiled_free(c);
}

/* Activations against libm, float64: leaky_relu, gelu (erf form),
 * softplus (no overflow at 1000), abs. */
static void test_activations_match_reference(void **state) {
    (void)state;
    Compiled *c = compile_model("m.nn",
                                "input x[B, 5]\n"
                                "output a = leaky_relu(x)\n"
                                "output b = leaky_relu(x, alpha = 0.2)\n"
                                "output g = gelu(x)\n"
                                "output s = softplus(x)\n"
                                "output m = abs(x)\n",
                                1, 8);
    const double x[5] = {-1000, -1.5, 0, 0.7, 1000};
    set_input(c, "x", x, 5);
    run(c, &c->rm->predict, 1);
    const RtTensor *r = c->rm->predict.roots;
    for (int i = 0; i < 5; i++) {
        double v = x[i];
        assert_float_equal(get_elem(c, &r[0], i), v > 0 ? v : 0.01 * v, 1e-12);
        assert_float_equal(get_elem(c, &r[1], i), v > 0 ? v : 0.2 * v, 1e-12);
        assert_float_equal(get_elem(c, &r[2], i), v * 0.5 * (1 + erf(v / sqrt(2))), 1e-12);
        assert_float_equal(get_elem(c, &r[3], i), fmax(v, 0) + log1p(exp(-fabs(v))), 1e-12);
        assert_float_equal(get_elem(c, &r[4], i), fabs(v), 0);
    }
    compiled_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dense_creates_named_parameters),
        cmocka_unit_test(test_dense_computes_activation_of_affine_map),
        cmocka_unit_test(test_functions_instantiate_parameters_per_call),
        cmocka_unit_test(test_layer_parameters_are_visible_by_dotted_name),
        cmocka_unit_test(test_gather_reshape_concat_max_and_rank3_matmul),
        cmocka_unit_test(test_losses_match_reference_values),
        cmocka_unit_test(test_losses_are_stable_for_huge_logits),
        cmocka_unit_test(test_activations_match_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
