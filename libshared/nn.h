/* Models from the kernels: volume tensors, named parameters, and a tape
 * that replays the kernels' backward functions in reverse.
 *
 * A model owns an nn_params (its weights, named as the PyTorch reference
 * state_dict so that checkpoints convert by identity) and runs its forward
 * through an nn_ctx:
 *
 *   nn_ctx ctx; nn_ctx_init(&ctx, 1);          // 1: record for backward
 *   nn_tensor *h = nn_conv3d(&ctx, &layer, x);    // forward ops ...
 *   loss = l1_loss_forward(...);                // a loss on the output
 *   l1_loss_backward(nn_grad(&ctx, y), ...);    // seed the output gradient
 *   nn_backward(&ctx);                          // param grads +=
 *   nn_ctx_reset(&ctx);                         // drop this step's tensors
 *
 * Memory: a training step's tensors come from blocks cached by size, an
 * inference forward's from one slab sized from the first forward's peak,
 * so a step, a tile or a sampler step allocates nothing after the first
 * one or two. Without recording, model code calls nn_drop as soon as a
 * tensor is no longer needed, which keeps a forward at weights + a few
 * activations.
 *
 * Tensors are volumes (N, C, D, H, W), W fastest; 2D data is D = 1.
 * Everything here runs on the CPU kernels. */
#ifndef LSDM_NN_H
#define LSDM_NN_H

#include <stddef.h>
#include <stdint.h>
#include "../kernels/activation.h"
#include "../kernels/conv3d.h"
#include "../kernels/conv_transpose3d.h"
#include "checkpoint.h"

/* ---- parameters ---- */

typedef struct {
    char name[128];
    int ndim;
    int64_t shape[5];
    size_t n;
    float *data;   /* owned */
    float *grad;   /* owned; NULL until nn_params_alloc_grads */
    int buffer;    /* 1: saved in checkpoints, never trained (running stats, codebook) */
    int frozen;    /* 1: takes no gradient now (e.g. D during G's step) */
} nn_param;

typedef struct {
    nn_param **p;  /* stable addresses: layers keep pointers */
    int n, cap;
} nn_params;

/* Register a zero-filled tensor called prefix + suffix. NULL with lsdm_err. */
nn_param *nn_param_new(nn_params *ps, const char *prefix, const char *suffix,
                       int ndim, const int64_t *shape, int buffer);
nn_param *nn_params_find(const nn_params *ps, const char *name);
size_t nn_params_count(const nn_params *ps, int with_buffers);
int nn_params_alloc_grads(nn_params *ps);
void nn_params_zero_grads(nn_params *ps);
/* Freeze (1) or thaw (0) every parameter of the set. */
void nn_params_freeze(nn_params *ps, int frozen);
/* The grad buffers and sizes of the trainable parameters, for clipping and
 * the optimiser: fills up to ps->n entries, returns the count. */
int nn_params_grads(const nn_params *ps, float **data, float **grad, size_t *n);
void nn_params_free(nn_params *ps);
/* Views for checkpoint_save/load: every tensor (weights and buffers).
 * The array is malloc'ed, the caller frees it (not the data). */
ckpt_param *nn_params_ckpt(const nn_params *ps, const char *prefix_filter, int *count);
/* Deterministic init as PyTorch's defaults for conv layers: uniform in
 * +-1/sqrt(fan_in) for weight and bias (kaiming_uniform with a = sqrt(5)),
 * GroupNorm/BatchNorm weight 1 bias 0; drawn from Philox(seed, stream i). */
void nn_init_uniform(nn_param *p, float bound, uint64_t seed, uint64_t stream);
void nn_init_const(nn_param *p, float v);

/* ---- tensors and the context ---- */

typedef struct {
    float *data;
    float *grad;       /* NULL until something writes a gradient into it */
    int N, C, D, H, W;
    size_t n;          /* N*C*D*H*W */
    int needs_grad;    /* 1: part of the recorded graph */
    int view;          /* 1: data belongs to another tensor or the caller */
} nn_tensor;

typedef struct nn_block nn_block;
typedef struct nn_range nn_range;
typedef void (*nn_backward_fn)(void *ctx, void *args);

typedef struct {
    int record;             /* 1: keep a tape for nn_backward */
    /* caching allocator */
    nn_block *blocks;
    int nblocks, cap_blocks;
    size_t bytes_in_use, bytes_peak, bytes_held;
    size_t allocs;          /* blocks and slabs taken from the system */
    /* inference: one slab, handed out best-fit, regrown when empty */
    char *slab;
    size_t slab_size, slab_missed;
    int resets;             /* nn_ctx_reset calls: forwards seen whole */
    nn_range *ranges;       /* live parts of the slab, by offset */
    int nranges, cap_ranges;
    /* tensors handed out since the last reset */
    nn_tensor **tensors;
    int ntensors, cap_tensors;
    /* the tape: node headers and their argument bytes */
    struct { nn_backward_fn fn; size_t off; } *nodes;
    int nnodes, cap_nodes;
    unsigned char *args;
    size_t args_len, args_cap;
    int failed;             /* an allocation failed: results are invalid */
} nn_ctx;

void nn_ctx_init(nn_ctx *c, int record);
/* Drop every tensor and the tape; memory stays cached for the next step. */
void nn_ctx_reset(nn_ctx *c);
/* Return cached memory that is not in use to the system. */
void nn_ctx_trim(nn_ctx *c);
void nn_ctx_free(nn_ctx *c);
/* 0, or -1 with lsdm_err if an allocation failed since the last reset. */
int nn_ctx_status(const nn_ctx *c);

/* Scratch memory (kernel workspaces); give back with nn_scratch_free. */
float *nn_scratch(nn_ctx *c, size_t floats);
void nn_scratch_free(nn_ctx *c, float *p);

/* A new tensor of that shape (uninitialised). NULL on failure (c->failed). */
nn_tensor *nn_tensor_new(nn_ctx *c, int N, int C, int D, int H, int W);
/* A tensor over caller memory (an input); not freed by the ctx. */
nn_tensor *nn_tensor_wrap(nn_ctx *c, float *data, int N, int C, int D, int H, int W);
/* The same data cut off from the graph (PyTorch's .detach()). */
nn_tensor *nn_detach(nn_ctx *c, nn_tensor *t);
/* The gradient buffer of t, zero-filled on first use. */
float *nn_grad(nn_ctx *c, nn_tensor *t);
/* Free t now (not recording): its memory goes back to the cache. */
void nn_drop(nn_ctx *c, nn_tensor *t);

/* Append a backward node: args (size bytes) are copied onto the tape. */
void nn_tape_push(nn_ctx *c, nn_backward_fn fn, const void *args, size_t size);
/* Run the tape in reverse, accumulating into tensor and parameter grads. */
void nn_backward(nn_ctx *c);
/* Forget the tape but keep the tensors (a second backward pass over new
 * ops, e.g. the discriminator's step on the generator's outputs). */
void nn_tape_clear(nn_ctx *c);

/* ---- layers ---- */

typedef struct {
    nn_param *w, *b;       /* (Cout,Cin,kd,kh,kw), (Cout) or NULL */
    int Cin, Cout, k[3], s[3], p[3], pad_mode;
} nn_conv;

typedef struct {
    nn_param *w, *b;       /* (Cin,Cout,kd,kh,kw), (Cout) */
    int Cin, Cout, k[3], s[3], p[3];
    int prepad[6];         /* replicate-pad the input by (d0,d1,h0,h1,w0,w1) first */
} nn_convt;

typedef struct {
    nn_param *w, *b;       /* (C) each, or NULL for affine=False */
    int C, G;
    float eps;
} nn_groupnorm;

typedef struct {
    nn_param *w, *b, *rmean, *rvar; /* (C) */
    int C;
    float eps, momentum;
} nn_batchnorm;

/* Or'ed into nn_conv_init's pad_mode: a 2D conv (kernel (1,kh,kw)) whose
 * weight is stored 4D, (Cout,Cin,kh,kw), as PyTorch's Conv2d. */
#define NN_CONV_2D 0x100

/* name is the module path ("encoder.conv_first.conv"): ".weight" and
 * ".bias" are appended. k, s, p are (d,h,w). */
int nn_conv_init(nn_conv *l, nn_params *ps, const char *name, int Cin, int Cout,
                 const int k[3], const int s[3], const int p[3], int pad_mode, int bias);
/* prepad: replicate padding (d0,d1,h0,h1,w0,w1) of the input before the
 * transposed conv (the reference's SamePadConvTranspose3d), or NULL. */
int nn_convt_init(nn_convt *l, nn_params *ps, const char *name, int Cin, int Cout,
                  const int k[3], const int s[3], const int p[3], const int prepad[6]);
int nn_groupnorm_init(nn_groupnorm *l, nn_params *ps, const char *name, int C, int G,
                      float eps, int affine);
int nn_batchnorm_init(nn_batchnorm *l, nn_params *ps, const char *name, int C);

/* ---- ops: each computes the forward and, when recording, pushes its backward ---- */

nn_tensor *nn_conv3d(nn_ctx *c, const nn_conv *l, nn_tensor *x);
/* Inference only: convs a and b (same geometry) on x in one pass, output
 * channels a's then b's. */
nn_tensor *nn_conv3d_pair(nn_ctx *c, const nn_conv *a, const nn_conv *b, nn_tensor *x);
nn_tensor *nn_convt3d(nn_ctx *c, const nn_convt *l, nn_tensor *x);
nn_tensor *nn_gn(nn_ctx *c, const nn_groupnorm *l, nn_tensor *x);
/* silu(gn(x)): one fused sweep over memory when nothing is recorded for
 * backward (inference), else nn_gn then nn_act (same values either way). */
nn_tensor *nn_gn_silu(nn_ctx *c, const nn_groupnorm *l, nn_tensor *x);
/* BatchNorm with batch statistics, updating the running ones (training). */
nn_tensor *nn_bn_train(nn_ctx *c, const nn_batchnorm *l, nn_tensor *x);
/* BatchNorm with the running statistics (inference). */
nn_tensor *nn_bn_eval(nn_ctx *c, const nn_batchnorm *l, nn_tensor *x);
/* Activation; in place when not recording (x is consumed, the result is x). */
nn_tensor *nn_act(nn_ctx *c, act_kind k, float slope, nn_tensor *x);
/* a + b; when not recording the sum is written into b (b is consumed). */
nn_tensor *nn_add(nn_ctx *c, nn_tensor *a, nn_tensor *b);
/* x * (1 + gamma) + beta, all the same shape; into x when not recording. */
nn_tensor *nn_spade_mod(nn_ctx *c, nn_tensor *x, nn_tensor *gamma, nn_tensor *beta);
/* Pad (d0,d1,h0,h1,w0,w1) voxels, PAD3D_ZERO or PAD3D_REPLICATE (kernels/pad3d.h). */
nn_tensor *nn_pad(nn_ctx *c, nn_tensor *x, const int pad[6], int mode);
/* (N,C,1,H,W) = x[n, :, d[n]] : one depth slice per batch element. */
nn_tensor *nn_take_slices(nn_ctx *c, nn_tensor *x, const int *d);
/* Nearest-neighbour resize to (D, H, W) (F.interpolate mode 'nearest');
 * x itself when it has that size already. */
nn_tensor *nn_resize_nearest(nn_ctx *c, nn_tensor *x, int D, int H, int W);

#endif
