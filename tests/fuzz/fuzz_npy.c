/* fuzz_npy.c: rt_load_npy_inputs on any bytes: one or two .npy files,
 * plain or gzipped.
 * The model is hand-written (only its inputs matter to the loaders); the
 * input's file goes to a memory file (fuzz_common.c), and a successful load
 * is checked against the loaders' contract (fuzz_check_load).
 */
#include "fuzz.h"

#include <stdbool.h>

/* Input: fuzz_split: part 0 the file for x, part 1 the file for y. Flags:
 * 0x02 gzip x's file, 0x04 gzip y's; 0x08 the model has x [B, 2] only and
 * gets part 0 alone, unnamed; 0x10 the files are not named (the loader
 * matches them to inputs by size and dtype); 0x20 only x is needed. The
 * two-input model: x [B, 2] float, y [B] int with limit 3. */
static const RtTensor npy_xy[] = {
    {.name = "x", .dtype = RT_FLOAT, .rank = 2, .dims = {RT_DIM_BATCH, 2}, .offset = 0},
    {.name = "y", .dtype = RT_INT, .rank = 1, .dims = {RT_DIM_BATCH}, .offset = 1024, .limit = 3},
};

void fuzz_npy(const uint8_t *data, size_t size, FuzzResult *r) {
    *r = (FuzzResult){0};
    FuzzSplit s = fuzz_split(data, size);
    bool one = s.flags & 0x08;
    FuzzFile fx, fy;
    if (!fuzz_file_open(&fx, s.part[0], s.len[0], s.flags & 0x02))
        return;
    if (!one && !fuzz_file_open(&fy, s.part[1], s.len[1], s.flags & 0x04)) {
        fuzz_file_close(&fx);
        return;
    }
    bool named = !(s.flags & 0x10);
    RtNpyFile files[2] = {{named && !one ? "x" : NULL, fx.path},
                          {named ? "y" : NULL, one ? NULL : fy.path}};
    RtModel m = fuzz_model("npy", s.flags, one ? 1 : 2, npy_xy);
    static const bool need_x[] = {true, false};
    const bool *need = !one && s.flags & 0x20 ? need_x : NULL;
    RtDataset d;
    RtError err = {""};
    RtStatus st = rt_load_npy_inputs(&d, &m, need, one ? 1 : 2, files, &err);
    fuzz_check_load(&m, &d, need, st, &err, r);
    fuzz_file_close(&fx);
    if (!one)
        fuzz_file_close(&fy);
}

