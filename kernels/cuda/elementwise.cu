// Element-wise ops and channel plumbing on CUDA, the arithmetic of
// kernels/cpu/elementwise_impl.h (checked by tests/c/test_cuda_ops.c).
// Per-value work: grid-stride functors. Sums into a broadcast vector's
// gradient: one block per entry of the vector (per channel, or per (n, c)
// when per_n), looping over its values in double, so no two blocks write
// the same entry (no atomics, deterministic). Backward ACCUMULATES.
#ifndef LSDM_CUDA
#define LSDM_CUDA 1 /* NVFLAGS do not carry CPPFLAGS: see the _cuda declarations */
#endif
#include "ops_common.cuh"
extern "C" {
#include "elementwise.h"
}

struct EwAdd { float *out; const float *a, *b; __device__ void operator()(size_t i) const { out[i] = a[i] + b[i]; } };
struct EwMul { float *out; const float *a, *b; __device__ void operator()(size_t i) const { out[i] = a[i] * b[i]; } };
struct EwAxpy { float *y; float alpha; const float *x; __device__ void operator()(size_t i) const { y[i] += alpha * x[i]; } };
struct EwMulGrad {
    float *da, *db; const float *dout, *a, *b;
    __device__ void operator()(size_t i) const {
        float dy = dout[i];
        if (da) da[i] += dy * b[i];
        if (db) db[i] += dy * a[i];
    }
};

// Entry of the broadcast vector for value i of an (N,C,S) tensor.
__device__ static inline size_t ew_vidx(size_t i, int C, int S, int per_n) {
    size_t nc = i / (size_t)S;
    return per_n ? nc : nc % (size_t)C;
}

// out = x * (mul ? v1 : 1) + (v2 ? v2 : 0), v1 and v2 broadcast; with
// one_plus, the multiplier is 1 + v1 (scale_shift).
struct EwBcast {
    float *out; const float *x, *v1, *v2; int C, S, per_n, one_plus;
    __device__ void operator()(size_t i) const {
        size_t j = ew_vidx(i, C, S, per_n);
        float y = x[i];
        if (v1) y = y * (one_plus ? 1.0f + v1[j] : v1[j]);
        if (v2) y = y + v2[j];
        out[i] = y;
    }
};

// dx += dout * (v ? (one_plus ? 1 + v : v) : 1).
struct EwBcastDx {
    float *dx; const float *dout, *v; int C, S, per_n, one_plus;
    __device__ void operator()(size_t i) const {
        float k = 1.0f;
        if (v) {
            size_t j = ew_vidx(i, C, S, per_n);
            k = one_plus ? 1.0f + v[j] : v[j];
        }
        dx[i] += dout[i] * k;
    }
};

// Block b owns entry b of the vector gradients: channel c = b (summing over
// all n) or (n, c) = (b / C, b % C) when per_n.
//   dvx += sum dout * x  (when dvx),  dv1 += sum dout  (when dv1)
__global__ void ew_vec_grad_kernel(float *dvx, float *dv1, const float *dout, const float *x,
                                   int N, int C, int S, int per_n) {
    __shared__ double sh[32];
    int b = blockIdx.x, c = per_n ? b % C : b;
    int n0 = per_n ? b / C : 0, n1 = per_n ? n0 + 1 : N;
    double sx = 0, s1 = 0;
    for (int n = n0; n < n1; n++) {
        size_t off = ((size_t)n * C + c) * S;
        for (int i = threadIdx.x; i < S; i += blockDim.x) {
            double dy = dout[off + i];
            s1 += dy;
            if (dvx) sx += dy * (double)x[off + i];
        }
    }
    if (dvx) sx = ops_block_sum(sx, sh);
    if (dv1) s1 = ops_block_sum(s1, sh);
    if (threadIdx.x == 0) {
        if (dvx) dvx[b] += (float)sx;
        if (dv1) dv1[b] += (float)s1;
    }
}

// dst[n, dc0 + j, :] = (or +=) src[n, sc0 + j, :] for j < Cs.
struct EwChannelCopy {
    float *dst; const float *src; int dC, dc0, sC, sc0, Cs, S, accumulate;
    __device__ void operator()(size_t i) const {
        size_t len = (size_t)Cs * S, n = i / len, r = i % len;
        float v = src[(n * sC + sc0) * S + r];
        float *d = dst + (n * dC + dc0) * S + r;
        *d = accumulate ? *d + v : v;
    }
};

static int ew_sizes(int N, int C, int S, const char *what) {
    return N >= 1 && C >= 1 && S >= 1 ? 0 : lsdm_err("%s: bad sizes N %d C %d S %d", what, N, C, S);
}

static int ew_vec_grad(float *dvx, float *dv1, const float *dout, const float *x, int N, int C,
                       int S, int per_n, const char *what) {
    if (!dvx && !dv1) return 0;
    ew_vec_grad_kernel<<<per_n ? N * C : C, OPS_THREADS>>>(dvx, dv1, dout, x, N, C, S, per_n);
    return ops_check(what);
}

extern "C" int add_forward_cuda(float *out, const float *a, const float *b, size_t n) {
    return ops_for(n, EwAdd{out, a, b}, "add_forward_cuda");
}

extern "C" int scale_add_cuda(float *y, float alpha, const float *x, size_t n) {
    return ops_for(n, EwAxpy{y, alpha, x}, "scale_add_cuda");
}

extern "C" int add_backward_cuda(float *da, float *db, const float *dout, size_t n) {
    if (da && scale_add_cuda(da, 1.0f, dout, n) < 0) return -1;
    if (db && scale_add_cuda(db, 1.0f, dout, n) < 0) return -1;
    return 0;
}

extern "C" int mul_forward_cuda(float *out, const float *a, const float *b, size_t n) {
    return ops_for(n, EwMul{out, a, b}, "mul_forward_cuda");
}

extern "C" int mul_backward_cuda(float *da, float *db, const float *dout, const float *a,
                                 const float *b, size_t n) {
    if (!da && !db) return 0;
    return ops_for(n, EwMulGrad{da, db, dout, a, b}, "mul_backward_cuda");
}

extern "C" int add_bcast_forward_cuda(float *out, const float *x, const float *v, int N, int C, int S,
                                      int per_n) {
    if (ew_sizes(N, C, S, "add_bcast_forward_cuda") < 0) return -1;
    return ops_for((size_t)N * C * S, EwBcast{out, x, NULL, v, C, S, per_n, 0}, "add_bcast_forward_cuda");
}

extern "C" int add_bcast_backward_cuda(float *dx, float *dv, const float *dout, int N, int C, int S,
                                       int per_n) {
    const char *what = "add_bcast_backward_cuda";
    if (ew_sizes(N, C, S, what) < 0) return -1;
    if (dx && scale_add_cuda(dx, 1.0f, dout, (size_t)N * C * S) < 0) return -1;
    return ew_vec_grad(NULL, dv, dout, NULL, N, C, S, per_n, what);
}

extern "C" int mul_bcast_forward_cuda(float *out, const float *x, const float *v, int N, int C, int S,
                                      int per_n) {
    if (ew_sizes(N, C, S, "mul_bcast_forward_cuda") < 0) return -1;
    return ops_for((size_t)N * C * S, EwBcast{out, x, v, NULL, C, S, per_n, 0}, "mul_bcast_forward_cuda");
}

extern "C" int mul_bcast_backward_cuda(float *dx, float *dv, const float *dout, const float *x,
                                       const float *v, int N, int C, int S, int per_n) {
    const char *what = "mul_bcast_backward_cuda";
    if (ew_sizes(N, C, S, what) < 0) return -1;
    if (dx && ops_for((size_t)N * C * S, EwBcastDx{dx, dout, v, C, S, per_n, 0}, what) < 0) return -1;
    return ew_vec_grad(dv, NULL, dout, x, N, C, S, per_n, what);
}

extern "C" int scale_shift_forward_cuda(float *out, const float *x, const float *scale,
                                        const float *shift, int N, int C, int S, int per_n) {
    if (ew_sizes(N, C, S, "scale_shift_forward_cuda") < 0) return -1;
    return ops_for((size_t)N * C * S, EwBcast{out, x, scale, shift, C, S, per_n, 1},
                   "scale_shift_forward_cuda");
}

extern "C" int scale_shift_backward_cuda(float *dx, float *dscale, float *dshift, const float *dout,
                                         const float *x, const float *scale, int N, int C, int S,
                                         int per_n) {
    const char *what = "scale_shift_backward_cuda";
    if (ew_sizes(N, C, S, what) < 0) return -1;
    if (dx && ops_for((size_t)N * C * S, EwBcastDx{dx, dout, scale, C, S, per_n, 1}, what) < 0) return -1;
    return ew_vec_grad(dscale, dshift, dout, x, N, C, S, per_n, what);
}

static int ew_channel_copy(float *dst, int dC, int dc0, const float *src, int sC, int sc0, int N,
                           int Cs, int S, int accumulate, const char *what) {
    return ops_for((size_t)N * Cs * S, EwChannelCopy{dst, src, dC, dc0, sC, sc0, Cs, S, accumulate}, what);
}

extern "C" int concat_forward_cuda(float *out, const float *a, const float *b, int N, int Ca, int Cb,
                                   int S) {
    const char *what = "concat_forward_cuda";
    if (ew_sizes(N, Ca + Cb, S, what) < 0 || Ca < 0 || Cb < 0) return lsdm_err("%s: bad sizes", what);
    if (ew_channel_copy(out, Ca + Cb, 0, a, Ca, 0, N, Ca, S, 0, what) < 0) return -1;
    return ew_channel_copy(out, Ca + Cb, Ca, b, Cb, 0, N, Cb, S, 0, what);
}

extern "C" int concat_backward_cuda(float *da, float *db, const float *dout, int N, int Ca, int Cb,
                                    int S) {
    const char *what = "concat_backward_cuda";
    if (ew_sizes(N, Ca + Cb, S, what) < 0 || Ca < 0 || Cb < 0) return lsdm_err("%s: bad sizes", what);
    if (da && ew_channel_copy(da, Ca, 0, dout, Ca + Cb, 0, N, Ca, S, 1, what) < 0) return -1;
    if (db && ew_channel_copy(db, Cb, 0, dout, Ca + Cb, Ca, N, Cb, S, 1, what) < 0) return -1;
    return 0;
}

extern "C" int slice_forward_cuda(float *out, const float *inp, int N, int C, int c0, int Cs, int S) {
    const char *what = "slice_forward_cuda";
    if (ew_sizes(N, C, S, what) < 0 || c0 < 0 || Cs < 0 || c0 + Cs > C)
        return lsdm_err("%s: bad channel range %d+%d of %d", what, c0, Cs, C);
    return ew_channel_copy(out, Cs, 0, inp, C, c0, N, Cs, S, 0, what);
}

extern "C" int slice_backward_cuda(float *dinp, const float *dout, int N, int C, int c0, int Cs, int S) {
    const char *what = "slice_backward_cuda";
    if (ew_sizes(N, C, S, what) < 0 || c0 < 0 || Cs < 0 || c0 + Cs > C)
        return lsdm_err("%s: bad channel range %d+%d of %d", what, c0, Cs, C);
    return ew_channel_copy(dinp, C, c0, dout, Cs, 0, N, Cs, S, 1, what);
}
