/* Losses in float and double from one body (loss_impl.h); see loss.h. */
#include "loss.h"

#include <math.h>

#include "err.h"

#define LSDM_IMPL "loss_impl.h"
#include "instantiate.h"

int loss_check_targets(const int32_t *target, size_t n, int C) {
    for (size_t i = 0; i < n; i++)
        if (target[i] < 0 || target[i] >= C)
            return lsdm_err("target %ld at position %zu is not a class in [0,%d)", (long)target[i], i, C);
    return 0;
}

dice_params dice_params_reference(void) {
    dice_params p = {.batch_dice = 1, .do_bg = 0, .smooth = 1e-5, .smooth_nom = 1e-5};
    return p;
}

/* Sums I, P, G and backward coefficients a, b: 5 doubles per (n, c). */
size_t dice_loss_workspace_size(int N, int C) { return 5 * (size_t)N * (size_t)C; }
