// 3D convolution on CUDA with cuDNN 9 (legacy convolution API, N-d
// descriptors, cross-correlation as PyTorch), the semantics of
// kernels/conv3d.h, checked against the CPU by tests/c/test_cuda_ops.c.
//
// Plan: for a given conv3d_dims, cuDNN's heuristics (the *_v7 getters)
// rank the algorithms of forward, backward-data and backward-filter; for
// each we take the first one that succeeds, preferring deterministic ones,
// whose workspace is at most CONV3D_CUDA_WS_CAP. The plan (algorithms and
// workspace sizes) is memoised in a small table keyed by the sizes, so the
// size query and every call agree, and the heuristics run once per shape.
//
// Replicate padding: cuDNN pads with zeros only, so the input is padded
// explicitly into the head of `work` and convolved without padding; the
// data gradient of the padded input goes to the same place and is folded
// back onto the edge voxels it was read from.
//
// Full fp32 (CUDNN_FMA_MATH) unless LSDM_TF32=1 (then cuDNN may use TF32
// tensor cores). Everything runs on the default stream, no synchronisation.
#ifndef LSDM_CUDA
#define LSDM_CUDA 1 /* NVFLAGS do not carry CPPFLAGS: see the _cuda declarations */
#endif
#include <limits.h>
#include <pthread.h>
#include <string.h>

#include "ops_common.cuh"
extern "C" {
#include "conv3d.h"
}

#define CONV3D_CUDA_WS_CAP ((size_t)1 << 30) // bytes of cuDNN workspace at most
#define CONV_PLANS 64                         // memoised shapes

enum { CONV_FWD, CONV_BWD_DATA, CONV_BWD_FILTER, CONV_OPS };

typedef struct {
    int key[21];                 // sizes, padding mode, TF32 flag, device
    int algo[CONV_OPS];          // chosen algorithm per op
    cudnnMathType_t math[CONV_OPS];
    size_t ws[CONV_OPS];         // its workspace, bytes
} conv_plan;

static pthread_mutex_t conv_plans_lock = PTHREAD_MUTEX_INITIALIZER;
static conv_plan conv_plans[CONV_PLANS];
static int conv_plans_used, conv_plans_next;

// Descriptors of one call: x is the (possibly padded) input.
typedef struct {
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t c;
} conv_desc;

static int conv_cudnn(cudnnStatus_t s, const char *what) {
    return s == CUDNN_STATUS_SUCCESS ? 0 : lsdm_err("%s: %s", what, cudnnGetErrorString(s));
}

// Replicate padding that actually pads (zero-width padding needs nothing).
static int conv_replicates(const conv3d_dims *d) {
    return d->pad_mode == CONV3D_PAD_REPLICATE && (d->pd || d->ph || d->pw);
}

// Elements of the explicitly padded input, rounded up to 64 floats so the
// cuDNN workspace after it stays 256-byte aligned.
static size_t conv_pad_floats(const conv3d_dims *d) {
    if (!conv_replicates(d)) return 0;
    size_t n = (size_t)d->N * d->Cin * (d->D + 2 * d->pd) * (d->H + 2 * d->ph) * (d->W + 2 * d->pw);
    return (n + 63) / 64 * 64;
}

static void conv_desc_free(conv_desc *cd) {
    if (cd->x) cudnnDestroyTensorDescriptor(cd->x);
    if (cd->y) cudnnDestroyTensorDescriptor(cd->y);
    if (cd->w) cudnnDestroyFilterDescriptor(cd->w);
    if (cd->c) cudnnDestroyConvolutionDescriptor(cd->c);
    memset(cd, 0, sizeof *cd);
}

static void conv_packed_strides(const int *dim, int *stride) {
    stride[4] = 1;
    for (int i = 3; i >= 0; i--) stride[i] = stride[i + 1] * dim[i + 1];
}

static int conv_desc_init(conv_desc *cd, const conv3d_dims *d) {
    const char *what = "conv3d_cuda";
    memset(cd, 0, sizeof *cd);
    if (d->OD < 1 || d->OH < 1 || d->OW < 1 || d->sd < 1 || d->dd < 1)
        return lsdm_err("%s: dims not initialised (call conv3d_dims_init)", what);
    int rep = conv_replicates(d);
    long long xd[5] = {d->N, d->Cin, d->D + (rep ? 2 * d->pd : 0), d->H + (rep ? 2 * d->ph : 0),
                       d->W + (rep ? 2 * d->pw : 0)};
    long long yd[5] = {d->N, d->Cout, d->OD, d->OH, d->OW};
    long long nx = 1, ny = 1;
    for (int i = 0; i < 5; i++) nx *= xd[i], ny *= yd[i];
    if (nx > INT_MAX || ny > INT_MAX)
        return lsdm_err("%s: tensor of %lld elements too large for cuDNN (split the batch)", what,
                        nx > ny ? nx : ny);
    int xdim[5], ydim[5], xs[5], ys[5];
    for (int i = 0; i < 5; i++) xdim[i] = (int)xd[i], ydim[i] = (int)yd[i];
    conv_packed_strides(xdim, xs);
    conv_packed_strides(ydim, ys);
    int wdim[5] = {d->Cout, d->Cin, d->kd, d->kh, d->kw};
    int pad[3] = {rep ? 0 : d->pd, rep ? 0 : d->ph, rep ? 0 : d->pw};
    int stride[3] = {d->sd, d->sh, d->sw}, dil[3] = {d->dd, d->dh, d->dw};
    cudnnMathType_t math = lsdm_cuda_tf32() ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
    int got[5];
    if (conv_cudnn(cudnnCreateTensorDescriptor(&cd->x), what) < 0 ||
        conv_cudnn(cudnnCreateTensorDescriptor(&cd->y), what) < 0 ||
        conv_cudnn(cudnnCreateFilterDescriptor(&cd->w), what) < 0 ||
        conv_cudnn(cudnnCreateConvolutionDescriptor(&cd->c), what) < 0 ||
        conv_cudnn(cudnnSetTensorNdDescriptor(cd->x, CUDNN_DATA_FLOAT, 5, xdim, xs), what) < 0 ||
        conv_cudnn(cudnnSetTensorNdDescriptor(cd->y, CUDNN_DATA_FLOAT, 5, ydim, ys), what) < 0 ||
        conv_cudnn(cudnnSetFilterNdDescriptor(cd->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 5, wdim), what) < 0 ||
        conv_cudnn(cudnnSetConvolutionNdDescriptor(cd->c, 3, pad, stride, dil, CUDNN_CROSS_CORRELATION,
                                                   CUDNN_DATA_FLOAT), what) < 0 ||
        conv_cudnn(cudnnSetConvolutionMathType(cd->c, math), what) < 0 ||
        conv_cudnn(cudnnGetConvolutionNdForwardOutputDim(cd->c, cd->x, cd->w, 5, got), what) < 0) {
        conv_desc_free(cd);
        return -1;
    }
    if (memcmp(got, ydim, sizeof got) != 0) {
        conv_desc_free(cd);
        return lsdm_err("%s: cuDNN output %dx%dx%d differs from conv3d_dims' %dx%dx%d", what, got[2],
                        got[3], got[4], d->OD, d->OH, d->OW);
    }
    return 0;
}

// One ranked candidate of any of the three ops.
typedef struct {
    int algo;
    cudnnMathType_t math;
    int deterministic;
} conv_cand;

// Candidates of `op` in cuDNN's order, successful ones only; cand holds 8.
static int conv_candidates(cudnnHandle_t h, const conv_desc *cd, int op, conv_cand *cand, int *n) {
    const char *what = "conv3d_cuda: algorithm heuristics";
    int got = 0;
    *n = 0;
    if (op == CONV_FWD) {
        cudnnConvolutionFwdAlgoPerf_t p[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        if (conv_cudnn(cudnnGetConvolutionForwardAlgorithm_v7(h, cd->x, cd->w, cd->c, cd->y,
                                                              CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, p), what) < 0)
            return -1;
        for (int i = 0; i < got; i++)
            if (p[i].status == CUDNN_STATUS_SUCCESS)
                cand[(*n)++] = {(int)p[i].algo, p[i].mathType, p[i].determinism == CUDNN_DETERMINISTIC};
    } else if (op == CONV_BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t p[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
        if (conv_cudnn(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, cd->w, cd->y, cd->c, cd->x,
                                                                   CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got, p), what) < 0)
            return -1;
        for (int i = 0; i < got; i++)
            if (p[i].status == CUDNN_STATUS_SUCCESS)
                cand[(*n)++] = {(int)p[i].algo, p[i].mathType, p[i].determinism == CUDNN_DETERMINISTIC};
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t p[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
        if (conv_cudnn(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, cd->x, cd->y, cd->c, cd->w,
                                                                     CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &got, p), what) < 0)
            return -1;
        for (int i = 0; i < got; i++)
            if (p[i].status == CUDNN_STATUS_SUCCESS)
                cand[(*n)++] = {(int)p[i].algo, p[i].mathType, p[i].determinism == CUDNN_DETERMINISTIC};
    }
    return 0;
}

// Workspace bytes of algo for op under the descriptor's current math type.
static cudnnStatus_t conv_ws_size(cudnnHandle_t h, const conv_desc *cd, int op, int algo, size_t *bytes) {
    if (op == CONV_FWD)
        return cudnnGetConvolutionForwardWorkspaceSize(h, cd->x, cd->w, cd->c, cd->y,
                                                       (cudnnConvolutionFwdAlgo_t)algo, bytes);
    if (op == CONV_BWD_DATA)
        return cudnnGetConvolutionBackwardDataWorkspaceSize(h, cd->w, cd->y, cd->c, cd->x,
                                                            (cudnnConvolutionBwdDataAlgo_t)algo, bytes);
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, cd->x, cd->y, cd->c, cd->w,
                                                          (cudnnConvolutionBwdFilterAlgo_t)algo, bytes);
}

// fp32 math unless TF32 is allowed, then what the heuristics ranked with.
static cudnnMathType_t conv_math(cudnnMathType_t ranked) {
    return lsdm_cuda_tf32() ? ranked : CUDNN_FMA_MATH;
}

// First usable candidate of op, deterministic ones first.
static int conv_choose(cudnnHandle_t h, const conv_desc *cd, int op, conv_plan *p) {
    conv_cand cand[8];
    int n;
    if (conv_candidates(h, cd, op, cand, &n) < 0) return -1;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++) {
            if (cand[i].deterministic != (pass == 0)) continue;
            size_t bytes = 0;
            cudnnMathType_t m = conv_math(cand[i].math);
            if (cudnnSetConvolutionMathType(cd->c, m) != CUDNN_STATUS_SUCCESS) continue;
            if (conv_ws_size(h, cd, op, cand[i].algo, &bytes) != CUDNN_STATUS_SUCCESS) continue;
            if (bytes > CONV3D_CUDA_WS_CAP) continue;
            p->algo[op] = cand[i].algo;
            p->math[op] = m;
            p->ws[op] = bytes;
            return 0;
        }
    static const char *const names[CONV_OPS] = {"forward", "backward data", "backward filter"};
    return lsdm_err("conv3d_cuda: no cuDNN %s algorithm for this shape", names[op]);
}

static void conv_key(int *key, const conv3d_dims *d) {
    int dev = 0;
    cudaGetDevice(&dev);
    int k[21] = {d->N, d->Cin, d->D, d->H, d->W, d->Cout, d->kd, d->kh, d->kw, d->sd, d->sh,
                 d->sw, d->pd, d->ph, d->pw, d->dd, d->dh, d->dw, d->pad_mode, lsdm_cuda_tf32(), dev};
    memcpy(key, k, sizeof k);
}

// The plan of d: from the table, or chosen now and remembered.
static int conv_plan_get(conv_plan *out, cudnnHandle_t h, const conv_desc *cd, const conv3d_dims *d) {
    conv_plan p;
    memset(&p, 0, sizeof p);
    conv_key(p.key, d);
    pthread_mutex_lock(&conv_plans_lock);
    for (int i = 0; i < conv_plans_used; i++)
        if (memcmp(conv_plans[i].key, p.key, sizeof p.key) == 0) {
            *out = conv_plans[i];
            pthread_mutex_unlock(&conv_plans_lock);
            return 0;
        }
    pthread_mutex_unlock(&conv_plans_lock);
    for (int op = 0; op < CONV_OPS; op++)
        if (conv_choose(h, cd, op, &p) < 0) return -1;
    pthread_mutex_lock(&conv_plans_lock);
    conv_plans[conv_plans_next] = p;
    conv_plans_next = (conv_plans_next + 1) % CONV_PLANS;
    if (conv_plans_used < CONV_PLANS) conv_plans_used++;
    pthread_mutex_unlock(&conv_plans_lock);
    *out = p;
    return 0;
}

static size_t conv_ws_max(const conv_plan *p) {
    size_t m = 0;
    for (int op = 0; op < CONV_OPS; op++) m = p->ws[op] > m ? p->ws[op] : m;
    return m;
}

// Everything a call needs: handle, descriptors, plan. Free cd after.
static int conv_setup(cudnnHandle_t *h, conv_desc *cd, conv_plan *p, const conv3d_dims *d) {
    if (lsdm_cudnn_handle(h) < 0 || conv_desc_init(cd, d) < 0) return -1;
    if (conv_plan_get(p, *h, cd, d) < 0) {
        conv_desc_free(cd);
        return -1;
    }
    return 0;
}

// Padded input (N*Cin, D+2pd, H+2ph, W+2pw) from the input, replicating
// the edge voxels.
struct ConvPad {
    float *xp; const float *x; int D, H, W, pd, ph, pw;
    __device__ void operator()(size_t i) const {
        int Wp = W + 2 * pw, Hp = H + 2 * ph, Dp = D + 2 * pd;
        int zw = (int)(i % Wp), zh = (int)((i / Wp) % Hp), zd = (int)((i / ((size_t)Wp * Hp)) % Dp);
        size_t nc = i / ((size_t)Wp * Hp * Dp);
        int id = min(max(zd - pd, 0), D - 1), ih = min(max(zh - ph, 0), H - 1), iw = min(max(zw - pw, 0), W - 1);
        xp[i] = x[((nc * D + id) * H + ih) * W + iw];
    }
};

// dx[v] += the gradients of every padded voxel that replicated v: the
// voxel itself and, on an edge, the padding beyond that edge. A gather
// (one thread per input voxel), so no atomics.
struct ConvFold {
    float *dx; const float *gp; int D, H, W, pd, ph, pw;
    __device__ void operator()(size_t i) const {
        int Wp = W + 2 * pw, Hp = H + 2 * ph, Dp = D + 2 * pd;
        int iw = (int)(i % W), ih = (int)((i / W) % H), id = (int)((i / ((size_t)W * H)) % D);
        size_t nc = i / ((size_t)W * H * D);
        int d0 = id == 0 ? 0 : id + pd, d1 = id == D - 1 ? Dp - 1 : id + pd;
        int h0 = ih == 0 ? 0 : ih + ph, h1 = ih == H - 1 ? Hp - 1 : ih + ph;
        int w0 = iw == 0 ? 0 : iw + pw, w1 = iw == W - 1 ? Wp - 1 : iw + pw;
        float s = 0;
        for (int zd = d0; zd <= d1; zd++)
            for (int zh = h0; zh <= h1; zh++) {
                const float *row = gp + ((nc * Dp + zd) * Hp + zh) * Wp;
                for (int zw = w0; zw <= w1; zw++) s += row[zw];
            }
        dx[i] += s;
    }
};

struct ConvBias {
    float *out; const float *bias; int Cout; size_t So;
    __device__ void operator()(size_t i) const { out[i] += bias[(i / So) % (size_t)Cout]; }
};

// dbias[co] += sum over n and the output voxels of dout: block per channel.
__global__ void conv_dbias_kernel(float *dbias, const float *dout, int N, int Cout, size_t So) {
    __shared__ double sh[32];
    int co = blockIdx.x;
    double s = 0;
    for (int n = 0; n < N; n++) {
        const float *g = dout + ((size_t)n * Cout + co) * So;
        for (size_t i = threadIdx.x; i < So; i += blockDim.x) s += g[i];
    }
    s = ops_block_sum(s, sh);
    if (threadIdx.x == 0) dbias[co] += (float)s;
}

static int conv_pad_input(float *xp, const float *x, const conv3d_dims *d) {
    size_t n = (size_t)d->N * d->Cin * (d->D + 2 * d->pd) * (d->H + 2 * d->ph) * (d->W + 2 * d->pw);
    return ops_for(n, ConvPad{xp, x, d->D, d->H, d->W, d->pd, d->ph, d->pw}, "conv3d_cuda: padding");
}

extern "C" int conv3d_workspace_size_cuda(size_t *floats, const conv3d_dims *d) {
    cudnnHandle_t h;
    conv_desc cd;
    conv_plan p;
    if (conv_setup(&h, &cd, &p, d) < 0) return -1;
    conv_desc_free(&cd);
    *floats = conv_pad_floats(d) + (conv_ws_max(&p) + sizeof(float) - 1) / sizeof(float);
    return 0;
}

extern "C" int conv3d_forward_beta_cuda(float *out, float *work, const float *inp, const float *weight,
                                        const float *bias, const conv3d_dims *d, float beta) {
    const char *what = "conv3d_forward_cuda";
    cudnnHandle_t h;
    conv_desc cd;
    conv_plan p;
    if (conv_setup(&h, &cd, &p, d) < 0) return -1;
    size_t padf = conv_pad_floats(d);
    const float *x = inp;
    int rc = 0;
    if (padf) {
        rc = conv_pad_input(work, inp, d);
        x = work;
    }
    const float one = 1.0f;
    if (rc == 0) rc = conv_cudnn(cudnnSetConvolutionMathType(cd.c, p.math[CONV_FWD]), what);
    // beta 0: cuDNN writes out without reading it (NaN garbage is fine)
    if (rc == 0)
        rc = conv_cudnn(cudnnConvolutionForward(h, &one, cd.x, x, cd.w, weight, cd.c,
                                                (cudnnConvolutionFwdAlgo_t)p.algo[CONV_FWD], work + padf,
                                                p.ws[CONV_FWD], &beta, cd.y, out), what);
    conv_desc_free(&cd);
    if (rc < 0 || !bias) return rc;
    size_t So = (size_t)d->OD * d->OH * d->OW;
    return ops_for((size_t)d->N * d->Cout * So, ConvBias{out, bias, d->Cout, So}, what);
}

extern "C" int conv3d_forward_cuda(float *out, float *work, const float *inp, const float *weight,
                                   const float *bias, const conv3d_dims *d) {
    return conv3d_forward_beta_cuda(out, work, inp, weight, bias, d, 0.0f);
}

extern "C" int conv3d_backward_cuda(float *dinp, float *dweight, float *dbias, float *work,
                                    const float *dout, const float *inp, const float *weight,
                                    const conv3d_dims *d) {
    const char *what = "conv3d_backward_cuda";
    size_t So = (size_t)d->OD * d->OH * d->OW;
    if (dbias) {
        if (d->N < 1 || d->Cout < 1 || So < 1)
            return lsdm_err("%s: dims not initialised (call conv3d_dims_init)", what);
        conv_dbias_kernel<<<d->Cout, OPS_THREADS>>>(dbias, dout, d->N, d->Cout, So);
        if (ops_check(what) < 0) return -1;
    }
    if (!dinp && !dweight) return 0;
    cudnnHandle_t h;
    conv_desc cd;
    conv_plan p;
    if (conv_setup(&h, &cd, &p, d) < 0) return -1;
    size_t padf = conv_pad_floats(d);
    const float one = 1.0f, zero = 0.0f;
    int rc = 0;
    // the weight gradient first: with replicate padding it reads the padded
    // input from `work`, which the data gradient then overwrites
    if (dweight) {
        const float *x = inp;
        if (padf) {
            rc = conv_pad_input(work, inp, d);
            x = work;
        }
        if (rc == 0) rc = conv_cudnn(cudnnSetConvolutionMathType(cd.c, p.math[CONV_BWD_FILTER]), what);
        if (rc == 0)
            rc = conv_cudnn(cudnnConvolutionBackwardFilter(h, &one, cd.x, x, cd.y, dout, cd.c,
                                                           (cudnnConvolutionBwdFilterAlgo_t)p.algo[CONV_BWD_FILTER],
                                                           work + padf, p.ws[CONV_BWD_FILTER], &one, cd.w,
                                                           dweight), what);
    }
    if (rc == 0 && dinp) {
        rc = conv_cudnn(cudnnSetConvolutionMathType(cd.c, p.math[CONV_BWD_DATA]), what);
        // zero padding: accumulate straight into dinp (beta = 1); replicate:
        // the padded gradient into work (beta = 0), then fold it onto dinp
        if (rc == 0)
            rc = conv_cudnn(cudnnConvolutionBackwardData(h, &one, cd.w, weight, cd.y, dout, cd.c,
                                                         (cudnnConvolutionBwdDataAlgo_t)p.algo[CONV_BWD_DATA],
                                                         work + padf, p.ws[CONV_BWD_DATA], padf ? &zero : &one,
                                                         cd.x, padf ? work : dinp), what);
        if (rc == 0 && padf)
            rc = ops_for((size_t)d->N * d->Cin * d->D * d->H * d->W,
                         ConvFold{dinp, work, d->D, d->H, d->W, d->pd, d->ph, d->pw}, what);
    }
    conv_desc_free(&cd);
    return rc;
}
