"""PyTorch reference values for one ldm-train step (libshared/ldm_train.c):
SemanticGaussianDiffusion.p_losses of the reference (q_sample with the
cosine schedule, eps prediction, L1 loss) under its trainer's gradient
accumulation, then gradient norm clipping, Adam and the EMA update.

The model is tests/fixtures/unet/small.{conf,safetensors} (made by
make_unet.py; every module kind of the reference Unet3D_SPADE), so this
group stores only the batch and the results, in tests/fixtures/ldm_train/step.lsdm:

  labels      u8 (K*N,16,32,32): the masks (one-hot in the model's input)
  drop        (K*N): 1 where the sample's mask is the all-zero null mask
  x0          (K*N,C,4,8,8): normalised latents in [-1,1]
  noise       (K*N,C,4,8,8), t (K*N): the draws, given explicitly
  loss        the step's loss: mean over the K micro-batch L1 losses
  loss0, loss1  each micro-batch's
  grad:NAME   the accumulated gradient (each micro-batch's backward scaled 1/K)
  grad_norm   its global 2-norm over every parameter (before clipping)
  clipped:NAME  the gradient after clip_grad_norm_(CLIP)
  w1:NAME     the weights after one Adam step (lr LR, betas 0.9, 0.999)
  ema1:NAME   the EMA after that step: 0.995 w0 + 0.005 w1
  l2loss0, l2grad:NAME  micro-batch 0 with the MSE loss instead (K = 1)

K = 2 micro-batches of N = 2 samples. The schedule is the reference's
cosine_beta_schedule(500) kept in float64 (the reference rounds
sqrt(abar) to float32 buffers; the C code computes in double): the
difference is far below the tolerances. Everything is float64 from the
float32 values stored.

    /opt/torchenv/bin/python tests/torch/make_ldm_train.py
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lsdmio import write_stream  # noqa: E402
from unet_ref import Unet3D_SPADE, parse_config  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
UNET = os.path.join(HERE, '..', 'fixtures', 'unet')
OUT = os.path.join(HERE, '..', 'fixtures', 'ldm_train')
K, N = 2, 2
LATENT = (4, 8, 8)
MASK = (16, 32, 32)
T = 500
TS = [3, 250, 499, 77]
DROP = [0, 1, 0, 0]
CLIP = 1.0
LR = 1e-3
EMA = 0.995
NAMES = ['init_conv.bias', 'time_mlp.1.weight', 'downs.0.0.norm2.weight',
         'mid_block1.spade_norm1.mlp_gamma.bias', 'ups.0.0.spade_norm2.mlp_shared.0.bias',
         'ups.1.0.res_conv.weight', 'final_conv.1.bias', 'segconv3d.conv1.weight',
         'segconv3d.conv3.bias', 'time_rel_pos_bias.relative_attention_bias.weight']
SEED = 33


def cosine_beta_schedule(timesteps, s=0.008):
    """The reference's (ddpm/semantic_diffusion.py), in float64."""
    steps = timesteps + 1
    x = torch.linspace(0, timesteps, steps, dtype=torch.float64)
    ac = torch.cos(((x / timesteps) + s) / (1 + s) * math.pi * 0.5) ** 2
    ac = ac / ac[0]
    betas = 1 - (ac[1:] / ac[:-1])
    return torch.clip(betas, 0, 0.9999)


def blocky_labels(gen, n, shape, classes):
    d, h, w = shape
    lab = torch.randint(0, classes, (n, 1, d // 4, h // 8, w // 8), generator=gen)
    lab = F.interpolate(lab.float(), size=shape, mode='nearest').long()[:, 0]
    flip = torch.rand(lab.shape, generator=gen) < 0.05
    lab[flip] = torch.randint(0, classes, (int(flip.sum()),), generator=gen)
    return lab.to(torch.uint8)


def p_losses(model, x0, t, cond, noise, abar, loss_type):
    """The reference's q_sample and p_losses."""
    a = abar[t].sqrt().view(-1, 1, 1, 1, 1)
    b = (1 - abar[t]).sqrt().view(-1, 1, 1, 1, 1)
    x_noisy = a * x0 + b * noise
    eps = model(x_noisy, t.double(), cond)
    return F.l1_loss(noise, eps) if loss_type == 'l1' else F.mse_loss(noise, eps)


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    cfg = parse_config(open(os.path.join(UNET, 'small.conf')).read())
    model = Unet3D_SPADE(cfg)
    model.load_state_dict(load_file(os.path.join(UNET, 'small.safetensors')))
    model.double()
    params = dict(model.named_parameters())
    w0 = {k: v.detach().clone() for k, v in params.items()}

    gen = torch.Generator().manual_seed(SEED)
    labels = blocky_labels(gen, K * N, MASK, cfg['label_nc'])
    cond = F.one_hot(labels.long(), cfg['label_nc']).movedim(-1, 1).double()
    drop = torch.tensor(DROP, dtype=torch.float64)
    cond = cond * (1 - drop).view(-1, 1, 1, 1, 1)
    C = cfg['channels']
    x0 = (torch.rand((K * N, C) + LATENT, generator=gen) * 2 - 1).float().double()
    noise = torch.randn((K * N, C) + LATENT, generator=gen).float().double()
    t = torch.tensor(TS)
    betas = cosine_beta_schedule(T)
    abar = torch.cumprod(1 - betas, 0)

    # the step: K micro-batches, each loss backward scaled 1/K (the trainer's
    # loss / gradient_accumulate_every), then clip, Adam, EMA
    out = dict(labels=labels.numpy(), drop=drop, x0=x0, noise=noise, t=t.double())
    model.zero_grad()
    losses = []
    for k in range(K):
        s = slice(k * N, (k + 1) * N)
        loss = p_losses(model, x0[s], t[s], cond[s], noise[s], abar, 'l1')
        (loss / K).backward()
        losses.append(loss.item())
        out['loss%d' % k] = torch.tensor([loss.item()])
    out['loss'] = torch.tensor([sum(losses) / K])
    for name in NAMES:
        out['grad:' + name] = params[name].grad.clone()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
    out['grad_norm'] = torch.tensor([float(norm)])
    for name in NAMES:
        out['clipped:' + name] = params[name].grad.clone()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    opt.step()
    for name in NAMES:
        w1 = params[name].detach()
        out['w1:' + name] = w1.clone()
        out['ema1:' + name] = w0[name] * EMA + (1 - EMA) * w1

    # micro-batch 0 with the MSE loss, from the initial weights
    with torch.no_grad():
        for k, v in params.items():
            v.copy_(w0[k])
    model.zero_grad()
    loss = p_losses(model, x0[:N], t[:N], cond[:N], noise[:N], abar, 'l2')
    loss.backward()
    out['l2loss0'] = torch.tensor([loss.item()])
    for name in NAMES[:4]:
        out['l2grad:' + name] = params[name].grad.clone()

    out = {k: v if isinstance(v, np.ndarray) else v.detach().numpy() for k, v in out.items()}
    path = os.path.join(OUT, 'step.lsdm')
    write_stream(path, out)
    print('%s: loss %.9g (micro %.9g, %.9g), grad norm %.6g (clipped to %g), l2 loss %.9g'
          % (os.path.relpath(path), out['loss'][0], losses[0], losses[1], float(norm), CLIP,
             out['l2loss0'][0]))
    print('%-24s %7d bytes' % ('step.lsdm', os.path.getsize(path)))


if __name__ == '__main__':
    main()
