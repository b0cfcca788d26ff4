/* conv3d's weight gradient on the micro-kernel (float, AVX-512), included
 * once by conv3d.c after conv3d_fast.h; conv3d_fast_weight_grad tries it
 * first.
 *
 * dW (Cout, K) = dy (Cout, voxels) . col (K, voxels)^T sums over voxels,
 * which run along the rows of both operands. As dot products (the packed
 * path's gemm_avx512_nt) every 16 voxels end in horizontal sums and both
 * operands stream from L2; here the voxels are the micro-kernel's inner
 * dimension instead. The input is copied channels-last (a voxel's Cin
 * values contiguous, the padding written out), so that for one tap
 * (kd,kh,kw) and 32 input channels the B rows of a slab of output voxels,
 * one per voxel, are 32 contiguous floats at a table of offsets
 * (gemm_avx512_rows_tile, as the implicit forward reads its rows); the
 * slab's dy is packed once into 8-channel panels (A). A tile of 8 output x
 * 32 input channels then stays in registers over the slab's voxels, and is
 * added to a tap-major copy of the gradient (Cout, kvol, Cin) that goes
 * into dW at the end.
 *
 * A slab is whole output planes when a plane holds fewer than CW_VOX
 * voxels (the UNet's 8x8 to 64x64), else output rows of one plane. The
 * copy holds whole padded input planes in a ring of as many as one slab
 * reads, each plane copied once per sample (copying each slab's rows
 * instead cost 4-6 times as much: a 3x3x3 conv reads every plane for three
 * output planes; it was a quarter of the time at 32 channels). Slabs do
 * not depend on the thread count and each value is summed by one thread,
 * over the voxels in order, so neither do the bits. */

#define CW_VOX 512              /* output voxels per slab (about) */
#define CW_MAX_BUF (16L << 20)  /* floats of the ring of channels-last planes, at most (64 MiB) */
#define CW_SLACK GEMM_NR        /* floats after it: a tile reads 32 channels whatever Cin */
#define CW_MIN_CIN 16           /* fewer input channels: most of each 32-wide tile unused */

typedef struct {
    int cs;            /* floats per voxel in the buffer: Cin, padded (see conv3d_wgrad_plan_make) */
    int planes, rows;  /* output planes per slab (> 1: whole planes), rows per plane */
    int q;             /* output voxels per slab, at most */
    int DB, HB, WB;    /* the ring: planes (those one slab reads), rows, columns of a padded plane */
    size_t buf, ap, acc; /* floats: ring (slack included), dy panels, tap-major gradient */
} conv3d_wgrad_plan;

/* 0 and the plan, or -1 when this path does not apply. */
static int conv3d_wgrad_plan_make(conv3d_wgrad_plan *p, const conv3d_dims *d) {
    if (conv3d_is_pointwise(d) || d->Cin < CW_MIN_CIN || d->Cout < GEMM_MR) return -1;
    const char *env = getenv("LSDM_CONV_WGRAD"); /* 0: off, to compare the two paths */
    if (env && strcmp(env, "0") == 0) return -1;
    const int plane = d->OH * d->OW;
    if (plane < CW_VOX) {
        p->rows = d->OH;
        p->planes = CW_VOX / plane < d->OD ? CW_VOX / plane : d->OD;
    } else {
        p->planes = 1;
        p->rows = CW_VOX / d->OW < 1 ? 1 : CW_VOX / d->OW < d->OH ? CW_VOX / d->OW : d->OH;
    }
    p->q = p->planes * p->rows * d->OW;
    p->DB = (p->planes - 1) * d->sd + (d->kd - 1) * d->dd + 1;
    p->HB = (d->OH - 1) * d->sh + (d->kh - 1) * d->dh + 1;
    p->WB = (d->OW - 1) * d->sw + (d->kw - 1) * d->dw + 1;
    /* a tile reads 2 lines per voxel at a stride of cs floats: a stride of
     * 64 floats times a power of two would put them all in a few cache sets
     * (512 channels ran at 70% of BLAS's speed) */
    p->cs = (d->Cin + 15) / 16 * 16;
    if (p->cs % 64 == 0) p->cs += 16;
    long nbuf = (long)p->DB * p->HB * p->WB * p->cs;
    if (nbuf > CW_MAX_BUF) return -1;
    p->buf = (size_t)nbuf + CW_SLACK + CF_ALIGN;
    p->ap = gemm_pack_a_size(d->Cout, p->q) + CF_ALIGN;
    p->acc = (size_t)d->Cout * d->Cin * d->kd * d->kh * d->kw + CF_ALIGN;
    return 0;
}

static size_t conv3d_wgrad_workspace(const conv3d_dims *d) {
    conv3d_wgrad_plan p;
    if (conv3d_wgrad_plan_make(&p, d) < 0) return 0;
    return p.buf + p.ap + p.acc + (size_t)d->kd * p.q + CF_ALIGN; /* + the offset tables (ints) */
}

/* A row of a channels-last plane (WB voxels x cs): input
 * row (id, ih) of sample x (Cin,D,H,W), columns -pw .. WB-1-pw, with the
 * padding written out; id/ih outside the volume: zeros or the edge. */
static void cw_fill_row(float *dst, const float *x, const conv3d_dims *d, int WB, int cs, int id,
                        int ih) {
    const int Cin = d->Cin, rep = d->pad_mode == CONV3D_PAD_REPLICATE;
    const size_t chs = (size_t)d->D * d->H * d->W; /* the input's channel stride */
    if (rep) {
        id = id < 0 ? 0 : id >= d->D ? d->D - 1 : id;
        ih = ih < 0 ? 0 : ih >= d->H ? d->H - 1 : ih;
    } else if (id < 0 || id >= d->D || ih < 0 || ih >= d->H) {
        memset(dst, 0, (size_t)WB * cs * sizeof *dst);
        return;
    }
    const float *src = x + ((size_t)id * d->H + ih) * d->W;
    /* the columns inside the volume, xb = pw .. : one transpose of the
     * (Cin, W) rows (read one channel at a time, the input's channel stride
     * often a power of two puts them all in a few cache sets) */
    const int lo = d->pw < WB ? d->pw : WB, n = WB - lo < d->W ? WB - lo : d->W;
    gemm_avx512_transpose(dst + (size_t)lo * cs, cs, src, (ptrdiff_t)chs, Cin, n);
    for (int xb = 0; xb < WB; xb++) { // the padding columns
        if (xb == lo) xb += n;
        if (xb >= WB) break;
        int iw = xb < lo ? 0 : d->W - 1;
        float *o = dst + (size_t)xb * cs;
        for (int c = 0; c < Cin; c++) o[c] = rep ? src[c * chs + iw] : 0;
    }
}

/* dweight += the weight gradient; 0, or -1 if the path does not apply. */
static int conv3d_wgrad_cl(float *dweight, float *work, const float *dout, const float *inp,
                           const conv3d_dims *d) {
    conv3d_wgrad_plan p;
    if (conv3d_wgrad_plan_make(&p, d) < 0) return -1;
    const int Cin = d->Cin, Cout = d->Cout, kvol = d->kd * d->kh * d->kw, K = Cin * kvol;
    const int P = d->OD * d->OH * d->OW, OW = d->OW, HB = p.HB, WB = p.WB, cs = p.cs, RB = p.DB;
    const int nsd = (d->OD + p.planes - 1) / p.planes, nsh = (d->OH + p.rows - 1) / p.rows;
    const int nslab = d->N * nsd * nsh, G = (Cin + GEMM_NR - 1) / GEMM_NR;
    const int npanel = (Cout + GEMM_MR - 1) / GEMM_MR, nitem = kvol * G * npanel;
    const size_t in_n = (size_t)Cin * d->D * d->H * d->W, out_n = (size_t)Cout * P;
    const size_t PL = (size_t)HB * WB * cs; /* floats of one padded plane */
    float *buf = cf_align(work), *ap = cf_align(buf + p.buf), *acc = cf_align(ap + p.ap);
    int *base = (int *)cf_align(acc + p.acc); /* (kd, q): voxel v's row at tap (a,0,0) */
    memset(buf + RB * PL, 0, CW_SLACK * sizeof *buf);
#pragma omp parallel num_threads(d->threads)
    {
        int zhi = 0; /* the ring holds the current sample's padded planes below zhi */
        for (int s = 0; s < nslab; s++) {
            const int n = s / (nsd * nsh), od0 = s / nsh % nsd * p.planes, oh0 = s % nsh * p.rows;
            const int np = d->OD - od0 < p.planes ? d->OD - od0 : p.planes;
            const int nr = d->OH - oh0 < p.rows ? d->OH - oh0 : p.rows, q = np * nr * OW;
            // padded planes this slab reads: [z0, z1); the ring slot of plane z is z % RB
            const int z0 = od0 * d->sd, z1 = z0 + (np - 1) * d->sd + (d->kd - 1) * d->dd + 1;
            if (s % (nsd * nsh) == 0) zhi = z0; /* a new sample */
            const int f0 = zhi > z0 ? zhi : z0; /* planes to copy: [f0, z1) */
            // the slab's voxels are consecutive in dy: planes od0.., rows oh0.. (all rows if np > 1)
            const float *dys = dout + n * out_n + ((size_t)od0 * d->OH + oh0) * OW;
#pragma omp for schedule(static) nowait
            for (int zy = 0; zy < (z1 - f0) * HB; zy++) { // rows y of new planes z
                int z = f0 + zy / HB, y = zy % HB;
                cw_fill_row(buf + (size_t)(z % RB) * PL + (size_t)y * WB * cs, inp + n * in_n, d, WB,
                            cs, z - d->pd, y - d->ph);
            }
            if (z1 > zhi) zhi = z1;
#pragma omp for schedule(static) nowait
            for (int i = 0; i < npanel; i++) { // dy (Cout, q) into 8-channel panels (q, 8)
                int mr = Cout - i * GEMM_MR < GEMM_MR ? Cout - i * GEMM_MR : GEMM_MR;
                float *pa = ap + (size_t)i * q * GEMM_MR;
                gemm_avx512_transpose(pa, GEMM_MR, dys + (size_t)i * GEMM_MR * P, P, mr, q);
                for (int v = 0; mr < GEMM_MR && v < q; v++) // a last panel of fewer channels
                    memset(pa + (size_t)v * GEMM_MR + mr, 0, (GEMM_MR - mr) * sizeof *pa);
            }
#pragma omp for schedule(static)
            for (int ar = 0; ar < d->kd * np * nr; ar++) { // offset tables, one per tap depth a
                int a = ar / (np * nr), row = ar % (np * nr);
                int z = z0 + row / nr * d->sd + a * d->dd, y = (oh0 + row % nr) * d->sh;
                int *t = base + (size_t)a * q + (size_t)row * OW;
                size_t r0 = (size_t)(z % RB) * PL + (size_t)y * WB * cs;
                for (int ow = 0; ow < OW; ow++) t[ow] = (int)(r0 + (size_t)ow * d->sw * cs);
            }
#pragma omp for schedule(static)
            for (int it = 0; it < nitem; it++) {
                int o = it / (G * npanel), g = it / npanel % G, i = it % npanel;
                int a = o / (d->kh * d->kw), b = o / d->kw % d->kh, c = o % d->kw;
                size_t tap = ((size_t)b * d->dh * WB + (size_t)c * d->dw) * cs;
                int mr = Cout - i * GEMM_MR < GEMM_MR ? Cout - i * GEMM_MR : GEMM_MR;
                int nc = Cin - g * GEMM_NR < GEMM_NR ? Cin - g * GEMM_NR : GEMM_NR;
                // acc[8 co, tap o, 32 ci] (+)= dy panel (8, q) . x at tap o (q, 32 ci)
                gemm_avx512_rows_tile(q, ap + (size_t)i * q * GEMM_MR, buf + tap + (size_t)g * GEMM_NR,
                                      base + (size_t)a * q,
                                      acc + ((size_t)i * GEMM_MR * kvol + o) * Cin + (size_t)g * GEMM_NR,
                                      (ptrdiff_t)kvol * Cin, mr, nc, s ? 1.0f : 0.0f);
            }
        }
    }
    // dW (Cout, Cin, kvol) += acc (Cout, kvol, Cin)
#pragma omp parallel for schedule(static) num_threads(d->threads)
    for (int co = 0; co < Cout; co++)
        for (int o = 0; o < kvol; o++)
            for (int ci = 0; ci < Cin; ci++)
                dweight[(size_t)co * K + (size_t)ci * kvol + o] += acc[((size_t)co * kvol + o) * Cin + ci];
    return 0;
}
