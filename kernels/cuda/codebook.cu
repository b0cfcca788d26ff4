// The VQ codebook on CUDA, the semantics of kernels/codebook.h, checked
// against the CPU by tests/c/test_cuda_codebook.c. Nearest codes: one
// thread per vector holds its z in registers and scans every code in
// increasing k from tiles of the transposed codebook in shared memory,
// keeping the first strict minimum: ties go to the lowest k, no atomics,
// deterministic. The distance is the CPU's 0.5||e||^2 - z.e (hn from the
// same double sum), accumulated over c in order with fused multiply-adds.
#ifndef LSDM_CUDA
#define LSDM_CUDA 1 /* NVFLAGS do not carry CPPFLAGS: see the _cuda declarations */
#endif
#include <math.h>
#include <stdint.h>

#include "ops_common.cuh"
extern "C" {
#include "codebook.h"
#include "loss.h"
}

#define CB_THREADS 256
#define CB_TILE_FLOATS 4096 // codes x dim of one shared tile (16 KiB)

// et (C,Kp) = emb^T, zero past K; hn (Kp) = 0.5 ||e_k||^2, +Inf past K.
__global__ void cb_prepare_kernel(float *et, float *hn, const float *emb, int K, int C, int Kp) {
    int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= Kp) return;
    double s = 0;
    for (int c = 0; c < C; c++) {
        float v = k < K ? emb[(size_t)k * C + c] : 0.0f;
        et[(size_t)c * Kp + k] = v;
        s += (double)v * v;
    }
    hn[k] = k < K ? (float)(0.5 * s) : INFINITY;
}

// One thread per vector m = n*S + s; CMAX >= C is the register array size.
template <int CMAX>
__global__ void cb_nearest_kernel(int32_t *idx, float *mindist, const float *z, const float *et, const float *hn,
                                  int C, long S, long M, int Kp) {
    constexpr int TK = CB_TILE_FLOATS / CMAX; // codes per tile (a multiple of 16)
    __shared__ float she[CMAX * TK];
    __shared__ float shn[TK];
    long m = blockIdx.x * (long)blockDim.x + threadIdx.x;
    bool live = m < M;
    float zr[CMAX];
    double zz = 0;
    const float *zv = z + (live ? (m / S) * C * S + m % S : 0);
#pragma unroll
    for (int c = 0; c < CMAX; c++) {
        zr[c] = live && c < C ? zv[(size_t)c * S] : 0.0f;
        zz += (double)zr[c] * zr[c];
    }
    float best = INFINITY;
    int bi = 0;
    for (int k0 = 0; k0 < Kp; k0 += TK) {
        int nk = Kp - k0 < TK ? Kp - k0 : TK;
        __syncthreads(); // the previous tile is consumed
        for (int i = threadIdx.x; i < C * nk; i += blockDim.x) {
            int c = i / nk, kk = i % nk;
            she[c * TK + kk] = et[(size_t)c * Kp + k0 + kk];
        }
        for (int kk = threadIdx.x; kk < nk; kk += blockDim.x) shn[kk] = hn[k0 + kk];
        __syncthreads();
        for (int kk = 0; kk < nk; kk++) {
            float d = shn[kk];
#pragma unroll
            for (int c = 0; c < CMAX; c++)
                if (c < C) d = fmaf(-zr[c], she[c * TK + kk], d);
            if (d < best) { best = d; bi = k0 + kk; }
        }
    }
    if (!live) return;
    bool ok = isfinite(best) && isfinite(zz); // +Inf: all NaN; -Inf: an Inf in z
    idx[m] = ok ? bi : 0;
    if (mindist) mindist[m] = ok ? (float)(zz + 2.0 * (double)best) : __int_as_float(0x7fc00000);
}

extern "C" int codebook_nearest_cuda(int32_t *idx, float *mindist, float *work, const float *z, const float *emb,
                                     int N, int C, long S, int K) {
    if (N < 1 || C < 1 || S < 1 || K < 1 || C > 64)
        return lsdm_err("codebook_nearest_cuda: bad sizes N %d C %d S %ld K %d (C <= 64 on CUDA)", N, C, S, K);
    int Kp = (K + 15) / 16 * 16;
    float *et = work, *hn = work + (size_t)C * Kp;
    cb_prepare_kernel<<<(Kp + CB_THREADS - 1) / CB_THREADS, CB_THREADS>>>(et, hn, emb, K, C, Kp);
    if (ops_check("codebook_nearest_cuda (prepare)") < 0) return -1;
    long M = (long)N * S;
    long blocks = (M + CB_THREADS - 1) / CB_THREADS;
    if (blocks > INT32_MAX) return lsdm_err("codebook_nearest_cuda: %ld vectors are too many", M);
    if (C <= 4)
        cb_nearest_kernel<4><<<(unsigned)blocks, CB_THREADS>>>(idx, mindist, z, et, hn, C, S, M, Kp);
    else if (C <= 8)
        cb_nearest_kernel<8><<<(unsigned)blocks, CB_THREADS>>>(idx, mindist, z, et, hn, C, S, M, Kp);
    else if (C <= 16)
        cb_nearest_kernel<16><<<(unsigned)blocks, CB_THREADS>>>(idx, mindist, z, et, hn, C, S, M, Kp);
    else
        cb_nearest_kernel<64><<<(unsigned)blocks, CB_THREADS>>>(idx, mindist, z, et, hn, C, S, M, Kp);
    return ops_check("codebook_nearest_cuda");
}

// zq[(n*C + c)*S + s] = emb[idx[n*S + s]*C + c]; NaN for an index outside [0,K).
struct CbLookup {
    float *zq; const int32_t *idx; const float *emb; int C, K; long S;
    __device__ void operator()(size_t i) const {
        size_t s = i % (size_t)S, c = i / (size_t)S % (size_t)C, n = i / ((size_t)S * C);
        int32_t k = idx[n * S + s];
        zq[i] = k >= 0 && k < K ? emb[(size_t)k * C + c] : __int_as_float(0x7fc00000);
    }
};

extern "C" int codebook_lookup_cuda(float *zq, const int32_t *idx, const float *emb, int N, int C, long S, int K) {
    if (N < 1 || C < 1 || S < 1 || K < 1)
        return lsdm_err("codebook_lookup_cuda: bad sizes N %d C %d S %ld K %d", N, C, S, K);
    return ops_for((size_t)N * C * S, CbLookup{zq, idx, emb, C, K, S}, "codebook_lookup_cuda");
}

extern "C" int codebook_commitment_forward_cuda(double *loss, double *dwork, const float *z, const float *zq,
                                                size_t n, double beta) {
    if (mse_loss_forward_cuda(loss, dwork, z, zq, n) < 0) return -1;
    *loss *= beta;
    return 0;
}

// dz += dzq + g (z - zq), g = 2 scale beta / n (the CPU's float g).
struct CbCommitGrad {
    float *dz; const float *dzq, *z, *zq; float g;
    __device__ void operator()(size_t i) const { dz[i] += (dzq ? dzq[i] : 0.0f) + g * (z[i] - zq[i]); }
};

extern "C" int codebook_commitment_backward_cuda(float *dz, const float *dzq, const float *z, const float *zq,
                                                 size_t n, float beta, float scale) {
    if (!n) return 0;
    float g = (float)(2.0 * (double)scale * (double)beta / (double)n);
    return ops_for(n, CbCommitGrad{dz, dzq, z, zq, g}, "codebook_commitment_backward_cuda");
}
