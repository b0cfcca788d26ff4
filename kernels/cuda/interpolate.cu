// 3D interpolation on CUDA, the semantics of kernels/interpolate.h,
// checked against the CPU by tests/c/test_cuda_ops3.c.
//
// Source coordinates are the CPU's (kernels/cpu/interpolate.c and
// interpolate_impl.h) operation for operation, in float; __fmul_rn keeps
// nvcc from fusing scale * (o + 0.5) - 0.5 into an FMA, so the GPU picks
// the same source voxels and weights as the CPU (and PyTorch).
// Forward: one thread per output voxel, the CPU's formula (all eight
// terms, so NaN/Inf spread the same way). Backward: one thread per input
// voxel gathering, in ascending output order, the terms the CPU scatters
// onto it: deterministic, no atomics. The outputs reading input index i on
// an axis are a contiguous range (the source index is non-decreasing in
// the output index), found by binary search.
#ifndef LSDM_CUDA
#define LSDM_CUDA 1 /* NVFLAGS do not carry CPPFLAGS: see the _cuda declarations */
#endif
#include <limits.h>
#include <math.h>

#include "ops_common.cuh"
extern "C" {
#include "interpolate.h"
}

// interp_nearest_index: float32 arithmetic, with the same-size and
// double-size shortcuts of 'nearest'.
__device__ inline int interp_nearest_dev(const interp3d_dims &d, int a, int o) {
    int in = d.in[a], out = d.out[a];
    float scale = d.scale[a] > 0 ? (float)(1.0 / d.scale[a]) : (float)in / (float)out;
    long long i;
    if (d.mode == INTERP_NEAREST) {
        if (out == in) return o;
        if (out == 2 * in) return o >> 1;
        i = (long long)floorf((float)o * scale);
    } else {
        i = (long long)floorf((float)(((double)o + 0.5) * scale));
    }
    return (int)(i < in - 1 ? i : in - 1);
}

// interp_axis: output index o on axis a -> source indices i0, i1 and
// their weights (nearest: i1 = i0, weights 1 and 0).
__device__ inline void interp_axis_dev(const interp3d_dims &d, int a, int o, int *i0, int *i1, float *l0,
                                       float *l1) {
    int in = d.in[a], out = d.out[a];
    if (d.mode != INTERP_TRILINEAR) {
        *i0 = *i1 = interp_nearest_dev(d, a, o);
        *l0 = 1.0f, *l1 = 0.0f;
        return;
    }
    float scale, src;
    if (d.align_corners) {
        scale = out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f;
        src = __fmul_rn(scale, (float)o);
    } else {
        scale = d.scale[a] > 0 ? (float)(1.0 / d.scale[a]) : (float)in / (float)out;
        src = __fmul_rn(scale, (float)o + 0.5f) - 0.5f;
        if (src < 0) src = 0;
    }
    int s = (int)src;
    if (s > in - 1) s = in - 1; // unreachable (src < in - 0.5): a guard for the reads
    *i0 = s;
    *i1 = s + (s < in - 1 ? 1 : 0);
    float l = src - (float)s;
    *l1 = l < 0 ? 0.0f : l > 1 ? 1.0f : l;
    *l0 = 1.0f - *l1;
}

// Source index i0 of output o (non-decreasing in o).
__device__ inline int interp_i0(const interp3d_dims &d, int a, int o) {
    int i0, i1;
    float l0, l1;
    interp_axis_dev(d, a, o, &i0, &i1, &l0, &l1);
    return i0;
}

// First output o in [0, out] with i0(o) >= v.
__device__ inline int interp_first_ge(const interp3d_dims &d, int a, int v) {
    int lo = 0, hi = d.out[a];
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (interp_i0(d, a, mid) >= v) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

// [*lo, *hi): the outputs on axis a that read input index i, as i0 (any
// mode) or as i1 = i0 + 1 (trilinear).
__device__ inline void interp_readers(const interp3d_dims &d, int a, int i, int *lo, int *hi) {
    *lo = interp_first_ge(d, a, d.mode == INTERP_TRILINEAR ? i - 1 : i);
    *hi = interp_first_ge(d, a, i + 1);
}

struct InterpFwd {
    float *out; const float *inp; interp3d_dims d; long long IS, OS;
    __device__ void operator()(size_t e) const {
        long long c = (long long)(e / (size_t)OS), r = (long long)(e % (size_t)OS);
        int w = (int)(r % d.out[2]), y = (int)(r / d.out[2] % d.out[1]), z = (int)(r / ((long long)d.out[1] * d.out[2]));
        int z0, z1, y0, y1, x0, x1;
        float wz0, wz1, wy0, wy1, wx0, wx1;
        interp_axis_dev(d, 0, z, &z0, &z1, &wz0, &wz1);
        interp_axis_dev(d, 1, y, &y0, &y1, &wy0, &wy1);
        interp_axis_dev(d, 2, w, &x0, &x1, &wx0, &wx1);
        long long IH = d.in[1], IW = d.in[2];
        const float *x = inp + c * IS;
        const float *p00 = x + (z0 * IH + y0) * IW, *p01 = x + (z0 * IH + y1) * IW;
        const float *p10 = x + (z1 * IH + y0) * IW, *p11 = x + (z1 * IH + y1) * IW;
        if (d.mode != INTERP_TRILINEAR) {
            out[e] = p00[x0];
            return;
        }
        out[e] = wz0 * (wy0 * (wx0 * p00[x0] + wx1 * p00[x1]) + wy1 * (wx0 * p01[x0] + wx1 * p01[x1]))
               + wz1 * (wy0 * (wx0 * p10[x0] + wx1 * p10[x1]) + wy1 * (wx0 * p11[x0] + wx1 * p11[x1]));
    }
};

// dinp[voxel] += every term the CPU's scatter adds to it: for each output
// (oz, oy, ox) reading it and each of that output's index slots (0 or 1
// per axis) naming this voxel, wx * (wz * wy * g), or g for nearest. Slots
// are kept apart (not their weights summed) so that a zero weight times
// an Inf gives NaN exactly where the CPU's does.
struct InterpBwd {
    float *dinp; const float *dout; interp3d_dims d; long long IS, OS;
    __device__ void operator()(size_t e) const {
        long long c = (long long)(e / (size_t)IS), r = (long long)(e % (size_t)IS);
        int x = (int)(r % d.in[2]), y = (int)(r / d.in[2] % d.in[1]), z = (int)(r / ((long long)d.in[1] * d.in[2]));
        int za, zb, ya, yb, xa, xb;
        interp_readers(d, 0, z, &za, &zb);
        interp_readers(d, 1, y, &ya, &yb);
        interp_readers(d, 2, x, &xa, &xb);
        const float *g = dout + c * OS;
        long long OH = d.out[1], OW = d.out[2];
        int tri = d.mode == INTERP_TRILINEAR, slots = tri ? 2 : 1;
        float s = 0.0f;
        for (int oz = za; oz < zb; oz++) {
            int iz[2];
            float wz[2];
            interp_axis_dev(d, 0, oz, &iz[0], &iz[1], &wz[0], &wz[1]);
            for (int kz = 0; kz < slots; kz++) {
                if (iz[kz] != z) continue;
                for (int oy = ya; oy < yb; oy++) {
                    int iy[2];
                    float wy[2];
                    interp_axis_dev(d, 1, oy, &iy[0], &iy[1], &wy[0], &wy[1]);
                    for (int ky = 0; ky < slots; ky++) {
                        if (iy[ky] != y) continue;
                        const float *grow = g + ((long long)oz * OH + oy) * OW;
                        float wzy = wz[kz] * wy[ky];
                        for (int ox = xa; ox < xb; ox++) {
                            int ix[2];
                            float wx[2];
                            interp_axis_dev(d, 2, ox, &ix[0], &ix[1], &wx[0], &wx[1]);
                            for (int kx = 0; kx < slots; kx++) {
                                if (ix[kx] != x) continue;
                                s += tri ? wx[kx] * (wzy * grow[ox]) : grow[ox];
                            }
                        }
                    }
                }
            }
        }
        dinp[e] += s;
    }
};

static int interp_sizes(const interp3d_dims *d, long long *IS, long long *OS, const char *what) {
    *IS = (long long)d->in[0] * d->in[1] * d->in[2];
    *OS = (long long)d->out[0] * d->out[1] * d->out[2];
    int ok = d->NC >= 1 && d->mode >= INTERP_NEAREST && d->mode <= INTERP_TRILINEAR;
    for (int a = 0; a < 3; a++) ok &= d->in[a] >= 1 && d->out[a] >= 1 && d->out[a] < INT_MAX;
    if (!ok) return lsdm_err("%s: dims not initialised (call interp3d_dims_init)", what);
    return 0;
}

extern "C" int interp3d_forward_cuda(float *out, const float *inp, const interp3d_dims *d) {
    const char *what = "interp3d_forward_cuda";
    long long IS, OS;
    if (interp_sizes(d, &IS, &OS, what) < 0) return -1;
    return ops_for((size_t)d->NC * OS, InterpFwd{out, inp, *d, IS, OS}, what);
}

extern "C" int interp3d_backward_cuda(float *dinp, const float *dout, const interp3d_dims *d) {
    const char *what = "interp3d_backward_cuda";
    long long IS, OS;
    if (interp_sizes(d, &IS, &OS, what) < 0) return -1;
    return ops_for((size_t)d->NC * IS, InterpBwd{dinp, dout, *d, IS, OS}, what);
}
