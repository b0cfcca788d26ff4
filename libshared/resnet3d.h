/* The MedicalNet 3D ResNet (Chen, Ma, Zheng, "Med3D", 2019; the Med-LSDM
 * reference evaluation/resnet3D.py) as a feature extractor for the 3D-FID:
 *
 *   conv1 7x7x7 s2 p3 (no bias) - bn1 - relu - maxpool k3 s2 p1
 *   layer1 (w)      stride 1
 *   layer2 (2w)     stride 2
 *   layer3 (4w)     stride 1, dilation 2
 *   layer4 (8w)     stride 1, dilation 4
 *   global average pooling -> (N, 8w * expansion)
 *
 * w = width (MedicalNet: 64, features 512 or 2048). resnet10/18/34 use
 * BasicBlocks ([1,1,1,1], [2,2,2,2], [3,4,6,3]), resnet50 Bottlenecks
 * ([3,4,6,3], expansion 4). The first block of a layer whose stride or
 * channel count changes has a shortcut: type A is the strided identity
 * padded with zero channels (MedicalNet's downsample_basic_block, no
 * parameters), type B a 1x1x1 conv + BatchNorm (downsample.0, .1).
 * BatchNorm runs with its running statistics (inference only).
 *
 * Parameter names are MedicalNet's state_dict without "module."
 * (conv1.weight, bn1.running_mean, layer1.0.conv1.weight,
 * layer2.0.downsample.0.weight, ...), so converted weights load by name
 * (tools/contrib/convert_medicalnet.py); the segmentation head conv_seg.*
 * is not part of the model and is ignored when a file holds it. */
#ifndef LSDM_RESNET3D_H
#define LSDM_RESNET3D_H

#include <stdint.h>

#include "nn.h"

typedef struct {
    int depth;     /* 10, 18, 34 or 50 */
    char shortcut; /* 'A' or 'B' */
    int width;     /* channels of layer1 (MedicalNet: 64) */
} resnet3d_config;

typedef struct {
    nn_conv conv1, conv2, conv3;     /* conv3: Bottleneck only */
    nn_batchnorm bn1, bn2, bn3;
    nn_conv down;                    /* shortcut B */
    nn_batchnorm down_bn;
    int has_down;                    /* 0 none, 'A' or 'B' */
    int stride, dilation, planes_out;
} resnet3d_block;

typedef struct {
    resnet3d_config cfg;
    nn_params params;
    nn_conv conv1;
    nn_batchnorm bn1;
    resnet3d_block *blocks;
    int nblocks;
    int feature_dim;                 /* 8 * width * expansion */
} resnet3d;

/* "resnet10".."resnet50" (or "10".."50") -> depth. 0 ok, -1 with lsdm_err. */
int resnet3d_parse_arch(const char *s, int *depth);
/* 0 if cfg names a known network, else -1 with lsdm_err. */
int resnet3d_config_check(const resnet3d_config *cfg);

/* Build the layers of cfg (weights zero, BatchNorm identity). */
int resnet3d_init(resnet3d *m, const resnet3d_config *cfg);
/* The fixed-seed network: every conv kaiming-normal (fan_out, as
 * MedicalNet's init: std = sqrt(2 / (Cout k^3))) from Philox(seed, stream
 * = parameter index); BatchNorm weight 1, bias 0, mean 0, variance 1. */
void resnet3d_init_random(resnet3d *m, uint64_t seed);
/* The configuration a weights file declares in its metadata ("arch",
 * "shortcut", "width"): fields present overwrite cfg; *found gets a bit
 * mask of those present (1 arch, 2 shortcut, 4 width). */
int resnet3d_file_config(const char *path, resnet3d_config *cfg, int *found);
/* Load weights by name (libshared/checkpoint.h: a missing or misshapen
 * tensor is an error naming it); conv_seg.* tensors are skipped. */
int resnet3d_load(resnet3d *m, const char *path);
void resnet3d_free(resnet3d *m);

/* feat (N, feature_dim) <- the network on x (N, 1, D, H, W). x is read,
 * not consumed. Returns 0, or -1 with lsdm_err (too small a volume, out
 * of memory). Memory comes from c (not recording) and is given back. */
int resnet3d_features(nn_ctx *c, const resnet3d *m, nn_tensor *x, float *feat);

#endif
