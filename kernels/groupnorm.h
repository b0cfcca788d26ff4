/* GroupNorm over (N,C,S) tensors, S = D*H*W: each (n, group of C/G
 * channels) is normalised to zero mean and unit variance (biased, as in
 * PyTorch), then scaled and shifted per channel:
 *   out[n,c,s] = (inp[n,c,s] - mean[n,g]) * rstd[n,g] * weight[c] + bias[c]
 * with rstd = 1/sqrt(var + eps). weight and bias may be NULL (no affine).
 *
 * Backward ACCUMULATES (+=) into dinp, dweight and dbias; callers zero them.
 * Any of the three may be NULL when that gradient is not wanted.
 * Preconditions (see groupnorm_check): N,C,S,G >= 1 and G divides C.
 * Every function also exists in double precision with the suffix _f64
 * (same source text), the reference for finite-difference tests. */
#ifndef LSDM_KERNELS_GROUPNORM_H
#define LSDM_KERNELS_GROUPNORM_H

/* 0 if the sizes are usable, else -1 with lsdm_err set. */
int groupnorm_check(int N, int C, int S, int G);

void groupnorm_forward(float *out,          // (N,C,S)
                       float *mean,         // (N,G) saved for backward (may be NULL)
                       float *rstd,         // (N,G) saved for backward (may be NULL)
                       const float *inp,    // (N,C,S)
                       const float *weight, // (C) or NULL
                       const float *bias,   // (C) or NULL
                       int N, int C, int S, int G, float eps);
/* silu(groupnorm_forward(...)) in one sweep (inference: the SiLU that
 * follows every GroupNorm of the VQ-GAN); same arguments. */
void groupnorm_silu_forward(float *out, float *mean, float *rstd, const float *inp,
                            const float *weight, const float *bias,
                            int N, int C, int S, int G, float eps);
void groupnorm_backward(float *dinp,          // (N,C,S) +=
                        float *dweight,       // (C) += (or NULL)
                        float *dbias,         // (C) += (or NULL)
                        const float *dout,    // (N,C,S)
                        const float *inp,     // (N,C,S)
                        const float *weight,  // (C) or NULL
                        const float *mean,    // (N,G) from the forward
                        const float *rstd,    // (N,G) from the forward
                        int N, int C, int S, int G);

void groupnorm_forward_f64(double *out, double *mean, double *rstd, const double *inp,
                           const double *weight, const double *bias,
                           int N, int C, int S, int G, double eps);
void groupnorm_silu_forward_f64(double *out, double *mean, double *rstd, const double *inp,
                                const double *weight, const double *bias,
                                int N, int C, int S, int G, double eps);
void groupnorm_backward_f64(double *dinp, double *dweight, double *dbias, const double *dout,
                            const double *inp, const double *weight, const double *mean,
                            const double *rstd, int N, int C, int S, int G);

#ifdef LSDM_CUDA
/* CUDA versions (kernels/cuda/groupnorm.cu): same arguments, device
 * pointers, queued on the default stream. They return 0, or -1 with
 * lsdm_err (bad sizes or a CUDA error) where the CPU ones return void.
 * Backward ACCUMULATES like the CPU, deterministically (no atomics). */
int groupnorm_forward_cuda(float *out, float *mean, float *rstd, const float *inp,
                           const float *weight, const float *bias,
                           int N, int C, int S, int G, float eps);
int groupnorm_backward_cuda(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, const float *mean,
                            const float *rstd, int N, int C, int S, int G);
#endif

#endif
