/* Output files written atomically: data goes to a temporary file beside
 * the target, which is renamed over it only after a successful fsync, so a
 * crash, a full disk or an error never leaves a partial file behind and
 * never destroys what was there before. "-" is standard output. */
#ifndef LSDM_OUTFILE_H
#define LSDM_OUTFILE_H

#include <stdio.h>

typedef struct {
    FILE *f;
    char *path; /* final name; NULL for stdout */
    char *tmp;  /* temporary name beside it */
    int direct; /* a device or fifo, written in place */
} lsdm_outfile;

/* Binary output to a terminal is refused unless force is set. */
int lsdm_outfile_open(lsdm_outfile *o, const char *path, int binary, int force);
/* Flush, fsync, close and rename into place. On failure the temp file is
 * removed and the old target left as it was. */
int lsdm_outfile_commit(lsdm_outfile *o);
void lsdm_outfile_abort(lsdm_outfile *o);

#endif
