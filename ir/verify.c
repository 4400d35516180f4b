/* verify.c: the IR verifier, run between passes in debug builds.
 *
 * Checks what every pass must keep: dense ids, sources older than their
 * users and alive, arities, dtypes, and the shape rules of the op table.
 * Reports the first violation; never modifies the graph.
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
        return a->op == OP_PARAM && shape_eq(&a->shape, &b->shape);
    case OP_SUM:
    case OP_MEAN:
    case OP_AMAX:
    case OP_XENT:
    case OP_ONEHOT:
    case OP_INPUT:
    case OP_PARAM:
    case OP_CONST:
    case OP_HYPER:
    case OP_NUMEL:
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
    return true;
}
