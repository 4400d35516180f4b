/* run_train.c: the train command once the model is compiled: the session
 * (initialised, or from --weights, or continuing --resume after checking
 * that the checkpoint is this model's), the data, rt_train, and the
 * checkpoints: at the end, every --save-every N epochs, and on SIGINT or
 * SIGTERM (exit 130/143, saved).
 *
 * Owns the checkpoint's metadata (seed, version, model hash, vocabulary,
 * class names) and what a resumed run must keep (the seed, the model).
 * A stop at a NaN or Inf (--check-numerics, RT_NONFINITE) saves nothing:
 * the last checkpoint written, if any, keeps the last good weights.
 * --profile's report (RunModel.report_profile) comes once training has
 * ended, however it ended. With --mpi (or in a program built with it)
 * this is one process of a data-parallel run (docs/distributed.md): all
 * load and train, process 0 alone prints, logs and saves.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "plot.h"
#include "run_internal.h"

int run_train_check(const RunCli *c, const RunTrainOpts *o, const RunModel *m) {
    if (!m->has_loss)
        return run_model_error(m, "the model has no 'loss = ...' statement, so there is nothing "
                                  "to train");
    if (m->data.kind == RUN_DATA_NONE)
        return run_model_error(m, "the train block has no 'data = ...' (csv, idx, npy or text), "
                                  "so %s does not know what to train on",
                               c->built ? "the program" : "gradc");
    if (o->mpi && !m->dist_start)
        return run_error(c, "--mpi: this gradc was built without MPI (install libopenmpi-dev "
                            "and rebuild it; docs/distributed.md)");
    return 0;
}

/* The seed a resumed run must use: the one the checkpoint at path was
 * trained with (its "seed" metadata), which decides the held-out split and
 * the data order. *seed is left alone when the checkpoint does not say; a
 * different --seed is an error. */
static RtStatus resume_seed(const char *path, const RunTrainOpts *o, uint64_t *seed,
                            RtError *err) {
    char *v = NULL;
    if (rt_read_weights_meta(path, "seed", &v, err) != RT_OK)
        return RT_FAIL;
    if (!v)
        return RT_OK;
    int64_t saved;
    RtStatus st = RT_OK;
    if (!run_parse_i64(v, 0, &saved))
        st = rt_fail(err, "%s: corrupt checkpoint: metadata \"seed\" is \"%.40s\"", path, v);
    else if (o->have_seed && (uint64_t)o->seed != (uint64_t)saved)
        st = rt_fail(err, "%s was trained with seed %lld; resuming with --seed %lld would change "
                          "the held-out rows and the data order",
                     path, (long long)saved, (long long)o->seed);
    else
        *seed = (uint64_t)saved;
    free(v);
    return st;
}

/* --resume F must continue a run of this model and optimizer: F's
 * model_hash must be m->hash. A checkpoint without one (an older gradc's)
 * is taken as it is. */
static RtStatus check_resume_hash(const RunCli *c, const char *path, const RunTrainOpts *o,
                                  const RunModel *m, RtError *err) {
    char *v = NULL;
    if (rt_read_weights_meta(path, "model_hash", &v, err) != RT_OK)
        return RT_FAIL;
    RtStatus st = RT_OK;
    if (v && strcmp(v, m->hash) != 0) {
        char whose[600];
        if (c->built)
            snprintf(whose, sizeof whose, "this program's model (%s%s%s)", m->path,
                     m->optimizer ? " with --optimizer " : "", m->optimizer ? m->optimizer : "");
        else
            snprintf(whose, sizeof whose, "%s%s", o->model,
                     o->optimizer ? " with this --optimizer" : "");
        st = rt_fail(err, "'%s' was saved by a different model (or optimizer): its model_hash is "
                          "%.40s, but %s hashes to %s; continuing it would not be the run it "
                          "saved (to start from its weights anyway, use --weights %s)",
                     path, v, whose, m->hash, path);
    }
    free(v);
    return st;
}

/* Where the checkpoints go, what their metadata says, and when one was
 * last written. */
typedef struct Saver {
    const char *path;
    const RunCli *c;
    int nmeta;
    const char *keys[8], *values[8];
    int64_t every;      /* --save-every N; 0: at the end only */
    int64_t saved_step; /* the session's step at the last save; -1: none yet */
    int64_t saved_epoch; /* the session's epoch then */
    bool quiet;
} Saver;

static void saver_add(Saver *sv, const char *key, const char *value) {
    sv->keys[sv->nmeta] = key;
    sv->values[sv->nmeta++] = value;
}

static RtStatus save_now(Saver *sv, const RtSession *s, RtError *err) {
    if (ckpt_save(s, sv->path, sv->nmeta, sv->keys, sv->values, err) != RT_OK)
        return RT_FAIL;
    sv->saved_step = s->step;
    sv->saved_epoch = s->epoch;
    return RT_OK;
}

/* RtTrainConfig.on_epoch for --save-every N: the checkpoint after every
 * N-th epoch (counted over the whole run, resumed or not). */
static RtStatus save_every_epochs(const RtSession *s, const RtEpochStats *e, void *user,
                                  RtError *err) {
    Saver *sv = user;
    (void)e;
    if (s->epoch % sv->every != 0)
        return RT_OK;
    if (save_now(sv, s, err) != RT_OK)
        return RT_FAIL;
    if (!sv->quiet) {
        printf("%s: saved checkpoint to %s (epoch %lld)\n", sv->c->name, sv->path,
               (long long)s->epoch);
        fflush(stdout);
    }
    return RT_OK;
}

/* --plot F.svg: every epoch's figures so far, drawn again after each
 * epoch, so that the chart follows a long run. A failure to write it is a
 * warning (training goes on and its checkpoint is saved) that makes the
 * exit status 1. */
typedef struct Plotter {
    const char *path, *title;
    const RunCli *c;
    RtEpochStats *epochs;
    int n, cap;
    bool failed;
} Plotter;

static void plot_epoch(Plotter *p, const RtEpochStats *e) {
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 64;
        RtEpochStats *ne = realloc(p->epochs, sizeof *ne * (size_t)cap);
        if (!ne) {
            p->failed = true;
            return;
        }
        p->epochs = ne;
        p->cap = cap;
    }
    p->epochs[p->n++] = *e;
    RtError err;
    if (run_plot_write(p->path, p->title, p->n, p->epochs, &err) != RT_OK && !p->failed) {
        fprintf(stderr, "%s: warning: --plot: %s (training goes on)\n", p->c->name, err.msg);
        p->failed = true;
    }
}

/* RtTrainConfig.on_epoch: --save-every and --plot. */
typedef struct EpochHooks {
    Saver *sv;
    Plotter *plot;
} EpochHooks;

static RtStatus on_epoch(const RtSession *s, const RtEpochStats *e, void *user, RtError *err) {
    EpochHooks *h = user;
    if (h->sv->every && save_every_epochs(s, e, h->sv, err) != RT_OK)
        return RT_FAIL;
    if (h->plot->path)
        plot_epoch(h->plot, e);
    return RT_OK;
}

/* --check-numerics stopped training (RT_NONFINITE): where, what made the
 * value (m->explain_nonfinite), and which checkpoint holds the last good
 * weights. Returns RUN_EXIT_USER. */
static int report_nonfinite(const RunCli *c, const RunModel *m, const RtSession *s,
                            const RtEpochStats *last, const Saver *sv) {
    fprintf(stderr, "%s: error: --check-numerics: step %lld (epoch %lld) made a NaN or Inf; "
                    "training stopped before that step's update\n",
            c->name, (long long)last->step, (long long)last->epoch);
    fflush(stderr);
    if (m->explain_nonfinite)
        m->explain_nonfinite(m->explain_user, s, last->bad_kernel, last->bad_batch);
    if (sv->saved_step >= 0)
        fprintf(stderr, "%s: kept the last good checkpoint %s (epoch %lld, step %lld)\n",
                c->name, sv->path, (long long)sv->saved_epoch, (long long)sv->saved_step);
    else
        fprintf(stderr, "%s: no checkpoint was written in this run (none was due before step "
                        "%lld)\n",
                c->name, (long long)last->step);
    return RUN_EXIT_USER;
}

/* The summary line before training. */
static void print_summary(const RunCli *c, const RunModel *m, const RtDataset *data,
                          const RtDist *dist, int64_t batch) {
    const RtModel *rm = m->rm;
    int64_t nvalues = 0;
    for (int i = 0; i < rm->nparams; i++)
        nvalues += rt_numel(&rm->params[i], 1);
    printf("%s: %s: %d parameters (%lld values), %d kernels, ", c->name, m->path, rm->nparams,
           (long long)nvalues, m->nkernels);
    if (c->built)
        printf("built for %s", m->target);
    else
        printf("compiled in %.0f ms", m->compile_ms);
    printf("; %lld rows; OpenBLAS %s", (long long)data->n, rt_blas_corename());
    if (dist && dist->size > 1)
        printf("; %d processes, %lld rows a step each", dist->size, (long long)batch);
    putchar('\n');
}

bool run_train_evaluates(const RunTrainOpts *o) { return !o->quiet || o->log || o->plot; }

int run_train(const RunCli *c, const RunTrainOpts *o, const RunModel *m) {
    int rc = run_train_check(c, o, m);
    if (rc)
        return rc;
    /* A data-parallel run: every process runs all of this, but only
     * process 0 prints, logs and saves. Until training starts, a failure
     * in any process (a file only one of them lacks) is agreed by all
     * (rt_dist_agree) before process 0 reports it. */
    RtDist *dist = NULL;
    bool agreed = false;
    RtError err;
    if (o->mpi || (c->built && m->dist_start)) {
        if (m->dist_start(&dist, &err) != RT_OK)
            return run_error(c, err.msg);
        dist->name = c->name;
    }
    bool lead = !dist || dist->rank == 0;
    rc = RUN_EXIT_USER;
    const RtModel *rm = m->rm;
    RunPool pool = {0};
    RtSession s = {0};
    RtDataset data = {0};
    char *classes = NULL;
    RunKnown known = {0};
    Plotter plot = {.path = o->plot, .c = c};

    rt_setup((int)(o->threads ? o->threads
                              : dist && dist->size > 1 ? rt_dist_threads(dist) : 0));
    uint64_t seed = o->have_seed ? (uint64_t)o->seed : m->seed;
    if (o->resume && (check_resume_hash(c, o->resume, o, m, &err) != RT_OK ||
                      resume_seed(o->resume, o, &seed, &err) != RT_OK))
        goto rt_error;
    if (rt_session_init(&s, rm, seed, &err) != RT_OK)
        goto rt_error;
    /* gradc compiled --lr in; a built program stores it in the rule's
     * hyperparameter, where a session keeps it. */
    if (c->built && o->have_lr && rt_set_hyper(&s, "lr", o->lr, &err) != RT_OK) {
        rt_fail(&err, "--lr: the learning rate of this program's update rule is not a "
                      "constant it can set (a schedule is compiled in); rebuild with gradc "
                      "build %s --optimizer R to change it",
                m->path);
        goto rt_error;
    }
    if (o->resume) {
        if (rt_load_checkpoint(&s, o->resume, &err) != RT_OK)
            goto rt_error;
    } else if (o->weights) {
        if (rt_load_weights(&s, o->weights, &err) != RT_OK)
            goto rt_error;
    } else {
        rt_init_params(&s);
    }
    RtVocab vocab;
    if (run_known_from(o->resume ? o->resume : o->weights, &known, &err) != RT_OK ||
        run_load_data(&pool, m, o->data, NULL, &known, &vocab, &data, &err) != RT_OK)
        goto rt_error;
    RtTrainConfig tc = {
        .epochs = o->epochs > 0 ? (int)o->epochs : m->epochs,
        .steps = o->steps,
        .batch = o->batch > 0 ? o->batch : m->batch,
        .seed = seed,
        .split = o->have_split ? o->split : m->split,
        .log_path = o->log,
        .quiet = o->quiet || !lead,
        .out = stdout,
        .skip_eval = !run_train_evaluates(o),
        .dist = dist,
    };
    if (!lead)
        tc.log_path = NULL;
    /* Every checkpoint carries the seed for --resume, the version and model
     * hash, and for text the vocabulary and context (predict needs them),
     * for string labels the class names (predict --top). */
    Saver sv = {.path = o->save ? o->save : run_printf(&pool, "%s.safetensors", rm->name),
                .c = c, .every = o->save_every, .saved_step = -1, .quiet = o->quiet};
    char sbuf[32], vbuf[RT_VOCAB_STR_MAX], cbuf[32];
    snprintf(sbuf, sizeof sbuf, "%llu", (unsigned long long)seed);
    saver_add(&sv, "seed", sbuf);
    saver_add(&sv, "gradc_version", GRADC_VERSION);
    saver_add(&sv, "model_hash", m->hash);
    if (m->data.kind == RUN_DATA_TEXT) {
        snprintf(cbuf, sizeof cbuf, "%lld", (long long)m->data.context);
        saver_add(&sv, "vocab", rt_vocab_to_string(&vocab, vbuf));
        saver_add(&sv, "context", cbuf);
    }
    if ((classes = ckpt_classes_to_string(data.nclasses, data.class_names)))
        saver_add(&sv, "classes", classes);
    /* An unwritable --plot path is an error before training, not after. */
    plot.title = run_printf(&pool, "%s: training", rm->name);
    RunOut probe;
    if (o->plot && lead) {
        if (run_out_open(o->plot, &probe, &err) != RT_OK)
            goto rt_error;
        run_out_finish(o->plot, &probe, false, &err);
    }
    EpochHooks hooks = {&sv, &plot};
    if (lead && (o->save_every || o->plot)) {
        tc.on_epoch = on_epoch;
        tc.on_epoch_user = &hooks;
    }
    if (dist) {
        /* Every process has what it needs: then all start from process
         * 0's weights, states and counters. */
        agreed = true;
        if (rt_dist_agree(dist, RT_OK, &err) != RT_OK)
            goto rt_error;
        if (rt_dist_broadcast_session(dist, &s, &err) != RT_OK) {
            fprintf(stderr, "%s: error: process %d: %s\n", c->name, dist->rank, err.msg);
            dist->abort(dist, RUN_EXIT_USER);
        }
    }
    if (!o->quiet && lead)
        print_summary(c, m, &data, dist, tc.batch);
    tc.stop = &ckpt_stop_signal;
    RtEpochStats last;
    ckpt_catch_signals(c->name, !lead);
    RtStatus st = rt_train(&s, &data, &tc, &last, &err);
    /* A signal that reached only some processes stopped all of them
     * (rt_train agrees on stops): process 0 reports it as its own. */
    int64_t sig_any = ckpt_stop_signal;
    if (dist && st == RT_OK &&
        dist->allreduce(dist, &sig_any, 1, RT_DIST_I64, RT_DIST_MAX, &err) != RT_OK) {
        fprintf(stderr, "%s: error: process %d: %s\n", c->name, dist->rank, err.msg);
        dist->abort(dist, RUN_EXIT_USER);
    }
    if (st == RT_OK && lead && sv.saved_step != s.step)
        st = save_now(&sv, &s, &err);
    ckpt_release_signals();
    if (m->report_profile && lead)
        m->report_profile(m->profile_user, &s, tc.batch);
    if (st == RT_NONFINITE) {
        rc = report_nonfinite(c, m, &s, &last, &sv);
        goto out;
    }
    if (st != RT_OK)
        goto rt_error;
    int sig = ckpt_stop_signal ? ckpt_stop_signal : (int)sig_any;
    if (!lead) {
        rc = sig && last.stopped ? 128 + sig : 0;
        goto out;
    }
    if (sig) {
        /* 128 + the signal, as a shell reports a process the signal ended:
         * a script looping over runs stops too. */
        if (last.stopped)
            fprintf(stderr, "%s: stopped by %s after step %lld (%lld epochs done); saved the "
                            "checkpoint to %s\n",
                    c->name, ckpt_signal_name(sig), (long long)s.step, (long long)s.epoch,
                    sv.path);
        else
            fprintf(stderr, "%s: %s arrived after the last step; saved the checkpoint to %s\n",
                    c->name, ckpt_signal_name(sig), sv.path);
        fprintf(stderr, "%s: to continue: %s train%s%s --resume %s (with the same options)\n",
                c->name, c->invoke, o->model ? " " : "", o->model ? o->model : "", sv.path);
        rc = 128 + sig;
        goto out;
    }
    if (!o->quiet)
        printf("%s: saved weights to %s\n", c->name, sv.path);
    if (o->plot && !plot.failed && !o->quiet)
        printf("%s: plotted the training curves in %s\n", c->name, o->plot);
    rc = plot.failed ? RUN_EXIT_USER : 0;
    goto out;
rt_error:
    if (dist && !agreed)
        rt_dist_agree(dist, RT_FAIL, &err);
    rc = lead ? run_error(c, err.msg) : RUN_EXIT_USER;
out:
    free(plot.epochs);
    free(classes);
    run_known_free(&known);
    rt_dataset_free(&data);
    if (s.arena)
        rt_session_free(&s);
    run_pool_free(&pool);
    if (dist)
        m->dist_finish(dist);
    return rc;
}
