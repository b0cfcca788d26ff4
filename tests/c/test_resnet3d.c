/* MedicalNet 3D ResNet features (libshared/resnet3d.c) against PyTorch:
 * tests/torch/make_fid.py builds resnet10 (shortcut B, width 2), resnet18
 * (shortcut A, width 1) and resnet50 (Bottlenecks, shortcut B, width 1)
 * with random weights and BatchNorm
 * statistics, converts them with tools/contrib/convert_medicalnet.py and
 * computes the features of one 1x1x16x24x24 volume in float64. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "checkpoint.h"
#include "err.h"
#include "fixture.h"
#include "resnet3d.h"

/* Features of the fixture's input through the network in file `st`. */
static void check_net(const fixture *fx, const char *st, const char *rec, int depth, char shortcut, int width) {
    char path[4096];
    fixture_path(path, sizeof path, "fid", st);
    resnet3d_config cfg = {50, 'B', 64};
    int found = 0;
    CHECK(resnet3d_file_config(path, &cfg, &found) == 0);
    CHECK(found == 7);
    CHECK(cfg.depth == depth && cfg.shortcut == shortcut && cfg.width == width);
    resnet3d m;
    if (resnet3d_init(&m, &cfg) < 0 || resnet3d_load(&m, path) < 0) {
        fprintf(stderr, "%s: %s\n", st, lsdm_err_msg());
        CHECK(0);
        resnet3d_free(&m);
        return;
    }
    size_t nx, nf;
    const float *x = fixture_get(fx, "input", &nx), *want = fixture_get(fx, rec, &nf);
    CHECK(x && want && nx == 16 * 24 * 24 && nf == (size_t)m.feature_dim);
    if (!x || !want || nf != (size_t)m.feature_dim) { resnet3d_free(&m); return; }
    nn_ctx c;
    nn_ctx_init(&c, 0);
    float *xin = malloc(nx * sizeof *xin), *f = malloc(nf * sizeof *f);
    memcpy(xin, x, nx * sizeof *xin);
    nn_tensor *t = nn_tensor_wrap(&c, xin, 1, 1, 16, 24, 24);
    CHECK(resnet3d_features(&c, &m, t, f) == 0);
    double err = 0, mx = 0;
    for (size_t i = 0; i < nf; i++) {
        if (fabs(f[i] - want[i]) > err) err = fabs(f[i] - want[i]);
        if (fabs(want[i]) > mx) mx = fabs(want[i]);
    }
    printf("%s (shortcut %c, width %d, %d features): max abs error %.3g (max |f| %.3g, relative %.3g)\n", rec,
           shortcut, width, m.feature_dim, err, mx, err / mx);
    CHECK(err <= 1e-4 * mx);
    /* the input is read, not consumed, and every intermediate is given back */
    CHECK(!memcmp(xin, x, nx * sizeof *xin));
    CHECK(c.bytes_in_use == 0);
    nn_ctx_free(&c);
    free(xin);
    free(f);
    resnet3d_free(&m);
}

/* Names and shapes as MedicalNet's state_dict. */
static void check_names(void) {
    resnet3d_config c50 = {50, 'B', 64}, c18 = {18, 'A', 64};
    resnet3d m;
    CHECK(resnet3d_init(&m, &c50) == 0);
    CHECK(m.feature_dim == 2048 && m.nblocks == 16);
    nn_param *p = nn_params_find(&m.params, "layer1.0.downsample.0.weight");
    CHECK(p && p->shape[0] == 256 && p->shape[1] == 64 && p->shape[2] == 1);
    p = nn_params_find(&m.params, "layer4.2.conv3.weight");
    CHECK(p && p->shape[0] == 2048 && p->shape[1] == 512);
    CHECK(nn_params_find(&m.params, "layer3.5.bn2.running_var") != NULL);
    CHECK(nn_params_find(&m.params, "layer2.1.downsample.0.weight") == NULL);
    /* as PyTorch counts MedicalNet's resnet50 without conv_seg */
    printf("resnet50: %zu parameters (without BatchNorm statistics)\n", nn_params_count(&m.params, 0));
    CHECK(nn_params_count(&m.params, 0) == 46155072);
    resnet3d_free(&m);
    CHECK(resnet3d_init(&m, &c18) == 0);
    CHECK(m.feature_dim == 512 && m.nblocks == 8);
    CHECK(nn_params_find(&m.params, "layer2.0.downsample.0.weight") == NULL);
    p = nn_params_find(&m.params, "layer3.1.conv2.weight");
    CHECK(p && p->shape[0] == 256 && p->shape[1] == 256 && p->shape[4] == 3);
    resnet3d_free(&m);
    int d = 0;
    CHECK(resnet3d_parse_arch("resnet34", &d) == 0 && d == 34);
    CHECK(resnet3d_parse_arch("50", &d) == 0 && d == 50);
    CHECK(resnet3d_parse_arch("resnet101", &d) < 0);
    resnet3d_config bad = {18, 'C', 64};
    CHECK(resnet3d_config_check(&bad) < 0);
}

/* A file with the segmentation head loads (conv_seg.* skipped); one of
 * another width fails naming the tensor; the fixed-seed network is fixed. */
static void check_load_and_seed(void) {
    resnet3d_config cfg = {10, 'B', 2};
    resnet3d a, b;
    CHECK(resnet3d_init(&a, &cfg) == 0 && resnet3d_init(&b, &cfg) == 0);
    resnet3d_init_random(&a, 5);
    nn_param *w = nn_params_find(&a.params, "layer2.0.conv1.weight");
    double ss = 0;
    for (size_t i = 0; i < w->n; i++) ss += (double)w->data[i] * w->data[i];
    /* kaiming normal, fan_out = Cout k^3 = 4 * 27: variance 2/108 (216 samples) */
    printf("fixed-seed init: weight variance %.4g (want %.4g)\n", ss / w->n, 2.0 / 108);
    CHECK(fabs(ss / w->n - 2.0 / 108) < 0.3 * 2.0 / 108);
    CHECK(nn_params_find(&a.params, "bn1.running_var")->data[0] == 1.0f);
    CHECK(nn_params_find(&a.params, "bn1.weight")->data[0] == 1.0f);
    CHECK(nn_params_find(&a.params, "bn1.bias")->data[0] == 0.0f);

    char path[] = "/tmp/test_resnet3d_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    int n = 0;
    ckpt_param *p = nn_params_ckpt(&a.params, NULL, &n);
    p = realloc(p, (size_t)(n + 1) * sizeof *p);
    float head[6] = {1, 2, 3, 4, 5, 6};
    p[n] = (ckpt_param){.name = "conv_seg.1.weight", .ndim = 2, .shape = {2, 3}, .data = head};
    CHECK(checkpoint_save(path, p, n + 1, NULL, ST_F32) == 0);
    free(p);
    CHECK(resnet3d_load(&b, path) == 0);
    nn_param *wb = nn_params_find(&b.params, "layer2.0.conv1.weight");
    CHECK(!memcmp(w->data, wb->data, w->n * sizeof(float)));

    resnet3d c;
    resnet3d_config wide = {10, 'B', 3};
    CHECK(resnet3d_init(&c, &wide) == 0);
    CHECK(resnet3d_load(&c, path) < 0);
    printf("wrong width: %s\n", lsdm_err_msg());
    CHECK(strstr(lsdm_err_msg(), "tensor 'conv1.weight' has shape") != NULL);
    resnet3d_free(&c);
    resnet3d_config r18 = {18, 'B', 2};
    CHECK(resnet3d_init(&c, &r18) == 0);
    CHECK(resnet3d_load(&c, path) < 0);
    printf("wrong depth: %s\n", lsdm_err_msg());
    CHECK(strstr(lsdm_err_msg(), "tensor 'layer1.1.conv1.weight' is missing") != NULL);
    resnet3d_free(&c);
    unlink(path);

    /* every size keeps >= 1 voxel (padding 3 for k7, dilated convs keep
     * the size): even a 1x1x2 volume gives finite features */
    nn_ctx ctx;
    nn_ctx_init(&ctx, 0);
    float tiny[2] = {0, 1}, f[17] = {0};
    f[a.feature_dim] = 123; /* guard */
    nn_tensor *t = nn_tensor_wrap(&ctx, tiny, 1, 1, 1, 1, 2);
    CHECK(a.feature_dim == 16);
    CHECK(resnet3d_features(&ctx, &a, t, f) == 0);
    int finite = 1;
    for (int i = 0; i < a.feature_dim; i++) finite &= isfinite(f[i]);
    CHECK(finite && f[16] == 123);
    nn_ctx_free(&ctx);
    resnet3d_free(&a);
    resnet3d_free(&b);
}

int main(void) {
    char path[4096];
    fixture fx;
    fixture_path(path, sizeof path, "fid", "resnet.lsdm");
    if (fixture_load(&fx, path) < 0) {
        fprintf(stderr, "missing fixture %s (run tests/torch/make_fid.py)\n", path);
        CHECK(0);
        return check_done("test_resnet3d");
    }
    check_net(&fx, "resnet10.safetensors", "resnet10", 10, 'B', 2);
    check_net(&fx, "resnet18.safetensors", "resnet18", 18, 'A', 1);
    check_net(&fx, "resnet50.safetensors", "resnet50", 50, 'B', 1);
    fixture_free(&fx);
    check_names();
    check_load_and_seed();
    return check_done("test_resnet3d");
}
