/* conv3d by Winograd F(2,3) along W (float, AVX-512), included once by
 * conv3d_fast.h; tried first by the forward, the data gradient (a forward
 * of dy) and, with many channels, the weight gradient (end of file).
 *
 * Applies to stride 1, dilation 1, kw 3 with one column of padding (zeros,
 * or the edge: replicate padding goes through the transform unchanged),
 * an even W and planes whose tiles (below) form runs of 32: the UNet's
 * (1,3,3) and the VQ-GAN's 3x3x3 convs. Two outputs along W come from four inputs d0..d3
 * (input columns 2t-1 .. 2t+2):
 *
 *   y(2t) = m0 + m1 + m2,   y(2t+1) = m1 - m2 - m3,   m_p = sum U_p V_p,
 *   U = (g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2)  from the 3 taps g along W,
 *   V = (d0-d2, d1+d2, d2-d1, d1-d3),
 *
 * the sum running over (ci, kd, kh): four GEMMs (Cout, tiles) = U_p (Cout,
 * Cin*kd*kh) . V_p, 4 multiply-adds per 2 outputs instead of 6. V_p is kept
 * as rows of T = W/2 tiles of the zero-padded input planes, so that the B
 * row of (ci, kd, kh) for 32 consecutive tiles of one output plane is one
 * contiguous run spanning 32/T rows (gemm_avx512_rows_tile reads it in
 * place, as the implicit GEMM does). The data gradient of such a conv is
 * the forward of dy with the weights transposed and flipped (padding
 * k-1-p), so it runs here too where the padding is zeros. Against the direct sum the rounding differs
 * by the transforms' few ulps; tests/c/test_conv3d.c holds both passes to
 * the double reference. Tried before and dropped: F(2x2,3x3) over H and W,
 * whose 2D transforms cost more than they saved (bench/RESULTS.md).
 *
 * Per sample the threads transform the input (a barrier), then take jobs
 * of CW3_RUNS runs; within a job the blocks of k are outermost so that a
 * run's block of V stays in L1 across the output channels' panels (panels
 * outermost read V again for every panel: 2x slower at 512 channels). */

#define CW3_RUNS 4                /* runs of 32 tiles per job: they share the weight panels' reads */
#define CW3_MAX (32L << 20)       /* floats of the transformed weights and input, at most */
#define CW3_MIN_CC 32768          /* Cin*Cout*kd*kh below: the weight gradient stays direct */
#define CW3_MIN_K 64              /* Cin*kd*kh below: the transforms would outweigh the GEMMs (not measured) */

typedef struct {
    int T, Dp, Hp, K2;  /* tiles per row, padded planes and rows, rows of U_p (Cin*kd*kh) */
    int runs;           /* runs of 32 tiles per sample */
    size_t up, v, offs; /* floats: one U_p packed, one V_p, the offset table (ints) */
} conv3d_wino_plan;

/* 0 and the plan, or -1 when this path does not apply. */
static int conv3d_wino_plan_make(conv3d_wino_plan *p, const conv3d_dims *d) {
    if (d->sd != 1 || d->sh != 1 || d->sw != 1 || d->dd != 1 || d->dh != 1 || d->dw != 1 ||
        d->kw != 3 || d->pw != 1 || d->W % 2 || d->Cout < GEMM_MR)
        return -1;
    const char *env = getenv("LSDM_CONV_WINO"); /* 0: off, to compare the paths */
    if (env && strcmp(env, "0") == 0) return -1;
    p->T = d->W / 2;
    const long plane = (long)d->OH * p->T; /* tiles of an output plane */
    if (!(p->T % 32 == 0 || (32 % p->T == 0 && plane % 32 == 0))) return -1;
    p->Dp = d->D + 2 * d->pd, p->Hp = d->H + 2 * d->ph, p->K2 = d->Cin * d->kd * d->kh;
    if (p->K2 < CW3_MIN_K) return -1;
    p->runs = (int)(d->OD * plane / 32);
    p->up = gemm_pack_a_size(d->Cout, p->K2) + CF_ALIGN;
    p->v = (size_t)d->Cin * p->Dp * p->Hp * p->T + CF_ALIGN;
    p->offs = (size_t)p->K2 + CF_ALIGN;
    if (4.0 * ((double)p->up + p->v) > (double)CW3_MAX) return -1;
    return 0;
}

/* The dims of the forward that gives the data gradient of d (dy in, dx
 * out, padding k-1-p); 0, or -1 where that is not a conv of this path. */
static int conv3d_wino_dgrad_dims(conv3d_dims *t, const conv3d_dims *d) {
    if (d->sd != 1 || d->sh != 1 || d->sw != 1 || d->dd != 1 || d->dh != 1 || d->dw != 1 ||
        d->pd > d->kd - 1 || d->ph > d->kh - 1 || d->pw > d->kw - 1 || d->pad_mode != CONV3D_PAD_ZERO)
        return -1;
    *t = (conv3d_dims){.N = d->N, .Cin = d->Cout, .D = d->OD, .H = d->OH, .W = d->OW, .Cout = d->Cin,
                       .kd = d->kd, .kh = d->kh, .kw = d->kw, .sd = 1, .sh = 1, .sw = 1,
                       .pd = d->kd - 1 - d->pd, .ph = d->kh - 1 - d->ph, .pw = d->kw - 1 - d->pw,
                       .dd = 1, .dh = 1, .dw = 1, .pad_mode = CONV3D_PAD_ZERO, .threads = d->threads,
                       .OD = d->D, .OH = d->H, .OW = d->W};
    conv3d_wino_plan p;
    return conv3d_wino_plan_make(&p, t);
}

/* Floats of one thread's product tiles: (panel, q, run) 8x32 each. */
static size_t cw3_tmp(const conv3d_dims *d) {
    return (size_t)(d->Cout + GEMM_MR - 1) / GEMM_MR * 4 * CW3_RUNS * GEMM_MR * 32 + CF_ALIGN;
}

static size_t conv3d_wino_workspace(const conv3d_dims *d) {
    conv3d_wino_plan p;
    if (conv3d_wino_plan_make(&p, d) < 0) return 0;
    return 4 * (p.up + p.v) + p.offs + (size_t)d->threads * cw3_tmp(d);
}

/* Up[p] (packed 8-row panels of U_p, (Cout, K2)) from the weights: w[co,
 * ci, a, b, c] with (wco, wci) its strides, or with flip the transposed
 * and flipped weights of the data gradient (w[ci, co, kd-1-a, kh-1-b,
 * 2-c]: there Cout is the conv's Cin). */
static void cw3_weights(float *const up[4], const float *w, const conv3d_dims *d, int flip) {
    const int K2 = d->Cin * d->kd * d->kh, kv = d->kd * d->kh, npanel = (d->Cout + GEMM_MR - 1) / GEMM_MR;
    /* panel by panel, k by k: the writes run through the packed layout in
     * order (channel-major loops wrote each line 8 times, far apart) */
#pragma omp for schedule(static)
    for (int i = 0; i < npanel; i++)
        for (int k = 0; k < K2; k++) {
            int ci = k / kv, a = k / d->kh % d->kd, b = k % d->kh;
            size_t at = (size_t)i * K2 * GEMM_MR + (size_t)k * GEMM_MR;
            for (int m = 0; m < GEMM_MR; m++) {
                int co = i * GEMM_MR + m;
                float g0 = 0, g1 = 0, g2 = 0; /* past Cout: the panel's zero rows */
                if (co < d->Cout && !flip) {
                    const float *g = w + (((size_t)co * d->Cin + ci) * kv + (size_t)a * d->kh + b) * 3;
                    g0 = g[0], g1 = g[1], g2 = g[2];
                } else if (co < d->Cout) {
                    const float *g = w + (((size_t)ci * d->Cout + co) * kv + (size_t)(d->kd - 1 - a) * d->kh +
                                          (d->kh - 1 - b)) * 3;
                    g0 = g[2], g1 = g[1], g2 = g[0];
                }
                up[0][at + m] = g0, up[1][at + m] = 0.5f * (g0 + g1 + g2);
                up[2][at + m] = 0.5f * (g0 - g1 + g2), up[3][at + m] = g2;
            }
        }
}

/* The four transformed rows o[q] (T tiles) of an input row s of 2T
 * columns, zero past both ends or (rep) the edge value. */
static void cw3_row(float *const o[4], const float *s, int T, int rep) {
    const float left = rep ? s[0] : 0, right = rep ? s[2 * T - 1] : 0;
    for (int t = 0; t < T; t++) {
        float d0 = t ? s[2 * t - 1] : left, d1 = s[2 * t], d2 = s[2 * t + 1], d3 = t + 1 < T ? s[2 * t + 2] : right;
        o[0][t] = d0 - d2, o[1][t] = d1 + d2, o[2][t] = d2 - d1, o[3][t] = d1 - d3;
    }
}

/* V_p of sample x (Cin, D, H, W): row (ci, zp, yp) holds the T tiles of
 * input row (zp - pd, yp - ph); outside the volume zeros or the edge row. */
static void cw3_input(float *const v[4], const float *x, const conv3d_dims *d, const conv3d_wino_plan *p) {
    const int T = p->T, W = d->W, nrow = d->Cin * p->Dp * p->Hp, rep = d->pad_mode == CONV3D_PAD_REPLICATE;
#pragma omp for schedule(static)
    for (int r = 0; r < nrow; r++) {
        int ci = r / (p->Dp * p->Hp), id = r / p->Hp % p->Dp - d->pd, ih = r % p->Hp - d->ph;
        float *o[4] = {v[0] + (size_t)r * T, v[1] + (size_t)r * T, v[2] + (size_t)r * T, v[3] + (size_t)r * T};
        if (rep) {
            id = id < 0 ? 0 : id >= d->D ? d->D - 1 : id;
            ih = ih < 0 ? 0 : ih >= d->H ? d->H - 1 : ih;
        } else if (id < 0 || id >= d->D || ih < 0 || ih >= d->H) {
            for (int q = 0; q < 4; q++) memset(o[q], 0, (size_t)T * sizeof *o[q]);
            continue;
        }
        cw3_row(o, x + (((size_t)ci * d->D + id) * d->H + ih) * W, T, rep);
    }
}

/* out = beta*out + conv(inp) (+ bias), the weights transposed and flipped
 * with flip (then `weight` is the conv's whose data gradient this is);
 * 0, or -1 if the path does not apply. */
static int conv3d_wino_forward(float *out, float *work, const float *inp, const float *weight,
                               const float *bias, const conv3d_dims *d, float beta, int flip) {
    conv3d_wino_plan p;
    if (conv3d_wino_plan_make(&p, d) < 0) return -1;
    const int T = p.T, K2 = p.K2, OW = d->OW, npanel = (d->Cout + GEMM_MR - 1) / GEMM_MR;
    const int njob = (p.runs + CW3_RUNS - 1) / CW3_RUNS;
    const size_t in_n = (size_t)d->Cin * d->D * d->H * d->W, out_n = (size_t)d->Cout * d->OD * d->OH * OW;
    float *up[4], *v[4];
    for (int q = 0; q < 4; q++) up[q] = cf_align(work + q * p.up), v[q] = cf_align(work + 4 * p.up + q * p.v);
    int *off = (int *)cf_align(work + 4 * (p.up + p.v));
    float *tmp0 = cf_align(work + 4 * (p.up + p.v) + p.offs);
#pragma omp parallel num_threads(d->threads)
    {
        float *tmp = tmp0 + (size_t)omp_get_thread_num() * cw3_tmp(d);
        cw3_weights(up, weight, d, flip);
#pragma omp for schedule(static)
        for (int k = 0; k < K2; k++) { // row k = (ci, a, b) of V_p: where its runs start
            int ci = k / (d->kd * d->kh), a = k / d->kh % d->kd, b = k % d->kh;
            off[k] = (int)((((size_t)ci * p.Dp + a) * p.Hp + b) * T);
        }
        for (int n = 0; n < d->N; n++) {
            cw3_input(v, inp + n * in_n, d, &p); /* ends in a barrier: V is ready */
#pragma omp for schedule(dynamic)
            for (int job = 0; job < njob; job++) {
                const int r0 = job * CW3_RUNS, nr = p.runs - r0 < CW3_RUNS ? p.runs - r0 : CW3_RUNS;
                int vb[CW3_RUNS];
                size_t yb[CW3_RUNS];
                for (int r = 0; r < nr; r++) { // run r0+r: 32 tiles of plane od from tile u0
                    long u = 32L * (r0 + r), plane = (long)d->OH * T;
                    int od = (int)(u / plane), u0 = (int)(u % plane), oh0 = u0 / T, t0 = u0 % T;
                    vb[r] = (int)(((size_t)od * p.Hp + oh0) * T + t0);
                    yb[r] = ((size_t)od * d->OH + oh0) * OW + 2 * (size_t)t0;
                }
                for (int kb = 0; kb < K2; kb += CI_KC) {
                    const int kc = K2 - kb < CI_KC ? K2 - kb : CI_KC;
                    for (int q = 0; q < 4; q++)
                        for (int r = 0; r < nr; r++)
                            for (int i = 0; i < npanel; i++) // m_q (8 co, 32 tiles) (+)= U_q . V_q run
                                gemm_avx512_rows_tile(kc, up[q] + (size_t)i * K2 * GEMM_MR + (size_t)kb * GEMM_MR,
                                                      v[q] + vb[r], off + kb,
                                                      tmp + (((size_t)i * 4 + q) * CW3_RUNS + r) * GEMM_MR * 32, 32,
                                                      GEMM_MR, 32, kb ? 1.0f : 0.0f);
                }
                for (int i = 0; i < npanel; i++)
                    for (int r = 0; r < nr; r++)
                        for (int m = 0; m < GEMM_MR && i * GEMM_MR + m < d->Cout; m++) {
                            const int co = i * GEMM_MR + m; // 32 tiles of channel co -> 64 outputs
                            gemm_avx512_wino_out(out + n * out_n + (size_t)co * d->OD * d->OH * OW + yb[r],
                                                 tmp + ((size_t)i * 4 * CW3_RUNS + r) * GEMM_MR * 32 + m * 32,
                                                 (size_t)CW3_RUNS * GEMM_MR * 32, bias ? bias[co] : 0.0f, beta);
                        }
            }
        }
    }
    return 0;
}

/* The weight gradient through the same transform. With per tile
 *   dm0 = dy(2t), dm1 = dy(2t) + dy(2t+1), dm2 = dy(2t) - dy(2t+1), dm3 = -dy(2t+1)
 * and V_q of the unpadded input, dU_q is the weight gradient of a (kd,kh,1)
 * conv taking V_q (Cin, D, H, T) to dm_q (Cout, OD, OH, T): four of
 * conv3d_wgrad_cl's, two thirds of the direct work; then
 *   dg0 += dU0 + (dU1+dU2)/2,  dg1 += (dU1-dU2)/2,  dg2 += (dU1+dU2)/2 + dU3. */
static int cw3_sub_dims(conv3d_dims *s, const conv3d_dims *d) {
    *s = (conv3d_dims){.N = d->N, .Cin = d->Cin, .D = d->D, .H = d->H, .W = d->W / 2, .Cout = d->Cout,
                       .kd = d->kd, .kh = d->kh, .kw = 1, .pd = d->pd, .ph = d->ph, .pw = 0,
                       .pad_mode = d->pad_mode, .threads = d->threads};
    conv3d_wino_plan p;
    conv3d_wgrad_plan w;
    /* the transforms of x and dy against the work saved, measured against
     * the direct path: (1,3,3) at 64 x 64 channels slower (16.8 against 15.6
     * ms), at 128 x 128 faster (14.0 against 16.2); 3x3x3 at 64 x 64 faster
     * (21.0-22.4 against 24.6-25.4) */
    if ((long)d->Cin * d->Cout * d->kd * d->kh < CW3_MIN_CC || conv3d_wino_plan_make(&p, d) < 0 ||
        conv3d_dims_init(s) < 0 || conv3d_wgrad_plan_make(&w, s) < 0)
        return -1;
    /* V_q and dm_q: twice the input and twice dy */
    double vm = 4.0 * ((double)s->N * d->Cin * d->D * d->H * s->W + (double)s->N * d->Cout * d->OD * d->OH * s->W);
    return vm > 2.0 * CW3_MAX ? -1 : 0;
}

/* Floats of V_q, dm_q (four each), dU_q (four) and the sub-problems' workspace. */
static size_t conv3d_wino_wgrad_workspace(const conv3d_dims *d) {
    conv3d_dims s;
    if (cw3_sub_dims(&s, d) < 0) return 0;
    size_t nv = (size_t)d->N * d->Cin * d->D * d->H * s.W, nm = (size_t)d->N * d->Cout * d->OD * d->OH * s.W;
    size_t nu = (size_t)d->Cout * d->Cin * d->kd * d->kh;
    return 4 * (nv + nm + nu + 3 * CF_ALIGN) + conv3d_wgrad_workspace(&s) + CF_ALIGN;
}

/* dweight += the weight gradient; 0, or -1 if the path does not apply. */
static int conv3d_wino_wgrad(float *dweight, float *work, const float *dout, const float *inp,
                             const conv3d_dims *d) {
    conv3d_dims s;
    if (cw3_sub_dims(&s, d) < 0) return -1;
    const int T = s.W, kv = d->kd * d->kh;
    const size_t nv = (size_t)d->N * d->Cin * d->D * d->H * T, nm = (size_t)d->N * d->Cout * d->OD * d->OH * T;
    const size_t nu = (size_t)d->Cout * d->Cin * kv;
    float *v[4], *m[4], *u[4], *p = work;
    for (int q = 0; q < 4; q++) v[q] = cf_align(p), p = v[q] + nv;
    for (int q = 0; q < 4; q++) m[q] = cf_align(p), p = m[q] + nm;
    for (int q = 0; q < 4; q++) u[q] = cf_align(p), p = u[q] + nu;
    float *sub = cf_align(p);
    const long vrows = (long)d->N * d->Cin * d->D * d->H, mrows = (long)d->N * d->Cout * d->OD * d->OH;
#pragma omp parallel num_threads(d->threads)
    {
#pragma omp for schedule(static) nowait
        for (long r = 0; r < vrows; r++) {
            float *o[4] = {v[0] + r * T, v[1] + r * T, v[2] + r * T, v[3] + r * T};
            cw3_row(o, inp + r * d->W, T, d->pad_mode == CONV3D_PAD_REPLICATE);
        }
#pragma omp for schedule(static) nowait
        for (long r = 0; r < mrows; r++) {
            const float *g = dout + r * d->OW;
            float *o0 = m[0] + r * T, *o1 = m[1] + r * T, *o2 = m[2] + r * T, *o3 = m[3] + r * T;
            for (int t = 0; t < T; t++) {
                float e = g[2 * t], od = g[2 * t + 1];
                o0[t] = e, o1[t] = e + od, o2[t] = e - od, o3[t] = -od;
            }
        }
#pragma omp for schedule(static)
        for (int q = 0; q < 4; q++) memset(u[q], 0, nu * sizeof *u[q]);
    }
    for (int q = 0; q < 4; q++)
        if (conv3d_wgrad_cl(u[q], sub, m[q], v[q], &s) < 0) return -1; /* cannot fail: planned above */
#pragma omp parallel for schedule(static) num_threads(d->threads)
    for (long i = 0; i < (long)nu; i++) {
        float *g = dweight + i * 3, h = 0.5f * (u[1][i] + u[2][i]);
        g[0] += u[0][i] + h;
        g[1] += 0.5f * (u[1][i] - u[2][i]);
        g[2] += h + u[3][i];
    }
    return 0;
}
