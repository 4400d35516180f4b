/* cmd_grad.c: gradc grad, the forward graph, the gradient graph and the
 * update, as text or as a Graphviz picture (--dot, --svg), after a named
 * pass (--after), for one parameter (--wrt).
 *
 * The text and the DOT come from ir/ (print.c, dot.c); this file picks the
 * moment to print (an observer of the passes), cuts the slice, and runs
 * Graphviz's dot program for SVG. It never writes a half file: --dot and
 * --svg go through run_out_open (a temporary file renamed into place),
 * except into a device or a pipe, which is written in place.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmds.h"
#include "codegen/cg.h"
#include "compile.h"
#include "frontend/frontend.h"
#include "timing.h"

extern char **environ;

static const char usage_grad[] =
    "usage: gradc grad M.nn [--after PASS] [--wrt NAME] [--dot F] [--svg F]\n"
    "                       [--kernels] [--optimizer R] [--time-passes]\n"
    "\n"
    "Prints the model's forward graph, its gradient graph and the optimizer\n"
    "update: every node with its shape, source line and, for gradient and\n"
    "update nodes, the rule that made it; then the forward values the\n"
    "backward pass keeps, with their size at the train block's batch.\n"
    "  --after PASS    the graph after that pass: autodiff (before any pass),\n"
    "                  simplify (its first run), cse, dce (the default), or\n"
    "                  fuse (the train step's kernels after fusion)\n"
    "  --raw           the same as --after autodiff\n"
    "  --wrt NAME      only what the gradient and the update of parameter\n"
    "                  NAME need\n"
    "  --dot F         write the graph as Graphviz DOT to F ('-': stdout)\n"
    "  --svg F         draw it as SVG into F with Graphviz's dot program\n"
    "                  ('-': stdout); --dot and --svg replace the text\n"
    "  --kernels       also print the train step's kernels after fusion\n"
    "  --optimizer R   the update rule (default: the train block's)\n"
    "  --time-passes   time each compile stage (on stderr)\n"
    "  -h, --help      this text\n";

/* The moments --after names, in the order they happen. */
typedef enum After { AFTER_AUTODIFF, AFTER_SIMPLIFY, AFTER_CSE, AFTER_DCE, AFTER_FUSE } After;
static const char *const after_names[] = {"autodiff", "simplify", "cse", "dce", "fuse"};
enum { NAFTER = sizeof after_names / sizeof after_names[0] };

/* What to show and where; filled from the command line, then from the
 * model. */
typedef struct GradJob {
    const char *model;
    After after;
    bool kernels;
    const char *dot, *svg; /* NULL: not asked for */
    const char *wrt;       /* a parameter's name, or NULL */
    Model *m;
    Graph *g;
    int param;  /* --wrt: the parameter's index */
    bool *keep; /* --wrt: ir_grad_slice of it, cut in emit; else NULL */
    Timing *tm;
    bool shown; /* emitted (at the first run of the pass) */
    int rc;
} GradJob;

/* ---- Graphviz ------------------------------------------------------------------ */

/* DOT text of j's graph (malloc'ed, NUL-terminated; *len its length), with
 * train's fused kernels as clusters (train may be NULL). */
static char *dot_text(const GradJob *j, const Program *train, const bool *keep, size_t *len) {
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (!f) {
        fprintf(stderr, "gradc: error: out of memory\n");
        return NULL;
    }
    char title[512];
    size_t k = (size_t)snprintf(title, sizeof title, "%s: %s after %s", j->model,
                                j->after == AFTER_FUSE ? "the train step's kernels"
                                : j->g->has_grad       ? "forward, gradient and update graph"
                                                       : "forward graph",
                                after_names[j->after]);
    if (j->wrt && k < sizeof title)
        snprintf(title + k, sizeof title - k, ", what the gradient of %s needs", j->wrt);
    ir_write_dot(f, j->g, train, keep, title);
    if (fclose(f) != 0) {
        free(text);
        fprintf(stderr, "gradc: error: out of memory\n");
        return NULL;
    }
    return text;
}

/* Run `dot -Tsvg` with text on its stdin and its stdout into out. 0, or 1
 * after saying why on stderr; 2: there is no dot program on PATH. */
static int run_dot(const char *text, size_t len, FILE *out) {
    int in[2];
    if (pipe(in) != 0) {
        fprintf(stderr, "gradc: error: --svg: cannot make a pipe: %s\n", strerror(errno));
        return 1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, fileno(out), 1);
    posix_spawn_file_actions_addclose(&fa, in[0]);
    posix_spawn_file_actions_addclose(&fa, in[1]);
    char *argv[] = {"dot", "-Tsvg", NULL};
    pid_t pid;
    fflush(out);
    int e = posix_spawnp(&pid, "dot", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    if (e != 0) {
        close(in[1]);
        if (e == ENOENT)
            return 2;
        fprintf(stderr, "gradc: error: --svg: cannot run Graphviz's dot: %s\n", strerror(e));
        return 1;
    }
    /* dot may exit before reading everything: a write error, not SIGPIPE */
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(in[1], text + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    close(in[1]);
    signal(SIGPIPE, old);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) {
            fprintf(stderr, "gradc: error: --svg: waiting for dot: %s\n", strerror(errno));
            return 1;
        }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
        return 2; /* posix_spawnp of an older libc: exec failed in the child */
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || done < len) {
        fprintf(stderr, "gradc: error: --svg: Graphviz's dot failed (%s %d)\n",
                WIFEXITED(st) ? "exit status" : "signal",
                WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        return 1;
    }
    return 0;
}

/* --dot F or --svg F (svg: through dot) from the DOT text; F atomically,
 * "-" stdout. */
static int write_picture(const char *path, const char *text, size_t len, bool svg) {
    RunOut out;
    RtError err;
    bool to_stdout = !strcmp(path, "-");
    if (run_out_open(to_stdout ? NULL : path, &out, &err) != RT_OK) {
        fprintf(stderr, "gradc: error: %s\n", err.msg);
        return EXIT_USER;
    }
    int rc = 0;
    if (svg) {
        rc = run_dot(text, len, out.f);
        if (rc == 2)
            fprintf(stderr, "gradc: error: --svg needs Graphviz's 'dot' program; install it "
                            "(Debian: apt-get install graphviz), or write DOT with --dot F and "
                            "render it elsewhere\n");
    } else {
        fwrite(text, 1, len, out.f);
    }
    bool ok = rc == 0 && !ferror(out.f);
    if (rc == 0 && !ok) {
        if (to_stdout)
            fprintf(stderr, "gradc: error: cannot write to stdout\n");
        else
            fprintf(stderr, "gradc: error: cannot write '%s'\n", path);
    }
    if (run_out_finish(to_stdout ? NULL : path, &out, ok, &err) != RT_OK) {
        if (ok) /* the flush, sync or rename failed */
            fprintf(stderr, "gradc: error: %s\n", err.msg);
        return EXIT_USER;
    }
    return ok ? 0 : EXIT_USER;
}

/* ---- what to show --------------------------------------------------------------- */

/* The program --after fuse and --kernels show, and whose fused kernels the
 * picture boxes: train's, or predict's for a model without a loss. */
static const Program *shown_program(const GradJob *j, const Plan *plan) {
    return plan ? &plan->prog[j->g->loss ? PROG_TRAIN : PROG_PREDICT] : NULL;
}

/* keep restricted to the nodes p computes and what they read. */
static bool *program_mask(const GradJob *j, const Program *p) {
    Graph *g = j->g;
    bool *in = arena_alloc(g->arena, (size_t)g->nodes.len + 1);
    for (int k = 0; k < p->kernels.len; k++) {
        const Kernel *kn = &p->kernels.items[k];
        Node *const one[1] = {kn->root};
        Node *const *body = kn->fused ? kn->body.items : one;
        int nb = kn->fused ? kn->body.len : 1;
        for (int i = 0; i < nb; i++) {
            in[body[i]->id] = true;
            for (int s = 0; s < body[i]->nsrc; s++)
                in[body[i]->src[s]->id] = true;
        }
        for (int i = 0; i < kn->more.len; i++)
            in[kn->more.items[i]->id] = true;
    }
    for (int i = 0; i < g->nodes.len; i++)
        in[i] = in[i] && (!j->keep || j->keep[i]);
    return in;
}

/* Print or draw the graph as it is now; plan: the programs after fusion
 * (NULL before the passes have all run). */
static void emit(GradJob *j, const Plan *plan) {
    j->shown = true;
    Graph *g = j->g;
    if (j->wrt) { /* cut now: the passes forward, kill and add nodes */
        j->keep = arena_alloc(g->arena, (size_t)g->nodes.len + 1);
        ir_grad_slice(g, j->param, j->keep);
    }
    const Program *prog = shown_program(j, plan);
    if (!j->dot && !j->svg) {
        if (j->after == AFTER_FUSE) {
            ir_print_program_subset(stdout, g, prog, j->keep);
        } else {
            ir_print_graph_subset(stdout, g, j->keep);
            ir_print_kept(stdout, g, j->keep, j->m->train.batch);
            if (j->kernels && prog) {
                printf("\n");
                ir_print_program_subset(stdout, g, prog, j->keep);
            }
        }
        if (fflush(stdout) != 0 || ferror(stdout)) {
            fprintf(stderr, "gradc: error: cannot write to stdout\n");
            j->rc = EXIT_USER;
        }
        timing_mark(j->tm, "print");
        return;
    }
    const bool *keep = j->after == AFTER_FUSE ? program_mask(j, prog) : j->keep;
    size_t len = 0;
    char *text = dot_text(j, prog, keep, &len);
    if (!text) {
        j->rc = EXIT_USER;
        return;
    }
    timing_mark(j->tm, "print");
    if (j->dot && (j->rc = write_picture(j->dot, text, len, false)) == 0)
        timing_mark(j->tm, "print");
    if (j->svg && !j->rc && (j->rc = write_picture(j->svg, text, len, true)) == 0)
        timing_mark(j->tm, "graphviz");
    free(text);
}

/* ir_optimize_observed's observer: time the pass, and show the graph after
 * the first run of the pass --after names. */
static void after_pass(Graph *g, const char *pass, void *ud) {
    GradJob *j = ud;
    timing_pass_observer(g, pass, j->tm);
    if (!j->shown && j->after < AFTER_DCE && !strcmp(pass, after_names[j->after]))
        emit(j, NULL);
}

/* --wrt NAME: the parameter's index, or -1 after saying what there is. */
static int find_param(const GradJob *j) {
    Graph *g = j->g;
    const char **names = arena_alloc(g->arena, sizeof(char *) * ((size_t)g->params.len + 1));
    for (int i = 0; i < g->params.len; i++) {
        if (!strcmp(g->params.items[i].name, j->wrt))
            return i;
        names[i] = g->params.items[i].name;
    }
    const char *near = closest_name(j->wrt, names, g->params.len);
    if (near)
        fprintf(stderr, "gradc: error: --wrt: %s has no parameter '%s'; did you mean '%s'?\n",
                j->model, j->wrt, near);
    else
        fprintf(stderr, "gradc: error: --wrt: %s has no parameter '%s'\n", j->model, j->wrt);
    if (g->params.len) {
        fprintf(stderr, "  its parameters:");
        for (int i = 0; i < g->params.len; i++)
            fprintf(stderr, "%s %s", i ? "," : "", g->params.items[i].name);
        fputc('\n', stderr);
    }
    return -1;
}

/* ---- gradc grad --------------------------------------------------------------- */

int cmd_grad(int argc, char **argv) {
    GradJob j = {.after = AFTER_DCE};
    /* volatile: read after the out-of-memory setjmp below */
    const char *volatile optimizer = NULL;
    bool time_passes = false, after_given = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_grad, stdout);
            return 0;
        } else if (!strcmp(a, "--raw")) {
            j.after = AFTER_AUTODIFF;
            after_given = true;
        } else if (!strcmp(a, "--kernels")) {
            j.kernels = true;
        } else if (!strcmp(a, "--time-passes")) {
            time_passes = true;
        } else if ((v = run_opt_value(argc, argv, &i, "--after"))) {
            int k = 0;
            while (k < NAFTER && strcmp(v, after_names[k]))
                k++;
            if (k == NAFTER)
                return usage_error("grad", "--after expects a pass: autodiff, simplify, cse, "
                                           "dce or fuse; got '%s'",
                                   v);
            j.after = (After)k;
            after_given = true;
        } else if ((v = run_opt_value(argc, argv, &i, "--wrt"))) {
            if (!*v)
                return usage_error("grad", "--wrt expects a parameter's name");
            j.wrt = v;
        } else if ((v = run_opt_value(argc, argv, &i, "--dot"))) {
            if (!*v)
                return usage_error("grad", "--dot expects a file name ('-': stdout)");
            j.dot = v;
        } else if ((v = run_opt_value(argc, argv, &i, "--svg"))) {
            if (!*v)
                return usage_error("grad", "--svg expects a file name");
            j.svg = v;
        } else if ((v = run_opt_value(argc, argv, &i, "--optimizer"))) {
            optimizer = v;
        } else if (a[0] == '-') {
            return usage_error("grad", "unknown option '%s'", a);
        } else if (j.model) {
            return usage_error("grad", "one model file at a time ('%s' and '%s')", j.model, a);
        } else {
            j.model = a;
        }
    }
    if (!j.model)
        return usage_error("grad", "no model file given");
    if (j.kernels && after_given && j.after < AFTER_DCE)
        return usage_error("grad", "--kernels shows the kernels after fusion, not after %s",
                           after_names[j.after]);
    Arena *a = arena_new();
    if (!a)
        return compile_out_of_memory(NULL, j.model);
    Diags d;
    diags_init(&d, a);
    Timing tm;
    timing_start(&tm, time_passes);
    j.tm = &tm;
    j.rc = EXIT_USER;
    jmp_buf oom;
    if (setjmp(oom)) {
        j.rc = compile_out_of_memory(a, j.model);
        goto out;
    }
    arena_set_oom(a, &oom);
    if (!(j.m = load_model(a, &d, j.model)))
        goto out;
    timing_mark(&tm, "front end");
    j.g = j.m->graph;
    Graph *g = j.g;
    if (g->loss) {
        if (!fe_build_training(j.m, &d, optimizer, NAN)) {
            print_diags(&d);
            goto out;
        }
        timing_mark(&tm, "autodiff and update");
    } else if (j.wrt) {
        fprintf(stderr, "gradc: error: --wrt: %s has no 'loss = ...', so no gradient\n", j.model);
        goto out;
    } else {
        fprintf(stderr, "%s: note: the model has no 'loss = ...', so it has no gradient graph\n",
                j.model);
    }
    if (j.wrt) {
        if ((j.param = find_param(&j)) < 0)
            goto out;
    }
    j.rc = 0;
    if (j.after == AFTER_AUTODIFF) {
        emit(&j, NULL);
    } else {
        ir_optimize_observed(g, after_pass, &j);
        if (!j.shown) {
            Plan *plan = NULL;
            if (j.after == AFTER_FUSE || j.kernels || j.dot || j.svg) {
                plan = ir_plan(g, j.m->train.batch, 4);
                timing_mark(&tm, "fuse and plan");
            }
            emit(&j, plan);
        }
    }
    timing_print(&tm, stderr);
out:
    arena_free(a);
    return j.rc;
}
