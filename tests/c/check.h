/* A very small test harness: CHECK records a failure and goes on;
 * check_done prints "name: N passed, N failed, N skipped". */
#ifndef LSDM_CHECK_H
#define LSDM_CHECK_H

#include <math.h>
#include <stdio.h>

#include "device.h"

static int check_pass, check_fail, check_skip;

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (cond) check_pass++;                                              \
        else { check_fail++; fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                \
    do {                                                                     \
        double a_ = (a), b_ = (b);                                           \
        if (fabs(a_ - b_) <= (tol)) check_pass++;                            \
        else { check_fail++; fprintf(stderr, "%s:%d: %s = %.9g, want %.9g (tol %g)\n", __FILE__, __LINE__, #a, a_, b_, (double)(tol)); } \
    } while (0)

#define SKIP(why) do { check_skip++; printf("skipped: %s\n", why); } while (0)

/* First line of a GPU test's main: without a usable GPU (or without CUDA)
 * the test says "skipped: no GPU" and ends. */
#define GPU_OR_SKIP(name)                                                    \
    do {                                                                     \
        const char *why_ = NULL;                                             \
        if (lsdm_cuda_device_count(&why_) < 1) {                             \
            SKIP("no GPU");                                                  \
            printf("(%s)\n", why_ ? why_ : "no device");                     \
            return check_done(name);                                         \
        }                                                                    \
    } while (0)

static int check_done(const char *name) {
    printf("%s: %d passed, %d failed, %d skipped\n", name, check_pass, check_fail, check_skip);
    return check_fail ? 1 : 0;
}

#endif
