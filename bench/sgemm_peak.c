/* bench/sgemm_peak.c: the SGEMM peak bench/run.py reports shares of.
 *
 *   sgemm_peak [N] [REPS]     (defaults 2048 and 10)
 *
 * Times REPS products C = A B of N x N float32 matrices with OpenBLAS's
 * cblas_sgemm on 2 threads after one warm-up product, and prints the median
 * GFLOP/s (2 N^3 FLOPs a product) and the kernels OpenBLAS picked:
 *   sgemm_peak: 2048^2 2 threads SkylakeX: 281.3 GFLOP/s (median of 10)
 * The kernels are whatever OPENBLAS_CORETYPE selects; bench/run.py sets it to
 * the core gradc reports, so that the peak is the one gradc's GEMMs can reach.
 */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

extern char *openblas_get_corename(void);
extern void openblas_set_num_threads(int n);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 2048;
    int reps = argc > 2 ? atoi(argv[2]) : 10;
    if (n < 1 || reps < 1 || reps > 1000) {
        fprintf(stderr, "usage: sgemm_peak [N] [REPS]\n");
        return 2;
    }
    size_t nn = (size_t)n * (size_t)n;
    float *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b), *c = malloc(nn * sizeof *c);
    double *gf = malloc((size_t)reps * sizeof *gf);
    if (!a || !b || !c || !gf) {
        fprintf(stderr, "sgemm_peak: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < nn; i++) {
        a[i] = (float)(i % 7) * 0.125f - 0.375f;
        b[i] = (float)(i % 5) * 0.25f - 0.5f;
        c[i] = 0;
    }
    openblas_set_num_threads(2);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        gf[r] = 2.0 * (double)n * (double)n * (double)n / (now() - t0) / 1e9;
    }
    qsort(gf, (size_t)reps, sizeof *gf, cmp);
    printf("sgemm_peak: %d^2 2 threads %s: %.1f GFLOP/s (median of %d)\n", n,
           openblas_get_corename(), gf[reps / 2], reps);
    free(a);
    free(b);
    free(c);
    free(gf);
    return 0;
}
