/* conv3d body, included twice by conv3d.c: with real = float, FN(x) = x,
 * GEMM = cblas_sgemm, and with real = double, FN(x) = x##_f64,
 * GEMM = cblas_dgemm. No include guard on purpose.
 *
 * A column matrix covers the output rows [r0, r1) (a row is one (od,oh)
 * pair, so the slab's columns are contiguous in `out`): its row
 * r = (ci,kd,kh,kw) holds, for each output voxel q of the slab, the input
 * voxel that tap k of channel ci reads there. K = Cin*kd*kh*kw rows,
 * q = (r1-r0)*OW columns. */

/* The output columns [*lo, *hi) of an output row whose tap w = iw0 + ow*s
 * falls inside [0, W); the columns outside it read padding. */
static void FN(conv3d_valid_range)(int iw0, int s, int W, int OW, int *lo, int *hi) {
    int a = iw0 >= 0 ? 0 : (-iw0 + s - 1) / s;
    int b = W - 1 - iw0 >= 0 ? (W - 1 - iw0) / s + 1 : 0;
    if (a > OW) a = OW;
    if (b > OW) b = OW;
    if (b < a) b = a;
    *lo = a, *hi = b;
}

static int FN(conv3d_clamp)(int i, int n) { return i < 0 ? 0 : i >= n ? n - 1 : i; }

/* Rows [k0, k1) of the column matrix (K, q) of output rows [r0, r1): the
 * taps of inp (Cin,D,H,W). col holds (k1-k0) x q, row k at (k-k0)*q.
 * avx512 (float fast path only, which checked the CPU): rows are copied
 * with AVX-512 (no libc call per short row) and stride-2 rows gathered
 * with permutes instead of one element at a time. */
static void FN(conv3d_vol2col_isa)(real *col, const real *inp, const conv3d_dims *d, int r0,
                                   int r1, int k0, int k1, int avx512) {
    const int kvol = d->kd * d->kh * d->kw, OW = d->OW;
    const int rep = d->pad_mode == CONV3D_PAD_REPLICATE;
    const size_t q = (size_t)(r1 - r0) * OW;
    (void)avx512; /* unused in the double instantiation */
    for (int r = k0; r < k1; r++) {
        int ci = r / kvol, k = r % kvol;
        int kd = k / (d->kh * d->kw), kh = k / d->kw % d->kh, kw = k % d->kw;
        const real *chan = inp + (size_t)ci * d->D * d->H * d->W;
        int iw0 = kw * d->dw - d->pw, lo, hi;
        FN(conv3d_valid_range)(iw0, d->sw, d->W, OW, &lo, &hi);
        real *dst = col + (size_t)(r - k0) * q;
        for (int row = r0; row < r1; row++, dst += OW) {
            int od = row / d->OH, oh = row % d->OH;
            int id = od * d->sd - d->pd + kd * d->dd, ih = oh * d->sh - d->ph + kh * d->dh;
            if (rep) {
                id = FN(conv3d_clamp)(id, d->D), ih = FN(conv3d_clamp)(ih, d->H);
            } else if (id < 0 || id >= d->D || ih < 0 || ih >= d->H) {
                memset(dst, 0, (size_t)OW * sizeof *dst);
                continue;
            }
            const real *src = chan + ((size_t)id * d->H + ih) * d->W;
            real left = rep ? src[0] : 0, right = rep ? src[d->W - 1] : 0;
            for (int ow = 0; ow < lo; ow++) dst[ow] = left;
#ifdef CONV3D_FAST
            if (d->sw == 1 && avx512) gemm_avx512_copy(dst + lo, src + (iw0 + lo), hi - lo);
            else if (d->sw == 1) memcpy(dst + lo, src + (iw0 + lo), (size_t)(hi - lo) * sizeof *dst);
            else if (d->sw == 2 && avx512) gemm_avx512_gather_s2(dst + lo, src + iw0 + 2 * lo, hi - lo);
#else
            if (d->sw == 1) memcpy(dst + lo, src + (iw0 + lo), (size_t)(hi - lo) * sizeof *dst);
#endif
            else for (int ow = lo; ow < hi; ow++) dst[ow] = src[iw0 + ow * d->sw];
            for (int ow = hi; ow < OW; ow++) dst[ow] = right;
        }
    }
}

static void FN(conv3d_vol2col)(real *col, const real *inp, const conv3d_dims *d, int r0, int r1,
                               int k0, int k1) {
    FN(conv3d_vol2col_isa)(col, inp, d, r0, r1, k0, k1, 0);
}

/* inp channels [c0, c1) += the adjoint of vol2col applied to col (the
 * rows of those channels, (c1-c0)*kvol x q): every tap adds back where it
 * was read from (replicate: onto the edge voxel). */
static void FN(conv3d_col2vol)(real *inp, const real *col, const conv3d_dims *d, int r0, int r1,
                               int c0, int c1) {
    const int kvol = d->kd * d->kh * d->kw, OW = d->OW;
    const int rep = d->pad_mode == CONV3D_PAD_REPLICATE;
    const size_t q = (size_t)(r1 - r0) * OW;
    for (int ci = c0; ci < c1; ci++) {
        real *chan = inp + (size_t)ci * d->D * d->H * d->W;
        for (int k = 0; k < kvol; k++) {
            int kd = k / (d->kh * d->kw), kh = k / d->kw % d->kh, kw = k % d->kw;
            int iw0 = kw * d->dw - d->pw, lo, hi;
            FN(conv3d_valid_range)(iw0, d->sw, d->W, OW, &lo, &hi);
            const real *src = col + ((size_t)(ci - c0) * kvol + k) * q;
            for (int row = r0; row < r1; row++, src += OW) {
                int od = row / d->OH, oh = row % d->OH;
                int id = od * d->sd - d->pd + kd * d->dd, ih = oh * d->sh - d->ph + kh * d->dh;
                if (rep) id = FN(conv3d_clamp)(id, d->D), ih = FN(conv3d_clamp)(ih, d->H);
                else if (id < 0 || id >= d->D || ih < 0 || ih >= d->H) continue;
                real *dst = chan + ((size_t)id * d->H + ih) * d->W;
                if (rep) {
                    for (int ow = 0; ow < lo; ow++) dst[0] += src[ow];
                    for (int ow = hi; ow < OW; ow++) dst[d->W - 1] += src[ow];
                }
                if (d->sw == 1) {
                    real *dd = dst + iw0; // col and inp never overlap: vectorise
#pragma omp simd
                    for (int ow = lo; ow < hi; ow++) dd[ow] += src[ow];
                } else {
                    for (int ow = lo; ow < hi; ow++) dst[iw0 + ow * d->sw] += src[ow];
                }
            }
        }
    }
}

/* sum of p[0..n) in double: eight independent partial sums, so the adds
 * pipeline instead of waiting on one another (the bias gradient of a
 * 1x1 conv was dominated by the single dependent chain). */
static double FN(conv3d_sum)(const real *p, size_t n) {
    double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) a[j] += p[i + j];
    for (; i < n; i++) a[i % 8] += p[i];
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/* y (Cout, P): columns [c0, c0+q) += bias, per channel. */
static void FN(conv3d_add_bias)(real *y, const real *bias, int Cout, size_t P, size_t c0, size_t q) {
    for (int co = 0; co < Cout; co++) {
        real *p = y + (size_t)co * P + c0;
        real b = bias[co];
        for (size_t i = 0; i < q; i++) p[i] += b;
    }
}

void FN(conv3d_forward_beta)(real *out, real *work, const real *inp, const real *weight,
                             const real *bias, const conv3d_dims *d, real beta) {
    const int P = d->OD * d->OH * d->OW, K = d->Cin * d->kd * d->kh * d->kw;
    const int rows = d->OD * d->OH, slab = conv3d_slab_rows(d);
    const int nslab = (rows + slab - 1) / slab;
    const size_t in_n = (size_t)d->Cin * d->D * d->H * d->W, out_n = (size_t)d->Cout * P;
    const int pointwise = conv3d_is_pointwise(d);
#ifdef CONV3D_FAST
    if (conv3d_fast_forward(out, work, inp, weight, bias, d, beta) == 0) return;
#endif
#pragma omp parallel num_threads(d->threads)
    {
        const int t = omp_get_thread_num();
        real *col = work && !pointwise ? work + (size_t)t * K * slab * d->OW : NULL;
        const int pcols = pointwise ? conv3d_pw_cols(d, 0) : 1, nblk = (P + pcols - 1) / pcols;
#pragma omp for schedule(static)
        for (int job = 0; job < (pointwise ? d->N * nblk : 0); job++) {
            // y[:, p0:p0+q] (Cout, q) = W (Cout, Cin) . x[:, p0:p0+q] (Cin, q)
            int n = job / nblk, p0 = job % nblk * pcols, q = P - p0 < pcols ? P - p0 : pcols;
            real *y = out + n * out_n;
            GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, d->Cout, q, d->Cin,
                 1, weight, d->Cin, inp + n * in_n + p0, P, beta, y + p0, P);
            if (bias) FN(conv3d_add_bias)(y, bias, d->Cout, P, p0, q);
        }
#pragma omp for schedule(static)
        for (int job = 0; job < (pointwise ? 0 : d->N * nslab); job++) {
            int n = job / nslab, r0 = job % nslab * slab;
            int r1 = r0 + slab < rows ? r0 + slab : rows, q = (r1 - r0) * d->OW;
            real *y = out + n * out_n;
            FN(conv3d_vol2col)(col, inp + n * in_n, d, r0, r1, 0, K);
            // y[:, slab] (Cout, q) = W (Cout, K) . col (K, q)
            GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, d->Cout, q, K,
                 1, weight, K, col, q, beta, y + (size_t)r0 * d->OW, P);
            if (bias) FN(conv3d_add_bias)(y, bias, d->Cout, P, (size_t)r0 * d->OW, q);
        }
    }
}

void FN(conv3d_forward)(real *out, real *work, const real *inp, const real *weight,
                        const real *bias, const conv3d_dims *d) {
    FN(conv3d_forward_beta)(out, work, inp, weight, bias, d, 0);
}

/* The fused backward of a small 1x1x1 conv (conv3d.c conv3d_pw_small):
 * per block of columns, dx += W^T dy and the block's own dW and db sums
 * (work), then dW and db += the sums over the blocks, in block order. */
static void FN(conv3d_pw_backward)(real *dinp, real *dweight, real *dbias, real *work,
                                   const real *dout, const real *inp, const real *weight,
                                   const conv3d_dims *d) {
    const int P = d->OD * d->OH * d->OW, Cin = d->Cin, Cout = d->Cout;
    const int cols = conv3d_pw_cols(d, 1), nblk = (P + cols - 1) / cols;
    const size_t in_n = (size_t)Cin * P, out_n = (size_t)Cout * P;
    const size_t cw = (size_t)Cout * Cin, per = cw + Cout;
#pragma omp parallel num_threads(d->threads)
    {
#pragma omp for schedule(static)
        for (int b = 0; b < nblk; b++) {
            int p0 = b * cols, q = P - p0 < cols ? P - p0 : cols;
            real *sw = work + (size_t)b * per, *sb = sw + cw;
            memset(sw, 0, per * sizeof *sw);
            for (int n = 0; n < d->N; n++) {
                const real *dy = dout + n * out_n + p0;
                // block sums: dW (Cout, Cin) += dy (Cout, q) . x^T (q, Cin)
                if (dweight)
                    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, Cout, Cin, q, 1, dy, P,
                         inp + n * in_n + p0, P, 1, sw, Cin);
                // dx[:, block] (Cin, q) += W^T (Cin, Cout) . dy (Cout, q)
                if (dinp)
                    GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, Cin, q, Cout, 1, weight, Cin, dy, P,
                         1, dinp + n * in_n + p0, P);
                for (int co = 0; dbias && co < Cout; co++)
                    sb[co] += (real)FN(conv3d_sum)(dy + (size_t)co * P, (size_t)q);
            }
        }
#pragma omp for schedule(static)
        for (size_t i = 0; i < per; i++) {
            if (i < cw ? !dweight : !dbias) continue;
            double s = 0;
            for (int b = 0; b < nblk; b++) s += work[(size_t)b * per + i];
            if (i < cw) dweight[i] += (real)s;
            else dbias[i - cw] += (real)s;
        }
    }
}

void FN(conv3d_backward)(real *dinp, real *dweight, real *dbias, real *work,
                         const real *dout, const real *inp, const real *weight,
                         const conv3d_dims *d) {
    if (conv3d_pw_small(d) && work) {
        FN(conv3d_pw_backward)(dinp, dweight, dbias, work, dout, inp, weight, d);
        return;
    }
    const int P = d->OD * d->OH * d->OW, kvol = d->kd * d->kh * d->kw, K = d->Cin * kvol;
    const int rows = d->OD * d->OH, slab = conv3d_slab_rows(d);
    const size_t in_n = (size_t)d->Cin * d->D * d->H * d->W, out_n = (size_t)d->Cout * P;
    const int pointwise = conv3d_is_pointwise(d);
#ifdef CONV3D_FAST
    // the fast float path takes the passes it can; BLAS does the rest
    if (dinp && conv3d_fast_data_grad(dinp, work, dout, weight, d) == 0) dinp = NULL;
    if (dweight && conv3d_fast_weight_grad(dweight, work, dout, inp, d) == 0) dweight = NULL;
    if (!dinp && !dweight && !dbias) return;
#endif
#pragma omp parallel num_threads(d->threads)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        real *col = work && !pointwise ? work + (size_t)t * K * slab * d->OW : NULL;
        if (dbias) {
#pragma omp for schedule(static)
            for (int co = 0; co < d->Cout; co++) {
                double s = 0; // a long sum: accumulate in double even for float
                for (int n = 0; n < d->N; n++)
                    s += FN(conv3d_sum)(dout + n * out_n + (size_t)co * P, (size_t)P);
                dbias[co] += (real)s;
            }
        }
        // weight gradient: thread t owns the rows [k0, k1) of col and of dW^T
        int k0 = (int)((long)K * t / T), k1 = (int)((long)K * (t + 1) / T);
        // data gradient: thread t owns the input channels [c0, c1)
        int c0 = (int)((long)d->Cin * t / T), c1 = (int)((long)d->Cin * (t + 1) / T);
        for (int n = 0; n < d->N; n++) {
            const real *dy = dout + n * out_n, *x = inp ? inp + n * in_n : NULL;
            real *dx = dinp ? dinp + n * in_n : NULL;
            if (pointwise) { // here K = Cin, the rows of col are x's channels
                // dW[:, k0:k1] (Cout, k) += dy (Cout, P) . x[k0:k1]^T (P, k)
                if (dweight && k1 > k0)
                    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, d->Cout, k1 - k0, P,
                         1, dy, P, x + (size_t)k0 * P, P, 1, dweight + k0, K);
                // dx[c0:c1] (c, P) += W[:, c0:c1]^T (c, Cout) . dy (Cout, P)
                if (dx && c1 > c0)
                    GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, c1 - c0, P, d->Cout,
                         1, weight + c0, K, dy, P, 1, dx + (size_t)c0 * P, P);
                continue;
            }
            for (int r0 = 0; r0 < rows; r0 += slab) {
                int r1 = r0 + slab < rows ? r0 + slab : rows, q = (r1 - r0) * d->OW;
                const real *dys = dy + (size_t)r0 * d->OW;
                if (dweight && k1 > k0) {
                    FN(conv3d_vol2col)(col, x, d, r0, r1, k0, k1);
                    // dW[:, k0:k1] (Cout, k) += dy[:, slab] (Cout, q) . col[k0:k1]^T (q, k)
                    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, d->Cout, k1 - k0, q,
                         1, dys, P, col, q, 1, dweight + k0, K);
                }
                if (dx && c1 > c0) {
                    // dcol (c*kvol, q) = W[:, c0*kvol:c1*kvol]^T . dy[:, slab] (Cout, q)
                    GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (c1 - c0) * kvol, q, d->Cout,
                         1, weight + (size_t)c0 * kvol, K, dys, P, 0, col, q);
                    FN(conv3d_col2vol)(dx, col, d, r0, r1, c0, c1);
                }
            }
        }
    }
}
