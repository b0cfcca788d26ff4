/* Ops for the LPIPS perceptual loss (lpips.h) on top of nn.h: the kernels
 * (float, and double as NAME_f64 from the same text, nn_extra_impl.h) and
 * their tape-recording nn ops. Kept out of nn.h/nn_ops.c so that those
 * stay the VQ-GAN's core; the same conventions hold: tensors (N,C,S),
 * S = D*H*W, W fastest; every backward ACCUMULATES (+=) into its gradient
 * buffers (callers zero them), and a NULL gradient is not computed. */
#ifndef LSDM_NN_EXTRA_H
#define LSDM_NN_EXTRA_H

#include "nn.h"

/* out (N,C,S) = (x[n, Cin == 1 ? 0 : c] - shift[c]) / scale[c]: a
 * per-channel affine map whose 1-channel input broadcasts to C channels
 * (LPIPS's ScalingLayer on a grey image). x (N,Cin,S), Cin 1 or C;
 * shift, scale (C). Backward: dx (N,Cin,S) += sum over the broadcast. */
void chan_affine_forward(float *out, const float *x, const float *shift, const float *scale,
                         int N, int Cin, int C, long S);
void chan_affine_backward(float *dx, const float *dout, const float *scale, int N, int Cin,
                          int C, long S);

/* out[n] += 1/S sum_s sum_c w[c] (x^_c - y^_c)^2, with v^ = v / (|v| + eps)
 * and |v| = sqrt(sum_c v_c^2) at each position (LPIPS's normalize_tensor,
 * squared difference, NetLinLayer 1x1 conv to 1 channel, spatial mean).
 * x, y (N,C,S), w (C), out (N). Backward from dout (N) into dx and dy
 * (either may be NULL). No workspace: the norms are recomputed. */
void unit_sqdist_forward(float *out, const float *x, const float *y, const float *w, int N,
                         int C, long S, double eps);
void unit_sqdist_backward(float *dx, float *dy, const float *dout, const float *x,
                          const float *y, const float *w, int N, int C, long S, double eps);

void chan_affine_forward_f64(double *out, const double *x, const double *shift,
                             const double *scale, int N, int Cin, int C, long S);
void chan_affine_backward_f64(double *dx, const double *dout, const double *scale, int N,
                              int Cin, int C, long S);
void unit_sqdist_forward_f64(double *out, const double *x, const double *y, const double *w,
                             int N, int C, long S, double eps);
void unit_sqdist_backward_f64(double *dx, double *dy, const double *dout, const double *x,
                              const double *y, const double *w, int N, int C, long S,
                              double eps);

/* ---- nn ops (record their backward when the ctx records) ---- */

/* Max pooling with kernel = stride = k (d,h,w), floor mode (VGG's
 * MaxPool2d(2, 2) is k = {1,2,2} on D = 1 volumes). */
nn_tensor *nn_maxpool(nn_ctx *c, nn_tensor *x, const int k[3]);
/* chan_affine to C channels; shift and scale (C) must outlive the step. */
nn_tensor *nn_chan_affine(nn_ctx *c, nn_tensor *x, const float *shift, const float *scale, int C);
/* acc (N,1,1,1,1) += unit_sqdist(x, y, w): x and y of one shape; w (x->C)
 * must outlive the step. Gradients flow into x and y where they need them
 * (acc then needs one). Returns 0, or -1 (c->failed) on a shape mismatch. */
int nn_unit_sqdist(nn_ctx *c, nn_tensor *acc, nn_tensor *x, nn_tensor *y, const float *w,
                   double eps);

#endif
