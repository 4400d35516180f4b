/* ir.h: the computational-graph IR.
 *
 * A Graph is a DAG of Nodes. Each node is one op of ops.def applied to its
 * sources, with a dtype, a shape whose leading dimension may be the symbolic
 * batch size, the source location of the expression it came from, and for
 * gradient nodes the rule that made it. Node ids are dense and a node's
 * sources always have smaller ids, so id order is a topological order; passes
 * keep it that way (rewrites point at older nodes or mutate in place).
 *
 * A Program is what one compiled entry point computes (train step, eval,
 * predict, gradients): its roots, the schedule of kernels after fusion, and
 * the memory plan. This header has no LLVM in it.
 */
#ifndef GRADC_IR_H
#define GRADC_IR_H

#include "base.h"

enum { IR_MAX_RANK = 4 };
#define DIM_BATCH ((int64_t)-1) /* the symbolic batch dimension, B */

typedef enum Op {
#define X(id, name, arity, flags, shape, doc) OP_##id,
#include "ops.def"
#undef X
    OP_COUNT
} Op;

enum OpFlag {
    OPF_LEAF = 1 << 0,
    OPF_ELEMWISE = 1 << 1,
    OPF_MOVE = 1 << 2,
    OPF_VIEW = 1 << 3,
    OPF_REDUCE = 1 << 4,
    OPF_COMMUTES = 1 << 5,
    OPF_SINK = 1 << 6,
};

typedef struct OpInfo {
    const char *name;
    int arity;
    unsigned flags;
    const char *doc;
} OpInfo;

extern const OpInfo op_info[OP_COUNT];
static inline bool op_has(Op op, unsigned flag) { return (op_info[op].flags & flag) != 0; }
/* Op by its printed name, or OP_COUNT. */
Op op_lookup(const char *name);

/* DT_FLOAT is the graph's one float type; codegen decides float32 or float64.
 * DT_INT is int32 (labels, token ids). */
typedef enum DType { DT_FLOAT, DT_INT } DType;

typedef struct Shape {
    int rank;
    int64_t d[IR_MAX_RANK]; /* d[i] > 0, or DIM_BATCH */
} Shape;

bool shape_eq(const Shape *a, const Shape *b);
bool shape_has_batch(const Shape *s);
/* Number of elements with the batch dimension set to batch. */
int64_t shape_numel(const Shape *s, int64_t batch);
/* "[B, 784]" into buf (at least 64 bytes); returns buf. */
char *shape_str(const Shape *s, char *buf, size_t n);

typedef struct Node Node;
struct Node {
    Op op;
    DType dtype;
    Shape shape;
    int id; /* index in Graph.nodes; sources have smaller ids */
    int nsrc;
    Node *src[2];
    Loc loc;          /* the source expression this node computes */
    const char *name; /* the variable, parameter or input it is bound to; or NULL */

    /* Gradient provenance: set on every node that autodiff or an optimizer
     * made. rule is "<op>'" or the update rule's name ("adam"); math the
     * formula it applied; origin the forward node it differentiates (for
     * update nodes: the parameter, or NULL). */
    const char *rule;
    const char *math;
    Node *origin;

    union {
        struct { int index; } leaf;        /* INPUT, PARAM, STATE, HYPER: index in the graph's table */
        struct { double value; } cst;      /* CONST */
        struct { double p; } pow;          /* POWC */
        struct {                           /* SUM, MEAN; NUMEL: of and axes */
            unsigned axes;                 /* bit i: reduce axis i of the source */
            bool keepdims;
            Shape of;                      /* NUMEL: the shape whose axes are counted */
        } red;
        struct { bool ta, tb; } mm;        /* MATMUL */
        int axis;                          /* SOFTMAX, LOG_SOFTMAX, CONCAT: a non-negative axis */
        double alpha;                      /* LEAKY_RELU: the slope for x <= 0 */
        struct { double p; int salt; } drop; /* DROPOUT: drop probability in [0, 1); which mask */
        struct { int axis; int64_t start; } slice; /* SLICE: the window's axis and first index */
        int perm[IR_MAX_RANK];             /* TRANSPOSE: out axis i is src axis perm[i] */
    } attr;

    bool dead; /* removed by a pass; kept in Graph.nodes so ids stay dense */
};

/* ---- the graph's tables ---------------------------------------------------- */

typedef struct Input {
    const char *name;
    Node *node;
    Loc loc;
} Input;

typedef enum InitKind {
    INIT_CONST,   /* every element a (0 for "= 0") */
    INIT_VALUES,  /* the literal values[], row-major, nvalues == numel */
    INIT_NORMAL,  /* normal(mean a, std b) */
    INIT_UNIFORM, /* uniform(lo a, hi b) */
    INIT_GLOROT,  /* Glorot (Xavier) uniform: limit sqrt(6 / (fan_in + fan_out)) */
    INIT_HE,      /* He (Kaiming) normal: std sqrt(2 / fan_in) */
} InitKind;

typedef struct Init {
    InitKind kind;
    double a, b;
    const double *values;
    int64_t nvalues;
} Init;

typedef struct Param {
    const char *name;
    Node *node;
    Init init;
    Loc loc;
    Node *grad; /* set by ad_backward: dloss/dparam, same shape */
} Param;

/* What the runtime stores in a HYPER leaf, and when. */
typedef enum HyperKind {
    HYPER_VALUE,  /* Hyper.value, when a session starts (lr, beta1, ...) */
    HYPER_STEP,   /* t: the number of the step being taken, from 1; before every step */
    HYPER_EPOCH,  /* epoch: the epochs finished before this step (0 in the first) */
    HYPER_EPOCHS, /* epochs: the run's total number of epochs */
    HYPER_RNG,    /* rng (int32): fresh random bits before every step (dropout) */
} HyperKind;

typedef struct Hyper {
    const char *name; /* "lr", "t", "rng" */
    Node *node;
    double value; /* HYPER_VALUE: the value the runtime stores when a session starts */
    HyperKind kind;
} Hyper;

/* An optimizer state: one slot per parameter and state of the rule, shaped
 * like the parameter, named "opt.<state>.<param>" in weight files. */
typedef struct State {
    const char *name;
    Node *node;
    int param; /* its parameter: an index in Graph.params */
    Init init; /* INIT_CONST: every element init.a */
    Loc loc;   /* the state's declaration in the rule */
} State;

typedef struct Output {
    const char *name;
    Node *node;
} Output;

/* How to score predictions on held-out data. */
typedef enum MetricKind {
    METRIC_NONE,
    METRIC_ARGMAX,    /* argmax over pred's last axis == integer label */
    METRIC_THRESHOLD, /* (pred > threshold) == (label > 0.5); pred, label same shape */
} MetricKind;

typedef struct Metric {
    MetricKind kind;
    Node *pred;
    int label; /* input index of the labels */
    double threshold;
} Metric;

typedef struct Graph {
    Arena *arena;
    Diags *diags;
    const char *name; /* the model's name: the file's base name, a C identifier */
    Vec(Node *) nodes;
    Vec(Input) inputs;
    Vec(Param) params;
    Vec(State) states;
    Vec(Hyper) hypers;
    Vec(Output) outputs;
    Node *loss;       /* a scalar, or NULL when the model has no loss */
    Metric metric;
    Vec(Node *) updates; /* ASSIGN nodes of the optimizer */
    Node *lr;            /* the learning rate the update applies (a scalar), logged per
                            epoch as "lr"; NULL if the rule has none */
    int ndropout;        /* dropout masks made so far: the next DROPOUT's salt */
    /* Nodes with ids from grad_start were made by ad_backward, from
     * update_start by the optimizer; both are nodes.len until those run. */
    int grad_start, update_start;
    bool has_grad, has_update;

    /* Provenance stamped on every node created while set (see Node.rule). */
    const char *cur_rule;
    const char *cur_math;
    Node *cur_origin;
} Graph;

Graph *graph_new(Arena *a, Diags *d, const char *name);

/* ---- building nodes --------------------------------------------------------
 * Each builder infers and checks the result's shape. On a mismatch it records
 * a diagnostic at loc that names both shapes (with notes at each operand's
 * location) and returns NULL; a NULL operand also gives NULL, silently, so
 * one mistake gives one error. */
Node *ir_input(Graph *g, const char *name, DType dt, const Shape *s, Loc loc);
Node *ir_param(Graph *g, const char *name, const Shape *s, Init init, Loc loc);
/* The HYPER_VALUE hyper name (made on first use with value; later calls
 * return it unchanged). The names of the other kinds are taken. */
Node *ir_hyper(Graph *g, const char *name, double value);
/* The float hyper of kind k (HYPER_STEP "t", HYPER_EPOCH "epoch",
 * HYPER_EPOCHS "epochs"), made on first use. */
Node *ir_hyper_kind(Graph *g, HyperKind k);
/* A STATE leaf of parameter number `param` (a float tensor of its shape)
 * named name, appended to Graph.states. */
Node *ir_state(Graph *g, const char *name, int param, Init init, Loc loc);
/* The int32 scalar hyper "rng": the runtime stores fresh random bits in it
 * before every step of the train and grad programs (dropout masks). */
Node *ir_rng_key(Graph *g);
Node *ir_const(Graph *g, double value, Loc loc);
Node *ir_numel(Graph *g, const Shape *of, unsigned axes, Loc loc);
Node *ir_unary(Graph *g, Op op, Node *x, Loc loc);
Node *ir_binary(Graph *g, Op op, Node *a, Node *b, Loc loc);
Node *ir_powc(Graph *g, Node *x, double p, Loc loc);
Node *ir_leaky_relu(Graph *g, Node *x, double alpha, Loc loc);
/* Inverted dropout of x with drop probability p in [0, 1); salt < 0 makes
 * a fresh mask, salt >= 0 reuses that dropout's mask (its gradient). */
Node *ir_dropout(Graph *g, Node *x, double p, int salt, Loc loc);
/* axes: bitmask over x's axes; 0 means all. */
Node *ir_reduce(Graph *g, Op op, Node *x, unsigned axes, bool keepdims, Loc loc);
Node *ir_matmul(Graph *g, Node *a, Node *b, bool ta, bool tb, Loc loc);
/* Whether n (a MATMUL) has the shape its sources and flags give. */
bool ir_matmul_shape_ok(const Node *n);
/* perm NULL reverses the axes. */
Node *ir_transpose(Graph *g, Node *x, const int *perm, Loc loc);
Node *ir_expand(Graph *g, Node *x, const Shape *to, Loc loc);
Node *ir_reshape(Graph *g, Node *x, const Shape *to, Loc loc);
/* axis may be negative (from the end). */
Node *ir_softmax(Graph *g, Op op, Node *x, int axis, Loc loc);
Node *ir_xent(Graph *g, Node *logits, Node *labels, Loc loc);
Node *ir_onehot(Graph *g, Node *labels, int64_t n, Loc loc);
/* a and b joined along axis (may be negative); every other dim must agree,
 * and axis must not be the batch dimension. */
Node *ir_concat(Graph *g, Node *a, Node *b, int axis, Loc loc);
/* len elements of x along axis from start (internal: the adjoint of concat). */
Node *ir_slice(Graph *g, Node *x, int axis, int64_t start, int64_t len, Loc loc);
/* table[ids]: table float of rank >= 1, ids int of any shape. */
Node *ir_gather(Graph *g, Node *table, Node *ids, Loc loc);
/* The adjoint of gather into a table of `rows` rows (internal). */
Node *ir_scatter_add(Graph *g, Node *src, Node *ids, int64_t rows, Loc loc);
/* dest (a PARAM or a STATE) <- value, a float tensor of dest's shape;
 * appended to Graph.updates. NULL (silently) when value is NULL. */
Node *ir_assign(Graph *g, Node *dest, Node *value);

/* NumPy broadcasting of a and b into out; false if they do not broadcast. */
bool shape_broadcast(const Shape *a, const Shape *b, Shape *out);

/* ---- autodiff and optimizers -------------------------------------------------
 * ad_backward appends the gradient graph: Param.grad for every parameter
 * (a zero constant where the loss does not depend on it). Requires g->loss. */
void ad_backward(Graph *g);

/* The optimizer's nodes are made between ir_update_begin (which sets
 * update_start and has_update; requires ad_backward) and ir_update_end:
 * for each parameter, its new value and those of its states, each stored
 * by an ASSIGN. The front end builds them from the rule in the model
 * language (frontend/optim.c). */
void ir_update_begin(Graph *g);
void ir_update_end(Graph *g);

/* ---- passes ------------------------------------------------------------------
 * Each pass says what it requires and what it keeps in its own file. */
bool ir_verify(Graph *g, const char **why); /* internal consistency */
void pass_simplify(Graph *g);               /* algebra: x*1, x+0, transposes into matmul */
void pass_cse(Graph *g);                    /* common subexpressions */
/* The passes in order, with the verifier between them in debug builds. */
void ir_optimize(Graph *g);
/* The same, calling after(g, name, ud) when each pass has run, with its
 * name ("simplify", "cse", "dce"; a pass that runs twice is named twice). */
typedef void (*PassObserver)(Graph *g, const char *pass, void *ud);
void ir_optimize_observed(Graph *g, PassObserver after, void *ud);

/* ---- programs, fusion, memory plan --------------------------------------- */

typedef enum ProgramKind {
    PROG_TRAIN,   /* loss, gradients, optimizer update; roots: loss, lr (if any), updates */
    PROG_GRAD,    /* loss and every parameter's gradient; no update */
    PROG_EVAL,    /* loss and the metric's prediction, no dropout */
    PROG_PREDICT, /* the outputs */
    PROG_COUNT
} ProgramKind;

/* A kernel computes one materialized node (root). A fused kernel is one loop
 * over root's shape that computes body (elementwise and movement nodes, in
 * topological order, root last) inline; other kernels are one node each. An
 * ASSIGN root stores into its parameter or state. An update kernel stores
 * every ASSIGN of one parameter (the parameter and its states) in one loop:
 * root is the first, `more` the others (all of root's shape, in id order),
 * and body holds what all of them need, each once, and the ASSIGNs
 * themselves (root still last). Each iteration computes every stored value
 * before it stores any. */
typedef struct Kernel {
    Node *root;
    bool fused;
    Vec(Node *) body;
    Vec(Node *) more; /* further ASSIGN roots of the same loop; empty elsewhere */
} Kernel;

#define PLAN_NONE ((size_t)-1)

typedef struct Program {
    ProgramKind kind;
    const char *name;
    Vec(Node *) roots; /* what the runtime reads after a run, in order */
    Vec(Kernel) kernels;
    /* Memory plan: byte offset of each materialized node in the arena, by
     * node id (PLAN_NONE: not materialized). Leaves live in the persistent
     * region [0, Plan.persistent_bytes); temporaries above it. */
    size_t *offset;
    size_t bytes; /* arena bytes this program needs */
    size_t peak_temp_bytes;
} Program;

typedef struct Plan {
    int64_t max_batch;
    int elem_size;              /* 4 (float32) or 8 (float64) */
    size_t persistent_bytes;    /* params, states, inputs, hypers */
    size_t arena_bytes;         /* max over programs */
    Program prog[PROG_COUNT];
} Plan;

/* Cut the programs out of the optimized graph, fuse, schedule and plan memory
 * for batches up to max_batch. Requires ad_backward and the update for train. */
Plan *ir_plan(Graph *g, int64_t max_batch, int elem_size);
/* The same for only the programs whose bit (1u << ProgramKind) is in mask;
 * the others get no roots and no kernels. */
Plan *ir_plan_programs(Graph *g, int64_t max_batch, int elem_size, unsigned mask);
size_t node_bytes(const Node *n, int64_t batch, int elem_size);

/* ---- printing ------------------------------------------------------------- */
void ir_print_node(FILE *out, const Graph *g, const Node *n);
/* The forward graph, then the gradient graph, then the updates. */
void ir_print_graph(FILE *out, const Graph *g);
void ir_print_program(FILE *out, const Graph *g, const Program *p);

#endif
