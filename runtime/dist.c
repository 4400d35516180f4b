/* dist.c: the runtime's half of data-parallel training (rt.h, RtDist):
 * the gradient average the compiled train program calls (rt_dist_sync),
 * the state every process starts from, and the agreements rt_train makes
 * between processes. Knows no transport: MPI lives in runtime/mpi/.
 *
 * The average: the gradients that depend on the batch
 * (train.roots[train_grad_root, nroots)) and then the loss and the stop
 * flag are one sequence of elements in the model's float type, reduced
 * bucket by bucket: each process packs its gradients times its rows in
 * the step into a bucket, the transport sums the buckets, and every
 * process unpacks the sums divided by the step's rows over all processes.
 * The gradient of a mean loss over a process's rows, times those rows, is
 * the sum over them, so the result is the gradient of the mean over the
 * step's rows, whatever the shares. A process whose share is empty
 * (weight 0) packs zeros. The buckets are RT_DIST_BUCKET_BYTES at most:
 * few large calls, and memory for one bucket, not for all the gradients.
 * In a step whose rows divide evenly (every step but perhaps an epoch's
 * last) all weights are equal, and a gradient of RT_DIST_IN_PLACE_BYTES
 * or more is summed where it is and divided by the processes instead,
 * one call each: a pass over it less (mlp_wide, 24 MiB of gradients on
 * 2 processes: 13-15 ms a step instead of 18).
 *
 * rt_train sets up each step (dist_step_begin) and reads its outcome
 * (dist_step_end); the step lives in a thread-local, so that a train
 * program run anywhere else finds none and its sync does nothing.
 */
#include "rt_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static _Thread_local DistStep *active;

/* Elements of gradient root r (parameters have no batch dimension). */
static int64_t grad_elems(const RtModel *m, int r) { return rt_numel(&m->train.roots[r], 1); }

/* Is gradient root r averaged in place in this step? When every process
 * has the same share of the step's rows (the step's rows divide evenly:
 * every step but perhaps an epoch's last), the weights are all equal and
 * a large gradient needs no packing: it is summed where it is and divided
 * by the processes, which saves a pass over it. Every process decides
 * alike (the step's rows and the processes are the same in all). */
static bool in_place(const DistStep *st, int r) {
    return st->even && grad_elems(st->m, r) * st->m->elem_size >= RT_DIST_IN_PLACE_BYTES;
}

/* The sequence's elements: the gradients not averaged in place, then the
 * loss and the stop flag. */
static int64_t sync_elems(const DistStep *st) {
    const RtModel *m = st->m;
    int64_t n = 2;
    for (int r = m->train_grad_root; r < m->train.nroots; r++)
        if (!in_place(st, r))
            n += grad_elems(m, r);
    return n;
}

RtStatus dist_step_setup(DistStep *st, RtDist *d, const RtModel *m, RtError *err) {
    *st = (DistStep){.d = d, .m = m};
    if (d->size == 1)
        return RT_OK;
    int64_t n = sync_elems(st), cap = RT_DIST_BUCKET_BYTES / m->elem_size;
    st->bucket_elems = n < cap ? n : cap;
    st->bucket = malloc((size_t)st->bucket_elems * (size_t)m->elem_size);
    if (!st->bucket)
        return rt_fail(err, "out of memory for a %lld-byte gradient bucket",
                       (long long)st->bucket_elems * m->elem_size);
    return RT_OK;
}

void dist_step_free(DistStep *st) {
    free(st->bucket);
    st->bucket = NULL;
}

/* A different dropout mask in every process: the RNG hyper's bits (the
 * same draw in each) mixed with the rank, unchanged in process 0. */
static void salt_rng_hypers(const RtSession *s, int rank) {
    const RtModel *m = s->m;
    if (rank == 0 || !m->hyper_kinds)
        return;
    uint64_t z = (uint64_t)rank * 0x9e3779b97f4a7c15u;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    uint32_t salt = (uint32_t)(z ^ (z >> 31));
    for (int i = 0; i < m->nhypers; i++)
        if (m->hyper_kinds[i] == RT_HYPER_RNG) {
            uint32_t v;
            memcpy(&v, rt_ptr(s, &m->hypers[i]), sizeof v);
            v ^= salt;
            memcpy(rt_ptr(s, &m->hypers[i]), &v, sizeof v);
        }
}

static bool stop_asked(const DistStep *st) { return st->stop_flag && *st->stop_flag != 0; }

void dist_step_begin(DistStep *st, RtSession *s, int64_t rows, int64_t total,
                     const volatile sig_atomic_t *stop) {
    st->s = s;
    st->weight = (double)rows;
    st->total = (double)total;
    st->stop_flag = stop;
    st->stop_local = st->stop_any = false;
    st->even = total % st->d->size == 0;
    salt_rng_hypers(s, st->d->rank);
    active = st;
}

bool dist_step_end(DistStep *st) {
    active = NULL;
    return st->d->size == 1 ? stop_asked(st) : st->stop_any;
}

/* Element k of the bucket (the model's float type). */
static double get(const DistStep *st, int64_t k) {
    return rt_load_float(st->bucket, st->m->elem_size, k);
}

static void put(DistStep *st, int64_t k, double v) {
    if (st->m->elem_size == 4)
        ((float *)st->bucket)[k] = (float)v;
    else
        ((double *)st->bucket)[k] = v;
}

/* Elements [at, at + n) of the sequence into the bucket (pack) or back
 * from it (unpack). The gradients are copied in runs, with the scaling in
 * the same pass. */
static void move(DistStep *st, void *arena, int64_t at, int64_t n, bool pack) {
    const RtModel *m = st->m;
    int es = m->elem_size;
    int64_t base = 0, end = at + n;
    for (int r = m->train_grad_root; r < m->train.nroots && base < end; r++) {
        if (in_place(st, r))
            continue;
        int64_t len = grad_elems(m, r);
        int64_t lo = at > base ? at : base, hi = end < base + len ? end : base + len;
        if (lo < hi) {
            char *g = (char *)arena + m->train.roots[r].offset + (size_t)(lo - base) * (size_t)es;
            char *b = (char *)st->bucket + (size_t)(lo - at) * (size_t)es;
            int64_t cnt = hi - lo;
            if (es == 4) {
                float *gf = (float *)g, *bf = (float *)b;
                if (!pack) {
                    float t = (float)st->total;
                    for (int64_t i = 0; i < cnt; i++)
                        gf[i] = bf[i] / t;
                } else if (st->weight == 0) {
                    memset(bf, 0, sizeof *bf * (size_t)cnt);
                } else {
                    float w = (float)st->weight;
                    for (int64_t i = 0; i < cnt; i++)
                        bf[i] = gf[i] * w;
                }
            } else {
                double *gd = (double *)g, *bd = (double *)b;
                if (!pack) {
                    for (int64_t i = 0; i < cnt; i++)
                        gd[i] = bd[i] / st->total;
                } else if (st->weight == 0) {
                    memset(bd, 0, sizeof *bd * (size_t)cnt);
                } else {
                    for (int64_t i = 0; i < cnt; i++)
                        bd[i] = gd[i] * st->weight;
                }
            }
        }
        base += len;
    }
    /* The loss and the stop flag: the sequence's last two elements. */
    void *loss = (char *)arena + m->train.roots[0].offset;
    for (int64_t k = base > at ? base : at; k < end; k++) {
        bool is_loss = k == base;
        if (pack && is_loss)
            put(st, k - at, st->weight == 0 ? 0 : rt_load_float(loss, es, 0) * st->weight);
        else if (pack)
            put(st, k - at, st->stop_local ? 1 : 0);
        else if (is_loss && es == 4)
            *(float *)loss = (float)(get(st, k - at) / st->total);
        else if (is_loss)
            *(double *)loss = get(st, k - at) / st->total;
        else
            st->stop_any = get(st, k - at) > 0;
    }
}

/* buf[0, count) summed over the processes, or the run ends: the compiled
 * code that called the sync cannot be told of a failure. */
static void sum_or_abort(DistStep *st, void *buf, int64_t count) {
    RtDistType type = st->m->elem_size == 4 ? RT_DIST_F32 : RT_DIST_F64;
    RtError err;
    if (st->d->allreduce(st->d, buf, count, type, RT_DIST_SUM, &err) != RT_OK) {
        fprintf(stderr, "%s: error: process %d: averaging the gradients of step %lld failed: "
                        "%s\n",
                st->d->name ? st->d->name : "gradc", st->d->rank, (long long)st->s->step + 1,
                err.msg);
        fflush(stderr);
        st->d->abort(st->d, 1);
    }
}

void rt_dist_sync(void *arena) {
    DistStep *st = active;
    if (!st || st->d->size == 1)
        return;
    const RtModel *m = st->m;
    st->stop_local = stop_asked(st);
    for (int r = m->train_grad_root; r < m->train.nroots; r++) {
        if (!in_place(st, r))
            continue;
        int64_t n = grad_elems(m, r);
        void *g = (char *)arena + m->train.roots[r].offset;
        sum_or_abort(st, g, n);
        if (m->elem_size == 4) {
            float inv = 1.0f / (float)st->d->size;
            for (int64_t i = 0; i < n; i++)
                ((float *)g)[i] *= inv;
        } else {
            double inv = 1.0 / st->d->size;
            for (int64_t i = 0; i < n; i++)
                ((double *)g)[i] *= inv;
        }
    }
    int64_t n = sync_elems(st);
    for (int64_t at = 0; at < n; at += st->bucket_elems) {
        int64_t len = n - at < st->bucket_elems ? n - at : st->bucket_elems;
        move(st, arena, at, len, true);
        sum_or_abort(st, st->bucket, len);
        move(st, arena, at, len, false);
    }
}

int rt_dist_threads(const RtDist *d) {
    int mine = pool_available_cpus();
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int local = d->local_size > 0 ? d->local_size : 1;
    if (online > 0 && online / local < mine)
        mine = (int)(online / local);
    return mine > 0 ? mine : 1;
}

RtStatus rt_dist_broadcast_session(RtDist *d, RtSession *s, RtError *err) {
    const RtModel *m = s->m;
    if (d->size == 1)
        return RT_OK;
    for (int i = 0; i < m->nparams; i++)
        if (d->broadcast(d, rt_ptr(s, &m->params[i]),
                         (size_t)rt_numel(&m->params[i], 1) * (size_t)m->elem_size, err) != RT_OK)
            return RT_FAIL;
    for (int i = 0; i < m->nstates; i++)
        if (d->broadcast(d, rt_ptr(s, &m->states[i]),
                         (size_t)rt_numel(&m->states[i], 1) * (size_t)m->elem_size, err) != RT_OK)
            return RT_FAIL;
    struct {
        int64_t step, epoch, epoch_rows;
        RtRng rng;
    } c = {s->step, s->epoch, s->epoch_rows, s->rng};
    if (d->broadcast(d, &c, sizeof c, err) != RT_OK)
        return RT_FAIL;
    s->step = c.step;
    s->epoch = c.epoch;
    s->epoch_rows = c.epoch_rows;
    s->rng = c.rng;
    return RT_OK;
}

RtStatus rt_dist_agree(RtDist *d, RtStatus mine, RtError *err) {
    if (d->size == 1)
        return mine;
    int64_t first = mine != RT_OK ? d->rank : d->size;
    RtError e;
    if (d->allreduce(d, &first, 1, RT_DIST_I64, RT_DIST_MIN, &e) != RT_OK) {
        *err = e;
        return RT_FAIL;
    }
    if (first == d->size)
        return RT_OK;
    /* The failed process's message: its bytes, one to an element, and
     * zeros from everyone else, combined by MAX. */
    enum { N = sizeof err->msg };
    int64_t *text = calloc(N, sizeof *text);
    if (!text)
        return rt_fail(err, "process %lld failed (and there is no memory to hear why)",
                       (long long)first);
    if (d->rank == first)
        for (int k = 0; k < N - 1 && err->msg[k]; k++)
            text[k] = (unsigned char)err->msg[k];
    RtStatus st = d->allreduce(d, text, N, RT_DIST_I64, RT_DIST_MAX, &e);
    char msg[N];
    for (int k = 0; k < N; k++)
        msg[k] = (char)text[k];
    msg[N - 1] = '\0';
    free(text);
    if (st != RT_OK) {
        *err = e;
        return RT_FAIL;
    }
    size_t at = 0;
    if (first != 0)
        at = (size_t)snprintf(err->msg, sizeof err->msg, "process %lld: ", (long long)first);
    size_t len = strlen(msg);
    if (len > sizeof err->msg - 1 - at)
        len = sizeof err->msg - 1 - at;
    memcpy(err->msg + at, msg, len);
    err->msg[at + len] = '\0';
    return RT_FAIL;
}

RtStatus dist_check_same(RtDist *d, const int64_t *vals, const char *const *what, int n,
                         RtError *err) {
    int64_t lo[16], hi[16];
    if (n > 16)
        n = 16;
    memcpy(lo, vals, sizeof *lo * (size_t)n);
    memcpy(hi, vals, sizeof *hi * (size_t)n);
    if (d->allreduce(d, lo, n, RT_DIST_I64, RT_DIST_MIN, err) != RT_OK ||
        d->allreduce(d, hi, n, RT_DIST_I64, RT_DIST_MAX, err) != RT_OK)
        return RT_FAIL;
    for (int i = 0; i < n; i++)
        if (lo[i] != hi[i])
            return rt_fail(err, "the %d processes disagree on %s (%lld in one, %lld in another): "
                                "every process must run the same command on the same files",
                           d->size, what[i], (long long)lo[i], (long long)hi[i]);
    return RT_OK;
}
