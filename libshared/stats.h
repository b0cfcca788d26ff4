/* Summaries of a tensor for the viewers (vol-info, vol-diff, vol-png):
 * value statistics in double precision, percentiles, histograms of
 * integer label maps, and the orientation code of an affine. */
#ifndef LSDM_STATS_H
#define LSDM_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"

typedef struct {
    size_t count;     /* all elements */
    size_t finite;    /* elements that are neither NaN nor +-Inf */
    size_t nan, inf;  /* NaN, and +Inf or -Inf */
    double min, max;  /* over the finite elements; NaN when there are none */
    double mean, std; /* over the finite elements; std divides by n (population) */
} lsdm_stats;

/* Statistics of buf[0..n) of type t. Two passes (mean, then the corrected
 * sum of squared deviations) so the std stays exact for large volumes. */
void lsdm_stats_compute(const void *buf, lsdm_dtype t, size_t n, lsdm_stats *out);

/* Percentiles p[0..np) (each 0..100) of the finite values of buf[0..n),
 * interpolated linearly between closest ranks (numpy's default), into
 * out[0..np). Works on a copy; buf is untouched. -1 (with lsdm_err) when
 * no value is finite. */
int lsdm_percentiles(const void *buf, lsdm_dtype t, size_t n, const double *p, int np, double *out);

/* Distinct values of an integer tensor and how often each occurs. */
typedef struct {
    int n;            /* distinct values */
    int64_t *values;  /* [n], ascending */
    size_t *counts;   /* [n] */
    size_t total;     /* elements counted */
} lsdm_hist;

/* Histogram of buf[0..n); t must be u8, i16 or i32. */
int lsdm_hist_compute(const void *buf, lsdm_dtype t, size_t n, lsdm_hist *out);
void lsdm_hist_free(lsdm_hist *h);

/* Anatomical direction of each record axis (d, h, w) from a record affine
 * (columns d, h, w; rows x, y, z in RAS mm): dhw[i] is one of R L A P S I,
 * the direction the axis points to as its index grows. Axes are matched to
 * x, y, z greedily by the largest share of each column's length, so every
 * letter pair is used once even for oblique affines. '?' for a zero column.
 * code gets the usual NIfTI order i, j, k = w, h, d, e.g. "RAS", and a NUL. */
void lsdm_orientation(const double a[16], char dhw[3], char code[4]);

#endif
