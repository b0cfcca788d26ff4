/* What every program's main shares: the program name, common options,
 * "prog: error: ..." reporting and progress on a terminal. */
#ifndef LSDM_CLI_H
#define LSDM_CLI_H

#include <stddef.h>
#include <getopt.h>

#define LSDM_VERSION "0.1.0"

typedef struct {
    const char *prog;
    int verbose; /* -v, repeatable */
    int quiet;   /* -q */
    int force;   /* -f: binary output to a terminal */
    int level;   /* --level: zstd level of written streams (0 = default) */
    const char *device; /* --device auto|cpu|cuda (programs that compute) */
    int threads; /* -j: CPU threads (0 = OMP_NUM_THREADS or all cores) */
} lsdm_cli;

extern lsdm_cli lsdm_opt;

enum { LSDM_OPT_LEVEL = 1000, LSDM_OPT_DEVICE, LSDM_OPT_FIRST_TOOL = 1100 };

/* Long options every program takes; put first in the tool's table. */
#define LSDM_COMMON_LONGOPTS                                                 \
    {"help", no_argument, 0, 'h'}, {"version", no_argument, 0, 'V'},         \
    {"verbose", no_argument, 0, 'v'}, {"quiet", no_argument, 0, 'q'},        \
    {"force", no_argument, 0, 'f'}, {"level", required_argument, 0, LSDM_OPT_LEVEL}
/* The leading ':' makes getopt report a missing value as ':' (we print it). */
#define LSDM_COMMON_SHORTOPTS ":hVvqf"

/* Programs that compute add these (and "j:" to their short options). */
#define LSDM_ENGINE_LONGOPTS                                                 \
    {"device", required_argument, 0, LSDM_OPT_DEVICE}, {"threads", required_argument, 0, 'j'}
#define LSDM_ENGINE_HELP                                                     \
    "      --device D     auto (default), cpu or cuda; -v says what auto chose\n" \
    "  -j, --threads N    CPU threads (default: OMP_NUM_THREADS, else all cores)\n"

/* Lines for the tool's --help describing the common options. */
#define LSDM_COMMON_HELP                                                     \
    "  -f, --force        write binary output even to a terminal\n"        \
    "      --level N      zstd level of output streams (default 1)\n"       \
    "  -v, --verbose      say more on stderr\n"                               \
    "  -q, --quiet        no progress or notes on stderr\n"                   \
    "  -h, --help         show this help and exit\n"                          \
    "  -V, --version      show the version and exit\n"

/* Set the program name and silence getopt (we print its errors our way). */
void lsdm_cli_init(const char *prog, char **argv);
/* Handle a common option (or '?'/unknown). Returns -1 to go on parsing,
 * otherwise the exit code main should return (0 after --help/--version,
 * 2 on a usage error). */
int lsdm_cli_common(int c, const char *arg, const char *help);
#define LSDM_CLI_DEFAULT(c, help)                                            \
    default: {                                                               \
        int rc_ = lsdm_cli_common((c), optarg, (help));                      \
        if (rc_ >= 0) return rc_;                                            \
    } break

/* After option parsing, in programs that compute: pick the device
 * (--device) and set the CPU thread count (-j) of OpenMP; BLAS calls run
 * single-threaded inside the kernels' OpenMP threads. */
#include "device.h"
int lsdm_cli_engine_setup(lsdm_device *dev);
/* The same for the trainers, whose graphs (libshared/nn) run on the CPU
 * kernels so far: --device cuda is an error, auto falls back (-v says). */
int lsdm_cli_training_setup(void);

/* "prog: error: <current lsdm_err message>" on stderr; returns 1. */
int lsdm_fail(void);
/* "prog: error: <msg>" and a --help hint on stderr; returns 2. */
int lsdm_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Notes on stderr: shown unless -q (lsdm_note) or only with -v (lsdm_verbose). */
void lsdm_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void lsdm_verbose(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Progress line on stderr, only when it is a terminal and not -q. */
void lsdm_progress(long done, long total, const char *what);
void lsdm_progress_end(void);

/* Parse helpers for option values: 0 ok, -1 with lsdm_err. */
int lsdm_parse_long(const char *s, long lo, long hi, long *out);
int lsdm_parse_double(const char *s, double *out);
/* "DxHxW", each 1..4096 (block, tile and volume shapes). */
/* A number in [0, hi] (hi may be INFINITY). */
int lsdm_parse_nonneg(const char *s, double hi, double *out);
/* The option the argument arg (getopt's optarg, ind its optind) belongs
 * to, as written: "--lr" for "--lr x" and "--lr=x", "-j" for "-j4". */
const char *lsdm_optarg_name(char *const *argv, int ind, const char *arg, char *buf, size_t n);
/* In main's getopt switch: optarg into var as a long in [lo, hi] or a
 * number in [0, hi], else return the usage error naming the option. */
#define LSDM_OPT_LONG(var, lo, hi)                                                        \
    do {                                                                                  \
        long v_;                                                                          \
        char o_[64];                                                                      \
        if (lsdm_parse_long(optarg, lo, hi, &v_) < 0)                                     \
            return lsdm_usage_error("%s: %s", lsdm_optarg_name(argv, optind, optarg, o_, 64), \
                                    lsdm_err_msg());                                      \
        var = v_;                                                                         \
    } while (0)
#define LSDM_OPT_REAL(var, hi)                                                            \
    do {                                                                                  \
        double d_;                                                                        \
        char o_[64];                                                                      \
        if (lsdm_parse_nonneg(optarg, hi, &d_) < 0)                                       \
            return lsdm_usage_error("%s: %s", lsdm_optarg_name(argv, optind, optarg, o_, 64), \
                                    lsdm_err_msg());                                      \
        var = d_;                                                                         \
    } while (0)
int lsdm_parse_dims(const char *s, int out[3]);
/* Axes as letters of "dhw" ("" or "none": no axis): flags[k] = 1 for each. */
int lsdm_parse_axes(const char *s, int flags[3]);
/* Seconds on the monotonic clock (elapsed times of long runs). */
double lsdm_now_s(void);

#endif
