/* Unit tests of the tensor stream: round trips of every dtype, key
 * pass-through, concatenation, and every kind of damage a reader must
 * refuse with an error rather than a crash or a partial result. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "check.h"
#include "err.h"
#include "stream.h"

static char tmpdir[] = "/tmp/lsdm-test-stream.XXXXXX";

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    *n = fread(buf, 1, (size_t)len, f);
    fclose(f);
    return buf;
}

/* Read every record of buf; returns records read, or -1 on error. */
static long read_all(const void *buf, size_t n, lsdm_record *last) {
    FILE *f = fmemopen((void *)buf, n, "rb");
    lsdm_reader *rd = lsdm_reader_open_file(f, "mem");
    long count = 0;
    int rc;
    while ((rc = lsdm_reader_next(rd, last)) == 1) count++;
    lsdm_reader_close(rd);
    fclose(f);
    return rc < 0 ? -1 : count;
}

static void make_record(lsdm_record *r, lsdm_dtype t, const char *name) {
    int64_t shape[4] = {1, 3, 4, 5};
    lsdm_record_init(r);
    lsdm_record_alloc(r, t, 4, shape);
    for (size_t i = 0; i < r->nbytes; i++) ((uint8_t *)r->data)[i] = (uint8_t)(i * 7 + t);
    lsdm_record_set(r, "name", name);
    lsdm_record_set(r, "role", "image");
    double aff[16] = {0, 0, -1.5, 10.25, 0, 0.9375, 0, -3, 2.5, 0, 0, 1e-3, 0, 0, 0, 1};
    lsdm_record_set_affine(r, aff);
    lsdm_record_set(r, "x-unknown-key", "kept: as is, with : colons");
}

static void test_round_trip(void) {
    char path[256];
    snprintf(path, sizeof path, "%s/rt.lsdm", tmpdir);
    lsdm_writer *w = lsdm_writer_open(path, 3, 0);
    CHECK(w != NULL);
    lsdm_record r;
    for (int t = 0; t < LSDM_DTYPE_COUNT; t++) {
        make_record(&r, (lsdm_dtype)t, lsdm_dtype_name((lsdm_dtype)t));
        CHECK(lsdm_writer_put(w, &r) == 0);
        lsdm_record_free(&r);
    }
    CHECK(lsdm_writer_close(w) == 0);

    lsdm_reader *rd = lsdm_reader_open(path);
    CHECK(rd != NULL);
    lsdm_record got, want;
    lsdm_record_init(&got);
    int t = 0;
    while (lsdm_reader_next(rd, &got) == 1) {
        make_record(&want, (lsdm_dtype)t, lsdm_dtype_name((lsdm_dtype)t));
        CHECK(got.dtype == want.dtype && got.ndim == 4 && got.shape[3] == 5);
        CHECK(got.nbytes == want.nbytes && memcmp(got.data, want.data, got.nbytes) == 0);
        CHECK(strcmp(lsdm_record_get(&got, "name"), lsdm_dtype_name((lsdm_dtype)t)) == 0);
        CHECK(strcmp(lsdm_record_get(&got, "x-unknown-key"), "kept: as is, with : colons") == 0);
        double a[16], b[16];
        CHECK(lsdm_record_get_affine(&got, a) == 1 && lsdm_record_get_affine(&want, b) == 1);
        CHECK(memcmp(a, b, sizeof a) == 0); /* %.17g round-trips doubles exactly */
        lsdm_record_free(&want);
        t++;
    }
    CHECK(t == LSDM_DTYPE_COUNT);
    CHECK(lsdm_reader_count(rd) == LSDM_DTYPE_COUNT);
    lsdm_reader_close(rd);
    lsdm_record_free(&got);

    /* concatenated streams read as one */
    size_t n;
    char *one = slurp(path, &n);
    char *two = malloc(2 * n);
    memcpy(two, one, n);
    memcpy(two + n, one, n);
    lsdm_record_init(&got);
    CHECK(read_all(two, 2 * n, &got) == 2 * LSDM_DTYPE_COUNT);

    /* truncation anywhere is an error, never a crash or a clean end */
    int all_refused = 1;
    for (size_t cut = 0; cut < n; cut += (cut < 200 ? 1 : 37))
        if (read_all(one, cut, &got) != -1) { all_refused = 0; fprintf(stderr, "cut %zu accepted\n", cut); }
    CHECK(all_refused);
    /* a flipped bit anywhere is an error (checksums), never a crash */
    int flips_refused = 1;
    for (size_t pos = 0; pos < n; pos += 13) {
        one[pos] ^= 0x10;
        if (read_all(one, n, &got) != -1) { flips_refused = 0; fprintf(stderr, "flip at %zu accepted\n", pos); }
        one[pos] ^= 0x10;
    }
    CHECK(flips_refused);
    CHECK(read_all(one, n, &got) == LSDM_DTYPE_COUNT);
    lsdm_record_free(&got);
    free(one);
    free(two);
}

/* Compress raw record content as a frame the way a (possibly hostile)
 * producer could. */
static size_t frame(void *dst, size_t cap, const void *src, size_t n, int checksum) {
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, checksum);
    size_t z = ZSTD_compress2(c, dst, cap, src, n);
    ZSTD_freeCCtx(c);
    return z;
}

static size_t raw_record(uint8_t *buf, int kind, const char *text, size_t data_bytes) {
    size_t tl = strlen(text), hl = ((16 + tl + 63) & ~(size_t)63) - 16;
    memset(buf, 0, 16 + hl + data_bytes);
    memcpy(buf, "LSDM", 4);
    buf[4] = 1;
    buf[5] = (uint8_t)kind;
    buf[8] = (uint8_t)hl; buf[9] = (uint8_t)(hl >> 8);
    memcpy(buf + 16, text, tl);
    return 16 + hl + data_bytes;
}

static long read_raw(const char *text, size_t data_bytes, int with_eos, const char **msg) {
    static uint8_t raw[1 << 16], z[1 << 17];
    size_t n = raw_record(raw, 0, text, data_bytes), zn = frame(z, sizeof z, raw, n, 1);
    if (with_eos) {
        size_t m = raw_record(raw, 1, "records: 1\nEND\n", 0);
        zn += frame(z + zn, sizeof z - zn, raw, m, 1);
    }
    lsdm_record r;
    lsdm_record_init(&r);
    lsdm_err_clear();
    long got = read_all(z, zn, &r);
    lsdm_record_free(&r);
    *msg = lsdm_err_msg();
    return got;
}

static void test_hostile_headers(void) {
    const char *msg;
    CHECK(read_raw("dtype: u8\nshape: 2,2\nname: a\nrole: image\nEND\n", 4, 1, &msg) == 1);
    /* absurd dims are refused before any allocation */
    CHECK(read_raw("dtype: f32\nshape: 100000,100000,100000\nname: a\nrole: image\nEND\n", 4, 1, &msg) == -1);
    CHECK(strstr(msg, "too large") != NULL);
    /* a plausible shape whose size does not match the frame */
    CHECK(read_raw("dtype: f32\nshape: 1000,1000\nname: a\nrole: image\nEND\n", 4, 1, &msg) == -1);
    CHECK(strstr(msg, "does not match") != NULL);
    CHECK(read_raw("dtype: u8\nshape: 2,0\nname: a\nrole: image\nEND\n", 0, 1, &msg) == -1);
    CHECK(read_raw("dtype: u8\nshape: 1,1,1,1,1,1,1,1,1\nname: a\nrole: image\nEND\n", 1, 1, &msg) == -1);
    CHECK(read_raw("dtype: q7\nshape: 4\nname: a\nrole: image\nEND\n", 4, 1, &msg) == -1);
    CHECK(read_raw("dtype: u8\nshape: 4\nrole: image\nEND\n", 4, 1, &msg) == -1);   /* no name */
    CHECK(read_raw("dtype: u8\nshape: 4\nname: a\nrole: cat\nEND\n", 4, 1, &msg) == -1);
    CHECK(read_raw("dtype: u8\nshape: 4\nname: a\nrole: image\n", 4, 1, &msg) == -1); /* no END */
    CHECK(read_raw("dtype: u8\nshape: 4\nname: a\nrole: image\nEND\n", 4, 0, &msg) == -1);
    CHECK(strstr(msg, "end-of-stream") != NULL);

    /* frames without checksum, and plain zstd data, are not streams */
    uint8_t raw[256], z[512];
    size_t n = raw_record(raw, 0, "dtype: u8\nshape: 4\nname: a\nrole: image\nEND\n", 4);
    size_t zn = frame(z, sizeof z, raw, n, 0);
    lsdm_record r;
    lsdm_record_init(&r);
    CHECK(read_all(z, zn, &r) == -1);
    zn = frame(z, sizeof z, "hello", 5, 1);
    CHECK(read_all(z, zn, &r) == -1);
    CHECK(strstr(lsdm_err_msg(), "not a tensor stream") != NULL);
    CHECK(read_all("NOTASTREAMATALL!!!!!!!!!", 24, &r) == -1);
    CHECK(strstr(lsdm_err_msg(), "bad magic") != NULL);
    CHECK(read_all("", 0, &r) == -1);
    CHECK(strstr(lsdm_err_msg(), "empty") != NULL);
    lsdm_record_free(&r);
}

static void test_keys_and_dtypes(void) {
    lsdm_record r;
    lsdm_record_init(&r);
    CHECK(lsdm_record_set(&r, "bad key", "v") == -1);
    CHECK(lsdm_record_set(&r, "k", "two\nlines") == -1);
    CHECK(lsdm_record_set(&r, "shape", "1") == -1);
    CHECK(lsdm_record_set(&r, "k", "v1") == 0 && lsdm_record_set(&r, "k", "v2") == 0);
    CHECK(r.nkv == 1 && strcmp(lsdm_record_get(&r, "k"), "v2") == 0);
    lsdm_record_del(&r, "k");
    CHECK(lsdm_record_get(&r, "k") == NULL);
    CHECK(lsdm_record_add_provenance(&r, "a/1") == 0 && lsdm_record_add_provenance(&r, "b/2") == 0);
    CHECK(strcmp(lsdm_record_get(&r, "provenance"), "a/1; b/2") == 0);
    lsdm_record_free(&r);

    /* geometry numbers round-trip exactly, subnormals included (the NIfTI
     * fuzzer once found a header whose srow held 1e-310) */
    double aff[16] = {0.7, 4.9e-324, -1e-310, 1, 2.2250738585072014e-308, 1e300, 0, -0.1, 1.0 / 3, 0, 0, 0, 0, 0, 0, 1};
    double back[16];
    CHECK(lsdm_record_set_affine(&r, aff) == 0 && lsdm_record_get_affine(&r, back) == 1);
    CHECK(memcmp(aff, back, sizeof aff) == 0);
    CHECK(strncmp(lsdm_record_get(&r, "affine"), "0.7 4.94066e-324 -1e-310 1 2.2250738585072014e-308 1e+300 0 -0.1 0.3333333333333333 ", 83) == 0);
    CHECK(lsdm_record_set(&r, "affine", "1e999 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1") == 0);
    CHECK(lsdm_record_get_affine(&r, back) == -1); /* overflow is refused */
    lsdm_record_free(&r);

    lsdm_labels l;
    CHECK(lsdm_labels_parse("0=background,1=fat,7=dense tissue", &l) == 0);
    CHECK(l.n == 3 && strcmp(lsdm_labels_name(&l, 7), "dense tissue") == 0 && lsdm_labels_name(&l, 2) == NULL);
    lsdm_labels_free(&l);
    CHECK(lsdm_labels_parse("0=a,x=b", &l) == -1);

    /* f16 / bf16: exact values, rounding to nearest even, specials */
    CHECK(lsdm_f32_to_f16(1.0f) == 0x3c00 && lsdm_f32_to_f16(-2.0f) == 0xc000);
    CHECK(lsdm_f32_to_f16(65504.0f) == 0x7bff && lsdm_f32_to_f16(1e6f) == 0x7c00);
    CHECK(lsdm_f32_to_f16(5.9604645e-8f) == 0x0001);           /* smallest subnormal */
    CHECK(lsdm_f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00);       /* tie -> even */
    CHECK(lsdm_f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02);       /* tie -> even (up) */
    CHECK(lsdm_f16_to_f32(0x3555) == 0.333251953125f);
    CHECK(lsdm_f16_to_f32(0x0001) == 5.9604644775390625e-8f);
    CHECK(isnan(lsdm_f16_to_f32(lsdm_f32_to_f16(NAN))));
    CHECK(lsdm_f32_to_bf16(1.0f) == 0x3f80 && lsdm_bf16_to_f32(0x4049) == 3.140625f);
    int all_f16 = 1;
    for (uint32_t h = 0; h < 0x7c00; h++)   /* every finite positive f16 survives f32 and back */
        if (lsdm_f32_to_f16(lsdm_f16_to_f32((uint16_t)h)) != h) all_f16 = 0;
    CHECK(all_f16);
    int64_t shape[8];
    int nd;
    CHECK(lsdm_shape_parse("1,32,256,256", &nd, shape) == 0 && nd == 4 && shape[3] == 256);
    CHECK(lsdm_shape_parse("32x256x256", &nd, shape) == 0 && nd == 3);
    CHECK(lsdm_shape_parse("1,,2", &nd, shape) == -1 && lsdm_shape_parse("-1", &nd, shape) == -1);
}

static void test_atomic_output(void) {
    char path[256];
    snprintf(path, sizeof path, "%s/keep.lsdm", tmpdir);
    FILE *f = fopen(path, "w");
    fputs("old contents", f);
    fclose(f);
    lsdm_writer *w = lsdm_writer_open(path, 1, 0);
    lsdm_record r;
    make_record(&r, LSDM_F32, "x");
    CHECK(lsdm_writer_put(w, &r) == 0);
    lsdm_writer_abort(w); /* a failed producer leaves the old file */
    size_t n;
    char *buf = slurp(path, &n);
    CHECK(n == 12 && memcmp(buf, "old contents", 12) == 0);
    free(buf);
    /* no temporary files are left behind */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ls -A %s | grep -c tmp", tmpdir);
    FILE *p = popen(cmd, "r");
    int tmp_count = -1;
    CHECK(fscanf(p, "%d", &tmp_count) == 1);
    pclose(p);
    CHECK(tmp_count == 0);
    lsdm_record_free(&r);
}

int main(void) {
    if (!mkdtemp(tmpdir)) return 1;
    test_round_trip();
    test_hostile_headers();
    test_keys_and_dtypes();
    test_atomic_output();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) return 1;
    return check_done("test_stream");
}
