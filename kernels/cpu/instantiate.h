/* Compile the op body named by LSDM_IMPL twice from the same text: in
 * float with the public names, and in double with an _f64 suffix (the
 * reference for finite-difference tests). The body writes `real`,
 * FN(name), GEMM(...) and EXP(...). Usage, at the end of kernels/cpu/NAME.c:
 *     #define LSDM_IMPL "NAME_impl.h"
 *     #include "instantiate.h"                                          */
#ifndef LSDM_IMPL
#error "define LSDM_IMPL before including instantiate.h"
#endif

#define real float
#define FN(x) x
#define GEMM cblas_sgemm
#define EXP expf
#include LSDM_IMPL
#undef real
#undef FN
#undef GEMM
#undef EXP

#define real double
#define FN(x) x##_f64
#define GEMM cblas_dgemm
#define EXP exp
#include LSDM_IMPL
#undef real
#undef FN
#undef GEMM
#undef EXP

#undef LSDM_IMPL
