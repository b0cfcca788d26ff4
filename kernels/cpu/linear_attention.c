/* Linear attention (see kernels/linear_attention.h); the body is in
 * linear_attention_impl.h, compiled in float and in double. */
#include <cblas.h>
#include <math.h>

#include "linear_attention.h"

size_t linear_attention_workspace_size(int B, int H, int dh, int F, int N) {
    // dqs and dks (B,H,dh,F,N), dctx (B,F,H,dh,dh)
    return 2 * (size_t)B * H * dh * F * N + (size_t)B * F * H * dh * dh;
}

/* Columns per softmax-over-d task: whole cache lines of every row. */
#define LA_NC 64

#define LSDM_IMPL "linear_attention_impl.h"
#include "instantiate.h"
