/* optim.c: optimizer update rules as graph builders.
 *
 * Requires: ad_backward (Param.grad). Adds: for every parameter, the nodes of
 * its new value and an ASSIGN that stores it, stamped with the rule's name.
 * Hyperparameters are HYPER leaves the runtime sets before each step, so
 * changing the learning rate needs no recompilation. A rule is a function
 * over one parameter; the table below is where new rules plug in.
 */
#include "ir.h"

#include <string.h>

/* p <- p - lr * g */
static void build_sgd(Graph *g, const Optimizer *opt) {
    Node *lr = ir_hyper(g, opt->hyper_names[0], opt->hyper_values[0]);
    g->cur_rule = "sgd";
    g->cur_math = "p - lr * g";
    for (int i = 0; i < g->params.len; i++) {
        Param *p = &g->params.items[i];
        g->cur_origin = p->node;
        Node *step = ir_binary(g, OP_MUL, lr, p->grad, p->loc);
        ir_assign(g, p->node, ir_binary(g, OP_SUB, p->node, step, p->loc));
    }
}

static const Optimizer builtin[] = {
    {"sgd", build_sgd, 1, {"lr"}, {0.01}},
};

const char *const *opt_names(int *n) {
    enum { N = sizeof builtin / sizeof builtin[0] };
    static const char *names[N];
    for (int i = 0; i < N; i++)
        names[i] = builtin[i].name;
    *n = N;
    return names;
}

const Optimizer *opt_lookup(const char *name) {
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
        if (strcmp(builtin[i].name, name) == 0)
            return &builtin[i];
    return NULL;
}

void opt_build(Graph *g, const Optimizer *opt) {
    for (int i = 0; i < g->params.len; i++)
        gc_assert(g->params.items[i].grad);
    g->update_start = g->nodes.len;
    g->has_update = true;
    opt->build(g, opt);
    g->cur_rule = g->cur_math = NULL;
    g->cur_origin = NULL;
}
