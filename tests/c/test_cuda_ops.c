/* CUDA layer ops against the CPU ones on random inputs: for every op the
 * CPU function and its _cuda twin run on the same data and are compared
 * by normalised error max|gpu - cpu| / max|cpu| (finite entries), with
 * NaN/Inf parity (inputs carry a NaN, a +Inf and a -Inf; both sides must
 * give a non-finite value of the same kind at the same places) and guard
 * values: every device buffer has GUARD sentinel floats on each side that
 * must come back untouched. Gradients start at 0.5, not 0, so that the
 * accumulation (+=) is checked too. Skipped without a GPU. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "device.h"
#include "rng.h"
#include "activation.h"
#include "batchnorm.h"
#include "conv3d.h"
#include "elementwise.h"
#include "groupnorm.h"
#include "instancenorm.h"
#include "linear.h"
#include "spade.h"
#ifdef LSDM_CUDA
#include "cuda_handles.h"
#include "devmem.h"

#include "gpucheck.h"

static void test_groupnorm(int N, int C, int S, int G, int affine, int poisoned) {
    size_t n = (size_t)N * C * S, ng = (size_t)N * G;
    char name[64];
    float *x = h_normal(n, 1, 2.0f), *w = h_normal(C, 2, 1.0f), *b = h_normal(C, 3, 1.0f);
    for (size_t i = 0; i < n; i++) x[i] += 3.0f; /* a mean away from 0 */
    if (poisoned) poison(x, n);
    float *dy = h_normal(n, 4, 1.0f);
    float *out = h_const(n, 0), *mean = h_const(ng, 0), *rstd = h_const(ng, 0);
    float *dx = h_const(n, 0.5f), *dw = h_const(C, 0.5f), *db = h_const(C, 0.5f);
    const float *wp = affine ? w : NULL, *bp = affine ? b : NULL;
    float *d_x = dev_copy(x, n), *d_w = dev_copy(w, C), *d_b = dev_copy(b, C), *d_dy = dev_copy(dy, n);
    float *d_out = dev_copy(out, n), *d_mean = dev_copy(mean, ng), *d_rstd = dev_copy(rstd, ng);
    float *d_dx = dev_copy(dx, n), *d_dw = dev_copy(dw, C), *d_db = dev_copy(db, C);
    const float *d_wp = affine ? d_w : NULL, *d_bp = affine ? d_b : NULL;
    const char *op = G == C ? "instancenorm" : "groupnorm";

    if (G == C) {
        instancenorm_forward(out, mean, rstd, x, wp, bp, N, C, S, 1e-5f);
        CHECK(instancenorm_forward_cuda(d_out, d_mean, d_rstd, d_x, d_wp, d_bp, N, C, S, 1e-5f) == 0);
    } else {
        groupnorm_forward(out, mean, rstd, x, wp, bp, N, C, S, G, 1e-5f);
        CHECK(groupnorm_forward_cuda(d_out, d_mean, d_rstd, d_x, d_wp, d_bp, N, C, S, G, 1e-5f) == 0);
    }
    snprintf(name, sizeof name, "%s%s out", op, poisoned ? "/nan" : "");
    cmp(name, out, d_out, n, TOL_RED);
    if (!poisoned) { /* with an Inf, the CPU's channel merge may give inf or nan */
        snprintf(name, sizeof name, "%s mean", op);
        cmp(name, mean, d_mean, ng, TOL_RED);
        snprintf(name, sizeof name, "%s rstd", op);
        cmp(name, rstd, d_rstd, ng, TOL_RED);
    }
    /* backward from the CPU's statistics, so only the backward is compared */
    CHECK(lsdm_cuda_copy(d_mean, mean, ng * sizeof *mean, 1) == 0);
    CHECK(lsdm_cuda_copy(d_rstd, rstd, ng * sizeof *rstd, 1) == 0);
    if (G == C) {
        instancenorm_backward(dx, dw, db, dy, x, wp, mean, rstd, N, C, S);
        CHECK(instancenorm_backward_cuda(d_dx, d_dw, d_db, d_dy, d_x, d_wp, d_mean, d_rstd, N, C, S) == 0);
    } else {
        groupnorm_backward(dx, dw, db, dy, x, wp, mean, rstd, N, C, S, G);
        CHECK(groupnorm_backward_cuda(d_dx, d_dw, d_db, d_dy, d_x, d_wp, d_mean, d_rstd, N, C, S, G) == 0);
    }
    snprintf(name, sizeof name, "%s%s dinp", op, poisoned ? "/nan" : "");
    cmp(name, dx, d_dx, n, TOL_RED);
    snprintf(name, sizeof name, "%s%s dweight", op, poisoned ? "/nan" : "");
    cmp(name, dw, d_dw, C, TOL_RED);
    snprintf(name, sizeof name, "%s%s dbias", op, poisoned ? "/nan" : "");
    cmp(name, db, d_db, C, TOL_RED);
    free(x), free(w), free(b), free(dy), free(out), free(mean), free(rstd), free(dx), free(dw), free(db);
    dev_free_all();
}

static void test_batchnorm(void) {
    int N = 3, C = 7, S = 999;
    size_t n = (size_t)N * C * S;
    float *x = h_normal(n, 11, 1.5f), *w = h_normal(C, 12, 1.0f), *b = h_normal(C, 13, 1.0f);
    float *rm = h_normal(C, 14, 1.0f), *rv = h_normal(C, 15, 1.0f), *dy = h_normal(n, 16, 1.0f);
    for (int c = 0; c < C; c++) rv[c] = fabsf(rv[c]) + 0.1f;
    poison(x, n);
    float *out = h_const(n, 0), *dx = h_const(n, 0.5f), *dw = h_const(C, 0.5f), *db = h_const(C, 0.5f);
    float *d_x = dev_copy(x, n), *d_w = dev_copy(w, C), *d_b = dev_copy(b, C), *d_rm = dev_copy(rm, C);
    float *d_rv = dev_copy(rv, C), *d_dy = dev_copy(dy, n), *d_out = dev_copy(out, n);
    float *d_dx = dev_copy(dx, n), *d_dw = dev_copy(dw, C), *d_db = dev_copy(db, C);
    batchnorm_forward(out, x, w, b, rm, rv, N, C, S, 1e-5f);
    CHECK(batchnorm_forward_cuda(d_out, d_x, d_w, d_b, d_rm, d_rv, N, C, S, 1e-5f) == 0);
    cmp("batchnorm out", out, d_out, n, TOL_EW);
    batchnorm_backward(dx, dw, db, dy, x, w, rm, rv, N, C, S, 1e-5f);
    CHECK(batchnorm_backward_cuda(d_dx, d_dw, d_db, d_dy, d_x, d_w, d_rm, d_rv, N, C, S, 1e-5f) == 0);
    cmp("batchnorm dinp", dx, d_dx, n, TOL_EW);
    cmp("batchnorm dweight", dw, d_dw, C, TOL_RED);
    cmp("batchnorm dbias", db, d_db, C, TOL_RED);
    free(x), free(w), free(b), free(rm), free(rv), free(dy), free(out), free(dx), free(dw), free(db);
    dev_free_all();
}

static void test_activations(void) {
    size_t n = 100003;
    float *x = h_normal(n, 21, 3.0f), *dy = h_normal(n, 22, 1.0f);
    poison(x, n);
    float *d_x = dev_copy(x, n), *d_dy = dev_copy(dy, n);
    for (int k = ACT_NONE; k <= ACT_SIGMOID; k++) {
        char name[64];
        float *out = h_const(n, 0), *dx = h_const(n, 0.5f);
        float *d_out = dev_copy(out, n), *d_dx = dev_copy(dx, n);
        act_forward((act_kind)k, out, x, n, 0.2f);
        CHECK(act_forward_cuda((act_kind)k, d_out, d_x, n, 0.2f) == 0);
        snprintf(name, sizeof name, "act %s forward", act_kind_name((act_kind)k));
        cmp(name, out, d_out, n, TOL_EW);
        int uses_out = act_backward_uses_output((act_kind)k);
        act_backward((act_kind)k, dx, dy, uses_out ? out : x, n, 0.2f);
        CHECK(act_backward_cuda((act_kind)k, d_dx, d_dy, uses_out ? d_out : d_x, n, 0.2f) == 0);
        snprintf(name, sizeof name, "act %s backward", act_kind_name((act_kind)k));
        cmp(name, dx, d_dx, n, TOL_EW);
        free(out), free(dx);
    }
    /* the named entry points, and in place (out == inp) */
    float *y = malloc(n * sizeof *y);
    memcpy(y, x, n * sizeof *y);
    float *d_y = dev_copy(y, n);
    silu_forward(y, y, n);
    CHECK(silu_forward_cuda(d_y, d_y, n) == 0);
    cmp("silu forward in place", y, d_y, n, TOL_EW);
    free(x), free(dy), free(y);
    dev_free_all();
}

static void test_elementwise(int per_n) {
    int N = 2, C = 6, S = 1001, Ca = 2, Cb = 4;
    size_t n = (size_t)N * C * S, nv = per_n ? (size_t)N * C : (size_t)C;
    float *a = h_normal(n, 31, 1.0f), *b = h_normal(n, 32, 1.0f), *dy = h_normal(n, 33, 1.0f);
    float *v = h_normal(nv, 34, 1.0f), *v2 = h_normal(nv, 35, 1.0f);
    poison(a, n);
    float *d_a = dev_copy(a, n), *d_b = dev_copy(b, n), *d_dy = dev_copy(dy, n);
    float *d_v = dev_copy(v, nv), *d_v2 = dev_copy(v2, nv);
    float *out = h_const(n, 0), *g1 = h_const(n, 0.5f), *g2 = h_const(n, 0.5f);
    float *gv = h_const(nv, 0.5f), *gv2 = h_const(nv, 0.5f);
    char name[64];
#define FRESH()                                                                                   \
    float *d_out = dev_copy(out, n), *d_g1 = dev_copy(g1, n), *d_g2 = dev_copy(g2, n);            \
    float *d_gv = dev_copy(gv, nv), *d_gv2 = dev_copy(gv2, nv);                                  \
    (void)d_out, (void)d_g1, (void)d_g2, (void)d_gv, (void)d_gv2
#define RESET()                                                                                   \
    for (size_t i = 0; i < n; i++) out[i] = 0, g1[i] = g2[i] = 0.5f;                              \
    for (size_t i = 0; i < nv; i++) gv[i] = gv2[i] = 0.5f
#define NAME(s) (snprintf(name, sizeof name, "%s%s", s, per_n ? " per_n" : ""), name)
    if (!per_n) {
        RESET();
        FRESH();
        add_forward(out, a, b, n);
        CHECK(add_forward_cuda(d_out, d_a, d_b, n) == 0);
        cmp("add forward", out, d_out, n, TOL_EW);
        add_backward(g1, g2, dy, n);
        CHECK(add_backward_cuda(d_g1, d_g2, d_dy, n) == 0);
        cmp("add backward da", g1, d_g1, n, TOL_EW);
        cmp("add backward db", g2, d_g2, n, TOL_EW);
    }
    if (!per_n) {
        RESET();
        FRESH();
        mul_forward(out, a, b, n);
        CHECK(mul_forward_cuda(d_out, d_a, d_b, n) == 0);
        cmp("mul forward", out, d_out, n, TOL_EW);
        mul_backward(g1, g2, dy, a, b, n);
        CHECK(mul_backward_cuda(d_g1, d_g2, d_dy, d_a, d_b, n) == 0);
        cmp("mul backward da", g1, d_g1, n, TOL_EW);
        cmp("mul backward db", g2, d_g2, n, TOL_EW);
        scale_add(g1, -0.75f, a, n);
        CHECK(scale_add_cuda(d_g1, -0.75f, d_a, n) == 0);
        cmp("scale_add", g1, d_g1, n, TOL_EW);
    }
    {
        RESET();
        FRESH();
        add_bcast_forward(out, a, v, N, C, S, per_n);
        CHECK(add_bcast_forward_cuda(d_out, d_a, d_v, N, C, S, per_n) == 0);
        cmp(NAME("add_bcast forward"), out, d_out, n, TOL_EW);
        add_bcast_backward(g1, gv, dy, N, C, S, per_n);
        CHECK(add_bcast_backward_cuda(d_g1, d_gv, d_dy, N, C, S, per_n) == 0);
        cmp(NAME("add_bcast backward dx"), g1, d_g1, n, TOL_EW);
        cmp(NAME("add_bcast backward dv"), gv, d_gv, nv, TOL_RED);
    }
    {
        RESET();
        FRESH();
        mul_bcast_forward(out, a, v, N, C, S, per_n);
        CHECK(mul_bcast_forward_cuda(d_out, d_a, d_v, N, C, S, per_n) == 0);
        cmp(NAME("mul_bcast forward"), out, d_out, n, TOL_EW);
        mul_bcast_backward(g1, gv, dy, b, v, N, C, S, per_n); /* x = b: finite sums too */
        CHECK(mul_bcast_backward_cuda(d_g1, d_gv, d_dy, d_b, d_v, N, C, S, per_n) == 0);
        cmp(NAME("mul_bcast backward dx"), g1, d_g1, n, TOL_EW);
        cmp(NAME("mul_bcast backward dv"), gv, d_gv, nv, TOL_RED);
    }
    {
        RESET();
        FRESH();
        scale_shift_forward(out, a, v, v2, N, C, S, per_n);
        CHECK(scale_shift_forward_cuda(d_out, d_a, d_v, d_v2, N, C, S, per_n) == 0);
        cmp(NAME("scale_shift forward"), out, d_out, n, TOL_EW);
        scale_shift_backward(g1, gv, gv2, dy, a, v, N, C, S, per_n);
        CHECK(scale_shift_backward_cuda(d_g1, d_gv, d_gv2, d_dy, d_a, d_v, N, C, S, per_n) == 0);
        cmp(NAME("scale_shift backward dx"), g1, d_g1, n, TOL_EW);
        cmp(NAME("scale_shift backward dscale"), gv, d_gv, nv, TOL_RED);
        cmp(NAME("scale_shift backward dshift"), gv2, d_gv2, nv, TOL_RED);
    }
    if (!per_n) {
        /* a: (N,Ca,S), b: (N,Cb,S) carved from the random buffers */
        size_t na = (size_t)N * Ca * S, nb = (size_t)N * Cb * S;
        RESET();
        FRESH();
        concat_forward(out, a, b, N, Ca, Cb, S);
        CHECK(concat_forward_cuda(d_out, d_a, d_b, N, Ca, Cb, S) == 0);
        cmp("concat forward", out, d_out, n, 0);
        float *d_ga = dev_copy(g1, na), *d_gb = dev_copy(g2, nb); /* exact sizes: guards */
        concat_backward(g1, g2, dy, N, Ca, Cb, S);
        CHECK(concat_backward_cuda(d_ga, d_gb, d_dy, N, Ca, Cb, S) == 0);
        cmp("concat backward da", g1, d_ga, na, TOL_EW);
        cmp("concat backward db", g2, d_gb, nb, TOL_EW);
        /* slice channels 1..4 of the C = 6 of a; guards of the whole buffer
         * check that nothing past the slice's output was written */
        int c0 = 1, Cs = 3;
        size_t ns = (size_t)N * Cs * S;
        float *d_s = dev_copy(out, ns);
        slice_forward(out, a, N, C, c0, Cs, S);
        CHECK(slice_forward_cuda(d_s, d_a, N, C, c0, Cs, S) == 0);
        cmp("slice forward", out, d_s, ns, 0);
        slice_backward(g1, dy, N, C, c0, Cs, S);
        CHECK(slice_backward_cuda(d_g1, d_dy, N, C, c0, Cs, S) == 0);
        cmp("slice backward", g1, d_g1, n, TOL_EW);
    }
#undef FRESH
#undef RESET
#undef NAME
    free(a), free(b), free(dy), free(v), free(v2), free(out), free(g1), free(g2), free(gv), free(gv2);
    dev_free_all();
}

static void test_linear(int with_bias) {
    int B = 37, IC = 70, OC = 45;
    size_t ni = (size_t)B * IC, no = (size_t)B * OC, nw = (size_t)OC * IC;
    float *x = h_normal(ni, 41, 1.0f), *w = h_normal(nw, 42, 0.2f), *b = h_normal(OC, 43, 1.0f);
    float *dy = h_normal(no, 44, 1.0f);
    poison(x, ni);
    float *out = h_const(no, 0), *dx = h_const(ni, 0.5f), *dw = h_const(nw, 0.5f), *db = h_const(OC, 0.5f);
    float *d_x = dev_copy(x, ni), *d_w = dev_copy(w, nw), *d_b = dev_copy(b, OC), *d_dy = dev_copy(dy, no);
    float *d_out = dev_copy(out, no), *d_dx = dev_copy(dx, ni), *d_dw = dev_copy(dw, nw), *d_db = dev_copy(db, OC);
    linear_forward(out, x, w, with_bias ? b : NULL, B, IC, OC);
    CHECK(linear_forward_cuda(d_out, d_x, d_w, with_bias ? d_b : NULL, B, IC, OC) == 0);
    cmp(with_bias ? "linear forward" : "linear forward (no bias)", out, d_out, no, TOL_RED);
    if (with_bias) {
        linear_backward(dx, dw, db, dy, x, w, B, IC, OC);
        CHECK(linear_backward_cuda(d_dx, d_dw, d_db, d_dy, d_x, d_w, B, IC, OC) == 0);
        cmp("linear dinp", dx, d_dx, ni, TOL_RED);
        cmp("linear dweight", dw, d_dw, nw, TOL_RED);
        cmp("linear dbias", db, d_db, OC, TOL_RED);
    }
    free(x), free(w), free(b), free(dy), free(out), free(dx), free(dw), free(db);
    dev_free_all();
}

static void test_spade(void) {
    size_t n = 50021;
    float *x = h_normal(n, 51, 1.0f), *g = h_normal(n, 52, 0.5f), *be = h_normal(n, 53, 0.5f);
    float *dy = h_normal(n, 54, 1.0f);
    poison(x, n);
    float *out = h_const(n, 0), *dx = h_const(n, 0.5f), *dg = h_const(n, 0.5f), *db = h_const(n, 0.5f);
    float *d_x = dev_copy(x, n), *d_g = dev_copy(g, n), *d_be = dev_copy(be, n), *d_dy = dev_copy(dy, n);
    float *d_out = dev_copy(out, n), *d_dx = dev_copy(dx, n), *d_dg = dev_copy(dg, n), *d_db = dev_copy(db, n);
    spade_forward(out, x, g, be, n);
    CHECK(spade_forward_cuda(d_out, d_x, d_g, d_be, n) == 0);
    cmp("spade forward", out, d_out, n, TOL_EW);
    spade_backward(dx, dg, db, dy, x, g, n);
    CHECK(spade_backward_cuda(d_dx, d_dg, d_db, d_dy, d_x, d_g, n) == 0);
    cmp("spade dx", dx, d_dx, n, TOL_EW);
    cmp("spade dgamma", dg, d_dg, n, TOL_EW);
    cmp("spade dbeta", db, d_db, n, TOL_EW);
    free(x), free(g), free(be), free(dy), free(out), free(dx), free(dg), free(db);
    dev_free_all();
}

/* conv3d: cuDNN against the CPU's vol2col + GEMM, zero and replicate
 * padding, strides, dilation, a one-voxel-deep input (every padded plane
 * folds back onto the same voxels). */
static void test_conv3d(int N, int Cin, int Cout, int D, int H, int W, int k, int s, int p, int dil,
                        int mode, int with_bias) {
    conv3d_dims d = {.N = N, .Cin = Cin, .D = D, .H = H, .W = W, .Cout = Cout, .kd = k, .kh = k,
                     .kw = k, .sd = s, .sh = s, .sw = s, .pd = p, .ph = p, .pw = p, .dd = dil,
                     .dh = dil, .dw = dil, .pad_mode = mode};
    CHECK(conv3d_dims_init(&d) == 0);
    size_t ni = (size_t)N * Cin * D * H * W, no = (size_t)N * Cout * d.OD * d.OH * d.OW;
    size_t nw = (size_t)Cout * Cin * k * k * k, gws = 0;
    CHECK(conv3d_workspace_size_cuda(&gws, &d) == 0);
    char name[96], tag[64];
    snprintf(tag, sizeof tag, "conv3d k%d s%d p%d d%d %s", k, s, p, dil, mode ? "rep" : "zero");
    float *x = h_normal(ni, 61, 1.0f), *w = h_normal(nw, 62, 0.2f), *b = h_normal(Cout, 63, 1.0f);
    float *dy = h_normal(no, 64, 1.0f), *cw = h_const(conv3d_workspace_size(&d) + 1, 0);
    float *out = h_const(no, 0), *dx = h_const(ni, 0.5f), *dw = h_const(nw, 0.5f), *db = h_const(Cout, 0.5f);
    float *gw = h_const(gws + 1, 0);
    float *d_x = dev_copy(x, ni), *d_w = dev_copy(w, nw), *d_b = dev_copy(b, Cout), *d_dy = dev_copy(dy, no);
    float *d_out = dev_copy(out, no), *d_dx = dev_copy(dx, ni), *d_dw = dev_copy(dw, nw);
    float *d_db = dev_copy(db, Cout), *d_work = dev_copy(gw, gws);
    conv3d_forward(out, cw, x, w, with_bias ? b : NULL, &d);
    CHECK(conv3d_forward_cuda(d_out, d_work, d_x, d_w, with_bias ? d_b : NULL, &d) == 0);
    snprintf(name, sizeof name, "%s out", tag);
    cmp(name, out, d_out, no, TOL_RED);
    conv3d_backward(dx, dw, db, cw, dy, x, w, &d);
    CHECK(conv3d_backward_cuda(d_dx, d_dw, d_db, d_work, d_dy, d_x, d_w, &d) == 0);
    cmp_conv_grads(tag, dx, d_dx, ni, dw, d_dw, nw, db, d_db, Cout);
    /* the workspace's guards: nothing written past conv3d_workspace_size_cuda */
    cmp_guards_only(tag, d_work, gws);

    /* a NaN in the input: every output the CPU makes NaN must be NaN on the
     * GPU too (transform algorithms may spread it further: counted, not
     * failed), and outputs finite on both still agree */
    x[ni / 2] = NAN;
    CHECK(lsdm_cuda_copy(d_x, x, ni * sizeof *x, 1) == 0);
    conv3d_forward(out, cw, x, w, with_bias ? b : NULL, &d);
    CHECK(conv3d_forward_cuda(d_out, d_work, d_x, d_w, with_bias ? d_b : NULL, &d) == 0);
    float *g = malloc(no * sizeof *g);
    CHECK(lsdm_cuda_copy(g, d_out, no * sizeof *g, 0) == 0);
    size_t cpu_nan = 0, missing = 0, extra = 0;
    double m = 0, sc = 0;
    for (size_t i = 0; i < no; i++) {
        int a = isnan(out[i]) != 0, bb = isnan(g[i]) != 0;
        cpu_nan += a;
        missing += a && !bb;
        extra += bb && !a;
        if (!a && !bb) m = fmax(m, fabs((double)g[i] - out[i])), sc = fmax(sc, fabs((double)out[i]));
    }
    printf("%-34s NaN outputs cpu %zu, gpu misses %zu, gpu extra %zu, err %.3g\n", tag, cpu_nan,
           missing, extra, sc > 0 ? m / sc : m);
    CHECK(cpu_nan > 0);
    CHECK(missing == 0);
    CHECK((sc > 0 ? m / sc : m) <= TOL_RED);
    free(g);
    free(x), free(w), free(b), free(dy), free(cw), free(out), free(dx), free(dw), free(db), free(gw);
    dev_free_all();
}
#endif

int main(void) {
    GPU_OR_SKIP("test_cuda_ops");
#ifdef LSDM_CUDA
    test_groupnorm(2, 12, 1007, 4, 1, 0);
    test_groupnorm(2, 12, 1007, 4, 1, 1);
    test_groupnorm(1, 8, 3000, 1, 0, 0);  /* one group, no affine */
    test_groupnorm(3, 5, 777, 5, 1, 0);   /* instancenorm */
    test_groupnorm(3, 5, 777, 5, 0, 1);
    test_batchnorm();
    test_activations();
    test_elementwise(0);
    test_elementwise(1);
    test_linear(1);
    test_linear(0);
    test_spade();
    test_conv3d(2, 3, 4, 6, 7, 8, 3, 1, 1, 1, CONV3D_PAD_ZERO, 1);
    test_conv3d(2, 3, 4, 6, 7, 8, 3, 1, 1, 1, CONV3D_PAD_REPLICATE, 1);
    test_conv3d(1, 4, 5, 9, 8, 7, 3, 2, 1, 1, CONV3D_PAD_REPLICATE, 1);
    test_conv3d(1, 3, 2, 1, 6, 5, 3, 1, 2, 1, CONV3D_PAD_REPLICATE, 0); /* D = 1, pad 2 */
    test_conv3d(2, 3, 4, 7, 7, 7, 3, 1, 2, 2, CONV3D_PAD_ZERO, 1);      /* dilation 2 */
    test_conv3d(2, 8, 6, 5, 6, 7, 1, 1, 0, 1, CONV3D_PAD_ZERO, 0);      /* pointwise */
    test_conv3d(1, 16, 16, 12, 12, 12, 3, 1, 1, 1, CONV3D_PAD_ZERO, 1); /* cuDNN may pick another algo */
    lsdm_cuda_handles_free();
#endif
    return check_done("test_cuda_ops");
}
