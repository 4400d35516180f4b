/* session.c: a model instance: its arena, hyperparameters (the per-step
 * ones too: t, epoch, epochs, the dropout key), RNG and the initial values
 * of its parameters and optimizer states.
 *
 * Owns the one allocation per model (llm.c's malloc_and_point_parameters):
 * every tensor of the RtModel points into it by byte offset. Checks the
 * model description once, at rt_session_init, so the rest of the runtime may
 * trust it. Must not know how the compiled programs compute anything.
 */
#include "rt_internal.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Does t, sized for `batch`, lie inside m's arena at an address aligned for
 * its elements? Fills err naming the tensor (kind: "parameter", ...) if not. */
static RtStatus check_tensor(const RtModel *m, const RtTensor *t, const char *kind,
                             int64_t batch, RtError *err) {
    char dims[96];
    if (!t->name)
        return rt_fail(err, "model '%s': a %s has no name", m->name, kind);
    const char *name = t->name;
    if (t->rank < 0 || t->rank > RT_MAX_RANK)
        return rt_fail(err, "model '%s': %s '%s' has rank %d; the runtime supports 0 to %d",
                       m->name, kind, name, t->rank, (int)RT_MAX_RANK);
    for (int i = 0; i < t->rank; i++)
        if (t->dims[i] <= 0 && t->dims[i] != RT_DIM_BATCH)
            return rt_fail(err, "model '%s': %s '%s' has dimension %lld at axis %d", m->name,
                           kind, name, (long long)t->dims[i], i);
    size_t bytes = rt_tensor_bytes(m, t, batch);
    size_t align = rt_elem_bytes(m, t);
    if (t->offset % align != 0)
        return rt_fail(err, "model '%s': %s '%s' at byte %zu is not aligned to %zu bytes",
                       m->name, kind, name, t->offset, align);
    if (t->offset > m->arena_bytes || bytes > m->arena_bytes - t->offset)
        return rt_fail(err,
                       "model '%s': %s '%s' %s at byte %zu needs %zu bytes, past the end of "
                       "the %zu-byte arena",
                       m->name, kind, name, rt_dims_str(t, dims, sizeof dims), t->offset, bytes,
                       m->arena_bytes);
    return RT_OK;
}

static bool has_batch_dim(const RtTensor *t) {
    for (int i = 0; i < t->rank; i++)
        if (t->dims[i] == RT_DIM_BATCH)
            return true;
    return false;
}

static RtStatus check_program(const RtModel *m, const RtProgram *p, const char *which,
                              RtError *err) {
    if (p->nroots > 0 && !p->roots)
        return rt_fail(err, "model '%s': the %s program has %d roots but no root table",
                       m->name, which, p->nroots);
    for (int i = 0; i < p->nroots; i++)
        if (check_tensor(m, &p->roots[i], which, m->max_batch, err) != RT_OK)
            return RT_FAIL;
    return RT_OK;
}

/* A persistent float tensor (kind "parameter" or "optimizer state"): no
 * batch dimension, inside the arena, with as many literal initial values as
 * elements. */
static RtStatus check_persistent(const RtModel *m, const RtTensor *t, const RtInit *in,
                                 const char *kind, RtError *err) {
    char dims[96];
    if (t->name && (t->dtype != RT_FLOAT || has_batch_dim(t)))
        return rt_fail(err, "model '%s': %s '%s' %s must be a float tensor without a batch "
                            "dimension",
                       m->name, kind, t->name, rt_dims_str(t, dims, sizeof dims));
    if (check_tensor(m, t, kind, 1, err) != RT_OK)
        return RT_FAIL;
    if (in->kind == RT_INIT_VALUES && (in->nvalues != rt_numel(t, 1) || !in->values))
        return rt_fail(err, "model '%s': %s '%s' %s has %lld initial values for %lld elements",
                       m->name, kind, t->name, rt_dims_str(t, dims, sizeof dims),
                       (long long)in->nvalues, (long long)rt_numel(t, 1));
    return RT_OK;
}

/* The kind of hyper i: hyper_kinds[i], or by the old convention (an int32
 * hyper named "rng" is the dropout key, every other one a value). */
static RtHyperKind hyper_kind(const RtModel *m, int i) {
    if (m->hyper_kinds)
        return m->hyper_kinds[i];
    const RtTensor *t = &m->hypers[i];
    return t->dtype == RT_INT && t->name && strcmp(t->name, "rng") == 0 ? RT_HYPER_RNG
                                                                        : RT_HYPER_VALUE;
}

/* A hyper's kind is one of RtHyperKind and fits its dtype: t, epoch and
 * epochs are floats, the RNG key is int32. */
static RtStatus check_hyper_kind(const RtModel *m, int i, RtError *err) {
    const RtTensor *t = &m->hypers[i];
    RtHyperKind k = hyper_kind(m, i);
    const char *what = NULL;
    switch (k) {
    case RT_HYPER_VALUE: return RT_OK;
    case RT_HYPER_STEP: what = "the step number"; break;
    case RT_HYPER_EPOCH: what = "the epoch number"; break;
    case RT_HYPER_EPOCHS: what = "the number of epochs"; break;
    case RT_HYPER_RNG:
        if (t->dtype != RT_INT)
            return rt_fail(err, "model '%s': hyperparameter '%s' holds random bits, so it must "
                                "be an int scalar",
                           m->name, t->name);
        return RT_OK;
    }
    if (!what)
        return rt_fail(err, "model '%s': hyperparameter '%s' has unknown kind %d", m->name,
                       t->name, (int)k);
    if (t->dtype != RT_FLOAT)
        return rt_fail(err, "model '%s': hyperparameter '%s' holds %s, so it must be a float "
                            "scalar",
                       m->name, t->name, what);
    return RT_OK;
}

/* The optimizer states: tables present, each a persistent float tensor
 * belonging to a parameter. */
static RtStatus check_states(const RtModel *m, RtError *err) {
    if (m->nstates < 0 ||
        (m->nstates > 0 && (!m->states || !m->state_inits || !m->state_param)))
        return rt_fail(err, "model '%s': the optimizer state table is missing", m->name);
    for (int i = 0; i < m->nstates; i++) {
        const RtTensor *t = &m->states[i];
        if (check_persistent(m, t, &m->state_inits[i], "optimizer state", err) != RT_OK)
            return RT_FAIL;
        if (m->state_param[i] < 0 || m->state_param[i] >= m->nparams)
            return rt_fail(err, "model '%s': optimizer state '%s' belongs to parameter %d; the "
                                "model has %d",
                           m->name, t->name, m->state_param[i], m->nparams);
    }
    return RT_OK;
}

/* The train program's learning-rate root, when it has one: a float scalar
 * after the loss. */
static RtStatus check_lr_root(const RtModel *m, RtError *err) {
    int r = m->train_lr_root;
    if (r == 0 || (!m->train.fn && m->train.nroots == 0))
        return r < 0 ? rt_fail(err, "model '%s': learning-rate root %d", m->name, r) : RT_OK;
    if (r < 1 || r >= m->train.nroots)
        return rt_fail(err, "model '%s': learning-rate root %d; the train program has %d roots "
                            "and root 0 is the loss",
                       m->name, r, m->train.nroots);
    const RtTensor *t = &m->train.roots[r];
    if (t->dtype != RT_FLOAT || rt_numel(t, 1) != 1 || has_batch_dim(t))
        return rt_fail(err, "model '%s': the train program's learning rate '%s' must be a float "
                            "scalar",
                       m->name, t->name ? t->name : "?");
    return RT_OK;
}

/* Every fact about m the runtime relies on: element size, tensors inside
 * the arena, parameters and optimizer states without a batch dimension and
 * with as many literal values as elements, scalar hyperparameters whose
 * kinds fit their types (float, or int32 for the RNG key), and a scalar
 * learning-rate root. */
static RtStatus check_model(const RtModel *m, RtError *err) {
    char dims[96];
    if (m->elem_size != 4 && m->elem_size != 8)
        return rt_fail(err, "model '%s': element size %d; expected 4 (float32) or 8 (float64)",
                       m->name, m->elem_size);
    if (m->max_batch < 1)
        return rt_fail(err, "model '%s': max_batch is %lld; expected at least 1", m->name,
                       (long long)m->max_batch);
    if ((m->nparams > 0 && (!m->params || !m->inits)) || (m->ninputs > 0 && !m->inputs) ||
        (m->nhypers > 0 && !m->hypers) || m->nparams < 0 || m->ninputs < 0 || m->nhypers < 0)
        return rt_fail(err, "model '%s': a tensor table is missing", m->name);
    for (int i = 0; i < m->nparams; i++)
        if (check_persistent(m, &m->params[i], &m->inits[i], "parameter", err) != RT_OK)
            return RT_FAIL;
    if (check_states(m, err) != RT_OK)
        return RT_FAIL;
    for (int i = 0; i < m->ninputs; i++)
        if (check_tensor(m, &m->inputs[i], "input", m->max_batch, err) != RT_OK)
            return RT_FAIL;
    for (int i = 0; i < m->nhypers; i++) {
        const RtTensor *t = &m->hypers[i];
        if (rt_numel(t, 1) != 1 || has_batch_dim(t))
            return rt_fail(err, "model '%s': hyperparameter '%s' %s must be a scalar",
                           m->name, t->name, rt_dims_str(t, dims, sizeof dims));
        if (check_tensor(m, t, "hyperparameter", 1, err) != RT_OK ||
            check_hyper_kind(m, i, err) != RT_OK)
            return RT_FAIL;
    }
    if (check_program(m, &m->train, "train", err) != RT_OK ||
        check_program(m, &m->eval, "eval", err) != RT_OK ||
        check_program(m, &m->predict, "predict", err) != RT_OK ||
        check_program(m, &m->grad, "grad", err) != RT_OK || check_lr_root(m, err) != RT_OK)
        return RT_FAIL;
    if (m->metric != RT_METRIC_NONE && (m->metric_label < 0 || m->metric_label >= m->ninputs))
        return rt_fail(err, "model '%s': metric label input %d; the model has %d inputs",
                       m->name, m->metric_label, m->ninputs);
    return RT_OK;
}

/* A hyperparameter's value in its own type: the model's float type, or
 * int32 (the value truncated and clamped to the int32 range; NaN is 0). */
static void store_hyper(RtSession *s, const RtTensor *t, double value) {
    void *p = rt_ptr(s, t);
    if (t->dtype == RT_FLOAT) {
        rt_store_float(p, s->m->elem_size, 0, value);
        return;
    }
    int32_t v = 0;
    if (value >= (double)INT32_MAX)
        v = INT32_MAX;
    else if (value <= (double)INT32_MIN)
        v = INT32_MIN;
    else if (value == value)
        v = (int32_t)value;
    *(int32_t *)p = v;
}

/* Contract: on RT_OK, s owns a zeroed, 64-byte aligned arena of at least
 * m->arena_bytes (rounded up to a multiple of 64), every RT_HYPER_VALUE
 * hyperparameter holds its default in its own type (an int hyper: the
 * default as int32) and the other kinds 0, the RNG is seeded with seed, and
 * step, epoch and epoch_rows are 0. The parameters and optimizer states are
 * zero until rt_init_params or rt_load_weights. On RT_FAIL, s owns nothing.
 * m must outlive s. */
RtStatus rt_session_init(RtSession *s, const RtModel *m, uint64_t seed, RtError *err) {
    memset(s, 0, sizeof *s);
    if (!m->name)
        return rt_fail(err, "model has no name");
    if (check_model(m, err) != RT_OK)
        return RT_FAIL;
    size_t bytes = (m->arena_bytes + 63) / 64 * 64;
    if (bytes == 0)
        bytes = 64;
    if (bytes < m->arena_bytes)
        return rt_fail(err, "model '%s': arena of %zu bytes is too large", m->name,
                       m->arena_bytes);
    s->arena = aligned_alloc(64, bytes);
    if (!s->arena)
        return rt_fail(err, "model '%s': cannot allocate the %zu-byte arena", m->name, bytes);
    memset(s->arena, 0, bytes);
    s->m = m;
    for (int i = 0; i < m->nhypers; i++)
        if (hyper_kind(m, i) == RT_HYPER_VALUE)
            store_hyper(s, &m->hypers[i], m->hyper_defaults ? m->hyper_defaults[i] : 0.0);
    rt_rng_seed(&s->rng, seed);
    return RT_OK;
}

void rt_session_free(RtSession *s) {
    if (!s)
        return;
    free(s->arena);
    memset(s, 0, sizeof *s);
}

void *rt_ptr(const RtSession *s, const RtTensor *t) {
    assert(s->arena && t->offset <= s->m->arena_bytes);
    return (char *)s->arena + t->offset;
}

RtStatus rt_set_hyper(RtSession *s, const char *name, double value, RtError *err) {
    const RtModel *m = s->m;
    for (int i = 0; i < m->nhypers; i++) {
        if (strcmp(m->hypers[i].name, name) == 0) {
            store_hyper(s, &m->hypers[i], value);
            return RT_OK;
        }
    }
    char have[512] = "";
    size_t len = 0;
    for (int i = 0; i < m->nhypers && len < sizeof have; i++)
        len += (size_t)snprintf(have + len, sizeof have - len, "%s%s", i ? ", " : "",
                                m->hypers[i].name);
    if (m->nhypers == 0)
        return rt_fail(err, "model '%s' has no hyperparameters (asked for '%s')", m->name, name);
    return rt_fail(err, "model '%s' has no hyperparameter '%s'; it has: %s", m->name, name, have);
}

/* Contract: see rt.h. The draw happens only when the model has an RNG
 * hyper, so that models without dropout see the same RNG stream as before
 * dropout existed. */
void rt_step_hypers(RtSession *s, int64_t epochs) {
    const RtModel *m = s->m;
    bool drawn = false;
    int32_t bits = 0;
    for (int i = 0; i < m->nhypers; i++) {
        const RtTensor *t = &m->hypers[i];
        switch (hyper_kind(m, i)) {
        case RT_HYPER_VALUE: break;
        case RT_HYPER_STEP: store_hyper(s, t, (double)(s->step + 1)); break;
        case RT_HYPER_EPOCH: store_hyper(s, t, (double)s->epoch); break;
        case RT_HYPER_EPOCHS: store_hyper(s, t, (double)epochs); break;
        case RT_HYPER_RNG:
            if (!drawn) {
                uint32_t low = (uint32_t)rt_rng_next(&s->rng);
                memcpy(&bits, &low, sizeof bits);
                drawn = true;
            }
            *(int32_t *)rt_ptr(s, t) = bits;
            break;
        }
    }
}

/* Fans of a weight of shape dims, used as x @ W (so [in, out]): rank 0 has
 * fans 1 and 1; rank 1 [d] has d and d; rank 2 [in, out] has in and out;
 * higher ranks have the last axis as fan_out and the rest as fan_in. */
static void fans(const RtTensor *t, double *fan_in, double *fan_out) {
    if (t->rank == 0) {
        *fan_in = *fan_out = 1;
    } else if (t->rank == 1) {
        *fan_in = *fan_out = (double)t->dims[0];
    } else {
        double in = 1;
        for (int i = 0; i < t->rank - 1; i++)
            in *= (double)t->dims[i];
        *fan_in = in;
        *fan_out = (double)t->dims[t->rank - 1];
    }
}

/* Fill t from in, drawing from s->rng in element order:
 *   CONST:   a                    NORMAL:  a + b * N(0, 1)
 *   VALUES:  values[i]            UNIFORM: a + (b - a) * U[0, 1)
 *   GLOROT:  U(-L, L), L = sqrt(6 / (fan_in + fan_out))
 *   HE:      N(0, 1) * sqrt(2 / fan_in) */
static void init_tensor(RtSession *s, const RtTensor *t, const RtInit *in) {
    const RtModel *m = s->m;
    void *dst = rt_ptr(s, t);
    int64_t n = rt_numel(t, 1);
    double fan_in, fan_out;
    fans(t, &fan_in, &fan_out);
    double limit = sqrt(6.0 / (fan_in + fan_out));
    double he_std = sqrt(2.0 / fan_in);
    for (int64_t i = 0; i < n; i++) {
        double v = 0;
        switch (in->kind) {
        case RT_INIT_CONST: v = in->a; break;
        case RT_INIT_VALUES: v = in->values[i]; break;
        case RT_INIT_NORMAL: v = in->a + in->b * rt_rng_normal(&s->rng); break;
        case RT_INIT_UNIFORM: v = in->a + (in->b - in->a) * rt_rng_uniform(&s->rng); break;
        case RT_INIT_GLOROT: v = -limit + 2 * limit * rt_rng_uniform(&s->rng); break;
        case RT_INIT_HE: v = he_std * rt_rng_normal(&s->rng); break;
        }
        rt_store_float(dst, m->elem_size, i, v);
    }
}

/* Contract: every parameter, in model order, then every optimizer state, in
 * model order, from its RtInit (init_tensor); the same seed gives the same
 * values. */
void rt_init_params(RtSession *s) {
    const RtModel *m = s->m;
    for (int p = 0; p < m->nparams; p++)
        init_tensor(s, &m->params[p], &m->inits[p]);
    for (int k = 0; k < m->nstates; k++)
        init_tensor(s, &m->states[k], &m->state_inits[k]);
}
