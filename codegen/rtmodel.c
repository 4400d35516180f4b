/* rtmodel.c: Graph + Plan -> RtModel. See rtmodel.h. */
#include "rtmodel.h"

static RtTensor tensor_of(const Node *n, const char *name, size_t offset) {
    RtTensor t = {.name = name, .dtype = n->dtype == DT_INT ? RT_INT : RT_FLOAT,
                  .rank = n->shape.rank, .offset = offset};
    for (int i = 0; i < n->shape.rank; i++)
        t.dims[i] = n->shape.d[i] == DIM_BATCH ? RT_DIM_BATCH : n->shape.d[i];
    return t;
}

/* Whether n is the input in, or a view or rearrangement of it (an int
 * tensor can only be moved, never computed). */
static bool comes_from(const Node *n, const Node *in) {
    while (n != in && (op_has(n->op, OPF_MOVE) || op_has(n->op, OPF_VIEW)))
        n = n->src[0];
    return n == in;
}

/* The bound on the values of an integer input, from the ops that use it as
 * labels (cross-entropy, one-hot: the number of classes) or as ids (gather:
 * the table's rows); the smallest if several; 0 if none does. */
static int64_t label_limit(const Graph *g, const Node *in) {
    int64_t limit = 0;
    for (int i = 0; i < g->nodes.len; i++) {
        const Node *n = g->nodes.items[i];
        int64_t l = 0;
        if (n->dead)
            continue;
        if (n->op == OP_XENT && comes_from(n->src[1], in))
            l = n->src[0]->shape.d[n->src[0]->shape.rank - 1];
        else if (n->op == OP_ONEHOT && comes_from(n->src[0], in))
            l = n->shape.d[n->shape.rank - 1];
        else if ((n->op == OP_GATHER || n->op == OP_SCATTER_ADD) && comes_from(n->src[1], in))
            l = n->op == OP_GATHER ? n->src[0]->shape.d[0] : n->shape.d[0];
        if (l > 0 && (limit == 0 || l < limit))
            limit = l;
    }
    return limit;
}

static RtProgram program_of(Arena *a, const Graph *g, const Program *p, RtFn fn) {
    RtProgram rp = {.fn = fn, .nroots = p->roots.len};
    RtTensor *roots = arena_alloc(a, sizeof(RtTensor) * (size_t)(p->roots.len + 1));
    for (int i = 0; i < p->roots.len; i++) {
        const Node *n = p->roots.items[i];
        const char *name = n->name ? n->name : arena_printf(a, "%%%d", n->id);
        roots[i] = tensor_of(n, name, p->offset[n->id]);
    }
    (void)g;
    rp.roots = roots;
    return rp;
}

/* The IR's InitKind and RtInitKind are the same list in the same order. */
static RtInit init_of(const Init *in) {
    return (RtInit){(RtInitKind)in->kind, in->a, in->b, in->values, in->nvalues};
}

static RtHyperKind hyper_kind(HyperKind k) {
    switch (k) {
    case HYPER_VALUE: return RT_HYPER_VALUE;
    case HYPER_STEP: return RT_HYPER_STEP;
    case HYPER_EPOCH: return RT_HYPER_EPOCH;
    case HYPER_EPOCHS: return RT_HYPER_EPOCHS;
    case HYPER_RNG: return RT_HYPER_RNG;
    }
    gc_unreachable();
}

RtModel *cg_rt_model(Arena *a, const Graph *g, const Plan *plan, RtFn const fns[PROG_COUNT]) {
    RtModel *m = arena_alloc(a, sizeof *m);
    const size_t *off = plan->prog[PROG_TRAIN].offset; /* leaves: the same in every program */
    m->name = g->name;
    m->elem_size = plan->elem_size;
    m->max_batch = plan->max_batch;
    m->arena_bytes = plan->arena_bytes;

    RtTensor *params = arena_alloc(a, sizeof(RtTensor) * (size_t)(g->params.len + 1));
    RtInit *inits = arena_alloc(a, sizeof(RtInit) * (size_t)(g->params.len + 1));
    for (int i = 0; i < g->params.len; i++) {
        const Param *p = &g->params.items[i];
        params[i] = tensor_of(p->node, p->name, off[p->node->id]);
        inits[i] = init_of(&p->init);
    }
    m->nparams = g->params.len;
    m->params = params;
    m->inits = inits;

    RtTensor *inputs = arena_alloc(a, sizeof(RtTensor) * (size_t)(g->inputs.len + 1));
    for (int i = 0; i < g->inputs.len; i++) {
        const Input *in = &g->inputs.items[i];
        inputs[i] = tensor_of(in->node, in->name, off[in->node->id]);
        inputs[i].limit = label_limit(g, in->node);
    }
    m->ninputs = g->inputs.len;
    m->inputs = inputs;

    RtTensor *hypers = arena_alloc(a, sizeof(RtTensor) * (size_t)(g->hypers.len + 1));
    double *defaults = arena_alloc(a, sizeof(double) * (size_t)(g->hypers.len + 1));
    RtHyperKind *kinds = arena_alloc(a, sizeof(RtHyperKind) * (size_t)(g->hypers.len + 1));
    for (int i = 0; i < g->hypers.len; i++) {
        const Hyper *h = &g->hypers.items[i];
        hypers[i] = tensor_of(h->node, h->name, off[h->node->id]);
        defaults[i] = h->value;
        kinds[i] = hyper_kind(h->kind);
    }
    m->nhypers = g->hypers.len;
    m->hypers = hypers;
    m->hyper_defaults = defaults;
    m->hyper_kinds = kinds;

    RtTensor *states = arena_alloc(a, sizeof(RtTensor) * (size_t)(g->states.len + 1));
    RtInit *state_inits = arena_alloc(a, sizeof(RtInit) * (size_t)(g->states.len + 1));
    int *state_param = arena_alloc(a, sizeof(int) * (size_t)(g->states.len + 1));
    for (int i = 0; i < g->states.len; i++) {
        const State *st = &g->states.items[i];
        states[i] = tensor_of(st->node, st->name, off[st->node->id]);
        state_inits[i] = init_of(&st->init);
        state_param[i] = st->param;
    }
    m->nstates = g->states.len;
    m->states = states;
    m->state_inits = state_inits;
    m->state_param = state_param;

    /* The train program's roots are loss, lr (if the rule has one), then
     * the updates, then for PLAN_DATA_PARALLEL the gradients its sync
     * averages (fuse.c, collect_roots). */
    m->train = program_of(a, g, &plan->prog[PROG_TRAIN], fns[PROG_TRAIN]);
    m->train_lr_root = g->lr && m->train.nroots > 1 ? 1 : 0;
    gc_assert(!m->train_lr_root || plan->prog[PROG_TRAIN].roots.items[1] == g->lr);
    if (plan->prog[PROG_TRAIN].sync_at >= 0) {
        m->data_parallel = true;
        m->train_grad_root = plan->prog[PROG_TRAIN].grad_root;
    }
    m->grad = program_of(a, g, &plan->prog[PROG_GRAD], fns[PROG_GRAD]);
    m->eval = program_of(a, g, &plan->prog[PROG_EVAL], fns[PROG_EVAL]);
    m->predict = program_of(a, g, &plan->prog[PROG_PREDICT], fns[PROG_PREDICT]);
    switch (g->metric.kind) {
    case METRIC_NONE: m->metric = RT_METRIC_NONE; break;
    case METRIC_ARGMAX: m->metric = RT_METRIC_ARGMAX; break;
    case METRIC_THRESHOLD: m->metric = RT_METRIC_THRESHOLD; break;
    }
    m->metric_label = g->metric.label;
    m->metric_threshold = g->metric.threshold;
    m->nonfinite_status = plan->numerics_status != PLAN_NONE ? plan->numerics_status : 0;
    if (plan->profile_counters != PLAN_NONE) {
        m->profile_counters = plan->profile_counters;
        m->profile_kernels = plan->prog[PROG_TRAIN].kernels.len;
    }
    return m;
}

RtModel *cg_rt_model_jit(Arena *a, const Graph *g, const Plan *plan, const CgModule *m) {
    RtFn fns[PROG_COUNT];
    for (int k = 0; k < PROG_COUNT; k++)
        fns[k] = cg_program(m, (ProgramKind)k);
    return cg_rt_model(a, g, plan, fns);
}
