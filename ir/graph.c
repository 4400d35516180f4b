/* graph.c: the op table, shapes, and the node builders that infer and check
 * shapes. Every node of every graph is made here (new_node), which is where
 * ids, locations and gradient provenance are stamped.
 *
 * Shape errors are user errors: diagnostics naming both shapes, never
 * assertions. Must not depend on the front end or LLVM.
 */
#include "ir.h"

#include <string.h>

const OpInfo op_info[OP_COUNT] = {
#define X(id, name, arity, flags, shape, doc) [OP_##id] = {#name, arity, flags, doc},
#include "ops.def"
#undef X
};

Op op_lookup(const char *name) {
    for (int i = 0; i < OP_COUNT; i++)
        if (strcmp(op_info[i].name, name) == 0)
            return (Op)i;
    return OP_COUNT;
}

/* ---- shapes ------------------------------------------------------------------ */

bool shape_eq(const Shape *a, const Shape *b) {
    if (a->rank != b->rank)
        return false;
    for (int i = 0; i < a->rank; i++)
        if (a->d[i] != b->d[i])
            return false;
    return true;
}

bool shape_has_batch(const Shape *s) {
    for (int i = 0; i < s->rank; i++)
        if (s->d[i] == DIM_BATCH)
            return true;
    return false;
}

int64_t shape_numel(const Shape *s, int64_t batch) {
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++)
        n *= s->d[i] == DIM_BATCH ? batch : s->d[i];
    return n;
}

char *shape_str(const Shape *s, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < s->rank && k < n; i++) {
        if (s->d[i] == DIM_BATCH)
            k += (size_t)snprintf(buf + k, n - k, "%sB", i ? ", " : "");
        else
            k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)s->d[i]);
    }
    if (k < n)
        snprintf(buf + k, n - k, "]");
    return buf;
}

/* NumPy: align from the right; sizes equal, or one of them 1. The batch
 * dimension broadcasts only with itself or 1. */
bool shape_broadcast(const Shape *a, const Shape *b, Shape *out) {
    int rank = a->rank > b->rank ? a->rank : b->rank;
    Shape r = {.rank = rank};
    for (int i = 0; i < rank; i++) {
        int ia = a->rank - rank + i, ib = b->rank - rank + i;
        int64_t da = ia >= 0 ? a->d[ia] : 1, db = ib >= 0 ? b->d[ib] : 1;
        if (da == db || db == 1)
            r.d[i] = da;
        else if (da == 1)
            r.d[i] = db;
        else
            return false;
    }
    *out = r;
    return true;
}

size_t node_bytes(const Node *n, int64_t batch, int elem_size) {
    size_t es = n->dtype == DT_INT ? 4 : (size_t)elem_size;
    return (size_t)shape_numel(&n->shape, batch) * es;
}

/* ---- nodes ------------------------------------------------------------------- */

Graph *graph_new(Arena *a, Diags *d, const char *name) {
    Graph *g = arena_alloc(a, sizeof *g);
    g->arena = a;
    g->diags = d;
    g->name = arena_strdup(a, name);
    return g;
}

static Node *new_node(Graph *g, Op op, DType dt, const Shape *s, Loc loc, int nsrc, Node *a,
                      Node *b) {
    gc_assert(nsrc == op_info[op].arity);
    Node *n = arena_alloc(g->arena, sizeof *n);
    n->op = op;
    n->dtype = dt;
    n->shape = *s;
    n->id = g->nodes.len;
    n->nsrc = nsrc;
    n->src[0] = a;
    n->src[1] = b;
    n->loc = loc;
    n->rule = g->cur_rule;
    n->math = g->cur_math;
    n->origin = g->cur_origin;
    vec_push(g->arena, &g->nodes, n);
    return n;
}

/* "[B, 4] (x @ W1 at model.nn:9:5)": a shape for a message. */
static void note_operand(Graph *g, const char *what, const Node *n) {
    char buf[64];
    if (n->loc.file)
        diag_note(g->diags, n->loc, "%s has shape %s", what, shape_str(&n->shape, buf, sizeof buf));
}

static bool check_float(Graph *g, const Node *n, const char *opname, Loc loc) {
    if (n->dtype == DT_FLOAT)
        return true;
    diag_error(g->diags, loc, "%s needs a float operand, but this is an integer tensor", opname);
    note_operand(g, "the integer operand", n);
    return false;
}

Node *ir_input(Graph *g, const char *name, DType dt, const Shape *s, Loc loc) {
    Node *n = new_node(g, OP_INPUT, dt, s, loc, 0, NULL, NULL);
    n->name = arena_strdup(g->arena, name);
    n->attr.leaf.index = g->inputs.len;
    Input in = {n->name, n, loc};
    vec_push(g->arena, &g->inputs, in);
    return n;
}

Node *ir_param(Graph *g, const char *name, const Shape *s, Init init, Loc loc) {
    gc_assert(!shape_has_batch(s));
    Node *n = new_node(g, OP_PARAM, DT_FLOAT, s, loc, 0, NULL, NULL);
    n->name = arena_strdup(g->arena, name);
    n->attr.leaf.index = g->params.len;
    Param p = {n->name, n, init, loc, NULL};
    vec_push(g->arena, &g->params, p);
    return n;
}

Node *ir_hyper(Graph *g, const char *name, double value) {
    for (int i = 0; i < g->hypers.len; i++)
        if (strcmp(g->hypers.items[i].name, name) == 0)
            return g->hypers.items[i].node;
    Shape scalar = {0};
    Node *n = new_node(g, OP_HYPER, DT_FLOAT, &scalar, (Loc){0}, 0, NULL, NULL);
    n->name = arena_strdup(g->arena, name);
    n->attr.leaf.index = g->hypers.len;
    Hyper h = {n->name, n, value};
    vec_push(g->arena, &g->hypers, h);
    return n;
}

Node *ir_const(Graph *g, double value, Loc loc) {
    Shape scalar = {0};
    Node *n = new_node(g, OP_CONST, DT_FLOAT, &scalar, loc, 0, NULL, NULL);
    n->attr.cst.value = value;
    return n;
}

Node *ir_numel(Graph *g, const Shape *of, unsigned axes, Loc loc) {
    Shape scalar = {0};
    Node *n = new_node(g, OP_NUMEL, DT_FLOAT, &scalar, loc, 0, NULL, NULL);
    n->attr.red.of = *of;
    n->attr.red.axes = axes;
    return n;
}

Node *ir_unary(Graph *g, Op op, Node *x, Loc loc) {
    gc_assert(op_has(op, OPF_ELEMWISE) && op_info[op].arity == 1 && op != OP_POWC);
    if (!x)
        return NULL;
    if (op == OP_CAST) {
        gc_assert(x->dtype == DT_INT);
        return new_node(g, op, DT_FLOAT, &x->shape, loc, 1, x, NULL);
    }
    if (!check_float(g, x, op_info[op].name, loc))
        return NULL;
    return new_node(g, op, DT_FLOAT, &x->shape, loc, 1, x, NULL);
}

Node *ir_powc(Graph *g, Node *x, double p, Loc loc) {
    if (!x || !check_float(g, x, "'^'", loc))
        return NULL;
    Node *n = new_node(g, OP_POWC, DT_FLOAT, &x->shape, loc, 1, x, NULL);
    n->attr.pow.p = p;
    return n;
}

Node *ir_binary(Graph *g, Op op, Node *a, Node *b, Loc loc) {
    gc_assert(op_has(op, OPF_ELEMWISE) && op_info[op].arity == 2);
    if (!a || !b)
        return NULL;
    if (!check_float(g, a, op_info[op].name, loc) || !check_float(g, b, op_info[op].name, loc))
        return NULL;
    Shape s;
    if (!shape_broadcast(&a->shape, &b->shape, &s)) {
        char sa[64], sb[64];
        diag_error(g->diags, loc, "cannot broadcast shapes %s and %s in '%s'",
                   shape_str(&a->shape, sa, sizeof sa), shape_str(&b->shape, sb, sizeof sb),
                   op_info[op].name);
        note_operand(g, "the left operand", a);
        note_operand(g, "the right operand", b);
        return NULL;
    }
    return new_node(g, op, DT_FLOAT, &s, loc, 2, a, b);
}

Node *ir_reduce(Graph *g, Op op, Node *x, unsigned axes, bool keepdims, Loc loc) {
    gc_assert(op_has(op, OPF_REDUCE));
    if (!x || !check_float(g, x, op_info[op].name, loc))
        return NULL;
    unsigned all = (1u << x->shape.rank) - 1;
    if (axes == 0)
        axes = all;
    gc_assert((axes & ~all) == 0);
    Shape s = {0};
    for (int i = 0; i < x->shape.rank; i++) {
        if (!(axes >> i & 1))
            s.d[s.rank++] = x->shape.d[i];
        else if (keepdims)
            s.d[s.rank++] = 1;
    }
    Node *n = new_node(g, op, DT_FLOAT, &s, loc, 1, x, NULL);
    n->attr.red.axes = axes;
    n->attr.red.keepdims = keepdims;
    return n;
}

/* The rows and columns of op(x) for a rank-2 x. */
static void mm_dims(const Node *x, bool t, int64_t *rows, int64_t *cols) {
    *rows = x->shape.d[t ? 1 : 0];
    *cols = x->shape.d[t ? 0 : 1];
}

Node *ir_matmul(Graph *g, Node *a, Node *b, bool ta, bool tb, Loc loc) {
    if (!a || !b)
        return NULL;
    if (!check_float(g, a, "'@'", loc) || !check_float(g, b, "'@'", loc))
        return NULL;
    char sa[64], sb[64];
    if (a->shape.rank != 2 || b->shape.rank != 2) {
        diag_error(g->diags, loc, "'@' needs two matrices, but the operands have shapes %s and %s",
                   shape_str(&a->shape, sa, sizeof sa), shape_str(&b->shape, sb, sizeof sb));
        note_operand(g, "the left operand", a);
        note_operand(g, "the right operand", b);
        return NULL;
    }
    int64_t m, ka, kb, nn;
    mm_dims(a, ta, &m, &ka);
    mm_dims(b, tb, &kb, &nn);
    if (ka != kb) {
        diag_error(g->diags, loc,
                   "inner dimensions of '@' differ: %s @ %s", shape_str(&a->shape, sa, sizeof sa),
                   shape_str(&b->shape, sb, sizeof sb));
        note_operand(g, "the left operand", a);
        note_operand(g, "the right operand", b);
        return NULL;
    }
    Shape s = {.rank = 2, .d = {m, nn}};
    Node *n = new_node(g, OP_MATMUL, DT_FLOAT, &s, loc, 2, a, b);
    n->attr.mm.ta = ta;
    n->attr.mm.tb = tb;
    return n;
}

Node *ir_transpose(Graph *g, Node *x, const int *perm, Loc loc) {
    if (!x)
        return NULL;
    int r = x->shape.rank, p[IR_MAX_RANK];
    for (int i = 0; i < r; i++)
        p[i] = perm ? perm[i] : r - 1 - i;
    Shape s = {.rank = r};
    for (int i = 0; i < r; i++)
        s.d[i] = x->shape.d[p[i]];
    Node *n = new_node(g, OP_TRANSPOSE, x->dtype, &s, loc, 1, x, NULL);
    memcpy(n->attr.perm, p, sizeof p);
    return n;
}

Node *ir_expand(Graph *g, Node *x, const Shape *to, Loc loc) {
    if (!x)
        return NULL;
    Shape s;
    gc_assert(shape_broadcast(&x->shape, to, &s) && shape_eq(&s, to));
    return new_node(g, OP_EXPAND, x->dtype, to, loc, 1, x, NULL);
}

Node *ir_reshape(Graph *g, Node *x, const Shape *to, Loc loc) {
    if (!x)
        return NULL;
    gc_assert(shape_has_batch(&x->shape) == shape_has_batch(to) &&
              shape_numel(&x->shape, 7) == shape_numel(to, 7));
    return new_node(g, OP_RESHAPE, x->dtype, to, loc, 1, x, NULL);
}

Node *ir_softmax(Graph *g, Op op, Node *x, int axis, Loc loc) {
    gc_assert(op == OP_SOFTMAX || op == OP_LOG_SOFTMAX);
    if (!x || !check_float(g, x, op_info[op].name, loc))
        return NULL;
    int r = x->shape.rank;
    if (axis < -r || axis >= r || r == 0) {
        char sx[64];
        diag_error(g->diags, loc, "axis %d is out of range for a tensor of shape %s", axis,
                   shape_str(&x->shape, sx, sizeof sx));
        return NULL;
    }
    Node *n = new_node(g, op, DT_FLOAT, &x->shape, loc, 1, x, NULL);
    n->attr.axis = axis < 0 ? axis + r : axis;
    return n;
}

Node *ir_xent(Graph *g, Node *logits, Node *labels, Loc loc) {
    if (!logits || !labels)
        return NULL;
    char sl[64], sw[64], sy[64];
    if (!check_float(g, logits, "cross_entropy", loc))
        return NULL;
    Shape want = logits->shape;
    want.rank--;
    if (labels->dtype != DT_INT || logits->shape.rank < 1 || !shape_eq(&labels->shape, &want)) {
        diag_error(g->diags, loc,
                   "cross_entropy needs integer labels of shape %s for logits of shape %s, "
                   "but the labels are %s %s",
                   shape_str(&want, sw, sizeof sw), shape_str(&logits->shape, sl, sizeof sl),
                   labels->dtype == DT_INT ? "integers of shape" : "floats of shape",
                   shape_str(&labels->shape, sy, sizeof sy));
        note_operand(g, "the logits", logits);
        note_operand(g, "the labels", labels);
        return NULL;
    }
    return new_node(g, OP_XENT, DT_FLOAT, &want, loc, 2, logits, labels);
}

Node *ir_onehot(Graph *g, Node *labels, int64_t n, Loc loc) {
    if (!labels)
        return NULL;
    gc_assert(labels->dtype == DT_INT && labels->shape.rank < IR_MAX_RANK && n > 0);
    Shape s = labels->shape;
    s.d[s.rank++] = n;
    return new_node(g, OP_ONEHOT, DT_FLOAT, &s, loc, 1, labels, NULL);
}

Node *ir_assign(Graph *g, Node *param, Node *value) {
    gc_assert(param->op == OP_PARAM && shape_eq(&param->shape, &value->shape));
    Node *n = new_node(g, OP_ASSIGN, DT_FLOAT, &param->shape, param->loc, 2, param, value);
    vec_push(g->arena, &g->updates, n);
    return n;
}
