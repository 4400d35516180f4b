/* optim.c: optimizer rules, `optimizer NAME(hyper = default, ...) { ... }`,
 * lowered into the update of every parameter.
 *
 * Owns the rules (the prelude's and the model's), the optimizer call of the
 * train block or the command line and its hyperparameters (constants, or
 * schedules: expressions of t, epoch and epochs), global gradient-norm
 * clipping, and instantiating a rule's body once per parameter: p bound to
 * the parameter, g to its (clipped) gradient, each `state` to a STATE leaf
 * of its own, then an ASSIGN of the final value of p and of each state
 * written. Must not know any rule by name: sgd, adam and the others are
 * text in prelude.nn.
 *
 * A constant hyperparameter is a HYPER leaf named after it, which the
 * runtime stores when a session starts (so --lr needs no recompilation);
 * a schedule is computed in the graph from the HYPER leaves t, epoch and
 * epochs. A state starts at a constant: its initialiser may use numbers,
 * consts and constant hyperparameters.
 */
#include "lower.h"

#include <math.h>
#include <string.h>

#include "prelude.inc"

enum { MAX_HYPERS = 32 };

/* ---- the rules ------------------------------------------------------------------ */

static const Stmt *find_rule(Lower *L, const char *name) {
    for (int i = 0; i < L->optimizers.len; i++)
        if (!strcmp(L->optimizers.items[i]->name, name))
            return L->optimizers.items[i];
    return NULL;
}

void fe_add_optimizer(Lower *L, const Stmt *s) {
    const Stmt *old = find_rule(L, s->name);
    if (old) {
        diag_error(L->d, s->name_loc, "redefinition of optimizer '%s'", s->name);
        diag_note(L->d, old->name_loc, "previous definition of '%s' is here", s->name);
        return;
    }
    vec_push(L->a, &L->optimizers, s);
}

/* The prelude's rules after the model's, which take precedence. Parsed on
 * first use; a syntax error in it is a bug of gradc. */
static void load_prelude(Lower *L) {
    static const char path[] = "<prelude>";
    for (int i = 0; i < L->optimizers.len; i++)
        if (L->optimizers.items[i]->loc.file && !strcmp(L->optimizers.items[i]->loc.file->path, path))
            return;
    SrcFile *f = arena_alloc(L->a, sizeof *f);
    f->path = path;
    f->text = prelude_text;
    f->len = sizeof prelude_text - 1;
    AstFile *ast = parse_file(L->a, L->d, f);
    gc_assert(L->d->nerrors == 0);
    for (int i = 0; i < ast->stmts.len; i++)
        if (ast->stmts.items[i]->kind == ST_OPTIMIZER && !find_rule(L, ast->stmts.items[i]->name))
            vec_push(L->a, &L->optimizers, ast->stmts.items[i]);
}

const char *const *fe_optimizer_names(const Model *m, int *n) {
    Lower *L = m->lower;
    load_prelude(L);
    const char **names = arena_alloc(L->a, sizeof *names * (size_t)(L->optimizers.len + 1));
    for (int i = 0; i < L->optimizers.len; i++)
        names[i] = L->optimizers.items[i]->name;
    *n = L->optimizers.len;
    return names;
}

/* ---- scopes ---------------------------------------------------------------------- */

/* A scope over the file's consts only (a function body's view), with the
 * step hypers t, epoch and epochs, for hyperparameters and rule bodies. */
typedef struct Scope {
    int saved_base, saved_len;
    bool saved_rule;
} Scope;

static void bind_var(Lower *L, const char *name, Node *n, Loc loc) {
    Sym s = {.name = name, .kind = SYM_VAR, .loc = loc, .node = n, .bad = n == NULL};
    vec_push(L->a, &L->syms, s);
}

/* Whether any of the n expressions es, or any statement of body, reads name. */
static bool reads_name(const Expr *e, const char *name);

static bool any_reads(const Expr *const *es, int n, const StmtVec *body, const char *name) {
    for (int i = 0; i < n; i++)
        if (es[i] && reads_name(es[i], name))
            return true;
    for (int i = 0; body && i < body->len; i++)
        if (body->items[i]->value && reads_name(body->items[i]->value, name))
            return true;
    return false;
}

/* Opens the scope for the n expressions es or the statements of body: the
 * step hypers they read (made on first use, so that a rule without a
 * schedule has none). */
static Scope open_scope(Lower *L, const Expr *const *es, int n, const StmtVec *body) {
    Scope sc = {L->scope_base, L->syms.len, L->in_rule};
    L->scope_base = L->syms.len;
    L->in_rule = true;
    static const struct {
        const char *name;
        HyperKind kind;
    } step[] = {{"t", HYPER_STEP}, {"epoch", HYPER_EPOCH}, {"epochs", HYPER_EPOCHS}};
    for (int i = 0; i < 3; i++)
        if (any_reads(es, n, body, step[i].name))
            bind_var(L, step[i].name, ir_hyper_kind(L->g, step[i].kind), (Loc){0});
    return sc;
}

static void close_scope(Lower *L, Scope sc) {
    L->syms.len = sc.saved_len;
    L->scope_base = sc.saved_base;
    L->in_rule = sc.saved_rule;
}

static bool is_step_name(const char *name) {
    return !strcmp(name, "t") || !strcmp(name, "epoch") || !strcmp(name, "epochs");
}

/* ---- hyperparameters ---------------------------------------------------------------- */

typedef struct HyperVal {
    const char *name;
    Node *node;      /* a HYPER leaf, or the schedule's value */
    bool constant;   /* node is a HYPER_VALUE leaf holding value */
    double value;
} HyperVal;

/* The value of hyperparameter `name` written as e (an argument or the
 * default): true and false are 1 and 0; a constant becomes the HYPER leaf
 * `name`; anything else is a schedule. */
static bool lower_hyper(Lower *L, const char *name, const Expr *e, HyperVal *out) {
    *out = (HyperVal){.name = name};
    if (e->kind == EX_BOOL || fe_is_const(L, e)) {
        double v = e->kind == EX_BOOL ? e->u.boolean : 0;
        if (e->kind != EX_BOOL && !fe_const_eval(L, e, &v))
            return false;
        out->constant = true;
        out->value = v;
        out->node = ir_hyper(L->g, name, v);
        return true;
    }
    Node *n = fe_lower_expr(L, e);
    if (n && n->shape.rank != 0) {
        char buf[64];
        diag_error(L->d, e->loc, "hyperparameter '%s' must be a scalar, but this has shape %s",
                   name, shape_str(&n->shape, buf, sizeof buf));
        return false;
    }
    out->node = n;
    return n != NULL;
}

/* ---- state initialisers ------------------------------------------------------------ */

/* A state's initial value: numbers, consts and constant hyperparameters
 * under + - * / ^ and unary minus. */
static bool init_value(Lower *L, const Expr *e, const HyperVal *hv, int nh, double *out) {
    double a, b;
    switch (e->kind) {
    case EX_NUM:
        *out = e->u.num;
        return true;
    case EX_NAME:
        for (int i = 0; i < nh; i++) {
            if (strcmp(hv[i].name, e->u.name))
                continue;
            if (!hv[i].constant) {
                diag_error(L->d, e->loc, "a state starts at a constant, but hyperparameter '%s' "
                                         "is a schedule here",
                           e->u.name);
                return false;
            }
            *out = hv[i].value;
            return true;
        }
        return fe_const_eval(L, e, out);
    case EX_NEG:
        if (!init_value(L, e->u.operand, hv, nh, &a))
            return false;
        *out = -a;
        return true;
    case EX_BINARY:
        if (e->u.bin.op == BIN_MATMUL)
            break;
        if (!init_value(L, e->u.bin.lhs, hv, nh, &a) || !init_value(L, e->u.bin.rhs, hv, nh, &b))
            return false;
        switch (e->u.bin.op) {
        case BIN_ADD: *out = a + b; break;
        case BIN_SUB: *out = a - b; break;
        case BIN_MUL: *out = a * b; break;
        case BIN_DIV: *out = a / b; break;
        case BIN_POW: *out = pow(a, b); break;
        case BIN_MATMUL: gc_unreachable();
        }
        if (!isfinite(*out)) {
            diag_error(L->d, e->loc, "this initial value is not a finite number");
            return false;
        }
        return true;
    case EX_BOOL:
    case EX_STR:
    case EX_CALL:
    case EX_LIST:
    case EX_INDEX:
        break;
    }
    diag_error(L->d, e->loc, "a state starts at a constant (numbers, consts and hyperparameters), "
                             "but this is %s",
               fe_describe_expr(L, e));
    return false;
}

/* ---- rule bodies ------------------------------------------------------------------- */

static bool reads_name(const Expr *e, const char *name) {
    switch (e->kind) {
    case EX_NAME:
        return !strcmp(e->u.name, name);
    case EX_NEG:
        return reads_name(e->u.operand, name);
    case EX_BINARY:
        return reads_name(e->u.bin.lhs, name) || reads_name(e->u.bin.rhs, name);
    case EX_INDEX:
        return reads_name(e->u.index.base, name) || reads_name(e->u.index.index, name);
    case EX_CALL:
        for (int i = 0; i < e->u.call.args.len; i++)
            if (reads_name(e->u.call.args.items[i].value, name))
                return true;
        return false;
    case EX_LIST:
        for (int i = 0; i < e->u.items.len; i++)
            if (reads_name(e->u.items.items[i], name))
                return true;
        return false;
    case EX_NUM:
    case EX_BOOL:
    case EX_STR:
        return false;
    }
    gc_unreachable();
}

/* The source line of s, for the provenance of the nodes it makes. */
static const char *stmt_text(Lower *L, const Stmt *s) {
    const SrcFile *f = s->loc.file;
    if (!f)
        return NULL;
    const char *p = f->text;
    for (int line = 1; line < s->loc.line && *p; p++)
        if (*p == '\n')
            line++;
    const char *end = strchr(p, '\n');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    while (n && (*p == ' ' || *p == '\t'))
        p++, n--;
    return arena_printf(L->a, "%.*s", (int)n, p);
}

typedef struct RuleState {
    const Stmt *decl;
    Node *leaf;
} RuleState;

/* Whether assigning name in a rule is allowed; reports why not. */
static bool rule_assignable(Lower *L, const Stmt *rule, const Stmt *s, const HyperVal *hv,
                            int nh) {
    for (int i = 0; i < nh; i++)
        if (!strcmp(hv[i].name, s->name)) {
            diag_error(L->d, s->name_loc, "cannot assign to hyperparameter '%s' of optimizer "
                                          "'%s'",
                       s->name, rule->name);
            return false;
        }
    if (is_step_name(s->name)) {
        diag_error(L->d, s->name_loc, "cannot assign to '%s': it is the runtime's step counter",
                   s->name);
        return false;
    }
    if (!fe_lookup(L, s->name) && reads_name(s->value, s->name)) {
        diag_error(L->d, s->value->loc, "'%s' is read before it has a value", s->name);
        diag_note(L->d, s->name_loc, "to keep '%s' from one step to the next, declare it: "
                                     "state %s = 0",
                  s->name, s->name);
        return false;
    }
    return true;
}

/* The body of rule for parameter number pi: its update. */
static bool instantiate(Lower *L, const Stmt *rule, int pi, Node *grad, const HyperVal *hv,
                        int nh) {
    Graph *g = L->g;
    Param *par = &g->params.items[pi];
    int errors = L->d->nerrors;
    Scope sc = open_scope(L, NULL, 0, &rule->u.fn.body);
    for (int i = 0; i < nh; i++)
        bind_var(L, hv[i].name, hv[i].node, rule->name_loc);
    bind_var(L, "p", par->node, rule->name_loc);
    bind_var(L, "g", grad, rule->name_loc);
    g->cur_rule = rule->name;
    g->cur_origin = par->node;

    Vec(RuleState) states = {0};
    const StmtVec *body = &rule->u.fn.body;
    for (int k = 0; k < body->len; k++) {
        const Stmt *s = body->items[k];
        g->cur_math = stmt_text(L, s);
        L->target = NULL;
        if (s->kind == ST_STATE) {
            Sym *old = fe_lookup(L, s->name);
            if (old && old->loc.file) {
                diag_error(L->d, s->name_loc, "'%s' is already defined in optimizer '%s'",
                           s->name, rule->name);
                continue;
            }
            double v = 0;
            if (!init_value(L, s->value, hv, nh, &v))
                continue;
            Init init = {.kind = INIT_CONST, .a = v};
            const char *name = arena_printf(L->a, "opt.%s.%s", s->name, par->name);
            Node *leaf = ir_state(g, name, pi, init, s->name_loc);
            RuleState st = {s, leaf};
            vec_push(L->a, &states, st);
            bind_var(L, s->name, leaf, s->name_loc);
        } else if (s->kind == ST_ASSIGN) {
            if (rule_assignable(L, rule, s, hv, nh))
                fe_lower_stmt(L, s);
            else if (!fe_lookup(L, s->name))
                bind_var(L, s->name, NULL, s->name_loc); /* bad: later uses are silent */
        } else {
            fe_lower_stmt(L, s); /* const */
        }
    }

    g->cur_math = "the rule's new value";
    Sym *p = fe_lookup(L, "p");
    bool ok = L->d->nerrors == errors;
    if (ok && p->node == par->node) {
        diag_error(L->d, rule->name_loc, "optimizer '%s' never assigns p, so it would not change "
                                         "the parameters",
                   rule->name);
        ok = false;
    }
    if (ok && !shape_eq(&p->node->shape, &par->node->shape)) {
        char a[64], b[64];
        diag_error(L->d, rule->name_loc, "optimizer '%s' gives parameter '%s' of shape %s a new "
                                         "value of shape %s",
                   rule->name, par->name, shape_str(&par->node->shape, a, sizeof a),
                   shape_str(&p->node->shape, b, sizeof b));
        ok = false;
    }
    for (int i = 0; ok && i < states.len; i++) {
        Node *v = fe_lookup(L, states.items[i].decl->name)->node;
        if (v == states.items[i].leaf)
            continue;
        if (!shape_eq(&v->shape, &par->node->shape)) {
            /* a scalar or broadcast value fills the whole state */
            Shape sh;
            if (!shape_broadcast(&v->shape, &par->node->shape, &sh) ||
                !shape_eq(&sh, &par->node->shape)) {
                char a[64], b[64];
                diag_error(L->d, states.items[i].decl->name_loc,
                           "state '%s' has the shape of its parameter, %s, but is given a value "
                           "of shape %s",
                           states.items[i].decl->name, shape_str(&par->node->shape, a, sizeof a),
                           shape_str(&v->shape, b, sizeof b));
                ok = false;
                break;
            }
            v = ir_expand(g, v, &par->node->shape, states.items[i].decl->name_loc);
        }
        ir_assign(g, states.items[i].leaf, v);
    }
    if (ok)
        ir_assign(g, par->node, p->node);
    close_scope(L, sc);
    return ok;
}

/* ---- clipping ---------------------------------------------------------------------- */

/* PyTorch's clip_grad_norm_: every gradient times min(1, c / (norm + 1e-6)),
 * norm the L2 norm of all the gradients together. */
static void clip_gradients(Graph *g, double c, Node **grads, Loc loc) {
    g->cur_rule = "clip_norm";
    g->cur_origin = NULL;
    g->cur_math = "sum of the squares of every gradient";
    Node *total = NULL;
    for (int i = 0; i < g->params.len; i++) {
        Node *gi = g->params.items[i].grad;
        Node *ss = ir_reduce(g, OP_SUM, ir_binary(g, OP_MUL, gi, gi, loc), 0, false, loc);
        total = total ? ir_binary(g, OP_ADD, total, ss, loc) : ss;
    }
    g->cur_math = "min(1, clip_norm / (norm + 1e-6))";
    Node *norm = ir_unary(g, OP_SQRT, total, loc);
    Node *coef = ir_binary(g, OP_DIV, ir_const(g, c, loc),
                           ir_binary(g, OP_ADD, norm, ir_const(g, 1e-6, loc), loc), loc);
    Node *scale = ir_unary(g, OP_NEG, ir_binary(g, OP_MAX, ir_const(g, -1, loc),
                                                ir_unary(g, OP_NEG, coef, loc), loc),
                           loc);
    g->cur_math = "g * scale";
    for (int i = 0; i < g->params.len; i++)
        grads[i] = ir_binary(g, OP_MUL, g->params.items[i].grad, scale, loc);
}

/* ---- the optimizer call ---------------------------------------------------------- */

/* The rule a call names, with a suggestion when there is none. */
static const Stmt *rule_of(Lower *L, const char *name, Loc loc) {
    const Stmt *rule = find_rule(L, name);
    if (rule)
        return rule;
    int n;
    const char *const *names = fe_optimizer_names(L->m, &n);
    const char *best = closest_name(name, names, n);
    if (best) {
        diag_error(L->d, loc, "unknown optimizer '%s'; did you mean '%s'?", name, best);
    } else {
        const char *list = "";
        for (int i = 0; i < n; i++)
            list = arena_printf(L->a, "%s%s%s", list, i ? ", " : "", names[i]);
        diag_error(L->d, loc, "unknown optimizer '%s' (known: %s)", name, list);
    }
    return NULL;
}

/* The call's hyperparameters, bound to the rule's, each lowered; --lr
 * replaces lr. */
static bool bind_hypers(Lower *L, const Stmt *rule, const Expr *call, double lr, HyperVal *hv) {
    const FnParamVec *ps = &rule->u.fn.params;
    if (ps->len > MAX_HYPERS) {
        diag_error(L->d, rule->name_loc, "optimizer '%s' has more than %d hyperparameters",
                   rule->name, MAX_HYPERS);
        return false;
    }
    const char *names[MAX_HYPERS];
    const Expr *args[MAX_HYPERS] = {0};
    int nreq = 0;
    for (int i = 0; i < ps->len; i++) {
        const char *n = ps->items[i].name;
        if (is_step_name(n) || !strcmp(n, "rng") || !strcmp(n, "p") || !strcmp(n, "g")) {
            diag_error(L->d, ps->items[i].name_loc, "'%s' is given to every rule (%s) and cannot "
                                                    "be a hyperparameter",
                       n, !strcmp(n, "p")   ? "the parameter"
                          : !strcmp(n, "g") ? "its gradient"
                          : !strcmp(n, "rng") ? "the dropout key"
                                              : "a step counter");
            return false;
        }
    }
    for (int i = 0; i < ps->len; i++) {
        names[i] = ps->items[i].name;
        if (!ps->items[i].default_value)
            nreq = i + 1;
    }
    if (call && call->kind == EX_CALL &&
        !fe_bind_args(L, call, rule->name, nreq, ps->len, names, args))
        return false;
    if (!call || call->kind != EX_CALL) {
        for (int i = 0; i < nreq; i++)
            if (!ps->items[i].default_value) {
                diag_error(L->d, call ? call->loc : rule->name_loc,
                           "optimizer '%s' needs a value for '%s': %s(%s = ...)", rule->name,
                           names[i], rule->name, names[i]);
                return false;
            }
    }
    const Expr *exprs[MAX_HYPERS];
    for (int i = 0; i < ps->len; i++)
        exprs[i] = args[i] ? args[i] : ps->items[i].default_value;
    Scope sc = open_scope(L, exprs, ps->len, NULL);
    bool has_lr = false, ok = true;
    for (int i = 0; i < ps->len; i++) {
        const char *name = names[i];
        if (!strcmp(name, "lr") && isfinite(lr)) {
            has_lr = true;
            hv[i] = (HyperVal){name, ir_hyper(L->g, name, lr), true, lr};
            continue;
        }
        has_lr |= !strcmp(name, "lr");
        ok &= lower_hyper(L, name, exprs[i], &hv[i]);
    }
    close_scope(L, sc);
    if (isfinite(lr) && !has_lr) {
        diag_error(L->d, rule->name_loc, "optimizer '%s' has no hyperparameter 'lr' for --lr to "
                                         "set",
                   rule->name);
        return false;
    }
    return ok;
}

bool fe_build_training(Model *m, Diags *d, const char *text, double lr) {
    Lower *L = m->lower;
    Graph *g = m->graph;
    gc_assert(L && g->loss);
    L->d = d;
    g->diags = d;
    int errors = d->nerrors;
    load_prelude(L);

    const Expr *call = m->train.optimizer_call;
    if (text) {
        SrcFile *f = arena_alloc(L->a, sizeof *f);
        f->path = "--optimizer";
        f->text = arena_strdup(L->a, text);
        f->len = strlen(text);
        call = parse_expression(L->a, d, f);
        if (!call)
            return false;
        if (call->kind != EX_NAME && call->kind != EX_CALL) {
            diag_error(d, call->loc, "expected an optimizer such as adam(lr = 3e-4), found %s",
                       fe_describe_expr(L, call));
            return false;
        }
    }
    const char *name = !call ? "sgd" : call->kind == EX_NAME ? call->u.name : call->u.call.name;
    Loc name_loc = !call ? (Loc){0} : call->kind == EX_NAME ? call->loc : call->u.call.name_loc;
    const Stmt *rule = rule_of(L, name, name_loc);
    if (!rule)
        return false;

    if (!ad_backward(g))
        return false; /* ops without a gradient rule, reported */
    Node **grads = arena_alloc(L->a, sizeof *grads * (size_t)(g->params.len + 1));
    for (int i = 0; i < g->params.len; i++)
        grads[i] = g->params.items[i].grad;
    if (m->train.clip_norm > 0)
        clip_gradients(g, m->train.clip_norm, grads, m->train.optimizer_loc);

    ir_update_begin(g);
    HyperVal hv[MAX_HYPERS];
    bool ok = bind_hypers(L, rule, call, lr, hv);
    for (int i = 0; ok && i < rule->u.fn.params.len; i++)
        if (!strcmp(hv[i].name, "lr"))
            g->lr = hv[i].node;
    for (int i = 0; i < g->params.len && ok; i++)
        ok = instantiate(L, rule, i, grads[i], hv, rule->u.fn.params.len);
    ir_update_end(g);
    return ok && d->nerrors == errors;
}
