/* dice-eval: Dice overlap of predicted label maps with reference label
 * maps, record by record: per class, the mean over foreground classes and
 * the Med-LSDM reference code's global Dice; then the mean over records
 * and the score of the pooled counts. A table, --json or --csv. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dice.h"
#include "err.h"
#include "textout.h"
#include "record.h"
#include "volsrc.h"

static const char HELP[] =
    "Usage: dice-eval [OPTION]... PRED REF\n"
    "Compare the label maps of PRED with those of REF (each a tensor stream,\n"
    "a NIfTI file, a directory or an archive of NIfTI files; '-' is standard\n"
    "input for one of them), paired in order. For each pair and class c:\n"
    "Dice = 2|P_c and R_c| / (|P_c| + |R_c|); the mean over the foreground\n"
    "classes 1..N-1; and the global Dice of the Med-LSDM reference code,\n"
    "(2 sum_c |P_c and R_c| + 1) / (sum_c |P_c| + sum_c |R_c| + 1) over all\n"
    "classes. A class absent from both maps is 'empty' and left out of means.\n"
    "Then the mean over records and the scores of the pooled counts.\n"
    "\n"
    "  -n, --classes N       classes 0..N-1 (default: the largest label found or\n"
    "                        named in a labels key, plus one); a label >= N is\n"
    "                        an error\n"
    "      --json            one JSON document (with the voxel counts)\n"
    "      --csv             comma-separated values with a header line\n"
    "      --ignore-geometry do not require equal affines (shapes must still match)\n"
    LSDM_COMMON_HELP
    "\n"
    "Exit status: 0 ok, 1 unreadable or mismatched inputs, 2 usage error.\n";

enum { OPT_JSON = LSDM_OPT_FIRST_TOOL, OPT_CSV, OPT_IGNORE_GEOMETRY };
enum { FMT_TEXT, FMT_JSON, FMT_CSV };

typedef struct {
    const char *pred, *ref;
    int classes; /* 0: from the data */
    int format;
    int ignore_geometry;
} dice_opts;

/* One compared pair. */
typedef struct {
    char *name;
    lsdm_dice_counts c;
} dice_row;

typedef struct {
    dice_row *rows;
    int n, cap;
    int classes;        /* classes reported: 0..classes-1 */
    lsdm_labels names;  /* from the first labels key seen (REF first) */
    int have_names;
} dice_table;

static int parse_args(int argc, char **argv, dice_opts *o) {
    static const struct option longopts[] = {
        LSDM_COMMON_LONGOPTS,
        {"classes", required_argument, 0, 'n'}, {"json", no_argument, 0, OPT_JSON},
        {"csv", no_argument, 0, OPT_CSV}, {"ignore-geometry", no_argument, 0, OPT_IGNORE_GEOMETRY},
        {0, 0, 0, 0},
    };
    int c;
    long v;
    while ((c = getopt_long(argc, argv, LSDM_COMMON_SHORTOPTS "n:", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (lsdm_parse_long(optarg, 1, LSDM_DICE_MAX_CLASSES, &v)) return lsdm_usage_error("--classes: %s", lsdm_err_msg());
            o->classes = (int)v;
            break;
        case OPT_JSON:
        case OPT_CSV:
            if (o->format != FMT_TEXT) return lsdm_usage_error("--json and --csv exclude each other");
            o->format = c == OPT_JSON ? FMT_JSON : FMT_CSV;
            break;
        case OPT_IGNORE_GEOMETRY: o->ignore_geometry = 1; break;
        LSDM_CLI_DEFAULT(c, HELP);
        }
    }
    if (argc - optind != 2) return lsdm_usage_error("need two inputs, PRED and REF (got %d)", argc - optind);
    o->pred = argv[optind];
    o->ref = argv[optind + 1];
    if (!strcmp(o->pred, "-") && !strcmp(o->ref, "-")) return lsdm_usage_error("PRED and REF cannot both be standard input");
    return -1;
}

/* ---------------------------------------------------------------- checks */

static const char *rec_name(const lsdm_record *r) {
    const char *n = lsdm_record_get(r, "name");
    return n ? n : "(unnamed)";
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* A single NIfTI file names its record after the file; naming two files
 * on the command line is what pairs them, so such names are not compared. */
static int names_comparable(const char *path, const lsdm_volsrc *s) {
    return lsdm_volsrc_is_stream(s) || !(ends_with(path, ".nii") || ends_with(path, ".nii.gz"));
}

/* Affines equal to float precision (a NIfTI header keeps them as f32). */
static int check_geometry(const lsdm_record *p, const lsdm_record *r) {
    double a[16], b[16];
    int ha = lsdm_record_get_affine(p, a), hb = lsdm_record_get_affine(r, b);
    if (ha < 0 || hb < 0) return lsdm_err_ctx("record '%s'", rec_name(ha < 0 ? p : r));
    if (!ha || !hb) {
        lsdm_verbose("record '%s': %s has no affine; geometry not compared", rec_name(r), ha ? "REF" : "PRED");
        return 0;
    }
    for (int i = 0; i < 16; i++) {
        double m = fmax(1.0, fmax(fabs(a[i]), fabs(b[i])));
        if (fabs(a[i] - b[i]) > 1e-4 * m)
            return lsdm_err("record '%s': PRED and REF affines differ (element %d: %g vs %g; --ignore-geometry to compare anyway)",
                            rec_name(r), i, a[i], b[i]);
    }
    return 0;
}

static int check_pair(const dice_opts *o, const lsdm_record *p, const lsdm_record *r, int compare_names) {
    const char *np = lsdm_record_get(p, "name"), *nr = lsdm_record_get(r, "name");
    if (compare_names && np && nr && strcmp(np, nr))
        return lsdm_err("record names differ: PRED '%s', REF '%s' (records are paired in order)", np, nr);
    if (lsdm_dtype_is_float(p->dtype) || lsdm_dtype_is_float(r->dtype))
        return lsdm_err("record '%s': %s holds %s values, not a label map (need u8, i16 or i32)", rec_name(r),
                        lsdm_dtype_is_float(p->dtype) ? "PRED" : "REF",
                        lsdm_dtype_name(lsdm_dtype_is_float(p->dtype) ? p->dtype : r->dtype));
    if (!lsdm_record_same_shape(p, r)) {
        char sp[128], sr[128];
        lsdm_shape_format(sp, sizeof sp, p->ndim, p->shape);
        lsdm_shape_format(sr, sizeof sr, r->ndim, r->shape);
        return lsdm_err("record '%s': shapes differ: PRED %s, REF %s", rec_name(r), sp, sr);
    }
    return o->ignore_geometry ? 0 : check_geometry(p, r);
}

/* ------------------------------------------------------------- counting */

static int table_names(dice_table *t, const lsdm_record *r) {
    const char *key = lsdm_record_get(r, "labels");
    if (t->have_names || !key) return 0;
    if (lsdm_labels_parse(key, &t->names)) return lsdm_err_ctx("record '%s': labels key", rec_name(r));
    t->have_names = 1;
    return 0;
}

static int table_add(dice_table *t, const dice_opts *o, const lsdm_record *p, const lsdm_record *r) {
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 16;
        dice_row *rows = realloc(t->rows, (size_t)cap * sizeof *rows);
        if (!rows) return lsdm_err("out of memory");
        t->rows = rows;
        t->cap = cap;
    }
    dice_row *row = &t->rows[t->n];
    lsdm_dice_counts_init(&row->c);
    if (!(row->name = strdup(rec_name(r)))) return lsdm_err("out of memory");
    t->n++;

    size_t n = lsdm_record_numel(r);
    int64_t mp, mr;
    if (lsdm_dice_max_label(p->data, p->dtype, n, &mp)) return lsdm_err_ctx("record '%s': PRED", row->name);
    if (lsdm_dice_max_label(r->data, r->dtype, n, &mr)) return lsdm_err_ctx("record '%s': REF", row->name);
    int64_t m = mp > mr ? mp : mr;
    if (o->classes && m >= o->classes)
        return lsdm_err("record '%s': %s has label %lld, outside 0..%d (--classes %d)", row->name, mp >= mr ? "PRED" : "REF",
                        (long long)m, o->classes - 1, o->classes);
    if (m >= LSDM_DICE_MAX_CLASSES)
        return lsdm_err("record '%s': label %lld is too large (at most %d classes)", row->name, (long long)m, LSDM_DICE_MAX_CLASSES);
    if (lsdm_dice_counts_grow(&row->c, (int)m + 1) ||
        lsdm_dice_count(&row->c, p->data, p->dtype, r->data, r->dtype, n))
        return lsdm_err_ctx("record '%s'", row->name);
    if (row->c.n > t->classes) t->classes = row->c.n;
    return 0;
}

static int compare_inputs(const dice_opts *o, dice_table *t) {
    lsdm_nifti_opts no = {.labels = 1, .role = NULL};
    lsdm_volsrc *sp = lsdm_volsrc_open(o->pred, &no), *sr = sp ? lsdm_volsrc_open(o->ref, &no) : NULL;
    if (!sp || !sr) { lsdm_volsrc_close(sp); return -1; }
    int names = names_comparable(o->pred, sp) && names_comparable(o->ref, sr);
    lsdm_record p, r;
    lsdm_record_init(&p);
    lsdm_record_init(&r);
    int rc;
    long k = 0;
    for (;; k++) {
        /* reading errors name their input already */
        int gp = lsdm_volsrc_next(sp, &p);
        if (gp < 0) { rc = -1; break; }
        int gr = lsdm_volsrc_next(sr, &r);
        if (gr < 0) { rc = -1; break; }
        if (!gp || !gr) {
            rc = gp == gr ? 0 : lsdm_err("%s has %ld records, %s more", gp ? o->ref : o->pred, k, gp ? o->pred : o->ref);
            break;
        }
        if ((rc = check_pair(o, &p, &r, names)) || (rc = table_names(t, &r)) || (rc = table_names(t, &p)) ||
            (rc = table_add(t, o, &p, &r)))
            break;
        lsdm_progress(k + 1, 0, "pairs");
    }
    lsdm_progress_end();
    lsdm_record_free(&p);
    lsdm_record_free(&r);
    lsdm_volsrc_close(sp);
    lsdm_volsrc_close(sr);
    if (!rc && k == 0) rc = lsdm_err("no records to compare");
    return rc;
}

/* Settle the class count and bring every row to it. */
static int table_finish(dice_table *t, const dice_opts *o) {
    if (o->classes) t->classes = o->classes;
    else
        for (int i = 0; i < t->names.n; i++)
            if (t->names.ids[i] >= t->classes && t->names.ids[i] < LSDM_DICE_MAX_CLASSES) t->classes = t->names.ids[i] + 1;
    for (int i = 0; i < t->n; i++)
        if (lsdm_dice_counts_grow(&t->rows[i].c, t->classes)) return -1;
    return 0;
}

static void table_free(dice_table *t) {
    for (int i = 0; i < t->n; i++) {
        free(t->rows[i].name);
        lsdm_dice_counts_free(&t->rows[i].c);
    }
    free(t->rows);
    lsdm_labels_free(&t->names);
}

/* ---------------------------------------------------------- aggregates */

/* Scores of one line of the report: per class, foreground mean, global. */
typedef struct {
    double *dice; /* [classes], NAN: empty */
    double mean_fg, global;
} dice_scores;

static void scores_of(const lsdm_dice_counts *c, int classes, dice_scores *s) {
    for (int k = 0; k < classes; k++) s->dice[k] = lsdm_dice_class(c, k);
    s->mean_fg = lsdm_dice_mean_foreground(c);
    s->global = lsdm_dice_global(c);
}

/* Mean of finite values, NAN if none. */
typedef struct { double sum; int n; } running_mean;
static void rm_add(running_mean *m, double v) { if (!isnan(v)) { m->sum += v; m->n++; } }
static double rm_get(const running_mean *m) { return m->n ? m->sum / m->n : NAN; }

/* The mean over records of each score (empty classes left out) and the
 * scores of the pooled counts. */
static int table_aggregate(const dice_table *t, dice_scores *mean, dice_scores *pooled, lsdm_dice_counts *sum) {
    int nc = t->classes;
    running_mean *rm = calloc((size_t)nc + 2, sizeof *rm);
    double *row = malloc((size_t)nc * sizeof *row);
    if (!rm || !row) { free(rm); free(row); return lsdm_err("out of memory"); }
    for (int i = 0; i < t->n; i++) {
        dice_scores s = {row, 0, 0};
        scores_of(&t->rows[i].c, nc, &s);
        for (int k = 0; k < nc; k++) rm_add(&rm[k], row[k]);
        rm_add(&rm[nc], s.mean_fg);
        rm_add(&rm[nc + 1], s.global);
        if (lsdm_dice_counts_add(sum, &t->rows[i].c)) { free(rm); free(row); return -1; }
    }
    for (int k = 0; k < nc; k++) mean->dice[k] = rm_get(&rm[k]);
    mean->mean_fg = rm_get(&rm[nc]);
    mean->global = rm_get(&rm[nc + 1]);
    scores_of(sum, nc, pooled);
    free(rm);
    free(row);
    return 0;
}

/* -------------------------------------------------------------- output */

static void class_label(const dice_table *t, int k, char *buf, size_t n) {
    const char *name = t->have_names ? lsdm_labels_name(&t->names, k) : NULL;
    if (name) snprintf(buf, n, "%s", name);
    else snprintf(buf, n, "%d", k);
}

static void text_cell(double v, int width) {
    if (isnan(v)) printf("  %*s", width, "empty");
    else printf("  %*.5f", width, v);
}

static void text_line(const char *label, int namew, const dice_scores *s, const int *w, int nc) {
    printf("%-*s", namew, label);
    for (int k = 0; k < nc; k++) text_cell(s->dice[k], w[k]);
    text_cell(s->mean_fg, w[nc]);
    text_cell(s->global, w[nc + 1]);
    printf("\n");
}

static int print_text(const dice_table *t, double *buf, const dice_scores *mean, const dice_scores *pooled) {
    int nc = t->classes, namew = 8;
    int *w = malloc(((size_t)nc + 2) * sizeof *w);
    if (!w) return lsdm_err("out of memory");
    for (int i = 0; i < t->n; i++)
        if ((int)strlen(t->rows[i].name) > namew) namew = (int)strlen(t->rows[i].name);
    printf("%-*s", namew, "record");
    for (int k = 0; k < nc; k++) {
        char lab[128];
        class_label(t, k, lab, sizeof lab);
        w[k] = (int)strlen(lab) > 7 ? (int)strlen(lab) : 7;
        printf("  %*s", w[k], lab);
    }
    w[nc] = 7;
    w[nc + 1] = 7;
    printf("  %*s  %*s\n", w[nc], "mean-fg", w[nc + 1], "global");
    for (int i = 0; i < t->n; i++) {
        dice_scores s = {buf, 0, 0};
        scores_of(&t->rows[i].c, nc, &s);
        text_line(t->rows[i].name, namew, &s, w, nc);
    }
    text_line("(mean)", namew, mean, w, nc);
    text_line("(pooled)", namew, pooled, w, nc);
    free(w);
    return 0;
}

static void csv_num(double v) {
    char b[64];
    if (isnan(v)) return; /* empty field */
    lsdm_fmt_num(b, sizeof b, v);
    fputs(b, stdout);
}

static void csv_line(const char *label, const dice_scores *s, int nc) {
    lsdm_csv_field(label);
    for (int k = 0; k < nc; k++) { putchar(','); csv_num(s->dice[k]); }
    putchar(',');
    csv_num(s->mean_fg);
    putchar(',');
    csv_num(s->global);
    putchar('\n');
}

static void print_csv(const dice_table *t, double *buf, const dice_scores *mean, const dice_scores *pooled) {
    int nc = t->classes;
    fputs("record", stdout);
    for (int k = 0; k < nc; k++) {
        char lab[128];
        class_label(t, k, lab, sizeof lab);
        putchar(',');
        lsdm_csv_field(lab);
    }
    fputs(",mean_foreground,global\n", stdout);
    for (int i = 0; i < t->n; i++) {
        dice_scores s = {buf, 0, 0};
        scores_of(&t->rows[i].c, nc, &s);
        csv_line(t->rows[i].name, &s, nc);
    }
    csv_line("(mean)", mean, nc);
    csv_line("(pooled)", pooled, nc);
}

static void json_ints(const char *key, const int64_t *v, int n) {
    printf(", \"%s\": [", key);
    for (int k = 0; k < n; k++) printf("%s%lld", k ? ", " : "", (long long)v[k]);
    putchar(']');
}

/* "dice": [...], "mean_foreground": x, "global": x, and with counts c
 * "voxels" first and "pred", "ref", "intersection" last */
static void json_scores(const dice_scores *s, int nc, const lsdm_dice_counts *c) {
    if (c) printf("\"voxels\": %lld, ", (long long)c->voxels);
    fputs("\"dice\": [", stdout);
    for (int k = 0; k < nc; k++) {
        if (k) fputs(", ", stdout);
        lsdm_json_num(s->dice[k]);
    }
    fputs("], \"mean_foreground\": ", stdout);
    lsdm_json_num(s->mean_fg);
    fputs(", \"global\": ", stdout);
    lsdm_json_num(s->global);
    if (c) {
        json_ints("pred", c->pred, nc);
        json_ints("ref", c->ref, nc);
        json_ints("intersection", c->inter, nc);
    }
}

static void print_json(const dice_table *t, double *buf, const dice_scores *mean, const dice_scores *pooled,
                       const lsdm_dice_counts *sum) {
    int nc = t->classes;
    fputs("{\n  \"classes\": [", stdout);
    for (int k = 0; k < nc; k++) {
        const char *name = t->have_names ? lsdm_labels_name(&t->names, k) : NULL;
        printf("%s{\"id\": %d, \"name\": ", k ? ", " : "", k);
        if (name) lsdm_json_str(name);
        else fputs("null", stdout);
        fputs("}", stdout);
    }
    fputs("],\n  \"records\": [\n", stdout);
    for (int i = 0; i < t->n; i++) {
        dice_scores s = {buf, 0, 0};
        scores_of(&t->rows[i].c, nc, &s);
        fputs("    {\"name\": ", stdout);
        lsdm_json_str(t->rows[i].name);
        fputs(", ", stdout);
        json_scores(&s, nc, &t->rows[i].c);
        printf("}%s\n", i + 1 < t->n ? "," : "");
    }
    fputs("  ],\n  \"mean\": {", stdout);
    json_scores(mean, nc, NULL);
    fputs("},\n  \"pooled\": {", stdout);
    json_scores(pooled, nc, sum);
    fputs("}\n}\n", stdout);
}

static int report(const dice_table *t, int format) {
    int nc = t->classes, rc = 0;
    double *buf = malloc(3 * (size_t)nc * sizeof *buf);
    lsdm_dice_counts sum;
    lsdm_dice_counts_init(&sum);
    if (!buf) return lsdm_err("out of memory");
    dice_scores mean = {buf + nc, 0, 0}, pooled = {buf + 2 * (size_t)nc, 0, 0};
    rc = table_aggregate(t, &mean, &pooled, &sum);
    if (!rc) {
        if (format == FMT_JSON) print_json(t, buf, &mean, &pooled, &sum);
        else if (format == FMT_CSV) print_csv(t, buf, &mean, &pooled);
        else rc = print_text(t, buf, &mean, &pooled);
    }
    if (!rc && (fflush(stdout) || ferror(stdout))) rc = lsdm_err("cannot write the report to standard output");
    lsdm_dice_counts_free(&sum);
    free(buf);
    return rc;
}

int main(int argc, char **argv) {
    lsdm_cli_init("dice-eval", argv);
    dice_opts o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) return rc;

    dice_table t = {0};
    rc = compare_inputs(&o, &t);
    if (!rc) rc = table_finish(&t, &o);
    if (!rc) rc = report(&t, o.format);
    if (!rc) lsdm_verbose("%d record pair(s), %d classes", t.n, t.classes);
    table_free(&t);
    return rc ? lsdm_fail() : 0;
}
