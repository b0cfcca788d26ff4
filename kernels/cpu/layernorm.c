/* Channel LayerNorm on the CPU, float and double from layernorm_impl.h. */
#include <math.h>
#include <stddef.h>

#include "layernorm.h"

/* Positions handled together: the C-strided sweeps read LN_BLOCK
 * contiguous values of each channel (whole cache lines, vector loops). */
#define LN_BLOCK 64

#define LSDM_IMPL "layernorm_impl.h"
#include "instantiate.h"
