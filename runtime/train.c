/* train.c: the training loop and evaluation over a dataset.
 *
 * Owns shuffling, the held-out split, mini-batching (gathering rows into the
 * input tensors), the loss and metric bookkeeping, progress lines and the
 * JSON Lines log. The compiled programs do all the arithmetic: train.fn runs
 * forward, backward and the optimizer update for one batch and leaves the
 * loss in train.roots[0]; eval.fn leaves the loss in eval.roots[0] and, for
 * a metric, the prediction in eval.roots[1]. Before every train step the
 * per-step hyperparameters (t, epoch, epochs, the dropout key) are stored
 * (rt_step_hypers). Must not compute gradients or touch parameters itself,
 * and must never keep training on a NaN or infinite loss.
 *
 * Rows: the dataset's rows are permuted once with an RtRng seeded from
 * cfg->seed; the last round(split * n) rows of that permutation are held out
 * for validation, and the same RNG, continuing, reshuffles the rest before
 * every epoch. So the order of epoch k (0-based, counted over the session's
 * life, not this call's) is that of the (k + 1)-th reshuffle, a function of
 * cfg->seed and k alone: a call that starts at epoch k (a session resumed
 * from a checkpoint) replays the k reshuffles before it, and sees the rows
 * in the order an uninterrupted run would.
 *
 * Numerics checks (RtModel.nonfinite_status, gradc train --check-numerics):
 * a train program that made a NaN or Inf sets the status word and leaves
 * the parameters and optimizer states as they were before it ran (its
 * update kernels keep a backup of what they overwrite); the step is not
 * counted, the RNG draw of its hypers is undone, and training stops there.
 *
 * Stopping: the caller's flag (RtTrainConfig.stop, set by a signal handler)
 * is read after every step; training ends there with the session counters
 * where a checkpoint resumes exactly. Saving is the caller's, in its
 * on_epoch callback and after rt_train returns: nothing here writes weights.
 *
 * Timing: seconds is the epoch's wall time including the evaluation;
 * samples_per_s counts training samples over the time spent in training
 * batches only. That time is also summed over the session's life
 * (RtSession.train_seconds), and the boot-time clock read when its first
 * step finishes (first_step_boottime), for gradc train --profile.
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

/* [lo, hi) of n rows: process `rank` of `size`'s share, as even as the
 * shares go (they differ by at most one row). */
static void share(int64_t n, int rank, int size, int64_t *lo, int64_t *hi) {
    *lo = n * rank / size;
    *hi = n * (rank + 1) / size;
}

/* rt_evaluate; with dist, each process evaluates its share of the rows
 * and the sums are added up, so every process gets the figures of all. */
static RtStatus evaluate(RtSession *s, const RtDataset *d, const int64_t *rows, int64_t nrows,
                         RtDist *dist, double *loss, double *accuracy, RtError *err) {
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
    int64_t correct = 0, lo = 0, hi = nrows;
    if (dist)
        share(nrows, dist->rank, dist->size, &lo, &hi);
    for (int64_t at = lo; at < hi; at += m->max_batch) {
        int64_t nb = hi - at < m->max_batch ? hi - at : m->max_batch;
        rt_dataset_gather(s, d, rows + at, nb);
        m->eval.fn(s->arena, nb);
        sum += read_scalar(s, &m->eval.roots[0]) * (double)nb;
        if (m->metric != RT_METRIC_NONE)
            correct += count_correct(s, nb);
    }
    if (dist && dist->size > 1) {
        double v[2] = {sum, (double)correct};
        if (dist->allreduce(dist, v, 2, RT_DIST_F64, RT_DIST_SUM, err) != RT_OK)
            return RT_FAIL;
        sum = v[0];
        correct = (int64_t)v[1];
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

/* Contract: runs eval.fn over rows[0, nrows) of d in batches of at most
 * m->max_batch; *loss is the mean loss weighted by batch size, *accuracy the
 * fraction of correct predictions (per label element), NaN without a metric.
 * Parameters are not changed (unless the eval program itself does). */
RtStatus rt_evaluate(RtSession *s, const RtDataset *d, const int64_t *rows, int64_t nrows,
                     double *loss, double *accuracy, RtError *err) {
    return evaluate(s, d, rows, nrows, NULL, loss, accuracy, err);
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
    if (cfg->dist && !m->data_parallel)
        return rt_fail(err, "model '%s' was not compiled for data-parallel training (--mpi)",
                       m->name);
    if (cfg->dist && m->nonfinite_status)
        return rt_fail(err, "numerics checks (--check-numerics) do not work in data-parallel "
                            "training");
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
    if (!isnan(e->lr))
        fprintf(out, "  lr %.4g", e->lr);
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
static bool log_epoch(FILE *f, const RtEpochStats *e, const RtDist *dist) {
    fprintf(f, "{\"epoch\":%lld,\"step\":%lld", (long long)e->epoch, (long long)e->step);
    if (dist)
        fprintf(f, ",\"processes\":%d", dist->size);
    log_key(f, "lr", e->lr);
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
    int64_t *perm; /* perm[0, ntrain): this epoch's training rows; perm[ntrain, n): held out */
    int64_t ntrain, nval;
    RtRng rng;        /* seeded from cfg->seed: the split, then one reshuffle per epoch */
    int64_t shuffles; /* reshuffles of perm[0, ntrain) so far */
    int64_t last_epoch; /* train while s->epoch < last_epoch */
    int64_t epochs;     /* what the "epochs" hyper holds */
    FILE *log;
    RtDist *dist;  /* cfg->dist: one process of a data-parallel run, or NULL */
    DistStep step; /* its steps */
} Run;

/* perm[0, ntrain) in the order of epoch index k (0-based, absolute): the
 * (k + 1)-th reshuffle since the split. Epochs only move forward within a
 * call, so this replays the reshuffles of earlier epochs once, at the first
 * epoch of a call that starts late (k reshuffles of ntrain rows). */
static void order_epoch(Run *run, int64_t k) {
    while (run->shuffles <= k) {
        shuffle(run->perm, run->ntrain, &run->rng);
        run->shuffles++;
    }
}

/* The train program's numerics status word (0: no kernel stored a NaN or
 * Inf); the model must have one. */
static int64_t nonfinite_status(const RtSession *s) {
    int64_t v;
    memcpy(&v, (const char *)s->arena + s->m->nonfinite_status, sizeof v);
    return v;
}

/* Has the caller asked rt_train to stop (RtTrainConfig.stop)? */
static bool stop_requested(const RtTrainConfig *cfg) {
    return cfg->stop && *cfg->stop != 0;
}

/* One epoch (number s->epoch + 1) over the training rows in its order,
 * from row s->epoch_rows on (a step limit or a stop ended an earlier call
 * there): batches, loss, learning rate. Stops at the step limit (*at_limit
 * set), or when a stop is requested after a step that leaves rows of the
 * epoch to do (*stopped set; a stop after the epoch's last step lets the
 * epoch finish, and rt_train stops before the next). When the last batch
 * ran, the epoch is finished: s->epoch advances and s->epoch_rows returns
 * to 0. */
static RtStatus run_epoch(RtSession *s, const RtDataset *d, const RtTrainConfig *cfg, Run *run,
                          int64_t step_limit, RtEpochStats *e, bool *at_limit, bool *stopped,
                          RtError *err) {
    const RtModel *m = s->m;
    order_epoch(run, s->epoch);
    double sum = 0, train_time = 0;
    int64_t seen = 0, at = s->epoch_rows < run->ntrain ? s->epoch_rows : 0;
    int size = run->dist ? run->dist->size : 1;
    while (at < run->ntrain) {
        /* The step's rows over all processes, and this process's share; a
         * process without any computes on a stand-in that weighs nothing. */
        int64_t step_rows = cfg->batch * size, lo = 0, hi;
        if (run->ntrain - at < step_rows)
            step_rows = run->ntrain - at;
        hi = step_rows;
        if (run->dist)
            share(step_rows, run->dist->rank, size, &lo, &hi);
        int64_t nb = hi > lo ? hi - lo : 1;
        double t0 = now_seconds();
        rt_dataset_gather(s, d, run->perm + at + (hi > lo ? lo : 0), nb);
        RtRng rng = s->rng;
        rt_step_hypers(s, run->epochs);
        if (run->dist)
            dist_step_begin(&run->step, s, hi - lo, step_rows, cfg->stop);
        m->train.fn(s->arena, nb);
        /* Every process must stop at the same step: with several, the
         * flag as the sync read it, agreed there. */
        bool stop = run->dist ? dist_step_end(&run->step) : stop_requested(cfg);
        double dt = now_seconds() - t0;
        train_time += dt;
        s->train_seconds += dt;
        if (s->first_step_boottime == 0)
            s->first_step_boottime = rt_boottime_seconds();
        if (m->nonfinite_status && nonfinite_status(s) != 0) {
            s->rng = rng;
            e->bad_kernel = nonfinite_status(s) - 1;
            e->bad_batch = nb;
            rt_fail(err, "a NaN or Inf at step %lld (epoch %lld): kernel %lld of the train "
                         "program stored it; the step was not taken",
                    (long long)s->step + 1, (long long)e->epoch, (long long)e->bad_kernel);
            return RT_NONFINITE;
        }
        double loss = read_scalar(s, &m->train.roots[0]);
        if (m->train_lr_root > 0)
            e->lr = read_scalar(s, &m->train.roots[m->train_lr_root]);
        s->step++;
        at += step_rows;
        s->epoch_rows = at;
        if (!isfinite(loss))
            return rt_fail(err, "loss became %s at epoch %lld, step %lld",
                           isnan(loss) ? "nan" : loss > 0 ? "inf" : "-inf", (long long)e->epoch,
                           (long long)s->step);
        sum += loss * (double)step_rows;
        seen += step_rows;
        if (step_limit > 0 && s->step >= step_limit) {
            *at_limit = true;
            break;
        }
        if (at < run->ntrain && stop) {
            *stopped = true;
            break;
        }
    }
    if (at == run->ntrain) {
        s->epoch++;
        s->epoch_rows = 0;
    }
    e->loss = sum / (double)seen;
    e->step = s->step;
    e->samples_per_s = train_time > 0 ? (double)seen / train_time : NAN;
    return RT_OK;
}

/* Every process of a data-parallel run must train the same model on the
 * same data with the same settings from the same state. */
static RtStatus check_same(RtDist *dist, const RtSession *s, const RtDataset *d,
                           const RtTrainConfig *cfg, RtError *err) {
    const RtModel *m = s->m;
    /* A sample of the data: its first and last bytes of each input. */
    uint64_t h = 0xcbf29ce484222325u;
    for (int i = 0; i < d->ninputs; i++) {
        int64_t stride = d->row_stride ? d->row_stride[i] : d->row_elems[i];
        int64_t elems = (d->n - 1) * stride + d->row_elems[i];
        size_t bytes = (size_t)elems * (m->inputs[i].dtype == RT_INT ? 4 : (size_t)m->elem_size);
        const unsigned char *p = d->data[i];
        size_t span = bytes < 4096 ? bytes : 4096;
        for (size_t k = 0; k < span; k++)
            h = (h ^ p[k]) * 0x100000001b3u;
        for (size_t k = bytes - span; k < bytes; k++)
            h = (h ^ p[k]) * 0x100000001b3u;
    }
    int64_t split;
    memcpy(&split, &cfg->split, sizeof split);
    /* The first that differs is reported: the batch before the arena,
     * which gradc's JIT sizes for the batch. */
    const int64_t vals[] = {
        cfg->batch, (int64_t)m->arena_bytes, d->n, (int64_t)h, (int64_t)cfg->seed, split,
        cfg->epochs, cfg->steps, cfg->skip_eval, s->step, s->epoch, s->epoch_rows,
    };
    static const char *const what[] = {
        "the batch size", "the model (its arena bytes)", "the data's rows",
        "the data (a checksum of a sample)", "the seed", "the held-out split", "the epochs",
        "the step limit", "whether to evaluate", "the step to start from",
        "the epoch to start from", "the row to start from",
    };
    return dist_check_same(dist, vals, what, (int)(sizeof vals / sizeof vals[0]), err);
}

/* Between epochs in a data-parallel run: st, a failure of any process
 * (its message in err), and *stop, a stop asked of any, as every process
 * sees them. */
static RtStatus agree_between_epochs(RtDist *dist, RtStatus st, bool *stop, RtError *err) {
    if ((st = rt_dist_agree(dist, st, err)) != RT_OK)
        return st;
    int64_t v = *stop;
    if (dist->allreduce(dist, &v, 1, RT_DIST_I64, RT_DIST_MAX, err) != RT_OK)
        return RT_FAIL;
    *stop = v != 0;
    return RT_OK;
}

/* Split, the epochs to run, and the log: everything rt_train needs before
 * its first epoch. */
static RtStatus start_run(const RtSession *s, const RtDataset *d, const RtTrainConfig *cfg,
                          Run *run, RtError *err) {
    int64_t n = d->n;
    run->dist = cfg->dist; /* first: a failure below is agreed with the others */
    run->perm = malloc(sizeof *run->perm * (size_t)n);
    if (!run->perm)
        return rt_fail(err, "out of memory for %lld rows", (long long)n);
    for (int64_t i = 0; i < n; i++)
        run->perm[i] = i;
    rt_rng_seed(&run->rng, cfg->seed);
    shuffle(run->perm, n, &run->rng);
    int64_t nval = (int64_t)llround(cfg->split * (double)n);
    if (cfg->split > 0 && n > 1 && nval < 1)
        nval = 1;
    if (nval > n - 1)
        nval = n - 1;
    run->nval = nval;
    run->ntrain = n - nval;
    /* The step limit ends in epoch s->epoch + 1 + (further whole epochs). */
    run->last_epoch = cfg->epochs > 0 ? cfg->epochs : INT64_MAX;
    if (cfg->steps > 0) {
        /* A step takes batch rows of every process. */
        int64_t b = cfg->batch * (cfg->dist ? cfg->dist->size : 1);
        int64_t per_epoch = (run->ntrain + b - 1) / b; /* ntrain >= 1 */
        int64_t from = s->epoch_rows < run->ntrain ? s->epoch_rows : 0;
        int64_t first = (run->ntrain - from + b - 1) / b;
        int64_t more = cfg->steps > first ? (cfg->steps - first + per_epoch - 1) / per_epoch : 0;
        if (s->epoch + 1 + more < run->last_epoch)
            run->last_epoch = s->epoch + 1 + more;
    }
    run->epochs = cfg->epochs > 0 ? cfg->epochs : run->last_epoch;
    if (s->m->nonfinite_status)
        memset((char *)s->arena + s->m->nonfinite_status, 0, sizeof(int64_t));
    if (cfg->log_path && !(run->log = fopen(cfg->log_path, s->step ? "a" : "w")))
        return rt_fail(err, "cannot open log '%s': %s", cfg->log_path, strerror(errno));
    if (run->dist)
        return dist_step_setup(&run->step, run->dist, s->m, err);
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
    bool need_eval = !cfg->skip_eval && (cfg->split > 0 || m->metric != RT_METRIC_NONE);
    RtStatus st = check_config(m, d, cfg, err);
    if (st == RT_OK && need_eval)
        st = check_eval(m, err);
    /* A process that fails these alone (its data) must not leave the
     * others waiting; then all must run alike, before any returns early. */
    if (cfg->dist && (st = rt_dist_agree(cfg->dist, st, err)) == RT_OK)
        st = check_same(cfg->dist, s, d, cfg, err);
    if (st != RT_OK)
        return RT_FAIL;
    FILE *out = cfg->out ? cfg->out : stdout;
    if (cfg->epochs > 0 && s->epoch >= cfg->epochs) {
        if (!cfg->quiet) {
            fprintf(out, "nothing to train: %lld of %d epochs are done\n", (long long)s->epoch,
                    cfg->epochs);
            fflush(out);
        }
        if (last)
            *last = (RtEpochStats){.epoch = s->epoch, .step = s->step, .lr = NAN, .loss = NAN,
                                   .val_loss = NAN, .accuracy = NAN, .samples_per_s = NAN,
                                   .seconds = NAN};
        return RT_OK;
    }
    Run run = {0};
    st = start_run(s, d, cfg, &run, err);
    if (run.dist)
        st = rt_dist_agree(run.dist, st, err);
    int64_t step_limit = cfg->steps ? s->step + cfg->steps : 0;
    bool at_limit = false, stopped = false;
    for (;;) {
        /* What only one process may have met (its log or on_epoch failed,
         * a stop was asked of it), agreed by all. */
        bool stop = stop_requested(cfg);
        if (run.dist)
            st = agree_between_epochs(run.dist, st, &stop, err);
        if (st != RT_OK || s->epoch >= run.last_epoch || at_limit)
            break;
        if (stop) {
            stopped = true;
            break;
        }
        double t0 = now_seconds();
        RtEpochStats es = {.epoch = s->epoch + 1, .lr = NAN, .val_loss = NAN, .accuracy = NAN};
        /* Failures in run_epoch and evaluate are every process's alike. */
        st = run_epoch(s, d, cfg, &run, step_limit, &es, &at_limit, &stopped, err);
        if (st == RT_NONFINITE && last)
            *last = (RtEpochStats){.epoch = es.epoch, .step = s->step + 1, .lr = NAN,
                                   .loss = NAN, .val_loss = NAN, .accuracy = NAN,
                                   .samples_per_s = NAN, .seconds = NAN,
                                   .bad_kernel = es.bad_kernel, .bad_batch = es.bad_batch};
        if (st != RT_OK || stopped)
            break;
        if (!cfg->skip_eval && run.nval > 0)
            st = evaluate(s, d, run.perm + run.ntrain, run.nval, run.dist, &es.val_loss,
                          &es.accuracy, err);
        else if (!cfg->skip_eval && m->metric != RT_METRIC_NONE)
            st = evaluate(s, d, run.perm, run.ntrain, run.dist, NULL, &es.accuracy, err);
        if (st != RT_OK)
            break;
        es.seconds = now_seconds() - t0;
        if (!cfg->quiet)
            print_progress(out, &es, run.last_epoch);
        if (run.log && !log_epoch(run.log, &es, cfg->dist))
            st = rt_fail(err, "cannot write log '%s': %s", cfg->log_path, strerror(errno));
        if (last)
            *last = es;
        /* A finished epoch: s->epoch_rows is 0 exactly then. */
        if (st == RT_OK && cfg->on_epoch && s->epoch_rows == 0)
            st = cfg->on_epoch(s, &es, cfg->on_epoch_user, err);
    }
    if (st == RT_OK && stopped && last)
        *last = (RtEpochStats){.epoch = s->epoch, .step = s->step, .lr = NAN, .loss = NAN,
                               .val_loss = NAN, .accuracy = NAN, .samples_per_s = NAN,
                               .seconds = NAN, .stopped = true};
    if (run.log && fclose(run.log) != 0 && st == RT_OK)
        st = rt_fail(err, "cannot write log '%s': %s", cfg->log_path, strerror(errno));
    free(run.perm);
    dist_step_free(&run.step);
    return st;
}
