#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cblas.h>
#include <omp.h>

#include "err.h"

lsdm_cli lsdm_opt = {"lsdm", 0, 0, 0, 0, "auto", 0};

static char **cli_argv;

void lsdm_cli_init(const char *prog, char **argv) {
    lsdm_opt.prog = prog;
    cli_argv = argv;
    opterr = 0;
    const char *lv = getenv("LSDM_LEVEL");
    if (lv && *lv) lsdm_opt.level = atoi(lv);
}

int lsdm_cli_common(int c, const char *arg, const char *help) {
    long v = 0;
    switch (c) {
    case 'h': fputs(help, stdout); return 0;
    case 'V': printf("%s (lsdm) %s\n", lsdm_opt.prog, LSDM_VERSION); return 0;
    case 'v': lsdm_opt.verbose++; return -1;
    case 'q': lsdm_opt.quiet = 1; return -1;
    case 'f': lsdm_opt.force = 1; return -1;
    case LSDM_OPT_LEVEL:
        if (lsdm_parse_long(arg, -7, 22, &v)) return lsdm_usage_error("--level: %s", lsdm_err_msg());
        lsdm_opt.level = (int)v;
        return -1;
    case LSDM_OPT_DEVICE:
        if (strcmp(arg, "auto") && strcmp(arg, "cpu") && strcmp(arg, "cuda"))
            return lsdm_usage_error("--device: '%s' is not auto, cpu or cuda", arg);
        lsdm_opt.device = arg;
        return -1;
    case 'j':
        if (lsdm_parse_long(arg, 1, 4096, &v)) return lsdm_usage_error("-j: %s", lsdm_err_msg());
        lsdm_opt.threads = (int)v;
        return -1;
    case ':':
        /* for a long option glibc sets optopt to its value, not a letter */
        if (cli_argv && strncmp(cli_argv[optind - 1], "--", 2) == 0)
            return lsdm_usage_error("option '%s' needs a value", cli_argv[optind - 1]);
        if (optopt) return lsdm_usage_error("option '-%c' needs a value", optopt);
        return lsdm_usage_error("option '%s' needs a value", cli_argv ? cli_argv[optind - 1] : "?");
    default:
        if (optopt) return lsdm_usage_error("unknown option '-%c'", optopt);
        return lsdm_usage_error("unknown option '%s'", cli_argv ? cli_argv[optind - 1] : "?");
    }
}

int lsdm_cli_engine_setup(lsdm_device *dev) {
    if (lsdm_device_select(lsdm_opt.device, dev)) return -1;
    if (lsdm_opt.threads > 0) omp_set_num_threads(lsdm_opt.threads);
    /* Kernels thread with OpenMP and call BLAS inside their threads; a
     * threaded (pthread) OpenBLAS pool spinning beside OpenMP's costs 2-5x
     * (bench/RESULTS.md), so BLAS itself runs on one thread. */
    openblas_set_num_threads(1);
    lsdm_verbose("%d CPU thread%s", omp_get_max_threads(), omp_get_max_threads() > 1 ? "s" : "");
    return 0;
}

int lsdm_cli_training_setup(void) {
    lsdm_device dev;
    if (lsdm_cli_engine_setup(&dev) < 0) return -1;
    if (dev == LSDM_DEVICE_CUDA) {
        if (lsdm_opt.device && !strcmp(lsdm_opt.device, "cuda"))
            return lsdm_err("training on CUDA is not implemented yet: use --device cpu");
        lsdm_verbose("training runs on the CPU in this version");
    }
    return 0;
}

int lsdm_fail(void) {
    fprintf(stderr, "%s: error: %s\n", lsdm_opt.prog, lsdm_err_msg());
    return 1;
}

int lsdm_usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: error: ", lsdm_opt.prog);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help' for more information.\n", lsdm_opt.prog);
    return 2;
}

static void cli_say(const char *fmt, va_list ap) {
    fprintf(stderr, "%s: ", lsdm_opt.prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void lsdm_note(const char *fmt, ...) {
    if (lsdm_opt.quiet) return;
    va_list ap;
    va_start(ap, fmt);
    cli_say(fmt, ap);
    va_end(ap);
}

void lsdm_verbose(const char *fmt, ...) {
    if (!lsdm_opt.verbose || lsdm_opt.quiet) return;
    va_list ap;
    va_start(ap, fmt);
    cli_say(fmt, ap);
    va_end(ap);
}

static int progress_shown;

void lsdm_progress(long done, long total, const char *what) {
    if (lsdm_opt.quiet || !isatty(STDERR_FILENO)) return;
    if (total > 0) fprintf(stderr, "\r%s: %s %ld/%ld (%3.0f%%)", lsdm_opt.prog, what, done, total, 100.0 * done / total);
    else fprintf(stderr, "\r%s: %s %ld", lsdm_opt.prog, what, done);
    progress_shown = 1;
}

void lsdm_progress_end(void) {
    if (progress_shown) fputc('\n', stderr);
    progress_shown = 0;
}

int lsdm_parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno == ERANGE) return lsdm_err("'%s' is not an integer", s);
    if (v < lo || v > hi) return lsdm_err("%ld is out of range %ld..%ld", v, lo, hi);
    *out = v;
    return 0;
}

int lsdm_parse_double(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno == ERANGE || !isfinite(v)) return lsdm_err("'%s' is not a finite number", s);
    *out = v;
    return 0;
}

const char *lsdm_optarg_name(char *const *argv, int ind, const char *arg, char *buf, size_t n) {
    const char *a = ind >= 1 ? argv[ind - 1] : "";
    if (a == arg && ind >= 2) a = argv[ind - 2]; /* "--lr" "x" */
    size_t len = a[0] == '-' && a[1] != '-' ? 2 : strcspn(a, "="); /* "-j4", "--lr=x" */
    snprintf(buf, n, "%.*s", (int)(len < n ? len : n - 1), a);
    return buf;
}

int lsdm_parse_nonneg(const char *s, double hi, double *out) {
    double v;
    if (lsdm_parse_double(s, &v) == 0 && v >= 0 && v <= hi) {
        *out = v;
        return 0;
    }
    if (isinf(hi)) return lsdm_err("not a number >= 0: %s", s);
    return lsdm_err("not a number in [0,%g]: %s", hi, s);
}

int lsdm_parse_dims(const char *s, int out[3]) {
    char extra;
    if (sscanf(s, "%dx%dx%d%c", &out[0], &out[1], &out[2], &extra) != 3 || out[0] < 1 ||
        out[1] < 1 || out[2] < 1 || out[0] > 4096 || out[1] > 4096 || out[2] > 4096)
        return lsdm_err("'%s' is not DxHxW with each size 1..4096", s);
    return 0;
}

int lsdm_parse_axes(const char *s, int flags[3]) {
    if (!strcmp(s, "none")) s = "";
    if (strspn(s, "dhw") != strlen(s)) return lsdm_err("axes are letters of 'dhw', got '%s'", s);
    for (int k = 0; k < 3; k++) flags[k] = strchr(s, "dhw"[k]) != NULL;
    return 0;
}

double lsdm_now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}
