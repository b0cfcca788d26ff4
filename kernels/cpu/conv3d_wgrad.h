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
 * reads, each plane copied once per run of slabs (copying each slab's rows
 * instead cost 4-6 times as much: a 3x3x3 conv reads every plane for three
 * output planes; it was a quarter of the time at 32 channels).
 *
 * Threads share no buffer and never wait for each other: the slabs are cut
 * into at most CW_CHUNKS runs, each summed into its own copy of the
 * gradient by one thread with its own ring, panels and tables, and the
 * copies are added in order at the end (with more threads than runs, the
 * output channels are split too, each part copying the input again). A
 * first version shared the ring and met at a barrier per slab: on a machine
 * shared with another job every barrier waited for a descheduled thread,
 * and the weight gradient took 5-20 times as long. The runs do not depend
 * on the thread count and every value is summed in one order, so neither
 * do the bits. */

#define CW_VOX 512              /* output voxels per slab (about) */
#define CW_CHUNKS 16            /* runs of slabs, at most */
#define CW_MAX_ACC (2L << 20)   /* floats of the runs' copies of the gradient, at most */
#define CW_MAX_WORK (64L << 20) /* floats of the whole workspace, at most (256 MiB) */
#define CW_SLACK GEMM_NR        /* floats after it: a tile reads 32 channels whatever Cin */
#define CW_MIN_CIN 16           /* fewer input channels: most of each 32-wide tile unused */

typedef struct {
    int cs;            /* floats per voxel in the buffer: Cin, padded (see conv3d_wgrad_plan_make) */
    int planes, rows;  /* output planes per slab (> 1: whole planes), rows per plane */
    int q;             /* output voxels per slab, at most */
    int DB, HB, WB;    /* the ring: planes (those one slab reads), rows, columns of a padded plane */
    int nslab, nc, npg;  /* slabs (all samples), runs of slabs, groups of output channels */
    size_t buf, ap, per; /* floats: ring (slack included), dy panels, one thread's buffers */
    size_t acc;          /* floats of one run's tap-major gradient (Cout, kvol, Cin) */
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
    p->buf = (size_t)nbuf + CW_SLACK + CF_ALIGN;
    p->ap = gemm_pack_a_size(d->Cout, p->q) + CF_ALIGN;
    p->per = p->buf + p->ap + (size_t)d->kd * p->q + CF_ALIGN; /* + the offset tables (ints) */
    const size_t w = (size_t)d->Cout * d->Cin * d->kd * d->kh * d->kw;
    p->acc = (w + CF_ALIGN - 1) / CF_ALIGN * CF_ALIGN;
    p->nslab = d->N * ((d->OD + p->planes - 1) / p->planes) * ((d->OH + p->rows - 1) / p->rows);
    long nc = CW_MAX_ACC / (long)p->acc;
    nc = nc < 1 ? 1 : nc > CW_CHUNKS ? CW_CHUNKS : nc;
    p->nc = nc < p->nslab ? (int)nc : p->nslab;
    const int npanel = (d->Cout + GEMM_MR - 1) / GEMM_MR;
    p->npg = (2 * d->threads + p->nc - 1) / p->nc; /* two work units a thread */
    p->npg = p->npg < npanel ? p->npg : npanel;
    if ((double)d->threads * p->per + (double)p->nc * p->acc > (double)CW_MAX_WORK) return -1;
    return 0;
}

static size_t conv3d_wgrad_workspace(const conv3d_dims *d) {
    conv3d_wgrad_plan p;
    if (conv3d_wgrad_plan_make(&p, d) < 0) return 0;
    return (size_t)d->threads * p.per + (size_t)p.nc * p.acc + CF_ALIGN;
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
    const int G = (Cin + GEMM_NR - 1) / GEMM_NR, npanel = (Cout + GEMM_MR - 1) / GEMM_MR;
    const size_t in_n = (size_t)Cin * d->D * d->H * d->W, out_n = (size_t)Cout * P;
    const size_t PL = (size_t)HB * WB * cs; /* floats of one padded plane */
    float *accs = cf_align(work); /* the runs' gradients, then each thread's buffers */
#pragma omp parallel num_threads(d->threads)
    {
        float *buf = cf_align(accs + (size_t)p.nc * p.acc + (size_t)omp_get_thread_num() * p.per);
        float *ap = cf_align(buf + p.buf);
        int *base = (int *)cf_align(ap + p.ap); /* (kd, q): voxel v's row at tap (a,0,0) */
        memset(buf + RB * PL, 0, CW_SLACK * sizeof *buf);
        /* dynamic: a thread that gets less of its core takes fewer units */
#pragma omp for schedule(dynamic)
        for (int u = 0; u < p.nc * p.npg; u++) {
            const int c = u / p.npg, pg = u % p.npg;
            const int s0 = (int)((long)p.nslab * c / p.nc), s1 = (int)((long)p.nslab * (c + 1) / p.nc);
            const int i0 = npanel * pg / p.npg, i1 = npanel * (pg + 1) / p.npg;
            float *acc = accs + (size_t)c * p.acc;
            int zhi = 0, cur = -1; /* the ring holds sample cur's padded planes below zhi */
            for (int s = s0; s < s1; s++) {
                const int n = s / (nsd * nsh), od0 = s / nsh % nsd * p.planes, oh0 = s % nsh * p.rows;
                const int np = d->OD - od0 < p.planes ? d->OD - od0 : p.planes;
                const int nr = d->OH - oh0 < p.rows ? d->OH - oh0 : p.rows, q = np * nr * OW;
                // padded planes this slab reads: [z0, z1); the ring slot of plane z is z % RB
                const int z0 = od0 * d->sd, z1 = z0 + (np - 1) * d->sd + (d->kd - 1) * d->dd + 1;
                if (n != cur) cur = n, zhi = z0;
                for (int z = zhi > z0 ? zhi : z0; z < z1; z++)
                    for (int y = 0; y < HB; y++)
                        cw_fill_row(buf + (size_t)(z % RB) * PL + (size_t)y * WB * cs, inp + n * in_n, d,
                                    WB, cs, z - d->pd, y - d->ph);
                if (z1 > zhi) zhi = z1;
                // the slab's voxels are consecutive in dy: planes od0.., rows oh0.. (all rows if np > 1)
                const float *dys = dout + n * out_n + ((size_t)od0 * d->OH + oh0) * OW;
                for (int i = i0; i < i1; i++) { // dy (Cout, q) into 8-channel panels (q, 8)
                    int mr = Cout - i * GEMM_MR < GEMM_MR ? Cout - i * GEMM_MR : GEMM_MR;
                    float *pa = ap + (size_t)i * q * GEMM_MR;
                    gemm_avx512_transpose(pa, GEMM_MR, dys + (size_t)i * GEMM_MR * P, P, mr, q);
                    for (int v = 0; mr < GEMM_MR && v < q; v++) // a last panel of fewer channels
                        memset(pa + (size_t)v * GEMM_MR + mr, 0, (GEMM_MR - mr) * sizeof *pa);
                }
                for (int ar = 0; ar < d->kd * np * nr; ar++) { // offset tables, one per tap depth a
                    int a = ar / (np * nr), row = ar % (np * nr);
                    int z = z0 + row / nr * d->sd + a * d->dd, y = (oh0 + row % nr) * d->sh;
                    int *t = base + (size_t)a * q + (size_t)row * OW;
                    size_t r0 = (size_t)(z % RB) * PL + (size_t)y * WB * cs;
                    for (int ow = 0; ow < OW; ow++) t[ow] = (int)(r0 + (size_t)ow * d->sw * cs);
                }
                for (int o = 0; o < kvol; o++) {
                    int a = o / (d->kh * d->kw), b = o / d->kw % d->kh, cw = o % d->kw;
                    const float *bt = buf + ((size_t)b * d->dh * WB + (size_t)cw * d->dw) * cs;
                    for (int g = 0; g < G; g++)
                        for (int i = i0; i < i1; i++) {
                            int mr = Cout - i * GEMM_MR < GEMM_MR ? Cout - i * GEMM_MR : GEMM_MR;
                            int nc = Cin - g * GEMM_NR < GEMM_NR ? Cin - g * GEMM_NR : GEMM_NR;
                            // acc[8 co, tap o, 32 ci] (+)= dy panel (8, q) . x at tap o (q, 32 ci)
                            gemm_avx512_rows_tile(q, ap + (size_t)i * q * GEMM_MR, bt + (size_t)g * GEMM_NR,
                                                  base + (size_t)a * q,
                                                  acc + ((size_t)i * GEMM_MR * kvol + o) * Cin + (size_t)g * GEMM_NR,
                                                  (ptrdiff_t)kvol * Cin, mr, nc, s > s0 ? 1.0f : 0.0f);
                        }
                }
            }
        }
    }
    // dW (Cout, Cin, kvol) += the runs' acc (Cout, kvol, Cin), summed in run order
#pragma omp parallel for schedule(static) num_threads(d->threads)
    for (int co = 0; co < Cout; co++)
        for (int o = 0; o < kvol; o++)
            for (int ci = 0; ci < Cin; ci++) {
                size_t at = ((size_t)co * kvol + o) * Cin + ci;
                float v = accs[at];
                for (int c = 1; c < p.nc; c++) v += accs[(size_t)c * p.acc + at];
                dweight[(size_t)co * K + (size_t)ci * kvol + o] += v;
            }
    return 0;
}
