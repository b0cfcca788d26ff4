/* libFuzzer target: any bytes given to the safetensors reader must be
 * refused with a clean error or give tensors whose every byte range lies
 * inside the buffer and matches its shape and dtype. Seeds: files written
 * by Python's safetensors and by our converter (fuzz/corpus/safetensors/). */
#include <stdint.h>
#include <stdlib.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    st_file f;
    if (safetensors_open_mem(&f, data, size, "fuzz") != 0) return 0;
    uint64_t covered = 0;
    for (int i = 0; i < f.n; i++) {
        const st_tensor *t = &f.t[i];
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= (uint64_t)t->shape[d];
        if (t->end < t->begin || t->end > f.data_size) abort();
        if (t->end - t->begin != numel * st_dtype_size(t->dtype)) abort();
        if (safetensors_find(&f, t->name) == NULL) abort();
        const uint8_t *p = safetensors_data(&f, t);
        volatile uint8_t sink = 0;
        for (uint64_t k = 0; k < t->end - t->begin; k++) sink ^= p[k]; /* touch every byte */
        (void)sink;
        covered += t->end - t->begin;
        if (numel <= (1 << 16) && (t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16)) {
            float *dst = malloc((numel ? numel : 1) * sizeof *dst);
            if (safetensors_read_f32(&f, t, dst) != 0) abort();
            free(dst);
        }
    }
    if (covered > f.data_size) abort();
    safetensors_close(&f);
    return 0;
}
