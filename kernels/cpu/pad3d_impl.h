/* pad3d body, included twice by pad3d.c (real=float, FN(x)=x; real=double,
 * FN(x)=x##_f64). No include guard on purpose. */

/* One output row: w0 pad values, the W input values, w1 pad values. */
static void FN(pad3d_row)(real *o, const real *x, int W, int w0, int w1, int rep) {
    real l = rep ? x[0] : 0, r = rep ? x[W - 1] : 0;
    for (int i = 0; i < w0; i++) o[i] = l;
    memcpy(o + w0, x, (size_t)W * sizeof *x);
    for (int i = 0; i < w1; i++) o[w0 + W + i] = r;
}

/* One task per output plane (nc, od): a padded plane is zeros or a copy of
 * the edge plane, an inside plane is rows of the input plane. */
void FN(pad3d_forward)(real *out, const real *inp, const pad3d_dims *p) {
    int D = p->in[0], H = p->in[1], W = p->in[2], OD = p->out[0], OH = p->out[1], OW = p->out[2];
    int d0 = p->pad[0], h0 = p->pad[2], w0 = p->pad[4], w1 = p->pad[5];
    int rep = p->mode == PAD3D_REPLICATE;
    size_t ip = (size_t)H * W, op = (size_t)OH * OW;
    long long planes = (long long)p->NC * OD;
    #pragma omp parallel for schedule(static)
    for (long long t = 0; t < planes; t++) {
        int nc = (int)(t / OD), d = (int)(t % OD) - d0;
        real *o = out + (size_t)t * op;
        if (!rep && (d < 0 || d >= D)) {
            memset(o, 0, op * sizeof *o);
            continue;
        }
        const real *x = inp + ((size_t)nc * D + pad3d_clamp(d, D)) * ip;
        for (int oh = 0; oh < OH; oh++) {
            real *orow = o + (size_t)oh * OW;
            int h = oh - h0;
            if (!rep && (h < 0 || h >= H)) memset(orow, 0, (size_t)OW * sizeof *orow);
            else FN(pad3d_row)(orow, x + (size_t)pad3d_clamp(h, H) * W, W, w0, w1, rep);
        }
    }
}

/* One task per input plane (nc, d), gathering from the output planes and
 * rows that read it (pad3d_range): interior values from one place, edge
 * values (replicate) also from every pad voxel beside them. */
void FN(pad3d_backward)(real *dinp, const real *dout, const pad3d_dims *p) {
    int D = p->in[0], H = p->in[1], W = p->in[2], OD = p->out[0], OH = p->out[1], OW = p->out[2];
    int d0 = p->pad[0], d1 = p->pad[1], h0 = p->pad[2], h1 = p->pad[3], w0 = p->pad[4];
    int rep = p->mode == PAD3D_REPLICATE;
    size_t ip = (size_t)H * W, op = (size_t)OH * OW;
    long long planes = (long long)p->NC * D;
    #pragma omp parallel for schedule(static)
    for (long long t = 0; t < planes; t++) {
        int nc = (int)(t / D), d = (int)(t % D), dlo, dhi;
        real *dx = dinp + (size_t)t * ip;
        pad3d_range(d, D, d0, d1, rep, &dlo, &dhi);
        for (int od = dlo; od <= dhi; od++) {
            const real *g = dout + ((size_t)nc * OD + od) * op;
            for (int h = 0; h < H; h++) {
                int hlo, hhi;
                pad3d_range(h, H, h0, h1, rep, &hlo, &hhi);
                real *dxr = dx + (size_t)h * W;
                for (int oh = hlo; oh <= hhi; oh++) {
                    const real *gr = g + (size_t)oh * OW;
                    SIMD
                    for (int w = 0; w < W; w++) dxr[w] += gr[w + w0];
                    if (!rep) continue;
                    real sl = 0, sr = 0;
                    for (int i = 0; i < w0; i++) sl += gr[i];
                    for (int i = w0 + W; i < OW; i++) sr += gr[i];
                    dxr[0] += sl;
                    dxr[W - 1] += sr;
                }
            }
        }
    }
}
