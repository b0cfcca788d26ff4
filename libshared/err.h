/* Error reporting for libraries: functions return a status and leave a
 * one-line message here; only main prints it (as "prog: error: msg") and exits. */
#ifndef LSDM_ERR_H
#define LSDM_ERR_H

/* Set the current message (printf-style). Always returns -1 so that
 * library code can write `return lsdm_err("...")`. */
int lsdm_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prefix the current message with context: "ctx: old message". Returns -1. */
int lsdm_err_ctx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *lsdm_err_msg(void);
void lsdm_err_clear(void);

#endif
