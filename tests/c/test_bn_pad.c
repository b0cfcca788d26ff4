/* BatchNorm in training mode (kernels/batchnorm.h) and 3D padding
 * (kernels/pad3d.h): argument checks, central differences of the double
 * versions, float against double (including a channel mean far from 0),
 * the running-statistics update, accumulation (gradients start non-zero),
 * and PyTorch fixtures (F.batch_norm(training=True), F.pad constant and
 * replicate; tests/fixtures/bnpad, made by tests/torch/make_bnpad.py). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "opcheck.h"

#include "batchnorm.h"
#include "pad3d.h"

/* ---- BatchNorm, training mode ------------------------------------------ */

typedef struct {
    int N, C, S, affine;
    double eps, momentum;
    double *x, *w, *b, *g, *rm, *rv; // inputs; g = dL/dout; rm/rv running stats before
    double *tmp;                     // forward output for the loss
} bn_case;

typedef struct {
    double *out, *mean, *rstd, *rm, *rv, *dx, *dw, *db;
} bn_res;

static size_t bn_numel(const bn_case *k) { return (size_t)k->N * k->C * k->S; }

static void bn_res_free(bn_res *r) {
    free(r->out), free(r->mean), free(r->rstd), free(r->rm), free(r->rv);
    free(r->dx), free(r->dw), free(r->db);
}

/* Forward (updating copies of the running stats) and backward of
 * L = sum(out * g); gradients start at `init`, subtracted afterwards. */
static void bn_run(const bn_case *k, int f32, double init, bn_res *r) {
    size_t n = bn_numel(k), C = (size_t)k->C;
    r->out = op_zeros(n), r->mean = op_zeros(C), r->rstd = op_zeros(C);
    r->rm = op_zeros(C), r->rv = op_zeros(C);
    memcpy(r->rm, k->rm, C * sizeof *r->rm), memcpy(r->rv, k->rv, C * sizeof *r->rv);
    r->dx = op_fill(n, init), r->dw = op_fill(C, init), r->db = op_fill(C, init);
    if (!f32) {
        const double *w = k->affine ? k->w : NULL, *b = k->affine ? k->b : NULL;
        batchnorm_train_forward_f64(r->out, r->mean, r->rstd, r->rm, r->rv, k->x, w, b, k->N, k->C,
                                    k->S, k->eps, k->momentum);
        batchnorm_train_backward_f64(r->dx, k->affine ? r->dw : NULL, k->affine ? r->db : NULL, k->g,
                                     k->x, w, r->mean, r->rstd, k->N, k->C, k->S);
    } else {
        float *x = op_to_f32(k->x, n), *g = op_to_f32(k->g, n), *out = op_zerosf(n);
        float *w = k->affine ? op_to_f32(k->w, C) : NULL, *b = k->affine ? op_to_f32(k->b, C) : NULL;
        float *rm = op_to_f32(k->rm, C), *rv = op_to_f32(k->rv, C);
        float *mean = op_zerosf(C), *rstd = op_zerosf(C);
        float *dx = op_to_f32(r->dx, n), *dw = op_to_f32(r->dw, C), *db = op_to_f32(r->db, C);
        batchnorm_train_forward(out, mean, rstd, rm, rv, x, w, b, k->N, k->C, k->S, (float)k->eps,
                                (float)k->momentum);
        batchnorm_train_backward(dx, k->affine ? dw : NULL, k->affine ? db : NULL, g, x, w, mean,
                                 rstd, k->N, k->C, k->S);
        for (size_t i = 0; i < n; i++) r->out[i] = out[i], r->dx[i] = dx[i];
        for (size_t i = 0; i < C; i++) {
            r->mean[i] = mean[i], r->rstd[i] = rstd[i], r->rm[i] = rm[i], r->rv[i] = rv[i];
            r->dw[i] = dw[i], r->db[i] = db[i];
        }
        free(x), free(g), free(out), free(w), free(b), free(rm), free(rv);
        free(mean), free(rstd), free(dx), free(dw), free(db);
    }
    op_sub(r->dx, n, init), op_sub(r->dw, C, init), op_sub(r->db, C, init);
}

/* The loss leaves the running stats alone (NULL), as it runs many times. */
static double bn_loss(void *p) {
    bn_case *k = p;
    batchnorm_train_forward_f64(k->tmp, NULL, NULL, NULL, NULL, k->x, k->affine ? k->w : NULL,
                                k->affine ? k->b : NULL, k->N, k->C, k->S, k->eps, k->momentum);
    return op_dot(k->tmp, k->g, bn_numel(k));
}

static void bn_random(bn_case *k, int N, int C, int S, int affine, double eps, uint64_t seed,
                      double offset, double scale) {
    size_t n = (size_t)N * C * S;
    *k = (bn_case){N, C, S, affine, eps, 0.1, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    k->x = op_rand(n, seed, -1, 1);
    for (size_t i = 0; i < n; i++) k->x[i] = (float)(k->x[i] * scale + offset);
    k->w = op_rand(C, seed + 1, 0.5, 1.5), k->b = op_rand(C, seed + 2, -1, 1);
    k->g = op_rand(n, seed + 3, -1, 1);
    k->rm = op_rand(C, seed + 4, -0.5, 0.5), k->rv = op_rand(C, seed + 5, 0.2, 2);
    k->tmp = op_zeros(n);
}

static void bn_free(bn_case *k) {
    free(k->x), free(k->w), free(k->b), free(k->g), free(k->rm), free(k->rv), free(k->tmp);
}

static void test_bn_fd(int N, int C, int S, int affine, double eps, uint64_t seed) {
    bn_case k;
    bn_random(&k, N, C, S, affine, eps, seed, 0.3, 1);
    bn_res r;
    bn_run(&k, 0, 0.25, &r);
    char what[128];
    snprintf(what, sizeof what, "fd bn-train %d,%d,%d%s dx", N, C, S, affine ? " affine" : "");
    OP_CHECK_ERR(what, op_gradcheck1(bn_loss, &k, k.x, r.dx, bn_numel(&k)), 1e-6);
    if (affine) {
        snprintf(what, sizeof what, "fd bn-train %d,%d,%d affine dw", N, C, S);
        OP_CHECK_ERR(what, op_gradcheck1(bn_loss, &k, k.w, r.dw, (size_t)C), 1e-6);
        snprintf(what, sizeof what, "fd bn-train %d,%d,%d affine db", N, C, S);
        OP_CHECK_ERR(what, op_gradcheck1(bn_loss, &k, k.b, r.db, (size_t)C), 1e-6);
    }
    bn_res_free(&r);
    bn_free(&k);
}

/* The float path against the double one on the same float inputs; with a
 * mean far from 0 (offset) a sum of squares in float would lose the
 * variance, the shifted sums keep it. */
static void test_bn_f32(int N, int C, int S, int affine, double offset, double scale, double tol,
                        uint64_t seed) {
    bn_case k;
    bn_random(&k, N, C, S, affine, 1e-5, seed, offset, scale);
    bn_res a, b;
    bn_run(&k, 0, 0.25, &a);
    bn_run(&k, 1, 0.25, &b);
    size_t n = bn_numel(&k), C_ = (size_t)C;
    double e = op_err(b.out, a.out, n, NULL);
    e = fmax(e, fmax(op_err(b.mean, a.mean, C_, NULL), op_err(b.rstd, a.rstd, C_, NULL)));
    e = fmax(e, fmax(op_err(b.rm, a.rm, C_, NULL), op_err(b.rv, a.rv, C_, NULL)));
    e = fmax(e, op_err(b.dx, a.dx, n, NULL));
    if (affine) e = fmax(e, fmax(op_err(b.dw, a.dw, C_, NULL), op_err(b.db, a.db, C_, NULL)));
    char what[128];
    snprintf(what, sizeof what, "f32 bn-train %d,%d,%d +%g x%g", N, C, S, offset, scale);
    OP_CHECK_ERR(what, e, tol);
    bn_res_free(&a), bn_res_free(&b);
    bn_free(&k);
}

/* The running update by hand (from the saved mean and the variance that
 * rstd implies), and NULL running stats: the same output, nothing written. */
static void test_bn_running(void) {
    bn_case k;
    int N = 3, C = 4, S = 10;
    bn_random(&k, N, C, S, 1, 1e-5, 41, 1.0, 2.0);
    k.momentum = 0.3;
    bn_res r;
    bn_run(&k, 0, 0, &r);
    double M = (double)N * S, e = 0;
    for (int c = 0; c < C; c++) {
        double var = 1.0 / (r.rstd[c] * r.rstd[c]) - k.eps;
        e = fmax(e, fabs(r.rm[c] - (0.7 * k.rm[c] + 0.3 * r.mean[c])));
        e = fmax(e, fabs(r.rv[c] - (0.7 * k.rv[c] + 0.3 * var * M / (M - 1))));
    }
    OP_CHECK_ERR("bn-train running stats by hand", e, 1e-12);
    float *x = op_to_f32(k.x, bn_numel(&k)), *out = op_zerosf(bn_numel(&k));
    float *w = op_to_f32(k.w, C), *b = op_to_f32(k.b, C);
    batchnorm_train_forward(out, NULL, NULL, NULL, NULL, x, w, b, N, C, S, 1e-5f, 0.3f);
    double *o64 = op_to_f64(out, bn_numel(&k));
    OP_CHECK_ERR("bn-train without running stats", op_err(o64, r.out, bn_numel(&k), NULL), 1e-6);
    free(x), free(out), free(w), free(b), free(o64);
    bn_res_free(&r);
    bn_free(&k);
}

static void test_bn_fixture(const char *name) {
    fixture fx;
    if (op_fixture_load(&fx, "bnpad", name) != 0) return;
    bn_case k = {0};
    k.N = (int)op_cfg(&fx, 0), k.C = (int)op_cfg(&fx, 1), k.S = (int)op_cfg(&fx, 2);
    k.eps = op_cfg(&fx, 3), k.affine = (int)op_cfg(&fx, 4), k.momentum = op_cfg(&fx, 5);
    size_t n = bn_numel(&k), C = (size_t)k.C;
    k.x = op_fx64(&fx, "x", n), k.g = op_fx64(&fx, "g", n);
    k.rm = op_fx64(&fx, "rm", C), k.rv = op_fx64(&fx, "rv", C);
    if (k.affine) k.w = op_fx64(&fx, "w", C), k.b = op_fx64(&fx, "b", C);
    int ok = k.x && k.g && k.rm && k.rv && (!k.affine || (k.w && k.b));
    for (int f32 = 0; ok && f32 <= 1; f32++) {
        bn_res r;
        bn_run(&k, f32, 0.25, &r);
        /* the fixture is rounded to float; with a mean of 5 and a std of
         * 0.14 (bn_offset) float's x - mean alone is off by ~2e-6 */
        double tol = !f32 ? 1e-6 : strstr(name, "offset") ? 1e-5 : 2e-6;
        const char *tag = f32 ? "f32" : "f64";
        OP_CHECK_FX(&fx, name, tag, "out", r.out, n, tol);
        OP_CHECK_FX(&fx, name, tag, "mean", r.mean, C, tol);
        OP_CHECK_FX(&fx, name, tag, "rstd", r.rstd, C, tol);
        OP_CHECK_FX(&fx, name, tag, "rm_out", r.rm, C, tol);
        OP_CHECK_FX(&fx, name, tag, "rv_out", r.rv, C, tol);
        OP_CHECK_FX(&fx, name, tag, "dx", r.dx, n, tol);
        if (k.affine) {
            OP_CHECK_FX(&fx, name, tag, "dw", r.dw, C, tol);
            OP_CHECK_FX(&fx, name, tag, "db", r.db, C, tol);
        }
        bn_res_free(&r);
    }
    bn_free(&k);
    fixture_free(&fx);
}

/* ---- pad3d ------------------------------------------------------------- */

typedef struct {
    pad3d_dims p;
    double *x, *g, *tmp;
} pad_case;

static size_t pad_nin(const pad3d_dims *p) { return (size_t)p->NC * p->in[0] * p->in[1] * p->in[2]; }
static size_t pad_nout(const pad3d_dims *p) { return (size_t)p->NC * p->out[0] * p->out[1] * p->out[2]; }

static double pad_loss(void *ctx) {
    pad_case *k = ctx;
    pad3d_forward_f64(k->tmp, k->x, &k->p);
    return op_dot(k->tmp, k->g, pad_nout(&k->p));
}

/* out and dx (from 0.25, subtracted) in double or float. */
static void pad_run(const pad_case *k, int f32, double *out, double *dx) {
    size_t ni = pad_nin(&k->p), no = pad_nout(&k->p);
    for (size_t i = 0; i < ni; i++) dx[i] = 0.25;
    if (!f32) {
        pad3d_forward_f64(out, k->x, &k->p);
        pad3d_backward_f64(dx, k->g, &k->p);
    } else {
        float *x = op_to_f32(k->x, ni), *g = op_to_f32(k->g, no), *o = op_zerosf(no);
        float *d = op_to_f32(dx, ni);
        pad3d_forward(o, x, &k->p);
        pad3d_backward(d, g, &k->p);
        for (size_t i = 0; i < no; i++) out[i] = o[i];
        for (size_t i = 0; i < ni; i++) dx[i] = d[i];
        free(x), free(g), free(o), free(d);
    }
    op_sub(dx, ni, 0.25);
}

static int pad_init(pad_case *k, int NC, int D, int H, int W, const int pad[6], int mode,
                    uint64_t seed) {
    int in[3] = {D, H, W};
    memset(k, 0, sizeof *k);
    if (pad3d_dims_init(&k->p, NC, in, pad, mode) != 0) return -1;
    k->x = op_rand(pad_nin(&k->p), seed, -1, 1);
    k->g = op_rand(pad_nout(&k->p), seed + 1, -1, 1);
    k->tmp = op_zeros(pad_nout(&k->p));
    return 0;
}

static void pad_free(pad_case *k) { free(k->x), free(k->g), free(k->tmp); }

/* Central differences of the double version, then float against double
 * (the forward is a copy: exact). */
static void test_pad_random(int NC, int D, int H, int W, const int pad[6], int mode, uint64_t seed) {
    pad_case k;
    CHECK(pad_init(&k, NC, D, H, W, pad, mode, seed) == 0);
    size_t ni = pad_nin(&k.p), no = pad_nout(&k.p);
    double *o64 = op_zeros(no), *d64 = op_zeros(ni), *o32 = op_zeros(no), *d32 = op_zeros(ni);
    pad_run(&k, 0, o64, d64);
    pad_run(&k, 1, o32, d32);
    char what[128];
    snprintf(what, sizeof what, "fd pad3d %s %d,%d,%d,%d [%d %d %d %d %d %d]",
             mode ? "replicate" : "zero", NC, D, H, W, pad[0], pad[1], pad[2], pad[3], pad[4], pad[5]);
    OP_CHECK_ERR(what, op_gradcheck1(pad_loss, &k, k.x, d64, ni), 1e-6);
    snprintf(what, sizeof what, "f32 pad3d %s %d,%d,%d,%d out", mode ? "replicate" : "zero", NC, D, H, W);
    OP_CHECK_ERR(what, op_err(o32, o64, no, NULL), 0);
    snprintf(what, sizeof what, "f32 pad3d %s %d,%d,%d,%d dx", mode ? "replicate" : "zero", NC, D, H, W);
    OP_CHECK_ERR(what, op_err(d32, d64, ni, NULL), 1e-6);
    free(o64), free(d64), free(o32), free(d32);
    pad_free(&k);
}

/* Exact values at a few places, independent of the implementation's loops. */
static void test_pad_values(void) {
    int pad[6] = {1, 0, 2, 1, 0, 3}, in[3] = {2, 3, 4};
    pad_case k;
    CHECK(pad_init(&k, 2, in[0], in[1], in[2], pad, PAD3D_REPLICATE, 5) == 0);
    CHECK(k.p.out[0] == 3 && k.p.out[1] == 6 && k.p.out[2] == 7);
    double *out = op_zeros(pad_nout(&k.p)), *dx = op_zeros(pad_nin(&k.p));
    pad3d_forward_f64(out, k.x, &k.p);
    const int OD = 3, OH = 6, OW = 7;
#define O(nc, d, h, w) out[(((size_t)(nc) * OD + (d)) * OH + (h)) * OW + (w)]
#define X(nc, d, h, w) k.x[(((size_t)(nc) * 2 + (d)) * 3 + (h)) * 4 + (w)]
    CHECK(O(1, 0, 0, 0) == X(1, 0, 0, 0));   // corner of the pad: first voxel
    CHECK(O(1, 2, 5, 6) == X(1, 1, 2, 3));   // far corner: last voxel
    CHECK(O(0, 1, 2, 1) == X(0, 0, 0, 1));   // inside
    CHECK(O(0, 2, 4, 5) == X(0, 1, 2, 3));   // right pad of the last row
    /* all-ones gradient: each voxel gets the number of places it is read from */
    for (size_t i = 0; i < pad_nout(&k.p); i++) k.g[i] = 1;
    pad3d_backward_f64(dx, k.g, &k.p);
    // (d=0: 2 planes) * (h=0: 3 rows) * (w=0: 1) ; (d=1: 1) * (h=2: 2) * (w=3: 4)
    CHECK(dx[0] == 6 && dx[(size_t)1 * 12 + 2 * 4 + 3] == 8 && dx[(size_t)1 * 12 + 1 * 4 + 1] == 1);
    double tot = 0;
    for (size_t i = 0; i < pad_nin(&k.p); i++) tot += dx[i];
    CHECK(tot == (double)pad_nout(&k.p)); // every output voxel's gradient lands once
#undef O
#undef X
    free(out), free(dx);
    pad_free(&k);
    /* zero padding: the pad is 0, no pad is the identity */
    int nopad[6] = {0}, zp[6] = {1, 1, 1, 1, 1, 1};
    CHECK(pad_init(&k, 1, 2, 2, 2, zp, PAD3D_ZERO, 6) == 0);
    out = op_fill(pad_nout(&k.p), 9);
    pad3d_forward_f64(out, k.x, &k.p);
    CHECK(out[0] == 0 && out[pad_nout(&k.p) - 1] == 0 && out[(1 * 4 + 1) * 4 + 1] == k.x[0]);
    free(out);
    pad_free(&k);
    CHECK(pad_init(&k, 3, 2, 3, 5, nopad, PAD3D_ZERO, 7) == 0);
    out = op_zeros(pad_nout(&k.p));
    pad3d_forward_f64(out, k.x, &k.p);
    CHECK(memcmp(out, k.x, pad_nin(&k.p) * sizeof *out) == 0);
    free(out);
    pad_free(&k);
}

static void test_pad_fixture(const char *name) {
    fixture fx;
    if (op_fixture_load(&fx, "bnpad", name) != 0) return;
    int in[3] = {(int)op_cfg(&fx, 1), (int)op_cfg(&fx, 2), (int)op_cfg(&fx, 3)}, pad[6];
    for (int i = 0; i < 6; i++) pad[i] = (int)op_cfg(&fx, 4 + i);
    pad_case k = {0};
    int ok = pad3d_dims_init(&k.p, (int)op_cfg(&fx, 0), in, pad, (int)op_cfg(&fx, 10)) == 0;
    CHECK(ok);
    size_t ni = ok ? pad_nin(&k.p) : 0, no = ok ? pad_nout(&k.p) : 0;
    if (ok) k.x = op_fx64(&fx, "x", ni), k.g = op_fx64(&fx, "g", no);
    for (int f32 = 0; ok && k.x && k.g && f32 <= 1; f32++) {
        double *out = op_zeros(no), *dx = op_zeros(ni);
        pad_run(&k, f32, out, dx);
        const char *tag = f32 ? "f32" : "f64";
        OP_CHECK_FX(&fx, name, tag, "out", out, no, 0);
        OP_CHECK_FX(&fx, name, tag, "dx", dx, ni, 1e-6);
        free(out), free(dx);
    }
    pad_free(&k);
    fixture_free(&fx);
}

static void test_checks(void) {
    pad3d_dims p;
    int in[3] = {2, 3, 4}, ok[6] = {1, 2, 0, 0, 3, 1}, neg[6] = {0, 0, -1, 0, 0, 0};
    int zero_in[3] = {2, 0, 4};
    CHECK(pad3d_dims_init(&p, 2, in, ok, PAD3D_ZERO) == 0);
    CHECK(p.out[0] == 5 && p.out[1] == 3 && p.out[2] == 8);
    CHECK(pad3d_dims_init(&p, 2, in, neg, PAD3D_ZERO) == -1);
    CHECK(pad3d_dims_init(&p, 2, in, ok, 2) == -1);
    CHECK(pad3d_dims_init(&p, 0, in, ok, PAD3D_REPLICATE) == -1);
    CHECK(pad3d_dims_init(&p, 1, zero_in, ok, PAD3D_REPLICATE) == -1);
    CHECK(batchnorm_check(2, 3, 4, 1) == 0);
    CHECK(batchnorm_check(1, 3, 1, 1) == -1); // one value per channel: no training
    CHECK(batchnorm_check(1, 3, 1, 0) == 0);
    CHECK(batchnorm_check(0, 3, 4, 0) == -1);
}

int main(void) {
    test_checks();

    test_bn_fd(2, 3, 5, 1, 1e-5, 11);
    test_bn_fd(1, 2, 6, 0, 1e-3, 12);
    test_bn_fd(3, 2, 1, 1, 1e-5, 13); // S = 1: statistics over the batch only
    test_bn_f32(2, 8, 1000, 1, 0, 1, 1e-5, 21);
    test_bn_f32(3, 5, 333, 0, 2, 1, 1e-5, 22);
    test_bn_f32(2, 4, 4096, 1, 100, 1, 1e-4, 23); // |mean| >> std
    test_bn_running();
    const char *bn_cases[] = {"bn_affine_2d", "bn_affine_3d", "bn_plain", "bn_offset", "bn_batch1"};
    for (size_t i = 0; i < sizeof bn_cases / sizeof *bn_cases; i++) test_bn_fixture(bn_cases[i]);

    int p1[6] = {1, 2, 0, 1, 2, 0}, p2[6] = {2, 1, 3, 0, 1, 4}, p3[6] = {1, 1, 1, 1, 1, 1};
    test_pad_random(2, 3, 4, 5, p1, PAD3D_ZERO, 31);
    test_pad_random(2, 3, 4, 5, p1, PAD3D_REPLICATE, 32);
    test_pad_random(1, 1, 2, 1, p2, PAD3D_REPLICATE, 33); // pads wider than the volume
    test_pad_random(3, 2, 3, 2, p3, PAD3D_REPLICATE, 34);
    test_pad_values();
    const char *pad_cases[] = {"pad_zero", "pad_replicate", "pad_replicate_wide", "pad_zero_sym"};
    for (size_t i = 0; i < sizeof pad_cases / sizeof *pad_cases; i++) test_pad_fixture(pad_cases[i]);
    return check_done("test_bn_pad");
}
