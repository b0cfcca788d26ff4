#include "dtype.h"

#include <math.h>
#include <string.h>

#include "err.h"

static const char *const dtype_names[LSDM_DTYPE_COUNT] = {"u8", "i16", "i32", "f16", "bf16", "f32"};
static const size_t dtype_sizes[LSDM_DTYPE_COUNT] = {1, 2, 4, 2, 2, 4};

const char *lsdm_dtype_name(lsdm_dtype t) { return t < LSDM_DTYPE_COUNT ? dtype_names[t] : "?"; }
size_t lsdm_dtype_size(lsdm_dtype t) { return t < LSDM_DTYPE_COUNT ? dtype_sizes[t] : 0; }
int lsdm_dtype_is_float(lsdm_dtype t) { return t == LSDM_F16 || t == LSDM_BF16 || t == LSDM_F32; }

int lsdm_dtype_parse(const char *s, lsdm_dtype *out) {
    for (int i = 0; i < LSDM_DTYPE_COUNT; i++)
        if (strcmp(s, dtype_names[i]) == 0) { *out = (lsdm_dtype)i; return 0; }
    return -1;
}

static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float lsdm_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000 | (man << 13)); /* inf/nan */
    if (exp == 0) { /* zero or subnormal: value = man * 2^-24 */
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t lsdm_f32_to_f16(float f) {
    uint32_t u = f32_bits(f), sign = (u >> 16) & 0x8000;
    uint32_t absu = u & 0x7fffffff;
    if (absu > 0x7f800000) return (uint16_t)(sign | 0x7e00);          /* nan */
    if (absu >= 0x477ff000) return (uint16_t)(sign | 0x7c00);         /* overflow -> inf */
    if (absu < 0x38800000) {                                         /* subnormal or zero */
        float a = bits_f32(absu);
        /* scale so that the f16 subnormal unit becomes 1, round to nearest even */
        float m = a * 16777216.0f; /* 2^24 */
        uint32_t r = (uint32_t)nearbyintf(m);
        return (uint16_t)(sign | r);
    }
    uint32_t exp = ((absu >> 23) - 112) << 10, man = (absu >> 13) & 0x3ff;
    uint32_t h = exp | man, rest = absu & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;           /* may carry into exp: ok */
    return (uint16_t)(sign | h);
}

float lsdm_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t lsdm_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 0x40); /* quiet nan */
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

double lsdm_elem_get(const void *buf, lsdm_dtype t, size_t i) {
    switch (t) {
    case LSDM_U8: return ((const uint8_t *)buf)[i];
    case LSDM_I16: return ((const int16_t *)buf)[i];
    case LSDM_I32: return ((const int32_t *)buf)[i];
    case LSDM_F16: return lsdm_f16_to_f32(((const uint16_t *)buf)[i]);
    case LSDM_BF16: return lsdm_bf16_to_f32(((const uint16_t *)buf)[i]);
    case LSDM_F32: return ((const float *)buf)[i];
    default: return NAN;
    }
}

void lsdm_convert_to_f32(float *dst, const void *src, lsdm_dtype t, size_t n) {
    if (t == LSDM_F32) { memmove(dst, src, n * 4); return; }
    for (size_t i = 0; i < n; i++) dst[i] = (float)lsdm_elem_get(src, t, i);
}

static double clamp_round(float v, double lo, double hi) {
    double r = nearbyint((double)v);
    return r < lo ? lo : r > hi ? hi : r;
}

int lsdm_convert_from_f32(void *dst, lsdm_dtype t, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = src[i];
        if (isnan(v)) return lsdm_err("NaN at element %zu", i);
        switch (t) {
        case LSDM_U8: ((uint8_t *)dst)[i] = (uint8_t)clamp_round(v, 0, 255); break;
        case LSDM_I16: ((int16_t *)dst)[i] = (int16_t)clamp_round(v, -32768, 32767); break;
        case LSDM_I32: ((int32_t *)dst)[i] = (int32_t)clamp_round(v, -2147483648.0, 2147483647.0); break;
        case LSDM_F16: ((uint16_t *)dst)[i] = lsdm_f32_to_f16(v); break;
        case LSDM_BF16: ((uint16_t *)dst)[i] = lsdm_f32_to_bf16(v); break;
        case LSDM_F32: ((float *)dst)[i] = v; break;
        default: return lsdm_err("bad dtype");
        }
    }
    return 0;
}
