/* print.c: the IR as stable, diffable text.
 *
 * One line per node:
 *   %12 dh        = mul %11, %9           [B, 4]     xor.nn:9   sigmoid': g * s * (1 - s)
 * id, bound name, op with sources and attributes, shape (i32 for integer
 * tensors), source location, and for gradient and update nodes the rule that
 * made them. Sections: forward, gradient, optimizer state (the STATE
 * leaves), update. Dead nodes are skipped. A program prints as its kernels,
 * each with the nodes its loop computes; an update kernel's header lists
 * every parameter and state it stores.
 */
#include "ir.h"

#include <string.h>

/* "axes=[0, 1]" style attribute text for n, into buf. */
static void attr_str(const Graph *g, const Node *n, char *buf, size_t len) {
    buf[0] = 0;
    size_t k = 0;
    switch (n->op) {
    case OP_CONST:
        snprintf(buf, len, " %.9g", n->attr.cst.value);
        break;
    case OP_POWC:
        snprintf(buf, len, " ^%.9g", n->attr.pow.p);
        break;
    case OP_LEAKY_RELU:
        snprintf(buf, len, " alpha=%.9g", n->attr.alpha);
        break;
    case OP_DROPOUT:
        snprintf(buf, len, " p=%.9g mask=%d", n->attr.drop.p, n->attr.drop.salt);
        break;
    case OP_CONCAT:
        snprintf(buf, len, " axis=%d", n->attr.axis);
        break;
    case OP_SLICE:
        snprintf(buf, len, " axis=%d start=%lld", n->attr.slice.axis,
                 (long long)n->attr.slice.start);
        break;
    case OP_SUM:
    case OP_MEAN:
    case OP_AMAX:
    case OP_NUMEL: {
        k += (size_t)snprintf(buf + k, len - k, " axes=[");
        bool first = true;
        for (int i = 0; i < IR_MAX_RANK; i++)
            if (n->attr.red.axes >> i & 1) {
                k += (size_t)snprintf(buf + k, len - k, "%s%d", first ? "" : ", ", i);
                first = false;
            }
        k += (size_t)snprintf(buf + k, len - k, "]");
        if (n->op == OP_NUMEL) {
            char s[64];
            snprintf(buf + k, len - k, " of %s", shape_str(&n->attr.red.of, s, sizeof s));
        } else if (n->attr.red.keepdims) {
            snprintf(buf + k, len - k, " keepdims");
        }
        break;
    }
    case OP_MATMUL:
        snprintf(buf, len, "%s%s", n->attr.mm.ta ? " ta" : "", n->attr.mm.tb ? " tb" : "");
        break;
    case OP_SOFTMAX:
    case OP_LOG_SOFTMAX:
        snprintf(buf, len, " axis=%d", n->attr.axis);
        break;
    case OP_TRANSPOSE:
        k += (size_t)snprintf(buf, len, " perm=[");
        for (int i = 0; i < n->shape.rank; i++)
            k += (size_t)snprintf(buf + k, len - k, "%s%d", i ? ", " : "", n->attr.perm[i]);
        snprintf(buf + k, len - k, "]");
        break;
    case OP_STATE: {
        const State *st = &g->states.items[n->attr.leaf.index];
        k += (size_t)snprintf(buf, len, " of %s", g->params.items[st->param].name);
        if (st->init.kind == INIT_CONST)
            snprintf(buf + k, len - k, " init=%.9g", st->init.a);
        break;
    }
    case OP_ASSIGN:
        if (n->src[0]->name)
            snprintf(buf, len, " -> %s", n->src[0]->name);
        break;
    case OP_INPUT: case OP_PARAM: case OP_HYPER: case OP_NEG: case OP_EXP: case OP_LOG:
    case OP_SQRT: case OP_TANH: case OP_SIGMOID: case OP_RELU: case OP_STEP: case OP_CAST:
    case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_MAX: case OP_BCE:
    case OP_EXPAND: case OP_RESHAPE: case OP_XENT: case OP_ONEHOT:
    case OP_SIN: case OP_COS: case OP_FLOOR: case OP_POW:
    case OP_ABS: case OP_SIGN: case OP_GELU: case OP_DGELU: case OP_SOFTPLUS:
    case OP_BCE_LOGITS: case OP_EQ: case OP_GATHER: case OP_SCATTER_ADD:
    case OP_COUNT:
        break;
    }
}

void ir_print_node(FILE *out, const Graph *g, const Node *n) {
    char expr[192], attrs[128], shape[64], loc[128];
    attr_str(g, n, attrs, sizeof attrs);
    size_t k = (size_t)snprintf(expr, sizeof expr, "%s", op_info[n->op].name);
    for (int s = 0; s < n->nsrc; s++)
        k += (size_t)snprintf(expr + k, sizeof expr - k, "%s%%%d", s ? ", " : " ", n->src[s]->id);
    snprintf(expr + k, sizeof expr - k, "%s", attrs);
    shape_str(&n->shape, shape, sizeof shape);
    if (n->dtype == DT_INT)
        memmove(shape + 3, shape, strlen(shape) + 1), memcpy(shape, "i32", 3);
    if (n->loc.file)
        snprintf(loc, sizeof loc, "%s:%d", n->loc.file->path, n->loc.line);
    else
        snprintf(loc, sizeof loc, "-");
    fprintf(out, "  %%%-4d %-10s = %-34s %-12s %s", n->id, n->name ? n->name : "", expr, shape,
            loc);
    if (n->rule)
        fprintf(out, "   %s: %s", n->rule, n->math ? n->math : "");
    fputc('\n', out);
}

/* The live nodes with ids in [from, to), except STATE leaves. */
static void print_range(FILE *out, const Graph *g, int from, int to) {
    for (int i = from; i < to; i++)
        if (!g->nodes.items[i]->dead && g->nodes.items[i]->op != OP_STATE)
            ir_print_node(out, g, g->nodes.items[i]);
}

void ir_print_graph(FILE *out, const Graph *g) {
    int n = g->nodes.len;
    int gs = g->has_grad ? g->grad_start : n, us = g->has_update ? g->update_start : n;
    fprintf(out, "# forward graph of %s\n", g->name);
    print_range(out, g, 0, gs);
    for (int i = 0; i < g->outputs.len; i++)
        fprintf(out, "  output %s = %%%d\n", g->outputs.items[i].name, g->outputs.items[i].node->id);
    if (g->loss)
        fprintf(out, "  loss = %%%d\n", g->loss->id);
    if (g->has_grad) {
        fprintf(out, "\n# gradient graph (reverse mode, d<x> is dloss/dx)\n");
        print_range(out, g, gs, us);
        for (int i = 0; i < g->params.len; i++)
            fprintf(out, "  grad %s = %%%d\n", g->params.items[i].name, g->params.items[i].grad->id);
    }
    if (g->states.len) {
        fprintf(out, "\n# optimizer state (one slot per parameter, kept across steps)\n");
        for (int i = 0; i < g->states.len; i++)
            ir_print_node(out, g, g->states.items[i].node);
    }
    if (g->has_update) {
        fprintf(out, "\n# optimizer update\n");
        print_range(out, g, us, n);
        if (g->lr)
            fprintf(out, "  lr = %%%d\n", g->lr->id);
    }
}

/* An update kernel's header names every store of its one loop:
 *   kernel 9 (fused loop, update of W: 3 stores) -> %40 W, %38 opt.m.W, %39 opt.v.W */
void ir_print_program(FILE *out, const Graph *g, const Program *p) {
    fprintf(out, "# program %s: %d kernels\n", p->name, p->kernels.len);
    for (int k = 0; k < p->kernels.len; k++) {
        const Kernel *kn = &p->kernels.items[k];
        if (kn->root->op == OP_ASSIGN) {
            const Node *d = kn->root->src[0];
            const char *param = d->op == OP_PARAM
                                    ? d->name
                                    : g->params.items[g->states.items[d->attr.leaf.index].param].name;
            fprintf(out, "kernel %d (fused loop, update of %s: %d store%s) -> %%%d %s", k, param,
                    1 + kn->more.len, kn->more.len ? "s" : "", kn->root->id, d->name ? d->name : "");
            for (int i = 0; i < kn->more.len; i++) {
                const Node *m = kn->more.items[i];
                fprintf(out, ", %%%d %s", m->id, m->src[0]->name ? m->src[0]->name : "");
            }
            fputc('\n', out);
        } else {
            fprintf(out, "kernel %d%s -> %%%d\n", k, kn->fused ? " (fused loop)" : "", kn->root->id);
        }
        if (kn->fused)
            for (int i = 0; i < kn->body.len; i++)
                ir_print_node(out, g, kn->body.items[i]);
        else
            ir_print_node(out, g, kn->root);
    }
}
