/* vq-train: train the 3D VQ-GAN on image volumes (streams, NIfTI files,
 * directories, archives): random blocks with flips, the reference losses
 * (vqgan_train.h), atomic checkpoints, bit-identical --resume, a progress
 * line, a CSV log, validation PSNR and PNG previews. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checkpoint.h"
#include "cli.h"
#include "err.h"
#include "outfile.h"
#include "pngfile.h"
#include "rng.h"
#include "vqgan_train.h"
#include "volsrc.h"

static const char HELP[] =
    "Usage: vq-train [OPTION]... -o CKPT INPUT...\n"
    "Train the 3D VQ-GAN (Med-LSDM's) on the image volumes of each INPUT (tensor\n"
    "stream, NIfTI file, directory or archive; '-' is standard input) and write\n"
    "the model to CKPT (safetensors, replaced atomically at every save).\n"
    "Each volume is rescaled to [-1,1] (min-max), cropped or padded to --shape if\n"
    "given; each step takes --batch random blocks with random flips.\n"
    "\n"
    "  -o, --output CKPT     checkpoint to write (required)\n"
    "  -c, --config C        model: med-lsdm, med-lsdm-spade, tiny-f4, tiny-f4-spade\n"
    "                        (f 4), tiny, tiny-spade (f 2) or a config file\n"
    "                        (default tiny)\n"
    "      --init CKPT       start from these weights (e.g. a converted PyTorch model)\n"
    "      --resume CKPT     continue a vq-train run bit-identically (model, optimiser,\n"
    "                        step, seed; --steps is the total)\n"
    "      --seg SEG         one-hot masks (mask2sem) paired with the inputs, record by\n"
    "                        record: needed by a SPADE decoder\n"
    "      --steps N         total steps (default 2000)\n"
    "      --minutes M       stop (and save) after M minutes of training\n"
    "      --batch N         blocks per step (default 2; tiny configs 4)\n"
    "      --block DxHxW     block size, multiples of the downsampling (default\n"
    "                        32x256x256; tiny configs 16x32x32)\n"
    "      --shape DxHxW     crop/pad every volume to this first (centred)\n"
    "      --flip AXES       axes to flip at random, from 'dhw' (default w; '' none)\n"
    "      --lr X            Adam learning rate (default 3e-4, tiny configs 1e-3;\n"
    "                        betas 0.5, 0.9)\n"
    "      --lr-schedule S   constant, or cosine: decayed to 0 along a half cosine\n"
    "                        over --steps (default constant; tiny configs cosine)\n"
    "      --cosine          the same as --lr-schedule cosine\n"
    "      --foreground P    centre a block on a random foreground voxel (above 10%\n"
    "                        of the volume's range) with probability P (default 0.67)\n"
    "      --disc-start N    step at which the GAN losses start (default 10000)\n"
    "      --l1-weight X     (default 4)    --gan-feat-weight X (default 4)\n"
    "      --image-gan-weight X, --video-gan-weight X   (default 1, 1)\n"
    "      --lpips WEIGHTS   add the LPIPS perceptual loss of one slice per block, with\n"
    "                        these VGG16 + LPIPS weights (tools/contrib/convert_lpips.py)\n"
    "      --perceptual-weight X   its weight (default 4, as the reference runs)\n"
    "      --grad-clip X     gradient norm clipping (default 1; 0 off)\n"
    "      --no-restart      no random restarts of unused codes\n"
    "      --restart-threshold X  restart a code whose EMA use count is below X\n"
    "                        (default 1, the reference's)\n"
    "      --seed N          seed of every random choice (default 0)\n"
    "      --save-every N    checkpoint every N steps (default 500)\n"
    "      --export FILE     at the end also write FILE: what inference needs,\n"
    "                        the encoder, codebook and decoder with the\n"
    "                        config, no optimiser state or discriminators (the file to ship)\n"
    "      --log CSV         append one line per --log-every steps (default 10)\n"
    "      --val VAL         validation volumes: PSNR of their reconstruction (whole\n"
    "                        volumes) at each save and at the end\n"
    "      --preview PNG     input | reconstruction of the first validation (else\n"
    "                        training) volume's middle slice, at each save\n"
    LSDM_ENGINE_HELP
    LSDM_COMMON_HELP
    "\n"
    "Without --lpips there is no perceptual term (no weights ship with lsdm). The\n"
    "progress line (a terminal, not -q) shows the losses, codebook usage and speed.\n"
    "Exit status: 0 ok, 1 error (bad data, divergence: the last checkpoint stays),\n"
    "2 usage error.\n";

/* What --export leaves out of the shipped file. */
static const char *const EXPORT_DROP[] = {CKPT_TRAIN_PREFIX, "image_discriminator.", "video_discriminator."};

enum {
    OPT_INIT = LSDM_OPT_FIRST_TOOL, OPT_RESUME, OPT_SEG, OPT_STEPS, OPT_MINUTES, OPT_BATCH,
    OPT_BLOCK, OPT_SHAPE, OPT_FLIP, OPT_LR, OPT_DISC_START, OPT_L1, OPT_FEAT, OPT_IMG_GAN,
    OPT_VID_GAN, OPT_CLIP, OPT_NO_RESTART, OPT_SEED, OPT_SAVE_EVERY, OPT_EXPORT, OPT_LOG, OPT_LOG_EVERY,
    OPT_VAL, OPT_PREVIEW, OPT_LPIPS, OPT_PERCEPTUAL, OPT_COSINE, OPT_FOREGROUND, OPT_SCHEDULE, OPT_RESTART_THRES,
};

typedef struct {
    float *img; /* (C,D,H,W) in [-1,1] */
    float *seg; /* (L,D,H,W) one-hot or NULL */
    int D, H, W;
} volume;

typedef struct {
    volume *v;
    int n;
} volume_set;

typedef struct {
    const char *out, *export, *config, *init, *resume, *seg, *log, *val, *preview, *lpips;
    long steps, batch, save_every, log_every;
    double minutes;
    int block[3], shape[3], has_block, has_shape;
    int flip[3];
    double foreground;
    int schedule; /* -1 default, 0 constant, 1 cosine */
} train_args;

static void set_free(volume_set *s) {
    for (int i = 0; i < s->n; i++) {
        free(s->v[i].img);
        free(s->v[i].seg);
    }
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* Centre crop/pad of (C,D,H,W) to shape, padding with the edge voxel. */
static float *crop_pad(const float *x, int C, const int in[3], const int out[3]) {
    float *y = malloc((size_t)C * out[0] * out[1] * out[2] * sizeof(float));
    if (!y) return lsdm_err("out of memory"), NULL;
    int o[3];
    for (int a = 0; a < 3; a++) o[a] = (in[a] - out[a]) / 2; /* may be negative: padding */
    for (int c = 0; c < C; c++)
        for (int d = 0; d < out[0]; d++)
            for (int h = 0; h < out[1]; h++)
                for (int w = 0; w < out[2]; w++) {
                    int sd = d + o[0], sh = h + o[1], sw = w + o[2];
                    sd = sd < 0 ? 0 : sd >= in[0] ? in[0] - 1 : sd;
                    sh = sh < 0 ? 0 : sh >= in[1] ? in[1] - 1 : sh;
                    sw = sw < 0 ? 0 : sw >= in[2] ? in[2] - 1 : sw;
                    y[(((size_t)c * out[0] + d) * out[1] + h) * out[2] + w] =
                        x[(((size_t)c * in[0] + sd) * in[1] + sh) * in[2] + sw];
                }
    return y;
}

/* A record as C,D,H,W floats (1,D,H,W for 3D records). */
static float *record_floats(const lsdm_record *r, int *C, int dims[3]) {
    if (r->ndim != 3 && r->ndim != 4)
        return lsdm_err("record '%s' is not a volume", lsdm_record_get(r, "name")), NULL;
    int off = r->ndim - 3;
    *C = off ? (int)r->shape[0] : 1;
    for (int a = 0; a < 3; a++) dims[a] = (int)r->shape[off + a];
    size_t n = lsdm_record_numel(r);
    float *x = malloc(n * sizeof(float));
    if (!x) return lsdm_err("out of memory"), NULL;
    for (size_t i = 0; i < n; i++) x[i] = (float)lsdm_elem_get(r->data, r->dtype, i);
    return x;
}

/* Read every volume of the inputs; rescale images to [-1,1]; pair masks. */
static int load_set(volume_set *s, char **paths, int npaths, const char *segpath,
                    const vqgan_config *cfg, const train_args *a) {
    memset(s, 0, sizeof *s);
    lsdm_record r;
    lsdm_record_init(&r);
    lsdm_volsrc *segsrc = NULL;
    if (segpath && !(segsrc = lsdm_volsrc_open(segpath, NULL))) return -1;
    int rc = 0;
    for (int p = 0; rc == 0 && p < npaths; p++) {
        lsdm_volsrc *src = lsdm_volsrc_open(paths[p], NULL);
        if (!src) {
            rc = -1;
            break;
        }
        while (rc == 0 && (rc = lsdm_volsrc_next(src, &r)) == 1) {
            rc = 0;
            const char *name = lsdm_record_get(&r, "name");
            int C, dims[3];
            float *x = record_floats(&r, &C, dims);
            if (!x) {
                rc = -1;
                break;
            }
            if (C != cfg->image_channels) {
                free(x);
                rc = lsdm_err("'%s' has %d channels, the model takes %d", name, C, cfg->image_channels);
                break;
            }
            size_t n = (size_t)C * dims[0] * dims[1] * dims[2];
            float lo = INFINITY, hi = -INFINITY;
            for (size_t i = 0; i < n; i++) {
                if (!isfinite(x[i])) {
                    lo = NAN;
                    break;
                }
                lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
            }
            if (isnan(lo)) {
                free(x);
                rc = lsdm_err("'%s' holds NaN or Inf", name);
                break;
            }
            float scale = hi > lo ? 2.0f / (hi - lo) : 0;
            for (size_t i = 0; i < n; i++) x[i] = (x[i] - lo) * scale - 1.0f;
            volume v = {x, NULL, dims[0], dims[1], dims[2]};
            if (segsrc) {
                int sc, sd[3];
                rc = lsdm_volsrc_next(segsrc, &r);
                if (rc != 1) {
                    free(x);
                    rc = rc < 0 ? -1 : lsdm_err("--seg has fewer records than the inputs");
                    break;
                }
                rc = 0;
                v.seg = record_floats(&r, &sc, sd);
                if (!v.seg || sc != cfg->label_nc || memcmp(sd, dims, sizeof sd)) {
                    free(x);
                    free(v.seg);
                    rc = v.seg ? lsdm_err("mask '%s' is %dx%dx%dx%d, expected %dx%dx%dx%d (label_nc "
                                          "one-hot channels at the image's size)",
                                          lsdm_record_get(&r, "name"), sc, sd[0], sd[1], sd[2],
                                          cfg->label_nc, dims[0], dims[1], dims[2])
                               : -1;
                    break;
                }
            }
            if (a->has_shape) {
                float *y = crop_pad(v.img, C, dims, a->shape);
                float *ys = v.seg ? crop_pad(v.seg, cfg->label_nc, dims, a->shape) : NULL;
                free(v.img);
                free(v.seg);
                v.img = y, v.seg = ys;
                if (!y || (segsrc && !ys)) {
                    free(y), free(ys);
                    rc = -1;
                    break;
                }
                v.D = a->shape[0], v.H = a->shape[1], v.W = a->shape[2];
            }
            if (v.D < a->block[0] || v.H < a->block[1] || v.W < a->block[2]) {
                free(v.img), free(v.seg);
                rc = lsdm_err("'%s' (%dx%dx%d) is smaller than the block %dx%dx%d: use --shape or "
                              "a smaller --block", name, v.D, v.H, v.W, a->block[0], a->block[1],
                              a->block[2]);
                break;
            }
            volume *nv = realloc(s->v, (size_t)(s->n + 1) * sizeof *nv);
            if (!nv) {
                free(v.img), free(v.seg);
                rc = lsdm_err("out of memory");
                break;
            }
            s->v = nv;
            s->v[s->n++] = v;
        }
        lsdm_volsrc_close(src);
    }
    if (segsrc) lsdm_volsrc_close(segsrc);
    lsdm_record_free(&r);
    if (rc == 0 && s->n == 0) rc = lsdm_err("no volumes in the inputs");
    if (rc < 0) set_free(s);
    return rc < 0 ? -1 : 0;
}

/* Copy block (off) of v into dst (C,bd,bh,bw), flipped along the axes flip[]. */
static void take_block(float *dst, const float *src, int C, const volume *v, const int off[3],
                       const int b[3], const int flip[3]) {
    for (int c = 0; c < C; c++)
        for (int d = 0; d < b[0]; d++)
            for (int h = 0; h < b[1]; h++) {
                int sd = off[0] + (flip[0] ? b[0] - 1 - d : d);
                int sh = off[1] + (flip[1] ? b[1] - 1 - h : h);
                const float *row = src + (((size_t)c * v->D + sd) * v->H + sh) * v->W + off[2];
                float *out = dst + (((size_t)c * b[0] + d) * b[1] + h) * b[2];
                if (flip[2])
                    for (int w = 0; w < b[2]; w++) out[w] = row[b[2] - 1 - w];
                else
                    memcpy(out, row, (size_t)b[2] * sizeof(float));
            }
}

/* Most of a volume is background that a model learns in a few steps; the
 * edges of small structures are what it must see often (nnU-Net's
 * foreground oversampling). Centre the block on a random voxel above 10% of
 * the volume's range (first channel, rescaled to [-1,1]); keep off when 64
 * draws find none. */
static void centre_on_foreground(int off[3], const volume *v, const int b[3], lsdm_rng *r) {
    size_t n = (size_t)v->D * v->H * v->W;
    for (int tries = 0; tries < 64; tries++) {
        size_t i = ((size_t)lsdm_rng_u32(r) << 32 | lsdm_rng_u32(r)) % n;
        if (v->img[i] <= -0.8f) continue;
        int p[3] = {(int)(i / ((size_t)v->H * v->W)), (int)(i / v->W % v->H), (int)(i % v->W)};
        int dims[3] = {v->D, v->H, v->W};
        for (int k = 0; k < 3; k++) {
            int o = p[k] - b[k] / 2;
            off[k] = o < 0 ? 0 : o > dims[k] - b[k] ? dims[k] - b[k] : o;
        }
        return;
    }
}

/* The batch of step `step`: volumes, offsets and flips from Philox(seed, step). */
static void make_batch(float *x, float *seg, const volume_set *s, const vqgan_config *cfg,
                       const train_args *a, uint64_t seed, long step) {
    lsdm_rng r;
    lsdm_rng_init(&r, lsdm_rng_derive(seed, (uint64_t)step, 0x4254), 0);
    size_t bx = (size_t)cfg->image_channels * a->block[0] * a->block[1] * a->block[2];
    size_t bs = (size_t)cfg->label_nc * a->block[0] * a->block[1] * a->block[2];
    for (long b = 0; b < a->batch; b++) {
        const volume *v = &s->v[lsdm_rng_u32(&r) % (uint32_t)s->n];
        int dims[3] = {v->D, v->H, v->W}, off[3], flip[3];
        for (int k = 0; k < 3; k++) off[k] = (int)(lsdm_rng_u32(&r) % (uint32_t)(dims[k] - a->block[k] + 1));
        if (lsdm_rng_u32(&r) < a->foreground * 4294967296.0) centre_on_foreground(off, v, a->block, &r);
        for (int k = 0; k < 3; k++) flip[k] = a->flip[k] && (lsdm_rng_u32(&r) & 1);
        take_block(x + b * bx, v->img, cfg->image_channels, v, off, a->block, flip);
        if (seg) take_block(seg + b * bs, v->seg, cfg->label_nc, v, off, a->block, flip);
    }
}

/* Mean PSNR (peak-to-peak 2, the [-1,1] range) over the validation
 * volumes, each whole (its centred part that is a multiple of the
 * downsampling); writes the preview of the first one's middle slice. */
static int validate(const vqgan *m, const volume_set *val, const train_args *a, double *psnr) {
    nn_ctx c;
    nn_ctx_init(&c, 0);
    double sum = 0;
    int C = m->cfg.image_channels, L = m->cfg.label_nc, ok = 1;
    const int *f = m->cfg.downsample;
    for (int i = 0; ok && i < val->n; i++) {
        const volume *v = &val->v[i];
        int b[3] = {v->D / f[0] * f[0], v->H / f[1] * f[1], v->W / f[2] * f[2]}, zero[3] = {0, 0, 0};
        int off[3] = {(v->D - b[0]) / 2, (v->H - b[1]) / 2, (v->W - b[2]) / 2};
        size_t nb = (size_t)b[0] * b[1] * b[2];
        float *x = malloc(nb * C * sizeof(float)), *seg = v->seg ? malloc(nb * L * sizeof(float)) : NULL;
        nn_tensor *y = NULL;
        if (x && (!v->seg || seg)) {
            take_block(x, v->img, C, v, off, b, zero);
            if (seg) take_block(seg, v->seg, L, v, off, b, zero);
            nn_tensor *xt = nn_tensor_wrap(&c, x, 1, C, b[0], b[1], b[2]);
            nn_tensor *st = seg ? nn_tensor_wrap(&c, seg, 1, L, b[0], b[1], b[2]) : NULL;
            nn_tensor *z = vqgan_encode(&c, m, xt);
            int32_t *idx = z ? malloc((size_t)z->D * z->H * z->W * sizeof *idx) : NULL;
            if (idx && vqgan_quantize(&c, m, z, idx) >= 0)
                y = vqgan_decode(&c, m, vqgan_lookup(&c, m, idx, 1, z->D, z->H, z->W), st);
            free(idx);
        }
        if (y) {
            double se = 0;
            for (size_t k = 0; k < y->n; k++)
                se += ((double)y->data[k] - x[k]) * ((double)y->data[k] - x[k]);
            sum += 10 * log10(4.0 / fmax(se / y->n, 1e-20));
        }
        if (y && i == 0 && a->preview) {
            int H = b[1], W = b[2], d = b[0] / 2;
            uint8_t *pix = malloc((size_t)H * 2 * W);
            for (int h = 0; pix && h < H; h++)
                for (int w = 0; w < W; w++) {
                    size_t k = ((size_t)d * H + h) * W + w;
                    float u = (x[k] + 1) * 127.5f, r = (y->data[k] + 1) * 127.5f;
                    pix[(size_t)h * 2 * W + w] = (uint8_t)fminf(fmaxf(u, 0), 255);
                    pix[(size_t)h * 2 * W + W + w] = (uint8_t)fminf(fmaxf(r, 0), 255);
                }
            if (!pix || lsdm_png_write(a->preview, 2 * W, H, 1, pix, "vq-train: input | reconstruction", 1) < 0)
                ok = 0;
            free(pix);
        }
        if (!y) ok = 0;
        free(x);
        free(seg);
        nn_ctx_reset(&c);
    }
    nn_ctx_free(&c);
    *psnr = val->n ? sum / val->n : NAN;
    return ok ? 0 : -1;
}

static int log_line(FILE *f, long step, double t, const vq_step_stats *s, double psnr) {
    fprintf(f, "%ld,%.3f,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%d,%d,%.6g,%.4g,%.6g,%.6g\n", step,
            t, s->loss, s->recon, s->commit, s->g_image, s->g_video, s->g_feat, s->d_image,
            s->d_video, s->perplexity, s->codes_used, s->restarted, s->grad_norm, psnr,
            s->perceptual, s->lr);
    return fflush(f) == 0 && !ferror(f) ? 0 : lsdm_err("cannot write the log: %m");
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        LSDM_COMMON_LONGOPTS, LSDM_ENGINE_LONGOPTS,
        {"output", required_argument, 0, 'o'}, {"config", required_argument, 0, 'c'},
        {"init", required_argument, 0, OPT_INIT}, {"resume", required_argument, 0, OPT_RESUME},
        {"seg", required_argument, 0, OPT_SEG}, {"steps", required_argument, 0, OPT_STEPS},
        {"minutes", required_argument, 0, OPT_MINUTES}, {"batch", required_argument, 0, OPT_BATCH},
        {"block", required_argument, 0, OPT_BLOCK}, {"shape", required_argument, 0, OPT_SHAPE},
        {"flip", required_argument, 0, OPT_FLIP}, {"lr", required_argument, 0, OPT_LR},
        {"disc-start", required_argument, 0, OPT_DISC_START},
        {"l1-weight", required_argument, 0, OPT_L1},
        {"gan-feat-weight", required_argument, 0, OPT_FEAT},
        {"image-gan-weight", required_argument, 0, OPT_IMG_GAN},
        {"video-gan-weight", required_argument, 0, OPT_VID_GAN},
        {"grad-clip", required_argument, 0, OPT_CLIP}, {"no-restart", no_argument, 0, OPT_NO_RESTART},
        {"seed", required_argument, 0, OPT_SEED}, {"save-every", required_argument, 0, OPT_SAVE_EVERY},
        {"export", required_argument, 0, OPT_EXPORT},
        {"log", required_argument, 0, OPT_LOG}, {"log-every", required_argument, 0, OPT_LOG_EVERY},
        {"val", required_argument, 0, OPT_VAL}, {"preview", required_argument, 0, OPT_PREVIEW},
        {"lpips", required_argument, 0, OPT_LPIPS}, {"cosine", no_argument, 0, OPT_COSINE},
        {"perceptual-weight", required_argument, 0, OPT_PERCEPTUAL},
        {"foreground", required_argument, 0, OPT_FOREGROUND},
        {"lr-schedule", required_argument, 0, OPT_SCHEDULE},
        {"restart-threshold", required_argument, 0, OPT_RESTART_THRES},
        {0, 0, 0, 0},
    };
    lsdm_cli_init("vq-train", argv);
    train_args a = {.config = NULL, .steps = 2000, .batch = 0, .save_every = 500, .log_every = 10,
                    .flip = {0, 0, 1}, .foreground = 0.67, .schedule = -1};
    vq_train_opts o = vq_train_opts_default();
    int c, has_lr = 0;
    while ((c = getopt_long(argc, argv, LSDM_COMMON_SHORTOPTS "o:c:j:", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': a.out = optarg; break;
        case 'c': a.config = optarg; break;
        case 'j': LSDM_OPT_LONG(lsdm_opt.threads, 1, 1024); break;
        case LSDM_OPT_DEVICE: lsdm_opt.device = optarg; break;
        case OPT_INIT: a.init = optarg; break;
        case OPT_RESUME: a.resume = optarg; break;
        case OPT_SEG: a.seg = optarg; break;
        case OPT_STEPS: LSDM_OPT_LONG(a.steps, 0, 1L << 40); break;
        case OPT_MINUTES: LSDM_OPT_REAL(a.minutes, INFINITY); break;
        case OPT_BATCH: LSDM_OPT_LONG(a.batch, 1, 64); break;
        case OPT_BLOCK:
            if (lsdm_parse_dims(optarg, a.block) < 0) return lsdm_usage_error("--block: %s", lsdm_err_msg());
            a.has_block = 1;
            break;
        case OPT_SHAPE:
            if (lsdm_parse_dims(optarg, a.shape) < 0) return lsdm_usage_error("--shape: %s", lsdm_err_msg());
            a.has_shape = 1;
            break;
        case OPT_FLIP:
            if (lsdm_parse_axes(optarg, a.flip) < 0) return lsdm_usage_error("--flip: %s", lsdm_err_msg());
            break;
        case OPT_LR: LSDM_OPT_REAL(o.lr, INFINITY); has_lr = 1; break;
        case OPT_DISC_START: LSDM_OPT_LONG(o.disc_start, 0, 1L << 40); break;
        case OPT_L1: LSDM_OPT_REAL(o.l1_weight, INFINITY); break;
        case OPT_FEAT: LSDM_OPT_REAL(o.gan_feat_weight, INFINITY); break;
        case OPT_IMG_GAN: LSDM_OPT_REAL(o.image_gan_weight, INFINITY); break;
        case OPT_VID_GAN: LSDM_OPT_REAL(o.video_gan_weight, INFINITY); break;
        case OPT_CLIP: LSDM_OPT_REAL(o.grad_clip, INFINITY); break;
        case OPT_NO_RESTART: o.ema.restart = 0; break;
        case OPT_RESTART_THRES: LSDM_OPT_REAL(o.ema.restart_thres, INFINITY); break;
        case OPT_SEED: LSDM_OPT_LONG(o.seed, 0, 1L << 62); break;
        case OPT_SAVE_EVERY: LSDM_OPT_LONG(a.save_every, 1, 1L << 40); break;
        case OPT_EXPORT: a.export = optarg; break;
        case OPT_LOG: a.log = optarg; break;
        case OPT_LOG_EVERY: LSDM_OPT_LONG(a.log_every, 1, 1L << 40); break;
        case OPT_VAL: a.val = optarg; break;
        case OPT_PREVIEW: a.preview = optarg; break;
        case OPT_LPIPS: a.lpips = optarg; break;
        case OPT_COSINE: a.schedule = 1; break;
        case OPT_SCHEDULE:
            if (strcmp(optarg, "constant") && strcmp(optarg, "cosine"))
                return lsdm_usage_error("--lr-schedule: constant or cosine, got '%s'", optarg);
            a.schedule = !strcmp(optarg, "cosine");
            break;
        case OPT_FOREGROUND:
            LSDM_OPT_REAL(a.foreground, INFINITY);
            if (!(a.foreground >= 0 && a.foreground <= 1))
                return lsdm_usage_error("--foreground: a probability in [0,1], got '%s'", optarg);
            break;
        case OPT_PERCEPTUAL: LSDM_OPT_REAL(o.perceptual_weight, INFINITY); break;
        LSDM_CLI_DEFAULT(c, HELP);
        }
    }
    if (!a.out) return lsdm_usage_error("no checkpoint to write: give -o CKPT");
    if (optind == argc) return lsdm_usage_error("no INPUT given (use '-' for standard input)");
    if (a.init && a.resume) return lsdm_usage_error("--init and --resume exclude each other");
    if (lsdm_cli_training_setup() < 0) return lsdm_fail();

    /* everything main owns, so that every exit frees it (done:) */
    vqgan m = {0};
    lpips lp = {0};
    vq_trainer t = {0};
    volume_set train = {0}, val = {0};
    FILE *log = NULL;
    float *x = NULL, *seg = NULL;
    int code = 0, rc = 0;
    vq_step_stats st = {0};
    double psnr = NAN;

    /* the model: fresh, from --init weights, or resumed */
    const char *from = a.resume ? a.resume : a.init;
    if (from) {
        if (vqgan_load(&m, from, a.config, NULL) < 0) goto fail;
    } else {
        vqgan_config cfg;
        if (vqgan_config_load(&cfg, a.config ? a.config : "tiny") < 0 || vqgan_init(&m, &cfg, o.seed) < 0)
            goto fail;
    }
    const vqgan_config *cfg = &m.cfg;
    /* The reference trains on 32x256x256 volumes, two at a time, at 3e-4. A
     * small model learns faster from many small blocks at a higher rate:
     * the tiny configs default to 4 blocks of 16x32x32 at 1e-3, decayed
     * along a cosine (short runs gain most from the decay: 27.0 against
     * 24.9 dB after 2000 steps on phantoms). */
    int tiny = cfg->n_hiddens <= 8;
    if (!a.has_block) {
        a.block[0] = tiny ? 16 : 32;
        a.block[1] = a.block[2] = tiny ? 32 : 256;
    }
    if (!a.batch) a.batch = tiny ? 4 : 2;
    if (!has_lr && tiny) o.lr = 1e-3;
    if (a.schedule < 0) a.schedule = tiny;
    if (a.schedule) o.lr_cosine_steps = a.steps;
    for (int k = 0; k < 3; k++)
        if (a.block[k] % cfg->downsample[k]) {
            code = lsdm_usage_error("--block: %d is not a multiple of the downsampling %s", a.block[k],
                                    vqgan_factor_text(cfg));
            goto done;
        }
    if (cfg->spade != (a.seg != NULL)) {
        code = lsdm_usage_error(cfg->spade ? "the SPADE decoder trains on masks: give --seg"
                                           : "--seg is for a SPADE decoder (config decoder = spade)");
        goto done;
    }
    if (a.val && cfg->spade) {
        code = lsdm_usage_error("--val with a SPADE decoder is not supported yet");
        goto done;
    }
    lsdm_verbose("model: %s", vqgan_config_text(cfg));

    if (a.lpips) {
        if (lpips_load(&lp, a.lpips) < 0) goto fail;
        o.lpips = &lp;
    }
    if (vq_trainer_init(&t, &m, &o) < 0) goto fail;
    if (a.resume && vq_trainer_resume(&t, a.resume) < 0) goto fail;
    if (a.init) t.codebook_ready = 1; /* a trained codebook: keep it */

    if (load_set(&train, argv + optind, argc - optind, a.seg, cfg, &a) < 0) goto fail;
    if (a.val && load_set(&val, (char **)&a.val, 1, NULL, cfg, &a) < 0) goto fail;
    lsdm_verbose("%d training volumes, %d validation volumes, block %dx%dx%d, batch %ld", train.n,
                 val.n, a.block[0], a.block[1], a.block[2], a.batch);

    if (a.log) {
        int fresh = t.step == 0;
        log = fopen(a.log, fresh ? "w" : "a");
        if (!log) {
            lsdm_err("cannot open %s: %m", a.log);
            goto fail;
        }
        if (fresh)
            fprintf(log, "step,seconds,loss,recon,commit,g_image,g_video,g_feat,d_image,d_video,"
                         "perplexity,codes_used,restarted,grad_norm,val_psnr,perceptual,lr\n");
    }
    size_t bx = (size_t)a.batch * cfg->image_channels * a.block[0] * a.block[1] * a.block[2];
    size_t bs = (size_t)a.batch * cfg->label_nc * a.block[0] * a.block[1] * a.block[2];
    x = malloc(bx * sizeof(float));
    seg = cfg->spade ? malloc(bs * sizeof(float)) : NULL;
    if (!x || (cfg->spade && !seg)) {
        lsdm_err("out of memory");
        goto fail;
    }

    double t0 = lsdm_now_s();
    long start = t.step;
    char what[256];
    while (t.step < a.steps) {
        make_batch(x, seg, &train, cfg, &a, t.o.seed, t.step);
        if (vq_trainer_step(&t, x, seg, (int)a.batch, a.block[0], a.block[1], a.block[2], &st) < 0) {
            rc = -1;
            break;
        }
        double el = lsdm_now_s() - t0;
        int last = t.step == a.steps || (a.minutes > 0 && el >= a.minutes * 60);
        int save = last || t.step % a.save_every == 0;
        if (save && (val.n || a.preview)) {
            if (validate(&m, val.n ? &val : &train, &a, &psnr) < 0) {
                rc = -1;
                break;
            }
            if (!val.n) psnr = NAN;
        }
        if (log && (t.step % a.log_every == 0 || save) && log_line(log, t.step, el, &st, save ? psnr : NAN) < 0) {
            rc = -1;
            break;
        }
        snprintf(what, sizeof what, "loss %.4f l1 %.4f commit %.4f%s codes %d/%d, %.2f s/step, step",
                 st.loss, st.recon / o.l1_weight, st.commit, st.gan_on ? " gan" : "", st.codes_used,
                 cfg->n_codes, el / (double)(t.step - start));
        lsdm_progress(t.step, a.steps, what);
        if (save) {
            if (vq_trainer_save(&t, a.out, NULL) < 0) {
                rc = -1;
                break;
            }
            if (!isnan(psnr)) lsdm_verbose("step %ld: validation PSNR %.2f dB", t.step, psnr);
        }
        if (last) break;
    }
    lsdm_progress_end();
    if (rc == 0 && t.step == 0 && vq_trainer_save(&t, a.out, NULL) < 0) rc = -1;
    if (rc == 0)
        lsdm_note("%ld steps, loss %.4f, L1 %.4f, codes used %d/%d", t.step, st.loss,
                  st.recon / o.l1_weight, st.codes_used, cfg->n_codes);
    if (rc == 0 && !isnan(psnr)) lsdm_note("validation PSNR %.2f dB", psnr);
    if (rc == 0 && a.export &&
        checkpoint_export(a.out, a.export, EXPORT_DROP, sizeof EXPORT_DROP / sizeof *EXPORT_DROP) < 0)
        rc = -1;
    if (rc < 0) goto fail;
    goto done;
fail:
    code = lsdm_fail();
done:
    if (log) fclose(log);
    free(x);
    free(seg);
    set_free(&train);
    set_free(&val);
    vq_trainer_free(&t);
    vqgan_free(&m);
    lpips_free(&lp);
    return code;
}
