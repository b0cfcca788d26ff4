#include "rng.h"

#include <math.h>

#include "rng_impl.h"

void lsdm_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    rng_philox4x32_10(ctr, key, out);
}
void lsdm_rng_block(uint64_t seed, uint64_t stream, uint64_t block, uint32_t out[4]) {
    rng_block(seed, stream, block, out);
}
float lsdm_rng_u01(uint32_t w) { return rng_u01(w); }
void lsdm_rng_box_muller(uint32_t a, uint32_t b, float *z0, float *z1) { rng_box_muller(a, b, z0, z1); }

void lsdm_rng_fill_uniform(float *dst, size_t n, uint64_t seed, uint64_t stream, uint64_t offset) {
    uint32_t w[4];
    uint64_t have = UINT64_MAX; /* block held in w */
    for (size_t j = 0; j < n; j++) {
        uint64_t k = offset + j;
        if (k / 4 != have) { have = k / 4; lsdm_rng_block(seed, stream, have, w); }
        dst[j] = lsdm_rng_u01(w[k % 4]);
    }
}

void lsdm_rng_fill_normal(float *dst, size_t n, uint64_t seed, uint64_t stream, uint64_t offset) {
    uint32_t w[4];
    float z[4];
    uint64_t have = UINT64_MAX;
    for (size_t j = 0; j < n; j++) {
        uint64_t k = offset + j;
        if (k / 4 != have) {
            have = k / 4;
            lsdm_rng_block(seed, stream, have, w);
            lsdm_rng_box_muller(w[0], w[1], &z[0], &z[1]);
            lsdm_rng_box_muller(w[2], w[3], &z[2], &z[3]);
        }
        dst[j] = z[k % 4];
    }
}

void lsdm_rng_init(lsdm_rng *r, uint64_t seed, uint64_t stream) {
    r->seed = seed;
    r->stream = stream;
    r->block = 0;
    r->pos = 4;
    r->have_normal = 0;
    r->normal = 0;
}

uint32_t lsdm_rng_u32(lsdm_rng *r) {
    if (r->pos == 4) {
        lsdm_rng_block(r->seed, r->stream, r->block++, r->buf);
        r->pos = 0;
    }
    return r->buf[r->pos++];
}

float lsdm_rng_uniform(lsdm_rng *r) { return lsdm_rng_u01(lsdm_rng_u32(r)); }

float lsdm_rng_normal(lsdm_rng *r) {
    if (r->have_normal) { r->have_normal = 0; return r->normal; }
    uint32_t a = lsdm_rng_u32(r), b = lsdm_rng_u32(r);
    float z0;
    lsdm_rng_box_muller(a, b, &z0, &r->normal);
    r->have_normal = 1;
    return z0;
}

double lsdm_rng_range(lsdm_rng *r, double lo, double hi) {
    double u = (double)(lsdm_rng_u32(r) >> 9) * 0x1p-23; /* [0, 1) */
    return lo + (hi - lo) * u;
}

uint64_t lsdm_rng_derive(uint64_t seed, uint64_t index, uint32_t purpose) {
    /* streams 0xffffffff00000000 and up are kept for derivations */
    uint32_t w[4];
    lsdm_rng_block(seed, 0xffffffff00000000ull | purpose, index, w);
    return (uint64_t)w[0] | (uint64_t)w[1] << 32;
}
