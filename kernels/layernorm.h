/* LayerNorm over the channel axis of (N,C,S) tensors, S = D*H*W, as the
 * reference UNet's LayerNorm (Med-LSDM semantic_diffusion.py, in front of
 * every attention): at each position (n, s) the C values are normalised
 * to zero mean and unit biased variance and scaled per channel, no shift:
 *   out[n,c,s] = (inp[n,c,s] - mean[n,s]) * rstd[n,s] * gamma[c]
 * with rstd = 1/sqrt(var + eps) (the reference: eps 1e-5). Sums run in
 * double in both precisions.
 *
 * Backward ACCUMULATES (+=) into dinp and dgamma (callers zero them);
 * either may be NULL when not wanted. Every function also exists in
 * double precision with the suffix _f64 (same source text). */
#ifndef LSDM_KERNELS_LAYERNORM_H
#define LSDM_KERNELS_LAYERNORM_H

void chan_layernorm_forward(float *out,         // (N,C,S)
                            float *mean,        // (N,S) saved for backward (may be NULL)
                            float *rstd,        // (N,S) saved for backward (may be NULL)
                            const float *inp,   // (N,C,S)
                            const float *gamma, // (C)
                            int N, int C, long S, float eps);
void chan_layernorm_backward(float *dinp,        // (N,C,S) += (or NULL)
                             float *dgamma,      // (C) += (or NULL)
                             const float *dout,  // (N,C,S)
                             const float *inp,   // (N,C,S)
                             const float *gamma, // (C)
                             const float *mean,  // (N,S) from the forward
                             const float *rstd,  // (N,S) from the forward
                             int N, int C, long S);

void chan_layernorm_forward_f64(double *out, double *mean, double *rstd, const double *inp,
                                const double *gamma, int N, int C, long S, double eps);
void chan_layernorm_backward_f64(double *dinp, double *dgamma, const double *dout,
                                 const double *inp, const double *gamma, const double *mean,
                                 const double *rstd, int N, int C, long S);

#endif
