/* SPADE modulation body, included twice by spade.c (real=float, FN(x)=x;
 * real=double, FN(x)=x##_f64). No include guard on purpose. */

void FN(spade_forward)(real *out, const real *x, const real *gamma, const real *beta,
                       size_t n) {
    #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = x[i] * (1 + gamma[i]) + beta[i];
}

void FN(spade_backward)(real *dx, real *dgamma, real *dbeta, const real *dout, const real *x,
                        const real *gamma, size_t n) {
    #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        real dy = dout[i];
        if (dx) dx[i] += dy * (1 + gamma[i]);
        if (dgamma) dgamma[i] += dy * x[i];
        if (dbeta) dbeta[i] += dy;
    }
}
