// Adam/AdamW, gradient norm and EMA on CUDA: the same arithmetic as
// libshared/optim.c (scalars computed on the host in double, as torch),
// checked against it by tests/c/test_cuda_train.c.
#ifndef LSDM_CUDA
#define LSDM_CUDA 1 /* NVFLAGS do not carry CPPFLAGS: see the _cuda declarations */
#endif
#include <math.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "err.h"
#include "optim.h"
}
#include "loss_common.cuh"

extern "C" int adam_init_cuda(adam_state *s, const adam_config *cfg, size_t n) {
    // validate exactly as the CPU does, then swap host moments for device ones
    if (adam_init(s, cfg, 0) < 0) return -1;
    free(s->m);
    free(s->v);
    s->m = s->v = NULL;
    s->n = n;
    size_t bytes = (n ? n : 1) * sizeof(float);
    if (cudaMalloc((void **)&s->m, bytes) != cudaSuccess || cudaMalloc((void **)&s->v, bytes) != cudaSuccess ||
        cudaMemset(s->m, 0, bytes) != cudaSuccess || cudaMemset(s->v, 0, bytes) != cudaSuccess) {
        adam_free_cuda(s);
        return lsdm_err("adam: cannot allocate device moments for %zu parameters", n);
    }
    return 0;
}

extern "C" void adam_free_cuda(adam_state *s) {
    if (s->m) cudaFree(s->m);
    if (s->v) cudaFree(s->v);
    memset(s, 0, sizeof *s);
}

struct AdamStep {
    float *w, *m, *v; const float *g;
    float step_size, bc2_sqrt, one_m_b1, one_m_b2, beta2, eps, wd, decay;
    int decoupled;
    __device__ void operator()(size_t i) const {
        float gi = g[i];
        if (wd != 0) {
            if (decoupled) w[i] = __fmul_rn(w[i], decay);
            else gi = __fadd_rn(gi, __fmul_rn(wd, w[i]));
        }
        // torch's lerp: start + w*(end-start) for w < 0.5, else end - (end-start)*(1-w)
        float mi = m[i];
        mi = one_m_b1 < 0.5f ? __fadd_rn(mi, __fmul_rn(one_m_b1, __fsub_rn(gi, mi)))
                             : __fsub_rn(gi, __fmul_rn(__fsub_rn(gi, mi), __fsub_rn(1.0f, one_m_b1)));
        float vi = __fadd_rn(__fmul_rn(v[i], beta2), __fmul_rn(__fmul_rn(one_m_b2, gi), gi));
        m[i] = mi;
        v[i] = vi;
        float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2_sqrt), eps);
        w[i] = __fadd_rn(w[i], __fdiv_rn(__fmul_rn(-step_size, mi), denom));
    }
};

extern "C" int adam_update_cuda(adam_state *s, float *w, const float *g, size_t n, size_t off) {
    const adam_config *c = &s->cfg;
    double bc1 = 1.0 - pow(c->beta1, (double)s->step), bc2 = 1.0 - pow(c->beta2, (double)s->step);
    AdamStep k = {w, s->m + off, s->v + off, g, (float)(c->lr / bc1), (float)sqrt(bc2),
                  (float)(1.0 - c->beta1), (float)(1.0 - c->beta2), (float)c->beta2, (float)c->eps,
                  (float)c->weight_decay, (float)(1.0 - c->lr * c->weight_decay), c->decoupled};
    return loss_cuda_for(n, k, "adam_update_cuda");
}

struct SumSq { const float *g; __device__ double operator()(size_t i) const { return (double)g[i] * g[i]; } };
struct Scale { float *g; float s; __device__ void operator()(size_t i) const { g[i] = __fmul_rn(g[i], s); } };
struct Ema {
    float *e; const float *w; float d, one_m;
    __device__ void operator()(size_t i) const { e[i] = __fadd_rn(__fmul_rn(e[i], d), __fmul_rn(one_m, w[i])); }
};

extern "C" int optim_grad_norm_cuda(double *norm, double *dwork, float *const *g, const size_t *n, int count) {
    double sum = 0;
    for (int t = 0; t < count; t++) {
        double st = 0;
        if (loss_cuda_total(&st, dwork, n[t], SumSq{g[t]}, "optim_grad_norm_cuda") < 0) return -1;
        sum += st;
    }
    *norm = sqrt(sum);
    return 0;
}

extern "C" int optim_clip_grad_norm_cuda(double *norm, double *dwork, float *const *g, const size_t *n, int count,
                                         double max_norm) {
    if (optim_grad_norm_cuda(norm, dwork, g, n, count) < 0) return -1;
    float coef = (float)(max_norm / (*norm + 1e-6));
    float k = isnan(coef) ? coef : coef < 1.0f ? coef : 1.0f;
    if (k == 1.0f) return 0;
    for (int t = 0; t < count; t++)
        if (optim_scale_cuda(g[t], n[t], k) < 0) return -1;
    return 0;
}

extern "C" int optim_scale_cuda(float *g, size_t n, float s) { return loss_cuda_for(n, Scale{g, s}, "optim_scale_cuda"); }

extern "C" int ema_update_cuda(float *ema, const float *w, size_t n, double decay) {
    return loss_cuda_for(n, Ema{ema, w, (float)decay, (float)(1.0 - decay)}, "ema_update_cuda");
}
