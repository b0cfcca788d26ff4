#include "phantom.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "rng.h"

const char LSDM_PHANTOM_LABELS[] = "0=background,1=fat,2=fibroglandular,3=vessel,4=muscle";
const float lsdm_phantom_means[LSDM_PHANTOM_CLASSES] = {0.00f, 0.80f, 0.35f, 0.90f, 0.20f};
/* relative texture amplitude of each class */
static const float texture_amp[LSDM_PHANTOM_CLASSES] = {0.0f, 0.06f, 0.10f, 0.04f, 0.08f};

/* Philox streams, one per purpose, so that changing one part of the
 * model leaves the random numbers of the others as they were. */
enum { S_GEOMETRY, S_SHAPE, S_FGT1, S_FGT2, S_RIDGE, S_TEXTURE, S_BIAS, S_VESSELS, S_NOISE };

enum { L_BG = 0, L_FAT = 1, L_FGT = 2, L_VESSEL = 3, L_MUSCLE = 4 };

void lsdm_phantom_defaults(lsdm_phantom_params *p) {
    p->d = 32;
    p->h = 256;
    p->w = 256;
    p->spacing[0] = 2.0;
    p->spacing[1] = 0.7;
    p->spacing[2] = 0.7;
    p->seed = 0;
    p->noise = LSDM_PHANTOM_NOISE;
}

void lsdm_phantom_affine(const lsdm_phantom_params *p, double a[16]) {
    const double *sp = p->spacing;
    memset(a, 0, 16 * sizeof *a);
    /* rows x, y, z; columns d, h, w, translation */
    a[0 * 4 + 2] = sp[2];
    a[0 * 4 + 3] = -0.5 * (double)(p->w - 1) * sp[2];
    a[1 * 4 + 1] = sp[1];
    a[1 * 4 + 3] = -0.5 * (double)(p->h - 1) * sp[1];
    a[2 * 4 + 0] = sp[0];
    a[2 * 4 + 3] = -0.5 * (double)(p->d - 1) * sp[0];
    a[15] = 1;
}

/* ------------------------------------------------------------ coordinates */

/* Anatomy lives in normalised coordinates: u (left-right) runs -1..1 over
 * the width, v (posterior-anterior) -1..1 over the height, z (inferior-
 * superior) in the same unit as u, L = half the field of view's width in
 * mm. Noise lattices use the physical directions (u, v scaled to mm / L,
 * z) so that textures stay isotropic whatever the spacing. */
typedef struct {
    int64_t D, H, W;
    double L;        /* mm per unit of u and z */
    double vscale;   /* mm / L per unit of v: (H * sh / 2) / L */
    double sd;       /* slice spacing in mm */
} frame;

static double frame_u(const frame *f, int64_t w) { return f->W > 1 ? (2.0 * (double)w - (double)(f->W - 1)) / (double)f->W : 0.0; }
static double frame_v(const frame *f, int64_t h) { return f->H > 1 ? (2.0 * (double)h - (double)(f->H - 1)) / (double)f->H : 0.0; }
static double frame_z(const frame *f, int64_t d) { return ((double)d - 0.5 * (double)(f->D - 1)) * f->sd / f->L; }

/* normalised (u, v, z) -> continuous voxel index (d, h, w) */
static void frame_to_voxel(const frame *f, const double uvz[3], double dhw[3]) {
    dhw[0] = uvz[2] * f->L / f->sd + 0.5 * (double)(f->D - 1);
    dhw[1] = uvz[1] * 0.5 * (double)f->H + 0.5 * (double)(f->H - 1);
    dhw[2] = uvz[0] * 0.5 * (double)f->W + 0.5 * (double)(f->W - 1);
}

/* --------------------------------------------------------------- lattices */

/* Value noise: uniform values in [-1, 1] on a lattice of `cell` units,
 * smoothstep-trilinear in between. Covers the whole volume. Each lattice
 * is turned in the u-v plane by its own angle (rational cosine and sine:
 * exact everywhere), so the lattice axes do not line up into visible
 * horizontal and vertical edges. */
typedef struct {
    int n[3];       /* z, v, u lattice sizes */
    double o[3];    /* coordinate of lattice point 0, in the turned frame */
    double cell;
    double cs, sn;  /* rotation */
    float *val;
} lattice;

/* Pythagorean triples: cos and sin of the turn of lattice `stream`. */
static const double turns[6][2] = {
    {3.0 / 5, 4.0 / 5}, {5.0 / 13, 12.0 / 13}, {15.0 / 17, 8.0 / 17},
    {7.0 / 25, 24.0 / 25}, {20.0 / 29, 21.0 / 29}, {35.0 / 37, 12.0 / 37},
};

static int lattice_init(lattice *lt, const frame *f, double cell, uint64_t seed, uint64_t stream) {
    /* turned, the u-v square fits in a square of half-width sqrt(1 + vscale^2) */
    double r = sqrt(1.0 + f->vscale * f->vscale) + cell;
    double half[3] = {0.5 * (double)f->D * f->sd / f->L + cell, r, r};
    lt->cs = turns[stream % 6][0];
    lt->sn = turns[stream % 6][1];
    /* anatomy scales with the width: a field of view thousands of times
     * deeper or taller than wide would need absurd lattices */
    double count = 1;
    for (int i = 0; i < 3; i++) count *= floor(2.0 * half[i] / cell) + 3;
    if (count > (double)(1 << 26))
        return lsdm_err("phantom field of view too elongated (%.4g x %.4g x %.4g mm, d x h x w)",
                        (double)f->D * f->sd, 2.0 * f->vscale * f->L, 2.0 * f->L);
    size_t total = 1;
    for (int i = 0; i < 3; i++) {
        lt->o[i] = -half[i];
        lt->n[i] = (int)(2.0 * half[i] / cell) + 3;
        total *= (size_t)lt->n[i];
    }
    lt->cell = cell;
    lt->val = malloc(total * sizeof *lt->val);
    if (!lt->val) return lsdm_err("out of memory (noise lattice of %zu values)", total);
    lsdm_rng_fill_uniform(lt->val, total, seed, stream, 0);
    for (size_t i = 0; i < total; i++) lt->val[i] = 2.0f * lt->val[i] - 1.0f;
    return 0;
}

static void lattice_free(lattice *lt) {
    free(lt->val);
    lt->val = NULL;
}

static double smooth01(double t) { return t * t * (3.0 - 2.0 * t); }

/* Noise at physical position (z, pv, u), pv = v * vscale. */
static double lattice_at(const lattice *lt, double z, double pv, double u) {
    double p[3] = {z, lt->sn * u + lt->cs * pv, lt->cs * u - lt->sn * pv}, fr[3];
    int ix[3];
    for (int a = 0; a < 3; a++) {
        double g = (p[a] - lt->o[a]) / lt->cell;
        if (g < 0) g = 0;
        int i = (int)g;
        if (i > lt->n[a] - 2) i = lt->n[a] - 2;
        ix[a] = i;
        fr[a] = smooth01(g - i < 1.0 ? g - i : 1.0);
    }
    const float *b = lt->val + ((size_t)ix[0] * (size_t)lt->n[1] + (size_t)ix[1]) * (size_t)lt->n[2] + (size_t)ix[2];
    size_t sv = (size_t)lt->n[2], sz = (size_t)lt->n[1] * sv;
    double c00 = b[0] + fr[2] * (b[1] - b[0]);
    double c01 = b[sv] + fr[2] * (b[sv + 1] - b[sv]);
    double c10 = b[sz] + fr[2] * (b[sz + 1] - b[sz]);
    double c11 = b[sz + sv] + fr[2] * (b[sz + sv + 1] - b[sz + sv]);
    double c0 = c00 + fr[1] * (c01 - c00), c1 = c10 + fr[1] * (c11 - c10);
    return c0 + fr[0] * (c1 - c0);
}

/* ---------------------------------------------------------------- anatomy */

typedef struct {
    double uc, vb, zc;        /* centre: lateral, on the chest wall, through-plane */
    double ru, rv, rback, rz; /* radii: lateral, anterior, posterior, through-plane */
    double tilt;              /* lateral drift of the axis per unit of v */
} breast;

typedef struct {
    double vt, at, bt, taper; /* thorax ellipse: centre v, semi-axes u and v, change with z */
    double muscle, fat;       /* chest wall muscle and subcutaneous fat thickness */
    breast b[2];
    double density;           /* fibroglandular share of the eligible breast tissue */
    double grad_u, grad_v;    /* linear part of the bias field */
    double vessel_scale;      /* vessel radii scale: 1 at a 180 mm field of view */
} anatomy;

static void anatomy_sample(anatomy *an, const frame *f, uint64_t seed) {
    lsdm_rng r;
    lsdm_rng_init(&r, seed, S_GEOMETRY);
    an->vt = -1.1 + lsdm_rng_range(&r, -0.06, 0.06);
    an->at = lsdm_rng_range(&r, 0.88, 1.0);
    an->bt = lsdm_rng_range(&r, 0.8, 0.92);
    an->taper = lsdm_rng_range(&r, -0.15, 0.15);
    an->muscle = lsdm_rng_range(&r, 0.05, 0.09);
    an->fat = lsdm_rng_range(&r, 0.025, 0.05);
    for (int k = 0; k < 2; k++) {
        breast *b = &an->b[k];
        double side = k ? 1.0 : -1.0;
        b->uc = side * lsdm_rng_range(&r, 0.42, 0.52);
        double q = b->uc / an->at;
        /* the base sits a little behind the chest wall surface at uc */
        b->vb = an->vt + an->bt * sqrt(q * q < 1 ? 1 - q * q : 0) - 0.05;
        b->ru = lsdm_rng_range(&r, 0.32, 0.44);
        b->rv = lsdm_rng_range(&r, 0.55, 0.95);
        if (b->vb + b->rv > 0.92) b->rv = 0.92 - b->vb;
        b->rback = lsdm_rng_range(&r, 0.3, 0.45);
        b->rz = lsdm_rng_range(&r, 0.45, 0.75);
        b->zc = lsdm_rng_range(&r, -0.12, 0.12);
        b->tilt = side * lsdm_rng_range(&r, 0.0, 0.15);
    }
    an->density = lsdm_rng_range(&r, 0.15, 0.5);
    an->grad_u = lsdm_rng_range(&r, -0.05, 0.05);
    an->grad_v = lsdm_rng_range(&r, -0.08, 0.08);
    an->vessel_scale = f->L / 90.0 < 1.0 ? f->L / 90.0 : 1.0;
}

/* Breast membership: <= 1 inside. The axis drifts sideways as it goes
 * forward; the posterior half is flatter (rback) where it meets the wall. */
static double breast_f(const breast *b, double u, double v, double z) {
    double du = (u - b->uc - b->tilt * (v - b->vb)) / b->ru;
    double dv = (v - b->vb) / (v >= b->vb ? b->rv : b->rback);
    double dz = (z - b->zc) / b->rz;
    return du * du + dv * dv + dz * dz;
}

/* A smooth periodic wave of period 1 and amplitude 1 (piecewise
 * parabolic, C1), made of exact operations only: keeps vessel paths
 * identical on every libm. */
static double wave(double t) {
    double x = t - floor(t);
    return x < 0.5 ? 16.0 * x * (0.5 - x) : -16.0 * (x - 0.5) * (1.0 - x);
}

/* Label of a voxel from the geometry alone (no fibroglandular tissue or
 * vessels yet). *fb gets the breast function (<= 1 inside), min over both. */
static int anatomy_label(const anatomy *an, double u, double v, double z, double shape, double *fb) {
    double s = 1.0 + an->taper * z; /* the chest narrows or widens along z */
    s = s < 0.75 ? 0.75 : s > 1.25 ? 1.25 : s;
    double a = an->at * s, b = an->bt * s, dv = v - an->vt;
    double ai = a - an->muscle, bi = b - an->muscle, ao = a + an->fat, bo = b + an->fat;
    double f0 = breast_f(&an->b[0], u, v, z) + shape, f1 = breast_f(&an->b[1], u, v, z) + shape;
    *fb = f0 < f1 ? f0 : f1;
    if ((u / ai) * (u / ai) + (dv / bi) * (dv / bi) <= 1.0) return L_BG; /* thorax, dark */
    if ((u / a) * (u / a) + (dv / b) * (dv / b) <= 1.0) return L_MUSCLE;
    if (*fb <= 1.0 || (u / ao) * (u / ao) + (dv / bo) * (dv / bo) <= 1.0) return L_FAT;
    return L_BG;
}

/* ----------------------------------------------------------------- vessels */

typedef struct {
    const frame *f;
    const double *spacing;
    uint8_t *lab;
} raster;

/* Mark the fat and fibroglandular voxels within radius r_mm of segment
 * a-b (voxel coordinates). Radii are at least 0.55 voxel on each axis,
 * so a vessel never breaks up between slices. */
static void raster_segment(const raster *rs, const double a[3], const double b[3], double r_mm) {
    const frame *f = rs->f;
    int64_t dims[3] = {f->D, f->H, f->W}, lo[3], hi[3];
    double rad[3], sa[3], sb[3], ab[3], ab2 = 0;
    for (int k = 0; k < 3; k++) {
        rad[k] = r_mm / rs->spacing[k];
        if (rad[k] < 0.55) rad[k] = 0.55;
        double mn = a[k] < b[k] ? a[k] : b[k], mx = a[k] < b[k] ? b[k] : a[k];
        lo[k] = (int64_t)ceil(mn - rad[k]);
        hi[k] = (int64_t)floor(mx + rad[k]);
        if (lo[k] < 0) lo[k] = 0;
        if (hi[k] > dims[k] - 1) hi[k] = dims[k] - 1;
        if (lo[k] > hi[k]) return;
        /* scaled space: the tube has radius 1 */
        sa[k] = a[k] / rad[k];
        sb[k] = b[k] / rad[k];
        ab[k] = sb[k] - sa[k];
        ab2 += ab[k] * ab[k];
    }
    for (int64_t d = lo[0]; d <= hi[0]; d++)
        for (int64_t h = lo[1]; h <= hi[1]; h++)
            for (int64_t w = lo[2]; w <= hi[2]; w++) {
                double p[3] = {(double)d / rad[0], (double)h / rad[1], (double)w / rad[2]};
                double t = 0;
                if (ab2 > 0) {
                    t = ((p[0] - sa[0]) * ab[0] + (p[1] - sa[1]) * ab[1] + (p[2] - sa[2]) * ab[2]) / ab2;
                    t = t < 0 ? 0 : t > 1 ? 1 : t;
                }
                double dist2 = 0;
                for (int k = 0; k < 3; k++) {
                    double e = p[k] - (sa[k] + t * ab[k]);
                    dist2 += e * e;
                }
                if (dist2 > 1.0) continue;
                uint8_t *l = &rs->lab[((size_t)d * (size_t)f->H + (size_t)h) * (size_t)f->W + (size_t)w];
                if (*l == L_FAT || *l == L_FGT) *l = L_VESSEL;
            }
}

/* One vessel from s to e (normalised coordinates): a straight line with
 * sideways and through-plane meanders that vanish at both ends, tapering
 * from r_mm to 0.6 r_mm. */
static void raster_vessel(const raster *rs, lsdm_rng *r, const double s[3], const double e[3], double r_mm, double amp) {
    enum { STEPS = 32 };
    double au = amp * lsdm_rng_range(r, 0.3, 1.0), az = amp * lsdm_rng_range(r, 0.3, 1.0);
    double fu = lsdm_rng_range(r, 0.7, 2.0), fz = lsdm_rng_range(r, 0.7, 2.0);
    double pu = lsdm_rng_range(r, 0, 1), pz = lsdm_rng_range(r, 0, 1);
    double prev[3];
    for (int i = 0; i <= STEPS; i++) {
        double t = (double)i / STEPS, env = 4.0 * t * (1.0 - t), q[3], vox[3];
        for (int k = 0; k < 3; k++) q[k] = s[k] + (e[k] - s[k]) * t;
        q[0] += au * env * wave(fu * t + pu);
        q[2] += az * env * wave(fz * t + pz);
        frame_to_voxel(rs->f, q, vox);
        if (i > 0) raster_segment(rs, prev, vox, r_mm * (1.0 - 0.4 * (t - 0.5 / STEPS)));
        memcpy(prev, vox, sizeof prev);
    }
}

/* 4 to 7 vessels per breast from the chest wall towards the nipple, some
 * with a side branch. */
static void anatomy_vessels(const anatomy *an, const raster *rs, uint64_t seed) {
    lsdm_rng r;
    lsdm_rng_init(&r, seed, S_VESSELS);
    for (int k = 0; k < 2; k++) {
        const breast *b = &an->b[k];
        int nv = 4 + (int)(lsdm_rng_u32(&r) % 4);
        for (int i = 0; i < nv; i++) {
            double s[3], e[3];
            s[0] = b->uc + lsdm_rng_range(&r, -0.5, 0.5) * b->ru;
            s[1] = b->vb + 0.02;
            s[2] = b->zc + lsdm_rng_range(&r, -0.6, 0.6) * b->rz;
            e[1] = b->vb + b->rv * lsdm_rng_range(&r, 0.55, 0.9);
            e[0] = b->uc + b->tilt * (e[1] - b->vb) + lsdm_rng_range(&r, -0.35, 0.35) * b->ru;
            e[2] = s[2] + lsdm_rng_range(&r, -0.15, 0.15) * b->rz;
            double r_mm = lsdm_rng_range(&r, 0.8, 1.6) * an->vessel_scale;
            raster_vessel(rs, &r, s, e, r_mm, 0.08);
            if (lsdm_rng_range(&r, 0, 1) < 0.6) {
                double t0 = lsdm_rng_range(&r, 0.3, 0.6), m[3], e2[3];
                for (int c = 0; c < 3; c++) m[c] = s[c] + (e[c] - s[c]) * t0;
                e2[0] = m[0] + lsdm_rng_range(&r, -0.4, 0.4) * b->ru;
                e2[1] = m[1] + b->rv * lsdm_rng_range(&r, 0.15, 0.35);
                e2[2] = m[2] + lsdm_rng_range(&r, -0.3, 0.3) * b->rz;
                raster_vessel(rs, &r, m, e2, 0.7 * r_mm, 0.04);
            }
        }
    }
}

/* ------------------------------------------------------------- generation */

/* Score threshold above which `share` of the n finite scores lie:
 * a 4096-bin histogram, exact enough and independent of order. */
static float share_threshold(const float *score, size_t n, double share) {
    float lo = INFINITY, hi = -INFINITY;
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(score[i])) continue;
        if (score[i] < lo) lo = score[i];
        if (score[i] > hi) hi = score[i];
        count++;
    }
    if (!count || hi <= lo) return hi;
    enum { BINS = 4096 };
    size_t *hist = calloc(BINS, sizeof *hist);
    if (!hist) return hi;
    double scale = BINS / ((double)hi - lo);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(score[i])) continue;
        int bin = (int)(((double)score[i] - lo) * scale);
        hist[bin < BINS ? bin : BINS - 1]++;
    }
    size_t want = (size_t)(share * (double)count), above = 0;
    int bin = BINS;
    while (bin > 0 && above < want) above += hist[--bin];
    free(hist);
    return (float)(lo + bin / scale);
}

/* Pass 1: geometry labels, and in img the fibroglandular score of every
 * voxel that may hold such tissue (NaN elsewhere). */
static void generate_geometry(const frame *f, const anatomy *an, const lattice *shp, const lattice *g1,
                              const lattice *g2, const lattice *rg, float *img, uint8_t *lab) {
    size_t i = 0;
    for (int64_t d = 0; d < f->D; d++) {
        double z = frame_z(f, d);
        for (int64_t h = 0; h < f->H; h++) {
            double v = frame_v(f, h), pv = v * f->vscale;
            for (int64_t w = 0; w < f->W; w++, i++) {
                double u = frame_u(f, w), fb;
                double shape = 0.3 * lattice_at(shp, z, pv, u);
                int l = anatomy_label(an, u, v, z, shape, &fb);
                lab[i] = (uint8_t)l;
                img[i] = NAN;
                /* eligible: inside a breast, off its skin, and in front of the
                 * retromammary fat on the chest wall */
                const breast *b = &an->b[u < 0 ? 0 : 1];
                if (l != L_FAT || fb > 0.85 || v < b->vb + 0.04) continue;
                double du = (u - b->uc - b->tilt * (v - b->vb)) / b->ru, dz = (z - b->zc) / b->rz;
                double central = 1.0 - du * du - dz * dz;
                if (central < 0) central = 0;
                double ridge = 1.0 - 2.0 * fabs(lattice_at(rg, z, pv, u));
                img[i] = (float)(0.45 * lattice_at(g1, z, pv, u) + 0.25 * lattice_at(g2, z, pv, u) + 0.3 * ridge + 0.5 * central);
            }
        }
    }
}

/* Pass 2: intensities from the labels, texture, bias field and noise. */
static int generate_image(const frame *f, const anatomy *an, const lattice *tex, const lattice *bias, float noise,
                          uint64_t seed, const uint8_t *lab, float *img) {
    size_t slice = (size_t)f->H * (size_t)f->W;
    float *nrm = malloc(2 * slice * sizeof *nrm);
    if (!nrm) return lsdm_err("out of memory (noise of one slice)");
    size_t i = 0;
    for (int64_t d = 0; d < f->D; d++) {
        double z = frame_z(f, d);
        /* voxel i takes normals 2i and 2i+1 of the noise stream */
        lsdm_rng_fill_normal(nrm, 2 * slice, seed, S_NOISE, 2 * (uint64_t)i);
        const float *n = nrm;
        for (int64_t h = 0; h < f->H; h++) {
            double v = frame_v(f, h), pv = v * f->vscale;
            for (int64_t w = 0; w < f->W; w++, i++, n += 2) {
                double u = frame_u(f, w);
                int l = lab[i];
                double clean = 0;
                if (l != L_BG) {
                    double b = 1.0 + an->grad_u * u + an->grad_v * v + 0.06 * lattice_at(bias, z, pv, u);
                    b = b < 0.85 ? 0.85 : b > 1.15 ? 1.15 : b;
                    clean = lsdm_phantom_means[l] * (1.0 + texture_amp[l] * lattice_at(tex, z, pv, u)) * b;
                    clean = clean < 0 ? 0 : clean > 1 ? 1 : clean;
                }
                double re = clean + noise * n[0], im = noise * n[1];
                double val = sqrt(re * re + im * im);
                img[i] = (float)(val > 1 ? 1 : val);
            }
        }
    }
    free(nrm);
    return 0;
}

int lsdm_phantom_generate(const lsdm_phantom_params *p, float *img, uint8_t *lab) {
    if (p->d < 1 || p->h < 1 || p->w < 1) return lsdm_err("phantom shape must be at least 1x1x1");
    for (int k = 0; k < 3; k++)
        if (!(p->spacing[k] > 0) || !isfinite(p->spacing[k])) return lsdm_err("phantom spacing must be positive");
    frame f = {p->d, p->h, p->w, 0.5 * (double)p->w * p->spacing[2], 0, p->spacing[0]};
    f.vscale = 0.5 * (double)p->h * p->spacing[1] / f.L;
    anatomy an;
    anatomy_sample(&an, &f, p->seed);

    /* cell sizes in units of L: 0.035 is ~3 mm at the default 180 mm field */
    lattice shp = {0}, g1 = {0}, g2 = {0}, rg = {0}, tex = {0}, bias = {0};
    int rc = -1;
    if (lattice_init(&shp, &f, 0.4, p->seed, S_SHAPE) || lattice_init(&g1, &f, 0.22, p->seed, S_FGT1) ||
        lattice_init(&g2, &f, 0.07, p->seed, S_FGT2) || lattice_init(&rg, &f, 0.15, p->seed, S_RIDGE) ||
        lattice_init(&tex, &f, 0.035, p->seed, S_TEXTURE) || lattice_init(&bias, &f, 0.8, p->seed, S_BIAS))
        goto done;

    generate_geometry(&f, &an, &shp, &g1, &g2, &rg, img, lab);
    size_t n = (size_t)p->d * (size_t)p->h * (size_t)p->w;
    float thr = share_threshold(img, n, an.density);
    for (size_t i = 0; i < n; i++)
        if (isfinite(img[i]) && img[i] >= thr) lab[i] = L_FGT;
    raster rs = {&f, p->spacing, lab};
    anatomy_vessels(&an, &rs, p->seed);
    rc = generate_image(&f, &an, &tex, &bias, p->noise, p->seed, lab, img);
done:
    lattice_free(&shp);
    lattice_free(&g1);
    lattice_free(&g2);
    lattice_free(&rg);
    lattice_free(&tex);
    lattice_free(&bias);
    return rc;
}

static int phantom_keys(const lsdm_phantom_params *p, const char *name, const char *role, lsdm_record *r) {
    double a[16];
    lsdm_phantom_affine(p, a);
    char means[128];
    int len = 0;
    for (int c = 0; c < LSDM_PHANTOM_CLASSES; c++)
        len += snprintf(means + len, sizeof means - (size_t)len, "%s%d=%.2f", c ? "," : "", c, (double)lsdm_phantom_means[c]);
    if (lsdm_record_set(r, "name", name) || lsdm_record_set(r, "role", role) || lsdm_record_set_affine(r, a) ||
        lsdm_record_set_spacing(r, p->spacing) || lsdm_record_set(r, "class-means", means))
        return -1;
    return 0;
}

int lsdm_phantom_records(const lsdm_phantom_params *p, const char *name, lsdm_record *img, lsdm_record *lab) {
    int64_t shape[4] = {1, p->d, p->h, p->w};
    if (lsdm_record_alloc(img, LSDM_F32, 4, shape) || lsdm_record_alloc(lab, LSDM_U8, 4, shape)) return -1;
    if (lsdm_phantom_generate(p, img->data, lab->data)) return -1;
    if (phantom_keys(p, name, "image", img) || phantom_keys(p, name, "labels", lab) ||
        lsdm_record_set(lab, "labels", LSDM_PHANTOM_LABELS))
        return -1;
    return 0;
}
