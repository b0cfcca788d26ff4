/* The diffusion checkpoint and its trainer: the "diffusion" metadata text
 * (round trip, errors naming the line), the latent normalisation, load
 * errors; one training step (two accumulated micro-batches, one with the
 * null mask) against PyTorch (tests/torch/make_ldm_train.py: losses,
 * accumulated and clipped gradients, the Adam step, the EMA), the MSE
 * loss, the per-sample draws, --batch 4 == --batch 2 --accum 2,
 * save/resume continuing bit for bit, and divergence stopping the step. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "fixture.h"
#include "ldm.h"
#include "ldm_train.h"
#include "safetensors.h"

static double max_abs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i]));
    return m;
}

/* max |a - ref| / max |ref|; NaN if any a is NaN */
static double rel_err(const float *a, const float *ref, size_t n) {
    double m = 0, s = max_abs(ref, n);
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        if (!(d <= m)) m = d;
    }
    return m / (s > 1e-30 ? s : 1e-30);
}

static const char *path_of(const char *group, const char *file) {
    static char buf[2][4096];
    static int k;
    k ^= 1;
    fixture_path(buf[k], sizeof buf[k], group, file);
    return buf[k];
}

static char *tmp_path(void) {
    static char p[64];
    snprintf(p, sizeof p, "/tmp/test_ldm_XXXXXX");
    int fd = mkstemp(p);
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
    return p;
}

/* ---- the diffusion metadata and normalisation ---- */

static void test_text(void) {
    ldm_diffusion_config a, b;
    ldm_diffusion_defaults(&a);
    CHECK(a.timesteps == 500 && a.loss_l2 == 0 && a.cond_drop == 0.1 && a.downsample[0] == 4 &&
          a.downsample[1] == 4 && a.downsample[2] == 4);
    CHECK(strstr(ldm_diffusion_text(&a), "downsample = 4\n") != NULL);
    a.timesteps = 250, a.loss_l2 = 1, a.latent_min = -3.25, a.latent_max = 0.0625;
    a.cond_drop = 0.2, a.downsample[0] = 2, a.downsample[1] = a.downsample[2] = 8, a.train_shape[0] = 4, a.train_shape[1] = 16,
    a.train_shape[2] = 32;
    memcpy(a.vq_model, "0123456789abcdef", 17);
    CHECK(ldm_diffusion_parse(&b, ldm_diffusion_text(&a)) == 0);
    CHECK(b.timesteps == 250 && b.loss_l2 == 1 && b.latent_min == -3.25 && b.latent_max == 0.0625);
    CHECK(strstr(ldm_diffusion_text(&a), "downsample = 2,8,8\n") != NULL);
    CHECK(b.cond_drop == 0.2 && b.downsample[0] == 2 && b.downsample[1] == 8 && b.downsample[2] == 8 &&
          !strcmp(b.vq_model, "0123456789abcdef"));
    CHECK(b.train_shape[0] == 4 && b.train_shape[1] == 16 && b.train_shape[2] == 32);
    /* irrational-looking values survive the text (%.9g of doubles read back) */
    a.latent_min = -1.0 / 3, a.latent_max = 2.0 / 7;
    CHECK(ldm_diffusion_parse(&b, ldm_diffusion_text(&a)) == 0);
    CHECK(fabs(b.latent_min + 1.0 / 3) < 1e-9 && fabs(b.latent_max - 2.0 / 7) < 1e-9);
    /* errors name the line */
    CHECK(ldm_diffusion_parse(&b, "timesteps = 500\nbogus = 1\n") < 0);
    CHECK(strstr(lsdm_err_msg(), "line 2") && strstr(lsdm_err_msg(), "bogus"));
    CHECK(ldm_diffusion_parse(&b, "schedule = linear\n") < 0);
    CHECK(strstr(lsdm_err_msg(), "schedule") != NULL);
    CHECK(ldm_diffusion_parse(&b, "downsample = 2,4\n") < 0);
    CHECK(ldm_diffusion_parse(&b, "downsample = 0\n") < 0);
    CHECK(ldm_diffusion_parse(&b, "vq_model = 12345\n") < 0);
    CHECK(ldm_diffusion_parse(&b, "timesteps = 0\n") < 0);
    CHECK(ldm_diffusion_parse(&b, "cond_drop = 1.5\n") < 0);
    CHECK(ldm_diffusion_parse(&b, "latent_min = 2\nlatent_max = 1\n") < 0);
    CHECK(strstr(lsdm_err_msg(), "not above") != NULL);
}

static void test_normalize(void) {
    ldm_diffusion_config d;
    ldm_diffusion_defaults(&d);
    d.latent_min = -2.5, d.latent_max = 1.5;
    float z[5] = {-2.5f, 1.5f, -0.5f, 3.5f, 0.25f}, want[5] = {-1, 1, 0, 2, 0.375f};
    ldm_normalize(z, 5, &d);
    for (int i = 0; i < 5; i++) CHECK(fabsf(z[i] - want[i]) <= 1e-7f);
    ldm_denormalize(z, 5, &d);
    float back[5] = {-2.5f, 1.5f, -0.5f, 3.5f, 0.25f};
    for (int i = 0; i < 5; i++) CHECK(fabsf(z[i] - back[i]) <= 4e-7f);
}

static void test_load_errors(void) {
    unet m;
    ldm_diffusion_config d;
    /* a UNet checkpoint without diffusion metadata */
    CHECK(ldm_load(&m, &d, path_of("unet", "small.safetensors"), NULL, NULL) < 0);
    printf("  plain UNet: %s\n", lsdm_err_msg());
    CHECK(strstr(lsdm_err_msg(), "no diffusion checkpoint") != NULL);
    /* a VQ-GAN checkpoint */
    CHECK(ldm_load(&m, &d, path_of("vqgan", "plain.safetensors"), NULL, NULL) < 0);
    CHECK(strstr(lsdm_err_msg(), "not a diffusion UNet") != NULL);
    /* bad diffusion metadata names the file and the line */
    unet_config cfg;
    CHECK(unet_config_load(&cfg, path_of("unet", "small.conf")) == 0);
    CHECK(unet_load(&m, path_of("unet", "small.safetensors"), NULL, NULL) == 0);
    char *p = tmp_path();
    ckpt_meta meta = {0};
    ckpt_meta_set(&meta, "diffusion", "timesteps = 500\nloss = huber\n");
    CHECK(unet_save(&m, p, &meta) == 0);
    unet u;
    CHECK(ldm_load(&u, &d, p, NULL, NULL) < 0);
    printf("  bad metadata: %s\n", lsdm_err_msg());
    CHECK(strstr(lsdm_err_msg(), p) && strstr(lsdm_err_msg(), "line 2"));
    /* and a good one loads with its values */
    ldm_diffusion_defaults(&d);
    d.latent_min = -0.75, d.latent_max = 0.5;
    CHECK(ldm_save(&m, &d, p, NULL) == 0);
    ldm_diffusion_config e;
    CHECK(ldm_load(&u, &e, p, NULL, NULL) == 0);
    CHECK(e.latent_min == -0.75 && e.latent_max == 0.5 && u.cfg.dim == 8);
    unet_free(&u);
    ckpt_meta_free(&meta);
    unet_free(&m);
    unlink(p);
}

/* ---- one step against PyTorch ---- */

enum { K = 2, NB = 2, LNC = 5 };
static const ldm_batch_shape SHAPE = {NB, 4, 8, 8, 16, 32, 32};

typedef struct {
    fixture fx;
    const float *x0, *noise, *t, *drop;
    float *mask;   /* one-hot (K*NB, L, 16,32,32), null masks zeroed */
    size_t px, pm; /* floats per sample */
} step_case;

static int case_load(step_case *s) {
    memset(s, 0, sizeof *s);
    if (fixture_load(&s->fx, path_of("ldm_train", "step.lsdm")) < 0) {
        check_fail++;
        fprintf(stderr, "missing fixture %s (made by tests/torch/make_ldm_train.py)\n",
                path_of("ldm_train", "step.lsdm"));
        return -1;
    }
    size_t n;
    s->x0 = fixture_get(&s->fx, "x0", &n);
    s->px = n / (K * NB);
    s->noise = fixture_get(&s->fx, "noise", NULL);
    s->t = fixture_get(&s->fx, "t", NULL);
    s->drop = fixture_get(&s->fx, "drop", NULL);
    const uint8_t *lab = NULL;
    for (int i = 0; i < s->fx.n; i++)
        if (!strcmp(lsdm_record_get(&s->fx.recs[i], "name"), "labels")) lab = s->fx.recs[i].data;
    CHECK(s->x0 && s->noise && s->t && s->drop && lab && s->px == 4 * 4 * 8 * 8);
    if (!s->x0 || !s->noise || !s->t || !s->drop || !lab) return -1;
    size_t S = 16 * 32 * 32;
    s->pm = LNC * S;
    s->mask = calloc(K * NB * s->pm, sizeof(float));
    for (int b = 0; b < K * NB; b++)
        for (size_t i = 0; b < K * NB && !s->drop[b] && i < S; i++)
            s->mask[b * s->pm + (size_t)lab[b * S + i] * S + i] = 1;
    return 0;
}

static void case_free(step_case *s) {
    free(s->mask);
    fixture_free(&s->fx);
}

static ldm_train_opts step_opts(void) {
    ldm_train_opts o = ldm_train_opts_default();
    o.lr = 1e-3, o.grad_clip = 1.0, o.ema_decay = 0.995, o.accum = K;
    return o;
}

static int trainer_small(ldm_trainer *t, const ldm_train_opts *o, int l2) {
    unet_config cfg;
    ldm_diffusion_config d;
    ldm_diffusion_defaults(&d);
    d.loss_l2 = l2;
    if (unet_config_load(&cfg, path_of("unet", "small.conf")) < 0) return -1;
    int rc = ldm_trainer_init(t, &cfg, &d, o, path_of("unet", "small.safetensors"));
    if (rc < 0) printf("  trainer: %s\n", lsdm_err_msg());
    CHECK(rc == 0);
    return rc;
}

/* fixture tensor PREFIX:NAME against the values of param NAME (data or grad) */
static double compare(const step_case *s, const ldm_trainer *t, const unet *m, const char *prefix,
                      const char *name, int grad, double tol) {
    char key[256];
    snprintf(key, sizeof key, "%s:%s", prefix, name);
    size_t n;
    const float *ref = fixture_get(&s->fx, key, &n);
    const nn_param *p = nn_params_find(&m->ps, name);
    (void)t;
    CHECK(ref && p && p->n == n);
    if (!ref || !p || p->n != n) {
        printf("  missing %s\n", key);
        return INFINITY;
    }
    double e = rel_err(grad ? p->grad : p->data, ref, n);
    if (!(e <= tol)) printf("  %-60s rel %.3g > %.3g\n", key, e, tol);
    CHECK(e <= tol);
    return e;
}

static void test_step_parity(void) {
    step_case s;
    if (case_load(&s) < 0) return;
    ldm_train_opts o = step_opts();
    ldm_trainer t;
    if (trainer_small(&t, &o, 0) < 0) {
        case_free(&s);
        return;
    }
    /* the initial weights, for the EMA check */
    const nn_param *w0p = nn_params_find(&t.m.ps, "time_mlp.1.weight");
    CHECK(w0p != NULL);
    ldm_step_stats st;
    ldm_trainer_begin(&t, &st);
    double loss[K], sum = 0;
    for (int k = 0; k < K; k++) {
        int ts[NB];
        for (int i = 0; i < NB; i++) ts[i] = (int)s.t[k * NB + i];
        int rc = ldm_trainer_backward(&t, s.x0 + k * NB * s.px, s.mask + k * NB * s.pm, ts,
                                      s.noise + k * NB * s.px, &SHAPE, 1.0f / K, &loss[k]);
        if (rc < 0) printf("  backward: %s\n", lsdm_err_msg());
        CHECK(rc == 0);
        sum += loss[k] / K;
        st.samples += NB;
    }
    st.loss = sum;
    const float *l0 = fixture_get(&s.fx, "loss0", NULL), *l1 = fixture_get(&s.fx, "loss1", NULL);
    const float *lref = fixture_get(&s.fx, "loss", NULL), *nref = fixture_get(&s.fx, "grad_norm", NULL);
    CHECK(l0 && l1 && lref && nref);
    if (!l0 || !l1 || !lref || !nref) goto out;
    printf("  losses %.9g %.9g, step %.9g (PyTorch %.9g %.9g, %.9g)\n", loss[0], loss[1], sum, l0[0],
           l1[0], lref[0]);
    CHECK(fabs(loss[0] - l0[0]) <= 1e-6 * l0[0] && fabs(loss[1] - l1[0]) <= 1e-6 * l1[0]);
    CHECK(fabs(sum - lref[0]) <= 1e-6 * lref[0]);
    double worst = 0;
    int nnames = 0;
    for (int i = 0; i < s.fx.n; i++) {
        const char *k = lsdm_record_get(&s.fx.recs[i], "name");
        if (strncmp(k, "grad:", 5)) continue;
        worst = fmax(worst, compare(&s, &t, &t.m, "grad", k + 5, 1, 2e-5));
        nnames++;
    }
    printf("  %d accumulated gradients, worst relative error %.3g\n", nnames, worst);
    CHECK(nnames == 10);

    /* clip, Adam, EMA */
    float *w0 = malloc(w0p->n * sizeof(float));
    memcpy(w0, w0p->data, w0p->n * sizeof(float));
    CHECK(ldm_trainer_end(&t, &st) == 0);
    printf("  gradient norm %.9g (PyTorch %.9g)\n", st.grad_norm, nref[0]);
    CHECK(fabs(st.grad_norm - nref[0]) <= 1e-5 * nref[0]);
    CHECK(t.step == 1 && t.opt.step == 1);
    double wc = 0, ww = 0, we = 0;
    for (int i = 0; i < s.fx.n; i++) {
        const char *k = lsdm_record_get(&s.fx.recs[i], "name");
        if (!strncmp(k, "clipped:", 8)) wc = fmax(wc, compare(&s, &t, &t.m, "clipped", k + 8, 1, 2e-5));
        /* Adam's first step moves each weight by about lr sign(g): the
         * weights agree to a small part of lr */
        if (!strncmp(k, "w1:", 3)) ww = fmax(ww, compare(&s, &t, &t.m, "w1", k + 3, 0, 1e-5));
        if (!strncmp(k, "ema1:", 5)) we = fmax(we, compare(&s, &t, &t.ema, "ema1", k + 5, 0, 1e-6));
    }
    printf("  clipped gradients %.3g, weights after Adam %.3g, EMA %.3g (worst relative)\n", wc, ww, we);
    /* the EMA is 0.995 w0 + 0.005 w1 exactly as ema_update computes it */
    const nn_param *e = nn_params_find(&t.ema.ps, "time_mlp.1.weight");
    int same = 1;
    for (size_t i = 0; e && i < e->n; i++)
        same &= e->data[i] == w0[i] * 0.995f + 0.005f * w0p->data[i];
    CHECK(e && same);
    free(w0);
out:
    ldm_trainer_free(&t);
    case_free(&s);
}

static void test_l2(void) {
    step_case s;
    if (case_load(&s) < 0) return;
    ldm_train_opts o = step_opts();
    o.accum = 1;
    ldm_trainer t;
    if (trainer_small(&t, &o, 1) < 0) {
        case_free(&s);
        return;
    }
    ldm_step_stats st;
    ldm_trainer_begin(&t, &st);
    int ts[NB] = {(int)s.t[0], (int)s.t[1]};
    double loss;
    CHECK(ldm_trainer_backward(&t, s.x0, s.mask, ts, s.noise, &SHAPE, 1.0f, &loss) == 0);
    const float *lref = fixture_get(&s.fx, "l2loss0", NULL);
    CHECK(lref != NULL);
    if (lref) {
        printf("  MSE loss %.9g (PyTorch %.9g)\n", loss, lref[0]);
        CHECK(fabs(loss - lref[0]) <= 1e-6 * lref[0]);
    }
    int n = 0;
    for (int i = 0; i < s.fx.n; i++) {
        const char *k = lsdm_record_get(&s.fx.recs[i], "name");
        if (!strncmp(k, "l2grad:", 7)) compare(&s, &t, &t.m, "l2grad", k + 7, 1, 2e-5), n++;
    }
    CHECK(n == 4);
    ldm_trainer_free(&t);
    case_free(&s);
}

/* ---- draws, accumulation, resume, divergence ---- */

static void test_draws(void) {
    step_case s;
    if (case_load(&s) < 0) return;
    ldm_train_opts o = step_opts();
    ldm_trainer t;
    if (trainer_small(&t, &o, 0) < 0) {
        case_free(&s);
        return;
    }
    enum { G = 20000, NZ = 64 };
    float z[NZ], z2[NZ];
    int ts, ts2, drop, drop2, drops = 0, tmin = 1 << 30, tmax = -1;
    double tsum = 0, zs = 0, zs2 = 0;
    for (int g = 0; g < G; g++) {
        ldm_trainer_draw(&t, g, NZ, &ts, z, &drop);
        drops += drop, tsum += ts;
        tmin = ts < tmin ? ts : tmin, tmax = ts > tmax ? ts : tmax;
        for (int i = 0; i < NZ; i++) zs += z[i], zs2 += (double)z[i] * z[i];
    }
    double nz = (double)G * NZ, mean = zs / nz, sd = sqrt(zs2 / nz - mean * mean);
    printf("  %d draws: dropped %.4f, t in %d..%d mean %.1f, noise mean %.4f sd %.4f\n", G,
           drops / (double)G, tmin, tmax, tsum / G, mean, sd);
    CHECK(fabs(drops / (double)G - 0.1) < 0.01);
    CHECK(tmin == 0 && tmax == 499 && fabs(tsum / G - 249.5) < 5);
    CHECK(fabs(mean) < 0.01 && fabs(sd - 1) < 0.01);
    /* a function of (seed, step, sample) */
    ldm_trainer_draw(&t, 7, NZ, &ts, z, &drop);
    ldm_trainer_draw(&t, 7, NZ, &ts2, z2, &drop2);
    CHECK(ts == ts2 && drop == drop2 && !memcmp(z, z2, sizeof z));
    ldm_trainer_draw(&t, 8, NZ, &ts2, z2, &drop2);
    CHECK(memcmp(z, z2, sizeof z) != 0);
    t.step = 1;
    ldm_trainer_draw(&t, 7, NZ, &ts2, z2, &drop2);
    CHECK(memcmp(z, z2, sizeof z) != 0);
    t.step = 0, t.o.seed = 1;
    ldm_trainer_draw(&t, 7, NZ, &ts2, z2, &drop2);
    CHECK(memcmp(z, z2, sizeof z) != 0);
    ldm_trainer_free(&t);
    case_free(&s);
}

/* One optimiser step of a trainer on the fixture's 4 samples, as
 * micro-batches of nb. */
static int run_step(ldm_trainer *t, const step_case *s, int nb, ldm_step_stats *st) {
    float *mask = malloc(K * NB * s->pm * sizeof(float));
    memcpy(mask, s->mask, K * NB * s->pm * sizeof(float));
    ldm_batch_shape sh = SHAPE;
    sh.N = nb;
    ldm_trainer_begin(t, st);
    int rc = 0;
    for (int k = 0; rc == 0 && k < K * NB / nb; k++)
        rc = ldm_trainer_micro(t, k, s->x0 + k * nb * s->px, mask + k * nb * s->pm, &sh, st);
    if (rc == 0) rc = ldm_trainer_end(t, st);
    free(mask);
    return rc;
}

static void test_accum_resume(void) {
    step_case s;
    if (case_load(&s) < 0) return;
    ldm_train_opts o1 = step_opts(), o2 = step_opts();
    o1.accum = 1, o2.accum = 2;
    ldm_trainer a, b;
    if (trainer_small(&a, &o1, 0) < 0 || trainer_small(&b, &o2, 0) < 0) {
        case_free(&s);
        return;
    }
    ldm_step_stats sa, sb;
    CHECK(run_step(&a, &s, 4, &sa) == 0);
    CHECK(run_step(&b, &s, 2, &sb) == 0);
    printf("  batch 4: loss %.9g norm %.9g, dropped %d; batch 2 accum 2: loss %.9g norm %.9g, dropped %d\n",
           sa.loss, sa.grad_norm, sa.dropped, sb.loss, sb.grad_norm, sb.dropped);
    CHECK(sa.samples == 4 && sb.samples == 4 && sa.dropped == sb.dropped && sa.t_mean == sb.t_mean);
    CHECK(fabs(sa.loss - sb.loss) <= 1e-6 * sa.loss);
    CHECK(fabs(sa.grad_norm - sb.grad_norm) <= 1e-5 * sa.grad_norm);

    /* save after one step: a diffusion model holding the EMA weights */
    char path[64];
    snprintf(path, sizeof path, "%s", tmp_path());
    ckpt_meta extra = {0};
    ckpt_meta_set(&extra, "note", "test");
    CHECK(ldm_trainer_save(&b, path, &extra) == 0);
    ckpt_meta_free(&extra);
    unet u;
    ldm_diffusion_config d;
    CHECK(ldm_load(&u, &d, path, NULL, NULL) == 0);
    int same = u.ps.n == b.ema.ps.n && d.timesteps == 500 && d.cond_drop == 0.1;
    for (int i = 0; same && i < u.ps.n; i++)
        same = !memcmp(u.ps.p[i]->data, b.ema.ps.p[i]->data, u.ps.p[i]->n * sizeof(float));
    CHECK(same);
    /* the EMA differs from the raw weights after a step */
    const nn_param *pe = nn_params_find(&b.ema.ps, "init_conv.weight");
    const nn_param *pm = nn_params_find(&b.m.ps, "init_conv.weight");
    CHECK(pe && pm && memcmp(pe->data, pm->data, pm->n * sizeof(float)));
    unet_free(&u);

    /* resume, and both go on identically */
    ldm_trainer r;
    ckpt_meta meta = {0};
    int rc = ldm_trainer_resume(&r, path, &o2, &meta);
    if (rc < 0) printf("  resume: %s\n", lsdm_err_msg());
    CHECK(rc == 0);
    if (rc == 0) {
        CHECK(r.step == 1 && r.opt.step == 1 && r.o.seed == b.o.seed && r.o.accum == 2);
        CHECK(ckpt_meta_get(&meta, "note") && !strcmp(ckpt_meta_get(&meta, "note"), "test"));
        CHECK(r.m.ps.n == b.m.ps.n);
        same = 1;
        for (int i = 0; i < r.m.ps.n; i++)
            same &= !memcmp(r.m.ps.p[i]->data, b.m.ps.p[i]->data, b.m.ps.p[i]->n * sizeof(float)) &&
                    !memcmp(r.ema.ps.p[i]->data, b.ema.ps.p[i]->data, b.ema.ps.p[i]->n * sizeof(float));
        same &= !memcmp(r.opt.m, b.opt.m, b.opt.n * sizeof(float)) &&
                !memcmp(r.opt.v, b.opt.v, b.opt.n * sizeof(float));
        CHECK(same);
        ldm_step_stats s1, s2;
        CHECK(run_step(&b, &s, 2, &s1) == 0 && run_step(&r, &s, 2, &s2) == 0);
        CHECK(s1.loss == s2.loss && s1.grad_norm == s2.grad_norm);
        same = 1;
        for (int i = 0; i < r.ema.ps.n; i++)
            same &= !memcmp(r.ema.ps.p[i]->data, b.ema.ps.p[i]->data, b.ema.ps.p[i]->n * sizeof(float));
        CHECK(same);
        ldm_trainer_free(&r);
        ckpt_meta_free(&meta);
    }
    /* train_state tensors are there, and a model without them is no resume */
    st_file f;
    CHECK(safetensors_open(&f, path) == 0);
    CHECK(safetensors_find(&f, "train_state.adam.exp_avg") != NULL);
    CHECK(safetensors_find(&f, "train_state.weights.init_conv.weight") != NULL);
    safetensors_close(&f);
    CHECK(ldm_trainer_resume(&r, path_of("unet", "small.safetensors"), &o2, NULL) < 0);
    printf("  resume of a plain UNet: %s\n", lsdm_err_msg());
    unlink(path);
    ldm_trainer_free(&a);
    ldm_trainer_free(&b);
    case_free(&s);
}

/* A non-finite loss or gradient stops the step before it changes
 * anything. (Made by hand: NaN data through the network is the bats
 * test's, a NaN in the kernels' exp being undefined behaviour to UBSan.) */
static void test_diverge(void) {
    step_case s;
    if (case_load(&s) < 0) return;
    ldm_train_opts o = step_opts();
    o.accum = 1;
    ldm_trainer t;
    if (trainer_small(&t, &o, 0) < 0) {
        case_free(&s);
        return;
    }
    nn_param *p = nn_params_find(&t.m.ps, "final_conv.1.bias");
    const nn_param *e = nn_params_find(&t.ema.ps, "final_conv.1.bias");
    float before = p->data[0];
    ldm_step_stats st;
    for (int k = 0; k < 2; k++) {
        ldm_trainer_begin(&t, &st);
        CHECK(ldm_trainer_micro(&t, 0, s.x0, s.mask, &SHAPE, &st) == 0);
        if (k == 0) st.loss = INFINITY;
        else p->grad[1] = NAN;
        CHECK(ldm_trainer_end(&t, &st) < 0);
        printf("  %s: %s\n", k ? "NaN gradient" : "infinite loss", lsdm_err_msg());
        CHECK(strstr(lsdm_err_msg(), "step 1: the loss is") && strstr(lsdm_err_msg(), "diverged"));
        CHECK(t.step == 0 && t.opt.step == 0 && p->data[0] == before && e->data[0] == before);
    }
    /* and a finite step goes through */
    ldm_trainer_begin(&t, &st);
    CHECK(ldm_trainer_micro(&t, 0, s.x0, s.mask, &SHAPE, &st) == 0);
    CHECK(ldm_trainer_end(&t, &st) == 0 && t.step == 1 && p->data[0] != before);
    ldm_trainer_free(&t);
    case_free(&s);
}

int main(void) {
    /* steps of a tiny UNet: threads would only wait on each other */
    omp_set_num_threads(1);
    test_text();
    test_normalize();
    test_load_errors();
    test_step_parity();
    test_l2();
    test_draws();
    test_accum_resume();
    test_diverge();
    return check_done("test_ldm");
}
