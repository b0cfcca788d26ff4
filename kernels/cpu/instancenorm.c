/* InstanceNorm = GroupNorm with one channel per group; one piece of code
 * for one idea, so these only forward to groupnorm. */
#include "groupnorm.h"
#include "instancenorm.h"

void instancenorm_forward(float *out, float *mean, float *rstd, const float *inp,
                          const float *weight, const float *bias, int N, int C, int S, float eps) {
    groupnorm_forward(out, mean, rstd, inp, weight, bias, N, C, S, C, eps);
}

void instancenorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                           const float *inp, const float *weight, const float *mean,
                           const float *rstd, int N, int C, int S) {
    groupnorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C, S, C);
}

void instancenorm_forward_f64(double *out, double *mean, double *rstd, const double *inp,
                              const double *weight, const double *bias,
                              int N, int C, int S, double eps) {
    groupnorm_forward_f64(out, mean, rstd, inp, weight, bias, N, C, S, C, eps);
}

void instancenorm_backward_f64(double *dinp, double *dweight, double *dbias, const double *dout,
                               const double *inp, const double *weight, const double *mean,
                               const double *rstd, int N, int C, int S) {
    groupnorm_backward_f64(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C, S, C);
}
