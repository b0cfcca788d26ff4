// CUDA device discovery; compiled only where nvcc exists.
#include <cuda_runtime.h>

extern "C" {
#include "device.h"
}

extern "C" int lsdm_cuda_device_count(const char **why) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        if (why) *why = cudaGetErrorString(e);
        cudaGetLastError(); // clear the sticky error so later calls start clean
        return 0;
    }
    if (n == 0 && why) *why = "no CUDA device";
    return n;
}
