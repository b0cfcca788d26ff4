// Linear layer on CUDA: cuBLAS sgemm on row-major tensors by the usual
// transpose trick (a row-major (r,c) matrix is a column-major (c,r) one),
// as llm.c does. Full fp32 by default; LSDM_TF32=1 allows TF32 tensor
// cores (see kernels/cuda/handles.cu). Checked by tests/c/test_cuda_ops.c.
#ifndef LSDM_CUDA
#define LSDM_CUDA 1 /* NVFLAGS do not carry CPPFLAGS: see the _cuda declarations */
#endif
#include "ops_common.cuh"
extern "C" {
#include "linear.h"
}

struct LinBias {
    float *out; const float *bias; int OC;
    __device__ void operator()(size_t i) const { out[i] += bias[i % (size_t)OC]; }
};

// dbias[o] += sum over b of dout[b, o]: block (32, LIN_ROWS) covers 32
// columns; threads of one column stride over the rows, then a fixed-order
// sum of their partials (no atomics, deterministic).
#define LIN_ROWS 16
__global__ void lin_dbias_kernel(float *dbias, const float *dout, int B, int OC) {
    __shared__ double part[LIN_ROWS][32];
    int o = blockIdx.x * 32 + threadIdx.x;
    double s = 0;
    if (o < OC)
        for (int b = threadIdx.y; b < B; b += LIN_ROWS) s += dout[(size_t)b * OC + o];
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && o < OC) {
        double t = 0;
        for (int r = 0; r < LIN_ROWS; r++) t += part[r][threadIdx.x];
        dbias[o] += (float)t;
    }
}

static int lin_status(cublasStatus_t s, const char *what) {
    return s == CUBLAS_STATUS_SUCCESS ? 0 : lsdm_err("%s: cublasSgemm: %s", what, cublasGetStatusString(s));
}

static int lin_sizes(int B, int IC, int OC, const char *what) {
    return B >= 1 && IC >= 1 && OC >= 1 ? 0 : lsdm_err("%s: bad sizes B %d IC %d OC %d", what, B, IC, OC);
}

extern "C" int linear_forward_cuda(float *out, const float *inp, const float *weight, const float *bias,
                                   int B, int IC, int OC) {
    const char *what = "linear_forward_cuda";
    cublasHandle_t h;
    if (lin_sizes(B, IC, OC, what) < 0 || lsdm_cublas_handle(&h) < 0) return -1;
    const float one = 1.0f, zero = 0.0f;
    // out^T (OC,B) = weight (OC,IC) . inp^T (IC,B), column-major
    if (lin_status(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, OC, B, IC, &one, weight, IC, inp, IC, &zero,
                               out, OC), what) < 0)
        return -1;
    if (!bias) return 0;
    return ops_for((size_t)B * OC, LinBias{out, bias, OC}, what);
}

extern "C" int linear_backward_cuda(float *dinp, float *dweight, float *dbias, const float *dout,
                                    const float *inp, const float *weight, int B, int IC, int OC) {
    const char *what = "linear_backward_cuda";
    cublasHandle_t h;
    if (lin_sizes(B, IC, OC, what) < 0 || lsdm_cublas_handle(&h) < 0) return -1;
    const float one = 1.0f;
    // dinp^T (IC,B) += weight^T (IC,OC) . dout^T (OC,B)
    if (dinp && lin_status(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, IC, B, OC, &one, weight, IC, dout, OC,
                                       &one, dinp, IC), what) < 0)
        return -1;
    // dweight^T (IC,OC) += inp^T (IC,B) . dout (B,OC)
    if (dweight && lin_status(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, IC, OC, B, &one, inp, IC, dout, OC,
                                          &one, dweight, IC), what) < 0)
        return -1;
    if (!dbias) return 0;
    lin_dbias_kernel<<<(OC + 31) / 32, dim3(32, LIN_ROWS)>>>(dbias, dout, B, OC);
    return ops_check(what);
}
