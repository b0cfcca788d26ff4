/* vol-info: describe the records of streams, NIfTI files, directories or
 * archives: every header key, geometry, orientation, value statistics and,
 * for label maps, a histogram of labels. Text for people, --json (JSON
 * Lines) for scripts. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "textout.h"
#include "record.h"
#include "stats.h"
#include "volsrc.h"

static const char HELP[] =
    "Usage: vol-info [OPTION]... [INPUT]...\n"
    "Describe every record of each INPUT (a tensor stream, a NIfTI file, a\n"
    "directory or an archive of NIfTI files; '-' or none: standard input):\n"
    "all header keys, shape, affine, spacing, orientation code, value\n"
    "statistics and, for label maps, a histogram of labels with their names.\n"
    "Ends with a summary line of the record count.\n"
    "\n"
    "      --json         one JSON object per record per line (JSON Lines),\n"
    "                     then one {\"summary\": ...} line\n"
    "      --no-stats     header and geometry only: no statistics, no histogram\n"
    LSDM_COMMON_HELP
    "\n"
    "Exit status: 0 ok, 1 unreadable input, 2 usage error.\n";

enum { OPT_JSON = LSDM_OPT_FIRST_TOOL, OPT_NO_STATS };

/* One row of the label histogram: a value present in the data, a name
 * from the labels key, or both. */
typedef struct {
    int64_t value;
    size_t count;
    const char *name; /* borrowed from the labels key; NULL if unnamed */
} info_label_row;

/* Everything shown about one record, derived before printing. */
typedef struct {
    const char *input;
    long index;
    const lsdm_record *r;
    int affine_state; /* 1 found, 0 absent, -1 malformed */
    double affine[16];
    char orient[4];
    int spacing_state;
    double spacing[3];
    int with_stats;
    lsdm_stats stats;
    int is_labels;
    info_label_row *rows; /* [nrows], ascending value */
    int nrows;
    size_t label_total;
    lsdm_labels names;
} info_record;

static int is_label_map(const lsdm_record *r) {
    const char *role = lsdm_record_get(r, "role");
    int int_dtype = r->dtype == LSDM_U8 || r->dtype == LSDM_I16 || r->dtype == LSDM_I32;
    return int_dtype && role && (!strcmp(role, "labels") || !strcmp(role, "semantic"));
}

/* Merge the data histogram with the names of the labels key, so named
 * classes absent from the data show with a count of 0. */
static int info_label_rows(info_record *in) {
    lsdm_hist h;
    if (lsdm_hist_compute(in->r->data, in->r->dtype, lsdm_record_numel(in->r), &h)) return -1;
    in->label_total = h.total;
    in->rows = malloc((size_t)(h.n + in->names.n + 1) * sizeof *in->rows);
    if (!in->rows) { lsdm_hist_free(&h); return lsdm_err("out of memory"); }
    for (int i = 0; i < h.n; i++)
        in->rows[in->nrows++] = (info_label_row){h.values[i], h.counts[i], NULL};
    for (int j = 0; j < in->names.n; j++) {
        int found = 0;
        for (int i = 0; i < h.n; i++) found |= h.values[i] == in->names.ids[j];
        if (!found) in->rows[in->nrows++] = (info_label_row){in->names.ids[j], 0, NULL};
    }
    lsdm_hist_free(&h);
    for (int i = 1; i < in->nrows; i++) /* insertion sort: few rows */
        for (int k = i; k > 0 && in->rows[k - 1].value > in->rows[k].value; k--) {
            info_label_row t = in->rows[k];
            in->rows[k] = in->rows[k - 1];
            in->rows[k - 1] = t;
        }
    for (int i = 0; i < in->nrows; i++)
        if (in->rows[i].value >= 0 && in->rows[i].value <= 65535)
            in->rows[i].name = lsdm_labels_name(&in->names, (int)in->rows[i].value);
    return 0;
}

static int info_record_init(info_record *in, const lsdm_record *r, const char *input, long index, int with_stats) {
    memset(in, 0, sizeof *in);
    in->r = r;
    in->input = input;
    in->index = index;
    /* a malformed geometry key is shown as it is, not an error: this is a viewer */
    in->affine_state = lsdm_record_get_affine(r, in->affine);
    if (in->affine_state == 1) lsdm_orientation(in->affine, (char[3]){0}, in->orient);
    in->spacing_state = lsdm_record_get_spacing(r, in->spacing);
    lsdm_err_clear();
    in->with_stats = with_stats;
    if (!with_stats) return 0;
    lsdm_stats_compute(r->data, r->dtype, lsdm_record_numel(r), &in->stats);
    in->is_labels = is_label_map(r);
    if (!in->is_labels) return 0;
    const char *key = lsdm_record_get(r, "labels");
    if (key && lsdm_labels_parse(key, &in->names)) lsdm_err_clear(); /* shown raw, unnamed */
    return info_label_rows(in);
}

static void info_record_free(info_record *in) {
    free(in->rows);
    lsdm_labels_free(&in->names);
    memset(in, 0, sizeof *in);
}

/* ---- text ---- */

static void text_affine(const info_record *in, int width) {
    char cell[16][32];
    int w = 1;
    for (int i = 0; i < 16; i++) {
        snprintf(cell[i], sizeof cell[i], "%.6g", in->affine[i] == 0 ? 0 : in->affine[i]);
        int len = (int)strlen(cell[i]);
        if (len > w) w = len;
    }
    for (int row = 0; row < 4; row++) {
        printf("  %-*s", width, row == 0 ? "affine:" : "");
        for (int c = 0; c < 4; c++) printf("%s%*s", c ? "  " : "", w, cell[row * 4 + c]);
        printf("\n");
    }
}

static void text_labels(const info_record *in, int width) {
    int present = 0;
    for (int i = 0; i < in->nrows; i++) present += in->rows[i].count > 0;
    printf("  %-*s%d values present, %d named\n", width, "histogram:", present, in->names.n);
    int vw = 5, cw = 5;
    for (int i = 0; i < in->nrows; i++) {
        char b[32];
        int l = snprintf(b, sizeof b, "%lld", (long long)in->rows[i].value);
        if (l > vw) vw = l;
        l = snprintf(b, sizeof b, "%zu", in->rows[i].count);
        if (l > cw) cw = l;
    }
    printf("    %*s  %*s  %8s  %s\n", vw, "value", cw, "count", "percent", "name");
    for (int i = 0; i < in->nrows; i++) {
        double pct = in->label_total ? 100.0 * (double)in->rows[i].count / (double)in->label_total : 0;
        printf("    %*lld  %*zu  %7.3f%%  %s\n", vw, (long long)in->rows[i].value, cw, in->rows[i].count, pct,
               in->rows[i].name ? in->rows[i].name : "");
    }
}

static void info_print_text(const info_record *in) {
    const lsdm_record *r = in->r;
    int width = 14; /* key column: the longest key and its colon */
    for (int i = 0; i < r->nkv; i++) {
        int l = (int)strlen(r->kv[i].key) + 2;
        if (l > width) width = l;
    }
    char shape[128];
    lsdm_shape_format(shape, sizeof shape, r->ndim, r->shape);
    const char *axes = r->ndim == 4 ? "  (C,D,H,W)" : r->ndim == 3 ? "  (D,H,W)" : "";
    printf("%s [%ld] %s\n", in->input, in->index, lsdm_record_get(r, "name"));
    printf("  %-*s%s\n", width, "name:", lsdm_record_get(r, "name"));
    printf("  %-*s%s\n", width, "role:", lsdm_record_get(r, "role"));
    printf("  %-*s%s\n", width, "dtype:", lsdm_dtype_name(r->dtype));
    printf("  %-*s%s%s\n", width, "shape:", shape, axes);
    for (int i = 0; i < r->nkv; i++) { /* every other key, in stream order */
        const char *k = r->kv[i].key;
        if (!strcmp(k, "name") || !strcmp(k, "role")) continue;
        if (!strcmp(k, "affine") && in->affine_state == 1) { text_affine(in, width); continue; }
        char label[80];
        snprintf(label, sizeof label, "%s:", k);
        printf("  %-*s%s\n", width, label, r->kv[i].value);
    }
    printf("  %-*s%s\n", width, "orientation:",
           in->affine_state == 1 ? in->orient : in->affine_state < 0 ? "- (malformed affine)" : "- (no affine)");
    if (!in->with_stats) return;
    const lsdm_stats *s = &in->stats;
    printf("  %-*s%.10g\n", width, "min:", s->min);
    printf("  %-*s%.10g\n", width, "max:", s->max);
    printf("  %-*s%.10g\n", width, "mean:", s->mean);
    printf("  %-*s%.10g\n", width, "std:", s->std);
    printf("  %-*s%zu\n", width, "nan:", s->nan);
    printf("  %-*s%zu\n", width, "inf:", s->inf);
    if (in->is_labels) text_labels(in, width);
}

/* ---- JSON ---- */

static void json_numbers(const double *v, int n) {
    putchar('[');
    for (int i = 0; i < n; i++) { if (i) putchar(','); lsdm_json_num(v[i]); }
    putchar(']');
}

static void info_print_json(const info_record *in) {
    const lsdm_record *r = in->r;
    printf("{\"input\":");
    lsdm_json_str(in->input);
    printf(",\"index\":%ld,\"name\":", in->index);
    lsdm_json_str(lsdm_record_get(r, "name"));
    printf(",\"role\":");
    lsdm_json_str(lsdm_record_get(r, "role"));
    printf(",\"dtype\":\"%s\",\"shape\":[", lsdm_dtype_name(r->dtype));
    for (int i = 0; i < r->ndim; i++) printf("%s%lld", i ? "," : "", (long long)r->shape[i]);
    printf("],\"keys\":{");
    for (int i = 0; i < r->nkv; i++) {
        if (i) putchar(',');
        lsdm_json_str(r->kv[i].key);
        putchar(':');
        lsdm_json_str(r->kv[i].value);
    }
    printf("},\"affine\":");
    if (in->affine_state == 1) {
        putchar('[');
        for (int row = 0; row < 4; row++) { if (row) putchar(','); json_numbers(in->affine + 4 * row, 4); }
        putchar(']');
    } else printf("null");
    printf(",\"spacing\":");
    if (in->spacing_state == 1) json_numbers(in->spacing, 3);
    else printf("null");
    printf(",\"orientation\":");
    if (in->affine_state == 1) lsdm_json_str(in->orient);
    else printf("null");
    if (in->with_stats) {
        const lsdm_stats *s = &in->stats;
        printf(",\"stats\":{\"count\":%zu,\"finite\":%zu,\"nan\":%zu,\"inf\":%zu,\"min\":", s->count, s->finite, s->nan, s->inf);
        lsdm_json_num(s->min);
        printf(",\"max\":");
        lsdm_json_num(s->max);
        printf(",\"mean\":");
        lsdm_json_num(s->mean);
        printf(",\"std\":");
        lsdm_json_num(s->std);
        putchar('}');
    }
    if (in->is_labels) {
        printf(",\"labels\":[");
        for (int i = 0; i < in->nrows; i++) {
            double pct = in->label_total ? 100.0 * (double)in->rows[i].count / (double)in->label_total : 0;
            printf("%s{\"value\":%lld,\"count\":%zu,\"percent\":", i ? "," : "", (long long)in->rows[i].value, in->rows[i].count);
            lsdm_json_num(pct);
            printf(",\"name\":");
            if (in->rows[i].name) lsdm_json_str(in->rows[i].name);
            else printf("null");
            putchar('}');
        }
        putchar(']');
    }
    printf("}\n");
}

/* Describe every record of one input; adds to *count. */
static int info_input(const char *path, int json, int with_stats, long *count) {
    lsdm_volsrc *src = lsdm_volsrc_open(path, NULL);
    if (!src) return -1;
    const char *label = strcmp(path, "-") ? path : "(stdin)";
    lsdm_record r;
    lsdm_record_init(&r);
    int rc;
    long index = 0;
    while ((rc = lsdm_volsrc_next(src, &r)) == 1) {
        info_record in;
        if (info_record_init(&in, &r, label, index, with_stats)) { info_record_free(&in); rc = -1; break; }
        if (json) info_print_json(&in);
        else info_print_text(&in);
        info_record_free(&in);
        index++;
        (*count)++;
    }
    lsdm_record_free(&r);
    lsdm_volsrc_close(src);
    return rc < 0 ? -1 : 0; /* the message names the input */
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        LSDM_COMMON_LONGOPTS,
        {"json", no_argument, 0, OPT_JSON},
        {"no-stats", no_argument, 0, OPT_NO_STATS},
        {0, 0, 0, 0},
    };
    lsdm_cli_init("vol-info", argv);
    int json = 0, with_stats = 1, c;
    while ((c = getopt_long(argc, argv, LSDM_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case OPT_JSON: json = 1; break;
        case OPT_NO_STATS: with_stats = 0; break;
        LSDM_CLI_DEFAULT(c, HELP);
        }
    }
    char *stdin_only[] = {"-"};
    char **inputs = optind < argc ? argv + optind : stdin_only;
    int ninputs = optind < argc ? argc - optind : 1;

    long count = 0;
    for (int i = 0; i < ninputs; i++) {
        if (info_input(inputs[i], json, with_stats, &count)) {
            fflush(stdout);
            return lsdm_fail();
        }
    }
    if (json) printf("{\"summary\":{\"records\":%ld,\"inputs\":%d}}\n", count, ninputs);
    else printf("%ld record%s in %d input%s\n", count, count == 1 ? "" : "s", ninputs, ninputs == 1 ? "" : "s");
    if (fflush(stdout) != 0 || ferror(stdout)) {
        lsdm_err("write error on standard output");
        return lsdm_fail();
    }
    return 0;
}
