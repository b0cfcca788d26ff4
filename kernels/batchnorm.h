/* BatchNorm over (N,C,S) tensors, S = D*H*W (BatchNorm1d/2d/3d alike).
 *
 * Inference mode (batchnorm_forward/backward): fixed running statistics,
 *   out[n,c,s] = (inp[n,c,s] - rmean[c]) / sqrt(rvar[c] + eps) * weight[c] + bias[c]
 * (PyTorch F.batch_norm(training=False)); the statistics are constants.
 *
 * Training mode (batchnorm_train_*, PyTorch F.batch_norm(training=True)):
 * each channel is normalised with the mean and the biased variance of its
 * M = N*S values, rstd = 1/sqrt(var + eps), and the running statistics,
 * when given, are updated as PyTorch does:
 *   rmean = (1 - momentum) * rmean + momentum * mean
 *   rvar  = (1 - momentum) * rvar  + momentum * var * M / (M - 1)
 * (unbiased for the running variance; PyTorch's momentum is 0.1). mean and
 * rstd are saved for the backward, which is the full gradient through the
 * batch statistics. Precondition M >= 2 (PyTorch refuses one value per
 * channel in training): see batchnorm_check.
 *
 * weight/bias may be NULL (no affine). Backwards ACCUMULATE (+=) into dinp,
 * dweight and dbias (callers zero them); each may be NULL.
 * _f64: the double-precision twins (same source text). */
#ifndef LSDM_KERNELS_BATCHNORM_H
#define LSDM_KERNELS_BATCHNORM_H

/* 0 if the sizes are usable (training: N*S >= 2 too), else -1 with lsdm_err. */
int batchnorm_check(int N, int C, int S, int training);

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

void batchnorm_train_forward(float *out,          // (N,C,S)
                             float *mean,         // (C) batch mean, saved (may be NULL)
                             float *rstd,         // (C) batch 1/sqrt(var+eps), saved (may be NULL)
                             float *rmean,        // (C) running mean, updated (or NULL)
                             float *rvar,         // (C) running variance, updated (or NULL)
                             const float *inp,    // (N,C,S)
                             const float *weight, // (C) or NULL
                             const float *bias,   // (C) or NULL
                             int N, int C, int S, float eps, float momentum);
void batchnorm_train_backward(float *dinp,         // (N,C,S) +=
                              float *dweight,      // (C) += (or NULL)
                              float *dbias,        // (C) += (or NULL)
                              const float *dout,   // (N,C,S)
                              const float *inp,    // (N,C,S)
                              const float *weight, // (C) or NULL
                              const float *mean,   // (C) from the forward
                              const float *rstd,   // (C) from the forward
                              int N, int C, int S);

void batchnorm_train_forward_f64(double *out, double *mean, double *rstd, double *rmean,
                                 double *rvar, const double *inp, const double *weight,
                                 const double *bias, int N, int C, int S, double eps,
                                 double momentum);
void batchnorm_train_backward_f64(double *dinp, double *dweight, double *dbias,
                                  const double *dout, const double *inp, const double *weight,
                                  const double *mean, const double *rstd, int N, int C, int S);

#ifdef LSDM_CUDA
/* CUDA versions (kernels/cuda/batchnorm.cu): device pointers; return 0,
 * or -1 with lsdm_err. Backward ACCUMULATES like the CPU (no atomics). */
int batchnorm_forward_cuda(float *out, const float *inp, const float *weight, const float *bias,
                           const float *rmean, const float *rvar, int N, int C, int S, float eps);
int batchnorm_backward_cuda(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, const float *rmean,
                            const float *rvar, int N, int C, int S, float eps);
/* Training mode: one block per channel (statistics, running update and
 * output; then sums and dinp), deterministic, no atomics. */
int batchnorm_train_forward_cuda(float *out, float *mean, float *rstd, float *rmean, float *rvar,
                                 const float *inp, const float *weight, const float *bias,
                                 int N, int C, int S, float eps, float momentum);
int batchnorm_train_backward_cuda(float *dinp, float *dweight, float *dbias, const float *dout,
                                  const float *inp, const float *weight, const float *mean,
                                  const float *rstd, int N, int C, int S);
#endif

#endif
