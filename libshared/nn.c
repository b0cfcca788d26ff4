/* Tensors, parameters, the caching allocator and the tape (nn.h). The
 * layer ops are in nn_ops.c. */
#include "nn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "rng.h"

/* ---- parameters ---- */

nn_param *nn_param_new(nn_params *ps, const char *prefix, const char *suffix,
                       int ndim, const int64_t *shape, int buffer) {
    if (ps->n == ps->cap) {
        int cap = ps->cap ? 2 * ps->cap : 64;
        nn_param **p = realloc(ps->p, (size_t)cap * sizeof *p);
        if (!p) return lsdm_err("out of memory"), NULL;
        ps->p = p;
        ps->cap = cap;
    }
    nn_param *p = calloc(1, sizeof *p);
    if (!p) return lsdm_err("out of memory"), NULL;
    if ((size_t)snprintf(p->name, sizeof p->name, "%s%s", prefix, suffix) >= sizeof p->name) {
        free(p);
        return lsdm_err("parameter name too long: %s%s", prefix, suffix), NULL;
    }
    p->ndim = ndim;
    p->n = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->n *= (size_t)shape[i];
    }
    p->buffer = buffer;
    p->data = calloc(p->n, sizeof(float));
    if (!p->data) {
        free(p);
        return lsdm_err("out of memory for %s", p->name), NULL;
    }
    ps->p[ps->n++] = p;
    return p;
}

nn_param *nn_params_find(const nn_params *ps, const char *name) {
    for (int i = 0; i < ps->n; i++)
        if (!strcmp(ps->p[i]->name, name)) return ps->p[i];
    return NULL;
}

size_t nn_params_count(const nn_params *ps, int with_buffers) {
    size_t n = 0;
    for (int i = 0; i < ps->n; i++)
        if (with_buffers || !ps->p[i]->buffer) n += ps->p[i]->n;
    return n;
}

int nn_params_alloc_grads(nn_params *ps) {
    for (int i = 0; i < ps->n; i++) {
        nn_param *p = ps->p[i];
        if (p->buffer || p->grad) continue;
        p->grad = calloc(p->n, sizeof(float));
        if (!p->grad) return lsdm_err("out of memory for gradients");
    }
    return 0;
}

void nn_params_zero_grads(nn_params *ps) {
    for (int i = 0; i < ps->n; i++)
        if (ps->p[i]->grad) memset(ps->p[i]->grad, 0, ps->p[i]->n * sizeof(float));
}

void nn_params_freeze(nn_params *ps, int frozen) {
    for (int i = 0; i < ps->n; i++) ps->p[i]->frozen = frozen;
}

int nn_params_grads(const nn_params *ps, float **data, float **grad, size_t *n) {
    int k = 0;
    for (int i = 0; i < ps->n; i++) {
        nn_param *p = ps->p[i];
        if (p->buffer || !p->grad) continue;
        data[k] = p->data, grad[k] = p->grad, n[k] = p->n;
        k++;
    }
    return k;
}

void nn_params_free(nn_params *ps) {
    for (int i = 0; i < ps->n; i++) {
        free(ps->p[i]->data);
        free(ps->p[i]->grad);
        free(ps->p[i]);
    }
    free(ps->p);
    memset(ps, 0, sizeof *ps);
}

ckpt_param *nn_params_ckpt(const nn_params *ps, const char *prefix_filter, int *count) {
    ckpt_param *v = calloc(ps->n ? (size_t)ps->n : 1, sizeof *v);
    if (!v) return lsdm_err("out of memory"), NULL;
    int k = 0;
    size_t lp = prefix_filter ? strlen(prefix_filter) : 0;
    for (int i = 0; i < ps->n; i++) {
        const nn_param *p = ps->p[i];
        if (lp && strncmp(p->name, prefix_filter, lp)) continue;
        v[k].name = p->name;
        v[k].ndim = p->ndim;
        for (int j = 0; j < p->ndim; j++) v[k].shape[j] = p->shape[j];
        v[k].data = p->data;
        k++;
    }
    *count = k;
    return v;
}

void nn_init_uniform(nn_param *p, float bound, uint64_t seed, uint64_t stream) {
    lsdm_rng_fill_uniform(p->data, p->n, seed, stream, 0);
    for (size_t i = 0; i < p->n; i++) p->data[i] = (2 * p->data[i] - 1) * bound;
}

void nn_init_const(nn_param *p, float v) {
    for (size_t i = 0; i < p->n; i++) p->data[i] = v;
}

/* ---- caching allocator ---- */

struct nn_block {
    void *ptr;
    size_t size;
    int used;
};

struct nn_range {
    size_t off, size;
};

static void blocks_trim(nn_ctx *c);

/* items with room for one more than n (doubling from 256), or NULL with
 * items and *cap unchanged. */
static void *grow_array(void *items, int *cap, int n, size_t item_size) {
    if (n < *cap) return items;
    int c2 = *cap ? 2 * *cap : 256;
    void *p = realloc(items, (size_t)c2 * item_size);
    if (p) *cap = c2;
    return p;
}

static void note_use(nn_ctx *c, size_t bytes) {
    c->bytes_in_use += bytes;
    if (c->bytes_in_use > c->bytes_peak) c->bytes_peak = c->bytes_in_use;
}

/* Inference's slab. A forward frees each activation as soon as it is used,
 * so the sizes it holds at once vary from op to op; blocks cached by size
 * and trimmed to the peak kept missing (a DDIM step mapped, and the kernel
 * zeroed, gigabytes afresh: a quarter of the sampler's time at f 2). One
 * buffer handed out best-fit holds a forward in about its peak, and a
 * repeated forward (the next step, the next tile) maps nothing. */
static void *slab_take(nn_ctx *c, size_t bytes) {
    if (!c->slab) return NULL;
    nn_range *r = grow_array(c->ranges, &c->cap_ranges, c->nranges, sizeof *r);
    if (!r) return NULL;
    c->ranges = r;
    size_t at = 0, best_gap = (size_t)-1, best_at = 0;
    int best = -1;
    for (int i = 0; i <= c->nranges; i++) {
        size_t end = i < c->nranges ? c->ranges[i].off : c->slab_size;
        size_t gap = end - at;
        if (gap >= bytes && gap < best_gap) best_gap = gap, best_at = at, best = i;
        if (i < c->nranges) at = c->ranges[i].off + c->ranges[i].size;
    }
    if (best < 0) return NULL;
    memmove(&c->ranges[best + 1], &c->ranges[best], (size_t)(c->nranges - best) * sizeof *c->ranges);
    c->ranges[best] = (nn_range){best_at, bytes};
    c->nranges++;
    return c->slab + best_at;
}

static int slab_give(nn_ctx *c, void *p) {
    if (!c->slab || (char *)p < c->slab || (char *)p >= c->slab + c->slab_size) return 0;
    size_t off = (size_t)((char *)p - c->slab);
    int lo = 0, hi = c->nranges - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (c->ranges[mid].off == off) {
            c->bytes_in_use -= c->ranges[mid].size;
            memmove(&c->ranges[mid], &c->ranges[mid + 1],
                    (size_t)(c->nranges - mid - 1) * sizeof *c->ranges);
            c->nranges--;
            return 1;
        }
        if (c->ranges[mid].off < off) lo = mid + 1;
        else hi = mid - 1;
    }
    return 1; /* inside the slab but not live: released already */
}

/* With the slab empty, a miss seen since it was made and one whole forward
 * seen (its peak is known): a new slab for that peak less what is held
 * elsewhere now, 1/8 more for the gaps that best-fit leaves, and at least
 * 1/8 more than the old one. Not while what is in use is most of the peak:
 * a context whose tensors all stay (cached features) would hold them twice.
 * A single forward keeps to blocks, as before: no slab sized from half a
 * pass beside the blocks of the other half. */
static void slab_regrow(nn_ctx *c) {
    size_t want = c->bytes_peak > c->bytes_in_use ? c->bytes_peak - c->bytes_in_use : 0;
    if (!c->resets || want < c->slab_missed) return;
    want += want / 8;
    if (want < c->slab_size + c->slab_size / 8) want = c->slab_size + c->slab_size / 8;
    want = (want + 63) & ~(size_t)63;
    free(c->slab);
    c->bytes_held -= c->slab_size;
    c->slab = NULL;
    c->slab_size = 0;
    c->slab_missed = 0;
    blocks_trim(c); /* the blocks that stood in for it */
    c->slab = aligned_alloc(64, want);
    if (c->slab) {
        c->slab_size = want;
        c->bytes_held += want;
        c->allocs++;
    }
}

static void *ctx_alloc(nn_ctx *c, size_t bytes) {
    if (bytes == 0) bytes = 64;
    bytes = (bytes + 63) & ~(size_t)63;
    if (!c->record) {
        if (c->nranges == 0 && c->slab_missed) slab_regrow(c);
        void *p = slab_take(c, bytes);
        if (p) {
            note_use(c, bytes);
            return p;
        }
        if (bytes > c->slab_missed) c->slab_missed = bytes;
    }
    for (int i = 0; i < c->nblocks; i++) {
        nn_block *b = &c->blocks[i];
        if (!b->used && b->size == bytes) {
            b->used = 1;
            note_use(c, bytes);
            return b->ptr;
        }
    }
    nn_block *blocks = grow_array(c->blocks, &c->cap_blocks, c->nblocks, sizeof *blocks);
    if (!blocks) goto fail;
    c->blocks = blocks;
    /* A miss. Training keeps its cache: trimming here would make the next
     * step miss too, one size after another, and a step repeats the same
     * sizes. Inference gives back what is cached but unused only when
     * keeping it would hold more than the peak in use so far (these blocks
     * stand in for the slab until it is regrown). */
    size_t need = c->bytes_in_use + bytes > c->bytes_peak ? c->bytes_in_use + bytes : c->bytes_peak;
    if (!c->record && c->bytes_held + bytes > need) blocks_trim(c);
    void *p = aligned_alloc(64, bytes);
    if (!p) {
        nn_ctx_trim(c);
        p = aligned_alloc(64, bytes);
        if (!p) goto fail;
    }
    c->blocks[c->nblocks++] = (nn_block){p, bytes, 1};
    c->allocs++;
    c->bytes_held += bytes;
    note_use(c, bytes);
    return p;
fail:
    if (!c->failed) lsdm_err("out of memory (%zu MiB more needed, %zu MiB in use)",
                             bytes >> 20, c->bytes_in_use >> 20);
    c->failed = 1;
    return NULL;
}

static void ctx_release(nn_ctx *c, void *p) {
    if (!p || slab_give(c, p)) return;
    for (int i = c->nblocks - 1; i >= 0; i--) {
        nn_block *b = &c->blocks[i];
        if (b->ptr != p) continue;
        if (b->used) c->bytes_in_use -= b->size;
        b->used = 0;
        /* a block that stood in for a slab too small: the slab serves now */
        if (!c->record && c->slab) {
            free(b->ptr);
            c->bytes_held -= b->size;
            *b = c->blocks[--c->nblocks];
        }
        return;
    }
}

static void blocks_trim(nn_ctx *c) {
    int k = 0;
    for (int i = 0; i < c->nblocks; i++) {
        if (c->blocks[i].used) {
            c->blocks[k++] = c->blocks[i];
        } else {
            free(c->blocks[i].ptr);
            c->bytes_held -= c->blocks[i].size;
        }
    }
    c->nblocks = k;
}

void nn_ctx_trim(nn_ctx *c) {
    blocks_trim(c);
    if (c->slab && c->nranges == 0) {
        free(c->slab);
        c->bytes_held -= c->slab_size;
        c->slab = NULL;
        c->slab_size = 0;
    }
}

float *nn_scratch(nn_ctx *c, size_t floats) { return ctx_alloc(c, floats * sizeof(float)); }
void nn_scratch_free(nn_ctx *c, float *p) { ctx_release(c, p); }

/* ---- the context ---- */

void nn_ctx_init(nn_ctx *c, int record) {
    memset(c, 0, sizeof *c);
    c->record = record;
}

static void tensor_release(nn_ctx *c, nn_tensor *t) {
    if (!t->view) ctx_release(c, t->data);
    ctx_release(c, t->grad);
    free(t);
}

void nn_ctx_reset(nn_ctx *c) {
    for (int i = 0; i < c->ntensors; i++)
        if (c->tensors[i]) tensor_release(c, c->tensors[i]);
    c->ntensors = 0;
    c->nnodes = 0;
    c->args_len = 0;
    c->failed = 0;
    c->resets++;
}

void nn_ctx_free(nn_ctx *c) {
    nn_ctx_reset(c);
    nn_ctx_trim(c);
    free(c->blocks);
    free(c->ranges);
    free(c->tensors);
    free(c->nodes);
    free(c->args);
    memset(c, 0, sizeof *c);
}

int nn_ctx_status(const nn_ctx *c) {
    return c->failed ? -1 : 0;
}

static nn_tensor *tensor_struct(nn_ctx *c, int N, int C, int D, int H, int W) {
    if (c->failed) return NULL;
    nn_tensor **ts = grow_array(c->tensors, &c->cap_tensors, c->ntensors, sizeof *ts);
    if (!ts) {
        lsdm_err("out of memory");
        c->failed = 1;
        return NULL;
    }
    c->tensors = ts;
    nn_tensor *t = calloc(1, sizeof *t);
    if (!t) {
        lsdm_err("out of memory");
        c->failed = 1;
        return NULL;
    }
    t->N = N, t->C = C, t->D = D, t->H = H, t->W = W;
    t->n = (size_t)N * C * D * H * W;
    c->tensors[c->ntensors++] = t;
    return t;
}

nn_tensor *nn_tensor_new(nn_ctx *c, int N, int C, int D, int H, int W) {
    nn_tensor *t = tensor_struct(c, N, C, D, H, W);
    if (!t) return NULL;
    t->data = ctx_alloc(c, t->n * sizeof(float));
    if (!t->data) return NULL;
    return t;
}

nn_tensor *nn_tensor_wrap(nn_ctx *c, float *data, int N, int C, int D, int H, int W) {
    nn_tensor *t = tensor_struct(c, N, C, D, H, W);
    if (!t) return NULL;
    t->data = data;
    t->view = 1;
    return t;
}

nn_tensor *nn_detach(nn_ctx *c, nn_tensor *x) {
    nn_tensor *t = nn_tensor_wrap(c, x->data, x->N, x->C, x->D, x->H, x->W);
    return t;
}

float *nn_grad(nn_ctx *c, nn_tensor *t) {
    if (!t->grad) {
        t->grad = ctx_alloc(c, t->n * sizeof(float));
        if (t->grad) memset(t->grad, 0, t->n * sizeof(float));
    }
    return t->grad;
}

void nn_drop(nn_ctx *c, nn_tensor *t) {
    if (c->record || !t) return;
    for (int i = c->ntensors - 1; i >= 0; i--) {
        if (c->tensors[i] == t) {
            tensor_release(c, t);
            c->tensors[i] = c->tensors[--c->ntensors];
            return;
        }
    }
}

/* ---- the tape ---- */

void nn_tape_push(nn_ctx *c, nn_backward_fn fn, const void *args, size_t size) {
    if (!c->record || c->failed) return;
    size_t off = (c->args_len + 15) & ~(size_t)15;
    if (off + size > c->args_cap) {
        size_t cap = c->args_cap ? 2 * c->args_cap : 1 << 16;
        while (cap < off + size) cap *= 2;
        unsigned char *a = realloc(c->args, cap);
        if (!a) goto fail;
        c->args = a;
        c->args_cap = cap;
    }
    void *nodes = grow_array(c->nodes, &c->cap_nodes, c->nnodes, sizeof *c->nodes);
    if (!nodes) goto fail;
    c->nodes = nodes;
    memcpy(c->args + off, args, size);
    c->args_len = off + size;
    c->nodes[c->nnodes].fn = fn;
    c->nodes[c->nnodes].off = off;
    c->nnodes++;
    return;
fail:
    lsdm_err("out of memory for the tape");
    c->failed = 1;
}

void nn_tape_clear(nn_ctx *c) {
    c->nnodes = 0;
    c->args_len = 0;
}

void nn_backward(nn_ctx *c) {
    for (int i = c->nnodes - 1; i >= 0 && !c->failed; i--)
        c->nodes[i].fn(c, c->args + c->nodes[i].off);
}
