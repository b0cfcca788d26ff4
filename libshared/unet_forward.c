/* The diffusion UNet's forward (unet.h): the mask features, computed once
 * per sample, and the denoising step. Without recording, every tensor is
 * dropped as soon as it is no longer needed (nn.h), so a step holds the
 * skips and a few activations. */
#include "unet.h"

#include <math.h>
#include <string.h>

#include "err.h"
#include "nn_extra.h"

static nn_tensor *fail(nn_ctx *c) {
    c->failed = 1;
    return NULL;
}

/* cos/sin of the rotary angles l * freqs[i] for l < L, the product in
 * float32 as the reference (rotary_cos_sin's layout), from the model's
 * freqs buffer. A tensor of c. */
static nn_tensor *rotary_table(nn_ctx *c, const nn_param *freqs, int L) {
    int half = (int)freqs->n;
    nn_tensor *cs = nn_tensor_new(c, 1, 1, 1, 1, 2 * half * L);
    if (!cs) return NULL;
    for (int l = 0; l < L; l++)
        for (int i = 0; i < half; i++) {
            float ang = (float)l * freqs->data[i];
            cs->data[((size_t)l * half + i) * 2] = (float)cos((double)ang);
            cs->data[((size_t)l * half + i) * 2 + 1] = (float)sin((double)ang);
        }
    return cs;
}

/* x + attention(LayerNorm(x)); x is kept. bias: the temporal attentions'
 * relative position bias. */
static nn_tensor *attn_block(nn_ctx *c, const unet_attn *a, nn_tensor *x, nn_tensor *bias) {
    if (!x) return NULL;
    nn_tensor *n = nn_chan_layernorm(c, a->gamma, x, 1e-5f);
    nn_tensor *qkv = nn_conv3d(c, &a->qkv, n), *o, *cs = NULL;
    nn_drop(c, n);
    float scale = (float)(1.0 / sqrt((double)a->dh));
    if (a->kind == UNET_ATTN_LINEAR) {
        o = nn_linear_attention(c, qkv, a->heads, a->dh, scale);
    } else {
        int depth = a->kind == UNET_ATTN_TEMPORAL;
        if (a->rot && !(cs = rotary_table(c, a->freqs, x->D))) return NULL;
        o = nn_attention(c, qkv, a->heads, a->dh, depth ? NN_ATTN_DEPTH : NN_ATTN_PLANE,
                         depth ? bias : NULL, cs ? cs->data : NULL, a->rot, scale);
    }
    nn_drop(c, qkv);
    nn_drop(c, cs);
    nn_tensor *y = nn_conv3d(c, &a->out, o);
    nn_drop(c, o);
    return nn_add(c, x, y);
}

/* SPADEGroupNorm3D with its modulation computed already. */
static nn_tensor *spade(nn_ctx *c, const unet_spade *s, nn_tensor *x, nn_tensor *gamma,
                        nn_tensor *beta) {
    return nn_spade_mod(c, nn_gn(c, &s->gn, x), gamma, beta);
}

/* SDEResBlock / SDDResBlock; x is kept. st: SiLU of the time embedding
 * (N,time_dim) for the blocks with a time MLP; k: the block's first
 * SPADE norm in mf. */
static nn_tensor *block_fwd(nn_ctx *c, const unet_block *b, nn_tensor *x, nn_tensor *st,
                            const unet_maskfeat *mf, int k) {
    if (!x) return NULL;
    nn_tensor *h = b->spade ? nn_act(c, ACT_SILU, 0, spade(c, &b->s1, x, mf->gamma[k], mf->beta[k]))
                            : nn_gn_silu(c, &b->n1, x);
    nn_tensor *t = nn_conv3d(c, &b->c1, h);
    nn_drop(c, h);
    h = b->spade ? spade(c, &b->s2, t, mf->gamma[k + 1], mf->beta[k + 1]) : nn_gn(c, &b->n2, t);
    nn_drop(c, t);
    if (b->has_mlp) {
        nn_tensor *ss = nn_dense(c, &b->mlp, st);
        h = nn_scale_shift(c, h, ss);
        nn_drop(c, ss);
    }
    h = nn_act(c, ACT_SILU, 0, h);
    t = nn_conv3d(c, &b->c2, h);
    nn_drop(c, h);
    nn_tensor *r = b->has_res ? nn_conv3d(c, &b->res, x) : x;
    nn_tensor *y = nn_add(c, r, t);
    if (r != x) nn_drop(c, r);
    return y;
}

/* ResnetBlock: (conv, GroupNorm, SiLU) twice + res_conv(x); x is kept. */
static nn_tensor *resnet_fwd(nn_ctx *c, const unet_block *b, nn_tensor *x) {
    nn_tensor *t = nn_conv3d(c, &b->c1, x);
    nn_tensor *h = nn_gn_silu(c, &b->n1, t);
    nn_drop(c, t);
    t = nn_conv3d(c, &b->c2, h);
    nn_drop(c, h);
    h = nn_gn_silu(c, &b->n2, t);
    nn_drop(c, t);
    nn_tensor *r = b->has_res ? nn_conv3d(c, &b->res, x) : x;
    nn_tensor *y = nn_add(c, r, h);
    if (r != x) nn_drop(c, r);
    return y;
}

/* ---- mask features ---- */

/* gamma and beta of one SPADE norm: convs of the features resized
 * (nearest) to the norm's grid. */
static int spade_modulation(nn_ctx *c, const unet_spade *s, nn_tensor *f, int D, int H, int W,
                            nn_tensor **gamma, nn_tensor **beta) {
    nn_tensor *r = nn_resize_nearest(c, f, D, H, W);
    nn_tensor *a = nn_act(c, ACT_RELU, 0, nn_conv3d(c, &s->shared, r));
    if (r != f) nn_drop(c, r);
    *gamma = nn_conv3d(c, &s->gamma, a);
    *beta = nn_conv3d(c, &s->beta, a);
    nn_drop(c, a);
    return *gamma && *beta ? 0 : -1;
}

static int grid_check(nn_ctx *c, const unet *m, int D, int H, int W) {
    int f = 1 << (m->cfg.levels - 1);
    if (D >= 1 && H >= f && W >= f && H % f == 0 && W % f == 0) return 0;
    lsdm_err("latent grid %dx%dx%d: height and width must be multiples of %d (%d levels)", D, H,
             W, f, m->cfg.levels);
    c->failed = 1;
    return -1;
}

int unet_encode_mask(nn_ctx *c, const unet *m, nn_tensor *mask, int D, int H, int W,
                     unet_maskfeat *mf) {
    const unet_config *cfg = &m->cfg;
    memset(mf, 0, sizeof *mf);
    if (!mask || grid_check(c, m, D, H, W) < 0) return -1;
    if (mask->C != cfg->label_nc) {
        c->failed = 1;
        return lsdm_err("the mask has %d channels, the model takes %d classes", mask->C,
                        cfg->label_nc);
    }
    nn_tensor *f = mask;
    if (cfg->segconv) { /* SegConv3D: (conv, ReLU, maxpool 2) twice, conv, ReLU */
        static const int k2[3] = {2, 2, 2};
        for (int i = 0; i < 3 && f; i++) {
            nn_tensor *t = nn_act(c, ACT_RELU, 0, nn_conv3d(c, &m->seg[i], f));
            if (f != mask) nn_drop(c, f);
            f = t;
            if (i < 2) {
                if (f && (f->D < 2 || f->H < 2 || f->W < 2)) {
                    lsdm_err("the mask (%dx%dx%d) is too small for the mask encoder", mask->D,
                             mask->H, mask->W);
                    c->failed = 1;
                    return -1;
                }
                t = nn_maxpool(c, f, k2);
                nn_drop(c, f);
                f = t;
            }
        }
        if (!f) return -1;
    }
    mf->N = mask->N, mf->D = D, mf->H = H, mf->W = W, mf->seg = f;
    /* the SPADE blocks in forward order, each at the grid it runs on (two
     * norms each): the middle ones at the lowest level, then one block per
     * level on the way up */
    int L = cfg->levels, nb = 0, level[2 + UNET_MAX_LEVELS];
    const unet_block *b[2 + UNET_MAX_LEVELS];
    b[nb] = &m->mid1, level[nb++] = L - 1;
    b[nb] = &m->mid2, level[nb++] = L - 1;
    for (int i = 0; i < L; i++) b[nb] = &m->up[i], level[nb++] = L - 1 - i;
    for (int i = 0; i < nb; i++)
        for (int j = 0; j < 2; j++, mf->n++)
            if (spade_modulation(c, j ? &b[i]->s2 : &b[i]->s1, f, D, H >> level[i],
                                 W >> level[i], &mf->gamma[mf->n], &mf->beta[mf->n]) < 0)
                return -1;
    return nn_ctx_status(c);
}

/* ---- the denoising step ---- */

nn_tensor *unet_forward(nn_ctx *c, const unet *m, nn_tensor *x, const float *t,
                        const unet_maskfeat *mf) {
    const unet_config *cfg = &m->cfg;
    if (!x || grid_check(c, m, x->D, x->H, x->W) < 0) return NULL;
    if (x->C != cfg->channels) {
        lsdm_err("the latent has %d channels, the model takes %d", x->C, cfg->channels);
        return fail(c);
    }
    if (!mf || mf->n != 4 + 2 * cfg->levels || mf->N != x->N || mf->D != x->D ||
        mf->H != x->H || mf->W != x->W) {
        lsdm_err("the mask features were not made for %d latents of %dx%dx%d", x->N, x->D, x->H,
                 x->W);
        return fail(c);
    }
    int L = cfg->levels;
    nn_tensor *bias = nn_relpos_bias(c, m->relpos, cfg->attn_heads, x->D, UNET_REL_BUCKETS,
                                     UNET_REL_MAX_DISTANCE);
    nn_tensor *r = nn_conv3d(c, &m->init_conv, x);
    nn_tensor *h = attn_block(c, &m->init_attn, r, bias);
    /* time: sinusoidal -> Linear -> GELU -> Linear; the blocks' MLPs all
     * start with SiLU of it, taken once */
    nn_tensor *e = nn_timestep_emb(c, t, x->N, cfg->dim);
    nn_tensor *e1 = nn_act(c, ACT_GELU, 0, nn_dense(c, &m->time1, e));
    nn_drop(c, e);
    nn_tensor *st = nn_act(c, ACT_SILU, 0, nn_dense(c, &m->time2, e1));
    nn_drop(c, e1);

    nn_tensor *skip[UNET_MAX_LEVELS] = {0}, *y, *a;
    for (int i = 0; i < L; i++) {
        y = block_fwd(c, &m->down[i], h, st, NULL, 0);
        nn_drop(c, h);
        a = attn_block(c, &m->down_lin[i], y, NULL);
        nn_drop(c, y);
        skip[i] = attn_block(c, &m->down_t[i], a, bias);
        nn_drop(c, a);
        h = i < L - 1 ? nn_conv3d(c, &m->downsample[i], skip[i]) : NULL;
    }
    y = block_fwd(c, &m->mid1, skip[L - 1], NULL, mf, 0);
    a = attn_block(c, &m->mid_spatial, y, NULL);
    nn_drop(c, y);
    y = attn_block(c, &m->mid_t, a, bias);
    nn_drop(c, a);
    h = block_fwd(c, &m->mid2, y, NULL, mf, 2);
    nn_drop(c, y);
    for (int i = 0; i < L; i++) {
        nn_tensor *xc = nn_concat(c, h, skip[L - 1 - i]);
        nn_drop(c, h);
        nn_drop(c, skip[L - 1 - i]);
        y = block_fwd(c, &m->up[i], xc, st, mf, 4 + 2 * i);
        nn_drop(c, xc);
        a = attn_block(c, &m->up_lin[i], y, NULL);
        nn_drop(c, y);
        y = attn_block(c, &m->up_t[i], a, bias);
        nn_drop(c, a);
        h = i < L - 1 ? nn_convt3d(c, &m->upsample[i], y) : y;
        if (h != y) nn_drop(c, y);
    }
    nn_tensor *xc = nn_concat(c, h, r);
    nn_drop(c, h);
    nn_drop(c, r);
    y = resnet_fwd(c, &m->final_block, xc);
    nn_drop(c, xc);
    nn_tensor *eps = nn_conv3d(c, &m->final_conv, y);
    nn_drop(c, y);
    nn_drop(c, st);
    nn_drop(c, bias);
    return c->failed ? NULL : eps;
}
