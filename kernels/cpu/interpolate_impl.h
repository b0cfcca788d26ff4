/* Body of interpolate.c, included for real = float and double. */

/* Output index o on axis a -> the two source indices and their weights
 * (nearest: one index, weights 1 and 0). */
static void FN(interp_axis)(const interp3d_dims *d, int a, long o,
                            long *i0, long *i1, real *l0, real *l1) {
    long in = d->in[a], out = d->out[a];
    if (d->mode != INTERP_TRILINEAR) {
        *i0 = *i1 = interp_nearest_index(d, a, o);
        *l0 = 1, *l1 = 0;
        return;
    }
    real scale, src;
    if (d->align_corners) {
        scale = out > 1 ? (real)(in - 1) / (real)(out - 1) : 0;
        src = scale * (real)o;
    } else {
        scale = d->scale[a] > 0 ? (real)(1.0 / d->scale[a]) : (real)in / (real)out;
        src = scale * ((real)o + (real)0.5) - (real)0.5;
        if (src < 0) src = 0;
    }
    *i0 = (long)src;
    *i1 = *i0 + (*i0 < in - 1 ? 1 : 0);
    real l = src - (real)*i0;
    *l1 = l < 0 ? 0 : l > 1 ? 1 : l;
    *l0 = 1 - *l1;
}

void FN(interp3d_forward)(real *out, const real *inp, const interp3d_dims *d) {
    long ID = d->in[0], IH = d->in[1], IW = d->in[2];
    long OD = d->out[0], OH = d->out[1], OW = d->out[2];
    #pragma omp parallel for
    for (long cz = 0; cz < d->NC * OD; cz++) {
        long c = cz / OD, z = cz % OD, z0, z1, y0, y1, x0, x1;
        real wz0, wz1, wy0, wy1, wx0, wx1;
        const real *x = inp + c * ID * IH * IW;
        FN(interp_axis)(d, 0, z, &z0, &z1, &wz0, &wz1);
        for (long y = 0; y < OH; y++) {
            FN(interp_axis)(d, 1, y, &y0, &y1, &wy0, &wy1);
            real *o = out + (cz * OH + y) * OW;
            const real *p00 = x + (z0 * IH + y0) * IW, *p01 = x + (z0 * IH + y1) * IW;
            const real *p10 = x + (z1 * IH + y0) * IW, *p11 = x + (z1 * IH + y1) * IW;
            for (long w = 0; w < OW; w++) {
                FN(interp_axis)(d, 2, w, &x0, &x1, &wx0, &wx1);
                if (d->mode != INTERP_TRILINEAR) { o[w] = p00[x0]; continue; }
                o[w] = wz0 * (wy0 * (wx0 * p00[x0] + wx1 * p00[x1]) + wy1 * (wx0 * p01[x0] + wx1 * p01[x1]))
                     + wz1 * (wy0 * (wx0 * p10[x0] + wx1 * p10[x1]) + wy1 * (wx0 * p11[x0] + wx1 * p11[x1]));
            }
        }
    }
}

void FN(interp3d_backward)(real *dinp, const real *dout, const interp3d_dims *d) {
    long ID = d->in[0], IH = d->in[1], IW = d->in[2];
    long OD = d->out[0], OH = d->out[1], OW = d->out[2];
    #pragma omp parallel for // one channel per thread: the scatter stays private
    for (long c = 0; c < d->NC; c++) {
        real *dx = dinp + c * ID * IH * IW;
        for (long z = 0; z < OD; z++) {
            long z0, z1, y0, y1, x0, x1;
            real wz0, wz1, wy0, wy1, wx0, wx1;
            FN(interp_axis)(d, 0, z, &z0, &z1, &wz0, &wz1);
            for (long y = 0; y < OH; y++) {
                FN(interp_axis)(d, 1, y, &y0, &y1, &wy0, &wy1);
                const real *g = dout + ((c * OD + z) * OH + y) * OW;
                real *p00 = dx + (z0 * IH + y0) * IW, *p01 = dx + (z0 * IH + y1) * IW;
                real *p10 = dx + (z1 * IH + y0) * IW, *p11 = dx + (z1 * IH + y1) * IW;
                for (long w = 0; w < OW; w++) {
                    FN(interp_axis)(d, 2, w, &x0, &x1, &wx0, &wx1);
                    if (d->mode != INTERP_TRILINEAR) { p00[x0] += g[w]; continue; }
                    real a = wz0 * wy0 * g[w], b = wz0 * wy1 * g[w];
                    real e = wz1 * wy0 * g[w], f = wz1 * wy1 * g[w];
                    p00[x0] += wx0 * a; p00[x1] += wx1 * a;
                    p01[x0] += wx0 * b; p01[x1] += wx1 * b;
                    p10[x0] += wx0 * e; p10[x1] += wx1 * e;
                    p11[x0] += wx0 * f; p11[x1] += wx1 * f;
                }
            }
        }
    }
}
