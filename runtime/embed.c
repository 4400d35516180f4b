/* embed.c: the generic half of a model's C library (`gradc build M.nn --lib`):
 * a training step, evaluation and prediction on rows in the caller's arrays,
 * and loading and saving weights. The generated half (driver/build_lib.c
 * writes it) only names the arrays after the model's inputs and outputs.
 *
 * Owns checking the caller's rows (row counts, NULL arrays, int values
 * against their inputs' limits, non-finite floats), copying them into the
 * arena batch by batch, copying the outputs back, and the floating-point
 * mode around the compiled code. Must not print, exit, or keep any state
 * outside the session: libraries of two models live in one process, and
 * their sessions run on different threads.
 */
#include "rt_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

/* ---- the floating-point mode ------------------------------------------------
 * gradc train runs the compiled code with flush-to-zero and
 * denormals-are-zero (rt_setup); so does the library, so that the same steps
 * give the same bits, but only for the duration of a call: the caller's
 * thread gets its own mode back. */

typedef struct FpMode {
    unsigned csr;
} FpMode;

static FpMode fp_enter(void) {
    FpMode f = {0};
#if defined(__x86_64__)
    f.csr = _mm_getcsr();
    _mm_setcsr(f.csr | 0x8040); /* FTZ (bit 15) | DAZ (bit 6) */
#endif
    return f;
}

static void fp_leave(FpMode f) {
#if defined(__x86_64__)
    _mm_setcsr(f.csr);
#else
    (void)f;
#endif
}

void rt_lib_setup(int threads) {
    FpMode f = fp_enter();
    rt_setup(threads);
    fp_leave(f);
}

/* ---- checking the caller's rows ----------------------------------------------- */

static RtLibCode fail(RtLibCode code, RtError *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static RtLibCode fail(RtLibCode code, RtError *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

/* Inputs go in row by row: every one needs a leading batch dimension and no
 * other. */
static RtLibCode check_row_inputs(const RtModel *m, RtError *err) {
    char dims[96];
    for (int i = 0; i < m->ninputs; i++) {
        const RtTensor *t = &m->inputs[i];
        bool ok = t->rank >= 1 && t->dims[0] == RT_DIM_BATCH;
        for (int a = 1; ok && a < t->rank; a++)
            ok = t->dims[a] != RT_DIM_BATCH;
        if (!ok)
            return fail(RT_LIB_EINVAL, err,
                        "input '%s' %s does not have the batch as its first axis only, so it "
                        "cannot be given row by row",
                        t->name, rt_dims_str(t, dims, sizeof dims));
    }
    return RT_LIB_OK;
}

/* "row 3" or, for an input with several elements per row, "row 3, element
 * 1", for element k of the caller's array (rows count from 0). */
static const char *where(int64_t k, int64_t per, char *buf, size_t n) {
    if (per == 1)
        snprintf(buf, n, "row %lld", (long long)k);
    else
        snprintf(buf, n, "row %lld, element %lld", (long long)(k / per), (long long)(k % per));
    return buf;
}

/* Rows [0, n) of input i in the caller's array p: int values inside the
 * input's limit, float values finite when `finite`. */
static RtLibCode check_rows(const RtModel *m, int i, const void *p, int64_t n, bool finite,
                            RtError *err) {
    const RtTensor *t = &m->inputs[i];
    int64_t per = rt_numel(t, 1), total = n * per;
    char at[64];
    if (t->dtype == RT_INT) {
        if (t->limit <= 0)
            return RT_LIB_OK;
        const int32_t *v = p;
        for (int64_t k = 0; k < total; k++)
            if (v[k] < 0 || v[k] >= t->limit)
                return fail(RT_LIB_EINVAL, err, "input '%s', %s: %d is out of range [0, %lld)",
                            t->name, where(k, per, at, sizeof at), (int)v[k],
                            (long long)t->limit);
        return RT_LIB_OK;
    }
    for (int64_t k = 0; finite && k < total; k++) {
        double v = rt_load_float(p, m->elem_size, k);
        if (!isfinite(v))
            return fail(RT_LIB_EINVAL, err, "input '%s', %s: %s is not a finite number",
                        t->name, where(k, per, at, sizeof at),
                        isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
    }
    return RT_LIB_OK;
}

/* The input arrays (those with need[i]; need NULL: all) present and their
 * rows [0, n) valid. */
static RtLibCode check_inputs(const RtModel *m, const void *const *inputs, const bool *need,
                              int64_t n, bool finite, RtError *err) {
    if (m->ninputs > 0 && !inputs)
        return fail(RT_LIB_EINVAL, err, "no input arrays (NULL)");
    RtLibCode c = check_row_inputs(m, err);
    for (int i = 0; c == RT_LIB_OK && i < m->ninputs; i++) {
        if (need && !need[i])
            continue;
        if (!inputs[i])
            return fail(RT_LIB_EINVAL, err, "input '%s' is NULL", m->inputs[i].name);
        c = check_rows(m, i, inputs[i], n, finite, err);
    }
    return c;
}

/* Copy rows [at, at + nb) of every needed input into the arena, batch-first. */
static void copy_in(RtSession *s, const void *const *inputs, const bool *need, int64_t at,
                    int64_t nb) {
    const RtModel *m = s->m;
    for (int i = 0; i < m->ninputs; i++) {
        if (need && !need[i])
            continue;
        size_t row = rt_tensor_bytes(m, &m->inputs[i], 1);
        memcpy(rt_ptr(s, &m->inputs[i]), (const char *)inputs[i] + (size_t)at * row,
               (size_t)nb * row);
    }
}

static double read_scalar(const RtSession *s, const RtTensor *t) {
    return rt_load_float(rt_ptr(s, t), s->m->elem_size, 0);
}

/* ---- the programs ------------------------------------------------------------- */

/* Contract: see rt.h. The rows are checked before anything changes: on any
 * error but RT_LIB_ELOSS, s is as it was. */
RtLibCode rt_lib_train_step(RtSession *s, const void *const *inputs, int64_t n, int64_t epochs,
                            double *loss, RtError *err) {
    const RtModel *m = s->m;
    if (!m->train.fn || m->train.nroots < 1 || m->train.roots[0].dtype != RT_FLOAT ||
        rt_numel(&m->train.roots[0], 1) != 1)
        return fail(RT_LIB_EINVAL, err, "model '%s' has no train program with a scalar loss",
                    m->name);
    if (n < 1 || n > m->max_batch)
        return fail(RT_LIB_EINVAL, err,
                    "n is %lld, but a training step takes 1 to %lld rows (the batch size the "
                    "library was built for)",
                    (long long)n, (long long)m->max_batch);
    RtLibCode c = check_inputs(m, inputs, NULL, n, true, err);
    if (c != RT_LIB_OK)
        return c;
    copy_in(s, inputs, NULL, 0, n);
    FpMode f = fp_enter();
    rt_step_hypers(s, epochs);
    m->train.fn(s->arena, n);
    fp_leave(f);
    s->step++;
    double l = read_scalar(s, &m->train.roots[0]);
    if (loss)
        *loss = l;
    if (!isfinite(l))
        return fail(RT_LIB_ELOSS, err,
                    "the loss became %s at step %lld; the parameters are no longer usable "
                    "(load saved weights to go on, perhaps with a smaller learning rate)",
                    isnan(l) ? "nan" : l > 0 ? "inf" : "-inf", (long long)s->step);
    return RT_LIB_OK;
}

/* Contract: see rt.h. The caller's arrays are read in place, through a
 * dataset that points at them. */
RtLibCode rt_lib_evaluate(RtSession *s, const void *const *inputs, int64_t n, double *loss,
                          double *accuracy, RtError *err) {
    const RtModel *m = s->m;
    if (n < 1)
        return fail(RT_LIB_EINVAL, err, "n is %lld; evaluation needs at least one row",
                    (long long)n);
    RtLibCode c = check_inputs(m, inputs, NULL, n, true, err);
    if (c != RT_LIB_OK)
        return c;
    size_t slots = (size_t)(m->ninputs ? m->ninputs : 1);
    int64_t *row_elems = malloc(sizeof *row_elems * slots);
    int64_t *rows = malloc(sizeof *rows * (size_t)n);
    if (!row_elems || !rows) {
        free(row_elems);
        free(rows);
        return fail(RT_LIB_ENOMEM, err, "out of memory for %lld rows", (long long)n);
    }
    for (int i = 0; i < m->ninputs; i++)
        row_elems[i] = rt_numel(&m->inputs[i], 1);
    for (int64_t k = 0; k < n; k++)
        rows[k] = k;
    /* rt_evaluate only reads data[i]. */
    RtDataset d = {.n = n, .ninputs = m->ninputs, .data = (void **)inputs,
                   .row_elems = row_elems};
    FpMode f = fp_enter();
    RtStatus st = rt_evaluate(s, &d, rows, n, loss, accuracy, err);
    fp_leave(f);
    free(row_elems);
    free(rows);
    return st == RT_OK ? RT_LIB_OK : RT_LIB_EINVAL;
}

/* Contract: see rt.h. Every row is checked before the first batch runs. */
RtLibCode rt_lib_predict(RtSession *s, const void *const *inputs, const bool *need, int64_t n,
                         void *const *outputs, RtError *err) {
    const RtModel *m = s->m;
    char dims[96];
    if (!m->predict.fn || m->predict.nroots < 1)
        return fail(RT_LIB_EINVAL, err, "model '%s' has no predict program (it declares no "
                                        "outputs)",
                    m->name);
    if (n < 0)
        return fail(RT_LIB_EINVAL, err, "n is %lld; expected a row count", (long long)n);
    RtLibCode c = check_inputs(m, inputs, need, n, false, err);
    if (c != RT_LIB_OK)
        return c;
    if (!outputs)
        return fail(RT_LIB_EINVAL, err, "no output arrays (NULL)");
    for (int r = 0; r < m->predict.nroots; r++) {
        const RtTensor *t = &m->predict.roots[r];
        for (int a = 1; a < t->rank; a++)
            if (t->dims[a] == RT_DIM_BATCH)
                return fail(RT_LIB_EINVAL, err,
                            "output '%s' %s has its batch dimension after the first axis",
                            t->name, rt_dims_str(t, dims, sizeof dims));
        if (!outputs[r])
            return fail(RT_LIB_EINVAL, err, "output '%s' is NULL", t->name);
    }
    FpMode f = fp_enter();
    for (int64_t at = 0; at < n; at += m->max_batch) {
        int64_t nb = n - at < m->max_batch ? n - at : m->max_batch;
        copy_in(s, inputs, need, at, nb);
        m->predict.fn(s->arena, nb);
        for (int r = 0; r < m->predict.nroots; r++) {
            const RtTensor *t = &m->predict.roots[r];
            size_t row = rt_tensor_bytes(m, t, 1);
            if (t->rank > 0 && t->dims[0] == RT_DIM_BATCH)
                memcpy((char *)outputs[r] + (size_t)at * row, rt_ptr(s, t), (size_t)nb * row);
            else
                memcpy(outputs[r], rt_ptr(s, t), row);
        }
    }
    fp_leave(f);
    return RT_LIB_OK;
}

/* ---- weight files ------------------------------------------------------------- */

RtLibCode rt_lib_load(RtSession *s, const char *path, RtError *err) {
    if (!path)
        return fail(RT_LIB_EINVAL, err, "no weight file (the path is NULL)");
    char *step = NULL;
    if (rt_read_weights_meta(path, "step", &step, err) != RT_OK)
        return RT_LIB_EIO;
    RtStatus st = step ? rt_load_checkpoint(s, path, err) : rt_load_weights(s, path, err);
    free(step);
    return st == RT_OK ? RT_LIB_OK : RT_LIB_EIO;
}

RtLibCode rt_lib_save(const RtSession *s, const char *path, int nmeta, const char *const *keys,
                      const char *const *values, RtError *err) {
    if (!path)
        return fail(RT_LIB_EINVAL, err, "no weight file (the path is NULL)");
    return rt_save_checkpoint(s, path, nmeta, keys, values, err) == RT_OK ? RT_LIB_OK
                                                                           : RT_LIB_EIO;
}
