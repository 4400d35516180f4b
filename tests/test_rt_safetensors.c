/* test_rt_safetensors.c: weight files: the exact layout the safetensors
 * format prescribes, round trips and dtype conversion, all-or-nothing
 * loading of damaged files, atomic saving, string metadata (a text model's
 * vocabulary) written beside the weights and read back, optimizer states
 * after the parameters, and checkpoints (states plus step, epoch and RNG);
 * the whole header checked (tensors tile the data section), the checksums
 * (every bit flipped and every truncation refused as corrupt; files of
 * other tools without them still load), and the temporary files of killed
 * saves cleared. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "runtime/rt_internal.h"

#define assert_contains(hay, needle)                                                        \
    do {                                                                                    \
        if (!strstr((hay), (needle)))                                                       \
            fail_msg("expected \"%s\" in \"%s\"", (needle), (hay));                         \
    } while (0)

static char tmpdir[] = "/tmp/gradc_test_st_XXXXXX";

static const char *tmp_path(const char *name) {
    static char path[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/%s", tmpdir, name);
    return path[k];
}

/* Parameters (offsets fit float64):
 *   h.W [3, 2] @0   h.b [2] @48   odd "name"\ [1] @64   s [] @72 */
static const RtTensor st_params[] = {
    {.name = "h.W", .rank = 2, .dims = {3, 2}, .offset = 0},
    {.name = "h.b", .rank = 1, .dims = {2}, .offset = 48},
    {.name = "odd \"name\"\\", .rank = 1, .dims = {1}, .offset = 64},
    {.name = "s", .rank = 0, .offset = 72},
};
static const RtInit st_inits[] = {
    {.kind = RT_INIT_NORMAL, .a = 0, .b = 1},
    {.kind = RT_INIT_NORMAL, .a = 0, .b = 1},
    {.kind = RT_INIT_CONST, .a = -2.5},
    {.kind = RT_INIT_CONST, .a = 0.125},
};

static RtModel st_model(int elem_size) {
    RtModel m = {.name = "st", .elem_size = elem_size, .max_batch = 1, .arena_bytes = 80,
                 .nparams = 4, .params = st_params, .inits = st_inits};
    return m;
}

static RtSession session_for(const RtModel *m, uint64_t seed, bool init) {
    RtSession s;
    RtError err = {""};
    if (rt_session_init(&s, m, seed, &err) != RT_OK)
        fail_msg("%s", err.msg);
    if (init)
        rt_init_params(&s);
    return s;
}

static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* A file of the 8-byte length of header, header, then data. */
static void write_raw(const char *path, const char *header, const void *data, size_t ndata) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t n = strlen(header);
    for (int i = 0; i < 8; i++)
        fputc((int)((n >> (8 * i)) & 0xff), f);
    fputs(header, f);
    fwrite(data, 1, ndata, f);
    fclose(f);
}

/* Names in tmpdir that contain ".tmp." (left-over temporary files). */
static int count_temp_files(void) {
    DIR *dir = opendir(tmpdir);
    assert_non_null(dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(dir));)
        n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(dir);
    return n;
}

/* Load must fail with want in the message and leave the arena as it was. */
static void expect_load_error(const RtModel *m, const char *path, const char *want) {
    RtSession s = session_for(m, 99, true);
    unsigned char before[80];
    memcpy(before, s.arena, sizeof before);
    RtError err = {""};
    assert_int_equal(rt_load_weights(&s, path, &err), RT_FAIL);
    assert_contains(err.msg, want);
    assert_memory_equal(s.arena, before, sizeof before);
    rt_session_free(&s);
}

/* The checksums as the format defines them, from a file's bytes f[0, len):
 * CRC-32 (zlib) of the data section, and of the length and header with
 * header_crc32's 8 digits (header bytes 33 to 40) read as '0's. */
enum { HCRC_AT = 33, DCRC_AT = 57 };

static void file_crcs(const unsigned char *f, size_t len, uint32_t *hcrc, uint32_t *dcrc) {
    uint64_t n = 0;
    for (int i = 0; i < 8; i++)
        n |= (uint64_t)f[i] << (8 * i);
    unsigned char *copy = malloc(len);
    memcpy(copy, f, len);
    memset(copy + 8 + HCRC_AT, '0', 8);
    *hcrc = (uint32_t)crc32(0, copy, (uInt)(8 + n));
    *dcrc = (uint32_t)crc32(0, f + 8 + n, (uInt)(len - 8 - n));
    free(copy);
}

/* Write the right checksums into f[0, len) (after an edit of the header). */
static void reseal(unsigned char *f, size_t len) {
    uint32_t h, d;
    char digits[9];
    file_crcs(f, len, &h, &d);
    snprintf(digits, sizeof digits, "%08x", d);
    memcpy(f + 8 + DCRC_AT, digits, 8);
    file_crcs(f, len, &h, &d);
    snprintf(digits, sizeof digits, "%08x", h);
    memcpy(f + 8 + HCRC_AT, digits, 8);
}

/* The header of the st model's weights; '?' marks the checksums' digits. */
static const char golden_header[] =
    "{\"__metadata__\":{\"header_crc32\":\"????????\",\"data_crc32\":\"????????\","
    "\"format\":\"gradc\",\"model\":\"st\"},"
    "\"h.W\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]},"
    "\"h.b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]},"
    "\"odd \\\"name\\\"\\\\\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[32,36]},"
    "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[36,40]}}";

/* The safetensors rules: u64 little-endian header size N, N bytes of JSON
 * (space padding allowed), data starting 8-byte aligned, each tensor's
 * little-endian bytes at [begin, end) of the data, tensors in model order. */
static void test_weights_file_has_safetensors_layout(void **state) {
    (void)state;
    RtModel m = st_model(4);
    RtSession s = session_for(&m, 1, true);
    RtError err = {""};
    const char *path = tmp_path("layout.safetensors");
    assert_int_equal(rt_save_weights(&s, path, &err), RT_OK);
    size_t len;
    unsigned char *f = slurp(path, &len);
    uint64_t n = 0;
    for (int i = 0; i < 8; i++)
        n |= (uint64_t)f[i] << (8 * i);
    assert_int_equal((8 + n) % 8, 0);
    assert_int_equal(len, 8 + n + 40);
    size_t golden = strlen(golden_header);
    assert_true(n >= golden && n < golden + 8);
    for (size_t i = 0; i < golden; i++)
        if (golden_header[i] != '?' && f[8 + i] != (unsigned char)golden_header[i])
            fail_msg("header byte %zu is '%c', expected '%c'", i, f[8 + i], golden_header[i]);
    assert_int_equal(golden_header[HCRC_AT], '?');
    assert_int_equal(golden_header[DCRC_AT], '?');
    uint32_t hcrc, dcrc;
    char digits[9];
    file_crcs(f, len, &hcrc, &dcrc);
    snprintf(digits, sizeof digits, "%08x", hcrc);
    assert_memory_equal(f + 8 + HCRC_AT, digits, 8);
    snprintf(digits, sizeof digits, "%08x", dcrc);
    assert_memory_equal(f + 8 + DCRC_AT, digits, 8);
    for (size_t i = 8 + golden; i < 8 + n; i++)
        assert_int_equal(f[i], ' ');
    char why[200] = "";
    RtJson *j = rt_json_parse((const char *)f + 8, n, why, sizeof why);
    if (!j)
        fail_msg("header is not JSON: %s", why);
    assert_non_null(rt_json_get(j, "odd \"name\"\\"));
    rt_json_free(j);
    /* the data: float32 little-endian, parameters in order */
    const unsigned char *data = f + 8 + n;
    for (int p = 0, at = 0; p < 4; p++) {
        const float *v = rt_ptr(&s, &st_params[p]);
        for (int64_t i = 0; i < rt_numel(&st_params[p], 1); i++, at += 4) {
            uint32_t bits = (uint32_t)data[at] | (uint32_t)data[at + 1] << 8 |
                            (uint32_t)data[at + 2] << 16 | (uint32_t)data[at + 3] << 24;
            float x;
            memcpy(&x, &bits, 4);
            assert_true(x == v[i]);
        }
    }
    assert_true(((float *)rt_ptr(&s, &st_params[2]))[0] == -2.5f);
    free(f);
    rt_session_free(&s);
}

/* Whatever the header's length, the data starts 8-byte aligned: model names
 * of 1 to 8 characters shift the header through every remainder. */
static void test_weights_data_start_is_8_byte_aligned_for_any_header(void **state) {
    (void)state;
    const char *names[] = {"a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg", "abcdefgh"};
    for (int k = 0; k < 8; k++) {
        RtModel m = st_model(4);
        m.name = names[k];
        RtSession s = session_for(&m, 1, true);
        RtError err = {""};
        const char *path = tmp_path("align.safetensors");
        assert_int_equal(rt_save_weights(&s, path, &err), RT_OK);
        size_t len;
        unsigned char *f = slurp(path, &len);
        uint64_t n = 0;
        for (int i = 0; i < 8; i++)
            n |= (uint64_t)f[i] << (8 * i);
        assert_int_equal(n % 8, 0);
        assert_int_equal(len, 8 + n + 40);
        assert_true(f[8 + n - 1] == ' ' || f[8 + n - 1] == '}');
        free(f);
        RtSession t = session_for(&m, 2, false);
        assert_int_equal(rt_load_weights(&t, path, &err), RT_OK);
        assert_memory_equal(s.arena, t.arena, 80);
        rt_session_free(&s);
        rt_session_free(&t);
    }
}

static void test_weights_round_trip_restores_every_parameter(void **state) {
    (void)state;
    for (int es = 4; es <= 8; es += 4) {
        RtModel m = st_model(es);
        RtSession a = session_for(&m, 1, true);
        RtSession b = session_for(&m, 2, false);
        RtError err = {""};
        const char *path = tmp_path("rt.safetensors");
        assert_int_equal(rt_save_weights(&a, path, &err), RT_OK);
        assert_memory_not_equal(a.arena, b.arena, 80);
        assert_int_equal(rt_load_weights(&b, path, &err), RT_OK);
        assert_memory_equal(a.arena, b.arena, 80);
        rt_session_free(&a);
        rt_session_free(&b);
    }
}

/* F64 files load into a float32 model and F32 files into a float64 one. */
static void test_weights_convert_between_f32_and_f64(void **state) {
    (void)state;
    RtModel m64 = st_model(8), m32 = st_model(4);
    RtSession a = session_for(&m64, 1, true);
    RtSession b = session_for(&m32, 2, false);
    RtError err = {""};
    const char *path = tmp_path("f64.safetensors");
    assert_int_equal(rt_save_weights(&a, path, &err), RT_OK);
    assert_int_equal(rt_load_weights(&b, path, &err), RT_OK);
    for (int p = 0; p < 4; p++)
        for (int64_t i = 0; i < rt_numel(&st_params[p], 1); i++)
            assert_true(((float *)rt_ptr(&b, &st_params[p]))[i] ==
                        (float)((double *)rt_ptr(&a, &st_params[p]))[i]);
    RtSession c = session_for(&m64, 3, false);
    const char *path32 = tmp_path("f32.safetensors");
    assert_int_equal(rt_save_weights(&b, path32, &err), RT_OK);
    assert_int_equal(rt_load_weights(&c, path32, &err), RT_OK);
    for (int p = 0; p < 4; p++)
        for (int64_t i = 0; i < rt_numel(&st_params[p], 1); i++)
            assert_true(((double *)rt_ptr(&c, &st_params[p]))[i] ==
                        (double)((float *)rt_ptr(&b, &st_params[p]))[i]);
    rt_session_free(&a);
    rt_session_free(&b);
    rt_session_free(&c);
}

static void test_weights_truncated_file_is_an_error_and_arena_unchanged(void **state) {
    (void)state;
    RtModel m = st_model(4);
    RtSession s = session_for(&m, 1, true);
    RtError err = {""};
    const char *path = tmp_path("trunc.safetensors");
    assert_int_equal(rt_save_weights(&s, path, &err), RT_OK);
    rt_session_free(&s);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size - 1), 0); /* last byte of 's' gone */
    char want[200];
    snprintf(want, sizeof want, "trunc.safetensors: corrupt checkpoint: truncated: expected %lld "
                                "bytes, found %lld (tensor 's' ends at byte 40 of a 39-byte data "
                                "section)",
             (long long)st.st_size, (long long)st.st_size - 1);
    expect_load_error(&m, path, want);
    assert_int_equal(truncate(path, 100), 0); /* inside the header */
    snprintf(want, sizeof want, "corrupt checkpoint: truncated: expected at least %lld bytes (a "
                                "%lld-byte header after the 8-byte length), found 100",
             (long long)st.st_size - 40, (long long)st.st_size - 48);
    expect_load_error(&m, path, want);
    assert_int_equal(truncate(path, 5), 0);
    expect_load_error(&m, path, "corrupt checkpoint: truncated: expected at least 8 bytes (the "
                                "header length), found 5");
    assert_int_equal(truncate(path, 0), 0);
    expect_load_error(&m, path, "trunc.safetensors: corrupt checkpoint: truncated: the file is "
                                "empty");
}

static void test_weights_bad_json_is_a_corrupt_header(void **state) {
    (void)state;
    RtModel m = st_model(4);
    const char *path = tmp_path("bad.safetensors");
    static const struct {
        const char *header, *want;
    } cases[] = {
        {"{\"h.W\":{\"dtype\":\"F32\",}}", "corrupt header: expected a string key, found '}' at "
                                           "byte 22"},
        {"{\"h.W\":{\"dtype\":\"F32\"", "corrupt header: expected ',' or '}' in an object, "
                                        "found the end of the text at byte 21"},
        {"[1, 2]", "corrupt header: expected a JSON object"},
        {"{\"a\":1} x", "corrupt header: expected the end of the text, found 'x' at byte 8"},
        {"{\"a\":01}", "corrupt header: expected ',' or '}' in an object, found '1'"},
        {"{\"a\":\"\\q\"}", "corrupt header: invalid escape '\\q'"},
        {"{\"a\":1,\"a\":2}", "corrupt header: duplicate key \"a\""},
        {"{\"h.W\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,20]}}",
         "corrupt header: tensor 'h.W' spans 20 bytes, but 6 F32 elements need 24"},
        {"{\"h.W\":{\"dtype\":\"F32\",\"shape\":[3,2.5],\"data_offsets\":[0,24]}}",
         "corrupt header: tensor 'h.W' has a shape entry that is not a count"},
        {"{\"h.W\":{\"dtype\":\"BF16\",\"shape\":[3,2],\"data_offsets\":[0,12]}}",
         "parameter 'h.W' has dtype BF16; gradc reads F32 and F64"},
    };
    static const unsigned char zeros[64];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_raw(path, cases[i].header, zeros, sizeof zeros);
        expect_load_error(&m, path, cases[i].want);
    }
    /* an absurd header length */
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < 8; i++)
        fputc(0xff, f);
    fclose(f);
    expect_load_error(&m, path, "corrupt header: header length 18446744073709551615 is "
                                "implausible");
}

/* Other models' files: a shape that differs, a tensor that is absent, and
 * extra tensors (ignored). */
static void test_weights_wrong_shape_and_missing_tensor_name_the_parameter(void **state) {
    (void)state;
    RtModel m = st_model(4);
    RtTensor other[4];
    memcpy(other, st_params, sizeof other);
    other[0].dims[0] = 2;
    other[0].dims[1] = 3;
    RtModel mo = m;
    mo.params = other;
    RtSession so = session_for(&mo, 1, true);
    RtError err = {""};
    const char *path = tmp_path("other.safetensors");
    assert_int_equal(rt_save_weights(&so, path, &err), RT_OK);
    expect_load_error(&m, path, "parameter 'h.W' has shape [2, 3] in the file, but the model "
                                "expects [3, 2]");
    rt_session_free(&so);

    RtModel fewer = m;
    fewer.nparams = 3; /* no 's' */
    RtSession sf = session_for(&fewer, 1, true);
    assert_int_equal(rt_save_weights(&sf, path, &err), RT_OK);
    expect_load_error(&m, path, "other.safetensors: parameter 's' [] is missing");
    /* the other way round, 's' is an extra tensor and is ignored */
    RtSession full = session_for(&m, 5, true);
    assert_int_equal(rt_save_weights(&full, path, &err), RT_OK);
    assert_int_equal(rt_load_weights(&sf, path, &err), RT_OK);
    assert_memory_equal(sf.arena, full.arena, 72);
    rt_session_free(&sf);
    rt_session_free(&full);
}

static void test_weights_save_into_missing_directory_fails_cleanly(void **state) {
    (void)state;
    RtModel m = st_model(4);
    RtSession s = session_for(&m, 1, true);
    RtError err = {""};
    const char *path = tmp_path("no_such_dir/w.safetensors");
    assert_int_equal(rt_save_weights(&s, path, &err), RT_FAIL);
    assert_contains(err.msg, "cannot write '");
    assert_contains(err.msg, "no_such_dir/w.safetensors': No such file or directory");
    assert_int_equal(count_temp_files(), 0);
    RtSession t = session_for(&m, 1, false);
    assert_int_equal(rt_load_weights(&t, path, &err), RT_FAIL);
    assert_contains(err.msg, "w.safetensors': No such file or directory");
    rt_session_free(&s);
    rt_session_free(&t);
}

/* A second save replaces the file whole; a failed save (here the temporary
 * file cannot be created because a directory sits at its name) leaves the
 * old file byte for byte. */
static void test_weights_save_replaces_atomically_and_failure_keeps_old_file(void **state) {
    (void)state;
    RtModel m = st_model(4);
    RtSession a = session_for(&m, 1, true), b = session_for(&m, 2, true);
    RtError err = {""};
    const char *path = tmp_path("keep.safetensors");
    assert_int_equal(rt_save_weights(&a, path, &err), RT_OK);
    assert_int_equal(rt_save_weights(&b, path, &err), RT_OK);
    assert_int_equal(count_temp_files(), 0);
    RtSession c = session_for(&m, 3, false);
    assert_int_equal(rt_load_weights(&c, path, &err), RT_OK);
    assert_memory_equal(c.arena, b.arena, 80);

    size_t len_before, len_after;
    unsigned char *before = slurp(path, &len_before);
    char blocker[300];
    snprintf(blocker, sizeof blocker, "%s.tmp.%ld", path, (long)getpid());
    assert_int_equal(mkdir(blocker, 0755), 0);
    assert_int_equal(rt_save_weights(&a, path, &err), RT_FAIL);
    assert_contains(err.msg, "keep.safetensors': Is a directory");
    assert_int_equal(rmdir(blocker), 0);
    unsigned char *after = slurp(path, &len_after);
    assert_int_equal(len_before, len_after);
    assert_memory_equal(before, after, len_before);
    free(before);
    free(after);
    rt_session_free(&a);
    rt_session_free(&b);
    rt_session_free(&c);
}

/* The rename fails (a directory is in the way): the temporary file, already
 * written, is removed. */
static void test_weights_failed_rename_removes_temporary_file(void **state) {
    (void)state;
    RtModel m = st_model(4);
    RtSession s = session_for(&m, 1, true);
    RtError err = {""};
    const char *path = tmp_path("dir.safetensors");
    assert_int_equal(mkdir(path, 0755), 0);
    assert_int_equal(rt_save_weights(&s, path, &err), RT_FAIL);
    assert_contains(err.msg, "dir.safetensors': Is a directory");
    assert_int_equal(count_temp_files(), 0);
    assert_int_equal(rmdir(path), 0);
    rt_session_free(&s);
}

static void test_weights_reject_duplicate_parameter_names(void **state) {
    (void)state;
    RtTensor dup[2] = {st_params[0], st_params[0]};
    dup[1].offset = 24;
    RtModel m = st_model(4);
    m.nparams = 2;
    m.params = dup;
    RtSession s = session_for(&m, 1, true);
    RtError err = {""};
    const char *path = tmp_path("dup.safetensors");
    assert_int_equal(rt_save_weights(&s, path, &err), RT_FAIL);
    assert_contains(err.msg, "two parameters are named 'h.W'");
    assert_int_equal(access(path, F_OK), -1);
    rt_session_free(&s);
}

static int setup(void **state) {
    (void)state;
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    DIR *dir = opendir(tmpdir);
    if (!dir)
        return -1;
    char path[600];
    for (struct dirent *e; (e = readdir(dir));) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
        unlink(path);
    }
    closedir(dir);
    return rmdir(tmpdir);
}

/* Extra metadata follows "format" and "model" in the header, JSON-escaped,
 * and reads back byte for byte (a vocabulary with control characters,
 * quotes and Latin-1 as UTF-8); absent keys read as NULL. */
static void test_weights_metadata_round_trips_and_keeps_format_and_model(void **state) {
    (void)state;
    RtModel m = st_model(4);
    RtSession s = session_for(&m, 1, true);
    RtError err = {""};
    const char *path = tmp_path("meta.safetensors");
    const char *keys[] = {"vocab", "context"};
    const char *values[] = {"\n !\"\\az\xc3\xa9", "64"};
    if (rt_save_weights_meta(&s, path, 2, keys, values, &err) != RT_OK)
        fail_msg("%s", err.msg);
    size_t len;
    unsigned char *f = slurp(path, &len);
    const char *want = "\"format\":\"gradc\",\"model\":\"st\","
                       "\"vocab\":\"\\u000a !\\\"\\\\az\xc3\xa9\",\"context\":\"64\"},";
    assert_memory_equal(f + 8 + DCRC_AT + 10, want, strlen(want));
    free(f);
    char *v = NULL;
    assert_int_equal(rt_read_weights_meta(path, "vocab", &v, &err), RT_OK);
    assert_string_equal(v, values[0]);
    free(v);
    assert_int_equal(rt_read_weights_meta(path, "format", &v, &err), RT_OK);
    assert_string_equal(v, "gradc");
    free(v);
    assert_int_equal(rt_read_weights_meta(path, "nothing", &v, &err), RT_OK);
    assert_null(v);
    /* The weights themselves still load. */
    RtSession t = session_for(&m, 2, false);
    assert_int_equal(rt_load_weights(&t, path, &err), RT_OK);
    assert_memory_equal(t.arena, s.arena, 40);
    rt_session_free(&t);
    rt_session_free(&s);
}

static void test_weights_metadata_rejects_reserved_duplicate_and_non_utf8(void **state) {
    (void)state;
    RtModel m = st_model(4);
    RtSession s = session_for(&m, 1, true);
    RtError err = {""};
    const char *path = tmp_path("badmeta.safetensors");
    const char *reserved[] = {"model"}, *dup[] = {"a", "a"}, *vals[] = {"x", "y"};
    assert_int_equal(rt_save_weights_meta(&s, path, 1, reserved, vals, &err), RT_FAIL);
    assert_contains(err.msg, "metadata key 'model' is reserved");
    assert_int_equal(rt_save_weights_meta(&s, path, 2, dup, vals, &err), RT_FAIL);
    assert_contains(err.msg, "metadata key 'a' is given twice");
    const char *k[] = {"vocab"}, *latin1[] = {"\xe9"};
    assert_int_equal(rt_save_weights_meta(&s, path, 1, k, latin1, &err), RT_FAIL);
    assert_contains(err.msg, "metadata 'vocab' is not valid UTF-8");
    assert_int_not_equal(access(path, F_OK), 0); /* nothing written */
    char *v = NULL;
    assert_int_equal(rt_read_weights_meta(tmp_path("none.safetensors"), "vocab", &v, &err),
                     RT_FAIL);
    assert_contains(err.msg, "cannot open");
    write_raw(tmp_path("num.safetensors"), "{\"__metadata__\":{\"vocab\":3}}", "", 0);
    assert_int_equal(rt_read_weights_meta(tmp_path("num.safetensors"), "vocab", &v, &err),
                     RT_FAIL);
    assert_contains(err.msg, "metadata 'vocab' is not a string");
    rt_session_free(&s);
}

/* ---- optimizer states and checkpoints -------------------------------------------
 * The st model plus two states (float64 offsets):
 *   opt.m.h.W [3, 2] @80 (CONST 0.5)   opt.m.s [] @128 (NORMAL) */
static const RtTensor st_states[] = {
    {.name = "opt.m.h.W", .rank = 2, .dims = {3, 2}, .offset = 80},
    {.name = "opt.m.s", .rank = 0, .offset = 128},
};
static const RtInit st_state_inits[] = {{.kind = RT_INIT_CONST, .a = 0.5},
                                        {.kind = RT_INIT_NORMAL, .a = 0, .b = 1}};
static const int st_state_param[] = {0, 3};

static RtModel opt_model(int elem_size) {
    RtModel m = st_model(elem_size);
    m.arena_bytes = 136;
    m.nstates = 2;
    m.states = st_states;
    m.state_inits = st_state_inits;
    m.state_param = st_state_param;
    return m;
}

/* Bytes of the st parameters / the states in the arena (float64 layout). */
enum { PARAM_BYTES = 80, ALL_BYTES = 136 };

static void fill_states(RtSession *s, double v) {
    for (int k = 0; k < 2; k++)
        for (int64_t i = 0; i < rt_numel(&st_states[k], 1); i++)
            rt_store_float(rt_ptr(s, &st_states[k]), s->m->elem_size, i, v + (double)i);
}

/* The states follow the parameters in the header and the data, under their
 * own names, and load back. */
static void test_weights_save_states_after_parameters_and_load_them(void **state) {
    (void)state;
    RtModel m = opt_model(4);
    RtSession s = session_for(&m, 1, true);
    fill_states(&s, -3);
    RtError err = {""};
    const char *path = tmp_path("states.safetensors");
    assert_int_equal(rt_save_weights(&s, path, &err), RT_OK);
    size_t len;
    unsigned char *f = slurp(path, &len);
    uint64_t n = 0;
    for (int i = 0; i < 8; i++)
        n |= (uint64_t)f[i] << (8 * i);
    const char *want = ",\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[36,40]},"
                       "\"opt.m.h.W\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[40,64]},"
                       "\"opt.m.s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[64,68]}}";
    char *header = strndup((const char *)f + 8, n);
    assert_contains(header, want);
    assert_int_equal(len, 8 + n + 68);
    float last;
    memcpy(&last, f + 8 + n + 64, 4);
    assert_true(last == -3.0f);
    free(header);
    free(f);
    RtSession t = session_for(&m, 2, true);
    assert_int_equal(rt_load_weights(&t, path, &err), RT_OK);
    assert_memory_equal(t.arena, s.arena, ALL_BYTES);
    rt_session_free(&s);
    rt_session_free(&t);
}

/* A file without any state (an older gradc's, another tool's) loads its
 * parameters and leaves the states alone; a file with some states but not
 * all is refused, naming the missing one; tensors the model lacks are
 * ignored. */
static void test_weights_without_states_keep_them_and_partial_states_fail(void **state) {
    (void)state;
    RtModel plain = st_model(8), m = opt_model(8);
    RtSession old = session_for(&plain, 1, true);
    RtError err = {""};
    const char *path = tmp_path("nostates.safetensors");
    assert_int_equal(rt_save_weights(&old, path, &err), RT_OK);
    RtSession s = session_for(&m, 2, true);
    unsigned char before[ALL_BYTES];
    memcpy(before, s.arena, ALL_BYTES);
    assert_int_equal(rt_load_weights(&s, path, &err), RT_OK);
    assert_memory_equal(s.arena, old.arena, PARAM_BYTES);
    assert_memory_equal((char *)s.arena + PARAM_BYTES, before + PARAM_BYTES,
                        ALL_BYTES - PARAM_BYTES);

    RtModel one = m;
    one.nstates = 1; /* saves opt.m.h.W only */
    RtSession so = session_for(&one, 3, true);
    assert_int_equal(rt_save_weights(&so, path, &err), RT_OK);
    expect_load_error(&m, path, "optimizer state 'opt.m.s' [] is missing, though the file has "
                                "other optimizer states of this model");
    assert_int_equal(rt_load_weights(&old, path, &err), RT_OK); /* extra tensors: ignored */
    assert_memory_equal(old.arena, so.arena, PARAM_BYTES);

    RtTensor wrong[2] = {st_states[0], st_states[1]};
    wrong[0].dims[0] = 2;
    wrong[0].dims[1] = 3;
    RtModel mw = m;
    mw.states = wrong;
    RtSession sw = session_for(&mw, 1, true);
    assert_int_equal(rt_save_weights(&sw, path, &err), RT_OK);
    expect_load_error(&m, path, "optimizer state 'opt.m.h.W' has shape [2, 3] in the file, but "
                                "the model expects [3, 2]");
    rt_session_free(&old);
    rt_session_free(&s);
    rt_session_free(&so);
    rt_session_free(&sw);
}

static void test_weights_reject_a_state_named_like_a_parameter(void **state) {
    (void)state;
    RtTensor dup[2] = {st_states[0], st_states[1]};
    dup[1].name = "h.b";
    RtModel m = opt_model(4);
    m.states = dup;
    RtSession s = session_for(&m, 1, true);
    RtError err = {""};
    assert_int_equal(rt_save_weights(&s, tmp_path("dupstate.safetensors"), &err), RT_FAIL);
    assert_contains(err.msg, "two tensors (a parameter and an optimizer state) are named 'h.b'");
    rt_session_free(&s);
}

/* A checkpoint restores the parameters, the states, step, epoch, the rows
 * done of an unfinished epoch and the RNG, whatever the loading session's
 * seed; the caller's metadata sits beside the checkpoint's. */
static void test_checkpoint_restores_states_counters_and_rng(void **state) {
    (void)state;
    for (int es = 4; es <= 8; es += 4) {
        RtModel m = opt_model(es);
        RtSession a = session_for(&m, 1, true);
        fill_states(&a, 1.5);
        a.step = 12345678901LL;
        a.epoch = 7;
        a.epoch_rows = 24;
        for (int k = 0; k < 5; k++)
            rt_rng_next(&a.rng);
        a.rng.s[3] = 0xffffffffffffffffu; /* every hex digit */
        RtError err = {""};
        const char *path = tmp_path("ckpt.safetensors");
        const char *keys[] = {"vocab"}, *values[] = {"abc"};
        if (rt_save_checkpoint(&a, path, 1, keys, values, &err) != RT_OK)
            fail_msg("%s", err.msg);
        char *v = NULL;
        assert_int_equal(rt_read_weights_meta(path, "step", &v, &err), RT_OK);
        assert_string_equal(v, "12345678901");
        free(v);
        assert_int_equal(rt_read_weights_meta(path, "vocab", &v, &err), RT_OK);
        assert_string_equal(v, "abc");
        free(v);
        assert_int_equal(rt_read_weights_meta(path, "rng", &v, &err), RT_OK);
        assert_int_equal(strlen(v), 4 * 16 + 3);
        assert_contains(v, " ffffffffffffffff");
        free(v);
        RtSession b = session_for(&m, 99, true);
        assert_int_equal(rt_load_checkpoint(&b, path, &err), RT_OK);
        assert_memory_equal(b.arena, a.arena, ALL_BYTES);
        assert_true(b.step == a.step && b.epoch == 7 && b.epoch_rows == 24);
        assert_memory_equal(&b.rng, &a.rng, sizeof a.rng);
        /* a checkpoint is also a weight file: plain loading ignores the counters */
        RtSession c = session_for(&m, 5, false);
        assert_int_equal(rt_load_weights(&c, path, &err), RT_OK);
        assert_memory_equal(c.arena, a.arena, ALL_BYTES);
        assert_true(c.step == 0 && c.epoch == 0);
        rt_session_free(&a);
        rt_session_free(&b);
        rt_session_free(&c);
    }
}

/* Load must fail with want in the message and leave the session as it was. */
static void expect_checkpoint_error(const RtModel *m, const char *path, const char *want) {
    RtSession s = session_for(m, 99, true);
    s.step = 3;
    RtSession before = s;
    unsigned char bytes[ALL_BYTES];
    memcpy(bytes, s.arena, ALL_BYTES);
    RtError err = {""};
    assert_int_equal(rt_load_checkpoint(&s, path, &err), RT_FAIL);
    assert_contains(err.msg, want);
    assert_memory_equal(s.arena, bytes, ALL_BYTES);
    assert_memory_equal(&s, &before, sizeof s);
    rt_session_free(&s);
}

/* Plain weights are not a checkpoint: without states (when the model has
 * some) or without the step, epoch and rng metadata; damaged counters are
 * named; the checkpoint's own keys are not the caller's to use. */
static void test_checkpoint_refuses_plain_weights_and_bad_counters(void **state) {
    (void)state;
    RtModel m = opt_model(8), plain = st_model(8);
    RtError err = {""};
    const char *path = tmp_path("plain.safetensors");
    RtSession p = session_for(&plain, 1, true);
    assert_int_equal(rt_save_weights(&p, path, &err), RT_OK);
    expect_checkpoint_error(&m, path, "plain.safetensors' is not a checkpoint: it has no "
                                      "optimizer state ('opt.m.h.W' [3, 2] is missing)");
    /* a stateless model needs the counters all the same */
    RtSession q = session_for(&plain, 1, true);
    assert_int_equal(rt_load_checkpoint(&q, path, &err), RT_FAIL);
    assert_contains(err.msg, "is not a checkpoint: it has no \"step\" in its metadata");
    rt_session_free(&q);

    RtSession s = session_for(&m, 1, true);
    assert_int_equal(rt_save_weights(&s, path, &err), RT_OK);
    expect_checkpoint_error(&m, path, "is not a checkpoint: it has no \"step\" in its metadata");
    const char *k3[] = {"step", "epoch", "rng"};
    const char *bad[][3] = {
        {"12", "1", "1 2 3"},
        {"12", "-1", "1 2 3 4"},
        {"1x", "1", "1 2 3 4"},
        {"12", "1", "0 0 0 0"},
        {"12", "1", "1 2 3 4 "},
        {"12", "1", "1 2 3 10000000000000000"},
    };
    const char *want[] = {"metadata \"rng\" is \"1 2 3\"", "metadata \"epoch\" is \"-1\"",
                          "metadata \"step\" is \"1x\"", "\"rng\" is \"0 0 0 0\"; expected 4 "
                                                         "hex words, not all zero",
                          "\"rng\" is \"1 2 3 4 \"", "\"rng\" is \"1 2 3 10000000000000000\""};
    for (int k = 0; k < 6; k++) {
        assert_int_equal(rt_save_weights_meta(&s, path, 3, k3, bad[k], &err), RT_OK);
        expect_checkpoint_error(&m, path, want[k]);
    }
    const char *ok[] = {"12", "1", "1 2 3 4"}; /* epoch_rows may be absent: 0 */
    assert_int_equal(rt_save_weights_meta(&s, path, 3, k3, ok, &err), RT_OK);
    RtSession t = session_for(&m, 1, false);
    assert_int_equal(rt_load_checkpoint(&t, path, &err), RT_OK);
    assert_true(t.step == 12 && t.epoch == 1 && t.epoch_rows == 0 && t.rng.s[3] == 4);
    rt_session_free(&t);

    const char *reserved[] = {"epoch"}, *vals[] = {"3"};
    assert_int_equal(rt_save_checkpoint(&s, tmp_path("r.safetensors"), 1, reserved, vals, &err),
                     RT_FAIL);
    assert_contains(err.msg, "metadata key 'epoch' is reserved for the checkpoint");
    assert_int_equal(access(tmp_path("r.safetensors"), F_OK), -1);
    rt_session_free(&s);
    rt_session_free(&p);
}

/* ---- the whole header ---------------------------------------------------------
 * The safetensors rule that the tensors tile the data section, checked over
 * every tensor of the header, the model's or not. The st model's tensors
 * take 24 + 8 + 4 + 4 = 40 bytes. */

/* The st header with the four tensors at these offsets, then `more`. */
static void st_header(char *buf, size_t n, const uint64_t off[8], const char *more) {
    snprintf(buf, n,
             "{\"h.W\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[%llu,%llu]},"
             "\"h.b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[%llu,%llu]},"
             "\"odd \\\"name\\\"\\\\\":{\"dtype\":\"F32\",\"shape\":[1],"
             "\"data_offsets\":[%llu,%llu]},"
             "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[%llu,%llu]}%s}",
             (unsigned long long)off[0], (unsigned long long)off[1], (unsigned long long)off[2],
             (unsigned long long)off[3], (unsigned long long)off[4], (unsigned long long)off[5],
             (unsigned long long)off[6], (unsigned long long)off[7], more);
}

/* Overlapping tensors, a gap, bytes after the last tensor, a tensor the
 * model does not have that runs past the end or whose offsets do not fit
 * its dtype: each a clear error; the exact tiling loads, other tensors and
 * all. */
static void test_weights_tensors_must_tile_the_data_section(void **state) {
    (void)state;
    RtModel m = st_model(4);
    const char *path = tmp_path("tile.safetensors");
    static const unsigned char data[64];
    char header[1024];
    static const uint64_t exact[8] = {0, 24, 24, 32, 32, 36, 36, 40};
    static const uint64_t overlap[8] = {0, 24, 16, 24, 24, 28, 28, 32};
    static const uint64_t gap[8] = {0, 24, 28, 36, 36, 40, 40, 44};
    static const struct {
        const uint64_t *off;
        const char *more;
        size_t ndata;
        const char *want; /* NULL: loads */
    } cases[] = {
        {exact, "", 40, NULL},
        {exact, ",\"extra\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[40,56]}", 56,
         NULL},
        {exact, ",\"e\":{\"dtype\":\"BF16\",\"shape\":[0],\"data_offsets\":[40,40]}", 40,
         NULL},
        {overlap, "", 32,
         "corrupt header: tensors 'h.W' [0, 24) and 'h.b' [16, 24) overlap in the data section"},
        {gap, "", 44,
         "corrupt header: bytes 24 to 28 of the data section belong to no tensor (before 'h.b')"},
        {exact, "", 48,
         "the data section has 48 bytes, but its tensors end at byte 40; the file has 8 bytes "
         "too many"},
        {exact, ",\"extra\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[40,56]}", 48,
         "corrupt checkpoint: truncated: expected 361 bytes, found 353 (tensor 'extra' ends at "
         "byte 56 of a 48-byte data section)"},
        {exact, ",\"extra\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[40,50]}", 50,
         "corrupt header: tensor 'extra' spans 10 bytes, but 2 I64 elements need 16"},
        {exact, ",\"extra\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[50,40]}", 50,
         "corrupt header: tensor 'extra' has no valid \"data_offsets\" pair"},
        {exact, ",\"extra\":[1,2]", 40,
         "corrupt header: tensor 'extra' has no valid \"data_offsets\" pair"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        st_header(header, sizeof header, cases[i].off, cases[i].more);
        write_raw(path, header, data, cases[i].ndata);
        if (cases[i].want) {
            expect_load_error(&m, path, cases[i].want);
            continue;
        }
        RtSession s = session_for(&m, 1, true);
        RtError err = {""};
        if (rt_load_weights(&s, path, &err) != RT_OK)
            fail_msg("case %zu: %s", i, err.msg);
        rt_session_free(&s);
    }
}

/* A new file (unlinked first: rewriting one in place makes ext4 flush it
 * on close, 3 ms a time). */
static void write_bytes(const char *path, const unsigned char *b, size_t n) {
    unlink(path);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* rt_load_checkpoint of path must fail naming the file and saying
 * "corrupt", and leave the session and its arena as they were; the error
 * into *out. */
static void expect_refused(const RtModel *m, const char *path, const char *what, size_t at,
                           RtError *out) {
    RtSession s = session_for(m, 7, true);
    RtSession before = s;
    unsigned char bytes[ALL_BYTES];
    memcpy(bytes, s.arena, ALL_BYTES);
    RtError e = {""};
    if (rt_load_checkpoint(&s, path, &e) == RT_OK)
        fail_msg("%s %zu: the damaged checkpoint loaded", what, at);
    if (!strstr(e.msg, "flip.safetensors: corrupt"))
        fail_msg("%s %zu: not reported as corrupt: %s", what, at, e.msg);
    assert_memory_equal(s.arena, bytes, ALL_BYTES);
    assert_memory_equal(&s, &before, sizeof s);
    rt_session_free(&s);
    *out = e;
}

/* The checksums: every single-bit flip anywhere in a checkpoint (length,
 * header, padding, data) and every truncation is refused as corrupt, with
 * the session untouched: never a silently wrong number. The structural
 * checks still answer flips whose checksums were made to match. */
static void test_checkpoint_with_any_bit_flipped_or_cut_is_refused(void **state) {
    (void)state;
    RtModel m = opt_model(4);
    RtSession a = session_for(&m, 1, true);
    a.step = 42;
    RtError err = {""};
    const char *path = tmp_path("flip.safetensors");
    if (rt_save_checkpoint(&a, path, 0, NULL, NULL, &err) != RT_OK)
        fail_msg("%s", err.msg);
    size_t len;
    unsigned char *good = slurp(path, &len);
    uint64_t n = 0;
    for (int i = 0; i < 8; i++)
        n |= (uint64_t)good[i] << (8 * i);
    assert_int_equal(len, 8 + n + 68); /* 17 F32 values */
    for (size_t at = 0; at < len; at++)
        for (int bit = 0; bit < 8; bit++) {
            good[at] ^= (unsigned char)(1u << bit);
            write_bytes(path, good, len);
            good[at] ^= (unsigned char)(1u << bit);
            RtError e;
            expect_refused(&m, path, "flipped byte", at, &e);
            /* Past the checksums' own keys and digits, every flip of the
             * header is a header checksum mismatch, of the data a data one. */
            const char *want = at >= 8 + n               ? "data checksum mismatch: data_crc32 says"
                               : at >= 8 + DCRC_AT + 10 ? "header checksum mismatch: header_crc32 "
                                                          "says"
                                                        : "corrupt";
            if (!strstr(e.msg, want))
                fail_msg("byte %zu bit %d: expected \"%s\" in: %s", at, bit, want, e.msg);
        }
    for (size_t cut = 0; cut < len; cut++) {
        write_bytes(path, good, cut);
        RtError e;
        expect_refused(&m, path, "cut at", cut, &e);
        assert_contains(e.msg, "corrupt checkpoint: truncated");
    }
    /* Flips with known outcomes once the checksums match again: F32 -> F33,
     * a shape, an offset, a state's name. */
    static const struct {
        const char *find, *to, *want;
    } named[] = {
        {"\"F32\",\"shape\":[3,2]", "\"F33\",\"shape\":[3,2]",
         "parameter 'h.W' has dtype F33; gradc reads F32 and F64"},
        {"\"shape\":[3,2]", "\"shape\":[3,3]",
         "parameter 'h.W' has shape [3, 3] in the file, but the model expects [3, 2]"},
        {"[24,32]", "[24,33]", "corrupt header: tensor 'h.b' spans 9 bytes, but 2 F32 "
                                "elements need 8"},
        {"\"opt.m.s\"", "\"opt.m.t\"", "optimizer state 'opt.m.s' [] is missing"},
        {"\"step\":\"42\"", "\"step\":\"4x\"", "metadata \"step\" is \"4x\""},
    };
    for (size_t i = 0; i < sizeof named / sizeof *named; i++) {
        unsigned char *copy = malloc(len);
        memcpy(copy, good, len);
        char *hit = memmem(copy + 8, n, named[i].find, strlen(named[i].find));
        assert_non_null(hit);
        memcpy(hit, named[i].to, strlen(named[i].to));
        reseal(copy, len);
        write_bytes(path, copy, len);
        free(copy);
        RtSession s = session_for(&m, 7, true);
        RtError e = {""};
        assert_int_equal(rt_load_checkpoint(&s, path, &e), RT_FAIL);
        assert_contains(e.msg, named[i].want);
        rt_session_free(&s);
    }
    /* The checksums' keys renamed: not an unchecked file but a damaged one. */
    unsigned char *copy = malloc(len);
    memcpy(copy, good, len);
    memcpy(copy + 8 + 18, "HEADER_CRC32", 12);
    write_bytes(path, copy, len);
    RtSession s = session_for(&m, 7, true);
    assert_int_equal(rt_load_checkpoint(&s, path, &err), RT_FAIL);
    assert_contains(err.msg, "corrupt checkpoint: the checksums at the start of the header "
                             "(header_crc32, data_crc32) are damaged");
    rt_session_free(&s);
    free(copy);
    /* The C library's loader (a program from gradc build --lib) is the
     * same: a flipped data bit is RT_LIB_EIO, the session untouched. */
    good[len - 1] ^= 0x10;
    write_bytes(path, good, len);
    good[len - 1] ^= 0x10;
    s = session_for(&m, 7, true);
    RtSession before = s;
    assert_int_equal(rt_lib_load(&s, path, &err), RT_LIB_EIO);
    assert_contains(err.msg, "flip.safetensors: corrupt checkpoint: data checksum mismatch");
    assert_memory_equal(&s, &before, sizeof s);
    rt_session_free(&s);
    /* The file as written loads, to the value. */
    write_bytes(path, good, len);
    s = session_for(&m, 7, true);
    if (rt_load_checkpoint(&s, path, &err) != RT_OK)
        fail_msg("%s", err.msg);
    assert_memory_equal(s.arena, a.arena, ALL_BYTES);
    assert_true(s.step == 42);
    rt_session_free(&s);
    free(good);
    rt_session_free(&a);
}

/* A file another tool wrote, or a gradc before checksums, loads unchecked;
 * one that still has a checksum's key but not at the start is refused. */
static void test_weights_without_checksums_load_unchecked(void **state) {
    (void)state;
    RtModel m = st_model(4);
    const char *path = tmp_path("torch.safetensors");
    float data[10];
    for (int i = 0; i < 10; i++)
        data[i] = (float)i + 0.5f;
    const uint64_t off[8] = {0, 24, 24, 32, 32, 36, 36, 40};
    char header[600], with_meta[800];
    st_header(header, sizeof header, off, "");
    static const char *const metas[] = {"", "\"__metadata__\":{\"format\":\"pt\"},",
                                        "\"__metadata__\":{\"format\":\"gradc\",\"model\":\"st\"},"};
    for (int k = 0; k < 3; k++) {
        snprintf(with_meta, sizeof with_meta, "{%s%s", metas[k], header + 1);
        write_raw(path, with_meta, data, sizeof data);
        RtSession s = session_for(&m, 7, true);
        RtError err = {""};
        if (rt_load_weights(&s, path, &err) != RT_OK)
            fail_msg("%s", err.msg);
        assert_true(((float *)rt_ptr(&s, &st_params[1]))[1] == 7.5f);
        rt_session_free(&s);
    }
    snprintf(with_meta, sizeof with_meta,
             "{\"__metadata__\":{\"format\":\"gradc\",\"data_crc32\":\"01234567\"},%s",
             header + 1);
    write_raw(path, with_meta, data, sizeof data);
    expect_load_error(&m, path, "torch.safetensors: corrupt checkpoint: the checksums at the "
                                "start of the header (header_crc32, data_crc32) are damaged");
}

/* A save removes the temporary files that killed saves to the same path
 * left ("<path>.tmp.<pid>" of a process that is gone), and nothing else:
 * not a live process's, not another path's. */
static void test_save_removes_temporary_files_of_killed_saves(void **state) {
    (void)state;
    RtModel m = st_model(4);
    RtSession s = session_for(&m, 1, true);
    RtError err = {""};
    const char *path = tmp_path("kept.safetensors");
    pid_t dead = fork();
    assert_true(dead >= 0);
    if (dead == 0)
        _exit(0);
    assert_int_equal(waitpid(dead, NULL, 0), dead);
    char stale[300], live[300], other[300], odd[300];
    snprintf(stale, sizeof stale, "%s.tmp.%ld", path, (long)dead);
    snprintf(live, sizeof live, "%s.tmp.%ld", path, (long)getppid());
    snprintf(other, sizeof other, "%s/other.safetensors.tmp.%ld", tmpdir, (long)dead);
    snprintf(odd, sizeof odd, "%s.tmp.%ldx", path, (long)dead);
    const char *files[] = {stale, live, other, odd};
    for (int i = 0; i < 4; i++)
        write_raw(files[i], "{}", "", 0);
    assert_int_equal(rt_save_weights(&s, path, &err), RT_OK);
    assert_int_not_equal(access(stale, F_OK), 0);
    for (int i = 1; i < 4; i++) {
        assert_int_equal(access(files[i], F_OK), 0);
        unlink(files[i]);
    }
    assert_int_equal(count_temp_files(), 0);
    rt_session_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weights_file_has_safetensors_layout),
        cmocka_unit_test(test_weights_data_start_is_8_byte_aligned_for_any_header),
        cmocka_unit_test(test_weights_round_trip_restores_every_parameter),
        cmocka_unit_test(test_weights_convert_between_f32_and_f64),
        cmocka_unit_test(test_weights_truncated_file_is_an_error_and_arena_unchanged),
        cmocka_unit_test(test_weights_bad_json_is_a_corrupt_header),
        cmocka_unit_test(test_weights_wrong_shape_and_missing_tensor_name_the_parameter),
        cmocka_unit_test(test_weights_save_into_missing_directory_fails_cleanly),
        cmocka_unit_test(test_weights_save_replaces_atomically_and_failure_keeps_old_file),
        cmocka_unit_test(test_weights_failed_rename_removes_temporary_file),
        cmocka_unit_test(test_weights_reject_duplicate_parameter_names),
        cmocka_unit_test(test_weights_metadata_round_trips_and_keeps_format_and_model),
        cmocka_unit_test(test_weights_metadata_rejects_reserved_duplicate_and_non_utf8),
        cmocka_unit_test(test_weights_save_states_after_parameters_and_load_them),
        cmocka_unit_test(test_weights_without_states_keep_them_and_partial_states_fail),
        cmocka_unit_test(test_weights_reject_a_state_named_like_a_parameter),
        cmocka_unit_test(test_checkpoint_restores_states_counters_and_rng),
        cmocka_unit_test(test_checkpoint_refuses_plain_weights_and_bad_counters),
        cmocka_unit_test(test_weights_tensors_must_tile_the_data_section),
        cmocka_unit_test(test_checkpoint_with_any_bit_flipped_or_cut_is_refused),
        cmocka_unit_test(test_weights_without_checksums_load_unchecked),
        cmocka_unit_test(test_save_removes_temporary_files_of_killed_saves),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
