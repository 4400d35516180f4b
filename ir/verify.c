/* verify.c: the IR verifier, run between passes in debug builds.
 *
 * Checks what every pass must keep: dense ids, sources older than their
 * users and alive, arities, dtypes, the shape rules of the op table, leaves
 * that match their tables (Graph.params, states, hypers), and updates that
 * store a float value of the destination's shape into a parameter or a
 * state. Reports the first violation; never modifies the graph.
 */
#include "ir.h"

#include <stdio.h>

static char why_buf[256];

static bool fail(const char **why, const Node *n, const char *what) {
    snprintf(why_buf, sizeof why_buf, "node %%%d (%s): %s", n->id, op_info[n->op].name, what);
    *why = why_buf;
    return false;
}

/* The shape n's op gives its sources, where the rule is local. */
static bool shape_ok(const Node *n) {
    const Node *a = n->nsrc > 0 ? n->src[0] : NULL, *b = n->nsrc > 1 ? n->src[1] : NULL;
    Shape s;
    if (op_has(n->op, OPF_ELEMWISE)) {
        if (!b)
            return shape_eq(&a->shape, &n->shape);
        return shape_broadcast(&a->shape, &b->shape, &s) && shape_eq(&s, &n->shape);
    }
    switch (n->op) {
    case OP_EXPAND:
        return shape_broadcast(&a->shape, &n->shape, &s) && shape_eq(&s, &n->shape);
    case OP_RESHAPE:
        return shape_numel(&a->shape, 3) == shape_numel(&n->shape, 3);
    case OP_TRANSPOSE:
        for (int i = 0; i < n->shape.rank; i++)
            if (n->shape.d[i] != a->shape.d[n->attr.perm[i]])
                return false;
        return n->shape.rank == a->shape.rank;
    case OP_MATMUL:
        return ir_matmul_shape_ok(n);
    case OP_CONCAT:
        for (int i = 0; i < n->shape.rank; i++)
            if (n->shape.d[i] != (i == n->attr.axis ? a->shape.d[i] + b->shape.d[i] : a->shape.d[i]))
                return false;
        return a->shape.rank == n->shape.rank && b->shape.rank == n->shape.rank;
    case OP_SLICE:
        return n->attr.slice.start + n->shape.d[n->attr.slice.axis] <=
               a->shape.d[n->attr.slice.axis];
    case OP_GATHER:
        return b->dtype == DT_INT && n->shape.rank == b->shape.rank + a->shape.rank - 1;
    case OP_SCATTER_ADD:
        return b->dtype == DT_INT && n->shape.rank == a->shape.rank - b->shape.rank + 1;
    case OP_SOFTMAX:
    case OP_LOG_SOFTMAX:
        return shape_eq(&a->shape, &n->shape) && n->attr.axis < n->shape.rank;
    case OP_ASSIGN:
        return shape_eq(&a->shape, &n->shape) && shape_eq(&b->shape, &n->shape);
    case OP_SUM:
    case OP_MEAN:
    case OP_AMAX:
    case OP_XENT:
    case OP_ONEHOT:
    case OP_INPUT:
    case OP_PARAM:
    case OP_CONST:
    case OP_HYPER:
    case OP_STATE:
    case OP_NUMEL:
    case OP_SIN: case OP_COS: case OP_FLOOR: case OP_POW:
    case OP_NEG: case OP_EXP: case OP_LOG: case OP_SQRT: case OP_TANH: case OP_SIGMOID:
    case OP_RELU: case OP_STEP: case OP_POWC: case OP_CAST: case OP_ADD: case OP_SUB:
    case OP_MUL: case OP_DIV: case OP_MAX: case OP_BCE:
    case OP_ABS: case OP_SIGN: case OP_LEAKY_RELU: case OP_GELU: case OP_DGELU:
    case OP_SOFTPLUS: case OP_BCE_LOGITS: case OP_EQ: case OP_DROPOUT:
    case OP_COUNT:
        return true;
    }
    return true;
}

/* A leaf agrees with its table entry: index in range, the entry points back
 * at it; a state is its parameter's shape; a hyper is a scalar of its
 * kind's dtype. */
static bool leaf_ok(const Graph *g, const Node *n, const char **what) {
    int i = n->attr.leaf.index;
    if (n->op == OP_INPUT) {
        *what = "not its entry in Graph.inputs";
        return i >= 0 && i < g->inputs.len && g->inputs.items[i].node == n;
    }
    if (n->op == OP_PARAM) {
        *what = "not its entry in Graph.params, or not a float tensor";
        return i >= 0 && i < g->params.len && g->params.items[i].node == n && n->dtype == DT_FLOAT;
    }
    if (n->op == OP_STATE) {
        *what = "not its entry in Graph.states, or not a float tensor of its parameter's shape";
        if (i < 0 || i >= g->states.len || g->states.items[i].node != n || n->dtype != DT_FLOAT)
            return false;
        int p = g->states.items[i].param;
        return p >= 0 && p < g->params.len &&
               shape_eq(&g->params.items[p].node->shape, &n->shape);
    }
    if (n->op == OP_HYPER) {
        *what = "not its entry in Graph.hypers, or not a scalar of its kind's dtype";
        if (i < 0 || i >= g->hypers.len || g->hypers.items[i].node != n || n->shape.rank != 0)
            return false;
        return n->dtype == (g->hypers.items[i].kind == HYPER_RNG ? DT_INT : DT_FLOAT);
    }
    return true; /* CONST, NUMEL: no table */
}

bool ir_verify(Graph *g, const char **why) {
    for (int i = 0; i < g->nodes.len; i++) {
        const Node *n = g->nodes.items[i];
        if (n->id != i)
            return fail(why, n, "id does not match its index");
        if (n->dead)
            continue;
        if (n->nsrc != op_info[n->op].arity)
            return fail(why, n, "wrong number of sources");
        for (int s = 0; s < n->nsrc; s++) {
            if (!n->src[s] || n->src[s]->id >= n->id)
                return fail(why, n, "a source is missing or not older than the node");
            if (n->src[s]->dead)
                return fail(why, n, "a source is dead");
            if (op_has(n->src[s]->op, OPF_SINK))
                return fail(why, n, "a source is an assign, which has no value");
        }
        const char *what;
        if (op_has(n->op, OPF_LEAF) && !leaf_ok(g, n, &what))
            return fail(why, n, what);
        if (n->op == OP_ASSIGN) {
            Op d = n->src[0]->op;
            if (d != OP_PARAM && d != OP_STATE)
                return fail(why, n, "the destination is not a parameter or a state");
            if (n->src[1]->dtype != DT_FLOAT)
                return fail(why, n, "the stored value is not a float tensor");
        }
        if (n->shape.rank < 0 || n->shape.rank > IR_MAX_RANK)
            return fail(why, n, "rank out of range");
        if (op_has(n->op, OPF_ELEMWISE) && n->op != OP_CAST)
            for (int s = 0; s < n->nsrc; s++)
                if (n->src[s]->dtype != DT_FLOAT && !(n->op == OP_DROPOUT && s == 1))
                    return fail(why, n, "elementwise op on an integer tensor");
        if (n->op == OP_DROPOUT &&
            (n->src[1]->op != OP_HYPER || n->src[1]->dtype != DT_INT || n->src[1]->shape.rank))
            return fail(why, n, "dropout's key is not the int32 scalar rng hyper");
        if (!shape_ok(n))
            return fail(why, n, "shape does not follow from the sources");
    }
    for (int i = 0; i < g->updates.len; i++)
        if (g->updates.items[i]->op != OP_ASSIGN || g->updates.items[i]->dead)
            return fail(why, g->updates.items[i], "in Graph.updates but not a live assign");
    if (g->lr && (g->lr->dead || g->lr->shape.rank != 0 || g->lr->dtype != DT_FLOAT))
        return fail(why, g->lr, "Graph.lr is not a live float scalar");
    return true;
}
