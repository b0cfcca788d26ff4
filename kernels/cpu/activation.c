/* Activations on the CPU, float and double from activation_impl.h. */
/* GCC will not if-convert float comparisons (the clamps in act_expf and
 * relu's select) while they may raise FP exceptions, which keeps these
 * loops scalar; nothing in lsdm reads the FP exception flags. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "activation.h"
#include "err.h"

#define PAR_MIN 32768

static const char *const act_names[] = {"none", "silu", "relu", "leaky_relu",
                                        "gelu", "gelu_tanh", "tanh", "sigmoid"};

int act_kind_parse(const char *name, act_kind *out) {
    for (int k = 0; k < (int)(sizeof act_names / sizeof *act_names); k++)
        if (strcmp(name, act_names[k]) == 0) { *out = (act_kind)k; return 0; }
    return lsdm_err("unknown activation '%s'", name);
}

const char *act_kind_name(act_kind k) {
    return (unsigned)k < sizeof act_names / sizeof *act_names ? act_names[k] : "?";
}

int act_backward_uses_output(act_kind k) {
    return k == ACT_NONE || k == ACT_RELU || k == ACT_LEAKY_RELU || k == ACT_TANH ||
           k == ACT_SIGMOID;
}

/* exp for the float path, written so that the compiler vectorises the
 * loops that call it (libm's expf is an opaque call). Range reduction
 * x = n ln2 + r, |r| <= ln2/2 (ln2 split in two for exactness), a degree-7
 * Taylor polynomial for e^r (truncation < 1e-8 relative), and 2^n by
 * building the float's exponent bits. Below -87.3 gives 0, above 88.7 +inf,
 * like expf. Relative error about 2 ulp; tested against the double path. */
static inline float act_expf(float x) {
    const float shift = 12582912.0f; // 1.5 * 2^23: adding it rounds to an integer
    float xc = x < -87.3f ? -87.3f : x > 88.7f ? 88.7f : x;
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
    return x > 88.7f ? INFINITY : y;
}

#define real float
#define FN(x) x
#define RF(fn) fn##f
#define R_EXP act_expf
#include "activation_impl.h"
#undef real
#undef FN
#undef RF
#undef R_EXP

#define real double
#define FN(x) x##_f64
#define RF(fn) fn
#define R_EXP exp
#include "activation_impl.h"
#undef real
#undef FN
#undef RF
#undef R_EXP
