/* frontend.c: fe_compile, the front end as one call: parse, then lower.
 *
 * Owns the model's SrcFile, its name, and the order of the front end's
 * phases. Must not print or exit: every error is in the Diags.
 */
#include "lower.h"

#include <ctype.h>
#include <string.h>

/* The base name of path without its extension, as a C identifier:
 * "examples/mnist-mlp.nn" is "mnist_mlp", "2layer.nn" is "_2layer". */
static const char *model_name(Arena *a, const char *path) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    if (n == 0)
        return "model";
    bool digit_first = isdigit((unsigned char)base[0]);
    char *name = arena_alloc(a, n + 2);
    char *p = name;
    if (digit_first)
        *p++ = '_';
    for (size_t i = 0; i < n; i++)
        *p++ = isalnum((unsigned char)base[i]) ? base[i] : '_';
    *p = 0;
    return name;
}

static void train_defaults(TrainConfig *tc) {
    *tc = (TrainConfig){.optimizer = "sgd", .batch = 32, .epochs = 10, .seed = 0, .split = 0};
    tc->data.header = true;
}

Model *fe_compile(Arena *a, Diags *d, const char *path, const char *text) {
    SrcFile *f = arena_alloc(a, sizeof *f);
    f->path = arena_strdup(a, path);
    f->text = arena_strdup(a, text);
    f->len = strlen(text);

    Model *m = arena_alloc(a, sizeof *m);
    m->src = f;
    m->graph = graph_new(a, d, model_name(a, path));
    train_defaults(&m->train);

    int errors_before = d->nerrors;
    AstFile *ast = parse_file(a, d, f);
    if (d->nerrors == errors_before) {
        Lower *L = arena_alloc(a, sizeof *L);
        *L = (Lower){.a = a, .d = d, .m = m, .g = m->graph};
        m->lower = L;
        fe_lower(L, ast);
    }
    return d->nerrors ? NULL : m;
}
