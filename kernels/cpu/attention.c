/* Softmax attention, rotary embedding, relative position bias and axis
 * permutation (see kernels/attention.h). The bodies are in
 * attention_impl.h, compiled once in float and once in double. */
#include <cblas.h>
#include <math.h>

#include "attention.h"

size_t attention_workspace_size(int B, int H, int L) {
    return (size_t)B * H * L * L;
}

int relpos_bucket(int rel, int num_buckets, int max_distance) {
    int n = -rel, ret = 0;
    num_buckets /= 2;
    if (n < 0) { ret += num_buckets; n = -n; }
    int max_exact = num_buckets / 2;
    if (n < max_exact) return ret + n;
    // float32 arithmetic and truncation, as the reference's tensor code
    float f = logf((float)n / (float)max_exact) / (float)log((double)max_distance / max_exact)
              * (float)(num_buckets - max_exact);
    int large = max_exact + (int)f;
    return ret + (large < num_buckets - 1 ? large : num_buckets - 1);
}

/* Output rows of a permutation: the output's last axis is a row; row r
 * starts at input offset permute_row_offset(r) and steps by `step`. */
typedef struct {
    int ndim;
    long oshape[PERMUTE_MAX_DIM], ostride[PERMUTE_MAX_DIM]; /* stride in the input */
    long rows, n, step;
    /* Rows are strided gathers when step > 1; if output axis j (< ndim-1)
     * is the input's contiguous one, rows r and r + inner (the next index
     * along j) read neighbouring floats, so tiles of PERMUTE_TILE rows x
     * PERMUTE_TILE columns read whole cache lines (a blocked transpose).
     * j = -1: no such axis, or step 1. */
    int j;
    long J, inner; /* oshape[j], rows per index of j */
} permute_plan;

#define PERMUTE_TILE 16

static void permute_plan_init(permute_plan *pl, int ndim, const int *shape, const int *perm) {
    long istride[PERMUTE_MAX_DIM], s = 1;
    for (int a = ndim - 1; a >= 0; a--) { istride[a] = s; s *= shape[a]; }
    pl->ndim = ndim;
    pl->rows = 1;
    for (int a = 0; a < ndim; a++) {
        pl->oshape[a] = shape[perm[a]];
        pl->ostride[a] = istride[perm[a]];
        if (a < ndim - 1) pl->rows *= pl->oshape[a];
    }
    pl->n = pl->oshape[ndim - 1];
    pl->step = pl->ostride[ndim - 1];
    pl->j = -1;
    for (int a = 0; a < ndim - 1 && pl->step > 1; a++)
        if (pl->ostride[a] == 1 && pl->oshape[a] > 1) pl->j = a;
    pl->J = pl->j >= 0 ? pl->oshape[pl->j] : 1;
    pl->inner = 1;
    for (int a = pl->j + 1; pl->j >= 0 && a < ndim - 1; a++) pl->inner *= pl->oshape[a];
}

static long permute_row_offset(const permute_plan *pl, long r) {
    long off = 0;
    for (int a = pl->ndim - 2; a >= 0; a--) {
        off += (r % pl->oshape[a]) * pl->ostride[a];
        r /= pl->oshape[a];
    }
    return off;
}

#define LSDM_IMPL "attention_impl.h"
#include "instantiate.h"
