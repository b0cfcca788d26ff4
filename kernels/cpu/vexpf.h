/* act_expf: a float exp that the compiler vectorises, shared by the
 * float kernels whose loops call exp (activation.c, groupnorm.c's fused
 * SiLU). Include it once per .c file; such files also disable
 * trapping-math (see activation.c) so that the clamps vectorise. */
#ifndef LSDM_VEXPF_H
#define LSDM_VEXPF_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* exp for the float path, written so that the compiler vectorises the
 * loops that call it (libm's expf is an opaque call). Range reduction
 * x = n ln2 + r, |r| <= ln2/2 (ln2 split in two for exactness), a degree-7
 * Taylor polynomial for e^r (truncation < 1e-8 relative), and 2^n by
 * building the float's exponent bits. Below -87.3 gives 0, above 88.7 +inf,
 * like expf; NaN gives NaN (the float-to-int conversion never sees it: that
 * would be undefined). Relative error about 2 ulp; tested against the
 * double path. */
static inline float act_expf(float x) {
    const float shift = 12582912.0f; // 1.5 * 2^23: adding it rounds to an integer
    float xc = x < -87.3f ? -87.3f : x > 88.7f ? 88.7f : x == x ? x : 0.0f;
    float n = (xc * 1.44269504089f + shift) - shift;
    float r = (xc - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
    float p = 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float y = p * scale;
    y = x < -87.3f ? 0.0f : y;
    y = x > 88.7f ? INFINITY : y;
    return x == x ? y : x;
}

#endif
