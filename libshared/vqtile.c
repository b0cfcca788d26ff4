/* Tiles, blending, latent geometry and the model digest (vqtile.h). */
#include "vqtile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "err.h"

int vq_tiling_init(vq_tiling *t, const int64_t dim[3], const int64_t tile[3], int overlap) {
    memset(t, 0, sizeof *t);
    t->overlap = overlap;
    for (int a = 0; a < 3; a++) {
        if (tile[a] < 1) return lsdm_err("a tile must hold at least one latent voxel per axis");
        t->dim[a] = dim[a];
        t->tile[a] = tile[a] < dim[a] ? tile[a] : dim[a];
        t->count[a] = (int)((dim[a] + t->tile[a] - 1) / t->tile[a]);
    }
    return 0;
}

int vq_tiling_count(const vq_tiling *t) { return t->count[0] * t->count[1] * t->count[2]; }

void vq_tiling_get(const vq_tiling *t, int i, int64_t off[3], int64_t size[3]) {
    int k[3] = {i / (t->count[1] * t->count[2]), i / t->count[2] % t->count[1], i % t->count[2]};
    for (int a = 0; a < 3; a++) {
        int64_t s = k[a] * t->tile[a], e = s + t->tile[a];
        if (e > t->dim[a]) e = t->dim[a];
        s = s - t->overlap > 0 ? s - t->overlap : 0; /* grown where there is a neighbour */
        e = e + t->overlap < t->dim[a] ? e + t->overlap : t->dim[a];
        off[a] = s, size[a] = e - s;
    }
}

int vq_blend_init(vq_blend *b, int C, const int64_t dim[3], const int scale[3]) {
    memset(b, 0, sizeof *b);
    b->C = C;
    for (int a = 0; a < 3; a++) b->scale[a] = scale[a];
    memcpy(b->dim, dim, sizeof b->dim);
    size_t n = (size_t)(dim[0] * dim[1] * dim[2]);
    b->acc = calloc((size_t)C * n, sizeof(float));
    b->wsum = calloc(n, sizeof(float));
    if (!b->acc || !b->wsum) {
        vq_blend_free(b);
        return lsdm_err("out of memory for a %dx%lldx%lldx%lld output", C, (long long)dim[0],
                        (long long)dim[1], (long long)dim[2]);
    }
    return 0;
}

/* The ramp of one axis of one window, n = size*scale values: rising over
 * the first R = 2 overlap scale voxels (that axis's scale) if it has a neighbour before,
 * falling over the last R if it has one after; 1 elsewhere. Two
 * neighbours share exactly R voxels, where their ramps sum to 1. */
static void tile_ramp(float *r, int64_t n, int64_t R, int before, int after) {
    for (int64_t p = 0; p < n; p++) {
        double w = 1;
        if (before && p < R) w = ((double)p + 0.5) / (double)R;
        if (after && n - 1 - p < R) {
            double v = ((double)(n - 1 - p) + 0.5) / (double)R;
            if (v < w) w = v;
        }
        r[p] = (float)w;
    }
}

int vq_blend_add(vq_blend *b, const vq_tiling *t, int i, const float *y) {
    int64_t off[3], size[3], n[3], o[3];
    vq_tiling_get(t, i, off, size);
    for (int a = 0; a < 3; a++) n[a] = size[a] * b->scale[a], o[a] = off[a] * b->scale[a];
    float *r = malloc((size_t)(n[0] + n[1] + n[2]) * sizeof(float));
    if (!r) return lsdm_err("out of memory");
    float *rd = r, *rh = r + n[0], *rw = rh + n[1], *ramp[3] = {rd, rh, rw};
    for (int a = 0; a < 3; a++)
        tile_ramp(ramp[a], n[a], 2 * (int64_t)t->overlap * b->scale[a], off[a] > 0,
                  off[a] + size[a] < t->dim[a]);
    size_t S = (size_t)(b->dim[0] * b->dim[1] * b->dim[2]), s = (size_t)(n[0] * n[1] * n[2]);
    #pragma omp parallel for collapse(2)
    for (int64_t d = 0; d < n[0]; d++)
        for (int64_t h = 0; h < n[1]; h++) {
            size_t dst = (size_t)(((o[0] + d) * b->dim[1] + o[1] + h) * b->dim[2] + o[2]);
            size_t src = (size_t)((d * n[1] + h) * n[2]);
            float wdh = rd[d] * rh[h];
            for (int64_t w = 0; w < n[2]; w++) {
                float wt = wdh * rw[w];
                b->wsum[dst + (size_t)w] += wt;
                for (int c = 0; c < b->C; c++)
                    b->acc[(size_t)c * S + dst + (size_t)w] += wt * y[(size_t)c * s + src + (size_t)w];
            }
        }
    free(r);
    return 0;
}

void vq_blend_finish(vq_blend *b) {
    size_t S = (size_t)(b->dim[0] * b->dim[1] * b->dim[2]);
    #pragma omp parallel for
    for (size_t i = 0; i < S; i++)
        for (int c = 0; c < b->C; c++) b->acc[(size_t)c * S + i] /= b->wsum[i];
}

void vq_blend_free(vq_blend *b) {
    free(b->acc);
    free(b->wsum);
    b->acc = b->wsum = NULL;
}

void vq_window_copy(float *dst, const float *src, int C, const int64_t dim[3],
                    const int64_t off[3], const int64_t size[3]) {
    for (int c = 0; c < C; c++)
        for (int64_t d = 0; d < size[0]; d++)
            for (int64_t h = 0; h < size[1]; h++)
                memcpy(dst + (size_t)(((c * size[0] + d) * size[1] + h) * size[2]),
                       src + (size_t)((((c * dim[0]) + off[0] + d) * dim[1] + off[1] + h) * dim[2] + off[2]),
                       (size_t)size[2] * sizeof(float));
}

/* Column j of the affine times f[j]; origin += sign * sum_j (f[j]-1)/2 *
 * (image-side column j). The same expression both ways, so that the
 * decoder gives back the encoder's input in the common (axis-aligned)
 * cases. */
/* sum_j (f[j]-1)/2 * row[j], written as h * (row0 + row1 + row2) when the
 * factors are equal (the form every isotropic latent was made with). */
static double half_block_shift(const double row[3], const int f[3]) {
    if (f[1] == f[0] && f[2] == f[0]) return (f[0] - 1) / 2.0 * (row[0] + row[1] + row[2]);
    double s = 0;
    for (int j = 0; j < 3; j++) s += (f[j] - 1) / 2.0 * row[j];
    return s;
}

static int geometry_map(lsdm_record *dst, const lsdm_record *src, const int f[3], int to_latent) {
    double a[16], sp[3];
    int ha = lsdm_record_get_affine(src, a), hs = lsdm_record_get_spacing(src, sp);
    if (ha < 0 || hs < 0) return -1;
    if (ha) {
        for (int i = 0; i < 3; i++) {
            double *row = a + 4 * i;
            if (!to_latent)
                for (int j = 0; j < 3; j++) row[j] /= f[j];
            double shift = half_block_shift(row, f);
            row[3] += to_latent ? shift : -shift;
            if (to_latent)
                for (int j = 0; j < 3; j++) row[j] *= f[j];
        }
        if (lsdm_record_set_affine(dst, a)) return -1;
    }
    if (hs) {
        for (int j = 0; j < 3; j++) sp[j] = to_latent ? sp[j] * f[j] : sp[j] / f[j];
        if (lsdm_record_set_spacing(dst, sp)) return -1;
    }
    return 0;
}

int vq_geometry_to_latent(lsdm_record *dst, const lsdm_record *src, const int f[3]) {
    return geometry_map(dst, src, f, 1);
}

int vq_geometry_to_image(lsdm_record *dst, const lsdm_record *src, const int f[3]) {
    return geometry_map(dst, src, f, 0);
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

void vq_model_digest(const vqgan *m, char out[17]) {
    const char *cfg = vqgan_config_text(&m->cfg);
    uint64_t h = fnv1a(0xcbf29ce484222325ULL, cfg, strlen(cfg));
    h = fnv1a(h, m->emb->data, m->emb->n * sizeof(float));
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

int vq_model_open(vqgan *m, const char *path, const char *config, char digest[17],
                  const char **line) {
    static char buf[256];
    if (vqgan_load(m, path, config, NULL) < 0) return -1;
    vq_model_digest(m, digest);
    const vqgan_config *c = &m->cfg;
    if (c->spade)
        snprintf(buf, sizeof buf, "model %s: %s, n_hiddens %d, factor %s, %d image channel(s), "
                 "%d codes of dim %d, SPADE decoder (%d classes, hidden %d)", digest,
                 path, c->n_hiddens, vqgan_factor_text(c), c->image_channels, c->n_codes,
                 c->embedding_dim, c->label_nc, c->spade_hidden);
    else
        snprintf(buf, sizeof buf, "model %s: %s, n_hiddens %d, factor %s, %d image channel(s), "
                 "%d codes of dim %d, plain decoder", digest, path, c->n_hiddens,
                 vqgan_factor_text(c), c->image_channels, c->n_codes, c->embedding_dim);
    *line = buf;
    return 0;
}

int vq_program_open(vqgan *m, const char *path, const char *config, const int64_t tile[3],
                    char digest[17]) {
    lsdm_device dev;
    if (lsdm_cli_engine_setup(&dev)) return -1;
    lsdm_verbose("device %s%s", lsdm_device_name(dev),
                 dev == LSDM_DEVICE_CUDA ? " (the VQ-GAN runs on the CPU kernels for now)" : "");
    const char *line;
    if (vq_model_open(m, path, config, digest, &line)) return -1;
    lsdm_verbose("%s", line);
    const int *f = m->cfg.downsample;
    if (tile[0] % f[0] || tile[1] % f[1] || tile[2] % f[2]) {
        int rc = lsdm_err("--tile: sizes must be multiples of the model's downsampling %s",
                          vqgan_factor_text(&m->cfg));
        vqgan_free(m);
        return rc;
    }
    return 0;
}

int vq_tile_option(int is_tile, const char *arg, int64_t tile[3], int *overlap) {
    int nd;
    long v;
    if (is_tile) {
        if (lsdm_shape_parse(arg, &nd, tile) || nd != 3) return lsdm_err("--tile: '%s' is not DxHxW", arg);
        return 0;
    }
    if (lsdm_parse_long(arg, 0, 1 << 20, &v)) return lsdm_err_ctx("--overlap");
    *overlap = (int)v;
    return 0;
}

float *vq_blend_take(vq_blend *b, int rc) {
    float *v = NULL;
    if (rc == 0) {
        vq_blend_finish(b);
        v = b->acc;
        b->acc = NULL;
    }
    vq_blend_free(b);
    return v;
}
