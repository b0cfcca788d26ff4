/* vol-diff: compare two inputs record by record, for golden tests and for
 * checking one stage against another (CPU vs GPU, before vs after).
 * Exit 0 when every pair is within tolerance, 1 otherwise. */
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "record.h"
#include "volsrc.h"

static const char HELP[] =
    "Usage: vol-diff [OPTION]... A B\n"
    "Compare the records of A and B (tensor streams, NIfTI files, directories\n"
    "or archives; one of them may be '-' for standard input), paired in order.\n"
    "Prints one line per pair: max abs error, mean abs error, RMSE and the\n"
    "count of elements over tolerance. An element is over when\n"
    "|a - b| > atol + rtol * |b|, or when it is NaN or Inf in one input and\n"
    "not the same in the other. Different names are reported (not a failure).\n"
    "\n"
    "      --atol X            absolute tolerance per element (default 0: identical)\n"
    "      --rtol Y            relative tolerance per element (default 0)\n"
    "      --mean-atol Z       fail a record whose mean abs error is over Z; given\n"
    "                          alone (without --atol/--rtol), elements are not\n"
    "                          checked one by one\n"
    "      --ignore-geometry   do not compare affine and spacing (default: they\n"
    "                          must agree within 1e-6 mm)\n"
    "  -q, --quiet             print nothing on stdout; the exit status tells\n"
    LSDM_COMMON_HELP
    "\n"
    "Exit status: 0 all within tolerance, 1 a difference (shape, dtype, geometry,\n"
    "record count, values) or an unreadable input, 2 usage error.\n";

enum { OPT_ATOL = LSDM_OPT_FIRST_TOOL, OPT_RTOL, OPT_MEAN_ATOL, OPT_IGNORE_GEOMETRY };

#define GEOMETRY_TOL 1e-6 /* mm */

typedef struct {
    double atol, rtol, mean_atol; /* mean_atol < 0: not checked */
    int check_elements;           /* 0 when only --mean-atol was given */
    int ignore_geometry;
} diff_opts;

/* The comparison of one pair of records. */
typedef struct {
    size_t n;          /* elements compared */
    size_t over;       /* over tolerance (nonfinite included) */
    size_t nonfinite;  /* NaN/Inf in one and not the same in the other */
    double max_abs, mean_abs, rmse; /* over pairs finite in both */
} diff_values;

/* Element-wise errors of two same-shaped tensors, in double precision. */
static void diff_compute_values(const lsdm_record *a, const lsdm_record *b, const diff_opts *o, diff_values *out) {
    memset(out, 0, sizeof *out);
    size_t n = lsdm_record_numel(a), finite = 0;
    double sum = 0, sumsq = 0;
    for (size_t i = 0; i < n; i++) {
        double x = lsdm_elem_get(a->data, a->dtype, i), y = lsdm_elem_get(b->data, b->dtype, i);
        if (!isfinite(x) || !isfinite(y)) {
            int same = (isnan(x) && isnan(y)) || x == y; /* NaN with NaN, Inf with same-signed Inf */
            if (!same) { out->nonfinite++; out->over++; }
            continue;
        }
        double d = fabs(x - y);
        sum += d;
        sumsq += d * d;
        if (d > out->max_abs) out->max_abs = d;
        if (d > o->atol + o->rtol * fabs(y)) out->over++;
        finite++;
    }
    out->n = n;
    out->mean_abs = finite ? sum / (double)finite : 0;
    out->rmse = finite ? sqrt(sumsq / (double)finite) : 0;
}

/* Append "; what" to a line's list of problems. */
static void note_problem(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note_problem(char *buf, size_t cap, const char *fmt, ...) {
    size_t used = strlen(buf);
    if (used + 3 >= cap) return;
    snprintf(buf + used, cap - used, "; ");
    used += 2;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + used, cap - used, fmt, ap);
    va_end(ap);
}

/* Largest difference of two optional geometry keys of n numbers; returns
 * 0 when both agree (or both are absent), 1 when they differ. */
static int geometry_differs(int sa, const double *a, int sb, const double *b, int n, double *worst) {
    *worst = 0;
    if (sa != sb) return 1;
    if (sa != 1) return 0;
    for (int i = 0; i < n; i++)
        if (fabs(a[i] - b[i]) > *worst) *worst = fabs(a[i] - b[i]);
    return *worst > GEOMETRY_TOL;
}

/* Compare the geometry keys; problems go to the line. Returns 1 on a mismatch. */
static int diff_geometry(const lsdm_record *a, const lsdm_record *b, char *problems, size_t cap) {
    double aa[16], ab[16], sa[3], sb[3], worst;
    int bad = 0;
    int fa = lsdm_record_get_affine(a, aa), fb = lsdm_record_get_affine(b, ab);
    if (fa < 0 || fb < 0) { note_problem(problems, cap, "malformed affine in %s", fa < 0 ? "A" : "B"); bad = 1; }
    else if (geometry_differs(fa, aa, fb, ab, 16, &worst)) {
        if (fa != fb) note_problem(problems, cap, "affine only in %s", fa ? "A" : "B");
        else note_problem(problems, cap, "affine differs by %.6g mm", worst);
        bad = 1;
    }
    fa = lsdm_record_get_spacing(a, sa);
    fb = lsdm_record_get_spacing(b, sb);
    if (fa < 0 || fb < 0) { note_problem(problems, cap, "malformed spacing in %s", fa < 0 ? "A" : "B"); bad = 1; }
    else if (geometry_differs(fa, sa, fb, sb, 3, &worst)) {
        if (fa != fb) note_problem(problems, cap, "spacing only in %s", fa ? "A" : "B");
        else note_problem(problems, cap, "spacing differs by %.6g mm", worst);
        bad = 1;
    }
    lsdm_err_clear();
    return bad;
}

/* Compare one pair and print its line. Returns 1 when it fails. */
static int diff_pair(long index, const lsdm_record *a, const lsdm_record *b, const diff_opts *o) {
    char problems[1024] = "";
    const char *na = lsdm_record_get(a, "name"), *nb = lsdm_record_get(b, "name");
    int fail = 0;
    if (strcmp(na, nb) != 0) note_problem(problems, sizeof problems, "name differs: %.200s != %.200s", na, nb);
    int same_shape = a->ndim == b->ndim && memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof a->shape[0]) == 0;
    if (!same_shape) {
        char sa[128], sb[128];
        lsdm_shape_format(sa, sizeof sa, a->ndim, a->shape);
        lsdm_shape_format(sb, sizeof sb, b->ndim, b->shape);
        note_problem(problems, sizeof problems, "shape %s != %s", sa, sb);
        fail = 1;
    }
    if (a->dtype != b->dtype) {
        note_problem(problems, sizeof problems, "dtype %s != %s", lsdm_dtype_name(a->dtype), lsdm_dtype_name(b->dtype));
        fail = 1;
    }
    if (!o->ignore_geometry) fail |= diff_geometry(a, b, problems, sizeof problems);

    diff_values v = {0};
    if (same_shape) {
        diff_compute_values(a, b, o, &v);
        if (o->check_elements && v.over) fail = 1;
        if (o->mean_atol >= 0 && v.mean_abs > o->mean_atol) {
            note_problem(problems, sizeof problems, "mean abs error over %g", o->mean_atol);
            fail = 1;
        }
        if (v.nonfinite) fail = 1;
    }
    if (lsdm_opt.quiet) return fail;
    printf("[%ld] %s: %s", index, na, fail ? "FAIL" : "ok");
    if (same_shape)
        printf(" max_abs=%.6g mean_abs=%.6g rmse=%.6g over=%zu/%zu nonfinite=%zu", v.max_abs, v.mean_abs, v.rmse,
               v.over, v.n, v.nonfinite);
    printf("%s\n", problems);
    return fail;
}

/* Records left in src after a count mismatch (to report both counts). */
static long count_rest(lsdm_volsrc *src, lsdm_record *r) {
    long n = 0;
    int rc;
    while ((rc = lsdm_volsrc_next(src, r)) == 1) n++;
    return rc < 0 ? -1 : n;
}

static int parse_tol(const char *name, const char *s, double *out) {
    if (lsdm_parse_double(s, out) || *out < 0) return lsdm_err("%s: '%s' is not a number >= 0", name, s);
    return 0;
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        LSDM_COMMON_LONGOPTS,
        {"atol", required_argument, 0, OPT_ATOL},
        {"rtol", required_argument, 0, OPT_RTOL},
        {"mean-atol", required_argument, 0, OPT_MEAN_ATOL},
        {"ignore-geometry", no_argument, 0, OPT_IGNORE_GEOMETRY},
        {0, 0, 0, 0},
    };
    lsdm_cli_init("vol-diff", argv);
    diff_opts o = {0, 0, -1, 1, 0};
    int elementwise_given = 0, c;
    while ((c = getopt_long(argc, argv, LSDM_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case OPT_ATOL:
            if (parse_tol("--atol", optarg, &o.atol)) return lsdm_usage_error("%s", lsdm_err_msg());
            elementwise_given = 1;
            break;
        case OPT_RTOL:
            if (parse_tol("--rtol", optarg, &o.rtol)) return lsdm_usage_error("%s", lsdm_err_msg());
            elementwise_given = 1;
            break;
        case OPT_MEAN_ATOL:
            if (parse_tol("--mean-atol", optarg, &o.mean_atol)) return lsdm_usage_error("%s", lsdm_err_msg());
            break;
        case OPT_IGNORE_GEOMETRY: o.ignore_geometry = 1; break;
        LSDM_CLI_DEFAULT(c, HELP);
        }
    }
    if (argc - optind != 2) return lsdm_usage_error("need two inputs A and B (got %d)", argc - optind);
    const char *pa = argv[optind], *pb = argv[optind + 1];
    if (!strcmp(pa, "-") && !strcmp(pb, "-")) return lsdm_usage_error("only one input can be standard input");
    o.check_elements = elementwise_given || o.mean_atol < 0;

    lsdm_volsrc *sa = lsdm_volsrc_open(pa, NULL);
    if (!sa) return lsdm_fail();
    lsdm_volsrc *sb = lsdm_volsrc_open(pb, NULL);
    if (!sb) { lsdm_volsrc_close(sa); return lsdm_fail(); }

    lsdm_record ra, rb;
    lsdm_record_init(&ra);
    lsdm_record_init(&rb);
    long index = 0, failed = 0;
    int status = 0;
    for (;;) {
        int ga = lsdm_volsrc_next(sa, &ra);
        if (ga < 0) { status = -1; break; } /* the message names the input */
        int gb = lsdm_volsrc_next(sb, &rb);
        if (gb < 0) { status = -1; break; }
        if (!ga && !gb) break;
        if (!ga || !gb) { /* one ran out: count what the other still has */
            long rest = count_rest(ga ? sa : sb, ga ? &ra : &rb);
            if (rest < 0) { status = -1; break; }
            long na = index + (ga ? 1 + rest : 0), nb = index + (gb ? 1 + rest : 0);
            if (!lsdm_opt.quiet) printf("records: FAIL A has %ld, B has %ld\n", na, nb);
            lsdm_err("record count differs: A has %ld, B has %ld", na, nb);
            status = -1;
            break;
        }
        failed += diff_pair(index, &ra, &rb, &o);
        index++;
    }
    lsdm_record_free(&ra);
    lsdm_record_free(&rb);
    lsdm_volsrc_close(sa);
    lsdm_volsrc_close(sb);
    fflush(stdout);
    if (status == 0 && failed) {
        lsdm_err("%ld of %ld records differ", failed, index);
        status = -1;
    }
    return status ? lsdm_fail() : 0;
}
