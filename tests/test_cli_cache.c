/* test_cli_cache.c: the object cache (codegen/cache.c). `gradc train`
 * compiles each part of its programs once per model, LLVM and CPU: the
 * first run stores the objects, the next one loads them and trains to the
 * same checkpoint, byte for byte, as a run without the cache. An entry
 * with a flipped byte, a cut-off entry or a stray file is a miss that is
 * compiled again and replaced; a different model misses; an unusable
 * directory only costs the compile, and one others may write is not
 * used; past the size limit the least
 * recently used entries go. (The tests run with GRADC_CACHE_DIR=off,
 * tests/CMakeLists.txt; this one sets its own.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"

static const char *const MODEL = "examples/iris.nn";

/* The entries (NAME.o) in dir, their names into names[] (up to 16). */
static int entries(const char *dir, char names[16][64]) {
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len > 2 && len < 64 && !strcmp(e->d_name + len - 2, ".o") && n < 16)
            memcpy(names[n++], e->d_name, len + 1);
    }
    closedir(d);
    return n;
}

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Train MODEL for 3 steps into save with the cache at dir; returns stderr's
 * llvm-compile line ("threads", "cached", "threads, some cached"). */
static const char *train(const char *dir, const char *save, const char *extra) {
    setenv("GRADC_CACHE_DIR", dir, 1);
    assert_int_equal(gradc("train %s --steps 3 --seed 5 -q --time-passes --save %s %s", MODEL,
                           save, extra),
                     0);
    static char kind[64];
    const char *c = strstr(err_text, "llvm-compile (");
    assert_non_null(c);
    const char *end = strchr(c, ')');
    snprintf(kind, sizeof kind, "%.*s", (int)(end - c - 14), c + 14);
    return kind;
}

static void test_second_run_loads_the_objects_and_trains_the_same(void **state) {
    (void)state;
    char dir[512];
    snprintf(dir, sizeof dir, "%s", tmp("cache1")); /* tmp() reuses its buffers */
    /* The reference: no cache at all. */
    assert_string_equal(train("off", tmp("ref.safetensors"), ""), "threads");
    char names[16][64];
    assert_int_equal(entries(dir, names), 0);

    assert_string_equal(train(dir, tmp("a.safetensors"), ""), "threads");
    int n = entries(dir, names);
    assert_true(n >= 1);
    for (int i = 0; i < n; i++) { /* 32 hex digits of key, a header, an object */
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        assert_int_equal(strlen(names[i]), 34);
        char *text = read_all(path);
        assert_memory_equal(text, "gradcob1", 8);
        assert_memory_equal(text + 40 + 1, "ELF", 3);
        free(text);
    }
    assert_string_equal(train(dir, tmp("b.safetensors"), ""), "cached");
    assert_same_file(tmp("ref.safetensors"), tmp("a.safetensors"));
    assert_same_file(tmp("ref.safetensors"), tmp("b.safetensors"));
    char again[16][64];
    assert_int_equal(entries(dir, again), n); /* a hit stores nothing */

    /* Another batch is another train program: a miss, stored beside the
     * others (parallel loops, which take the batch as an argument, may
     * still hit). */
    assert_string_not_equal(train(dir, tmp("c.safetensors"), "--batch 8"), "cached");
    assert_true(entries(dir, again) > n);
    assert_string_equal(train(dir, tmp("d.safetensors"), "--batch 8"), "cached");
    assert_same_file(tmp("c.safetensors"), tmp("d.safetensors"));
}

/* Overwrite every entry of dir with what damage makes of it. */
static void damage_all(const char *dir, void (*damage)(const char *path, long size)) {
    char names[16][64];
    int n = entries(dir, names);
    assert_true(n >= 1);
    for (int i = 0; i < n; i++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        damage(path, file_size(path));
    }
}

static void flip_a_byte(const char *path, long size) {
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, size / 2, SEEK_SET);
    int c = fgetc(f);
    fseek(f, size / 2, SEEK_SET);
    fputc(c ^ 0x10, f);
    fclose(f);
}

static void cut_in_half(const char *path, long size) { assert_int_equal(truncate(path, size / 2), 0); }

static void flip_the_key(const char *path, long size) {
    (void)size;
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 9, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 9, SEEK_SET);
    fputc(c ^ 0x01, f);
    fclose(f);
}

static void test_a_damaged_entry_is_compiled_again_and_replaced(void **state) {
    (void)state;
    char dir[512];
    snprintf(dir, sizeof dir, "%s", tmp("cache2")); /* tmp() reuses its buffers */
    assert_string_equal(train("off", tmp("ref.safetensors"), ""), "threads");
    assert_string_equal(train(dir, tmp("a.safetensors"), ""), "threads");
    void (*damages[])(const char *, long) = {flip_a_byte, cut_in_half, flip_the_key};
    for (int i = 0; i < 3; i++) {
        damage_all(dir, damages[i]);
        assert_string_equal(train(dir, tmp("b.safetensors"), ""), "threads");
        assert_same_file(tmp("ref.safetensors"), tmp("b.safetensors"));
        assert_string_equal(train(dir, tmp("c.safetensors"), ""), "cached");
        assert_same_file(tmp("ref.safetensors"), tmp("c.safetensors"));
    }
}

static void test_an_unusable_directory_only_costs_the_compile(void **state) {
    (void)state;
    assert_string_equal(train("off", tmp("ref.safetensors"), ""), "threads");
    write_file("a-file", "not a directory\n");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/jit", tmp("a-file"));
    for (int i = 0; i < 2; i++) {
        assert_string_equal(train(dir, tmp("a.safetensors"), ""), "threads");
        assert_same_file(tmp("ref.safetensors"), tmp("a.safetensors"));
        assert_string_equal(err_text + strlen(err_text) - 1, "\n");
        assert_null(strstr(err_text, "warning"));
    }
}

/* A directory others may write into is not used: the entries are code. */
static void test_a_directory_others_may_write_is_not_used(void **state) {
    (void)state;
    char dir[512];
    snprintf(dir, sizeof dir, "%s", tmp("shared")); /* tmp() reuses its buffers */
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(chmod(dir, 0777), 0);
    char names[16][64];
    for (int i = 0; i < 2; i++) {
        assert_string_equal(train(dir, tmp("a.safetensors"), ""), "threads");
        assert_int_equal(entries(dir, names), 0);
    }
    assert_int_equal(chmod(dir, 0755), 0); /* its owner's alone again: used */
    assert_string_equal(train(dir, tmp("a.safetensors"), ""), "threads");
    assert_string_equal(train(dir, tmp("a.safetensors"), ""), "cached");
}

static void test_past_the_limit_the_least_recently_used_entries_go(void **state) {
    (void)state;
    char dir[512];
    snprintf(dir, sizeof dir, "%s", tmp("cache3")); /* tmp() reuses its buffers */
    assert_int_equal(mkdir(dir, 0700), 0);
    /* Three old entries of 600 KiB each, older the further down. */
    for (int i = 0; i < 3; i++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%032d.o", dir, i);
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        for (int k = 0; k < 600 * 1024; k++)
            fputc(k & 0xff, f);
        fclose(f);
        struct timespec t[2] = {{time(NULL) - 1000 * (i + 1), 0}, {time(NULL) - 1000 * (i + 1), 0}};
        assert_int_equal(utimensat(AT_FDCWD, path, t, 0), 0);
    }
    /* A temporary file a killed run left two hours ago. */
    char stale[2048];
    snprintf(stale, sizeof stale, "%s/%032d.o.123.0.tmp", dir, 7);
    FILE *f = fopen(stale, "wb");
    fputs("half an object", f);
    fclose(f);
    struct timespec old[2] = {{time(NULL) - 7200, 0}, {time(NULL) - 7200, 0}};
    assert_int_equal(utimensat(AT_FDCWD, stale, old, 0), 0);

    setenv("GRADC_CACHE_MAX_MB", "1", 1);
    assert_string_equal(train(dir, tmp("a.safetensors"), ""), "threads");
    unsetenv("GRADC_CACHE_MAX_MB");
    /* 1.8 MiB of old entries and the new ones (tens of KiB) against 1 MiB:
     * the oldest two go, the newest old one and the new ones stay. */
    char path[2048];
    snprintf(path, sizeof path, "%s/%032d.o", dir, 0);
    assert_true(file_size(path) > 0);
    snprintf(path, sizeof path, "%s/%032d.o", dir, 1);
    assert_int_equal(file_size(path), -1);
    snprintf(path, sizeof path, "%s/%032d.o", dir, 2);
    assert_int_equal(file_size(path), -1);
    assert_int_equal(file_size(stale), -1);
    assert_string_equal(train(dir, tmp("b.safetensors"), ""), "cached");
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/gradc-cache-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_second_run_loads_the_objects_and_trains_the_same),
        cmocka_unit_test(test_a_damaged_entry_is_compiled_again_and_replaced),
        cmocka_unit_test(test_an_unusable_directory_only_costs_the_compile),
        cmocka_unit_test(test_a_directory_others_may_write_is_not_used),
        cmocka_unit_test(test_past_the_limit_the_least_recently_used_entries_go),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        rc = 1;
    return rc;
}
