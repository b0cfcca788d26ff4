"""PyTorch reference values for the attention-family ops of lsdm
(kernels/attention.h, linear_attention.h, timestep_embedding.h,
interpolate.h, pool.h): writes tests/fixtures/attn/CASE.lsdm, read by
tests/c/test_attention.c and tests/c/test_interp_pool.c.

The reference UNet's modules (Med-LSDM ddpm/semantic_diffusion.py:
Attention, RelativePositionBias, SpatialLinearAttention, SinusoidalPosEmb,
and rotary_embedding_torch's RotaryEmbedding) are re-implemented here with
their exact math, in float64 where the reference allows it. Backward
values are autograd gradients of L = sum(out * g) for a random g.

Run: /opt/torchenv/bin/python tests/torch/make_attn.py
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from lsdmio import write_stream  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'attn')
D = torch.float64


def rnd(*shape):
    return torch.randn(*shape, dtype=D)


def save(case, **t):
    write_stream(os.path.join(OUT, case + '.lsdm'),
                 {k: v.detach().double().numpy() for k, v in t.items()})


def grads(out, g, *xs):
    return torch.autograd.grad((out * g).sum(), xs)


# --- the reference modules' math ------------------------------------------

def relpos_bucket(rel, num_buckets=32, max_distance=128):
    # RelativePositionBias._relative_position_bucket, verbatim math
    ret = 0
    n = -rel
    num_buckets //= 2
    ret += (n < 0).long() * num_buckets
    n = torch.abs(n)
    max_exact = num_buckets // 2
    is_small = n < max_exact
    val_if_large = max_exact + (
        torch.log(n.float() / max_exact) / math.log(max_distance / max_exact)
        * (num_buckets - max_exact)).long()
    val_if_large = torch.min(val_if_large, torch.full_like(val_if_large, num_buckets - 1))
    return ret + torch.where(is_small, n, val_if_large)


def relpos_bias(table, n, num_buckets, max_distance):
    pos = torch.arange(n, dtype=torch.long)
    rel = pos[None, :] - pos[:, None]
    return table[relpos_bucket(rel, num_buckets, max_distance)].permute(2, 0, 1)


def rotary_freqs(dim):
    # RotaryEmbedding(dim) 'lang': float32 freqs, float32 angles
    return 1. / (10000 ** (torch.arange(0, dim, 2)[:(dim // 2)].float() / dim))


def rotary(t, dim):
    n = t.shape[-2]
    ang = torch.einsum('i,f->if', torch.arange(n).float(), rotary_freqs(dim))
    ang = ang.repeat_interleave(2, dim=-1).double()
    x, rest = t[..., :dim], t[..., dim:]
    pairs = x.reshape(*x.shape[:-1], dim // 2, 2)
    rot = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).reshape(x.shape)
    return torch.cat((x * ang.cos() + rot * ang.sin(), rest), dim=-1)


def ref_attention(q, k, v, scale, bias=None, rot_dim=0):
    # Attention.forward after the head split (no to_qkv / to_out)
    q = q * scale
    if rot_dim:
        q, k = rotary(q, rot_dim), rotary(k, rot_dim)
    sim = torch.einsum('...id,...jd->...ij', q, k)
    if bias is not None:
        sim = sim + bias
    sim = sim - sim.amax(dim=-1, keepdim=True).detach()
    return torch.einsum('...ij,...jd->...id', sim.softmax(dim=-1), v)


def ref_linear_attention(qkv, heads, scale):
    # SpatialLinearAttention.forward between to_qkv and to_out, on the
    # volume layout (B, 3*heads*dh, F, N) with '(b f)' as its batch
    B, C3, Fs, N = qkv.shape
    x = qkv.permute(0, 2, 1, 3).reshape(B * Fs, C3, N)
    q, k, v = (t.reshape(B * Fs, heads, -1, N) for t in x.chunk(3, dim=1))
    q = q.softmax(dim=-2) * scale
    k = k.softmax(dim=-1)
    context = torch.einsum('bhdn,bhen->bhde', k, v)
    out = torch.einsum('bhde,bhdn->bhen', context, q)
    return out.reshape(B, Fs, -1, N).permute(0, 2, 1, 3)


def sinusoidal(t, dim):
    half = dim // 2
    emb = math.log(10000) / (half - 1)
    emb = torch.exp(torch.arange(half, dtype=D) * -emb)
    emb = t[:, None] * emb[None, :]
    return torch.cat((emb.sin(), emb.cos()), dim=-1)


# --- cases -----------------------------------------------------------------

def attention_cases():
    # temporal attention: rotary on q, k + relative position bias (B = b*h*w)
    B, H, L, dh = 3, 2, 6, 8
    q, k, v = (rnd(B, H, L, dh).requires_grad_() for _ in range(3))
    table = (rnd(32, H) * 0.5).requires_grad_()
    bias = relpos_bias(table, L, 32, 32)
    out = ref_attention(q, k, v, dh ** -0.5, bias, rot_dim=dh)
    g = rnd(*out.shape)
    dq, dk, dv, dt = grads(out, g, q, k, v, table)
    save('attn_temporal', q=q, k=k, v=v, table=table, g=g, out=out,
         dq=dq, dk=dk, dv=dv, dtable=dt)

    # long sequence without bias (the BLAS path), PyTorch's own SDPA
    B, H, L, dh = 1, 1, 70, 4
    q, k, v = (rnd(B, H, L, dh).requires_grad_() for _ in range(3))
    out = F.scaled_dot_product_attention(q, k, v, scale=0.5)
    g = rnd(*out.shape)
    dq, dk, dv = grads(out, g, q, k, v)
    save('attn_long', q=q, k=k, v=v, g=g, out=out, dq=dq, dk=dk, dv=dv)

    # rotary on part of the features (rot_dim 8 of 12)
    x = rnd(2, 5, 12).requires_grad_()
    out = rotary(x, 8)
    g = rnd(*out.shape)
    (dx,) = grads(out, g, x)
    save('rotary_partial', x=x, g=g, out=out, dx=dx, freqs=rotary_freqs(8))

    # bucket tables for rel = -63..63, as the reference computes them
    rel = torch.arange(-63, 64)
    save('relpos_buckets', md32=relpos_bucket(rel, 32, 32).double(),
         md128=relpos_bucket(rel, 32, 128).double())

    # linear attention, B=2, heads 2, dh 4, F=3 slices of N=5
    qkv = rnd(2, 3 * 2 * 4, 3, 5).requires_grad_()
    out = ref_linear_attention(qkv, 2, 4 ** -0.5)
    g = rnd(*out.shape)
    (dqkv,) = grads(out, g, qkv)
    save('linear_attn', qkv=qkv, g=g, out=out, dqkv=dqkv)

    t = torch.tensor([0., 1., 37.5, 499.], dtype=D, requires_grad=True)
    out = sinusoidal(t, 16)
    g = rnd(*out.shape)
    (dt,) = grads(out, g, t)
    save('timestep', t=t, g=g, out=out, dt=dt)


INTERP = [  # case, kwargs of F.interpolate
    ('interp_nearest_x2', dict(scale_factor=2.0, mode='nearest')),
    ('interp_nearest_size', dict(size=(4, 3, 9), mode='nearest')),
    ('interp_nearest_frac', dict(scale_factor=(1.5, 0.5, 2.5), mode='nearest')),
    ('interp_nexact_size', dict(size=(5, 3, 7), mode='nearest-exact')),
    ('interp_tri_x2', dict(scale_factor=2.0, mode='trilinear', align_corners=False)),
    ('interp_tri_ac_size', dict(size=(5, 7, 3), mode='trilinear', align_corners=True)),
    ('interp_tri_down', dict(size=(2, 3, 2), mode='trilinear', align_corners=False)),
    ('interp_tri_frac', dict(scale_factor=(1.7, 0.6, 1.25), mode='trilinear', align_corners=False)),
]

POOL = [  # case, kind, input shape, kernel, stride, padding, count_include_pad
    ('maxpool_k2', 'max', (1, 2, 4, 6, 6), 2, 2, 0, None),
    ('maxpool_k3s2p1', 'max', (1, 2, 5, 6, 7), 3, 2, 1, None),
    ('maxpool_k122', 'max', (2, 1, 3, 4, 6), (1, 2, 2), (1, 2, 2), 0, None),
    ('avgpool_k2', 'avg', (1, 2, 4, 6, 6), 2, 2, 0, True),
    ('avgpool_k3s2p1_incl', 'avg', (1, 2, 5, 6, 7), 3, 2, 1, True),
    ('avgpool_k3s2p1_excl', 'avg', (1, 2, 5, 6, 7), 3, 2, 1, False),
]


def interp_pool_cases():
    for case, kw in INTERP:
        # x2 cases on a smaller input: fixtures stay a few KB
        x = rnd(*((1, 1, 3, 4, 5) if case.endswith('x2') else (1, 2, 3, 5, 6))).requires_grad_()
        out = F.interpolate(x, **kw)
        g = rnd(*out.shape)
        (dx,) = grads(out, g, x)
        save(case, x=x, g=g, out=out, dx=dx)
    for case, kind, shape, k, s, p, incl in POOL:
        x = rnd(*shape).requires_grad_()
        if kind == 'max':
            out, idx = F.max_pool3d(x, k, s, p, return_indices=True)
            extra = dict(idx=idx.double())
        else:
            out = F.avg_pool3d(x, k, s, p, count_include_pad=incl)
            extra = {}
        g = rnd(*out.shape)
        (dx,) = grads(out, g, x)
        save(case, x=x, g=g, out=out, dx=dx, **extra)


if __name__ == '__main__':
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(20240603)
    attention_cases()
    interp_pool_cases()
