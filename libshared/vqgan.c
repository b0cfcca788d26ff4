/* The VQ-GAN model: construction with the reference names, encoder,
 * codebook lookups, plain and SPADE decoders, discriminators (vqgan.h). */
#include "vqgan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "rng.h"
#include "../kernels/codebook.h"
#include "../kernels/pad3d.h"
#include "../kernels/spade.h"

static const int K1[3] = {1, 1, 1}, K3[3] = {3, 3, 3}, K4[3] = {4, 4, 4};
static const int S1[3] = {1, 1, 1}, P0[3] = {0, 0, 0}, P1[3] = {1, 1, 1};
/* padding_type reaches the encoder's first and downsampling convs only:
 * the reference builds its residual blocks and conv_last with the default
 * (replicate) whatever the config says. */

/* ---- construction ---- */

static int resblock_init(vq_resblock *r, nn_params *ps, const char *name, int C,
                         const vqgan_config *cfg) {
    char n[160];
    snprintf(n, sizeof n, "%.100s.norm1", name);
    if (nn_groupnorm_init(&r->n1, ps, n, C, cfg->num_groups, 1e-6f, 1) < 0) return -1;
    snprintf(n, sizeof n, "%.100s.conv1.conv", name);
    if (nn_conv_init(&r->c1, ps, n, C, C, K3, S1, P1, CONV3D_PAD_REPLICATE, 1) < 0) return -1;
    snprintf(n, sizeof n, "%.100s.norm2", name);
    if (nn_groupnorm_init(&r->n2, ps, n, C, cfg->num_groups, 1e-6f, 1) < 0) return -1;
    snprintf(n, sizeof n, "%.100s.conv2.conv", name);
    return nn_conv_init(&r->c2, ps, n, C, C, K3, S1, P1, CONV3D_PAD_REPLICATE, 1);
}

static int spade_norm_init(vq_spade_norm *s, nn_params *ps, const char *name, int C,
                           const vqgan_config *cfg) {
    static const int k[3] = {1, 3, 3}, p[3] = {0, 1, 1};
    char n[160];
    if (nn_groupnorm_init(&s->gn, ps, "", C, cfg->spade_groups, 1e-5f, 0) < 0) return -1;
    snprintf(n, sizeof n, "%.100s.mlp_shared.0", name);
    if (nn_conv_init(&s->shared, ps, n, cfg->label_nc, cfg->spade_hidden, k, S1, p,
                     CONV3D_PAD_ZERO, 1) < 0)
        return -1;
    snprintf(n, sizeof n, "%.100s.mlp_gamma", name);
    if (nn_conv_init(&s->gamma, ps, n, cfg->spade_hidden, C, k, S1, p, CONV3D_PAD_ZERO, 1) < 0)
        return -1;
    snprintf(n, sizeof n, "%.100s.mlp_beta", name);
    return nn_conv_init(&s->beta, ps, n, cfg->spade_hidden, C, k, S1, p, CONV3D_PAD_ZERO, 1);
}

static int spade_res_init(vq_spade_res *r, nn_params *ps, const char *name, int C,
                          const vqgan_config *cfg) {
    char n[160];
    snprintf(n, sizeof n, "%.100s.spade_norm1", name);
    if (spade_norm_init(&r->n1, ps, n, C, cfg) < 0) return -1;
    snprintf(n, sizeof n, "%.100s.conv1.conv", name);
    if (nn_conv_init(&r->c1, ps, n, C, C, K3, S1, P1, CONV3D_PAD_REPLICATE, 1) < 0) return -1;
    snprintf(n, sizeof n, "%.100s.spade_norm2", name);
    if (spade_norm_init(&r->n2, ps, n, C, cfg) < 0) return -1;
    snprintf(n, sizeof n, "%.100s.conv2.conv", name);
    return nn_conv_init(&r->c2, ps, n, C, C, K3, S1, P1, CONV3D_PAD_REPLICATE, 1);
}

/* NLayerDiscriminator(3D): conv k4 s2 + LeakyReLU, then (layers-1) x
 * [conv k4 s2, BN, LeakyReLU], [conv k4 s1, BN, LeakyReLU], conv k4 s1 -> 1;
 * padding 2 (zero). The 2D one is the same on D = 1 volumes. */
static int disc_init(vq_disc *d, nn_params *ps, const char *prefix, int is3d,
                     const vqgan_config *cfg) {
    int k[3] = {is3d ? 4 : 1, 4, 4}, s2[3] = {is3d ? 2 : 1, 2, 2}, p[3] = {is3d ? 2 : 0, 2, 2};
    int pm = CONV3D_PAD_ZERO | (is3d ? 0 : NN_CONV_2D);
    int L = cfg->disc_layers, nf = cfg->disc_channels, nf_prev;
    char n[160];
    d->layers = L, d->is3d = is3d;
    snprintf(n, sizeof n, "%.100s.model0.0", prefix);
    if (nn_conv_init(&d->conv[0], ps, n, cfg->image_channels, nf, k, s2, p, pm, 1) < 0)
        return -1;
    for (int i = 1; i <= L; i++) {
        nf_prev = nf;
        nf = nf * 2 < 512 ? nf * 2 : 512;
        snprintf(n, sizeof n, "%.100s.model%d.0", prefix, i);
        if (nn_conv_init(&d->conv[i], ps, n, nf_prev, nf, k, i < L ? s2 : S1, p, pm, 1) < 0)
            return -1;
        snprintf(n, sizeof n, "%.100s.model%d.1", prefix, i);
        if (nn_batchnorm_init(&d->bn[i], ps, n, nf) < 0) return -1;
    }
    snprintf(n, sizeof n, "%.100s.model%d.0", prefix, L + 1);
    return nn_conv_init(&d->conv[L + 1], ps, n, nf, 1, k, S1, p, pm, 1);
}

/* PyTorch's default initialisation: conv weights and biases uniform in
 * +-1/sqrt(fan_in), norm weights 1 and biases 0, codebook N(0,1). */
static void init_weights(nn_params *ps, uint64_t seed, uint64_t base) {
    float bound = 1; /* a bias takes the bound of the weight before it */
    for (int i = 0; i < ps->n; i++) {
        nn_param *p = ps->p[i];
        if (p->buffer) continue;
        if (p->ndim >= 4) {
            /* weight.size(1) * kernel for conv and transposed conv alike */
            double fan = (double)p->shape[1];
            for (int j = 2; j < p->ndim; j++) fan *= (double)p->shape[j];
            bound = (float)(1.0 / sqrt(fan));
            nn_init_uniform(p, bound, seed, base + (uint64_t)i);
        } else if (i > 0 && ps->p[i - 1]->ndim >= 4 && strstr(p->name, ".bias")) {
            nn_init_uniform(p, bound, seed, base + (uint64_t)i);
        }
    }
}

/* The strides of stage i (encoder down i, decoder up i): 2 on the axes
 * still to be halved, 1 on the others (the reference counts each axis's
 * halvings down by one per stage, in both directions). */
static void stage_strides(const int times[3], int i, int st[3]) {
    for (int a = 0; a < 3; a++) st[a] = i < times[a] ? 2 : 1;
}

int vqgan_init(vqgan *m, const vqgan_config *cfg, uint64_t seed) {
    memset(m, 0, sizeof *m);
    if (vqgan_config_check(cfg) < 0) return -1;
    m->cfg = *cfg;
    nn_params *g = &m->gen;
    int times[3], S = 0; /* halvings per axis; stage i halves the axes with times > i */
    for (int a = 0; a < 3; a++) {
        for (times[a] = 0; (1 << times[a]) < cfg->downsample[a]; times[a]++) {}
        if (times[a] > S) S = times[a];
    }
    m->stages = S;
    int nh = cfg->n_hiddens, top = nh << S, pm = cfg->pad_mode;
    char n[160];

    if (nn_conv_init(&m->conv_first, g, "encoder.conv_first.conv", cfg->image_channels, nh, K3, S1,
                     P1, pm, 1) < 0)
        return -1;
    for (int i = 0; i < S; i++) {
        int ci = nh << i, co = nh << (i + 1);
        int st[3], pad[3], keep = 0;
        stage_strides(times, i, st);
        for (int a = 0; a < 3; a++) {
            keep |= st[a] == 1;
            /* SamePadConv3d: k - s = 2 -> (1,1), 3 -> (2,1) */
            m->down_prepad[i][2 * a] = st[a] == 2 ? 1 : 2;
            m->down_prepad[i][2 * a + 1] = 1;
        }
        m->down_explicit[i] = keep;
        for (int a = 0; a < 3; a++) pad[a] = keep ? 0 : 1;
        snprintf(n, sizeof n, "encoder.conv_blocks.%d.down.conv", i);
        if (nn_conv_init(&m->down[i], g, n, ci, co, K4, st, pad, pm, 1) < 0) return -1;
        snprintf(n, sizeof n, "encoder.conv_blocks.%d.res", i);
        if (resblock_init(&m->enc_res[i], g, n, co, cfg) < 0) return -1;
    }
    if (nn_groupnorm_init(&m->enc_final, g, "encoder.final_block.0", top, cfg->num_groups, 1e-6f,
                          1) < 0)
        return -1;
    if (nn_conv_init(&m->pre_vq, g, "pre_vq_conv.conv", top, cfg->embedding_dim, K1, S1, P0, pm,
                     1) < 0 ||
        nn_conv_init(&m->post_vq, g, "post_vq_conv.conv", cfg->embedding_dim, top, K1, S1, P0, pm,
                     1) < 0)
        return -1;
    int64_t es[2] = {cfg->n_codes, cfg->embedding_dim}, nc = cfg->n_codes;
    if (!(m->emb = nn_param_new(g, "codebook.embeddings", "", 2, es, 1)) ||
        !(m->ema_n = nn_param_new(g, "codebook.N", "", 1, &nc, 1)) ||
        !(m->z_avg = nn_param_new(g, "codebook.z_avg", "", 2, es, 1)))
        return -1;

    const char *dec = cfg->spade ? "decoder.conv_blocks_spade" : "decoder.conv_blocks";
    if (cfg->spade) {
        if (spade_norm_init(&m->sdec_final, g, "decoder.final_block_spade", top, cfg) < 0) return -1;
    } else if (nn_groupnorm_init(&m->dec_final, g, "decoder.final_block.0", top, cfg->num_groups,
                                 1e-6f, 1) < 0) {
        return -1;
    }
    for (int i = 0; i < S; i++) {
        int ci = i == 0 ? top : nh << (S - i + 1), co = nh << (S - i);
        static const int P3[3] = {3, 3, 3};
        int st[3], prepad[6];
        stage_strides(times, i, st);
        for (int a = 0; a < 3; a++) /* SamePadConvTranspose3d's input padding */
            prepad[2 * a] = st[a] == 2 ? 1 : 2, prepad[2 * a + 1] = 1;
        snprintf(n, sizeof n, "%.100s.%d.up.convt", dec, i);
        if (nn_convt_init(&m->up[i], g, n, ci, co, K4, st, P3, prepad) < 0) return -1;
        for (int j = 0; j < 2; j++) {
            snprintf(n, sizeof n, "%.100s.%d.res%d", dec, i, j + 1);
            if (cfg->spade ? spade_res_init(&m->sdec_res[i][j], g, n, co, cfg)
                           : resblock_init(&m->dec_res[i][j], g, n, co, cfg))
                return -1;
        }
    }
    int last_in = S ? nh << 1 : top;
    if (nn_conv_init(&m->conv_last, g, cfg->spade ? "decoder.conv_last_spade.conv" : "decoder.conv_last.conv",
                     last_in, cfg->image_channels, K3, S1, P1, CONV3D_PAD_REPLICATE, 1) < 0)
        return -1;

    if (disc_init(&m->d2, &m->disc, "image_discriminator", 0, cfg) < 0 ||
        disc_init(&m->d3, &m->disc, "video_discriminator", 1, cfg) < 0)
        return -1;

    init_weights(g, seed, 0);
    init_weights(&m->disc, seed, 1 << 20);
    lsdm_rng_fill_normal(m->emb->data, m->emb->n, seed, 2 << 20, 0);
    memcpy(m->z_avg->data, m->emb->data, m->emb->n * sizeof(float));
    return 0;
}

void vqgan_free(vqgan *m) {
    nn_params_free(&m->gen);
    nn_params_free(&m->disc);
}

ckpt_param *vqgan_ckpt_params(const vqgan *m, int with_disc, int *count) {
    int ng, nd = 0;
    ckpt_param *g = nn_params_ckpt(&m->gen, NULL, &ng);
    ckpt_param *d = with_disc ? nn_params_ckpt(&m->disc, NULL, &nd) : NULL;
    if (!g || (with_disc && !d)) {
        free(g);
        free(d);
        return NULL;
    }
    ckpt_param *all = realloc(g, (size_t)(ng + nd + 1) * sizeof *all);
    if (!all) {
        free(g);
        free(d);
        lsdm_err("out of memory");
        return NULL;
    }
    if (nd) memcpy(all + ng, d, (size_t)nd * sizeof *d);
    free(d);
    *count = ng + nd;
    return all;
}

/* ---- forward ---- */

/* x + conv2(silu(gn2(conv1(silu(gn1(x)))))); x is kept. */
static nn_tensor *resblock(nn_ctx *c, const vq_resblock *r, nn_tensor *x) {
    nn_tensor *h = nn_gn_silu(c, &r->n1, x);
    nn_tensor *t = nn_conv3d(c, &r->c1, h);
    nn_drop(c, h);
    h = nn_gn_silu(c, &r->n2, t);
    nn_drop(c, t);
    t = nn_conv3d(c, &r->c2, h);
    nn_drop(c, h);
    return nn_add(c, x, t);
}

nn_tensor *vqgan_encode(nn_ctx *c, const vqgan *m, nn_tensor *x) {
    if (!x) return NULL;
    if (x->C != m->cfg.image_channels) {
        lsdm_err("input has %d channels, the model takes %d", x->C, m->cfg.image_channels);
        c->failed = 1;
        return NULL;
    }
    const int *f = m->cfg.downsample;
    if (x->D % f[0] || x->H % f[1] || x->W % f[2]) {
        lsdm_err("input %dx%dx%d is not a multiple of the downsampling %s", x->D, x->H, x->W,
                 vqgan_factor_text(&m->cfg));
        c->failed = 1;
        return NULL;
    }
    nn_tensor *h = nn_conv3d(c, &m->conv_first, x);
    for (int i = 0; i < m->stages; i++) {
        if (m->down_explicit[i]) {
            nn_tensor *p = nn_pad(c, h, m->down_prepad[i],
                                  m->cfg.pad_mode == CONV3D_PAD_REPLICATE ? PAD3D_REPLICATE : PAD3D_ZERO);
            nn_drop(c, h);
            h = p;
        }
        nn_tensor *t = nn_conv3d(c, &m->down[i], h);
        nn_drop(c, h);
        h = resblock(c, &m->enc_res[i], t);
        if (h != t) nn_drop(c, t);
    }
    nn_tensor *t = nn_gn_silu(c, &m->enc_final, h);
    nn_drop(c, h);
    h = nn_conv3d(c, &m->pre_vq, t);
    nn_drop(c, t);
    return h;
}

int vqgan_quantize(nn_ctx *c, const vqgan *m, const nn_tensor *z, int32_t *idx) {
    int K = m->cfg.n_codes, E = m->cfg.embedding_dim;
    if (z->C != E)
        return lsdm_err("latent has %d channels, the codebook has dimension %d", z->C, E);
    float *work = nn_scratch(c, codebook_workspace_size(K, E));
    if (!work) return -1;
    int r = codebook_nearest(idx, NULL, work, z->data, m->emb->data, z->N, E,
                             (long)z->D * z->H * z->W, K);
    nn_scratch_free(c, work);
    return r;
}

nn_tensor *vqgan_lookup(nn_ctx *c, const vqgan *m, const int32_t *idx, int N, int D, int H, int W) {
    nn_tensor *zq = nn_tensor_new(c, N, m->cfg.embedding_dim, D, H, W);
    if (!zq) return NULL;
    if (codebook_lookup(zq->data, idx, m->emb->data, N, m->cfg.embedding_dim, (long)D * H * W,
                        m->cfg.n_codes) < 0) {
        c->failed = 1;
        return NULL;
    }
    return zq;
}

/* Inference (not recording): the mlp convs are k(1,3,3) and never mix
 * depth, so gamma and beta are computed and applied a few slices at a
 * time; the hidden activation (spade_hidden channels at x's resolution, 1
 * GiB at med-lsdm 32x256x256) then never exists whole. Same arithmetic
 * per element as the unchunked path, so the same results. n is modulated
 * in place; sr is the mask at n's resolution. */
static nn_tensor *spade_norm_chunked(nn_ctx *c, const vq_spade_norm *s, nn_tensor *n,
                                     nn_tensor *sr, size_t chunk_bytes) {
    int N = n->N, C = n->C, D = n->D, L = sr->C;
    size_t HW = (size_t)n->H * n->W;
    size_t slice = (size_t)N * s->shared.Cout * HW * sizeof(float); /* hidden, one slice */
    int dc = (int)(chunk_bytes / (slice ? slice : 1));
    if (dc < 1) dc = 1;
    if (dc > D) dc = D;
    for (int d0 = 0; d0 < D && !c->failed; d0 += dc) {
        int k = D - d0 < dc ? D - d0 : dc;
        nn_tensor *sc = nn_tensor_new(c, N, L, k, n->H, n->W);
        if (!sc) return NULL;
        for (int i = 0; i < N * L; i++) /* (N,L,D,H,W) -> (N,L,k,H,W) */
            memcpy(sc->data + (size_t)i * k * HW, sr->data + ((size_t)i * D + d0) * HW,
                   (size_t)k * HW * sizeof(float));
        nn_tensor *a = nn_act(c, ACT_RELU, 0, nn_conv3d(c, &s->shared, sc));
        nn_drop(c, sc);
        nn_tensor *gb = nn_conv3d_pair(c, &s->gamma, &s->beta, a); /* (N,2C,k,H,W) */
        nn_drop(c, a);
        if (!gb) return NULL;
        for (int b = 0; b < N; b++)
            for (int ch = 0; ch < C; ch++) { /* n[:, :, d0:d0+k] *= (1 + gamma) += beta */
                float *x = n->data + (((size_t)b * C + ch) * D + d0) * HW;
                const float *gamma = gb->data + ((size_t)b * 2 * C + ch) * k * HW;
                spade_forward(x, x, gamma, gamma + (size_t)C * k * HW, (size_t)k * HW);
            }
        nn_drop(c, gb);
    }
    return c->failed ? NULL : n;
}

/* SPADEGroupNorm3D: gn(x) * (1 + gamma(seg)) + beta(seg), seg resized to x. */
static nn_tensor *spade_norm(nn_ctx *c, const vqgan *m, const vq_spade_norm *s, nn_tensor *x,
                             nn_tensor *seg) {
    nn_tensor *n = nn_gn(c, &s->gn, x);
    nn_tensor *sr = nn_resize_nearest(c, seg, x->D, x->H, x->W);
    if (!c->record) {
        nn_tensor *y = n && sr ? spade_norm_chunked(c, s, n, sr, m->spade_chunk_bytes
                                                                   ? m->spade_chunk_bytes
                                                                   : VQ_SPADE_CHUNK_BYTES)
                               : NULL;
        if (sr != seg) nn_drop(c, sr);
        return y;
    }
    nn_tensor *a = nn_act(c, ACT_RELU, 0, nn_conv3d(c, &s->shared, sr));
    if (sr != seg) nn_drop(c, sr);
    nn_tensor *gamma = nn_conv3d(c, &s->gamma, a);
    nn_tensor *beta = nn_conv3d(c, &s->beta, a);
    nn_drop(c, a);
    nn_tensor *y = nn_spade_mod(c, n, gamma, beta);
    nn_drop(c, gamma);
    nn_drop(c, beta);
    return y;
}

static nn_tensor *spade_resblock(nn_ctx *c, const vqgan *m, const vq_spade_res *r, nn_tensor *x, nn_tensor *seg) {
    nn_tensor *h = nn_act(c, ACT_SILU, 0, spade_norm(c, m, &r->n1, x, seg));
    nn_tensor *t = nn_conv3d(c, &r->c1, h);
    nn_drop(c, h);
    h = nn_act(c, ACT_SILU, 0, spade_norm(c, m, &r->n2, t, seg));
    nn_drop(c, t);
    t = nn_conv3d(c, &r->c2, h);
    nn_drop(c, h);
    return nn_add(c, x, t);
}

nn_tensor *vqgan_decode(nn_ctx *c, const vqgan *m, nn_tensor *zq, nn_tensor *seg) {
    if (!zq) return NULL;
    const vqgan_config *cfg = &m->cfg;
    if (zq->C != cfg->embedding_dim) {
        lsdm_err("latent has %d channels, the model takes %d", zq->C, cfg->embedding_dim);
        c->failed = 1;
        return NULL;
    }
    if (cfg->spade) {
        const int *f = cfg->downsample;
        if (!seg) {
            lsdm_err("the SPADE decoder needs a mask (--seg)");
            c->failed = 1;
            return NULL;
        }
        if (seg->C != cfg->label_nc || seg->N != zq->N || seg->D != zq->D * f[0] ||
            seg->H != zq->H * f[1] || seg->W != zq->W * f[2]) {
            lsdm_err("mask %dx%dx%dx%d does not match the latent (%d classes, %dx%dx%d)", seg->C,
                     seg->D, seg->H, seg->W, cfg->label_nc, zq->D * f[0], zq->H * f[1], zq->W * f[2]);
            c->failed = 1;
            return NULL;
        }
    }
    nn_tensor *h = nn_conv3d(c, &m->post_vq, zq), *t;
    t = cfg->spade ? nn_act(c, ACT_SILU, 0, spade_norm(c, m, &m->sdec_final, h, seg))
                   : nn_gn_silu(c, &m->dec_final, h);
    nn_drop(c, h);
    h = t;
    for (int i = 0; i < m->stages; i++) {
        t = nn_convt3d(c, &m->up[i], h);
        nn_drop(c, h);
        h = t;
        for (int j = 0; j < 2; j++) {
            t = cfg->spade ? spade_resblock(c, m, &m->sdec_res[i][j], h, seg)
                           : resblock(c, &m->dec_res[i][j], h);
            if (t != h) nn_drop(c, h);
            h = t;
        }
    }
    t = nn_conv3d(c, &m->conv_last, h);
    nn_drop(c, h);
    return nn_act(c, ACT_TANH, 0, t);
}

int vq_disc_forward(nn_ctx *c, const vq_disc *d, nn_tensor *x, nn_tensor **feat) {
    nn_tensor *h = x;
    for (int i = 0; i <= d->layers + 1; i++) {
        h = nn_conv3d(c, &d->conv[i], h);
        if (i > 0 && i <= d->layers) h = nn_bn_train(c, &d->bn[i], h);
        if (i <= d->layers) h = nn_act(c, ACT_LEAKY_RELU, 0.2f, h);
        feat[i] = h;
    }
    return nn_ctx_status(c);
}

/* ---- checkpoints ---- */

int vqgan_load(vqgan *m, const char *path, const char *config, ckpt_meta *meta) {
    vqgan_config cfg;
    st_file f;
    if (safetensors_open(&f, path) < 0) return -1;
    const char *text = safetensors_meta_get(&f, "config");
    int with_disc = safetensors_find(&f, "video_discriminator.model0.0.weight") != NULL;
    int rc;
    if (config) {
        rc = vqgan_config_load(&cfg, config);
    } else if (text) {
        vqgan_config_named(&cfg, "med-lsdm");
        rc = vqgan_config_parse(&cfg, text);
        if (rc < 0) lsdm_err_ctx("%s: config in the checkpoint", path);
    } else {
        rc = lsdm_err("%s has no model config (a converted PyTorch checkpoint?): give --config "
                      "med-lsdm, tiny or a config file", path);
    }
    safetensors_close(&f);
    if (rc < 0 || vqgan_init(m, &cfg, 0) < 0) return -1;
    int n;
    ckpt_param *p = vqgan_ckpt_params(m, with_disc, &n);
    if (!p) {
        vqgan_free(m);
        return -1;
    }
    rc = checkpoint_load(path, p, n, meta);
    free(p);
    if (rc < 0) {
        vqgan_free(m);
        return -1;
    }
    m->has_disc = with_disc;
    return 0;
}

int vqgan_save(const vqgan *m, const char *path, const ckpt_meta *extra) {
    int n;
    ckpt_param *p = vqgan_ckpt_params(m, 1, &n);
    if (!p) return -1;
    ckpt_meta meta = {0};
    int rc = ckpt_meta_copy(&meta, extra);
    if (rc == 0) rc = ckpt_meta_set(&meta, "config", vqgan_config_text(&m->cfg));
    if (rc == 0) rc = checkpoint_save(path, p, n, &meta, ST_F32);
    ckpt_meta_free(&meta);
    free(p);
    return rc;
}
