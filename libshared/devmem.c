#include "devmem.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

#ifndef LSDM_CUDA
/* Built without CUDA: lsdm_device_select never picks CUDA, so these are
 * unreachable; they fail cleanly rather than pretend. */
static void *lsdm_cuda_alloc(size_t bytes) { (void)bytes; lsdm_err("built without CUDA"); return NULL; }
static void lsdm_cuda_free(void *p) { (void)p; }
static int lsdm_cuda_copy(void *d, const void *s, size_t n, int to_device) {
    (void)d; (void)s; (void)n; (void)to_device;
    return lsdm_err("built without CUDA");
}
static int lsdm_cuda_zero(void *p, size_t n) { (void)p; (void)n; return lsdm_err("built without CUDA"); }
#endif

void *lsdm_devmem_alloc(lsdm_device dev, size_t bytes) {
    if (dev == LSDM_DEVICE_CUDA) return lsdm_cuda_alloc(bytes);
    size_t padded = (bytes + 255) & ~(size_t)255;
    void *p = padded >= bytes ? aligned_alloc(256, padded ? padded : 256) : NULL;
    if (!p) lsdm_err("out of memory allocating %zu bytes", bytes);
    return p;
}

void lsdm_devmem_free(lsdm_device dev, void *p) {
    if (dev == LSDM_DEVICE_CUDA) lsdm_cuda_free(p);
    else free(p);
}

int lsdm_devmem_to_device(lsdm_device dev, void *dst, const void *src, size_t bytes) {
    if (dev == LSDM_DEVICE_CUDA) return lsdm_cuda_copy(dst, src, bytes, 1);
    memmove(dst, src, bytes);
    return 0;
}

int lsdm_devmem_to_host(lsdm_device dev, void *dst, const void *src, size_t bytes) {
    if (dev == LSDM_DEVICE_CUDA) return lsdm_cuda_copy(dst, src, bytes, 0);
    memmove(dst, src, bytes);
    return 0;
}

int lsdm_devmem_zero(lsdm_device dev, void *p, size_t bytes) {
    if (dev == LSDM_DEVICE_CUDA) return lsdm_cuda_zero(p, bytes);
    memset(p, 0, bytes);
    return 0;
}
