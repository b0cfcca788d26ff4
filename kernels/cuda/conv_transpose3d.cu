// Transposed 3D convolution on CUDA, the semantics of
// kernels/conv_transpose3d.h, checked against the CPU by
// tests/c/test_cuda_ops2.c. As on the CPU, everything goes through d->adj,
// the conv3d from the output grid (Cout channels) to the input grid (Cin
// channels), run by kernels/cuda/conv3d.cu (cuDNN, its algorithm plans and
// workspace); only the bias lives here:
//   forward          out = bias; out += adj's data gradient of inp
//   data gradient    dinp += adj's forward of dout (beta = 1)
//   weight gradient  dweight += adj's weight gradient, inp in the place of
//                    its output gradient, dout in the place of its input
//   bias gradient    dbias[co] += sum over n and voxels of dout
// adj has zero padding, so conv3d.cu needs no padded copy: `work` is
// cuDNN's workspace only.
#ifndef LSDM_CUDA
#define LSDM_CUDA 1 /* NVFLAGS do not carry CPPFLAGS: see the _cuda declarations */
#endif
#include "ops_common.cuh"
extern "C" {
#include "conv_transpose3d.h"
}

// out (N, Cout, S) = bias[co], or 0.
struct ConvtFill {
    float *out; const float *bias; int Cout; size_t S;
    __device__ void operator()(size_t i) const { out[i] = bias ? bias[(i / S) % (size_t)Cout] : 0.0f; }
};

// dbias[co] += sum over n and the S voxels of dout: block per channel,
// fixed-order double sums (deterministic, no atomics).
__global__ void convt_dbias_kernel(float *dbias, const float *dout, int N, int Cout, size_t S) {
    __shared__ double sh[32];
    int co = blockIdx.x;
    double s = 0;
    for (int n = 0; n < N; n++) {
        const float *g = dout + ((size_t)n * Cout + co) * S;
        for (size_t i = threadIdx.x; i < S; i += blockDim.x) s += g[i];
    }
    s = ops_block_sum(s, sh);
    if (threadIdx.x == 0) dbias[co] += (float)s;
}

static int convt_ready(const conv_transpose3d_dims *d, const char *what) {
    const conv3d_dims *a = &d->adj;
    if (d->N < 1 || d->Cout < 1 || d->OD < 1 || d->OH < 1 || d->OW < 1 || a->OD != d->D ||
        a->Cin != d->Cout || a->Cout != d->Cin)
        return lsdm_err("%s: dims not initialised (call conv_transpose3d_dims_init)", what);
    return 0;
}

extern "C" int conv_transpose3d_workspace_size_cuda(size_t *floats, const conv_transpose3d_dims *d) {
    if (convt_ready(d, "conv_transpose3d_workspace_size_cuda") < 0) return -1;
    return conv3d_workspace_size_cuda(floats, &d->adj);
}

extern "C" int conv_transpose3d_forward_cuda(float *out, float *work, const float *inp, const float *weight,
                                             const float *bias, const conv_transpose3d_dims *d) {
    const char *what = "conv_transpose3d_forward_cuda";
    if (convt_ready(d, what) < 0) return -1;
    size_t S = (size_t)d->OD * d->OH * d->OW;
    if (ops_for((size_t)d->N * d->Cout * S, ConvtFill{out, bias, d->Cout, S}, what) < 0) return -1;
    // adj's data gradient accumulates (beta = 1) onto the bias
    if (conv3d_backward_cuda(out, NULL, NULL, work, inp, NULL, weight, &d->adj) < 0)
        return lsdm_err_ctx(what);
    return 0;
}

extern "C" int conv_transpose3d_backward_cuda(float *dinp, float *dweight, float *dbias, float *work,
                                              const float *dout, const float *inp, const float *weight,
                                              const conv_transpose3d_dims *d) {
    const char *what = "conv_transpose3d_backward_cuda";
    if (convt_ready(d, what) < 0) return -1;
    if (dinp && conv3d_forward_beta_cuda(dinp, work, dout, weight, NULL, &d->adj, 1.0f) < 0)
        return lsdm_err_ctx(what);
    if (dweight && conv3d_backward_cuda(NULL, dweight, NULL, work, inp, dout, NULL, &d->adj) < 0)
        return lsdm_err_ctx(what);
    if (!dbias) return 0;
    size_t S = (size_t)d->OD * d->OH * d->OW;
    convt_dbias_kernel<<<d->Cout, OPS_THREADS>>>(dbias, dout, d->N, d->Cout, S);
    return ops_check(what);
}
