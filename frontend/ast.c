/* ast.c: the syntax tree as S-expressions, for tests and debugging.
 *
 * Owns only printing. Must not change or check the tree.
 *
 *   number   %g             name     itself         string  "text"
 *   -x       (neg x)        a op b   (op a b)       f(a, k = v)  (call f a (k = v))
 *   [a, b]   [a b]          true     true           E[i]    (index E i)
 *   fn f(x, p = 0.1) { h = x ... }     (fn f (x (p = 0.1)) ((= h x) ...))
 *   return h                           (return h)
 */
#include "ast.h"

#include <string.h>

typedef struct Buf {
    Arena *a;
    char *s;
    size_t len, cap;
} Buf;

static void put(Buf *b, const char *s) {
    size_t n = strlen(s);
    if (b->len + n + 1 > b->cap) {
        size_t ncap = (b->len + n + 1) * 2;
        b->s = arena_grow(b->a, b->s, b->cap, ncap);
        b->cap = ncap;
    }
    memcpy(b->s + b->len, s, n + 1);
    b->len += n;
}

const char *ast_binop_str(BinOp op) {
    switch (op) {
    case BIN_ADD: return "+";
    case BIN_SUB: return "-";
    case BIN_MUL: return "*";
    case BIN_DIV: return "/";
    case BIN_MATMUL: return "@";
    case BIN_POW: return "^";
    }
    gc_unreachable();
}

static void put_expr(Buf *b, const Expr *e) {
    switch (e->kind) {
    case EX_NUM:
        put(b, arena_printf(b->a, "%g", e->u.num));
        return;
    case EX_BOOL:
        put(b, e->u.boolean ? "true" : "false");
        return;
    case EX_STR:
        put(b, arena_printf(b->a, "\"%s\"", e->u.str));
        return;
    case EX_NAME:
        put(b, e->u.name);
        return;
    case EX_NEG:
        put(b, "(neg ");
        put_expr(b, e->u.operand);
        put(b, ")");
        return;
    case EX_BINARY:
        put(b, "(");
        put(b, ast_binop_str(e->u.bin.op));
        put(b, " ");
        put_expr(b, e->u.bin.lhs);
        put(b, " ");
        put_expr(b, e->u.bin.rhs);
        put(b, ")");
        return;
    case EX_CALL:
        put(b, "(call ");
        put(b, e->u.call.name);
        for (int i = 0; i < e->u.call.args.len; i++) {
            const Arg *arg = &e->u.call.args.items[i];
            put(b, " ");
            if (arg->name) {
                put(b, "(");
                put(b, arg->name);
                put(b, " = ");
                put_expr(b, arg->value);
                put(b, ")");
            } else {
                put_expr(b, arg->value);
            }
        }
        put(b, ")");
        return;
    case EX_LIST:
        put(b, "[");
        for (int i = 0; i < e->u.items.len; i++) {
            if (i)
                put(b, " ");
            put_expr(b, e->u.items.items[i]);
        }
        put(b, "]");
        return;
    case EX_INDEX:
        put(b, "(index ");
        put_expr(b, e->u.index.base);
        put(b, " ");
        put_expr(b, e->u.index.index);
        put(b, ")");
        return;
    }
    gc_unreachable();
}

char *ast_expr_str(Arena *a, const Expr *e) {
    Buf b = {.a = a};
    put(&b, "");
    put_expr(&b, e);
    return b.s;
}

static void put_dims(Buf *b, const ExprVec *dims) {
    put(b, " [");
    for (int i = 0; i < dims->len; i++) {
        if (i)
            put(b, " ");
        put_expr(b, dims->items[i]);
    }
    put(b, "]");
}

static void put_stmt(Buf *b, const Stmt *s);

/* (x n (p = 0.1)) ((= h x) (return h)) */
static void put_fn(Buf *b, const Stmt *s) {
    put(b, s->kind == ST_FN ? "fn " : "optimizer ");
    put(b, s->name);
    put(b, " (");
    for (int i = 0; i < s->u.fn.params.len; i++) {
        const FnParam *p = &s->u.fn.params.items[i];
        if (i)
            put(b, " ");
        if (p->default_value) {
            put(b, "(");
            put(b, p->name);
            put(b, " = ");
            put_expr(b, p->default_value);
            put(b, ")");
        } else {
            put(b, p->name);
        }
    }
    put(b, ") (");
    for (int i = 0; i < s->u.fn.body.len; i++) {
        if (i)
            put(b, " ");
        put_stmt(b, s->u.fn.body.items[i]);
    }
    put(b, ")");
}

static void put_stmt(Buf *b, const Stmt *s) {
    put(b, "(");
    switch (s->kind) {
    case ST_CONST:
    case ST_ASSIGN:
    case ST_OUTPUT:
    case ST_STATE:
        put(b, s->kind == ST_CONST    ? "const "
               : s->kind == ST_OUTPUT ? "output "
               : s->kind == ST_STATE  ? "state "
                                      : "= ");
        put(b, s->name);
        put(b, " ");
        put_expr(b, s->value);
        break;
    case ST_INPUT:
        put(b, "input ");
        put(b, s->name);
        put_dims(b, &s->u.input.dims);
        put(b, s->u.input.is_int ? " int" : " float");
        break;
    case ST_PARAM:
        put(b, "param ");
        put(b, s->name);
        if (s->u.param.has_dims)
            put_dims(b, &s->u.param.dims);
        put(b, s->u.param.init_op == PINIT_SAMPLE ? " ~ " : " = ");
        put_expr(b, s->value);
        break;
    case ST_TRAIN:
        put(b, "train");
        for (int i = 0; i < s->u.train.entries.len; i++) {
            const TrainEntry *t = &s->u.train.entries.items[i];
            put(b, " (");
            put(b, t->key);
            put(b, " ");
            put_expr(b, t->value);
            put(b, ")");
        }
        break;
    case ST_FN:
    case ST_OPTIMIZER:
        put_fn(b, s);
        break;
    case ST_RETURN:
        put(b, "return ");
        put_expr(b, s->value);
        break;
    }
    put(b, ")");
}

char *ast_stmt_str(Arena *a, const Stmt *s) {
    Buf b = {.a = a};
    put(&b, "");
    put_stmt(&b, s);
    return b.s;
}
