/* autodiff.c: reverse-mode differentiation as a graph pass.
 *
 * Requires: g->loss, a scalar. Adds: ordinary IR nodes that compute the
 * gradient of the loss with respect to every parameter (Param.grad), each
 * stamped with the rule that made it and the forward node it differentiates.
 * Broadcasting is undone by summing over the broadcast axes. Forward nodes
 * are not changed.
 *
 * Every op of ops.def has a rule grad_<name>(g, n, dy, i): the contribution
 * of n's adjoint dy to the adjoint of n->src[i], in n's shape for elementwise
 * ops (unbroadcast by the caller) or src[i]'s shape otherwise; NULL when no
 * gradient flows to that source (piecewise constant ops, integer sources).
 *
 * Derivative coverage: a NULL entry of grad_rules means the op has no rule
 * (today every op has one; the test hook Graph.test_no_grad pretends some
 * do not). Before differentiating, ad_backward finds every use of such an
 * op between a parameter and the loss and reports them all at once, rather
 * than failing at the first.
 */
#include "ir.h"

#include <string.h>

typedef Node *(*GradRule)(Graph *g, Node *n, Node *dy, int i);

#define X(id, name, arity, flags, shape, doc) \
    static Node *grad_##name(Graph *g, Node *n, Node *dy, int i);
#include "ops.def"
#undef X

/* The rule of each op; NULL: the op has no gradient rule. */
static const GradRule grad_rules[OP_COUNT] = {
#define X(id, name, arity, flags, shape, doc) [OP_##id] = grad_##name,
#include "ops.def"
#undef X
};

/* Shorthands for rules: every node they make has the forward node's location. */
#define L (n->loc)
#define MATH(s) (g->cur_math = (s))
static Node *sub(Graph *g, Node *n, Node *a, Node *b) { return ir_binary(g, OP_SUB, a, b, L); }
static Node *mul(Graph *g, Node *n, Node *a, Node *b) { return ir_binary(g, OP_MUL, a, b, L); }
static Node *dvd(Graph *g, Node *n, Node *a, Node *b) { return ir_binary(g, OP_DIV, a, b, L); }
static Node *cst(Graph *g, Node *n, double v) { return ir_const(g, v, L); }
static Node *neg(Graph *g, Node *n, Node *a) { return ir_unary(g, OP_NEG, a, L); }

/* x's shape with the axes in mask kept as size 1. */
static Shape keep_dims(const Shape *x, unsigned mask) {
    Shape s = *x;
    for (int i = 0; i < s.rank; i++)
        if (mask >> i & 1)
            s.d[i] = 1;
    return s;
}

/* Sum c (of some broadcast shape) down to shape `to`, undoing NumPy
 * broadcasting: the extra leading axes and the axes where `to` has 1. */
static Node *unbroadcast(Graph *g, Node *n, Node *c, const Shape *to) {
    if (shape_eq(&c->shape, to))
        return c;
    int extra = c->shape.rank - to->rank;
    unsigned axes = 0;
    for (int i = 0; i < c->shape.rank; i++)
        if (i < extra || (to->d[i - extra] == 1 && c->shape.d[i] != 1))
            axes |= 1u << i;
    Node *s = axes ? ir_reduce(g, OP_SUM, c, axes, false, L) : c;
    return shape_eq(&s->shape, to) ? s : ir_reshape(g, s, to, L);
}

/* ---- leaves and sinks: never differentiated through ---------------------- */
static Node *grad_input(Graph *g, Node *n, Node *dy, int i) { (void)g, (void)n, (void)dy, (void)i; gc_unreachable(); }
static Node *grad_param(Graph *g, Node *n, Node *dy, int i) { (void)g, (void)n, (void)dy, (void)i; gc_unreachable(); }
static Node *grad_const(Graph *g, Node *n, Node *dy, int i) { (void)g, (void)n, (void)dy, (void)i; gc_unreachable(); }
static Node *grad_state(Graph *g, Node *n, Node *dy, int i) { (void)g, (void)n, (void)dy, (void)i; gc_unreachable(); }
static Node *grad_hyper(Graph *g, Node *n, Node *dy, int i) { (void)g, (void)n, (void)dy, (void)i; gc_unreachable(); }
static Node *grad_numel(Graph *g, Node *n, Node *dy, int i) { (void)g, (void)n, (void)dy, (void)i; gc_unreachable(); }
static Node *grad_assign(Graph *g, Node *n, Node *dy, int i) { (void)g, (void)n, (void)dy, (void)i; gc_unreachable(); }

/* ---- piecewise constant or integer: no gradient flows --------------------- */
/* d step(x)/dx = 0 (almost everywhere) */
static Node *grad_step(Graph *g, Node *n, Node *dy, int i) { (void)g, (void)n, (void)dy, (void)i; return NULL; }
/* the source is an integer tensor */
static Node *grad_cast(Graph *g, Node *n, Node *dy, int i) { (void)g, (void)n, (void)dy, (void)i; return NULL; }
static Node *grad_onehot(Graph *g, Node *n, Node *dy, int i) { (void)g, (void)n, (void)dy, (void)i; return NULL; }
/* d sign(x)/dx = 0 (almost everywhere) */
static Node *grad_sign(Graph *g, Node *n, Node *dy, int i) { (void)g, (void)n, (void)dy, (void)i; return NULL; }
/* d floor(x)/dx = 0 (almost everywhere) */
static Node *grad_floor(Graph *g, Node *n, Node *dy, int i) { (void)g, (void)n, (void)dy, (void)i; return NULL; }
/* a comparison */
static Node *grad_eq(Graph *g, Node *n, Node *dy, int i) { (void)g, (void)n, (void)dy, (void)i; return NULL; }

/* ---- elementwise ------------------------------------------------------------ */

/* d(-x) = -g */
static Node *grad_neg(Graph *g, Node *n, Node *dy, int i) {
    (void)i;
    MATH("-g");
    return neg(g, n, dy);
}

/* d e^x = g * e^x, reusing the forward value y = e^x */
static Node *grad_exp(Graph *g, Node *n, Node *dy, int i) {
    (void)i;
    MATH("g * exp(x)");
    return mul(g, n, dy, n);
}

/* d log x = g / x */
static Node *grad_log(Graph *g, Node *n, Node *dy, int i) {
    (void)i;
    MATH("g / x");
    return dvd(g, n, dy, n->src[0]);
}

/* d sqrt(x) = g / (2 sqrt(x)) */
static Node *grad_sqrt(Graph *g, Node *n, Node *dy, int i) {
    (void)i;
    MATH("g / (2 * sqrt(x))");
    return dvd(g, n, dy, mul(g, n, cst(g, n, 2), n));
}

/* d tanh(x) = g * (1 - t^2), t = tanh(x) */
static Node *grad_tanh(Graph *g, Node *n, Node *dy, int i) {
    (void)i;
    MATH("g * (1 - t * t)");
    return mul(g, n, dy, sub(g, n, cst(g, n, 1), mul(g, n, n, n)));
}

/* d sigmoid(x) = g * s * (1 - s), s = sigmoid(x) */
static Node *grad_sigmoid(Graph *g, Node *n, Node *dy, int i) {
    (void)i;
    MATH("g * s * (1 - s)");
    return mul(g, n, mul(g, n, dy, n), sub(g, n, cst(g, n, 1), n));
}

/* d relu(x) = g * step(x) = g * step(y), y = relu(x): y > 0 exactly when
 * x > 0. From the output, like PyTorch's threshold_backward, so that x is
 * not kept for the backward pass and fuses with the relu (a bias add
 * before it is one loop with it). At 0 the gradient is 0, as in PyTorch. */
static Node *grad_relu(Graph *g, Node *n, Node *dy, int i) {
    (void)i;
    MATH("g * (y > 0)");
    return mul(g, n, dy, ir_unary(g, OP_STEP, n, L));
}

/* d |x| = g * sign(x); at 0 the gradient is 0, as in PyTorch */
static Node *grad_abs(Graph *g, Node *n, Node *dy, int i) {
    (void)i;
    MATH("g * sign(x)");
    return mul(g, n, dy, ir_unary(g, OP_SIGN, n->src[0], L));
}

/* d leaky_relu(x) = g * (alpha + (1 - alpha) * (x > 0)): g where x > 0,
 * alpha * g elsewhere (at 0 too, as in PyTorch) */
static Node *grad_leaky_relu(Graph *g, Node *n, Node *dy, int i) {
    (void)i;
    double alpha = n->attr.alpha;
    MATH("g * (x > 0 ? 1 : alpha)");
    Node *slope = ir_binary(g, OP_ADD, cst(g, n, alpha),
                            mul(g, n, cst(g, n, 1 - alpha), ir_unary(g, OP_STEP, n->src[0], L)), L);
    return mul(g, n, dy, slope);
}

/* d gelu(x) = g * (Phi(x) + x phi(x)) */
static Node *grad_gelu(Graph *g, Node *n, Node *dy, int i) {
    (void)i;
    MATH("g * (Phi(x) + x * phi(x))");
    return mul(g, n, dy, ir_unary(g, OP_DGELU, n->src[0], L));
}

/* d (Phi(x) + x phi(x)) = g * phi(x) * (2 - x^2), phi(x) = e^(-x^2/2) / sqrt(2 pi) */
static Node *grad_dgelu(Graph *g, Node *n, Node *dy, int i) {
    (void)i;
    MATH("g * phi(x) * (2 - x^2)");
    Node *x2 = mul(g, n, n->src[0], n->src[0]);
    Node *phi = mul(g, n, cst(g, n, 0.39894228040143267794), /* 1 / sqrt(2 pi) */
                    ir_unary(g, OP_EXP, mul(g, n, cst(g, n, -0.5), x2), L));
    return mul(g, n, dy, mul(g, n, phi, sub(g, n, cst(g, n, 2), x2)));
}

/* d softplus(x) = g * sigmoid(x) */
static Node *grad_softplus(Graph *g, Node *n, Node *dy, int i) {
    (void)i;
    MATH("g * sigmoid(x)");
    return mul(g, n, dy, ir_unary(g, OP_SIGMOID, n->src[0], L));
}

/* d sin(x) = g * cos(x) */
static Node *grad_sin(Graph *g, Node *n, Node *dy, int i) {
    (void)i;
    MATH("g * cos(x)");
    return mul(g, n, dy, ir_unary(g, OP_COS, n->src[0], L));
}

/* d cos(x) = -g * sin(x) */
static Node *grad_cos(Graph *g, Node *n, Node *dy, int i) {
    (void)i;
    MATH("-g * sin(x)");
    return neg(g, n, mul(g, n, dy, ir_unary(g, OP_SIN, n->src[0], L)));
}

/* d x^p = g * p * x^(p-1) */
static Node *grad_pow(Graph *g, Node *n, Node *dy, int i) {
    (void)i;
    double p = n->attr.pow.p;
    MATH("g * p * x^(p - 1)");
    if (p == 1)
        return dy;
    Node *x = n->src[0];
    Node *xp = p == 2 ? x : ir_powc(g, x, p - 1, L);
    return mul(g, n, dy, mul(g, n, cst(g, n, p), xp));
}

/* y = a^b:
 *   d/da = g * b * a^(b - 1)   (not g * b * y / a, which is NaN at a = 0)
 *   d/db = g * y * log(a), taken as 0 where a = 0 (PyTorch's convention,
 *          right for b > 0 where y = 0): log(a + (a == 0)) is log(1) there */
static Node *grad_power(Graph *g, Node *n, Node *dy, int i) {
    Node *a = n->src[0], *b = n->src[1];
    if (i == 0) {
        MATH("g * b * a^(b - 1)");
        Node *bm1 = sub(g, n, b, cst(g, n, 1));
        return mul(g, n, dy, mul(g, n, b, ir_binary(g, OP_POW, a, bm1, L)));
    }
    MATH("g * a^b * log(a), 0 where a = 0");
    Node *a0 = ir_binary(g, OP_ADD, a, ir_binary(g, OP_EQ, a, cst(g, n, 0), L), L);
    return mul(g, n, dy, mul(g, n, n, ir_unary(g, OP_LOG, a0, L)));
}

/* d(a + b) = g, g */
static Node *grad_add(Graph *g, Node *n, Node *dy, int i) {
    (void)n, (void)i;
    MATH("g");
    return dy;
}

/* d(a - b) = g, -g */
static Node *grad_sub(Graph *g, Node *n, Node *dy, int i) {
    MATH(i == 0 ? "g" : "-g");
    return i == 0 ? dy : neg(g, n, dy);
}

/* d(a * b) = g * b, g * a */
static Node *grad_mul(Graph *g, Node *n, Node *dy, int i) {
    MATH(i == 0 ? "g * b" : "g * a");
    return mul(g, n, dy, n->src[1 - i]);
}

/* d(a / b) = g / b, -g * (a / b) / b */
static Node *grad_div(Graph *g, Node *n, Node *dy, int i) {
    if (i == 0) {
        MATH("g / b");
        return dvd(g, n, dy, n->src[1]);
    }
    MATH("-g * (a / b) / b");
    return neg(g, n, dvd(g, n, mul(g, n, dy, n), n->src[1]));
}

/* d max(a, b) = g * (a >= b), g * (b > a): ties go to a */
static Node *grad_maximum(Graph *g, Node *n, Node *dy, int i) {
    MATH(i == 1 ? "g * (b > a)" : "g * (a >= b)");
    Node *b_wins = ir_unary(g, OP_STEP, sub(g, n, n->src[1], n->src[0]), L);
    if (i == 1)
        return mul(g, n, dy, b_wins);
    return mul(g, n, dy, sub(g, n, cst(g, n, 1), b_wins));
}

/* bce(p, y) = -(y log p + (1 - y) log(1 - p)), logs clamped at -100:
 *   d/dp = g * (p - y) / max(p (1 - p), 1e-12)     (PyTorch's backward)
 *   d/dy = g * (log(1 - p) - log p), both clamped */
static Node *grad_bce(Graph *g, Node *n, Node *dy, int i) {
    Node *p = n->src[0], *y = n->src[1];
    MATH(i == 0 ? "g * (p - y) / max(p * (1 - p), 1e-12)"
                : "g * (max(log(1 - p), -100) - max(log(p), -100))");
    Node *one = cst(g, n, 1);
    if (i == 0) {
        Node *den = ir_binary(g, OP_MAX, mul(g, n, p, sub(g, n, one, p)), cst(g, n, 1e-12), L);
        return mul(g, n, dy, dvd(g, n, sub(g, n, p, y), den));
    }
    Node *lo = cst(g, n, -100);
    Node *l1p = ir_binary(g, OP_MAX, ir_unary(g, OP_LOG, sub(g, n, one, p), L), lo, L);
    Node *lp = ir_binary(g, OP_MAX, ir_unary(g, OP_LOG, p, L), lo, L);
    return mul(g, n, dy, sub(g, n, l1p, lp));
}

/* bce_logits(z, y) = max(z, 0) - z y + log(1 + e^-|z|):
 *   d/dz = g * (sigmoid(z) - y),  d/dy = -g * z */
static Node *grad_bce_logits(Graph *g, Node *n, Node *dy, int i) {
    Node *z = n->src[0];
    if (i == 0) {
        MATH("g * (sigmoid(z) - y)");
        return mul(g, n, dy, sub(g, n, ir_unary(g, OP_SIGMOID, z, L), n->src[1]));
    }
    MATH("-g * z");
    return neg(g, n, mul(g, n, dy, z));
}

/* d dropout(x) = dropout(g) with the same mask: g * keep / (1 - p) */
static Node *grad_dropout(Graph *g, Node *n, Node *dy, int i) {
    if (i == 1)
        return NULL; /* the random key */
    MATH("g * mask / (1 - p), the forward pass's mask");
    return ir_dropout(g, dy, n->attr.drop.p, n->attr.drop.salt, L);
}

/* ---- movement ---------------------------------------------------------------- */

/* d transpose(x, perm) = transpose(g, perm^-1) */
static Node *grad_transpose(Graph *g, Node *n, Node *dy, int i) {
    (void)i;
    MATH("transpose(g, inverse(perm))");
    int inv[IR_MAX_RANK];
    for (int k = 0; k < n->shape.rank; k++)
        inv[n->attr.perm[k]] = k;
    return ir_transpose(g, dy, inv, L);
}

/* d expand(x) = sum of g over the broadcast axes */
static Node *grad_expand(Graph *g, Node *n, Node *dy, int i) {
    (void)i;
    MATH("sum(g, broadcast axes)");
    return unbroadcast(g, n, dy, &n->src[0]->shape);
}

/* d reshape(x) = reshape(g, shape(x)) */
static Node *grad_reshape(Graph *g, Node *n, Node *dy, int i) {
    (void)i;
    MATH("reshape(g, shape(x))");
    return ir_reshape(g, dy, &n->src[0]->shape, L);
}

/* d concat(a, b) = the two windows of g along the axis */
static Node *grad_concat(Graph *g, Node *n, Node *dy, int i) {
    int ax = n->attr.axis;
    int64_t na = n->src[0]->shape.d[ax];
    MATH(i == 0 ? "g[..., :len(a), ...]" : "g[..., len(a):, ...]");
    return ir_slice(g, dy, ax, i == 0 ? 0 : na, n->src[i]->shape.d[ax], L);
}

/* d slice(x) = g put back in its window, zeros elsewhere */
static Node *grad_slice(Graph *g, Node *n, Node *dy, int i) {
    (void)i;
    MATH("zeros with g in the window");
    const Shape *xs = &n->src[0]->shape;
    int ax = n->attr.slice.axis;
    int64_t start = n->attr.slice.start, len = n->shape.d[ax];
    Node *r = dy;
    if (start > 0) {
        Shape zs = *xs;
        zs.d[ax] = start;
        r = ir_concat(g, ir_expand(g, cst(g, n, 0), &zs, L), r, ax, L);
    }
    if (start + len < xs->d[ax]) {
        Shape zs = *xs;
        zs.d[ax] = xs->d[ax] - start - len;
        r = ir_concat(g, r, ir_expand(g, cst(g, n, 0), &zs, L), ax, L);
    }
    return r;
}

/* d table[ids] = the rows of g added into the rows they were read from */
static Node *grad_gather(Graph *g, Node *n, Node *dy, int i) {
    if (i == 1)
        return NULL; /* integer ids */
    MATH("scatter_add(g, ids): dtable[ids[i]] += g[i]");
    return ir_scatter_add(g, dy, n->src[1], n->src[0]->shape.d[0], L);
}

/* d scatter_add(x, ids) = g[ids] */
static Node *grad_scatter_add(Graph *g, Node *n, Node *dy, int i) {
    if (i == 1)
        return NULL;
    MATH("g[ids]");
    return ir_gather(g, dy, n->src[1], L);
}

/* ---- reductions ------------------------------------------------------------ */

/* g with the reduced axes of n put back as 1, then broadcast to x's shape */
static Node *expand_back(Graph *g, Node *n, Node *dy) {
    const Shape *xs = &n->src[0]->shape;
    Shape kept = keep_dims(xs, n->attr.red.axes);
    Node *k = shape_eq(&dy->shape, &kept) ? dy : ir_reshape(g, dy, &kept, L);
    return ir_expand(g, k, xs, L);
}

/* d sum(x, axes) = broadcast g back over axes */
static Node *grad_sum(Graph *g, Node *n, Node *dy, int i) {
    (void)i;
    MATH("expand(g, shape(x))");
    return expand_back(g, n, dy);
}

/* d mean(x, axes) = broadcast g back over axes, divided by their size */
static Node *grad_mean(Graph *g, Node *n, Node *dy, int i) {
    (void)i;
    MATH("expand(g, shape(x)) / count");
    Node *count = ir_numel(g, &n->src[0]->shape, n->attr.red.axes, L);
    return dvd(g, n, expand_back(g, n, dy), count);
}

/* d amax(x, axes) = g where x equals the maximum, shared evenly between
 * ties (torch.amax): expand(g) * (x == m) / count(x == m) */
static Node *grad_amax(Graph *g, Node *n, Node *dy, int i) {
    (void)i;
    MATH("expand(g) * (x == max) / count(x == max)");
    Node *x = n->src[0];
    Node *mask = ir_binary(g, OP_EQ, x, expand_back(g, n, n), L);
    Node *count = ir_reduce(g, OP_SUM, mask, n->attr.red.axes, true, L);
    Node *share = dvd(g, n, mask, ir_expand(g, count, &x->shape, L));
    return mul(g, n, expand_back(g, n, dy), share);
}

/* C = op(A) op(B):
 *   dA = g @ op(B)^T        (A = op(A), not transposed)
 *   dA = op(B) @ g^T        (A transposed)
 *   dB = op(A)^T @ g        (B not transposed)
 *   dB = g^T @ op(A)        (B transposed)
 * Transposes stay flags of the product; none is materialised. */
static Node *grad_matmul(Graph *g, Node *n, Node *dy, int i) {
    Node *a = n->src[0], *b = n->src[1];
    bool ta = n->attr.mm.ta, tb = n->attr.mm.tb;
    if (i == 0) {
        MATH(ta ? "op(b) @ g^T" : "g @ op(b)^T");
        return ta ? ir_matmul(g, b, dy, tb, true, L) : ir_matmul(g, dy, b, false, !tb, L);
    }
    MATH(tb ? "g^T @ op(a)" : "op(a)^T @ g");
    return tb ? ir_matmul(g, dy, a, true, ta, L) : ir_matmul(g, a, dy, !ta, false, L);
}

/* y = softmax(x): dx = y * (g - sum(g * y, axis)) */
static Node *grad_softmax(Graph *g, Node *n, Node *dy, int i) {
    (void)i;
    MATH("y * (g - sum(g * y, axis))");
    unsigned ax = 1u << n->attr.axis;
    Node *s = ir_reduce(g, OP_SUM, mul(g, n, dy, n), ax, true, L);
    return mul(g, n, n, sub(g, n, dy, s));
}

/* y = log_softmax(x): dx = g - exp(y) * sum(g, axis) */
static Node *grad_log_softmax(Graph *g, Node *n, Node *dy, int i) {
    (void)i;
    MATH("g - exp(y) * sum(g, axis)");
    unsigned ax = 1u << n->attr.axis;
    Node *s = ir_reduce(g, OP_SUM, dy, ax, true, L);
    return sub(g, n, dy, mul(g, n, ir_unary(g, OP_EXP, n, L), s));
}

/* l = logsumexp(z) - z[label]: dz = (softmax(z) - onehot(label)) * g */
static Node *grad_xent(Graph *g, Node *n, Node *dy, int i) {
    if (i == 1)
        return NULL; /* integer labels */
    MATH("(softmax(z) - onehot(labels)) * g");
    Node *z = n->src[0];
    int last = z->shape.rank - 1;
    Node *p = ir_softmax(g, OP_SOFTMAX, z, last, L);
    Node *oh = ir_onehot(g, n->src[1], z->shape.d[last], L);
    Shape col = dy->shape;
    col.d[col.rank++] = 1;
    return mul(g, n, sub(g, n, p, oh), ir_reshape(g, dy, &col, L));
}

#undef L

/* ---- the pass ---------------------------------------------------------------- */

/* Is name one of the comma-separated names of list (NULL: none)? */
static bool in_list(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && !strncmp(p, name, n))
            return true;
        p = end ? end + 1 : p + len;
    }
    return false;
}

/* The rule of op, or NULL when it has none (or Graph.test_no_grad says so). */
static GradRule rule_of(const Graph *g, Op op) {
    return in_list(g->test_no_grad, op_info[op].name) ? NULL : grad_rules[op];
}

/* Derivative coverage: every non-leaf node on a path from a parameter to the
 * loss (dep and used) needs a rule. Reports each use without one, once per
 * op and source location; true when there is none. */
static bool check_coverage(Graph *g, const bool *dep, const bool *used, int n0) {
    bool ok = true;
    for (int k = 0; k < n0; k++) {
        Node *x = g->nodes.items[k];
        if (!dep[k] || !used[k] || op_has(x->op, OPF_LEAF) || rule_of(g, x->op))
            continue;
        bool seen = false;
        for (int j = 0; j < k && !seen; j++) {
            Node *y = g->nodes.items[j];
            seen = dep[j] && used[j] && y->op == x->op && y->loc.file == x->loc.file &&
                   y->loc.line == x->loc.line && y->loc.col == x->loc.col;
        }
        if (!seen)
            diag_error(g->diags, x->loc, "'%s' has no gradient rule; gradc cannot train through it",
                       op_info[x->op].name);
        ok = false;
    }
    return ok;
}

/* Adds c to the adjoint of x. */
static void accumulate(Graph *g, Node **adj, Node *x, Node *c, Loc loc) {
    if (!adj[x->id]) {
        adj[x->id] = c;
        return;
    }
    g->cur_math = "sum of the adjoints of all uses";
    adj[x->id] = ir_binary(g, OP_ADD, adj[x->id], c, loc);
}

bool ad_backward(Graph *g) {
    gc_assert(g->loss && g->loss->shape.rank == 0);
    int n0 = g->nodes.len;
    /* Which nodes depend on a parameter, and which the loss depends on. */
    bool *dep = arena_alloc(g->arena, (size_t)n0);
    bool *used = arena_alloc(g->arena, (size_t)n0);
    for (int k = 0; k < n0; k++) {
        Node *x = g->nodes.items[k];
        dep[k] = x->op == OP_PARAM;
        for (int s = 0; s < x->nsrc; s++)
            dep[k] |= dep[x->src[s]->id];
    }
    used[g->loss->id] = true;
    for (int k = n0 - 1; k >= 0; k--) {
        Node *x = g->nodes.items[k];
        if (used[k])
            for (int s = 0; s < x->nsrc; s++)
                used[x->src[s]->id] = true;
    }
    if (!check_coverage(g, dep, used, n0))
        return false;
    g->grad_start = n0;
    g->has_grad = true;

    Node **adj = arena_alloc(g->arena, sizeof(Node *) * (size_t)n0);
    g->cur_rule = "seed";
    g->cur_math = "dloss/dloss = 1";
    g->cur_origin = g->loss;
    adj[g->loss->id] = ir_const(g, 1, g->loss->loc);

    for (int k = n0 - 1; k >= 0; k--) {
        Node *x = g->nodes.items[k];
        if (!adj[k] || !dep[k] || op_has(x->op, OPF_LEAF))
            continue;
        if (x->name && !adj[k]->name)
            adj[k]->name = arena_printf(g->arena, "d%s", x->name);
        g->cur_rule = arena_printf(g->arena, "%s'", op_info[x->op].name);
        g->cur_origin = x;
        for (int s = 0; s < x->nsrc; s++) {
            Node *src = x->src[s];
            if (!dep[src->id] || !used[src->id])
                continue;
            Node *c = rule_of(g, x->op)(g, x, adj[k], s);
            if (!c)
                continue;
            if (g->test_broken_grad && !strcmp(g->test_broken_grad, op_info[x->op].name)) {
                g->cur_math = "a deliberately wrong rule: 1.25 * the right one (test hook)";
                c = ir_binary(g, OP_MUL, c, ir_const(g, 1.25, x->loc), x->loc);
            }
            if (op_has(x->op, OPF_ELEMWISE))
                c = unbroadcast(g, x, c, &src->shape);
            gc_assert(shape_eq(&c->shape, &src->shape));
            accumulate(g, adj, src, c, x->loc);
        }
    }

    g->cur_rule = "zero";
    g->cur_math = "the loss does not depend on this parameter";
    for (int p = 0; p < g->params.len; p++) {
        Param *pp = &g->params.items[p];
        Node *d = adj[pp->node->id];
        if (!d) {
            g->cur_origin = pp->node;
            d = ir_expand(g, ir_const(g, 0, pp->loc), &pp->node->shape, pp->loc);
        }
        if (!d->name)
            d->name = arena_printf(g->arena, "d%s", pp->name);
        pp->grad = d;
    }
    g->cur_rule = g->cur_math = NULL;
    g->cur_origin = NULL;
    return true;
}
