/* NIfTI-1 and NIfTI-2 volumes <-> stream records, through nifticlib.
 * Records hold volumes as C,D,H,W: NIfTI's x,y,z,t with x fastest, so the
 * voxel bytes are the same and only the affine's columns are reordered
 * (record affine columns are d,h,w = NIfTI k,j,i). */
#ifndef LSDM_NIFTI_H
#define LSDM_NIFTI_H

#include <stddef.h>

#include "record.h"

typedef struct {
    int labels;       /* a label map: never scaled, integers only, role "labels" */
    const char *role; /* role to set (default "image", or "labels" if labels) */
} lsdm_nifti_opts;

/* Decode a whole .nii file held in memory (gzip-compressed or not).
 * `name` becomes the record's name key (may be NULL). The record gets
 * name, role, affine, affine-source (sform|qform|spacing) and spacing;
 * nothing else of the header (description, intent, aux file, extensions)
 * is carried. */
int lsdm_nifti_decode(const void *buf, size_t n, const char *name, const lsdm_nifti_opts *o, lsdm_record *out);
int lsdm_nifti_read_file(const char *path, const lsdm_nifti_opts *o, lsdm_record *out);
/* Write r (3D: D,H,W or 1,D,H,W; 4D: C,D,H,W) as NIfTI, atomically. The
 * affine goes to both sform and qform (qform as near as a rigid transform
 * allows). A .gz suffix compresses. nifti2 selects the NIfTI-2 header. */
int lsdm_nifti_write(const char *path, const lsdm_record *r, int nifti2);

#endif
