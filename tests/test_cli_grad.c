/* test_cli_grad.c: gradc grad as a user runs it: the printed graphs of two
 * examples against golden files, the provenance of gradient and update
 * nodes, what the backward pass keeps and its size, --wrt, --after, and the
 * Graphviz outputs (--dot, --svg): well-formed SVG with every printed node,
 * colours by part, fused kernels as boxes, escaping, no file when Graphviz
 * is missing or fails. Runs the built binary (GRADC_BINARY) from the source
 * root; the SVG tests need Graphviz's dot and xmllint (.ci/run installs
 * both) and say so when they skip.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

/* ---- helpers ----------------------------------------------------------------- */

static bool have(const char *program) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", program);
    return system(cmd) == 0;
}

/* Skip the test (saying why) unless Graphviz's dot and xmllint are there. */
#define NEED_GRAPHVIZ()                                                                    \
    do {                                                                                   \
        if (!have("dot") || !have("xmllint")) {                                            \
            fprintf(stderr, "skipped: needs Graphviz's dot and xmllint "                   \
                            "(apt-get install graphviz libxml2-utils)\n");                 \
            skip();                                                                        \
        }                                                                                  \
    } while (0)

/* "gradc grad <args>" with PATH set to path (the binary by its absolute
 * name); output into out_text and err_text as gradc() does. */
static int gradc_with_path(const char *path, const char *args) {
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "cd '%s' && PATH='%s' '%s' grad %s >'%s/out' 2>'%s/err' </dev/null",
             GRADC_SOURCE_DIR, path, GRADC_BINARY, args, tmpdir, tmpdir);
    int st = system(cmd);
    free(out_text);
    free(err_text);
    char p[512];
    snprintf(p, sizeof p, "%s/out", tmpdir);
    out_text = read_all(p);
    snprintf(p, sizeof p, "%s/err", tmpdir);
    err_text = read_all(p);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

/* The node ids of gradc grad's text ("  %12 ..." lines, "  |  %12" in a
 * kernel listing) into ids (a 0/1 table by id); returns how many. */
static int printed_ids(const char *text, bool *ids, int max) {
    memset(ids, 0, (size_t)max);
    int n = 0;
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        const char *q = p;
        if (!strncmp(q, "  |", 3))
            q += 3;
        while (*q == ' ')
            q++;
        if (*q != '%' || q == p)
            continue;
        int id = atoi(q + 1);
        assert_true(id >= 0 && id < max);
        n += !ids[id];
        ids[id] = true;
    }
    return n;
}

/* The number of distinct nodes n<k> the DOT text declares ("  n12 [label="). */
static int dot_nodes(const char *dot, bool *ids, int max) {
    memset(ids, 0, (size_t)max);
    int n = 0;
    for (const char *p = strstr(dot, "\n"); p; p = strstr(p + 1, "\n")) {
        const char *q = p + 1;
        while (*q == ' ')
            q++;
        int id, len = 0;
        if (sscanf(q, "n%d [label=%n", &id, &len) == 1 && len > 0) {
            assert_true(id >= 0 && id < max);
            n += !ids[id];
            ids[id] = true;
        }
    }
    return n;
}

/* The SVG element of node n<id>: from its <title> to the end of its group. */
static char *svg_node(const char *svg, int id) {
    char title[32];
    snprintf(title, sizeof title, "<title>n%d</title>", id);
    const char *t = strstr(svg, title);
    if (!t)
        return NULL;
    const char *end = strstr(t, "</g>");
    assert_non_null(end);
    return strndup(t, (size_t)(end - t));
}

static void assert_golden(const char *args, const char *golden) {
    assert_int_equal(gradc("%s", args), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/tests/golden/%s", GRADC_SOURCE_DIR, golden);
    char *want = read_all(path);
    assert_true(want[0] != 0);
    assert_string_equal(out_text, want);
    free(want);
}

/* ---- the text ------------------------------------------------------------------- */

/* The printed graphs of xor (sigmoid, bce, SGD) and sentiment (embedding,
 * mean over positions, softmax cross-entropy), after the passes. Read the
 * diff by eye before updating; to update after an intended change:
 *   build/gradc grad examples/xor.nn > tests/golden/xor.grad.txt
 *   build/gradc grad examples/sentiment.nn > tests/golden/sentiment.grad.txt */
static void test_grad_xor_matches_golden_file(void **state) {
    (void)state;
    assert_golden("grad examples/xor.nn", "xor.grad.txt");
}

static void test_grad_sentiment_matches_golden_file(void **state) {
    (void)state;
    assert_golden("grad examples/sentiment.nn", "sentiment.grad.txt");
}

/* Each gradient node names the forward op it differentiates, that op's
 * line and the rule's formula; each update node the rule, the parameter
 * and the rule's statement. */
static void test_grad_nodes_carry_rule_location_and_math(void **state) {
    (void)state;
    assert_int_equal(gradc("grad examples/xor.nn"), 0);
    assert_contains(out_text, "# gradient graph");
    assert_contains(out_text, "= sum %30 axes=[0]                   [1]          examples/xor.nn:16"
                              "   adjoint of add at examples/xor.nn:16: g\n");
    assert_contains(out_text, "%36              = mul %32, %8                        [B, 4]       "
                              "examples/xor.nn:15   adjoint of sigmoid at examples/xor.nn:15: g * s "
                              "* (1 - s)\n");
    assert_contains(out_text, "dW1        = matmul %0, %37 ta");
    assert_contains(out_text, "adjoint of matmul at examples/xor.nn:15: op(a)^T @ g\n");
    assert_contains(out_text, "<prelude>:18   sgd update of b2 at <prelude>:18: p = p - lr * g\n");
    assert_contains(out_text, "= assign %5, %60 -> b2");
    assert_contains(out_text, "seed at examples/xor.nn:17: dloss/dloss = 1\n");

    /* Adam's states: the rule, the parameter, the statement */
    assert_int_equal(gradc("grad examples/iris.nn --optimizer adam"), 0);
    assert_contains(out_text, "opt.m.W2   = state of W2 init=0");
    assert_contains(out_text, "adam state of W2 at <prelude>:");
    assert_contains(out_text, ": state m = 0\n");
    assert_contains(out_text, "adam update of W2 at <prelude>:");

    /* the embedding's gradient is a scatter-add of the incoming rows */
    assert_int_equal(gradc("grad examples/nplm.nn"), 0);
    assert_contains(out_text, "de.E       = scatter_add");
    assert_contains(out_text, "adjoint of gather at examples/nplm.nn:");
    assert_contains(out_text, ": scatter_add(g, ids): dtable[ids[i]] += g[i]\n");
}

/* What the backward pass keeps: xor's two sigmoid outputs, 4*B + B floats,
 * 80 bytes at the train block's batch of 4; iris (batch 16) keeps relu's
 * output (for W2's gradient and relu's own, which reads y > 0, not its
 * input) and the softmax. */
static void test_grad_lists_values_kept_for_backward_with_sizes(void **state) {
    (void)state;
    assert_int_equal(gradc("grad examples/xor.nn"), 0);
    const char *k = strstr(out_text, "# kept for the backward pass");
    assert_non_null(k);
    assert_contains(k, "bytes in float32 at batch 4)\n"
                       "  %8    h          sigmoid      [B, 4]       4*B elements             64 B\n"
                       "  %11   p          sigmoid      [B, 1]       B elements               16 B\n"
                       "  total: 2 values, 5*B elements, 80 B at batch 4\n"
                       "  leaves read too (stored anyway): %0 x, %1 y, %2 W1, %3 b1, %4 W2, %5 b2\n");

    assert_int_equal(gradc("grad examples/iris.nn"), 0);
    k = strstr(out_text, "# kept for the backward pass");
    assert_non_null(k);
    assert_contains(k, "at batch 16)\n");
    assert_null(strstr(k, " add ")); /* relu's input is not kept */
    assert_contains(k, " h          relu         [B, 16]      16*B elements          1024 B\n");
    assert_contains(k, " probs      softmax      [B, 3]       3*B elements            192 B\n");
    assert_contains(k, "  total: 2 values, 19*B elements, 1216 B at batch 16\n");

    /* no loss, no gradient: no such section */
    write_file("noloss.nn", "input x[B, 1]\nparam w[1, 1] = 0\noutput y = x @ w\n");
    char args[600];
    snprintf(args, sizeof args, "grad %s", tmp("noloss.nn"));
    assert_int_equal(gradc("%s", args), 0);
    assert_null(strstr(out_text, "# kept"));
    assert_null(strstr(out_text, "# gradient graph"));
    assert_contains(err_text, "the model has no 'loss = ...', so it has no gradient graph");
}

/* --wrt W1: dW1's slice: the forward nodes it reads, the gradient from the
 * loss down to dW1 (dh through W2), and W1's update; nothing of b1, W2 or
 * b2's gradients and updates. --wrt b2 keeps only p for backward. */
static void test_grad_wrt_keeps_what_one_gradient_needs(void **state) {
    (void)state;
    assert_int_equal(gradc("grad examples/xor.nn --wrt W1"), 0);
    assert_contains(out_text, "dW1        = matmul %0, %37 ta");
    assert_contains(out_text, "dh         = matmul %30, %4 tb");
    assert_contains(out_text, "  grad W1 = %39\n");
    assert_contains(out_text, "= assign %2, %45 -> W1");
    assert_contains(out_text, "  lr = %40\n");
    assert_null(strstr(out_text, "db2"));
    assert_null(strstr(out_text, "dW2"));
    assert_null(strstr(out_text, "db1"));
    assert_null(strstr(out_text, "grad b2"));
    assert_null(strstr(out_text, "-> b2"));
    assert_null(strstr(out_text, "-> W2"));
    assert_null(strstr(out_text, "update of b1"));
    assert_null(strstr(out_text, "loss = %13")); /* the loss's value is not needed */

    assert_int_equal(gradc("grad examples/xor.nn --wrt b2"), 0);
    assert_contains(out_text, "  grad b2 = %31\n");
    assert_null(strstr(out_text, "dh "));
    assert_contains(out_text, "  %11   p          sigmoid      [B, 1]       B elements               16 B\n"
                              "  total: 1 value, B elements, 16 B at batch 4\n");

    /* the parameter's own optimizer states only */
    assert_int_equal(gradc("grad examples/iris.nn --optimizer adam --wrt W2"), 0);
    assert_contains(out_text, "opt.m.W2");
    assert_contains(out_text, "opt.v.W2");
    assert_null(strstr(out_text, "opt.m.W1"));
    assert_null(strstr(out_text, "opt.v.b2"));

    assert_int_equal(gradc("grad examples/xor.nn --wrt w1"), 1);
    assert_contains(err_text, "gradc: error: --wrt: examples/xor.nn has no parameter 'w1'; did you "
                              "mean 'W1'?\n  its parameters: W1, b1, W2, b2\n");
    assert_string_equal(out_text, "");
    assert_int_equal(gradc("grad examples/xor.nn --wrt"), 2);
}

/* --after: the autodiff graph has autodiff's own constants (three 1s for
 * bce' and the two sigmoid'); cse merges them into the seed; dce drops the
 * reshape simplify bypassed; fuse lists the kernels with the fused loops
 * marked. --raw is --after autodiff. */
static void test_grad_after_each_pass(void **state) {
    (void)state;
    assert_int_equal(gradc("grad examples/xor.nn --after autodiff"), 0);
    char *autodiff = strdup(out_text);
    assert_contains(autodiff, "%16              = reshape %14");
    assert_contains(autodiff, "%17              = expand %16");
    assert_contains(autodiff, "%27              = const 1");
    assert_contains(autodiff, "%19              = const 1                            []           "
                              "examples/xor.nn:17   adjoint of bce at examples/xor.nn:17: g * (p - y)");
    assert_int_equal(gradc("grad examples/xor.nn --raw"), 0);
    assert_string_equal(out_text, autodiff);

    assert_int_equal(gradc("grad examples/xor.nn --after simplify"), 0);
    assert_contains(out_text, "%17              = expand %14");
    assert_contains(out_text, "%27              = const 1");
    assert_contains(out_text, "%21              = sub %19, %11");

    assert_int_equal(gradc("grad examples/xor.nn --after cse"), 0);
    assert_null(strstr(out_text, "%27              = const 1"));
    assert_null(strstr(out_text, "%19              = const 1"));
    assert_contains(out_text, "%21              = sub %14, %11");
    assert_contains(out_text, "%30              = mul %29, %21");
    assert_contains(out_text, "%16              = reshape %14"); /* dead, not yet removed */

    assert_int_equal(gradc("grad examples/xor.nn --after dce"), 0);
    assert_null(strstr(out_text, "%16 "));
    char *dce = strdup(out_text);
    assert_int_equal(gradc("grad examples/xor.nn"), 0);
    assert_string_equal(out_text, dce);

    assert_int_equal(gradc("grad examples/xor.nn --after fuse"), 0);
    assert_contains(out_text, "# program train: 17 kernels, 9 fused loops\n"
                              "kernel 0 -> %6\n"
                              "  %6               = matmul %0, %2");
    assert_contains(out_text, "kernel 1 (fused loop) -> %8\n"
                              "  |  %7               = add %6, %3");
    assert_contains(out_text, "\n  |  %8    h          = sigmoid %7");
    assert_contains(out_text, "kernel 8 (fused loop, update of b2: 1 store) -> %61 b2\n");
    assert_null(strstr(out_text, "# forward graph"));
    assert_int_equal(gradc("grad examples/xor.nn --kernels"), 0);
    assert_contains(out_text, "kernel 1 (fused loop) -> %8\n");

    assert_int_equal(gradc("grad examples/xor.nn --after fusion"), 2);
    assert_contains(err_text, "--after expects a pass: autodiff, simplify, cse, dce or fuse; got "
                              "'fusion'");
    assert_int_equal(gradc("grad examples/xor.nn --after cse --kernels"), 2);
    free(autodiff);
    free(dce);
}

/* --time-passes: the stages on stderr, stdout as without it. */
static void test_grad_time_passes(void **state) {
    (void)state;
    assert_int_equal(gradc("grad examples/xor.nn"), 0);
    char *plain = strdup(out_text);
    assert_int_equal(gradc("grad examples/xor.nn --time-passes"), 0);
    assert_string_equal(out_text, plain);
    assert_contains(err_text, "gradc: time per compile stage\n  front end");
    assert_contains(err_text, "  autodiff and update ");
    assert_contains(err_text, "(2 runs)");
    assert_contains(err_text, "  dce ");
    assert_contains(err_text, "  print ");
    assert_contains(err_text, "  total ");
    free(plain);
}

/* ---- Graphviz ------------------------------------------------------------------ */

/* The SVG of each of the two examples is well-formed XML and has a node
 * for every node the text prints, coloured by part; xor's fused kernels
 * are boxes with their numbers, the legend is there. */
static void test_grad_svg_is_well_formed_and_shows_every_node(void **state) {
    (void)state;
    NEED_GRAPHVIZ();
    static const char *const models[] = {"xor", "sentiment"};
    for (int m = 0; m < 2; m++) {
        char args[800], name[64];
        snprintf(name, sizeof name, "%s.svg", models[m]);
        assert_int_equal(gradc("grad examples/%s.nn", models[m]), 0);
        bool ids[512], drawn[512];
        int n = printed_ids(out_text, ids, 512);
        assert_true(n > 40);
        snprintf(args, sizeof args, "grad examples/%s.nn --svg %s", models[m], tmp(name));
        assert_int_equal(gradc("%s", args), 0);
        assert_string_equal(out_text, ""); /* the picture replaces the text */
        assert_true(xml_well_formed(tmp(name)));
        long len;
        char *svg = file_bytes(tmp(name), &len);
        for (int id = 0; id < 512; id++)
            if (ids[id]) {
                char *node = svg_node(svg, id);
                if (!node)
                    fail_msg("%s: node %%%d is not in the SVG", models[m], id);
                free(node);
            }
        /* the DOT declares exactly the printed nodes */
        snprintf(args, sizeof args, "grad examples/%s.nn --dot -", models[m]);
        assert_int_equal(gradc("%s", args), 0);
        assert_int_equal(dot_nodes(out_text, drawn, 512), n);
        assert_memory_equal(drawn, ids, sizeof ids);
        assert_contains(svg, "legend");
        free(svg);
    }

    long len;
    char *svg = file_bytes(tmp("xor.svg"), &len);
    char *fwd = svg_node(svg, 8), *grad = svg_node(svg, 30), *upd = svg_node(svg, 46);
    assert_contains(fwd, "fill=\"#d4e4f7\"");
    assert_contains(fwd, "%8 h = sigmoid");
    assert_contains(fwd, "examples/xor.nn:15");
    assert_contains(grad, "fill=\"#fbd9b8\"");
    assert_contains(grad, "adjoint of sigmoid");
    assert_contains(upd, "fill=\"#cdebc6\"");
    assert_contains(upd, "sgd update of W1");
    /* the full provenance is the tooltip */
    assert_contains(grad, "adjoint of sigmoid at examples/xor.nn:16: g * s * (1 &#45; s)");
    assert_contains(svg, ">kernel 6 (fused loop)</text>");
    assert_contains(svg, ">kernel 16 (fused loop, update of W1)</text>");
    assert_contains(svg, "<title>cluster_k6</title>");
    assert_null(strstr(svg, "<title>cluster_k0</title>")); /* a matrix product */
    /* edges carry their source's shape: h [B, 4] into dW2's matmul */
    char *edge = strstr(svg, "<title>n8&#45;&gt;n33</title>");
    assert_non_null(edge);
    assert_non_null(strstr(edge, "[B, 4]"));
    assert_true(strstr(edge, "[B, 4]") < strstr(edge, "</g>"));
    free(fwd);
    free(grad);
    free(upd);
    free(svg);
}

/* --dot with --wrt and --after draws what the text shows: the same nodes;
 * fused-kernel boxes only once there are kernels. */
static void test_grad_dot_follows_wrt_and_after(void **state) {
    (void)state;
    bool ids[512], drawn[512];
    const char *const variants[] = {"--wrt W1", "--wrt b2", "--after autodiff", "--after cse",
                                    "--after fuse", "--after fuse --wrt W2"};
    for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
        assert_int_equal(gradc("grad examples/xor.nn %s", variants[v]), 0);
        int n = printed_ids(out_text, ids, 512);
        assert_true(n > 5);
        assert_int_equal(gradc("grad examples/xor.nn %s --dot %s", variants[v], tmp("g.dot")), 0);
        char *dot = read_all(tmp("g.dot"));
        int nd = dot_nodes(dot, drawn, 512);
        if (strstr(variants[v], "fuse")) {
            /* the kernels' nodes, and the leaves they read */
            for (int i = 0; i < 512; i++)
                if (ids[i] && !drawn[i])
                    fail_msg("%s: %%%d is not drawn", variants[v], i);
            assert_true(nd >= n);
            assert_contains(dot, "subgraph cluster_k");
        } else {
            assert_int_equal(nd, n);
            assert_memory_equal(drawn, ids, sizeof ids);
        }
        if (strstr(variants[v], "--after autodiff") || strstr(variants[v], "--after cse"))
            assert_null(strstr(dot, "cluster_k"));
        if (!strcmp(variants[v], "--wrt W1")) {
            assert_contains(dot, "what the gradient of W1 needs");
            assert_contains(dot, "label=\"kernel 16 (fused loop, update of W1)\"");
            assert_null(strstr(dot, "update of b2"));
        }
        free(dot);
    }
}

/* Names with quotes, backslashes and XML's specials are escaped: dot reads
 * the DOT, and the SVG shows them as written. */
static void test_grad_dot_escapes_names(void **state) {
    (void)state;
    NEED_GRAPHVIZ();
    char dir[600], model[700], cmd[1600];
    snprintf(dir, sizeof dir, "%s/we\"ird\\dir", tmpdir);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(model, sizeof model, "%s/x<y>&z.nn", dir);
    snprintf(cmd, sizeof cmd, "cp '%s/examples/xor.nn' '%s'", GRADC_SOURCE_DIR, model);
    assert_int_equal(system(cmd), 0);
    char args[1600];
    snprintf(args, sizeof args, "grad '%s' --dot '%s' --svg '%s'", model, tmp("w.dot"),
             tmp("w.svg"));
    assert_int_equal(gradc("%s", args), 0);
    char *dot = read_all(tmp("w.dot"));
    assert_contains(dot, "we\\\"ird\\\\dir/x<y>&z.nn:15\"");
    assert_true(xml_well_formed(tmp("w.svg")));
    char *svg = read_all(tmp("w.svg"));
    assert_contains(svg, "we&quot;ird\\dir/x&lt;y&gt;&amp;z.nn:15</text>");
    free(dot);
    free(svg);
}

/* Without dot on PATH: the install message, exit status 1, no file (and
 * no temporary file); a dot that fails after writing half an SVG: exit
 * status 1, and the old file is left as it was. */
static void test_grad_svg_without_or_with_failing_graphviz(void **state) {
    (void)state;
    char empty[600];
    snprintf(empty, sizeof empty, "%s/empty", tmpdir);
    assert_int_equal(mkdir(empty, 0755), 0);
    char args[1600];
    snprintf(args, sizeof args, "examples/xor.nn --svg %s/pic.svg", empty);
    assert_int_equal(gradc_with_path(empty, args), 1);
    assert_string_equal(err_text,
                        "gradc: error: --svg needs Graphviz's 'dot' program; install it (Debian: "
                        "apt-get install graphviz), or write DOT with --dot F and render it "
                        "elsewhere\n");
    char ls[700];
    snprintf(ls, sizeof ls, "test -z \"$(ls -A '%s')\"", empty);
    assert_int_equal(system(ls), 0); /* nothing at all was written */

    /* a fake dot: half an SVG, then a failure */
    char bin[600], fake[700];
    snprintf(bin, sizeof bin, "%s/bin", tmpdir);
    assert_int_equal(mkdir(bin, 0755), 0);
    snprintf(fake, sizeof fake, "%s/dot", bin);
    FILE *f = fopen(fake, "w");
    assert_non_null(f);
    fputs("#!/bin/sh\ncat >/dev/null\nprintf '<svg><g>'\necho 'dot: syntax error' >&2\nexit 3\n", f);
    fclose(f);
    assert_int_equal(chmod(fake, 0755), 0);
    write_file("old.svg", "<svg/>\n");
    char path[1400];
    snprintf(path, sizeof path, "%s:/usr/bin:/bin", bin);
    snprintf(args, sizeof args, "examples/xor.nn --svg %s", tmp("old.svg"));
    assert_int_equal(gradc_with_path(path, args), 1);
    assert_contains(err_text, "dot: syntax error\n");
    assert_contains(err_text, "gradc: error: --svg: Graphviz's dot failed (exit status 3)\n");
    char *old = read_all(tmp("old.svg"));
    assert_string_equal(old, "<svg/>\n");
    free(old);
    snprintf(ls, sizeof ls, "ls '%s' | grep -q 'old.svg.tmp'", tmpdir);
    assert_int_not_equal(system(ls), 0);

    /* a device is written in place, not replaced by a renamed file */
    struct stat sb;
    assert_int_equal(gradc("grad examples/xor.nn --dot /dev/null"), 0);
    assert_int_equal(stat("/dev/null", &sb), 0);
    assert_true(S_ISCHR(sb.st_mode));

    /* --dot to a directory that does not exist */
    snprintf(args, sizeof args, "grad examples/xor.nn --dot %s/no/such/g.dot", tmpdir);
    assert_int_equal(gradc("%s", args), 1);
    assert_contains(err_text, "gradc: error: cannot write '");
    assert_contains(err_text, "no/such/g.dot': No such file or directory\n");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_xor_matches_golden_file),
        cmocka_unit_test(test_grad_sentiment_matches_golden_file),
        cmocka_unit_test(test_grad_nodes_carry_rule_location_and_math),
        cmocka_unit_test(test_grad_lists_values_kept_for_backward_with_sizes),
        cmocka_unit_test(test_grad_wrt_keeps_what_one_gradient_needs),
        cmocka_unit_test(test_grad_after_each_pass),
        cmocka_unit_test(test_grad_time_passes),
        cmocka_unit_test(test_grad_svg_is_well_formed_and_shows_every_node),
        cmocka_unit_test(test_grad_dot_follows_wrt_and_after),
        cmocka_unit_test(test_grad_dot_escapes_names),
        cmocka_unit_test(test_grad_svg_without_or_with_failing_graphviz),
    };
    return cli_main("gradc-cli-grad", tests);
}
