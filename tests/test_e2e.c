/* test_e2e.c: whole models through the real pipeline (parse, autodiff,
 * passes, fusion, LLVM JIT, runtime), checked against numbers computed by
 * hand, and the bundled examples trained to their targets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>

#include "support.h"

/* A 2-3-1 sigmoid network on input [0, 0]:
 *   h = sigmoid(b1) = sigmoid([0.5, 0.8, 0.5]) = [0.622459, 0.689974, 0.622459]
 *   z = 0.3 * 0.622459 + 0.3 * 0.689974 + 0.7 * 0.622459 + 1.0 = 1.829451
 *   sigmoid(z) = 0.86170 */
static void test_sigmoid_network_outputs_hand_computed_value(void **state) {
    (void)state;
    const char *src =
        "input x[B, 2]\n"
        "param W1[2, 3] = [[0.1, 0.6, 0.7], [0.2, 0.8, 1.0]]\n"
        "param b1[3] = [0.5, 0.8, 0.5]\n"
        "param W2[3, 1] = [[0.3], [0.3], [0.7]]\n"
        "param b2[1] = [1.0]\n"
        "h = sigmoid(x @ W1 + b1)\n"
        "output yhat = sigmoid(h @ W2 + b2)\n";
    for (int es = 4; es <= 8; es += 4) {
        Compiled *c = compile_model("net231.nn", src, 4, es);
        double x[2] = {0, 0};
        set_input(c, "x", x, 2);
        run(c, &c->rm->predict, 1);
        double y = get_elem(c, &c->rm->predict.roots[0], 0);
        assert_float_equal(y, 0.86170, 5e-6);
        assert_float_equal(y, 1 / (1 + exp(-(0.3 / (1 + exp(-0.5)) + 0.3 / (1 + exp(-0.8)) +
                                              0.7 / (1 + exp(-0.5)) + 1.0))), es == 4 ? 1e-6 : 1e-14);
        compiled_free(c);
    }
}

/* L = (t1 t2 x - y)^2 at t1 = 1.5, t2 = -2, x = 3, y = 1:
 *   t1 t2 x - y = -10, L = 100
 *   dL/dt1 = 2 (t1 t2 x - y) x t2 = 2 (-10)(3)(-2) = 120
 *   dL/dt2 = 2 (t1 t2 x - y) x t1 = 2 (-10)(3)(1.5) = -90 */
static void test_product_model_gradients_match_hand_derivation(void **state) {
    (void)state;
    const char *src =
        "input x[B]\n"
        "input y[B]\n"
        "param t1 = 1.5\n"
        "param t2 = -2\n"
        "loss = mean((t1 * t2 * x - y) ^ 2)\n";
    Compiled *c = compile_model("product.nn", src, 1, 4);
    double x = 3, y = 1;
    set_input(c, "x", &x, 1);
    set_input(c, "y", &y, 1);
    run(c, &c->rm->grad, 1);
    assert_int_equal(c->rm->grad.nroots, 3);
    assert_float_equal(get_elem(c, &c->rm->grad.roots[0], 0), 100, 0);
    assert_float_equal(get_elem(c, &c->rm->grad.roots[1], 0), 120, 0);
    assert_float_equal(get_elem(c, &c->rm->grad.roots[2], 0), -90, 0);
    compiled_free(c);
}

/* yhat = w x, squared error, w from 15, x = 1, y = 10, lr 0.1:
 *   dL/dw = 2 (w x - y) x = 10, w = 15 - 0.1 * 10 = 14
 *   dL/dw = 2 (14 - 10) = 8,     w = 14 - 0.8 = 13.2 */
static void test_gradient_descent_steps_match_hand_computation(void **state) {
    (void)state;
    const char *src =
        "input x[B]\n"
        "input y[B]\n"
        "param w = 15\n"
        "loss = mean((w * x - y) ^ 2)\n"
        "train {\n"
        "  optimizer = sgd(lr = 0.1)\n"
        "}\n";
    Compiled *c = compile_model("fit10x.nn", src, 1, 4);
    double x = 1, y = 10;
    set_input(c, "x", &x, 1);
    set_input(c, "y", &y, 1);
    run(c, &c->rm->train, 1);
    assert_float_equal(get_elem(c, &c->rm->train.roots[0], 0), 25, 0); /* (15 - 10)^2 */
    assert_float_equal(get_elem(c, param(c, "w"), 0), 14, 1e-6);
    run(c, &c->rm->train, 1);
    assert_float_equal(get_elem(c, &c->rm->train.roots[0], 0), 16, 0);
    assert_float_equal(get_elem(c, param(c, "w"), 0), 13.2, 1e-6);
    compiled_free(c);
}

/* The last partial batch: rows 0..4 of a batch of 5 equal the same rows
 * computed in a batch of 8. */
static void test_partial_batch_computes_the_same_rows(void **state) {
    (void)state;
    const char *src =
        "input x[B, 3]\n"
        "param W[3, 2] = [[1, -2], [0.5, 0.25], [-1, 3]]\n"
        "param b[2] = [0.1, -0.2]\n"
        "output y = softmax(tanh(x @ W + b))\n";
    Compiled *c = compile_model("partial.nn", src, 8, 4);
    double x[24], full[16];
    for (int i = 0; i < 24; i++)
        x[i] = sin(i * 1.7);
    set_input(c, "x", x, 24);
    run(c, &c->rm->predict, 8);
    for (int i = 0; i < 16; i++)
        full[i] = get_elem(c, &c->rm->predict.roots[0], i);
    for (int i = 0; i < 16; i++)
        set_elem(c, &c->rm->predict.roots[0], i, -1);
    run(c, &c->rm->predict, 5);
    for (int i = 0; i < 10; i++)
        assert_float_equal(get_elem(c, &c->rm->predict.roots[0], i), full[i], 0);
    compiled_free(c);
}

/* Updates read the parameters as they were before the step:
 *   loss = W1 * W2, W1 = 1, W2 = 2, lr 0.5:
 *     W1 = 1 - 0.5 * 2 = 0, W2 = 2 - 0.5 * 1 = 1.5 (not 2 - 0.5 * 0)
 *   loss = sum(P * P^T), dP = 2 P^T, lr 0.5, P = [[1, 2], [3, 4]]:
 *     P = P - P^T = [[0, -1], [1, 0]] (read while P is being overwritten,
 *     P^T would give [[0, -1], [4, 0]]) */
static void test_updates_read_parameters_from_before_the_step(void **state) {
    (void)state;
    Compiled *c = compile_model("two.nn", "param W1 = 1\nparam W2 = 2\nloss = W1 * W2\n"
                                          "train {\n  optimizer = sgd(lr = 0.5)\n}\n", 1, 4);
    run(c, &c->rm->train, 1);
    assert_float_equal(get_elem(c, param(c, "W1"), 0), 0, 0);
    assert_float_equal(get_elem(c, param(c, "W2"), 0), 1.5, 0);
    compiled_free(c);

    c = compile_model("ppt.nn", "param P[2, 2] = [[1, 2], [3, 4]]\nloss = sum(P * transpose(P))\n"
                                "train {\n  optimizer = sgd(lr = 0.5)\n}\n", 1, 4);
    run(c, &c->rm->train, 1);
    const double want[4] = {0, -1, 1, 0};
    for (int i = 0; i < 4; i++)
        assert_float_equal(get_elem(c, param(c, "P"), i), want[i], 0);
    compiled_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigmoid_network_outputs_hand_computed_value),
        cmocka_unit_test(test_product_model_gradients_match_hand_derivation),
        cmocka_unit_test(test_gradient_descent_steps_match_hand_computation),
        cmocka_unit_test(test_partial_batch_computes_the_same_rows),
        cmocka_unit_test(test_updates_read_parameters_from_before_the_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
