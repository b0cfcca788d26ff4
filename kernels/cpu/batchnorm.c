/* BatchNorm (inference) on the CPU, float and double from batchnorm_impl.h. */
#include <math.h>
#include <stddef.h>

#include "batchnorm.h"

#define LSDM_IMPL "batchnorm_impl.h"
#include "instantiate.h"
