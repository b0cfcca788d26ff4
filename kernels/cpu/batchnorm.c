/* BatchNorm (inference) on the CPU, float and double from batchnorm_impl.h. */
/* clang at -O1 (make asan) cannot always honour "omp simd" and would fail
 * the build with -Werror; the pragma is a hint here, not a requirement. */
#ifdef __clang__
#pragma clang diagnostic ignored "-Wpass-failed"
#endif
#include <math.h>
#include <stddef.h>

#include "batchnorm.h"

#define LSDM_IMPL "batchnorm_impl.h"
#include "instantiate.h"
