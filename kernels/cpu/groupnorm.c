/* GroupNorm forward/backward on the CPU, float and double from one source
 * (groupnorm_impl.h). */
/* no-trapping-math: as in activation.c, lets the fused SiLU's exp vectorise */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include <math.h>
#include <stddef.h>

#include "err.h"
#include "gemm_avx512.h"
#include "groupnorm.h"
#include "vexpf.h"

/* o[i] = silu((x[i] - m) * a + b) for i < n. The SiLU's exp polynomial
 * makes this loop compute-bound at SSE2 width (the build has no -march),
 * so on CPUs with AVX-512 the same C loop is compiled for 16 lanes
 * (chosen at run time by gemm_avx512_usable). Same operations, same
 * results up to the compiler's choice of FMA contraction. */
#define GN_SILU_LOOP                                                  \
    _Pragma("omp simd")                                               \
    for (int i = 0; i < n; i++) {                                     \
        float v = (x[i] - m) * a + b;                                 \
        o[i] = v * (1.0f / (1.0f + act_expf(-v)));                    \
    }
static void gn_affine_silu_generic(float *o, const float *x, int n, float m, float a, float b) {
    GN_SILU_LOOP
}
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512f"))) static void gn_affine_silu_avx512(float *o, const float *x, int n,
                                                                    float m, float a, float b) {
    GN_SILU_LOOP
}
#endif
static void gn_affine_silu(float *o, const float *x, int n, float m, float a, float b) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (gemm_avx512_usable()) {
        gn_affine_silu_avx512(o, x, n, m, a, b);
        return;
    }
#endif
    gn_affine_silu_generic(o, x, n, m, a, b);
}
/* the double reference */
static void gn_affine_silu_f64(double *o, const double *x, int n, double m, double a, double b) {
    #pragma omp simd
    for (int i = 0; i < n; i++) {
        double v = (x[i] - m) * a + b;
        o[i] = v * (1.0 / (1.0 + exp(-v))); // as silu_forward_f64
    }
}

int groupnorm_check(int N, int C, int S, int G) {
    if (N < 1 || C < 1 || S < 1 || G < 1)
        return lsdm_err("groupnorm: bad sizes N=%d C=%d S=%d G=%d", N, C, S, G);
    if (C % G != 0) return lsdm_err("groupnorm: %d groups do not divide %d channels", G, C);
    return 0;
}

#define LSDM_IMPL "groupnorm_impl.h"
#include "instantiate.h"
