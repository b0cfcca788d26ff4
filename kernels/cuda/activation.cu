// Element-wise activations on CUDA: grid-stride loops with the formulas of
// kernels/cpu/activation_impl.h in float (CUDA's expf/erff/tanhf, within a
// few ulp of the CPU's), checked by tests/c/test_cuda_ops.c. Forwards may
// run in place (out == inp); backward ACCUMULATES into dinp.
#ifndef LSDM_CUDA
#define LSDM_CUDA 1 /* NVFLAGS do not carry CPPFLAGS: see the _cuda declarations */
#endif
#include <math.h>

#include "ops_common.cuh"
extern "C" {
#include "activation.h"
}

__device__ static inline float act_sigm(float x) { return 1.0f / (1.0f + expf(-x)); }

#define ACT_R2 0.70710678118654752440f    // 1/sqrt(2)
#define ACT_R2PI 0.39894228040143267794f  // 1/sqrt(2 pi)
#define ACT_K 0.79788456080286535588f     // sqrt(2/pi)
#define ACT_C 0.044715f

// One functor per direction, switching on the kind inside: the switch is
// uniform across the grid, so it costs nothing next to the memory traffic.
struct ActForward {
    float *out; const float *inp; act_kind k; float slope;
    __device__ void operator()(size_t i) const {
        float x = inp[i], y = x;
        switch (k) {
        case ACT_NONE: break;
        case ACT_SILU: y = x * act_sigm(x); break;
        case ACT_RELU: y = x > 0 ? x : 0.0f; break;
        case ACT_LEAKY_RELU: y = x > 0 ? x : x * slope; break;
        case ACT_GELU: y = 0.5f * x * (1.0f + erff(x * ACT_R2)); break;
        case ACT_GELU_TANH: y = 0.5f * x * (1.0f + tanhf(ACT_K * (x + ACT_C * x * x * x))); break;
        case ACT_TANH: y = tanhf(x); break;
        case ACT_SIGMOID: y = act_sigm(x); break;
        }
        out[i] = y;
    }
};

// s is the forward's input or output, as act_backward_uses_output(k) says.
struct ActBackward {
    float *dinp; const float *dout, *s; act_kind k; float slope;
    __device__ void operator()(size_t i) const {
        float dy = dout[i], v = s[i], g = dy;
        switch (k) {
        case ACT_NONE: break;
        case ACT_SILU: { float sg = act_sigm(v); g = dy * sg * (1.0f + v * (1.0f - sg)); break; }
        case ACT_RELU: g = v > 0 ? dy : 0.0f; break;
        case ACT_LEAKY_RELU: g = v > 0 ? dy : dy * slope; break;
        case ACT_GELU: {
            float cdf = 0.5f * (1.0f + erff(v * ACT_R2)), pdf = ACT_R2PI * expf(-0.5f * v * v);
            g = dy * (cdf + v * pdf);
            break;
        }
        case ACT_GELU_TANH: {
            float u = ACT_K * (v + ACT_C * v * v * v), t = tanhf(u);
            float du = ACT_K * (1.0f + 3.0f * ACT_C * v * v);
            g = dy * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du);
            break;
        }
        case ACT_TANH: g = dy * (1.0f - v * v); break;
        case ACT_SIGMOID: g = dy * v * (1.0f - v); break;
        }
        dinp[i] += g;
    }
};

static int act_known(act_kind k, const char *what) {
    return (unsigned)k <= (unsigned)ACT_SIGMOID ? 0 : lsdm_err("%s: unknown activation %d", what, (int)k);
}

extern "C" int act_forward_cuda(act_kind k, float *out, const float *inp, size_t n, float slope) {
    if (act_known(k, "act_forward_cuda") < 0) return -1;
    if (k == ACT_NONE) {
        if (out == inp || !n) return 0;
        cudaError_t e = cudaMemcpyAsync(out, inp, n * sizeof *out, cudaMemcpyDeviceToDevice, 0);
        return e == cudaSuccess ? 0 : lsdm_err("act_forward_cuda: %s", cudaGetErrorString(e));
    }
    return ops_for(n, ActForward{out, inp, k, slope}, "act_forward_cuda");
}

extern "C" int act_backward_cuda(act_kind k, float *dinp, const float *dout, const float *saved,
                                 size_t n, float slope) {
    if (act_known(k, "act_backward_cuda") < 0) return -1;
    return ops_for(n, ActBackward{dinp, dout, saved, k, slope}, "act_backward_cuda");
}

#define ACT_PAIR(name, kind)                                                                  \
    extern "C" int name##_forward_cuda(float *out, const float *inp, size_t n) {               \
        return act_forward_cuda(kind, out, inp, n, 0.0f);                                      \
    }                                                                                          \
    extern "C" int name##_backward_cuda(float *dinp, const float *dout, const float *s, size_t n) { \
        return act_backward_cuda(kind, dinp, dout, s, n, 0.0f);                                \
    }
ACT_PAIR(silu, ACT_SILU)
ACT_PAIR(relu, ACT_RELU)
ACT_PAIR(gelu, ACT_GELU)
ACT_PAIR(gelu_tanh, ACT_GELU_TANH)
ACT_PAIR(tanh, ACT_TANH)
ACT_PAIR(sigmoid, ACT_SIGMOID)
#undef ACT_PAIR

extern "C" int leaky_relu_forward_cuda(float *out, const float *inp, size_t n, float slope) {
    return act_forward_cuda(ACT_LEAKY_RELU, out, inp, n, slope);
}

extern "C" int leaky_relu_backward_cuda(float *dinp, const float *dout, const float *out, size_t n,
                                        float slope) {
    return act_backward_cuda(ACT_LEAKY_RELU, dinp, dout, out, n, slope);
}
