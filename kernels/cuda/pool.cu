// 3D max and average pooling on CUDA, the semantics of kernels/pool.h,
// checked against the CPU by tests/c/test_cuda_ops2.c. Forwards: one
// thread per output voxel, the CPU's window scan. Backwards: one thread
// per input voxel gathering from the output windows that contain it, in
// ascending output order: deterministic, no atomics.
#ifndef LSDM_CUDA
#define LSDM_CUDA 1 /* NVFLAGS do not carry CPPFLAGS: see the _cuda declarations */
#endif
#include <limits.h>

#include "ops_common.cuh"
extern "C" {
#include "pool.h"
}

// The input box [lo, hi) of output voxel o, its size clipped to the
// padded input (padded) and its real voxels (count): pool.c's
// pool_window_at.
struct PoolWin {
    int lo[3], hi[3];
    long long padded, count;
};

__device__ inline PoolWin pool_win(const pool3d_dims &p, long long o) {
    PoolWin w;
    int at[3] = {(int)(o / ((long long)p.out[1] * p.out[2])), (int)(o / p.out[2] % p.out[1]), (int)(o % p.out[2])};
    w.padded = w.count = 1;
    for (int a = 0; a < 3; a++) {
        int lo = at[a] * p.s[a] - p.p[a], hi = lo + p.k[a];
        if (hi > p.in[a] + p.p[a]) hi = p.in[a] + p.p[a];
        w.padded *= hi - lo;
        w.lo[a] = lo < 0 ? 0 : lo;
        w.hi[a] = hi < p.in[a] ? hi : p.in[a];
        w.count *= w.hi[a] - w.lo[a];
    }
    return w;
}

// Outputs along axis a whose window holds input coordinate z:
// o*s - p <= z < o*s - p + k, within [0, out).
__device__ inline void pool_range(const pool3d_dims &p, int a, int z, int *o0, int *o1) {
    int num = z + p.p[a] - p.k[a] + 1; // o*s >= num
    int lo = num <= 0 ? 0 : (num + p.s[a] - 1) / p.s[a];
    int hi = (z + p.p[a]) / p.s[a];
    *o0 = lo;
    *o1 = hi < p.out[a] - 1 ? hi : p.out[a] - 1;
}

struct MaxFwd {
    float *out; int *idx; const float *inp; pool3d_dims p; long long IS, OS;
    __device__ void operator()(size_t e) const {
        PoolWin w = pool_win(p, (long long)(e % OS));
        const float *x = inp + (long long)(e / OS) * IS;
        float best = -INFINITY;
        long long bi = -1;
        for (int z = w.lo[0]; z < w.hi[0]; z++)
            for (int y = w.lo[1]; y < w.hi[1]; y++)
                for (int v = w.lo[2]; v < w.hi[2]; v++) {
                    long long i = ((long long)z * p.in[1] + y) * p.in[2] + v;
                    // as the CPU (PyTorch): a NaN always takes over, the last one wins
                    if (x[i] > best || isnan(x[i]) || bi < 0) best = x[i], bi = i;
                }
        out[e] = best;
        idx[e] = (int)bi;
    }
};

struct AvgFwd {
    float *out; const float *inp; pool3d_dims p; long long IS, OS; int incl;
    __device__ void operator()(size_t e) const {
        PoolWin w = pool_win(p, (long long)(e % OS));
        const float *x = inp + (long long)(e / OS) * IS;
        float s = 0;
        for (int z = w.lo[0]; z < w.hi[0]; z++)
            for (int y = w.lo[1]; y < w.hi[1]; y++)
                for (int v = w.lo[2]; v < w.hi[2]; v++) s += x[((long long)z * p.in[1] + y) * p.in[2] + v];
        out[e] = s / (float)(incl ? w.padded : w.count);
    }
};

// dinp[i] += the gradients of the outputs containing input voxel i: for
// max pooling those whose saved argmax is i, for average pooling all of
// them, each divided by its window's divisor.
struct PoolBwd {
    float *dinp; const float *dout; const int *idx; pool3d_dims p; long long IS, OS; int incl;
    __device__ void operator()(size_t e) const {
        long long c = (long long)(e / IS), i = (long long)(e % IS);
        int v = (int)(i % p.in[2]), y = (int)(i / p.in[2] % p.in[1]), z = (int)(i / ((long long)p.in[1] * p.in[2]));
        int a0, a1, b0, b1, c0, c1;
        pool_range(p, 0, z, &a0, &a1);
        pool_range(p, 1, y, &b0, &b1);
        pool_range(p, 2, v, &c0, &c1);
        const float *g = dout + c * OS;
        const int *ix = idx ? idx + c * OS : NULL;
        float s = 0;
        for (int od = a0; od <= a1; od++)
            for (int oh = b0; oh <= b1; oh++)
                for (int ow = c0; ow <= c1; ow++) {
                    long long o = ((long long)od * p.out[1] + oh) * p.out[2] + ow;
                    if (ix) {
                        if (ix[o] == i) s += g[o];
                    } else {
                        PoolWin w = pool_win(p, o);
                        s += g[o] / (float)(incl ? w.padded : w.count);
                    }
                }
        dinp[e] += s;
    }
};

static int pool_sizes(const pool3d_dims *p, long long *IS, long long *OS, const char *what) {
    *IS = (long long)p->in[0] * p->in[1] * p->in[2];
    *OS = (long long)p->out[0] * p->out[1] * p->out[2];
    if (p->NC < 1 || *IS < 1 || *OS < 1 || p->s[0] < 1 || p->s[1] < 1 || p->s[2] < 1)
        return lsdm_err("%s: dims not initialised (call pool3d_dims_init)", what);
    if (*IS > INT_MAX) return lsdm_err("%s: volume of %lld voxels too large for int indices", what, *IS);
    return 0;
}

extern "C" int maxpool3d_forward_cuda(float *out, int *idx, const float *inp, const pool3d_dims *p) {
    const char *what = "maxpool3d_forward_cuda";
    long long IS, OS;
    if (pool_sizes(p, &IS, &OS, what) < 0) return -1;
    return ops_for((size_t)p->NC * OS, MaxFwd{out, idx, inp, *p, IS, OS}, what);
}

extern "C" int maxpool3d_backward_cuda(float *dinp, const float *dout, const int *idx, const pool3d_dims *p) {
    const char *what = "maxpool3d_backward_cuda";
    long long IS, OS;
    if (pool_sizes(p, &IS, &OS, what) < 0) return -1;
    return ops_for((size_t)p->NC * IS, PoolBwd{dinp, dout, idx, *p, IS, OS, 0}, what);
}

extern "C" int avgpool3d_forward_cuda(float *out, const float *inp, const pool3d_dims *p, int count_include_pad) {
    const char *what = "avgpool3d_forward_cuda";
    long long IS, OS;
    if (pool_sizes(p, &IS, &OS, what) < 0) return -1;
    return ops_for((size_t)p->NC * OS, AvgFwd{out, inp, *p, IS, OS, count_include_pad}, what);
}

extern "C" int avgpool3d_backward_cuda(float *dinp, const float *dout, const pool3d_dims *p,
                                       int count_include_pad) {
    const char *what = "avgpool3d_backward_cuda";
    long long IS, OS;
    if (pool_sizes(p, &IS, &OS, what) < 0) return -1;
    return ops_for((size_t)p->NC * IS, PoolBwd{dinp, dout, NULL, *p, IS, OS, count_include_pad}, what);
}
