/* Volumes from any input a program accepts: a tensor stream (file or "-"),
 * a NIfTI file (.nii, .nii.gz), a directory of NIfTI files (sorted by name),
 * or an archive (tar, tar.gz, tar.zst, zip) of them read through libarchive
 * without unpacking to disk. The format is sniffed from the content. */
#ifndef LSDM_VOLSRC_H
#define LSDM_VOLSRC_H

#include "nifti.h"
#include "record.h"

typedef struct lsdm_volsrc lsdm_volsrc;

/* o applies to NIfTI inputs (stream records are passed on as they are). */
lsdm_volsrc *lsdm_volsrc_open(const char *path, const lsdm_nifti_opts *o);
/* 1 record, 0 clean end, -1 error (a directory or archive holding no
 * volume is an error). Whatever r held is freed first. */
int lsdm_volsrc_next(lsdm_volsrc *s, lsdm_record *r);
void lsdm_volsrc_close(lsdm_volsrc *s);
/* 1 if the input is a tensor stream (its records are passed on untouched). */
int lsdm_volsrc_is_stream(const lsdm_volsrc *s);

#endif
