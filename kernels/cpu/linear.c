/* Linear layer on the CPU via BLAS, float and double from linear_impl.h. */
#include <cblas.h>
#include <stddef.h>

#include "linear.h"

#define real float
#define FN(x) x
#define GEMM cblas_sgemm
#include "linear_impl.h"
#undef real
#undef FN
#undef GEMM

#define real double
#define FN(x) x##_f64
#define GEMM cblas_dgemm
#include "linear_impl.h"
#undef real
#undef FN
#undef GEMM
