/* run_predict.c: the predict and eval commands once the model is compiled:
 * trained weights (or the values written in the model), the rows (predict's
 * --input files or the train block's data), and the result: predictions as
 * CSV (or the --top K classes, or generated text) to stdout or a file
 * written atomically; eval's row count, loss and accuracy.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "run_internal.h"

/* Without weights, only a model whose every parameter is written out (=
 * value) predicts or evaluates anything meaningful, and a text model needs
 * the vocabulary its weights carry; else say so. */
static int weights_optional(const RunCli *c, const RunModel *m) {
    bool text = m->data.kind == RUN_DATA_TEXT;
    if (text)
        return run_model_error(m, "--weights is required: a text model's vocabulary is stored "
                                  "with its weights");
    if (m->random_param)
        return run_model_error(m, "--weights is required: parameter '%s' is random until "
                                  "trained (give the file '%s train' saved)",
                               m->random_param, c->invoke);
    return 0;
}

/* ---- predict -------------------------------------------------------------------------- */

int run_predict_check(const RunCli *c, const RunPredictOpts *o, const RunModel *m) {
    bool text = m->data.kind == RUN_DATA_TEXT;
    if (m->noutputs == 0)
        return run_model_error(m, "the model has no 'output' statement, so there is nothing to "
                                  "predict");
    if (text && !o->prompt)
        return run_model_error(m, "the model is trained on text(...) data; give --prompt S to "
                                  "generate text");
    if (!text && o->prompt)
        return run_model_error(m, "--prompt generates text, but the model is not trained on "
                                  "text(...) data");
    if (!text && o->ninputs == 0 && m->data.kind == RUN_DATA_NONE)
        return run_model_error(m, "no --input given and the train block names no data");
    if (!o->weights)
        return weights_optional(c, m);
    return 0;
}

/* Text generation from --prompt with the vocabulary in the weights. */
static RtStatus generate(const RunModel *m, const RunPredictOpts *o, RtSession *s, FILE *out,
                         RtError *err) {
    RtVocab v;
    bool found;
    if (run_weights_vocab(o->weights, &v, &found, err) != RT_OK)
        return RT_FAIL;
    if (!found)
        return rt_fail(err, "%s: these weights were not trained on text data (their metadata "
                            "has no vocabulary)",
                       o->weights);
    int64_t context = m->data.context;
    char *c = NULL;
    if (rt_read_weights_meta(o->weights, "context", &c, err) != RT_OK)
        return RT_FAIL;
    if (c && strtoll(c, NULL, 10) != context) {
        rt_fail(err, "%s: these weights were trained with a context of %s characters, but the "
                     "model's train block says %lld",
                o->weights, c, (long long)context);
        free(c);
        return RT_FAIL;
    }
    free(c);
    if (rt_generate(s, &v, context, o->prompt, o->length, o->temperature, out, err) != RT_OK)
        return RT_FAIL;
    fputc('\n', out);
    return RT_OK;
}

/* --top K: each row's most likely classes, named by the weights' "classes"
 * metadata (string labels at training) when they have it, else by id. */
static RtStatus predict_top(const RunPredictOpts *o, RtSession *s, const RtDataset *data,
                            FILE *out, RtError *err) {
    RunKnown known;
    if (run_known_from(o->weights, &known, err) != RT_OK)
        return RT_FAIL;
    RtStatus st = rt_predict_top(s, data, o->top, known.nclasses, known.classes, out, err);
    run_known_free(&known);
    return st;
}

int run_predict(const RunCli *c, const RunPredictOpts *o, const RunModel *model) {
    int rc = run_predict_check(c, o, model);
    if (rc)
        return rc;
    rc = RUN_EXIT_USER;
    RunPool pool = {0};
    RtSession s = {0};
    RtDataset data = {0};
    RtError err;
    RunOut out = {0};
    bool text = model->data.kind == RUN_DATA_TEXT;
    /* Rows per run of the predict program: --batch (gradc compiled for it). */
    RunModel mm = *model;
    mm.rm = run_batch_model(&pool, model->rm, o->batch);
    const RunModel *m = &mm;

    rt_setup((int)o->threads);
    if (rt_session_init(&s, m->rm, (uint64_t)o->seed, &err) != RT_OK)
        goto rt_error;
    if (!o->weights)
        rt_init_params(&s); /* every value is written in the model */
    else if (rt_load_weights(&s, o->weights, &err) != RT_OK)
        goto rt_error;
    if (!text) {
        RtStatus st = o->ninputs
                          ? run_load_inputs(&pool, m, o->ninputs, o->inputs, &data, &err)
                          : run_load_data(&pool, m, NULL, m->need, NULL, NULL, &data, &err);
        if (st != RT_OK)
            goto rt_error;
    }
    if (run_out_open(o->output, &out, &err) != RT_OK)
        goto rt_error;
    RtStatus st = text     ? generate(m, o, &s, out.f, &err)
                  : o->top ? predict_top(o, &s, &data, out.f, &err)
                           : rt_predict(&s, &data, out.f, &err);
    if (run_out_finish(o->output, &out, st == RT_OK, &err) != RT_OK || st != RT_OK)
        goto rt_error;
    if (o->output && !o->quiet) {
        if (text)
            printf("%s: wrote %lld generated characters to %s\n", c->name, (long long)o->length,
                   o->output);
        else
            printf("%s: wrote predictions for %lld rows to %s\n", c->name, (long long)data.n,
                   o->output);
    }
    rc = 0;
    goto out;
rt_error:
    rc = run_error(c, err.msg);
out:
    rt_dataset_free(&data);
    if (s.arena)
        rt_session_free(&s);
    run_pool_free(&pool);
    return rc;
}

/* ---- eval ------------------------------------------------------------------------------- */

int run_eval_check(const RunCli *c, const RunEvalOpts *o, const RunModel *m) {
    if (!m->has_loss)
        return run_model_error(m, "the model has no 'loss = ...' statement, so there is nothing "
                                  "to evaluate");
    if (m->data.kind == RUN_DATA_NONE)
        return run_model_error(m, "the train block has no 'data = ...', so %s does not know how "
                                  "to read the rows to evaluate",
                               c->built ? "the program" : "gradc");
    if (!o->weights)
        return weights_optional(c, m);
    return 0;
}

int run_eval(const RunCli *c, const RunEvalOpts *o, const RunModel *model) {
    int rc = run_eval_check(c, o, model);
    if (rc)
        return rc;
    rc = RUN_EXIT_USER;
    RunPool pool = {0};
    RtSession s = {0};
    RtDataset data = {0};
    RtError err;
    int64_t *rows = NULL;
    RunKnown known = {0};
    bool text = model->data.kind == RUN_DATA_TEXT;
    RunModel mm = *model;
    mm.rm = run_batch_model(&pool, model->rm, o->batch);
    const RunModel *m = &mm;

    rt_setup((int)o->threads);
    if (rt_session_init(&s, m->rm, 0, &err) != RT_OK)
        goto rt_error;
    if (!o->weights)
        rt_init_params(&s); /* every value is written in the model */
    else if (rt_load_weights(&s, o->weights, &err) != RT_OK)
        goto rt_error;
    RtVocab vocab;
    if (run_known_from(o->weights, &known, &err) != RT_OK)
        goto rt_error;
    if (text && !known.have_vocab) {
        rt_fail(&err, "%s: these weights were not trained on text data (their metadata has no "
                      "vocabulary)", o->weights);
        goto rt_error;
    }
    if (run_load_data(&pool, m, o->data, NULL, &known, &vocab, &data, &err) != RT_OK)
        goto rt_error;
    if (!(rows = malloc(sizeof *rows * (size_t)(data.n > 0 ? data.n : 1)))) {
        rt_fail(&err, "out of memory for %lld rows", (long long)data.n);
        goto rt_error;
    }
    for (int64_t i = 0; i < data.n; i++)
        rows[i] = i;
    double loss, accuracy;
    if (rt_evaluate(&s, &data, rows, data.n, &loss, &accuracy, &err) != RT_OK)
        goto rt_error;
    if (!o->quiet) {
        printf("%s: %s: ", c->name, m->path);
        if (c->built)
            printf("eval program built for %s", m->target);
        else
            printf("eval program compiled in %.0f ms", m->compile_ms);
        printf("; weights %s; OpenBLAS %s\n", o->weights ? o->weights : "(written in the model)",
               rt_blas_corename());
    }
    printf("rows      %lld\n", (long long)data.n);
    printf("loss      %.6g\n", loss);
    if (!isnan(accuracy))
        printf("accuracy  %.2f%%\n", 100 * accuracy);
    rc = 0;
    goto out;
rt_error:
    rc = run_error(c, err.msg);
out:
    free(rows);
    run_known_free(&known);
    rt_dataset_free(&data);
    if (s.arena)
        rt_session_free(&s);
    run_pool_free(&pool);
    return rc;
}
