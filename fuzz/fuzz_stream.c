/* libFuzzer target: any bytes fed to the tensor stream reader must give
 * records or a clean error, never a crash, a leak or a hang. Every record
 * returned is checked against the promises the reader makes (valid, data
 * as long as the shape says) and its data and keys are touched, so that
 * a short buffer shows up under ASan.
 *
 * Two kinds of input (seeds of both are in fuzz/corpus/stream/):
 *   - starting with the zstd magic byte 0x28: fed to the reader as is;
 *   - anything else: record contents in the clear ("LSDM" prefix, header
 *     text, data), as `zstd -d` prints a stream. The target cuts it before
 *     each "LSDM" and compresses each piece as a frame with checksum and
 *     content size, the way the writer does. Mutations then reach the
 *     header parser with valid checksums instead of dying in zstd. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "err.h"
#include "record.h"
#include "stream.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    /* A frame header may promise a tensor of any size; keep the reader's
     * own limit well under libFuzzer's malloc limit so that the limit,
     * not an out-of-memory report, is what a huge claim meets. */
    setenv("LSDM_MAX_BYTES", "67108864", 1);
    return 0;
}

/* Read every field a consumer would, and abort on a broken promise. */
static void record_touch(const lsdm_record *r) {
    if (lsdm_record_validate(r)) abort();
    size_t nbytes;
    if (lsdm_shape_bytes(r->ndim, r->shape, r->dtype, &nbytes) || nbytes != r->nbytes) abort();
    volatile uint8_t sum = 0;
    const uint8_t *p = r->data;
    for (size_t i = 0; i < r->nbytes; i += 61) sum ^= p[i];
    if (r->nbytes) sum ^= p[r->nbytes - 1];
    for (int i = 0; i < r->nkv; i++) sum ^= (uint8_t)strlen(r->kv[i].key) ^ (uint8_t)strlen(r->kv[i].value);
    double a[16], sp[3];
    lsdm_record_get_affine(r, a);
    lsdm_record_get_spacing(r, sp);
    const char *labels = lsdm_record_get(r, "labels");
    lsdm_labels l;
    if (labels && lsdm_labels_parse(labels, &l) == 0) {
        lsdm_labels_name(&l, 1);
        lsdm_labels_free(&l);
    }
    (void)sum;
}

/* Cut plain record contents before each "LSDM" and compress each piece
 * as one checksummed frame. Returns a malloc'd stream (*n bytes) or NULL. */
static uint8_t *frames_from_plain(const uint8_t *data, size_t size, size_t *n) {
    static ZSTD_CCtx *cctx;
    if (!cctx) {
        cctx = ZSTD_createCCtx();
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 1);
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
    }
    size_t cap = size + size / 8 + 64 * (size / 4 + 1), used = 0;
    uint8_t *out = malloc(cap);
    if (!out) return NULL;
    size_t start = 0;
    while (start < size) {
        size_t end = start + 4;
        while (end < size && !(end + 4 <= size && memcmp(data + end, "LSDM", 4) == 0)) end++;
        if (end > size) end = size;
        size_t c = ZSTD_compress2(cctx, out + used, cap - used, data + start, end - start);
        if (ZSTD_isError(c)) { free(out); return NULL; }
        used += c;
        start = end;
    }
    *n = used;
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0; /* fmemopen refuses an empty buffer */
    uint8_t *framed = NULL;
    if (data[0] != 0x28) {
        if (!(framed = frames_from_plain(data, size, &size))) return 0;
        data = framed;
    }
    FILE *f = fmemopen((void *)data, size, "rb");
    if (!f) { free(framed); return 0; }
    lsdm_err_clear();
    lsdm_reader *rd = lsdm_reader_open_file(f, "fuzz");
    if (!rd) abort();
    /* Odd sizes go through the sniff-and-unread path programs use to tell
     * a stream from a NIfTI file; the bytes the reader sees are the same. */
    if (size & 1) {
        uint8_t head[4096];
        size_t n = fread(head, 1, size < sizeof head ? size : sizeof head, f);
        if (lsdm_reader_unread(rd, head, n)) abort();
    }
    lsdm_record r;
    lsdm_record_init(&r);
    int rc;
    long n = 0;
    while ((rc = lsdm_reader_next(rd, &r)) == 1) {
        record_touch(&r);
        n++;
    }
    if (rc == 0 && r.data) abort(); /* a clean end leaves the record empty */
    if (rc < 0 && !strcmp(lsdm_err_msg(), "unknown error")) abort(); /* an error says why */
    if (lsdm_reader_count(rd) != n) abort();
    lsdm_record_free(&r);
    lsdm_reader_close(rd);
    fclose(f);
    free(framed);
    return 0;
}
