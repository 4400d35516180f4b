/* dot.c: the graph as Graphviz DOT text (gradc grad --dot, --svg).
 *
 * Writes text only: no Graphviz library and no process here (the driver
 * runs Graphviz's dot program for SVG). Node k is "n<k>", so an SVG's
 * <title> elements name the ids gradc grad prints ("%k"). Every string is
 * written quoted and escaped (dot_str); labels are plain, not HTML, so dot
 * itself escapes '<', '>' and '&' for SVG. Edge labels are xlabels, placed
 * after the layout, so that they do not widen it.
 */
#include "pass.h"

#include <string.h>

/* Fill colours by the part of the step that computes a node (CostPart). */
static const char *const fill_of[COST_PARTS] = {
    [COST_FORWARD] = "#d4e4f7",  /* blue */
    [COST_BACKWARD] = "#fbd9b8", /* orange */
    [COST_UPDATE] = "#cdebc6",   /* green */
};

/* s as a DOT quoted string: quotes and backslashes escaped, a newline
 * as DOT's line break, other control characters as spaces. */
static void dot_str(FILE *out, const char *s) {
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fputc('\\', out), fputc(c, out);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c < 0x20 || c == 0x7f)
            fputc(' ', out);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

/* "[B, 4]", or "i32[B]" for an integer tensor, into buf (64 bytes). */
static char *type_str(const Node *n, char *buf, size_t len) {
    char s[64];
    shape_str(&n->shape, s, sizeof s);
    snprintf(buf, len, "%s%s", n->dtype == DT_INT ? "i32" : "", s);
    return buf;
}

/* Where kernel bodies put each node: home[id] is the fused kernel whose
 * loop computes it, HOME_NONE, or HOME_MANY when several loops do. */
enum { HOME_NONE = -1, HOME_MANY = -2 };

static void find_homes(const Graph *g, const Program *p, int *home) {
    for (int i = 0; i < g->nodes.len; i++)
        home[i] = HOME_NONE;
    if (!p)
        return;
    for (int k = 0; k < p->kernels.len; k++) {
        const Kernel *kn = &p->kernels.items[k];
        if (!kn->fused)
            continue;
        for (int i = 0; i < kn->body.len; i++) {
            int id = kn->body.items[i]->id;
            home[id] = home[id] == HOME_NONE || home[id] == k ? k : HOME_MANY;
        }
    }
}

/* One node statement: id, name and op with attributes; shape and location;
 * for gradient and update nodes who made it (the provenance up to " at ",
 * the whole of it in the tooltip); the loops a node inlined into several
 * computes it in. */
static void write_node(FILE *out, const Graph *g, const Program *p, const int *home,
                       const Node *n, const char *indent) {
    char label[1024], attrs[128], type[80], prov[512];
    size_t k = 0;
    ir_node_attrs(g, n, attrs, sizeof attrs);
    k += (size_t)snprintf(label + k, sizeof label - k, "%%%d %s%s%s%s", n->id,
                          n->name ? n->name : "", n->name ? " = " : "", op_info[n->op].name, attrs);
    if (k < sizeof label) /* a long name fills label */
        k += (size_t)snprintf(label + k, sizeof label - k, "\n%s", type_str(n, type, sizeof type));
    if (n->loc.file && k < sizeof label)
        k += (size_t)snprintf(label + k, sizeof label - k, "  %s:%d", n->loc.file->path,
                              n->loc.line);
    if (k >= sizeof label)
        k = sizeof label - 1;
    ir_node_provenance(g, n, prov, sizeof prov);
    if (prov[0]) {
        const char *at = strstr(prov, " at ");
        int len = at ? (int)(at - prov) : (int)strlen(prov);
        k += (size_t)snprintf(label + k, sizeof label - k, "\n%.*s", len, prov);
        if (k >= sizeof label)
            k = sizeof label - 1;
    }
    if (p && home[n->id] == HOME_MANY) {
        k += (size_t)snprintf(label + k, sizeof label - k, "\ninlined into kernels");
        const char *sep = " ";
        for (int j = 0; j < p->kernels.len && k < sizeof label; j++) {
            const Kernel *kn = &p->kernels.items[j];
            bool in = false;
            for (int i = 0; kn->fused && i < kn->body.len && !in; i++)
                in = kn->body.items[i] == n;
            if (in) {
                k += (size_t)snprintf(label + k, sizeof label - k, "%s%d", sep, j);
                sep = ", ";
            }
        }
    }

    bool leaf = op_has(n->op, OPF_LEAF) && n->op != OP_CONST && n->op != OP_NUMEL;
    bool result = false; /* an output, the loss, a parameter's gradient */
    for (int i = 0; i < g->outputs.len; i++)
        result |= g->outputs.items[i].node == n;
    for (int i = 0; i < g->params.len; i++)
        result |= g->params.items[i].grad == n;
    result |= g->loss == n;
    fprintf(out, "%sn%d [label=", indent, n->id);
    dot_str(out, label);
    fprintf(out, ", fillcolor=\"%s\"", fill_of[ir_node_part(g, n)]);
    if (leaf || (p && home[n->id] == HOME_MANY))
        fprintf(out, ", style=\"filled%s\"", p && home[n->id] == HOME_MANY ? ",dashed" : "");
    if (result)
        fprintf(out, ", peripheries=2");
    if (prov[0]) {
        fprintf(out, ", tooltip=");
        dot_str(out, prov);
    }
    fprintf(out, "];\n");
}

/* The legend: one node per colour and border, in a row. */
static void write_legend(FILE *out, const Graph *g) {
    fprintf(out, "  subgraph cluster_legend {\n"
                 "    label=\"legend\"; style=\"rounded\"; color=\"#999999\";\n"
                 "    node [fontsize=9, width=0, height=0, margin=\"0.08,0.03\"];\n");
    fprintf(out, "    legend_forward [label=\"forward\", fillcolor=\"%s\"];\n", fill_of[COST_FORWARD]);
    if (g->has_grad)
        fprintf(out, "    legend_gradient [label=\"gradient (backward)\", fillcolor=\"%s\"];\n",
                fill_of[COST_BACKWARD]);
    if (g->has_update)
        fprintf(out, "    legend_update [label=\"optimizer update\", fillcolor=\"%s\"];\n",
                fill_of[COST_UPDATE]);
    fprintf(out, "    legend_leaf [label=\"input, parameter,\\nstate, hyperparameter\", "
                 "style=\"filled\", fillcolor=\"white\"];\n"
                 "    legend_result [label=\"output, loss,\\ngradient of a parameter\", "
                 "peripheries=2, fillcolor=\"white\"];\n");
    fprintf(out, "    { rank=same; legend_forward;%s%s legend_leaf; legend_result; }\n"
                 "    legend_forward ->%s%s legend_leaf -> legend_result [style=invis];\n",
            g->has_grad ? " legend_gradient;" : "", g->has_update ? " legend_update;" : "",
            g->has_grad ? " legend_gradient ->" : "", g->has_update ? " legend_update ->" : "");
    fprintf(out, "  }\n");
}

void ir_write_dot(FILE *out, const Graph *g, const Program *train, const bool *keep,
                  const char *title) {
    int *home = arena_alloc(g->arena, sizeof(int) * ((size_t)g->nodes.len + 1));
    find_homes(g, train, home);
    fprintf(out, "digraph ");
    dot_str(out, g->name);
    fprintf(out, " {\n"
                 "  graph [rankdir=TB, fontname=\"Helvetica\", fontsize=12, labelloc=t, "
                 "nodesep=0.2, ranksep=0.3, newrank=true, label=");
    dot_str(out, title);
    fprintf(out, "];\n"
                 "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", "
                 "fontsize=10, penwidth=0.8, margin=\"0.1,0.04\"];\n"
                 "  edge [fontname=\"Helvetica\", fontsize=8, color=\"#666666\", "
                 "fontcolor=\"#555555\", arrowsize=0.6];\n");
    write_legend(out, g);

    /* The fused loops of train, each a box around the nodes only it computes. */
    for (int k = 0; train && k < train->kernels.len; k++) {
        const Kernel *kn = &train->kernels.items[k];
        bool any = false;
        for (int i = 0; kn->fused && i < kn->body.len; i++)
            any |= home[kn->body.items[i]->id] == k && (!keep || keep[kn->body.items[i]->id]);
        if (!any)
            continue;
        char label[160];
        if (kn->root->op == OP_ASSIGN) {
            const Node *d = kn->root->src[0];
            const char *param = d->op == OP_PARAM
                                    ? d->name
                                    : g->params.items[g->states.items[d->attr.leaf.index].param].name;
            snprintf(label, sizeof label, "kernel %d (fused loop, update of %s)", k, param);
        } else {
            snprintf(label, sizeof label, "kernel %d (fused loop)", k);
        }
        fprintf(out, "  subgraph cluster_k%d {\n    label=", k);
        dot_str(out, label);
        fprintf(out, "; style=\"rounded,dashed\"; color=\"#7a7a7a\"; fontsize=10; "
                     "labeljust=l;\n");
        for (int i = 0; i < kn->body.len; i++) {
            const Node *n = kn->body.items[i];
            if (home[n->id] == k && (!keep || keep[n->id]) && !n->dead)
                write_node(out, g, train, home, n, "    ");
        }
        fprintf(out, "  }\n");
    }

    for (int i = 0; i < g->nodes.len; i++) {
        const Node *n = g->nodes.items[i];
        if (n->dead || (keep && !keep[i]) || home[i] >= 0)
            continue;
        write_node(out, g, train, home, n, "  ");
    }

    for (int i = 0; i < g->nodes.len; i++) {
        const Node *n = g->nodes.items[i];
        if (n->dead || (keep && !keep[i]))
            continue;
        for (int s = 0; s < n->nsrc; s++) {
            char type[80];
            const Node *x = n->src[s];
            if (keep && !keep[x->id])
                continue;
            fprintf(out, "  n%d -> n%d [xlabel=", x->id, n->id);
            dot_str(out, type_str(x, type, sizeof type));
            /* short edges inside a loop keep its box compact */
            fprintf(out, "%s];\n", home[x->id] >= 0 && home[x->id] == home[n->id] ? ", weight=8" : "");
        }
    }
    fprintf(out, "}\n");
}
