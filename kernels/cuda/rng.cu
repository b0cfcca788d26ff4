// Philox samples on the GPU: the same (seed, stream, index) -> the same
// bits as libshared/rng.c, since both compile kernels/rng_impl.h (this file
// with -fmad=false, see the Makefile).
#include <cuda_runtime.h>

extern "C" {
#include "err.h"
#include "rng.h"
}
#include "rng_impl.h"

__global__ static void rng_fill_kernel(float *dst, size_t n, uint64_t seed, uint64_t stream, uint64_t offset, int normal) {
    size_t j = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= n) return;
    uint64_t k = offset + j;
    dst[j] = normal ? rng_normal_at(seed, stream, k) : rng_uniform_at(seed, stream, k);
}

static int rng_fill_cuda(float *dst, size_t n, uint64_t seed, uint64_t stream, uint64_t offset, int normal) {
    if (n == 0) return 0;
    const int threads = 256;
    size_t blocks = (n + threads - 1) / threads;
    if (blocks > 0x7fffffffu) return lsdm_err("rng: %zu samples is too many for one launch", n);
    rng_fill_kernel<<<(unsigned)blocks, threads>>>(dst, n, seed, stream, offset, normal);
    cudaError_t e = cudaGetLastError();
    return e == cudaSuccess ? 0 : lsdm_err("rng kernel: %s", cudaGetErrorString(e));
}

extern "C" int lsdm_rng_fill_uniform_cuda(float *dst, size_t n, uint64_t seed, uint64_t stream, uint64_t offset) {
    return rng_fill_cuda(dst, n, seed, stream, offset, 0);
}

extern "C" int lsdm_rng_fill_normal_cuda(float *dst, size_t n, uint64_t seed, uint64_t stream, uint64_t offset) {
    return rng_fill_cuda(dst, n, seed, stream, offset, 1);
}
