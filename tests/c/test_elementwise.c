/* Element-wise ops, channel concat/slice, linear and SPADE modulation:
 * gradients of the double versions against central differences, float
 * against double, and PyTorch fixtures (tests/fixtures/elementwise, made by
 * tests/torch/make_norm.py). Every op is seen through one table (ew_op)
 * so that the three kinds of check are written once. */
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "opcheck.h"

#include "elementwise.h"
#include "linear.h"
#include "spade.h"

enum { ADD, MUL, ADD_BC, MUL_BC, SCALE_SHIFT, CONCAT, SLICE, LINEAR, SPADE, SCALE_ADD };

typedef struct {
    int kind;
    int N, C, S, per_n;   // (N,C,S) ops and broadcasts
    int Ca, Cb, c0, Cs;   // concat, slice
    int B, IC, OC, bias;  // linear
    double alpha;         // scale_add
    int nin;              // inputs, and their sizes
    size_t in_n[3], out_n;
} ew_op;

static const char *const in_names[][3] = {
    [ADD] = {"a", "b"}, [MUL] = {"a", "b"}, [ADD_BC] = {"x", "v"}, [MUL_BC] = {"x", "v"},
    [SCALE_SHIFT] = {"x", "v", "v2"}, [CONCAT] = {"a", "b"}, [SLICE] = {"x"},
    [LINEAR] = {"x", "w", "b"}, [SPADE] = {"x", "gamma", "beta"}, [SCALE_ADD] = {"y", "x"}};

static void ew_sizes(ew_op *o) {
    size_t n = (size_t)o->N * o->C * o->S, v = (size_t)(o->per_n ? o->N : 1) * o->C;
    switch (o->kind) {
    case ADD: case MUL: case SCALE_ADD:
        o->nin = 2, o->in_n[0] = o->in_n[1] = o->out_n = n; break;
    case ADD_BC: case MUL_BC:
        o->nin = 2, o->in_n[0] = o->out_n = n, o->in_n[1] = v; break;
    case SCALE_SHIFT:
        o->nin = 3, o->in_n[0] = o->out_n = n, o->in_n[1] = o->in_n[2] = v; break;
    case CONCAT:
        o->nin = 2, o->in_n[0] = (size_t)o->N * o->Ca * o->S, o->in_n[1] = (size_t)o->N * o->Cb * o->S;
        o->out_n = o->in_n[0] + o->in_n[1]; break;
    case SLICE:
        o->nin = 1, o->in_n[0] = n, o->out_n = (size_t)o->N * o->Cs * o->S; break;
    case LINEAR:
        o->nin = o->bias ? 3 : 2, o->in_n[0] = (size_t)o->B * o->IC;
        o->in_n[1] = (size_t)o->OC * o->IC, o->in_n[2] = (size_t)o->OC;
        o->out_n = (size_t)o->B * o->OC; break;
    case SPADE:
        o->nin = 3, o->in_n[0] = o->in_n[1] = o->in_n[2] = o->out_n = n; break;
    }
}

/* The same dispatch for both precisions: SUF is empty or _f64. */
#define EW_FORWARD(SUF)                                                                       \
    switch (o->kind) {                                                                        \
    case ADD: add_forward##SUF(out, in[0], in[1], o->out_n); break;                           \
    case MUL: mul_forward##SUF(out, in[0], in[1], o->out_n); break;                           \
    case ADD_BC: add_bcast_forward##SUF(out, in[0], in[1], o->N, o->C, o->S, o->per_n); break; \
    case MUL_BC: mul_bcast_forward##SUF(out, in[0], in[1], o->N, o->C, o->S, o->per_n); break; \
    case SCALE_SHIFT:                                                                         \
        scale_shift_forward##SUF(out, in[0], in[1], in[2], o->N, o->C, o->S, o->per_n); break; \
    case CONCAT: concat_forward##SUF(out, in[0], in[1], o->N, o->Ca, o->Cb, o->S); break;      \
    case SLICE: slice_forward##SUF(out, in[0], o->N, o->C, o->c0, o->Cs, o->S); break;         \
    case LINEAR:                                                                              \
        linear_forward##SUF(out, in[0], in[1], o->bias ? in[2] : NULL, o->B, o->IC, o->OC); break; \
    case SPADE: spade_forward##SUF(out, in[0], in[1], in[2], o->out_n); break;                \
    case SCALE_ADD:                                                                           \
        memcpy(out, in[0], o->out_n * sizeof *out);                                           \
        scale_add##SUF(out, o->alpha, in[1], o->out_n); break;                                \
    }

#define EW_BACKWARD(SUF)                                                                      \
    switch (o->kind) {                                                                        \
    case ADD: add_backward##SUF(din[0], din[1], dout, o->out_n); break;                       \
    case MUL: mul_backward##SUF(din[0], din[1], dout, in[0], in[1], o->out_n); break;         \
    case ADD_BC: add_bcast_backward##SUF(din[0], din[1], dout, o->N, o->C, o->S, o->per_n); break; \
    case MUL_BC:                                                                              \
        mul_bcast_backward##SUF(din[0], din[1], dout, in[0], in[1], o->N, o->C, o->S, o->per_n); break; \
    case SCALE_SHIFT:                                                                         \
        scale_shift_backward##SUF(din[0], din[1], din[2], dout, in[0], in[1], o->N, o->C, o->S, \
                                  o->per_n); break;                                           \
    case CONCAT: concat_backward##SUF(din[0], din[1], dout, o->N, o->Ca, o->Cb, o->S); break;  \
    case SLICE: slice_backward##SUF(din[0], dout, o->N, o->C, o->c0, o->Cs, o->S); break;      \
    case LINEAR:                                                                              \
        linear_backward##SUF(din[0], din[1], o->bias ? din[2] : NULL, dout, in[0], in[1], o->B, \
                             o->IC, o->OC); break;                                            \
    case SPADE: spade_backward##SUF(din[0], din[1], din[2], dout, in[0], in[1], o->out_n); break; \
    case SCALE_ADD:                                                                           \
        scale_add##SUF(din[0], 1, dout, o->out_n);                                            \
        scale_add##SUF(din[1], o->alpha, dout, o->out_n); break;                              \
    }

static void ew_fwd64(const ew_op *o, double *out, double *const *in) { EW_FORWARD(_f64) }
static void ew_bwd64(const ew_op *o, double *const *din, const double *dout, double *const *in) {
    EW_BACKWARD(_f64)
}
static void ew_fwd32(const ew_op *o, float *out, float *const *in) { EW_FORWARD() }
static void ew_bwd32(const ew_op *o, float *const *din, const float *dout, float *const *in) {
    EW_BACKWARD()
}

/* Forward and backward of L = sum(out * g) in either precision, results
 * as doubles; gradients start at 0.25 (to check accumulation). */
static void ew_run(const ew_op *o, int f32, double *const *in, const double *g, double *out,
                   double *const *din) {
    for (int i = 0; i < o->nin; i++)
        for (size_t j = 0; j < o->in_n[i]; j++) din[i][j] = 0.25;
    if (!f32) {
        ew_fwd64(o, out, in);
        ew_bwd64(o, din, g, in);
    } else {
        float *fin[3] = {0}, *fdin[3] = {0}, *fg = op_to_f32(g, o->out_n), *fout = op_zerosf(o->out_n);
        for (int i = 0; i < o->nin; i++)
            fin[i] = op_to_f32(in[i], o->in_n[i]), fdin[i] = op_to_f32(din[i], o->in_n[i]);
        ew_fwd32(o, fout, fin);
        ew_bwd32(o, fdin, fg, fin);
        for (size_t j = 0; j < o->out_n; j++) out[j] = fout[j];
        for (int i = 0; i < o->nin; i++) {
            for (size_t j = 0; j < o->in_n[i]; j++) din[i][j] = fdin[i][j];
            free(fin[i]), free(fdin[i]);
        }
        free(fg), free(fout);
    }
    for (int i = 0; i < o->nin; i++) op_sub(din[i], o->in_n[i], 0.25);
}

typedef struct {
    const ew_op *o;
    double *const *in;
    const double *g;
    double *tmp;
} ew_ctx;

static double ew_loss(void *p) {
    ew_ctx *c = p;
    ew_fwd64(c->o, c->tmp, c->in);
    return op_dot(c->tmp, c->g, c->o->out_n);
}

/* Buffers of one case: inputs, g, out, gradients. */
typedef struct {
    double *in[3], *din[3], *g, *out;
} ew_bufs;

static void ew_bufs_alloc(ew_bufs *b, const ew_op *o) {
    memset(b, 0, sizeof *b);
    for (int i = 0; i < o->nin; i++) b->in[i] = op_zeros(o->in_n[i]), b->din[i] = op_zeros(o->in_n[i]);
    b->g = op_zeros(o->out_n), b->out = op_zeros(o->out_n);
}

static void ew_bufs_random(ew_bufs *b, const ew_op *o, uint64_t seed) {
    for (int i = 0; i < o->nin; i++) {
        double *r = op_rand(o->in_n[i], seed + (uint64_t)i, -1, 1);
        memcpy(b->in[i], r, o->in_n[i] * sizeof *r);
        free(r);
    }
    double *r = op_rand(o->out_n, seed + 7, -1, 1);
    memcpy(b->g, r, o->out_n * sizeof *r);
    free(r);
}

static void ew_bufs_free(ew_bufs *b) {
    for (int i = 0; i < 3; i++) free(b->in[i]), free(b->din[i]);
    free(b->g), free(b->out);
}

static const char *op_label(const ew_op *o) {
    static const char *names[] = {"add", "mul", "add_bcast", "mul_bcast", "scale_shift",
                                  "concat", "slice", "linear", "spade", "scale_add"};
    return names[o->kind];
}

static void test_fd(ew_op o, uint64_t seed) {
    ew_sizes(&o);
    ew_bufs b;
    ew_bufs_alloc(&b, &o);
    ew_bufs_random(&b, &o, seed);
    ew_run(&o, 0, b.in, b.g, b.out, b.din);
    ew_ctx c = {&o, b.in, b.g, op_zeros(o.out_n)};
    for (int i = 0; i < o.nin; i++) {
        char what[96];
        snprintf(what, sizeof what, "fd %s%s d%s", op_label(&o), o.per_n ? " (N,C)" : "",
                 in_names[o.kind][i]);
        OP_CHECK_ERR(what, op_gradcheck(ew_loss, &c, b.in[i], b.din[i], o.in_n[i]), 1e-6);
    }
    free(c.tmp);
    ew_bufs_free(&b);
}

static void test_f32(ew_op o, uint64_t seed) {
    ew_sizes(&o);
    ew_bufs b64, b32;
    ew_bufs_alloc(&b64, &o);
    ew_bufs_alloc(&b32, &o);
    ew_bufs_random(&b64, &o, seed);
    ew_run(&o, 0, b64.in, b64.g, b64.out, b64.din);
    ew_run(&o, 1, b64.in, b64.g, b32.out, b32.din);
    double e = op_err(b32.out, b64.out, o.out_n, NULL);
    for (int i = 0; i < o.nin; i++) e = fmax(e, op_err(b32.din[i], b64.din[i], o.in_n[i], NULL));
    char what[96];
    snprintf(what, sizeof what, "f32 %s%s n=%zu", op_label(&o), o.per_n ? " (N,C)" : "", o.out_n);
    OP_CHECK_ERR(what, e, 1e-5);
    ew_bufs_free(&b64), ew_bufs_free(&b32);
}

/* A PyTorch case; cfg layout per op as in make_norm.py. */
static void test_fixture(const char *name, int kind) {
    fixture fx;
    if (op_fixture_load(&fx, "elementwise", name) != 0) return;
    ew_op o = {.kind = kind};
    double c[5];
    for (int i = 0; i < 5; i++) c[i] = op_cfg(&fx, i);
    if (kind == ADD || kind == MUL || kind == SPADE) o.N = 1, o.C = 1, o.S = (int)c[0];
    if (kind == ADD_BC || kind == MUL_BC || kind == SCALE_SHIFT)
        o.N = (int)c[0], o.C = (int)c[1], o.S = (int)c[2], o.per_n = (int)c[3];
    if (kind == CONCAT) o.N = (int)c[0], o.Ca = (int)c[1], o.Cb = (int)c[2], o.S = (int)c[3];
    if (kind == SLICE)
        o.N = (int)c[0], o.C = (int)c[1], o.c0 = (int)c[2], o.Cs = (int)c[3], o.S = (int)c[4];
    if (kind == LINEAR) o.B = (int)c[0], o.IC = (int)c[1], o.OC = (int)c[2], o.bias = (int)c[3];
    ew_sizes(&o);
    ew_bufs b;
    ew_bufs_alloc(&b, &o);
    int ok = 1;
    for (int i = 0; i < o.nin; i++) {
        double *t = op_fx64(&fx, in_names[kind][i], o.in_n[i]);
        if (t) memcpy(b.in[i], t, o.in_n[i] * sizeof *t);
        ok = ok && t;
        free(t);
    }
    double *g = op_fx64(&fx, "g", o.out_n);
    if (g) memcpy(b.g, g, o.out_n * sizeof *g);
    free(g);
    for (int f32 = 0; ok && g && f32 <= 1; f32++) {
        ew_run(&o, f32, b.in, b.g, b.out, b.din);
        const char *tag = f32 ? "f32" : "f64";
        double tol = f32 ? 2e-6 : 1e-6;
        OP_CHECK_FX(&fx, name, tag, "out", b.out, o.out_n, tol);
        for (int i = 0; i < o.nin; i++) {
            char dn[16];
            snprintf(dn, sizeof dn, "d%s", in_names[kind][i]);
            OP_CHECK_FX(&fx, name, tag, dn, b.din[i], o.in_n[i], tol);
        }
    }
    ew_bufs_free(&b);
    fixture_free(&fx);
}

/* Concat then slice gives back the parts bit for bit. */
static void test_concat_slice(void) {
    int N = 2, Ca = 3, Cb = 2, S = 5;
    size_t na = (size_t)N * Ca * S, nb = (size_t)N * Cb * S;
    double *ad = op_rand(na, 1, -1, 1), *bd = op_rand(nb, 2, -1, 1);
    float *af = op_to_f32(ad, na), *bf = op_to_f32(bd, nb), *cat = op_zerosf(na + nb);
    float *ra = op_zerosf(na), *rb = op_zerosf(nb);
    concat_forward(cat, af, bf, N, Ca, Cb, S);
    slice_forward(ra, cat, N, Ca + Cb, 0, Ca, S);
    slice_forward(rb, cat, N, Ca + Cb, Ca, Cb, S);
    CHECK(memcmp(ra, af, na * sizeof *ra) == 0);
    CHECK(memcmp(rb, bf, nb * sizeof *rb) == 0);
    CHECK(cat[(size_t)1 * (Ca + Cb) * S + (size_t)Ca * S] == bf[(size_t)Cb * S]); // n=1, first b value
    free(ad), free(bd), free(af), free(bf), free(cat), free(ra), free(rb);
}

int main(void) {
    ew_op ops[] = {
        {.kind = ADD, .N = 1, .C = 3, .S = 7},
        {.kind = MUL, .N = 2, .C = 2, .S = 5},
        {.kind = ADD_BC, .N = 2, .C = 3, .S = 4},
        {.kind = ADD_BC, .N = 2, .C = 3, .S = 4, .per_n = 1},
        {.kind = MUL_BC, .N = 2, .C = 3, .S = 4},
        {.kind = MUL_BC, .N = 3, .C = 2, .S = 4, .per_n = 1},
        {.kind = SCALE_SHIFT, .N = 2, .C = 3, .S = 4},
        {.kind = SCALE_SHIFT, .N = 2, .C = 3, .S = 4, .per_n = 1},
        {.kind = CONCAT, .N = 2, .Ca = 2, .Cb = 3, .S = 4},
        {.kind = SLICE, .N = 2, .C = 5, .c0 = 2, .Cs = 2, .S = 3},
        {.kind = LINEAR, .B = 3, .IC = 5, .OC = 4, .bias = 1},
        {.kind = LINEAR, .B = 2, .IC = 3, .OC = 6},
        {.kind = SPADE, .N = 2, .C = 3, .S = 5},
        {.kind = SCALE_ADD, .N = 1, .C = 2, .S = 9, .alpha = -0.75},
    };
    size_t nops = sizeof ops / sizeof *ops;
    for (size_t i = 0; i < nops; i++) test_fd(ops[i], 500 + 10 * i);
    // big enough for the threaded paths (> 32768 values), odd sizes
    ew_op big[] = {
        {.kind = ADD, .N = 1, .C = 1, .S = 70001},
        {.kind = MUL, .N = 1, .C = 1, .S = 70001},
        {.kind = ADD_BC, .N = 2, .C = 16, .S = 2049, .per_n = 1},
        {.kind = MUL_BC, .N = 2, .C = 16, .S = 2049},
        {.kind = SCALE_SHIFT, .N = 2, .C = 16, .S = 2049, .per_n = 1},
        {.kind = CONCAT, .N = 2, .Ca = 16, .Cb = 8, .S = 2049},
        {.kind = SLICE, .N = 2, .C = 24, .c0 = 5, .Cs = 16, .S = 2049},
        {.kind = LINEAR, .B = 64, .IC = 256, .OC = 129, .bias = 1},
        {.kind = SPADE, .N = 2, .C = 16, .S = 2049},
        {.kind = SCALE_ADD, .N = 1, .C = 1, .S = 70001, .alpha = 0.3},
    };
    for (size_t i = 0; i < sizeof big / sizeof *big; i++) test_f32(big[i], 900 + 10 * i);

    struct { const char *name; int kind; } cases[] = {
        {"add", ADD}, {"mul", MUL}, {"add_bcast_c", ADD_BC}, {"add_bcast_nc", ADD_BC},
        {"mul_bcast_c", MUL_BC}, {"mul_bcast_nc", MUL_BC}, {"scale_shift_c", SCALE_SHIFT},
        {"scale_shift_nc", SCALE_SHIFT}, {"concat", CONCAT}, {"slice", SLICE},
        {"linear", LINEAR}, {"linear_nobias", LINEAR}, {"spade", SPADE}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) test_fixture(cases[i].name, cases[i].kind);
    test_concat_slice();
    return check_done("test_elementwise");
}
