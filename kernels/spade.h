/* SPADE modulation (Park et al. 2019), element-wise over equal shapes:
 *   out = x * (1 + gamma) + beta,   x, gamma, beta, out all (n) = (N,C,S)
 * gamma and beta come from convolutions of the mask; the normalisation
 * before (GroupNorm without affine) is a separate op. Backward
 * ACCUMULATES (+=) into dx, dgamma, dbeta (each may be NULL):
 *   dx += dout (1 + gamma), dgamma += dout x, dbeta += dout.
 * out may alias x (in place) only if the backward is not needed, since the
 * backward reads x. _f64: the double-precision twin. */
#ifndef LSDM_KERNELS_SPADE_H
#define LSDM_KERNELS_SPADE_H

#include <stddef.h>

void spade_forward(float *out,         // (n)
                   const float *x,     // (n)
                   const float *gamma, // (n)
                   const float *beta,  // (n)
                   size_t n);
void spade_backward(float *dx,         // (n) +=
                    float *dgamma,     // (n) +=
                    float *dbeta,      // (n) +=
                    const float *dout, // (n)
                    const float *x,    // (n)
                    const float *gamma,// (n)
                    size_t n);

void spade_forward_f64(double *out, const double *x, const double *gamma, const double *beta,
                       size_t n);
void spade_backward_f64(double *dx, double *dgamma, double *dbeta, const double *dout,
                        const double *x, const double *gamma, size_t n);

#ifdef LSDM_CUDA
/* CUDA versions (kernels/cuda/spade.cu): device pointers; return 0, or -1
 * with lsdm_err. Backward ACCUMULATES like the CPU. */
int spade_forward_cuda(float *out, const float *x, const float *gamma, const float *beta, size_t n);
int spade_backward_cuda(float *dx, float *dgamma, float *dbeta, const float *dout, const float *x,
                        const float *gamma, size_t n);
#endif

#endif
