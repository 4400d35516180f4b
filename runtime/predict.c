/* predict.c: running the predict program: over a dataset, written as CSV,
 * and one character at a time for text generation.
 *
 * Owns batching rows into the inputs (through rt_dataset_gather, the same
 * copy the training loop uses), the CSV layout of the outputs (or of each
 * row's most likely classes), sampling from a probability row with a
 * temperature, and the generation loop. The
 * compiled predict program computes the outputs; nothing here changes
 * parameters, and the per-step hypers are never stored (rt_step_hypers:
 * dropout is the identity in predict, and it has no optimizer step).
 */
#include "rt_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool batch_first(const RtTensor *t) {
    for (int i = 1; i < t->rank; i++)
        if (t->dims[i] == RT_DIM_BATCH)
            return false;
    return true;
}

static bool has_batch(const RtTensor *t) {
    return t->rank > 0 && t->dims[0] == RT_DIM_BATCH;
}

/* What every use of the predict program needs. */
static RtStatus check_predict(const RtModel *m, RtError *err) {
    char dims[96];
    if (!m->predict.fn || m->predict.nroots < 1)
        return rt_fail(err, "model '%s' has no predict program (it declares no outputs)",
                       m->name);
    for (int r = 0; r < m->predict.nroots; r++) {
        const RtTensor *t = &m->predict.roots[r];
        if (!batch_first(t))
            return rt_fail(err, "model '%s': output '%s' %s has its batch dimension after the "
                                "first axis",
                           m->name, t->name, rt_dims_str(t, dims, sizeof dims));
    }
    return RT_OK;
}

/* The CSV header: each output's columns, "name" or "name[i]" or "name[i][j]". */
static void write_header(FILE *out, const RtModel *m) {
    for (int r = 0; r < m->predict.nroots; r++) {
        const RtTensor *t = &m->predict.roots[r];
        int64_t per = rt_numel(t, 1);
        int first_axis = has_batch(t) ? 1 : 0;
        for (int64_t k = 0; k < per; k++) {
            fprintf(out, "%s%s", r || k ? "," : "", t->name);
            if (per == 1)
                continue;
            int64_t rest = k, idx[RT_MAX_RANK] = {0};
            for (int a = t->rank - 1; a >= first_axis; a--) {
                idx[a] = rest % t->dims[a];
                rest /= t->dims[a];
            }
            for (int a = first_axis; a < t->rank; a++)
                fprintf(out, "[%lld]", (long long)idx[a]);
        }
    }
    fputc('\n', out);
}

/* Row k of the batch just computed, every output, as one CSV line. */
static void write_row(FILE *out, const RtSession *s, int64_t k) {
    const RtModel *m = s->m;
    for (int r = 0; r < m->predict.nroots; r++) {
        const RtTensor *t = &m->predict.roots[r];
        int64_t per = rt_numel(t, 1), base = has_batch(t) ? k * per : 0;
        const void *p = rt_ptr(s, t);
        for (int64_t j = 0; j < per; j++) {
            const char *sep = r || j ? "," : "";
            if (t->dtype == RT_INT)
                fprintf(out, "%s%d", sep, (int)((const int32_t *)p)[base + j]);
            else
                fprintf(out, "%s%.9g", sep, rt_load_float(p, m->elem_size, base + j));
        }
    }
    fputc('\n', out);
}

/* Contract: see rt.h. Writes nothing after the first write error, and
 * reports it. */
RtStatus rt_predict(RtSession *s, const RtDataset *d, FILE *out, RtError *err) {
    const RtModel *m = s->m;
    if (check_predict(m, err) != RT_OK || rt_dataset_check(m, d, true, err) != RT_OK)
        return RT_FAIL;
    int64_t *rows = malloc(sizeof *rows * (size_t)m->max_batch);
    if (!rows)
        return rt_fail(err, "out of memory");
    write_header(out, m);
    for (int64_t at = 0; at < d->n && !ferror(out); at += m->max_batch) {
        int64_t nb = d->n - at < m->max_batch ? d->n - at : m->max_batch;
        for (int64_t k = 0; k < nb; k++)
            rows[k] = at + k;
        rt_dataset_gather(s, d, rows, nb);
        m->predict.fn(s->arena, nb);
        for (int64_t k = 0; k < nb; k++)
            write_row(out, s, k);
    }
    free(rows);
    if (fflush(out) != 0 || ferror(out))
        return rt_fail(err, "cannot write the predictions: %s", strerror(errno));
    return RT_OK;
}

/* s as one CSV field: as it is, or in double quotes (doubling the quotes
 * inside) when it holds a comma, a quote, a line break or edge spaces. */
static void write_field(FILE *out, const char *s) {
    size_t n = strlen(s);
    if (!strpbrk(s, ",\"\r\n") && !(n && (s[0] == ' ' || s[n - 1] == ' '))) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

/* The output --top reads: the predict program's first, [B, C] floats. */
static RtStatus check_top(const RtModel *m, int64_t k, RtError *err) {
    char dims[96];
    const RtTensor *t = &m->predict.roots[0];
    if (t->dtype != RT_FLOAT || t->rank != 2 || t->dims[0] != RT_DIM_BATCH)
        return rt_fail(err, "the model's first output '%s' %s is not a row of class "
                            "probabilities per example; the top classes need an output of shape "
                            "[B, classes] (softmax)",
                       t->name, rt_dims_str(t, dims, sizeof dims));
    if (k < 1 || k > t->dims[1])
        return rt_fail(err, "asked for the top %lld classes, but the first output '%s' %s has "
                            "%lld",
                       (long long)k, t->name, rt_dims_str(t, dims, sizeof dims),
                       (long long)t->dims[1]);
    return RT_OK;
}

/* Row r of the batch just computed, output 0's row into p[0, C): a
 * distribution, or RT_FAIL naming the row (row_no, 0-based in d). */
static RtStatus read_class_row(const RtSession *s, int64_t r, int64_t row_no, double *p,
                               RtError *err) {
    const RtModel *m = s->m;
    const RtTensor *t = &m->predict.roots[0];
    int64_t C = t->dims[1];
    const void *src = rt_ptr(s, t);
    double sum = 0;
    bool ok = true;
    for (int64_t c = 0; c < C; c++) {
        p[c] = rt_load_float(src, m->elem_size, r * C + c);
        ok = ok && isfinite(p[c]) && p[c] >= 0 && p[c] <= 1;
        sum += p[c];
    }
    if (!ok || fabs(sum - 1) > 1e-3)
        return rt_fail(err, "row %lld: the first output '%s' is not a probability row (its %lld "
                            "entries sum to %g%s); the top classes need softmax probabilities",
                       (long long)row_no + 1, t->name, (long long)C, sum,
                       ok ? "" : ", with entries outside [0, 1]");
    return RT_OK;
}

static void write_top_header(FILE *out, int64_t k) {
    for (int64_t j = 1; j <= k; j++)
        fprintf(out, "top%lld,p%lld%s", (long long)j, (long long)j, j < k ? "," : "\n");
}

/* The k most likely of p[0, C) as CSV fields, in order of decreasing
 * probability, the smaller id first among equals (a partial selection
 * sort: k is small). */
static void write_top_row(FILE *out, const double *p, int64_t C, int64_t k, int nnames,
                          const char *const *names, bool *taken) {
    for (int64_t c = 0; c < C; c++)
        taken[c] = false;
    for (int64_t j = 0; j < k; j++) {
        int64_t best = -1;
        for (int64_t c = 0; c < C; c++)
            if (!taken[c] && (best < 0 || p[c] > p[best]))
                best = c;
        taken[best] = true;
        if (j)
            fputc(',', out);
        if (best < nnames)
            write_field(out, names[best]);
        else
            fprintf(out, "%lld", (long long)best);
        fprintf(out, ",%.9g", p[best]);
    }
    fputc('\n', out);
}

/* Contract: see rt.h. Each batch is checked whole before any of it is
 * written, and the header waits for the first batch: a model whose output
 * is not a distribution writes nothing. */
RtStatus rt_predict_top(RtSession *s, const RtDataset *d, int64_t k, int nnames,
                        const char *const *names, FILE *out, RtError *err) {
    const RtModel *m = s->m;
    if (check_predict(m, err) != RT_OK || check_top(m, k, err) != RT_OK ||
        rt_dataset_check(m, d, true, err) != RT_OK)
        return RT_FAIL;
    int64_t C = m->predict.roots[0].dims[1], B = m->max_batch;
    int64_t *rows = malloc(sizeof *rows * (size_t)B);
    double *p = malloc(sizeof *p * (size_t)(B * C));
    bool *taken = malloc(sizeof *taken * (size_t)C);
    RtStatus st = rows && p && taken ? RT_OK : rt_fail(err, "out of memory");
    for (int64_t at = 0; st == RT_OK && at < d->n && !ferror(out); at += B) {
        int64_t nb = d->n - at < B ? d->n - at : B;
        for (int64_t r = 0; r < nb; r++)
            rows[r] = at + r;
        rt_dataset_gather(s, d, rows, nb);
        m->predict.fn(s->arena, nb);
        for (int64_t r = 0; st == RT_OK && r < nb; r++)
            st = read_class_row(s, r, at + r, p + r * C, err);
        if (st == RT_OK && at == 0)
            write_top_header(out, k);
        for (int64_t r = 0; st == RT_OK && r < nb; r++)
            write_top_row(out, p + r * C, C, k, nnames, names, taken);
    }
    if (st == RT_OK && d->n == 0)
        write_top_header(out, k);
    free(rows);
    free(p);
    free(taken);
    if (st == RT_OK && (fflush(out) != 0 || ferror(out)))
        st = rt_fail(err, "cannot write the predictions: %s", strerror(errno));
    return st;
}

/* Contract: see rt.h. Weights p^(1/T) are formed as exp((log p - log
 * p_max) / T), so that small temperatures do not underflow to all zeros. */
int64_t rt_sample(const double *p, int64_t n, double temperature, RtRng *r) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (p[i] > p[best])
            best = i;
    if (temperature <= 0 || p[best] <= 0)
        return best;
    double log_max = log(p[best]), sum = 0;
    double *w = malloc(sizeof *w * (size_t)n);
    if (!w)
        return best;
    for (int64_t i = 0; i < n; i++) {
        w[i] = p[i] > 0 ? exp((log(p[i]) - log_max) / temperature) : 0;
        sum += w[i];
    }
    double u = rt_rng_uniform(r) * sum, acc = 0;
    int64_t pick = best;
    for (int64_t i = 0; i < n; i++) {
        acc += w[i];
        if (w[i] > 0 && u < acc) {
            pick = i;
            break;
        }
    }
    free(w);
    return pick;
}

/* The probabilities of the next character after a predict run: the last V
 * entries of output 0's row, checked to be a distribution. */
static RtStatus read_probs(const RtSession *s, const RtTensor *t, int64_t V, double *p,
                           RtError *err) {
    const RtModel *m = s->m;
    int64_t base = rt_numel(t, 1) - V;
    const void *src = rt_ptr(s, t);
    double sum = 0;
    bool ok = true;
    for (int64_t i = 0; i < V; i++) {
        p[i] = rt_load_float(src, m->elem_size, base + i);
        ok = ok && isfinite(p[i]) && p[i] >= 0;
        sum += p[i];
    }
    if (!ok || fabs(sum - 1) > 1e-3)
        return rt_fail(err, "the model's first output '%s' is not a probability row (its %lld "
                            "entries sum to %g%s); text generation needs the first output to be "
                            "softmax probabilities over the vocabulary",
                       t->name, (long long)V, sum, ok ? "" : ", with negative or non-finite "
                                                           "entries");
    return RT_OK;
}

/* Contract: see rt.h. */
RtStatus rt_generate(RtSession *s, const RtVocab *v, int64_t context, const char *prompt,
                     int64_t length, double temperature, FILE *out, RtError *err) {
    const RtModel *m = s->m;
    char dims[96], have[512];
    if (check_predict(m, err) != RT_OK)
        return RT_FAIL;
    if (v->n < 1)
        return rt_fail(err, "the vocabulary is empty");
    if (context < 1)
        return rt_fail(err, "the context length is %lld; it must be at least 1",
                       (long long)context);
    if (!(temperature >= 0) || !isfinite(temperature))
        return rt_fail(err, "the temperature is %g; it must be 0 (argmax) or more", temperature);
    const RtTensor *ct = NULL;
    for (int i = 0; i < m->ninputs && !ct; i++) {
        const RtTensor *t = &m->inputs[i];
        if (t->dtype == RT_INT && t->rank == 2 && t->dims[0] == RT_DIM_BATCH &&
            t->dims[1] == context)
            ct = t;
    }
    if (!ct)
        return rt_fail(err, "model '%s' has no int input of shape [B, %lld] for the context; "
                            "its inputs: %s",
                       m->name, (long long)context, rt_inputs_str(m, have, sizeof have));
    if (ct->limit > 0 && v->n > ct->limit)
        return rt_fail(err, "the vocabulary has %d characters, but the model's embedding has "
                            "%lld rows",
                       v->n, (long long)ct->limit);
    const RtTensor *ot = &m->predict.roots[0];
    int64_t V = ot->rank > 0 ? ot->dims[ot->rank - 1] : 1;
    if (ot->dtype != RT_FLOAT || ot->rank < 1 || V == RT_DIM_BATCH || V < v->n)
        return rt_fail(err, "the model's first output '%s' %s has %lld entries per row, but the "
                            "vocabulary has %d characters; text generation needs the first "
                            "output to be softmax probabilities over the vocabulary",
                       ot->name, rt_dims_str(ot, dims, sizeof dims),
                       (long long)(V == RT_DIM_BATCH ? 1 : V), v->n);
    size_t plen = strlen(prompt);
    if (plen == 0)
        return rt_fail(err, "the prompt is empty; generation starts from at least one character");
    int32_t *ids = malloc(sizeof *ids * (plen > (size_t)context ? plen : (size_t)context));
    int32_t *window = malloc(sizeof *window * (size_t)context);
    double *p = malloc(sizeof *p * (size_t)V);
    RtStatus st = ids && window && p ? RT_OK : rt_fail(err, "out of memory");
    if (st == RT_OK)
        st = rt_vocab_encode(v, prompt, plen, ids, "the prompt", err);
    if (st == RT_OK) {
        /* The last `context` ids of the prompt, left-padded with its first. */
        for (int64_t k = 0; k < context; k++) {
            int64_t from = (int64_t)plen - context + k;
            window[k] = ids[from >= 0 ? from : 0];
        }
        fwrite(prompt, 1, plen, out);
    }
    for (int64_t step = 0; st == RT_OK && step < length; step++) {
        memcpy(rt_ptr(s, ct), window, sizeof *window * (size_t)context);
        m->predict.fn(s->arena, 1);
        st = read_probs(s, ot, V, p, err);
        if (st != RT_OK)
            break;
        double mass = 0;
        for (int i = 0; i < v->n; i++)
            mass += p[i];
        if (mass <= 0) {
            st = rt_fail(err, "the model's first output '%s' puts no probability on any of the "
                              "%d characters of the vocabulary",
                         ot->name, v->n);
            break;
        }
        int32_t id = (int32_t)rt_sample(p, v->n, temperature, &s->rng);
        memmove(window, window + 1, sizeof *window * (size_t)(context - 1));
        window[context - 1] = id;
        fputc(v->chars[id], out);
        if (ferror(out))
            break;
    }
    if (st == RT_OK && (fflush(out) != 0 || ferror(out)))
        st = rt_fail(err, "cannot write the generated text: %s", strerror(errno));
    free(ids);
    free(window);
    free(p);
    return st;
}
