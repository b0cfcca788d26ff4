/* Tests of 3D interpolation and pooling (kernels/interpolate.h, pool.h):
 * argument checks, central differences of the double versions, float
 * against double, accumulation, and PyTorch fixtures (F.interpolate,
 * F.max_pool3d with its indices, F.avg_pool3d; tests/fixtures/attn, made
 * by tests/torch/make_attn.py). */
#include <omp.h>
#include <stdio.h>

#include "check.h"
#include "opcheck.h"
#include "err.h"
#include "interpolate.h"
#include "pool.h"

static size_t vol(int nc, const int s[3]) { return (size_t)nc * s[0] * s[1] * s[2]; }

/* One op under test: interpolation or pooling, forward and backward in
 * double or float, so the checks below are written once. */
typedef struct {
    int is_pool, pool_max, incl;
    interp3d_dims id;
    pool3d_dims pd;
    double *x, *g, *out;
    int *idx;
} op3d;

static size_t op_nin(const op3d *o) { return o->is_pool ? vol(o->pd.NC, o->pd.in) : vol(o->id.NC, o->id.in); }
static size_t op_nout(const op3d *o) { return o->is_pool ? vol(o->pd.NC, o->pd.out) : vol(o->id.NC, o->id.out); }

static void op_fwd64(op3d *o, double *out, const double *x) {
    if (!o->is_pool) interp3d_forward_f64(out, x, &o->id);
    else if (o->pool_max) maxpool3d_forward_f64(out, o->idx, x, &o->pd);
    else avgpool3d_forward_f64(out, x, &o->pd, o->incl);
}

static void op_bwd64(op3d *o, double *dx, const double *g) {
    if (!o->is_pool) interp3d_backward_f64(dx, g, &o->id);
    else if (o->pool_max) maxpool3d_backward_f64(dx, g, o->idx, &o->pd);
    else avgpool3d_backward_f64(dx, g, &o->pd, o->incl);
}

static void op_run32(op3d *o, float *out, float *dx, const float *x, const float *g) {
    if (!o->is_pool) {
        interp3d_forward(out, x, &o->id);
        interp3d_backward(dx, g, &o->id);
    } else if (o->pool_max) {
        int *idx = calloc(op_nout(o), sizeof *idx);
        maxpool3d_forward(out, idx, x, &o->pd);
        maxpool3d_backward(dx, g, idx, &o->pd);
        free(idx);
    } else {
        avgpool3d_forward(out, x, &o->pd, o->incl);
        avgpool3d_backward(dx, g, &o->pd, o->incl);
    }
}

static double op_loss(void *ctx) {
    op3d *o = ctx;
    op_fwd64(o, o->out, o->x);
    return op_dot(o->out, o->g, op_nout(o));
}

/* Central differences, accumulation and float vs double on random data. */
static void check_random(op3d *o, const char *label) {
    size_t ni = op_nin(o), no = op_nout(o);
    o->x = op_rand(ni, 7, -1, 1), o->g = op_rand(no, 8, -1, 1), o->out = op_zeros(no);
    o->idx = calloc(no, sizeof *o->idx);
    double *dx = op_fill(ni, 0.5);
    op_loss(o);
    op_bwd64(o, dx, o->g);
    op_sub(dx, ni, 0.5);
    char what[96];
    snprintf(what, sizeof what, "fd %s", label);
    OP_CHECK_ERR(what, op_gradcheck1(op_loss, o, o->x, dx, ni), 1e-6);
    float *x32 = op_to_f32(o->x, ni), *g32 = op_to_f32(o->g, no), *o32 = op_zerosf(no), *d32 = op_zerosf(ni);
    op_run32(o, o32, d32, x32, g32);
    op_loss(o);
    double *o64 = op_to_f64(o32, no), *d64 = op_to_f64(d32, ni);
    snprintf(what, sizeof what, "f32 %s out", label);
    OP_CHECK_ERR(what, op_err(o64, o->out, no, NULL), 1e-6);
    snprintf(what, sizeof what, "f32 %s dx", label);
    OP_CHECK_ERR(what, op_err(d64, dx, ni, NULL), 1e-6);
    free(o->x), free(o->g), free(o->out), free(o->idx), free(dx);
    free(x32), free(g32), free(o32), free(d32), free(o64), free(d64);
}

/* The PyTorch values of one case, in double and in float. */
static void check_fixture(op3d *o, const char *name) {
    fixture fx;
    if (op_fixture_load(&fx, "attn", name) != 0) return;
    size_t ni = op_nin(o), no = op_nout(o);
    double *x = op_fx64(&fx, "x", ni), *g = op_fx64(&fx, "g", no);
    if (!x || !g) { free(x), free(g), fixture_free(&fx); return; }
    double *out = op_zeros(no), *dx = op_zeros(ni);
    o->idx = calloc(no, sizeof *o->idx);
    op_fwd64(o, out, x);
    op_bwd64(o, dx, g);
    OP_CHECK_FX(&fx, name, "f64", "out", out, no, 1e-6);
    OP_CHECK_FX(&fx, name, "f64", "dx", dx, ni, 1e-6);
    if (o->is_pool && o->pool_max) {
        size_t n = 0;
        const float *idx = fixture_get(&fx, "idx", &n);
        int bad = idx && n == no ? 0 : 1;
        for (size_t i = 0; !bad && i < no; i++) bad += o->idx[i] != (int)idx[i];
        CHECK(bad == 0);
    }
    float *x32 = op_to_f32(x, ni), *g32 = op_to_f32(g, no), *o32 = op_zerosf(no), *d32 = op_zerosf(ni);
    op_run32(o, o32, d32, x32, g32);
    double *o64 = op_to_f64(o32, no), *d64 = op_to_f64(d32, ni);
    OP_CHECK_FX(&fx, name, "f32", "out", o64, no, 1e-6);
    OP_CHECK_FX(&fx, name, "f32", "dx", d64, ni, 1e-6);
    free(x), free(g), free(out), free(dx), free(o->idx);
    free(x32), free(g32), free(o32), free(d32), free(o64), free(d64);
    fixture_free(&fx);
}

/* The cases of tests/torch/make_attn.py (INTERP, POOL), in its order. */
static const struct {
    const char *name;
    interp_mode mode;
    int align_corners, small, out[3];
    double scale[3];
} icases[] = {
    {"interp_nearest_x2", INTERP_NEAREST, 0, 1, {0, 0, 0}, {2, 2, 2}},
    {"interp_nearest_size", INTERP_NEAREST, 0, 0, {4, 3, 9}, {0, 0, 0}},
    {"interp_nearest_frac", INTERP_NEAREST, 0, 0, {0, 0, 0}, {1.5, 0.5, 2.5}},
    {"interp_nexact_size", INTERP_NEAREST_EXACT, 0, 0, {5, 3, 7}, {0, 0, 0}},
    {"interp_tri_x2", INTERP_TRILINEAR, 0, 1, {0, 0, 0}, {2, 2, 2}},
    {"interp_tri_ac_size", INTERP_TRILINEAR, 1, 0, {5, 7, 3}, {0, 0, 0}},
    {"interp_tri_down", INTERP_TRILINEAR, 0, 0, {2, 3, 2}, {0, 0, 0}},
    {"interp_tri_frac", INTERP_TRILINEAR, 0, 0, {0, 0, 0}, {1.7, 0.6, 1.25}},
};

static const struct {
    const char *name;
    int max, nc, in[3], k[3], s[3], p[3], incl;
} pcases[] = {
    {"maxpool_k2", 1, 2, {4, 6, 6}, {2, 2, 2}, {2, 2, 2}, {0, 0, 0}, 0},
    {"maxpool_k3s2p1", 1, 2, {5, 6, 7}, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}, 0},
    {"maxpool_k122", 1, 2, {3, 4, 6}, {1, 2, 2}, {1, 2, 2}, {0, 0, 0}, 0},
    {"avgpool_k2", 0, 2, {4, 6, 6}, {2, 2, 2}, {2, 2, 2}, {0, 0, 0}, 1},
    {"avgpool_k3s2p1_incl", 0, 2, {5, 6, 7}, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}, 1},
    {"avgpool_k3s2p1_excl", 0, 2, {5, 6, 7}, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}, 0},
};

static void test_cases(void) {
    for (size_t c = 0; c < sizeof icases / sizeof *icases; c++) {
        op3d o = {0};
        int in_small[3] = {3, 4, 5}, in[3] = {3, 5, 6};
        int rc = interp3d_dims_init(&o.id, icases[c].small ? 1 : 2, icases[c].small ? in_small : in,
                                    icases[c].scale[0] > 0 ? NULL : icases[c].out,
                                    icases[c].scale[0] > 0 ? icases[c].scale : NULL,
                                    icases[c].mode, icases[c].align_corners);
        CHECK(rc == 0);
        if (rc) continue;
        check_random(&o, icases[c].name);
        check_fixture(&o, icases[c].name);
    }
    for (size_t c = 0; c < sizeof pcases / sizeof *pcases; c++) {
        op3d o = {.is_pool = 1, .pool_max = pcases[c].max, .incl = pcases[c].incl};
        int rc = pool3d_dims_init(&o.pd, pcases[c].nc, pcases[c].in, pcases[c].k, pcases[c].s, pcases[c].p);
        CHECK(rc == 0);
        if (rc) continue;
        check_random(&o, pcases[c].name);
        check_fixture(&o, pcases[c].name);
    }
}

/* Sizes and index rules that are easy to get wrong. */
static void test_dims(void) {
    interp3d_dims d;
    int in[3] = {3, 5, 6}, out[3] = {4, 4, 4}, zero[3] = {0, 5, 6};
    double sc[3] = {1.7, 0.6, 1.25}, bad[3] = {1, 0, 1};
    CHECK(interp3d_dims_init(&d, 2, in, NULL, sc, INTERP_TRILINEAR, 0) == 0);
    CHECK(d.out[0] == 5 && d.out[1] == 3 && d.out[2] == 7); // floor(in * scale)
    CHECK(interp3d_dims_init(&d, 2, in, out, sc, INTERP_TRILINEAR, 0) == -1);
    CHECK(interp3d_dims_init(&d, 2, in, NULL, NULL, INTERP_TRILINEAR, 0) == -1);
    CHECK(interp3d_dims_init(&d, 2, in, NULL, bad, INTERP_NEAREST, 0) == -1);
    CHECK(interp3d_dims_init(&d, 2, zero, out, NULL, INTERP_NEAREST, 0) == -1);
    CHECK(interp3d_dims_init(&d, 2, in, out, NULL, INTERP_NEAREST, 1) == -1);
    CHECK(strstr(lsdm_err_msg(), "align_corners") != NULL);

    pool3d_dims p;
    int pin[3] = {32, 256, 256}, k2[3] = {2, 2, 2}, k3[3] = {3, 3, 3}, p2[3] = {2, 2, 2};
    CHECK(pool3d_dims_init(&p, 64, pin, k2, NULL, NULL) == 0); // the mask encoder's MaxPool3d(2)
    CHECK(p.out[0] == 16 && p.out[1] == 128 && p.out[2] == 128 && p.s[0] == 2 && p.p[2] == 0);
    CHECK(pool3d_dims_init(&p, 1, pin, k3, NULL, p2) == -1); // pad > kernel/2
    CHECK(strstr(lsdm_err_msg(), "half the kernel") != NULL);
    int tiny[3] = {1, 1, 1};
    CHECK(pool3d_dims_init(&p, 1, tiny, k3, NULL, NULL) == -1);

    // max pooling: ties keep the first, a NaN wins
    int i2[3] = {1, 1, 4}, kk[3] = {1, 1, 4};
    CHECK(pool3d_dims_init(&p, 2, i2, kk, NULL, NULL) == 0);
    float x[8] = {1, 3, 3, 2, 1, NAN, 5, 2}, o[2];
    int idx[2];
    maxpool3d_forward(o, idx, x, &p);
    CHECK(o[0] == 3 && idx[0] == 1);
    CHECK(isnan(o[1]) && idx[1] == 1);
}

int main(void) {
    test_dims();
    test_cases();
    return check_done("test_interp_pool");
}
