/* Losses: finite differences of the double versions, float against
 * double, accumulation (+=) and scale, and parity with PyTorch
 * (tests/fixtures/train/loss.lsdm from tests/torch/make_train.py). */
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "fixture.h"
#include "loss.h"
#include "rng.h"

/* tests/fixtures/train/FILE, from $LSDM_FIXTURES or from the test
 * binary's place (TOP/BUILD/tests/test_loss), so any cwd works. */
static void train_fixture(char *buf, size_t size, const char *file) { fixture_path(buf, size, "train", file); }

static lsdm_rng rng;

static double *rand_f64(size_t n, double scale) {
    double *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = scale * lsdm_rng_normal(&rng);
    return x;
}

static int32_t *rand_targets(size_t n, int C) {
    int32_t *t = malloc(n * sizeof *t);
    for (size_t i = 0; i < n; i++) t[i] = (int32_t)(lsdm_rng_u32(&rng) % (uint32_t)C);
    return t;
}

static float *to_f32(const double *x, size_t n) {
    float *y = malloc(n * sizeof *y);
    for (size_t i = 0; i < n; i++) y[i] = (float)x[i];
    return y;
}

static double max_rel(const double *a, const double *b, size_t n) {
    double m = 0, scale = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i] - b[i]) / fmax(scale, 1e-30));
    return m;
}

/* A loss of one input x (others fixed in the closure), in double. */
typedef struct {
    int kind; /* 0 l1, 1 mse, 2 hinge d (x = real), 3 hinge d (x = fake), 4 hinge g, 5 ce, 6 dice */
    const double *other;
    size_t n, n_other;
    const int32_t *target;
    int N, C;
    long S;
    dice_params dp;
    double *work;
} loss_case;

static double eval(const loss_case *c, const double *x) {
    switch (c->kind) {
    case 0: return l1_loss_forward_f64(x, c->other, c->n);
    case 1: return mse_loss_forward_f64(x, c->other, c->n);
    case 2: return hinge_d_loss_forward_f64(x, c->n, c->other, c->n_other);
    case 3: return hinge_d_loss_forward_f64(c->other, c->n_other, x, c->n);
    case 4: return hinge_g_loss_forward_f64(x, c->n);
    case 5: return cross_entropy_forward_f64(x, c->target, c->N, c->C, c->S);
    default: return dice_loss_forward_f64(c->work, x, c->target, c->N, c->C, c->S, &c->dp);
    }
}

static void grad(const loss_case *c, double *dx, const double *x, double scale) {
    switch (c->kind) {
    case 0: l1_loss_backward_f64(dx, x, c->other, c->n, scale); break;
    case 1: mse_loss_backward_f64(dx, x, c->other, c->n, scale); break;
    case 2: hinge_d_loss_backward_f64(dx, NULL, x, c->n, c->other, c->n_other, scale); break;
    case 3: hinge_d_loss_backward_f64(NULL, dx, c->other, c->n_other, x, c->n, scale); break;
    case 4: hinge_g_loss_backward_f64(dx, c->n, scale); break;
    case 5: cross_entropy_backward_f64(dx, x, c->target, c->N, c->C, c->S, scale); break;
    default: dice_loss_backward_f64(dx, c->work, x, c->target, c->N, c->C, c->S, &c->dp, scale);
    }
}

/* Central differences of scale*L against the analytic gradient, which is
 * accumulated onto a buffer of ones to check the +=. */
static void check_fd(const char *name, const loss_case *c, double *x) {
    const double h = 1e-6, scale = 0.75;
    double *dx = malloc(c->n * sizeof *dx), *fd = malloc(c->n * sizeof *fd);
    for (size_t i = 0; i < c->n; i++) dx[i] = 1.0;
    grad(c, dx, x, scale);
    for (size_t i = 0; i < c->n; i++) {
        double keep = x[i];
        x[i] = keep + h;
        double lp = eval(c, x);
        x[i] = keep - h;
        double lm = eval(c, x);
        x[i] = keep;
        fd[i] = 1.0 + scale * (lp - lm) / (2 * h);
    }
    for (size_t i = 0; i < c->n; i++) { dx[i] -= 1.0; fd[i] -= 1.0; }
    double err = max_rel(dx, fd, c->n);
    printf("fd %-10s max rel err %.2e\n", name, err);
    CHECK(err < 1e-6);
    free(dx);
    free(fd);
}

static void test_finite_differences(void) {
    size_t n = 60;
    double *a = rand_f64(n, 1.5), *b = rand_f64(n, 1.5), *f = rand_f64(37, 1.5);
    loss_case c = {.kind = 0, .other = b, .n = n};
    check_fd("l1", &c, a);
    c.kind = 1;
    check_fd("mse", &c, a);
    c = (loss_case){.kind = 2, .other = f, .n = n, .n_other = 37};
    check_fd("hinge_d_r", &c, a);
    c.kind = 3;
    check_fd("hinge_d_f", &c, a);
    c.kind = 4;
    check_fd("hinge_g", &c, a);

    int N = 2, C = 4;
    long S = 15;
    double *x = rand_f64((size_t)N * C * S, 2.0);
    int32_t *t = rand_targets((size_t)N * S, C);
    double *work = malloc(dice_loss_workspace_size(N, C) * sizeof *work);
    c = (loss_case){.kind = 5, .n = (size_t)N * C * S, .target = t, .N = N, .C = C, .S = S, .work = work};
    check_fd("ce", &c, x);
    c.kind = 6;
    c.dp = dice_params_reference();
    check_fd("dice_ref", &c, x);
    c.dp = (dice_params){.batch_dice = 0, .do_bg = 1, .smooth = 1, .smooth_nom = 0.5};
    check_fd("dice_alt", &c, x);
    free(a); free(b); free(f); free(x); free(t); free(work);
}

/* Float path against the double one on the same inputs. */
static void test_float_vs_double(void) {
    int N = 3, C = 5;
    long S = 1000;
    size_t n = (size_t)N * C * S;
    double *x = rand_f64(n, 2.0), *y = rand_f64(n, 2.0), *gd = calloc(n, sizeof *gd);
    float *xf = to_f32(x, n), *yf = to_f32(y, n), *gf = calloc(n, sizeof *gf);
    for (size_t i = 0; i < n; i++) { x[i] = xf[i]; y[i] = yf[i]; } /* same values */
    int32_t *t = rand_targets((size_t)N * S, C);
    double *work = malloc(dice_loss_workspace_size(N, C) * sizeof *work);
    dice_params dp = dice_params_reference();
    double worst = 0;
    for (int k = 0; k < 7; k++) {
        memset(gd, 0, n * sizeof *gd);
        memset(gf, 0, n * sizeof *gf);
        double ld, lf;
        switch (k) {
        case 0: ld = l1_loss_forward_f64(x, y, n); lf = l1_loss_forward(xf, yf, n);
                l1_loss_backward_f64(gd, x, y, n, 2); l1_loss_backward(gf, xf, yf, n, 2); break;
        case 1: ld = mse_loss_forward_f64(x, y, n); lf = mse_loss_forward(xf, yf, n);
                mse_loss_backward_f64(gd, x, y, n, 2); mse_loss_backward(gf, xf, yf, n, 2); break;
        case 2: ld = hinge_d_loss_forward_f64(x, n / 2, y, n / 3); lf = hinge_d_loss_forward(xf, n / 2, yf, n / 3);
                hinge_d_loss_backward_f64(gd, gd + n / 2, x, n / 2, y, n / 3, 2);
                hinge_d_loss_backward(gf, gf + n / 2, xf, n / 2, yf, n / 3, 2); break;
        case 3: ld = hinge_g_loss_forward_f64(x, n); lf = hinge_g_loss_forward(xf, n);
                hinge_g_loss_backward_f64(gd, n, 2); hinge_g_loss_backward(gf, n, 2); break;
        case 4: ld = cross_entropy_forward_f64(x, t, N, C, S); lf = cross_entropy_forward(xf, t, N, C, S);
                cross_entropy_backward_f64(gd, x, t, N, C, S, 2); cross_entropy_backward(gf, xf, t, N, C, S, 2); break;
        case 5: ld = dice_loss_forward_f64(work, x, t, N, C, S, &dp); lf = dice_loss_forward(work, xf, t, N, C, S, &dp);
                dice_loss_backward_f64(gd, work, x, t, N, C, S, &dp, 2);
                dice_loss_backward(gf, work, xf, t, N, C, S, &dp, 2); break;
        default: dp.batch_dice = 0; dp.do_bg = 1;
                ld = dice_loss_forward_f64(work, x, t, N, C, S, &dp); lf = dice_loss_forward(work, xf, t, N, C, S, &dp);
                dice_loss_backward_f64(gd, work, x, t, N, C, S, &dp, 2);
                dice_loss_backward(gf, work, xf, t, N, C, S, &dp, 2);
        }
        double *g2 = malloc(n * sizeof *g2);
        for (size_t i = 0; i < n; i++) g2[i] = gf[i];
        double eg = max_rel(g2, gd, n), el = fabs(lf - ld) / fmax(fabs(ld), 1e-30);
        free(g2);
        worst = fmax(worst, fmax(eg, el));
        CHECK(el < 1e-6);
        CHECK(eg < 1e-5);
    }
    printf("float vs double: worst rel err %.2e\n", worst);
    free(x); free(y); free(gd); free(xf); free(yf); free(gf); free(t); free(work);
}

/* Out-of-range targets: NAN from forward, an error from the check. */
static void test_targets(void) {
    float x[6] = {0};
    int32_t t[2] = {1, 3};
    CHECK(isnan(cross_entropy_forward(x, t, 1, 3, 2)));
    CHECK(loss_check_targets(t, 2, 3) == -1);
    t[1] = 2;
    CHECK(loss_check_targets(t, 2, 3) == 0);
    CHECK_NEAR(cross_entropy_forward(x, t, 1, 3, 2), log(3.0), 1e-7); /* uniform logits */
    dice_params dp = {.batch_dice = 1, .do_bg = 0};
    double work[16];
    CHECK(isnan(dice_loss_forward(work, x, t, 1, 1, 2, &dp))); /* no class left to average */
}

static const float *get(const fixture *fx, const char *name, size_t *n) {
    const float *p = fixture_get(fx, name, n);
    if (!p) fprintf(stderr, "fixture tensor %s missing\n", name);
    CHECK(p != NULL);
    return p;
}

/* max |got - want| over n, printed with the case name. */
static double cmp(const char *name, const float *got, const float *want, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)got[i] - want[i]));
    printf("torch %-12s max abs err %.2e\n", name, m);
    return m;
}

static void test_torch(void) {
    fixture fx;
    char path[PATH_MAX + 64];
    train_fixture(path, sizeof path, "loss.lsdm");
    if (fixture_load(&fx, path) < 0) {
        fprintf(stderr, "missing fixture %s (make it with tests/torch/make_train.py)\n", path);
        CHECK(0);
        return;
    }
    size_t n, nr, nf, nl;
    const char *pairs[2][2] = {{"l1", "l1"}, {"mse", "mse"}};
    for (int k = 0; k < 2; k++) {
        char a[64], b[64], l[64], g[64];
        snprintf(a, sizeof a, "%s.pred", pairs[k][0]);
        snprintf(b, sizeof b, "%s.target", pairs[k][0]);
        snprintf(l, sizeof l, "%s.loss", pairs[k][0]);
        snprintf(g, sizeof g, "%s.grad", pairs[k][0]);
        const float *p = get(&fx, a, &n), *t = get(&fx, b, NULL), *L = get(&fx, l, NULL), *G = get(&fx, g, NULL);
        if (!p || !t || !L || !G) continue;
        float *d = calloc(n, sizeof *d);
        double lv = k ? mse_loss_forward(p, t, n) : l1_loss_forward(p, t, n);
        if (k) mse_loss_backward(d, p, t, n, 1); else l1_loss_backward(d, p, t, n, 1);
        CHECK_NEAR(lv, L[0], 1e-6);
        CHECK(cmp(g, d, G, n) < 1e-7);
        free(d);
    }
    const float *real = get(&fx, "hd.real", &nr), *fake = get(&fx, "hd.fake", &nf);
    const float *hl = get(&fx, "hd.loss", NULL), *hdr = get(&fx, "hd.dreal", NULL), *hdf = get(&fx, "hd.dfake", NULL);
    const float *gl = get(&fx, "hg.loss", NULL), *gdf = get(&fx, "hg.dfake", NULL);
    if (real && fake && hl && hdr && hdf && gl && gdf) {
        float *dr = calloc(nr, sizeof *dr), *df = calloc(nf, sizeof *df), *dg = calloc(nf, sizeof *dg);
        CHECK_NEAR(hinge_d_loss_forward(real, nr, fake, nf), hl[0], 1e-6);
        hinge_d_loss_backward(dr, df, real, nr, fake, nf, 1);
        CHECK(cmp("hinge_d.real", dr, hdr, nr) < 1e-7);
        CHECK(cmp("hinge_d.fake", df, hdf, nf) < 1e-7);
        CHECK_NEAR(hinge_g_loss_forward(fake, nf), gl[0], 1e-6);
        hinge_g_loss_backward(dg, nf, 1);
        CHECK(cmp("hinge_g", dg, gdf, nf) < 1e-7);
        free(dr); free(df); free(dg);
    }
    const float *x = get(&fx, "ce.logits", &nl), *tf = get(&fx, "ce.target", &n);
    int N = 2, C = 4;
    long S = 30;
    if (x && tf && nl == (size_t)N * C * S && n == (size_t)N * S) {
        int32_t *t = malloc(n * sizeof *t);
        for (size_t i = 0; i < n; i++) t[i] = (int32_t)tf[i];
        float *d = malloc(nl * sizeof *d);
        double work[40];
        const char *names[3] = {"ce", "dice_ref", "dice_alt"};
        dice_params dps[3] = {{0}, dice_params_reference(), {.batch_dice = 0, .do_bg = 1, .smooth = 1, .smooth_nom = 1}};
        for (int k = 0; k < 3; k++) {
            char l[64], g[64];
            snprintf(l, sizeof l, "%s.loss", names[k]);
            snprintf(g, sizeof g, "%s.grad", names[k]);
            const float *L = get(&fx, l, NULL), *G = get(&fx, g, NULL);
            if (!L || !G) continue;
            memset(d, 0, nl * sizeof *d);
            double lv;
            if (k == 0) { lv = cross_entropy_forward(x, t, N, C, S); cross_entropy_backward(d, x, t, N, C, S, 1); }
            else { lv = dice_loss_forward(work, x, t, N, C, S, &dps[k]); dice_loss_backward(d, work, x, t, N, C, S, &dps[k], 1); }
            printf("torch %-12s loss %.9g want %.9g\n", l, lv, L[0]);
            CHECK_NEAR(lv, L[0], 1e-6);
            CHECK(cmp(g, d, G, nl) < 1e-7);
        }
        free(t);
        free(d);
    } else {
        CHECK(0);
    }
    fixture_free(&fx);
}

int main(void) {
    lsdm_rng_init(&rng, 42, 0);
    test_finite_differences();
    test_float_vs_double();
    test_targets();
    test_torch();
    return check_done("test_loss");
}
