/* cmd_grad.c: gradc grad, the forward graph, the gradient graph and the
 * update as text. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "codegen/cg.h"
#include "compile.h"
#include "frontend/frontend.h"

static const char usage_grad[] =
    "usage: gradc grad M.nn [options]\n"
    "\n"
    "Prints the model's forward graph, its gradient graph (every node with its\n"
    "shape, source line and the chain rule that made it) and the optimizer\n"
    "update, after the optimisation passes.\n"
    "  --raw           print the graph before the optimisation passes\n"
    "  --kernels       also print the train step's kernels after fusion\n"
    "  -h, --help      this text\n";

/* ---- gradc grad --------------------------------------------------------------- */

int cmd_grad(int argc, char **argv) {
    const char *model = NULL;
    bool raw = false, kernels = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_grad, stdout);
            return 0;
        } else if (!strcmp(a, "--raw")) {
            raw = true;
        } else if (!strcmp(a, "--kernels")) {
            kernels = true;
        } else if (a[0] == '-') {
            return usage_error("grad", "unknown option '%s'", a);
        } else if (model) {
            return usage_error("grad", "one model file at a time ('%s' and '%s')", model, a);
        } else {
            model = a;
        }
    }
    if (!model)
        return usage_error("grad", "no model file given");
    Arena *a = arena_new();
    Diags d;
    diags_init(&d, a);
    int rc = EXIT_USER;
    Model *m = load_model(a, &d, model);
    if (!m)
        goto out;
    Graph *g = m->graph;
    if (g->loss) {
        if (!fe_build_training(m, &d, NULL, NAN)) {
            print_diags(&d);
            goto out;
        }
    } else {
        fprintf(stderr, "%s: note: the model has no 'loss = ...', so it has no gradient graph\n", model);
    }
    if (!raw)
        ir_optimize(g);
    ir_print_graph(stdout, g);
    if (kernels && g->loss) {
        Plan *plan = ir_plan(g, m->train.batch, 4);
        printf("\n");
        ir_print_program(stdout, g, &plan->prog[PROG_TRAIN]);
    }
    rc = 0;
out:
    arena_free(a);
    return rc;
}

