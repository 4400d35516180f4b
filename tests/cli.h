/* cli.h: what the tests of the gradc command share: running the built
 * binary (GRADC_BINARY) from the source root with its output captured, and
 * files in a temporary directory that main() makes with mkdtemp. */
#ifndef GRADC_TESTS_CLI_H
#define GRADC_TESTS_CLI_H

#include <math.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define assert_contains(hay, needle)                                                        \
    do {                                                                                    \
        if (!strstr((hay), (needle)))                                                       \
            fail_msg("expected \"%s\" in \"%s\"", (needle), (hay));                         \
    } while (0)

static char tmpdir[256];
static char *out_text, *err_text;

static char *read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    buf[got] = 0;
    fclose(f);
    return buf;
}

/* Run "gradc <args>" in the source root; stdout and stderr into out_text and
 * err_text; returns the exit status. */
static int gradc(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int gradc(const char *fmt, ...) {
    char args[1500], cmd[2400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s >'%s/out' 2>'%s/err' </dev/null",
             GRADC_SOURCE_DIR, GRADC_BINARY, args, tmpdir, tmpdir);
    int st = system(cmd);
    free(out_text);
    free(err_text);
    char path[512];
    snprintf(path, sizeof path, "%s/out", tmpdir);
    out_text = read_all(path);
    snprintf(path, sizeof path, "%s/err", tmpdir);
    err_text = read_all(path);
    assert_true(WIFEXITED(st)); /* never a crash */
    return WEXITSTATUS(st);
}

/* name in the temporary directory (four results live at once). */
static inline const char *tmp(const char *name) {
    static char path[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/%s", tmpdir, name);
    return path[k];
}

static inline void write_file(const char *name, const char *text) {
    FILE *f = fopen(tmp(name), "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* The value of "key": in the last line of a JSON Lines file; NAN if absent. */
static inline double last_log_value(const char *path, const char *key) {
    char *text = read_all(path);
    char *last = text, *p;
    for (p = text; *p; p++)
        if (*p == '\n' && p[1])
            last = p + 1;
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    char *k = strstr(last, pat);
    double v = k ? strtod(k + strlen(pat), NULL) : NAN;
    free(text);
    return v;
}

/* The whole file (malloc'ed; the test fails if it cannot be read); *n its
 * length. */
static inline char *file_bytes(const char *path, long *n) {
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)*n + 1);
    *n = (long)fread(buf, 1, (size_t)*n, f);
    fclose(f);
    return buf;
}

/* Two files, byte for byte (checkpoints: header, metadata and every value). */
static inline void assert_same_file(const char *a, const char *b) {
    long na, nb;
    char *x = file_bytes(a, &na), *y = file_bytes(b, &nb);
    assert_int_equal(na, nb);
    if (memcmp(x, y, (size_t)na) != 0)
        fail_msg("%s and %s differ", a, b);
    free(x);
    free(y);
}

/* Whether the file at path is well-formed XML, by xmllint (Debian's
 * libxml2-utils, which .ci/run installs): an independent parser. */
static inline bool xml_well_formed(const char *path) {
    if (system("command -v xmllint >/dev/null 2>&1") != 0)
        fail_msg("xmllint is not installed (apt-get install libxml2-utils)");
    char cmd[700];
    snprintf(cmd, sizeof cmd, "xmllint --noout '%s'", path);
    return system(cmd) == 0;
}

/* The main of a CLI test: the tests in a fresh temporary directory
 * /tmp/<prefix>-XXXXXX, removed afterwards (kept, and named on stderr, when
 * GRADC_TEST_KEEP is set, to look at the generated files). */
#define cli_main(prefix, tests) cli_run(prefix, #tests, tests, sizeof tests / sizeof tests[0])
static inline int cli_run(const char *prefix, const char *name, const struct CMUnitTest *tests,
                          size_t n) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/%s-XXXXXX", prefix);
    if (!mkdtemp(tmpdir))
        return 1;
    int rc = _cmocka_run_group_tests(name, tests, n, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (getenv("GRADC_TEST_KEEP"))
        fprintf(stderr, "kept %s\n", tmpdir);
    else if (system(cmd) != 0)
        rc = rc ? rc : 1;
    free(out_text);
    free(err_text);
    return rc;
}

#endif
