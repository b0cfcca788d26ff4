/* The `key = value` text of model configs and checkpoint metadata: one
 * pair per line (`key: value` also), '#' starts a comment, blank lines
 * and surrounding spaces are ignored. */
#ifndef LSDM_KVTEXT_H
#define LSDM_KVTEXT_H

/* set(ctx, key, value): 0 ok, -1 bad value, -2 unknown key, -3 an error
 * that set reported itself with lsdm_err. */
typedef int (*kv_set_fn)(void *ctx, const char *key, const char *value);

/* Calls set for every pair of text in order; stops at the first problem
 * with lsdm_err "WHAT line N: ..." (N counts every line). 0 or -1. */
int kv_parse(const char *text, const char *what, kv_set_fn set, void *ctx);

/* A config file's text into buf (NUL-terminated); -1 with lsdm_err if it
 * cannot be read or does not fit. */
int kv_read_file(const char *path, char *buf, size_t size);

#endif
