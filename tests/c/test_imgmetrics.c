/* libshared/imgmetrics against scikit-image (PSNR, SSIM) and pytorch_msssim
 * (MS-SSIM): the pairs and values of tests/fixtures/metrics, made by
 * tests/torch/make_metrics.py; plus exact cases and thread independence. */
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fixture.h"
#include "imgmetrics.h"

#define REL(a, b) (fabs((a) - (b)) / fmax(fabs(b), 1e-300))

/* Relative error within tol; prints it. */
static void check_rel(const char *what, const char *cs, double got, double want, double tol) {
    double e = want == 0 ? fabs(got) : REL(got, want);
    printf("  %-8s %-10s %.12g  want %.12g  rel.err %.2e\n", cs, what, got, want, e);
    if (e <= tol) check_pass++;
    else { check_fail++; fprintf(stderr, "%s %s: %.15g, want %.15g (rel %.3g > %g)\n", cs, what, got, want, e, tol); }
}

static double jnum(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    if (!json_is_number(v)) { fprintf(stderr, "expected.json: no number '%s'\n", key); check_fail++; return NAN; }
    return json_number_value(v);
}

/* (C,D,H,W) of a fixture record; the volume as doubles. */
static double *record_volume(const lsdm_record *r, int64_t *C, int64_t dims[3]) {
    *C = r->shape[0];
    for (int k = 0; k < 3; k++) dims[k] = r->shape[k + 1];
    size_t n = lsdm_record_numel(r);
    double *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = lsdm_elem_get(r->data, r->dtype, i);
    return v;
}

/* Every metric of one pair against its expected values. */
static void check_case(const char *cs, json_t *e, const double *a, const double *b, int64_t C, const int64_t dims[3]) {
    int64_t S = dims[0] * dims[1] * dims[2];
    lsdm_imgm_errsum es;
    lsdm_imgm_errors(&es, a, b, NULL, C, S);
    CHECK(es.n == C * S);
    double mse = es.sse / (double)es.n, range_auto = jnum(e, "range_auto");
    check_rel("rmse", cs, sqrt(mse), jnum(e, "rmse"), 1e-9);
    check_rel("mae", cs, es.sae / (double)es.n, jnum(e, "mae"), 1e-9);
    check_rel("psnr", cs, lsdm_imgm_psnr(mse, 2), jnum(e, "psnr"), 1e-9);
    check_rel("psnr_auto", cs, lsdm_imgm_psnr(mse, range_auto), jnum(e, "psnr_auto"), 1e-9);
    double s;
    int win = 0, levels = 0;
    CHECK(lsdm_imgm_ssim(&s, &win, a, b, C, dims, 2) == 0);
    CHECK(win == (int)jnum(e, "ssim_window"));
    check_rel("ssim", cs, s, jnum(e, "ssim"), 1e-6);
    CHECK(lsdm_imgm_ssim(&s, NULL, a, b, C, dims, range_auto) == 0);
    check_rel("ssim_auto", cs, s, jnum(e, "ssim_auto"), 1e-6);
    CHECK(lsdm_imgm_ms_ssim(&s, &levels, a, b, C, dims, 2, 0) == 0);
    CHECK(levels == (int)jnum(e, "ms_ssim_levels"));
    check_rel("ms_ssim", cs, s, jnum(e, "ms_ssim"), 1e-6);
}

static void test_fixtures(json_t *exp) {
    char pa[PATH_MAX], pb[PATH_MAX];
    fixture fa, fb;
    fixture_path(pa, sizeof pa, "metrics", "a.lsdm");
    fixture_path(pb, sizeof pb, "metrics", "b.lsdm");
    if (fixture_load(&fa, pa) || fixture_load(&fb, pb)) {
        fprintf(stderr, "missing fixture %s or %s\n", pa, pb);
        check_fail++;
        return;
    }
    CHECK(fa.n == 6 && fb.n == fa.n);
    for (int i = 0; i < fa.n && i < fb.n; i++) {
        const char *cs = lsdm_record_get(&fa.recs[i], "name");
        json_t *e = json_object_get(exp, cs);
        CHECK(e != NULL);
        if (!e) continue;
        int64_t C, dims[3], C2, dims2[3];
        double *a = record_volume(&fa.recs[i], &C, dims), *b = record_volume(&fb.recs[i], &C2, dims2);
        CHECK(C == C2 && !memcmp(dims, dims2, sizeof dims));
        check_case(cs, e, a, b, C, dims);
        free(a);
        free(b);
    }
    fixture_free(&fa);
    fixture_free(&fb);
}

/* The 20x168x168 pair of make_metrics.py's big_case, rebuilt here with the
 * same integer formula (every value the same double in both). */
static void test_big(json_t *exp) {
    const int64_t dims[3] = {20, 168, 168}, S = 20 * 168 * 168;
    double *a = malloc(S * sizeof *a), *b = malloc(S * sizeof *b);
    for (int64_t d = 0, i = 0; d < dims[0]; d++)
        for (int64_t h = 0; h < dims[1]; h++)
            for (int64_t w = 0; w < dims[2]; w++, i++) {
                int64_t k = (3 * d * d + 7 * (h / 8) * (w / 8) + 11 * ((h + w) / 16)) % 50;
                uint64_t q = (((uint64_t)i * 2654435761u) & 0xffffffffu) >> 16;
                a[i] = k / 25.0 - 1.0;
                b[i] = a[i] + ((int64_t)(q % 21) - 10) / 200.0;
            }
    json_t *e = json_object_get(exp, "big");
    CHECK(e != NULL);
    CHECK(lsdm_imgm_ms_ssim_levels(dims) == 5);
    if (e) check_case("big", e, a, b, 1, dims);

    /* the same numbers on one thread as on several */
    double s1, s4, m1, m4;
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    CHECK(lsdm_imgm_ssim(&s1, NULL, a, b, 1, dims, 2) == 0);
    CHECK(lsdm_imgm_ms_ssim(&m1, NULL, a, b, 1, dims, 2, 0) == 0);
    omp_set_num_threads(3);
    CHECK(lsdm_imgm_ssim(&s4, NULL, a, b, 1, dims, 2) == 0);
    CHECK(lsdm_imgm_ms_ssim(&m4, NULL, a, b, 1, dims, 2, 0) == 0);
    omp_set_num_threads(nt);
    CHECK(s1 == s4 && m1 == m4);
    free(a);
    free(b);
}

/* Identical volumes, a constant offset, small and degenerate shapes. */
static void test_exact(void) {
    const int64_t dims[3] = {12, 24, 24}, S = 12 * 24 * 24;
    double *a = malloc(S * sizeof *a), *b = malloc(S * sizeof *b);
    for (int64_t i = 0; i < S; i++) {
        a[i] = (double)((i * 37) % 101) / 64.0 - 0.75;
        b[i] = a[i] + 0.125;
    }
    double s;
    int levels;
    CHECK(lsdm_imgm_ssim(&s, NULL, a, a, 1, dims, 2) == 0);
    CHECK_NEAR(s, 1.0, 1e-12);
    CHECK(lsdm_imgm_ms_ssim(&s, &levels, a, a, 1, dims, 2, 0) == 0);
    CHECK_NEAR(s, 1.0, 1e-12);
    CHECK(levels == 2); /* min(24, 24) > 20, not > 40 */
    CHECK(isinf(lsdm_imgm_psnr(0, 2)) && lsdm_imgm_psnr(0, 2) > 0);
    CHECK(lsdm_imgm_psnr(0.04, 2) == 20.0);

    lsdm_imgm_errsum es;
    lsdm_imgm_errors(&es, a, b, NULL, 1, S);
    CHECK(es.n == S && es.sae / S == 0.125 && sqrt(es.sse / S) == 0.125);
    /* a mask keeps only its voxels */
    unsigned char *m = calloc(S, 1);
    b[5] = a[5] + 1;
    m[5] = m[7] = 1;
    lsdm_imgm_errors(&es, a, b, m, 1, S);
    CHECK(es.n == 2 && es.sae == 1.125 && es.sse == 1 + 0.125 * 0.125);
    free(m);

    /* windows and scales for small extents */
    CHECK(lsdm_imgm_ssim_window((int64_t[3]){32, 64, 64}) == 11);
    CHECK(lsdm_imgm_ssim_window((int64_t[3]){8, 64, 64}) == 7);
    CHECK(lsdm_imgm_ssim_window((int64_t[3]){1, 64, 64}) == 11);
    CHECK(lsdm_imgm_ssim_window((int64_t[3]){1, 2, 64}) == 1);
    CHECK(lsdm_imgm_ms_ssim_levels((int64_t[3]){32, 256, 256}) == 5);
    CHECK(lsdm_imgm_ms_ssim_levels((int64_t[3]){32, 161, 300}) == 5);
    CHECK(lsdm_imgm_ms_ssim_levels((int64_t[3]){32, 160, 300}) == 4);
    CHECK(lsdm_imgm_ms_ssim_levels((int64_t[3]){64, 10, 300}) == 0);
    CHECK(lsdm_imgm_ms_ssim_levels((int64_t[3]){300, 1, 11}) == 1); /* D and W after squeezing H */
    CHECK(lsdm_imgm_ms_ssim_levels((int64_t[3]){1, 1, 300}) == 0);
    CHECK(lsdm_imgm_ms_ssim(&s, NULL, a, b, 1, (int64_t[3]){12, 4, 48}, 2, 0) == -1);
    CHECK(strstr(lsdm_err_msg(), "too small for MS-SSIM") != NULL);
    CHECK(lsdm_imgm_ms_ssim(&s, NULL, a, b, 1, dims, 2, 3) == -1);
    CHECK(lsdm_imgm_ssim(&s, NULL, a, b, 1, dims, 0) == -1);
    CHECK(lsdm_imgm_ssim(&s, NULL, a, b, 1, dims, NAN) == -1);
    free(a);
    free(b);
}

int main(void) {
    char path[PATH_MAX];
    fixture_path(path, sizeof path, "metrics", "expected.json");
    json_error_t jerr;
    json_t *exp = json_load_file(path, 0, &jerr);
    if (!exp) {
        fprintf(stderr, "missing fixture %s: %s\n", path, jerr.text);
        check_fail++;
    } else {
        test_fixtures(exp);
        test_big(exp);
        json_decref(exp);
    }
    test_exact();
    return check_done("test_imgmetrics");
}
