/* conv3d's implicit-GEMM forward (float, AVX-512), included once by
 * conv3d.c after conv3d_fast.h; conv3d_fast_forward tries it first.
 *
 * The GEMM y (Cout, voxels) = W (Cout, K) . col (K, voxels) without the
 * column matrix: for one output row (od, oh), row k = (ci,kd,kh,kw) of
 * col is a run of one padded input row, so the micro-kernel reads B in
 * place through a table of row offsets (gemm_avx512_rows_tile). Per job
 * (a sample, an output plane od and R consecutive output rows oh) a thread
 * copies the input rows that job reads, Cin*kd*((R-1)*sh+kh) of them, each
 * padded along W (zeros or the edge voxel) into a buffer that stays in L2;
 * rows above/below the volume are zero rows or the clamped edge row. A
 * stride sw along W is handled by storing each padded row as sw phases
 * (phase p holds the padded positions p, p+sw, ...), so that tap kw of
 * consecutive outputs is again a contiguous run: phase kw%sw from kw/sw.
 *
 * Against vol2col + packing this copies each input row (R-1+kh)/R*kd
 * times per job instead of writing kvol column values per output voxel
 * twice: at the VQ-GAN's 3x3x3 convs it removed about half of the
 * forward's time (bench/RESULTS.md). Dilation 1 only; rows narrower than
 * CI_MIN_OW or a buffer over CI_BUF floats for a single row go back to
 * the packed path. Cout < GEMM_MR runs a one-row kernel per channel. */

#define CI_BUF (128 * 1024) /* floats of one thread's padded rows (512 KiB, in L2) */
#define CI_MIN_OW 32        /* narrower output rows: the packed path. A micro-kernel
                             * tile is 32 outputs of one row: rows of 16 left half of
                             * every tile empty (the UNet's 16-wide plane ran at 46% of
                             * sgemm here against 80% packed) */
#define CI_SLACK 128        /* floats after the rows: a tile reads past a row's end */
#define CI_KC 256           /* values of k per tile call (A block 32 KiB for 32 channels) */

typedef struct {
    int R, nrw;          /* output rows per job, input rows per (ci, kd) */
    int wq, rowlen;      /* floats per phase, per padded row */
    size_t buf;          /* floats of one thread's buffer, slack included */
    size_t ap, offs;     /* floats: packed weights, offset table (ints) */
} conv3d_implicit_plan;

/* Input rows per (ci, kd) that R output rows read. */
static int ci_nrw(const conv3d_dims *d, int R) { return (R - 1) * d->sh + d->kh; }

/* 0 and the plan, or -1 when the implicit path does not apply. */
static int conv3d_implicit_plan_make(conv3d_implicit_plan *p, const conv3d_dims *d) {
    if (conv3d_is_pointwise(d) || d->dd != 1 || d->dh != 1 || d->dw != 1 || d->OW < CI_MIN_OW)
        return -1;
    const char *env = getenv("LSDM_CONV_IMPLICIT"); /* 0: off, to compare the two paths */
    if (env && strcmp(env, "0") == 0) return -1;
    const int K = d->Cin * d->kd * d->kh * d->kw, wp = d->W + 2 * d->pw;
    p->wq = (wp + d->sw - 1) / d->sw;
    p->rowlen = (d->sw * p->wq + 15) / 16 * 16;
    const size_t per_row = (size_t)d->Cin * d->kd * p->rowlen;
    if (per_row * ci_nrw(d, 1) > CI_BUF) return -1;
    /* as many output rows as fit, but enough jobs (8 a thread) for the
     * dynamic schedule to even out threads that the machine slows down */
    long jobs_1 = (long)d->N * d->OD * d->OH, want = 8L * d->threads;
    int R = 1;
    while (R < d->OH && per_row * ci_nrw(d, R + 1) <= CI_BUF &&
           jobs_1 / (R + 1) >= want)
        R++;
    p->R = R;
    p->nrw = ci_nrw(d, R);
    p->buf = per_row * p->nrw + CI_SLACK + CF_ALIGN;
    p->ap = gemm_pack_a_size(d->Cout, K) + CF_ALIGN;
    p->offs = (size_t)K + CF_ALIGN;
    return 0;
}

static size_t conv3d_implicit_workspace(const conv3d_dims *d) {
    conv3d_implicit_plan p;
    if (conv3d_implicit_plan_make(&p, d) < 0) return 0;
    return p.ap + p.offs + d->threads * p.buf;
}

/* One padded input row into its sw phases: padded position x (input
 * column x - pw) goes to dst[(x % sw) * wq + x / sw]. src NULL: a row
 * outside the volume with zero padding. */
static void ci_fill_row(float *dst, const float *src, const conv3d_dims *d, int wq) {
    const int W = d->W, pw = d->pw, sw = d->sw, rep = d->pad_mode == CONV3D_PAD_REPLICATE;
    if (!src) {
        memset(dst, 0, (size_t)sw * wq * sizeof *dst);
        return;
    }
    const float left = rep ? src[0] : 0, right = rep ? src[W - 1] : 0;
    for (int ph = 0; ph < sw; ph++) {
        float *o = dst + (size_t)ph * wq;
        int i = 0; // o[i] is input column i*sw + ph - pw
        for (; i < wq && i * sw + ph - pw < 0; i++) o[i] = left;
        int iw0 = i * sw + ph - pw, n = iw0 < W ? (W - 1 - iw0) / sw + 1 : 0;
        if (n > wq - i) n = wq - i;
        if (sw == 1) gemm_avx512_copy(o + i, src + iw0, n);
        else if (sw == 2) gemm_avx512_gather_s2(o + i, src + iw0, n);
        else for (int t = 0; t < n; t++) o[i + t] = src[iw0 + t * sw];
        for (i += n; i < wq; i++) o[i] = right; // (positions past the padded row: never used)
    }
}

/* The rows job (od, oh0..oh0+R-1) of sample x (Cin,D,H,W) reads: row
 * (ci, kd, r) of buf, r < nrw(R), is input row (od*sd-pd+kd, oh0*sh-ph+r). */
static void ci_fill(float *buf, const float *x, const conv3d_dims *d, const conv3d_implicit_plan *p,
                    int od, int oh0, int R) {
    const int rep = d->pad_mode == CONV3D_PAD_REPLICATE, nrw = ci_nrw(d, R);
    for (int ci = 0; ci < d->Cin; ci++) {
        const float *chan = x + (size_t)ci * d->D * d->H * d->W;
        for (int kd = 0; kd < d->kd; kd++) {
            int id = od * d->sd - d->pd + kd;
            float *dst = buf + ((size_t)ci * d->kd + kd) * p->nrw * p->rowlen;
            for (int r = 0; r < nrw; r++, dst += p->rowlen) {
                int ih = oh0 * d->sh - d->ph + r, jd = id;
                if (rep) {
                    jd = jd < 0 ? 0 : jd >= d->D ? d->D - 1 : jd;
                    ih = ih < 0 ? 0 : ih >= d->H ? d->H - 1 : ih;
                } else if (jd < 0 || jd >= d->D || ih < 0 || ih >= d->H) {
                    ci_fill_row(dst, NULL, d, p->wq);
                    continue;
                }
                ci_fill_row(dst, chan + ((size_t)jd * d->H + ih) * d->W, d, p->wq);
            }
        }
    }
}

/* out = beta*out + conv(inp) (+ bias); 0, or -1 if the path does not apply. */
static int conv3d_implicit_forward(float *out, float *work, const float *inp, const float *weight,
                                   const float *bias, const conv3d_dims *d, float beta) {
    conv3d_implicit_plan p;
    if (conv3d_implicit_plan_make(&p, d) < 0) return -1;
    const int K = d->Cin * d->kd * d->kh * d->kw, P = d->OD * d->OH * d->OW, OW = d->OW;
    const int nrb = (d->OH + p.R - 1) / p.R, njob = d->N * d->OD * nrb;
    /* one channel at a time when there are fewer than a tile's 8 */
    const int npanel = (d->Cout + GEMM_MR - 1) / GEMM_MR, one_row = d->Cout < GEMM_MR;
    const size_t in_n = (size_t)d->Cin * d->D * d->H * d->W, out_n = (size_t)d->Cout * P;
    float *ap = cf_align(work);
    int *off = (int *)cf_align(work + p.ap);
#pragma omp parallel num_threads(d->threads)
    {
        float *buf = cf_align(work + p.ap + p.offs + omp_get_thread_num() * p.buf);
        /* the slack past the last row: read by tiles, never used; keep it defined */
        memset(buf + (size_t)d->Cin * d->kd * p.nrw * p.rowlen, 0, CI_SLACK * sizeof *buf);
#pragma omp single
        for (int k = 0; k < K; k++) { // row k = (ci,kd,kh,kw) of col: where its run starts
            int ci = k / (d->kd * d->kh * d->kw), t = k % (d->kd * d->kh * d->kw);
            int kd = t / (d->kh * d->kw), kh = t / d->kw % d->kh, kw = t % d->kw;
            off[k] = (int)((((size_t)ci * d->kd + kd) * p.nrw + kh) * p.rowlen +
                           (size_t)(kw % d->sw) * p.wq + kw / d->sw);
        }
#pragma omp for schedule(static)
        for (int i = 0; i < npanel * !one_row; i++) { // W (Cout, K) into 8-row panels, once
            int mr = d->Cout - i * GEMM_MR < GEMM_MR ? d->Cout - i * GEMM_MR : GEMM_MR;
            gemm_pack_a(ap + (size_t)i * K * GEMM_MR, weight + (size_t)i * GEMM_MR * K, mr, K, K, 1);
        }
        /* dynamic: on a shared machine one thread may get less of its core;
         * the other then takes more jobs instead of waiting at the end */
#pragma omp for schedule(dynamic)
        for (int job = 0; job < njob; job++) {
            int n = job / (d->OD * nrb), od = job / nrb % d->OD, oh0 = job % nrb * p.R;
            int R = d->OH - oh0 < p.R ? d->OH - oh0 : p.R;
            ci_fill(buf, inp + n * in_n, d, &p, od, oh0, R);
            float *y = out + n * out_n + ((size_t)od * d->OH + oh0) * OW;
            if (one_row) {
                for (int r = 0; r < R; r++) // the row's input runs stay in L1 across channels
                    for (int co = 0; co < d->Cout; co++) // y[co, row r] = beta*y + W[co, :] . col
                        gemm_avx512_rows_1(K, weight + (size_t)co * K,
                                           buf + (size_t)r * d->sh * p.rowlen, off,
                                           y + (size_t)co * P + (size_t)r * OW, OW, beta);
            }
            for (int kb = 0; kb < K && !one_row; kb += CI_KC) {
                int kc = K - kb < CI_KC ? K - kb : CI_KC;
                for (int r = 0; r < R; r++) {
                    const float *b = buf + (size_t)r * d->sh * p.rowlen;
                    for (int j = 0; j < OW; j += GEMM_NR) {
                        int nr = OW - j < GEMM_NR ? OW - j : GEMM_NR;
                        // y[:, row r, j:j+nr] (+)= W[:, kb:kb+kc] . col[kb:kb+kc, those voxels]
                        for (int i = 0; i < npanel; i++) {
                            int mr = d->Cout - i * GEMM_MR < GEMM_MR ? d->Cout - i * GEMM_MR : GEMM_MR;
                            gemm_avx512_rows_tile(kc, ap + (size_t)i * K * GEMM_MR + (size_t)kb * GEMM_MR,
                                                  b + j, off + kb,
                                                  y + (size_t)i * GEMM_MR * P + (size_t)r * OW + j, P,
                                                  mr, nr, kb ? 1.0f : beta);
                        }
                    }
                }
            }
            if (bias)
                conv3d_add_bias(out + n * out_n, bias, d->Cout, P, ((size_t)od * d->OH + oh0) * OW,
                                (size_t)R * OW);
        }
    }
    return 0;
}
