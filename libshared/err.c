#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char err_buf[1024];

int lsdm_err(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    /* one line only: a message with a newline would break "prog: error: ..." */
    for (char *p = err_buf; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    return -1;
}

int lsdm_err_ctx(const char *fmt, ...) {
    char ctx[512], old[sizeof err_buf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    memcpy(old, err_buf, sizeof old);
    return lsdm_err("%s: %s", ctx, old[0] ? old : "failed");
}

const char *lsdm_err_msg(void) { return err_buf[0] ? err_buf : "unknown error"; }
void lsdm_err_clear(void) { err_buf[0] = 0; }
