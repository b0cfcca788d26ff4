/* FID and KID (libshared/frechet.c) against scipy / numpy: the feature
 * pairs and reference values of tests/torch/make_fid.py (FID through
 * scipy.linalg.sqrtm as the Med-LSDM reference code, KID as torch-fidelity). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "err.h"
#include "fixture.h"
#include "frechet.h"

/* The (n, d) matrix of record `name`. */
static const float *matrix(const fixture *fx, const char *name, long *n, int *d) {
    for (int i = 0; i < fx->n; i++) {
        const lsdm_record *r = &fx->recs[i];
        const char *k = lsdm_record_get(r, "name");
        if (k && !strcmp(k, name) && r->dtype == LSDM_F32 && r->ndim == 2) {
            *n = (long)r->shape[0], *d = (int)r->shape[1];
            return r->data;
        }
    }
    return NULL;
}

static double fid_of(const float *x, long nx, const float *y, long ny, int d) {
    frechet_stats a, b;
    double fid = NAN;
    if (frechet_stats_compute(&a, x, nx, d) || frechet_stats_compute(&b, y, ny, d) || frechet_distance(&a, &b, &fid))
        fprintf(stderr, "fid: %s\n", lsdm_err_msg());
    frechet_stats_free(&a);
    frechet_stats_free(&b);
    return fid;
}

static void check_case(const char *name, double want_fid, double want_kid) {
    char file[128], path[4096];
    snprintf(file, sizeof file, "stat_%s.lsdm", name);
    fixture_path(path, sizeof path, "fid", file);
    fixture fx;
    if (fixture_load(&fx, path) < 0) {
        fprintf(stderr, "missing fixture %s\n", path);
        CHECK(0);
        return;
    }
    long nx = 0, ny = 0;
    int dx = 0, dy = 0;
    const float *x = matrix(&fx, "real", &nx, &dx), *y = matrix(&fx, "fake", &ny, &dy);
    CHECK(x && y && dx == dy);
    if (!x || !y || dx != dy) { fixture_free(&fx); return; }
    double fid = fid_of(x, nx, y, ny, dx), kid = NAN, sd = NAN;
    CHECK(kid_compute(x, nx, y, ny, dx, 0, 0, 1, &kid, &sd) == 0);
    double ef = fabs(fid - want_fid) / fabs(want_fid), ek = fabs(kid - want_kid) / fabs(want_kid);
    printf("%-8s n=%ld/%ld d=%d: fid %.12g (scipy %.12g, rel %.2g)  kid %.12g (numpy %.12g, rel %.2g)\n", name, nx, ny,
           dx, fid, want_fid, ef, kid, want_kid, ek);
    CHECK(ef < 1e-6);
    CHECK(ek < 1e-6);
    CHECK(sd == 0);
    /* a set against itself */
    double self = fid_of(x, nx, x, nx, dx);
    printf("%-8s against itself: fid %.3g\n", name, self);
    CHECK(fabs(self) < 1e-9);
    /* symmetric */
    CHECK(fabs(fid_of(y, ny, x, nx, dx) - fid) < 1e-9 * fabs(fid));
    /* subsets of all samples are permutations: the same KID, spread 0 */
    long m = nx < ny ? nx : ny;
    if (nx == ny) {
        double km, ks;
        CHECK(kid_compute(x, nx, y, ny, dx, 3, m, 9, &km, &ks) == 0);
        CHECK(fabs(km - kid) < 1e-9 * fabs(kid) && ks < 1e-9 * fabs(kid));
    }
    /* smaller subsets: some spread around the full value */
    if (m >= 20) {
        double km, ks;
        CHECK(kid_compute(x, nx, y, ny, dx, 20, m / 2, 3, &km, &ks) == 0);
        printf("%-8s kid over 20 subsets of %ld: %.6g +- %.3g\n", name, m / 2, km, ks);
        CHECK(ks > 0 && fabs(km - kid) < 4 * ks);
        double km2, ks2;
        CHECK(kid_compute(x, nx, y, ny, dx, 20, m / 2, 3, &km2, &ks2) == 0);
        CHECK(km2 == km && ks2 == ks); /* same seed, same draws */
    }
    fixture_free(&fx);
}

static void check_errors(void) {
    float x[6] = {1, 2, 3, 4, 5, 6};
    frechet_stats a, b;
    CHECK(frechet_stats_compute(&a, x, 1, 6) < 0); /* one sample */
    printf("one sample: %s\n", lsdm_err_msg());
    CHECK(frechet_stats_compute(&a, x, 3, 2) == 0);
    CHECK(frechet_stats_compute(&b, x, 2, 3) == 0);
    double fid;
    CHECK(frechet_distance(&a, &b, &fid) < 0);
    /* cov of (1,2),(3,4),(5,6): every entry 4 */
    CHECK(fabs(a.cov[0] - 4) < 1e-12 && fabs(a.cov[1] - 4) < 1e-12 && fabs(a.mu[1] - 4) < 1e-12);
    frechet_stats_free(&a);
    frechet_stats_free(&b);
    double m, s;
    CHECK(kid_compute(x, 3, x, 3, 2, 2, 4, 0, &m, &s) < 0); /* subset larger than a set */
    CHECK(kid_compute(x, 1, x, 3, 2, 0, 0, 0, &m, &s) < 0);
}

/* Known closed form: 1-D Gaussians, FID = (m1-m2)^2 + (s1-s2)^2. */
static void check_closed_form(void) {
    float x[4] = {0, 2, 0, 2}, y[4] = {5, 11, 5, 11}; /* var 4/3 and 12 */
    double fid = fid_of(x, 4, y, 4, 1);
    double s1 = sqrt(4.0 / 3), s2 = sqrt(12.0), want = 49 + (s1 - s2) * (s1 - s2);
    printf("1-D: fid %.15g want %.15g\n", fid, want);
    CHECK(fabs(fid - want) < 1e-12 * want);
}

int main(void) {
    char path[4096];
    fixture_path(path, sizeof path, "fid", "expected.txt");
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "missing fixture %s (run tests/torch/make_fid.py)\n", path);
        CHECK(0);
        return check_done("test_frechet");
    }
    char line[512], name[64];
    double fid, kid;
    int cases = 0;
    while (fgets(line, sizeof line, f))
        if (line[0] != '#' && sscanf(line, "%63s %lf %lf", name, &fid, &kid) == 3) {
            check_case(name, fid, kid);
            cases++;
        }
    fclose(f);
    CHECK(cases == 3);
    check_errors();
    check_closed_form();
    return check_done("test_frechet");
}
