/* test_cli_memory.c: gradc train hands LLVM's pages back before it loads
 * the data (driver/release.h). The same run with 48 MB of .npy data, with
 * and without GRADC_KEEP_COMPILER_MEMORY: the same checkpoint byte for
 * byte, and a peak resident set (the child's ru_maxrss) at least 16 MiB
 * smaller without it: the compiler's pages (about 40 MB) are gone when the
 * data comes in. Not a timing. And the evaluation that -q skips changes
 * nothing either. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "cli.h"

enum { ROWS = 6000, COLS = 2000 }; /* float32: 48 MB */

/* A .npy 1.0 file of descr and shape, the data from `elem(k)`. */
static void write_npy(const char *path, const char *descr, const char *shape, size_t n,
                      size_t size, void (*elem)(size_t k, void *out)) {
    char dict[200];
    int len = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                       descr, shape);
    int pad = (64 - (10 + len + 1) % 64) % 64, hlen = len + pad + 1;
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc(hlen & 0xff, f);
    fputc(hlen >> 8, f);
    fprintf(f, "%s%*s\n", dict, pad, "");
    unsigned char buf[8];
    for (size_t k = 0; k < n; k++) {
        elem(k, buf);
        fwrite(buf, 1, size, f);
    }
    fclose(f);
}

static void x_elem(size_t k, void *out) {
    float v = (float)(k % 1000) / 1000.0f;
    memcpy(out, &v, 4);
}

static void y_elem(size_t k, void *out) {
    int32_t v = (int32_t)(k % 2);
    memcpy(out, &v, 4);
}

/* gradc train model --steps 1 -q --save save in the source root, with
 * GRADC_KEEP_COMPILER_MEMORY set to keep (NULL: unset); the child's peak
 * resident set in KiB. */
static long train_rss(const char *model, const char *save, const char *keep) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (keep)
            setenv("GRADC_KEEP_COMPILER_MEMORY", keep, 1);
        else
            unsetenv("GRADC_KEEP_COMPILER_MEMORY");
        if (chdir(GRADC_SOURCE_DIR) != 0)
            _exit(127);
        execl(GRADC_BINARY, GRADC_BINARY, "train", model, "--steps", "1", "-q", "--threads", "1",
              "--save", save, (char *)NULL);
        _exit(127);
    }
    int st;
    struct rusage ru;
    assert_int_equal(wait4(pid, &st, 0, &ru), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    return ru.ru_maxrss;
}

static void test_train_releases_the_compilers_pages_before_the_data(void **state) {
    (void)state;
    char shape[64];
    snprintf(shape, sizeof shape, "(%d, %d)", ROWS, COLS);
    write_npy(tmp("x.npy"), "<f4", shape, (size_t)ROWS * COLS, 4, x_elem);
    snprintf(shape, sizeof shape, "(%d,)", ROWS);
    write_npy(tmp("y.npy"), "<i4", shape, ROWS, 4, y_elem);
    char text[512];
    snprintf(text, sizeof text,
             "input x[B, %d]\ninput y[B] : int\nlogits = dense(x, 2)\n"
             "loss = cross_entropy(logits, y)\n"
             "train {\n  data = npy(x = \"x.npy\", y = \"y.npy\")\n"
             "  optimizer = sgd(lr = 0.1)\n  batch = 64\n  epochs = 1\n}\n",
             COLS);
    write_file("wide.nn", text);
    char model[512], kept[512], released[512];
    snprintf(model, sizeof model, "%s", tmp("wide.nn"));
    snprintf(kept, sizeof kept, "%s", tmp("kept.st"));
    snprintf(released, sizeof released, "%s", tmp("released.st"));
    long rss_kept = train_rss(model, kept, "1");
    long rss_released = train_rss(model, released, NULL);
    print_message("peak RSS: %ld KiB keeping the compiler's pages, %ld KiB releasing them\n",
                  rss_kept, rss_released);
    assert_same_file(kept, released);
    assert_true(rss_kept > 48 * 1024); /* the data is in it */
    assert_true(rss_kept - rss_released >= 16 * 1024);
    /* Without -q training evaluates the 6000 rows after its step (-q alone
     * skips that): the same checkpoint again. */
    assert_int_equal(gradc("train %s --steps 1 --threads 1 --save %s", model, tmp("shown.st")), 0);
    assert_contains(out_text, "6000 rows");
    assert_contains(out_text, "accuracy");
    assert_same_file(kept, tmp("shown.st"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_releases_the_compilers_pages_before_the_data),
    };
    return cli_main("gradc-cli-memory", tests);
}
