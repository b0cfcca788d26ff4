/* The reference semantic diffusion UNet (Med-LSDM ddpm/semantic_diffusion.py
 * Unet3D_SPADE, after lucidrains' video-diffusion-pytorch): the noise
 * predictor of the latent diffusion. Tensor names are the reference
 * state_dict's (the trainer's `denoise_fn.` stripped: tools/contrib), so
 * converted PyTorch checkpoints load as they are.
 *
 * Layout (dims = dim * dim_mults, L = levels):
 *   init_conv k(1,7,7) -> r; + temporal attention
 *   time: sinusoidal(dim) -> Linear -> GELU -> Linear (time_dim = 4 dim)
 *   per level: SDEResBlock (GroupNorm, time scale/shift), + linear
 *     attention, + temporal attention, skip, in-plane downsampling conv
 *   middle: SDDResBlock (SPADE), + full attention over the plane, +
 *     temporal attention, SDDResBlock
 *   per level up: concat skip, SDDResBlock (SPADE, time), + linear
 *     attention, + temporal attention, in-plane transposed conv
 *   concat r, ResnetBlock, 1x1x1 conv -> eps
 * Every "+ attention" is x + Attn(LayerNorm(x)); the temporal ones attend
 * along depth with a rotary embedding and a T5 relative position bias.
 *
 * The mask conditions the SPADE norms only, and everything they take from
 * it depends on the mask and the weights alone: the mask encoder
 * (SegConv3D) and, per SPADE norm, gamma and beta of the encoded mask
 * resized to that norm's grid. unet_encode_mask computes all of that
 * once per sample (unet_maskfeat); unet_forward runs the denoising step.
 *
 * Shapes: latent x (N,channels,D,H,W), H and W divisible by 2^(L-1);
 * mask (N,label_nc,Dm,Hm,Wm) one-hot, any size (the reference: the image
 * grid, 4x the latent); t (N) float timesteps; eps like x. */
#ifndef LSDM_UNET_H
#define LSDM_UNET_H

#include <stdint.h>
#include "nn.h"
#include "nn_attn.h"

#define UNET_MAX_LEVELS 6
#define UNET_MAX_SPADE (4 + 2 * UNET_MAX_LEVELS)
/* SDDResBlock's default groups: the middle blocks are built without the
 * config's groups in the reference. */
#define UNET_MID_GROUPS 8
/* RelativePositionBias(heads, max_distance=32), num_buckets 32. */
#define UNET_REL_BUCKETS 32
#define UNET_REL_MAX_DISTANCE 32

typedef struct {
    int dim;                         /* base width (the reference run: 64) */
    int dim_mults[UNET_MAX_LEVELS];
    int levels;                      /* entries of dim_mults */
    int channels;                    /* latent channels in and out */
    int label_nc;                    /* one-hot mask channels */
    int attn_heads, attn_dim_head;   /* every attention's heads; temporal dim_head */
    int spatial_dim_head;            /* linear and middle attentions (reference: 32) */
    int init_kernel;                 /* init_conv k(1,K,K), odd */
    int groups;                      /* GroupNorm groups (resnet_groups) */
    int segconv;                     /* 1: SegConv3D mask encoder; 0: the one-hot mask itself */
    int seg_hidden[2];               /* SegConv3D widths (reference: 64, 128) */
    int spade_input_nc;              /* SegConv3D output channels */
    int spade_hidden;                /* SPADE mlp_shared width (reference: 128) */
} unet_config;

/* "med-lsdm" (the reference sizes) or "tiny"; 0, or -1 with lsdm_err. */
int unet_config_named(unet_config *cfg, const char *name);
/* `key = value` lines over the current values; -1 with lsdm_err naming
 * the line on an unknown key or a bad value. */
int unet_config_parse(unet_config *cfg, const char *text);
/* A name, or a path to a config file. */
int unet_config_load(unet_config *cfg, const char *name_or_path);
/* The config as text (parseable by unet_config_parse); static buffer. */
const char *unet_config_text(const unet_config *cfg);
int unet_config_check(const unet_config *cfg);
/* The channels the SPADE norms read: spade_input_nc, or label_nc without
 * the mask encoder. */
int unet_mask_channels(const unet_config *cfg);

/* Residual(PreNorm(Attention or SpatialLinearAttention)): along depth
 * with the rotary embedding and the relative position bias (temporal),
 * over the plane (the middle spatial attention), or linear attention. */
enum { UNET_ATTN_TEMPORAL, UNET_ATTN_SPATIAL, UNET_ATTN_LINEAR };
typedef struct {
    int kind;
    nn_param *gamma;     /* the LayerNorm */
    nn_conv qkv, out;    /* to_qkv, to_out as 1x1x1 convs (Linear or Conv2d weights) */
    nn_param *freqs;     /* rotary embedding (temporal only) */
    int heads, dh, rot;
} unet_attn;

typedef struct {
    nn_groupnorm gn;     /* no affine */
    nn_conv shared, gamma, beta;
} unet_spade;

/* SDEResBlock (plain GroupNorm), SDDResBlock (SPADE) and ResnetBlock. */
typedef struct {
    nn_linear mlp;       /* time scale/shift (mlp.1), if has_mlp */
    nn_conv c1, c2, res; /* conv1, conv2 (or block1/2.proj), res_conv if has_res */
    nn_groupnorm n1, n2; /* plain norms (or block1/2.norm) */
    unet_spade s1, s2;   /* SPADE norms */
    int has_mlp, has_res, spade;
} unet_block;

typedef struct {
    unet_config cfg;
    nn_params ps;
    nn_param *relpos;    /* (32, heads) */
    nn_conv init_conv;
    unet_attn init_attn;
    nn_linear time1, time2;
    unet_block down[UNET_MAX_LEVELS], up[UNET_MAX_LEVELS], mid1, mid2, final_block;
    unet_attn down_lin[UNET_MAX_LEVELS], down_t[UNET_MAX_LEVELS];
    unet_attn up_lin[UNET_MAX_LEVELS], up_t[UNET_MAX_LEVELS];
    unet_attn mid_spatial, mid_t;
    nn_conv downsample[UNET_MAX_LEVELS];
    nn_convt upsample[UNET_MAX_LEVELS];
    nn_conv final_conv;
    nn_conv seg[3];      /* segconv3d.conv1..3 */
} unet;

/* The per-sample mask features: tensors of the context they were made in
 * (inference: a context that outlives the denoising steps; training: the
 * step's recording context, so that the gradients reach the mask encoder
 * and the SPADE convs). */
typedef struct {
    int N, D, H, W;      /* batch and latent grid they were made for */
    nn_tensor *seg;      /* SegConv3D output (or the mask) */
    int n;               /* SPADE norms */
    nn_tensor *gamma[UNET_MAX_SPADE], *beta[UNET_MAX_SPADE];
} unet_maskfeat;

/* Build the model with PyTorch-default random weights from seed. */
int unet_init(unet *m, const unet_config *cfg, uint64_t seed);
void unet_free(unet *m);
/* Trainable values (no buffers). */
size_t unet_param_count(const unet *m);

/* The mask features for latents of grid (D,H,W). mask (N,label_nc,...). */
int unet_encode_mask(nn_ctx *c, const unet *m, nn_tensor *mask, int D, int H, int W,
                     unet_maskfeat *mf);
/* eps for x (N,channels,D,H,W) at timesteps t (N); mf from
 * unet_encode_mask for the same N and grid. A tensor of c, or NULL
 * (c->failed, lsdm_err). */
nn_tensor *unet_forward(nn_ctx *c, const unet *m, nn_tensor *x, const float *t,
                        const unet_maskfeat *mf);

/* Checkpoint views of all tensors; caller frees. */
ckpt_param *unet_ckpt_params(const unet *m, int *count);
/* Build from a checkpoint: the config is `config` (a name or a file) if
 * given, else the checkpoint's "config" metadata. A tensor of another
 * shape is an error naming it. meta (may be NULL) gets the metadata. */
int unet_load(unet *m, const char *path, const char *config, ckpt_meta *meta);
/* Every tensor and the config, plus the extra metadata, atomically. */
int unet_save(const unet *m, const char *path, const ckpt_meta *extra);

#endif
