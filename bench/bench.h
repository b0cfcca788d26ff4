/* What the C benchmarks share: a monotonic clock, medians, and
 * deterministic random inputs (no RNG state to keep between runs). */
#ifndef LSDM_BENCH_H
#define LSDM_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static inline int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v. */
static inline double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* n floats uniform in [-1, 1) from an LCG; exits on no memory. */
static inline float *alloc_random(size_t n, unsigned seed) {
    float *p = malloc(n * sizeof *p);
    if (!p) { fprintf(stderr, "bench: error: out of memory\n"); exit(1); }
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)((int)(seed >> 8) - (1 << 23)) / (float)(1 << 23);
    }
    return p;
}

/* PyTorch's forward and backward ms for `name` from the file the .py side
 * wrote ("name fwd bwd" lines); 0 when absent. */
static inline void torch_times(const char *path, const char *name, double *fwd, double *bwd) {
    *fwd = *bwd = 0;
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f) return;
    char n[128];
    double a, b;
    while (fscanf(f, "%127s %lf %lf", n, &a, &b) == 3)
        if (strcmp(n, name) == 0) *fwd = a, *bwd = b;
    fclose(f);
}

#endif
