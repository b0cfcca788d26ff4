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

void FN(linear_attention_forward)(real *out, real *qs, real *ks, real *ctx,
                                  const real *qkv, int B, int H, int dh, int F, int N, real scale) {
    long FN_ = (long)F * N, C = (long)H * dh;
    // qs: softmax over d of each column (b, head, f, n)
    #pragma omp parallel for
    for (long col = 0; col < (long)B * H * FN_; col++) {
        long b = col / (H * FN_), h = col / FN_ % H, fn = col % FN_;
        FN(la_softmax)(qs + (b * C + h * dh) * FN_ + fn, qkv + (b * 3 * C + h * dh) * FN_ + fn, dh, FN_);
    }
    // ks: softmax over n of each row (b, head, d, f)
    #pragma omp parallel for
    for (long row = 0; row < (long)B * C * F; row++) {
        long b = row / (C * F), cf = row % (C * F);
        FN(la_softmax)(ks + row * N, qkv + (b * 3 * C + C) * FN_ + cf * N, N, 1);
    }
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
    #pragma omp parallel for
    for (long col = 0; col < (long)B * H * FN_; col++) {
        long b = col / (H * FN_), h = col / FN_ % H, fn = col % FN_;
        long o = (b * C + h * dh) * FN_ + fn;
        FN(la_softmax_backward)(dqkv + (b * 3 * C + h * dh) * FN_ + fn, dqs + o, qs + o, dh, FN_);
    }
    #pragma omp parallel for
    for (long row = 0; row < (long)B * C * F; row++) {
        long b = row / (C * F), cf = row % (C * F);
        FN(la_softmax_backward)(dqkv + (b * 3 * C + C) * FN_ + cf * N, dks + row * N, ks + row * N, N, 1);
    }
}
