/* fuzz_safetensors.c: weight files and checkpoints on any bytes: what
 * gradc reads from a --weights or --resume file. rt_load_weights or
 * rt_load_checkpoint into a session of a hand-written model, then the
 * metadata the driver reads (run_known_from: the vocabulary and the class
 * names; the model hash and the seed). A load that fails must leave the
 * session as it was (rt.h: all or nothing); that is checked.
 *
 * Input: flags, then the file (in a memory file, fuzz_common.c). Flags:
 * 0x01 float64 (FUZZ_F64); 0x02 a checkpoint (rt_load_checkpoint), else
 * rt_load_weights; 0x04 the model has no optimizer states.
 */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver/run_internal.h"
#include "runtime/rt_internal.h"

/* Parameters and their Adam-like states (offsets fit float64):
 *   h.W [3, 2] @0   h.b [2] @48   s [] @64
 *   opt.m.h.W [3, 2] @128   opt.m.h.b [2] @176   opt.m.s [] @192 */
static const RtTensor st_params[] = {
    {.name = "h.W", .rank = 2, .dims = {3, 2}, .offset = 0},
    {.name = "h.b", .rank = 1, .dims = {2}, .offset = 48},
    {.name = "s", .rank = 0, .offset = 64},
};
static const RtInit st_inits[] = {
    {.kind = RT_INIT_CONST, .a = 0.5},
    {.kind = RT_INIT_CONST, .a = -1},
    {.kind = RT_INIT_CONST, .a = 2},
};
static const RtTensor st_states[] = {
    {.name = "opt.m.h.W", .rank = 2, .dims = {3, 2}, .offset = 128},
    {.name = "opt.m.h.b", .rank = 1, .dims = {2}, .offset = 176},
    {.name = "opt.m.s", .rank = 0, .offset = 192},
};
static const RtInit st_state_inits[] = {
    {.kind = RT_INIT_CONST, .a = 0.25},
    {.kind = RT_INIT_CONST, .a = 0.25},
    {.kind = RT_INIT_CONST, .a = 0.25},
};
static const int st_state_param[] = {0, 1, 2};

enum { ARENA = 256 };

void fuzz_safetensors(const uint8_t *data, size_t size, FuzzResult *r) {
    *r = (FuzzResult){0};
    unsigned flags = size ? data[0] : 0;
    FuzzFile f;
    if (!fuzz_file_open(&f, data + (size ? 1 : 0), size ? size - 1 : 0, 0))
        return;
    bool states = !(flags & 0x04);
    RtModel m = {.name = "st", .elem_size = flags & FUZZ_F64 ? 8 : 4, .max_batch = 1,
                 .arena_bytes = ARENA, .nparams = 3, .params = st_params, .inits = st_inits,
                 .nstates = states ? 3 : 0, .states = st_states,
                 .state_inits = st_state_inits, .state_param = st_state_param};
    RtSession s;
    RtError err = {""};
    if (rt_session_init(&s, &m, 1, &err) != RT_OK) {
        fuzz_file_close(&f);
        return;
    }
    rt_init_params(&s);
    unsigned char before[ARENA];
    memcpy(before, s.arena, ARENA);
    RtSession kept = s;
    RtStatus st = flags & 0x02 ? rt_load_checkpoint(&s, f.path, &err)
                               : rt_load_weights(&s, f.path, &err);
    if (st != RT_OK) {
        fuzz_contract(!memcmp(before, s.arena, ARENA), "a failed load changed the arena");
        fuzz_contract(s.step == kept.step && s.epoch == kept.epoch &&
                          s.epoch_rows == kept.epoch_rows &&
                          !memcmp(&s.rng, &kept.rng, sizeof s.rng),
                      "a failed load changed the session");
        r->errors = 1;
        snprintf(r->msg, sizeof r->msg, "%s", err.msg);
    }
    rt_session_free(&s);

    /* What the driver reads besides the tensors. */
    RunKnown k;
    RtError kerr = {""};
    if (run_known_from(f.path, &k, &kerr) == RT_OK) {
        fuzz_contract(k.nclasses >= 0, "the class count");
        run_known_free(&k);
    } else if (!r->errors) {
        r->errors = 1;
        snprintf(r->msg, sizeof r->msg, "%s", kerr.msg);
    }
    static const char *const keys[] = {"model_hash", "seed", "context"};
    for (int i = 0; i < 3; i++) {
        char *v = NULL;
        if (rt_read_weights_meta(f.path, keys[i], &v, &kerr) == RT_OK)
            free(v);
    }
    fuzz_file_close(&f);
}
