/* vol-png: a slice (or a montage of slices) of a volume as a PNG picture:
 * greyscale for images, a fixed colour palette for label maps, labels over
 * the image with --labels. Square pixels from the spacing, superior (or
 * anterior) up from the affine. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "pngfile.h"
#include "record.h"
#include "stats.h"
#include "volsrc.h"

static const char HELP[] =
    "Usage: vol-png [OPTION]... [INPUT]... -o OUT.png\n"
    "Draw a slice of a record of INPUT (a tensor stream, a NIfTI file, a\n"
    "directory or an archive; '-' or none: standard input) as an 8-bit PNG:\n"
    "greyscale for an image, distinct colours for a label map (role labels,\n"
    "or role semantic: the argmax over channels). Several INPUTs are drawn\n"
    "side by side, left to right, as panels of the same slices (e.g. a mask\n"
    "and the image synthesised from it): the first INPUT's record is chosen\n"
    "by --record, the others' by its name (else the same index); all must\n"
    "have the same shape, and each image panel gets its own grey window.\n"
    "\n"
    "  -o, --output OUT.png      the picture ('-': standard output, the default)\n"
    "      --plane P             axial (fixed d; rows h, cols w), coronal (fixed h;\n"
    "                            rows d, cols w) or sagittal (fixed w; rows d,\n"
    "                            cols h); default axial\n"
    "      --slice N             slice index along the fixed axis, from 0\n"
    "                            (default: the middle one, count/2)\n"
    "      --montage[=CxR]       a grid of C columns and R rows of evenly spaced\n"
    "                            slices (default: up to 16 slices, near-square)\n"
    "      --record K            the record to draw, from 0 (default 0)\n"
    "      --channel N           the channel of an image record (default 0)\n"
    "      --labels LABELS       overlay the label record of LABELS with the same\n"
    "                            name (else the one at the same index) in colour\n"
    "                            on each image panel\n"
    "      --alpha A             opacity of the overlay, 0..1 (default 0.5)\n"
    "      --window LO,HI        grey window (default: 1st,99th percentile of the\n"
    "                            drawn channel of the whole volume)\n"
    "      --scale S             magnification of the picture, 0.01..64 (default 1)\n"
    LSDM_COMMON_HELP
    "\n"
    "Rows are flipped when the affine says the row axis points superior or\n"
    "anterior, so that superior (coronal, sagittal) or anterior (axial) is up;\n"
    "columns are kept in array order. Pixels are made square by nearest-\n"
    "neighbour resampling of the coarser axis to the finer spacing.\n"
    "\n"
    "Exit status: 0 ok, 1 bad input (no such record or slice, shape mismatch,\n"
    "unreadable stream), 2 usage error.\n";

enum { OPT_PLANE = LSDM_OPT_FIRST_TOOL, OPT_SLICE, OPT_MONTAGE, OPT_RECORD, OPT_CHANNEL,
       OPT_LABELS, OPT_ALPHA, OPT_WINDOW, OPT_SCALE };
enum { PLANE_AXIAL, PLANE_CORONAL, PLANE_SAGITTAL };
static const char *const plane_names[] = {"axial", "coronal", "sagittal"};

#define MAX_SIDE 32768            /* pixels per side of the picture */
#define MAX_PIXELS (1L << 26)     /* 8192 x 8192: 192 MiB as RGB */

/* Label colours: label id k > 0 gets palette[(k - 1) % 20]; 0 and below are
 * background (black, or no overlay). Twenty colours that stay distinct
 * side by side (Sasha Trubetskoy's list). */
static const uint8_t palette[20][3] = {
    {230, 25, 75},   {60, 180, 75},   {255, 225, 25}, {0, 130, 200},   {245, 130, 48},
    {145, 30, 180},  {70, 240, 240},  {240, 50, 230}, {210, 245, 60},  {250, 190, 212},
    {0, 128, 128},   {220, 190, 255}, {170, 110, 40}, {255, 250, 200}, {128, 0, 0},
    {170, 255, 195}, {128, 128, 0},   {255, 215, 180}, {0, 0, 128},    {128, 128, 128},
};

enum { MAX_PANELS = 16, PANEL_GAP = 4 /* black pixels between panels */ };

typedef struct {
    const char *inputs[MAX_PANELS], *output, *labels;
    int ninputs;
    int plane;
    long slice;       /* -1: the middle */
    int montage;      /* 0 single slice, 1 montage */
    long cols, rows;  /* montage grid; 0: default */
    long record, channel;
    double alpha, lo, hi, scale;
    int window_given;
} png_opts;

/* A volume as drawn: D x H x W, either grey values or label ids. */
typedef struct {
    int64_t d, h, w;
    double sp[3];   /* spacing (d, h, w) in mm */
    char dhw[3];    /* direction letters of the axes; 0 without an affine */
    float *val;     /* grey values [d][h][w], or NULL */
    int32_t *lab;   /* label ids [d][h][w], or NULL */
} png_volume;

/* How a plane cuts the volume. */
typedef struct {
    int64_t nslices, nrows, ncols;
    double row_sp, col_sp;
    int flip;                /* row 0 of the picture is the last array row */
    int out_rows, out_cols;  /* tile size after square-pixel resampling */
} png_plane;

static void volume_free(png_volume *v) {
    free(v->val);
    free(v->lab);
    memset(v, 0, sizeof *v);
}

/* Record `index` of path, or (when match is given) the first record named
 * match, falling back to record `index` when no name matches. NIfTI
 * inputs are read as label maps when labels is set. */
static int read_record(const char *path, long index, const char *match, int labels, lsdm_record *out) {
    lsdm_nifti_opts nopts = {labels, NULL};
    lsdm_volsrc *src = lsdm_volsrc_open(path, &nopts);
    if (!src) return -1;
    lsdm_record r, at_index;
    lsdm_record_init(&r);
    lsdm_record_init(&at_index);
    long n = 0;
    int rc, found = 0;
    while ((rc = lsdm_volsrc_next(src, &r)) == 1) {
        const char *name = lsdm_record_get(&r, "name");
        if (match && name && !strcmp(name, match)) { found = 1; break; }
        if (n == index) {
            if (!match) { found = 1; break; }
            at_index = r; /* keep it (moved) and read on for a name match */
            lsdm_record_init(&r);
        }
        n++;
    }
    lsdm_volsrc_close(src);
    if (rc < 0) { lsdm_record_free(&r); lsdm_record_free(&at_index); return -1; } /* names the input */
    if (found) { *out = r; lsdm_record_free(&at_index); return 0; }
    lsdm_record_free(&r);
    if (at_index.ndim) { *out = at_index; return 0; }
    if (n == 0) return lsdm_err("%s: no records", path);
    return lsdm_err("%s: no record %ld (it has %ld)", path, index, n);
}

static int is_integer_dtype(lsdm_dtype t) { return t == LSDM_U8 || t == LSDM_I16 || t == LSDM_I32; }

static int32_t to_label(double v) {
    if (!(v > -2147483648.0)) return 0; /* NaN too */
    if (v > 2147483647.0) return INT32_MAX;
    return (int32_t)nearbyint(v);
}

/* The volume of record r: D,H,W (C,D,H,W takes one channel; H,W is one
 * slice). Label maps become label ids: role labels (channel `channel`) or
 * role semantic (argmax over channels; ties to the lowest). */
static int volume_from_record(const lsdm_record *r, long channel, int want_labels, png_volume *v) {
    memset(v, 0, sizeof *v);
    const char *role = lsdm_record_get(r, "role"), *name = lsdm_record_get(r, "name");
    int64_t c = 1;
    if (r->ndim == 4) { c = r->shape[0]; v->d = r->shape[1]; v->h = r->shape[2]; v->w = r->shape[3]; }
    else if (r->ndim == 3) { v->d = r->shape[0]; v->h = r->shape[1]; v->w = r->shape[2]; }
    else if (r->ndim == 2) { v->d = 1; v->h = r->shape[0]; v->w = r->shape[1]; }
    else return lsdm_err("record '%s' has %d dims (need 2 to 4: [C,]D,H,W)", name, r->ndim);
    int semantic = role && !strcmp(role, "semantic");
    int labels = want_labels || semantic || (role && !strcmp(role, "labels"));
    if (!(semantic && c > 1) && channel >= c)
        return lsdm_err("record '%s' has %lld channel(s); no channel %ld", name, (long long)c, channel);

    size_t n = (size_t)(v->d * v->h * v->w);
    if (!labels) {
        v->val = malloc(n * sizeof *v->val);
        if (!v->val) return lsdm_err("out of memory");
        const uint8_t *base = (const uint8_t *)r->data + (size_t)channel * n * lsdm_dtype_size(r->dtype);
        lsdm_convert_to_f32(v->val, base, r->dtype, n);
    } else {
        v->lab = malloc(n * sizeof *v->lab);
        if (!v->lab) return lsdm_err("out of memory");
        if (semantic && c > 1) {
            for (size_t i = 0; i < n; i++) {
                int64_t best = 0;
                double bv = lsdm_elem_get(r->data, r->dtype, i);
                for (int64_t k = 1; k < c; k++) {
                    double x = lsdm_elem_get(r->data, r->dtype, (size_t)k * n + i);
                    if (x > bv) { bv = x; best = k; }
                }
                v->lab[i] = (int32_t)best;
            }
        } else {
            for (size_t i = 0; i < n; i++) v->lab[i] = to_label(lsdm_elem_get(r->data, r->dtype, (size_t)channel * n + i));
        }
        if (!is_integer_dtype(r->dtype) && !semantic)
            lsdm_verbose("record '%s': %s labels rounded to integers", name, lsdm_dtype_name(r->dtype));
    }

    /* spacing: the key, else the affine's column lengths, else 1 mm */
    double a[16];
    int has_affine = lsdm_record_get_affine(r, a) == 1, has_spacing = lsdm_record_get_spacing(r, v->sp) == 1;
    lsdm_err_clear();
    for (int k = 0; k < 3; k++) {
        if (!has_spacing) v->sp[k] = has_affine ? sqrt(a[k] * a[k] + a[4 + k] * a[4 + k] + a[8 + k] * a[8 + k]) : 1;
        if (!(v->sp[k] > 0) || !isfinite(v->sp[k])) v->sp[k] = 1;
    }
    if (has_affine) {
        char code[4];
        lsdm_orientation(a, v->dhw, code);
    }
    return 0;
}

/* Slice count, tile size and flip of a plane. The finer of the two in-plane
 * spacings becomes the pixel size (divided by scale). */
static int plane_setup(const png_volume *v, int plane, double scale, png_plane *p) {
    int row_axis;
    if (plane == PLANE_AXIAL) {
        p->nslices = v->d; p->nrows = v->h; p->ncols = v->w;
        p->row_sp = v->sp[1]; p->col_sp = v->sp[2]; row_axis = 1;
    } else if (plane == PLANE_CORONAL) {
        p->nslices = v->h; p->nrows = v->d; p->ncols = v->w;
        p->row_sp = v->sp[0]; p->col_sp = v->sp[2]; row_axis = 0;
    } else {
        p->nslices = v->w; p->nrows = v->d; p->ncols = v->h;
        p->row_sp = v->sp[0]; p->col_sp = v->sp[1]; row_axis = 0;
    }
    p->flip = v->dhw[row_axis] == 'S' || v->dhw[row_axis] == 'A';
    double pix = fmin(p->row_sp, p->col_sp) / scale;
    double rows = nearbyint((double)p->nrows * p->row_sp / pix), cols = nearbyint((double)p->ncols * p->col_sp / pix);
    if (rows > MAX_SIDE || cols > MAX_SIDE)
        return lsdm_err("picture would be %.0fx%.0f pixels (over %d a side); use a smaller --scale", cols, rows, MAX_SIDE);
    p->out_rows = rows < 1 ? 1 : (int)rows;
    p->out_cols = cols < 1 ? 1 : (int)cols;
    return 0;
}

/* Flat index of (slice, row, col) of a plane in a D,H,W volume. */
static size_t voxel_index(const png_volume *v, int plane, int64_t s, int64_t r, int64_t c) {
    int64_t d, h, w;
    if (plane == PLANE_AXIAL) { d = s; h = r; w = c; }
    else if (plane == PLANE_CORONAL) { d = r; h = s; w = c; }
    else { d = r; h = c; w = s; }
    return (size_t)((d * v->h + h) * v->w + w);
}

static uint8_t grey_level(float x, double lo, double hi) {
    if (isnan(x)) return 0;
    if (!(hi > lo)) return x > lo ? 255 : 0; /* a flat window thresholds */
    double g = nearbyint(255.0 * ((double)x - lo) / (hi - lo));
    return (uint8_t)(g < 0 ? 0 : g > 255 ? 255 : g);
}

/* Draw one slice into the picture at (y0, x0), nearest-neighbour resampled
 * to the tile size. img is the grey image or the label map; over (may be
 * NULL) a label map drawn over it with opacity alpha. */
static void draw_tile(uint8_t *pix, int width, int channels, int y0, int x0, const png_volume *img,
                      const png_volume *over, int plane, const png_plane *p, int64_t slice, double lo, double hi,
                      double alpha) {
    for (int y = 0; y < p->out_rows; y++) {
        int64_t r = (int64_t)(((double)y + 0.5) * (double)p->nrows / p->out_rows);
        if (r >= p->nrows) r = p->nrows - 1;
        if (p->flip) r = p->nrows - 1 - r;
        for (int x = 0; x < p->out_cols; x++) {
            int64_t c = (int64_t)(((double)x + 0.5) * (double)p->ncols / p->out_cols);
            if (c >= p->ncols) c = p->ncols - 1;
            size_t i = voxel_index(img, plane, slice, r, c);
            uint8_t *px = pix + ((size_t)(y0 + y) * (size_t)width + (size_t)(x0 + x)) * (size_t)channels;
            if (img->lab) { /* a label map on its own */
                int32_t id = img->lab[i];
                for (int k = 0; k < 3; k++) px[k] = id > 0 ? palette[(id - 1) % 20][k] : 0;
                continue;
            }
            uint8_t g = grey_level(img->val[i], lo, hi);
            for (int k = 0; k < channels; k++) px[k] = g;
            if (!over || over->lab[i] <= 0) continue;
            const uint8_t *col = palette[(over->lab[i] - 1) % 20];
            for (int k = 0; k < 3; k++) px[k] = (uint8_t)nearbyint((1 - alpha) * g + alpha * col[k]);
        }
    }
}

static int parse_window(const char *s, png_opts *o) {
    char *end;
    o->lo = strtod(s, &end);
    if (end == s || *end != ',') return lsdm_err("--window: '%s' is not LO,HI", s);
    const char *h = end + 1;
    o->hi = strtod(h, &end);
    if (end == h || *end || !isfinite(o->lo) || !isfinite(o->hi) || o->hi < o->lo)
        return lsdm_err("--window: '%s' is not LO,HI with LO <= HI", s);
    o->window_given = 1;
    return 0;
}

static int parse_grid(const char *s, png_opts *o) {
    char *end;
    long c = strtol(s, &end, 10);
    if (end == s || *end != 'x') return lsdm_err("--montage: '%s' is not COLSxROWS", s);
    const char *r = end + 1;
    long rows = strtol(r, &end, 10);
    if (end == r || *end || c < 1 || rows < 1 || c > 256 || rows > 256)
        return lsdm_err("--montage: '%s' is not COLSxROWS (1..256 each)", s);
    o->cols = c;
    o->rows = rows;
    return 0;
}

/* COLSxROWS right after a bare --montage is its value (getopt only takes
 * optional values written as --montage=CxR). */
static int looks_like_grid(const char *s) {
    if (!s) return 0;
    size_t digits = strspn(s, "0123456789");
    return digits > 0 && s[digits] == 'x' && strspn(s + digits + 1, "0123456789") == strlen(s + digits + 1) && s[digits + 1];
}

static int parse_args(int argc, char **argv, png_opts *o) {
    static const struct option longopts[] = {
        LSDM_COMMON_LONGOPTS,
        {"output", required_argument, 0, 'o'},
        {"plane", required_argument, 0, OPT_PLANE},
        {"slice", required_argument, 0, OPT_SLICE},
        {"montage", optional_argument, 0, OPT_MONTAGE},
        {"record", required_argument, 0, OPT_RECORD},
        {"channel", required_argument, 0, OPT_CHANNEL},
        {"labels", required_argument, 0, OPT_LABELS},
        {"alpha", required_argument, 0, OPT_ALPHA},
        {"window", required_argument, 0, OPT_WINDOW},
        {"scale", required_argument, 0, OPT_SCALE},
        {0, 0, 0, 0},
    };
    *o = (png_opts){.output = "-", .slice = -1, .alpha = 0.5, .scale = 1};
    int c;
    while ((c = getopt_long(argc, argv, LSDM_COMMON_SHORTOPTS "o:", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': o->output = optarg; break;
        case OPT_PLANE: {
            int k = 0;
            while (k < 3 && strcmp(optarg, plane_names[k])) k++;
            if (k == 3) return lsdm_usage_error("--plane: '%s' is not axial, coronal or sagittal", optarg);
            o->plane = k;
        } break;
        case OPT_SLICE:
            if (lsdm_parse_long(optarg, 0, INT32_MAX, &o->slice)) return lsdm_usage_error("--slice: %s", lsdm_err_msg());
            break;
        case OPT_MONTAGE:
            o->montage = 1;
            if (!optarg && optind < argc && looks_like_grid(argv[optind])) optarg = argv[optind++];
            if (optarg && parse_grid(optarg, o)) return lsdm_usage_error("%s", lsdm_err_msg());
            break;
        case OPT_RECORD:
            if (lsdm_parse_long(optarg, 0, INT32_MAX, &o->record)) return lsdm_usage_error("--record: %s", lsdm_err_msg());
            break;
        case OPT_CHANNEL:
            if (lsdm_parse_long(optarg, 0, INT32_MAX, &o->channel)) return lsdm_usage_error("--channel: %s", lsdm_err_msg());
            break;
        case OPT_LABELS: o->labels = optarg; break;
        case OPT_ALPHA:
            if (lsdm_parse_double(optarg, &o->alpha) || o->alpha < 0 || o->alpha > 1)
                return lsdm_usage_error("--alpha: '%s' is not a number from 0 to 1", optarg);
            break;
        case OPT_WINDOW:
            if (parse_window(optarg, o)) return lsdm_usage_error("%s", lsdm_err_msg());
            break;
        case OPT_SCALE:
            if (lsdm_parse_double(optarg, &o->scale) || o->scale < 0.01 || o->scale > 64)
                return lsdm_usage_error("--scale: '%s' is not a number from 0.01 to 64", optarg);
            break;
        LSDM_CLI_DEFAULT(c, HELP);
        }
    }
    if (argc - optind > MAX_PANELS) return lsdm_usage_error("at most %d INPUTs (got %d)", MAX_PANELS, argc - optind);
    o->ninputs = optind < argc ? argc - optind : 1;
    int stdin_uses = o->labels && !strcmp(o->labels, "-");
    for (int i = 0; i < o->ninputs; i++) {
        o->inputs[i] = optind < argc ? argv[optind + i] : "-";
        stdin_uses += !strcmp(o->inputs[i], "-");
    }
    if (o->montage && o->slice >= 0) return lsdm_usage_error("--slice and --montage exclude each other");
    if (stdin_uses > 1) return lsdm_usage_error("only one of the INPUTs and --labels can be standard input");
    return -1;
}

/* The slices to draw: one, or evenly spaced ones for a montage (the
 * middle of n equal bins, so the empty first and last slices are not
 * shown). Returns the count; tiles beyond it stay black. */
static long pick_slices(const png_opts *o, const png_plane *p, long ntiles, int64_t *slices) {
    if (!o->montage) {
        slices[0] = o->slice >= 0 ? o->slice : p->nslices / 2;
        return 1;
    }
    long n = ntiles < p->nslices ? ntiles : (long)p->nslices;
    for (long i = 0; i < n; i++) slices[i] = (int64_t)((2 * i + 1) * p->nslices / (2 * n));
    return n;
}

/* One panel: a record, its overlay and its grey window. */
typedef struct {
    lsdm_record rec, lrec;
    png_volume img, over;
    double lo, hi;
} png_panel;

/* Everything main owns, freed in one place on every path. */
typedef struct {
    png_panel panels[MAX_PANELS];
    int npanels;
    int64_t *slices;
    uint8_t *pix;
} png_job;

static void png_job_free(png_job *j) {
    for (int i = 0; i < j->npanels; i++) {
        lsdm_record_free(&j->panels[i].rec);
        lsdm_record_free(&j->panels[i].lrec);
        volume_free(&j->panels[i].img);
        volume_free(&j->panels[i].over);
    }
    free(j->slices);
    free(j->pix);
}

/* Read panel i's record (by --record for the first, else by the first's
 * name) and its overlay, settle its window. */
static int panel_load(png_job *j, int i, const png_opts *o) {
    png_panel *pn = &j->panels[i];
    const char *first = i ? lsdm_record_get(&j->panels[0].rec, "name") : NULL;
    j->npanels = i + 1;
    if (read_record(o->inputs[i], o->record, first, 0, &pn->rec) || volume_from_record(&pn->rec, o->channel, 0, &pn->img))
        return -1;
    const char *name = lsdm_record_get(&pn->rec, "name");
    png_volume *img = &pn->img, *over = &pn->over;
    if (i) {
        const png_volume *v0 = &j->panels[0].img;
        if (img->d != v0->d || img->h != v0->h || img->w != v0->w)
            return lsdm_err("'%s' of %s is %lldx%lldx%lld but '%s' of %s is %lldx%lldx%lld (DxHxW): panels side by "
                            "side need one shape", name, o->inputs[i], (long long)img->d, (long long)img->h,
                            (long long)img->w, first, o->inputs[0], (long long)v0->d, (long long)v0->h, (long long)v0->w);
    }
    if (o->labels && img->val) {
        if (read_record(o->labels, o->record, name, 1, &pn->lrec) || volume_from_record(&pn->lrec, 0, 1, over)) return -1;
        if (over->d != img->d || over->h != img->h || over->w != img->w)
            return lsdm_err("labels '%s' are %lldx%lldx%lld but image '%s' is %lldx%lldx%lld (DxHxW)",
                            lsdm_record_get(&pn->lrec, "name"), (long long)over->d, (long long)over->h,
                            (long long)over->w, name, (long long)img->d, (long long)img->h, (long long)img->w);
    } else if (o->labels && o->ninputs == 1) {
        return lsdm_err("--labels needs an image record, but '%s' is a label map", name);
    }
    pn->lo = o->lo, pn->hi = o->hi;
    if (img->val && !o->window_given) { /* 1st and 99th percentile of the whole volume */
        double q[2] = {1, 99}, w[2];
        if (lsdm_percentiles(img->val, LSDM_F32, (size_t)(img->d * img->h * img->w), q, 2, w))
            return lsdm_err_ctx("record '%s' (use --window)", name);
        pn->lo = w[0];
        pn->hi = w[1];
    }
    return 0;
}

static int png_load(png_job *j, const png_opts *o) {
    for (int i = 0; i < o->ninputs; i++)
        if (panel_load(j, i, o)) return -1;
    return 0;
}

/* Lay out the tiles of every panel, draw them and write the PNG. */
static int png_render(png_job *j, const png_opts *o) {
    const png_panel *p0 = &j->panels[0];
    const char *name = lsdm_record_get(&p0->rec, "name");
    png_plane p = {0};
    if (plane_setup(&p0->img, o->plane, o->scale, &p)) return -1;
    if (!o->montage && o->slice >= p.nslices)
        return lsdm_err("slice %ld is out of range: the %s plane of '%s' has %lld slices (0..%lld)", o->slice,
                        plane_names[o->plane], name, (long long)p.nslices, (long long)p.nslices - 1);
    long cols = 1, rows = 1;
    if (o->montage) {
        cols = o->cols;
        rows = o->rows;
        if (!cols) { /* default grid: up to 16 slices, near-square */
            long n = p.nslices < 16 ? (long)p.nslices : 16;
            cols = (long)ceil(sqrt((double)n));
            rows = (n + cols - 1) / cols;
        }
    }
    long panel_w = cols * p.out_cols;
    double w = (double)j->npanels * panel_w + (j->npanels - 1) * PANEL_GAP, h = (double)rows * p.out_rows;
    if (w > MAX_SIDE || h > MAX_SIDE || w * h > (double)MAX_PIXELS)
        return lsdm_err("picture would be %.0fx%.0f pixels (limits: %d a side, %ld in all); use a smaller grid or --scale",
                        w, h, MAX_SIDE, MAX_PIXELS);
    int width = (int)w, height = (int)h, channels = 1;
    for (int i = 0; i < j->npanels; i++)
        if (j->panels[i].img.lab || j->panels[i].over.lab) channels = 3;
    j->slices = malloc((size_t)(cols * rows) * sizeof *j->slices);
    j->pix = calloc((size_t)width * (size_t)height, (size_t)channels);
    if (!j->slices || !j->pix) return lsdm_err("out of memory");
    long n = pick_slices(o, &p, cols * rows, j->slices);

    for (int i = 0; i < j->npanels; i++) {
        const png_panel *pn = &j->panels[i];
        int x_panel = (int)(i * (panel_w + PANEL_GAP));
        for (long t = 0; t < n; t++)
            draw_tile(j->pix, width, channels, (int)(t / cols) * p.out_rows, x_panel + (int)(t % cols) * p.out_cols,
                      &pn->img, pn->over.lab ? &pn->over : NULL, o->plane, &p, j->slices[t], pn->lo, pn->hi, o->alpha);
    }

    /* what was drawn, for people and tests: in a tEXt chunk */
    char comment[512];
    int len = snprintf(comment, sizeof comment, "vol-png/%s record=%ld name=%.200s plane=%s %s=%lld", LSDM_VERSION,
                       o->record, name, plane_names[o->plane], o->montage ? "slices" : "slice", (long long)j->slices[0]);
    for (long t = 1; t < n && len < (int)sizeof comment - 24; t++)
        len += snprintf(comment + len, sizeof comment - (size_t)len, ",%lld", (long long)j->slices[t]);
    if (p0->img.val && len < (int)sizeof comment - 64)
        len += snprintf(comment + len, sizeof comment - (size_t)len, " window=%.9g,%.9g", p0->lo, p0->hi);
    if (j->npanels > 1 && len < (int)sizeof comment - 16)
        snprintf(comment + len, sizeof comment - (size_t)len, " panels=%d", j->npanels);
    lsdm_verbose("%dx%d %s picture, %d panel(s), %ld slice(s), rows %s", width, height, channels == 3 ? "RGB" : "grey",
                 j->npanels, n, p.flip ? "flipped" : "in array order");
    return lsdm_png_write(o->output, width, height, channels, j->pix, comment, lsdm_opt.force);
}

int main(int argc, char **argv) {
    lsdm_cli_init("vol-png", argv);
    png_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) return rc;

    png_job job;
    memset(&job, 0, sizeof job);
    rc = png_load(&job, &o) || png_render(&job, &o);
    png_job_free(&job);
    return rc ? lsdm_fail() : 0;
}
