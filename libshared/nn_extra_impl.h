/* Body of nn_extra.c's kernels, included for real = float and double
 * (kernels/cpu/instantiate.h). Sums run in double in both. */

void FN(chan_affine_forward)(real *out, const real *x, const real *shift, const real *scale,
                             int N, int Cin, int C, long S) {
    #pragma omp parallel for collapse(2)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            const real *xi = x + ((size_t)n * Cin + (Cin == 1 ? 0 : c)) * S;
            real *o = out + ((size_t)n * C + c) * S;
            real sh = shift[c], sc = scale[c];
            SIMD
            for (long s = 0; s < S; s++) o[s] = (xi[s] - sh) / sc;
        }
}

void FN(chan_affine_backward)(real *dx, const real *dout, const real *scale, int N, int Cin,
                              int C, long S) {
    #pragma omp parallel for
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            real *d = dx + ((size_t)n * Cin + (Cin == 1 ? 0 : c)) * S;
            const real *g = dout + ((size_t)n * C + c) * S;
            real sc = scale[c];
            SIMD
            for (long s = 0; s < S; s++) d[s] += g[s] / sc;
        }
}

/* The channel norm sqrt(sum_c v_c^2) of position s of one sample (C,S). */
static inline double FN(chan_norm)(const real *v, int C, long S, long s) {
    double q = 0;
    for (int c = 0; c < C; c++) q += (double)v[(size_t)c * S + s] * v[(size_t)c * S + s];
    return sqrt(q);
}

void FN(unit_sqdist_forward)(real *out, const real *x, const real *y, const real *w, int N,
                             int C, long S, double eps) {
    for (int n = 0; n < N; n++) {
        const real *xn = x + (size_t)n * C * S, *yn = y + (size_t)n * C * S;
        double acc = 0;
        #pragma omp parallel for reduction(+:acc)
        for (long s = 0; s < S; s++) {
            double ax = 1 / (FN(chan_norm)(xn, C, S, s) + eps);
            double ay = 1 / (FN(chan_norm)(yn, C, S, s) + eps);
            for (int c = 0; c < C; c++) {
                double d = xn[(size_t)c * S + s] * ax - yn[(size_t)c * S + s] * ay;
                acc += w[c] * d * d;
            }
        }
        out[n] += (real)(acc / (double)S);
    }
}

void FN(unit_sqdist_backward)(real *dx, real *dy, const real *dout, const real *x,
                              const real *y, const real *w, int N, int C, long S, double eps) {
    for (int n = 0; n < N; n++) {
        const real *xn = x + (size_t)n * C * S, *yn = y + (size_t)n * C * S;
        real *dxn = dx ? dx + (size_t)n * C * S : NULL, *dyn = dy ? dy + (size_t)n * C * S : NULL;
        double g = 2.0 * dout[n] / (double)S;
        #pragma omp parallel for
        for (long s = 0; s < S; s++) {
            /* with a = 1/(r + eps), u_c = dL/d(x_c a_x) = 2 g w_c (x_c a_x - y_c a_y) / S:
             *   dx_c += a_x u_c - x_c a_x^2 / r_x * sum_k u_k x_k
             *   dy_c -= a_y u_c - y_c a_y^2 / r_y * sum_k u_k y_k
             * At r = 0 (every channel 0, as after a ReLU) the second term is
             * 0/0 in PyTorch too, where the ReLU's backward masks it; here it
             * is 0 and the first stays finite (the same after the ReLU). */
            double rx = FN(chan_norm)(xn, C, S, s), ry = FN(chan_norm)(yn, C, S, s);
            double ax = 1 / (rx + eps), ay = 1 / (ry + eps), ux = 0, uy = 0;
            for (int c = 0; c < C; c++) {
                double xc = xn[(size_t)c * S + s], yc = yn[(size_t)c * S + s];
                double u = g * w[c] * (xc * ax - yc * ay);
                ux += u * xc, uy += u * yc;
            }
            double kx = rx > 0 ? -ux * ax * ax / rx : 0, ky = ry > 0 ? -uy * ay * ay / ry : 0;
            for (int c = 0; c < C; c++) {
                size_t i = (size_t)c * S + s;
                double u = g * w[c] * (xn[i] * ax - yn[i] * ay);
                if (dxn) dxn[i] += (real)(ax * u + kx * xn[i]);
                if (dyn) dyn[i] -= (real)(ay * u + ky * yn[i]);
            }
        }
    }
}
