"""PyTorch side of the attention benchmark: reads the shape table of
`attention shapes` on stdin and prints "name fwd_ms bwd_ms" per shape.

    build/bench/attention shapes | python bench/attention.py [--reps R] [--threads T]

Same math as the reference modules (tests/torch/make_attn.py has them in
float64), here in float32: forward without autograd, backward = autograd
gradients of every input (q, k, v and the bias table; qkv for linear
attention) from a saved graph. Torch gets the friendliest setup: rotary
cos/sin and bucket indices computed once (the reference caches the
former), linear attention on its own (B*F, 3C, N) layout (no permutes).
One warm-up, median of R runs.
"""
import argparse
import math
import statistics
import sys
import time

import torch


def time_it(f, reps):
    ts = []
    for _ in range(reps + 1):
        t0 = time.perf_counter()
        f()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts[1:])


def relpos_bucket(rel, num_buckets=32, max_distance=32):
    # RelativePositionBias._relative_position_bucket
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


def rotary_tables(L, dim):
    freqs = 1. / (10000 ** (torch.arange(0, dim, 2)[:(dim // 2)].float() / dim))
    ang = torch.einsum('i,f->if', torch.arange(L).float(), freqs).repeat_interleave(2, dim=-1)
    return ang.cos(), ang.sin()


def rotary(t, cos, sin):
    # rotary_embedding_torch.apply_rotary_emb (interleaved pairs), rot_dim = dh
    pairs = t.reshape(*t.shape[:-1], -1, 2)
    rot = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).reshape(t.shape)
    return t * cos + rot * sin


def softmax_attention(q, k, v, scale, bias=None):
    # Attention.forward after the head split (no to_qkv / to_out)
    sim = torch.einsum('...id,...jd->...ij', q * scale, k)
    if bias is not None:
        sim = sim + bias
    sim = sim - sim.amax(dim=-1, keepdim=True).detach()
    return torch.einsum('...ij,...jd->...id', sim.softmax(dim=-1), v)


def make_softmax(B, H, L, dh, rot):
    q, k, v = (torch.randn(B, H, L, dh, requires_grad=True) for _ in range(3))
    table = torch.randn(32, H, requires_grad=True)
    cos, sin = rotary_tables(L, dh)
    pos = torch.arange(L)
    buckets = relpos_bucket(pos[None, :] - pos[:, None])
    scale = dh ** -0.5

    def fwd():
        if not rot:
            return softmax_attention(q, k, v, scale), (q, k, v)
        bias = table[buckets].permute(2, 0, 1)
        out = softmax_attention(rotary(q, cos, sin), rotary(k, cos, sin), v, scale, bias)
        return out, (q, k, v, table)
    return fwd


def make_linear(B, H, N, dh, F):
    qkv = torch.randn(B * F, 3 * H * dh, N, requires_grad=True)
    scale = dh ** -0.5

    def fwd():
        # SpatialLinearAttention.forward between to_qkv and to_out
        q, k, v = (t.reshape(B * F, H, dh, N) for t in qkv.chunk(3, dim=1))
        q = q.softmax(dim=-2) * scale
        k = k.softmax(dim=-1)
        context = torch.einsum('bhdn,bhen->bhde', k, v)
        return torch.einsum('bhde,bhdn->bhen', context, q), (qkv,)
    return fwd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--only', default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    for line in sys.stdin:
        f = line.split()
        name, kind, (B, H, L, dh, Fs) = f[0], f[1], map(int, f[2:])
        if a.only and a.only not in name:
            continue
        fwd = make_linear(B, H, L, dh, Fs) if kind == 'linear' else make_softmax(B, H, L, dh, kind == 'temporal')

        def fwd_nograd():
            with torch.no_grad():
                fwd()

        tf = time_it(fwd_nograd, a.reps)
        out, inputs = fwd()
        g = torch.randn_like(out)
        tb = time_it(lambda: torch.autograd.grad(out, inputs, g, retain_graph=True), a.reps)
        print('%s %.3f %.3f' % (name, tf, tb), flush=True)


if __name__ == '__main__':
    main()
