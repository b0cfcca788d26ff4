/* Record -> NIfTI-1/2 file. nifticlib builds the header (nifti_make_new_nim,
 * nifti_dmat44_to_quatern, nifti_convert_nim2n?hdr); the bytes go out
 * through lsdm_outfile (temp file + rename), deflated here when the name
 * ends in .gz, so a failure never leaves a partial .nii behind. */
#include "nifti.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <nifti2_io.h>

#include "err.h"
#include "outfile.h"

/* ----------------------------------------------------------------- output */

typedef struct {
    lsdm_outfile of;
    int gz;
    z_stream z;
    uint8_t buf[1 << 16];
} nii_out;

static int out_emit(nii_out *w, const void *p, size_t n) {
    if (n && fwrite(p, 1, n, w->of.f) != n) return lsdm_err("write failed");
    return 0;
}

/* Append n bytes (finish: flush the gzip trailer too). */
static int out_write(nii_out *w, const void *p, size_t n, int finish) {
    if (!w->gz) return out_emit(w, p, n);
    const uint8_t *q = p;
    do {
        size_t k = n > (1u << 30) ? 1u << 30 : n;
        int last = finish && k == n;
        w->z.next_in = (Bytef *)q;
        w->z.avail_in = (uInt)k;
        int rc;
        do {
            w->z.next_out = w->buf;
            w->z.avail_out = sizeof w->buf;
            rc = deflate(&w->z, last ? Z_FINISH : Z_NO_FLUSH);
            if (rc == Z_STREAM_ERROR) return lsdm_err("gzip compression failed");
            if (out_emit(w, w->buf, sizeof w->buf - w->z.avail_out)) return -1;
        } while (w->z.avail_out == 0 || (last && rc != Z_STREAM_END));
        q += k;
        n -= k;
    } while (n);
    return 0;
}

/* ---------------------------------------------------------------- header */

static int nifti_type_of(lsdm_dtype t) {
    switch (t) {
    case LSDM_U8: return DT_UINT8;
    case LSDM_I16: return DT_INT16;
    case LSDM_I32: return DT_INT32;
    default: return DT_FLOAT32; /* f32, and f16/bf16 widened */
    }
}

/* Voxel size (d,h,w): the spacing key, else the affine's column lengths. */
static int get_spacing(const lsdm_record *r, const double *a, int have_affine, double sp[3]) {
    int rc = lsdm_record_get_spacing(r, sp);
    if (rc < 0) return -1;
    for (int i = 0; i < 3; i++) {
        if (rc == 0) sp[i] = have_affine ? sqrt(a[i] * a[i] + a[4 + i] * a[4 + i] + a[8 + i] * a[8 + i]) : 1.0;
        if (rc == 0 && !(sp[i] > 0)) sp[i] = 1.0;
        if (!(sp[i] > 0) || !isfinite(sp[i])) return lsdm_err("bad spacing %g (must be > 0)", sp[i]);
    }
    return 0;
}

/* Both xforms in nim. The codes say what the record's affine-source says
 * the original had: a qform-only or xform-less original is written the
 * same way when that reproduces the affine exactly, so a round trip
 * through NIfTI gives back the same affine and affine-source; otherwise
 * sform and qform are both scanner-anatomical (code 1). */
static void set_xforms(nifti_image *nim, const double a[16], const char *source, int nifti2) {
    nifti_dmat44 s;
    memset(&s, 0, sizeof s);
    for (int row = 0; row < 3; row++) { /* NIfTI (i,j,k) = record (w,h,d) */
        s.m[row][0] = a[4 * row + 2];
        s.m[row][1] = a[4 * row + 1];
        s.m[row][2] = a[4 * row + 0];
        s.m[row][3] = a[4 * row + 3];
    }
    s.m[3][3] = 1;
    double qb, qc, qd, qx, qy, qz, qfac;
    nifti_dmat44_to_quatern(s, &qb, &qc, &qd, &qx, &qy, &qz, NULL, NULL, NULL, &qfac);
    if (!nifti2) { /* what a reader will see in the float fields */
        qb = (float)qb, qc = (float)qc, qd = (float)qd, qx = (float)qx, qy = (float)qy, qz = (float)qz;
    }
    double dx = nifti2 ? nim->dx : (float)nim->dx, dy = nifti2 ? nim->dy : (float)nim->dy;
    double dz = nifti2 ? nim->dz : (float)nim->dz;
    nifti_dmat44 q = nifti_quatern_to_dmat44(qb, qc, qd, qx, qy, qz, dx, dy, dz, qfac);
    int q_exact = 1, diag = 1;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) {
            q_exact &= q.m[i][j] == s.m[i][j];
            diag &= s.m[i][j] == (i != j ? 0 : i == 0 ? dx : i == 1 ? dy : dz);
        }
    int qcode = NIFTI_XFORM_SCANNER_ANAT, scode = NIFTI_XFORM_SCANNER_ANAT;
    if (source && strcmp(source, "spacing") == 0 && diag) qcode = scode = 0;
    else if (source && strcmp(source, "qform") == 0 && q_exact) scode = 0;
    nim->qform_code = qcode;
    nim->quatern_b = qb, nim->quatern_c = qc, nim->quatern_d = qd;
    nim->qoffset_x = qx, nim->qoffset_y = qy, nim->qoffset_z = qz;
    nim->qfac = qfac;
    nim->qto_xyz = q;
    nim->sform_code = scode;
    nim->sto_xyz = s;
}

/* The header bytes (with the 4-byte empty extension flag) into hdr. */
static int make_header(const lsdm_record *r, const int64_t dims[8], int dt, int nifti2, uint8_t *hdr, size_t *hlen) {
    double a[16], sp[3];
    int have = lsdm_record_get_affine(r, a);
    if (have < 0 || get_spacing(r, a, have, sp)) return -1;
    if (!have) { /* no geometry: diag(spacing) in NIfTI's i,j,k = record w,h,d */
        memset(a, 0, sizeof a);
        a[2] = sp[2], a[5] = sp[1], a[8] = sp[0], a[15] = 1;
    }
    if (a[12] != 0 || a[13] != 0 || a[14] != 0 || a[15] != 1) return lsdm_err("affine's last row is not 0 0 0 1");
    nifti_image *nim = nifti_make_new_nim(dims, dt, 0);
    if (!nim) return lsdm_err("nifticlib could not make a header");
    nim->nifti_type = nifti2 ? NIFTI_FTYPE_NIFTI2_1 : NIFTI_FTYPE_NIFTI1_1;
    nim->iname_offset = nifti2 ? 544 : 352;
    nim->dx = nim->pixdim[1] = sp[2];
    nim->dy = nim->pixdim[2] = sp[1];
    nim->dz = nim->pixdim[3] = sp[0];
    nim->xyz_units = NIFTI_UNITS_MM;
    nim->scl_slope = 0, nim->scl_inter = 0;
    set_xforms(nim, a, lsdm_record_get(r, "affine-source"), nifti2);
    int bad;
    memset(hdr, 0, 544);
    if (nifti2) {
        nifti_2_header h;
        bad = nifti_convert_nim2n2hdr(nim, &h);
        memcpy(h.magic, "n+2\0\r\n\032\n", 8); /* nifticlib 3.0 leaves the last 4 zero */
        memcpy(hdr, &h, sizeof h);
        *hlen = sizeof h + 4;
    } else {
        nifti_1_header h;
        bad = nifti_convert_nim2n1hdr(nim, &h);
        memcpy(hdr, &h, sizeof h);
        *hlen = sizeof h + 4;
    }
    nifti_image_free(nim);
    return bad ? lsdm_err("nifticlib could not convert the header") : 0;
}

/* ----------------------------------------------------------------- write */

static int write_voxels(nii_out *w, const lsdm_record *r) {
    if (r->dtype != LSDM_F16 && r->dtype != LSDM_BF16) return out_write(w, r->data, r->nbytes, 1);
    float tmp[4096]; /* widened in pieces: no second copy of the volume */
    size_t n = lsdm_record_numel(r);
    for (size_t i = 0; i < n; i += 4096) {
        size_t k = n - i < 4096 ? n - i : 4096;
        lsdm_convert_to_f32(tmp, (const uint16_t *)r->data + i, r->dtype, k);
        if (out_write(w, tmp, k * sizeof *tmp, i + k == n)) return -1;
    }
    return 0;
}

int lsdm_nifti_write(const char *path, const lsdm_record *r, int nifti2) {
    /* record C,D,H,W (or D,H,W) = NIfTI t,z,y,x */
    int64_t c = 1, d, h, wd;
    if (r->ndim == 3) d = r->shape[0], h = r->shape[1], wd = r->shape[2];
    else if (r->ndim == 4) c = r->shape[0], d = r->shape[1], h = r->shape[2], wd = r->shape[3];
    else return lsdm_err("%s: a volume needs 3 or 4 dims (D,H,W or C,D,H,W), record has %d", path, r->ndim);
    int64_t dims[8] = {c > 1 ? 4 : 3, wd, h, d, c, 1, 1, 1};
    if (!nifti2 && (wd > 32767 || h > 32767 || d > 32767 || c > 32767))
        return lsdm_err("%s: a dimension over 32767 does not fit NIfTI-1; write NIfTI-2", path);
    uint8_t hdr[548];
    size_t hlen = 0;
    if (make_header(r, dims, nifti_type_of(r->dtype), nifti2, hdr, &hlen)) return lsdm_err_ctx("%s", path);

    nii_out *w = calloc(1, sizeof *w); /* 64 KiB buffer: kept off the stack */
    if (!w) return lsdm_err("out of memory");
    size_t n = strlen(path);
    w->gz = n > 3 && strcmp(path + n - 3, ".gz") == 0;
    int rc = lsdm_outfile_open(&w->of, path, 1, 0);
    if (!rc && w->gz && deflateInit2(&w->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        lsdm_outfile_abort(&w->of);
        rc = lsdm_err("%s: zlib initialisation failed", path);
        w->gz = 0;
    } else if (!rc) {
        rc = out_write(w, hdr, hlen, 0);
        if (!rc) rc = write_voxels(w, r);
        if (w->gz) deflateEnd(&w->z);
        if (rc) {
            lsdm_outfile_abort(&w->of);
            lsdm_err_ctx("%s", path);
        } else {
            rc = lsdm_outfile_commit(&w->of);
        }
    }
    free(w);
    return rc;
}
