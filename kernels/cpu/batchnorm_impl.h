/* BatchNorm (inference and training) body, included twice by batchnorm.c (real=float,
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

/* ---- training mode: batch statistics ----------------------------------- */

#include "norm_sums_impl.h"

/* Mean and biased variance of channel c over its N slices of S values.
 * Per slice, shifted sums (shift = the slice's first value, so that
 * sum(d^2) - sum(d)^2/S does not cancel when |mean| >> std), then Chan's
 * pairwise update merges the slice's (mean, M2) into the channel's. */
static void FN(bn_channel_stats)(const real *inp, int N, int C, int S, int c, double *mean_out,
                                 double *var_out) {
    double mean = 0, m2 = 0;
    for (int n = 0; n < N; n++) {
        const real *x = inp + ((size_t)n * C + c) * S;
        double s1 = 0, s2 = 0;
        FN(norm_sums_shifted)(x, S, x[0], &s1, &s2);
        double ms = x[0] + s1 / S;
        double m2s = s2 - s1 * (s1 / S);
        if (m2s < 0) m2s = 0;
        double na = (double)n * S, nb = S, delta = ms - mean;
        mean += delta * nb / (na + nb);
        m2 += m2s + delta * delta * na * nb / (na + nb);
    }
    *mean_out = mean;
    *var_out = m2 / ((double)N * S);
}

/* One task per channel: statistics, running update, normalised values. */
void FN(batchnorm_train_forward)(real *out, real *mean, real *rstd, real *rmean, real *rvar,
                                 const real *inp, const real *weight, const real *bias,
                                 int N, int C, int S, real eps, real momentum) {
    double M = (double)N * S;
    #pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double m, v;
        FN(bn_channel_stats)(inp, N, C, S, c, &m, &v);
        double rs = 1.0 / sqrt(v + (double)eps), mom = momentum;
        if (mean) mean[c] = (real)m;
        if (rstd) rstd[c] = (real)rs;
        if (rmean) rmean[c] = (real)((1 - mom) * (double)rmean[c] + mom * m);
        if (rvar) rvar[c] = (real)((1 - mom) * (double)rvar[c] + mom * (M > 1 ? v * M / (M - 1) : v));
        real a = (real)(rs * (weight ? (double)weight[c] : 1.0));
        real b = bias ? bias[c] : 0, mr = (real)m;
        for (int n = 0; n < N; n++) {
            size_t off = ((size_t)n * C + c) * S;
            const real *x = inp + off;
            real *o = out + off;
            #pragma omp simd
            for (int i = 0; i < S; i++) o[i] = (x[i] - mr) * a + b;
        }
    }
}

/* With xhat = (x - mean) * rstd and dxhat = dout * weight, over the M = N*S
 * values of a channel (a = sum dy, b = sum dy * (x - mean)):
 *   dinp += rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
 *         = dy * rstd*w - (x - mean) * w*rstd^3*b/M - rstd*w*a/M
 *   dbias[c] += a,  dweight[c] += b * rstd
 * One task per channel with n inside: no races, fixed summation order. */
void FN(batchnorm_train_backward)(real *dinp, real *dweight, real *dbias, const real *dout,
                                  const real *inp, const real *weight, const real *mean,
                                  const real *rstd, int N, int C, int S) {
    double M = (double)N * S;
    #pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double m = mean[c], rs = rstd[c], w = weight ? (double)weight[c] : 1.0;
        real mr = (real)m;
        double a = 0, b = 0;
        for (int n = 0; n < N; n++) {
            size_t off = ((size_t)n * C + c) * S;
            FN(norm_sums_grad)(dout + off, inp + off, S, mr, &a, &b);
        }
        if (dbias) dbias[c] += (real)a;
        if (dweight) dweight[c] += (real)(b * rs);
        if (!dinp) continue;
        real k1 = (real)(rs * w), k2 = (real)(w * rs * rs * rs * b / M), k3 = (real)(rs * w * a / M);
        for (int n = 0; n < N; n++) {
            size_t off = ((size_t)n * C + c) * S;
            const real *x = inp + off, *dy = dout + off;
            real *dx = dinp + off;
            #pragma omp simd
            for (int i = 0; i < S; i++) dx[i] += dy[i] * k1 - (x[i] - mr) * k2 - k3;
        }
    }
}
