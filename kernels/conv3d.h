/* 3D convolution (cross-correlation, as PyTorch's conv3d), groups = 1.
 *
 *   out[n,co,o] = bias[co] + sum_{ci,k} weight[co,ci,k] * inp[n,ci, o*stride - pad + k*dilation]
 *
 * with o = (od,oh,ow) and k = (kd,kh,kw). Outside the input, zero padding
 * reads 0 and replicate padding reads the nearest edge voxel.
 *
 * Layout: contiguous row-major, W fastest.
 *   inp    (N, Cin, D, H, W)
 *   weight (Cout, Cin, kd, kh, kw)
 *   bias   (Cout) or NULL
 *   out    (N, Cout, OD, OH, OW)
 *
 * Method: vol2col + GEMM, over slabs of output rows so that the column
 * matrix of one slab, (Cin*kd*kh*kw) x (rows*OW), stays in cache; a 1x1x1
 * stride-1 unpadded conv is one plain GEMM per sample. On CPUs with
 * AVX-512 (and LSDM_CPU_ISA unset or not "generic") the float functions
 * write the columns straight into the panel layout of our own GEMM
 * micro-kernel (kernels/cpu/gemm_avx512.c, kernels/cpu/conv3d_fast.h);
 * there the forward of a conv with output rows >= 16 wide and dilation 1
 * builds no column matrix at all: the micro-kernel reads its B operand in
 * place from padded input rows (an implicit GEMM, kernels/cpu/conv3d_implicit.h);
 * elsewhere, and in the double reference, single-threaded BLAS does the
 * GEMMs. One OpenMP region per call: forward splits the slabs among the
 * threads, the weight gradient the rows of the column matrix, the data
 * gradient the input channels (so no two threads write the same value);
 * each thread calls a single-threaded GEMM on its part (conv3d_blas_threads).
 *
 * Backward ACCUMULATES (+=) into dinp, dweight and dbias (as llm.c):
 * callers zero them first. This makes gradient accumulation and
 * residual branches free. Any of the three may be NULL (not wanted);
 * inp may be NULL when dweight is, weight when dinp is.
 *
 * Scratch: `work` holds conv3d_workspace_size(d) elements (floats for the
 * float functions, doubles for the _f64 ones); nothing is allocated here.
 *
 * Every function exists in float and in double (_f64), built from the same
 * source (kernels/cpu/conv3d_impl.h); the double ones are the reference
 * for finite-difference tests. */
#ifndef LSDM_CONV3D_H
#define LSDM_CONV3D_H

#include <stddef.h>

enum { CONV3D_PAD_ZERO = 0, CONV3D_PAD_REPLICATE = 1 };

typedef struct {
    int N, Cin, D, H, W; /* input batch, channels, depth, height, width */
    int Cout;            /* output channels */
    int kd, kh, kw;      /* kernel */
    int sd, sh, sw;      /* stride (0 is taken as 1) */
    int pd, ph, pw;      /* padding on both sides of each axis */
    int dd, dh, dw;      /* dilation (0 is taken as 1) */
    int pad_mode;        /* CONV3D_PAD_ZERO or CONV3D_PAD_REPLICATE */
    int slab;            /* column elements per slab; 0 = default (tuning knob) */
    int threads;         /* OpenMP threads; 0 = omp_get_max_threads() at init */
    int OD, OH, OW;      /* output size: set by conv3d_dims_init */
} conv3d_dims;

/* Check the sizes, default stride/dilation 0 to 1 and compute OD, OH, OW.
 * Returns 0, or -1 with lsdm_err on nonsense (non-positive sizes, negative
 * padding, an empty output, sizes that overflow). */
int conv3d_dims_init(conv3d_dims *d);

/* Make BLAS single-threaded (OpenBLAS: openblas_set_num_threads(1)); called
 * by conv3d_dims_init. The kernels parallelise with OpenMP and call BLAS
 * inside their threads: a threaded pthread OpenBLAS would be entered by
 * every thread at once, and its worker pool, spinning beside OpenMP's,
 * costs 2-5x on two cores. This is process-wide: BLAS calls elsewhere run
 * on one thread too (parallelise around them, as here). */
void conv3d_blas_threads(void);

/* Elements of `work` the forward and backward need (0 for a pointwise conv). */
size_t conv3d_workspace_size(const conv3d_dims *d);
/* Elements of `work` conv3d_forward alone needs (<= conv3d_workspace_size;
 * inference allocates this: the gradients' paths can need more). */
size_t conv3d_forward_workspace_size(const conv3d_dims *d);

/* Floating-point operations of one forward, 2 per multiply-add (the data
 * and the weight gradient cost the same each). */
double conv3d_flops(const conv3d_dims *d);

void conv3d_forward(float *out,                // (N,Cout,OD,OH,OW)
                    float *work,               // conv3d_workspace_size(d)
                    const float *inp,          // (N,Cin,D,H,W)
                    const float *weight,       // (Cout,Cin,kd,kh,kw)
                    const float *bias,         // (Cout) or NULL
                    const conv3d_dims *d);
void conv3d_backward(float *dinp,              // (N,Cin,D,H,W) or NULL, +=
                     float *dweight,           // (Cout,Cin,kd,kh,kw) or NULL, +=
                     float *dbias,             // (Cout) or NULL, +=
                     float *work,              // conv3d_workspace_size(d)
                     const float *dout,        // (N,Cout,OD,OH,OW)
                     const float *inp,         // (N,Cin,D,H,W); NULL if !dweight
                     const float *weight,      // (Cout,Cin,kd,kh,kw); NULL if !dinp
                     const conv3d_dims *d);

/* out = beta*out + conv(inp) (no bias): the transposed conv's data gradient. */
void conv3d_forward_beta(float *out, float *work, const float *inp, const float *weight,
                         const float *bias, const conv3d_dims *d, float beta);

void conv3d_forward_f64(double *out, double *work, const double *inp, const double *weight,
                        const double *bias, const conv3d_dims *d);
void conv3d_backward_f64(double *dinp, double *dweight, double *dbias, double *work,
                         const double *dout, const double *inp, const double *weight,
                         const conv3d_dims *d);
void conv3d_forward_beta_f64(double *out, double *work, const double *inp, const double *weight,
                             const double *bias, const conv3d_dims *d, double beta);

#ifdef LSDM_CUDA
/* CUDA versions (kernels/cuda/conv3d.cu): cuDNN on device pointers, same
 * semantics and accumulation (+=) as the CPU; d from conv3d_dims_init.
 * Scratch: `work` holds conv3d_workspace_size_cuda(d) floats of device
 * memory (256-byte aligned, as cudaMalloc gives): the explicitly padded
 * input for replicate padding, then cuDNN's workspace. The algorithms are
 * chosen once per shape (deterministic ones preferred) and remembered.
 * Full fp32 unless LSDM_TF32=1 is set. Return 0, or -1 with lsdm_err. */
int conv3d_workspace_size_cuda(size_t *floats, const conv3d_dims *d);
int conv3d_forward_cuda(float *out, float *work, const float *inp, const float *weight,
                        const float *bias, const conv3d_dims *d);
int conv3d_backward_cuda(float *dinp, float *dweight, float *dbias, float *work,
                         const float *dout, const float *inp, const float *weight,
                         const conv3d_dims *d);
/* out = beta*out + conv(inp) (+ bias): beta 1 accumulates (conv_transpose3d's
 * data gradient); beta 0 is conv3d_forward_cuda. */
int conv3d_forward_beta_cuda(float *out, float *work, const float *inp, const float *weight,
                             const float *bias, const conv3d_dims *d, float beta);
#endif

#endif
