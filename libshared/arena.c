#include "arena.h"

#include <stdlib.h>
#include <string.h>

#include "devmem.h"
#include "err.h"

int lsdm_arena_init(lsdm_arena *a, lsdm_device dev, size_t bytes) {
    memset(a, 0, sizeof *a);
    bytes = (bytes + LSDM_ARENA_ALIGN - 1) & ~(size_t)(LSDM_ARENA_ALIGN - 1);
    if (bytes && !(a->base = lsdm_devmem_alloc(dev, bytes))) return -1;
    a->size = bytes;
    a->dev = dev;
    return 0;
}

void lsdm_arena_free(lsdm_arena *a) {
    if (a->base) lsdm_devmem_free(a->dev, a->base);
    memset(a, 0, sizeof *a);
}

void *lsdm_arena_alloc(lsdm_arena *a, size_t bytes) {
    size_t need = (bytes + LSDM_ARENA_ALIGN - 1) & ~(size_t)(LSDM_ARENA_ALIGN - 1);
    if (need < bytes || need > a->size - a->used) {
        lsdm_err("arena on %s full: %zu bytes in use, %zu more asked, %zu reserved",
                 lsdm_device_name(a->dev), a->used, bytes, a->size);
        return NULL;
    }
    void *p = a->base + a->used;
    a->used += need;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

float *lsdm_arena_floats(lsdm_arena *a, size_t n) {
    if (n > (size_t)-1 / sizeof(float)) { lsdm_err("arena: %zu floats is too many", n); return NULL; }
    return lsdm_arena_alloc(a, n * sizeof(float));
}

size_t lsdm_arena_mark(const lsdm_arena *a) { return a->used; }

void lsdm_arena_release(lsdm_arena *a, size_t mark) {
    if (mark <= a->used) a->used = mark;
}
