/* seg-infer: image volumes -> label maps with a seg-train segmenter.
 *
 * Per volume: check -> the checkpoint's normalisation -> sliding-window
 * softmax probabilities, Gaussian-weighted (segnet_predict) -> argmax ->
 * a labels record with the image's name and geometry. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "segnet.h"
#include "stream.h"
#include "volsrc.h"

static const char HELP[] =
    "Usage: seg-infer [OPTION]... -m MODEL [IMAGES] -o LABELS\n"
    "Segment image volumes with a seg-train model: each volume is normalised as\n"
    "in training, the softmax probabilities of windows that overlap are averaged\n"
    "with Gaussian weights (nnU-Net's sliding window: sigma 1/8 of the window)\n"
    "and the most probable class is written as a label map (role labels, u8 up\n"
    "to 256 classes, else i32; the model's labels key; the image's name and\n"
    "geometry keys). Volumes of any size: one smaller than the window is padded\n"
    "and cropped back. IMAGES: tensor stream, NIfTI file, directory or archive\n"
    "('-' or none: standard input).\n"
    "\n"
    "  -m, --model MODEL     segmenter checkpoint written by seg-train (required)\n"
    "  -c, --config C        for a converted PyTorch UNet3D without seg-train's\n"
    "                        metadata: reference, tiny or a config file; then\n"
    "      --classes N       its classes (default 3, the reference's), and images\n"
    "                        are minmax-normalised to [-1,1]\n"
    "  -o, --output LABELS   output stream (default standard output)\n"
    "      --tile DxHxW      window, multiples of 8 (default: the training patch)\n"
    "      --overlap X       fraction of a window shared with the next, in [0,0.95]\n"
    "                        (default 0.5)\n"
    "      --probs FILE      also write the f32 probabilities (classes,D,H,W; role\n"
    "                        features) to this stream\n"
    LSDM_ENGINE_HELP LSDM_COMMON_HELP
    "\nExit status: 0 ok, 1 error (bad input, model or data), 2 usage error.\n";

enum { OPT_TILE = LSDM_OPT_FIRST_TOOL, OPT_OVERLAP, OPT_PROBS, OPT_CLASSES };

typedef struct {
    const char *model, *out, *probs, *in, *config;
    int tile[3], has_tile;
    long classes;
    double overlap;
} infer_opts;

typedef struct {
    segnet m;
    int norm;
    char *labels;     /* the checkpoint's labels key, or NULL */
    char digest[64];  /* the model file's step, for provenance */
} model;

static void progress(long done, long total) { lsdm_progress(done, total, "windows"); }

/* The label map (and probabilities) of one image record. */
static int segment(const model *md, const infer_opts *o, const lsdm_record *in, lsdm_record *out,
                   lsdm_record *pr) {
    const segnet *m = &md->m;
    int C = m->cfg.in_channels, K = m->cfg.classes, dim[3];
    int64_t c = in->ndim == 4 ? in->shape[0] : 1;
    if (in->ndim != 3 && in->ndim != 4) return lsdm_err("an image is C,D,H,W or D,H,W; this record has %d dims", in->ndim);
    if (c != C) return lsdm_err("the image has %lld channel(s), the segmenter takes %d", (long long)c, C);
    for (int a = 0; a < 3; a++) dim[a] = (int)in->shape[in->ndim - 3 + a];
    size_t S = (size_t)dim[0] * dim[1] * dim[2];
    float *x = malloc((size_t)C * S * sizeof(float)), *prob = malloc((size_t)K * S * sizeof(float));
    segnet_window w = {{o->tile[0], o->tile[1], o->tile[2]}, o->overlap, 0};
    int rc = !x || !prob ? lsdm_err("out of memory") : 0;
    if (!rc) {
        lsdm_convert_to_f32(x, in->data, in->dtype, (size_t)C * S);
        rc = segnet_normalize(x, C, S, md->norm, &w.pad_value);
    }
    if (!rc) rc = segnet_predict(m, &w, x, dim, prob, progress);
    lsdm_progress_end();
    int64_t shape[4] = {1, dim[0], dim[1], dim[2]};
    int nd = in->ndim, u8 = K <= 256;
    if (!rc) rc = lsdm_record_alloc(out, u8 ? LSDM_U8 : LSDM_I32, nd, nd == 4 ? shape : shape + 1);
    if (!rc) segnet_argmax(u8 ? out->data : NULL, u8 ? NULL : out->data, prob, K, S);
    if (!rc) rc = lsdm_record_copy_keys(out, in);
    if (!rc) rc = lsdm_record_set(out, "role", "labels");
    if (!rc) lsdm_record_del(out, "labels");
    if (!rc && md->labels) rc = lsdm_record_set(out, "labels", md->labels);
    if (!rc) rc = lsdm_record_add_provenance(out, md->digest);
    if (!rc && pr) {
        int64_t ps[4] = {K, dim[0], dim[1], dim[2]};
        rc = lsdm_record_alloc(pr, LSDM_F32, 4, ps);
        if (!rc) memcpy(pr->data, prob, (size_t)K * S * sizeof(float));
        if (!rc) rc = lsdm_record_copy_keys(pr, in);
        if (!rc) rc = lsdm_record_set(pr, "role", "features");
        if (!rc) rc = lsdm_record_set(pr, "features", "softmax probabilities");
        if (!rc && md->labels) rc = lsdm_record_set(pr, "labels", md->labels);
        if (!rc) rc = lsdm_record_add_provenance(pr, md->digest);
    }
    free(x), free(prob);
    return rc;
}

static int run(const model *md, const infer_opts *o, lsdm_writer *w, lsdm_writer *wp) {
    lsdm_volsrc *src = lsdm_volsrc_open(o->in, NULL);
    if (!src) return -1;
    lsdm_record in, out, pr;
    lsdm_record_init(&in), lsdm_record_init(&out), lsdm_record_init(&pr);
    int rc;
    while ((rc = lsdm_volsrc_next(src, &in)) == 1) {
        const char *name = lsdm_record_get(&in, "name");
        lsdm_verbose("%s: segmenting", name ? name : o->in);
        if (segment(md, o, &in, &out, wp ? &pr : NULL) < 0 || lsdm_writer_put(w, &out) < 0 ||
            (wp && lsdm_writer_put(wp, &pr) < 0)) {
            rc = lsdm_err_ctx("%s", name ? name : o->in);
            break;
        }
        lsdm_record_free(&out), lsdm_record_free(&pr);
    }
    lsdm_record_free(&in), lsdm_record_free(&out), lsdm_record_free(&pr);
    lsdm_volsrc_close(src);
    return rc < 0 ? -1 : 0;
}

/* The segmenter and what seg-train stored with it. */
static int model_open(model *md, infer_opts *o) {
    ckpt_meta meta = {0};
    memset(md, 0, sizeof *md);
    if (segnet_load(&md->m, o->model, o->config, (int)o->classes, &meta) < 0) return -1;
    const char *norm = ckpt_meta_get(&meta, "normalize"), *patch = ckpt_meta_get(&meta, "patch");
    const char *labels = ckpt_meta_get(&meta, "labels"), *step = ckpt_meta_get(&meta, "step");
    int rc = 0;
    md->norm = norm ? segnet_norm_parse(norm) : SEGNET_NORM_MINMAX;
    if (md->norm < 0) rc = lsdm_err_ctx("%s", o->model);
    if (!rc && !o->has_tile) {
        if (!patch || lsdm_parse_dims(patch, o->tile) < 0)
            o->tile[0] = 32, o->tile[1] = o->tile[2] = 64;
    }
    if (!rc && labels && !(md->labels = strdup(labels))) rc = lsdm_err("out of memory");
    snprintf(md->digest, sizeof md->digest, "seg-infer/" LSDM_VERSION " model-step=%s", step ? step : "?");
    ckpt_meta_free(&meta);
    if (rc) segnet_free(&md->m), free(md->labels);
    return rc;
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        LSDM_COMMON_LONGOPTS, LSDM_ENGINE_LONGOPTS,
        {"model", required_argument, 0, 'm'}, {"output", required_argument, 0, 'o'},
        {"tile", required_argument, 0, OPT_TILE}, {"overlap", required_argument, 0, OPT_OVERLAP},
        {"probs", required_argument, 0, OPT_PROBS}, {"config", required_argument, 0, 'c'},
        {"classes", required_argument, 0, OPT_CLASSES}, {0, 0, 0, 0},
    };
    lsdm_cli_init("seg-infer", argv);
    infer_opts o = {.overlap = 0.5, .in = "-", .classes = 3};
    long v;
    int c;
    while ((c = getopt_long(argc, argv, LSDM_COMMON_SHORTOPTS "c:j:m:o:", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': o.model = optarg; break;
        case 'o': o.out = optarg; break;
        case 'c': o.config = optarg; break;
        case OPT_CLASSES: LSDM_OPT_LONG(o.classes, 2, 256); break;
        case 'j':
            if (lsdm_parse_long(optarg, 1, 1024, &v) < 0) return lsdm_usage_error("-j: %s", lsdm_err_msg());
            lsdm_opt.threads = (int)v;
            break;
        case LSDM_OPT_DEVICE: lsdm_opt.device = optarg; break;
        case OPT_TILE:
            if (lsdm_parse_dims(optarg, o.tile) < 0) return lsdm_usage_error("--tile: %s", lsdm_err_msg());
            if (o.tile[0] % 8 || o.tile[1] % 8 || o.tile[2] % 8)
                return lsdm_usage_error("--tile: multiples of 8, not %s", optarg);
            o.has_tile = 1;
            break;
        case OPT_OVERLAP:
            if (lsdm_parse_double(optarg, &o.overlap) < 0 || !(o.overlap >= 0 && o.overlap <= 0.95))
                return lsdm_usage_error("--overlap: not a number in [0,0.95]: %s", optarg);
            break;
        case OPT_PROBS: o.probs = optarg; break;
        LSDM_CLI_DEFAULT(c, HELP);
        }
    }
    if (!o.model) return lsdm_usage_error("no model: give -m MODEL");
    if (argc - optind > 1) return lsdm_usage_error("one IMAGES input at most");
    if (optind < argc) o.in = argv[optind];
    if (lsdm_cli_training_setup() < 0) return lsdm_fail();

    model md;
    if (model_open(&md, &o) < 0) return lsdm_fail();
    int K = md.m.cfg.classes;
    lsdm_verbose("segmenter: %d filters, %d classes, %s, window %dx%dx%d, overlap %g", md.m.cfg.filters, K,
                 segnet_norm_name(md.norm), o.tile[0], o.tile[1], o.tile[2], o.overlap);
    lsdm_writer *w = lsdm_writer_open(o.out, lsdm_opt.level, lsdm_opt.force), *wp = NULL;
    if (w && o.probs && !(wp = lsdm_writer_open(o.probs, lsdm_opt.level, lsdm_opt.force))) {
        lsdm_writer_abort(w);
        w = NULL;
    }
    int rc = w ? run(&md, &o, w, wp) : -1;
    if (w) {
        if (rc) {
            lsdm_writer_abort(w);
            if (wp) lsdm_writer_abort(wp);
        } else {
            rc = lsdm_writer_close(w);
            if (wp && (rc ? (lsdm_writer_abort(wp), -1) : lsdm_writer_close(wp)) < 0) rc = -1;
        }
    }
    segnet_free(&md.m);
    free(md.labels);
    return rc ? lsdm_fail() : 0;
}
