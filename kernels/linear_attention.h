/* Linear attention as the reference SpatialLinearAttention (Med-LSDM,
 * after lucidrains): per head, over a sequence of N positions,
 *   qs = softmax over the feature axis d of q     (q.softmax(dim=-2))
 *   ks = softmax over the sequence axis n of k    (k.softmax(dim=-1))
 *   ctx[d,e] = sum_n ks[d,n] v[e,n]
 *   out[e,n] = scale * sum_d ctx[d,e] qs[d,n]     (scale = dim_head^-0.5)
 *
 * Layout: the volume layout itself, so the 1x1 convolutions around it
 * need no permutation. qkv (B, 3*H*dh, F, N) is the to_qkv output: q, k,
 * v are its channel thirds, channel = head*dh + d; F is the slice axis
 * (the reference's '(b f)' batch: F = D, N = H*W for a volume; F = 1 for
 * a plain sequence). out (B, H*dh, F, N).
 *
 * The backward ACCUMULATES (+=) into dqkv: callers zero it. The _f64
 * versions take double everywhere, from the same source. */
#ifndef LSDM_LINEAR_ATTENTION_H
#define LSDM_LINEAR_ATTENTION_H

#include <stddef.h>

/* Saved for the backward: qs, ks (B, H, dh, F, N); ctx (B, F, H, dh, dh). */
void linear_attention_forward(float *out, float *qs, float *ks, float *ctx,
                              const float *qkv, int B, int H, int dh, int F, int N, float scale);
/* work: linear_attention_workspace_size floats. */
void linear_attention_backward(float *dqkv, float *work,
                               const float *dout, const float *qkv, const float *qs,
                               const float *ks, const float *ctx,
                               int B, int H, int dh, int F, int N, float scale);
size_t linear_attention_workspace_size(int B, int H, int dh, int F, int N);

void linear_attention_forward_f64(double *out, double *qs, double *ks, double *ctx,
                                  const double *qkv, int B, int H, int dh, int F, int N, double scale);
void linear_attention_backward_f64(double *dqkv, double *work,
                                   const double *dout, const double *qkv, const double *qs,
                                   const double *ks, const double *ctx,
                                   int B, int H, int dh, int F, int N, double scale);

#ifdef LSDM_CUDA
/* CUDA versions (kernels/cuda/linear_attention.cu): device pointers, same
 * arguments, saved tensors and accumulation (+=) as the CPU; `work` holds
 * linear_attention_workspace_size floats of device memory. cuBLAS
 * strided-batched GEMMs (fp32 unless LSDM_TF32=1), no atomics. Return 0,
 * or -1 with lsdm_err (bad sizes, CUDA/cuBLAS errors). */
int linear_attention_forward_cuda(float *out, float *qs, float *ks, float *ctx, const float *qkv,
                                  int B, int H, int dh, int F, int N, float scale);
int linear_attention_backward_cuda(float *dqkv, float *work, const float *dout, const float *qkv,
                                   const float *qs, const float *ks, const float *ctx,
                                   int B, int H, int dh, int F, int N, float scale);
#endif

#endif
