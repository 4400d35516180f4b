/* cost.c: floating-point operations per node and per program (gradc
 * summary).
 *
 * requires: a planned program (ir_plan) for the per-program count. Breaks
 * nothing: it only reads the graph.
 *
 * The convention (docs/commands.md, "gradc summary"), per node, at a batch:
 *   matmul                      2 * M * N * K
 *   elementwise                 1 per output element, whatever the function
 *                               (exp, log, tanh and sigmoid count 1 like add)
 *   sum, mean, amax             1 per input element
 *   softmax, log_softmax        5 per element (max, subtract, exp, sum, divide
 *                               or subtract the log)
 *   xent                        4 per logit (max, subtract, exp, sum) + 2 per
 *                               row (log, subtract the label's logit)
 *   scatter_add                 1 per source element (the adds)
 *   leaves, movement, views,    0: nothing is computed (data moves or is
 *   gather, onehot, concat,        indexed)
 *   slice, assign
 * A node computed inside several fused loops (only constants, broadcasts
 * and transposes are, and they count 0) counts once.
 */
#include "ir.h"

/* The elements of n's matrix view: a tensor of rank > 2 is [product of its
 * leading dims, its last dim]; rank 1 is [1, d]. */
static void matrix_dims(const Node *n, int64_t batch, int64_t *rows, int64_t *cols) {
    int64_t numel = shape_numel(&n->shape, batch);
    *cols = n->shape.rank ? (n->shape.d[n->shape.rank - 1] == DIM_BATCH
                                 ? batch
                                 : n->shape.d[n->shape.rank - 1])
                          : 1;
    *rows = *cols ? numel / *cols : 0;
}

int64_t ir_node_flops(const Node *n, int64_t batch) {
    int64_t out = shape_numel(&n->shape, batch);
    switch (n->op) {
    case OP_INPUT:
    case OP_PARAM:
    case OP_CONST:
    case OP_STATE:
    case OP_HYPER:
    case OP_NUMEL:
    case OP_TRANSPOSE:
    case OP_EXPAND:
    case OP_RESHAPE:
    case OP_ONEHOT:
    case OP_CONCAT:
    case OP_SLICE:
    case OP_GATHER:
    case OP_ASSIGN:
        return 0;
    case OP_NEG:
    case OP_EXP:
    case OP_LOG:
    case OP_SQRT:
    case OP_TANH:
    case OP_SIGMOID:
    case OP_RELU:
    case OP_STEP:
    case OP_ABS:
    case OP_SIGN:
    case OP_LEAKY_RELU:
    case OP_GELU:
    case OP_DGELU:
    case OP_SOFTPLUS:
    case OP_SIN:
    case OP_COS:
    case OP_FLOOR:
    case OP_POWC:
    case OP_CAST:
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV:
    case OP_MAX:
    case OP_POW:
    case OP_BCE:
    case OP_BCE_LOGITS:
    case OP_EQ:
    case OP_DROPOUT:
        return out;
    case OP_SUM:
    case OP_MEAN:
    case OP_AMAX:
        return shape_numel(&n->src[0]->shape, batch);
    case OP_SOFTMAX:
    case OP_LOG_SOFTMAX:
        return 5 * out;
    case OP_XENT: {
        int64_t rows, cols;
        matrix_dims(n->src[0], batch, &rows, &cols);
        return 4 * rows * cols + 2 * rows;
    }
    case OP_SCATTER_ADD:
        return shape_numel(&n->src[0]->shape, batch);
    case OP_MATMUL: {
        /* out = op(a) @ op(b): [M, N]; K is op(a)'s columns. */
        int64_t ar, ac, m, nn;
        matrix_dims(n->src[0], batch, &ar, &ac);
        matrix_dims(n, batch, &m, &nn);
        int64_t k = n->attr.mm.ta ? ar : ac;
        return 2 * m * nn * k;
    }
    case OP_COUNT:
        break;
    }
    gc_unreachable();
}

CostPart ir_node_part(const Graph *g, const Node *n) {
    if (g->has_update && n->id >= g->update_start)
        return COST_UPDATE;
    if (g->has_grad && n->id >= g->grad_start)
        return COST_BACKWARD;
    return COST_FORWARD;
}

int64_t ir_kernel_flops(const Kernel *k, int64_t batch) {
    if (!k->fused)
        return ir_node_flops(k->root, batch);
    int64_t f = 0;
    for (int i = 0; i < k->body.len; i++)
        f += ir_node_flops(k->body.items[i], batch);
    return f;
}

void ir_program_flops(const Graph *g, const Program *p, int64_t batch,
                      int64_t flops[COST_PARTS]) {
    for (int i = 0; i < COST_PARTS; i++)
        flops[i] = 0;
    bool *seen = arena_alloc(g->arena, (size_t)g->nodes.len + 1);
    for (int k = 0; k < p->kernels.len; k++) {
        const Kernel *kn = &p->kernels.items[k];
        Node *const single[1] = {kn->root};
        Node *const *body = kn->fused ? kn->body.items : single;
        int nbody = kn->fused ? kn->body.len : 1;
        for (int i = 0; i < nbody; i++) {
            const Node *x = body[i];
            if (seen[x->id])
                continue;
            seen[x->id] = true;
            flops[ir_node_part(g, x)] += ir_node_flops(x, batch);
        }
    }
}
