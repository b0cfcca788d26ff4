/* libFuzzer target: any bytes fed to lsdm_nifti_decode must give a valid
 * record or a clean error, never a crash, a leak, a hang or a message of
 * nifticlib's own on stderr. Each input is decoded as an image and as a
 * label map, and once more gzip-compressed: the decoder must agree with
 * itself whether the bytes come plain or through zlib. Seeds (small .nii
 * files of several datatypes, byte orders and both versions) are in
 * fuzz/corpus/nifti/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "err.h"
#include "nifti.h"
#include "record.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    /* keep the decoder's own size limit under libFuzzer's malloc limit */
    setenv("LSDM_MAX_BYTES", "67108864", 1);
    return 0;
}

/* Every promise a consumer relies on; abort() if one is broken. */
static void record_touch(const lsdm_record *r, int labels) {
    if (lsdm_record_validate(r)) abort();
    if (r->ndim != 4) abort();
    if (labels && lsdm_dtype_is_float(r->dtype)) abort();
    double a[16], sp[3];
    if (lsdm_record_get_affine(r, a) != 1 || lsdm_record_get_spacing(r, sp) != 1) abort();
    if (!lsdm_record_get(r, "affine-source")) abort();
    for (int i = 0; i < 3; i++)
        if (!(sp[i] > 0)) abort();
    volatile uint8_t sum = 0;
    const uint8_t *p = r->data;
    for (size_t i = 0; i < r->nbytes; i++) sum ^= p[i];
    (void)sum;
}

static uint8_t *gzip_bytes(const uint8_t *src, size_t n, size_t *zn) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return NULL;
    size_t cap = deflateBound(&z, n) + 32;
    uint8_t *out = malloc(cap);
    z.next_in = (Bytef *)src, z.avail_in = (uInt)n, z.next_out = out, z.avail_out = (uInt)cap;
    if (!out || deflate(&z, Z_FINISH) != Z_STREAM_END) { free(out); deflateEnd(&z); return NULL; }
    *zn = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t zn = 0;
    uint8_t *gz = size < (1 << 20) ? gzip_bytes(data, size, &zn) : NULL;
    for (int labels = 0; labels <= 1; labels++) {
        lsdm_nifti_opts o = {labels, NULL};
        lsdm_record r, g;
        lsdm_record_init(&r);
        lsdm_record_init(&g);
        int rc = lsdm_nifti_decode(data, size, "fuzz", &o, &r);
        if (rc == 0) record_touch(&r, labels);
        else if (r.data || r.nkv) abort(); /* an error leaves nothing behind */
        /* the same bytes through gzip (data starting 1f 8b is gzip already) */
        if (gz && !(size >= 2 && data[0] == 0x1f && data[1] == 0x8b)) {
            int grc = lsdm_nifti_decode(gz, zn, "fuzz", &o, &g);
            if (grc != rc) abort();
            if (rc == 0 && (g.nbytes != r.nbytes || g.dtype != r.dtype || memcmp(g.data, r.data, r.nbytes) != 0))
                abort();
        }
        lsdm_record_free(&r);
        lsdm_record_free(&g);
    }
    free(gz);
    return 0;
}
