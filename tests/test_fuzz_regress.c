/* test_fuzz_regress.c: every input the fuzzers found a bug with, saved in
 * tests/fuzz/regress/<target>/, run through the same body the fuzz target
 * runs (tests/fuzz/fuzz.h), in the normal build: each must return with
 * what its .expect file says. An .expect file holds a piece of the first
 * error's text (the input is refused with that diagnostic), or is empty
 * (the input is accepted). An input without an .expect file fails the
 * test. A wrong value slipping through a loader fails here in any build
 * (the bodies check the loaders' contract); an input whose bug was
 * undefined behaviour or a huge allocation fails only in the sanitizer
 * build (GRADC_SANITIZE), as it did in the fuzzer. The seed corpus
 * (tests/fuzz/corpus/<target>/) runs too, and must return; under the
 * sanitizer build that checks it for leaks and UB. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fuzz/fuzz.h"

typedef void (*Body)(const uint8_t *data, size_t size, FuzzResult *r);

static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    unsigned char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? 2 * cap : 4096;
            buf = realloc(buf, cap + 1);
            assert_non_null(buf);
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        if (k == 0)
            break;
        n += k;
    }
    fclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
}

static int has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The sorted names of the files in dir (not . files); *n their count; NULL
 * and 0 when dir does not exist. */
static char **list_dir(const char *dir, int *n) {
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    char **names = NULL;
    int cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            names = realloc(names, sizeof *names * (size_t)cap);
            assert_non_null(names);
        }
        names[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    for (int i = 1; i < *n; i++)
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    return names;
}

static void free_list(char **names, int n) {
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Every input of tests/fuzz/regress/<target> against its .expect file;
 * returns how many inputs ran. */
static int run_regress(const char *target, Body body) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/regress/%s", GRADC_SOURCE_DIR, target);
    int n;
    char **names = list_dir(dir, &n);
    int ran = 0;
    for (int i = 0; i < n; i++) {
        if (has_suffix(names[i], ".expect"))
            continue;
        char path[1024], expect_path[1100];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        snprintf(expect_path, sizeof expect_path, "%s.expect", path);
        size_t len, elen;
        unsigned char *data = slurp(path, &len);
        FILE *ef = fopen(expect_path, "rb");
        if (!ef)
            fail_msg("%s has no .expect file", path);
        fclose(ef);
        char *want = (char *)slurp(expect_path, &elen);
        while (elen > 0 && (want[elen - 1] == '\n' || want[elen - 1] == '\r'))
            want[--elen] = 0;
        FuzzResult r;
        body(data, len, &r);
        if (elen == 0 && r.errors)
            fail_msg("%s: expected no error, got: %s", path, r.msg);
        if (elen > 0 && !r.errors)
            fail_msg("%s: expected an error with \"%s\", got none", path, want);
        if (elen > 0 && !strstr(r.msg, want))
            fail_msg("%s: expected \"%s\" in the error, got: %s", path, want, r.msg);
        free(want);
        free(data);
        ran++;
    }
    free_list(names, n);
    return ran;
}

/* Every seed of tests/fuzz/corpus/<target>; returns how many ran. */
static int run_corpus(const char *target, Body body) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/%s", GRADC_SOURCE_DIR, target);
    int n;
    char **names = list_dir(dir, &n);
    for (int i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        size_t len;
        unsigned char *data = slurp(path, &len);
        FuzzResult r;
        body(data, len, &r);
        free(data);
    }
    free_list(names, n);
    return n;
}

static const struct {
    const char *name;
    Body body;
} targets[] = {
    {"frontend", fuzz_frontend}, {"safetensors", fuzz_safetensors}, {"csv", fuzz_csv},
    {"idx", fuzz_idx},           {"npy", fuzz_npy},                 {"text", fuzz_text},
};
enum { NTARGETS = sizeof targets / sizeof *targets };

static void test_fuzz_regress_inputs_give_their_expected_result(void **state) {
    (void)state;
    int ran = 0;
    for (int t = 0; t < NTARGETS; t++)
        ran += run_regress(targets[t].name, targets[t].body);
    print_message("%d regression inputs\n", ran);
}

static void test_fuzz_corpus_seeds_run_cleanly(void **state) {
    (void)state;
    for (int t = 0; t < NTARGETS; t++)
        if (run_corpus(targets[t].name, targets[t].body) == 0)
            fail_msg("tests/fuzz/corpus/%s has no seeds", targets[t].name);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fuzz_regress_inputs_give_their_expected_result),
        cmocka_unit_test(test_fuzz_corpus_seeds_run_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
