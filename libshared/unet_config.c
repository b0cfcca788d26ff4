/* UNet configurations: the named ones and the `key = value` text. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kvtext.h"
#include "unet.h"

int unet_config_named(unet_config *cfg, const char *name) {
    /* med-lsdm: the reference run (Med-LSDM diffusion.sh: Unet3D_SPADE with
     * dim = diffusion_img_size 64, dim_mults 1,2,4,8, 8 latent channels,
     * segconv 1, spade_input_channel 8; heads, dim_head, groups, SPADE and
     * SegConv3D widths at their code defaults). label_nc 5: our masks'
     * classes with background (the reference's Duke run had 3). */
    unet_config ref = {
        .dim = 64, .dim_mults = {1, 2, 4, 8}, .levels = 4, .channels = 8, .label_nc = 5,
        .attn_heads = 8, .attn_dim_head = 32, .spatial_dim_head = 32, .init_kernel = 7,
        .groups = 8, .segconv = 1, .seg_hidden = {64, 128}, .spade_input_nc = 8,
        .spade_hidden = 128,
    };
    *cfg = ref;
    if (!strcmp(name, "med-lsdm")) return 0;
    /* tiny: the same layout at widths that train on phantom latents
     * (8x8x16x16) on 2 cores in minutes. */
    if (!strcmp(name, "tiny")) {
        int mults[3] = {1, 2, 4};
        memset(cfg->dim_mults, 0, sizeof cfg->dim_mults);
        memcpy(cfg->dim_mults, mults, sizeof mults);
        cfg->levels = 3;
        cfg->dim = 16;
        cfg->attn_heads = 2, cfg->attn_dim_head = 16, cfg->spatial_dim_head = 16;
        cfg->seg_hidden[0] = 16, cfg->seg_hidden[1] = 32;
        cfg->spade_hidden = 32;
        return 0;
    }
    return lsdm_err("unknown model config '%s' (med-lsdm, tiny, or a file)", name);
}

static int parse_int(const char *v, int *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end || x < 0 || x > 1 << 20) return -1;
    *out = (int)x;
    return 0;
}

/* "a,b,c" into at most max ints; the count, or -1. */
static int parse_list(const char *v, int *out, int max) {
    char buf[256];
    if (strlen(v) >= sizeof buf) return -1;
    strcpy(buf, v);
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*tok)) tok++;
        if (n == max || parse_int(tok, &out[n]) < 0) return -1;
        n++;
    }
    return n;
}

static int set_key(void *ctx, const char *k, const char *v) {
    unet_config *c = ctx;
    struct { const char *key; int *dst; } ints[] = {
        {"dim", &c->dim}, {"channels", &c->channels}, {"label_nc", &c->label_nc},
        {"attn_heads", &c->attn_heads}, {"attn_dim_head", &c->attn_dim_head},
        {"spatial_dim_head", &c->spatial_dim_head}, {"init_kernel", &c->init_kernel},
        {"groups", &c->groups}, {"segconv", &c->segconv}, {"spade_input_nc", &c->spade_input_nc},
        {"spade_hidden", &c->spade_hidden},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (!strcmp(k, ints[i].key)) return parse_int(v, ints[i].dst);
    if (!strcmp(k, "model")) {
        if (!strcmp(v, "unet")) return 0;
        lsdm_err("model '%s' is not a diffusion UNet (model = unet)", v);
        return -3;
    }
    if (!strcmp(k, "dim_mults")) {
        int m[UNET_MAX_LEVELS], n = parse_list(v, m, UNET_MAX_LEVELS);
        if (n < 1) return -1;
        memset(c->dim_mults, 0, sizeof c->dim_mults);
        memcpy(c->dim_mults, m, (size_t)n * sizeof *m);
        c->levels = n;
        return 0;
    }
    if (!strcmp(k, "seg_hidden")) return parse_list(v, c->seg_hidden, 2) == 2 ? 0 : -1;
    /* "base = tiny" first: the named config, then the lines after it change it */
    if (!strcmp(k, "base")) return unet_config_named(c, v) < 0 ? -3 : 0;
    return -2;
}

int unet_config_parse(unet_config *cfg, const char *text) {
    return kv_parse(text, "config", set_key, cfg) < 0 ? -1 : unet_config_check(cfg);
}

int unet_config_load(unet_config *cfg, const char *name_or_path) {
    if (!strchr(name_or_path, '/') && !strchr(name_or_path, '.'))
        return unet_config_named(cfg, name_or_path);
    char text[16384];
    if (kv_read_file(name_or_path, text, sizeof text) < 0) return -1;
    unet_config_named(cfg, "med-lsdm");
    if (unet_config_parse(cfg, text) < 0) return lsdm_err_ctx("%s", name_or_path);
    return 0;
}

const char *unet_config_text(const unet_config *c) {
    static char buf[1024];
    char mults[128] = "";
    for (int i = 0; i < c->levels; i++)
        snprintf(mults + strlen(mults), sizeof mults - strlen(mults), "%s%d", i ? "," : "",
                 c->dim_mults[i]);
    snprintf(buf, sizeof buf,
             "model = unet\ndim = %d\ndim_mults = %s\nchannels = %d\nlabel_nc = %d\n"
             "attn_heads = %d\nattn_dim_head = %d\nspatial_dim_head = %d\ninit_kernel = %d\n"
             "groups = %d\nsegconv = %d\nseg_hidden = %d,%d\nspade_input_nc = %d\n"
             "spade_hidden = %d\n",
             c->dim, mults, c->channels, c->label_nc, c->attn_heads, c->attn_dim_head,
             c->spatial_dim_head, c->init_kernel, c->groups, c->segconv, c->seg_hidden[0],
             c->seg_hidden[1], c->spade_input_nc, c->spade_hidden);
    return buf;
}

int unet_mask_channels(const unet_config *c) {
    return c->segconv ? c->spade_input_nc : c->label_nc;
}

int unet_config_check(const unet_config *c) {
    if (c->levels < 1 || c->levels > UNET_MAX_LEVELS)
        return lsdm_err("config: dim_mults needs 1 to %d levels", UNET_MAX_LEVELS);
    if (c->dim < 4 || c->dim % 2)
        return lsdm_err("config: dim %d must be even and at least 4 (the time embedding)", c->dim);
    for (int i = 0; i < c->levels; i++)
        if (c->dim_mults[i] < 1) return lsdm_err("config: dim_mults must be positive");
    if (c->channels < 1 || c->label_nc < 1 || c->attn_heads < 1 || c->spatial_dim_head < 1 ||
        c->spade_hidden < 1 || c->seg_hidden[0] < 1 || c->seg_hidden[1] < 1 ||
        (c->segconv && c->spade_input_nc < 1))
        return lsdm_err("config: channels, label_nc, heads and widths must be positive");
    if (c->attn_dim_head < 2 || c->attn_dim_head % 2)
        return lsdm_err("config: attn_dim_head %d must be even (rotary pairs)", c->attn_dim_head);
    if (c->init_kernel < 1 || c->init_kernel % 2 == 0)
        return lsdm_err("config: init_kernel %d must be odd", c->init_kernel);
    if (c->segconv != 0 && c->segconv != 1) return lsdm_err("config: segconv is 0 or 1");
    /* every GroupNorm: plain blocks on dim and dim*mult (and the final
     * block on dim), SPADE blocks on 2*dim*mult and their outputs, the
     * middle ones on the top width with UNET_MID_GROUPS */
    int g = c->groups, prev = c->dim, top = c->dim * c->dim_mults[c->levels - 1];
    if (g < 1 || c->dim % g) return lsdm_err("config: groups %d does not divide dim %d", g, c->dim);
    for (int i = 0; i < c->levels; i++) {
        int w = c->dim * c->dim_mults[i];
        if (w % g || (2 * w) % g || prev % g)
            return lsdm_err("config: groups %d does not divide the width %d", g, w);
        prev = w;
    }
    if (top % UNET_MID_GROUPS)
        return lsdm_err("config: the middle width %d is not a multiple of %d (the reference's "
                        "fixed groups there)", top, UNET_MID_GROUPS);
    return 0;
}
