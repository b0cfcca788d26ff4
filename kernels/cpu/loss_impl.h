/* Body of the losses, included twice by loss.c: with real=float, FN(x)=x,
 * EXP=expf and with real=double, FN(x)=x##_f64, EXP=exp. Sums are in
 * double either way; per-position softmax is in `real`. */

double FN(l1_loss_forward)(const real *pred, const real *target, size_t n) {
    double sum = 0;
#pragma omp parallel for reduction(+ : sum) schedule(static)
    for (size_t i = 0; i < n; i++) sum += fabs((double)pred[i] - (double)target[i]);
    return n ? sum / (double)n : 0.0;
}

void FN(l1_loss_backward)(real *dpred, const real *pred, const real *target, size_t n, real scale) {
    if (!n) return;
    real g = (real)(scale / (double)n);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        real d = pred[i] - target[i];
        dpred[i] += d > 0 ? g : d < 0 ? -g : 0;
    }
}

double FN(mse_loss_forward)(const real *pred, const real *target, size_t n) {
    double sum = 0;
#pragma omp parallel for reduction(+ : sum) schedule(static)
    for (size_t i = 0; i < n; i++) {
        double d = (double)pred[i] - (double)target[i];
        sum += d * d;
    }
    return n ? sum / (double)n : 0.0;
}

void FN(mse_loss_backward)(real *dpred, const real *pred, const real *target, size_t n, real scale) {
    if (!n) return;
    real g = (real)(2.0 * scale / (double)n);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dpred[i] += g * (pred[i] - target[i]);
}

double FN(hinge_d_loss_forward)(const real *real_, size_t nr, const real *fake, size_t nf) {
    double sr = 0, sf = 0;
#pragma omp parallel for reduction(+ : sr) schedule(static)
    for (size_t i = 0; i < nr; i++) sr += 1.0 - real_[i] > 0 ? 1.0 - real_[i] : 0.0;
#pragma omp parallel for reduction(+ : sf) schedule(static)
    for (size_t i = 0; i < nf; i++) sf += 1.0 + fake[i] > 0 ? 1.0 + fake[i] : 0.0;
    return (nr ? sr / (double)nr : 0.0) + (nf ? sf / (double)nf : 0.0);
}

void FN(hinge_d_loss_backward)(real *dreal, real *dfake, const real *real_, size_t nr,
                               const real *fake, size_t nf, real scale) {
    if (dreal && nr) {
        real g = (real)(scale / (double)nr);
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < nr; i++)
            if (real_[i] < 1) dreal[i] -= g; /* d relu(1 - x)/dx = -1 where 1 - x > 0 */
    }
    if (dfake && nf) {
        real g = (real)(scale / (double)nf);
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < nf; i++)
            if (fake[i] > -1) dfake[i] += g;
    }
}

double FN(hinge_g_loss_forward)(const real *fake, size_t n) {
    double sum = 0;
#pragma omp parallel for reduction(+ : sum) schedule(static)
    for (size_t i = 0; i < n; i++) sum += fake[i];
    return n ? -sum / (double)n : 0.0;
}

void FN(hinge_g_loss_backward)(real *dfake, size_t n, real scale) {
    if (!n) return;
    real g = (real)(scale / (double)n);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dfake[i] -= g;
}

/* Softmax statistics of position s of x (C,S): max and sum of exp(x - max). */
static inline void FN(loss_softmax_stats)(const real *x, int C, long S, long s, real *mx, real *sum) {
    real m = x[s];
    for (int c = 1; c < C; c++) m = x[(long)c * S + s] > m ? x[(long)c * S + s] : m;
    real z = 0;
    for (int c = 0; c < C; c++) z += EXP(x[(long)c * S + s] - m);
    *mx = m;
    *sum = z;
}

double FN(cross_entropy_forward)(const real *logits, const int32_t *target, int N, int C, long S) {
    double sum = 0;
    int bad = 0;
    for (int n = 0; n < N; n++) {
        const real *x = logits + (size_t)n * C * S;
        const int32_t *t = target + (size_t)n * S;
#pragma omp parallel for reduction(+ : sum, bad) schedule(static)
        for (long s = 0; s < S; s++) {
            if (t[s] < 0 || t[s] >= C) { bad++; continue; }
            real m, z;
            FN(loss_softmax_stats)(x, C, S, s, &m, &z);
            sum += (double)m + log((double)z) - (double)x[(long)t[s] * S + s];
        }
    }
    if (bad) return NAN;
    return N && S ? sum / ((double)N * (double)S) : 0.0;
}

void FN(cross_entropy_backward)(real *dlogits, const real *logits, const int32_t *target,
                                int N, int C, long S, real scale) {
    if (!N || !S) return;
    real g = (real)(scale / ((double)N * (double)S));
    for (int n = 0; n < N; n++) {
        const real *x = logits + (size_t)n * C * S;
        real *dx = dlogits + (size_t)n * C * S;
        const int32_t *t = target + (size_t)n * S;
#pragma omp parallel for schedule(static)
        for (long s = 0; s < S; s++) {
            if (t[s] < 0 || t[s] >= C) continue;
            real m, z;
            FN(loss_softmax_stats)(x, C, S, s, &m, &z);
            real gz = g / z;
            for (int c = 0; c < C; c++) {
                real p = EXP(x[(long)c * S + s] - m) * gz; /* g * softmax */
                dx[(long)c * S + s] += c == t[s] ? p - g : p;
            }
        }
    }
}

/* Per-sample sums of Dice: work[0,K) I, [K,2K) P, [2K,3K) G with K = N*C,
 * index n*C + c. */
static void FN(dice_sums)(double *work, const real *logits, const int32_t *target, int N, int C, long S) {
    size_t K = (size_t)N * C;
    for (size_t i = 0; i < 3 * K; i++) work[i] = 0;
    for (int n = 0; n < N; n++) {
        const real *x = logits + (size_t)n * C * S;
        const int32_t *t = target + (size_t)n * S;
        double *acc = work + (size_t)n * C; /* I at acc[c], P at acc[K+c], G at acc[2K+c] */
        double *accI = acc, *accP = acc + K, *accG = acc + 2 * K;
#pragma omp parallel for reduction(+ : accI[:C], accP[:C], accG[:C]) schedule(static)
        for (long s = 0; s < S; s++) {
            real m, z;
            FN(loss_softmax_stats)(x, C, S, s, &m, &z);
            for (int c = 0; c < C; c++) {
                double p = (double)(EXP(x[(long)c * S + s] - m) / z);
                accP[c] += p;
                if (t[s] == c) { accI[c] += p; accG[c] += 1; }
            }
        }
    }
}

/* Sums of sample n (or of the batch) for class c. */
static void FN(dice_class_sums)(const double *work, int N, int C, int n, int c, int batch,
                                double *I, double *P, double *G) {
    size_t K = (size_t)N * C;
    *I = *P = *G = 0;
    for (int k = batch ? 0 : n; k < (batch ? N : n + 1); k++) {
        *I += work[(size_t)k * C + c];
        *P += work[K + (size_t)k * C + c];
        *G += work[2 * K + (size_t)k * C + c];
    }
}

double FN(dice_loss_forward)(double *work, const real *logits, const int32_t *target,
                             int N, int C, long S, const dice_params *p) {
    FN(dice_sums)(work, logits, target, N, C, S);
    int c0 = p->do_bg ? 0 : 1, nterm = 0;
    double sum = 0;
    for (int n = 0; n < (p->batch_dice ? 1 : N); n++)
        for (int c = c0; c < C; c++) {
            double I, P, G;
            FN(dice_class_sums)(work, N, C, n, c, p->batch_dice, &I, &P, &G);
            sum += (2 * I + p->smooth_nom) / (P + G + p->smooth);
            nterm++;
        }
    return nterm ? -sum / nterm : NAN;
}

void FN(dice_loss_backward)(real *dlogits, double *work, const real *logits, const int32_t *target,
                            int N, int C, long S, const dice_params *p, real scale) {
    FN(dice_sums)(work, logits, target, N, C, S);
    int c0 = p->do_bg ? 0 : 1;
    int nterm = (C - c0) * (p->batch_dice ? 1 : N);
    if (nterm <= 0) return;
    /* dL/dp[n,c,s] = a[n,c] * g[n,c,s] + b[n,c]: with D = P + G + smooth,
     * a = -2 / (nterm D), b = (2 I + smooth_nom) / (nterm D^2). Stored after
     * the sums: a at work[3K + n*C + c], b at work[4K + n*C + c]. */
    size_t K = (size_t)N * C;
    double *a = work + 3 * K, *b = work + 4 * K;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            double I, P, G;
            FN(dice_class_sums)(work, N, C, n, c, p->batch_dice, &I, &P, &G);
            double D = P + G + p->smooth;
            int keep = c >= c0;
            a[(size_t)n * C + c] = keep ? -2.0 / (nterm * D) * scale : 0;
            b[(size_t)n * C + c] = keep ? (2 * I + p->smooth_nom) / (nterm * D * D) * scale : 0;
        }
    for (int n = 0; n < N; n++) {
        const real *x = logits + (size_t)n * C * S;
        real *dx = dlogits + (size_t)n * C * S;
        const int32_t *t = target + (size_t)n * S;
        const double *an = a + (size_t)n * C, *bn = b + (size_t)n * C;
#pragma omp parallel for schedule(static)
        for (long s = 0; s < S; s++) {
            real m, z;
            FN(loss_softmax_stats)(x, C, S, s, &m, &z);
            /* softmax backward: dx_c = p_c (dp_c - sum_k p_k dp_k) */
            double dot = 0;
            for (int c = 0; c < C; c++) {
                double pc = (double)(EXP(x[(long)c * S + s] - m) / z);
                dot += pc * (bn[c] + (t[s] == c ? an[c] : 0));
            }
            for (int c = 0; c < C; c++) {
                double pc = (double)(EXP(x[(long)c * S + s] - m) / z);
                double dp = bn[c] + (t[s] == c ? an[c] : 0);
                dx[(long)c * S + s] += (real)(pc * (dp - dot));
            }
        }
    }
}
