// Shared by the CUDA layer ops (groupnorm, batchnorm, activation,
// elementwise, linear, spade, conv3d): launch configuration, error checks
// after launches (no synchronisation: the ops queue on the default stream
// and errors of a kernel's execution surface at the next synchronising
// call), block sums in double, and the process-wide cuBLAS/cuDNN handles
// (kernels/cuda/handles.cu).
#pragma once
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <cudnn.h>

extern "C" {
#include "err.h"
}

#define OPS_THREADS 256

// Blocks for a grid-stride loop over n values: enough to fill the GPU,
// capped so that each thread does a few values (the loop covers the rest).
static inline int ops_blocks(size_t n) {
    size_t b = (n + OPS_THREADS - 1) / OPS_THREADS;
    return b < 1 ? 1 : b > 8192 ? 8192 : (int)b;
}

// 0 if the last launch was accepted, else -1 naming the op and the error.
static inline int ops_check(const char *what) {
    cudaError_t e = cudaGetLastError();
    return e == cudaSuccess ? 0 : lsdm_err("%s: %s", what, cudaGetErrorString(e));
}

// f(i) for every i < n, grid-stride.
template <typename Fn>
__global__ void ops_each(size_t n, Fn fn) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        fn(i);
}

template <typename Fn>
static int ops_for(size_t n, Fn fn, const char *what) {
    if (!n) return 0;
    ops_each<<<ops_blocks(n), OPS_THREADS>>>(n, fn);
    return ops_check(what);
}

// Sum of v over the block (blockDim.x a multiple of 32, at most 1024); the
// result is valid in every thread. `sh` holds 32 doubles. Starts and ends
// with __syncthreads so it can be called repeatedly on the same sh.
__device__ inline double ops_block_sum(double v, double *sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : 0.0;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Lazily created handles, one per process (kernels/cuda/handles.cu); they
// work on the default stream. 0, or -1 with lsdm_err.
int lsdm_cublas_handle(cublasHandle_t *h);
int lsdm_cudnn_handle(cudnnHandle_t *h);
// 1 when LSDM_TF32=1 is set in the environment: GEMMs and convolutions may
// then use TF32 tensor cores (10-bit mantissa inputs); default off (fp32).
int lsdm_cuda_tf32(void);
