/* Fully connected layer, PyTorch's nn.Linear layout:
 *   out(B,OC) = inp(B,IC) @ weight(OC,IC)^T + bias(OC)
 * by one BLAS gemm (cblas_sgemm; cblas_dgemm for the _f64 twin).
 * bias may be NULL. Backward ACCUMULATES (+=) into dinp, dweight and dbias
 * (callers zero them); each may be NULL when not wanted. */
#ifndef LSDM_KERNELS_LINEAR_H
#define LSDM_KERNELS_LINEAR_H

void linear_forward(float *out,          // (B,OC)
                    const float *inp,    // (B,IC)
                    const float *weight, // (OC,IC)
                    const float *bias,   // (OC) or NULL
                    int B, int IC, int OC);
void linear_backward(float *dinp,         // (B,IC) +=
                     float *dweight,      // (OC,IC) +=
                     float *dbias,        // (OC) +=
                     const float *dout,   // (B,OC)
                     const float *inp,    // (B,IC)
                     const float *weight, // (OC,IC)
                     int B, int IC, int OC);

void linear_forward_f64(double *out, const double *inp, const double *weight,
                        const double *bias, int B, int IC, int OC);
void linear_backward_f64(double *dinp, double *dweight, double *dbias, const double *dout,
                         const double *inp, const double *weight, int B, int IC, int OC);

#endif
