/* The segmenter (segnet.h, seg_train.h) against PyTorch
 * (tests/fixtures/segnet, made by tests/torch/make_segnet.py): the
 * reference UNet3D's state dict loads by name, forward logits, the
 * DC_and_CE loss, weight gradients and one Adam step agree; plus the
 * config text, the sliding window (larger and smaller volumes than the
 * window, a constant image), normalisation and the patch sampler. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fixture.h"
#include "seg_train.h"

static fixture fx;

static const float *get(const char *name, size_t want) {
    size_t n = 0;
    const float *p = fixture_get(&fx, name, &n);
    if (!p || n != want) fprintf(stderr, "fixture tensor %s missing or of size %zu, not %zu\n", name, n, want);
    CHECK(p != NULL && n == want);
    return p && n == want ? p : NULL;
}

static double max_abs(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static double max_mag(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i]));
    return m;
}

static const char *GRADS[] = {"model.model.0.0.weight", "model.model.0.0.bias", "model.model.2.model.1.0.weight",
                              "model.model.2.model.3.model.2.0.bias", "model.model.2.model.3.model.3.weight",
                              "model.model.2.model.3.model.3.bias", "model.model.2.model.6.weight",
                              "model.model.3.0.weight", "model.model.5.weight", "model.model.5.bias"};
#define NGRADS (int)(sizeof GRADS / sizeof *GRADS)

static void test_torch(void) {
    char path[4096], wpath[4096];
    fixture_path(path, sizeof path, "segnet", "case.lsdm");
    fixture_path(wpath, sizeof wpath, "segnet", "weights.safetensors");
    int ok = fixture_load(&fx, path) == 0;
    if (!ok) fprintf(stderr, "missing fixture %s\n", path);
    CHECK(ok);
    if (!ok) return;
    segnet_config cfg = {.in_channels = 1, .classes = 3, .filters = 4, .num_downs = 2};
    seg_train_opts o = {.lr = 1e-3, .grad_clip = 0, .seed = 7};
    seg_trainer t;
    CHECK(seg_trainer_init(&t, &cfg, &o) == 0);
    int n;
    ckpt_param *p = segnet_ckpt_params(&t.m, &n);
    int lrc = checkpoint_load(wpath, p, n, NULL);
    if (lrc) fprintf(stderr, "%s\n", lsdm_err_msg());
    CHECK(lrc == 0); /* every name and shape as PyTorch's state dict */
    free(p);
    CHECK(n == 26);  /* level 0: 4 convs + final, level 1: 4 + up, level 2: 2 + up: 13 weights, 13 biases */
    CHECK(segnet_param_count(&t.m) == 21367);

    int dim[3] = {8, 16, 16};
    size_t S = 8 * 16 * 16;
    const float *x = get("x", S), *logits = get("logits", 3 * S), *loss = get("loss", 3);
    int32_t *y = NULL;
    for (int i = 0; i < fx.n; i++)
        if (!strcmp(lsdm_record_get(&fx.recs[i], "name"), "y") && fx.recs[i].dtype == LSDM_I32) y = fx.recs[i].data;
    CHECK(y != NULL);
    if (!x || !logits || !loss || !y) return;

    /* forward without a tape */
    nn_ctx c;
    nn_ctx_init(&c, 0);
    nn_tensor *xt = nn_tensor_wrap(&c, (float *)x, 1, 1, 8, 16, 16);
    nn_tensor *z = segnet_forward(&c, &t.m, xt);
    CHECK(z && z->C == 3 && z->D == 8 && z->W == 16);
    if (z) {
        double e = max_abs(z->data, logits, 3 * S), mg = max_mag(logits, 3 * S);
        printf("forward logits: max abs error %.3g (max |logit| %.3g)\n", e, mg);
        CHECK(e <= 1e-5 * fmax(1, mg));
    }
    nn_ctx_free(&c);

    /* loss and gradients */
    nn_params_zero_grads(&t.m.ps);
    seg_step_stats st;
    CHECK(seg_trainer_backward(&t, x, y, 1, dim, 1.0f, &st) == 0);
    printf("loss %.7f ce %.7f dice %.7f (torch %.7f %.7f %.7f)\n", st.loss, st.ce, st.dice_loss, loss[0], loss[1], loss[2]);
    CHECK_NEAR(st.loss, loss[0], 1e-5);
    CHECK_NEAR(st.ce, loss[1], 1e-5);
    CHECK_NEAR(st.dice_loss, loss[2], 1e-5);
    for (int i = 0; i < NGRADS; i++) {
        char name[160];
        nn_param *w = nn_params_find(&t.m.ps, GRADS[i]);
        CHECK(w != NULL);
        snprintf(name, sizeof name, "grad.%s", GRADS[i]);
        const float *g = w ? get(name, w->n) : NULL;
        if (!g) continue;
        double e = max_abs(w->grad, g, w->n), mg = max_mag(g, w->n);
        printf("grad %-40s max abs error %.3g (max |g| %.3g)\n", GRADS[i], e, mg);
        CHECK(e <= 1e-5 * fmax(mg, 1e-3));
    }
    /* one Adam step from the same point (seg_trainer_step recomputes the gradients) */
    CHECK(seg_trainer_step(&t, x, y, 1, dim, &st) == 0);
    CHECK(t.step == 1);
    for (int i = 0; i < NGRADS; i++) {
        char name[160];
        nn_param *w = nn_params_find(&t.m.ps, GRADS[i]);
        snprintf(name, sizeof name, "adam.%s", GRADS[i]);
        const float *a = w ? get(name, w->n) : NULL;
        if (!a) continue;
        double e = max_abs(w->data, a, w->n);
        printf("adam %-40s max abs error %.3g\n", GRADS[i], e);
        /* a bias in front of an InstanceNorm has gradient 0 up to rounding
         * (1e-18 here): Adam's first step g / (|g| + eps) is then noise */
        if (strstr(GRADS[i], ".0.bias") && !strstr(GRADS[i], "model.model.5")) continue;
        CHECK(e <= 2e-6);
    }
    seg_trainer_free(&t);
    fixture_free(&fx);
}

static void test_config(void) {
    segnet_config a, b;
    CHECK(segnet_config_named(&a, "reference", 5) == 0 && a.filters == 64 && a.num_downs == 3 && a.classes == 5);
    CHECK(segnet_config_named(&a, "huge", 3) < 0);
    CHECK(segnet_config_named(&a, "tiny", 3) == 0 && a.filters == 16);
    segnet_config_named(&b, "reference", 2);
    CHECK(segnet_config_parse(&b, segnet_config_text(&a)) == 0);
    CHECK(memcmp(&a, &b, sizeof a) == 0);
    CHECK(segnet_config_parse(&b, "classes = 1\n") < 0);
    CHECK(segnet_config_parse(&b, "latent = 8\n") < 0);
    segnet m;
    a.num_downs = 2;
    CHECK(segnet_init(&m, &a, 0) == 0);
    CHECK(nn_params_find(&m.ps, "model.model.2.model.3.model.3.model.1.0.weight") == NULL); /* 3 downs: 4 levels */
    segnet_free(&m);
    a.num_downs = 3;
    CHECK(segnet_init(&m, &a, 0) == 0);
    nn_param *p = nn_params_find(&m.ps, "model.model.2.model.3.model.3.model.1.0.weight");
    CHECK(p && p->shape[0] == 128 && p->shape[1] == 64);               /* innermost conv1: 4f -> 8f */
    p = nn_params_find(&m.ps, "model.model.2.model.3.model.3.model.3.weight");
    CHECK(p && p->shape[0] == 128 && p->shape[1] == 64 && p->shape[2] == 2); /* innermost up: (8f, 4f, 2,2,2) */
    p = nn_params_find(&m.ps, "model.model.5.weight");
    CHECK(p && p->shape[0] == 3 && p->shape[1] == 16 && p->shape[2] == 1);
    segnet_free(&m);
}

/* Probabilities of the sliding window sum to 1 and cover the volume; a
 * volume smaller than the window and one that is not a multiple of 8 work. */
static void test_window(void) {
    segnet_config cfg = {.in_channels = 1, .classes = 3, .filters = 2, .num_downs = 3};
    segnet m;
    CHECK(segnet_init(&m, &cfg, 1) == 0);
    int dims[3][3] = {{20, 37, 29}, {3, 5, 1}, {8, 8, 8}};
    for (int k = 0; k < 3; k++) {
        int *d = dims[k];
        size_t S = (size_t)d[0] * d[1] * d[2];
        float *x = malloc(S * sizeof(float)), *prob = malloc(3 * S * sizeof(float));
        for (size_t i = 0; i < S; i++) x[i] = (float)((i * 7919) % 101) / 50.0f - 1;
        segnet_window w = {{8, 16, 16}, 0.5, -1};
        CHECK(segnet_predict(&m, &w, x, d, prob, NULL) == 0);
        double worst = 0;
        for (size_t i = 0; i < S; i++) worst = fmax(worst, fabs(prob[i] + prob[S + i] + prob[2 * S + i] - 1));
        printf("window %dx%dx%d: max |sum p - 1| %.3g\n", d[0], d[1], d[2], worst);
        CHECK(worst < 1e-5);
        free(x), free(prob);
    }
    segnet_window bad = {{8, 12, 16}, 0.5, -1};
    float x1 = 0, p1[3];
    int d1[3] = {1, 1, 1};
    CHECK(segnet_predict(&m, &bad, &x1, d1, p1, NULL) < 0);
    segnet_free(&m);
}

static void test_normalize(void) {
    float x[4] = {2, 4, 6, 10}, pad;
    CHECK(segnet_normalize(x, 1, 4, SEGNET_NORM_MINMAX, &pad) == 0);
    CHECK_NEAR(x[0], -1, 1e-7);
    CHECK_NEAR(x[1], -0.5, 1e-7);
    CHECK_NEAR(x[3], 1, 1e-7);
    CHECK_NEAR(pad, -1, 1e-7);
    float z[4] = {1, 3, 1, 3};
    CHECK(segnet_normalize(z, 1, 4, SEGNET_NORM_ZSCORE, &pad) == 0);
    CHECK_NEAR(z[0], -1, 1e-6);
    CHECK_NEAR(z[1], 1, 1e-6);
    float nan[2] = {1, NAN};
    CHECK(segnet_normalize(nan, 1, 2, SEGNET_NORM_NONE, &pad) < 0);
    CHECK(segnet_norm_parse("zscore") == SEGNET_NORM_ZSCORE);
    CHECK(segnet_norm_parse("bogus") < 0);
}

/* Foreground patches contain foreground; the same (seed, step) gives the same patches. */
static void test_sampler(void) {
    seg_data s = {.C = 1, .K = 3};
    int dim[3] = {8, 32, 32};
    size_t S = 8 * 32 * 32;
    float *x = malloc(S * sizeof(float));
    int32_t *y = calloc(S, sizeof(int32_t));
    for (size_t i = 0; i < S; i++) x[i] = (float)i;
    y[5 * 32 * 32 + 20 * 32 + 3] = 2; /* one voxel of class 2 */
    y[0] = 1;
    CHECK(seg_data_add(&s, x, y, dim, -1) == 0);
    CHECK(s.v[0].nloc[2] == 1 && s.v[0].nloc[1] == 1);
    seg_sampler p = {{8, 16, 16}, 1.0, {0, 1, 1}};
    size_t P = 8 * 16 * 16;
    float xa[4 * 8 * 16 * 16], xb[4 * 8 * 16 * 16];
    int32_t ya[4 * 8 * 16 * 16], yb[4 * 8 * 16 * 16];
    seg_sample_batch(&s, &p, 3, 10, 4, xa, ya);
    seg_sample_batch(&s, &p, 3, 10, 4, xb, yb);
    CHECK(memcmp(xa, xb, sizeof xa) == 0 && memcmp(ya, yb, sizeof ya) == 0);
    for (int n = 0; n < 4; n++) {
        int fg = 0;
        for (size_t i = 0; i < P; i++) fg += ya[n * P + i] > 0;
        CHECK(fg >= 1);
    }
    seg_sample_batch(&s, &p, 3, 11, 4, xb, yb);
    CHECK(memcmp(xa, xb, sizeof xa) != 0);
    /* a patch larger than the volume is padded */
    seg_sampler big = {{16, 16, 16}, 0.0, {0, 0, 0}};
    float xp[16 * 16 * 16];
    int32_t yp[16 * 16 * 16];
    seg_sample_batch(&s, &big, 3, 0, 1, xp, yp);
    int padded = 0;
    for (int i = 0; i < 16 * 16 * 16; i++) padded += xp[i] == -1;
    CHECK(padded == 8 * 16 * 16);
    int32_t *bad = calloc(S, sizeof(int32_t));
    bad[3] = 7;
    CHECK(seg_data_add(&s, malloc(S * sizeof(float)), bad, dim, -1) < 0);
    seg_data_free(&s);
}

int main(void) {
    test_torch();
    test_config();
    test_window();
    test_normalize();
    test_sampler();
    return check_done("test_segnet");
}
