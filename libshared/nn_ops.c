/* Layer ops on nn tensors: the forward through the CPU kernels and, when
 * recording, a tape node whose backward calls the kernel's backward.
 * Gradients flow only into tensors that need them (needs_grad) and into
 * parameters of sets that are not frozen (their grad is allocated). */
#include <math.h>
#include <string.h>

#include "err.h"
#include "nn.h"
#include "../kernels/batchnorm.h"
#include "../kernels/elementwise.h"
#include "../kernels/groupnorm.h"
#include "../kernels/interpolate.h"
#include "../kernels/pad3d.h"
#include "../kernels/spade.h"

/* The grad buffer of a parameter, or NULL when it takes none. */
static float *pgrad(const nn_param *p) {
    return p && !p->frozen ? p->grad : NULL;
}

static float *tgrad(nn_ctx *c, nn_tensor *t) {
    return t->needs_grad ? nn_grad(c, t) : NULL;
}

static int wants_grad(const nn_param *w, const nn_tensor *x) {
    return x->needs_grad || pgrad(w);
}

/* ---- layer construction ---- */

static int64_t *shape5(int64_t *s, int a, int b, const int k[3]) {
    s[0] = a, s[1] = b, s[2] = k[0], s[3] = k[1], s[4] = k[2];
    return s;
}

int nn_conv_init(nn_conv *l, nn_params *ps, const char *name, int Cin, int Cout,
                 const int k[3], const int s[3], const int p[3], int pad_mode, int bias) {
    memset(l, 0, sizeof *l);
    int64_t sh[5], nb = Cout;
    /* a 2D conv (kd = 1, no depth stride or padding, flagged by pad_mode)
     * keeps PyTorch's 4D weight (Cout,Cin,kh,kw): same data */
    int is2d = pad_mode & NN_CONV_2D;
    pad_mode &= ~NN_CONV_2D;
    shape5(sh, Cout, Cin, k);
    if (is2d) sh[2] = sh[3], sh[3] = sh[4];
    l->w = nn_param_new(ps, name, ".weight", is2d ? 4 : 5, sh, 0);
    if (!l->w) return -1;
    if (bias && !(l->b = nn_param_new(ps, name, ".bias", 1, &nb, 0))) return -1;
    l->Cin = Cin, l->Cout = Cout, l->pad_mode = pad_mode;
    for (int i = 0; i < 3; i++) l->k[i] = k[i], l->s[i] = s[i], l->p[i] = p[i];
    return 0;
}

int nn_convt_init(nn_convt *l, nn_params *ps, const char *name, int Cin, int Cout,
                  const int k[3], const int s[3], const int p[3], const int prepad[6]) {
    memset(l, 0, sizeof *l);
    int64_t sh[5], nb = Cout;
    l->w = nn_param_new(ps, name, ".weight", 5, shape5(sh, Cin, Cout, k), 0);
    if (!l->w || !(l->b = nn_param_new(ps, name, ".bias", 1, &nb, 0))) return -1;
    l->Cin = Cin, l->Cout = Cout;
    for (int i = 0; i < 6; i++) l->prepad[i] = prepad ? prepad[i] : 0;
    for (int i = 0; i < 3; i++) l->k[i] = k[i], l->s[i] = s[i], l->p[i] = p[i];
    return 0;
}

int nn_groupnorm_init(nn_groupnorm *l, nn_params *ps, const char *name, int C, int G,
                      float eps, int affine) {
    memset(l, 0, sizeof *l);
    if (G <= 0 || C % G) return lsdm_err("%s: %d channels do not split into %d groups", name, C, G);
    int64_t n = C;
    if (affine) {
        if (!(l->w = nn_param_new(ps, name, ".weight", 1, &n, 0))) return -1;
        if (!(l->b = nn_param_new(ps, name, ".bias", 1, &n, 0))) return -1;
        nn_init_const(l->w, 1);
    }
    l->C = C, l->G = G, l->eps = eps;
    return 0;
}

int nn_batchnorm_init(nn_batchnorm *l, nn_params *ps, const char *name, int C) {
    memset(l, 0, sizeof *l);
    int64_t n = C;
    if (!(l->w = nn_param_new(ps, name, ".weight", 1, &n, 0)) ||
        !(l->b = nn_param_new(ps, name, ".bias", 1, &n, 0)) ||
        !(l->rmean = nn_param_new(ps, name, ".running_mean", 1, &n, 1)) ||
        !(l->rvar = nn_param_new(ps, name, ".running_var", 1, &n, 1)))
        return -1;
    nn_init_const(l->w, 1);
    nn_init_const(l->rvar, 1);
    l->C = C, l->eps = 1e-5f, l->momentum = 0.1f;
    return 0;
}

/* ---- conv3d ---- */

static conv3d_dims conv_dims(const nn_conv *l, const nn_tensor *x) {
    conv3d_dims d = {0};
    d.N = x->N, d.Cin = x->C, d.D = x->D, d.H = x->H, d.W = x->W, d.Cout = l->Cout;
    d.kd = l->k[0], d.kh = l->k[1], d.kw = l->k[2];
    d.sd = l->s[0], d.sh = l->s[1], d.sw = l->s[2];
    d.pd = l->p[0], d.ph = l->p[1], d.pw = l->p[2];
    d.pad_mode = l->pad_mode;
    return d;
}

typedef struct {
    const nn_conv *l;
    nn_tensor *x, *y;
    conv3d_dims d;
} conv_args;

static void conv_back(void *ctx, void *args) {
    nn_ctx *c = ctx;
    conv_args *a = args;
    if (!a->y->grad) return;
    float *dx = tgrad(c, a->x);
    float *dw = pgrad(a->l->w), *db = pgrad(a->l->b);
    if (!dx && !dw && !db) return;
    float *work = nn_scratch(c, conv3d_workspace_size(&a->d));
    if (!work && conv3d_workspace_size(&a->d)) return;
    conv3d_backward(dx, dw, db, work, a->y->grad, a->x->data, a->l->w->data, &a->d);
    nn_scratch_free(c, work);
}

nn_tensor *nn_conv3d(nn_ctx *c, const nn_conv *l, nn_tensor *x) {
    if (!x) return NULL;
    if (x->C != l->Cin) {
        lsdm_err("%s: input has %d channels, the layer takes %d", l->w->name, x->C, l->Cin);
        c->failed = 1;
        return NULL;
    }
    conv3d_dims d = conv_dims(l, x);
    if (conv3d_dims_init(&d) < 0) {
        c->failed = 1;
        return NULL;
    }
    nn_tensor *y = nn_tensor_new(c, d.N, d.Cout, d.OD, d.OH, d.OW);
    size_t ws = conv3d_forward_workspace_size(&d);
    float *work = ws ? nn_scratch(c, ws) : NULL;
    if (!y || (ws && !work)) return NULL;
    conv3d_forward(y->data, work, x->data, l->w->data, l->b ? l->b->data : NULL, &d);
    nn_scratch_free(c, work);
    if (c->record && wants_grad(l->w, x)) {
        y->needs_grad = 1;
        conv_args a = {l, x, y, d};
        nn_tape_push(c, conv_back, &a, sizeof a);
    }
    return y;
}

/* Inference only: two convs of the same geometry on the same input as one
 * conv with their output channels stacked (a then b), so the input's
 * columns are read once for both (SPADE's gamma and beta). */
nn_tensor *nn_conv3d_pair(nn_ctx *c, const nn_conv *a, const nn_conv *b, nn_tensor *x) {
    if (!x) return NULL;
    if (c->record || a->Cin != b->Cin || memcmp(a->k, b->k, sizeof a->k) || memcmp(a->s, b->s, sizeof a->s) ||
        memcmp(a->p, b->p, sizeof a->p) || a->pad_mode != b->pad_mode || !a->b != !b->b) {
        lsdm_err("%s, %s: not a pair of convs that can run as one (inference only)", a->w->name, b->w->name);
        c->failed = 1;
        return NULL;
    }
    if (x->C != a->Cin) {
        lsdm_err("%s: input has %d channels, the layer takes %d", a->w->name, x->C, a->Cin);
        c->failed = 1;
        return NULL;
    }
    conv3d_dims d = conv_dims(a, x);
    d.Cout = a->Cout + b->Cout;
    if (conv3d_dims_init(&d) < 0) {
        c->failed = 1;
        return NULL;
    }
    size_t wa = a->w->n, wb = b->w->n, ws = conv3d_forward_workspace_size(&d);
    float *w = nn_scratch(c, wa + wb + d.Cout), *bias = w ? w + wa + wb : NULL;
    float *work = ws ? nn_scratch(c, ws) : NULL;
    nn_tensor *y = nn_tensor_new(c, d.N, d.Cout, d.OD, d.OH, d.OW);
    if (!w || (ws && !work) || !y) {
        nn_scratch_free(c, work);
        nn_scratch_free(c, w);
        return NULL;
    }
    memcpy(w, a->w->data, wa * sizeof *w);
    memcpy(w + wa, b->w->data, wb * sizeof *w);
    if (a->b) {
        memcpy(bias, a->b->data, (size_t)a->Cout * sizeof *bias);
        memcpy(bias + a->Cout, b->b->data, (size_t)b->Cout * sizeof *bias);
    }
    conv3d_forward(y->data, work, x->data, w, a->b ? bias : NULL, &d);
    nn_scratch_free(c, work);
    nn_scratch_free(c, w);
    return y;
}

/* ---- transposed conv3d (optionally after a replicate pad) ---- */

typedef struct {
    const nn_convt *l;
    nn_tensor *x, *xp, *y;
    conv_transpose3d_dims d;
} convt_args;

static void convt_back(void *ctx, void *args) {
    nn_ctx *c = ctx;
    convt_args *a = args;
    if (!a->y->grad) return;
    float *dx = tgrad(c, a->xp);
    float *dw = pgrad(a->l->w), *db = pgrad(a->l->b);
    if (!dx && !dw && !db) return;
    float *work = nn_scratch(c, conv_transpose3d_workspace_size(&a->d));
    conv_transpose3d_backward(dx, dw, db, work, a->y->grad, a->xp->data, a->l->w->data, &a->d);
    nn_scratch_free(c, work);
}

typedef struct {
    nn_tensor *x, *y;
    pad3d_dims d;
} pad_args;

static void pad_back(void *ctx, void *args) {
    nn_ctx *c = ctx;
    pad_args *a = args;
    if (!a->y->grad || !a->x->needs_grad) return;
    float *dx = nn_grad(c, a->x);
    if (dx) pad3d_backward(dx, a->y->grad, &a->d);
}

nn_tensor *nn_pad(nn_ctx *c, nn_tensor *x, const int pad[6], int mode) {
    if (!x) return NULL;
    pad3d_dims d;
    int in[3] = {x->D, x->H, x->W};
    if (pad3d_dims_init(&d, x->N * x->C, in, pad, mode) < 0) {
        c->failed = 1;
        return NULL;
    }
    nn_tensor *y = nn_tensor_new(c, x->N, x->C, d.out[0], d.out[1], d.out[2]);
    if (!y) return NULL;
    pad3d_forward(y->data, x->data, &d);
    if (c->record && x->needs_grad) {
        y->needs_grad = 1;
        pad_args a = {x, y, d};
        nn_tape_push(c, pad_back, &a, sizeof a);
    }
    return y;
}

nn_tensor *nn_convt3d(nn_ctx *c, const nn_convt *l, nn_tensor *x) {
    if (!x) return NULL;
    if (x->C != l->Cin) {
        lsdm_err("%s: input has %d channels, the layer takes %d", l->w->name, x->C, l->Cin);
        c->failed = 1;
        return NULL;
    }
    int any = 0;
    for (int i = 0; i < 6; i++) any |= l->prepad[i];
    nn_tensor *xp = any ? nn_pad(c, x, l->prepad, PAD3D_REPLICATE) : x;
    if (!xp) return NULL;
    conv_transpose3d_dims d = {0};
    d.N = xp->N, d.Cin = xp->C, d.D = xp->D, d.H = xp->H, d.W = xp->W, d.Cout = l->Cout;
    d.kd = l->k[0], d.kh = l->k[1], d.kw = l->k[2];
    d.sd = l->s[0], d.sh = l->s[1], d.sw = l->s[2];
    d.pd = l->p[0], d.ph = l->p[1], d.pw = l->p[2];
    if (conv_transpose3d_dims_init(&d) < 0) {
        c->failed = 1;
        return NULL;
    }
    nn_tensor *y = nn_tensor_new(c, d.N, d.Cout, d.OD, d.OH, d.OW);
    float *work = nn_scratch(c, conv_transpose3d_workspace_size(&d));
    if (!y || !work) return NULL;
    conv_transpose3d_forward(y->data, work, xp->data, l->w->data, l->b->data, &d);
    nn_scratch_free(c, work);
    if (c->record && wants_grad(l->w, xp)) {
        y->needs_grad = 1;
        convt_args a = {l, x, xp, y, d};
        nn_tape_push(c, convt_back, &a, sizeof a);
    }
    if (xp != x) nn_drop(c, xp);
    return y;
}

/* ---- GroupNorm ---- */

typedef struct {
    const nn_groupnorm *l;
    nn_tensor *x, *y;
    float *mean, *rstd;
} gn_args;

static void gn_back(void *ctx, void *args) {
    nn_ctx *c = ctx;
    gn_args *a = args;
    if (!a->y->grad) return;
    float *dx = tgrad(c, a->x);
    if (!dx) return; /* parameter-only gradients without dx never happen here */
    int S = a->x->D * a->x->H * a->x->W;
    groupnorm_backward(dx, pgrad(a->l->w), pgrad(a->l->b), a->y->grad, a->x->data,
                       a->l->w ? a->l->w->data : NULL, a->mean, a->rstd, a->x->N, a->x->C, S,
                       a->l->G);
}

nn_tensor *nn_gn(nn_ctx *c, const nn_groupnorm *l, nn_tensor *x) {
    if (!x) return NULL;
    if (x->C != l->C) {
        lsdm_err("groupnorm: input has %d channels, the layer takes %d", x->C, l->C);
        c->failed = 1;
        return NULL;
    }
    int S = x->D * x->H * x->W;
    int rec = c->record && wants_grad(l->w, x);
    nn_tensor *y = nn_tensor_new(c, x->N, x->C, x->D, x->H, x->W);
    if (!y) return NULL;
    /* statistics live as long as the step's tensors (the backward reads them) */
    nn_tensor *st = rec ? nn_tensor_new(c, 1, 1, 1, 1, 2 * x->N * l->G) : NULL;
    float *stats = st ? st->data : NULL;
    if (rec && !stats) return NULL;
    groupnorm_forward(y->data, stats, stats ? stats + (size_t)x->N * l->G : NULL, x->data,
                      l->w ? l->w->data : NULL, l->b ? l->b->data : NULL, x->N, x->C, S, l->G,
                      l->eps);
    if (rec) {
        /* x must have needs_grad for the chain to continue: it does whenever
         * anything before it takes gradients; a first-layer norm on data
         * still computes dx (cheap) so its own weights get theirs. */
        x->needs_grad = 1;
        y->needs_grad = 1;
        gn_args a = {l, x, y, stats, stats + (size_t)x->N * l->G};
        nn_tape_push(c, gn_back, &a, sizeof a);
    }
    return y;
}

nn_tensor *nn_gn_silu(nn_ctx *c, const nn_groupnorm *l, nn_tensor *x) {
    if (!x) return NULL;
    if (c->record && wants_grad(l->w, x)) return nn_act(c, ACT_SILU, 0, nn_gn(c, l, x));
    if (x->C != l->C) {
        lsdm_err("groupnorm: input has %d channels, the layer takes %d", x->C, l->C);
        c->failed = 1;
        return NULL;
    }
    nn_tensor *y = nn_tensor_new(c, x->N, x->C, x->D, x->H, x->W);
    if (!y) return NULL;
    groupnorm_silu_forward(y->data, NULL, NULL, x->data, l->w ? l->w->data : NULL,
                           l->b ? l->b->data : NULL, x->N, x->C, x->D * x->H * x->W, l->G, l->eps);
    return y;
}

/* ---- BatchNorm ---- */

typedef struct {
    const nn_batchnorm *l;
    nn_tensor *x, *y;
    float *mean, *rstd;
} bn_args;

static void bn_back(void *ctx, void *args) {
    nn_ctx *c = ctx;
    bn_args *a = args;
    if (!a->y->grad) return;
    int S = a->x->D * a->x->H * a->x->W;
    batchnorm_train_backward(tgrad(c, a->x), pgrad(a->l->w), pgrad(a->l->b), a->y->grad,
                             a->x->data, a->l->w->data, a->mean, a->rstd, a->x->N, a->x->C, S);
}

nn_tensor *nn_bn_train(nn_ctx *c, const nn_batchnorm *l, nn_tensor *x) {
    if (!x) return NULL;
    int S = x->D * x->H * x->W;
    nn_tensor *y = nn_tensor_new(c, x->N, x->C, x->D, x->H, x->W);
    nn_tensor *st = nn_tensor_new(c, 1, 1, 1, 1, 2 * x->C);
    float *stats = st ? st->data : NULL;
    if (!y || !stats) return NULL;
    batchnorm_train_forward(y->data, stats, stats + x->C, l->rmean->data, l->rvar->data, x->data,
                            l->w->data, l->b->data, x->N, x->C, S, l->eps, l->momentum);
    if (c->record && wants_grad(l->w, x)) {
        y->needs_grad = 1;
        bn_args a = {l, x, y, stats, stats + x->C};
        nn_tape_push(c, bn_back, &a, sizeof a);
    }
    return y;
}

nn_tensor *nn_bn_eval(nn_ctx *c, const nn_batchnorm *l, nn_tensor *x) {
    if (!x) return NULL;
    nn_tensor *y = nn_tensor_new(c, x->N, x->C, x->D, x->H, x->W);
    if (!y) return NULL;
    batchnorm_forward(y->data, x->data, l->w->data, l->b->data, l->rmean->data, l->rvar->data,
                      x->N, x->C, x->D * x->H * x->W, l->eps);
    return y;
}

/* ---- activations ---- */

typedef struct {
    act_kind k;
    float slope;
    nn_tensor *x, *y;
} act_args;

static void act_back(void *ctx, void *args) {
    nn_ctx *c = ctx;
    act_args *a = args;
    if (!a->y->grad || !a->x->needs_grad) return;
    float *dx = nn_grad(c, a->x);
    const float *saved = act_backward_uses_output(a->k) ? a->y->data : a->x->data;
    if (dx) act_backward(a->k, dx, a->y->grad, saved, a->x->n, a->slope);
}

nn_tensor *nn_act(nn_ctx *c, act_kind k, float slope, nn_tensor *x) {
    if (!x) return NULL;
    int rec = c->record && x->needs_grad;
    nn_tensor *y = c->record ? nn_tensor_new(c, x->N, x->C, x->D, x->H, x->W) : x;
    if (!y) return NULL;
    act_forward(k, y->data, x->data, x->n, slope);
    if (rec) {
        y->needs_grad = 1;
        act_args a = {k, slope, x, y};
        nn_tape_push(c, act_back, &a, sizeof a);
    }
    return y;
}

/* ---- element-wise ---- */

typedef struct {
    nn_tensor *a, *b, *y;
} add_args;

static void add_back(void *ctx, void *args) {
    nn_ctx *c = ctx;
    add_args *a = args;
    if (!a->y->grad) return;
    add_backward(tgrad(c, a->a), tgrad(c, a->b), a->y->grad, a->y->n);
}

static int same_shape(nn_ctx *c, const nn_tensor *a, const nn_tensor *b, const char *op) {
    if (a->N == b->N && a->C == b->C && a->D == b->D && a->H == b->H && a->W == b->W) return 1;
    lsdm_err("%s: shapes %dx%dx%dx%dx%d and %dx%dx%dx%dx%d differ", op, a->N, a->C, a->D, a->H,
             a->W, b->N, b->C, b->D, b->H, b->W);
    c->failed = 1;
    return 0;
}

nn_tensor *nn_add(nn_ctx *c, nn_tensor *a, nn_tensor *b) {
    if (!a || !b || !same_shape(c, a, b, "add")) return NULL;
    int rec = c->record && (a->needs_grad || b->needs_grad);
    nn_tensor *y = c->record ? nn_tensor_new(c, a->N, a->C, a->D, a->H, a->W) : b;
    if (!y) return NULL;
    add_forward(y->data, a->data, b->data, a->n);
    if (rec) {
        y->needs_grad = 1;
        add_args g = {a, b, y};
        nn_tape_push(c, add_back, &g, sizeof g);
    }
    return y;
}

typedef struct {
    nn_tensor *x, *g, *b, *y;
} spade_args;

static void spade_back(void *ctx, void *args) {
    nn_ctx *c = ctx;
    spade_args *a = args;
    if (!a->y->grad) return;
    spade_backward(tgrad(c, a->x), tgrad(c, a->g), tgrad(c, a->b), a->y->grad, a->x->data,
                   a->g->data, a->y->n);
}

nn_tensor *nn_spade_mod(nn_ctx *c, nn_tensor *x, nn_tensor *gamma, nn_tensor *beta) {
    if (!x || !gamma || !beta || !same_shape(c, x, gamma, "spade") ||
        !same_shape(c, x, beta, "spade"))
        return NULL;
    int rec = c->record && (x->needs_grad || gamma->needs_grad || beta->needs_grad);
    nn_tensor *y = c->record ? nn_tensor_new(c, x->N, x->C, x->D, x->H, x->W) : x;
    if (!y) return NULL;
    spade_forward(y->data, x->data, gamma->data, beta->data, x->n);
    if (rec) {
        y->needs_grad = 1;
        spade_args a = {x, gamma, beta, y};
        nn_tape_push(c, spade_back, &a, sizeof a);
    }
    return y;
}

/* ---- nearest resize ---- */

typedef struct {
    nn_tensor *x, *y;
    interp3d_dims d;
} resize_args;

static void resize_back(void *ctx, void *args) {
    nn_ctx *c = ctx;
    resize_args *a = args;
    if (!a->y->grad || !a->x->needs_grad) return;
    float *dx = nn_grad(c, a->x);
    if (dx) interp3d_backward(dx, a->y->grad, &a->d);
}

nn_tensor *nn_resize_nearest(nn_ctx *c, nn_tensor *x, int D, int H, int W) {
    if (!x) return NULL;
    if (x->D == D && x->H == H && x->W == W) return x;
    interp3d_dims d;
    int in[3] = {x->D, x->H, x->W}, out[3] = {D, H, W};
    if (interp3d_dims_init(&d, x->N * x->C, in, out, NULL, INTERP_NEAREST, 0) < 0) {
        c->failed = 1;
        return NULL;
    }
    nn_tensor *y = nn_tensor_new(c, x->N, x->C, D, H, W);
    if (!y) return NULL;
    interp3d_forward(y->data, x->data, &d);
    if (c->record && x->needs_grad) {
        y->needs_grad = 1;
        resize_args a = {x, y, d};
        nn_tape_push(c, resize_back, &a, sizeof a);
    }
    return y;
}

/* ---- one depth slice per batch element ---- */

typedef struct {
    nn_tensor *x, *y;
    int d[64];
} take_args;

static void take_back(void *ctx, void *args) {
    nn_ctx *c = ctx;
    take_args *a = args;
    if (!a->y->grad || !a->x->needs_grad) return;
    float *dx = nn_grad(c, a->x);
    if (!dx) return;
    size_t plane = (size_t)a->x->H * a->x->W;
    for (int n = 0; n < a->x->N; n++)
        for (int ch = 0; ch < a->x->C; ch++) {
            float *dst = dx + (((size_t)n * a->x->C + ch) * a->x->D + a->d[n]) * plane;
            const float *src = a->y->grad + ((size_t)n * a->x->C + ch) * plane;
            for (size_t i = 0; i < plane; i++) dst[i] += src[i];
        }
}

nn_tensor *nn_take_slices(nn_ctx *c, nn_tensor *x, const int *d) {
    if (!x) return NULL;
    if (x->N > 64) {
        lsdm_err("take_slices: batch %d over 64", x->N);
        c->failed = 1;
        return NULL;
    }
    nn_tensor *y = nn_tensor_new(c, x->N, x->C, 1, x->H, x->W);
    if (!y) return NULL;
    size_t plane = (size_t)x->H * x->W;
    take_args a = {x, y, {0}};
    for (int n = 0; n < x->N; n++) {
        a.d[n] = d[n] < 0 ? 0 : d[n] >= x->D ? x->D - 1 : d[n];
        for (int ch = 0; ch < x->C; ch++)
            memcpy(y->data + ((size_t)n * x->C + ch) * plane,
                   x->data + (((size_t)n * x->C + ch) * x->D + a.d[n]) * plane, plane * sizeof(float));
    }
    if (c->record && x->needs_grad) {
        y->needs_grad = 1;
        nn_tape_push(c, take_back, &a, sizeof a);
    }
    return y;
}
