/* fn.c: user functions, `fn name(params) { ...; return expr }`.
 *
 * Owns calls of user functions: binding arguments, the function's scope,
 * instantiating its body once per call with parameters of their own, and
 * the errors of functions (recursion, a missing or misplaced return).
 * A call assigned to `a` prefixes every parameter its body creates with
 * "a.", so `a = block(x, 64)` makes `a.h.W` for a `h = dense(...)` inside;
 * nested calls nest the prefixes. Must not check shapes (the builders do)
 * or know any builtin.
 *
 * Scope: a body sees its arguments, its own definitions and the file's
 * consts; not the caller's variables, inputs or params (pass them in).
 * An argument that is a constant expression is a const inside the body, so
 * that it can size a layer or a param.
 */
#include "lower.h"

#include <string.h>

enum { MAX_FN_ARGS = 32, MAX_CALL_DEPTH = 64 };

const Stmt *fe_find_fn(Lower *L, const char *name) {
    for (int i = 0; i < L->fns.len; i++)
        if (!strcmp(L->fns.items[i]->name, name))
            return L->fns.items[i];
    return NULL;
}

/* Whether fn is being instantiated already (a call of it would recurse). */
static bool is_active(Lower *L, const Stmt *fn) {
    for (int i = 0; i < L->calls.len; i++)
        if (L->calls.items[i] == fn)
            return true;
    return false;
}

/* An argument's value, lowered in the caller's scope: a const or a tensor. */
typedef struct ArgVal {
    bool is_const, ok;
    double value;
    Node *node;
} ArgVal;

static ArgVal lower_arg(Lower *L, const Expr *e, bool is_const) {
    ArgVal v = {.is_const = is_const};
    if (is_const)
        v.ok = fe_const_eval(L, e, &v.value);
    else
        v.ok = (v.node = fe_lower_expr(L, e)) != NULL;
    return v;
}

static void bind_arg(Lower *L, const FnParam *p, const ArgVal *v) {
    Sym s = {.name = p->name, .loc = p->name_loc, .bad = !v->ok};
    s.kind = v->is_const ? SYM_CONST : SYM_VAR;
    s.value = v->value;
    s.node = v->node;
    vec_push(L->a, &L->syms, s);
}

Node *fe_call_fn(Lower *L, const Stmt *fn, const Expr *call) {
    const FnParamVec *ps = &fn->u.fn.params;
    if (is_active(L, fn)) {
        diag_error(L->d, call->u.call.name_loc, "recursive call of function '%s': a function "
                                                "cannot call itself, directly or through others",
                   fn->name);
        diag_note(L->d, fn->name_loc, "'%s' is defined here", fn->name);
        return NULL;
    }
    if (L->calls.len >= MAX_CALL_DEPTH) {
        diag_error(L->d, call->loc, "functions nested more than %d calls deep", MAX_CALL_DEPTH);
        return NULL;
    }
    if (ps->len > MAX_FN_ARGS) {
        diag_error(L->d, fn->name_loc, "function '%s' has more than %d parameters", fn->name,
                   MAX_FN_ARGS);
        return NULL;
    }
    const char *names[MAX_FN_ARGS];
    const Expr *args[MAX_FN_ARGS];
    int nreq = 0;
    for (int i = 0; i < ps->len; i++) {
        names[i] = ps->items[i].name;
        if (!ps->items[i].default_value)
            nreq = i + 1;
    }
    if (!fe_bind_args(L, call, fn->name, nreq, ps->len, names, args))
        return NULL;

    /* Arguments in the caller's scope; defaults in the function's. */
    ArgVal vals[MAX_FN_ARGS];
    for (int i = 0; i < ps->len; i++)
        if (args[i])
            vals[i] = lower_arg(L, args[i], fe_is_const(L, args[i]));

    const char *saved_prefix = L->prefix, *saved_target = L->target;
    int saved_base = L->scope_base, saved_len = L->syms.len;
    L->prefix = arena_printf(L->a, "%s.", fe_instance_name(L));
    L->scope_base = L->syms.len;
    vec_push(L->a, &L->calls, fn);
    for (int i = 0; i < ps->len; i++) {
        if (!args[i])
            vals[i] = lower_arg(L, ps->items[i].default_value, true);
        bind_arg(L, &ps->items[i], &vals[i]);
    }

    Node *result = NULL;
    const StmtVec *body = &fn->u.fn.body;
    bool returned = false;
    for (int i = 0; i < body->len; i++) {
        const Stmt *s = body->items[i];
        if (s->kind == ST_RETURN) {
            if (i != body->len - 1) {
                diag_error(L->d, body->items[i + 1]->loc, "statement after 'return' in function "
                                                          "'%s'",
                           fn->name);
                break;
            }
            L->target = "out"; /* names a layer in the return expression */
            result = fe_lower_expr(L, s->value);
            returned = true;
            break;
        }
        fe_lower_stmt(L, s);
    }
    if (!returned && (body->len == 0 || body->items[body->len - 1]->kind != ST_RETURN))
        diag_error(L->d, fn->u.fn.close_loc, "function '%s' ends without 'return'", fn->name);

    L->calls.len--;
    L->syms.len = saved_len;
    L->scope_base = saved_base;
    L->prefix = saved_prefix;
    L->target = saved_target;
    return result;
}
