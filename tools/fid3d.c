/* fid3d: two sets of volumes -> 3D-FID (and KID).
 *
 * Each volume of REAL and of FAKE -> input range to [0,1] -> MedicalNet 3D
 * ResNet -> global average pool -> one feature row; then the Frechet
 * distance of the two Gaussian fits (and the KID). --features-out keeps
 * the matrices, --from-features starts from them. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "textout.h"
#include "frechet.h"
#include "resnet3d.h"
#include "rng.h"
#include "stream.h"
#include "volsrc.h"

static const char HELP[] =
    "Usage: fid3d [OPTION]... REAL FAKE\n"
    "   or: fid3d [OPTION]... --from-features FILE\n"
    "The 3D-FID of two sets of volumes (each a tensor stream, a NIfTI file, a\n"
    "directory or an archive of NIfTI files; '-' is standard input for one of\n"
    "them): every volume goes at its own shape, single-channel, through a\n"
    "MedicalNet 3D ResNet (dilated layers 3-4, global average pooling: 512\n"
    "features, 2048 for resnet50); FID = |mu1-mu2|^2 + tr S1 + tr S2 -\n"
    "2 tr sqrt(S1^1/2 S2 S1^1/2) of the feature means and covariances (float64).\n"
    "\n"
    "Network:\n"
    "  -w, --weights FILE     MedicalNet weights as safetensors (converted with\n"
    "                         tools/contrib/convert_medicalnet.py); its metadata\n"
    "                         sets arch, shortcut and width. Without: a fixed-seed\n"
    "                         random network, reported as 'weights: none' - its\n"
    "                         numbers compare only with each other, never with a\n"
    "                         MedicalNet FID\n"
    "      --arch A           resnet10, resnet18, resnet34 or resnet50 (default\n"
    "                         resnet50, the reference's; or the weights' own)\n"
    "      --shortcut A|B     shortcut type (default B; or the weights' own)\n"
    "      --width N          channels of layer1 (default 64 = MedicalNet)\n"
    "      --seed N           seed of the fixed-seed network and of the KID\n"
    "                         subsets (default 0)\n"
    "Input:\n"
    "      --input-range R    -1,1 (default): volumes are in [-1,1] and mapped\n"
    "                         to [0,1] as the reference 3d_fid.py does; 0,1: fed\n"
    "                         as they are; minmax: each volume scaled to [0,1]\n"
    "                         by its own min and max\n"
    "      --from-features FILE  read the feature matrices (records real and\n"
    "                         fake, role features, n x d) instead of volumes\n"
    "      --features-out FILE   write the feature matrices as such a stream\n"
    "Statistics:\n"
    "      --kid              also the KID: unbiased MMD^2 with the kernel\n"
    "                         (x.y/d + 1)^3, over all samples of each set\n"
    "      --kid-subsets N    KID over N random subsets (mean and std); implies\n"
    "                         --kid\n"
    "      --kid-subset-size M  samples per subset from each set (default: the\n"
    "                         smaller set's count); implies --kid\n"
    "Output:\n"
    "      --json             one JSON object\n"
    "      --csv              a header line and one line of values\n"
    "Other:\n"
    LSDM_ENGINE_HELP LSDM_COMMON_HELP
    "\n"
    "With fewer samples than feature dimensions + 1 the covariances are\n"
    "singular and the FID is unreliable: a warning on stderr, the value is\n"
    "still printed. -v says what each volume gave.\n"
    "Exit status: 0 ok, 1 error (unreadable or unsuitable input, bad weights),\n"
    "2 usage error.\n";

enum {
    OPT_ARCH = LSDM_OPT_FIRST_TOOL, OPT_SHORTCUT, OPT_WIDTH, OPT_SEED, OPT_RANGE, OPT_FROM, OPT_FOUT, OPT_KID,
    OPT_KID_SUBSETS, OPT_KID_SIZE, OPT_JSON, OPT_CSV
};
enum { FMT_TEXT, FMT_JSON, FMT_CSV };
enum { RANGE_PM1, RANGE_01, RANGE_MINMAX };
static const char *const RANGE_NAMES[] = {"-1,1", "0,1", "minmax"};

typedef struct {
    const char *real, *fake, *weights, *from, *features_out;
    resnet3d_config cfg;
    int set;            /* bits: 1 arch, 2 shortcut, 4 width given */
    uint64_t seed;
    int range;          /* RANGE_* */
    int kid, kid_subsets;
    long kid_size;
    int format;
} fid_opts;

/* One set's features: (n, d) row-major. */
typedef struct {
    float *x;
    long n, cap;
    int d;
} feat_set;

/* What produced the features (reported, and kept in --features-out). */
typedef struct {
    char arch[32], shortcut[8], width[16], weights[1024], range[16];
} fid_source;

static int parse_args(int argc, char **argv, fid_opts *o) {
    static const struct option longopts[] = {
        LSDM_COMMON_LONGOPTS, LSDM_ENGINE_LONGOPTS,
        {"weights", required_argument, 0, 'w'}, {"arch", required_argument, 0, OPT_ARCH},
        {"shortcut", required_argument, 0, OPT_SHORTCUT}, {"width", required_argument, 0, OPT_WIDTH},
        {"seed", required_argument, 0, OPT_SEED}, {"input-range", required_argument, 0, OPT_RANGE},
        {"from-features", required_argument, 0, OPT_FROM}, {"features-out", required_argument, 0, OPT_FOUT},
        {"kid", no_argument, 0, OPT_KID}, {"kid-subsets", required_argument, 0, OPT_KID_SUBSETS},
        {"kid-subset-size", required_argument, 0, OPT_KID_SIZE}, {"json", no_argument, 0, OPT_JSON},
        {"csv", no_argument, 0, OPT_CSV}, {0, 0, 0, 0},
    };
    int c;
    long v;
    while ((c = getopt_long(argc, argv, LSDM_COMMON_SHORTOPTS "j:w:", longopts, NULL)) != -1) {
        switch (c) {
        case 'w': o->weights = optarg; break;
        case OPT_ARCH:
            if (resnet3d_parse_arch(optarg, &o->cfg.depth)) return lsdm_usage_error("--arch: %s", lsdm_err_msg());
            o->set |= 1;
            break;
        case OPT_SHORTCUT:
            if ((optarg[0] != 'A' && optarg[0] != 'B') || optarg[1])
                return lsdm_usage_error("--shortcut: '%s' is not A or B", optarg);
            o->cfg.shortcut = optarg[0];
            o->set |= 2;
            break;
        case OPT_WIDTH:
            if (lsdm_parse_long(optarg, 1, 1024, &v)) return lsdm_usage_error("--width: %s", lsdm_err_msg());
            o->cfg.width = (int)v;
            o->set |= 4;
            break;
        case OPT_SEED:
            if (lsdm_parse_long(optarg, 0, 0x7fffffffffffffffL, &v)) return lsdm_usage_error("--seed: %s", lsdm_err_msg());
            o->seed = (uint64_t)v;
            break;
        case OPT_RANGE:
            for (o->range = 0; o->range < 3 && strcmp(optarg, RANGE_NAMES[o->range]); o->range++) {}
            if (o->range == 3) return lsdm_usage_error("--input-range: '%s' is not -1,1, 0,1 or minmax", optarg);
            break;
        case OPT_FROM: o->from = optarg; break;
        case OPT_FOUT: o->features_out = optarg; break;
        case OPT_KID: o->kid = 1; break;
        case OPT_KID_SUBSETS:
            if (lsdm_parse_long(optarg, 1, 100000, &v)) return lsdm_usage_error("--kid-subsets: %s", lsdm_err_msg());
            o->kid_subsets = (int)v, o->kid = 1;
            break;
        case OPT_KID_SIZE:
            if (lsdm_parse_long(optarg, 2, 100000000, &v)) return lsdm_usage_error("--kid-subset-size: %s", lsdm_err_msg());
            o->kid_size = v, o->kid = 1;
            break;
        case OPT_JSON:
        case OPT_CSV:
            if (o->format != FMT_TEXT) return lsdm_usage_error("--json and --csv exclude each other");
            o->format = c == OPT_JSON ? FMT_JSON : FMT_CSV;
            break;
        LSDM_CLI_DEFAULT(c, HELP);
        }
    }
    int npos = argc - optind;
    if (o->from) {
        if (npos) return lsdm_usage_error("--from-features takes no REAL and FAKE inputs");
        if (o->weights || o->set) return lsdm_usage_error("--from-features: the network options do not apply");
        return -1;
    }
    if (npos != 2) return lsdm_usage_error("need two inputs, REAL and FAKE (got %d)", npos);
    o->real = argv[optind];
    o->fake = argv[optind + 1];
    if (!strcmp(o->real, "-") && !strcmp(o->fake, "-")) return lsdm_usage_error("REAL and FAKE cannot both be standard input");
    return -1;
}

/* ------------------------------------------------------------- network */

/* The network: the weights' layout (options must agree with it) or the
 * options' with fixed-seed weights. */
static int net_open(resnet3d *m, const fid_opts *o, fid_source *src) {
    resnet3d_config cfg = o->cfg;
    if (o->weights) {
        int found = 0;
        if (resnet3d_file_config(o->weights, &cfg, &found) < 0) return -1;
        int clash = ((found & o->set & 1) && cfg.depth != o->cfg.depth) ||
                    ((found & o->set & 2) && cfg.shortcut != o->cfg.shortcut) ||
                    ((found & o->set & 4) && cfg.width != o->cfg.width);
        if (clash)
            return lsdm_err("weights %s hold resnet%d, shortcut %c, width %d (their metadata), not the network "
                            "asked for with --arch/--shortcut/--width", o->weights, cfg.depth, cfg.shortcut, cfg.width);
    }
    if (resnet3d_init(m, &cfg) < 0) return -1;
    if (o->weights) {
        if (resnet3d_load(m, o->weights) < 0) return -1;
        snprintf(src->weights, sizeof src->weights, "%s", o->weights);
    } else {
        resnet3d_init_random(m, o->seed);
        snprintf(src->weights, sizeof src->weights, "none (fixed-seed network, seed %llu)", (unsigned long long)o->seed);
    }
    snprintf(src->arch, sizeof src->arch, "resnet%d", cfg.depth);
    snprintf(src->shortcut, sizeof src->shortcut, "%c", cfg.shortcut);
    snprintf(src->width, sizeof src->width, "%d", cfg.width);
    lsdm_verbose("network resnet%d, shortcut %c, width %d: %d features, %zu parameters", cfg.depth, cfg.shortcut,
                 cfg.width, m->feature_dim, nn_params_count(&m->params, 0));
    return 0;
}

/* ------------------------------------------------------------ features */

static const char *rec_name(const lsdm_record *r) {
    const char *n = lsdm_record_get(r, "name");
    return n ? n : "(unnamed)";
}

static int set_push(feat_set *s, const float *row, int d) {
    if (s->n == s->cap) {
        long cap = s->cap ? 2 * s->cap : 64;
        float *x = realloc(s->x, (size_t)cap * d * sizeof *x);
        if (!x) return lsdm_err("out of memory");
        s->x = x, s->cap = cap;
    }
    memcpy(s->x + (size_t)s->n * d, row, (size_t)d * sizeof *row);
    s->d = d;
    s->n++;
    return 0;
}

/* The volume of r as f32 (1, D, H, W) in the network's [0,1] convention. */
static float *volume_f32(const lsdm_record *r, int range, int dim[3]) {
    if (r->ndim < 3 || r->ndim > 4 || (r->ndim == 4 && r->shape[0] != 1)) {
        char s[128];
        lsdm_shape_format(s, sizeof s, r->ndim, r->shape);
        lsdm_err("shape %s: fid3d takes single-channel volumes (1,D,H,W or D,H,W)", s);
        return NULL;
    }
    for (int a = 0; a < 3; a++) dim[a] = (int)r->shape[r->ndim - 3 + a];
    size_t n = lsdm_record_numel(r), bad = 0;
    float *x = malloc(n * sizeof *x);
    if (!x) {
        lsdm_err("out of memory");
        return NULL;
    }
    lsdm_convert_to_f32(x, r->data, r->dtype, n);
    float lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) bad++;
        else lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
    }
    if (bad) {
        lsdm_err("%zu NaN or Inf value(s)", bad);
        free(x);
        return NULL;
    }
    if (range == RANGE_PM1)
        for (size_t i = 0; i < n; i++) x[i] = (x[i] + 1.0f) * 0.5f;
    else if (range == RANGE_MINMAX) {
        /* a constant volume becomes 0 */
        double s = hi > lo ? 1.0 / ((double)hi - lo) : 0;
        for (size_t i = 0; i < n; i++) x[i] = (float)(((double)x[i] - lo) * s);
    }
    return x;
}

/* Every volume of path through the network into s. */
static int extract(nn_ctx *c, const resnet3d *m, const fid_opts *o, const char *path, const char *which,
                   feat_set *s) {
    lsdm_nifti_opts no = {0};
    lsdm_volsrc *src = lsdm_volsrc_open(path, &no);
    if (!src) return -1;
    float *row = malloc((size_t)m->feature_dim * sizeof *row);
    lsdm_record r;
    lsdm_record_init(&r);
    int rc = row ? 0 : lsdm_err("out of memory"), got;
    while (!rc && (got = lsdm_volsrc_next(src, &r)) != 0) {
        if (got < 0) { rc = -1; break; }
        int dim[3];
        float *x = volume_f32(&r, o->range, dim);
        if (!x) { rc = lsdm_err_ctx("%s record '%s'", which, rec_name(&r)); break; }
        nn_tensor *t = nn_tensor_wrap(c, x, 1, 1, dim[0], dim[1], dim[2]);
        rc = t ? resnet3d_features(c, m, t, row) : -1;
        nn_ctx_reset(c);
        free(x);
        if (rc) { lsdm_err_ctx("%s record '%s'", which, rec_name(&r)); break; }
        rc = set_push(s, row, m->feature_dim);
        double mean = 0;
        for (int k = 0; k < m->feature_dim; k++) mean += row[k];
        lsdm_verbose("%s %ld: %s, %dx%dx%d, mean feature %.6g", which, s->n, rec_name(&r), dim[0], dim[1], dim[2],
                     mean / m->feature_dim);
        lsdm_progress(s->n, 0, which);
    }
    lsdm_progress_end();
    if (!rc && s->n == 0) rc = lsdm_err("%s (%s) holds no volumes", which, path);
    lsdm_record_free(&r);
    lsdm_volsrc_close(src);
    free(row);
    return rc;
}

/* ------------------------------------------------- feature matrices I/O */

static const char *const SRC_KEYS[] = {"arch", "shortcut", "width", "weights", "input-range"};

static char *src_field(fid_source *s, int k) {
    return k == 0 ? s->arch : k == 1 ? s->shortcut : k == 2 ? s->width : k == 3 ? s->weights : s->range;
}

static size_t src_size(const fid_source *s, int k) {
    return k == 0 ? sizeof s->arch : k == 1 ? sizeof s->shortcut : k == 2 ? sizeof s->width
         : k == 3 ? sizeof s->weights : sizeof s->range;
}

static int features_write(const char *path, const feat_set *real, const feat_set *fake, fid_source *src) {
    lsdm_writer *w = lsdm_writer_open(path, lsdm_opt.level, lsdm_opt.force);
    if (!w) return -1;
    lsdm_record r;
    lsdm_record_init(&r);
    int rc = 0;
    for (int i = 0; i < 2 && !rc; i++) {
        const feat_set *s = i ? fake : real;
        int64_t shape[2] = {s->n, s->d};
        lsdm_record_free(&r);
        rc = lsdm_record_alloc(&r, LSDM_F32, 2, shape);
        if (!rc) memcpy(r.data, s->x, (size_t)s->n * s->d * sizeof(float));
        if (!rc) rc = lsdm_record_set(&r, "name", i ? "fake" : "real");
        if (!rc) rc = lsdm_record_set(&r, "role", "features");
        for (int k = 0; k < 5 && !rc; k++)
            if (src_field(src, k)[0]) rc = lsdm_record_set(&r, SRC_KEYS[k], src_field(src, k));
        if (!rc) rc = lsdm_record_add_provenance(&r, "fid3d/" LSDM_VERSION);
        if (!rc) rc = lsdm_writer_put(w, &r);
    }
    lsdm_record_free(&r);
    if (rc) {
        lsdm_writer_abort(w);
        return lsdm_err_ctx("--features-out %s", path);
    }
    return lsdm_writer_close(w);
}

/* Records "real" and "fake" (or the first and second unnamed so) of role
 * features, each (n, d) with one d. */
static int features_read(const char *path, feat_set *real, feat_set *fake, fid_source *src) {
    lsdm_reader *rd = lsdm_reader_open(path);
    if (!rd) return -1;
    lsdm_record r;
    lsdm_record_init(&r);
    int rc = 0, got, k = 0;
    while (!rc && (got = lsdm_reader_next(rd, &r)) != 0) {
        if (got < 0) { rc = -1; break; }
        const char *role = lsdm_record_get(&r, "role"), *name = rec_name(&r);
        if (!role || strcmp(role, "features")) continue;
        feat_set *s = !strcmp(name, "real") ? real : !strcmp(name, "fake") ? fake : k == 0 ? real : fake;
        if (r.ndim != 2 || r.shape[0] < 1 || r.shape[1] < 1)
            rc = lsdm_err("record '%s' is not a matrix of n rows of d features", name);
        else if (s->n)
            rc = lsdm_err("a second record for the %s set ('%s')", s == real ? "real" : "fake", name);
        else if (k && (real->n ? real->d : fake->d) != r.shape[1])
            rc = lsdm_err("record '%s' has %lld features per row, the other %d", name, (long long)r.shape[1],
                          real->n ? real->d : fake->d);
        if (rc) break;
        long n = (long)r.shape[0];
        int d = (int)r.shape[1];
        s->x = malloc((size_t)n * d * sizeof *s->x);
        if (!s->x) { rc = lsdm_err("out of memory"); break; }
        lsdm_convert_to_f32(s->x, r.data, r.dtype, (size_t)n * d);
        for (size_t i = 0; i < (size_t)n * d && !rc; i++)
            if (!isfinite(s->x[i])) rc = lsdm_err("record '%s': NaN or Inf features", name);
        s->n = s->cap = n, s->d = d;
        for (int j = 0; j < 5; j++) {
            const char *v = lsdm_record_get(&r, SRC_KEYS[j]);
            if (v && !src_field(src, j)[0]) snprintf(src_field(src, j), src_size(src, j), "%s", v);
        }
        k++;
    }
    if (!rc && (!real->n || !fake->n)) rc = lsdm_err("%d feature record(s); need two (real and fake)", k);
    lsdm_record_free(&r);
    lsdm_reader_close(rd);
    return rc ? lsdm_err_ctx("--from-features %s", path) : 0;
}

/* -------------------------------------------------------------- scores */

typedef struct {
    double fid, kid, kid_std;
    int kid_subsets;     /* 0: every sample once */
    long kid_size;
} fid_scores;

static int compute_scores(const fid_opts *o, const feat_set *real, const feat_set *fake, fid_scores *sc) {
    long nmin = real->n < fake->n ? real->n : fake->n;
    frechet_stats a, b;
    int rc = frechet_stats_compute(&a, real->x, real->n, real->d);
    if (rc) lsdm_err_ctx("REAL");
    if (!rc && (rc = frechet_stats_compute(&b, fake->x, fake->n, fake->d)) < 0) {
        lsdm_err_ctx("FAKE");
        frechet_stats_free(&a);
    }
    if (rc) return -1;
    if (nmin < real->d + 1)
        fprintf(stderr, "%s: warning: %ld samples < %d feature dimensions: the covariance is singular, the FID is "
                        "unreliable\n", lsdm_opt.prog, nmin, real->d);
    rc = frechet_distance(&a, &b, &sc->fid);
    frechet_stats_free(&a);
    frechet_stats_free(&b);
    if (rc || !o->kid) return rc;
    sc->kid_subsets = o->kid_subsets || o->kid_size ? (o->kid_subsets ? o->kid_subsets : 1) : 0;
    sc->kid_size = sc->kid_subsets ? (o->kid_size ? o->kid_size : nmin) : 0;
    return kid_compute(real->x, real->n, fake->x, fake->n, real->d, sc->kid_subsets, sc->kid_size,
                       lsdm_rng_derive(o->seed, 0, 0x4b4944 /* "KID" */), &sc->kid, &sc->kid_std);
}

/* -------------------------------------------------------------- output */

static const char *or_unknown(const char *s) { return s[0] ? s : "unknown"; }

static void print_text(const fid_opts *o, const fid_scores *sc, const feat_set *r, const feat_set *f,
                       const fid_source *src) {
    char b[64];
    lsdm_fmt_num(b, sizeof b, sc->fid);
    printf("fid: %s\n", b);
    if (o->kid) {
        lsdm_fmt_num(b, sizeof b, sc->kid);
        printf("kid: %s", b);
        if (sc->kid_subsets) {
            lsdm_fmt_num(b, sizeof b, sc->kid_std);
            printf(" +- %s (%d subsets of %ld)", b, sc->kid_subsets, sc->kid_size);
        }
        printf("\n");
    }
    printf("n_real: %ld\nn_fake: %ld\ndims: %d\n", r->n, f->n, r->d);
    printf("arch: %s", or_unknown(src->arch));
    if (src->shortcut[0] || src->width[0])
        printf(" (shortcut %s, width %s)", or_unknown(src->shortcut), or_unknown(src->width));
    printf("\nweights: %s\ninput range: %s\n", or_unknown(src->weights), or_unknown(src->range));
}

static void print_csv(const fid_opts *o, const fid_scores *sc, const feat_set *r, const feat_set *f,
                      const fid_source *src) {
    char b[64];
    fputs("fid,kid,kid_std,kid_subsets,kid_subset_size,n_real,n_fake,dims,arch,shortcut,width,weights,input_range\n",
          stdout);
    lsdm_fmt_num(b, sizeof b, sc->fid);
    fputs(b, stdout);
    if (o->kid) {
        lsdm_fmt_num(b, sizeof b, sc->kid);
        printf(",%s,", b);
        lsdm_fmt_num(b, sizeof b, sc->kid_std);
        printf("%s,%d,%ld", b, sc->kid_subsets, sc->kid_size);
    } else {
        fputs(",,,,", stdout);
    }
    printf(",%ld,%ld,%d", r->n, f->n, r->d);
    for (int k = 0; k < 5; k++) {
        putchar(',');
        lsdm_csv_field(k == 0 ? src->arch : k == 1 ? src->shortcut : k == 2 ? src->width : k == 3 ? src->weights : src->range);
    }
    putchar('\n');
}

static void json_field(const char *key, const char *v, int last) {
    printf("  \"%s\": ", key);
    if (v[0]) lsdm_json_str(v);
    else fputs("null", stdout);
    fputs(last ? "\n" : ",\n", stdout);
}

static void print_json(const fid_opts *o, const fid_scores *sc, const feat_set *r, const feat_set *f,
                       const fid_source *src) {
    char b[64];
    lsdm_fmt_num(b, sizeof b, sc->fid);
    printf("{\n  \"fid\": %s,\n", b);
    if (o->kid) {
        lsdm_fmt_num(b, sizeof b, sc->kid);
        printf("  \"kid\": %s,\n", b);
        lsdm_fmt_num(b, sizeof b, sc->kid_std);
        printf("  \"kid_std\": %s,\n  \"kid_subsets\": %d,\n  \"kid_subset_size\": %ld,\n", b, sc->kid_subsets,
               sc->kid_size);
    }
    printf("  \"n_real\": %ld,\n  \"n_fake\": %ld,\n  \"dims\": %d,\n", r->n, f->n, r->d);
    printf("  \"singular\": %s,\n", (r->n < f->n ? r->n : f->n) < r->d + 1 ? "true" : "false");
    json_field("arch", src->arch, 0);
    json_field("shortcut", src->shortcut, 0);
    printf("  \"width\": %s,\n", src->width[0] ? src->width : "null");
    json_field("weights", src->weights, 0);
    json_field("input_range", src->range, 1);
    printf("}\n");
}

static int report(const fid_opts *o, const fid_scores *sc, const feat_set *r, const feat_set *f,
                  const fid_source *src) {
    if (o->format == FMT_JSON) print_json(o, sc, r, f, src);
    else if (o->format == FMT_CSV) print_csv(o, sc, r, f, src);
    else print_text(o, sc, r, f, src);
    if (fflush(stdout) || ferror(stdout)) return lsdm_err("cannot write the report to standard output");
    return 0;
}

/* --------------------------------------------------------------- main */

/* Threads and device. BLAS runs single-threaded in every mode, so the
 * statistics of the same features are the same bits with or without
 * --from-features. */
static int engine_setup(void) {
    lsdm_device dev;
    if (lsdm_cli_engine_setup(&dev) < 0) return -1;
    if (dev == LSDM_DEVICE_CUDA) {
        if (lsdm_opt.device && !strcmp(lsdm_opt.device, "cuda"))
            return lsdm_err("fid3d runs on the CPU in this version: use --device cpu");
        lsdm_verbose("the network runs on the CPU in this version");
    }
    return 0;
}

/* REAL and FAKE through the network. */
static int features_from_volumes(const fid_opts *o, feat_set *real, feat_set *fake, fid_source *src) {
    resnet3d m = {0};
    nn_ctx c;
    nn_ctx_init(&c, 0);
    int rc = net_open(&m, o, src);
    snprintf(src->range, sizeof src->range, "%s", RANGE_NAMES[o->range]);
    if (!rc) rc = extract(&c, &m, o, o->real, "REAL", real);
    if (!rc) rc = extract(&c, &m, o, o->fake, "FAKE", fake);
    nn_ctx_free(&c);
    resnet3d_free(&m);
    return rc;
}

int main(int argc, char **argv) {
    lsdm_cli_init("fid3d", argv);
    fid_opts o = {.cfg = {50, 'B', 64}};
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) return rc;

    feat_set real = {0}, fake = {0};
    fid_source src = {0};
    fid_scores sc = {0};
    rc = engine_setup();
    if (!rc) rc = o.from ? features_read(o.from, &real, &fake, &src) : features_from_volumes(&o, &real, &fake, &src);
    if (!rc && o.features_out) rc = features_write(o.features_out, &real, &fake, &src);
    if (!rc) rc = compute_scores(&o, &real, &fake, &sc);
    if (!rc) rc = report(&o, &sc, &real, &fake, &src);
    free(real.x);
    free(fake.x);
    return rc ? lsdm_fail() : 0;
}
