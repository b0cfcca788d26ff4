/* CUDA kernels of the third engine batch (linear attention, timestep
 * embedding, 3D interpolation) against the CPU ones on random inputs,
 * with the checks of test_cuda_ops2.c: normalised error max|gpu - cpu| /
 * max|cpu| (finite entries), NaN/Inf parity where an input is poisoned (a
 * NaN, a +Inf and a -Inf), GUARD sentinel floats on each side of every
 * device buffer (outputs and workspaces), and gradients that start at 0.5
 * so the accumulation (+=) is checked. Skipped without a GPU. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "device.h"
#include "rng.h"
#include "interpolate.h"
#include "linear_attention.h"
#include "timestep_embedding.h"
#ifdef LSDM_CUDA
#include "cuda_handles.h"
#include "devmem.h"

#include "gpucheck.h"

/* Linear attention: forward (out and the saved qs, ks, ctx), then the
 * backward from the CPU's saved tensors so that only the backward is
 * compared. Poisoned: qkv carries NaN/Inf, only the forward is compared. */
static void test_linear_attention(int B, int H, int dh, int F, int N, int poisoned) {
    size_t n = (size_t)B * H * dh * F * N, nc = (size_t)B * F * H * dh * dh;
    size_t nw = linear_attention_workspace_size(B, H, dh, F, N);
    float scale = 1.0f / sqrtf((float)dh);
    char name[112], tag[80];
    snprintf(tag, sizeof tag, "linattn B%d H%d dh%d F%d N%d%s", B, H, dh, F, N, poisoned ? " /nan" : "");
    float *qkv = h_normal(3 * n, 201, 1.0f), *dy = h_normal(n, 202, 1.0f);
    if (poisoned) poison(qkv, 3 * n);
    float *out = h_const(n, 0), *qs = h_const(n, 0), *ks = h_const(n, 0), *ctx = h_const(nc, 0);
    float *work = h_const(nw, 0), *dqkv = h_const(3 * n, 0.5f);
    float *d_qkv = dev_copy(qkv, 3 * n), *d_dy = dev_copy(dy, n), *d_out = dev_copy(out, n);
    float *d_qs = dev_copy(qs, n), *d_ks = dev_copy(ks, n), *d_ctx = dev_copy(ctx, nc);
    float *d_work = dev_copy(work, nw), *d_dqkv = dev_copy(dqkv, 3 * n);

    linear_attention_forward(out, qs, ks, ctx, qkv, B, H, dh, F, N, scale);
    CHECK(linear_attention_forward_cuda(d_out, d_qs, d_ks, d_ctx, d_qkv, B, H, dh, F, N, scale) == 0);
    snprintf(name, sizeof name, "%s out", tag);
    cmp(name, out, d_out, n, TOL_RED);
    snprintf(name, sizeof name, "%s qs", tag);
    cmp(name, qs, d_qs, n, TOL_RED);
    snprintf(name, sizeof name, "%s ks", tag);
    cmp(name, ks, d_ks, n, TOL_RED);
    snprintf(name, sizeof name, "%s ctx", tag);
    cmp(name, ctx, d_ctx, nc, TOL_RED);
    if (!poisoned) {
        CHECK(lsdm_cuda_copy(d_qs, qs, n * sizeof *qs, 1) == 0);
        CHECK(lsdm_cuda_copy(d_ks, ks, n * sizeof *ks, 1) == 0);
        CHECK(lsdm_cuda_copy(d_ctx, ctx, nc * sizeof *ctx, 1) == 0);
        linear_attention_backward(dqkv, work, dy, qkv, qs, ks, ctx, B, H, dh, F, N, scale);
        CHECK(linear_attention_backward_cuda(d_dqkv, d_work, d_dy, d_qkv, d_qs, d_ks, d_ctx, B, H, dh, F, N,
                                             scale) == 0);
        snprintf(name, sizeof name, "%s dqkv", tag);
        cmp(name, dqkv, d_dqkv, 3 * n, TOL_RED);
        snprintf(name, sizeof name, "%s work", tag);
        cmp_guards_only(name, d_work, nw);
    }
    /* nonsense sizes are refused before anything runs */
    CHECK(linear_attention_forward_cuda(d_out, d_qs, d_ks, d_ctx, d_qkv, B, H, 0, F, N, scale) == -1);
    free(qkv), free(dy), free(out), free(qs), free(ks), free(ctx), free(work), free(dqkv);
    dev_free_all();
}

/* Timestep embedding: diffusion timesteps 0..999 with fractions; the
 * poisoned t gives whole NaN rows on both sides. */
static void test_timestep(int B, int dim, int poisoned) {
    size_t n = (size_t)B * dim;
    char name[96];
    float *t = h_const(B, 0), *dy = h_normal(n, 212, 1.0f);
    for (int b = 0; b < B; b++) t[b] = (float)((b * 389) % 1000) + 0.25f * (float)(b % 4);
    if (poisoned) poison(t, B);
    float *out = h_const(n, 0), *dt = h_const(B, 0.5f);
    float *d_t = dev_copy(t, B), *d_dy = dev_copy(dy, n), *d_out = dev_copy(out, n), *d_dt = dev_copy(dt, B);
    timestep_embedding_forward(out, t, B, dim);
    CHECK(timestep_embedding_forward_cuda(d_out, d_t, B, dim) == 0);
    snprintf(name, sizeof name, "timestep B%d dim%d%s out", B, dim, poisoned ? " /nan" : "");
    cmp(name, out, d_out, n, TOL_EW);
    timestep_embedding_backward(dt, dy, t, B, dim);
    CHECK(timestep_embedding_backward_cuda(d_dt, d_dy, d_t, B, dim) == 0);
    snprintf(name, sizeof name, "timestep B%d dim%d%s dt", B, dim, poisoned ? " /nan" : "");
    cmp(name, dt, d_dt, B, TOL_EW);
    CHECK(timestep_embedding_forward_cuda(d_out, d_t, B, dim + 1) == -1); /* odd dim */
    free(t), free(dy), free(out), free(dt);
    dev_free_all();
}

/* Interpolation by sizes (out) or factors (scale): the input and the
 * output gradient are poisoned, so NaN/Inf parity covers both directions
 * (the GPU's gather must add the same terms, zero weights included, as
 * the CPU's scatter). Nearest forward is a copy: exact. */
static void test_interp(const char *tag, int NC, const int in[3], const int *osz, const double *sc,
                        interp_mode mode, int align) {
    interp3d_dims d;
    CHECK(interp3d_dims_init(&d, NC, in, osz, sc, mode, align) == 0);
    size_t ni = (size_t)NC * in[0] * in[1] * in[2], no = (size_t)NC * d.out[0] * d.out[1] * d.out[2];
    char name[96];
    float *x = h_normal(ni, 221, 1.0f), *dy = h_normal(no, 222, 1.0f);
    poison(x, ni);
    poison(dy, no);
    float *out = h_const(no, 0), *dx = h_const(ni, 0.5f);
    float *d_x = dev_copy(x, ni), *d_dy = dev_copy(dy, no), *d_out = dev_copy(out, no), *d_dx = dev_copy(dx, ni);
    interp3d_forward(out, x, &d);
    CHECK(interp3d_forward_cuda(d_out, d_x, &d) == 0);
    snprintf(name, sizeof name, "interp %s out", tag);
    cmp(name, out, d_out, no, mode == INTERP_TRILINEAR ? TOL_EW : 0);
    interp3d_backward(dx, dy, &d);
    CHECK(interp3d_backward_cuda(d_dx, d_dy, &d) == 0);
    snprintf(name, sizeof name, "interp %s dinp", tag);
    cmp(name, dx, d_dx, ni, mode == INTERP_TRILINEAR ? TOL_RED : TOL_EW);
    interp3d_dims bad = d;
    bad.NC = 0;
    CHECK(interp3d_forward_cuda(d_out, d_x, &bad) == -1);
    free(x), free(dy), free(out), free(dx);
    dev_free_all();
}
#endif

int main(void) {
    GPU_OR_SKIP("test_cuda_ops3");
#ifdef LSDM_CUDA
    test_linear_attention(2, 2, 8, 3, 20, 0);  /* volume slices, N not a multiple of 32 */
    test_linear_attention(2, 2, 8, 3, 20, 1);
    test_linear_attention(1, 4, 32, 2, 64, 0); /* the reference head size */
    test_linear_attention(1, 2, 16, 1, 100, 0); /* a plain sequence (F = 1) */
    test_timestep(8, 64, 0);
    test_timestep(8, 64, 1);
    test_timestep(3, 6, 0);                     /* the smallest dim */
    {
        int a[3] = {4, 5, 6}, b[3] = {8, 9, 10}, c[3] = {5, 6, 7}, d[3] = {3, 7, 4};
        int up2[3] = {8, 10, 12}, down[3] = {4, 5, 3}, odd[3] = {9, 4, 13}, same[3] = {3, 7, 4};
        double s1[3] = {1.5, 2.5, 0.6}, s2[3] = {2, 2, 2}, s3[3] = {1.7, 0.5, 3};
        test_interp("nearest x2", 3, a, up2, NULL, INTERP_NEAREST, 0);        /* the o>>1 shortcut */
        test_interp("nearest down", 3, b, down, NULL, INTERP_NEAREST, 0);
        test_interp("nearest scale", 2, c, NULL, s1, INTERP_NEAREST, 0);
        test_interp("nearest-exact scale", 2, c, NULL, s1, INTERP_NEAREST_EXACT, 0);
        test_interp("nearest-exact down", 3, b, down, NULL, INTERP_NEAREST_EXACT, 0);
        test_interp("trilinear x2", 2, a, NULL, s2, INTERP_TRILINEAR, 0);
        test_interp("trilinear scale", 2, c, NULL, s3, INTERP_TRILINEAR, 0);
        test_interp("trilinear down", 3, b, down, NULL, INTERP_TRILINEAR, 0);
        test_interp("trilinear ac", 2, c, odd, NULL, INTERP_TRILINEAR, 1);
        test_interp("trilinear ac down", 3, b, down, NULL, INTERP_TRILINEAR, 1);
        test_interp("trilinear same", 2, d, same, NULL, INTERP_TRILINEAR, 0);
    }
    lsdm_cuda_handles_free();
#endif
    return check_done("test_cuda_ops3");
}
