/* Unit tests of the NIfTI layer: synthetic NIfTI-1/2 files of every
 * datatype and both byte orders, built here byte by byte with nifticlib's
 * header structs, decoded and written back; the affine rules (sform, then
 * qform, then spacing; column order; exact round trips); scaling and label
 * maps; and every kind of bad file, which must give an error, never a
 * crash or a silent partial volume. Also volsrc over a directory and over
 * tar / zip archives made in memory with libarchive. */
#include <archive.h>
#include <archive_entry.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <nifti2_io.h>

#include "check.h"
#include "err.h"
#include "nifti.h"
#include "volsrc.h"

static char tmpdir[] = "/tmp/lsdm-test-nifti.XXXXXX";

/* ------------------------------------------------------- synthetic files */

typedef struct {
    int version, swapped, datatype;
    int64_t dim[8];
    double pixdim[4];
    int qform_code, sform_code;
    double quatern[6]; /* b c d, offset x y z */
    double qfac;
    double srow[3][4];
    double slope, inter;
    int64_t vox_offset; /* 0: right after the header */
} spec;

static spec spec_default(int version, int datatype) {
    spec s;
    memset(&s, 0, sizeof s);
    s.version = version;
    s.datatype = datatype;
    int64_t dim[8] = {3, 5, 4, 3, 1, 1, 1, 1}; /* x=5 y=4 z=3 */
    memcpy(s.dim, dim, sizeof dim);
    s.pixdim[1] = 0.75, s.pixdim[2] = 1.25, s.pixdim[3] = 2.5;
    s.qfac = 1;
    return s;
}

static double value_of(int dt, size_t i) { /* distinct, type-exact values */
    switch (dt) {
    case DT_UINT8: return (double)((i * 37 + 11) % 256);
    case DT_INT8: return (double)((int)((i * 37) % 256) - 128);
    case DT_INT16: return (double)((int)(i * 997 % 65536) - 32768);
    case DT_UINT16: return (double)(i * 997 % 65536);
    case DT_INT32: return (double)((int64_t)i * 100003 - 2000000);
    case DT_FLOAT32: return (float)(i * 0.37 - 3.1);
    default: return i * 0.1 - 2.0 + 1e-12; /* needs f64 */
    }
}

static void put_value(uint8_t *p, int dt, double v) {
    switch (dt) {
    case DT_UINT8: *p = (uint8_t)v; break;
    case DT_INT8: { int8_t x = (int8_t)v; memcpy(p, &x, 1); } break;
    case DT_INT16: { int16_t x = (int16_t)v; memcpy(p, &x, 2); } break;
    case DT_UINT16: { uint16_t x = (uint16_t)v; memcpy(p, &x, 2); } break;
    case DT_INT32: { int32_t x = (int32_t)v; memcpy(p, &x, 4); } break;
    case DT_FLOAT32: { float x = (float)v; memcpy(p, &x, 4); } break;
    default: memcpy(p, &v, 8);
    }
}

/* A whole .nii in memory; values from value_of unless vals given. */
static uint8_t *make_nii(const spec *s, const double *vals, size_t *len) {
    int nbyper, swapsize;
    nifti_datatype_sizes(s->datatype, &nbyper, &swapsize);
    if (nbyper == 0) nbyper = 4, swapsize = 4;
    size_t nvox = 1;
    for (int i = 1; i <= s->dim[0]; i++) nvox *= (size_t)s->dim[i];
    size_t hsize = s->version == 1 ? 348 : 540;
    int64_t off = s->vox_offset ? s->vox_offset : (int64_t)hsize + 4;
    *len = (size_t)off + nvox * (size_t)nbyper;
    uint8_t *buf = calloc(1, *len);
    if (s->version == 1) {
        nifti_1_header h;
        memset(&h, 0, sizeof h);
        h.sizeof_hdr = 348;
        for (int i = 0; i < 8; i++) h.dim[i] = (short)s->dim[i];
        for (int i = 1; i < 4; i++) h.pixdim[i] = (float)s->pixdim[i];
        h.pixdim[0] = (float)s->qfac;
        h.datatype = (short)s->datatype;
        h.bitpix = (short)(8 * nbyper);
        h.vox_offset = (float)off;
        h.scl_slope = (float)s->slope, h.scl_inter = (float)s->inter;
        h.qform_code = (short)s->qform_code, h.sform_code = (short)s->sform_code;
        h.quatern_b = (float)s->quatern[0], h.quatern_c = (float)s->quatern[1], h.quatern_d = (float)s->quatern[2];
        h.qoffset_x = (float)s->quatern[3], h.qoffset_y = (float)s->quatern[4], h.qoffset_z = (float)s->quatern[5];
        for (int c = 0; c < 4; c++) {
            h.srow_x[c] = (float)s->srow[0][c], h.srow_y[c] = (float)s->srow[1][c], h.srow_z[c] = (float)s->srow[2][c];
        }
        strcpy(h.descrip, "secret description");
        strcpy(h.intent_name, "secret");
        memcpy(h.magic, "n+1", 4);
        if (s->swapped) nifti_swap_as_nifti1(&h);
        memcpy(buf, &h, sizeof h);
    } else {
        nifti_2_header h;
        memset(&h, 0, sizeof h);
        h.sizeof_hdr = 540;
        memcpy(h.magic, "n+2\0\r\n\032\n", 8);
        for (int i = 0; i < 8; i++) h.dim[i] = s->dim[i];
        for (int i = 1; i < 4; i++) h.pixdim[i] = s->pixdim[i];
        h.pixdim[0] = s->qfac;
        h.datatype = (int16_t)s->datatype;
        h.bitpix = (int16_t)(8 * nbyper);
        h.vox_offset = off;
        h.scl_slope = s->slope, h.scl_inter = s->inter;
        h.qform_code = s->qform_code, h.sform_code = s->sform_code;
        h.quatern_b = s->quatern[0], h.quatern_c = s->quatern[1], h.quatern_d = s->quatern[2];
        h.qoffset_x = s->quatern[3], h.qoffset_y = s->quatern[4], h.qoffset_z = s->quatern[5];
        for (int c = 0; c < 4; c++) {
            h.srow_x[c] = s->srow[0][c], h.srow_y[c] = s->srow[1][c], h.srow_z[c] = s->srow[2][c];
        }
        strcpy(h.descrip, "secret description");
        if (s->swapped) nifti_swap_as_nifti2(&h);
        memcpy(buf, &h, sizeof h);
    }
    if (off >= (int64_t)hsize + 16) { /* one extension: 16 bytes, comment code */
        int32_t ext[4] = {16, NIFTI_ECODE_COMMENT, 0x65726373, 0x00000074}; /* "secret" */
        buf[hsize] = 1;
        if (s->swapped) nifti_swap_4bytes(2, ext);
        memcpy(buf + hsize + 4, ext, 16);
    }
    uint8_t *data = buf + off;
    for (size_t i = 0; i < nvox; i++) put_value(data + i * (size_t)nbyper, s->datatype, vals ? vals[i] : value_of(s->datatype, i));
    if (s->swapped && swapsize > 1) nifti_swap_Nbytes((int64_t)nvox, swapsize, data);
    return buf;
}

static uint8_t *gzip_buf(const uint8_t *src, size_t n, size_t *zn) {
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    size_t cap = deflateBound(&z, n) + 64;
    uint8_t *out = malloc(cap);
    z.next_in = (Bytef *)src, z.avail_in = (uInt)n, z.next_out = out, z.avail_out = (uInt)cap;
    deflate(&z, Z_FINISH);
    *zn = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

static void write_file(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(buf, 1, n, f);
    fclose(f);
}

/* ------------------------------------------------------------------ tests */

static int decode(const uint8_t *buf, size_t n, int labels, lsdm_record *r) {
    lsdm_nifti_opts o = {labels, NULL};
    lsdm_err_clear();
    return lsdm_nifti_decode(buf, n, "vol", &o, r);
}

static int same_affine(const lsdm_record *a, const lsdm_record *b) {
    double x[16], y[16];
    return lsdm_record_get_affine(a, x) == 1 && lsdm_record_get_affine(b, y) == 1 && memcmp(x, y, sizeof x) == 0;
}

/* write (NIfTI-1 or 2, plain or gz) -> decode: identical voxels, affine,
 * spacing and (unless any_source) affine-source. */
static int round_trip_src(const lsdm_record *r, int labels, int nifti2, const char *suffix, int any_source) {
    char path[256];
    snprintf(path, sizeof path, "%s/rt%s", tmpdir, suffix);
    if (lsdm_nifti_write(path, r, nifti2)) { fprintf(stderr, "write: %s\n", lsdm_err_msg()); return 0; }
    lsdm_record b;
    lsdm_record_init(&b);
    lsdm_nifti_opts o = {labels, NULL};
    int ok = lsdm_nifti_read_file(path, &o, &b) == 0;
    if (!ok) fprintf(stderr, "read back: %s\n", lsdm_err_msg());
    ok = ok && b.dtype == r->dtype && b.ndim == r->ndim && memcmp(b.shape, r->shape, sizeof b.shape) == 0;
    ok = ok && b.nbytes == r->nbytes && memcmp(b.data, r->data, b.nbytes) == 0;
    ok = ok && same_affine(r, &b);
    const char *s1 = lsdm_record_get(r, "affine-source"), *s2 = lsdm_record_get(&b, "affine-source");
    ok = ok && s1 && s2 && (any_source || strcmp(s1, s2) == 0) && strcmp(lsdm_record_get(&b, "spacing"), lsdm_record_get(r, "spacing")) == 0;
    if (!ok) fprintf(stderr, "round trip %s nifti%d: mismatch (source %s -> %s)\n", suffix, nifti2 ? 2 : 1, s1, s2);
    lsdm_record_free(&b);
    return ok;
}

static int round_trip(const lsdm_record *r, int labels, int nifti2, const char *suffix) {
    return round_trip_src(r, labels, nifti2, suffix, 0);
}

static void test_datatypes(void) {
    static const int dts[] = {DT_UINT8, DT_INT8, DT_INT16, DT_UINT16, DT_INT32, DT_FLOAT32, DT_FLOAT64};
    static const lsdm_dtype want[] = {LSDM_U8, LSDM_I16, LSDM_I16, LSDM_I32, LSDM_I32, LSDM_F32, LSDM_F32};
    for (int version = 1; version <= 2; version++)
        for (int swapped = 0; swapped <= 1; swapped++)
            for (size_t k = 0; k < sizeof dts / sizeof *dts; k++) {
                spec s = spec_default(version, dts[k]);
                s.swapped = swapped;
                s.sform_code = 2;
                double srow[3][4] = {{0.75, 0.01, 0, -10.5}, {0, 1.25, 0.02, 20.25}, {0.03, 0, 2.5, -30}};
                memcpy(s.srow, srow, sizeof srow);
                size_t n, zn;
                uint8_t *buf = make_nii(&s, NULL, &n), *gz = gzip_buf(buf, n, &zn);
                lsdm_record r, g;
                lsdm_record_init(&r);
                lsdm_record_init(&g);
                CHECK(decode(buf, n, 0, &r) == 0);
                CHECK(decode(gz, zn, 0, &g) == 0);
                CHECK(r.dtype == want[k] && r.ndim == 4);
                CHECK(r.shape[0] == 1 && r.shape[1] == 3 && r.shape[2] == 4 && r.shape[3] == 5);
                int values_ok = 1;
                for (size_t i = 0; i < 60; i++) {
                    double v = value_of(dts[k], i);
                    if (dts[k] == DT_FLOAT64) v = (float)v;
                    if (lsdm_elem_get(r.data, r.dtype, i) != v) values_ok = 0;
                }
                CHECK(values_ok);
                CHECK(g.nbytes == r.nbytes && memcmp(g.data, r.data, r.nbytes) == 0);
                CHECK(strcmp(lsdm_record_get(&r, "affine-source"), "sform") == 0);
                /* srow columns i,j,k -> record columns w,h,d (exact: floats to doubles) */
                double a[16];
                CHECK(lsdm_record_get_affine(&r, a) == 1);
#define SROW(i, j) (version == 1 ? (double)(float)srow[i][j] : srow[i][j])
                CHECK(a[0] == SROW(0, 2) && a[1] == SROW(0, 1) && a[2] == SROW(0, 0) && a[3] == SROW(0, 3));
                CHECK(a[8] == SROW(2, 2) && a[10] == SROW(2, 0) && a[11] == SROW(2, 3) && a[15] == 1);
                CHECK(strcmp(lsdm_record_get(&r, "spacing"), "2.5 1.25 0.75") == 0);
                /* NIfTI-1 holds the float affine of a NIfTI-1 source exactly */
                if (version == 1) CHECK(round_trip(&r, 0, 0, ".nii"));
                CHECK(round_trip(&r, 0, 1, ".nii.gz"));
                lsdm_record_free(&r);
                lsdm_record_free(&g);
                free(buf);
                free(gz);
            }
}

static void test_header_not_carried(void) {
    spec s = spec_default(1, DT_INT16);
    s.vox_offset = 352 + 16; /* one extension */
    size_t n;
    uint8_t *buf = make_nii(&s, NULL, &n);
    lsdm_record r;
    lsdm_record_init(&r);
    CHECK(decode(buf, n, 0, &r) == 0);
    /* exactly these keys, in this order: nothing of descrip/intent/extensions */
    static const char *keys[] = {"name", "role", "affine", "affine-source", "spacing"};
    CHECK(r.nkv == 5);
    for (int i = 0; i < r.nkv && i < 5; i++) CHECK(strcmp(r.kv[i].key, keys[i]) == 0);
    for (int i = 0; i < r.nkv; i++) CHECK(strstr(r.kv[i].value, "secret") == NULL);
    CHECK(strcmp(lsdm_record_get(&r, "name"), "vol") == 0 && strcmp(lsdm_record_get(&r, "role"), "image") == 0);
    /* no xform at all: diag(pixdim), and it round-trips as such */
    CHECK(strcmp(lsdm_record_get(&r, "affine-source"), "spacing") == 0);
    CHECK(strcmp(lsdm_record_get(&r, "affine"), "0 0 0.75 0 0 1.25 0 0 2.5 0 0 0 0 0 0 1") == 0);
    CHECK(round_trip(&r, 0, 0, ".nii.gz") && round_trip(&r, 0, 1, ".nii"));
    CHECK(lsdm_record_get(&r, "name") && lsdm_nifti_decode(buf, n, NULL, NULL, &r) == 0 && !lsdm_record_get(&r, "name"));
    lsdm_record_free(&r);
    free(buf);
}

static void test_qform(void) {
    /* rotations incl. a left-handed one; qform-only must come back exactly */
    static const double q[][7] = {
        {0, 0, 0, -90, -126, -72, 1},
        {0.1, -0.2, 0.3, 12.5, -7.25, 3, 1},
        {0.5, 0.5, 0.5, 0, 0, 0, -1},
        {0, 1, 0, 90, 0, 0, -1},        /* 180 degrees: a = 0 */
        {0.0123, 0.3, -0.044, 1.1, 2.2, 3.3, 1},
    };
    for (size_t k = 0; k < sizeof q / sizeof *q; k++)
        for (int version = 1; version <= 2; version++) {
            spec s = spec_default(version, DT_FLOAT32);
            s.qform_code = 1;
            memcpy(s.quatern, q[k], 6 * sizeof(double));
            s.qfac = q[k][6];
            size_t n;
            uint8_t *buf = make_nii(&s, NULL, &n);
            lsdm_record r;
            lsdm_record_init(&r);
            CHECK(decode(buf, n, 0, &r) == 0);
            CHECK(strcmp(lsdm_record_get(&r, "affine-source"), "qform") == 0);
            /* the same matrix nifticlib computes, columns reordered */
            nifti_image *nim = version == 1 ? nifti_convert_n1hdr2nim(*(nifti_1_header *)buf, NULL)
                                            : nifti_convert_n2hdr2nim(*(nifti_2_header *)buf, NULL);
            double a[16];
            CHECK(lsdm_record_get_affine(&r, a) == 1);
            int same = 1;
            for (int row = 0; row < 3; row++)
                for (int c = 0; c < 3; c++) same &= a[4 * row + c] == nim->qto_xyz.m[row][2 - c];
            CHECK(same);
            CHECK(a[3] == nim->qto_xyz.m[0][3] && a[7] == nim->qto_xyz.m[1][3]);
            nifti_image_free(nim);
            /* a NIfTI-1 qform comes back as a qform; NIfTI-2's double
             * quaternion need not reproduce the matrix to the last bit, and
             * then the sform carries it (still exactly) */
            CHECK(round_trip_src(&r, 0, version == 2, ".nii.gz", version == 2));
            if (version == 1) CHECK(round_trip(&r, 0, 0, ".nii"));
            /* with a sform as well, the sform wins */
            s.sform_code = 1;
            double srow[3][4] = {{2, 0, 0, 1}, {0, 3, 0, 2}, {0, 0, 4, 3}};
            memcpy(s.srow, srow, sizeof srow);
            free(buf);
            buf = make_nii(&s, NULL, &n);
            CHECK(decode(buf, n, 0, &r) == 0);
            CHECK(strcmp(lsdm_record_get(&r, "affine-source"), "sform") == 0);
            CHECK(strcmp(lsdm_record_get(&r, "affine"), "0 0 2 1 0 3 0 2 4 0 0 3 0 0 0 1") == 0);
            lsdm_record_free(&r);
            free(buf);
        }
}

static void test_4d_and_exact_geometry(void) {
    spec s = spec_default(2, DT_INT16);
    s.dim[0] = 4, s.dim[4] = 3;
    s.sform_code = 1;
    double srow[3][4] = {{0.1, 0.2, 0.3, 1e-9}, {-0.7, 0.11, 0.13, 123.456789}, {0.17, 0.19, -0.23, -1.0 / 3}};
    memcpy(s.srow, srow, sizeof srow);
    size_t n;
    uint8_t *buf = make_nii(&s, NULL, &n);
    lsdm_record r;
    lsdm_record_init(&r);
    CHECK(decode(buf, n, 0, &r) == 0);
    CHECK(r.ndim == 4 && r.shape[0] == 3 && r.shape[1] == 3 && r.shape[2] == 4 && r.shape[3] == 5);
    /* t is the slowest NIfTI axis: channel 2, voxel (d=1,h=2,w=3) */
    size_t i = ((2 * 3 + 1) * 4 + 2) * 5 + 3;
    CHECK(((int16_t *)r.data)[i] == (int16_t)value_of(DT_INT16, i));
    double a[16];
    CHECK(lsdm_record_get_affine(&r, a) == 1 && a[7] == 123.456789 && a[11] == -1.0 / 3 && a[2] == 0.1);
    CHECK(round_trip(&r, 0, 1, ".nii.gz")); /* NIfTI-2 keeps doubles exactly */
    /* NIfTI-1 holds floats: still a valid file, the affine to float precision */
    char path[256];
    snprintf(path, sizeof path, "%s/f.nii", tmpdir);
    CHECK(lsdm_nifti_write(path, &r, 0) == 0);
    lsdm_record b;
    lsdm_record_init(&b);
    CHECK(lsdm_nifti_read_file(path, NULL, &b) == 0);
    double a2[16];
    CHECK(lsdm_record_get_affine(&b, a2) == 1 && a2[7] == (float)123.456789 && a2[11] == (float)(-1.0 / 3));
    CHECK(strcmp(lsdm_record_get(&b, "name"), "f") == 0);
    lsdm_record_free(&b);
    lsdm_record_free(&r);
    free(buf);
}

static void test_scaling_and_labels(void) {
    spec s = spec_default(1, DT_INT16);
    s.slope = 0.5, s.inter = -3;
    size_t n;
    uint8_t *buf = make_nii(&s, NULL, &n);
    lsdm_record r;
    lsdm_record_init(&r);
    CHECK(decode(buf, n, 0, &r) == 0);
    CHECK(r.dtype == LSDM_F32 && ((float *)r.data)[7] == (float)(value_of(DT_INT16, 7) * 0.5 - 3));
    CHECK(decode(buf, n, 1, &r) == 0); /* a label map is never scaled */
    CHECK(r.dtype == LSDM_I16 && ((int16_t *)r.data)[7] == (int16_t)value_of(DT_INT16, 7));
    CHECK(strcmp(lsdm_record_get(&r, "role"), "labels") == 0);
    free(buf);

    /* float label maps: whole numbers -> the smallest integer type */
    double vals[60];
    struct { double lo, hi; lsdm_dtype want; } cases[] = {
        {0, 255, LSDM_U8}, {-1, 200, LSDM_I16}, {0, 32767, LSDM_I16}, {0, 40000, LSDM_I32}, {-70000, 5, LSDM_I32}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        for (int i = 0; i < 60; i++) vals[i] = i == 0 ? cases[k].lo : i == 1 ? cases[k].hi : i % 7;
        for (int dt = 0; dt < 2; dt++) {
            s = spec_default(1, dt ? DT_FLOAT64 : DT_FLOAT32);
            s.slope = 2; /* ignored for labels */
            buf = make_nii(&s, vals, &n);
            CHECK(decode(buf, n, 1, &r) == 0);
            CHECK(r.dtype == cases[k].want);
            CHECK(lsdm_elem_get(r.data, r.dtype, 0) == cases[k].lo && lsdm_elem_get(r.data, r.dtype, 1) == cases[k].hi);
            CHECK(lsdm_elem_get(r.data, r.dtype, 9) == 2);
            free(buf);
        }
    }
    vals[5] = 2.5;
    s = spec_default(1, DT_FLOAT32);
    buf = make_nii(&s, vals, &n);
    CHECK(decode(buf, n, 1, &r) == -1 && strstr(lsdm_err_msg(), "non-integer value 2.5 at voxel 5"));
    CHECK(decode(buf, n, 0, &r) == 0 && r.dtype == LSDM_F32); /* fine as an image */
    lsdm_record_free(&r);
    free(buf);
}

/* Every damaged file: an error with the expected words, never a crash. */
static void expect_error(const uint8_t *buf, size_t n, const char *words) {
    lsdm_record r;
    lsdm_record_init(&r);
    int rc = decode(buf, n, 0, &r);
    CHECK(rc == -1 && r.data == NULL && r.nkv == 0);
    if (rc == 0 || !strstr(lsdm_err_msg(), words)) {
        fprintf(stderr, "want error with '%s', got rc %d: %s\n", words, rc, lsdm_err_msg());
        check_fail++;
    }
    lsdm_record_free(&r);
}

static void test_bad_files(void) {
    spec s = spec_default(1, DT_FLOAT32);
    size_t n, zn;
    uint8_t *buf = make_nii(&s, NULL, &n), *gz = gzip_buf(buf, n, &zn);
    expect_error(buf, 0, "empty");
    expect_error((const uint8_t *)"hello world, not a volume", 25, "not a NIfTI file");
    /* every truncation, plain and compressed */
    int all = 1;
    lsdm_record r;
    lsdm_record_init(&r);
    for (size_t cut = 1; cut < n; cut++) all &= decode(buf, cut, 0, &r) == -1;
    for (size_t cut = 1; cut < zn; cut++) all &= decode(gz, cut, 0, &r) == -1;
    CHECK(all);
    expect_error(buf, n - 1, "truncated NIfTI file");
    expect_error(gz, zn - 40, "truncated");
    expect_error(gz, zn - 4, "truncated"); /* only the gzip trailer is missing */
    gz[zn / 2] ^= 0x55;
    CHECK(decode(gz, zn, 0, &r) == -1); /* a flipped bit: zlib or CRC error */
    free(buf);
    free(gz);

    struct { int field; int64_t value; const char *words; } bad[] = {
        {0, 0, "dim[0] = 0"}, {0, 8, "dim[0] = 8"}, {2, 0, "dim[2] = 0"}, {3, -4, "dim[3] = -4"},
        {9, DT_COMPLEX64, "unsupported datatype"}, {9, DT_RGB24, "unsupported datatype"},
        {9, DT_UINT32, "unsupported datatype"}, {9, 1234, "unsupported datatype"},
        {5, 2, "5D"}, {10, 30000, "too large"},
    };
    for (int version = 1; version <= 2; version++)
        for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
            /* a valid small file, then the bad value patched into its header */
            s = spec_default(version, DT_UINT8);
            buf = make_nii(&s, NULL, &n);
            int64_t dim[8];
            memcpy(dim, s.dim, sizeof dim);
            int dt = DT_UINT8;
            if (bad[k].field == 9) dt = (int)bad[k].value;
            else if (bad[k].field == 10) dim[1] = dim[2] = dim[3] = 30000, dt = DT_FLOAT64;
            else if (bad[k].field == 5) dim[0] = 5, dim[5] = 2;
            else dim[bad[k].field] = bad[k].value;
            if (version == 1) {
                nifti_1_header *h = (nifti_1_header *)buf;
                for (int i = 0; i < 8; i++) h->dim[i] = (short)dim[i];
                h->datatype = (short)dt;
            } else {
                nifti_2_header *h = (nifti_2_header *)buf;
                for (int i = 0; i < 8; i++) h->dim[i] = dim[i];
                h->datatype = (int16_t)dt;
            }
            expect_error(buf, n, bad[k].words);
            free(buf);
        }
    /* magic and header size */
    s = spec_default(1, DT_UINT8);
    buf = make_nii(&s, NULL, &n);
    memcpy(((nifti_1_header *)buf)->magic, "ni1", 4);
    expect_error(buf, n, "two-file");
    memset(((nifti_1_header *)buf)->magic, 0, 4);
    expect_error(buf, n, "ANALYZE");
    ((nifti_1_header *)buf)->sizeof_hdr = 349;
    expect_error(buf, n, "not a NIfTI file");
    free(buf);
    s = spec_default(2, DT_UINT8);
    buf = make_nii(&s, NULL, &n);
    buf[8] = '\n'; /* "\r\n" turned into "\n\n" */
    expect_error(buf, n, "damaged NIfTI-2");
    buf[8] = '\r';
    ((nifti_2_header *)buf)->vox_offset = -5;
    expect_error(buf, n, "vox_offset");
    free(buf);
}

static void test_write_types(void) {
    /* f16 and bf16 records become f32 files with the same values; D,H,W works */
    int64_t shape[3] = {2, 3, 4};
    lsdm_record r, b;
    lsdm_record_init(&r);
    lsdm_record_init(&b);
    char path[256];
    snprintf(path, sizeof path, "%s/h.nii.gz", tmpdir);
    for (int t = 0; t < 2; t++) {
        lsdm_dtype dt = t ? LSDM_BF16 : LSDM_F16;
        CHECK(lsdm_record_alloc(&r, dt, 3, shape) == 0);
        for (int i = 0; i < 24; i++) ((uint16_t *)r.data)[i] = t ? lsdm_f32_to_bf16(i * 0.5f - 3) : lsdm_f32_to_f16(i * 0.5f - 3);
        lsdm_record_set(&r, "name", "h");
        lsdm_record_set(&r, "role", "image");
        CHECK(lsdm_nifti_write(path, &r, 0) == 0);
        CHECK(lsdm_nifti_read_file(path, NULL, &b) == 0);
        CHECK(b.dtype == LSDM_F32 && b.ndim == 4 && b.shape[0] == 1 && b.shape[3] == 4);
        CHECK(((float *)b.data)[23] == 23 * 0.5f - 3 && ((float *)b.data)[0] == -3);
        /* no affine, no spacing: identity */
        CHECK(strcmp(lsdm_record_get(&b, "affine"), "0 0 1 0 0 1 0 0 1 0 0 0 0 0 0 1") == 0);
        lsdm_record_free(&r);
    }
    /* spacing only: diag(spacing) */
    int64_t s4[4] = {1, 2, 3, 4};
    lsdm_record_alloc(&r, LSDM_U8, 4, s4);
    lsdm_record_set(&r, "name", "s");
    lsdm_record_set(&r, "role", "labels");
    lsdm_record_set(&r, "spacing", "3 2 0.5");
    CHECK(lsdm_nifti_write(path, &r, 0) == 0 && lsdm_nifti_read_file(path, NULL, &b) == 0);
    CHECK(strcmp(lsdm_record_get(&b, "affine"), "0 0 0.5 0 0 2 0 0 3 0 0 0 0 0 0 1") == 0);
    CHECK(strcmp(lsdm_record_get(&b, "affine-source"), "sform") == 0);
    /* shapes a volume cannot have */
    int64_t s2[2] = {4, 4}, s5[5] = {1, 1, 2, 2, 2};
    lsdm_record_alloc(&r, LSDM_U8, 2, s2);
    CHECK(lsdm_nifti_write(path, &r, 0) == -1 && strstr(lsdm_err_msg(), "3 or 4 dims"));
    lsdm_record_alloc(&r, LSDM_U8, 5, s5);
    CHECK(lsdm_nifti_write(path, &r, 0) == -1);
    int64_t big[4] = {1, 1, 1, 40000};
    lsdm_record_alloc(&r, LSDM_U8, 4, big);
    CHECK(lsdm_nifti_write(path, &r, 0) == -1 && strstr(lsdm_err_msg(), "NIfTI-2"));
    CHECK(lsdm_nifti_write(path, &r, 1) == 0 && lsdm_nifti_read_file(path, NULL, &b) == 0 && b.shape[3] == 40000);
    /* a failed write leaves no file and no temp file behind */
    snprintf(path, sizeof path, "%s/nodir/x.nii", tmpdir);
    CHECK(lsdm_nifti_write(path, &r, 1) == -1);
    lsdm_record_free(&r);
    lsdm_record_free(&b);
}

/* ---------------------------------------------------------------- volsrc */

static int count_volumes(const char *path, char names[][32], int max) {
    lsdm_volsrc *s = lsdm_volsrc_open(path, NULL);
    if (!s) return -1;
    lsdm_record r;
    lsdm_record_init(&r);
    int n = 0, rc;
    while ((rc = lsdm_volsrc_next(s, &r)) == 1) {
        if (n < max) snprintf(names[n], 32, "%s", lsdm_record_get(&r, "name"));
        n++;
    }
    lsdm_record_free(&r);
    lsdm_volsrc_close(s);
    return rc < 0 ? -1 : n;
}

static void make_archive(const char *path, int zip, const char *const *names, int n, const uint8_t *buf, size_t len) {
    struct archive *a = archive_write_new();
    if (zip) archive_write_set_format_zip(a);
    else { archive_write_set_format_pax_restricted(a); archive_write_add_filter_gzip(a); }
    archive_write_open_filename(a, path);
    for (int i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, names[i]);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, (la_int64_t)len);
        archive_write_header(a, e);
        archive_write_data(a, buf, len);
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
}

static void test_volsrc(void) {
    spec s = spec_default(1, DT_UINT8);
    size_t n, zn;
    uint8_t *buf = make_nii(&s, NULL, &n), *gz = gzip_buf(buf, n, &zn);
    char dir[256], path[300], names[8][32];
    snprintf(dir, sizeof dir, "%s/d", tmpdir);
    mkdir(dir, 0777);
    CHECK(count_volumes(dir, names, 8) == -1 && strstr(lsdm_err_msg(), "no NIfTI volume"));
    const char *files[] = {"b.nii.gz", "a.nii", "c.NII", "notes.txt", ".hidden.nii"};
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        if (i == 0) write_file(path, gz, zn);
        else write_file(path, buf, n);
    }
    CHECK(count_volumes(dir, names, 8) == 3);
    CHECK(strcmp(names[0], "a") == 0 && strcmp(names[1], "b") == 0 && strcmp(names[2], "c") == 0);

    const char *entries[] = {"sub/x.nii", "README", "__MACOSX/._x.nii", "y.nii.gz"};
    for (int zip = 0; zip <= 1; zip++) {
        snprintf(path, sizeof path, "%s/a.%s", tmpdir, zip ? "zip" : "tar.gz");
        make_archive(path, zip, entries, 4, buf, n);
        CHECK(count_volumes(path, names, 8) == 2);
        CHECK(strcmp(names[0], "x") == 0 && strcmp(names[1], "y") == 0);
        make_archive(path, zip, entries + 1, 1, buf, n);
        CHECK(count_volumes(path, names, 8) == -1 && strstr(lsdm_err_msg(), "no NIfTI volume"));
    }
    /* an archive entry that is a damaged volume names the entry */
    const char *one[] = {"bad.nii"};
    snprintf(path, sizeof path, "%s/bad.tar.gz", tmpdir);
    make_archive(path, 0, one, 1, buf, n - 10);
    CHECK(count_volumes(path, names, 8) == -1 && strstr(lsdm_err_msg(), "bad.nii: truncated"));
    /* a single file, plain and gzip, named by its file name */
    snprintf(path, sizeof path, "%s/single.nii.gz", tmpdir);
    write_file(path, gz, zn);
    CHECK(count_volumes(path, names, 8) == 1 && strcmp(names[0], "single") == 0);
    snprintf(path, sizeof path, "%s/junk.bin", tmpdir);
    write_file(path, "just some bytes that are nothing", 32);
    CHECK(count_volumes(path, names, 8) == -1 && strstr(lsdm_err_msg(), "not a tensor stream, NIfTI file or known archive"));
    snprintf(path, sizeof path, "%s/empty.nii", tmpdir);
    write_file(path, "", 0);
    CHECK(count_volumes(path, names, 8) == -1 && strstr(lsdm_err_msg(), "empty"));
    free(buf);
    free(gz);
}

static void test_names(void) {
    char *s = lsdm_nifti_name_from_path("/data/sub-01_T1w.nii.gz");
    CHECK(strcmp(s, "sub-01_T1w") == 0);
    free(s);
    s = lsdm_nifti_name_from_path("x.NII");
    CHECK(strcmp(s, "x") == 0);
    free(s);
    s = lsdm_nifti_name_from_path("dir/archive.tar.gz");
    CHECK(strcmp(s, "archive.tar.gz") == 0);
    free(s);
}

int main(void) {
    if (!mkdtemp(tmpdir)) return 1;
    test_datatypes();
    test_header_not_carried();
    test_qform();
    test_4d_and_exact_geometry();
    test_scaling_and_labels();
    test_bad_files();
    test_write_types();
    test_volsrc();
    test_names();
    char cmd[300];
    /* no temp files left anywhere */
    snprintf(cmd, sizeof cmd, "find %s -name '*tmp*' | grep -q . && exit 1; rm -rf %s", tmpdir, tmpdir);
    CHECK(system(cmd) == 0);
    return check_done("test_nifti");
}
