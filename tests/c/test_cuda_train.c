/* CUDA losses and optimisers against the CPU ones (kernels/cpu/loss.c,
 * libshared/optim.c) on random inputs: normalised error, NaN parity and
 * guard values around every gradient written. Skipped without a GPU. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "device.h"
#include "loss.h"
#include "optim.h"
#include "rng.h"
#ifdef LSDM_CUDA
#include "devmem.h"

#define GUARD 64
static const float guard_val = 12345.0f;

/* Device copy of host data with GUARD sentinel floats each side; returns
 * the pointer to the first real element. */
static float *dev_guarded(const float *h, size_t n) {
    float *tmp = malloc((n + 2 * GUARD) * sizeof *tmp);
    for (size_t i = 0; i < n + 2 * GUARD; i++) tmp[i] = guard_val;
    memcpy(tmp + GUARD, h, n * sizeof *h);
    float *d = lsdm_cuda_alloc((n + 2 * GUARD) * sizeof *d);
    lsdm_cuda_copy(d, tmp, (n + 2 * GUARD) * sizeof *d, 1);
    free(tmp);
    return d + GUARD;
}

/* Copy back; returns 0 if a guard was overwritten. */
static int host_guarded(float *h, float *d, size_t n) {
    float *tmp = malloc((n + 2 * GUARD) * sizeof *tmp);
    lsdm_cuda_copy(tmp, d - GUARD, (n + 2 * GUARD) * sizeof *tmp, 0);
    int ok = 1;
    for (size_t i = 0; i < GUARD; i++) ok &= tmp[i] == guard_val && tmp[GUARD + n + i] == guard_val;
    memcpy(h, tmp + GUARD, n * sizeof *h);
    free(tmp);
    return ok;
}

static void dev_free(float *d) { lsdm_cuda_free(d - GUARD); }

/* max |a-b| / max |b|, and NaN positions must agree. */
static double norm_err(const float *a, const float *b, size_t n) {
    double m = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) != isnan(b[i])) return INFINITY;
        if (isnan(a[i])) continue;
        m = fmax(m, fabs((double)a[i] - b[i]));
        s = fmax(s, fabs((double)b[i]));
    }
    return s > 0 ? m / s : m;
}

static void test_losses(void) {
    int N = 2, C = 5;
    long S = 70001;
    size_t n = (size_t)N * C * S, P = (size_t)N * S;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *gc = malloc(n * sizeof *gc), *gg = malloc(n * sizeof *gg);
    int32_t *t = malloc(P * sizeof *t);
    lsdm_rng_fill_normal(x, n, 1, 0, 0);
    lsdm_rng_fill_normal(y, n, 2, 0, 0);
    for (size_t i = 0; i < n; i++) gc[i] = 0.5f;
    lsdm_rng r;
    lsdm_rng_init(&r, 3, 0);
    for (size_t i = 0; i < P; i++) t[i] = (int32_t)(lsdm_rng_u32(&r) % (uint32_t)C);
    float *dx = dev_guarded(x, n), *dy = dev_guarded(y, n);
    int32_t *dt = lsdm_cuda_alloc(P * sizeof *dt);
    lsdm_cuda_copy(dt, t, P * sizeof *dt, 1);
    double *dw = lsdm_cuda_alloc(LOSS_CUDA_WORK * sizeof *dw);
    const char *names[5] = {"l1", "mse", "hinge_d", "hinge_g", "ce"};
    for (int k = 0; k < 5; k++) {
        float *hg = malloc(n * sizeof *hg);
        for (size_t i = 0; i < n; i++) hg[i] = 0.5f; /* backward accumulates */
        float *dg = dev_guarded(hg, n);
        double lc = 0, lg = 0;
        int rc = 0;
        size_t half = n / 2;
        switch (k) {
        case 0: lc = l1_loss_forward(x, y, n); l1_loss_backward(hg, x, y, n, 3);
                rc = l1_loss_forward_cuda(&lg, dw, dx, dy, n) | l1_loss_backward_cuda(dg, dx, dy, n, 3); break;
        case 1: lc = mse_loss_forward(x, y, n); mse_loss_backward(hg, x, y, n, 3);
                rc = mse_loss_forward_cuda(&lg, dw, dx, dy, n) | mse_loss_backward_cuda(dg, dx, dy, n, 3); break;
        case 2: lc = hinge_d_loss_forward(x, half, y, n - half);
                hinge_d_loss_backward(hg, hg + half, x, half, y, n - half, 3);
                rc = hinge_d_loss_forward_cuda(&lg, dw, dx, half, dy, n - half) |
                     hinge_d_loss_backward_cuda(dg, dg + half, dx, half, dy, n - half, 3); break;
        case 3: lc = hinge_g_loss_forward(x, n); hinge_g_loss_backward(hg, n, 3);
                rc = hinge_g_loss_forward_cuda(&lg, dw, dx, n) | hinge_g_loss_backward_cuda(dg, n, 3); break;
        default: lc = cross_entropy_forward(x, t, N, C, S); cross_entropy_backward(hg, x, t, N, C, S, 3);
                rc = cross_entropy_forward_cuda(&lg, dw, dx, dt, N, C, S) |
                     cross_entropy_backward_cuda(dg, dx, dt, N, C, S, 3);
        }
        CHECK(rc == 0);
        int guards = host_guarded(gg, dg, n);
        double eg = norm_err(gg, hg, n), el = fabs(lg - lc) / fmax(fabs(lc), 1e-30);
        printf("cuda %-8s loss rel err %.2e, grad norm err %.2e, guards %s\n", names[k], el, eg, guards ? "ok" : "BROKEN");
        CHECK(guards);
        CHECK(el < 1e-6);
        CHECK(eg < 1e-5);
        dev_free(dg);
        free(hg);
    }
    /* NaN parity: one NaN in pred makes both L1 losses NaN */
    float nanv = NAN;
    lsdm_cuda_copy(dx + 17, &nanv, sizeof nanv, 1);
    x[17] = NAN;
    double lg = 0;
    CHECK(l1_loss_forward_cuda(&lg, dw, dx, dy, n) == 0 && isnan(lg) && isnan(l1_loss_forward(x, y, n)));
    /* out-of-range target: NaN on both */
    int32_t badt = C;
    lsdm_cuda_copy(dt + 5, &badt, sizeof badt, 1);
    t[5] = C;
    CHECK(cross_entropy_forward_cuda(&lg, dw, dx, dt, N, C, S) == 0 && isnan(lg) && isnan(cross_entropy_forward(x, t, N, C, S)));
    dev_free(dx); dev_free(dy);
    lsdm_cuda_free(dt);
    lsdm_cuda_free(dw);
    free(x); free(y); free(gc); free(gg); free(t);
}

static void test_optim(void) {
    const size_t n = 100003;
    float *w = malloc(n * sizeof *w), *g = malloc(n * sizeof *g), *ema = malloc(n * sizeof *ema), *back = malloc(n * sizeof *back);
    lsdm_rng_fill_normal(w, n, 4, 0, 0);
    memcpy(ema, w, n * sizeof *w);
    float *dw = dev_guarded(w, n), *de = dev_guarded(ema, n), *dg = dev_guarded(w, n);
    double *dwork = lsdm_cuda_alloc(sizeof *dwork);
    for (int variant = 0; variant < 2; variant++) {
        adam_config cfg = adam_config_default(1e-2, variant);
        cfg.beta1 = 0.5, cfg.beta2 = 0.9;
        adam_state hc, hg;
        CHECK(adam_init(&hc, &cfg, n) == 0 && adam_init_cuda(&hg, &cfg, n) == 0);
        for (int step = 0; step < 4; step++) {
            lsdm_rng_fill_normal(g, n, 10 + step, variant, 0);
            lsdm_cuda_copy(dg, g, n * sizeof *g, 1);
            float *gs[1] = {g}, *dgs[1] = {dg};
            size_t ns[1] = {n};
            double tc = optim_clip_grad_norm(gs, ns, 1, 100.0), tg = 0;
            CHECK(optim_clip_grad_norm_cuda(&tg, dwork, dgs, ns, 1, 100.0) == 0);
            CHECK_NEAR(tg, tc, 1e-9 * tc);
            adam_begin_step(&hc);
            adam_begin_step(&hg);
            adam_update(&hc, w, g, n, 0);
            CHECK(adam_update_cuda(&hg, dw, dg, n, 0) == 0);
            ema_update(ema, w, n, 0.995);
            CHECK(ema_update_cuda(de, dw, n, 0.995) == 0);
        }
        CHECK(host_guarded(back, dw, n));
        double ew = norm_err(back, w, n);
        CHECK(host_guarded(back, de, n));
        double ee = norm_err(back, ema, n);
        printf("cuda %s 4 steps: weights norm err %.2e, ema %.2e\n", variant ? "adamw" : "adam ", ew, ee);
        CHECK(ew < 1e-6 && ee < 1e-6);
        adam_free(&hc);
        adam_free_cuda(&hg);
    }
    dev_free(dw); dev_free(de); dev_free(dg);
    lsdm_cuda_free(dwork);
    free(w); free(g); free(ema); free(back);
}
#endif

int main(void) {
    GPU_OR_SKIP("test_cuda_train");
#ifdef LSDM_CUDA
    test_losses();
    test_optim();
#endif
    return check_done("test_cuda_train");
}
