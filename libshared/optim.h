/* Optimisers and their helpers, numerically as PyTorch:
 * Adam / AdamW (torch.optim.Adam / AdamW, amsgrad off), global gradient
 * norm clipping (torch.nn.utils.clip_grad_norm_, 2-norm) and an
 * exponential moving average of weights (the reference EMA class).
 *
 * Parameters are flat float arrays. A model whose tensors live in separate
 * buffers calls adam_update once per tensor with the tensor's offset into
 * the optimiser state, between one adam_begin_step and the next:
 *
 *   adam_begin_step(&opt);
 *   for each tensor i: adam_update(&opt, w[i], g[i], n[i], off[i]);
 *
 * Gradient accumulation (micro-batches): every backward ACCUMULATES (+=)
 * into the gradients, so zero them once, run K micro-batches with the loss
 * backward given scale 1/K (or call optim_scale(g, n, 1.0f/K) once after),
 * then clip and step once:
 *
 *   memset(grads, 0, ...);
 *   for (k = 0; k < K; k++) { forward(mb k); loss_backward(..., 1.0f / K); backward(); }
 *   optim_clip_grad_norm(...);        // optional, on the accumulated grads
 *   adam_begin_step(&opt); adam_update(...);
 *   ema_update(...);                   // optional
 *
 * The result is the gradient of the mean loss over the K micro-batches,
 * i.e. one step on the K-times larger batch. */
#ifndef LSDM_OPTIM_H
#define LSDM_OPTIM_H

#include <stddef.h>

typedef struct {
    /* doubles, like the Python floats torch gets; cast to float where torch does */
    double lr;
    double beta1, beta2;  /* torch default (0.9, 0.999); the VQ-GAN uses (0.5, 0.9) */
    double eps;           /* added to sqrt(v_hat), as torch: 1e-8 */
    double weight_decay;  /* Adam: L2 added to the gradient; AdamW: decoupled */
    int decoupled;       /* 1: AdamW (w -= lr*wd*w before the update) */
} adam_config;

/* torch.optim.Adam defaults with the given lr (AdamW: weight decay 0.01). */
adam_config adam_config_default(double lr, int decoupled);

typedef struct {
    adam_config cfg;
    size_t n;      /* parameters in all */
    float *m, *v;  /* (n) first and second moments, owned */
    long step;     /* steps taken (torch's state['step']) */
} adam_state;

/* Zeroed moments for n parameters. Validates cfg (lr >= 0, betas in
 * [0,1), eps >= 0, weight decay >= 0). */
int adam_init(adam_state *s, const adam_config *cfg, size_t n);
void adam_free(adam_state *s);

/* Count one step (the bias corrections use the new count). */
void adam_begin_step(adam_state *s);
/* Update w[0,n) with gradient g[0,n) using moments at offset off.
 * Call after adam_begin_step; g is left unchanged. */
void adam_update(adam_state *s, float *w, const float *g, size_t n, size_t off);
/* Both for one flat buffer of all s->n parameters. */
void adam_step(adam_state *s, float *w, const float *g);

/* Global 2-norm over several gradient tensors, in double. */
double optim_grad_norm(float *const *g, const size_t *n, int count);
/* torch.nn.utils.clip_grad_norm_: total = global norm, coef =
 * max_norm / (total + 1e-6); if coef < 1 every gradient is multiplied by
 * it. Returns total (NaN/Inf pass through as in torch). */
double optim_clip_grad_norm(float *const *g, const size_t *n, int count, double max_norm);

/* g[0,n) *= s. */
void optim_scale(float *g, size_t n, float s);

/* Reference EMA: ema = decay * ema + (1 - decay) * w, elementwise (the
 * reference copies w into ema during its first step_start_ema steps:
 * memcpy, not this). */
void ema_update(float *ema, const float *w, size_t n, double decay);

#ifdef LSDM_CUDA
/* CUDA versions (kernels/cuda/optim.cu): w, g, ema and the moments are
 * device memory (adam_init_cuda allocates s->m, s->v with cudaMalloc;
 * free with adam_free_cuda). dwork: 1 double of device memory. Return 0,
 * or -1 with lsdm_err on a CUDA error. */
int adam_init_cuda(adam_state *s, const adam_config *cfg, size_t n);
void adam_free_cuda(adam_state *s);
int adam_update_cuda(adam_state *s, float *w, const float *g, size_t n, size_t off);
int optim_grad_norm_cuda(double *norm, double *dwork, float *const *g, const size_t *n, int count);
int optim_clip_grad_norm_cuda(double *norm, double *dwork, float *const *g, const size_t *n, int count,
                              double max_norm);
int optim_scale_cuda(float *g, size_t n, float s);
int ema_update_cuda(float *ema, const float *w, size_t n, double decay);
#endif

#endif
