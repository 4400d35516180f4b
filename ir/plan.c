/* plan.c: programs and the static memory plan.
 *
 * requires: fuse_program. produces: Plan, with every stored node's byte
 * offset in one arena sized for batches up to max_batch.
 *
 * Layout: a persistent region (parameters, optimizer states, inputs,
 * hyperparameters: the same offsets in every program; with
 * PLAN_CHECK_NUMERICS also the status word and a backup of each parameter
 * and state, after them all; with PLAN_PROFILE then the train program's
 * time counters), then each program's temporaries. An ASSIGN
 * has its destination's offset: updates store in place. Temporaries are
 * placed by a linear scan over the kernel order: a buffer lives from the
 * kernel that writes it to the last kernel that reads it (to the end for
 * the program's roots), and takes the lowest offset where it fits beside
 * the buffers placed before it that are live at the same time: placed in
 * kernel order and placed largest first, whichever needs less (place). A kernel's output never shares memory with its inputs, so kernels
 * may treat their pointers as not aliasing. A reshape shares its source's
 * buffer and extends its lifetime.
 */
#include "pass.h"

#include <string.h>

enum { ALIGN = 64 };

/* Sizes saturate at SIZE_MAX instead of wrapping (node_bytes does too):
 * shapes whose bytes pass 2^64 make a plan of SIZE_MAX bytes, which the
 * driver refuses (compile_check_memory), never one with wrapped offsets. */
static size_t add_sat(size_t x, size_t y) { return x > SIZE_MAX - y ? SIZE_MAX : x + y; }

static size_t align_up(size_t x) {
    return x > SIZE_MAX - (ALIGN - 1) ? SIZE_MAX : (x + ALIGN - 1) & ~(size_t)(ALIGN - 1);
}

static const char *const prog_names[PROG_COUNT] = {"train", "grad", "eval", "predict"};

/* The node whose buffer n uses: itself, or the source of a view chain. */
static Node *storage(Node *n) {
    while (op_has(n->op, OPF_VIEW))
        n = n->src[0];
    return n;
}

typedef struct Block {
    size_t off, size;
    int first, last; /* kernel indices of the write and of the last read */
    Node *node;      /* the buffer's storage node */
} Block;

/* Blocks i and j are live at the same kernel. */
static bool overlap(const Block *b, int i, int j) {
    return b[i].first <= b[j].last && b[j].first <= b[i].last;
}

/* Offsets for the nb blocks (in kernel order) into off[], each the lowest
 * >= base where it fits beside the blocks placed before it that are live
 * at the same time, placing them in kernel order (a linear scan, as a
 * runtime allocator would) or largest first (ties in kernel order: the
 * greedy-by-size arena of TFLite, Pisarchyk and Lee 2020, which packs
 * well when a few big buffers dominate). Returns the top. */
static size_t place(const Block *b, int nb, size_t base, bool by_size, size_t *off, Arena *a) {
    int *order = arena_alloc(a, sizeof(int) * (size_t)(nb + 1));
    for (int i = 0; i < nb; i++)
        order[i] = i;
    for (int i = 1; i < nb && by_size; i++) { /* insertion sort: stable */
        int x = order[i], j = i;
        for (; j > 0 && b[order[j - 1]].size < b[x].size; j--)
            order[j] = order[j - 1];
        order[j] = x;
    }
    size_t top = base;
    for (int n = 0; n < nb; n++) {
        int i = order[n];
        size_t at = base;
        for (bool moved = true; moved;) {
            moved = false;
            for (int m = 0; m < n; m++) {
                int j = order[m];
                if (overlap(b, i, j) && at != SIZE_MAX && at < add_sat(off[j], b[j].size) &&
                    off[j] < add_sat(at, b[i].size)) {
                    at = align_up(add_sat(off[j], b[j].size));
                    moved = true;
                }
            }
        }
        off[i] = at;
        if (add_sat(at, b[i].size) > top)
            top = add_sat(at, b[i].size);
    }
    return top;
}

/* p's memory, after fuse_program filled mat (its stored nodes). */
static void plan_program(Graph *g, Plan *plan, Program *p, const size_t *persistent,
                         const bool *mat, bool wanted, unsigned flags) {
    Arena *a = g->arena;
    int n = g->nodes.len, nk = p->kernels.len;
    p->check_numerics = wanted && p->kind == PROG_TRAIN && (flags & PLAN_CHECK_NUMERICS);
    p->profile = wanted && p->kind == PROG_TRAIN && (flags & PLAN_PROFILE);
    p->offset = arena_alloc(a, sizeof(size_t) * (size_t)n);
    for (int i = 0; i < n; i++)
        p->offset[i] = persistent[i];
    nk = p->kernels.len;

    /* Last kernel that reads each buffer. */
    int *last = arena_alloc(a, sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++)
        last[i] = -1;
    for (int k = 0; k < nk; k++) {
        Kernel *kn = &p->kernels.items[k];
        Node *single[1] = {kn->root};
        Node **body = kn->fused ? kn->body.items : single;
        int nbody = kn->fused ? kn->body.len : 1;
        for (int b = 0; b < nbody; b++)
            for (int s = 0; s < body[b]->nsrc; s++) {
                Node *src = storage(body[b]->src[s]);
                if (mat[body[b]->src[s]->id] && k > last[src->id])
                    last[src->id] = k;
            }
    }
    for (int r = 0; r < p->roots.len; r++)
        last[storage(p->roots.items[r])->id] = nk;

    /* Each kernel's output, live from that kernel to its last reader. */
    Block *blk = arena_alloc(a, sizeof(Block) * (size_t)(nk + 1));
    int nb = 0;
    for (int k = 0; k < nk; k++) {
        Node *x = p->kernels.items[k].root;
        if (x->op == OP_ASSIGN) { /* writes its parameter and states in place */
            p->offset[x->id] = p->offset[x->src[0]->id];
            for (int m = 0; m < p->kernels.items[k].more.len; m++) {
                Node *y = p->kernels.items[k].more.items[m];
                p->offset[y->id] = p->offset[y->src[0]->id];
            }
            continue;
        }
        size_t size = align_up(node_bytes(x, plan->max_batch, plan->elem_size));
        blk[nb++] = (Block){0, size, k, last[x->id] < k ? k : last[x->id], x};
    }
    /* Both placements; the lower top wins (in kernel order on a tie). */
    size_t base = plan->persistent_bytes;
    size_t *by_order = arena_alloc(a, sizeof(size_t) * (size_t)(nb + 1));
    size_t *by_size = arena_alloc(a, sizeof(size_t) * (size_t)(nb + 1));
    size_t top_order = place(blk, nb, base, false, by_order, a);
    size_t top_size = place(blk, nb, base, true, by_size, a);
    const size_t *off = top_size < top_order ? by_size : by_order;
    size_t top = base;
    for (int i = 0; i < nb; i++) {
        blk[i].off = off[i];
        p->offset[blk[i].node->id] = off[i];
        if (add_sat(off[i], blk[i].size) > top)
            top = add_sat(off[i], blk[i].size);
    }
    /* The peak: the first kernel where the live buffers take the most. */
    size_t peak = 0;
    p->peak_kernel = -1;
    for (int k = 0; k < nk; k++) {
        size_t in_use = 0;
        for (int i = 0; i < nb; i++)
            if (blk[i].first <= k && k <= blk[i].last)
                in_use = add_sat(in_use, blk[i].size);
        if (in_use > peak) {
            peak = in_use;
            p->peak_kernel = k;
        }
    }
    p->peak_live.len = 0;
    p->peak_live_bytes = peak;
    for (int i = 0; i < nb && p->peak_kernel >= 0; i++)
        if (blk[i].first <= p->peak_kernel && p->peak_kernel <= blk[i].last)
            vec_push(a, &p->peak_live, blk[i].node);
    /* Views share their source's buffer. */
    for (int i = 0; i < n; i++)
        if (mat[i] && op_has(g->nodes.items[i]->op, OPF_VIEW))
            p->offset[i] = p->offset[storage(g->nodes.items[i])->id];
    p->bytes = top;
    p->peak_temp_bytes = peak;
}

Plan *ir_plan(Graph *g, int64_t max_batch, int elem_size) {
    return ir_plan_programs(g, max_batch, elem_size, (1u << PROG_COUNT) - 1);
}

Plan *ir_plan_programs(Graph *g, int64_t max_batch, int elem_size, unsigned mask) {
    return ir_plan_flags(g, max_batch, elem_size, mask, 0);
}

Plan *ir_plan_flags(Graph *g, int64_t max_batch, int elem_size, unsigned mask, unsigned flags) {
    gc_assert(max_batch >= 1 && (elem_size == 4 || elem_size == 8));
    Arena *a = g->arena;
    Plan *plan = arena_alloc(a, sizeof *plan);
    plan->max_batch = max_batch;
    plan->elem_size = elem_size;

    int n = g->nodes.len;
    size_t *persistent = arena_alloc(a, sizeof(size_t) * (size_t)n);
    for (int i = 0; i < n; i++)
        persistent[i] = PLAN_NONE;
    size_t top = 0;
    for (int i = 0; i < n; i++) {
        Node *x = g->nodes.items[i];
        if (x->dead ||
            !(x->op == OP_INPUT || x->op == OP_PARAM || x->op == OP_STATE || x->op == OP_HYPER))
            continue;
        persistent[i] = top;
        top = align_up(add_sat(top, node_bytes(x, max_batch, elem_size)));
    }
    plan->numerics_status = PLAN_NONE;
    if (flags & PLAN_CHECK_NUMERICS) {
        plan->numerics_status = top;
        top = align_up(add_sat(top, sizeof(int64_t)));
        plan->numerics_backup = arena_alloc(a, sizeof(size_t) * (size_t)n);
        for (int i = 0; i < n; i++) {
            Node *x = g->nodes.items[i];
            plan->numerics_backup[i] = PLAN_NONE;
            if (x->dead || !(x->op == OP_PARAM || x->op == OP_STATE))
                continue;
            plan->numerics_backup[i] = top;
            top = align_up(add_sat(top, node_bytes(x, max_batch, elem_size)));
        }
    }
    /* Fusion first: the profile counters' number is the train program's
     * kernel count. */
    bool *mat[PROG_COUNT];
    for (int k = 0; k < PROG_COUNT; k++) {
        Program *p = &plan->prog[k];
        p->kind = (ProgramKind)k;
        p->name = prog_names[k];
        mat[k] = arena_alloc(a, (size_t)n);
        if (mask >> k & 1)
            fuse_program(g, p, mat[k], flags);
    }
    plan->profile_counters = PLAN_NONE;
    if ((flags & PLAN_PROFILE) && (mask >> PROG_TRAIN & 1)) {
        plan->profile_counters = top;
        int nk = plan->prog[PROG_TRAIN].kernels.len;
        top = align_up(add_sat(top, sizeof(int64_t) * (size_t)(nk + 2)));
    }
    plan->persistent_bytes = top;
    plan->arena_bytes = top;
    for (int k = 0; k < PROG_COUNT; k++) {
        Program *p = &plan->prog[k];
        plan_program(g, plan, p, persistent, mat[k], mask >> k & 1, flags);
        if (p->bytes > plan->arena_bytes)
            plan->arena_bytes = p->bytes;
    }
    return plan;
}
