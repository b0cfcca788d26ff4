/* Small single-threaded sgemm kernels for the convolutions' GEMM shapes,
 * AVX-512 with a run-time check (gemm_avx512_usable); callers keep a
 * BLAS/plain-C path for CPUs without it (or LSDM_CPU_ISA=generic).
 *
 * Packed layouts (the micro-kernel's register tile is GEMM_MR rows of C by
 * GEMM_NR columns, NR along C's contiguous axis):
 *   Ap  panels of MR rows of A (M x K):    [ceil(M/MR)][K][MR], zero past M
 *   Bp  panels of NR columns of B (K x N): [ceil(N/NR)][K][NR], zero past N
 * A sub-range of K starts at Ap + k0*MR (panel stride K*MR unchanged). */
#ifndef LSDM_GEMM_AVX512_H
#define LSDM_GEMM_AVX512_H

#include <stddef.h>

#define GEMM_MR 8
#define GEMM_NR 32

/* 1 if the CPU has AVX-512F and LSDM_CPU_ISA is not "generic". */
int gemm_avx512_usable(void);

/* Floats of a packed A (M x K) or B (K x N). */
size_t gemm_pack_a_size(int M, int K);
size_t gemm_pack_b_size(int K, int N);

/* Ap <- A (M x K), element (m,k) at A[m*sm + k*sk]. */
void gemm_pack_a(float *Ap, const float *A, int M, int K, ptrdiff_t sm, ptrdiff_t sk);
/* Bp <- B (K x N), row k at B + k*ldb, contiguous. */
void gemm_pack_b(float *Bp, const float *B, int K, int N, ptrdiff_t ldb);

/* C (M x N, row stride ldc) = beta*C + A . B from packed panels: Ap with
 * panel stride sa floats, Bp with panel stride sb. beta 0 never reads C. */
void gemm_avx512_packed(float *C, ptrdiff_t ldc, const float *Ap, size_t sa, const float *Bp,
                        size_t sb, int M, int N, int K, float beta);

/* One tile of C (mr <= MR rows, nr <= NR columns, ldc) = beta*C + A . B
 * over K, A one packed panel (K x MR), B not packed: its row k is the
 * NR floats at B + off[k] (all NR are read, even past nr). */
void gemm_avx512_rows_tile(int K, const float *A, const float *B, const int *off, float *C,
                           ptrdiff_t ldc, int mr, int nr, float beta);
/* C (1 x N) = beta*C + a (1 x K) . B, B's row k at B + off[k]; reads up to
 * 64 floats from each step's start (N rounded up to 64). */
void gemm_avx512_rows_1(int K, const float *a, const float *B, const int *off, float *C, int N,
                        float beta);

/* C (M x N, ldc) += A (M x L, lda) . B (N x L, ldb)^T: dot products along
 * the rows of both (the weight gradient, whose sum runs over voxels). */
void gemm_avx512_nt(float *C, ptrdiff_t ldc, const float *A, ptrdiff_t lda, const float *B,
                    ptrdiff_t ldb, int M, int N, int L);

/* C (M x N, ldc) = A (M x K, row-major) . B (K x N, ldb) + bias (M, or
 * NULL), for a short K (a 1x1x1 conv with few input channels): each C
 * row in registers from the K rows of B, written once. */
void gemm_avx512_short_k(float *C, ptrdiff_t ldc, const float *A, const float *bias,
                         const float *B, ptrdiff_t ldb, int M, int N, int K);

/* dst (C x R, row stride ldd) = src (R x C, row stride lds)^T, in 16x16
 * blocks (the channels-last copy of the weight gradient's input); reads
 * and writes nothing outside the two matrices. */
void gemm_avx512_transpose(float *dst, ptrdiff_t ldd, const float *src, ptrdiff_t lds, int R,
                           int C);

/* Winograd F(2,3)'s output step (conv3d_wino.h): 32 tiles of the four
 * products m0..m3 (rows of 32 floats, qs apart from one product to the
 * next) into 64 consecutive outputs, y = beta*y + bias + the pairs
 * (m0+m1+m2, m1-m2-m3) in order; beta 0 never reads y. */
void gemm_avx512_wino_out(float *y, const float *m, size_t qs, float bias, float beta);

/* dst[i] = src[2*i] for i < n (vol2col of a stride-2 conv along W); reads
 * nothing past src[2*(n-1)]. */
void gemm_avx512_gather_s2(float *dst, const float *src, int n);
/* dst[i] = src[i] for i < n: vol2col's short rows (OW 8..64), where a
 * libc memcpy call costs as much as the copy. */
void gemm_avx512_copy(float *dst, const float *src, int n);

#endif
