/* InstanceNorm over (N,C,S): GroupNorm with one group per channel (G = C),
 * so it is implemented by groupnorm.c; mean and rstd are (N,C).
 * weight/bias (C) may be NULL (PyTorch's default affine=False).
 * Backward ACCUMULATES (+=) into dinp, dweight, dbias (each may be NULL).
 * No running statistics: this is the normalisation of every call. */
#ifndef LSDM_KERNELS_INSTANCENORM_H
#define LSDM_KERNELS_INSTANCENORM_H

void instancenorm_forward(float *out,          // (N,C,S)
                          float *mean,         // (N,C) (may be NULL)
                          float *rstd,         // (N,C) (may be NULL)
                          const float *inp,    // (N,C,S)
                          const float *weight, // (C) or NULL
                          const float *bias,   // (C) or NULL
                          int N, int C, int S, float eps);
void instancenorm_backward(float *dinp,         // (N,C,S) +=
                           float *dweight,      // (C) += (or NULL)
                           float *dbias,        // (C) += (or NULL)
                           const float *dout,   // (N,C,S)
                           const float *inp,    // (N,C,S)
                           const float *weight, // (C) or NULL
                           const float *mean,   // (N,C)
                           const float *rstd,   // (N,C)
                           int N, int C, int S);

void instancenorm_forward_f64(double *out, double *mean, double *rstd, const double *inp,
                              const double *weight, const double *bias,
                              int N, int C, int S, double eps);
void instancenorm_backward_f64(double *dinp, double *dweight, double *dbias,
                               const double *dout, const double *inp, const double *weight,
                               const double *mean, const double *rstd, int N, int C, int S);

#ifdef LSDM_CUDA
/* CUDA versions (kernels/cuda/groupnorm.cu, G = C): device pointers;
 * return 0, or -1 with lsdm_err. Backward ACCUMULATES like the CPU. */
int instancenorm_forward_cuda(float *out, float *mean, float *rstd, const float *inp,
                              const float *weight, const float *bias, int N, int C, int S,
                              float eps);
int instancenorm_backward_cuda(float *dinp, float *dweight, float *dbias, const float *dout,
                               const float *inp, const float *weight, const float *mean,
                               const float *rstd, int N, int C, int S);
#endif

#endif
