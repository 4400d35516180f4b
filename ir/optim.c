/* optim.c: the bracket around an optimizer's update nodes.
 *
 * Requires: ad_backward (Param.grad). The update rules themselves are not
 * here: they are written in the model language and the front end lowers
 * one, per parameter, into ordinary nodes between ir_update_begin and
 * ir_update_end: HYPER leaves for its hyperparameters (values the runtime
 * sets, so changing one needs no recompilation, and t, epoch, epochs),
 * STATE leaves for its per-parameter state, and one ASSIGN per parameter
 * and state that stores the new value. Fusion turns all the ASSIGNs of one
 * parameter into one loop (fuse.c).
 */
#include "ir.h"

void ir_update_begin(Graph *g) {
    gc_assert(g->has_grad && !g->has_update);
    for (int i = 0; i < g->params.len; i++)
        gc_assert(g->params.items[i].grad);
    g->update_start = g->nodes.len;
    g->has_update = true;
}

/* Checks what fusion and the runtime rely on: every ASSIGN writes a
 * different parameter or state, and the learning rate is a float scalar. */
void ir_update_end(Graph *g) {
    gc_assert(g->has_update);
    for (int i = 0; i < g->updates.len; i++)
        for (int j = i + 1; j < g->updates.len; j++)
            gc_assert(g->updates.items[i]->src[0] != g->updates.items[j]->src[0]);
    gc_assert(!g->lr || (g->lr->shape.rank == 0 && g->lr->dtype == DT_FLOAT));
    g->cur_rule = g->cur_math = NULL;
    g->cur_origin = NULL;
}
