#include "stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

void lsdm_stats_compute(const void *buf, lsdm_dtype t, size_t n, lsdm_stats *out) {
    memset(out, 0, sizeof *out);
    out->count = n;
    double lo = INFINITY, hi = -INFINITY, sum = 0;
    for (size_t i = 0; i < n; i++) {
        double v = lsdm_elem_get(buf, t, i);
        if (isnan(v)) { out->nan++; continue; }
        if (isinf(v)) { out->inf++; continue; }
        out->finite++;
        sum += v;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
    }
    if (!out->finite) {
        out->min = out->max = out->mean = out->std = NAN;
        return;
    }
    double mean = sum / (double)out->finite, ss = 0, sd = 0;
    for (size_t i = 0; i < n; i++) {
        double v = lsdm_elem_get(buf, t, i);
        if (!isfinite(v)) continue;
        ss += (v - mean) * (v - mean);
        sd += v - mean;
    }
    /* sd is 0 in exact arithmetic; subtracting sd^2/n removes the rounding
     * error of the mean (the "corrected two-pass" algorithm) */
    double var = (ss - sd * sd / (double)out->finite) / (double)out->finite;
    out->min = lo;
    out->max = hi;
    out->mean = mean + sd / (double)out->finite;
    out->std = var > 0 ? sqrt(var) : 0;
}

static void swap_d(double *a, ptrdiff_t i, ptrdiff_t j) {
    double t = a[i];
    a[i] = a[j];
    a[j] = t;
}

/* Reorder a[0..n) so that a[k] is the k-th smallest, nothing after it is
 * smaller and nothing before it larger (quickselect, Hoare partition: runs
 * of equal values, common in images, split evenly). */
static void select_kth(double *a, ptrdiff_t n, ptrdiff_t k) {
    ptrdiff_t lo = 0, hi = n - 1;
    while (hi > lo) {
        ptrdiff_t mid = lo + (hi - lo) / 2;
        if (a[mid] < a[lo]) swap_d(a, lo, mid);
        if (a[hi] < a[lo]) swap_d(a, lo, hi);
        if (a[hi] < a[mid]) swap_d(a, mid, hi);
        double pivot = a[mid];
        ptrdiff_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i <= j) swap_d(a, i++, j--);
        }
        /* now a[lo..j] <= pivot, a[i..hi] >= pivot, anything between == pivot */
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return;
    }
}

int lsdm_percentiles(const void *buf, lsdm_dtype t, size_t n, const double *p, int np, double *out) {
    double *v = malloc((n ? n : 1) * sizeof *v);
    if (!v) return lsdm_err("out of memory (%zu values for percentiles)", n);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        double x = lsdm_elem_get(buf, t, i);
        if (isfinite(x)) v[m++] = x;
    }
    if (!m) { free(v); return lsdm_err("no finite values"); }
    for (int q = 0; q < np; q++) {
        double pos = p[q] / 100 * (double)(m - 1);
        if (pos < 0) pos = 0;
        if (pos > (double)(m - 1)) pos = (double)(m - 1);
        ptrdiff_t k = (ptrdiff_t)floor(pos);
        double frac = pos - (double)k;
        select_kth(v, (ptrdiff_t)m, k);
        double v0 = v[k], v1 = v0;
        if (frac > 0) { /* the next rank is the smallest value after k */
            v1 = v[k + 1];
            for (size_t i = (size_t)k + 2; i < m; i++)
                if (v[i] < v1) v1 = v[i];
        }
        out[q] = v0 + frac * (v1 - v0);
    }
    free(v);
    return 0;
}

void lsdm_hist_free(lsdm_hist *h) {
    free(h->values);
    free(h->counts);
    memset(h, 0, sizeof *h);
}

static int int64_cmp(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Keep the nonzero bins of a dense count array starting at value base. */
static int hist_from_dense(const size_t *dense, size_t span, int64_t base, lsdm_hist *out) {
    size_t k = 0;
    for (size_t i = 0; i < span; i++) k += dense[i] != 0;
    out->values = malloc((k ? k : 1) * sizeof *out->values);
    out->counts = malloc((k ? k : 1) * sizeof *out->counts);
    if (!out->values || !out->counts) return lsdm_err("out of memory");
    for (size_t i = 0; i < span; i++) {
        if (!dense[i]) continue;
        out->values[out->n] = base + (int64_t)i;
        out->counts[out->n++] = dense[i];
    }
    return 0;
}

int lsdm_hist_compute(const void *buf, lsdm_dtype t, size_t n, lsdm_hist *out) {
    memset(out, 0, sizeof *out);
    if (t != LSDM_U8 && t != LSDM_I16 && t != LSDM_I32)
        return lsdm_err("a histogram of labels needs an integer dtype (u8, i16, i32), not %s", lsdm_dtype_name(t));
    out->total = n;
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (size_t i = 0; i < n; i++) {
        int64_t v = (int64_t)lsdm_elem_get(buf, t, i);
        if (v < lo) lo = v;
        if (v > hi) hi = v;
    }
    if (!n) return 0;
    uint64_t span = (uint64_t)(hi - lo) + 1;
    int rc;
    if (span <= ((uint64_t)1 << 22)) { /* the usual case: a dense count array */
        size_t *dense = calloc((size_t)span, sizeof *dense);
        if (!dense) return lsdm_err("out of memory");
        for (size_t i = 0; i < n; i++) dense[(int64_t)lsdm_elem_get(buf, t, i) - lo]++;
        rc = hist_from_dense(dense, (size_t)span, lo, out);
        free(dense);
    } else { /* values spread over i32: sort a copy and count runs */
        int64_t *v = malloc(n * sizeof *v);
        if (!v) return lsdm_err("out of memory");
        for (size_t i = 0; i < n; i++) v[i] = (int64_t)lsdm_elem_get(buf, t, i);
        qsort(v, n, sizeof *v, int64_cmp);
        size_t k = 1;
        for (size_t i = 1; i < n; i++) k += v[i] != v[i - 1];
        out->values = malloc(k * sizeof *out->values);
        out->counts = malloc(k * sizeof *out->counts);
        rc = out->values && out->counts ? 0 : lsdm_err("out of memory");
        for (size_t i = 0; !rc && i < n; i++) {
            if (i == 0 || v[i] != v[i - 1]) { out->values[out->n] = v[i]; out->counts[out->n++] = 0; }
            out->counts[out->n - 1]++;
        }
        free(v);
    }
    if (rc) lsdm_hist_free(out);
    return rc;
}

void lsdm_orientation(const double a[16], char dhw[3], char code[4]) {
    static const char pos[3] = {'R', 'A', 'S'}, neg[3] = {'L', 'P', 'I'};
    double norm[3];
    for (int c = 0; c < 3; c++) {
        norm[c] = sqrt(a[c] * a[c] + a[4 + c] * a[4 + c] + a[8 + c] * a[8 + c]);
        dhw[c] = '?';
    }
    int row_used[3] = {0, 0, 0}, col_used[3] = {0, 0, 0};
    for (int step = 0; step < 3; step++) {
        int br = -1, bc = -1;
        double best = 0;
        for (int c = 0; c < 3; c++) {
            if (col_used[c] || norm[c] == 0) continue;
            for (int r = 0; r < 3; r++) {
                double share = fabs(a[r * 4 + c]) / norm[c];
                if (!row_used[r] && share > best) { best = share; br = r; bc = c; }
            }
        }
        if (br < 0) break;
        row_used[br] = col_used[bc] = 1;
        dhw[bc] = a[br * 4 + bc] > 0 ? pos[br] : neg[br];
    }
    code[0] = dhw[2];
    code[1] = dhw[1];
    code[2] = dhw[0];
    code[3] = 0;
}
