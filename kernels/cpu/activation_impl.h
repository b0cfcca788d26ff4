/* Activation bodies, included twice by activation.c: real=float with
 * FN(x)=x, RF(f)=f##f (erff, ...) and R_EXP a vectorisable exp; real=double
 * with FN(x)=x##_f64, RF(f)=f and R_EXP=exp. No include guard on purpose. */

/* Each op is a loop over n independent values: parallel for large n,
 * vectorisable inside. PAR_MIN keeps small tensors on one thread. */
#define ACT_LOOP(body)                                                    \
    do {                                                                  \
        _Pragma("omp parallel for simd schedule(static) if (n > PAR_MIN)") \
        for (size_t i = 0; i < n; i++) { body; }                          \
    } while (0)

static inline real FN(act_sigm)(real x) { return (real)1 / ((real)1 + R_EXP(-x)); }

void FN(silu_forward)(real *out, const real *inp, size_t n) {
    ACT_LOOP(real x = inp[i]; out[i] = x * FN(act_sigm)(x));
}
/* d/dx x s(x) = s (1 + x (1 - s)) */
void FN(silu_backward)(real *dinp, const real *dout, const real *inp, size_t n) {
    ACT_LOOP(real x = inp[i]; real s = FN(act_sigm)(x);
             dinp[i] += dout[i] * s * ((real)1 + x * ((real)1 - s)));
}

void FN(relu_forward)(real *out, const real *inp, size_t n) {
    ACT_LOOP(out[i] = inp[i] > 0 ? inp[i] : 0);
}
void FN(relu_backward)(real *dinp, const real *dout, const real *out, size_t n) {
    ACT_LOOP(dinp[i] += out[i] > 0 ? dout[i] : 0);
}

void FN(leaky_relu_forward)(real *out, const real *inp, size_t n, real slope) {
    ACT_LOOP(out[i] = inp[i] > 0 ? inp[i] : inp[i] * slope);
}
void FN(leaky_relu_backward)(real *dinp, const real *dout, const real *out, size_t n,
                             real slope) {
    ACT_LOOP(dinp[i] += out[i] > 0 ? dout[i] : dout[i] * slope);
}

/* Exact GELU: x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2;
 * derivative Phi(x) + x phi(x), phi(x) = exp(-x^2/2) / sqrt(2 pi). */
void FN(gelu_forward)(real *out, const real *inp, size_t n) {
    const real r2 = (real)0.70710678118654752440;
    ACT_LOOP(real x = inp[i]; out[i] = (real)0.5 * x * ((real)1 + RF(erf)(x * r2)));
}
void FN(gelu_backward)(real *dinp, const real *dout, const real *inp, size_t n) {
    const real r2 = (real)0.70710678118654752440, r2pi = (real)0.39894228040143267794;
    ACT_LOOP(real x = inp[i];
             real cdf = (real)0.5 * ((real)1 + RF(erf)(x * r2));
             real pdf = r2pi * R_EXP((real)-0.5 * x * x);
             dinp[i] += dout[i] * (cdf + x * pdf));
}

/* tanh approximation, u = sqrt(2/pi) (x + 0.044715 x^3), t = tanh(u):
 * f = x (1 + t) / 2, f' = (1 + t) / 2 + x (1 - t^2) u'(x) / 2. */
void FN(gelu_tanh_forward)(real *out, const real *inp, size_t n) {
    const real k = (real)0.79788456080286535588, c = (real)0.044715;
    ACT_LOOP(real x = inp[i]; real u = k * (x + c * x * x * x);
             out[i] = (real)0.5 * x * ((real)1 + RF(tanh)(u)));
}
void FN(gelu_tanh_backward)(real *dinp, const real *dout, const real *inp, size_t n) {
    const real k = (real)0.79788456080286535588, c = (real)0.044715;
    ACT_LOOP(real x = inp[i]; real u = k * (x + c * x * x * x); real t = RF(tanh)(u);
             real du = k * ((real)1 + (real)3 * c * x * x);
             dinp[i] += dout[i] * ((real)0.5 * ((real)1 + t) + (real)0.5 * x * ((real)1 - t * t) * du));
}

void FN(tanh_forward)(real *out, const real *inp, size_t n) {
    ACT_LOOP(out[i] = RF(tanh)(inp[i]));
}
void FN(tanh_backward)(real *dinp, const real *dout, const real *out, size_t n) {
    ACT_LOOP(real y = out[i]; dinp[i] += dout[i] * ((real)1 - y * y));
}

void FN(sigmoid_forward)(real *out, const real *inp, size_t n) {
    ACT_LOOP(out[i] = FN(act_sigm)(inp[i]));
}
void FN(sigmoid_backward)(real *dinp, const real *dout, const real *out, size_t n) {
    ACT_LOOP(real y = out[i]; dinp[i] += dout[i] * y * ((real)1 - y));
}

void FN(act_forward)(act_kind k, real *out, const real *inp, size_t n, real slope) {
    switch (k) {
    case ACT_NONE: if (out != inp) memmove(out, inp, n * sizeof *out); break;
    case ACT_SILU: FN(silu_forward)(out, inp, n); break;
    case ACT_RELU: FN(relu_forward)(out, inp, n); break;
    case ACT_LEAKY_RELU: FN(leaky_relu_forward)(out, inp, n, slope); break;
    case ACT_GELU: FN(gelu_forward)(out, inp, n); break;
    case ACT_GELU_TANH: FN(gelu_tanh_forward)(out, inp, n); break;
    case ACT_TANH: FN(tanh_forward)(out, inp, n); break;
    case ACT_SIGMOID: FN(sigmoid_forward)(out, inp, n); break;
    }
}

void FN(act_backward)(act_kind k, real *dinp, const real *dout, const real *saved, size_t n,
                      real slope) {
    switch (k) {
    case ACT_NONE: ACT_LOOP(dinp[i] += dout[i]); break;
    case ACT_SILU: FN(silu_backward)(dinp, dout, saved, n); break;
    case ACT_RELU: FN(relu_backward)(dinp, dout, saved, n); break;
    case ACT_LEAKY_RELU: FN(leaky_relu_backward)(dinp, dout, saved, n, slope); break;
    case ACT_GELU: FN(gelu_backward)(dinp, dout, saved, n); break;
    case ACT_GELU_TANH: FN(gelu_tanh_backward)(dinp, dout, saved, n); break;
    case ACT_TANH: FN(tanh_backward)(dinp, dout, saved, n); break;
    case ACT_SIGMOID: FN(sigmoid_backward)(dinp, dout, saved, n); break;
    }
}

#undef ACT_LOOP
