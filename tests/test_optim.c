/* test_optim.c: the optimizers, written in the model language, against
 * numbers computed by hand: every standard rule of the prelude for three
 * steps on a two-element parameter with a fixed gradient sequence, a
 * user-defined rule, schedules, clipping, and the rule's diagnostics.
 *
 * The harness: loss = sum(w * c) with one row per batch, so the gradient of
 * w at each step is that step's row of c: g1 = [0.5, -1], g2 = [0.1, 0.2],
 * g3 = [-0.3, 0.4], from w = [1, -2]. Float64 throughout; the tolerance
 * covers the rounding of the compiled arithmetic, not a different rule.
 * The reference formulas follow PyTorch 1.13's torch.optim source. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "support.h"

static const double grads[3][2] = {{0.5, -1}, {0.1, 0.2}, {-0.3, 0.4}};

static const char *model_with(const char *rules, const char *optimizer) {
    static char buf[4096];
    snprintf(buf, sizeof buf,
             "input c[B, 2]\n"
             "param w[2] = [1, -2]\n"
             "loss = sum(w * c)\n"
             "%s"
             "train {\n"
             "  optimizer = %s\n"
             "}\n",
             rules, optimizer);
    return buf;
}

/* The hyper named name of the compiled model, or NULL. */
static const RtTensor *hyper(const Compiled *c, const char *name) {
    for (int i = 0; i < c->rm->nhypers; i++)
        if (!strcmp(c->rm->hypers[i].name, name))
            return &c->rm->hypers[i];
    return NULL;
}

/* One optimizer step with gradient g at step number t (from 1). */
static void step(Compiled *c, const double g[2], int t) {
    set_input(c, "c", g, 2);
    const RtTensor *ht = hyper(c, "t");
    if (ht)
        set_elem(c, ht, 0, t);
    run(c, &c->rm->train, 1);
}

/* Three steps of `optimizer` (with `rules` defined in the model) give w
 * equal to want[step][i]. */
static void check_rule(const char *rules, const char *optimizer, const double want[3][2]) {
    Compiled *c = compile_model("optim.nn", model_with(rules, optimizer), 1, 8);
    const RtTensor *w = param(c, "w");
    for (int t = 1; t <= 3; t++) {
        step(c, grads[t - 1], t);
        for (int i = 0; i < 2; i++) {
            double got = get_elem(c, w, i);
            if (fabs(got - want[t - 1][i]) > 1e-13 * fmax(1, fabs(want[t - 1][i])))
                fail_msg("%s, step %d: w[%d] is %.17g, by hand %.17g", optimizer, t, i, got,
                         want[t - 1][i]);
        }
    }
    compiled_free(c);
}

/* sgd(lr = 0.1, weight_decay = 0.01): g' = g + 0.01 p, p = p - 0.1 g'
 *   1: g' = [0.5 + 0.01, -1 - 0.02] = [0.51, -1.02]; p = [0.949, -1.898]
 *   2: g' = [0.1 + 0.00949, 0.2 - 0.01898] = [0.10949, 0.18102];
 *      p = [0.949 - 0.010949, -1.898 - 0.018102] = [0.938051, -1.916102]
 *   3: g' = [-0.3 + 0.00938051, 0.4 - 0.01916102] = [-0.29061949, 0.38083898];
 *      p = [0.967112949, -1.954185898] */
static void test_sgd_with_weight_decay(void **state) {
    (void)state;
    const double want[3][2] = {{0.949, -1.898}, {0.938051, -1.916102},
                               {0.967112949, -1.954185898}};
    check_rule("", "sgd(lr = 0.1, weight_decay = 0.01)", want);
}

/* momentum(lr = 0.1, beta = 0.9, dampening = 0.5), PyTorch's SGD: the
 * first step stores g itself, undampened.
 *   1: buf = g1 = [0.5, -1];                           p = [0.95, -1.9]
 *   2: buf = 0.9 [0.5, -1] + 0.5 [0.1, 0.2] = [0.5, -0.8];   p = [0.9, -1.82]
 *   3: buf = 0.9 [0.5, -0.8] + 0.5 [-0.3, 0.4] = [0.3, -0.52]; p = [0.87, -1.768] */
static void test_momentum_first_step_is_undampened(void **state) {
    (void)state;
    const double want[3][2] = {{0.95, -1.9}, {0.9, -1.82}, {0.87, -1.768}};
    check_rule("", "momentum(lr = 0.1, beta = 0.9, dampening = 0.5)", want);
}

/* nesterov(lr = 0.1, beta = 0.9, weight_decay = 0.1): g' = g + 0.1 p,
 * buf = 0.9 buf + g' (g' itself at step 1), p = p - 0.1 (g' + 0.9 buf)
 *   1: g' = [0.6, -1.2]; buf = [0.6, -1.2]; g' + 0.9 buf = [1.14, -2.28];
 *      p = [0.886, -1.772]
 *   2: g' = [0.1886, 0.0228]; buf = [0.7286, -1.0572];
 *      g' + 0.9 buf = [0.84434, -0.92868]; p = [0.801566, -1.679132]
 *   3: g' = [-0.2198434, 0.2320868]; buf = [0.43589660, -0.71937320];
 *      g' + 0.9 buf = [0.17246354, -0.41534908]; p = [0.784319646, -1.637595292] */
static void test_nesterov(void **state) {
    (void)state;
    const double want[3][2] = {{0.886, -1.772}, {0.801566, -1.679132},
                               {0.784319646, -1.637595292}};
    check_rule("", "nesterov(lr = 0.1, beta = 0.9, weight_decay = 0.1)", want);
}

/* adagrad(lr = 0.1, lr_decay = 0.01, initial_accumulator = 0.1):
 * sum = sum + g^2, p = p - 0.1 / (1 + 0.01 (t - 1)) * g / (sqrt(sum) + 1e-10)
 *   1: sum = [0.35, 1.1]; p = [1 - 0.05 / 0.591608, -2 + 0.1 / 1.048809]
 *                          = [0.915484575, -1.904653741]
 *   2: sum = [0.36, 1.14]; lr' = 0.1 / 1.01;
 *      p = [0.915484575 - 0.0099010 * 0.1 / 0.6, -1.904653741 - 0.0099010 * 0.2 / 1.067708]
 *   3: sum = [0.45, 1.3]; lr' = 0.1 / 1.02 */
static void test_adagrad(void **state) {
    (void)state;
    const double want[3][2] = {{0.91548457454143406, -1.9046537410845317},
                               {0.89898292437916782, -1.9231999947774816},
                               {0.94282739451968656, -1.9575944269041525}};
    check_rule("", "adagrad(lr = 0.1, lr_decay = 0.01, initial_accumulator = 0.1)", want);
}

/* rmsprop(lr = 0.01, alpha = 0.9, momentum = 0.5, centered = true):
 * sq = 0.9 sq + 0.1 g^2, ga = 0.9 ga + 0.1 g, avg = sqrt(sq - ga^2) + 1e-8,
 * buf = 0.5 buf + g / avg, p = p - 0.01 buf
 *   1: sq = [0.025, 0.1], ga = [0.05, -0.1], sq - ga^2 = [0.0225, 0.09],
 *      avg = [0.15, 0.3] (+1e-8), buf = [3.3333333, -3.3333333], p = [0.966666667, -1.966666667]
 * and the plain rmsprop(lr = 0.01) (alpha 0.99, no centring, no momentum):
 *   1: sq = [0.0025, 0.01], p = p - 0.01 g / (sqrt(sq) + 1e-8) = [0.90000002, -1.90000001] */
static void test_rmsprop_centered_with_momentum_and_plain(void **state) {
    (void)state;
    const double centered[3][2] = {{0.96666666888888875, -1.9666666677777778},
                                   {0.94301143824358746, -1.9567002535439277},
                                   {0.94857118250550387, -1.9643616686234251}};
    check_rule("", "rmsprop(lr = 0.01, alpha = 0.9, momentum = 0.5, centered = true)", centered);
    const double plain[3][2] = {{0.90000001999999601, -1.900000009999999},
                                {0.88029343832020457, -1.9197065936215374},
                                {0.93137437404654277, -1.9565342567273971}};
    check_rule("", "rmsprop(lr = 0.01)", plain);
}

/* adam(lr = 0.1, weight_decay = 0.1): g' = g + 0.1 p, m = 0.9 m + 0.1 g',
 * v = 0.999 v + 0.001 g'^2, p = p - 0.1 / (1 - 0.9^t) * m / (sqrt(v) /
 * sqrt(1 - 0.999^t) + 1e-8)
 *   1: g' = [0.6, -1.2], m = [0.06, -0.12], v = [0.00036, 0.00144];
 *      0.1 / 0.1 = 1; sqrt(v) / sqrt(0.001) = [0.6, 1.2];
 *      p = [1 - 0.06 / 0.60000001, -2 + 0.12 / 1.20000001] = [0.9000000017, -1.9000000008] */
static void test_adam_bias_corrected_eps_outside_the_root(void **state) {
    (void)state;
    const double want[3][2] = {{0.9000000016666666, -1.9000000008333333},
                               {0.8136483454297575, -1.8336169077420748},
                               {0.77158182105099549, -1.7944802191238758}};
    check_rule("", "adam(lr = 0.1, weight_decay = 0.1)", want);
}

/* adamw(lr = 0.1, weight_decay = 0.1): p = p (1 - 0.01) first, then Adam on
 * the raw gradient
 *   1: p = [0.99, -1.98]; m = [0.05, -0.1], v = [0.00025, 0.001];
 *      p = [0.99 - 0.05 / 0.50000001, -1.98 + 0.1 / 1.00000001] = [0.890000002, -1.880000001] */
static void test_adamw_decouples_weight_decay(void **state) {
    (void)state;
    const double want[3][2] = {{0.89000000199999996, -1.880000001},
                               {0.8007959063646517, -1.8100973939804945},
                               {0.77171665267986145, -1.778572460258351}};
    check_rule("", "adamw(lr = 0.1, weight_decay = 0.1)", want);
}

/* The textbook momentum of many course notes, as a rule of the model:
 * v = beta v - lr g; p = p + v
 *   1: v = -0.1 [0.5, -1] = [-0.05, 0.1];                p = [0.95, -1.9]
 *   2: v = 0.9 [-0.05, 0.1] - 0.1 [0.1, 0.2] = [-0.055, 0.07];   p = [0.895, -1.83]
 *   3: v = 0.9 [-0.055, 0.07] - 0.1 [-0.3, 0.4] = [-0.0195, 0.023]; p = [0.8755, -1.807] */
static void test_user_defined_rule(void **state) {
    (void)state;
    const char *rule = "optimizer textbook(lr = 0.01, beta = 0.9) {\n"
                       "  state v = 0\n"
                       "  v = beta * v - lr * g\n"
                       "  p = p + v\n"
                       "}\n";
    const double want[3][2] = {{0.95, -1.9}, {0.895, -1.83}, {0.8755, -1.807}};
    check_rule(rule, "textbook(lr = 0.1)", want);
    /* A model's rule takes the place of the prelude's of the same name. */
    const char *sgd = "optimizer sgd(lr = 0.01) {\n"
                      "  p = p - 2 * lr * g\n"
                      "}\n";
    const double twice[3][2] = {{0.9, -1.8}, {0.88, -1.84}, {0.94, -1.92}};
    check_rule(sgd, "sgd(lr = 0.1)", twice);
}

/* Each state is a slot per parameter named opt.<state>.<param>, with its
 * initial value, and the train program's second root is the learning rate. */
static void test_states_are_named_and_initialised(void **state) {
    (void)state;
    Compiled *c = compile_model("optim.nn", model_with("", "adagrad(initial_accumulator = 0.25)"),
                                1, 8);
    assert_int_equal(c->g->states.len, 1);
    assert_string_equal(c->g->states.items[0].name, "opt.sum.w");
    assert_true(c->g->states.items[0].init.a == 0.25);
    assert_int_equal(c->rm->nstates, 1);
    assert_float_equal(get_elem(c, &c->rm->states[0], 1), 0.25, 0);
    assert_int_equal(c->rm->train_lr_root, 1);
    step(c, grads[0], 1);
    assert_float_equal(get_elem(c, &c->rm->train.roots[1], 0), 0.01, 1e-17);
    assert_float_equal(get_elem(c, &c->rm->states[0], 1), 1.25, 1e-15);
    compiled_free(c);
}

/* lr = 0.1 * min(1, t / 4) (warm-up) and 0.1 * 0.5 ^ floor(epoch / 2) (step
 * decay), and a cosine, read back from the lr root at chosen steps. */
static void test_schedules(void **state) {
    (void)state;
    struct {
        const char *opt;
        int t, epoch;
        double lr;
    } cases[] = {
        {"sgd(lr = 0.1 * min(1, t / 4))", 1, 0, 0.025},
        {"sgd(lr = 0.1 * min(1, t / 4))", 3, 0, 0.075},
        {"sgd(lr = 0.1 * min(1, t / 4))", 9, 2, 0.1},
        {"sgd(lr = 0.1 * 0.5 ^ floor(epoch / 2))", 5, 1, 0.1},
        {"sgd(lr = 0.1 * 0.5 ^ floor(epoch / 2))", 5, 2, 0.05},
        {"sgd(lr = 0.1 * 0.5 ^ floor(epoch / 2))", 5, 5, 0.025},
        {"sgd(lr = 0.05 * (1 + cos(pi * epoch / epochs)))", 1, 0, 0.1},
        {"sgd(lr = 0.05 * (1 + cos(pi * epoch / epochs)))", 1, 5, 0.05},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Compiled *c = compile_model("optim.nn", model_with("", cases[i].opt), 1, 8);
        const RtTensor *epoch = hyper(c, "epoch");
        if (epoch)
            set_elem(c, epoch, 0, cases[i].epoch);
        const RtTensor *epochs = hyper(c, "epochs");
        if (epochs)
            set_elem(c, epochs, 0, 10);
        const double g[2] = {1, 1};
        step(c, g, cases[i].t);
        double lr = get_elem(c, &c->rm->train.roots[c->rm->train_lr_root], 0);
        if (fabs(lr - cases[i].lr) > 1e-15)
            fail_msg("%s at t = %d, epoch %d: lr %.17g, expected %.17g", cases[i].opt,
                     cases[i].t, cases[i].epoch, lr, cases[i].lr);
        /* and sgd applied exactly that lr */
        assert_float_equal(get_elem(c, param(c, "w"), 0), 1 - cases[i].lr, 1e-15);
        compiled_free(c);
    }
}

/* clip_norm = 1: the gradients [3, 4] (norm 5) are scaled by 1 / (5 + 1e-6);
 * [0.3, 0.4] (norm 0.5) is left alone. */
static void test_clip_norm_scales_the_global_gradient(void **state) {
    (void)state;
    const char *src = "input c[B, 2]\n"
                      "param w[2] = [1, -2]\n"
                      "loss = sum(w * c)\n"
                      "train {\n"
                      "  optimizer = sgd(lr = 1)\n"
                      "  clip_norm = 1\n"
                      "}\n";
    Compiled *c = compile_model("clip.nn", src, 1, 8);
    const double big[2] = {3, 4}, small[2] = {0.3, 0.4};
    step(c, big, 1);
    double k = 1 / (5 + 1e-6);
    assert_float_equal(get_elem(c, param(c, "w"), 0), 1 - 3 * k, 1e-15);
    assert_float_equal(get_elem(c, param(c, "w"), 1), -2 - 4 * k, 1e-15);
    step(c, small, 2);
    assert_float_equal(get_elem(c, param(c, "w"), 0), 1 - 3 * k - 0.3, 1e-15);
    compiled_free(c);
}

/* ---- diagnostics ------------------------------------------------------------------ */

static Arena *arena;

/* The diagnostics of building the training graph of text (which parses). */
static char *training_errors(const char *text, const char *optimizer, double lr) {
    Diags d;
    diags_init(&d, arena);
    Model *m = fe_compile(arena, &d, "m.nn", text);
    if (!m)
        fail_msg("the model does not compile");
    assert_false(fe_build_training(m, &d, optimizer, lr));
    char *s = arena_strdup(arena, "");
    for (int i = 0; i < d.list.len; i++)
        s = arena_printf(arena, "%s%s", s, diag_format(arena, &d.list.items[i]));
    return s;
}

static void test_diag_rules(void **state) {
    (void)state;
    arena = arena_new();
    char *e = training_errors(model_with("optimizer mom(lr = 0.1) {\n"
                                         "  v = 0.9 * v + g\n"
                                         "  p = p - lr * v\n"
                                         "}\n",
                                         "mom"),
                              NULL, NAN);
    assert_string_equal(e, "m.nn:5:7: error: 'v' is read before it has a value\n"
                           "    5 |   v = 0.9 * v + g\n"
                           "      |       ^~~~~~~~~~~\n"
                           "m.nn:5:3: note: to keep 'v' from one step to the next, declare it: "
                           "state v = 0\n"
                           "    5 |   v = 0.9 * v + g\n"
                           "      |   ^\n");
    e = training_errors(model_with("optimizer lazy(lr = 0.1) {\n"
                                   "  d = lr * g\n"
                                   "}\n",
                                   "lazy"),
                        NULL, NAN);
    assert_string_equal(e, "m.nn:4:11: error: optimizer 'lazy' never assigns p, so it would not "
                           "change the parameters\n"
                           "    4 | optimizer lazy(lr = 0.1) {\n"
                           "      |           ^~~~\n");
    e = training_errors(model_with("optimizer bad(lr = 0.1) {\n"
                                   "  p = p - lr * gg\n"
                                   "  lr = 2\n"
                                   "}\n",
                                   "bad"),
                        NULL, NAN);
    assert_string_equal(e, "m.nn:5:16: error: undefined name 'gg'; did you mean 'g'?\n"
                           "    5 |   p = p - lr * gg\n"
                           "      |                ^~\n"
                           "m.nn:6:3: error: cannot assign to hyperparameter 'lr' of optimizer "
                           "'bad'\n"
                           "    6 |   lr = 2\n"
                           "      |   ^~\n");
    e = training_errors(model_with("", "adamm(lr = 1e-3)"), NULL, NAN);
    assert_string_equal(e, "m.nn:5:15: error: unknown optimizer 'adamm'; did you mean 'adam'?\n"
                           "    5 |   optimizer = adamm(lr = 1e-3)\n"
                           "      |               ^~~~~\n");
    e = training_errors(model_with("", "adam(lr = 1e-3, betta1 = 0.9)"), NULL, NAN);
    assert_string_equal(e, "m.nn:5:31: error: adam has no argument named 'betta1'; did you mean "
                           "'beta1'?\n"
                           "    5 |   optimizer = adam(lr = 1e-3, betta1 = 0.9)\n"
                           "      |                               ^~~~~~\n");
    e = training_errors(model_with("", "sgd(0.1, lr = \"x\")"), NULL, NAN);
    assert_string_equal(e, "m.nn:5:24: error: argument 'lr' of sgd is given twice\n"
                           "    5 |   optimizer = sgd(0.1, lr = \"x\")\n"
                           "      |                        ^~\n");
    e = training_errors(model_with("", "sgd(lr = \"x\")"), NULL, NAN);
    assert_string_equal(e, "m.nn:5:24: error: expected a tensor expression, found a string\n"
                           "    5 |   optimizer = sgd(lr = \"x\")\n"
                           "      |                        ^~~\n");
    e = training_errors(model_with("optimizer sched(lr = 0.1, t = 1) {\n"
                                   "  p = p - lr * t * g\n"
                                   "}\n",
                                   "sched"),
                        NULL, NAN);
    assert_string_equal(e, "m.nn:4:27: error: 't' is given to every rule (a step counter) and "
                           "cannot be a hyperparameter\n"
                           "    4 | optimizer sched(lr = 0.1, t = 1) {\n"
                           "      |                           ^\n");
    /* from the command line */
    e = training_errors(model_with("", "sgd"), "adam(lr = )", NAN);
    assert_string_equal(e, "--optimizer:1:11: error: expected an expression, found ')'\n"
                           "    1 | adam(lr = )\n"
                           "      |           ^\n");
    arena_free(arena);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd_with_weight_decay),
        cmocka_unit_test(test_momentum_first_step_is_undampened),
        cmocka_unit_test(test_nesterov),
        cmocka_unit_test(test_adagrad),
        cmocka_unit_test(test_rmsprop_centered_with_momentum_and_plain),
        cmocka_unit_test(test_adam_bias_corrected_eps_outside_the_root),
        cmocka_unit_test(test_adamw_decouples_weight_decay),
        cmocka_unit_test(test_user_defined_rule),
        cmocka_unit_test(test_states_are_named_and_initialised),
        cmocka_unit_test(test_schedules),
        cmocka_unit_test(test_clip_norm_scales_the_global_gradient),
        cmocka_unit_test(test_diag_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
