/* The diffusion UNet's trainer (ldm_train.h). */
#include "ldm_train.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "rng.h"
#include "../kernels/loss.h"

enum { RNG_DRAWS = 0x4c44 }; /* "LD": the per-sample draws of a step */

#define TS_WEIGHTS CKPT_TRAIN_PREFIX "weights."
#define TS_EXP_AVG CKPT_TRAIN_PREFIX "adam.exp_avg"
#define TS_EXP_AVG_SQ CKPT_TRAIN_PREFIX "adam.exp_avg_sq"

ldm_train_opts ldm_train_opts_default(void) {
    ldm_train_opts o = {.lr = 1e-5, .grad_clip = 1.0, .ema_decay = 0.995, .ema_start = 0,
                        .accum = 1, .seed = 0};
    return o;
}

/* Copy every tensor of src into dst (same config). */
static void copy_weights(unet *dst, const unet *src) {
    for (int i = 0; i < src->ps.n; i++)
        memcpy(dst->ps.p[i]->data, src->ps.p[i]->data, src->ps.p[i]->n * sizeof(float));
}

/* What init and resume share once m, ema and d are there. */
static int trainer_setup(ldm_trainer *t, const ldm_train_opts *o) {
    t->o = *o;
    if (o->accum < 1) return lsdm_err("gradient accumulation needs at least 1 micro-batch");
    if (!(o->ema_decay >= 0 && o->ema_decay <= 1))
        return lsdm_err("EMA decay %g is not in [0,1]", o->ema_decay);
    adam_config a = adam_config_default(o->lr, 0);
    if (nn_params_alloc_grads(&t->m.ps) < 0 || adam_init(&t->opt, &a, nn_params_count(&t->m.ps, 0)) < 0 ||
        diffusion_schedule_init(&t->sched, t->d.timesteps) < 0)
        return -1;
    nn_ctx_init(&t->ctx, 1);
    return 0;
}

int ldm_trainer_init(ldm_trainer *t, const unet_config *cfg, const ldm_diffusion_config *d,
                     const ldm_train_opts *o, const char *from) {
    memset(t, 0, sizeof *t);
    t->d = *d;
    int rc = unet_init(&t->m, cfg, o->seed) < 0 || unet_init(&t->ema, cfg, o->seed) < 0 ? -1 : 0;
    if (rc == 0 && from) {
        /* the weights of a UNet or diffusion checkpoint of this config
         * (a trainer's state in it is not read) */
        int n;
        ckpt_param *p = unet_ckpt_params(&t->m, &n);
        rc = !p ? -1 : checkpoint_load(from, p, n, NULL);
        free(p);
        if (rc < 0) lsdm_err_ctx("--init %s", from);
    }
    if (rc == 0) {
        copy_weights(&t->ema, &t->m);
        rc = trainer_setup(t, o);
    }
    if (rc < 0) ldm_trainer_free(t);
    return rc;
}

void ldm_trainer_free(ldm_trainer *t) {
    unet_free(&t->m);
    unet_free(&t->ema);
    adam_free(&t->opt);
    diffusion_schedule_free(&t->sched);
    nn_ctx_free(&t->ctx);
    free(t->xt);
    free(t->noise);
    free(t->tf);
    free(t->ts);
    memset(t, 0, sizeof *t);
}

/* ---- checkpoints ---- */

/* The checkpoint's tensors: the EMA model under its own names, the raw
 * weights (trainable ones) as train_state.weights.NAME, the Adam moments.
 * names: the allocated train_state names, freed by the caller. */
static ckpt_param *trainer_params(const ldm_trainer *t, int *count, char ***names) {
    int n;
    ckpt_param *p = unet_ckpt_params(&t->ema, &n);
    if (!p) return NULL;
    const nn_params *ps = &t->m.ps;
    ckpt_param *q = realloc(p, (size_t)(n + ps->n + 2) * sizeof *q);
    char **nm = calloc((size_t)ps->n + 1, sizeof *nm);
    if (!q || !nm) {
        free(q ? q : p);
        free(nm);
        return lsdm_err("out of memory"), NULL;
    }
    int k = n;
    for (int i = 0; i < ps->n; i++) {
        const nn_param *w = ps->p[i];
        if (w->buffer) continue;
        size_t len = strlen(TS_WEIGHTS) + strlen(w->name) + 1;
        if (!(nm[i] = malloc(len))) {
            for (int j = 0; j < i; j++) free(nm[j]);
            free(nm), free(q);
            return lsdm_err("out of memory"), NULL;
        }
        snprintf(nm[i], len, "%s%s", TS_WEIGHTS, w->name);
        memset(&q[k], 0, sizeof q[k]);
        q[k].name = nm[i];
        q[k].ndim = w->ndim;
        memcpy(q[k].shape, w->shape, sizeof w->shape);
        q[k].data = w->data;
        k++;
    }
    const char *mn[2] = {TS_EXP_AVG, TS_EXP_AVG_SQ};
    float *md[2] = {t->opt.m, t->opt.v};
    for (int i = 0; i < 2; i++, k++) {
        memset(&q[k], 0, sizeof q[k]);
        q[k].name = mn[i];
        q[k].ndim = 1;
        q[k].shape[0] = (int64_t)t->opt.n;
        q[k].data = md[i];
    }
    *count = k;
    *names = nm;
    return q;
}

static void free_names(char **nm, int n) {
    for (int i = 0; nm && i < n; i++) free(nm[i]);
    free(nm);
}

int ldm_trainer_save(const ldm_trainer *t, const char *path, const ckpt_meta *extra) {
    int n;
    char **nm = NULL;
    ckpt_param *p = trainer_params(t, &n, &nm);
    if (!p) return -1;
    ckpt_meta meta = {0};
    int rc = ckpt_meta_copy(&meta, extra);
    if (rc == 0) rc = ckpt_meta_setf(&meta, "step", "%ld", t->step);
    if (rc == 0) rc = ckpt_meta_setf(&meta, "seed", "%" PRIu64, t->o.seed);
    if (rc == 0) rc = ckpt_meta_setf(&meta, "adam_step", "%ld", t->opt.step);
    /* what ldm_save writes: ldm_load reads this file as a diffusion model */
    if (rc == 0) rc = ckpt_meta_set(&meta, "diffusion", ldm_diffusion_text(&t->d));
    if (rc == 0) rc = ckpt_meta_set(&meta, "config", unet_config_text(&t->ema.cfg));
    if (rc == 0) rc = checkpoint_save(path, p, n, &meta, ST_F32);
    ckpt_meta_free(&meta);
    free(p);
    free_names(nm, t->m.ps.n);
    return rc;
}

int ldm_trainer_resume(ldm_trainer *t, const char *path, const ldm_train_opts *o, ckpt_meta *meta) {
    memset(t, 0, sizeof *t);
    ckpt_meta own = {0};
    ckpt_meta *mm = meta ? meta : &own;
    if (ldm_load(&t->ema, &t->d, path, NULL, mm) < 0) return lsdm_err_ctx("--resume");
    const char *step = ckpt_meta_get(mm, "step"), *seed = ckpt_meta_get(mm, "seed");
    const char *astep = ckpt_meta_get(mm, "adam_step");
    ldm_train_opts oo = *o;
    int rc = 0;
    if (!step || !seed || !astep) {
        rc = lsdm_err("--resume: %s has no training state (a checkpoint written by ldm-train?)", path);
    } else {
        oo.seed = strtoull(seed, NULL, 10);
        rc = unet_init(&t->m, &t->ema.cfg, oo.seed) < 0 || trainer_setup(t, &oo) < 0 ? -1 : 0;
    }
    int n;
    char **nm = NULL;
    ckpt_param *p = rc == 0 ? trainer_params(t, &n, &nm) : NULL;
    if (rc == 0 && (!p || checkpoint_load(path, p, n, NULL) < 0))
        rc = lsdm_err_ctx("--resume (a checkpoint written by ldm-train)");
    free(p);
    free_names(nm, t->m.ps.n);
    if (rc == 0) {
        t->step = strtol(step, NULL, 10);
        t->opt.step = strtol(astep, NULL, 10);
    }
    ckpt_meta_free(&own);
    if (rc < 0) {
        if (meta) ckpt_meta_free(meta);
        ldm_trainer_free(t);
    }
    return rc;
}

/* ---- one step ---- */

void ldm_trainer_draw(const ldm_trainer *t, int g, size_t n, int *ts, float *noise, int *drop) {
    uint64_t s = lsdm_rng_derive(t->o.seed, (uint64_t)t->step, RNG_DRAWS);
    lsdm_rng r;
    lsdm_rng_init(&r, s, 2 * (uint64_t)g);
    *ts = (int)(lsdm_rng_u32(&r) % (uint32_t)t->sched.T);
    *drop = lsdm_rng_uniform(&r) < t->d.cond_drop;
    lsdm_rng_fill_normal(noise, n, s, 2 * (uint64_t)g + 1, 0);
}

static int grow(void **p, size_t *cap, size_t n, size_t elem) {
    if (n <= *cap) return 0;
    void *q = realloc(*p, n * elem);
    if (!q) return lsdm_err("out of memory");
    *p = q;
    *cap = n;
    return 0;
}

void ldm_trainer_begin(ldm_trainer *t, ldm_step_stats *st) {
    memset(st, 0, sizeof *st);
    nn_params_zero_grads(&t->m.ps);
}

int ldm_trainer_backward(ldm_trainer *t, const float *x0, const float *mask, const int *ts,
                         const float *noise, const ldm_batch_shape *s, float scale, double *loss) {
    const unet_config *cfg = &t->m.cfg;
    size_t per = (size_t)cfg->channels * s->D * s->H * s->W, n = per * s->N;
    if (grow((void **)&t->xt, &t->cap_x, n, sizeof(float)) < 0 ||
        grow((void **)&t->tf, &t->cap_tf, (size_t)s->N, sizeof(float)) < 0)
        return -1;
    for (int i = 0; i < s->N; i++) {
        if (ts[i] < 0 || ts[i] >= t->sched.T)
            return lsdm_err("timestep %d is out of 0..%d", ts[i], t->sched.T - 1);
        diffusion_q_sample(t->xt + i * per, x0 + i * per, noise + i * per, per, &t->sched, ts[i]);
        t->tf[i] = (float)ts[i];
    }
    nn_ctx *c = &t->ctx;
    nn_ctx_reset(c);
    c->record = 1;
    nn_tensor *mt = nn_tensor_wrap(c, (float *)mask, s->N, cfg->label_nc, s->Dm, s->Hm, s->Wm);
    nn_tensor *xt = nn_tensor_wrap(c, t->xt, s->N, cfg->channels, s->D, s->H, s->W);
    unet_maskfeat mf;
    if (unet_encode_mask(c, &t->m, mt, s->D, s->H, s->W, &mf) < 0) return -1;
    t->mask_on = 1;
    if (cfg->segconv && mf.seg && mf.seg->n) {
        size_t on = 0;
        for (size_t i = 0; i < mf.seg->n; i++) on += mf.seg->data[i] > 0;
        t->mask_on = (double)on / (double)mf.seg->n;
    }
    nn_tensor *eps = unet_forward(c, &t->m, xt, t->tf, &mf);
    float *de = eps ? nn_grad(c, eps) : NULL;
    if (!de) return nn_ctx_status(c) < 0 ? -1 : lsdm_err("the UNet forward failed");
    if (t->d.loss_l2) {
        *loss = mse_loss_forward(eps->data, noise, n);
        mse_loss_backward(de, eps->data, noise, n, scale);
    } else {
        *loss = l1_loss_forward(eps->data, noise, n);
        l1_loss_backward(de, eps->data, noise, n, scale);
    }
    nn_backward(c);
    return nn_ctx_status(c);
}

int ldm_trainer_micro(ldm_trainer *t, int k, const float *x0, float *mask, const ldm_batch_shape *s,
                      ldm_step_stats *st) {
    const unet_config *cfg = &t->m.cfg;
    size_t per = (size_t)cfg->channels * s->D * s->H * s->W;
    size_t pm = (size_t)cfg->label_nc * s->Dm * s->Hm * s->Wm;
    if (grow((void **)&t->noise, &t->cap_n, per * s->N, sizeof(float)) < 0 ||
        grow((void **)&t->ts, &t->cap_ts, (size_t)s->N, sizeof(int)) < 0)
        return -1;
    for (int i = 0; i < s->N; i++) {
        int drop;
        ldm_trainer_draw(t, k * s->N + i, per, &t->ts[i], t->noise + i * per, &drop);
        if (drop) memset(mask + i * pm, 0, pm * sizeof(float));
        st->dropped += drop;
        st->t_mean += t->ts[i];
    }
    st->samples += s->N;
    double loss;
    if (ldm_trainer_backward(t, x0, mask, t->ts, t->noise, s, 1.0f / (float)t->o.accum, &loss) < 0)
        return -1;
    st->loss += loss / t->o.accum;
    st->mask_on += t->mask_on / t->o.accum;
    return 0;
}

int ldm_trainer_end(ldm_trainer *t, ldm_step_stats *st) {
    nn_params *ps = &t->m.ps;
    int n = ps->n;
    float **w = malloc((size_t)n * sizeof *w), **g = malloc((size_t)n * sizeof *g);
    size_t *sz = malloc((size_t)n * sizeof *sz);
    if (!w || !g || !sz) {
        free(w), free(g), free(sz);
        return lsdm_err("out of memory");
    }
    int k = nn_params_grads(ps, w, g, sz);
    /* the norm before clipping; a NaN or Inf one stops before the update */
    st->grad_norm = t->o.grad_clip > 0 ? optim_clip_grad_norm(g, sz, k, t->o.grad_clip)
                                       : optim_grad_norm(g, sz, k);
    st->lr = t->o.lr;
    if (st->samples) st->t_mean /= st->samples;
    if (!isfinite(st->loss) || !isfinite(st->grad_norm)) {
        free(w), free(g), free(sz);
        return lsdm_err("step %ld: the loss is %g (gradient norm %g): training diverged; lower --lr "
                        "or resume from the last checkpoint", t->step + 1, st->loss, st->grad_norm);
    }
    t->opt.cfg.lr = t->o.lr;
    adam_begin_step(&t->opt);
    size_t off = 0;
    for (int i = 0; i < k; i++) {
        adam_update(&t->opt, w[i], g[i], sz[i], off);
        off += sz[i];
    }
    free(w), free(g), free(sz);
    t->step++;
    /* the EMA follows the trained weights (buffers never change) */
    for (int i = 0; i < n; i++) {
        const nn_param *p = ps->p[i];
        if (p->buffer) continue;
        if (t->step <= t->o.ema_start) memcpy(t->ema.ps.p[i]->data, p->data, p->n * sizeof(float));
        else ema_update(t->ema.ps.p[i]->data, p->data, p->n, t->o.ema_decay);
    }
    return 0;
}
