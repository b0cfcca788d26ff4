/* AVX-512 sgemm kernels for the convolutions (see gemm_avx512.h). The
 * packed product keeps an 8 x 32 tile of C in 16 zmm registers: per k it
 * loads one 32-wide row of the B panel and broadcasts 8 values of the A
 * panel, 16 FMAs for 10 loads. Blocking: KC values of k at a time (a B
 * panel of KC x 32 floats, 32 KiB, stays in L1 while the MC rows of A
 * stream past it from L2). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gemm_avx512.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GEMM_HAVE_AVX512 1
#endif

#define GEMM_KC 256
#define GEMM_MC 64

int gemm_avx512_usable(void) {
    const char *isa = getenv("LSDM_CPU_ISA");
    if (isa && strcmp(isa, "generic") == 0) return 0;
#ifdef GEMM_HAVE_AVX512
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

size_t gemm_pack_a_size(int M, int K) {
    return (size_t)(M + GEMM_MR - 1) / GEMM_MR * GEMM_MR * K;
}
size_t gemm_pack_b_size(int K, int N) {
    return (size_t)(N + GEMM_NR - 1) / GEMM_NR * GEMM_NR * K;
}

void gemm_pack_a(float *Ap, const float *A, int M, int K, ptrdiff_t sm, ptrdiff_t sk) {
    for (int i = 0; i < M; i += GEMM_MR, Ap += (size_t)K * GEMM_MR) {
        int mr = M - i < GEMM_MR ? M - i : GEMM_MR;
        const float *a = A + i * sm;
        if (sm == 1) { // rows of the panel are contiguous in A: copy runs of mr
            for (int k = 0; k < K; k++) {
                float *dst = Ap + (size_t)k * GEMM_MR;
                for (int m = 0; m < GEMM_MR; m++) dst[m] = m < mr ? a[k * sk + m] : 0;
            }
        } else { // read each row of A along k, write with stride MR
            for (int m = 0; m < GEMM_MR; m++)
                for (int k = 0; k < K; k++)
                    Ap[(size_t)k * GEMM_MR + m] = m < mr ? a[m * sm + k * sk] : 0;
        }
    }
}

void gemm_pack_b(float *Bp, const float *B, int K, int N, ptrdiff_t ldb) {
    for (int j = 0; j < N; j += GEMM_NR, Bp += (size_t)K * GEMM_NR) {
        int nr = N - j < GEMM_NR ? N - j : GEMM_NR;
        if (nr == GEMM_NR) { // a constant size: the copy is inlined
            for (int k = 0; k < K; k++)
                memcpy(Bp + (size_t)k * GEMM_NR, B + k * ldb + j, GEMM_NR * sizeof *Bp);
            continue;
        }
        for (int k = 0; k < K; k++) {
            float *dst = Bp + (size_t)k * GEMM_NR;
            memcpy(dst, B + k * ldb + j, (size_t)nr * sizeof *dst);
            for (int n = nr; n < GEMM_NR; n++) dst[n] = 0;
        }
    }
}

#ifdef GEMM_HAVE_AVX512
#define AVX512 __attribute__((target("avx512f,fma")))

/* Write the accumulators of an 8x32 tile: C = beta*C + acc, masked to
 * the mr x nr corner that exists. Inlined, so c0/c1 stay in registers. */
AVX512 static inline __attribute__((always_inline)) void
gemm_store_tile(__m512 *c0, __m512 *c1, float *C, ptrdiff_t ldc, int mr, int nr, float beta) {
    __mmask16 k0 = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1);
    __mmask16 k1 = nr >= 32 ? 0xFFFF : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;
    __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 8
    for (int m = 0; m < GEMM_MR; m++) {
        if (m >= mr) break;
        float *c = C + m * ldc;
        if (beta != 0) {
            c0[m] = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(k0, c), c0[m]);
            c1[m] = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(k1, c + 16), c1[m]);
        }
        _mm512_mask_storeu_ps(c, k0, c0[m]);
        _mm512_mask_storeu_ps(c + 16, k1, c1[m]);
    }
}

/* C tile (mr x nr, ldc) = beta*C + Ap panel (K x MR) . Bp panel (K x NR). */
AVX512 static void gemm_kernel_8x32(int K, const float *A, const float *B, float *C,
                                    ptrdiff_t ldc, int mr, int nr, float beta) {
    __m512 c0[GEMM_MR], c1[GEMM_MR];
#pragma GCC unroll 8
    for (int m = 0; m < GEMM_MR; m++) c0[m] = c1[m] = _mm512_setzero_ps();
    for (int k = 0; k < K; k++, A += GEMM_MR, B += GEMM_NR) {
        __m512 b0 = _mm512_loadu_ps(B), b1 = _mm512_loadu_ps(B + 16);
#pragma GCC unroll 8
        for (int m = 0; m < GEMM_MR; m++) {
            __m512 a = _mm512_set1_ps(A[m]);
            c0[m] = _mm512_fmadd_ps(a, b0, c0[m]);
            c1[m] = _mm512_fmadd_ps(a, b1, c1[m]);
        }
    }
    gemm_store_tile(c0, c1, C, ldc, mr, nr, beta);
}

/* The same tile with B read in place: row k of B is the 32 floats at
 * B + off[k] (the implicit GEMM of conv3d_implicit.h, where B's rows are
 * runs of padded input rows). Reads 32 floats of every row whatever nr. */
AVX512 void gemm_avx512_rows_tile(int K, const float *A, const float *B, const int *off,
                                  float *C, ptrdiff_t ldc, int mr, int nr, float beta) {
    __m512 c0[GEMM_MR], c1[GEMM_MR];
#pragma GCC unroll 8
    for (int m = 0; m < GEMM_MR; m++) c0[m] = c1[m] = _mm512_setzero_ps();
    for (int k = 0; k < K; k++, A += GEMM_MR) {
        const float *b = B + off[k];
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 8
        for (int m = 0; m < GEMM_MR; m++) {
            __m512 a = _mm512_set1_ps(A[m]);
            c0[m] = _mm512_fmadd_ps(a, b0, c0[m]);
            c1[m] = _mm512_fmadd_ps(a, b1, c1[m]);
        }
    }
    gemm_store_tile(c0, c1, C, ldc, mr, nr, beta);
}

/* One output row of the 1-row case (Cout < GEMM_MR): C (1 x N) = beta*C +
 * a . B, with B's row k at B + off[k], 64 columns per step (4 zmm), so
 * that a single output channel does not pay for 8. Reads up to 64 floats
 * of every row past the start of a step whatever N. */
AVX512 void gemm_avx512_rows_1(int K, const float *a, const float *B, const int *off, float *C,
                               int N, float beta) {
    for (int j = 0; j < N; j += 64) {
        __m512 c[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                       _mm512_setzero_ps()};
        for (int k = 0; k < K; k++) {
            const float *b = B + off[k] + j;
            __m512 va = _mm512_set1_ps(a[k]);
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++) c[u] = _mm512_fmadd_ps(va, _mm512_loadu_ps(b + 16 * u), c[u]);
        }
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++) {
            int n = N - j - 16 * u;
            if (n <= 0) break;
            __mmask16 m = n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1);
            float *p = C + j + 16 * u;
            if (beta != 0) c[u] = _mm512_fmadd_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(m, p), c[u]);
            _mm512_mask_storeu_ps(p, m, c[u]);
        }
    }
}

void gemm_avx512_packed(float *C, ptrdiff_t ldc, const float *Ap, size_t sa, const float *Bp,
                        size_t sb, int M, int N, int K, float beta) {
    for (int k0 = 0; k0 < K; k0 += GEMM_KC) {
        int kc = K - k0 < GEMM_KC ? K - k0 : GEMM_KC;
        float b = k0 ? 1.0f : beta;
        for (int i0 = 0; i0 < M; i0 += GEMM_MC) {
            int i1 = i0 + GEMM_MC < M ? i0 + GEMM_MC : M;
            for (int j = 0; j < N; j += GEMM_NR) {
                const float *bp = Bp + (size_t)(j / GEMM_NR) * sb + (size_t)k0 * GEMM_NR;
                int nr = N - j < GEMM_NR ? N - j : GEMM_NR;
                for (int i = i0; i < i1; i += GEMM_MR) {
                    const float *ap = Ap + (size_t)(i / GEMM_MR) * sa + (size_t)k0 * GEMM_MR;
                    gemm_kernel_8x32(kc, ap, bp, C + i * ldc + j, ldc,
                                     i1 - i < GEMM_MR ? i1 - i : GEMM_MR, nr, b);
                }
            }
        }
    }
}

/* C (M x N) += A . B^T on a 4 x 6 tile of dot products, each a zmm of 16
 * partial sums along L, summed at the end. Rows past M or N repeat the
 * last row (read, never stored), so the tile needs no variants. */
#define NT_TM 4
#define NT_TN 6
AVX512 void gemm_avx512_nt(float *C, ptrdiff_t ldc, const float *A, ptrdiff_t lda,
                           const float *B, ptrdiff_t ldb, int M, int N, int L) {
    const int L16 = L / 16 * 16;
    const __mmask16 tail = (__mmask16)((1u << (L - L16)) - 1);
    for (int n0 = 0; n0 < N; n0 += NT_TN) {
        const float *b[NT_TN];
        for (int u = 0; u < NT_TN; u++) b[u] = B + (n0 + u < N ? n0 + u : N - 1) * ldb;
        for (int m0 = 0; m0 < M; m0 += NT_TM) {
            const float *a[NT_TM];
            for (int t = 0; t < NT_TM; t++) a[t] = A + (m0 + t < M ? m0 + t : M - 1) * lda;
            __m512 acc[NT_TM][NT_TN];
#pragma GCC unroll 4
            for (int t = 0; t < NT_TM; t++)
#pragma GCC unroll 6
                for (int u = 0; u < NT_TN; u++) acc[t][u] = _mm512_setzero_ps();
            for (int l = 0; l <= L16; l += 16) {
                __mmask16 k = l < L16 ? 0xFFFF : tail;
                if (!k) break;
                __m512 vb[NT_TN];
#pragma GCC unroll 6
                for (int u = 0; u < NT_TN; u++) vb[u] = _mm512_maskz_loadu_ps(k, b[u] + l);
#pragma GCC unroll 4
                for (int t = 0; t < NT_TM; t++) {
                    __m512 va = _mm512_maskz_loadu_ps(k, a[t] + l);
#pragma GCC unroll 6
                    for (int u = 0; u < NT_TN; u++) acc[t][u] = _mm512_fmadd_ps(va, vb[u], acc[t][u]);
                }
            }
#pragma GCC unroll 4
            for (int t = 0; t < NT_TM; t++)
#pragma GCC unroll 6
                for (int u = 0; u < NT_TN; u++)
                    if (m0 + t < M && n0 + u < N)
                        C[(m0 + t) * ldc + n0 + u] += _mm512_reduce_add_ps(acc[t][u]);
        }
    }
}

/* 16 outputs per step from two loads and one two-source permute; masked
 * loads stop at src[2*(n-1)] (masked-off lanes never fault). */
AVX512 void gemm_avx512_gather_s2(float *dst, const float *src, int n) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 lo = _mm512_loadu_ps(src + 2 * i);
        __m512 hi = _mm512_maskz_loadu_ps(0x7FFF, src + 2 * i + 16);
        _mm512_storeu_ps(dst + i, _mm512_permutex2var_ps(lo, even, hi));
    }
    if (i < n) {
        int need = 2 * (n - i) - 1; /* src values to read: 1..31 */
        __mmask16 mlo = need >= 16 ? 0xFFFF : (__mmask16)((1u << need) - 1);
        __mmask16 mhi = need > 16 ? (__mmask16)((1u << (need - 16)) - 1) : 0;
        __m512 lo = _mm512_maskz_loadu_ps(mlo, src + 2 * i);
        __m512 hi = _mm512_maskz_loadu_ps(mhi, src + 2 * i + 16);
        _mm512_mask_storeu_ps(dst + i, (__mmask16)((1u << (n - i)) - 1),
                              _mm512_permutex2var_ps(lo, even, hi));
    }
}

AVX512 void gemm_avx512_copy(float *dst, const float *src, int n) {
    int i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_loadu_ps(src + i));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(dst + i, m, _mm512_maskz_loadu_ps(m, src + i));
    }
}

/* dst[i] = lanes (0, 2) of src[i] then of src[i+s], dst[i+s] = lanes
 * (1, 3) of both, for every i without bit s: one exchange of 128-bit lanes
 * of the 16x16 transpose. */
AVX512 static inline void gemm_lane_pairs(__m512 *dst, const __m512 *src, int s) {
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++)
        if (!(i & s)) {
            dst[i] = _mm512_shuffle_f32x4(src[i], src[i + s], 0x88);
            dst[i + s] = _mm512_shuffle_f32x4(src[i], src[i + s], 0xdd);
        }
}

/* r[j] <- column j of the 16x16 block r (row i in r[i]): pairs of rows
 * interleaved, then 4x4 blocks within each 128-bit lane, then the lanes
 * across registers; 64 shuffles. */
AVX512 static inline void gemm_transpose_16x16(__m512 *r) {
    __m512 t[16];
#pragma GCC unroll 8
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 16; i += 4) { // r[4g+m], lane L: rows 4g..4g+3 of column 4L+m
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    gemm_lane_pairs(t, r, 4); // then 128-bit lanes: t[i] lanes 0,2 of r[i], r[i+4]; t[i+4] lanes 1,3
    gemm_lane_pairs(r, t, 8);
}

AVX512 void gemm_avx512_transpose(float *dst, ptrdiff_t ldd, const float *src, ptrdiff_t lds, int R,
                                  int C) {
    for (int r0 = 0; r0 < R; r0 += 16) {
        const int nr = R - r0 < 16 ? R - r0 : 16;
        const __mmask16 rmask = (__mmask16)((1u << nr) - 1);
        for (int c0 = 0; c0 < C; c0 += 16) {
            const int nc = C - c0 < 16 ? C - c0 : 16;
            const __mmask16 cmask = (__mmask16)((1u << nc) - 1);
            __m512 v[16];
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                v[i] = i < nr ? _mm512_maskz_loadu_ps(cmask, src + (r0 + i) * lds + c0) : _mm512_setzero_ps();
            gemm_transpose_16x16(v);
#pragma GCC unroll 16
            for (int j = 0; j < 16; j++)
                if (j < nc) _mm512_mask_storeu_ps(dst + (c0 + j) * ldd + r0, rmask, v[j]);
        }
    }
}

AVX512 void gemm_avx512_wino_out(float *y, const float *m, size_t qs, float bias, float beta) {
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const __m512 bv = _mm512_set1_ps(bias), vbeta = _mm512_set1_ps(beta);
    for (int h = 0; h < 2; h++, m += 16, y += 32) { // tiles 16h.. -> outputs 32h..
        __m512 m0 = _mm512_loadu_ps(m), m1 = _mm512_loadu_ps(m + qs);
        __m512 m2 = _mm512_loadu_ps(m + 2 * qs), m3 = _mm512_loadu_ps(m + 3 * qs);
        __m512 e = _mm512_add_ps(_mm512_add_ps(m0, m1), m2), o = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
        __m512 y0 = _mm512_add_ps(_mm512_permutex2var_ps(e, lo, o), bv);
        __m512 y1 = _mm512_add_ps(_mm512_permutex2var_ps(e, hi, o), bv);
        if (beta != 0) {
            y0 = _mm512_fmadd_ps(vbeta, _mm512_loadu_ps(y), y0);
            y1 = _mm512_fmadd_ps(vbeta, _mm512_loadu_ps(y + 16), y1);
        }
        _mm512_storeu_ps(y, y0);
        _mm512_storeu_ps(y + 16, y1);
    }
}

AVX512 void gemm_avx512_short_k(float *C, ptrdiff_t ldc, const float *A, const float *bias,
                                const float *B, ptrdiff_t ldb, int M, int N, int K) {
    for (int m = 0; m < M; m++) {
        const float *a = A + (size_t)m * K;
        float *c = C + m * ldc;
        __m512 b0 = _mm512_set1_ps(bias ? bias[m] : 0.0f);
        int n = 0;
        for (; n + 32 <= N; n += 32) {
            __m512 c0 = b0, c1 = b0;
            for (int k = 0; k < K; k++) {
                __m512 ak = _mm512_set1_ps(a[k]);
                c0 = _mm512_fmadd_ps(ak, _mm512_loadu_ps(B + k * ldb + n), c0);
                c1 = _mm512_fmadd_ps(ak, _mm512_loadu_ps(B + k * ldb + n + 16), c1);
            }
            _mm512_storeu_ps(c + n, c0);
            _mm512_storeu_ps(c + n + 16, c1);
        }
        for (; n < N; n += 16) {
            __mmask16 mk = N - n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (N - n)) - 1);
            __m512 c0 = b0;
            for (int k = 0; k < K; k++)
                c0 = _mm512_fmadd_ps(_mm512_set1_ps(a[k]), _mm512_maskz_loadu_ps(mk, B + k * ldb + n), c0);
            _mm512_mask_storeu_ps(c + n, mk, c0);
        }
    }
}

#else /* no AVX-512 compiler support: never called (gemm_avx512_usable is 0) */
void gemm_avx512_rows_tile(int K, const float *A, const float *B, const int *off, float *C,
                           ptrdiff_t ldc, int mr, int nr, float beta) {
    (void)K, (void)A, (void)B, (void)off, (void)C, (void)ldc, (void)mr, (void)nr, (void)beta;
    abort();
}
void gemm_avx512_rows_1(int K, const float *a, const float *B, const int *off, float *C, int N,
                        float beta) {
    (void)K, (void)a, (void)B, (void)off, (void)C, (void)N, (void)beta;
    abort();
}
void gemm_avx512_packed(float *C, ptrdiff_t ldc, const float *Ap, size_t sa, const float *Bp,
                        size_t sb, int M, int N, int K, float beta) {
    (void)C, (void)ldc, (void)Ap, (void)sa, (void)Bp, (void)sb, (void)M, (void)N, (void)K,
        (void)beta;
    abort();
}
void gemm_avx512_nt(float *C, ptrdiff_t ldc, const float *A, ptrdiff_t lda, const float *B,
                    ptrdiff_t ldb, int M, int N, int L) {
    (void)C, (void)ldc, (void)A, (void)lda, (void)B, (void)ldb, (void)M, (void)N, (void)L;
    abort();
}
void gemm_avx512_gather_s2(float *dst, const float *src, int n) {
    (void)dst, (void)src, (void)n;
    abort();
}
void gemm_avx512_copy(float *dst, const float *src, int n) {
    (void)dst, (void)src, (void)n;
    abort();
}

void gemm_avx512_wino_out(float *y, const float *m, size_t qs, float bias, float beta) {
    (void)y, (void)m, (void)qs, (void)bias, (void)beta;
    abort();
}

void gemm_avx512_transpose(float *dst, ptrdiff_t ldd, const float *src, ptrdiff_t lds, int R,
                           int C) {
    (void)dst, (void)ldd, (void)src, (void)lds, (void)R, (void)C;
    abort();
}

void gemm_avx512_short_k(float *C, ptrdiff_t ldc, const float *A, const float *bias,
                         const float *B, ptrdiff_t ldb, int M, int N, int K) {
    (void)C, (void)ldc, (void)A, (void)bias, (void)B, (void)ldb, (void)M, (void)N, (void)K;
    abort();
}
#endif
