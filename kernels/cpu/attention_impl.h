/* Body of attention.c, included twice: (real=float, FN(x)=x,
 * GEMM=cblas_sgemm) and (real=double, FN(x)=x##_f64, GEMM=cblas_dgemm).
 * No include guard on purpose. */

/* One row of scores: row[j] (+= bias[j]) -> softmax, max subtracted
 * first like the reference (sim - amax). */
static void FN(attn_softmax_row)(real *row, const real *bias, int L) {
    if (bias)
        for (int j = 0; j < L; j++) row[j] += bias[j];
    real mx = row[0];
    for (int j = 1; j < L; j++) mx = row[j] > mx ? row[j] : mx;
    real sum = 0;
    for (int j = 0; j < L; j++) { row[j] = EXP(row[j] - mx); sum += row[j]; }
    real inv = 1 / sum;
    for (int j = 0; j < L; j++) row[j] *= inv;
}

/* Score gradient of one softmax row in place: dP -> P * (dP - <P, dP>). */
static void FN(attn_softmax_row_backward)(real *drow, const real *p, int L) {
    real dot = 0;
    for (int j = 0; j < L; j++) dot += p[j] * drow[j];
    for (int j = 0; j < L; j++) drow[j] = p[j] * (drow[j] - dot);
}

static real FN(attn_dot)(const real *restrict a, const real *restrict b, int n) {
    real s = 0;
    SIMD_SUM
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* The short-sequence path of one (batch, head): q,k,v,o (L,dh), p (L,L),
 * bias (L,L) or NULL. Restrict pointers and SIMD loops over dh (the
 * float build also vectorises its dot products); every per-element sum
 * keeps its order, so the double reference computes what it did before. */
static void FN(attn_small_forward)(real *restrict o, real *restrict p,
                                   const real *restrict q, const real *restrict k,
                                   const real *restrict v, const real *restrict bias,
                                   int L, int dh, real scale) {
    for (int i = 0; i < L; i++) {
        real *restrict row = p + (long)i * L, *restrict oi = o + (long)i * dh;
        for (int j = 0; j < L; j++)
            row[j] = scale * FN(attn_dot)(q + (long)i * dh, k + (long)j * dh, dh);
        FN(attn_softmax_row)(row, bias ? bias + (long)i * L : NULL, L);
        SIMD
        for (int d = 0; d < dh; d++) oi[d] = 0;
        for (int j = 0; j < L; j++) {
            const real pj = row[j], *restrict vj = v + (long)j * dh;
            SIMD
            for (int d = 0; d < dh; d++) oi[d] += pj * vj[d];
        }
    }
}

/* Its backward: ds (L,L) = the score gradient (kept for dbias). */
static void FN(attn_small_backward)(real *restrict dq, real *restrict dk, real *restrict dv,
                                    real *restrict ds, const real *restrict dout,
                                    const real *restrict q, const real *restrict k,
                                    const real *restrict v, const real *restrict p,
                                    int L, int dh, real scale) {
    for (int i = 0; i < L; i++) {
        const real *restrict pi = p + (long)i * L, *restrict g = dout + (long)i * dh;
        real *restrict dsi = ds + (long)i * L;
        for (int j = 0; j < L; j++) {
            dsi[j] = FN(attn_dot)(g, v + (long)j * dh, dh);
            real *restrict dvj = dv + (long)j * dh;
            const real pij = pi[j];
            SIMD
            for (int d = 0; d < dh; d++) dvj[d] += pij * g[d];
        }
        FN(attn_softmax_row_backward)(dsi, pi, L);
        const real *restrict qi = q + (long)i * dh;
        real *restrict dqi = dq + (long)i * dh;
        for (int j = 0; j < L; j++) {
            const real sij = scale * dsi[j], *restrict kj = k + (long)j * dh;
            real *restrict dkj = dk + (long)j * dh;
            SIMD
            for (int d = 0; d < dh; d++) {
                dqi[d] += sij * kj[d];
                dkj[d] += sij * qi[d];
            }
        }
    }
}

void FN(attention_forward)(real *out, real *att,
                           const real *q, const real *k, const real *v, const real *bias,
                           int B, int H, int L, int dh, real scale) {
    long BH = (long)B * H, LL = (long)L * L, Ld = (long)L * dh;
    if (L >= ATTN_GEMM_MIN_L) {
        #pragma omp parallel for /* (batch, head) slices are disjoint; BLAS is single-threaded */
        for (long bh = 0; bh < BH; bh++) // att = scale q k^T
            GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, dh, scale,
                 q + bh * Ld, dh, k + bh * Ld, dh, 0, att + bh * LL, L);
        #pragma omp parallel for
        for (long r = 0; r < BH * L; r++) {
            long bh = r / L, i = r % L;
            FN(attn_softmax_row)(att + r * L, bias ? bias + (bh % H) * LL + i * L : NULL, L);
        }
        #pragma omp parallel for /* (batch, head) slices are disjoint; BLAS is single-threaded */
        for (long bh = 0; bh < BH; bh++) // out = att v
            GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, dh, L, 1,
                 att + bh * LL, L, v + bh * Ld, dh, 0, out + bh * Ld, dh);
        return;
    }
    #pragma omp parallel for
    for (long bh = 0; bh < BH; bh++)
        FN(attn_small_forward)(out + bh * Ld, att + bh * LL, q + bh * Ld, k + bh * Ld, v + bh * Ld,
                               bias ? bias + (bh % H) * LL : NULL, L, dh, scale);
}

void FN(attention_backward)(real *dq, real *dk, real *dv, real *dbias, real *work,
                            const real *dout, const real *q, const real *k, const real *v,
                            const real *att, int B, int H, int L, int dh, real scale) {
    long BH = (long)B * H, LL = (long)L * L, Ld = (long)L * dh;
    if (L >= ATTN_GEMM_MIN_L) {
        #pragma omp parallel for /* (batch, head) slices are disjoint; BLAS is single-threaded */
        for (long bh = 0; bh < BH; bh++) {
            // work = dP = dout v^T; dv += att^T dout
            GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, dh, 1,
                 dout + bh * Ld, dh, v + bh * Ld, dh, 0, work + bh * LL, L);
            GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, L, dh, L, 1,
                 att + bh * LL, L, dout + bh * Ld, dh, 1, dv + bh * Ld, dh);
        }
        #pragma omp parallel for
        for (long r = 0; r < BH * L; r++)
            FN(attn_softmax_row_backward)(work + r * L, att + r * L, L);
        #pragma omp parallel for /* (batch, head) slices are disjoint; BLAS is single-threaded */
        for (long bh = 0; bh < BH; bh++) {
            // dq += scale dS k; dk += scale dS^T q
            GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, dh, L, scale,
                 work + bh * LL, L, k + bh * Ld, dh, 1, dq + bh * Ld, dh);
            GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, L, dh, L, scale,
                 work + bh * LL, L, q + bh * Ld, dh, 1, dk + bh * Ld, dh);
        }
    } else {
        #pragma omp parallel for
        for (long bh = 0; bh < BH; bh++)
            FN(attn_small_backward)(dq + bh * Ld, dk + bh * Ld, dv + bh * Ld, work + bh * LL,
                                    dout + bh * Ld, q + bh * Ld, k + bh * Ld, v + bh * Ld,
                                    att + bh * LL, L, dh, scale);
    }
    if (!dbias) return;
    // the bias is shared by the batch: sum the score gradient over it
    #pragma omp parallel for
    for (long e = 0; e < (long)H * LL; e++) {
        long h = e / LL, ij = e % LL;
        real s = 0;
        for (long b = 0; b < B; b++) s += work[(b * H + h) * LL + ij];
        dbias[e] += s;
    }
}

void FN(rotary_cos_sin)(real *cs, int L, int rot_dim) {
    for (int i = 0; i < rot_dim / 2; i++) {
        // float32 like the reference: freqs = 1 / theta^(2i/dim), angle = l * freq
        float freq = 1.0f / powf(10000.0f, (float)(2 * i) / (float)rot_dim);
        for (int l = 0; l < L; l++) {
            float ang = (float)l * freq;
            cs[((long)l * (rot_dim / 2) + i) * 2 + 0] = (real)cos((double)ang);
            cs[((long)l * (rot_dim / 2) + i) * 2 + 1] = (real)sin((double)ang);
        }
    }
}

/* Pairs (x0, x1) -> (x0 c - x1 s, x1 c + x0 s); sgn = -1 rotates back. */
static void FN(rotary_apply)(real *out, const real *inp, const real *cs,
                             int B, int L, int dh, int rot_dim, real sgn, int accumulate) {
    int half = rot_dim / 2;
    #pragma omp parallel for
    for (long bl = 0; bl < (long)B * L; bl++) {
        const real *x = inp + bl * dh, *c = cs + (bl % L) * half * 2;
        real *y = out + bl * dh;
        for (int i = 0; i < half; i++) {
            real co = c[2 * i], si = sgn * c[2 * i + 1];
            real x0 = x[2 * i], x1 = x[2 * i + 1];
            real y0 = x0 * co - x1 * si, y1 = x1 * co + x0 * si;
            if (accumulate) { y[2 * i] += y0; y[2 * i + 1] += y1; }
            else { y[2 * i] = y0; y[2 * i + 1] = y1; }
        }
        for (int d = rot_dim; d < dh; d++) y[d] = accumulate ? y[d] + x[d] : x[d];
    }
}

void FN(rotary_forward)(real *out, const real *inp, const real *cs,
                        int B, int L, int dh, int rot_dim) {
    FN(rotary_apply)(out, inp, cs, B, L, dh, rot_dim, 1, 0);
}

void FN(rotary_backward)(real *dinp, const real *dout, const real *cs,
                         int B, int L, int dh, int rot_dim) {
    FN(rotary_apply)(dinp, dout, cs, B, L, dh, rot_dim, -1, 1);
}

void FN(relpos_bias_forward)(real *bias, const real *table,
                             int H, int L, int num_buckets, int max_distance) {
    for (int i = 0; i < L; i++)
        for (int j = 0; j < L; j++) {
            int bk = relpos_bucket(j - i, num_buckets, max_distance);
            for (int h = 0; h < H; h++)
                bias[((long)h * L + i) * L + j] = table[(long)bk * H + h];
        }
}

void FN(relpos_bias_backward)(real *dtable, const real *dbias,
                              int H, int L, int num_buckets, int max_distance) {
    // serial: L*L*H adds, tiny next to the attention it belongs to
    for (int i = 0; i < L; i++)
        for (int j = 0; j < L; j++) {
            int bk = relpos_bucket(j - i, num_buckets, max_distance);
            for (int h = 0; h < H; h++)
                dtable[(long)bk * H + h] += dbias[((long)h * L + i) * L + j];
        }
}

/* The blocked transpose of permute_plan: out rows (outer, j, inner) with
 * j the input's contiguous axis. back: dinp[...] += dout[...] instead. */
static void FN(permute_blocked)(real *out, const real *inp, const permute_plan *pl, int back) {
    const long T = PERMUTE_TILE, J = pl->J, inner = pl->inner, n = pl->n, step = pl->step;
    const long groups = pl->rows / (J * inner), jt = (J + T - 1) / T;
    #pragma omp parallel for
    for (long g = 0; g < groups * inner * jt; g++) {
        long jb = g % jt * T, gi = g / jt, outer = gi / inner, in = gi % inner;
        long r0 = (outer * J + jb) * inner + in, je = jb + T < J ? T : J - jb;
        long x0 = permute_row_offset(pl, r0); /* + jj for the jj-th row of the tile */
        for (long ib = 0; ib < n; ib += T) {
            long ie = ib + T < n ? ib + T : n;
            for (long i = ib; i < ie; i++) {
                long xi = x0 + i * step;
                for (long jj = 0; jj < je; jj++) {
                    long oi = (r0 + jj * inner) * n + i;
                    if (back) out[xi + jj] += inp[oi];
                    else out[oi] = inp[xi + jj];
                }
            }
        }
    }
}

void FN(permute_forward)(real *out, const real *inp, int ndim, const int *shape, const int *perm) {
    permute_plan pl;
    permute_plan_init(&pl, ndim, shape, perm);
    if (pl.j >= 0) {
        FN(permute_blocked)(out, inp, &pl, 0);
        return;
    }
    #pragma omp parallel for
    for (long r = 0; r < pl.rows; r++) {
        const real *x = inp + permute_row_offset(&pl, r);
        real *o = out + r * pl.n;
        for (long i = 0; i < pl.n; i++) o[i] = x[i * pl.step];
    }
}

void FN(permute_backward)(real *dinp, const real *dout, int ndim, const int *shape, const int *perm) {
    permute_plan pl;
    permute_plan_init(&pl, ndim, shape, perm);
    if (pl.j >= 0) { /* tiles touch disjoint inputs too */
        FN(permute_blocked)(dinp, dout, &pl, 1);
        return;
    }
    #pragma omp parallel for // a bijection: rows touch disjoint inputs
    for (long r = 0; r < pl.rows; r++) {
        real *dx = dinp + permute_row_offset(&pl, r);
        const real *g = dout + r * pl.n;
        for (long i = 0; i < pl.n; i++) dx[i * pl.step] += g[i];
    }
}
