/* safetensors files (https://github.com/huggingface/safetensors):
 *   u64 little-endian N, N bytes of JSON header, then the data section.
 * Header: {"NAME": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]},
 *          ..., "__metadata__": {"key": "string", ...}}
 * Offsets are bytes into the data section. Reading is strict, like the
 * reference Rust loader: the header is well-formed JSON (no duplicate
 * keys, no NUL), at most 100 MB, starts with '{'; every tensor has exactly
 * dtype, shape and data_offsets; e - b = numel * element size; tensors
 * tile the data section without gap or overlap and end at its end. */
#ifndef LSDM_SAFETENSORS_H
#define LSDM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER 100000000u /* as the reference implementation */

typedef enum {
    ST_BOOL, ST_U8, ST_I8, ST_I16, ST_U16, ST_F16, ST_BF16, ST_I32, ST_U32,
    ST_F32, ST_F64, ST_I64, ST_U64, ST_F8_E4M3, ST_F8_E5M2, ST_DTYPE_COUNT
} st_dtype;

const char *st_dtype_name(st_dtype t);  /* "F32" */
size_t st_dtype_size(st_dtype t);
int st_dtype_parse(const char *s, st_dtype *out); /* 0 ok, -1 unknown */

typedef struct {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    uint64_t begin, end; /* byte range in the data section */
} st_tensor;

typedef struct {
    char *label;          /* file name, for messages */
    st_tensor *t;         /* in file order of data offsets */
    int n;
    char **meta_key, **meta_val; /* __metadata__, in header order */
    int nmeta;
    const uint8_t *data;  /* data section (inside map or buf) */
    uint64_t data_size;
    void *map;            /* mmap of the file, or NULL */
    size_t map_size;
} st_file;

/* Open and validate a file (mapped read-only). Errors name the file. */
int safetensors_open(st_file *f, const char *path);
/* Validate a buffer in memory (not copied: it must outlive f). */
int safetensors_open_mem(st_file *f, const void *buf, size_t n, const char *label);
void safetensors_close(st_file *f);

const st_tensor *safetensors_find(const st_file *f, const char *name); /* NULL if absent */
const char *safetensors_meta_get(const st_file *f, const char *key);  /* NULL if absent */
/* Raw little-endian bytes of t. */
const void *safetensors_data(const st_file *f, const st_tensor *t);
/* dst[numel] <- t converted to float; F32, F16, BF16 and F64 only. */
int safetensors_read_f32(const st_file *f, const st_tensor *t, float *dst);

/* One tensor to write. Either data (raw, in dtype, little-endian) or
 * from_f32 (converted while writing; dtype F32, F16 or BF16). */
typedef struct {
    const char *name;
    st_dtype dtype;
    int ndim;
    const int64_t *shape;
    const void *data;
    const float *from_f32;
} st_entry;

/* Write n tensors and nmeta metadata pairs (meta[2i] key, meta[2i+1]
 * value) atomically (temp file, fsync, rename: a crash leaves the old
 * file). Tensors are laid out by decreasing element size so each is
 * aligned in the file; the header is padded with spaces to 8 bytes. */
int safetensors_write(const char *path, const st_entry *t, int n, const char *const *meta, int nmeta);

#endif
