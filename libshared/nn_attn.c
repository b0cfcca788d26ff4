/* The UNet's nn ops (nn_attn.h): forwards through the kernels and, when
 * recording, tape nodes that call their backwards. */
#include "nn_attn.h"

#include <math.h>
#include <string.h>

#include "err.h"
#include "../kernels/attention.h"
#include "../kernels/elementwise.h"
#include "../kernels/layernorm.h"
#include "../kernels/linear.h"
#include "../kernels/linear_attention.h"
#include "../kernels/timestep_embedding.h"

static nn_tensor *fail(nn_ctx *c) {
    c->failed = 1;
    return NULL;
}

static float *pgrad(const nn_param *p) {
    return p && !p->frozen ? p->grad : NULL;
}

static float *tgrad(nn_ctx *c, nn_tensor *t) {
    return t->needs_grad ? nn_grad(c, t) : NULL;
}

/* A zero-filled scratch buffer of n floats (NULL: c->failed). */
static float *zeros(nn_ctx *c, size_t n) {
    float *p = nn_scratch(c, n);
    if (p) memset(p, 0, n * sizeof *p);
    return p;
}

/* ---- linear ---- */

int nn_linear_init(nn_linear *l, nn_params *ps, const char *name, int IC, int OC, int bias) {
    memset(l, 0, sizeof *l);
    int64_t sh[2] = {OC, IC}, nb = OC;
    if (!(l->w = nn_param_new(ps, name, ".weight", 2, sh, 0))) return -1;
    if (bias && !(l->b = nn_param_new(ps, name, ".bias", 1, &nb, 0))) return -1;
    l->IC = IC, l->OC = OC;
    return 0;
}

typedef struct {
    const nn_linear *l;
    nn_tensor *x, *y;
} dense_args;

static void dense_back(void *ctx, void *args) {
    nn_ctx *c = ctx;
    dense_args *a = args;
    if (!a->y->grad) return;
    linear_backward(tgrad(c, a->x), pgrad(a->l->w), pgrad(a->l->b), a->y->grad, a->x->data,
                    a->l->w->data, a->x->N, a->l->IC, a->l->OC);
}

nn_tensor *nn_dense(nn_ctx *c, const nn_linear *l, nn_tensor *x) {
    if (!x) return NULL;
    if (x->n != (size_t)x->N * l->IC) {
        lsdm_err("%s: input has %zu values per sample, the layer takes %d", l->w->name,
                 x->n / (size_t)x->N, l->IC);
        return fail(c);
    }
    nn_tensor *y = nn_tensor_new(c, x->N, l->OC, 1, 1, 1);
    if (!y) return NULL;
    linear_forward(y->data, x->data, l->w->data, l->b ? l->b->data : NULL, x->N, l->IC, l->OC);
    if (c->record && (x->needs_grad || pgrad(l->w))) {
        y->needs_grad = 1;
        dense_args a = {l, x, y};
        nn_tape_push(c, dense_back, &a, sizeof a);
    }
    return y;
}

/* ---- timestep embedding ---- */

nn_tensor *nn_timestep_emb(nn_ctx *c, const float *t, int N, int dim) {
    nn_tensor *y = nn_tensor_new(c, N, dim, 1, 1, 1);
    if (y) timestep_embedding_forward(y->data, t, N, dim);
    return y;
}

/* ---- per-sample scale and shift ---- */

typedef struct {
    nn_tensor *x, *ss, *y, *scale;
} ss_args;

static void ss_back(void *ctx, void *args) {
    nn_ctx *c = ctx;
    ss_args *a = args;
    if (!a->y->grad) return;
    int N = a->x->N, C = a->x->C, S = a->x->D * a->x->H * a->x->W;
    float *dss = tgrad(c, a->ss);
    float *dsc = dss ? zeros(c, 2 * (size_t)N * C) : NULL, *dsh = dsc ? dsc + (size_t)N * C : NULL;
    if (dss && !dsc) return;
    scale_shift_backward(tgrad(c, a->x), dsc, dsh, a->y->grad, a->x->data, a->scale->data, N, C,
                         S, 1);
    if (dss) {
        slice_backward(dss, dsc, N, 2 * C, 0, C, 1);
        slice_backward(dss, dsh, N, 2 * C, C, C, 1);
    }
    nn_scratch_free(c, dsc);
}

nn_tensor *nn_scale_shift(nn_ctx *c, nn_tensor *x, nn_tensor *ss) {
    if (!x || !ss) return NULL;
    int N = x->N, C = x->C;
    if (ss->N != N || ss->n != 2 * (size_t)N * C) {
        lsdm_err("scale_shift: %zu values for %d samples of %d channels", ss->n, N, C);
        return fail(c);
    }
    /* scale and shift as (N,C) each: the kernel's per-sample layout */
    nn_tensor *sc = nn_tensor_new(c, N, 2 * C, 1, 1, 1);
    if (!sc) return NULL;
    float *sh = sc->data + (size_t)N * C;
    slice_forward(sc->data, ss->data, N, 2 * C, 0, C, 1);
    slice_forward(sh, ss->data, N, 2 * C, C, C, 1);
    int rec = c->record && (x->needs_grad || ss->needs_grad);
    nn_tensor *y = c->record ? nn_tensor_new(c, N, C, x->D, x->H, x->W) : x;
    if (!y) return NULL;
    scale_shift_forward(y->data, x->data, sc->data, sh, N, C, x->D * x->H * x->W, 1);
    if (rec) {
        y->needs_grad = 1;
        ss_args a = {x, ss, y, sc};
        nn_tape_push(c, ss_back, &a, sizeof a);
    } else {
        nn_drop(c, sc);
    }
    return y;
}

/* ---- concatenation along channels ---- */

typedef struct {
    nn_tensor *a, *b, *y;
} cat_args;

static void cat_back(void *ctx, void *args) {
    nn_ctx *c = ctx;
    cat_args *a = args;
    if (!a->y->grad) return;
    concat_backward(tgrad(c, a->a), tgrad(c, a->b), a->y->grad, a->a->N, a->a->C, a->b->C,
                    a->a->D * a->a->H * a->a->W);
}

nn_tensor *nn_concat(nn_ctx *c, nn_tensor *a, nn_tensor *b) {
    if (!a || !b) return NULL;
    if (a->N != b->N || a->D != b->D || a->H != b->H || a->W != b->W) {
        lsdm_err("concat: shapes %dx%dx%dx%dx%d and %dx%dx%dx%dx%d differ", a->N, a->C, a->D,
                 a->H, a->W, b->N, b->C, b->D, b->H, b->W);
        return fail(c);
    }
    nn_tensor *y = nn_tensor_new(c, a->N, a->C + b->C, a->D, a->H, a->W);
    if (!y) return NULL;
    concat_forward(y->data, a->data, b->data, a->N, a->C, b->C, a->D * a->H * a->W);
    if (c->record && (a->needs_grad || b->needs_grad)) {
        y->needs_grad = 1;
        cat_args g = {a, b, y};
        nn_tape_push(c, cat_back, &g, sizeof g);
    }
    return y;
}

/* ---- channel LayerNorm ---- */

typedef struct {
    const nn_param *gamma;
    nn_tensor *x, *y, *st;
} ln_args;

static void ln_back(void *ctx, void *args) {
    nn_ctx *c = ctx;
    ln_args *a = args;
    if (!a->y->grad) return;
    long S = (long)a->x->D * a->x->H * a->x->W;
    chan_layernorm_backward(tgrad(c, a->x), pgrad(a->gamma), a->y->grad, a->x->data,
                            a->gamma->data, a->st->data, a->st->data + (size_t)a->x->N * S,
                            a->x->N, a->x->C, S);
}

nn_tensor *nn_chan_layernorm(nn_ctx *c, const nn_param *gamma, nn_tensor *x, float eps) {
    if (!x) return NULL;
    if (gamma->n != (size_t)x->C) {
        lsdm_err("%s: input has %d channels, the norm takes %zu", gamma->name, x->C, gamma->n);
        return fail(c);
    }
    long S = (long)x->D * x->H * x->W;
    int rec = c->record && (x->needs_grad || pgrad(gamma));
    nn_tensor *y = nn_tensor_new(c, x->N, x->C, x->D, x->H, x->W);
    nn_tensor *st = rec && y ? nn_tensor_new(c, 1, 1, 1, 2, x->N * (int)S) : NULL;
    if (!y || (rec && !st)) return NULL;
    chan_layernorm_forward(y->data, st ? st->data : NULL, st ? st->data + (size_t)x->N * S : NULL,
                           x->data, gamma->data, x->N, x->C, S, eps);
    if (rec) {
        y->needs_grad = 1;
        ln_args a = {gamma, x, y, st};
        nn_tape_push(c, ln_back, &a, sizeof a);
    }
    return y;
}

/* ---- relative position bias ---- */

typedef struct {
    const nn_param *table;
    nn_tensor *y;
    int heads, L, nb, md;
} rpb_args;

static void rpb_back(void *ctx, void *args) {
    (void)ctx;
    rpb_args *a = args;
    float *dt = pgrad(a->table);
    if (a->y->grad && dt) relpos_bias_backward(dt, a->y->grad, a->heads, a->L, a->nb, a->md);
}

nn_tensor *nn_relpos_bias(nn_ctx *c, const nn_param *table, int heads, int L, int num_buckets,
                          int max_distance) {
    if (table->n != (size_t)num_buckets * heads) {
        lsdm_err("%s: %zu values, want %d buckets x %d heads", table->name, table->n, num_buckets,
                 heads);
        return fail(c);
    }
    nn_tensor *y = nn_tensor_new(c, 1, heads, L, L, 1);
    if (!y) return NULL;
    relpos_bias_forward(y->data, table->data, heads, L, num_buckets, max_distance);
    if (c->record && pgrad(table)) {
        y->needs_grad = 1;
        rpb_args a = {table, y, heads, L, num_buckets, max_distance};
        nn_tape_push(c, rpb_back, &a, sizeof a);
    }
    return y;
}

/* ---- softmax attention on volumes ---- */

/* The permutations between the volume layout and the kernel's
 * (batch, head, L, dh), see kernels/attention.h permute_forward. */
typedef struct {
    int in[6], pin[6];   /* qkv as (N, 3, heads, dh, D, HW) -> (3, N, X, heads, L, dh) */
    int out[5], pout[5]; /* out (N, X, heads, L, dh) -> (N, heads, dh, D, HW) */
    int B, L;            /* kernel batch N*X, sequence length */
} attn_layout;

static void attn_layout_init(attn_layout *p, const nn_tensor *qkv, int heads, int dh, int mode) {
    int N = qkv->N, D = qkv->D, HW = qkv->H * qkv->W, X = mode == NN_ATTN_DEPTH ? HW : D;
    static const int pin_t[6] = {1, 0, 5, 2, 4, 3}, pin_s[6] = {1, 0, 4, 2, 5, 3};
    static const int pout_t[5] = {0, 2, 4, 3, 1}, pout_s[5] = {0, 2, 4, 1, 3};
    int in[6] = {N, 3, heads, dh, D, HW};
    p->L = mode == NN_ATTN_DEPTH ? D : HW;
    int out[5] = {N, X, heads, p->L, dh};
    memcpy(p->in, in, sizeof in);
    memcpy(p->out, out, sizeof out);
    memcpy(p->pin, mode == NN_ATTN_DEPTH ? pin_t : pin_s, sizeof p->pin);
    memcpy(p->pout, mode == NN_ATTN_DEPTH ? pout_t : pout_s, sizeof p->pout);
    p->B = N * X;
}

typedef struct {
    nn_tensor *qkv, *bias, *y, *P, *att;
    const float *cs;
    attn_layout lay;
    int heads, dh, rot;
    float scale;
} attn_args;

static void attn_back(void *ctx, void *args) {
    nn_ctx *c = ctx;
    attn_args *a = args;
    if (!a->y->grad) return;
    size_t n3 = a->y->n;
    int B = a->lay.B, H = a->heads, L = a->lay.L, dh = a->dh;
    float *dqkv = tgrad(c, a->qkv), *dbias = a->bias ? tgrad(c, a->bias) : NULL;
    if (!dqkv && !dbias) return;
    float *dout = nn_scratch(c, n3), *dP = zeros(c, 3 * n3);
    float *work = nn_scratch(c, attention_workspace_size(B, H, L));
    float *dR = a->rot && dqkv ? zeros(c, 2 * n3) : NULL;
    if (!dout || !dP || !work || (a->rot && dqkv && !dR)) goto done;
    /* the output's gradient in the kernel layout */
    memset(dout, 0, n3 * sizeof *dout);
    permute_backward(dout, a->y->grad, 5, a->lay.out, a->lay.pout);
    const float *P = a->P->data;
    attention_backward(dP, dP + n3, dP + 2 * n3, dbias, work, dout, P, P + n3, P + 2 * n3,
                       a->att->data, B, H, L, dh, a->scale);
    if (dqkv) {
        if (dR) { /* q and k were rotated: rotate their gradients back */
            rotary_backward(dR, dP, a->cs, B * H, L, dh, a->rot);
            rotary_backward(dR + n3, dP + n3, a->cs, B * H, L, dh, a->rot);
            memcpy(dP, dR, 2 * n3 * sizeof *dP);
        }
        permute_backward(dqkv, dP, 6, a->lay.in, a->lay.pin);
    }
done:
    nn_scratch_free(c, dR);
    nn_scratch_free(c, work);
    nn_scratch_free(c, dP);
    nn_scratch_free(c, dout);
}

nn_tensor *nn_attention(nn_ctx *c, nn_tensor *qkv, int heads, int dh, int mode, nn_tensor *bias,
                        const float *cs, int rot_dim, float scale) {
    if (!qkv) return NULL;
    if (qkv->C != 3 * heads * dh || (rot_dim && (!cs || rot_dim > dh || rot_dim % 2))) {
        lsdm_err("attention: %d channels for 3 x %d heads x %d, rotary %d", qkv->C, heads, dh,
                 rot_dim);
        return fail(c);
    }
    attn_layout lay;
    attn_layout_init(&lay, qkv, heads, dh, mode);
    int B = lay.B, L = lay.L;
    if (bias && bias->n != (size_t)heads * L * L) {
        lsdm_err("attention: bias of %zu values for %d heads of length %d", bias->n, heads, L);
        return fail(c);
    }
    size_t n3 = qkv->n / 3;
    nn_tensor *P = nn_tensor_new(c, 3, B, heads, L, dh);
    nn_tensor *att = P ? nn_tensor_new(c, B, heads, L, L, 1) : NULL;
    nn_tensor *o = att ? nn_tensor_new(c, B, heads, L, dh, 1) : NULL;
    nn_tensor *y = o ? nn_tensor_new(c, qkv->N, heads * dh, qkv->D, qkv->H, qkv->W) : NULL;
    if (!y) return NULL;
    permute_forward(P->data, qkv->data, 6, lay.in, lay.pin);
    if (rot_dim) { /* in place: the rotated q and k are what the backward needs */
        rotary_forward(P->data, P->data, cs, B * heads, L, dh, rot_dim);
        rotary_forward(P->data + n3, P->data + n3, cs, B * heads, L, dh, rot_dim);
    }
    attention_forward(o->data, att->data, P->data, P->data + n3, P->data + 2 * n3,
                      bias ? bias->data : NULL, B, heads, L, dh, scale);
    permute_forward(y->data, o->data, 5, lay.out, lay.pout);
    nn_drop(c, o);
    if (c->record && (qkv->needs_grad || (bias && bias->needs_grad))) {
        y->needs_grad = 1;
        attn_args a = {qkv, bias, y, P, att, cs, lay, heads, dh, rot_dim, scale};
        nn_tape_push(c, attn_back, &a, sizeof a);
    } else {
        nn_drop(c, att);
        nn_drop(c, P);
    }
    return y;
}

/* ---- linear attention ---- */

typedef struct {
    nn_tensor *qkv, *y, *qs, *ks, *ctx;
    int heads, dh;
    float scale;
} lattn_args;

static void lattn_back(void *ctx, void *args) {
    nn_ctx *c = ctx;
    lattn_args *a = args;
    if (!a->y->grad || !a->qkv->needs_grad) return;
    nn_tensor *q = a->qkv;
    int N = q->N, F = q->D, S = q->H * q->W;
    float *dqkv = nn_grad(c, q);
    float *work = nn_scratch(c, linear_attention_workspace_size(N, a->heads, a->dh, F, S));
    if (dqkv && work)
        linear_attention_backward(dqkv, work, a->y->grad, q->data, a->qs->data, a->ks->data,
                                  a->ctx->data, N, a->heads, a->dh, F, S, a->scale);
    nn_scratch_free(c, work);
}

nn_tensor *nn_linear_attention(nn_ctx *c, nn_tensor *qkv, int heads, int dh, float scale) {
    if (!qkv) return NULL;
    if (qkv->C != 3 * heads * dh) {
        lsdm_err("linear attention: %d channels for 3 x %d heads x %d", qkv->C, heads, dh);
        return fail(c);
    }
    int N = qkv->N, F = qkv->D, S = qkv->H * qkv->W, hd = heads * dh;
    nn_tensor *y = nn_tensor_new(c, N, hd, qkv->D, qkv->H, qkv->W);
    nn_tensor *qs = y ? nn_tensor_new(c, N, hd, qkv->D, qkv->H, qkv->W) : NULL;
    nn_tensor *ks = qs ? nn_tensor_new(c, N, hd, qkv->D, qkv->H, qkv->W) : NULL;
    nn_tensor *cx = ks ? nn_tensor_new(c, N, F, heads, dh, dh) : NULL;
    if (!cx) return NULL;
    linear_attention_forward(y->data, qs->data, ks->data, cx->data, qkv->data, N, heads, dh, F,
                             S, scale);
    if (c->record && qkv->needs_grad) {
        y->needs_grad = 1;
        lattn_args a = {qkv, y, qs, ks, cx, heads, dh, scale};
        nn_tape_push(c, lattn_back, &a, sizeof a);
    } else {
        nn_drop(c, cx);
        nn_drop(c, ks);
        nn_drop(c, qs);
    }
    return y;
}
