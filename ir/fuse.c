/* fuse.c: cut a program out of the graph, fuse it into kernels, schedule.
 *
 * requires: an optimized graph (ir_optimize), ad_backward and opt_build for
 * the programs that need them. produces: Program.roots and Program.kernels.
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
 * An update kernel (ASSIGN root) overwrites its parameter while it runs and
 * runs after the other kernels, so a node computed inside it may read no
 * parameter but its own, and that one only elementwise (index for index);
 * a node that reads another parameter, or its own through a transpose or a
 * broadcast, is stored by a kernel of its own that runs before any update.
 */
#include "pass.h"

#include <stdlib.h>
#include <string.h>

enum { GID_NONE = -1, GID_MULTI = -2 };

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
    return n->op == OP_INPUT || n->op == OP_PARAM || n->op == OP_HYPER;
}

/* Does x depend on node p? (seen: scratch, one flag per node, cleared) */
static bool depends_on(const Node *x, const Node *p, bool *seen) {
    if (x == p)
        return true;
    if (seen[x->id])
        return false;
    seen[x->id] = true;
    for (int s = 0; s < x->nsrc; s++)
        if (depends_on(x->src[s], p, seen))
            return true;
    return false;
}

/* x may be computed inside the update kernel of parameter p (NULL: of
 * some parameter): it reads no other parameter directly, and an index map
 * (transpose, broadcast) does not read p at all, at any depth. */
static bool safe_in_update(const Node *x, const Node *p, bool *seen, int n) {
    for (int s = 0; s < x->nsrc; s++)
        if (x->src[s]->op == OP_PARAM && (x->src[s] != p || op_has(x->op, OPF_MOVE)))
            return false;
    if (!op_has(x->op, OPF_MOVE) || !p)
        return true;
    memset(seen, 0, (size_t)n);
    return !depends_on(x, p, seen);
}

static void collect_roots(Graph *g, Program *p) {
    Arena *a = g->arena;
    switch (p->kind) {
    case PROG_TRAIN:
        if (!g->loss || !g->has_update)
            return;
        vec_push(a, &p->roots, g->loss);
        for (int i = 0; i < g->updates.len; i++)
            vec_push(a, &p->roots, g->updates.items[i]);
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

/* Adds to body, in id order, the inline nodes that root's value needs. */
static void collect_body(Node *n, const bool *mat, bool *seen, Kernel *k, Arena *a) {
    if (seen[n->id])
        return;
    seen[n->id] = true;
    for (int s = 0; s < n->nsrc; s++) {
        Node *x = n->src[s];
        if (n->op == OP_ASSIGN && s == 0)
            continue; /* the destination, not a value */
        if (!mat[x->id])
            collect_body(x, mat, seen, k, a);
    }
    vec_push(a, &k->body, n);
}

static int by_id(const void *x, const void *y) {
    return (*(Node *const *)x)->id - (*(Node *const *)y)->id;
}

void fuse_program(Graph *g, Program *p, bool *mat) {
    Arena *a = g->arena;
    int n = g->nodes.len;
    collect_roots(g, p);
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

    /* Groups, deciding from the last node back. dest[group]: the parameter
     * an update group writes, else NULL. */
    int *gid = arena_alloc(a, sizeof(int) * (size_t)n);
    Node **dest = arena_alloc(a, sizeof(Node *) * (size_t)(n + 1));
    bool *scratch = arena_alloc(a, (size_t)n);
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
        if (!fusible(x) || x->op == OP_ASSIGN || is_root[i]) {
            mat[i] = true;
            gid[i] = fusible(x) ? ngroups++ : GID_NONE;
            if (x->op == OP_ASSIGN)
                dest[gid[i]] = x->src[0];
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
            if ((ug >= 0 && dest[ug] && !safe_in_update(x, dest[ug], scratch, n)) ||
                (ug == GID_MULTI && !safe_in_update(x, NULL, scratch, n))) {
                inline_ok = false;
                break;
            }
            if (ug == GID_MULTI || (group != GID_NONE && ug != group))
                multi = true;
            group = ug;
        }
        if (inline_ok && duplicable(x)) {
            gid[i] = multi ? GID_MULTI : group;
        } else if (inline_ok && !multi && group >= 0) {
            gid[i] = group;
        } else {
            mat[i] = true;
            gid[i] = ngroups++;
        }
    }

    /* Kernels in topological order of their roots; updates last, after
     * every read of the parameters they overwrite. */
    bool *seen = arena_alloc(a, (size_t)n);
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++) {
            Node *x = g->nodes.items[i];
            if (!need[i] || !mat[i] || stored_leaf(x) || op_has(x->op, OPF_VIEW))
                continue;
            if ((x->op == OP_ASSIGN) != (pass == 1))
                continue;
            Kernel k = {.root = x, .fused = fusible(x)};
            if (k.fused) {
                collect_body(x, mat, seen, &k, a);
                qsort(k.body.items, (size_t)k.body.len, sizeof(Node *), by_id);
                for (int b = 0; b < k.body.len; b++) /* inline nodes may repeat across kernels */
                    seen[k.body.items[b]->id] = false;
            }
            vec_push(a, &p->kernels, k);
        }
}
