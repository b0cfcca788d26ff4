#include "labelmap.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* Largest source label: labels come from u8/i16/i32 (or integral floats). */
#define LABEL_MAX 2147483647LL

void lsdm_labelmap_free(lsdm_labelmap *m) {
    free(m->rules);
    lsdm_labels_free(&m->names);
    memset(m, 0, sizeof *m);
    m->rest = -1;
}

static void labelmap_init(lsdm_labelmap *m) {
    memset(m, 0, sizeof *m);
    m->rest = -1;
    m->max_dst = -1;
}

/* A non-negative decimal integer filling s[0..n), at most hi. */
static int parse_int(const char *s, size_t n, int64_t hi, int64_t *out) {
    if (n == 0 || n > 19) return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) return -1;
        v = v * 10 + (s[i] - '0');
        if (v > hi) return -1;
    }
    *out = v;
    return 0;
}

/* Add the rule "src -> dst" where src is "N", "A-B" or "*". */
static int labelmap_add(lsdm_labelmap *m, const char *src, size_t srclen, const char *dst, size_t dstlen) {
    int64_t lo, hi, d;
    if (parse_int(dst, dstlen, LSDM_LABELMAP_MAX_CLASS, &d))
        return lsdm_err("bad class '%.*s' (need 0..%d)", (int)(dstlen > 40 ? 40 : dstlen), dst, LSDM_LABELMAP_MAX_CLASS);
    if (srclen == 1 && src[0] == '*') {
        if (m->rest >= 0) return lsdm_err("'*' given twice");
        m->rest = (int)d;
    } else {
        const char *dash = memchr(src, '-', srclen);
        int bad = dash ? parse_int(src, (size_t)(dash - src), LABEL_MAX, &lo) ||
                         parse_int(dash + 1, srclen - (size_t)(dash - src) - 1, LABEL_MAX, &hi)
                       : parse_int(src, srclen, LABEL_MAX, &lo);
        if (!dash) hi = lo;
        if (bad) return lsdm_err("bad label '%.*s' (need N, A-B or *)", (int)(srclen > 40 ? 40 : srclen), src);
        if (lo > hi) return lsdm_err("empty range '%.*s'", (int)srclen, src);
        lsdm_labelrule *r = realloc(m->rules, (size_t)(m->n + 1) * sizeof *r);
        if (!r) return lsdm_err("out of memory");
        m->rules = r;
        m->rules[m->n++] = (lsdm_labelrule){lo, hi, (int)d};
    }
    if (d > m->max_dst) m->max_dst = (int)d;
    return 0;
}

/* Name class dst; the same class named twice must get the same name. */
static int labelmap_name(lsdm_labelmap *m, int dst, const char *name) {
    if (strpbrk(name, ",=")) return lsdm_err("class name '%.40s' holds ',' or '='", name);
    const char *old = lsdm_labels_name(&m->names, dst);
    if (old) {
        if (strcmp(old, name)) return lsdm_err("class %d named both '%.40s' and '%.40s'", dst, old, name);
        return 0;
    }
    lsdm_labels *l = &m->names;
    int *ids = realloc(l->ids, (size_t)(l->n + 1) * sizeof *ids);
    if (!ids) return lsdm_err("out of memory");
    l->ids = ids;
    char **names = realloc(l->names, (size_t)(l->n + 1) * sizeof *names);
    if (!names) return lsdm_err("out of memory");
    l->names = names;
    if (!(l->names[l->n] = strdup(name))) return lsdm_err("out of memory");
    l->ids[l->n++] = dst;
    return 0;
}

static int rule_cmp(const void *a, const void *b) {
    const lsdm_labelrule *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Sort the rules and refuse a label mapped twice or an empty map. */
static int labelmap_finish(lsdm_labelmap *m) {
    if (m->n == 0 && m->rest < 0) return lsdm_err("empty label map");
    if (m->n) qsort(m->rules, (size_t)m->n, sizeof *m->rules, rule_cmp);
    for (int i = 1; i < m->n; i++)
        if (m->rules[i].lo <= m->rules[i - 1].hi)
            return lsdm_err("label %lld is mapped twice", (long long)m->rules[i].lo);
    return 0;
}

int lsdm_labelmap_parse(const char *spec, lsdm_labelmap *m) {
    labelmap_init(m);
    const char *p = spec;
    for (;;) {
        const char *end = strchr(p, ','), *eq;
        if (!end) end = p + strlen(p);
        while (p < end && *p == ' ') p++;
        const char *e = end;
        while (e > p && e[-1] == ' ') e--;
        eq = memchr(p, '=', (size_t)(e - p));
        if (!eq) {
            lsdm_labelmap_free(m);
            return lsdm_err("bad map entry '%.*s' (need src=dst)", (int)(e - p > 40 ? 40 : e - p), p);
        }
        const char *se = eq, *d = eq + 1;
        while (se > p && se[-1] == ' ') se--;
        while (d < e && *d == ' ') d++;
        if (labelmap_add(m, p, (size_t)(se - p), d, (size_t)(e - d))) { lsdm_labelmap_free(m); return -1; }
        if (!*end) break;
        p = end + 1;
    }
    if (labelmap_finish(m)) { lsdm_labelmap_free(m); return -1; }
    return 0;
}

int lsdm_labelmap_read_file(const char *path, lsdm_labelmap *m) {
    labelmap_init(m);
    FILE *f = fopen(path, "r");
    if (!f) return lsdm_err("%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    int rc = 0;
    while (!rc && getline(&line, &cap, f) >= 0) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        /* tokens: src dst [name words...], the name words joined by one space */
        char *save, *src = strtok_r(line, " \t\r\n", &save);
        if (!src) continue;
        char *dst = strtok_r(NULL, " \t\r\n", &save);
        if (!dst) { rc = lsdm_err("need 'src dst [name]'"); break; }
        rc = labelmap_add(m, src, strlen(src), dst, strlen(dst));
        char name[256] = "";
        size_t used = 0;
        for (char *w; !rc && (w = strtok_r(NULL, " \t\r\n", &save));) {
            size_t wl = strlen(w);
            if (used + wl + 2 > sizeof name) { rc = lsdm_err("class name too long"); break; }
            if (used) name[used++] = ' ';
            memcpy(name + used, w, wl + 1);
            used += wl;
        }
        if (!rc && used) rc = labelmap_name(m, atoi(dst), name);
    }
    if (rc) lsdm_err_ctx("%s:%ld", path, lineno); /* the line at fault */
    else if (ferror(f)) rc = lsdm_err("%s: read error", path);
    else if (labelmap_finish(m)) rc = lsdm_err_ctx("%s", path);
    free(line);
    fclose(f);
    if (rc) lsdm_labelmap_free(m);
    return rc;
}

int lsdm_labelmap_load(const char *arg, lsdm_labelmap *m) {
    if (arg[0] == '@') return lsdm_labelmap_read_file(arg + 1, m);
    return lsdm_labelmap_parse(arg, m);
}

int lsdm_labelmap_lookup(const lsdm_labelmap *m, int64_t src) {
    int lo = 0, hi = m->n - 1;
    while (lo <= hi) { /* binary search over the sorted, disjoint ranges */
        int mid = (lo + hi) / 2;
        const lsdm_labelrule *r = &m->rules[mid];
        if (src < r->lo) hi = mid - 1;
        else if (src > r->hi) lo = mid + 1;
        else return r->dst;
    }
    return m->rest;
}

/* Class of label v: the map's, or v itself without a map; -1 unmapped,
 * -2 when v cannot be a class index at all. */
static int label_class(const lsdm_labelmap *m, int64_t v) {
    if (m) return lsdm_labelmap_lookup(m, v);
    return v >= 0 && v <= LSDM_LABELMAP_MAX_CLASS ? (int)v : -2;
}

/* One label's class, applying the unknown-label policy and the class count. */
static int class_checked(int c, int64_t v, int unknown, int nclasses) {
    if (c == -2) return lsdm_err("label %lld is not a class index 0..%d (give a label map)", (long long)v, LSDM_LABELMAP_MAX_CLASS);
    if (c < 0) {
        if (unknown < 0) return lsdm_err("label %lld is not in the label map", (long long)v);
        c = unknown;
    }
    if (c >= nclasses)
        return lsdm_err("label %lld gives class %d, but there are only %d classes", (long long)v, c, nclasses);
    return c;
}

int lsdm_labelmap_apply(const lsdm_labelmap *m, const void *src, lsdm_dtype t, size_t n,
                        int unknown, int nclasses, uint8_t *dst, int *max_class) {
    /* pass 1: every value an integer label; its range sizes the lookup table */
    int64_t vmin = 0, vmax = 0;
    for (size_t i = 0; i < n; i++) {
        double x = lsdm_elem_get(src, t, i);
        if (!(x == floor(x)) || fabs(x) > (double)LABEL_MAX)
            return lsdm_err("voxel %zu holds %g, not an integer label (an image given as a mask?)", i, x);
        int64_t v = (int64_t)x;
        if (i == 0 || v < vmin) vmin = v;
        if (i == 0 || v > vmax) vmax = v;
    }
    int16_t *lut = NULL;
    size_t range = (size_t)(vmax - vmin) + 1;
    if (n && range <= ((size_t)1 << 20)) {
        if (!(lut = malloc(range * sizeof *lut))) return lsdm_err("out of memory");
        for (size_t k = 0; k < range; k++) lut[k] = (int16_t)label_class(m, vmin + (int64_t)k);
    }
    /* pass 2: classes, through the table when it fits, else by search */
    int top = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t v = (int64_t)lsdm_elem_get(src, t, i);
        int c = lut ? lut[v - vmin] : label_class(m, v);
        if (c < 0 || c >= nclasses) {
            c = class_checked(c, v, unknown, nclasses);
            if (c < 0) { free(lut); return -1; }
        }
        dst[i] = (uint8_t)c;
        if (c > top) top = c;
    }
    free(lut);
    if (max_class) *max_class = top;
    return 0;
}
