/* vol-metrics: paired image metrics (PSNR, SSIM, MS-SSIM, RMSE, MAE) of
 * the volumes of a reference input A and a test input B, record by record,
 * then their mean. A table, --json or --csv (the style of dice-eval). */
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "textout.h"
#include "imgmetrics.h"
#include "record.h"
#include "volsrc.h"

static const char HELP[] =
    "Usage: vol-metrics [OPTION]... A B\n"
    "Compare the volumes of B with the reference volumes of A (each a tensor\n"
    "stream, a NIfTI file, a directory or an archive of NIfTI files; '-' is\n"
    "standard input for one of them), paired in order; records of C,D,H,W\n"
    "voxels must have the same shape. All sums in float64. Per pair:\n"
    "  psnr     10 log10(R^2 / MSE) in dB, R the data range; 'inf' when A = B\n"
    "  ssim     3-D SSIM as scikit-image structural_similarity(gaussian_weights=True,\n"
    "           sigma=1.5, use_sample_covariance=False, data_range=R, K1=0.01,\n"
    "           K2=0.03): Gaussian window of 11 taps, the SSIM map cropped by 5\n"
    "           voxels at every border, its mean; per channel, averaged. A volume\n"
    "           thinner than 11 along an axis gets the largest odd window that\n"
    "           fits (win_size of skimage: 'reflect' borders, crop (win-1)/2);\n"
    "           axes of extent 1 are left out (a 1,1,H,W record is 2-D)\n"
    "  ms_ssim  MS-SSIM as pytorch_msssim.ms_ssim: 5 scales, weights 0.0448,\n"
    "           0.2856, 0.3001, 0.2363, 0.1333, 2x average pooling; needs the\n"
    "           two last axes longer than 1 above 160 voxels, else fewer scales\n"
    "           (while they exceed 10*2^(L-1)) with the first L weights scaled\n"
    "           to sum 1 (said once on stderr); under 11 voxels: an error\n"
    "  rmse     root mean squared difference, over all channels\n"
    "  mae      mean absolute difference, over all channels\n"
    "Then the mean over records ('inf' for psnr if any pair is identical).\n"
    "\n"
    "  -r, --range R         data range R of psnr, ssim and ms_ssim (default 2,\n"
    "                        for volumes in [-1,1]); 'auto': max(A) - min(A) of\n"
    "                        each reference record (skimage's data_range=None\n"
    "                        takes it from the dtype instead: 2 for floats with\n"
    "                        negative values, as our default)\n"
    "      --rescale MODE    none (default), or minmax: each volume of A and of B\n"
    "                        mapped to [-1,1] by its own min and max first (as\n"
    "                        vq-train and vq-encode see images; for real volumes\n"
    "                        against synthetic ones in [-1,1])\n"
    "  -m, --metrics LIST    which metrics, in this order, comma-separated\n"
    "                        (default psnr,ssim,ms_ssim,rmse,mae; ssim and\n"
    "                        ms_ssim cost the most)\n"
    "      --mask LABELS     label maps paired with the records: psnr, rmse and\n"
    "                        mae count only voxels with a nonzero label (every\n"
    "                        channel); ssim and ms_ssim stay whole-volume\n"
    "      --json            one JSON document (psnr of identical volumes is\n"
    "                        null with \"psnr_infinite\": true)\n"
    "      --csv             comma-separated values with a header line\n"
    "  -j, --threads N       CPU threads (default: OMP_NUM_THREADS, else all cores)\n"
    LSDM_COMMON_HELP
    "\n"
    "Exit status: 0 ok, 1 unreadable, mismatched or NaN inputs, 2 usage error.\n";

enum { OPT_JSON = LSDM_OPT_FIRST_TOOL, OPT_CSV, OPT_MASK, OPT_RESCALE };
enum { FMT_TEXT, FMT_JSON, FMT_CSV };
enum { M_PSNR, M_SSIM, M_MS_SSIM, M_RMSE, M_MAE, M_COUNT };
static const char *const metric_names[M_COUNT] = {"psnr", "ssim", "ms_ssim", "rmse", "mae"};

typedef struct {
    const char *a, *b, *mask;
    double range; /* 0: auto */
    int rescale;  /* 1: minmax to [-1,1] */
    int metrics[M_COUNT], nmetrics;
    int format;
} metrics_opts;

/* One compared pair. */
typedef struct {
    char *name;
    int64_t voxels; /* counted by psnr/rmse/mae */
    double range;
    double v[M_COUNT];
    int ssim_window, ms_levels;
} metrics_row;

typedef struct {
    metrics_row *rows;
    int n, cap;
    /* said once, after every pair was measured (a failed run says only its error) */
    char note_window[256], note_levels[256];
} metrics_table;

static int parse_metrics(const char *s, metrics_opts *o) {
    o->nmetrics = 0;
    const char *p = s;
    while (*p) {
        size_t len = strcspn(p, ",");
        int m = -1;
        for (int k = 0; k < M_COUNT; k++)
            if (len == strlen(metric_names[k]) && !strncmp(p, metric_names[k], len)) m = k;
        if (len == 7 && !strncmp(p, "ms-ssim", 7)) m = M_MS_SSIM;
        if (m < 0) return lsdm_err("unknown metric '%.*s' (psnr, ssim, ms_ssim, rmse, mae)", (int)len, p);
        for (int k = 0; k < o->nmetrics; k++)
            if (o->metrics[k] == m) return lsdm_err("metric '%s' given twice", metric_names[m]);
        o->metrics[o->nmetrics++] = m;
        p += len;
        if (*p == ',' && *++p == 0) return lsdm_err("empty metric name");
    }
    if (!o->nmetrics) return lsdm_err("no metric given");
    return 0;
}

static int parse_args(int argc, char **argv, metrics_opts *o) {
    static const struct option longopts[] = {
        LSDM_COMMON_LONGOPTS,
        {"range", required_argument, 0, 'r'}, {"metrics", required_argument, 0, 'm'},
        {"mask", required_argument, 0, OPT_MASK},
        {"rescale", required_argument, 0, OPT_RESCALE}, {"json", no_argument, 0, OPT_JSON},
        {"csv", no_argument, 0, OPT_CSV}, {"threads", required_argument, 0, 'j'},
        {0, 0, 0, 0},
    };
    int c;
    o->range = 2;
    parse_metrics("psnr,ssim,ms_ssim,rmse,mae", o);
    while ((c = getopt_long(argc, argv, LSDM_COMMON_SHORTOPTS "r:m:j:", longopts, NULL)) != -1) {
        switch (c) {
        case 'r':
            if (!strcmp(optarg, "auto")) o->range = 0;
            else if (lsdm_parse_double(optarg, &o->range) || !(o->range > 0) || !isfinite(o->range))
                return lsdm_usage_error("--range: want a positive number or 'auto', not '%s'", optarg);
            break;
        case 'm':
            if (parse_metrics(optarg, o)) return lsdm_usage_error("--metrics: %s", lsdm_err_msg());
            break;
        case OPT_MASK: o->mask = optarg; break;
        case OPT_RESCALE:
            if (!strcmp(optarg, "minmax")) o->rescale = 1;
            else if (!strcmp(optarg, "none")) o->rescale = 0;
            else return lsdm_usage_error("--rescale: '%s' is not minmax or none", optarg);
            break;
        case OPT_JSON:
        case OPT_CSV:
            if (o->format != FMT_TEXT) return lsdm_usage_error("--json and --csv exclude each other");
            o->format = c == OPT_JSON ? FMT_JSON : FMT_CSV;
            break;
        LSDM_CLI_DEFAULT(c, HELP);
        }
    }
    if (argc - optind != 2) return lsdm_usage_error("need two inputs, A and B (got %d)", argc - optind);
    o->a = argv[optind];
    o->b = argv[optind + 1];
    int stdin_uses = !strcmp(o->a, "-") + !strcmp(o->b, "-") + (o->mask && !strcmp(o->mask, "-"));
    if (stdin_uses > 1) return lsdm_usage_error("only one input can be standard input");
    return -1;
}

/* ---------------------------------------------------------------- checks */

static const char *rec_name(const lsdm_record *r) {
    const char *n = lsdm_record_get(r, "name");
    return n ? n : "(unnamed)";
}

/* Channels (all leading dims) and D,H,W (the last three, 1 where absent). */
static void volume_dims(const lsdm_record *r, int64_t *C, int64_t dims[3]) {
    *C = 1;
    for (int k = 0; k < 3; k++) dims[k] = 1;
    for (int i = 0; i < r->ndim; i++) {
        int k = i - (r->ndim - 3);
        if (k >= 0) dims[k] = r->shape[i];
        else *C *= r->shape[i];
    }
}

static int check_pair(const lsdm_record *a, const lsdm_record *b, const lsdm_record *m) {
    char sa[128], sb[128];
    lsdm_shape_format(sa, sizeof sa, a->ndim, a->shape);
    if (!lsdm_record_same_shape(a, b)) {
        lsdm_shape_format(sb, sizeof sb, b->ndim, b->shape);
        return lsdm_err("records '%s' (A) and '%s' (B): shapes differ: A %s, B %s", rec_name(a), rec_name(b), sa, sb);
    }
    if (!m) return 0;
    int64_t C, dims[3], Cm, dm[3];
    volume_dims(a, &C, dims);
    volume_dims(m, &Cm, dm);
    if (Cm != 1 || memcmp(dims, dm, sizeof dims)) {
        lsdm_shape_format(sb, sizeof sb, m->ndim, m->shape);
        return lsdm_err("record '%s': the mask '%s' has shape %s, not the D,H,W of %s", rec_name(a), rec_name(m), sb, sa);
    }
    if (lsdm_dtype_is_float(m->dtype))
        return lsdm_err("mask '%s' holds %s values, not a label map", rec_name(m), lsdm_dtype_name(m->dtype));
    return 0;
}

/* The record's values as doubles; NaN or infinity is an error. */
static double *record_doubles(const lsdm_record *r, const char *which) {
    size_t n = lsdm_record_numel(r);
    double *v = malloc((n ? n : 1) * sizeof *v);
    if (!v) { lsdm_err("out of memory"); return NULL; }
    if (r->dtype == LSDM_F32) {
        const float *f = r->data;
        for (size_t i = 0; i < n; i++) v[i] = f[i];
    } else
        for (size_t i = 0; i < n; i++) v[i] = lsdm_elem_get(r->data, r->dtype, i);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) {
            lsdm_err("record '%s': %s has %s at voxel %zu", rec_name(r), which, isnan(v[i]) ? "a NaN" : "an infinite value", i);
            free(v);
            return NULL;
        }
    return v;
}

/* ------------------------------------------------------------ measuring */

/* v (n values) to [-1,1] by its min and max; -1 for a constant volume. */
static int rescale_minmax(double *v, size_t n, const char *name, const char *which) {
    double lo = v[0], hi = v[0];
    for (size_t i = 1; i < n; i++) { lo = fmin(lo, v[i]); hi = fmax(hi, v[i]); }
    if (!(hi > lo)) return lsdm_err("record '%s': --rescale minmax: %s is constant (%g)", name, which, lo);
    for (size_t i = 0; i < n; i++) v[i] = 2 * (v[i] - lo) / (hi - lo) - 1;
    return 0;
}

static int wants(const metrics_opts *o, int m) {
    for (int k = 0; k < o->nmetrics; k++)
        if (o->metrics[k] == m) return 1;
    return 0;
}

static int measure(metrics_row *row, const metrics_opts *o, metrics_table *t, const lsdm_record *ra,
                   const lsdm_record *rb, const lsdm_record *rm) {
    int64_t C, dims[3];
    volume_dims(ra, &C, dims);
    int64_t S = dims[0] * dims[1] * dims[2];
    double *a = record_doubles(ra, "A"), *b = a ? record_doubles(rb, "B") : NULL;
    unsigned char *mask = NULL;
    int rc = -1;
    if (!a || !b) goto done;
    if (o->rescale && (rescale_minmax(a, (size_t)(C * S), row->name, "A") ||
                       rescale_minmax(b, (size_t)(C * S), row->name, "B")))
        goto done;
    if (rm) {
        if (!(mask = malloc((size_t)S))) { lsdm_err("out of memory"); goto done; }
        for (int64_t i = 0; i < S; i++) mask[i] = lsdm_elem_get(rm->data, rm->dtype, (size_t)i) != 0;
    }
    row->range = o->range;
    if (!o->range) {
        double lo = a[0], hi = a[0];
        for (int64_t i = 1; i < C * S; i++) { lo = fmin(lo, a[i]); hi = fmax(hi, a[i]); }
        if (!(hi > lo)) { lsdm_err("record '%s': --range auto: A is constant (%g); give --range R", row->name, lo); goto done; }
        row->range = hi - lo;
    }
    lsdm_imgm_errsum es;
    lsdm_imgm_errors(&es, a, b, mask, C, S);
    if (!es.n) { lsdm_err("record '%s': the mask has no foreground voxel", row->name); goto done; }
    row->voxels = es.n;
    row->v[M_RMSE] = sqrt(es.sse / (double)es.n);
    row->v[M_MAE] = es.sae / (double)es.n;
    row->v[M_PSNR] = lsdm_imgm_psnr(es.sse / (double)es.n, row->range);
    if (wants(o, M_SSIM)) {
        if (lsdm_imgm_ssim(&row->v[M_SSIM], &row->ssim_window, a, b, C, dims, row->range)) goto ctx;
        if (row->ssim_window < LSDM_SSIM_WIN && !t->note_window[0])
            snprintf(t->note_window, sizeof t->note_window, "note: record '%s' (%lldx%lldx%lld) is thinner than %d voxels: SSIM window %d (as skimage win_size=%d)",
                      row->name, (long long)dims[0], (long long)dims[1], (long long)dims[2], LSDM_SSIM_WIN,
                      row->ssim_window, row->ssim_window);
    }
    if (wants(o, M_MS_SSIM)) {
        if (lsdm_imgm_ms_ssim(&row->v[M_MS_SSIM], &row->ms_levels, a, b, C, dims, row->range, 0)) goto ctx;
        if (row->ms_levels < LSDM_MS_SSIM_LEVELS && !t->note_levels[0])
            snprintf(t->note_levels, sizeof t->note_levels, "note: record '%s' (%lldx%lldx%lld) is too small for %d MS-SSIM scales: using %d (weights renormalised)",
                      row->name, (long long)dims[0], (long long)dims[1], (long long)dims[2], LSDM_MS_SSIM_LEVELS,
                      row->ms_levels);
    }
    rc = 0;
    goto done;
ctx:
    lsdm_err_ctx("record '%s'", row->name);
done:
    free(a);
    free(b);
    free(mask);
    return rc;
}

static metrics_row *table_new_row(metrics_table *t, const char *name) {
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 16;
        metrics_row *rows = realloc(t->rows, (size_t)cap * sizeof *rows);
        if (!rows) { lsdm_err("out of memory"); return NULL; }
        t->rows = rows;
        t->cap = cap;
    }
    metrics_row *row = &t->rows[t->n];
    memset(row, 0, sizeof *row);
    if (!(row->name = strdup(name))) { lsdm_err("out of memory"); return NULL; }
    t->n++;
    return row;
}

static void table_free(metrics_table *t) {
    for (int i = 0; i < t->n; i++) free(t->rows[i].name);
    free(t->rows);
}

/* Next record of each input: 1 all have one, 0 all ended, -1 error. */
static int next_pair(const metrics_opts *o, lsdm_volsrc *s[3], lsdm_record r[3], long k) {
    const char *path[3] = {o->a, o->b, o->mask};
    int got[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++)
        if (s[i] && (got[i] = lsdm_volsrc_next(s[i], &r[i])) < 0) return -1;
    for (int i = 1; i < 3; i++)
        if (s[i] && got[i] != got[0])
            return lsdm_err("%s has %ld records, %s more", got[0] ? path[i] : path[0], k, got[0] ? path[0] : path[i]);
    return got[0];
}

static int compare_inputs(const metrics_opts *o, metrics_table *t) {
    lsdm_nifti_opts no = {.labels = 0, .role = NULL}, nm = {.labels = 1, .role = NULL};
    lsdm_volsrc *s[3] = {NULL, NULL, NULL};
    lsdm_record r[3];
    for (int i = 0; i < 3; i++) lsdm_record_init(&r[i]);
    int rc = -1;
    long k = 0;
    if (!(s[0] = lsdm_volsrc_open(o->a, &no)) || !(s[1] = lsdm_volsrc_open(o->b, &no)) ||
        (o->mask && !(s[2] = lsdm_volsrc_open(o->mask, &nm))))
        goto done;
    for (;; k++) {
        int g = next_pair(o, s, r, k);
        if (g <= 0) { rc = g; break; }
        metrics_row *row;
        if (check_pair(&r[0], &r[1], s[2] ? &r[2] : NULL) || !(row = table_new_row(t, rec_name(&r[0]))) ||
            measure(row, o, t, &r[0], &r[1], s[2] ? &r[2] : NULL))
            break;
        lsdm_progress(k + 1, 0, "pairs");
    }
    lsdm_progress_end();
    if (!rc && k == 0) rc = lsdm_err("no records to compare");
done:
    for (int i = 0; i < 3; i++) {
        lsdm_record_free(&r[i]);
        lsdm_volsrc_close(s[i]);
    }
    return rc;
}

/* -------------------------------------------------------------- output */

/* The mean over records of each metric (psnr +inf if any is). */
static void table_mean(const metrics_table *t, metrics_row *mean) {
    memset(mean, 0, sizeof *mean);
    for (int m = 0; m < M_COUNT; m++) {
        double s = 0;
        for (int i = 0; i < t->n; i++) s += t->rows[i].v[m];
        mean->v[m] = s / t->n;
    }
}

static void text_line(const metrics_opts *o, const char *label, int namew, const metrics_row *r) {
    printf("%-*s", namew, label);
    for (int k = 0; k < o->nmetrics; k++) {
        int m = o->metrics[k];
        double v = r->v[m];
        if (isinf(v)) printf("  %10s", "inf");
        else if (m == M_PSNR) printf("  %10.4f", v);
        else if (m == M_SSIM || m == M_MS_SSIM) printf("  %10.6f", v);
        else printf("  %10.6g", v);
    }
    putchar('\n');
}

static void print_text(const metrics_opts *o, const metrics_table *t, const metrics_row *mean) {
    int namew = 8;
    for (int i = 0; i < t->n; i++)
        if ((int)strlen(t->rows[i].name) > namew) namew = (int)strlen(t->rows[i].name);
    printf("%-*s", namew, "record");
    for (int k = 0; k < o->nmetrics; k++) printf("  %10s", metric_names[o->metrics[k]]);
    putchar('\n');
    for (int i = 0; i < t->n; i++) text_line(o, t->rows[i].name, namew, &t->rows[i]);
    text_line(o, "(mean)", namew, mean);
}

static void csv_line(const metrics_opts *o, const char *label, const metrics_row *r) {
    char b[64];
    lsdm_csv_field(label);
    for (int k = 0; k < o->nmetrics; k++) {
        lsdm_fmt_num(b, sizeof b, r->v[o->metrics[k]]);
        printf(",%s", b);
    }
    putchar('\n');
}

static void print_csv(const metrics_opts *o, const metrics_table *t, const metrics_row *mean) {
    fputs("record", stdout);
    for (int k = 0; k < o->nmetrics; k++) printf(",%s", metric_names[o->metrics[k]]);
    putchar('\n');
    for (int i = 0; i < t->n; i++) csv_line(o, t->rows[i].name, &t->rows[i]);
    csv_line(o, "(mean)", mean);
}

/* "psnr": x, "psnr_infinite": b, "ssim": x, ... in the order asked; with
 * details (a record) also its range, window and scales. */
static void json_metrics(const metrics_opts *o, const metrics_row *r, int details) {
    for (int k = 0; k < o->nmetrics; k++) {
        int m = o->metrics[k];
        printf("%s\"%s\": ", k ? ", " : "", metric_names[m]);
        lsdm_json_num(r->v[m]);
        if (m == M_PSNR) printf(", \"psnr_infinite\": %s", isinf(r->v[m]) ? "true" : "false");
        if (m == M_SSIM && details) printf(", \"ssim_window\": %d", r->ssim_window);
        if (m == M_MS_SSIM && details) printf(", \"ms_ssim_scales\": %d", r->ms_levels);
    }
}

static void print_json(const metrics_opts *o, const metrics_table *t, const metrics_row *mean) {
    fputs("{\n  \"range\": ", stdout);
    if (o->range) lsdm_json_num(o->range);
    else fputs("\"auto\"", stdout);
    printf(",\n  \"rescale\": \"%s\"", o->rescale ? "minmax" : "none");
    fputs(",\n  \"metrics\": [", stdout);
    for (int k = 0; k < o->nmetrics; k++) printf("%s\"%s\"", k ? ", " : "", metric_names[o->metrics[k]]);
    printf("],\n  \"masked\": %s,\n  \"records\": [\n", o->mask ? "true" : "false");
    for (int i = 0; i < t->n; i++) {
        const metrics_row *r = &t->rows[i];
        fputs("    {\"name\": ", stdout);
        lsdm_json_str(r->name);
        printf(", \"voxels\": %lld, \"range\": ", (long long)r->voxels);
        lsdm_json_num(r->range);
        fputs(", ", stdout);
        json_metrics(o, r, 1);
        printf("}%s\n", i + 1 < t->n ? "," : "");
    }
    printf("  ],\n  \"mean\": {\"records\": %d, ", t->n);
    json_metrics(o, mean, 0);
    fputs("}\n}\n", stdout);
}

static int report(const metrics_opts *o, const metrics_table *t) {
    metrics_row mean;
    table_mean(t, &mean);
    if (o->format == FMT_JSON) print_json(o, t, &mean);
    else if (o->format == FMT_CSV) print_csv(o, t, &mean);
    else print_text(o, t, &mean);
    if (fflush(stdout) || ferror(stdout)) return lsdm_err("cannot write the report to standard output");
    return 0;
}

int main(int argc, char **argv) {
    lsdm_cli_init("vol-metrics", argv);
    metrics_opts o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) return rc;
    if (lsdm_opt.threads > 0) omp_set_num_threads(lsdm_opt.threads);

    metrics_table t = {0};
    rc = compare_inputs(&o, &t);
    if (!rc && t.note_window[0]) lsdm_note("%s", t.note_window);
    if (!rc && t.note_levels[0]) lsdm_note("%s", t.note_levels);
    if (!rc) rc = report(&o, &t);
    if (!rc) lsdm_verbose("%d record pair(s)", t.n);
    table_free(&t);
    return rc ? lsdm_fail() : 0;
}
