/* vq-decode: VQ-GAN latents -> images.
 *
 * Per latent record: check it belongs to this model -> codebook vectors
 * (snapped prequant, quantised as is, or looked-up codes) -> decode in
 * overlapping tiles, blended, with the paired mask for a SPADE decoder ->
 * map [-1,1] to the wanted range -> an image record on the image grid. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "stream.h"
#include "vqgan.h"
#include "semantic.h"
#include "vqtile.h"

static const char HELP[] =
    "Usage: vq-decode [OPTION]... [INPUT]\n"
    "Decode VQ-GAN latents (vq-encode's or a diffusion model's output) into\n"
    "image volumes (role image, f32 C,D,H,W) on the image grid. INPUT: a\n"
    "latent stream ('-' or none: standard input).\n"
    "\n"
    "  -m, --model CKPT       VQ-GAN checkpoint (safetensors)\n"
    "      --config NAME|FILE model config for a checkpoint without one\n"
    "      --seg SEG          semantic stream paired record by record (one-hot,\n"
    "                         label_nc channels, or class indices): required by\n"
    "                         a SPADE decoder, refused by a plain one\n"
    "      --no-snap          decode prequant latents as they are (default: snap\n"
    "                         each vector to its nearest code first)\n"
    "      --range lo,hi      map the decoder's [-1,1] to [lo,hi]\n"
    "      --range source     ... to the range vq-encode rescaled from\n"
    "                         (default: keep [-1,1])\n"
    "      --force-model      decode latents of another VQ-GAN (vq-model key)\n"
    "      --tile DxHxW       tile size in image voxels, multiples of f\n"
    "                         (default 32x256x256, clipped to the volume)\n"
    "      --overlap N        latent voxels each tile grows by towards its\n"
    "                         neighbours, blended linearly (default 2)\n"
    "  -o FILE                output stream (default standard output)\n"
    LSDM_ENGINE_HELP LSDM_COMMON_HELP
    "\nExit status: 0 ok, 1 error (bad input, model or data), 2 usage error.\n";

enum {
    OPT_CONFIG = LSDM_OPT_FIRST_TOOL, OPT_SEG, OPT_NO_SNAP, OPT_RANGE, OPT_FORCE_MODEL,
    OPT_TILE, OPT_OVERLAP
};
enum { RANGE_KEEP, RANGE_GIVEN, RANGE_SOURCE };
/* Keys that describe a latent only: gone from the decoded image. */
static const char *const LATENT_KEYS[] = {"latent", "vq-factor", "vq-model", "source-range",
                                          "image-shape"};

typedef struct {
    const char *model, *config, *seg, *out;
    int snap, force_model, range;
    double lo, hi;
    int64_t tile[3];
    int overlap;
} dec_opts;

static int parse_range(const char *s, dec_opts *o) {
    if (!strcmp(s, "source")) return o->range = RANGE_SOURCE, 0;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    char *comma = strchr(buf, ',');
    if (!comma) return lsdm_err("'%s' is not lo,hi or source", s);
    *comma = 0;
    if (lsdm_parse_double(buf, &o->lo) || lsdm_parse_double(comma + 1, &o->hi))
        return lsdm_err("'%s' is not lo,hi or source", s);
    o->range = RANGE_GIVEN;
    return 0;
}

static int parse_args(int argc, char **argv, dec_opts *o, int *first) {
    static const struct option longopts[] = {
        LSDM_COMMON_LONGOPTS, LSDM_ENGINE_LONGOPTS,
        {"model", required_argument, 0, 'm'}, {"config", required_argument, 0, OPT_CONFIG},
        {"seg", required_argument, 0, OPT_SEG}, {"no-snap", no_argument, 0, OPT_NO_SNAP},
        {"range", required_argument, 0, OPT_RANGE},
        {"force-model", no_argument, 0, OPT_FORCE_MODEL},
        {"tile", required_argument, 0, OPT_TILE}, {"overlap", required_argument, 0, OPT_OVERLAP},
        {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, LSDM_COMMON_SHORTOPTS "j:m:o:", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': o->model = optarg; break;
        case OPT_CONFIG: o->config = optarg; break;
        case 'o': o->out = optarg; break;
        case OPT_SEG: o->seg = optarg; break;
        case OPT_NO_SNAP: o->snap = 0; break;
        case OPT_RANGE:
            if (parse_range(optarg, o)) return lsdm_usage_error("--range: %s", lsdm_err_msg());
            break;
        case OPT_FORCE_MODEL: o->force_model = 1; break;
        case OPT_TILE:
        case OPT_OVERLAP:
            if (vq_tile_option(c == OPT_TILE, optarg, o->tile, &o->overlap))
                return lsdm_usage_error("%s", lsdm_err_msg());
            break;
        LSDM_CLI_DEFAULT(c, HELP);
        }
    }
    if (!o->model) return lsdm_usage_error("no model: give -m CKPT");
    if (argc - optind > 1) return lsdm_usage_error("one INPUT at most");
    *first = optind;
    return -1;
}

/* ------------------------------------------------------------ inputs */

/* The latent's grid (latent voxels) and its codebook vectors zq (E, ld),
 * after checking that it is this model's. */
static float *latent_vectors(nn_ctx *c, const vqgan *m, const dec_opts *o, const char *digest,
                             const lsdm_record *in, int64_t ld[3]) {
    int E = m->cfg.embedding_dim, kf[3];
    const int *f = m->cfg.downsample;
    const char *kind = lsdm_record_get(in, "latent"), *key;
    int codes = kind ? !strcmp(kind, "codes") : !lsdm_dtype_is_float(in->dtype);
    if (kind && !codes && strcmp(kind, "prequant") && strcmp(kind, "quantized")) {
        lsdm_err("unknown latent kind '%.40s' (prequant, quantized or codes)", kind);
        return NULL;
    }
    if ((key = lsdm_record_get(in, "vq-model")) && strcmp(key, digest) && !o->force_model) {
        lsdm_err("latent of another VQ-GAN (vq-model %.40s, this model is %s; --force-model "
                 "decodes it anyway)", key, digest);
        return NULL;
    }
    if ((key = lsdm_record_get(in, "vq-factor")) &&
        (vqgan_factors_parse(key, kf) || memcmp(kf, f, sizeof kf))) {
        lsdm_err("latent of downsampling %.20s, the model's is %s", key, vqgan_factor_text(&m->cfg));
        return NULL;
    }
    /* codes: (d,h,w) or (1,d,h,w) integers; vectors: (E,d,h,w) floats */
    int nd = in->ndim;
    if (codes ? lsdm_dtype_is_float(in->dtype) || !(nd == 3 || (nd == 4 && in->shape[0] == 1))
              : !lsdm_dtype_is_float(in->dtype) || nd != 4) {
        lsdm_err("a %s latent is %s; this record is %s with %d dims", codes ? "codes" : "vector",
                 codes ? "integer d,h,w" : "float E,d,h,w", lsdm_dtype_name(in->dtype), nd);
        return NULL;
    }
    if (!codes && in->shape[0] != E) {
        lsdm_err("the latent has %lld channels, the model's codebook has dimension %d",
                 (long long)in->shape[0], E);
        return NULL;
    }
    for (int a = 0; a < 3; a++) ld[a] = in->shape[nd - 3 + a];
    if ((key = lsdm_record_get(in, "image-shape"))) {
        char want[96];
        snprintf(want, sizeof want, "%lld,%lld,%lld", (long long)(ld[0] * f[0]),
                 (long long)(ld[1] * f[1]), (long long)(ld[2] * f[2]));
        if (strcmp(key, want)) {
            lsdm_err("image-shape %.40s does not match the latent (%s)", key, want);
            return NULL;
        }
    }
    size_t S = (size_t)(ld[0] * ld[1] * ld[2]);
    float *zq = malloc((size_t)E * S * sizeof(float));
    int32_t *idx = malloc(S * sizeof(int32_t));
    int rc = zq && idx ? 0 : lsdm_err("out of memory");
    if (!rc && codes) {
        for (size_t i = 0; i < S && !rc; i++) {
            double v = lsdm_elem_get(in->data, in->dtype, i);
            if (v < 0 || v >= m->cfg.n_codes)
                rc = lsdm_err("code %.0f at %zu is outside the codebook (0..%d)", v, i, m->cfg.n_codes - 1);
            idx[i] = (int32_t)v;
        }
    } else if (!rc) {
        lsdm_convert_to_f32(zq, in->data, in->dtype, (size_t)E * S);
        size_t bad = 0;
        for (size_t i = 0; i < (size_t)E * S; i++) bad += !isfinite(zq[i]);
        if (bad) rc = lsdm_err("%zu NaN or Inf value(s) in the latent", bad);
        /* snapping: the reference's decode(quantize=True); quantized ones are codes already */
        codes = o->snap && !(kind && !strcmp(kind, "quantized"));
        if (!rc && codes) {
            nn_tensor *z = nn_tensor_wrap(c, zq, 1, E, (int)ld[0], (int)ld[1], (int)ld[2]);
            rc = vqgan_quantize(c, m, z, idx) != 0 ? -1 : 0;
        }
    }
    if (!rc && codes) {
        nn_tensor *t = vqgan_lookup(c, m, idx, 1, (int)ld[0], (int)ld[1], (int)ld[2]);
        if (t) memcpy(zq, t->data, t->n * sizeof(float));
        else rc = -1;
    }
    nn_ctx_reset(c);
    free(idx);
    if (rc) {
        free(zq);
        return NULL;
    }
    return zq;
}

/* ------------------------------------------------------------ decoding */

/* y (Ci, ld*f) <- the decoder over overlapping tiles of zq (E, ld) [+ seg]. */
static float *decode_tiled(nn_ctx *c, const vqgan *m, const dec_opts *o, const float *zq,
                           const float *seg, const int64_t ld[3]) {
    const int *f = m->cfg.downsample;
    int E = m->cfg.embedding_dim, L = m->cfg.label_nc;
    int64_t dim[3] = {ld[0] * f[0], ld[1] * f[1], ld[2] * f[2]}, lt[3];
    for (int a = 0; a < 3; a++) lt[a] = o->tile[a] / f[a];
    vq_tiling t;
    vq_blend b;
    if (vq_tiling_init(&t, ld, lt, o->overlap) < 0 ||
        vq_blend_init(&b, m->cfg.image_channels, dim, f) < 0)
        return NULL;
    int n = vq_tiling_count(&t), rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        int64_t off[3], size[3], io[3], is[3];
        vq_tiling_get(&t, i, off, size);
        for (int a = 0; a < 3; a++) io[a] = off[a] * f[a], is[a] = size[a] * f[a];
        nn_tensor *zt = nn_tensor_new(c, 1, E, (int)size[0], (int)size[1], (int)size[2]), *st = NULL;
        if (zt) vq_window_copy(zt->data, zq, E, ld, off, size);
        if (seg && (st = nn_tensor_new(c, 1, L, (int)is[0], (int)is[1], (int)is[2])))
            vq_window_copy(st->data, seg, L, dim, io, is);
        nn_tensor *y = vqgan_decode(c, m, zt, st);
        rc = nn_ctx_status(c) < 0 || !y ? -1 : vq_blend_add(&b, &t, i, y->data);
        nn_ctx_reset(c);
        lsdm_progress(i + 1, n, "tiles");
    }
    lsdm_progress_end();
    return vq_blend_take(&b, rc);
}

/* [-1,1] -> [lo,hi] as asked; source: the encoder's source-range key. */
static int map_range(const dec_opts *o, const lsdm_record *in, float *y, size_t n) {
    double lo = o->lo, hi = o->hi;
    if (o->range == RANGE_KEEP) return 0;
    if (o->range == RANGE_SOURCE) {
        const char *s = lsdm_record_get(in, "source-range");
        char *end;
        if (!s) return lsdm_err("--range source: the latent has no source-range key");
        lo = strtod(s, &end);
        if (*end != ',' || (hi = strtod(end + 1, &end), *end) || !isfinite(lo) || !isfinite(hi))
            return lsdm_err("malformed source-range '%.60s' (need lo,hi)", s);
    }
    /* the inverse of vq-encode's 2 (x - lo) / (hi - lo) - 1 */
    for (size_t i = 0; i < n; i++) y[i] = (float)(((double)y[i] + 1.0) * 0.5 * (hi - lo) + lo);
    return 0;
}

static int decode_record(nn_ctx *c, const vqgan *m, const dec_opts *o, const char *digest,
                         const lsdm_record *in, const lsdm_record *mask, lsdm_record *out) {
    const int *f = m->cfg.downsample;
    int Ci = m->cfg.image_channels;
    int64_t ld[3];
    float *zq = latent_vectors(c, m, o, digest, in, ld), *seg = NULL, *y = NULL;
    if (!zq) return -1;
    int64_t dim[3] = {ld[0] * f[0], ld[1] * f[1], ld[2] * f[2]}, shape[4] = {Ci, dim[0], dim[1], dim[2]};
    int rc = mask && !(seg = semantic_onehot(mask, m->cfg.label_nc, dim, NULL)) ? lsdm_err_ctx("--seg") : 0;
    if (!rc && !(y = decode_tiled(c, m, o, zq, seg, ld))) rc = -1;
    free(zq);
    free(seg);
    size_t n = (size_t)(Ci * dim[0] * dim[1] * dim[2]);
    if (!rc) rc = map_range(o, in, y, n);
    if (!rc) rc = lsdm_record_alloc(out, LSDM_F32, 4, shape);
    if (!rc) memcpy(out->data, y, n * sizeof(float));
    free(y);
    if (!rc) rc = lsdm_record_copy_keys(out, in);
    for (size_t k = 0; k < sizeof LATENT_KEYS / sizeof *LATENT_KEYS; k++) lsdm_record_del(out, LATENT_KEYS[k]);
    if (!rc) rc = lsdm_record_set(out, "role", "image");
    if (!rc) rc = vq_geometry_to_image(out, in, f);
    if (!rc) rc = lsdm_record_add_provenance(out, "vq-decode/" LSDM_VERSION);
    return rc;
}

/* Every latent of the input (with its mask from segs) into w. */
static int decode_input(lsdm_writer *w, const vqgan *m, const dec_opts *o, const char *digest,
                        lsdm_reader *rd, lsdm_reader *segs) {
    lsdm_record in, mask, out;
    lsdm_record_init(&in);
    lsdm_record_init(&mask);
    lsdm_record_init(&out);
    nn_ctx c;
    nn_ctx_init(&c, 0);
    int rc;
    while ((rc = lsdm_reader_next(rd, &in)) == 1) {
        const char *name = lsdm_record_get(&in, "name");
        int sr = segs ? lsdm_reader_next(segs, &mask) : 1;
        if (sr == 0) lsdm_err("--seg: the mask stream ended before the latents");
        lsdm_verbose("%s: decoding", name ? name : "?");
        if (sr <= 0 || decode_record(&c, m, o, digest, &in, segs ? &mask : NULL, &out) ||
            lsdm_writer_put(w, &out)) {
            rc = lsdm_err_ctx("%s", name ? name : "?");
            break;
        }
        lsdm_record_free(&out);
    }
    if (rc == 0 && segs && (rc = lsdm_reader_next(segs, &mask)) != 0)
        rc = rc > 0 ? lsdm_err("--seg: the mask stream has more records than the latents") : -1;
    nn_ctx_free(&c);
    lsdm_record_free(&in);
    lsdm_record_free(&mask);
    lsdm_record_free(&out);
    return rc < 0 ? -1 : 0;
}

int main(int argc, char **argv) {
    lsdm_cli_init("vq-decode", argv);
    dec_opts o = {0};
    o.snap = 1, o.overlap = 2;
    o.tile[0] = 32, o.tile[1] = 256, o.tile[2] = 256;
    int first = 1, rc = parse_args(argc, argv, &o, &first);
    if (rc >= 0) return rc;

    vqgan m;
    char digest[17];
    if (vq_program_open(&m, o.model, o.config, o.tile, digest)) return lsdm_fail();
    rc = 0;
    if (m.cfg.spade && !o.seg)
        rc = lsdm_err("the SPADE decoder needs --seg (a one-hot mask stream)");
    else if (!m.cfg.spade && o.seg)
        rc = lsdm_err("--seg: this model's decoder is plain, it takes no mask");
    if (rc) {
        vqgan_free(&m);
        return lsdm_fail();
    }

    lsdm_reader *rd = lsdm_reader_open(first < argc ? argv[first] : "-");
    lsdm_reader *segs = rd && o.seg ? lsdm_reader_open(o.seg) : NULL;
    if (o.seg && rd && !segs) lsdm_err_ctx("--seg");
    lsdm_writer *w = rd && (segs || !o.seg) ? lsdm_writer_open(o.out, lsdm_opt.level, lsdm_opt.force) : NULL;
    rc = w ? decode_input(w, &m, &o, digest, rd, segs) : -1;
    if (w && !rc) rc = lsdm_writer_close(w);
    else if (w) lsdm_writer_abort(w);
    if (rd) lsdm_reader_close(rd);
    if (segs) lsdm_reader_close(segs);
    vqgan_free(&m);
    return rc ? lsdm_fail() : 0;
}
