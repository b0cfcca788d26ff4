/* 3D max and average pooling (see kernels/pool.h). */
#include <math.h>
#include <stddef.h>

#include "err.h"
#include "pool.h"

int pool3d_dims_init(pool3d_dims *p, int NC, const int in[3], const int kernel[3],
                     const int stride[3], const int pad[3]) {
    if (NC <= 0) return lsdm_err("pool: batch*channels %d is not positive", NC);
    p->NC = NC;
    for (int a = 0; a < 3; a++) {
        int k = kernel[a], s = stride ? stride[a] : k, pd = pad ? pad[a] : 0;
        if (in[a] <= 0 || k <= 0 || s <= 0 || pd < 0)
            return lsdm_err("pool: sizes must be positive (input %d, kernel %d, stride %d, pad %d)",
                            in[a], k, s, pd);
        if (pd > k / 2) return lsdm_err("pool: padding %d exceeds half the kernel %d", pd, k);
        if (in[a] + 2 * pd < k)
            return lsdm_err("pool: kernel %d larger than the padded input %d", k, in[a] + 2 * pd);
        p->in[a] = in[a], p->k[a] = k, p->s[a] = s, p->p[a] = pd;
        p->out[a] = (in[a] + 2 * pd - k) / s + 1;
    }
    return 0;
}

/* The input box [lo, hi) of output voxel o (flat index in the output
 * volume), its size clipped to the padded input, and its real voxels. */
typedef struct {
    int lo[3], hi[3];
    long padded, count;
} pool_window;

static void pool_window_at(pool_window *w, const pool3d_dims *p, long o) {
    int at[3] = {(int)(o / ((long)p->out[1] * p->out[2])), (int)(o / p->out[2] % p->out[1]),
                 (int)(o % p->out[2])};
    w->padded = w->count = 1;
    for (int a = 0; a < 3; a++) {
        int lo = at[a] * p->s[a] - p->p[a], hi = lo + p->k[a];
        if (hi > p->in[a] + p->p[a]) hi = p->in[a] + p->p[a];
        w->padded *= hi - lo;
        w->lo[a] = lo < 0 ? 0 : lo;
        w->hi[a] = hi < p->in[a] ? hi : p->in[a];
        w->count *= w->hi[a] - w->lo[a];
    }
}

#define LSDM_IMPL "pool_impl.h"
#include "instantiate.h"
