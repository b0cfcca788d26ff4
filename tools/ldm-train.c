/* ldm-train: train the semantic diffusion UNet (Med-LSDM's Unet3D_SPADE) on
 * VQ-GAN latents and their masks: latents normalised by the codebook's
 * range, random blocks with flips, the diffusion loss with condition
 * dropout (ldm_train.h), Adam, EMA, atomic checkpoints, bit-identical
 * --resume, a progress line, a CSV log and sample previews through
 * ldm-denoise | vq-decode. */
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "cli.h"
#include "err.h"
#include "ldm_train.h"
#include "pngfile.h"
#include "rng.h"
#include "semantic.h"
#include "stream.h"
#include "volsrc.h"
#include "vqgan.h"
#include "vqtile.h"

static const char HELP[] =
    "Usage: ldm-train [OPTION]... --vq VQ --seg SEM -o CKPT INPUT...\n"
    "Train the semantic diffusion UNet (Med-LSDM's) on VQ-GAN latents paired with\n"
    "their semantic masks, and write it to CKPT (safetensors, replaced atomically\n"
    "at every save). INPUT: latent streams (vq-encode --output prequant, made with\n"
    "VQ) or image volumes (stream, NIfTI file, directory or archive; encoded once\n"
    "with VQ at load); '-' is standard input.\n"
    "\n"
    "  -o, --output CKPT     checkpoint to write (required)\n"
    "      --vq VQ           the VQ-GAN of the latents (required): latents are\n"
    "                        scaled to [-1,1] by its codebook's min and max\n"
    "      --seg SEM         semantic masks (mask2sem: class indices or one-hot) on\n"
    "                        the image grid, paired record by record with the\n"
    "                        inputs (required; repeat for several streams)\n"
    "  -c, --config C        UNet: med-lsdm, tiny (default) or a config file\n"
    "      --init CKPT       start from these UNet weights\n"
    "      --resume CKPT     continue an ldm-train run bit-identically (model, EMA,\n"
    "                        optimiser, step, seed and options; --steps is the total)\n"
    "      --steps N         total optimiser steps (default 2000)\n"
    "      --minutes M       stop (and save) after M minutes of training\n"
    "      --batch N         blocks per micro-batch (default 2; tiny configs 4)\n"
    "      --accum N         micro-batches per optimiser step (default 2; tiny 1)\n"
    "      --block DxHxW     block in latent voxels (default: the whole latent;\n"
    "                        tiny configs 8x16x16); masks: f times larger\n"
    "      --flip AXES       axes to flip at random, from 'dhw' (default w; '' none)\n"
    "      --lr X            Adam learning rate (default 1e-5; tiny configs 1e-3)\n"
    "      --loss l1|l2      noise prediction loss (default l1)\n"
    "      --cond-drop P     probability of training a sample with the null (all-zero)\n"
    "                        mask, for classifier-free guidance (default 0.1)\n"
    "      --timesteps T     diffusion steps of the cosine schedule (default 500)\n"
    "      --grad-clip X     gradient norm clipping (default 1; 0 off)\n"
    "      --ema X           EMA decay of the saved weights (default 0.995)\n"
    "      --ema-start N     the EMA copies the weights for the first N steps\n"
    "                        (default 2000, the reference's; tiny configs 100)\n"
    "      --seed N          seed of every random choice (default 0)\n"
    "      --save-every N    checkpoint every N steps (default 500)\n"
    "      --export FILE     at the end also write FILE: what inference needs,\n"
    "                        the EMA UNet and the diffusion metadata,\n"
    "                        no raw weights or optimiser state (the file to ship)\n"
    "      --log CSV         append one line per --log-every steps (default 10)\n"
    "      --preview PNG     at each save, mask | sample of a training mask, through\n"
    "                        ldm-denoise and vq-decode (next to this program)\n"
    LSDM_ENGINE_HELP
    LSDM_COMMON_HELP
    "\n"
    "The progress line (a terminal, not -q) shows the loss and speed. Exit status:\n"
    "0 ok, 1 error (bad data, divergence: the last checkpoint stays), 2 usage error.\n";

/* What --export leaves out of the shipped file. */
static const char *const EXPORT_DROP[] = {CKPT_TRAIN_PREFIX};

enum {
    OPT_VQ = LSDM_OPT_FIRST_TOOL, OPT_SEG, OPT_INIT, OPT_RESUME, OPT_STEPS, OPT_MINUTES, OPT_BATCH,
    OPT_ACCUM, OPT_BLOCK, OPT_FLIP, OPT_LR, OPT_LOSS, OPT_COND_DROP, OPT_TIMESTEPS, OPT_CLIP,
    OPT_EMA, OPT_EMA_START, OPT_SEED, OPT_SAVE_EVERY, OPT_EXPORT, OPT_LOG, OPT_LOG_EVERY, OPT_PREVIEW,
};

/* The options that shape the run; "has" marks the ones given, so that a
 * resumed run takes the others from its checkpoint. */
enum { H_BATCH, H_ACCUM, H_BLOCK, H_FLIP, H_LR, H_CLIP, H_EMA, H_EMA_START, H_LOSS, H_DROP, H_T, H_N };

typedef struct {
    const char *out, *export, *vq, *config, *init, *resume, *log, *preview;
    const char **seg;
    int nseg;
    long steps, batch, accum, save_every, log_every, ema_start;
    double minutes, lr, grad_clip, ema, cond_drop;
    int block[3], flip[3], loss_l2, timesteps;
    uint64_t seed;
    int has[H_N];
} train_args;

/* ------------------------------------------------------------ the data */

typedef struct {
    float *z;      /* (C, D,H,W) normalised latent */
    uint8_t *lab;  /* (fD, fH, fW) class indices */
    int dim[3];    /* latent grid */
} sample;

typedef struct {
    sample *s;
    int n, C, L, f[3]; /* f: the VQ-GAN's downsampling (d,h,w) */
    char *labels;  /* the first mask's "labels" key (previews), or NULL */
} sample_set;

static void set_free(sample_set *s) {
    for (int i = 0; i < s->n; i++) free(s->s[i].z), free(s->s[i].lab);
    free(s->s);
    free(s->labels);
    memset(s, 0, sizeof *s);
}

/* The prequant latent of an image record, as vq-encode makes it: min-max
 * rescale to [-1,1], then the encoder over 32x256x256 tiles blended over 2
 * overlapping latent voxels (vq-encode's defaults), so that the result is
 * what `vq-encode` would have written. */
static float *encode_image(const vqgan *m, const lsdm_record *r, int dim[3]) {
    const int *f = m->cfg.downsample, one[3] = {1, 1, 1};
    int Ci = m->cfg.image_channels, E = m->cfg.embedding_dim;
    int64_t C = r->ndim == 4 ? r->shape[0] : 1;
    if ((r->ndim != 3 && r->ndim != 4) || C != Ci)
        return lsdm_err("an image of %d dims and %lld channel(s); the VQ-GAN takes C,D,H,W with %d",
                        r->ndim, (long long)C, Ci), NULL;
    int64_t idim[3], ld[3], lt[3], tile[3] = {32, 256, 256};
    for (int a = 0; a < 3; a++) {
        idim[a] = r->shape[r->ndim - 3 + a];
        if (idim[a] % f[a])
            return lsdm_err("image shape %lldx%lldx%lld is not a multiple of the VQ-GAN's "
                            "downsampling %s", (long long)idim[0], (long long)idim[1],
                            (long long)idim[2], vqgan_factor_text(&m->cfg)), NULL;
        ld[a] = idim[a] / f[a], lt[a] = tile[a] / f[a], dim[a] = (int)ld[a];
    }
    size_t n = lsdm_record_numel(r);
    float *x = malloc(n * sizeof(float));
    if (!x) return lsdm_err("out of memory"), NULL;
    lsdm_convert_to_f32(x, r->data, r->dtype, n);
    float lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) {
            free(x);
            return lsdm_err("NaN or Inf in the image"), NULL;
        }
        lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
    }
    double s = hi > lo ? 2.0 / ((double)hi - lo) : 0;
    for (size_t i = 0; i < n; i++) x[i] = (float)(((double)x[i] - lo) * s - 1.0);
    vq_tiling t;
    vq_blend b;
    if (vq_tiling_init(&t, ld, lt, 2) < 0 || vq_blend_init(&b, E, ld, one) < 0) {
        free(x);
        return NULL;
    }
    nn_ctx c;
    nn_ctx_init(&c, 0);
    int nt = vq_tiling_count(&t), rc = 0;
    for (int i = 0; i < nt && !rc; i++) {
        int64_t off[3], size[3], io[3], is[3];
        vq_tiling_get(&t, i, off, size);
        for (int a = 0; a < 3; a++) io[a] = off[a] * f[a], is[a] = size[a] * f[a];
        nn_tensor *xt = nn_tensor_new(&c, 1, Ci, (int)is[0], (int)is[1], (int)is[2]);
        if (xt) vq_window_copy(xt->data, x, Ci, idim, io, is);
        nn_tensor *z = vqgan_encode(&c, m, xt);
        rc = nn_ctx_status(&c) < 0 || !z ? -1 : vq_blend_add(&b, &t, i, z->data);
        nn_ctx_reset(&c);
    }
    nn_ctx_free(&c);
    free(x);
    return vq_blend_take(&b, rc);
}

/* The latent of record r: a latent of this VQ-GAN, or an image encoded. */
static float *record_latent(const vqgan *vq, const char *digest, const lsdm_record *r, int dim[3]) {
    const char *role = lsdm_record_get(r, "role");
    if (!role || strcmp(role, "latent")) return encode_image(vq, r, dim);
    const char *kind = lsdm_record_get(r, "latent"), *model = lsdm_record_get(r, "vq-model");
    int E = vq->cfg.embedding_dim;
    if (kind && !strcmp(kind, "codes"))
        return lsdm_err("a latent of codes: train on vq-encode --output prequant"), NULL;
    if (!model || strcmp(model, digest))
        return lsdm_err("latents of VQ-GAN %s, not of --vq (%s)", model ? model : "(no vq-model key)",
                        digest), NULL;
    if (r->ndim != 4 || r->shape[0] != E || !lsdm_dtype_is_float(r->dtype))
        return lsdm_err("a latent is float %d,D,H,W for this VQ-GAN", E), NULL;
    size_t n = lsdm_record_numel(r);
    float *z = malloc(n * sizeof(float));
    if (!z) return lsdm_err("out of memory"), NULL;
    lsdm_convert_to_f32(z, r->data, r->dtype, n);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(z[i])) {
            free(z);
            return lsdm_err("NaN or Inf in the latent"), NULL;
        }
    for (int a = 0; a < 3; a++) dim[a] = (int)r->shape[1 + a];
    return z;
}

/* The mask of record r on grid dim (image voxels) as class indices. */
static uint8_t *record_mask(const lsdm_record *r, int L, const int dim[3]) {
    int64_t want[3] = {dim[0], dim[1], dim[2]};
    if (L > 256) return lsdm_err("%d classes: ldm-train keeps masks as bytes (256 classes at most)", L), NULL;
    float *oh = semantic_onehot(r, L, want, NULL);
    if (!oh) return NULL;
    size_t S = (size_t)dim[0] * dim[1] * dim[2];
    uint8_t *lab = malloc(S);
    int bad = !lab;
    for (size_t i = 0; lab && !bad && i < S; i++) {
        int k = -1, ones = 0;
        for (int c = 0; c < L; c++) {
            float v = oh[(size_t)c * S + i];
            if (v == 1) k = c, ones++;
            else if (v != 0) ones = 2;
        }
        if (ones != 1) bad = 2;
        else lab[i] = (uint8_t)k;
    }
    free(oh);
    if (bad) {
        free(lab);
        if (bad == 2) return lsdm_err("the mask is not one-hot (each voxel one of %d classes)", L), NULL;
        return lsdm_err("out of memory"), NULL;
    }
    return lab;
}

/* Every record of the inputs with its mask: the next record of the --seg
 * streams, in order. */
static int load_set(sample_set *s, char **paths, int npaths, const train_args *a, const vqgan *vq,
                    const char *digest, const unet_config *cfg, const ldm_diffusion_config *d) {
    memset(s, 0, sizeof *s);
    s->C = cfg->channels, s->L = cfg->label_nc;
    memcpy(s->f, vq->cfg.downsample, sizeof s->f);
    lsdm_record r, mr;
    lsdm_record_init(&r);
    lsdm_record_init(&mr);
    lsdm_volsrc *seg = NULL;
    int iseg = 0, rc = 0;
    for (int p = 0; rc == 0 && p < npaths; p++) {
        lsdm_volsrc *src = lsdm_volsrc_open(paths[p], NULL);
        if (!src) {
            rc = -1;
            break;
        }
        while (rc == 0 && (rc = lsdm_volsrc_next(src, &r)) == 1) {
            const char *name = lsdm_record_get(&r, "name");
            sample x = {0};
            x.z = record_latent(vq, digest, &r, x.dim);
            if (!x.z) {
                rc = lsdm_err_ctx("'%s'", name ? name : paths[p]);
                break;
            }
            /* the paired mask: the next record of the --seg streams */
            while ((rc = seg ? lsdm_volsrc_next(seg, &mr) : 0) == 0 && iseg < a->nseg) {
                if (seg) lsdm_volsrc_close(seg);
                if (!(seg = lsdm_volsrc_open(a->seg[iseg++], NULL))) {
                    rc = -1;
                    break;
                }
            }
            if (rc != 1) {
                free(x.z);
                if (rc == 0)
                    rc = lsdm_err("--seg has fewer records than the inputs ('%s' has no mask)",
                                  name ? name : paths[p]);
                else
                    rc = lsdm_err_ctx("--seg");
                break;
            }
            rc = 0;
            int md[3] = {x.dim[0] * s->f[0], x.dim[1] * s->f[1], x.dim[2] * s->f[2]};
            x.lab = record_mask(&mr, s->L, md);
            if (!x.lab) {
                free(x.z);
                rc = lsdm_err_ctx("mask '%s' for '%s'", lsdm_record_get(&mr, "name"), name);
                break;
            }
            const char *labels = lsdm_record_get(&mr, "labels");
            if (s->n == 0 && labels && !(s->labels = strdup(labels))) rc = lsdm_err("out of memory");
            ldm_normalize(x.z, (size_t)s->C * x.dim[0] * x.dim[1] * x.dim[2], d);
            sample *ns = rc ? NULL : realloc(s->s, (size_t)(s->n + 1) * sizeof *ns);
            if (!ns) {
                free(x.z), free(x.lab);
                rc = lsdm_err("out of memory");
                break;
            }
            s->s = ns;
            s->s[s->n++] = x;
            lsdm_verbose("%s: latent %dx%dx%dx%d", name ? name : paths[p], s->C, x.dim[0], x.dim[1], x.dim[2]);
        }
        lsdm_volsrc_close(src);
    }
    if (rc == 0 && ((seg && lsdm_volsrc_next(seg, &mr) == 1) || iseg < a->nseg))
        rc = lsdm_err("--seg has more records than the inputs");
    if (seg) lsdm_volsrc_close(seg);
    lsdm_record_free(&r);
    lsdm_record_free(&mr);
    if (rc == 0 && s->n == 0) rc = lsdm_err("no volumes in the inputs");
    if (rc < 0) set_free(s);
    return rc < 0 ? -1 : 0;
}

/* Copy block (off, size b) of src (C, dim) into dst (C, b), flipped along flip[]. */
static void take_block(float *dst, const float *src, int C, const int dim[3], const int off[3],
                       const int b[3], const int flip[3]) {
    for (int c = 0; c < C; c++)
        for (int d = 0; d < b[0]; d++)
            for (int h = 0; h < b[1]; h++) {
                int sd = off[0] + (flip[0] ? b[0] - 1 - d : d);
                int sh = off[1] + (flip[1] ? b[1] - 1 - h : h);
                const float *row = src + (((size_t)c * dim[0] + sd) * dim[1] + sh) * dim[2] + off[2];
                float *o = dst + (((size_t)c * b[0] + d) * b[1] + h) * b[2];
                for (int w = 0; w < b[2]; w++) o[w] = row[flip[2] ? b[2] - 1 - w : w];
            }
}

/* The one-hot (L, b) of the class indices (dim) at off, flipped. */
static void take_mask(float *dst, const uint8_t *lab, int L, const int dim[3], const int off[3],
                      const int b[3], const int flip[3]) {
    size_t S = (size_t)b[0] * b[1] * b[2];
    memset(dst, 0, (size_t)L * S * sizeof(float));
    for (int d = 0; d < b[0]; d++)
        for (int h = 0; h < b[1]; h++) {
            int sd = off[0] + (flip[0] ? b[0] - 1 - d : d);
            int sh = off[1] + (flip[1] ? b[1] - 1 - h : h);
            const uint8_t *row = lab + ((size_t)sd * dim[1] + sh) * dim[2] + off[2];
            size_t o = ((size_t)d * b[1] + h) * b[2];
            for (int w = 0; w < b[2]; w++) dst[(size_t)row[flip[2] ? b[2] - 1 - w : w] * S + o + w] = 1;
        }
}

/* Micro-batch k of step `step`: sample g = k N + n takes its volume,
 * offset and flips from Philox(seed, step) stream g, so the blocks do not
 * depend on how samples are split into micro-batches. */
static void make_micro(float *x0, float *mask, const sample_set *s, const train_args *a, uint64_t seed,
                       long step, int k) {
    const int *f = s->f;
    int mb[3] = {a->block[0] * f[0], a->block[1] * f[1], a->block[2] * f[2]};
    size_t px = (size_t)s->C * a->block[0] * a->block[1] * a->block[2];
    size_t pm = (size_t)s->L * mb[0] * mb[1] * mb[2];
    uint64_t bs = lsdm_rng_derive(seed, (uint64_t)step, 0x4254);
    for (long n = 0; n < a->batch; n++) {
        lsdm_rng r;
        lsdm_rng_init(&r, bs, (uint64_t)(k * a->batch + n));
        const sample *v = &s->s[lsdm_rng_u32(&r) % (uint32_t)s->n];
        int off[3], moff[3], flip[3], mdim[3];
        for (int i = 0; i < 3; i++) {
            off[i] = (int)(lsdm_rng_u32(&r) % (uint32_t)(v->dim[i] - a->block[i] + 1));
            moff[i] = off[i] * f[i], mdim[i] = v->dim[i] * f[i];
        }
        for (int i = 0; i < 3; i++) flip[i] = a->flip[i] && (lsdm_rng_u32(&r) & 1);
        take_block(x0 + n * px, v->z, s->C, v->dim, off, a->block, flip);
        take_mask(mask + n * pm, v->lab, s->L, mdim, moff, mb, flip);
    }
}

/* ------------------------------------------------------------ options kept in the checkpoint */

static const char *train_text(const train_args *a) {
    static char buf[512];
    char flip[4] = "";
    for (int i = 0, k = 0; i < 3; i++)
        if (a->flip[i]) flip[k++] = "dhw"[i], flip[k] = 0;
    snprintf(buf, sizeof buf,
             "batch = %ld\naccum = %ld\nblock = %dx%dx%d\nflip = %s\nlr = %.17g\ngrad_clip = %.17g\n"
             "ema = %.17g\nema_start = %ld\n",
             a->batch, a->accum, a->block[0], a->block[1], a->block[2], flip[0] ? flip : "none",
             a->lr, a->grad_clip, a->ema, a->ema_start);
    return buf;
}

/* The stored options of a resumed run for those not given again. */
static int train_text_apply(train_args *a, const char *text) {
    char key[32], val[64];
    const char *p = text;
    int n;
    while (sscanf(p, " %31[a-z_] = %63s%n", key, val, &n) == 2) {
        p += n;
        int h = !strcmp(key, "batch") ? H_BATCH : !strcmp(key, "accum") ? H_ACCUM
              : !strcmp(key, "block") ? H_BLOCK : !strcmp(key, "flip") ? H_FLIP
              : !strcmp(key, "lr") ? H_LR : !strcmp(key, "grad_clip") ? H_CLIP
              : !strcmp(key, "ema") ? H_EMA : !strcmp(key, "ema_start") ? H_EMA_START : -1;
        if (h < 0 || a->has[h]) continue;
        a->has[h] = 1;
        if (h == H_BATCH) a->batch = strtol(val, NULL, 10);
        if (h == H_ACCUM) a->accum = strtol(val, NULL, 10);
        if (h == H_BLOCK && lsdm_parse_dims(val, a->block) < 0) return -1;
        if (h == H_FLIP && lsdm_parse_axes(val, a->flip) < 0) return -1;
        if (h == H_LR) a->lr = strtod(val, NULL);
        if (h == H_CLIP) a->grad_clip = strtod(val, NULL);
        if (h == H_EMA) a->ema = strtod(val, NULL);
        if (h == H_EMA_START) a->ema_start = strtol(val, NULL, 10);
    }
    return a->has[H_BATCH] && a->has[H_ACCUM] && a->has[H_BLOCK] ? 0 : -1;
}

/* ------------------------------------------------------------ previews */

/* 'text' with every ' escaped, for sh -c. */
static void shell_quote(char *out, size_t n, const char *s) {
    size_t k = 0;
    if (n < 3) return;
    out[k++] = '\'';
    for (; *s && k + 5 < n; s++) {
        if (*s == '\'') {
            memcpy(out + k, "'\\''", 4);
            k += 4;
        } else {
            out[k++] = *s;
        }
    }
    out[k++] = '\'';
    out[k] = 0;
}

/* The mask of the first training volume, a centred block, as a semantic
 * record of class indices (no geometry: a preview). */
static int preview_mask(lsdm_record *r, const sample_set *s, const int block[3]) {
    const sample *v = &s->s[0];
    const int *f = s->f;
    int b[3], off[3], dim[3];
    for (int i = 0; i < 3; i++) {
        b[i] = block[i] * f[i], dim[i] = v->dim[i] * f[i];
        off[i] = (v->dim[i] - block[i]) / 2 * f[i];
    }
    int64_t shape[4] = {1, b[0], b[1], b[2]};
    if (lsdm_record_alloc(r, LSDM_U8, 4, shape) < 0) return -1;
    uint8_t *o = r->data;
    for (int d = 0; d < b[0]; d++)
        for (int h = 0; h < b[1]; h++)
            memcpy(o + ((size_t)d * b[1] + h) * b[2],
                   v->lab + ((size_t)(off[0] + d) * dim[1] + off[1] + h) * dim[2] + off[2], (size_t)b[2]);
    int rc = lsdm_record_set(r, "name", "ldm-train-preview");
    if (!rc) rc = lsdm_record_set(r, "role", "semantic");
    if (!rc) rc = lsdm_record_set(r, "encoding", "labels");
    if (!rc) rc = lsdm_record_setf(r, "classes", "%d", s->L);
    if (!rc && s->labels) rc = lsdm_record_set(r, "labels", s->labels);
    return rc;
}

/* A colour per class (vol-png's are its own business). */
static void class_rgb(int k, uint8_t rgb[3]) {
    static const uint8_t pal[8][3] = {{0, 0, 0},     {230, 159, 0}, {86, 180, 233}, {0, 158, 115},
                                      {240, 228, 66}, {0, 114, 178}, {213, 94, 0},   {204, 121, 167}};
    if (k < 8) memcpy(rgb, pal[k], 3);
    else rgb[0] = (uint8_t)(k * 67), rgb[1] = (uint8_t)(k * 151), rgb[2] = (uint8_t)(k * 37 + 90);
}

/* mask | sample, the middle slice of each, into png. */
static int preview_draw(const char *png, const lsdm_record *mask, const char *sample_path) {
    lsdm_reader *rd = lsdm_reader_open(sample_path);
    if (!rd) return -1;
    lsdm_record y;
    lsdm_record_init(&y);
    int rc = lsdm_reader_next(rd, &y);
    lsdm_reader_close(rd);
    int D = (int)mask->shape[1], H = (int)mask->shape[2], W = (int)mask->shape[3];
    if (rc == 1 && (y.ndim != 4 || y.shape[1] != D || y.shape[2] != H || y.shape[3] != W))
        rc = lsdm_err("the sample has another shape than its mask");
    else if (rc == 0)
        rc = lsdm_err("vq-decode wrote no image");
    uint8_t *pix = rc == 1 ? malloc((size_t)H * 2 * W * 3) : NULL;
    if (rc == 1 && !pix) rc = lsdm_err("out of memory");
    if (pix) {
        size_t base = (size_t)(D / 2) * H * W;
        const uint8_t *lab = mask->data;
        for (int h = 0; h < H; h++)
            for (int w = 0; w < W; w++) {
                size_t i = base + (size_t)h * W + w;
                uint8_t *l = pix + ((size_t)h * 2 * W + w) * 3, *g = l + (size_t)W * 3;
                class_rgb(lab[i], l);
                double v = (lsdm_elem_get(y.data, y.dtype, i) + 1) * 127.5;
                g[0] = g[1] = g[2] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5);
            }
        rc = lsdm_png_write(png, 2 * W, H, 3, pix, "ldm-train: mask | sample", 1) < 0 ? -1 : 1;
    }
    free(pix);
    lsdm_record_free(&y);
    return rc == 1 ? 0 : -1;
}

/* ldm-denoise -m CKPT --steps 20 --seed 0 MASK | vq-decode -m VQ [--seg MASK]
 * --range -1,1, run from this program's directory, drawn as mask | sample.
 * A failure is a note, never an error of the training. */
static void preview(const char *png, const char *ckpt, const char *vq, int spade, const sample_set *s,
                    const int block[3]) {
    char exe[PATH_MAX], dir[PATH_MAX], tmpl[PATH_MAX], mpath[PATH_MAX + 16], ypath[PATH_MAX + 16];
    char epath[PATH_MAX + 16], q[6][2 * PATH_MAX], cmd[PATH_MAX + 16];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    const char *tmp = getenv("TMPDIR");
    int rc = k > 0 ? 0 : lsdm_err("cannot find this program's directory");
    if (rc == 0) {
        exe[k] = 0;
        snprintf(dir, sizeof dir, "%s", dirname(exe));
        snprintf(tmpl, sizeof tmpl, "%s/ldm-train-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        snprintf(cmd, sizeof cmd, "%s/ldm-denoise", dir);
        if (access(cmd, X_OK) != 0) rc = lsdm_err("no ldm-denoise in %s", dir);
    }
    if (rc == 0 && !mkdtemp(tmpl)) rc = lsdm_err("cannot make a temporary directory: %m");
    if (rc < 0) {
        lsdm_note("warning: no preview: %s", lsdm_err_msg());
        return;
    }
    snprintf(mpath, sizeof mpath, "%s/mask.lsdm", tmpl);
    snprintf(ypath, sizeof ypath, "%s/sample.lsdm", tmpl);
    snprintf(epath, sizeof epath, "%s/stderr", tmpl);
    lsdm_record m;
    lsdm_record_init(&m);
    lsdm_writer *w = preview_mask(&m, s, block) < 0 ? NULL : lsdm_writer_open(mpath, 0, 1);
    rc = !w ? -1 : lsdm_writer_put(w, &m) < 0 ? (lsdm_writer_abort(w), -1) : lsdm_writer_close(w);
    if (rc == 0) {
        const char *args[6] = {dir, ckpt, mpath, vq, ypath, epath};
        for (int i = 0; i < 6; i++) shell_quote(q[i], sizeof q[i], args[i]);
        char *sh = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&sh, &len);
        if (f) {
            fprintf(f, "%s/ldm-denoise -q -m %s --steps 20 --seed 0 %s 2>%s | ", q[0], q[1], q[2], q[5]);
            fprintf(f, "%s/vq-decode -q -m %s %s%s --range -1,1 -o %s 2>>%s", q[0], q[3],
                    spade ? "--seg " : "", spade ? q[2] : "", q[4], q[5]);
            fclose(f);
        }
        int st = sh ? system(sh) : -1;
        free(sh);
        if (st != 0 || access(ypath, R_OK) != 0) {
            /* the children's own last error line says why */
            char line[512] = "", last[512] = "";
            FILE *e = fopen(epath, "r");
            while (e && fgets(line, sizeof line, e)) snprintf(last, sizeof last, "%s", line);
            if (e) fclose(e);
            last[strcspn(last, "\n")] = 0;
            rc = lsdm_err("ldm-denoise | vq-decode failed%s%s", *last ? ": " : "", last);
        }
    }
    if (rc == 0) rc = preview_draw(png, &m, ypath);
    if (rc < 0) lsdm_note("warning: no preview: %s", lsdm_err_msg());
    lsdm_record_free(&m);
    unlink(mpath), unlink(ypath), unlink(epath);
    rmdir(tmpl);
}

/* ------------------------------------------------------------ main */

static int log_line(FILE *f, long step, double t, const ldm_step_stats *s) {
    fprintf(f, "%ld,%.3f,%.6g,%.6g,%.6g,%.4g,%d,%d,%.4g\n", step, t, s->loss, s->lr, s->grad_norm,
            s->t_mean, s->dropped, s->samples, s->mask_on);
    return fflush(f) == 0 && !ferror(f) ? 0 : lsdm_err("cannot write the log: %m");
}

/* codebook min and max: the reference's latent normalisation */
static void codebook_range(const vqgan *vq, double *lo, double *hi) {
    *lo = INFINITY, *hi = -INFINITY;
    for (size_t i = 0; i < vq->emb->n; i++) *lo = fmin(*lo, vq->emb->data[i]), *hi = fmax(*hi, vq->emb->data[i]);
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        LSDM_COMMON_LONGOPTS, LSDM_ENGINE_LONGOPTS,
        {"output", required_argument, 0, 'o'}, {"config", required_argument, 0, 'c'},
        {"vq", required_argument, 0, OPT_VQ}, {"seg", required_argument, 0, OPT_SEG},
        {"init", required_argument, 0, OPT_INIT}, {"resume", required_argument, 0, OPT_RESUME},
        {"steps", required_argument, 0, OPT_STEPS}, {"minutes", required_argument, 0, OPT_MINUTES},
        {"batch", required_argument, 0, OPT_BATCH}, {"accum", required_argument, 0, OPT_ACCUM},
        {"block", required_argument, 0, OPT_BLOCK}, {"flip", required_argument, 0, OPT_FLIP},
        {"lr", required_argument, 0, OPT_LR}, {"loss", required_argument, 0, OPT_LOSS},
        {"cond-drop", required_argument, 0, OPT_COND_DROP},
        {"timesteps", required_argument, 0, OPT_TIMESTEPS},
        {"grad-clip", required_argument, 0, OPT_CLIP}, {"ema", required_argument, 0, OPT_EMA},
        {"ema-start", required_argument, 0, OPT_EMA_START}, {"seed", required_argument, 0, OPT_SEED},
        {"save-every", required_argument, 0, OPT_SAVE_EVERY},
        {"export", required_argument, 0, OPT_EXPORT}, {"log", required_argument, 0, OPT_LOG},
        {"log-every", required_argument, 0, OPT_LOG_EVERY},
        {"preview", required_argument, 0, OPT_PREVIEW},
        {0, 0, 0, 0},
    };
    lsdm_cli_init("ldm-train", argv);
    train_args a = {.steps = 2000, .save_every = 500, .log_every = 10, .flip = {0, 0, 1},
                    .grad_clip = 1, .ema = 0.995, .cond_drop = 0.1, .timesteps = 500};
    const char *segs[64];
    a.seg = segs;
    int c;
    while ((c = getopt_long(argc, argv, LSDM_COMMON_SHORTOPTS "o:c:j:", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': a.out = optarg; break;
        case 'c': a.config = optarg; break;
        case 'j': LSDM_OPT_LONG(lsdm_opt.threads, 1, 1024); break;
        case LSDM_OPT_DEVICE: lsdm_opt.device = optarg; break;
        case OPT_VQ: a.vq = optarg; break;
        case OPT_SEG:
            if (a.nseg == 64) return lsdm_usage_error("--seg: at most 64 streams");
            a.seg[a.nseg++] = optarg;
            break;
        case OPT_INIT: a.init = optarg; break;
        case OPT_RESUME: a.resume = optarg; break;
        case OPT_STEPS: LSDM_OPT_LONG(a.steps, 0, 1L << 40); break;
        case OPT_MINUTES: LSDM_OPT_REAL(a.minutes, 1e9); break;
        case OPT_BATCH: LSDM_OPT_LONG(a.batch, 1, 256); a.has[H_BATCH] = 1; break;
        case OPT_ACCUM: LSDM_OPT_LONG(a.accum, 1, 1024); a.has[H_ACCUM] = 1; break;
        case OPT_BLOCK:
            if (lsdm_parse_dims(optarg, a.block) < 0) return lsdm_usage_error("--block: %s", lsdm_err_msg());
            a.has[H_BLOCK] = 1;
            break;
        case OPT_FLIP:
            if (lsdm_parse_axes(optarg, a.flip) < 0) return lsdm_usage_error("--flip: %s", lsdm_err_msg());
            a.has[H_FLIP] = 1;
            break;
        case OPT_LR: LSDM_OPT_REAL(a.lr, 10); a.has[H_LR] = 1; break;
        case OPT_LOSS:
            if (strcmp(optarg, "l1") && strcmp(optarg, "l2"))
                return lsdm_usage_error("--loss: l1 or l2, not '%s'", optarg);
            a.loss_l2 = !strcmp(optarg, "l2");
            a.has[H_LOSS] = 1;
            break;
        case OPT_COND_DROP: LSDM_OPT_REAL(a.cond_drop, 1); a.has[H_DROP] = 1; break;
        case OPT_TIMESTEPS: LSDM_OPT_LONG(a.timesteps, 1, DIFFUSION_MAX_STEPS); a.has[H_T] = 1; break;
        case OPT_CLIP: LSDM_OPT_REAL(a.grad_clip, 1e30); a.has[H_CLIP] = 1; break;
        case OPT_EMA: LSDM_OPT_REAL(a.ema, 1); a.has[H_EMA] = 1; break;
        case OPT_EMA_START: LSDM_OPT_LONG(a.ema_start, 0, 1L << 40); a.has[H_EMA_START] = 1; break;
        case OPT_SEED: LSDM_OPT_LONG(a.seed, 0, 1L << 62); break;
        case OPT_SAVE_EVERY: LSDM_OPT_LONG(a.save_every, 1, 1L << 40); break;
        case OPT_EXPORT: a.export = optarg; break;
        case OPT_LOG: a.log = optarg; break;
        case OPT_LOG_EVERY: LSDM_OPT_LONG(a.log_every, 1, 1L << 40); break;
        case OPT_PREVIEW: a.preview = optarg; break;
        LSDM_CLI_DEFAULT(c, HELP);
        }
    }
    if (!a.out) return lsdm_usage_error("no checkpoint to write: give -o CKPT");
    if (!a.vq) return lsdm_usage_error("no VQ-GAN: give --vq VQ (the model of the latents)");
    if (!a.nseg) return lsdm_usage_error("no masks: give --seg SEM (mask2sem output paired with the inputs)");
    if (optind == argc) return lsdm_usage_error("no INPUT given (use '-' for standard input)");
    if (a.init && a.resume) return lsdm_usage_error("--init and --resume exclude each other");
    if (a.config && a.resume) return lsdm_usage_error("--resume takes the config from the checkpoint: drop -c");
    if (lsdm_cli_training_setup() < 0) return lsdm_fail();

    /* everything main owns, so that every exit frees it (done:) */
    vqgan vq = {0};
    ldm_trainer t = {0};
    sample_set set = {0};
    ckpt_meta meta = {0}, extra = {0};
    FILE *log = NULL;
    float *x0 = NULL, *mask = NULL;
    int code = 0, rc = 0, have_t = 0;
    ldm_step_stats st = {0};
    char digest[17];
    const char *line;

    /* the VQ-GAN: its digest ties the latents, its codebook the scale */
    if (vq_model_open(&vq, a.vq, NULL, digest, &line) < 0) goto fail;
    lsdm_verbose("%s", line);
    const int *f = vq.cfg.downsample;

    /* the UNet and the diffusion: fresh (or --init weights), or resumed */
    ldm_train_opts o = ldm_train_opts_default();
    ldm_diffusion_config d;
    unet_config cfg;
    if (a.resume) {
        if (ldm_trainer_resume(&t, a.resume, &o, &meta) < 0) goto fail;
        have_t = 1;
        const ldm_diffusion_config *rd = &t.d;
        if (strcmp(rd->vq_model, digest)) {
            lsdm_err("--resume: the model was trained on latents of VQ-GAN %s, --vq is %s",
                     rd->vq_model[0] ? rd->vq_model : "(unknown)", digest);
            goto fail;
        }
        if ((a.has[H_T] && a.timesteps != rd->timesteps) || (a.has[H_LOSS] && a.loss_l2 != rd->loss_l2) ||
            (a.has[H_DROP] && a.cond_drop != rd->cond_drop)) {
            code = lsdm_usage_error("--resume: --timesteps, --loss and --cond-drop are the checkpoint's "
                                    "(%d, %s, %g)", rd->timesteps, rd->loss_l2 ? "l2" : "l1", rd->cond_drop);
            goto done;
        }
        const char *tt = ckpt_meta_get(&meta, "ldm_train");
        if (!tt || train_text_apply(&a, tt) < 0) {
            lsdm_err("--resume: %s has no ldm-train options", a.resume);
            goto fail;
        }
        cfg = t.ema.cfg;
    } else {
        if (unet_config_load(&cfg, a.config ? a.config : "tiny") < 0) goto fail;
    }
    /* The reference trains med-lsdm on whole 8x64x64 latents, 2 x 2
     * accumulated, at 1e-5. A small model learns from many small blocks
     * at a higher rate: narrow configs default to 4 blocks of 8x16x16 at
     * 1e-3. Not higher: at 3e-3 the loss falls faster (0.24 against 0.45
     * after 100 steps on phantom latents) but within 300 steps every output
     * of the mask encoder's last ReLU is below 0 and the model never sees
     * the mask again (mask_on 0); at 1e-3 it stays alive. */
    int tiny = cfg.dim < 64;
    if (!a.has[H_BATCH]) a.batch = tiny ? 4 : 2;
    if (!a.has[H_ACCUM]) a.accum = tiny ? 1 : 2;
    if (!a.has[H_LR]) a.lr = tiny ? 1e-3 : 1e-5;
    if (!a.has[H_BLOCK] && tiny) a.block[0] = 8, a.block[1] = a.block[2] = 16;
    /* An EMA averaged from the random init keeps 0.995^n of it after n
     * steps (15% after 380): the reference copies the weights for its
     * first 2000 steps; short tiny runs for their first 100. */
    if (!a.has[H_EMA_START]) a.ema_start = tiny ? 100 : 2000;
    if (cfg.channels != vq.cfg.embedding_dim) {
        lsdm_err("the UNet takes %d latent channels, the VQ-GAN makes %d", cfg.channels, vq.cfg.embedding_dim);
        goto fail;
    }
    o.lr = a.lr, o.grad_clip = a.grad_clip, o.ema_decay = a.ema, o.ema_start = a.ema_start;
    o.accum = (int)a.accum, o.seed = a.seed;
    if (have_t) {
        t.o.lr = o.lr, t.o.grad_clip = o.grad_clip, t.o.ema_decay = o.ema_decay;
        t.o.ema_start = o.ema_start, t.o.accum = o.accum;
        d = t.d;
    } else {
        ldm_diffusion_defaults(&d);
        d.timesteps = a.timesteps, d.loss_l2 = a.loss_l2, d.cond_drop = a.cond_drop;
        memcpy(d.vq_model, digest, sizeof d.vq_model);
        memcpy(d.downsample, f, sizeof d.downsample);
        codebook_range(&vq, &d.latent_min, &d.latent_max);
        if (!(d.latent_max > d.latent_min)) {
            lsdm_err("the VQ-GAN's codebook is constant (%g): no latent range", d.latent_min);
            goto fail;
        }
        /* the values as the checkpoint's text holds them, so that a resumed
         * run (and ldm-denoise) scales the latents exactly as this one */
        if (ldm_diffusion_parse(&d, ldm_diffusion_text(&d)) < 0) goto fail;
    }

    if (load_set(&set, argv + optind, argc - optind, &a, &vq, digest, &cfg, &d) < 0) goto fail;
    if (!a.block[0]) /* the whole latent (the smallest one's) */
        for (int i = 0; i < set.n; i++)
            for (int k = 0; k < 3; k++)
                if (!a.block[k] || set.s[i].dim[k] < a.block[k]) a.block[k] = set.s[i].dim[k];
    int mult = 1 << (cfg.levels - 1);
    if (a.block[1] % mult || a.block[2] % mult) {
        code = lsdm_usage_error("--block: height and width must be multiples of %d (the UNet's %d levels), "
                                "got %dx%dx%d", mult, cfg.levels, a.block[0], a.block[1], a.block[2]);
        goto done;
    }
    for (int i = 0; i < set.n; i++)
        if (set.s[i].dim[0] < a.block[0] || set.s[i].dim[1] < a.block[1] || set.s[i].dim[2] < a.block[2]) {
            lsdm_err("latent %d (%dx%dx%d) is smaller than the block %dx%dx%d: use a smaller --block", i,
                     set.s[i].dim[0], set.s[i].dim[1], set.s[i].dim[2], a.block[0], a.block[1], a.block[2]);
            goto fail;
        }
    memcpy(d.train_shape, a.block, sizeof a.block);
    if (have_t) {
        memcpy(t.d.train_shape, a.block, sizeof a.block);
    } else {
        if (ldm_trainer_init(&t, &cfg, &d, &o, a.init) < 0) goto fail;
        have_t = 1;
    }
    lsdm_verbose("UNet: %s, %zu parameters, dim %d, %d levels, %d classes; latent range [%g, %g]",
                 a.resume ? a.resume : a.config ? a.config : "tiny", unet_param_count(&t.m), cfg.dim,
                 cfg.levels, cfg.label_nc, t.d.latent_min, t.d.latent_max);
    lsdm_verbose("%d training volumes, block %dx%dx%d (masks x%s), batch %ld x %ld accumulated, lr %g",
                 set.n, a.block[0], a.block[1], a.block[2], vqgan_factor_text(&vq.cfg), a.batch,
                 a.accum, a.lr);

    if (a.log) {
        int fresh = t.step == 0;
        log = fopen(a.log, fresh ? "w" : "a");
        if (!log) {
            lsdm_err("cannot open %s: %m", a.log);
            goto fail;
        }
        if (fresh) fprintf(log, "step,seconds,loss,lr,grad_norm,t_mean,cond_dropped,samples,mask_on\n");
    }
    ldm_batch_shape shape = {(int)a.batch, a.block[0], a.block[1], a.block[2],
                             a.block[0] * f[0], a.block[1] * f[1], a.block[2] * f[2]};
    size_t nx = (size_t)a.batch * set.C * a.block[0] * a.block[1] * a.block[2];
    size_t nm = (size_t)a.batch * set.L * shape.Dm * shape.Hm * shape.Wm;
    x0 = malloc(nx * sizeof(float));
    mask = malloc(nm * sizeof(float));
    if (!x0 || !mask || ckpt_meta_set(&extra, "ldm_train", train_text(&a)) < 0) {
        lsdm_err("out of memory");
        goto fail;
    }

    double t0 = lsdm_now_s();
    long start = t.step;
    char what[256];
    int dead_said = 0;
    while (t.step < a.steps) {
        ldm_trainer_begin(&t, &st);
        for (int k = 0; rc == 0 && k < o.accum; k++) {
            make_micro(x0, mask, &set, &a, t.o.seed, t.step, k);
            rc = ldm_trainer_micro(&t, k, x0, mask, &shape, &st);
        }
        if (rc < 0 || (rc = ldm_trainer_end(&t, &st)) < 0) break;
        /* The mask encoder ends in a ReLU (the reference's); too high a
         * learning rate can push all its outputs below 0 for good, and the
         * model then never sees the mask again. Say so once. */
        if (st.mask_on == 0 && !dead_said++)
            lsdm_note("warning: step %ld: the mask encoder's output is 0 everywhere (its last ReLU died): "
                      "the model no longer sees the mask; train again with a lower --lr", t.step);
        double el = lsdm_now_s() - t0;
        int last = t.step == a.steps || (a.minutes > 0 && el >= a.minutes * 60);
        int save = last || t.step % a.save_every == 0;
        if (log && (t.step % a.log_every == 0 || save) && (rc = log_line(log, t.step, el, &st)) < 0) break;
        snprintf(what, sizeof what, "loss %.4f |g| %.3g, %.2f s/step, step", st.loss, st.grad_norm,
                 el / (double)(t.step - start));
        lsdm_progress(t.step, a.steps, what);
        if (save) {
            if ((rc = ldm_trainer_save(&t, a.out, &extra)) < 0) break;
            if (a.preview) preview(a.preview, a.out, a.vq, vq.cfg.spade, &set, a.block);
        }
        if (last) break;
    }
    lsdm_progress_end();
    /* a run that trained no step still leaves its checkpoint */
    if (rc == 0 && t.step == start && ldm_trainer_save(&t, a.out, &extra) < 0) rc = -1;
    if (rc == 0 && t.step > start) lsdm_note("%ld steps, loss %.4f", t.step, st.loss);
    else if (rc == 0) lsdm_note("%ld steps: none to train (--steps %ld)", t.step, a.steps);
    if (rc == 0 && a.export &&
        checkpoint_export(a.out, a.export, EXPORT_DROP, sizeof EXPORT_DROP / sizeof *EXPORT_DROP) < 0)
        rc = -1;
    if (rc < 0) goto fail;
    goto done;
fail:
    code = lsdm_fail();
done:
    if (log) fclose(log);
    free(x0);
    free(mask);
    set_free(&set);
    ckpt_meta_free(&meta);
    ckpt_meta_free(&extra);
    if (have_t) ldm_trainer_free(&t);
    vqgan_free(&vq);
    return code;
}
