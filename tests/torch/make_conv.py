"""PyTorch reference values for conv3d and conv_transpose3d.

Writes tests/fixtures/conv/CASE.lsdm, read by tests/c/test_conv3d.c. Each
holds the case's configuration `cfg` (see CFG below), the inputs x, w,
b (if any) and the output gradient g, and PyTorch's float64 results: out,
dx, dw, db of L = sum(out * g). Inputs are drawn in float32 so that the
stored values are exactly what PyTorch computed with.

    /opt/torchenv/bin/python tests/torch/make_conv.py
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lsdmio import write_stream  # noqa: E402

# cfg layout (24 numbers), shared with the C test:
CFG = ['kind', 'N', 'Cin', 'D', 'H', 'W', 'Cout', 'kd', 'kh', 'kw', 'sd', 'sh', 'sw',
       'pd', 'ph', 'pw', 'dd', 'dh', 'dw', 'replicate', 'opd', 'oph', 'opw', 'bias']

# name: kind (0 conv3d, 1 conv_transpose3d), N, Cin, (D,H,W), Cout, k, s, p, dil, extra
CASES = {
    'conv_k3p1':       dict(kind=0, N=2, Cin=2, dhw=(4, 5, 6), Cout=3, k=3, s=1, p=1),
    'conv_k3s2p1':     dict(kind=0, N=1, Cin=3, dhw=(5, 6, 7), Cout=2, k=3, s=2, p=1),
    'conv_k4s2p1':     dict(kind=0, N=2, Cin=2, dhw=(4, 6, 6), Cout=3, k=4, s=2, p=1),
    'conv_k133p011':   dict(kind=0, N=2, Cin=3, dhw=(2, 5, 6), Cout=4, k=(1, 3, 3), s=1, p=(0, 1, 1)),
    'conv_dil2':       dict(kind=0, N=1, Cin=2, dhw=(5, 6, 7), Cout=2, k=3, s=1, p=2, dil=2),
    'conv_replicate':  dict(kind=0, N=2, Cin=2, dhw=(3, 5, 4), Cout=3, k=3, s=1, p=1, rep=True),
    'conv_rep_aniso':  dict(kind=0, N=1, Cin=2, dhw=(4, 6, 8), Cout=3, k=(2, 3, 4), s=(1, 2, 3),
                            p=(1, 2, 3), rep=True),
    'conv_1x1':        dict(kind=0, N=2, Cin=5, dhw=(2, 3, 4), Cout=3, k=1, s=1, p=0, bias=False),
    'convT_k4s2p1':    dict(kind=1, N=2, Cin=3, dhw=(2, 3, 3), Cout=2, k=4, s=2, p=1),
    'convT_k3s1p1':    dict(kind=1, N=1, Cin=3, dhw=(3, 4, 5), Cout=2, k=3, s=1, p=1),
    'convT_k3s2op1':   dict(kind=1, N=1, Cin=2, dhw=(2, 3, 4), Cout=2, k=3, s=2, p=1, op=1),
    'convT_k144s122':  dict(kind=1, N=2, Cin=3, dhw=(2, 3, 3), Cout=2, k=(1, 4, 4), s=(1, 2, 2),
                            p=(0, 1, 1)),
    'convT_dil2':      dict(kind=1, N=1, Cin=2, dhw=(2, 3, 4), Cout=2, k=3, s=2, p=2, dil=2,
                            op=(1, 0, 1), bias=False),
}


def triple(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v, v)


def make_case(name, c, rng):
    kind, N, Cin, Cout = c['kind'], c['N'], c['Cin'], c['Cout']
    D, H, W = c['dhw']
    k, s, p = triple(c['k']), triple(c['s']), triple(c['p'])
    dil, op = triple(c.get('dil', 1)), triple(c.get('op', 0))
    rep, has_bias = c.get('rep', False), c.get('bias', True)
    wshape = (Cout, Cin) + k if kind == 0 else (Cin, Cout) + k
    f32 = lambda *shape: rng.uniform(-1, 1, size=shape).astype(np.float32)
    x, w, b = f32(N, Cin, D, H, W), f32(*wshape), f32(Cout)
    tx, tw, tb = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, w, b))
    bias = tb if has_bias else None
    if kind == 0 and rep:
        xp = F.pad(tx, (p[2], p[2], p[1], p[1], p[0], p[0]), mode='replicate')
        out = F.conv3d(xp, tw, bias, stride=s, dilation=dil)
    elif kind == 0:
        out = F.conv3d(tx, tw, bias, stride=s, padding=p, dilation=dil)
    else:
        out = F.conv_transpose3d(tx, tw, bias, stride=s, padding=p, output_padding=op,
                                 dilation=dil)
    g = rng.uniform(-1, 1, size=out.shape).astype(np.float32)
    out.backward(torch.tensor(g, dtype=torch.float64))
    cfg = [kind, N, Cin, D, H, W, Cout, *k, *s, *p, *dil, int(rep), *op, int(has_bias)]
    assert len(cfg) == len(CFG)
    t = dict(cfg=np.array(cfg, dtype=np.float32), x=x, w=w, g=g,
             out=out.detach().numpy(), dx=tx.grad.numpy(), dw=tw.grad.numpy())
    if has_bias:
        t['b'], t['db'] = b, tb.grad.numpy()
    return t


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = os.path.join(here, '..', 'fixtures', 'conv')
    os.makedirs(outdir, exist_ok=True)
    rng = np.random.default_rng(20261126)
    for name, c in CASES.items():
        t = make_case(name, c, rng)
        path = os.path.join(outdir, name + '.lsdm')
        write_stream(path, t, keys={'case': name, 'torch': torch.__version__})
        print('%-16s out %-22s %6d bytes' % (name, tuple(t['out'].shape), os.path.getsize(path)))


if __name__ == '__main__':
    main()
