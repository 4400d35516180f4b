/* numerics.c: gradc train --check-numerics, what made the NaN or Inf that
 * stopped training.
 *
 * The fast path is the compiled train program with a finite check after
 * every kernel (PLAN_CHECK_NUMERICS): a kernel that stores a NaN or Inf
 * ends the program with its index in a status word, and rt_train puts the
 * parameters back and stops (RT_NONFINITE). A fused kernel computes many
 * nodes inline, so its index does not say which op made the value. Only
 * then, once, this compiles the same graph again without fusion
 * (PLAN_NO_FUSE: every node a checked kernel of its own, every value
 * stored), with the same persistent region (asserted), runs it on a copy of
 * the session's arena, which still holds the failing step's batch and
 * hypers, and reports the first node that stored a NaN or Inf, like JAX's
 * jax_debug_nans re-running the culprit de-optimised. Fusion changes
 * rounding (a fused multiply-add), so the unfused run may make no NaN; the
 * report is then the fused kernel's.
 *
 * Must not change the session: the unfused program runs in an arena of its
 * own.
 */
#include "numerics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen/cg.h"
#include "compile.h"

/* ---- the values of a tensor ------------------------------------------------------ */

typedef struct Stats {
    int64_t n, nan, pinf, ninf;
    double min, max, sum; /* over the finite values */
} Stats;

/* Element i of the tensor at byte offset off of arena, as a double. */
static double element(const void *arena, size_t off, DType dt, int elem_size, int64_t i) {
    const char *p = (const char *)arena + off;
    if (dt == DT_INT) {
        int32_t v;
        memcpy(&v, p + 4 * i, 4);
        return v;
    }
    if (elem_size == 4) {
        float v;
        memcpy(&v, p + 4 * i, 4);
        return v;
    }
    double v;
    memcpy(&v, p + 8 * i, 8);
    return v;
}

/* The figures of node n's values (stored at off) for a batch of `batch`. */
static Stats stats_of(const void *arena, size_t off, const Node *n, int64_t batch,
                      int elem_size) {
    Stats st = {.n = shape_numel(&n->shape, batch), .min = INFINITY, .max = -INFINITY};
    for (int64_t i = 0; i < st.n; i++) {
        double v = element(arena, off, n->dtype, elem_size, i);
        if (isnan(v))
            st.nan++;
        else if (isinf(v))
            v > 0 ? st.pinf++ : st.ninf++;
        else {
            st.min = v < st.min ? v : st.min;
            st.max = v > st.max ? v : st.max;
            st.sum += v;
        }
    }
    return st;
}

static int64_t nonfinite(const Stats *st) { return st->nan + st->pinf + st->ninf; }

/* "NaN", "-inf", "NaN and +inf": the kinds of non-finite value in st. */
static const char *kinds_str(const Stats *st, char *buf, size_t len) {
    const char *k[3];
    int n = 0;
    if (st->nan)
        k[n++] = "NaN";
    if (st->pinf)
        k[n++] = "+inf";
    if (st->ninf)
        k[n++] = "-inf";
    snprintf(buf, len, "%s%s%s%s%s", n > 0 ? k[0] : "nothing",
             n > 1 ? (n > 2 ? ", " : " and ") : "", n > 1 ? k[1] : "", n > 2 ? " and " : "",
             n > 2 ? k[2] : "");
    return buf;
}

/* "min 0, max 1, mean 0.5; 8 values, 2 non-finite (2 -inf)" */
static void print_stats(FILE *f, const Stats *st) {
    int64_t finite = st->n - nonfinite(st);
    if (finite > 0)
        fprintf(f, "min %.9g, max %.9g, mean %.9g; ", st->min, st->max, st->sum / (double)finite);
    fprintf(f, "%lld value%s, ", (long long)st->n, st->n == 1 ? "" : "s");
    if (nonfinite(st) == 0) {
        fprintf(f, "none NaN or Inf\n");
        return;
    }
    fprintf(f, "%lld non-finite (", (long long)nonfinite(st));
    const char *sep = "";
    if (st->nan)
        fprintf(f, "%s%lld NaN", sep, (long long)st->nan), sep = ", ";
    if (st->pinf)
        fprintf(f, "%s%lld +inf", sep, (long long)st->pinf), sep = ", ";
    if (st->ninf)
        fprintf(f, "%s%lld -inf", sep, (long long)st->ninf);
    fprintf(f, ")\n");
}

/* One line about a source x of a kernel: "%7 p = sigmoid [B, 1]: min ..."
 * with its values from arena at off (PLAN_NONE: computed inline, so a
 * constant or an element count, whose value is printed). */
static void print_input(FILE *f, const Node *x, const void *arena, size_t off, int64_t batch,
                        int elem_size) {
    char shape[64];
    fprintf(f, "    %%%d %s%s= %s %s%s: ", x->id, x->name ? x->name : "", x->name ? " " : "",
            op_info[x->op].name, x->dtype == DT_INT ? "i32 " : "",
            shape_str(&x->shape, shape, sizeof shape));
    if (x->op == OP_CONST) {
        fprintf(f, "the constant %.9g\n", x->attr.cst.value);
    } else if (off == PLAN_NONE) {
        fprintf(f, "computed inline\n");
    } else {
        Stats st = stats_of(arena, off, x, batch, elem_size);
        print_stats(f, &st);
    }
}

/* ---- what made a node --------------------------------------------------------------- */

typedef enum Pass { PASS_FORWARD, PASS_BACKWARD, PASS_UPDATE } Pass;

static Pass pass_of(const Graph *g, const Node *n) {
    if (g->has_update && n->id >= g->update_start)
        return PASS_UPDATE;
    if (g->has_grad && n->id >= g->grad_start)
        return PASS_BACKWARD;
    return PASS_FORWARD;
}

/* "log", "the adjoint of sqrt", "the adam update of w", "clip_norm": the
 * op or rule that made n, for a person. */
static const char *made_by(Arena *a, const Graph *g, const Node *n) {
    size_t rl = n->rule ? strlen(n->rule) : 0;
    switch (pass_of(g, n)) {
    case PASS_FORWARD:
        return op_info[n->op].name;
    case PASS_BACKWARD:
        if (rl > 1 && n->rule[rl - 1] == '\'' && n->origin)
            return arena_printf(a, "the adjoint of %s", op_info[n->origin->op].name);
        if (n->rule && !strcmp(n->rule, "seed"))
            return "the gradient's seed";
        return n->rule ? arena_printf(a, "the gradient's %s", n->rule) : "the gradient";
    case PASS_UPDATE:
        if (n->origin && n->origin->name)
            return arena_printf(a, "the %s update of %s", n->rule ? n->rule : "optimizer",
                                n->origin->name);
        return arena_printf(a, "the %s update", n->rule ? n->rule : "optimizer");
    }
    gc_unreachable();
}

/* Where to point for n: its own location, for an update node its
 * parameter's declaration (the rule's text lives in the prelude). */
static Loc loc_of(const Graph *g, const Node *n) {
    if (pass_of(g, n) == PASS_UPDATE && n->origin && n->origin->op == OP_PARAM)
        return g->params.items[n->origin->attr.leaf.index].loc;
    if (!n->loc.file && n->origin)
        return n->origin->loc;
    return n->loc;
}

static const char *const pass_names[] = {"the forward pass", "the backward pass (gradients)",
                                         "the optimizer update"};

/* The located note about n, with its source line and a caret. */
static void print_note(Arena *a, const Graph *g, const Node *n, const char *what) {
    Loc loc = loc_of(g, n);
    Diags d;
    diags_init(&d, a);
    diag_note(&d, loc, "%s", what);
    if (loc.file)
        print_diags(&d);
    else
        fprintf(stderr, "gradc: note: %s\n", what);
}

/* ---- the unfused run ---------------------------------------------------------------- */

/* The unfused plan keeps every leaf, the status word and the backups where
 * the session has them (a's profile counters, --profile, come after them
 * all; b has none). */
static void assert_same_persistent(const Graph *g, const Plan *a, const Plan *b) {
    gc_assert(b->profile_counters == PLAN_NONE);
    gc_assert((a->profile_counters != PLAN_NONE ? a->profile_counters : a->persistent_bytes) ==
              b->persistent_bytes);
    gc_assert(a->numerics_status == b->numerics_status && a->numerics_status != PLAN_NONE);
    gc_assert(a->max_batch == b->max_batch && a->elem_size == b->elem_size);
    const Program *pa = &a->prog[PROG_TRAIN], *pb = &b->prog[PROG_TRAIN];
    for (int i = 0; i < g->nodes.len; i++) {
        Op op = g->nodes.items[i]->op;
        if (op == OP_INPUT || op == OP_PARAM || op == OP_STATE || op == OP_HYPER)
            gc_assert(pa->offset[i] == pb->offset[i]);
        gc_assert(a->numerics_backup[i] == b->numerics_backup[i]);
    }
}

static int64_t status_word(const void *arena, const Plan *plan) {
    int64_t v;
    memcpy(&v, (const char *)arena + plan->numerics_status, sizeof v);
    return v;
}

/* Runs the unfused train program on a copy of s's persistent region;
 * returns the index of its kernel that stored a NaN or Inf, -1 when none
 * did, -2 when it could not be compiled (said why). *arena_out: its arena
 * (free() it). */
static int64_t run_unfused(Numerics *nx, Arena *a, const RtSession *s, int64_t batch,
                           Plan **plan_out, void **arena_out) {
    const Plan *fast = nx->plan;
    Plan *slow = ir_plan_flags(nx->g, fast->max_batch, fast->elem_size, 1u << PROG_TRAIN,
                               PLAN_CHECK_NUMERICS | PLAN_NO_FUSE);
    assert_same_persistent(nx->g, fast, slow);
    *plan_out = slow;
    *arena_out = NULL;
    Diags d;
    diags_init(&d, a);
    CgOptions co = {.elem_size = fast->elem_size, .opt_level = 2, .no_ir_text = true};
    CgModule *cg = cg_compile(nx->g, slow, &co, &d);
    if (!cg) {
        fprintf(stderr, "gradc: note: cannot compile the train step without fusion to find the "
                        "node:\n");
        print_diags(&d);
        return -2;
    }
    size_t bytes = (slow->arena_bytes + 63) & ~(size_t)63;
    void *arena = aligned_alloc(64, bytes ? bytes : 64);
    if (!arena) {
        fprintf(stderr, "gradc: note: out of memory for the train step without fusion (%zu "
                        "bytes)\n",
                bytes);
        cg_free(cg);
        return -2;
    }
    memset(arena, 0, bytes);
    memcpy(arena, s->arena, slow->persistent_bytes);
    memset((char *)arena + slow->numerics_status, 0, sizeof(int64_t));
    cg_program(cg, PROG_TRAIN)(arena, batch);
    cg_free(cg);
    *arena_out = arena;
    return status_word(arena, slow) - 1;
}

/* ---- the reports ------------------------------------------------------------------ */

/* The node the unfused run found: the root of its kernel k (an ASSIGN
 * stores a value computed before it, so that value's node). */
static void report_node(Arena *a, const Graph *g, const Plan *plan, const void *arena,
                        int64_t k, int64_t batch) {
    const Program *p = &plan->prog[PROG_TRAIN];
    const Node *n = p->kernels.items[k].root;
    if (n->op == OP_ASSIGN && p->offset[n->src[1]->id] != PLAN_NONE)
        n = n->src[1];
    Stats st = stats_of(arena, p->offset[n->id], n, batch, plan->elem_size);
    char kinds[32];
    Loc loc = loc_of(g, n);
    const char *at = loc.file ? arena_printf(a, " at %s:%d", loc.file->path, loc.line) : "";
    print_note(a, g, n,
               arena_printf(a, "%s first appeared in %s: %s%s stored %s (%lld of %lld values)",
                            kinds_str(&st, kinds, sizeof kinds), pass_names[pass_of(g, n)],
                            made_by(a, g, n), at,
                            (st.nan > 0) + (st.pinf > 0) + (st.ninf > 0) > 1 ? "them" : "it",
                            (long long)nonfinite(&st), (long long)st.n));
    fprintf(stderr, "  the node (as gradc grad prints it):\n  ");
    ir_print_node(stderr, g, n);
    fprintf(stderr, "  its inputs, in the step that failed:\n");
    for (int i = 0; i < n->nsrc; i++) {
        const Node *x = n->src[i];
        print_input(stderr, x, arena, p->offset[x->id], batch, plan->elem_size);
    }
}

/* The fast path's kernel k, with what it read from the session's arena
 * (the parameters as they were before the step, the temporaries as the
 * failed run left them). */
static void report_kernel(Arena *a, const Graph *g, const Plan *plan, const RtSession *s,
                          int64_t k, int64_t batch) {
    const Program *p = &plan->prog[PROG_TRAIN];
    const Kernel *kn = &p->kernels.items[k];
    const Node *root = kn->root;
    print_note(a, g, root,
               arena_printf(a, "kernel %lld of the train step stored it, in %s: %s%s",
                            (long long)k, pass_names[pass_of(g, root)], made_by(a, g, root),
                            kn->fused ? " with the ops fused into it" : ""));
    fprintf(stderr, "  the kernel computes (as gradc grad --kernels prints it):\n");
    bool *in_body = arena_alloc(a, (size_t)g->nodes.len);
    if (kn->fused) {
        for (int i = 0; i < kn->body.len; i++) {
            in_body[kn->body.items[i]->id] = true;
            fprintf(stderr, "  ");
            ir_print_node(stderr, g, kn->body.items[i]);
        }
    } else {
        in_body[root->id] = true;
        fprintf(stderr, "  ");
        ir_print_node(stderr, g, root);
    }
    fprintf(stderr, "  what it read, in the step that failed:\n");
    bool *shown = arena_alloc(a, (size_t)g->nodes.len);
    for (int b = 0; b < g->nodes.len; b++) {
        const Node *n = g->nodes.items[b];
        if (!in_body[b])
            continue;
        for (int i = 0; i < n->nsrc; i++) {
            const Node *x = n->src[i];
            if (in_body[x->id] || shown[x->id] || (n->op == OP_ASSIGN && i == 0))
                continue;
            shown[x->id] = true;
            print_input(stderr, x, s->arena, p->offset[x->id], batch, plan->elem_size);
        }
    }
}

void numerics_explain(void *user, const RtSession *s, int64_t kernel, int64_t batch) {
    Numerics *nx = user;
    gc_assert(kernel >= 0 && kernel < nx->plan->prog[PROG_TRAIN].kernels.len);
    Arena *a = arena_new();
    Plan *slow = NULL;
    void *arena = NULL;
    int64_t k = getenv("GRADC_TEST_NUMERICS_NO_REPRO")
                    ? -1
                    : run_unfused(nx, a, s, batch, &slow, &arena);
    if (k >= 0) {
        report_node(a, nx->g, slow, arena, k, batch);
    } else {
        if (k == -1)
            fprintf(stderr, "gradc: note: the same step run again without fusion made no NaN or "
                            "Inf (fused code rounds differently), so this is the fused kernel "
                            "that did\n");
        report_kernel(a, nx->g, nx->plan, s, kernel, batch);
    }
    fflush(stderr);
    free(arena);
    arena_free(a);
}
