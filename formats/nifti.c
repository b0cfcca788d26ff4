/* NIfTI-1/2 decoding: bytes in memory (plain or gzip) -> one record.
 *
 * The raw header is checked here, field by field, BEFORE nifticlib sees it
 * and before anything is allocated: nifticlib prints to stderr on bad input
 * and trusts the dims, and a hostile header must give one clear error. Then
 * nifticlib turns the (native-order) header into a nifti_image for the
 * qform matrix and the cleaned pixdim; the sform is taken from the raw
 * srow rows so it stays exact (a float srow converts to double exactly). */
#include "nifti.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <nifti2_io.h>

#include "err.h"

/* ------------------------------------------------------------ byte source */

/* The file's bytes, inflated on the fly when gzip-compressed, so the voxel
 * data is inflated straight into its final buffer (no second copy). */
typedef struct {
    const uint8_t *buf;
    size_t n, pos;   /* input; pos: next byte not yet given to zlib */
    int gz, zinit, zend;
    z_stream z;
} nii_src;

static int src_open(nii_src *s, const void *buf, size_t n) {
    memset(s, 0, sizeof *s);
    s->buf = buf;
    s->n = n;
    s->gz = n >= 2 && s->buf[0] == 0x1f && s->buf[1] == 0x8b;
    if (s->gz) {
        if (inflateInit2(&s->z, 15 + 16) != Z_OK) return lsdm_err("zlib initialisation failed");
        s->zinit = 1;
    }
    return 0;
}

static void src_close(nii_src *s) {
    if (s->zinit) inflateEnd(&s->z);
    s->zinit = 0;
}

/* Hand zlib more input (at most 1 GiB at a time: avail_in is 32-bit). */
static void src_refill(nii_src *s) {
    if (s->z.avail_in || s->pos == s->n) return;
    size_t k = s->n - s->pos;
    if (k > (1u << 30)) k = 1u << 30;
    s->z.next_in = (Bytef *)(s->buf + s->pos);
    s->z.avail_in = (uInt)k;
    s->pos += k;
}

/* Up to `want` bytes into dst (NULL: skip them). *got < want only at the
 * end of the data; a damaged or cut gzip stream is an error. */
static int src_read(nii_src *s, void *dst, size_t want, size_t *got) {
    *got = 0;
    if (!s->gz) {
        size_t k = s->n - s->pos < want ? s->n - s->pos : want;
        if (dst) memcpy(dst, s->buf + s->pos, k);
        s->pos += k;
        *got = k;
        return 0;
    }
    uint8_t scratch[16384];
    size_t done = 0;
    while (done < want && !s->zend) {
        size_t chunk = want - done;
        if (!dst && chunk > sizeof scratch) chunk = sizeof scratch;
        if (chunk > (1u << 30)) chunk = 1u << 30;
        src_refill(s);
        s->z.next_out = dst ? (Bytef *)dst + done : scratch;
        s->z.avail_out = (uInt)chunk;
        int rc = inflate(&s->z, Z_NO_FLUSH);
        size_t made = chunk - s->z.avail_out;
        done += made;
        if (rc == Z_STREAM_END) {
            /* another gzip member may follow (concatenated .gz); other
             * trailing bytes are ignored, as gzip(1) does */
            src_refill(s);
            size_t at = s->pos - s->z.avail_in;
            if (s->n - at >= 2 && s->buf[at] == 0x1f && s->buf[at + 1] == 0x8b) inflateReset(&s->z);
            else s->zend = 1;
        } else if (rc == Z_BUF_ERROR) {
            if (made == 0 && s->z.avail_in == 0 && s->pos == s->n)
                return lsdm_err("truncated gzip data (the compressed file ends early)");
        } else if (rc != Z_OK) {
            return lsdm_err("corrupt gzip data (%s)", s->z.msg ? s->z.msg : "inflate failed");
        }
    }
    *got = done;
    return 0;
}

/* Inflate whatever follows the voxel data, so that a cut or damaged end of
 * a .nii.gz (its CRC) is noticed too. */
static int src_finish(nii_src *s) {
    size_t got;
    return s->gz ? src_read(s, NULL, SIZE_MAX, &got) : 0;
}

/* ---------------------------------------------------------------- header */

typedef struct {
    int version, swapped;
    int64_t dim[8];
    double pixdim[8];
    int datatype, nbyper, swapsize;
    int64_t vox_offset;
    int sform_code;
    double srow[3][4];
    union { nifti_1_header h1; nifti_2_header h2; } raw; /* native byte order */
} nii_header;

int lsdm_nifti_sniff(const void *buf, size_t n) {
    if (n < 4) return 0;
    uint32_t v;
    memcpy(&v, buf, 4);
    return v == 348 || v == 540 || __builtin_bswap32(v) == 348 || __builtin_bswap32(v) == 540;
}

/* Fill h from the 348 / 540 header bytes b; checks magic and byte order. */
static int header_fields(const uint8_t *b, nii_header *h) {
    if (h->version == 1) {
        nifti_1_header *x = &h->raw.h1;
        memcpy(x, b, sizeof *x);
        if (h->swapped) nifti_swap_as_nifti1(x);
        if (memcmp(x->magic, "ni1", 4) == 0)
            return lsdm_err("two-file NIfTI (.hdr/.img) is not supported; convert it to .nii first");
        if (memcmp(x->magic, "n+1", 4) != 0)
            return lsdm_err("not a NIfTI-1 file (bad magic; ANALYZE 7.5 is not supported)");
        for (int i = 0; i < 8; i++) { h->dim[i] = x->dim[i]; h->pixdim[i] = x->pixdim[i]; }
        h->datatype = x->datatype;
        if (!isfinite(x->vox_offset) || x->vox_offset < 0 || x->vox_offset > (float)INT_MAX / 2)
            return lsdm_err("bad vox_offset %g", (double)x->vox_offset);
        h->vox_offset = (int64_t)x->vox_offset;
        h->sform_code = x->sform_code;
        for (int c = 0; c < 4; c++) {
            h->srow[0][c] = x->srow_x[c];
            h->srow[1][c] = x->srow_y[c];
            h->srow[2][c] = x->srow_z[c];
        }
        if (h->vox_offset < (int64_t)sizeof *x) h->vox_offset = sizeof *x; /* as nifticlib does */
    } else {
        nifti_2_header *x = &h->raw.h2;
        memcpy(x, b, sizeof *x);
        if (h->swapped) nifti_swap_as_nifti2(x);
        if (memcmp(x->magic, "ni2", 4) == 0)
            return lsdm_err("two-file NIfTI-2 (.hdr/.img) is not supported; convert it to .nii first");
        if (memcmp(x->magic, "n+2", 4) != 0) return lsdm_err("not a NIfTI-2 file (bad magic)");
        /* nifticlib 3.0's own writer leaves these 4 bytes zero: accept that */
        if (memcmp(x->magic + 4, "\r\n\032\n", 4) != 0 && memcmp(x->magic + 4, "\0\0\0\0", 4) != 0)
            return lsdm_err("damaged NIfTI-2 header (magic bytes changed, e.g. by a text-mode transfer)");
        for (int i = 0; i < 8; i++) { h->dim[i] = x->dim[i]; h->pixdim[i] = x->pixdim[i]; }
        h->datatype = x->datatype;
        if (x->vox_offset < 0 || (uint64_t)x->vox_offset > lsdm_max_bytes())
            return lsdm_err("bad vox_offset %lld", (long long)x->vox_offset);
        h->vox_offset = x->vox_offset;
        h->sform_code = x->sform_code;
        for (int c = 0; c < 4; c++) {
            h->srow[0][c] = x->srow_x[c];
            h->srow[1][c] = x->srow_y[c];
            h->srow[2][c] = x->srow_z[c];
        }
        if (h->vox_offset < (int64_t)sizeof *x) h->vox_offset = sizeof *x;
    }
    return 0;
}

/* The NIfTI datatypes we read, and the record type each becomes. */
static int dtype_of(int dt, lsdm_dtype *t) {
    switch (dt) {
    case DT_UINT8: *t = LSDM_U8; return 0;
    case DT_INT8: case DT_INT16: *t = LSDM_I16; return 0;
    case DT_UINT16: case DT_INT32: *t = LSDM_I32; return 0;
    case DT_FLOAT32: case DT_FLOAT64: *t = LSDM_F32; return 0;
    default: return -1;
    }
}

/* Dims: 1..7, each >= 1, nothing past the 4th but 1s; the data size fits. */
static int header_check(nii_header *h, int64_t shape[4], size_t *fbytes) {
    int64_t nd = h->dim[0];
    if (nd < 1 || nd > 7) return lsdm_err("inconsistent dims: dim[0] = %lld (must be 1 to 7)", (long long)nd);
    for (int i = 1; i <= nd; i++)
        if (h->dim[i] < 1) return lsdm_err("inconsistent dims: dim[%d] = %lld (must be >= 1)", i, (long long)h->dim[i]);
    for (int i = 5; i <= nd; i++)
        if (h->dim[i] != 1)
            return lsdm_err("%lldD image (dim[%d] = %lld): only 3D and 4D volumes are supported",
                            (long long)nd, i, (long long)h->dim[i]);
    lsdm_dtype t;
    if (dtype_of(h->datatype, &t)) {
        const char *what = nifti_datatype_string(h->datatype); /* "COMPLEX64", or "**ILLEGAL**" */
        return lsdm_err("unsupported datatype %s (%d); supported: UINT8 INT8 INT16 UINT16 INT32 FLOAT32 FLOAT64",
                        what && what[0] != '*' ? what : "unknown", h->datatype);
    }
    nifti_datatype_sizes(h->datatype, &h->nbyper, &h->swapsize);
    /* record shape C,D,H,W = NIfTI t,z,y,x */
    for (int i = 0; i < 4; i++) shape[3 - i] = i + 1 <= nd ? h->dim[i + 1] : 1;
    size_t limit = lsdm_max_bytes(), n = (size_t)h->nbyper;
    for (int i = 0; i < 4; i++) {
        if ((uint64_t)shape[i] > limit / n) return lsdm_err("image too large (dims over %zu bytes)", limit);
        n *= (size_t)shape[i];
    }
    *fbytes = n;
    return 0;
}

/* ---------------------------------------------------------------- voxels */

static double raw_get(const void *p, int dt, size_t i) {
    switch (dt) {
    case DT_UINT8: return ((const uint8_t *)p)[i];
    case DT_INT8: return ((const int8_t *)p)[i];
    case DT_INT16: return ((const int16_t *)p)[i];
    case DT_UINT16: return ((const uint16_t *)p)[i];
    case DT_INT32: return ((const int32_t *)p)[i];
    case DT_FLOAT32: return ((const float *)p)[i];
    case DT_FLOAT64: return ((const double *)p)[i];
    default: return NAN;
    }
}

/* dst[0..n) of type t <- raw[0..n) of NIfTI type dt, times slope plus
 * inter when scale. Integer targets only ever get exact values here. */
static void convert(void *dst, lsdm_dtype t, const void *raw, int dt, size_t n, int scale, double slope, double inter) {
    switch (t) {
    case LSDM_U8: for (size_t i = 0; i < n; i++) ((uint8_t *)dst)[i] = (uint8_t)raw_get(raw, dt, i); break;
    case LSDM_I16: for (size_t i = 0; i < n; i++) ((int16_t *)dst)[i] = (int16_t)raw_get(raw, dt, i); break;
    case LSDM_I32: for (size_t i = 0; i < n; i++) ((int32_t *)dst)[i] = (int32_t)raw_get(raw, dt, i); break;
    default:
        if (scale) for (size_t i = 0; i < n; i++) ((float *)dst)[i] = (float)(raw_get(raw, dt, i) * slope + inter);
        else for (size_t i = 0; i < n; i++) ((float *)dst)[i] = (float)raw_get(raw, dt, i);
    }
}

/* A float label map: every value must be an integer; pick the smallest
 * integer type holding them all. */
static int label_type(const void *raw, int dt, size_t n, lsdm_dtype *t) {
    double lo = 0, hi = 0;
    for (size_t i = 0; i < n; i++) {
        double v = raw_get(raw, dt, i);
        if (!(v == floor(v)) || v < -2147483648.0 || v > 2147483647.0)
            return lsdm_err("label map has a non-integer value %g at voxel %zu (is it an image? drop --labels)", v, i);
        if (v < lo) lo = v;
        if (v > hi) hi = v;
    }
    *t = lo >= 0 && hi <= 255 ? LSDM_U8 : lo >= -32768 && hi <= 32767 ? LSDM_I16 : LSDM_I32;
    return 0;
}

/* --------------------------------------------------------------- geometry */

/* affine (sform, else qform, else diag(spacing)) and spacing keys */
static int set_geometry(lsdm_record *r, const nii_header *h, const nifti_image *nim) {
    double sp[3], a[16] = {0};
    const double pix[3] = {nim->pixdim[3], nim->pixdim[2], nim->pixdim[1]}; /* d,h,w = z,y,x */
    for (int i = 0; i < 3; i++) sp[i] = isfinite(pix[i]) && pix[i] >= DBL_MIN ? pix[i] : 1.0;
    const char *source;
    double m[3][4];
    if (h->sform_code > 0) {
        source = "sform";
        memcpy(m, h->srow, sizeof m);
        for (int i = 0; i < 12; i++)
            if (!isfinite(m[i / 4][i % 4])) return lsdm_err("the sform holds a non-finite value");
    } else if (nim->qform_code > 0) {
        source = "qform";
        for (int i = 0; i < 12; i++) m[i / 4][i % 4] = nim->qto_xyz.m[i / 4][i % 4];
    } else {
        source = "spacing";
        memset(m, 0, sizeof m);
        m[0][0] = sp[2], m[1][1] = sp[1], m[2][2] = sp[0];
    }
    /* record columns (d,h,w) = NIfTI (k,j,i) */
    for (int row = 0; row < 3; row++) {
        a[4 * row + 0] = m[row][2];
        a[4 * row + 1] = m[row][1];
        a[4 * row + 2] = m[row][0];
        a[4 * row + 3] = m[row][3];
    }
    a[15] = 1;
    if (lsdm_record_set_affine(r, a) || lsdm_record_set(r, "affine-source", source)) return -1;
    return lsdm_record_set_spacing(r, sp);
}

/* ----------------------------------------------------------------- decode */

static int decode(nii_src *s, size_t n, const char *name, const lsdm_nifti_opts *o, lsdm_record *out) {
    uint8_t hb[sizeof(nifti_2_header)];
    size_t got;
    nii_header h;
    memset(&h, 0, sizeof h);
    if (src_read(s, hb, 4, &got)) return -1;
    if (got < 4) return lsdm_err("not a NIfTI file (too short for a header)");
    uint32_t v;
    memcpy(&v, hb, 4);
    if (v == 348 || v == 540) h.version = v == 348 ? 1 : 2;
    else if (__builtin_bswap32(v) == 348 || __builtin_bswap32(v) == 540) h.version = __builtin_bswap32(v) == 348 ? 1 : 2, h.swapped = 1;
    else return lsdm_err("not a NIfTI file (header size field is not 348 or 540)");
    size_t hsize = h.version == 1 ? sizeof(nifti_1_header) : sizeof(nifti_2_header);
    if (src_read(s, hb + 4, hsize - 4, &got)) return -1;
    if (got < hsize - 4) return lsdm_err("truncated NIfTI header (%zu of %zu bytes)", got + 4, hsize);

    int64_t shape[4];
    size_t fbytes = 0;
    if (header_fields(hb, &h) || header_check(&h, shape, &fbytes)) return -1;
    /* the data must fit in what we were given; a gzip stream inflates at
     * most ~1032:1, which bounds what a small hostile file can make us allocate */
    uint64_t need = (uint64_t)h.vox_offset + fbytes;
    if (!s->gz && need > n)
        return lsdm_err("truncated NIfTI file (header needs %llu bytes, file has %zu)", (unsigned long long)need, n);
    if (s->gz && need / 1032 > n + 1024)
        return lsdm_err("truncated or corrupt .nii.gz (%zu compressed bytes cannot hold %llu bytes)", n, (unsigned long long)need);

    nifti_image *nim = h.version == 1 ? nifti_convert_n1hdr2nim(h.raw.h1, NULL) : nifti_convert_n2hdr2nim(h.raw.h2, NULL);
    if (!nim) return lsdm_err("nifticlib could not read the header");
    int labels = o && o->labels;
    const char *role = o && o->role ? o->role : labels ? "labels" : "image";
    int scale = !labels && nim->scl_slope != 0 && isfinite(nim->scl_slope) && isfinite(nim->scl_inter) &&
                (nim->scl_slope != 1 || nim->scl_inter != 0);
    double slope = nim->scl_slope, inter = nim->scl_inter;
    lsdm_dtype t = LSDM_U8;
    dtype_of(h.datatype, &t);
    if (scale) t = LSDM_F32;
    int is_float = h.datatype == DT_FLOAT32 || h.datatype == DT_FLOAT64;
    int direct = !scale && !(labels && is_float) && lsdm_dtype_size(t) == (size_t)h.nbyper;
    void *raw = NULL;
    int rc = -1;
    if (!lsdm_role_valid(role)) { lsdm_err("unknown role '%s'", role); goto done; }

    /* skip the rest of the header and any extensions, then the voxels */
    if (src_read(s, NULL, (size_t)h.vox_offset - hsize, &got)) goto done;
    if (got < (size_t)h.vox_offset - hsize) { lsdm_err("truncated NIfTI file (ends before the voxel data)"); goto done; }
    if (direct) {
        if (lsdm_record_alloc(out, t, 4, shape)) goto done;
        raw = out->data;
    } else if (!(raw = malloc(fbytes))) {
        lsdm_err("out of memory (%zu bytes)", fbytes);
        goto done;
    }
    if (src_read(s, raw, fbytes, &got)) goto done;
    if (got < fbytes) {
        lsdm_err("truncated NIfTI data (%zu of %zu bytes of voxels)", got, fbytes);
        goto done;
    }
    if (src_finish(s)) goto done;
    size_t nvox = fbytes / (size_t)h.nbyper;
    if (h.swapped && h.swapsize > 1) nifti_swap_Nbytes((int64_t)nvox, h.swapsize, raw);
    if (!direct) {
        if (labels && is_float && label_type(raw, h.datatype, nvox, &t)) goto done;
        if (lsdm_record_alloc(out, t, 4, shape)) goto done;
        convert(out->data, t, raw, h.datatype, nvox, scale, slope, inter);
    }
    if (name && lsdm_record_set(out, "name", name)) goto done;
    if (lsdm_record_set(out, "role", role) || set_geometry(out, &h, nim)) goto done;
    rc = 0;
done:
    if (!direct) free(raw);
    nifti_image_free(nim);
    return rc;
}

int lsdm_nifti_decode(const void *buf, size_t n, const char *name, const lsdm_nifti_opts *o, lsdm_record *out) {
    lsdm_record_free(out);
    if (n == 0) return lsdm_err("empty file");
    nii_src s;
    if (src_open(&s, buf, n)) return -1;
    int rc = decode(&s, n, name, o, out);
    src_close(&s);
    if (rc) lsdm_record_free(out);
    return rc;
}

/* ------------------------------------------------------------------ files */

int lsdm_nifti_is_name(const char *path) {
    size_t n = strlen(path);
    return (n > 4 && strcasecmp(path + n - 4, ".nii") == 0) || (n > 7 && strcasecmp(path + n - 7, ".nii.gz") == 0);
}

char *lsdm_nifti_name_from_path(const char *path) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--; /* "dir/" names "dir" */
    const char *base = path;
    for (size_t i = 0; i < n; i++)
        if (path[i] == '/' && i + 1 < n) base = path + i + 1;
    n -= (size_t)(base - path);
    if (n > 7 && strncasecmp(base + n - 7, ".nii.gz", 7) == 0) n -= 7;
    else if (n > 4 && strncasecmp(base + n - 4, ".nii", 4) == 0) n -= 4;
    return strndup(base, n);
}

/* A regular file is mapped (no copy: a .nii is read in place); anything
 * else (a pipe, /dev/stdin) is read into memory. */
int lsdm_nifti_read_file(const char *path, const lsdm_nifti_opts *o, lsdm_record *out) {
    lsdm_record_free(out);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return lsdm_err("%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) { int e = errno; close(fd); return lsdm_err("%s: %s", path, strerror(e)); }
    if (S_ISDIR(st.st_mode)) { close(fd); return lsdm_err("%s: is a directory", path); }
    void *buf = NULL;
    size_t n = 0, cap = 0;
    int mapped = 0;
    if (S_ISREG(st.st_mode) && st.st_size > 0) {
        n = (size_t)st.st_size;
        buf = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
        if (buf == MAP_FAILED) { int e = errno; close(fd); return lsdm_err("%s: cannot map: %s", path, strerror(e)); }
        mapped = 1;
    } else {
        for (;;) {
            if (n == cap) {
                cap = cap ? 2 * cap : 1 << 20;
                void *p = cap <= lsdm_max_bytes() + (1 << 20) ? realloc(buf, cap) : NULL;
                if (!p) { free(buf); close(fd); return lsdm_err("%s: too large or out of memory", path); }
                buf = p;
            }
            ssize_t k = read(fd, (char *)buf + n, cap - n);
            if (k < 0 && errno == EINTR) continue;
            if (k < 0) { int e = errno; free(buf); close(fd); return lsdm_err("%s: %s", path, strerror(e)); }
            if (k == 0) break;
            n += (size_t)k;
        }
    }
    close(fd);
    char *name = lsdm_nifti_name_from_path(path);
    int rc = name ? lsdm_nifti_decode(buf, n, name, o, out) : lsdm_err("out of memory");
    if (rc) lsdm_err_ctx("%s", path);
    free(name);
    if (mapped) munmap(buf, n);
    else free(buf);
    return rc;
}
