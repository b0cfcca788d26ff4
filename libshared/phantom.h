/* Seeded synthetic breast-MRI-like volume pairs (image + label map) for
 * demos and tests: an axial slab through two breasts in front of the chest
 * wall, as in a T1-weighted non-fat-saturated scan (Duke Breast MRI).
 *
 * Classes: 0 background (air, and the dark thorax behind the muscle),
 * 1 fat, 2 fibroglandular tissue (clumpy, branching), 3 vessels (thin
 * tubes), 4 muscle (chest wall).
 *
 * Image model, per voxel of class c:
 *   clean = clamp01(mean[c] * (1 + texture[c] * t(x)) * bias(x))
 *   image = clamp01(sqrt((clean + s n1)^2 + (s n2)^2))     (Rician)
 * t is smooth zero-mean noise in [-1, 1], bias a smooth multiplicative
 * field in [0.85, 1.15], n1, n2 standard normals, s the noise level.
 * Everything random comes from Philox (rng.h) keyed by the seed, so a seed
 * gives the same bytes on any machine. */
#ifndef LSDM_PHANTOM_H
#define LSDM_PHANTOM_H

#include <stdint.h>

#include "record.h"

enum { LSDM_PHANTOM_CLASSES = 5 };

/* "0=background,1=fat,2=fibroglandular,3=vessel,4=muscle" */
extern const char LSDM_PHANTOM_LABELS[];
/* Mean clean intensity of each class, as in the class-means key. */
extern const float lsdm_phantom_means[LSDM_PHANTOM_CLASSES];
/* Default Rician noise level s. */
#define LSDM_PHANTOM_NOISE 0.02f

typedef struct {
    int64_t d, h, w;    /* shape */
    double spacing[3];  /* mm, in (d, h, w) order */
    uint64_t seed;      /* anatomy and noise of this one volume */
    float noise;        /* Rician noise level s (0: none) */
} lsdm_phantom_params;

/* Defaults: 32x256x256, spacing 2.0,0.7,0.7 mm, seed 0, noise 0.02. */
void lsdm_phantom_defaults(lsdm_phantom_params *p);

/* The record affine: diag(spacing) in NIfTI order (w -> x right,
 * h -> y anterior, d -> z superior), centred so that the middle of the
 * volume is at world 0. */
void lsdm_phantom_affine(const lsdm_phantom_params *p, double a[16]);

/* img[d*h*w] (f32, values in [0, 1]) and lab[d*h*w] (class ids), C order
 * with w fastest. */
int lsdm_phantom_generate(const lsdm_phantom_params *p, float *img, uint8_t *lab);

/* Both as stream records named `name`: image (role image, f32,
 * 1,D,H,W) and labels (role labels, u8, same shape), each with the
 * affine, spacing and class-means keys, the labels key on the label map.
 * img and lab must be initialised (lsdm_record_init). */
int lsdm_phantom_records(const lsdm_phantom_params *p, const char *name, lsdm_record *img, lsdm_record *lab);

#endif
