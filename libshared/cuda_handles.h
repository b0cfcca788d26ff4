/* The process-wide cuBLAS and cuDNN handles used by the CUDA ops
 * (kernels/cuda/handles.cu). They are created on first use, on the device
 * current at that moment, and destroyed at exit or by an explicit
 * lsdm_cuda_handles_free() (after which the next op creates them again).
 * Exists only with LSDM_CUDA. */
#ifndef LSDM_CUDA_HANDLES_H
#define LSDM_CUDA_HANDLES_H

#ifdef LSDM_CUDA
void lsdm_cuda_handles_free(void);
#endif

#endif
