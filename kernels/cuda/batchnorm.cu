// BatchNorm on CUDA. Inference mode (training mode: see below), the same arithmetic as
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

// ---- training mode: batch statistics ---------------------------------------
// One block per channel, the same arithmetic as the CPU's
// batchnorm_train_forward/backward (kernels/cpu/batchnorm_impl.h), checked
// by tests/c/test_cuda_bnpad.c. The block owns its channel's statistics,
// running stats, dweight and dbias: no atomics, a fixed order.

#define BN_THREADS 512

// Statistics from shifted sums in double (shift = the channel's first
// value, so |mean| >> std does not cancel), the running update (unbiased
// variance), then the normalised values.
__global__ void bn_train_forward_kernel(float *out, float *mean, float *rstd, float *rmean,
                                        float *rvar, const float *inp, const float *weight,
                                        const float *bias, int N, int C, int S, float eps,
                                        float momentum) {
    __shared__ double sh[32];
    int c = blockIdx.x;
    double k = inp[(size_t)c * S], s1 = 0, s2 = 0;
    for (int n = 0; n < N; n++) {
        const float *x = inp + ((size_t)n * C + c) * S;
        for (int i = threadIdx.x; i < S; i += blockDim.x) {
            double d = (double)x[i] - k;
            s1 += d;
            s2 += d * d;
        }
    }
    s1 = ops_block_sum(s1, sh);
    s2 = ops_block_sum(s2, sh);
    double M = (double)N * S, m = k + s1 / M, v = s2 / M - (s1 / M) * (s1 / M);
    if (v < 0) v = 0;
    double rs = 1.0 / sqrt(v + (double)eps);
    if (threadIdx.x == 0) {
        double mom = momentum;
        if (mean) mean[c] = (float)m;
        if (rstd) rstd[c] = (float)rs;
        if (rmean) rmean[c] = (float)((1 - mom) * (double)rmean[c] + mom * m);
        if (rvar) rvar[c] = (float)((1 - mom) * (double)rvar[c] + mom * (M > 1 ? v * M / (M - 1) : v));
    }
    float a = (float)(rs * (weight ? (double)weight[c] : 1.0));
    float b = bias ? bias[c] : 0.0f, mr = (float)m;
    for (int n = 0; n < N; n++) {
        size_t off = ((size_t)n * C + c) * S;
        for (int i = threadIdx.x; i < S; i += blockDim.x) out[off + i] = (inp[off + i] - mr) * a + b;
    }
}

// a = sum dy, b = sum dy * (x - mean) over the channel, then
//   dinp += dy * rstd*w - (x - mean) * w*rstd^3*b/M - rstd*w*a/M
//   dbias += a, dweight += b * rstd
__global__ void bn_train_backward_kernel(float *dinp, float *dweight, float *dbias,
                                         const float *dout, const float *inp, const float *weight,
                                         const float *mean, const float *rstd, int N, int C, int S) {
    __shared__ double sh[32];
    int c = blockIdx.x;
    double m = mean[c], rs = rstd[c], w = weight ? (double)weight[c] : 1.0;
    float mr = (float)m;
    double a = 0, b = 0;
    for (int n = 0; n < N; n++) {
        size_t off = ((size_t)n * C + c) * S;
        for (int i = threadIdx.x; i < S; i += blockDim.x) {
            float dy = dout[off + i];
            a += dy;
            b += (double)(dy * (inp[off + i] - mr));
        }
    }
    a = ops_block_sum(a, sh);
    b = ops_block_sum(b, sh);
    if (threadIdx.x == 0) {
        if (dbias) dbias[c] += (float)a;
        if (dweight) dweight[c] += (float)(b * rs);
    }
    if (!dinp) return;
    double M = (double)N * S;
    float k1 = (float)(rs * w), k2 = (float)(w * rs * rs * rs * b / M), k3 = (float)(rs * w * a / M);
    for (int n = 0; n < N; n++) {
        size_t off = ((size_t)n * C + c) * S;
        for (int i = threadIdx.x; i < S; i += blockDim.x)
            dinp[off + i] += dout[off + i] * k1 - (inp[off + i] - mr) * k2 - k3;
    }
}

extern "C" int batchnorm_train_forward_cuda(float *out, float *mean, float *rstd, float *rmean,
                                            float *rvar, const float *inp, const float *weight,
                                            const float *bias, int N, int C, int S, float eps,
                                            float momentum) {
    if (batchnorm_check(N, C, S, 1) < 0) return -1;
    bn_train_forward_kernel<<<C, BN_THREADS>>>(out, mean, rstd, rmean, rvar, inp, weight, bias, N, C,
                                               S, eps, momentum);
    return ops_check("batchnorm_train_forward_cuda");
}

extern "C" int batchnorm_train_backward_cuda(float *dinp, float *dweight, float *dbias,
                                             const float *dout, const float *inp, const float *weight,
                                             const float *mean, const float *rstd, int N, int C, int S) {
    if (batchnorm_check(N, C, S, 1) < 0) return -1;
    if (!dinp && !dweight && !dbias) return 0;
    bn_train_backward_kernel<<<C, BN_THREADS>>>(dinp, dweight, dbias, dout, inp, weight, mean, rstd,
                                                N, C, S);
    return ops_check("batchnorm_train_backward_cuda");
}
