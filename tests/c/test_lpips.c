/* LPIPS (libshared/lpips.h) and its ops (libshared/nn_extra.h):
 * (1) finite differences of the new kernels in double, (2) float against
 * double, (3) the whole perceptual loss against PyTorch: a reduced-width
 * LPIPS with random weights (tests/torch/make_lpips.py, converted by
 * tools/contrib/convert_lpips.py) must give PyTorch's value per sample
 * and its gradients with respect to both images. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "opcheck.h"
#include "lpips.h"
#include "nn_extra.h"

/* ---- (1), (2): the kernels ---- */

typedef struct {
    int N, Cin, C, S;
    double *x, *shift, *scale, *g, *out;
} affine_case;

static double affine_loss(void *p) {
    affine_case *a = p;
    chan_affine_forward_f64(a->out, a->x, a->shift, a->scale, a->N, a->Cin, a->C, a->S);
    return op_dot(a->out, a->g, (size_t)a->N * a->C * a->S);
}

static void test_chan_affine(int Cin) {
    affine_case a = {2, Cin, 3, 5, 0, 0, 0, 0, 0};
    size_t nx = (size_t)a.N * Cin * a.S, no = (size_t)a.N * a.C * a.S;
    a.x = op_rand(nx, 1, -1, 1), a.shift = op_rand(3, 2, -0.2, 0.2);
    a.scale = op_rand(3, 3, 0.4, 0.5), a.g = op_rand(no, 4, -1, 1), a.out = op_zeros(no);
    double *dx = op_fill(nx, 0.5);
    chan_affine_backward_f64(dx, a.g, a.scale, a.N, Cin, a.C, a.S);
    op_sub(dx, nx, 0.5);
    char what[64];
    snprintf(what, sizeof what, "chan_affine %d->3 fd dx", Cin);
    OP_CHECK_ERR(what, op_gradcheck(affine_loss, &a, a.x, dx, nx), 1e-6);
    /* float against double */
    float *xf = op_to_f32(a.x, nx), *sf = op_to_f32(a.shift, 3), *cf = op_to_f32(a.scale, 3);
    float *gf = op_to_f32(a.g, no), *of = op_zerosf(no), *dxf = op_zerosf(nx);
    affine_loss(&a);
    chan_affine_forward(of, xf, sf, cf, a.N, Cin, a.C, a.S);
    chan_affine_backward(dxf, gf, cf, a.N, Cin, a.C, a.S);
    double *o64 = op_to_f64(of, no), *d64 = op_to_f64(dxf, nx);
    snprintf(what, sizeof what, "chan_affine %d->3 f32 out, dx", Cin);
    double e1 = op_err(o64, a.out, no, NULL), e2 = op_err(d64, dx, nx, NULL);
    OP_CHECK_ERR(what, e1 > e2 ? e1 : e2, 1e-6);
    free(a.x), free(a.shift), free(a.scale), free(a.g), free(a.out), free(dx);
    free(xf), free(sf), free(cf), free(gf), free(of), free(dxf), free(o64), free(d64);
}

typedef struct {
    int N, C, S;
    double *x, *y, *w, *g, *out;
} dist_case;

static double dist_loss(void *p) {
    dist_case *a = p;
    memset(a->out, 0, (size_t)a->N * sizeof *a->out);
    unit_sqdist_forward_f64(a->out, a->x, a->y, a->w, a->N, a->C, a->S, 1e-10);
    return op_dot(a->out, a->g, (size_t)a->N);
}

static void test_unit_sqdist(void) {
    dist_case a = {2, 5, 7, 0, 0, 0, 0, 0};
    size_t n = (size_t)a.N * a.C * a.S;
    a.x = op_rand(n, 11, -1, 1), a.y = op_rand(n, 12, -1, 1), a.w = op_rand(a.C, 13, 0, 1);
    a.g = op_rand(a.N, 14, -1, 1), a.out = op_zeros(a.N);
    double *dx = op_fill(n, 0.25), *dy = op_fill(n, -0.5);
    unit_sqdist_backward_f64(dx, dy, a.g, a.x, a.y, a.w, a.N, a.C, a.S, 1e-10);
    op_sub(dx, n, 0.25), op_sub(dy, n, -0.5);
    OP_CHECK_ERR("unit_sqdist fd dx", op_gradcheck(dist_loss, &a, a.x, dx, n), 1e-6);
    OP_CHECK_ERR("unit_sqdist fd dy", op_gradcheck(dist_loss, &a, a.y, dy, n), 1e-6);
    /* accumulates into out */
    double base = dist_loss(&a), acc[2] = {1, 2};
    unit_sqdist_forward_f64(acc, a.x, a.y, a.w, a.N, a.C, a.S, 1e-10);
    CHECK_NEAR(acc[0] * a.g[0] + acc[1] * a.g[1], base + a.g[0] + 2 * a.g[1], 1e-12);
    /* float against double */
    float *xf = op_to_f32(a.x, n), *yf = op_to_f32(a.y, n), *wf = op_to_f32(a.w, a.C);
    float *gf = op_to_f32(a.g, a.N), of[2] = {0, 0}, *dxf = op_zerosf(n), *dyf = op_zerosf(n);
    unit_sqdist_forward(of, xf, yf, wf, a.N, a.C, a.S, 1e-10);
    unit_sqdist_backward(dxf, dyf, gf, xf, yf, wf, a.N, a.C, a.S, 1e-10);
    double o64[2] = {of[0], of[1]}, *dx64 = op_to_f64(dxf, n), *dy64 = op_to_f64(dyf, n);
    double e = op_err(o64, a.out, 2, NULL), ex = op_err(dx64, dx, n, NULL),
           ey = op_err(dy64, dy, n, NULL);
    OP_CHECK_ERR("unit_sqdist f32 out", e, 1e-6);
    OP_CHECK_ERR("unit_sqdist f32 dx, dy", ex > ey ? ex : ey, 1e-5);
    /* a position where every channel is 0 (after a ReLU): finite values,
     * and a finite gradient there (PyTorch's 0/0 is masked by the ReLU) */
    for (int c = 0; c < a.C; c++) xf[(size_t)c * a.S + 3] = 0;
    memset(dxf, 0, n * sizeof *dxf);
    of[0] = of[1] = 0;
    unit_sqdist_forward(of, xf, yf, wf, a.N, a.C, a.S, 1e-10);
    unit_sqdist_backward(dxf, NULL, gf, xf, yf, wf, a.N, a.C, a.S, 1e-10);
    int finite = isfinite(of[0]) && isfinite(of[1]);
    for (size_t i = 0; i < n; i++) finite &= isfinite(dxf[i]) != 0;
    CHECK(finite);
    free(a.x), free(a.y), free(a.w), free(a.g), free(a.out), free(dx), free(dy);
    free(xf), free(yf), free(wf), free(gf), free(dxf), free(dyf), free(dx64), free(dy64);
}

/* ---- (3): against PyTorch ---- */

static double max_abs(const float *a, const float *b, size_t n, double *ref_max) {
    double m = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d;
        if (fabs(b[i]) > r) r = fabs(b[i]);
    }
    if (ref_max) *ref_max = r;
    return m;
}

/* |got - ref| <= tol * max |ref|, printing both. */
static void check_close(const char *what, const float *got, const float *ref, size_t n,
                        double tol) {
    double r, e = max_abs(got, ref, n, &r);
    printf("  %-14s max abs %.3g (max |ref| %.3g)\n", what, e, r);
    CHECK(e <= tol * r);
}

static void test_parity(void) {
    char wpath[4096], cpath[4096];
    fixture_path(wpath, sizeof wpath, "lpips", "weights.safetensors");
    fixture_path(cpath, sizeof cpath, "lpips", "cases.lsdm");
    lpips m;
    int rc = lpips_load(&m, wpath);
    if (rc < 0) printf("  load: %s\n", lsdm_err_msg());
    CHECK(rc == 0);
    fixture fx;
    int fl = fixture_load(&fx, cpath);
    CHECK(fl == 0);
    if (rc < 0 || fl < 0) return;
    /* the widths come from the weights' shapes */
    CHECK(m.chns[0] == 4 && m.chns[1] == 8 && m.chns[2] == 16 && m.chns[3] == 32 &&
          m.chns[4] == 32);
    CHECK(nn_params_count(&m.ps, 1) == nn_params_count(&m.ps, 0) + 6);

    size_t nx, nv, ndx, ndy;
    float *x = (float *)fixture_get(&fx, "x", &nx), *y = (float *)fixture_get(&fx, "y", NULL);
    const float *val = fixture_get(&fx, "value", &nv);
    const float *dx = fixture_get(&fx, "dx", &ndx), *dy = fixture_get(&fx, "dy", &ndy);
    CHECK(x && y && val && dx && dy && nx == 2 * 32 * 32 && nv == 2 && ndx == nx && ndy == nx);
    if (x && y && val && dx && dy && nx == 2 * 32 * 32 && nv == 2 && ndx == nx && ndy == nx) {
        /* training: per-sample values, gradient of their mean */
        nn_ctx c;
        nn_ctx_init(&c, 1);
        nn_tensor *xt = nn_tensor_wrap(&c, x, 2, 1, 1, 32, 32);
        nn_tensor *yt = nn_tensor_wrap(&c, y, 2, 1, 1, 32, 32);
        xt->needs_grad = yt->needs_grad = 1;
        nn_tensor *v = lpips_forward(&c, &m, xt, yt);
        CHECK(v != NULL && v->n == 2);
        if (v) {
            check_close("value", v->data, val, 2, 1e-5);
            float *g = nn_grad(&c, v);
            g[0] = g[1] = 0.5f;
            nn_backward(&c);
            CHECK(nn_ctx_status(&c) == 0);
            check_close("d mean/dx", xt->grad, dx, nx, 1e-4);
            check_close("d mean/dy", yt->grad, dy, nx, 1e-4);
        }
        /* inference (tensors freed as it goes): the same values */
        nn_ctx_free(&c);
        nn_ctx_init(&c, 0);
        xt = nn_tensor_wrap(&c, x, 2, 1, 1, 32, 32);
        yt = nn_tensor_wrap(&c, y, 2, 1, 1, 32, 32);
        v = lpips_forward(&c, &m, xt, yt);
        CHECK(v != NULL);
        if (v) check_close("value (eval)", v->data, val, 2, 1e-5);
        printf("  eval peak %zu KiB, ", c.bytes_peak >> 10);
        nn_ctx_free(&c);
        nn_ctx_init(&c, 1);
        xt = nn_tensor_wrap(&c, x, 2, 1, 1, 32, 32);
        yt = nn_tensor_wrap(&c, y, 2, 1, 1, 32, 32);
        xt->needs_grad = yt->needs_grad = 1;
        lpips_forward(&c, &m, xt, yt);
        printf("training peak %zu KiB\n", c.bytes_peak >> 10);
        nn_ctx_free(&c);
    }

    /* 3 channels, odd sizes (floor pooling), lpips_loss with a weight, only
     * x taking a gradient (y is the detached target) */
    float *x3 = (float *)fixture_get(&fx, "x3", &nx), *y3 = (float *)fixture_get(&fx, "y3", NULL);
    const float *val3 = fixture_get(&fx, "value3", &nv), *dx3 = fixture_get(&fx, "dx3", &ndx);
    CHECK(x3 && y3 && val3 && dx3 && nx == 3 * 20 * 28 && nv == 1 && ndx == nx);
    if (x3 && y3 && val3 && dx3 && nx == 3 * 20 * 28 && nv == 1 && ndx == nx) {
        nn_ctx c;
        nn_ctx_init(&c, 1);
        nn_tensor *xt = nn_tensor_wrap(&c, x3, 1, 3, 1, 20, 28);
        nn_tensor *yt = nn_tensor_wrap(&c, y3, 1, 3, 1, 20, 28);
        xt->needs_grad = 1;
        double loss = lpips_loss(&c, &m, xt, yt, 2.5f);
        printf("  3ch value %.9g, want %.9g\n", loss, val3[0]);
        CHECK_NEAR(loss, val3[0], 1e-5 * val3[0]);
        nn_backward(&c);
        CHECK(xt->grad != NULL && yt->grad == NULL);
        if (xt->grad) {
            float *want = malloc(nx * sizeof *want);
            for (size_t i = 0; i < nx; i++) want[i] = 2.5f * dx3[i];
            check_close("2.5 d/dx (3ch)", xt->grad, want, nx, 1e-4);
            free(want);
        }
        nn_ctx_free(&c);
    }

    /* errors: a volume that is not a 2D image */
    nn_ctx c;
    nn_ctx_init(&c, 1);
    nn_tensor *a = nn_tensor_wrap(&c, x, 1, 1, 2, 32, 16), *b = nn_tensor_wrap(&c, y, 1, 1, 2, 32, 16);
    CHECK(lpips_forward(&c, &m, a, b) == NULL && nn_ctx_status(&c) < 0);
    printf("  error: %s\n", lsdm_err_msg());
    nn_ctx_free(&c);
    fixture_free(&fx);
    lpips_free(&m);

    /* a safetensors file without LPIPS tensors */
    char other[4096];
    fixture_path(other, sizeof other, "vqgan", "plain.safetensors");
    CHECK(lpips_load(&m, other) < 0 && strstr(lsdm_err_msg(), "net.slice1.0.weight"));
    printf("  error: %s\n", lsdm_err_msg());
}

int main(void) {
    test_chan_affine(1);
    test_chan_affine(3);
    test_unit_sqdist();
    test_parity();
    return check_done("test_lpips");
}
