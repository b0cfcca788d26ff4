/* GroupNorm forward/backward on the CPU, float and double from one source
 * (groupnorm_impl.h). */
#include <math.h>
#include <stddef.h>

#include "err.h"
#include "groupnorm.h"

int groupnorm_check(int N, int C, int S, int G) {
    if (N < 1 || C < 1 || S < 1 || G < 1)
        return lsdm_err("groupnorm: bad sizes N=%d C=%d S=%d G=%d", N, C, S, G);
    if (C % G != 0) return lsdm_err("groupnorm: %d groups do not divide %d channels", G, C);
    return 0;
}

/* Values per block of a float partial sum (see gn_sums_shifted). */
#define GN_BLOCK 64

#define LSDM_IMPL "groupnorm_impl.h"
#include "instantiate.h"
