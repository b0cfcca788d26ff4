/* Attention speed on the reference UNet's shapes, against PyTorch (timed
 * by bench/attention.py, same shapes, same threads).
 *
 *   attention shapes                   the shape table, one per line (read by attention.py)
 *   attention run [-r REPS] [-o NAME] [-t TORCH_FILE]
 *
 * Kinds (the attention core only: the to_qkv / to_out projections are
 * not timed):
 *   temporal  rotary(q), rotary(k), relative position bias (32 buckets,
 *             max distance 32), softmax attention; B = batch*H*W, L = D
 *   linear    SpatialLinearAttention's core on the to_qkv output
 *             (B, 3*heads*dh, D, H*W)
 *   full      plain softmax attention (the middle block, L = H*W)
 * Forward = every forward of the chain; backward = zeroing the gradients
 * (our backwards accumulate, so the caller must) plus every backward.
 * Median of REPS after one warm-up; with -t, PyTorch's "name fwd_ms
 * bwd_ms" lines and the ratio torch/ours (>= 1: we are faster). */
#include <math.h>
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attention.h"
#include "linear_attention.h"
#include "bench.h"

typedef struct {
    const char *name, *kind;
    int B, H, L, dh, F; /* linear: L = N (positions per slice), F = D */
} shape;

/* Batch 2; heads 8, dim_head 32 at every level (hidden 256), levels
 * 64/128/256/512 channels at 8x64x64 .. 8x8x8. The channel count only
 * names the level: the attention core sees heads*dim_head. */
static const shape shapes[] = {
    {"temporal_64@8x64", "temporal", 2 * 64 * 64, 8, 8, 32, 1},
    {"temporal_128@8x32", "temporal", 2 * 32 * 32, 8, 8, 32, 1},
    {"temporal_256@8x16", "temporal", 2 * 16 * 16, 8, 8, 32, 1},
    {"temporal_512@8x8", "temporal", 2 * 8 * 8, 8, 8, 32, 1},
    {"linear_64@8x64", "linear", 2, 8, 64 * 64, 32, 8},
    {"linear_128@8x32", "linear", 2, 8, 32 * 32, 32, 8},
    {"linear_256@8x16", "linear", 2, 8, 16 * 16, 32, 8},
    {"linear_512@8x8", "linear", 2, 8, 8 * 8, 32, 8},
    {"mid_full_512@8x8", "full", 2 * 8, 8, 8 * 8, 32, 1},
};
#define NSHAPES (int)(sizeof shapes / sizeof *shapes)

/* Every buffer of one shape, freed together. */
static float *bufs[32];
static int nbufs;
static float *buf(size_t n) {
    float *p = alloc_random(n ? n : 1, (unsigned)nbufs + 1);
    return bufs[nbufs++] = p;
}
static void buf_free(void) { while (nbufs) free(bufs[--nbufs]); }

static void zero(float *p, size_t n) { memset(p, 0, n * sizeof *p); }

/* One forward (pass 0) or backward (pass 1) of a softmax-attention shape. */
static void run_softmax(const shape *s, int pass, float **t, int rot) {
    int B = s->B, H = s->H, L = s->L, dh = s->dh, BH = B * H;
    size_t n = (size_t)BH * L * dh, LL = (size_t)L * L;
    float *q = t[0], *k = t[1], *v = t[2], *g = t[3], *table = t[4], *cs = t[5], *qr = t[6];
    float *kr = t[7], *bias = t[8], *att = t[9], *out = t[10], *dq = t[11], *dk = t[12];
    float *dv = t[13], *dqr = t[14], *dkr = t[15], *dbias = t[16], *dtable = t[17], *work = t[18];
    float scale = 1 / sqrtf((float)dh);
    if (pass == 0) {
        if (rot) {
            rotary_forward(qr, q, cs, BH, L, dh, dh);
            rotary_forward(kr, k, cs, BH, L, dh, dh);
            relpos_bias_forward(bias, table, H, L, 32, 32);
        }
        attention_forward(out, att, rot ? qr : q, rot ? kr : k, v, rot ? bias : NULL, B, H, L, dh, scale);
        return;
    }
    if (rot) {
        zero(dqr, n), zero(dkr, n), zero(dbias, H * LL), zero(dtable, 32 * (size_t)H);
        zero(dq, n), zero(dk, n), zero(dv, n);
        attention_backward(dqr, dkr, dv, dbias, work, g, qr, kr, v, att, B, H, L, dh, scale);
        rotary_backward(dq, dqr, cs, BH, L, dh, dh);
        rotary_backward(dk, dkr, cs, BH, L, dh, dh);
        relpos_bias_backward(dtable, dbias, H, L, 32, 32);
    } else {
        zero(dq, n), zero(dk, n), zero(dv, n);
        attention_backward(dq, dk, dv, NULL, work, g, q, k, v, att, B, H, L, dh, scale);
    }
}

static void run_linear(const shape *s, int pass, float **t) {
    int B = s->B, H = s->H, N = s->L, dh = s->dh, F = s->F;
    size_t n = (size_t)B * H * dh * F * N;
    float scale = 1 / sqrtf((float)dh);
    if (pass == 0) linear_attention_forward(t[1], t[2], t[3], t[4], t[0], B, H, dh, F, N, scale);
    else {
        zero(t[6], 3 * n);
        linear_attention_backward(t[6], t[7], t[5], t[0], t[2], t[3], t[4], B, H, dh, F, N, scale);
    }
}

/* Median forward and backward times of one shape. */
static void time_shape(const shape *s, int reps, double *fwd, double *bwd) {
    int B = s->B, H = s->H, L = s->L, dh = s->dh, F = s->F, lin = strcmp(s->kind, "linear") == 0;
    int rot = strcmp(s->kind, "temporal") == 0;
    float *t[19];
    if (lin) {
        size_t n = (size_t)B * H * dh * F * L;
        t[0] = buf(3 * n), t[1] = buf(n), t[2] = buf(n), t[3] = buf(n);
        t[4] = buf((size_t)B * F * H * dh * dh), t[5] = buf(n), t[6] = buf(3 * n);
        t[7] = buf(linear_attention_workspace_size(B, H, dh, F, L));
    } else {
        size_t n = (size_t)B * H * L * dh, LL = (size_t)L * L;
        for (int i = 0; i < 4; i++) t[i] = buf(n);
        t[4] = buf(32 * (size_t)H), t[5] = buf((size_t)L * dh);
        rotary_cos_sin(t[5], L, dh);
        t[6] = buf(n), t[7] = buf(n), t[8] = buf(H * LL), t[9] = buf((size_t)B * H * LL);
        for (int i = 10; i < 16; i++) t[i] = buf(n);
        t[16] = buf(H * LL), t[17] = buf(32 * (size_t)H), t[18] = buf(attention_workspace_size(B, H, L));
    }
    double tf[64], tb[64];
    for (int r = 0; r <= reps; r++) { /* r = 0 warms up */
        double t0 = now_ms();
        if (lin) run_linear(s, 0, t); else run_softmax(s, 0, t, rot);
        double t1 = now_ms();
        if (lin) run_linear(s, 1, t); else run_softmax(s, 1, t, rot);
        tf[r] = t1 - t0, tb[r] = now_ms() - t1;
    }
    *fwd = median(tf + 1, reps), *bwd = median(tb + 1, reps);
    buf_free();
}

/* PyTorch's times of `name` from attention.py's output; 0 if absent. */
int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "shapes") == 0) {
        for (int i = 0; i < NSHAPES; i++) {
            const shape *s = &shapes[i];
            printf("%s %s %d %d %d %d %d\n", s->name, s->kind, s->B, s->H, s->L, s->dh, s->F);
        }
        return 0;
    }
    if (argc < 2 || strcmp(argv[1], "run") != 0) {
        fprintf(stderr, "Usage: attention shapes | attention run [-r REPS] [-o NAME] [-t TORCH_FILE]\n");
        return 2;
    }
    int reps = 5, c;
    const char *only = NULL, *torch = NULL;
    optind = 2;
    while ((c = getopt(argc, argv, "r:o:t:")) != -1) {
        if (c == 'r') reps = atoi(optarg);
        else if (c == 'o') only = optarg;
        else if (c == 't') torch = optarg;
        else return 2;
    }
    reps = reps < 1 ? 1 : reps > 63 ? 63 : reps;
    /* as the programs run the kernels (lsdm_cli_engine_setup): OpenMP
     * threads outside, single-threaded BLAS inside */
    openblas_set_num_threads(1);
    printf("threads: %d (OpenMP), BLAS single-threaded; median of %d runs\n\n", omp_get_max_threads(), reps);
    printf("%-20s %-4s %9s %9s %7s\n", "shape", "pass", "ours ms", "torch ms", "ratio");
    for (int i = 0; i < NSHAPES; i++) {
        if (only && !strstr(shapes[i].name, only)) continue;
        double f, b, tf, tb;
        time_shape(&shapes[i], reps, &f, &b);
        torch_times(torch, shapes[i].name, &tf, &tb);
        const char *pass[2] = {"fwd", "bwd"};
        double ours[2] = {f, b}, theirs[2] = {tf, tb};
        for (int p = 0; p < 2; p++) {
            printf("%-20s %-4s %9.2f ", shapes[i].name, pass[p], ours[p]);
            if (theirs[p] > 0) printf("%9.2f %7.2f\n", theirs[p], theirs[p] / ours[p]);
            else printf("%9s %7s\n", "-", "-");
        }
        fflush(stdout);
    }
    return 0;
}
