/* build_lib.c: `gradc build M.nn --lib -o NAME`: the model as a C library,
 * NAME.o and NAME.h, for someone else's program to train and run it.
 *
 * NAME.h is a documented C API named after NAME (NAME_create, NAME_load,
 * NAME_save, NAME_train_step, NAME_evaluate, NAME_predict, NAME_error,
 * NAME_free, ...), one typed argument per model input and output.
 * NAME.o is one relocatable object: the model's code (the object file
 * cg_emit_object wrote, its entry points renamed so that they cannot meet
 * the API's names), its description (cg_write_rt_model_c) and the wrappers
 * behind NAME.h (written here, calling runtime/embed.c), and the whole
 * runtime (libgradc_rt.a), joined by `ld -r`; then objcopy makes every
 * symbol local except the API's. So each library carries a private copy of
 * the runtime, and the libraries of two models (or two builds of one) link
 * into one program side by side. Left undefined, for the user's link:
 * OpenBLAS, zlib, libm and libc (`cc app.c NAME.o -lopenblas -lz -lm`).
 *
 * Owns the generated text and the steps that compile and link it; the
 * artefacts land beside the -o path atomically (a temporary file, then
 * rename). Must not run the model, and must not print: errors go to err.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "build.h"
#include "compile.h"
#include "timing.h"

/* ---- the tools ------------------------------------------------------------------
 * build.c finds the C compiler, the runtime and its headers, and runs
 * commands; the binutils are $OBJCOPY and $LD, else objcopy and ld. */

static const char *tool(const char *env, const char *dflt) {
    const char *v = getenv(env);
    return v && *v ? v : dflt;
}


/* ---- names ------------------------------------------------------------------------ */

/* C11 keywords, C++ ones (NAME.h is for C++ programs too) and the type
 * names NAME.h uses: neither the library nor an argument may be named so. */
static bool is_keyword(const char *s) {
    static const char *const words[] = {
        "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
        "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
        "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch",
        "typedef", "union", "unsigned", "void", "volatile", "while", "_Alignas", "_Alignof",
        "_Atomic", "_Bool", "_Complex", "_Generic", "_Imaginary", "_Noreturn", "_Static_assert",
        "_Thread_local", "bool", "true", "false", "class", "delete", "new", "this", "template",
        "typename", "namespace", "operator", "private", "protected", "public", "virtual",
        "friend", "throw", "try", "catch", "using", "mutable", "explicit", "export", "and",
        "or", "not", "xor", "asm", "NULL", "int32_t", "int64_t", "uint64_t", "size_t"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (strcmp(s, words[i]) == 0)
            return true;
    return false;
}

static bool is_ident(const char *s) {
    if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
        return false;
    for (; *s; s++)
        if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9')))
            return false;
    return true;
}

static char *upper(Arena *a, const char *s) {
    char *u = arena_strdup(a, s);
    for (char *p = u; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    return u;
}

/* Names already used in one scope (parameters, or enum constants, which
 * compare without case so that x and X do not both become NAME_X_SIZE). */
typedef struct Taken {
    Vec(const char *) names;
    bool nocase;
} Taken;

static bool taken(const Taken *t, const char *s) {
    for (int i = 0; i < t->names.len; i++)
        if (t->nocase ? !strcasecmp(t->names.items[i], s) : !strcmp(t->names.items[i], s))
            return true;
    return false;
}

/* want as a C identifier not yet in t (characters outside [A-Za-z0-9_]
 * become '_'; a keyword or a name taken gets '_' appended), added to t. */
static const char *unique_ident(Arena *a, Taken *t, const char *want) {
    char *s = arena_printf(a, "%s%s", want[0] >= '0' && want[0] <= '9' ? "_" : "",
                           *want ? want : "_");
    for (char *p = s; *p; p++)
        if (!(*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9')))
            *p = '_';
    while (is_keyword(s) || taken(t, s))
        s = arena_printf(a, "%s_", s);
    vec_push(a, &t->names, s);
    return s;
}

/* ---- the library's shape ------------------------------------------------------------ */

typedef struct Lib {
    const BuildModel *b;
    Arena *a;
    const RtModel *rm;
    const char *name;  /* NAME: a C identifier */
    const char *out_arg; /* the -o argument */
    const char *up;    /* NAME in capitals: the prefix of its constants */
    const char *self;  /* the instance parameter: "m" */
    const char **in;   /* per input: its C parameter name */
    const char **in_k; /* per input: its constants' middle part ("X" of CIRCLE_X_SIZE) */
    const char **out, **out_k; /* the same per output (predict roots) */
    bool *need;        /* per input: read by the outputs */
    int nneed;
    bool train, eval, predict; /* which programs the object has */
    const char *fn[PROG_COUNT]; /* the entry points, renamed */
    char hash[CKPT_HASH_LEN];
} Lib;

static bool batch_first(const RtTensor *t) {
    if (t->rank < 1 || t->dims[0] != RT_DIM_BATCH)
        return false;
    for (int i = 1; i < t->rank; i++)
        if (t->dims[i] == RT_DIM_BATCH)
            return false;
    return true;
}

/* "[B, 2]" */
static const char *dims_str(Arena *a, const RtTensor *t) {
    char buf[160];
    size_t len = (size_t)snprintf(buf, sizeof buf, "[");
    for (int i = 0; i < t->rank && len < sizeof buf; i++) {
        if (t->dims[i] == RT_DIM_BATCH)
            len += (size_t)snprintf(buf + len, sizeof buf - len, "%sB", i ? ", " : "");
        else
            len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%lld", i ? ", " : "",
                                    (long long)t->dims[i]);
    }
    if (len < sizeof buf)
        snprintf(buf + len, sizeof buf - len, "]");
    return arena_strdup(a, buf);
}

static const char *c_type(const Lib *L, const RtTensor *t) {
    return t->dtype == RT_INT ? "int32_t" : L->rm->elem_size == 4 ? "float" : "double";
}

/* The array a tensor's argument points to, for n rows: "float[n * 2]",
 * "int32_t[n]", or for an output without a batch axis "float[4]". */
static const char *array_str(const Lib *L, const RtTensor *t) {
    int64_t per = rt_numel(t, 1);
    if (!batch_first(t))
        return arena_printf(L->a, "%s[%lld]", c_type(L, t), (long long)per);
    if (per == 1)
        return arena_printf(L->a, "%s[n]", c_type(L, t));
    return arena_printf(L->a, "%s[n * %lld]", c_type(L, t), (long long)per);
}

/* Check what the library needs of the model, and name everything. */
static RtStatus plan_lib(Lib *L, RtError *err) {
    const RtModel *rm = L->rm;
    const Graph *g = L->b->g;
    if (g->inputs.len != rm->ninputs || g->outputs.len != rm->predict.nroots)
        return rt_fail(err, "model '%s': the graph and its description disagree", rm->name);
    for (int i = 0; i < rm->ninputs; i++)
        if (!batch_first(&rm->inputs[i]))
            return rt_fail(err, "input '%s' %s does not have the batch as its first axis only; "
                                "the library takes inputs row by row",
                           rm->inputs[i].name, dims_str(L->a, &rm->inputs[i]));
    for (int r = 0; r < rm->predict.nroots; r++) {
        const RtTensor *t = &rm->predict.roots[r];
        for (int k = 1; k < t->rank; k++)
            if (t->dims[k] == RT_DIM_BATCH)
                return rt_fail(err, "output '%s' %s has its batch dimension after the first "
                                    "axis; the library returns outputs row by row",
                               t->name, dims_str(L->a, t));
    }
    static const char *const progs[PROG_COUNT] = {"train", "grad", "eval", "predict"};
    for (int k = 0; k < PROG_COUNT; k++)
        if (L->b->fn_names[k])
            L->fn[k] = arena_printf(L->a, "gradc_%s__%s", L->name, progs[k]);
    L->train = L->fn[PROG_TRAIN] && rm->train.nroots > 0;
    L->eval = L->fn[PROG_EVAL] && rm->eval.nroots > 0;
    L->predict = L->fn[PROG_PREDICT] && rm->predict.nroots > 0;
    if (!L->train && !L->predict)
        return rt_fail(err, "model '%s' has neither a loss to train nor an output to predict",
                       rm->name);

    /* Parameter names: the instance, n and the result pointers are taken.
     * Constants: every one but the fixed few ends in _SIZE or _LIMIT. */
    Taken params = {0}, consts = {.nocase = true};
    L->self = strcmp(L->name, "m") ? "m" : "self";
    static const char *const fixed[] = {"n", "loss", "accuracy"};
    vec_push(L->a, &params.names, L->name);
    vec_push(L->a, &params.names, L->self);
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        vec_push(L->a, &params.names, fixed[i]);
    size_t ni = (size_t)rm->ninputs + 1, no = (size_t)rm->predict.nroots + 1;
    L->in = arena_alloc(L->a, sizeof *L->in * ni);
    L->in_k = arena_alloc(L->a, sizeof *L->in_k * ni);
    L->out = arena_alloc(L->a, sizeof *L->out * no);
    L->out_k = arena_alloc(L->a, sizeof *L->out_k * no);
    for (int i = 0; i < rm->ninputs; i++) {
        L->in[i] = unique_ident(L->a, &params, rm->inputs[i].name);
        L->in_k[i] = unique_ident(L->a, &consts, upper(L->a, L->in[i]));
    }
    for (int r = 0; r < rm->predict.nroots; r++) {
        L->out[r] = unique_ident(L->a, &params, rm->predict.roots[r].name);
        L->out_k[r] = unique_ident(L->a, &consts, upper(L->a, L->out[r]));
    }
    L->need = inputs_needed(L->a, g);
    for (int i = 0; i < rm->ninputs; i++)
        L->nneed += L->need[i];
    if (L->b->hash)
        snprintf(L->hash, sizeof L->hash, "%s", L->b->hash);
    else
        ckpt_model_hash(L->b->a, L->b->m->src, L->b->optimizer, L->hash);
    return RT_OK;
}

/* ---- NAME.h ------------------------------------------------------------------------- */

/* One line per input (all, or those with need) or output: name, array,
 * what it is. */
static void doc_arrays(FILE *f, const Lib *L, bool inputs, bool only_needed) {
    const RtModel *rm = L->rm;
    int n = inputs ? rm->ninputs : rm->predict.nroots;
    for (int i = 0; i < n; i++) {
        if (inputs && only_needed && !L->need[i])
            continue;
        const RtTensor *t = inputs ? &rm->inputs[i] : &rm->predict.roots[i];
        fprintf(f, " *   %-8s %-18s %s %s %s", inputs ? L->in[i] : L->out[i], array_str(L, t),
                inputs ? "input" : "output", t->name, dims_str(L->a, t));
        if (t->dtype == RT_INT && t->limit > 0)
            fprintf(f, ", values in [0, %lld)", (long long)t->limit);
        if (!inputs && !batch_first(t))
            fputs(" (no batch axis: written once)", f);
        fputs("\n", f);
    }
}

/* ", const float *x, const int32_t *y" */
static void args(FILE *f, const Lib *L, bool inputs, bool only_needed) {
    const RtModel *rm = L->rm;
    int n = inputs ? rm->ninputs : rm->predict.nroots;
    for (int i = 0; i < n; i++) {
        if (inputs && only_needed && !L->need[i])
            continue;
        const RtTensor *t = inputs ? &rm->inputs[i] : &rm->predict.roots[i];
        fprintf(f, ", %s%s *%s", inputs ? "const " : "", c_type(L, t),
                inputs ? L->in[i] : L->out[i]);
    }
}

/* words as comment lines, wrapped before column 80: the first line starts
 * " * <first>", the others " * <indent>". */
static void comment_wrap(FILE *f, const char *first, const char *indent, const char *words) {
    int col = 0;
    bool first_line = true;
    const char *p = words;
    while (*p) {
        while (*p == ' ')
            p++;
        size_t k = strcspn(p, " ");
        if (!k)
            break;
        if (col && col + 1 + (int)k > 78) {
            fputs("\n", f);
            col = 0;
            first_line = false;
        }
        if (!col)
            col = fprintf(f, " * %s%.*s", first_line ? first : indent, (int)k, p);
        else
            col += fprintf(f, " %.*s", (int)k, p);
        p += k;
    }
    if (col)
        fputs("\n", f);
}

/* One enum constant "    NAME = value," with a comment after it, aligned
 * at column `at`. */
static void enum_line(FILE *f, int at, const char *name, long long value, const char *comment) {
    int col = fprintf(f, "    %s = %lld,", name, value);
    if (comment)
        fprintf(f, "%*s/* %s */", col < at ? at - col : 1, "", comment);
    fputs("\n", f);
}

static void write_header(FILE *f, const Lib *L) {
    const RtModel *rm = L->rm;
    const BuildModel *b = L->b;
    const char *N = L->name, *U = L->up, *m = L->self, *src = b->m->src->path;
    fprintf(f, "/* %s.h: the C library of the model '%s' (%s),\n", N, rm->name, src);
    fprintf(f, " * written by gradc %s: gradc build %s --lib -o %s\n", GRADC_VERSION, src,
            L->out_arg);
    fprintf(f, " *\n * Link: cc app.c %s.o -lopenblas -lz -lm\n *\n", N);
    const char *needs = "";
    for (int i = 0; b->cpu_features && b->cpu_features[i]; i++)
        needs = arena_printf(L->a, "%s%s%s", needs, i ? " " : " (it needs the x86 features ",
                             b->cpu_features[i]);
    comment_wrap(f, "", "",
                 arena_printf(L->a,
                              "%s.o holds the model's code, compiled for the %s target%s%s, "
                              "its own copy of the gradc runtime, and no global symbol but "
                              "the %s_* functions below: it links beside other models' "
                              "libraries.",
                              N, b->target, needs, *needs ? ")" : "", N));
    fputs(" *\n * Rules:\n", f);
    comment_wrap(f, "- ", "  ",
                 arena_printf(L->a,
                              "An instance (%s *) holds the parameters, the optimizer state "
                              "and the step count. Instances are independent: any number of "
                              "them, of this and other models, may exist at once, and "
                              "different instances may run on different threads. One "
                              "instance must not be used by two threads at the same time.",
                              N));
    comment_wrap(f, "- ", "  ",
                 "Every array is the caller's: the library reads the inputs and writes the "
                 "outputs during the call and keeps no pointer to them. An array holds n "
                 "rows packed row-major: row r of an input with k values per row starts at "
                 "element r * k.");
    comment_wrap(f, "- ", "  ",
                 arena_printf(L->a,
                              "Functions that return int return %s_OK (0) or an error code "
                              "below; %s_error then says what went wrong, naming the input "
                              "and the row where there is one. The library never prints "
                              "and never exits.",
                              U, N));
    comment_wrap(f, "- ", "  ",
                 arena_printf(L->a, "%s.o calls OpenBLAS, zlib, libm and libc, nothing else.",
                              N));
    fputs(" *\n * The model's arrays (n rows each; rows count from 0):\n", f);
    doc_arrays(f, L, true, false);
    doc_arrays(f, L, false, false);
    /* The hyperparameters a caller may set. */
    const char *hyp = "";
    for (int i = 0; i < rm->nhypers; i++) {
        RtHyperKind k = rm->hyper_kinds ? rm->hyper_kinds[i] : RT_HYPER_VALUE;
        if (k != RT_HYPER_VALUE || rm->hypers[i].dtype != RT_FLOAT)
            continue;
        hyp = arena_printf(L->a, "%s%s%s = %.9g", hyp, *hyp ? ", " : "", rm->hypers[i].name,
                           rm->hyper_defaults ? rm->hyper_defaults[i] : 0.0);
    }
    if (*hyp) {
        fprintf(f, " *\n * Hyperparameters (%s_set_hyper) and their values:\n", N);
        comment_wrap(f, "  ", "  ", hyp);
    }
    fputs(" */\n", f);
    fprintf(f, "#ifndef %s_H\n#define %s_H\n\n#include <stdint.h>\n\n", U, U);
    fputs("#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n", f);
    fprintf(f, "/* One instance of the model; opaque. */\ntypedef struct %s %s;\n\n", N, N);

    fprintf(f, "/* What the int functions return. */\nenum {\n"
               "    %s_OK = 0,\n"
               "    /* A bad argument: n out of range, a NULL array, an id out of range, a\n"
               "     * NaN or infinite value. Nothing was changed. */\n"
               "    %s_EINVAL = 1,\n"
               "    /* A weight file cannot be read or written, or does not fit the model. */\n"
               "    %s_EIO = 2,\n"
               "    /* Out of memory. */\n"
               "    %s_ENOMEM = 3,\n"
               "    /* The loss became NaN or infinite: the step spoilt the parameters\n"
               "     * (load saved weights to go on). */\n"
               "    %s_ELOSS = 4,\n"
               "    /* This CPU lacks an instruction set %s.o was compiled for. */\n"
               "    %s_ECPU = 5,\n"
               "};\n\n",
            U, U, U, U, U, N, U);

    /* The sizes, comments aligned. */
    int at = (int)strlen(U) + 26;
    for (int i = 0; i < rm->ninputs; i++)
        if ((int)(strlen(U) + strlen(L->in_k[i])) + 20 > at)
            at = (int)(strlen(U) + strlen(L->in_k[i])) + 20;
    for (int r = 0; r < rm->predict.nroots; r++)
        if ((int)(strlen(U) + strlen(L->out_k[r])) + 20 > at)
            at = (int)(strlen(U) + strlen(L->out_k[r])) + 20;
    fputs("/* Sizes. */\nenum {\n", f);
    enum_line(f, at, arena_printf(L->a, "%s_MAX_BATCH", U), (long long)rm->max_batch,
              arena_printf(L->a, "rows per %s_train_step, at most", N));
    enum_line(f, at, arena_printf(L->a, "%s_NUM_INPUTS", U), rm->ninputs, NULL);
    enum_line(f, at, arena_printf(L->a, "%s_NUM_OUTPUTS", U), rm->predict.nroots, NULL);
    for (int i = 0; i < rm->ninputs; i++) {
        const RtTensor *t = &rm->inputs[i];
        enum_line(f, at, arena_printf(L->a, "%s_%s_SIZE", U, L->in_k[i]),
                  (long long)rt_numel(t, 1),
                  arena_printf(L->a, "values per row of %s", L->in[i]));
        if (t->dtype == RT_INT && t->limit > 0)
            enum_line(f, at, arena_printf(L->a, "%s_%s_LIMIT", U, L->in_k[i]),
                      (long long)t->limit,
                      arena_printf(L->a, "%s's values lie in [0, %s_%s_LIMIT)", L->in[i], U,
                                   L->in_k[i]));
    }
    for (int r = 0; r < rm->predict.nroots; r++)
        enum_line(f, at, arena_printf(L->a, "%s_%s_SIZE", U, L->out_k[r]),
                  (long long)rt_numel(&rm->predict.roots[r], 1),
                  arena_printf(L->a, "values per row of %s", L->out[r]));
    fputs("};\n\n", f);

    fprintf(f,
            "/* A new instance, its parameters and optimizer state initialised as the\n"
            " * model says, from seed (the same seed gives the same values; gradc train\n"
            " * --seed S starts from the same ones). NULL only when out of memory. On a\n"
            " * CPU without the instruction sets %s.o needs, every call on the\n"
            " * instance returns %s_ECPU and %s_error says which one is missing. */\n"
            "%s *%s_create(uint64_t seed);\n\n",
            N, U, N, N, N);
    fprintf(f, "/* Free the instance and everything it holds; NULL is a no-op. */\n"
               "void %s_free(%s *%s);\n\n",
            N, N, m);
    fprintf(f, "/* Why the last call that failed on this instance failed (\"\" before any\n"
               " * failure); valid until the instance is freed. */\n"
               "const char *%s_error(const %s *%s);\n\n",
            N, N, m);
    fprintf(f, "/* Optional, process-wide: make OpenBLAS use its fastest kernels for this\n"
               " * CPU (as gradc train does) and use `threads` threads (0: OpenBLAS's\n"
               " * choice). Call it once, before any instance runs. */\n"
               "void %s_setup(int threads);\n\n",
            N);
    fprintf(f,
            "/* Load weights from a safetensors file: a checkpoint that %s_save or\n"
            " * gradc train wrote (parameters, optimizer state, step count and RNG), or\n"
            " * any file with every parameter under its name and shape. All or nothing:\n"
            " * on failure (%s_EIO) the instance is unchanged. */\n"
            "int %s_load(%s *%s, const char *path);\n\n",
            N, U, N, N, m);
    fprintf(f,
            "/* Save a checkpoint (parameters, optimizer state, step, RNG) to path as\n"
            " * safetensors, atomically: a crash leaves the previous file intact.\n"
            " * gradc predict and gradc eval %s --weights path read it too. */\n"
            "int %s_save(%s *%s, const char *path);\n\n",
            b->m->src->path, N, N, m);
    if (L->train) {
        fprintf(f, "/* One optimizer step on rows 0 to n - 1, 1 <= n <= %s_MAX_BATCH:\n", U);
        doc_arrays(f, L, true, false);
        fprintf(f,
                " * *loss (loss may be NULL): the mean loss of the rows, before the update.\n"
                " * %s_EINVAL: n out of range, a NULL array, an id out of range or a NaN or\n"
                " * infinite value; nothing changed. %s_ELOSS: the loss became NaN or\n"
                " * infinite (the step was taken and spoilt the parameters). */\n"
                "int %s_train_step(%s *%s",
                U, U, N, N, m);
        args(f, L, true, false);
        fputs(", int64_t n, double *loss);\n\n", f);
        fprintf(f,
                "/* What the model's learning-rate schedule reads, if it has one: epoch, the\n"
                " * epochs finished (0 at first), and epochs, their total (the train block's\n"
                " * %d at first). %s_train_step does not count epochs; call this when an\n"
                " * epoch of yours ends. */\n"
                "int %s_set_epoch(%s *%s, int64_t epoch, int64_t epochs);\n\n",
                b->m->train.epochs, N, N, N, m);
        fprintf(f, "/* Optimizer steps taken (by %s_train_step, or before the checkpoint\n"
                   " * %s_load read). */\nint64_t %s_steps(const %s *%s);\n\n",
                N, N, N, N, m);
    }
    if (L->eval) {
        fputs("/* The mean loss over rows 0 to n - 1 (n >= 1, any number: they run in\n"
              " * batches), with dropout off and nothing changed:\n", f);
        doc_arrays(f, L, true, false);
        fprintf(f, " * *accuracy: the fraction predicted right, NaN when the model has no\n"
                   " * accuracy metric. loss and accuracy may be NULL. */\n"
                   "int %s_evaluate(%s *%s",
                N, N, m);
        args(f, L, true, false);
        fputs(", int64_t n, double *loss, double *accuracy);\n\n", f);
    }
    if (L->predict) {
        fputs("/* The outputs for rows 0 to n - 1 (n >= 0, any number: they run in\n"
              " * batches), with dropout off. The inputs the outputs read:\n", f);
        doc_arrays(f, L, true, true);
        if (L->nneed < rm->ninputs)
            fputs(" * (the other inputs are not needed), and the arrays to fill:\n", f);
        else
            fputs(" * and the arrays to fill:\n", f);
        doc_arrays(f, L, false, false);
        fprintf(f, " * %s_EINVAL for an id out of range (NaN values are passed through). */\n"
                   "int %s_predict(%s *%s",
                U, N, N, m);
        args(f, L, true, true);
        fputs(", int64_t n", f);
        args(f, L, false, false);
        fputs(");\n\n", f);
    }
    fprintf(f, "/* Set a hyperparameter by name (the list is at the top) for the steps to\n"
               " * come; %s_EINVAL if the model has none of that name. Not saved. */\n"
               "int %s_set_hyper(%s *%s, const char *name, double value);\n\n",
            U, N, N, m);
    fputs("#ifdef __cplusplus\n}\n#endif\n\n#endif\n", f);
}

/* ---- the wrappers ---------------------------------------------------------------- */

/* The C array `const void *const in[]` of the input arguments (NULL for
 * those !need when only_needed). */
static void in_array(FILE *f, const Lib *L, bool only_needed) {
    fprintf(f, "    const void *const in[%d] = {", L->rm->ninputs ? L->rm->ninputs : 1);
    for (int i = 0; i < L->rm->ninputs; i++)
        fprintf(f, "%s%s", i ? ", " : "", only_needed && !L->need[i] ? "NULL" : L->in[i]);
    if (!L->rm->ninputs)
        fputs("NULL", f);
    fputs("};\n", f);
}

static void write_source(FILE *f, const Lib *L) {
    const RtModel *rm = L->rm;
    const BuildModel *b = L->b;
    const char *N = L->name, *U = L->up, *m = L->self;
    const char *var = arena_printf(L->a, "gradc_%s__model", N);
    fprintf(f, "/* The library of the model '%s', written by gradc build --lib: its\n"
               " * description and the functions of %s.h. */\n",
            rm->name, N);
    fputs("#include <math.h>\n#include <stdbool.h>\n#include <stdint.h>\n#include <stdio.h>\n"
          "#include <stdlib.h>\n#include <string.h>\n#include \"runtime/rt.h\"\n", f);
    fprintf(f, "#include \"%s.h\"\n\n", N);
    cg_write_rt_model_c(f, rm, L->fn, var);

    fputs("\n_Static_assert(", f);
    static const char *const codes[] = {"OK", "EINVAL", "EIO", "ENOMEM", "ELOSS", "ECPU"};
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++)
        fprintf(f, "%s%s_%s == (int)RT_LIB_%s", i ? " && " : "", U, codes[i], codes[i]);
    fputs(", \"error codes\");\n\n", f);

    fprintf(f, "struct %s {\n"
               "    RtSession s;\n"
               "    RtError err;\n"
               "    uint64_t seed;\n"
               "    int64_t epochs; /* what the schedule's `epochs` reads */\n"
               "    int dead;       /* nonzero: every call returns it (%s_ECPU) */\n"
               "};\n\n",
            N, U);

    /* The CPU check: the features of the target, by GCC's names (string
     * literals, as __builtin_cpu_supports needs). As in built programs
     * (run.h), GRADC_TEST_PRETEND_CPU_LACKS lets tests pretend a CPU lacks
     * some. */
    fputs("/* Is feature in the comma-separated list of GRADC_TEST_PRETEND_CPU_LACKS\n"
          " * (for tests only)? */\n"
          "static int pretend_lacks(const char *feature) {\n"
          "    const char *p = getenv(\"GRADC_TEST_PRETEND_CPU_LACKS\");\n"
          "    size_t n = strlen(feature);\n"
          "    for (; p && *p; p += strcspn(p, \",\"), p += *p == ',')\n"
          "        if (!strncmp(p, feature, n) && (p[n] == ',' || !p[n]))\n"
          "            return 1;\n"
          "    return 0;\n"
          "}\n\n"
          "/* The first instruction set the code needs that this CPU lacks, or NULL. */\n"
          "static const char *cpu_missing(void) {\n"
          "#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))\n"
          "    __builtin_cpu_init();\n",
          f);
    for (int i = 0; b->cpu_features && b->cpu_features[i]; i++)
        fprintf(f,
                "    if (!__builtin_cpu_supports(\"%s\") || pretend_lacks(\"%s\"))\n"
                "        return \"%s\";\n",
                b->cpu_features[i], b->cpu_features[i], b->cpu_features[i]);
    fputs("#endif\n    return NULL;\n}\n\n", f);

    fprintf(f, "void %s_setup(int threads) {\n    rt_lib_setup(threads);\n}\n\n", N);
    fprintf(f,
            "%s *%s_create(uint64_t seed) {\n"
            "    %s *%s = calloc(1, sizeof *%s);\n"
            "    if (!%s)\n        return NULL;\n"
            "    %s->seed = seed;\n"
            "    %s->epochs = %d;\n"
            "    const char *missing = cpu_missing();\n"
            "    if (missing) {\n"
            "        %s->dead = %s_ECPU;\n"
            "        rt_fail(&%s->err, \"%s.o was built for the %s target, whose code needs "
            "the '%%s' instructions, and this CPU lacks them (rebuild it with gradc build "
            "--lib --target native on this machine)\", missing);\n"
            "        return %s;\n"
            "    }\n"
            "    if (rt_session_init(&%s->s, &%s, seed, &%s->err) != RT_OK) {\n"
            "        free(%s);\n        return NULL;\n    }\n"
            "    rt_init_params(&%s->s);\n"
            "    return %s;\n}\n\n",
            N, N, N, m, m, m, m, m, b->m->train.epochs, m, U, m, N, b->target, m, m, var, m, m,
            m, m);
    fprintf(f, "void %s_free(%s *%s) {\n"
               "    if (!%s)\n        return;\n"
               "    if (%s->s.arena)\n        rt_session_free(&%s->s);\n"
               "    free(%s);\n}\n\n",
            N, N, m, m, m, m, m);
    fprintf(f, "const char *%s_error(const %s *%s) {\n"
               "    return %s ? %s->err.msg : \"no instance (NULL): %s_create ran out of memory\";\n"
               "}\n\n",
            N, N, m, m, m, N);
    /* Every function on an instance starts so. */
    const char *guard = arena_printf(L->a, "    if (!%s)\n        return %s_EINVAL;\n"
                                           "    if (%s->dead)\n        return %s->dead;\n",
                                     m, U, m, m);
    fprintf(f, "int %s_load(%s *%s, const char *path) {\n%s"
               "    return (int)rt_lib_load(&%s->s, path, &%s->err);\n}\n\n",
            N, N, m, guard, m, m);
    fprintf(f,
            "int %s_save(%s *%s, const char *path) {\n%s"
            "    char seed[32];\n"
            "    snprintf(seed, sizeof seed, \"%%llu\", (unsigned long long)%s->seed);\n"
            "    const char *const keys[3] = {\"seed\", \"gradc_version\", \"model_hash\"};\n"
            "    const char *const values[3] = {seed, \"%s\", \"%s\"};\n"
            "    return (int)rt_lib_save(&%s->s, path, 3, keys, values, &%s->err);\n}\n\n",
            N, N, m, guard, m, GRADC_VERSION, L->hash, m, m);
    if (L->train) {
        fprintf(f, "int %s_train_step(%s *%s", N, N, m);
        args(f, L, true, false);
        fprintf(f, ", int64_t n, double *loss) {\n%s", guard);
        in_array(f, L, false);
        fprintf(f, "    return (int)rt_lib_train_step(&%s->s, in, n, %s->epochs, loss, "
                   "&%s->err);\n}\n\n",
                m, m, m);
        fprintf(f,
                "int %s_set_epoch(%s *%s, int64_t epoch, int64_t epochs) {\n%s"
                "    if (epoch < 0 || epochs < 0) {\n"
                "        rt_fail(&%s->err, \"%s_set_epoch: epoch %%lld and epochs %%lld; "
                "expected counts\", (long long)epoch, (long long)epochs);\n"
                "        return %s_EINVAL;\n    }\n"
                "    %s->s.epoch = epoch;\n    %s->epochs = epochs;\n    return %s_OK;\n}\n\n",
                N, N, m, guard, m, N, U, m, m, U);
        fprintf(f, "int64_t %s_steps(const %s *%s) {\n    return %s ? %s->s.step : 0;\n}\n\n",
                N, N, m, m, m);
    }
    if (L->eval) {
        fprintf(f, "int %s_evaluate(%s *%s", N, N, m);
        args(f, L, true, false);
        fprintf(f, ", int64_t n, double *loss, double *accuracy) {\n%s", guard);
        in_array(f, L, false);
        fprintf(f, "    return (int)rt_lib_evaluate(&%s->s, in, n, loss, accuracy, &%s->err);\n"
                   "}\n\n",
                m, m);
    }
    if (L->predict) {
        fprintf(f, "int %s_predict(%s *%s", N, N, m);
        args(f, L, true, true);
        fputs(", int64_t n", f);
        args(f, L, false, false);
        fprintf(f, ") {\n%s", guard);
        fprintf(f, "    static const bool need[%d] = {", rm->ninputs ? rm->ninputs : 1);
        for (int i = 0; i < rm->ninputs; i++)
            fprintf(f, "%s%s", i ? ", " : "", L->need[i] ? "true" : "false");
        if (!rm->ninputs)
            fputs("false", f);
        fputs("};\n", f);
        in_array(f, L, true);
        fprintf(f, "    void *const out[%d] = {", rm->predict.nroots);
        for (int r = 0; r < rm->predict.nroots; r++)
            fprintf(f, "%s%s", r ? ", " : "", L->out[r]);
        fprintf(f, "};\n    return (int)rt_lib_predict(&%s->s, in, need, n, out, &%s->err);\n"
                   "}\n\n",
                m, m);
    }
    fprintf(f,
            "int %s_set_hyper(%s *%s, const char *name, double value) {\n%s"
            "    if (!name) {\n"
            "        rt_fail(&%s->err, \"%s_set_hyper: the name is NULL\");\n"
            "        return %s_EINVAL;\n    }\n"
            "    return rt_set_hyper(&%s->s, name, value, &%s->err) == RT_OK ? %s_OK : "
            "%s_EINVAL;\n}\n",
            N, N, m, guard, m, N, U, m, m, U, U);
}

/* ---- files ------------------------------------------------------------------------- */

static RtStatus write_text(const char *path, void (*fn)(FILE *, const Lib *), const Lib *L,
                           RtError *err) {
    FILE *f = fopen(path, "w");
    if (!f)
        return rt_fail(err, "cannot write '%s': %s", path, strerror(errno));
    fn(f, L);
    bool bad = ferror(f) != 0;
    if (fclose(f) != 0 || bad)
        return rt_fail(err, "cannot write '%s': %s", path, strerror(errno));
    return RT_OK;
}

/* Copy src to a temporary file beside dst and fsync it; *tmp_out names it
 * (the caller renames it into place, or removes it). */
static RtStatus stage_copy(Arena *a, const char *src, const char *dst, const char **tmp_out,
                           RtError *err) {
    const char *tmp = arena_printf(a, "%s.tmp.%ld", dst, (long)getpid());
    *tmp_out = NULL;
    FILE *in = fopen(src, "rb");
    if (!in)
        return rt_fail(err, "cannot read '%s': %s", src, strerror(errno));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        fclose(in);
        return rt_fail(err, "cannot write '%s': %s", dst, strerror(e));
    }
    char buf[1 << 16];
    size_t k;
    bool ok = true;
    while (ok && (k = fread(buf, 1, sizeof buf, in)) > 0)
        for (size_t at = 0; ok && at < k;) {
            ssize_t w = write(fd, buf + at, k - at);
            if (w < 0 && errno == EINTR)
                continue;
            ok = w > 0;
            at += ok ? (size_t)w : 0;
        }
    int e = errno;
    ok = ok && !ferror(in) && fsync(fd) == 0;
    if (!ok)
        e = errno;
    fclose(in);
    if (close(fd) != 0 && ok) {
        ok = false;
        e = errno;
    }
    if (!ok) {
        unlink(tmp);
        return rt_fail(err, "cannot write '%s': %s", dst, strerror(e ? e : EIO));
    }
    *tmp_out = tmp;
    return RT_OK;
}

/* ---- the library ------------------------------------------------------------------- */

/* Contract: see build.h. `out` is the -o argument as given: a path whose
 * base name (without a ".o" suffix) is NAME, a C identifier. On RT_OK,
 * NAME.o and NAME.h are in the directory of `out`, each renamed into place.
 * On RT_FAIL neither has been touched, unless the last of the two renames
 * failed (then NAME.o is new and NAME.h old). The scratch files stay in
 * b->tmpdir. */
RtStatus build_library(const BuildModel *b, const char *out, RtError *err) {
    Arena *a = b->a;
    Lib L = {.b = b, .a = a, .rm = b->rm, .out_arg = out};
    const char *slash = strrchr(out, '/');
    const char *dir = slash ? arena_strndup(a, out, (size_t)(slash - out) + (slash == out))
                            : ".";
    const char *base = slash ? slash + 1 : out;
    size_t blen = strlen(base);
    if (blen > 2 && !strcmp(base + blen - 2, ".o"))
        blen -= 2;
    L.name = arena_strndup(a, base, blen);
    if (!is_ident(L.name) || strlen(L.name) > 64)
        return rt_fail(err, "-o %s: the library is named after the file, and '%s' is not a C "
                            "identifier (letters, digits and '_', not starting with a digit, "
                            "at most 64 characters): its functions are %s_create, "
                            "%s_train_step, ...",
                       out, L.name, L.name, L.name);
    if (is_keyword(L.name))
        return rt_fail(err, "-o %s: the library and its type are named after the file, and '%s' "
                            "is a C or C++ keyword (or a type name the header uses); choose "
                            "another name",
                       out, L.name);
    L.up = upper(a, L.name);
    if (plan_lib(&L, err) != RT_OK)
        return RT_FAIL;

    const char *rtlib = build_runtime_lib(err);
    const char *inc = rtlib ? build_include_dir(err) : NULL;
    if (!inc)
        return RT_FAIL;
    const char *T = b->tmpdir;
    const char *hdr = arena_printf(a, "%s/%s.h", T, L.name);
    const char *src = arena_printf(a, "%s/%s_lib.c", T, L.name);
    const char *wrap_o = arena_printf(a, "%s/%s_lib.o", T, L.name);
    const char *code_o = arena_printf(a, "%s/%s_code.o", T, L.name);
    const char *joined_o = arena_printf(a, "%s/%s_joined.o", T, L.name);
    const char *final_o = arena_printf(a, "%s/%s.o", T, L.name);
    const char *keep = arena_printf(a, "%s/%s.keep", T, L.name);
    if (write_text(hdr, write_header, &L, err) != RT_OK ||
        write_text(src, write_source, &L, err) != RT_OK)
        return RT_FAIL;
    timing_mark(b->timing, "C source");

    /* The API's symbols: the only globals left. */
    FILE *kf = fopen(keep, "w");
    if (!kf)
        return rt_fail(err, "cannot write '%s': %s", keep, strerror(errno));
    static const char *const api[] = {"create", "free", "error", "setup", "load", "save",
                                      "set_hyper"};
    for (size_t i = 0; i < sizeof api / sizeof *api; i++)
        fprintf(kf, "%s_%s\n", L.name, api[i]);
    if (L.train)
        fprintf(kf, "%s_train_step\n%s_set_epoch\n%s_steps\n", L.name, L.name, L.name);
    if (L.eval)
        fprintf(kf, "%s_evaluate\n", L.name);
    if (L.predict)
        fprintf(kf, "%s_predict\n", L.name);
    if (fclose(kf) != 0)
        return rt_fail(err, "cannot write '%s': %s", keep, strerror(errno));

    const char *objcopy = tool("OBJCOPY", "objcopy"), *ld = tool("LD", "ld");
    char *rename_args = arena_strdup(a, "");
    for (int k = 0; k < PROG_COUNT; k++)
        if (b->fn_names[k])
            rename_args = arena_printf(a, "%s --redefine-sym %s=%s", rename_args,
                                       build_shell_quote(a, b->fn_names[k]), build_shell_quote(a, L.fn[k]));
    /* The model's code with its entry points renamed; the wrappers compiled;
     * the two and the whole runtime joined; all but the API made local. */
    const struct {
        const char *stage, *what, *cmd;
    } steps[] = {
        {"objcopy", "renaming the model's entry points",
         arena_printf(a, "%s%s %s %s", objcopy, rename_args, build_shell_quote(a, b->object), build_shell_quote(a, code_o))},
        {"cc", "compiling the library's functions",
         arena_printf(a, "%s -std=c11 -O2 -fPIC -I%s -I%s -c %s -o %s", build_cc(), build_shell_quote(a, T),
                      build_shell_quote(a, inc), build_shell_quote(a, src), build_shell_quote(a, wrap_o))},
        {"ld", "linking the library",
         arena_printf(a, "%s -r -d -o %s %s %s --whole-archive %s --no-whole-archive", ld,
                      build_shell_quote(a, joined_o), build_shell_quote(a, code_o), build_shell_quote(a, wrap_o), build_shell_quote(a, rtlib))},
        {"objcopy", "hiding the library's internal symbols",
         arena_printf(a, "%s --keep-global-symbols=%s %s %s", objcopy, build_shell_quote(a, keep),
                      build_shell_quote(a, joined_o), build_shell_quote(a, final_o))},
    };
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
        if (build_run(b, steps[i].what, steps[i].cmd, err) != RT_OK)
            return RT_FAIL;
        timing_mark(b->timing, steps[i].stage);
    }

    const char *dst_o = arena_printf(a, "%s/%s.o", dir, L.name);
    const char *dst_h = arena_printf(a, "%s/%s.h", dir, L.name);
    const char *tmp_o = NULL, *tmp_h = NULL;
    if (stage_copy(a, final_o, dst_o, &tmp_o, err) != RT_OK)
        return RT_FAIL;
    if (stage_copy(a, hdr, dst_h, &tmp_h, err) != RT_OK) {
        unlink(tmp_o);
        return RT_FAIL;
    }
    if (rename(tmp_o, dst_o) != 0) {
        int e = errno;
        unlink(tmp_o);
        unlink(tmp_h);
        return rt_fail(err, "cannot write '%s': %s", dst_o, strerror(e));
    }
    if (rename(tmp_h, dst_h) != 0) {
        int e = errno;
        unlink(tmp_h);
        return rt_fail(err, "cannot write '%s': %s", dst_h, strerror(e));
    }
    timing_mark(b->timing, "install");
    return RT_OK;
}
