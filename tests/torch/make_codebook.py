"""PyTorch reference values for the VQ codebook (kernels/codebook.h).

Writes tests/fixtures/codebook/CASE.lsdm, read by tests/c/test_codebook.c.
Each case runs the deterministic part of the reference Codebook.forward
(Med-LSDM vq_gan_3d/model/codebook.py, training mode, after init) in
float32 as the reference does: nearest codes, lookup, commitment loss, the
EMA update up to the normalised embeddings (before random restarts, whose
candidates come from torch's RNG and are checked by properties in C), the
restart mask and the perplexity; and in float64 with autograd the gradient
of L = sum(embeddings_st * g) + commitment_loss with respect to z.

Tensors: cfg = (N, C, S, K); z (N,C,S) and emb, ema_n, z_avg (the state
before the step); idx (N,S); zq; loss; g, dz; n_total, ema_n_new,
z_avg_new, emb_new (before restarts); usage (1: kept, 0: restarted);
perplexity.

    /opt/torchenv/bin/python tests/torch/make_codebook.py
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lsdmio import write_stream  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures', 'codebook')
rng = np.random.default_rng(20240611)


def case(N, C, dhw, K):
    S = int(np.prod(dhw))
    z = rng.normal(size=(N, C) + dhw).astype(np.float32)
    flat_np = np.moveaxis(z, 1, -1).reshape(-1, C)
    # codes near some inputs so that several are used, others far away
    rows = rng.integers(0, flat_np.shape[0], size=K)
    emb = (flat_np[rows] + rng.normal(scale=0.3, size=(K, C))).astype(np.float32)
    emb[K // 2:] += np.float32(3.0)
    ema_n = rng.uniform(0.0, 3.0, size=K).astype(np.float32)
    z_avg = (emb * ema_n[:, None]).astype(np.float32)

    # ---- the reference forward, float32 (training, already initialised)
    tz, temb = torch.tensor(z), torch.tensor(emb)
    N_, z_avg_ = torch.tensor(ema_n), torch.tensor(z_avg)
    flat = tz.movedim(1, -1).flatten(end_dim=-2)
    distances = (flat ** 2).sum(dim=1, keepdim=True) - 2 * flat @ temb.t() \
        + (temb.t() ** 2).sum(dim=0, keepdim=True)
    idx = torch.argmin(distances, dim=1)
    onehot = F.one_hot(idx, K).type_as(flat)
    zq = F.embedding(idx.view(N, *dhw), temb).movedim(-1, 1)
    loss = 0.25 * F.mse_loss(tz, zq)
    n_total = onehot.sum(dim=0)
    encode_sum = flat.t() @ onehot
    N_.mul_(0.99).add_(n_total, alpha=0.01)
    z_avg_.mul_(0.99).add_(encode_sum.t(), alpha=0.01)
    n = N_.sum()
    weights = (N_ + 1e-7) / (n + K * 1e-7) * n
    emb_new = z_avg_ / weights.unsqueeze(1)
    usage = (N_ >= 1.0).float()
    p = onehot.mean(dim=0)
    p = p / p.sum()
    perplexity = torch.exp(-torch.sum(p * torch.log(p + 1e-10)))

    # ---- straight-through + commitment gradient, float64
    z64 = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    zq64 = zq.detach().double()
    st = (zq64 - z64).detach() + z64
    g = rng.uniform(-1, 1, size=z.shape).astype(np.float32)
    L = (st * torch.tensor(g, dtype=torch.float64)).sum() + 0.25 * F.mse_loss(z64, zq64)
    L.backward()

    return dict(cfg=np.array([N, C, S, K], dtype=np.float32), z=z.reshape(N, C, S), emb=emb,
                ema_n=ema_n, z_avg=z_avg, idx=idx.view(N, S).numpy().astype(np.float32),
                zq=zq.reshape(N, C, S).numpy(), loss=np.array([loss.item()]), g=g.reshape(N, C, S),
                dz=z64.grad.numpy().reshape(N, C, S), n_total=n_total.numpy(), ema_n_new=N_.numpy(),
                z_avg_new=z_avg_.numpy(), emb_new=emb_new.numpy(), usage=usage.numpy(),
                perplexity=np.array([perplexity.item()]))


def main():
    os.makedirs(OUT, exist_ok=True)
    cases = {
        'ema48': case(2, 4, (2, 3, 4), 16),   # 48 vectors >= K: no tiling
        'ema6': case(1, 4, (1, 2, 3), 16),    # 6 vectors < K: tiled restart candidates
    }
    for name, t in cases.items():
        write_stream(os.path.join(OUT, name + '.lsdm'), t)
        print(name, 'codes used', int((t['n_total'] > 0).sum()), 'restarts', int((t['usage'] == 0).sum()),
              'perplexity %.4f' % t['perplexity'][0])


if __name__ == '__main__':
    main()
