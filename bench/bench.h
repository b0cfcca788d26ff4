/* What the C benchmarks share: a monotonic clock, medians, and
 * deterministic random inputs (no RNG state to keep between runs). */
#ifndef LSDM_BENCH_H
#define LSDM_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

/* n floats uniform in [-1, 1) from an LCG, 64-byte aligned as the
 * engine's tensors (nn.c) and PyTorch's are: from plain malloc (16 bytes)
 * every vector store of the GEMM tiles straddled two cache lines, which
 * cost our convs 5-10% that no program pays; exits on no memory. */
static inline float *alloc_random(size_t n, unsigned seed) {
    float *p = aligned_alloc(64, (n * sizeof *p + 63) & ~(size_t)63);
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

/* The stage benchmarks' command line (bench/vqgan.c, bench/ldm.c):
 * [-r REPS] [-s D,H,W] [-t TORCH_FILE] [-H] STAGE. a holds the defaults
 * on entry. Returns the stage, "" for -H (print the header), or NULL for
 * a usage error. */
typedef struct {
    int reps, D, H, W;
    const char *torch;
} bench_args;

static inline const char *bench_args_parse(bench_args *a, int argc, char **argv) {
    int opt, header = 0;
    while ((opt = getopt(argc, argv, "r:s:t:H")) != -1) {
        switch (opt) {
        case 'r': a->reps = atoi(optarg); break;
        case 's':
            if (sscanf(optarg, "%d,%d,%d", &a->D, &a->H, &a->W) != 3) a->D = 0;
            break;
        case 't': a->torch = optarg; break;
        case 'H': header = 1; break;
        default: return NULL;
        }
    }
    if (header) return "";
    if (optind != argc - 1 || a->reps < 1 || a->reps > 99 || a->D < 1 || a->H < 1 || a->W < 1)
        return NULL;
    return argv[optind];
}

#endif
