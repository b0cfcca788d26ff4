/* GroupNorm (and SiLU) speed on the reference model's shapes, against the
 * memory bandwidth of a plain copy and against PyTorch (bench/norm.py).
 *
 *   norm [-r REPS]
 *
 * Prints per shape the median ms of forward and backward (dinp, dweight,
 * dbias) after one warm-up, and the effective GB/s from the minimum
 * traffic: forward reads x twice and writes out (12 bytes per value),
 * backward reads x and dout twice and updates dinp (24 bytes per value).
 * "copy" is memcpy of the same tensor (8 bytes per value), a practical
 * peak for this machine and thread count. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "activation.h"
#include "groupnorm.h"
#include "bench.h"

typedef struct {
    const char *name;
    int N, C, S, G;
} shape;

static const shape shapes[] = {
    {"vq_gn32_64@8x64x64", 1, 64, 8 * 64 * 64, 32},
    {"vq_gn32_32@16x128x128", 2, 32, 16 * 128 * 128, 32},
    {"unet_gn8_64@8x64x64", 2, 64, 8 * 64 * 64, 8},
};

#define TIME(reps, out_ms, stmt)                                   \
    do {                                                           \
        double t_[64];                                             \
        for (int r_ = 0; r_ <= (reps); r_++) {                     \
            double t0_ = now_ms();                                 \
            stmt;                                                  \
            t_[r_] = now_ms() - t0_;                               \
        }                                                          \
        qsort(t_ + 1, (size_t)(reps), sizeof *t_, cmp_double);     \
        out_ms = t_[1 + (reps) / 2];                               \
    } while (0)

int main(int argc, char **argv) {
    int reps = 9, c;
    while ((c = getopt(argc, argv, "r:")) != -1)
        if (c == 'r') reps = atoi(optarg);
    if (reps < 1 || reps > 63) reps = 9;
    printf("threads %d, reps %d (median)\n", omp_get_max_threads(), reps);
    printf("%-24s %9s %9s %9s %9s %9s %9s %9s\n", "shape", "copy_ms", "fwd_ms", "fwd_GB/s",
           "bwd_ms", "bwd_GB/s", "silu_f_ms", "silu_b_ms");
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        const shape *s = &shapes[i];
        size_t n = (size_t)s->N * s->C * s->S;
        float *x = malloc(n * 4), *y = malloc(n * 4), *dy = malloc(n * 4), *dx = malloc(n * 4);
        float *w = malloc(s->C * 4), *b = malloc(s->C * 4), *dw = calloc(s->C, 4), *db = calloc(s->C, 4);
        float *mean = malloc((size_t)s->N * s->G * 4), *rstd = malloc((size_t)s->N * s->G * 4);
        #pragma omp parallel for
        for (size_t j = 0; j < n; j++) x[j] = (float)((j * 2654435761u) % 1000) * 1e-3f, dy[j] = x[j] - 0.5f, dx[j] = 0;
        for (int j = 0; j < s->C; j++) w[j] = 1 + 0.01f * j, b[j] = 0.1f * j;
        double tc, tf, tb, tsf, tsb;
        TIME(reps, tc, memcpy(y, x, n * 4));
        TIME(reps, tf, groupnorm_forward(y, mean, rstd, x, w, b, s->N, s->C, s->S, s->G, 1e-6f));
        TIME(reps, tb, groupnorm_backward(dx, dw, db, dy, x, w, mean, rstd, s->N, s->C, s->S, s->G));
        TIME(reps, tsf, silu_forward(y, x, n));
        TIME(reps, tsb, silu_backward(dx, dy, x, n));
        printf("%-24s %9.3f %9.3f %9.1f %9.3f %9.1f %9.3f %9.3f\n", s->name, tc, tf, 12e-6 * n / tf,
               tb, 24e-6 * n / tb, tsf, tsb);
        free(x), free(y), free(dy), free(dx), free(w), free(b), free(dw), free(db), free(mean), free(rstd);
    }
    return 0;
}
