/* Body of layernorm.c, included for real = float and double
 * (instantiate.h). Parallel over blocks of LN_BLOCK positions; each block
 * sweeps the channels with per-position double accumulators. */

void FN(chan_layernorm_forward)(real *out, real *mean, real *rstd, const real *inp,
                                const real *gamma, int N, int C, long S, real eps) {
    long nb = (S + LN_BLOCK - 1) / LN_BLOCK;
    #pragma omp parallel for
    for (long blk = 0; blk < (long)N * nb; blk++) {
        long n = blk / nb, s0 = blk % nb * LN_BLOCK, len = S - s0 < LN_BLOCK ? S - s0 : LN_BLOCK;
        const real *x = inp + (size_t)n * C * S + s0;
        real *o = out + (size_t)n * C * S + s0;
        double m[LN_BLOCK] = {0}, v[LN_BLOCK] = {0};
        for (int c = 0; c < C; c++) {
            const real *xc = x + (size_t)c * S;
            for (long s = 0; s < len; s++) m[s] += xc[s];
        }
        for (long s = 0; s < len; s++) m[s] /= C;
        for (int c = 0; c < C; c++) {
            const real *xc = x + (size_t)c * S;
            for (long s = 0; s < len; s++) {
                double d = xc[s] - m[s];
                v[s] += d * d;
            }
        }
        for (long s = 0; s < len; s++) v[s] = 1 / sqrt(v[s] / C + (double)eps);
        for (int c = 0; c < C; c++) {
            const real *xc = x + (size_t)c * S;
            real *oc = o + (size_t)c * S;
            double g = gamma[c];
            for (long s = 0; s < len; s++) oc[s] = (real)((xc[s] - m[s]) * v[s] * g);
        }
        if (mean)
            for (long s = 0; s < len; s++) mean[(size_t)n * S + s0 + s] = (real)m[s];
        if (rstd)
            for (long s = 0; s < len; s++) rstd[(size_t)n * S + s0 + s] = (real)v[s];
    }
}

/* With xh = (x - mean) rstd and g = dout gamma at one position:
 *   dx = rstd (g - mean_c(g) - xh mean_c(g xh)),   dgamma_c += sum dout xh. */
void FN(chan_layernorm_backward)(real *dinp, real *dgamma, const real *dout, const real *inp,
                                 const real *gamma, const real *mean, const real *rstd,
                                 int N, int C, long S) {
    if (dinp) {
        long nb = (S + LN_BLOCK - 1) / LN_BLOCK;
        #pragma omp parallel for
        for (long blk = 0; blk < (long)N * nb; blk++) {
            long n = blk / nb, s0 = blk % nb * LN_BLOCK, len = S - s0 < LN_BLOCK ? S - s0 : LN_BLOCK;
            size_t base = (size_t)n * C * S + s0;
            const real *mu = mean + (size_t)n * S + s0, *rs = rstd + (size_t)n * S + s0;
            double a[LN_BLOCK] = {0}, b[LN_BLOCK] = {0};
            for (int c = 0; c < C; c++) {
                const real *xc = inp + base + (size_t)c * S, *gc = dout + base + (size_t)c * S;
                for (long s = 0; s < len; s++) {
                    double g = (double)gc[s] * gamma[c];
                    a[s] += g;
                    b[s] += g * ((xc[s] - (double)mu[s]) * rs[s]);
                }
            }
            for (long s = 0; s < len; s++) a[s] /= C, b[s] /= C;
            for (int c = 0; c < C; c++) {
                const real *xc = inp + base + (size_t)c * S, *gc = dout + base + (size_t)c * S;
                real *dc = dinp + base + (size_t)c * S;
                for (long s = 0; s < len; s++) {
                    double xh = (xc[s] - (double)mu[s]) * rs[s];
                    dc[s] += (real)(rs[s] * ((double)gc[s] * gamma[c] - a[s] - xh * b[s]));
                }
            }
        }
    }
    if (dgamma) {
        #pragma omp parallel for
        for (int c = 0; c < C; c++) {
            double acc = 0;
            for (int n = 0; n < N; n++) {
                const real *xc = inp + ((size_t)n * C + c) * S, *gc = dout + ((size_t)n * C + c) * S;
                const real *mu = mean + (size_t)n * S, *rs = rstd + (size_t)n * S;
                for (long s = 0; s < S; s++) acc += (double)gc[s] * ((xc[s] - (double)mu[s]) * rs[s]);
            }
            dgamma[c] += (real)acc;
        }
    }
}
