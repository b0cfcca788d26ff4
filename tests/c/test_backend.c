/* supports_op tells the truth: the CPU runs everything, and every op the
 * CUDA table claims has its kernels linked in (their addresses are taken
 * here, so a false claim fails to link or compares unequal to NULL). */
#include <string.h>

#include "backend.h"
#include "check.h"
#ifdef LSDM_CUDA
#include "activation.h"
#include "attention.h"
#include "batchnorm.h"
#include "codebook.h"
#include "conv3d.h"
#include "conv_transpose3d.h"
#include "elementwise.h"
#include "groupnorm.h"
#include "instancenorm.h"
#include "interpolate.h"
#include "linear.h"
#include "linear_attention.h"
#include "pool.h"
#include "loss.h"
#include "spade.h"
#include "timestep_embedding.h"
#include "optim.h"
#include "pad3d.h"
#include "rng.h"
#endif

int main(void) {
    for (int op = 0; op < LSDM_OP_COUNT; op++) {
        CHECK(lsdm_backend_supports_op(LSDM_DEVICE_CPU, (lsdm_op)op) == 1);
        CHECK(strcmp(lsdm_op_name((lsdm_op)op), "?") != 0);
    }
    CHECK(lsdm_backend_supports_op(LSDM_DEVICE_CPU, LSDM_OP_COUNT) == 0);
    CHECK(strcmp(lsdm_op_name(LSDM_OP_CONV3D), "conv3d") == 0 && strcmp(lsdm_op_name(LSDM_OP_RNG), "rng") == 0);
#ifdef LSDM_CUDA
    struct { lsdm_op op; const void *fn; } claims[] = {
        {LSDM_OP_CONV3D, (const void *)conv3d_forward_cuda},
        {LSDM_OP_CONV3D, (const void *)conv3d_backward_cuda},
        {LSDM_OP_GROUPNORM, (const void *)groupnorm_backward_cuda},
        {LSDM_OP_INSTANCENORM, (const void *)instancenorm_backward_cuda},
        {LSDM_OP_BATCHNORM, (const void *)batchnorm_backward_cuda},
        {LSDM_OP_ACTIVATION, (const void *)act_backward_cuda},
        {LSDM_OP_ELEMENTWISE, (const void *)concat_backward_cuda},
        {LSDM_OP_LINEAR, (const void *)linear_backward_cuda},
        {LSDM_OP_SPADE, (const void *)spade_backward_cuda},
        {LSDM_OP_LOSS, (const void *)l1_loss_forward_cuda},
        {LSDM_OP_LOSS, (const void *)cross_entropy_backward_cuda},
        {LSDM_OP_OPTIM, (const void *)adam_update_cuda},
        {LSDM_OP_OPTIM, (const void *)ema_update_cuda},
        {LSDM_OP_RNG, (const void *)lsdm_rng_fill_normal_cuda},
        {LSDM_OP_CONV_TRANSPOSE3D, (const void *)conv_transpose3d_forward_cuda},
        {LSDM_OP_CONV_TRANSPOSE3D, (const void *)conv_transpose3d_backward_cuda},
        {LSDM_OP_ATTENTION, (const void *)attention_forward_cuda},
        {LSDM_OP_ATTENTION, (const void *)attention_backward_cuda},
        {LSDM_OP_ATTENTION, (const void *)permute_backward_cuda},
        {LSDM_OP_ROTARY, (const void *)rotary_forward_cuda},
        {LSDM_OP_ROTARY, (const void *)rotary_backward_cuda},
        {LSDM_OP_RELPOS_BIAS, (const void *)relpos_bias_forward_cuda},
        {LSDM_OP_RELPOS_BIAS, (const void *)relpos_bias_backward_cuda},
        {LSDM_OP_POOL, (const void *)maxpool3d_backward_cuda},
        {LSDM_OP_POOL, (const void *)avgpool3d_backward_cuda},
        {LSDM_OP_LINEAR_ATTENTION, (const void *)linear_attention_forward_cuda},
        {LSDM_OP_LINEAR_ATTENTION, (const void *)linear_attention_backward_cuda},
        {LSDM_OP_TIMESTEP_EMBEDDING, (const void *)timestep_embedding_forward_cuda},
        {LSDM_OP_TIMESTEP_EMBEDDING, (const void *)timestep_embedding_backward_cuda},
        {LSDM_OP_INTERPOLATE, (const void *)interp3d_forward_cuda},
        {LSDM_OP_INTERPOLATE, (const void *)interp3d_backward_cuda},
        {LSDM_OP_CODEBOOK, (const void *)codebook_nearest_cuda},
        {LSDM_OP_CODEBOOK, (const void *)codebook_commitment_backward_cuda},
        {LSDM_OP_PAD3D, (const void *)pad3d_forward_cuda},
        {LSDM_OP_PAD3D, (const void *)pad3d_backward_cuda},
        {LSDM_OP_BATCHNORM, (const void *)batchnorm_train_backward_cuda},
    };
    int claimed = 0;
    for (int op = 0; op < LSDM_OP_COUNT; op++) claimed += lsdm_backend_supports_op(LSDM_DEVICE_CUDA, (lsdm_op)op);
    int listed[LSDM_OP_COUNT] = {0};
    for (size_t i = 0; i < sizeof claims / sizeof *claims; i++) {
        CHECK(claims[i].fn != NULL);
        CHECK(lsdm_backend_supports_op(LSDM_DEVICE_CUDA, claims[i].op) == 1);
        listed[claims[i].op] = 1;
    }
    int nlisted = 0;
    for (int op = 0; op < LSDM_OP_COUNT; op++) nlisted += listed[op];
    CHECK(claimed == nlisted); /* every claim is backed by a kernel above */
#else
    for (int op = 0; op < LSDM_OP_COUNT; op++) CHECK(lsdm_backend_supports_op(LSDM_DEVICE_CUDA, (lsdm_op)op) == 0);
#endif
    return check_done("test_backend");
}
