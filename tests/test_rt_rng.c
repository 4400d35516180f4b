/* test_rt_rng.c: the runtime RNG against published reference values and an
 * independent transcription of xoshiro256**, plus distribution checks. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/rt.h"

/* xoshiro256** 1.0 as published at https://prng.di.unimi.it/xoshiro256starstar.c,
 * written out independently of runtime/rng.c. */
static uint64_t ref_rotl(const uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

static uint64_t ref_next(uint64_t s[4]) {
    const uint64_t result = ref_rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = ref_rotl(s[3], 45);
    return result;
}

/* splitmix64 from seed 0 gives these four outputs (the values published with
 * Vigna's splitmix64.c and used by many ports as a test vector). */
static void test_rng_seed_is_four_splitmix64_outputs(void **state) {
    (void)state;
    RtRng r;
    rt_rng_seed(&r, 0);
    assert_true(r.s[0] == UINT64_C(0xe220a8397b1dcdaf));
    assert_true(r.s[1] == UINT64_C(0x6e789e6aa1b965f4));
    assert_true(r.s[2] == UINT64_C(0x06c45d188009454f));
    assert_true(r.s[3] == UINT64_C(0xf88bb8a8724c81ec));
}

/* From state {1, 2, 3, 4}: first output rotl(2*5, 7)*9 = 11520 by hand, then
 * 0 (s[1] becomes 0), then the values of the reference. */
static void test_rng_next_matches_hand_computed_outputs(void **state) {
    (void)state;
    RtRng r = {{1, 2, 3, 4}};
    assert_true(rt_rng_next(&r) == 11520);
    assert_true(rt_rng_next(&r) == 0);
    assert_true(rt_rng_next(&r) == UINT64_C(1509978240));
    assert_true(rt_rng_next(&r) == UINT64_C(1215971899390074240));
}

static void test_rng_next_matches_reference_for_10000_outputs(void **state) {
    (void)state;
    RtRng r;
    rt_rng_seed(&r, 12345);
    uint64_t s[4];
    memcpy(s, r.s, sizeof s);
    for (int i = 0; i < 10000; i++) {
        uint64_t want = ref_next(s);
        uint64_t got = rt_rng_next(&r);
        if (want != got)
            fail_msg("output %d: want %llu, got %llu", i, (unsigned long long)want,
                     (unsigned long long)got);
    }
}

static void test_rng_same_seed_same_stream_other_seed_other_stream(void **state) {
    (void)state;
    RtRng a, b, c;
    rt_rng_seed(&a, 42);
    rt_rng_seed(&b, 42);
    rt_rng_seed(&c, 43);
    int differ = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = rt_rng_next(&a);
        assert_true(x == rt_rng_next(&b));
        differ += x != rt_rng_next(&c);
    }
    assert_int_equal(differ, 100);
}

static void test_rng_uniform_is_top_53_bits_in_unit_interval(void **state) {
    (void)state;
    RtRng r, copy;
    rt_rng_seed(&r, 7);
    copy = r;
    double sum = 0;
    for (int i = 0; i < 100000; i++) {
        double u = rt_rng_uniform(&r);
        assert_true(u == (double)(rt_rng_next(&copy) >> 11) / 9007199254740992.0);
        assert_true(u >= 0.0 && u < 1.0);
        sum += u;
    }
    assert_float_equal(sum / 100000, 0.5, 0.005);
}

/* 100k samples: the standard error of the mean is 0.0032 and of the
 * variance 0.0045; the tolerances are about 5 standard errors. */
static void test_rng_normal_has_mean_0_variance_1_and_normal_tails(void **state) {
    (void)state;
    RtRng r;
    rt_rng_seed(&r, 2024);
    const int n = 100000;
    double sum = 0, sum2 = 0;
    int beyond = 0;
    for (int i = 0; i < n; i++) {
        double x = rt_rng_normal(&r);
        assert_true(isfinite(x));
        sum += x;
        sum2 += x * x;
        beyond += fabs(x) > 1.959964;
    }
    double mean = sum / n, var = sum2 / n - mean * mean;
    assert_float_equal(mean, 0.0, 0.016);
    assert_float_equal(var, 1.0, 0.025);
    assert_float_equal((double)beyond / n, 0.05, 0.004); /* P(|x| > 1.96) */
}

static void test_rng_normal_is_deterministic(void **state) {
    (void)state;
    RtRng a, b;
    rt_rng_seed(&a, 99);
    rt_rng_seed(&b, 99);
    for (int i = 0; i < 1000; i++)
        assert_true(rt_rng_normal(&a) == rt_rng_normal(&b));
}

static void test_rng_below_stays_in_range_and_is_roughly_uniform(void **state) {
    (void)state;
    RtRng r;
    rt_rng_seed(&r, 1);
    int count[7] = {0};
    for (int i = 0; i < 70000; i++) {
        uint64_t x = rt_rng_below(&r, 7);
        assert_true(x < 7);
        count[x]++;
    }
    for (int k = 0; k < 7; k++) /* expected 10000, standard deviation 93 */
        assert_in_range(count[k], 9550, 10450);
    for (int i = 0; i < 100; i++)
        assert_true(rt_rng_below(&r, 1) == 0);
}

/* n = 3 * 2^62: plain x % n would put half of all draws below 2^62 (x below
 * 2^62 or at least 3 * 2^62); unbiased draws put a third there. */
static void test_rng_below_is_unbiased_for_a_huge_range(void **state) {
    (void)state;
    RtRng r;
    rt_rng_seed(&r, 5);
    const uint64_t n = UINT64_C(3) << 62;
    int low = 0;
    for (int i = 0; i < 30000; i++) {
        uint64_t x = rt_rng_below(&r, n);
        assert_true(x < n);
        low += x < (UINT64_C(1) << 62);
    }
    assert_float_equal(low / 30000.0, 1.0 / 3.0, 0.015);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng_seed_is_four_splitmix64_outputs),
        cmocka_unit_test(test_rng_next_matches_hand_computed_outputs),
        cmocka_unit_test(test_rng_next_matches_reference_for_10000_outputs),
        cmocka_unit_test(test_rng_same_seed_same_stream_other_seed_other_stream),
        cmocka_unit_test(test_rng_uniform_is_top_53_bits_in_unit_interval),
        cmocka_unit_test(test_rng_normal_has_mean_0_variance_1_and_normal_tails),
        cmocka_unit_test(test_rng_normal_is_deterministic),
        cmocka_unit_test(test_rng_below_stays_in_range_and_is_roughly_uniform),
        cmocka_unit_test(test_rng_below_is_unbiased_for_a_huge_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
