/* Element-wise activations over n values: forward out = f(inp); backward
 * dinp += dout * f'(x) (ACCUMULATES; callers zero dinp).
 *
 * Which buffer each backward needs (so callers know what to keep):
 *   silu, gelu, gelu_tanh     the input x      (forward must not be in place)
 *   relu, leaky_relu, tanh,
 *   sigmoid                   the output y     (forward may run in place,
 *                                               out == inp)
 * leaky_relu's backward reads the sign of y, which is the sign of x for
 * slope >= 0 (the only slopes accepted by the models). At x = 0 the
 * derivatives follow PyTorch: relu' = 0, leaky_relu' = slope.
 * Every function also exists in double precision with the suffix _f64. */
#ifndef LSDM_KERNELS_ACTIVATION_H
#define LSDM_KERNELS_ACTIVATION_H

#include <stddef.h>

typedef enum {
    ACT_NONE,      // identity
    ACT_SILU,      // x * sigmoid(x)
    ACT_RELU,      // max(x, 0)
    ACT_LEAKY_RELU,// x > 0 ? x : slope * x
    ACT_GELU,      // x * Phi(x), exact erf form
    ACT_GELU_TANH, // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    ACT_TANH,
    ACT_SIGMOID,
} act_kind;

/* "silu", "relu", ... -> kind; -1 with lsdm_err if unknown. */
int act_kind_parse(const char *name, act_kind *out);
const char *act_kind_name(act_kind k);
/* 1 if the backward of k needs the forward's output (in-place safe),
 * 0 if it needs the input. */
int act_backward_uses_output(act_kind k);

void silu_forward(float *out, const float *inp, size_t n);
void silu_backward(float *dinp, const float *dout, const float *inp, size_t n);
void relu_forward(float *out, const float *inp, size_t n);
void relu_backward(float *dinp, const float *dout, const float *out, size_t n);
void leaky_relu_forward(float *out, const float *inp, size_t n, float slope);
void leaky_relu_backward(float *dinp, const float *dout, const float *out, size_t n, float slope);
void gelu_forward(float *out, const float *inp, size_t n);
void gelu_backward(float *dinp, const float *dout, const float *inp, size_t n);
void gelu_tanh_forward(float *out, const float *inp, size_t n);
void gelu_tanh_backward(float *dinp, const float *dout, const float *inp, size_t n);
void tanh_forward(float *out, const float *inp, size_t n);
void tanh_backward(float *dinp, const float *dout, const float *out, size_t n);
void sigmoid_forward(float *out, const float *inp, size_t n);
void sigmoid_backward(float *dinp, const float *dout, const float *out, size_t n);

/* Dispatch on kind; slope is used by ACT_LEAKY_RELU only. `saved` is the
 * input or the output of the forward, as act_backward_uses_output says. */
void act_forward(act_kind k, float *out, const float *inp, size_t n, float slope);
void act_backward(act_kind k, float *dinp, const float *dout, const float *saved, size_t n,
                  float slope);

void silu_forward_f64(double *out, const double *inp, size_t n);
void silu_backward_f64(double *dinp, const double *dout, const double *inp, size_t n);
void relu_forward_f64(double *out, const double *inp, size_t n);
void relu_backward_f64(double *dinp, const double *dout, const double *out, size_t n);
void leaky_relu_forward_f64(double *out, const double *inp, size_t n, double slope);
void leaky_relu_backward_f64(double *dinp, const double *dout, const double *out, size_t n,
                             double slope);
void gelu_forward_f64(double *out, const double *inp, size_t n);
void gelu_backward_f64(double *dinp, const double *dout, const double *inp, size_t n);
void gelu_tanh_forward_f64(double *out, const double *inp, size_t n);
void gelu_tanh_backward_f64(double *dinp, const double *dout, const double *inp, size_t n);
void tanh_forward_f64(double *out, const double *inp, size_t n);
void tanh_backward_f64(double *dinp, const double *dout, const double *out, size_t n);
void sigmoid_forward_f64(double *out, const double *inp, size_t n);
void sigmoid_backward_f64(double *dinp, const double *dout, const double *out, size_t n);
void act_forward_f64(act_kind k, double *out, const double *inp, size_t n, double slope);
void act_backward_f64(act_kind k, double *dinp, const double *dout, const double *saved,
                      size_t n, double slope);

#ifdef LSDM_CUDA
/* CUDA versions (kernels/cuda/activation.cu): device pointers, same
 * in-place rules; return 0, or -1 with lsdm_err. Backward ACCUMULATES. */
int silu_forward_cuda(float *out, const float *inp, size_t n);
int silu_backward_cuda(float *dinp, const float *dout, const float *inp, size_t n);
int relu_forward_cuda(float *out, const float *inp, size_t n);
int relu_backward_cuda(float *dinp, const float *dout, const float *out, size_t n);
int leaky_relu_forward_cuda(float *out, const float *inp, size_t n, float slope);
int leaky_relu_backward_cuda(float *dinp, const float *dout, const float *out, size_t n, float slope);
int gelu_forward_cuda(float *out, const float *inp, size_t n);
int gelu_backward_cuda(float *dinp, const float *dout, const float *inp, size_t n);
int gelu_tanh_forward_cuda(float *out, const float *inp, size_t n);
int gelu_tanh_backward_cuda(float *dinp, const float *dout, const float *inp, size_t n);
int tanh_forward_cuda(float *out, const float *inp, size_t n);
int tanh_backward_cuda(float *dinp, const float *dout, const float *out, size_t n);
int sigmoid_forward_cuda(float *out, const float *inp, size_t n);
int sigmoid_backward_cuda(float *dinp, const float *dout, const float *out, size_t n);
int act_forward_cuda(act_kind k, float *out, const float *inp, size_t n, float slope);
int act_backward_cuda(act_kind k, float *dinp, const float *dout, const float *saved, size_t n,
                      float slope);
#endif

#endif
