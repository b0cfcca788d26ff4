/* VQ-GAN inference speed at the reference size (config med-lsdm, random
 * weights from vqgan_init) on one volume, against PyTorch (bench/vqgan.py,
 * same model, same shape, same threads; bench/run-vqgan runs both).
 *
 *   vqgan [-r REPS] [-s D,H,W] [-t TORCH_FILE] [-H] STAGE
 *
 * STAGE is one of
 *   encode        x (1,1,D,H,W) -> prequant z (pre_vq_conv(encoder(x)))
 *   quantize      z -> codes (vqgan_quantize) -> zq (vqgan_lookup)
 *   decode        zq -> image, plain decoder (med-lsdm)
 *   decode_spade  zq + one-hot mask (5 classes) -> image (med-lsdm-spade)
 * Each stage runs in its own process (as on the PyTorch side), so the
 * process's peak RSS is that stage's. Prints one table row: the median ms
 * of REPS runs after one warm-up, PyTorch's ms and the ratio torch/ours
 * (with -t: "stage ms rss_mib" lines of vqgan.py), the nn_ctx peak bytes
 * (activations and workspaces), our peak RSS (weights, input and the
 * process included) and PyTorch's, and GFLOP/s of the stage's convolutions
 * (conv and transposed conv multiply-adds x 2 over the stage's time). -H
 * prints the table header and exits. */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench.h"
#include "err.h"
#include "vqgan.h"

static const char *const stages[] = {"encode", "quantize", "decode", "decode_spade"};

/* Conv flops of a 3D conv layer on an input of (D,H,W): 2 Cout Cin kvol per output voxel. */
static double conv_gflop(const nn_conv *l, int D, int H, int W, int *oD, int *oH, int *oW) {
    int od = (D + 2 * l->p[0] - l->k[0]) / l->s[0] + 1;
    int oh = (H + 2 * l->p[1] - l->k[1]) / l->s[1] + 1;
    int ow = (W + 2 * l->p[2] - l->k[2]) / l->s[2] + 1;
    if (oD) *oD = od, *oH = oh, *oW = ow;
    return 2e-9 * l->Cout * l->Cin * l->k[0] * l->k[1] * l->k[2] * (double)od * oh * ow;
}

static double spade_norm_gflop(const vq_spade_norm *s, int D, int H, int W) {
    return conv_gflop(&s->shared, D, H, W, NULL, NULL, NULL) +
           conv_gflop(&s->gamma, D, H, W, NULL, NULL, NULL) +
           conv_gflop(&s->beta, D, H, W, NULL, NULL, NULL);
}

/* The convolutions' GFLOP of a stage on a (D,H,W) volume. */
static double stage_gflop(const vqgan *m, const char *stage, int D, int H, int W) {
    double g = 0;
    int f = vqgan_factor(&m->cfg, 0);
    if (!strcmp(stage, "encode")) {
        g += conv_gflop(&m->conv_first, D, H, W, &D, &H, &W);
        for (int i = 0; i < m->stages; i++) {
            g += conv_gflop(&m->down[i], D, H, W, &D, &H, &W);
            g += conv_gflop(&m->enc_res[i].c1, D, H, W, NULL, NULL, NULL);
            g += conv_gflop(&m->enc_res[i].c2, D, H, W, NULL, NULL, NULL);
        }
        g += conv_gflop(&m->pre_vq, D, H, W, NULL, NULL, NULL);
    } else if (!strncmp(stage, "decode", 6)) {
        D /= f, H /= f, W /= f;
        g += conv_gflop(&m->post_vq, D, H, W, NULL, NULL, NULL);
        if (m->cfg.spade) g += spade_norm_gflop(&m->sdec_final, D, H, W);
        for (int i = 0; i < m->stages; i++) {
            const nn_convt *u = &m->up[i];
            D *= 2, H *= 2, W *= 2; /* k4 s2 p3 after a replicate pad of 1 */
            g += 2e-9 * u->Cin * u->Cout * u->k[0] * u->k[1] * u->k[2] * (double)(D / 2 + 2) *
                 (H / 2 + 2) * (W / 2 + 2);
            for (int j = 0; j < 2; j++) {
                const vq_resblock *r = &m->dec_res[i][j];
                const vq_spade_res *s = &m->sdec_res[i][j];
                const nn_conv *c1 = m->cfg.spade ? &s->c1 : &r->c1, *c2 = m->cfg.spade ? &s->c2 : &r->c2;
                g += conv_gflop(c1, D, H, W, NULL, NULL, NULL) + conv_gflop(c2, D, H, W, NULL, NULL, NULL);
                if (m->cfg.spade)
                    g += spade_norm_gflop(&s->n1, D, H, W) + spade_norm_gflop(&s->n2, D, H, W);
            }
        }
        g += conv_gflop(&m->conv_last, D, H, W, NULL, NULL, NULL);
    }
    return g;
}

/* One run of the stage; 0, or -1 with lsdm_err. The ctx is reset after. */
static int run_stage(nn_ctx *c, const vqgan *m, const char *stage, float *x, float *z,
                     float *seg, int32_t *idx, int D, int H, int W) {
    int f = vqgan_factor(&m->cfg, 0), E = m->cfg.embedding_dim;
    int rc = 0;
    if (!strcmp(stage, "encode")) {
        nn_tensor *xt = nn_tensor_wrap(c, x, 1, m->cfg.image_channels, D, H, W);
        if (!vqgan_encode(c, m, xt)) rc = -1;
    } else if (!strcmp(stage, "quantize")) {
        nn_tensor *zt = nn_tensor_wrap(c, z, 1, E, D / f, H / f, W / f);
        if (!zt || vqgan_quantize(c, m, zt, idx) < 0 ||
            !vqgan_lookup(c, m, idx, 1, D / f, H / f, W / f))
            rc = -1;
    } else {
        nn_tensor *zt = nn_tensor_wrap(c, z, 1, E, D / f, H / f, W / f);
        nn_tensor *st = seg ? nn_tensor_wrap(c, seg, 1, m->cfg.label_nc, D, H, W) : NULL;
        if (!vqgan_decode(c, m, zt, st)) rc = -1;
    }
    if (nn_ctx_status(c) < 0) rc = -1;
    nn_ctx_reset(c);
    return rc;
}

int main(int argc, char **argv) {
    bench_args a = {.reps = 3, .D = 32, .H = 256, .W = 256};
    const char *stage = bench_args_parse(&a, argc, argv);
    if (!stage) goto usage;
    if (!*stage) {
        printf("%-13s %9s %9s %6s %9s %9s %9s %8s\n", "stage", "ours ms", "torch ms", "ratio",
               "ctx MiB", "RSS MiB", "torch RSS", "GFLOP/s");
        return 0;
    }
    int reps = a.reps, D = a.D, H = a.H, W = a.W;
    const char *torch = a.torch;
    int known = 0;
    for (size_t i = 0; i < sizeof stages / sizeof *stages; i++) known |= !strcmp(stage, stages[i]);
    if (!known) goto usage;

    vqgan_config cfg;
    vqgan m;
    if (vqgan_config_named(&cfg, !strcmp(stage, "decode_spade") ? "med-lsdm-spade" : "med-lsdm") < 0 ||
        vqgan_init(&m, &cfg, 0) < 0) {
        fprintf(stderr, "vqgan: error: %s\n", lsdm_err_msg());
        return 1;
    }
    int f = vqgan_factor(&cfg, 0);
    if (D % f || H % f || W % f) {
        fprintf(stderr, "vqgan: error: shape not a multiple of %d\n", f);
        return 1;
    }
    size_t nvox = (size_t)D * H * W, nlat = nvox / ((size_t)f * f * f);
    float *x = NULL, *z = NULL, *seg = NULL;
    int32_t *idx = NULL;
    if (!strcmp(stage, "encode")) {
        x = alloc_random(nvox * cfg.image_channels, 1);
    } else {
        z = alloc_random(nlat * cfg.embedding_dim, 2);
        idx = malloc(nlat * sizeof *idx);
        if (!idx) return 1;
    }
    if (!strcmp(stage, "decode_spade")) { /* one-hot of random labels */
        seg = calloc(nvox * cfg.label_nc, sizeof *seg);
        if (!seg) return 1;
        unsigned s = 3;
        for (size_t i = 0; i < nvox; i++) {
            s = s * 1664525u + 1013904223u;
            seg[(size_t)((s >> 8) % (unsigned)cfg.label_nc) * nvox + i] = 1;
        }
    }

    nn_ctx c;
    nn_ctx_init(&c, 0);
    double t[100];
    for (int r = 0; r <= reps; r++) { /* r = 0 warms up (and fills the allocator's cache) */
        double t0 = now_ms();
        if (run_stage(&c, &m, stage, x, z, seg, idx, D, H, W) < 0) {
            fprintf(stderr, "vqgan: error: %s: %s\n", stage, lsdm_err_msg());
            return 1;
        }
        t[r] = now_ms() - t0;
    }
    double ms = median(t + 1, reps), tms, trss;
    torch_times(torch, stage, &tms, &trss);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%-13s %9.1f ", stage, ms);
    if (tms > 0) printf("%9.1f %6.2f ", tms, tms / ms);
    else printf("%9s %6s ", "-", "-");
    printf("%9.0f %9.0f ", c.bytes_peak / 1048576.0, ru.ru_maxrss / 1024.0);
    if (trss > 0) printf("%9.0f ", trss);
    else printf("%9s ", "-");
    double g = stage_gflop(&m, stage, D, H, W);
    if (g > 0) printf("%8.1f\n", g / (ms * 1e-3));
    else printf("%8s\n", "-");
    nn_ctx_free(&c);
    vqgan_free(&m);
    free(x), free(z), free(seg), free(idx);
    return 0;
usage:
    fprintf(stderr, "Usage: vqgan [-r REPS] [-s D,H,W] [-t TORCH_FILE] [-H] "
                    "encode|quantize|decode|decode_spade\n");
    return 2;
}
