/* fuzz_csv.c: rt_load_csv on any bytes, with one of a few column
 * specifications.
 * The model is hand-written (only its inputs matter to the loaders); the
 * input's file goes to a memory file (fuzz_common.c), and a successful load
 * is checked against the loaders' contract (fuzz_check_load).
 */
#include "fuzz.h"

#include <stdbool.h>

/* Input: flags, then the file. Flags: 0x02 header; 0x04 columns by header
 * name (x1, x2, label), else by index (0, 1, 2); 0x08 the label feeds a
 * float input [B, 1], else an int input [B] with limit 3; 0x10 the class
 * names bird, cat, dog are given; 0x20 only x is needed (prediction). */
static const RtTensor csv_int_y[] = {
    {.name = "x", .dtype = RT_FLOAT, .rank = 2, .dims = {RT_DIM_BATCH, 2}, .offset = 0},
    {.name = "y", .dtype = RT_INT, .rank = 1, .dims = {RT_DIM_BATCH}, .offset = 1024, .limit = 3},
};
static const RtTensor csv_float_y[] = {
    {.name = "x", .dtype = RT_FLOAT, .rank = 2, .dims = {RT_DIM_BATCH, 2}, .offset = 0},
    {.name = "y", .dtype = RT_FLOAT, .rank = 2, .dims = {RT_DIM_BATCH, 1}, .offset = 1024},
};

void fuzz_csv(const uint8_t *data, size_t size, FuzzResult *r) {
    *r = (FuzzResult){0};
    unsigned flags = size ? data[0] : 0;
    FuzzFile f;
    if (!fuzz_file_open(&f, data + (size ? 1 : 0), size ? size - 1 : 0, 0))
        return;
    static const RtColumnSel x_idx[] = {{NULL, 0}, {NULL, 1}}, y_idx[] = {{NULL, 2}};
    static const RtColumnSel x_name[] = {{"x1", 0}, {"x2", 0}}, y_name[] = {{"label", 0}};
    bool names = flags & 0x04;
    RtCsvInput ins[] = {{"x", 2, names ? x_name : x_idx}, {"y", 1, names ? y_name : y_idx}};
    static const char *const classes[] = {"bird", "cat", "dog"};
    static const bool need_x[] = {true, false};
    RtModel m = fuzz_model("csv", flags, 2, flags & 0x08 ? csv_float_y : csv_int_y);
    RtCsvSpec spec = {.path = f.path, .header = flags & 0x02, .ninputs = 2, .inputs = ins,
                      .need = flags & 0x20 ? need_x : NULL,
                      .nclasses = flags & 0x10 ? 3 : 0, .classes = classes};
    RtDataset d;
    RtError err = {""};
    RtStatus st = rt_load_csv(&d, &m, &spec, &err);
    fuzz_check_load(&m, &d, spec.need, st, &err, r);
    fuzz_file_close(&f);
}

