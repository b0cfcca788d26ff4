/* MedicalNet's 3D ResNet as a feature extractor (resnet3d.h): inference
 * only, on nn tensors, each intermediate dropped as soon as it is dead. */
#include "resnet3d.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "err.h"
#include "rng.h"
#include "safetensors.h"
#include "../kernels/batchnorm.h"
#include "../kernels/pool.h"

/* ---- configuration ---- */

static const int LAYOUT[4][4] = {{1, 1, 1, 1}, {2, 2, 2, 2}, {3, 4, 6, 3}, {3, 4, 6, 3}};

static int layout_index(int depth) {
    return depth == 10 ? 0 : depth == 18 ? 1 : depth == 34 ? 2 : depth == 50 ? 3 : -1;
}

int resnet3d_parse_arch(const char *s, int *depth) {
    const char *p = strncmp(s, "resnet", 6) == 0 ? s + 6 : s;
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p || *end || layout_index((int)v) < 0)
        return lsdm_err("'%s' is not resnet10, resnet18, resnet34 or resnet50", s);
    *depth = (int)v;
    return 0;
}

int resnet3d_config_check(const resnet3d_config *cfg) {
    if (layout_index(cfg->depth) < 0) return lsdm_err("resnet%d: no such network (10, 18, 34 or 50)", cfg->depth);
    if (cfg->shortcut != 'A' && cfg->shortcut != 'B') return lsdm_err("shortcut '%c' is not A or B", cfg->shortcut);
    if (cfg->width < 1 || cfg->width > 1024) return lsdm_err("width %d is not in 1..1024", cfg->width);
    return 0;
}

/* ---- construction ---- */

static int conv_init(nn_conv *l, nn_params *ps, const char *name, int cin, int cout, int k, int s, int p) {
    int kk[3] = {k, k, k}, ss[3] = {s, s, s}, pp[3] = {p, p, p};
    return nn_conv_init(l, ps, name, cin, cout, kk, ss, pp, CONV3D_PAD_ZERO, 0);
}

/* One block, named prefix (e.g. "layer2.0"); *inplanes becomes its output
 * channel count. As MedicalNet's BasicBlock / Bottleneck. */
static int block_init(resnet3d_block *b, nn_params *ps, const char *prefix, int *inplanes, int planes,
                      int stride, int dilation, int bottleneck, char shortcut) {
    char n[96];
    int out = bottleneck ? 4 * planes : planes, rc = 0;
    b->stride = stride, b->dilation = dilation, b->planes_out = out;
#define NAME(s) (snprintf(n, sizeof n, "%s.%s", prefix, s), n)
    if (bottleneck) {
        rc |= conv_init(&b->conv1, ps, NAME("conv1"), *inplanes, planes, 1, 1, 0);
        rc |= nn_batchnorm_init(&b->bn1, ps, NAME("bn1"), planes);
        rc |= conv_init(&b->conv2, ps, NAME("conv2"), planes, planes, 3, stride, dilation);
        rc |= nn_batchnorm_init(&b->bn2, ps, NAME("bn2"), planes);
        rc |= conv_init(&b->conv3, ps, NAME("conv3"), planes, out, 1, 1, 0);
        rc |= nn_batchnorm_init(&b->bn3, ps, NAME("bn3"), out);
    } else {
        rc |= conv_init(&b->conv1, ps, NAME("conv1"), *inplanes, planes, 3, stride, dilation);
        rc |= nn_batchnorm_init(&b->bn1, ps, NAME("bn1"), planes);
        rc |= conv_init(&b->conv2, ps, NAME("conv2"), planes, planes, 3, 1, dilation);
        rc |= nn_batchnorm_init(&b->bn2, ps, NAME("bn2"), planes);
    }
    if (stride != 1 || *inplanes != out) {
        b->has_down = shortcut;
        if (shortcut == 'B') {
            rc |= conv_init(&b->down, ps, NAME("downsample.0"), *inplanes, out, 1, stride, 0);
            rc |= nn_batchnorm_init(&b->down_bn, ps, NAME("downsample.1"), out);
        }
    }
#undef NAME
    *inplanes = out;
    return rc ? -1 : 0;
}

int resnet3d_init(resnet3d *m, const resnet3d_config *cfg) {
    memset(m, 0, sizeof *m);
    if (resnet3d_config_check(cfg) < 0) return -1;
    m->cfg = *cfg;
    const int *layers = LAYOUT[layout_index(cfg->depth)];
    int bottleneck = cfg->depth == 50, w = cfg->width;
    m->nblocks = layers[0] + layers[1] + layers[2] + layers[3];
    m->blocks = calloc((size_t)m->nblocks, sizeof *m->blocks);
    if (!m->blocks) return lsdm_err("out of memory");
    if (conv_init(&m->conv1, &m->params, "conv1", 1, w, 7, 2, 3) < 0 ||
        nn_batchnorm_init(&m->bn1, &m->params, "bn1", w) < 0)
        return -1;
    static const int STRIDE[4] = {1, 2, 1, 1}, DILATION[4] = {1, 1, 2, 4};
    int inplanes = w, k = 0;
    for (int l = 0; l < 4; l++)
        for (int i = 0; i < layers[l]; i++, k++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "layer%d.%d", l + 1, i);
            if (block_init(&m->blocks[k], &m->params, prefix, &inplanes, w << l, i ? 1 : STRIDE[l], DILATION[l],
                           bottleneck, cfg->shortcut) < 0)
                return -1;
        }
    m->feature_dim = inplanes;
    return 0;
}

void resnet3d_init_random(resnet3d *m, uint64_t seed) {
    for (int i = 0; i < m->params.n; i++) {
        nn_param *p = m->params.p[i];
        size_t len = strlen(p->name);
        if (p->ndim == 5) {
            /* kaiming_normal_(mode='fan_out'), gain sqrt(2) for ReLU */
            double fan_out = (double)p->shape[0] * p->shape[2] * p->shape[3] * p->shape[4];
            float sd = (float)sqrt(2.0 / fan_out);
            lsdm_rng_fill_normal(p->data, p->n, seed, (uint64_t)i, 0);
            for (size_t j = 0; j < p->n; j++) p->data[j] *= sd;
        } else {
            int ones = (len > 7 && !strcmp(p->name + len - 7, ".weight")) || (len > 12 && !strcmp(p->name + len - 12, ".running_var"));
            nn_init_const(p, ones ? 1.0f : 0.0f);
        }
    }
}

void resnet3d_free(resnet3d *m) {
    nn_params_free(&m->params);
    free(m->blocks);
    memset(m, 0, sizeof *m);
}

/* ---- weights ---- */

int resnet3d_file_config(const char *path, resnet3d_config *cfg, int *found) {
    st_file f;
    *found = 0;
    if (safetensors_open(&f, path) < 0) return lsdm_err_ctx("weights");
    const char *arch = safetensors_meta_get(&f, "arch"), *sc = safetensors_meta_get(&f, "shortcut");
    const char *width = safetensors_meta_get(&f, "width");
    int rc = 0;
    if (arch && !(rc = resnet3d_parse_arch(arch, &cfg->depth))) *found |= 1;
    if (!rc && sc) {
        if ((sc[0] == 'A' || sc[0] == 'B') && !sc[1]) cfg->shortcut = sc[0], *found |= 2;
        else rc = lsdm_err("metadata shortcut '%s' is not A or B", sc);
    }
    if (!rc && width) {
        char *end;
        long v = strtol(width, &end, 10);
        if (end == width || *end || v < 1 || v > 1024) rc = lsdm_err("metadata width '%s' is not in 1..1024", width);
        else cfg->width = (int)v, *found |= 4;
    }
    if (rc) lsdm_err_ctx("weights %s", path);
    safetensors_close(&f);
    return rc;
}

int resnet3d_load(resnet3d *m, const char *path) {
    /* checkpoint_load refuses tensors the model lacks: list the file's
     * segmentation head too, loaded into a scratch buffer and forgotten */
    st_file f;
    if (safetensors_open(&f, path) < 0) return lsdm_err_ctx("weights");
    int n = 0, rc = 0;
    ckpt_param *p = nn_params_ckpt(&m->params, NULL, &n);
    ckpt_param *all = p ? realloc(p, (size_t)(n + f.n + 1) * sizeof *p) : NULL;
    if (!all) {
        free(p);
        safetensors_close(&f);
        return lsdm_err("out of memory");
    }
    size_t scratch = 0;
    int total = n;
    for (int j = 0; j < f.n; j++)
        if (!strncmp(f.t[j].name, "conv_seg.", 9)) {
            ckpt_param *q = &all[total++];
            memset(q, 0, sizeof *q);
            q->name = f.t[j].name;
            q->ndim = f.t[j].ndim;
            for (int d = 0; d < q->ndim; d++) q->shape[d] = f.t[j].shape[d];
            if (ckpt_param_numel(q) > scratch) scratch = ckpt_param_numel(q);
        }
    /* every head tensor shares one buffer: only its last fill survives */
    float *buf = total > n ? malloc((scratch ? scratch : 1) * sizeof *buf) : NULL;
    if (total > n && !buf) rc = lsdm_err("out of memory");
    for (int i = n; i < total; i++) all[i].data = buf;
    if (!rc) rc = checkpoint_load(path, all, total, NULL);
    free(buf);
    free(all);
    safetensors_close(&f);
    return rc;
}

/* ---- forward ---- */

static nn_tensor *fail(nn_ctx *c) {
    c->failed = 1;
    return NULL;
}

/* y = conv(x) with dilation (nn_conv3d has none). x is kept. */
static nn_tensor *conv_fwd(nn_ctx *c, const nn_conv *l, int dilation, nn_tensor *x) {
    if (!x) return NULL;
    conv3d_dims d = {0};
    d.N = x->N, d.Cin = x->C, d.D = x->D, d.H = x->H, d.W = x->W, d.Cout = l->Cout;
    d.kd = l->k[0], d.kh = l->k[1], d.kw = l->k[2];
    d.sd = l->s[0], d.sh = l->s[1], d.sw = l->s[2];
    d.pd = l->p[0], d.ph = l->p[1], d.pw = l->p[2];
    d.dd = d.dh = d.dw = dilation;
    if (x->C != l->Cin) {
        lsdm_err("%s: input has %d channels, the layer takes %d", l->w->name, x->C, l->Cin);
        return fail(c);
    }
    if (conv3d_dims_init(&d) < 0) {
        lsdm_err_ctx("%s: input %dx%dx%d", l->w->name, x->D, x->H, x->W);
        return fail(c);
    }
    nn_tensor *y = nn_tensor_new(c, d.N, d.Cout, d.OD, d.OH, d.OW);
    size_t ws = conv3d_forward_workspace_size(&d);
    float *work = ws ? nn_scratch(c, ws) : NULL;
    if (!y || (ws && !work)) {
        nn_drop(c, y);
        return fail(c);
    }
    conv3d_forward(y->data, work, x->data, l->w->data, NULL, &d);
    nn_scratch_free(c, work);
    return y;
}

/* BatchNorm (running statistics) in place, then ReLU when relu. */
static nn_tensor *bn_fwd(nn_ctx *c, const nn_batchnorm *l, nn_tensor *x, int relu) {
    if (!x) return NULL;
    batchnorm_forward(x->data, x->data, l->w->data, l->b->data, l->rmean->data, l->rvar->data, x->N, x->C,
                      x->D * x->H * x->W, l->eps);
    return relu ? nn_act(c, ACT_RELU, 0, x) : x;
}

/* conv - bn (- relu), the conv's input kept. */
static nn_tensor *conv_bn(nn_ctx *c, const nn_conv *l, const nn_batchnorm *bn, int dilation, nn_tensor *x,
                          int relu) {
    return bn_fwd(c, bn, conv_fwd(c, l, dilation, x), relu);
}

/* MedicalNet's maxpool: kernel 3, stride 2, padding 1. Consumes x. */
static nn_tensor *maxpool_fwd(nn_ctx *c, nn_tensor *x) {
    if (!x) return NULL;
    pool3d_dims d;
    int in[3] = {x->D, x->H, x->W}, k[3] = {3, 3, 3}, s[3] = {2, 2, 2}, p[3] = {1, 1, 1};
    if (pool3d_dims_init(&d, x->N * x->C, in, k, s, p) < 0) return fail(c);
    nn_tensor *y = nn_tensor_new(c, x->N, x->C, d.out[0], d.out[1], d.out[2]);
    float *idx = y ? nn_scratch(c, y->n) : NULL;
    if (!idx) return fail(c);
    maxpool3d_forward(y->data, (int *)idx, x->data, &d);
    nn_scratch_free(c, idx);
    nn_drop(c, x);
    return y;
}

/* Shortcut A: x[:, :, ::s, ::s, ::s] with zero channels up to C
 * (avg_pool3d with kernel 1 is a strided pick). */
static nn_tensor *shortcut_a(nn_ctx *c, nn_tensor *x, int s, int C) {
    int D = (x->D - 1) / s + 1, H = (x->H - 1) / s + 1, W = (x->W - 1) / s + 1;
    nn_tensor *y = nn_tensor_new(c, x->N, C, D, H, W);
    if (!y) return fail(c);
    size_t S = (size_t)D * H * W;
    for (int n = 0; n < x->N; n++)
        for (int ch = 0; ch < C; ch++) {
            float *o = y->data + ((size_t)n * C + ch) * S;
            if (ch >= x->C) {
                memset(o, 0, S * sizeof *o);
                continue;
            }
            const float *in = x->data + ((size_t)n * x->C + ch) * x->D * x->H * x->W;
            for (int d = 0; d < D; d++)
                for (int h = 0; h < H; h++)
                    for (int w = 0; w < W; w++)
                        *o++ = in[((size_t)d * s * x->H + (size_t)h * s) * x->W + (size_t)w * s];
        }
    return y;
}

/* out = relu(branch(x) + shortcut(x)). Consumes x. */
static nn_tensor *block_fwd(nn_ctx *c, const resnet3d_block *b, int bottleneck, nn_tensor *x) {
    if (!x) return NULL;
    int dl = b->dilation;
    nn_tensor *h = conv_bn(c, &b->conv1, &b->bn1, bottleneck ? 1 : dl, x, 1), *t;
    if (bottleneck) {
        t = conv_bn(c, &b->conv2, &b->bn2, dl, h, 1);
        nn_drop(c, h);
        h = conv_bn(c, &b->conv3, &b->bn3, 1, t, 0);
    } else {
        t = h;
        h = conv_bn(c, &b->conv2, &b->bn2, dl, t, 0);
    }
    nn_drop(c, t);
    nn_tensor *r = x;
    if (b->has_down == 'B') r = conv_bn(c, &b->down, &b->down_bn, 1, x, 0);
    else if (b->has_down == 'A') r = shortcut_a(c, x, b->stride, b->planes_out);
    if (r != x) nn_drop(c, x);
    if (!h || !r) {
        nn_drop(c, h);
        nn_drop(c, r);
        return fail(c);
    }
    nn_tensor *y = nn_add(c, r, h); /* into h */
    nn_drop(c, r);
    return nn_act(c, ACT_RELU, 0, y);
}

int resnet3d_features(nn_ctx *c, const resnet3d *m, nn_tensor *x, float *feat) {
    if (x->C != 1) return lsdm_err("the network takes 1 channel, the input has %d", x->C);
    int bottleneck = m->cfg.depth == 50;
    nn_tensor *h = maxpool_fwd(c, conv_bn(c, &m->conv1, &m->bn1, 1, x, 1));
    for (int i = 0; i < m->nblocks && h; i++) h = block_fwd(c, &m->blocks[i], bottleneck, h);
    if (!h) return -1; /* the failing step said why */
    /* global average pooling, summed in double */
    size_t S = (size_t)h->D * h->H * h->W;
    for (int n = 0; n < h->N; n++)
        for (int ch = 0; ch < h->C; ch++) {
            const float *v = h->data + ((size_t)n * h->C + ch) * S;
            double s = 0;
            for (size_t i = 0; i < S; i++) s += v[i];
            feat[(size_t)n * h->C + ch] = (float)(s / (double)S);
        }
    nn_drop(c, h);
    return 0;
}
