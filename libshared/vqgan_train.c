/* The VQ-GAN trainer (vqgan_train.h). */
#include "vqgan_train.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "rng.h"
#include "../kernels/loss.h"

enum { RNG_CODEBOOK = 0x4342, RNG_FRAMES = 0x4652 };

vq_train_opts vq_train_opts_default(void) {
    vq_train_opts o = {
        .lr = 3e-4, .l1_weight = 4, .image_gan_weight = 1, .video_gan_weight = 1,
        .gan_feat_weight = 4, .perceptual_weight = 4, .lpips = NULL, .disc_start = 10000, .grad_clip = 1.0, .commit_beta = 0.25,
        .update_codebook = 1, .ema = codebook_ema_params_reference(), .seed = 0,
    };
    return o;
}

static adam_config adam_vq(double lr) {
    adam_config a = adam_config_default(lr, 0);
    a.beta1 = 0.5, a.beta2 = 0.9;
    return a;
}

int vq_trainer_init(vq_trainer *t, vqgan *m, const vq_train_opts *o) {
    memset(t, 0, sizeof *t);
    t->m = m;
    t->o = *o;
    adam_config a = adam_vq(o->lr);
    if (nn_params_alloc_grads(&m->gen) < 0 || nn_params_alloc_grads(&m->disc) < 0 ||
        adam_init(&t->opt_g, &a, nn_params_count(&m->gen, 0)) < 0 ||
        adam_init(&t->opt_d, &a, nn_params_count(&m->disc, 0)) < 0) {
        vq_trainer_free(t);
        return -1;
    }
    nn_ctx_init(&t->ctx, 1);
    return 0;
}

void vq_trainer_free(vq_trainer *t) {
    adam_free(&t->opt_g);
    adam_free(&t->opt_d);
    nn_ctx_free(&t->ctx);
    free(t->idx);
    free(t->cb_work);
    memset(t, 0, sizeof *t);
}

/* ---- the quantiser as a graph node: straight-through + commitment ---- */

typedef struct {
    nn_tensor *z, *zq;
    float beta;
} st_args;

static void st_back(void *ctx, void *args) {
    nn_ctx *c = ctx;
    st_args *a = args;
    float *dz = nn_grad(c, a->z);
    if (dz)
        codebook_commitment_backward(dz, a->zq->grad, a->z->data, a->zq->data, a->z->n, a->beta,
                                     1.0f);
}

static int grow(void **p, size_t *cap, size_t bytes) {
    if (bytes <= *cap) return 0;
    void *q = realloc(*p, bytes);
    if (!q) return lsdm_err("out of memory");
    *p = q;
    *cap = bytes;
    return 0;
}

/* zq (straight-through) of z; codebook init/EMA update when training. */
static nn_tensor *quantize_train(vq_trainer *t, nn_tensor *z, vq_step_stats *st) {
    nn_ctx *c = &t->ctx;
    vqgan *m = t->m;
    int K = m->cfg.n_codes, E = m->cfg.embedding_dim;
    long S = (long)z->D * z->H * z->W, M = (long)z->N * S;
    size_t ws = codebook_workspace_size(K, E), we = codebook_ema_workspace_size(M, K, E);
    if (grow((void **)&t->idx, &t->idx_cap, (size_t)M * sizeof(int32_t)) < 0 ||
        grow((void **)&t->cb_work, &t->cb_cap, (ws > we ? ws : we) * sizeof(float)) < 0 ||
        (size_t)K * sizeof(int32_t) > t->cb_cap)
        return NULL;
    uint64_t blocks = codebook_rng_blocks(M, K, E);
    if (!t->codebook_ready && t->o.update_codebook) {
        if (codebook_init(m->emb->data, m->ema_n->data, m->z_avg->data, t->cb_work, z->data, z->N,
                          E, S, K, t->o.seed, RNG_CODEBOOK, (uint64_t)t->step * blocks) < 0)
            return NULL;
        t->codebook_ready = 1;
    }
    int bad = codebook_nearest(t->idx, NULL, t->cb_work, z->data, m->emb->data, z->N, E, S, K);
    if (bad < 0) return NULL;
    if (bad > 0) {
        lsdm_err("step %ld: NaN or Inf in the encoder output (%d vectors): training diverged; "
                 "lower --lr or resume from an earlier checkpoint", t->step + 1, bad);
        return NULL;
    }
    nn_tensor *zq = vqgan_lookup(c, m, t->idx, z->N, z->D, z->H, z->W);
    if (!zq) return NULL;
    st->commit = codebook_commitment_forward(z->data, zq->data, z->n, t->o.commit_beta);
    codebook_perplexity(&st->perplexity, &st->codes_used, (int32_t *)t->cb_work, t->idx, M, K);
    if (t->o.update_codebook) {
        st->restarted = codebook_ema_update(m->emb->data, m->ema_n->data, m->z_avg->data,
                                            t->cb_work, z->data, t->idx, z->N, E, S, K, &t->o.ema,
                                            t->o.seed, RNG_CODEBOOK,
                                            ((uint64_t)t->step * 2 + 1) * blocks);
        if (st->restarted < 0) return NULL;
    }
    zq->needs_grad = 1;
    st_args a = {z, zq, (float)t->o.commit_beta};
    nn_tape_push(c, st_back, &a, sizeof a);
    return zq;
}

/* Feature matching: weight * L1(fake, real) for the first layers+1 features. */
static double feat_match(nn_ctx *c, nn_tensor **fake, nn_tensor **real, int layers, double weight) {
    double sum = 0;
    for (int i = 0; i <= layers; i++) {
        sum += weight * l1_loss_forward(fake[i]->data, real[i]->data, fake[i]->n);
        float *g = nn_grad(c, fake[i]);
        if (g) l1_loss_backward(g, fake[i]->data, real[i]->data, fake[i]->n, (float)weight);
    }
    return sum;
}

int vq_trainer_gen_backward(vq_trainer *t, const float *x, const float *seg, int N, int D, int H,
                            int W, vq_step_stats *st) {
    nn_ctx *c = &t->ctx;
    vqgan *m = t->m;
    const vq_train_opts *o = &t->o;
    memset(st, 0, sizeof *st);
    nn_ctx_reset(c);
    c->record = 1;
    nn_params_freeze(&m->gen, 0);
    nn_params_freeze(&m->disc, 1);

    nn_tensor *xt = nn_tensor_wrap(c, (float *)x, N, m->cfg.image_channels, D, H, W);
    nn_tensor *segt = seg ? nn_tensor_wrap(c, (float *)seg, N, m->cfg.label_nc, D, H, W) : NULL;
    nn_tensor *z = vqgan_encode(c, m, xt);
    if (!z) return -1;
    nn_tensor *zq = quantize_train(t, z, st);
    if (!zq) return -1;
    nn_tensor *y = vqgan_decode(c, m, zq, segt);
    if (!y) return -1;
    t->recon = y;
    float *dy = nn_grad(c, y);
    if (!dy) return -1;
    st->recon = o->l1_weight * l1_loss_forward(y->data, x, y->n);
    l1_loss_backward(dy, y->data, x, y->n, (float)o->l1_weight);

    st->gan_on = t->step >= o->disc_start;
    int lp = o->lpips && o->perceptual_weight > 0;
    nn_tensor *fr_fake = NULL, *fr_real = NULL;
    if (st->gan_on || lp) {
        /* one random slice per block for the 2D discriminator and LPIPS */
        int d[64];
        lsdm_rng r;
        lsdm_rng_init(&r, lsdm_rng_derive(o->seed, (uint64_t)t->step, RNG_FRAMES), 0);
        for (int n = 0; n < N && n < 64; n++) d[n] = (int)(lsdm_rng_u32(&r) % (uint32_t)D);
        fr_fake = nn_take_slices(c, y, d), fr_real = nn_take_slices(c, xt, d);
    }
    if (lp) {
        double w = o->perceptual_weight;
        st->perceptual = w * lpips_loss(c, o->lpips, fr_real, fr_fake, (float)w);
    }
    if (st->gan_on) {
        nn_tensor *f2[VQ_MAX_STAGES], *f3[VQ_MAX_STAGES], *r2[VQ_MAX_STAGES], *r3[VQ_MAX_STAGES];
        int L2 = m->d2.layers, L3 = m->d3.layers;
        if (vq_disc_forward(c, &m->d2, fr_fake, f2) < 0 || vq_disc_forward(c, &m->d3, y, f3) < 0)
            return -1;
        st->g_image = hinge_g_loss_forward(f2[L2 + 1]->data, f2[L2 + 1]->n);
        st->g_video = hinge_g_loss_forward(f3[L3 + 1]->data, f3[L3 + 1]->n);
        hinge_g_loss_backward(nn_grad(c, f2[L2 + 1]), f2[L2 + 1]->n, (float)o->image_gan_weight);
        hinge_g_loss_backward(nn_grad(c, f3[L3 + 1]), f3[L3 + 1]->n, (float)o->video_gan_weight);
        if (o->gan_feat_weight > 0) {
            /* the reference's 4 / (n_layers + 1) per feature */
            double w = o->gan_feat_weight * 4.0 / (L2 + 1);
            if (vq_disc_forward(c, &m->d2, fr_real, r2) < 0 ||
                vq_disc_forward(c, &m->d3, xt, r3) < 0)
                return -1;
            if (o->image_gan_weight > 0) st->g_feat += feat_match(c, f2, r2, L2, w);
            if (o->video_gan_weight > 0) st->g_feat += feat_match(c, f3, r3, L3, w);
        }
    }
    nn_backward(c);
    if (nn_ctx_status(c) < 0) return -1;
    st->loss = st->recon + st->commit + st->perceptual + o->image_gan_weight * st->g_image * st->gan_on +
               o->video_gan_weight * st->g_video * st->gan_on + st->g_feat;
    return 0;
}

/* Clip and step every trainable tensor of ps with its optimiser. */
static double optimise(nn_params *ps, adam_state *opt, double clip) {
    int n = ps->n;
    float **w = malloc((size_t)n * sizeof *w), **g = malloc((size_t)n * sizeof *g);
    size_t *sz = malloc((size_t)n * sizeof *sz);
    if (!w || !g || !sz) {
        free(w), free(g), free(sz);
        return lsdm_err("out of memory"), NAN;
    }
    int k = nn_params_grads(ps, w, g, sz);
    double norm = clip > 0 ? optim_clip_grad_norm(g, sz, k, clip) : optim_grad_norm(g, sz, k);
    adam_begin_step(opt);
    size_t off = 0;
    for (int i = 0; i < k; i++) {
        adam_update(opt, w[i], g[i], sz[i], off);
        off += sz[i];
    }
    free(w), free(g), free(sz);
    return norm;
}

int vq_trainer_step(vq_trainer *t, const float *x, const float *seg, int N, int D, int H, int W,
                    vq_step_stats *st) {
    vqgan *m = t->m;
    nn_ctx *c = &t->ctx;
    /* the learning rate of this step: constant, or a cosine decay over a
     * fixed number of steps (a function of the step, so --resume agrees) */
    double lr = t->o.lr;
    if (t->o.lr_cosine_steps > 0) {
        double p = fmin(1.0, (double)t->step / (double)t->o.lr_cosine_steps);
        lr = t->o.lr * 0.5 * (1 + cos(M_PI * p));
    }
    t->opt_g.cfg.lr = t->opt_d.cfg.lr = lr;
    nn_params_zero_grads(&m->gen);
    if (vq_trainer_gen_backward(t, x, seg, N, D, H, W, st) < 0) return -1;
    st->lr = lr;
    st->grad_norm = optimise(&m->gen, &t->opt_g, t->o.grad_clip);
    if (!isfinite(st->loss))
        return lsdm_err("step %ld: the loss is %g: training diverged", t->step + 1, st->loss);

    if (st->gan_on) {
        /* the discriminator on real data and the detached reconstruction */
        nn_tape_clear(c);
        nn_params_freeze(&m->gen, 1);
        nn_params_freeze(&m->disc, 0);
        nn_params_zero_grads(&m->disc);
        int d[64];
        lsdm_rng r;
        lsdm_rng_init(&r, lsdm_rng_derive(t->o.seed, (uint64_t)t->step, RNG_FRAMES), 0);
        for (int n = 0; n < N && n < 64; n++) d[n] = (int)(lsdm_rng_u32(&r) % (uint32_t)D);
        nn_tensor *xt = nn_tensor_wrap(c, (float *)x, N, m->cfg.image_channels, D, H, W);
        nn_tensor *yd = nn_detach(c, t->recon);
        nn_tensor *fr_real = nn_take_slices(c, xt, d), *fr_fake = nn_take_slices(c, yd, d);
        nn_tensor *a2[VQ_MAX_STAGES], *a3[VQ_MAX_STAGES], *b2[VQ_MAX_STAGES], *b3[VQ_MAX_STAGES];
        int L2 = m->d2.layers, L3 = m->d3.layers;
        if (vq_disc_forward(c, &m->d2, fr_real, a2) < 0 || vq_disc_forward(c, &m->d3, xt, a3) < 0 ||
            vq_disc_forward(c, &m->d2, fr_fake, b2) < 0 || vq_disc_forward(c, &m->d3, yd, b3) < 0)
            return -1;
        nn_tensor *lr2 = a2[L2 + 1], *lr3 = a3[L3 + 1], *lf2 = b2[L2 + 1], *lf3 = b3[L3 + 1];
        st->d_image = 0.5 * hinge_d_loss_forward(lr2->data, lr2->n, lf2->data, lf2->n);
        st->d_video = 0.5 * hinge_d_loss_forward(lr3->data, lr3->n, lf3->data, lf3->n);
        hinge_d_loss_backward(nn_grad(c, lr2), nn_grad(c, lf2), lr2->data, lr2->n, lf2->data,
                              lf2->n, (float)(0.5 * t->o.image_gan_weight));
        hinge_d_loss_backward(nn_grad(c, lr3), nn_grad(c, lf3), lr3->data, lr3->n, lf3->data,
                              lf3->n, (float)(0.5 * t->o.video_gan_weight));
        nn_backward(c);
        if (nn_ctx_status(c) < 0) return -1;
        optimise(&m->disc, &t->opt_d, t->o.grad_clip);
    }
    t->step++;
    return 0;
}

/* ---- checkpoints with the optimiser state ---- */

static const char *TS_NAMES[4] = {
    CKPT_TRAIN_PREFIX "adam_gen.exp_avg", CKPT_TRAIN_PREFIX "adam_gen.exp_avg_sq",
    CKPT_TRAIN_PREFIX "adam_disc.exp_avg", CKPT_TRAIN_PREFIX "adam_disc.exp_avg_sq",
};

static ckpt_param *trainer_params(const vq_trainer *t, int *count) {
    int n;
    ckpt_param *p = vqgan_ckpt_params(t->m, 1, &n);
    if (!p) return NULL;
    ckpt_param *q = realloc(p, (size_t)(n + 4) * sizeof *q);
    if (!q) {
        free(p);
        return lsdm_err("out of memory"), NULL;
    }
    float *buf[4] = {t->opt_g.m, t->opt_g.v, t->opt_d.m, t->opt_d.v};
    size_t len[4] = {t->opt_g.n, t->opt_g.n, t->opt_d.n, t->opt_d.n};
    for (int i = 0; i < 4; i++) {
        memset(&q[n + i], 0, sizeof q[n + i]);
        q[n + i].name = TS_NAMES[i];
        q[n + i].ndim = 1;
        q[n + i].shape[0] = (int64_t)len[i];
        q[n + i].data = buf[i];
    }
    *count = n + 4;
    return q;
}

int vq_trainer_save(const vq_trainer *t, const char *path, const ckpt_meta *extra) {
    int n;
    ckpt_param *p = trainer_params(t, &n);
    if (!p) return -1;
    ckpt_meta meta = {0};
    int rc = ckpt_meta_copy(&meta, extra);
    if (rc == 0) rc = ckpt_meta_setf(&meta, "step", "%ld", t->step);
    if (rc == 0) rc = ckpt_meta_setf(&meta, "seed", "%" PRIu64, t->o.seed);
    if (rc == 0) rc = ckpt_meta_setf(&meta, "adam_steps", "%ld %ld", t->opt_g.step, t->opt_d.step);
    if (rc == 0) rc = ckpt_meta_set(&meta, "codebook_ready", t->codebook_ready ? "1" : "0");
    if (rc == 0) rc = ckpt_meta_set(&meta, "config", vqgan_config_text(&t->m->cfg));
    if (rc == 0) rc = checkpoint_save(path, p, n, &meta, ST_F32);
    ckpt_meta_free(&meta);
    free(p);
    return rc;
}

int vq_trainer_resume(vq_trainer *t, const char *path) {
    int n;
    ckpt_param *p = trainer_params(t, &n);
    if (!p) return -1;
    ckpt_meta meta = {0};
    int rc = checkpoint_load(path, p, n, &meta);
    free(p);
    if (rc < 0) return lsdm_err_ctx("--resume (a checkpoint written by vq-train)");
    const char *step = ckpt_meta_get(&meta, "step"), *steps = ckpt_meta_get(&meta, "adam_steps");
    const char *ready = ckpt_meta_get(&meta, "codebook_ready"), *seed = ckpt_meta_get(&meta, "seed");
    if (!step || !steps || !ready || !seed ||
        sscanf(steps, "%ld %ld", &t->opt_g.step, &t->opt_d.step) != 2) {
        ckpt_meta_free(&meta);
        return lsdm_err("%s: no training state (step, adam_steps, codebook_ready, seed)", path);
    }
    t->step = strtol(step, NULL, 10);
    t->codebook_ready = atoi(ready);
    t->o.seed = strtoull(seed, NULL, 10);
    ckpt_meta_free(&meta);
    return 0;
}
