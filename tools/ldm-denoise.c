/* ldm-denoise: semantic maps -> VQ-GAN latents, by the latent diffusion model.
 *
 * Per mask record: one-hot on the image grid -> the latent grid (/ f) ->
 * depth windows of the trained depth -> mask features once per window
 * (the null mask's once per grid) -> per sample: Philox noise, then the
 * sampler's steps, each one the guided eps of every window (conditional
 * and unconditional passes as one batch of 2) blended along depth, and one
 * DDIM or DDPM step of the whole latent -> the VQ-GAN's scale -> a latent
 * record with the mask's geometry on the latent grid, for vq-decode. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "diffusion.h"
#include "err.h"
#include "ldm.h"
#include "rng.h"
#include "semantic.h"
#include "stream.h"
#include "vqtile.h"

static const char HELP[] =
    "Usage: ldm-denoise -m LDM [OPTION]... [SEMANTIC]\n"
    "Generate VQ-GAN latents (role latent, f32 C,D,H,W, the latent grid of\n"
    "the mask) from semantic maps with a latent diffusion checkpoint\n"
    "(ldm-train). SEMANTIC: a mask2sem stream, one-hot or class indices, on\n"
    "the image grid ('-' or none: standard input). vq-decode turns the output\n"
    "into images.\n"
    "\n"
    "  -m, --model LDM        diffusion checkpoint (safetensors)\n"
    "      --config NAME|FILE UNet config for a checkpoint without one\n"
    "      --vq CKPT          check that LDM models this VQ-GAN's latents\n"
    "      --samples K        K samples per mask, named NAME-s0 .. NAME-s(K-1)\n"
    "                         (default: one, named as the mask)\n"
    "      --sampler S        ddim (default) or ddpm (the reference's sampler)\n"
    "      --steps N          sampling steps, 1 to the model's timesteps\n"
    "                         (default: 50 for ddim, all for ddpm)\n"
    "      --eta E            DDIM noise: 0 deterministic (default), 1 DDPM-like\n"
    "      --guidance S       classifier-free guidance uncond + S (cond - uncond)\n"
    "                         with the all-zero mask as uncond (default 1.5;\n"
    "                         0: unconditional, 1: conditional alone)\n"
    "      --guidance-mode M  standard (default) or reference: the reference\n"
    "                         code's cond + S (cond - uncond)\n"
    "      --seed N           noise seed (default 0): the same seed gives the\n"
    "                         same bytes; the noise is the same on CPU and GPU\n"
    "      --first-index N    count the first record as record N for its noise\n"
    "                         (default 0): a job that takes records N.. of a\n"
    "                         stream samples them as one run over all would\n"
    "      --no-clip          do not clip the predicted x0 to [-1,1] at each step\n"
    "      --baseline noise   write the sampler's start instead: the seed's noise\n"
    "                         x_T clipped to [-1,1] and scaled to the latent range,\n"
    "                         never denoised (a baseline that ignores the mask)\n"
    "  -o FILE                output stream (default standard output)\n"
    LSDM_ENGINE_HELP LSDM_COMMON_HELP
    "\nMasks deeper than the checkpoint's trained latent depth are denoised in\n"
    "overlapping depth windows whose noise predictions are blended at every\n"
    "step, so long volumes have no seams.\n"
    "\nExit status: 0 ok, 1 error (bad input, model or data), 2 usage error.\n";

enum {
    OPT_CONFIG = LSDM_OPT_FIRST_TOOL, OPT_VQ, OPT_SAMPLES, OPT_SAMPLER, OPT_STEPS, OPT_ETA,
    OPT_GUIDANCE, OPT_GUIDANCE_MODE, OPT_SEED, OPT_NO_CLIP, OPT_BASELINE, OPT_FIRST_INDEX
};
enum { SAMPLER_DDIM, SAMPLER_DDPM };
/* Keys of a semantic map that do not describe its latent. */
static const char *const MASK_KEYS[] = {"role", "encoding", "classes", "labels"};
/* lsdm_rng_derive purposes: a record's seed, then a sample's */
#define SEED_RECORD 0x6c646d72u /* "ldmr" */
#define SEED_SAMPLE 0x6c646d73u /* "ldms" */

typedef struct {
    const char *model, *config, *vq, *out;
    long samples, steps, first_index;
    int named_samples, sampler, mode, clip, eta_given, noise_only;
    double eta, guidance;
    uint64_t seed;
} den_opts;

static int parse_args(int argc, char **argv, den_opts *o, int *first) {
    static const struct option longopts[] = {
        LSDM_COMMON_LONGOPTS, LSDM_ENGINE_LONGOPTS,
        {"model", required_argument, 0, 'm'}, {"config", required_argument, 0, OPT_CONFIG},
        {"vq", required_argument, 0, OPT_VQ}, {"samples", required_argument, 0, OPT_SAMPLES},
        {"sampler", required_argument, 0, OPT_SAMPLER}, {"steps", required_argument, 0, OPT_STEPS},
        {"eta", required_argument, 0, OPT_ETA}, {"guidance", required_argument, 0, OPT_GUIDANCE},
        {"guidance-mode", required_argument, 0, OPT_GUIDANCE_MODE},
        {"seed", required_argument, 0, OPT_SEED}, {"no-clip", no_argument, 0, OPT_NO_CLIP},
        {"baseline", required_argument, 0, OPT_BASELINE},
        {"first-index", required_argument, 0, OPT_FIRST_INDEX},
        {0, 0, 0, 0},
    };
    int c;
    long v;
    while ((c = getopt_long(argc, argv, LSDM_COMMON_SHORTOPTS "j:m:o:", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': o->model = optarg; break;
        case 'o': o->out = optarg; break;
        case OPT_CONFIG: o->config = optarg; break;
        case OPT_VQ: o->vq = optarg; break;
        case OPT_SAMPLES:
            if (lsdm_parse_long(optarg, 1, 100000, &o->samples)) return lsdm_usage_error("--samples: %s", lsdm_err_msg());
            o->named_samples = 1;
            break;
        case OPT_SAMPLER:
            if (!strcmp(optarg, "ddim")) o->sampler = SAMPLER_DDIM;
            else if (!strcmp(optarg, "ddpm")) o->sampler = SAMPLER_DDPM;
            else return lsdm_usage_error("--sampler: '%s' is not ddim or ddpm", optarg);
            break;
        case OPT_STEPS:
            if (lsdm_parse_long(optarg, 1, DIFFUSION_MAX_STEPS, &o->steps))
                return lsdm_usage_error("--steps: %s", lsdm_err_msg());
            break;
        case OPT_ETA:
            if (lsdm_parse_double(optarg, &o->eta) || !(o->eta >= 0) || !isfinite(o->eta))
                return lsdm_usage_error("--eta: '%s' is not a number >= 0", optarg);
            o->eta_given = 1;
            break;
        case OPT_GUIDANCE:
            if (lsdm_parse_double(optarg, &o->guidance) || !isfinite(o->guidance))
                return lsdm_usage_error("--guidance: '%s' is not a number", optarg);
            break;
        case OPT_GUIDANCE_MODE:
            if (!strcmp(optarg, "standard")) o->mode = DIFFUSION_GUIDE_STANDARD;
            else if (!strcmp(optarg, "reference")) o->mode = DIFFUSION_GUIDE_REFERENCE;
            else return lsdm_usage_error("--guidance-mode: '%s' is not standard or reference", optarg);
            break;
        case OPT_SEED:
            if (lsdm_parse_long(optarg, 0, 0x7fffffffffffffffL, &v)) return lsdm_usage_error("--seed: %s", lsdm_err_msg());
            o->seed = (uint64_t)v;
            break;
        case OPT_NO_CLIP: o->clip = 0; break;
        case OPT_FIRST_INDEX:
            if (lsdm_parse_long(optarg, 0, INT32_MAX, &o->first_index))
                return lsdm_usage_error("--first-index: %s", lsdm_err_msg());
            break;
        case OPT_BASELINE:
            if (strcmp(optarg, "noise")) return lsdm_usage_error("--baseline: '%s' is not noise", optarg);
            o->noise_only = 1;
            break;
        LSDM_CLI_DEFAULT(c, HELP);
        }
    }
    if (!o->model) return lsdm_usage_error("no model: give -m LDM");
    if (argc - optind > 1) return lsdm_usage_error("one SEMANTIC input at most");
    *first = optind;
    return -1;
}

/* ------------------------------------------------------------ the model */

typedef struct {
    unet m;
    ldm_diffusion_config d;
    diffusion_schedule s;
    int steps, *ts;    /* the sampler's timesteps, descending */
    int ddpm;          /* the reference's DDPM step (every timestep) */
    double eta;        /* DDIM's (1: a respaced DDPM) */
    int cond, uncond;  /* the passes that guidance needs */
} denoiser;

static void denoiser_free(denoiser *dn) {
    unet_free(&dn->m);
    diffusion_schedule_free(&dn->s);
    free(dn->ts);
}

/* Load the checkpoint, check it against --vq, plan the sampler. */
static int denoiser_open(denoiser *dn, const den_opts *o) {
    memset(dn, 0, sizeof *dn);
    if (ldm_load(&dn->m, &dn->d, o->model, o->config, NULL) < 0) return -1;
    const unet_config *u = &dn->m.cfg;
    const ldm_diffusion_config *d = &dn->d;
    int rc = diffusion_schedule_init(&dn->s, d->timesteps);
    int T = d->timesteps;
    dn->steps = o->steps ? (int)o->steps : o->sampler == SAMPLER_DDPM ? T : T < 50 ? T : 50;
    if (!rc && !(dn->ts = malloc((size_t)dn->steps * sizeof(int)))) rc = lsdm_err("out of memory");
    if (!rc && diffusion_timesteps(dn->ts, dn->steps, &dn->s) < 0) rc = lsdm_err_ctx("--steps");
    if (!rc && o->vq) {
        vqgan vq;
        char digest[17];
        const char *line;
        if (vq_model_open(&vq, o->vq, NULL, digest, &line) < 0) {
            rc = lsdm_err_ctx("--vq");
        } else {
            vqgan_free(&vq);
            if (!d->vq_model[0])
                rc = lsdm_err("--vq: %s names no VQ-GAN (vq_model none), it cannot be checked", o->model);
            else if (strcmp(digest, d->vq_model))
                rc = lsdm_err("--vq: %s is a latent checkpoint of another VQ-GAN (vq_model %s, %s is %s)",
                              o->model, d->vq_model, o->vq, digest);
        }
    }
    if (rc) {
        denoiser_free(dn);
        return -1;
    }
    dn->ddpm = o->sampler == SAMPLER_DDPM && dn->steps == T;
    dn->eta = o->sampler == SAMPLER_DDPM ? 1.0 : o->eta;
    /* S = 1 (standard) is cond alone, S = 0 uncond alone (reference: cond alone) */
    double S = o->guidance;
    dn->cond = !(o->mode == DIFFUSION_GUIDE_STANDARD && S == 0);
    dn->uncond = o->mode == DIFFUSION_GUIDE_STANDARD ? S != 1 : S != 0;
    char mults[64] = "", ftext[48];
    for (int i = 0; i < u->levels; i++)
        snprintf(mults + strlen(mults), sizeof mults - strlen(mults), "%s%d", i ? "," : "", u->dim_mults[i]);
    lsdm_verbose("model %s: unet dim %d, mults %s, %d latent channels, %d classes, %zu "
                 "parameters; %d timesteps, latents of VQ-GAN %s (f %s, range %g..%g), trained on %dx%dx%d",
                 o->model, u->dim, mults, u->channels, u->label_nc, unet_param_count(&dn->m), T,
                 d->vq_model[0] ? d->vq_model : "unknown", vqgan_factors_format(d->downsample, ftext), d->latent_min,
                 d->latent_max, d->train_shape[0], d->train_shape[1], d->train_shape[2]);
    char eta[40] = "";
    if (o->sampler == SAMPLER_DDIM && dn->eta > 0) snprintf(eta, sizeof eta, ", eta %g", dn->eta);
    lsdm_verbose("sampler %s, %d steps (t %d .. %d)%s, guidance %g (%s: %s)%s",
                 o->sampler == SAMPLER_DDPM ? dn->ddpm ? "ddpm" : "ddpm (respaced: DDIM eta 1)" : "ddim",
                 dn->steps, dn->ts[0], dn->ts[dn->steps - 1], eta,
                 S, o->mode == DIFFUSION_GUIDE_REFERENCE ? "reference" : "standard",
                 dn->cond && dn->uncond ? "cond and uncond as a batch of 2" : dn->cond ? "cond alone" : "uncond alone",
                 o->clip ? "" : ", no x0 clipping");
    if (o->eta_given && o->sampler == SAMPLER_DDPM) lsdm_verbose("--eta is DDIM's: ignored by ddpm");
    return 0;
}

/* ------------------------------------------------------------ depth windows */

/* The depth windows of a record and their mask features. */
typedef struct {
    diffusion_windows p;
    unet_maskfeat *mf; /* (p.n) for the batch of passes */
} dn_windows;

static void windows_free(dn_windows *win) {
    diffusion_windows_free(&win->p);
    free(win->mf);
    memset(win, 0, sizeof *win);
}

static int windows_plan(dn_windows *win, int depth, int window) {
    memset(win, 0, sizeof *win);
    if (diffusion_windows_init(&win->p, depth, window) < 0) return -1;
    if (!(win->mf = calloc((size_t)win->p.n, sizeof(unet_maskfeat)))) {
        windows_free(win);
        return lsdm_err("out of memory");
    }
    return 0;
}

/* out (N = a->N + b->N) = a's then b's batch, every tensor, in c. */
static int maskfeat_concat(nn_ctx *c, const unet_maskfeat *a, const unet_maskfeat *b, unet_maskfeat *out) {
    *out = *a;
    out->N = a->N + b->N;
    nn_tensor *const *src[2][2] = {{a->gamma, a->beta}, {b->gamma, b->beta}};
    nn_tensor **dst[2] = {out->gamma, out->beta};
    for (int k = -1; k < a->n; k++)
        for (int j = 0; j < (k < 0 ? 1 : 2); j++) {
            const nn_tensor *x = k < 0 ? a->seg : src[0][j][k], *y = k < 0 ? b->seg : src[1][j][k];
            nn_tensor *t = nn_tensor_new(c, x->N + y->N, x->C, x->D, x->H, x->W);
            if (!t) return nn_ctx_status(c);
            memcpy(t->data, x->data, x->n * sizeof(float));
            memcpy(t->data + x->n, y->data, y->n * sizeof(float));
            if (k < 0) out->seg = t;
            else dst[j][k] = t;
        }
    return 0;
}

static void maskfeat_drop(nn_ctx *c, unet_maskfeat *mf) {
    for (int k = 0; k < mf->n; k++) nn_drop(c, mf->gamma[k]), nn_drop(c, mf->beta[k]);
    nn_drop(c, mf->seg);
}

/* The null mask's features for windows of (L, Dm, Hm, Wm) mask voxels,
 * made again only when that grid changes. */
typedef struct {
    nn_ctx c;
    int grid[4];
    unet_maskfeat mf;
} dn_null;

static int null_features(dn_null *nf, const unet *m, int Dm, int Hm, int Wm, int D, int H, int W) {
    int g[4] = {Dm, Hm, Wm, D};
    if (!memcmp(g, nf->grid, sizeof g)) return 0;
    nn_ctx_reset(&nf->c);
    memset(nf->grid, 0, sizeof nf->grid);
    nn_tensor *z = nn_tensor_new(&nf->c, 1, m->cfg.label_nc, Dm, Hm, Wm);
    if (!z) return nn_ctx_status(&nf->c);
    memset(z->data, 0, z->n * sizeof(float));
    if (unet_encode_mask(&nf->c, m, z, D, H, W, &nf->mf) < 0) return -1;
    nn_drop(&nf->c, z);
    memcpy(nf->grid, g, sizeof g);
    return 0;
}

/* Mask features of every window: the window's crop of the one-hot mask
 * seg (L, Dl f, H f, W f) encoded once, paired with the null features as
 * the batch [cond, uncond] where both passes run. In fc (reset per record). */
static int windows_encode(dn_windows *win, nn_ctx *fc, dn_null *nf, const denoiser *dn,
                          const float *seg, const int64_t ld[3]) {
    const unet *m = &dn->m;
    const int *f = dn->d.downsample;
    int L = m->cfg.label_nc, H = (int)ld[1], W = (int)ld[2];
    int64_t dim[3] = {ld[0] * f[0], ld[1] * f[1], ld[2] * f[2]};
    int64_t size[3] = {(int64_t)win->p.D * f[0], dim[1], dim[2]};
    if (dn->uncond && null_features(nf, m, (int)size[0], (int)size[1], (int)size[2], win->p.D, H, W) < 0)
        return -1;
    for (int i = 0; i < win->p.n; i++) {
        if (!dn->cond) {
            win->mf[i] = nf->mf;
            continue;
        }
        int64_t off[3] = {(int64_t)win->p.off[i] * f[0], 0, 0};
        nn_tensor *mt = nn_tensor_new(fc, 1, L, (int)size[0], (int)size[1], (int)size[2]);
        if (!mt) return nn_ctx_status(fc);
        vq_window_copy(mt->data, seg, L, dim, off, size);
        unet_maskfeat cf;
        if (unet_encode_mask(fc, m, mt, win->p.D, H, W, &cf) < 0) return -1;
        nn_drop(fc, mt);
        if (!dn->uncond) {
            win->mf[i] = cf;
            continue;
        }
        if (maskfeat_concat(fc, &cf, &nf->mf, &win->mf[i]) < 0) return -1;
        maskfeat_drop(fc, &cf);
    }
    return 0;
}

/* ------------------------------------------------------------ sampling */

/* eps (C, Dl,H,W) at t for x: every window's guided eps, blended. */
static int model_eps(nn_ctx *c, const denoiser *dn, const den_opts *o, const dn_windows *win,
                     const float *x, int t, float *eps, const int64_t ld[3]) {
    int C = dn->m.cfg.channels, P = dn->cond + dn->uncond, D = win->p.D;
    size_t plane = (size_t)(ld[1] * ld[2]), nw = (size_t)C * D * plane, n = (size_t)C * ld[0] * plane;
    float tt[2] = {(float)t, (float)t};
    memset(eps, 0, n * sizeof(float));
    for (int i = 0; i < win->p.n; i++) {
        int64_t off[3] = {win->p.off[i], 0, 0}, size[3] = {D, ld[1], ld[2]};
        nn_tensor *xt = nn_tensor_new(c, P, C, D, (int)ld[1], (int)ld[2]);
        if (!xt) return nn_ctx_status(c);
        for (int p = 0; p < P; p++) vq_window_copy(xt->data + p * nw, x, C, ld, off, size);
        nn_tensor *e = unet_forward(c, &dn->m, xt, tt, &win->mf[i]);
        if (!e) return -1;
        if (P == 2) diffusion_guide(e->data, e->data, e->data + nw, nw, o->guidance, o->mode);
        diffusion_windows_add(&win->p, i, eps, e->data, C, plane);
        nn_ctx_reset(c);
    }
    diffusion_windows_finish(&win->p, eps, C, plane);
    return 0;
}

static size_t count_nonfinite(const float *v, size_t n) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += !isfinite(v[i]);
    return bad;
}

/* One sample into x (C, ld), in the model's [-1,1] scale. Noise: stream 0
 * of the sample's seed is x_T, stream i + 1 the noise of step i. */
static int sample_latent(nn_ctx *c, const denoiser *dn, const den_opts *o, const dn_windows *win,
                         uint64_t seed, float *x, const int64_t ld[3]) {
    size_t n = (size_t)dn->m.cfg.channels * (size_t)(ld[0] * ld[1] * ld[2]);
    float *eps = malloc(n * sizeof(float)), *noise = malloc(n * sizeof(float));
    float *y = malloc(n * sizeof(float));
    int rc = eps && noise && y ? 0 : lsdm_err("out of memory for a latent of %zu values", n);
    if (!rc) lsdm_rng_fill_normal(x, n, seed, 0, 0);
    if (!rc && o->noise_only)
        for (size_t i = 0; i < n; i++) x[i] = x[i] < -1 ? -1 : x[i] > 1 ? 1 : x[i];
    for (int i = 0; i < dn->steps && !rc && !o->noise_only; i++) {
        int t = dn->ts[i], tp = i + 1 < dn->steps ? dn->ts[i + 1] : -1;
        if (model_eps(c, dn, o, win, x, t, eps, ld) < 0) {
            rc = -1;
            break;
        }
        size_t bad = count_nonfinite(eps, n);
        if (bad) {
            rc = lsdm_err("%zu NaN or Inf value(s) in the model's noise prediction (step %d of %d, t %d)",
                          bad, i + 1, dn->steps, t);
            break;
        }
        int stochastic = dn->ddpm ? t > 0 : dn->eta > 0 && tp >= 0;
        if (stochastic) lsdm_rng_fill_normal(noise, n, seed, (uint64_t)i + 1, 0);
        if (dn->ddpm) diffusion_ddpm_step(y, x, eps, stochastic ? noise : NULL, n, &dn->s, t, o->clip);
        else diffusion_ddim_step(y, x, eps, stochastic ? noise : NULL, n, &dn->s, t, tp, dn->eta, o->clip);
        memcpy(x, y, n * sizeof(float));
        lsdm_progress(i + 1, dn->steps, "steps");
    }
    lsdm_progress_end();
    free(eps), free(noise), free(y);
    if (!rc && count_nonfinite(x, n)) rc = lsdm_err("NaN or Inf values in the sampled latent");
    return rc;
}

/* ------------------------------------------------------------ records */

/* The one-hot mask of record s and its latent grid, after the checks. */
static float *mask_onehot(const denoiser *dn, const lsdm_record *s, int64_t ld[3]) {
    int L = dn->m.cfg.label_nc, g = 1 << (dn->m.cfg.levels - 1);
    const int *f = dn->d.downsample;
    char ft[48], hw[48];
    vqgan_factors_format(f, ft);
    if (f[1] == f[2]) snprintf(hw, sizeof hw, "%d", f[1] * g);
    else snprintf(hw, sizeof hw, "%d and %d", f[1] * g, f[2] * g);
    int64_t dim[3];
    float *seg = semantic_onehot(s, L, NULL, dim);
    if (!seg) return NULL;
    size_t bad = count_nonfinite(seg, (size_t)L * (size_t)(dim[0] * dim[1] * dim[2]));
    const char *why = NULL;
    char buf[320];
    if (bad) {
        snprintf(buf, sizeof buf, "%zu NaN or Inf value(s) in the mask", bad);
        why = buf;
    } else if (dim[0] % f[0] || dim[1] % f[1] || dim[2] % f[2]) {
        snprintf(buf, sizeof buf, "mask %lldx%lldx%lld is not a multiple of the latent downsampling %s",
                 (long long)dim[0], (long long)dim[1], (long long)dim[2], ft);
        why = buf;
    } else if ((dim[1] / f[1]) % g || (dim[2] / f[2]) % g) {
        snprintf(buf, sizeof buf, "mask %lldx%lldx%lld: height and width must be multiples of %s "
                 "(latent downsampling %s x 2^%d for the UNet's %d levels)", (long long)dim[0],
                 (long long)dim[1], (long long)dim[2], hw, ft, dn->m.cfg.levels - 1, dn->m.cfg.levels);
        why = buf;
    }
    if (why) {
        lsdm_err("%s", why);
        free(seg);
        return NULL;
    }
    for (int a = 0; a < 3; a++) ld[a] = dim[a] / f[a];
    return seg;
}

/* The latent record of sample k: data, the mask's keys and geometry. */
static int latent_record(lsdm_record *out, const denoiser *dn, const den_opts *o, const lsdm_record *mask,
                         const char *name, long k, const float *x, const int64_t ld[3]) {
    int C = dn->m.cfg.channels;
    const int *f = dn->d.downsample;
    char ft[48];
    int64_t shape[4] = {C, ld[0], ld[1], ld[2]};
    int rc = lsdm_record_alloc(out, LSDM_F32, 4, shape);
    if (!rc) memcpy(out->data, x, lsdm_record_numel(out) * sizeof(float));
    if (!rc) rc = lsdm_record_copy_keys(out, mask);
    for (size_t i = 0; i < sizeof MASK_KEYS / sizeof *MASK_KEYS; i++) lsdm_record_del(out, MASK_KEYS[i]);
    if (!rc) rc = o->named_samples ? lsdm_record_setf(out, "name", "%s-s%ld", name, k)
                                   : lsdm_record_set(out, "name", name);
    if (!rc) rc = lsdm_record_set(out, "role", "latent");
    if (!rc) rc = lsdm_record_set(out, "latent", "prequant");
    if (!rc) rc = lsdm_record_set(out, "vq-factor", vqgan_factors_format(f, ft));
    if (!rc && dn->d.vq_model[0]) rc = lsdm_record_set(out, "vq-model", dn->d.vq_model);
    if (!rc) rc = lsdm_record_setf(out, "image-shape", "%lld,%lld,%lld", (long long)(ld[0] * f[0]),
                                   (long long)(ld[1] * f[1]), (long long)(ld[2] * f[2]));
    if (!rc) rc = vq_geometry_to_latent(out, mask, f);
    char prov[256], eta[40] = "";
    if (o->sampler == SAMPLER_DDIM && o->eta != 0) snprintf(eta, sizeof eta, " eta=%g", o->eta);
    if (o->noise_only)
        snprintf(prov, sizeof prov, "ldm-denoise/" LSDM_VERSION " baseline=noise seed=%llu sample=%ld",
                 (unsigned long long)o->seed, k);
    else snprintf(prov, sizeof prov, "ldm-denoise/" LSDM_VERSION " %s steps=%d%s guidance=%g%s%s seed=%llu sample=%ld",
             o->sampler == SAMPLER_DDPM ? "ddpm" : "ddim", dn->steps, eta, o->guidance,
             o->mode == DIFFUSION_GUIDE_REFERENCE ? " guidance-mode=reference" : "",
             o->clip ? "" : " no-clip", (unsigned long long)o->seed, k);
    if (!rc) rc = lsdm_record_add_provenance(out, prov);
    return rc;
}

typedef struct {
    nn_ctx c, fc;   /* the step's tensors; a record's mask features */
    dn_null nf;     /* the null mask's features */
} dn_ctx;

/* Every sample of one mask record into w. */
static int denoise_record(lsdm_writer *w, dn_ctx *cx, const denoiser *dn, const den_opts *o,
                          const lsdm_record *mask, long index, const char *name) {
    int64_t ld[3];
    float *seg = mask_onehot(dn, mask, ld), *x = NULL;
    if (!seg) return -1;
    dn_windows win;
    int rc = windows_plan(&win, (int)ld[0], dn->d.train_shape[0]);
    if (rc) {
        free(seg);
        return -1;
    }
    const int *f = dn->d.downsample;
    lsdm_verbose("%s: mask %lldx%lldx%lld -> latent %dx%lldx%lldx%lld, %d window(s) of %d slice(s), "
                 "%ld sample(s)", name, (long long)ld[0] * f[0], (long long)ld[1] * f[1],
                 (long long)ld[2] * f[2],
                 dn->m.cfg.channels, (long long)ld[0], (long long)ld[1], (long long)ld[2], win.p.n,
                 win.p.D, o->samples);
    rc = o->noise_only ? 0 : windows_encode(&win, &cx->fc, &cx->nf, dn, seg, ld);
    free(seg);
    size_t n = (size_t)dn->m.cfg.channels * (size_t)(ld[0] * ld[1] * ld[2]);
    if (!rc && !(x = malloc(n * sizeof(float)))) rc = lsdm_err("out of memory");
    uint64_t rseed = lsdm_rng_derive(o->seed, (uint64_t)(o->first_index + index), SEED_RECORD);
    lsdm_record out;
    lsdm_record_init(&out);
    for (long k = 0; k < o->samples && !rc; k++) {
        rc = sample_latent(&cx->c, dn, o, &win, lsdm_rng_derive(rseed, (uint64_t)k, SEED_SAMPLE), x, ld);
        if (!rc) ldm_denormalize(x, n, &dn->d);
        if (!rc) rc = latent_record(&out, dn, o, mask, name, k, x, ld);
        if (!rc) rc = lsdm_writer_put(w, &out);
        lsdm_record_free(&out);
    }
    free(x);
    windows_free(&win);
    nn_ctx_reset(&cx->fc);
    return rc;
}

static int denoise_input(lsdm_writer *w, const denoiser *dn, const den_opts *o, lsdm_reader *rd) {
    lsdm_record mask;
    lsdm_record_init(&mask);
    dn_ctx cx;
    memset(&cx, 0, sizeof cx);
    nn_ctx_init(&cx.c, 0);
    nn_ctx_init(&cx.fc, 0);
    nn_ctx_init(&cx.nf.c, 0);
    int rc;
    long index = 0;
    while ((rc = lsdm_reader_next(rd, &mask)) == 1) {
        char name[128];
        const char *nm = lsdm_record_get(&mask, "name");
        if (nm) snprintf(name, sizeof name, "%s", nm);
        else snprintf(name, sizeof name, "mask-%04ld", o->first_index + index);
        if (denoise_record(w, &cx, dn, o, &mask, index, name) < 0) {
            rc = lsdm_err_ctx("%s", name);
            break;
        }
        index++;
    }
    nn_ctx_free(&cx.c);
    nn_ctx_free(&cx.fc);
    nn_ctx_free(&cx.nf.c);
    lsdm_record_free(&mask);
    return rc < 0 ? -1 : 0;
}

int main(int argc, char **argv) {
    lsdm_cli_init("ldm-denoise", argv);
    den_opts o = {0};
    o.samples = 1, o.clip = 1, o.guidance = 1.5;
    int first = 1, rc = parse_args(argc, argv, &o, &first);
    if (rc >= 0) return rc;

    lsdm_device dev;
    if (lsdm_cli_engine_setup(&dev)) return lsdm_fail();
    lsdm_verbose("device %s%s", lsdm_device_name(dev),
                 dev == LSDM_DEVICE_CUDA ? " (the UNet runs on the CPU kernels for now)" : "");
    denoiser dn;
    if (denoiser_open(&dn, &o)) return lsdm_fail();
    lsdm_reader *rd = lsdm_reader_open(first < argc ? argv[first] : "-");
    lsdm_writer *w = rd ? lsdm_writer_open(o.out, lsdm_opt.level, lsdm_opt.force) : NULL;
    rc = w ? denoise_input(w, &dn, &o, rd) : -1;
    if (w && !rc) rc = lsdm_writer_close(w);
    else if (w) lsdm_writer_abort(w);
    if (rd) lsdm_reader_close(rd);
    denoiser_free(&dn);
    return rc ? lsdm_fail() : 0;
}
