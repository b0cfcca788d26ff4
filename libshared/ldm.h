/* A latent diffusion checkpoint: the UNet's tensors (unet.h) plus what
 * ties it to its latents, in the safetensors metadata:
 *   "config"    the UNet config text (unet_save writes it)
 *   "diffusion" `key = value` text:
 *                 timesteps = 500
 *                 schedule = cosine
 *                 objective = eps
 *                 loss = l1 | l2
 *                 latent_min = X      codebook min (the reference's
 *                 latent_max = Y      normalisation to [-1,1])
 *                 vq_model = DIGEST   vq_model_digest of the VQ-GAN whose
 *                                     latents it models (vqtile.h)
 *                 null_mask = zeros   the unconditional input (all-zero mask)
 *                 cond_drop = 0.1     condition dropout it was trained with
 *                 downsample = 4      image voxels per latent voxel (the VQ-GAN's f;
 *                                     "2,4,4" when it differs per axis d,h,w)
 *                 train_shape = 8,16,16  latent block (D,H,W) it was trained on:
 *                                     longer volumes are sampled in windows
 *                                     of train_shape[0] slices
 *   "step", "rng", train_state.*: the trainer's (ldm-train), ignored here.
 * Latents in streams are in the VQ-GAN's own scale (vq-encode prequant);
 * the model works on ldm_normalize's [-1,1]. */
#ifndef LSDM_LDM_H
#define LSDM_LDM_H

#include <stddef.h>

#include "checkpoint.h"
#include "unet.h"

typedef struct {
    int timesteps;
    int loss_l2;          /* 0: L1 (reference), 1: MSE */
    double latent_min, latent_max;
    char vq_model[17];    /* "" if unknown */
    double cond_drop;
    int downsample[3];    /* (d,h,w) */
    int train_shape[3];
} ldm_diffusion_config;

/* Defaults: 500 steps, L1, latent range [-1,1], no vq_model, cond_drop 0.1,
 * downsample 4, train_shape 8,64,64 (the reference). */
void ldm_diffusion_defaults(ldm_diffusion_config *d);
/* The "diffusion" metadata text (static buffer) and back; parse fails
 * with lsdm_err naming the line on an unknown key or a bad value. */
const char *ldm_diffusion_text(const ldm_diffusion_config *d);
int ldm_diffusion_parse(ldm_diffusion_config *d, const char *text);

/* z (VQ-GAN scale) -> [-1,1] and back, n elements, in place. */
void ldm_normalize(float *z, size_t n, const ldm_diffusion_config *d);
void ldm_denormalize(float *z, size_t n, const ldm_diffusion_config *d);

/* unet_load plus the "diffusion" metadata (missing: an error, this is no
 * diffusion checkpoint). config: NULL or a UNet config overriding the
 * checkpoint's. meta (may be NULL) receives all the metadata. */
int ldm_load(unet *m, ldm_diffusion_config *d, const char *path, const char *config, ckpt_meta *meta);
/* unet_save with "diffusion" and the extra metadata, atomically. */
int ldm_save(const unet *m, const ldm_diffusion_config *d, const char *path, const ckpt_meta *extra);

#endif
