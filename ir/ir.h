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

    /* Test hooks (docs/testing.md), NULL in normal use; the driver sets them
     * from the environment before ad_backward runs (ir/ reads none).
     * test_broken_grad: an op's printed name ("sigmoid"); ad_backward scales
     * what that op's rule contributes by 1.25, a plausible bug for gradc
     * check to find. test_no_grad: comma-separated op names that ad_backward
     * treats as having no gradient rule. */
    const char *test_broken_grad;
    const char *test_no_grad;
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
 * (a zero constant where the loss does not depend on it). Requires g->loss.
 * First it checks that every op on a path from a parameter to the loss has
 * a gradient rule; if some do not, it reports each use of one in g->diags
 * ("'op' has no gradient rule; gradc cannot train through it", at the
 * expression) and returns false without changing g. */
bool ad_backward(Graph *g);

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
    /* The peak of the temporaries, for reports (gradc summary): the first
     * kernel at which the buffers live take the most (-1: no
     * temporaries), the storage nodes of those buffers, and the sum of
     * their sizes as placed (aligned; = peak_temp_bytes). No placement
     * can need less; bytes - Plan.persistent_bytes - peak_live_bytes is
     * what the gaps of this one cost. */
    int peak_kernel;
    Vec(Node *) peak_live;
    size_t peak_live_bytes;
    /* PLAN_CHECK_NUMERICS (the train program): after each kernel, codegen
     * tests every value it stored and, at the first NaN or Inf, writes the
     * kernel's index + 1 into the status word (Plan.numerics_status), puts
     * back the parameters and states the update kernels so far overwrote,
     * and returns without running the kernels after it. */
    bool check_numerics;
    /* PLAN_PROFILE (the train program): codegen reads a monotonic clock
     * (rt_profile_clock) before the first kernel and after each one, and
     * adds each kernel's nanoseconds, the program's and 1 (a run) to the
     * counters at Plan.profile_counters. */
    bool profile;
    /* PLAN_DATA_PARALLEL (the train program): codegen calls the runtime's
     * rt_dist_sync(arena) before kernel sync_at (-1: never), when every
     * kernel before it has made the gradients the processes of a
     * data-parallel run average, roots[grad_root, roots.len) (perhaps
     * none), and the loss, and no kernel after it has read one. */
    int grad_root;
    int sync_at;
} Program;

typedef struct Plan {
    int64_t max_batch;
    int elem_size;              /* 4 (float32) or 8 (float64) */
    size_t persistent_bytes;    /* params, states, inputs, hypers */
    size_t arena_bytes;         /* max over programs */
    Program prog[PROG_COUNT];
    /* PLAN_CHECK_NUMERICS: the byte offset of the int64 status word, after
     * every leaf in the persistent region (so the leaves' offsets do not
     * depend on it); PLAN_NONE otherwise. */
    size_t numerics_status;
    /* PLAN_CHECK_NUMERICS: by node id, for each PARAM and STATE, the byte
     * offset of its backup, after the status word: a checked update kernel
     * saves the old values there as it overwrites them, and a failed check
     * in an update kernel copies them back (lower.c). NULL otherwise. */
    size_t *numerics_backup;
    /* PLAN_PROFILE: the byte offset of nk + 2 int64 counters (nk: the train
     * program's kernels), after every leaf and, with PLAN_CHECK_NUMERICS,
     * after the status word and the backups (so no other offset depends on
     * it): counter k < nk the nanoseconds kernel k has run, counter nk the
     * nanoseconds of the whole program, counter nk + 1 its runs. The
     * runtime zeroes the arena, so they count from 0. PLAN_NONE otherwise. */
    size_t profile_counters;
} Plan;

/* How ir_plan_flags plans. */
enum PlanFlag {
    /* The train program checks what each kernel stores for NaN and Inf
     * (Program.check_numerics), with a status word and a backup of every
     * parameter and state in the persistent region (Plan.numerics_status,
     * numerics_backup), and leaves them as they were when a check fails. */
    PLAN_CHECK_NUMERICS = 1u << 0,
    /* No fusion: every computed node is a kernel of its own and stored,
     * except constants and element counts, which stay inline (update
     * kernels still store all the ASSIGNs of one parameter). The persistent
     * region is the same as with fusion. For finding the node that made a
     * NaN (gradc train --check-numerics), not for speed. */
    PLAN_NO_FUSE = 1u << 1,
    /* The train program times its kernels (Program.profile) into counters
     * in the persistent region (Plan.profile_counters): gradc train
     * --profile. Combines with PLAN_CHECK_NUMERICS. */
    PLAN_PROFILE = 1u << 2,
    /* The train program of one process of a data-parallel run (gradc
     * train --mpi): each parameter gradient that depends on the batch is
     * also a root (Program.grad_root), and the kernels run in two phases:
     * first every kernel that does not read a gradient (the forward and
     * backward passes), then, after a call to rt_dist_sync that averages
     * the gradients over the processes (Program.sync_at), the kernels that
     * do (gradient clipping, the updates). Updates then no longer run
     * right after their gradient. */
    PLAN_DATA_PARALLEL = 1u << 3,
};

/* Cut the programs out of the optimized graph, fuse, schedule and plan memory
 * for batches up to max_batch. Requires ad_backward and the update for train. */
Plan *ir_plan(Graph *g, int64_t max_batch, int elem_size);
/* The same for only the programs whose bit (1u << ProgramKind) is in mask;
 * the others get no roots and no kernels. */
Plan *ir_plan_programs(Graph *g, int64_t max_batch, int elem_size, unsigned mask);
/* The same with flags, a set of PlanFlag (0: exactly ir_plan_programs). */
Plan *ir_plan_flags(Graph *g, int64_t max_batch, int elem_size, unsigned mask, unsigned flags);
size_t node_bytes(const Node *n, int64_t batch, int elem_size);

/* ---- cost (ir/cost.c) ----------------------------------------------------------
 * Floating-point operations at a batch size, by the convention of cost.c's
 * header (docs/commands.md, gradc summary): matmul 2*M*N*K, elementwise 1
 * per output element, reductions 1 per input element. */
typedef enum CostPart { COST_FORWARD, COST_BACKWARD, COST_UPDATE, COST_PARTS } CostPart;
int64_t ir_node_flops(const Node *n, int64_t batch);
/* Which part n belongs to, by who made it (Graph.grad_start, update_start). */
CostPart ir_node_part(const Graph *g, const Node *n);
/* What one kernel computes: its root, or every node of its loop. */
int64_t ir_kernel_flops(const Kernel *k, int64_t batch);
/* Every node p's kernels compute, each once, by part, into flops. */
void ir_program_flops(const Graph *g, const Program *p, int64_t batch, int64_t flops[COST_PARTS]);

/* ---- printing ------------------------------------------------------------- */
/* How reports name kernel k (gradc summary's kernel table, gradc train
 * --profile), all in the arena a. */
typedef enum KernelGroup { KG_GEMM, KG_LOOP, KG_UPDATE, KG_OTHER, KG_COUNT } KernelGroup;
typedef struct KernelLabel {
    /* "gemm" (a matrix product), "loop, 3 ops" (a fused loop; constants not
     * counted), "update of h.W, 12 ops, 3 stores", "reduction (sum)", or
     * the op of a one-node kernel ("softmax", "xent") */
    const char *kind;
    const char *root;   /* the stored node as "%12 h": its id and name */
    const char *source; /* "file:line" of the root, an update's parameter's
                           declaration, or "-" for built-in code */
    KernelGroup group;  /* gemm, fused loop, update, anything else */
} KernelLabel;
KernelLabel ir_kernel_label(Arena *a, const Graph *g, const Kernel *k);
void ir_print_node(FILE *out, const Graph *g, const Node *n);
/* The forward graph, then the gradient graph, then the updates. */
void ir_print_graph(FILE *out, const Graph *g);
void ir_print_program(FILE *out, const Graph *g, const Program *p);
/* Who made n, into buf (returned; "" for a node without a rule): "adjoint
 * of sigmoid at xor.nn:16: g * s * (1 - s)" (the forward op it
 * differentiates and that op's location), "sgd update of W1 at
 * <prelude>:18: p = p - lr * g" (the statement of the rule that made it),
 * "seed at ...", "zero gradient of W at ...", "clip_norm at ...". */
char *ir_node_provenance(const Graph *g, const Node *n, char *buf, size_t len);
/* keep: by node id, the nodes to show (NULL: every node). The sections of
 * ir_print_graph with only those nodes, and only the output, loss, grad,
 * state and lr lines of kept nodes. */
void ir_print_graph_subset(FILE *out, const Graph *g, const bool *keep);
/* p's kernels whose root keep keeps (NULL: every kernel), numbered as in p. */
void ir_print_program_subset(FILE *out, const Graph *g, const Program *p, const bool *keep);
/* saved[id] (g->nodes.len entries): the forward nodes (ids below
 * grad_start, constants and element counts aside) that a live gradient or
 * update node keep keeps reads, through views (a reshape's source). */
void ir_kept_for_backward(const Graph *g, const bool *keep, bool *saved);
/* The "# kept for the backward pass" section: each computed value of
 * ir_kept_for_backward with its element count (B symbolic) and bytes in
 * float32 at batch, their total, and the leaves it reads on one line. */
void ir_print_kept(FILE *out, const Graph *g, const bool *keep, int64_t batch);
/* keep (g->nodes.len entries): what the gradient and the update of
 * parameter number param need: Param.grad and the ASSIGNs into the
 * parameter and its states, with everything they read, transitively, and
 * the parameter's states. */
void ir_grad_slice(const Graph *g, int param, bool *keep);

/* Graphviz (ir/dot.c): the graph as a DOT digraph. Forward, gradient and
 * update nodes in three fill colours (a legend says which), each labelled
 * with its id, name and op, shape, source location and (gradient and
 * update nodes) the rule that made it; edges labelled with their source's
 * shape. keep as above. With train (a planned program of g, or NULL), its
 * fused kernels are boxes (clusters "kernel k (fused loop)") around the
 * nodes their loops compute; a node inlined into several loops stays
 * outside them, dashed, and names them. Node k is named "n<k>" in the DOT
 * (what an SVG's <title> shows). title: the graph's caption. */
void ir_write_dot(FILE *out, const Graph *g, const Program *train, const bool *keep,
                  const char *title);

#endif
