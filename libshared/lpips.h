/* LPIPS, the learned perceptual image distance (Zhang et al. 2018) with
 * VGG16 features, as the reference VQ-GAN's perceptual loss
 * (vq_gan_3d/model/lpips.py, from taming-transformers):
 *
 *   x, y (N,Ci,1,H,W), Ci 1 (broadcast to RGB) or 3
 *   -> ScalingLayer (v - shift) / scale, shift [-.030,-.088,-.188], scale [.458,.448,.450]
 *   -> VGG16 `features` up to relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
 *   -> per tap: unit norm over channels (eps 1e-10), (fx - fy)^2, 1x1 conv
 *      without bias to 1 channel (linK), spatial mean
 *   -> summed over the 5 taps: one value per sample, (N,1,1,1,1).
 *
 * Weights come from one safetensors file (tools/contrib/convert_lpips.py
 * makes it from lpips' vgg.pth and torchvision's vgg16 weights) with the
 * LPIPS module's state_dict names: scaling_layer.{shift,scale} (1,3,1,1),
 * net.sliceK.I.{weight,bias} (torchvision's feature index I: slice1 0,2;
 * slice2 5,7; slice3 10,12,14; slice4 17,19,21; slice5 24,26,28), 3x3
 * convs, and linK.model.1.weight (1,Ck,1,1). The channel widths are read
 * from the weights' shapes (64,128,256,512,512 for the real VGG16; the
 * tests use a narrower one). The weights are frozen: gradients flow only
 * into the images. */
#ifndef LSDM_LPIPS_H
#define LSDM_LPIPS_H

#include "nn.h"

#define LPIPS_CONVS 13
#define LPIPS_TAPS 5

typedef struct {
    nn_params ps;
    nn_param *shift, *scale;       /* (1,3,1,1) buffers */
    nn_conv conv[LPIPS_CONVS];     /* 3x3, padding 1 (zeros), bias */
    nn_param *lin[LPIPS_TAPS];     /* (1,Ck,1,1) */
    int chns[LPIPS_TAPS];          /* channel widths of the taps */
} lpips;

/* Load the weights of path (widths from its shapes). 0, or -1 with
 * lsdm_err naming the file and the first missing or misshapen tensor. */
int lpips_load(lpips *m, const char *path);
void lpips_free(lpips *m);

/* LPIPS(x, y) per sample, (N,1,1,1,1), a tensor of c. x and y (N,Ci,1,H,W),
 * same shape, Ci 1 or 3, images in [-1,1], H and W at least 16 (four 2x2
 * poolings). When c records, gradients reach x and y where they need them
 * (needs_grad), once the result's gradient is seeded and nn_backward runs.
 * NULL on error (c->failed, lsdm_err). */
nn_tensor *lpips_forward(nn_ctx *c, const lpips *m, nn_tensor *x, nn_tensor *y);

/* The mean over the batch of lpips_forward (the reference's
 * LPIPS(x, y).mean()), NAN on error. When c records it also seeds the
 * gradient with `scale` (dLtotal/dloss: the perceptual weight) so that
 * nn_backward adds scale * d mean / dx into x's gradient (and y's). */
double lpips_loss(nn_ctx *c, const lpips *m, nn_tensor *x, nn_tensor *y, float scale);

#endif
