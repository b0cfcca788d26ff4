/* Body of linear_attention.c, included twice (float, double): real,
 * FN(x), GEMM. No include guard on purpose.
 *
 * Every (b, f, head) slice is a dh x N matrix with row stride F*N inside
 * its (B, C, F, N) tensor; the helpers below give its start. */

/* softmax along a strided run of n values, in place; the backward turns
 * a gradient g of the softmax output p into p * (g - <p, g>), added to dx. */
static void FN(la_softmax)(real *x, const real *src, int n, long stride) {
    real mx = src[0], sum = 0;
    for (int i = 1; i < n; i++) mx = src[i * stride] > mx ? src[i * stride] : mx;
    for (int i = 0; i < n; i++) { x[i * stride] = EXP(src[i * stride] - mx); sum += x[i * stride]; }
    for (int i = 0; i < n; i++) x[i * stride] /= sum;
}

static void FN(la_softmax_backward)(real *dx, const real *g, const real *p, int n, long stride) {
    real dot = 0;
    for (int i = 0; i < n; i++) dot += p[i * stride] * g[i * stride];
    for (int i = 0; i < n; i++) dx[i * stride] += p[i * stride] * (g[i * stride] - dot);
}

/* The same two along d for w (<= LA_NC) neighbouring columns at once:
 * rows of stride ld are read whole, so the loops over the columns are
 * contiguous and vectorise. Per element, the same operations in the same
 * order as la_softmax / la_softmax_backward above. */
static void FN(la_softmax_cols)(real *restrict x, const real *restrict src, int n, int w, long ld) {
    real mx[LA_NC], sum[LA_NC];
    for (int c = 0; c < w; c++) mx[c] = src[c], sum[c] = 0;
    for (int i = 1; i < n; i++)
        SIMD
        for (int c = 0; c < w; c++) mx[c] = src[i * ld + c] > mx[c] ? src[i * ld + c] : mx[c];
    for (int i = 0; i < n; i++)
        for (int c = 0; c < w; c++) { x[i * ld + c] = EXP(src[i * ld + c] - mx[c]); sum[c] += x[i * ld + c]; }
    for (int i = 0; i < n; i++)
        SIMD
        for (int c = 0; c < w; c++) x[i * ld + c] /= sum[c];
}

static void FN(la_softmax_cols_backward)(real *restrict dx, const real *restrict g, const real *restrict p,
                                         int n, int w, long ld) {
    real dot[LA_NC];
    for (int c = 0; c < w; c++) dot[c] = 0;
    for (int i = 0; i < n; i++)
        SIMD
        for (int c = 0; c < w; c++) dot[c] += p[i * ld + c] * g[i * ld + c];
    for (int i = 0; i < n; i++)
        SIMD
        for (int c = 0; c < w; c++) dx[i * ld + c] += p[i * ld + c] * (g[i * ld + c] - dot[c]);
}

void FN(linear_attention_forward)(real *out, real *qs, real *ks, real *ctx,
                                  const real *qkv, int B, int H, int dh, int F, int N, real scale) {
    long FN_ = (long)F * N, C = (long)H * dh;
    // qs: softmax over d of each column (b, head, f, n), LA_NC columns at a time
    long nch = (FN_ + LA_NC - 1) / LA_NC;
    #pragma omp parallel for
    for (long t = 0; t < (long)B * H * nch; t++) {
        long b = t / (H * nch), h = t / nch % H, n0 = t % nch * LA_NC;
        int w = (int)(FN_ - n0 < LA_NC ? FN_ - n0 : LA_NC);
        FN(la_softmax_cols)(qs + (b * C + h * dh) * FN_ + n0, qkv + (b * 3 * C + h * dh) * FN_ + n0, dh, w, FN_);
    }
    // ks: softmax over n of each row (b, head, d, f)
    #pragma omp parallel for
    for (long row = 0; row < (long)B * C * F; row++) {
        long b = row / (C * F), cf = row % (C * F);
        FN(la_softmax)(ks + row * N, qkv + (b * 3 * C + C) * FN_ + cf * N, N, 1);
    }
    /* slices write disjoint parts of ctx and out; BLAS is single-threaded
     * inside (lsdm_cli_engine_setup), so the threads are ours */
    #pragma omp parallel for schedule(static)
    for (long s = 0; s < (long)B * F * H; s++) {
        long b = s / (F * H), f = s / H % F, h = s % H;
        const real *ksl = ks + (b * C + h * dh) * FN_ + f * N;
        const real *qsl = qs + (b * C + h * dh) * FN_ + f * N;
        const real *v = qkv + (b * 3 * C + 2 * C + h * dh) * FN_ + f * N;
        real *c = ctx + s * dh * dh;
        // ctx = ks v^T (dh x dh); out = scale ctx^T qs (dh x N)
        GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, dh, dh, N, 1, ksl, FN_, v, FN_, 0, c, dh);
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, dh, N, dh, scale, c, dh, qsl, FN_, 0,
             out + (b * C + h * dh) * FN_ + f * N, FN_);
    }
}

void FN(linear_attention_backward)(real *dqkv, real *work,
                                   const real *dout, const real *qkv, const real *qs,
                                   const real *ks, const real *ctx,
                                   int B, int H, int dh, int F, int N, real scale) {
    long FN_ = (long)F * N, C = (long)H * dh, n = (long)B * C * FN_;
    real *dqs = work, *dks = work + n, *dctx = work + 2 * n; // dctx (B,F,H,dh,dh)
    /* each slice writes its own parts of dqs, dctx, dks and of v's gradient */
    #pragma omp parallel for schedule(static)
    for (long s = 0; s < (long)B * F * H; s++) {
        long b = s / (F * H), f = s / H % F, h = s % H;
        long o = (b * C + h * dh) * FN_ + f * N;            // slice in (B,C,F,N)
        long ov = (b * 3 * C + 2 * C + h * dh) * FN_ + f * N; // v's slice in qkv
        const real *c = ctx + s * dh * dh;
        real *dc = dctx + s * dh * dh;
        // dqs = scale ctx dout; dctx = scale qs dout^T
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, dh, N, dh, scale, c, dh, dout + o, FN_, 0, dqs + o, FN_);
        GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, dh, dh, N, scale, qs + o, FN_, dout + o, FN_, 0, dc, dh);
        // dks = dctx v; dv += dctx^T ks
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, dh, N, dh, 1, dc, dh, qkv + ov, FN_, 0, dks + o, FN_);
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, dh, N, dh, 1, dc, dh, ks + o, FN_, 1, dqkv + ov, FN_);
    }
    long nch = (FN_ + LA_NC - 1) / LA_NC;
    #pragma omp parallel for
    for (long t = 0; t < (long)B * H * nch; t++) {
        long b = t / (H * nch), h = t / nch % H, n0 = t % nch * LA_NC;
        int w = (int)(FN_ - n0 < LA_NC ? FN_ - n0 : LA_NC);
        long o = (b * C + h * dh) * FN_ + n0;
        FN(la_softmax_cols_backward)(dqkv + (b * 3 * C + h * dh) * FN_ + n0, dqs + o, qs + o, dh, w, FN_);
    }
    #pragma omp parallel for
    for (long row = 0; row < (long)B * C * F; row++) {
        long b = row / (C * F), cf = row % (C * F);
        FN(la_softmax_backward)(dqkv + (b * 3 * C + C) * FN_ + cf * N, dks + row * N, ks + row * N, N, 1);
    }
}
