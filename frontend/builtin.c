/* builtin.c: the functions of the expression language and their lowering.
 *
 * Owns the builtin table (name, parameters, lowering) and argument binding:
 * positional then keyword, counts, unknown and repeated keywords. Losses
 * average over the batch like PyTorch's defaults and record the metric they
 * imply. Must not check shapes the builders check (broadcasting, matmul,
 * cross_entropy's labels); only the "exactly the same shape" rule of
 * mse and bce, which the builders would broadcast, lives here.
 */
#include "lower.h"

#include <string.h>

typedef struct Builtin Builtin;
/* Lowers call, whose arguments are bound to args[0..nparams). */
typedef Node *LowerFn(Lower *L, const Builtin *b, const Expr *call, const Expr **args);

enum { MAX_PARAMS = 4, MAX_AXIS = 1 << 30 };

/* Columns: name, op (for the generic lowerings), required and total
 * parameter counts, parameter names in positional order, lowering. */
struct Builtin {
    const char *name;
    Op op;
    int nreq, nparams;
    const char *params[MAX_PARAMS];
    LowerFn *lower;
};

static LowerFn lower_unary, lower_minmax, lower_norm, lower_leaky_relu, lower_linear, lower_reduce, lower_softmax,
    lower_transpose, lower_reshape, lower_concat, lower_onehot, lower_dropout, lower_mse, lower_mae,
    lower_bce, lower_xent, lower_nll, lower_dense, lower_embedding;

static const Builtin builtins[] = {
    {"exp", OP_EXP, 1, 1, {"x"}, lower_unary},
    {"log", OP_LOG, 1, 1, {"x"}, lower_unary},
    {"sqrt", OP_SQRT, 1, 1, {"x"}, lower_unary},
    {"abs", OP_ABS, 1, 1, {"x"}, lower_unary},
    {"sign", OP_SIGN, 1, 1, {"x"}, lower_unary},
    {"floor", OP_FLOOR, 1, 1, {"x"}, lower_unary},
    {"sin", OP_SIN, 1, 1, {"x"}, lower_unary},
    {"cos", OP_COS, 1, 1, {"x"}, lower_unary},
    {"tanh", OP_TANH, 1, 1, {"x"}, lower_unary},
    {"sigmoid", OP_SIGMOID, 1, 1, {"x"}, lower_unary},
    {"relu", OP_RELU, 1, 1, {"x"}, lower_unary},
    {"leaky_relu", OP_LEAKY_RELU, 1, 2, {"x", "alpha"}, lower_leaky_relu},
    {"gelu", OP_GELU, 1, 1, {"x"}, lower_unary},
    {"softplus", OP_SOFTPLUS, 1, 1, {"x"}, lower_unary},
    {"linear", OP_COUNT, 1, 1, {"x"}, lower_linear},
    {"sum", OP_SUM, 1, 3, {"x", "axis", "keepdims"}, lower_reduce},
    {"mean", OP_MEAN, 1, 3, {"x", "axis", "keepdims"}, lower_reduce},
    {"max", OP_AMAX, 1, 3, {"x", "axis", "keepdims"}, lower_minmax},
    {"min", OP_AMAX, 1, 3, {"x", "axis", "keepdims"}, lower_minmax},
    {"norm", OP_SUM, 1, 1, {"x"}, lower_norm},
    {"softmax", OP_SOFTMAX, 1, 2, {"x", "axis"}, lower_softmax},
    {"log_softmax", OP_LOG_SOFTMAX, 1, 2, {"x", "axis"}, lower_softmax},
    {"transpose", OP_TRANSPOSE, 1, 2, {"x", "axes"}, lower_transpose},
    {"reshape", OP_RESHAPE, 2, 2, {"x", "shape"}, lower_reshape},
    {"concat", OP_CONCAT, 1, 2, {"xs", "axis"}, lower_concat},
    {"onehot", OP_ONEHOT, 2, 2, {"ids", "n"}, lower_onehot},
    {"dropout", OP_DROPOUT, 2, 2, {"x", "p"}, lower_dropout},
    {"mse", OP_SUB, 2, 2, {"pred", "target"}, lower_mse},
    {"mae", OP_SUB, 2, 2, {"pred", "target"}, lower_mae},
    {"bce", OP_BCE, 2, 2, {"pred", "target"}, lower_bce},
    {"bce_logits", OP_BCE_LOGITS, 2, 2, {"logits", "target"}, lower_bce},
    {"cross_entropy", OP_XENT, 2, 2, {"logits", "labels"}, lower_xent},
    {"nll", OP_XENT, 2, 2, {"log_probs", "labels"}, lower_nll},
    {"dense", OP_MATMUL, 2, 4, {"x", "units", "activation", "bias"}, lower_dense},
    {"embedding", OP_GATHER, 3, 3, {"ids", "vocab", "dim"}, lower_embedding},
};
enum { NBUILTINS = sizeof builtins / sizeof builtins[0] };

static const Builtin *find_builtin(const char *name) {
    for (int i = 0; i < NBUILTINS; i++)
        if (!strcmp(builtins[i].name, name))
            return &builtins[i];
    return NULL;
}

bool fe_is_builtin(const char *name) { return find_builtin(name) != NULL; }

/* "1 argument", "1 to 3 arguments" */
static const char *arg_count(Lower *L, int nreq, int nparams) {
    if (nreq == nparams)
        return arena_printf(L->a, "%d argument%s", nreq, nreq == 1 ? "" : "s");
    return arena_printf(L->a, "%d to %d arguments", nreq, nparams);
}

bool fe_bind_args(Lower *L, const Expr *call, const char *fname, int nreq, int nparams,
                  const char *const *params, const Expr **out) {
    const ArgVec *args = &call->u.call.args;
    for (int i = 0; i < nparams; i++)
        out[i] = NULL;
    int npos = 0;
    while (npos < args->len && !args->items[npos].name)
        npos++;
    if (npos > nparams || args->len < nreq) {
        diag_error(L->d, call->loc, "%s expects %s, got %d", fname, arg_count(L, nreq, nparams),
                   args->len);
        return false;
    }
    for (int i = 0; i < npos; i++)
        out[i] = args->items[i].value;
    bool ok = true;
    for (int i = npos; i < args->len; i++) {
        const Arg *arg = &args->items[i];
        int k = 0;
        while (k < nparams && strcmp(params[k], arg->name))
            k++;
        if (k == nparams) {
            const char *best = closest_name(arg->name, params, nparams);
            if (best)
                diag_error(L->d, arg->name_loc, "%s has no argument named '%s'; did you mean '%s'?",
                           fname, arg->name, best);
            else
                diag_error(L->d, arg->name_loc, "%s has no argument named '%s'", fname, arg->name);
            ok = false;
        } else if (out[k]) {
            diag_error(L->d, arg->name_loc, "argument '%s' of %s is given twice", arg->name, fname);
            ok = false;
        } else {
            out[k] = arg->value;
        }
    }
    for (int i = 0; i < nreq && ok; i++) {
        if (!out[i]) {
            diag_error(L->d, call->loc, "%s is missing its argument '%s'", fname, params[i]);
            ok = false;
        }
    }
    return ok;
}

static char *shape_text(Lower *L, const Shape *s) {
    char buf[96];
    return arena_strdup(L->a, shape_str(s, buf, sizeof buf));
}

/* f(x) for an elementwise f */
static Node *lower_unary(Lower *L, const Builtin *b, const Expr *call, const Expr **args) {
    Node *x = fe_to_float(L, fe_lower_expr(L, args[0]), args[0]->loc);
    return ir_unary(L->g, b->op, x, call->loc);
}

/* leaky_relu(x, alpha = 0.01) */
static Node *lower_leaky_relu(Lower *L, const Builtin *b, const Expr *call, const Expr **args) {
    (void)b;
    Node *x = fe_to_float(L, fe_lower_expr(L, args[0]), args[0]->loc);
    double alpha = 0.01;
    if (args[1] && !fe_const_eval(L, args[1], &alpha))
        return NULL;
    return ir_leaky_relu(L->g, x, alpha, call->loc);
}

/* linear(x) = x: the identity, an activation for layers */
static Node *lower_linear(Lower *L, const Builtin *b, const Expr *call, const Expr **args) {
    (void)b, (void)call;
    return fe_to_float(L, fe_lower_expr(L, args[0]), args[0]->loc);
}

/* The axes of axis (an int or a list of ints, negative from the end) as a
 * bitmask over the axes of a tensor of shape s. */
static bool reduce_axes(Lower *L, const Expr *axis, const Shape *s, unsigned *mask) {
    const Expr *const *items = (const Expr *const *)&axis;
    int n = 1;
    if (axis->kind == EX_LIST) {
        items = (const Expr *const *)axis->u.items.items;
        n = axis->u.items.len;
        if (n == 0) {
            diag_error(L->d, axis->loc, "the list of axes is empty");
            return false;
        }
    }
    *mask = 0;
    for (int i = 0; i < n; i++) {
        int64_t a;
        if (!fe_const_int(L, items[i], "axis", -MAX_AXIS, MAX_AXIS, &a))
            return false;
        int64_t k = a < 0 ? a + s->rank : a;
        if (k < 0 || k >= s->rank) {
            diag_error(L->d, items[i]->loc, "axis %lld is out of range for a tensor of rank %d "
                                            "(shape %s)",
                       (long long)a, s->rank, shape_text(L, s));
            return false;
        }
        if (*mask >> k & 1) {
            diag_error(L->d, items[i]->loc, "axis %lld is given twice", (long long)a);
            return false;
        }
        *mask |= 1u << k;
    }
    return true;
}

/* x reduced by op over axis (all by default), keepdims; x already lowered. */
static Node *reduce_node(Lower *L, Op op, const Expr *call, const Expr **args, Node *x) {
    bool keepdims = false;
    if (args[2]) {
        if (args[2]->kind != EX_BOOL) {
            diag_error(L->d, args[2]->loc, "keepdims must be true or false, but this is %s",
                       fe_describe_expr(L, args[2]));
            return NULL;
        }
        keepdims = args[2]->u.boolean;
    }
    if (!x)
        return NULL;
    unsigned mask = 0;
    if (args[1] && !reduce_axes(L, args[1], &x->shape, &mask))
        return NULL;
    return ir_reduce(L->g, op, x, mask, keepdims, call->loc);
}

/* sum(x, axis = all, keepdims = false), mean(...) */
static Node *lower_reduce(Lower *L, const Builtin *b, const Expr *call, const Expr **args) {
    Node *x = fe_to_float(L, fe_lower_expr(L, args[0]), args[0]->loc);
    return reduce_node(L, b->op, call, args, x);
}

/* max(x, axis, keepdims) and min(...) reduce in a model; in an optimizer
 * rule or a hyperparameter, max(a, b) and min(a, b) are elementwise. min is
 * -max(-x). */
static Node *lower_minmax(Lower *L, const Builtin *b, const Expr *call, const Expr **args) {
    bool is_min = call->u.call.name[1] == 'i';
    Loc l = call->loc;
    if (L->in_rule) {
        if (!args[1] || args[2] || call->u.call.args.items[1].name) {
            diag_error(L->d, l, "in an optimizer, %s takes two values: %s(a, b)",
                       call->u.call.name, call->u.call.name);
            return NULL;
        }
        Node *a = fe_to_float(L, fe_lower_expr(L, args[0]), args[0]->loc);
        Node *c = fe_to_float(L, fe_lower_expr(L, args[1]), args[1]->loc);
        if (!is_min)
            return ir_binary(L->g, OP_MAX, a, c, l);
        Node *m = ir_binary(L->g, OP_MAX, ir_unary(L->g, OP_NEG, a, l),
                            ir_unary(L->g, OP_NEG, c, l), l);
        return ir_unary(L->g, OP_NEG, m, l);
    }
    Node *x = fe_to_float(L, fe_lower_expr(L, args[0]), args[0]->loc);
    if (!is_min)
        return reduce_node(L, b->op, call, args, x);
    return ir_unary(L->g, OP_NEG, reduce_node(L, b->op, call, args, ir_unary(L->g, OP_NEG, x, l)),
                    l);
}

/* norm(x) = sqrt(sum(x^2)): the L2 norm of all of x, a scalar */
static Node *lower_norm(Lower *L, const Builtin *b, const Expr *call, const Expr **args) {
    (void)b;
    Loc l = call->loc;
    Node *x = fe_to_float(L, fe_lower_expr(L, args[0]), args[0]->loc);
    Node *ss = ir_reduce(L->g, OP_SUM, ir_binary(L->g, OP_MUL, x, x, l), 0, false, l);
    return ir_unary(L->g, OP_SQRT, ss, l);
}

/* softmax(x, axis = -1), log_softmax(x, axis = -1) */
static Node *lower_softmax(Lower *L, const Builtin *b, const Expr *call, const Expr **args) {
    Node *x = fe_to_float(L, fe_lower_expr(L, args[0]), args[0]->loc);
    int64_t axis = -1;
    if (args[1] && !fe_const_int(L, args[1], "axis", -MAX_AXIS, MAX_AXIS, &axis))
        return NULL;
    return ir_softmax(L->g, b->op, x, (int)axis, call->loc);
}

/* The items of a list expression, or e alone. */
static const Expr *const *list_items(const Expr *const *e, int *n) {
    if ((*e)->kind == EX_LIST) {
        *n = (*e)->u.items.len;
        return (const Expr *const *)(*e)->u.items.items;
    }
    *n = 1;
    return e;
}

/* transpose(x): the axes reversed; transpose(x, axes = [0, 2, 1]): output
 * axis i is x's axis axes[i] (NumPy) */
static Node *lower_transpose(Lower *L, const Builtin *b, const Expr *call, const Expr **args) {
    (void)b;
    Node *x = fe_lower_expr(L, args[0]);
    if (!x || !args[1])
        return ir_transpose(L->g, x, NULL, call->loc);
    int n, perm[IR_MAX_RANK];
    const Expr *const *items = list_items(&args[1], &n);
    if (args[1]->kind != EX_LIST || n != x->shape.rank) {
        diag_error(L->d, args[1]->loc, "axes must list each of the %d axes of a tensor of shape "
                                       "%s once",
                   x->shape.rank, shape_text(L, &x->shape));
        return NULL;
    }
    unsigned seen = 0;
    for (int i = 0; i < n; i++) {
        int64_t a;
        if (!fe_const_int(L, items[i], "axis", -MAX_AXIS, MAX_AXIS, &a))
            return NULL;
        int64_t k = a < 0 ? a + n : a;
        if (k < 0 || k >= n || (seen >> k & 1)) {
            diag_error(L->d, items[i]->loc, "axis %lld is %s", (long long)a,
                       k < 0 || k >= n ? "out of range" : "given twice");
            return NULL;
        }
        seen |= 1u << k;
        perm[i] = (int)k;
    }
    return ir_transpose(L->g, x, perm, call->loc);
}

/* reshape(x, [d0, d1, ...]): the same elements in a new shape; B may be the
 * first dim when x has the batch dimension first, and one dim may be -1
 * (inferred) */
static Node *lower_reshape(Lower *L, const Builtin *b, const Expr *call, const Expr **args) {
    (void)b;
    Node *x = fe_lower_expr(L, args[0]);
    if (!x)
        return NULL;
    int n;
    const Expr *const *items = list_items(&args[1], &n);
    if (args[1]->kind != EX_LIST || n > IR_MAX_RANK) {
        diag_error(L->d, args[1]->loc, "the shape of reshape must be a list of at most %d "
                                       "dimensions, such as [B, 28, 28]",
                   IR_MAX_RANK);
        return NULL;
    }
    Shape s = {.rank = n};
    int infer = -1;
    int64_t known = 1;
    for (int i = 0; i < n; i++) {
        const Expr *e = items[i];
        if (e->kind == EX_NAME && !strcmp(e->u.name, "B") && !fe_lookup(L, "B")) {
            if (i != 0 || x->shape.rank == 0 || x->shape.d[0] != DIM_BATCH) {
                diag_error(L->d, e->loc, "B can only be the first dimension of reshape, and "
                                         "only of a tensor whose first dimension is B (this one "
                                         "is %s)",
                           shape_text(L, &x->shape));
                return NULL;
            }
            s.d[i] = DIM_BATCH;
            continue;
        }
        int64_t d;
        if (!fe_const_int(L, e, "a dimension", -1, 0x7fffffff, &d))
            return NULL;
        if (d == 0) {
            diag_error(L->d, e->loc, "a dimension must be positive (or -1 to infer it)");
            return NULL;
        }
        if (d == -1) {
            if (infer >= 0) {
                diag_error(L->d, e->loc, "only one dimension of reshape can be -1");
                return NULL;
            }
            infer = i;
            continue;
        }
        s.d[i] = d;
        known *= d;
    }
    bool xb = shape_has_batch(&x->shape), sb = shape_has_batch(&s);
    int64_t total = shape_numel(&x->shape, 1); /* per example when x has B */
    if (xb && !sb) {
        diag_error(L->d, call->loc, "reshape of %s must keep the batch dimension B first",
                   shape_text(L, &x->shape));
        return NULL;
    }
    if (infer >= 0) {
        if (known == 0 || total % known) {
            diag_error(L->d, call->loc, "cannot infer the -1 of reshape: %s has %lld elements%s, "
                                        "not a multiple of %lld",
                       shape_text(L, &x->shape), (long long)total, xb ? " per example" : "",
                       (long long)known);
            return NULL;
        }
        s.d[infer] = total / known;
        known = total;
    }
    if (known != total) {
        diag_error(L->d, call->loc, "cannot reshape %s into %s: %lld elements%s against %lld",
                   shape_text(L, &x->shape), shape_text(L, &s), (long long)total,
                   xb ? " per example" : "", (long long)known);
        return NULL;
    }
    return ir_reshape(L->g, x, &s, call->loc);
}

/* concat([a, b, ...], axis = -1): joined along axis */
static Node *lower_concat(Lower *L, const Builtin *b, const Expr *call, const Expr **args) {
    (void)b;
    if (args[0]->kind != EX_LIST || args[0]->u.items.len < 1) {
        diag_error(L->d, args[0]->loc, "concat takes a list of tensors, such as concat([a, b], "
                                       "axis = 1), but this is %s",
                   fe_describe_expr(L, args[0]));
        return NULL;
    }
    int64_t axis = -1;
    if (args[1] && !fe_const_int(L, args[1], "axis", -MAX_AXIS, MAX_AXIS, &axis))
        return NULL;
    const ExprVec *xs = &args[0]->u.items;
    Node *r = fe_to_float(L, fe_lower_expr(L, xs->items[0]), xs->items[0]->loc);
    bool ok = r != NULL;
    for (int i = 1; i < xs->len; i++) {
        Node *x = fe_to_float(L, fe_lower_expr(L, xs->items[i]), xs->items[i]->loc);
        ok &= x != NULL;
        r = ok ? ir_concat(L->g, r, x, (int)axis, call->loc) : NULL;
        ok = r != NULL;
    }
    return r;
}

/* onehot(ids, n): [..., n] floats, 1 at each id */
static Node *lower_onehot(Lower *L, const Builtin *b, const Expr *call, const Expr **args) {
    (void)b;
    Node *ids = fe_lower_expr(L, args[0]);
    int64_t n;
    if (!fe_const_int(L, args[1], "the number of classes", 1, 0x7fffffff, &n) || !ids)
        return NULL;
    if (ids->dtype != DT_INT) {
        diag_error(L->d, args[0]->loc, "onehot needs integer ids, but this is a float tensor");
        return NULL;
    }
    if (ids->shape.rank >= IR_MAX_RANK) {
        diag_error(L->d, call->loc, "onehot of ids of shape %s would have more than %d "
                                    "dimensions",
                   shape_text(L, &ids->shape), IR_MAX_RANK);
        return NULL;
    }
    return ir_onehot(L->g, ids, n, call->loc);
}

/* dropout(x, p): inverted dropout in training, the identity in eval and predict */
static Node *lower_dropout(Lower *L, const Builtin *b, const Expr *call, const Expr **args) {
    (void)b;
    Node *x = fe_to_float(L, fe_lower_expr(L, args[0]), args[0]->loc);
    double p;
    if (!fe_const_eval(L, args[1], &p))
        return NULL;
    if (!(p >= 0 && p < 1)) {
        diag_error(L->d, args[1]->loc, "the drop probability of dropout must be in [0, 1), but "
                                       "this is %g",
                   p);
        return NULL;
    }
    if (p == 0)
        return x;
    return ir_dropout(L->g, x, p, -1, call->loc);
}

/* The prediction and target of mse or bce as floats, which must have
 * exactly the same shape: a loss never broadcasts silently. *target_raw is
 * the target before conversion (to spot a model input). */
static bool loss_operands(Lower *L, const Expr *call, const Expr **args, Node **pred,
                          Node **target, Node **target_raw) {
    *pred = fe_to_float(L, fe_lower_expr(L, args[0]), args[0]->loc);
    *target_raw = fe_lower_expr(L, args[1]);
    *target = fe_to_float(L, *target_raw, args[1]->loc);
    if (!*pred || !*target)
        return false;
    if (!shape_eq(&(*pred)->shape, &(*target)->shape)) {
        diag_error(L->d, call->loc, "%s: prediction has shape %s but target has shape %s",
                   call->u.call.name, shape_text(L, &(*pred)->shape),
                   shape_text(L, &(*target)->shape));
        return false;
    }
    return true;
}

/* mse(pred, target) = mean((pred - target)^2) over every element */
static Node *lower_mse(Lower *L, const Builtin *b, const Expr *call, const Expr **args) {
    (void)b;
    Node *p, *t, *t_raw;
    if (!loss_operands(L, call, args, &p, &t, &t_raw))
        return NULL;
    Node *diff = ir_binary(L->g, OP_SUB, p, t, call->loc);
    return ir_reduce(L->g, OP_MEAN, ir_powc(L->g, diff, 2, call->loc), 0, false, call->loc);
}

/* mae(pred, target) = mean(|pred - target|) over every element */
static Node *lower_mae(Lower *L, const Builtin *b, const Expr *call, const Expr **args) {
    (void)b;
    Node *p, *t, *t_raw;
    if (!loss_operands(L, call, args, &p, &t, &t_raw))
        return NULL;
    Node *diff = ir_binary(L->g, OP_SUB, p, t, call->loc);
    return ir_reduce(L->g, OP_MEAN, ir_unary(L->g, OP_ABS, diff, call->loc), 0, false, call->loc);
}

/* bce(p, y) = mean(-(y log p + (1 - y) log(1 - p))) and bce_logits(z, y) =
 * bce(sigmoid(z), y), stably, over every element; metric: p > 0.5 (z > 0)
 * against y, when y is a model input. */
static Node *lower_bce(Lower *L, const Builtin *b, const Expr *call, const Expr **args) {
    L->metric_candidate = (Metric){0};
    Node *p, *t, *t_raw;
    if (!loss_operands(L, call, args, &p, &t, &t_raw))
        return NULL;
    Node *n = ir_reduce(L->g, OP_MEAN, ir_binary(L->g, b->op, p, t, call->loc), 0, false,
                        call->loc);
    double threshold = b->op == OP_BCE ? 0.5 : 0;
    if (n && t_raw->op == OP_INPUT)
        L->metric_candidate = (Metric){METRIC_THRESHOLD, p, t_raw->attr.leaf.index, threshold};
    return n;
}

/* The metric of a classification loss: argmax of scores against the
 * labels, when they are a model input. */
static void argmax_metric(Lower *L, Node *loss, Node *scores, Node *labels) {
    if (loss && labels->op == OP_INPUT)
        L->metric_candidate = (Metric){METRIC_ARGMAX, scores, labels->attr.leaf.index, 0};
}

/* cross_entropy(logits, labels) = mean over rows of -log softmax(logits)[label];
 * with a float target t of the logits' shape (probabilities), the mean over
 * rows of -sum(t * log_softmax(logits)) along the last axis. */
static Node *lower_xent(Lower *L, const Builtin *b, const Expr *call, const Expr **args) {
    (void)b;
    L->metric_candidate = (Metric){0};
    Node *logits = fe_to_float(L, fe_lower_expr(L, args[0]), args[0]->loc);
    Node *labels = fe_lower_expr(L, args[1]);
    if (!logits || !labels)
        return NULL;
    if (labels->dtype == DT_FLOAT && shape_eq(&labels->shape, &logits->shape)) {
        Loc l = call->loc;
        int last = logits->shape.rank - 1;
        if (last < 0) {
            diag_error(L->d, l, "cross_entropy needs logits with a class axis, not a scalar");
            return NULL;
        }
        Node *lsm = ir_softmax(L->g, OP_LOG_SOFTMAX, logits, last, l);
        Node *row = ir_reduce(L->g, OP_SUM, ir_binary(L->g, OP_MUL, labels, lsm, l), 1u << last,
                              false, l);
        return ir_reduce(L->g, OP_MEAN, ir_unary(L->g, OP_NEG, row, l), 0, false, l);
    }
    Node *n = ir_reduce(L->g, OP_MEAN, ir_xent(L->g, logits, labels, call->loc), 0, false,
                        call->loc);
    argmax_metric(L, n, logits, labels);
    return n;
}

/* nll(log_probs, labels) = mean over rows of -log_probs[label]: the sum
 * along the last axis of -log_probs * onehot(labels) */
static Node *lower_nll(Lower *L, const Builtin *b, const Expr *call, const Expr **args) {
    (void)b;
    L->metric_candidate = (Metric){0};
    Node *lp = fe_to_float(L, fe_lower_expr(L, args[0]), args[0]->loc);
    Node *labels = fe_lower_expr(L, args[1]);
    if (!lp || !labels)
        return NULL;
    Shape want = lp->shape;
    want.rank--;
    if (lp->shape.rank < 1 || labels->dtype != DT_INT || !shape_eq(&labels->shape, &want)) {
        diag_error(L->d, call->loc, "nll needs integer labels of shape %s for log-probabilities "
                                    "of shape %s, but the labels are %s of shape %s",
                   shape_text(L, &want), shape_text(L, &lp->shape),
                   labels->dtype == DT_INT ? "integers" : "floats",
                   shape_text(L, &labels->shape));
        return NULL;
    }
    Loc l = call->loc;
    int last = lp->shape.rank - 1;
    Node *oh = ir_onehot(L->g, labels, lp->shape.d[last], l);
    Node *picked = ir_reduce(L->g, OP_SUM, ir_binary(L->g, OP_MUL, oh, lp, l), 1u << last, false,
                             l);
    Node *n = ir_reduce(L->g, OP_MEAN, ir_unary(L->g, OP_NEG, picked, l), 0, false, l);
    argmax_metric(L, n, lp, labels);
    return n;
}

/* ---- layers: they create their parameters, named after the variable ---- */

/* The activations a layer can apply: (builtin name, He initialisation
 * before it). */
static const struct {
    const char *name;
    bool he;
} activations[] = {
    {"linear", false}, {"sigmoid", false}, {"tanh", false},      {"relu", true},
    {"leaky_relu", true}, {"gelu", true},   {"softplus", false},  {"softmax", false},
    {"log_softmax", false},
};
enum { NACTIVATIONS = sizeof activations / sizeof activations[0] };

/* dense(x, units, activation = linear, bias = true) = activation(x @ W + b)
 * with W [in, units] (He before ReLU-like activations, Glorot otherwise)
 * and b [units] = 0, named <target>.W and <target>.b */
static Node *lower_dense(Lower *L, const Builtin *b, const Expr *call, const Expr **args) {
    (void)b;
    Node *x = fe_to_float(L, fe_lower_expr(L, args[0]), args[0]->loc);
    int64_t units;
    if (!fe_const_int(L, args[1], "units", 1, 0x7fffffff, &units))
        return NULL;
    int act = 0;
    if (args[2]) {
        const Expr *a = args[2];
        const char *name = a->kind == EX_NAME ? a->u.name : a->kind == EX_STR ? a->u.str : NULL;
        act = -1;
        for (int i = 0; name && i < NACTIVATIONS; i++)
            if (!strcmp(activations[i].name, name))
                act = i;
        if (act < 0) {
            const char *names[NACTIVATIONS];
            for (int i = 0; i < NACTIVATIONS; i++)
                names[i] = activations[i].name;
            const char *best = name ? closest_name(name, names, NACTIVATIONS) : NULL;
            diag_error(L->d, a->loc, "unknown activation %s%s%s%s (expected linear, sigmoid, "
                                     "tanh, relu, leaky_relu, gelu, softplus, softmax or "
                                     "log_softmax)",
                       name ? "'" : "", name ? name : fe_describe_expr(L, a), name ? "'" : "",
                       best ? arena_printf(L->a, "; did you mean '%s'?", best) : "");
            return NULL;
        }
    }
    bool bias = true;
    if (args[3]) {
        if (args[3]->kind != EX_BOOL) {
            diag_error(L->d, args[3]->loc, "bias must be true or false, but this is %s",
                       fe_describe_expr(L, args[3]));
            return NULL;
        }
        bias = args[3]->u.boolean;
    }
    if (!x)
        return NULL;
    if (x->shape.rank < 1 || x->shape.d[x->shape.rank - 1] == DIM_BATCH) {
        diag_error(L->d, args[0]->loc, "dense needs features along the last axis, but the input "
                                       "has shape %s",
                   shape_text(L, &x->shape));
        return NULL;
    }
    Loc l = call->loc;
    const char *name = fe_instance_name(L);
    Shape ws = {2, {x->shape.d[x->shape.rank - 1], units}};
    Init wi = {.kind = activations[act].he ? INIT_HE : INIT_GLOROT};
    Node *w = fe_new_param(L, arena_printf(L->a, "%s.W", name), &ws, wi, l);
    Node *y;
    if (x->shape.rank == 1) { /* a single example: [in] -> [units] */
        Shape row = {2, {1, x->shape.d[0]}}, out = {1, {units}};
        y = ir_reshape(L->g, ir_matmul(L->g, ir_reshape(L->g, x, &row, l), w, false, false, l),
                       &out, l);
    } else {
        y = ir_matmul(L->g, x, w, false, false, l);
    }
    if (bias) {
        Shape bs = {1, {units}};
        y = ir_binary(L->g, OP_ADD, y,
                      fe_new_param(L, arena_printf(L->a, "%s.b", name), &bs,
                                   (Init){.kind = INIT_CONST}, l),
                      l);
    }
    const char *an = activations[act].name;
    if (!strcmp(an, "linear"))
        return y;
    if (!strcmp(an, "leaky_relu"))
        return ir_leaky_relu(L->g, y, 0.01, l);
    if (!strcmp(an, "softmax") || !strcmp(an, "log_softmax"))
        return ir_softmax(L->g, an[0] == 's' ? OP_SOFTMAX : OP_LOG_SOFTMAX, y, -1, l);
    return ir_unary(L->g, find_builtin(an)->op, y, l);
}

/* embedding(ids, vocab, dim) = E[ids] with E [vocab, dim] ~ normal(0, 1)
 * (PyTorch's nn.Embedding), named <target>.E */
static Node *lower_embedding(Lower *L, const Builtin *b, const Expr *call, const Expr **args) {
    (void)b;
    Node *ids = fe_lower_expr(L, args[0]);
    int64_t vocab, dim;
    if (!fe_const_int(L, args[1], "vocab", 1, 0x7fffffff, &vocab) ||
        !fe_const_int(L, args[2], "dim", 1, 0x7fffffff, &dim) || !ids)
        return NULL;
    Shape es = {2, {vocab, dim}};
    Node *e = fe_new_param(L, arena_printf(L->a, "%s.E", fe_instance_name(L)), &es,
                           (Init){.kind = INIT_NORMAL, .a = 0, .b = 1}, call->loc);
    return ir_gather(L->g, e, ids, call->loc);
}

static const char *const *builtin_names(Lower *L) {
    const char **names = arena_alloc(L->a, sizeof *names * NBUILTINS);
    for (int i = 0; i < NBUILTINS; i++)
        names[i] = builtins[i].name;
    return names;
}

Node *fe_lower_call(Lower *L, const Expr *call) {
    const char *name = call->u.call.name;
    const Builtin *b = find_builtin(name);
    const Stmt *fn = b ? NULL : fe_find_fn(L, name);
    if (fn)
        return fe_call_fn(L, fn, call);
    if (!b) {
        Sym *s = fe_lookup(L, name);
        const char *best = closest_name(name, builtin_names(L), NBUILTINS);
        for (int i = 0; !best && i < L->fns.len; i++)
            best = closest_name(name, &L->fns.items[i]->name, 1);
        if (!strcmp(name, "normal") || !strcmp(name, "uniform") || !strcmp(name, "glorot") ||
            !strcmp(name, "he"))
            diag_error(L->d, call->u.call.name_loc, "'%s' is an initializer; use it in a param "
                                                    "declaration: param W[...] ~ %s(...)",
                       name, name);
        else if (s)
            diag_error(L->d, call->u.call.name_loc, "'%s' is not a function", name);
        else if (best)
            diag_error(L->d, call->u.call.name_loc, "unknown function '%s'; did you mean '%s'?",
                       name, best);
        else
            diag_error(L->d, call->u.call.name_loc, "unknown function '%s'", name);
        return NULL;
    }
    const Expr *args[MAX_PARAMS];
    if (!fe_bind_args(L, call, name, b->nreq, b->nparams, b->params, args))
        return NULL;
    return b->lower(L, b, call, args);
}
