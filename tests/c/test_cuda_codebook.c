/* The codebook's CUDA kernels (kernels/cuda/codebook.cu) against the CPU
 * on random inputs: nearest indices (equal, or both codes within float
 * rounding of the nearest distance), mindist, exact ties to the lowest
 * index, NaN/Inf vectors (index 0, mindist NaN), the lookup (exact, NaN
 * for a bad index), the commitment loss and its accumulating
 * straight-through backward; GUARD sentinels around every float buffer.
 * Skipped without a GPU. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "codebook.h"
#include "device.h"
#include "rng.h"
#ifdef LSDM_CUDA
#include "cuda_handles.h"
#include "devmem.h"

#include "gpucheck.h"

static int32_t *dev_idx(size_t n) {
    int32_t *d = lsdm_cuda_alloc(n * sizeof *d);
    if (!d) { fprintf(stderr, "device allocation failed\n"); exit(1); }
    CHECK(lsdm_cuda_zero(d, n * sizeof *d) == 0);
    return d;
}

static double dist2(const float *z, const float *emb, int C, long S, long m, int k) {
    long n = m / S, s = m % S;
    double d = 0;
    for (int c = 0; c < C; c++) {
        double v = (double)z[(n * C + c) * S + s] - emb[(size_t)k * C + c];
        d += v * v;
    }
    return d;
}

/* One shape: nearest (with `ties`, every third vector sits exactly on
 * code 4, duplicated at 17 and K-1), lookup, commitment loss and grad. */
static void test_nearest(int N, int C, long S, int K, int poisoned, int ties) {
    long M = N * S;
    size_t nz = (size_t)M * C, ne = (size_t)K * C, nw = codebook_workspace_size(K, C);
    char tag[96], name[128];
    snprintf(tag, sizeof tag, "nearest N%d C%d S%ld K%d%s%s", N, C, S, K, poisoned ? " /nan" : "", ties ? " ties" : "");
    float *z = h_normal(nz, 301, 1.0f), *emb = h_normal(ne, 302, 1.0f), *work = h_const(nw, 0), *md = h_const(M, 0);
    if (ties && K > 20) { /* vectors sitting exactly on a code duplicated at a higher index */
        memcpy(emb + 17 * C, emb + 4 * C, C * sizeof *emb);
        memcpy(emb + (size_t)(K - 1) * C, emb + 4 * C, C * sizeof *emb);
        for (long m = 0; m < M; m += 3)
            for (int c = 0; c < C; c++) z[(m / S * C + c) * S + m % S] = emb[4 * C + c];
    }
    if (poisoned) poison(z, nz);
    int32_t *idx = malloc(M * sizeof *idx), *gidx = malloc(M * sizeof *gidx);
    int bad = codebook_nearest(idx, md, work, z, emb, N, C, S, K);
    CHECK(bad >= 0);
    float *d_z = dev_copy(z, nz), *d_emb = dev_copy(emb, ne), *d_work = dev_copy(work, nw);
    float *md0 = h_const(M, -1.0f), *d_md = dev_copy(md0, M); /* not the CPU's values */
    free(md0);
    int32_t *d_idx = dev_idx(M);
    CHECK(codebook_nearest_cuda(d_idx, d_md, d_work, d_z, d_emb, N, C, S, K) == 0);
    CHECK(lsdm_cuda_copy(gidx, d_idx, M * sizeof *gidx, 0) == 0);
    long differ = 0, wrong = 0, tie_bad = 0;
    for (long m = 0; m < M; m++) {
        if (gidx[m] < 0 || gidx[m] >= K) { wrong++; continue; }
        if (gidx[m] == idx[m]) continue;
        differ++;
        double a = dist2(z, emb, C, S, m, idx[m]), b = dist2(z, emb, C, S, m, gidx[m]);
        if (!(fabs(a - b) <= 1e-5 * (1 + a))) wrong++;
    }
    if (ties && K > 20)
        for (long m = 0; m < M; m += 3) tie_bad += isfinite(md[m]) && gidx[m] != 4;
    snprintf(name, sizeof name, "%s mindist", tag);
    cmp(name, md, d_md, M, TOL_RED);
    printf("%-34s indices differ %ld (near-ties), wrong %ld, ties not lowest %ld\n", tag, differ, wrong, tie_bad);
    CHECK(wrong == 0 && tie_bad == 0);
    CHECK(differ <= M / 100);
    cmp_guards_only(tag, d_work, nw);

    /* lookup from the CPU's indices: exact; an index out of range gives NaN */
    float *zq = h_const(nz, 0);
    CHECK(codebook_lookup(zq, idx, emb, N, C, S, K) == 0);
    CHECK(lsdm_cuda_copy(d_idx, idx, M * sizeof *idx, 1) == 0);
    float *d_zq = dev_copy(zq, nz);
    CHECK(lsdm_cuda_zero(d_zq, nz * sizeof *d_zq) == 0);
    CHECK(codebook_lookup_cuda(d_zq, d_idx, d_emb, N, C, S, K) == 0);
    snprintf(name, sizeof name, "%s lookup", tag);
    cmp(name, zq, d_zq, nz, 0.0);

    /* commitment loss and backward (dz starts at 0.5: accumulation) */
    if (!poisoned) {
        float *g = h_normal(nz, 303, 1.0f), *dz = h_const(nz, 0.5f);
        float *d_g = dev_copy(g, nz), *d_dz = dev_copy(dz, nz);
        double *dwork = lsdm_cuda_alloc(2 * sizeof *dwork), loss = 0;
        double want = codebook_commitment_forward(z, zq, nz, 0.25);
        CHECK(codebook_commitment_forward_cuda(&loss, dwork, d_z, d_zq, nz, 0.25) == 0);
        printf("%-34s loss %.9g cpu %.9g\n", tag, loss, want);
        CHECK(fabs(loss - want) <= 1e-6 * want);
        codebook_commitment_backward(dz, g, z, zq, nz, 0.25f, 1.5f);
        CHECK(codebook_commitment_backward_cuda(d_dz, d_g, d_z, d_zq, nz, 0.25f, 1.5f) == 0);
        snprintf(name, sizeof name, "%s dz", tag);
        cmp(name, dz, d_dz, nz, TOL_EW);
        lsdm_cuda_free(dwork);
        free(g), free(dz);
    }
    idx[0] = K;
    CHECK(lsdm_cuda_copy(d_idx, idx, sizeof *idx, 1) == 0);
    CHECK(codebook_lookup_cuda(d_zq, d_idx, d_emb, N, C, S, K) == 0);
    float first;
    CHECK(lsdm_cuda_copy(&first, d_zq, sizeof first, 0) == 0);
    CHECK(isnan(first));
    lsdm_cuda_free(d_idx);
    dev_free_all();
    free(z), free(emb), free(work), free(md), free(idx), free(gidx), free(zq);
}
#endif

int main(void) {
    GPU_OR_SKIP("test_cuda_codebook");
#ifdef LSDM_CUDA
    test_nearest(2, 8, 37, 50, 0, 1);
    test_nearest(1, 3, 64, 16, 0, 0);
    test_nearest(2, 8, 40, 2000, 0, 1);  /* several shared-memory tiles */
    test_nearest(1, 20, 29, 33, 0, 1);   /* the C <= 64 kernel */
    test_nearest(2, 8, 31, 100, 1, 0);   /* NaN / Inf vectors */
    test_nearest(1, 8, 8 * 64 * 64, 16384, 0, 0); /* the reference shape */
    lsdm_cuda_handles_free();
#endif
    return check_done("test_cuda_codebook");
}
