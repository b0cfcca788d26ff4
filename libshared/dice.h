/* Overlap of label maps: per-class counts and the Dice scores made from
 * them. Counts add up, so a pooled score over many volumes is the score
 * of the summed counts. */
#ifndef LSDM_DICE_H
#define LSDM_DICE_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"

/* Most classes a label map may have (labels 0..LSDM_DICE_MAX_CLASSES-1). */
#define LSDM_DICE_MAX_CLASSES 65536

typedef struct {
    int n;           /* classes 0..n-1 */
    int64_t *pred;   /* [n] |P_c|: voxels labelled c in the prediction */
    int64_t *ref;    /* [n] |R_c|: voxels labelled c in the reference */
    int64_t *inter;  /* [n] |P_c and R_c| */
    int64_t voxels;
} lsdm_dice_counts;

void lsdm_dice_counts_init(lsdm_dice_counts *c);
void lsdm_dice_counts_free(lsdm_dice_counts *c);
/* Make room for classes 0..n-1 (new ones count 0). Never shrinks. */
int lsdm_dice_counts_grow(lsdm_dice_counts *c, int n);
/* a += b, class by class (a grows to b's classes). */
int lsdm_dice_counts_add(lsdm_dice_counts *a, const lsdm_dice_counts *b);

/* Largest label of buf[0..n) (u8, i16 or i32) into *max; -1 with lsdm_err
 * on a negative label or a non-integer dtype. */
int lsdm_dice_max_label(const void *buf, lsdm_dtype t, size_t n, int64_t *max);

/* Count the overlap of pred[0..n) and ref[0..n) into c, which must
 * already hold every label present (see lsdm_dice_max_label). */
int lsdm_dice_count(lsdm_dice_counts *c, const void *pred, lsdm_dtype tp, const void *ref, lsdm_dtype tr, size_t n);

/* Dice of class k: 2 |P and R| / (|P| + |R|); NAN when the class is empty
 * in both (no division by zero, and not a perfect score either). */
double lsdm_dice_class(const lsdm_dice_counts *c, int k);
/* Mean of the Dice of classes 1..n-1, leaving out those empty in both;
 * NAN when all are. */
double lsdm_dice_mean_foreground(const lsdm_dice_counts *c);
/* The "global" Dice of the Med-LSDM reference code (train/train_unet.py,
 * dice_coefficient with smooth = 1): both maps one-hot over all n
 * classes, background included, flattened and overlapped as one:
 *   (2 sum_c |P_c and R_c| + 1) / (sum_c |P_c| + sum_c |R_c| + 1). */
double lsdm_dice_global(const lsdm_dice_counts *c);

#endif
