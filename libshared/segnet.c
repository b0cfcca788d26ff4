/* The reference segmentation UNet3D (segnet.h). */
#include "segnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kvtext.h"
#include "nn_attn.h"
#include "nn_extra.h"
#include "rng.h"

/* ---- configs ---- */

int segnet_config_named(segnet_config *cfg, const char *name, int classes) {
    segnet_config ref = {.in_channels = 1, .classes = classes, .filters = 64, .num_downs = 3};
    *cfg = ref;
    if (!strcmp(name, "reference")) return 0;
    /* tiny: the same layout at a quarter of the width, which trains on
     * phantoms on 2 cores in minutes */
    if (!strcmp(name, "tiny")) {
        cfg->filters = 16;
        return 0;
    }
    return lsdm_err("unknown segmenter config '%s' (reference, tiny, or a file)", name);
}

int segnet_config_check(const segnet_config *c) {
    if (c->in_channels < 1 || c->in_channels > 64) return lsdm_err("in_channels %d is not in 1..64", c->in_channels);
    if (c->classes < 2 || c->classes > 65536) return lsdm_err("classes %d is not in 2..65536", c->classes);
    if (c->filters < 1 || c->filters > 1024) return lsdm_err("filters %d is not in 1..1024", c->filters);
    if (c->num_downs < 1 || c->num_downs > SEGNET_MAX_DOWNS)
        return lsdm_err("num_downs %d is not in 1..%d", c->num_downs, SEGNET_MAX_DOWNS);
    if ((long)c->filters << c->num_downs > 65536) return lsdm_err("filters << num_downs is too wide");
    return 0;
}

static int cfg_set(void *ctx, const char *key, const char *val) {
    segnet_config *c = ctx;
    int *f = !strcmp(key, "in_channels") ? &c->in_channels : !strcmp(key, "classes") ? &c->classes
           : !strcmp(key, "filters") ? &c->filters : !strcmp(key, "num_downs") ? &c->num_downs : NULL;
    if (!f) return -2;
    char *end;
    long v = strtol(val, &end, 10);
    if (end == val || *end || v < 0 || v > 1 << 20) return -1;
    *f = (int)v;
    return 0;
}

int segnet_config_parse(segnet_config *cfg, const char *text) {
    if (kv_parse(text, "segmenter config", cfg_set, cfg) < 0) return -1;
    return segnet_config_check(cfg);
}

int segnet_config_load(segnet_config *cfg, const char *name_or_path, int classes) {
    if (!strcmp(name_or_path, "reference") || !strcmp(name_or_path, "tiny"))
        return segnet_config_named(cfg, name_or_path, classes);
    char buf[4096];
    if (kv_read_file(name_or_path, buf, sizeof buf) < 0) return -1;
    segnet_config_named(cfg, "reference", classes);
    return segnet_config_parse(cfg, buf) < 0 ? lsdm_err_ctx("%s", name_or_path) : 0;
}

const char *segnet_config_text(const segnet_config *c) {
    static char buf[160];
    snprintf(buf, sizeof buf, "in_channels = %d\nclasses = %d\nfilters = %d\nnum_downs = %d\n",
             c->in_channels, c->classes, c->filters, c->num_downs);
    return buf;
}

/* ---- construction ---- */

static const int K3[3] = {3, 3, 3}, K2[3] = {2, 2, 2}, K1[3] = {1, 1, 1};
static const int S1[3] = {1, 1, 1}, S2[3] = {2, 2, 2}, P1[3] = {1, 1, 1}, P0[3] = {0, 0, 0};

/* Level l's module path: "model.model", then ".2.model" (below level 0:
 * its Sequential index 2) and ".3.model" per further level. */
static void level_path(char *buf, size_t n, int l) {
    int k = snprintf(buf, n, "model.model");
    for (int i = 1; i <= l && k > 0 && (size_t)k < n; i++)
        k += snprintf(buf + k, n - (size_t)k, i == 1 ? ".2.model" : ".3.model");
}

static int conv_at(nn_conv *l, nn_params *ps, const char *path, const char *idx, int ci, int co,
                   const int *k, const int *p) {
    char name[200];
    snprintf(name, sizeof name, "%s.%s", path, idx);
    return nn_conv_init(l, ps, name, ci, co, k, S1, p, CONV3D_PAD_ZERO, 1);
}

static int build(segnet *m) {
    const segnet_config *cfg = &m->cfg;
    nn_params *ps = &m->ps;
    int L = cfg->num_downs;
    char path[120], name[200];
    for (int l = 0; l <= L; l++) {
        segnet_level *v = &m->lv[l];
        int F = cfg->filters << l, Fin = l ? cfg->filters << (l - 1) : cfg->in_channels;
        int o = l ? 1 : 0; /* below level 0 the Sequential starts with the pool */
        char i1[8], i2[8], i3[8], i4[8], iu[8];
        snprintf(i1, sizeof i1, "%d.0", o), snprintf(i2, sizeof i2, "%d.0", o + 1);
        snprintf(i3, sizeof i3, "%d.0", o + 3), snprintf(i4, sizeof i4, "%d.0", o + 4);
        snprintf(iu, sizeof iu, "%d", l == L ? 3 : 6);
        level_path(path, sizeof path, l);
        if (conv_at(&v->c1, ps, path, i1, Fin, F, K3, P1) < 0 || conv_at(&v->c2, ps, path, i2, F, F, K3, P1) < 0)
            return -1;
        snprintf(name, sizeof name, "%s.%d.1", path, o);
        if (nn_groupnorm_init(&v->n1, ps, name, F, F, 1e-5f, 0) < 0) return -1;
        snprintf(name, sizeof name, "%s.%d.1", path, o + 1);
        if (nn_groupnorm_init(&v->n2, ps, name, F, F, 1e-5f, 0) < 0) return -1;
        if (l < L && (conv_at(&v->c3, ps, path, i3, 2 * F, F, K3, P1) < 0 ||
                      conv_at(&v->c4, ps, path, i4, F, F, K3, P1) < 0))
            return -1;
        if (l > 0) {
            snprintf(name, sizeof name, "%s.%s", path, iu);
            if (nn_convt_init(&v->up, ps, name, F, Fin, K2, S2, P0, NULL) < 0) return -1;
        }
    }
    level_path(path, sizeof path, 0);
    return conv_at(&m->final, ps, path, "5", cfg->filters, cfg->classes, K1, P0);
}

/* PyTorch's default init: weights and biases uniform in +-1/sqrt(fan_in),
 * fan_in = weight.size(1) * kernel volume (for a transposed conv that is
 * its output channels, as torch computes it). */
static void init_weights(segnet *m, uint64_t seed) {
    float bound = 1;
    for (int i = 0; i < m->ps.n; i++) {
        nn_param *p = m->ps.p[i];
        if (p->ndim >= 2) {
            double fan = (double)p->shape[1];
            for (int j = 2; j < p->ndim; j++) fan *= (double)p->shape[j];
            bound = (float)(1.0 / sqrt(fan));
        }
        nn_init_uniform(p, bound, seed, (uint64_t)i);
    }
}

int segnet_init(segnet *m, const segnet_config *cfg, uint64_t seed) {
    memset(m, 0, sizeof *m);
    if (segnet_config_check(cfg) < 0) return -1;
    m->cfg = *cfg;
    if (build(m) < 0) {
        segnet_free(m);
        return -1;
    }
    init_weights(m, seed);
    return 0;
}

void segnet_free(segnet *m) {
    nn_params_free(&m->ps);
    memset(m, 0, sizeof *m);
}

size_t segnet_param_count(const segnet *m) { return nn_params_count(&m->ps, 0); }

ckpt_param *segnet_ckpt_params(const segnet *m, int *count) {
    ckpt_param *p = nn_params_ckpt(&m->ps, NULL, count);
    if (!p) lsdm_err("out of memory");
    return p;
}

/* ---- forward ---- */

/* Without a tape, a tensor that is used up goes back to the cache. */
static void used(nn_ctx *c, nn_tensor *t) {
    if (!c->record && t) nn_drop(c, t);
}

/* leaky(norm(conv(x))) */
static nn_tensor *contract(nn_ctx *c, const nn_conv *cv, const nn_groupnorm *n, nn_tensor *x) {
    nn_tensor *h = nn_conv3d(c, cv, x);
    nn_tensor *y = nn_gn(c, n, h);
    used(c, h);
    return nn_act(c, ACT_LEAKY_RELU, 0.01f, y);
}

static nn_tensor *expand(nn_ctx *c, const nn_conv *cv, nn_tensor *x) {
    return nn_act(c, ACT_LEAKY_RELU, 0.01f, nn_conv3d(c, cv, x));
}

/* Level l on its input x: level 0 returns the logits, the others
 * cat([x, up(result)]). x is kept (the skip). */
static nn_tensor *level_forward(nn_ctx *c, const segnet *m, int l, nn_tensor *x) {
    const segnet_level *v = &m->lv[l];
    nn_tensor *h = x;
    if (l > 0) h = nn_maxpool(c, x, K2);
    nn_tensor *a = contract(c, &v->c1, &v->n1, h);
    if (h != x) used(c, h);
    nn_tensor *b = contract(c, &v->c2, &v->n2, a);
    used(c, a);
    if (!b) return NULL;
    if (l < m->cfg.num_downs) {
        nn_tensor *s = level_forward(c, m, l + 1, b);
        used(c, b);
        nn_tensor *e = expand(c, &v->c3, s);
        used(c, s);
        b = expand(c, &v->c4, e);
        used(c, e);
        if (!b) return NULL;
    }
    nn_tensor *y;
    if (l == 0) {
        y = nn_conv3d(c, &m->final, b);
    } else {
        nn_tensor *u = nn_convt3d(c, &v->up, b);
        y = nn_concat(c, x, u);
        used(c, u);
    }
    used(c, b);
    return y;
}

nn_tensor *segnet_forward(nn_ctx *c, const segnet *m, nn_tensor *x) {
    if (!x) return NULL;
    int mult = 1 << m->cfg.num_downs;
    if (x->C != m->cfg.in_channels) {
        lsdm_err("the segmenter takes %d channel(s), the input has %d", m->cfg.in_channels, x->C);
        return NULL;
    }
    if (x->D % mult || x->H % mult || x->W % mult) {
        lsdm_err("the segmenter needs D, H and W multiples of %d, got %dx%dx%d", mult, x->D, x->H, x->W);
        return NULL;
    }
    nn_tensor *y = level_forward(c, m, 0, x);
    if (nn_ctx_status(c) < 0) return NULL;
    if (!y) lsdm_err("the segmenter's forward failed");
    return y;
}

/* ---- loading ---- */

int segnet_load(segnet *m, const char *path, const char *config, int classes, ckpt_meta *meta) {
    memset(m, 0, sizeof *m);
    st_file f;
    if (safetensors_open(&f, path) < 0) return -1;
    const char *tag = safetensors_meta_get(&f, "model"), *text = safetensors_meta_get(&f, "config");
    segnet_config cfg;
    int rc = 0;
    if (config) {
        rc = segnet_config_load(&cfg, config, classes);
    } else if (!tag || strcmp(tag, SEGNET_MODEL_TAG) || !text) {
        rc = lsdm_err("%s is not a segmenter checkpoint (model '%s'; seg-train writes '%s'; a "
                      "converted PyTorch UNet3D needs --config)", path, tag ? tag : "unknown",
                      SEGNET_MODEL_TAG);
    } else {
        segnet_config_named(&cfg, "reference", 2);
        if ((rc = segnet_config_parse(&cfg, text)) < 0) lsdm_err_ctx("%s: config in the checkpoint", path);
    }
    safetensors_close(&f);
    if (rc < 0 || segnet_init(m, &cfg, 0) < 0) return -1;
    int n;
    ckpt_param *p = segnet_ckpt_params(m, &n);
    rc = !p ? -1 : checkpoint_load(path, p, n, meta);
    free(p);
    if (rc < 0) segnet_free(m);
    return rc;
}

/* ---- normalisation ---- */

static const char *const NORM_NAMES[] = {"minmax", "zscore", "none"};

int segnet_norm_parse(const char *s) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, NORM_NAMES[i])) return i;
    return lsdm_err("normalisation '%s' is not minmax, zscore or none", s);
}

const char *segnet_norm_name(int mode) { return mode >= 0 && mode < 3 ? NORM_NAMES[mode] : "?"; }

int segnet_normalize(float *x, int C, size_t S, int mode, float *pad) {
    size_t bad = 0;
    for (size_t i = 0; i < (size_t)C * S; i++) bad += !isfinite(x[i]);
    if (bad) return lsdm_err("%zu NaN or Inf value(s) in the image", bad);
    float lo = INFINITY;
    for (int c = 0; c < C; c++) {
        float *v = x + (size_t)c * S;
        double a = INFINITY, b = -INFINITY, sum = 0, sq = 0;
        for (size_t i = 0; i < S; i++) a = fmin(a, v[i]), b = fmax(b, v[i]), sum += v[i];
        double mean = sum / (double)S;
        for (size_t i = 0; i < S; i++) sq += (v[i] - mean) * (v[i] - mean);
        double sd = sqrt(sq / (double)S);
        if (mode == SEGNET_NORM_MINMAX) {
            double s = b > a ? 2.0 / (b - a) : 0;
            for (size_t i = 0; i < S; i++) v[i] = (float)((v[i] - a) * s - 1.0);
        } else if (mode == SEGNET_NORM_ZSCORE) {
            double s = sd > 0 ? 1.0 / sd : 0;
            for (size_t i = 0; i < S; i++) v[i] = (float)((v[i] - mean) * s);
        }
        for (size_t i = 0; i < S; i++) lo = fminf(lo, v[i]);
    }
    if (pad) *pad = lo;
    return 0;
}

/* ---- sliding window ---- */

/* Window starts along one axis: n windows of size t over dim, evenly
 * spaced with steps of at most t * (1 - overlap) (nnU-Net's). */
static int window_starts(int *start, int dim, int t, double overlap) {
    if (dim <= t) {
        start[0] = 0;
        return 1;
    }
    double step = t * (1 - overlap);
    if (step < 1) step = 1;
    int n = (int)ceil((dim - t) / step) + 1;
    double actual = (double)(dim - t) / (n - 1);
    for (int i = 0; i < n; i++) start[i] = (int)lround(i * actual);
    return n;
}

/* The Gaussian importance map (t0,t1,t2): sigma = t/8, centred, max 1,
 * zeros raised to the smallest positive value (nnU-Net). */
static void gaussian_map(float *g, const int t[3]) {
    double *ax[3];
    for (int a = 0; a < 3; a++) {
        ax[a] = malloc((size_t)t[a] * sizeof(double));
        double s = t[a] / 8.0, c = (t[a] - 1) / 2.0;
        for (int i = 0; i < t[a]; i++) ax[a][i] = exp(-0.5 * (i - c) * (i - c) / (s * s));
    }
    double mx = 0, mn = INFINITY;
    size_t k = 0;
    for (int d = 0; d < t[0]; d++)
        for (int h = 0; h < t[1]; h++)
            for (int w = 0; w < t[2]; w++, k++) {
                double v = ax[0][d] * ax[1][h] * ax[2][w];
                g[k] = (float)v;
                if (v > mx) mx = v;
            }
    for (size_t i = 0; i < k; i++) {
        g[i] = (float)(g[i] / mx);
        if (g[i] > 0 && g[i] < mn) mn = g[i];
    }
    for (size_t i = 0; i < k; i++)
        if (g[i] <= 0) g[i] = (float)mn;
    for (int a = 0; a < 3; a++) free(ax[a]);
}

int segnet_predict(const segnet *m, const segnet_window *w, const float *x, const int dim[3],
                   float *prob, void (*progress)(long done, long total)) {
    int C = m->cfg.in_channels, K = m->cfg.classes, mult = 1 << m->cfg.num_downs, t[3];
    int *st[3] = {NULL, NULL, NULL}, ns[3];
    for (int a = 0; a < 3; a++) {
        if (w->tile[a] < mult || w->tile[a] % mult)
            return lsdm_err("the window %dx%dx%d is not made of multiples of %d", w->tile[0], w->tile[1],
                            w->tile[2], mult);
        /* an axis shorter than the window takes the smallest window that covers it */
        t[a] = dim[a] < w->tile[a] ? (dim[a] + mult - 1) / mult * mult : w->tile[a];
    }
    size_t S = (size_t)dim[0] * dim[1] * dim[2], T = (size_t)t[0] * t[1] * t[2];
    float *g = malloc(T * sizeof(float)), *wsum = calloc(S, sizeof(float));
    int rc = !g || !wsum ? lsdm_err("out of memory") : 0;
    for (int a = 0; a < 3 && !rc; a++) {
        if (!(st[a] = malloc(((size_t)dim[a] + 1) * sizeof(int)))) rc = lsdm_err("out of memory");
        else ns[a] = window_starts(st[a], dim[a], t[a], w->overlap);
    }
    if (rc) goto out;
    gaussian_map(g, t);
    memset(prob, 0, (size_t)K * S * sizeof(float));
    nn_ctx c;
    nn_ctx_init(&c, 0);
    long total = (long)ns[0] * ns[1] * ns[2], done = 0;
    for (int i0 = 0; i0 < ns[0] && !rc; i0++)
        for (int i1 = 0; i1 < ns[1] && !rc; i1++)
            for (int i2 = 0; i2 < ns[2] && !rc; i2++) {
                int o[3] = {st[0][i0], st[1][i1], st[2][i2]};
                nn_tensor *xt = nn_tensor_new(&c, 1, C, t[0], t[1], t[2]);
                if (!xt) {
                    rc = nn_ctx_status(&c);
                    break;
                }
                /* the window, padded where it leaves the volume */
                for (int ch = 0; ch < C; ch++)
                    for (int d = 0; d < t[0]; d++)
                        for (int h = 0; h < t[1]; h++) {
                            float *row = xt->data + (((size_t)ch * t[0] + d) * t[1] + h) * t[2];
                            int sd = o[0] + d, sh = o[1] + h;
                            for (int ww = 0; ww < t[2]; ww++) {
                                int sw = o[2] + ww;
                                row[ww] = sd < dim[0] && sh < dim[1] && sw < dim[2]
                                              ? x[(((size_t)ch * dim[0] + sd) * dim[1] + sh) * dim[2] + sw]
                                              : w->pad_value;
                            }
                        }
                nn_tensor *y = segnet_forward(&c, m, xt);
                if (!y) {
                    rc = -1;
                    break;
                }
                /* softmax per voxel, weighted into the volume */
                for (int d = 0; d < t[0]; d++)
                    for (int h = 0; h < t[1]; h++)
                        for (int ww = 0; ww < t[2]; ww++) {
                            int sd = o[0] + d, sh = o[1] + h, sw = o[2] + ww;
                            if (sd >= dim[0] || sh >= dim[1] || sw >= dim[2]) continue;
                            size_t q = ((size_t)d * t[1] + h) * t[2] + ww;
                            size_t v = ((size_t)sd * dim[1] + sh) * dim[2] + sw;
                            float mx = -INFINITY;
                            for (int k = 0; k < K; k++) mx = fmaxf(mx, y->data[(size_t)k * T + q]);
                            double sum = 0;
                            for (int k = 0; k < K; k++) sum += exp((double)y->data[(size_t)k * T + q] - mx);
                            double gs = g[q] / sum;
                            for (int k = 0; k < K; k++)
                                prob[(size_t)k * S + v] += (float)(exp((double)y->data[(size_t)k * T + q] - mx) * gs);
                            wsum[v] += g[q];
                        }
                nn_ctx_reset(&c);
                if (progress) progress(++done, total);
            }
    nn_ctx_free(&c);
    if (!rc)
        for (size_t v = 0; v < S; v++)
            for (int k = 0; k < K; k++) prob[(size_t)k * S + v] /= wsum[v];
out:
    for (int a = 0; a < 3; a++) free(st[a]);
    free(g);
    free(wsum);
    return rc;
}

void segnet_argmax(uint8_t *lab8, int32_t *lab32, const float *prob, int K, size_t S) {
    for (size_t v = 0; v < S; v++) {
        int best = 0;
        for (int k = 1; k < K; k++)
            if (prob[(size_t)k * S + v] > prob[(size_t)best * S + v]) best = k;
        if (lab8) lab8[v] = (uint8_t)best;
        if (lab32) lab32[v] = best;
    }
}
