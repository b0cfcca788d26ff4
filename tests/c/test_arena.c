/* Arena and device memory: alignment, stack-order release, peak, a clean
 * error when full; host<->GPU copies where a GPU exists. */
#include <stdint.h>
#include <string.h>

#include "arena.h"
#include "check.h"
#include "devmem.h"
#include "err.h"

static void test_host_arena(void) {
    lsdm_arena a;
    CHECK(lsdm_arena_init(&a, LSDM_DEVICE_CPU, 4096) == 0);
    CHECK(a.size == 4096);
    float *x = lsdm_arena_floats(&a, 10);
    char *y = lsdm_arena_alloc(&a, 1);
    CHECK(x && y && (uintptr_t)x % LSDM_ARENA_ALIGN == 0 && (uintptr_t)y % LSDM_ARENA_ALIGN == 0);
    CHECK(y - (char *)x == 256 && a.used == 512);
    size_t m = lsdm_arena_mark(&a);
    CHECK(lsdm_arena_alloc(&a, 3000) != NULL && a.used == 512 + 3072);
    lsdm_arena_release(&a, m);
    CHECK(a.used == 512 && a.peak == 512 + 3072);
    /* memory released in stack order is handed out again at the same place */
    CHECK(lsdm_arena_alloc(&a, 100) == (void *)((char *)x + 512));
    CHECK(lsdm_arena_alloc(&a, 1 << 20) == NULL);
    CHECK(strstr(lsdm_err_msg(), "arena on cpu full") != NULL);
    CHECK(lsdm_arena_alloc(&a, (size_t)-1) == NULL); /* no overflow wrap */
    CHECK(lsdm_arena_floats(&a, (size_t)-1 / 2) == NULL);
    lsdm_arena_free(&a);
    CHECK(a.base == NULL && a.size == 0);
}

static void test_cuda_memory(void) {
    const char *why = NULL;
    if (lsdm_cuda_device_count(&why) < 1) { SKIP("no GPU"); return; }
    lsdm_arena a;
    CHECK(lsdm_arena_init(&a, LSDM_DEVICE_CUDA, 1 << 20) == 0);
    float host[1000], back[1000];
    for (int i = 0; i < 1000; i++) host[i] = (float)i * 0.5f - 3;
    float *d = lsdm_arena_floats(&a, 1000);
    CHECK(d != NULL);
    CHECK(lsdm_devmem_to_device(LSDM_DEVICE_CUDA, d, host, sizeof host) == 0);
    memset(back, 0, sizeof back);
    CHECK(lsdm_devmem_to_host(LSDM_DEVICE_CUDA, back, d, sizeof back) == 0);
    CHECK(memcmp(host, back, sizeof host) == 0);
    CHECK(lsdm_devmem_zero(LSDM_DEVICE_CUDA, d, sizeof host) == 0);
    CHECK(lsdm_devmem_to_host(LSDM_DEVICE_CUDA, back, d, sizeof back) == 0);
    CHECK(back[0] == 0 && back[999] == 0);
    lsdm_arena_free(&a);
}

int main(void) {
    test_host_arena();
    test_cuda_memory();
    return check_done("test_arena");
}
