// 3D zero/replicate padding on CUDA, the same semantics as
// kernels/cpu/pad3d_impl.h (checked by tests/c/test_cuda_bnpad.c).
// Forward: grid-stride over the output voxels, each reading its source
// voxel (or writing 0). Backward: grid-stride over the input voxels, each
// gathering the gradients of the output voxels that read it, in the CPU's
// order (so the sums are bit-identical), deterministic and without atomics.
#ifndef LSDM_CUDA
#define LSDM_CUDA 1 /* NVFLAGS do not carry CPPFLAGS: see the _cuda declarations */
#endif

#include "ops_common.cuh"
extern "C" {
#include "pad3d.h"
}

// The sizes a kernel needs, by value.
struct PadGeom {
    int D, H, W, OD, OH, OW;
    int d0, d1, h0, h1, w0, w1, rep;
};

static PadGeom pad_geom(const pad3d_dims *p) {
    return PadGeom{p->in[0], p->in[1], p->in[2], p->out[0], p->out[1], p->out[2], p->pad[0],
                   p->pad[1], p->pad[2], p->pad[3], p->pad[4], p->pad[5],
                   p->mode == PAD3D_REPLICATE};
}

__device__ static inline int pad_clamp(int i, int n) { return i < 0 ? 0 : i >= n ? n - 1 : i; }

// Output indices [lo, hi] whose gradient input index i receives (see
// pad3d_range in kernels/cpu/pad3d.c).
__device__ static inline void pad_range(int i, int n, int b, int a, int rep, int *lo, int *hi) {
    *lo = *hi = i + b;
    if (rep && i == 0) *lo = 0;
    if (rep && i == n - 1) *hi = n - 1 + b + a;
}

struct PadForward {
    float *out; const float *inp; PadGeom g;
    __device__ void operator()(size_t i) const {
        int ow = (int)(i % (size_t)g.OW);
        size_t t = i / (size_t)g.OW;
        int oh = (int)(t % (size_t)g.OH);
        t /= (size_t)g.OH;
        int od = (int)(t % (size_t)g.OD);
        size_t nc = t / (size_t)g.OD;
        int d = od - g.d0, h = oh - g.h0, w = ow - g.w0;
        if (!g.rep && (d < 0 || d >= g.D || h < 0 || h >= g.H || w < 0 || w >= g.W)) {
            out[i] = 0.0f;
            return;
        }
        d = pad_clamp(d, g.D), h = pad_clamp(h, g.H), w = pad_clamp(w, g.W);
        out[i] = inp[((nc * g.D + d) * g.H + h) * g.W + w];
    }
};

// For each output plane and row that reads this voxel: the voxel's own
// place in the row, then (first/last voxel of a row, replicate) the sum of
// the row's left/right pad, as the CPU adds them.
struct PadBackward {
    float *dinp; const float *dout; PadGeom g;
    __device__ void operator()(size_t i) const {
        int w = (int)(i % (size_t)g.W);
        size_t t = i / (size_t)g.W;
        int h = (int)(t % (size_t)g.H);
        t /= (size_t)g.H;
        int d = (int)(t % (size_t)g.D);
        size_t nc = t / (size_t)g.D;
        int dlo, dhi, hlo, hhi;
        pad_range(d, g.D, g.d0, g.d1, g.rep, &dlo, &dhi);
        pad_range(h, g.H, g.h0, g.h1, g.rep, &hlo, &hhi);
        int left = g.rep && w == 0, right = g.rep && w == g.W - 1;
        float s = dinp[i];
        for (int od = dlo; od <= dhi; od++) {
            for (int oh = hlo; oh <= hhi; oh++) {
                const float *gr = dout + ((nc * g.OD + od) * g.OH + oh) * (size_t)g.OW;
                s += gr[w + g.w0];
                if (left) {
                    float sl = 0.0f;
                    for (int k = 0; k < g.w0; k++) sl += gr[k];
                    s += sl;
                }
                if (right) {
                    float sr = 0.0f;
                    for (int k = g.w0 + g.W; k < g.OW; k++) sr += gr[k];
                    s += sr;
                }
            }
        }
        dinp[i] = s;
    }
};

static size_t pad_numel(int NC, const int s[3]) { return (size_t)NC * s[0] * s[1] * s[2]; }

extern "C" int pad3d_forward_cuda(float *out, const float *inp, const pad3d_dims *p) {
    return ops_for(pad_numel(p->NC, p->out), PadForward{out, inp, pad_geom(p)}, "pad3d_forward_cuda");
}

extern "C" int pad3d_backward_cuda(float *dinp, const float *dout, const pad3d_dims *p) {
    return ops_for(pad_numel(p->NC, p->in), PadBackward{dinp, dout, pad_geom(p)}, "pad3d_backward_cuda");
}
