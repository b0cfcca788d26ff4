"""PyTorch reference values for the normalisation, activation, element-wise,
linear and SPADE ops.

Writes tests/fixtures/{norm,activation,elementwise}/CASE.lsdm, read by
tests/c/test_norm.c, test_activation.c and test_elementwise.c. Each file
holds `cfg` (the case's sizes, layout per op below), the inputs (drawn in
float32, so the stored values are exactly what PyTorch computed with), the
output gradient g, and PyTorch's float64 results: out and the gradients of
L = sum(out * g) from autograd (dx, dw, db, ...).

    /opt/torchenv/bin/python tests/torch/make_norm.py
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lsdmio import write_stream  # noqa: E402

TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures')
rng = np.random.default_rng(20240607)


def f32(*shape, lo=-1.0, hi=1.0):
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


def t64(a):
    return torch.tensor(a, dtype=torch.float64, requires_grad=True)


def backprop(out, names_tensors):
    """g, then the gradients of sum(out * g) for each (name, tensor)."""
    g = f32(*out.shape)
    out.backward(torch.tensor(g, dtype=torch.float64))
    res = dict(g=g, out=out.detach().numpy())
    for name, t in names_tensors:
        res[name] = t.grad.numpy()
    return res


# ---- norm: cfg = N, C, S, G, eps, affine  (instance norm: G = C) ----------
def groupnorm_case(N, C, dhw, G, eps, affine, offset=0.0, scale=1.0):
    S = int(np.prod(dhw))
    x = (f32(N, C, *dhw) * np.float32(scale) + np.float32(offset)).astype(np.float32)
    w, b = f32(C, lo=0.5, hi=1.5), f32(C)
    tx, tw, tb = t64(x), t64(w), t64(b)
    out = F.group_norm(tx, G, tw if affine else None, tb if affine else None, eps)
    _, mean, rstd = torch.ops.aten.native_group_norm(tx.detach(), None, None, N, C, S, G, eps)
    t = dict(cfg=np.array([N, C, S, G, eps, int(affine)], dtype=np.float32), x=x)
    grads = [('dx', tx)] + ([('dw', tw), ('db', tb)] if affine else [])
    if affine:
        t.update(w=w, b=b)
    t.update(backprop(out, grads))
    t.update(mean=mean.numpy(), rstd=rstd.numpy())
    return t


def instancenorm_case(N, C, dhw, eps, affine):
    S = int(np.prod(dhw))
    x, w, b = f32(N, C, *dhw), f32(C, lo=0.5, hi=1.5), f32(C)
    tx, tw, tb = t64(x), t64(w), t64(b)
    out = F.instance_norm(tx, weight=tw if affine else None, bias=tb if affine else None, eps=eps)
    t = dict(cfg=np.array([N, C, S, C, eps, int(affine)], dtype=np.float32), x=x)
    if affine:
        t.update(w=w, b=b)
    t.update(backprop(out, [('dx', tx)] + ([('dw', tw), ('db', tb)] if affine else [])))
    return t


# batchnorm: cfg = N, C, S, eps, affine; running stats rm, rv
def batchnorm_case(N, C, dhw, eps, affine):
    S = int(np.prod(dhw))
    x, w, b = f32(N, C, *dhw), f32(C, lo=0.5, hi=1.5), f32(C)
    rm, rv = f32(C, lo=-0.5, hi=0.5), f32(C, lo=0.2, hi=2.0)
    tx, tw, tb = t64(x), t64(w), t64(b)
    out = F.batch_norm(tx, torch.tensor(rm, dtype=torch.float64),
                       torch.tensor(rv, dtype=torch.float64),
                       tw if affine else None, tb if affine else None, training=False, eps=eps)
    t = dict(cfg=np.array([N, C, S, eps, int(affine)], dtype=np.float32), x=x, rm=rm, rv=rv)
    if affine:
        t.update(w=w, b=b)
    t.update(backprop(out, [('dx', tx)] + ([('dw', tw), ('db', tb)] if affine else [])))
    return t


# ---- activation: cfg = n, slope --------------------------------------------
ACTS = {
    'silu': lambda x: F.silu(x),
    'relu': lambda x: F.relu(x),
    'leaky_relu': lambda x: F.leaky_relu(x, 0.2),
    'gelu': lambda x: F.gelu(x, approximate='none'),
    'gelu_tanh': lambda x: F.gelu(x, approximate='tanh'),
    'tanh': torch.tanh,
    'sigmoid': torch.sigmoid,
}


def activation_case(name):
    # a spread over the interesting range plus a few large magnitudes
    x = np.concatenate([f32(90, lo=-5, hi=5),
                        np.array([-30, -12, -0.25, 0.25, 12, 30], dtype=np.float32)])
    tx = t64(x)
    t = dict(cfg=np.array([x.size, 0.2], dtype=np.float32), x=x)
    t.update(backprop(ACTS[name](tx), [('dx', tx)]))
    return t


# ---- elementwise: cfg = N, C, S, per_n (bcast), or as noted ----------------
def bcast_case(kind, N, C, S, per_n):
    x, v, v2 = f32(N, C, S), f32(N if per_n else 1, C, 1), f32(N if per_n else 1, C, 1)
    tx, tv, tv2 = t64(x), t64(v), t64(v2)
    if kind == 'add':
        out = tx + tv
    elif kind == 'mul':
        out = tx * tv
    else:  # scale_shift
        out = tx * (1 + tv) + tv2
    t = dict(cfg=np.array([N, C, S, per_n], dtype=np.float32), x=x, v=v.reshape(-1))
    grads = [('dx', tx), ('dv', tv)]
    if kind == 'scale_shift':
        t['v2'] = v2.reshape(-1)
        grads.append(('dv2', tv2))
    r = backprop(out, grads)
    r['dv'] = r['dv'].reshape(-1)
    if 'dv2' in r:
        r['dv2'] = r['dv2'].reshape(-1)
    t.update(r)
    return t


def binary_case(kind, n):
    a, b = f32(n), f32(n)
    ta, tb = t64(a), t64(b)
    out = ta + tb if kind == 'add' else ta * tb
    t = dict(cfg=np.array([n], dtype=np.float32), a=a, b=b)
    t.update(backprop(out, [('da', ta), ('db', tb)]))
    return t


def concat_case(N, Ca, Cb, S):  # cfg = N, Ca, Cb, S
    a, b = f32(N, Ca, S), f32(N, Cb, S)
    ta, tb = t64(a), t64(b)
    t = dict(cfg=np.array([N, Ca, Cb, S], dtype=np.float32), a=a, b=b)
    t.update(backprop(torch.cat([ta, tb], dim=1), [('da', ta), ('db', tb)]))
    return t


def slice_case(N, C, c0, Cs, S):  # cfg = N, C, c0, Cs, S
    x = f32(N, C, S)
    tx = t64(x)
    t = dict(cfg=np.array([N, C, c0, Cs, S], dtype=np.float32), x=x)
    t.update(backprop(tx[:, c0:c0 + Cs], [('dx', tx)]))
    return t


def linear_case(B, IC, OC, bias):  # cfg = B, IC, OC, bias
    x, w, b = f32(B, IC), f32(OC, IC), f32(OC)
    tx, tw, tb = t64(x), t64(w), t64(b)
    t = dict(cfg=np.array([B, IC, OC, int(bias)], dtype=np.float32), x=x, w=w)
    grads = [('dx', tx), ('dw', tw)]
    if bias:
        t['b'] = b
        grads.append(('db', tb))
    t.update(backprop(F.linear(tx, tw, tb if bias else None), grads))
    return t


def spade_case(N, C, S):  # cfg = n
    x, gm, bt = f32(N, C, S), f32(N, C, S), f32(N, C, S)
    tx, tg, tb = t64(x), t64(gm), t64(bt)
    t = dict(cfg=np.array([N * C * S], dtype=np.float32), x=x, gamma=gm, beta=bt)
    t.update(backprop(tx * (1 + tg) + tb, [('dx', tx), ('dgamma', tg), ('dbeta', tb)]))
    return t


def main():
    groups = {
        'norm': {
            'gn_affine': lambda: groupnorm_case(2, 6, (2, 3, 4), 3, 1e-5, True),
            'gn_plain_eps6': lambda: groupnorm_case(1, 8, (3, 4, 5), 2, 1e-6, False),
            'gn_offset': lambda: groupnorm_case(2, 4, (2, 2, 4), 2, 1e-5, True, offset=3.0,
                                                scale=0.5),
            'gn_one_group': lambda: groupnorm_case(2, 3, (1, 3, 3), 1, 1e-5, True),
            'in_affine': lambda: instancenorm_case(2, 3, (2, 2, 5), 1e-5, True),
            'in_plain': lambda: instancenorm_case(1, 4, (3, 3, 3), 1e-5, False),
            'bn_affine': lambda: batchnorm_case(2, 3, (1, 2, 5), 1e-5, True),
            'bn_plain': lambda: batchnorm_case(3, 2, (2, 2, 2), 1e-3, False),
        },
        'activation': {name: (lambda n=name: activation_case(n)) for name in ACTS},
        'elementwise': {
            'add': lambda: binary_case('add', 50),
            'mul': lambda: binary_case('mul', 50),
            'add_bcast_c': lambda: bcast_case('add', 2, 3, 10, 0),
            'add_bcast_nc': lambda: bcast_case('add', 2, 3, 10, 1),
            'mul_bcast_c': lambda: bcast_case('mul', 2, 3, 10, 0),
            'mul_bcast_nc': lambda: bcast_case('mul', 3, 2, 7, 1),
            'scale_shift_c': lambda: bcast_case('scale_shift', 2, 3, 8, 0),
            'scale_shift_nc': lambda: bcast_case('scale_shift', 2, 4, 6, 1),
            'concat': lambda: concat_case(2, 3, 2, 6),
            'slice': lambda: slice_case(2, 5, 1, 3, 4),
            'linear': lambda: linear_case(4, 7, 5, True),
            'linear_nobias': lambda: linear_case(3, 6, 4, False),
            'spade': lambda: spade_case(2, 3, 8),
        },
    }
    for group, cases in groups.items():
        d = os.path.join(TOP, group)
        os.makedirs(d, exist_ok=True)
        for name, make in cases.items():
            path = os.path.join(d, name + '.lsdm')
            write_stream(path, make())
            print('%s: %d bytes' % (os.path.relpath(path, os.path.join(TOP, '..', '..')),
                                    os.path.getsize(path)))


if __name__ == '__main__':
    main()
