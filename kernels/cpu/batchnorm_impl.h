/* BatchNorm (inference) body, included twice by batchnorm.c (real=float,
 * FN(x)=x; real=double, FN(x)=x##_f64). No include guard on purpose. */

void FN(batchnorm_forward)(real *out, const real *inp, const real *weight, const real *bias,
                           const real *rmean, const real *rvar,
                           int N, int C, int S, real eps) {
    #pragma omp parallel for schedule(static)
    for (int nc = 0; nc < N * C; nc++) {
        int c = nc % C;
        double rs = 1.0 / sqrt((double)rvar[c] + (double)eps);
        real a = (real)(rs * (weight ? (double)weight[c] : 1.0));
        real b = bias ? bias[c] : 0, m = rmean[c];
        const real *x = inp + (size_t)nc * S;
        real *o = out + (size_t)nc * S;
        #pragma omp simd
        for (int i = 0; i < S; i++) o[i] = (x[i] - m) * a + b;
    }
}

/* The statistics are constants, so dinp = dout * weight * rstd, and
 * dweight[c] += sum dout * xhat, dbias[c] += sum dout over n and s.
 * One task per channel with n inside: no races, fixed summation order. */
void FN(batchnorm_backward)(real *dinp, real *dweight, real *dbias, const real *dout,
                            const real *inp, const real *weight, const real *rmean,
                            const real *rvar, int N, int C, int S, real eps) {
    #pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double rs = 1.0 / sqrt((double)rvar[c] + (double)eps);
        real k = (real)(rs * (weight ? (double)weight[c] : 1.0)), m = rmean[c];
        double a = 0, b = 0; // sum dy, sum dy * (x - mean)
        for (int n = 0; n < N; n++) {
            size_t off = ((size_t)n * C + c) * S;
            const real *x = inp + off, *dy = dout + off;
            if (dinp) {
                real *dx = dinp + off;
                #pragma omp simd
                for (int i = 0; i < S; i++) dx[i] += dy[i] * k;
            }
            #pragma omp simd reduction(+:a, b)
            for (int i = 0; i < S; i++) {
                a += dy[i];
                b += (double)dy[i] * ((double)x[i] - (double)m);
            }
        }
        if (dbias) dbias[c] += (real)a;
        if (dweight) dweight[c] += (real)(b * rs);
    }
}
