/* Label remapping for label maps: which output class each input label
 * becomes. Written inline as "src=dst,..." (src a label, a range "a-b" or
 * "*" for every other label) or as a file of lines "src dst [name...]"
 * ('#' starts a comment), whose names name the output classes. */
#ifndef LSDM_LABELMAP_H
#define LSDM_LABELMAP_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "record.h"

/* Largest output class (outputs are u8 class indices). */
#define LSDM_LABELMAP_MAX_CLASS 255

typedef struct {
    int64_t lo, hi; /* inclusive source range */
    int dst;
} lsdm_labelrule;

typedef struct {
    lsdm_labelrule *rules; /* sorted by lo, never overlapping */
    int n;
    int rest;          /* class of labels no rule names ('*'), -1 if none */
    int max_dst;       /* largest class any rule (or '*') gives */
    lsdm_labels names; /* class names from a map file (n = 0 if none) */
} lsdm_labelmap;

/* Inline SPEC ("1-20=1,21=2,*=0"), a map file, or either: "@FILE" reads
 * FILE, anything else is an inline SPEC. 0 ok, -1 with lsdm_err. */
int lsdm_labelmap_parse(const char *spec, lsdm_labelmap *m);
int lsdm_labelmap_read_file(const char *path, lsdm_labelmap *m);
int lsdm_labelmap_load(const char *arg, lsdm_labelmap *m);
void lsdm_labelmap_free(lsdm_labelmap *m);

/* Class of label src: >= 0, or -1 when no rule and no '*' covers it. */
int lsdm_labelmap_lookup(const lsdm_labelmap *m, int64_t src);

/* dst[i] = class of label src[i], for n voxels of type t (m NULL: the
 * label itself). Float inputs must hold integers (else it is an image,
 * not a label map: error). A label no rule covers becomes `unknown` when
 * unknown >= 0 and is an error naming it otherwise; a class >= nclasses
 * is an error. *max_class (may be NULL) gets the largest class written. */
int lsdm_labelmap_apply(const lsdm_labelmap *m, const void *src, lsdm_dtype t, size_t n,
                        int unknown, int nclasses, uint8_t *dst, int *max_class);

#endif
