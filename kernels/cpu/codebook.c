/* The VQ codebook (see codebook.h): nearest-code search blocked so that no
 * vectors x codes matrix exists, the EMA update with random restarts, and
 * the lookup and commitment loss from one float/double body
 * (codebook_impl.h).
 *
 * Nearest search: the codebook is transposed to (C, Kp) with half squared
 * norms hn, so that d'_k = hn_k - z.e_k = (||z - e_k||^2 - ||z||^2) / 2
 * for 16 codes is C fused multiply-adds on a zmm register. A tile of
 * CB_R vectors keeps its 16-lane running minima in registers while a
 * block of codes (about 32 KiB of the transposed codebook, held in L1)
 * streams past; a task of CB_TILES tiles runs over every code block in
 * increasing k. Strictly-less updates in increasing k keep the lowest k
 * per lane, and the lane reduction takes the lowest k among equal
 * minima: torch.argmin's tie rule. */
#include "codebook.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "gemm_avx512.h"
#include "rng.h"

#define LSDM_IMPL "codebook_impl.h"
#include "instantiate.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define CB_HAVE_AVX512 1
#define AVX512 __attribute__((target("avx512f,fma")))
#endif

#define CB_R 8      /* vectors per register tile */
#define CB_TILES 32 /* tiles per task */

static int cb_kpad(int K) { return (K + 15) / 16 * 16; }

size_t codebook_workspace_size(int K, int C) {
    if (K < 1 || C < 1) return 0;
    return (size_t)cb_kpad(K) * ((size_t)C + 1);
}

/* Codes per block: the block's (C+1) x kb floats fill about 32 KiB. */
static int cb_block_codes(int C) {
    int kb = 8192 / (C + 1) / 16 * 16;
    return kb < 16 ? 16 : kb;
}

/* et (C,Kp) = emb^T, zero past K; hn (Kp) = 0.5 ||e_k||^2, +Inf past K
 * (never less than the initial +Inf minimum, so padding is never chosen). */
static void cb_prepare(float *et, float *hn, const float *emb, int K, int C, int Kp) {
#pragma omp parallel for schedule(static) if ((size_t)K * C > 65536)
    for (int k = 0; k < Kp; k++) {
        double s = 0;
        for (int c = 0; c < C; c++) {
            float v = k < K ? emb[(size_t)k * C + c] : 0.0f;
            et[(size_t)c * Kp + k] = v;
            s += (double)v * v;
        }
        hn[k] = k < K ? (float)(0.5 * s) : INFINITY;
    }
}

/* Plain C: the running minimum of CB_R vectors (z of vector r at
 * zp[r][c*S]) over codes [k0,k1). */
static void cb_tile_generic(float *best, int32_t *bidx, const float *const *zp, long S, int C,
                            const float *et, const float *hn, int Kp, int k0, int k1) {
    for (int r = 0; r < CB_R; r++) {
        float b = best[r];
        int32_t bi = bidx[r];
        for (int k = k0; k < k1; k++) {
            float d = hn[k];
            for (int c = 0; c < C; c++) d -= zp[r][(size_t)c * S] * et[(size_t)c * Kp + k];
            if (d < b) { b = d; bi = k; }
        }
        best[r] = b;
        bidx[r] = bi;
    }
}

#ifdef CB_HAVE_AVX512
/* The same with 16 codes per zmm: per step C loads of codes, CB_R*C
 * multiply-adds with broadcast z, then a masked update of the minima. */
AVX512 static void cb_tile_avx512(float *best, int32_t *bidx, const float *const *zp, long S, int C,
                                  const float *et, const float *hn, int Kp, int k0, int k1) {
    __m512 bv[CB_R], a[CB_R];
    __m512i bi[CB_R];
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#pragma GCC unroll 8
    for (int r = 0; r < CB_R; r++) {
        bv[r] = _mm512_set1_ps(INFINITY);
        bi[r] = _mm512_setzero_si512();
    }
    for (int k = k0; k < k1; k += 16) {
        __m512 h = _mm512_loadu_ps(hn + k);
#pragma GCC unroll 8
        for (int r = 0; r < CB_R; r++) a[r] = h;
        for (int c = 0; c < C; c++) {
            __m512 e = _mm512_loadu_ps(et + (size_t)c * Kp + k);
            size_t o = (size_t)c * S;
#pragma GCC unroll 8
            for (int r = 0; r < CB_R; r++) a[r] = _mm512_fnmadd_ps(_mm512_set1_ps(zp[r][o]), e, a[r]);
        }
        __m512i kv = _mm512_add_epi32(_mm512_set1_epi32(k), lane);
#pragma GCC unroll 8
        for (int r = 0; r < CB_R; r++) {
            __mmask16 m = _mm512_cmp_ps_mask(a[r], bv[r], _CMP_LT_OQ);
            bv[r] = _mm512_mask_mov_ps(bv[r], m, a[r]);
            bi[r] = _mm512_mask_mov_epi32(bi[r], m, kv);
        }
    }
    for (int r = 0; r < CB_R; r++) {
        float mn = _mm512_reduce_min_ps(bv[r]);
        if (mn < best[r]) { /* strictly: an earlier block keeps a tie */
            __mmask16 eq = _mm512_cmp_ps_mask(bv[r], _mm512_set1_ps(mn), _CMP_EQ_OQ);
            best[r] = mn;
            bidx[r] = _mm512_mask_reduce_min_epi32(eq, bi[r]);
        }
    }
}
#endif

typedef void (*cb_tile_fn)(float *, int32_t *, const float *const *, long, int, const float *,
                           const float *, int, int, int);

int codebook_nearest(int32_t *idx, float *mindist, float *work, const float *z, const float *emb,
                     int N, int C, long S, int K) {
    if (N < 1 || C < 1 || S < 1 || K < 1)
        return lsdm_err("codebook_nearest: bad sizes N %d C %d S %ld K %d", N, C, S, K);
    int Kp = cb_kpad(K), kb = cb_block_codes(C);
    float *et = work, *hn = work + (size_t)C * Kp;
    cb_prepare(et, hn, emb, K, C, Kp);
    cb_tile_fn tile = cb_tile_generic;
#ifdef CB_HAVE_AVX512
    if (gemm_avx512_usable()) tile = cb_tile_avx512;
#endif
    long tiles_per_n = (S + CB_R - 1) / CB_R, tiles = (long)N * tiles_per_n;
    long tasks = (tiles + CB_TILES - 1) / CB_TILES;
    int bad = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : bad)
    for (long t = 0; t < tasks; t++) {
        float best[CB_TILES * CB_R];
        int32_t bidx[CB_TILES * CB_R];
        long t0 = t * CB_TILES, nt = tiles - t0 < CB_TILES ? tiles - t0 : CB_TILES;
        for (int i = 0; i < CB_TILES * CB_R; i++) best[i] = INFINITY, bidx[i] = 0;
        for (int k0 = 0; k0 < Kp; k0 += kb) {
            int k1 = k0 + kb < Kp ? k0 + kb : Kp;
            for (long i = 0; i < nt; i++) {
                long n = (t0 + i) / tiles_per_n, s0 = (t0 + i) % tiles_per_n * CB_R;
                const float *zp[CB_R];
                for (int r = 0; r < CB_R; r++) /* past S: repeat the last vector, result unused */
                    zp[r] = z + (size_t)n * C * S + (size_t)(s0 + r < S ? s0 + r : S - 1);
                tile(best + i * CB_R, bidx + i * CB_R, zp, S, C, et, hn, Kp, k0, k1);
            }
        }
        for (long i = 0; i < nt; i++) {
            long n = (t0 + i) / tiles_per_n, s0 = (t0 + i) % tiles_per_n * CB_R;
            for (int r = 0; r < CB_R && s0 + r < S; r++) {
                size_t m = (size_t)n * S + (size_t)(s0 + r);
                const float *zv = z + (size_t)n * C * S + (size_t)(s0 + r);
                double zz = 0;
                for (int c = 0; c < C; c++) zz += (double)zv[(size_t)c * S] * zv[(size_t)c * S];
                /* +Inf: no distance compared (NaN); -Inf: an Inf in z */
                float b = best[i * CB_R + r];
                int ok = isfinite(b) && isfinite(zz);
                bad += !ok;
                idx[m] = ok ? bidx[i * CB_R + r] : 0;
                if (mindist) mindist[m] = ok ? (float)(zz + 2.0 * b) : NAN;
            }
        }
    }
    return bad;
}

/* ---- EMA update, init, restarts -------------------------------------- */

codebook_ema_params codebook_ema_params_reference(void) {
    codebook_ema_params p = {.decay = 0.99, .restart_thres = 1.0, .restart = 1};
    return p;
}

/* Rows of the tiled inputs: M, or M*ceil(K/M) when M < K (>= K either way). */
static long cb_tiled_rows(long M, int K) { return M < K ? M * ((K + M - 1) / M) : M; }

uint64_t codebook_rng_blocks(long M, int K, int C) {
    if (M < 1 || K < 1 || C < 1) return 0;
    long T = cb_tiled_rows(M, K);
    return (uint64_t)K + (M < K ? ((uint64_t)T * (uint64_t)C + 3) / 4 : 0);
}

size_t codebook_ema_workspace_size(long M, int K, int C) {
    if (M < 1 || K < 1 || C < 1) return 0;
    return 2 * (size_t)K * ((size_t)C + 1) + (size_t)cb_tiled_rows(M, K);
}

/* perm[0..K) = the first K of a random permutation of the T tiled rows:
 * a partial Fisher-Yates shuffle, swap i from block offset + i (64 bits,
 * multiply-shift: bias below T / 2^64). */
static void cb_shuffle(int32_t *perm, long T, int K, uint64_t seed, uint64_t stream, uint64_t offset) {
    for (long j = 0; j < T; j++) perm[j] = (int32_t)j;
    for (int i = 0; i < K; i++) {
        uint32_t w[4];
        lsdm_rng_block(seed, stream, offset + (uint64_t)i, w);
        uint64_t u = (uint64_t)w[0] | (uint64_t)w[1] << 32;
        long j = i + (long)(((unsigned __int128)u * (uint64_t)(T - i)) >> 64);
        int32_t tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
}

/* dst (C) = row j of the tiled inputs: vector j % M of z, plus noise of
 * std 0.01/sqrt(C) when the inputs were tiled (M < K), element e = j*C + c
 * from block offset + K + e/4 in rng.h's layout of normals. */
static void cb_tiled_row(float *dst, long j, const float *z, int C, long S, long M, int K,
                         uint64_t seed, uint64_t stream, uint64_t offset) {
    long m = j % M, n = m / S, s = m % S;
    float sd = (float)(0.01 / sqrt((double)C));
    for (int c = 0; c < C; c++) {
        float v = z[(size_t)n * C * S + (size_t)c * S + (size_t)s];
        if (M < K) {
            uint64_t e = (uint64_t)j * (uint64_t)C + (uint64_t)c;
            uint32_t w[4];
            float g[2];
            lsdm_rng_block(seed, stream, offset + (uint64_t)K + e / 4, w);
            lsdm_rng_box_muller(w[e % 4 / 2 * 2], w[e % 4 / 2 * 2 + 1], &g[0], &g[1]);
            v += g[e % 2] * sd;
        }
        dst[c] = v;
    }
}

static int cb_check_sizes(const char *fn, int N, int C, long S, int K) {
    if (N < 1 || C < 1 || S < 1 || K < 1 || (long)N * S > INT32_MAX)
        return lsdm_err("%s: bad sizes N %d C %d S %ld K %d", fn, N, C, S, K);
    return 0;
}

int codebook_init(float *emb, float *ema_n, float *z_avg, float *work, const float *z,
                  int N, int C, long S, int K, uint64_t seed, uint64_t stream, uint64_t offset) {
    if (cb_check_sizes("codebook_init", N, C, S, K) < 0) return -1;
    long M = (long)N * S, T = cb_tiled_rows(M, K);
    int32_t *perm = (int32_t *)(work + 2 * (size_t)K * ((size_t)C + 1));
    cb_shuffle(perm, T, K, seed, stream, offset);
    for (int k = 0; k < K; k++) {
        cb_tiled_row(emb + (size_t)k * C, perm[k], z, C, S, M, K, seed, stream, offset);
        memcpy(z_avg + (size_t)k * C, emb + (size_t)k * C, (size_t)C * sizeof *emb);
        ema_n[k] = 1.0f;
    }
    return 0;
}

int codebook_ema_update(float *emb, float *ema_n, float *z_avg, float *work, const float *z,
                        const int32_t *idx, int N, int C, long S, int K, const codebook_ema_params *p,
                        uint64_t seed, uint64_t stream, uint64_t offset) {
    if (cb_check_sizes("codebook_ema_update", N, C, S, K) < 0) return -1;
    long M = (long)N * S, T = cb_tiled_rows(M, K);
    for (long m = 0; m < M; m++)
        if (idx[m] < 0 || idx[m] >= K)
            return lsdm_err("codebook_ema_update: index %ld at vector %ld is not a code in [0,%d)", (long)idx[m], m, K);
    double *cnt = (double *)work, *sum = cnt + K; /* (K), (K,C) */
    int32_t *perm = (int32_t *)(work + 2 * (size_t)K * ((size_t)C + 1));
    memset(cnt, 0, (size_t)K * ((size_t)C + 1) * sizeof *cnt);
    /* n_total and encode_sum, sequentially: the sums do not depend on threads */
    for (int n = 0; n < N; n++)
        for (long s = 0; s < S; s++) {
            int32_t k = idx[(size_t)n * S + s];
            const float *zv = z + (size_t)n * C * S + (size_t)s;
            cnt[k] += 1;
            for (int c = 0; c < C; c++) sum[(size_t)k * C + c] += zv[(size_t)c * S];
        }
    double d = p->decay, nsum = 0;
    for (int k = 0; k < K; k++) {
        ema_n[k] = (float)(d * ema_n[k] + (1 - d) * cnt[k]);
        for (int c = 0; c < C; c++)
            z_avg[(size_t)k * C + c] = (float)(d * z_avg[(size_t)k * C + c] + (1 - d) * sum[(size_t)k * C + c]);
        nsum += ema_n[k];
    }
    for (int k = 0; k < K; k++) {
        double w = ((double)ema_n[k] + 1e-7) / (nsum + K * 1e-7) * nsum;
        for (int c = 0; c < C; c++) emb[(size_t)k * C + c] = (float)(z_avg[(size_t)k * C + c] / w);
    }
    if (!p->restart) return 0;
    cb_shuffle(perm, T, K, seed, stream, offset);
    int restarted = 0;
    for (int k = 0; k < K; k++)
        if (!(ema_n[k] >= p->restart_thres)) { /* as the reference: a NaN count restarts too */
            cb_tiled_row(emb + (size_t)k * C, perm[k], z, C, S, M, K, seed, stream, offset);
            restarted++;
        }
    return restarted;
}

int codebook_perplexity(double *perplexity, int *used, int32_t *counts, const int32_t *idx, long M, int K) {
    if (M < 1 || K < 1) return lsdm_err("codebook_perplexity: bad sizes M %ld K %d", M, K);
    memset(counts, 0, (size_t)K * sizeof *counts);
    for (long m = 0; m < M; m++) {
        if (idx[m] < 0 || idx[m] >= K)
            return lsdm_err("codebook_perplexity: index %ld at vector %ld is not a code in [0,%d)", (long)idx[m], m, K);
        counts[idx[m]]++;
    }
    double h = 0;
    int u = 0;
    for (int k = 0; k < K; k++)
        if (counts[k]) {
            double q = (double)counts[k] / (double)M;
            h -= q * log(q + 1e-10);
            u++;
        }
    *perplexity = exp(h);
    if (used) *used = u;
    return 0;
}
