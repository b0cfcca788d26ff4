#include "dice.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

void lsdm_dice_counts_init(lsdm_dice_counts *c) { memset(c, 0, sizeof *c); }

void lsdm_dice_counts_free(lsdm_dice_counts *c) {
    free(c->pred);
    free(c->ref);
    free(c->inter);
    lsdm_dice_counts_init(c);
}

static int grow_array(int64_t **a, int old, int n) {
    int64_t *p = realloc(*a, (size_t)n * sizeof *p);
    if (!p) return lsdm_err("out of memory (%d classes)", n);
    memset(p + old, 0, (size_t)(n - old) * sizeof *p);
    *a = p;
    return 0;
}

int lsdm_dice_counts_grow(lsdm_dice_counts *c, int n) {
    if (n <= c->n) return 0;
    if (n > LSDM_DICE_MAX_CLASSES) return lsdm_err("%d classes (at most %d)", n, LSDM_DICE_MAX_CLASSES);
    if (grow_array(&c->pred, c->n, n) || grow_array(&c->ref, c->n, n) || grow_array(&c->inter, c->n, n)) return -1;
    c->n = n;
    return 0;
}

int lsdm_dice_counts_add(lsdm_dice_counts *a, const lsdm_dice_counts *b) {
    if (lsdm_dice_counts_grow(a, b->n)) return -1;
    for (int k = 0; k < b->n; k++) {
        a->pred[k] += b->pred[k];
        a->ref[k] += b->ref[k];
        a->inter[k] += b->inter[k];
    }
    a->voxels += b->voxels;
    return 0;
}

static int is_label_dtype(lsdm_dtype t) { return t == LSDM_U8 || t == LSDM_I16 || t == LSDM_I32; }

/* Label i of an integer buffer. */
static inline int64_t label_at(const void *buf, lsdm_dtype t, size_t i) {
    switch (t) {
    case LSDM_U8: return ((const uint8_t *)buf)[i];
    case LSDM_I16: return ((const int16_t *)buf)[i];
    default: return ((const int32_t *)buf)[i];
    }
}

int lsdm_dice_max_label(const void *buf, lsdm_dtype t, size_t n, int64_t *max) {
    if (!is_label_dtype(t)) return lsdm_err("%s data is not a label map (need u8, i16 or i32)", lsdm_dtype_name(t));
    int64_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t v = label_at(buf, t, i);
        if (v < 0) return lsdm_err("negative label %lld at voxel %zu", (long long)v, i);
        if (v > m) m = v;
    }
    *max = m;
    return 0;
}

int lsdm_dice_count(lsdm_dice_counts *c, const void *pred, lsdm_dtype tp, const void *ref, lsdm_dtype tr, size_t n) {
    if (!is_label_dtype(tp) || !is_label_dtype(tr)) return lsdm_err("label maps must be u8, i16 or i32");
    for (size_t i = 0; i < n; i++) {
        int64_t p = label_at(pred, tp, i), r = label_at(ref, tr, i);
        if (p < 0 || r < 0 || p >= c->n || r >= c->n)
            return lsdm_err("label %lld at voxel %zu is outside 0..%d", (long long)(p < 0 || p >= c->n ? p : r), i, c->n - 1);
        c->pred[p]++;
        c->ref[r]++;
        if (p == r) c->inter[p]++;
    }
    c->voxels += (int64_t)n;
    return 0;
}

double lsdm_dice_class(const lsdm_dice_counts *c, int k) {
    if (k < 0 || k >= c->n) return NAN;
    int64_t denom = c->pred[k] + c->ref[k];
    if (denom == 0) return NAN;
    return 2.0 * (double)c->inter[k] / (double)denom;
}

double lsdm_dice_mean_foreground(const lsdm_dice_counts *c) {
    double sum = 0;
    int m = 0;
    for (int k = 1; k < c->n; k++) {
        double d = lsdm_dice_class(c, k);
        if (isnan(d)) continue;
        sum += d;
        m++;
    }
    return m ? sum / m : NAN;
}

double lsdm_dice_global(const lsdm_dice_counts *c) {
    /* the reference thresholds and one-hot encodes both maps over all
     * channels, so every voxel counts once in each map: the sums are
     * whole-volume counts and the intersection the agreeing voxels */
    int64_t inter = 0, sum = 0;
    for (int k = 0; k < c->n; k++) {
        inter += c->inter[k];
        sum += c->pred[k] + c->ref[k];
    }
    return (2.0 * (double)inter + 1.0) / ((double)sum + 1.0);
}
