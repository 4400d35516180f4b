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
    for (int i = 0; i < s->rank; i++) /* saturates: a product past INT64_MAX is INT64_MAX */
        if (__builtin_mul_overflow(n, s->d[i] == DIM_BATCH ? batch : s->d[i], &n))
            return INT64_MAX;
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
    size_t es = n->dtype == DT_INT ? 4 : (size_t)elem_size, bytes;
    if (__builtin_mul_overflow((size_t)shape_numel(&n->shape, batch), es, &bytes))
        return SIZE_MAX; /* saturates, as shape_numel does */
    return bytes;
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

/* A scalar HYPER leaf of kind k named name, appended to Graph.hypers. */
static Node *new_hyper(Graph *g, const char *name, HyperKind k, DType dt, double value) {
    Shape scalar = {0};
    Node *n = new_node(g, OP_HYPER, dt, &scalar, (Loc){0}, 0, NULL, NULL);
    n->name = arena_strdup(g->arena, name);
    n->attr.leaf.index = g->hypers.len;
    Hyper h = {n->name, n, value, k};
    vec_push(g->arena, &g->hypers, h);
    return n;
}

static Node *find_hyper(Graph *g, const char *name) {
    for (int i = 0; i < g->hypers.len; i++)
        if (strcmp(g->hypers.items[i].name, name) == 0)
            return g->hypers.items[i].node;
    return NULL;
}

/* The runtime-set hypers' fixed names; a value hyper may not take them. */
static const char *const hyper_kind_names[] = {
    [HYPER_VALUE] = NULL, [HYPER_STEP] = "t", [HYPER_EPOCH] = "epoch",
    [HYPER_EPOCHS] = "epochs", [HYPER_RNG] = "rng",
};

Node *ir_hyper(Graph *g, const char *name, double value) {
    Node *n = find_hyper(g, name);
    if (n) {
        gc_assert(g->hypers.items[n->attr.leaf.index].kind == HYPER_VALUE);
        return n;
    }
    return new_hyper(g, name, HYPER_VALUE, DT_FLOAT, value);
}

Node *ir_hyper_kind(Graph *g, HyperKind k) {
    gc_assert(k == HYPER_STEP || k == HYPER_EPOCH || k == HYPER_EPOCHS);
    Node *n = find_hyper(g, hyper_kind_names[k]);
    if (n) {
        gc_assert(g->hypers.items[n->attr.leaf.index].kind == k);
        return n;
    }
    return new_hyper(g, hyper_kind_names[k], k, DT_FLOAT, 0);
}

Node *ir_rng_key(Graph *g) {
    Node *n = find_hyper(g, hyper_kind_names[HYPER_RNG]);
    if (n) {
        gc_assert(g->hypers.items[n->attr.leaf.index].kind == HYPER_RNG);
        return n;
    }
    return new_hyper(g, hyper_kind_names[HYPER_RNG], HYPER_RNG, DT_INT, 0);
}

Node *ir_state(Graph *g, const char *name, int param, Init init, Loc loc) {
    gc_assert(param >= 0 && param < g->params.len);
    const Node *p = g->params.items[param].node;
    Node *n = new_node(g, OP_STATE, DT_FLOAT, &p->shape, loc, 0, NULL, NULL);
    n->name = arena_strdup(g->arena, name);
    n->attr.leaf.index = g->states.len;
    State st = {n->name, n, param, init, loc};
    vec_push(g->arena, &g->states, st);
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
    gc_assert(op_has(op, OPF_ELEMWISE) && op_info[op].arity == 1 && op != OP_POWC &&
              op != OP_LEAKY_RELU);
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

Node *ir_leaky_relu(Graph *g, Node *x, double alpha, Loc loc) {
    if (!x || !check_float(g, x, "leaky_relu", loc))
        return NULL;
    Node *n = new_node(g, OP_LEAKY_RELU, DT_FLOAT, &x->shape, loc, 1, x, NULL);
    n->attr.alpha = alpha;
    return n;
}

Node *ir_dropout(Graph *g, Node *x, double p, int salt, Loc loc) {
    gc_assert(p >= 0 && p < 1);
    if (!x || !check_float(g, x, "dropout", loc))
        return NULL;
    Node *key = ir_rng_key(g);
    Node *n = new_node(g, OP_DROPOUT, DT_FLOAT, &x->shape, loc, 2, x, key);
    n->attr.drop.p = p;
    n->attr.drop.salt = salt >= 0 ? salt : g->ndropout++;
    return n;
}

Node *ir_binary(Graph *g, Op op, Node *a, Node *b, Loc loc) {
    gc_assert(op_has(op, OPF_ELEMWISE) && op_info[op].arity == 2 && op != OP_DROPOUT);
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

/* A matmul operand of rank r >= 2 is the matrix [product of its first
 * r - 1 dims, its last dim]. The product's dims as a count of batch
 * dimensions and a constant, so that [B, T, d] and [B*T, d] compare. */
typedef struct Lead {
    int batch;
    int64_t c;
} Lead;

static Lead lead_of(const Shape *s) {
    Lead l = {0, 1};
    for (int i = 0; i < s->rank - 1; i++) {
        if (s->d[i] == DIM_BATCH)
            l.batch++;
        else
            l.c *= s->d[i];
    }
    return l;
}

/* The product's shape: the rows of op(a), then the columns of op(b). Rows
 * are a's leading dims, or its last dim when transposed; columns b's last
 * dim, or when transposed its leading dims. */
static bool mm_shape(const Node *a, const Node *b, bool ta, bool tb, Shape *out) {
    const Shape *sa = &a->shape, *sb = &b->shape;
    Shape s = {0};
    if (ta)
        s.d[s.rank++] = sa->d[sa->rank - 1];
    else
        for (int i = 0; i < sa->rank - 1; i++)
            s.d[s.rank++] = sa->d[i];
    if (tb) {
        for (int i = 0; i < sb->rank - 1; i++) {
            if (s.rank == IR_MAX_RANK)
                return false;
            s.d[s.rank++] = sb->d[i];
        }
    } else {
        if (s.rank == IR_MAX_RANK)
            return false;
        s.d[s.rank++] = sb->d[sb->rank - 1];
    }
    *out = s;
    return true;
}

/* The product of the single dim d, as a Lead. */
static Lead lead_dim(int64_t d) { return d == DIM_BATCH ? (Lead){1, 1} : (Lead){0, d}; }
static bool lead_eq(Lead a, Lead b) { return a.batch == b.batch && a.c == b.c; }

/* Whether the contracted dims of op(a) and op(b) agree (a last dim may be
 * the batch dim: [M, B] @ [B, N] contracts over B). */
static bool mm_inner_ok(const Shape *sa, const Shape *sb, bool ta, bool tb) {
    Lead la = lead_of(sa), lb = lead_of(sb);
    int64_t lasta = sa->d[sa->rank - 1], lastb = sb->d[sb->rank - 1];
    if (ta && !tb)
        return lead_eq(la, lb);
    if (ta && tb)
        return lead_eq(la, lead_dim(lastb));
    if (!ta && !tb)
        return lead_eq(lb, lead_dim(lasta));
    return lasta == lastb;
}

bool ir_matmul_shape_ok(const Node *n) {
    const Node *a = n->src[0], *b = n->src[1];
    Shape s;
    return a->shape.rank >= 2 && b->shape.rank >= 2 &&
           mm_inner_ok(&a->shape, &b->shape, n->attr.mm.ta, n->attr.mm.tb) &&
           mm_shape(a, b, n->attr.mm.ta, n->attr.mm.tb, &s) && shape_eq(&s, &n->shape);
}

Node *ir_matmul(Graph *g, Node *a, Node *b, bool ta, bool tb, Loc loc) {
    if (!a || !b)
        return NULL;
    if (!check_float(g, a, "'@'", loc) || !check_float(g, b, "'@'", loc))
        return NULL;
    char sa[64], sb[64];
    Shape s;
    bool ranks_ok = a->shape.rank >= 2 && b->shape.rank >= 2 && (ta || b->shape.rank == 2);
    if (!ranks_ok) {
        diag_error(g->diags, loc, "'@' needs a matrix or a stack of rows ([..., n]) on the left "
                                  "and a matrix on the right, but the operands have shapes "
                                  "%s and %s",
                   shape_str(&a->shape, sa, sizeof sa), shape_str(&b->shape, sb, sizeof sb));
        note_operand(g, "the left operand", a);
        note_operand(g, "the right operand", b);
        return NULL;
    }
    if (!mm_inner_ok(&a->shape, &b->shape, ta, tb)) {
        diag_error(g->diags, loc,
                   "inner dimensions of '@' differ: %s @ %s", shape_str(&a->shape, sa, sizeof sa),
                   shape_str(&b->shape, sb, sizeof sb));
        note_operand(g, "the left operand", a);
        note_operand(g, "the right operand", b);
        return NULL;
    }
    if (!mm_shape(a, b, ta, tb, &s)) {
        diag_error(g->diags, loc, "the product %s @ %s would have more than %d dimensions",
                   shape_str(&a->shape, sa, sizeof sa), shape_str(&b->shape, sb, sizeof sb),
                   IR_MAX_RANK);
        return NULL;
    }
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

/* axis (negative from the end) of a rank-r tensor, or -1 after reporting. */
static int check_axis(Graph *g, int axis, const Node *x, const char *opname, Loc loc) {
    int r = x->shape.rank;
    if (axis < -r || axis >= r) {
        char sx[64];
        diag_error(g->diags, loc, "%s: axis %d is out of range for a tensor of rank %d (shape %s)",
                   opname, axis, r, shape_str(&x->shape, sx, sizeof sx));
        return -1;
    }
    return axis < 0 ? axis + r : axis;
}

Node *ir_concat(Graph *g, Node *a, Node *b, int axis, Loc loc) {
    if (!a || !b)
        return NULL;
    if (!check_float(g, a, "concat", loc) || !check_float(g, b, "concat", loc))
        return NULL;
    char sa[64], sb[64];
    if (a->shape.rank != b->shape.rank || a->shape.rank == 0) {
        diag_error(g->diags, loc, "concat needs tensors of the same rank (at least 1), but the "
                                  "shapes are %s and %s",
                   shape_str(&a->shape, sa, sizeof sa), shape_str(&b->shape, sb, sizeof sb));
        note_operand(g, "the first tensor", a);
        note_operand(g, "the second tensor", b);
        return NULL;
    }
    int ax = check_axis(g, axis, a, "concat", loc);
    if (ax < 0)
        return NULL;
    if (a->shape.d[ax] == DIM_BATCH || b->shape.d[ax] == DIM_BATCH) {
        diag_error(g->diags, loc, "concat cannot join along the batch dimension (axis %d)", axis);
        return NULL;
    }
    Shape s = a->shape;
    for (int i = 0; i < s.rank; i++) {
        if (i != ax && a->shape.d[i] != b->shape.d[i]) {
            diag_error(g->diags, loc, "concat along axis %d needs the other dimensions to agree, "
                                      "but the shapes are %s and %s",
                       axis, shape_str(&a->shape, sa, sizeof sa),
                       shape_str(&b->shape, sb, sizeof sb));
            note_operand(g, "the first tensor", a);
            note_operand(g, "the second tensor", b);
            return NULL;
        }
    }
    s.d[ax] = a->shape.d[ax] + b->shape.d[ax];
    Node *n = new_node(g, OP_CONCAT, DT_FLOAT, &s, loc, 2, a, b);
    n->attr.axis = ax;
    return n;
}

Node *ir_slice(Graph *g, Node *x, int axis, int64_t start, int64_t len, Loc loc) {
    if (!x)
        return NULL;
    gc_assert(axis >= 0 && axis < x->shape.rank && x->shape.d[axis] != DIM_BATCH);
    gc_assert(start >= 0 && len > 0 && start + len <= x->shape.d[axis]);
    Shape s = x->shape;
    s.d[axis] = len;
    Node *n = new_node(g, OP_SLICE, x->dtype, &s, loc, 1, x, NULL);
    n->attr.slice.axis = axis;
    n->attr.slice.start = start;
    return n;
}

Node *ir_gather(Graph *g, Node *table, Node *ids, Loc loc) {
    if (!table || !ids)
        return NULL;
    char st[64], si[64];
    if (ids->dtype != DT_INT) {
        diag_error(g->diags, loc, "indexing needs integer ids (declare the input ': int'), but "
                                  "the index is a float tensor of shape %s",
                   shape_str(&ids->shape, si, sizeof si));
        note_operand(g, "the index", ids);
        return NULL;
    }
    if (table->dtype != DT_FLOAT || table->shape.rank < 1 || table->shape.d[0] == DIM_BATCH) {
        diag_error(g->diags, loc, "only a float table of fixed size (a param) can be indexed, "
                                  "but this has shape %s",
                   shape_str(&table->shape, st, sizeof st));
        note_operand(g, "the table", table);
        return NULL;
    }
    if (ids->shape.rank + table->shape.rank - 1 > IR_MAX_RANK) {
        diag_error(g->diags, loc, "%s indexed by ids of shape %s would have more than %d "
                                  "dimensions",
                   shape_str(&table->shape, st, sizeof st), shape_str(&ids->shape, si, sizeof si),
                   IR_MAX_RANK);
        return NULL;
    }
    Shape s = ids->shape;
    for (int i = 1; i < table->shape.rank; i++)
        s.d[s.rank++] = table->shape.d[i];
    return new_node(g, OP_GATHER, DT_FLOAT, &s, loc, 2, table, ids);
}

Node *ir_scatter_add(Graph *g, Node *src, Node *ids, int64_t rows, Loc loc) {
    if (!src || !ids)
        return NULL;
    gc_assert(ids->dtype == DT_INT && src->shape.rank >= ids->shape.rank && rows > 0);
    Shape s = {.rank = 1 + src->shape.rank - ids->shape.rank, .d = {rows}};
    for (int i = ids->shape.rank; i < src->shape.rank; i++)
        s.d[1 + i - ids->shape.rank] = src->shape.d[i];
    return new_node(g, OP_SCATTER_ADD, DT_FLOAT, &s, loc, 2, src, ids);
}

/* The destination's own location: the update is of that parameter or state. */
Node *ir_assign(Graph *g, Node *dest, Node *value) {
    gc_assert(dest->op == OP_PARAM || dest->op == OP_STATE);
    if (!value)
        return NULL;
    gc_assert(value->dtype == DT_FLOAT && shape_eq(&dest->shape, &value->shape));
    Node *n = new_node(g, OP_ASSIGN, DT_FLOAT, &dest->shape, dest->loc, 2, dest, value);
    vec_push(g->arena, &g->updates, n);
    return n;
}
