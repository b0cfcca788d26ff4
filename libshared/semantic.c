/* Semantic maps to f32 one-hot. */
#include <stdlib.h>

#include "dtype.h"
#include "err.h"
#include "semantic.h"

float *semantic_onehot(const lsdm_record *s, int L, const int64_t dim[3], int64_t got[3]) {
    int nd = s->ndim;
    int64_t C = nd == 4 ? s->shape[0] : 1;
    int ok = nd == 3 || nd == 4;
    for (int k = 0; ok && dim && k < 3; k++) ok = s->shape[nd - 3 + k] == dim[k];
    int indices = C == 1 && L > 1 && !lsdm_dtype_is_float(s->dtype);
    if (!ok || (C != L && !indices)) {
        char have[96];
        lsdm_shape_format(have, sizeof have, nd, s->shape);
        if (dim)
            lsdm_err("mask of shape %s, expected %d,%lld,%lld,%lld (one-hot classes) or class "
                     "indices on that grid", have, L, (long long)dim[0], (long long)dim[1],
                     (long long)dim[2]);
        else
            lsdm_err("mask of shape %s, expected %d one-hot channels or class indices (C,D,H,W)", have, L);
        return NULL;
    }
    const int64_t *g = s->shape + nd - 3;
    if (got)
        for (int k = 0; k < 3; k++) got[k] = g[k];
    size_t S = (size_t)(g[0] * g[1] * g[2]);
    float *seg = calloc((size_t)L * S, sizeof(float));
    if (!seg) {
        lsdm_err("out of memory (a mask of %zu voxels)", S);
        return NULL;
    }
    if (!indices) {
        lsdm_convert_to_f32(seg, s->data, s->dtype, (size_t)L * S);
        return seg;
    }
    for (size_t i = 0; i < S; i++) {
        double v = lsdm_elem_get(s->data, s->dtype, i);
        if (v < 0 || v >= L) {
            lsdm_err("mask class %.0f, the model knows %d classes", v, L);
            free(seg);
            return NULL;
        }
        seg[(size_t)v * S + i] = 1;
    }
    return seg;
}
