/* conv_transpose3d on the CPU: sizes, and the float and double kernels
 * generated from one source text (conv_transpose3d_impl.h), all through
 * the adjoint conv3d. */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "conv_transpose3d.h"
#include "err.h"

static int convt_out_size(int in, int k, int s, int p, int op, int dil) {
    return (int)((long)(in - 1) * s - 2L * p + (long)dil * (k - 1) + op + 1);
}

int conv_transpose3d_dims_init(conv_transpose3d_dims *d) {
    if (d->sd == 0) d->sd = 1;
    if (d->sh == 0) d->sh = 1;
    if (d->sw == 0) d->sw = 1;
    if (d->dd == 0) d->dd = 1;
    if (d->dh == 0) d->dh = 1;
    if (d->dw == 0) d->dw = 1;
    if (d->N < 1 || d->Cin < 1 || d->Cout < 1 || d->D < 1 || d->H < 1 || d->W < 1 ||
        d->kd < 1 || d->kh < 1 || d->kw < 1 || d->sd < 1 || d->sh < 1 || d->sw < 1 ||
        d->dd < 1 || d->dh < 1 || d->dw < 1)
        return lsdm_err("conv_transpose3d: sizes, kernel, stride and dilation must be positive");
    if (d->pd < 0 || d->ph < 0 || d->pw < 0)
        return lsdm_err("conv_transpose3d: padding must not be negative");
    if (d->slab < 0 || d->threads < 0)
        return lsdm_err("conv_transpose3d: negative slab size or thread count");
    /* op >= stride would make outputs that no input reaches and that the
     * adjoint conv3d does not cover */
    if (d->opd < 0 || d->oph < 0 || d->opw < 0 || d->opd >= d->sd || d->oph >= d->sh ||
        d->opw >= d->sw)
        return lsdm_err("conv_transpose3d: output padding must be in [0, stride)");
    long od = convt_out_size(d->D, d->kd, d->sd, d->pd, d->opd, d->dd);
    long oh = convt_out_size(d->H, d->kh, d->sh, d->ph, d->oph, d->dh);
    long ow = convt_out_size(d->W, d->kw, d->sw, d->pw, d->opw, d->dw);
    if (od < 1 || oh < 1 || ow < 1)
        return lsdm_err("conv_transpose3d: padding leaves an empty output");
    if (od > INT_MAX || oh > INT_MAX || ow > INT_MAX)
        return lsdm_err("conv_transpose3d: output too large");
    d->OD = (int)od, d->OH = (int)oh, d->OW = (int)ow;
    conv3d_dims a = {
        .N = d->N, .Cin = d->Cout, .D = d->OD, .H = d->OH, .W = d->OW, .Cout = d->Cin,
        .kd = d->kd, .kh = d->kh, .kw = d->kw, .sd = d->sd, .sh = d->sh, .sw = d->sw,
        .pd = d->pd, .ph = d->ph, .pw = d->pw, .dd = d->dd, .dh = d->dh, .dw = d->dw,
        .pad_mode = CONV3D_PAD_ZERO, .slab = d->slab, .threads = d->threads,
    };
    if (conv3d_dims_init(&a) < 0) return lsdm_err_ctx("conv_transpose3d");
    if (a.OD != d->D || a.OH != d->H || a.OW != d->W) /* cannot happen with op < stride */
        return lsdm_err("conv_transpose3d: inconsistent adjoint sizes");
    d->adj = a;
    d->threads = a.threads;
    return 0;
}

size_t conv_transpose3d_workspace_size(const conv_transpose3d_dims *d) {
    return conv3d_workspace_size(&d->adj);
}

double conv_transpose3d_flops(const conv_transpose3d_dims *d) {
    return conv3d_flops(&d->adj);
}

#define real float
#define FN(x) x
#include "conv_transpose3d_impl.h"
#undef real
#undef FN

#define real double
#define FN(x) x##_f64
#include "conv_transpose3d_impl.h"
#undef real
#undef FN
