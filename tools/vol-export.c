/* vol-export: tensor stream -> one NIfTI file per record, the last stage of
 * a pipeline. The record's affine goes back into the sform and qform, its
 * spacing into pixdim, so the geometry read by vol-import survives. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "err.h"
#include "namepat.h"
#include "volsrc.h"

static const char HELP[] =
    "Usage: vol-export [OPTION]... [INPUT]\n"
    "Write each record of INPUT (a tensor stream, or anything vol-import reads;\n"
    "default '-': standard input) as a NIfTI file. Records of shape D,H,W or\n"
    "1,D,H,W become 3D volumes, C,D,H,W 4D ones. The affine becomes the sform\n"
    "and the qform, the spacing pixdim; u8, i16, i32 and f32 keep their type,\n"
    "f16 and bf16 are written as f32. Each file is written atomically.\n"
    "\n"
    "  -o, --output DIR|PATTERN\n"
    "                     a directory (made if missing; default '.'), where each\n"
    "                     record becomes NAME.nii.gz from its name key ('/' and\n"
    "                     a leading '.' replaced by '_'); or a file name PATTERN\n"
    "                     with %d (e.g. %03d, the record's 0-based position)\n"
    "                     and/or {name}, or a single file name (one record).\n"
    "                     A name ending in .nii or .nii.gz decides the\n"
    "                     compression itself\n"
    "      --gz           compress: .nii.gz (default)\n"
    "      --no-gz        do not compress: .nii\n"
    "      --nifti2       write NIfTI-2 headers (double precision geometry,\n"
    "                     dimensions over 32767) instead of NIfTI-1\n"
    LSDM_COMMON_HELP
    "\n"
    "With -v, each file written is listed on standard error.\n"
    "Exit status: 0 ok, 1 unreadable input or write error, 2 usage error.\n";

enum { OPT_GZ = LSDM_OPT_FIRST_TOOL, OPT_NO_GZ, OPT_NIFTI2 };

typedef struct {
    const char *out; /* directory or pattern */
    int pattern, gz, nifti2;
    char **written;  /* paths so far: two records must not share a file */
    long count;
} export_opts;

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* mkdir -p of the directory part of path (or of path itself if whole). */
static int export_mkdirs(const char *path, int whole) {
    char *p = strdup(path);
    if (!p) return lsdm_err("out of memory");
    char *end = whole ? p + strlen(p) : strrchr(p, '/');
    int rc = 0;
    if (end) {
        *end = 0;
        for (char *q = p + 1; q <= end && !rc; q++) {
            if (*q != '/' && *q != 0) continue;
            char keep = *q;
            *q = 0;
            if (mkdir(p, 0777) != 0 && errno != EEXIST) rc = lsdm_err("%s: cannot make directory: %s", p, strerror(errno));
            *q = keep;
        }
    }
    free(p);
    return rc;
}

/* The file for record number io->count. */
static char *export_path(const export_opts *io, const lsdm_record *r) {
    char *name = lsdm_name_sanitize(lsdm_record_get(r, "name"));
    if (!name) { lsdm_err("out of memory"); return NULL; }
    char *base;
    if (io->pattern) {
        base = lsdm_namepat_format(io->out, io->count, name);
    } else {
        size_t n = strlen(io->out) + strlen(name) + 2;
        if ((base = malloc(n))) snprintf(base, n, "%s%s%s", io->out, ends_with(io->out, "/") ? "" : "/", name);
    }
    free(name);
    if (!base) return NULL;
    if (io->pattern && (ends_with(base, ".nii") || ends_with(base, ".nii.gz"))) return base;
    const char *suffix = io->gz ? ".nii.gz" : ".nii";
    char *path = malloc(strlen(base) + 8);
    if (path) sprintf(path, "%s%s", base, suffix);
    else lsdm_err("out of memory");
    free(base);
    return path;
}

static int export_record(export_opts *io, const lsdm_record *r) {
    char *path = export_path(io, r);
    if (!path) return -1;
    for (long i = 0; i < io->count; i++)
        if (strcmp(io->written[i], path) == 0) {
            lsdm_err("records %ld and %ld would both be written to %s (use a pattern with %%d in -o)", i, io->count, path);
            free(path);
            return -1;
        }
    if ((io->pattern && export_mkdirs(path, 0)) || lsdm_nifti_write(path, r, io->nifti2)) { free(path); return -1; }
    char **p = realloc(io->written, (size_t)(io->count + 1) * sizeof *p);
    if (!p) { free(path); return lsdm_err("out of memory"); }
    io->written = p;
    io->written[io->count++] = path;
    lsdm_verbose("%s", path);
    lsdm_progress(io->count, 0, "files");
    return 0;
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        LSDM_COMMON_LONGOPTS,
        {"output", required_argument, 0, 'o'},
        {"gz", no_argument, 0, OPT_GZ},
        {"no-gz", no_argument, 0, OPT_NO_GZ},
        {"nifti2", no_argument, 0, OPT_NIFTI2},
        {0, 0, 0, 0},
    };
    lsdm_cli_init("vol-export", argv);
    export_opts io = {".", 0, 1, 0, NULL, 0};
    int c;
    while ((c = getopt_long(argc, argv, LSDM_COMMON_SHORTOPTS "o:", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': io.out = optarg; break;
        case OPT_GZ: io.gz = 1; break;
        case OPT_NO_GZ: io.gz = 0; break;
        case OPT_NIFTI2: io.nifti2 = 1; break;
        LSDM_CLI_DEFAULT(c, HELP);
        }
    }
    if (argc - optind > 1) return lsdm_usage_error("one INPUT at most (got %d)", argc - optind);
    const char *input = optind < argc ? argv[optind] : "-";
    if (!*io.out) return lsdm_usage_error("-o: empty output");
    if (strcmp(io.out, "-") == 0) return lsdm_usage_error("-o: NIfTI files go to a directory or a pattern, not standard output");
    /* a plain file name is a pattern too: right for a one-record stream,
     * and a second record is refused rather than overwriting the first */
    io.pattern = lsdm_namepat_is_pattern(io.out) || ends_with(io.out, ".nii") || ends_with(io.out, ".nii.gz");
    if (io.pattern && lsdm_namepat_check(io.out)) return lsdm_usage_error("-o: %s", lsdm_err_msg());

    lsdm_volsrc *src = lsdm_volsrc_open(input, NULL);
    int rc = src && (io.pattern || export_mkdirs(io.out, 1) == 0) ? 0 : -1;
    lsdm_record r;
    lsdm_record_init(&r);
    while (!rc && (rc = lsdm_volsrc_next(src, &r)) == 1) rc = export_record(&io, &r);
    lsdm_progress_end();
    lsdm_record_free(&r);
    lsdm_volsrc_close(src);
    for (long i = 0; i < io.count; i++) free(io.written[i]);
    free(io.written);
    return rc < 0 ? lsdm_fail() : 0;
}
