// Softmax attention, rotary embedding, relative position bias and axis
// permutation on CUDA: the semantics of kernels/attention.h, checked
// against the CPU by tests/c/test_cuda_ops2.c.
//
// Attention: the four products are cuBLAS strided-batched sgemms over the
// B*H (batch, head) pairs, row-major by the transpose trick of linear.cu
// (a row-major (r,c) matrix is a column-major (c,r) one); softmax and its
// backward are one warp per row of L scores, in the CPU's order of work
// (bias, max, exp and sum, scale), so NaN and Inf propagate the same way.
// Full fp32 unless LSDM_TF32=1 (see handles.cu).
//
// Relative position bias: the bucket of rel = j - i is the CPU's
// relpos_bucket (float32 log), evaluated on the host for every |rel| < L
// and passed to the kernels run-length encoded in a kernel argument, so
// device and host buckets agree bit for bit and nothing is allocated.
// The backward is deterministic: one block per table entry sums, in a
// fixed order, the dbias values of the (i,j) pairs of its bucket.
#ifndef LSDM_CUDA
#define LSDM_CUDA 1 /* NVFLAGS do not carry CPPFLAGS: see the _cuda declarations */
#endif
#include <limits.h>

#include "ops_common.cuh"
extern "C" {
#include "attention.h"
}

static int attn_blas(cublasStatus_t s, const char *what) {
    return s == CUBLAS_STATUS_SUCCESS ? 0 : lsdm_err("%s: cublasSgemmStridedBatched: %s", what,
                                                     cublasGetStatusString(s));
}

static int attn_sizes(int B, int H, int L, int dh, const char *what) {
    if (B < 1 || H < 1 || L < 1 || dh < 1)
        return lsdm_err("%s: bad sizes B %d H %d L %d dh %d", what, B, H, L, dh);
    if ((long long)B * H > INT_MAX) return lsdm_err("%s: B*H = %lld too large", what, (long long)B * H);
    return 0;
}

// Row-major C (BH x [L,L]) = alpha A B^T + beta C with A, B (BH x [L,dh]):
// column-major C^T = B A^T. Used for the scores and for dP = dout v^T.
static cublasStatus_t attn_gemm_abt(cublasHandle_t h, float *c, const float *a, const float *b, float alpha,
                                    int BH, int L, int dh) {
    const float zero = 0.0f;
    long long Ld = (long long)L * dh, LL = (long long)L * L;
    return cublasSgemmStridedBatched(h, CUBLAS_OP_T, CUBLAS_OP_N, L, L, dh, &alpha, b, dh, Ld, a, dh, Ld,
                                     &zero, c, L, LL, BH);
}

// Row-major C (BH x [L,dh]) = alpha P X + beta C with P (BH x [L,L]), X
// (BH x [L,dh]): column-major C^T = X^T P^T. out = att v, dq += dS k.
static cublasStatus_t attn_gemm_px(cublasHandle_t h, float *c, const float *p, const float *x, float alpha,
                                   float beta, int BH, int L, int dh) {
    long long Ld = (long long)L * dh, LL = (long long)L * L;
    return cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, dh, L, L, &alpha, x, dh, Ld, p, L, LL,
                                     &beta, c, dh, Ld, BH);
}

// Row-major C (BH x [L,dh]) += alpha P^T X: column-major C^T = X^T P.
// dv += att^T dout, dk += dS^T q.
static cublasStatus_t attn_gemm_ptx(cublasHandle_t h, float *c, const float *p, const float *x, float alpha,
                                    int BH, int L, int dh) {
    const float one = 1.0f;
    long long Ld = (long long)L * dh, LL = (long long)L * L;
    return cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_T, dh, L, L, &alpha, x, dh, Ld, p, L, LL,
                                     &one, c, dh, Ld, BH);
}

#define ATTN_ROWS_PER_BLOCK (OPS_THREADS / 32)

__device__ inline float attn_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ inline float attn_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// att rows (rows = BH*L, each L long) in place: += bias row, softmax. A
// NaN anywhere in a row makes the whole row NaN (its sum is NaN), as on
// the CPU; a +Inf score gives exp(Inf - Inf) = NaN likewise.
__global__ void attn_softmax_kernel(float *att, const float *bias, long long rows, int H, int L) {
    long long r = (long long)blockIdx.x * ATTN_ROWS_PER_BLOCK + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (r >= rows) return; // whole warps leave together
    float *row = att + r * L;
    const float *b = bias ? bias + (((r / L) % H) * L + r % L) * (long long)L : NULL;
    float mx = -INFINITY;
    for (int j = lane; j < L; j += 32) {
        float s = row[j] + (b ? b[j] : 0.0f);
        row[j] = s;
        mx = fmaxf(mx, s);
    }
    mx = attn_warp_max(mx);
    // a NaN score: fmaxf skips it, but its exp below makes the sum NaN
    float sum = 0.0f;
    for (int j = lane; j < L; j += 32) {
        float e = expf(row[j] - mx);
        row[j] = e;
        sum += e;
    }
    float inv = 1.0f / attn_warp_sum(sum);
    for (int j = lane; j < L; j += 32) row[j] *= inv;
}

// ds rows in place: dP -> P * (dP - <P, dP>).
__global__ void attn_softmax_backward_kernel(float *ds, const float *att, long long rows, int L) {
    long long r = (long long)blockIdx.x * ATTN_ROWS_PER_BLOCK + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (r >= rows) return;
    float *d = ds + r * L;
    const float *p = att + r * L;
    float dot = 0.0f;
    for (int j = lane; j < L; j += 32) dot += p[j] * d[j];
    dot = attn_warp_sum(dot);
    for (int j = lane; j < L; j += 32) d[j] = p[j] * (d[j] - dot);
}

static unsigned attn_row_blocks(long long rows) {
    return (unsigned)((rows + ATTN_ROWS_PER_BLOCK - 1) / ATTN_ROWS_PER_BLOCK);
}

// dbias (H, L*L) += sum over b of ds (B, H, L*L), b in order.
struct AttnDbias {
    float *dbias; const float *ds; int B, H; long long LL;
    __device__ void operator()(size_t e) const {
        float s = 0.0f;
        for (int b = 0; b < B; b++) s += ds[(long long)b * H * LL + (long long)e];
        dbias[e] += s;
    }
};

extern "C" int attention_forward_cuda(float *out, float *att, const float *q, const float *k, const float *v,
                                      const float *bias, int B, int H, int L, int dh, float scale) {
    const char *what = "attention_forward_cuda";
    cublasHandle_t h;
    if (attn_sizes(B, H, L, dh, what) < 0 || lsdm_cublas_handle(&h) < 0) return -1;
    int BH = B * H;
    long long rows = (long long)BH * L;
    if (attn_blas(attn_gemm_abt(h, att, q, k, scale, BH, L, dh), what) < 0) return -1;
    attn_softmax_kernel<<<attn_row_blocks(rows), OPS_THREADS>>>(att, bias, rows, H, L);
    if (ops_check(what) < 0) return -1;
    return attn_blas(attn_gemm_px(h, out, att, v, 1.0f, 0.0f, BH, L, dh), what);
}

extern "C" int attention_backward_cuda(float *dq, float *dk, float *dv, float *dbias, float *work,
                                       const float *dout, const float *q, const float *k, const float *v,
                                       const float *att, int B, int H, int L, int dh, float scale) {
    const char *what = "attention_backward_cuda";
    cublasHandle_t h;
    if (attn_sizes(B, H, L, dh, what) < 0 || lsdm_cublas_handle(&h) < 0) return -1;
    int BH = B * H;
    long long rows = (long long)BH * L;
    // work = dP = dout v^T; dv += att^T dout
    if (attn_blas(attn_gemm_abt(h, work, dout, v, 1.0f, BH, L, dh), what) < 0 ||
        attn_blas(attn_gemm_ptx(h, dv, att, dout, 1.0f, BH, L, dh), what) < 0)
        return -1;
    attn_softmax_backward_kernel<<<attn_row_blocks(rows), OPS_THREADS>>>(work, att, rows, L);
    if (ops_check(what) < 0) return -1;
    // dq += scale dS k; dk += scale dS^T q
    if (attn_blas(attn_gemm_px(h, dq, work, k, scale, 1.0f, BH, L, dh), what) < 0 ||
        attn_blas(attn_gemm_ptx(h, dk, work, q, scale, BH, L, dh), what) < 0)
        return -1;
    if (!dbias) return 0;
    long long LL = (long long)L * L;
    return ops_for((size_t)H * LL, AttnDbias{dbias, work, B, H, LL}, what);
}

// Rotary: one thread per unit of a row of dh, a unit being a rotated
// pair (both outputs from one thread, so out may equal inp) or one
// passed-through feature. sgn = -1 rotates back (the backward).
struct Rotary {
    float *out; const float *inp, *cs; int L, dh, half, units; float sgn; int accumulate;
    __device__ void operator()(size_t t) const {
        size_t bl = t / (size_t)units;
        int u = (int)(t % (size_t)units);
        const float *x = inp + bl * dh;
        float *y = out + bl * dh;
        if (u < half) {
            const float *c = cs + ((bl % (size_t)L) * half + u) * 2;
            float co = c[0], si = sgn * c[1];
            float x0 = x[2 * u], x1 = x[2 * u + 1];
            float y0 = x0 * co - x1 * si, y1 = x1 * co + x0 * si;
            if (accumulate) y[2 * u] += y0, y[2 * u + 1] += y1;
            else y[2 * u] = y0, y[2 * u + 1] = y1;
        } else {
            int d = 2 * half + (u - half);
            y[d] = accumulate ? y[d] + x[d] : x[d];
        }
    }
};

static int rotary_run(float *out, const float *inp, const float *cs, int B, int L, int dh, int rot_dim,
                      float sgn, int accumulate, const char *what) {
    if (B < 1 || L < 1 || dh < 1 || rot_dim < 0 || rot_dim % 2 || rot_dim > dh)
        return lsdm_err("%s: bad sizes B %d L %d dh %d rot_dim %d", what, B, L, dh, rot_dim);
    int half = rot_dim / 2, units = half + dh - rot_dim;
    return ops_for((size_t)B * L * units, Rotary{out, inp, cs, L, dh, half, units, sgn, accumulate}, what);
}

extern "C" int rotary_forward_cuda(float *out, const float *inp, const float *cs, int B, int L, int dh,
                                   int rot_dim) {
    return rotary_run(out, inp, cs, B, L, dh, rot_dim, 1.0f, 0, "rotary_forward_cuda");
}

extern "C" int rotary_backward_cuda(float *dinp, const float *dout, const float *cs, int B, int L, int dh,
                                    int rot_dim) {
    return rotary_run(dinp, dout, cs, B, L, dh, rot_dim, -1.0f, 1, "rotary_backward_cuda");
}

// Buckets of n = |rel| = 0..L-1 for rel <= 0 (the other sign adds
// num_buckets/2), run-length encoded: n in [start[r], start[r+1]) has
// bucket val[r]. relpos_bucket's value for n is capped at num_buckets/2-1,
// so the runs are few (one per exact distance, one per log bucket).
#define RELPOS_RUNS 256
typedef struct {
    int start[RELPOS_RUNS], val[RELPOS_RUNS];
    int runs, half;
} relpos_runs;

static int relpos_runs_init(relpos_runs *rr, int H, int L, int num_buckets, int max_distance,
                            const char *what) {
    if (H < 1 || L < 1 || num_buckets < 2 || max_distance < 1)
        return lsdm_err("%s: bad sizes H %d L %d num_buckets %d max_distance %d", what, H, L, num_buckets,
                        max_distance);
    rr->runs = 0;
    rr->half = num_buckets / 2;
    for (int n = 0; n < L; n++) {
        int b = relpos_bucket(-n, num_buckets, max_distance);
        if (rr->runs && rr->val[rr->runs - 1] == b) continue;
        if (rr->runs == RELPOS_RUNS)
            return lsdm_err("%s: more than %d bucket runs (num_buckets %d)", what, RELPOS_RUNS, num_buckets);
        rr->start[rr->runs] = n;
        rr->val[rr->runs++] = b;
    }
    return 0;
}

__device__ inline int relpos_device_bucket(const relpos_runs &rr, int rel) {
    // the last run starting at or before n (start[0] = 0)
    int n = rel < 0 ? -rel : rel, lo = 0, hi = rr.runs - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (rr.start[mid] <= n) lo = mid;
        else hi = mid - 1;
    }
    return (rel > 0 ? rr.half : 0) + rr.val[lo];
}

// bias (H, L, L)[h,i,j] = table (num_buckets, H)[bucket(j-i), h]
__global__ void relpos_forward_kernel(float *bias, const float *table, relpos_runs rr, int H, int L) {
    size_t n = (size_t)H * L * L;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x) {
        int j = (int)(e % L), i = (int)((e / L) % L), h = (int)(e / ((size_t)L * L));
        bias[e] = table[(size_t)relpos_device_bucket(rr, j - i) * H + h];
    }
}

// dtable[bk, h] += the dbias (H, L, L) values of every (i, j) with
// bucket(j - i) = bk: block (bk, h), rel in order, threads over i, then a
// fixed-order block sum. Entries no pair reaches are left as they are.
__global__ void relpos_backward_kernel(float *dtable, const float *dbias, relpos_runs rr, int H, int L) {
    __shared__ double sh[32];
    int bk = blockIdx.x / H, h = blockIdx.x % H;
    const float *g = dbias + (size_t)h * L * L;
    double s = 0;
    int hit = 0;
    for (int rel = -(L - 1); rel <= L - 1; rel++) {
        if (relpos_device_bucket(rr, rel) != bk) continue; // the same for the whole block
        hit = 1;
        int i0 = rel < 0 ? -rel : 0, cnt = L - (rel < 0 ? -rel : rel);
        for (int t = threadIdx.x; t < cnt; t += blockDim.x) {
            int i = i0 + t;
            s += g[(size_t)i * L + (i + rel)];
        }
    }
    if (!hit) return;
    s = ops_block_sum(s, sh);
    if (threadIdx.x == 0) dtable[(size_t)bk * H + h] += (float)s;
}

extern "C" int relpos_bias_forward_cuda(float *bias, const float *table, int H, int L, int num_buckets,
                                        int max_distance) {
    const char *what = "relpos_bias_forward_cuda";
    relpos_runs rr;
    if (relpos_runs_init(&rr, H, L, num_buckets, max_distance, what) < 0) return -1;
    relpos_forward_kernel<<<ops_blocks((size_t)H * L * L), OPS_THREADS>>>(bias, table, rr, H, L);
    return ops_check(what);
}

extern "C" int relpos_bias_backward_cuda(float *dtable, const float *dbias, int H, int L, int num_buckets,
                                         int max_distance) {
    const char *what = "relpos_bias_backward_cuda";
    relpos_runs rr;
    if (relpos_runs_init(&rr, H, L, num_buckets, max_distance, what) < 0) return -1;
    if ((long long)num_buckets * H > INT_MAX) return lsdm_err("%s: table too large", what);
    relpos_backward_kernel<<<num_buckets * H, OPS_THREADS>>>(dtable, dbias, rr, H, L);
    return ops_check(what);
}

// Permutation: output element o (output shape, row-major) reads input
// offset sum_a coord_a(o) * ostride[a], ostride = the input stride of the
// axis that output axis a comes from.
typedef struct {
    int ndim;
    long long oshape[PERMUTE_MAX_DIM], ostride[PERMUTE_MAX_DIM];
} permute_map;

static int permute_map_init(permute_map *pm, size_t *n, int ndim, const int *shape, const int *perm,
                            const char *what) {
    if (ndim < 1 || ndim > PERMUTE_MAX_DIM) return lsdm_err("%s: %d axes (1..%d)", what, ndim, PERMUTE_MAX_DIM);
    long long istride[PERMUTE_MAX_DIM], s = 1;
    int seen[PERMUTE_MAX_DIM] = {0};
    for (int a = ndim - 1; a >= 0; a--) {
        if (shape[a] < 1) return lsdm_err("%s: axis %d has size %d", what, a, shape[a]);
        istride[a] = s;
        s *= shape[a];
    }
    for (int a = 0; a < ndim; a++) {
        if (perm[a] < 0 || perm[a] >= ndim || seen[perm[a]]++)
            return lsdm_err("%s: perm is not a permutation of 0..%d", what, ndim - 1);
        pm->oshape[a] = shape[perm[a]];
        pm->ostride[a] = istride[perm[a]];
    }
    pm->ndim = ndim;
    *n = (size_t)s;
    return 0;
}

__device__ inline size_t permute_offset(const permute_map &pm, size_t o) {
    size_t off = 0;
    for (int a = pm.ndim - 1; a >= 0; a--) {
        off += (o % pm.oshape[a]) * pm.ostride[a];
        o /= pm.oshape[a];
    }
    return off;
}

// out[o] = inp[offset(o)], or (backward) dinp[offset(o)] += dout[o]: a
// bijection, so no two threads write the same element.
__global__ void permute_kernel(float *dst, const float *src, permute_map pm, size_t n, int backward) {
    for (size_t o = blockIdx.x * (size_t)blockDim.x + threadIdx.x; o < n; o += (size_t)gridDim.x * blockDim.x) {
        size_t off = permute_offset(pm, o);
        if (backward) dst[off] += src[o];
        else dst[o] = src[off];
    }
}

static int permute_run(float *dst, const float *src, int ndim, const int *shape, const int *perm, int backward,
                       const char *what) {
    permute_map pm;
    size_t n = 0;
    if (permute_map_init(&pm, &n, ndim, shape, perm, what) < 0) return -1;
    permute_kernel<<<ops_blocks(n), OPS_THREADS>>>(dst, src, pm, n, backward);
    return ops_check(what);
}

extern "C" int permute_forward_cuda(float *out, const float *inp, int ndim, const int *shape, const int *perm) {
    return permute_run(out, inp, ndim, shape, perm, 0, "permute_forward_cuda");
}

extern "C" int permute_backward_cuda(float *dinp, const float *dout, int ndim, const int *shape,
                                     const int *perm) {
    return permute_run(dinp, dout, ndim, shape, perm, 1, "permute_backward_cuda");
}
