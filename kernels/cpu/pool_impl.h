/* Body of pool.c, included for real = float and double. */

void FN(maxpool3d_forward)(real *out, int *idx, const real *inp, const pool3d_dims *p) {
    long IS = (long)p->in[0] * p->in[1] * p->in[2], OS = (long)p->out[0] * p->out[1] * p->out[2];
    #pragma omp parallel for
    for (long e = 0; e < p->NC * OS; e++) {
        long c = e / OS;
        pool_window w;
        pool_window_at(&w, p, e % OS);
        const real *x = inp + c * IS;
        real best = -INFINITY;
        long bi = -1;
        for (int z = w.lo[0]; z < w.hi[0]; z++)
            for (int y = w.lo[1]; y < w.hi[1]; y++)
                for (int v = w.lo[2]; v < w.hi[2]; v++) {
                    long i = ((long)z * p->in[1] + y) * p->in[2] + v;
                    // PyTorch's test: a NaN always takes over (the last one wins)
                    if (x[i] > best || isnan(x[i]) || bi < 0) { best = x[i], bi = i; }
                }
        out[e] = best;
        idx[e] = (int)bi;
    }
}

void FN(maxpool3d_backward)(real *dinp, const real *dout, const int *idx, const pool3d_dims *p) {
    long IS = (long)p->in[0] * p->in[1] * p->in[2], OS = (long)p->out[0] * p->out[1] * p->out[2];
    #pragma omp parallel for // one channel per thread: windows overlap inside it
    for (long c = 0; c < p->NC; c++)
        for (long o = 0; o < OS; o++) dinp[c * IS + idx[c * OS + o]] += dout[c * OS + o];
}

void FN(avgpool3d_forward)(real *out, const real *inp, const pool3d_dims *p, int count_include_pad) {
    long IS = (long)p->in[0] * p->in[1] * p->in[2], OS = (long)p->out[0] * p->out[1] * p->out[2];
    #pragma omp parallel for
    for (long e = 0; e < p->NC * OS; e++) {
        pool_window w;
        pool_window_at(&w, p, e % OS);
        const real *x = inp + e / OS * IS;
        real s = 0;
        for (int z = w.lo[0]; z < w.hi[0]; z++)
            for (int y = w.lo[1]; y < w.hi[1]; y++)
                for (int v = w.lo[2]; v < w.hi[2]; v++) s += x[((long)z * p->in[1] + y) * p->in[2] + v];
        out[e] = s / (real)(count_include_pad ? w.padded : w.count);
    }
}

void FN(avgpool3d_backward)(real *dinp, const real *dout, const pool3d_dims *p, int count_include_pad) {
    long IS = (long)p->in[0] * p->in[1] * p->in[2], OS = (long)p->out[0] * p->out[1] * p->out[2];
    #pragma omp parallel for
    for (long c = 0; c < p->NC; c++)
        for (long o = 0; o < OS; o++) {
            pool_window w;
            pool_window_at(&w, p, o);
            real g = dout[c * OS + o] / (real)(count_include_pad ? w.padded : w.count);
            real *dx = dinp + c * IS;
            for (int z = w.lo[0]; z < w.hi[0]; z++)
                for (int y = w.lo[1]; y < w.hi[1]; y++)
                    for (int v = w.lo[2]; v < w.hi[2]; v++) dx[((long)z * p->in[1] + y) * p->in[2] + v] += g;
        }
}
