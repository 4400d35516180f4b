/* cmd_emit.c: gradc emit, the compiled programs as IR, LLVM IR or assembly;
 * with --time-passes, the time of each compile stage on stderr. */
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "codegen/cg.h"
#include "compile.h"
#include "frontend/frontend.h"
#include "timing.h"

static const char usage_emit[] =
    "usage: gradc emit M.nn [--ir | --llvm | --asm] [--batch N] [--optimizer R]\n"
    "                       [--time-passes]\n"
    "\n"
    "Compiles the model for training as gradc train does and prints, to stdout:\n"
    "  --ir            the graph after the optimisation passes and the kernels of\n"
    "                  every program after fusion (the default)\n"
    "  --llvm          the LLVM IR after LLVM's optimisation\n"
    "  --asm           the host CPU's assembly\n"
    "  --batch N       the largest batch to compile for (default: the train block's)\n"
    "  --optimizer R   the update rule (default: the train block's)\n"
    "  --time-passes   time each compile stage (on stderr)\n"
    "  -h, --help      this text\n";

/* ---- gradc emit --------------------------------------------------------------- */

int cmd_emit(int argc, char **argv) {
    /* volatile: set before the out-of-memory setjmp below and read after
     * it, where gcc -O2 cannot see that nothing changes them */
    const char *model = NULL, *volatile optimizer = NULL;
    volatile enum { EMIT_IR, EMIT_LLVM, EMIT_ASM } what = EMIT_IR;
    int64_t batch = 0;
    volatile bool time_passes = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_emit, stdout);
            return 0;
        } else if (!strcmp(a, "--ir")) {
            what = EMIT_IR;
        } else if (!strcmp(a, "--llvm")) {
            what = EMIT_LLVM;
        } else if (!strcmp(a, "--asm")) {
            what = EMIT_ASM;
        } else if (!strcmp(a, "--time-passes")) {
            time_passes = true;
        } else if ((v = run_opt_value(argc, argv, &i, "--batch"))) {
            if (!run_parse_i64(v, 1, &batch) || batch > (1 << 24))
                return usage_error("emit", "--batch expects an integer from 1 to 16777216, got '%s'", v);
        } else if ((v = run_opt_value(argc, argv, &i, "--optimizer"))) {
            optimizer = v;
        } else if (a[0] == '-') {
            return usage_error("emit", "unknown option '%s'", a);
        } else if (model) {
            return usage_error("emit", "one model file at a time ('%s' and '%s')", model, a);
        } else {
            model = a;
        }
    }
    if (!model)
        return usage_error("emit", "no model file given");
    Arena *a = arena_new();
    if (!a)
        return compile_out_of_memory(NULL, model);
    Diags d;
    diags_init(&d, a);
    int rc = EXIT_USER;
    CgModule *volatile cg = NULL; /* volatile: read after a longjmp */
    jmp_buf oom;
    if (setjmp(oom)) {
        rc = compile_out_of_memory(a, model);
        goto out;
    }
    arena_set_oom(a, &oom);
    Timing tm;
    timing_start(&tm, time_passes);
    Model *m = load_model(a, &d, model);
    if (!m)
        goto out;
    timing_mark(&tm, "front end");
    Graph *g = m->graph;
    if (g->loss) {
        if (!fe_build_training(m, &d, optimizer, NAN)) {
            print_diags(&d);
            goto out;
        }
        timing_mark(&tm, "autodiff and update");
    }
    ir_optimize_observed(g, timing_pass_observer, &tm);
    Plan *plan = ir_plan(g, batch ? batch : m->train.batch, 4);
    timing_mark(&tm, "fuse and plan");
    if (what == EMIT_IR) {
        ir_print_graph(stdout, g);
        for (int k = 0; k < PROG_COUNT; k++)
            if (plan->prog[k].roots.len) {
                printf("\n");
                ir_print_program(stdout, g, &plan->prog[k]);
            }
        fflush(stdout);
        timing_mark(&tm, "print");
        timing_print(&tm, stderr);
        rc = 0;
        goto out;
    }
    CgOptions co = {.elem_size = 4, .opt_level = 2, .stage = timing_stage_observer,
                    .stage_ud = &tm};
    cg = cg_compile(g, plan, &co, &d);
    if (!cg) {
        print_diags(&d);
        goto out;
    }
    char *err = NULL;
    char *text = what == EMIT_LLVM ? cg_llvm_ir(cg) : cg_module_asm(cg, &err);
    if (!text) {
        fprintf(stderr, "gradc: error: %s\n", err ? err : "no code");
        free(err);
        goto out;
    }
    if (what == EMIT_ASM)
        timing_mark(&tm, "llvm-asm");
    fputs(text, stdout);
    free(text);
    fflush(stdout);
    timing_mark(&tm, "print");
    timing_print(&tm, stderr);
    rc = 0;
out:
    cg_free(cg);
    arena_free(a);
    return rc;
}

