// BatchNorm in inference mode on CUDA, the same arithmetic as
// kernels/cpu/batchnorm_impl.h (checked by tests/c/test_cuda_ops.c).
// Forward and dinp: grid-stride over the N*C*S values. dweight/dbias: one
// block per channel looping over n and s, sums in double, so the channel
// is owned by one block (no atomics, deterministic).
#ifndef LSDM_CUDA
#define LSDM_CUDA 1 /* NVFLAGS do not carry CPPFLAGS: see the _cuda declarations */
#endif
#include <math.h>

#include "ops_common.cuh"
extern "C" {
#include "batchnorm.h"
}

// Per-channel scale rstd * weight, as the CPU rounds it.
__device__ static inline float bn_scale(const float *weight, const float *rvar, int c, float eps) {
    double rs = 1.0 / sqrt((double)rvar[c] + (double)eps);
    return (float)(rs * (weight ? (double)weight[c] : 1.0));
}

struct BnForward {
    float *out; const float *inp, *weight, *bias, *rmean, *rvar; int C, S; float eps;
    __device__ void operator()(size_t i) const {
        int c = (int)((i / (size_t)S) % (size_t)C);
        float b = bias ? bias[c] : 0.0f;
        out[i] = (inp[i] - rmean[c]) * bn_scale(weight, rvar, c, eps) + b;
    }
};

struct BnDinp {
    float *dinp; const float *dout, *weight, *rvar; int C, S; float eps;
    __device__ void operator()(size_t i) const {
        int c = (int)((i / (size_t)S) % (size_t)C);
        dinp[i] += dout[i] * bn_scale(weight, rvar, c, eps);
    }
};

__global__ void bn_param_grad_kernel(float *dweight, float *dbias, const float *dout,
                                     const float *inp, const float *rmean, const float *rvar,
                                     int N, int C, int S, float eps) {
    __shared__ double sh[32];
    int c = blockIdx.x;
    float m = rmean[c];
    double a = 0, b = 0; // sum dy, sum dy * (x - mean)
    for (int n = 0; n < N; n++) {
        size_t off = ((size_t)n * C + c) * S;
        for (int i = threadIdx.x; i < S; i += blockDim.x) {
            double dy = dout[off + i];
            a += dy;
            b += dy * ((double)inp[off + i] - (double)m);
        }
    }
    a = ops_block_sum(a, sh);
    b = ops_block_sum(b, sh);
    if (threadIdx.x == 0) {
        double rs = 1.0 / sqrt((double)rvar[c] + (double)eps);
        if (dbias) dbias[c] += (float)a;
        if (dweight) dweight[c] += (float)(b * rs);
    }
}

static int bn_sizes(int N, int C, int S) {
    return N >= 1 && C >= 1 && S >= 1 ? 0 : lsdm_err("batchnorm: bad sizes N %d C %d S %d", N, C, S);
}

extern "C" int batchnorm_forward_cuda(float *out, const float *inp, const float *weight,
                                      const float *bias, const float *rmean, const float *rvar,
                                      int N, int C, int S, float eps) {
    if (bn_sizes(N, C, S) < 0) return -1;
    size_t n = (size_t)N * C * S;
    return ops_for(n, BnForward{out, inp, weight, bias, rmean, rvar, C, S, eps}, "batchnorm_forward_cuda");
}

extern "C" int batchnorm_backward_cuda(float *dinp, float *dweight, float *dbias, const float *dout,
                                       const float *inp, const float *weight, const float *rmean,
                                       const float *rvar, int N, int C, int S, float eps) {
    if (bn_sizes(N, C, S) < 0) return -1;
    size_t n = (size_t)N * C * S;
    if (dinp && ops_for(n, BnDinp{dinp, dout, weight, rvar, C, S, eps}, "batchnorm_backward_cuda") < 0)
        return -1;
    if (!dweight && !dbias) return 0;
    bn_param_grad_kernel<<<C, OPS_THREADS>>>(dweight, dbias, dout, inp, rmean, rvar, N, C, S, eps);
    return ops_check("batchnorm_backward_cuda");
}
