/* The VQ codebook (kernels/codebook.h): nearest codes against a brute-force
 * double search (random data, exact ties, NaN/Inf, both ISAs, a shape
 * larger than one code block), lookup, commitment loss and its
 * straight-through backward by finite differences, the EMA update against
 * PyTorch (tests/fixtures/codebook from tests/torch/make_codebook.py), the
 * random restarts and init by their properties, perplexity, and the
 * reference shape (32768 vectors x 16384 codes) in bounded memory. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "check.h"
#include "codebook.h"
#include "fixture.h"
#include "rng.h"

static lsdm_rng rng;

static float *rand_f32(size_t n, float scale) {
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = scale * lsdm_rng_normal(&rng);
    return x;
}

/* ||z_m - e_k||^2 in double, z (N,C,S). */
static double dist2(const float *z, const float *emb, int C, long S, size_t m, int k) {
    size_t n = m / (size_t)S, s = m % (size_t)S;
    double d = 0;
    for (int c = 0; c < C; c++) {
        double v = (double)z[n * C * S + (size_t)c * S + s] - emb[(size_t)k * C + c];
        d += v * v;
    }
    return d;
}

/* Checks idx/mindist of vectors [0, M) (every `step`-th) against a brute
 * force: the chosen code is a nearest one up to float rounding. Returns
 * the number of vectors whose index differs from the exact argmin. */
static long check_nearest(const char *tag, const int32_t *idx, const float *md, const float *z,
                          const float *emb, int C, long S, int K, long M, long step) {
    long differ = 0, bad = 0;
    double worst = 0;
    for (long m = 0; m < M; m += step) {
        int best = 0;
        double bd = dist2(z, emb, C, S, (size_t)m, 0), e2max = 0, z2 = dist2(z, emb, C, S, (size_t)m, 0);
        for (int k = 1; k < K; k++) {
            double d = dist2(z, emb, C, S, (size_t)m, k);
            if (d < bd) bd = d, best = k;
        }
        for (int k = 0; k < K; k++) {
            double e2 = 0;
            for (int c = 0; c < C; c++) e2 += (double)emb[(size_t)k * C + c] * emb[(size_t)k * C + c];
            e2max = fmax(e2max, e2);
        }
        z2 = 0;
        size_t n = (size_t)m / S, s = (size_t)m % S;
        for (int c = 0; c < C; c++) z2 += (double)z[n * C * S + (size_t)c * S + s] * z[n * C * S + (size_t)c * S + s];
        double tol = 4e-6 * (z2 + e2max) * C; /* float rounding of ||z||^2 + ||e||^2 - 2 z.e */
        if (idx[m] < 0 || idx[m] >= K) { bad++; continue; }
        double got = dist2(z, emb, C, S, (size_t)m, idx[m]);
        if (idx[m] != best) differ++;
        if (got - bd > tol) bad++;
        if (md) worst = fmax(worst, fabs(md[m] - bd) / (z2 + e2max + 1e-30));
    }
    printf("%-28s differ from exact argmin %ld (near-ties), wrong %ld, mindist rel err %.2g\n", tag, differ, bad, worst);
    CHECK(bad == 0);
    CHECK(worst < 1e-5);
    return differ;
}

static void test_nearest_random(void) {
    static const int shapes[][4] = {{2, 8, 37, 50}, {1, 3, 64, 16}, {3, 1, 5, 7}, {1, 20, 29, 33}, {2, 8, 40, 2000}};
    for (int isa = 0; isa < 2; isa++) {
        if (isa) setenv("LSDM_CPU_ISA", "generic", 1);
        for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
            int N = shapes[i][0], C = shapes[i][1], K = shapes[i][3];
            long S = shapes[i][2], M = N * S;
            float *z = rand_f32((size_t)M * C, 1), *emb = rand_f32((size_t)K * C, 1), *md = malloc(M * sizeof *md);
            float *work = malloc(codebook_workspace_size(K, C) * sizeof *work);
            int32_t *idx = malloc(M * sizeof *idx);
            CHECK(codebook_nearest(idx, md, work, z, emb, N, C, S, K) == 0);
            char tag[64];
            snprintf(tag, sizeof tag, "%s N%d C%d S%ld K%d", isa ? "generic" : "default", N, C, S, K);
            long differ = check_nearest(tag, idx, md, z, emb, C, S, K, M, 1);
            CHECK(differ <= M / 100); /* near-ties are rare on random data */
            /* without mindist: the same indices */
            int32_t *idx2 = malloc(M * sizeof *idx2);
            CHECK(codebook_nearest(idx2, NULL, work, z, emb, N, C, S, K) == 0);
            CHECK(memcmp(idx, idx2, M * sizeof *idx) == 0);
            free(z), free(emb), free(md), free(work), free(idx), free(idx2);
        }
        unsetenv("LSDM_CPU_ISA");
    }
}

/* Equal distances go to the lowest index: duplicated codes in the same
 * 16-code group, in the same lane of different groups, in different code
 * blocks, and two codes mirrored about a vector. */
static void test_nearest_ties(void) {
    const int N = 1, C = 8, K = 2000;
    const long S = 13;
    for (int isa = 0; isa < 2; isa++) {
        if (isa) setenv("LSDM_CPU_ISA", "generic", 1);
        float *emb = rand_f32((size_t)K * C, 1), *z = calloc((size_t)S * C, sizeof *z);
        float *work = malloc(codebook_workspace_size(K, C) * sizeof *work);
        int32_t idx[13];
        static const int dup[][3] = {{7, 3, 12}, {18, 2, 34}, {1900, 1000, 1500}, {1999, 5, 1998}};
        int want[13];
        for (int i = 0; i < 4; i++) { /* codes dup[i][1..2] copy dup[i][0]; vector i sits on it */
            for (int j = 1; j < 3; j++) memcpy(emb + (size_t)dup[i][j] * C, emb + (size_t)dup[i][0] * C, C * sizeof *emb);
            for (int c = 0; c < C; c++) z[(size_t)c * S + i] = emb[(size_t)dup[i][0] * C + c];
            int lo = dup[i][0];
            for (int j = 1; j < 3; j++) lo = dup[i][j] < lo ? dup[i][j] : lo;
            want[i] = lo;
        }
        /* codes 600 and 41 mirrored through vector 4 (at 0.25): z.e ties exactly */
        for (int c = 0; c < C; c++) {
            float v = c % 2 ? 0.0625f : -0.03125f; /* dyadic: every product and sum exact */
            emb[600 * C + c] = 0.25f + v;
            emb[41 * C + c] = 0.25f - v;
            z[(size_t)c * S + 4] = 0.25f;
        }
        want[4] = 41;
        /* vectors 5..12 sit exactly on code 1500's duplicates too */
        for (long s = 5; s < S; s++) {
            for (int c = 0; c < C; c++) z[(size_t)c * S + s] = emb[1000 * C + c];
            want[s] = 1000;
        }
        CHECK(codebook_nearest(idx, NULL, work, z, emb, N, C, S, K) == 0);
        int ok = 1;
        for (long s = 0; s < S; s++) ok &= idx[s] == want[s];
        printf("ties (%s): %d %d %d %d %d, want %d %d %d %d %d\n", isa ? "generic" : "default", idx[0], idx[1], idx[2],
               idx[3], idx[4], want[0], want[1], want[2], want[3], want[4]);
        CHECK(ok);
        free(emb), free(z), free(work);
        unsetenv("LSDM_CPU_ISA");
    }
}

/* NaN/Inf in a vector: index 0 (valid), mindist NaN, counted in the
 * return value; a code with NaN or Inf is never chosen. */
static void test_nearest_nan(void) {
    const int N = 2, C = 4, K = 24;
    const long S = 9, M = N * S;
    for (int isa = 0; isa < 2; isa++) {
        if (isa) setenv("LSDM_CPU_ISA", "generic", 1);
        float *z = rand_f32((size_t)M * C, 1), *emb = rand_f32((size_t)K * C, 1), md[18];
        float *work = malloc(codebook_workspace_size(K, C) * sizeof *work);
        int32_t idx[18];
        z[2 * S + 3] = NAN;                  /* vector (0,3) */
        z[(size_t)C * S + 1 * S + 7] = INFINITY; /* vector (1,7) */
        /* vector (1,0) sits on code 5, which is poisoned: never chosen */
        for (int c = 0; c < C; c++) z[(size_t)C * S + (size_t)c * S] = emb[5 * C + c];
        emb[5 * C + 1] = NAN;
        emb[9 * C + 2] = INFINITY;
        int bad = codebook_nearest(idx, md, work, z, emb, N, C, S, K);
        printf("nan (%s): %d vectors without a finite distance, idx %d %d\n", isa ? "generic" : "default", bad, idx[3], idx[S + 7]);
        CHECK(bad == 2);
        CHECK(idx[3] == 0 && isnan(md[3]));
        CHECK(idx[S + 7] == 0 && isnan(md[S + 7]));
        int valid = 1, poisoned = 0;
        for (long m = 0; m < M; m++) {
            valid &= idx[m] >= 0 && idx[m] < K;
            if (m != 3 && m != S + 7) poisoned += idx[m] == 5 || idx[m] == 9 || isnan(md[m]);
        }
        CHECK(valid);
        CHECK(poisoned == 0);
        free(z), free(emb), free(work);
        unsetenv("LSDM_CPU_ISA");
    }
}

static void test_lookup_sizes(void) {
    const int N = 2, C = 3, K = 5;
    const long S = 4;
    float emb[15], zq[24];
    double emb64[15], zq64[24];
    for (int i = 0; i < 15; i++) emb[i] = (float)(i * 1.5 - 3), emb64[i] = i * 1.5 - 3;
    int32_t idx[8] = {4, 0, 2, 2, 1, 3, 0, 4};
    CHECK(codebook_lookup(zq, idx, emb, N, C, S, K) == 0);
    CHECK(codebook_lookup_f64(zq64, idx, emb64, N, C, S, K) == 0);
    int exact = 1;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (long s = 0; s < S; s++) {
                exact &= zq[(n * C + c) * S + s] == emb[idx[n * S + s] * C + c];
                exact &= zq64[(n * C + c) * S + s] == emb64[idx[n * S + s] * C + c];
            }
    CHECK(exact);
    idx[6] = 5;
    CHECK(codebook_lookup(zq, idx, emb, N, C, S, K) == -1);
    idx[6] = -1;
    CHECK(codebook_perplexity(&(double){0}, NULL, (int32_t[5]){0}, idx, 8, K) == -1);
    float w[64];
    CHECK(codebook_nearest(idx, NULL, w, emb, emb, 0, C, S, K) == -1);
    CHECK(codebook_nearest(idx, NULL, w, emb, emb, 1, C, S, 0) == -1);
    CHECK(codebook_workspace_size(0, 8) == 0 && codebook_workspace_size(17, 8) == 32 * 9);
    CHECK(codebook_rng_blocks(6, 16, 4) == 16 + 18 && codebook_rng_blocks(48, 16, 4) == 16);
    CHECK(codebook_ema_workspace_size(6, 16, 4) == 2 * 16 * 5 + 18);
}

/* Finite differences of L(z) = sum(zq_st * g) + scale * commitment, zq
 * held fixed (it is detached in the reference), in double; float against
 * double; accumulation. */
static void test_commitment(void) {
    const size_t n = 60;
    const double beta = 0.25, scale = 1.7, h = 1e-6;
    double z[60], zq[60], g[60], dz[60], num[60];
    for (size_t i = 0; i < n; i++) z[i] = lsdm_rng_normal(&rng), zq[i] = lsdm_rng_normal(&rng), g[i] = lsdm_rng_normal(&rng);
    for (size_t i = 0; i < n; i++) dz[i] = 0;
    codebook_commitment_backward_f64(dz, g, z, zq, n, beta, scale);
    double err = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        double l[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            double old = z[i];
            z[i] = old + (sgn ? -h : h);
            double L = scale * codebook_commitment_forward_f64(z, zq, n, beta);
            for (size_t j = 0; j < n; j++) L += (z[j] + (zq[j] - old * (j == i) - z[j] * (j != i))) * g[j];
            l[sgn] = L;
            z[i] = old;
        }
        num[i] = (l[0] - l[1]) / (2 * h);
        err = fmax(err, fabs(num[i] - dz[i]));
        mx = fmax(mx, fabs(dz[i]));
    }
    printf("commitment finite differences: max rel err %.2g\n", err / mx);
    CHECK(err / mx < 1e-6);
    float zf[60], zqf[60], gf[60], dzf[60];
    for (size_t i = 0; i < n; i++) zf[i] = (float)z[i], zqf[i] = (float)zq[i], gf[i] = (float)g[i], dzf[i] = 1.0f;
    double lf = codebook_commitment_forward(zf, zqf, n, beta);
    double ld = codebook_commitment_forward_f64(z, zq, n, beta);
    CHECK_NEAR(lf, ld, 1e-6 * ld);
    codebook_commitment_backward(dzf, gf, zf, zqf, n, (float)beta, (float)scale);
    double e2 = 0;
    for (size_t i = 0; i < n; i++) e2 = fmax(e2, fabs(dzf[i] - 1.0 - dz[i]));
    CHECK(e2 < 1e-5 * mx);
    /* no gradient from downstream: only the commitment term */
    for (size_t i = 0; i < n; i++) dz[i] = 0;
    codebook_commitment_backward_f64(dz, NULL, z, zq, n, beta, 1.0);
    CHECK_NEAR(dz[7], 2 * beta * (z[7] - zq[7]) / n, 1e-15);
}

/* One fixture case: nearest, lookup, loss, dz, EMA and restarts. */
static void test_fixture(const char *file) {
    char path[PATH_MAX];
    fixture_path(path, sizeof path, "codebook", file);
    fixture fx;
    if (fixture_load(&fx, path) < 0) {
        fprintf(stderr, "missing fixture %s\n", path);
        CHECK(0);
        return;
    }
    const float *cfg = fixture_get(&fx, "cfg", NULL);
    int N = (int)cfg[0], C = (int)cfg[1], K = (int)cfg[3];
    long S = (long)cfg[2], M = N * S;
    size_t nz = (size_t)M * C;
    const float *z = fixture_get(&fx, "z", NULL), *emb0 = fixture_get(&fx, "emb", NULL);
    const float *fidx = fixture_get(&fx, "idx", NULL), *fzq = fixture_get(&fx, "zq", NULL);
    float *work = malloc((codebook_workspace_size(K, C) + codebook_ema_workspace_size(M, K, C)) * sizeof *work);
    int32_t *idx = malloc(M * sizeof *idx);
    float *zq = malloc(nz * sizeof *zq), *dz = calloc(nz, sizeof *dz);
    CHECK(codebook_nearest(idx, NULL, work, z, emb0, N, C, S, K) == 0);
    int same = 1;
    for (long m = 0; m < M; m++) same &= idx[m] == (int32_t)fidx[m];
    CHECK(same);
    CHECK(codebook_lookup(zq, idx, emb0, N, C, S, K) == 0);
    CHECK(memcmp(zq, fzq, nz * sizeof *zq) == 0);
    double loss = codebook_commitment_forward(z, zq, nz, 0.25), tloss = fixture_get(&fx, "loss", NULL)[0];
    codebook_commitment_backward(dz, fixture_get(&fx, "g", NULL), z, zq, nz, 0.25f, 1.0f);
    const float *fdz = fixture_get(&fx, "dz", NULL);
    double edz = 0;
    for (size_t i = 0; i < nz; i++) edz = fmax(edz, fabs(dz[i] - fdz[i]));
    double ppl;
    int used, nused = 0;
    CHECK(codebook_perplexity(&ppl, &used, (int32_t *)work, idx, M, K) == 0);
    const float *ntot = fixture_get(&fx, "n_total", NULL);
    for (int k = 0; k < K; k++) nused += ntot[k] > 0;

    /* EMA without restarts: the reference's embeddings before restarts */
    float *emb = malloc((size_t)K * C * sizeof *emb), *ema_n = malloc(K * sizeof *ema_n);
    float *z_avg = malloc((size_t)K * C * sizeof *z_avg);
    memcpy(emb, emb0, (size_t)K * C * sizeof *emb);
    memcpy(ema_n, fixture_get(&fx, "ema_n", NULL), K * sizeof *ema_n);
    memcpy(z_avg, fixture_get(&fx, "z_avg", NULL), (size_t)K * C * sizeof *z_avg);
    codebook_ema_params p = codebook_ema_params_reference();
    p.restart = 0;
    CHECK(codebook_ema_update(emb, ema_n, z_avg, work, z, idx, N, C, S, K, &p, 7, 1, 0) == 0);
    const float *fn = fixture_get(&fx, "ema_n_new", NULL), *fa = fixture_get(&fx, "z_avg_new", NULL);
    const float *fe = fixture_get(&fx, "emb_new", NULL), *usage = fixture_get(&fx, "usage", NULL);
    double en = 0, ea = 0, ee = 0;
    for (int k = 0; k < K; k++) {
        en = fmax(en, fabs(ema_n[k] - fn[k]) / fmax(1, fabs(fn[k])));
        for (int c = 0; c < C; c++) {
            ea = fmax(ea, fabs(z_avg[k * C + c] - fa[k * C + c]) / fmax(1, fabs(fa[k * C + c])));
            ee = fmax(ee, fabs(emb[k * C + c] - fe[k * C + c]) / fmax(1, fabs(fe[k * C + c])));
        }
    }
    printf("%-8s loss %.9g (torch %.9g) dz %.2g perplexity %.6f (torch %.6f) used %d  N %.2g z_avg %.2g emb %.2g\n", file,
           loss, tloss, edz, ppl, fixture_get(&fx, "perplexity", NULL)[0], used, en, ea, ee);
    CHECK_NEAR(loss, tloss, 1e-6 * tloss);
    CHECK(edz < 1e-6);
    CHECK_NEAR(ppl, fixture_get(&fx, "perplexity", NULL)[0], 1e-5);
    CHECK(used == nused);
    CHECK(en < 1e-6 && ea < 1e-6 && ee < 1e-5);

    /* With restarts: the same state, then the codes with N < 1 replaced by
     * distinct rows of the (tiled) inputs; the others as above. */
    float *emb_r = malloc((size_t)K * C * sizeof *emb_r);
    memcpy(emb_r, emb0, (size_t)K * C * sizeof *emb_r);
    memcpy(ema_n, fixture_get(&fx, "ema_n", NULL), K * sizeof *ema_n);
    memcpy(z_avg, fixture_get(&fx, "z_avg", NULL), (size_t)K * C * sizeof *z_avg);
    p.restart = 1;
    int nre = codebook_ema_update(emb_r, ema_n, z_avg, work, z, idx, N, C, S, K, &p, 7, 1, 0), want_re = 0;
    float sd = 0.01f / sqrtf((float)C);
    int rule = 1, rows = 1;
    for (int k = 0; k < K; k++) {
        want_re += usage[k] == 0;
        if (usage[k] != 0) { rule &= memcmp(emb_r + k * C, emb + k * C, C * sizeof *emb) == 0; continue; }
        /* nearest input vector: exact when not tiled (M >= K), within 7 sd of noise when tiled */
        double bd = INFINITY;
        for (long m = 0; m < M; m++) {
            double d = 0;
            for (int c = 0; c < C; c++) d = fmax(d, fabs(emb_r[k * C + c] - z[(m / S) * C * S + c * S + m % S]));
            bd = fmin(bd, d);
        }
        rows &= M >= K ? bd == 0 : (bd > 0 && bd < 7 * sd);
    }
    printf("%-8s restarts %d (torch rule %d), rows of the inputs %s\n", file, nre, want_re, rows ? "yes" : "NO");
    CHECK(nre == want_re);
    CHECK(rule);
    CHECK(rows);
    free(emb), free(emb_r), free(ema_n), free(z_avg), free(work), free(idx), free(zq), free(dz);
    fixture_free(&fx);
}

/* Init: without tiling K distinct input vectors, N = 1, z_avg = emb; with
 * tiling every tiled row once when T = K, and noise of std 0.01/sqrt(C);
 * reproducible from (seed, stream, offset). */
static void test_init(void) {
    const int C = 8, K = 4096;
    const long S = 4; /* 4 vectors, far apart: T = 4 * 1024 = K */
    float z[32], *emb = malloc((size_t)K * C * sizeof *emb), *emb2 = malloc((size_t)K * C * sizeof *emb2);
    float *ema_n = malloc(K * sizeof *ema_n), *z_avg = malloc((size_t)K * C * sizeof *z_avg);
    float *work = malloc(codebook_ema_workspace_size(S, K, C) * sizeof *work);
    for (int c = 0; c < C; c++)
        for (long s = 0; s < S; s++) z[c * S + s] = (float)(10 * s + c);
    CHECK(codebook_init(emb, ema_n, z_avg, work, z, 1, C, S, K, 42, 3, 1000) == 0);
    int per[4] = {0}, ones = 1;
    double sum = 0, sum2 = 0;
    for (int k = 0; k < K; k++) {
        int s = (int)lroundf(emb[k * C] / 10);
        s = s < 0 ? 0 : s > 3 ? 3 : s;
        per[s]++;
        ones &= ema_n[k] == 1.0f && memcmp(z_avg + k * C, emb + k * C, C * sizeof *emb) == 0;
        for (int c = 0; c < C; c++) {
            double e = emb[k * C + c] - z[c * S + s];
            sum += e, sum2 += e * e;
        }
    }
    double n = (double)K * C, mean = sum / n, sd = sqrt(sum2 / n - mean * mean), want = 0.01 / sqrt(C);
    printf("init tiled: rows per input %d %d %d %d, noise mean %.2g sd %.5f (want %.5f)\n", per[0], per[1], per[2],
           per[3], mean, sd, want);
    CHECK(per[0] == 1024 && per[1] == 1024 && per[2] == 1024 && per[3] == 1024);
    CHECK(ones);
    CHECK(fabs(mean) < 4 * want / sqrt(n));
    CHECK(fabs(sd / want - 1) < 0.03);
    CHECK(codebook_init(emb2, ema_n, z_avg, work, z, 1, C, S, K, 42, 3, 1000) == 0);
    CHECK(memcmp(emb, emb2, (size_t)K * C * sizeof *emb) == 0);
    CHECK(codebook_init(emb2, ema_n, z_avg, work, z, 1, C, S, K, 42, 3, 1000 + codebook_rng_blocks(S, K, C)) == 0);
    CHECK(memcmp(emb, emb2, (size_t)K * C * sizeof *emb) != 0);
    /* M >= K: K distinct input vectors, no noise */
    const int K2 = 16;
    const long S2 = 40;
    float z2[8 * 40], e2[16 * 8];
    for (int i = 0; i < 8 * 40; i++) z2[i] = (float)i;
    float *w2 = malloc(codebook_ema_workspace_size(S2, K2, C) * sizeof *w2);
    CHECK(codebook_init(e2, ema_n, z_avg, w2, z2, 1, C, S2, K2, 9, 0, 0) == 0);
    int exact = 1, seen[40] = {0}, distinct = 1;
    for (int k = 0; k < K2; k++) {
        int s = (int)e2[k * C];
        if (s < 0 || s >= S2) { exact = 0; continue; }
        distinct &= !seen[s]++;
        for (int c = 0; c < C; c++) exact &= e2[k * C + c] == z2[c * S2 + s];
    }
    CHECK(exact && distinct);
    free(emb), free(emb2), free(ema_n), free(z_avg), free(work), free(w2);
}

static void test_perplexity(void) {
    int32_t idx[12] = {0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3}, counts[9];
    double ppl;
    int used;
    CHECK(codebook_perplexity(&ppl, &used, counts, idx, 12, 9) == 0);
    CHECK_NEAR(ppl, 4.0, 1e-8); /* uniform over 4 codes (the 1e-10 shifts it by ~1e-9) */
    CHECK(used == 4);
    for (int i = 0; i < 12; i++) idx[i] = 5;
    CHECK(codebook_perplexity(&ppl, &used, counts, idx, 12, 9) == 0);
    CHECK_NEAR(ppl, 1.0, 1e-9);
    CHECK(used == 1);
}

static long maxrss_kb(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss;
}

/* The reference shape: the workspace is K x (C+1) floats whatever the
 * number of vectors, and the peak memory grows by the inputs only (the
 * distance matrix would be 2 GiB). */
static void test_reference_shape(void) {
    const int C = 8, K = 16384;
    const long S = 8 * 64 * 64;
    size_t ws = codebook_workspace_size(K, C);
    CHECK(ws == (size_t)K * (C + 1));
    float *z = rand_f32((size_t)S * C, 1), *emb = rand_f32((size_t)K * C, 1);
    float *work = malloc(ws * sizeof *work), *md = malloc(S * sizeof *md);
    int32_t *idx = malloc(S * sizeof *idx);
    for (size_t i = 0; i < ws; i++) work[i] = 0; /* touched before the measurement */
    for (long s = 0; s < S; s++) md[s] = 0, idx[s] = 0;
    long before = maxrss_kb();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(codebook_nearest(idx, md, work, z, emb, 1, C, S, K) == 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long grown = maxrss_kb() - before;
    printf("reference shape %ld x %d: %.0f ms, workspace %zu KiB, peak memory grew %ld KiB\n", S, K,
           (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) * 1e-6, ws * 4 / 1024, grown);
    CHECK(grown < 16 * 1024);
    check_nearest("reference shape (sampled)", idx, md, z, emb, C, S, K, S, 509);
    free(z), free(emb), free(work), free(md), free(idx);
}

int main(void) {
    lsdm_rng_init(&rng, 20240611, 0);
    test_nearest_random();
    test_nearest_ties();
    test_nearest_nan();
    test_lookup_sizes();
    test_commitment();
    test_fixture("ema48.lsdm");
    test_fixture("ema6.lsdm");
    test_init();
    test_perplexity();
    test_reference_shape();
    return check_done("test_codebook");
}
