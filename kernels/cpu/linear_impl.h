/* Linear layer body, included twice by linear.c: real=float with
 * GEMM=cblas_sgemm, real=double with GEMM=cblas_dgemm. No include guard. */

void FN(linear_forward)(real *out, const real *inp, const real *weight, const real *bias,
                        int B, int IC, int OC) {
    // out(B,OC) = inp(B,IC) @ weight(OC,IC)^T
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, B, OC, IC, 1, inp, IC, weight, IC, 0, out, OC);
    if (!bias) return;
    for (int b = 0; b < B; b++)
        for (int o = 0; o < OC; o++) out[(size_t)b * OC + o] += bias[o];
}

void FN(linear_backward)(real *dinp, real *dweight, real *dbias, const real *dout,
                         const real *inp, const real *weight, int B, int IC, int OC) {
    // dinp(B,IC) += dout(B,OC) @ weight(OC,IC)
    if (dinp)
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, IC, OC, 1, dout, OC, weight, IC, 1,
             dinp, IC);
    // dweight(OC,IC) += dout(B,OC)^T @ inp(B,IC)
    if (dweight)
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, B, 1, dout, OC, inp, IC, 1,
             dweight, IC);
    if (dbias)
        for (int o = 0; o < OC; o++) {
            double s = 0;
            for (int b = 0; b < B; b++) s += dout[(size_t)b * OC + o];
            dbias[o] += (real)s;
        }
}
