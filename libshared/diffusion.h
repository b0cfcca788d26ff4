/* Gaussian diffusion in the latent space (Med-LSDM ddpm/semantic_diffusion.py
 * SemanticGaussianDiffusion): the cosine schedule, noising for training,
 * and the DDPM and DDIM reverse steps for sampling. Everything is computed
 * in double from the schedule; tensors are float.
 *
 * Timesteps are 0..T-1 as in the reference (t = 0 is one noising step).
 * The reference samples with DDPM over all T steps, clipping the x0
 * prediction to [-1,1]; DDIM (Song et al. 2021) runs any subsequence of
 * them, eta = 0 deterministic, eta = 1 DDPM-like. */
#ifndef LSDM_DIFFUSION_H
#define LSDM_DIFFUSION_H

#include <stddef.h>

#define DIFFUSION_MAX_STEPS 100000

typedef struct {
    int T;                      /* training timesteps (reference: 500) */
    double *betas;              /* (T) cosine schedule, s = 0.008, clipped to 0.9999 */
    double *alphas_cumprod;     /* (T) abar_t */
    double *alphas_cumprod_prev;/* (T) abar_{t-1}, 1 at t = 0 */
} diffusion_schedule;

/* The reference's cosine_beta_schedule(T) and its products. 0, or -1 with
 * lsdm_err (T out of 1..DIFFUSION_MAX_STEPS, out of memory). */
int diffusion_schedule_init(diffusion_schedule *s, int T);
void diffusion_schedule_free(diffusion_schedule *s);

/* x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise, n elements. */
void diffusion_q_sample(float *xt, const float *x0, const float *noise, size_t n,
                        const diffusion_schedule *s, int t);

/* The step subsequence of a sampler with `steps` steps, descending from
 * T-1 to 0 (evenly spaced, rounded; DDPM with steps == T: every step).
 * out has room for `steps` ints. -1 with lsdm_err unless 1 <= steps <= T. */
int diffusion_timesteps(int *out, int steps, const diffusion_schedule *s);

/* One reverse step from x_t (at t) to x_prev (at t_prev, -1 for the last
 * step: x_prev is then x0), given the model's eps. clip: clamp the x0
 * prediction to [-1,1] first (the reference does). noise: n standard
 * normals (used where the step is stochastic; may be NULL when eta = 0).
 *   DDPM (the reference p_sample, t_prev = t - 1): posterior mean of
 *     q(x_{t-1} | x_t, x0) plus exp(0.5 log posterior variance) * noise,
 *     no noise at t = 0;
 *   DDIM: x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev - sigma^2) eps
 *     + sigma noise, sigma = eta sqrt((1 - abar_prev)/(1 - abar_t))
 *     sqrt(1 - abar_t/abar_prev); with the clip, eps is recomputed from
 *     the clipped x0 (as in the DDIM paper's code). */
void diffusion_ddpm_step(float *x_prev, const float *xt, const float *eps, const float *noise,
                         size_t n, const diffusion_schedule *s, int t, int clip);
void diffusion_ddim_step(float *x_prev, const float *xt, const float *eps, const float *noise,
                         size_t n, const diffusion_schedule *s, int t, int t_prev, double eta,
                         int clip);

/* Classifier-free guidance of eps (n elements), in place into out:
 *   standard:  out = uncond + S (cond - uncond)   (S = 1: cond alone)
 *   reference: out = cond + S (cond - uncond)     (Unet3D_SPADE
 *              forward_with_cond_scale: S = 0 is cond alone) */
enum { DIFFUSION_GUIDE_STANDARD, DIFFUSION_GUIDE_REFERENCE };
void diffusion_guide(float *out, const float *cond, const float *uncond, size_t n, double S, int mode);

/* Depth windows: a latent deeper than the model's trained depth is
 * denoised as overlapping windows of `window` slices (one window of the
 * whole depth if it is not deeper), whose eps are blended at every step.
 * Windows start about half a window apart, evenly spread, the last one
 * ending at the last slice; each window's weight ramps linearly over its
 * overlap with each neighbour (as vqtile's blending), so that the fused
 * eps changes smoothly across window borders. Blend: eps = sum_i w_i eps_i
 * / wsum over the windows covering a slice. */
typedef struct {
    int n, D;        /* windows, their depth (slices) */
    int depth;       /* the volume's */
    int *off;        /* (n) first slice of each window */
    float *w;        /* (n, D) weight of each slice of each window, > 0 */
    float *wsum;     /* (depth) the weights' sum over the windows per slice */
} diffusion_windows;

/* 0, or -1 with lsdm_err (sizes < 1, out of memory). */
int diffusion_windows_init(diffusion_windows *w, int depth, int window);
void diffusion_windows_free(diffusion_windows *w);
/* The blend: eps (C, depth, plane) zeroed, then eps += w_i e for each
 * window i's e (C, D, plane), then eps /= wsum. One window: eps = e. */
void diffusion_windows_add(const diffusion_windows *w, int i, float *eps, const float *e, int C,
                           size_t plane);
void diffusion_windows_finish(const diffusion_windows *w, float *eps, int C, size_t plane);

#endif
