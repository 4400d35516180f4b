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

enum { MAX_PARAMS = 3, MAX_AXIS = 1 << 30 };

/* Columns: name, op (for the generic lowerings), required and total
 * parameter counts, parameter names in positional order, lowering. */
struct Builtin {
    const char *name;
    Op op;
    int nreq, nparams;
    const char *params[MAX_PARAMS];
    LowerFn *lower;
};

static LowerFn lower_unary, lower_reduce, lower_softmax, lower_transpose, lower_mse, lower_bce,
    lower_xent;

static const Builtin builtins[] = {
    {"exp", OP_EXP, 1, 1, {"x"}, lower_unary},
    {"log", OP_LOG, 1, 1, {"x"}, lower_unary},
    {"sqrt", OP_SQRT, 1, 1, {"x"}, lower_unary},
    {"tanh", OP_TANH, 1, 1, {"x"}, lower_unary},
    {"sigmoid", OP_SIGMOID, 1, 1, {"x"}, lower_unary},
    {"relu", OP_RELU, 1, 1, {"x"}, lower_unary},
    {"sum", OP_SUM, 1, 3, {"x", "axis", "keepdims"}, lower_reduce},
    {"mean", OP_MEAN, 1, 3, {"x", "axis", "keepdims"}, lower_reduce},
    {"softmax", OP_SOFTMAX, 1, 2, {"x", "axis"}, lower_softmax},
    {"log_softmax", OP_LOG_SOFTMAX, 1, 2, {"x", "axis"}, lower_softmax},
    {"transpose", OP_TRANSPOSE, 1, 1, {"x"}, lower_transpose},
    {"mse", OP_SUB, 2, 2, {"pred", "target"}, lower_mse},
    {"bce", OP_BCE, 2, 2, {"pred", "target"}, lower_bce},
    {"cross_entropy", OP_XENT, 2, 2, {"logits", "labels"}, lower_xent},
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

/* sum(x, axis = all, keepdims = false), mean(...) */
static Node *lower_reduce(Lower *L, const Builtin *b, const Expr *call, const Expr **args) {
    Node *x = fe_to_float(L, fe_lower_expr(L, args[0]), args[0]->loc);
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
    return ir_reduce(L->g, b->op, x, mask, keepdims, call->loc);
}

/* softmax(x, axis = -1), log_softmax(x, axis = -1) */
static Node *lower_softmax(Lower *L, const Builtin *b, const Expr *call, const Expr **args) {
    Node *x = fe_to_float(L, fe_lower_expr(L, args[0]), args[0]->loc);
    int64_t axis = -1;
    if (args[1] && !fe_const_int(L, args[1], "axis", -MAX_AXIS, MAX_AXIS, &axis))
        return NULL;
    return ir_softmax(L->g, b->op, x, (int)axis, call->loc);
}

/* transpose(x): the axes reversed */
static Node *lower_transpose(Lower *L, const Builtin *b, const Expr *call, const Expr **args) {
    (void)b;
    return ir_transpose(L->g, fe_lower_expr(L, args[0]), NULL, call->loc);
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

/* bce(p, y) = mean(-(y log p + (1 - y) log(1 - p))) over every element;
 * metric: p > 0.5 against y, when y is a model input. */
static Node *lower_bce(Lower *L, const Builtin *b, const Expr *call, const Expr **args) {
    (void)b;
    L->metric_candidate = (Metric){0};
    Node *p, *t, *t_raw;
    if (!loss_operands(L, call, args, &p, &t, &t_raw))
        return NULL;
    Node *n = ir_reduce(L->g, OP_MEAN, ir_binary(L->g, OP_BCE, p, t, call->loc), 0, false,
                        call->loc);
    if (n && t_raw->op == OP_INPUT)
        L->metric_candidate = (Metric){METRIC_THRESHOLD, p, t_raw->attr.leaf.index, 0.5};
    return n;
}

/* cross_entropy(logits, labels) = mean over rows of -log softmax(logits)[label];
 * metric: argmax of logits against the labels, when they are a model input. */
static Node *lower_xent(Lower *L, const Builtin *b, const Expr *call, const Expr **args) {
    (void)b;
    L->metric_candidate = (Metric){0};
    Node *logits = fe_to_float(L, fe_lower_expr(L, args[0]), args[0]->loc);
    Node *labels = fe_lower_expr(L, args[1]);
    Node *n = ir_reduce(L->g, OP_MEAN, ir_xent(L->g, logits, labels, call->loc), 0, false,
                        call->loc);
    if (n && labels->op == OP_INPUT)
        L->metric_candidate = (Metric){METRIC_ARGMAX, logits, labels->attr.leaf.index, 0};
    return n;
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
    if (!b) {
        Sym *s = fe_lookup(L, name);
        const char *best = closest_name(name, builtin_names(L), NBUILTINS);
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
