#include "namepat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* Length of the %-conversion at p ("%04d", "%%"), or 0 if not one we take. */
static size_t conv_len(const char *p) {
    size_t i = 1;
    if (p[1] == '%') return 2;
    while (p[i] && strchr("-0+ ", p[i])) i++;
    size_t w = i;
    while (p[i] >= '0' && p[i] <= '9') i++;
    if (i - w > 2) return 0; /* width at most 99 */
    return p[i] == 'd' ? i + 1 : 0;
}

int lsdm_namepat_is_pattern(const char *s) { return strchr(s, '%') || strstr(s, "{name}"); }

int lsdm_namepat_check(const char *pat) {
    for (const char *p = pat; *p; p++) {
        if (*p != '%') continue;
        size_t n = conv_len(p);
        if (!n) return lsdm_err("bad pattern '%s': only %%d (e.g. %%04d), %%%% and {name} are allowed", pat);
        p += n - 1;
    }
    return 0;
}

char *lsdm_namepat_format(const char *pat, long index, const char *name) {
    if (lsdm_namepat_check(pat)) return NULL;
    size_t cap = strlen(pat) + 64, len = 0;
    char *out = malloc(cap);
    for (const char *p = pat; out && *p;) {
        char piece[128];
        const char *add = piece;
        size_t n = 1;
        if (*p == '%' && p[1] == '%') {
            piece[0] = '%', piece[1] = 0, n = 2;
        } else if (*p == '%') {
            char fmt[16];
            n = conv_len(p);
            snprintf(fmt, sizeof fmt, "%.*sld", (int)(n - 1), p); /* %04d -> %04ld */
            snprintf(piece, sizeof piece, fmt, index);
        } else if (strncmp(p, "{name}", 6) == 0) {
            add = name ? name : "", n = 6;
        } else {
            piece[0] = *p, piece[1] = 0;
        }
        size_t k = strlen(add);
        if (len + k + 1 > cap) {
            cap = 2 * (len + k + 1);
            char *q = realloc(out, cap);
            if (!q) { free(out); out = NULL; break; }
            out = q;
        }
        memcpy(out + len, add, k + 1);
        len += k;
        p += n;
    }
    if (!out) lsdm_err("out of memory");
    return out;
}

char *lsdm_name_sanitize(const char *name) {
    size_t n = strlen(name);
    if (n > 200) n = 200;
    char *s = malloc(n + 7);
    if (!s) return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        s[i] = c == '/' || c < 0x20 || c == 0x7f ? '_' : (char)c;
    }
    s[n] = 0;
    if (s[0] == '.') s[0] = '_';
    if (n == 0) strcpy(s, "volume");
    return s;
}
