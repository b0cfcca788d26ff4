/* Softmax attention and its companions, as in the reference UNet
 * (Med-LSDM Unet3D_SPADE, after lucidrains' video-diffusion-pytorch):
 *   Attention:             sim = scale q k^T + bias; att = softmax_j(sim);
 *                          out = att v (heads, dim_head per head)
 *   RotaryEmbedding:       rotate_queries_or_keys, rotary_embedding_torch
 *                          defaults (theta 10000, interleaved pairs)
 *   RelativePositionBias:  T5 buckets -> bias (heads, L, L)
 * and a permutation helper that moves a volume's axes into (batch, head,
 * L, dh) order and back (temporal attention: L = D, batch over H*W;
 * spatial attention: L = H*W, batch over D).
 *
 * The reference scales q before the rotation; rotation is linear, so
 * rotary(q), rotary(k), then attention with `scale` is the same function.
 *
 * Every backward ACCUMULATES (+=) into its gradient buffers: callers zero
 * them first. Each function also exists in double as NAME_f64 with the
 * same arguments (float -> double), generated from the same source. */
#ifndef LSDM_ATTENTION_H
#define LSDM_ATTENTION_H

#include <stddef.h>

/* From this sequence length on, attention uses BLAS per (batch, head);
 * below it, plain loops parallel over (batch, head) (the temporal case:
 * L = D = 8 for thousands of batches, where a GEMM call costs more than
 * it computes). */
#define ATTN_GEMM_MIN_L 64

/* out (B,H,L,dh), att (B,H,L,L) = softmax probabilities, saved for the
 * backward; q,k,v (B,H,L,dh); bias (H,L,L) or NULL, broadcast over B. */
void attention_forward(float *out, float *att,
                       const float *q, const float *k, const float *v, const float *bias,
                       int B, int H, int L, int dh, float scale);
/* dq,dk,dv (B,H,L,dh); dbias (H,L,L) or NULL; work: attention_workspace_size
 * floats (the score gradient); dout (B,H,L,dh); att from the forward. */
void attention_backward(float *dq, float *dk, float *dv, float *dbias, float *work,
                        const float *dout, const float *q, const float *k, const float *v,
                        const float *att, int B, int H, int L, int dh, float scale);
size_t attention_workspace_size(int B, int H, int L);

/* Rotary embedding over the last axis of x (B,L,dh), position = index
 * along L (B is every leading axis together, e.g. batch*heads). The
 * first rot_dim features (even, <= dh) rotate in pairs (2i, 2i+1) by the
 * angle l * theta^(-2i/rot_dim), theta = 10000; the rest pass through.
 * Angles are formed in float32 like the reference (float32 freqs times
 * float32 positions). cs (L, rot_dim/2, 2) = cos, sin: fill once with
 * rotary_cos_sin. out may equal inp. */
void rotary_cos_sin(float *cs, int L, int rot_dim);
void rotary_forward(float *out, const float *inp, const float *cs,
                    int B, int L, int dh, int rot_dim);
/* dinp (B,L,dh) += R^T dout. */
void rotary_backward(float *dinp, const float *dout, const float *cs,
                     int B, int L, int dh, int rot_dim);

/* T5 relative position bucket of rel = j - i (key minus query position),
 * exactly as RelativePositionBias._relative_position_bucket (its float32
 * log included). */
int relpos_bucket(int rel, int num_buckets, int max_distance);
/* bias (H,L,L)[h,i,j] = table (num_buckets,H)[bucket(j-i), h]. */
void relpos_bias_forward(float *bias, const float *table,
                         int H, int L, int num_buckets, int max_distance);
/* dtable (num_buckets,H) += scatter of dbias (H,L,L). */
void relpos_bias_backward(float *dtable, const float *dbias,
                          int H, int L, int num_buckets, int max_distance);

/* Axis permutation of a contiguous tensor of `ndim` (<= PERMUTE_MAX_DIM)
 * axes `shape`: out axis a is inp axis perm[a] (torch.permute).
 * The UNet's uses, with qkv = the bias-free to_qkv as a 1x1x1 conv on
 * the volume, viewed as (B, 3, heads, dh, D, HW):
 *   temporal (L = D):   perm {1,0,5,2,4,3} -> (3, B, HW, heads, D, dh):
 *                       q, k, v = its thirds, each (B*HW, heads, D, dh);
 *                       out (B, HW, heads, D, dh) back with {0,2,4,3,1}
 *                       -> (B, heads, dh, D, HW) for to_out as a 1x1x1 conv
 *   spatial (L = HW):   perm {1,0,4,2,5,3} -> (3, B, D, heads, HW, dh);
 *                       out (B, D, heads, HW, dh) back with {0,2,4,1,3}. */
#define PERMUTE_MAX_DIM 8
void permute_forward(float *out, const float *inp, int ndim, const int *shape, const int *perm);
/* dinp (shape) += inverse permutation of dout (permuted shape). */
void permute_backward(float *dinp, const float *dout, int ndim, const int *shape, const int *perm);

/* The same, in double. */
void rotary_cos_sin_f64(double *cs, int L, int rot_dim);
void attention_forward_f64(double *out, double *att,
                           const double *q, const double *k, const double *v, const double *bias,
                           int B, int H, int L, int dh, double scale);
void attention_backward_f64(double *dq, double *dk, double *dv, double *dbias, double *work,
                            const double *dout, const double *q, const double *k, const double *v,
                            const double *att, int B, int H, int L, int dh, double scale);
void rotary_forward_f64(double *out, const double *inp, const double *cs,
                        int B, int L, int dh, int rot_dim);
void rotary_backward_f64(double *dinp, const double *dout, const double *cs,
                         int B, int L, int dh, int rot_dim);
void relpos_bias_forward_f64(double *bias, const double *table,
                             int H, int L, int num_buckets, int max_distance);
void relpos_bias_backward_f64(double *dtable, const double *dbias,
                              int H, int L, int num_buckets, int max_distance);
void permute_forward_f64(double *out, const double *inp, int ndim, const int *shape, const int *perm);
void permute_backward_f64(double *dinp, const double *dout, int ndim, const int *shape, const int *perm);

#ifdef LSDM_CUDA
/* CUDA versions (kernels/cuda/attention.cu): device pointers, same
 * arguments, semantics and accumulation (+=) as the CPU functions above.
 * attention: cuBLAS strided-batched GEMMs (fp32 unless LSDM_TF32=1) and a
 * warp-per-row softmax; `work` holds attention_workspace_size(B,H,L)
 * floats of device memory. rotary: cs is a device copy of rotary_cos_sin's
 * table. relpos_bias: buckets from relpos_bucket on the host (bit-exact),
 * deterministic backward (no atomics). permute: shape and perm are host
 * arrays. Return 0, or -1 with lsdm_err (bad sizes, CUDA/cuBLAS errors). */
int attention_forward_cuda(float *out, float *att, const float *q, const float *k, const float *v,
                           const float *bias, int B, int H, int L, int dh, float scale);
int attention_backward_cuda(float *dq, float *dk, float *dv, float *dbias, float *work,
                            const float *dout, const float *q, const float *k, const float *v,
                            const float *att, int B, int H, int L, int dh, float scale);
int rotary_forward_cuda(float *out, const float *inp, const float *cs, int B, int L, int dh, int rot_dim);
int rotary_backward_cuda(float *dinp, const float *dout, const float *cs, int B, int L, int dh, int rot_dim);
int relpos_bias_forward_cuda(float *bias, const float *table, int H, int L, int num_buckets,
                             int max_distance);
int relpos_bias_backward_cuda(float *dtable, const float *dbias, int H, int L, int num_buckets,
                              int max_distance);
int permute_forward_cuda(float *out, const float *inp, int ndim, const int *shape, const int *perm);
int permute_backward_cuda(float *dinp, const float *dout, int ndim, const int *shape, const int *perm);
#endif

#endif
