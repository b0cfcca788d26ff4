// Sinusoidal timestep embedding on CUDA, the arithmetic of
// kernels/cpu/timestep_embedding_impl.h (angles and sin/cos in double,
// rounded once), checked against it by tests/c/test_cuda_ops3.c.
// Forward: one thread per (b, i) pair of outputs. Backward: one thread per
// b summing its row in the CPU's order, in double: deterministic, no
// atomics (B is the batch: a handful of threads is all the work there is).
#ifndef LSDM_CUDA
#define LSDM_CUDA 1 /* NVFLAGS do not carry CPPFLAGS: see the _cuda declarations */
#endif
#include <math.h>

#include "ops_common.cuh"
extern "C" {
#include "timestep_embedding.h"
}

static int temb_sizes(int B, int dim, const char *what) {
    if (B < 1 || dim < 4 || dim % 2) return lsdm_err("%s: bad sizes B %d dim %d (dim even, >= 4)", what, B, dim);
    return 0;
}

// out[b, i] = sin(t_b f_i), out[b, half + i] = cos(t_b f_i)
struct TembFwd {
    float *out; const float *t; int dim, half; double step;
    __device__ void operator()(size_t e) const {
        size_t b = e / (size_t)half;
        int i = (int)(e % (size_t)half);
        double a = (double)t[b] * exp(-i * step);
        out[b * dim + i] = (float)sin(a);
        out[b * dim + half + i] = (float)cos(a);
    }
};

// dt[b] += sum_i f_i (dout[b, i] cos(t_b f_i) - dout[b, half + i] sin(t_b f_i))
struct TembBwd {
    float *dt; const float *dout, *t; int dim, half; double step;
    __device__ void operator()(size_t b) const {
        const float *g = dout + b * dim;
        double s = 0;
        for (int i = 0; i < half; i++) {
            double f = exp(-i * step), a = (double)t[b] * f;
            s += f * (g[i] * cos(a) - g[half + i] * sin(a));
        }
        dt[b] += (float)s;
    }
};

extern "C" int timestep_embedding_forward_cuda(float *out, const float *t, int B, int dim) {
    const char *what = "timestep_embedding_forward_cuda";
    if (temb_sizes(B, dim, what) < 0) return -1;
    int half = dim / 2;
    double step = log(10000.0) / (half - 1);
    return ops_for((size_t)B * half, TembFwd{out, t, dim, half, step}, what);
}

extern "C" int timestep_embedding_backward_cuda(float *dt, const float *dout, const float *t, int B, int dim) {
    const char *what = "timestep_embedding_backward_cuda";
    if (temb_sizes(B, dim, what) < 0) return -1;
    int half = dim / 2;
    double step = log(10000.0) / (half - 1);
    return ops_for((size_t)B, TembBwd{dt, dout, t, dim, half, step}, what);
}
