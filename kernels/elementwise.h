/* Element-wise ops and channel plumbing on (N,C,S) tensors, S = D*H*W.
 * Every backward ACCUMULATES (+=) into its gradient buffers (callers zero
 * them); a gradient pointer may be NULL when that gradient is not wanted.
 * Forwards may run in place (out == a or out == x) except concat/slice.
 *
 * Broadcast ops take a vector v that is either per channel, (C), when
 * per_n == 0, or per sample and channel, (N,C), when per_n != 0 (time
 * embeddings, adaptive scale/shift); it is repeated over the S values.
 * Every function also exists in double precision with the suffix _f64. */
#ifndef LSDM_KERNELS_ELEMENTWISE_H
#define LSDM_KERNELS_ELEMENTWISE_H

#include <stddef.h>

/* out = a + b, all (n). */
void add_forward(float *out, const float *a, const float *b, size_t n);
void add_backward(float *da, float *db, const float *dout, size_t n);
/* out = a * b, all (n). */
void mul_forward(float *out, const float *a, const float *b, size_t n);
void mul_backward(float *da, float *db, const float *dout, const float *a, const float *b,
                  size_t n);
/* y += alpha * x, (n). Its backward is itself: dx += alpha * dy, i.e.
 * scale_add(dx, alpha, dy, n); dy passes through unchanged. */
void scale_add(float *y, float alpha, const float *x, size_t n);

/* out = x + v, x and out (N,C,S), v (C) or (N,C). */
void add_bcast_forward(float *out, const float *x, const float *v, int N, int C, int S,
                       int per_n);
void add_bcast_backward(float *dx, float *dv, const float *dout, int N, int C, int S,
                        int per_n);
/* out = x * v. */
void mul_bcast_forward(float *out, const float *x, const float *v, int N, int C, int S,
                       int per_n);
void mul_bcast_backward(float *dx, float *dv, const float *dout, const float *x,
                        const float *v, int N, int C, int S, int per_n);
/* out = x * (1 + scale) + shift, scale and shift (C) or (N,C). */
void scale_shift_forward(float *out, const float *x, const float *scale, const float *shift,
                         int N, int C, int S, int per_n);
void scale_shift_backward(float *dx, float *dscale, float *dshift, const float *dout,
                          const float *x, const float *scale, int N, int C, int S, int per_n);

/* out (N,Ca+Cb,S) = [a (N,Ca,S), b (N,Cb,S)] along the channel axis. */
void concat_forward(float *out, const float *a, const float *b, int N, int Ca, int Cb, int S);
void concat_backward(float *da, float *db, const float *dout, int N, int Ca, int Cb, int S);
/* out (N,Cs,S) = inp (N,C,S)[:, c0:c0+Cs]; backward scatter-adds dout
 * into those channels of dinp. Needs 0 <= c0, c0 + Cs <= C. */
void slice_forward(float *out, const float *inp, int N, int C, int c0, int Cs, int S);
void slice_backward(float *dinp, const float *dout, int N, int C, int c0, int Cs, int S);

void add_forward_f64(double *out, const double *a, const double *b, size_t n);
void add_backward_f64(double *da, double *db, const double *dout, size_t n);
void mul_forward_f64(double *out, const double *a, const double *b, size_t n);
void mul_backward_f64(double *da, double *db, const double *dout, const double *a,
                      const double *b, size_t n);
void scale_add_f64(double *y, double alpha, const double *x, size_t n);
void add_bcast_forward_f64(double *out, const double *x, const double *v, int N, int C, int S,
                           int per_n);
void add_bcast_backward_f64(double *dx, double *dv, const double *dout, int N, int C, int S,
                            int per_n);
void mul_bcast_forward_f64(double *out, const double *x, const double *v, int N, int C, int S,
                           int per_n);
void mul_bcast_backward_f64(double *dx, double *dv, const double *dout, const double *x,
                            const double *v, int N, int C, int S, int per_n);
void scale_shift_forward_f64(double *out, const double *x, const double *scale,
                             const double *shift, int N, int C, int S, int per_n);
void scale_shift_backward_f64(double *dx, double *dscale, double *dshift, const double *dout,
                              const double *x, const double *scale, int N, int C, int S,
                              int per_n);
void concat_forward_f64(double *out, const double *a, const double *b, int N, int Ca, int Cb,
                        int S);
void concat_backward_f64(double *da, double *db, const double *dout, int N, int Ca, int Cb,
                         int S);
void slice_forward_f64(double *out, const double *inp, int N, int C, int c0, int Cs, int S);
void slice_backward_f64(double *dinp, const double *dout, int N, int C, int c0, int Cs, int S);

#ifdef LSDM_CUDA
/* CUDA versions (kernels/cuda/elementwise.cu): device pointers, same
 * aliasing rules; return 0, or -1 with lsdm_err. Backward ACCUMULATES;
 * the sums into broadcast vectors are deterministic (no atomics). */
int add_forward_cuda(float *out, const float *a, const float *b, size_t n);
int add_backward_cuda(float *da, float *db, const float *dout, size_t n);
int mul_forward_cuda(float *out, const float *a, const float *b, size_t n);
int mul_backward_cuda(float *da, float *db, const float *dout, const float *a, const float *b,
                      size_t n);
int scale_add_cuda(float *y, float alpha, const float *x, size_t n);
int add_bcast_forward_cuda(float *out, const float *x, const float *v, int N, int C, int S,
                           int per_n);
int add_bcast_backward_cuda(float *dx, float *dv, const float *dout, int N, int C, int S,
                            int per_n);
int mul_bcast_forward_cuda(float *out, const float *x, const float *v, int N, int C, int S,
                           int per_n);
int mul_bcast_backward_cuda(float *dx, float *dv, const float *dout, const float *x,
                            const float *v, int N, int C, int S, int per_n);
int scale_shift_forward_cuda(float *out, const float *x, const float *scale, const float *shift,
                             int N, int C, int S, int per_n);
int scale_shift_backward_cuda(float *dx, float *dscale, float *dshift, const float *dout,
                              const float *x, const float *scale, int N, int C, int S, int per_n);
int concat_forward_cuda(float *out, const float *a, const float *b, int N, int Ca, int Cb, int S);
int concat_backward_cuda(float *da, float *db, const float *dout, int N, int Ca, int Cb, int S);
int slice_forward_cuda(float *out, const float *inp, int N, int C, int c0, int Cs, int S);
int slice_backward_cuda(float *dinp, const float *dout, int N, int C, int c0, int Cs, int S);
#endif

#endif
