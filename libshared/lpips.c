/* LPIPS with VGG16 features (lpips.h). */
#include "lpips.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "nn_extra.h"
#include "safetensors.h"

/* VGG16 `features`: the convs of each slice by torchvision index; a 2x2
 * max pool opens every slice but the first; every conv is followed by a
 * ReLU and a slice ends at the ReLU that LPIPS taps. */
static const int SLICE_OF[LPIPS_CONVS] = {1, 1, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5};
static const int FEATURE[LPIPS_CONVS] = {0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28};
static const int POOL[3] = {1, 2, 2};
static const double NORM_EPS = 1e-10;

static void conv_name(char *buf, size_t n, int i) {
    snprintf(buf, n, "net.slice%d.%d", SLICE_OF[i], FEATURE[i]);
}

/* The output width of every conv, from the file's weight shapes. */
static int read_widths(int *cout, const char *path) {
    st_file f;
    if (safetensors_open(&f, path) < 0) return -1;
    int rc = 0;
    for (int i = 0; i < LPIPS_CONVS && rc == 0; i++) {
        char name[64];
        conv_name(name, sizeof name - 8, i);
        strcat(name, ".weight");
        const st_tensor *t = safetensors_find(&f, name);
        if (!t)
            rc = lsdm_err("%s: no tensor '%s': not LPIPS weights (make them with "
                          "tools/contrib/convert_lpips.py)", path, name);
        else if (t->ndim != 4 || t->shape[0] <= 0 || t->shape[0] > 65536)
            rc = lsdm_err("%s: tensor '%s' has %d dimensions, LPIPS expects a 4D conv weight",
                          path, name, t->ndim);
        else
            cout[i] = (int)t->shape[0];
    }
    safetensors_close(&f);
    return rc;
}

static int build(lpips *m, const int *cout) {
    static const int k[3] = {1, 3, 3}, s[3] = {1, 1, 1}, p[3] = {0, 1, 1};
    int64_t sh[4] = {1, 3, 1, 1};
    if (!(m->shift = nn_param_new(&m->ps, "scaling_layer", ".shift", 4, sh, 1)) ||
        !(m->scale = nn_param_new(&m->ps, "scaling_layer", ".scale", 4, sh, 1)))
        return -1;
    int cin = 3;
    for (int i = 0; i < LPIPS_CONVS; i++) {
        char name[64];
        conv_name(name, sizeof name, i);
        if (nn_conv_init(&m->conv[i], &m->ps, name, cin, cout[i], k, s, p,
                         CONV3D_PAD_ZERO | NN_CONV_2D, 1) < 0)
            return -1;
        cin = cout[i];
        if (i == LPIPS_CONVS - 1 || SLICE_OF[i + 1] != SLICE_OF[i]) {
            int t = SLICE_OF[i] - 1;
            char lin[16];
            snprintf(lin, sizeof lin, "lin%d", t);
            int64_t lsh[4] = {1, cin, 1, 1};
            if (!(m->lin[t] = nn_param_new(&m->ps, lin, ".model.1.weight", 4, lsh, 0))) return -1;
            m->chns[t] = cin;
        }
    }
    return 0;
}

int lpips_load(lpips *m, const char *path) {
    memset(m, 0, sizeof *m);
    int cout[LPIPS_CONVS], n = 0;
    if (read_widths(cout, path) < 0 || build(m, cout) < 0) goto fail;
    ckpt_param *v = nn_params_ckpt(&m->ps, NULL, &n);
    if (!v) goto fail;
    int rc = checkpoint_load(path, v, n, NULL);
    free(v);
    if (rc < 0) goto fail;
    nn_params_freeze(&m->ps, 1);
    return 0;
fail:
    lpips_free(m);
    return lsdm_err_ctx("LPIPS weights");
}

void lpips_free(lpips *m) {
    nn_params_free(&m->ps);
    memset(m, 0, sizeof *m);
}

/* Slice t of VGG16 on h (consumed when nothing is recorded). */
static nn_tensor *vgg_slice(nn_ctx *c, const lpips *m, int t, nn_tensor *h) {
    if (t > 0) {
        nn_tensor *p = nn_maxpool(c, h, POOL);
        nn_drop(c, h);
        h = p;
    }
    for (int i = 0; i < LPIPS_CONVS && h; i++) {
        if (SLICE_OF[i] != t + 1) continue;
        nn_tensor *o = nn_conv3d(c, &m->conv[i], h);
        nn_drop(c, h);
        h = nn_act(c, ACT_RELU, 0, o);
    }
    return h;
}

nn_tensor *lpips_forward(nn_ctx *c, const lpips *m, nn_tensor *x, nn_tensor *y) {
    if (!x || !y) return NULL;
    if (x->N != y->N || x->C != y->C || x->D != y->D || x->H != y->H || x->W != y->W ||
        x->D != 1 || (x->C != 1 && x->C != 3) || x->H < 16 || x->W < 16) {
        lsdm_err("LPIPS: images %dx%dx%dx%dx%d and %dx%dx%dx%dx%d: want two (N,1 or 3,1,H,W) "
                 "of one shape, H and W at least 16", x->N, x->C, x->D, x->H, x->W, y->N, y->C,
                 y->D, y->H, y->W);
        c->failed = 1;
        return NULL;
    }
    nn_tensor *acc = nn_tensor_new(c, x->N, 1, 1, 1, 1);
    if (!acc) return NULL;
    memset(acc->data, 0, acc->n * sizeof(float));
    /* both images through the same net in step, tap by tap */
    nn_tensor *hx = nn_chan_affine(c, x, m->shift->data, m->scale->data, 3);
    nn_tensor *hy = nn_chan_affine(c, y, m->shift->data, m->scale->data, 3);
    for (int t = 0; t < LPIPS_TAPS; t++) {
        hx = vgg_slice(c, m, t, hx);
        hy = vgg_slice(c, m, t, hy);
        if (nn_unit_sqdist(c, acc, hx, hy, m->lin[t]->data, NORM_EPS) < 0) return NULL;
    }
    nn_drop(c, hx);
    nn_drop(c, hy);
    return acc;
}

double lpips_loss(nn_ctx *c, const lpips *m, nn_tensor *x, nn_tensor *y, float scale) {
    nn_tensor *v = lpips_forward(c, m, x, y);
    if (!v) return NAN;
    double sum = 0;
    for (int n = 0; n < v->N; n++) sum += v->data[n];
    if (c->record && v->needs_grad) {
        float *g = nn_grad(c, v);
        if (!g) return NAN;
        for (int n = 0; n < v->N; n++) g[n] += scale / (float)v->N;
    }
    return sum / v->N;
}
