/* cse.c: common subexpression elimination.
 *
 * requires: nothing. keeps: ids topological (a duplicate is forwarded to the
 * first, older, node), shapes. Two nodes are the same when op, dtype, shape,
 * sources and attributes agree. Leaves other than constants are unique by
 * nature; ASSIGN has an effect and is never merged. The gradient graph
 * often recomputes forward values (softmax in the cross-entropy rule): this
 * is where they merge.
 */
#include "pass.h"

#include <string.h>

static uint64_t mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h;
}

static uint64_t node_hash(const Node *n) {
    uint64_t h = mix((uint64_t)n->op, (uint64_t)n->dtype);
    for (int i = 0; i < n->shape.rank; i++)
        h = mix(h, (uint64_t)n->shape.d[i]);
    for (int s = 0; s < n->nsrc; s++)
        h = mix(h, (uint64_t)n->src[s]->id);
    const unsigned char *p = (const unsigned char *)&n->attr;
    for (size_t i = 0; i < sizeof n->attr; i++)
        h = mix(h, p[i]);
    return h;
}

static bool node_same(const Node *a, const Node *b) {
    if (a->op != b->op || a->dtype != b->dtype || !shape_eq(&a->shape, &b->shape))
        return false;
    for (int s = 0; s < a->nsrc; s++)
        if (a->src[s] != b->src[s])
            return false;
    return memcmp(&a->attr, &b->attr, sizeof a->attr) == 0;
}

static bool mergeable(const Node *n) {
    return !n->dead && n->op != OP_ASSIGN &&
           (!op_has(n->op, OPF_LEAF) || n->op == OP_CONST || n->op == OP_NUMEL);
}

void pass_cse(Graph *g) {
    int cap = 16;
    while (cap < 2 * g->nodes.len)
        cap *= 2;
    Node **table = arena_alloc(g->arena, sizeof(Node *) * (size_t)cap);
    Node **fwd = fwd_new(g);
    for (int i = 0; i < g->nodes.len; i++) {
        Node *n = g->nodes.items[i];
        for (int s = 0; s < n->nsrc; s++)
            n->src[s] = fwd_get(fwd, n->src[s]);
        if (!mergeable(n))
            continue;
        uint64_t h = node_hash(n);
        for (int k = (int)(h & (uint64_t)(cap - 1));; k = (k + 1) & (cap - 1)) {
            if (!table[k]) {
                table[k] = n;
                break;
            }
            if (node_same(table[k], n)) {
                fwd[i] = table[k];
                if (!table[k]->name)
                    table[k]->name = n->name;
                break;
            }
        }
    }
    graph_apply_forwards(g, fwd);
}
