/* Memory on a device: host memory for the CPU, cudaMalloc'd memory for
 * CUDA. Copies between host and device. The CPU side is plain C; the CUDA
 * side lives in kernels/cuda/devmem.cu and exists only with LSDM_CUDA. */
#ifndef LSDM_DEVMEM_H
#define LSDM_DEVMEM_H

#include <stddef.h>

#include "device.h"

void *lsdm_devmem_alloc(lsdm_device dev, size_t bytes); /* NULL + lsdm_err */
void lsdm_devmem_free(lsdm_device dev, void *p);
int lsdm_devmem_to_device(lsdm_device dev, void *dst, const void *host_src, size_t bytes);
int lsdm_devmem_to_host(lsdm_device dev, void *host_dst, const void *src, size_t bytes);
int lsdm_devmem_zero(lsdm_device dev, void *p, size_t bytes);

#ifdef LSDM_CUDA
void *lsdm_cuda_alloc(size_t bytes);
void lsdm_cuda_free(void *p);
int lsdm_cuda_copy(void *dst, const void *src, size_t bytes, int to_device);
int lsdm_cuda_zero(void *p, size_t bytes);
#endif

#endif
