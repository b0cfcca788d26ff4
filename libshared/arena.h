/* Arena memory for activations and workspaces: one allocation up front
 * (host memory, or device memory through the backend), then bump-pointer
 * allocation with marks, so a forward pass allocates nothing after its
 * first run and memory is released in stack order as layers finish. */
#ifndef LSDM_ARENA_H
#define LSDM_ARENA_H

#include <stddef.h>

#include "device.h"

#define LSDM_ARENA_ALIGN 256 /* covers AVX-512 loads and CUDA's alignment */

typedef struct {
    char *base;
    size_t size; /* bytes owned */
    size_t used; /* bytes in use (the top of the stack) */
    size_t peak; /* highest `used` seen: what a run needed */
    lsdm_device dev;
} lsdm_arena;

/* Reserve `bytes` on dev. 0 ok, -1 with lsdm_err. */
int lsdm_arena_init(lsdm_arena *a, lsdm_device dev, size_t bytes);
void lsdm_arena_free(lsdm_arena *a);
/* `bytes` more, aligned; NULL with lsdm_err when the arena is full
 * (the message says how much a run needs, to size the next arena). */
void *lsdm_arena_alloc(lsdm_arena *a, size_t bytes);
float *lsdm_arena_floats(lsdm_arena *a, size_t n);
/* Everything allocated after a mark is released by lsdm_arena_release. */
size_t lsdm_arena_mark(const lsdm_arena *a);
void lsdm_arena_release(lsdm_arena *a, size_t mark);

#endif
