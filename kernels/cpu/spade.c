/* SPADE modulation on the CPU, float and double from spade_impl.h. */
#include <stddef.h>

#include "spade.h"

#define PAR_MIN 32768

#define LSDM_IMPL "spade_impl.h"
#include "instantiate.h"
