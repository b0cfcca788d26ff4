/* 3D max and average pooling of (NC, D, H, W) volumes, as
 * torch.nn.functional.max_pool3d / avg_pool3d (dilation 1, floor mode,
 * no divisor override). Max pooling pads with -inf and keeps the first
 * maximum of a window (a NaN wins, the last one, like PyTorch); it saves the argmax as
 * the index d*H*W + h*W + w inside the input volume (PyTorch's indices).
 * Average pooling divides by the window size clipped to the padded
 * volume (count_include_pad = 1, PyTorch's default) or by the number of
 * real voxels in it (count_include_pad = 0).
 * Backwards ACCUMULATE (+=) into dinp: callers zero it. */
#ifndef LSDM_POOL_H
#define LSDM_POOL_H

typedef struct {
    int NC;                      /* batch * channels */
    int in[3], k[3], s[3], p[3]; /* (d, h, w) input size, kernel, stride, padding */
    int out[3];                  /* computed: (in + 2p - k) / s + 1 */
} pool3d_dims;

/* stride NULL means stride = kernel; pad NULL means 0. Returns 0, or -1
 * with lsdm_err (padding above half the kernel, empty output, ...). */
int pool3d_dims_init(pool3d_dims *p, int NC, const int in[3], const int kernel[3],
                     const int stride[3], const int pad[3]);

/* out (NC, out...), idx (NC, out...) saved argmax; inp (NC, in...). */
void maxpool3d_forward(float *out, int *idx, const float *inp, const pool3d_dims *p);
void maxpool3d_backward(float *dinp, const float *dout, const int *idx, const pool3d_dims *p);
void avgpool3d_forward(float *out, const float *inp, const pool3d_dims *p, int count_include_pad);
void avgpool3d_backward(float *dinp, const float *dout, const pool3d_dims *p, int count_include_pad);

void maxpool3d_forward_f64(double *out, int *idx, const double *inp, const pool3d_dims *p);
void maxpool3d_backward_f64(double *dinp, const double *dout, const int *idx, const pool3d_dims *p);
void avgpool3d_forward_f64(double *out, const double *inp, const pool3d_dims *p, int count_include_pad);
void avgpool3d_backward_f64(double *dinp, const double *dout, const pool3d_dims *p, int count_include_pad);

#ifdef LSDM_CUDA
/* CUDA versions (kernels/cuda/pool.cu): device pointers (p on the host),
 * same semantics, indices and accumulation (+=) as the CPU; backwards
 * gather per input voxel (deterministic, no atomics). Return 0, or -1
 * with lsdm_err. */
int maxpool3d_forward_cuda(float *out, int *idx, const float *inp, const pool3d_dims *p);
int maxpool3d_backward_cuda(float *dinp, const float *dout, const int *idx, const pool3d_dims *p);
int avgpool3d_forward_cuda(float *out, const float *inp, const pool3d_dims *p, int count_include_pad);
int avgpool3d_backward_cuda(float *dinp, const float *dout, const pool3d_dims *p, int count_include_pad);
#endif

#endif
