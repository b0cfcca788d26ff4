/* Shared by the GPU-vs-CPU tests (tests/c/test_cuda_*.c): device buffers
 * with GUARD sentinel floats on each side, random host data, NaN/Inf
 * poisoning, and the comparison used for every op: the class (finite,
 * NaN, +Inf, -Inf) of each value must agree, the normalised error
 * max|gpu - cpu| / max|cpu| over finite values must stay under a
 * tolerance, and the sentinels must be untouched. CUDA builds only. */
#ifndef LSDM_GPUCHECK_H
#define LSDM_GPUCHECK_H
#ifdef LSDM_CUDA

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "devmem.h"
#include "rng.h"

#define GUARD 64
static const float guard_val = -7777.0f;

/* Device buffers handed out by dev_*; freed together by dev_free_all. */
static float *dev_list[256];
static int dev_count;

/* Device copy of host data with GUARD sentinel floats each side; returns
 * the pointer to the first real element. */
static float *dev_copy(const float *h, size_t n) {
    float *tmp = malloc((n + 2 * GUARD) * sizeof *tmp);
    for (size_t i = 0; i < n + 2 * GUARD; i++) tmp[i] = guard_val;
    memcpy(tmp + GUARD, h, n * sizeof *h);
    float *d = lsdm_cuda_alloc((n + 2 * GUARD) * sizeof *d);
    if (!d || dev_count == 256) { fprintf(stderr, "device allocation failed\n"); exit(1); }
    lsdm_cuda_copy(d, tmp, (n + 2 * GUARD) * sizeof *d, 1);
    free(tmp);
    dev_list[dev_count++] = d;
    return d + GUARD;
}

static void dev_free_all(void) {
    for (int i = 0; i < dev_count; i++) lsdm_cuda_free(dev_list[i]);
    dev_count = 0;
}

/* Host buffers: random normal (scaled), or constant. Owned by the caller. */
static float *h_normal(size_t n, uint64_t seed, float scale) {
    float *x = malloc(n * sizeof *x);
    lsdm_rng_fill_normal(x, n, seed, 0, 0);
    for (size_t i = 0; i < n; i++) x[i] *= scale;
    return x;
}

static float *h_const(size_t n, float v) {
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = v;
    return x;
}

/* One NaN, one +Inf, one -Inf at fixed spots (rows apart for the tests). */
static void poison(float *x, size_t n) {
    x[n / 7] = NAN;
    x[n / 3] = INFINITY;
    x[n / 2 + 1] = -INFINITY;
}

static int fclass(float v) { return isnan(v) ? 1 : isinf(v) ? (v > 0 ? 2 : 3) : 0; }

/* Copy the device buffer back, check its guards, compare with the CPU's
 * result: class parity everywhere, normalised error on finite values. */
static void cmp(const char *name, const float *cpu, const float *dgpu, size_t n, double tol) {
    float *tmp = malloc((n + 2 * GUARD) * sizeof *tmp);
    CHECK(lsdm_cuda_copy(tmp, dgpu - GUARD, (n + 2 * GUARD) * sizeof *tmp, 0) == 0);
    int guards = 1;
    for (size_t i = 0; i < GUARD; i++) guards &= tmp[i] == guard_val && tmp[GUARD + n + i] == guard_val;
    const float *gpu = tmp + GUARD;
    size_t bad_class = 0, nonfinite = 0;
    double m = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        int a = fclass(cpu[i]), b = fclass(gpu[i]);
        if (a != b) bad_class++;
        if (a || b) { nonfinite += a != 0; continue; }
        m = fmax(m, fabs((double)gpu[i] - cpu[i]));
        s = fmax(s, fabs((double)cpu[i]));
    }
    double err = s > 0 ? m / s : m;
    printf("%-34s n %8zu  err %.3g  non-finite %zu%s%s\n", name, n, err, nonfinite,
           bad_class ? "  CLASS MISMATCH" : "", guards ? "" : "  GUARD OVERWRITTEN");
    CHECK(guards);
    CHECK(bad_class == 0);
    CHECK(err <= tol);
}

/* Only the guards of a device buffer (a workspace has no reference). */
static void cmp_guards_only(const char *name, const float *dbuf, size_t n) {
    float g[2 * GUARD];
    CHECK(lsdm_cuda_copy(g, dbuf - GUARD, GUARD * sizeof *g, 0) == 0);
    CHECK(lsdm_cuda_copy(g + GUARD, dbuf + n, GUARD * sizeof *g, 0) == 0);
    int ok = 1;
    for (int i = 0; i < 2 * GUARD; i++) ok &= g[i] == guard_val;
    if (!ok) printf("%s: workspace guard overwritten\n", name);
    CHECK(ok);
}

#define TOL_EW 1e-5
#define TOL_RED 1e-4

/* The three gradients of a convolution against the CPU's. */
static inline void cmp_conv_grads(const char *tag, const float *dx, const float *d_dx, size_t ni,
                           const float *dw, const float *d_dw, size_t nw,
                           const float *db, const float *d_db, size_t nb) {
    char name[160];
    snprintf(name, sizeof name, "%s dinp", tag);
    cmp(name, dx, d_dx, ni, TOL_RED);
    snprintf(name, sizeof name, "%s dweight", tag);
    cmp(name, dw, d_dw, nw, TOL_RED);
    snprintf(name, sizeof name, "%s dbias", tag);
    cmp(name, db, d_db, nb, TOL_RED);
}

#endif
#endif
