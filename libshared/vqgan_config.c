/* VQ-GAN configurations: the named ones and the `key = value` text. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kvtext.h"
#include "vqgan.h"

int vqgan_config_named(vqgan_config *cfg, const char *name) {
    /* med-lsdm: the reference run (Med-LSDM vqgan.sh, DESIGN.md). */
    vqgan_config ref = {
        .n_hiddens = 16, .downsample = {4, 4, 4}, .image_channels = 1, .embedding_dim = 8,
        .n_codes = 16384, .num_groups = 32, .pad_mode = CONV3D_PAD_REPLICATE, .spade = 0,
        .label_nc = 5, .spade_hidden = 128, .spade_groups = 8, .disc_channels = 64,
        .disc_layers = 3,
    };
    *cfg = ref;
    if (!strcmp(name, "med-lsdm")) return 0;
    if (!strcmp(name, "med-lsdm-spade")) {
        cfg->spade = 1;
        return 0;
    }
    /* tiny: the same layout at a width that trains on phantoms on 2 cores
     * in minutes, halving each axis once (f 2). At f 4 a latent cell spans
     * 4 slices 2 mm apart, each with its own skin contour: with 10 bits per
     * cell the tiny width stayed at 26-28.5 dB on held-out phantoms however
     * long it trained (8000 steps); f 2 reaches 32 dB in 2000 steps.
     * tiny-f4 keeps the method's f 4 for a diffusion model: it samples 8x
     * fewer latent voxels (a 32x256x256 mask: 8 s against 120 s). */
    static const struct { const char *name; int f, spade; } tiny[] = {
        {"tiny", 2, 0}, {"tiny-spade", 2, 1}, {"tiny-f4", 4, 0}, {"tiny-f4-spade", 4, 1},
    };
    for (size_t i = 0; i < sizeof tiny / sizeof tiny[0]; i++) {
        if (strcmp(name, tiny[i].name)) continue;
        for (int a = 0; a < 3; a++) cfg->downsample[a] = tiny[i].f;
        cfg->n_hiddens = 8;
        cfg->n_codes = 1024;
        cfg->num_groups = 8;
        cfg->spade_hidden = 16;
        cfg->disc_channels = 16;
        cfg->spade = tiny[i].spade;
        return 0;
    }
    return lsdm_err("unknown model config '%s' (med-lsdm, med-lsdm-spade, tiny, tiny-spade, "
                    "tiny-f4, tiny-f4-spade, or a file)", name);
}

static int parse_int(const char *v, int *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end || x < 0 || x > 1 << 24) return -1;
    *out = (int)x;
    return 0;
}

static int set_key(void *ctx, const char *k, const char *v) {
    vqgan_config *c = ctx;
    struct { const char *key; int *dst; } ints[] = {
        {"n_hiddens", &c->n_hiddens}, {"image_channels", &c->image_channels},
        {"embedding_dim", &c->embedding_dim}, {"n_codes", &c->n_codes},
        {"num_groups", &c->num_groups}, {"label_nc", &c->label_nc},
        {"spade_hidden", &c->spade_hidden}, {"spade_groups", &c->spade_groups},
        {"disc_channels", &c->disc_channels}, {"disc_layers", &c->disc_layers},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (!strcmp(k, ints[i].key)) return parse_int(v, ints[i].dst);
    if (!strcmp(k, "model")) return strcmp(v, "vqgan") ? -1 : 0;
    if (!strcmp(k, "downsample")) return vqgan_factors_parse(v, c->downsample);
    if (!strcmp(k, "padding_type")) {
        if (!strcmp(v, "replicate")) c->pad_mode = CONV3D_PAD_REPLICATE;
        else if (!strcmp(v, "zeros") || !strcmp(v, "constant")) c->pad_mode = CONV3D_PAD_ZERO;
        else return -1;
        return 0;
    }
    if (!strcmp(k, "decoder")) {
        if (!strcmp(v, "plain")) c->spade = 0;
        else if (!strcmp(v, "spade")) c->spade = 1;
        else return -1;
        return 0;
    }
    /* "base = tiny" first: the named config, then the lines after it change it */
    if (!strcmp(k, "base")) return vqgan_config_named(c, v) < 0 ? -3 : 0;
    return -2;
}

int vqgan_config_parse(vqgan_config *cfg, const char *text) {
    return kv_parse(text, "config", set_key, cfg) < 0 ? -1 : vqgan_config_check(cfg);
}

int vqgan_config_load(vqgan_config *cfg, const char *name_or_path) {
    if (!strchr(name_or_path, '/') && !strchr(name_or_path, '.'))
        return vqgan_config_named(cfg, name_or_path);
    char text[16384];
    if (kv_read_file(name_or_path, text, sizeof text) < 0) return -1;
    vqgan_config_named(cfg, "med-lsdm");
    if (vqgan_config_parse(cfg, text) < 0) return lsdm_err_ctx("%s", name_or_path);
    return 0;
}

const char *vqgan_config_text(const vqgan_config *c) {
    static char buf[1024];
    snprintf(buf, sizeof buf,
             "model = vqgan\nn_hiddens = %d\ndownsample = %d,%d,%d\nimage_channels = %d\n"
             "embedding_dim = %d\nn_codes = %d\nnum_groups = %d\npadding_type = %s\n"
             "decoder = %s\nlabel_nc = %d\nspade_hidden = %d\nspade_groups = %d\n"
             "disc_channels = %d\ndisc_layers = %d\n",
             c->n_hiddens, c->downsample[0], c->downsample[1], c->downsample[2],
             c->image_channels, c->embedding_dim, c->n_codes, c->num_groups,
             c->pad_mode == CONV3D_PAD_REPLICATE ? "replicate" : "zeros",
             c->spade ? "spade" : "plain", c->label_nc, c->spade_hidden, c->spade_groups,
             c->disc_channels, c->disc_layers);
    return buf;
}

int vqgan_factor(const vqgan_config *cfg, int axis) {
    return cfg->downsample[axis];
}

int vqgan_isotropic(const vqgan_config *cfg) {
    return cfg->downsample[1] == cfg->downsample[0] && cfg->downsample[2] == cfg->downsample[0];
}

int vqgan_factors_parse(const char *text, int f[3]) {
    int v[3];
    char extra;
    int n = sscanf(text, "%d,%d,%d%c", &v[0], &v[1], &v[2], &extra);
    if (n == 1 && sscanf(text, "%d%c", &v[0], &extra) == 1) v[1] = v[2] = v[0];
    else if (n != 3) return -1;
    for (int a = 0; a < 3; a++)
        if (v[a] < 1 || v[a] > 1 << 10) return -1;
    for (int a = 0; a < 3; a++) f[a] = v[a];
    return 0;
}

const char *vqgan_factors_format(const int f[3], char buf[48]) {
    if (f[1] == f[0] && f[2] == f[0]) snprintf(buf, 48, "%d", f[0]);
    else snprintf(buf, 48, "%d,%d,%d", f[0], f[1], f[2]);
    return buf;
}

const char *vqgan_factor_text(const vqgan_config *c) {
    static char buf[48];
    return vqgan_factors_format(c->downsample, buf);
}

int vqgan_config_check(const vqgan_config *c) {
    int f = 1; /* the largest factor: the encoder's top width is n_hiddens * f */
    for (int a = 0; a < 3; a++) {
        int fa = c->downsample[a];
        if (fa < 1 || (fa & (fa - 1)) || fa > 1 << (VQ_MAX_STAGES - 1))
            return lsdm_err("config: downsample %d is not a power of 2 up to %d", fa,
                            1 << (VQ_MAX_STAGES - 1));
        if (fa > f) f = fa;
    }
    if (c->n_hiddens < 1 || c->image_channels < 1 || c->embedding_dim < 1 || c->n_codes < 1)
        return lsdm_err("config: n_hiddens, image_channels, embedding_dim and n_codes must be positive");
    int top = c->n_hiddens * f;
    if (c->num_groups < 1 || top % c->num_groups || (f > 1 && (2 * c->n_hiddens) % c->num_groups))
        return lsdm_err("config: num_groups %d does not divide the encoder/decoder widths",
                        c->num_groups);
    if (c->spade && (c->label_nc < 1 || c->spade_hidden < 1 || c->spade_groups < 1 ||
                     top % c->spade_groups || (2 * c->n_hiddens) % c->spade_groups))
        return lsdm_err("config: label_nc, spade_hidden, spade_groups do not fit the decoder");
    if (c->disc_layers < 1 || c->disc_layers > VQ_MAX_STAGES - 2 || c->disc_channels < 1)
        return lsdm_err("config: disc_layers must be 1..%d and disc_channels positive",
                        VQ_MAX_STAGES - 2);
    return 0;
}
