/* Blocked sums shared by the norms (GroupNorm, BatchNorm): included by
 * their _impl.h bodies, so compiled in float and double with them. No
 * include guard on purpose. Within blocks of NORM_BLOCK values the
 * accumulators are `real` (vectorised, and short enough that float error
 * stays ~1e-7), across blocks double. */
#ifndef NORM_BLOCK
#define NORM_BLOCK 64
#endif

/* s1 += sum(x - k), s2 += sum((x - k)^2). */
static void FN(norm_sums_shifted)(const real *x, int n, real k, double *s1, double *s2) {
    for (int i0 = 0; i0 < n; i0 += NORM_BLOCK) {
        int i1 = n - i0 < NORM_BLOCK ? n : i0 + NORM_BLOCK;
        real b1 = 0, b2 = 0;
        #pragma omp simd reduction(+:b1, b2)
        for (int i = i0; i < i1; i++) {
            real d = x[i] - k;
            b1 += d;
            b2 += d * d;
        }
        *s1 += b1;
        *s2 += b2;
    }
}

/* a += sum(dy), b += sum(dy * (x - m)), blocked the same way. */
static void FN(norm_sums_grad)(const real *dy, const real *x, int n, real m, double *a, double *b) {
    for (int i0 = 0; i0 < n; i0 += NORM_BLOCK) {
        int i1 = n - i0 < NORM_BLOCK ? n : i0 + NORM_BLOCK;
        real ba = 0, bb = 0;
        #pragma omp simd reduction(+:ba, bb)
        for (int i = i0; i < i1; i++) {
            ba += dy[i];
            bb += dy[i] * (x[i] - m);
        }
        *a += ba;
        *b += bb;
    }
}

