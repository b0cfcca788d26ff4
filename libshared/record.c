#include "record.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>

#include "err.h"

void lsdm_record_init(lsdm_record *r) { memset(r, 0, sizeof *r); }

/* Large tensors get their own mapping: returned to the system when freed,
 * so a reader going through a thousand volumes keeps the memory of one
 * (malloc's heap would fragment between big buffers and small header
 * strings and keep growing). */
enum { MAP_MIN_BYTES = 1 << 20 };

static void data_free(lsdm_record *r) {
    if (r->mapped) munmap(r->data, r->mapped);
    else free(r->data);
    r->data = NULL;
    r->nbytes = r->mapped = 0;
}

void lsdm_record_free(lsdm_record *r) {
    for (int i = 0; i < r->nkv; i++) { free(r->kv[i].key); free(r->kv[i].value); }
    free(r->kv);
    data_free(r);
    lsdm_record_init(r);
}

size_t lsdm_max_bytes(void) {
    const char *s = getenv("LSDM_MAX_BYTES");
    if (s && *s) {
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (*end == 0 && v > 0) return (size_t)v;
    }
    return (size_t)16 << 30;
}

int lsdm_shape_bytes(int ndim, const int64_t *shape, lsdm_dtype t, size_t *out) {
    size_t limit = lsdm_max_bytes(), n = lsdm_dtype_size(t);
    if (n == 0) return lsdm_err("bad dtype");
    if (ndim < 1 || ndim > LSDM_MAX_DIMS) return lsdm_err("%d dims (1 to %d allowed)", ndim, LSDM_MAX_DIMS);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1) return lsdm_err("dimension %d is %lld (must be >= 1)", i, (long long)shape[i]);
        if ((uint64_t)shape[i] > limit / n) return lsdm_err("shape too large (over %zu bytes)", limit);
        n *= (size_t)shape[i];
    }
    *out = n;
    return 0;
}

int lsdm_record_alloc(lsdm_record *r, lsdm_dtype t, int ndim, const int64_t *shape) {
    size_t nbytes;
    if (lsdm_shape_bytes(ndim, shape, t, &nbytes)) return -1;
    data_free(r);
    size_t padded = (nbytes + 63) & ~(size_t)63;
    void *p;
    if (padded >= MAP_MIN_BYTES) { /* zeroed by the kernel */
        p = mmap(NULL, padded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return lsdm_err("out of memory allocating %zu bytes", nbytes);
        r->mapped = padded;
    } else {
        if (!(p = aligned_alloc(64, padded))) return lsdm_err("out of memory allocating %zu bytes", nbytes);
        memset(p, 0, padded);
    }
    r->data = p;
    r->nbytes = nbytes;
    r->dtype = t;
    r->ndim = ndim;
    for (int i = 0; i < LSDM_MAX_DIMS; i++) r->shape[i] = i < ndim ? shape[i] : 0;
    return 0;
}

size_t lsdm_record_numel(const lsdm_record *r) {
    size_t n = 1;
    for (int i = 0; i < r->ndim; i++) n *= (size_t)r->shape[i];
    return r->ndim ? n : 0;
}

static int key_ok(const char *k) {
    if (!*k || strlen(k) > 64) return 0;
    for (const char *p = k; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
            return 0;
    return strcmp(k, "END") != 0;
}

static int value_ok(const char *v) {
    size_t n = 0;
    for (const char *p = v; *p; p++, n++)
        if (*p == '\n' || *p == '\r') return 0;
    return n <= LSDM_MAX_VALUE;
}

const char *lsdm_record_get(const lsdm_record *r, const char *key) {
    for (int i = 0; i < r->nkv; i++)
        if (strcmp(r->kv[i].key, key) == 0) return r->kv[i].value;
    return NULL;
}

int lsdm_record_set(lsdm_record *r, const char *key, const char *value) {
    if (!key_ok(key)) return lsdm_err("bad header key '%.64s'", key);
    if (!strcmp(key, "dtype") || !strcmp(key, "shape"))
        return lsdm_err("'%s' is set through the tensor, not as a key", key);
    if (!value_ok(value)) return lsdm_err("bad value for key '%s' (newline or too long)", key);
    char *v = strdup(value);
    if (!v) return lsdm_err("out of memory");
    for (int i = 0; i < r->nkv; i++)
        if (strcmp(r->kv[i].key, key) == 0) { free(r->kv[i].value); r->kv[i].value = v; return 0; }
    if (r->nkv == r->cap_kv) {
        int cap = r->cap_kv ? 2 * r->cap_kv : 16;
        lsdm_kv *kv = realloc(r->kv, (size_t)cap * sizeof *kv);
        if (!kv) { free(v); return lsdm_err("out of memory"); }
        r->kv = kv;
        r->cap_kv = cap;
    }
    char *k = strdup(key);
    if (!k) { free(v); return lsdm_err("out of memory"); }
    r->kv[r->nkv++] = (lsdm_kv){k, v};
    return 0;
}

int lsdm_record_setf(lsdm_record *r, const char *key, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return lsdm_err("bad format");
    char *buf = malloc((size_t)n + 1);
    if (!buf) return lsdm_err("out of memory");
    va_start(ap, fmt);
    vsnprintf(buf, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = lsdm_record_set(r, key, buf);
    free(buf);
    return rc;
}

void lsdm_record_del(lsdm_record *r, const char *key) {
    for (int i = 0; i < r->nkv; i++) {
        if (strcmp(r->kv[i].key, key) != 0) continue;
        free(r->kv[i].key);
        free(r->kv[i].value);
        memmove(&r->kv[i], &r->kv[i + 1], (size_t)(r->nkv - i - 1) * sizeof *r->kv);
        r->nkv--;
        return;
    }
}

int lsdm_record_copy_keys(lsdm_record *dst, const lsdm_record *src) {
    for (int i = 0; i < src->nkv; i++)
        if (lsdm_record_set(dst, src->kv[i].key, src->kv[i].value)) return -1;
    return 0;
}

int lsdm_record_add_provenance(lsdm_record *r, const char *entry) {
    const char *old = lsdm_record_get(r, "provenance");
    if (!old || !*old) return lsdm_record_set(r, "provenance", entry);
    return lsdm_record_setf(r, "provenance", "%s; %s", old, entry);
}

/* Parse exactly n finite numbers separated by spaces or commas. */
static int parse_numbers(const char *s, double *out, int n) {
    const char *p = s;
    for (int i = 0; i < n; i++) {
        while (*p == ' ' || *p == ',' || *p == '\t') p++;
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        /* ERANGE on underflow still gives a usable (subnormal or zero) value */
        if (end == p || !isfinite(v) || (errno == ERANGE && fabs(v) >= 1)) return -1;
        out[i] = v;
        p = end;
    }
    while (*p == ' ' || *p == '\t') p++;
    return *p ? -1 : 0;
}

static int format_numbers(lsdm_record *r, const char *key, const double *v, int n) {
    char buf[64 * 17], *p = buf;
    for (int i = 0; i < n; i++) {
        if (!isfinite(v[i])) return lsdm_err("%s: non-finite value", key);
        /* the shortest form that reads back as the same double: 0.7, not 0.69999999999999996 */
        char one[32];
        for (int prec = 6; prec <= 17; prec++) { /* from %g's 6: -90, not -9e+01 */
            snprintf(one, sizeof one, "%.*g", prec, v[i]);
            if (strtod(one, NULL) == v[i]) break;
        }
        p += snprintf(p, sizeof buf - (size_t)(p - buf), "%s%s", i ? " " : "", one);
    }
    return lsdm_record_set(r, key, buf);
}

int lsdm_record_get_affine(const lsdm_record *r, double a[16]) {
    const char *s = lsdm_record_get(r, "affine");
    if (!s) return 0;
    if (parse_numbers(s, a, 16)) return lsdm_err("malformed affine '%.80s' (need 16 numbers)", s);
    return 1;
}
int lsdm_record_set_affine(lsdm_record *r, const double a[16]) { return format_numbers(r, "affine", a, 16); }

int lsdm_record_get_spacing(const lsdm_record *r, double sp[3]) {
    const char *s = lsdm_record_get(r, "spacing");
    if (!s) return 0;
    if (parse_numbers(s, sp, 3)) return lsdm_err("malformed spacing '%.80s' (need 3 numbers)", s);
    return 1;
}
int lsdm_record_set_spacing(lsdm_record *r, const double sp[3]) { return format_numbers(r, "spacing", sp, 3); }

void lsdm_labels_free(lsdm_labels *l) {
    for (int i = 0; i < l->n; i++) free(l->names[i]);
    free(l->ids);
    free(l->names);
    memset(l, 0, sizeof *l);
}

int lsdm_labels_parse(const char *s, lsdm_labels *out) {
    memset(out, 0, sizeof *out);
    int cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    out->ids = calloc((size_t)cap, sizeof *out->ids);
    out->names = calloc((size_t)cap, sizeof *out->names);
    if (!out->ids || !out->names) { lsdm_labels_free(out); return lsdm_err("out of memory"); }
    const char *p = s;
    while (*p) {
        const char *comma = strchr(p, ','), *end = comma ? comma : p + strlen(p);
        char *eq;
        long id = strtol(p, &eq, 10);
        if (eq == p || *eq != '=' || eq >= end || id < 0 || id > 65535) {
            lsdm_labels_free(out);
            return lsdm_err("malformed labels '%.80s' (need id=name,...)", s);
        }
        out->ids[out->n] = (int)id;
        out->names[out->n] = strndup(eq + 1, (size_t)(end - eq - 1));
        if (!out->names[out->n]) { lsdm_labels_free(out); return lsdm_err("out of memory"); }
        out->n++;
        p = comma ? comma + 1 : end;
    }
    return 0;
}

const char *lsdm_labels_name(const lsdm_labels *l, int id) {
    for (int i = 0; i < l->n; i++)
        if (l->ids[i] == id) return l->names[i];
    return NULL;
}

int lsdm_role_valid(const char *role) {
    static const char *const roles[] = {"image", "labels", "semantic", "latent", "features"};
    for (size_t i = 0; i < sizeof roles / sizeof *roles; i++)
        if (strcmp(role, roles[i]) == 0) return 1;
    return 0;
}

int lsdm_record_same_shape(const lsdm_record *a, const lsdm_record *b) {
    int ia = 0, ib = 0;
    while (ia < a->ndim - 1 && a->shape[ia] == 1) ia++;
    while (ib < b->ndim - 1 && b->shape[ib] == 1) ib++;
    if (a->ndim - ia != b->ndim - ib) return 0;
    for (; ia < a->ndim; ia++, ib++)
        if (a->shape[ia] != b->shape[ib]) return 0;
    return 1;
}

int lsdm_record_validate(const lsdm_record *r) {
    const char *name = lsdm_record_get(r, "name"), *role = lsdm_record_get(r, "role");
    if (!name || !*name) return lsdm_err("record has no name");
    if (!role) return lsdm_err("record '%.80s' has no role", name);
    if (!lsdm_role_valid(role))
        return lsdm_err("record '%.80s': unknown role '%.40s' (image, labels, semantic, latent, features)", name, role);
    size_t nbytes;
    if (lsdm_shape_bytes(r->ndim, r->shape, r->dtype, &nbytes)) return lsdm_err_ctx("record '%.80s'", name);
    if (nbytes != r->nbytes || (nbytes && !r->data)) return lsdm_err("record '%.80s': data size does not match shape", name);
    return 0;
}

int lsdm_shape_parse(const char *s, int *ndim, int64_t *shape) {
    int n = 0;
    const char *p = s;
    for (;;) {
        while (*p == ' ') p++;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno == ERANGE || v < 1) return lsdm_err("bad shape '%.80s'", s);
        if (n == LSDM_MAX_DIMS) return lsdm_err("shape '%.80s' has more than %d dims", s, LSDM_MAX_DIMS);
        shape[n++] = v;
        p = end;
        while (*p == ' ') p++;
        if (*p == 0) break;
        if (*p != ',' && *p != 'x') return lsdm_err("bad shape '%.80s'", s);
        p++;
    }
    *ndim = n;
    return 0;
}

void lsdm_shape_format(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%lld", i ? "," : "", (long long)shape[i]);
}
