/* ast.h: the syntax tree of a model file, as parse.c builds it.
 *
 * A tagged union in the manner of Lua's expdesc: each kind says which fields
 * it uses. Every node keeps the span it was parsed from. The tree records
 * only what was written: names are not resolved and nothing is checked
 * beyond the grammar (that is lower.c's job). Everything lives in the arena
 * given to parse_file.
 */
#ifndef GRADC_AST_H
#define GRADC_AST_H

#include "../ir/base.h"

typedef struct Expr Expr;
typedef Vec(Expr *) ExprVec;

typedef enum BinOp {
    BIN_ADD,    /* + */
    BIN_SUB,    /* - */
    BIN_MUL,    /* * */
    BIN_DIV,    /* / */
    BIN_MATMUL, /* @ */
    BIN_POW,    /* ^ */
} BinOp;

/* One argument of a call: `expr` (positional) or `name = expr` (keyword). */
typedef struct Arg {
    const char *name; /* NULL for a positional argument */
    Loc name_loc;
    Expr *value;
} Arg;
typedef Vec(Arg) ArgVec;

/* Kinds of expression, with the fields of Expr.u each one uses. */
typedef enum ExprKind {
    EX_NUM,    /* u.num: a number literal */
    EX_BOOL,   /* u.boolean: true or false */
    EX_STR,    /* u.str: a string literal, escapes decoded */
    EX_NAME,   /* u.name: a variable, const, input, param or bare function name;
                  may be dotted ("h.W", a layer's parameter) */
    EX_NEG,    /* u.operand: -operand */
    EX_BINARY, /* u.bin: lhs op rhs; op_loc is the operator's span */
    EX_CALL,   /* u.call: name(args), positional arguments first */
    EX_LIST,   /* u.items: [items], an array literal or a list of columns */
    EX_INDEX,  /* u.index: base[index], a gather; bracket_loc is the '[' */
} ExprKind;

struct Expr {
    ExprKind kind;
    Loc loc;    /* the whole expression (up to the end of its first line) */
    int height; /* 1 for a leaf; parse.c bounds it (PARSE_MAX_HEIGHT) so that
                   recursive walks over the tree cannot overflow the stack */
    union {
        double num;
        bool boolean;
        const char *str;
        const char *name;
        Expr *operand;
        struct {
            BinOp op;
            Expr *lhs, *rhs;
            Loc op_loc;
        } bin;
        struct {
            const char *name;
            Loc name_loc;
            ArgVec args;
        } call;
        ExprVec items;
        struct {
            Expr *base, *index;
            Loc bracket_loc;
        } index;
    } u;
};

/* One `key = value` line of a train block. */
typedef struct TrainEntry {
    const char *key;
    Loc key_loc;
    Expr *value;
} TrainEntry;
typedef Vec(TrainEntry) TrainEntryVec;

typedef struct Stmt Stmt;
typedef Vec(Stmt *) StmtVec;

/* One parameter of a user function: `name` or `name = default_value`. */
typedef struct FnParam {
    const char *name;
    Loc name_loc;
    Expr *default_value; /* NULL: the argument is required */
} FnParam;
typedef Vec(FnParam) FnParamVec;

typedef enum ParamInitOp {
    PINIT_VALUE,  /* '=' value: a constant expression or an array literal */
    PINIT_SAMPLE, /* '~' value: an initializer, bare (he) or called (normal(0, 1)) */
} ParamInitOp;

/* Kinds of statement. Every kind uses loc (the whole statement's first
 * line); the fields of Stmt each uses besides: */
typedef enum StmtKind {
    ST_CONST,  /* name, name_loc, value: const name = value */
    ST_INPUT,  /* name, name_loc, u.input: input name[dims] (: int | float)? */
    ST_PARAM,  /* name, name_loc, value, u.param: param name([dims])? (= | ~) value */
    ST_ASSIGN, /* name, name_loc, value: name = value */
    ST_OUTPUT, /* name, name_loc, value: output name = value */
    ST_TRAIN,  /* u.train: train { key = value ... } */
    ST_FN,     /* name, name_loc, u.fn: fn name(params) { body } */
    ST_RETURN, /* value: return value (only in a function's body) */
    ST_OPTIMIZER, /* name, name_loc, u.fn: optimizer name(hyperparameters) { body } */
    ST_STATE,  /* name, name_loc, value: state name = value (only in an optimizer's body) */
} StmtKind;

struct Stmt {
    StmtKind kind;
    Loc loc;
    const char *name;
    Loc name_loc;
    Expr *value;
    union {
        struct {
            ExprVec dims;
            Loc dims_loc; /* from '[' to ']' */
            bool is_int;  /* declared ": int" */
        } input;
        struct {
            bool has_dims; /* no dims: the shape comes from the value */
            ExprVec dims;
            Loc dims_loc;
            ParamInitOp init_op;
        } param;
        struct {
            TrainEntryVec entries;
        } train;
        struct {
            FnParamVec params; /* those with a default come last */
            StmtVec body;      /* fn: const, param, assignments and return;
                                  optimizer: const, state and assignments */
            Loc close_loc;     /* the '}' */
        } fn;
    } u;
};

typedef struct AstFile {
    const SrcFile *file;
    StmtVec stmts;
} AstFile;

enum { PARSE_MAX_HEIGHT = 1000, PARSE_MAX_NESTING = 256 };

/* parse.c: the statements of f that parse; each syntax error is reported to
 * d ("expected X, found Y" at the offending token) and parsing goes on at
 * the next line. Never NULL. */
AstFile *parse_file(Arena *a, Diags *d, const SrcFile *f);

/* parse.c: f's text as one expression (an optimizer given on the command
 * line); NULL after reporting a syntax error. */
Expr *parse_expression(Arena *a, Diags *d, const SrcFile *f);

/* ast.c: an S-expression for tests and debugging, e.g. "(- (neg x) 2)",
 * "(call softmax x (axis = (neg 1)))", "(index E ids)", "(param W [4 H] ~ he)",
 * "(fn block (x n (p = 0.1)) ((= h (call dense x n relu)) (return h)))". */
char *ast_expr_str(Arena *a, const Expr *e);
char *ast_stmt_str(Arena *a, const Stmt *s);
/* "+", "@", ... */
const char *ast_binop_str(BinOp op);

#endif
