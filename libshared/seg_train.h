/* Training the segmenter (segnet.h) as the reference (Med-LSDM
 * train/train_unet.py): Adam on DC_and_CE_loss = cross-entropy + soft
 * Dice of the softmax (batch Dice, background left out, smooth 1e-5:
 * dice_params_reference), here with global gradient norm clipping, an
 * optional cosine learning-rate decay, and nnU-Net's patch sampling:
 *
 *   seg_data_add(&set, img, lab, ...);        // normalised volumes + labels
 *   seg_trainer_init(&t, &cfg, &opts);
 *   for each step:
 *       seg_sample_batch(&set, &samp, seed, t.step, N, x, y);
 *       seg_trainer_step(&t, x, y, N, patch, &st);
 *   seg_trainer_save(&t, path, &meta);
 *
 * Every random choice of step s (volume, foreground or not, position,
 * flips) of sample n comes from Philox(lsdm_rng_derive(seed, s, ...),
 * stream n), so a resumed run continues bit-identically. */
#ifndef LSDM_SEG_TRAIN_H
#define LSDM_SEG_TRAIN_H

#include <stdint.h>

#include "optim.h"
#include "segnet.h"

/* ---- the training volumes ---- */

typedef struct {
    float *x;        /* (C,D,H,W) normalised image */
    int32_t *y;      /* (D,H,W) class ids */
    int dim[3];
    float pad;       /* image value outside the volume */
    int32_t **loc;   /* [K] voxel indices of class k (k >= 1) */
    int64_t *nloc;   /* [K] */
} seg_volume;

typedef struct {
    seg_volume *v;
    int n, C, K;
} seg_data;

/* Take ownership of x and y (malloc'ed) as the next volume; index the
 * voxels of every foreground class. A label outside 0..K-1 is an error. */
int seg_data_add(seg_data *s, float *x, int32_t *y, const int dim[3], float pad);
void seg_data_free(seg_data *s);

typedef struct {
    int patch[3];       /* D,H,W */
    double fg_prob;     /* probability that a patch centres on a foreground voxel (1/3) */
    int flip[3];        /* axes flipped at random */
} seg_sampler;

/* Patches for step `step`: x (N,C,patch), y (N,patch). A foreground patch
 * picks a class present in the volume at random (nnU-Net v2's), then a
 * voxel of it, and centres on it (clipped to the volume); the others lie
 * anywhere. Voxels outside the volume are padded (image: its pad, label 0). */
void seg_sample_batch(const seg_data *s, const seg_sampler *p, uint64_t seed, long step, int N,
                      float *x, int32_t *y);

/* ---- the trainer ---- */

typedef struct {
    double lr;            /* Adam (0.9, 0.999) */
    long cosine_steps;    /* > 0: lr * (1 + cos(pi * step / this)) / 2 (floored at 0) */
    double grad_clip;     /* global norm; 0 = off */
    uint64_t seed;        /* init */
} seg_train_opts;

typedef struct {
    double loss, ce, dice_loss;  /* dice_loss: the reference's -mean Dice (-1 is perfect) */
    double grad_norm, lr;
} seg_step_stats;

typedef struct {
    segnet m;
    seg_train_opts o;
    adam_state opt;
    nn_ctx ctx;
    long step;
    double *dwork;
    size_t dwork_n;
} seg_trainer;

int seg_trainer_init(seg_trainer *t, const segnet_config *cfg, const seg_train_opts *o);
/* Model, Adam moments and step from a checkpoint of seg_trainer_save;
 * o gives the options (the caller takes them from the metadata). meta
 * (may be NULL) receives the file's metadata. */
int seg_trainer_resume(seg_trainer *t, const char *path, const seg_train_opts *o, ckpt_meta *meta);
void seg_trainer_free(seg_trainer *t);

/* The learning rate of the next step. */
double seg_trainer_lr(const seg_trainer *t);
/* The loss of x (N,C,dim) against y (N,dim), gradients ACCUMULATED into
 * the weights' grads (times scale). */
int seg_trainer_backward(seg_trainer *t, const float *x, const int32_t *y, int N, const int dim[3],
                         float scale, seg_step_stats *st);
/* Zero grads, backward, clip, Adam, step + 1. A non-finite loss or
 * gradient is an error before anything changes. */
int seg_trainer_step(seg_trainer *t, const float *x, const int32_t *y, int N, const int dim[3],
                     seg_step_stats *st);

/* The model (its state_dict names) with "model", "config", "step",
 * "adam_step" metadata plus extra (may be NULL), and the Adam moments as
 * train_state.* tensors; atomic. */
int seg_trainer_save(const seg_trainer *t, const char *path, const ckpt_meta *extra);

#endif
