/* fuse.c: cut a program out of the graph, fuse it into kernels, schedule.
 *
 * requires: an optimized graph (ir_optimize), ad_backward and the update
 * (ir_update_begin/end) for the programs that need them. produces:
 * Program.roots and Program.kernels.
 *
 * Fusion turns every maximal group of elementwise and movement nodes into
 * one loop kernel over the group root's shape. A node is computed inline
 * (never stored) when every consumer in the program is in the same group;
 * scalars and index maps (constants, transposes, broadcasts) are cheap
 * enough to inline into every group that uses them. Every member of a group
 * is an ancestor of its root, so a group's inputs are all computed before
 * it and the kernel order is the root's topological order: no cycles.
 * Matrix products, reductions, softmax and the like are one kernel each;
 * a reshape is a view of its source's storage and has no kernel.
 *
 * Updates: all the ASSIGNs of one parameter (into the parameter itself and
 * into each of its states) are one group, and so one loop that stores them
 * all (Kernel.more); a value only they use (Adam's new first moment, stored
 * and used by the parameter's step) is computed inline once per element.
 * An update kernel overwrites its parameter and states while it runs, and
 * runs after every other kernel that reads them (schedule_updates_early
 * keeps that true), so a node computed inside one may read no parameter or
 * state but its own group's, and those only
 * elementwise (index for index: each element is loaded before it is
 * stored); a node that reads another parameter or state, or its own
 * through a transpose or a broadcast, is stored by a kernel of its own that
 * runs before any update (a reduction such as a norm always is).
 *
 * A chain of more than FUSE_MAX_DEPTH inline nodes is cut: the node at
 * that depth is stored and starts a loop of its own.
 *
 * Without fusion (PLAN_NO_FUSE, for finding the node that made a NaN),
 * every node is stored by a kernel of its own but constants and element
 * counts, which stay inline; the ASSIGNs of one parameter still share one.
 */
#include "pass.h"

#include <stdlib.h>
#include <string.h>

enum { GID_NONE = -1, GID_MULTI = -2 };

/* The longest chain of inline nodes below a loop's root: a node further
 * down is stored instead. Code generation walks a loop's body by recursion
 * (codegen/lower.c), so this bounds its depth: a model of 100000 lines
 * `h = h + 1` is a hundred loops, not one that overflows the stack. */
enum { FUSE_MAX_DEPTH = 1000 };

/* Computed in a loop kernel: elementwise, movement, scalar leaves, ASSIGN. */
static bool fusible(const Node *n) {
    return op_has(n->op, OPF_ELEMWISE) || op_has(n->op, OPF_MOVE) || n->op == OP_CONST ||
           n->op == OP_NUMEL || n->op == OP_ASSIGN;
}

/* Cheap to recompute in every group that uses it. */
static bool duplicable(const Node *n) {
    return op_has(n->op, OPF_MOVE) || n->op == OP_CONST || n->op == OP_NUMEL;
}

/* Lives in the persistent region; kernels load it. */
static bool stored_leaf(const Node *n) {
    return n->op == OP_INPUT || n->op == OP_PARAM || n->op == OP_STATE || n->op == OP_HYPER;
}

/* The parameter (index in Graph.params) whose storage n is: a PARAM itself,
 * or a STATE of it; -1 for anything else. */
static int owner_of(const Graph *g, const Node *n) {
    if (n->op == OP_PARAM)
        return n->attr.leaf.index;
    if (n->op == OP_STATE)
        return g->states.items[n->attr.leaf.index].param;
    return -1;
}

/* Does x depend on a parameter or state of parameter `owner`? (seen:
 * scratch, one flag per node, cleared; stack: room for a pointer per
 * node). A walk with a stack of its own, not recursion: a chain of 100000
 * ops must not overflow the C stack. */
static bool depends_on_owner(const Graph *g, const Node *x, int owner, bool *seen,
                             const Node **stack) {
    int top = 0;
    seen[x->id] = true;
    stack[top++] = x;
    while (top > 0) {
        const Node *y = stack[--top];
        if (owner_of(g, y) == owner)
            return true;
        for (int s = 0; s < y->nsrc; s++)
            if (!seen[y->src[s]->id]) {
                seen[y->src[s]->id] = true;
                stack[top++] = y->src[s];
            }
    }
    return false;
}

/* x may be computed inside the update kernel of parameter `owner` (-1: of
 * some parameter): it reads no other parameter's storage (parameter or
 * state) directly, and an index map (transpose, broadcast) reads none of
 * the owner's at all, at any depth. */
static bool safe_in_update(const Graph *g, const Node *x, int owner, bool *seen,
                           const Node **stack, int n) {
    for (int s = 0; s < x->nsrc; s++) {
        int o = owner_of(g, x->src[s]);
        if (o >= 0 && (o != owner || op_has(x->op, OPF_MOVE)))
            return false;
    }
    if (!op_has(x->op, OPF_MOVE) || owner < 0)
        return true;
    memset(seen, 0, (size_t)n);
    return !depends_on_owner(g, x, owner, seen, stack);
}

/* By node id: does the node depend on the batch (an input, or the RNG
 * hyper that keys the dropout masks, which differs between the processes
 * of a data-parallel run)? Ids are in topological order. */
static bool *batch_dependent(const Graph *g) {
    int n = g->nodes.len;
    bool *dep = arena_alloc(g->arena, (size_t)n + 1);
    for (int i = 0; i < n; i++) {
        const Node *x = g->nodes.items[i];
        dep[i] = x->op == OP_INPUT ||
                 (x->op == OP_HYPER && g->hypers.items[x->attr.leaf.index].kind == HYPER_RNG);
        for (int s = 0; s < x->nsrc && !dep[i]; s++)
            dep[i] = dep[x->src[s]->id];
    }
    return dep;
}

static void collect_roots(Graph *g, Program *p, unsigned flags) {
    Arena *a = g->arena;
    switch (p->kind) {
    case PROG_TRAIN:
        if (!g->loss || !g->has_update)
            return;
        vec_push(a, &p->roots, g->loss);
        if (g->lr)
            vec_push(a, &p->roots, g->lr);
        for (int i = 0; i < g->updates.len; i++)
            vec_push(a, &p->roots, g->updates.items[i]);
        /* A gradient that does not depend on the batch is the same in
         * every process: only the others are averaged. */
        if (flags & PLAN_DATA_PARALLEL) {
            bool *dep = batch_dependent(g);
            p->grad_root = p->roots.len;
            for (int i = 0; i < g->params.len; i++)
                if (dep[g->params.items[i].grad->id])
                    vec_push(a, &p->roots, g->params.items[i].grad);
        }
        return;
    case PROG_GRAD:
        if (!g->loss || !g->has_grad)
            return;
        vec_push(a, &p->roots, g->loss);
        for (int i = 0; i < g->params.len; i++)
            vec_push(a, &p->roots, g->params.items[i].grad);
        return;
    case PROG_EVAL:
        if (!g->loss)
            return;
        vec_push(a, &p->roots, g->loss);
        if (g->metric.kind != METRIC_NONE)
            vec_push(a, &p->roots, g->metric.pred);
        return;
    case PROG_PREDICT:
        for (int i = 0; i < g->outputs.len; i++)
            vec_push(a, &p->roots, g->outputs.items[i].node);
        return;
    case PROG_COUNT:
        break;
    }
    gc_unreachable();
}

/* Adds to body the inline nodes that n's value needs, and n (seen: the
 * nodes already in body), in no particular order (fused_kernel sorts
 * them). A walk with a stack of its own, not recursion: one fused loop may
 * hold a chain of 100000 ops. */
static void collect_body(Node *n, const bool *mat, bool *seen, Kernel *k, Arena *a) {
    if (seen[n->id])
        return;
    Vec(Node *) stack = {0};
    seen[n->id] = true;
    vec_push(a, &stack, n);
    while (stack.len > 0) {
        Node *y = stack.items[--stack.len];
        vec_push(a, &k->body, y);
        for (int s = 0; s < y->nsrc; s++) {
            Node *x = y->src[s];
            if (y->op == OP_ASSIGN && s == 0)
                continue; /* the destination, not a value */
            if (!mat[x->id] && !seen[x->id]) {
                seen[x->id] = true;
                vec_push(a, &stack, x);
            }
        }
    }
}

static int by_id(const void *x, const void *y) {
    return (*(Node *const *)x)->id - (*(Node *const *)y)->id;
}

/* The fused kernel of root and the further roots more[0, nmore) (the other
 * ASSIGNs of an update group): body in id order, then root moved to the
 * end. ASSIGNs have no consumers, so that order is still topological. */
static Kernel fused_kernel(Node *root, Node **more, int nmore, const bool *mat, bool *seen,
                           Arena *a) {
    Kernel k = {.root = root, .fused = true};
    collect_body(root, mat, seen, &k, a);
    for (int i = 0; i < nmore; i++) {
        vec_push(a, &k.more, more[i]);
        collect_body(more[i], mat, seen, &k, a);
    }
    qsort(k.body.items, (size_t)k.body.len, sizeof(Node *), by_id);
    int r = 0;
    while (k.body.items[r] != root)
        r++;
    memmove(&k.body.items[r], &k.body.items[r + 1], sizeof(Node *) * (size_t)(k.body.len - r - 1));
    k.body.items[k.body.len - 1] = root;
    for (int b = 0; b < k.body.len; b++) /* inline nodes may repeat across kernels */
        seen[k.body.items[b]->id] = false;
    return k;
}

/* ---- scheduling the optimizer early ------------------------------------------
 * Kernels are first in topological order with the updates last. Each
 * kernel of the optimizer (an update, or a node the rule made, such as
 * Adam's bias corrections or a gradient norm) then moves up to just after
 * the last kernel it conflicts with: one that writes a buffer it reads (its
 * gradient), reads a buffer it writes (a backward product that still needs
 * the parameter's old value), or writes one it writes. So each parameter
 * is updated as soon as its gradient is complete and nothing needs its old
 * value any more, while the gradient is still in cache, and the memory plan
 * can give the gradient's buffer to the rest of the backward pass. */

/* The node whose buffer n uses: itself, or the source of a view chain. */
static int storage_id(const Node *n) {
    while (op_has(n->op, OPF_VIEW))
        n = n->src[0];
    return n->id;
}

typedef Vec(int) Ids; /* storage node ids */

typedef struct Access {
    Ids reads, writes;
} Access;

static void add_id(Arena *a, Ids *v, int id) {
    for (int i = 0; i < v->len; i++)
        if (v->items[i] == id)
            return;
    vec_push(a, v, id);
}

/* The buffers kernel k reads and writes. */
static Access kernel_access(Arena *a, const Kernel *k, const bool *mat) {
    Access acc = {0};
    Node *single[1] = {k->root};
    Node **body = k->fused ? k->body.items : single;
    int nbody = k->fused ? k->body.len : 1;
    for (int b = 0; b < nbody; b++) {
        const Node *x = body[b];
        for (int s = 0; s < x->nsrc; s++)
            if (!(x->op == OP_ASSIGN && s == 0) && mat[x->src[s]->id])
                add_id(a, &acc.reads, storage_id(x->src[s]));
    }
    for (int r = 0; r <= k->more.len; r++) {
        const Node *x = r == 0 ? k->root : k->more.items[r - 1];
        add_id(a, &acc.writes, storage_id(x->op == OP_ASSIGN ? x->src[0] : x));
    }
    return acc;
}

static bool meets(const Ids *x, const Ids *y) {
    for (int i = 0; i < x->len; i++)
        for (int j = 0; j < y->len; j++)
            if (x->items[i] == y->items[j])
                return true;
    return false;
}

static bool conflict(const Access *x, const Access *y) {
    return meets(&x->writes, &y->reads) || meets(&x->reads, &y->writes) ||
           meets(&x->writes, &y->writes);
}

static void schedule_updates_early(Graph *g, Program *p, const bool *mat) {
    int nk = p->kernels.len;
    if (!g->has_update || nk == 0)
        return;
    Arena *a = g->arena;
    Access *acc = arena_alloc(a, sizeof *acc * (size_t)nk);
    int *order = arena_alloc(a, sizeof(int) * (size_t)nk), len = 0;
    for (int k = 0; k < nk; k++) {
        acc[k] = kernel_access(a, &p->kernels.items[k], mat);
        if (p->kernels.items[k].root->id < g->update_start)
            order[len++] = k;
    }
    for (int k = 0; k < nk; k++) {
        if (p->kernels.items[k].root->id < g->update_start)
            continue;
        int at = 0;
        for (int j = 0; j < len; j++)
            if (conflict(&acc[order[j]], &acc[k]))
                at = j + 1;
        memmove(order + at + 1, order + at, sizeof(int) * (size_t)(len - at));
        order[at] = k;
        len++;
    }
    Kernel *old = arena_alloc(a, sizeof(Kernel) * (size_t)nk);
    memcpy(old, p->kernels.items, sizeof(Kernel) * (size_t)nk);
    for (int k = 0; k < nk; k++)
        p->kernels.items[k] = old[order[k]];
}

/* PLAN_DATA_PARALLEL: first, in their order, the kernels that make the
 * averaged gradients and their ancestors, and those that read no such
 * gradient at any depth; then the others (what reads the averages, and
 * every update), in theirs, with the sync point between. The first phase
 * is closed under dependences (a source of an ancestor is one, and a
 * source of a node that reads no gradient reads none), and the updates
 * still follow every other kernel, as fusion placed them. */
static void schedule_data_parallel(Graph *g, Program *p) {
    int n = g->nodes.len, nk = p->kernels.len;
    Arena *a = g->arena;
    bool *after = arena_alloc(a, (size_t)n + 1); /* reads an averaged gradient */
    bool *grad = arena_alloc(a, (size_t)n + 1);
    for (int r = p->grad_root; r < p->roots.len; r++)
        grad[p->roots.items[r]->id] = true;
    for (int i = 0; i < n; i++) {
        const Node *x = g->nodes.items[i];
        for (int s = 0; s < x->nsrc && !after[i]; s++)
            after[i] = grad[x->src[s]->id] || after[x->src[s]->id];
    }
    bool *below = grad; /* a gradient or an ancestor of one: before the sync */
    for (int i = n - 1; i >= 0; i--) {
        const Node *x = g->nodes.items[i];
        for (int s = 0; below[i] && s < x->nsrc; s++)
            below[x->src[s]->id] = true;
    }
    Kernel *old = arena_alloc(a, sizeof(Kernel) * (size_t)(nk + 1));
    memcpy(old, p->kernels.items, sizeof(Kernel) * (size_t)nk);
    int at = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int k = 0; k < nk; k++) {
            const Node *r = old[k].root;
            bool second = (after[r->id] && !below[r->id]) || r->op == OP_ASSIGN;
            if (second == (pass == 1))
                p->kernels.items[at++] = old[k];
        }
        if (pass == 0)
            p->sync_at = at;
    }
}

void fuse_program(Graph *g, Program *p, bool *mat, unsigned flags) {
    Arena *a = g->arena;
    int n = g->nodes.len;
    bool fuse = !(flags & PLAN_NO_FUSE);
    p->sync_at = -1;
    collect_roots(g, p, flags);
    bool *need = arena_alloc(a, (size_t)n), *is_root = arena_alloc(a, (size_t)n);
    for (int i = 0; i < p->roots.len; i++)
        need[p->roots.items[i]->id] = is_root[p->roots.items[i]->id] = true;
    for (int i = n - 1; i >= 0; i--) {
        Node *x = g->nodes.items[i];
        if (need[i])
            for (int s = 0; s < x->nsrc; s++)
                need[x->src[s]->id] = true;
    }
    /* Consumers within the program. */
    int *ncons = arena_alloc(a, sizeof(int) * (size_t)n);
    Node ***cons = arena_alloc(a, sizeof(Node **) * (size_t)n);
    for (int i = 0; i < n; i++) {
        Node *x = g->nodes.items[i];
        if (need[i])
            for (int s = 0; s < x->nsrc; s++)
                ncons[x->src[s]->id]++;
    }
    for (int i = 0; i < n; i++)
        cons[i] = arena_alloc(a, sizeof(Node *) * (size_t)(ncons[i] + 1)), ncons[i] = 0;
    for (int i = 0; i < n; i++) {
        Node *x = g->nodes.items[i];
        if (need[i])
            for (int s = 0; s < x->nsrc; s++)
                cons[x->src[s]->id][ncons[x->src[s]->id]++] = x;
    }

    /* Groups, deciding from the last node back. owner[group]: the parameter
     * an update group writes (its ASSIGNs), else -1; update[param]: that
     * parameter's update group. */
    int *gid = arena_alloc(a, sizeof(int) * (size_t)n);
    int *owner = arena_alloc(a, sizeof(int) * (size_t)(n + 1));
    int *update = arena_alloc(a, sizeof(int) * (size_t)(g->params.len + 1));
    for (int i = 0; i < g->params.len; i++)
        update[i] = GID_NONE;
    bool *scratch = arena_alloc(a, (size_t)n);
    const Node **stack = arena_alloc(a, sizeof *stack * (size_t)(n + 1));
    int *depth = arena_alloc(a, sizeof(int) * (size_t)(n + 1)); /* inline chain to a root */
    int ngroups = 0;
    for (int i = n - 1; i >= 0; i--) {
        Node *x = g->nodes.items[i];
        gid[i] = GID_NONE;
        if (!need[i])
            continue;
        if (stored_leaf(x)) {
            mat[i] = true;
            continue;
        }
        if (x->op == OP_ASSIGN) {
            int o = owner_of(g, x->src[0]);
            gc_assert(o >= 0);
            if (update[o] == GID_NONE) {
                owner[ngroups] = o;
                update[o] = ngroups++;
            }
            mat[i] = true;
            gid[i] = update[o];
            continue;
        }
        bool alone = !fuse && x->op != OP_CONST && x->op != OP_NUMEL; /* PLAN_NO_FUSE */
        if (!fusible(x) || is_root[i] || alone) {
            mat[i] = true;
            gid[i] = GID_NONE;
            if (fusible(x))
                owner[gid[i] = ngroups++] = -1;
            continue;
        }
        int group = GID_NONE;
        bool inline_ok = true, multi = false;
        for (int c = 0; c < ncons[i]; c++) {
            Node *u = cons[i][c];
            if (!fusible(u) || (u->op == OP_ASSIGN && u->src[0] == x)) {
                inline_ok = false;
                break;
            }
            int ug = gid[u->id];
            /* A consumer spread over several groups may be in an update. */
            if ((ug >= 0 && owner[ug] >= 0 && !safe_in_update(g, x, owner[ug], scratch, stack, n)) ||
                (ug == GID_MULTI && !safe_in_update(g, x, -1, scratch, stack, n))) {
                inline_ok = false;
                break;
            }
            if (ug == GID_MULTI || (group != GID_NONE && ug != group))
                multi = true;
            group = ug;
        }
        /* Inline chains are bounded (FUSE_MAX_DEPTH), and with them the
         * recursion of code generation over a loop's body. */
        int d = 1;
        for (int c = 0; c < ncons[i]; c++) {
            int u = cons[i][c]->id;
            if (!mat[u] && depth[u] + 1 > d)
                d = depth[u] + 1;
        }
        if (d > FUSE_MAX_DEPTH && x->nsrc > 0)
            inline_ok = false;
        if (inline_ok && duplicable(x)) {
            gid[i] = multi ? GID_MULTI : group;
            depth[i] = d;
        } else if (inline_ok && !multi && group >= 0) {
            gid[i] = group;
            depth[i] = d;
        } else {
            mat[i] = true;
            owner[gid[i] = ngroups++] = -1;
        }
    }

    /* Kernels in topological order of their roots; then the updates, one
     * kernel per parameter in the order of its first ASSIGN, after every
     * read of the parameters and states they overwrite. */
    bool *seen = arena_alloc(a, (size_t)n);
    for (int i = 0; i < n; i++) {
        Node *x = g->nodes.items[i];
        if (!need[i] || !mat[i] || stored_leaf(x) || op_has(x->op, OPF_VIEW) || x->op == OP_ASSIGN)
            continue;
        Kernel k = {.root = x};
        if (fusible(x))
            k = fused_kernel(x, NULL, 0, mat, seen, a);
        vec_push(a, &p->kernels, k);
    }
    bool *done = arena_alloc(a, (size_t)(ngroups + 1));
    Node **more = arena_alloc(a, sizeof(Node *) * (size_t)(g->updates.len + 1));
    for (int i = 0; i < n; i++) {
        Node *x = g->nodes.items[i];
        if (!need[i] || x->op != OP_ASSIGN || done[gid[i]])
            continue;
        done[gid[i]] = true;
        int nmore = 0;
        for (int j = i + 1; j < n; j++)
            if (need[j] && g->nodes.items[j]->op == OP_ASSIGN && gid[j] == gid[i])
                more[nmore++] = g->nodes.items[j];
        vec_push(a, &p->kernels, fused_kernel(x, more, nmore, mat, seen, a));
    }
    if ((flags & PLAN_DATA_PARALLEL) && p->kind == PROG_TRAIN && p->roots.len > 0)
        schedule_data_parallel(g, p);
    else
        schedule_updates_early(g, p, mat);
}
