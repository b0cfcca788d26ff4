/* The reader reuses the previous record's mapping for the next record of
 * the same size (bench/README.md): every record must still come out with
 * its own data, zero padding and the right size, whatever sizes follow
 * each other and whether the caller keeps, frees or takes the record. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "err.h"
#include "stream.h"

static char tmpdir[] = "/tmp/lsdm-test-reuse.XXXXXX";

/* Records of d x 256 x 256 f32: d = 8 is 2 MiB (a mapping of its own),
 * d = 1 is 256 KiB (from malloc). Record i holds i*1000 + k at k. */
static const int depths[] = {8, 8, 8, 1, 8, 4, 4, 8, 1, 1, 8, 8};
enum { NREC = sizeof depths / sizeof *depths };

static void make(lsdm_record *r, int i) {
    int64_t shape[4] = {1, depths[i], 256, 256};
    lsdm_record_init(r);
    lsdm_record_alloc(r, LSDM_F32, 4, shape);
    float *p = r->data;
    for (size_t k = 0; k < r->nbytes / 4; k++) p[k] = (float)(i * 1000 + (int)(k % 997));
    lsdm_record_set(r, "name", "reuse");
    lsdm_record_set(r, "role", "image");
}

static int same(const lsdm_record *r, int i) {
    if (r->ndim != 4 || r->shape[1] != depths[i] || r->nbytes != (size_t)depths[i] * 256 * 256 * 4) return 0;
    const float *p = r->data;
    for (size_t k = 0; k < r->nbytes / 4; k++)
        if (p[k] != (float)(i * 1000 + (int)(k % 997))) return 0;
    size_t padded = (r->nbytes + 63) & ~(size_t)63; /* nbytes is a multiple of 64 here */
    return padded == r->nbytes && ((uintptr_t)r->data % 64) == 0;
}

/* how: 0 pass the same record back, 1 free it first, 2 take its data */
static void read_back(const char *path, int how) {
    lsdm_reader *rd = lsdm_reader_open(path);
    CHECK(rd != NULL);
    lsdm_record r, kept[NREC];
    lsdm_record_init(&r);
    int i = 0, rc;
    for (;;) {
        if (how == 1) lsdm_record_free(&r);
        if ((rc = lsdm_reader_next(rd, &r)) != 1) break;
        CHECK(i < NREC && same(&r, i));
        if (how == 2 && i < NREC) { kept[i] = r; lsdm_record_init(&r); }
        i++;
    }
    CHECK(rc == 0 && i == NREC);
    if (how == 2) /* taken records stay intact while the reader goes on */
        for (int k = 0; k < i && k < NREC; k++) {
            CHECK(same(&kept[k], k));
            lsdm_record_free(&kept[k]);
        }
    lsdm_record_free(&r);
    lsdm_reader_close(rd);
}

int main(void) {
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    char path[256];
    snprintf(path, sizeof path, "%s/reuse.lsdm", tmpdir);
    lsdm_writer *w = lsdm_writer_open(path, 1, 0);
    CHECK(w != NULL);
    for (int i = 0; i < NREC; i++) {
        lsdm_record r;
        make(&r, i);
        CHECK(lsdm_writer_put(w, &r) == 0);
        lsdm_record_free(&r);
    }
    CHECK(lsdm_writer_close(w) == 0);

    for (int how = 0; how < 3; how++) read_back(path, how);

    /* a truncated last record: the error frees what it was given */
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fclose(f);
    CHECK(truncate(path, len - 1000) == 0);
    lsdm_reader *rd = lsdm_reader_open(path);
    lsdm_record r;
    lsdm_record_init(&r);
    int n = 0, rc;
    while ((rc = lsdm_reader_next(rd, &r)) == 1) n++;
    CHECK(rc == -1 && n == NREC - 1 && r.data == NULL);
    CHECK(strstr(lsdm_err_msg(), "truncated") != NULL);
    lsdm_reader_close(rd);

    unlink(path);
    rmdir(tmpdir);
    return check_done("test_stream_reuse");
}
