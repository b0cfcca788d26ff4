/* CUDA BatchNorm (training mode) and pad3d against the CPU on random
 * inputs (gpucheck.h): normalised error max|gpu - cpu| / max|cpu| over
 * finite values, NaN/Inf parity (poisoned inputs carry a NaN, a +Inf and a
 * -Inf), and GUARD sentinels around every device buffer. Gradients and
 * running statistics start non-zero, so accumulation and the running
 * update are checked too. Skipped without a GPU. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "device.h"
#include "batchnorm.h"
#include "pad3d.h"
#ifdef LSDM_CUDA
#include "devmem.h"

#include "gpucheck.h"

/* Forward (statistics, running update, output), then backward from the
 * CPU's statistics so that only the backward is compared. Poisoned: the
 * channels holding a NaN/Inf come out all NaN on both sides; their
 * statistics may differ in kind (inf or nan), so those are compared on
 * clean data only. */
static void test_bn_train(int N, int C, int S, int affine, int running, int poisoned, int want_dx) {
    size_t n = (size_t)N * C * S;
    char name[96], tag[64];
    snprintf(tag, sizeof tag, "bn-train %d,%d,%d%s%s%s", N, C, S, affine ? " affine" : "",
             running ? " running" : "", poisoned ? " /nan" : "");
    float *x = h_normal(n, 71, 1.5f), *w = h_normal(C, 72, 1.0f), *b = h_normal(C, 73, 1.0f);
    float *rm = h_normal(C, 74, 0.5f), *rv = h_normal(C, 75, 1.0f), *dy = h_normal(n, 76, 1.0f);
    for (size_t i = 0; i < n; i++) x[i] += 3.0f; /* a mean away from 0 */
    for (int c = 0; c < C; c++) rv[c] = fabsf(rv[c]) + 0.1f;
    if (poisoned) poison(x, n);
    float *out = h_const(n, 0), *mean = h_const(C, 0), *rstd = h_const(C, 0);
    float *dx = h_const(n, 0.5f), *dw = h_const(C, 0.5f), *db = h_const(C, 0.5f);
    const float *wp = affine ? w : NULL, *bp = affine ? b : NULL;
    float *d_x = dev_copy(x, n), *d_w = dev_copy(w, C), *d_b = dev_copy(b, C), *d_dy = dev_copy(dy, n);
    float *d_rm = dev_copy(rm, C), *d_rv = dev_copy(rv, C), *d_out = dev_copy(out, n);
    float *d_mean = dev_copy(mean, C), *d_rstd = dev_copy(rstd, C);
    float *d_dx = dev_copy(dx, n), *d_dw = dev_copy(dw, C), *d_db = dev_copy(db, C);
    const float *d_wp = affine ? d_w : NULL, *d_bp = affine ? d_b : NULL;

    batchnorm_train_forward(out, mean, rstd, running ? rm : NULL, running ? rv : NULL, x, wp, bp,
                            N, C, S, 1e-5f, 0.1f);
    CHECK(batchnorm_train_forward_cuda(d_out, d_mean, d_rstd, running ? d_rm : NULL,
                                       running ? d_rv : NULL, d_x, d_wp, d_bp, N, C, S, 1e-5f,
                                       0.1f) == 0);
    snprintf(name, sizeof name, "%s out", tag);
    cmp(name, out, d_out, n, TOL_RED);
    if (!poisoned) {
        snprintf(name, sizeof name, "%s mean", tag);
        cmp(name, mean, d_mean, C, TOL_RED);
        snprintf(name, sizeof name, "%s rstd", tag);
        cmp(name, rstd, d_rstd, C, TOL_RED);
        snprintf(name, sizeof name, "%s running mean", tag); /* untouched when !running */
        cmp(name, rm, d_rm, C, TOL_RED);
        snprintf(name, sizeof name, "%s running var", tag);
        cmp(name, rv, d_rv, C, TOL_RED);
    }
    CHECK(lsdm_cuda_copy(d_mean, mean, C * sizeof *mean, 1) == 0);
    CHECK(lsdm_cuda_copy(d_rstd, rstd, C * sizeof *rstd, 1) == 0);
    batchnorm_train_backward(want_dx ? dx : NULL, affine ? dw : NULL, affine ? db : NULL, dy, x, wp,
                             mean, rstd, N, C, S);
    CHECK(batchnorm_train_backward_cuda(want_dx ? d_dx : NULL, affine ? d_dw : NULL,
                                        affine ? d_db : NULL, d_dy, d_x, d_wp, d_mean, d_rstd, N, C,
                                        S) == 0);
    snprintf(name, sizeof name, "%s dinp", tag); /* stays 0.5 when !want_dx */
    cmp(name, dx, d_dx, n, TOL_RED);
    snprintf(name, sizeof name, "%s dweight", tag);
    cmp(name, dw, d_dw, C, TOL_RED);
    snprintf(name, sizeof name, "%s dbias", tag);
    cmp(name, db, d_db, C, TOL_RED);
    cmp_guards_only(tag, d_x, n); /* inputs: nothing written around them either */
    cmp_guards_only(tag, d_dy, n);
    free(x), free(w), free(b), free(rm), free(rv), free(dy), free(out), free(mean), free(rstd);
    free(dx), free(dw), free(db);
    dev_free_all();
}

/* Forward is a copy (exact); backward adds in the CPU's order (exact too,
 * compared with TOL_EW all the same). */
static void test_pad(int NC, int D, int H, int W, const int pad[6], int mode, int poisoned) {
    pad3d_dims p;
    int in[3] = {D, H, W};
    CHECK(pad3d_dims_init(&p, NC, in, pad, mode) == 0);
    size_t ni = (size_t)NC * D * H * W, no = (size_t)NC * p.out[0] * p.out[1] * p.out[2];
    char name[96], tag[64];
    snprintf(tag, sizeof tag, "pad3d %s %d,%d,%d,%d%s", mode ? "replicate" : "zero", NC, D, H, W,
             poisoned ? " /nan" : "");
    float *x = h_normal(ni, 81, 1.0f), *dy = h_normal(no, 82, 1.0f);
    if (poisoned) poison(x, ni), poison(dy, no);
    float *out = h_const(no, 0), *dx = h_const(ni, 0.5f);
    float *d_x = dev_copy(x, ni), *d_dy = dev_copy(dy, no), *d_out = dev_copy(out, no);
    float *d_dx = dev_copy(dx, ni);
    pad3d_forward(out, x, &p);
    CHECK(pad3d_forward_cuda(d_out, d_x, &p) == 0);
    snprintf(name, sizeof name, "%s out", tag);
    cmp(name, out, d_out, no, 0);
    pad3d_backward(dx, dy, &p);
    CHECK(pad3d_backward_cuda(d_dx, d_dy, &p) == 0);
    snprintf(name, sizeof name, "%s dinp", tag);
    cmp(name, dx, d_dx, ni, TOL_EW);
    cmp_guards_only(tag, d_x, ni);
    cmp_guards_only(tag, d_dy, no);
    free(x), free(dy), free(out), free(dx);
    dev_free_all();
}
#endif

int main(void) {
    GPU_OR_SKIP("test_cuda_bnpad");
#ifdef LSDM_CUDA
    test_bn_train(3, 7, 999, 1, 1, 0, 1);
    test_bn_train(3, 7, 999, 1, 1, 1, 1);
    test_bn_train(2, 5, 1, 0, 0, 0, 1);        /* S = 1: the batch only */
    test_bn_train(4, 16, 4096, 1, 0, 0, 0);    /* parameter gradients only */
    test_bn_train(1, 3, 70001, 0, 1, 1, 1);    /* long channel, no affine */
    int p1[6] = {1, 2, 0, 1, 2, 0}, p2[6] = {2, 1, 3, 0, 1, 4}, p3[6] = {1, 1, 1, 1, 1, 1};
    test_pad(2, 3, 4, 5, p1, PAD3D_ZERO, 0);
    test_pad(2, 3, 4, 5, p1, PAD3D_REPLICATE, 0);
    test_pad(3, 1, 2, 1, p2, PAD3D_REPLICATE, 0); /* pads wider than the volume */
    test_pad(4, 9, 17, 33, p3, PAD3D_REPLICATE, 1);
    test_pad(4, 9, 17, 33, p2, PAD3D_ZERO, 1);
#endif
    return check_done("test_cuda_bnpad");
}
