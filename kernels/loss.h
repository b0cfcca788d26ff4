/* Training losses: L1, MSE, hinge GAN (discriminator and generator),
 * cross-entropy over channels and soft Dice over channels.
 *
 * Forward returns the scalar loss in double (accumulated in double, also
 * for float inputs). Backward writes the gradient with respect to the
 * prediction (logits for cross-entropy and Dice) times `scale` and
 * ACCUMULATES it (+=) into the gradient buffer: callers zero it first.
 * `scale` is dLtotal/dloss: the loss weight (e.g. 4 for the VQ-GAN's L1),
 * 1/K for gradient accumulation over K micro-batches, or their product.
 *
 * Every function also exists in double as NAME_f64 (same source text,
 * kernels/cpu/loss_impl.h), the reference for finite differences.
 * At kinks (|x| at 0, relu at 0) the gradient is 0, as in PyTorch. */
#ifndef LSDM_LOSS_H
#define LSDM_LOSS_H

#include <stddef.h>
#include <stdint.h>

/* mean |pred - target| over n elements. */
double l1_loss_forward(const float *pred, const float *target, size_t n);
void l1_loss_backward(float *dpred, const float *pred, const float *target, size_t n, float scale);

/* mean (pred - target)^2 over n elements. */
double mse_loss_forward(const float *pred, const float *target, size_t n);
void mse_loss_backward(float *dpred, const float *pred, const float *target, size_t n, float scale);

/* Hinge GAN losses on discriminator logits.
 * Discriminator: mean(relu(1 - real)) + mean(relu(1 + fake)), real has nr
 * elements, fake nf. (The reference VQ-GAN halves this sum: pass scale 0.5
 * and multiply the returned value by 0.5.) Either gradient may be NULL.
 * Generator: -mean(fake). */
double hinge_d_loss_forward(const float *real, size_t nr, const float *fake, size_t nf);
void hinge_d_loss_backward(float *dreal, float *dfake, const float *real, size_t nr,
                           const float *fake, size_t nf, float scale);
double hinge_g_loss_forward(const float *fake, size_t n);
void hinge_g_loss_backward(float *dfake, size_t n, float scale);

/* Cross-entropy over the channel axis: logits (N,C,S), integer targets
 * (N,S) in [0,C); mean over the N*S positions of -log softmax(logits)[t].
 * Forward returns NAN if a target is out of range (check first with
 * loss_check_targets); backward skips such positions. */
double cross_entropy_forward(const float *logits, const int32_t *target, int N, int C, long S);
void cross_entropy_backward(float *dlogits, const float *logits, const int32_t *target,
                            int N, int C, long S, float scale);

/* 0 if every target is in [0,C), else -1 with lsdm_err naming the first bad one. */
int loss_check_targets(const int32_t *target, size_t n, int C);

/* Soft Dice of softmax(logits) (N,C,S) against the one-hot of integer
 * targets (N,S), as the reference segmentation code (nnU-Net's SoftDiceLoss
 * with softmax_helper). Per class c (and per sample unless batch_dice):
 *   I = sum p*g, P = sum p, G = sum g
 *   dc = (2 I + smooth_nom) / (P + G + smooth)
 * loss = -mean(dc) over the classes kept (class 0 dropped unless do_bg)
 * and, without batch_dice, over the samples: -1 is perfect. The reference
 * seg trainer uses {batch_dice 1, do_bg 0, smooth 1e-5, smooth_nom 1e-5}
 * (dice_params_reference). Add 1 for the "1 - Dice" form; gradients agree.
 * Workspace: dice_loss_workspace_size(N, C) doubles (per-class sums). */
typedef struct {
    int batch_dice;    /* 1: sums run over the batch too (one dc per class) */
    int do_bg;         /* 0: class 0 (background) left out of the mean */
    double smooth;     /* added to the denominator */
    double smooth_nom; /* added to the numerator */
} dice_params;

dice_params dice_params_reference(void);
size_t dice_loss_workspace_size(int N, int C);
/* Returns NAN if there is no class to average (C == 1 and !do_bg). */
double dice_loss_forward(double *work, const float *logits, const int32_t *target,
                         int N, int C, long S, const dice_params *p);
void dice_loss_backward(float *dlogits, double *work, const float *logits, const int32_t *target,
                        int N, int C, long S, const dice_params *p, float scale);

/* Double-precision twins (same arguments with double tensors). */
double l1_loss_forward_f64(const double *pred, const double *target, size_t n);
void l1_loss_backward_f64(double *dpred, const double *pred, const double *target, size_t n, double scale);
double mse_loss_forward_f64(const double *pred, const double *target, size_t n);
void mse_loss_backward_f64(double *dpred, const double *pred, const double *target, size_t n, double scale);
double hinge_d_loss_forward_f64(const double *real, size_t nr, const double *fake, size_t nf);
void hinge_d_loss_backward_f64(double *dreal, double *dfake, const double *real, size_t nr,
                               const double *fake, size_t nf, double scale);
double hinge_g_loss_forward_f64(const double *fake, size_t n);
void hinge_g_loss_backward_f64(double *dfake, size_t n, double scale);
double cross_entropy_forward_f64(const double *logits, const int32_t *target, int N, int C, long S);
void cross_entropy_backward_f64(double *dlogits, const double *logits, const int32_t *target,
                                int N, int C, long S, double scale);
double dice_loss_forward_f64(double *work, const double *logits, const int32_t *target,
                             int N, int C, long S, const dice_params *p);
void dice_loss_backward_f64(double *dlogits, double *work, const double *logits, const int32_t *target,
                            int N, int C, long S, const dice_params *p, double scale);

#ifdef LSDM_CUDA
/* CUDA versions (kernels/cuda/loss.cu): tensors are device pointers; the
 * loss goes to *loss (host), summed in double on the device in dwork
 * (LOSS_CUDA_WORK doubles of device memory). Return 0, or -1 with lsdm_err
 * on a CUDA error. Backward accumulates like the CPU. No Dice on CUDA yet:
 * its inputs are small enough to copy to the host. */
#define LOSS_CUDA_WORK 2
int l1_loss_forward_cuda(double *loss, double *dwork, const float *pred, const float *target, size_t n);
int l1_loss_backward_cuda(float *dpred, const float *pred, const float *target, size_t n, float scale);
int mse_loss_forward_cuda(double *loss, double *dwork, const float *pred, const float *target, size_t n);
int mse_loss_backward_cuda(float *dpred, const float *pred, const float *target, size_t n, float scale);
int hinge_d_loss_forward_cuda(double *loss, double *dwork, const float *real, size_t nr, const float *fake, size_t nf);
int hinge_d_loss_backward_cuda(float *dreal, float *dfake, const float *real, size_t nr,
                               const float *fake, size_t nf, float scale);
int hinge_g_loss_forward_cuda(double *loss, double *dwork, const float *fake, size_t n);
int hinge_g_loss_backward_cuda(float *dfake, size_t n, float scale);
/* *loss is NAN if a target is out of range. */
int cross_entropy_forward_cuda(double *loss, double *dwork, const float *logits, const int32_t *target,
                               int N, int C, long S);
int cross_entropy_backward_cuda(float *dlogits, const float *logits, const int32_t *target,
                                int N, int C, long S, float scale);
#endif

#endif
