/* fuzz.h: the bodies of gradc's fuzz targets, shared by the libFuzzer
 * executables (tests/fuzz/main.c, built with GRADC_FUZZ=ON by clang) and by
 * the regression test (tests/test_fuzz_regress.c, built by every build), so
 * that a saved input runs exactly the code the fuzzer ran.
 *
 * Each body takes any bytes, runs one part of gradc on them and returns
 * normally: an input gradc rejects gives an error, never a crash, a hang,
 * a leak or undefined behaviour (the sanitizers of the fuzz build catch
 * those). What the input meant is reported back for the regression test.
 * Input layouts: docs/testing.md, "Fuzzing".
 */
#ifndef GRADC_FUZZ_H
#define GRADC_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/rt.h"

/* What one run of a body did. */
typedef struct FuzzResult {
    int errors;     /* 0: gradc accepted the input; else it reported an error */
    char msg[1024]; /* the first error's text ("" when none) */
} FuzzResult;

/* The model language: fe_compile, then for a model with a loss
 * fe_build_training (autodiff, the optimizer's update), then the optimizing
 * passes, the programs, fusion and the memory plan, and the printers. */
void fuzz_frontend(const uint8_t *data, size_t size, FuzzResult *r);
/* Weight files and checkpoints: rt_load_weights, rt_load_checkpoint and the
 * metadata readers (vocabulary, class names) on one file. */
void fuzz_safetensors(const uint8_t *data, size_t size, FuzzResult *r);
/* rt_load_csv with one of a few column specifications. */
void fuzz_csv(const uint8_t *data, size_t size, FuzzResult *r);
/* rt_load_idx: images, and labels or none, plain or gzipped. */
void fuzz_idx(const uint8_t *data, size_t size, FuzzResult *r);
/* rt_load_npy_inputs: one or two .npy files, plain or gzipped. */
void fuzz_npy(const uint8_t *data, size_t size, FuzzResult *r);
/* rt_load_text with a few contexts, with and without a vocabulary. */
void fuzz_text(const uint8_t *data, size_t size, FuzzResult *r);

/* ---- what the runtime bodies share (fuzz_common.c) ---------------------------- */

/* A file holding bytes[0, n) for a loader that takes a path: an anonymous
 * in-memory file (memfd), gzipped on the way when gzip is set. path is
 * "/proc/self/fd/N". */
typedef struct FuzzFile {
    int fd;
    char path[64];
} FuzzFile;

/* false (nothing to close) when the file cannot be made. */
int fuzz_file_open(FuzzFile *f, const void *bytes, size_t n, int gzip);
void fuzz_file_close(FuzzFile *f);

/* The input cut into a flags byte and up to two parts: byte 0 is the
 * flags, bytes 1 and 2 (little-endian) the length of part 0 (capped at
 * what is there), the rest part 1. Missing bytes read as 0. */
typedef struct FuzzSplit {
    unsigned flags;
    const uint8_t *part[2];
    size_t len[2];
} FuzzSplit;

FuzzSplit fuzz_split(const uint8_t *data, size_t size);

/* Byte 0 of every runtime body's input: 0x01 makes the model float64 (else
 * float32); the other bits are the body's. */
enum { FUZZ_F64 = 0x01 };

/* A hand-written model with these inputs (only the inputs matter to the
 * loaders): elem type by flags & FUZZ_F64, max_batch 8. */
RtModel fuzz_model(const char *name, unsigned flags, int ninputs, const RtTensor *inputs);
/* A broken contract of gradc's code (not a user error): print what, abort. */
void fuzz_contract(int ok, const char *what);
/* After a loader returned st: d as rt.h promises it (on RT_OK every input
 * in need, NULL: every input, loaded with its elements per row, floats
 * finite, ints within their limit; on RT_FAIL all zero), else abort; the
 * error into r; d freed. */
void fuzz_check_load(const RtModel *m, RtDataset *d, const bool *need, RtStatus st,
                     const RtError *err, FuzzResult *r);

#endif
