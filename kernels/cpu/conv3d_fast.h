/* conv3d's fast float path (AVX-512, kernels/cpu/gemm_avx512.c), included
 * once by conv3d.c after the float instantiation of conv3d_impl.h, whose
 * vol2col, col2vol and add_bias it uses. Each pass returns -1 where it
 * does not apply (no AVX-512, LSDM_CPU_ISA=generic, a pointwise conv, too
 * few output channels to fill the register tile); the BLAS path then runs.
 *
 * Forward, tried in order: the short-K 1x1x1 kernel, Winograd F(2,3)
 * along W for 3-wide kernels (conv3d_wino.h), the implicit GEMM
 * (conv3d_implicit.h), then per slab of output rows and per block of <= 256
 * column-matrix rows: vol2col straight into 32-column panels, and the 8x32
 * micro-kernel against the weights packed once per call. Data gradient:
 * where it is a Winograd forward of dy (stride 1, zero padding), that;
 * else the weights packed transposed (per thread, its input channels), the
 * output gradient of a slab packed once, then per chunk of channels dcol =
 * W^T dy and col2vol. Weight gradient: Winograd with many channels, else
 * from channels-last input on the micro-kernel (conv3d_wgrad.h) where Cin
 * >= 16 and Cout >= 8; else (4 <= Cout <= 64) dot products of
 * output-gradient rows with column-matrix rows along the slab's voxels (no
 * packing). The packed paths' thread splits are those of the BLAS
 * path, so no two threads write one value. */
#include <stdint.h>

#include "gemm_avx512.h"

#define CF_BLOCK (64 * 1024) /* floats of a packed operand kept in L2 (256 KiB) */
#define CF_KC 256            /* forward: column-matrix rows per block */
#define CF_WROWS 1024        /* weight gradient: voxels per dot product */
#define CF_WCHUNK 48         /* weight gradient: column-matrix rows per chunk */
#define CF_WCO 64            /* weight gradient: output channels per block */
#define CF_ALIGN 16          /* floats: 64 bytes */

typedef struct {
    int kcf, rows_f;     /* forward: block of K, slab rows */
    int rows_x, cc, nch; /* data gradient: slab rows, channels per chunk, chunks per thread */
    int rows_w, kchunk;  /* weight gradient: slab rows, column rows per chunk */
    size_t ap_f, per_f;  /* floats: packed weights, per-thread forward buffers */
    size_t apc_x, per_x, per_w;
} conv3d_fast_plan;

static float *cf_align(float *p) {
    return (float *)(((uintptr_t)p + CF_ALIGN * sizeof(float) - 1) & ~(uintptr_t)(CF_ALIGN * sizeof(float) - 1));
}

/* Output rows (od,oh) per slab: about `cols` voxels, at least one row,
 * and at most a share giving each thread >= 2 slabs where the data allow. */
static int cf_rows(const conv3d_dims *d, size_t cols) {
    size_t all = (size_t)d->OD * d->OH, r = cols / (size_t)d->OW;
    size_t share = (all * d->N + 2 * d->threads - 1) / (2 * (size_t)d->threads);
    if (r > share) r = share;
    if (r < 1) r = 1;
    if (r > all) r = all;
    return (int)r;
}

static void conv3d_fast_plan_make(conv3d_fast_plan *p, const conv3d_dims *d) {
    const int kvol = d->kd * d->kh * d->kw, K = d->Cin * kvol, T = d->threads;
    int nk = (K + CF_KC - 1) / CF_KC;
    p->kcf = (K + nk - 1) / nk;
    p->rows_f = cf_rows(d, CF_BLOCK / p->kcf);
    size_t qf = (size_t)p->rows_f * d->OW;
    p->ap_f = gemm_pack_a_size(d->Cout, K) + CF_ALIGN;
    p->per_f = qf + gemm_pack_b_size(p->kcf, (int)qf) + 2 * CF_ALIGN; /* row, panels */

    p->rows_x = cf_rows(d, CF_BLOCK / d->Cout);
    size_t qx = (size_t)p->rows_x * d->OW;
    int cmax = (d->Cin + T - 1) / T;
    /* dcol of a chunk fills CF_BLOCK: at 3x3x3 with 64 output channels that
     * is 2 channels, 54 rows in 7 micro-kernel panels of 8, where half of
     * it (1 channel, 27 rows in 4 panels) took 11% longer */
    size_t cc = CF_BLOCK / ((size_t)kvol * qx);
    p->cc = cc < 1 ? 1 : cc > (size_t)cmax ? cmax : (int)cc;
    p->nch = (cmax + p->cc - 1) / p->cc;
    p->apc_x = gemm_pack_a_size(p->cc * kvol, d->Cout);
    p->per_x = p->nch * p->apc_x + gemm_pack_b_size(d->Cout, (int)qx) +
               (size_t)p->cc * kvol * qx + 3 * CF_ALIGN;

    p->rows_w = cf_rows(d, CF_WROWS);
    p->kchunk = K < CF_WCHUNK ? K : CF_WCHUNK;
    p->per_w = (size_t)p->kchunk * p->rows_w * d->OW + CF_ALIGN;
}

#include "conv3d_implicit.h" /* the forward's implicit GEMM, tried first */
#include "conv3d_wgrad.h"    /* the weight gradient from channels-last input, tried first */
#include "conv3d_wino.h"     /* Winograd F(2,3) along W: the UNet's (1,3,3) forward and dx */

/* What the forward alone needs: the packed path, the implicit GEMM and the
 * Winograd forward (not the gradients' paths, which can be larger). */
static size_t conv3d_fast_forward_workspace(const conv3d_dims *d) {
    conv3d_fast_plan p;
    conv3d_fast_plan_make(&p, d);
    size_t f = p.ap_f + d->threads * p.per_f, i = conv3d_implicit_workspace(d), w = conv3d_wino_workspace(d);
    f = f > i ? f : i;
    return f > w ? f : w;
}

/* What the gradients' paths need beyond that. */
static size_t conv3d_fast_backward_workspace(const conv3d_dims *d) {
    conv3d_fast_plan p;
    conv3d_fast_plan_make(&p, d);
    size_t m = d->threads * (p.per_x > p.per_w ? p.per_x : p.per_w);
    size_t g = conv3d_wgrad_workspace(d), ww = conv3d_wino_wgrad_workspace(d);
    m = m > g ? m : g;
    m = m > ww ? m : ww;
    conv3d_dims t;
    if (conv3d_wino_dgrad_dims(&t, d) == 0) { /* the data gradient's forward */
        size_t wt = conv3d_wino_workspace(&t);
        m = m > wt ? m : wt;
    }
    return m;
}

/* Rows [k0, k1) of the column matrix of output rows [r0, r1) straight
 * into 32-column panels (gemm_avx512.h's Bp layout with K = k1-k0), one
 * row at a time through `row` (q floats, stays in L1); the last panel's
 * unused columns are zeroed. */
static void conv3d_vol2col_packed(float *bp, float *row, const float *inp, const conv3d_dims *d,
                                  int r0, int r1, int k0, int k1) {
    const int q = (r1 - r0) * d->OW;
    const size_t ps = (size_t)(k1 - k0) * GEMM_NR; /* panel stride */
    for (int k = k0; k < k1; k++) {
        float *dst = bp + (size_t)(k - k0) * GEMM_NR;
        conv3d_vol2col_isa(row, inp, d, r0, r1, k, k + 1, 1);
        int c = 0;
        for (; c + GEMM_NR <= q; c += GEMM_NR, dst += ps)
            memcpy(dst, row + c, GEMM_NR * sizeof *dst);
        if (c < q) {
            memcpy(dst, row + c, (size_t)(q - c) * sizeof *dst);
            memset(dst + (q - c), 0, (size_t)(GEMM_NR - (q - c)) * sizeof *dst);
        }
    }
}

/* A 1x1x1 conv with at most 16 input channels (the VQ-GAN decoder's
 * 8 -> 64 input conv): bound by writing its output, which the short-K
 * kernel writes once, bias included, per block of 1024 voxels. */
static int conv3d_fast_pointwise(float *out, const float *inp, const float *weight,
                                 const float *bias, const conv3d_dims *d, float beta) {
    if (!conv3d_is_pointwise(d) || d->Cin > 16 || beta != 0.0f) return -1;
    const int P = d->OD * d->OH * d->OW, cols = 1024, nblk = (P + cols - 1) / cols;
    const size_t in_n = (size_t)d->Cin * P, out_n = (size_t)d->Cout * P;
#pragma omp parallel for schedule(static) num_threads(d->threads)
    for (int job = 0; job < d->N * nblk; job++) {
        int n = job / nblk, p0 = job % nblk * cols, q = P - p0 < cols ? P - p0 : cols;
        // y[:, p0:p0+q] (Cout, q) = W (Cout, Cin) . x[:, p0:p0+q] (Cin, q) + bias
        gemm_avx512_short_k(out + n * out_n + p0, P, weight, bias, inp + n * in_n + p0, P, d->Cout,
                            q, d->Cin);
    }
    return 0;
}

static int conv3d_fast_forward(float *out, float *work, const float *inp, const float *weight,
                               const float *bias, const conv3d_dims *d, float beta) {
    if (!gemm_avx512_usable()) return -1;
    if (conv3d_fast_pointwise(out, inp, weight, bias, d, beta) == 0) return 0;
    if (conv3d_wino_forward(out, work, inp, weight, bias, d, beta, 0) == 0) return 0;
    if (conv3d_implicit_forward(out, work, inp, weight, bias, d, beta) == 0) return 0;
    if (conv3d_is_pointwise(d) || d->Cout < GEMM_MR) return -1;
    conv3d_fast_plan p;
    conv3d_fast_plan_make(&p, d);
    const int P = d->OD * d->OH * d->OW, K = d->Cin * d->kd * d->kh * d->kw;
    const int rows = d->OD * d->OH, nslab = (rows + p.rows_f - 1) / p.rows_f;
    const int npanel = (d->Cout + GEMM_MR - 1) / GEMM_MR;
    const size_t in_n = (size_t)d->Cin * d->D * d->H * d->W, out_n = (size_t)d->Cout * P;
    const size_t qmax = (size_t)p.rows_f * d->OW;
    float *ap = cf_align(work);
#pragma omp parallel num_threads(d->threads)
    {
        float *col = cf_align(work + p.ap_f + omp_get_thread_num() * p.per_f);
        float *bp = cf_align(col + qmax);
#pragma omp for schedule(static)
        for (int i = 0; i < npanel; i++) { // W (Cout, K) into 8-row panels, once
            int mr = d->Cout - i * GEMM_MR < GEMM_MR ? d->Cout - i * GEMM_MR : GEMM_MR;
            gemm_pack_a(ap + (size_t)i * K * GEMM_MR, weight + (size_t)i * GEMM_MR * K, mr, K, K, 1);
        }
#pragma omp for schedule(static)
        for (int job = 0; job < d->N * nslab; job++) {
            int n = job / nslab, r0 = job % nslab * p.rows_f;
            int r1 = r0 + p.rows_f < rows ? r0 + p.rows_f : rows, q = (r1 - r0) * d->OW;
            float *y = out + n * out_n + (size_t)r0 * d->OW;
            for (int kb = 0; kb < K; kb += p.kcf) {
                int kc = K - kb < p.kcf ? K - kb : p.kcf;
                conv3d_vol2col_packed(bp, col, inp + n * in_n, d, r0, r1, kb, kb + kc);
                // y[:, slab] (Cout, q) (+)= W[:, kb:kb+kc] . col (kc, q)
                gemm_avx512_packed(y, P, ap + (size_t)kb * GEMM_MR, (size_t)K * GEMM_MR, bp,
                                   (size_t)kc * GEMM_NR, d->Cout, q, kc, kb ? 1.0f : beta);
            }
            if (bias) conv3d_add_bias(out + n * out_n, bias, d->Cout, P, (size_t)r0 * d->OW, q);
        }
    }
    return 0;
}

/* dinp += the data gradient; 0, or -1 if the fast path does not apply. */
static int conv3d_fast_data_grad(float *dinp, float *work, const float *dout, const float *weight,
                                 const conv3d_dims *d) {
    if (!work || !gemm_avx512_usable()) return -1;
    conv3d_dims t;
    if (conv3d_wino_dgrad_dims(&t, d) == 0 && conv3d_wino_forward(dinp, work, dout, weight, NULL, &t, 1.0f, 1) == 0)
        return 0;
    if (conv3d_is_pointwise(d) || d->Cout < GEMM_MR) return -1;
    conv3d_fast_plan p;
    conv3d_fast_plan_make(&p, d);
    const int P = d->OD * d->OH * d->OW, kvol = d->kd * d->kh * d->kw, K = d->Cin * kvol;
    const int rows = d->OD * d->OH;
    const size_t in_n = (size_t)d->Cin * d->D * d->H * d->W, out_n = (size_t)d->Cout * P;
    const size_t qmax = (size_t)p.rows_x * d->OW;
#pragma omp parallel num_threads(d->threads)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        int c0 = (int)((long)d->Cin * t / T), c1 = (int)((long)d->Cin * (t + 1) / T);
        float *ap = cf_align(work + t * p.per_x);
        float *bp = cf_align(ap + p.nch * p.apc_x);
        float *dcol = cf_align(bp + gemm_pack_b_size(d->Cout, (int)qmax));
        // W^T rows of my channels (c*kvol, Cout), one packed block per chunk
        for (int h = 0, ch = c0; ch < c1; h++, ch += p.cc) {
            int ncc = c1 - ch < p.cc ? c1 - ch : p.cc;
            gemm_pack_a(ap + h * p.apc_x, weight + (size_t)ch * kvol, ncc * kvol, d->Cout, 1, K);
        }
        for (int n = 0; n < d->N && c1 > c0; n++) {
            for (int r0 = 0; r0 < rows; r0 += p.rows_x) {
                int r1 = r0 + p.rows_x < rows ? r0 + p.rows_x : rows, q = (r1 - r0) * d->OW;
                gemm_pack_b(bp, dout + n * out_n + (size_t)r0 * d->OW, d->Cout, q, P);
                for (int h = 0, ch = c0; ch < c1; h++, ch += p.cc) {
                    int ncc = c1 - ch < p.cc ? c1 - ch : p.cc;
                    // dcol (ncc*kvol, q) = W[:, chunk]^T . dy[:, slab]
                    gemm_avx512_packed(dcol, q, ap + h * p.apc_x, (size_t)d->Cout * GEMM_MR, bp,
                                       (size_t)d->Cout * GEMM_NR, ncc * kvol, q, d->Cout, 0);
                    conv3d_col2vol(dinp + n * in_n, dcol, d, r0, r1, ch, ch + ncc);
                }
            }
        }
    }
    return 0;
}

/* dweight += the weight gradient; 0, or -1 if the fast path does not apply. */
static int conv3d_fast_weight_grad(float *dweight, float *work, const float *dout,
                                   const float *inp, const conv3d_dims *d) {
    if (!work || !gemm_avx512_usable()) return -1; /* no workspace: the GEMM path */
    if (conv3d_wino_wgrad(dweight, work, dout, inp, d) == 0) return 0;
    if (conv3d_wgrad_cl(dweight, work, dout, inp, d) == 0) return 0;
    if (conv3d_is_pointwise(d) || d->Cout < 4 || d->Cout > CF_WCO) return -1;
    conv3d_fast_plan p;
    conv3d_fast_plan_make(&p, d);
    const int P = d->OD * d->OH * d->OW, K = d->Cin * d->kd * d->kh * d->kw;
    const int rows = d->OD * d->OH;
    const size_t in_n = (size_t)d->Cin * d->D * d->H * d->W, out_n = (size_t)d->Cout * P;
#pragma omp parallel num_threads(d->threads)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        int k0 = (int)((long)K * t / T), k1 = (int)((long)K * (t + 1) / T);
        float *col = cf_align(work + t * p.per_w);
        for (int n = 0; n < d->N && k1 > k0; n++) {
            for (int r0 = 0; r0 < rows; r0 += p.rows_w) {
                int r1 = r0 + p.rows_w < rows ? r0 + p.rows_w : rows, q = (r1 - r0) * d->OW;
                const float *dys = dout + n * out_n + (size_t)r0 * d->OW;
                for (int a = k0; a < k1; a += p.kchunk) {
                    int b = a + p.kchunk < k1 ? a + p.kchunk : k1;
                    conv3d_vol2col_isa(col, inp + n * in_n, d, r0, r1, a, b, 1);
                    // dW[co block, a:b] += dy[co block, slab] . col (b-a, q)^T
                    for (int c = 0; c < d->Cout; c += CF_WCO)
                        gemm_avx512_nt(dweight + (size_t)c * K + a, K, dys + (size_t)c * P, P,
                                       col, q, d->Cout - c < CF_WCO ? d->Cout - c : CF_WCO,
                                       b - a, q);
                }
            }
        }
    }
    return 0;
}
