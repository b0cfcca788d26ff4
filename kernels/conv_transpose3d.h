/* Transposed 3D convolution (PyTorch's conv_transpose3d), groups = 1,
 * zero padding: the adjoint of conv3d in its input, plus a bias.
 *
 *   out[n,co, i*stride - pad + k*dilation] += inp[n,ci,i] * weight[ci,co,k]
 *   OD = (D-1)*sd - 2*pd + dd*(kd-1) + opd + 1   (likewise OH, OW)
 *
 * Layout: contiguous row-major, W fastest.
 *   inp    (N, Cin, D, H, W)
 *   weight (Cin, Cout, kd, kh, kw)      (PyTorch's layout)
 *   bias   (Cout) or NULL
 *   out    (N, Cout, OD, OH, OW)
 *
 * It is computed through the conv3d `adj` (Cout -> Cin channels, from the
 * OD,OH,OW grid to the D,H,W grid, same kernel, stride, padding and
 * dilation): forward is adj's data gradient (GEMM + col2vol), the data
 * gradient is adj's forward, the weight gradient adj's weight gradient.
 *
 * Backward ACCUMULATES (+=) into dinp, dweight and dbias (callers zero
 * them); any of them may be NULL. Scratch: `work` holds
 * conv_transpose3d_workspace_size(d) elements. Float and double (_f64)
 * from one source (kernels/cpu/conv_transpose3d_impl.h). */
#ifndef LSDM_CONV_TRANSPOSE3D_H
#define LSDM_CONV_TRANSPOSE3D_H

#include <stddef.h>

#include "conv3d.h"

typedef struct {
    int N, Cin, D, H, W;   /* input batch, channels, depth, height, width */
    int Cout;              /* output channels */
    int kd, kh, kw;        /* kernel */
    int sd, sh, sw;        /* stride (0 is taken as 1) */
    int pd, ph, pw;        /* padding (zero) */
    int opd, oph, opw;     /* output padding: 0 <= op < stride */
    int dd, dh, dw;        /* dilation (0 is taken as 1) */
    int slab;              /* column elements per slab, 0 = default */
    int threads;           /* OpenMP threads; 0 = omp_get_max_threads() at init */
    int OD, OH, OW;        /* output size: set by conv_transpose3d_dims_init */
    conv3d_dims adj;       /* the adjoint conv3d: set by conv_transpose3d_dims_init */
} conv_transpose3d_dims;

/* Check the sizes, default stride/dilation, compute OD, OH, OW and adj.
 * Returns 0, or -1 with lsdm_err. */
int conv_transpose3d_dims_init(conv_transpose3d_dims *d);
size_t conv_transpose3d_workspace_size(const conv_transpose3d_dims *d);
double conv_transpose3d_flops(const conv_transpose3d_dims *d);

void conv_transpose3d_forward(float *out,          // (N,Cout,OD,OH,OW)
                              float *work,         // conv_transpose3d_workspace_size(d)
                              const float *inp,    // (N,Cin,D,H,W)
                              const float *weight, // (Cin,Cout,kd,kh,kw)
                              const float *bias,   // (Cout) or NULL
                              const conv_transpose3d_dims *d);
void conv_transpose3d_backward(float *dinp,          // (N,Cin,D,H,W) or NULL, +=
                               float *dweight,       // (Cin,Cout,kd,kh,kw) or NULL, +=
                               float *dbias,         // (Cout) or NULL, +=
                               float *work,          // conv_transpose3d_workspace_size(d)
                               const float *dout,    // (N,Cout,OD,OH,OW)
                               const float *inp,     // (N,Cin,D,H,W); NULL if !dweight
                               const float *weight,  // (Cin,Cout,kd,kh,kw); NULL if !dinp
                               const conv_transpose3d_dims *d);

void conv_transpose3d_forward_f64(double *out, double *work, const double *inp,
                                  const double *weight, const double *bias,
                                  const conv_transpose3d_dims *d);
void conv_transpose3d_backward_f64(double *dinp, double *dweight, double *dbias, double *work,
                                   const double *dout, const double *inp, const double *weight,
                                   const conv_transpose3d_dims *d);

#ifdef LSDM_CUDA
/* CUDA versions (kernels/cuda/conv_transpose3d.cu): device pointers, same
 * semantics and accumulation (+=) as the CPU, through the adjoint conv3d
 * on cuDNN (kernels/cuda/conv3d.cu). `work` holds
 * conv_transpose3d_workspace_size_cuda(d) floats of device memory
 * (256-byte aligned). Return 0, or -1 with lsdm_err. */
int conv_transpose3d_workspace_size_cuda(size_t *floats, const conv_transpose3d_dims *d);
int conv_transpose3d_forward_cuda(float *out, float *work, const float *inp, const float *weight,
                                  const float *bias, const conv_transpose3d_dims *d);
int conv_transpose3d_backward_cuda(float *dinp, float *dweight, float *dbias, float *work,
                                   const float *dout, const float *inp, const float *weight,
                                   const conv_transpose3d_dims *d);
#endif

#endif
