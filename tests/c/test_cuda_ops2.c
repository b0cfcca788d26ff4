/* CUDA kernels of the second engine batch (attention, rotary, relative
 * position bias, permute, conv_transpose3d, pooling) against the CPU ones on random
 * inputs, with the checks of test_cuda_ops.c: normalised error
 * max|gpu - cpu| / max|cpu| (finite entries), NaN/Inf parity where an
 * input is poisoned (a NaN, a +Inf and a -Inf), GUARD sentinel floats on
 * each side of every device buffer (outputs and workspaces), and
 * gradients that start at 0.5 so the accumulation (+=) is checked.
 * Skipped without a GPU. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "device.h"
#include "rng.h"
#include "attention.h"
#include "conv_transpose3d.h"
#include "pool.h"
#ifdef LSDM_CUDA
#include "cuda_handles.h"
#include "devmem.h"

#include "gpucheck.h"

/* Softmax attention: forward (out, att), and backward from the CPU's att
 * so that only the backward is compared. L >= ATTN_GEMM_MIN_L takes the
 * CPU's BLAS path, below it the CPU's loops; the GPU is the same for both.
 * Poisoned: q carries NaN/Inf, only the forward is compared. */
static void test_attention(int B, int H, int L, int dh, int with_bias, int poisoned) {
    size_t nx = (size_t)B * H * L * dh, na = (size_t)B * H * L * L, nb = (size_t)H * L * L;
    size_t nw = attention_workspace_size(B, H, L);
    float scale = 1.0f / sqrtf((float)dh);
    char name[96], tag[64];
    snprintf(tag, sizeof tag, "attention B%d H%d L%d dh%d%s%s", B, H, L, dh, with_bias ? " bias" : "",
             poisoned ? " /nan" : "");
    float *q = h_normal(nx, 101, 1.0f), *k = h_normal(nx, 102, 1.0f), *v = h_normal(nx, 103, 1.0f);
    float *bias = h_normal(nb, 104, 0.5f), *dy = h_normal(nx, 105, 1.0f);
    if (poisoned) poison(q, nx);
    float *out = h_const(nx, 0), *att = h_const(na, 0), *work = h_const(nw, 0);
    float *dq = h_const(nx, 0.5f), *dk = h_const(nx, 0.5f), *dv = h_const(nx, 0.5f), *db = h_const(nb, 0.5f);
    float *d_q = dev_copy(q, nx), *d_k = dev_copy(k, nx), *d_v = dev_copy(v, nx), *d_bias = dev_copy(bias, nb);
    float *d_dy = dev_copy(dy, nx), *d_out = dev_copy(out, nx), *d_att = dev_copy(att, na);
    float *d_work = dev_copy(work, nw), *d_dq = dev_copy(dq, nx), *d_dk = dev_copy(dk, nx);
    float *d_dv = dev_copy(dv, nx), *d_db = dev_copy(db, nb);
    const float *bp = with_bias ? bias : NULL, *d_bp = with_bias ? d_bias : NULL;

    attention_forward(out, att, q, k, v, bp, B, H, L, dh, scale);
    CHECK(attention_forward_cuda(d_out, d_att, d_q, d_k, d_v, d_bp, B, H, L, dh, scale) == 0);
    snprintf(name, sizeof name, "%s out", tag);
    cmp(name, out, d_out, nx, TOL_RED);
    snprintf(name, sizeof name, "%s att", tag);
    cmp(name, att, d_att, na, TOL_RED);
    if (!poisoned) {
        CHECK(lsdm_cuda_copy(d_att, att, na * sizeof *att, 1) == 0);
        attention_backward(dq, dk, dv, with_bias ? db : NULL, work, dy, q, k, v, att, B, H, L, dh, scale);
        CHECK(attention_backward_cuda(d_dq, d_dk, d_dv, with_bias ? d_db : NULL, d_work, d_dy, d_q, d_k, d_v,
                                      d_att, B, H, L, dh, scale) == 0);
        snprintf(name, sizeof name, "%s dq", tag);
        cmp(name, dq, d_dq, nx, TOL_RED);
        snprintf(name, sizeof name, "%s dk", tag);
        cmp(name, dk, d_dk, nx, TOL_RED);
        snprintf(name, sizeof name, "%s dv", tag);
        cmp(name, dv, d_dv, nx, TOL_RED);
        snprintf(name, sizeof name, "%s dbias", tag);
        cmp(name, db, d_db, nb, TOL_RED); /* untouched 0.5 without a bias */
        snprintf(name, sizeof name, "%s work", tag);
        cmp_guards_only(name, d_work, nw);
    }
    free(q), free(k), free(v), free(bias), free(dy), free(out), free(att), free(work);
    free(dq), free(dk), free(dv), free(db);
    dev_free_all();
}

/* Rotary: forward (also in place), backward accumulating; features past
 * rot_dim pass through. */
static void test_rotary(int B, int L, int dh, int rot) {
    size_t n = (size_t)B * L * dh, ncs = (size_t)L * rot;
    char name[96];
    float *x = h_normal(n, 111, 1.0f), *dy = h_normal(n, 112, 1.0f), *cs = h_const(ncs + 1, 0);
    poison(x, n);
    rotary_cos_sin(cs, L, rot);
    float *out = h_const(n, 0), *dx = h_const(n, 0.5f);
    float *d_x = dev_copy(x, n), *d_dy = dev_copy(dy, n), *d_cs = dev_copy(cs, ncs);
    float *d_out = dev_copy(out, n), *d_dx = dev_copy(dx, n), *d_y = dev_copy(x, n);
    rotary_forward(out, x, cs, B, L, dh, rot);
    CHECK(rotary_forward_cuda(d_out, d_x, d_cs, B, L, dh, rot) == 0);
    snprintf(name, sizeof name, "rotary dh%d rot%d forward", dh, rot);
    cmp(name, out, d_out, n, TOL_EW);
    CHECK(rotary_forward_cuda(d_y, d_y, d_cs, B, L, dh, rot) == 0);
    snprintf(name, sizeof name, "rotary dh%d rot%d in place", dh, rot);
    cmp(name, out, d_y, n, TOL_EW);
    rotary_backward(dx, dy, cs, B, L, dh, rot);
    CHECK(rotary_backward_cuda(d_dx, d_dy, d_cs, B, L, dh, rot) == 0);
    snprintf(name, sizeof name, "rotary dh%d rot%d backward", dh, rot);
    cmp(name, dx, d_dx, n, TOL_EW);
    /* an odd rot_dim is refused */
    CHECK(rotary_forward_cuda(d_out, d_x, d_cs, B, L, dh, rot - 1) == -1);
    free(x), free(dy), free(cs), free(out), free(dx);
    dev_free_all();
}

/* Relative position bias: the gather must be exact (same buckets), the
 * deterministic scatter-add close to the CPU's float sums. */
static void test_relpos(int H, int L, int nbk, int maxd) {
    size_t nt = (size_t)nbk * H, nb = (size_t)H * L * L;
    char name[96];
    float *table = h_normal(nt, 121, 1.0f), *dbias = h_normal(nb, 122, 1.0f);
    float *bias = h_const(nb, 0), *dt = h_const(nt, 0.5f);
    float *d_table = dev_copy(table, nt), *d_dbias = dev_copy(dbias, nb);
    float *d_bias = dev_copy(bias, nb), *d_dt = dev_copy(dt, nt);
    relpos_bias_forward(bias, table, H, L, nbk, maxd);
    CHECK(relpos_bias_forward_cuda(d_bias, d_table, H, L, nbk, maxd) == 0);
    snprintf(name, sizeof name, "relpos L%d nb%d md%d forward", L, nbk, maxd);
    cmp(name, bias, d_bias, nb, 0);
    relpos_bias_backward(dt, dbias, H, L, nbk, maxd);
    CHECK(relpos_bias_backward_cuda(d_dt, d_dbias, H, L, nbk, maxd) == 0);
    snprintf(name, sizeof name, "relpos L%d nb%d md%d backward", L, nbk, maxd);
    cmp(name, dt, d_dt, nt, TOL_RED);
    free(table), free(dbias), free(bias), free(dt);
    dev_free_all();
}

/* Permute: the UNet's temporal and spatial qkv permutations; forward is
 * a copy (exact), backward adds onto 0.5. A bad perm is refused. */
static void test_permute(int ndim, const int *shape, const int *perm) {
    size_t n = 1;
    for (int a = 0; a < ndim; a++) n *= (size_t)shape[a];
    char name[96];
    float *x = h_normal(n, 131, 1.0f), *dy = h_normal(n, 132, 1.0f);
    poison(x, n);
    float *out = h_const(n, 0), *dx = h_const(n, 0.5f);
    float *d_x = dev_copy(x, n), *d_dy = dev_copy(dy, n), *d_out = dev_copy(out, n), *d_dx = dev_copy(dx, n);
    permute_forward(out, x, ndim, shape, perm);
    CHECK(permute_forward_cuda(d_out, d_x, ndim, shape, perm) == 0);
    snprintf(name, sizeof name, "permute %dd forward", ndim);
    cmp(name, out, d_out, n, 0);
    permute_backward(dx, dy, ndim, shape, perm);
    CHECK(permute_backward_cuda(d_dx, d_dy, ndim, shape, perm) == 0);
    snprintf(name, sizeof name, "permute %dd backward", ndim);
    cmp(name, dx, d_dx, n, TOL_EW);
    int bad[PERMUTE_MAX_DIM];
    memcpy(bad, perm, ndim * sizeof *bad);
    bad[0] = bad[1];
    CHECK(permute_forward_cuda(d_out, d_x, ndim, shape, bad) == -1);
    free(x), free(dy), free(out), free(dx);
    dev_free_all();
}

/* conv_transpose3d through the adjoint conv3d on cuDNN: output padding,
 * a stride larger than the kernel (outputs no input reaches keep the
 * bias), dilation, the UNet's (1,4,4)/(1,2,2)/(0,1,1) upsampler. */
static void test_convt(int N, int Cin, int Cout, int D, int H, int W, int kd, int k, int sd, int s, int pd,
                       int p, int op, int dil, int with_bias) {
    conv_transpose3d_dims d = {.N = N, .Cin = Cin, .D = D, .H = H, .W = W, .Cout = Cout, .kd = kd, .kh = k,
                               .kw = k, .sd = sd, .sh = s, .sw = s, .pd = pd, .ph = p, .pw = p,
                               .opd = op < sd ? op : 0, .oph = op, .opw = op, .dd = dil, .dh = dil, .dw = dil};
    CHECK(conv_transpose3d_dims_init(&d) == 0);
    size_t ni = (size_t)N * Cin * D * H * W, no = (size_t)N * Cout * d.OD * d.OH * d.OW;
    size_t nw = (size_t)Cin * Cout * kd * k * k, gws = 0;
    CHECK(conv_transpose3d_workspace_size_cuda(&gws, &d) == 0);
    char name[112], tag[80];
    snprintf(tag, sizeof tag, "convt k%dx%d s%dx%d p%dx%d op%d d%d", kd, k, sd, s, pd, p, op, dil);
    float *x = h_normal(ni, 141, 1.0f), *w = h_normal(nw, 142, 0.2f), *b = h_normal(Cout, 143, 1.0f);
    float *dy = h_normal(no, 144, 1.0f), *cw = h_const(conv_transpose3d_workspace_size(&d) + 1, 0);
    float *out = h_const(no, 0), *dx = h_const(ni, 0.5f), *dw = h_const(nw, 0.5f), *db = h_const(Cout, 0.5f);
    float *gw = h_const(gws + 1, 0);
    float *d_x = dev_copy(x, ni), *d_w = dev_copy(w, nw), *d_b = dev_copy(b, Cout), *d_dy = dev_copy(dy, no);
    float *d_out = dev_copy(out, no), *d_dx = dev_copy(dx, ni), *d_dw = dev_copy(dw, nw);
    float *d_db = dev_copy(db, Cout), *d_work = dev_copy(gw, gws);
    const float *bp = with_bias ? b : NULL, *d_bp = with_bias ? d_b : NULL;
    conv_transpose3d_forward(out, cw, x, w, bp, &d);
    CHECK(conv_transpose3d_forward_cuda(d_out, d_work, d_x, d_w, d_bp, &d) == 0);
    snprintf(name, sizeof name, "%s out", tag);
    cmp(name, out, d_out, no, TOL_RED);
    conv_transpose3d_backward(dx, dw, db, cw, dy, x, w, &d);
    CHECK(conv_transpose3d_backward_cuda(d_dx, d_dw, d_db, d_work, d_dy, d_x, d_w, &d) == 0);
    cmp_conv_grads(tag, dx, d_dx, ni, dw, d_dw, nw, db, d_db, Cout);
    cmp_guards_only(tag, d_work, gws);

    /* a NaN in the input: every output the CPU makes NaN must be NaN on the
     * GPU (cuDNN's transform algorithms may spread it further: counted,
     * not failed); outputs finite on both still agree */
    x[ni / 2] = NAN;
    CHECK(lsdm_cuda_copy(d_x, x, ni * sizeof *x, 1) == 0);
    conv_transpose3d_forward(out, cw, x, w, bp, &d);
    CHECK(conv_transpose3d_forward_cuda(d_out, d_work, d_x, d_w, d_bp, &d) == 0);
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
    printf("%-34s NaN outputs cpu %zu, gpu misses %zu, gpu extra %zu, err %.3g\n", tag, cpu_nan, missing,
           extra, sc > 0 ? m / sc : m);
    CHECK(cpu_nan > 0);
    CHECK(missing == 0);
    CHECK((sc > 0 ? m / sc : m) <= TOL_RED);
    free(g);
    free(x), free(w), free(b), free(dy), free(cw), free(out), free(dx), free(dw), free(db), free(gw);
    dev_free_all();
}

/* Pooling: max (values and argmax indices exact, a NaN wins), average
 * with and without count_include_pad; backwards gather on the GPU, scatter
 * on the CPU. */
static void test_pool(int NC, int D, int H, int W, int k, int s, int pd) {
    pool3d_dims p;
    int in[3] = {D, H, W}, kk[3] = {k, k, k}, ss[3] = {s, s, s}, pp[3] = {pd, pd, pd};
    CHECK(pool3d_dims_init(&p, NC, in, kk, ss, pp) == 0);
    size_t ni = (size_t)NC * D * H * W, no = (size_t)NC * p.out[0] * p.out[1] * p.out[2];
    char name[96], tag[64];
    snprintf(tag, sizeof tag, "pool k%d s%d p%d", k, s, pd);
    float *x = h_normal(ni, 151, 1.0f), *dy = h_normal(no, 152, 1.0f);
    poison(x, ni);
    float *out = h_const(no, 0), *dx = h_const(ni, 0.5f), *fidx = h_const(no, 0);
    int *idx = malloc(no * sizeof *idx), *gidx = malloc(no * sizeof *gidx);
    float *d_x = dev_copy(x, ni), *d_dy = dev_copy(dy, no), *d_out = dev_copy(out, no);
    float *d_dx = dev_copy(dx, ni);
    int *d_idx = (int *)dev_copy(fidx, no); /* int and float are both 4 bytes: same guards */
    maxpool3d_forward(out, idx, x, &p);
    CHECK(maxpool3d_forward_cuda(d_out, d_idx, d_x, &p) == 0);
    snprintf(name, sizeof name, "%s max out", tag);
    cmp(name, out, d_out, no, 0);
    CHECK(lsdm_cuda_copy(gidx, d_idx, no * sizeof *gidx, 0) == 0);
    size_t bad = 0;
    for (size_t i = 0; i < no; i++) bad += idx[i] != gidx[i];
    printf("%-34s argmax mismatches %zu of %zu\n", tag, bad, no);
    CHECK(bad == 0);
    cmp_guards_only(name, (const float *)d_idx, no);
    CHECK(lsdm_cuda_copy(d_idx, idx, no * sizeof *idx, 1) == 0);
    maxpool3d_backward(dx, dy, idx, &p);
    CHECK(maxpool3d_backward_cuda(d_dx, d_dy, d_idx, &p) == 0);
    snprintf(name, sizeof name, "%s max dinp", tag);
    cmp(name, dx, d_dx, ni, TOL_EW);
    for (int incl = 0; incl <= 1; incl++) {
        avgpool3d_forward(out, x, &p, incl);
        CHECK(avgpool3d_forward_cuda(d_out, d_x, &p, incl) == 0);
        snprintf(name, sizeof name, "%s avg%s out", tag, incl ? " incl" : "");
        cmp(name, out, d_out, no, TOL_EW);
        avgpool3d_backward(dx, dy, &p, incl);
        CHECK(avgpool3d_backward_cuda(d_dx, d_dy, &p, incl) == 0);
        snprintf(name, sizeof name, "%s avg%s dinp", tag, incl ? " incl" : "");
        cmp(name, dx, d_dx, ni, TOL_EW);
    }
    free(x), free(dy), free(out), free(dx), free(fidx), free(idx), free(gidx);
    dev_free_all();
}
#endif

int main(void) {
    GPU_OR_SKIP("test_cuda_ops2");
#ifdef LSDM_CUDA
    test_attention(3, 2, 8, 16, 1, 0);   /* temporal: short rows, bias */
    test_attention(3, 2, 8, 16, 1, 1);
    test_attention(2, 2, 70, 8, 0, 0);   /* the CPU's BLAS path, L not a multiple of 32 */
    test_attention(1, 3, 100, 12, 1, 0);
    test_rotary(6, 9, 10, 8);
    test_rotary(4, 7, 16, 16);
    test_relpos(3, 40, 32, 32);          /* the reference: 32 buckets, max distance 32 */
    test_relpos(2, 70, 32, 128);         /* distances past max_distance */
    {
        int shape[6] = {2, 3, 2, 4, 5, 6}, tperm[6] = {1, 0, 5, 2, 4, 3}, sperm[6] = {1, 0, 4, 2, 5, 3};
        test_permute(6, shape, tperm);
        test_permute(6, shape, sperm);
        int s5[5] = {2, 3, 5, 4, 7}, back[5] = {0, 2, 4, 3, 1};
        test_permute(5, s5, back);
    }
    test_convt(2, 3, 4, 4, 5, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1);  /* k3 s2 p1 op1 */
    test_convt(1, 4, 3, 3, 6, 5, 1, 4, 1, 2, 0, 1, 0, 1, 1);  /* the UNet upsampler */
    test_convt(2, 3, 2, 3, 4, 5, 1, 1, 2, 3, 0, 0, 0, 1, 1);  /* stride > kernel: gaps keep the bias */
    test_convt(1, 2, 3, 4, 4, 4, 3, 3, 1, 1, 2, 2, 0, 2, 0);  /* dilation 2, no bias */
    test_convt(1, 16, 16, 6, 8, 8, 3, 3, 2, 2, 1, 1, 1, 1, 1); /* cuDNN may pick another algo */
    test_pool(3, 6, 7, 8, 2, 2, 0);   /* the segmenter's downsampling */
    test_pool(2, 7, 6, 5, 3, 2, 1);   /* overlapping windows, padding */
    test_pool(2, 5, 9, 4, 3, 1, 1);
    lsdm_cuda_handles_free();
#endif
    return check_done("test_cuda_ops2");
}
