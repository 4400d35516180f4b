/* parse.c: tokens to the syntax tree (ast.h), by recursive descent.
 *
 * Owns the grammar of statements and expressions, operator precedence, and
 * recovery from syntax errors: an error records "expected X, found Y" at the
 * offending token and unwinds (longjmp) to the statement loop, which skips
 * to the next line (inside a train or fn block, to the block's next line),
 * so one run reports every broken line. Must not resolve
 * names or judge meaning: `relu(1, 2)` parses fine here, and so does a
 * `return` that is not last in its function.
 *
 * Precedence, low to high: + - (left) | * / @ (left) | unary - | ^ (right,
 * and tighter than unary minus: -x^2 is -(x^2)) | call and index E[i].
 */
#include "ast.h"
#include "lexer.h"

#include <setjmp.h>
#include <string.h>

typedef struct Parser {
    Arena *a;
    Diags *d;
    const Token *tok;        /* the next token */
    const Token *stmt_start; /* first token of the statement or entry being parsed */
    const Token *last_nl;    /* the last NEWLINE in the file, or NULL */
    int nesting;             /* open parentheses, brackets, calls and unary operators */
    int lex_diags_begin, lex_diags_end; /* the lexer's diagnostics in d->list */
    jmp_buf *recover;        /* where a syntax error unwinds to */
} Parser;

/* ---- tokens ---------------------------------------------------------------- */

static bool at(const Parser *P, TokenKind k) { return P->tok->kind == k; }

static const Token *advance(Parser *P) {
    const Token *t = P->tok;
    if (t->kind != TK_EOF)
        P->tok++;
    return t;
}

static bool accept(Parser *P, TokenKind k) {
    if (!at(P, k))
        return false;
    advance(P);
    return true;
}

/* Whether a diagnostic was already reported on line (by the lexer). */
static bool lex_error_on_line(const Parser *P, int line) {
    for (int i = P->lex_diags_begin; i < P->lex_diags_end; i++)
        if (P->d->list.items[i].loc.line == line)
            return true;
    return false;
}

/* Reports "expected <what>, found <next token>" and unwinds. A token that
 * begins a new source line inside ( ) or [ ] means the line ended where the
 * statement needed more, so that is what is reported, after the last token. */
static _Noreturn void syntax_error(Parser *P, const char *what) {
    const Token *t = P->tok;
    Loc loc = t->loc;
    const char *found;
    if (t->at_bol && t > P->stmt_start && t->kind != TK_EOF) {
        const Token *prev = t - 1;
        loc = (Loc){prev->loc.file, prev->loc.line, prev->loc.col + prev->loc.len, 0};
        found = "end of line";
    } else {
        found = lex_describe(P->a, t);
    }
    /* A lexer error on the same line (a skipped character, a broken literal)
     * already explains this one. */
    if (!lex_error_on_line(P, loc.line))
        diag_error(P->d, loc, "expected %s, found %s", what, found);
    longjmp(*P->recover, 1);
}

static const Token *expect(Parser *P, TokenKind k) {
    if (!at(P, k))
        syntax_error(P, lex_kind_name(k));
    return advance(P);
}

static const char *expect_ident(Parser *P, Loc *loc) {
    if (!at(P, TK_IDENT))
        syntax_error(P, "a name");
    const Token *t = advance(P);
    *loc = t->loc;
    return t->str;
}

/* def_name = IDENT without '.'    -- a name being declared or assigned
 * A dotted name is reported (unless the lexer already did) and parsing goes
 * on. */
static const char *def_name(Parser *P, Loc *loc) {
    const char *name = expect_ident(P, loc);
    if (strchr(name, '.') && !lex_error_on_line(P, loc->line))
        diag_error(P->d, *loc,
                   "cannot declare or assign the dotted name '%s' (dotted names are made by "
                   "layers and function calls)",
                   name);
    return name;
}

/* The span from first to the last token consumed; a span that crosses a
 * line break stops at the end of first's line. */
static Loc span_from(const Parser *P, const Token *first) {
    const Token *last = P->tok - 1;
    Loc l = first->loc;
    if (last <= first)
        return l;
    if (last->loc.line == first->loc.line) {
        l.len = (int)(last->text + last->len - first->text);
    } else {
        const char *p = first->text;
        while (*p && *p != '\n' && *p != '\r')
            p++;
        l.len = (int)(p - first->text);
    }
    return l;
}

/* The end of a statement or train entry: a NEWLINE (consumed), the end of the
 * file, or a token that begins a line (after an unclosed bracket). */
static void end_stmt(Parser *P) {
    if (accept(P, TK_NEWLINE) || at(P, TK_EOF) || P->tok->at_bol)
        return;
    syntax_error(P, "end of line");
}

/* After a syntax error: skip the rest of the statement, up to its NEWLINE
 * (not consumed), and past any { } block in it, so that a broken
 * `train {` or `fn` line does not make every entry a statement. When no
 * NEWLINE follows (a ( or [ was left open and the lexer joined every later
 * line), stop instead where the next source line begins. in_block: the
 * statement is an item of a train or fn block; stop at the '}' that closes
 * the block. */
static void sync(Parser *P, bool in_block) {
    bool joined = !P->last_nl || P->tok > P->last_nl;
    if (joined && P->tok->at_bol && P->tok > P->stmt_start)
        return;
    int braces = 0;
    for (bool first = true; !at(P, TK_EOF); first = false) {
        const Token *t = P->tok;
        if (braces == 0 && ((!joined && t->kind == TK_NEWLINE) || (joined && !first && t->at_bol) ||
                            (in_block && t->kind == TK_RBRACE)))
            return;
        if (t->kind == TK_LBRACE && !in_block)
            braces++;
        else if (t->kind == TK_RBRACE && braces > 0)
            braces--;
        advance(P);
    }
}

/* ---- expressions ----------------------------------------------------------- */

static Expr *new_expr(Parser *P, ExprKind kind, Loc loc) {
    Expr *e = arena_alloc(P->a, sizeof *e);
    e->kind = kind;
    e->loc = loc;
    e->height = 1;
    return e;
}

/* e has child below it: keeps e's height, within the limit. */
static void add_child(Parser *P, Expr *e, const Expr *child) {
    if (child->height + 1 <= e->height)
        return;
    e->height = child->height + 1;
    if (e->height > PARSE_MAX_HEIGHT) {
        diag_error(P->d, e->loc, "expression is too large (more than %d levels deep); split it "
                                 "into several assignments",
                   PARSE_MAX_HEIGHT);
        longjmp(*P->recover, 1);
    }
}

static Expr *expr(Parser *P);
static Expr *unary(Parser *P);

/* args = arg ("," arg)* ","?
 * arg  = (IDENT "=")? expr        -- positional arguments come first
 * The '(' has been consumed; consumes the ')'. */
static void call_args(Parser *P, Expr *call) {
    ArgVec *args = &call->u.call.args;
    bool keyword_seen = false;
    while (!at(P, TK_RPAREN)) {
        Arg arg = {0};
        if (at(P, TK_IDENT) && P->tok[1].kind == TK_ASSIGN) {
            const Token *name = advance(P);
            advance(P);
            arg.name = name->str;
            arg.name_loc = name->loc;
            keyword_seen = true;
        } else if (keyword_seen) {
            diag_error(P->d, P->tok->loc, "positional argument after keyword arguments");
            longjmp(*P->recover, 1);
        }
        arg.value = expr(P);
        vec_push(P->a, args, arg);
        add_child(P, call, arg.value);
        if (!accept(P, TK_COMMA)) {
            if (!at(P, TK_RPAREN))
                syntax_error(P, "',' or ')'");
            break;
        }
    }
    expect(P, TK_RPAREN);
}

/* primary = NUMBER | STRING | "true" | "false"
 *         | IDENT ("(" args? ")")?
 *         | "(" expr ")"
 *         | "[" (expr ("," expr)* ","?)? "]" */
static Expr *primary(Parser *P) {
    const Token *first = P->tok;
    switch (first->kind) {
    case TK_NUMBER: {
        advance(P);
        Expr *e = new_expr(P, EX_NUM, first->loc);
        e->u.num = first->num;
        return e;
    }
    case TK_STRING: {
        advance(P);
        Expr *e = new_expr(P, EX_STR, first->loc);
        e->u.str = first->str;
        return e;
    }
    case TK_TRUE:
    case TK_FALSE: {
        advance(P);
        Expr *e = new_expr(P, EX_BOOL, first->loc);
        e->u.boolean = first->kind == TK_TRUE;
        return e;
    }
    case TK_IDENT: {
        advance(P);
        if (!accept(P, TK_LPAREN)) {
            Expr *e = new_expr(P, EX_NAME, first->loc);
            e->u.name = first->str;
            return e;
        }
        Expr *e = new_expr(P, EX_CALL, first->loc);
        e->u.call.name = first->str;
        e->u.call.name_loc = first->loc;
        call_args(P, e);
        e->loc = span_from(P, first);
        return e;
    }
    case TK_LPAREN: {
        advance(P);
        Expr *e = expr(P);
        expect(P, TK_RPAREN);
        e->loc = span_from(P, first);
        return e;
    }
    case TK_LBRACKET: {
        advance(P);
        Expr *e = new_expr(P, EX_LIST, first->loc);
        while (!at(P, TK_RBRACKET)) {
            Expr *item = expr(P);
            vec_push(P->a, &e->u.items, item);
            add_child(P, e, item);
            if (!accept(P, TK_COMMA)) {
                if (!at(P, TK_RBRACKET))
                    syntax_error(P, "',' or ']'");
                break;
            }
        }
        expect(P, TK_RBRACKET);
        e->loc = span_from(P, first);
        return e;
    }
    case TK_EOF:
    case TK_NEWLINE:
    case TK_RPAREN:
    case TK_RBRACKET:
    case TK_LBRACE:
    case TK_RBRACE:
    case TK_COMMA:
    case TK_COLON:
    case TK_ASSIGN:
    case TK_TILDE:
    case TK_PLUS:
    case TK_MINUS:
    case TK_STAR:
    case TK_SLASH:
    case TK_AT:
    case TK_CARET:
    case TK_CONST:
    case TK_INPUT:
    case TK_PARAM:
    case TK_OUTPUT:
    case TK_TRAIN:
    case TK_FN:
    case TK_RETURN:
        break;
    }
    syntax_error(P, "an expression");
}

static Expr *binary(Parser *P, BinOp op, const Token *first, const Token *op_tok, Expr *lhs,
                    Expr *rhs) {
    Expr *e = new_expr(P, EX_BINARY, span_from(P, first));
    add_child(P, e, lhs);
    add_child(P, e, rhs);
    e->u.bin.op = op;
    e->u.bin.lhs = lhs;
    e->u.bin.rhs = rhs;
    e->u.bin.op_loc = op_tok->loc;
    return e;
}

/* postfix = primary ("[" expr "]")*      -- a gather: E[ids], a[i][j]
 * Only a name, a call or a ( ) takes an index, and only with the '[' on the
 * same line: anywhere else a '[' begins a list. */
static Expr *postfix(Parser *P) {
    const Token *first = P->tok;
    Expr *e = primary(P);
    if (first->kind != TK_IDENT && first->kind != TK_LPAREN)
        return e;
    while (at(P, TK_LBRACKET) && !P->tok->at_bol) {
        const Token *open = advance(P);
        Expr *index = expr(P);
        expect(P, TK_RBRACKET);
        Expr *ix = new_expr(P, EX_INDEX, span_from(P, first));
        ix->u.index.base = e;
        ix->u.index.index = index;
        ix->u.index.bracket_loc = open->loc;
        add_child(P, ix, e);
        add_child(P, ix, index);
        e = ix;
    }
    return e;
}

/* power = postfix ("^" unary)?          -- right-associative: a^b^c = a^(b^c) */
static Expr *power(Parser *P) {
    const Token *first = P->tok;
    Expr *base = postfix(P);
    if (!at(P, TK_CARET))
        return base;
    const Token *op = advance(P);
    Expr *exponent = unary(P);
    return binary(P, BIN_POW, first, op, base, exponent);
}

/* unary = "-" unary | power
 * Every nested expression passes here, so this is where nesting is bounded. */
static Expr *unary(Parser *P) {
    const Token *first = P->tok;
    if (++P->nesting > PARSE_MAX_NESTING) {
        diag_error(P->d, first->loc, "expression is nested too deeply (more than %d levels)",
                   PARSE_MAX_NESTING);
        longjmp(*P->recover, 1);
    }
    Expr *e;
    if (accept(P, TK_MINUS)) {
        Expr *operand = unary(P);
        e = new_expr(P, EX_NEG, span_from(P, first));
        e->u.operand = operand;
        add_child(P, e, operand);
    } else {
        e = power(P);
    }
    P->nesting--;
    return e;
}

/* term = unary (("*" | "/" | "@") unary)* */
static Expr *term(Parser *P) {
    const Token *first = P->tok;
    Expr *e = unary(P);
    for (;;) {
        BinOp op;
        if (at(P, TK_STAR))
            op = BIN_MUL;
        else if (at(P, TK_SLASH))
            op = BIN_DIV;
        else if (at(P, TK_AT))
            op = BIN_MATMUL;
        else
            return e;
        const Token *op_tok = advance(P);
        Expr *rhs = unary(P);
        e = binary(P, op, first, op_tok, e, rhs);
    }
}

/* expr = term (("+" | "-") term)* */
static Expr *expr(Parser *P) {
    const Token *first = P->tok;
    Expr *e = term(P);
    for (;;) {
        BinOp op;
        if (at(P, TK_PLUS))
            op = BIN_ADD;
        else if (at(P, TK_MINUS))
            op = BIN_SUB;
        else
            return e;
        const Token *op_tok = advance(P);
        Expr *rhs = term(P);
        e = binary(P, op, first, op_tok, e, rhs);
    }
}

/* ---- statements ------------------------------------------------------------ */

static Stmt *new_stmt(Parser *P, StmtKind kind) {
    Stmt *s = arena_alloc(P->a, sizeof *s);
    s->kind = kind;
    return s;
}

/* dims = "[" expr ("," expr)* "]" */
static void dims(Parser *P, ExprVec *out, Loc *loc) {
    const Token *first = expect(P, TK_LBRACKET);
    for (;;) {
        Expr *dim = expr(P);
        vec_push(P->a, out, dim);
        if (accept(P, TK_COMMA))
            continue;
        if (!at(P, TK_RBRACKET))
            syntax_error(P, "',' or ']'");
        break;
    }
    expect(P, TK_RBRACKET);
    *loc = span_from(P, first);
}

/* name_is = def_name "=" expr     -- the tail of const, output and assignment */
static void name_is(Parser *P, Stmt *s) {
    s->name = def_name(P, &s->name_loc);
    expect(P, TK_ASSIGN);
    s->value = expr(P);
}

/* input = "input" def_name dims (":" ("int" | "float"))? */
static Stmt *input_stmt(Parser *P) {
    Stmt *s = new_stmt(P, ST_INPUT);
    s->name = def_name(P, &s->name_loc);
    dims(P, &s->u.input.dims, &s->u.input.dims_loc);
    if (accept(P, TK_COLON)) {
        if (!at(P, TK_IDENT) || (strcmp(P->tok->str, "int") && strcmp(P->tok->str, "float")))
            syntax_error(P, "'int' or 'float'");
        s->u.input.is_int = !strcmp(advance(P)->str, "int");
    }
    return s;
}

/* param = "param" def_name dims? ("=" | "~") expr */
static Stmt *param_stmt(Parser *P) {
    Stmt *s = new_stmt(P, ST_PARAM);
    s->name = def_name(P, &s->name_loc);
    if (at(P, TK_LBRACKET)) {
        s->u.param.has_dims = true;
        dims(P, &s->u.param.dims, &s->u.param.dims_loc);
    }
    if (accept(P, TK_ASSIGN))
        s->u.param.init_op = PINIT_VALUE;
    else if (accept(P, TK_TILDE))
        s->u.param.init_op = PINIT_SAMPLE;
    else
        syntax_error(P, "'=' or '~'");
    s->value = expr(P);
    return s;
}

/* The end of an item of a block: the end of its line, or the block's '}'
 * on the same line. */
static void end_item(Parser *P) {
    if (!at(P, TK_RBRACE))
        end_stmt(P);
}

/* block = "{" (NEWLINE | item)*      -- the '}' is left to the caller
 * The body of train and fn: one item a line, each parsed (and its line
 * ended) by item(P, owner). A syntax error in an item skips that item only.
 * The '{' belongs on the line of the keyword kw; on the next line it is
 * reported and taken anyway. Stops at a '}' or at the end of the file;
 * returns the '{'. */
static const Token *block(Parser *P, const char *kw, void (*item)(Parser *P, Stmt *owner),
                          Stmt *owner) {
    jmp_buf *outer = P->recover;
    if (at(P, TK_NEWLINE) && P->tok[1].kind == TK_LBRACE) {
        diag_error(P->d, P->tok[1].loc, "the '{' must be on the same line as '%s'", kw);
        advance(P);
    }
    const Token *open = expect(P, TK_LBRACE);
    for (;;) {
        if (accept(P, TK_NEWLINE))
            continue;
        if (at(P, TK_RBRACE) || at(P, TK_EOF))
            break;
        jmp_buf item_recover;
        P->recover = &item_recover;
        P->stmt_start = P->tok;
        P->nesting = 0;
        if (!setjmp(item_recover))
            item(P, owner);
        else
            sync(P, true);
        P->recover = outer;
    }
    return open;
}

/* entry = IDENT "=" expr */
static void train_entry(Parser *P, Stmt *train) {
    TrainEntry e = {0};
    e.key = expect_ident(P, &e.key_loc);
    expect(P, TK_ASSIGN);
    e.value = expr(P);
    end_item(P);
    vec_push(P->a, &train->u.train.entries, e);
}

/* train = "train" block(entry) "}" */
static Stmt *train_stmt(Parser *P) {
    Stmt *s = new_stmt(P, ST_TRAIN);
    block(P, "train", train_entry, s);
    expect(P, TK_RBRACE);
    return s;
}

/* Where a statement is: the top level, a function's body, an optimizer's. */
typedef enum Ctx { CTX_TOP, CTX_FN, CTX_OPT } Ctx;

static Stmt *stmt(Parser *P, Ctx ctx);

/* One statement of a function's body. */
static void fn_body_item(Parser *P, Stmt *fn) {
    Stmt *s = stmt(P, CTX_FN);
    end_item(P);
    vec_push(P->a, &fn->u.fn.body, s);
}

/* One statement of an optimizer's body. */
static void opt_body_item(Parser *P, Stmt *opt) {
    Stmt *s = stmt(P, CTX_OPT);
    end_item(P);
    vec_push(P->a, &opt->u.fn.body, s);
}

/* fn     = "fn" def_name "(" (fparam ("," fparam)* ","?)? ")" block(stmt) "}"
 * fparam = def_name ("=" expr)?          -- parameters with a default come last
 * The body's statements are those allowed in a function (see stmt). */
/* The parameters and body of `fn name(...) { }` or `optimizer name(...) { }`
 * (kind ST_FN or ST_OPTIMIZER; kw the keyword, what names it in messages). */
static Stmt *fn_like_stmt(Parser *P, StmtKind kind, const char *kw, const char *what) {
    Stmt *s = new_stmt(P, kind);
    s->name = def_name(P, &s->name_loc);
    expect(P, TK_LPAREN);
    bool default_seen = false;
    while (!at(P, TK_RPAREN)) {
        FnParam p = {0};
        p.name = def_name(P, &p.name_loc);
        if (accept(P, TK_ASSIGN)) {
            p.default_value = expr(P);
            default_seen = true;
        } else if (default_seen) {
            diag_error(P->d, p.name_loc,
                       "parameter '%s' without a default follows a parameter with a default",
                       p.name);
        }
        vec_push(P->a, &s->u.fn.params, p);
        if (!accept(P, TK_COMMA)) {
            if (!at(P, TK_RPAREN))
                syntax_error(P, "',' or ')'");
            break;
        }
    }
    expect(P, TK_RPAREN);
    const Token *open =
        block(P, kw, kind == ST_FN ? fn_body_item : opt_body_item, s);
    if (at(P, TK_EOF)) {
        diag_error(P->d, open->loc, "'{' of %s '%s' is never closed", what, s->name);
        longjmp(*P->recover, 1);
    }
    s->u.fn.close_loc = advance(P)->loc;
    return s;
}

static Stmt *fn_stmt(Parser *P) { return fn_like_stmt(P, ST_FN, "fn", "function"); }

/* `optimizer` and `state` are keywords only where they begin a statement
 * (`optimizer = adam(...)` is a train-block entry). */
static bool at_word(const Parser *P, const char *word) {
    return at(P, TK_IDENT) && !strcmp(P->tok->str, word) && P->tok[1].kind == TK_IDENT;
}

static void misspelled_keyword(Parser *P, Ctx ctx) {
    static const char *const top_keywords[] = {"const", "input", "param", "output", "train", "fn",
                                               "optimizer"};
    static const char *const fn_keywords[] = {"const", "param", "return"};
    static const char *const opt_keywords[] = {"const", "state"};
    const char *best = ctx == CTX_FN    ? closest_name(P->tok->str, fn_keywords, 3)
                       : ctx == CTX_OPT ? closest_name(P->tok->str, opt_keywords, 2)
                                        : closest_name(P->tok->str, top_keywords, 7);
    if (!best)
        return;
    diag_error(P->d, P->tok->loc, "unknown statement '%s'; did you mean '%s'?", P->tok->str, best);
    longjmp(*P->recover, 1);
}

/* A statement where it is not allowed (input, output, train, fn or
 * optimizer inside a function or an optimizer; param or return inside an
 * optimizer; return or state outside their bodies): reported at its
 * keyword, then skipped with any { } block it opens; unwinds. */
static _Noreturn void misplaced_stmt(Parser *P, Ctx ctx) {
    const Token *kw = P->tok;
    if (ctx == CTX_FN)
        diag_error(P->d, kw->loc, "'%s' is not allowed inside a function", kw->str);
    else if (ctx == CTX_OPT)
        diag_error(P->d, kw->loc, "'%s' is not allowed inside an optimizer", kw->str);
    else if (kw->kind == TK_RETURN)
        diag_error(P->d, kw->loc, "'%s' is allowed only inside a function", kw->str);
    else
        diag_error(P->d, kw->loc, "'%s' is allowed only inside an optimizer", kw->str);
    sync(P, false);
    longjmp(*P->recover, 1);
}

/* stmt = "const" const | "input" input | "param" param | "output" output
 *      | "train" train | "fn" fn | "optimizer" fn | "return" expr
 *      | "state" def_name "=" expr | def_name "=" expr
 * const  = def_name "=" expr
 * output = def_name "=" expr
 * ctx: in a function's body input, output, train, fn and optimizer are not
 * allowed, and return is allowed only there; in an optimizer's body the
 * same, and param and return neither; state only there. The caller ends
 * the line. */
static Stmt *stmt(Parser *P, Ctx ctx) {
    const Token *first = P->tok;
    bool nested = at(P, TK_INPUT) || at(P, TK_OUTPUT) || at(P, TK_TRAIN) || at(P, TK_FN) ||
                  at_word(P, "optimizer");
    if ((ctx != CTX_TOP && nested) || (ctx != CTX_FN && at(P, TK_RETURN)) ||
        (ctx == CTX_OPT && at(P, TK_PARAM)) || (ctx != CTX_OPT && at_word(P, "state")))
        misplaced_stmt(P, ctx);
    Stmt *s;
    if (accept(P, TK_CONST)) {
        s = new_stmt(P, ST_CONST);
        name_is(P, s);
    } else if (accept(P, TK_INPUT)) {
        s = input_stmt(P);
    } else if (accept(P, TK_PARAM)) {
        s = param_stmt(P);
    } else if (accept(P, TK_OUTPUT)) {
        s = new_stmt(P, ST_OUTPUT);
        name_is(P, s);
    } else if (accept(P, TK_TRAIN)) {
        s = train_stmt(P);
    } else if (accept(P, TK_FN)) {
        s = fn_stmt(P);
    } else if (accept(P, TK_RETURN)) {
        s = new_stmt(P, ST_RETURN);
        s->value = expr(P);
    } else if (at_word(P, "optimizer")) {
        advance(P);
        s = fn_like_stmt(P, ST_OPTIMIZER, "optimizer", "optimizer");
    } else if (at_word(P, "state")) {
        advance(P);
        s = new_stmt(P, ST_STATE);
        name_is(P, s);
    } else if (at(P, TK_IDENT)) {
        if (P->tok[1].kind == TK_IDENT)
            misspelled_keyword(P, ctx);
        s = new_stmt(P, ST_ASSIGN);
        name_is(P, s);
    } else {
        syntax_error(P, "a statement");
    }
    s->loc = span_from(P, first);
    P->stmt_start = first;
    return s;
}

/* program = (NEWLINE | stmt (NEWLINE | EOF))* EOF */
AstFile *parse_file(Arena *a, Diags *d, const SrcFile *f) {
    int lex_diags_begin = d->list.len;
    TokenVec toks = lex_file(a, d, f);
    /* Heap, not stack: the state must survive longjmp with its changes. */
    Parser *P = arena_alloc(a, sizeof *P);
    P->a = a;
    P->d = d;
    P->lex_diags_begin = lex_diags_begin;
    P->lex_diags_end = d->list.len;
    P->tok = toks.items;
    for (int i = toks.len - 1; i >= 0 && !P->last_nl; i--)
        if (toks.items[i].kind == TK_NEWLINE)
            P->last_nl = &toks.items[i];
    AstFile *file = arena_alloc(a, sizeof *file);
    file->file = f;
    while (!at(P, TK_EOF) && d->nerrors <= d->max_errors) {
        if (accept(P, TK_NEWLINE))
            continue;
        jmp_buf stmt_recover;
        P->recover = &stmt_recover;
        P->stmt_start = P->tok;
        P->nesting = 0;
        if (!setjmp(stmt_recover)) {
            Stmt *s = stmt(P, CTX_TOP); /* vec_push may evaluate its operand late */
            end_stmt(P);
            vec_push(a, &file->stmts, s);
        } else {
            sync(P, false);
        }
    }
    return file;
}

Expr *parse_expression(Arena *a, Diags *d, const SrcFile *f) {
    int lex_diags_begin = d->list.len, errors_before = d->nerrors;
    TokenVec toks = lex_file(a, d, f);
    if (d->nerrors > errors_before)
        return NULL;
    Parser *P = arena_alloc(a, sizeof *P);
    P->a = a;
    P->d = d;
    P->lex_diags_begin = lex_diags_begin;
    P->lex_diags_end = d->list.len;
    P->tok = toks.items;
    P->stmt_start = P->tok;
    jmp_buf recover;
    P->recover = &recover;
    if (setjmp(recover))
        return NULL;
    while (accept(P, TK_NEWLINE))
        ;
    Expr *e = expr(P);
    while (accept(P, TK_NEWLINE))
        ;
    if (!at(P, TK_EOF))
        syntax_error(P, "the end of the expression");
    return e;
}
