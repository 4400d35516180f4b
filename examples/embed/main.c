/* examples/embed/main.c: a C program that trains a model through its C
 * library, with data of its own.
 *
 * circle.o and circle.h come from `gradc build circle.nn --lib -o circle`
 * (see the Makefile). The program makes points in the square [-2, 2]^2,
 * labelled 1 inside the circle of radius 1.6 and 0 outside, trains on 2,000
 * of them with circle_train_step in mini-batches and prints the loss going
 * down, saves a checkpoint, loads it into a second instance, and measures
 * that one's accuracy on 1,000 points it has never seen with circle_predict.
 * Last, it shows what a bad label does: an error code and a message, never a
 * crash or an exit.
 *
 *   cc main.c circle.o -lopenblas -lz -lm -o circle_demo && ./circle_demo
 */
#include <stdint.h>
#include <stdio.h>

#include "circle.h"

enum { NTRAIN = 2000, NTEST = 1000, EPOCHS = 30 };

/* xorshift64*: the same points on every machine. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static double uniform(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

/* n points: x[i] = (a, b), y[i] = whether a^2 + b^2 < 1.6^2. */
static void make_points(float *x, int32_t *y, int n) {
    for (int i = 0; i < n; i++) {
        float a = (float)(4 * uniform() - 2), b = (float)(4 * uniform() - 2);
        x[2 * i] = a;
        x[2 * i + 1] = b;
        y[i] = a * a + b * b < 1.6f * 1.6f;
    }
}

static float x[NTRAIN * CIRCLE_X_SIZE], test_x[NTEST * CIRCLE_X_SIZE];
static int32_t y[NTRAIN], test_y[NTEST];
static float probs[NTEST * CIRCLE_PROBS_SIZE];

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "circle.safetensors";
    make_points(x, y, NTRAIN);
    make_points(test_x, test_y, NTEST);

    circle_setup(0); /* optional: OpenBLAS's fastest kernels, as gradc train */
    circle *m = circle_create(1);
    if (!m) {
        fprintf(stderr, "circle_create: out of memory\n");
        return 1;
    }
    for (int epoch = 1; epoch <= EPOCHS; epoch++) {
        double sum = 0;
        for (int at = 0; at < NTRAIN; at += CIRCLE_MAX_BATCH) {
            int n = NTRAIN - at < CIRCLE_MAX_BATCH ? NTRAIN - at : CIRCLE_MAX_BATCH;
            double loss;
            if (circle_train_step(m, x + at * CIRCLE_X_SIZE, y + at, n, &loss) != CIRCLE_OK) {
                fprintf(stderr, "circle_train_step: %s\n", circle_error(m));
                return 1;
            }
            sum += loss * n;
        }
        circle_set_epoch(m, epoch, EPOCHS); /* for models with a schedule */
        if (epoch == 1 || epoch % 5 == 0)
            printf("epoch %2d  loss %.4f\n", epoch, sum / NTRAIN);
    }
    if (circle_save(m, path) != CIRCLE_OK) {
        fprintf(stderr, "circle_save: %s\n", circle_error(m));
        return 1;
    }
    printf("saved %s after %lld steps\n", path, (long long)circle_steps(m));

    /* A second instance: its own parameters until it loads the first's. */
    circle *m2 = circle_create(2);
    if (!m2 || circle_load(m2, path) != CIRCLE_OK) {
        fprintf(stderr, "circle_load: %s\n", circle_error(m2));
        return 1;
    }
    if (circle_predict(m2, test_x, NTEST, probs) != CIRCLE_OK) {
        fprintf(stderr, "circle_predict: %s\n", circle_error(m2));
        return 1;
    }
    int correct = 0;
    for (int i = 0; i < NTEST; i++)
        correct += (probs[2 * i + 1] > probs[2 * i]) == (test_y[i] == 1);
    printf("accuracy %.3f on %d new points (instance 2, loaded from %s)\n",
           (double)correct / NTEST, NTEST, path);

    /* Errors come back as codes, with a message naming the row. */
    int32_t bad[4] = {0, 1, 0, 7};
    int rc = circle_train_step(m2, test_x, bad, 4, NULL);
    printf("a label of 7: code %d (CIRCLE_EINVAL is %d): %s\n", rc, CIRCLE_EINVAL,
           circle_error(m2));

    circle_free(m);
    circle_free(m2);
    return 0;
}
