/* Latent diffusion checkpoints: the UNet plus the "diffusion" metadata. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kvtext.h"
#include "ldm.h"
#include "safetensors.h"
#include "vqgan.h"

void ldm_diffusion_defaults(ldm_diffusion_config *d) {
    memset(d, 0, sizeof *d);
    d->timesteps = 500;
    d->latent_min = -1, d->latent_max = 1;
    d->cond_drop = 0.1;
    d->downsample[0] = d->downsample[1] = d->downsample[2] = 4;
    d->train_shape[0] = 8, d->train_shape[1] = d->train_shape[2] = 64;
}

const char *ldm_diffusion_text(const ldm_diffusion_config *d) {
    static char buf[512];
    char f[48];
    snprintf(buf, sizeof buf,
             "timesteps = %d\nschedule = cosine\nobjective = eps\nloss = %s\nlatent_min = %.9g\n"
             "latent_max = %.9g\nvq_model = %s\nnull_mask = zeros\ncond_drop = %.9g\ndownsample = %s\n"
             "train_shape = %d,%d,%d\n",
             d->timesteps, d->loss_l2 ? "l2" : "l1", d->latent_min, d->latent_max,
             d->vq_model[0] ? d->vq_model : "none", d->cond_drop, vqgan_factors_format(d->downsample, f),
             d->train_shape[0], d->train_shape[1], d->train_shape[2]);
    return buf;
}

static int parse_real(const char *v, double *out) {
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || !isfinite(x)) return -1;
    *out = x;
    return 0;
}

/* 0 ok, -1 bad value, -2 unknown key */
static int set_key(void *ctx, const char *k, const char *v) {
    ldm_diffusion_config *d = ctx;
    double x;
    if (!strcmp(k, "timesteps")) {
        if (parse_real(v, &x) < 0 || x != floor(x) || x < 1 || x > 100000) return -1;
        d->timesteps = (int)x;
        return 0;
    }
    if (!strcmp(k, "schedule")) return strcmp(v, "cosine") ? -1 : 0;
    if (!strcmp(k, "objective")) return strcmp(v, "eps") ? -1 : 0;
    if (!strcmp(k, "null_mask")) return strcmp(v, "zeros") ? -1 : 0;
    if (!strcmp(k, "loss")) {
        if (strcmp(v, "l1") && strcmp(v, "l2")) return -1;
        d->loss_l2 = !strcmp(v, "l2");
        return 0;
    }
    if (!strcmp(k, "latent_min")) return parse_real(v, &d->latent_min);
    if (!strcmp(k, "latent_max")) return parse_real(v, &d->latent_max);
    if (!strcmp(k, "cond_drop")) return parse_real(v, &d->cond_drop) < 0 || d->cond_drop < 0 || d->cond_drop > 1 ? -1 : 0;
    if (!strcmp(k, "downsample")) {
        int f[3];
        if (vqgan_factors_parse(v, f) < 0 || f[0] > 64 || f[1] > 64 || f[2] > 64) return -1;
        memcpy(d->downsample, f, sizeof f);
        return 0;
    }
    if (!strcmp(k, "train_shape")) {
        int a, b, c;
        char extra;
        if (sscanf(v, "%d,%d,%d%c", &a, &b, &c, &extra) != 3 || a < 1 || b < 1 || c < 1 || a > 65536 ||
            b > 65536 || c > 65536)
            return -1;
        d->train_shape[0] = a, d->train_shape[1] = b, d->train_shape[2] = c;
        return 0;
    }
    if (!strcmp(k, "vq_model")) {
        if (!strcmp(v, "none")) {
            d->vq_model[0] = 0;
            return 0;
        }
        if (strlen(v) != 16 || strspn(v, "0123456789abcdef") != 16) return -1;
        memcpy(d->vq_model, v, 17);
        return 0;
    }
    return -2;
}

int ldm_diffusion_parse(ldm_diffusion_config *d, const char *text) {
    ldm_diffusion_defaults(d);
    int rc = kv_parse(text, "diffusion", set_key, d);
    if (rc == 0 && !(d->latent_max > d->latent_min))
        rc = lsdm_err("diffusion: latent_max %g is not above latent_min %g", d->latent_max, d->latent_min);
    return rc;
}

/* The reference: ((z - min) / (max - min)) * 2 - 1, and back. */
void ldm_normalize(float *z, size_t n, const ldm_diffusion_config *d) {
    double lo = d->latent_min, s = 2.0 / (d->latent_max - d->latent_min);
    for (size_t i = 0; i < n; i++) z[i] = (float)((z[i] - lo) * s - 1.0);
}

void ldm_denormalize(float *z, size_t n, const ldm_diffusion_config *d) {
    double lo = d->latent_min, s = (d->latent_max - d->latent_min) / 2.0;
    for (size_t i = 0; i < n; i++) z[i] = (float)((z[i] + 1.0) * s + lo);
}

int ldm_load(unet *m, ldm_diffusion_config *d, const char *path, const char *config, ckpt_meta *meta) {
    ckpt_meta own = {0};
    ckpt_meta *mm = meta ? meta : &own;
    if (unet_load(m, path, config, mm) < 0) return -1;
    const char *text = ckpt_meta_get(mm, "diffusion");
    int rc = text ? ldm_diffusion_parse(d, text)
                  : lsdm_err("%s is no diffusion checkpoint (no 'diffusion' metadata; made by ldm-train)", path);
    if (rc < 0 && text) lsdm_err_ctx("%s", path);
    ckpt_meta_free(&own);
    if (rc < 0) {
        if (meta) ckpt_meta_free(meta);
        unet_free(m);
        return -1;
    }
    return 0;
}

int ldm_save(const unet *m, const ldm_diffusion_config *d, const char *path, const ckpt_meta *extra) {
    ckpt_meta meta = {0};
    int rc = ckpt_meta_copy(&meta, extra);
    if (rc == 0) rc = ckpt_meta_set(&meta, "diffusion", ldm_diffusion_text(d));
    if (rc == 0) rc = unet_save(m, path, &meta);
    ckpt_meta_free(&meta);
    return rc;
}
