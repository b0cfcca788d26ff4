/* Where compute runs: --device auto|cpu|cuda. */
#ifndef LSDM_DEVICE_H
#define LSDM_DEVICE_H

typedef enum { LSDM_DEVICE_CPU, LSDM_DEVICE_CUDA } lsdm_device;

/* CUDA devices usable now: 0 when built without CUDA, or without a driver
 * or GPU. why (may be NULL) gets the reason when 0. */
int lsdm_cuda_device_count(const char **why);
/* want: "auto", "cpu" or "cuda". auto takes CUDA when a device is usable
 * and falls back to the CPU otherwise (said with -v). "cuda" without a
 * device is an error. */
int lsdm_device_select(const char *want, lsdm_device *out);
const char *lsdm_device_name(lsdm_device d);

#endif
