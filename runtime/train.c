/* train.c: the training loop and evaluation over a dataset.
 *
 * Owns shuffling, the held-out split, mini-batching (gathering rows into the
 * input tensors), the loss and metric bookkeeping, progress lines and the
 * JSON Lines log. The compiled programs do all the arithmetic: train.fn runs
 * forward, backward and the optimizer update for one batch and leaves the
 * loss in train.roots[0]; eval.fn leaves the loss in eval.roots[0] and, for
 * a metric, the prediction in eval.roots[1]. Before every train step the
 * "rng" hyperparameter gets fresh bits (rt_refresh_rng) for dropout. Must
 * not compute gradients or touch parameters itself, and must never keep
 * training on a NaN or infinite loss.
 *
 * Rows: the dataset's rows are permuted once with an RtRng seeded from
 * cfg->seed; the last round(split * n) rows of that permutation are held out
 * for validation, the rest are reshuffled (same RNG, continuing) before
 * every epoch. Timing: seconds is the epoch's wall time including the
 * evaluation; samples_per_s counts training samples over the time spent in
 * training batches only.
 */
#include "rt_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void shuffle(int64_t *rows, int64_t n, RtRng *rng) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)rt_rng_below(rng, (uint64_t)i + 1);
        int64_t t = rows[i];
        rows[i] = rows[j];
        rows[j] = t;
    }
}

/* Scalar loss at root t. */
static double read_scalar(const RtSession *s, const RtTensor *t) {
    return rt_load_float(rt_ptr(s, t), s->m->elem_size, 0);
}

/* What the eval program and the metric need, checked once. */
static RtStatus check_eval(const RtModel *m, RtError *err) {
    char pd[96], ld[96];
    if (!m->eval.fn || m->eval.nroots < 1)
        return rt_fail(err, "model '%s' has no eval program with a loss", m->name);
    if (rt_numel(&m->eval.roots[0], 1) != 1 || m->eval.roots[0].dtype != RT_FLOAT)
        return rt_fail(err, "model '%s': the eval program's first root must be the scalar loss",
                       m->name);
    if (m->metric == RT_METRIC_NONE)
        return RT_OK;
    if (m->eval.nroots < 2)
        return rt_fail(err, "model '%s' has a metric but its eval program has no prediction "
                            "root",
                       m->name);
    const RtTensor *pred = &m->eval.roots[1];
    const RtTensor *label = &m->inputs[m->metric_label];
    int64_t per_pred = rt_numel(pred, 1), per_label = rt_numel(label, 1);
    if (pred->dtype != RT_FLOAT || pred->rank < 1 || pred->dims[0] != RT_DIM_BATCH)
        return rt_fail(err, "model '%s': the prediction %s must be a float tensor with a "
                            "leading batch dimension",
                       m->name, rt_dims_str(pred, pd, sizeof pd));
    if (m->metric == RT_METRIC_ARGMAX) {
        int64_t classes = pred->rank > 1 ? pred->dims[pred->rank - 1] : 1;
        if (label->dtype != RT_INT || per_pred != per_label * classes || pred->rank < 2)
            return rt_fail(err, "model '%s': argmax accuracy needs int labels of the "
                                "prediction's shape without its last axis; prediction %s, "
                                "labels '%s' %s",
                           m->name, rt_dims_str(pred, pd, sizeof pd), label->name,
                           rt_dims_str(label, ld, sizeof ld));
    } else if (per_pred != per_label) {
        return rt_fail(err, "model '%s': threshold accuracy needs labels of the prediction's "
                            "size; prediction %s, labels '%s' %s",
                       m->name, rt_dims_str(pred, pd, sizeof pd), label->name,
                       rt_dims_str(label, ld, sizeof ld));
    }
    return RT_OK;
}

/* Correct predictions in the eval prediction root for nb rows whose labels
 * are in the label input's arena storage (just gathered). */
static int64_t count_correct(const RtSession *s, int64_t nb) {
    const RtModel *m = s->m;
    const RtTensor *pred = &m->eval.roots[1];
    const RtTensor *label = &m->inputs[m->metric_label];
    const void *p = rt_ptr(s, pred);
    const void *l = rt_ptr(s, label);
    int64_t correct = 0;
    if (m->metric == RT_METRIC_ARGMAX) {
        int64_t classes = pred->dims[pred->rank - 1];
        int64_t groups = nb * rt_numel(label, 1);
        for (int64_t g = 0; g < groups; g++) {
            int64_t best = 0;
            double best_v = rt_load_float(p, m->elem_size, g * classes);
            for (int64_t c = 1; c < classes; c++) {
                double v = rt_load_float(p, m->elem_size, g * classes + c);
                if (v > best_v) {
                    best_v = v;
                    best = c;
                }
            }
            correct += best == ((const int32_t *)l)[g];
        }
    } else if (m->metric == RT_METRIC_THRESHOLD) {
        int64_t n = nb * rt_numel(label, 1);
        for (int64_t k = 0; k < n; k++) {
            bool yes = rt_load_float(p, m->elem_size, k) > m->metric_threshold;
            double want = label->dtype == RT_INT ? (double)((const int32_t *)l)[k]
                                                 : rt_load_float(l, m->elem_size, k);
            correct += yes == (want > 0.5);
        }
    }
    return correct;
}

/* Contract: runs eval.fn over rows[0, nrows) of d in batches of at most
 * m->max_batch; *loss is the mean loss weighted by batch size, *accuracy the
 * fraction of correct predictions (per label element), NaN without a metric.
 * Parameters are not changed (unless the eval program itself does). */
RtStatus rt_evaluate(RtSession *s, const RtDataset *d, const int64_t *rows, int64_t nrows,
                     double *loss, double *accuracy, RtError *err) {
    const RtModel *m = s->m;
    if (rt_dataset_check(m, d, false, err) != RT_OK || check_eval(m, err) != RT_OK)
        return RT_FAIL;
    if (nrows < 1)
        return rt_fail(err, "evaluation needs at least one row");
    for (int64_t k = 0; k < nrows; k++)
        if (rows[k] < 0 || rows[k] >= d->n)
            return rt_fail(err, "row %lld is out of range for a dataset of %lld rows",
                           (long long)rows[k], (long long)d->n);
    double sum = 0;
    int64_t correct = 0;
    for (int64_t at = 0; at < nrows; at += m->max_batch) {
        int64_t nb = nrows - at < m->max_batch ? nrows - at : m->max_batch;
        rt_dataset_gather(s, d, rows + at, nb);
        m->eval.fn(s->arena, nb);
        sum += read_scalar(s, &m->eval.roots[0]) * (double)nb;
        if (m->metric != RT_METRIC_NONE)
            correct += count_correct(s, nb);
    }
    if (loss)
        *loss = sum / (double)nrows;
    if (accuracy) {
        int64_t per_row = m->metric != RT_METRIC_NONE ? rt_numel(&m->inputs[m->metric_label], 1)
                                                      : 0;
        *accuracy = per_row ? (double)correct / ((double)nrows * (double)per_row) : NAN;
    }
    return RT_OK;
}

static RtStatus check_config(const RtModel *m, const RtDataset *d, const RtTrainConfig *cfg,
                             RtError *err) {
    if (!m->train.fn || m->train.nroots < 1 || rt_numel(&m->train.roots[0], 1) != 1 ||
        m->train.roots[0].dtype != RT_FLOAT)
        return rt_fail(err, "model '%s' has no train program with a scalar loss", m->name);
    if (cfg->batch < 1 || cfg->batch > m->max_batch)
        return rt_fail(err, "batch size %lld is out of range: model '%s' takes 1 to %lld",
                       (long long)cfg->batch, m->name, (long long)m->max_batch);
    if (cfg->steps < 0)
        return rt_fail(err, "steps is %lld; expected 0 (no limit) or more",
                       (long long)cfg->steps);
    if (cfg->epochs < 1 && cfg->steps == 0)
        return rt_fail(err, "epochs is %d; expected at least 1 (or a step limit)", cfg->epochs);
    if (!(cfg->split >= 0 && cfg->split < 1))
        return rt_fail(err, "split is %g; expected a fraction in [0, 1)", cfg->split);
    if (d->n < 1)
        return rt_fail(err, "the dataset has no rows");
    return rt_dataset_check(m, d, false, err);
}

/* A loss for people: four decimals, or an exponent when that would hide it. */
static const char *loss_str(double v, char *buf, size_t n) {
    double a = fabs(v);
    snprintf(buf, n, a == 0 || (a >= 1e-3 && a < 1e5) ? "%.4f" : "%.4e", v);
    return buf;
}

/* One progress line; NaN fields left out. */
static void print_progress(FILE *out, const RtEpochStats *e, int64_t total) {
    char buf[32];
    fprintf(out, "epoch %lld/%lld  loss %s", (long long)e->epoch, (long long)total,
            loss_str(e->loss, buf, sizeof buf));
    if (!isnan(e->val_loss))
        fprintf(out, "  val_loss %s", loss_str(e->val_loss, buf, sizeof buf));
    if (!isnan(e->accuracy))
        fprintf(out, "  accuracy %.2f%%", 100 * e->accuracy);
    if (isfinite(e->samples_per_s))
        fprintf(out, "  %.0f samples/s", e->samples_per_s);
    fputc('\n', out);
    fflush(out);
}

/* ,"key":v after the keys before it; nothing when v is not finite. */
static void log_key(FILE *f, const char *key, double v) {
    if (isfinite(v))
        fprintf(f, ",\"%s\":%.9g", key, v);
}

/* One JSON object on one line; non-finite values left out (JSON has none). */
static bool log_epoch(FILE *f, const RtEpochStats *e) {
    fprintf(f, "{\"epoch\":%lld,\"step\":%lld", (long long)e->epoch, (long long)e->step);
    log_key(f, "loss", e->loss);
    log_key(f, "val_loss", e->val_loss);
    log_key(f, "accuracy", e->accuracy);
    log_key(f, "samples_per_s", e->samples_per_s);
    log_key(f, "seconds", e->seconds);
    fputs("}\n", f);
    return fflush(f) == 0 && !ferror(f);
}

/* Everything one rt_train call owns. */
typedef struct Run {
    int64_t *perm; /* perm[0, ntrain): training rows; perm[ntrain, n): held out */
    int64_t ntrain, nval;
    FILE *log;
} Run;

/* One epoch over the training rows: reshuffle, batches, loss. Stops at the
 * step limit (*stop set); *complete says whether every batch ran. */
static RtStatus run_epoch(RtSession *s, const RtDataset *d, const RtTrainConfig *cfg, Run *run,
                          RtRng *rng, int64_t step_limit, RtEpochStats *e, bool *stop,
                          bool *complete, RtError *err) {
    const RtModel *m = s->m;
    shuffle(run->perm, run->ntrain, rng);
    double sum = 0, train_time = 0;
    int64_t seen = 0;
    for (int64_t at = 0; at < run->ntrain; at += cfg->batch) {
        int64_t nb = run->ntrain - at < cfg->batch ? run->ntrain - at : cfg->batch;
        double t0 = now_seconds();
        rt_dataset_gather(s, d, run->perm + at, nb);
        rt_refresh_rng(s);
        m->train.fn(s->arena, nb);
        train_time += now_seconds() - t0;
        double loss = read_scalar(s, &m->train.roots[0]);
        s->step++;
        if (!isfinite(loss))
            return rt_fail(err, "loss became %s at epoch %lld, step %lld",
                           isnan(loss) ? "nan" : loss > 0 ? "inf" : "-inf", (long long)e->epoch,
                           (long long)s->step);
        sum += loss * (double)nb;
        seen += nb;
        if (step_limit > 0 && s->step >= step_limit) {
            *stop = true;
            break;
        }
    }
    *complete = seen == run->ntrain;
    e->loss = sum / (double)seen;
    e->step = s->step;
    e->samples_per_s = train_time > 0 ? (double)seen / train_time : NAN;
    return RT_OK;
}

/* Split and open the log: everything rt_train needs before its first epoch. */
static RtStatus start_run(const RtDataset *d, const RtTrainConfig *cfg, RtRng *rng, Run *run,
                          RtError *err) {
    int64_t n = d->n;
    run->perm = malloc(sizeof *run->perm * (size_t)n);
    if (!run->perm)
        return rt_fail(err, "out of memory for %lld rows", (long long)n);
    for (int64_t i = 0; i < n; i++)
        run->perm[i] = i;
    shuffle(run->perm, n, rng);
    int64_t nval = (int64_t)llround(cfg->split * (double)n);
    if (cfg->split > 0 && n > 1 && nval < 1)
        nval = 1;
    if (nval > n - 1)
        nval = n - 1;
    run->nval = nval;
    run->ntrain = n - nval;
    if (cfg->log_path && !(run->log = fopen(cfg->log_path, "w")))
        return rt_fail(err, "cannot open log '%s': %s", cfg->log_path, strerror(errno));
    return RT_OK;
}

/* Contract: see rt.h. s->step counts every optimizer step and s->epoch
 * every finished epoch, across calls; cfg->steps limits the steps of this
 * call. Epoch numbers in progress lines and the log continue from s->epoch.
 * On RT_FAIL after training started, the parameters hold whatever the last
 * step left there. */
RtStatus rt_train(RtSession *s, const RtDataset *d, const RtTrainConfig *cfg, RtEpochStats *last,
                  RtError *err) {
    const RtModel *m = s->m;
    if (check_config(m, d, cfg, err) != RT_OK)
        return RT_FAIL;
    bool need_eval = cfg->split > 0 || m->metric != RT_METRIC_NONE;
    if (need_eval && check_eval(m, err) != RT_OK)
        return RT_FAIL;
    RtRng rng;
    rt_rng_seed(&rng, cfg->seed);
    Run run = {0};
    RtStatus st = start_run(d, cfg, &rng, &run, err);
    int64_t epochs = cfg->epochs;
    if (st == RT_OK && cfg->steps > 0) {
        int64_t batches = (run.ntrain + cfg->batch - 1) / cfg->batch; /* ntrain >= 1 */
        int64_t need = (cfg->steps + batches - 1) / batches;
        if (epochs < 1 || need < epochs)
            epochs = need;
    }
    int64_t first_epoch = s->epoch + 1, step_limit = cfg->steps ? s->step + cfg->steps : 0;
    FILE *out = cfg->out ? cfg->out : stdout;
    bool stop = false;
    for (int64_t e = 0; st == RT_OK && e < epochs && !stop; e++) {
        double t0 = now_seconds();
        RtEpochStats es = {.epoch = first_epoch + e, .val_loss = NAN, .accuracy = NAN};
        bool complete = false;
        st = run_epoch(s, d, cfg, &run, &rng, step_limit, &es, &stop, &complete, err);
        if (st == RT_OK && run.nval > 0)
            st = rt_evaluate(s, d, run.perm + run.ntrain, run.nval, &es.val_loss, &es.accuracy,
                             err);
        else if (st == RT_OK && m->metric != RT_METRIC_NONE)
            st = rt_evaluate(s, d, run.perm, run.ntrain, NULL, &es.accuracy, err);
        if (st != RT_OK)
            break;
        es.seconds = now_seconds() - t0;
        if (complete)
            s->epoch++;
        if (!cfg->quiet)
            print_progress(out, &es, first_epoch - 1 + epochs);
        if (run.log && !log_epoch(run.log, &es))
            st = rt_fail(err, "cannot write log '%s': %s", cfg->log_path, strerror(errno));
        if (last)
            *last = es;
    }
    if (run.log && fclose(run.log) != 0 && st == RT_OK)
        st = rt_fail(err, "cannot write log '%s': %s", cfg->log_path, strerror(errno));
    free(run.perm);
    return st;
}
