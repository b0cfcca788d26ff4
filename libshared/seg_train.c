/* The segmenter's trainer and patch sampler (seg_train.h). */
#include "seg_train.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "rng.h"
#include "../kernels/loss.h"

enum { RNG_PATCH = 0x5350 }; /* "SP": the patches of a step */

#define TS_EXP_AVG CKPT_TRAIN_PREFIX "adam.exp_avg"
#define TS_EXP_AVG_SQ CKPT_TRAIN_PREFIX "adam.exp_avg_sq"

/* ---- data ---- */

int seg_data_add(seg_data *s, float *x, int32_t *y, const int dim[3], float pad) {
    size_t S = (size_t)dim[0] * dim[1] * dim[2];
    int K = s->K;
    seg_volume v = {.x = x, .y = y, .dim = {dim[0], dim[1], dim[2]}, .pad = pad};
    v.loc = calloc((size_t)K, sizeof *v.loc);
    v.nloc = calloc((size_t)K, sizeof *v.nloc);
    int rc = !v.loc || !v.nloc ? lsdm_err("out of memory") : 0;
    for (size_t i = 0; !rc && i < S; i++) {
        if (y[i] < 0 || y[i] >= K) rc = lsdm_err("label %d at voxel %zu is not a class (0..%d)", (int)y[i], i, K - 1);
        else v.nloc[y[i]]++;
    }
    for (int k = 1; !rc && k < K; k++)
        if (v.nloc[k] && !(v.loc[k] = malloc((size_t)v.nloc[k] * sizeof(int32_t)))) rc = lsdm_err("out of memory");
    if (!rc) {
        int64_t *fill = calloc((size_t)K, sizeof *fill);
        if (!fill) rc = lsdm_err("out of memory");
        for (size_t i = 0; fill && i < S; i++)
            if (y[i] > 0) v.loc[y[i]][fill[y[i]]++] = (int32_t)i;
        free(fill);
    }
    seg_volume *nv = rc ? NULL : realloc(s->v, (size_t)(s->n + 1) * sizeof *nv);
    if (!nv) {
        for (int k = 0; v.loc && k < K; k++) free(v.loc[k]);
        free(v.loc), free(v.nloc), free(x), free(y);
        return rc ? rc : lsdm_err("out of memory");
    }
    s->v = nv;
    s->v[s->n++] = v;
    return 0;
}

void seg_data_free(seg_data *s) {
    for (int i = 0; i < s->n; i++) {
        for (int k = 0; k < s->K; k++) free(s->v[i].loc[k]);
        free(s->v[i].loc), free(s->v[i].nloc), free(s->v[i].x), free(s->v[i].y);
    }
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

/* A start in [lo, hi] (lo = min(0, dim - p), hi = max(0, dim - p)). */
static int clip_start(int o, int dim, int p) {
    int lo = dim - p < 0 ? dim - p : 0, hi = dim - p > 0 ? dim - p : 0;
    return o < lo ? lo : o > hi ? hi : o;
}

void seg_sample_batch(const seg_data *s, const seg_sampler *p, uint64_t seed, long step, int N,
                      float *x, int32_t *y) {
    const int *P = p->patch;
    size_t PS = (size_t)P[0] * P[1] * P[2];
    uint64_t bs = lsdm_rng_derive(seed, (uint64_t)step, RNG_PATCH);
    for (int n = 0; n < N; n++) {
        lsdm_rng r;
        lsdm_rng_init(&r, bs, (uint64_t)n);
        const seg_volume *v = &s->v[lsdm_rng_u32(&r) % (uint32_t)s->n];
        const int *dim = v->dim;
        int off[3], flip[3], fg = lsdm_rng_uniform(&r) < p->fg_prob;
        /* the foreground classes present in this volume */
        int present[256], np = 0;
        for (int k = 1; fg && k < s->K && np < 256; k++)
            if (v->nloc[k]) present[np++] = k;
        if (fg && np) {
            int k = present[lsdm_rng_u32(&r) % (uint32_t)np];
            int64_t i = v->loc[k][lsdm_rng_u32(&r) % (uint64_t)v->nloc[k]];
            int c[3] = {(int)(i / ((int64_t)dim[1] * dim[2])), (int)(i / dim[2] % dim[1]), (int)(i % dim[2])};
            for (int a = 0; a < 3; a++) off[a] = clip_start(c[a] - P[a] / 2, dim[a], P[a]);
        } else {
            for (int a = 0; a < 3; a++) {
                int span = dim[a] - P[a];
                uint32_t u = lsdm_rng_u32(&r) % (uint32_t)(abs(span) + 1);
                off[a] = span >= 0 ? (int)u : -(int)u;
            }
        }
        for (int a = 0; a < 3; a++) flip[a] = p->flip[a] && (lsdm_rng_u32(&r) & 1);
        /* copy with flips; outside the volume: pad / background */
        for (int d = 0; d < P[0]; d++)
            for (int h = 0; h < P[1]; h++)
                for (int w = 0; w < P[2]; w++) {
                    int sd = off[0] + (flip[0] ? P[0] - 1 - d : d);
                    int sh = off[1] + (flip[1] ? P[1] - 1 - h : h);
                    int sw = off[2] + (flip[2] ? P[2] - 1 - w : w);
                    size_t q = ((size_t)d * P[1] + h) * P[2] + w;
                    int in = sd >= 0 && sh >= 0 && sw >= 0 && sd < dim[0] && sh < dim[1] && sw < dim[2];
                    size_t vi = in ? ((size_t)sd * dim[1] + sh) * dim[2] + sw : 0;
                    size_t S = (size_t)dim[0] * dim[1] * dim[2];
                    y[n * PS + q] = in ? v->y[vi] : 0;
                    for (int c = 0; c < s->C; c++)
                        x[((size_t)n * s->C + c) * PS + q] = in ? v->x[c * S + vi] : v->pad;
                }
    }
}

/* ---- trainer ---- */

static int trainer_setup(seg_trainer *t, const seg_train_opts *o) {
    t->o = *o;
    adam_config a = adam_config_default(o->lr, 0);
    if (nn_params_alloc_grads(&t->m.ps) < 0 || adam_init(&t->opt, &a, nn_params_count(&t->m.ps, 0)) < 0)
        return -1;
    nn_ctx_init(&t->ctx, 1);
    return 0;
}

int seg_trainer_init(seg_trainer *t, const segnet_config *cfg, const seg_train_opts *o) {
    memset(t, 0, sizeof *t);
    if (segnet_init(&t->m, cfg, o->seed) < 0 || trainer_setup(t, o) < 0) {
        seg_trainer_free(t);
        return -1;
    }
    return 0;
}

void seg_trainer_free(seg_trainer *t) {
    segnet_free(&t->m);
    adam_free(&t->opt);
    nn_ctx_free(&t->ctx);
    free(t->dwork);
    memset(t, 0, sizeof *t);
}

/* The model's tensors and the Adam moments. */
static ckpt_param *trainer_params(const seg_trainer *t, int *count) {
    int n;
    ckpt_param *p = segnet_ckpt_params(&t->m, &n);
    ckpt_param *q = p ? realloc(p, (size_t)(n + 2) * sizeof *q) : NULL;
    if (!q) {
        free(p);
        return lsdm_err("out of memory"), NULL;
    }
    const char *mn[2] = {TS_EXP_AVG, TS_EXP_AVG_SQ};
    float *md[2] = {t->opt.m, t->opt.v};
    for (int i = 0; i < 2; i++) {
        memset(&q[n + i], 0, sizeof q[n + i]);
        q[n + i].name = mn[i];
        q[n + i].ndim = 1;
        q[n + i].shape[0] = (int64_t)t->opt.n;
        q[n + i].data = md[i];
    }
    *count = n + 2;
    return q;
}

int seg_trainer_save(const seg_trainer *t, const char *path, const ckpt_meta *extra) {
    int n;
    ckpt_param *p = trainer_params(t, &n);
    if (!p) return -1;
    ckpt_meta meta = {0};
    int rc = ckpt_meta_copy(&meta, extra);
    if (rc == 0) rc = ckpt_meta_set(&meta, "model", SEGNET_MODEL_TAG);
    if (rc == 0) rc = ckpt_meta_set(&meta, "config", segnet_config_text(&t->m.cfg));
    if (rc == 0) rc = ckpt_meta_setf(&meta, "step", "%ld", t->step);
    if (rc == 0) rc = ckpt_meta_setf(&meta, "adam_step", "%ld", t->opt.step);
    if (rc == 0) rc = ckpt_meta_setf(&meta, "seed", "%" PRIu64, t->o.seed);
    if (rc == 0) rc = checkpoint_save(path, p, n, &meta, ST_F32);
    ckpt_meta_free(&meta);
    free(p);
    return rc;
}

int seg_trainer_resume(seg_trainer *t, const char *path, const seg_train_opts *o, ckpt_meta *meta) {
    memset(t, 0, sizeof *t);
    ckpt_meta own = {0};
    ckpt_meta *mm = meta ? meta : &own;
    if (segnet_load(&t->m, path, NULL, 0, mm) < 0) return lsdm_err_ctx("--resume");
    const char *step = ckpt_meta_get(mm, "step"), *astep = ckpt_meta_get(mm, "adam_step");
    int rc = 0;
    if (!step || !astep) rc = lsdm_err("--resume: %s has no training state (written by seg-train?)", path);
    if (rc == 0) rc = trainer_setup(t, o);
    int n;
    ckpt_param *p = rc == 0 ? trainer_params(t, &n) : NULL;
    if (rc == 0 && (!p || checkpoint_load(path, p, n, NULL) < 0)) rc = lsdm_err_ctx("--resume");
    free(p);
    if (rc == 0) {
        t->step = strtol(step, NULL, 10);
        t->opt.step = strtol(astep, NULL, 10);
    }
    ckpt_meta_free(&own);
    if (rc < 0) {
        if (meta) ckpt_meta_free(meta);
        seg_trainer_free(t);
    }
    return rc;
}

double seg_trainer_lr(const seg_trainer *t) {
    if (t->o.cosine_steps <= 0) return t->o.lr;
    double p = fmin(1.0, (double)t->step / (double)t->o.cosine_steps);
    return t->o.lr * 0.5 * (1 + cos(M_PI * p));
}

int seg_trainer_backward(seg_trainer *t, const float *x, const int32_t *y, int N, const int dim[3],
                         float scale, seg_step_stats *st) {
    const segnet_config *cfg = &t->m.cfg;
    int K = cfg->classes;
    long S = (long)dim[0] * dim[1] * dim[2];
    size_t nw = dice_loss_workspace_size(N, K);
    if (nw > t->dwork_n) {
        double *w = realloc(t->dwork, nw * sizeof(double));
        if (!w) return lsdm_err("out of memory");
        t->dwork = w, t->dwork_n = nw;
    }
    nn_ctx *c = &t->ctx;
    nn_ctx_reset(c);
    c->record = 1;
    nn_tensor *xt = nn_tensor_wrap(c, (float *)x, N, cfg->in_channels, dim[0], dim[1], dim[2]);
    nn_tensor *z = segnet_forward(c, &t->m, xt);
    float *dz = z ? nn_grad(c, z) : NULL;
    if (!dz) return nn_ctx_status(c) < 0 || !z ? -1 : lsdm_err("out of memory");
    dice_params dp = dice_params_reference();
    st->ce = cross_entropy_forward(z->data, y, N, K, S);
    st->dice_loss = dice_loss_forward(t->dwork, z->data, y, N, K, S, &dp);
    st->loss = st->ce + st->dice_loss;
    cross_entropy_backward(dz, z->data, y, N, K, S, scale);
    dice_loss_backward(dz, t->dwork, z->data, y, N, K, S, &dp, scale);
    nn_backward(c);
    return nn_ctx_status(c);
}

int seg_trainer_step(seg_trainer *t, const float *x, const int32_t *y, int N, const int dim[3],
                     seg_step_stats *st) {
    memset(st, 0, sizeof *st);
    if (loss_check_targets(y, (size_t)N * dim[0] * dim[1] * dim[2], t->m.cfg.classes) < 0) return -1;
    nn_params_zero_grads(&t->m.ps);
    if (seg_trainer_backward(t, x, y, N, dim, 1.0f, st) < 0) return -1;
    nn_params *ps = &t->m.ps;
    int n = ps->n;
    float **w = malloc((size_t)n * sizeof *w), **g = malloc((size_t)n * sizeof *g);
    size_t *sz = malloc((size_t)n * sizeof *sz);
    if (!w || !g || !sz) {
        free(w), free(g), free(sz);
        return lsdm_err("out of memory");
    }
    int k = nn_params_grads(ps, w, g, sz);
    st->grad_norm = t->o.grad_clip > 0 ? optim_clip_grad_norm(g, sz, k, t->o.grad_clip) : optim_grad_norm(g, sz, k);
    st->lr = seg_trainer_lr(t);
    int rc = 0;
    if (!isfinite(st->loss) || !isfinite(st->grad_norm)) {
        rc = lsdm_err("step %ld: the loss is %g (gradient norm %g): training diverged; lower --lr or "
                      "resume from the last checkpoint", t->step + 1, st->loss, st->grad_norm);
    } else {
        t->opt.cfg.lr = st->lr;
        adam_begin_step(&t->opt);
        size_t off = 0;
        for (int i = 0; i < k; i++) {
            adam_update(&t->opt, w[i], g[i], sz[i], off);
            off += sz[i];
        }
        t->step++;
    }
    free(w), free(g), free(sz);
    return rc;
}
