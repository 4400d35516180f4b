/* passes.c: the pass pipeline, node forwarding, and dead code elimination.
 *
 * ir_optimize is the whole middle end as one list of pass calls, with the
 * verifier between passes in debug builds (GRADC_VERIFY).
 */
#include "pass.h"

#include <stdlib.h>

Node **fwd_new(Graph *g) {
    return arena_alloc(g->arena, sizeof(Node *) * (size_t)(g->nodes.len + 1));
}

Node *fwd_get(Node **fwd, Node *x) {
    while (x && fwd[x->id])
        x = fwd[x->id];
    return x;
}

void graph_apply_forwards(Graph *g, Node **fwd) {
    for (int i = 0; i < g->nodes.len; i++) {
        Node *n = g->nodes.items[i];
        if (fwd[i])
            n->dead = true;
        for (int s = 0; s < n->nsrc; s++)
            n->src[s] = fwd_get(fwd, n->src[s]);
    }
    g->loss = fwd_get(fwd, g->loss);
    g->metric.pred = fwd_get(fwd, g->metric.pred);
    g->lr = fwd_get(fwd, g->lr);
    for (int i = 0; i < g->outputs.len; i++)
        g->outputs.items[i].node = fwd_get(fwd, g->outputs.items[i].node);
    for (int i = 0; i < g->params.len; i++)
        g->params.items[i].grad = fwd_get(fwd, g->params.items[i].grad);
}

void graph_for_each_root(Graph *g, void (*f)(Node *n, void *ud), void *ud) {
    if (g->loss)
        f(g->loss, ud);
    if (g->metric.pred)
        f(g->metric.pred, ud);
    if (g->lr)
        f(g->lr, ud);
    for (int i = 0; i < g->outputs.len; i++)
        f(g->outputs.items[i].node, ud);
    for (int i = 0; i < g->params.len; i++)
        if (g->params.items[i].grad)
            f(g->params.items[i].grad, ud);
    for (int i = 0; i < g->updates.len; i++)
        f(g->updates.items[i], ud);
    /* Leaves are the runtime's interface: they stay even when unused. */
    for (int i = 0; i < g->inputs.len; i++)
        f(g->inputs.items[i].node, ud);
    for (int i = 0; i < g->params.len; i++)
        f(g->params.items[i].node, ud);
    for (int i = 0; i < g->states.len; i++)
        f(g->states.items[i].node, ud);
    for (int i = 0; i < g->hypers.len; i++)
        f(g->hypers.items[i].node, ud);
}

static void mark_live(Node *n, void *ud) { ((bool *)ud)[n->id] = true; }

/* requires: nothing. keeps: ids; removes: nodes no root needs. */
void pass_dce(Graph *g) {
    bool *live = arena_alloc(g->arena, (size_t)g->nodes.len);
    graph_for_each_root(g, mark_live, live);
    for (int i = g->nodes.len - 1; i >= 0; i--) {
        Node *n = g->nodes.items[i];
        if (!live[i] || n->dead) {
            n->dead = true;
            continue;
        }
        for (int s = 0; s < n->nsrc; s++)
            live[n->src[s]->id] = true;
    }
}

static void verify_or_die(Graph *g, const char *after) {
#ifdef GRADC_VERIFY
    const char *why = NULL;
    if (!ir_verify(g, &why)) {
        fprintf(stderr, "gradc: internal error: IR invalid after %s: %s\n", after, why);
        abort();
    }
#else
    (void)g, (void)after;
#endif
}

static void ran(Graph *g, const char *pass, PassObserver after, void *ud) {
    verify_or_die(g, pass);
    if (after)
        after(g, pass, ud);
}

void ir_optimize_observed(Graph *g, PassObserver after, void *ud) {
    verify_or_die(g, "autodiff");
    pass_simplify(g);
    ran(g, "simplify", after, ud);
    pass_cse(g);
    ran(g, "cse", after, ud);
    pass_simplify(g);
    ran(g, "simplify", after, ud);
    pass_dce(g);
    ran(g, "dce", after, ud);
}

void ir_optimize(Graph *g) { ir_optimize_observed(g, NULL, NULL); }
