/* Element-wise bodies, included twice by elementwise.c (real=float,
 * FN(x)=x; real=double, FN(x)=x##_f64). No include guard on purpose. */

void FN(add_forward)(real *out, const real *a, const real *b, size_t n) {
    #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void FN(add_backward)(real *da, real *db, const real *dout, size_t n) {
    if (da) FN(scale_add)(da, 1, dout, n);
    if (db) FN(scale_add)(db, 1, dout, n);
}

void FN(mul_forward)(real *out, const real *a, const real *b, size_t n) {
    #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = a[i] * b[i];
}

void FN(mul_backward)(real *da, real *db, const real *dout, const real *a, const real *b,
                      size_t n) {
    #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        if (da) da[i] += dout[i] * b[i];
        if (db) db[i] += dout[i] * a[i];
    }
}

void FN(scale_add)(real *y, real alpha, const real *x, size_t n) {
    #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

/* Index of the vector entry for row nc = n*C + c. */
#define VIDX(nc) (per_n ? (nc) : (nc) % C)

void FN(add_bcast_forward)(real *out, const real *x, const real *v, int N, int C, int S,
                           int per_n) {
    #pragma omp parallel for schedule(static) if ((size_t)N * C * S > PAR_MIN)
    for (int nc = 0; nc < N * C; nc++) {
        real k = v[VIDX(nc)];
        const real *xr = x + (size_t)nc * S;
        real *o = out + (size_t)nc * S;
        #pragma omp simd
        for (int i = 0; i < S; i++) o[i] = xr[i] + k;
    }
}

/* dv sums dout over S (and over n when v is per channel): one task per
 * channel with n inside, so per-channel sums have no races. */
void FN(add_bcast_backward)(real *dx, real *dv, const real *dout, int N, int C, int S,
                            int per_n) {
    if (dx) FN(scale_add)(dx, 1, dout, (size_t)N * C * S);
    if (!dv) return;
    #pragma omp parallel for schedule(static) if ((size_t)N * C * S > PAR_MIN)
    for (int c = 0; c < C; c++) {
        double acc = 0;
        for (int n = 0; n < N; n++) {
            const real *dy = dout + ((size_t)n * C + c) * S;
            double s = 0;
            #pragma omp simd reduction(+:s)
            for (int i = 0; i < S; i++) s += dy[i];
            if (per_n) dv[n * C + c] += (real)s;
            else acc += s;
        }
        if (!per_n) dv[c] += (real)acc;
    }
}

void FN(mul_bcast_forward)(real *out, const real *x, const real *v, int N, int C, int S,
                           int per_n) {
    #pragma omp parallel for schedule(static) if ((size_t)N * C * S > PAR_MIN)
    for (int nc = 0; nc < N * C; nc++) {
        real k = v[VIDX(nc)];
        const real *xr = x + (size_t)nc * S;
        real *o = out + (size_t)nc * S;
        #pragma omp simd
        for (int i = 0; i < S; i++) o[i] = xr[i] * k;
    }
}

void FN(mul_bcast_backward)(real *dx, real *dv, const real *dout, const real *x, const real *v,
                            int N, int C, int S, int per_n) {
    #pragma omp parallel for schedule(static) if ((size_t)N * C * S > PAR_MIN)
    for (int c = 0; c < C; c++) {
        double acc = 0;
        for (int n = 0; n < N; n++) {
            int nc = n * C + c;
            size_t off = (size_t)nc * S;
            const real *dy = dout + off, *xr = x + off;
            if (dx) {
                real k = v[VIDX(nc)];
                #pragma omp simd
                for (int i = 0; i < S; i++) dx[off + i] += dy[i] * k;
            }
            if (!dv) continue;
            double s = 0;
            #pragma omp simd reduction(+:s)
            for (int i = 0; i < S; i++) s += (double)dy[i] * xr[i];
            if (per_n) dv[nc] += (real)s;
            else acc += s;
        }
        if (dv && !per_n) dv[c] += (real)acc;
    }
}

void FN(scale_shift_forward)(real *out, const real *x, const real *scale, const real *shift,
                             int N, int C, int S, int per_n) {
    #pragma omp parallel for schedule(static) if ((size_t)N * C * S > PAR_MIN)
    for (int nc = 0; nc < N * C; nc++) {
        real a = 1 + scale[VIDX(nc)], b = shift[VIDX(nc)];
        const real *xr = x + (size_t)nc * S;
        real *o = out + (size_t)nc * S;
        #pragma omp simd
        for (int i = 0; i < S; i++) o[i] = xr[i] * a + b;
    }
}

/* dx += dout (1 + scale), dscale += sum dout x, dshift += sum dout. */
void FN(scale_shift_backward)(real *dx, real *dscale, real *dshift, const real *dout,
                              const real *x, const real *scale, int N, int C, int S,
                              int per_n) {
    #pragma omp parallel for schedule(static) if ((size_t)N * C * S > PAR_MIN)
    for (int c = 0; c < C; c++) {
        double acc_a = 0, acc_b = 0;
        for (int n = 0; n < N; n++) {
            int nc = n * C + c;
            size_t off = (size_t)nc * S;
            const real *dy = dout + off, *xr = x + off;
            if (dx) {
                real k = 1 + scale[VIDX(nc)];
                #pragma omp simd
                for (int i = 0; i < S; i++) dx[off + i] += dy[i] * k;
            }
            double sa = 0, sb = 0;
            #pragma omp simd reduction(+:sa, sb)
            for (int i = 0; i < S; i++) {
                sa += (double)dy[i] * xr[i];
                sb += dy[i];
            }
            if (per_n) {
                if (dscale) dscale[nc] += (real)sa;
                if (dshift) dshift[nc] += (real)sb;
            } else {
                acc_a += sa;
                acc_b += sb;
            }
        }
        if (!per_n) {
            if (dscale) dscale[c] += (real)acc_a;
            if (dshift) dshift[c] += (real)acc_b;
        }
    }
}

#undef VIDX

/* dst[n, dc0 + j, :] = (or +=) src[n, sc0 + j, :] for j < Cs, between
 * tensors of dC and sC channels: the one loop behind concat and slice,
 * forward (copy) and backward (accumulate). */
static void FN(ew_channel_copy)(real *dst, int dC, int dc0, const real *src, int sC, int sc0,
                                int N, int Cs, int S, int accumulate) {
    size_t len = (size_t)Cs * S;
    #pragma omp parallel for schedule(static) if ((size_t)N * len > PAR_MIN)
    for (int n = 0; n < N; n++) {
        real *d = dst + ((size_t)n * dC + dc0) * S;
        const real *s = src + ((size_t)n * sC + sc0) * S;
        if (!accumulate) memcpy(d, s, len * sizeof *d);
        else {
            #pragma omp simd
            for (size_t i = 0; i < len; i++) d[i] += s[i];
        }
    }
}

void FN(concat_forward)(real *out, const real *a, const real *b, int N, int Ca, int Cb, int S) {
    FN(ew_channel_copy)(out, Ca + Cb, 0, a, Ca, 0, N, Ca, S, 0);
    FN(ew_channel_copy)(out, Ca + Cb, Ca, b, Cb, 0, N, Cb, S, 0);
}

void FN(concat_backward)(real *da, real *db, const real *dout, int N, int Ca, int Cb, int S) {
    if (da) FN(ew_channel_copy)(da, Ca, 0, dout, Ca + Cb, 0, N, Ca, S, 1);
    if (db) FN(ew_channel_copy)(db, Cb, 0, dout, Ca + Cb, Ca, N, Cb, S, 1);
}

void FN(slice_forward)(real *out, const real *inp, int N, int C, int c0, int Cs, int S) {
    FN(ew_channel_copy)(out, Cs, 0, inp, C, c0, N, Cs, S, 0);
}

void FN(slice_backward)(real *dinp, const real *dout, int N, int C, int c0, int Cs, int S) {
    FN(ew_channel_copy)(dinp, C, c0, dout, Cs, 0, N, Cs, S, 1);
}
