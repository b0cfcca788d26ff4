/* Unit tests of label maps: inline and file syntax, every malformed
 * form refused, lookups, and applying a map to each input type. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "err.h"
#include "labelmap.h"

static void test_parse(void) {
    lsdm_labelmap m;
    CHECK(lsdm_labelmap_parse("1-20=1, 21=2,30-30=3,*=0", &m) == 0);
    CHECK(m.n == 3 && m.rest == 0 && m.max_dst == 3);
    CHECK(lsdm_labelmap_lookup(&m, 1) == 1 && lsdm_labelmap_lookup(&m, 20) == 1);
    CHECK(lsdm_labelmap_lookup(&m, 21) == 2 && lsdm_labelmap_lookup(&m, 30) == 3);
    CHECK(lsdm_labelmap_lookup(&m, 0) == 0 && lsdm_labelmap_lookup(&m, 22) == 0 && lsdm_labelmap_lookup(&m, -5) == 0);
    lsdm_labelmap_free(&m);

    CHECK(lsdm_labelmap_parse("*=3", &m) == 0); /* no rules, only the rest */
    CHECK(m.n == 0 && m.max_dst == 3 && lsdm_labelmap_lookup(&m, 0) == 3 && lsdm_labelmap_lookup(&m, 99) == 3);
    lsdm_labelmap_free(&m);

    CHECK(lsdm_labelmap_parse("5=1,3=2", &m) == 0);
    CHECK(m.rest == -1 && lsdm_labelmap_lookup(&m, 4) == -1 && lsdm_labelmap_lookup(&m, 3) == 2);
    lsdm_labelmap_free(&m);

    static const struct { const char *spec, *msg; } bad[] = {
        {"1=2,1=3", "mapped twice"}, {"1-3=1,3=2", "mapped twice"}, {"5-3=1", "empty range"},
        {"a=1", "bad label"}, {"1=256", "bad class"}, {"1=-1", "bad class"}, {"-1=1", "bad label"},
        {"*=1,*=2", "twice"}, {"", "need src=dst"}, {"1", "need src=dst"}, {"1=", "bad class"},
        {"1=2,", "need src=dst"}, {"1-=2", "bad label"}, {"99999999999=1", "bad label"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = lsdm_labelmap_parse(bad[i].spec, &m);
        CHECK(rc == -1);
        if (rc == -1) CHECK(strstr(lsdm_err_msg(), bad[i].msg) != NULL);
        if (rc == -1 && !strstr(lsdm_err_msg(), bad[i].msg))
            fprintf(stderr, "'%s': message '%s' lacks '%s'\n", bad[i].spec, lsdm_err_msg(), bad[i].msg);
        if (rc == 0) lsdm_labelmap_free(&m);
    }
}

static char *write_tmp(const char *text) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/lsdm-test-map.XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) return NULL;
    close(fd);
    return path;
}

static void test_file(void) {
    lsdm_labelmap m;
    char *p = write_tmp("# groups\n1-20 1 frontal lobe\n\n21-28  1 frontal lobe   # again\n"
                        "29\t2 insula\r\n30 2\n* 0 background\n");
    CHECK(lsdm_labelmap_read_file(p, &m) == 0);
    CHECK(m.n == 4 && m.rest == 0 && m.max_dst == 2);
    CHECK(lsdm_labelmap_lookup(&m, 25) == 1 && lsdm_labelmap_lookup(&m, 30) == 2);
    CHECK(m.names.n == 3);
    CHECK(lsdm_labels_name(&m.names, 1) && !strcmp(lsdm_labels_name(&m.names, 1), "frontal lobe"));
    CHECK(lsdm_labels_name(&m.names, 2) && !strcmp(lsdm_labels_name(&m.names, 2), "insula"));
    CHECK(lsdm_labels_name(&m.names, 0) && !strcmp(lsdm_labels_name(&m.names, 0), "background"));
    lsdm_labelmap_free(&m);
    /* "@FILE" through load */
    char at[80];
    snprintf(at, sizeof at, "@%s", p);
    CHECK(lsdm_labelmap_load(at, &m) == 0 && m.n == 4);
    lsdm_labelmap_free(&m);
    unlink(p);

    static const struct { const char *text, *msg; } bad[] = {
        {"1 1 a\n2 1 b\n", ":2: class 1 named both"},
        {"1 1\n2\n", ":2: need 'src dst"},
        {"1 1\n1-4 2\n", "mapped twice"},
        {"# nothing\n", "empty label map"},
        {"x 1\n", ":1: bad label"},
        {"1 300\n", ":1: bad class"},
        {"1 1 a,b\n", "holds ','"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        p = write_tmp(bad[i].text);
        int rc = lsdm_labelmap_read_file(p, &m);
        CHECK(rc == -1);
        int good = rc == -1 && strstr(lsdm_err_msg(), bad[i].msg) && strstr(lsdm_err_msg(), p);
        CHECK(good);
        if (!good) fprintf(stderr, "file %zu: message '%s' lacks '%s' or the path\n", i, lsdm_err_msg(), bad[i].msg);
        if (rc == 0) lsdm_labelmap_free(&m);
        unlink(p);
    }
    CHECK(lsdm_labelmap_read_file("/nonexistent/map", &m) == -1 && strstr(lsdm_err_msg(), "/nonexistent/map"));
}

static void test_apply(void) {
    lsdm_labelmap m;
    uint8_t out[8];
    int top;
    /* identity */
    uint8_t u8[6] = {0, 1, 5, 5, 2, 0};
    CHECK(lsdm_labelmap_apply(NULL, u8, LSDM_U8, 6, -1, 256, out, &top) == 0);
    CHECK(memcmp(out, u8, 6) == 0 && top == 5);
    CHECK(lsdm_labelmap_apply(NULL, u8, LSDM_U8, 6, -1, 5, out, &top) == -1);
    CHECK(strstr(lsdm_err_msg(), "label 5 gives class 5, but there are only 5 classes") != NULL);
    int16_t neg[3] = {0, -3, 1};
    CHECK(lsdm_labelmap_apply(NULL, neg, LSDM_I16, 3, -1, 256, out, NULL) == -1 && strstr(lsdm_err_msg(), "label -3"));

    /* a map over i16, with unknown labels */
    CHECK(lsdm_labelmap_parse("1-10=1,11=2,0=0", &m) == 0);
    int16_t s16[5] = {0, 3, 11, 10, 7};
    CHECK(lsdm_labelmap_apply(&m, s16, LSDM_I16, 5, -1, 3, out, &top) == 0);
    CHECK(out[0] == 0 && out[1] == 1 && out[2] == 2 && out[3] == 1 && out[4] == 1 && top == 2);
    int16_t unk[4] = {0, 12, -4, 1};
    CHECK(lsdm_labelmap_apply(&m, unk, LSDM_I16, 4, -1, 3, out, NULL) == -1);
    CHECK(strstr(lsdm_err_msg(), "label 12 is not in the label map") != NULL);
    CHECK(lsdm_labelmap_apply(&m, unk, LSDM_I16, 4, 0, 3, out, &top) == 0);
    CHECK(out[0] == 0 && out[1] == 0 && out[2] == 0 && out[3] == 1 && top == 1);
    CHECK(lsdm_labelmap_apply(&m, s16, LSDM_I16, 5, -1, 2, out, NULL) == -1 && strstr(lsdm_err_msg(), "class 2"));
    lsdm_labelmap_free(&m);

    /* i32 over a huge range: no lookup table, searched per voxel */
    CHECK(lsdm_labelmap_parse("100000000=3,0=1,*=2", &m) == 0);
    int32_t s32[4] = {100000000, 0, -2000000000, 5};
    CHECK(lsdm_labelmap_apply(&m, s32, LSDM_I32, 4, -1, 4, out, &top) == 0);
    CHECK(out[0] == 3 && out[1] == 1 && out[2] == 2 && out[3] == 2 && top == 3);
    lsdm_labelmap_free(&m);

    /* floats: integral values are labels, anything else is an image */
    float f[4] = {0, 1, 2, 1};
    CHECK(lsdm_labelmap_apply(NULL, f, LSDM_F32, 4, -1, 256, out, &top) == 0 && out[2] == 2 && top == 2);
    float img[3] = {0, 0.25f, 1};
    CHECK(lsdm_labelmap_apply(NULL, img, LSDM_F32, 3, -1, 256, out, NULL) == -1);
    CHECK(strstr(lsdm_err_msg(), "voxel 1 holds 0.25, not an integer label") != NULL);
    float nan[2] = {0, NAN};
    CHECK(lsdm_labelmap_apply(NULL, nan, LSDM_F32, 2, -1, 256, out, NULL) == -1);
    uint16_t h[2] = {lsdm_f32_to_f16(3.0f), lsdm_f32_to_f16(0.5f)};
    CHECK(lsdm_labelmap_apply(NULL, h, LSDM_F16, 1, -1, 256, out, NULL) == 0 && out[0] == 3);
    CHECK(lsdm_labelmap_apply(NULL, h, LSDM_F16, 2, -1, 256, out, NULL) == -1);
    /* nothing to do */
    CHECK(lsdm_labelmap_apply(NULL, u8, LSDM_U8, 0, -1, 1, out, &top) == 0 && top == 0);
}

int main(void) {
    test_parse();
    test_file();
    test_apply();
    return check_done("test_labelmap");
}
