/* Which ops each backend runs. Model code asks lsdm_backend_supports_op
 * before choosing the CUDA kernel of an op and otherwise runs the CPU
 * reference; programs ask it to refuse `--device cuda` for a model whose
 * ops the GPU lacks, before any work starts. */
#ifndef LSDM_BACKEND_H
#define LSDM_BACKEND_H

#include "device.h"

typedef enum {
    LSDM_OP_CONV3D,
    LSDM_OP_CONV_TRANSPOSE3D,
    LSDM_OP_GROUPNORM,
    LSDM_OP_INSTANCENORM,
    LSDM_OP_BATCHNORM,
    LSDM_OP_ACTIVATION,
    LSDM_OP_ELEMENTWISE,
    LSDM_OP_LINEAR,
    LSDM_OP_SPADE,
    LSDM_OP_ATTENTION,
    LSDM_OP_ROTARY,
    LSDM_OP_RELPOS_BIAS,
    LSDM_OP_LINEAR_ATTENTION,
    LSDM_OP_TIMESTEP_EMBEDDING,
    LSDM_OP_INTERPOLATE,
    LSDM_OP_POOL,
    LSDM_OP_LOSS,
    LSDM_OP_OPTIM,
    LSDM_OP_RNG,
    LSDM_OP_PAD3D,
    LSDM_OP_CODEBOOK,
    LSDM_OP_COUNT
} lsdm_op;

const char *lsdm_op_name(lsdm_op op);
/* 1 when dev has a kernel for op (forward and backward), else 0. The CPU
 * runs every op. */
int lsdm_backend_supports_op(lsdm_device dev, lsdm_op op);

#endif
