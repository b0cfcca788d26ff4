/* codebook_nearest speed at the reference VQ-GAN's shape (z 1x8x8x64x64:
 * 32768 vectors of dim 8, against K = 16384 codes), against PyTorch's
 * distance matrix + argmin (bench/codebook.py, same shape, same threads).
 *
 *   codebook [-r REPS] [-t TORCH_FILE] [-n VECTORS] [-k CODES] [-c DIM]
 *
 * Prints the median ms of codebook_nearest (and of codebook_lookup) after
 * one warm-up, the rate in G vector-code pairs per second, the workspace
 * in KiB, and with -t PyTorch's ms ("nearest MS 0" line) and the ratio
 * torch/ours (>= 1: ours is faster). Inputs are uniform in [-1,1). */
#include <getopt.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "codebook.h"
#include "err.h"

int main(int argc, char **argv) {
    int reps = 5, K = 16384, C = 8, opt;
    long M = 8L * 64 * 64;
    const char *torch = NULL;
    while ((opt = getopt(argc, argv, "r:t:n:k:c:")) != -1) {
        switch (opt) {
        case 'r': reps = atoi(optarg); break;
        case 't': torch = optarg; break;
        case 'n': M = atol(optarg); break;
        case 'k': K = atoi(optarg); break;
        case 'c': C = atoi(optarg); break;
        default: fprintf(stderr, "usage: codebook [-r REPS] [-t TORCH_FILE] [-n VECTORS] [-k CODES] [-c DIM]\n"); return 2;
        }
    }
    if (reps < 1 || reps > 63 || M < 1 || K < 1 || C < 1) { fprintf(stderr, "codebook: bad arguments\n"); return 2; }
    float *z = alloc_random((size_t)M * C, 1), *emb = alloc_random((size_t)K * C, 2);
    float *zq = alloc_random((size_t)M * C, 3), *dist = alloc_random((size_t)M, 4);
    size_t ws = codebook_workspace_size(K, C);
    float *work = malloc(ws * sizeof *work);
    int32_t *idx = malloc((size_t)M * sizeof *idx);
    if (!work || !idx) { fprintf(stderr, "codebook: out of memory\n"); return 1; }
    double tn[64], tl[64];
    for (int r = 0; r <= reps; r++) {
        double t0 = now_ms();
        if (codebook_nearest(idx, dist, work, z, emb, 1, C, M, K) != 0) { fprintf(stderr, "codebook: %s\n", lsdm_err_msg()); return 1; }
        double t1 = now_ms();
        codebook_lookup(zq, idx, emb, 1, C, M, K);
        tl[r] = now_ms() - t1;
        tn[r] = t1 - t0;
    }
    double n_ms = median(tn + 1, reps), l_ms = median(tl + 1, reps), t_ms, unused;
    torch_times(torch, "nearest", &t_ms, &unused);
    printf("shape: %ld vectors x %d codes, dim %d, %d threads, workspace %.0f KiB\n", M, K, C,
           omp_get_max_threads(), ws * 4.0 / 1024);
    printf("%-10s %10s %10s %8s %12s\n", "op", "ours ms", "torch ms", "ratio", "Gpairs/s");
    printf("%-10s %10.2f %10.2f %8.1f %12.2f\n", "nearest", n_ms, t_ms, t_ms > 0 ? t_ms / n_ms : 0.0,
           (double)M * K / n_ms / 1e6);
    printf("%-10s %10.2f\n", "lookup", l_ms);
    free(z), free(emb), free(zq), free(dist), free(work), free(idx);
    return 0;
}
