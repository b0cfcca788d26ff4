/* Linear layer on the CPU via BLAS, float and double from linear_impl.h. */
#include <cblas.h>
#include <stddef.h>

#include "linear.h"

#define LSDM_IMPL "linear_impl.h"
#include "instantiate.h"
