// GroupNorm (and InstanceNorm = GroupNorm with G = C) on CUDA, the same
// arithmetic as kernels/cpu/groupnorm_impl.h, checked against it by
// tests/c/test_cuda_ops.c.
//
// Forward: one block per (n, g). Statistics in one read of the group:
// shifted sums s1 = sum(x - k), s2 = sum((x - k)^2) in double (k = the
// group's first value, so |mean| >> std does not cancel), then a second
// read writes the normalised values.
// Backward: one block per group g, looping over n inside, as the CPU: the
// block owns dweight/dbias of its Cg channels, so they are accumulated
// without atomics, in a fixed order (deterministic), and no workspace is
// needed. The price is N times less parallelism than per (n, g) blocks,
// which is fine for the batch sizes of 3D models (N = 1..4).
#ifndef LSDM_CUDA
#define LSDM_CUDA 1 /* NVFLAGS do not carry CPPFLAGS: see the _cuda declarations */
#endif
#include <math.h>

#include "ops_common.cuh"
extern "C" {
#include "groupnorm.h"
#include "instancenorm.h"
}

#define GN_THREADS 512

__global__ void gn_forward_kernel(float *out, float *mean, float *rstd, const float *inp,
                                  const float *weight, const float *bias, int C, int S, int G,
                                  float eps) {
    __shared__ double sh[32];
    int ng = blockIdx.x, g = ng % G, Cg = C / G;
    size_t M = (size_t)Cg * S, off = (size_t)ng * M;
    const float *x = inp + off;
    double k = x[0], s1 = 0, s2 = 0;
    for (size_t i = threadIdx.x; i < M; i += blockDim.x) {
        double d = (double)x[i] - k;
        s1 += d;
        s2 += d * d;
    }
    s1 = ops_block_sum(s1, sh);
    s2 = ops_block_sum(s2, sh);
    double m = k + s1 / (double)M;
    double v = s2 / (double)M - (s1 / (double)M) * (s1 / (double)M);
    if (v < 0) v = 0;
    double rs = 1.0 / sqrt(v + (double)eps);
    if (threadIdx.x == 0) {
        if (mean) mean[ng] = (float)m;
        if (rstd) rstd[ng] = (float)rs;
    }
    float mr = (float)m;
    float *o = out + off;
    for (size_t i = threadIdx.x; i < M; i += blockDim.x) {
        int c = g * Cg + (int)(i / (size_t)S);
        float a = (float)(rs * (weight ? (double)weight[c] : 1.0));
        float b = bias ? bias[c] : 0.0f;
        o[i] = (x[i] - mr) * a + b;
    }
}

// With xhat = (x - mean) * rstd and dxhat = dout * weight, per group of
// M = Cg*S values:
//   dinp += rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
//   dbias[c] += sum dout,  dweight[c] += sum dout * xhat
__global__ void gn_backward_kernel(float *dinp, float *dweight, float *dbias, const float *dout,
                                   const float *inp, const float *weight, const float *mean,
                                   const float *rstd, int N, int C, int S, int G) {
    __shared__ double sh[32];
    int g = blockIdx.x, Cg = C / G;
    size_t M = (size_t)Cg * S;
    for (int n = 0; n < N; n++) {
        int ng = n * G + g;
        size_t off = (size_t)ng * M;
        double m = mean[ng], rs = rstd[ng];
        float mr = (float)m;
        double s1 = 0, s2 = 0; // sum dxhat, sum dxhat * xhat (same in every thread)
        for (int j = 0; j < Cg; j++) {
            int c = g * Cg + j;
            const float *x = inp + off + (size_t)j * S, *dy = dout + off + (size_t)j * S;
            double a = 0, b = 0; // sum dy, sum dy * (x - mean)
            for (int i = threadIdx.x; i < S; i += blockDim.x) {
                a += dy[i];
                b += (double)(dy[i] * (x[i] - mr));
            }
            a = ops_block_sum(a, sh);
            b = ops_block_sum(b, sh);
            if (threadIdx.x == 0) {
                if (dbias) dbias[c] += (float)a;
                if (dweight) dweight[c] += (float)(b * rs);
            }
            double w = weight ? (double)weight[c] : 1.0;
            s1 += w * a;
            s2 += w * b * rs;
        }
        if (!dinp) continue;
        float k2 = (float)(rs * rs * s2 / (double)M), k3 = (float)(rs * s1 / (double)M);
        const float *x = inp + off, *dy = dout + off;
        float *dx = dinp + off;
        for (size_t i = threadIdx.x; i < M; i += blockDim.x) {
            int c = g * Cg + (int)(i / (size_t)S);
            float k1 = (float)(rs * (weight ? (double)weight[c] : 1.0));
            dx[i] += dy[i] * k1 - (x[i] - mr) * k2 - k3;
        }
    }
}

extern "C" int groupnorm_forward_cuda(float *out, float *mean, float *rstd, const float *inp,
                                      const float *weight, const float *bias,
                                      int N, int C, int S, int G, float eps) {
    if (groupnorm_check(N, C, S, G) < 0) return -1;
    gn_forward_kernel<<<N * G, GN_THREADS>>>(out, mean, rstd, inp, weight, bias, C, S, G, eps);
    return ops_check("groupnorm_forward_cuda");
}

extern "C" int groupnorm_backward_cuda(float *dinp, float *dweight, float *dbias, const float *dout,
                                       const float *inp, const float *weight, const float *mean,
                                       const float *rstd, int N, int C, int S, int G) {
    if (groupnorm_check(N, C, S, G) < 0) return -1;
    if (!dinp && !dweight && !dbias) return 0;
    gn_backward_kernel<<<G, GN_THREADS>>>(dinp, dweight, dbias, dout, inp, weight, mean, rstd,
                                          N, C, S, G);
    return ops_check("groupnorm_backward_cuda");
}

extern "C" int instancenorm_forward_cuda(float *out, float *mean, float *rstd, const float *inp,
                                         const float *weight, const float *bias,
                                         int N, int C, int S, float eps) {
    return groupnorm_forward_cuda(out, mean, rstd, inp, weight, bias, N, C, S, C, eps);
}

extern "C" int instancenorm_backward_cuda(float *dinp, float *dweight, float *dbias,
                                          const float *dout, const float *inp, const float *weight,
                                          const float *mean, const float *rstd, int N, int C, int S) {
    return groupnorm_backward_cuda(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C, S, C);
}
