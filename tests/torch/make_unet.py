"""PyTorch reference values for the semantic diffusion UNet
(tests/torch/unet_ref.py, the reference Unet3D_SPADE).

Writes tests/fixtures/unet/small.{conf,safetensors,lsdm} for a small config
of the reference layout (dim 8, dim_mults 1,2, 2 heads; every module kind
of the med-lsdm model is there):

  small.conf         the model config text (our format)
  small.safetensors  the state_dict, f32, reference names (with the rotary
                     embedding's freqs buffer under each temporal attention)
  small.lsdm         labels (u8, (2,16,32,32)): the mask, one-hot in the
                     model's input (label_nc classes)
                     x (2,C,4,8,8), t (2): latent and timesteps; eps = unet(x, t,
                     one_hot(labels)); x2, t2, eps2: a second step with the
                     same mask; maskfeat: the SegConv3D output (what
                     unet_encode_mask computes first)
                     target; loss = L1(eps, target) (mean);
                     grad:x and grad:PARAM for a few parameters (GRADS)

Everything is computed in float64 from the float32 values that are stored
(weights and inputs are rounded to f32 first), so a float32 implementation
should match to float32 rounding. Deterministic (fixed seeds).

    /opt/torchenv/bin/python tests/torch/make_unet.py [--ref GITDIR]

--ref GITDIR (e.g. /work/.mirror/TWWinde+Med-LSDM/repo) also builds the
reference Unet3D_SPADE from that git repository's ddpm/semantic_diffusion.py
(needs einops 0.4.1, einops-exts 0.0.3 and rotary-embedding-torch 0.1.5, the
versions it pins; its trainer's imports are stubbed) and checks, for the
small config (with the reference's hard-coded SegConv3D widths 64,128) and
for med-lsdm, that it has the same state_dict names and shapes as
unet_ref.py and, for the small one, the same eps from the same weights.
"""
import argparse
import os
import subprocess
import sys
import types

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lsdmio import write_stream  # noqa: E402
from unet_ref import DEFAULTS, Unet3D_SPADE, config_text, parse_config  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures', 'unet')
SMALL = dict(dim=8, dim_mults=(1, 2), channels=4, label_nc=5, attn_heads=2, attn_dim_head=8,
             spatial_dim_head=8, init_kernel=7, groups=4, segconv=1, seg_hidden=(8, 8),
             spade_input_nc=4, spade_hidden=4)
LATENT = (4, 8, 8)        # (D, H, W)
MASK = (16, 32, 32)       # the image grid: 4x the latent, as vq-encode's
GRADS = ['init_conv.weight', 'time_rel_pos_bias.relative_attention_bias.weight',
         'init_temporal_attn.fn.norm.gamma', 'time_mlp.1.weight',
         'downs.0.0.norm2.weight', 'downs.0.1.fn.fn.to_qkv.weight',
         'downs.1.2.fn.fn.fn.to_qkv.weight', 'downs.0.3.weight',
         'mid_block1.spade_norm1.mlp_gamma.weight', 'mid_spatial_attn.fn.fn.fn.to_out.weight',
         'ups.0.0.mlp.1.weight', 'ups.0.0.spade_norm2.mlp_shared.0.bias', 'ups.0.3.weight',
         'ups.1.0.res_conv.weight', 'final_conv.0.block1.norm.bias', 'final_conv.1.bias',
         'segconv3d.conv1.weight', 'segconv3d.conv3.bias']
SEED = 21


def uniform(gen, shape, lo, hi):
    return torch.rand(shape, generator=gen, dtype=torch.float64) * (hi - lo) + lo


def randomize(model, gen):
    """Non-trivial norm scales and biases, so that a wrong tensor mapping or
    a missed affine changes the results."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('gamma') or (('norm' in name) and name.endswith('weight')):
                p.copy_(uniform(gen, p.shape, 0.6, 1.4))
            elif name.endswith('bias') and p.dim() == 1:
                p.copy_(uniform(gen, p.shape, -0.2, 0.2))


def one_hot(labels, n):
    return F.one_hot(labels.long(), n).movedim(-1, 1).double()


def blocky_labels(gen, n, shape, classes):
    """Label maps on a coarse grid, upsampled, with some voxels flipped."""
    d, h, w = shape
    lab = torch.randint(0, classes, (n, 1, d // 4, h // 8, w // 8), generator=gen)
    lab = F.interpolate(lab.float(), size=shape, mode='nearest').long()[:, 0]
    flip = torch.rand(lab.shape, generator=gen) < 0.05
    lab[flip] = torch.randint(0, classes, (int(flip.sum()),), generator=gen)
    return lab.to(torch.uint8)


def state_dict_f32(model):
    return {k: v.detach().float().contiguous().clone() for k, v in model.state_dict().items()}


def records(model, labels, gen):
    m = model.double()
    n, c = labels.shape[0], m.channels
    cond = one_hot(labels, m.label_nc)
    x = torch.randn((n, c) + LATENT, generator=gen).float().double().requires_grad_(True)
    t = torch.tensor([37.0, 401.0], dtype=torch.float64)
    x2 = torch.randn((n, c) + LATENT, generator=gen).float().double()
    t2 = torch.tensor([499.0, 3.0], dtype=torch.float64)
    m.zero_grad()
    eps = m(x, t, cond)
    with torch.no_grad():
        maskfeat = m.encode_mask(cond)
        eps2 = m(x2, t2, seg=maskfeat)
        # the target: eps moved by at least 0.05 per value, so no |eps - target|
        # is near the kink of |.| where float32 could flip a sign
        step = uniform(gen, eps.shape, 0.05, 0.5) * torch.where(torch.rand(eps.shape, generator=gen) < 0.5, -1, 1)
        target = (eps + step).float().double()
    loss = (eps - target).abs().mean()
    loss.backward()
    t_ = dict(labels=labels.numpy(), x=x, t=t, eps=eps, x2=x2, t2=t2, eps2=eps2, maskfeat=maskfeat,
              target=target, loss=loss, **{'grad:x': x.grad})
    params = dict(m.named_parameters())
    for name in GRADS:
        t_['grad:' + name] = params[name].grad
    return {k: v if isinstance(v, np.ndarray) else v.detach().numpy() for k, v in t_.items()}


def show(path, t):
    print('%s:' % os.path.relpath(path))
    for k, v in t.items():
        print('  %-56s %-16s max|v| %.4g' % (k, 'x'.join(map(str, v.shape)) or '1',
                                             float(np.abs(v.astype(np.float64)).max())))


def make():
    cfg = parse_config(config_text(dict(DEFAULTS, **SMALL)))
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    model = Unet3D_SPADE(cfg)
    randomize(model, gen)
    model.float()
    sd = state_dict_f32(model)
    with open(os.path.join(OUT, 'small.conf'), 'w') as f:
        f.write('# tests/torch/make_unet.py: small semantic diffusion UNet, reference layout\n')
        f.write(config_text(cfg))
    save_file(sd, os.path.join(OUT, 'small.safetensors'), metadata={'config': config_text(cfg)})
    labels = blocky_labels(gen, 2, MASK, cfg['label_nc'])
    t = records(model, labels, gen)
    path = os.path.join(OUT, 'small.lsdm')
    write_stream(path, t)
    show(path, t)
    n = sum(v.numel() for v in model.parameters())
    print('small: %d parameters, %d tensors' % (n, len(sd)))


# ---- optional check against the reference source itself -------------------
def load_reference(gitdir):
    """The reference ddpm/semantic_diffusion.py as a module, with what its
    trainer and sampler import (torchvision, PIL, the VQ-GAN, text, metrics,
    plots) stubbed."""
    stub = types.SimpleNamespace
    dummy = type('Dummy', (), {})

    class Anything(types.ModuleType):  # any attribute, callable: default arguments
        def __getattr__(self, name):
            return lambda *a, **k: None

    mods = {
        'torchvision': stub(transforms=Anything('transforms'), utils=Anything('utils')),
        'PIL': stub(Image=Anything('Image')),
        'tqdm': stub(tqdm=lambda x, **k: x),
        'matplotlib': stub(pyplot=stub()), 'matplotlib.pyplot': stub(),
        'ddpm': types.ModuleType('ddpm'),
        'ddpm.text': stub(tokenize=None, bert_embed=None, BERT_MODEL_DIM=768),
        'vq_gan_3d': types.ModuleType('vq_gan_3d'), 'vq_gan_3d.model': types.ModuleType('vq_gan_3d.model'),
        'vq_gan_3d.model.vqgan': stub(VQGAN=dummy), 'vq_gan_3d.model.vqgan_spade': stub(VQGAN_SPADE=dummy),
        'vq_gan_3d.model.vqvae': stub(VQVAE=dummy),
        'evaluation': types.ModuleType('evaluation'), 'evaluation.metrics': stub(Metrics=dummy),
    }
    sys.modules.update(mods)
    src = subprocess.run(['git', '-C', gitdir, 'show', 'HEAD:ddpm/semantic_diffusion.py'],
                         check=True, capture_output=True, text=True).stdout
    mod = types.ModuleType('ddpm.semantic_diffusion')
    exec(compile(src, 'ref/semantic_diffusion.py', 'exec'), mod.__dict__)
    return mod


def reference_model(ref, cfg):
    """The reference Unet3D_SPADE for cfg; its hard-coded widths (SPADE
    hidden 128, dim_head 32 of the spatial attentions) set through their
    defaults. SegConv3D's 64,128 cannot be: cfg must have them."""
    assert cfg['seg_hidden'] == (64, 128)
    ref.SPADEGroupNorm3D.__init__.__defaults__ = (64, 1e-5, 8, cfg['spade_hidden'])
    ref.SpatialLinearAttention.__init__.__defaults__ = (4, cfg['spatial_dim_head'])
    ref.Attention.__init__.__defaults__ = (4, cfg['spatial_dim_head'], None)
    return ref.Unet3D_SPADE(dim=cfg['dim'], dim_mults=cfg['dim_mults'], channels=cfg['channels'],
                            attn_heads=cfg['attn_heads'], attn_dim_head=cfg['attn_dim_head'],
                            init_kernel_size=cfg['init_kernel'], label_nc=cfg['label_nc'],
                            spade_input_nc=cfg['spade_input_nc'], resnet_groups=cfg['groups'],
                            segconv=bool(cfg['segconv']))


def check_reference(ref, name, cfg, forward):
    torch.manual_seed(3)
    ours = Unet3D_SPADE(cfg)
    theirs = reference_model(ref, cfg)
    so, st = ours.state_dict(), theirs.state_dict()
    assert set(so) == set(st), sorted(set(so) ^ set(st))
    assert all(so[k].shape == st[k].shape for k in so), [k for k in so if so[k].shape != st[k].shape]
    n = sum(v.numel() for v in ours.parameters())
    if not forward:
        print('reference check %s: %d names and shapes match (%d parameters)' % (name, len(so), n))
        return
    gen = torch.Generator().manual_seed(5)
    randomize(ours, gen)
    theirs.load_state_dict(ours.state_dict())
    ours.double(), theirs.double()
    labels = blocky_labels(gen, 2, MASK, cfg['label_nc'])
    cond = one_hot(labels, cfg['label_nc'])
    x = torch.randn((2, cfg['channels']) + LATENT, generator=gen, dtype=torch.float64)
    t = torch.tensor([37.0, 401.0], dtype=torch.float64)
    with torch.no_grad():
        a, b = ours(x, t, cond), theirs(x, t, cond=cond)
    err = float((a - b).abs().max())
    print('reference check %s: %d names and shapes match (%d parameters), eps max abs diff %.3g '
          '(max |eps| %.3g)' % (name, len(so), n, err, float(b.abs().max())))
    assert err < 1e-12


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--ref', metavar='GITDIR', help='also check against the reference source in this git repo')
    a = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    make()
    if a.ref:
        ref = load_reference(a.ref)
        check_reference(ref, 'small', parse_config(config_text(dict(DEFAULTS, **dict(SMALL, seg_hidden=(64, 128))))), True)
        check_reference(ref, 'med-lsdm', parse_config(''), False)
    for f in sorted(os.listdir(OUT)):
        print('%-24s %7d bytes' % (f, os.path.getsize(os.path.join(OUT, f))))


if __name__ == '__main__':
    main()
