/* Strict safetensors reader and atomic writer; see safetensors.h.
 * The JSON header is parsed with jansson (Debian libjansson-dev). */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dtype.h"
#include "err.h"
#include "outfile.h"

static const char *const st_names[ST_DTYPE_COUNT] = {
    "BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64",
    "F8_E4M3", "F8_E5M2"};
static const size_t st_sizes[ST_DTYPE_COUNT] = {1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 8, 8, 8, 1, 1};

const char *st_dtype_name(st_dtype t) { return t < ST_DTYPE_COUNT ? st_names[t] : "?"; }
size_t st_dtype_size(st_dtype t) { return t < ST_DTYPE_COUNT ? st_sizes[t] : 0; }

int st_dtype_parse(const char *s, st_dtype *out) {
    for (int i = 0; i < ST_DTYPE_COUNT; i++)
        if (strcmp(s, st_names[i]) == 0) { *out = (st_dtype)i; return 0; }
    return -1;
}

static uint64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* A non-negative JSON integer, or -1. */
static int64_t json_uint(const json_t *j) {
    if (!json_is_integer(j)) return -1;
    json_int_t v = json_integer_value(j);
    return v < 0 ? -1 : (int64_t)v;
}

/* Fill t from the header entry {"dtype", "shape", "data_offsets"}. */
static int st_parse_tensor(st_tensor *t, const char *name, json_t *e) {
    if (!json_is_object(e)) return lsdm_err("tensor '%s': entry is not an object", name);
    const char *key;
    json_t *val;
    json_object_foreach(e, key, val)
        if (strcmp(key, "dtype") && strcmp(key, "shape") && strcmp(key, "data_offsets"))
            return lsdm_err("tensor '%s': unknown field '%s'", name, key);
    json_t *dt = json_object_get(e, "dtype"), *sh = json_object_get(e, "shape"),
           *off = json_object_get(e, "data_offsets");
    if (!json_is_string(dt) || st_dtype_parse(json_string_value(dt), &t->dtype) < 0)
        return lsdm_err("tensor '%s': missing or unknown dtype", name);
    if (!json_is_array(sh) || json_array_size(sh) > ST_MAX_DIMS)
        return lsdm_err("tensor '%s': shape must be an array of at most %d sizes", name, ST_MAX_DIMS);
    t->ndim = (int)json_array_size(sh);
    uint64_t bytes = st_dtype_size(t->dtype);
    for (int i = 0; i < t->ndim; i++) {
        int64_t d = json_uint(json_array_get(sh, (size_t)i));
        if (d < 0) return lsdm_err("tensor '%s': shape has a non-integer or negative size", name);
        t->shape[i] = d;
        if (d && bytes > UINT64_MAX / (uint64_t)d) return lsdm_err("tensor '%s': shape too large", name);
        bytes *= (uint64_t)d;
    }
    if (!json_is_array(off) || json_array_size(off) != 2)
        return lsdm_err("tensor '%s': data_offsets must be [begin, end]", name);
    int64_t b = json_uint(json_array_get(off, 0)), en = json_uint(json_array_get(off, 1));
    if (b < 0 || en < 0 || en < b) return lsdm_err("tensor '%s': invalid data_offsets", name);
    t->begin = (uint64_t)b;
    t->end = (uint64_t)en;
    if (t->end - t->begin != bytes)
        return lsdm_err("tensor '%s': data_offsets span %llu bytes, but shape and dtype need %llu", name,
                        (unsigned long long)(t->end - t->begin), (unsigned long long)bytes);
    return 0;
}

static int st_by_offset(const void *a, const void *b) {
    const st_tensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int st_parse_meta(st_file *f, json_t *m) {
    if (!json_is_object(m)) return lsdm_err("__metadata__ is not an object");
    size_t n = json_object_size(m);
    f->meta_key = calloc(n ? n : 1, sizeof *f->meta_key);
    f->meta_val = calloc(n ? n : 1, sizeof *f->meta_val);
    if (!f->meta_key || !f->meta_val) return lsdm_err("out of memory");
    const char *key;
    json_t *val;
    json_object_foreach(m, key, val) {
        if (!json_is_string(val)) return lsdm_err("__metadata__ value of '%s' is not a string", key);
        f->meta_key[f->nmeta] = strdup(key);
        f->meta_val[f->nmeta] = strdup(json_string_value(val));
        if (!f->meta_key[f->nmeta++] || !f->meta_val[f->nmeta - 1]) return lsdm_err("out of memory");
    }
    return 0;
}

/* Parse and check the header of buf (everything after the map/read). */
static int st_parse(st_file *f, const uint8_t *buf, size_t n) {
    if (n < 8) return lsdm_err("too short for a safetensors file (%zu bytes)", n);
    uint64_t hlen = le64(buf);
    if (hlen > ST_MAX_HEADER) return lsdm_err("header length %llu exceeds the limit of %u bytes",
                                             (unsigned long long)hlen, ST_MAX_HEADER);
    if (hlen < 2 || hlen > n - 8)
        return lsdm_err("header length %llu does not fit the file (%zu bytes): truncated or not safetensors",
                        (unsigned long long)hlen, n);
    if (buf[8] != '{') return lsdm_err("header does not start with '{'");
    json_error_t jerr;
    json_t *root = json_loadb((const char *)buf + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return lsdm_err("bad JSON header: %s (byte %d)", jerr.text, jerr.position);
    int rc = 0;
    if (!json_is_object(root)) { json_decref(root); return lsdm_err("header is not a JSON object"); }
    size_t cap = json_object_size(root);
    f->t = calloc(cap ? cap : 1, sizeof *f->t);
    if (!f->t) { json_decref(root); return lsdm_err("out of memory"); }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if ((rc = st_parse_meta(f, val)) < 0) break;
            continue;
        }
        st_tensor *t = &f->t[f->n];
        if (!(t->name = strdup(key))) { rc = lsdm_err("out of memory"); break; }
        f->n++;
        if ((rc = st_parse_tensor(t, key, val)) < 0) break;
    }
    json_decref(root);
    if (rc < 0) return rc;
    f->data = buf + 8 + hlen;
    f->data_size = n - 8 - hlen;
    qsort(f->t, (size_t)f->n, sizeof *f->t, st_by_offset);
    uint64_t at = 0;
    for (int i = 0; i < f->n; i++) {
        if (f->t[i].begin != at)
            return lsdm_err("tensor '%s': data at bytes %llu..%llu %s", f->t[i].name,
                            (unsigned long long)f->t[i].begin, (unsigned long long)f->t[i].end,
                            f->t[i].begin < at ? "overlaps another tensor" : "leaves a gap before it");
        at = f->t[i].end;
        if (at > f->data_size)
            return lsdm_err("tensor '%s': data ends at byte %llu, past the data section (%llu bytes): truncated?",
                            f->t[i].name, (unsigned long long)at, (unsigned long long)f->data_size);
    }
    if (at != f->data_size)
        return lsdm_err("data section has %llu bytes, tensors cover %llu", (unsigned long long)f->data_size,
                        (unsigned long long)at);
    return 0;
}

int safetensors_open_mem(st_file *f, const void *buf, size_t n, const char *label) {
    memset(f, 0, sizeof *f);
    f->label = strdup(label ? label : "safetensors");
    if (!f->label) return lsdm_err("out of memory");
    if (st_parse(f, buf, n) < 0) {
        lsdm_err_ctx("%s", f->label);
        safetensors_close(f);
        return -1;
    }
    return 0;
}

int safetensors_open(st_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lsdm_err("%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return lsdm_err("%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    void *map = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    close(fd);
    if (size && map == MAP_FAILED) return lsdm_err("%s: cannot map: %s", path, strerror(errno));
    if (safetensors_open_mem(f, size ? map : "", size, path) < 0) {
        if (size) munmap(map, size);
        return -1;
    }
    f->map = size ? map : NULL;
    f->map_size = size;
    return 0;
}

void safetensors_close(st_file *f) {
    for (int i = 0; i < f->n; i++) free(f->t[i].name);
    free(f->t);
    for (int i = 0; i < f->nmeta; i++) { free(f->meta_key[i]); free(f->meta_val[i]); }
    free(f->meta_key);
    free(f->meta_val);
    free(f->label);
    if (f->map) munmap(f->map, f->map_size);
    memset(f, 0, sizeof *f);
}

const st_tensor *safetensors_find(const st_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0) return &f->t[i];
    return NULL;
}

const char *safetensors_meta_get(const st_file *f, const char *key) {
    for (int i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta_key[i], key) == 0) return f->meta_val[i];
    return NULL;
}

const void *safetensors_data(const st_file *f, const st_tensor *t) { return f->data + t->begin; }

int safetensors_read_f32(const st_file *f, const st_tensor *t, float *dst) {
    const uint8_t *p = f->data + t->begin;
    size_t n = (size_t)((t->end - t->begin) / st_dtype_size(t->dtype));
    switch (t->dtype) {
    case ST_F32: memcpy(dst, p, n * 4); return 0;
    case ST_F16:
    case ST_BF16: /* byte-wise: another writer may leave 2-byte data at an odd offset */
        for (size_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
            dst[i] = t->dtype == ST_F16 ? lsdm_f16_to_f32(h) : lsdm_bf16_to_f32(h);
        }
        return 0;
    case ST_F64:
        for (size_t i = 0; i < n; i++) { double d; memcpy(&d, p + 8 * i, 8); dst[i] = (float)d; }
        return 0;
    default:
        return lsdm_err("%s: tensor '%s' has dtype %s, not a float type", f->label, t->name, st_dtype_name(t->dtype));
    }
}

/* Write order: larger elements first, so every tensor starts aligned to
 * its element size (the header is padded to 8). Stable for equal sizes. */
static int st_layout(const st_entry *t, int n, int *order) {
    int k = 0;
    for (size_t sz = 8; sz >= 1; sz /= 2)
        for (int i = 0; i < n; i++)
            if (st_dtype_size(t[i].dtype) == sz) order[k++] = i;
    return k == n ? 0 : lsdm_err("unknown dtype");
}

static int st_entry_bytes(const st_entry *e, uint64_t *bytes) {
    if (e->dtype >= ST_DTYPE_COUNT) return lsdm_err("tensor '%s': unknown dtype", e->name);
    if (e->ndim < 0 || e->ndim > ST_MAX_DIMS) return lsdm_err("tensor '%s': %d dims", e->name, e->ndim);
    if (e->from_f32 && e->dtype != ST_F32 && e->dtype != ST_F16 && e->dtype != ST_BF16)
        return lsdm_err("tensor '%s': cannot convert float to %s", e->name, st_dtype_name(e->dtype));
    uint64_t b = st_dtype_size(e->dtype);
    for (int i = 0; i < e->ndim; i++) {
        if (e->shape[i] < 0) return lsdm_err("tensor '%s': negative size", e->name);
        if (e->shape[i] && b > UINT64_MAX / (uint64_t)e->shape[i]) return lsdm_err("tensor '%s': too large", e->name);
        b *= (uint64_t)e->shape[i];
    }
    if (b && !e->data && !e->from_f32) return lsdm_err("tensor '%s': no data", e->name);
    *bytes = b;
    return 0;
}

/* The JSON header text, padded with spaces to a multiple of 8. */
static char *st_header(const st_entry *t, int n, const int *order, const char *const *meta, int nmeta,
                       size_t *len) {
    json_t *root = json_object(), *md = nmeta ? json_object() : NULL;
    int ok = root != NULL;
    for (int i = 0; ok && i < nmeta; i++)
        if (!(ok = json_object_set_new(md, meta[2 * i], json_string(meta[2 * i + 1])) == 0))
            lsdm_err("metadata '%s' is not UTF-8 text", meta[2 * i]);
    if (ok && md) { ok = json_object_set_new(root, "__metadata__", md) == 0; md = NULL; }
    uint64_t at = 0;
    for (int k = 0; ok && k < n; k++) {
        const st_entry *e = &t[order[k]];
        uint64_t bytes = 0;
        if (st_entry_bytes(e, &bytes) < 0) { ok = 0; break; }
        if (!e->name || strcmp(e->name, "__metadata__") == 0 || json_object_get(root, e->name)) {
            lsdm_err("tensor name '%s' is reserved or used twice", e->name ? e->name : "(null)");
            ok = 0;
            break;
        }
        json_t *sh = json_array();
        for (int i = 0; i < e->ndim; i++) json_array_append_new(sh, json_integer(e->shape[i]));
        json_t *ent = json_pack("{s:s, s:o, s:[I,I]}", "dtype", st_dtype_name(e->dtype), "shape", sh,
                                "data_offsets", (json_int_t)at, (json_int_t)(at + bytes));
        ok = ent && json_object_set_new(root, e->name, ent) == 0;
        if (!ok) lsdm_err("tensor '%s': cannot build the header (name not UTF-8?)", e->name);
        at += bytes;
    }
    json_decref(md);
    char *text = ok ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (!text) { if (ok) lsdm_err("cannot build the header"); return NULL; }
    size_t raw = strlen(text), padded = (raw + 7) / 8 * 8;
    char *out = realloc(text, padded + 1);
    if (!out) { free(text); lsdm_err("out of memory"); return NULL; }
    memset(out + raw, ' ', padded - raw);
    out[padded] = 0;
    *len = padded;
    return out;
}

static int st_write_entry(FILE *out, const st_entry *e, uint64_t bytes) {
    if (!e->from_f32 || e->dtype == ST_F32) {
        const void *src = e->from_f32 ? (const void *)e->from_f32 : e->data;
        return bytes && fwrite(src, 1, (size_t)bytes, out) != bytes ? -1 : 0;
    }
    uint16_t buf[4096];
    size_t n = (size_t)(bytes / 2);
    for (size_t i = 0; i < n; i += 4096) {
        size_t k = n - i < 4096 ? n - i : 4096;
        for (size_t j = 0; j < k; j++)
            buf[j] = e->dtype == ST_F16 ? lsdm_f32_to_f16(e->from_f32[i + j]) : lsdm_f32_to_bf16(e->from_f32[i + j]);
        if (fwrite(buf, 2, k, out) != k) return -1;
    }
    return 0;
}

int safetensors_write(const char *path, const st_entry *t, int n, const char *const *meta, int nmeta) {
    int *order = malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
    if (!order) return lsdm_err("out of memory");
    size_t hlen = 0;
    char *header = st_layout(t, n, order) < 0 ? NULL : st_header(t, n, order, meta, nmeta, &hlen);
    if (!header) { free(order); return lsdm_err_ctx("%s", path); }
    lsdm_outfile o;
    if (lsdm_outfile_open(&o, path, 1, 0) < 0) { free(header); free(order); return -1; }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    int bad = fwrite(len8, 1, 8, o.f) != 8 || fwrite(header, 1, hlen, o.f) != hlen;
    for (int k = 0; !bad && k < n; k++) {
        uint64_t bytes = 0;
        st_entry_bytes(&t[order[k]], &bytes);
        bad = st_write_entry(o.f, &t[order[k]], bytes) < 0;
    }
    free(header);
    free(order);
    if (bad) {
        int e = errno;
        lsdm_outfile_abort(&o);
        return lsdm_err("%s: write failed: %s", path, strerror(e ? e : EIO));
    }
    return lsdm_outfile_commit(&o);
}
