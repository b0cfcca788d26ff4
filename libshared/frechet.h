/* Distances between two sets of feature vectors: the Frechet distance of
 * their Gaussian fits (FID; Heusel et al. 2017) and the kernel inception
 * distance (KID; Binkowski et al. 2018), everything in double.
 *
 * Features are (n, d) row-major float matrices, one row per sample. */
#ifndef LSDM_FRECHET_H
#define LSDM_FRECHET_H

#include <stdint.h>

/* Mean and unbiased covariance (ddof 1, as numpy.cov) of n >= 2 rows. */
typedef struct {
    int d;
    long n;
    double *mu;  /* (d) */
    double *cov; /* (d, d), symmetric */
} frechet_stats;

int frechet_stats_compute(frechet_stats *s, const float *feat, long n, int d);
void frechet_stats_free(frechet_stats *s);

/* FID = |mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt(S1^1/2 S2 S1^1/2).
 * The square roots through a symmetric eigensolver (LAPACKE_dsyevr), tiny
 * negative eigenvalues (rounding) clamped to 0. This is tr sqrtm(S1 S2)
 * of the reference code (same eigenvalues), without its complex detour.
 * Returns 0, or -1 with lsdm_err (different d, solver failure). */
int frechet_distance(const frechet_stats *a, const frechet_stats *b, double *fid);

/* Unbiased MMD^2 with the cubic polynomial kernel k(x,y) = (x.y/d + 1)^3
 * (KID paper, torch-fidelity):
 *   sum_{i!=j} k(x_i,x_j)/(m(m-1)) + sum_{i!=j} k(y_i,y_j)/(n(n-1))
 *   - 2 sum_{i,j} k(x_i,y_j)/(m n).
 * subsets 0 (or subset_size 0): one subset, every sample of each set
 * (m = nx, n = ny). Otherwise `subsets` draws of subset_size rows from
 * each set, without replacement, from Philox(seed); *mean and *std (ddof 0,
 * as torch-fidelity) over the draws. Needs at least 2 rows per set and
 * subset_size <= min(nx, ny). Returns 0, or -1 with lsdm_err. */
int kid_compute(const float *x, long nx, const float *y, long ny, int d, int subsets, long subset_size,
                uint64_t seed, double *mean, double *std);

#endif
