/* NIfTI volumes inside an archive (tar, tar.gz, tar.zst, zip, ...), read
 * through libarchive entry by entry into memory, never unpacked to disk.
 * Entries not named *.nii or *.nii.gz, hidden ones and non-files are
 * skipped. Used by volsrc; named so as not to shadow <archive.h>. */
#ifndef LSDM_VOLARCHIVE_H
#define LSDM_VOLARCHIVE_H

#include <stdio.h>

#include "nifti.h"

typedef struct lsdm_volarchive lsdm_volarchive;

/* A regular file by path (seekable: full zip support), else an open FILE
 * (not closed here). label names the input in messages. */
lsdm_volarchive *lsdm_volarchive_open(const char *path, FILE *f, const char *label);
/* 1 record, 0 end, -1 error; an archive with no volume at all is an error. */
int lsdm_volarchive_next(lsdm_volarchive *a, const lsdm_nifti_opts *o, lsdm_record *r);
void lsdm_volarchive_close(lsdm_volarchive *a);

#endif
