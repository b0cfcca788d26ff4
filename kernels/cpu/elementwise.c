/* Element-wise ops on the CPU, float and double from elementwise_impl.h. */
/* clang at -O1 (make asan) cannot always honour "omp simd" and would fail
 * the build with -Werror; the pragma is a hint here, not a requirement. */
#ifdef __clang__
#pragma clang diagnostic ignored "-Wpass-failed"
#endif
#include <stddef.h>
#include <string.h>

#include "elementwise.h"

#define PAR_MIN 32768

#define LSDM_IMPL "elementwise_impl.h"
#include "instantiate.h"
