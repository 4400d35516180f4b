/* pass.h: what the passes of ir/ share; not for use outside ir/.
 *
 * Rewrites never create nodes that a node with a smaller id uses: a node is
 * either mutated in place (its sources stay older) or forwarded to an older
 * node. Forwarding goes through a map by id that the pass fills and
 * graph_apply_forwards resolves everywhere the graph holds node pointers.
 */
#ifndef GRADC_PASS_H
#define GRADC_PASS_H

#include "ir.h"

/* A zeroed forwarding map for g: fwd[id] is NULL or the node to use instead. */
Node **fwd_new(Graph *g);
/* The node x stands for after forwarding (follows chains). */
Node *fwd_get(Node **fwd, Node *x);
/* Point every source, root and table entry of g past the forwards, and mark
 * forwarded nodes dead. */
void graph_apply_forwards(Graph *g, Node **fwd);
/* Mark dead every node that no root of any program needs. */
void pass_dce(Graph *g);
/* Every node a program may compute from: loss, outputs, metric, learning
 * rate, gradients, updates, and the leaves (inputs, parameters, states,
 * hypers); calls f for each. */
void graph_for_each_root(Graph *g, void (*f)(Node *n, void *ud), void *ud);

/* Collect p's roots (by p->kind), fuse and schedule its kernels; mat[id]
 * (zeroed, one per node) is set for every node stored in memory: leaves,
 * kernel roots, views. fuse false: every computed node but constants and
 * element counts is stored by a kernel of its own (PLAN_NO_FUSE). */
void fuse_program(Graph *g, Program *p, bool *mat, unsigned flags);

/* The attributes of n as print.c shows them after its sources (" axes=[0]
 * keepdims", " 1e-12", " -> W1"; "" for none), into buf (print.c, dot.c). */
void ir_node_attrs(const Graph *g, const Node *n, char *buf, size_t len);

#endif
