// cuBLAS and cuDNN handles, created lazily once per process under a mutex
// (ops may be called from several host threads) and destroyed at exit.
// Both run on the default stream, like every lsdm kernel, so work stays in
// issue order without extra synchronisation.
#ifndef LSDM_CUDA
#define LSDM_CUDA 1 /* NVFLAGS do not carry CPPFLAGS: see the _cuda declarations */
#endif
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ops_common.cuh"
extern "C" {
#include "cuda_handles.h"
}

static pthread_mutex_t handles_lock = PTHREAD_MUTEX_INITIALIZER;
static cublasHandle_t handles_cublas;
static cudnnHandle_t handles_cudnn;
static int handles_atexit_done;

extern "C" void lsdm_cuda_handles_free(void) {
    pthread_mutex_lock(&handles_lock);
    // errors are ignored: at exit the driver may already be shutting down
    if (handles_cublas) cublasDestroy(handles_cublas);
    if (handles_cudnn) cudnnDestroy(handles_cudnn);
    handles_cublas = NULL;
    handles_cudnn = NULL;
    pthread_mutex_unlock(&handles_lock);
}

// Caller holds the lock.
static void handles_register_atexit(void) {
    if (!handles_atexit_done && atexit(lsdm_cuda_handles_free) == 0) handles_atexit_done = 1;
}

int lsdm_cuda_tf32(void) {
    const char *s = getenv("LSDM_TF32");
    return s && strcmp(s, "1") == 0;
}

int lsdm_cublas_handle(cublasHandle_t *h) {
    int rc = 0;
    pthread_mutex_lock(&handles_lock);
    if (!handles_cublas) {
        cublasHandle_t c;
        cublasStatus_t s = cublasCreate(&c);
        if (s != CUBLAS_STATUS_SUCCESS) {
            rc = lsdm_err("cublasCreate: %s", cublasGetStatusString(s));
        } else {
            // Full fp32 unless asked: the CPU reference and the tests assume it.
            cublasMath_t m = lsdm_cuda_tf32() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH;
            s = cublasSetMathMode(c, m);
            if (s != CUBLAS_STATUS_SUCCESS) {
                cublasDestroy(c);
                rc = lsdm_err("cublasSetMathMode: %s", cublasGetStatusString(s));
            } else {
                handles_cublas = c;
                handles_register_atexit();
            }
        }
    }
    *h = handles_cublas;
    pthread_mutex_unlock(&handles_lock);
    return rc;
}

int lsdm_cudnn_handle(cudnnHandle_t *h) {
    int rc = 0;
    pthread_mutex_lock(&handles_lock);
    if (!handles_cudnn) {
        cudnnHandle_t c;
        cudnnStatus_t s = cudnnCreate(&c);
        if (s != CUDNN_STATUS_SUCCESS) {
            rc = lsdm_err("cudnnCreate: %s", cudnnGetErrorString(s));
        } else {
            handles_cudnn = c;
            handles_register_atexit();
        }
    }
    *h = handles_cudnn;
    pthread_mutex_unlock(&handles_lock);
    return rc;
}
