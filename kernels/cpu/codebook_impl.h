/* The codebook's lookup and commitment loss, included twice by
 * codebook.c (real=float, FN(x)=x and real=double, FN(x)=x##_f64); the
 * finite-difference tests run the double one. Sums in double. */

int FN(codebook_lookup)(real *zq, const int32_t *idx, const real *emb, int N, int C, long S, int K) {
    if (N < 1 || C < 1 || S < 1 || K < 1) return lsdm_err("codebook_lookup: bad sizes N %d C %d S %ld K %d", N, C, S, K);
    size_t M = (size_t)N * (size_t)S;
    for (size_t m = 0; m < M; m++)
        if (idx[m] < 0 || idx[m] >= K)
            return lsdm_err("codebook_lookup: index %ld at vector %zu is not a code in [0,%d)", (long)idx[m], m, K);
#pragma omp parallel for schedule(static) if (M * (size_t)C > 65536)
    for (int n = 0; n < N; n++) {
        const int32_t *in = idx + (size_t)n * S;
        real *out = zq + (size_t)n * C * S;
        for (long s = 0; s < S; s++) {
            const real *e = emb + (size_t)in[s] * C;
            for (int c = 0; c < C; c++) out[(size_t)c * S + s] = e[c];
        }
    }
    return 0;
}

double FN(codebook_commitment_forward)(const real *z, const real *zq, size_t n, double beta) {
    double sum = 0;
#pragma omp parallel for reduction(+ : sum) schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        double d = (double)z[i] - (double)zq[i];
        sum += d * d;
    }
    return n ? beta * sum / (double)n : 0.0;
}

void FN(codebook_commitment_backward)(real *dz, const real *dzq, const real *z, const real *zq,
                                      size_t n, real beta, real scale) {
    if (!n) return;
    real g = (real)(2.0 * (double)scale * (double)beta / (double)n);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) dz[i] += (dzq ? dzq[i] : 0) + g * (z[i] - zq[i]);
}
