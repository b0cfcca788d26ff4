/* Adam/AdamW, gradient clipping and EMA as PyTorch computes them; see optim.h. */
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

adam_config adam_config_default(double lr, int decoupled) {
    adam_config c = {.lr = lr, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                     .weight_decay = decoupled ? 0.01 : 0.0, .decoupled = decoupled};
    return c;
}

int adam_init(adam_state *s, const adam_config *cfg, size_t n) {
    memset(s, 0, sizeof *s);
    if (!(cfg->lr >= 0) || !(cfg->beta1 >= 0 && cfg->beta1 < 1) || !(cfg->beta2 >= 0 && cfg->beta2 < 1) ||
        !(cfg->eps >= 0) || !(cfg->weight_decay >= 0))
        return lsdm_err("adam: invalid settings (lr %g, betas %g,%g, eps %g, weight decay %g)",
                        cfg->lr, cfg->beta1, cfg->beta2, cfg->eps, cfg->weight_decay);
    s->cfg = *cfg;
    s->n = n;
    s->m = calloc(n ? n : 1, sizeof *s->m);
    s->v = calloc(n ? n : 1, sizeof *s->v);
    if (!s->m || !s->v) { adam_free(s); return lsdm_err("adam: out of memory for %zu parameters", n); }
    return 0;
}

void adam_free(adam_state *s) {
    free(s->m);
    free(s->v);
    memset(s, 0, sizeof *s);
}

void adam_begin_step(adam_state *s) { s->step++; }

/* torch's lerp: start + w*(end-start) for w < 0.5, else end - (end-start)*(1-w). */
static inline float lerpf_torch(float start, float end, float w) {
    return w < 0.5f ? start + w * (end - start) : end - (end - start) * (1.0f - w);
}

void adam_update(adam_state *s, float *w, const float *g, size_t n, size_t off) {
    const adam_config *c = &s->cfg;
    /* torch computes the scalars in Python double and the tensor ops in float. */
    double bc1 = 1.0 - pow(c->beta1, (double)s->step);
    double bc2 = 1.0 - pow(c->beta2, (double)s->step);
    float step_size = (float)(c->lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    float one_m_b1 = (float)(1.0 - c->beta1), one_m_b2 = (float)(1.0 - c->beta2);
    float beta2 = (float)c->beta2, eps = (float)c->eps, wd = (float)c->weight_decay;
    float decay = (float)(1.0 - c->lr * c->weight_decay);
    float *m = s->m + off, *v = s->v + off;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        if (c->weight_decay != 0) {
            if (c->decoupled) w[i] *= decay;
            else gi += wd * w[i];
        }
        m[i] = lerpf_torch(m[i], gi, one_m_b1);
        v[i] = v[i] * beta2 + one_m_b2 * gi * gi;
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        w[i] += (-step_size * m[i]) / denom; /* torch's addcdiv order */
    }
}

void adam_step(adam_state *s, float *w, const float *g) {
    adam_begin_step(s);
    adam_update(s, w, g, s->n, 0);
}

double optim_grad_norm(float *const *g, const size_t *n, int count) {
    double sum = 0;
    for (int t = 0; t < count; t++) {
        const float *x = g[t];
        double st = 0;
#pragma omp parallel for reduction(+ : st) schedule(static)
        for (size_t i = 0; i < n[t]; i++) st += (double)x[i] * x[i];
        sum += st;
    }
    return sqrt(sum);
}

double optim_clip_grad_norm(float *const *g, const size_t *n, int count, double max_norm) {
    double total = optim_grad_norm(g, n, count);
    float coef = (float)(max_norm / (total + 1e-6));
    /* torch multiplies by clamp(coef, max=1): NaN stays NaN, >= 1 is a no-op */
    float k = isnan(coef) ? coef : coef < 1.0f ? coef : 1.0f;
    if (k == 1.0f) return total;
    for (int t = 0; t < count; t++) optim_scale(g[t], n[t], k);
    return total;
}

void optim_scale(float *g, size_t n, float s) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) g[i] *= s;
}

void ema_update(float *ema, const float *w, size_t n, double decay) {
    float d = (float)decay, one_m = (float)(1.0 - decay);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) ema[i] = ema[i] * d + one_m * w[i];
}
