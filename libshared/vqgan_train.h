/* Training the VQ-GAN as the reference (vq_gan_3d/model/vqgan.py
 * training_step): per step a generator update on
 *   l1_weight * L1(x_rec, x) + commitment
 *   + perceptual_weight * LPIPS(slice, slice_rec)   (when LPIPS weights are given)
 *   + [after disc_start] image_gan_weight * -mean(D2(frames_rec))
 *                      + video_gan_weight * -mean(D3(x_rec))
 *                      + gan_feat_weight * sum_i L1(D_i(fake), D_i(real))
 * with the EMA codebook updated in the forward, then (after disc_start) a
 * discriminator update on the hinge loss of real against the generator's
 * detached output. Adam betas (0.5, 0.9), gradient norm clipping per
 * optimiser. One deliberate difference: the discriminator step reuses the
 * reconstruction of the generator step instead of running the autoencoder
 * (and its codebook update) a second time.
 *
 * Every random choice (codebook init and restarts, the 2D discriminator's
 * slice) is drawn from Philox at (seed, step), so a resumed run continues
 * bit-identically. */
#ifndef LSDM_VQGAN_TRAIN_H
#define LSDM_VQGAN_TRAIN_H

#include "../kernels/codebook.h"
#include "lpips.h"
#include "optim.h"
#include "vqgan.h"

typedef struct {
    double lr;               /* 3e-4 */
    long lr_cosine_steps;    /* > 0: lr * (1 + cos(pi * step / this)) / 2, then 0 */
    double l1_weight;        /* 4 */
    double image_gan_weight; /* 1 */
    double video_gan_weight; /* 1 */
    double gan_feat_weight;  /* 4 (the reference run) */
    double perceptual_weight;/* LPIPS weight (the reference run: 4); needs `lpips` */
    const lpips *lpips;      /* LPIPS weights, or NULL: no perceptual term */
    long disc_start;         /* step from which the GAN terms and D train */
    double grad_clip;        /* 1.0; 0 = off */
    double commit_beta;      /* 0.25 */
    int update_codebook;     /* 1: EMA update and restarts (training) */
    codebook_ema_params ema;
    uint64_t seed;
} vq_train_opts;

vq_train_opts vq_train_opts_default(void);

typedef struct {
    double recon, commit;       /* l1_weight * L1 and beta * MSE */
    double perceptual;          /* perceptual_weight * LPIPS of the slices */
    double g_image, g_video;    /* -mean(logits) of the fakes */
    double g_feat;              /* weighted feature matching */
    double d_image, d_video;    /* hinge losses */
    double loss;                /* the generator's total */
    double perplexity, grad_norm;
    double lr;                  /* the learning rate of this step */
    int codes_used, restarted, gan_on;
} vq_step_stats;

typedef struct {
    vqgan *m;               /* not owned */
    vq_train_opts o;
    adam_state opt_g, opt_d;
    nn_ctx ctx;
    long step;              /* steps done */
    int codebook_ready;     /* 0: the next batch initialises the codebook */
    nn_tensor *recon;       /* the last reconstruction (in ctx) */
    /* scratch, sized on first use */
    int32_t *idx;
    float *cb_work;
    size_t idx_cap, cb_cap;
} vq_trainer;

int vq_trainer_init(vq_trainer *t, vqgan *m, const vq_train_opts *o);
void vq_trainer_free(vq_trainer *t);

/* The generator's forward and backward on one batch x (N,Ci,D,H,W) (and
 * the one-hot seg (N,L,D,H,W) for a SPADE decoder, else NULL): gradients
 * ACCUMULATE into the generator's parameters. Leaves the reconstruction
 * and the frames in t->ctx for the discriminator. */
int vq_trainer_gen_backward(vq_trainer *t, const float *x, const float *seg, int N, int D, int H,
                            int W, vq_step_stats *st);
/* One full step: zero, generator backward, clip, Adam; then the
 * discriminator's. */
int vq_trainer_step(vq_trainer *t, const float *x, const float *seg, int N, int D, int H, int W,
                    vq_step_stats *st);

/* Checkpoint with the optimiser state (train_state.* tensors, ignored by
 * model loaders) and step, seed, codebook state in the metadata; extra
 * metadata (may be NULL) is added. Atomic. */
int vq_trainer_save(const vq_trainer *t, const char *path, const ckpt_meta *extra);
/* Restore the optimiser state and step from a checkpoint written by
 * vq_trainer_save (the model itself comes from vqgan_load). */
int vq_trainer_resume(vq_trainer *t, const char *path);

#endif
