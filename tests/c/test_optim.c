/* Optimisers against torch.optim (tests/fixtures/train/optim.lsdm, made by
 * tests/torch/make_train.py): Adam with default and VQ-GAN betas, Adam with
 * L2 weight decay, AdamW, clip_grad_norm_, the reference EMA, a small loop
 * of all three, per-tensor updates with offsets, and gradient accumulation. */
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "fixture.h"
#include "loss.h"
#include "optim.h"

static void train_fixture(char *buf, size_t size, const char *file) { fixture_path(buf, size, "train", file); }

static fixture fx;
/* the two parameter tensors of every case: (3,5) and (7,) */
static const size_t sizes[2] = {15, 7};
#define NPARAM 22

static const float *get(const char *c, const char *what) {
    char name[64];
    snprintf(name, sizeof name, "%s.%s", c, what);
    size_t n = 0;
    const float *p = fixture_get(&fx, name, &n);
    if (!p || n < 1) fprintf(stderr, "fixture tensor %s missing\n", name);
    CHECK(p != NULL);
    return p;
}

static double max_abs(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* Five steps of case c; per_tensor runs adam_update once per tensor. */
static void run_adam(const char *c, adam_config cfg, int per_tensor) {
    const float *w0 = get(c, "w0"), *wf = get(c, "w"), *mf = get(c, "m"), *vf = get(c, "v");
    if (!w0 || !wf || !mf || !vf) return;
    adam_state s;
    CHECK(adam_init(&s, &cfg, NPARAM) == 0);
    float w[NPARAM];
    memcpy(w, w0, sizeof w);
    for (int k = 0; k < 5; k++) {
        char g[8];
        snprintf(g, sizeof g, "g%d", k);
        const float *grad = get(c, g);
        if (!grad) break;
        if (per_tensor) {
            adam_begin_step(&s);
            adam_update(&s, w, grad, sizes[0], 0);
            adam_update(&s, w + sizes[0], grad + sizes[0], sizes[1], sizes[0]);
        } else {
            adam_step(&s, w, grad);
        }
    }
    double ew = max_abs(w, wf, NPARAM), em = max_abs(s.m, mf, NPARAM), ev = max_abs(s.v, vf, NPARAM);
    printf("torch %-8s%s max abs err w %.2e m %.2e v %.2e\n", c, per_tensor ? " (per tensor)" : "", ew, em, ev);
    CHECK(ew < 1e-6 && em < 1e-6 && ev < 1e-5);
    CHECK(s.step == 5);
    adam_free(&s);
}

static void test_adam(void) {
    adam_config c = adam_config_default(1e-3, 0);
    run_adam("adam", c, 0);
    run_adam("adam", c, 1);
    c.lr = 3e-4, c.beta1 = 0.5, c.beta2 = 0.9;
    run_adam("adam_vq", c, 0);
    c = adam_config_default(1e-2, 0);
    c.weight_decay = 0.1;
    run_adam("adam_wd", c, 0);
    c = adam_config_default(1e-2, 1);
    c.weight_decay = 0.05;
    run_adam("adamw", c, 0);

    adam_state s;
    adam_config bad = adam_config_default(1e-3, 0);
    bad.beta2 = 1.0;
    CHECK(adam_init(&s, &bad, 4) == -1 && s.m == NULL);
}

static void test_clip(void) {
    const char *cases[2] = {"clip", "noclip"};
    for (int k = 0; k < 2; k++) {
        const float *in = get(cases[k], "g_in"), *out = get(cases[k], "g_out"), *tot = get(cases[k], "total");
        if (!in || !out || !tot) continue;
        float g[NPARAM];
        memcpy(g, in, sizeof g);
        float *gs[2] = {g, g + sizes[0]};
        double total = optim_clip_grad_norm(gs, sizes, 2, k ? 100.0 : 0.5);
        double e = max_abs(g, out, NPARAM);
        printf("torch %-8s total %.9g want %.9g, max abs err %.2e\n", cases[k], total, tot[0], e);
        CHECK_NEAR(total, tot[0], 1e-6 * tot[0]);
        CHECK(e < 1e-7);
        if (k) CHECK(memcmp(g, in, sizeof g) == 0); /* below max_norm: untouched */
    }
    /* NaN gradients stay NaN, as in torch */
    float g[3] = {1, NAN, 2};
    float *gs[1] = {g};
    size_t n[1] = {3};
    CHECK(isnan(optim_clip_grad_norm(gs, n, 1, 1.0)) && isnan(g[0]));
}

/* Clip, Adam (0.5, 0.9) and EMA 0.9 for six steps, as the fixture's loop. */
static void test_loop(void) {
    const float *w0 = get("loop", "w0"), *wf = get("loop", "w"), *ef = get("loop", "ema");
    if (!w0 || !wf || !ef) return;
    adam_config cfg = adam_config_default(1e-2, 0);
    cfg.beta1 = 0.5, cfg.beta2 = 0.9;
    adam_state s;
    CHECK(adam_init(&s, &cfg, NPARAM) == 0);
    float w[NPARAM], ema[NPARAM], g[NPARAM];
    memcpy(w, w0, sizeof w);
    memcpy(ema, w0, sizeof ema);
    for (int k = 0; k < 6; k++) {
        char name[8];
        snprintf(name, sizeof name, "g%d", k);
        const float *gk = get("loop", name);
        if (!gk) break;
        memcpy(g, gk, sizeof g);
        float *gs[2] = {g, g + sizes[0]};
        optim_clip_grad_norm(gs, sizes, 2, 1.0);
        adam_step(&s, w, g);
        ema_update(ema, w, NPARAM, 0.9);
    }
    double ew = max_abs(w, wf, NPARAM), ee = max_abs(ema, ef, NPARAM);
    printf("torch loop     max abs err w %.2e ema %.2e\n", ew, ee);
    CHECK(ew < 1e-6 && ee < 1e-6);
    adam_free(&s);
}

/* K micro-batches with backward scale 1/K give the full batch's gradient. */
static void test_accumulation(void) {
    enum { N = 24, K = 3 };
    float pred[N], target[N], full[N] = {0}, acc[N] = {0};
    for (int i = 0; i < N; i++) { pred[i] = (float)(i % 7) * 0.3f - 1; target[i] = (float)(i % 5) * 0.2f; }
    mse_loss_backward(full, pred, target, N, 1);
    double lfull = mse_loss_forward(pred, target, N), lacc = 0;
    for (int k = 0; k < K; k++) {
        mse_loss_backward(acc + k * (N / K), pred + k * (N / K), target + k * (N / K), N / K, 1.0f / K);
        lacc += mse_loss_forward(pred + k * (N / K), target + k * (N / K), N / K) / K;
    }
    CHECK_NEAR(lacc, lfull, 1e-12);
    CHECK(max_abs(acc, full, N) < 1e-7);
    float g[4] = {1, -2, 3, 4};
    optim_scale(g, 4, 0.5f);
    CHECK(g[0] == 0.5f && g[1] == -1 && g[3] == 2);
}

int main(void) {
    char path[PATH_MAX + 64];
    train_fixture(path, sizeof path, "optim.lsdm");
    if (fixture_load(&fx, path) < 0) {
        fprintf(stderr, "missing fixture %s (make it with tests/torch/make_train.py)\n", path);
        CHECK(0);
    } else {
        test_adam();
        test_clip();
        test_loop();
        fixture_free(&fx);
    }
    test_accumulation();
    return check_done("test_optim");
}
