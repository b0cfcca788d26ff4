/* Paired image metrics of two volumes of the same shape (C channels of
 * D,H,W voxels, W fastest), all in float64: MSE/MAE (hence RMSE, PSNR),
 * 3D SSIM as scikit-image's structural_similarity(gaussian_weights=True,
 * sigma=1.5, use_sample_covariance=False) and MS-SSIM as pytorch_msssim's
 * ms_ssim on 5-D inputs. */
#ifndef LSDM_IMGMETRICS_H
#define LSDM_IMGMETRICS_H

#include <stddef.h>
#include <stdint.h>

#define LSDM_SSIM_SIGMA 1.5
#define LSDM_SSIM_WIN 11 /* 2 * int(3.5 * sigma + 0.5) + 1 taps */
#define LSDM_SSIM_K1 0.01
#define LSDM_SSIM_K2 0.03
#define LSDM_MS_SSIM_LEVELS 5

/* Sums over voxels where mask is nonzero (mask NULL: every voxel).
 * mask has one value per voxel of one channel (S = D*H*W) and applies to
 * every channel. */
typedef struct {
    double sse, sae; /* sum of squared and of absolute differences */
    int64_t n;       /* voxels counted, all channels */
} lsdm_imgm_errsum;

void lsdm_imgm_errors(lsdm_imgm_errsum *out,
                      const double *a, const double *b, // (C,S)
                      const unsigned char *mask,        // (S) or NULL
                      int64_t C, int64_t S);
/* 10 log10(range^2 / mse); +INFINITY when mse == 0. */
double lsdm_imgm_psnr(double mse, double range);

/* The SSIM window scikit-image would need for these extents: 11, or the
 * largest odd size that fits the thinnest non-unit axis (axes of extent 1
 * are left out, as for an np.squeeze()d array). 0 if none fits (never: 1
 * always does). */
int lsdm_imgm_ssim_window(const int64_t dims[3]);

/* Mean SSIM over channels of a (C,D,H,W) pair: per channel, the five local
 * moments filtered by the 11-tap Gaussian (sigma 1.5) with 'reflect'
 * borders (scipy.ndimage), the SSIM map cropped by (win-1)/2 at both ends
 * of every non-unit axis, its mean; win from lsdm_imgm_ssim_window (with
 * win 11 this is a 'valid' convolution). data range R gives C1 = (K1 R)^2,
 * C2 = (K2 R)^2. *win_used gets the window (may be NULL). */
int lsdm_imgm_ssim(double *out, int *win_used,
                   const double *a, const double *b, // (C,D,H,W)
                   int64_t C, const int64_t dims[3], double range);

/* Scales MS-SSIM can use for these extents (pytorch_msssim's condition
 * min(H,W) > (win-1) * 2^(L-1) on the last two non-unit axes), at most 5;
 * 0 if even one scale does not fit. */
int lsdm_imgm_ms_ssim_levels(const int64_t dims[3]);

/* MS-SSIM as pytorch_msssim.ms_ssim, per channel then averaged: at each
 * scale the Gaussian is applied 'valid' along axes at least 11 long and
 * skipped along shorter ones; relu(cs) at scales 1..L-1, relu(ssim) at the
 * last; 2x average pooling between scales (padding s%2, zeros counted);
 * weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), the first L of them
 * renormalised to sum 1 when L < 5. Unit axes are dropped (never pooled),
 * as pytorch_msssim squeezes them. levels: 0 = as many as fit (at most 5);
 * *levels_used may be NULL. -1 with lsdm_err when nothing fits. */
int lsdm_imgm_ms_ssim(double *out, int *levels_used,
                      const double *a, const double *b, // (C,D,H,W)
                      int64_t C, const int64_t dims[3], double range, int levels);

#endif
