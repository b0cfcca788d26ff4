/* Sinusoidal timestep embedding (see kernels/timestep_embedding.h). */
#include <math.h>

#include "timestep_embedding.h"

#define LSDM_IMPL "timestep_embedding_impl.h"
#include "instantiate.h"
