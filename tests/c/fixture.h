/* Reference values for the C tests, made by the tests/torch/ scripts with PyTorch
 * and committed as small tensor streams (tests/fixtures/GROUP/CASE.lsdm),
 * so the tests need no PyTorch. A fixture is a set of named f32 tensors. */
#ifndef LSDM_FIXTURE_H
#define LSDM_FIXTURE_H

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "stream.h"

/* tests/fixtures/GROUP/FILE, found from $LSDM_FIXTURES, else from the
 * test binary's place (TOP/BUILD/tests/test_x), else from the current
 * directory, so the tests run from anywhere. */
static inline void fixture_path(char *buf, size_t size, const char *group, const char *file) {
    const char *env = getenv("LSDM_FIXTURES");
    if (env) {
        snprintf(buf, size, "%s/%s/%s", env, group, file);
        return;
    }
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k > 0) {
        exe[k] = 0;
        snprintf(buf, size, "%s/tests/fixtures/%s/%s", dirname(dirname(dirname(exe))), group, file);
        if (access(buf, R_OK) == 0) return;
    }
    snprintf(buf, size, "tests/fixtures/%s/%s", group, file);
}

typedef struct {
    lsdm_record *recs;
    int n;
} fixture;

/* Load every record of path. Returns 0, or -1 if the file is missing. */
static inline int fixture_load(fixture *fx, const char *path) {
    memset(fx, 0, sizeof *fx);
    lsdm_reader *rd = lsdm_reader_open(path);
    if (!rd) return -1;
    lsdm_record r;
    lsdm_record_init(&r);
    int rc;
    while ((rc = lsdm_reader_next(rd, &r)) == 1) {
        fx->recs = realloc(fx->recs, (size_t)(fx->n + 1) * sizeof *fx->recs);
        fx->recs[fx->n++] = r; /* ownership moves into the fixture */
        lsdm_record_init(&r);
    }
    lsdm_reader_close(rd);
    return rc < 0 ? -1 : 0;
}

/* The f32 data of tensor `name` (NULL if absent); *n gets its size. */
static inline const float *fixture_get(const fixture *fx, const char *name, size_t *n) {
    if (n) *n = 0;
    for (int i = 0; i < fx->n; i++) {
        const char *k = lsdm_record_get(&fx->recs[i], "name");
        if (k && strcmp(k, name) == 0 && fx->recs[i].dtype == LSDM_F32) {
            if (n) *n = lsdm_record_numel(&fx->recs[i]);
            return fx->recs[i].data;
        }
    }
    return NULL;
}

static inline void fixture_free(fixture *fx) {
    for (int i = 0; i < fx->n; i++) lsdm_record_free(&fx->recs[i]);
    free(fx->recs);
    memset(fx, 0, sizeof *fx);
}

#endif
