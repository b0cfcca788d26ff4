/* Activations on the CPU, float and double from activation_impl.h. */
/* GCC will not if-convert float comparisons (the clamps in act_expf and
 * relu's select) while they may raise FP exceptions, which keeps these
 * loops scalar; nothing in lsdm reads the FP exception flags. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "activation.h"
#include "err.h"

#define PAR_MIN 32768

static const char *const act_names[] = {"none", "silu", "relu", "leaky_relu",
                                        "gelu", "gelu_tanh", "tanh", "sigmoid"};

int act_kind_parse(const char *name, act_kind *out) {
    for (int k = 0; k < (int)(sizeof act_names / sizeof *act_names); k++)
        if (strcmp(name, act_names[k]) == 0) { *out = (act_kind)k; return 0; }
    return lsdm_err("unknown activation '%s'", name);
}

const char *act_kind_name(act_kind k) {
    return (unsigned)k < sizeof act_names / sizeof *act_names ? act_names[k] : "?";
}

int act_backward_uses_output(act_kind k) {
    return k == ACT_NONE || k == ACT_RELU || k == ACT_LEAKY_RELU || k == ACT_TANH ||
           k == ACT_SIGMOID;
}

#include "vexpf.h" /* act_expf: the vectorisable float exp */

#define real float
#define FN(x) x
#define RF(fn) fn##f
#define R_EXP act_expf
#include "activation_impl.h"
#undef real
#undef FN
#undef RF
#undef R_EXP

#define real double
#define FN(x) x##_f64
#define RF(fn) fn
#define R_EXP exp
#include "activation_impl.h"
#undef real
#undef FN
#undef RF
#undef R_EXP
