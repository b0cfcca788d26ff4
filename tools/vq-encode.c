/* vq-encode: images -> VQ-GAN latents.
 *
 * Per input volume: check -> min-max rescale to [-1,1] -> encode in
 * overlapping tiles, blended -> (quantise) -> a latent record on the latent
 * grid, carrying the input's name and keys. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "stream.h"
#include "volsrc.h"
#include "vqgan.h"
#include "vqtile.h"

static const char HELP[] =
    "Usage: vq-encode [OPTION]... [INPUT]\n"
    "Encode image volumes with a VQ-GAN into latents (role latent): the\n"
    "pre-quantisation latent (f32 E,d,h,w), the quantised one, or the code\n"
    "indices (i32 d,h,w), on the latent grid (affine and spacing times the\n"
    "downsampling f). INPUT: tensor stream, NIfTI file, directory or archive\n"
    "('-' or none: standard input).\n"
    "\n"
    "  -m, --model CKPT       VQ-GAN checkpoint (safetensors)\n"
    "      --config NAME|FILE model config for a checkpoint without one\n"
    "                         (converted PyTorch ones): med-lsdm, tiny, or a file\n"
    "      --output KIND      prequant (default: what ldm-train trains on),\n"
    "                         quantized or codes\n"
    "      --rescale MODE     minmax (default: each volume's min..max to [-1,1],\n"
    "                         as in training) or none (already in [-1,1])\n"
    "      --tile DxHxW       tile size in image voxels, multiples of f\n"
    "                         (default 32x256x256, clipped to the volume)\n"
    "      --overlap N        latent voxels each tile grows by towards its\n"
    "                         neighbours, blended linearly (default 2)\n"
    "  -o FILE                output stream (default standard output)\n"
    LSDM_ENGINE_HELP LSDM_COMMON_HELP
    "\nExit status: 0 ok, 1 error (bad input, model or data), 2 usage error.\n";

enum { OPT_CONFIG = LSDM_OPT_FIRST_TOOL, OPT_OUTPUT, OPT_RESCALE, OPT_TILE, OPT_OVERLAP };
enum { OUT_PREQUANT, OUT_QUANTIZED, OUT_CODES };
static const char *const OUT_NAMES[] = {"prequant", "quantized", "codes"};

typedef struct {
    const char *model, *config, *out;
    int kind;      /* OUT_* */
    int rescale;   /* 1: min-max */
    int64_t tile[3];
    int overlap;
} enc_opts;

static int parse_args(int argc, char **argv, enc_opts *o, int *first) {
    static const struct option longopts[] = {
        LSDM_COMMON_LONGOPTS, LSDM_ENGINE_LONGOPTS,
        {"model", required_argument, 0, 'm'}, {"config", required_argument, 0, OPT_CONFIG},
        {"output", required_argument, 0, OPT_OUTPUT}, {"rescale", required_argument, 0, OPT_RESCALE},
        {"tile", required_argument, 0, OPT_TILE}, {"overlap", required_argument, 0, OPT_OVERLAP},
        {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, LSDM_COMMON_SHORTOPTS "j:m:o:", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': o->model = optarg; break;
        case OPT_CONFIG: o->config = optarg; break;
        case 'o': o->out = optarg; break;
        case OPT_OUTPUT:
            for (o->kind = 0; o->kind < 3 && strcmp(optarg, OUT_NAMES[o->kind]); o->kind++) {}
            if (o->kind == 3) return lsdm_usage_error("--output: '%s' is not prequant, quantized or codes", optarg);
            break;
        case OPT_RESCALE:
            if (!strcmp(optarg, "minmax")) o->rescale = 1;
            else if (!strcmp(optarg, "none")) o->rescale = 0;
            else return lsdm_usage_error("--rescale: '%s' is not minmax or none", optarg);
            break;
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

/* ------------------------------------------------------------ encoding */

/* The image as f32 (C,D,H,W), checked for the model; *lo, *hi its range. */
static float *image_f32(const vqgan *m, const lsdm_record *in, int64_t dim[3], float *lo, float *hi) {
    const int *f = m->cfg.downsample;
    int Ci = m->cfg.image_channels;
    int64_t C = in->ndim == 4 ? in->shape[0] : 1;
    if (in->ndim != 3 && in->ndim != 4) {
        lsdm_err("an image is C,D,H,W or D,H,W; this record has %d dims", in->ndim);
        return NULL;
    }
    if (C != Ci) {
        lsdm_err("the image has %lld channel(s), the model takes %d", (long long)C, Ci);
        return NULL;
    }
    for (int a = 0; a < 3; a++) dim[a] = in->shape[in->ndim - 3 + a];
    if (dim[0] % f[0] || dim[1] % f[1] || dim[2] % f[2]) {
        lsdm_err("shape %lldx%lldx%lld is not a multiple of the model's downsampling %s (crop "
                 "or pad it first)", (long long)dim[0], (long long)dim[1], (long long)dim[2],
                 vqgan_factor_text(&m->cfg));
        return NULL;
    }
    size_t n = lsdm_record_numel(in);
    float *x = malloc(n * sizeof(float));
    if (!x) {
        lsdm_err("out of memory");
        return NULL;
    }
    lsdm_convert_to_f32(x, in->data, in->dtype, n);
    float mn = INFINITY, mx = -INFINITY;
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) bad++;
        else if (x[i] < mn) mn = x[i];
        if (isfinite(x[i]) && x[i] > mx) mx = x[i];
    }
    if (bad) {
        lsdm_err("%zu NaN or Inf value(s) in the image", bad);
        free(x);
        return NULL;
    }
    *lo = mn, *hi = mx;
    return x;
}

/* x -> 2 (x - lo) / (hi - lo) - 1; a constant volume becomes -1. */
static void rescale_minmax(float *x, size_t n, float lo, float hi) {
    double s = hi > lo ? 2.0 / ((double)hi - lo) : 0;
    for (size_t i = 0; i < n; i++) x[i] = (float)(((double)x[i] - lo) * s - 1.0);
}

/* z (E, dim/f) <- the encoder over overlapping tiles of x (Ci, dim). */
static float *encode_tiled(nn_ctx *c, const vqgan *m, const enc_opts *o, const float *x,
                           const int64_t dim[3]) {
    const int *f = m->cfg.downsample, one[3] = {1, 1, 1};
    int Ci = m->cfg.image_channels, E = m->cfg.embedding_dim;
    int64_t ld[3] = {dim[0] / f[0], dim[1] / f[1], dim[2] / f[2]}, lt[3];
    for (int a = 0; a < 3; a++) lt[a] = o->tile[a] / f[a];
    vq_tiling t;
    vq_blend b;
    if (vq_tiling_init(&t, ld, lt, o->overlap) < 0 || vq_blend_init(&b, E, ld, one) < 0) return NULL;
    int n = vq_tiling_count(&t), rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        int64_t off[3], size[3], io[3], is[3];
        vq_tiling_get(&t, i, off, size);
        for (int a = 0; a < 3; a++) io[a] = off[a] * f[a], is[a] = size[a] * f[a];
        nn_tensor *xt = nn_tensor_new(c, 1, Ci, (int)is[0], (int)is[1], (int)is[2]);
        if (xt) vq_window_copy(xt->data, x, Ci, dim, io, is);
        nn_tensor *z = vqgan_encode(c, m, xt);
        rc = nn_ctx_status(c) < 0 || !z ? -1 : vq_blend_add(&b, &t, i, z->data);
        nn_ctx_reset(c);
        lsdm_progress(i + 1, n, "tiles");
    }
    lsdm_progress_end();
    return vq_blend_take(&b, rc);
}

/* The latent record of one image: data of the chosen kind, keys, geometry. */
static int encode_record(nn_ctx *c, const vqgan *m, const enc_opts *o, const char *digest,
                         const lsdm_record *in, lsdm_record *out) {
    const int *f = m->cfg.downsample;
    int E = m->cfg.embedding_dim;
    int64_t dim[3];
    float lo, hi;
    float *x = image_f32(m, in, dim, &lo, &hi);
    if (!x) return -1;
    if (o->rescale) rescale_minmax(x, lsdm_record_numel(in), lo, hi);
    float *z = encode_tiled(c, m, o, x, dim);
    free(x);
    if (!z) return -1;

    int64_t ld[3] = {dim[0] / f[0], dim[1] / f[1], dim[2] / f[2]}, S = ld[0] * ld[1] * ld[2];
    int64_t shape[4] = {E, ld[0], ld[1], ld[2]};
    int rc = o->kind == OUT_CODES ? lsdm_record_alloc(out, LSDM_I32, 3, ld)
                                  : lsdm_record_alloc(out, LSDM_F32, 4, shape);
    if (!rc && o->kind == OUT_PREQUANT) {
        memcpy(out->data, z, (size_t)(E * S) * sizeof(float));
    } else if (!rc) {
        /* codes of the blended latent; quantized = their codebook vectors */
        int32_t *idx = o->kind == OUT_CODES ? out->data : malloc((size_t)S * sizeof(int32_t));
        nn_tensor *zt = nn_tensor_wrap(c, z, 1, E, (int)ld[0], (int)ld[1], (int)ld[2]);
        rc = !idx ? lsdm_err("out of memory") : vqgan_quantize(c, m, zt, idx) != 0 ? -1 : 0;
        if (!rc && o->kind == OUT_QUANTIZED) {
            nn_tensor *zq = vqgan_lookup(c, m, idx, 1, (int)ld[0], (int)ld[1], (int)ld[2]);
            if (zq) memcpy(out->data, zq->data, zq->n * sizeof(float));
            else rc = -1;
        }
        if (idx != out->data) free(idx);
        nn_ctx_reset(c);
    }
    free(z);
    if (!rc) rc = lsdm_record_copy_keys(out, in);
    if (!rc) rc = lsdm_record_set(out, "role", "latent");
    if (!rc) rc = lsdm_record_set(out, "latent", OUT_NAMES[o->kind]);
    if (!rc) rc = lsdm_record_set(out, "vq-factor", vqgan_factor_text(&m->cfg));
    if (!rc) rc = lsdm_record_set(out, "vq-model", digest);
    if (!rc) rc = o->rescale ? lsdm_record_setf(out, "source-range", "%.9g,%.9g", lo, hi)
                             : lsdm_record_set(out, "source-range", "-1,1");
    if (!rc) rc = lsdm_record_setf(out, "image-shape", "%lld,%lld,%lld", (long long)dim[0],
                                   (long long)dim[1], (long long)dim[2]);
    if (!rc) rc = vq_geometry_to_latent(out, in, f);
    if (!rc) rc = lsdm_record_add_provenance(out, "vq-encode/" LSDM_VERSION);
    return rc;
}

/* Every volume of the input into w. */
static int encode_input(lsdm_writer *w, const vqgan *m, const enc_opts *o, const char *digest,
                        const char *path) {
    lsdm_nifti_opts no = {0, NULL}; /* images: scaled as the header says */
    lsdm_volsrc *src = lsdm_volsrc_open(path, &no);
    if (!src) return -1;
    lsdm_record in, out;
    lsdm_record_init(&in);
    lsdm_record_init(&out);
    nn_ctx c;
    nn_ctx_init(&c, 0);
    int rc;
    while ((rc = lsdm_volsrc_next(src, &in)) == 1) {
        const char *name = lsdm_record_get(&in, "name");
        lsdm_verbose("%s: encoding", name ? name : path);
        if (encode_record(&c, m, o, digest, &in, &out) || lsdm_writer_put(w, &out)) {
            rc = lsdm_err_ctx("%s", name ? name : path);
            break;
        }
        lsdm_record_free(&out);
    }
    nn_ctx_free(&c);
    lsdm_record_free(&in);
    lsdm_record_free(&out);
    lsdm_volsrc_close(src);
    return rc < 0 ? -1 : 0;
}

int main(int argc, char **argv) {
    lsdm_cli_init("vq-encode", argv);
    enc_opts o = {0};
    o.rescale = 1, o.overlap = 2;
    o.tile[0] = 32, o.tile[1] = 256, o.tile[2] = 256;
    int first = 1, rc = parse_args(argc, argv, &o, &first);
    if (rc >= 0) return rc;

    vqgan m;
    char digest[17];
    if (vq_program_open(&m, o.model, o.config, o.tile, digest)) return lsdm_fail();

    lsdm_writer *w = lsdm_writer_open(o.out, lsdm_opt.level, lsdm_opt.force);
    if (!w) {
        vqgan_free(&m);
        return lsdm_fail();
    }
    rc = encode_input(w, &m, &o, digest, first < argc ? argv[first] : "-");
    if (!rc) rc = lsdm_writer_close(w);
    else lsdm_writer_abort(w);
    vqgan_free(&m);
    return rc ? lsdm_fail() : 0;
}
