/* FID and KID of two feature sets (frechet.h), in double, with BLAS and
 * LAPACK doing the matrix work. */
#include "frechet.h"

#include <cblas.h>
#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "rng.h"

/* ---- mean and covariance ---- */

int frechet_stats_compute(frechet_stats *s, const float *feat, long n, int d) {
    memset(s, 0, sizeof *s);
    if (n < 2) return lsdm_err("%ld sample(s): the covariance needs at least 2", n);
    if (d < 1) return lsdm_err("no feature dimensions");
    s->d = d, s->n = n;
    s->mu = calloc((size_t)d, sizeof *s->mu);
    s->cov = malloc((size_t)d * d * sizeof *s->cov);
    double *xc = malloc((size_t)n * d * sizeof *xc); /* (n, d) centred */
    if (!s->mu || !s->cov || !xc) {
        free(xc);
        frechet_stats_free(s);
        return lsdm_err("out of memory for the statistics of %ld x %d features", n, d);
    }
    for (long i = 0; i < n; i++)
        for (int j = 0; j < d; j++) s->mu[j] += feat[i * d + j];
    for (int j = 0; j < d; j++) s->mu[j] /= (double)n;
    for (long i = 0; i < n; i++)
        for (int j = 0; j < d; j++) xc[i * d + j] = (double)feat[i * d + j] - s->mu[j];
    /* cov = xc^T xc / (n - 1): the upper triangle, mirrored */
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, (int)n, 1.0 / (double)(n - 1), xc, d, 0.0, s->cov, d);
    for (int i = 0; i < d; i++)
        for (int j = 0; j < i; j++) s->cov[(size_t)i * d + j] = s->cov[(size_t)j * d + i];
    free(xc);
    return 0;
}

void frechet_stats_free(frechet_stats *s) {
    free(s->mu);
    free(s->cov);
    memset(s, 0, sizeof *s);
}

/* ---- the Frechet distance ---- */

/* Eigenvalues w (d) of the symmetric a (d,d; destroyed) and, if v, the
 * eigenvectors as columns of v (d,d). z and isuppz: scratch.
 * Eigenvalues below d * eps * max|w| are rounding noise of a singular
 * matrix (a covariance of fewer samples than dimensions): they become 0,
 * as do negative ones. Their square roots would otherwise add noise of
 * sqrt(eps) relative size (a set against itself would not give 0). */
static int sym_eig(double *a, int d, double *w, double *v, double *z, lapack_int *isuppz) {
    lapack_int m = 0;
    lapack_int info = LAPACKE_dsyevr(LAPACK_ROW_MAJOR, v ? 'V' : 'N', 'A', 'U', d, a, d, 0, 0, 0, 0, 0.0, &m, w,
                                     v ? v : z, d, isuppz);
    if (info != 0 || m != d) return lsdm_err("the symmetric eigensolver failed (dsyevr info %d)", (int)info);
    double big = 0;
    for (int i = 0; i < d; i++) big = fmax(big, fabs(w[i]));
    for (int i = 0; i < d; i++)
        if (w[i] <= d * DBL_EPSILON * big) w[i] = 0;
    return 0;
}

int frechet_distance(const frechet_stats *a, const frechet_stats *b, double *fid) {
    int d = a->d;
    if (b->d != d) return lsdm_err("feature dimensions differ: %d and %d", a->d, b->d);
    size_t dd = (size_t)d * d;
    double *buf = malloc((4 * dd + d) * sizeof *buf);
    lapack_int *isuppz = malloc(2 * (size_t)d * sizeof *isuppz);
    if (!buf || !isuppz) {
        free(buf);
        free(isuppz);
        return lsdm_err("out of memory for %d x %d matrices", d, d);
    }
    double *work = buf, *v = buf + dd, *r = buf + 2 * dd, *t = buf + 3 * dd, *w = buf + 4 * dd;
    int rc = 0;
    /* r = S1^1/2 = V diag(sqrt(max(l, 0))) V^T */
    memcpy(work, a->cov, dd * sizeof *work);
    if (!(rc = sym_eig(work, d, w, v, NULL, isuppz))) {
        for (int i = 0; i < d; i++)
            for (int k = 0; k < d; k++) t[(size_t)i * d + k] = v[(size_t)i * d + k] * sqrt(w[k]);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d, d, d, 1.0, t, d, v, d, 0.0, r, d);
        /* work = r S2 r, symmetrised against rounding */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d, d, d, 1.0, r, d, b->cov, d, 0.0, t, d);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d, d, d, 1.0, t, d, r, d, 0.0, work, d);
        for (int i = 0; i < d; i++)
            for (int j = 0; j < i; j++) {
                double m = 0.5 * (work[(size_t)i * d + j] + work[(size_t)j * d + i]);
                work[(size_t)i * d + j] = work[(size_t)j * d + i] = m;
            }
        rc = sym_eig(work, d, w, NULL, v, isuppz);
    }
    if (!rc) {
        double tr_sqrt = 0, tr1 = 0, tr2 = 0, dmu = 0;
        for (int i = 0; i < d; i++) {
            tr_sqrt += sqrt(w[i]);
            tr1 += a->cov[(size_t)i * d + i];
            tr2 += b->cov[(size_t)i * d + i];
            dmu += (a->mu[i] - b->mu[i]) * (a->mu[i] - b->mu[i]);
        }
        *fid = dmu + tr1 + tr2 - 2 * tr_sqrt;
    }
    free(buf);
    free(isuppz);
    return rc;
}

/* ---- KID ---- */

/* Sum of k(x_i, y_j) = (x_i.y_j/d + 1)^3 over all i < nx, j < ny, leaving
 * out i == j when same (x is y). Blocks of rows keep the Gram matrix small. */
static double kernel_sum(const double *x, long nx, const double *y, long ny, int d, int same, double *g,
                         long block) {
    double total = 0;
    for (long i0 = 0; i0 < nx; i0 += block) {
        long bi = nx - i0 < block ? nx - i0 : block;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)bi, (int)ny, d, 1.0 / d, x + i0 * d, d, y, d, 0.0,
                    g, (int)ny);
        for (long i = 0; i < bi; i++)
            for (long j = 0; j < ny; j++) {
                if (same && i0 + i == j) continue;
                double k = g[i * ny + j] + 1.0;
                total += k * k * k;
            }
    }
    return total;
}

/* Unbiased MMD^2 of the rows x (m, d) and y (n, d). */
static double mmd2(const double *x, long m, const double *y, long n, int d, double *g, long block) {
    double kxx = kernel_sum(x, m, x, m, d, 1, g, block), kyy = kernel_sum(y, n, y, n, d, 1, g, block);
    double kxy = kernel_sum(x, m, y, n, d, 0, g, block);
    return kxx / ((double)m * (m - 1)) + kyy / ((double)n * (n - 1)) - 2 * kxy / ((double)m * n);
}

/* dst (k, d) <- k rows of src (n, d) drawn without replacement (a partial
 * Fisher-Yates shuffle of perm, which holds a permutation of 0..n-1). */
static void draw_rows(double *dst, const float *src, long n, int d, long k, long *perm, lsdm_rng *r) {
    for (long i = 0; i < k; i++) {
        long j = i + (long)lsdm_rng_range(r, 0, (double)(n - i));
        if (j >= n) j = n - 1;
        long tmp = perm[i];
        perm[i] = perm[j], perm[j] = tmp;
        for (int c = 0; c < d; c++) dst[i * d + c] = src[perm[i] * d + c];
    }
}

int kid_compute(const float *x, long nx, const float *y, long ny, int d, int subsets, long subset_size,
                uint64_t seed, double *mean, double *std) {
    if (nx < 2 || ny < 2) return lsdm_err("KID needs at least 2 samples per set (have %ld and %ld)", nx, ny);
    int all = subsets <= 0 || subset_size <= 0;
    if (!all && (subset_size < 2 || subset_size > nx || subset_size > ny))
        return lsdm_err("KID subset size %ld is not in 2..%ld (the smaller set)", subset_size, nx < ny ? nx : ny);
    long m = all ? nx : subset_size, n = all ? ny : subset_size, block = 256;
    long big = m > n ? m : n;
    double *a = malloc((size_t)m * d * sizeof *a), *b = malloc((size_t)n * d * sizeof *b);
    double *g = malloc((size_t)(block < big ? block : big) * big * sizeof *g);
    long *px = malloc((size_t)nx * sizeof *px), *py = malloc((size_t)ny * sizeof *py);
    if (!a || !b || !g || !px || !py) {
        free(a), free(b), free(g), free(px), free(py);
        return lsdm_err("out of memory for KID");
    }
    for (long i = 0; i < nx; i++) px[i] = i;
    for (long i = 0; i < ny; i++) py[i] = i;
    lsdm_rng r;
    lsdm_rng_init(&r, seed, 0);
    int draws = all ? 1 : subsets;
    double *vals = malloc((size_t)draws * sizeof *vals), s = 0, s2 = 0;
    for (int k = 0; k < draws && vals; k++) {
        if (all) {
            for (size_t i = 0; i < (size_t)m * d; i++) a[i] = x[i];
            for (size_t i = 0; i < (size_t)n * d; i++) b[i] = y[i];
        } else {
            draw_rows(a, x, nx, d, m, px, &r);
            draw_rows(b, y, ny, d, n, py, &r);
        }
        vals[k] = mmd2(a, m, b, n, d, g, block);
        s += vals[k];
    }
    if (vals) {
        *mean = s / draws;
        for (int k = 0; k < draws; k++) s2 += (vals[k] - *mean) * (vals[k] - *mean);
        *std = sqrt(s2 / draws);
    }
    free(a), free(b), free(g), free(px), free(py);
    if (!vals) return lsdm_err("out of memory for KID");
    free(vals);
    return 0;
}
