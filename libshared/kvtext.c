/* `key = value` text. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kvtext.h"

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}

int kv_parse(const char *text, const char *what, kv_set_fn set, void *ctx) {
    char *buf = strdup(text);
    if (!buf) return lsdm_err("out of memory");
    int lineno = 0, rc = 0;
    for (char *line = buf, *next; line && rc == 0; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        lineno++;
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        char *s = trim(line);
        if (!*s) continue;
        char *eq = strchr(s, '=');
        if (!eq) eq = strchr(s, ':');
        if (!eq) {
            rc = lsdm_err("%s line %d: expected 'key = value': %s", what, lineno, s);
            break;
        }
        *eq = 0;
        char *k = trim(s), *v = trim(eq + 1);
        int r = set(ctx, k, v);
        if (r == -3) rc = lsdm_err_ctx("%s line %d", what, lineno);
        else if (r == -2) rc = lsdm_err("%s line %d: unknown key '%s'", what, lineno, k);
        else if (r < 0) rc = lsdm_err("%s line %d: bad value for %s: '%s'", what, lineno, k, v);
    }
    free(buf);
    return rc < 0 ? -1 : 0;
}

int kv_read_file(const char *path, char *buf, size_t size) {
    FILE *f = fopen(path, "rb");
    if (!f) return lsdm_err("cannot open config %s: %m", path);
    size_t n = fread(buf, 1, size - 1, f);
    int err = ferror(f), more = !feof(f) && fgetc(f) != EOF;
    fclose(f);
    if (err) return lsdm_err("cannot read config %s", path);
    if (more) return lsdm_err("config %s is longer than %zu bytes", path, size - 1);
    buf[n] = 0;
    return 0;
}
