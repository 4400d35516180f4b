/* cg_fixture.h: the fixture of the codegen tests (test_cg_lower.c,
 * test_cg_kernels.c, test_cg_update.c): a graph built with the ir_* builders, optimised,
 * planned, compiled with cg_compile, and run on an arena that the test
 * fills and reads at the planned offsets; a naive matrix product and an
 * SGD update built like the front end's. Include after cmocka.h.
 *
 * Dimension legend: B the batch dimension (planned for MAXB rows unless a
 * test says otherwise).
 */
#ifndef GRADC_TEST_CG_FIXTURE_H
#define GRADC_TEST_CG_FIXTURE_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cg.h"
#include "codegen/cg_internal.h"

#define B DIM_BATCH
enum { MAXB = 8 };
static const Loc L0 = {0};

#define SH0() ((Shape){.rank = 0})
#define SH1(a) ((Shape){.rank = 1, .d = {(a)}})
#define SH2(a, b) ((Shape){.rank = 2, .d = {(a), (b)}})
#define SH3(a, b, c) ((Shape){.rank = 3, .d = {(a), (b), (c)}})
#define SH4(a, b, c, e) ((Shape){.rank = 4, .d = {(a), (b), (c), (e)}})

/* |got - want| <= tol, or both NaN. */
#define assert_near(got, want, tol)                                                          \
    do {                                                                                     \
        double g_ = (got), w_ = (want), t_ = (tol);                                          \
        if (!(fabs(g_ - w_) <= t_) && !(isnan(g_) && isnan(w_)))                             \
            fail_msg("%s = %.9g, want %.9g (tolerance %g)", #got, g_, w_, t_);               \
    } while (0)
/* Relative: |got - want| <= tol * max(1, |want|). */
#define assert_rel(got, want, tol) assert_near(got, want, (tol) * fmax(1.0, fabs(want)))

/* ---- the fixture: one graph, its plan, its code and its arena ------------------ */

typedef struct T {
    Arena *a;
    Diags d;
    Graph *g;
    Plan *plan;
    CgModule *m;
    unsigned char *mem;
    int elem_size;
} T;

static inline void t_init(T *t, const char *name) {
    *t = (T){.a = arena_new()};
    diags_init(&t->d, t->a);
    t->g = graph_new(t->a, &t->d, name);
}

static inline void t_output(T *t, const char *name, Node *n) {
    assert_non_null(n);
    Output o = {name, n};
    vec_push(t->a, &t->g->outputs, o);
}

/* Optimise, plan for MAXB rows (or max_batch), compile, zero the arena. */
static inline void t_compile(T *t, int64_t max_batch, int elem_size) {
    assert_int_equal(t->d.nerrors, 0);
    t->elem_size = elem_size;
    ir_optimize(t->g);
    t->plan = ir_plan(t->g, max_batch, elem_size);
    CgOptions o = {.elem_size = elem_size, .opt_level = 2};
    t->m = cg_compile(t->g, t->plan, &o, &t->d);
    if (!t->m) {
        diags_print(&t->d, stderr, false);
        fail_msg("cg_compile failed");
    }
    size_t n = (t->plan->arena_bytes + 63) & ~(size_t)63;
    t->mem = aligned_alloc(64, n ? n : 64);
    assert_non_null(t->mem);
    memset(t->mem, 0, n ? n : 64);
}

static inline void t_run(T *t, ProgramKind k, int64_t batch) {
    RtFn f = cg_program(t->m, k);
    assert_non_null(f);
    f(t->mem, batch);
}

static inline void t_free(T *t) {
    cg_free(t->m);
    free(t->mem);
    arena_free(t->a);
}

/* Output i after optimisation (passes may forward the node we built). */
static inline const Node *t_out(T *t, int i) { return t->g->outputs.items[i].node; }

static inline void *t_ptr(T *t, ProgramKind k, const Node *n) {
    size_t off = t->plan->prog[k].offset[n->id];
    assert_true(off != PLAN_NONE);
    return t->mem + off;
}

/* Element i of float tensor n in program k, whatever the element type. */
static inline double get(T *t, ProgramKind k, const Node *n, int64_t i) {
    void *p = t_ptr(t, k, n);
    return t->elem_size == 4 ? ((float *)p)[i] : ((double *)p)[i];
}
static inline void set(T *t, const Node *n, int64_t i, double v) {
    void *p = t_ptr(t, PROG_PREDICT, n); /* leaves: the same offset in every program */
    if (t->elem_size == 4)
        ((float *)p)[i] = (float)v;
    else
        ((double *)p)[i] = v;
}
static inline void set_int(T *t, const Node *n, int64_t i, int32_t v) {
    ((int32_t *)t_ptr(t, PROG_PREDICT, n))[i] = v;
}
/* The value set() stores, as the kernels see it. */
static inline double as_elem(T *t, double v) { return t->elem_size == 4 ? (double)(float)v : v; }

/* Deterministic values in [lo, hi). */
static inline double rnd(uint64_t *s, double lo, double hi) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (double)(*s >> 11) / 9007199254740992.0;
}

/* Fill n (numel elements) with values in [lo, hi); returns them as stored. */
static inline double *fill(T *t, const Node *n, int64_t numel, double lo, double hi, uint64_t seed) {
    double *v = malloc(sizeof *v * (size_t)numel);
    for (int64_t i = 0; i < numel; i++) {
        v[i] = as_elem(t, rnd(&seed, lo, hi));
        set(t, n, i, v[i]);
    }
    return v;
}

static inline Node *input(T *t, const char *name, Shape s) { return ir_input(t->g, name, DT_FLOAT, &s, L0); }
static inline Node *int_input(T *t, const char *name, Shape s) {
    return ir_input(t->g, name, DT_INT, &s, L0);
}
static inline Node *param(T *t, const char *name, Shape s) {
    return ir_param(t->g, name, &s, (Init){.kind = INIT_CONST}, L0);
}

/* C[m, n] = sum_k op(A)[m, k] op(B)[k, n], A stored [ra, ca], B [rb, cb]. */
static inline void naive_matmul(const double *a, int64_t ca, bool ta, const double *b, int64_t cb, bool tb,
                                int64_t m, int64_t n, int64_t k, double *c) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t l = 0; l < k; l++)
                s += (ta ? a[l * ca + i] : a[i * ca + l]) * (tb ? b[j * cb + l] : b[l * cb + j]);
            c[i * n + j] = s;
        }
}

/* p <- p - lr * dp for every parameter, built the way the front end builds
 * an update rule: between ir_update_begin and ir_update_end, a HYPER_VALUE
 * "lr" (also Graph.lr), one ASSIGN per parameter. Requires ad_backward. */
static inline void sgd_update(Graph *g, double lr) {
    ir_update_begin(g);
    g->lr = ir_hyper(g, "lr", lr);
    g->cur_rule = "sgd";
    g->cur_math = "p - lr * g";
    for (int i = 0; i < g->params.len; i++) {
        Param *p = &g->params.items[i];
        g->cur_origin = p->node;
        Node *step = ir_binary(g, OP_MUL, g->lr, p->grad, p->loc);
        ir_assign(g, p->node, ir_binary(g, OP_SUB, p->node, step, p->loc));
    }
    ir_update_end(g);
}

#endif
