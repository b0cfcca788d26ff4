"""PyTorch reference values for the diffusion schedule and samplers
(libshared/diffusion.c), in float64.

Writes tests/fixtures/diffusion/:

  schedule.lsdm   the reference cosine_beta_schedule (Med-LSDM
                  ddpm/semantic_diffusion.py) and its products for T = 500
                  and T = 20: T500:betas, T500:ac (alphas_cumprod),
                  T500:acp (alphas_cumprod_prev), ... Doubles do not fit the
                  stream's f32, so each is stored as two f32 tensors NAME:hi
                  and NAME:lo with hi + lo = the double (to ~1e-15 relative).
  steps.lsdm      x (a latent x_t), eps (the model's output) and noise,
                  (1,4,2,8,8) f32, and the reverse steps from them (T = 500):
                  ddpm:tT:clipK   the reference p_sample (predict_start_from_noise,
                                  x0 clipped to [-1,1] if K, q_posterior,
                                  + exp(0.5 log var) noise unless t = 0)
                  ddim:tT:pP:eE:clipK  DDIM (Song et al. 2021) as diffusers'
                                  DDIMScheduler.step with use_clipped_model_output
                                  (eps recomputed from the clipped x0), from t
                                  to P (-1: to x0, abar_prev = 1), eta E
                  guide:std, guide:ref  eps2 guided by eps (cond) and eps2
                                  (uncond) at S = 1.5, both formulas
  guided.lsdm     one whole sampler step of the small UNet fixture
                  (tests/fixtures/unet/small.*): labels (u8 1,8,32,32), x
                  (1,4,2,8,8) at t = 300 of T = 500, noise; eps_cond =
                  unet(x, t, one_hot(labels)), eps_uncond = unet(x, t, zeros),
                  guided:std (S = 1.5), ddim (t 300 -> 290, eta 0, clip) of it;
                  guided:ref (S = 1.5, the reference's formula), ddpm (t 300,
                  clip, noise) of it.

Inputs are rounded to f32 first and everything after is float64, so the C
code (double per element, rounded once) should agree to f32 rounding.

    /opt/torchenv/bin/python tests/torch/make_diffusion.py
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
OUT = os.path.join(HERE, '..', 'fixtures', 'diffusion')
UNET = os.path.join(HERE, '..', 'fixtures', 'unet')
SHAPE = (1, 4, 2, 8, 8)
S = 1.5


def cosine_beta_schedule(timesteps, s=0.008):
    """The reference's, verbatim in effect."""
    steps = timesteps + 1
    x = torch.linspace(0, timesteps, steps, dtype=torch.float64)
    alphas_cumprod = torch.cos(((x / timesteps) + s) / (1 + s) * torch.pi * 0.5) ** 2
    alphas_cumprod = alphas_cumprod / alphas_cumprod[0]
    betas = 1 - (alphas_cumprod[1:] / alphas_cumprod[:-1])
    return torch.clip(betas, 0, 0.9999)


class Schedule:
    """SemanticGaussianDiffusion's buffers, kept in float64 (the reference
    casts them to float32; we compute in double)."""

    def __init__(self, T):
        self.betas = cosine_beta_schedule(T)
        alphas = 1. - self.betas
        self.ac = torch.cumprod(alphas, dim=0)
        self.acp = F.pad(self.ac[:-1], (1, 0), value=1.)
        self.sqrt_recip_ac = torch.sqrt(1. / self.ac)
        self.sqrt_recipm1_ac = torch.sqrt(1. / self.ac - 1)
        var = self.betas * (1. - self.acp) / (1. - self.ac)
        self.log_var = torch.log(var.clamp(min=1e-20))
        self.coef1 = self.betas * torch.sqrt(self.acp) / (1. - self.ac)
        self.coef2 = (1. - self.acp) * torch.sqrt(alphas) / (1. - self.ac)


def p_sample(sc, x, t, eps, noise, clip):
    """The reference p_mean_variance + p_sample for one timestep."""
    x0 = sc.sqrt_recip_ac[t] * x - sc.sqrt_recipm1_ac[t] * eps
    if clip:
        x0 = x0.clamp(-1., 1.)
    mean = sc.coef1[t] * x0 + sc.coef2[t] * x
    nonzero = 0. if t == 0 else 1.
    return mean + nonzero * torch.exp(0.5 * sc.log_var[t]) * noise


def ddim_step(sc, x, t, t_prev, eps, noise, eta, clip):
    """diffusers DDIMScheduler.step (set_alpha_to_one: abar_prev = 1 after
    the last step; use_clipped_model_output=True), written out."""
    a_t = sc.ac[t]
    a_prev = sc.ac[t_prev] if t_prev >= 0 else torch.tensor(1., dtype=torch.float64)
    b_t = 1 - a_t
    x0 = (x - b_t ** 0.5 * eps) / a_t ** 0.5
    if clip:
        x0 = x0.clamp(-1., 1.)
        eps = (x - a_t ** 0.5 * x0) / b_t ** 0.5
    variance = ((1 - a_prev) / b_t) * (1 - a_t / a_prev)
    std = eta * variance ** 0.5
    direction = (1 - a_prev - std ** 2) ** 0.5 * eps
    prev = a_prev ** 0.5 * x0 + direction
    if eta > 0:
        prev = prev + std * noise
    return prev


def hi_lo(name, v, out):
    hi = v.float()
    lo = (v - hi.double()).float()
    out[name + ':hi'] = hi.double()
    out[name + ':lo'] = lo.double()


def f32(t):
    return t.float().double()


def make_schedule():
    out = {}
    for T in (500, 20):
        sc = Schedule(T)
        hi_lo('T%d:betas' % T, sc.betas, out)
        hi_lo('T%d:ac' % T, sc.ac, out)
        hi_lo('T%d:acp' % T, sc.acp, out)
    return out


def make_steps(gen):
    sc = Schedule(500)
    x = f32(torch.randn(SHAPE, generator=gen, dtype=torch.float64))
    eps = f32(torch.randn(SHAPE, generator=gen, dtype=torch.float64))
    eps2 = f32(torch.randn(SHAPE, generator=gen, dtype=torch.float64))
    noise = f32(torch.randn(SHAPE, generator=gen, dtype=torch.float64))
    out = dict(x=x, eps=eps, eps2=eps2, noise=noise)
    for t in (499, 250, 1, 0):
        for clip in (0, 1):
            out['ddpm:t%d:clip%d' % (t, clip)] = p_sample(sc, x, t, eps, noise, clip)
    for t, tp, eta, clip in ((499, 489, 0, 1), (499, 489, 1, 1), (250, 240, 0, 0), (250, 240, 1, 0),
                             (250, 249, 1, 1), (250, 240, 0.5, 1), (9, -1, 0, 1), (9, -1, 1, 0)):
        out['ddim:t%d:p%d:e%g:clip%d' % (t, tp, eta, clip)] = ddim_step(sc, x, t, tp, eps, noise, eta, clip)
    out['guide:std'] = eps2 + S * (eps - eps2)
    out['guide:ref'] = eps + S * (eps - eps2)
    return out


def make_guided(gen):
    with open(os.path.join(UNET, 'small.conf')) as f:
        cfg = parse_config(f.read())
    model = Unet3D_SPADE(cfg)
    model.load_state_dict(load_file(os.path.join(UNET, 'small.safetensors')))
    model.double().eval()
    sc = Schedule(500)
    lab = torch.randint(0, cfg['label_nc'], (1, 1, 2, 4, 4), generator=gen)
    lab = F.interpolate(lab.float(), size=(8, 32, 32), mode='nearest').long()[:, 0]
    cond = F.one_hot(lab, cfg['label_nc']).movedim(-1, 1).double()
    x = f32(torch.randn(SHAPE, generator=gen, dtype=torch.float64))
    noise = f32(torch.randn(SHAPE, generator=gen, dtype=torch.float64))
    t = 300
    tt = torch.tensor([float(t)], dtype=torch.float64)
    with torch.no_grad():
        ec = model(x, tt, cond)
        eu = model(x, tt, torch.zeros_like(cond))
    gs = eu + S * (ec - eu)
    gr = ec + S * (ec - eu)
    return {'labels': lab.to(torch.uint8).numpy(), 'x': x, 'noise': noise, 'eps_cond': ec,
            'eps_uncond': eu, 'guided:std': gs, 'ddim': ddim_step(sc, x, t, 290, gs, noise, 0, 1),
            'guided:ref': gr, 'ddpm': p_sample(sc, x, t, gr, noise, 1)}


def save(name, t):
    path = os.path.join(OUT, name)
    write_stream(path, {k: v if isinstance(v, np.ndarray) else v.detach().numpy() for k, v in t.items()})
    print('%s: %d tensors, %d bytes' % (os.path.relpath(path), len(t), os.path.getsize(path)))


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(31)
    save('schedule.lsdm', make_schedule())
    save('steps.lsdm', make_steps(gen))
    g = make_guided(gen)
    print('guided: max |eps_cond - eps_uncond| %.3g' % float((g['eps_cond'] - g['eps_uncond']).abs().max()))
    save('guided.lsdm', g)
    sc = Schedule(500)
    print('T500: beta_0 %.17g, beta_499 %.17g, abar_499 %.17g' % (sc.betas[0], sc.betas[-1], sc.ac[-1]))
    assert math.isclose(float(sc.acp[0]), 1.0)


if __name__ == '__main__':
    main()
