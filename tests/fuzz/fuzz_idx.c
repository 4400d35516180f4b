/* fuzz_idx.c: rt_load_idx on any bytes: images and labels, plain or
 * gzipped.
 * The model is hand-written (only its inputs matter to the loaders); the
 * input's file goes to a memory file (fuzz_common.c), and a successful load
 * is checked against the loaders' contract (fuzz_check_load).
 */
#include "fuzz.h"

#include <stdbool.h>

/* Input: fuzz_split: part 0 the images file, part 1 the labels file.
 * Flags: 0x02 gzip the images, 0x04 gzip the labels (the harness does, so
 * the loader's gzip path sees the fuzzed bytes; gzipped seeds cover the
 * stream itself); 0x08 no labels (prediction); 0x10 the model is x [B, 12]
 * and y [B] without a limit, else x [B, 3, 4] and y [B] with limit 4;
 * 0x20 scale 1/255. */
static const RtTensor idx_img[] = {
    {.name = "x", .dtype = RT_FLOAT, .rank = 3, .dims = {RT_DIM_BATCH, 3, 4}, .offset = 0},
    {.name = "y", .dtype = RT_INT, .rank = 1, .dims = {RT_DIM_BATCH}, .offset = 1024, .limit = 4},
};
static const RtTensor idx_flat[] = {
    {.name = "x", .dtype = RT_FLOAT, .rank = 2, .dims = {RT_DIM_BATCH, 12}, .offset = 0},
    {.name = "y", .dtype = RT_INT, .rank = 1, .dims = {RT_DIM_BATCH}, .offset = 1024},
};

void fuzz_idx(const uint8_t *data, size_t size, FuzzResult *r) {
    *r = (FuzzResult){0};
    FuzzSplit s = fuzz_split(data, size);
    bool labels = !(s.flags & 0x08);
    FuzzFile fi, fl;
    if (!fuzz_file_open(&fi, s.part[0], s.len[0], s.flags & 0x02))
        return;
    if (labels && !fuzz_file_open(&fl, s.part[1], s.len[1], s.flags & 0x04)) {
        fuzz_file_close(&fi);
        return;
    }
    RtModel m = fuzz_model("idx", s.flags, 2, s.flags & 0x10 ? idx_flat : idx_img);
    static const bool need_x[] = {true, false};
    RtDataset d;
    RtError err = {""};
    RtStatus st = rt_load_idx(&d, &m, fi.path, labels ? fl.path : NULL,
                              s.flags & 0x20 ? 1.0 / 255 : 1.0, &err);
    fuzz_check_load(&m, &d, labels ? NULL : need_x, st, &err, r);
    fuzz_file_close(&fi);
    if (labels)
        fuzz_file_close(&fl);
}

