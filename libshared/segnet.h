/* The segmenter of the paper's Dice protocol: the reference 3D UNet
 * (Med-LSDM u_net/RecursiveUnet3D.py, UNet3D) on the nn engine.
 *
 * num_downs + 1 levels; level l has F = filters * 2^l channels. Every
 * level contracts with two (conv k3 p1 -> InstanceNorm3d (no affine, eps
 * 1e-5) -> LeakyReLU 0.01); below level 0 it starts with MaxPool3d(2).
 * The levels above the innermost then run the level below, whose output is
 * cat([its input, ConvTranspose3d k2 s2 of its result]) (the skip), and
 * expand with two (conv k3 p1 -> LeakyReLU); level 0 ends in a 1x1x1 conv
 * to the classes (logits). D, H and W must be multiples of 2^num_downs.
 *
 * Parameters are named as the PyTorch state_dict of UNet3D, e.g.
 * model.model.0.0.weight (level 0's first conv),
 * model.model.2.model.1.0.weight (level 1's first conv),
 * model.model.2.model.6.weight (level 1's transposed conv),
 * model.model.5.weight (the final 1x1x1 conv), so that a converted
 * PyTorch checkpoint loads by identity. */
#ifndef LSDM_SEGNET_H
#define LSDM_SEGNET_H

#include <stdint.h>

#include "checkpoint.h"
#include "nn.h"

#define SEGNET_MAX_DOWNS 6

typedef struct {
    int in_channels;   /* image channels (1) */
    int classes;       /* output classes, background included */
    int filters;       /* initial_filter_size: 64 (reference), 16 (tiny) */
    int num_downs;     /* poolings (3) */
} segnet_config;

/* `reference` (64 filters) or `tiny` (16 filters), 3 downs, 1 channel,
 * `classes` classes. -1 with lsdm_err for another name. */
int segnet_config_named(segnet_config *cfg, const char *name, int classes);
/* `key = value` text (in_channels, classes, filters, num_downs) over cfg. */
int segnet_config_parse(segnet_config *cfg, const char *text);
/* A name or a config file (parsed over `reference`). */
int segnet_config_load(segnet_config *cfg, const char *name_or_path, int classes);
/* The config as text (parseable); static buffer. */
const char *segnet_config_text(const segnet_config *cfg);
int segnet_config_check(const segnet_config *cfg);

typedef struct {
    nn_conv c1, c2;       /* contract (every level) */
    nn_groupnorm n1, n2;  /* InstanceNorm3d: one group per channel, no parameters */
    nn_conv c3, c4;       /* expand (all but the innermost) */
    nn_convt up;          /* to the level above (all but level 0) */
} segnet_level;

typedef struct {
    segnet_config cfg;
    nn_params ps;
    segnet_level lv[SEGNET_MAX_DOWNS + 1];
    nn_conv final;        /* level 0: 1x1x1 to the classes */
} segnet;

/* Build cfg with PyTorch's default init (uniform +-1/sqrt(fan_in)) drawn
 * from Philox(seed). */
int segnet_init(segnet *m, const segnet_config *cfg, uint64_t seed);
void segnet_free(segnet *m);
size_t segnet_param_count(const segnet *m);

/* x (N,in_channels,D,H,W) -> logits (N,classes,D,H,W), recording the
 * backward when c records. NULL on failure (lsdm_err). */
nn_tensor *segnet_forward(nn_ctx *c, const segnet *m, nn_tensor *x);

/* Views of every tensor for checkpoint_save/load (caller frees the array). */
ckpt_param *segnet_ckpt_params(const segnet *m, int *count);

/* The "model" metadata value that marks a segmenter checkpoint. */
#define SEGNET_MODEL_TAG "segnet-unet3d"

/* A segmenter from a checkpoint written by seg-train (its "model" and
 * "config" metadata), or with `config` given (a name, file) from a
 * converted PyTorch state dict of `classes` classes. A checkpoint of
 * another model is an error naming it. meta (may be NULL) gets the
 * file's metadata. */
int segnet_load(segnet *m, const char *path, const char *config, int classes, ckpt_meta *meta);

/* ---- intensity normalisation (per volume, per channel) ---- */

enum { SEGNET_NORM_MINMAX, SEGNET_NORM_ZSCORE, SEGNET_NORM_NONE };
/* "minmax", "zscore", "none" -> SEGNET_NORM_*; -1 with lsdm_err. */
int segnet_norm_parse(const char *s);
const char *segnet_norm_name(int mode);
/* x (C, S) in place: minmax to [-1,1] (a constant channel becomes -1),
 * zscore to mean 0 and standard deviation 1 (a constant one to 0), or
 * nothing. A NaN or Inf is an error (before anything changes). *pad gets
 * the smallest value after normalisation (what padding uses). */
int segnet_normalize(float *x, int C, size_t S, int mode, float *pad);

/* ---- sliding-window inference (nnU-Net's) ---- */

typedef struct {
    int tile[3];      /* window (multiples of 2^num_downs) */
    double overlap;   /* fraction of the window shared with the next, in [0,1) */
    float pad_value;  /* the image value of voxels padded outside the volume */
} segnet_window;

/* Softmax probabilities prob (classes, D,H,W) of the normalised image x
 * (in_channels, D,H,W): windows of w->tile placed evenly with at least
 * the overlap, each window's probabilities weighted by a Gaussian (sigma
 * 1/8 of the window, centred) and averaged; axes shorter than the window
 * are padded with pad_value and cropped back. progress (may be NULL) is
 * called after each window. */
int segnet_predict(const segnet *m, const segnet_window *w, const float *x, const int dim[3],
                   float *prob, void (*progress)(long done, long total));

/* Class of the largest probability per voxel (the first on ties). */
void segnet_argmax(uint8_t *lab8, int32_t *lab32, const float *prob, int K, size_t S);

#endif
