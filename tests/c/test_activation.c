/* Activations: gradients of the double versions against central
 * differences, float against double (on a tensor big enough for the
 * threaded path), in-place forwards, and PyTorch fixtures
 * (tests/fixtures/activation, made by tests/torch/make_norm.py). */
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "opcheck.h"

#include "activation.h"

static const act_kind kinds[] = {ACT_SILU, ACT_RELU, ACT_LEAKY_RELU, ACT_GELU,
                                 ACT_GELU_TANH, ACT_TANH, ACT_SIGMOID, ACT_NONE};
#define NKINDS (sizeof kinds / sizeof *kinds)
static const double slope = 0.2; // the fixtures' leaky_relu slope

/* Forward and backward through the dispatchers; dx starts at 0.25. */
static void act_run64(act_kind k, const double *x, const double *g, size_t n, double *out,
                      double *dx) {
    act_forward_f64(k, out, x, n, slope);
    for (size_t i = 0; i < n; i++) dx[i] = 0.25;
    act_backward_f64(k, dx, g, act_backward_uses_output(k) ? out : x, n, slope);
    op_sub(dx, n, 0.25);
}

static void act_run32(act_kind k, const double *x, const double *g, size_t n, double *out,
                      double *dx) {
    float *xf = op_to_f32(x, n), *gf = op_to_f32(g, n), *of = op_zerosf(n), *df = op_zerosf(n);
    for (size_t i = 0; i < n; i++) df[i] = 0.25f;
    act_forward(k, of, xf, n, (float)slope);
    act_backward(k, df, gf, act_backward_uses_output(k) ? of : xf, n, (float)slope);
    for (size_t i = 0; i < n; i++) out[i] = of[i], dx[i] = (double)df[i] - 0.25;
    free(xf), free(gf), free(of), free(df);
}

typedef struct {
    act_kind k;
    double *x, *g, *tmp;
    size_t n;
} act_ctx;

static double act_loss(void *p) {
    act_ctx *c = p;
    act_forward_f64(c->k, c->tmp, c->x, c->n, slope);
    return op_dot(c->tmp, c->g, c->n);
}

static void test_fd(act_kind k) {
    size_t n = 64;
    act_ctx c = {k, op_rand(n, 100 + k, -4, 4), op_rand(n, 200 + k, -1, 1), op_zeros(n), n};
    double *out = op_zeros(n), *dx = op_zeros(n);
    act_run64(k, c.x, c.g, n, out, dx);
    char what[64];
    snprintf(what, sizeof what, "fd %s dx", act_kind_name(k));
    OP_CHECK_ERR(what, op_gradcheck(act_loss, &c, c.x, dx, n), 1e-6);
    free(c.x), free(c.g), free(c.tmp), free(out), free(dx);
}

/* 100k values: past the threading threshold, with odd length for the
 * vector remainder. */
static void test_f32(act_kind k) {
    size_t n = 100003;
    double *x = op_rand(n, 300 + k, -8, 8), *g = op_rand(n, 400 + k, -1, 1);
    double *o64 = op_zeros(n), *d64 = op_zeros(n), *o32 = op_zeros(n), *d32 = op_zeros(n);
    act_run64(k, x, g, n, o64, d64);
    act_run32(k, x, g, n, o32, d32);
    char what[64];
    snprintf(what, sizeof what, "f32 %s out, dx", act_kind_name(k));
    OP_CHECK_ERR(what, fmax(op_err(o32, o64, n, NULL), op_err(d32, d64, n, NULL)), 1e-5);
    if (act_backward_uses_output(k)) { // in place: out == inp gives the same bits
        float *a = op_to_f32(x, n), *b = op_to_f32(x, n);
        act_forward(k, a, a, n, (float)slope);
        float *ref = op_zerosf(n);
        act_forward(k, ref, b, n, (float)slope);
        CHECK(memcmp(a, ref, n * sizeof *a) == 0);
        free(a), free(b), free(ref);
    }
    free(x), free(g), free(o64), free(d64), free(o32), free(d32);
}

/* cfg = n, slope; tensors x, g, out, dx. */
static void test_fixture(act_kind k) {
    const char *name = act_kind_name(k);
    fixture fx;
    if (op_fixture_load(&fx, "activation", name) != 0) return;
    size_t n = (size_t)op_cfg(&fx, 0);
    CHECK_NEAR(op_cfg(&fx, 1), slope, 1e-7);
    double *x = op_fx64(&fx, "x", n), *g = op_fx64(&fx, "g", n);
    double *out = op_zeros(n), *dx = op_zeros(n);
    for (int f32 = 0; x && g && f32 <= 1; f32++) {
        (f32 ? act_run32 : act_run64)(k, x, g, n, out, dx);
        const char *tag = f32 ? "f32" : "f64";
        double tol = f32 ? 2e-6 : 1e-6;
        OP_CHECK_FX(&fx, name, tag, "out", out, n, tol);
        OP_CHECK_FX(&fx, name, tag, "dx", dx, n, tol);
    }
    free(x), free(g), free(out), free(dx);
    fixture_free(&fx);
}

static void test_names(void) {
    for (size_t i = 0; i < NKINDS; i++) {
        act_kind k = ACT_NONE;
        CHECK(act_kind_parse(act_kind_name(kinds[i]), &k) == 0 && k == kinds[i]);
    }
    act_kind k;
    CHECK(act_kind_parse("swish", &k) == -1);
    CHECK(strcmp(act_kind_name(ACT_GELU_TANH), "gelu_tanh") == 0);
    CHECK(act_backward_uses_output(ACT_TANH) == 1 && act_backward_uses_output(ACT_SILU) == 0);
}

/* Exact values at a few points, independent of any reference code. */
static void test_values(void) {
    double x[4] = {-2, 0, 0.5, 3}, y[4];
    relu_forward_f64(y, x, 4);
    CHECK(y[0] == 0 && y[1] == 0 && y[2] == 0.5 && y[3] == 3);
    leaky_relu_forward_f64(y, x, 4, 0.1);
    CHECK_NEAR(y[0], -0.2, 1e-15);
    CHECK(y[3] == 3);
    sigmoid_forward_f64(y, x, 4);
    CHECK(y[1] == 0.5);
    silu_forward_f64(y, x, 4);
    CHECK_NEAR(y[3], 3 / (1 + exp(-3.0)), 1e-15);
    gelu_forward_f64(y, x, 4);
    CHECK_NEAR(y[3], 3 * 0.5 * (1 + erf(3 / sqrt(2.0))), 1e-15);
    CHECK_NEAR(y[2], 0.34573123063700656, 1e-15); // 0.5 * Phi(0.5)
    float big[2] = {-100, 100}, s[2];
    sigmoid_forward(s, big, 2); // no overflow to NaN
    CHECK(s[0] == 0 && s[1] == 1);
    silu_forward(s, big, 2);
    CHECK(s[0] == 0 && s[1] == 100);
}

int main(void) {
    test_names();
    test_values();
    for (size_t i = 0; i < NKINDS; i++) test_fd(kinds[i]);
    for (size_t i = 0; i < NKINDS; i++) test_f32(kinds[i]);
    for (size_t i = 0; i + 1 < NKINDS; i++) test_fixture(kinds[i]); // no fixture for "none"
    return check_done("test_activation");
}
