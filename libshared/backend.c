#include "backend.h"

static const char *const op_names[LSDM_OP_COUNT] = {
    "conv3d", "conv_transpose3d", "groupnorm", "instancenorm", "batchnorm", "activation",
    "elementwise", "linear", "spade", "attention", "rotary", "relpos_bias", "linear_attention",
    "timestep_embedding", "interpolate", "pool", "loss", "optim", "rng",
    "pad3d", "codebook",
};

const char *lsdm_op_name(lsdm_op op) { return op < LSDM_OP_COUNT ? op_names[op] : "?"; }

/* Ops with CUDA kernels (kernels/cuda/); tests/c/test_backend.c takes the
 * address of each one's _cuda functions, so a claim here without a kernel
 * does not link. */
static const unsigned char cuda_ops[LSDM_OP_COUNT] = {
#ifdef LSDM_CUDA
    [LSDM_OP_CONV3D] = 1,
    [LSDM_OP_GROUPNORM] = 1,
    [LSDM_OP_INSTANCENORM] = 1,
    [LSDM_OP_BATCHNORM] = 1,
    [LSDM_OP_ACTIVATION] = 1,
    [LSDM_OP_ELEMENTWISE] = 1,
    [LSDM_OP_LINEAR] = 1,
    [LSDM_OP_SPADE] = 1,
    [LSDM_OP_LOSS] = 1,
    [LSDM_OP_OPTIM] = 1,
    [LSDM_OP_RNG] = 1,
    [LSDM_OP_CONV_TRANSPOSE3D] = 1,
    [LSDM_OP_ATTENTION] = 1,
    [LSDM_OP_ROTARY] = 1,
    [LSDM_OP_RELPOS_BIAS] = 1,
    [LSDM_OP_POOL] = 1,
    [LSDM_OP_LINEAR_ATTENTION] = 1,
    [LSDM_OP_TIMESTEP_EMBEDDING] = 1,
    [LSDM_OP_INTERPOLATE] = 1,
    [LSDM_OP_PAD3D] = 1,
    [LSDM_OP_CODEBOOK] = 1,
#else
    [LSDM_OP_CONV3D] = 0, /* (keeps the list non-empty without CUDA) */
#endif
};

int lsdm_backend_supports_op(lsdm_device dev, lsdm_op op) {
    if (op >= LSDM_OP_COUNT) return 0;
    if (dev == LSDM_DEVICE_CPU) return 1;
    return cuda_ops[op];
}
