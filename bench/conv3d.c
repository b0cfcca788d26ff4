/* conv3d / conv_transpose3d speed on the reference model's layer shapes,
 * against PyTorch (timed by bench/conv3d.py, same shapes, same threads).
 *
 *   conv3d shapes                      the shape table, one per line (read by conv3d.py)
 *   conv3d run [-r REPS] [-s SLAB] [-o NAME] [-t TORCH_FILE]
 *
 * `run` times forward and backward (data + weight + bias gradients) of each
 * shape, median of REPS after one warm-up, and an OpenBLAS sgemm (1536^3,
 * its own threads, best of 7) as the practical peak; with -t it reads PyTorch's times ("name fwd_ms
 * bwd_ms" lines) and prints the ratio torch/ours (>= 1: we are faster). */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conv3d.h"
#include "conv_transpose3d.h"
#include "err.h"
#include "bench.h"

typedef struct {
    const char *name;
    int transposed, N, Cin, D, H, W, Cout, kd, kh, kw, s, pd, ph, pw, rep;
} shape;

/* VQ-GAN (input 1x32x256x256) and the diffusion UNet's k(1,3,3) convs (batch 2). */
static const shape shapes[] = {
    {"enc_in_k3_1-16", 0, 1, 1, 32, 256, 256, 16, 3, 3, 3, 1, 1, 1, 1, 1},
    {"enc_down1_k4s2_16-32", 0, 1, 16, 32, 256, 256, 32, 4, 4, 4, 2, 1, 1, 1, 1},
    {"enc_res_k3_32@16x128", 0, 1, 32, 16, 128, 128, 32, 3, 3, 3, 1, 1, 1, 1, 1},
    {"enc_down2_k4s2_32-64", 0, 1, 32, 16, 128, 128, 64, 4, 4, 4, 2, 1, 1, 1, 1},
    {"enc_res_k3_64@8x64", 0, 1, 64, 8, 64, 64, 64, 3, 3, 3, 1, 1, 1, 1, 1},
    {"enc_out_1x1_64-8", 0, 1, 64, 8, 64, 64, 8, 1, 1, 1, 1, 0, 0, 0, 0},
    {"dec_in_1x1_8-64", 0, 1, 8, 8, 64, 64, 64, 1, 1, 1, 1, 0, 0, 0, 0},
    {"dec_up1_convT_64-64", 1, 1, 64, 8, 64, 64, 64, 4, 4, 4, 2, 1, 1, 1, 0},
    {"dec_res_k3_64@16x128", 0, 1, 64, 16, 128, 128, 64, 3, 3, 3, 1, 1, 1, 1, 1},
    {"dec_up2_convT_64-32", 1, 1, 64, 16, 128, 128, 32, 4, 4, 4, 2, 1, 1, 1, 0},
    {"dec_res_k3_32@32x256", 0, 1, 32, 32, 256, 256, 32, 3, 3, 3, 1, 1, 1, 1, 1},
    {"dec_out_k3_32-1", 0, 1, 32, 32, 256, 256, 1, 3, 3, 3, 1, 1, 1, 1, 1},
    {"unet_k133_64@8x64", 0, 2, 64, 8, 64, 64, 64, 1, 3, 3, 1, 0, 1, 1, 0},
    {"unet_k133_128@8x32", 0, 2, 128, 8, 32, 32, 128, 1, 3, 3, 1, 0, 1, 1, 0},
    {"unet_k133_256@8x16", 0, 2, 256, 8, 16, 16, 256, 1, 3, 3, 1, 0, 1, 1, 0},
    {"unet_k133_512@8x8", 0, 2, 512, 8, 8, 8, 512, 1, 3, 3, 1, 0, 1, 1, 0},
};
#define NSHAPES (int)(sizeof shapes / sizeof *shapes)

/* GFLOP/s of a square sgemm: the practical peak of this machine and BLAS. */
static double sgemm_gflops(void) {
    const int n = 1536;
    float *a = alloc_random((size_t)n * n, 1), *b = alloc_random((size_t)n * n, 2);
    float *c = alloc_random((size_t)n * n, 3);
    double best = 1e30;
    for (int r = -1; r < 7; r++) { /* the best of 7: a peak, on a shared machine */
        double t0 = now_ms();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        double t1 = now_ms() - t0;
        if (r >= 0 && t1 < best) best = t1;
    }
    free(a), free(b), free(c);
    return 2.0 * n * n * n / (best * 1e6);
}

/* Times of one shape: forward and backward, median of reps. */
static int time_shape(const shape *s, int reps, int slab, double *fwd, double *bwd, double *gflop) {
    conv3d_dims c = {0};
    conv_transpose3d_dims t = {0};
    size_t nx, ny, nw, nwork;
    if (!s->transposed) {
        c = (conv3d_dims){.N = s->N, .Cin = s->Cin, .D = s->D, .H = s->H, .W = s->W,
                          .Cout = s->Cout, .kd = s->kd, .kh = s->kh, .kw = s->kw, .sd = s->s,
                          .sh = s->s, .sw = s->s, .pd = s->pd, .ph = s->ph, .pw = s->pw,
                          .pad_mode = s->rep ? CONV3D_PAD_REPLICATE : CONV3D_PAD_ZERO, .slab = slab};
        if (conv3d_dims_init(&c) < 0) return -1;
        ny = (size_t)c.N * c.Cout * c.OD * c.OH * c.OW;
        nwork = conv3d_workspace_size(&c);
        *gflop = conv3d_flops(&c) * 1e-9;
    } else {
        t = (conv_transpose3d_dims){.N = s->N, .Cin = s->Cin, .D = s->D, .H = s->H, .W = s->W,
                                    .Cout = s->Cout, .kd = s->kd, .kh = s->kh, .kw = s->kw,
                                    .sd = s->s, .sh = s->s, .sw = s->s, .pd = s->pd,
                                    .ph = s->ph, .pw = s->pw, .slab = slab};
        if (conv_transpose3d_dims_init(&t) < 0) return -1;
        ny = (size_t)t.N * t.Cout * t.OD * t.OH * t.OW;
        nwork = conv_transpose3d_workspace_size(&t);
        *gflop = conv_transpose3d_flops(&t) * 1e-9;
    }
    nx = (size_t)s->N * s->Cin * s->D * s->H * s->W;
    nw = (size_t)s->Cin * s->Cout * s->kd * s->kh * s->kw;
    float *x = alloc_random(nx, 1), *w = alloc_random(nw, 2), *b = alloc_random(s->Cout, 3);
    float *y = alloc_random(ny, 4), *g = alloc_random(ny, 5), *dx = alloc_random(nx, 6);
    float *dw = alloc_random(nw, 7), *db = alloc_random(s->Cout, 8);
    float *work = alloc_random(nwork ? nwork : 1, 9);
    double *tf = malloc((size_t)(reps + 1) * sizeof *tf), *tb = malloc((size_t)(reps + 1) * sizeof *tb);
    for (int r = 0; r <= reps; r++) { /* r = 0 warms up */
        double t0 = now_ms();
        if (!s->transposed) conv3d_forward(y, work, x, w, b, &c);
        else conv_transpose3d_forward(y, work, x, w, b, &t);
        double t1 = now_ms();
        if (!s->transposed) conv3d_backward(dx, dw, db, work, g, x, w, &c);
        else conv_transpose3d_backward(dx, dw, db, work, g, x, w, &t);
        tf[r] = t1 - t0, tb[r] = now_ms() - t1;
    }
    *fwd = median(tf + 1, reps), *bwd = median(tb + 1, reps);
    free(x), free(w), free(b), free(y), free(g), free(dx), free(dw), free(db), free(work);
    free(tf), free(tb);
    return 0;
}

/* PyTorch's times of `name` from the file of conv3d.py; 0 if absent. */
int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "shapes") == 0) {
        for (int i = 0; i < NSHAPES; i++) {
            const shape *s = &shapes[i];
            printf("%s %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d\n", s->name, s->transposed,
                   s->N, s->Cin, s->D, s->H, s->W, s->Cout, s->kd, s->kh, s->kw, s->s, s->pd,
                   s->ph, s->pw, s->rep);
        }
        return 0;
    }
    if (argc < 2 || strcmp(argv[1], "run") != 0) {
        fprintf(stderr, "Usage: conv3d shapes | conv3d run [-r REPS] [-s SLAB] [-o NAME] [-t TORCH_FILE]\n");
        return 2;
    }
    int reps = 3, slab = 0, c;
    const char *only = NULL, *torch = NULL;
    optind = 2;
    while ((c = getopt(argc, argv, "r:s:o:t:")) != -1) {
        if (c == 'r') reps = atoi(optarg);
        else if (c == 's') slab = atoi(optarg);
        else if (c == 'o') only = optarg;
        else if (c == 't') torch = optarg;
        else return 2;
    }
    if (reps < 1) reps = 1;
    double peak = sgemm_gflops();
    printf("threads: %d (OpenMP), OpenBLAS %s; sgemm 1536^3 (best of 7): %.1f GFLOP/s; median of %d runs\n\n",
           omp_get_max_threads(), openblas_get_config(), peak, reps);
    printf("%-22s %-4s %9s %9s %7s %8s %6s\n", "shape", "pass", "ours ms", "torch ms",
           "ratio", "GFLOP/s", "%peak");
    for (int i = 0; i < NSHAPES; i++) {
        if (only && !strstr(shapes[i].name, only)) continue;
        double f, b, gf, tf, tb;
        if (time_shape(&shapes[i], reps, slab, &f, &b, &gf) < 0) {
            fprintf(stderr, "conv3d: error: %s: %s\n", shapes[i].name, lsdm_err_msg());
            return 1;
        }
        torch_times(torch, shapes[i].name, &tf, &tb);
        const char *pass[2] = {"fwd", "bwd"};
        double ours[2] = {f, b}, theirs[2] = {tf, tb}, flop[2] = {gf, 2 * gf};
        for (int p = 0; p < 2; p++) {
            printf("%-22s %-4s %9.1f ", shapes[i].name, pass[p], ours[p]);
            if (theirs[p] > 0) printf("%9.1f %7.2f ", theirs[p], theirs[p] / ours[p]);
            else printf("%9s %7s ", "-", "-");
            double gfs = flop[p] / (ours[p] * 1e-3);
            printf("%8.1f %5.0f%%\n", gfs, 100 * gfs / peak);
        }
        fflush(stdout);
    }
    return 0;
}
