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

#ifdef LSDM_CUDA
/* CUDA versions (kernels/cuda/linear.cu): cuBLAS sgemm on device pointers,
 * full fp32 unless LSDM_TF32=1 is set in the environment (TF32 tensor
 * cores, ~1e-3 relative error). Return 0, or -1 with lsdm_err (bad sizes,
 * a cuBLAS or CUDA error). Backward ACCUMULATES like the CPU. */
int linear_forward_cuda(float *out, const float *inp, const float *weight, const float *bias,
                        int B, int IC, int OC);
int linear_backward_cuda(float *dinp, float *dweight, float *dbias, const float *dout,
                         const float *inp, const float *weight, int B, int IC, int OC);
#endif

#endif
