/* Sinusoidal timestep embedding (see kernels/timestep_embedding.h). */
#include <math.h>

#include "timestep_embedding.h"

#define real float
#define FN(x) x
#include "timestep_embedding_impl.h"
#undef real
#undef FN

#define real double
#define FN(x) x##_f64
#include "timestep_embedding_impl.h"
#undef real
#undef FN
