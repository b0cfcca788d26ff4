/* Linear attention (see kernels/linear_attention.h); the body is in
 * linear_attention_impl.h, compiled in float and in double. */
#include <cblas.h>
#include <math.h>

#include "linear_attention.h"

size_t linear_attention_workspace_size(int B, int H, int dh, int F, int N) {
    // dqs and dks (B,H,dh,F,N), dctx (B,F,H,dh,dh)
    return 2 * (size_t)B * H * dh * F * N + (size_t)B * F * H * dh * dh;
}

#define real float
#define FN(x) x
#define GEMM cblas_sgemm
#define EXP expf
#include "linear_attention_impl.h"
#undef real
#undef FN
#undef GEMM
#undef EXP

#define real double
#define FN(x) x##_f64
#define GEMM cblas_dgemm
#define EXP exp
#include "linear_attention_impl.h"
#undef real
#undef FN
#undef GEMM
#undef EXP
