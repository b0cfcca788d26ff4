/* Names from patterns, for vol-import --name and vol-export -o: printf-like
 * %d with flags and width (%d, %04d) for the 0-based index, %% for a '%',
 * and {name} for the volume's own name. */
#ifndef LSDM_NAMEPAT_H
#define LSDM_NAMEPAT_H

/* 1 if s holds a conversion or {name} (so it is a pattern, not a plain name). */
int lsdm_namepat_is_pattern(const char *s);
/* 0 if pat is a valid pattern, -1 with lsdm_err otherwise. */
int lsdm_namepat_check(const char *pat);
/* The expansion (caller frees), or NULL with lsdm_err. */
char *lsdm_namepat_format(const char *pat, long index, const char *name);
/* A copy of name usable as one file name: '/' and control characters
 * become '_', a leading '.' becomes '_', empty becomes "volume", at most
 * 200 bytes. Caller frees; NULL when out of memory. */
char *lsdm_name_sanitize(const char *name);

#endif
