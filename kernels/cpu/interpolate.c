/* 3D interpolation (see kernels/interpolate.h). Index rules follow
 * PyTorch's aten/src/ATen/native/UpSample.h. */
#include <math.h>
#include <stddef.h>

#include "err.h"
#include "interpolate.h"

int interp3d_dims_init(interp3d_dims *d, int NC, const int in[3], const int out[3],
                       const double scale[3], interp_mode mode, int align_corners) {
    if (NC <= 0) return lsdm_err("interpolate: batch*channels %d is not positive", NC);
    if ((out == NULL) == (scale == NULL))
        return lsdm_err("interpolate: give either output sizes or scale factors");
    if (mode != INTERP_NEAREST && mode != INTERP_NEAREST_EXACT && mode != INTERP_TRILINEAR)
        return lsdm_err("interpolate: unknown mode %d", (int)mode);
    if (align_corners && mode != INTERP_TRILINEAR)
        return lsdm_err("interpolate: align_corners needs trilinear mode");
    d->NC = NC;
    d->mode = mode;
    d->align_corners = align_corners ? 1 : 0;
    for (int a = 0; a < 3; a++) {
        if (in[a] <= 0) return lsdm_err("interpolate: input size %d is not positive", in[a]);
        if (scale && !(scale[a] > 0 && isfinite(scale[a])))
            return lsdm_err("interpolate: scale factor %g is not positive", scale[a]);
        double o = scale ? floor((double)in[a] * scale[a]) : out[a];
        if (!(o >= 1 && o <= 1 << 30))
            return lsdm_err("interpolate: output size %g out of range", o);
        d->in[a] = in[a];
        d->out[a] = (int)o;
        d->scale[a] = scale ? scale[a] : 0;
    }
    return 0;
}

/* PyTorch's nearest_idx / nearest_exact_idx: float32 arithmetic, with
 * the same-size and double-size shortcuts of 'nearest'. */
static long interp_nearest_index(const interp3d_dims *d, int a, long o) {
    long in = d->in[a], out = d->out[a];
    float scale = d->scale[a] > 0 ? (float)(1.0 / d->scale[a]) : (float)in / (float)out;
    long i;
    if (d->mode == INTERP_NEAREST) {
        if (out == in) return o;
        if (out == 2 * in) return o >> 1;
        i = (long)floorf((float)o * scale);
    } else {
        i = (long)floorf((float)(((double)o + 0.5) * scale));
    }
    return i < in - 1 ? i : in - 1;
}

#define LSDM_IMPL "interpolate_impl.h"
#include "instantiate.h"
