// Device memory for the CUDA backend: plain cudaMalloc (never managed
// memory), errors turned into lsdm_err messages.
#include <cuda_runtime.h>

extern "C" {
#include "devmem.h"
#include "err.h"
}

extern "C" void *lsdm_cuda_alloc(size_t bytes) {
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 256);
    if (e != cudaSuccess) {
        lsdm_err("cudaMalloc of %zu bytes: %s", bytes, cudaGetErrorString(e));
        return NULL;
    }
    return p;
}

extern "C" void lsdm_cuda_free(void *p) {
    if (p) cudaFree(p);
}

extern "C" int lsdm_cuda_copy(void *dst, const void *src, size_t bytes, int to_device) {
    cudaError_t e = cudaMemcpy(dst, src, bytes, to_device ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost);
    return e == cudaSuccess ? 0 : lsdm_err("cudaMemcpy: %s", cudaGetErrorString(e));
}

extern "C" int lsdm_cuda_zero(void *p, size_t bytes) {
    cudaError_t e = cudaMemset(p, 0, bytes);
    return e == cudaSuccess ? 0 : lsdm_err("cudaMemset: %s", cudaGetErrorString(e));
}
