/* Diffusion UNet speed at the reference size (config med-lsdm, random
 * weights from unet_init) against PyTorch (bench/ldm.py, the same
 * Unet3D_SPADE of tests/torch/unet_ref.py, same shape, same threads;
 * bench/run-ldm runs both).
 *
 *   ldm [-r REPS] [-s D,H,W] [-t TORCH_FILE] [-H] STAGE
 *
 * STAGE is one of
 *   step      one denoising step as ldm-denoise runs it: unet_forward of
 *             a batch of 2 (the conditional and the unconditional pass of
 *             guidance) on latents (2,8,D,H,W), from mask features made
 *             before (not timed)
 *   maskfeat  the mask features of one mask (1,5,4D,4H,4W) (SegConv3D and
 *             every SPADE norm's gamma and beta): once per sample in
 *             ldm-denoise, so not part of a step
 * D,H,W is the latent grid (default 8,64,64: the reference's 32x256x256
 * volume); the mask is 4x it on every axis. Each stage runs in its own
 * process (as on the PyTorch side), so the process's peak RSS is that
 * stage's. Prints table rows: the median ms of REPS runs after one
 * warm-up, PyTorch's ms and the ratio torch/ours (with -t: "name ms
 * rss_mib" lines of ldm.py), the nn_ctx peak (activations and workspaces;
 * the mask features' context for maskfeat), our peak RSS and PyTorch's.
 * The step is compared with both ways PyTorch can run guidance: one
 * forward of a batch of 2 (step_batch2) and two forwards of batch 1
 * (step_2pass, the reference's forward_with_cond_scale). -H prints the
 * table header and exits. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench.h"
#include "err.h"
#include "unet.h"

static void row(const char *name, double ms, const char *torch, const char *tname, double ctx_mib) {
    double tms, trss;
    torch_times(torch, tname, &tms, &trss);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%-22s %9.1f ", name, ms);
    if (tms > 0) printf("%9.1f %6.2f ", tms, tms / ms);
    else printf("%9s %6s ", "-", "-");
    printf("%9.0f %9.0f ", ctx_mib, ru.ru_maxrss / 1024.0);
    if (trss > 0) printf("%9.0f\n", trss);
    else printf("%9s\n", "-");
}

/* A one-hot mask (N, L, S) of blocky random labels (the cond half) or zeros. */
static float *make_mask(int L, int Dm, int Hm, int Wm, int zeros) {
    size_t S = (size_t)Dm * Hm * Wm;
    float *m = calloc((size_t)L * S, sizeof(float));
    if (!m) { fprintf(stderr, "ldm: error: out of memory\n"); exit(1); }
    if (zeros) return m;
    for (int d = 0; d < Dm; d++)
        for (int h = 0; h < Hm; h++)
            for (int w = 0; w < Wm; w++) {
                unsigned s = (unsigned)((d / 4) * 7919 + (h / 16) * 104729 + (w / 16) * 1299709);
                s = s * 1664525u + 1013904223u;
                m[(size_t)((s >> 8) % (unsigned)L) * S + ((size_t)d * Hm + h) * Wm + w] = 1;
            }
    return m;
}

int main(int argc, char **argv) {
    bench_args a = {.reps = 3, .D = 8, .H = 64, .W = 64};
    const char *stage = bench_args_parse(&a, argc, argv);
    if (!stage) goto usage;
    if (!*stage) {
        printf("%-22s %9s %9s %6s %9s %9s %9s\n", "stage", "ours ms", "torch ms", "ratio", "ctx MiB",
               "RSS MiB", "torch RSS");
        return 0;
    }
    int reps = a.reps, D = a.D, H = a.H, W = a.W;
    const char *torch = a.torch;
    if (strcmp(stage, "step") && strcmp(stage, "maskfeat")) goto usage;

    unet_config cfg;
    unet m;
    if (unet_config_named(&cfg, "med-lsdm") < 0 || unet_init(&m, &cfg, 0) < 0) {
        fprintf(stderr, "ldm: error: %s\n", lsdm_err_msg());
        return 1;
    }
    int L = cfg.label_nc, C = cfg.channels, N = !strcmp(stage, "step") ? 2 : 1;
    int Dm = 4 * D, Hm = 4 * H, Wm = 4 * W;
    size_t S = (size_t)Dm * Hm * Wm;
    float *mask = malloc((size_t)N * L * S * sizeof(float));
    float *cm = make_mask(L, Dm, Hm, Wm, 0);
    if (!mask) return 1;
    memcpy(mask, cm, (size_t)L * S * sizeof(float));
    if (N == 2) memset(mask + (size_t)L * S, 0, (size_t)L * S * sizeof(float)); /* the null mask */
    free(cm);
    float *x = alloc_random((size_t)N * C * D * H * W, 1), t[2] = {250, 250};

    nn_ctx cf, c;
    nn_ctx_init(&cf, 0);
    nn_ctx_init(&c, 0);
    unet_maskfeat mf;
    double ts[100];
    if (N == 2 && unet_encode_mask(&cf, &m, nn_tensor_wrap(&cf, mask, N, L, Dm, Hm, Wm), D, H, W, &mf) < 0) {
        fprintf(stderr, "ldm: error: mask features: %s\n", lsdm_err_msg());
        return 1;
    }
    for (int r = 0; r <= reps; r++) { /* r = 0 warms up (and fills the allocator's cache) */
        double t0 = now_ms();
        int rc;
        if (N == 2) {
            rc = unet_forward(&c, &m, nn_tensor_wrap(&c, x, N, C, D, H, W), t, &mf) ? 0 : -1;
            nn_ctx_reset(&c);
        } else {
            rc = unet_encode_mask(&cf, &m, nn_tensor_wrap(&cf, mask, N, L, Dm, Hm, Wm), D, H, W, &mf);
            nn_ctx_reset(&cf);
        }
        if (rc < 0) {
            fprintf(stderr, "ldm: error: %s: %s\n", stage, lsdm_err_msg());
            return 1;
        }
        ts[r] = now_ms() - t0;
    }
    double ms = median(ts + 1, reps);
    if (N == 2) {
        row("step (ours: batch 2)", ms, torch, "step_batch2", c.bytes_peak / 1048576.0);
        row("step vs torch 2 passes", ms, torch, "step_2pass", c.bytes_peak / 1048576.0);
    } else {
        row("maskfeat", ms, torch, "maskfeat", cf.bytes_peak / 1048576.0);
    }
    nn_ctx_free(&c);
    nn_ctx_free(&cf);
    unet_free(&m);
    free(x), free(mask);
    return 0;
usage:
    fprintf(stderr, "Usage: ldm [-r REPS] [-s D,H,W] [-t TORCH_FILE] [-H] step|maskfeat\n");
    return 2;
}
