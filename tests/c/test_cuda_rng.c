/* Same seed, same noise: GPU Philox samples must equal the CPU's bit for
 * bit (uniform and normal, unaligned offsets, several streams). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "device.h"
#include "rng.h"
#ifdef LSDM_CUDA
#include "devmem.h"
#endif

int main(void) {
    GPU_OR_SKIP("test_cuda_rng");
#ifdef LSDM_CUDA
    const size_t n = 1000003; /* odd, so the last block is partial */
    float *cpu = malloc(n * sizeof *cpu), *gpu = malloc(n * sizeof *gpu);
    float *d = lsdm_devmem_alloc(LSDM_DEVICE_CUDA, n * sizeof *d);
    CHECK(cpu && gpu && d);
    const uint64_t seeds[] = {0, 1, 0xdeadbeefcafef00dull};
    const uint64_t offsets[] = {0, 3, 1ull << 33};
    for (int normal = 0; normal < 2; normal++)
        for (int s = 0; s < 3; s++)
            for (int o = 0; o < 3; o++) {
                uint64_t stream = (uint64_t)s * 7 + 1;
                if (normal) {
                    lsdm_rng_fill_normal(cpu, n, seeds[s], stream, offsets[o]);
                    CHECK(lsdm_rng_fill_normal_cuda(d, n, seeds[s], stream, offsets[o]) == 0);
                } else {
                    lsdm_rng_fill_uniform(cpu, n, seeds[s], stream, offsets[o]);
                    CHECK(lsdm_rng_fill_uniform_cuda(d, n, seeds[s], stream, offsets[o]) == 0);
                }
                CHECK(lsdm_devmem_to_host(LSDM_DEVICE_CUDA, gpu, d, n * sizeof *gpu) == 0);
                size_t diff = 0;
                for (size_t i = 0; i < n; i++) diff += memcmp(&cpu[i], &gpu[i], 4) != 0;
                if (diff) printf("normal=%d seed=%d offset=%d: %zu of %zu samples differ\n", normal, s, o, diff, n);
                CHECK(diff == 0);
            }
    lsdm_devmem_free(LSDM_DEVICE_CUDA, d);
    free(cpu);
    free(gpu);
#endif
    return check_done("test_cuda_rng");
}
