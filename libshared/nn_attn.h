/* The semantic diffusion UNet's ops (unet.h) on top of nn.h: linear
 * layers on vectors, the timestep embedding, per-sample scale/shift,
 * channel concatenation, the channel LayerNorm, the relative position
 * bias and the attention cores (softmax attention along depth or over
 * the plane, linear attention), each recording its backward when the ctx
 * records. Kept out of nn.h/nn_ops.c, which stay the VQ-GAN's core; the
 * same conventions hold: volumes (N,C,D,H,W), W fastest; vectors are
 * (N,C,1,1,1); gradients flow only into tensors that need them and into
 * parameters that are not frozen. The kernels are kernels/attention.h,
 * linear_attention.h, timestep_embedding.h, linear.h, elementwise.h and
 * layernorm.h. */
#ifndef LSDM_NN_ATTN_H
#define LSDM_NN_ATTN_H

#include "nn.h"

/* nn.Linear: weight (OC,IC), bias (OC) or none. */
typedef struct {
    nn_param *w, *b;
    int IC, OC;
} nn_linear;

/* name is the module path; ".weight" and ".bias" are appended. */
int nn_linear_init(nn_linear *l, nn_params *ps, const char *name, int IC, int OC, int bias);
/* x (N,IC,1,1,1) -> (N,OC,1,1,1). */
nn_tensor *nn_dense(nn_ctx *c, const nn_linear *l, nn_tensor *x);

/* The sinusoidal embedding (N,dim,1,1,1) of t (N): data, no gradient. */
nn_tensor *nn_timestep_emb(nn_ctx *c, const float *t, int N, int dim);

/* x * (1 + scale) + shift with (scale, shift) = the two channel halves of
 * ss (N,2C,1,1,1), per sample and channel (the time MLP's chunk(2)). In
 * place when not recording (x is consumed, the result is x). */
nn_tensor *nn_scale_shift(nn_ctx *c, nn_tensor *x, nn_tensor *ss);

/* (N,Ca+Cb,D,H,W) = [a, b] along the channels (torch.cat(dim=1)). */
nn_tensor *nn_concat(nn_ctx *c, nn_tensor *a, nn_tensor *b);

/* The reference LayerNorm over channels: gamma (C) scales, no shift. */
nn_tensor *nn_chan_layernorm(nn_ctx *c, const nn_param *gamma, nn_tensor *x, float eps);

/* The T5 relative position bias (heads,L,L) as a (1,heads,L,L,1) tensor
 * from table (num_buckets,heads) (RelativePositionBias(L)). */
nn_tensor *nn_relpos_bias(nn_ctx *c, const nn_param *table, int heads, int L, int num_buckets,
                          int max_distance);

enum { NN_ATTN_DEPTH, NN_ATTN_PLANE };
/* The reference Attention between its to_qkv and to_out, on volumes:
 * qkv (N,3*heads*dh,D,H,W) is to_qkv's output (q, k, v the channel thirds,
 * channel = head*dh + d); out (N,heads*dh,D,H,W) goes to to_out.
 * NN_ATTN_DEPTH attends along depth (L = D, every (n,h,w) a sequence: the
 * temporal attention), NN_ATTN_PLANE over the plane (L = H*W per slice:
 * the middle spatial attention). bias (1,heads,L,L,1) or NULL; cs (L,
 * rot_dim/2, 2) cos/sin of the rotary embedding (rotary_cos_sin's layout)
 * applied to q and k, or NULL with rot_dim 0 (when recording, cs must
 * live until the backward: a tensor of the same ctx); scale = dh^-0.5. */
nn_tensor *nn_attention(nn_ctx *c, nn_tensor *qkv, int heads, int dh, int mode, nn_tensor *bias,
                        const float *cs, int rot_dim, float scale);

/* SpatialLinearAttention between to_qkv and to_out: qkv (N,3*heads*dh,D,H,W)
 * -> (N,heads*dh,D,H,W), each slice d its own sequence of H*W positions. */
nn_tensor *nn_linear_attention(nn_ctx *c, nn_tensor *qkv, int heads, int dh, float scale);

#endif
