/* GroupNorm body, written once and included twice by groupnorm.c: with
 * real=float, FN(x)=x and with real=double, FN(x)=x##_f64. No include guard
 * on purpose. Reductions accumulate in `real` within short blocks and in
 * double across them. */

#include "norm_sums_impl.h"

/* Mean and biased variance of one group: Cg channels of S values at x.
 * Per channel, shifted sums (shift = the channel's first value, so that
 * sum(d^2) - sum(d)^2/S does not cancel when |mean| >> std), then Chan's
 * pairwise update to merge the channel (mean, M2) into the group's. */
static void FN(gn_group_stats)(const real *x, int Cg, int S, double *mean_out, double *var_out) {
    double mean = 0, m2 = 0;
    for (int j = 0; j < Cg; j++) {
        const real *xc = x + (size_t)j * S;
        double s1 = 0, s2 = 0;
        FN(norm_sums_shifted)(xc, S, xc[0], &s1, &s2);
        double mc = xc[0] + s1 / S;
        double m2c = s2 - s1 * (s1 / S);
        if (m2c < 0) m2c = 0;
        double na = (double)j * S, nb = S, delta = mc - mean;
        mean += delta * nb / (na + nb);
        m2 += m2c + delta * delta * na * nb / (na + nb);
    }
    *mean_out = mean;
    *var_out = m2 / ((double)Cg * S);
}

/* One task per (n, g): statistics, then the normalised channels; silu:
 * then SiLU on each value as it is written (one sweep over memory
 * instead of two; the same per-value operations as groupnorm_forward
 * followed by silu_forward). */
static void FN(gn_forward)(real *out, real *mean, real *rstd, const real *inp,
                           const real *weight, const real *bias,
                           int N, int C, int S, int G, real eps, int silu) {
    int Cg = C / G;
    #pragma omp parallel for schedule(dynamic) // even out threads slowed by other load
    for (int ng = 0; ng < N * G; ng++) {
        int g = ng % G;
        size_t off = (size_t)ng * Cg * S;
        double m, v;
        FN(gn_group_stats)(inp + off, Cg, S, &m, &v);
        double rs = 1.0 / sqrt(v + (double)eps);
        if (mean) mean[ng] = (real)m;
        if (rstd) rstd[ng] = (real)rs;
        real mr = (real)m;
        for (int j = 0; j < Cg; j++) {
            int c = g * Cg + j;
            real a = (real)(rs * (weight ? (double)weight[c] : 1.0));
            real b = bias ? bias[c] : 0;
            const real *x = inp + off + (size_t)j * S;
            real *o = out + off + (size_t)j * S;
            if (!silu) {
                #pragma omp simd
                for (int i = 0; i < S; i++) o[i] = (x[i] - mr) * a + b;
                continue;
            }
            FN(gn_affine_silu)(o, x, S, mr, a, b);
        }
    }
}

void FN(groupnorm_forward)(real *out, real *mean, real *rstd, const real *inp,
                           const real *weight, const real *bias,
                           int N, int C, int S, int G, real eps) {
    FN(gn_forward)(out, mean, rstd, inp, weight, bias, N, C, S, G, eps, 0);
}

void FN(groupnorm_silu_forward)(real *out, real *mean, real *rstd, const real *inp,
                                const real *weight, const real *bias,
                                int N, int C, int S, int G, real eps) {
    FN(gn_forward)(out, mean, rstd, inp, weight, bias, N, C, S, G, eps, 1);
}

/* With xhat = (x - mean) * rstd and dxhat = dout * weight, per group of
 * M = Cg*S values:
 *   dinp = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
 *   dbias[c] += sum dout,  dweight[c] += sum dout * xhat   (over n and s)
 * One task per group g, looping over n inside, so that no two threads add
 * to the same dweight/dbias and the sums come out in a fixed order. */
void FN(groupnorm_backward)(real *dinp, real *dweight, real *dbias, const real *dout,
                            const real *inp, const real *weight, const real *mean,
                            const real *rstd, int N, int C, int S, int G) {
    int Cg = C / G;
    #pragma omp parallel for schedule(static)
    for (int g = 0; g < G; g++) {
        for (int n = 0; n < N; n++) {
            int ng = n * G + g;
            size_t off = (size_t)ng * Cg * S;
            double m = mean[ng], rs = rstd[ng];
            double s1 = 0, s2 = 0; // sum dxhat, sum dxhat * xhat
            for (int j = 0; j < Cg; j++) {
                int c = g * Cg + j;
                const real *x = inp + off + (size_t)j * S, *dy = dout + off + (size_t)j * S;
                double a = 0, b = 0; // sum dy, sum dy * (x - mean)
                FN(norm_sums_grad)(dy, x, S, (real)m, &a, &b);
                double w = weight ? (double)weight[c] : 1.0;
                if (dbias) dbias[c] += (real)a;
                if (dweight) dweight[c] += (real)(b * rs);
                s1 += w * a;
                s2 += w * b * rs;
            }
            if (!dinp) continue;
            double M = (double)Cg * S;
            real mr = (real)m;
            real k2 = (real)(rs * rs * s2 / M), k3 = (real)(rs * s1 / M);
            for (int j = 0; j < Cg; j++) {
                int c = g * Cg + j;
                real k1 = (real)(rs * (weight ? (double)weight[c] : 1.0));
                const real *x = inp + off + (size_t)j * S, *dy = dout + off + (size_t)j * S;
                real *dx = dinp + off + (size_t)j * S;
                #pragma omp simd
                for (int i = 0; i < S; i++) dx[i] += dy[i] * k1 - (x[i] - mr) * k2 - k3;
            }
        }
    }
}
