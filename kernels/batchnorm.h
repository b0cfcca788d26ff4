/* BatchNorm in inference mode over (N,C,S): fixed running statistics,
 *   out[n,c,s] = (inp[n,c,s] - rmean[c]) / sqrt(rvar[c] + eps) * weight[c] + bias[c]
 * (PyTorch F.batch_norm(training=False)). weight/bias may be NULL.
 * Backward gives the gradients w.r.t. the input and the affine parameters
 * (the running statistics are constants). It ACCUMULATES (+=) into dinp,
 * dweight and dbias; each may be NULL. _f64: the double-precision twin. */
#ifndef LSDM_KERNELS_BATCHNORM_H
#define LSDM_KERNELS_BATCHNORM_H

void batchnorm_forward(float *out,          // (N,C,S)
                       const float *inp,    // (N,C,S)
                       const float *weight, // (C) or NULL
                       const float *bias,   // (C) or NULL
                       const float *rmean,  // (C) running mean
                       const float *rvar,   // (C) running variance
                       int N, int C, int S, float eps);
void batchnorm_backward(float *dinp,         // (N,C,S) +=
                        float *dweight,      // (C) += (or NULL)
                        float *dbias,        // (C) += (or NULL)
                        const float *dout,   // (N,C,S)
                        const float *inp,    // (N,C,S)
                        const float *weight, // (C) or NULL
                        const float *rmean,  // (C)
                        const float *rvar,   // (C)
                        int N, int C, int S, float eps);

void batchnorm_forward_f64(double *out, const double *inp, const double *weight,
                           const double *bias, const double *rmean, const double *rvar,
                           int N, int C, int S, double eps);
void batchnorm_backward_f64(double *dinp, double *dweight, double *dbias, const double *dout,
                            const double *inp, const double *weight, const double *rmean,
                            const double *rvar, int N, int C, int S, double eps);

#ifdef LSDM_CUDA
/* CUDA versions (kernels/cuda/batchnorm.cu): device pointers; return 0,
 * or -1 with lsdm_err. Backward ACCUMULATES like the CPU (no atomics). */
int batchnorm_forward_cuda(float *out, const float *inp, const float *weight, const float *bias,
                           const float *rmean, const float *rvar, int N, int C, int S, float eps);
int batchnorm_backward_cuda(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, const float *rmean,
                            const float *rvar, int N, int C, int S, float eps);
#endif

#endif
