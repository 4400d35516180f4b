/* rng.c: the runtime's one random number generator.
 *
 * xoshiro256** 1.0 (Blackman and Vigna, https://prng.di.unimi.it/), seeded
 * by four outputs of splitmix64, and the distributions built on it. The
 * same seed gives the same stream on every machine: integer arithmetic only,
 * up to the libm calls of rt_rng_normal. Must not keep any state outside
 * RtRng (no globals, no hidden cached values), so that a saved RtRng
 * restarts a stream exactly.
 */
#include "rt_internal.h"

#include <assert.h>
#include <math.h>

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

/* splitmix64: advances *x and returns the next output. */
static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* The state is four consecutive splitmix64 outputs from seed: never all zero,
 * since splitmix64 maps distinct counters to distinct outputs. */
void rt_rng_seed(RtRng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

uint64_t rt_rng_next(RtRng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* The top 53 bits as a multiple of 2^-53: every double in [0, 1) that is a
 * multiple of 2^-53, each equally likely. */
double rt_rng_uniform(RtRng *r) {
    return (double)(rt_rng_next(r) >> 11) * 0x1.0p-53;
}

/* Box-Muller, cosine branch only: two uniforms per normal, nothing cached.
 * u1 is taken from (0, 1] so that log(u1) is finite. */
double rt_rng_normal(RtRng *r) {
    double u1 = 1.0 - rt_rng_uniform(r);
    double u2 = rt_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* Rejection: 2^64 mod n values at the bottom of the range are thrown away
 * so that what remains is a whole number of copies of [0, n). Expected
 * draws are below 2. Requires n > 0 (0 for n == 0 in release builds). */
uint64_t rt_rng_below(RtRng *r, uint64_t n) {
    assert(n > 0 && "rt_rng_below: empty range");
    if (n == 0)
        return 0;
    uint64_t threshold = (0 - n) % n; /* 2^64 mod n */
    for (;;) {
        uint64_t x = rt_rng_next(r);
        if (x >= threshold)
            return x % n;
    }
}
