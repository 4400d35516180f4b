/* test_grad_ops.c: every op of ir/ops.def, its gradient through the real
 * compiled kernels in float64, against central finite differences of the
 * compiled loss.
 *
 * Each op has a case case_<name> (bound from the op table, so a new op
 * without a case does not build) that builds loss = sum(f(params) * R) with
 * R a parameter of random weights (a plain sum would hide errors in softmax
 * and friends), or says why the op is not differentiated (leaves, sinks).
 * Parameter values stay away from kinks (relu and step at 0, max at ties).
 * The finite differences use the grad program's own loss, so that dropout
 * keeps one mask (the runtime changes the key only between train steps).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>

#include "support.h"

typedef struct Case {
    Graph *g;
    const char *skip; /* why this op has no gradient case */
    uint64_t rng;
    Node *x, *labels; /* the batch inputs, when a case uses them */
} Case;

static const Loc L0 = {0};

static double uniform(Case *c, double lo, double hi) {
    c->rng = c->rng * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (double)(c->rng >> 11) / 9007199254740992.0;
}

/* A parameter of the given shape with values uniform in [lo, hi], kept
 * at least `gap` away from 0. */
static Node *par(Case *c, const char *name, int rank, int64_t d0, int64_t d1, double lo, double hi, double gap) {
    Shape s = {.rank = rank, .d = {d0, d1}};
    int64_t n = shape_numel(&s, 1);
    double *v = arena_alloc(c->g->arena, sizeof(double) * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        do
            v[i] = uniform(c, lo, hi);
        while (fabs(v[i]) < gap);
    }
    return ir_param(c->g, name, &s, (Init){.kind = INIT_VALUES, .values = v, .nvalues = n}, L0);
}

/* loss = sum(y * R) with R random of y's shape (batch dims broadcast R). */
static void finish(Case *c, Node *y) {
    Shape rs = y->shape;
    if (rs.rank && rs.d[0] == DIM_BATCH)
        rs.d[0] = 1;
    Node *r = par(c, "R", rs.rank, rs.d[0], rs.d[1], -1, 1, 0.1);
    c->g->loss = ir_reduce(c->g, OP_SUM, ir_binary(c->g, OP_MUL, y, r, L0), 0, false, L0);
}

static Node *batch_x(Case *c) {
    Shape s = {.rank = 2, .d = {DIM_BATCH, 3}};
    return c->x = ir_input(c->g, "x", DT_FLOAT, &s, L0);
}

static Node *batch_labels(Case *c) {
    Shape s = {.rank = 1, .d = {DIM_BATCH}};
    return c->labels = ir_input(c->g, "labels", DT_INT, &s, L0);
}

#define UNARY_CASE(name, OP, lo, hi, gap)                                                    \
    static void case_##name(Case *c) {                                                        \
        finish(c, ir_unary(c->g, OP, par(c, "a", 2, 2, 3, lo, hi, gap), L0));                  \
    }
#define BINARY_CASE(name, OP, blo, bhi)                                                      \
    static void case_##name(Case *c) {                                                        \
        Node *a = par(c, "a", 2, 2, 3, -2, 2, 0.1), *b = par(c, "b", 1, 3, 0, blo, bhi, 0.3);  \
        finish(c, ir_binary(c->g, OP, a, b, L0));                                              \
    }

static void case_input(Case *c) { c->skip = "a leaf: nothing to differentiate"; }
static void case_param(Case *c) { c->skip = "a leaf: nothing to differentiate"; }
static void case_const(Case *c) { c->skip = "a leaf: nothing to differentiate"; }
static void case_state(Case *c) { c->skip = "a leaf: nothing to differentiate"; }
static void case_hyper(Case *c) { c->skip = "a leaf: nothing to differentiate"; }
static void case_numel(Case *c) { c->skip = "a leaf (its use by mean over the batch is case_mean)"; }
static void case_assign(Case *c) { c->skip = "a sink: the optimizer's store"; }

UNARY_CASE(neg, OP_NEG, -2, 2, 0)
UNARY_CASE(exp, OP_EXP, -2, 2, 0)
UNARY_CASE(log, OP_LOG, 0.2, 3, 0)
UNARY_CASE(sqrt, OP_SQRT, 0.2, 3, 0)
UNARY_CASE(tanh, OP_TANH, -2, 2, 0)
UNARY_CASE(sigmoid, OP_SIGMOID, -3, 3, 0)
UNARY_CASE(relu, OP_RELU, -2, 2, 0.05)
BINARY_CASE(add, OP_ADD, -2, 2)
BINARY_CASE(sub, OP_SUB, -2, 2)
BINARY_CASE(mul, OP_MUL, -2, 2)
BINARY_CASE(div, OP_DIV, 0.5, 2)
BINARY_CASE(maximum, OP_MAX, -2, 2)
UNARY_CASE(abs, OP_ABS, -2, 2, 0.05)
UNARY_CASE(gelu, OP_GELU, -3, 3, 0)
UNARY_CASE(dgelu, OP_DGELU, -3, 3, 0)
UNARY_CASE(softplus, OP_SOFTPLUS, -4, 4, 0)
UNARY_CASE(sin, OP_SIN, -4, 4, 0)
UNARY_CASE(cos, OP_COS, -4, 4, 0)

/* floor has derivative 0: y = floor(a) * a has derivative floor(a) (the
 * values are fixed and none is near an integer). */
static void case_floor(Case *c) {
    Node *a = par(c, "a", 2, 2, 3, -2.9, 2.9, 0.05);
    finish(c, ir_binary(c->g, OP_MUL, ir_unary(c->g, OP_FLOOR, a, L0), a, L0));
}

/* a ^ b with a > 0, the exponent [3] broadcast over a's rows: both the
 * base and the exponent get a gradient. */
static void case_power(Case *c) {
    Node *a = par(c, "a", 2, 2, 3, 0.3, 2.5, 0), *b = par(c, "b", 1, 3, 0, -2, 2, 0.1);
    finish(c, ir_binary(c->g, OP_POW, a, b, L0));
}

/* sign has derivative 0: y = sign(a) * a^2 has derivative 2 |a|. */
static void case_sign(Case *c) {
    Node *a = par(c, "a", 2, 2, 3, -2, 2, 0.05);
    finish(c, ir_binary(c->g, OP_MUL, ir_unary(c->g, OP_SIGN, a, L0), ir_powc(c->g, a, 2, L0), L0));
}

static void case_leaky_relu(Case *c) {
    finish(c, ir_leaky_relu(c->g, par(c, "a", 2, 2, 3, -2, 2, 0.05), 0.1, L0));
}

/* eq is a comparison: y = eq(a, a) * a has derivative 1. */
static void case_eq(Case *c) {
    Node *a = par(c, "a", 2, 2, 3, -2, 2, 0.05);
    finish(c, ir_binary(c->g, OP_MUL, ir_binary(c->g, OP_EQ, a, a, L0), a, L0));
}

/* bce_logits with soft targets, both sources differentiated. */
static void case_bce_logits(Case *c) {
    Node *z = par(c, "a", 2, 2, 3, -3, 3, 0);
    Node *y = ir_unary(c->g, OP_SIGMOID, par(c, "b", 2, 2, 3, -2, 2, 0), L0);
    finish(c, ir_binary(c->g, OP_BCE_LOGITS, z, y, L0));
}

/* One fixed mask (the key does not change between runs here). */
static void case_dropout(Case *c) {
    Node *a = par(c, "a", 2, 4, 6, -2, 2, 0);
    finish(c, ir_dropout(c->g, ir_unary(c->g, OP_TANH, a, L0), 0.5, -1, L0));
}

/* Distinct random values: no ties. Over axis 1 kept, and over everything. */
static void case_amax(Case *c) {
    Node *a = par(c, "a", 2, 2, 3, -2, 2, 0);
    Node *m1 = ir_reduce(c->g, OP_AMAX, a, 2u, true, L0);   /* [2, 1] */
    Node *m0 = ir_reduce(c->g, OP_AMAX, a, 1u, false, L0);  /* [3] */
    Node *all = ir_reduce(c->g, OP_AMAX, ir_unary(c->g, OP_EXP, a, L0), 0, false, L0);
    finish(c, ir_binary(c->g, OP_ADD, ir_binary(c->g, OP_MUL, m1, m0, L0), all, L0));
}

/* Along a fixed axis of batch rows, and along axis 0 of matrices. */
static void case_concat(Case *c) {
    Node *x = batch_x(c);
    Node *u = ir_matmul(c->g, x, par(c, "a", 2, 3, 2, -2, 2, 0), false, false, L0); /* [B, 2] */
    Node *v = ir_matmul(c->g, x, par(c, "b", 2, 3, 3, -2, 2, 0), false, false, L0); /* [B, 3] */
    Node *uv = ir_concat(c->g, u, v, -1, L0);                                      /* [B, 5] */
    Node *w = ir_concat(c->g, par(c, "c", 2, 1, 5, -2, 2, 0), par(c, "d", 2, 2, 5, -2, 2, 0), 0, L0);
    Node *wr = ir_reduce(c->g, OP_SUM, w, 1u, false, L0);                          /* [5] */
    finish(c, ir_binary(c->g, OP_MUL, ir_unary(c->g, OP_TANH, uv, L0), wr, L0));
}

static void case_slice(Case *c) {
    Node *a = par(c, "a", 2, 2, 5, -2, 2, 0);
    Node *mid = ir_slice(c->g, a, 1, 1, 3, L0), *end = ir_slice(c->g, a, 1, 3, 2, L0);
    Node *first = ir_slice(c->g, a, 0, 0, 1, L0);                                  /* [1, 5] */
    Node *y = ir_binary(c->g, OP_MUL, mid, ir_reduce(c->g, OP_SUM, end, 2u, true, L0), L0);
    finish(c, ir_binary(c->g, OP_ADD, y, ir_reduce(c->g, OP_SUM, first, 2u, false, L0), L0));
}

/* Rows 2 and 0 of a [4, 3] table, twice: both uses add into the gradient. */
static void case_gather(Case *c) {
    Node *t = par(c, "a", 2, 4, 3, -2, 2, 0), *ids = batch_labels(c);
    Node *e = ir_gather(c->g, t, ids, L0);                                         /* [B, 3] */
    finish(c, ir_binary(c->g, OP_MUL, ir_unary(c->g, OP_TANH, e, L0), ir_gather(c->g, t, ids, L0), L0));
}

static void case_scatter_add(Case *c) {
    Node *src = ir_binary(c->g, OP_MUL, batch_x(c), par(c, "a", 1, 3, 0, -2, 2, 0), L0); /* [B, 3] */
    finish(c, ir_unary(c->g, OP_TANH, ir_scatter_add(c->g, src, batch_labels(c), 4, L0), L0));
}

/* step has derivative 0: y = step(a) * a has derivative step(a). */
static void case_step(Case *c) {
    Node *a = par(c, "a", 2, 2, 3, -2, 2, 0.05);
    finish(c, ir_binary(c->g, OP_MUL, ir_unary(c->g, OP_STEP, a, L0), a, L0));
}

static void case_pow(Case *c) {
    Node *a = par(c, "a", 2, 2, 3, 0.3, 2, 0);
    Node *y = ir_binary(c->g, OP_ADD, ir_powc(c->g, a, 3, L0), ir_powc(c->g, a, -1.5, L0), L0);
    finish(c, ir_binary(c->g, OP_ADD, y, ir_powc(c->g, a, 2, L0), L0));
}

/* cast has integer input: the gradient flows only to a. */
static void case_cast(Case *c) {
    Node *a = par(c, "a", 1, 1, 0, -2, 2, 0.1);
    finish(c, ir_binary(c->g, OP_MUL, ir_unary(c->g, OP_CAST, batch_labels(c), L0), a, L0));
}

/* bce with soft targets, so both sources get a gradient. */
static void case_bce(Case *c) {
    Node *p = ir_unary(c->g, OP_SIGMOID, par(c, "a", 2, 2, 3, -2, 2, 0), L0);
    Node *y = ir_unary(c->g, OP_SIGMOID, par(c, "b", 2, 2, 3, -2, 2, 0), L0);
    finish(c, ir_binary(c->g, OP_BCE, p, y, L0));
}

static void case_transpose(Case *c) {
    finish(c, ir_transpose(c->g, par(c, "a", 2, 2, 3, -2, 2, 0), NULL, L0));
}

static void case_expand(Case *c) {
    Shape to = {.rank = 2, .d = {4, 3}};
    finish(c, ir_expand(c->g, par(c, "a", 1, 3, 0, -2, 2, 0), &to, L0));
}

static void case_reshape(Case *c) {
    Shape to = {.rank = 2, .d = {3, 2}};
    finish(c, ir_reshape(c->g, par(c, "a", 2, 2, 3, -2, 2, 0), &to, L0));
}

static void case_sum(Case *c) {
    Node *a = par(c, "a", 2, 2, 3, -2, 2, 0);
    Node *s0 = ir_reduce(c->g, OP_SUM, a, 1u, false, L0);                /* [3] */
    Node *s1 = ir_reduce(c->g, OP_SUM, a, 2u, true, L0);                 /* [2, 1] */
    finish(c, ir_binary(c->g, OP_MUL, s0, s1, L0));                      /* [2, 3] */
}

/* mean over the batch divides by the run-time batch size (numel). */
static void case_mean(Case *c) {
    Node *a = par(c, "a", 2, 2, 3, -2, 2, 0);
    Node *xa = ir_binary(c->g, OP_MUL, batch_x(c), ir_reduce(c->g, OP_MEAN, a, 1u, true, L0), L0);
    Node *m = ir_reduce(c->g, OP_MEAN, ir_unary(c->g, OP_TANH, xa, L0), 1u, false, L0); /* [3] */
    finish(c, m);
}

static void case_matmul(Case *c) {
    Node *a = par(c, "a", 2, 2, 3, -2, 2, 0), *b = par(c, "b", 2, 3, 4, -2, 2, 0);
    Node *at = par(c, "at", 2, 3, 2, -2, 2, 0), *bt = par(c, "bt", 2, 4, 3, -2, 2, 0);
    Node *y = ir_matmul(c->g, a, b, false, false, L0);                              /* [2, 4] */
    y = ir_binary(c->g, OP_ADD, y, ir_matmul(c->g, at, b, true, false, L0), L0);
    y = ir_binary(c->g, OP_ADD, y, ir_matmul(c->g, a, bt, false, true, L0), L0);
    y = ir_binary(c->g, OP_ADD, y, ir_matmul(c->g, at, bt, true, true, L0), L0);
    /* A stack of rows: [2, 2, 3] @ [3, 4] -> [2, 2, 4], summed over axis 0. */
    Shape s3 = {.rank = 3, .d = {2, 2, 3}};
    Node *a3 = ir_reshape(c->g, par(c, "a3", 2, 4, 3, -2, 2, 0), &s3, L0);
    Node *y3 = ir_matmul(c->g, ir_unary(c->g, OP_TANH, a3, L0), b, false, false, L0);
    y = ir_binary(c->g, OP_ADD, y, ir_reduce(c->g, OP_SUM, y3, 1u, false, L0), L0);
    Node *xc = ir_matmul(c->g, batch_x(c), par(c, "c", 2, 3, 2, -2, 2, 0), false, false, L0); /* [B, 2] */
    finish(c, ir_matmul(c->g, xc, y, false, false, L0));                          /* [B, 4] */
}

static void case_softmax(Case *c) {
    Node *a = par(c, "a", 2, 2, 3, -2, 2, 0);
    Node *y = ir_binary(c->g, OP_ADD, ir_softmax(c->g, OP_SOFTMAX, a, -1, L0),
                        ir_softmax(c->g, OP_SOFTMAX, a, 0, L0), L0);
    finish(c, y);
}

static void case_log_softmax(Case *c) {
    Node *a = par(c, "a", 2, 2, 3, -2, 2, 0);
    Node *y = ir_binary(c->g, OP_ADD, ir_softmax(c->g, OP_LOG_SOFTMAX, a, 1, L0),
                        ir_softmax(c->g, OP_LOG_SOFTMAX, a, 0, L0), L0);
    finish(c, y);
}

static void case_xent(Case *c) {
    Node *w = par(c, "a", 2, 3, 3, -2, 2, 0);
    Node *logits = ir_matmul(c->g, batch_x(c), w, false, false, L0);
    finish(c, ir_xent(c->g, logits, batch_labels(c), L0));
}

static void case_onehot(Case *c) {
    Node *a = par(c, "a", 1, 3, 0, -2, 2, 0);
    finish(c, ir_binary(c->g, OP_MUL, ir_onehot(c->g, batch_labels(c), 3, L0), ir_unary(c->g, OP_EXP, a, L0), L0));
}

typedef void (*CaseFn)(Case *c);
static const CaseFn cases[OP_COUNT] = {
#define X(id, name, arity, flags, shape, doc) [OP_##id] = case_##name,
#include "ir/ops.def"
#undef X
};

/* Compile case op in float64 and compare every parameter's gradient with
 * central differences; returns the largest relative error seen. */
static double check_op(Op op) {
    Arena *a = arena_new();
    Diags d;
    diags_init(&d, a);
    Case c = {.g = graph_new(a, &d, op_info[op].name), .rng = 12345 + (uint64_t)op};
    cases[op](&c);
    if (c.skip) {
        assert_true(op_has(op, OPF_LEAF) || op_has(op, OPF_SINK));
        arena_free(a);
        return 0;
    }
    assert_int_equal(d.nerrors, 0);
    bool uses_op = false;
    for (int i = 0; i < c.g->nodes.len; i++)
        uses_op |= c.g->nodes.items[i]->op == op;
    assert_true(uses_op);

    Graph *g = c.g;
    ad_backward(g);
    ir_optimize(g);
    Plan *plan = ir_plan(g, 2, 8);
    CgOptions o = {.elem_size = 8, .opt_level = 2};
    CgModule *cg = cg_compile(g, plan, &o, &d);
    if (!cg) {
        diags_print(&d, stderr, false);
        fail_msg("%s: does not compile", op_info[op].name);
    }
    Compiled cc = {.a = a, .g = g, .plan = plan, .cg = cg};
    cc.rm = cg_rt_model_jit(a, g, plan, cg);
    RtError err;
    assert_int_equal(rt_session_init(&cc.s, cc.rm, 1, &err), RT_OK);
    rt_init_params(&cc.s);
    const int64_t batch = 2;
    if (c.x)
        for (int i = 0; i < 6; i++)
            set_elem(&cc, find_tensor(cc.rm->inputs, cc.rm->ninputs, "x"), i, sin(1.3 * i + 0.2));
    if (c.labels) {
        set_elem(&cc, find_tensor(cc.rm->inputs, cc.rm->ninputs, "labels"), 0, 2);
        set_elem(&cc, find_tensor(cc.rm->inputs, cc.rm->ninputs, "labels"), 1, 0);
    }

    run(&cc, &cc.rm->grad, batch);
    /* The runs below reuse the temporaries that hold the gradients. */
    double *grads[16] = {0};
    assert_true(cc.rm->nparams <= 16);
    for (int p = 0; p < cc.rm->nparams; p++) {
        int64_t n = rt_numel(&cc.rm->params[p], batch);
        grads[p] = malloc(sizeof(double) * (size_t)n);
        for (int64_t i = 0; i < n; i++)
            grads[p][i] = get_elem(&cc, &cc.rm->grad.roots[1 + p], i);
    }
    double worst = 0;
    const double eps = 1e-6;
    for (int p = 0; p < cc.rm->nparams; p++) {
        const RtTensor *t = &cc.rm->params[p];
        for (int64_t i = 0; i < rt_numel(t, batch); i++) {
            double analytic = grads[p][i], v = get_elem(&cc, t, i);
            set_elem(&cc, t, i, v + eps);
            run(&cc, &cc.rm->grad, batch);
            double lp = get_elem(&cc, &cc.rm->grad.roots[0], 0);
            set_elem(&cc, t, i, v - eps);
            run(&cc, &cc.rm->grad, batch);
            double lm = get_elem(&cc, &cc.rm->grad.roots[0], 0);
            set_elem(&cc, t, i, v);
            double fd = (lp - lm) / (2 * eps);
            double err_abs = fabs(analytic - fd);
            double rel = err_abs / fmax(1e-3, fmax(fabs(analytic), fabs(fd)));
            if (rel > worst)
                worst = rel;
            if (rel > 1e-6)
                fail_msg("%s: d loss / d %s[%lld]: compiled %.12g, finite differences %.12g",
                         op_info[op].name, t->name, (long long)i, analytic, fd);
        }
    }
    for (int p = 0; p < cc.rm->nparams; p++)
        free(grads[p]);
    rt_session_free(&cc.s);
    cg_free(cg);
    arena_free(a);
    return worst;
}

static void test_every_op_gradient_matches_finite_differences(void **state) {
    (void)state;
    int checked = 0;
    for (int op = 0; op < OP_COUNT; op++) {
        double worst = check_op((Op)op);
        if (!op_has((Op)op, OPF_LEAF) && !op_has((Op)op, OPF_SINK)) {
            printf("  %-12s max relative error %.2e\n", op_info[op].name, worst);
            checked++;
        }
    }
    assert_int_equal(checked, OP_COUNT - 7); /* all but 6 leaves and the sink */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_op_gradient_matches_finite_differences),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
