/* conv_transpose3d body, included twice by conv_transpose3d.c: with
 * real = float, FN(x) = x and with real = double, FN(x) = x##_f64.
 * No include guard on purpose. Everything goes through d->adj, the conv3d
 * from the output grid (Cout channels) to the input grid (Cin channels). */

void FN(conv_transpose3d_forward)(real *out, real *work, const real *inp, const real *weight,
                                  const real *bias, const conv_transpose3d_dims *d) {
    const size_t S = (size_t)d->OD * d->OH * d->OW;
    // start from the bias (or 0): the adjoint's data gradient accumulates
    for (int n = 0; n < d->N; n++) {
#pragma omp parallel for schedule(static)
        for (int co = 0; co < d->Cout; co++) {
            real *y = out + ((size_t)n * d->Cout + co) * S;
            real b = bias ? bias[co] : 0;
            for (size_t i = 0; i < S; i++) y[i] = b;
        }
    }
    // out += adj^T(inp): col (Cout*k, q) = weight^T . inp, then col2vol
    FN(conv3d_backward)(out, NULL, NULL, work, inp, NULL, weight, &d->adj);
}

void FN(conv_transpose3d_backward)(real *dinp, real *dweight, real *dbias, real *work,
                                   const real *dout, const real *inp, const real *weight,
                                   const conv_transpose3d_dims *d) {
    // dinp += adj(dout): vol2col of dout, then weight . col
    if (dinp) FN(conv3d_forward_beta)(dinp, work, dout, weight, NULL, &d->adj, 1);
    // dweight (Cin, Cout*k) += inp (Cin, P) . col(dout)^T: adj's weight gradient
    // with inp in the place of its output gradient
    if (dweight) FN(conv3d_backward)(NULL, dweight, NULL, work, inp, dout, NULL, &d->adj);
    if (dbias) {
        const size_t S = (size_t)d->OD * d->OH * d->OW;
#pragma omp parallel for schedule(static)
        for (int co = 0; co < d->Cout; co++) {
            double s = 0; // a long sum: accumulate in double even for float
            for (int n = 0; n < d->N; n++) {
                // eight partial sums: the adds pipeline (one chain is latency-bound)
                const real *p = dout + ((size_t)n * d->Cout + co) * S;
                double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                size_t i = 0;
                for (; i + 8 <= S; i += 8)
                    for (int j = 0; j < 8; j++) a[j] += p[i + j];
                for (; i < S; i++) a[i % 8] += p[i];
                s += ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
            }
            dbias[co] += (real)s;
        }
    }
}
