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

#define real float
#define FN(x) x
#include "elementwise_impl.h"
#undef real
#undef FN

#define real double
#define FN(x) x##_f64
#include "elementwise_impl.h"
#undef real
#undef FN
