/* The diffusion schedule and samplers (libshared/diffusion.c) against
 * PyTorch (tests/torch/make_diffusion.py, float64): the reference cosine
 * schedule, its DDPM step (p_sample), DDIM steps (eta 0, 0.5, 1; clipped or
 * not), both guidance formulas, and one whole guided step of the small UNet
 * fixture (cond and uncond as one batch of 2); the timestep subsequences,
 * q_sample, the depth windows, and errors for steps out of range.
 *
 * Also the bats tests' checkpoint maker (until ldm-train makes them):
 *   test_diffusion --write-ldm OUT UNET_CONF VQ_CKPT TIMESTEPS D,H,W [SEED|nan]
 * writes a diffusion checkpoint of a randomly initialised UNet (config file
 * UNET_CONF) for the latents of VQ-GAN VQ_CKPT (its digest, codebook
 * min/max and downsampling), TIMESTEPS steps, train_shape D,H,W; "nan"
 * instead of a seed makes one output bias NaN (for the error path). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "diffusion.h"
#include "fixture.h"
#include "ldm.h"
#include "unet.h"
#include "vqtile.h"

static double max_abs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i]));
    return m;
}

/* max |a - ref| / max |ref|; NaN anywhere gives NaN */
static double rel_err(const float *a, const float *ref, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        if (!(d <= m)) m = d;
    }
    double s = max_abs(ref, n);
    return m / (s > 1e-30 ? s : 1e-30);
}

static int load_fixture(fixture *fx, const char *file) {
    char path[4096];
    fixture_path(path, sizeof path, "diffusion", file);
    if (fixture_load(fx, path) == 0) return 0;
    check_fail++;
    fprintf(stderr, "missing fixture %s (made by tests/torch/make_diffusion.py)\n", path);
    return -1;
}

/* Compare n floats with fixture tensor `name`. */
static void check_vec(const fixture *fx, const char *name, const float *got, size_t n, double tol) {
    size_t m;
    const float *ref = fixture_get(fx, name, &m);
    CHECK(ref != NULL && m == n);
    if (!ref || m != n) {
        printf("  missing %s\n", name);
        return;
    }
    double e = rel_err(got, ref, n);
    printf("  %-26s relative %.3g (max |ref| %.3g)\n", name, e, max_abs(ref, n));
    CHECK(e <= tol);
}

/* ---- the schedule ---- */

/* The double NAME from NAME:hi + NAME:lo; T values or NULL. */
static double *fixture_f64(const fixture *fx, const char *name, int T) {
    char h[128], l[128];
    snprintf(h, sizeof h, "%s:hi", name);
    snprintf(l, sizeof l, "%s:lo", name);
    size_t nh, nl;
    const float *hi = fixture_get(fx, h, &nh), *lo = fixture_get(fx, l, &nl);
    CHECK(hi && lo && nh == (size_t)T && nl == (size_t)T);
    if (!hi || !lo || nh != (size_t)T || nl != (size_t)T) return NULL;
    double *v = malloc((size_t)T * sizeof *v);
    for (int i = 0; i < T; i++) v[i] = (double)hi[i] + (double)lo[i];
    return v;
}

static void check_f64(const fixture *fx, const char *name, const double *got, int T) {
    double *ref = fixture_f64(fx, name, T), e = 0;
    if (!ref) return;
    for (int i = 0; i < T; i++) e = fmax(e, fabs(got[i] - ref[i]) / fmax(fabs(ref[i]), 1e-300));
    printf("  %-26s max relative %.3g\n", name, e);
    CHECK(e <= 1e-11); /* 1 - f(t+1)/f(t) cancels: libm differences grow */
    free(ref);
}

static void test_schedule(void) {
    fixture fx;
    if (load_fixture(&fx, "schedule.lsdm") < 0) return;
    int Ts[2] = {500, 20};
    for (int k = 0; k < 2; k++) {
        diffusion_schedule s;
        int T = Ts[k];
        CHECK(diffusion_schedule_init(&s, T) == 0);
        char name[64];
        snprintf(name, sizeof name, "T%d:betas", T);
        check_f64(&fx, name, s.betas, T);
        snprintf(name, sizeof name, "T%d:ac", T);
        check_f64(&fx, name, s.alphas_cumprod, T);
        snprintf(name, sizeof name, "T%d:acp", T);
        check_f64(&fx, name, s.alphas_cumprod_prev, T);
        CHECK(s.alphas_cumprod_prev[0] == 1 && s.betas[T - 1] == 0.9999);
        diffusion_schedule_free(&s);
    }
    fixture_free(&fx);
    diffusion_schedule s;
    CHECK(diffusion_schedule_init(&s, 0) < 0);
    CHECK(strstr(lsdm_err_msg(), "0 timesteps") != NULL);
    CHECK(diffusion_schedule_init(&s, DIFFUSION_MAX_STEPS + 1) < 0);
    CHECK(s.betas == NULL);
}

/* ---- the steps ---- */

static void test_steps(void) {
    fixture fx;
    if (load_fixture(&fx, "steps.lsdm") < 0) return;
    size_t n, n2, n3, n4;
    const float *x = fixture_get(&fx, "x", &n), *eps = fixture_get(&fx, "eps", &n2);
    const float *eps2 = fixture_get(&fx, "eps2", &n3), *noise = fixture_get(&fx, "noise", &n4);
    CHECK(x && eps && eps2 && noise && n == n2 && n == n3 && n == n4);
    if (!x || !eps || !eps2 || !noise) return;
    diffusion_schedule s;
    diffusion_schedule_init(&s, 500);
    float *y = malloc(n * sizeof *y), *y2 = malloc(n * sizeof *y2);
    char name[64];
    int ts[4] = {499, 250, 1, 0};
    for (int k = 0; k < 4; k++)
        for (int clip = 0; clip < 2; clip++) {
            diffusion_ddpm_step(y, x, eps, noise, n, &s, ts[k], clip);
            snprintf(name, sizeof name, "ddpm:t%d:clip%d", ts[k], clip);
            check_vec(&fx, name, y, n, 1e-6);
        }
    struct { int t, tp; double eta; int clip; const char *eta_s; } dd[] = {
        {499, 489, 0, 1, "0"}, {499, 489, 1, 1, "1"}, {250, 240, 0, 0, "0"}, {250, 240, 1, 0, "1"},
        {250, 249, 1, 1, "1"}, {250, 240, 0.5, 1, "0.5"}, {9, -1, 0, 1, "0"}, {9, -1, 1, 0, "1"},
    };
    for (size_t k = 0; k < sizeof dd / sizeof *dd; k++) {
        diffusion_ddim_step(y, x, eps, noise, n, &s, dd[k].t, dd[k].tp, dd[k].eta, dd[k].clip);
        snprintf(name, sizeof name, "ddim:t%d:p%d:e%s:clip%d", dd[k].t, dd[k].tp, dd[k].eta_s, dd[k].clip);
        check_vec(&fx, name, y, n, 1e-6);
    }
    /* eta 0 needs no noise */
    diffusion_ddim_step(y, x, eps, NULL, n, &s, 250, 240, 0, 0);
    check_vec(&fx, "ddim:t250:p240:e0:clip0", y, n, 1e-6);
    /* DDIM with eta 1 over one step is the DDPM step (respaced DDPM) */
    diffusion_ddim_step(y, x, eps, noise, n, &s, 250, 249, 1, 1);
    diffusion_ddpm_step(y2, x, eps, noise, n, &s, 250, 1);
    double e = rel_err(y, y2, n);
    printf("  ddim eta 1 (250 -> 249) vs ddpm: relative %.3g\n", e);
    CHECK(e <= 1e-6);
    /* guidance, in place too */
    diffusion_guide(y, eps, eps2, n, 1.5, DIFFUSION_GUIDE_STANDARD);
    check_vec(&fx, "guide:std", y, n, 1e-7);
    memcpy(y, eps, n * sizeof *y);
    diffusion_guide(y, y, eps2, n, 1.5, DIFFUSION_GUIDE_REFERENCE);
    check_vec(&fx, "guide:ref", y, n, 1e-7);
    diffusion_guide(y, eps, eps2, n, 1, DIFFUSION_GUIDE_STANDARD);
    CHECK(!memcmp(y, eps, n * sizeof *y)); /* S = 1: cond alone */
    diffusion_guide(y, eps, eps2, n, 0, DIFFUSION_GUIDE_STANDARD);
    CHECK(!memcmp(y, eps2, n * sizeof *y)); /* S = 0: uncond alone */
    diffusion_guide(y, eps, eps2, n, 0, DIFFUSION_GUIDE_REFERENCE);
    CHECK(!memcmp(y, eps, n * sizeof *y));  /* reference S = 0: cond alone */
    free(y), free(y2);
    diffusion_schedule_free(&s);
    fixture_free(&fx);
}

/* q_sample, then DDIM from t straight to x0 with the true noise as eps,
 * gives x0 back (|x0| < 1, so the clip keeps it). */
static void test_q_sample(void) {
    diffusion_schedule s;
    diffusion_schedule_init(&s, 500);
    size_t n = 1000;
    float *x0 = malloc(n * sizeof(float)), *nz = malloc(n * sizeof(float));
    float *xt = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x0[i] = (float)sin(0.37 * i), nz[i] = (float)(2 * cos(1.3 * i));
    int ts[3] = {0, 123, 400};
    for (int k = 0; k < 3; k++) {
        int t = ts[k];
        diffusion_q_sample(xt, x0, nz, n, &s, t);
        double a = s.alphas_cumprod[t];
        CHECK_NEAR(xt[7], (float)(sqrt(a) * x0[7] + sqrt(1 - a) * nz[7]), 1e-7);
        diffusion_ddim_step(y, xt, nz, NULL, n, &s, t, -1, 0, 1);
        double e = 0;
        for (size_t i = 0; i < n; i++) e = fmax(e, fabs((double)y[i] - x0[i]));
        printf("  q_sample t %3d -> ddim to x0 with the true noise: max abs %.3g\n", t, e);
        CHECK(e <= 1e-6 / sqrt(a)); /* x_t rounded to f32, divided by sqrt(abar) */
    }
    free(x0), free(nz), free(xt), free(y);
    diffusion_schedule_free(&s);
}

static void test_timesteps(void) {
    diffusion_schedule s;
    diffusion_schedule_init(&s, 500);
    int ts[500];
    CHECK(diffusion_timesteps(ts, 50, &s) == 0);
    CHECK(ts[0] == 499 && ts[1] == 489 && ts[2] == 479 && ts[48] == 10 && ts[49] == 0);
    int desc = 1;
    for (int i = 1; i < 50; i++) desc &= ts[i] < ts[i - 1];
    CHECK(desc);
    CHECK(diffusion_timesteps(ts, 500, &s) == 0);
    int every = 1;
    for (int i = 0; i < 500; i++) every &= ts[i] == 499 - i;
    CHECK(every);
    CHECK(diffusion_timesteps(ts, 1, &s) == 0 && ts[0] == 499);
    CHECK(diffusion_timesteps(ts, 2, &s) == 0 && ts[0] == 499 && ts[1] == 0);
    /* 4 of 20 steps: 19 * (3,2,1,0) / 3 = 19, 12.67, 6.33, 0 */
    diffusion_schedule t20;
    diffusion_schedule_init(&t20, 20);
    CHECK(diffusion_timesteps(ts, 4, &t20) == 0 && ts[0] == 19 && ts[1] == 13 && ts[2] == 6 && ts[3] == 0);
    for (int steps = 1; steps <= 20; steps++) { /* distinct for every count */
        diffusion_timesteps(ts, steps, &t20);
        int ok = ts[0] == 19 && ts[steps - 1] == (steps > 1 ? 0 : 19);
        for (int i = 1; i < steps; i++) ok &= ts[i] < ts[i - 1];
        CHECK(ok);
    }
    CHECK(diffusion_timesteps(ts, 21, &t20) < 0);
    printf("  21 of 20: %s\n", lsdm_err_msg());
    CHECK(strstr(lsdm_err_msg(), "21 sampling steps") && strstr(lsdm_err_msg(), "20 timesteps"));
    CHECK(diffusion_timesteps(ts, 0, &s) < 0);
    CHECK(diffusion_timesteps(ts, -3, &s) < 0);
    diffusion_schedule_free(&t20);
    diffusion_schedule_free(&s);
}

/* ---- depth windows ---- */

static void test_windows(void) {
    diffusion_windows w;
    /* not deeper than the window: one window of the whole depth, weight 1 */
    CHECK(diffusion_windows_init(&w, 5, 8) == 0);
    CHECK(w.n == 1 && w.D == 5 && w.off[0] == 0 && w.w[0] == 1 && w.w[4] == 1 && w.wsum[4] == 1);
    diffusion_windows_free(&w);
    /* 12 slices in windows of 4: 0, 2, 4, 6, 8; ramps 1/4, 3/4 over the
     * 2 shared slices, summing to exactly 1 */
    CHECK(diffusion_windows_init(&w, 12, 4) == 0);
    CHECK(w.n == 5 && w.D == 4 && w.off[1] == 2 && w.off[4] == 8);
    float want0[4] = {1, 1, 0.75f, 0.25f}, want1[4] = {0.25f, 0.75f, 0.75f, 0.25f};
    CHECK(!memcmp(w.w, want0, sizeof want0) && !memcmp(w.w + 4, want1, sizeof want1));
    CHECK(w.w[19] == 1 && w.w[16] == 0.25f);
    int ones = 1;
    for (int d = 0; d < 12; d++) ones &= w.wsum[d] == 1;
    CHECK(ones);
    diffusion_windows_free(&w);
    /* any depth and window: the first at 0, the last ending at the end,
     * at most half a window apart, every slice covered with weights in
     * (0,1], and the weights of a window change by at most 1/overlap per
     * slice (no seams: the blend moves smoothly from one to the next) */
    int bad = 0, cases = 0;
    for (int depth = 1; depth <= 40; depth++)
        for (int win = 1; win <= 12; win++, cases++) {
            if (diffusion_windows_init(&w, depth, win) < 0) {
                bad++;
                continue;
            }
            int D = w.D, half = D / 2 > 1 ? D / 2 : 1, ok = w.off[0] == 0 && w.off[w.n - 1] + D == depth;
            ok &= D == (depth < win ? depth : win);
            for (int i = 1; i < w.n; i++) ok &= w.off[i] > w.off[i - 1] && w.off[i] - w.off[i - 1] <= half;
            for (int i = 0; i < w.n * D; i++) ok &= w.w[i] > 0 && w.w[i] <= 1;
            for (int d = 0; d < depth; d++) ok &= w.wsum[d] > 0;
            for (int i = 0; i < w.n; i++)
                for (int p = 1; p < D; p++) {
                    int ov = i > 0 ? w.off[i - 1] + D - w.off[i] : D;
                    if (i < w.n - 1 && w.off[i] + D - w.off[i + 1] < ov) ov = w.off[i] + D - w.off[i + 1];
                    ok &= fabs(w.w[i * D + p] - w.w[i * D + p - 1]) <= 1.0 / (ov > 0 ? ov : 1) + 1e-6;
                }
            bad += !ok;
            diffusion_windows_free(&w);
        }
    printf("  windows: %d of %d (depth, window) pairs bad\n", bad, cases);
    CHECK(bad == 0);
    /* the blend: windows cut from one field give the field back; windows
     * of constant eps i blend into a ramp from one to the next */
    int C = 2, depth = 13;
    size_t plane = 3, n = (size_t)C * depth * plane;
    CHECK(diffusion_windows_init(&w, depth, 4) == 0 && w.n == 6);
    float *field = malloc(n * sizeof(float)), *eps = calloc(n, sizeof(float)), *ramp = calloc(n, sizeof(float));
    float *e = malloc((size_t)C * w.D * plane * sizeof(float));
    for (size_t k = 0; k < n; k++) field[k] = (float)(0.37 * k - 3);
    for (int i = 0; i < w.n; i++) {
        for (int c = 0; c < C; c++)
            memcpy(e + (size_t)c * w.D * plane, field + ((size_t)c * depth + w.off[i]) * plane,
                   w.D * plane * sizeof(float));
        diffusion_windows_add(&w, i, eps, e, C, plane);
        for (size_t k = 0; k < (size_t)C * w.D * plane; k++) e[k] = (float)i;
        diffusion_windows_add(&w, i, ramp, e, C, plane);
    }
    diffusion_windows_finish(&w, eps, C, plane);
    diffusion_windows_finish(&w, ramp, C, plane);
    double err = 0, step = 0;
    int mono = 1;
    for (size_t k = 0; k < n; k++) err = fmax(err, fabs((double)eps[k] - field[k]));
    for (int c = 0; c < C; c++)
        for (int d = 1; d < depth; d++) {
            double a = ramp[((size_t)c * depth + d - 1) * plane], b = ramp[((size_t)c * depth + d) * plane];
            mono &= b >= a;
            step = fmax(step, b - a);
        }
    printf("  blend: field back to %.3g; window index ramps 0..%g, largest step %.3g per slice\n", err,
           ramp[n - 1], step);
    CHECK(err <= 1e-5);
    CHECK(mono && ramp[0] == 0 && ramp[n - 1] == 5 && step <= 0.75);
    free(field), free(eps), free(ramp), free(e);
    diffusion_windows_free(&w);
    CHECK(diffusion_windows_init(&w, 0, 4) < 0 && diffusion_windows_init(&w, 4, 0) < 0);
}

/* ---- one guided step of the small UNet ---- */

static void test_guided(void) {
    fixture fx;
    if (load_fixture(&fx, "guided.lsdm") < 0) return;
    char ck[4096], conf[4096];
    fixture_path(ck, sizeof ck, "unet", "small.safetensors");
    fixture_path(conf, sizeof conf, "unet", "small.conf");
    unet m;
    int rc = unet_load(&m, ck, conf, NULL);
    if (rc < 0) printf("  load: %s\n", lsdm_err_msg());
    CHECK(rc == 0);
    size_t n = 0, nx, nn;
    const float *x = fixture_get(&fx, "x", &nx), *noise = fixture_get(&fx, "noise", &nn);
    const uint8_t *lab = NULL;
    for (int i = 0; i < fx.n; i++)
        if (!strcmp(lsdm_record_get(&fx.recs[i], "name"), "labels")) lab = fx.recs[i].data, n = lsdm_record_numel(&fx.recs[i]);
    int L = m.cfg.label_nc, C = m.cfg.channels, D = 2, H = 8, W = 8;
    size_t S = 8 * 32 * 32, lat = (size_t)C * D * H * W;
    CHECK(lab && n == S && x && nx == lat && noise && nn == lat);
    if (rc < 0 || !lab || n != S || !x || nx != lat || !noise) {
        if (rc == 0) unet_free(&m);
        fixture_free(&fx);
        return;
    }
    /* cond and uncond (the all-zero mask) as one batch of 2 */
    float *mask = calloc(2 * (size_t)L * S, sizeof(float)), *x2 = malloc(2 * lat * sizeof(float));
    for (size_t i = 0; i < S; i++) mask[(size_t)lab[i] * S + i] = 1;
    memcpy(x2, x, lat * sizeof(float));
    memcpy(x2 + lat, x, lat * sizeof(float));
    float t[2] = {300, 300};
    nn_ctx c;
    nn_ctx_init(&c, 0);
    unet_maskfeat mf;
    CHECK(unet_encode_mask(&c, &m, nn_tensor_wrap(&c, mask, 2, L, 8, 32, 32), D, H, W, &mf) == 0);
    nn_tensor *e = unet_forward(&c, &m, nn_tensor_wrap(&c, x2, 2, C, D, H, W), t, &mf);
    CHECK(e != NULL);
    if (e) {
        check_vec(&fx, "eps_cond", e->data, lat, 2e-6);
        check_vec(&fx, "eps_uncond", e->data + lat, lat, 2e-6);
        diffusion_schedule s;
        diffusion_schedule_init(&s, 500);
        float *g = malloc(lat * sizeof(float)), *y = malloc(lat * sizeof(float));
        diffusion_guide(g, e->data, e->data + lat, lat, 1.5, DIFFUSION_GUIDE_STANDARD);
        check_vec(&fx, "guided:std", g, lat, 4e-6);
        diffusion_ddim_step(y, x, g, NULL, lat, &s, 300, 290, 0, 1);
        check_vec(&fx, "ddim", y, lat, 4e-6);
        diffusion_guide(g, e->data, e->data + lat, lat, 1.5, DIFFUSION_GUIDE_REFERENCE);
        check_vec(&fx, "guided:ref", g, lat, 4e-6);
        diffusion_ddpm_step(y, x, g, noise, lat, &s, 300, 1);
        check_vec(&fx, "ddpm", y, lat, 4e-6);
        free(g), free(y);
        diffusion_schedule_free(&s);
    }
    nn_ctx_free(&c);
    free(mask), free(x2);
    unet_free(&m);
    fixture_free(&fx);
}

/* ---- the bats tests' checkpoint maker ---- */

static int write_ldm(int argc, char **argv) {
    if (argc < 7 || argc > 8) {
        fprintf(stderr, "usage: test_diffusion --write-ldm OUT UNET_CONF VQ_CKPT TIMESTEPS D,H,W [SEED|nan]\n");
        return 2;
    }
    unet_config cfg;
    vqgan vq;
    unet m;
    ldm_diffusion_config d;
    ldm_diffusion_defaults(&d);
    d.timesteps = atoi(argv[5]);
    if (sscanf(argv[6], "%d,%d,%d", &d.train_shape[0], &d.train_shape[1], &d.train_shape[2]) != 3) {
        fprintf(stderr, "test_diffusion: error: bad train shape '%s'\n", argv[6]);
        return 2;
    }
    int poison = argc > 7 && !strcmp(argv[7], "nan");
    uint64_t seed = argc > 7 && !poison ? strtoull(argv[7], NULL, 10) : 1;
    if (unet_config_load(&cfg, argv[3]) < 0 || vqgan_load(&vq, argv[4], NULL, NULL) < 0) {
        fprintf(stderr, "test_diffusion: error: %s\n", lsdm_err_msg());
        return 1;
    }
    vq_model_digest(&vq, d.vq_model);
    memcpy(d.downsample, vq.cfg.downsample, sizeof d.downsample);
    d.latent_min = d.latent_max = vq.emb->data[0];
    for (size_t i = 0; i < vq.emb->n; i++) {
        d.latent_min = fmin(d.latent_min, vq.emb->data[i]);
        d.latent_max = fmax(d.latent_max, vq.emb->data[i]);
    }
    vqgan_free(&vq);
    int rc = unet_init(&m, &cfg, seed);
    if (rc == 0 && poison) m.final_conv.b->data[0] = NAN; /* eps NaN in channel 0 */
    if (rc == 0) {
        rc = ldm_save(&m, &d, argv[2], NULL);
        unet_free(&m);
    }
    if (rc < 0) fprintf(stderr, "test_diffusion: error: %s\n", lsdm_err_msg());
    return rc < 0 ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--write-ldm")) return write_ldm(argc, argv);
    test_schedule();
    test_timesteps();
    test_steps();
    test_q_sample();
    test_windows();
    test_guided();
    return check_done("test_diffusion");
}
