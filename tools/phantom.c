/* phantom: seeded synthetic breast-MRI-like volumes with their label maps,
 * for demos and tests. The model is in libshared/phantom.c. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "err.h"
#include "nifti.h"
#include "phantom.h"
#include "rng.h"
#include "stream.h"

static const char HELP[] =
    "Usage: phantom [OPTION]...\n"
    "Make K synthetic breast-MRI-like volumes (an axial T1 slab: two breasts\n"
    "in front of the chest wall) and their label maps, from a seed: the same\n"
    "seed gives the same bytes. Images (role image, f32, 1,D,H,W, values in\n"
    "[0,1]) go to -o (standard output by default), label maps (role labels,\n"
    "u8: 0=background, 1=fat, 2=fibroglandular, 3=vessel, 4=muscle) to --masks.\n"
    "\n"
    "  -s, --seed N       seed (default 0); record I uses a seed derived from N and I\n"
    "  -n, --count K      number of volume pairs (default 1)\n"
    "      --shape DxHxW  volume shape (default 32x256x256)\n"
    "      --spacing D,H,W  voxel size in mm (default 2.0,0.7,0.7)\n"
    "      --noise S      Rician noise level (default 0.02; 0: none)\n"
    "  -o, --output FILE  image stream (default '-': standard output)\n"
    "      --masks FILE   label map stream ('-': standard output)\n"
    "      --nifti DIR    write DIR/NAME_image.nii.gz and DIR/NAME_mask.nii.gz\n"
    "                     instead of streams\n"
    LSDM_COMMON_HELP
    "\n"
    "Records are named phantom-sSEED-IIII. See phantom(1) for the model.\n"
    "Exit status: 0 ok, 1 error, 2 usage error.\n";

enum { OPT_SHAPE = LSDM_OPT_FIRST_TOOL, OPT_SPACING, OPT_NOISE, OPT_MASKS, OPT_NIFTI };

/* Purpose tag of the per-record seed derivation ("phnt"). */
#define PHANTOM_SEED_PURPOSE 0x70686e74u

typedef struct {
    uint64_t seed;
    long count;
    lsdm_phantom_params p;
    const char *output, *masks, *nifti;
} phantom_opts;

/* "d,h,w" in mm, each in (0, 100]. */
static int parse_spacing(const char *s, double out[3]) {
    char buf[128];
    if (strlen(s) >= sizeof buf) return lsdm_err("'%.40s...' is too long", s);
    strcpy(buf, s);
    char *save = NULL, *tok = strtok_r(buf, ",", &save);
    for (int i = 0; i < 3; i++, tok = strtok_r(NULL, ",", &save)) {
        if (!tok || lsdm_parse_double(tok, &out[i]) || !(out[i] > 0) || out[i] > 100)
            return lsdm_err("'%s' is not three spacings D,H,W in mm (each > 0 and <= 100)", s);
    }
    if (tok) return lsdm_err("'%s' has more than three spacings", s);
    return 0;
}

static int parse_args(int argc, char **argv, phantom_opts *o) {
    static const struct option longopts[] = {
        LSDM_COMMON_LONGOPTS,
        {"seed", required_argument, 0, 's'}, {"count", required_argument, 0, 'n'},
        {"shape", required_argument, 0, OPT_SHAPE}, {"spacing", required_argument, 0, OPT_SPACING},
        {"noise", required_argument, 0, OPT_NOISE}, {"output", required_argument, 0, 'o'},
        {"masks", required_argument, 0, OPT_MASKS}, {"nifti", required_argument, 0, OPT_NIFTI},
        {0, 0, 0, 0},
    };
    int c;
    long v;
    double x;
    int shape[3];
    while ((c = getopt_long(argc, argv, LSDM_COMMON_SHORTOPTS "s:n:o:", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (lsdm_parse_long(optarg, 0, INT64_MAX, &v)) return lsdm_usage_error("--seed: %s", lsdm_err_msg());
            o->seed = (uint64_t)v;
            break;
        case 'n':
            if (lsdm_parse_long(optarg, 1, 1000000, &v)) return lsdm_usage_error("--count: %s", lsdm_err_msg());
            o->count = v;
            break;
        case OPT_SHAPE:
            if (lsdm_parse_dims(optarg, shape)) return lsdm_usage_error("--shape: %s", lsdm_err_msg());
            o->p.d = shape[0];
            o->p.h = shape[1];
            o->p.w = shape[2];
            break;
        case OPT_SPACING:
            if (parse_spacing(optarg, o->p.spacing)) return lsdm_usage_error("--spacing: %s", lsdm_err_msg());
            break;
        case OPT_NOISE:
            if (lsdm_parse_double(optarg, &x) || x < 0 || x > 1)
                return lsdm_usage_error("--noise: '%s' is not a number in 0..1", optarg);
            o->p.noise = (float)x;
            break;
        case 'o': o->output = optarg; break;
        case OPT_MASKS: o->masks = optarg; break;
        case OPT_NIFTI: o->nifti = optarg; break;
        LSDM_CLI_DEFAULT(c, HELP);
        }
    }
    if (optind < argc) return lsdm_usage_error("unexpected argument '%s'", argv[optind]);
    if (o->nifti && (o->output || o->masks)) return lsdm_usage_error("--nifti excludes --output and --masks");
    if (o->masks && !strcmp(o->masks, "-") && (!o->output || !strcmp(o->output, "-")))
        return lsdm_usage_error("images and masks cannot both go to standard output (give -o or --masks a file)");
    return -1;
}

/* --nifti DIR: made if missing (one level), must be a directory. */
static int nifti_dir_ready(const char *dir) {
    struct stat st;
    if (mkdir(dir, 0777) && errno != EEXIST) return lsdm_err("%s: cannot create directory: %s", dir, strerror(errno));
    if (stat(dir, &st) || !S_ISDIR(st.st_mode)) return lsdm_err("%s: not a directory", dir);
    return 0;
}

static int nifti_write_pair(const char *dir, const char *name, const lsdm_record *img, const lsdm_record *lab) {
    size_t n = strlen(dir) + strlen(name) + 32;
    char *path = malloc(n);
    if (!path) return lsdm_err("out of memory");
    snprintf(path, n, "%s/%s_image.nii.gz", dir, name);
    int rc = lsdm_nifti_write(path, img, 0);
    if (!rc) {
        snprintf(path, n, "%s/%s_mask.nii.gz", dir, name);
        rc = lsdm_nifti_write(path, lab, 0);
    }
    free(path);
    return rc;
}

/* Make pair i and send it to the writers or the NIfTI directory. */
static int phantom_one(const phantom_opts *o, long i, lsdm_writer *wi, lsdm_writer *wl) {
    lsdm_phantom_params p = o->p;
    p.seed = lsdm_rng_derive(o->seed, (uint64_t)i, PHANTOM_SEED_PURPOSE);
    char name[64], prov[128];
    snprintf(name, sizeof name, "phantom-s%" PRIu64 "-%04ld", o->seed, i);
    snprintf(prov, sizeof prov, "phantom/" LSDM_VERSION " seed=%" PRIu64 " index=%ld", o->seed, i);
    lsdm_record img, lab;
    lsdm_record_init(&img);
    lsdm_record_init(&lab);
    int rc = lsdm_phantom_records(&p, name, &img, &lab);
    if (!rc) rc = lsdm_record_add_provenance(&img, prov) || lsdm_record_add_provenance(&lab, prov) ? -1 : 0;
    if (!rc && o->nifti) rc = nifti_write_pair(o->nifti, name, &img, &lab);
    if (!rc && wi) rc = lsdm_writer_put(wi, &img);
    if (!rc && wl) rc = lsdm_writer_put(wl, &lab);
    lsdm_record_free(&img);
    lsdm_record_free(&lab);
    return rc;
}

int main(int argc, char **argv) {
    lsdm_cli_init("phantom", argv);
    phantom_opts o = {0};
    o.count = 1;
    lsdm_phantom_defaults(&o.p);
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) return rc;

    lsdm_writer *wi = NULL, *wl = NULL;
    if (o.nifti) {
        if (nifti_dir_ready(o.nifti)) return lsdm_fail();
    } else {
        if (!(wi = lsdm_writer_open(o.output, lsdm_opt.level, lsdm_opt.force))) return lsdm_fail();
        if (o.masks && !(wl = lsdm_writer_open(o.masks, lsdm_opt.level, lsdm_opt.force))) {
            lsdm_writer_abort(wi);
            return lsdm_fail();
        }
    }
    rc = 0;
    for (long i = 0; i < o.count && !rc; i++) {
        rc = phantom_one(&o, i, wi, wl);
        lsdm_progress(i + 1, o.count, "volumes");
    }
    lsdm_progress_end();
    if (!rc && wi) rc = lsdm_writer_close(wi), wi = NULL;
    if (!rc && wl) rc = lsdm_writer_close(wl), wl = NULL;
    if (wi) lsdm_writer_abort(wi);
    if (wl) lsdm_writer_abort(wl);
    if (rc) return lsdm_fail();
    lsdm_verbose("%ld volume pair(s), seed %" PRIu64, o.count, o.seed);
    return 0;
}
