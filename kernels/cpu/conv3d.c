/* conv3d on the CPU: sizes, workspace, and the float and double kernels
 * generated from one source text (conv3d_impl.h). */
#include <cblas.h>
#include <limits.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conv3d.h"
#include "err.h"
#include "gemm_avx512.h"

/* the fast float path (conv3d_fast.h), tried first by the float kernels */
static int conv3d_fast_forward(float *out, float *work, const float *inp, const float *weight,
                               const float *bias, const conv3d_dims *d, float beta);
static int conv3d_fast_data_grad(float *dinp, float *work, const float *dout, const float *weight,
                                 const conv3d_dims *d);
static int conv3d_fast_weight_grad(float *dweight, float *work, const float *dout,
                                   const float *inp, const conv3d_dims *d);
static size_t conv3d_fast_forward_workspace(const conv3d_dims *d);
static size_t conv3d_fast_backward_workspace(const conv3d_dims *d);

/* Default column elements per slab: 256 Ki floats = 1 MiB, which keeps the
 * slab's column matrix in a core's L2 while BLAS packs and multiplies it
 * (measured on the reference shapes, see bench/RESULTS.md). */
#define CONV3D_SLAB_DEFAULT (256 * 1024)

void conv3d_blas_threads(void) {
    if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
}

static int conv3d_out_size(int in, int k, int s, int p, int dil) {
    long span = (long)dil * (k - 1) + 1;
    long avail = (long)in + 2L * p - span;
    return avail < 0 ? 0 : (int)(avail / s + 1);
}

int conv3d_dims_init(conv3d_dims *d) {
    if (d->sd == 0) d->sd = 1;
    if (d->sh == 0) d->sh = 1;
    if (d->sw == 0) d->sw = 1;
    if (d->dd == 0) d->dd = 1;
    if (d->dh == 0) d->dh = 1;
    if (d->dw == 0) d->dw = 1;
    if (d->N < 1 || d->Cin < 1 || d->Cout < 1 || d->D < 1 || d->H < 1 || d->W < 1)
        return lsdm_err("conv3d: sizes must be positive (N %d, Cin %d, Cout %d, %dx%dx%d)",
                        d->N, d->Cin, d->Cout, d->D, d->H, d->W);
    if (d->kd < 1 || d->kh < 1 || d->kw < 1)
        return lsdm_err("conv3d: kernel %dx%dx%d must be positive", d->kd, d->kh, d->kw);
    if (d->sd < 1 || d->sh < 1 || d->sw < 1 || d->dd < 1 || d->dh < 1 || d->dw < 1)
        return lsdm_err("conv3d: stride and dilation must be positive");
    if (d->pd < 0 || d->ph < 0 || d->pw < 0)
        return lsdm_err("conv3d: padding must not be negative");
    if (d->pad_mode != CONV3D_PAD_ZERO && d->pad_mode != CONV3D_PAD_REPLICATE)
        return lsdm_err("conv3d: unknown padding mode %d", d->pad_mode);
    if (d->slab < 0) return lsdm_err("conv3d: negative slab size");
    if (d->threads < 0) return lsdm_err("conv3d: negative thread count");
    if (d->threads == 0) d->threads = omp_get_max_threads();
    conv3d_blas_threads();
    d->OD = conv3d_out_size(d->D, d->kd, d->sd, d->pd, d->dd);
    d->OH = conv3d_out_size(d->H, d->kh, d->sh, d->ph, d->dh);
    d->OW = conv3d_out_size(d->W, d->kw, d->sw, d->pw, d->dw);
    if (d->OD < 1 || d->OH < 1 || d->OW < 1)
        return lsdm_err("conv3d: kernel larger than the padded input (%dx%dx%d)", d->D, d->H, d->W);
    /* per-sample offsets are size_t, but BLAS takes int sizes and strides */
    int64_t in = (int64_t)d->Cin * d->D * d->H * d->W;
    int64_t out = (int64_t)d->Cout * d->OD * d->OH * d->OW;
    int64_t kk = (int64_t)d->Cin * d->kd * d->kh * d->kw;
    if (in > INT_MAX || out > INT_MAX || kk * d->Cout > INT_MAX)
        return lsdm_err("conv3d: tensor too large for one sample");
    return 0;
}

static int conv3d_is_pointwise(const conv3d_dims *d) {
    return d->kd == 1 && d->kh == 1 && d->kw == 1 && d->sd == 1 && d->sh == 1 &&
           d->sw == 1 && d->pd == 0 && d->ph == 0 && d->pw == 0;
}

/* A 1x1x1 conv with few channels moves far more bytes than it computes:
 * it runs in blocks of output columns that stay in L2 (bias added while
 * there), and its backward reads each block of dy once for all three
 * gradients, the weight and bias parts summed per block into `work` and
 * then over the blocks in order, so that the result does not depend on
 * the thread count. */
#define CONV3D_PW_SMALL 4096  /* Cout*Cin at most: the fused backward */
#define CONV3D_PW_BLOCKS 256  /* blocks of the fused backward at most */

static int conv3d_pw_small(const conv3d_dims *d) {
    return conv3d_is_pointwise(d) && (long)d->Cout * d->Cin <= CONV3D_PW_SMALL;
}

/* Columns per block: about 64 Ki output floats, a multiple of 16; for the
 * fused backward also at least P / CONV3D_PW_BLOCKS. */
static int conv3d_pw_cols(const conv3d_dims *d, int backward) {
    long P = (long)d->OD * d->OH * d->OW, c = (64L * 1024 / d->Cout) & ~15L;
    if (c < 256) c = 256;
    if (backward && c * CONV3D_PW_BLOCKS < P) c = (P + CONV3D_PW_BLOCKS - 1) / CONV3D_PW_BLOCKS;
    return (int)(c < P ? c : P);
}

/* Output rows (od,oh pairs) per slab: as many as fit in the slab budget
 * (of one thread), at least one. */
static int conv3d_slab_rows(const conv3d_dims *d) {
    size_t K = (size_t)d->Cin * d->kd * d->kh * d->kw;
    size_t budget = d->slab ? (size_t)d->slab : CONV3D_SLAB_DEFAULT;
    size_t rows = budget / (K * (size_t)d->OW);
    size_t all = (size_t)d->OD * d->OH;
    if (rows < 1) rows = 1;
    if (rows > all) rows = all;
    return (int)rows;
}

size_t conv3d_forward_workspace_size(const conv3d_dims *d) {
    if (conv3d_is_pointwise(d)) return 0;
    size_t K = (size_t)d->Cin * d->kd * d->kh * d->kw;
    size_t blas = (size_t)d->threads * K * (size_t)conv3d_slab_rows(d) * d->OW; /* one slab per thread */
    size_t fast = conv3d_fast_forward_workspace(d); /* whichever path runs */
    return blas > fast ? blas : fast;
}

size_t conv3d_workspace_size(const conv3d_dims *d) {
    if (conv3d_pw_small(d)) { /* the fused backward's per-block sums */
        long P = (long)d->OD * d->OH * d->OW, cols = conv3d_pw_cols(d, 1);
        return (size_t)((P + cols - 1) / cols) * ((size_t)d->Cout * d->Cin + d->Cout);
    }
    if (conv3d_is_pointwise(d)) return 0;
    /* the BLAS backward's slabs are the forward's */
    size_t f = conv3d_forward_workspace_size(d), b = conv3d_fast_backward_workspace(d);
    return f > b ? f : b;
}

double conv3d_flops(const conv3d_dims *d) {
    return 2.0 * d->N * d->Cout * d->OD * d->OH * d->OW * d->Cin * d->kd * d->kh * d->kw;
}

#define real float
#define FN(x) x
#define GEMM cblas_sgemm
#define CONV3D_FAST
#include "conv3d_impl.h"
#undef CONV3D_FAST
#undef real
#undef FN
#undef GEMM
#include "conv3d_fast.h"

#define real double
#define FN(x) x##_f64
#define GEMM cblas_dgemm
#include "conv3d_impl.h"
#undef real
#undef FN
#undef GEMM
