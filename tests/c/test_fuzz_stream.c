/* Replays the stream fuzzer's inputs through the fuzz target itself: the
 * committed seeds (fuzz/corpus/stream/) and every input that once crashed
 * it (tests/data/fuzz/stream/). Under `make asan` this is the regression
 * test for each crash fixed; here it also checks what the seeds must give. */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

/* the target, with libFuzzer's entry points renamed for a plain main */
#define LLVMFuzzerInitialize fuzz_stream_init
#define LLVMFuzzerTestOneInput fuzz_stream_one
#include "../../fuzz/fuzz_stream.c"

static char top[PATH_MAX];

/* The source tree: three levels above this binary (BUILD/tests/NAME). */
static int find_top(void) {
    ssize_t n = readlink("/proc/self/exe", top, sizeof top - 1);
    if (n <= 0) return -1;
    top[n] = 0;
    for (int i = 0; i < 3; i++) {
        char *slash = strrchr(top, '/');
        if (!slash) return -1;
        *slash = 0;
    }
    return 0;
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)len + 1);
    *n = buf ? fread(buf, 1, (size_t)len, f) : 0;
    fclose(f);
    return buf;
}

/* Feed every file of dir to the target (which aborts on a broken promise).
 * Returns the number of files, -1 if the directory is missing. */
static int replay_dir(const char *dir) {
    char path[PATH_MAX + 256];
    snprintf(path, sizeof path, "%s/%s", top, dir);
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char file[PATH_MAX + 512];
        snprintf(file, sizeof file, "%s/%s", path, e->d_name);
        size_t len;
        uint8_t *buf = slurp(file, &len);
        CHECK(buf != NULL);
        if (!buf) continue;
        CHECK(fuzz_stream_one(buf, len) == 0);
        free(buf);
        n++;
    }
    closedir(d);
    return n;
}

/* Read a seed with the reader: records read, or -1 with the message. */
static long read_seed(const char *name, char *msg, size_t msgn) {
    char file[PATH_MAX + 256];
    snprintf(file, sizeof file, "%s/fuzz/corpus/stream/%s", top, name);
    lsdm_reader *rd = lsdm_reader_open(file);
    if (!rd) return -2;
    lsdm_record r;
    lsdm_record_init(&r);
    long n = 0;
    int rc;
    while ((rc = lsdm_reader_next(rd, &r)) == 1) n++;
    snprintf(msg, msgn, "%s", rc < 0 ? lsdm_err_msg() : "");
    lsdm_record_free(&r);
    lsdm_reader_close(rd);
    return rc < 0 ? -1 : n;
}

int main(void) {
    fuzz_stream_init(NULL, NULL);
    if (find_top()) { SKIP("cannot find the source tree"); return check_done("test_fuzz_stream"); }

    int seeds = replay_dir("fuzz/corpus/stream");
    if (seeds < 0) SKIP("no fuzz/corpus/stream here");
    else CHECK(seeds >= 10);
    replay_dir("tests/data/fuzz/stream"); /* absent while no crash has been found */

    if (seeds > 0) {
        char msg[1024];
        CHECK(read_seed("one-f32.lsdm", msg, sizeof msg) == 1);
        CHECK(read_seed("mixed.lsdm", msg, sizeof msg) == 5);
        CHECK(read_seed("vector.lsdm", msg, sizeof msg) == 1);
        CHECK(read_seed("bigger.lsdm", msg, sizeof msg) == 1);
        CHECK(read_seed("concat.lsdm", msg, sizeof msg) == 6);
        CHECK(read_seed("empty.lsdm", msg, sizeof msg) == 0);
        CHECK(read_seed("trunc-mid.lsdm", msg, sizeof msg) == -1 && strstr(msg, "truncated"));
        CHECK(read_seed("trunc-head.lsdm", msg, sizeof msg) == -1 && strstr(msg, "truncated"));
        CHECK(read_seed("no-eos.lsdm", msg, sizeof msg) == -1 && strstr(msg, "end-of-stream record"));
    }
    return check_done("test_fuzz_stream");
}
