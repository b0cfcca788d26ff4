/* The diffusion UNet: construction with the reference names, PyTorch's
 * default initialisation and checkpoints (unet.h). The forward is in
 * unet_forward.c. */
#include "unet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "rng.h"

static const int K1[3] = {1, 1, 1}, K133[3] = {1, 3, 3}, K144[3] = {1, 4, 4};
static const int S1[3] = {1, 1, 1}, S122[3] = {1, 2, 2};
static const int P0[3] = {0, 0, 0}, P011[3] = {0, 1, 1}, P111[3] = {1, 1, 1};

/* Every conv of the UNet pads with zeros. */
static int conv(nn_conv *l, nn_params *ps, const char *name, int cin, int cout, const int k[3],
                const int s[3], const int p[3]) {
    return nn_conv_init(l, ps, name, cin, cout, k, s, p, CONV3D_PAD_ZERO, 1);
}

/* A 1x1 projection run as a 1x1x1 conv: nn.Linear (weight (out,in)) or
 * nn.Conv2d (weight (out,in,1,1)); the same data either way. */
static int proj(nn_conv *l, nn_params *ps, const char *name, int cin, int cout, int linear,
                int bias) {
    if (nn_conv_init(l, ps, name, cin, cout, K1, S1, P0, CONV3D_PAD_ZERO | NN_CONV_2D, bias) < 0)
        return -1;
    if (linear) l->w->ndim = 2; /* (out,in,1,1) -> (out,in) */
    return 0;
}

/* Residual(PreNorm(C, fn)) at `name`: fn is Attention inside
 * EinopsToAndFrom (fn.fn.fn) or SpatialLinearAttention (fn.fn). */
static int attn_init(unet_attn *a, nn_params *ps, const char *name, int C, int kind,
                     const unet_config *cfg) {
    char n[160];
    int64_t gs[5] = {1, C, 1, 1, 1};
    memset(a, 0, sizeof *a);
    a->kind = kind;
    a->heads = cfg->attn_heads;
    a->dh = kind == UNET_ATTN_TEMPORAL ? cfg->attn_dim_head : cfg->spatial_dim_head;
    /* Attention projects with nn.Linear inside EinopsToAndFrom, the linear
     * attention with nn.Conv2d (its to_out has a bias) */
    int hid = a->heads * a->dh, dense = kind != UNET_ATTN_LINEAR;
    const char *fn = dense ? "fn.fn.fn" : "fn.fn";
    snprintf(n, sizeof n, "%.100s.fn.norm.gamma", name);
    if (!(a->gamma = nn_param_new(ps, n, "", 5, gs, 0))) return -1;
    nn_init_const(a->gamma, 1);
    snprintf(n, sizeof n, "%.100s.%s.to_qkv", name, fn);
    if (proj(&a->qkv, ps, n, C, 3 * hid, dense, 0) < 0) return -1;
    snprintf(n, sizeof n, "%.100s.%s.to_out", name, fn);
    if (proj(&a->out, ps, n, hid, C, dense, !dense) < 0) return -1;
    if (kind == UNET_ATTN_TEMPORAL) {
        /* the shared RotaryEmbedding(min(32, dim_head)): its freqs buffer */
        a->rot = a->dh < 32 ? a->dh : 32;
        int64_t nf = a->rot / 2;
        snprintf(n, sizeof n, "%.100s.%s.rotary_emb.freqs", name, fn);
        if (!(a->freqs = nn_param_new(ps, n, "", 1, &nf, 1))) return -1;
        for (int i = 0; i < a->rot / 2; i++)
            a->freqs->data[i] = 1.0f / powf(10000.0f, (float)(2 * i) / (float)a->rot);
    }
    return 0;
}

static int spade_init(unet_spade *s, nn_params *ps, const char *name, int C, int groups,
                      const unet_config *cfg) {
    char n[160];
    if (nn_groupnorm_init(&s->gn, ps, "", C, groups, 1e-5f, 0) < 0) return -1;
    snprintf(n, sizeof n, "%.100s.mlp_shared.0", name);
    if (conv(&s->shared, ps, n, unet_mask_channels(cfg), cfg->spade_hidden, K133, S1, P011) < 0)
        return -1;
    snprintf(n, sizeof n, "%.100s.mlp_gamma", name);
    if (conv(&s->gamma, ps, n, cfg->spade_hidden, C, K133, S1, P011) < 0) return -1;
    snprintf(n, sizeof n, "%.100s.mlp_beta", name);
    return conv(&s->beta, ps, n, cfg->spade_hidden, C, K133, S1, P011);
}

/* SDEResBlock (spade 0) or SDDResBlock (spade 1) from din to dout, with a
 * time MLP when time_dim > 0. */
static int block_init(unet_block *b, nn_params *ps, const char *name, int din, int dout,
                      int time_dim, int spade, int groups, const unet_config *cfg) {
    char n[160];
    memset(b, 0, sizeof *b);
    b->spade = spade;
    b->has_mlp = time_dim > 0;
    b->has_res = din != dout;
    snprintf(n, sizeof n, "%.100s.mlp.1", name);
    if (b->has_mlp && nn_linear_init(&b->mlp, ps, n, time_dim, 2 * dout, 1) < 0) return -1;
    snprintf(n, sizeof n, "%.100s.conv1", name);
    if (conv(&b->c1, ps, n, din, dout, K133, S1, P011) < 0) return -1;
    snprintf(n, sizeof n, "%.100s.conv2", name);
    if (conv(&b->c2, ps, n, dout, dout, K133, S1, P011) < 0) return -1;
    for (int i = 0; i < 2; i++) {
        int C = i ? dout : din;
        if (spade) {
            snprintf(n, sizeof n, "%.100s.spade_norm%d", name, i + 1);
            if (spade_init(i ? &b->s2 : &b->s1, ps, n, C, groups, cfg) < 0) return -1;
        } else {
            snprintf(n, sizeof n, "%.100s.norm%d", name, i + 1);
            if (nn_groupnorm_init(i ? &b->n2 : &b->n1, ps, n, C, groups, 1e-5f, 1) < 0) return -1;
        }
    }
    snprintf(n, sizeof n, "%.100s.res_conv", name);
    return b->has_res ? conv(&b->res, ps, n, din, dout, K1, S1, P0) : 0;
}

/* final_conv.0: ResnetBlock(din, dout) without time (conv, norm, SiLU twice). */
static int resnet_init(unet_block *b, nn_params *ps, int din, int dout, int groups) {
    memset(b, 0, sizeof *b);
    b->has_res = din != dout;
    if (conv(&b->c1, ps, "final_conv.0.block1.proj", din, dout, K133, S1, P011) < 0 ||
        nn_groupnorm_init(&b->n1, ps, "final_conv.0.block1.norm", dout, groups, 1e-5f, 1) < 0 ||
        conv(&b->c2, ps, "final_conv.0.block2.proj", dout, dout, K133, S1, P011) < 0 ||
        nn_groupnorm_init(&b->n2, ps, "final_conv.0.block2.norm", dout, groups, 1e-5f, 1) < 0)
        return -1;
    return b->has_res ? conv(&b->res, ps, "final_conv.0.res_conv", din, dout, K1, S1, P0) : 0;
}

/* PyTorch's defaults: conv, transposed conv and linear weights and their
 * biases uniform in +-1/sqrt(fan_in) (fan_in = weight.size(1) * kernel),
 * norm scales 1 and shifts 0, the embedding table N(0,1). */
static void init_weights(unet *m, uint64_t seed) {
    nn_params *ps = &m->ps;
    float bound = 1;
    for (int i = 0; i < ps->n; i++) {
        nn_param *p = ps->p[i];
        size_t len = strlen(p->name);
        if (p->buffer || (len > 6 && !strcmp(p->name + len - 6, ".gamma"))) continue;
        if (p == m->relpos) {
            lsdm_rng_fill_normal(p->data, p->n, seed, (uint64_t)i, 0);
        } else if (p->ndim >= 2) {
            double fan = (double)p->shape[1];
            for (int j = 2; j < p->ndim; j++) fan *= (double)p->shape[j];
            bound = (float)(1.0 / sqrt(fan));
            nn_init_uniform(p, bound, seed, (uint64_t)i);
        } else if (i > 0 && ps->p[i - 1]->ndim >= 2 && ps->p[i - 1] != m->relpos &&
                   strstr(p->name, ".bias")) {
            nn_init_uniform(p, bound, seed, (uint64_t)i);
        }
    }
}

static int build(unet *m) {
    const unet_config *cfg = &m->cfg;
    nn_params *ps = &m->ps;
    int L = cfg->levels, dim = cfg->dim, tdim = 4 * dim, g = cfg->groups;
    int dims[UNET_MAX_LEVELS + 1];
    char n[160];
    dims[0] = dim;
    for (int i = 0; i < L; i++) dims[i + 1] = dim * cfg->dim_mults[i];
    int64_t rs[2] = {UNET_REL_BUCKETS, cfg->attn_heads};
    if (!(m->relpos = nn_param_new(ps, "time_rel_pos_bias.relative_attention_bias.weight", "", 2,
                                   rs, 0)))
        return -1;
    int k = cfg->init_kernel, ik[3] = {1, k, k}, ip[3] = {0, k / 2, k / 2};
    if (conv(&m->init_conv, ps, "init_conv", cfg->channels, dim, ik, S1, ip) < 0 ||
        attn_init(&m->init_attn, ps, "init_temporal_attn", dim, UNET_ATTN_TEMPORAL, cfg) < 0 ||
        nn_linear_init(&m->time1, ps, "time_mlp.1", dim, tdim, 1) < 0 ||
        nn_linear_init(&m->time2, ps, "time_mlp.3", tdim, tdim, 1) < 0)
        return -1;
    for (int i = 0; i < L; i++) {
        int din = dims[i], dout = dims[i + 1];
        snprintf(n, sizeof n, "downs.%d.0", i);
        if (block_init(&m->down[i], ps, n, din, dout, tdim, 0, g, cfg) < 0) return -1;
        snprintf(n, sizeof n, "downs.%d.1", i);
        if (attn_init(&m->down_lin[i], ps, n, dout, UNET_ATTN_LINEAR, cfg) < 0) return -1;
        snprintf(n, sizeof n, "downs.%d.2", i);
        if (attn_init(&m->down_t[i], ps, n, dout, UNET_ATTN_TEMPORAL, cfg) < 0) return -1;
        snprintf(n, sizeof n, "downs.%d.3", i);
        if (i < L - 1 && conv(&m->downsample[i], ps, n, dout, dout, K144, S122, P011) < 0)
            return -1;
    }
    int mid = dims[L];
    if (block_init(&m->mid1, ps, "mid_block1", mid, mid, 0, 1, UNET_MID_GROUPS, cfg) < 0 ||
        attn_init(&m->mid_spatial, ps, "mid_spatial_attn", mid, UNET_ATTN_SPATIAL, cfg) < 0 ||
        attn_init(&m->mid_t, ps, "mid_temporal_attn", mid, UNET_ATTN_TEMPORAL, cfg) < 0 ||
        block_init(&m->mid2, ps, "mid_block2", mid, mid, 0, 1, UNET_MID_GROUPS, cfg) < 0)
        return -1;
    for (int i = 0; i < L; i++) {
        int din = dims[L - 1 - i], dout = dims[L - i];
        snprintf(n, sizeof n, "ups.%d.0", i);
        if (block_init(&m->up[i], ps, n, 2 * dout, din, tdim, 1, g, cfg) < 0) return -1;
        snprintf(n, sizeof n, "ups.%d.1", i);
        if (attn_init(&m->up_lin[i], ps, n, din, UNET_ATTN_LINEAR, cfg) < 0) return -1;
        snprintf(n, sizeof n, "ups.%d.2", i);
        if (attn_init(&m->up_t[i], ps, n, din, UNET_ATTN_TEMPORAL, cfg) < 0) return -1;
        snprintf(n, sizeof n, "ups.%d.3", i);
        if (i < L - 1 && nn_convt_init(&m->upsample[i], ps, n, din, din, K144, S122, P011, NULL) < 0)
            return -1;
    }
    if (resnet_init(&m->final_block, ps, 2 * dim, dim, g) < 0 ||
        conv(&m->final_conv, ps, "final_conv.1", dim, cfg->channels, K1, S1, P0) < 0)
        return -1;
    if (cfg->segconv) {
        /* SegConv3D: its k(1,3,3) convs pad 1 on every axis, depth too */
        int w[4] = {cfg->label_nc, cfg->seg_hidden[0], cfg->seg_hidden[1], cfg->spade_input_nc};
        for (int i = 0; i < 3; i++) {
            snprintf(n, sizeof n, "segconv3d.conv%d", i + 1);
            if (conv(&m->seg[i], ps, n, w[i], w[i + 1], K133, S1, P111) < 0) return -1;
        }
    }
    return 0;
}

int unet_init(unet *m, const unet_config *cfg, uint64_t seed) {
    memset(m, 0, sizeof *m);
    if (unet_config_check(cfg) < 0) return -1;
    m->cfg = *cfg;
    if (build(m) < 0) {
        unet_free(m);
        return -1;
    }
    init_weights(m, seed);
    return 0;
}

void unet_free(unet *m) {
    nn_params_free(&m->ps);
}

size_t unet_param_count(const unet *m) {
    return nn_params_count(&m->ps, 0);
}

/* ---- checkpoints ---- */

ckpt_param *unet_ckpt_params(const unet *m, int *count) {
    return nn_params_ckpt(&m->ps, NULL, count);
}

int unet_load(unet *m, const char *path, const char *config, ckpt_meta *meta) {
    unet_config cfg;
    st_file f;
    if (safetensors_open(&f, path) < 0) return -1;
    const char *text = safetensors_meta_get(&f, "config");
    int rc;
    if (config) {
        rc = unet_config_load(&cfg, config);
    } else if (text) {
        unet_config_named(&cfg, "med-lsdm");
        rc = unet_config_parse(&cfg, text);
        if (rc < 0) lsdm_err_ctx("%s: config in the checkpoint", path);
    } else {
        rc = lsdm_err("%s has no model config (a converted PyTorch checkpoint?): give --config "
                      "med-lsdm, tiny or a config file", path);
    }
    safetensors_close(&f);
    if (rc < 0 || unet_init(m, &cfg, 0) < 0) return -1;
    int n;
    ckpt_param *p = unet_ckpt_params(m, &n);
    if (!p) {
        unet_free(m);
        return -1;
    }
    rc = checkpoint_load(path, p, n, meta);
    free(p);
    if (rc < 0) {
        unet_free(m);
        return -1;
    }
    return 0;
}

int unet_save(const unet *m, const char *path, const ckpt_meta *extra) {
    int n;
    ckpt_param *p = unet_ckpt_params(m, &n);
    if (!p) return -1;
    ckpt_meta meta = {0};
    int rc = ckpt_meta_copy(&meta, extra);
    if (rc == 0) rc = ckpt_meta_set(&meta, "config", unet_config_text(&m->cfg));
    if (rc == 0) rc = checkpoint_save(path, p, n, &meta, ST_F32);
    ckpt_meta_free(&meta);
    free(p);
    return rc;
}
