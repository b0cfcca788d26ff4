/* The VQ-GAN against PyTorch: weights of a randomly initialised model of
 * the reference layout (tests/torch/make_vqgan.py, converted names as the
 * reference state_dict) must give PyTorch's encoder output, codes,
 * quantised latents and decoder output; the training losses and
 * gradients and the discriminators too. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "fixture.h"
#include "vqgan.h"
#include "vqgan_train.h"
#include "../kernels/loss.h"

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d; /* NaN propagates */
    }
    return m;
}

static const int32_t *fixture_get_i32(const fixture *fx, const char *name, size_t *n) {
    for (int i = 0; i < fx->n; i++) {
        const char *k = lsdm_record_get(&fx->recs[i], "name");
        if (k && !strcmp(k, name) && fx->recs[i].dtype == LSDM_I32) {
            *n = lsdm_record_numel(&fx->recs[i]);
            return fx->recs[i].data;
        }
    }
    return NULL;
}

/* Compare tensor t with fixture entry `name`; print the error. */
static void check_tensor(const fixture *fx, const char *cfgname, const char *name,
                         const nn_tensor *t, double tol) {
    size_t n;
    const float *ref = fixture_get(fx, name, &n);
    CHECK(ref != NULL && t != NULL && n == t->n);
    if (!ref || !t || n != t->n) return;
    double e = max_abs_diff(t->data, ref, n);
    printf("  %-6s %-4s max abs %.3g\n", cfgname, name, e);
    CHECK(e <= tol);
}

static void test_inference(const char *cfgname) {
    char conf[4096], weights[4096], data[4096];
    fixture_path(conf, sizeof conf, "vqgan", cfgname);
    strcat(conf, ".conf");
    fixture_path(weights, sizeof weights, "vqgan", cfgname);
    strcat(weights, ".safetensors");
    fixture_path(data, sizeof data, "vqgan", cfgname);
    strcat(data, ".lsdm");
    vqgan m;
    int rc = vqgan_load(&m, weights, conf, NULL);
    if (rc < 0) printf("  load: %s\n", lsdm_err_msg());
    CHECK(rc == 0);
    fixture fx;
    CHECK(fixture_load(&fx, data) == 0);
    if (rc < 0 || fx.n == 0) return;
    CHECK(m.has_disc == 1);

    nn_ctx c;
    nn_ctx_init(&c, 0);
    size_t n;
    float *x = (float *)fixture_get(&fx, "x", &n);
    CHECK(x && n == 8 * 16 * 16);
    nn_tensor *xt = nn_tensor_wrap(&c, x, 1, 1, 8, 16, 16);
    nn_tensor *z = vqgan_encode(&c, &m, xt);
    check_tensor(&fx, cfgname, "z", z, 2e-6);

    /* codes from PyTorch's z, so a near-tie in our z cannot flip a code */
    size_t nz;
    const float *zref = fixture_get(&fx, "z", &nz);
    int ld = 8 / vqgan_factor(&m.cfg, 0), lh = 16 / vqgan_factor(&m.cfg, 1),
        lw = 16 / vqgan_factor(&m.cfg, 2), nl = ld * lh * lw; /* the latent grid */
    CHECK(zref && nz == (size_t)4 * nl && nl <= 64);
    if (!zref || nz != (size_t)4 * nl || nl > 64) return;
    nn_tensor *zr = nn_tensor_wrap(&c, (float *)zref, 1, 4, ld, lh, lw);
    int32_t idx[64];
    CHECK(vqgan_quantize(&c, &m, zr, idx) == 0);
    size_t nc;
    const int32_t *codes = fixture_get_i32(&fx, "codes", &nc);
    CHECK(codes && nc == (size_t)nl);
    int same = codes && nc == (size_t)nl && !memcmp(idx, codes, nl * sizeof *idx);
    printf("  %-6s codes %s\n", cfgname, same ? "identical" : "DIFFER");
    CHECK(same);
    nn_tensor *zq = vqgan_lookup(&c, &m, idx, 1, ld, lh, lw);
    check_tensor(&fx, cfgname, "zq", zq, 0);

    nn_tensor *seg = NULL;
    if (m.cfg.spade) {
        float *s = (float *)fixture_get(&fx, "seg", &n);
        CHECK(s && n == 3 * 8 * 16 * 16);
        seg = nn_tensor_wrap(&c, s, 1, 3, 8, 16, 16);
    }
    nn_tensor *y = vqgan_decode(&c, &m, zq, seg);
    check_tensor(&fx, cfgname, "y", y, 2e-6);
    CHECK(nn_ctx_status(&c) == 0);

    /* the SPADE decoder refuses to run without a mask */
    if (m.cfg.spade) {
        nn_ctx_reset(&c);
        zq = vqgan_lookup(&c, &m, idx, 1, ld, lh, lw);
        CHECK(vqgan_decode(&c, &m, zq, NULL) == NULL);
        CHECK(strstr(lsdm_err_msg(), "mask") != NULL);
    }
    nn_ctx_free(&c);
    fixture_free(&fx);
    vqgan_free(&m);
}

static const char *conf_path(const char *cfgname) {
    static char buf[4096];
    fixture_path(buf, sizeof buf, "vqgan", cfgname);
    strcat(buf, ".conf");
    return buf;
}

static void test_wrong_config(void) {
    char weights[4096];
    fixture_path(weights, sizeof weights, "vqgan", "plain.safetensors");
    vqgan m;
    /* the tiny config's shapes differ: the first mismatching tensor is named */
    CHECK(vqgan_load(&m, weights, "tiny", NULL) < 0);
    printf("  wrong config: %s\n", lsdm_err_msg());
    CHECK(strstr(lsdm_err_msg(), "encoder.conv_first.conv.weight") != NULL);
    /* the config stored in the file */
    CHECK(vqgan_load(&m, weights, NULL, NULL) == 0);
    CHECK(m.cfg.n_hiddens == 4 && m.cfg.n_codes == 32);
    /* no config given and none in the file (a converted PyTorch checkpoint) */
    char bare[] = "/tmp/test_vqgan_XXXXXX";
    int fd = mkstemp(bare);
    CHECK(fd >= 0);
    close(fd);
    int n;
    ckpt_param *p = vqgan_ckpt_params(&m, 1, &n);
    CHECK(p && checkpoint_save(bare, p, n, NULL, ST_F32) == 0);
    free(p);
    vqgan_free(&m);
    CHECK(vqgan_load(&m, bare, NULL, NULL) < 0);
    CHECK(strstr(lsdm_err_msg(), "--config") != NULL);
    CHECK(vqgan_load(&m, bare, conf_path("plain"), NULL) == 0);
    vqgan_free(&m);
    unlink(bare);
}

static void test_config_text(void) {
    vqgan_config a, b;
    CHECK(vqgan_config_named(&a, "tiny-spade") == 0);
    vqgan_config_named(&b, "med-lsdm");
    CHECK(vqgan_config_parse(&b, vqgan_config_text(&a)) == 0);
    CHECK(!memcmp(&a, &b, sizeof a));
    CHECK(vqgan_config_parse(&b, "n_hiddens = 16\nbogus = 3\n") < 0);
    CHECK(strstr(lsdm_err_msg(), "line 2") && strstr(lsdm_err_msg(), "bogus"));
    CHECK(vqgan_config_parse(&b, "downsample = 4,3,4\n") < 0);
    /* per-axis factors, as the reference's tuple */
    vqgan_config_named(&b, "tiny");
    CHECK(vqgan_config_parse(&b, "downsample = 2,4,4\n") == 0 && vqgan_config_check(&b) == 0);
    CHECK(!strcmp(vqgan_factor_text(&b), "2,4,4") && vqgan_factor(&b, 0) == 2);
    CHECK(!strcmp(vqgan_factor_text(&a), "2") && vqgan_isotropic(&a));
    /* "base = NAME" then changes: tiny-spade at f 4 is tiny-f4-spade */
    vqgan_config_named(&b, "med-lsdm");
    CHECK(vqgan_config_parse(&b, "base = tiny-spade\ndownsample = 4\n") == 0);
    vqgan_config c;
    CHECK(vqgan_config_named(&c, "tiny-f4-spade") == 0 && !memcmp(&b, &c, sizeof b));
    CHECK(b.n_hiddens == 8 && b.n_codes == 1024 && b.spade && !strcmp(vqgan_factor_text(&b), "4"));
    CHECK(vqgan_config_parse(&b, "n_codes = 64\nbase = bogus\n") < 0);
    CHECK(strstr(lsdm_err_msg(), "line 2") && strstr(lsdm_err_msg(), "bogus"));
    b.downsample[1] = 64;
    CHECK(vqgan_config_check(&b) < 0);
    CHECK(vqgan_config_parse(&b, "num_groups = 5\n") < 0);
    CHECK(vqgan_config_named(&b, "huge") < 0);
}

/* Inference runs the SPADE mlp on depth chunks (vqgan.c spade_norm);
 * a recording context takes the whole-volume path. The chunked decode,
 * with one slice per chunk and with the default chunk, must equal it
 * bit for bit: the k(1,3,3) convs never mix depth. */
static void test_spade_chunks(void) {
    char weights[4096], data[4096];
    fixture_path(weights, sizeof weights, "vqgan", "spade.safetensors");
    fixture_path(data, sizeof data, "vqgan", "spade.lsdm");
    vqgan m;
    fixture fx;
    CHECK(vqgan_load(&m, weights, conf_path("spade"), NULL) == 0);
    CHECK(fixture_load(&fx, data) == 0);
    size_t nz, ns;
    float *z = (float *)fixture_get(&fx, "zq", &nz), *s = (float *)fixture_get(&fx, "seg", &ns);
    CHECK(z && nz == 4 * 2 * 4 * 4 && s && ns == 3 * 8 * 16 * 16);
    if (!z || !s) return;
    float *ref = malloc(8 * 16 * 16 * sizeof(float));
    nn_ctx c;
    nn_ctx_init(&c, 1); /* recording: the unchunked path */
    nn_tensor *y = vqgan_decode(&c, &m, nn_tensor_wrap(&c, z, 1, 4, 2, 4, 4),
                                nn_tensor_wrap(&c, s, 1, 3, 8, 16, 16));
    CHECK(y && y->n == 8 * 16 * 16);
    if (y) memcpy(ref, y->data, 8 * 16 * 16 * sizeof(float));
    nn_ctx_free(&c);
    size_t chunks[2] = {1, 0}; /* one slice per chunk; the default (all at once here) */
    for (int i = 0; i < 2; i++) {
        m.spade_chunk_bytes = chunks[i];
        nn_ctx_init(&c, 0);
        y = vqgan_decode(&c, &m, nn_tensor_wrap(&c, z, 1, 4, 2, 4, 4),
                         nn_tensor_wrap(&c, s, 1, 3, 8, 16, 16));
        CHECK(y && y->n == 8 * 16 * 16);
        double e = y ? max_abs_diff(y->data, ref, y->n) : 1;
        printf("  spade chunk %zu bytes: max abs vs unchunked %.3g\n", chunks[i], e);
        CHECK(e == 0);
        nn_ctx_free(&c);
    }
    free(ref);
    fixture_free(&fx);
    vqgan_free(&m);
}

static double rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)a[i] - b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    /* a gradient that is 0 in exact arithmetic (a conv bias before a
     * training-mode BatchNorm) is rounding noise on both sides: absolute */
    return den > 1e-6 ? num / den : num;
}

static void check_grad(const fixture *fx, const char *cfgname, const nn_params *ps,
                       const char *fxname, const char *param, double tol) {
    size_t n;
    const float *ref = fixture_get(fx, fxname, &n);
    nn_param *p = nn_params_find(ps, param);
    CHECK(ref && p && p->grad && n == p->n);
    if (!ref || !p || !p->grad || n != p->n) {
        printf("  missing %s / %s\n", fxname, param);
        return;
    }
    double e = rel_err(p->grad, ref, n);
    printf("  %-6s %-60s rel %.3g\n", cfgname, fxname, e);
    CHECK(e <= tol);
}

/* The generator's loss and gradients (no GAN), and one EMA update of the
 * codebook (restarts off: PyTorch's random rows cannot be reproduced). */
static void test_train(const char *cfgname) {
    char weights[4096], data[4096];
    fixture_path(weights, sizeof weights, "vqgan", cfgname);
    strcat(weights, ".safetensors");
    fixture_path(data, sizeof data, "vqgan", cfgname);
    strcat(data, ".lsdm");
    vqgan m;
    fixture fx;
    CHECK(vqgan_load(&m, weights, NULL, NULL) == 0);
    CHECK(fixture_load(&fx, data) == 0);
    vq_train_opts o = vq_train_opts_default();
    o.disc_start = 1000000;
    o.ema.restart = 0;
    vq_trainer t;
    CHECK(vq_trainer_init(&t, &m, &o) == 0);
    t.codebook_ready = 1;
    size_t n;
    const float *x = fixture_get(&fx, "x", &n), *seg = fixture_get(&fx, "seg", &n);
    vq_step_stats st;
    nn_params_zero_grads(&m.gen);
    int rc = vq_trainer_gen_backward(&t, x, m.cfg.spade ? seg : NULL, 1, 8, 16, 16, &st);
    if (rc < 0) printf("  %s\n", lsdm_err_msg());
    CHECK(rc == 0);
    const float *loss = fixture_get(&fx, "loss_ae", &n), *commit = fixture_get(&fx, "commit", &n);
    CHECK(loss && commit);
    if (loss && commit) {
        printf("  %-6s loss %.9g (PyTorch %.9g), commitment %.9g (%.9g)\n", cfgname, st.loss,
               loss[0], st.commit, commit[0]);
        CHECK(fabs(st.loss - loss[0]) <= 1e-6 * fabs(loss[0]));
        CHECK(fabs(st.commit - commit[0]) <= 1e-5 * fabs(commit[0]) + 1e-9);
    }
    for (int i = 0; i < fx.n; i++) {
        const char *k = lsdm_record_get(&fx.recs[i], "name");
        if (!strncmp(k, "grad:", 5)) check_grad(&fx, cfgname, &m.gen, k, k + 5, 2e-5);
    }
    /* the EMA update made in the same forward */
    const char *ema[3][2] = {{"ema:N", "codebook.N"}, {"ema:z_avg", "codebook.z_avg"},
                             {"ema:embeddings", "codebook.embeddings"}};
    for (int i = 0; i < 3; i++) {
        const float *ref = fixture_get(&fx, ema[i][0], &n);
        nn_param *p = nn_params_find(&m.gen, ema[i][1]);
        CHECK(ref && p && n == p->n);
        if (ref && p && n == p->n) {
            double e = max_abs_diff(p->data, ref, n);
            printf("  %-6s %-16s max abs %.3g\n", cfgname, ema[i][0], e);
            CHECK(e <= 1e-5);
        }
    }
    vq_trainer_free(&t);
    fixture_free(&fx);
    vqgan_free(&m);
}

/* The discriminators in training mode against PyTorch: features, running
 * statistics, the hinge loss and the generator's adversarial + feature
 * matching gradients. */
static void test_disc(const char *cfgname, int is3d) {
    char weights[4096], data[4096], key[128];
    const char *pre = is3d ? "d3" : "d2";
    fixture_path(weights, sizeof weights, "vqgan", cfgname);
    strcat(weights, ".safetensors");
    fixture_path(data, sizeof data, "vqgan", cfgname);
    strcat(data, "_disc.lsdm");
    vqgan m;
    fixture fx;
    CHECK(vqgan_load(&m, weights, NULL, NULL) == 0);
    CHECK(fixture_load(&fx, data) == 0);
    const vq_disc *d = is3d ? &m.d3 : &m.d2;
    int L = d->layers, D = is3d ? 8 : 1;
    size_t n;
    snprintf(key, sizeof key, "%s:real", pre);
    float *real = (float *)fixture_get(&fx, key, &n);
    snprintf(key, sizeof key, "%s:fake", pre);
    float *fake = (float *)fixture_get(&fx, key, &n);
    CHECK(real && fake);
    if (!real || !fake) return;
    CHECK(nn_params_alloc_grads(&m.disc) == 0);

    /* discriminator step: D(real), D(fake detached), hinge */
    nn_ctx c;
    nn_ctx_init(&c, 1);
    nn_tensor *fr[VQ_MAX_STAGES], *ff[VQ_MAX_STAGES];
    nn_tensor *xr = nn_tensor_wrap(&c, real, 2, 1, D, 16, 16);
    nn_tensor *xf = nn_tensor_wrap(&c, fake, 2, 1, D, 16, 16);
    CHECK(vq_disc_forward(&c, d, xr, fr) == 0);
    CHECK(vq_disc_forward(&c, d, xf, ff) == 0);
    for (int i = 0; i <= L + 1; i++) {
        snprintf(key, sizeof key, "%s:feat%d", pre, i);
        check_tensor(&fx, cfgname, key, fr[i], 5e-6); /* after BatchNorm: values up to ~5 */
    }
    snprintf(key, sizeof key, "%s:logits_fake", pre);
    check_tensor(&fx, cfgname, key, ff[L + 1], 2e-6);
    nn_tensor *lr = fr[L + 1], *lf = ff[L + 1];
    double dl = 0.5 * hinge_d_loss_forward(lr->data, lr->n, lf->data, lf->n);
    hinge_d_loss_backward(nn_grad(&c, lr), nn_grad(&c, lf), lr->data, lr->n, lf->data, lf->n, 0.5f);
    nn_backward(&c);
    snprintf(key, sizeof key, "%s:d_loss", pre);
    const float *ref = fixture_get(&fx, key, &n);
    CHECK(ref && fabs(dl - ref[0]) <= 1e-6 * fabs(ref[0]));
    const char *prefix = is3d ? "video_discriminator." : "image_discriminator.";
    char pname[160];
    for (int i = 0; i < fx.n; i++) {
        const char *k = lsdm_record_get(&fx.recs[i], "name");
        if (strncmp(k, pre, 2) || strncmp(k + 3, "grad_d:", 7)) continue;
        snprintf(pname, sizeof pname, "%s%s", prefix, k + 10);
        check_grad(&fx, cfgname, &m.disc, k, pname, 2e-5);
    }
    for (int i = 0; i < fx.n; i++) {
        const char *k = lsdm_record_get(&fx.recs[i], "name");
        if (strncmp(k, pre, 2) || strncmp(k + 3, "after:", 6)) continue;
        snprintf(pname, sizeof pname, "%s%s", prefix, k + 9);
        nn_param *p = nn_params_find(&m.disc, pname);
        ref = fixture_get(&fx, k, &n);
        CHECK(p && ref && n == p->n);
        if (p && ref && n == p->n) CHECK(max_abs_diff(p->data, ref, n) <= 1e-6);
    }

    /* generator's view: -mean(D(fake)) + feature matching against D(real) */
    nn_ctx_reset(&c);
    nn_params_zero_grads(&m.disc);
    xr = nn_tensor_wrap(&c, real, 2, 1, D, 16, 16);
    xf = nn_tensor_wrap(&c, fake, 2, 1, D, 16, 16);
    xf->needs_grad = 1;
    snprintf(key, sizeof key, "%s:feat0", pre);
    /* the running statistics moved during the D step: reload them */
    vqgan m2;
    CHECK(vqgan_load(&m2, weights, NULL, NULL) == 0);
    for (int i = 0; i < m.disc.n; i++)
        memcpy(m.disc.p[i]->data, m2.disc.p[i]->data, m.disc.p[i]->n * sizeof(float));
    vqgan_free(&m2);
    CHECK(vq_disc_forward(&c, d, xf, ff) == 0);
    CHECK(vq_disc_forward(&c, d, xr, fr) == 0);
    const float *fw = fixture_get(&fx, "g_feat_weight", &n);
    double w = fw ? fw[0] : 4.0, g = hinge_g_loss_forward(ff[L + 1]->data, ff[L + 1]->n), gf = 0;
    hinge_g_loss_backward(nn_grad(&c, ff[L + 1]), ff[L + 1]->n, 1.0f);
    for (int i = 0; i <= L; i++) {
        gf += w * l1_loss_forward(ff[i]->data, fr[i]->data, ff[i]->n);
        l1_loss_backward(nn_grad(&c, ff[i]), ff[i]->data, fr[i]->data, ff[i]->n, (float)w);
    }
    nn_backward(&c);
    snprintf(key, sizeof key, "%s:g_loss", pre);
    ref = fixture_get(&fx, key, &n);
    CHECK(ref && fabs(g + gf - ref[0]) <= 1e-6 * fabs(ref[0]));
    if (ref) printf("  %-6s %s g_loss %.9g (PyTorch %.9g)\n", cfgname, pre, g + gf, ref[0]);
    snprintf(key, sizeof key, "%s:grad:fake", pre);
    ref = fixture_get(&fx, key, &n);
    CHECK(ref && xf->grad && n == xf->n);
    if (ref && xf->grad && n == xf->n) {
        double e = rel_err(xf->grad, ref, n);
        printf("  %-6s %s grad:fake rel %.3g\n", cfgname, pre, e);
        CHECK(e <= 2e-5);
    }
    for (int i = 0; i < fx.n; i++) {
        const char *k = lsdm_record_get(&fx.recs[i], "name");
        if (strncmp(k, pre, 2) || strncmp(k + 3, "grad:model", 10)) continue;
        snprintf(pname, sizeof pname, "%s%s", prefix, k + 8);
        check_grad(&fx, cfgname, &m.disc, k, pname, 2e-5);
    }
    nn_ctx_free(&c);
    fixture_free(&fx);
    vqgan_free(&m);
}

int main(void) {
    test_config_text();
    test_inference("plain");
    test_inference("spade");
    test_inference("aniso");
    test_spade_chunks();
    test_wrong_config();
    test_train("plain");
    test_train("spade");
    test_train("aniso");
    test_disc("plain", 1);
    test_disc("plain", 0);
    return check_done("test_vqgan");
}
