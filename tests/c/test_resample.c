/* Unit tests of grids and resampling: exact copies onto an equal grid,
 * axis flips and permutations (LPS vs RAS) undone through the affines,
 * respacing about the centre, crop/pad windows that keep world positions. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "err.h"
#include "resample.h"

/* An oblique affine with awkward numbers: rotation about two axes,
 * anisotropic spacing, non-integer translation. */
static void oblique_affine(double a[16]) {
    double c1 = cos(0.3), s1 = sin(0.3), c2 = cos(-1.1), s2 = sin(-1.1);
    double r1[16] = {c1, -s1, 0, 0, s1, c1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
    double r2[16] = {1, 0, 0, 0, 0, c2, -s2, 0, 0, s2, c2, 0, 0, 0, 0, 1};
    double sc[16] = {2.5, 0, 0, -71.3, 0, 0.9375, 0, 12.7, 0, 0, 1.1, 33.05, 0, 0, 0, 1};
    double t[16];
    lsdm_mat4_mul(r1, r2, t);
    lsdm_mat4_mul(t, sc, a);
}

static void fill_pattern(uint8_t *v, size_t n) {
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) { x = x * 1103515245u + 12345u; v[i] = (uint8_t)(x >> 24); }
}

static void world(const double a[16], double d, double h, double w, double out[3]) {
    for (int i = 0; i < 3; i++) out[i] = a[4 * i] * d + a[4 * i + 1] * h + a[4 * i + 2] * w + a[4 * i + 3];
}

static void test_inverse(void) {
    double a[16], inv[16], p[16];
    oblique_affine(a);
    CHECK(lsdm_mat4_inverse(a, inv) == 0);
    lsdm_mat4_mul(a, inv, p);
    double err = 0;
    for (int i = 0; i < 16; i++) err = fmax(err, fabs(p[i] - (i % 5 == 0)));
    CHECK(err < 1e-12);
    double sing[16] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    CHECK(lsdm_mat4_inverse(sing, inv) == -1 && strstr(lsdm_err_msg(), "singular"));
    double proj[16] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1};
    CHECK(lsdm_mat4_inverse(proj, inv) == -1);
}

static void test_identity_copy(void) {
    lsdm_grid g = {{7, 9, 11}, {0}};
    oblique_affine(g.affine);
    size_t n = 7 * 9 * 11;
    uint8_t *v = malloc(n), *o = malloc(n);
    fill_pattern(v, n);
    memset(o, 0xAA, n);
    CHECK(lsdm_resample_nearest(v, &g, o, &g, 1) == 0);
    CHECK(memcmp(v, o, n) == 0);
    /* 4-byte elements move whole */
    uint32_t *v4 = malloc(n * 4), *o4 = malloc(n * 4);
    for (size_t i = 0; i < n; i++) v4[i] = (uint32_t)i * 2654435761u;
    CHECK(lsdm_resample_nearest(v4, &g, o4, &g, 4) == 0);
    CHECK(memcmp(v4, o4, n * 4) == 0);
    free(v); free(o); free(v4); free(o4);
}

/* Flip the axes in mask (bit k: axis k) of volume v and of its affine;
 * resampling the flipped one onto the original grid must give v back. */
static void test_flips(void) {
    const int64_t D = 5, H = 6, W = 7;
    size_t n = (size_t)(D * H * W);
    lsdm_grid g = {{D, H, W}, {0}};
    oblique_affine(g.affine);
    uint8_t *v = malloc(n), *f = malloc(n), *o = malloc(n);
    fill_pattern(v, n);
    int all_equal = 1;
    for (int mask = 1; mask < 8; mask++) {
        for (int64_t d = 0; d < D; d++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t w = 0; w < W; w++) {
                    int64_t sd = mask & 1 ? D - 1 - d : d, sh = mask & 2 ? H - 1 - h : h, sw = mask & 4 ? W - 1 - w : w;
                    f[(d * H + h) * W + w] = v[(sd * H + sh) * W + sw];
                }
        /* A_f = A * F: flipped column negated, translation moved to the far end */
        lsdm_grid gf = g;
        for (int k = 0; k < 3; k++) {
            if (!(mask >> k & 1)) continue;
            for (int i = 0; i < 3; i++) {
                gf.affine[4 * i + 3] += gf.affine[4 * i + k] * (double)(g.dim[k] - 1);
                gf.affine[4 * i + k] = -gf.affine[4 * i + k];
            }
        }
        memset(o, 0xAA, n);
        CHECK(lsdm_resample_nearest(f, &gf, o, &g, 1) == 0);
        if (memcmp(o, v, n)) { all_equal = 0; fprintf(stderr, "flip mask %d differs\n", mask); }
    }
    CHECK(all_equal);

    /* a permutation: swap d and h in the data and the affine's columns */
    lsdm_grid gp = {{H, D, W}, {0}};
    memcpy(gp.affine, g.affine, sizeof g.affine);
    for (int i = 0; i < 3; i++) { gp.affine[4 * i] = g.affine[4 * i + 1]; gp.affine[4 * i + 1] = g.affine[4 * i]; }
    for (int64_t d = 0; d < D; d++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++) f[(h * D + d) * W + w] = v[(d * H + h) * W + w];
    CHECK(lsdm_resample_nearest(f, &gp, o, &g, 1) == 0);
    CHECK(memcmp(o, v, n) == 0);
    free(v); free(f); free(o);
}

/* A RAS 1 mm grid and the same voxels written LPS (x and y flipped). */
static void test_lps_to_ras(void) {
    const int64_t D = 4, H = 5, W = 6;
    size_t n = (size_t)(D * H * W);
    /* record order d,h,w = z,y,x, as NIfTI k,j,i */
    lsdm_grid ras = {{D, H, W}, {0, 0, 1, -3, 0, 1, 0, -2, 1, 0, 0, -1.5, 0, 0, 0, 1}};
    lsdm_grid lps = {{D, H, W}, {0, 0, -1, 2, 0, -1, 0, 2, 1, 0, 0, -1.5, 0, 0, 0, 1}};
    uint8_t *v = malloc(n), *f = malloc(n), *o = malloc(n);
    fill_pattern(v, n);
    for (int64_t d = 0; d < D; d++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++) f[(d * H + h) * W + w] = v[(d * H + (H - 1 - h)) * W + (W - 1 - w)];
    CHECK(lsdm_resample_nearest(f, &lps, o, &ras, 1) == 0);
    CHECK(memcmp(o, v, n) == 0);
    free(v); free(f); free(o);
}

static void test_respace(void) {
    /* 1 mm -> 2 mm about the centre: odd sizes land on every other voxel */
    lsdm_grid g = {{9, 9, 9}, {1, 0, 0, 10, 0, 1, 0, 20, 0, 0, 1, 30, 0, 0, 0, 1}}, t;
    double sp2[3] = {2, 2, 2}, sp[3];
    CHECK(lsdm_grid_respace(&g, NULL, sp2, &t) == 0);
    CHECK(t.dim[0] == 5 && t.dim[1] == 5 && t.dim[2] == 5);
    lsdm_grid_spacing(&t, sp);
    CHECK_NEAR(sp[0], 2, 1e-12);
    CHECK_NEAR(t.affine[3], 10, 1e-12); /* centre 14 = 10 + 2 * 2 */
    double ci[3], co[3];
    world(g.affine, 4, 4, 4, ci);
    world(t.affine, 2, 2, 2, co);
    CHECK_NEAR(ci[0] - co[0], 0, 1e-12); CHECK_NEAR(ci[1] - co[1], 0, 1e-12); CHECK_NEAR(ci[2] - co[2], 0, 1e-12);
    size_t n = 9 * 9 * 9;
    uint8_t v[9 * 9 * 9], o[125];
    fill_pattern(v, n);
    CHECK(lsdm_resample_nearest(v, &g, o, &t, 1) == 0);
    int ok = 1;
    for (int d = 0; d < 5; d++)
        for (int h = 0; h < 5; h++)
            for (int w = 0; w < 5; w++) ok &= o[(d * 5 + h) * 5 + w] == v[((2 * d) * 9 + 2 * h) * 9 + 2 * w];
    CHECK(ok);

    /* even sizes: centres fall between voxels, a half rounds up: 2i + 1 */
    lsdm_grid e = {{8, 8, 8}, {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}}, te;
    uint8_t ve[512], oe[64];
    fill_pattern(ve, 512);
    CHECK(lsdm_grid_respace(&e, NULL, sp2, &te) == 0 && te.dim[0] == 4);
    CHECK(lsdm_resample_nearest(ve, &e, oe, &te, 1) == 0);
    ok = 1;
    for (int d = 0; d < 4; d++)
        for (int h = 0; h < 4; h++)
            for (int w = 0; w < 4; w++) ok &= oe[(d * 4 + h) * 4 + w] == ve[((2 * d + 1) * 8 + 2 * h + 1) * 8 + 2 * w + 1];
    CHECK(ok);

    /* shape only: the extent is kept, spacing follows; orientation kept */
    lsdm_grid o3 = {{10, 20, 30}, {0}}, t3;
    oblique_affine(o3.affine);
    int64_t dim[3] = {5, 0, 60};
    double so[3], sn[3];
    CHECK(lsdm_grid_respace(&o3, dim, NULL, &t3) == 0);
    CHECK(t3.dim[0] == 5 && t3.dim[1] == 20 && t3.dim[2] == 60);
    lsdm_grid_spacing(&o3, so);
    lsdm_grid_spacing(&t3, sn);
    CHECK_NEAR(sn[0], so[0] * 2, 1e-12); CHECK_NEAR(sn[1], so[1], 1e-12); CHECK_NEAR(sn[2], so[2] / 2, 1e-12);
    for (int i = 0; i < 3; i++) CHECK_NEAR(t3.affine[4 * i] / sn[0], o3.affine[4 * i] / so[0], 1e-12);
    world(o3.affine, 4.5, 9.5, 14.5, ci);
    world(t3.affine, 2, 9.5, 29.5, co);
    CHECK_NEAR(ci[0], co[0], 1e-9); CHECK_NEAR(ci[1], co[1], 1e-9); CHECK_NEAR(ci[2], co[2], 1e-9);

    /* both: the same grid back is an exact copy */
    int64_t same[3] = {10, 20, 30};
    CHECK(lsdm_grid_respace(&o3, same, so, &t3) == 0);
    uint8_t *vo = malloc(6000), *oo = malloc(6000);
    fill_pattern(vo, 6000);
    CHECK(lsdm_resample_nearest(vo, &o3, oo, &t3, 1) == 0);
    CHECK(memcmp(vo, oo, 6000) == 0);
    free(vo); free(oo);
}

static void test_window(void) {
    int64_t in[3] = {181, 217, 181}, dim[3] = {32, 256, 256}, off[3];
    lsdm_grid_centre_offset(in, dim, off);
    CHECK(off[0] == 74 && off[1] == -20 && off[2] == -38);
    int64_t in2[3] = {4, 5, 6}, dim2[3] = {4, 5, 6};
    lsdm_grid_centre_offset(in2, dim2, off);
    CHECK(off[0] == 0 && off[1] == 0 && off[2] == 0);

    /* a window crossing every border: values and world positions kept */
    lsdm_grid g = {{6, 7, 8}, {0}}, wg;
    oblique_affine(g.affine);
    int64_t woff[3] = {-2, 3, -1}, wdim[3] = {5, 6, 10};
    uint8_t v[6 * 7 * 8], o[5 * 6 * 10], r[5 * 6 * 10];
    fill_pattern(v, sizeof v);
    for (size_t i = 0; i < sizeof v; i++) v[i] |= 1; /* no zeros in the source */
    lsdm_grid_window(&g, woff, wdim, &wg);
    lsdm_window_copy(v, g.dim, woff, o, wdim, 1);
    int ok = 1, zeros = 0;
    for (int64_t d = 0; d < 5; d++)
        for (int64_t h = 0; h < 6; h++)
            for (int64_t w = 0; w < 10; w++) {
                int64_t sd = d - 2, sh = h + 3, sw = w - 1;
                int inside = sd >= 0 && sd < 6 && sh >= 0 && sh < 7 && sw >= 0 && sw < 8;
                uint8_t want = inside ? v[(sd * 7 + sh) * 8 + sw] : 0;
                ok &= o[(d * 6 + h) * 10 + w] == want;
                zeros += !inside;
            }
    CHECK(ok);
    CHECK(zeros == 5 * 6 * 10 - 3 * 4 * 8);
    double a[3], b[3];
    world(wg.affine, 1, 2, 3, a);
    world(g.affine, 1 - 2, 2 + 3, 3 - 1, b);
    CHECK_NEAR(a[0], b[0], 1e-12); CHECK_NEAR(a[1], b[1], 1e-12); CHECK_NEAR(a[2], b[2], 1e-12);
    /* resampling onto the window's grid gives the same as copying */
    CHECK(lsdm_resample_nearest(v, &g, r, &wg, 1) == 0);
    CHECK(memcmp(r, o, sizeof o) == 0);
    /* a window entirely outside is all background */
    int64_t far[3] = {100, 0, 0};
    memset(o, 7, sizeof o);
    lsdm_window_copy(v, g.dim, far, o, wdim, 1);
    int allzero = 1;
    for (size_t i = 0; i < sizeof o; i++) allzero &= o[i] == 0;
    CHECK(allzero);
}

static void test_from_record(void) {
    lsdm_record r;
    lsdm_record_init(&r);
    int64_t shape[4] = {1, 3, 4, 5};
    lsdm_record_alloc(&r, LSDM_U8, 4, shape);
    lsdm_grid g;
    CHECK(lsdm_grid_from_record(&r, &g) == 0);
    CHECK(g.dim[0] == 3 && g.dim[1] == 4 && g.dim[2] == 5 && g.affine[0] == 1 && g.affine[5] == 1 && g.affine[3] == 0);
    double sp[3] = {2, 0.5, 0.25};
    lsdm_record_set_spacing(&r, sp);
    CHECK(lsdm_grid_from_record(&r, &g) == 0);
    CHECK(g.affine[0] == 2 && g.affine[5] == 0.5 && g.affine[10] == 0.25);
    double a[16];
    oblique_affine(a);
    lsdm_record_set_affine(&r, a);
    CHECK(lsdm_grid_from_record(&r, &g) == 0);
    CHECK(memcmp(g.affine, a, sizeof a) == 0);
    lsdm_record_set(&r, "affine", "1 2 3");
    CHECK(lsdm_grid_from_record(&r, &g) == -1);
    lsdm_record_set(&r, "affine", "0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1");
    CHECK(lsdm_grid_from_record(&r, &g) == -1 && strstr(lsdm_err_msg(), "singular"));
    lsdm_record_free(&r);
}

int main(void) {
    test_inverse();
    test_identity_copy();
    test_flips();
    test_lps_to_ras();
    test_respace();
    test_window();
    test_from_record();
    return check_done("test_resample");
}
