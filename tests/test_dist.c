/* test_dist.c: data-parallel training (runtime/dist.c, rt_train with a
 * RtTrainConfig.dist) without MPI: N threads of this process are the N
 * processes of a run, each with its own RtDist and its own session (its
 * own arena) of one compiled model, talking through an in-process
 * transport (Hub below) whose collectives meet at a barrier and combine
 * the buffers in rank order, so that every rank gets the same bits.
 *
 * What is checked, each against a one-process reference:
 *   - N = 2 and 3 processes with batch B train as one process with batch
 *     N*B (the model's plain plan, without PLAN_DATA_PARALLEL): the same
 *     per-epoch loss, val_loss and accuracy, the same parameters and
 *     optimizer states, within the tolerances stated at TOL_F32 and
 *     TOL_F64, for momentum in float32 and Adam in float64, with data
 *     sizes that make the last step's rows fewer than N (a stand-in row
 *     of weight 0) and the shares uneven; every process ends with
 *     bit-identical parameters and states; a step limit counts steps of
 *     N*B rows;
 *   - gradient clipping sees the averaged gradient (a clip_norm that binds
 *     at every step), and a parameter whose gradient does not depend on the
 *     batch (an L2 term alone) is left out of the average and still ends
 *     alike;
 *   - dropout: on identical rows, process 0's first gradient bucket is
 *     exactly the one-process gradient of its rows (its mask unchanged),
 *     process 1's differs (its mask salted); the same model without
 *     dropout gives equal buckets (so the difference is the mask);
 *   - a stop asked of one process (mid-epoch, from its transport, or
 *     between epochs, from its on_epoch) stops every process at the same
 *     step, with the same counters;
 *   - processes that disagree (batch size, row count, a batch one of them
 *     refuses, epochs where one has nothing to train) all fail with one
 *     message and none waits for the others;
 *   - rt_dist_agree and rt_dist_broadcast_session;
 *   - the data-parallel train program outside rt_train (its sync does
 *     nothing) steps as the plain one does.
 *
 * Dimension legend: B the batch of one process (BATCH), N the processes;
 * the models take x [B, 4] floats and y [B] int labels in [0, 3).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/rt_internal.h"
#include "support.h"

#define assert_contains(hay, needle)                                                        \
    do {                                                                                    \
        if (!strstr((hay), (needle)))                                                       \
            fail_msg("expected \"%s\" in \"%s\"", (needle), (hay));                         \
    } while (0)

enum {
    BATCH = 4,
    MAXP = 3,          /* processes at most */
    MAX_BATCH = MAXP * BATCH,
    NROWS = 33,        /* with SPLIT: 25 training rows, 8 held out */
    EPOCHS = 4,
    MAX_EPOCHS = 16,
    MAX_SYNCS = 64,
    WAIT_SECONDS = 20, /* a barrier nobody else reaches: a hang, reported as such */
};
#define SPLIT 0.25
#define SEED 7

/* 25 training rows: with N = 2 and batch 4, steps of 8, 8, 8, 1 rows (the
 * last step's row in process 0, process 1 on a stand-in); with N = 3,
 * steps of 12, 12, 1 (processes 0 and 1 on stand-ins). 8 held-out rows
 * are evaluated in shares of 4, 4 and of 2, 3, 3. */

/* ---- the models ----------------------------------------------------------------- */

/* A 4-8-3 tanh classifier (accuracy from its cross_entropy). */
#define CLASSIFIER                                                                          \
    "input x[B, 4]\n"                                                                       \
    "input y[B] : int\n"                                                                    \
    "h = dense(x, 8, tanh)\n"                                                               \
    "logits = dense(h, 3)\n"                                                                \
    "output probs = softmax(logits)\n"                                                      \
    "loss = cross_entropy(logits, y)\n"

static const char momentum_nn[] = CLASSIFIER "train {\n"
                                             "  optimizer = momentum(lr = 0.2, beta = 0.9)\n"
                                             "}\n";
static const char adam_nn[] = CLASSIFIER "train {\n"
                                         "  optimizer = adam(lr = 0.05)\n"
                                         "}\n";

/* h.W [4, 65536] is 1 MiB of float32 (RT_DIST_IN_PLACE_BYTES): summed in
 * place in the steps whose rows divide evenly, packed with the rest in
 * the others (an epoch's last step of 1 row). */
static const char wide_nn[] = "input x[B, 4]\n"
                              "input y[B] : int\n"
                              "h = dense(x, 65536, tanh)\n"
                              "logits = dense(h, 3)\n"
                              "loss = cross_entropy(logits, y)\n"
                              "train {\n"
                              "  optimizer = momentum(lr = 0.05, beta = 0.9)\n"
                              "}\n";

/* Clipping that binds at every step (the gradient norm stays above 0.05:
 * checked), and c, whose gradient 0.2 c depends on no row. */
static const char clip_nn[] = "input x[B, 4]\n"
                              "input y[B] : int\n"
                              "param W[4, 3] ~ glorot\n"
                              "param b[3] = 0\n"
                              "param c[5] = 1\n"
                              "logits = x @ W + b\n"
                              "loss = cross_entropy(logits, y) + 0.1 * sum(c ^ 2)\n"
                              "train {\n"
                              "  optimizer = momentum(lr = 0.5, beta = 0.5)\n"
                              "  clip_norm = 0.05\n"
                              "}\n";
#define CLIP_NORM 0.05

static const char dropout_nn[] = "input x[B, 4]\n"
                                 "input y[B] : int\n"
                                 "h = dense(x, 16, relu)\n"
                                 "h = dropout(h, 0.5)\n"
                                 "logits = dense(h, 3)\n"
                                 "loss = cross_entropy(logits, y)\n"
                                 "train {\n"
                                 "  optimizer = sgd(lr = 0.1)\n"
                                 "}\n";

/* The model compiled with every program planned (flags: PLAN_DATA_PARALLEL
 * or 0) for batches up to MAX_BATCH, with a session (seed 1). */
static Compiled *compile_flags(const char *text, int elem_size, unsigned flags) {
    Compiled *c = build_graph("dist.nn", text);
    c->plan = ir_plan_flags(c->g, MAX_BATCH, elem_size, (1u << PROG_COUNT) - 1, flags);
    jit_session(c, elem_size);
    return c;
}

/* n rows: x uniform in [-1, 1)^4 from a fixed seed, y = [x0 > x1] + [x2 + x3 > 0]
 * (learnable, not separable by the first steps). same: every row row 0. */
static RtDataset make_data(const RtModel *m, int64_t n, bool same) {
    RtDataset d;
    RtError err;
    if (rt_dataset_alloc(&d, m, n, NULL, "synthetic", &err) != RT_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(m->ninputs, 2);
    RtRng r;
    rt_rng_seed(&r, 42);
    double x[4];
    for (int64_t i = 0; i < n; i++) {
        if (i == 0 || !same)
            for (int k = 0; k < 4; k++)
                x[k] = 2 * rt_rng_uniform(&r) - 1;
        for (int k = 0; k < 4; k++)
            rt_store_float(d.data[0], m->elem_size, i * 4 + k, x[k]);
        ((int32_t *)d.data[1])[i] = (x[0] > x[1]) + (x[2] + x[3] > 0);
    }
    return d;
}

static RtSession new_session(const RtModel *m, uint64_t seed) {
    RtSession s;
    RtError err;
    if (rt_session_init(&s, m, seed, &err) != RT_OK)
        fail_msg("%s", err.msg);
    rt_init_params(&s);
    return s;
}

/* ---- the in-process transport ----------------------------------------------------
 * Each collective is two barriers: every rank posts its call (buffer,
 * count, type, op) and waits; then each combines all the buffers in rank
 * order into a scratch copy (the same arithmetic in every rank, so the
 * same bits), waits until every rank has read them, and copies the
 * result into its buffer. A barrier that a rank will never reach (it
 * returned, or WAIT_SECONDS passed) breaks: every waiting collective fails
 * instead of hanging, which the tests see as a wrong message. */

typedef enum { CALL_ALLREDUCE, CALL_BROADCAST } CallKind;

typedef struct Call {
    CallKind kind;
    void *buf;
    int64_t count; /* allreduce: elements; broadcast: bytes */
    RtDistType type;
    RtDistOp op;
} Call;

typedef struct Hub {
    int size;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int arrived, departed;
    uint64_t gen;
    bool broken;
    Call call[MAXP];
    /* The gradient syncs (allreduces of sync_count elements of the model's
     * float type), as rank 0 saw them between the barriers: whether every
     * rank's buffer held the same bytes, and rank 0's first buffer. */
    int64_t sync_count;
    int nsyncs;
    bool sync_equal[MAX_SYNCS];
    double *first_bucket; /* sync_count elements (malloc'd by the test) */
} Hub;

typedef struct Proc Proc;

struct Proc {
    Hub *hub;
    RtDist dist;
    RtSession s;
    const RtDataset *d;
    RtTrainConfig cfg;
    RtStatus st;
    RtError err;
    RtEpochStats last;
    RtEpochStats epochs[MAX_EPOCHS]; /* what on_epoch saw */
    int nepochs;
    volatile sig_atomic_t stop;
    int stop_at_sync;  /* set stop during this process's sync number k (1-based); 0: never */
    int stop_at_epoch; /* set stop in on_epoch of this epoch; 0: never */
    int fail_at_epoch; /* on_epoch fails at this epoch; 0: never */
    int syncs;
    void (*body)(Proc *p);
    RtStatus agree_mine; /* test_agree: this process's own verdict */
    const char *agree_msg;
};

static void hub_init(Hub *h, int size, const RtModel *m) {
    *h = (Hub){.size = size};
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    if (m) {
        h->sync_count = 2;
        for (int r = m->train_grad_root; r < m->train.nroots; r++)
            h->sync_count += rt_numel(&m->train.roots[r], 1);
    }
}

static void hub_free(Hub *h) {
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h->first_bucket);
}

/* Wait until every rank has arrived; false when that cannot happen. */
static bool hub_wait(Hub *h) {
    pthread_mutex_lock(&h->mu);
    uint64_t gen = h->gen;
    if (!h->broken && h->departed == 0 && ++h->arrived == h->size) {
        h->arrived = 0;
        h->gen++;
        pthread_cond_broadcast(&h->cv);
        pthread_mutex_unlock(&h->mu);
        return true;
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_SECONDS;
    while (h->gen == gen && !h->broken && h->departed == 0)
        if (pthread_cond_timedwait(&h->cv, &h->mu, &until) == ETIMEDOUT)
            break;
    bool ok = h->gen != gen;
    if (!ok) {
        h->broken = true;
        pthread_cond_broadcast(&h->cv);
    }
    pthread_mutex_unlock(&h->mu);
    return ok;
}

/* A rank is done: any collective still waiting for it never completes. */
static void hub_depart(Hub *h) {
    pthread_mutex_lock(&h->mu);
    h->departed++;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

static size_t type_bytes(RtDistType t) { return t == RT_DIST_F32 ? 4 : 8; }

/* out[i] = out[i] op in[i], in type t. */
static void combine(void *out, const void *in, int64_t n, RtDistType t, RtDistOp op) {
    for (int64_t i = 0; i < n; i++) {
        if (t == RT_DIST_F32) {
            float a = ((float *)out)[i], b = ((const float *)in)[i];
            ((float *)out)[i] = op == RT_DIST_SUM ? a + b : op == RT_DIST_MIN ? fminf(a, b)
                                                                              : fmaxf(a, b);
        } else if (t == RT_DIST_F64) {
            double a = ((double *)out)[i], b = ((const double *)in)[i];
            ((double *)out)[i] = op == RT_DIST_SUM ? a + b : op == RT_DIST_MIN ? fmin(a, b)
                                                                               : fmax(a, b);
        } else {
            int64_t a = ((int64_t *)out)[i], b = ((const int64_t *)in)[i];
            ((int64_t *)out)[i] = op == RT_DIST_SUM ? a + b : op == RT_DIST_MIN ? (a < b ? a : b)
                                                                                : (a > b ? a : b);
        }
    }
}

/* Do all ranks' calls match rank 0's? */
static bool calls_match(const Hub *h) {
    for (int r = 1; r < h->size; r++) {
        const Call *a = &h->call[0], *b = &h->call[r];
        if (a->kind != b->kind || a->count != b->count ||
            (a->kind == CALL_ALLREDUCE && (a->type != b->type || a->op != b->op)))
            return false;
    }
    return true;
}

/* Rank 0's record of a gradient sync (between the barriers). */
static void observe_sync(Hub *h, int64_t count, RtDistType type) {
    size_t bytes = (size_t)count * type_bytes(type);
    bool equal = true;
    for (int r = 1; r < h->size; r++)
        equal &= memcmp(h->call[0].buf, h->call[r].buf, bytes) == 0;
    if (h->nsyncs < MAX_SYNCS)
        h->sync_equal[h->nsyncs] = equal;
    if (h->nsyncs == 0 && h->first_bucket)
        for (int64_t i = 0; i < count; i++)
            h->first_bucket[i] = type == RT_DIST_F32 ? ((const float *)h->call[0].buf)[i]
                                                     : ((const double *)h->call[0].buf)[i];
    h->nsyncs++;
}

static RtStatus tr_allreduce(RtDist *d, void *buf, int64_t count, RtDistType type, RtDistOp op,
                             RtError *err) {
    Proc *p = d->impl;
    Hub *h = p->hub;
    bool is_sync = (type == RT_DIST_F32 || type == RT_DIST_F64) && op == RT_DIST_SUM &&
                   count == h->sync_count;
    h->call[d->rank] = (Call){CALL_ALLREDUCE, buf, count, type, op};
    if (!hub_wait(h))
        return rt_fail(err, "transport: process %d waited for the others in vain", d->rank);
    bool match = calls_match(h);
    size_t bytes = (size_t)count * type_bytes(type);
    void *sum = malloc(bytes ? bytes : 1);
    if (match) {
        memcpy(sum, h->call[0].buf, bytes);
        for (int r = 1; r < h->size; r++)
            combine(sum, h->call[r].buf, count, type, op);
        if (is_sync && d->rank == 0)
            observe_sync(h, count, type);
    }
    if (!hub_wait(h)) {
        free(sum);
        return rt_fail(err, "transport: process %d waited for the others in vain", d->rank);
    }
    if (match)
        memcpy(buf, sum, bytes);
    free(sum);
    if (!match)
        return rt_fail(err, "transport: the processes made different calls");
    if (is_sync && ++p->syncs == p->stop_at_sync)
        p->stop = 1;
    return RT_OK;
}

static RtStatus tr_broadcast(RtDist *d, void *buf, size_t bytes, RtError *err) {
    Proc *p = d->impl;
    Hub *h = p->hub;
    h->call[d->rank] = (Call){.kind = CALL_BROADCAST, .buf = buf, .count = (int64_t)bytes};
    if (!hub_wait(h))
        return rt_fail(err, "transport: process %d waited for the others in vain", d->rank);
    bool match = calls_match(h);
    if (match && d->rank != 0)
        memcpy(buf, h->call[0].buf, bytes);
    if (!hub_wait(h))
        return rt_fail(err, "transport: process %d waited for the others in vain", d->rank);
    return match ? RT_OK : rt_fail(err, "transport: the processes made different calls");
}

/* Only rt_dist_sync aborts, and only when a collective failed: a bug. */
static void tr_abort(RtDist *d, int status) {
    fprintf(stderr, "test_dist: process %d aborted the run (status %d)\n", d->rank, status);
    abort();
}

static void *proc_main(void *arg) {
    Proc *p = arg;
    p->body(p);
    hub_depart(p->hub);
    return NULL;
}

/* Run body in n threads, process k on procs[k], and wait for them all. */
static void run_procs(Hub *h, Proc *procs, int n) {
    pthread_t t[MAXP];
    assert_true(n <= MAXP && h->size == n);
    for (int k = 0; k < n; k++) {
        procs[k].hub = h;
        procs[k].dist = (RtDist){.rank = k, .size = n, .allreduce = tr_allreduce,
                                 .broadcast = tr_broadcast, .abort = tr_abort, .impl = &procs[k]};
        if (procs[k].cfg.batch)
            procs[k].cfg.dist = &procs[k].dist;
        assert_int_equal(pthread_create(&t[k], NULL, proc_main, &procs[k]), 0);
    }
    for (int k = 0; k < n; k++)
        pthread_join(t[k], NULL);
}

/* on_epoch of the processes and the reference: record; a process with
 * stop_at_epoch asks to stop there. */
static RtStatus record_epoch(const RtSession *s, const RtEpochStats *e, void *user, RtError *err) {
    (void)s;
    Proc *p = user;
    if (p->nepochs < MAX_EPOCHS)
        p->epochs[p->nepochs++] = *e;
    if (p->stop_at_epoch && e->epoch == p->stop_at_epoch)
        p->stop = 1;
    if (p->fail_at_epoch && e->epoch == p->fail_at_epoch)
        return rt_fail(err, "cannot write checkpoint 'ck.safetensors': No space left on device");
    return RT_OK;
}

/* The usual body: take process 0's state (rt_dist_broadcast_session), as
 * gradc train --mpi does, then train. */
static void body_train(Proc *p) {
    p->st = rt_dist_broadcast_session(&p->dist, &p->s, &p->err);
    if (p->st == RT_OK)
        p->st = rt_train(&p->s, p->d, &p->cfg, &p->last, &p->err);
}

/* The run's configuration: batch per process, EPOCHS, SEED, SPLIT, quiet,
 * every epoch recorded. */
static RtTrainConfig train_cfg(Proc *p, int64_t batch) {
    return (RtTrainConfig){.epochs = EPOCHS, .batch = batch, .seed = SEED, .split = SPLIT,
                           .quiet = true, .on_epoch = record_epoch, .on_epoch_user = p,
                           .stop = &p->stop};
}

/* n processes of model m on data d from fresh sessions (process k seeded
 * k + 1, so that only the broadcast makes them alike), each with cfg
 * (batch per process) as train_cfg makes it. */
static void start_procs(Proc *procs, int n, const RtModel *m, const RtDataset *d, int64_t batch) {
    for (int k = 0; k < n; k++) {
        procs[k] = (Proc){.d = d, .body = body_train};
        procs[k].s = new_session(m, (uint64_t)k + 1);
        procs[k].cfg = train_cfg(&procs[k], batch);
    }
}

static void free_procs(Proc *procs, int n) {
    for (int k = 0; k < n; k++)
        rt_session_free(&procs[k].s);
}

/* ---- comparisons ------------------------------------------------------------------ */

/* Tolerances of a data-parallel run against one process with the batch
 * N*B, relative to the larger of the two values and the largest magnitude
 * in the tensor (an element near 0 is compared at its tensor's scale).
 * The two differ only in the order of the sums: the plain program takes
 * one mean over N*B rows, the processes each a mean over their rows, then
 * scaled by the rows, summed and divided. Each step's gradient then
 * differs by a few units in the last place (float32: 6e-8 relative),
 * which the following steps carry on without amplifying much (momentum
 * and SGD are linear in the gradient; the losses are smooth); over the 16
 * steps here the float32 parameters differ by about 1e-6 of their scale
 * (measured: 1.1e-6 at most). 1e-5 leaves room, while a real error (a share
 * weighted wrongly, a row counted twice, an unaveraged gradient) moves
 * them by 1e-2 or more. Adam divides by the root of the squared gradient
 * and can amplify a tiny difference in a near-zero gradient, so it runs
 * in float64, where the same argument gives 1e-13 (measured: 8e-16) and
 * 1e-9 is allowed. */
#define TOL_F32 1e-5
#define TOL_F64 1e-9

static void assert_close(double got, double want, double scale, double tol, const char *what,
                         int64_t i) {
    double ref = fmax(fmax(fabs(got), fabs(want)), scale);
    if (!(fabs(got - want) <= tol * ref))
        fail_msg("%s[%lld]: %.9g, expected %.9g (difference %.3g, allowed %.3g)", what,
                 (long long)i, got, want, fabs(got - want), tol * ref);
}

/* The largest relative difference seen (for the tolerance's comment). */
static double worst_diff;

/* Tensor t of session s against tensor u of session r (same shape, maybe
 * another model's layout), elementwise within tol at the tensor's scale. */
static void compare_tensor(const RtSession *s, const RtTensor *t, const RtSession *r,
                           const RtTensor *u, double tol) {
    assert_string_equal(t->name, u->name);
    int64_t n = rt_numel(t, 1);
    assert_int_equal(n, rt_numel(u, 1));
    double scale = 0;
    for (int64_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(rt_load_float(rt_ptr(r, u), r->m->elem_size, i)));
    for (int64_t i = 0; i < n; i++) {
        double got = rt_load_float(rt_ptr(s, t), s->m->elem_size, i);
        double want = rt_load_float(rt_ptr(r, u), r->m->elem_size, i);
        assert_close(got, want, scale, tol, t->name, i);
        if (scale > 0)
            worst_diff = fmax(worst_diff, fabs(got - want) / fmax(scale, fabs(want)));
    }
}

/* Every parameter and optimizer state of s against r's. */
static void compare_weights(const RtSession *s, const RtSession *r, double tol) {
    assert_int_equal(s->m->nparams, r->m->nparams);
    assert_int_equal(s->m->nstates, r->m->nstates);
    for (int i = 0; i < s->m->nparams; i++)
        compare_tensor(s, &s->m->params[i], r, &r->m->params[i], tol);
    for (int i = 0; i < s->m->nstates; i++)
        compare_tensor(s, &s->m->states[i], r, &r->m->states[i], tol);
}

/* Every parameter and state of two sessions of one model, to the bit. */
static void assert_same_weights(const RtSession *a, const RtSession *b) {
    const RtModel *m = a->m;
    for (int i = 0; i < m->nparams; i++)
        if (memcmp(rt_ptr(a, &m->params[i]), rt_ptr(b, &m->params[i]),
                   rt_tensor_bytes(m, &m->params[i], 1)) != 0)
            fail_msg("parameter %s differs between processes", m->params[i].name);
    for (int i = 0; i < m->nstates; i++)
        if (memcmp(rt_ptr(a, &m->states[i]), rt_ptr(b, &m->states[i]),
                   rt_tensor_bytes(m, &m->states[i], 1)) != 0)
            fail_msg("state %s differs between processes", m->states[i].name);
}

static void assert_procs_alike(const Proc *procs, int n) {
    for (int k = 1; k < n; k++) {
        assert_int_equal(procs[k].s.step, procs[0].s.step);
        assert_int_equal(procs[k].s.epoch, procs[0].s.epoch);
        assert_int_equal(procs[k].s.epoch_rows, procs[0].s.epoch_rows);
        assert_memory_equal(&procs[k].s.rng, &procs[0].s.rng, sizeof(RtRng));
        assert_same_weights(&procs[k].s, &procs[0].s);
    }
}

static void assert_all_ok(const Proc *procs, int n) {
    for (int k = 0; k < n; k++)
        if (procs[k].st != RT_OK)
            fail_msg("process %d: %s", k, procs[k].err.msg);
}

/* An epoch's figures: loss and val_loss within tol, accuracy (a count of
 * rows) exact, the counters exact. */
static void compare_epoch(const RtEpochStats *got, const RtEpochStats *want, double tol) {
    assert_int_equal(got->epoch, want->epoch);
    assert_int_equal(got->step, want->step);
    assert_close(got->loss, want->loss, 0, tol, "loss", got->epoch);
    if (isnan(want->val_loss))
        assert_true(isnan(got->val_loss));
    else
        assert_close(got->val_loss, want->val_loss, 0, tol, "val_loss", got->epoch);
    if (isnan(want->accuracy))
        assert_true(isnan(got->accuracy));
    else
        assert_true(got->accuracy == want->accuracy);
}

/* ---- N processes against one with the batch N*B -------------------------------------- */

typedef struct Pair {
    Compiled *dp, *plain; /* PLAN_DATA_PARALLEL, and the model's ordinary plan */
} Pair;

static Pair compile_pair(const char *text, int elem_size) {
    return (Pair){compile_flags(text, elem_size, PLAN_DATA_PARALLEL),
                  compile_flags(text, elem_size, 0)};
}

static void free_pair(Pair p) {
    compiled_free(p.dp);
    compiled_free(p.plain);
}

/* One process of the plain model, batch n*BATCH, from seed 1 (process 0's
 * seed) with cfg's other settings; its epochs in ref->epochs. */
static void train_reference(Proc *ref, const RtModel *m, const RtDataset *d, int n,
                            const RtTrainConfig *like) {
    *ref = (Proc){.d = d};
    ref->s = new_session(m, 1);
    ref->cfg = *like;
    ref->cfg.batch = n * BATCH;
    ref->cfg.on_epoch_user = ref;
    ref->cfg.stop = NULL;
    ref->cfg.dist = NULL;
    ref->st = rt_train(&ref->s, d, &ref->cfg, &ref->last, &ref->err);
    if (ref->st != RT_OK)
        fail_msg("reference: %s", ref->err.msg);
}

/* n processes with batch BATCH against one with n*BATCH: figures, weights,
 * counters; the processes alike to the bit. epochs and steps as given. */
static void check_against_one(Pair pr, const RtDataset *d, int n, int epochs, int64_t steps,
                              double tol) {
    Proc procs[MAXP], ref;
    Hub h;
    hub_init(&h, n, pr.dp->rm);
    start_procs(procs, n, pr.dp->rm, d, BATCH);
    for (int k = 0; k < n; k++) {
        procs[k].cfg.epochs = epochs;
        procs[k].cfg.steps = steps;
    }
    run_procs(&h, procs, n);
    assert_all_ok(procs, n);
    train_reference(&ref, pr.plain->rm, d, n, &procs[0].cfg);

    assert_procs_alike(procs, n);
    assert_int_equal(procs[0].s.step, ref.s.step);
    assert_int_equal(procs[0].s.epoch, ref.s.epoch);
    assert_int_equal(procs[0].s.epoch_rows, ref.s.epoch_rows);
    for (int k = 0; k < n; k++) {
        assert_int_equal(procs[k].nepochs, ref.nepochs);
        for (int e = 0; e < ref.nepochs; e++)
            compare_epoch(&procs[k].epochs[e], &ref.epochs[e], tol);
    }
    compare_weights(&procs[0].s, &ref.s, tol);
    /* Training moved the weights: the comparison compared something. */
    RtSession init = new_session(pr.plain->rm, 1);
    double moved = 0;
    const RtModel *m = pr.plain->rm;
    for (int i = 0; i < m->nparams; i++)
        for (int64_t j = 0; j < rt_numel(&m->params[i], 1); j++)
            moved = fmax(moved, fabs(rt_load_float(rt_ptr(&ref.s, &m->params[i]), m->elem_size, j) -
                                     rt_load_float(rt_ptr(&init, &m->params[i]), m->elem_size, j)));
    assert_true(moved > 1e-2);
    /* The reference's final weights, for the caller's further checks. */
    memcpy(pr.plain->s.arena, ref.s.arena, m->arena_bytes);
    rt_session_free(&init);
    rt_session_free(&ref.s);
    free_procs(procs, n);
    hub_free(&h);
}

/* The model's data-parallel description: the gradient roots last, one per
 * parameter (every one depends on the rows), shaped like it. */
static void test_data_parallel_model_describes_its_gradients(void **state) {
    (void)state;
    Pair pr = compile_pair(momentum_nn, 4);
    const RtModel *m = pr.dp->rm;
    assert_true(m->data_parallel);
    assert_false(pr.plain->rm->data_parallel);
    /* loss, lr, the updates of the 4 parameters and their 4 states, then
     * the 4 gradients */
    assert_int_equal(m->nparams, 4);
    assert_int_equal(m->train_lr_root, 1);
    assert_int_equal(m->train_grad_root, 2 + m->nparams + m->nstates);
    assert_int_equal(m->train.nroots, m->train_grad_root + m->nparams);
    for (int r = m->train_grad_root; r < m->train.nroots; r++) {
        const RtTensor *g = &m->train.roots[r], *p = &m->params[r - m->train_grad_root];
        assert_int_equal(g->rank, p->rank);
        assert_int_equal(rt_numel(g, 1), rt_numel(p, 1));
    }
    free_pair(pr);
}

static void test_n_processes_train_as_one_with_n_times_the_batch_f32(void **state) {
    (void)state;
    Pair pr = compile_pair(momentum_nn, 4);
    RtDataset d = make_data(pr.dp->rm, NROWS, false);
    worst_diff = 0;
    for (int n = 2; n <= 3; n++)
        check_against_one(pr, &d, n, EPOCHS, 0, TOL_F32);
    print_message("float32, momentum: largest difference %.3g of the scale\n", worst_diff);
    rt_dataset_free(&d);
    free_pair(pr);
}

static void test_n_processes_train_as_one_with_n_times_the_batch_f64_adam(void **state) {
    (void)state;
    Pair pr = compile_pair(adam_nn, 8);
    RtDataset d = make_data(pr.dp->rm, NROWS, false);
    worst_diff = 0;
    for (int n = 2; n <= 3; n++)
        check_against_one(pr, &d, n, EPOCHS, 0, TOL_F64);
    print_message("float64, adam: largest difference %.3g of the scale\n", worst_diff);
    rt_dataset_free(&d);
    free_pair(pr);
}

/* A gradient of 1 MiB or more, averaged in place in the even steps and
 * packed in the others, trains as one process does too. */
static void test_large_gradient_averaged_in_place(void **state) {
    (void)state;
    Pair pr = compile_pair(wide_nn, 4);
    const RtModel *m = pr.dp->rm;
    assert_true(rt_numel(&m->train.roots[m->train_grad_root], 1) * 4 >= RT_DIST_IN_PLACE_BYTES);
    RtDataset d = make_data(m, NROWS, false);
    worst_diff = 0;
    for (int n = 2; n <= 3; n++)
        check_against_one(pr, &d, n, 2, 0, TOL_F32);
    print_message("float32, 1 MiB gradient: largest difference %.3g of the scale\n", worst_diff);
    rt_dataset_free(&d);
    free_pair(pr);
}

/* The default threads of a process: its CPUs, but no more than its part
 * of the machine's. */
static void test_threads_share_the_machine(void **state) {
    (void)state;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int mine = pool_available_cpus();
    RtDist d = {.rank = 0, .size = 4, .local_size = 1};
    assert_int_equal(rt_dist_threads(&d), mine < online ? mine : (int)online);
    d.local_size = (int)online; /* a process per CPU */
    assert_int_equal(rt_dist_threads(&d), 1);
    d.local_size = 4 * (int)online; /* more processes than CPUs: still one */
    assert_int_equal(rt_dist_threads(&d), 1);
    d.local_size = 0; /* unknown: as one */
    assert_int_equal(rt_dist_threads(&d), mine < online ? mine : (int)online);
}

/* A step limit counts steps of N*B rows: 6 steps of 2 processes are 1.5
 * epochs of 4 steps (25 rows in steps of 8), as for one process with batch
 * 8, and the epochs hyper is the same. */
static void test_step_limit_counts_steps_of_all_processes(void **state) {
    (void)state;
    Pair pr = compile_pair(momentum_nn, 4);
    RtDataset d = make_data(pr.dp->rm, NROWS, false);
    check_against_one(pr, &d, 2, 0, 6, TOL_F32);
    rt_dataset_free(&d);
    free_pair(pr);
}

/* The norm of the gradients that depend on the rows (W's and b's) at c's
 * weights over the first MAX_BATCH rows, through the grad program. */
static double grad_norm(Compiled *c, const RtDataset *d) {
    int64_t rows[MAX_BATCH];
    for (int i = 0; i < MAX_BATCH; i++)
        rows[i] = i;
    rt_dataset_gather(&c->s, d, rows, MAX_BATCH);
    run(c, &c->rm->grad, MAX_BATCH);
    double sq = 0;
    for (int r = 1; r < c->rm->grad.nroots; r++) {
        const RtTensor *g = &c->rm->grad.roots[r];
        if (!strcmp(c->rm->params[r - 1].name, "c"))
            continue; /* the L2 term's, which no row changes */
        for (int64_t j = 0; j < rt_numel(g, 1); j++) {
            double v = rt_load_float(rt_ptr(&c->s, g), c->rm->elem_size, j);
            sq += v * v;
        }
    }
    return sqrt(sq);
}

/* Clipping on the averaged gradient: the same as one process with the
 * doubled batch, while it binds (a process clipping its own gradient
 * would scale each by another factor). c's gradient, 0.2 c, is not
 * averaged (left out of the sync), and c still ends the same everywhere. */
static void test_clipping_sees_the_averaged_gradient(void **state) {
    (void)state;
    Pair pr = compile_pair(clip_nn, 4);
    const RtModel *m = pr.dp->rm;
    /* W and b are averaged, c is not */
    assert_int_equal(m->train.nroots - m->train_grad_root, 2);
    RtDataset d = make_data(m, NROWS, false);
    /* The clip binds: the gradient norm is far above clip_norm before
     * training and still after it (the last reference's weights). */
    assert_true(grad_norm(pr.plain, &d) > 4 * CLIP_NORM);
    for (int n = 2; n <= 3; n++)
        check_against_one(pr, &d, n, EPOCHS, 0, TOL_F32);
    print_message("after training: gradient norm %.3g\n", grad_norm(pr.plain, &d));
    assert_true(grad_norm(pr.plain, &d) > 4 * CLIP_NORM);
    rt_dataset_free(&d);
    free_pair(pr);
}

/* ---- dropout ---------------------------------------------------------------------- */

static void test_dropout_masks_differ_between_processes(void **state) {
    (void)state;
    enum { N = 2, ROWS = 16 };
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: dropout; pass 1: the control, no dropout */
        Compiled *c = compile_flags(pass == 0 ? dropout_nn : momentum_nn, 4, PLAN_DATA_PARALLEL);
        const RtModel *m = c->rm;
        RtDataset d = make_data(m, ROWS, true); /* every row the same */
        Proc procs[N];
        Hub h;
        hub_init(&h, N, m);
        h.first_bucket = calloc((size_t)h.sync_count, sizeof(double));
        start_procs(procs, N, m, &d, BATCH);
        for (int k = 0; k < N; k++) {
            procs[k].cfg.epochs = 2;
            procs[k].cfg.split = 0;
        }
        run_procs(&h, procs, N);
        assert_all_ok(procs, N);
        assert_procs_alike(procs, N);
        assert_int_equal(h.nsyncs, 4); /* 16 rows in steps of 8, 2 epochs */
        for (int i = 0; i < h.nsyncs; i++)
            assert_true(h.sync_equal[i] == (pass == 1));

        /* Process 0's first bucket is its gradients times its 4 rows, as
         * the program computes them alone with the session's first draw:
         * the train program run by hand, without a dist, on 4 such rows,
         * from the state process 0 started in. */
        RtSession one = new_session(m, 1);
        int64_t rows[BATCH] = {0, 1, 2, 3};
        rt_dataset_gather(&one, &d, rows, BATCH);
        rt_step_hypers(&one, 2);
        m->train.fn(one.arena, BATCH);
        int64_t at = 0;
        for (int r = m->train_grad_root; r < m->train.nroots; r++)
            for (int64_t j = 0; j < rt_numel(&m->train.roots[r], 1); j++, at++) {
                double g = rt_load_float(rt_ptr(&one, &m->train.roots[r]), 4, j);
                if (h.first_bucket[at] != (double)(float)(g * BATCH))
                    fail_msg("pass %d: process 0's gradient %lld is %.9g, alone %.9g", pass,
                             (long long)at, h.first_bucket[at] / BATCH, g);
            }
        assert_true(h.first_bucket[at] ==
                    (double)(float)(rt_load_float(rt_ptr(&one, &m->train.roots[0]), 4, 0) *
                                    BATCH));
        rt_session_free(&one);
        free_procs(procs, N);
        hub_free(&h);
        rt_dataset_free(&d);
        compiled_free(c);
    }
}

/* ---- stopping ----------------------------------------------------------------------- */

/* A stop asked of process 1 alone, during its 5th gradient sync: the sync
 * of step 6 reads it, so every process stops after step 6, the second of
 * epoch 2 (16 of its 25 rows done), with nothing of that epoch recorded. */
static void test_stop_in_one_process_stops_all_at_the_same_step(void **state) {
    (void)state;
    enum { N = 2 };
    Compiled *c = compile_flags(momentum_nn, 4, PLAN_DATA_PARALLEL);
    RtDataset d = make_data(c->rm, NROWS, false);
    for (int pass = 0; pass < 2; pass++) {
        Proc procs[N];
        Hub h;
        hub_init(&h, N, c->rm);
        start_procs(procs, N, c->rm, &d, BATCH);
        if (pass == 0)
            procs[1].stop_at_sync = 5;
        else
            procs[1].stop_at_epoch = 2; /* between epochs 2 and 3 */
        run_procs(&h, procs, N);
        assert_all_ok(procs, N);
        assert_procs_alike(procs, N);
        assert_int_equal(procs[0].stop, 0);
        assert_int_equal(procs[1].stop, 1);
        for (int k = 0; k < N; k++) {
            assert_true(procs[k].last.stopped);
            if (pass == 0) {
                assert_int_equal(procs[k].s.step, 6);
                assert_int_equal(procs[k].s.epoch, 1);
                assert_int_equal(procs[k].s.epoch_rows, 16);
                assert_int_equal(procs[k].nepochs, 1);
            } else {
                assert_int_equal(procs[k].s.step, 8);
                assert_int_equal(procs[k].s.epoch, 2);
                assert_int_equal(procs[k].s.epoch_rows, 0);
                assert_int_equal(procs[k].nepochs, 2);
            }
            assert_int_equal(procs[k].last.step, procs[k].s.step);
        }
        free_procs(procs, N);
        hub_free(&h);
    }
    rt_dataset_free(&d);
    compiled_free(c);
}

/* ---- disagreement ------------------------------------------------------------------- */

/* Every process failed, with a message containing want. */
static void assert_all_fail(const Proc *procs, int n, const char *want) {
    for (int k = 0; k < n; k++) {
        if (procs[k].st != RT_FAIL)
            fail_msg("process %d: status %d, expected a failure with \"%s\"", k,
                     (int)procs[k].st, want);
        assert_contains(procs[k].err.msg, want);
    }
}

static void test_processes_that_disagree_all_fail_without_waiting(void **state) {
    (void)state;
    enum { N = 2 };
    Compiled *c = compile_flags(momentum_nn, 4, PLAN_DATA_PARALLEL);
    RtDataset d = make_data(c->rm, NROWS, false), fewer = make_data(c->rm, NROWS - 1, false);
    for (int pass = 0; pass < 6; pass++) {
        Proc procs[N];
        Hub h;
        hub_init(&h, N, c->rm);
        start_procs(procs, N, c->rm, &d, BATCH);
        const char *want = NULL;
        switch (pass) {
        case 0:
            procs[1].cfg.batch = BATCH - 1;
            want = "the 2 processes disagree on the batch size (3 in one, 4 in another): every "
                   "process must run the same command on the same files";
            break;
        case 1:
            procs[1].d = &fewer;
            want = "the 2 processes disagree on the data's rows (32 in one, 33 in another)";
            break;
        case 2: /* a batch only process 1 refuses */
            procs[1].cfg.batch = MAX_BATCH + 1;
            want = "process 1: batch size 13 is out of range: model 'dist' takes 1 to 12";
            break;
        case 3: /* process 0 has nothing to train, process 1 has */
            for (int k = 0; k < N; k++)
                procs[k].s.epoch = 2;
            procs[0].cfg.epochs = 2;
            want = "the 2 processes disagree on the epochs (2 in one, 4 in another)";
            break;
        case 4: /* process 0 alone writes a log, and cannot */
            procs[0].cfg.log_path = "/nonexistent/gradc-test/log.jsonl";
            want = "cannot open log '/nonexistent/gradc-test/log.jsonl': No such file or "
                   "directory";
            break;
        case 5: /* process 1's on_epoch fails after epoch 1 */
            procs[1].fail_at_epoch = 1;
            want = "process 1: cannot write checkpoint 'ck.safetensors': No space left on device";
            break;
        }
        run_procs(&h, procs, N);
        assert_all_fail(procs, N, want);
        assert_false(h.broken); /* nobody waited in vain */
        for (int k = 0; k < N; k++)
            assert_int_equal(procs[k].s.step, pass == 5 ? 4 : 0);
        free_procs(procs, N);
        hub_free(&h);
    }
    rt_dataset_free(&fewer);
    rt_dataset_free(&d);
    compiled_free(c);
}

/* ---- rt_dist_agree and rt_dist_broadcast_session ------------------------------------- */

static void body_agree(Proc *p) {
    p->err = (RtError){{0}};
    if (p->agree_mine != RT_OK)
        snprintf(p->err.msg, sizeof p->err.msg, "%s", p->agree_msg);
    p->st = rt_dist_agree(&p->dist, p->agree_mine, &p->err);
}

static void test_agree_gives_every_process_the_first_failure(void **state) {
    (void)state;
    enum { N = 3 };
    static const struct {
        int fail_mask; /* bit k: process k fails */
        const char *want; /* every process's message; NULL: RT_OK */
    } cases[] = {
        {0, NULL},
        {1 << 1, "process 1: cannot open 'part1.csv': No such file or directory"},
        {1 << 1 | 1 << 2, "process 1: cannot open 'part1.csv': No such file or directory"},
        {1 << 2, "process 2: cannot open 'part2.csv': No such file or directory"},
        {1 << 0 | 1 << 2, "cannot open 'part0.csv': No such file or directory"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Proc procs[N];
        char msgs[N][64];
        Hub h;
        hub_init(&h, N, NULL);
        for (int k = 0; k < N; k++) {
            snprintf(msgs[k], sizeof msgs[k], "cannot open 'part%d.csv': No such file or directory",
                     k);
            procs[k] = (Proc){.body = body_agree, .agree_msg = msgs[k],
                              .agree_mine = cases[i].fail_mask >> k & 1 ? RT_FAIL : RT_OK};
        }
        run_procs(&h, procs, N);
        for (int k = 0; k < N; k++) {
            if (!cases[i].want) {
                assert_int_equal(procs[k].st, RT_OK);
                assert_string_equal(procs[k].err.msg, "");
            } else {
                assert_int_equal(procs[k].st, RT_FAIL);
                assert_string_equal(procs[k].err.msg, cases[i].want);
            }
        }
        hub_free(&h);
    }
}

/* A message of the longest length: cut to fit after the prefix. */
static void test_agree_cuts_a_long_message_to_fit(void **state) {
    (void)state;
    enum { N = 2 };
    char *msg = malloc(sizeof(RtError));
    memset(msg, 'x', sizeof(RtError) - 1);
    msg[sizeof(RtError) - 1] = '\0';
    Proc procs[N];
    Hub h;
    hub_init(&h, N, NULL);
    for (int k = 0; k < N; k++)
        procs[k] = (Proc){.body = body_agree, .agree_msg = msg,
                          .agree_mine = k == 1 ? RT_FAIL : RT_OK};
    run_procs(&h, procs, N);
    for (int k = 0; k < N; k++) {
        assert_int_equal(procs[k].st, RT_FAIL);
        assert_int_equal(strlen(procs[k].err.msg), sizeof(RtError) - 1);
        assert_memory_equal(procs[k].err.msg, "process 1: xxx", 14);
    }
    hub_free(&h);
    free(msg);
}

static void body_broadcast(Proc *p) {
    p->st = rt_dist_broadcast_session(&p->dist, &p->s, &p->err);
}

static void test_broadcast_session_copies_process_0s_state(void **state) {
    (void)state;
    enum { N = 3 };
    Compiled *c = compile_flags(adam_nn, 4, PLAN_DATA_PARALLEL);
    const RtModel *m = c->rm;
    assert_true(m->nstates > 0);
    Proc procs[N];
    Hub h;
    hub_init(&h, N, NULL);
    for (int k = 0; k < N; k++) {
        procs[k] = (Proc){.body = body_broadcast};
        procs[k].s = new_session(m, (uint64_t)k + 1);
        for (int i = 0; i < m->nstates; i++)
            for (int64_t j = 0; j < rt_numel(&m->states[i], 1); j++)
                rt_store_float(rt_ptr(&procs[k].s, &m->states[i]), 4, j, k + 0.25 * (double)j);
        procs[k].s.step = 10 + k;
        procs[k].s.epoch = 20 + k;
        procs[k].s.epoch_rows = 30 + k;
        rt_rng_next(&procs[k].s.rng);
    }
    /* different before */
    assert_int_not_equal(memcmp(rt_ptr(&procs[1].s, &m->params[0]),
                                rt_ptr(&procs[0].s, &m->params[0]),
                                rt_tensor_bytes(m, &m->params[0], 1)),
                         0);
    RtSession want = procs[0].s;
    RtRng rng0 = procs[0].s.rng;
    void *arena0 = malloc(m->arena_bytes);
    memcpy(arena0, procs[0].s.arena, m->arena_bytes);
    run_procs(&h, procs, N);
    assert_all_ok(procs, N);
    assert_procs_alike(procs, N);
    assert_int_equal(procs[2].s.step, want.step);
    assert_int_equal(procs[2].s.epoch, want.epoch);
    assert_int_equal(procs[2].s.epoch_rows, want.epoch_rows);
    assert_memory_equal(&procs[2].s.rng, &rng0, sizeof rng0);
    /* process 0's own arena is as it was */
    assert_memory_equal(procs[0].s.arena, arena0, m->arena_bytes);
    free(arena0);
    free_procs(procs, N);
    hub_free(&h);
    compiled_free(c);
}

/* ---- the data-parallel program alone -------------------------------------------------- */

/* Outside rt_train its sync does nothing: two steps of the data-parallel
 * train program are the plain program's (the same kernels in another
 * order, with the gradients stored: the same loss and weights, here to
 * the bit; 1e-6 allows for code generation contracting them otherwise). */
static void test_data_parallel_program_alone_steps_as_the_plain_one(void **state) {
    (void)state;
    Pair pr = compile_pair(momentum_nn, 4);
    RtDataset d = make_data(pr.dp->rm, NROWS, false);
    Compiled *cs[2] = {pr.dp, pr.plain};
    int64_t rows[MAX_BATCH];
    for (int i = 0; i < MAX_BATCH; i++)
        rows[i] = 3 * i % NROWS;
    double loss[2];
    for (int k = 0; k < 2; k++) {
        Compiled *c = cs[k];
        for (int step = 0; step < 2; step++) {
            rt_dataset_gather(&c->s, &d, rows, MAX_BATCH - step);
            rt_step_hypers(&c->s, 1);
            run(c, &c->rm->train, MAX_BATCH - step);
            c->s.step++;
        }
        loss[k] = rt_load_float(rt_ptr(&c->s, &c->rm->train.roots[0]), 4, 0);
    }
    assert_close(loss[0], loss[1], 0, 1e-6, "loss", 0);
    compare_weights(&pr.dp->s, &pr.plain->s, 1e-6);
    rt_dataset_free(&d);
    free_pair(pr);
}

static int setup(void **state) {
    (void)state;
    rt_setup(2);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_data_parallel_model_describes_its_gradients),
        cmocka_unit_test(test_n_processes_train_as_one_with_n_times_the_batch_f32),
        cmocka_unit_test(test_n_processes_train_as_one_with_n_times_the_batch_f64_adam),
        cmocka_unit_test(test_large_gradient_averaged_in_place),
        cmocka_unit_test(test_threads_share_the_machine),
        cmocka_unit_test(test_step_limit_counts_steps_of_all_processes),
        cmocka_unit_test(test_clipping_sees_the_averaged_gradient),
        cmocka_unit_test(test_dropout_masks_differ_between_processes),
        cmocka_unit_test(test_stop_in_one_process_stops_all_at_the_same_step),
        cmocka_unit_test(test_processes_that_disagree_all_fail_without_waiting),
        cmocka_unit_test(test_agree_gives_every_process_the_first_failure),
        cmocka_unit_test(test_agree_cuts_a_long_message_to_fit),
        cmocka_unit_test(test_broadcast_session_copies_process_0s_state),
        cmocka_unit_test(test_data_parallel_program_alone_steps_as_the_plain_one),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
