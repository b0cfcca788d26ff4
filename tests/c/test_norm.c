/* GroupNorm, InstanceNorm and BatchNorm (inference): gradients of the
 * double versions against central differences, the float versions against
 * the double ones, and both against PyTorch (tests/fixtures/norm, made by
 * tests/torch/make_norm.py). Gradient buffers start non-zero to check that
 * the backward passes accumulate. */
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "opcheck.h"

#include "activation.h"
#include "batchnorm.h"
#include "groupnorm.h"
#include "instancenorm.h"

enum { GN, IN, BN };

/* One case in double; the float runs convert on the way in and out. */
typedef struct {
    int kind, N, C, S, G, affine;
    double eps;
    double *x, *w, *b, *g, *rm, *rv; // inputs; g = dL/dout
    double *tmp;                     // forward output for the loss
} norm_case;

typedef struct {
    double *out, *mean, *rstd, *dx, *dw, *db;
} norm_res;

static size_t nc_numel(const norm_case *k) { return (size_t)k->N * k->C * k->S; }
static size_t nc_nstat(const norm_case *k) { return k->kind == BN ? 0 : (size_t)k->N * (k->kind == IN ? k->C : k->G); }

static void norm_res_free(norm_res *r) {
    free(r->out), free(r->mean), free(r->rstd), free(r->dx), free(r->dw), free(r->db);
}

static void f64_forward(const norm_case *k, double *out, double *mean, double *rstd) {
    const double *w = k->affine ? k->w : NULL, *b = k->affine ? k->b : NULL;
    if (k->kind == GN) groupnorm_forward_f64(out, mean, rstd, k->x, w, b, k->N, k->C, k->S, k->G, k->eps);
    if (k->kind == IN) instancenorm_forward_f64(out, mean, rstd, k->x, w, b, k->N, k->C, k->S, k->eps);
    if (k->kind == BN) batchnorm_forward_f64(out, k->x, w, b, k->rm, k->rv, k->N, k->C, k->S, k->eps);
}

/* Forward and backward (of L = sum(out * g)); gradients start at `init`
 * and have it subtracted afterwards. */
static void norm_run(const norm_case *k, int f32, double init, norm_res *r) {
    size_t n = nc_numel(k), ns = nc_nstat(k), C = (size_t)k->C;
    r->out = op_zeros(n), r->mean = op_zeros(ns), r->rstd = op_zeros(ns);
    r->dx = op_fill(n, init), r->dw = op_fill(C, init), r->db = op_fill(C, init);
    double *dw = k->affine ? r->dw : NULL, *db = k->affine ? r->db : NULL;
    if (!f32) {
        f64_forward(k, r->out, r->mean, r->rstd);
        const double *w = k->affine ? k->w : NULL;
        if (k->kind == GN)
            groupnorm_backward_f64(r->dx, dw, db, k->g, k->x, w, r->mean, r->rstd, k->N, k->C, k->S, k->G);
        if (k->kind == IN)
            instancenorm_backward_f64(r->dx, dw, db, k->g, k->x, w, r->mean, r->rstd, k->N, k->C, k->S);
        if (k->kind == BN)
            batchnorm_backward_f64(r->dx, dw, db, k->g, k->x, w, k->rm, k->rv, k->N, k->C, k->S, k->eps);
    } else {
        float *x = op_to_f32(k->x, n), *g = op_to_f32(k->g, n), *out = op_zerosf(n);
        float *w = k->affine ? op_to_f32(k->w, C) : NULL, *b = k->affine ? op_to_f32(k->b, C) : NULL;
        float *rm = k->rm ? op_to_f32(k->rm, C) : NULL, *rv = k->rv ? op_to_f32(k->rv, C) : NULL;
        float *mean = op_zerosf(ns), *rstd = op_zerosf(ns);
        float *dx = op_to_f32(r->dx, n), *fdw = op_to_f32(r->dw, C), *fdb = op_to_f32(r->db, C);
        float *dwp = k->affine ? fdw : NULL, *dbp = k->affine ? fdb : NULL;
        float eps = (float)k->eps;
        if (k->kind == GN) {
            groupnorm_forward(out, mean, rstd, x, w, b, k->N, k->C, k->S, k->G, eps);
            groupnorm_backward(dx, dwp, dbp, g, x, w, mean, rstd, k->N, k->C, k->S, k->G);
        }
        if (k->kind == IN) {
            instancenorm_forward(out, mean, rstd, x, w, b, k->N, k->C, k->S, eps);
            instancenorm_backward(dx, dwp, dbp, g, x, w, mean, rstd, k->N, k->C, k->S);
        }
        if (k->kind == BN) {
            batchnorm_forward(out, x, w, b, rm, rv, k->N, k->C, k->S, eps);
            batchnorm_backward(dx, dwp, dbp, g, x, w, rm, rv, k->N, k->C, k->S, eps);
        }
        for (size_t i = 0; i < n; i++) r->out[i] = out[i], r->dx[i] = dx[i];
        for (size_t i = 0; i < ns; i++) r->mean[i] = mean[i], r->rstd[i] = rstd[i];
        for (size_t i = 0; i < C; i++) r->dw[i] = fdw[i], r->db[i] = fdb[i];
        free(x), free(g), free(out), free(w), free(b), free(rm), free(rv);
        free(mean), free(rstd), free(dx), free(fdw), free(fdb);
    }
    op_sub(r->dx, n, init), op_sub(r->dw, C, init), op_sub(r->db, C, init);
}

static double norm_loss(void *p) {
    norm_case *k = p;
    f64_forward(k, k->tmp, NULL, NULL);
    return op_dot(k->tmp, k->g, nc_numel(k));
}

static void case_random(norm_case *k, int kind, int N, int C, int S, int G, int affine,
                        double eps, uint64_t seed, double offset) {
    size_t n = (size_t)N * C * S;
    *k = (norm_case){kind, N, C, S, G, affine, eps, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    k->x = op_rand(n, seed, offset - 1, offset + 1);
    k->w = op_rand(C, seed + 1, 0.5, 1.5);
    k->b = op_rand(C, seed + 2, -1, 1);
    k->g = op_rand(n, seed + 3, -1, 1);
    if (kind == BN) k->rm = op_rand(C, seed + 4, -0.5, 0.5), k->rv = op_rand(C, seed + 5, 0.2, 2);
    k->tmp = op_zeros(n);
}

static void case_free(norm_case *k) {
    free(k->x), free(k->w), free(k->b), free(k->g), free(k->rm), free(k->rv), free(k->tmp);
}

static const char *kind_name[] = {"groupnorm", "instancenorm", "batchnorm"};

static void test_fd(int kind, int N, int C, int S, int G, int affine, double eps, uint64_t seed) {
    norm_case k;
    case_random(&k, kind, N, C, S, G, affine, eps, seed, 0.3);
    norm_res r;
    norm_run(&k, 0, 0.25, &r);
    char what[128];
    snprintf(what, sizeof what, "fd %s %d,%d,%d G%d%s dx", kind_name[kind], N, C, S, G, affine ? " affine" : "");
    OP_CHECK_ERR(what, op_gradcheck(norm_loss, &k, k.x, r.dx, nc_numel(&k)), 1e-6);
    if (affine) {
        what[strlen(what) - 2] = 0;
        char w2[140];
        snprintf(w2, sizeof w2, "%sdw", what);
        OP_CHECK_ERR(w2, op_gradcheck(norm_loss, &k, k.w, r.dw, (size_t)C), 1e-6);
        snprintf(w2, sizeof w2, "%sdb", what);
        OP_CHECK_ERR(w2, op_gradcheck(norm_loss, &k, k.b, r.db, (size_t)C), 1e-6);
    }
    norm_res_free(&r);
    case_free(&k);
}

/* The float path against the double one on the same float inputs. */
static void test_f32(int kind, int N, int C, int S, int G, int affine, double offset, uint64_t seed) {
    norm_case k;
    case_random(&k, kind, N, C, S, G, affine, 1e-5, seed, offset);
    norm_res r64, r32;
    norm_run(&k, 0, 0.25, &r64);
    norm_run(&k, 1, 0.25, &r32);
    size_t n = nc_numel(&k), ns = nc_nstat(&k);
    char what[128];
    snprintf(what, sizeof what, "f32 %s %d,%d,%d G%d +%g", kind_name[kind], N, C, S, G, offset);
    double e = op_err(r32.out, r64.out, n, NULL);
    if (ns) {
        double em = op_err(r32.mean, r64.mean, ns, NULL), er = op_err(r32.rstd, r64.rstd, ns, NULL);
        e = fmax(e, fmax(em, er));
    }
    e = fmax(e, op_err(r32.dx, r64.dx, n, NULL));
    if (affine) e = fmax(e, fmax(op_err(r32.dw, r64.dw, C, NULL), op_err(r32.db, r64.db, C, NULL)));
    OP_CHECK_ERR(what, e, 1e-5);
    norm_res_free(&r64), norm_res_free(&r32);
    case_free(&k);
}

/* A PyTorch case: cfg = N, C, S, G, eps, affine (gn/in) or N, C, S, eps,
 * affine (bn); tensors x, w, b, g, rm, rv, out, mean, rstd, dx, dw, db. */
static void test_fixture(const char *name) {
    fixture fx;
    if (op_fixture_load(&fx, "norm", name) != 0) return;
    int kind = name[0] == 'g' ? GN : name[0] == 'i' ? IN : BN;
    norm_case k = {0};
    k.kind = kind;
    k.N = (int)op_cfg(&fx, 0), k.C = (int)op_cfg(&fx, 1), k.S = (int)op_cfg(&fx, 2);
    if (kind == BN) k.G = 1, k.eps = op_cfg(&fx, 3), k.affine = (int)op_cfg(&fx, 4);
    else k.G = (int)op_cfg(&fx, 3), k.eps = op_cfg(&fx, 4), k.affine = (int)op_cfg(&fx, 5);
    size_t n = nc_numel(&k), ns = nc_nstat(&k), C = (size_t)k.C;
    k.x = op_fx64(&fx, "x", n), k.g = op_fx64(&fx, "g", n);
    if (k.affine) k.w = op_fx64(&fx, "w", C), k.b = op_fx64(&fx, "b", C);
    if (kind == BN) k.rm = op_fx64(&fx, "rm", C), k.rv = op_fx64(&fx, "rv", C);
    int ok = k.x && k.g && (!k.affine || (k.w && k.b)) && (kind != BN || (k.rm && k.rv));
    for (int f32 = 0; ok && f32 <= 1; f32++) {
        norm_res r;
        norm_run(&k, f32, 0.25, &r);
        double tol = f32 ? 2e-6 : 1e-6; // the fixture is rounded to float
        const char *tag = f32 ? "f32" : "f64";
        OP_CHECK_FX(&fx, name, tag, "out", r.out, n, tol);
        OP_CHECK_FX(&fx, name, tag, "dx", r.dx, n, tol);
        if (kind == GN) {
            OP_CHECK_FX(&fx, name, tag, "mean", r.mean, ns, tol);
            OP_CHECK_FX(&fx, name, tag, "rstd", r.rstd, ns, tol);
        }
        if (k.affine) {
            OP_CHECK_FX(&fx, name, tag, "dw", r.dw, C, tol);
            OP_CHECK_FX(&fx, name, tag, "db", r.db, C, tol);
        }
        norm_res_free(&r);
    }
    case_free(&k);
    fixture_free(&fx);
}

/* The fused GroupNorm + SiLU of inference: the same values as
 * groupnorm_forward then silu_forward (float and double), over sizes that
 * are not multiples of its 4096-value SiLU blocks, with the statistics. */
static void test_gn_silu(int N, int C, int S, int G, uint64_t seed) {
    size_t n = (size_t)N * C * S;
    float *x = malloc(n * sizeof *x), *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    float *w = malloc((size_t)C * sizeof *w), *bi = malloc((size_t)C * sizeof *bi);
    double *xd = malloc(n * sizeof *xd), *ad = malloc(n * sizeof *ad), *bd = malloc(n * sizeof *bd);
    double *wd = malloc((size_t)C * sizeof *wd), *bid = malloc((size_t)C * sizeof *bid);
    float m1[64], r1[64], m2[64], r2[64];
    for (size_t i = 0; i < n; i++) xd[i] = x[i] = (float)(3 * sin(0.37 * (double)i + (double)seed) + 0.5);
    for (int c = 0; c < C; c++) wd[c] = w[c] = 0.5f + 0.1f * c, bid[c] = bi[c] = 0.2f - 0.05f * c;
    groupnorm_forward(a, m1, r1, x, w, bi, N, C, S, G, 1e-6f);
    silu_forward(a, a, n);
    groupnorm_silu_forward(b, m2, r2, x, w, bi, N, C, S, G, 1e-6f);
    groupnorm_forward_f64(ad, NULL, NULL, xd, wd, bid, N, C, S, G, 1e-6);
    silu_forward_f64(ad, ad, n);
    groupnorm_silu_forward_f64(bd, NULL, NULL, xd, wd, bid, N, C, S, G, 1e-6);
    double e = 0, ed = 0, e64 = 0;
    for (size_t i = 0; i < n; i++) {
        e = fmax(e, fabs((double)a[i] - b[i]));
        ed = fmax(ed, fabs(ad[i] - bd[i]));
        e64 = fmax(e64, fabs((double)b[i] - bd[i]));
    }
    int same_stats = 1;
    for (int i = 0; i < N * G; i++) same_stats &= m1[i] == m2[i] && r1[i] == r2[i];
    CHECK(e <= 1e-6 && ed <= 1e-12 && e64 <= 1e-5 && same_stats);
    printf("groupnorm_silu N%d C%d S%d G%d: vs unfused %.1e (f64 %.1e), float vs double %.1e\n", N, C,
           S, G, e, ed, e64);
    free(x), free(a), free(b), free(w), free(bi), free(xd), free(ad), free(bd), free(wd), free(bid);
}

int main(void) {
    test_fd(GN, 2, 4, 5, 2, 1, 1e-5, 11);
    test_fd(GN, 1, 6, 7, 3, 0, 1e-6, 12);
    test_fd(GN, 2, 3, 4, 1, 1, 1e-5, 13);
    test_fd(IN, 2, 3, 6, 3, 1, 1e-5, 14);
    test_fd(IN, 1, 2, 9, 2, 0, 1e-5, 15);
    test_fd(BN, 2, 3, 5, 1, 1, 1e-5, 16);
    test_fd(BN, 1, 2, 4, 1, 0, 1e-3, 17);

    test_f32(GN, 2, 8, 1000, 4, 1, 0, 21);
    test_f32(GN, 1, 16, 4096, 8, 0, 2, 22);  // offset mean: the shifted sums
    test_f32(GN, 3, 6, 333, 6, 1, 0, 23);
    test_f32(IN, 2, 5, 777, 5, 1, 0, 24);
    test_f32(BN, 2, 8, 1000, 1, 1, 0, 25);

    const char *cases[] = {"gn_affine", "gn_plain_eps6", "gn_offset", "gn_one_group",
                           "in_affine", "in_plain", "bn_affine", "bn_plain"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) test_fixture(cases[i]);

    test_gn_silu(2, 8, 5000, 4, 31);
    test_gn_silu(1, 6, 333, 3, 32);

    CHECK(groupnorm_check(1, 6, 4, 4) == -1);
    CHECK(groupnorm_check(1, 6, 4, 3) == 0);
    CHECK(groupnorm_check(0, 6, 4, 3) == -1);
    return check_done("test_norm");
}
