/* 3D zero/replicate padding on the CPU, float and double from pad3d_impl.h. */
#include <limits.h>
#include <stddef.h>
#include <string.h>

#include "err.h"
#include "pad3d.h"

int pad3d_dims_init(pad3d_dims *p, int NC, const int in[3], const int pad[6], int mode) {
    memset(p, 0, sizeof *p);
    if (NC < 1 || in[0] < 1 || in[1] < 1 || in[2] < 1)
        return lsdm_err("pad3d: bad sizes NC=%d D=%d H=%d W=%d", NC, in[0], in[1], in[2]);
    for (int i = 0; i < 6; i++)
        if (pad[i] < 0) return lsdm_err("pad3d: negative padding %d", pad[i]);
    if (mode != PAD3D_ZERO && mode != PAD3D_REPLICATE) return lsdm_err("pad3d: unknown mode %d", mode);
    p->NC = NC, p->mode = mode;
    for (int a = 0; a < 3; a++) {
        long long o = (long long)in[a] + pad[2 * a] + pad[2 * a + 1];
        if (o > INT_MAX) return lsdm_err("pad3d: padded size %lld too large", o);
        p->in[a] = in[a], p->out[a] = (int)o;
        p->pad[2 * a] = pad[2 * a], p->pad[2 * a + 1] = pad[2 * a + 1];
    }
    if ((long long)p->out[1] * p->out[2] > INT_MAX) return lsdm_err("pad3d: padded plane too large");
    return 0;
}

/* The output indices [lo, hi] whose gradient input index i receives along
 * an axis of n values padded by (b, a): i + b, and for replicate the
 * whole pad beside an edge voxel (both pads when n = 1). */
static inline void pad3d_range(int i, int n, int b, int a, int rep, int *lo, int *hi) {
    *lo = *hi = i + b;
    if (rep && i == 0) *lo = 0;
    if (rep && i == n - 1) *hi = n - 1 + b + a;
}

static inline int pad3d_clamp(int i, int n) { return i < 0 ? 0 : i >= n ? n - 1 : i; }

#define LSDM_IMPL "pad3d_impl.h"
#include "instantiate.h"
