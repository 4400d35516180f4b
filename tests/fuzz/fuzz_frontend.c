/* fuzz_frontend.c: the model language, from source text to the memory plan,
 * on any bytes: what gradc summary does before it prints, plus the graph
 * printers. Any input must give diagnostics or a plan, never a crash, a
 * hang, a leak, a failed assertion (the IR verifier runs between passes in
 * the fuzz build) or undefined behaviour. The printers are gradc grad's:
 * the graph, the programs, Graphviz, the kept-for-backward table of a
 * --wrt slice. No LLVM: code generation is not fuzzed here.
 *
 * Input: the model file's text. A NUL byte ends the run, as gradc refuses
 * such a file before the front end sees it (driver/compile.c, load_model).
 */
#include "fuzz.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/frontend.h"

/* Where the printers write: nowhere, opened once. */
static FILE *null_out(void) {
    static FILE *out;
    if (!out)
        out = fopen("/dev/null", "w");
    return out;
}

static void first_error(const Diags *d, FuzzResult *r) {
    for (int k = 0; k < d->list.len; k++)
        if (d->list.items[k].level == DIAG_ERROR) {
            char *s = diag_format(d->arena, &d->list.items[k]);
            snprintf(r->msg, sizeof r->msg, "%s", s);
            return;
        }
}

/* Every program of g's plan printed, and its FLOPs counted. */
static void print_plan(const Graph *g, const Plan *plan, FILE *out) {
    for (int p = 0; p < PROG_COUNT; p++) {
        const Program *prog = &plan->prog[p];
        int64_t flops[COST_PARTS];
        ir_print_program(out, g, prog);
        ir_program_flops(g, prog, plan->max_batch, flops);
    }
}

void fuzz_frontend(const uint8_t *data, size_t size, FuzzResult *r) {
    *r = (FuzzResult){0};
    if (memchr(data, 0, size))
        return;
    char *text = malloc(size + 1);
    if (!text)
        return;
    memcpy(text, data, size);
    text[size] = 0;
    Arena *a = arena_new();
    Diags d;
    diags_init(&d, a);
    Model *m = fe_compile(a, &d, "fuzz.nn", text);
    free(text);
    FILE *out = null_out();
    if (m && !d.nerrors && (!m->graph->loss || fe_build_training(m, &d, NULL, NAN))) {
        Graph *g = m->graph;
        ir_optimize(g);
        unsigned mask = g->loss ? ~0u : 1u << PROG_PREDICT;
        Plan *plan = ir_plan_programs(g, m->train.batch, 4, mask);
        if (out) {
            ir_print_graph(out, g);
            print_plan(g, plan, out);
            ir_write_dot(out, g, g->loss ? &plan->prog[PROG_TRAIN] : NULL, NULL, "fuzz");
            if (g->loss && g->params.len > 0) {
                /* gradc grad --wrt: the first parameter's slice */
                bool *keep = arena_alloc(a, (size_t)g->nodes.len + 1);
                ir_grad_slice(g, 0, keep);
                ir_print_graph_subset(out, g, keep);
                ir_print_kept(out, g, keep, m->train.batch);
            }
        }
    }
    r->errors = d.nerrors;
    first_error(&d, r);
    arena_free(a);
}
