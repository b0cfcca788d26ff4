#include "resample.h"

#include <math.h>
#include <string.h>

#include "err.h"

/* Voxel-index tolerance of the rounding: far below any real sub-voxel
 * offset, far above the error of composing two affines in double. */
#define ROUND_EPS 1e-6

void lsdm_mat4_mul(const double a[16], const double b[16], double out[16]) {
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            double s = 0;
            for (int k = 0; k < 4; k++) s += a[4 * i + k] * b[4 * k + j];
            out[4 * i + j] = s;
        }
}

int lsdm_mat4_inverse(const double a[16], double out[16]) {
    if (a[12] != 0 || a[13] != 0 || a[14] != 0 || a[15] != 1)
        return lsdm_err("affine's last row is not 0 0 0 1");
    /* inverse of the 3x3 part R by cofactors; translation -R^-1 t */
    double r00 = a[0], r01 = a[1], r02 = a[2], r10 = a[4], r11 = a[5], r12 = a[6];
    double r20 = a[8], r21 = a[9], r22 = a[10];
    double c00 = r11 * r22 - r12 * r21, c01 = r12 * r20 - r10 * r22, c02 = r10 * r21 - r11 * r20;
    double det = r00 * c00 + r01 * c01 + r02 * c02;
    double scale = fabs(r00) + fabs(r01) + fabs(r02) + fabs(r10) + fabs(r11) + fabs(r12) +
                   fabs(r20) + fabs(r21) + fabs(r22);
    if (!isfinite(det) || fabs(det) <= 1e-12 * scale * scale * scale) return lsdm_err("affine is singular");
    double inv[9] = {
        c00 / det, (r02 * r21 - r01 * r22) / det, (r01 * r12 - r02 * r11) / det,
        c01 / det, (r00 * r22 - r02 * r20) / det, (r02 * r10 - r00 * r12) / det,
        c02 / det, (r01 * r20 - r00 * r21) / det, (r00 * r11 - r01 * r10) / det,
    };
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) out[4 * i + j] = inv[3 * i + j];
        out[4 * i + 3] = -(inv[3 * i] * a[3] + inv[3 * i + 1] * a[7] + inv[3 * i + 2] * a[11]);
    }
    out[12] = out[13] = out[14] = 0;
    out[15] = 1;
    return 0;
}

int lsdm_grid_from_record(const lsdm_record *r, lsdm_grid *g) {
    if (r->ndim < 3) return lsdm_err("a volume needs 3 dims (D,H,W), got %d", r->ndim);
    for (int k = 0; k < 3; k++) g->dim[k] = r->shape[r->ndim - 3 + k];
    int rc = lsdm_record_get_affine(r, g->affine);
    if (rc < 0) return -1;
    if (rc == 0) {
        double sp[3] = {1, 1, 1};
        if (lsdm_record_get_spacing(r, sp) < 0) return -1;
        memset(g->affine, 0, sizeof g->affine);
        for (int k = 0; k < 3; k++) g->affine[5 * k] = sp[k];
        g->affine[15] = 1;
    }
    double inv[16];
    return lsdm_mat4_inverse(g->affine, inv);
}

void lsdm_grid_spacing(const lsdm_grid *g, double sp[3]) {
    for (int k = 0; k < 3; k++) {
        const double *a = g->affine;
        sp[k] = sqrt(a[k] * a[k] + a[4 + k] * a[4 + k] + a[8 + k] * a[8 + k]);
    }
}

int lsdm_grid_respace(const lsdm_grid *in, const int64_t dim[3], const double sp[3], lsdm_grid *out) {
    double sp_in[3], sp_out[3], centre[3];
    lsdm_grid_spacing(in, sp_in);
    lsdm_grid g;
    for (int k = 0; k < 3; k++) {
        if (!(sp_in[k] > 0)) return lsdm_err("axis %d of the grid has zero spacing", k);
        double extent = (double)in->dim[k] * sp_in[k];
        int64_t n = dim && dim[k] > 0 ? dim[k] : 0;
        double s = sp && sp[k] > 0 ? sp[k] : 0;
        if (!n && s) n = (int64_t)floor(extent / s + 0.5);
        if (!n) n = in->dim[k];
        if (n < 1) n = 1;
        if (!s) s = extent / (double)n;
        g.dim[k] = n;
        sp_out[k] = s;
    }
    /* columns: the input's unit directions times the new spacing */
    memset(g.affine, 0, sizeof g.affine);
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 3; k++) g.affine[4 * i + k] = in->affine[4 * i + k] / sp_in[k] * sp_out[k];
    g.affine[15] = 1;
    /* translation: the world centre of the input lands on the output's centre */
    for (int i = 0; i < 3; i++) {
        centre[i] = in->affine[4 * i + 3];
        for (int k = 0; k < 3; k++) centre[i] += in->affine[4 * i + k] * ((double)in->dim[k] - 1) / 2;
    }
    for (int i = 0; i < 3; i++) {
        double t = centre[i];
        for (int k = 0; k < 3; k++) t -= g.affine[4 * i + k] * ((double)g.dim[k] - 1) / 2;
        g.affine[4 * i + 3] = t;
    }
    *out = g;
    return 0;
}

void lsdm_grid_window(const lsdm_grid *in, const int64_t off[3], const int64_t dim[3], lsdm_grid *out) {
    lsdm_grid g = *in;
    for (int i = 0; i < 3; i++) {
        double t = in->affine[4 * i + 3];
        for (int k = 0; k < 3; k++) t += in->affine[4 * i + k] * (double)off[k];
        g.affine[4 * i + 3] = t;
    }
    for (int k = 0; k < 3; k++) g.dim[k] = dim[k];
    *out = g;
}

void lsdm_grid_centre_offset(const int64_t in_dim[3], const int64_t dim[3], int64_t off[3]) {
    for (int k = 0; k < 3; k++) {
        int64_t d = in_dim[k] - dim[k]; /* floor division, also for padding (d < 0) */
        off[k] = d >= 0 ? d / 2 : -((-d + 1) / 2);
    }
}

/* round(x) with halves up and a tolerance; INT64_MIN when x is absurd */
static int64_t round_index(double x) {
    double r = floor(x + 0.5 + ROUND_EPS);
    return r > -9e18 && r < 9e18 ? (int64_t)r : INT64_MIN;
}

int lsdm_resample_nearest(const void *src, const lsdm_grid *gs, void *dst, const lsdm_grid *gd, size_t elem) {
    double inv[16], m[16];
    if (lsdm_mat4_inverse(gs->affine, inv)) return -1;
    lsdm_mat4_mul(inv, gd->affine, m); /* output index -> source index */
    const uint8_t *s = src;
    uint8_t *o = dst;
    const int64_t SD = gs->dim[0], SH = gs->dim[1], SW = gs->dim[2];
    for (int64_t d = 0; d < gd->dim[0]; d++)
        for (int64_t h = 0; h < gd->dim[1]; h++) {
            double base[3];
            for (int i = 0; i < 3; i++) base[i] = m[4 * i] * (double)d + m[4 * i + 1] * (double)h + m[4 * i + 3];
            for (int64_t w = 0; w < gd->dim[2]; w++, o += elem) {
                /* from the row base each time, so no error accumulates along w */
                int64_t sd = round_index(base[0] + m[2] * (double)w);
                int64_t sh = round_index(base[1] + m[6] * (double)w);
                int64_t sw = round_index(base[2] + m[10] * (double)w);
                if (sd < 0 || sd >= SD || sh < 0 || sh >= SH || sw < 0 || sw >= SW) {
                    memset(o, 0, elem);
                    continue;
                }
                const uint8_t *p = s + (size_t)((sd * SH + sh) * SW + sw) * elem;
                if (elem == 1) *o = *p;
                else memcpy(o, p, elem);
            }
        }
    return 0;
}

void lsdm_window_copy(const void *src, const int64_t sdim[3], const int64_t off[3],
                      void *dst, const int64_t ddim[3], size_t elem) {
    const uint8_t *s = src;
    uint8_t *o = dst;
    size_t row = (size_t)ddim[2] * elem;
    /* the w range that lies inside the source is the same for every row */
    int64_t w0 = off[2] < 0 ? -off[2] : 0, w1 = sdim[2] - off[2];
    if (w1 > ddim[2]) w1 = ddim[2];
    for (int64_t d = 0; d < ddim[0]; d++)
        for (int64_t h = 0; h < ddim[1]; h++, o += row) {
            int64_t sd = d + off[0], sh = h + off[1];
            memset(o, 0, row);
            if (sd < 0 || sd >= sdim[0] || sh < 0 || sh >= sdim[1] || w1 <= w0) continue;
            const uint8_t *p = s + (size_t)((sd * sdim[1] + sh) * sdim[2] + w0 + off[2]) * elem;
            memcpy(o + (size_t)w0 * elem, p, (size_t)(w1 - w0) * elem);
        }
}
