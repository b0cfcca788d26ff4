/* The tensor stream: the contract between all lsdm programs (man 5 lsdm-stream).
 * A stream is a sequence of records, one zstd frame each (content size and
 * checksum always present), closed by an end-of-stream record. Streams may
 * be concatenated. A reader holds one record at a time. */
#ifndef LSDM_STREAM_H
#define LSDM_STREAM_H

#include <stdio.h>

#include "record.h"

#define LSDM_STREAM_VERSION 1
#define LSDM_DEFAULT_LEVEL 1

typedef struct lsdm_reader lsdm_reader;
typedef struct lsdm_writer lsdm_writer;

/* path "-" or NULL is standard input; a terminal there is refused. */
lsdm_reader *lsdm_reader_open(const char *path);
/* Read from an already open FILE (not closed by the reader). */
lsdm_reader *lsdm_reader_open_file(FILE *f, const char *label);
/* Hand back bytes already read from the FILE (e.g. to sniff the format),
 * before the first lsdm_reader_next. At most 64 KiB. */
int lsdm_reader_unread(lsdm_reader *rd, const void *buf, size_t n);
/* Next record into r (whatever r held is freed first).
 * Returns 1 for a record, 0 at the clean end of the stream, -1 on error. */
int lsdm_reader_next(lsdm_reader *rd, lsdm_record *r);
long lsdm_reader_count(const lsdm_reader *rd); /* records returned so far */
void lsdm_reader_close(lsdm_reader *rd);

/* path "-" or NULL is standard output (a terminal refused unless force);
 * a file is written atomically. level: zstd level (0 = default). */
lsdm_writer *lsdm_writer_open(const char *path, int level, int force);
int lsdm_writer_put(lsdm_writer *w, const lsdm_record *r);
/* Write the end-of-stream record, flush, and commit the file. Frees w. */
int lsdm_writer_close(lsdm_writer *w);
/* Give up: a file target is left as it was before. Frees w. */
void lsdm_writer_abort(lsdm_writer *w);

#endif
