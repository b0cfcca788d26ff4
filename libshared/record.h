/* One record of a tensor stream: an ordered list of key:value header lines
 * plus a dense little-endian tensor (volumes as C,D,H,W). */
#ifndef LSDM_RECORD_H
#define LSDM_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"

#define LSDM_MAX_DIMS 8
/* Largest accepted key or value, in bytes; keeps headers small. */
#define LSDM_MAX_VALUE 65536

typedef struct {
    char *key;
    char *value;
} lsdm_kv;

typedef struct {
    lsdm_kv *kv; /* every header key but dtype and shape, in stream order */
    int nkv, cap_kv;
    lsdm_dtype dtype;
    int ndim;
    int64_t shape[LSDM_MAX_DIMS];
    void *data; /* owned, 64-byte aligned, nbytes long */
    size_t nbytes;
    size_t mapped; /* bytes mapped with mmap when data is large, else 0 */
} lsdm_record;

void lsdm_record_init(lsdm_record *r);
void lsdm_record_free(lsdm_record *r); /* frees everything and re-inits */
/* Give r a zeroed tensor of the given type and shape (old data freed).
 * Refuses shapes over lsdm_max_bytes(). */
int lsdm_record_alloc(lsdm_record *r, lsdm_dtype t, int ndim, const int64_t *shape);
size_t lsdm_record_numel(const lsdm_record *r);

const char *lsdm_record_get(const lsdm_record *r, const char *key); /* NULL if absent */
int lsdm_record_set(lsdm_record *r, const char *key, const char *value);
int lsdm_record_setf(lsdm_record *r, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void lsdm_record_del(lsdm_record *r, const char *key);
/* Copy every header key of src into dst (replacing same-named ones). */
int lsdm_record_copy_keys(lsdm_record *dst, const lsdm_record *src);
/* Append "entry" to the provenance key ("; "-separated history). */
int lsdm_record_add_provenance(lsdm_record *r, const char *entry);

/* Geometry. The affine maps the voxel index (d, h, w, 1) of the last three
 * dims to RAS millimetres, row-major 4x4. Returns 1 found, 0 absent,
 * -1 malformed (with lsdm_err). */
int lsdm_record_get_affine(const lsdm_record *r, double a[16]);
int lsdm_record_set_affine(lsdm_record *r, const double a[16]);
/* Spacing in mm of the last three dims (d, h, w). Same returns. */
int lsdm_record_get_spacing(const lsdm_record *r, double sp[3]);
int lsdm_record_set_spacing(lsdm_record *r, const double sp[3]);

/* Label names "0=background,1=fat,...": ids and names. */
typedef struct {
    int n;
    int *ids;
    char **names;
} lsdm_labels;
int lsdm_labels_parse(const char *s, lsdm_labels *out);
void lsdm_labels_free(lsdm_labels *l);
const char *lsdm_labels_name(const lsdm_labels *l, int id); /* NULL if unnamed */

/* 1 if the shapes are equal but for leading 1s (D,H,W is 1,D,H,W). */
int lsdm_record_same_shape(const lsdm_record *a, const lsdm_record *b);
/* Check what every record must satisfy: name and role present, a known
 * role, 1..8 dims each >= 1, nbytes matching. */
int lsdm_record_validate(const lsdm_record *r);
int lsdm_role_valid(const char *role);

/* "1,32,256,256" <-> dims. Parse refuses 0, negative and > 8 dims. */
int lsdm_shape_parse(const char *s, int *ndim, int64_t *shape);
void lsdm_shape_format(char *buf, size_t n, int ndim, const int64_t *shape);
/* numel * elem_size with overflow check; -1 on overflow or over the limit. */
int lsdm_shape_bytes(int ndim, const int64_t *shape, lsdm_dtype t, size_t *out);
/* Largest tensor accepted anywhere (LSDM_MAX_BYTES env, default 16 GiB). */
size_t lsdm_max_bytes(void);

#endif
