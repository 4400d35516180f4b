/* support.h: shared by the end-to-end tests: compile a model through the
 * whole pipeline (front end, autodiff, passes, plan, LLVM JIT) and read and
 * write its tensors. Include after cmocka.h. */
#ifndef GRADC_TEST_SUPPORT_H
#define GRADC_TEST_SUPPORT_H

#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include "codegen/cg.h"
#include "codegen/rtmodel.h"
#include "frontend/frontend.h"
#include "runtime/rt.h"

typedef struct Compiled {
    Arena *a;
    Diags d;
    Model *m;
    Graph *g;
    Plan *plan;
    CgModule *cg;
    RtModel *rm;
    RtSession s;
} Compiled;

/* The graph of model source text (named path): the front end, the
 * training graph when the model has a loss (its own optimizer, sgd by
 * default), the optimisation passes; not planned. Fails the test, printing
 * diagnostics, on any error. */
static inline Compiled *build_graph(const char *path, const char *text) {
    Compiled *c = calloc(1, sizeof *c);
    c->a = arena_new();
    diags_init(&c->d, c->a);
    c->m = fe_compile(c->a, &c->d, path, text);
    if (!c->m || c->d.nerrors) {
        diags_print(&c->d, stderr, false);
        fail_msg("model %s does not compile", path);
    }
    c->g = c->m->graph;
    if (c->g->loss && !fe_build_training(c->m, &c->d, NULL, NAN)) {
        diags_print(&c->d, stderr, false);
        fail_msg("model %s: the training graph does not build", path);
    }
    ir_optimize(c->g);
    return c;
}

/* JIT c->plan's programs with elements of elem_size bytes and start a
 * session (seed 1) with the model's initial weights. */
static inline void jit_session(Compiled *c, int elem_size) {
    CgOptions o = {.elem_size = elem_size, .opt_level = 2};
    c->cg = cg_compile(c->g, c->plan, &o, &c->d);
    if (!c->cg) {
        diags_print(&c->d, stderr, false);
        fail_msg("the model does not compile to native code");
    }
    c->rm = cg_rt_model_jit(c->a, c->g, c->plan, c->cg);
    RtError err;
    if (rt_session_init(&c->s, c->rm, 1, &err) != RT_OK)
        fail_msg("%s", err.msg);
    rt_init_params(&c->s);
}

/* Compile model source text (named path) with elements of elem_size bytes,
 * for batches up to max_batch: build_graph, every program planned,
 * jit_session. */
static inline Compiled *compile_model(const char *path, const char *text, int64_t max_batch, int elem_size) {
    Compiled *c = build_graph(path, text);
    c->plan = ir_plan(c->g, max_batch, elem_size);
    jit_session(c, elem_size);
    return c;
}

/* Read a whole file into a malloc'ed string. */
static inline char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n)
        fail_msg("cannot read %s", path);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static inline Compiled *compile_file(const char *path, int64_t max_batch, int elem_size) {
    char *text = slurp(path);
    Compiled *c = compile_model(path, text, max_batch, elem_size);
    free(text);
    return c;
}

static inline void compiled_free(Compiled *c) {
    rt_session_free(&c->s);
    cg_free(c->cg);
    arena_free(c->a);
    free(c);
}

static inline const RtTensor *find_tensor(const RtTensor *ts, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(ts[i].name, name))
            return &ts[i];
    fail_msg("no tensor named %s", name);
    return NULL;
}

/* Element i of a float tensor, whatever the model's float type. */
static inline double get_elem(const Compiled *c, const RtTensor *t, int64_t i) {
    const void *p = rt_ptr(&c->s, t);
    if (t->dtype == RT_INT)
        return ((const int32_t *)p)[i];
    return c->rm->elem_size == 4 ? ((const float *)p)[i] : ((const double *)p)[i];
}

static inline void set_elem(Compiled *c, const RtTensor *t, int64_t i, double v) {
    void *p = rt_ptr(&c->s, t);
    if (t->dtype == RT_INT)
        ((int32_t *)p)[i] = (int32_t)v;
    else if (c->rm->elem_size == 4)
        ((float *)p)[i] = (float)v;
    else
        ((double *)p)[i] = v;
}

static inline void set_input(Compiled *c, const char *name, const double *v, int64_t n) {
    const RtTensor *t = find_tensor(c->rm->inputs, c->rm->ninputs, name);
    for (int64_t i = 0; i < n; i++)
        set_elem(c, t, i, v[i]);
}

static inline const RtTensor *param(const Compiled *c, const char *name) {
    return find_tensor(c->rm->params, c->rm->nparams, name);
}

static inline void run(Compiled *c, const RtProgram *p, int64_t batch) {
    assert_non_null(p->fn);
    p->fn(c->s.arena, batch);
}

#endif
