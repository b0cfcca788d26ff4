/* Paired image metrics in float64 (see imgmetrics.h). SSIM filters the
 * five local moments with three 1-D passes (W, H, then D), each computing
 * only the voxels that survive the crop, threaded over slices. Every sum
 * is taken in a fixed order, so results do not depend on the thread count. */
#include "imgmetrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define RADIUS (LSDM_SSIM_WIN / 2)

void lsdm_imgm_errors(lsdm_imgm_errsum *out, const double *a, const double *b, const unsigned char *mask,
                      int64_t C, int64_t S) {
    double sse = 0, sae = 0;
    int64_t n = 0;
    for (int64_t c = 0; c < C; c++)
        for (int64_t i = 0; i < S; i++) {
            if (mask && !mask[i]) continue;
            double e = a[c * S + i] - b[c * S + i];
            sse += e * e;
            sae += fabs(e);
            n++;
        }
    out->sse = sse;
    out->sae = sae;
    out->n = n;
}

double lsdm_imgm_psnr(double mse, double range) {
    if (mse == 0) return INFINITY;
    return 10 * log10(range * range / mse);
}

/* --------------------------------------------------------------- filter */

/* How SSIM treats one axis: filtered by the Gaussian or left alone, and
 * how many voxels are dropped at each end of the result. */
typedef struct {
    int filter;
    int64_t crop;
} ssim_axis;

/* scipy.ndimage's _gaussian_kernel1d(1.5, 0, 5). */
static void gauss_taps(double g[LSDM_SSIM_WIN]) {
    double s2 = LSDM_SSIM_SIGMA * LSDM_SSIM_SIGMA, sum = 0;
    for (int k = 0; k < LSDM_SSIM_WIN; k++) {
        double x = k - RADIUS;
        g[k] = exp(-0.5 / s2 * x * x);
        sum += g[k];
    }
    for (int k = 0; k < LSDM_SSIM_WIN; k++) g[k] /= sum;
}

/* scipy.ndimage mode 'reflect' (d c b a | a b c d | d c b a), repeated
 * for reaches past a whole period. */
static int64_t reflect(int64_t i, int64_t n) {
    int64_t p = 2 * n;
    i %= p;
    if (i < 0) i += p;
    return i < n ? i : p - 1 - i;
}

/* Source index of each tap of each output position along one axis:
 * idx[o * WIN + k]; without filtering, one "tap" (k = 0) per output. */
static int64_t *axis_taps(int64_t n, const ssim_axis *ax, int64_t m) {
    int64_t *idx = malloc((size_t)m * LSDM_SSIM_WIN * sizeof *idx);
    if (!idx) return NULL;
    for (int64_t o = 0; o < m; o++)
        for (int k = 0; k < LSDM_SSIM_WIN; k++)
            idx[o * LSDM_SSIM_WIN + k] = ax->filter ? reflect(o + ax->crop - RADIUS + k, n) : o + ax->crop;
    return idx;
}

enum { MOM_X, MOM_Y, MOM_XX, MOM_YY, MOM_XY, MOM_N };

static inline double moment(int q, double x, double y) {
    switch (q) {
    case MOM_X: return x;
    case MOM_Y: return y;
    case MOM_XX: return x * x;
    case MOM_YY: return y * y;
    default: return x * y;
    }
}

typedef struct {
    int64_t n[3], m[3]; /* input and output extents (d,h,w) */
    const ssim_axis *ax;
    const int64_t *idx[3];
    double g[LSDM_SSIM_WIN];
    double *t1, *t2; /* (n0,n1,m2), (n0,m1,m2) */
} ssim_plan;

/* out (m0,m1,m2) <- moment q of x, y (n0,n1,n2) filtered along W, H, D. */
static void filter_moment(const ssim_plan *p, double *out, int q, const double *x, const double *y) {
    const int64_t n0 = p->n[0], n1 = p->n[1], n2 = p->n[2], m0 = p->m[0], m1 = p->m[1], m2 = p->m[2];
    const int W = LSDM_SSIM_WIN;
    const int kw = p->ax[2].filter ? W : 1, kh = p->ax[1].filter ? W : 1, kd = p->ax[0].filter ? W : 1;
    const double one = 1.0;
    const double *gw = kw > 1 ? p->g : &one, *gh = kh > 1 ? p->g : &one, *gd = kd > 1 ? p->g : &one;
#pragma omp parallel for schedule(static)
    for (int64_t d = 0; d < n0; d++)
        for (int64_t h = 0; h < n1; h++) {
            const double *xr = x + (d * n1 + h) * n2, *yr = y + (d * n1 + h) * n2;
            double *o = p->t1 + (d * n1 + h) * m2;
            for (int64_t w = 0; w < m2; w++) {
                const int64_t *ix = p->idx[2] + w * W;
                double s = 0;
                for (int k = 0; k < kw; k++) s += gw[k] * moment(q, xr[ix[k]], yr[ix[k]]);
                o[w] = s;
            }
        }
#pragma omp parallel for schedule(static)
    for (int64_t d = 0; d < n0; d++)
        for (int64_t h = 0; h < m1; h++) {
            double *o = p->t2 + (d * m1 + h) * m2;
            const int64_t *ih = p->idx[1] + h * W;
            for (int64_t w = 0; w < m2; w++) o[w] = 0;
            for (int k = 0; k < kh; k++) {
                const double *r = p->t1 + (d * n1 + ih[k]) * m2;
                for (int64_t w = 0; w < m2; w++) o[w] += gh[k] * r[w];
            }
        }
    const int64_t plane = m1 * m2;
#pragma omp parallel for schedule(static)
    for (int64_t d = 0; d < m0; d++) {
        double *o = out + d * plane;
        const int64_t *id = p->idx[0] + d * W;
        for (int64_t i = 0; i < plane; i++) o[i] = 0;
        for (int k = 0; k < kd; k++) {
            const double *r = p->t2 + id[k] * plane;
            for (int64_t i = 0; i < plane; i++) o[i] += gd[k] * r[i];
        }
    }
}

/* Mean SSIM and mean contrast-structure term of one channel. */
static int ssim_channel(double *ssim, double *cs, const double *x, const double *y, const int64_t n[3],
                        const ssim_axis ax[3], double C1, double C2) {
    ssim_plan p = {.ax = ax};
    int64_t vol = 1;
    for (int a = 0; a < 3; a++) {
        p.n[a] = n[a];
        p.m[a] = n[a] - 2 * ax[a].crop;
        if (p.m[a] < 1) return lsdm_err("SSIM: axis %d of extent %lld is too short for its crop", a, (long long)n[a]);
        vol *= p.m[a];
    }
    gauss_taps(p.g);
    double *mom[MOM_N] = {0}, *part = NULL;
    int rc = -1;
    for (int a = 0; a < 3; a++) p.idx[a] = axis_taps(n[a], &ax[a], p.m[a]);
    p.t1 = malloc((size_t)(n[0] * n[1] * p.m[2]) * sizeof *p.t1);
    p.t2 = malloc((size_t)(n[0] * p.m[1] * p.m[2]) * sizeof *p.t2);
    part = malloc((size_t)p.m[0] * 2 * sizeof *part);
    int ok = p.idx[0] && p.idx[1] && p.idx[2] && p.t1 && p.t2 && part;
    for (int q = 0; q < MOM_N && ok; q++) ok = (mom[q] = malloc((size_t)vol * sizeof *mom[q])) != NULL;
    if (!ok) { lsdm_err("out of memory"); goto done; }

    for (int q = 0; q < MOM_N; q++) filter_moment(&p, mom[q], q, x, y);
    const int64_t plane = p.m[1] * p.m[2];
#pragma omp parallel for schedule(static)
    for (int64_t d = 0; d < p.m[0]; d++) {
        double ss = 0, sc = 0;
        for (int64_t i = d * plane; i < (d + 1) * plane; i++) {
            double ux = mom[MOM_X][i], uy = mom[MOM_Y][i];
            double vx = mom[MOM_XX][i] - ux * ux, vy = mom[MOM_YY][i] - uy * uy, vxy = mom[MOM_XY][i] - ux * uy;
            double c = (2 * vxy + C2) / (vx + vy + C2);
            sc += c;
            ss += (2 * ux * uy + C1) / (ux * ux + uy * uy + C1) * c;
        }
        part[2 * d] = ss;
        part[2 * d + 1] = sc;
    }
    double ss = 0, sc = 0;
    for (int64_t d = 0; d < p.m[0]; d++) {
        ss += part[2 * d];
        sc += part[2 * d + 1];
    }
    *ssim = ss / (double)vol;
    *cs = sc / (double)vol;
    rc = 0;
done:
    for (int q = 0; q < MOM_N; q++) free(mom[q]);
    for (int a = 0; a < 3; a++) free((void *)p.idx[a]);
    free(p.t1);
    free(p.t2);
    free(part);
    return rc;
}

/* ----------------------------------------------------------------- SSIM */

int lsdm_imgm_ssim_window(const int64_t dims[3]) {
    int64_t thin = LSDM_SSIM_WIN;
    for (int a = 0; a < 3; a++)
        if (dims[a] > 1 && dims[a] < thin) thin = dims[a];
    return (int)(thin % 2 ? thin : thin - 1);
}

static int check_range(double range) {
    if (!(range > 0) || !isfinite(range)) return lsdm_err("data range must be positive and finite (got %g)", range);
    return 0;
}

int lsdm_imgm_ssim(double *out, int *win_used, const double *a, const double *b, int64_t C, const int64_t dims[3],
                   double range) {
    if (check_range(range)) return -1;
    int win = lsdm_imgm_ssim_window(dims);
    ssim_axis ax[3];
    for (int k = 0; k < 3; k++) {
        ax[k].filter = dims[k] > 1;
        ax[k].crop = dims[k] > 1 ? (win - 1) / 2 : 0;
    }
    double C1 = LSDM_SSIM_K1 * range, C2 = LSDM_SSIM_K2 * range, sum = 0;
    C1 *= C1;
    C2 *= C2;
    int64_t S = dims[0] * dims[1] * dims[2];
    for (int64_t c = 0; c < C; c++) {
        double s = 0, cs = 0;
        if (ssim_channel(&s, &cs, a + c * S, b + c * S, dims, ax, C1, C2)) return -1;
        sum += s;
    }
    *out = sum / (double)C;
    if (win_used) *win_used = win;
    return 0;
}

/* -------------------------------------------------------------- MS-SSIM */

static const double ms_weights[LSDM_MS_SSIM_LEVELS] = {0.0448, 0.2856, 0.3001, 0.2363, 0.1333};

/* The smaller of the last two non-unit extents; 0 if fewer than two. */
static int64_t ms_smaller_side(const int64_t dims[3]) {
    int64_t last[2] = {0, 0};
    int k = 0;
    for (int a = 2; a >= 0 && k < 2; a--)
        if (dims[a] > 1) last[k++] = dims[a];
    return k < 2 ? 0 : (last[0] < last[1] ? last[0] : last[1]);
}

int lsdm_imgm_ms_ssim_levels(const int64_t dims[3]) {
    int64_t side = ms_smaller_side(dims);
    int L = 0;
    while (L < LSDM_MS_SSIM_LEVELS && side > (int64_t)(LSDM_SSIM_WIN - 1) << L) L++;
    return L;
}

/* 2x average pooling as F.avg_pool3d(kernel 2, padding s % 2) with zeros
 * counted: out j of a pooled axis averages inputs 2j - p and 2j - p + 1.
 * Axes with pool[a] == 0 are kept as they are. */
static void avg_pool2(double *out, const double *in, const int64_t n[3], const int pool[3], int64_t m[3]) {
    int64_t pad[3];
    double div = 1;
    for (int a = 0; a < 3; a++) {
        pad[a] = pool[a] ? n[a] % 2 : 0;
        m[a] = pool[a] ? (n[a] + 1) / 2 : n[a];
        if (pool[a]) div *= 2;
    }
    const int64_t m0 = m[0], m1 = m[1], m2 = m[2];
#pragma omp parallel for schedule(static)
    for (int64_t d = 0; d < m0; d++)
        for (int64_t h = 0; h < m1; h++)
            for (int64_t w = 0; w < m2; w++) {
                double s = 0;
                for (int i = 0; i <= pool[0]; i++) {
                    int64_t sd = pool[0] ? 2 * d - pad[0] + i : d;
                    if (sd < 0 || sd >= n[0]) continue;
                    for (int j = 0; j <= pool[1]; j++) {
                        int64_t sh = pool[1] ? 2 * h - pad[1] + j : h;
                        if (sh < 0 || sh >= n[1]) continue;
                        for (int k = 0; k <= pool[2]; k++) {
                            int64_t sw = pool[2] ? 2 * w - pad[2] + k : w;
                            if (sw < 0 || sw >= n[2]) continue;
                            s += in[(sd * n[1] + sh) * n[2] + sw];
                        }
                    }
                }
                out[(d * m1 + h) * m2 + w] = s / div;
            }
}

static int ms_ssim_channel(double *out, const double *a, const double *b, const int64_t dims[3], double C1,
                           double C2, int L) {
    int64_t S = dims[0] * dims[1] * dims[2], n[3] = {dims[0], dims[1], dims[2]};
    int pool[3];
    for (int k = 0; k < 3; k++) pool[k] = dims[k] > 1; /* squeezed axes stay */
    double *buf = malloc((size_t)S * 4 * sizeof *buf);
    if (!buf) return lsdm_err("out of memory");
    double *x = buf, *y = buf + S, *nx = buf + 2 * S, *ny = buf + 3 * S;
    memcpy(x, a, (size_t)S * sizeof *x);
    memcpy(y, b, (size_t)S * sizeof *y);
    double wsum = 0, val = 1;
    for (int i = 0; i < L; i++) wsum += ms_weights[i];
    if (L == LSDM_MS_SSIM_LEVELS) wsum = 1; /* the standard weights as they are (they sum to 1.0001) */
    for (int i = 0; i < L; i++) {
        ssim_axis ax[3];
        for (int k = 0; k < 3; k++) {
            ax[k].filter = n[k] >= LSDM_SSIM_WIN; /* pytorch_msssim skips shorter axes */
            ax[k].crop = ax[k].filter ? RADIUS : 0;
        }
        double s = 0, cs = 0;
        if (ssim_channel(&s, &cs, x, y, n, ax, C1, C2)) { free(buf); return -1; }
        double v = i < L - 1 ? cs : s;
        val *= pow(v > 0 ? v : 0, ms_weights[i] / wsum);
        if (i < L - 1) {
            int64_t m[3];
            avg_pool2(nx, x, n, pool, m);
            avg_pool2(ny, y, n, pool, m);
            double *t = x; x = nx; nx = t;
            t = y; y = ny; ny = t;
            memcpy(n, m, sizeof n);
        }
    }
    free(buf);
    *out = val;
    return 0;
}

int lsdm_imgm_ms_ssim(double *out, int *levels_used, const double *a, const double *b, int64_t C,
                      const int64_t dims[3], double range, int levels) {
    if (check_range(range)) return -1;
    int fit = lsdm_imgm_ms_ssim_levels(dims);
    if (fit < 1)
        return lsdm_err("volume %lldx%lldx%lld is too small for MS-SSIM (the two last axes longer than 1 must both exceed %d voxels)",
                        (long long)dims[0], (long long)dims[1], (long long)dims[2], LSDM_SSIM_WIN - 1);
    if (levels > fit)
        return lsdm_err("volume %lldx%lldx%lld fits only %d MS-SSIM scale%s, not %d", (long long)dims[0],
                        (long long)dims[1], (long long)dims[2], fit, fit > 1 ? "s" : "", levels);
    int L = levels > 0 ? levels : fit;
    double C1 = LSDM_SSIM_K1 * range, C2 = LSDM_SSIM_K2 * range, sum = 0;
    C1 *= C1;
    C2 *= C2;
    int64_t S = dims[0] * dims[1] * dims[2];
    for (int64_t c = 0; c < C; c++) {
        double v = 0;
        if (ms_ssim_channel(&v, a + c * S, b + c * S, dims, C1, C2, L)) return -1;
        sum += v;
    }
    *out = sum / (double)C;
    if (levels_used) *levels_used = L;
    return 0;
}
