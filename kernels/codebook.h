/* The VQ-GAN's vector-quantisation codebook (reference: Med-LSDM
 * vq_gan_3d/model/codebook.py, the TATS EMA codebook) as plain functions.
 *
 * z is the encoder output channel-first, (N,C,S) with S = D*H*W and C the
 * embedding dimension; "vector (n,s)" is z[n,:,s], M = N*S vectors in all,
 * numbered m = n*S + s. emb is the codebook (K,C). Indices are int32 (N,S).
 *
 * Forward:  codebook_nearest  idx = argmin_k ||z - emb_k||^2
 *           codebook_lookup   zq = emb[idx], back to (N,C,S)
 *           codebook_commitment_forward  beta * mean((z - zq)^2)
 * Backward: codebook_commitment_backward, the straight-through estimator
 *           plus the commitment gradient; it ACCUMULATES (+=) into dz,
 *           callers zero it. The codebook gets no gradient (EMA instead).
 * Training: codebook_init on the first batch, codebook_ema_update after
 *           every forward, codebook_perplexity for the progress line.
 *
 * Randomness (init, restarts) comes only from libshared/rng.h's Philox:
 * a call takes (seed, stream, offset) and uses exactly the blocks
 * [offset, offset + codebook_rng_blocks(M, K, C)) of that stream, so a
 * training step is reproducible and resumable from its step number alone
 * (e.g. stream = a purpose constant, offset = step * codebook_rng_blocks).
 * Within the range: block offset + i (i < K) gives the i-th swap of a
 * partial Fisher-Yates shuffle (words 0,1 as one 64-bit number); blocks
 * offset + K + e/4 give the normal noise of element e = j*C + c of the
 * tiled inputs (rng.h's layout of normals), only when M < K.
 *
 * Sizes are validated: functions return 0 (or a count, see each) and -1
 * with lsdm_err on nonsense. Workspaces are float arrays sized by the
 * matching _workspace_size (no allocation inside). */
#ifndef LSDM_CODEBOOK_H
#define LSDM_CODEBOOK_H

#include <stddef.h>
#include <stdint.h>

/* Floats of codebook_nearest's workspace: the codebook transposed to
 * (C, Kp) and half its squared norms (Kp), Kp = K rounded up to 16.
 * Independent of the number of vectors: no M x K distance matrix. */
size_t codebook_workspace_size(int K, int C);

/* idx[m] = argmin_k ||z_m - emb_k||^2, ties to the lowest k (as
 * torch.argmin). mindist (N,S) may be NULL; else it gets the squared
 * distance to the chosen code (computed as ||z||^2 + ||e||^2 - 2 z.e,
 * like the reference, so it can be slightly negative by rounding).
 * Distances are compared as 0.5||e||^2 - z.e in float (AVX-512 with FMA
 * where the CPU has it, LSDM_CPU_ISA=generic forces plain C): equal
 * distances tie exactly, near-equal ones (within float rounding) may
 * resolve differently from PyTorch or between ISAs.
 * NaN: a vector with no finite distance to any code (NaN or Inf in it,
 * or every code's distance NaN/overflowing) gets idx 0, a valid index,
 * and mindist NaN; codes with a NaN/Inf component are never chosen.
 * Returns the number of such vectors (0 normally, so callers can detect
 * NaN input), or -1 on bad sizes. Threads: OpenMP over vectors; the
 * result does not depend on the thread count. */
int codebook_nearest(int32_t *idx, float *mindist, float *work, const float *z, const float *emb,
                     int N, int C, long S, int K);

/* zq (N,C,S) = emb[idx] (the reference's F.embedding + shift_dim).
 * -1 if an index is outside [0,K). */
int codebook_lookup(float *zq, const int32_t *idx, const float *emb, int N, int C, long S, int K);
int codebook_lookup_f64(double *zq, const int32_t *idx, const double *emb, int N, int C, long S, int K);

/* beta * mean((z - zq)^2) over the n = N*C*S elements (reference beta
 * 0.25), summed in double. */
double codebook_commitment_forward(const float *z, const float *zq, size_t n, double beta);
/* dz += dzq + scale * beta * 2 (z - zq) / n: dzq is the gradient reaching
 * the straight-through output zq_st = z + (zq - z).detach(), which passes
 * unchanged to z (NULL: none); scale is dLtotal/dcommitment. */
void codebook_commitment_backward(float *dz, const float *dzq, const float *z, const float *zq,
                                  size_t n, float beta, float scale);
double codebook_commitment_forward_f64(const double *z, const double *zq, size_t n, double beta);
void codebook_commitment_backward_f64(double *dz, const double *dzq, const double *z, const double *zq,
                                      size_t n, double beta, double scale);

/* EMA update settings; codebook_ema_params_reference() gives the
 * reference run's: decay 0.99, restart_thres 1.0, restarts on. */
typedef struct {
    double decay;
    double restart_thres; /* a code with EMA count N_k below this is restarted */
    int restart;          /* 0: no random restarts (no_random_restart) */
} codebook_ema_params;

codebook_ema_params codebook_ema_params_reference(void);

/* Philox blocks one init or update call consumes (see above). */
uint64_t codebook_rng_blocks(long M, int K, int C);
/* Floats of the init/update workspace: EMA sums in double (2*K*(C+1)
 * floats) and the shuffle's index array (T int32, T = M*ceil(K/M) when
 * M < K, else M). */
size_t codebook_ema_workspace_size(long M, int K, int C);

/* The reference's _init_embeddings on the first training batch:
 * emb = z_avg = K rows of a random permutation of the tiled inputs (the
 * M vectors of z, repeated ceil(K/M) times with N(0, (0.01/sqrt(C))^2)
 * noise when M < K), ema_n = 1. */
int codebook_init(float *emb, float *ema_n, float *z_avg, float *work, const float *z,
                  int N, int C, long S, int K, uint64_t seed, uint64_t stream, uint64_t offset);

/* One EMA step with random restarts, in the reference's order:
 *   n_k = #{m : idx[m] = k}, sum_k = sum of the z_m with idx[m] = k
 *   ema_n = decay*ema_n + (1-decay)*n;  z_avg = decay*z_avg + (1-decay)*sum
 *   n = sum_k ema_n_k;  w_k = (ema_n_k + 1e-7) / (n + K*1e-7) * n
 *   emb_k = z_avg_k / w_k
 *   emb_k = ema_n_k >= restart_thres ? emb_k : y_k   (if p->restart)
 * where y_k are the first K rows of a random permutation of the tiled
 * inputs (as codebook_init). Sums in double, stored in float.
 * Returns the number of codes restarted (>= 0), or -1 (bad sizes or an
 * index outside [0,K): nothing is changed then). */
int codebook_ema_update(float *emb, float *ema_n, float *z_avg, float *work, const float *z,
                        const int32_t *idx, int N, int C, long S, int K, const codebook_ema_params *p,
                        uint64_t seed, uint64_t stream, uint64_t offset);

/* Code usage of a batch: *perplexity = exp(-sum_k p_k log(p_k + 1e-10))
 * with p_k = n_k / M (the reference's), *used = number of codes with
 * n_k > 0. counts: K int32 of workspace. -1 on an index outside [0,K). */
int codebook_perplexity(double *perplexity, int *used, int32_t *counts, const int32_t *idx, long M, int K);

#ifdef LSDM_CUDA
/* CUDA versions (kernels/cuda/codebook.cu): every pointer is device
 * memory, work has codebook_workspace_size(K, C) floats. Same semantics
 * as the CPU: ties to the lowest k, NaN vectors get idx 0 and mindist NaN
 * (not counted: returns 0), deterministic (one thread per vector scans
 * the codes in order). C <= 64. Float rounding differs from the CPU's, so
 * near-ties may resolve differently. codebook_lookup_cuda writes NaN for
 * an index outside [0,K) (it cannot report it without a sync). The EMA
 * update stays on the CPU: copy idx and z back (small). */
int codebook_nearest_cuda(int32_t *idx, float *mindist, float *work, const float *z, const float *emb,
                          int N, int C, long S, int K);
int codebook_lookup_cuda(float *zq, const int32_t *idx, const float *emb, int N, int C, long S, int K);
/* *loss (host) = beta * mean((z - zq)^2); dwork: 2 doubles of device memory. */
int codebook_commitment_forward_cuda(double *loss, double *dwork, const float *z, const float *zq,
                                     size_t n, double beta);
int codebook_commitment_backward_cuda(float *dz, const float *dzq, const float *z, const float *zq,
                                      size_t n, float beta, float scale);
#endif

#endif
