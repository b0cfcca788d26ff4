/* LPIPS ops: kernels in float and double (nn_extra_impl.h) and the nn
 * ops that record them (nn_extra.h). */
#include "nn_extra.h"

#include <math.h>
#include <string.h>

#include "err.h"
#include "../kernels/pool.h"

#define LSDM_IMPL "nn_extra_impl.h"
#include "../kernels/cpu/instantiate.h"

_Static_assert(sizeof(int) == sizeof(float), "maxpool indices live in float tensors");

static nn_tensor *fail(nn_ctx *c) {
    c->failed = 1;
    return NULL;
}

/* ---- max pooling ---- */

typedef struct {
    nn_tensor *x, *y, *idx;
    pool3d_dims d;
} pool_args;

static void pool_back(void *ctx, void *args) {
    nn_ctx *c = ctx;
    pool_args *a = args;
    if (!a->y->grad || !a->x->needs_grad) return;
    float *dx = nn_grad(c, a->x);
    if (dx) maxpool3d_backward(dx, a->y->grad, (const int *)a->idx->data, &a->d);
}

nn_tensor *nn_maxpool(nn_ctx *c, nn_tensor *x, const int k[3]) {
    if (!x) return NULL;
    pool3d_dims d;
    int in[3] = {x->D, x->H, x->W};
    if (pool3d_dims_init(&d, x->N * x->C, in, k, NULL, NULL) < 0) return fail(c);
    nn_tensor *y = nn_tensor_new(c, x->N, x->C, d.out[0], d.out[1], d.out[2]);
    /* the argmax indices, kept until the step's reset for the backward */
    nn_tensor *idx = y ? nn_tensor_new(c, 1, 1, 1, 1, (int)y->n) : NULL;
    if (!idx) return NULL;
    maxpool3d_forward(y->data, (int *)idx->data, x->data, &d);
    if (c->record && x->needs_grad) {
        y->needs_grad = 1;
        pool_args a = {x, y, idx, d};
        nn_tape_push(c, pool_back, &a, sizeof a);
    } else {
        nn_drop(c, idx);
    }
    return y;
}

/* ---- per-channel affine with a 1 -> C broadcast ---- */

typedef struct {
    nn_tensor *x, *y;
    const float *scale;
} affine_args;

static void affine_back(void *ctx, void *args) {
    nn_ctx *c = ctx;
    affine_args *a = args;
    if (!a->y->grad || !a->x->needs_grad) return;
    float *dx = nn_grad(c, a->x);
    if (dx)
        chan_affine_backward(dx, a->y->grad, a->scale, a->x->N, a->x->C, a->y->C,
                             (long)a->x->D * a->x->H * a->x->W);
}

nn_tensor *nn_chan_affine(nn_ctx *c, nn_tensor *x, const float *shift, const float *scale, int C) {
    if (!x) return NULL;
    if (x->C != 1 && x->C != C) {
        lsdm_err("channel affine: input has %d channels, wants 1 or %d", x->C, C);
        return fail(c);
    }
    nn_tensor *y = nn_tensor_new(c, x->N, C, x->D, x->H, x->W);
    if (!y) return NULL;
    chan_affine_forward(y->data, x->data, shift, scale, x->N, x->C, C,
                        (long)x->D * x->H * x->W);
    if (c->record && x->needs_grad) {
        y->needs_grad = 1;
        affine_args a = {x, y, scale};
        nn_tape_push(c, affine_back, &a, sizeof a);
    }
    return y;
}

/* ---- normalised squared distance, weighted and averaged ---- */

typedef struct {
    nn_tensor *acc, *x, *y;
    const float *w;
    double eps;
} dist_args;

static void dist_back(void *ctx, void *args) {
    nn_ctx *c = ctx;
    dist_args *a = args;
    if (!a->acc->grad) return;
    float *dx = a->x->needs_grad ? nn_grad(c, a->x) : NULL;
    float *dy = a->y->needs_grad ? nn_grad(c, a->y) : NULL;
    if (!dx && !dy) return;
    unit_sqdist_backward(dx, dy, a->acc->grad, a->x->data, a->y->data, a->w, a->x->N, a->x->C,
                         (long)a->x->D * a->x->H * a->x->W, a->eps);
}

int nn_unit_sqdist(nn_ctx *c, nn_tensor *acc, nn_tensor *x, nn_tensor *y, const float *w,
                   double eps) {
    if (!acc || !x || !y) return -1;
    if (x->N != y->N || x->C != y->C || x->D != y->D || x->H != y->H || x->W != y->W ||
        acc->n != (size_t)x->N) {
        lsdm_err("unit_sqdist: shapes %dx%dx%dx%dx%d and %dx%dx%dx%dx%d (into %zu values) differ",
                 x->N, x->C, x->D, x->H, x->W, y->N, y->C, y->D, y->H, y->W, acc->n);
        c->failed = 1;
        return -1;
    }
    unit_sqdist_forward(acc->data, x->data, y->data, w, x->N, x->C, (long)x->D * x->H * x->W, eps);
    if (c->record && (x->needs_grad || y->needs_grad)) {
        acc->needs_grad = 1;
        dist_args a = {acc, x, y, w, eps};
        nn_tape_push(c, dist_back, &a, sizeof a);
    }
    return 0;
}
