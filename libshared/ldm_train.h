/* Training the semantic diffusion UNet (Med-LSDM ddpm/semantic_diffusion.py:
 * SemanticGaussianDiffusion.p_losses under Semantic_Trainer). One
 * optimiser step over K micro-batches (gradient accumulation):
 *
 *   ldm_trainer_begin(&t);                          // zero the gradients
 *   for (k = 0; k < K; k++)
 *       ldm_trainer_micro(&t, k, x0, mask, &shape, &st);
 *   ldm_trainer_end(&t, &st);                       // clip, Adam, EMA
 *
 * where each micro-batch, per sample, draws t uniform in 0..T-1, the noise
 * N(0,1) and the condition dropout (the mask replaced by the all-zero null
 * mask with probability cond_drop), forms x_t = q_sample(x0, t, noise),
 * predicts eps with the UNet (the mask encoded in the same recording
 * context, so its encoder and the SPADE convs train) and backpropagates
 * the L1 (or MSE) loss to the noise, scaled by 1/K.
 *
 * Every random number is a function of (seed, step, sample): sample g =
 * k N + n of step s draws from Philox(lsdm_rng_derive(seed, s, purpose),
 * stream 2g for t and the dropout, 2g+1 for the noise). So the draws do
 * not depend on threads, and --batch 4 equals --batch 2 --accum 2 in them.
 *
 * The trainer owns two models: the trained weights (m) and their
 * exponential moving average (ema, decay 0.995, updated after every
 * optimiser step; a copy of m before ema_start steps). Checkpoints hold the
 * EMA as the model (what ldm_load and sampling read) and the raw weights,
 * the Adam moments, the step and the seed as train_state.* tensors and
 * metadata, so that ldm_trainer_resume continues bit for bit. */
#ifndef LSDM_LDM_TRAIN_H
#define LSDM_LDM_TRAIN_H

#include <stdint.h>

#include "diffusion.h"
#include "ldm.h"
#include "optim.h"
#include "unet.h"

typedef struct {
    double lr;          /* Adam (betas 0.9, 0.999, as the reference); the reference: 1e-5 */
    double grad_clip;   /* global gradient norm clipping; 0 = off */
    double ema_decay;   /* 0.995 */
    long ema_start;     /* before this many steps the EMA is a copy (the reference: 2000) */
    int accum;          /* micro-batches per optimiser step (the reference: 2) */
    uint64_t seed;
} ldm_train_opts;

ldm_train_opts ldm_train_opts_default(void);

/* One micro-batch: N latent blocks (N,C,D,H,W), already ldm_normalize'd,
 * and their one-hot masks (N,L,Dm,Hm,Wm) (the image grid: the latent grid
 * times the VQ-GAN's f). */
typedef struct {
    int N, D, H, W;
    int Dm, Hm, Wm;
} ldm_batch_shape;

typedef struct {
    double loss;        /* mean of the micro-batch losses */
    double grad_norm;   /* before clipping */
    double lr;
    int samples, dropped; /* samples of the step, those trained with the null mask */
    double t_mean;      /* mean timestep drawn */
    double mask_on;     /* fraction of the mask encoder's outputs above 0 (its last
                           ReLU): 0 means the mask no longer reaches the model */
} ldm_step_stats;

typedef struct {
    unet m;                 /* the trained weights */
    unet ema;               /* their moving average: the checkpoint's model */
    ldm_diffusion_config d; /* timesteps, loss, cond_drop, normalisation, ... */
    ldm_train_opts o;
    diffusion_schedule sched;
    adam_state opt;
    nn_ctx ctx;
    long step;              /* optimiser steps done */
    /* scratch of a micro-batch, sized on first use */
    float *xt, *noise, *tf; /* (N,C,D,H,W) twice, (N) */
    int *ts;                /* (N) */
    size_t cap_x, cap_n, cap_tf, cap_ts;
    double mask_on;         /* of the last ldm_trainer_backward (1 without SegConv3D) */
} ldm_trainer;

/* A fresh model from cfg (PyTorch-default random init from o->seed);
 * `from` (may be NULL): a UNet or diffusion checkpoint whose weights to
 * start from instead (same config). d: the diffusion metadata to train
 * and save (timesteps, loss, cond_drop, latent range, vq_model, ...). */
int ldm_trainer_init(ldm_trainer *t, const unet_config *cfg, const ldm_diffusion_config *d,
                     const ldm_train_opts *o, const char *from);
/* Everything from a checkpoint written by ldm_trainer_save: config,
 * diffusion metadata, both models, Adam moments, step and seed. o gives
 * the options that are not stored (lr, clip, EMA, accum: the caller keeps
 * them the same for a bit-identical continuation); its seed is replaced
 * by the checkpoint's. meta (may be NULL) receives the file's metadata. */
int ldm_trainer_resume(ldm_trainer *t, const char *path, const ldm_train_opts *o, ckpt_meta *meta);
void ldm_trainer_free(ldm_trainer *t);

/* The draws of sample g of the current step: timestep, n noise values,
 * and whether its condition is dropped. */
void ldm_trainer_draw(const ldm_trainer *t, int g, size_t n, int *ts, float *noise, int *drop);

void ldm_trainer_begin(ldm_trainer *t, ldm_step_stats *st);
/* Micro-batch k of the step: draws, zeroes the masks of dropped samples
 * (mask is modified), then ldm_trainer_backward with scale 1/accum. */
int ldm_trainer_micro(ldm_trainer *t, int k, const float *x0, float *mask, const ldm_batch_shape *s,
                      ldm_step_stats *st);
/* The loss of one micro-batch with given timesteps ts (N) and noise (like
 * x0), and its gradients times `scale` ACCUMULATED into the weights' grads.
 * loss: the mean |eps - noise| (or squared) over the micro-batch. */
int ldm_trainer_backward(ldm_trainer *t, const float *x0, const float *mask, const int *ts,
                         const float *noise, const ldm_batch_shape *s, float scale, double *loss);
/* Clip, Adam, EMA, step + 1. A non-finite loss or gradient norm is an
 * error (training diverged) before anything is changed. */
int ldm_trainer_end(ldm_trainer *t, ldm_step_stats *st);

/* The checkpoint (atomic): the EMA model with "config" and "diffusion"
 * metadata (ldm_load reads it), plus train_state.* and "step", "seed",
 * "adam_step", and the extra metadata (may be NULL). */
int ldm_trainer_save(const ldm_trainer *t, const char *path, const ckpt_meta *extra);

#endif
