#include "device.h"

#include <string.h>

#include "cli.h"
#include "err.h"

#ifndef LSDM_CUDA
int lsdm_cuda_device_count(const char **why) {
    if (why) *why = "built without CUDA";
    return 0;
}
#endif

const char *lsdm_device_name(lsdm_device d) { return d == LSDM_DEVICE_CUDA ? "cuda" : "cpu"; }

int lsdm_device_select(const char *want, lsdm_device *out) {
    const char *why = NULL;
    if (strcmp(want, "cpu") == 0) {
        *out = LSDM_DEVICE_CPU;
    } else if (strcmp(want, "cuda") == 0) {
        if (lsdm_cuda_device_count(&why) < 1) return lsdm_err("--device cuda: no usable GPU (%s)", why);
        *out = LSDM_DEVICE_CUDA;
    } else if (strcmp(want, "auto") == 0) {
        int n = lsdm_cuda_device_count(&why);
        *out = n > 0 ? LSDM_DEVICE_CUDA : LSDM_DEVICE_CPU;
        if (n > 0) lsdm_verbose("device auto: cuda (%d GPU%s)", n, n > 1 ? "s" : "");
        else lsdm_verbose("device auto: cpu (%s)", why);
    } else {
        return lsdm_err("unknown device '%s' (auto, cpu or cuda)", want);
    }
    return 0;
}
