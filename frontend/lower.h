/* lower.h: what the lowering files share (lower.c, builtin.c, train.c).
 * Internal to the front end; the driver sees only frontend.h.
 *
 * Lowering walks the syntax tree once, in order, keeping a scope of the
 * names defined so far, and builds the forward graph through the ir_*
 * builders, which check shapes. A name whose definition failed stays in
 * scope as "bad", so that one mistake gives one error.
 */
#ifndef GRADC_LOWER_H
#define GRADC_LOWER_H

#include "ast.h"
#include "frontend.h"

typedef enum SymKind {
    SYM_CONST, /* value */
    SYM_INPUT, /* node: an INPUT */
    SYM_PARAM, /* node: a PARAM */
    SYM_VAR,   /* node: what the last assignment to the name computed */
} SymKind;

typedef struct Sym {
    const char *name;
    SymKind kind;
    Loc loc;     /* the name in its (latest) definition */
    bool bad;    /* the definition had an error: uses are silent, node NULL */
    double value;
    Node *node;
} Sym;

typedef struct Lower {
    Arena *a;
    Diags *d;
    Model *m;
    Graph *g;
    Vec(Sym) syms;
    const Stmt *loss_stmt;  /* the `loss = ...` seen so far */
    const Stmt *train_stmt; /* the train block seen so far */
    /* Set by the last cross_entropy, nll, bce or bce_logits call lowered:
     * the metric it implies when it is the loss's top-level call. */
    Metric metric_candidate;

    /* Naming of the parameters that layers and functions create: the
     * variable the statement being lowered assigns (NULL: none), and the
     * prefix of the function instances being lowered ("a." inside
     * `a = block(x)`, "a.h." one call deeper; "" at top level). */
    const char *target;
    const char *prefix;
    /* Inside a function body the symbols below scope_base belong to the
     * caller: only its consts are visible there. */
    int scope_base;
    Vec(const Stmt *) fns;   /* the file's user functions */
    Vec(const Stmt *) optimizers; /* the model's optimizer rules, then the prelude's */
    /* Lowering an optimizer rule or a hyperparameter: `^` takes a tensor
     * exponent, and min and max are elementwise. */
    bool in_rule;
    Vec(const Stmt *) calls; /* the functions being instantiated, outermost first */
} Lower;

/* lower.c */
/* Lowers every statement of ast into L->m (graph and train settings). */
void fe_lower(Lower *L, const AstFile *ast);
Sym *fe_lookup(Lower *L, const char *name);
/* A fresh name for the parameters of a layer or function instance made by
 * the statement being lowered: prefix + target, or with _1, _2, ... added
 * when parameters of that name exist. */
const char *fe_instance_name(Lower *L);
/* A parameter `name` (already prefixed) with its initializer, visible to
 * later statements by that name. NULL after reporting an error. */
Node *fe_new_param(Lower *L, const char *name, const Shape *s, Init init, Loc loc);
/* Lowers the statements of a function body or the top level. */
void fe_lower_stmt(Lower *L, const Stmt *s);

/* The graph node of expression e (with e's location); NULL after an error,
 * which has been reported. */
Node *fe_lower_expr(Lower *L, const Expr *e);
/* x itself, or x converted to float when it is an integer tensor. */
Node *fe_to_float(Lower *L, Node *x, Loc loc);
/* Whether e is a constant expression (a bad const name counts as one). */
bool fe_is_const(Lower *L, const Expr *e);
/* Constant expression e: numbers, consts and + - * / ^ and unary minus.
 * false after reporting why it is not one (silently if a name in it is bad). */
bool fe_const_eval(Lower *L, const Expr *e, double *out);
/* A constant that must be an integer in [min, max]; what names it in the
 * message ("batch must be a positive integer, but this is 2.5"). */
bool fe_const_int(Lower *L, const Expr *e, const char *what, int64_t min, int64_t max,
                  int64_t *out);
/* "a string", "a list", "a call to 'f'": how a message names what e is. */
const char *fe_describe_expr(Lower *L, const Expr *e);

/* builtin.c */
/* Binds the arguments of call to the parameters params[0..nparams) of the
 * function fname (the first nreq required), positional then keyword:
 * out[i] is the argument for params[i] or NULL. false after reporting
 * a wrong count, an unknown keyword or a duplicate. */
bool fe_bind_args(Lower *L, const Expr *call, const char *fname, int nreq, int nparams,
                  const char *const *params, const Expr **out);
/* A call in a tensor expression: exp(x), softmax(x, axis = 0), mse(p, y). */
Node *fe_lower_call(Lower *L, const Expr *call);
/* Whether name is a function of the expression language. */
bool fe_is_builtin(const char *name);

/* fn.c */
/* The user function called name, or NULL. */
const Stmt *fe_find_fn(Lower *L, const char *name);
/* A call of the user function fn: instantiates its body with fresh
 * parameters, returns the value of its return statement. */
Node *fe_call_fn(Lower *L, const Stmt *fn, const Expr *call);

/* optim.c */
/* Registers the model's optimizer rule s (collected with the functions). */
void fe_add_optimizer(Lower *L, const Stmt *s);

/* train.c */
/* The train { } block into L->m->train; the model's inputs must be known. */
void fe_lower_train(Lower *L, const Stmt *s);

#endif
