/* seg-train: train the reference 3D UNet segmenter (Med-LSDM's UNet3D with
 * DC_and_CE_loss) on image volumes and their label maps: per-volume
 * normalisation, foreground-oversampled random patches with flips, Adam
 * (seg_train.h), atomic checkpoints, bit-identical --resume, a progress
 * line, a CSV log and a validation Dice through the sliding window. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "cli.h"
#include "dice.h"
#include "err.h"
#include "seg_train.h"
#include "volsrc.h"

static const char HELP[] =
    "Usage: seg-train [OPTION]... IMAGES LABELS -o MODEL\n"
    "Train the reference 3D UNet segmenter (Med-LSDM's UNet3D: InstanceNorm,\n"
    "LeakyReLU, 3 poolings) with the reference loss (cross-entropy + soft Dice)\n"
    "on the image volumes of IMAGES and the label maps of LABELS (role labels,\n"
    "or mask2sem's class indices; integer), paired in order, of the same\n"
    "shapes; each a tensor stream, NIfTI file, directory or archive ('-':\n"
    "standard input, for one of them). MODEL is a safetensors checkpoint,\n"
    "replaced atomically at every save.\n"
    "\n"
    "  -o, --output MODEL    checkpoint to write (required)\n"
    "  -c, --config C        reference (64 filters), tiny (16, default) or a file\n"
    "      --classes N       classes with background (default: from the labels key,\n"
    "                        else the largest label + 1)\n"
    "      --normalize M     minmax (default: each volume to [-1,1]), zscore or none;\n"
    "                        kept in MODEL and applied again by seg-infer\n"
    "      --patch DxHxW     training patch, multiples of 8 (default 32x64x64;\n"
    "                        tiny 16x64x64)\n"
    "      --batch N         patches per step (default 2)\n"
    "      --foreground P    probability that a patch centres on a voxel of a random\n"
    "                        foreground class present (default 0.33, nnU-Net's;\n"
    "                        tiny 0.5)\n"
    "      --flip AXES       axes flipped at random, from 'dhw' (default hw; '' none)\n"
    "      --lr X            Adam learning rate (default 5e-5 as the reference;\n"
    "                        tiny 2e-3)\n"
    "      --lr-schedule S   constant or cosine (decay to 0 over --steps; default\n"
    "                        constant, tiny cosine)\n"
    "      --grad-clip X     global gradient norm clipping (default 12; 0 off)\n"
    "      --steps N         total steps (default 2000; tiny 1000)\n"
    "      --minutes M       stop (and save) after M minutes of training\n"
    "      --seed N          seed of the init and of every random choice (default 0)\n"
    "      --save-every N    checkpoint every N steps (default 100)\n"
    "      --export FILE     at the end also write FILE: what inference needs,\n"
    "                        the weights and the config, no optimiser\n"
    "                        state (the file to ship)\n"
    "      --resume MODEL    continue a seg-train run bit-identically (weights, Adam,\n"
    "                        step, options; --steps is the total)\n"
    "      --log CSV         one line per --log-every steps (default 10): step, loss,\n"
    "                        ce, dice_loss, lr, seconds, val_dice\n"
    "      --val-images V, --val-labels L   validation pairs: mean foreground Dice\n"
    "                        of seg-infer's sliding window, every --val-every steps\n"
    "                        (default 100) and at the end\n"
    LSDM_ENGINE_HELP
    LSDM_COMMON_HELP
    "\n"
    "The progress line (a terminal, not -q) shows loss, cross-entropy and Dice loss.\n"
    "Exit status: 0 ok, 1 error (bad data, divergence: the last checkpoint stays),\n"
    "2 usage error.\n";

/* What --export leaves out of the shipped file. */
static const char *const EXPORT_DROP[] = {CKPT_TRAIN_PREFIX};

enum {
    OPT_CLASSES = LSDM_OPT_FIRST_TOOL, OPT_NORMALIZE, OPT_PATCH, OPT_BATCH, OPT_FG, OPT_FLIP, OPT_LR,
    OPT_SCHEDULE, OPT_CLIP, OPT_STEPS, OPT_MINUTES, OPT_SEED, OPT_SAVE_EVERY, OPT_EXPORT, OPT_RESUME, OPT_LOG,
    OPT_LOG_EVERY, OPT_VAL_IMAGES, OPT_VAL_LABELS, OPT_VAL_EVERY,
};

/* Options that shape the run: those not given on --resume come from the checkpoint. */
enum { H_PATCH, H_BATCH, H_FG, H_FLIP, H_LR, H_SCHED, H_CLIP, H_NORM, H_COS, H_N };

typedef struct {
    const char *out, *export, *config, *resume, *log, *val_img, *val_lab;
    long steps, batch, save_every, log_every, val_every, classes, cosine_steps;
    double minutes, lr, fg, clip;
    int patch[3], flip[3], cosine, norm;
    uint64_t seed;
    int has[H_N];
} args;

/* ------------------------------------------------------------ data */

/* The image of r as f32 (C,D,H,W), C checked. */
static float *image_of(const lsdm_record *r, int C, int dim[3]) {
    int64_t rc = r->ndim == 4 ? r->shape[0] : 1;
    if (r->ndim != 3 && r->ndim != 4) return lsdm_err("an image is C,D,H,W or D,H,W, not %d dims", r->ndim), NULL;
    if (rc != C) return lsdm_err("the image has %lld channel(s), the segmenter takes %d", (long long)rc, C), NULL;
    for (int a = 0; a < 3; a++) dim[a] = (int)r->shape[r->ndim - 3 + a];
    size_t n = lsdm_record_numel(r);
    float *x = malloc(n * sizeof(float));
    if (!x) return lsdm_err("out of memory"), NULL;
    lsdm_convert_to_f32(x, r->data, r->dtype, n);
    return x;
}

/* The label map of r as i32 (D,H,W), of shape dim. */
static int32_t *labels_of(const lsdm_record *r, const int dim[3]) {
    if (lsdm_dtype_is_float(r->dtype)) return lsdm_err("a label map has an integer dtype, not %s", lsdm_dtype_name(r->dtype)), NULL;
    int off = r->ndim - 3;
    if ((r->ndim != 3 && r->ndim != 4) || (r->ndim == 4 && r->shape[0] != 1) || r->shape[off] != dim[0] ||
        r->shape[off + 1] != dim[1] || r->shape[off + 2] != dim[2])
        return lsdm_err("the label map's shape is not the image's (%dx%dx%d)", dim[0], dim[1], dim[2]), NULL;
    size_t n = lsdm_record_numel(r);
    int32_t *y = malloc(n * sizeof(int32_t));
    if (!y) return lsdm_err("out of memory"), NULL;
    for (size_t i = 0; i < n; i++) y[i] = (int32_t)lsdm_elem_get(r->data, r->dtype, i);
    return y;
}

typedef struct {
    float *x;
    int32_t *y;
    int dim[3];
    float pad;
} pair;

typedef struct {
    pair *p;
    int n;
    char *labels;    /* the first label map's labels key, or NULL */
    long max_label;
} pair_list;

static void pairs_free(pair_list *l) {
    for (int i = 0; i < l->n; i++) free(l->p[i].x), free(l->p[i].y);
    free(l->p), free(l->labels);
    memset(l, 0, sizeof *l);
}

/* Every (image, label map) of the two inputs, the image normalised. */
static int load_pairs(pair_list *l, const char *ipath, const char *lpath, int C, int norm) {
    memset(l, 0, sizeof *l);
    lsdm_volsrc *si = lsdm_volsrc_open(ipath, NULL), *sl = si ? lsdm_volsrc_open(lpath, NULL) : NULL;
    lsdm_record ri, rl;
    lsdm_record_init(&ri);
    lsdm_record_init(&rl);
    int rc = sl ? 0 : -1, a, b;
    while (rc == 0) {
        a = lsdm_volsrc_next(si, &ri);
        b = a < 0 ? 0 : lsdm_volsrc_next(sl, &rl);
        if (a < 0 || b < 0) {
            rc = lsdm_err_ctx("%s", a < 0 ? ipath : lpath);
            break;
        }
        if (a != b) {
            rc = lsdm_err("%s has %s volumes than %s", ipath, a ? "more" : "fewer", lpath);
            break;
        }
        if (!a) break;
        const char *name = lsdm_record_get(&ri, "name");
        pair p = {0};
        if (!(p.x = image_of(&ri, C, p.dim)) || !(p.y = labels_of(&rl, p.dim)) ||
            segnet_normalize(p.x, C, (size_t)p.dim[0] * p.dim[1] * p.dim[2], norm, &p.pad) < 0) {
            free(p.x), free(p.y);
            rc = lsdm_err_ctx("'%s'", name ? name : ipath);
            break;
        }
        size_t S = (size_t)p.dim[0] * p.dim[1] * p.dim[2];
        for (size_t i = 0; i < S; i++) {
            if (p.y[i] < 0) rc = lsdm_err("'%s': negative label %d", name ? name : lpath, (int)p.y[i]);
            if (p.y[i] > l->max_label) l->max_label = p.y[i];
        }
        const char *lk = lsdm_record_get(&rl, "labels");
        if (!rc && !l->labels && lk && !(l->labels = strdup(lk))) rc = lsdm_err("out of memory");
        pair *np = rc ? NULL : realloc(l->p, (size_t)(l->n + 1) * sizeof *np);
        if (!np) {
            free(p.x), free(p.y);
            if (!rc) rc = lsdm_err("out of memory");
            break;
        }
        l->p = np;
        l->p[l->n++] = p;
    }
    if (si) lsdm_volsrc_close(si);
    if (sl) lsdm_volsrc_close(sl);
    lsdm_record_free(&ri);
    lsdm_record_free(&rl);
    if (rc == 0 && l->n == 0) rc = lsdm_err("no volumes in %s", ipath);
    if (rc < 0) pairs_free(l);
    return rc < 0 ? -1 : 0;
}

/* Classes of a labels key: its largest id + 1 (0 if none). */
static int classes_of_key(const char *key) {
    lsdm_labels lb;
    if (!key || lsdm_labels_parse(key, &lb) < 0) return 0;
    int k = 0;
    for (int i = 0; i < lb.n; i++)
        if (lb.ids[i] + 1 > k) k = lb.ids[i] + 1;
    lsdm_labels_free(&lb);
    return k;
}

/* ------------------------------------------------------------ validation */

static int validate(const segnet *m, const pair_list *val, const int patch[3], double *dice) {
    lsdm_dice_counts sum;
    lsdm_dice_counts_init(&sum);
    int K = m->cfg.classes, rc = lsdm_dice_counts_grow(&sum, K);
    for (int i = 0; i < val->n && !rc; i++) {
        const pair *p = &val->p[i];
        size_t S = (size_t)p->dim[0] * p->dim[1] * p->dim[2];
        float *prob = malloc((size_t)K * S * sizeof(float));
        int32_t *lab = malloc(S * sizeof(int32_t));
        segnet_window w = {{patch[0], patch[1], patch[2]}, 0.5, p->pad};
        lsdm_dice_counts c;
        lsdm_dice_counts_init(&c);
        rc = !prob || !lab ? lsdm_err("out of memory") : segnet_predict(m, &w, p->x, p->dim, prob, NULL);
        if (!rc) {
            segnet_argmax(NULL, lab, prob, K, S);
            rc = lsdm_dice_counts_grow(&c, K);
        }
        if (!rc) rc = lsdm_dice_count(&c, lab, LSDM_I32, p->y, LSDM_I32, S);
        if (!rc) rc = lsdm_dice_counts_add(&sum, &c);
        lsdm_dice_counts_free(&c);
        free(prob), free(lab);
    }
    *dice = rc ? NAN : lsdm_dice_mean_foreground(&sum);
    lsdm_dice_counts_free(&sum);
    return rc;
}

/* ------------------------------------------------------------ options kept in the checkpoint */

static const char *train_text(const args *a) {
    static char buf[512];
    char flip[4] = "";
    for (int i = 0, k = 0; i < 3; i++)
        if (a->flip[i]) flip[k++] = "dhw"[i], flip[k] = 0;
    snprintf(buf, sizeof buf,
             "patch = %dx%dx%d\nbatch = %ld\nforeground = %.17g\nflip = %s\nlr = %.17g\n"
             "schedule = %s\ncosine_steps = %ld\ngrad_clip = %.17g\nnormalize = %s\n",
             a->patch[0], a->patch[1], a->patch[2], a->batch, a->fg, flip[0] ? flip : "none", a->lr,
             a->cosine ? "cosine" : "constant", a->cosine_steps, a->clip, segnet_norm_name(a->norm));
    return buf;
}

static int train_text_apply(args *a, const char *text) {
    char key[32], val[64];
    const char *p = text;
    int n;
    static const char *const keys[H_N] = {"patch", "batch", "foreground", "flip", "lr", "schedule",
                                          "grad_clip", "normalize", "cosine_steps"};
    while (sscanf(p, " %31[a-z_] = %63s%n", key, val, &n) == 2) {
        p += n;
        int h = 0;
        while (h < H_N && strcmp(key, keys[h])) h++;
        if (h == H_N || a->has[h]) continue;
        a->has[h] = 1;
        if (h == H_PATCH && lsdm_parse_dims(val, a->patch) < 0) return -1;
        if (h == H_BATCH) a->batch = strtol(val, NULL, 10);
        if (h == H_FG) a->fg = strtod(val, NULL);
        if (h == H_FLIP && lsdm_parse_axes(val, a->flip) < 0) return -1;
        if (h == H_LR) a->lr = strtod(val, NULL);
        if (h == H_SCHED) a->cosine = !strcmp(val, "cosine");
        if (h == H_CLIP) a->clip = strtod(val, NULL);
        if (h == H_NORM && (a->norm = segnet_norm_parse(val)) < 0) return -1;
        if (h == H_COS) a->cosine_steps = strtol(val, NULL, 10);
    }
    return a->has[H_PATCH] && a->has[H_BATCH] && a->has[H_NORM] ? 0 : -1;
}

/* ------------------------------------------------------------ main */

static int log_line(FILE *f, long step, const seg_step_stats *s, double sec, double val) {
    fprintf(f, "%ld,%.6g,%.6g,%.6g,%.6g,%.3f,", step, s->loss, s->ce, s->dice_loss, s->lr, sec);
    if (isfinite(val)) fprintf(f, "%.6f", val);
    fputc('\n', f);
    return fflush(f) == 0 && !ferror(f) ? 0 : lsdm_err("cannot write the log: %m");
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        LSDM_COMMON_LONGOPTS, LSDM_ENGINE_LONGOPTS,
        {"output", required_argument, 0, 'o'}, {"config", required_argument, 0, 'c'},
        {"classes", required_argument, 0, OPT_CLASSES}, {"normalize", required_argument, 0, OPT_NORMALIZE},
        {"patch", required_argument, 0, OPT_PATCH}, {"batch", required_argument, 0, OPT_BATCH},
        {"foreground", required_argument, 0, OPT_FG}, {"flip", required_argument, 0, OPT_FLIP},
        {"lr", required_argument, 0, OPT_LR}, {"lr-schedule", required_argument, 0, OPT_SCHEDULE},
        {"grad-clip", required_argument, 0, OPT_CLIP}, {"steps", required_argument, 0, OPT_STEPS},
        {"minutes", required_argument, 0, OPT_MINUTES}, {"seed", required_argument, 0, OPT_SEED},
        {"save-every", required_argument, 0, OPT_SAVE_EVERY},
        {"export", required_argument, 0, OPT_EXPORT}, {"resume", required_argument, 0, OPT_RESUME},
        {"log", required_argument, 0, OPT_LOG}, {"log-every", required_argument, 0, OPT_LOG_EVERY},
        {"val-images", required_argument, 0, OPT_VAL_IMAGES}, {"val-labels", required_argument, 0, OPT_VAL_LABELS},
        {"val-every", required_argument, 0, OPT_VAL_EVERY},
        {0, 0, 0, 0},
    };
    lsdm_cli_init("seg-train", argv);
    args a = {.batch = 2, .save_every = 100, .log_every = 10, .val_every = 100, .fg = 0.33, .clip = 12,
              .flip = {0, 1, 1}};
    int has_steps = 0;
    int c;
    while ((c = getopt_long(argc, argv, LSDM_COMMON_SHORTOPTS "o:c:j:", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': a.out = optarg; break;
        case 'c': a.config = optarg; break;
        case 'j': LSDM_OPT_LONG(lsdm_opt.threads, 1, 1024); break;
        case LSDM_OPT_DEVICE: lsdm_opt.device = optarg; break;
        case OPT_CLASSES: LSDM_OPT_LONG(a.classes, 2, 65536); break;
        case OPT_NORMALIZE:
            if ((a.norm = segnet_norm_parse(optarg)) < 0) return lsdm_usage_error("--normalize: %s", lsdm_err_msg());
            a.has[H_NORM] = 1;
            break;
        case OPT_PATCH:
            if (lsdm_parse_dims(optarg, a.patch) < 0) return lsdm_usage_error("--patch: %s", lsdm_err_msg());
            a.has[H_PATCH] = 1;
            break;
        case OPT_BATCH: LSDM_OPT_LONG(a.batch, 1, 256); a.has[H_BATCH] = 1; break;
        case OPT_FG: LSDM_OPT_REAL(a.fg, 1); a.has[H_FG] = 1; break;
        case OPT_FLIP:
            if (lsdm_parse_axes(optarg, a.flip) < 0) return lsdm_usage_error("--flip: %s", lsdm_err_msg());
            a.has[H_FLIP] = 1;
            break;
        case OPT_LR: LSDM_OPT_REAL(a.lr, 10); a.has[H_LR] = 1; break;
        case OPT_SCHEDULE:
            if (strcmp(optarg, "constant") && strcmp(optarg, "cosine"))
                return lsdm_usage_error("--lr-schedule: constant or cosine, not '%s'", optarg);
            a.cosine = !strcmp(optarg, "cosine");
            a.has[H_SCHED] = 1;
            break;
        case OPT_CLIP: LSDM_OPT_REAL(a.clip, 1e30); a.has[H_CLIP] = 1; break;
        case OPT_STEPS: LSDM_OPT_LONG(a.steps, 0, 1L << 40); has_steps = 1; break;
        case OPT_MINUTES: LSDM_OPT_REAL(a.minutes, 1e9); break;
        case OPT_SEED: LSDM_OPT_LONG(a.seed, 0, 1L << 62); break;
        case OPT_SAVE_EVERY: LSDM_OPT_LONG(a.save_every, 1, 1L << 40); break;
        case OPT_EXPORT: a.export = optarg; break;
        case OPT_RESUME: a.resume = optarg; break;
        case OPT_LOG: a.log = optarg; break;
        case OPT_LOG_EVERY: LSDM_OPT_LONG(a.log_every, 1, 1L << 40); break;
        case OPT_VAL_IMAGES: a.val_img = optarg; break;
        case OPT_VAL_LABELS: a.val_lab = optarg; break;
        case OPT_VAL_EVERY: LSDM_OPT_LONG(a.val_every, 1, 1L << 40); break;
        LSDM_CLI_DEFAULT(c, HELP);
        }
    }
    if (!a.out) return lsdm_usage_error("no model to write: give -o MODEL");
    if (argc - optind != 2) return lsdm_usage_error("give IMAGES and LABELS (two inputs)");
    if (!!a.val_img != !!a.val_lab) return lsdm_usage_error("--val-images and --val-labels go together");
    if (a.config && a.resume) return lsdm_usage_error("--resume takes the config from the checkpoint: drop -c");
    if (lsdm_cli_training_setup() < 0) return lsdm_fail();

    seg_trainer t = {0};
    seg_data data = {0};
    pair_list tr = {0}, val = {0};
    ckpt_meta meta = {0}, extra = {0};
    segnet_config cfg;
    FILE *log = NULL;
    float *x = NULL;
    int32_t *y = NULL;
    int code = 0, rc = 0, have_t = 0;

    /* the config and the options: given, defaults, or the checkpoint's */
    if (a.resume) {
        seg_train_opts o0 = {0};
        if (seg_trainer_resume(&t, a.resume, &o0, &meta) < 0) goto fail;
        have_t = 1;
        const char *tt = ckpt_meta_get(&meta, "seg_train");
        if (!tt || train_text_apply(&a, tt) < 0) {
            lsdm_err("--resume: %s has no seg-train options", a.resume);
            goto fail;
        }
        cfg = t.m.cfg;
        if (a.classes && a.classes != cfg.classes) {
            code = lsdm_usage_error("--resume: the model has %d classes, not %ld", cfg.classes, a.classes);
            goto done;
        }
        a.seed = strtoull(ckpt_meta_get(&meta, "seed") ? ckpt_meta_get(&meta, "seed") : "0", NULL, 10);
    } else if (segnet_config_load(&cfg, a.config ? a.config : "tiny", 2) < 0) {
        goto fail;
    }
    /* The reference trains 64 filters at 5e-5, constant. The tiny one learns
     * phantoms fast at 2e-3 decayed along a cosine; on 8 phantoms of
     * 32x128x128, 600 steps at foreground 0.33 reach a held-out mean Dice of
     * 0.866 (vessels 0.51), 1000 steps at 0.5 reach 0.893 (vessels 0.60)
     * in under 6 minutes on 2 cores: the thin vessels need the time and the
     * foreground patches. */
    int tiny = cfg.filters < 64;
    if (!has_steps) a.steps = tiny ? 1000 : 2000;
    if (!a.has[H_FG]) a.fg = tiny ? 0.5 : 0.33;
    if (!a.has[H_LR]) a.lr = tiny ? 2e-3 : 5e-5;
    if (!a.has[H_SCHED]) a.cosine = tiny;
    if (!a.has[H_PATCH]) {
        a.patch[0] = tiny ? 16 : 32;
        a.patch[1] = a.patch[2] = 64;
    }
    if (!a.has[H_COS]) a.cosine_steps = a.cosine ? a.steps : 0;
    int mult = 1 << cfg.num_downs;
    if (a.patch[0] % mult || a.patch[1] % mult || a.patch[2] % mult) {
        code = lsdm_usage_error("--patch: D, H and W must be multiples of %d, got %dx%dx%d", mult, a.patch[0],
                                a.patch[1], a.patch[2]);
        goto done;
    }

    /* the data */
    if (load_pairs(&tr, argv[optind], argv[optind + 1], cfg.in_channels, a.norm) < 0) goto fail;
    if (!a.resume) {
        int K = a.classes ? (int)a.classes : classes_of_key(tr.labels);
        if (!K) {
            K = (int)tr.max_label + 1;
            lsdm_note("no labels key and no --classes: %d classes (the largest label + 1)", K);
        }
        cfg.classes = K < 2 ? 2 : K;
    }
    if (tr.max_label >= cfg.classes) {
        lsdm_err("label %ld in %s is not one of the %d classes%s", tr.max_label, argv[optind + 1], cfg.classes,
                 a.resume ? " of the model" : " (give --classes)");
        goto fail;
    }
    if (a.val_img && load_pairs(&val, a.val_img, a.val_lab, cfg.in_channels, a.norm) < 0) {
        lsdm_err_ctx("validation");
        goto fail;
    }
    if (val.max_label >= cfg.classes) {
        lsdm_err("validation label %ld is not one of the %d classes", val.max_label, cfg.classes);
        goto fail;
    }
    data.C = cfg.in_channels, data.K = cfg.classes;
    for (int i = 0; i < tr.n; i++) {
        pair *p = &tr.p[i];
        rc = seg_data_add(&data, p->x, p->y, p->dim, p->pad);
        p->x = NULL, p->y = NULL;
        if (rc < 0) goto fail;
    }

    seg_train_opts o = {.lr = a.lr, .cosine_steps = a.cosine_steps, .grad_clip = a.clip, .seed = a.seed};
    if (have_t) {
        t.o = o;
    } else {
        if (seg_trainer_init(&t, &cfg, &o) < 0) goto fail;
        have_t = 1;
    }
    lsdm_verbose("segmenter: %d filters, %d downs, %d classes, %zu parameters; %d volumes, patch %dx%dx%d, batch %ld, "
                 "lr %g %s", cfg.filters, cfg.num_downs, cfg.classes, segnet_param_count(&t.m), data.n, a.patch[0],
                 a.patch[1], a.patch[2], a.batch, a.lr, a.cosine ? "cosine" : "constant");

    /* what the checkpoint carries besides the weights */
    const char *lk = tr.labels ? tr.labels : ckpt_meta_get(&meta, "labels");
    if (ckpt_meta_set(&extra, "seg_train", train_text(&a)) < 0 || ckpt_meta_setf(&extra, "classes", "%d", cfg.classes) < 0 ||
        ckpt_meta_set(&extra, "normalize", segnet_norm_name(a.norm)) < 0 ||
        ckpt_meta_setf(&extra, "patch", "%dx%dx%d", a.patch[0], a.patch[1], a.patch[2]) < 0 ||
        (lk && ckpt_meta_set(&extra, "labels", lk) < 0))
        goto fail;

    if (a.log) {
        int fresh = t.step == 0;
        if (!(log = fopen(a.log, fresh ? "w" : "a"))) {
            lsdm_err("cannot open %s: %m", a.log);
            goto fail;
        }
        if (fresh) fprintf(log, "step,loss,ce,dice_loss,lr,seconds,val_dice\n");
    }
    size_t PS = (size_t)a.patch[0] * a.patch[1] * a.patch[2];
    x = malloc((size_t)a.batch * cfg.in_channels * PS * sizeof(float));
    y = malloc((size_t)a.batch * PS * sizeof(int32_t));
    if (!x || !y) {
        lsdm_err("out of memory");
        goto fail;
    }
    seg_sampler smp = {{a.patch[0], a.patch[1], a.patch[2]}, a.fg, {a.flip[0], a.flip[1], a.flip[2]}};
    seg_step_stats st = {0};
    double t0 = lsdm_now_s(), vd = NAN;
    long start = t.step;
    char what[160];
    while (t.step < a.steps) {
        seg_sample_batch(&data, &smp, a.seed, t.step, (int)a.batch, x, y);
        if ((rc = seg_trainer_step(&t, x, y, (int)a.batch, a.patch, &st)) < 0) break;
        double el = lsdm_now_s() - t0;
        int last = t.step == a.steps || (a.minutes > 0 && el >= a.minutes * 60);
        int save = last || t.step % a.save_every == 0;
        vd = NAN;
        if (val.n && (last || t.step % a.val_every == 0)) {
            if ((rc = validate(&t.m, &val, a.patch, &vd)) < 0) break;
            lsdm_verbose("step %ld: validation Dice %.4f", t.step, vd);
        }
        if (log && (t.step % a.log_every == 0 || save || isfinite(vd)) &&
            (rc = log_line(log, t.step, &st, el, vd)) < 0)
            break;
        snprintf(what, sizeof what, "loss %.4f ce %.4f dice %.4f, %.2f s/step, step", st.loss, st.ce, st.dice_loss,
                 el / (double)(t.step - start));
        lsdm_progress(t.step, a.steps, what);
        if (save && (rc = seg_trainer_save(&t, a.out, &extra)) < 0) break;
        if (last) break;
    }
    lsdm_progress_end();
    if (rc == 0 && t.step == start && seg_trainer_save(&t, a.out, &extra) < 0) rc = -1;
    if (rc == 0 && a.export &&
        checkpoint_export(a.out, a.export, EXPORT_DROP, sizeof EXPORT_DROP / sizeof *EXPORT_DROP) < 0)
        rc = -1;
    if (rc < 0) goto fail;
    if (t.step > start)
        lsdm_note("%ld steps, loss %.4f (ce %.4f, dice %.4f)%s", t.step, st.loss, st.ce, st.dice_loss,
                  val.n && isfinite(vd) ? "" : "");
    if (val.n && isfinite(vd)) lsdm_note("validation mean foreground Dice %.4f", vd);
    goto done;
fail:
    code = lsdm_fail();
done:
    if (log) fclose(log);
    free(x), free(y);
    pairs_free(&tr), pairs_free(&val);
    seg_data_free(&data);
    ckpt_meta_free(&meta), ckpt_meta_free(&extra);
    if (have_t) seg_trainer_free(&t);
    return code;
}
