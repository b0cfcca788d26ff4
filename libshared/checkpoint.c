/* Checkpoints: a model's named float tensors in a safetensors file; see checkpoint.h. */
#include "checkpoint.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "record.h"

int ckpt_meta_set(ckpt_meta *m, const char *key, const char *val) {
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->key[i], key) == 0) {
            char *v = strdup(val);
            if (!v) return lsdm_err("out of memory");
            free(m->val[i]);
            m->val[i] = v;
            return 0;
        }
    char **k = realloc(m->key, (size_t)(m->n + 1) * sizeof *k);
    if (k) m->key = k;
    char **v = realloc(m->val, (size_t)(m->n + 1) * sizeof *v);
    if (v) m->val = v;
    if (!k || !v) return lsdm_err("out of memory");
    m->key[m->n] = strdup(key);
    m->val[m->n] = strdup(val);
    if (!m->key[m->n] || !m->val[m->n]) {
        free(m->key[m->n]);
        free(m->val[m->n]);
        return lsdm_err("out of memory");
    }
    m->n++;
    return 0;
}

int ckpt_meta_setf(ckpt_meta *m, const char *key, const char *fmt, ...) {
    char v[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(v, sizeof v, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof v) return lsdm_err("metadata '%s': value too long", key);
    return ckpt_meta_set(m, key, v);
}

int ckpt_meta_copy(ckpt_meta *dst, const ckpt_meta *src) {
    for (int i = 0; src && i < src->n; i++)
        if (ckpt_meta_set(dst, src->key[i], src->val[i]) < 0) return -1;
    return 0;
}

const char *ckpt_meta_get(const ckpt_meta *m, const char *key) {
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->key[i], key) == 0) return m->val[i];
    return NULL;
}

void ckpt_meta_free(ckpt_meta *m) {
    for (int i = 0; i < m->n; i++) { free(m->key[i]); free(m->val[i]); }
    free(m->key);
    free(m->val);
    memset(m, 0, sizeof *m);
}

size_t ckpt_param_numel(const ckpt_param *p) {
    size_t n = 1;
    for (int i = 0; i < p->ndim; i++) n *= (size_t)p->shape[i];
    return n;
}

int checkpoint_save(const char *path, const ckpt_param *p, int n, const ckpt_meta *meta, st_dtype dtype) {
    if (dtype != ST_F32 && dtype != ST_F16 && dtype != ST_BF16)
        return lsdm_err("checkpoint %s: cannot store parameters as %s", path, st_dtype_name(dtype));
    st_entry *e = calloc((size_t)(n > 0 ? n : 1), sizeof *e);
    const char **kv = calloc((size_t)(meta ? 2 * meta->n + 1 : 1), sizeof *kv);
    if (!e || !kv) { free(e); free(kv); return lsdm_err("out of memory"); }
    for (int i = 0; i < n; i++)
        e[i] = (st_entry){.name = p[i].name, .dtype = dtype, .ndim = p[i].ndim, .shape = p[i].shape,
                          .from_f32 = p[i].data};
    for (int i = 0; meta && i < meta->n; i++) { kv[2 * i] = meta->key[i]; kv[2 * i + 1] = meta->val[i]; }
    int rc = safetensors_write(path, e, n, kv, meta ? meta->n : 0);
    free(e);
    free(kv);
    return rc < 0 ? lsdm_err_ctx("checkpoint") : 0;
}

/* "16,1,3,3,3", or "()" for a scalar. */
static void ckpt_shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    if (ndim == 0) snprintf(buf, n, "()");
    else lsdm_shape_format(buf, n, ndim, shape);
}

/* 0 if t can fill p, else -1 with the message naming both shapes. */
static int ckpt_check(const char *path, const st_tensor *t, const ckpt_param *p) {
    char got[160], want[160];
    int same = t->ndim == p->ndim;
    for (int i = 0; same && i < p->ndim; i++) same = t->shape[i] == p->shape[i];
    if (!same) {
        ckpt_shape_str(got, sizeof got, t->ndim, t->shape);
        ckpt_shape_str(want, sizeof want, p->ndim, p->shape);
        return lsdm_err("checkpoint %s: tensor '%s' has shape %s, model expects %s", path, p->name, got, want);
    }
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16 && t->dtype != ST_F64)
        return lsdm_err("checkpoint %s: tensor '%s' has dtype %s, model expects a float tensor (F32, F16, BF16)",
                        path, p->name, st_dtype_name(t->dtype));
    return 0;
}

int checkpoint_load(const char *path, const ckpt_param *p, int n, ckpt_meta *meta) {
    st_file f;
    if (safetensors_open(&f, path) < 0) return lsdm_err_ctx("checkpoint");
    int rc = 0;
    /* validate everything before touching the model */
    for (int i = 0; rc == 0 && i < n; i++) {
        const st_tensor *t = safetensors_find(&f, p[i].name);
        if (!t) rc = lsdm_err("checkpoint %s: tensor '%s' is missing (the model needs it)", path, p[i].name);
        else rc = ckpt_check(path, t, &p[i]);
    }
    for (int j = 0; rc == 0 && j < f.n; j++) {
        int known = 0;
        /* a trainer's state (optimizer moments) is not part of the model */
        known = strncmp(f.t[j].name, CKPT_TRAIN_PREFIX, strlen(CKPT_TRAIN_PREFIX)) == 0;
        for (int i = 0; !known && i < n; i++) known = strcmp(p[i].name, f.t[j].name) == 0;
        if (!known) rc = lsdm_err("checkpoint %s: unexpected tensor '%s' (not in the model)", path, f.t[j].name);
    }
    for (int i = 0; rc == 0 && i < n; i++) rc = safetensors_read_f32(&f, safetensors_find(&f, p[i].name), p[i].data);
    if (rc == 0 && meta) {
        memset(meta, 0, sizeof *meta);
        for (int i = 0; rc == 0 && i < f.nmeta; i++) rc = ckpt_meta_set(meta, f.meta_key[i], f.meta_val[i]);
        if (rc < 0) ckpt_meta_free(meta);
    }
    safetensors_close(&f);
    return rc;
}

/* Tensors named with one of the drop prefixes stay behind; the rest, in
 * their own dtype, and all metadata go to out (atomically). */
int checkpoint_export(const char *in, const char *out, const char *const *drop, int ndrop) {
    st_file f;
    if (safetensors_open(&f, in) < 0) return lsdm_err_ctx("checkpoint");
    st_entry *e = calloc((size_t)(f.n > 0 ? f.n : 1), sizeof *e);
    const char **kv = calloc((size_t)(2 * f.nmeta + 1), sizeof *kv);
    int rc = e && kv ? 0 : lsdm_err("out of memory");
    int n = 0;
    for (int i = 0; !rc && i < f.n; i++) {
        const st_tensor *t = &f.t[i];
        int keep = 1;
        for (int k = 0; k < ndrop && keep; k++) keep = strncmp(t->name, drop[k], strlen(drop[k])) != 0;
        if (keep)
            e[n++] = (st_entry){.name = t->name, .dtype = t->dtype, .ndim = t->ndim, .shape = t->shape,
                                .data = safetensors_data(&f, t)};
    }
    for (int i = 0; i < f.nmeta && kv; i++) kv[2 * i] = f.meta_key[i], kv[2 * i + 1] = f.meta_val[i];
    if (!rc && safetensors_write(out, e, n, kv, f.nmeta) < 0) rc = lsdm_err_ctx("checkpoint");
    free(e);
    free(kv);
    safetensors_close(&f);
    return rc;
}
