/* mask2sem: segmentation masks -> de-identified semantic tensors.
 *
 * Per input volume: remap labels to classes -> resample onto a target grid
 * -> crop/pad -> split into depth blocks -> encode (class indices or
 * one-hot) -> write. Each output record is built from nothing: it gets a
 * generic name, the geometry and the class names, and not one byte of the
 * input's other keys, NIfTI header text, extensions or file name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "labelmap.h"
#include "resample.h"
#include "stream.h"
#include "volsrc.h"

static const char HELP[] =
    "Usage: mask2sem [OPTIONS] [INPUT...]\n"
    "Turn segmentation masks into de-identified semantic tensors: class\n"
    "indices (u8, 1,D,H,W) or one-hot (N,D,H,W), carrying geometry and class\n"
    "names only. INPUT: tensor stream, NIfTI file, directory or archive of\n"
    "them ('-' or none: standard input).\n"
    "\n"
    "Labels:\n"
    "  -m, --map SPEC|@FILE   remap labels: 'src=dst,...' (src N, A-B or *), or\n"
    "                         a file of lines 'src dst [name]'\n"
    "      --names LIST       class names '0=background,1=...'\n"
    "  -n, --classes N        class count (default: largest class + 1)\n"
    "      --unknown error|background  labels the map lacks (default error)\n"
    "Grid (in this order):\n"
    "      --like IMAGE       resample onto IMAGE's grid (shape and affine)\n"
    "      --shape DxHxW      resample to this shape ...\n"
    "      --spacing D,H,W    ... and/or spacing (mm), same centre and orientation\n"
    "      --crop DxHxW       crop or pad (background) to this shape, centred\n"
    "      --offset D,H,W     ... with its origin at this input voxel instead\n"
    "      --blocks D         split along depth into blocks of D slices\n"
    "      --stride S         first slices of the blocks S apart (default D)\n"
    "      --drop-partial     drop a last block that would need padding\n"
    "Output:\n"
    "  -o, --output FILE      output stream (default standard output)\n"
    "      --onehot           one-hot channels instead of class indices\n"
    "      --dtype T          one-hot type: f16 (default), bf16, f32, u8\n"
    "      --name PATTERN     record names, %d = volume index (default mask-%04d)\n"
    "      --drop-affine      keep the spacing only, no position or orientation\n"
    "\n" LSDM_COMMON_HELP;

enum {
    OPT_NAMES = LSDM_OPT_FIRST_TOOL, OPT_UNKNOWN, OPT_LIKE, OPT_SHAPE, OPT_SPACING, OPT_CROP, OPT_OFFSET,
    OPT_BLOCKS, OPT_STRIDE, OPT_DROP_PARTIAL, OPT_ONEHOT, OPT_DTYPE, OPT_NAME, OPT_DROP_AFFINE
};

typedef struct {
    const char *output, *map, *names, *like, *name;
    int classes;       /* 0: from the map, names or first volume */
    int unknown;       /* class for labels the map lacks; -1: error */
    int64_t shape[3];  /* resample shape, 0 = from the spacing */
    double spacing[3]; /* resample spacing, 0 = from the shape */
    int resample;
    int64_t crop[3], offset[3];
    int crop_set, offset_set;
    int64_t blocks, stride;
    int drop_partial, onehot, drop_affine;
    lsdm_dtype dtype;
} m2s_opts;

/* What every volume shares: the label map, class names, the class count
 * and the --like grid. */
typedef struct {
    lsdm_labelmap map;
    int have_map;
    lsdm_labels names; /* --names, else the map file's */
    int classes;       /* 0 until known */
    lsdm_grid like;
    int have_like;
    long index;        /* volumes done */
} m2s_state;

/* ------------------------------------------------------------ options */

static int parse_triple_int(const char *s, int64_t v[3], long lo) {
    int nd;
    int64_t shape[LSDM_MAX_DIMS];
    char *end;
    const char *p = s;
    if (lo >= 1) {
        if (lsdm_shape_parse(s, &nd, shape) || nd != 3) return lsdm_err("'%s' is not DxHxW", s);
        memcpy(v, shape, sizeof(int64_t) * 3);
        return 0;
    }
    for (int k = 0; k < 3; k++) { /* signed: offsets may be negative */
        v[k] = strtoll(p, &end, 10);
        if (end == p) return lsdm_err("'%s' is not three integers d,h,w", s);
        p = end;
        if (k < 2 && *p++ != ',') return lsdm_err("'%s' is not three integers d,h,w", s);
    }
    return *p ? lsdm_err("'%s' is not three integers d,h,w", s) : 0;
}

static int parse_spacing(const char *s, double sp[3]) {
    char buf[256], *save, *tok = NULL;
    snprintf(buf, sizeof buf, "%s", s);
    char *p = buf;
    for (int k = 0; k < 3; k++, p = NULL) {
        if (!(tok = strtok_r(p, ",x", &save)) || lsdm_parse_double(tok, &sp[k]) || !(sp[k] > 0))
            return lsdm_err("'%s' is not three positive numbers d,h,w", s);
    }
    return strtok_r(NULL, ",x", &save) ? lsdm_err("'%s' is not three positive numbers d,h,w", s) : 0;
}

/* A --name pattern: literal text, "%%", and at most one "%d" / "%0Nd". */
static int check_name_pattern(const char *pat) {
    int convs = 0;
    for (const char *p = pat; *p; p++) {
        if (*p != '%') continue;
        if (p[1] == '%') { p++; continue; }
        p++;
        while (*p >= '0' && *p <= '9') p++;
        if (*p != 'd') return lsdm_err("--name: only %%d (and %%%%) may be used, in '%s'", pat);
        convs++;
    }
    if (convs > 1) return lsdm_err("--name: more than one %%d in '%s'", pat);
    return 0;
}

/* The pattern with its %d replaced by index (widths like %04d kept). */
static void format_name(const char *pat, long index, char *out, size_t cap) {
    size_t n = 0;
    for (const char *p = pat; *p && n + 1 < cap; p++) {
        if (*p != '%') { out[n++] = *p; continue; }
        if (p[1] == '%') { out[n++] = '%'; p++; continue; }
        int width = (int)strtol(p + 1, NULL, 10);
        while (*++p != 'd') {}
        n += (size_t)snprintf(out + n, cap - n, "%0*ld", width, index);
        if (n >= cap) n = cap - 1;
    }
    out[n] = 0;
}

static int parse_args(int argc, char **argv, m2s_opts *o, int *first_input) {
    static const struct option longopts[] = {
        LSDM_COMMON_LONGOPTS,
        {"output", required_argument, 0, 'o'}, {"map", required_argument, 0, 'm'},
        {"names", required_argument, 0, OPT_NAMES}, {"classes", required_argument, 0, 'n'},
        {"unknown", required_argument, 0, OPT_UNKNOWN}, {"like", required_argument, 0, OPT_LIKE},
        {"shape", required_argument, 0, OPT_SHAPE}, {"spacing", required_argument, 0, OPT_SPACING},
        {"crop", required_argument, 0, OPT_CROP}, {"offset", required_argument, 0, OPT_OFFSET},
        {"blocks", required_argument, 0, OPT_BLOCKS}, {"stride", required_argument, 0, OPT_STRIDE},
        {"drop-partial", no_argument, 0, OPT_DROP_PARTIAL}, {"onehot", no_argument, 0, OPT_ONEHOT},
        {"dtype", required_argument, 0, OPT_DTYPE}, {"name", required_argument, 0, OPT_NAME},
        {"drop-affine", no_argument, 0, OPT_DROP_AFFINE}, {0, 0, 0, 0},
    };
    int c, dtype_set = 0;
    long v;
    while ((c = getopt_long(argc, argv, LSDM_COMMON_SHORTOPTS "o:m:n:", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': o->output = optarg; break;
        case 'm': o->map = optarg; break;
        case OPT_NAMES: o->names = optarg; break;
        case 'n':
            if (lsdm_parse_long(optarg, 1, LSDM_LABELMAP_MAX_CLASS + 1, &v)) return lsdm_usage_error("--classes: %s", lsdm_err_msg());
            o->classes = (int)v;
            break;
        case OPT_UNKNOWN:
            if (!strcmp(optarg, "error")) o->unknown = -1;
            else if (!strcmp(optarg, "background")) o->unknown = 0;
            else return lsdm_usage_error("--unknown: '%s' is not 'error' or 'background'", optarg);
            break;
        case OPT_LIKE: o->like = optarg; break;
        case OPT_SHAPE:
            if (parse_triple_int(optarg, o->shape, 1)) return lsdm_usage_error("--shape: %s", lsdm_err_msg());
            o->resample = 1;
            break;
        case OPT_SPACING:
            if (parse_spacing(optarg, o->spacing)) return lsdm_usage_error("--spacing: %s", lsdm_err_msg());
            o->resample = 1;
            break;
        case OPT_CROP:
            if (parse_triple_int(optarg, o->crop, 1)) return lsdm_usage_error("--crop: %s", lsdm_err_msg());
            o->crop_set = 1;
            break;
        case OPT_OFFSET:
            if (parse_triple_int(optarg, o->offset, -1)) return lsdm_usage_error("--offset: %s", lsdm_err_msg());
            o->offset_set = 1;
            break;
        case OPT_BLOCKS:
            if (lsdm_parse_long(optarg, 1, 1L << 30, &v)) return lsdm_usage_error("--blocks: %s", lsdm_err_msg());
            o->blocks = v;
            break;
        case OPT_STRIDE:
            if (lsdm_parse_long(optarg, 1, 1L << 30, &v)) return lsdm_usage_error("--stride: %s", lsdm_err_msg());
            o->stride = v;
            break;
        case OPT_DROP_PARTIAL: o->drop_partial = 1; break;
        case OPT_ONEHOT: o->onehot = 1; break;
        case OPT_DTYPE:
            if (lsdm_dtype_parse(optarg, &o->dtype) || (o->dtype != LSDM_U8 && !lsdm_dtype_is_float(o->dtype)))
                return lsdm_usage_error("--dtype: '%s' is not f16, bf16, f32 or u8", optarg);
            dtype_set = 1;
            break;
        case OPT_NAME:
            if (check_name_pattern(optarg)) return lsdm_usage_error("%s", lsdm_err_msg());
            o->name = optarg;
            break;
        case OPT_DROP_AFFINE: o->drop_affine = 1; break;
        LSDM_CLI_DEFAULT(c, HELP);
        }
    }
    if (o->like && o->resample) return lsdm_usage_error("--like and --shape/--spacing exclude each other");
    if (o->offset_set && !o->crop_set) return lsdm_usage_error("--offset needs --crop");
    if (o->stride && !o->blocks) return lsdm_usage_error("--stride needs --blocks");
    if (o->drop_partial && !o->blocks) return lsdm_usage_error("--drop-partial needs --blocks");
    if (dtype_set && !o->onehot) return lsdm_usage_error("--dtype needs --onehot (class indices are u8)");
    if (!o->stride) o->stride = o->blocks;
    *first_input = optind;
    return -1;
}

/* ------------------------------------------------------------ classes */

static int labels_max_id(const lsdm_labels *l) {
    int m = -1;
    for (int i = 0; i < l->n; i++)
        if (l->ids[i] > m) m = l->ids[i];
    return m;
}

/* Map, names and the class count as far as the options fix them. */
static int state_init(m2s_state *st, const m2s_opts *o) {
    memset(st, 0, sizeof *st);
    st->map.rest = -1;
    if (o->map) {
        if (lsdm_labelmap_load(o->map, &st->map)) return lsdm_err_ctx("--map");
        st->have_map = 1;
    }
    if (o->names) {
        if (lsdm_labels_parse(o->names, &st->names)) return lsdm_err_ctx("--names");
        for (int i = 0; i < st->names.n; i++)
            if (st->names.ids[i] > LSDM_LABELMAP_MAX_CLASS || !st->names.names[i][0])
                return lsdm_err("--names: class %d: need a class 0..%d and a name", st->names.ids[i], LSDM_LABELMAP_MAX_CLASS);
    } else if (st->have_map && st->map.names.n) {
        st->names = st->map.names; /* moved: the map no longer owns them */
        memset(&st->map.names, 0, sizeof st->map.names);
    }
    st->classes = o->classes;
    if (!st->classes && st->have_map) {
        int top = st->map.max_dst;
        if (labels_max_id(&st->names) > top) top = labels_max_id(&st->names);
        if (o->unknown > top) top = o->unknown;
        st->classes = top + 1;
    }
    if (st->classes) {
        if (st->have_map && st->map.max_dst >= st->classes)
            return lsdm_err("the label map gives class %d, but there are only %d classes", st->map.max_dst, st->classes);
        if (labels_max_id(&st->names) >= st->classes)
            return lsdm_err("class %d is named, but there are only %d classes", labels_max_id(&st->names), st->classes);
    }
    return 0;
}

static void state_free(m2s_state *st) {
    lsdm_labelmap_free(&st->map);
    lsdm_labels_free(&st->names);
}

/* "0=background,1=...": every class 0..n-1, named from l where it can be. */
static char *format_class_names(const lsdm_labels *l, int n) {
    size_t cap = 64, len = 0;
    char *s = malloc(cap);
    if (!s) { lsdm_err("out of memory"); return NULL; }
    s[0] = 0;
    for (int c = 0; c < n; c++) {
        char dflt[32];
        const char *name = l ? lsdm_labels_name(l, c) : NULL;
        if (!name) { snprintf(dflt, sizeof dflt, c ? "class%d" : "background", c); name = dflt; }
        size_t need = len + strlen(name) + 16;
        if (need > cap) {
            char *p = realloc(s, cap = need * 2);
            if (!p) { free(s); lsdm_err("out of memory"); return NULL; }
            s = p;
        }
        len += (size_t)snprintf(s + len, cap - len, "%s%d=%s", c ? "," : "", c, name);
    }
    return s;
}

/* Class indices of one input volume (dst: numel bytes). Fixes the class
 * count on the first volume when nothing else did. */
static int volume_classes(m2s_state *st, const m2s_opts *o, const lsdm_record *in, const lsdm_labels *own, uint8_t *dst) {
    int top;
    int n = st->classes ? st->classes : LSDM_LABELMAP_MAX_CLASS + 1;
    if (lsdm_labelmap_apply(st->have_map ? &st->map : NULL, in->data, in->dtype, lsdm_record_numel(in),
                            o->unknown, n, dst, &top))
        return -1;
    if (!st->classes) { /* identity labels: as many classes as the first volume has (or names) */
        if (labels_max_id(&st->names) > top) top = labels_max_id(&st->names);
        if (own && labels_max_id(own) > top && labels_max_id(own) <= LSDM_LABELMAP_MAX_CLASS) top = labels_max_id(own);
        st->classes = top + 1;
    }
    return 0;
}

/* ------------------------------------------------------------ output */

/* One output record: a block of class indices on grid g, encoded. */
static int write_block(lsdm_writer *w, const m2s_opts *o, const m2s_state *st, const char *name,
                       const char *class_names, const uint8_t *cls, const lsdm_grid *g) {
    lsdm_record r;
    lsdm_record_init(&r);
    size_t n = (size_t)(g->dim[0] * g->dim[1] * g->dim[2]);
    int64_t shape[4] = {o->onehot ? st->classes : 1, g->dim[0], g->dim[1], g->dim[2]};
    int rc = lsdm_record_alloc(&r, o->onehot ? o->dtype : LSDM_U8, 4, shape);
    if (!rc && o->onehot) {
        /* channel c is 1 where the class is c, 0 elsewhere (alloc zeroed it) */
        uint8_t one[8];
        float f1 = 1.0f;
        size_t e = lsdm_dtype_size(o->dtype);
        lsdm_convert_from_f32(one, o->dtype, &f1, 1);
        uint8_t *d = r.data;
        for (size_t i = 0; i < n; i++) memcpy(d + ((size_t)cls[i] * n + i) * e, one, e);
    } else if (!rc) {
        memcpy(r.data, cls, n);
    }
    double sp[3];
    lsdm_grid_spacing(g, sp);
    if (!rc) rc = lsdm_record_set(&r, "name", name);
    if (!rc) rc = lsdm_record_set(&r, "role", "semantic");
    if (!rc) rc = lsdm_record_set(&r, "encoding", o->onehot ? "onehot" : "labels");
    if (!rc) rc = lsdm_record_setf(&r, "classes", "%d", st->classes);
    if (!rc) rc = lsdm_record_set(&r, "labels", class_names);
    if (!rc && !o->drop_affine) rc = lsdm_record_set_affine(&r, g->affine);
    if (!rc) rc = lsdm_record_set_spacing(&r, sp);
    if (!rc) rc = lsdm_record_add_provenance(&r, "mask2sem/" LSDM_VERSION);
    if (!rc) rc = lsdm_writer_put(w, &r);
    lsdm_record_free(&r);
    return rc;
}

/* Split cls (grid g) along depth into blocks, or write it whole. */
static int write_volume(lsdm_writer *w, const m2s_opts *o, const m2s_state *st, const char *class_names,
                        const uint8_t *cls, const lsdm_grid *g) {
    char name[256];
    format_name(o->name ? o->name : "mask-%04d", st->index, name, sizeof name);
    if (!o->blocks) return write_block(w, o, st, name, class_names, cls, g);
    int64_t D = o->blocks, dim[3] = {D, g->dim[1], g->dim[2]};
    uint8_t *buf = malloc((size_t)(D * dim[1] * dim[2]));
    if (!buf) return lsdm_err("out of memory");
    int rc = 0, nb = 0;
    /* blocks start 0, S, 2S, ... until one reaches the last slice */
    for (int64_t start = 0; !rc; start += o->stride) {
        int partial = start + D > g->dim[0];
        if (!(partial && o->drop_partial)) {
            int64_t off[3] = {start, 0, 0};
            lsdm_grid bg;
            char bname[300];
            lsdm_grid_window(g, off, dim, &bg);
            lsdm_window_copy(cls, g->dim, off, buf, dim, 1);
            snprintf(bname, sizeof bname, "%s-b%02d", name, nb++);
            rc = write_block(w, o, st, bname, class_names, buf, &bg);
        }
        if (start + D >= g->dim[0]) break;
    }
    if (!rc && nb == 0) lsdm_note("volume %ld: %lld slices, no whole block of %lld (--drop-partial)", st->index,
                                  (long long)g->dim[0], (long long)D);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------ pipeline */

/* Remap, resample, crop and write one input volume. */
static int process_volume(lsdm_writer *w, const m2s_opts *o, m2s_state *st, const lsdm_record *in) {
    if (in->ndim != 3 && !(in->ndim == 4 && in->shape[0] == 1))
        return lsdm_err("a mask is one D,H,W volume; this record has shape %lld%s... (%d dims)",
                        (long long)in->shape[0], in->ndim > 1 ? "," : "", in->ndim);
    lsdm_grid g, t;
    if (lsdm_grid_from_record(in, &g)) return -1;
    lsdm_labels own = {0, NULL, NULL}; /* the input's own class names, used for identity labels */
    const char *lk = lsdm_record_get(in, "labels");
    if (!st->have_map && !st->names.n && lk && lsdm_labels_parse(lk, &own)) return -1;

    size_t n = lsdm_record_numel(in);
    uint8_t *cls = malloc(n ? n : 1), *tmp = NULL;
    char *class_names = NULL;
    int rc = cls ? 0 : lsdm_err("out of memory");
    if (!rc) rc = volume_classes(st, o, in, own.n ? &own : NULL, cls);
    if (!rc && !(class_names = format_class_names(st->names.n ? &st->names : &own, st->classes))) rc = -1;

    /* the target grid: --like's, or a respaced one */
    if (!rc && (st->have_like || o->resample)) {
        if (st->have_like) t = st->like;
        else rc = lsdm_grid_respace(&g, o->shape, o->spacing, &t);
        if (!rc && !(tmp = malloc((size_t)(t.dim[0] * t.dim[1] * t.dim[2])))) rc = lsdm_err("out of memory");
        if (!rc) rc = lsdm_resample_nearest(cls, &g, tmp, &t, 1);
        if (!rc) { free(cls); cls = tmp; tmp = NULL; g = t; }
    }
    if (!rc && o->crop_set) {
        int64_t off[3];
        if (o->offset_set) memcpy(off, o->offset, sizeof off);
        else lsdm_grid_centre_offset(g.dim, o->crop, off);
        lsdm_grid_window(&g, off, o->crop, &t);
        if (!(tmp = malloc((size_t)(t.dim[0] * t.dim[1] * t.dim[2])))) rc = lsdm_err("out of memory");
        if (!rc) { lsdm_window_copy(cls, g.dim, off, tmp, t.dim, 1); free(cls); cls = tmp; tmp = NULL; g = t; }
    }
    if (!rc) {
        lsdm_verbose("volume %ld: %lldx%lldx%lld, %d classes", st->index, (long long)g.dim[0],
                     (long long)g.dim[1], (long long)g.dim[2], st->classes);
        rc = write_volume(w, o, st, class_names, cls, &g);
    }
    free(cls);
    free(tmp);
    free(class_names);
    lsdm_labels_free(&own);
    return rc;
}

/* The grid of the first volume of path. */
static int read_like_grid(const char *path, lsdm_grid *g) {
    lsdm_nifti_opts no = {0, NULL};
    lsdm_volsrc *src = lsdm_volsrc_open(path, &no);
    if (!src) return lsdm_err_ctx("--like");
    lsdm_record r;
    lsdm_record_init(&r);
    int rc = lsdm_volsrc_next(src, &r);
    if (rc == 0) rc = lsdm_err("no volume in it");
    if (rc > 0) rc = lsdm_grid_from_record(&r, g);
    lsdm_record_free(&r);
    lsdm_volsrc_close(src);
    return rc < 0 ? lsdm_err_ctx("--like") : 0;
}

/* Every volume of one input. */
static int process_input(lsdm_writer *w, const m2s_opts *o, m2s_state *st, const char *path) {
    lsdm_nifti_opts no = {1, NULL};
    lsdm_volsrc *src = lsdm_volsrc_open(path, &no);
    if (!src) return -1;
    lsdm_record r;
    lsdm_record_init(&r);
    int rc;
    while ((rc = lsdm_volsrc_next(src, &r)) == 1) {
        if (process_volume(w, o, st, &r)) {
            const char *name = lsdm_record_get(&r, "name");
            rc = lsdm_err_ctx("%s", name ? name : path); /* stderr only, never the output */
            break;
        }
        st->index++;
    }
    lsdm_record_free(&r);
    lsdm_volsrc_close(src);
    return rc < 0 ? -1 : 0;
}

int main(int argc, char **argv) {
    lsdm_cli_init("mask2sem", argv);
    m2s_opts o = {0};
    o.dtype = LSDM_F16;
    o.unknown = -1;
    int first = 0, rc = parse_args(argc, argv, &o, &first);
    if (rc >= 0) return rc;

    m2s_state st;
    if (state_init(&st, &o)) { state_free(&st); return lsdm_fail(); }
    if (o.like && read_like_grid(o.like, &st.like)) { state_free(&st); return lsdm_fail(); }
    st.have_like = o.like != NULL;

    lsdm_writer *w = lsdm_writer_open(o.output, lsdm_opt.level, lsdm_opt.force);
    if (!w) { state_free(&st); return lsdm_fail(); }
    rc = 0;
    if (first == argc) rc = process_input(w, &o, &st, "-");
    for (int i = first; i < argc && !rc; i++) rc = process_input(w, &o, &st, argv[i]);
    if (!rc) rc = lsdm_writer_close(w);
    else lsdm_writer_abort(w);
    state_free(&st);
    if (rc) return lsdm_fail();
    lsdm_verbose("%ld volume(s)", st.index);
    return 0;
}
