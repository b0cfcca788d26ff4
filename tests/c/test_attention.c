/* Tests of the attention family (kernels/attention.h, linear_attention.h,
 * timestep_embedding.h): central differences of the double versions,
 * float against double, accumulation into the gradients, and PyTorch
 * fixtures (tests/fixtures/attn, made by tests/torch/make_attn.py) for the
 * reference UNet's temporal attention (rotary + relative position bias),
 * a long plain attention (the BLAS path), the bucket table, linear
 * attention and the timestep embedding. */
#include <omp.h>
#include <stdio.h>

#include "check.h"
#include "opcheck.h"
#include "attention.h"
#include "linear_attention.h"
#include "timestep_embedding.h"

/* Every buffer of a test, freed together at its end. */
static void *bufs[256];
static int nbufs;
static double *t64(size_t n) { return bufs[nbufs++] = op_zeros(n); }
static float *t32(size_t n) { return bufs[nbufs++] = op_zerosf(n); }
static double *trand(size_t n, uint64_t seed) { return bufs[nbufs++] = op_rand(n, seed, -1, 1); }
static float *tf32(const double *x, size_t n) { return bufs[nbufs++] = op_to_f32(x, n); }
static double *tf64(const float *x, size_t n) { return bufs[nbufs++] = op_to_f64(x, n); }
static void tfree(void) { while (nbufs) free(bufs[--nbufs]); }

/* A fixture input as doubles (kept in bufs). */
static double *fx_in(const fixture *fx, const char *name, size_t n) {
    double *x = op_fx64(fx, name, n);
    if (x) bufs[nbufs++] = x;
    return x ? x : t64(n);
}

/* ---- the reference temporal attention: rotary(q), rotary(k), relative
 * position bias (32 buckets, max distance 32), softmax attention ---- */
typedef struct {
    int B, H, L, dh, rot;
    double scale;
    double *q, *k, *v, *table, *g;             /* inputs */
    double *cs, *qr, *kr, *bias, *out, *att;   /* forward state */
} temporal64;

static void temporal64_init(temporal64 *t, int B, int H, int L, int dh, int rot) {
    size_t n = (size_t)B * H * L * dh;
    *t = (temporal64){B, H, L, dh, rot, 1 / sqrt(dh), NULL, NULL, NULL, NULL, NULL,
                      t64((size_t)L * rot / 2 * 2), t64(n), t64(n), t64((size_t)H * L * L),
                      t64(n), t64((size_t)B * H * L * L)};
    rotary_cos_sin_f64(t->cs, L, rot);
}

static void temporal64_forward(temporal64 *t) {
    rotary_forward_f64(t->qr, t->q, t->cs, t->B * t->H, t->L, t->dh, t->rot);
    rotary_forward_f64(t->kr, t->k, t->cs, t->B * t->H, t->L, t->dh, t->rot);
    relpos_bias_forward_f64(t->bias, t->table, t->H, t->L, 32, 32);
    attention_forward_f64(t->out, t->att, t->qr, t->kr, t->v, t->bias, t->B, t->H, t->L, t->dh, t->scale);
}

static void temporal64_backward(temporal64 *t, double *dq, double *dk, double *dv, double *dtable) {
    size_t n = (size_t)t->B * t->H * t->L * t->dh;
    double *dqr = op_zeros(n), *dkr = op_zeros(n), *dbias = op_zeros((size_t)t->H * t->L * t->L);
    double *work = op_zeros(attention_workspace_size(t->B, t->H, t->L));
    attention_backward_f64(dqr, dkr, dv, dbias, work, t->g, t->qr, t->kr, t->v, t->att,
                           t->B, t->H, t->L, t->dh, t->scale);
    rotary_backward_f64(dq, dqr, t->cs, t->B * t->H, t->L, t->dh, t->rot);
    rotary_backward_f64(dk, dkr, t->cs, t->B * t->H, t->L, t->dh, t->rot);
    relpos_bias_backward_f64(dtable, dbias, t->H, t->L, 32, 32);
    free(dqr), free(dkr), free(dbias), free(work);
}

static double temporal64_loss(void *ctx) {
    temporal64 *t = ctx;
    temporal64_forward(t);
    return op_dot(t->out, t->g, (size_t)t->B * t->H * t->L * t->dh);
}

/* The same chain in float. */
static void temporal32_run(const temporal64 *t, float *out, float *dq, float *dk, float *dv, float *dtable) {
    int B = t->B, H = t->H, L = t->L, dh = t->dh, BH = B * H;
    size_t n = (size_t)BH * L * dh, LL = (size_t)L * L;
    float *q = tf32(t->q, n), *k = tf32(t->k, n), *v = tf32(t->v, n), *g = tf32(t->g, n);
    float *table = tf32(t->table, 32 * (size_t)H), *cs = t32((size_t)L * t->rot);
    float *qr = t32(n), *kr = t32(n), *bias = t32(H * LL), *att = t32(BH * LL);
    float *dqr = t32(n), *dkr = t32(n), *dbias = t32(H * LL), *work = t32(attention_workspace_size(B, H, L));
    rotary_cos_sin(cs, L, t->rot);
    rotary_forward(qr, q, cs, BH, L, dh, t->rot);
    rotary_forward(kr, k, cs, BH, L, dh, t->rot);
    relpos_bias_forward(bias, table, H, L, 32, 32);
    attention_forward(out, att, qr, kr, v, bias, B, H, L, dh, (float)t->scale);
    attention_backward(dqr, dkr, dv, dbias, work, g, qr, kr, v, att, B, H, L, dh, (float)t->scale);
    rotary_backward(dq, dqr, cs, BH, L, dh, t->rot);
    rotary_backward(dk, dkr, cs, BH, L, dh, t->rot);
    relpos_bias_backward(dtable, dbias, H, L, 32, 32);
}

/* Central differences through the whole chain (all four backwards), the
 * gradients starting at 0.5 to see that they accumulate. */
static void test_temporal_fd(int B, int H, int L, int dh, int rot) {
    temporal64 t;
    temporal64_init(&t, B, H, L, dh, rot);
    size_t n = (size_t)B * H * L * dh;
    t.q = trand(n, 1), t.k = trand(n, 2), t.v = trand(n, 3), t.g = trand(n, 4);
    t.table = trand(32 * (size_t)H, 5);
    double *dq = op_fill(n, 0.5), *dk = op_fill(n, 0.5), *dv = op_fill(n, 0.5), *dt = op_fill(32 * (size_t)H, 0.5);
    bufs[nbufs++] = dq, bufs[nbufs++] = dk, bufs[nbufs++] = dv, bufs[nbufs++] = dt;
    temporal64_forward(&t);
    temporal64_backward(&t, dq, dk, dv, dt);
    op_sub(dq, n, 0.5), op_sub(dk, n, 0.5), op_sub(dv, n, 0.5), op_sub(dt, 32 * (size_t)H, 0.5);
    char what[96];
    const char *names[] = {"dq", "dk", "dv", "dtable"};
    double *p[] = {t.q, t.k, t.v, t.table}, *d[] = {dq, dk, dv, dt};
    size_t sz[] = {n, n, n, 32 * (size_t)H};
    for (int i = 0; i < 4; i++) {
        snprintf(what, sizeof what, "fd temporal L=%d rot=%d/%d %s", L, rot, dh, names[i]);
        OP_CHECK_ERR(what, op_gradcheck1(temporal64_loss, &t, p[i], d[i], sz[i]), 1e-6);
    }

    // float against double, same chain
    float *out = t32(n), *fq = t32(n), *fk = t32(n), *fv = t32(n), *ft = t32(32 * (size_t)H);
    temporal64_forward(&t);
    temporal32_run(&t, out, fq, fk, fv, ft);
    snprintf(what, sizeof what, "f32 temporal L=%d out", L);
    OP_CHECK_ERR(what, op_err(tf64(out, n), t.out, n, NULL), 1e-5);
    const float *f[] = {fq, fk, fv, ft};
    for (int i = 0; i < 4; i++) {
        snprintf(what, sizeof what, "f32 temporal L=%d %s", L, names[i]);
        OP_CHECK_ERR(what, op_err(tf64(f[i], sz[i]), d[i], sz[i], NULL), 1e-5);
    }
    tfree();
}

/* ---- plain attention (no bias), both code paths ---- */
typedef struct { int B, H, L, dh; double scale, *q, *k, *v, *bias, *g, *out, *att; } plain64;

static double plain64_loss(void *ctx) {
    plain64 *a = ctx;
    attention_forward_f64(a->out, a->att, a->q, a->k, a->v, a->bias, a->B, a->H, a->L, a->dh, a->scale);
    return op_dot(a->out, a->g, (size_t)a->B * a->H * a->L * a->dh);
}

static void test_plain_fd(int B, int H, int L, int dh) {
    size_t n = (size_t)B * H * L * dh, LL = (size_t)L * L;
    plain64 a = {B, H, L, dh, 0.7, trand(n, 11), trand(n, 12), trand(n, 13), trand(H * LL, 14),
                 trand(n, 15), t64(n), t64((size_t)B * H * LL)};
    double *dq = t64(n), *dk = t64(n), *dv = t64(n), *db = t64(H * LL), *work = t64(attention_workspace_size(B, H, L));
    double *grads[4] = {dq, dk, dv, db};
    size_t sz[] = {n, n, n, H * LL};
    for (int i = 0; i < 4; i++) op_sub(grads[i], sz[i], -0.5); // start at 0.5: backward accumulates
    plain64_loss(&a);
    attention_backward_f64(dq, dk, dv, db, work, a.g, a.q, a.k, a.v, a.att, B, H, L, dh, a.scale);
    for (int i = 0; i < 4; i++) op_sub(grads[i], sz[i], 0.5);
    char what[96];
    const char *names[] = {"dq", "dk", "dv", "dbias"};
    double *p[] = {a.q, a.k, a.v, a.bias}, *d[] = {dq, dk, dv, db};
    for (int i = 0; i < 4; i++) {
        // central differences on at most 300 entries (the bias has L*L per head)
        snprintf(what, sizeof what, "fd attention L=%d %s", L, names[i]);
        OP_CHECK_ERR(what, op_gradcheck1(plain64_loss, &a, p[i], d[i], sz[i] < 300 ? sz[i] : 300), 1e-6);
    }
    // float: forward and backward against double
    float *out = t32(n), *att = t32((size_t)B * H * LL), *fq = t32(n), *fk = t32(n), *fv = t32(n);
    float *fb = t32(H * LL), *fw = t32(attention_workspace_size(B, H, L));
    float *q = tf32(a.q, n), *k = tf32(a.k, n), *v = tf32(a.v, n), *bias = tf32(a.bias, H * LL), *g = tf32(a.g, n);
    attention_forward(out, att, q, k, v, bias, B, H, L, dh, (float)a.scale);
    attention_backward(fq, fk, fv, fb, fw, g, q, k, v, att, B, H, L, dh, (float)a.scale);
    plain64_loss(&a);
    snprintf(what, sizeof what, "f32 attention L=%d out", L);
    OP_CHECK_ERR(what, op_err(tf64(out, n), a.out, n, NULL), 1e-5);
    const float *f[] = {fq, fk, fv, fb};
    for (int i = 0; i < 4; i++) {
        snprintf(what, sizeof what, "f32 attention L=%d %s", L, names[i]);
        OP_CHECK_ERR(what, op_err(tf64(f[i], sz[i]), d[i], sz[i], NULL), 1e-5);
    }
    tfree();
}

/* ---- permutation: known indices, adjoint, accumulation ---- */
static void test_permute(void) {
    int shape[4] = {2, 3, 4, 5}, perm[4] = {3, 0, 2, 1}; // out (5,2,4,3)
    size_t n = 120;
    double *x = trand(n, 21), *y = t64(n), *g = trand(n, 22), *dx = op_fill(n, 1);
    bufs[nbufs++] = dx;
    permute_forward_f64(y, x, 4, shape, perm);
    int bad = 0;
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 3; b++)
            for (int c = 0; c < 4; c++)
                for (int d = 0; d < 5; d++)
                    bad += y[((d * 2 + a) * 4 + c) * 3 + b] != x[((a * 3 + b) * 4 + c) * 5 + d];
    CHECK(bad == 0);
    permute_backward_f64(dx, g, 4, shape, perm);
    op_sub(dx, n, 1);
    // <P x, g> = <x, P^T g>
    CHECK_NEAR(op_dot(y, g, n), op_dot(x, dx, n), 1e-12);
    float *xf = tf32(x, n), *yf = t32(n);
    permute_forward(yf, xf, 4, shape, perm);
    CHECK(op_err(tf64(yf, n), y, n, NULL) == 0);
    tfree();
}

/* ---- linear attention ---- */
typedef struct { int B, H, dh, F, N; double scale, *qkv, *g, *out, *qs, *ks, *ctx; } lin64;

static double lin64_loss(void *c) {
    lin64 *a = c;
    linear_attention_forward_f64(a->out, a->qs, a->ks, a->ctx, a->qkv, a->B, a->H, a->dh, a->F, a->N, a->scale);
    return op_dot(a->out, a->g, (size_t)a->B * a->H * a->dh * a->F * a->N);
}

static void lin64_init(lin64 *a, int B, int H, int dh, int F, int N) {
    size_t n = (size_t)B * H * dh * F * N;
    *a = (lin64){B, H, dh, F, N, 1 / sqrt(dh), NULL, NULL, t64(n), t64(n), t64(n), t64((size_t)B * F * H * dh * dh)};
}

static void test_linear_attention_shape(int B, int H, int dh, int F, int N) {
    lin64 a;
    lin64_init(&a, B, H, dh, F, N);
    size_t n = (size_t)B * H * dh * F * N, ws = linear_attention_workspace_size(B, H, dh, F, N);
    a.qkv = trand(3 * n, 31), a.g = trand(n, 32);
    double *d = op_fill(3 * n, 0.5), *work = t64(ws);
    bufs[nbufs++] = d;
    lin64_loss(&a);
    linear_attention_backward_f64(d, work, a.g, a.qkv, a.qs, a.ks, a.ctx, B, H, dh, F, N, a.scale);
    op_sub(d, 3 * n, 0.5);
    char what[96];
    snprintf(what, sizeof what, "fd linear attention dh=%d F=%d N=%d dqkv", dh, F, N);
    OP_CHECK_ERR(what, op_gradcheck1(lin64_loss, &a, a.qkv, d, 3 * n), 1e-6);
    float *qkv = tf32(a.qkv, 3 * n), *g = tf32(a.g, n), *out = t32(n), *qs = t32(n), *ks = t32(n);
    float *ctx = t32((size_t)B * F * H * dh * dh), *fd = t32(3 * n), *fw = t32(ws);
    linear_attention_forward(out, qs, ks, ctx, qkv, B, H, dh, F, N, (float)a.scale);
    linear_attention_backward(fd, fw, g, qkv, qs, ks, ctx, B, H, dh, F, N, (float)a.scale);
    lin64_loss(&a);
    snprintf(what, sizeof what, "f32 linear attention N=%d out", N);
    OP_CHECK_ERR(what, op_err(tf64(out, n), a.out, n, NULL), 1e-5);
    snprintf(what, sizeof what, "f32 linear attention N=%d dqkv", N);
    OP_CHECK_ERR(what, op_err(tf64(fd, 3 * n), d, 3 * n, NULL), 1e-5);
    tfree();
}

static void test_linear_attention(void) {
    test_linear_attention_shape(2, 2, 3, 2, 4);
    // F*N = 140: the softmax over d runs in column chunks of 64, 64 and 12
    test_linear_attention_shape(1, 2, 4, 2, 70);
}

/* ---- timestep embedding ---- */
typedef struct { int B, dim; double *t, *g, *out; } temb64;

static double temb64_loss(void *c) {
    temb64 *e = c;
    timestep_embedding_forward_f64(e->out, e->t, e->B, e->dim);
    return op_dot(e->out, e->g, (size_t)e->B * e->dim);
}

static void test_timestep(void) {
    double tv[3] = {0.25, 3, 17.5};
    temb64 e = {3, 8, tv, trand(24, 41), t64(24)};
    double *dt = op_fill(3, 0.5);
    bufs[nbufs++] = dt;
    temb64_loss(&e);
    timestep_embedding_backward_f64(dt, e.g, e.t, 3, 8);
    op_sub(dt, 3, 0.5);
    OP_CHECK_ERR("fd timestep embedding dt", op_gradcheck1(temb64_loss, &e, e.t, dt, 3), 1e-6);
    // row 0 at t = 0.25: sin(0.25 f_i), cos(0.25 f_i), f_i = 10000^(-i/3)
    CHECK_NEAR(e.out[1], sin(0.25 * pow(10000, -1.0 / 3)), 1e-15);
    CHECK_NEAR(e.out[4 + 3], cos(0.25 * 1e-4), 1e-15);
    tfree();
}

/* ---- PyTorch fixtures ---- */
static void test_fx_temporal(void) {
    fixture fx;
    if (op_fixture_load(&fx, "attn", "attn_temporal") != 0) return;
    int B = 3, H = 2, L = 6, dh = 8;
    size_t n = (size_t)B * H * L * dh;
    temporal64 t;
    temporal64_init(&t, B, H, L, dh, dh);
    t.q = fx_in(&fx, "q", n), t.k = fx_in(&fx, "k", n), t.v = fx_in(&fx, "v", n);
    t.g = fx_in(&fx, "g", n), t.table = fx_in(&fx, "table", 32 * (size_t)H);
    double *dq = t64(n), *dk = t64(n), *dv = t64(n), *dt = t64(32 * (size_t)H);
    temporal64_forward(&t);
    temporal64_backward(&t, dq, dk, dv, dt);
    OP_CHECK_FX(&fx, "attn_temporal", "f64", "out", t.out, n, 1e-6);
    OP_CHECK_FX(&fx, "attn_temporal", "f64", "dq", dq, n, 1e-6);
    OP_CHECK_FX(&fx, "attn_temporal", "f64", "dk", dk, n, 1e-6);
    OP_CHECK_FX(&fx, "attn_temporal", "f64", "dv", dv, n, 1e-6);
    OP_CHECK_FX(&fx, "attn_temporal", "f64", "dtable", dt, 32 * (size_t)H, 1e-6);
    float *out = t32(n), *fq = t32(n), *fk = t32(n), *fv = t32(n), *ft = t32(32 * (size_t)H);
    temporal32_run(&t, out, fq, fk, fv, ft);
    OP_CHECK_FX(&fx, "attn_temporal", "f32", "out", tf64(out, n), n, 1e-5);
    OP_CHECK_FX(&fx, "attn_temporal", "f32", "dq", tf64(fq, n), n, 1e-5);
    OP_CHECK_FX(&fx, "attn_temporal", "f32", "dk", tf64(fk, n), n, 1e-5);
    OP_CHECK_FX(&fx, "attn_temporal", "f32", "dv", tf64(fv, n), n, 1e-5);
    OP_CHECK_FX(&fx, "attn_temporal", "f32", "dtable", tf64(ft, 32 * (size_t)H), 32 * (size_t)H, 1e-5);
    fixture_free(&fx);
    tfree();
}

static void test_fx_long(void) {
    fixture fx;
    if (op_fixture_load(&fx, "attn", "attn_long") != 0) return;
    int B = 1, H = 1, L = 70, dh = 4;
    size_t n = (size_t)B * H * L * dh, LL = (size_t)L * L;
    for (int f32 = 0; f32 < 2; f32++) {
        double *q = fx_in(&fx, "q", n), *k = fx_in(&fx, "k", n), *v = fx_in(&fx, "v", n), *g = fx_in(&fx, "g", n);
        double *out = t64(n), *dq = t64(n), *dk = t64(n), *dv = t64(n);
        if (!f32) {
            double *att = t64(B * H * LL), *work = t64(attention_workspace_size(B, H, L));
            attention_forward_f64(out, att, q, k, v, NULL, B, H, L, dh, 0.5);
            attention_backward_f64(dq, dk, dv, NULL, work, g, q, k, v, att, B, H, L, dh, 0.5);
        } else {
            float *o = t32(n), *a = t32(B * H * LL), *w = t32(attention_workspace_size(B, H, L));
            float *fq = t32(n), *fk = t32(n), *fv = t32(n);
            float *q32 = tf32(q, n), *k32 = tf32(k, n), *v32 = tf32(v, n), *g32 = tf32(g, n);
            attention_forward(o, a, q32, k32, v32, NULL, B, H, L, dh, 0.5f);
            attention_backward(fq, fk, fv, NULL, w, g32, q32, k32, v32, a, B, H, L, dh, 0.5f);
            out = tf64(o, n), dq = tf64(fq, n), dk = tf64(fk, n), dv = tf64(fv, n);
        }
        const char *path = f32 ? "f32" : "f64";
        double tol = f32 ? 1e-5 : 1e-6;
        OP_CHECK_FX(&fx, "attn_long", path, "out", out, n, tol);
        OP_CHECK_FX(&fx, "attn_long", path, "dq", dq, n, tol);
        OP_CHECK_FX(&fx, "attn_long", path, "dk", dk, n, tol);
        OP_CHECK_FX(&fx, "attn_long", path, "dv", dv, n, tol);
    }
    fixture_free(&fx);
    tfree();
}

static void test_fx_rotary(void) {
    fixture fx;
    if (op_fixture_load(&fx, "attn", "rotary_partial") != 0) return;
    int B = 2, L = 5, dh = 12, rot = 8;
    size_t n = (size_t)B * L * dh;
    double *x = fx_in(&fx, "x", n), *g = fx_in(&fx, "g", n), *cs = t64((size_t)L * rot);
    double *out = t64(n), *dx = t64(n);
    rotary_cos_sin_f64(cs, L, rot);
    rotary_forward_f64(out, x, cs, B, L, dh, rot);
    rotary_backward_f64(dx, g, cs, B, L, dh, rot);
    OP_CHECK_FX(&fx, "rotary_partial", "f64", "out", out, n, 1e-6);
    OP_CHECK_FX(&fx, "rotary_partial", "f64", "dx", dx, n, 1e-6);
    // the float32 frequencies: angle at position 1 of pair i is freq_i
    size_t nf = 0;
    const float *freqs = fixture_get(&fx, "freqs", &nf);
    CHECK(freqs && nf == 4);
    for (size_t i = 0; freqs && i < nf; i++) CHECK_NEAR(atan2(cs[(4 + i) * 2 + 1], cs[(4 + i) * 2]), freqs[i], 1e-7);
    // in place, in float
    float *xf = tf32(x, n), *csf = t32((size_t)L * rot);
    rotary_cos_sin(csf, L, rot);
    rotary_forward(xf, xf, csf, B, L, dh, rot);
    OP_CHECK_FX(&fx, "rotary_partial", "f32", "out", tf64(xf, n), n, 1e-6);
    fixture_free(&fx);
    tfree();
}

static void test_fx_buckets(void) {
    fixture fx;
    if (op_fixture_load(&fx, "attn", "relpos_buckets") != 0) return;
    const char *names[2] = {"md32", "md128"};
    int md[2] = {32, 128};
    for (int c = 0; c < 2; c++) {
        size_t n = 0;
        const float *b = fixture_get(&fx, names[c], &n);
        CHECK(b && n == 127);
        int bad = 0;
        for (int r = -63; b && r <= 63; r++) bad += relpos_bucket(r, 32, md[c]) != (int)b[r + 63];
        printf("  relpos buckets max_distance %d: %d of 127 differ\n", md[c], bad);
        CHECK(bad == 0);
    }
    fixture_free(&fx);
}

static void test_fx_linear(void) {
    fixture fx;
    if (op_fixture_load(&fx, "attn", "linear_attn") != 0) return;
    lin64 a;
    int B = 2, H = 2, dh = 4, F = 3, N = 5;
    lin64_init(&a, B, H, dh, F, N);
    size_t n = (size_t)B * H * dh * F * N;
    a.qkv = fx_in(&fx, "qkv", 3 * n), a.g = fx_in(&fx, "g", n);
    double *d = t64(3 * n), *work = t64(linear_attention_workspace_size(B, H, dh, F, N));
    lin64_loss(&a);
    linear_attention_backward_f64(d, work, a.g, a.qkv, a.qs, a.ks, a.ctx, B, H, dh, F, N, a.scale);
    OP_CHECK_FX(&fx, "linear_attn", "f64", "out", a.out, n, 1e-6);
    OP_CHECK_FX(&fx, "linear_attn", "f64", "dqkv", d, 3 * n, 1e-6);
    float *qkv = tf32(a.qkv, 3 * n), *g = tf32(a.g, n), *out = t32(n), *qs = t32(n), *ks = t32(n);
    float *ctx = t32((size_t)B * F * H * dh * dh), *fd = t32(3 * n);
    float *fw = t32(linear_attention_workspace_size(B, H, dh, F, N));
    linear_attention_forward(out, qs, ks, ctx, qkv, B, H, dh, F, N, 0.5f);
    linear_attention_backward(fd, fw, g, qkv, qs, ks, ctx, B, H, dh, F, N, 0.5f);
    OP_CHECK_FX(&fx, "linear_attn", "f32", "out", tf64(out, n), n, 1e-5);
    OP_CHECK_FX(&fx, "linear_attn", "f32", "dqkv", tf64(fd, 3 * n), 3 * n, 1e-5);
    fixture_free(&fx);
    tfree();
}

static void test_fx_timestep(void) {
    fixture fx;
    if (op_fixture_load(&fx, "attn", "timestep") != 0) return;
    double *t = fx_in(&fx, "t", 4), *g = fx_in(&fx, "g", 64), *out = t64(64), *dt = t64(4);
    timestep_embedding_forward_f64(out, t, 4, 16);
    timestep_embedding_backward_f64(dt, g, t, 4, 16);
    OP_CHECK_FX(&fx, "timestep", "f64", "out", out, 64, 1e-6);
    OP_CHECK_FX(&fx, "timestep", "f64", "dt", dt, 4, 1e-6);
    float *tf = tf32(t, 4), *of = t32(64);
    timestep_embedding_forward(of, tf, 4, 16);
    OP_CHECK_FX(&fx, "timestep", "f32", "out", tf64(of, 64), 64, 1e-6);
    fixture_free(&fx);
    tfree();
}

int main(void) {
    test_temporal_fd(2, 2, 5, 6, 4); // partial rotation, loop path
    test_temporal_fd(1, 2, 8, 32, 32); // the UNet's L and dim_head: SIMD loops, float dot reductions
    test_plain_fd(2, 2, 7, 3);       // loop path
    test_plain_fd(1, 2, ATTN_GEMM_MIN_L + 3, 2); // BLAS path
    test_permute();
    test_linear_attention();
    test_timestep();
    test_fx_temporal();
    test_fx_long();
    test_fx_rotary();
    test_fx_buckets();
    test_fx_linear();
    test_fx_timestep();
    return check_done("test_attention");
}
