/* vol-import: NIfTI files, directories and archives of them (and streams,
 * passed through) -> one tensor stream. The first stage of every pipeline:
 * the geometry read here (affine, spacing) travels with the voxels to the
 * NIfTI files vol-export writes at the end. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "namepat.h"
#include "resample.h"
#include "stream.h"
#include "volsrc.h"

static const char HELP[] =
    "Usage: vol-import [OPTION]... INPUT...\n"
    "Read volumes from each INPUT and write them as one tensor stream.\n"
    "An INPUT is a NIfTI-1/NIfTI-2 file (.nii, .nii.gz), a directory (its\n"
    ".nii and .nii.gz files, sorted by name), an archive of NIfTI files (tar,\n"
    "tar.gz, tar.zst, zip; read in memory, never unpacked), or a tensor\n"
    "stream, whose records pass through untouched (but for --name).\n"
    "'-' is standard input.\n"
    "Volumes become C,D,H,W records (C = the 4th NIfTI dimension) with the\n"
    "affine (sform, else qform, else the voxel spacing) and the spacing.\n"
    "\n"
    "  -o, --output OUT   write the stream to OUT (default '-': standard output)\n"
    "      --labels       inputs are label maps: role 'labels', integer voxels,\n"
    "                     no scl_slope/scl_inter scaling; a float map must hold\n"
    "                     whole numbers only\n"
    "      --role ROLE    role of the imported volumes (image, labels, semantic,\n"
    "                     latent, features; default image, or labels with --labels)\n"
    "      --name PATTERN name of each volume, streams' records too: %d (e.g.\n"
    "                     %04d) is its 0-based position in the output, {name}\n"
    "                     its own name (a file's name without .nii/.nii.gz)\n"
    "      --crop DxHxW   crop or pad (zeros) every volume to this shape, centred;\n"
    "                     the affine follows, so voxels keep their positions\n"
    "                     (as mask2sem --crop does to masks)\n"
    "      --records LIST keep only these records, counted from 0 over all\n"
    "                     INPUTs in order: comma-separated N, A-B, A- or -B\n"
    "                     (e.g. 0-7 to train, 8- to test; one range per job of\n"
    "                     a job array); the others are read and dropped\n"
    LSDM_COMMON_HELP
    "\n"
    "With -v, each volume is listed on standard error.\n"
    "Exit status: 0 ok, 1 unreadable input or write error, 2 usage error.\n";

enum { OPT_LABELS = LSDM_OPT_FIRST_TOOL, OPT_ROLE, OPT_NAME, OPT_RECORDS, OPT_CROP };

enum { MAX_RANGES = 64 };

typedef struct {
    lsdm_nifti_opts nifti;
    const char *name_pattern; /* NULL: keep the file's name */
    long count;               /* records written so far */
    long seen;                /* records read so far, kept or not */
    long lo[MAX_RANGES], hi[MAX_RANGES]; /* --records: inclusive ranges */
    int nranges;              /* 0: keep every record */
    int crop[3];              /* --crop; 0: none */
} import_opts;

/* "N", "A-B", "A-", "-B", comma-separated -> inclusive ranges. */
static int parse_records(const char *spec, import_opts *io) {
    const char *s = spec;
    do {
        if (io->nranges == MAX_RANGES) return lsdm_err("more than %d ranges", MAX_RANGES);
        long lo = 0, hi = LONG_MAX;
        char *end;
        if (*s != '-') {
            if (*s < '0' || *s > '9') return lsdm_err("'%s': expected N, A-B, A- or -B", spec);
            lo = strtol(s, &end, 10);
            s = end;
            if (*s != '-') hi = lo;
        }
        if (*s == '-') {
            s++;
            if (*s >= '0' && *s <= '9') {
                hi = strtol(s, &end, 10);
                s = end;
            } else if (lo == 0 && s == spec + 1) {
                return lsdm_err("'%s': expected N, A-B, A- or -B", spec);
            }
        }
        if (*s && *s != ',') return lsdm_err("'%s': expected N, A-B, A- or -B", spec);
        if (hi < lo) return lsdm_err("'%s': range %ld-%ld is empty", spec, lo, hi);
        io->lo[io->nranges] = lo, io->hi[io->nranges] = hi;
        io->nranges++;
    } while (*s++ == ',');
    return 0;
}

static int record_wanted(const import_opts *io, long i) {
    if (!io->nranges) return 1;
    for (int k = 0; k < io->nranges; k++)
        if (i >= io->lo[k] && i <= io->hi[k]) return 1;
    return 0;
}

/* Centred crop/pad of the last three dims of r to io->crop, zeros outside;
 * the affine moves with the window (resample.h). */
static int import_crop(lsdm_record *r, const import_opts *io) {
    if (r->ndim < 3) return lsdm_err("'%s': --crop needs a D,H,W volume", lsdm_record_get(r, "name"));
    lsdm_grid g, t;
    if (lsdm_grid_from_record(r, &g)) return -1;
    int64_t dim[3] = {io->crop[0], io->crop[1], io->crop[2]}, off[3], shape[LSDM_MAX_DIMS];
    lsdm_grid_centre_offset(g.dim, dim, off);
    lsdm_grid_window(&g, off, dim, &t);
    int lead = r->ndim - 3;
    int64_t C = 1;
    for (int k = 0; k < lead; k++) C *= r->shape[k], shape[k] = r->shape[k];
    for (int k = 0; k < 3; k++) shape[lead + k] = dim[k];
    lsdm_record out;
    lsdm_record_init(&out);
    int rc = lsdm_record_alloc(&out, r->dtype, r->ndim, shape);
    if (!rc) rc = lsdm_record_copy_keys(&out, r);
    if (!rc) rc = lsdm_record_set_affine(&out, t.affine);
    size_t elem = lsdm_dtype_size(r->dtype), sin = (size_t)(g.dim[0] * g.dim[1] * g.dim[2]) * elem;
    size_t sout = (size_t)(dim[0] * dim[1] * dim[2]) * elem;
    for (int64_t c = 0; !rc && c < C; c++)
        lsdm_window_copy((const char *)r->data + c * sin, g.dim, off, (char *)out.data + c * sout, dim, elem);
    if (!rc) rc = lsdm_record_add_provenance(&out, "vol-import/" LSDM_VERSION " crop");
    if (rc) {
        lsdm_record_free(&out);
        return -1;
    }
    lsdm_record_free(r);
    *r = out;
    return 0;
}

/* What vol-import adds: a name from --name (to every record, so that a
 * stream can be renamed too) and, to a volume read from NIfTI, provenance. */
static int import_label(lsdm_record *r, const import_opts *io, int passed) {
    if (io->name_pattern) {
        char *name = lsdm_namepat_format(io->name_pattern, io->count, lsdm_record_get(r, "name"));
        if (!name) return -1;
        int rc = lsdm_record_set(r, "name", name);
        free(name);
        if (rc) return -1;
    }
    return passed ? 0 : lsdm_record_add_provenance(r, "vol-import/" LSDM_VERSION);
}

static void import_say(const lsdm_record *r) {
    char shape[LSDM_MAX_DIMS * 24];
    lsdm_shape_format(shape, sizeof shape, r->ndim, r->shape);
    const char *src = lsdm_record_get(r, "affine-source");
    lsdm_verbose("%s: %s %s %s%s%s", lsdm_record_get(r, "name"), lsdm_dtype_name(r->dtype), shape,
                 lsdm_record_get(r, "role"), src ? " affine from " : "", src ? src : "");
}

/* Every volume of one input into the stream. */
static int import_input(const char *path, import_opts *io, lsdm_writer *w) {
    lsdm_volsrc *src = lsdm_volsrc_open(path, &io->nifti);
    if (!src) return -1;
    int pass = lsdm_volsrc_is_stream(src), rc;
    lsdm_record r;
    lsdm_record_init(&r);
    while ((rc = lsdm_volsrc_next(src, &r)) == 1) {
        if (!record_wanted(io, io->seen++)) continue;
        if (import_label(&r, io, pass) || (io->crop[0] && import_crop(&r, io))) { rc = -1; break; }
        if (lsdm_writer_put(w, &r)) { rc = -1; break; }
        import_say(&r);
        io->count++;
        lsdm_progress(io->count, 0, "volumes");
    }
    lsdm_record_free(&r);
    lsdm_volsrc_close(src);
    return rc < 0 ? -1 : 0;
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        LSDM_COMMON_LONGOPTS,
        {"output", required_argument, 0, 'o'},
        {"labels", no_argument, 0, OPT_LABELS},
        {"role", required_argument, 0, OPT_ROLE},
        {"name", required_argument, 0, OPT_NAME},
        {"records", required_argument, 0, OPT_RECORDS},
        {"crop", required_argument, 0, OPT_CROP},
        {0, 0, 0, 0},
    };
    lsdm_cli_init("vol-import", argv);
    const char *out = "-";
    import_opts io = {0};
    int c;
    while ((c = getopt_long(argc, argv, LSDM_COMMON_SHORTOPTS "o:", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case OPT_LABELS: io.nifti.labels = 1; break;
        case OPT_ROLE: io.nifti.role = optarg; break;
        case OPT_NAME: io.name_pattern = optarg; break;
        case OPT_CROP:
            if (lsdm_parse_dims(optarg, io.crop)) return lsdm_usage_error("--crop: %s", lsdm_err_msg());
            break;
        case OPT_RECORDS:
            if (parse_records(optarg, &io)) return lsdm_usage_error("--records: %s", lsdm_err_msg());
            break;
        LSDM_CLI_DEFAULT(c, HELP);
        }
    }
    if (optind == argc) return lsdm_usage_error("no INPUT given (use '-' for standard input)");
    if (io.nifti.role && !lsdm_role_valid(io.nifti.role))
        return lsdm_usage_error("--role: unknown role '%s' (image, labels, semantic, latent, features)", io.nifti.role);
    /* a label map is integer data: --role labels implies the --labels rules */
    if (io.nifti.role && strcmp(io.nifti.role, "labels") == 0) io.nifti.labels = 1;
    if (io.nifti.labels && io.nifti.role && strcmp(io.nifti.role, "labels") != 0)
        return lsdm_usage_error("--labels gives role 'labels'; it cannot be combined with --role %s", io.nifti.role);
    if (io.name_pattern && (!*io.name_pattern || lsdm_namepat_check(io.name_pattern)))
        return lsdm_usage_error("--name: %s", *io.name_pattern ? lsdm_err_msg() : "empty pattern");

    lsdm_writer *w = lsdm_writer_open(out, lsdm_opt.level, lsdm_opt.force);
    if (!w) return lsdm_fail();
    for (int i = optind; i < argc; i++) {
        if (import_input(argv[i], &io, w)) {
            lsdm_progress_end();
            lsdm_writer_abort(w);
            return lsdm_fail();
        }
    }
    lsdm_progress_end();
    if (lsdm_writer_close(w)) return lsdm_fail();
    return 0;
}
