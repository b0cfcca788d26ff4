// Shared by the loss and optimiser kernels: a double sum over a grid-stride
// loop (block reduce in shared memory, one atomicAdd per block) and launch
// error checks.
#pragma once
#include <cuda_runtime.h>

#define LOSS_CUDA_THREADS 256

static inline int loss_cuda_blocks(size_t n) {
    size_t b = (n + LOSS_CUDA_THREADS - 1) / LOSS_CUDA_THREADS;
    return b < 1 ? 1 : b > 4096 ? 4096 : (int)b;
}

// out[0] += sum over i < n of term(i).
template <typename Term>
__global__ void loss_cuda_sum(double *out, size_t n, Term term) {
    __shared__ double part[LOSS_CUDA_THREADS];
    double s = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        s += term(i);
    part[threadIdx.x] = s;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if ((int)threadIdx.x < k) part[threadIdx.x] += part[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0) atomicAdd(out, part[0]);
}

// f(i) for every i < n.
template <typename Fn>
__global__ void loss_cuda_each(size_t n, Fn fn) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        fn(i);
}

static inline int loss_cuda_check(const char *what) {
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaDeviceSynchronize();
    return e == cudaSuccess ? 0 : lsdm_err("%s: %s", what, cudaGetErrorString(e));
}

// *host = sum over i < n of term(i), accumulated in dwork[0].
template <typename Term>
static int loss_cuda_total(double *host, double *dwork, size_t n, Term term, const char *what) {
    if (cudaMemset(dwork, 0, sizeof(double)) != cudaSuccess) return lsdm_err("%s: cudaMemset failed", what);
    if (n) loss_cuda_sum<<<loss_cuda_blocks(n), LOSS_CUDA_THREADS>>>(dwork, n, term);
    if (loss_cuda_check(what) < 0) return -1;
    cudaError_t e = cudaMemcpy(host, dwork, sizeof(double), cudaMemcpyDeviceToHost);
    return e == cudaSuccess ? 0 : lsdm_err("%s: %s", what, cudaGetErrorString(e));
}

template <typename Fn>
static int loss_cuda_for(size_t n, Fn fn, const char *what) {
    if (n) loss_cuda_each<<<loss_cuda_blocks(n), LOSS_CUDA_THREADS>>>(n, fn);
    return loss_cuda_check(what);
}
