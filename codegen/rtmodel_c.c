/* rtmodel_c.c: an RtModel written out as C source, for ahead-of-time builds.
 *
 * The JIT hands the runtime an RtModel in memory; a built program or library
 * needs the same description compiled in. This writes it as constant C
 * tables that include runtime/rt.h, with the program entry points as extern
 * functions defined by the object file cg_emit_object writes. Owns only the
 * text: no LLVM, no compiler invocation (the driver links).
 */
#include "rtmodel.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

void cg_put_c_string(FILE *f, const char *s) {
    if (!s) {
        fputs("NULL", f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p >= 0x20 && *p < 0x7f && *p != '?') /* '?': no trigraphs */
            fputc(*p, f);
        else
            fprintf(f, "\\%03o", *p);
    }
    fputc('"', f);
}

/* A double that reads back exactly (hex float; infinities and NaN by name). */
static void put_double(FILE *f, double v) {
    if (isnan(v))
        fputs("NAN", f);
    else if (isinf(v))
        fputs(v > 0 ? "INFINITY" : "-INFINITY", f);
    else
        fprintf(f, "%a", v);
}

static void put_tensor(FILE *f, const RtTensor *t) {
    fputs("{", f);
    cg_put_c_string(f, t->name);
    fprintf(f, ", %s, %d, {", t->dtype == RT_INT ? "RT_INT" : "RT_FLOAT", t->rank);
    for (int i = 0; i < RT_MAX_RANK; i++)
        fprintf(f, "%s%" PRId64, i ? ", " : "", i < t->rank ? t->dims[i] : (int64_t)0);
    fprintf(f, "}, %zu, %" PRId64 "}", t->offset, t->limit);
}

static void put_tensors(FILE *f, const char *var, const RtTensor *ts, int n) {
    fprintf(f, "static const RtTensor %s[%d] = {\n", var, n ? n : 1);
    for (int i = 0; i < n; i++) {
        fputs("    ", f);
        put_tensor(f, &ts[i]);
        fputs(",\n", f);
    }
    fputs("};\n", f);
}

/* The inits, with the literal values of INIT_VALUES as arrays of their own. */
static void put_inits(FILE *f, const char *var, const RtInit *in, int n) {
    for (int i = 0; i < n; i++) {
        if (in[i].kind != RT_INIT_VALUES)
            continue;
        fprintf(f, "static const double %s_values%d[%" PRId64 "] = {", var, i, in[i].nvalues);
        for (int64_t k = 0; k < in[i].nvalues; k++) {
            fputs(k == 0 ? "\n    " : k % 4 ? ", " : ",\n    ", f);
            put_double(f, in[i].values[k]);
        }
        fputs("\n};\n", f);
    }
    static const char *const kinds[] = {"RT_INIT_CONST",   "RT_INIT_VALUES", "RT_INIT_NORMAL",
                                        "RT_INIT_UNIFORM", "RT_INIT_GLOROT", "RT_INIT_HE"};
    fprintf(f, "static const RtInit %s[%d] = {\n", var, n ? n : 1);
    for (int i = 0; i < n; i++) {
        fprintf(f, "    {%s, ", kinds[in[i].kind]);
        put_double(f, in[i].a);
        fputs(", ", f);
        put_double(f, in[i].b);
        if (in[i].kind == RT_INIT_VALUES)
            fprintf(f, ", %s_values%d, %" PRId64 "},\n", var, i, in[i].nvalues);
        else
            fputs(", NULL, 0},\n", f);
    }
    fputs("};\n", f);
}

static void put_roots(FILE *f, const char *var, const RtProgram *p) {
    char roots[300];
    snprintf(roots, sizeof roots, "%s_roots", var);
    put_tensors(f, roots, p->roots, p->nroots);
}

static const char *const program_fields[PROG_COUNT] = {
    [PROG_TRAIN] = "train", [PROG_GRAD] = "grad", [PROG_EVAL] = "eval",
    [PROG_PREDICT] = "predict"};

void cg_write_rt_model_c(FILE *f, const RtModel *m, const char *const fn_names[PROG_COUNT],
                         const char *var) {
    char name[256];
    gc_assert(strlen(var) < 200);
    fprintf(f, "/* The compiled model %s, written by gradc build. */\n", m->name);
    for (int k = 0; k < PROG_COUNT; k++)
        if (fn_names[k])
            fprintf(f, "extern void %s(void *arena, int64_t batch);\n", fn_names[k]);

    snprintf(name, sizeof name, "%s_params", var);
    put_tensors(f, name, m->params, m->nparams);
    snprintf(name, sizeof name, "%s_inits", var);
    put_inits(f, name, m->inits, m->nparams);
    snprintf(name, sizeof name, "%s_inputs", var);
    put_tensors(f, name, m->inputs, m->ninputs);
    snprintf(name, sizeof name, "%s_hypers", var);
    put_tensors(f, name, m->hypers, m->nhypers);
    fprintf(f, "static const double %s_hyper_defaults[%d] = {", var, m->nhypers ? m->nhypers : 1);
    for (int i = 0; i < m->nhypers; i++) {
        fputs(i ? ", " : "", f);
        put_double(f, m->hyper_defaults[i]);
    }
    fputs("};\n", f);
    static const char *const hk[] = {"RT_HYPER_VALUE", "RT_HYPER_STEP", "RT_HYPER_EPOCH",
                                     "RT_HYPER_EPOCHS", "RT_HYPER_RNG"};
    fprintf(f, "static const RtHyperKind %s_hyper_kinds[%d] = {", var,
            m->nhypers ? m->nhypers : 1);
    for (int i = 0; i < m->nhypers; i++)
        fprintf(f, "%s%s", i ? ", " : "", hk[m->hyper_kinds ? m->hyper_kinds[i] : 0]);
    fputs("};\n", f);
    snprintf(name, sizeof name, "%s_states", var);
    put_tensors(f, name, m->states, m->nstates);
    snprintf(name, sizeof name, "%s_state_inits", var);
    put_inits(f, name, m->state_inits, m->nstates);
    fprintf(f, "static const int %s_state_param[%d] = {", var, m->nstates ? m->nstates : 1);
    for (int i = 0; i < m->nstates; i++)
        fprintf(f, "%s%d", i ? ", " : "", m->state_param[i]);
    fputs("};\n", f);

    const RtProgram *progs[PROG_COUNT] = {[PROG_TRAIN] = &m->train, [PROG_GRAD] = &m->grad,
                                          [PROG_EVAL] = &m->eval, [PROG_PREDICT] = &m->predict};
    for (int k = 0; k < PROG_COUNT; k++) {
        snprintf(name, sizeof name, "%s_%s", var, program_fields[k]);
        put_roots(f, name, progs[k]);
    }

    static const char *const metrics[] = {"RT_METRIC_NONE", "RT_METRIC_ARGMAX",
                                          "RT_METRIC_THRESHOLD"};
    fprintf(f, "const RtModel %s = {\n", var);
    fputs("    .name = ", f);
    cg_put_c_string(f, m->name);
    fprintf(f, ",\n    .elem_size = %d,\n    .max_batch = %" PRId64 ",\n    .arena_bytes = %zu,\n",
            m->elem_size, m->max_batch, m->arena_bytes);
    fprintf(f, "    .nparams = %d, .params = %s_params, .inits = %s_inits,\n", m->nparams, var, var);
    fprintf(f, "    .ninputs = %d, .inputs = %s_inputs,\n", m->ninputs, var);
    fprintf(f, "    .nhypers = %d, .hypers = %s_hypers, .hyper_defaults = %s_hyper_defaults,\n",
            m->nhypers, var, var);
    fprintf(f, "    .hyper_kinds = %s_hyper_kinds,\n", var);
    fprintf(f, "    .nstates = %d, .states = %s_states, .state_inits = %s_state_inits, "
               ".state_param = %s_state_param,\n",
            m->nstates, var, var, var);
    for (int k = 0; k < PROG_COUNT; k++)
        fprintf(f, "    .%s = {%s, %d, %s_%s_roots},\n", program_fields[k],
                fn_names[k] ? fn_names[k] : "NULL", progs[k]->nroots, var, program_fields[k]);
    fprintf(f, "    .train_lr_root = %d,\n", m->train_lr_root);
    fprintf(f, "    .metric = %s, .metric_label = %d, .metric_threshold = ", metrics[m->metric],
            m->metric_label);
    put_double(f, m->metric_threshold);
    if (m->nonfinite_status)
        fprintf(f, ",\n    .nonfinite_status = %zu", m->nonfinite_status);
    if (m->profile_counters)
        fprintf(f, ",\n    .profile_counters = %zu, .profile_kernels = %d", m->profile_counters,
                m->profile_kernels);
    if (m->data_parallel)
        fprintf(f, ",\n    .data_parallel = true, .train_grad_root = %d", m->train_grad_root);
    fputs(",\n};\n", f);
}
