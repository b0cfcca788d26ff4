/* Unit tests of the phantom model: determinism, distinct anatomy per seed,
 * every class present in plausible amounts, measured class intensities
 * near the documented means, 3D coherence, geometry, and odd sizes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "phantom.h"

typedef struct {
    size_t count[LSDM_PHANTOM_CLASSES];
    double mean[LSDM_PHANTOM_CLASSES];
    float lo, hi;
    int bad_label, non_finite;
} summary;

static void summarise(const float *img, const uint8_t *lab, size_t n, summary *s) {
    double sum[LSDM_PHANTOM_CLASSES] = {0};
    memset(s, 0, sizeof *s);
    s->lo = 1e9f;
    s->hi = -1e9f;
    for (size_t i = 0; i < n; i++) {
        if (lab[i] >= LSDM_PHANTOM_CLASSES) { s->bad_label++; continue; }
        if (!isfinite(img[i])) s->non_finite++;
        s->count[lab[i]]++;
        sum[lab[i]] += img[i];
        if (img[i] < s->lo) s->lo = img[i];
        if (img[i] > s->hi) s->hi = img[i];
    }
    for (int c = 0; c < LSDM_PHANTOM_CLASSES; c++) s->mean[c] = s->count[c] ? sum[c] / (double)s->count[c] : -1;
}

static size_t voxels(const lsdm_phantom_params *p) { return (size_t)(p->d * p->h * p->w); }

static void test_default_volume(void) {
    lsdm_phantom_params p;
    lsdm_phantom_defaults(&p);
    CHECK(p.d == 32 && p.h == 256 && p.w == 256);
    CHECK(p.spacing[0] == 2.0 && p.spacing[1] == 0.7 && p.spacing[2] == 0.7);
    size_t n = voxels(&p);
    float *img = malloc(n * sizeof *img), *img2 = malloc(n * sizeof *img2);
    uint8_t *lab = malloc(n), *lab2 = malloc(n);
    CHECK(lsdm_phantom_generate(&p, img, lab) == 0);
    summary s;
    summarise(img, lab, n, &s);
    CHECK(s.bad_label == 0 && s.non_finite == 0);
    CHECK(s.lo >= 0.0f && s.hi <= 1.0f);
    /* every class, in amounts like a breast slab's */
    double frac[LSDM_PHANTOM_CLASSES];
    for (int c = 0; c < LSDM_PHANTOM_CLASSES; c++) frac[c] = (double)s.count[c] / (double)n;
    CHECK(frac[0] > 0.4 && frac[0] < 0.9);
    CHECK(frac[1] > 0.05 && frac[1] < 0.35);
    CHECK(frac[2] > 0.01 && frac[2] < 0.2);
    CHECK(frac[3] > 0.0003 && frac[3] < 0.02);
    CHECK(frac[4] > 0.01 && frac[4] < 0.15);
    CHECK(frac[2] < frac[1]); /* fibroglandular tissue sits inside the fat */
    /* measured class means near the documented ones (bias, texture and
     * Rician noise move them a little; background is the noise floor,
     * 0.02 sqrt(pi/2) = 0.025) */
    for (int c = 1; c < LSDM_PHANTOM_CLASSES; c++) CHECK_NEAR(s.mean[c], lsdm_phantom_means[c], 0.04);
    CHECK_NEAR(s.mean[0], 0.025, 0.005);
    /* ordering of a T1 non-fat-sat contrast */
    CHECK(s.mean[3] > s.mean[1] && s.mean[1] > s.mean[2] && s.mean[2] > s.mean[4] && s.mean[4] > s.mean[0]);

    /* same seed: the same bits */
    CHECK(lsdm_phantom_generate(&p, img2, lab2) == 0);
    CHECK(memcmp(img, img2, n * sizeof *img) == 0);
    CHECK(memcmp(lab, lab2, n) == 0);

    /* 3D anatomy: neighbouring slices agree, distant voxels of one slice
     * do not simply repeat along depth */
    size_t slice = (size_t)(p.h * p.w), same = 0;
    for (size_t i = 0; i < slice; i++) same += lab[15 * slice + i] == lab[16 * slice + i];
    CHECK((double)same / (double)slice > 0.95);
    size_t diff = 0;
    for (size_t i = 0; i < slice; i++) diff += lab[0 * slice + i] != lab[31 * slice + i];
    CHECK(diff > 100);

    /* another seed: other anatomy */
    p.seed = 1;
    CHECK(lsdm_phantom_generate(&p, img2, lab2) == 0);
    diff = 0;
    for (size_t i = 0; i < n; i++) diff += lab[i] != lab2[i];
    CHECK((double)diff / (double)n > 0.02);

    /* no noise: background is exactly 0, class means closer */
    p.noise = 0;
    CHECK(lsdm_phantom_generate(&p, img2, lab2) == 0);
    summarise(img2, lab2, n, &s);
    CHECK(s.mean[0] == 0.0);
    for (int c = 1; c < LSDM_PHANTOM_CLASSES; c++) CHECK_NEAR(s.mean[c], lsdm_phantom_means[c], 0.03);
    free(img);
    free(img2);
    free(lab);
    free(lab2);
}

static void test_geometry(void) {
    lsdm_phantom_params p;
    lsdm_phantom_defaults(&p);
    p.d = 4;
    p.h = 6;
    p.w = 8;
    p.spacing[0] = 3;
    p.spacing[1] = 1.5;
    p.spacing[2] = 0.5;
    double a[16];
    lsdm_phantom_affine(&p, a);
    /* w -> x, h -> y, d -> z, each by its spacing: NIfTI's diag(spacing) */
    double want[16] = {0, 0, 0.5, -1.75, 0, 1.5, 0, -3.75, 3, 0, 0, -4.5, 0, 0, 0, 1};
    CHECK(memcmp(a, want, sizeof a) == 0);
    /* the centre of the grid is at world 0 */
    double c[3] = {1.5, 2.5, 3.5};
    for (int r = 0; r < 3; r++) CHECK_NEAR(a[r * 4] * c[0] + a[r * 4 + 1] * c[1] + a[r * 4 + 2] * c[2] + a[r * 4 + 3], 0, 1e-12);

    lsdm_record img, lab;
    lsdm_record_init(&img);
    lsdm_record_init(&lab);
    CHECK(lsdm_phantom_records(&p, "x", &img, &lab) == 0);
    CHECK(img.dtype == LSDM_F32 && lab.dtype == LSDM_U8 && img.ndim == 4 && lab.ndim == 4);
    CHECK(img.shape[0] == 1 && img.shape[1] == 4 && img.shape[2] == 6 && img.shape[3] == 8);
    CHECK(!strcmp(lsdm_record_get(&img, "role"), "image") && !strcmp(lsdm_record_get(&lab, "role"), "labels"));
    CHECK(!strcmp(lsdm_record_get(&lab, "labels"), "0=background,1=fat,2=fibroglandular,3=vessel,4=muscle"));
    CHECK(!strcmp(lsdm_record_get(&img, "class-means"), "0=0.00,1=0.80,2=0.35,3=0.90,4=0.20"));
    CHECK(!strcmp(lsdm_record_get(&lab, "class-means"), "0=0.00,1=0.80,2=0.35,3=0.90,4=0.20"));
    CHECK(lsdm_record_get(&img, "labels") == NULL);
    double b[16], sp[3];
    CHECK(lsdm_record_get_affine(&lab, b) == 1 && memcmp(a, b, sizeof a) == 0);
    CHECK(lsdm_record_get_spacing(&img, sp) == 1 && sp[0] == 3 && sp[1] == 1.5 && sp[2] == 0.5);
    lsdm_record_free(&img);
    lsdm_record_free(&lab);
}

static void test_odd_sizes(void) {
    int64_t shapes[][3] = {{1, 1, 1}, {1, 4, 4}, {3, 5, 7}, {2, 64, 16}, {40, 8, 8}};
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        lsdm_phantom_params p;
        lsdm_phantom_defaults(&p);
        p.d = shapes[k][0];
        p.h = shapes[k][1];
        p.w = shapes[k][2];
        p.seed = 7 + k;
        size_t n = voxels(&p);
        float *img = malloc(n * sizeof *img);
        uint8_t *lab = malloc(n);
        CHECK(lsdm_phantom_generate(&p, img, lab) == 0);
        summary s;
        summarise(img, lab, n, &s);
        CHECK(s.bad_label == 0 && s.non_finite == 0 && s.lo >= 0 && s.hi <= 1);
        free(img);
        free(lab);
    }
    /* a 16x64x64 slab at 1 mm still has every class */
    lsdm_phantom_params p;
    lsdm_phantom_defaults(&p);
    p.d = 16;
    p.h = p.w = 64;
    p.spacing[0] = p.spacing[1] = p.spacing[2] = 1.0;
    size_t n = voxels(&p);
    float *img = malloc(n * sizeof *img);
    uint8_t *lab = malloc(n);
    CHECK(lsdm_phantom_generate(&p, img, lab) == 0);
    summary s;
    summarise(img, lab, n, &s);
    for (int c = 0; c < LSDM_PHANTOM_CLASSES; c++) CHECK(s.count[c] > 0);
    free(img);
    free(lab);
    p.spacing[1] = 0;
    CHECK(lsdm_phantom_generate(&p, NULL, NULL) == -1);
    /* a needle of a volume is refused, not a huge allocation */
    p.d = 4096;
    p.h = p.w = 1;
    p.spacing[0] = 100;
    p.spacing[1] = p.spacing[2] = 0.01;
    img = malloc(4096 * sizeof *img);
    lab = malloc(4096);
    CHECK(lsdm_phantom_generate(&p, img, lab) == -1);
    free(img);
    free(lab);
}

int main(void) {
    test_default_volume();
    test_geometry();
    test_odd_sizes();
    return check_done("test_phantom");
}
