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
    nn_tensor *zr = nn_tensor_wrap(&c, (float *)zref, 1, 4, 2, 4, 4);
    int32_t idx[32];
    CHECK(vqgan_quantize(&c, &m, zr, idx) == 0);
    size_t nc;
    const int32_t *codes = fixture_get_i32(&fx, "codes", &nc);
    CHECK(codes && nc == 32);
    int same = codes && nc == 32 && !memcmp(idx, codes, sizeof idx);
    printf("  %-6s codes %s\n", cfgname, same ? "identical" : "DIFFER");
    CHECK(same);
    nn_tensor *zq = vqgan_lookup(&c, &m, idx, 1, 2, 4, 4);
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
        zq = vqgan_lookup(&c, &m, idx, 1, 2, 4, 4);
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
    CHECK(vqgan_config_parse(&b, "downsample = 4,2,4\n") < 0);
    CHECK(vqgan_config_parse(&b, "num_groups = 5\n") < 0);
    CHECK(vqgan_config_named(&b, "huge") < 0);
}

int main(void) {
    test_config_text();
    test_inference("plain");
    test_inference("spade");
    test_wrong_config();
    return check_done("test_vqgan");
}
