/* The reference 3D VQ-GAN (Med-LSDM vq_gan_3d/model/vqgan.py and
 * vqgan_spade.py): encoder, EMA codebook, plain or SPADE decoder, and the
 * two patch discriminators used in training. Tensor names are the
 * reference state_dict's, so converted PyTorch checkpoints load as they
 * are (tools/contrib/README.md).
 *
 * Shapes for one volume (N,Ci,D,H,W) and downsample (fd,fh,fw), powers of 2
 * that may differ per axis (the reference's tuple):
 *   encode:   (N,Ci,D,H,W) -> prequant z (N,E,D/fd,H/fh,W/fw)
 *   quantise: z -> codes (N,D/f,H/f,W/f) int32, zq (N,E,...)
 *   decode:   zq [+ one-hot seg (N,L,D,H,W) for SPADE] -> (N,Ci,D,H,W) in [-1,1] */
#ifndef LSDM_VQGAN_H
#define LSDM_VQGAN_H

#include <stdint.h>
#include "nn.h"

#define VQ_MAX_STAGES 6

typedef struct {
    int n_hiddens;
    int downsample[3];     /* (d,h,w), powers of 2 */
    int image_channels;
    int embedding_dim;
    int n_codes;
    int num_groups;        /* encoder / plain decoder GroupNorm */
    int pad_mode;          /* CONV3D_PAD_REPLICATE or CONV3D_PAD_ZERO */
    int spade;             /* 1: SPADE decoder */
    int label_nc, spade_hidden, spade_groups;
    int disc_channels, disc_layers;
} vqgan_config;

/* "med-lsdm" (the reference sizes) or "tiny"; 0, or -1 with lsdm_err. */
int vqgan_config_named(vqgan_config *cfg, const char *name);
/* `key = value` lines over the current values of cfg; -1 with lsdm_err
 * naming the line on an unknown key or a bad value. */
int vqgan_config_parse(vqgan_config *cfg, const char *text);
/* A name, or a path to a config file. */
int vqgan_config_load(vqgan_config *cfg, const char *name_or_path);
/* The config as text (parseable by vqgan_config_parse); static buffer. */
const char *vqgan_config_text(const vqgan_config *cfg);
int vqgan_config_check(const vqgan_config *cfg);
/* The total downsampling per axis. */
int vqgan_factor(const vqgan_config *cfg, int axis);
/* 1 when the downsampling is the same on every axis. */
int vqgan_isotropic(const vqgan_config *cfg);
/* Downsampling factors as text, in configs, the "vq-factor" key of latent
 * streams and the diffusion's metadata: "4" (the same on every axis) or
 * "2,4,4" (d,h,w). parse gives 0, or -1 on anything else (factors 1..1024). */
int vqgan_factors_parse(const char *text, int f[3]);
const char *vqgan_factors_format(const int f[3], char buf[48]);
/* vqgan_factors_format of the config's factors; static buffer. */
const char *vqgan_factor_text(const vqgan_config *cfg);

typedef struct {
    nn_groupnorm n1, n2;
    nn_conv c1, c2;
} vq_resblock;

typedef struct {
    nn_groupnorm gn;           /* no affine */
    nn_conv shared, gamma, beta;
} vq_spade_norm;

typedef struct {
    vq_spade_norm n1, n2;
    nn_conv c1, c2;
} vq_spade_res;

typedef struct {
    int layers, is3d;
    nn_conv conv[VQ_MAX_STAGES];
    nn_batchnorm bn[VQ_MAX_STAGES]; /* bn[i] for 0 < i < layers + 1 */
} vq_disc;

typedef struct {
    vqgan_config cfg;
    int stages;
    nn_params gen;   /* encoder, codebook, decoder */
    nn_params disc;  /* the two discriminators */
    /* encoder */
    nn_conv conv_first;
    nn_conv down[VQ_MAX_STAGES];
    /* A stage that keeps an axis (stride 1 there, anisotropic downsampling)
     * pads its input explicitly as the reference's SamePadConv3d, (2,1)
     * along that axis, and its conv pads nothing; all-stride-2 stages pad
     * (1,1) inside the conv. */
    int down_prepad[VQ_MAX_STAGES][6];
    int down_explicit[VQ_MAX_STAGES];
    vq_resblock enc_res[VQ_MAX_STAGES];
    nn_groupnorm enc_final;
    nn_conv pre_vq, post_vq;
    /* codebook (buffers) */
    nn_param *emb, *ema_n, *z_avg;
    /* decoder */
    nn_groupnorm dec_final;          /* plain */
    vq_spade_norm sdec_final;        /* spade */
    nn_convt up[VQ_MAX_STAGES];
    vq_resblock dec_res[VQ_MAX_STAGES][2];
    vq_spade_res sdec_res[VQ_MAX_STAGES][2];
    nn_conv conv_last;
    /* discriminators */
    vq_disc d2, d3;
    int has_disc;    /* loaded from the checkpoint (vqgan_load) */
    /* Inference: the SPADE mlp runs on depth chunks whose hidden
     * activation is at most this many bytes (0: VQ_SPADE_CHUNK_BYTES). */
    size_t spade_chunk_bytes;
} vqgan;
#define VQ_SPADE_CHUNK_BYTES ((size_t)64 << 20)

/* Build the model with PyTorch-default random weights from seed. */
int vqgan_init(vqgan *m, const vqgan_config *cfg, uint64_t seed);
void vqgan_free(vqgan *m);

/* Inference (ctx not recording) or training (recording) forwards. x and
 * the results are tensors of ctx. */
nn_tensor *vqgan_encode(nn_ctx *c, const vqgan *m, nn_tensor *x);
/* seg: one-hot mask at image resolution for the SPADE decoder, else NULL. */
nn_tensor *vqgan_decode(nn_ctx *c, const vqgan *m, nn_tensor *zq, nn_tensor *seg);
/* Codes of z: idx (N*S) int32; returns the number of NaN vectors or -1. */
int vqgan_quantize(nn_ctx *c, const vqgan *m, const nn_tensor *z, int32_t *idx);
/* zq = codebook[idx], shape of z. */
nn_tensor *vqgan_lookup(nn_ctx *c, const vqgan *m, const int32_t *idx, int N, int D, int H, int W);
/* Discriminator forward: the features of every layer (feat[0..layers+1],
 * the last being the logits). x: (N,C,D,H,W); the 2D one takes D = 1. */
int vq_disc_forward(nn_ctx *c, const vq_disc *d, nn_tensor *x, nn_tensor **feat);

/* Checkpoint views of all tensors (gen then disc); caller frees. */
ckpt_param *vqgan_ckpt_params(const vqgan *m, int with_disc, int *count);
/* Build from a checkpoint. The config is `config` (a name or a file) if
 * given, else the checkpoint's "config" metadata; the discriminators are
 * loaded when the file has them. A tensor of another shape (another
 * config) is an error naming it. meta (may be NULL) gets the metadata. */
int vqgan_load(vqgan *m, const char *path, const char *config, ckpt_meta *meta);
/* Write every tensor (with the discriminators) and the config, plus the
 * extra metadata, atomically. */
int vqgan_save(const vqgan *m, const char *path, const ckpt_meta *extra);

#endif
