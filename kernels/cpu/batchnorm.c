/* BatchNorm (inference and training) on the CPU, float and double from
 * batchnorm_impl.h. */
#include <math.h>
#include <stddef.h>

#include "batchnorm.h"
#include "err.h"

int batchnorm_check(int N, int C, int S, int training) {
    if (N < 1 || C < 1 || S < 1) return lsdm_err("batchnorm: bad sizes N=%d C=%d S=%d", N, C, S);
    if (training && (long long)N * S < 2)
        return lsdm_err("batchnorm: training needs more than one value per channel (N=%d S=%d)", N, S);
    return 0;
}

#define LSDM_IMPL "batchnorm_impl.h"
#include "instantiate.h"
