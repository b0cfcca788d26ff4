// Losses on CUDA, checked against kernels/cpu/loss.c by
// tests/c/test_cuda_train.c. Sums in double, as the CPU. The per-element
// work is written as small functor structs (no extended lambdas needed).
#ifndef LSDM_CUDA
#define LSDM_CUDA 1 /* NVFLAGS do not carry CPPFLAGS: see the _cuda declarations */
#endif
#include <math.h>
#include <stdlib.h>
#include <stdint.h>

extern "C" {
#include "err.h"
#include "loss.h"
}
#include "loss_common.cuh"

struct AbsDiff { const float *a, *b; __device__ double operator()(size_t i) const { return fabs((double)a[i] - (double)b[i]); } };
struct SqDiff {
    const float *a, *b;
    __device__ double operator()(size_t i) const { double d = (double)a[i] - (double)b[i]; return d * d; }
};
struct HingeReal { const float *x; __device__ double operator()(size_t i) const { return 1.0 - x[i] > 0 ? 1.0 - x[i] : 0.0; } };
struct HingeFake { const float *x; __device__ double operator()(size_t i) const { return 1.0 + x[i] > 0 ? 1.0 + x[i] : 0.0; } };
struct Value { const float *x; __device__ double operator()(size_t i) const { return (double)x[i]; } };

struct L1Grad {
    float *d; const float *a, *b; float g;
    __device__ void operator()(size_t i) const { float e = a[i] - b[i]; d[i] += e > 0 ? g : e < 0 ? -g : 0.0f; }
};
struct MseGrad { float *d; const float *a, *b; float g; __device__ void operator()(size_t i) const { d[i] += g * (a[i] - b[i]); } };
struct HingeRealGrad { float *d; const float *x; float g; __device__ void operator()(size_t i) const { if (x[i] < 1) d[i] -= g; } };
struct HingeFakeGrad { float *d; const float *x; float g; __device__ void operator()(size_t i) const { if (x[i] > -1) d[i] += g; } };
struct AddConst { float *d; float g; __device__ void operator()(size_t i) const { d[i] += g; } };

extern "C" int l1_loss_forward_cuda(double *loss, double *dwork, const float *pred, const float *target, size_t n) {
    if (loss_cuda_total(loss, dwork, n, AbsDiff{pred, target}, "l1_loss_forward_cuda") < 0) return -1;
    *loss = n ? *loss / (double)n : 0.0;
    return 0;
}

extern "C" int l1_loss_backward_cuda(float *dpred, const float *pred, const float *target, size_t n, float scale) {
    if (!n) return 0;
    return loss_cuda_for(n, L1Grad{dpred, pred, target, (float)(scale / (double)n)}, "l1_loss_backward_cuda");
}

extern "C" int mse_loss_forward_cuda(double *loss, double *dwork, const float *pred, const float *target, size_t n) {
    if (loss_cuda_total(loss, dwork, n, SqDiff{pred, target}, "mse_loss_forward_cuda") < 0) return -1;
    *loss = n ? *loss / (double)n : 0.0;
    return 0;
}

extern "C" int mse_loss_backward_cuda(float *dpred, const float *pred, const float *target, size_t n, float scale) {
    if (!n) return 0;
    return loss_cuda_for(n, MseGrad{dpred, pred, target, (float)(2.0 * scale / (double)n)}, "mse_loss_backward_cuda");
}

extern "C" int hinge_d_loss_forward_cuda(double *loss, double *dwork, const float *real, size_t nr,
                                         const float *fake, size_t nf) {
    double sr = 0, sf = 0;
    if (loss_cuda_total(&sr, dwork, nr, HingeReal{real}, "hinge_d_loss_forward_cuda") < 0 ||
        loss_cuda_total(&sf, dwork, nf, HingeFake{fake}, "hinge_d_loss_forward_cuda") < 0)
        return -1;
    *loss = (nr ? sr / (double)nr : 0.0) + (nf ? sf / (double)nf : 0.0);
    return 0;
}

extern "C" int hinge_d_loss_backward_cuda(float *dreal, float *dfake, const float *real, size_t nr,
                                          const float *fake, size_t nf, float scale) {
    if (dreal && nr &&
        loss_cuda_for(nr, HingeRealGrad{dreal, real, (float)(scale / (double)nr)}, "hinge_d_loss_backward_cuda") < 0)
        return -1;
    if (dfake && nf &&
        loss_cuda_for(nf, HingeFakeGrad{dfake, fake, (float)(scale / (double)nf)}, "hinge_d_loss_backward_cuda") < 0)
        return -1;
    return 0;
}

extern "C" int hinge_g_loss_forward_cuda(double *loss, double *dwork, const float *fake, size_t n) {
    if (loss_cuda_total(loss, dwork, n, Value{fake}, "hinge_g_loss_forward_cuda") < 0) return -1;
    *loss = n ? -*loss / (double)n : 0.0;
    return 0;
}

extern "C" int hinge_g_loss_backward_cuda(float *dfake, size_t n, float scale) {
    if (!n) return 0;
    return loss_cuda_for(n, AddConst{dfake, -(float)(scale / (double)n)}, "hinge_g_loss_backward_cuda");
}

// Max and sum of exp(x - max) over the C channels of position s of x (C,S).
__device__ static void ce_stats(const float *x, int C, long S, long s, float *mx, float *sum) {
    float m = x[s];
    for (int c = 1; c < C; c++) m = fmaxf(m, x[(long)c * S + s]);
    float z = 0;
    for (int c = 0; c < C; c++) z += expf(x[(long)c * S + s] - m);
    *mx = m;
    *sum = z;
}

struct BadTarget {
    const int32_t *t; int C;
    __device__ double operator()(size_t i) const { return t[i] < 0 || t[i] >= C ? 1.0 : 0.0; }
};

// Position i = n*S + s of the (N,S) targets.
struct CeTerm {
    const float *logits; const int32_t *t; int C; long S;
    __device__ double operator()(size_t i) const {
        size_t n = i / (size_t)S;
        long s = (long)(i % (size_t)S);
        const float *x = logits + n * (size_t)C * (size_t)S;
        float m, z;
        ce_stats(x, C, S, s, &m, &z);
        return (double)m + log((double)z) - (double)x[(long)t[i] * S + s];
    }
};

struct CeGrad {
    float *dlogits; const float *logits; const int32_t *t; int C; long S; float g;
    __device__ void operator()(size_t i) const {
        int ti = t[i];
        if (ti < 0 || ti >= C) return;
        size_t n = i / (size_t)S;
        long s = (long)(i % (size_t)S);
        const float *x = logits + n * (size_t)C * (size_t)S;
        float *dx = dlogits + n * (size_t)C * (size_t)S;
        float m, z;
        ce_stats(x, C, S, s, &m, &z);
        float gz = g / z;
        for (int c = 0; c < C; c++) {
            float p = expf(x[(long)c * S + s] - m) * gz;
            dx[(long)c * S + s] += c == ti ? p - g : p;
        }
    }
};

extern "C" int cross_entropy_forward_cuda(double *loss, double *dwork, const float *logits, const int32_t *target,
                                          int N, int C, long S) {
    size_t P = (size_t)N * (size_t)S;
    double bad = 0;
    if (loss_cuda_total(&bad, dwork, P, BadTarget{target, C}, "cross_entropy_forward_cuda") < 0) return -1;
    if (bad > 0) { *loss = NAN; return 0; }
    if (loss_cuda_total(loss, dwork, P, CeTerm{logits, target, C, S}, "cross_entropy_forward_cuda") < 0) return -1;
    *loss = P ? *loss / (double)P : 0.0;
    return 0;
}

extern "C" int cross_entropy_backward_cuda(float *dlogits, const float *logits, const int32_t *target,
                                           int N, int C, long S, float scale) {
    size_t P = (size_t)N * (size_t)S;
    if (!P) return 0;
    return loss_cuda_for(P, CeGrad{dlogits, logits, target, C, S, (float)(scale / (double)P)},
                         "cross_entropy_backward_cuda");
}
