/* simplify.c: algebraic simplification.
 *
 * requires: nothing. keeps: shapes, dtypes, ids topological, provenance of
 * the nodes that remain. Rewrites, each only when the result has the node's
 * own shape:
 *   x + 0, 0 + x, x - 0, x * 1, 1 * x, x / 1, x ^ 1  ->  x
 *   -(-x) -> x;  c1 op c2, f(c) (scalar constants) -> c
 *   x ^ c (power, c a scalar constant) -> x ^c (pow with a constant exponent)
 *   transpose(transpose(x)) -> x (or one transpose); identity transpose -> x
 *   reshape/expand to the same shape -> x;  reshape(reshape(x)) -> reshape(x)
 *   expand(reshape(x)) -> expand(x) when the reshape only adds leading 1s
 *   transpose(a) @ b, a @ transpose(b) -> a @ b with the transpose flags
 * Not x * 0 -> 0: that is wrong when x is inf or NaN.
 */
#include "pass.h"

#include <math.h>

static bool is_const(const Node *n, double v) {
    return n->op == OP_CONST && n->attr.cst.value == v;
}

/* The same shape as n: forwarding n to x changes nothing a consumer sees. */
static Node *same(const Node *n, Node *x) {
    return shape_eq(&n->shape, &x->shape) && n->dtype == x->dtype ? x : NULL;
}

/* s is t with size-1 axes put in front (so broadcasting either is the same). */
static bool only_leading_ones(const Shape *s, const Shape *t) {
    int extra = s->rank - t->rank;
    if (extra < 0)
        return false;
    for (int i = 0; i < s->rank; i++)
        if (i < extra ? s->d[i] != 1 : s->d[i] != t->d[i - extra])
            return false;
    return true;
}

static bool fold(Op op, double a, double b, double *r) {
    switch (op) {
    case OP_ADD: *r = a + b; return true;
    case OP_SUB: *r = a - b; return true;
    case OP_MUL: *r = a * b; return true;
    case OP_DIV: *r = a / b; return true;
    case OP_NEG: *r = -a; return true;
    case OP_POWC: *r = pow(a, b); return true;
    case OP_POW: *r = pow(a, b); return true;
    case OP_SIN: *r = sin(a); return true;
    case OP_COS: *r = cos(a); return true;
    case OP_FLOOR: *r = floor(a); return true;
    default: return false;
    }
}

/* Turn n into the scalar constant v in place. */
static void make_const(Node *n, double v) {
    n->op = OP_CONST;
    n->nsrc = 0;
    n->src[0] = n->src[1] = NULL;
    n->attr.cst.value = v;
}

/* The node n can be replaced by, NULL to keep it; may mutate n in place. */
static Node *simplify(Node *n) {
    Node *a = n->nsrc > 0 ? n->src[0] : NULL, *b = n->nsrc > 1 ? n->src[1] : NULL;
    double v;
    switch (n->op) {
    case OP_ADD:
        if (is_const(b, 0))
            return same(n, a);
        if (is_const(a, 0))
            return same(n, b);
        break;
    case OP_SUB:
        if (is_const(b, 0))
            return same(n, a);
        break;
    case OP_MUL:
        if (is_const(b, 1))
            return same(n, a);
        if (is_const(a, 1))
            return same(n, b);
        break;
    case OP_DIV:
        if (is_const(b, 1))
            return same(n, a);
        break;
    case OP_POWC:
        if (n->attr.pow.p == 1)
            return same(n, a);
        if (a->op == OP_CONST && fold(OP_POWC, a->attr.cst.value, n->attr.pow.p, &v))
            make_const(n, v);
        return NULL;
    case OP_NEG:
        if (a->op == OP_NEG)
            return same(n, a->src[0]);
        break;
    case OP_POW:
        /* Lowered with exact shortcuts (squares, square roots) that vectorise. */
        if (b->op == OP_CONST && b->shape.rank == 0 && a->op != OP_CONST &&
            shape_eq(&n->shape, &a->shape)) {
            n->op = OP_POWC;
            n->nsrc = 1;
            n->src[1] = NULL;
            n->attr.pow.p = b->attr.cst.value;
            return simplify(n);
        }
        break;
    case OP_SIN:
    case OP_COS:
    case OP_FLOOR:
        break;
    case OP_TRANSPOSE: {
        bool ident = true;
        for (int i = 0; i < n->shape.rank; i++)
            ident &= n->attr.perm[i] == i;
        if (ident)
            return same(n, a);
        if (a->op == OP_TRANSPOSE) { /* compose in place */
            int p[IR_MAX_RANK];
            ident = true;
            for (int i = 0; i < n->shape.rank; i++) {
                p[i] = a->attr.perm[n->attr.perm[i]];
                ident &= p[i] == i;
            }
            if (ident)
                return same(n, a->src[0]);
            for (int i = 0; i < n->shape.rank; i++)
                n->attr.perm[i] = p[i];
            n->src[0] = a->src[0];
        }
        return NULL;
    }
    case OP_RESHAPE:
    case OP_EXPAND:
        if (shape_eq(&n->shape, &a->shape))
            return same(n, a);
        if (n->op == OP_EXPAND && a->op == OP_RESHAPE && only_leading_ones(&a->shape, &a->src[0]->shape))
            n->src[0] = a->src[0];
        if (n->op == OP_RESHAPE && a->op == OP_RESHAPE)
            n->src[0] = a->src[0];
        return NULL;
    case OP_MATMUL:
        if (a->op == OP_TRANSPOSE && a->shape.rank == 2) {
            n->src[0] = a->src[0];
            n->attr.mm.ta = !n->attr.mm.ta;
        }
        if (b->op == OP_TRANSPOSE && b->shape.rank == 2) {
            n->src[1] = b->src[0];
            n->attr.mm.tb = !n->attr.mm.tb;
        }
        return NULL;
    default:
        return NULL;
    }
    /* Scalar constant folding for the elementwise arithmetic above. */
    if (n->shape.rank == 0 && a->op == OP_CONST && (!b || b->op == OP_CONST) &&
        fold(n->op, a->attr.cst.value, b ? b->attr.cst.value : 0, &v))
        make_const(n, v);
    return NULL;
}

void pass_simplify(Graph *g) {
    Node **fwd = fwd_new(g);
    for (int i = 0; i < g->nodes.len; i++) {
        Node *n = g->nodes.items[i];
        if (n->dead)
            continue;
        for (int s = 0; s < n->nsrc; s++)
            n->src[s] = fwd_get(fwd, n->src[s]);
        if (n->op == OP_ASSIGN || op_has(n->op, OPF_LEAF))
            continue;
        Node *r = simplify(n);
        if (r && r != n) {
            fwd[i] = r;
            if (!r->name)
                r->name = n->name;
        }
    }
    graph_apply_forwards(g, fwd);
}
