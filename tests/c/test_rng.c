/* Unit tests of the counter-based RNG: the published Philox4x32-10
 * known-answer vectors, the exact conversions to uniform and normal
 * floats, and that every way of drawing element i gives the same bits. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rng.h"

/* Random123 tests/kat_vectors (github.com/DEShawResearch/random123,
 * commit 9545ff64), the "philox4x32 10" lines: counter, key, expected. */
static const uint32_t kat[3][10] = {
    {0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
     0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
    {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
     0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
    {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0,
     0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
};

static void test_known_answers(void) {
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        lsdm_philox4x32_10(kat[i], kat[i] + 4, out);
        for (int j = 0; j < 4; j++) CHECK(out[j] == kat[i][6 + j]);
    }
    /* the lsdm layout: seed 0, stream 0, block 0 is the all-zero vector */
    uint32_t out[4];
    lsdm_rng_block(0, 0, 0, out);
    CHECK(out[0] == 0x6627e8d5 && out[3] == 0x9b00dbd8);
    /* and the pi vector through the layout's word order */
    lsdm_rng_block(0x299f31d0a4093822ull, 0x0370734413198a2eull, 0x85a308d3243f6a88ull, out);
    CHECK(out[0] == 0xd16cfe09 && out[1] == 0x94fdcceb && out[2] == 0x5001e420 && out[3] == 0x24126ea1);
}

static void test_uniform(void) {
    CHECK(lsdm_rng_u01(0) == 0x1p-24f);
    CHECK(lsdm_rng_u01(0xffffffffu) == 1.0f - 0x1p-24f);
    CHECK(lsdm_rng_u01(0x80000000u) == 0.5f + 0x1p-24f);
    /* moments of many draws: mean 1/2, variance 1/12 */
    enum { N = 1 << 20 };
    float *u = malloc(N * sizeof *u);
    lsdm_rng_fill_uniform(u, N, 42, 7, 0);
    double s = 0, s2 = 0, lo = 1, hi = 0;
    for (int i = 0; i < N; i++) {
        s += u[i];
        s2 += (double)u[i] * u[i];
        if (u[i] < lo) lo = u[i];
        if (u[i] > hi) hi = u[i];
    }
    double mean = s / N, var = s2 / N - mean * mean;
    CHECK_NEAR(mean, 0.5, 3e-3);
    CHECK_NEAR(var, 1.0 / 12, 1e-3);
    CHECK(lo > 0 && hi < 1);
    free(u);
}

static void test_normal(void) {
    /* the log and sincos built from basic operations agree with libm */
    float z0, z1;
    uint32_t as[] = {0, 1, 12345, 0x7fffffff, 0x80000000u, 0xfffffffeu, 0xffffffffu};
    uint32_t bs[] = {0, 1, 0x20000000, 0x40000000, 0x60000001, 0x9e3779b9u, 0xffffffffu};
    for (int i = 0; i < 7; i++)
        for (int j = 0; j < 7; j++) {
            lsdm_rng_box_muller(as[i], bs[j], &z0, &z1);
            double u = ((double)as[i] + 0.5) * 0x1p-32, t = 2 * M_PI * (double)bs[j] * 0x1p-32;
            double r = sqrt(-2 * log(u));
            CHECK_NEAR(z0, r * cos(t), 2e-6 * (1 + r));
            CHECK_NEAR(z1, r * sin(t), 2e-6 * (1 + r));
        }
    /* a = 0 is the largest radius: sqrt(-2 ln(2^-33)) */
    lsdm_rng_box_muller(0, 0, &z0, &z1);
    CHECK_NEAR(z0, sqrt(66 * log(2.0)), 1e-6);
    CHECK(z1 == 0.0f);

    enum { N = 1 << 20 };
    float *z = malloc(N * sizeof *z);
    lsdm_rng_fill_normal(z, N, 1, 0, 0);
    double s = 0, s2 = 0, s4 = 0;
    int tail = 0;
    for (int i = 0; i < N; i++) {
        s += z[i];
        s2 += (double)z[i] * z[i];
        s4 += (double)z[i] * z[i] * z[i] * z[i];
        if (fabsf(z[i]) > 3) tail++;
    }
    CHECK_NEAR(s / N, 0, 5e-3);
    CHECK_NEAR(s2 / N, 1, 5e-3);
    CHECK_NEAR(s4 / N, 3, 5e-2);        /* kurtosis of a normal */
    CHECK_NEAR(tail / (double)N, 0.0027, 3e-4); /* P(|z| > 3) */
    free(z);
}

static void test_layout(void) {
    /* any offset and length gives the same element i */
    enum { N = 103 };
    float all[N + 9], part[N];
    lsdm_rng_fill_normal(all, N + 9, 5, 3, 0);
    for (int off = 1; off < 9; off++) {
        lsdm_rng_fill_normal(part, N, 5, 3, (uint64_t)off);
        CHECK(memcmp(part, all + off, sizeof part) == 0);
    }
    lsdm_rng_fill_uniform(all, N + 9, 5, 3, 0);
    lsdm_rng_fill_uniform(part, N, 5, 3, 7);
    CHECK(memcmp(part, all + 7, sizeof part) == 0);

    /* element i: block i/4, word i%4; normal pairs (0,1) and (2,3) */
    uint32_t w[4];
    lsdm_rng_block(5, 3, 2, w);
    CHECK(all[9] == lsdm_rng_u01(w[1]));
    float z0, z1, zz[12];
    lsdm_rng_box_muller(w[2], w[3], &z0, &z1);
    lsdm_rng_fill_normal(zz, 12, 5, 3, 0);
    CHECK(zz[10] == z0 && zz[11] == z1);

    /* the sequential generator walks the same words */
    lsdm_rng r;
    lsdm_rng_init(&r, 5, 3);
    int same = 1;
    for (int i = 0; i < N; i++) same &= lsdm_rng_uniform(&r) == all[i];
    CHECK(same);
    lsdm_rng_init(&r, 5, 3);
    same = 1;
    for (int i = 0; i < 12; i++) same &= lsdm_rng_normal(&r) == zz[i];
    CHECK(same);

    /* different seeds, streams and derived seeds differ */
    lsdm_rng_fill_uniform(part, 4, 6, 3, 0);
    CHECK(memcmp(part, all, 4 * sizeof *part) != 0);
    lsdm_rng_fill_uniform(part, 4, 5, 4, 0);
    CHECK(memcmp(part, all, 4 * sizeof *part) != 0);
    CHECK(lsdm_rng_derive(1, 0, 0) != lsdm_rng_derive(1, 1, 0));
    CHECK(lsdm_rng_derive(1, 0, 0) != lsdm_rng_derive(1, 0, 1));
    CHECK(lsdm_rng_derive(1, 0, 0) == lsdm_rng_derive(1, 0, 0));
    double x = lsdm_rng_range(&r, -2, 3);
    CHECK(x >= -2 && x < 3);
}

/* The contract in numbers: these bits are what every port must produce
 * (first normals of seed 1234, stream 0; the same bits come out of
 * Python's math.log/cos/sin rounded to f32). Changing them breaks the
 * reproducibility of every seeded result, so this is a tripwire. */
static void test_pinned(void) {
    float z[4];
    lsdm_rng_fill_normal(z, 4, 1234, 0, 0);
    uint32_t bits[4];
    memcpy(bits, z, sizeof bits);
    static const uint32_t want[4] = {0x3f9d54f6, 0xbfcee929, 0x3eede2d2, 0xbfc7bfcb};
    for (int i = 0; i < 4; i++) {
        if (bits[i] != want[i]) fprintf(stderr, "normal %d: 0x%08x (%.9g), want 0x%08x\n", i, bits[i], z[i], want[i]);
        CHECK(bits[i] == want[i]);
    }
}

int main(void) {
    test_known_answers();
    test_uniform();
    test_normal();
    test_layout();
    test_pinned();
    return check_done("test_rng");
}
