// Linear attention on CUDA, the semantics of kernels/linear_attention.h,
// checked against the CPU by tests/c/test_cuda_ops3.c.
//
// Softmaxes as the CPU's la_softmax (max, exp, sum, divide): over the
// feature axis d (stride F*N) one thread per column, so neighbouring
// threads read neighbouring n; over the sequence axis n (contiguous) one
// warp per row. The four products per (b, head) are cuBLAS strided-batched
// sgemms over the F slices (slice f starts N floats after slice f-1 inside
// its (B, C, F, N) tensor; the ctx slices are H*dh*dh apart), with the CPU
// GEMM's own row-major arguments (la_gemm does the transpose trick). Full
// fp32 unless LSDM_TF32=1 (see handles.cu). Deterministic: no atomics.
#ifndef LSDM_CUDA
#define LSDM_CUDA 1 /* NVFLAGS do not carry CPPFLAGS: see the _cuda declarations */
#endif
#include <limits.h>
#include <math.h>

#include "ops_common.cuh"
extern "C" {
#include "linear_attention.h"
}

#define LA_ROWS_PER_BLOCK (OPS_THREADS / 32)

// Row-major C (m x n) = alpha op(A) op(B) + beta C, batched: the cblas
// row-major call's arguments. Column-major C^T = op(B)^T op(A)^T, and a
// row-major matrix is its transpose in column-major, so the operands swap
// and the flags stay.
static cublasStatus_t la_gemm(cublasHandle_t h, int ta, int tb, int m, int n, int k, float alpha,
                              const float *A, int lda, long long sA, const float *B, int ldb, long long sB,
                              float beta, float *C, int ldc, long long sC, int batch) {
    return cublasSgemmStridedBatched(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k,
                                     &alpha, B, ldb, sB, A, lda, sA, &beta, C, ldc, sC, batch);
}

static int la_blas(cublasStatus_t s, const char *what) {
    return s == CUBLAS_STATUS_SUCCESS ? 0 : lsdm_err("%s: cublasSgemmStridedBatched: %s", what,
                                                     cublasGetStatusString(s));
}

static int la_sizes(int B, int H, int dh, int F, int N, const char *what) {
    if (B < 1 || H < 1 || dh < 1 || F < 1 || N < 1)
        return lsdm_err("%s: bad sizes B %d H %d dh %d F %d N %d", what, B, H, dh, F, N);
    if ((long long)F * N > INT_MAX || (long long)H * dh * dh > INT_MAX)
        return lsdm_err("%s: F*N = %lld too large for cuBLAS", what, (long long)F * N);
    return 0;
}

// qs column (b, head, fn) = softmax over d of the q column; one thread per
// column, the CPU's loop (src[0] starts the max, so a NaN there or later
// makes the column NaN as on the CPU).
struct LaColSoftmax {
    float *qs; const float *qkv; int H, dh; long long FN, C;
    __device__ void operator()(size_t col) const {
        long long b = (long long)col / (H * FN), h = (long long)col / FN % H, fn = (long long)col % FN;
        float *x = qs + (b * C + h * dh) * FN + fn;
        const float *src = qkv + (b * 3 * C + h * dh) * FN + fn;
        float mx = src[0], sum = 0.0f;
        for (int i = 1; i < dh; i++) mx = src[i * FN] > mx ? src[i * FN] : mx;
        for (int i = 0; i < dh; i++) {
            x[i * FN] = expf(src[i * FN] - mx);
            sum += x[i * FN];
        }
        for (int i = 0; i < dh; i++) x[i * FN] /= sum;
    }
};

// dqkv's q column += qs * (dqs - <qs, dqs>).
struct LaColSoftmaxBwd {
    float *dqkv; const float *dqs, *qs; int H, dh; long long FN, C;
    __device__ void operator()(size_t col) const {
        long long b = (long long)col / (H * FN), h = (long long)col / FN % H, fn = (long long)col % FN;
        long long o = (b * C + h * dh) * FN + fn;
        float *dx = dqkv + (b * 3 * C + h * dh) * FN + fn;
        const float *g = dqs + o, *p = qs + o;
        float dot = 0.0f;
        for (int i = 0; i < dh; i++) dot += p[i * FN] * g[i * FN];
        for (int i = 0; i < dh; i++) dx[i * FN] += p[i * FN] * (g[i * FN] - dot);
    }
};

__device__ inline float la_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ inline float la_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// ks row (b, c, f) = softmax over n of the k row; one warp per row. fmaxf
// skips a NaN, but its exp makes the sum and so the row NaN, as on the
// CPU; a +Inf gives exp(Inf - Inf) = NaN likewise.
__global__ void la_row_softmax_kernel(float *ks, const float *qkv, long long rows, long long CF, long long C,
                                      long long FN, int N) {
    long long r = (long long)blockIdx.x * LA_ROWS_PER_BLOCK + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (r >= rows) return; // whole warps leave together
    long long b = r / CF, cf = r % CF;
    const float *src = qkv + (b * 3 * C + C) * FN + cf * N;
    float *x = ks + r * N;
    float mx = -INFINITY;
    for (int j = lane; j < N; j += 32) mx = fmaxf(mx, src[j]);
    mx = la_warp_max(mx);
    float sum = 0.0f;
    for (int j = lane; j < N; j += 32) {
        float e = expf(src[j] - mx);
        x[j] = e;
        sum += e;
    }
    sum = la_warp_sum(sum);
    for (int j = lane; j < N; j += 32) x[j] /= sum;
}

// dqkv's k row += ks * (dks - <ks, dks>); one warp per row.
__global__ void la_row_softmax_backward_kernel(float *dqkv, const float *dks, const float *ks, long long rows,
                                               long long CF, long long C, long long FN, int N) {
    long long r = (long long)blockIdx.x * LA_ROWS_PER_BLOCK + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (r >= rows) return;
    long long b = r / CF, cf = r % CF;
    float *dx = dqkv + (b * 3 * C + C) * FN + cf * N;
    const float *g = dks + r * N, *p = ks + r * N;
    float dot = 0.0f;
    for (int j = lane; j < N; j += 32) dot += p[j] * g[j];
    dot = la_warp_sum(dot);
    for (int j = lane; j < N; j += 32) dx[j] += p[j] * (g[j] - dot);
}

static unsigned la_row_blocks(long long rows) {
    return (unsigned)((rows + LA_ROWS_PER_BLOCK - 1) / LA_ROWS_PER_BLOCK);
}

extern "C" int linear_attention_forward_cuda(float *out, float *qs, float *ks, float *ctx, const float *qkv,
                                             int B, int H, int dh, int F, int N, float scale) {
    const char *what = "linear_attention_forward_cuda";
    cublasHandle_t h;
    if (la_sizes(B, H, dh, F, N, what) < 0 || lsdm_cublas_handle(&h) < 0) return -1;
    long long FN = (long long)F * N, C = (long long)H * dh, rows = (long long)B * C * F;
    long long cs = (long long)H * dh * dh; // ctx stride between f slices
    if (ops_for((size_t)B * H * FN, LaColSoftmax{qs, qkv, H, dh, FN, C}, what) < 0) return -1;
    la_row_softmax_kernel<<<la_row_blocks(rows), OPS_THREADS>>>(ks, qkv, rows, C * F, C, FN, N);
    if (ops_check(what) < 0) return -1;
    for (long long b = 0; b < B; b++)
        for (long long hd = 0; hd < H; hd++) {
            long long o = (b * C + hd * dh) * FN, ov = (b * 3 * C + 2 * C + hd * dh) * FN;
            float *c = ctx + (b * F * H + hd) * dh * dh;
            // ctx = ks v^T (dh x dh); out = scale ctx^T qs (dh x N)
            if (la_blas(la_gemm(h, 0, 1, dh, dh, N, 1.0f, ks + o, (int)FN, N, qkv + ov, (int)FN, N, 0.0f, c, dh,
                                cs, F), what) < 0 ||
                la_blas(la_gemm(h, 1, 0, dh, N, dh, scale, c, dh, cs, qs + o, (int)FN, N, 0.0f, out + o, (int)FN,
                                N, F), what) < 0)
                return -1;
        }
    return 0;
}

extern "C" int linear_attention_backward_cuda(float *dqkv, float *work, const float *dout, const float *qkv,
                                              const float *qs, const float *ks, const float *ctx, int B, int H,
                                              int dh, int F, int N, float scale) {
    const char *what = "linear_attention_backward_cuda";
    cublasHandle_t h;
    if (la_sizes(B, H, dh, F, N, what) < 0 || lsdm_cublas_handle(&h) < 0) return -1;
    long long FN = (long long)F * N, C = (long long)H * dh, n = (long long)B * C * FN, rows = (long long)B * C * F;
    long long cs = (long long)H * dh * dh;
    float *dqs = work, *dks = work + n, *dctx = work + 2 * n; // as linear_attention_workspace_size
    for (long long b = 0; b < B; b++)
        for (long long hd = 0; hd < H; hd++) {
            long long o = (b * C + hd * dh) * FN, ov = (b * 3 * C + 2 * C + hd * dh) * FN;
            long long co = (b * F * H + hd) * dh * dh;
            const float *c = ctx + co;
            float *dc = dctx + co;
            // dqs = scale ctx dout; dctx = scale qs dout^T
            if (la_blas(la_gemm(h, 0, 0, dh, N, dh, scale, c, dh, cs, dout + o, (int)FN, N, 0.0f, dqs + o,
                                (int)FN, N, F), what) < 0 ||
                la_blas(la_gemm(h, 0, 1, dh, dh, N, scale, qs + o, (int)FN, N, dout + o, (int)FN, N, 0.0f, dc, dh,
                                cs, F), what) < 0)
                return -1;
            // dks = dctx v; dv += dctx^T ks
            if (la_blas(la_gemm(h, 0, 0, dh, N, dh, 1.0f, dc, dh, cs, qkv + ov, (int)FN, N, 0.0f, dks + o,
                                (int)FN, N, F), what) < 0 ||
                la_blas(la_gemm(h, 1, 0, dh, N, dh, 1.0f, dc, dh, cs, ks + o, (int)FN, N, 1.0f, dqkv + ov,
                                (int)FN, N, F), what) < 0)
                return -1;
        }
    if (ops_for((size_t)B * H * FN, LaColSoftmaxBwd{dqkv, dqs, qs, H, dh, FN, C}, what) < 0) return -1;
    la_row_softmax_backward_kernel<<<la_row_blocks(rows), OPS_THREADS>>>(dqkv, dks, ks, rows, C * F, C, FN, N);
    return ops_check(what);
}
