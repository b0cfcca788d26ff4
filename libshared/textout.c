#include "textout.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lsdm_fmt_num(char *buf, size_t n, double v) {
    if (isinf(v)) { snprintf(buf, n, "%s", v > 0 ? "inf" : "-inf"); return; }
    snprintf(buf, n, "%.15g", v);
    if (strtod(buf, NULL) != v) snprintf(buf, n, "%.17g", v);
}

void lsdm_json_num(double v) {
    char b[40];
    if (!isfinite(v)) { fputs("null", stdout); return; }
    lsdm_fmt_num(b, sizeof b, v == 0 ? 0 : v);
    fputs(b, stdout);
}

void lsdm_json_str(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    putchar('"');
    while (*p) {
        unsigned c = *p;
        if (c == '"' || c == '\\') { printf("\\%c", c); p++; continue; }
        if (c < 0x20) { printf("\\u%04x", c); p++; continue; }
        if (c < 0x80) { putchar((int)c); p++; continue; }
        int len = c >= 0xf0 && c < 0xf5 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
        if (c >= 0xf5) len = 0;
        int ok = len > 0;
        for (int i = 1; ok && i < len; i++) ok = (p[i] & 0xc0) == 0x80;
        if (ok && len == 3) ok = !(c == 0xe0 && p[1] < 0xa0) && !(c == 0xed && p[1] >= 0xa0);
        if (ok && len == 4) ok = !(c == 0xf0 && p[1] < 0x90) && !(c == 0xf4 && p[1] >= 0x90);
        if (!ok) { fputs("\\ufffd", stdout); p++; continue; }
        fwrite(p, 1, (size_t)len, stdout);
        p += len;
    }
    putchar('"');
}

void lsdm_csv_field(const char *s) {
    if (!strpbrk(s, ",\"\r\n")) { fputs(s, stdout); return; }
    putchar('"');
    for (; *s; s++) {
        if (*s == '"') putchar('"');
        putchar(*s);
    }
    putchar('"');
}
