/* Element-wise ops on the CPU, float and double from elementwise_impl.h. */
#include <stddef.h>
#include <string.h>

#include "elementwise.h"

#define PAR_MIN 32768

#define LSDM_IMPL "elementwise_impl.h"
#include "instantiate.h"
