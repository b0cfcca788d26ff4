/* The arithmetic of libshared/rng.h, shared word for word by the CPU
 * (libshared/rng.c) and CUDA (kernels/cuda/rng.cu) so both give the same
 * bits: only correctly rounded double + - * / sqrt and exact frexp, and
 * CUDA builds this with -fmad=false so nothing is fused into an FMA. */
#ifndef LSDM_RNG_IMPL_H
#define LSDM_RNG_IMPL_H

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define LSDM_HD __host__ __device__
#else
#define LSDM_HD
#endif

/* Philox4x32 constants (Random123, philox.h): round multipliers and the
 * Weyl key increments (golden ratio and sqrt(3)-1, as 32-bit fractions). */
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

LSDM_HD static inline void rng_philox_round(uint32_t c[4], const uint32_t k[2]) {
    uint64_t p0 = (uint64_t)PHILOX_M0 * c[0];
    uint64_t p1 = (uint64_t)PHILOX_M1 * c[2];
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    uint32_t n0 = hi1 ^ c[1] ^ k[0], n2 = hi0 ^ c[3] ^ k[1];
    c[0] = n0;
    c[1] = lo1;
    c[2] = n2;
    c[3] = lo0;
}

LSDM_HD static inline void rng_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
    uint32_t k[2] = {key[0], key[1]};
    rng_philox_round(c, k);
    for (int r = 1; r < 10; r++) {
        k[0] += PHILOX_W0;
        k[1] += PHILOX_W1;
        rng_philox_round(c, k);
    }
    for (int i = 0; i < 4; i++) out[i] = c[i];
}

LSDM_HD static inline void rng_block(uint64_t seed, uint64_t stream, uint64_t block, uint32_t out[4]) {
    uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    rng_philox4x32_10(ctr, key, out);
}

LSDM_HD static inline float rng_u01(uint32_t w) {
    /* (w >> 9) + 0.5 needs 24 significant bits: exact in f32, as is the
     * scaling by a power of two */
    return ((float)(w >> 9) + 0.5f) * 0x1p-23f;
}

/* ln(x) for x >= 0.5, from basic operations only (see rng.h): x = m 2^e
 * with m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(s), s = (m-1)/(m+1),
 * |s| <= 0.1716, whose odd series to s^23 is below 1e-18. */
LSDM_HD static inline double rng_log(double x) {
    int e;
    double m = frexp(x, &e); /* exact: m in [0.5, 1) */
    if (m < 0.70710678118654752440) { m *= 2.0; e -= 1; }
    double s = (m - 1.0) / (m + 1.0), s2 = s * s;
    double p = 1.0 / 23.0;
    for (int k = 21; k >= 1; k -= 2) p = p * s2 + 1.0 / (double)k;
    /* ln 2 split so that e * LN2_HI is exact (fdlibm's constants) */
    const double LN2_HI = 6.93147180369123816490e-01, LN2_LO = 1.90821492927058770002e-10;
    return (double)e * LN2_HI + (2.0 * s * p + (double)e * LN2_LO);
}

/* cos and sin of 2 pi b / 2^32: the quadrant comes exactly from the top
 * two bits, the rest is reduced to |x| <= pi/4 where Taylor series to
 * x^17 / x^18 are below 1e-19. */
LSDM_HD static inline void rng_sincos_turns(uint32_t b, double *c_out, double *s_out) {
    uint32_t q = b >> 30;
    double r = (double)(b & 0x3fffffffu) * 0x1p-30; /* fraction of the quadrant, exact */
    if (r > 0.5) { r -= 1.0; q = (q + 1) & 3; }
    const double HALF_PI = 1.57079632679489661923;
    double x = r * HALF_PI, x2 = x * x;
    double sp = 0.0, cp = 0.0, fs = 1.0, fc = 1.0;
    /* coefficients (-1)^k / (2k+1)! and (-1)^k / (2k)!, Horner from k = 9 */
    double sc[9], cc[10];
    for (int k = 0; k < 10; k++) {
        if (k > 0) fc *= (double)(2 * k - 1) * (double)(2 * k); /* (2k)! */
        cc[k] = (k & 1 ? -1.0 : 1.0) / fc;
        if (k < 9) {
            fs *= k == 0 ? 1.0 : (double)(2 * k) * (double)(2 * k + 1); /* (2k+1)! */
            sc[k] = (k & 1 ? -1.0 : 1.0) / fs;
        }
    }
    for (int k = 8; k >= 0; k--) sp = sp * x2 + sc[k];
    for (int k = 9; k >= 0; k--) cp = cp * x2 + cc[k];
    double s = x * sp, c = cp;
    switch (q) {
    case 0: *c_out = c; *s_out = s; break;
    case 1: *c_out = -s; *s_out = c; break;
    case 2: *c_out = -c; *s_out = -s; break;
    default: *c_out = s; *s_out = -c; break;
    }
}

LSDM_HD static inline void rng_box_muller(uint32_t a, uint32_t b, float *z0, float *z1) {
    /* ln u = ln(a + 0.5) - 32 ln 2: a + 0.5 >= 0.5 is exact in double */
    double lnu = rng_log((double)a + 0.5) - 32.0 * 6.93147180559945309417e-01;
    double r = sqrt(-2.0 * lnu), c, s;
    rng_sincos_turns(b, &c, &s);
    *z0 = (float)(r * c);
    *z1 = (float)(r * s);
}

/* Element k of the normal layout: block k/4, pair (k%4)/2, half k%2. */
LSDM_HD static inline float rng_normal_at(uint64_t seed, uint64_t stream, uint64_t k) {
    uint32_t w[4];
    float z0, z1;
    rng_block(seed, stream, k / 4, w);
    int pair = (int)(k % 4) / 2;
    rng_box_muller(w[2 * pair], w[2 * pair + 1], &z0, &z1);
    return k % 2 ? z1 : z0;
}

LSDM_HD static inline float rng_uniform_at(uint64_t seed, uint64_t stream, uint64_t k) {
    uint32_t w[4];
    rng_block(seed, stream, k / 4, w);
    return rng_u01(w[k % 4]);
}

#endif
