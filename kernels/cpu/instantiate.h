/* Compile the op body named by LSDM_IMPL twice from the same text: in
 * float with the public names, and in double with an _f64 suffix (the
 * reference for finite-difference tests). The body writes `real`,
 * FN(name), GEMM(...) and EXP(...); SIMD before an element-wise loop, and
 * SIMD_SUM before a dot-product loop summing into `s` (vectorised, so
 * reordered, in float only: the double reference keeps sequential sums). Usage, at the end of kernels/cpu/NAME.c:
 *     #define LSDM_IMPL "NAME_impl.h"
 *     #include "instantiate.h"                                          */
#ifndef LSDM_IMPL
#error "define LSDM_IMPL before including instantiate.h"
#endif

#define SIMD _Pragma("omp simd")

#define real float
#define FN(x) x
#define GEMM cblas_sgemm
#define EXP expf
#define SIMD_SUM _Pragma("omp simd reduction(+:s)")
#include LSDM_IMPL
#undef real
#undef FN
#undef GEMM
#undef EXP
#undef SIMD_SUM

#define real double
#define FN(x) x##_f64
#define GEMM cblas_dgemm
#define EXP exp
#define SIMD_SUM
#include LSDM_IMPL
#undef real
#undef FN
#undef GEMM
#undef EXP
#undef SIMD_SUM

#undef SIMD
#undef LSDM_IMPL
