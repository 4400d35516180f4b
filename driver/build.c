/* build.c: `gradc build M.nn -o PROG`: the model compiled ahead of time
 * into a native training program that runs without LLVM, with the train,
 * predict and eval commands of gradc (the run library, run.h).
 *
 * Compiles as gradc train does (the same passes, plan and code, so that a
 * native build trains bit for bit as the JIT), writes the object file
 * (cg_emit_object) into a scratch directory with a C file holding the
 * model's description (cg_write_rt_model_c), its RunModel (data source with
 * absolute paths, train block defaults, model hash, CPU features) and a
 * main, and links them with the system C compiler against the static run
 * and runtime libraries and OpenBLAS (and with --mpi, the MPI transport
 * and MPI). Also the helpers build_lib.c (--lib)
 * shares: the C compiler, the libraries, running a command.
 *
 * Owns the generated program text and the link; must not run the model.
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "build.h"
#include "run.h"
#include "timing.h"

/* Where the build tree and the sources were when gradc was compiled
 * (driver/CMakeLists.txt), for a gradc run from elsewhere. */
#ifndef GRADC_RT_LIB_PATH
#define GRADC_RT_LIB_PATH ""
#endif
#ifndef GRADC_RUN_LIB_PATH
#define GRADC_RUN_LIB_PATH ""
#endif
#ifndef GRADC_SOURCE_PATH
#define GRADC_SOURCE_PATH ""
#endif
/* gradc build --mpi: the MPI transport's library and how to link MPI
 * (an MPI build of gradc only, GRADC_HAVE_MPI). */
#ifndef GRADC_RT_MPI_LIB_PATH
#define GRADC_RT_MPI_LIB_PATH ""
#endif
#ifndef GRADC_MPI_LIBS
#define GRADC_MPI_LIBS ""
#endif
#ifndef GRADC_MPI_PLUGIN_PATH
#define GRADC_MPI_PLUGIN_PATH ""
#endif
#ifndef GRADC_CC_FLAGS
#define GRADC_CC_FLAGS ""
#endif
/* How to link OpenBLAS (pkg-config's flags when CMake found it so). */
#ifndef GRADC_BLAS_LIBS
#define GRADC_BLAS_LIBS "-lopenblas"
#endif

static const char usage_build[] =
    "usage: gradc build M.nn -o PROG [options]\n"
    "       gradc build M.nn --lib -o NAME [options]\n"
    "\n"
    "Compiles the model for training ahead of time and links PROG, a native\n"
    "program that runs without LLVM: PROG train, PROG predict and PROG eval take\n"
    "the options of gradc train, predict and eval (without the model file), and\n"
    "the model's train { } block is their default. PROG needs only OpenBLAS,\n"
    "zlib and the C library on the machine that runs it; the train block's data\n"
    "paths are compiled in as absolute paths.\n"
    "  -o PROG         the program (or, with --lib, NAME.o and NAME.h) to write\n"
    "  --target T      the CPU to compile for:\n"
    "                    native     this machine's CPU (the default): the JIT's\n"
    "                               code, so results are bit for bit gradc train's\n"
    "                    x86-64-v3  any x86-64 with AVX2 and FMA (Haswell, Zen)\n"
    "                    x86-64-v4  any x86-64 with AVX-512 (F, BW, VL, DQ, CD)\n"
    "                  PROG refuses to start on a CPU without the features its\n"
    "                  target needs, saying which is missing\n"
    "  --optimizer R   the update rule compiled in (default: the train block's)\n"
    "  --batch N       the largest mini-batch the program runs (default: the\n"
    "                  train block's batch); PROG train --batch may be smaller\n"
    "  --lib           a C library instead of a program: NAME.o and NAME.h\n"
    "  --mpi           a program for data-parallel training over MPI: `mpirun\n"
    "                  -np N PROG train` trains on N processes, each taking\n"
    "                  --batch rows of every step (docs/distributed.md); it then\n"
    "                  also needs Open MPI where it runs\n"
    "  -q, --quiet     no summary line\n"
    "  --time-passes   time each stage, the C compiler's included (on stderr)\n"
    "  --max-memory SIZE  refuse a model whose arena needs more (512M, 2G;\n"
    "                  default: the machine's memory and limits)\n"
    "  -h, --help      this text\n";

/* ---- the tools ---------------------------------------------------------------------- */

const char *build_cc(void) {
    const char *cc = getenv("CC");
    return cc && *cc ? cc : "cc";
}

const char *build_cc_flags(void) { return GRADC_CC_FLAGS; }

static bool is_file(const char *path) {
    struct stat st;
    return path && *path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The directory of the running executable (malloc'd), or NULL. */
static char *exe_dir(void) {
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (!slash)
        return NULL;
    *slash = '\0';
    return strdup(buf);
}

/* dir/rel, malloc'd. */
static char *join(const char *dir, const char *rel) {
    size_t len = strlen(dir) + strlen(rel) + 2;
    char *path = malloc(len);
    if (path)
        snprintf(path, len, "%s/%s", dir, rel);
    return path;
}

/* exe_dir()/rel when that file exists (malloc'd), else NULL. */
static char *beside_exe(const char *rel) {
    char *dir = exe_dir();
    char *path = dir ? join(dir, rel) : NULL;
    free(dir);
    if (is_file(path))
        return path;
    free(path);
    return NULL;
}

/* A library of the build tree: beside gradc (build/gradc and
 * build/runtime/libgradc_rt.a), else where CMake put it. Found once. */
static const char *find_lib(const char *rel, const char *fallback, const char **cache,
                            RtError *err) {
    if (*cache)
        return *cache;
    char *p = beside_exe(rel);
    if (p)
        return *cache = p;
    if (is_file(fallback))
        return *cache = fallback;
    rt_fail(err, "cannot find %s (looked beside the gradc executable and in %s): build it "
                 "with 'cmake --build <build directory>'",
            strrchr(rel, '/') + 1, *fallback ? fallback : "the build tree");
    return NULL;
}

const char *build_runtime_lib(RtError *err) {
    static const char *cache;
    return find_lib("runtime/libgradc_rt.a", GRADC_RT_LIB_PATH, &cache, err);
}

const char *build_run_lib(RtError *err) {
    static const char *cache;
    return find_lib("driver/libgradc_run.a", GRADC_RUN_LIB_PATH, &cache, err);
}

/* The MPI transport (runtime/mpi/): an MPI build of gradc has it, as a
 * static library and as the module gradc train --mpi loads. */
static const char *build_rt_mpi_lib(RtError *err) {
    static const char *cache;
    return find_lib("runtime/libgradc_rt_mpi.a", GRADC_RT_MPI_LIB_PATH, &cache, err);
}

const char *build_mpi_plugin(RtError *err) {
    static const char *cache;
    return find_lib("runtime/libgradc_mpi.so", GRADC_MPI_PLUGIN_PATH, &cache, err);
}

/* Does dir hold the headers a built program's C file includes? */
static bool has_headers(const char *dir) {
    char *rt = join(dir, "runtime/rt.h"), *run = join(dir, "driver/run.h");
    bool ok = is_file(rt) && is_file(run);
    free(rt);
    free(run);
    return ok;
}

/* The source root (which holds runtime/rt.h and driver/run.h): the parent
 * of gradc's directory when the build tree is inside the sources (build/),
 * else the one gradc was compiled from. */
const char *build_include_dir(RtError *err) {
    static char *cache;
    if (cache)
        return cache;
    char *dir = exe_dir();
    char *up = dir ? join(dir, "..") : NULL, real[PATH_MAX];
    free(dir);
    if (up && has_headers(up) && realpath(up, real)) {
        free(up);
        return cache = strdup(real);
    }
    free(up);
    if (*GRADC_SOURCE_PATH && has_headers(GRADC_SOURCE_PATH))
        return cache = strdup(GRADC_SOURCE_PATH);
    rt_fail(err, "cannot find the runtime's headers (runtime/rt.h, driver/run.h) beside the gradc "
                 "executable or in %s",
            *GRADC_SOURCE_PATH ? GRADC_SOURCE_PATH : "the source tree");
    return NULL;
}

const char *build_shell_quote(Arena *a, const char *s) {
    size_t n = 2;
    for (const char *p = s; *p; p++)
        n += *p == '\'' ? 4 : 1;
    char *q = arena_alloc(a, n + 1), *o = q;
    *o++ = '\'';
    for (const char *p = s; *p; p++) {
        if (*p == '\'') {
            memcpy(o, "'\\''", 4);
            o += 4;
        } else {
            *o++ = *p;
        }
    }
    *o++ = '\'';
    *o = '\0';
    return q;
}

RtStatus build_run(const BuildModel *b, const char *what, const char *cmd, RtError *err) {
    const char *log = arena_printf(b->a, "%s/command.log", b->tmpdir);
    int st = system(arena_printf(b->a, "( %s ) >%s 2>&1", cmd, build_shell_quote(b->a, log)));
    if (st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return RT_OK;
    char out[640] = "";
    FILE *f = fopen(log, "r");
    if (f) {
        size_t n = fread(out, 1, sizeof out - 1, f);
        out[n] = '\0';
        while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
            out[--n] = '\0';
        fclose(f);
    }
    if (st == -1)
        return rt_fail(err, "%s: cannot run the shell: %s", what, strerror(errno));
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
        return rt_fail(err, "%s failed: a command was not found (is a C compiler installed? "
                            "$CC names it, default cc): %s",
                       what, out);
    return rt_fail(err, "%s failed (%s %d): %s\n  the command was: %.200s", what,
                   WIFEXITED(st) ? "exit status" : "signal",
                   WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
                   *out ? out : "(no output)", cmd);
}

/* ---- the program's C file ---------------------------------------------------------- */


static const char *data_kind_enum(RunDataKind k) {
    switch (k) {
    case RUN_DATA_NONE: return "RUN_DATA_NONE";
    case RUN_DATA_CSV: return "RUN_DATA_CSV";
    case RUN_DATA_IDX: return "RUN_DATA_IDX";
    case RUN_DATA_NPY: return "RUN_DATA_NPY";
    case RUN_DATA_TEXT: return "RUN_DATA_TEXT";
    }
    return "RUN_DATA_NONE";
}

/* r as `static const RunModel run_model`, pointing at the RtModel `rm_var`,
 * with the tables it needs before it. */
static void put_run_model(FILE *f, const RunModel *r, int ninputs, const char *rm_var,
                          bool mpi) {
    const RunData *ds = &r->data;
    if (ds->nfiles) {
        fputs("static const RtNpyFile run_files[] = {\n", f);
        for (int k = 0; k < ds->nfiles; k++) {
            fputs("    {", f);
            cg_put_c_string(f, ds->files[k].input);
            fputs(", ", f);
            cg_put_c_string(f, ds->files[k].path);
            fputs("},\n", f);
        }
        fputs("};\n", f);
    }
    for (int i = 0; i < ds->ncolumns; i++) {
        const RtCsvInput *in = &ds->columns[i];
        if (!in->ncols)
            continue;
        fprintf(f, "static const RtColumnSel run_cols%d[] = {", i);
        for (int c = 0; c < in->ncols; c++) {
            fputs(c ? ", {" : "{", f);
            cg_put_c_string(f, in->cols[c].name);
            fprintf(f, ", %d}", in->cols[c].index);
        }
        fputs("};\n", f);
    }
    if (ds->ncolumns) {
        fputs("static const RtCsvInput run_columns[] = {\n", f);
        for (int i = 0; i < ds->ncolumns; i++) {
            fputs("    {", f);
            cg_put_c_string(f, ds->columns[i].input);
            fprintf(f, ", %d, ", ds->columns[i].ncols);
            if (ds->columns[i].ncols)
                fprintf(f, "run_cols%d},\n", i);
            else
                fputs("NULL},\n", f);
        }
        fputs("};\n", f);
    }
    if (ninputs && r->need) {
        fputs("static const bool run_need[] = {", f);
        for (int i = 0; i < ninputs; i++)
            fprintf(f, "%s%s", i ? ", " : "", r->need[i] ? "true" : "false");
        fputs("};\n", f);
    }
    fputs("static const char *const run_cpu_features[] = {", f);
    for (int i = 0; r->cpu_features && r->cpu_features[i]; i++) {
        cg_put_c_string(f, r->cpu_features[i]);
        fputs(", ", f);
    }
    fputs("NULL};\n", f);

    fprintf(f, "static const RunModel run_model = {\n    .rm = &%s,\n    .path = ", rm_var);
    cg_put_c_string(f, r->path);
    fputs(",\n    .hash = ", f);
    cg_put_c_string(f, r->hash);
    fprintf(f, ",\n    .data = {.kind = %s, .nfiles = %d, .files = %s, .header = %s,\n",
            data_kind_enum(ds->kind), ds->nfiles, ds->nfiles ? "run_files" : "NULL",
            ds->header ? "true" : "false");
    fprintf(f, "             .ncolumns = %d, .columns = %s, .scale = %a, .context = %lld},\n",
            ds->ncolumns, ds->ncolumns ? "run_columns" : "NULL", ds->scale,
            (long long)ds->context);
    fprintf(f, "    .batch = %lld,\n    .epochs = %d,\n    .seed = %lluull,\n    .split = %a,\n",
            (long long)r->batch, r->epochs, (unsigned long long)r->seed, r->split);
    fprintf(f, "    .has_loss = %s,\n    .noutputs = %d,\n    .random_param = ",
            r->has_loss ? "true" : "false", r->noutputs);
    cg_put_c_string(f, r->random_param);
    fprintf(f, ",\n    .need = %s,\n    .nkernels = %d,\n    .target = ",
            ninputs && r->need ? "run_need" : "NULL", r->nkernels);
    cg_put_c_string(f, r->target);
    fputs(",\n    .cpu_features = run_cpu_features,\n    .optimizer = ", f);
    cg_put_c_string(f, r->optimizer);
    if (mpi)
        fputs(",\n    .dist_start = rt_mpi_start,\n    .dist_finish = rt_mpi_finish", f);
    fputs(",\n};\n", f);
}

/* The check of the CPU features (a string literal each, as
 * __builtin_cpu_supports needs) and main. */
static void put_main(FILE *f, const char *const *features) {
    fputs("\n#if defined(__x86_64__) || defined(__i386__)\n"
          "/* __builtin_cpu_supports for the features this target needs. */\n"
          "static int cpu_supports(const char *feature) {\n",
          f);
    for (int i = 0; features && features[i]; i++) {
        fputs("    if (!strcmp(feature, ", f);
        cg_put_c_string(f, features[i]);
        fputs("))\n        return __builtin_cpu_supports(", f);
        cg_put_c_string(f, features[i]);
        fputs(");\n", f);
    }
    fputs("    (void)feature;\n"
          "    return 0;\n"
          "}\n"
          "#define CPU_INIT() __builtin_cpu_init()\n"
          "#define CPU_SUPPORTS cpu_supports\n"
          "#else\n"
          "#define CPU_INIT() ((void)0)\n"
          "#define CPU_SUPPORTS NULL\n"
          "#endif\n"
          "\n"
          "int main(int argc, char **argv) {\n"
          "    CPU_INIT();\n"
          "    return run_program(&run_model, CPU_SUPPORTS, argc, argv);\n"
          "}\n",
          f);
}

/* The C file of the program: description, RunModel, main. */
static RtStatus write_program_c(const BuildModel *b, const RunModel *r, const char *path,
                                RtError *err) {
    FILE *f = fopen(path, "w");
    if (!f)
        return rt_fail(err, "cannot write '%s': %s", path, strerror(errno));
    fprintf(f, "/* The training program of %s, written by gradc build for %s. */\n",
            b->m->src->path, b->target);
    fputs("#include <math.h>\n#include <stdbool.h>\n#include <stdint.h>\n#include <stdio.h>\n"
          "#include <string.h>\n\n#include \"driver/run.h\"\n#include \"runtime/rt.h\"\n",
          f);
    fputs(b->mpi ? "#include \"runtime/rt_mpi.h\"\n\n" : "\n", f);
    cg_write_rt_model_c(f, b->rm, b->fn_names, "gradc_model");
    fputc('\n', f);
    put_run_model(f, r, b->rm->ninputs, "gradc_model", b->mpi);
    put_main(f, b->cpu_features);
    if (fclose(f) != 0)
        return rt_fail(err, "cannot write '%s': %s", path, strerror(errno));
    return RT_OK;
}

/* Link the program to a temporary name beside out, then rename it into
 * place: out is never a half-written file. */
static RtStatus build_program(const BuildModel *b, const RunModel *r, const char *out,
                              RtError *err) {
    Arena *a = b->a;
    const char *inc = build_include_dir(err), *run = inc ? build_run_lib(err) : NULL,
               *rt = run ? build_runtime_lib(err) : NULL, *mpi = "";
    if (!rt)
        return RT_FAIL;
    if (b->mpi) {
        const char *lib = build_rt_mpi_lib(err);
        if (!lib)
            return RT_FAIL;
        mpi = arena_printf(a, "%s %s", build_shell_quote(a, lib), GRADC_MPI_LIBS);
    }
    const char *c_file = arena_printf(a, "%s/program.c", b->tmpdir);
    if (write_program_c(b, r, c_file, err) != RT_OK)
        return RT_FAIL;
    timing_mark(b->timing, "C source");
    const char *tmp = arena_printf(a, "%s.tmp.%ld", out, (long)getpid());
    const char *cmd = arena_printf(a, "%s %s -std=c11 -O2 -I%s -o %s %s %s %s %s %s %s -lz -lm "
                                      "-lpthread",
                                   build_cc(), build_cc_flags(), build_shell_quote(a, inc),
                                   build_shell_quote(a, tmp), build_shell_quote(a, c_file),
                                   build_shell_quote(a, b->object), build_shell_quote(a, run),
                                   mpi, build_shell_quote(a, rt), GRADC_BLAS_LIBS);
    if (build_run(b, "linking the program", cmd, err) != RT_OK) {
        unlink(tmp);
        return RT_FAIL;
    }
    timing_mark(b->timing, "cc");
    if (rename(tmp, out) != 0) {
        int e = errno;
        unlink(tmp);
        return rt_fail(err, "cannot write '%s': %s", out, strerror(e));
    }
    return RT_OK;
}

/* ---- gradc build ---------------------------------------------------------------------- */

typedef struct BuildOpts {
    const char *model, *out, *target, *optimizer;
    int64_t batch;
    bool lib, quiet, time_passes, mpi;
} BuildOpts;

static const RunCli gradc_cli = {.name = "gradc", .invoke = "gradc", .built = NULL};

/* 0, or the exit status (help: -1). */
static int parse_build_opts(int argc, char **argv, BuildOpts *o) {
    *o = (BuildOpts){.target = "native"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_build, stdout);
            return -1;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o->quiet = true;
        } else if (!strcmp(a, "--lib")) {
            o->lib = true;
        } else if (!strcmp(a, "--time-passes")) {
            o->time_passes = true;
        } else if (!strcmp(a, "--mpi")) {
            o->mpi = true;
        } else if ((v = run_opt_value(argc, argv, &i, "-o"))) {
            o->out = v;
        } else if ((v = run_opt_value(argc, argv, &i, "--target"))) {
            if (*v && !cg_target_cpu_features(v))
                return run_usage_error(&gradc_cli, "build", "--target expects native, x86-64-v3 "
                                                            "or x86-64-v4, got '%s'", v);
            o->target = v;
        } else if ((v = run_opt_value(argc, argv, &i, "--optimizer"))) {
            o->optimizer = v;
        } else if ((v = run_opt_value(argc, argv, &i, "--batch"))) {
            if (!run_parse_i64(v, 1, &o->batch) || o->batch > (1 << 24))
                return run_usage_error(&gradc_cli, "build", "--batch expects an integer from 1 "
                                                            "to 16777216, got '%s'", v);
        } else if (a[0] == '-') {
            return run_usage_error(&gradc_cli, "build", "unknown option '%s'", a);
        } else if (o->model) {
            return run_usage_error(&gradc_cli, "build", "one model file at a time ('%s' and "
                                                        "'%s')", o->model, a);
        } else {
            o->model = a;
        }
        if (v && !*v)
            return run_usage_error(&gradc_cli, "build", "%s needs a value", a);
    }
    if (!o->model)
        return run_usage_error(&gradc_cli, "build", "no model file given");
    if (!o->out)
        return run_usage_error(&gradc_cli, "build", "no output given: -o %s", o->lib ? "NAME"
                                                                                    : "PROG");
    if (o->mpi && o->lib)
        return run_usage_error(&gradc_cli, "build", "--mpi makes training programs, not "
                                                    "libraries (--lib)");
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* Can files be made beside path? If not, say why. */
static bool writable_dir_of(Arena *a, const char *path) {
    const char *slash = strrchr(path, '/');
    const char *dir = !slash         ? "."
                      : slash == path ? "/"
                                      : arena_strndup(a, path, (size_t)(slash - path));
    if (access(dir, W_OK) == 0)
        return true;
    fprintf(stderr, "gradc: error: cannot write '%s': the directory '%s': %s\n", path, dir,
            strerror(errno));
    return false;
}

/* A scratch directory under $TMPDIR (or /tmp); NULL after saying why. */
static char *scratch_dir(Arena *a) {
    const char *base = getenv("TMPDIR");
    char *dir = arena_printf(a, "%s/gradc-build-XXXXXX", base && *base ? base : "/tmp");
    if (mkdtemp(dir))
        return dir;
    fprintf(stderr, "gradc: error: cannot make a scratch directory '%s': %s\n", dir,
            strerror(errno));
    return NULL;
}

int cmd_build(int argc, char **argv) {
    BuildOpts o;
    int rc = parse_build_opts(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    double t0 = run_now_ms();
    Arena *a = arena_new();
    if (!a)
        return compile_out_of_memory(NULL, o.model);
    Diags d;
    diags_init(&d, a);
    rc = RUN_EXIT_USER;
    char *volatile tmpdir = NULL; /* volatile: read after a longjmp */
    jmp_buf oom;
    if (setjmp(oom)) {
        rc = compile_out_of_memory(a, o.model);
        goto out;
    }
    arena_set_oom(a, &oom);
    RtError err;
    Timing tm;
    timing_start(&tm, o.time_passes);

    if (o.mpi && !*GRADC_RT_MPI_LIB_PATH) {
        fprintf(stderr, "gradc: error: --mpi: this gradc was built without MPI (install "
                        "libopenmpi-dev and rebuild it; docs/distributed.md)\n");
        goto out;
    }
    Model *m = load_model(a, &d, o.model);
    if (!m || !writable_dir_of(a, o.out))
        goto out;
    timing_mark(&tm, "front end");
    Graph *g = m->graph;
    if (!g->loss) {
        fprintf(stderr, "%s: error: the model has no 'loss = ...' statement, so there is nothing "
                        "to train (gradc build makes training programs)\n", o.model);
        goto out;
    }
    if (!o.lib && m->train.data.kind == DATA_NONE) {
        fprintf(stderr, "%s: error: the train block has no 'data = ...' (csv, idx, npy or text), "
                        "so the program would not know what to train on\n", o.model);
        goto out;
    }
    RunModel r;
    run_model_from(a, &r, m, o.optimizer, true);
    if (!fe_build_training(m, &d, o.optimizer, NAN)) {
        print_diags(&d);
        goto out;
    }
    timing_mark(&tm, "autodiff and update");
    ir_optimize_observed(g, timing_pass_observer, &tm);
    /* gradc train's plan (every program but the gradient check's), so that
     * the arena layout and the code are the JIT's. */
    int64_t batch = o.batch > 0 ? o.batch : m->train.batch;
    Plan *plan = ir_plan_flags(g, batch, 4, ~(1u << PROG_GRAD), o.mpi ? PLAN_DATA_PARALLEL : 0);
    timing_mark(&tm, "fuse and plan");
    if (!compile_check_memory(&d, g, plan)) { /* the built program's arena, on this machine */
        print_diags(&d);
        goto out;
    }
    if (!(tmpdir = scratch_dir(a)))
        goto out;
    const char *object = arena_printf(a, "%s/model.o", tmpdir);
    CgOptions co = {.elem_size = 4, .opt_level = 2, .stage = timing_stage_observer,
                    .stage_ud = &tm};
    if (!cg_emit_object(g, plan, &co, o.target, object, &d)) {
        print_diags(&d);
        goto out;
    }
    double compile_ms = run_now_ms() - t0;
    static const char *const progs[PROG_COUNT] = {
        [PROG_TRAIN] = "train", [PROG_GRAD] = "grad", [PROG_EVAL] = "eval",
        [PROG_PREDICT] = "predict"};
    BuildModel b = {.a = a, .m = m, .g = g, .plan = plan, .object = object, .tmpdir = tmpdir,
                    .target = o.target, .cpu_features = cg_target_cpu_features(o.target),
                    .optimizer = o.optimizer, .hash = r.hash, .batch = batch,
                    .timing = &tm, .mpi = o.mpi};
    RtFn fns[PROG_COUNT] = {0};
    for (int k = 0; k < PROG_COUNT; k++)
        if (plan->prog[k].roots.len)
            b.fn_names[k] = arena_printf(a, "%s_%s", g->name, progs[k]);
    b.rm = cg_rt_model(a, g, plan, fns);
    r.rm = b.rm;
    r.batch = batch;
    r.need = inputs_needed(a, g);
    r.nkernels = plan->prog[PROG_TRAIN].kernels.len;
    r.target = o.target;
    r.cpu_features = b.cpu_features;
    RtStatus st = o.lib ? build_library(&b, o.out, &err) : build_program(&b, &r, o.out, &err);
    if (st != RT_OK) {
        fprintf(stderr, "gradc: error: %s\n", err.msg);
        goto out;
    }
    if (!o.quiet)
        printf("gradc: built %s%s from %s for %s in %.0f ms (code %.0f ms)\n", o.out,
               o.lib ? ".o and .h" : "", o.model, o.target, run_now_ms() - t0, compile_ms);
    timing_print(&tm, stderr);
    rc = 0;
out:
    if (tmpdir)
        nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    arena_free(a);
    return rc;
}
