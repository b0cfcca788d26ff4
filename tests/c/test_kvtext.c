/* kv_parse and kv_read_file: the `key = value` text of configs. */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include "check.h"
#include "err.h"
#include "kvtext.h"

typedef struct {
    char keys[8][32], vals[8][32];
    int n;
} pairs;

/* "a" and "b" take anything, "bad" is always a bad value, "own" reports
 * its own error; everything else is unknown. */
static int collect(void *ctx, const char *k, const char *v) {
    pairs *p = ctx;
    if (!strcmp(k, "bad")) return -1;
    if (!strcmp(k, "own")) {
        lsdm_err("own says no to '%s'", v);
        return -3;
    }
    if (strcmp(k, "a") && strcmp(k, "b")) return -2;
    snprintf(p->keys[p->n], 32, "%s", k);
    snprintf(p->vals[p->n], 32, "%s", v);
    p->n++;
    return 0;
}

int main(void) {
    pairs p = {0};
    CHECK(kv_parse("# comment\n\n  a =  1, 2  # trailing\nb: x y\n", "config", collect, &p) == 0);
    CHECK(p.n == 2 && !strcmp(p.keys[0], "a") && !strcmp(p.vals[0], "1, 2"));
    CHECK(!strcmp(p.keys[1], "b") && !strcmp(p.vals[1], "x y"));
    /* line numbers count blank and comment lines */
    memset(&p, 0, sizeof p);
    CHECK(kv_parse("a = 1\n\n# c\nzzz = 2\n", "config", collect, &p) == -1);
    CHECK(!strcmp(lsdm_err_msg(), "config line 4: unknown key 'zzz'"));
    CHECK(kv_parse("bad = 7", "diffusion", collect, &p) == -1);
    CHECK(!strcmp(lsdm_err_msg(), "diffusion line 1: bad value for bad: '7'"));
    CHECK(kv_parse("\nown = q\n", "config", collect, &p) == -1);
    CHECK(!strcmp(lsdm_err_msg(), "config line 2: own says no to 'q'"));
    CHECK(kv_parse("just words\n", "config", collect, &p) == -1);
    CHECK(!strcmp(lsdm_err_msg(), "config line 1: expected 'key = value': just words"));
    /* files: read, missing, too long */
    char path[] = "/tmp/lsdm-kvtext-XXXXXX", buf[16];
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("a = 1\nb = 22\n", f);
    fclose(f);
    CHECK(kv_read_file(path, buf, sizeof buf) == 0 && !strcmp(buf, "a = 1\nb = 22\n"));
    char small[8];
    CHECK(kv_read_file(path, small, sizeof small) == -1 && strstr(lsdm_err_msg(), "longer than 7 bytes"));
    remove(path);
    CHECK(kv_read_file(path, buf, sizeof buf) == -1 && strstr(lsdm_err_msg(), "cannot open config"));
    return check_done("test_kvtext");
}
