/* The diffusion UNet against PyTorch: the weights of a randomly
 * initialised reference Unet3D_SPADE (tests/torch/make_unet.py, names as
 * the reference state_dict) must give PyTorch's mask features, noise
 * prediction and gradients of an L1 loss; the mask features made once
 * serve every step; the channel LayerNorm (new kernel) by finite
 * differences; configs, parameter counts and clear errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "opcheck.h"
#include "unet.h"
#include "../kernels/layernorm.h"
#include "../kernels/loss.h"

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d; /* NaN propagates */
    }
    return m;
}

static double max_abs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i]));
    return m;
}

/* max |a - ref| / max |ref| */
static double rel_err(const float *a, const float *ref, size_t n) {
    double s = max_abs(ref, n);
    return max_abs_diff(a, ref, n) / (s > 1e-30 ? s : 1e-30);
}

static const uint8_t *fixture_get_u8(const fixture *fx, const char *name, size_t *n) {
    for (int i = 0; i < fx->n; i++) {
        const char *k = lsdm_record_get(&fx->recs[i], "name");
        if (k && !strcmp(k, name) && fx->recs[i].dtype == LSDM_U8) {
            *n = lsdm_record_numel(&fx->recs[i]);
            return fx->recs[i].data;
        }
    }
    return NULL;
}

/* Compare t with fixture tensor `name` (relative to its largest value). */
static void check_tensor(const fixture *fx, const char *name, const nn_tensor *t, double tol) {
    size_t n;
    const float *ref = fixture_get(fx, name, &n);
    CHECK(ref != NULL && t != NULL && n == t->n);
    if (!ref || !t || n != t->n) return;
    double e = rel_err(t->data, ref, n);
    printf("  %-10s max abs %.3g (max |ref| %.3g, relative %.3g)\n", name,
           max_abs_diff(t->data, ref, n), max_abs(ref, n), e);
    CHECK(e <= tol);
}

/* ---- the fixture model ---- */

typedef struct {
    unet m;
    fixture fx;
    float *mask;         /* one-hot (2,label_nc,16,32,32) */
    int N, Dm, Hm, Wm;
    float *x, *x2, *t, *t2, *target;
} small_case;

static const char *path_of(const char *file) {
    static char buf[4096];
    fixture_path(buf, sizeof buf, "unet", file);
    return buf;
}

static int small_load(small_case *s) {
    memset(s, 0, sizeof *s);
    char conf[4096];
    snprintf(conf, sizeof conf, "%s", path_of("small.conf"));
    int rc = unet_load(&s->m, path_of("small.safetensors"), conf, NULL);
    if (rc < 0) printf("  load: %s\n", lsdm_err_msg());
    CHECK(rc == 0);
    if (rc < 0) return -1;
    if (fixture_load(&s->fx, path_of("small.lsdm")) < 0) {
        check_fail++;
        fprintf(stderr, "missing fixture %s (made by tests/torch/make_unet.py)\n", path_of("small.lsdm"));
        unet_free(&s->m);
        return -1;
    }
    size_t n, nl;
    const uint8_t *lab = fixture_get_u8(&s->fx, "labels", &nl);
    s->N = 2, s->Dm = 16, s->Hm = 32, s->Wm = 32;
    int L = s->m.cfg.label_nc;
    size_t S = (size_t)s->Dm * s->Hm * s->Wm;
    CHECK(lab && nl == s->N * S);
    if (!lab || nl != s->N * S) return -1;
    s->mask = calloc((size_t)s->N * L * S, sizeof(float));
    for (int b = 0; b < s->N; b++)
        for (size_t i = 0; i < S; i++) s->mask[((size_t)b * L + lab[b * S + i]) * S + i] = 1;
    s->x = (float *)fixture_get(&s->fx, "x", &n);
    s->x2 = (float *)fixture_get(&s->fx, "x2", &n);
    s->t = (float *)fixture_get(&s->fx, "t", &n);
    s->t2 = (float *)fixture_get(&s->fx, "t2", &n);
    s->target = (float *)fixture_get(&s->fx, "target", &n);
    CHECK(s->x && s->x2 && s->t && s->t2 && s->target);
    return s->x && s->x2 && s->t && s->t2 && s->target ? 0 : -1;
}

static void small_free(small_case *s) {
    free(s->mask);
    fixture_free(&s->fx);
    unet_free(&s->m);
}

static nn_tensor *wrap_mask(nn_ctx *c, small_case *s) {
    return nn_tensor_wrap(c, s->mask, s->N, s->m.cfg.label_nc, s->Dm, s->Hm, s->Wm);
}

static nn_tensor *wrap_x(nn_ctx *c, small_case *s, float *x) {
    return nn_tensor_wrap(c, x, s->N, s->m.cfg.channels, 4, 8, 8);
}

/* Inference: the mask features once (in their own context), then two
 * denoising steps from them; each step equals PyTorch's full forward, and
 * a step with mask features made again for it equals the cached one bit
 * for bit. */
static void test_forward(void) {
    small_case s;
    if (small_load(&s) < 0) return;
    nn_ctx cm, c;
    nn_ctx_init(&cm, 0);
    nn_ctx_init(&c, 0);
    unet_maskfeat mf;
    CHECK(unet_encode_mask(&cm, &s.m, wrap_mask(&cm, &s), 4, 8, 8, &mf) == 0);
    check_tensor(&s.fx, "maskfeat", mf.seg, 1e-6);
    CHECK(mf.n == 4 + 2 * s.m.cfg.levels);
    nn_tensor *eps = unet_forward(&c, &s.m, wrap_x(&c, &s, s.x), s.t, &mf);
    if (!eps) printf("  forward: %s\n", lsdm_err_msg());
    check_tensor(&s.fx, "eps", eps, 2e-6);
    nn_ctx_reset(&c);
    nn_tensor *eps2 = unet_forward(&c, &s.m, wrap_x(&c, &s, s.x2), s.t2, &mf);
    check_tensor(&s.fx, "eps2", eps2, 2e-6);
    float *keep = eps2 ? malloc(eps2->n * sizeof(float)) : NULL;
    size_t n = eps2 ? eps2->n : 0;
    if (keep) memcpy(keep, eps2->data, n * sizeof(float));
    /* the same step with the mask encoded again, in the step's context */
    nn_ctx_reset(&c);
    unet_maskfeat mf2;
    CHECK(unet_encode_mask(&c, &s.m, wrap_mask(&c, &s), 4, 8, 8, &mf2) == 0);
    eps2 = unet_forward(&c, &s.m, wrap_x(&c, &s, s.x2), s.t2, &mf2);
    CHECK(eps2 && keep && eps2->n == n);
    if (eps2 && keep) {
        double e = max_abs_diff(eps2->data, keep, n);
        printf("  mask features once vs encoded for the step: max abs %.3g\n", e);
        CHECK(e == 0);
    }
    printf("  inference peak: %.1f MiB step + %.1f MiB mask features\n",
           c.bytes_peak / 1048576.0, cm.bytes_peak / 1048576.0);
    free(keep);
    nn_ctx_free(&c);
    nn_ctx_free(&cm);
    small_free(&s);
}

/* Training: mask features and step in one recording context; the L1 loss
 * against the target and its gradients for the input and a few weights
 * across the network (mask encoder and SPADE convs included). */
static void test_grad(void) {
    small_case s;
    if (small_load(&s) < 0) return;
    CHECK(nn_params_alloc_grads(&s.m.ps) == 0);
    nn_params_zero_grads(&s.m.ps);
    nn_ctx c;
    nn_ctx_init(&c, 1);
    unet_maskfeat mf;
    CHECK(unet_encode_mask(&c, &s.m, wrap_mask(&c, &s), 4, 8, 8, &mf) == 0);
    nn_tensor *x = wrap_x(&c, &s, s.x);
    x->needs_grad = 1;
    nn_tensor *eps = unet_forward(&c, &s.m, x, s.t, &mf);
    check_tensor(&s.fx, "eps", eps, 2e-6);
    size_t n;
    const float *lref = fixture_get(&s.fx, "loss", &n);
    CHECK(eps && lref);
    if (!eps || !lref) return;
    double loss = l1_loss_forward(eps->data, s.target, eps->n);
    printf("  loss %.9g (PyTorch %.9g)\n", loss, lref[0]);
    CHECK(fabs(loss - lref[0]) <= 1e-6 * fabs(lref[0]));
    l1_loss_backward(nn_grad(&c, eps), eps->data, s.target, eps->n, 1.0f);
    nn_backward(&c);
    CHECK(nn_ctx_status(&c) == 0);
    int checked = 0;
    double worst = 0;
    for (int i = 0; i < s.fx.n; i++) {
        const char *k = lsdm_record_get(&s.fx.recs[i], "name");
        if (strncmp(k, "grad:", 5)) continue;
        const float *ref = fixture_get(&s.fx, k, &n);
        const float *got = NULL;
        size_t m = 0;
        if (!strcmp(k, "grad:x")) {
            got = x->grad, m = x->n;
        } else {
            nn_param *p = nn_params_find(&s.m.ps, k + 5);
            if (p) got = p->grad, m = p->n;
        }
        CHECK(ref && got && m == n);
        if (!ref || !got || m != n) {
            printf("  missing %s\n", k);
            continue;
        }
        double e = rel_err(got, ref, n);
        printf("  %-56s rel %.3g\n", k, e);
        worst = fmax(worst, e);
        CHECK(e <= 2e-5);
        checked++;
    }
    printf("  %d gradients, worst relative error %.3g\n", checked, worst);
    CHECK(checked == 19);
    nn_ctx_free(&c);
    small_free(&s);
}

/* ---- the channel LayerNorm kernel ---- */

typedef struct {
    double *x, *g, *gout;
    int N, C;
    long S;
} ln_case;

static double ln_loss(void *p) {
    ln_case *k = p;
    size_t n = (size_t)k->N * k->C * k->S;
    double *y = op_zeros(n);
    chan_layernorm_forward_f64(y, NULL, NULL, k->x, k->g, k->N, k->C, k->S, 1e-5);
    double l = op_dot(y, k->gout, n);
    free(y);
    return l;
}

static void test_layernorm(void) {
    int N = 2, C = 5;
    long S = 70; /* over one block of positions */
    size_t n = (size_t)N * C * S;
    ln_case k = {op_rand(n, 1, -2, 2), op_rand(C, 2, 0.5, 1.5), op_rand(n, 3, -1, 1), N, C, S};
    double *y = op_zeros(n), *mean = op_zeros(N * S), *rstd = op_zeros(N * S);
    double *dx = op_fill(n, 0.25), *dg = op_fill(C, 0.25);
    chan_layernorm_forward_f64(y, mean, rstd, k.x, k.g, N, C, S, 1e-5);
    chan_layernorm_backward_f64(dx, dg, k.gout, k.x, k.g, mean, rstd, N, C, S);
    op_sub(dx, n, 0.25), op_sub(dg, C, 0.25);
    OP_CHECK_ERR("layernorm f64 dx vs differences", op_gradcheck1(ln_loss, &k, k.x, dx, n), 1e-6);
    OP_CHECK_ERR("layernorm f64 dgamma vs differences", op_gradcheck1(ln_loss, &k, k.g, dg, C), 1e-6);
    /* a position's C values: mean 0, biased variance 1 before gamma */
    double m0 = 0, v0 = 0;
    for (int c = 0; c < C; c++) m0 += y[c * S + 7] / k.g[c];
    for (int c = 0; c < C; c++) v0 += pow(y[c * S + 7] / k.g[c], 2);
    CHECK(fabs(m0) < 1e-12 && fabs(v0 / C - 1) < 1e-4);
    /* float against double */
    float *xf = op_to_f32(k.x, n), *gf = op_to_f32(k.g, C), *go = op_to_f32(k.gout, n);
    float *yf = op_zerosf(n), *mf = op_zerosf(N * S), *rf = op_zerosf(N * S);
    float *dxf = op_zerosf(n), *dgf = op_zerosf(C);
    chan_layernorm_forward(yf, mf, rf, xf, gf, N, C, S, 1e-5f);
    chan_layernorm_backward(dxf, dgf, go, xf, gf, mf, rf, N, C, S);
    double *y64 = op_to_f64(yf, n), *dx64 = op_to_f64(dxf, n), *dg64 = op_to_f64(dgf, C);
    OP_CHECK_ERR("layernorm f32 out vs f64", op_err(y64, y, n, NULL), 1e-6);
    OP_CHECK_ERR("layernorm f32 dx vs f64", op_err(dx64, dx, n, NULL), 1e-5);
    OP_CHECK_ERR("layernorm f32 dgamma vs f64", op_err(dg64, dg, C, NULL), 1e-5);
    /* NULL gradients are skipped */
    chan_layernorm_backward(NULL, dgf, go, xf, gf, mf, rf, N, C, S);
    chan_layernorm_backward(dxf, NULL, go, xf, gf, mf, rf, N, C, S);
    free(y64), free(dx64), free(dg64), free(xf), free(gf), free(go), free(yf), free(mf), free(rf);
    free(dxf), free(dgf), free(y), free(mean), free(rstd), free(dx), free(dg);
    free(k.x), free(k.g), free(k.gout);
}

/* ---- configs and errors ---- */

static void test_configs(void) {
    unet_config a, b;
    CHECK(unet_config_named(&a, "tiny") == 0);
    unet_config_named(&b, "med-lsdm");
    CHECK(unet_config_parse(&b, unet_config_text(&a)) == 0);
    CHECK(!memcmp(&a, &b, sizeof a));
    /* the fixture's config text, as written by make_unet.py, parses */
    CHECK(unet_config_load(&b, path_of("small.conf")) == 0);
    CHECK(b.dim == 8 && b.levels == 2 && b.dim_mults[1] == 2 && b.seg_hidden[1] == 8);
    CHECK(unet_config_parse(&b, "dim = 16\nbogus = 3\n") < 0);
    CHECK(strstr(lsdm_err_msg(), "line 2") && strstr(lsdm_err_msg(), "bogus"));
    CHECK(unet_config_parse(&b, "model = vqgan\n") < 0);
    CHECK(strstr(lsdm_err_msg(), "not a diffusion UNet") != NULL);
    CHECK(unet_config_parse(&b, "groups = 5\n") < 0);
    CHECK(unet_config_parse(&b, "dim_mults = 1,2,4,8,8,8,8\n") < 0);
    CHECK(unet_config_parse(&b, "attn_dim_head = 7\n") < 0);
    CHECK(unet_config_named(&b, "huge") < 0);
    /* parameter counts: med-lsdm as PyTorch's Unet3D_SPADE of the
     * reference run (make_unet.py --ref prints 37071632) */
    unet m;
    const char *names[2] = {"tiny", "med-lsdm"};
    size_t want[2] = {0, 37071632};
    for (int i = 0; i < 2; i++) {
        unet_config_named(&a, names[i]);
        CHECK(unet_init(&m, &a, 1) == 0);
        size_t np = unet_param_count(&m);
        printf("  %-8s %zu parameters, %d tensors\n", names[i], np, m.ps.n);
        if (want[i]) CHECK(np == want[i]);
        unet_free(&m);
    }
}

static void test_errors(void) {
    small_case s;
    if (small_load(&s) < 0) return;
    nn_ctx c;
    nn_ctx_init(&c, 0);
    unet_maskfeat mf;
    /* a mask with another number of classes */
    nn_tensor *bad = nn_tensor_wrap(&c, s.mask, s.N, 3, s.Dm, s.Hm, s.Wm);
    CHECK(unet_encode_mask(&c, &s.m, bad, 4, 8, 8, &mf) < 0);
    CHECK(strstr(lsdm_err_msg(), "3 channels") != NULL);
    nn_ctx_reset(&c);
    /* a grid the levels cannot halve */
    CHECK(unet_encode_mask(&c, &s.m, wrap_mask(&c, &s), 4, 8, 5, &mf) < 0);
    CHECK(strstr(lsdm_err_msg(), "multiples of 2") != NULL);
    nn_ctx_reset(&c);
    /* mask features made for another grid */
    CHECK(unet_encode_mask(&c, &s.m, wrap_mask(&c, &s), 4, 16, 16, &mf) == 0);
    CHECK(unet_forward(&c, &s.m, wrap_x(&c, &s, s.x), s.t, &mf) == NULL);
    CHECK(strstr(lsdm_err_msg(), "mask features") != NULL);
    nn_ctx_reset(&c);
    /* a latent with another number of channels */
    CHECK(unet_encode_mask(&c, &s.m, wrap_mask(&c, &s), 4, 8, 8, &mf) == 0);
    CHECK(unet_forward(&c, &s.m, nn_tensor_wrap(&c, s.x, 2, 2, 4, 16, 8), s.t, &mf) == NULL);
    CHECK(strstr(lsdm_err_msg(), "2 channels") != NULL);
    nn_ctx_free(&c);
    /* a VQ-GAN checkpoint is not a UNet; a config of other widths names the tensor */
    char vq[4096];
    fixture_path(vq, sizeof vq, "vqgan", "plain.safetensors");
    unet u;
    CHECK(unet_load(&u, vq, NULL, NULL) < 0);
    printf("  vqgan checkpoint: %s\n", lsdm_err_msg());
    CHECK(strstr(lsdm_err_msg(), "not a diffusion UNet") != NULL);
    CHECK(unet_load(&u, path_of("small.safetensors"), "tiny", NULL) < 0);
    printf("  wrong config: %s\n", lsdm_err_msg());
    CHECK(strstr(lsdm_err_msg(), "time_rel_pos_bias") || strstr(lsdm_err_msg(), "init_conv"));
    /* the config text make_unet.py stored in the file's metadata */
    CHECK(unet_load(&u, path_of("small.safetensors"), NULL, NULL) == 0);
    CHECK(u.cfg.dim == 8 && u.cfg.spade_hidden == 4 && u.cfg.attn_heads == 2);
    unet_free(&u);
    /* save and load round trip, config stored */
    char tmp[] = "/tmp/test_unet_XXXXXX";
    int fd = mkstemp(tmp);
    CHECK(fd >= 0);
    close(fd);
    CHECK(unet_save(&s.m, tmp, NULL) == 0);
    CHECK(unet_load(&u, tmp, NULL, NULL) == 0);
    CHECK(u.cfg.dim == 8 && u.ps.n == s.m.ps.n);
    int same = u.ps.n == s.m.ps.n;
    for (int i = 0; same && i < u.ps.n; i++)
        same = !memcmp(u.ps.p[i]->data, s.m.ps.p[i]->data, u.ps.p[i]->n * sizeof(float));
    CHECK(same);
    unet_free(&u);
    unlink(tmp);
    small_free(&s);
}

int main(void) {
    test_layernorm();
    test_configs();
    test_forward();
    test_grad();
    test_errors();
    return check_done("test_unet");
}
