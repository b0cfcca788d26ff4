/* Gaussian diffusion: the cosine schedule, q_sample, the DDPM and DDIM
 * reverse steps and classifier-free guidance (diffusion.h). Coefficients
 * in double from the schedule; each element is computed in double and
 * rounded once to float. */
#include "diffusion.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

int diffusion_schedule_init(diffusion_schedule *s, int T) {
    memset(s, 0, sizeof *s);
    if (T < 1 || T > DIFFUSION_MAX_STEPS)
        return lsdm_err("%d timesteps: the schedule takes 1 to %d", T, DIFFUSION_MAX_STEPS);
    double *f = malloc((size_t)(T + 1) * sizeof *f);
    s->betas = malloc((size_t)T * sizeof(double));
    s->alphas_cumprod = malloc((size_t)T * sizeof(double));
    s->alphas_cumprod_prev = malloc((size_t)T * sizeof(double));
    if (!f || !s->betas || !s->alphas_cumprod || !s->alphas_cumprod_prev) {
        free(f);
        diffusion_schedule_free(s);
        return lsdm_err("out of memory for a schedule of %d steps", T);
    }
    s->T = T;
    /* cosine_beta_schedule(T, s = 0.008) in the reference's order of
     * operations: f(x) = cos(((x / T) + s) / (1 + s) * pi * 0.5)^2 / f(0),
     * beta_t = 1 - f(t+1) / f(t), clipped to [0, 0.9999] */
    const double sh = 0.008;
    for (int i = 0; i <= T; i++) {
        double c = cos(((double)i / T + sh) / (1 + sh) * M_PI * 0.5);
        f[i] = c * c;
    }
    for (int i = T; i >= 0; i--) f[i] /= f[0];
    double ac = 1;
    for (int i = 0; i < T; i++) {
        double b = 1 - f[i + 1] / f[i];
        s->betas[i] = b < 0 ? 0 : b > 0.9999 ? 0.9999 : b;
        s->alphas_cumprod_prev[i] = ac;
        ac *= 1 - s->betas[i];
        s->alphas_cumprod[i] = ac;
    }
    free(f);
    return 0;
}

void diffusion_schedule_free(diffusion_schedule *s) {
    free(s->betas);
    free(s->alphas_cumprod);
    free(s->alphas_cumprod_prev);
    memset(s, 0, sizeof *s);
}

void diffusion_q_sample(float *xt, const float *x0, const float *noise, size_t n,
                        const diffusion_schedule *s, int t) {
    double a = sqrt(s->alphas_cumprod[t]), b = sqrt(1 - s->alphas_cumprod[t]);
    #pragma omp parallel for if (n > 65536)
    for (size_t i = 0; i < n; i++) xt[i] = (float)(a * x0[i] + b * noise[i]);
}

int diffusion_timesteps(int *out, int steps, const diffusion_schedule *s) {
    int T = s->T;
    if (steps < 1 || steps > T)
        return lsdm_err("%d sampling steps: the model has %d timesteps (1 to %d steps)", steps, T, T);
    /* t_k = round(k (T-1) / (steps-1)), halves up, in exact integers;
     * spacing >= 1, so they are distinct; listed from k = steps-1 down */
    for (int i = 0; i < steps; i++) {
        long long k = steps - 1 - i, den = steps - 1;
        out[i] = den ? (int)((2 * k * (T - 1) + den) / (2 * den)) : T - 1;
    }
    return 0;
}

static double clamp1(double v) { return v < -1 ? -1 : v > 1 ? 1 : v; }

void diffusion_ddpm_step(float *x_prev, const float *xt, const float *eps, const float *noise,
                         size_t n, const diffusion_schedule *s, int t, int clip) {
    double ab = s->alphas_cumprod[t], abp = s->alphas_cumprod_prev[t], beta = s->betas[t];
    /* predict_start_from_noise, q_posterior and p_sample's noise term */
    double r = sqrt(1 / ab), rm1 = sqrt(1 / ab - 1);
    double c1 = beta * sqrt(abp) / (1 - ab), c2 = (1 - abp) * sqrt(1 - beta) / (1 - ab);
    double var = beta * (1 - abp) / (1 - ab);
    double sd = t > 0 && noise ? exp(0.5 * log(var < 1e-20 ? 1e-20 : var)) : 0;
    #pragma omp parallel for if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        double x0 = r * xt[i] - rm1 * eps[i];
        if (clip) x0 = clamp1(x0);
        double m = c1 * x0 + c2 * xt[i];
        x_prev[i] = (float)(sd ? m + sd * noise[i] : m);
    }
}

void diffusion_ddim_step(float *x_prev, const float *xt, const float *eps, const float *noise,
                         size_t n, const diffusion_schedule *s, int t, int t_prev, double eta,
                         int clip) {
    double ab = s->alphas_cumprod[t], abp = t_prev >= 0 ? s->alphas_cumprod[t_prev] : 1.0;
    double sa = sqrt(ab), sb = sqrt(1 - ab), sap = sqrt(abp);
    double sigma = eta * sqrt((1 - abp) / (1 - ab)) * sqrt(1 - ab / abp);
    double dir2 = 1 - abp - sigma * sigma;
    double dir = dir2 > 0 ? sqrt(dir2) : 0;
    if (!noise) sigma = 0;
    #pragma omp parallel for if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        double e = eps[i], x0 = (xt[i] - sb * e) / sa;
        if (clip) {
            x0 = clamp1(x0);
            e = (xt[i] - sa * x0) / sb; /* the eps that the clipped x0 implies */
        }
        double v = sap * x0 + dir * e;
        x_prev[i] = (float)(sigma > 0 ? v + sigma * noise[i] : v);
    }
}

void diffusion_guide(float *out, const float *cond, const float *uncond, size_t n, double S, int mode) {
    const float *base = mode == DIFFUSION_GUIDE_REFERENCE ? cond : uncond;
    #pragma omp parallel for if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        double c = cond[i], u = uncond[i];
        out[i] = (float)(base[i] + S * (c - u));
    }
}

int diffusion_windows_init(diffusion_windows *win, int depth, int window) {
    memset(win, 0, sizeof *win);
    if (depth < 1 || window < 1) return lsdm_err("depth %d in windows of %d slices", depth, window);
    int D = depth <= window ? depth : window, half = D / 2 > 1 ? D / 2 : 1;
    int n = D == depth ? 1 : (depth - D + half - 1) / half + 1;
    win->n = n, win->D = D, win->depth = depth;
    win->off = malloc((size_t)n * sizeof(int));
    win->w = malloc((size_t)n * D * sizeof(float));
    win->wsum = calloc((size_t)depth, sizeof(float));
    if (!win->off || !win->w || !win->wsum) {
        diffusion_windows_free(win);
        return lsdm_err("out of memory");
    }
    for (int i = 0; i < n; i++) /* round(i (depth - D) / (n - 1)) */
        win->off[i] = n > 1 ? (int)((2LL * i * (depth - D) + (n - 1)) / (2LL * (n - 1))) : 0;
    for (int i = 0; i < n; i++) {
        /* slices shared with the previous and the next window */
        int rb = i > 0 ? win->off[i - 1] + D - win->off[i] : 0;
        int ra = i < n - 1 ? win->off[i] + D - win->off[i + 1] : 0;
        for (int p = 0; p < D; p++) {
            double w = 1;
            if (rb > 0 && p < rb) w = (p + 0.5) / rb;
            if (ra > 0 && D - 1 - p < ra) w = fmin(w, (D - 1 - p + 0.5) / ra);
            win->w[(size_t)i * D + p] = (float)w;
            win->wsum[win->off[i] + p] += (float)w;
        }
    }
    return 0;
}

void diffusion_windows_free(diffusion_windows *win) {
    free(win->off);
    free(win->w);
    free(win->wsum);
    memset(win, 0, sizeof *win);
}

void diffusion_windows_add(const diffusion_windows *win, int i, float *eps, const float *e, int C,
                           size_t plane) {
    int D = win->D;
    const float *w = win->w + (size_t)i * D;
    #pragma omp parallel for collapse(2) if (plane * D > 65536)
    for (int c = 0; c < C; c++)
        for (int d = 0; d < D; d++) {
            float *dst = eps + ((size_t)c * win->depth + win->off[i] + d) * plane;
            const float *src = e + ((size_t)c * D + d) * plane;
            for (size_t k = 0; k < plane; k++) dst[k] += w[d] * src[k];
        }
}

void diffusion_windows_finish(const diffusion_windows *win, float *eps, int C, size_t plane) {
    #pragma omp parallel for collapse(2) if (plane * win->depth > 65536)
    for (int c = 0; c < C; c++)
        for (int d = 0; d < win->depth; d++) {
            float *p = eps + ((size_t)c * win->depth + d) * plane;
            for (size_t k = 0; k < plane; k++) p[k] /= win->wsum[d];
        }
}
