/* Numbers and strings in the tables, JSON and CSV that the evaluators and
 * vol-info print on standard output. */
#ifndef LSDM_TEXTOUT_H
#define LSDM_TEXTOUT_H

#include <stddef.h>

/* The shortest of %.15g and %.17g that reads back as v; "inf", "-inf". */
void lsdm_fmt_num(char *buf, size_t n, double v);
/* A JSON number, or null for NaN and Inf (JSON has neither); -0 as 0. */
void lsdm_json_num(double v);
/* A JSON string: quotes, backslashes and control bytes escaped; bytes that
 * are not valid UTF-8 become U+FFFD so the output stays valid JSON. */
void lsdm_json_str(const char *s);
/* A CSV field, quoted (quotes doubled) when it holds , " or a line break. */
void lsdm_csv_field(const char *s);

#endif
