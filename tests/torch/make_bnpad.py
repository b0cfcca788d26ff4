"""PyTorch reference values for BatchNorm in training mode and 3D padding.

Writes tests/fixtures/bnpad/CASE.lsdm, read by tests/c/test_bn_pad.c. Each
file holds `cfg` (layout below), the inputs (drawn in float32, so the
stored values are exactly what PyTorch computed with), the output gradient
g, and PyTorch's float64 results: out and the gradients of
L = sum(out * g) from autograd.

  bn_*:  cfg = N, C, S, eps, affine, momentum; x, w, b, g, rm, rv (running
         stats before), out, mean, rstd (saved batch stats), rm_out, rv_out
         (after the update), dx, dw, db.
  pad_*: cfg = NC, D, H, W, d0, d1, h0, h1, w0, w1, mode (0 zero, 1
         replicate); x, g, out, dx.

    /opt/torchenv/bin/python tests/torch/make_bnpad.py
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lsdmio import write_stream  # noqa: E402

TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures')
rng = np.random.default_rng(20240711)


def f32(*shape, lo=-1.0, hi=1.0):
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


def t64(a, grad=True):
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def backprop(out, names_tensors):
    """g, then the gradients of sum(out * g) for each (name, tensor)."""
    g = f32(*out.shape)
    out.backward(torch.tensor(g, dtype=torch.float64))
    res = dict(g=g, out=out.detach().numpy())
    for name, t in names_tensors:
        res[name] = t.grad.numpy()
    return res


def batchnorm_case(N, C, spatial, eps, affine, momentum=0.1, offset=0.0, scale=1.0):
    S = int(np.prod(spatial))
    x = (f32(N, C, *spatial) * np.float32(scale) + np.float32(offset)).astype(np.float32)
    w, b = f32(C, lo=0.5, hi=1.5), f32(C)
    rm, rv = f32(C, lo=-0.5, hi=0.5), f32(C, lo=0.2, hi=2.0)
    tx, tw, tb = t64(x), t64(w), t64(b)
    trm, trv = t64(rm, False), t64(rv, False)
    out = F.batch_norm(tx, trm, trv, tw if affine else None, tb if affine else None,
                       training=True, momentum=momentum, eps=eps)
    # the saved batch statistics (mean, 1/sqrt(var + eps)) of the same call
    _, mean, rstd = torch.ops.aten.native_batch_norm(
        tx.detach(), None, None, None, None, True, momentum, eps)
    t = dict(cfg=np.array([N, C, S, eps, int(affine), momentum], dtype=np.float32),
             x=x, rm=rm, rv=rv)
    if affine:
        t.update(w=w, b=b)
    t.update(backprop(out, [('dx', tx)] + ([('dw', tw), ('db', tb)] if affine else [])))
    t.update(mean=mean.numpy(), rstd=rstd.numpy(), rm_out=trm.numpy(), rv_out=trv.numpy())
    return t


def pad_case(N, C, dhw, pads, mode):
    """pads = (d0, d1, h0, h1, w0, w1); F.pad takes them from the last axis."""
    d0, d1, h0, h1, w0, w1 = pads
    x = f32(N, C, *dhw)
    tx = t64(x)
    tmode = 'replicate' if mode else 'constant'
    out = F.pad(tx, (w0, w1, h0, h1, d0, d1), mode=tmode)
    t = dict(cfg=np.array([N * C, *dhw, *pads, mode], dtype=np.float32), x=x)
    t.update(backprop(out, [('dx', tx)]))
    return t


CASES = {
    'bn_affine_2d': lambda: batchnorm_case(4, 3, (3, 5), 1e-5, True),
    'bn_affine_3d': lambda: batchnorm_case(2, 4, (2, 3, 3), 1e-5, True, momentum=0.25),
    'bn_plain': lambda: batchnorm_case(3, 2, (2, 2, 2), 1e-3, False),
    'bn_offset': lambda: batchnorm_case(2, 3, (4, 5), 1e-5, True, offset=5.0, scale=0.25),
    'bn_batch1': lambda: batchnorm_case(1, 2, (7,), 1e-5, True),
    'pad_zero': lambda: pad_case(1, 2, (3, 4, 5), (1, 2, 0, 1, 2, 0), 0),
    'pad_replicate': lambda: pad_case(2, 1, (3, 4, 5), (1, 2, 2, 1, 0, 3), 1),
    'pad_replicate_wide': lambda: pad_case(1, 2, (1, 2, 3), (2, 1, 3, 0, 1, 4), 1),
    'pad_zero_sym': lambda: pad_case(1, 1, (2, 3, 2), (1, 1, 1, 1, 1, 1), 0),
}


def main():
    d = os.path.join(TOP, 'bnpad')
    os.makedirs(d, exist_ok=True)
    for name, make in CASES.items():
        path = os.path.join(d, name + '.lsdm')
        write_stream(path, make())
        print('%s: %d bytes' % (os.path.relpath(path, os.path.join(TOP, '..', '..')),
                                os.path.getsize(path)))


if __name__ == '__main__':
    main()
