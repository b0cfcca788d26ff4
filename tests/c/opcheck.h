/* Helpers for the tests of the engine's element-wise and normalisation ops
 * (test_norm.c, test_activation.c, test_elementwise.c): random data,
 * float/double copies, normalised errors, central-difference gradient
 * checks and the location of the PyTorch fixtures. Include after check.h. */
#ifndef LSDM_OPCHECK_H
#define LSDM_OPCHECK_H

#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <omp.h>
#include <stdio.h>

#include "check.h"
#include "fixture.h"
#include "rng.h"

/* n doubles uniform in [lo, hi), each exactly representable as a float,
 * so that float and double runs see the same inputs. Caller frees. */
static inline double *op_rand(size_t n, uint64_t seed, double lo, double hi) {
    double *x = malloc(n * sizeof *x);
    lsdm_rng r;
    lsdm_rng_init(&r, seed, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)lsdm_rng_range(&r, lo, hi);
    return x;
}

static inline double *op_zeros(size_t n) { return calloc(n ? n : 1, sizeof(double)); }
static inline float *op_zerosf(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

static inline double *op_fill(size_t n, double v) {
    double *x = calloc(n ? n : 1, sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = v;
    return x;
}

static inline float *op_to_f32(const double *x, size_t n) {
    float *y = calloc(n ? n : 1, sizeof *y);
    for (size_t i = 0; i < n; i++) y[i] = (float)x[i];
    return y;
}

static inline double *op_to_f64(const float *x, size_t n) {
    double *y = calloc(n ? n : 1, sizeof *y);
    for (size_t i = 0; i < n; i++) y[i] = x[i];
    return y;
}

static inline double op_dot(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* max |a - ref| / max |ref| (ggml's normalised error); *maxabs gets
 * max |a - ref|. A NaN anywhere gives +inf. */
static inline double op_err(const double *a, const double *ref, size_t n, double *maxabs) {
    double m = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - ref[i]);
        if (d != d) d = INFINITY;
        if (d > m) m = d;
        if (fabs(ref[i]) > s) s = fabs(ref[i]);
    }
    if (maxabs) *maxabs = m;
    return m == 0 ? 0 : m / (s > 1e-30 ? s : 1e-30);
}

/* Check a result against a reference: prints the case, normalised and
 * max abs error, and counts a failure above tol. */
#define OP_CHECK_ERR(what, err_expr, tol)                                            \
    do {                                                                             \
        double e_ = (err_expr);                                                      \
        printf("  %-34s err %.2e\n", what, e_);                                      \
        if (e_ <= (tol)) check_pass++;                                               \
        else { check_fail++; fprintf(stderr, "%s:%d: %s: error %.3g > %.3g\n", __FILE__, __LINE__, what, e_, (double)(tol)); } \
    } while (0)

/* Compare a result (as doubles) with a fixture tensor; *maxabs gets the
 * max abs error. A missing tensor or a size mismatch gives +inf. */
static inline double op_err_fx(const fixture *fx, const char *name, const double *got, size_t n,
                        double *maxabs) {
    size_t m = 0;
    const float *ref = fixture_get(fx, name, &m);
    if (!ref || m != n) {
        fprintf(stderr, "fixture tensor %s missing or of size %zu, want %zu\n", name, m, n);
        return INFINITY;
    }
    double *r = op_to_f64(ref, n);
    double e = op_err(got, r, n, maxabs);
    free(r);
    return e;
}

/* Fixture comparison, printing the max abs error per case and tensor;
 * path says which implementation ran ("f64" or "f32"). */
#define OP_CHECK_FX(fx, label, path, name, got, n, tol)                                \
    do {                                                                               \
        double ma_ = 0, e_ = op_err_fx(fx, name, got, n, &ma_);                         \
        printf("  %-16s %s %-7s max abs %.2e  norm %.2e\n", label, path, name, ma_, e_); \
        if (e_ <= (tol)) check_pass++;                                                 \
        else { check_fail++; fprintf(stderr, "%s:%d: %s %s %s: error %.3g > %.3g\n", __FILE__, __LINE__, label, path, name, e_, (double)(tol)); } \
    } while (0)

/* Central differences of loss() w.r.t. p[0..n) against the analytic
 * gradient ana: max |numeric - ana| / max |ana| (floor 1e-3 so that an
 * all-but-zero gradient is compared in absolute terms). */
typedef double (*op_loss_fn)(void *ctx);

static inline double op_gradcheck(op_loss_fn loss, void *ctx, double *p, const double *ana, size_t n) {
    const double h = 1e-6;
    double m = 0, s = 1e-3;
    for (size_t i = 0; i < n; i++) {
        double keep = p[i];
        p[i] = keep + h;
        double lp = loss(ctx);
        p[i] = keep - h;
        double lm = loss(ctx);
        p[i] = keep;
        double d = fabs((lp - lm) / (2 * h) - ana[i]);
        if (d != d) d = INFINITY;
        if (d > m) m = d;
        if (fabs(ana[i]) > s) s = fabs(ana[i]);
    }
    return m / s;
}

/* Subtract the value every gradient buffer started from (the tests start
 * them non-zero to check that backward accumulates). */
static inline void op_sub(double *x, size_t n, double v) {
    for (size_t i = 0; i < n; i++) x[i] -= v;
}

static inline void op_fixture_path(char *buf, size_t size, const char *group, const char *name) {
    char file[256];
    snprintf(file, sizeof file, "%s.lsdm", name);
    fixture_path(buf, size, group, file);
}

/* Load a fixture; a missing one is a test failure (they are committed). */
static inline int op_fixture_load(fixture *fx, const char *group, const char *name) {
    char path[PATH_MAX + 64];
    op_fixture_path(path, sizeof path, group, name);
    if (fixture_load(fx, path) != 0) {
        check_fail++;
        fprintf(stderr, "missing fixture %s (made by a script in tests/torch/)\n", path);
        return -1;
    }
    return 0;
}

/* cfg[i] of a fixture, or -1 if absent. */
static inline double op_cfg(const fixture *fx, int i) {
    size_t n = 0;
    const float *c = fixture_get(fx, "cfg", &n);
    return c && (size_t)i < n ? c[i] : -1;
}

/* A fixture tensor as doubles (NULL if absent); caller frees. */
static inline double *op_fx64(const fixture *fx, const char *name, size_t want) {
    size_t n = 0;
    const float *t = fixture_get(fx, name, &n);
    if (!t || n != want) {
        check_fail++;
        fprintf(stderr, "fixture tensor %s missing or of size %zu, want %zu\n", name, n, want);
        return NULL;
    }
    return op_to_f64(t, n);
}

/* op_gradcheck on one thread: central differences run thousands of tiny
 * forwards, and OpenMP barriers on a busy small machine cost more than
 * the work. */
static inline double op_gradcheck1(op_loss_fn loss, void *ctx, double *p, const double *ana, size_t n) {
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    double e = op_gradcheck(loss, ctx, p, ana, n);
    omp_set_num_threads(threads);
    return e;
}

#endif
