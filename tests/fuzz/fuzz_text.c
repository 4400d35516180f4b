/* fuzz_text.c: rt_load_text on any bytes, with a few contexts and
 * vocabularies.
 * The model is hand-written (only its inputs matter to the loaders); the
 * input's file goes to a memory file (fuzz_common.c), and a successful load
 * is checked against the loaders' contract (fuzz_check_load).
 */
#include "fuzz.h"

#include <stdbool.h>

/* Input: flags, then the file. Flags: 0x02 gzip it; 0x0c the context, 1 +
 * (flags >> 2 & 3) characters; 0x10 a fixed vocabulary (the bytes "\n
 * abcdefghijklmnopqrstuvwxyz"), else the file's own; 0x20 the ids have a
 * limit of 12 (an embedding of 12 rows), else none. */
void fuzz_text(const uint8_t *data, size_t size, FuzzResult *r) {
    *r = (FuzzResult){0};
    unsigned flags = size ? data[0] : 0;
    int64_t context = 1 + (flags >> 2 & 3);
    int64_t limit = flags & 0x20 ? 12 : 0;
    RtTensor in[] = {
        {.name = "ctx", .dtype = RT_INT, .rank = 2, .dims = {RT_DIM_BATCH, context}, .offset = 0,
         .limit = limit},
        {.name = "next", .dtype = RT_INT, .rank = 1, .dims = {RT_DIM_BATCH}, .offset = 1024,
         .limit = limit},
    };
    FuzzFile f;
    if (!fuzz_file_open(&f, data + (size ? 1 : 0), size ? size - 1 : 0, flags & 0x02))
        return;
    static const char alphabet[] = "\n abcdefghijklmnopqrstuvwxyz";
    RtVocab fixed, out = {0};
    rt_vocab_build(&fixed, alphabet, sizeof alphabet - 1);
    RtModel m = fuzz_model("text", flags, 2, in);
    RtDataset d;
    RtError err = {""};
    RtStatus st = rt_load_text(&d, &m, f.path, context, flags & 0x10 ? &fixed : NULL, &out, &err);
    fuzz_contract(st != RT_OK || (out.n >= 1 && out.n <= 255), "the vocabulary's size");
    for (int k = 1; st == RT_OK && k < out.n; k++)
        fuzz_contract(out.chars[k - 1] < out.chars[k], "the vocabulary's order");
    fuzz_check_load(&m, &d, NULL, st, &err, r);
    fuzz_file_close(&f);
}
