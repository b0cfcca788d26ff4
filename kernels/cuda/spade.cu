// SPADE modulation on CUDA: out = x (1 + gamma) + beta, element-wise, the
// arithmetic of kernels/cpu/spade_impl.h (checked by tests/c/test_cuda_ops.c).
// Backward ACCUMULATES into dx, dgamma, dbeta (each may be NULL).
#ifndef LSDM_CUDA
#define LSDM_CUDA 1 /* NVFLAGS do not carry CPPFLAGS: see the _cuda declarations */
#endif
#include "ops_common.cuh"
extern "C" {
#include "spade.h"
}

struct SpadeForward {
    float *out; const float *x, *gamma, *beta;
    __device__ void operator()(size_t i) const { out[i] = x[i] * (1.0f + gamma[i]) + beta[i]; }
};

struct SpadeBackward {
    float *dx, *dgamma, *dbeta; const float *dout, *x, *gamma;
    __device__ void operator()(size_t i) const {
        float dy = dout[i];
        if (dx) dx[i] += dy * (1.0f + gamma[i]);
        if (dgamma) dgamma[i] += dy * x[i];
        if (dbeta) dbeta[i] += dy;
    }
};

extern "C" int spade_forward_cuda(float *out, const float *x, const float *gamma, const float *beta,
                                  size_t n) {
    return ops_for(n, SpadeForward{out, x, gamma, beta}, "spade_forward_cuda");
}

extern "C" int spade_backward_cuda(float *dx, float *dgamma, float *dbeta, const float *dout,
                                   const float *x, const float *gamma, size_t n) {
    if (!dx && !dgamma && !dbeta) return 0;
    return ops_for(n, SpadeBackward{dx, dgamma, dbeta, dout, x, gamma}, "spade_backward_cuda");
}
