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

/* Decode a whole .nii file held in memory (gzip-compressed or not, either
 * byte order, NIfTI-1 or 2) into a C,D,H,W record (C = dim[4]). `name`
 * becomes the record's name key (may be NULL). The record gets name,
 * role, affine, affine-source (sform|qform|spacing) and spacing; nothing
 * else of the header (description, intent, aux file, extensions) is
 * carried. Types: u8->u8, i8/i16->i16, u16/i32->i32, f32/f64->f32; an
 * image with scl_slope is scaled to f32. Every header field is checked
 * before anything is allocated; out is freed first and empty on error. */
int lsdm_nifti_decode(const void *buf, size_t n, const char *name, const lsdm_nifti_opts *o, lsdm_record *out);
int lsdm_nifti_read_file(const char *path, const lsdm_nifti_opts *o, lsdm_record *out);
/* Write r (3D: D,H,W or 1,D,H,W; 4D: C,D,H,W) as NIfTI, atomically. The
 * affine goes to both sform and qform (qform as near as a rigid transform
 * allows), codes 1 (scanner anatomical); but where affine-source says the
 * original had only a qform, or no transform, and writing it that way
 * gives back the same affine, it is written that way (so a round trip
 * keeps affine-source too). No affine: diag(spacing), else identity.
 * u8/i16/i32/f32 keep their type, f16/bf16 become f32. A .gz suffix
 * compresses. nifti2 selects the NIfTI-2 header (double geometry, dims
 * over 32767); NIfTI-1 stores the affine as floats. */
int lsdm_nifti_write(const char *path, const lsdm_record *r, int nifti2);

/* 1 if the file name ends in .nii or .nii.gz (any case). */
int lsdm_nifti_is_name(const char *path);
/* The volume name of a path: its last component without .nii/.nii.gz.
 * Returns a new string (caller frees) or NULL (out of memory). */
char *lsdm_nifti_name_from_path(const char *path);
/* 1 if buf (at least 4 bytes) starts like a NIfTI-1/2 header of either
 * byte order (sizeof_hdr 348 or 540). */
int lsdm_nifti_sniff(const void *buf, size_t n);

#endif
