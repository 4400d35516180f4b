/* rt_internal.h: what the runtime's files share and its tests may reach.
 *
 * Not part of the interface that compiled models link against: element
 * access in the model's float type, tensor sizes, the OpenBLAS core
 * decision, and the small JSON reader behind the weight files. Must not
 * declare anything a compiled model needs (that belongs in rt.h).
 */
#ifndef GRADC_RT_INTERNAL_H
#define GRADC_RT_INTERNAL_H

#include "rt.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* CLOCK_BOOTTIME in seconds (profile.c): rt_train's RtSession.first_step_boottime. */
double rt_boottime_seconds(void);

/* ---- elements ---------------------------------------------------------------
 * A float tensor holds float (elem_size 4) or double (elem_size 8); an int
 * tensor holds int32_t. */

static inline double rt_load_float(const void *base, int elem_size, int64_t i) {
    return elem_size == 4 ? (double)((const float *)base)[i] : ((const double *)base)[i];
}

static inline void rt_store_float(void *base, int elem_size, int64_t i, double v) {
    if (elem_size == 4)
        ((float *)base)[i] = (float)v;
    else
        ((double *)base)[i] = v;
}

/* Bytes of one element of t in model m. */
static inline size_t rt_elem_bytes(const RtModel *m, const RtTensor *t) {
    return t->dtype == RT_INT ? sizeof(int32_t) : (size_t)m->elem_size;
}

/* Bytes of t for a given batch size. */
static inline size_t rt_tensor_bytes(const RtModel *m, const RtTensor *t, int64_t batch) {
    return (size_t)rt_numel(t, batch) * rt_elem_bytes(m, t);
}

/* "[B, 784]" (or "[]" for a scalar) into buf; returns buf. */
char *rt_dims_str(const RtTensor *t, char *buf, size_t n);

/* ---- datasets (dataset.c) ---------------------------------------------------
 * What every loader, the training loop and prediction share. */

/* Elements from the start of one row of input i to the next. */
static inline int64_t rt_row_stride(const RtDataset *d, int i) {
    return d->row_stride && d->row_stride[i] ? d->row_stride[i] : d->row_elems[i];
}

/* "x [B, 784] float, y [B] int" into buf; returns buf. */
char *rt_inputs_str(const RtModel *m, char *buf, size_t n);

/* Size d for n packed rows of every input of m with load[i] (NULL: every
 * input); the others get data[i] NULL. row_elems is set for every input.
 * On RT_FAIL ("path: out of memory ...") d is freed and zeroed. */
RtStatus rt_dataset_alloc(RtDataset *d, const RtModel *m, int64_t n, const bool *load,
                          const char *path, RtError *err);

/* Does d fit m: one array per input with the input's elements per row, every
 * input batch-first? allow_missing: inputs with data[i] NULL are fine. */
RtStatus rt_dataset_check(const RtModel *m, const RtDataset *d, bool allow_missing,
                          RtError *err);

/* Copy rows[0, nb) of every loaded input of d into the inputs' arena storage,
 * row-major with the batch first. */
void rt_dataset_gather(RtSession *s, const RtDataset *d, const int64_t *rows, int64_t nb);

/* The whole file at path, gunzipped when it starts with the gzip magic
 * (1f 8b; concatenated members are read in turn). On RT_OK *data is malloc'd
 * (with a NUL after the last byte) and *len its length. Errors name the file:
 * cannot open, a corrupt or truncated gzip stream, out of memory. */
RtStatus rt_read_data_file(const char *path, unsigned char **data, size_t *len, bool *gzipped,
                           RtError *err);

/* A data file read front to back in pieces, gunzipped on the way when it
 * starts with the gzip magic: what lets a loader put a file's elements
 * straight into its dataset without a whole second copy of the file. The
 * errors are rt_read_data_file's, raised by the read that meets them: a
 * corrupt or truncated gzip stream only when the reading gets there, so a
 * loader must read a gzipped file to its end (rt_reader_rest) before it
 * trusts it. */
typedef struct RtReader {
    const char *path;
    FILE *f;
    bool gzipped;
    /* A plain regular file: its data is file_bytes long, known before any
     * of it is read. Gzipped data (and a pipe) is as long as its stream. */
    bool sized;
    uint64_t file_bytes;
    /* At least the data's length, known before any of it is read: file_bytes
     * when sized; for a gzipped regular file what its compressed bytes can
     * hold at deflate's largest ratio, 1032:1 (plus 1 MiB for the smallest
     * streams), so that a header promising more is a truncated file, found
     * before a buffer of the promised size is allocated; else UINT64_MAX. */
    uint64_t max_bytes;
    uint64_t at;            /* bytes of data read so far */
    bool failed;            /* a read failed: its error is the file's, nothing follows */
    unsigned char peek[2];  /* plain: the magic bytes read by rt_reader_open */
    int npeek;
    struct RtGunzip *gz;    /* gzipped: the inflate state and its input */
} RtReader;

/* Open path: "cannot open 'path': ..." on failure (nothing to close then). */
RtStatus rt_reader_open(RtReader *r, const char *path, RtError *err);
/* The next n bytes of data into buf; *got < n only at the end of the data. */
RtStatus rt_reader_read(RtReader *r, void *buf, size_t n, size_t *got, RtError *err);
/* Read the rest of the data, dropping it: *rest is its length, and at the
 * whole length. Plain regular files are not read (file_bytes - at). */
RtStatus rt_reader_rest(RtReader *r, uint64_t *rest, RtError *err);
void rt_reader_close(RtReader *r);

/* A label value v at `where` ("row 7") of file path checked against int
 * input t's limit and int32 range; RT_FAIL with a message naming both. */
RtStatus rt_check_int(const RtTensor *t, int64_t v, const char *path, const char *where,
                      RtError *err);

/* ---- OpenBLAS kernel choice (blas.c) ------------------------------------- */

typedef struct RtCpuFeatures {
    bool avx512f, avx512bw, avx512vl, avx512dq;
    bool avx2, fma;
} RtCpuFeatures;

/* The CPU this process runs on (all false off x86-64). */
RtCpuFeatures rt_cpu_features(void);

/* The OpenBLAS core type to force for a library that reports `corename` on a
 * CPU with `cpu`: "SkylakeX" when the CPU has AVX-512 (F, BW, VL, DQ) and the
 * core is not an AVX-512 one, "Haswell" when it has AVX2 and FMA and the core
 * is not an AVX2-or-better one; NULL to keep the core. Pure. */
const char *rt_blas_pick_core(const char *corename, const RtCpuFeatures *cpu);

/* ---- JSON (json.c) ----------------------------------------------------------
 * A strict reader for RFC 8259 text, enough for safetensors headers and the
 * training log: objects, arrays, strings with every escape, numbers, true,
 * false, null. */

typedef enum RtJsonKind {
    RT_JSON_NULL,
    RT_JSON_BOOL,
    RT_JSON_NUMBER,
    RT_JSON_STRING,
    RT_JSON_ARRAY,
    RT_JSON_OBJECT,
} RtJsonKind;

typedef struct RtJson RtJson;
struct RtJson {
    RtJsonKind kind;
    bool boolean;  /* BOOL */
    double number; /* NUMBER */
    char *string;  /* STRING: UTF-8, NUL-terminated (\u0000 is rejected) */
    int n;         /* ARRAY, OBJECT: number of items */
    RtJson *items; /* ARRAY, OBJECT: the values, in text order */
    char **keys;   /* OBJECT: keys[i] names items[i]; keys are unique */
    int *sorted;   /* OBJECT: item indices in strcmp order of their keys */
};

/* Parse exactly one JSON value from text[0, len), allowing surrounding
 * whitespace. NULL on malformed input, with "what, at byte N" in why. */
RtJson *rt_json_parse(const char *text, size_t len, char *why, size_t nwhy);
void rt_json_free(RtJson *v);
/* The value under key in an object; NULL if absent or v is not an object. */
const RtJson *rt_json_get(const RtJson *v, const char *key);

/* The CPUs this process may run on (its affinity mask; pool.c). */
int pool_available_cpus(void);

/* ---- data parallelism (dist.c) ------------------------------------------------------
 * One data-parallel step as rt_train runs it: dist_step_begin before the
 * train program (this process's rows of the step, all processes' rows,
 * the stop flag), dist_step_end after (whether any process had its flag
 * set when the sync read it). The program's rt_dist_sync does the
 * averaging. */
typedef struct DistStep {
    RtDist *d;
    const RtModel *m;
    RtSession *s;
    double weight, total; /* this process's rows in the step; every process's */
    const volatile sig_atomic_t *stop_flag; /* RtTrainConfig.stop */
    bool stop_local, stop_any; /* the flag when the sync read it; in any process */
    bool even; /* every process has the same share of the step's rows */
    void *bucket; /* bucket_elems of the model's float type */
    int64_t bucket_elems;
} DistStep;

RtStatus dist_step_setup(DistStep *st, RtDist *d, const RtModel *m, RtError *err);
void dist_step_free(DistStep *st);
void dist_step_begin(DistStep *st, RtSession *s, int64_t rows, int64_t total,
                     const volatile sig_atomic_t *stop);
bool dist_step_end(DistStep *st);
/* RT_FAIL naming the first of vals[0, n) (n <= 16) that is not the same in
 * every process, what[i] saying what it is. */
RtStatus dist_check_same(RtDist *d, const int64_t *vals, const char *const *what, int n,
                         RtError *err);

#endif
