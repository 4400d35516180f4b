/* print.c: the IR as stable, diffable text.
 *
 * One line per node:
 *   %12 dh        = mul %11, %9           [B, 4]     xor.nn:9   adjoint of sigmoid at xor.nn:9: g * s * (1 - s)
 * id, bound name, op with sources and attributes, shape (i32 for integer
 * tensors), source location, and for gradient and update nodes who made
 * them (ir_node_provenance). Sections: forward, gradient, optimizer state
 * (the STATE leaves), update, and what the backward pass keeps of the
 * forward one. Dead nodes are skipped. A program prints as its kernels,
 * each with the nodes its loop computes; an update kernel's header lists
 * every parameter and state it stores. Every printer takes a keep mask
 * (by node id; NULL: everything) that gradc grad --wrt fills with
 * ir_grad_slice.
 */
#include "pass.h"

#include <string.h>

void ir_node_attrs(const Graph *g, const Node *n, char *buf, size_t len) {
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
        if (st->init.kind == INIT_CONST && k < len) /* a long name fills buf */
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

/* "examples/xor.nn:16" into buf, or "-" for built-in code. */
static char *loc_str(Loc loc, char *buf, size_t len) {
    if (loc.file)
        snprintf(buf, len, "%s:%d", loc.file->path, loc.line);
    else
        snprintf(buf, len, "-");
    return buf;
}

/* The parameter n updates or belongs to (a PARAM, or a STATE's), or NULL. */
static const char *param_of(const Graph *g, const Node *n) {
    if (!n)
        return NULL;
    if (n->op == OP_PARAM)
        return n->name;
    if (n->op == OP_STATE)
        return g->params.items[g->states.items[n->attr.leaf.index].param].name;
    return NULL;
}

char *ir_node_provenance(const Graph *g, const Node *n, char *buf, size_t len) {
    buf[0] = 0;
    if (!n->rule)
        return buf;
    const char *math = n->math ? n->math : "";
    const Node *o = n->origin;
    size_t rl = strlen(n->rule);
    char at[160];
    if (o && rl > 0 && n->rule[rl - 1] == '\'') {
        /* a chain rule: where the forward op it differentiates is */
        snprintf(buf, len, "adjoint of %s at %s: %s", op_info[o->op].name, loc_str(o->loc, at, sizeof at),
                 math);
    } else if (!strcmp(n->rule, "seed") && o) {
        snprintf(buf, len, "seed at %s: %s", loc_str(o->loc, at, sizeof at), math);
    } else if (!strcmp(n->rule, "zero") && param_of(g, o)) {
        snprintf(buf, len, "zero gradient of %s at %s: %s", param_of(g, o),
                 loc_str(o->loc, at, sizeof at), math);
    } else if (param_of(g, o)) {
        /* an optimizer: the line of the rule's statement that made n */
        snprintf(buf, len, "%s %s of %s at %s: %s", n->rule, n->op == OP_STATE ? "state" : "update",
                 param_of(g, o), loc_str(n->loc, at, sizeof at), math);
    } else {
        snprintf(buf, len, "%s at %s: %s", n->rule, loc_str(n->loc, at, sizeof at), math);
    }
    return buf;
}

void ir_print_node(FILE *out, const Graph *g, const Node *n) {
    char expr[192], attrs[128], shape[64], loc[128], prov[512];
    ir_node_attrs(g, n, attrs, sizeof attrs);
    size_t k = (size_t)snprintf(expr, sizeof expr, "%s", op_info[n->op].name);
    for (int s = 0; s < n->nsrc; s++)
        k += (size_t)snprintf(expr + k, sizeof expr - k, "%s%%%d", s ? ", " : " ", n->src[s]->id);
    snprintf(expr + k, sizeof expr - k, "%s", attrs);
    shape_str(&n->shape, shape, sizeof shape);
    if (n->dtype == DT_INT)
        memmove(shape + 3, shape, strlen(shape) + 1), memcpy(shape, "i32", 3);
    fprintf(out, "  %%%-4d %-10s = %-34s %-12s %s", n->id, n->name ? n->name : "", expr, shape,
            loc_str(n->loc, loc, sizeof loc));
    if (n->rule)
        fprintf(out, "   %s", ir_node_provenance(g, n, prov, sizeof prov));
    fputc('\n', out);
}

/* Whether the mask keeps n (NULL keeps everything). */
static bool kept(const bool *keep, const Node *n) { return n && (!keep || keep[n->id]); }

/* The live nodes with ids in [from, to) that keep keeps, except STATE
 * leaves. */
static void print_range(FILE *out, const Graph *g, const bool *keep, int from, int to) {
    for (int i = from; i < to; i++) {
        const Node *n = g->nodes.items[i];
        if (!n->dead && n->op != OP_STATE && kept(keep, n))
            ir_print_node(out, g, n);
    }
}

void ir_print_graph(FILE *out, const Graph *g) { ir_print_graph_subset(out, g, NULL); }

void ir_print_graph_subset(FILE *out, const Graph *g, const bool *keep) {
    int n = g->nodes.len;
    int gs = g->has_grad ? g->grad_start : n, us = g->has_update ? g->update_start : n;
    fprintf(out, "# forward graph of %s\n", g->name);
    print_range(out, g, keep, 0, gs);
    for (int i = 0; i < g->outputs.len; i++)
        if (kept(keep, g->outputs.items[i].node))
            fprintf(out, "  output %s = %%%d\n", g->outputs.items[i].name,
                    g->outputs.items[i].node->id);
    if (kept(keep, g->loss))
        fprintf(out, "  loss = %%%d\n", g->loss->id);
    if (g->has_grad) {
        fprintf(out, "\n# gradient graph (reverse mode, d<x> is dloss/dx)\n");
        print_range(out, g, keep, gs, us);
        for (int i = 0; i < g->params.len; i++)
            if (kept(keep, g->params.items[i].grad))
                fprintf(out, "  grad %s = %%%d\n", g->params.items[i].name,
                        g->params.items[i].grad->id);
    }
    bool states = false;
    for (int i = 0; i < g->states.len; i++)
        states |= kept(keep, g->states.items[i].node);
    if (states) {
        fprintf(out, "\n# optimizer state (one slot per parameter, kept across steps)\n");
        for (int i = 0; i < g->states.len; i++)
            if (kept(keep, g->states.items[i].node))
                ir_print_node(out, g, g->states.items[i].node);
    }
    if (g->has_update) {
        fprintf(out, "\n# optimizer update\n");
        print_range(out, g, keep, us, n);
        if (kept(keep, g->lr))
            fprintf(out, "  lr = %%%d\n", g->lr->id);
    }
}

/* ---- what the backward pass keeps ------------------------------------------ */

/* The node whose storage n is (a view's source's). */
static const Node *storage_of(const Node *n) {
    while (op_has(n->op, OPF_VIEW))
        n = n->src[0];
    return n;
}

/* "4*B" or "16": the element count of s, with the batch dimension symbolic. */
static char *numel_str(const Shape *s, char *buf, size_t len) {
    int64_t per = shape_numel(s, 1);
    if (!shape_has_batch(s))
        snprintf(buf, len, "%lld", (long long)per);
    else if (per == 1)
        snprintf(buf, len, "B");
    else
        snprintf(buf, len, "%lld*B", (long long)per);
    return buf;
}

void ir_kept_for_backward(const Graph *g, const bool *keep, bool *saved) {
    memset(saved, 0, (size_t)g->nodes.len);
    if (!g->has_grad)
        return;
    for (int i = g->grad_start; i < g->nodes.len; i++) {
        const Node *n = g->nodes.items[i];
        if (n->dead || !kept(keep, n))
            continue;
        for (int s = 0; s < n->nsrc; s++) {
            const Node *x = storage_of(n->src[s]);
            if (x->id < g->grad_start && x->op != OP_CONST && x->op != OP_NUMEL)
                saved[x->id] = true;
        }
    }
}

/* The forward values the gradient and update nodes read, one row each with
 * its size at batch, then the total; leaves (stored anyway) on one line. */
void ir_print_kept(FILE *out, const Graph *g, const bool *keep, int64_t batch) {
    if (!g->has_grad)
        return;
    bool *saved = arena_alloc(g->arena, (size_t)g->nodes.len + 1);
    ir_kept_for_backward(g, keep, saved);
    fprintf(out, "\n# kept for the backward pass (forward values the gradient and the update read;"
                 " bytes in float32 at batch %lld)\n",
            (long long)batch);
    int64_t per = 0, fixed = 0, count = 0;
    size_t bytes = 0;
    for (int i = 0; i < g->grad_start; i++) {
        const Node *n = g->nodes.items[i];
        if (!saved[i] || op_has(n->op, OPF_LEAF))
            continue;
        char shape[64], num[48], elems[64];
        shape_str(&n->shape, shape, sizeof shape);
        if (n->dtype == DT_INT)
            memmove(shape + 3, shape, strlen(shape) + 1), memcpy(shape, "i32", 3);
        size_t b = node_bytes(n, batch, 4);
        snprintf(elems, sizeof elems, "%s elements", numel_str(&n->shape, num, sizeof num));
        fprintf(out, "  %%%-4d %-10s %-12s %-12s %-16s %10zu B\n", n->id, n->name ? n->name : "",
                op_info[n->op].name, shape, elems, b);
        if (shape_has_batch(&n->shape))
            per += shape_numel(&n->shape, 1);
        else
            fixed += shape_numel(&n->shape, 1);
        bytes += b;
        count++;
    }
    char total[64];
    size_t k = 0;
    if (per)
        k = per == 1 ? (size_t)snprintf(total, sizeof total, "B")
                     : (size_t)snprintf(total, sizeof total, "%lld*B", (long long)per);
    if (fixed || !per)
        snprintf(total + k, sizeof total - k, "%s%lld", per ? " + " : "", (long long)fixed);
    fprintf(out, "  total: %lld value%s, %s elements, %zu B at batch %lld\n", (long long)count,
            count == 1 ? "" : "s", total, bytes, (long long)batch);
    bool any = false;
    for (int i = 0; i < g->grad_start; i++) {
        const Node *n = g->nodes.items[i];
        if (!saved[i] || !op_has(n->op, OPF_LEAF))
            continue;
        fprintf(out, "%s %%%d %s", any ? "," : "  leaves read too (stored anyway):",
                n->id, n->name ? n->name : op_info[n->op].name);
        any = true;
    }
    if (any)
        fputc('\n', out);
}

/* ---- --wrt ------------------------------------------------------------------ */

void ir_grad_slice(const Graph *g, int param, bool *keep) {
    memset(keep, 0, (size_t)g->nodes.len);
    const Param *p = &g->params.items[param];
    if (p->grad)
        keep[p->grad->id] = true;
    for (int i = 0; i < g->updates.len; i++) {
        const Node *u = g->updates.items[i];
        const Node *d = u->src[0];
        if (!u->dead && (d == p->node || (d->op == OP_STATE &&
                                          g->states.items[d->attr.leaf.index].param == param)))
            keep[u->id] = true;
    }
    /* sources have smaller ids: one sweep down marks everything they read */
    for (int i = g->nodes.len - 1; i >= 0; i--)
        if (keep[i])
            for (int s = 0; s < g->nodes.items[i]->nsrc; s++)
                keep[g->nodes.items[i]->src[s]->id] = true;
    /* the states of the parameter, even one its update never reads */
    for (int i = 0; i < g->states.len; i++)
        if (g->states.items[i].param == param && !g->states.items[i].node->dead)
            keep[g->states.items[i].node->id] = true;
}

/* ---- programs ---------------------------------------------------------------- */

void ir_print_program(FILE *out, const Graph *g, const Program *p) {
    ir_print_program_subset(out, g, p, NULL);
}

/* An update kernel's header names every store of its one loop:
 *   kernel 9 (fused loop, update of W: 3 stores) -> %40 W, %38 opt.m.W, %39 opt.v.W
 * The nodes a fused loop computes follow its header, each marked with a
 * bar; a kernel of one node (a matrix product, a reduction) is that node. */
void ir_print_program_subset(FILE *out, const Graph *g, const Program *p, const bool *keep) {
    int fused = 0;
    for (int k = 0; k < p->kernels.len; k++)
        fused += p->kernels.items[k].fused;
    fprintf(out, "# program %s: %d kernel%s, %d fused loop%s\n", p->name, p->kernels.len,
            p->kernels.len == 1 ? "" : "s", fused, fused == 1 ? "" : "s");
    for (int k = 0; k < p->kernels.len; k++) {
        const Kernel *kn = &p->kernels.items[k];
        if (!kept(keep, kn->root))
            continue;
        if (kn->root->op == OP_ASSIGN) {
            const Node *d = kn->root->src[0];
            fprintf(out, "kernel %d (fused loop, update of %s: %d store%s) -> %%%d %s", k,
                    param_of(g, d), 1 + kn->more.len, kn->more.len ? "s" : "", kn->root->id,
                    d->name ? d->name : "");
            for (int i = 0; i < kn->more.len; i++) {
                const Node *m = kn->more.items[i];
                fprintf(out, ", %%%d %s", m->id, m->src[0]->name ? m->src[0]->name : "");
            }
            fputc('\n', out);
        } else if (kn->fused) {
            fprintf(out, "kernel %d (fused loop) -> %%%d\n", k, kn->root->id);
        } else {
            fprintf(out, "kernel %d -> %%%d\n", k, kn->root->id);
        }
        if (kn->fused)
            for (int i = 0; i < kn->body.len; i++) {
                fputs("  |", out);
                ir_print_node(out, g, kn->body.items[i]);
            }
        else
            ir_print_node(out, g, kn->root);
    }
}

/* ---- kernel labels (gradc summary, gradc train --profile) ------------------------- */

/* The parameter that dest (a PARAM, or a STATE of one) belongs to. */
static const Param *owner(const Graph *g, const Node *dest) {
    int p = dest->op == OP_STATE ? g->states.items[dest->attr.leaf.index].param
                                 : dest->attr.leaf.index;
    return &g->params.items[p];
}

KernelLabel ir_kernel_label(Arena *a, const Graph *g, const Kernel *k) {
    const Node *r = k->root;
    const Node *named = r->op == OP_ASSIGN ? r->src[0] : r;
    /* An update is the parameter's: its declaration, not the rule's line. */
    Loc loc = r->op == OP_ASSIGN ? owner(g, r->src[0])->loc : r->loc;
    KernelLabel l = {
        .root = arena_printf(a, "%%%d%s%s", r->id, named->name ? " " : "",
                             named->name ? named->name : ""),
        .source = loc.file ? arena_printf(a, "%s:%d", loc.file->path, loc.line) : "-",
        .group = KG_OTHER,
    };
    if (k->fused) {
        int ops = 0;
        for (int i = 0; i < k->body.len; i++)
            if (k->body.items[i]->op != OP_CONST && k->body.items[i]->op != OP_NUMEL &&
                k->body.items[i]->op != OP_ASSIGN)
                ops++;
        if (r->op == OP_ASSIGN) {
            l.kind = arena_printf(a, "update of %s, %d op%s, %d store%s",
                                  owner(g, r->src[0])->name, ops, ops == 1 ? "" : "s",
                                  1 + k->more.len, k->more.len ? "s" : "");
            l.group = KG_UPDATE;
        } else {
            l.kind = arena_printf(a, "loop, %d op%s", ops, ops == 1 ? "" : "s");
            l.group = KG_LOOP;
        }
    } else if (r->op == OP_MATMUL) {
        l.kind = "gemm";
        l.group = KG_GEMM;
    } else if (op_has(r->op, OPF_REDUCE)) {
        l.kind = arena_printf(a, "reduction (%s)", op_info[r->op].name);
    } else {
        l.kind = op_info[r->op].name;
    }
    return l;
}
