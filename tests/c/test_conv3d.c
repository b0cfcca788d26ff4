/* conv3d and conv_transpose3d: PyTorch parity (tests/fixtures/conv, made
 * by tests/torch/make_conv.py), finite differences of the double
 * reference, float against double, slab independence, accumulation, and
 * the size checks. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "conv3d.h"
#include "conv_transpose3d.h"
#include "fixture.h"
#include "cpu/gemm_avx512.h"

static const char *cases[] = {
    "conv_k3p1", "conv_k3s2p1", "conv_k4s2p1", "conv_k133p011", "conv_dil2",
    "conv_replicate", "conv_rep_aniso", "conv_1x1", "convT_k4s2p1", "convT_k3s1p1",
    "convT_k3s2op1", "convT_k144s122", "convT_dil2",
};
#define NCASES (int)(sizeof cases / sizeof *cases)

/* One op of either kind with its sizes. */
typedef struct {
    int kind; /* 0 conv3d, 1 conv_transpose3d */
    conv3d_dims c;
    conv_transpose3d_dims t;
    int has_bias;
    size_t nx, nw, nb, ny, nwork;
} op_case;

/* cfg: the 24 numbers of make_conv.py's CFG list. */
static int op_from_cfg(op_case *o, const float *f, int slab) {
    int v[24];
    for (int i = 0; i < 24; i++) v[i] = (int)f[i];
    memset(o, 0, sizeof *o);
    o->kind = v[0], o->has_bias = v[23];
    int N = v[1], Cin = v[2], D = v[3], H = v[4], W = v[5], Cout = v[6];
    if (o->kind == 0) {
        o->c = (conv3d_dims){.N = N, .Cin = Cin, .D = D, .H = H, .W = W, .Cout = Cout,
                             .kd = v[7], .kh = v[8], .kw = v[9], .sd = v[10], .sh = v[11],
                             .sw = v[12], .pd = v[13], .ph = v[14], .pw = v[15], .dd = v[16],
                             .dh = v[17], .dw = v[18], .pad_mode = v[19], .slab = slab};
        if (conv3d_dims_init(&o->c) < 0) return -1;
        o->ny = (size_t)N * Cout * o->c.OD * o->c.OH * o->c.OW;
        o->nwork = conv3d_workspace_size(&o->c);
    } else {
        o->t = (conv_transpose3d_dims){.N = N, .Cin = Cin, .D = D, .H = H, .W = W, .Cout = Cout,
                                       .kd = v[7], .kh = v[8], .kw = v[9], .sd = v[10],
                                       .sh = v[11], .sw = v[12], .pd = v[13], .ph = v[14],
                                       .pw = v[15], .dd = v[16], .dh = v[17], .dw = v[18],
                                       .opd = v[20], .oph = v[21], .opw = v[22], .slab = slab};
        if (conv_transpose3d_dims_init(&o->t) < 0) return -1;
        o->ny = (size_t)N * Cout * o->t.OD * o->t.OH * o->t.OW;
        o->nwork = conv_transpose3d_workspace_size(&o->t);
    }
    o->nx = (size_t)N * Cin * D * H * W;
    o->nw = (size_t)Cin * Cout * v[7] * v[8] * v[9];
    o->nb = (size_t)Cout;
    if (o->nwork == 0) o->nwork = 1;
    return 0;
}

static void fwd64(const op_case *o, double *y, double *work, const double *x, const double *w,
                  const double *b) {
    if (o->kind == 0) conv3d_forward_f64(y, work, x, w, o->has_bias ? b : NULL, &o->c);
    else conv_transpose3d_forward_f64(y, work, x, w, o->has_bias ? b : NULL, &o->t);
}
static void bwd64(const op_case *o, double *dx, double *dw, double *db, double *work,
                  const double *g, const double *x, const double *w) {
    if (o->kind == 0) conv3d_backward_f64(dx, dw, o->has_bias ? db : NULL, work, g, x, w, &o->c);
    else conv_transpose3d_backward_f64(dx, dw, o->has_bias ? db : NULL, work, g, x, w, &o->t);
}
static void fwd32(const op_case *o, float *y, float *work, const float *x, const float *w,
                  const float *b) {
    if (o->kind == 0) conv3d_forward(y, work, x, w, o->has_bias ? b : NULL, &o->c);
    else conv_transpose3d_forward(y, work, x, w, o->has_bias ? b : NULL, &o->t);
}
static void bwd32(const op_case *o, float *dx, float *dw, float *db, float *work,
                  const float *g, const float *x, const float *w) {
    if (o->kind == 0) conv3d_backward(dx, dw, o->has_bias ? db : NULL, work, g, x, w, &o->c);
    else conv_transpose3d_backward(dx, dw, o->has_bias ? db : NULL, work, g, x, w, &o->t);
}

/* All buffers of one op, in double and float. */
typedef struct {
    double *x, *w, *b, *g, *y, *dx, *dw, *db, *work;
    float *xf, *wf, *bf, *gf, *yf, *dxf, *dwf, *dbf, *workf;
} bufs;

static void bufs_alloc(bufs *B, const op_case *o) {
    B->x = calloc(o->nx, 8), B->w = calloc(o->nw, 8), B->b = calloc(o->nb, 8);
    B->g = calloc(o->ny, 8), B->y = calloc(o->ny, 8), B->dx = calloc(o->nx, 8);
    B->dw = calloc(o->nw, 8), B->db = calloc(o->nb, 8), B->work = calloc(o->nwork, 8);
    B->xf = calloc(o->nx, 4), B->wf = calloc(o->nw, 4), B->bf = calloc(o->nb, 4);
    B->gf = calloc(o->ny, 4), B->yf = calloc(o->ny, 4), B->dxf = calloc(o->nx, 4);
    B->dwf = calloc(o->nw, 4), B->dbf = calloc(o->nb, 4), B->workf = calloc(o->nwork, 4);
}

static void bufs_free(bufs *B) {
    double *d[] = {B->x, B->w, B->b, B->g, B->y, B->dx, B->dw, B->db, B->work};
    float *f[] = {B->xf, B->wf, B->bf, B->gf, B->yf, B->dxf, B->dwf, B->dbf, B->workf};
    for (int i = 0; i < 9; i++) free(d[i]), free(f[i]);
}

/* A local LCG: uniform in [-1, 1), exactly representable in float. */
static double lcg_next(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(int32_t)(*s >> 32) / 2147483648.0;
}

static void fill_random(bufs *B, const op_case *o, uint64_t seed) {
    struct { double *d; float *f; size_t n; } t[] = {
        {B->x, B->xf, o->nx}, {B->w, B->wf, o->nw}, {B->b, B->bf, o->nb}, {B->g, B->gf, o->ny}};
    for (int i = 0; i < 4; i++)
        for (size_t j = 0; j < t[i].n; j++) t[i].f[j] = (float)lcg_next(&seed), t[i].d[j] = t[i].f[j];
}

static double max_abs(const double *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}
static double max_diff_d(const double *a, const double *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(a[i] - b[i]) > m ? fabs(a[i] - b[i]) : m;
    return m;
}
static double max_diff_f(const float *a, const double *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(a[i] - b[i]) > m ? fabs(a[i] - b[i]) : m;
    return m;
}

/* Our double and float results against PyTorch's float64 ones. */
static void test_torch_parity(void) {
    char path[PATH_MAX + 64], file[128];
    for (int c = 0; c < NCASES; c++) {
        snprintf(file, sizeof file, "%s.lsdm", cases[c]);
        fixture_path(path, sizeof path, "conv", file);
        fixture fx;
        if (fixture_load(&fx, path) < 0) {
            fprintf(stderr, "missing fixture %s (make it with tests/torch/make_conv.py)\n", path);
            CHECK(0);
            continue;
        }
        size_t n;
        const float *cfg = fixture_get(&fx, "cfg", &n);
        op_case o;
        CHECK(cfg && n == 24 && op_from_cfg(&o, cfg, 0) == 0);
        if (!cfg || n != 24) { fixture_free(&fx); continue; }
        bufs B;
        bufs_alloc(&B, &o);
        struct { const char *name; double *d; float *f; size_t n; } in[] = {
            {"x", B.x, B.xf, o.nx}, {"w", B.w, B.wf, o.nw}, {"b", B.b, B.bf, o.nb},
            {"g", B.g, B.gf, o.ny}};
        for (int i = 0; i < 4; i++) {
            if (i == 2 && !o.has_bias) continue;
            const float *v = fixture_get(&fx, in[i].name, &n);
            CHECK(v && n == in[i].n);
            for (size_t j = 0; v && j < n && j < in[i].n; j++) in[i].f[j] = v[j], in[i].d[j] = v[j];
        }
        fwd64(&o, B.y, B.work, B.x, B.w, B.b);
        bwd64(&o, B.dx, B.dw, B.db, B.work, B.g, B.x, B.w);
        fwd32(&o, B.yf, B.workf, B.xf, B.wf, B.bf);
        bwd32(&o, B.dxf, B.dwf, B.dbf, B.workf, B.gf, B.xf, B.wf);
        struct { const char *name; double *d; float *f; size_t n; } out[] = {
            {"out", B.y, B.yf, o.ny}, {"dx", B.dx, B.dxf, o.nx}, {"dw", B.dw, B.dwf, o.nw},
            {"db", B.db, B.dbf, o.nb}};
        double e64 = 0, e32 = 0;
        for (int i = 0; i < 4; i++) {
            if (i == 3 && !o.has_bias) continue;
            const float *ref = fixture_get(&fx, out[i].name, &n);
            CHECK(ref && n == out[i].n);
            if (!ref || n != out[i].n) continue;
            double *r = malloc(n * sizeof *r);
            for (size_t j = 0; j < n; j++) r[j] = ref[j];
            double scale = max_abs(r, n) > 1 ? max_abs(r, n) : 1;
            double a = max_diff_d(out[i].d, r, n), b = max_diff_f(out[i].f, r, n);
            CHECK(a <= 1e-6 * scale); /* the fixture holds f32-rounded values */
            CHECK(b <= 1e-5 * scale);
            e64 = a > e64 ? a : e64, e32 = b > e32 ? b : e32;
            free(r);
        }
        printf("torch %-15s max abs err: f64 %.2e, f32 %.2e\n", cases[c], e64, e32);
        bufs_free(&B);
        fixture_free(&fx);
    }
}

/* L = sum(out * g); the analytic gradient of the double backward against
 * central differences, on (up to) 40 entries of x, w and b. */
static double loss64(const op_case *o, bufs *B) {
    fwd64(o, B->y, B->work, B->x, B->w, B->b);
    double L = 0;
    for (size_t i = 0; i < o->ny; i++) L += B->y[i] * B->g[i];
    return L;
}

static void test_finite_differences(const op_case *o, const char *name, uint64_t seed) {
    bufs B;
    bufs_alloc(&B, o);
    fill_random(&B, o, seed);
    bwd64(o, B.dx, B.dw, B.db, B.work, B.g, B.x, B.w);
    struct { double *p, *grad; size_t n; } t[] = {
        {B.x, B.dx, o->nx}, {B.w, B.dw, o->nw}, {B.b, B.db, o->has_bias ? o->nb : 0}};
    const double h = 1e-6;
    double worst = 0;
    for (int i = 0; i < 3; i++) {
        size_t step = t[i].n > 40 ? t[i].n / 40 : 1;
        for (size_t j = 0; j < t[i].n; j += step) {
            double keep = t[i].p[j];
            t[i].p[j] = keep + h;
            double lp = loss64(o, &B);
            t[i].p[j] = keep - h;
            double lm = loss64(o, &B);
            t[i].p[j] = keep;
            double fd = (lp - lm) / (2 * h), an = t[i].grad[j];
            double rel = fabs(fd - an) / (fabs(an) > 1 ? fabs(an) : 1);
            CHECK(rel <= 1e-6);
            worst = rel > worst ? rel : worst;
        }
    }
    printf("finite differences %-15s max rel err %.2e\n", name, worst);
    bufs_free(&B);
}

/* The float path against the double one on the same inputs. */
static void test_float_vs_double(const op_case *o, const char *name, uint64_t seed) {
    bufs B;
    bufs_alloc(&B, o);
    fill_random(&B, o, seed);
    fwd64(o, B.y, B.work, B.x, B.w, B.b);
    bwd64(o, B.dx, B.dw, B.db, B.work, B.g, B.x, B.w);
    fwd32(o, B.yf, B.workf, B.xf, B.wf, B.bf);
    bwd32(o, B.dxf, B.dwf, B.dbf, B.workf, B.gf, B.xf, B.wf);
    struct { double *d; float *f; size_t n; } t[] = {
        {B.y, B.yf, o->ny}, {B.dx, B.dxf, o->nx}, {B.dw, B.dwf, o->nw},
        {B.db, B.dbf, o->has_bias ? o->nb : 0}};
    double worst = 0;
    for (int i = 0; i < 4; i++) {
        if (!t[i].n) continue;
        double rel = max_diff_f(t[i].f, t[i].d, t[i].n) / max_abs(t[i].d, t[i].n);
        CHECK(rel <= 1e-5);
        worst = rel > worst ? rel : worst;
    }
    printf("float vs double %-15s max rel err %.2e\n", name, worst);
    bufs_free(&B);
}

/* Slabs of one output row give the same results as one slab of all rows;
 * a second backward doubles every gradient (accumulation); NULL
 * gradients are skipped. */
static void test_slabs_and_accumulation(const float *cfg, const char *name) {
    op_case o1, o2;
    CHECK(op_from_cfg(&o1, cfg, 1) == 0 && op_from_cfg(&o2, cfg, 1 << 24) == 0);
    bufs A, B;
    bufs_alloc(&A, &o1), bufs_alloc(&B, &o2);
    fill_random(&A, &o1, 7), fill_random(&B, &o2, 7);
    fwd64(&o1, A.y, A.work, A.x, A.w, A.b);
    bwd64(&o1, A.dx, A.dw, A.db, A.work, A.g, A.x, A.w);
    fwd64(&o2, B.y, B.work, B.x, B.w, B.b);
    bwd64(&o2, B.dx, B.dw, B.db, B.work, B.g, B.x, B.w);
    CHECK(max_diff_d(A.y, B.y, o1.ny) <= 1e-12 * max_abs(B.y, o1.ny));
    CHECK(max_diff_d(A.dx, B.dx, o1.nx) <= 1e-12 * max_abs(B.dx, o1.nx));
    CHECK(max_diff_d(A.dw, B.dw, o1.nw) <= 1e-12 * max_abs(B.dw, o1.nw));
    /* again, each gradient alone, into the same buffers: 2x */
    bwd64(&o1, A.dx, NULL, NULL, A.work, A.g, NULL, A.w);
    bwd64(&o1, NULL, A.dw, NULL, A.work, A.g, A.x, NULL);
    if (o1.kind == 0 && o1.has_bias) conv3d_backward_f64(NULL, NULL, A.db, A.work, A.g, NULL, NULL, &o1.c);
    if (o1.kind == 1 && o1.has_bias) conv_transpose3d_backward_f64(NULL, NULL, A.db, A.work, A.g, NULL, NULL, &o1.t);
    double e = 0;
    for (size_t i = 0; i < o1.nx; i++) e = fmax(e, fabs(A.dx[i] - 2 * B.dx[i]));
    for (size_t i = 0; i < o1.nw; i++) e = fmax(e, fabs(A.dw[i] - 2 * B.dw[i]));
    for (size_t i = 0; o1.has_bias && i < o1.nb; i++) e = fmax(e, fabs(A.db[i] - 2 * B.db[i]));
    CHECK(e <= 1e-12 * (1 + max_abs(B.dx, o1.nx) + max_abs(B.dw, o1.nw)));
    if (e > 1e-12 * (1 + max_abs(B.dx, o1.nx) + max_abs(B.dw, o1.nw)))
        fprintf(stderr, "accumulation %s: err %g\n", name, e);
    bufs_free(&A), bufs_free(&B);
}

/* The fused 1x1x1 backward sums per block of columns and then over the
 * blocks in order: 1, 2 and 3 threads give the same bits; it equals the
 * double reference, and the path without a workspace (the GEMMs over all
 * columns) to rounding. */
/* The backward gives the same bits for 1, 2 and 3 threads where its
 * sums do not follow the thread split: all of the fused pointwise
 * backward, the channels-last weight gradient and the bias gradient (the
 * data gradient's slabs, and so its rounding, depend on the thread count:
 * dx_too 0); and dW agrees with the double reference and with the path
 * it replaces (the GEMM without workspace; dot products or BLAS). */
static void test_threads(const float *cfg, const char *name, int dx_too) {
    op_case o;
    CHECK(op_from_cfg(&o, cfg, 0) == 0 && o.nwork > 1);
    bufs A, B;
    bufs_alloc(&A, &o), bufs_alloc(&B, &o);
    fill_random(&A, &o, 21), fill_random(&B, &o, 21);
    conv3d_dims d1 = o.c;
    d1.threads = 1;
    conv3d_backward(A.dxf, A.dwf, A.dbf, A.workf, A.gf, A.xf, A.wf, &d1);
    for (int T = 2; T <= 3; T++) {
        conv3d_dims dt = o.c;
        dt.threads = T;
        memset(B.dxf, 0, o.nx * 4), memset(B.dwf, 0, o.nw * 4), memset(B.dbf, 0, o.nb * 4);
        float *work = malloc((conv3d_workspace_size(&dt) + 1) * sizeof *work); /* sized per thread count */
        CHECK(work != NULL);
        if (work) conv3d_backward(B.dxf, B.dwf, B.dbf, work, B.gf, B.xf, B.wf, &dt);
        free(work);
        CHECK(!dx_too || !memcmp(A.dxf, B.dxf, o.nx * 4));
        CHECK(!memcmp(A.dwf, B.dwf, o.nw * 4));
        CHECK(!memcmp(A.dbf, B.dbf, o.nb * 4));
    }
    conv3d_backward_f64(A.dx, A.dw, A.db, A.work, A.g, A.x, A.w, &o.c);
    memset(B.dwf, 0, o.nw * 4), memset(B.dbf, 0, o.nb * 4);
    if (cfg[7] == 1 && cfg[8] == 1 && cfg[9] == 1) /* pointwise, no work: the GEMM path */
        conv3d_backward(NULL, B.dwf, B.dbf, NULL, B.gf, B.xf, B.wf, &o.c);
    else { /* the channels-last weight gradient off: dot products or BLAS */
        setenv("LSDM_CONV_WGRAD", "0", 1);
        conv3d_backward(NULL, B.dwf, B.dbf, B.workf, B.gf, B.xf, B.wf, &o.c);
        unsetenv("LSDM_CONV_WGRAD");
    }
    double e = 0, m = 0, e2 = 0;
    for (size_t i = 0; i < o.nw; i++) {
        m = fmax(m, fabs(A.dw[i]));
        e = fmax(e, fabs(A.dwf[i] - A.dw[i])), e2 = fmax(e2, fabs((double)A.dwf[i] - B.dwf[i]));
    }
    printf("%s backward: 1 = 2 = 3 threads; dW vs double %.2e, vs the other path %.2e (max %.3g)\n",
           name, e / m, e2 / m, m);
    CHECK(m > 0 && e <= 1e-5 * m && e2 <= 1e-5 * m);
    bufs_free(&A), bufs_free(&B);
}

/* Output sizes of the reference model's layers, and nonsense refused. */
static void test_dims(void) {
    conv3d_dims c = {.N = 1, .Cin = 16, .D = 32, .H = 256, .W = 256, .Cout = 32,
                     .kd = 4, .kh = 4, .kw = 4, .sd = 2, .sh = 2, .sw = 2, .pd = 1, .ph = 1, .pw = 1};
    CHECK(conv3d_dims_init(&c) == 0 && c.OD == 16 && c.OH == 128 && c.OW == 128);
    CHECK(c.dd == 1 && c.dh == 1 && c.dw == 1);
    conv3d_dims u = {.N = 2, .Cin = 64, .D = 8, .H = 64, .W = 64, .Cout = 64,
                     .kd = 1, .kh = 3, .kw = 3, .ph = 1, .pw = 1};
    CHECK(conv3d_dims_init(&u) == 0 && u.OD == 8 && u.OH == 64 && u.OW == 64);
    /* a pointwise conv: no columns; with few channels the fused
     * backward's per-block sums, 4 blocks of 8192 columns of 8x64 + 8 */
    conv3d_dims p = {.N = 1, .Cin = 64, .D = 8, .H = 64, .W = 64, .Cout = 8, .kd = 1, .kh = 1, .kw = 1};
    CHECK(conv3d_dims_init(&p) == 0 && conv3d_workspace_size(&p) == 4 * (8 * 64 + 8));
    conv3d_dims pw = {.N = 1, .Cin = 256, .D = 8, .H = 64, .W = 64, .Cout = 256, .kd = 1, .kh = 1, .kw = 1};
    CHECK(conv3d_dims_init(&pw) == 0 && conv3d_workspace_size(&pw) == 0);
    CHECK(conv3d_flops(&p) == 2.0 * 64 * 8 * 8 * 64 * 64);
    conv_transpose3d_dims t = {.N = 1, .Cin = 64, .D = 8, .H = 64, .W = 64, .Cout = 64,
                               .kd = 4, .kh = 4, .kw = 4, .sd = 2, .sh = 2, .sw = 2,
                               .pd = 1, .ph = 1, .pw = 1};
    CHECK(conv_transpose3d_dims_init(&t) == 0 && t.OD == 16 && t.OH == 128 && t.OW == 128);
    CHECK(t.adj.Cin == 64 && t.adj.D == 16 && t.adj.OD == 8 && t.adj.OW == 64);

    conv3d_dims bad = c;
    bad.N = 0;
    CHECK(conv3d_dims_init(&bad) == -1 && strstr(lsdm_err_msg(), "positive"));
    bad = c, bad.kd = 40, bad.pd = 0;
    CHECK(conv3d_dims_init(&bad) == -1 && strstr(lsdm_err_msg(), "larger"));
    bad = c, bad.pw = -1;
    CHECK(conv3d_dims_init(&bad) == -1 && strstr(lsdm_err_msg(), "padding"));
    bad = c, bad.pad_mode = 7;
    CHECK(conv3d_dims_init(&bad) == -1 && strstr(lsdm_err_msg(), "mode"));
    bad = c, bad.Cin = 1 << 20;
    CHECK(conv3d_dims_init(&bad) == -1 && strstr(lsdm_err_msg(), "too large"));
    conv_transpose3d_dims tb = t;
    tb.oph = 2;
    CHECK(conv_transpose3d_dims_init(&tb) == -1 && strstr(lsdm_err_msg(), "output padding"));
    tb = t, tb.pd = 9;
    CHECK(conv_transpose3d_dims_init(&tb) == -1 && strstr(lsdm_err_msg(), "empty"));
}

/* The float kernels' two paths: the AVX-512 one (when the CPU has it) and
 * the BLAS one (LSDM_CPU_ISA=generic) give the same forward and gradients
 * (within 1e-5 of the largest value), on shapes that are not multiples of
 * the register tiles, and both agree with the double reference. */
static void test_isa_paths(const float *cfg, const char *name) {
    op_case o;
    CHECK(op_from_cfg(&o, cfg, 0) == 0);
    bufs A, B;
    bufs_alloc(&A, &o), bufs_alloc(&B, &o);
    fill_random(&A, &o, 11), fill_random(&B, &o, 11);
    /* dx, dw start non-zero: the fast path must accumulate (+=) too */
    for (size_t i = 0; i < o.nx; i++) A.dxf[i] = B.dxf[i] = 0.25f, A.dx[i] = 0.25;
    for (size_t i = 0; i < o.nw; i++) A.dwf[i] = B.dwf[i] = -0.5f, A.dw[i] = -0.5;
    fwd32(&o, A.yf, A.workf, A.xf, A.wf, A.bf);
    if (o.kind == 0) { /* the forward alone in exactly its own workspace: the same bits */
        size_t nf = conv3d_forward_workspace_size(&o.c);
        float *fw = nf ? malloc(nf * sizeof *fw) : NULL, *y2 = malloc(o.ny * sizeof *y2);
        CHECK(nf <= conv3d_workspace_size(&o.c) && (fw || !nf) && y2);
        if ((fw || !nf) && y2) {
            conv3d_forward(y2, fw, A.xf, A.wf, o.has_bias ? A.bf : NULL, &o.c);
            CHECK(!memcmp(y2, A.yf, o.ny * sizeof *y2));
        }
        free(fw), free(y2);
    }
    bwd32(&o, A.dxf, A.dwf, A.dbf, A.workf, A.gf, A.xf, A.wf);
    setenv("LSDM_CPU_ISA", "generic", 1);
    CHECK(gemm_avx512_usable() == 0);
    fwd32(&o, B.yf, B.workf, B.xf, B.wf, B.bf);
    bwd32(&o, B.dxf, B.dwf, B.dbf, B.workf, B.gf, B.xf, B.wf);
    unsetenv("LSDM_CPU_ISA");
    fwd64(&o, A.y, A.work, A.x, A.w, A.b);
    bwd64(&o, A.dx, A.dw, A.db, A.work, A.g, A.x, A.w);
    struct { float *a, *b; double *ref; size_t n; } t[] = {
        {A.yf, B.yf, A.y, o.ny}, {A.dxf, B.dxf, A.dx, o.nx}, {A.dwf, B.dwf, A.dw, o.nw}};
    double worst = 0, worst_ref = 0;
    for (int i = 0; i < 3; i++) {
        double m = 0, e = 0, er = 0;
        for (size_t j = 0; j < t[i].n; j++) m = fmax(m, fabs(t[i].b[j]));
        for (size_t j = 0; j < t[i].n; j++) e = fmax(e, fabs((double)t[i].a[j] - t[i].b[j]));
        for (size_t j = 0; j < t[i].n; j++) er = fmax(er, fabs(t[i].a[j] - t[i].ref[j]));
        CHECK(m > 0 && e <= 1e-5 * m && er <= 1e-5 * m);
        worst = fmax(worst, e / m), worst_ref = fmax(worst_ref, er / m);
    }
    printf("avx512 vs generic %-14s max rel diff %.2e (vs double %.2e)%s\n", name, worst, worst_ref,
           gemm_avx512_usable() ? "" : " [no AVX-512 here: generic twice]");
    bufs_free(&A), bufs_free(&B);
}

/* The stride-2 gather and the row copy of vol2col: every length 0..40 (full blocks of 16,
 * tails, both masked halves), a source sized exactly 2n-1 floats (so an
 * over-read shows under ASan) and a guard value after the output. */
static void test_gather_s2(void) {
    if (!gemm_avx512_usable()) {
        printf("gather_s2: no AVX-512 here, not run\n");
        return;
    }
    int bad = 0;
    for (int n = 0; n <= 40; n++) {
        float *src = malloc((size_t)(n ? 2 * n - 1 : 1) * sizeof *src);
        float dst[41];
        CHECK(src != NULL);
        if (!src) return;
        for (int i = 0; i < 2 * n - 1; i++) src[i] = 1.5f * (float)i - 7;
        for (int i = 0; i <= 40; i++) dst[i] = -99;
        gemm_avx512_gather_s2(dst, src, n);
        for (int i = 0; i < n; i++) bad += dst[i] != src[2 * i];
        bad += dst[n] != -99;
        /* and the plain copy of vol2col's stride-1 rows: the first n of src */
        int m = n;
        for (int i = 0; i <= 40; i++) dst[i] = -99;
        gemm_avx512_copy(dst, src, m);
        for (int i = 0; i < m; i++) bad += dst[i] != src[i];
        bad += dst[m] != -99;
        free(src);
    }
    CHECK(bad == 0);
    printf("gather_s2, copy: lengths 0..40, %d wrong values\n", bad);
    /* the 16x16-block transpose: every size up to 2 blocks and a bit, into
     * a destination whose other values stay */
    bad = 0;
    enum { LDS = 40, LDD = 41 };
    float src[37 * LDS], dst[37 * LDD];
    for (int i = 0; i < 37 * LDS; i++) src[i] = (float)i;
    for (int R = 1; R <= 37; R++)
        for (int C = 1; C <= 37; C++) {
            for (int i = 0; i < 37 * LDD; i++) dst[i] = -1;
            gemm_avx512_transpose(dst, LDD, src, LDS, R, C);
            for (int j = 0; j < 37; j++)
                for (int i = 0; i < LDD; i++)
                    bad += dst[j * LDD + i] != (j < C && i < R ? src[i * LDS + j] : -1.0f);
        }
    CHECK(bad == 0);
    printf("transpose: 1..37 x 1..37, %d wrong values\n", bad);
}

int main(void) {
    test_dims();
    test_torch_parity();
    /* the numerical tests run on the fixtures' configurations with our own
     * random inputs, plus two larger ones with many slabs */
    char path[PATH_MAX + 64], file[128];
    for (int c = 0; c < NCASES; c++) {
        snprintf(file, sizeof file, "%s.lsdm", cases[c]);
        fixture_path(path, sizeof path, "conv", file);
        fixture fx;
        size_t n;
        if (fixture_load(&fx, path) < 0) continue; /* counted as a failure above */
        const float *cfg = fixture_get(&fx, "cfg", &n);
        op_case o;
        if (cfg && n == 24 && op_from_cfg(&o, cfg, 0) == 0) {
            test_finite_differences(&o, cases[c], 100 + c);
            test_float_vs_double(&o, cases[c], 200 + c);
            test_slabs_and_accumulation(cfg, cases[c]);
        }
        fixture_free(&fx);
    }
    /* larger: many channels (long dot products), small slabs */
    const float big[][24] = {
        {0, 2, 16, 6, 20, 24, 24, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1},
        {0, 1, 32, 4, 16, 16, 16, 4, 4, 4, 2, 2, 2, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1},
        {1, 1, 24, 4, 8, 8, 16, 4, 4, 4, 2, 2, 2, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1},
    };
    for (int i = 0; i < 3; i++) {
        op_case o;
        CHECK(op_from_cfg(&o, big[i], 4096) == 0);
        test_float_vs_double(&o, i == 2 ? "big convT" : "big conv", 300 + i);
        test_slabs_and_accumulation(big[i], "big");
    }
    /* both dispatch paths: Cout 1, 8, 16, 33, 64, 512; odd sizes, strides,
     * replicate padding, a transposed conv (its passes are conv3d's) */
    const struct { const char *name; float cfg[24]; } isa[] = {
        {"cout1_k3", {0, 1, 5, 5, 9, 13, 1, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1}},
        {"cout8_k3rep", {0, 2, 3, 4, 7, 37, 8, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1}},
        {"cout16_k4s2", {0, 1, 6, 6, 11, 35, 16, 4, 4, 4, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1}},
        {"cout33_k3", {0, 1, 7, 3, 10, 21, 33, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0}},
        {"cout64_k133", {0, 2, 9, 3, 9, 70, 64, 1, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1}},
        {"cout512_k133", {0, 1, 20, 2, 5, 6, 512, 1, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1}},
        {"cin300_k3", {0, 1, 300, 3, 4, 5, 12, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1}},
        {"convT_33-40", {1, 1, 33, 3, 5, 7, 40, 4, 4, 4, 2, 2, 2, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1}},
        /* stride-2 rows wider than one 16-lane gather, zero and replicate padding */
        {"cout24_k4s2w70", {0, 1, 3, 4, 6, 70, 24, 4, 4, 4, 2, 2, 2, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1}},
        {"cout8_k3s2rep", {0, 2, 2, 3, 5, 37, 8, 3, 3, 3, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0}},
        {"convT_16-8w20", {1, 1, 16, 2, 3, 20, 8, 4, 4, 4, 2, 2, 2, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1}},
        /* the implicit GEMM (output rows >= 16 wide): Cout < 8 (one-row
         * kernel), partial tiles in both directions, stride 2, several
         * output rows per job with a shorter last job */
        {"cout1_k3w40rep", {0, 1, 5, 4, 6, 40, 1, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1}},
        {"cout3_k4s2w70", {0, 2, 2, 5, 6, 70, 3, 4, 4, 4, 2, 2, 2, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1}},
        {"cout37_k3w33rep", {0, 2, 3, 4, 5, 33, 37, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0}},
        {"cout9_k3h40rep", {0, 1, 2, 3, 40, 20, 9, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1}},
        {"cout8_k4s2h44", {0, 1, 2, 4, 44, 36, 8, 4, 4, 4, 2, 2, 2, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1}},
        /* 1x1x1 with <= 16 input channels: the short-K kernel (masked tail,
         * blocks of 1024 voxels and a shorter last one); 17: the GEMM */
        {"pw_8-64", {0, 2, 8, 3, 5, 37, 64, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1}},
        {"pw_16-3_nobias", {0, 1, 16, 3, 20, 45, 3, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0}},
        {"pw_17-5", {0, 1, 17, 2, 9, 11, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1}},
        /* the channels-last weight gradient (Cin >= 16, Cout >= 8): slabs of
         * rows with a shorter last one (replicate padding); of whole planes
         * with a shorter last one, stride 2, two samples; dilation 2 and
         * a last group of 8 of 40 channels; Cout not a multiple of 8 */
        {"wg_rows_rep", {0, 1, 20, 3, 30, 40, 12, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1}},
        {"wg_planes_s2", {0, 2, 24, 10, 20, 20, 8, 4, 4, 4, 2, 2, 2, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1}},
        {"wg_dil2_c40", {0, 1, 40, 5, 9, 11, 16, 3, 3, 3, 1, 1, 1, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0}},
        {"wg_k133_co13", {0, 2, 32, 4, 12, 50, 13, 1, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1}},
        /* Winograd F(2,3) along W (conv3d_wino.h), forward and data gradient:
         * 8x8 planes (one run of 32 tiles each) with a partial last panel;
         * 3x3x3 on 16x16 planes (4 runs a plane, a last job of fewer runs);
         * rows of 32 tiles (W 64) */
        {"wino_8x8", {0, 2, 24, 3, 8, 8, 28, 1, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1}},
        {"wino_16x16_k3", {0, 1, 16, 5, 16, 16, 8, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1}},
        {"wino_w64", {0, 1, 24, 2, 3, 64, 24, 1, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0}},
        /* ... with replicate padding (forward only: its data gradient is not a forward) */
        {"wino_rep_k3", {0, 2, 16, 4, 8, 32, 16, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1}},
    };
    for (size_t i = 0; i < sizeof isa / sizeof *isa; i++) test_isa_paths(isa[i].cfg, isa[i].name);
    test_gather_s2();
    const float pw_threads[24] = {0, 2, 8, 5, 33, 40, 64, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1};
    const float wg_threads[24] = {0, 2, 40, 5, 20, 30, 24, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1};
    test_threads(pw_threads, "pointwise", 1);
    test_threads(wg_threads, "channels-last dW", 0);
    /* one slab in all: the output channels split among the threads */
    const float wg_split[24] = {0, 1, 32, 4, 6, 6, 40, 1, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1};
    test_threads(wg_split, "channels-last dW, 1 slab", 0);
    /* Winograd along W: dW from four channels-last sub-gradients */
    const float wino_threads[24] = {0, 2, 96, 3, 8, 8, 96, 1, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1};
    test_threads(wino_threads, "Winograd dW", 0);
    const float wino_rep_threads[24] = {0, 1, 96, 3, 6, 16, 96, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1};
    test_threads(wino_rep_threads, "Winograd dW, replicate", 0);
    return check_done("test_conv3d");
}
