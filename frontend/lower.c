/* lower.c: the syntax tree to the forward graph: names, constants, shapes.
 *
 * Owns the scope (consts, inputs, params, variables), constant evaluation,
 * declarations (dims, initializers), expressions and the special statements
 * (loss, output). Function calls are builtin.c's and the train block is
 * train.c's. Shapes are checked by the ir_* builders, which report
 * mismatches themselves; this file must not re-derive shape rules. Requires
 * a tree without syntax errors.
 */
#include "lower.h"

#include <math.h>
#include <string.h>

/* ---- scope ------------------------------------------------------------------ */

static const char *sym_kind_name(SymKind k) {
    switch (k) {
    case SYM_CONST: return "const";
    case SYM_INPUT: return "input";
    case SYM_PARAM: return "param";
    case SYM_VAR: return "variable";
    }
    gc_unreachable();
}

/* The symbol name in the innermost scope, or NULL. */
static Sym *lookup_local(Lower *L, const char *name) {
    for (int i = L->scope_base; i < L->syms.len; i++)
        if (!strcmp(L->syms.items[i].name, name))
            return &L->syms.items[i];
    return NULL;
}

/* Locals first; in a function body, the caller's consts; then parameters
 * by their full (dotted) names, such as the "h.W" a layer made. */
Sym *fe_lookup(Lower *L, const char *name) {
    Sym *s = lookup_local(L, name);
    if (s)
        return s;
    for (int i = 0; i < L->scope_base; i++)
        if (!strcmp(L->syms.items[i].name, name) && L->syms.items[i].kind == SYM_CONST)
            return &L->syms.items[i];
    if (!strchr(name, '.'))
        return NULL;
    for (int i = 0; i < L->g->params.len; i++) {
        const Param *p = &L->g->params.items[i];
        if (!strcmp(p->name, name)) {
            Sym fresh = {.name = p->name, .kind = SYM_PARAM, .loc = p->loc, .node = p->node};
            vec_push(L->a, &L->syms, fresh);
            return &L->syms.items[L->syms.len - 1];
        }
    }
    return NULL;
}

static bool is_batch_name(const char *name) { return !strcmp(name, "B"); }

static void undefined_name(Lower *L, const char *name, Loc loc) {
    if (is_batch_name(name)) {
        diag_error(L->d, loc, "the batch dimension 'B' is not a value; it can only be the first "
                              "dimension of an input");
        return;
    }
    const char **cands = arena_alloc(L->a, sizeof *cands * (size_t)(L->syms.len + 1));
    for (int i = 0; i < L->syms.len; i++)
        cands[i] = L->syms.items[i].name;
    const char *best = closest_name(name, cands, L->syms.len);
    if (best)
        diag_error(L->d, loc, "undefined name '%s'; did you mean '%s'?", name, best);
    else if (fe_is_builtin(name))
        diag_error(L->d, loc, "'%s' is a function; call it: %s(...)", name, name);
    else
        diag_error(L->d, loc, "undefined name '%s'", name);
}

/* Whether a declaration (const, input, param) may take name; reports why not. */
static bool check_new_name(Lower *L, const char *name, Loc loc) {
    if (is_batch_name(name)) {
        diag_error(L->d, loc, "'B' is the batch dimension and cannot be redefined");
        return false;
    }
    Sym *old = fe_lookup(L, name);
    if (!old)
        return true;
    if (!old->loc.file) {
        diag_error(L->d, loc, "'%s' is predefined (%.17g) and cannot be redefined", name,
                   old->value);
        return false;
    }
    diag_error(L->d, loc, "redefinition of '%s'", name);
    diag_note(L->d, old->loc, "previous definition of '%s' is here", name);
    return false;
}

/* Whether an assignment or output may (re)bind name: variables only. */
static bool check_assign_name(Lower *L, const char *name, Loc loc) {
    if (is_batch_name(name)) {
        diag_error(L->d, loc, "'B' is the batch dimension and cannot be redefined");
        return false;
    }
    Sym *old = fe_lookup(L, name);
    if (!old || old->kind == SYM_VAR)
        return true;
    diag_error(L->d, loc, "cannot assign to %s '%s'", sym_kind_name(old->kind), name);
    if (old->loc.file)
        diag_note(L->d, old->loc, "'%s' is declared here", name);
    return false;
}

/* Binds name in the innermost scope (a new symbol, or rebinds a variable). */
static Sym *bind(Lower *L, const char *name, SymKind kind, Loc loc) {
    Sym *s = lookup_local(L, name);
    if (!s) {
        Sym fresh = {.name = name};
        vec_push(L->a, &L->syms, fresh);
        s = &L->syms.items[L->syms.len - 1];
    }
    *s = (Sym){.name = name, .kind = kind, .loc = loc};
    return s;
}

static void bind_node(Lower *L, const char *name, SymKind kind, Loc loc, Node *n) {
    Sym *s = bind(L, name, kind, loc);
    s->node = n;
    s->bad = n == NULL;
}

/* ---- constants ----------------------------------------------------------------- */

const char *fe_describe_expr(Lower *L, const Expr *e) {
    switch (e->kind) {
    case EX_NUM: return "a number";
    case EX_BOOL: return e->u.boolean ? "'true'" : "'false'";
    case EX_STR: return "a string";
    case EX_NAME: return arena_printf(L->a, "'%s'", e->u.name);
    case EX_NEG:
    case EX_BINARY: return "an expression";
    case EX_CALL: return arena_printf(L->a, "a call to '%s'", e->u.call.name);
    case EX_LIST: return "a list";
    case EX_INDEX: return "an indexing expression";
    }
    gc_unreachable();
}

bool fe_is_const(Lower *L, const Expr *e) {
    switch (e->kind) {
    case EX_NUM:
        return true;
    case EX_NAME: {
        Sym *s = fe_lookup(L, e->u.name);
        return s && s->kind == SYM_CONST;
    }
    case EX_NEG:
        return fe_is_const(L, e->u.operand);
    case EX_BINARY:
        return e->u.bin.op != BIN_MATMUL && fe_is_const(L, e->u.bin.lhs) && fe_is_const(L, e->u.bin.rhs);
    case EX_BOOL:
    case EX_STR:
    case EX_CALL:
    case EX_LIST:
    case EX_INDEX:
        return false;
    }
    gc_unreachable();
}

bool fe_const_eval(Lower *L, const Expr *e, double *out) {
    double a, b, v = 0;
    switch (e->kind) {
    case EX_NUM:
        *out = e->u.num;
        return true;
    case EX_NAME: {
        Sym *s = fe_lookup(L, e->u.name);
        if (!s) {
            undefined_name(L, e->u.name, e->loc);
            return false;
        }
        if (s->bad)
            return false;
        if (s->kind != SYM_CONST) {
            diag_error(L->d, e->loc, "expected a constant expression, but '%s' is %s %s",
                       e->u.name, s->kind == SYM_INPUT ? "an" : "a", sym_kind_name(s->kind));
            return false;
        }
        *out = s->value;
        return true;
    }
    case EX_NEG:
        if (!fe_const_eval(L, e->u.operand, &a))
            return false;
        *out = -a;
        return true;
    case EX_BINARY:
        if (e->u.bin.op == BIN_MATMUL) {
            diag_error(L->d, e->u.bin.op_loc, "'@' is not allowed in a constant expression");
            return false;
        }
        bool ok_a = fe_const_eval(L, e->u.bin.lhs, &a); /* both: report every mistake */
        bool ok_b = fe_const_eval(L, e->u.bin.rhs, &b);
        if (!ok_a || !ok_b)
            return false;
        switch (e->u.bin.op) {
        case BIN_ADD: v = a + b; break;
        case BIN_SUB: v = a - b; break;
        case BIN_MUL: v = a * b; break;
        case BIN_DIV:
            if (b == 0) {
                diag_error(L->d, e->loc, "division by zero in a constant expression");
                return false;
            }
            v = a / b;
            break;
        case BIN_POW: v = pow(a, b); break;
        case BIN_MATMUL: gc_unreachable();
        }
        if (!isfinite(v)) {
            diag_error(L->d, e->loc, "this constant expression is not a finite number");
            return false;
        }
        *out = v;
        return true;
    case EX_BOOL:
    case EX_STR:
    case EX_CALL:
    case EX_LIST:
    case EX_INDEX:
        break;
    }
    diag_error(L->d, e->loc, "expected a constant expression, found %s", fe_describe_expr(L, e));
    return false;
}

bool fe_const_int(Lower *L, const Expr *e, const char *what, int64_t min, int64_t max,
                  int64_t *out) {
    double v;
    if (!fe_const_eval(L, e, &v))
        return false;
    const char *range = min == 1 ? "a positive integer" : min == 0 ? "a non-negative integer"
                                                                   : "an integer";
    if (v != floor(v) || v < (double)min) {
        diag_error(L->d, e->loc, "%s must be %s, but this is %g", what, range, v);
        return false;
    }
    if (v > (double)max) {
        diag_error(L->d, e->loc, "%s must be at most %lld, but this is %g", what,
                   (long long)max, v);
        return false;
    }
    *out = (int64_t)v;
    return true;
}

/* ---- expressions ----------------------------------------------------------------- */

Node *fe_to_float(Lower *L, Node *x, Loc loc) {
    if (!x || x->dtype == DT_FLOAT)
        return x;
    return ir_unary(L->g, OP_CAST, x, loc);
}

static Op binop_op(BinOp op) {
    switch (op) {
    case BIN_ADD: return OP_ADD;
    case BIN_SUB: return OP_SUB;
    case BIN_MUL: return OP_MUL;
    case BIN_DIV: return OP_DIV;
    case BIN_MATMUL: return OP_MATMUL;
    case BIN_POW: return OP_POWC;
    }
    gc_unreachable();
}

/* lhs op rhs for + - * / @; an integer operand beside a float one is
 * converted, two integer operands are an error. */
static Node *lower_binary(Lower *L, const Expr *e) {
    const Expr *lhs = e->u.bin.lhs, *rhs = e->u.bin.rhs;
    if (e->u.bin.op == BIN_POW) {
        Node *base = fe_lower_expr(L, lhs);
        if (!fe_is_const(L, rhs) && L->in_rule) {
            Node *ex = fe_lower_expr(L, rhs);
            return ir_binary(L->g, OP_POW, fe_to_float(L, base, lhs->loc),
                             fe_to_float(L, ex, rhs->loc), e->loc);
        }
        if (!fe_is_const(L, rhs)) {
            diag_error(L->d, rhs->loc, "exponent of '^' must be a constant");
            return NULL;
        }
        double p;
        if (!fe_const_eval(L, rhs, &p))
            return NULL;
        return ir_powc(L->g, fe_to_float(L, base, lhs->loc), p, e->loc);
    }
    Node *a = fe_lower_expr(L, lhs), *b = fe_lower_expr(L, rhs);
    if (!a || !b)
        return NULL;
    if (a->dtype == DT_INT && b->dtype == DT_INT) {
        diag_error(L->d, e->loc, "cannot apply '%s' to two integer tensors",
                   ast_binop_str(e->u.bin.op));
        return NULL;
    }
    a = fe_to_float(L, a, lhs->loc);
    b = fe_to_float(L, b, rhs->loc);
    if (e->u.bin.op == BIN_MATMUL)
        return ir_matmul(L->g, a, b, false, false, e->loc);
    return ir_binary(L->g, binop_op(e->u.bin.op), a, b, e->loc);
}

Node *fe_lower_expr(Lower *L, const Expr *e) {
    if (fe_is_const(L, e)) {
        double v;
        return fe_const_eval(L, e, &v) ? ir_const(L->g, v, e->loc) : NULL;
    }
    switch (e->kind) {
    case EX_NAME: {
        Sym *s = fe_lookup(L, e->u.name);
        if (!s) {
            undefined_name(L, e->u.name, e->loc);
            return NULL;
        }
        return s->node; /* NULL when bad; a const is handled above */
    }
    case EX_NEG: {
        Node *x = fe_lower_expr(L, e->u.operand);
        return ir_unary(L->g, OP_NEG, fe_to_float(L, x, e->u.operand->loc), e->loc);
    }
    case EX_BINARY:
        return lower_binary(L, e);
    case EX_CALL:
        return fe_lower_call(L, e);
    case EX_LIST:
        diag_error(L->d, e->loc, "an array literal can only be the value of a param");
        return NULL;
    case EX_INDEX: {
        Node *table = fe_lower_expr(L, e->u.index.base);
        Node *ids = fe_lower_expr(L, e->u.index.index);
        return ir_gather(L->g, table, ids, e->loc);
    }
    case EX_NUM:
    case EX_BOOL:
    case EX_STR:
        break;
    }
    diag_error(L->d, e->loc, "expected a tensor expression, found %s", fe_describe_expr(L, e));
    return NULL;
}

/* ---- declarations ----------------------------------------------------------------- */

/* Bounds that keep element counts far from int64 overflow. */
#define MAX_DIM 0x7fffffff
#define MAX_NUMEL 1099511627776.0 /* 2^40 elements per example */

static char *shape_text(Lower *L, const Shape *s) {
    char buf[96];
    return arena_strdup(L->a, shape_str(s, buf, sizeof buf));
}

/* The shape written as dims; an input's first dim must be B, and B appears
 * nowhere else. false after an error. */
static bool lower_dims(Lower *L, const ExprVec *dims, Loc dims_loc, const Stmt *s, Shape *out) {
    bool is_input = s->kind == ST_INPUT;
    if (dims->len > IR_MAX_RANK) {
        diag_error(L->d, dims_loc, "'%s' has %d dimensions, but at most %d are supported", s->name,
                   dims->len, IR_MAX_RANK);
        return false;
    }
    bool ok = true;
    *out = (Shape){.rank = dims->len};
    for (int i = 0; i < dims->len; i++) {
        const Expr *e = dims->items[i];
        bool batch = e->kind == EX_NAME && is_batch_name(e->u.name) && !fe_lookup(L, "B");
        if (batch && is_input && i == 0) {
            out->d[0] = DIM_BATCH;
        } else if (batch) {
            if (ok) /* after a misplaced first dim, that error is enough */
                diag_error(L->d, e->loc, "the batch dimension B can only be the first dimension "
                                         "of an input");
            ok = false;
        } else if (is_input && i == 0) {
            diag_error(L->d, e->loc, "the first dimension of input '%s' must be the batch "
                                     "dimension B",
                       s->name);
            ok = false;
        } else {
            int64_t n;
            if (fe_const_int(L, e, "a dimension", 1, MAX_DIM, &n))
                out->d[i] = n;
            else
                ok = false;
        }
    }
    double numel = 1;
    for (int i = 0; i < out->rank && ok; i++)
        numel *= out->d[i] == DIM_BATCH ? 1 : (double)out->d[i];
    if (ok && numel > MAX_NUMEL) {
        diag_error(L->d, dims_loc, "'%s' has too many elements: %s is more than 2^40", s->name,
                   shape_text(L, out));
        ok = false;
    }
    return ok;
}

static const char *const initializer_names[] = {"normal", "uniform", "glorot", "he"};
enum { NINITIALIZERS = sizeof initializer_names / sizeof initializer_names[0] };

static bool is_initializer(const char *name) {
    for (int i = 0; i < NINITIALIZERS; i++)
        if (!strcmp(initializer_names[i], name))
            return true;
    return false;
}

/* The shape of a nested array literal, from its first elements. */
static bool literal_shape(Lower *L, const Expr *e, Shape *out) {
    *out = (Shape){0};
    for (; e->kind == EX_LIST; e = e->u.items.items[0]) {
        if (e->u.items.len == 0) {
            diag_error(L->d, e->loc, "empty array literal");
            return false;
        }
        if (out->rank == IR_MAX_RANK) {
            diag_error(L->d, e->loc, "array literal has more than %d dimensions", IR_MAX_RANK);
            return false;
        }
        out->d[out->rank++] = e->u.items.len;
    }
    return true;
}

/* Flattens a literal of shape s (from depth on) into vals; checks that it
 * is rectangular. */
static bool literal_values(Lower *L, const Expr *e, const Shape *s, int depth, double *vals,
                           int64_t *n) {
    if (depth == s->rank) {
        if (e->kind == EX_LIST) {
            diag_error(L->d, e->loc, "expected a number here, found a list (the array literal "
                                     "is not rectangular)");
            return false;
        }
        return fe_const_eval(L, e, &vals[(*n)++]);
    }
    if (e->kind != EX_LIST || e->u.items.len != s->d[depth]) {
        if (e->kind != EX_LIST)
            diag_error(L->d, e->loc, "expected a list of %lld numbers here, found %s",
                       (long long)s->d[depth], fe_describe_expr(L, e));
        else
            diag_error(L->d, e->loc, "this row has length %d, but the first row has length %lld "
                                     "(the array literal is not rectangular)",
                       e->u.items.len, (long long)s->d[depth]);
        return false;
    }
    bool ok = true;
    for (int i = 0; i < e->u.items.len && ok; i++)
        ok = literal_values(L, e->u.items.items[i], s, depth + 1, vals, n);
    return ok;
}

/* param ... = value: a constant or an array literal. */
static bool init_value(Lower *L, const Stmt *s, Shape *shape, Init *init) {
    const Expr *v = s->value;
    if (v->kind == EX_LIST) {
        Shape ls;
        if (!literal_shape(L, v, &ls))
            return false;
        if (s->u.param.has_dims && !shape_eq(&ls, shape)) {
            diag_error(L->d, v->loc, "param '%s' is declared with shape %s, but its value has "
                                     "shape %s",
                       s->name, shape_text(L, shape), shape_text(L, &ls));
            return false;
        }
        *shape = ls;
        int64_t numel = shape_numel(&ls, 1), n = 0;
        double *vals = arena_alloc(L->a, sizeof *vals * (size_t)numel);
        if (!literal_values(L, v, &ls, 0, vals, &n))
            return false;
        *init = (Init){.kind = INIT_VALUES, .values = vals, .nvalues = numel};
        return true;
    }
    const char *fname = v->kind == EX_NAME ? v->u.name : v->kind == EX_CALL ? v->u.call.name : NULL;
    if (fname && is_initializer(fname) && !fe_lookup(L, fname)) {
        diag_error(L->d, v->loc, "'%s' is an initializer: write param %s ~ %s", fname, s->name,
                   fname);
        return false;
    }
    double a;
    if (!fe_const_eval(L, v, &a))
        return false;
    *init = (Init){.kind = INIT_CONST, .a = a};
    return true;
}

/* param ... ~ initializer: normal(mean = 0, std = 1), uniform(lo = 0,
 * hi = 1), glorot, he; bare or called. */
static bool init_sample(Lower *L, const Stmt *s, const Shape *shape, Init *init) {
    const Expr *v = s->value;
    const char *fname = v->kind == EX_NAME ? v->u.name : v->kind == EX_CALL ? v->u.call.name : NULL;
    if (!fname) {
        diag_error(L->d, v->loc, "expected an initializer after '~' (normal, uniform, glorot or "
                                 "he), found %s; to give a value use '='",
                   fe_describe_expr(L, v));
        return false;
    }
    if (!is_initializer(fname)) {
        const char *best = closest_name(fname, initializer_names, NINITIALIZERS);
        if (best)
            diag_error(L->d, v->loc, "unknown initializer '%s'; did you mean '%s'?", fname, best);
        else
            diag_error(L->d, v->loc, "unknown initializer '%s' (expected normal, uniform, glorot "
                                     "or he)",
                       fname);
        return false;
    }
    static const char *const normal_params[] = {"mean", "std"};
    static const char *const uniform_params[] = {"lo", "hi"};
    bool normal = !strcmp(fname, "normal"), uniform = !strcmp(fname, "uniform");
    const Expr *args[2] = {NULL, NULL};
    if (v->kind == EX_CALL &&
        !fe_bind_args(L, v, fname, 0, normal || uniform ? 2 : 0,
                      normal ? normal_params : uniform_params, args))
        return false;
    if (normal || uniform) {
        double p[2] = {0, 1};
        for (int i = 0; i < 2; i++)
            if (args[i] && !fe_const_eval(L, args[i], &p[i]))
                return false;
        if (normal && p[1] < 0) {
            diag_error(L->d, args[1]->loc, "std of normal must not be negative, but this is %g",
                       p[1]);
            return false;
        }
        if (uniform && p[0] > p[1]) {
            diag_error(L->d, v->loc, "uniform needs lo <= hi, but lo is %g and hi is %g", p[0],
                       p[1]);
            return false;
        }
        *init = (Init){.kind = normal ? INIT_NORMAL : INIT_UNIFORM, .a = p[0], .b = p[1]};
        return true;
    }
    if (shape->rank < 2) {
        diag_error(L->d, v->loc, "%s needs the fan-in and fan-out of a matrix, but param '%s' has "
                                 "shape %s",
                   fname, s->name, shape_text(L, shape));
        return false;
    }
    *init = (Init){.kind = !strcmp(fname, "he") ? INIT_HE : INIT_GLOROT};
    return true;
}

/* The span of `name[dims]`, or of the name alone. */
static Loc decl_loc(const Stmt *s, bool has_dims, Loc dims_loc) {
    Loc l = s->name_loc;
    if (has_dims && dims_loc.line == l.line)
        l.len = dims_loc.col + dims_loc.len - l.col;
    return l;
}

static void lower_input(Lower *L, const Stmt *s) {
    if (!check_new_name(L, s->name, s->name_loc))
        return;
    Shape shape;
    if (!lower_dims(L, &s->u.input.dims, s->u.input.dims_loc, s, &shape)) {
        bind_node(L, s->name, SYM_INPUT, s->name_loc, NULL);
        return;
    }
    Loc loc = decl_loc(s, true, s->u.input.dims_loc);
    Node *n = ir_input(L->g, s->name, s->u.input.is_int ? DT_INT : DT_FLOAT, &shape, loc);
    bind_node(L, s->name, SYM_INPUT, s->name_loc, n);
}

static void lower_param(Lower *L, const Stmt *s) {
    if (!check_new_name(L, s->name, s->name_loc))
        return;
    Shape shape = {0};
    Init init = {0};
    bool ok = !s->u.param.has_dims ||
              lower_dims(L, &s->u.param.dims, s->u.param.dims_loc, s, &shape);
    if (ok && s->u.param.init_op == PINIT_VALUE)
        ok = init_value(L, s, &shape, &init);
    else if (ok)
        ok = init_sample(L, s, &shape, &init);
    Node *n = NULL;
    if (ok)
        n = ir_param(L->g, arena_printf(L->a, "%s%s", L->prefix, s->name), &shape, init,
                     decl_loc(s, s->u.param.has_dims, s->u.param.dims_loc));
    bind_node(L, s->name, SYM_PARAM, s->name_loc, n);
}

const char *fe_instance_name(Lower *L) {
    const char *base = arena_printf(L->a, "%s%s", L->prefix, L->target ? L->target : "layer");
    const char *name = base;
    for (int k = 1;; k++) {
        size_t n = strlen(name);
        bool taken = false;
        for (int i = 0; i < L->g->params.len && !taken; i++) {
            const char *p = L->g->params.items[i].name;
            taken = !strncmp(p, name, n) && p[n] == '.';
        }
        if (!taken)
            return name;
        name = arena_printf(L->a, "%s_%d", base, k);
    }
}

Node *fe_new_param(Lower *L, const char *name, const Shape *s, Init init, Loc loc) {
    return ir_param(L->g, name, s, init, loc);
}

static void lower_const(Lower *L, const Stmt *s) {
    if (!check_new_name(L, s->name, s->name_loc))
        return;
    double v = 0;
    bool ok = fe_const_eval(L, s->value, &v);
    Sym *sym = bind(L, s->name, SYM_CONST, s->name_loc);
    sym->value = v;
    sym->bad = !ok;
}

/* ---- statements -------------------------------------------------------------------- */

static void name_node(Node *n, const char *name) {
    if (n && !n->name)
        n->name = name;
}

/* loss = expr: the scalar that training minimizes. */
static void lower_loss(Lower *L, const Stmt *s) {
    if (L->loss_stmt) {
        diag_error(L->d, s->name_loc, "redefinition of 'loss': a model has one loss");
        diag_note(L->d, L->loss_stmt->name_loc, "previous definition of 'loss' is here");
        return;
    }
    L->loss_stmt = s;
    L->metric_candidate = (Metric){0};
    Node *n = fe_lower_expr(L, s->value);
    if (n && n->shape.rank != 0) {
        diag_error(L->d, s->value->loc, "loss must be a scalar, but this has shape %s (reduce it "
                                        "with mean(...) or sum(...))",
                   shape_text(L, &n->shape));
        n = NULL;
    }
    name_node(n, s->name);
    bind_node(L, s->name, SYM_VAR, s->name_loc, n);
    if (!n)
        return;
    L->g->loss = n;
    const Expr *v = s->value;
    static const char *const scored[] = {"cross_entropy", "nll", "bce", "bce_logits"};
    for (size_t i = 0; v->kind == EX_CALL && i < sizeof scored / sizeof scored[0]; i++)
        if (!strcmp(v->u.call.name, scored[i]))
            L->g->metric = L->metric_candidate;
}

static void lower_output(Lower *L, const Stmt *s) {
    for (int i = 0; i < L->g->outputs.len; i++) {
        if (!strcmp(L->g->outputs.items[i].name, s->name)) {
            diag_error(L->d, s->name_loc, "duplicate output '%s'", s->name);
            Sym *old = fe_lookup(L, s->name);
            if (old)
                diag_note(L->d, old->loc, "previous definition of '%s' is here", s->name);
            return;
        }
    }
    if (!check_assign_name(L, s->name, s->name_loc))
        return;
    Node *n = fe_lower_expr(L, s->value);
    name_node(n, s->name);
    bind_node(L, s->name, SYM_VAR, s->name_loc, n);
    if (n) {
        Output o = {s->name, n};
        vec_push(L->a, &L->g->outputs, o);
    }
}

void fe_lower_stmt(Lower *L, const Stmt *s) {
    L->target = s->kind == ST_ASSIGN || s->kind == ST_OUTPUT ? s->name : NULL;
    switch (s->kind) {
    case ST_CONST:
        lower_const(L, s);
        return;
    case ST_INPUT:
        lower_input(L, s);
        return;
    case ST_PARAM:
        lower_param(L, s);
        return;
    case ST_ASSIGN:
        if (!check_assign_name(L, s->name, s->name_loc))
            return;
        if (!strcmp(s->name, "loss") && L->calls.len == 0 && !L->in_rule) {
            lower_loss(L, s);
        } else {
            Node *n = fe_lower_expr(L, s->value);
            name_node(n, s->name);
            bind_node(L, s->name, SYM_VAR, s->name_loc, n);
        }
        return;
    case ST_OUTPUT:
        lower_output(L, s);
        return;
    case ST_TRAIN:
        if (L->train_stmt) {
            diag_error(L->d, s->loc, "a model has one train block");
            diag_note(L->d, L->train_stmt->loc, "the first train block is here");
            return;
        }
        L->train_stmt = s; /* lowered last: it may name inputs declared after it */
        return;
    case ST_FN: /* collected before the statements; instantiated by calls */
    case ST_OPTIMIZER: /* collected too; instantiated by fe_build_training */
        return;
    case ST_STATE: /* only in an optimizer's body, which optim.c lowers */
        gc_unreachable();
    case ST_RETURN:
        diag_error(L->d, s->loc, "'return' outside a function");
        return;
    }
    gc_unreachable();
}

/* The user functions, before any statement, so that a function may be
 * called above its definition; a name is defined once and is not a
 * builtin's. */
static void collect_fns(Lower *L, const AstFile *ast) {
    for (int i = 0; i < ast->stmts.len; i++) {
        const Stmt *s = ast->stmts.items[i];
        if (s->kind == ST_OPTIMIZER)
            fe_add_optimizer(L, s);
        if (s->kind != ST_FN)
            continue;
        const Stmt *old = fe_find_fn(L, s->name);
        if (old) {
            diag_error(L->d, s->name_loc, "redefinition of function '%s'", s->name);
            diag_note(L->d, old->name_loc, "previous definition of '%s' is here", s->name);
        } else if (fe_is_builtin(s->name)) {
            diag_error(L->d, s->name_loc, "'%s' is a builtin function and cannot be redefined",
                       s->name);
        } else {
            vec_push(L->a, &L->fns, s);
        }
    }
}

void fe_lower(Lower *L, const AstFile *ast) {
    L->prefix = "";
    Sym pi = {.name = "pi", .kind = SYM_CONST, .value = 3.14159265358979323846};
    vec_push(L->a, &L->syms, pi); /* predefined: its Loc has no file */
    collect_fns(L, ast);
    for (int i = 0; i < ast->stmts.len; i++)
        fe_lower_stmt(L, ast->stmts.items[i]);
    if (L->train_stmt)
        fe_lower_train(L, L->train_stmt);
}
