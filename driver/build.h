/* build.h: gradc build, the ahead-of-time artefacts of a model: a native
 * training program (build.c) or a C library (build_lib.c).
 *
 * Both start from the same thing, a model compiled for training, written
 * out as an object file (cg_emit_object) plus the description of where
 * everything lives (cg_write_rt_model_c), and both link against the
 * runtime's static library with the system C compiler. Nothing here runs
 * LLVM at the time the artefact runs.
 */
#ifndef GRADC_BUILD_H
#define GRADC_BUILD_H

#include "codegen/cg.h"
#include "codegen/rtmodel.h"
#include "compile.h"
#include "frontend/frontend.h"
#include "runtime/rt.h"

/* `gradc build M.nn -o PROG [options]` (argv[0] is "build"): the exit
 * status. */
int cmd_build(int argc, char **argv);

/* A model compiled ahead of time, in a scratch directory. */
typedef struct BuildModel {
    Arena *a;
    const Model *m;     /* the front end's model: source, train block */
    const Graph *g;     /* the training graph, optimized */
    const Plan *plan;
    const RtModel *rm;  /* the description; its function pointers are NULL */
    const char *fn_names[PROG_COUNT]; /* entry points the object defines, or NULL */
    const char *object; /* the object file cg_emit_object wrote */
    const char *tmpdir; /* scratch directory (removed by the caller) */
    const char *target; /* "native", "x86-64-v3" or "x86-64-v4" */
    const char *const *cpu_features; /* what target needs (cg_target_cpu_features) */
    const char *optimizer; /* the --optimizer text it was compiled with; NULL: the train block's */
    const char *hash;   /* the model hash gradc train stores (ckpt_model_hash with optimizer) */
    int64_t batch;      /* the largest batch it was compiled for (rm->max_batch) */
    struct Timing *timing; /* --time-passes: each step marks its stage ("cc"); may be NULL */
    bool mpi;           /* --mpi: data-parallel, linked with the MPI transport */
} BuildModel;

/* The C compiler: $CC, else "cc". */
const char *build_cc(void);
/* Flags every compile or link against the runtime's static library needs:
 * "-fsanitize=..." when gradc (and so the library) was built with
 * GRADC_SANITIZE; else "". */
const char *build_cc_flags(void);
/* The runtime's static library (libgradc_rt.a) and the directory that holds
 * runtime/rt.h, found beside the running gradc (its build tree). NULL and
 * an error in *err when they are missing. */
const char *build_runtime_lib(RtError *err);
const char *build_include_dir(RtError *err);
/* The run library (libgradc_run.a: the train, predict and eval commands of
 * a built program), found the same way. */
const char *build_run_lib(RtError *err);
/* The MPI transport's module that gradc train --mpi loads
 * (runtime/libgradc_mpi.so), found as the libraries are; NULL after
 * saying why in err. */
const char *build_mpi_plugin(RtError *err);
/* s in single quotes for the shell (in a). */
const char *build_shell_quote(Arena *a, const char *s);
/* Run a shell command; its stderr goes to the scratch directory and into
 * err on failure (what = "linking", "compiling the library", ...). */
RtStatus build_run(const BuildModel *b, const char *what, const char *cmd, RtError *err);

/* build_lib.c: `gradc build M.nn --lib -o NAME`: NAME.o and NAME.h, the
 * C API of build_lib.c's header comment. */
RtStatus build_library(const BuildModel *b, const char *name, RtError *err);

#endif
