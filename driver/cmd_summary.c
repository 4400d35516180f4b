/* cmd_summary.c: gradc summary, what a model costs before it runs: a row per
 * layer (shape, parameters, source line), the parameter totals, the FLOPs
 * of a training step, the memory plan and the kernels after fusion.
 *
 * Plans exactly as gradc train does (ir_plan_programs with every program
 * but the gradient check's, float32, the same batch and optimizer), so the
 * peak it prints is the arena the runtime allocates (RtModel.arena_bytes);
 * a model without a loss is planned as gradc predict plans it. Generates
 * no code. Owns the report's text; the FLOP convention is ir/cost.c's.
 */
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "compile.h"
#include "frontend/frontend.h"
#include "timing.h"

static const char usage_summary[] =
    "usage: gradc summary M.nn [--batch N] [--optimizer R] [--time-passes]\n"
    "\n"
    "Prints what the model is and costs, as gradc train would compile it:\n"
    "a row per layer (its ops, output shape, parameters and source line),\n"
    "the parameter totals, the FLOPs of one training step (forward, backward,\n"
    "update), the memory plan (parameters, optimizer state, the batch,\n"
    "gradients, activations kept for backward, workspace, and the peak: the\n"
    "bytes the runtime allocates) and the train program's kernels after fusion.\n"
    "  --batch N       the batch size (default: the train block's)\n"
    "  --optimizer R   the update rule (default: the train block's)\n"
    "  --time-passes   time each compile stage (on stderr)\n"
    "  --max-memory SIZE  refuse a model whose arena needs more (512M, 2G;\n"
    "                  default: the machine's memory and limits)\n"
    "  -h, --help      this text\n";

typedef struct SummaryOpts {
    const char *model, *optimizer;
    int64_t batch;
    bool time_passes;
} SummaryOpts;

/* ---- numbers -------------------------------------------------------------------- */

/* v with thousands separators ("203,530"), into buf. */
static const char *commas(char buf[32], int64_t v) {
    char digits[24];
    int n = snprintf(digits, sizeof digits, "%lld", (long long)(v < 0 ? -v : v));
    int k = 0;
    if (v < 0)
        buf[k++] = '-';
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0)
            buf[k++] = ',';
        buf[k++] = digits[i];
    }
    buf[k] = '\0';
    return buf;
}

/* Bytes in binary units ("795.0 KiB", "12 B"), into buf. */
static const char *human_bytes(char buf[32], size_t v) {
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (v < 1024) {
        snprintf(buf, 32, "%zu B", v);
        return buf;
    }
    double x = (double)v / 1024;
    int u = 0;
    while (x >= 1024 && u < 3) {
        x /= 1024;
        u++;
    }
    snprintf(buf, 32, "%.1f %s", x, units[u]);
    return buf;
}

/* A count in decimal units ("26.1 M"), into buf; "" below 1000. */
static const char *human_count(char buf[32], int64_t v) {
    static const char *const units[] = {"", " k", " M", " G", " T", " P"};
    double x = (double)v;
    int u = 0;
    while (x >= 1000 && u < 5) {
        x /= 1000;
        u++;
    }
    if (u == 0)
        buf[0] = '\0';
    else
        snprintf(buf, 32, "(%.1f%s)", x, units[u]);
    return buf;
}

/* "  (795.0 KiB)" for v >= 1 KiB, else "" (into buf). */
static const char *paren_bytes(char buf[40], size_t v) {
    char hb[32];
    if (v < 1024)
        buf[0] = '\0';
    else
        snprintf(buf, 40, "  (%s)", human_bytes(hb, v));
    return buf;
}

/* ---- source text ------------------------------------------------------------------ */

/* "file:line" of l, or "-" for built-in code. */
static const char *where(Arena *a, Loc l) {
    return l.file ? arena_printf(a, "%s:%d", l.file->path, l.line) : "-";
}

/* The text of l's span, or "" (in a). */
static const char *span_text(Arena *a, Loc l) {
    if (!l.file || l.line < 1 || l.col < 1 || l.len <= 0)
        return "";
    const char *p = l.file->text, *end = p + l.file->len;
    for (int line = 1; line < l.line && p < end; p++)
        if (*p == '\n')
            line++;
    p += l.col - 1;
    if (p >= end)
        return "";
    size_t n = (size_t)l.len;
    if ((size_t)(end - p) < n)
        n = (size_t)(end - p);
    return arena_strndup(a, p, n);
}

/* The name of the function a span calls ("dense" for "dense(x, 256)"), or
 * NULL when the span is not a call. */
static const char *called_name(Arena *a, Loc l) {
    const char *t = span_text(a, l);
    size_t n = 0;
    while (t[n] == '_' || t[n] == '.' || (t[n] >= 'a' && t[n] <= 'z') ||
           (t[n] >= 'A' && t[n] <= 'Z') || (n && t[n] >= '0' && t[n] <= '9'))
        n++;
    return n && t[n] == '(' ? arena_strndup(a, t, n) : NULL;
}

/* ---- the layers ---------------------------------------------------------------------
 * A row is a model input, or the nodes that compute one bound name: the
 * unnamed nodes of the forward graph before a named one, and that one
 * (`h = dense(x, 256, relu)` is the row h: matmul, add, relu). Each
 * parameter belongs to the row of the first node that reads it; one that
 * no node reads is a row of its own. */

typedef struct Row {
    const char *name;
    const char *ops; /* "input", "dense: matmul, add, relu" */
    Shape shape;
    bool is_int;
    int64_t params;
    Loc loc;
} Row;

typedef Vec(Row) Rows;

static bool is_forward(const Graph *g, const Node *n) {
    return !n->dead && (!g->has_grad || n->id < g->grad_start);
}

static bool same_loc(Loc a, Loc b) {
    return a.file == b.file && a.line == b.line && a.col == b.col && a.len == b.len;
}

/* The row of nodes[0..n-1], which closes with the last. */
static Row make_row(Arena *a, Node **nodes, int n) {
    Node *last = nodes[n - 1];
    Row r = {.name = last->name ? last->name : "(unnamed)", .shape = last->shape,
             .is_int = last->dtype == DT_INT, .loc = last->loc};
    const char *ops = "";
    bool shared = false;
    for (int i = 0; i < n; i++) {
        ops = arena_printf(a, "%s%s%s", ops, i ? ", " : "", op_info[nodes[i]->op].name);
        shared |= i < n - 1 && same_loc(nodes[i]->loc, last->loc);
    }
    /* A call that became several nodes at one location: a layer. */
    const char *call = shared ? called_name(a, last->loc) : NULL;
    r.ops = call ? arena_printf(a, "%s: %s", call, ops) : ops;
    return r;
}

/* The prefix of a parameter's name before its last '.', or NULL. */
static const char *param_prefix(Arena *a, const char *name) {
    const char *dot = strrchr(name, '.');
    return dot ? arena_strndup(a, name, (size_t)(dot - name)) : NULL;
}

/* The rows of g's forward graph; *total the parameters' values. */
static Rows layer_rows(Arena *a, const Graph *g, int64_t *total) {
    Rows rows = {0};
    int n = g->nodes.len;
    int *row_of = arena_alloc(a, sizeof(int) * (size_t)(n + 1)); /* computed node -> row */
    Node **pend = arena_alloc(a, sizeof(Node *) * (size_t)(n + 1));
    int npend = 0;
    for (int i = 0; i < n; i++) {
        Node *x = g->nodes.items[i];
        row_of[i] = -1;
        if (!is_forward(g, x))
            continue;
        if (x->op == OP_INPUT) {
            vec_push(a, &rows, ((Row){.name = x->name, .ops = "input", .shape = x->shape,
                                      .is_int = x->dtype == DT_INT, .loc = x->loc}));
            continue;
        }
        if (op_has(x->op, OPF_LEAF))
            continue;
        pend[npend++] = x;
        if (!x->name)
            continue;
        for (int k = 0; k < npend; k++)
            row_of[pend[k]->id] = rows.len;
        vec_push(a, &rows, make_row(a, pend, npend));
        npend = 0;
    }
    if (npend) {
        for (int k = 0; k < npend; k++)
            row_of[pend[k]->id] = rows.len;
        vec_push(a, &rows, make_row(a, pend, npend));
    }

    /* Each parameter to the row of its first reader. */
    const char **prefix = arena_alloc(a, sizeof(char *) * (size_t)(rows.len + 1));
    *total = 0;
    for (int p = 0; p < g->params.len; p++) {
        const Param *pa = &g->params.items[p];
        int64_t numel = shape_numel(&pa->node->shape, 1);
        *total += numel;
        int r = -1;
        for (int i = 0; i < n && r < 0; i++) {
            Node *x = g->nodes.items[i];
            if (row_of[i] >= 0)
                for (int s = 0; s < x->nsrc; s++)
                    if (x->src[s] == pa->node)
                        r = row_of[i];
        }
        if (r < 0) {
            vec_push(a, &rows, ((Row){.name = pa->name, .ops = "param (read by no layer)",
                                      .shape = pa->node->shape, .params = numel, .loc = pa->loc}));
            continue;
        }
        rows.items[r].params += numel;
        /* A layer inside a function instance: row h, parameter a.h.W. */
        const char *pre = param_prefix(a, pa->name);
        const char *name = rows.items[r].name;
        size_t ln = strlen(name);
        if (pre && !strcmp(pre, name))
            prefix[r] = name;
        else if (pre && !prefix[r] && strlen(pre) > ln && pre[strlen(pre) - ln - 1] == '.' &&
                 !strcmp(pre + strlen(pre) - ln, name))
            prefix[r] = pre;
    }
    for (int r = 0; r < rows.len; r++)
        if (prefix[r])
            rows.items[r].name = prefix[r];
    return rows;
}

static void print_layers(FILE *out, Arena *a, const Rows *rows, int64_t total) {
    size_t wn = strlen("layer"), wo = strlen("op(s)"), ws = strlen("output"), wp = strlen("params");
    char buf[64], num[32];
    for (int r = 0; r < rows->len; r++) {
        const Row *x = &rows->items[r];
        size_t k;
        if ((k = strlen(x->name)) > wn)
            wn = k;
        if ((k = strlen(x->ops) + (x->is_int ? 6 : 0)) > wo)
            wo = k;
        if ((k = strlen(shape_str(&x->shape, buf, sizeof buf))) > ws)
            ws = k;
        if ((k = strlen(commas(num, x->params))) > wp)
            wp = k;
    }
    fprintf(out, "%-*s  %-*s  %-*s  %*s  %s\n", (int)wn, "layer", (int)wo, "op(s)", (int)ws,
            "output", (int)wp, "params", "source");
    for (int r = 0; r < rows->len; r++) {
        const Row *x = &rows->items[r];
        const char *ops = x->is_int ? arena_printf(a, "%s (int)", x->ops) : x->ops;
        fprintf(out, "%-*s  %-*s  %-*s  %*s  %s\n", (int)wn, x->name, (int)wo, ops, (int)ws,
                shape_str(&x->shape, buf, sizeof buf), (int)wp, commas(num, x->params),
                where(a, x->loc));
    }
    char hb[32];
    fprintf(out, "\ntrainable parameters: %s (%s bytes", commas(num, total),
            commas(buf, total * 4));
    if (total * 4 >= 1024)
        fprintf(out, " = %s", human_bytes(hb, (size_t)total * 4));
    fprintf(out, " as float32)\n");
}

/* ---- FLOPs ------------------------------------------------------------------------- */

static void print_flops(FILE *out, const Graph *g, const Program *p, int64_t batch) {
    int64_t f[COST_PARTS];
    ir_program_flops(g, p, batch, f);
    int64_t total = f[COST_FORWARD] + f[COST_BACKWARD] + f[COST_UPDATE];
    char num[32], hc[32];
    if (p->kind == PROG_TRAIN)
        fprintf(out, "\nFLOPs per training step at batch %lld (the train program):\n",
                (long long)batch);
    else
        fprintf(out, "\nFLOPs per forward pass at batch %lld (the predict program):\n",
                (long long)batch);
    static const char *const parts[COST_PARTS] = {"forward", "backward", "update"};
    for (int i = 0; i < COST_PARTS; i++)
        if (p->kind == PROG_TRAIN || i == COST_FORWARD)
            fprintf(out, "  %-10s %20s  %s\n", parts[i], commas(num, f[i]),
                    human_count(hc, f[i]));
    if (p->kind == PROG_TRAIN)
        fprintf(out, "  %-10s %20s  %s\n", "total", commas(num, total), human_count(hc, total));
}

/* ---- the memory plan ------------------------------------------------------------------ */

typedef enum Part {
    M_PARAMS,
    M_STATE,
    M_INPUTS,
    M_HYPERS,
    M_PERSIST_PAD,
    M_GRADS,
    M_ACTS,
    M_WORK,
    M_TEMP_PAD,
    M_FRAG,
    M_PARTS
} Part;

/* The node whose buffer n uses (a view's source's). */
static const Node *storage_of(const Node *n) {
    while (op_has(n->op, OPF_VIEW))
        n = n->src[0];
    return n;
}

/* Does x compute anything of the backward pass or the update? */
static bool is_backward(const Graph *g, const Node *x) {
    return ir_node_part(g, x) != COST_FORWARD;
}

/* One line of the plan: "    parameters   814,120 bytes  (795.0 KiB), 4 tensors". */
static void print_part(FILE *out, const char *label, size_t bytes, int count, const char *what) {
    char num[32], hb[40];
    fprintf(out, "    %-36s %16s bytes%s", label, commas(num, (int64_t)bytes),
            paren_bytes(hb, bytes));
    if (count)
        fprintf(out, ", %d %s%s", count, what, count == 1 ? "" : "s");
    fputc('\n', out);
}

static void print_memory(FILE *out, Arena *a, const Graph *g, const Plan *plan) {
    int64_t batch = plan->max_batch;
    int es = plan->elem_size;
    size_t bytes[M_PARTS] = {0}, leaves = 0;
    int count[M_PARTS] = {0};
    for (int i = 0; i < g->nodes.len; i++) {
        const Node *x = g->nodes.items[i];
        if (x->dead)
            continue;
        Part part = x->op == OP_PARAM   ? M_PARAMS
                    : x->op == OP_STATE ? M_STATE
                    : x->op == OP_INPUT ? M_INPUTS
                    : x->op == OP_HYPER ? M_HYPERS
                                        : M_PARTS;
        if (part == M_PARTS)
            continue;
        bytes[part] += node_bytes(x, batch, es);
        count[part]++;
        leaves += node_bytes(x, batch, es);
    }
    bytes[M_PERSIST_PAD] = plan->persistent_bytes - leaves;

    /* The program whose temporaries reach the top of the arena; train first. */
    static const ProgramKind order[] = {PROG_TRAIN, PROG_EVAL, PROG_PREDICT, PROG_GRAD};
    const Program *peak = NULL;
    for (size_t k = 0; k < sizeof order / sizeof *order && !peak; k++) {
        const Program *p = &plan->prog[order[k]];
        if (p->peak_kernel >= 0 && p->bytes == plan->arena_bytes)
            peak = p;
    }
    if (peak) {
        /* What the backward part and the update read of this program. */
        bool *back_reads = arena_alloc(a, (size_t)g->nodes.len + 1);
        for (int k = 0; k < peak->kernels.len; k++) {
            const Kernel *kn = &peak->kernels.items[k];
            Node *const single[1] = {kn->root};
            Node *const *body = kn->fused ? kn->body.items : single;
            int nbody = kn->fused ? kn->body.len : 1;
            for (int b = 0; b < nbody; b++)
                if (is_backward(g, body[b]))
                    for (int s = 0; s < body[b]->nsrc; s++)
                        back_reads[storage_of(body[b]->src[s])->id] = true;
        }
        size_t raw = 0;
        for (int i = 0; i < peak->peak_live.len; i++) {
            const Node *x = peak->peak_live.items[i];
            bool grad = false;
            for (int p = 0; p < g->params.len && !grad; p++)
                grad = g->params.items[p].grad && storage_of(g->params.items[p].grad) == x;
            Part part = M_WORK;
            if (grad)
                part = M_GRADS;
            else if (!is_backward(g, x) && back_reads[x->id])
                part = M_ACTS;
            bytes[part] += node_bytes(x, batch, es);
            count[part]++;
            raw += node_bytes(x, batch, es);
        }
        bytes[M_TEMP_PAD] = peak->peak_live_bytes - raw;
        bytes[M_FRAG] = peak->bytes - plan->persistent_bytes - peak->peak_live_bytes;
    }

    char num[32], hb[40];
    fprintf(out, "\nmemory plan at batch %lld (float32), as gradc %s plans it:\n",
            (long long)batch, g->loss ? "train" : "predict");
    static const char *const labels[M_PARTS] = {
        [M_PARAMS] = "parameters",
        [M_STATE] = "optimizer state",
        [M_INPUTS] = "inputs (a batch)",
        [M_HYPERS] = "hyperparameters",
        [M_PERSIST_PAD] = "alignment padding",
        [M_GRADS] = "gradients",
        [M_ACTS] = "activations kept for backward",
        [M_WORK] = "workspace (other temporaries)",
        [M_TEMP_PAD] = "alignment padding",
        [M_FRAG] = "fragmentation (gaps)",
    };
    fprintf(out, "  persistent (every step, every program):\n");
    for (int i = M_PARAMS; i <= M_PERSIST_PAD; i++) {
        if (i == M_STATE && !g->has_update)
            continue;
        print_part(out, labels[i], bytes[i], count[i], "tensor");
    }
    if (peak) {
        const Kernel *kn = &peak->kernels.items[peak->peak_kernel];
        const Node *r = kn->root;
        char sb[64];
        fprintf(out, "  temporaries live at the peak (the %s program, kernel %d of %d: %%%d%s%s "
                     "= %s %s):\n",
                peak->name, peak->peak_kernel, peak->kernels.len, r->id, r->name ? " " : "",
                r->name ? r->name : "", op_info[r->op].name, shape_str(&r->shape, sb, sizeof sb));
        for (int i = M_GRADS; i < M_PARTS; i++) {
            if ((i == M_GRADS || i == M_ACTS) && !g->has_grad)
                continue;
            print_part(out, labels[i], bytes[i], count[i], "buffer");
        }
    } else {
        fprintf(out, "  no temporaries\n");
    }
    fprintf(out, "  %-38s %16s bytes%s\n", "peak: the arena the runtime allocates",
            commas(num, (int64_t)plan->arena_bytes), paren_bytes(hb, plan->arena_bytes));
    fprintf(out, "  each program's arena (bytes):");
    bool first = true;
    for (int k = 0; k < PROG_COUNT; k++)
        if (plan->prog[k].roots.len) {
            fprintf(out, "%s %s %s", first ? "" : ",", plan->prog[k].name,
                    commas(num, (int64_t)plan->prog[k].bytes));
            first = false;
        }
    fprintf(out, "\n");
}

/* ---- the kernels ------------------------------------------------------------------- */

static void print_kernels(FILE *out, Arena *a, const Graph *g, const Program *p, int64_t batch) {
    int n = p->kernels.len;
    KernelLabel *lab = arena_alloc(a, sizeof *lab * (size_t)(n + 1));
    size_t wk = strlen("kind"), wr = strlen("root"), ws = strlen("shape"), wf = strlen("FLOPs");
    char buf[64], num[32];
    for (int k = 0; k < n; k++) {
        const Node *r = p->kernels.items[k].root;
        lab[k] = ir_kernel_label(a, g, &p->kernels.items[k]);
        size_t len;
        if ((len = strlen(lab[k].kind)) > wk)
            wk = len;
        if ((len = strlen(lab[k].root)) > wr)
            wr = len;
        if ((len = strlen(shape_str(&r->shape, buf, sizeof buf))) > ws)
            ws = len;
        if ((len = strlen(commas(num, ir_kernel_flops(&p->kernels.items[k], batch)))) > wf)
            wf = len;
    }
    fprintf(out, "\nkernels of the %s program after fusion: %d\n", p->name, n);
    fprintf(out, "  %4s  %-*s  %-*s  %-*s  %*s  %s\n", "#", (int)wk, "kind", (int)wr, "root",
            (int)ws, "shape", (int)wf, "FLOPs", "source");
    for (int k = 0; k < n; k++) {
        const Kernel *kn = &p->kernels.items[k];
        fprintf(out, "  %4d  %-*s  %-*s  %-*s  %*s  %s\n", k, (int)wk, lab[k].kind, (int)wr,
                lab[k].root, (int)ws, shape_str(&kn->root->shape, buf, sizeof buf), (int)wf,
                commas(num, ir_kernel_flops(kn, batch)), lab[k].source);
    }
}

/* ---- gradc summary ------------------------------------------------------------------ */

/* 0, or the exit status (help: -1). */
static int parse_summary(int argc, char **argv, SummaryOpts *o) {
    *o = (SummaryOpts){0};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_summary, stdout);
            return -1;
        } else if (!strcmp(a, "--time-passes")) {
            o->time_passes = true;
        } else if ((v = run_opt_value(argc, argv, &i, "--batch"))) {
            if (!run_parse_i64(v, 1, &o->batch) || o->batch > (1 << 24))
                return usage_error("summary",
                                   "--batch expects an integer from 1 to 16777216, got '%s'", v);
        } else if ((v = run_opt_value(argc, argv, &i, "--optimizer"))) {
            if (!*v)
                return usage_error("summary", "--optimizer needs a value");
            o->optimizer = v;
        } else if (a[0] == '-') {
            return usage_error("summary", "unknown option '%s'", a);
        } else if (o->model) {
            return usage_error("summary", "one model file at a time ('%s' and '%s')", o->model,
                               a);
        } else {
            o->model = a;
        }
    }
    if (!o->model)
        return usage_error("summary", "no model file given");
    return 0;
}

int cmd_summary(int argc, char **argv) {
    SummaryOpts o;
    int rc = parse_summary(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    Arena *a = arena_new();
    if (!a)
        return compile_out_of_memory(NULL, o.model);
    Diags d;
    diags_init(&d, a);
    rc = EXIT_USER;
    jmp_buf oom;
    if (setjmp(oom)) {
        rc = compile_out_of_memory(a, o.model);
        goto out;
    }
    arena_set_oom(a, &oom);
    Timing tm;
    timing_start(&tm, o.time_passes);
    Model *m = load_model(a, &d, o.model);
    if (!m)
        goto out;
    timing_mark(&tm, "front end");
    Graph *g = m->graph;
    if (!g->loss && o.optimizer) {
        fprintf(stderr, "%s: error: the model has no 'loss = ...', so --optimizer has nothing "
                        "to update\n",
                o.model);
        goto out;
    }
    if (g->loss) {
        if (!fe_build_training(m, &d, o.optimizer, NAN)) {
            print_diags(&d);
            goto out;
        }
        timing_mark(&tm, "autodiff and update");
    }
    ir_optimize_observed(g, timing_pass_observer, &tm);
    int64_t batch = o.batch > 0 ? o.batch : m->train.batch;
    /* What gradc train plans (every program but the gradient check's), or
     * for a model without a loss, gradc predict. */
    Plan *plan = ir_plan_programs(g, batch, 4, g->loss ? ~(1u << PROG_GRAD) : 1u << PROG_PREDICT);
    timing_mark(&tm, "fuse and plan");
    /* A plan past the memory limit is reported (with a note at the end);
     * one whose sizes overflow has no numbers to report. */
    if (plan->arena_bytes == SIZE_MAX && !compile_check_memory(&d, g, plan)) {
        print_diags(&d);
        goto out;
    }

    /* The rows are the optimized forward graph's: what the programs compute. */
    int64_t total;
    Rows rows = layer_rows(a, g, &total);
    const Program *main_prog = &plan->prog[g->loss ? PROG_TRAIN : PROG_PREDICT];
    printf("%s: model %s, batch %lld, float32, ", o.model, g->name, (long long)batch);
    if (g->loss)
        printf("optimizer %s\n\n", o.optimizer            ? o.optimizer
                                   : m->train.optimizer ? m->train.optimizer
                                                        : "sgd");
    else
        printf("no loss (forward only)\n\n");
    print_layers(stdout, a, &rows, total);
    print_flops(stdout, g, main_prog, batch);
    print_memory(stdout, a, g, plan);
    print_kernels(stdout, a, g, main_prog, batch);
    const char *why;
    uint64_t limit = compile_memory_limit(&why);
    if (plan->arena_bytes > limit)
        printf("\nnote: the arena (%zu bytes) is more than the memory limit (%llu bytes, set by "
               "%s):\ngradc train, predict, eval and build refuse this model at batch %lld\n",
               plan->arena_bytes, (unsigned long long)limit, why, (long long)batch);
    fflush(stdout);
    timing_mark(&tm, "report");
    timing_print(&tm, stderr);
    rc = 0;
out:
    arena_free(a);
    return rc;
}
