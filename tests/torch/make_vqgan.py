"""PyTorch reference values for the VQ-GAN (tests/torch/vqgan_ref.py).

Writes tests/fixtures/vqgan/NAME.{conf,safetensors,lsdm} and NAME_disc.lsdm
for two small configs with the reference layout, `plain` and `spade`:

  NAME.conf         the model config text (our format)
  NAME.safetensors  the state_dict, f32, reference names (no num_batches_tracked)
  NAME.lsdm         x (1,1,8,16,16) [and seg one-hot (1,3,8,16,16)], z (prequant),
                    codes (i32), zq, y = decode(zq[, seg]), commit, perplexity;
                    loss_ae = 4*L1(y, x) + commit (eval-mode codebook,
                    straight-through) and grad:PARAM of it for a few params;
                    ema:N, ema:z_avg, ema:embeddings: the codebook buffers after
                    one training-mode forward on z (EMA, no random restart)
  NAME_disc.lsdm    per discriminator P = d3 (3D, on (2,1,8,16,16)) and d2
                    (2D, on (2,1,16,16)), training mode (batch statistics),
                    each step starting from the stored weights:
                    P:real, P:fake; D step: P:featK (K = 0..disc_layers+1,
                    the forward's list on real; the last is the logits),
                    P:logits_fake, P:d_loss (hinge), P:grad_d:PARAM (of d_loss),
                    P:after:modelK.1.running_{mean,var} (after D(real), D(fake));
                    G step: P:g_adv = -mean(D(fake)), P:g_feat = g_feat_weight *
                    sum_K<last L1(featK(fake), featK(real) detached), P:g_loss =
                    their sum, P:grad:fake and P:grad:PARAM of g_loss
                    g_feat_weight (= gan_feat_weight 4 * 4/(3+1))

Everything is computed in float64 from the float32 values that are stored
(weights and inputs are rounded to f32 first), so a float32 implementation
should match to float32 rounding. Deterministic (fixed seeds).

    /opt/torchenv/bin/python tests/torch/make_vqgan.py [--ref GITDIR]

--ref GITDIR (e.g. /work/.mirror/TWWinde+Med-LSDM/repo) also builds the
reference classes from that git repository's source (stubbing Lightning and
LPIPS) and checks that they have the same state_dict names and shapes and
compute the same values from the same weights.
"""
import argparse
import copy
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
from vqgan_ref import VQGAN, config_text, gan_g_loss, hinge_d_loss, parse_config  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures', 'vqgan')
SMALL = dict(n_hiddens=4, downsample=(4, 4, 4), image_channels=1, embedding_dim=4, n_codes=32,
             num_groups=4, padding_type='replicate', disc_channels=4, disc_layers=3)
CONFIGS = {
    'plain': dict(SMALL, decoder='plain'),
    'spade': dict(SMALL, decoder='spade', label_nc=3, spade_hidden=8, spade_groups=4),
    # per-axis factors: the second stage keeps depth (stride (1,2,2))
    'aniso': dict(SMALL, decoder='plain', downsample=(2, 4, 4)),
}
SEEDS = {'plain': 11, 'spade': 12, 'aniso': 13}
GRADS = ['encoder.conv_first.conv.weight', 'decoder.conv_last.conv.weight',
         'decoder.conv_blocks.0.up.convt.weight', 'pre_vq_conv.conv.bias']
SPADE_GRADS = ['encoder.conv_first.conv.weight', 'decoder.conv_last_spade.conv.weight',
               'decoder.conv_blocks_spade.0.up.convt.weight', 'pre_vq_conv.conv.bias',
               'decoder.conv_blocks_spade.1.res2.spade_norm1.mlp_gamma.weight']
D_GRADS = ['model0.0.weight', 'model2.1.weight', 'model3.0.bias']
G_FEAT_WEIGHT = 4.0 * 4.0 / (3 + 1)


def uniform(gen, shape, lo, hi):
    return torch.rand(shape, generator=gen, dtype=torch.float64) * (hi - lo) + lo


def smooth_volume(gen, shape):
    """(N,1,D,H,W) f32 in [-1,1]: a few low-frequency waves + noise,
    min-max rescaled per volume like the reference preprocessing."""
    n, _, d, h, w = shape
    zz, yy, xx = torch.meshgrid(*(torch.linspace(0, 1, s, dtype=torch.float64) for s in (d, h, w)),
                                indexing='ij')
    vols = []
    for _ in range(n):
        v = torch.zeros(d, h, w, dtype=torch.float64)
        for _ in range(4):
            f = uniform(gen, (3,), -4, 4)
            phase = uniform(gen, (1,), 0, 6.3)
            v += torch.sin(f[0] * zz + f[1] * yy + f[2] * xx + phase) * uniform(gen, (1,), 0.3, 1)
        v += 0.15 * torch.randn(v.shape, generator=gen, dtype=torch.float64)
        vols.append(2 * (v - v.min()) / (v.max() - v.min()) - 1)
    return torch.stack(vols)[:, None].float()


def randomize(model, gen):
    """Non-trivial norm affines, conv biases and BN running stats, so that a
    wrong tensor mapping changes the results."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.GroupNorm, nn.BatchNorm2d, nn.BatchNorm3d)) and m.affine:
                m.weight.copy_(uniform(gen, m.weight.shape, 0.6, 1.4))
                m.bias.copy_(uniform(gen, m.bias.shape, -0.3, 0.3))
            if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
                m.running_mean.copy_(uniform(gen, m.running_mean.shape, -0.2, 0.2))
                m.running_var.copy_(uniform(gen, m.running_var.shape, 0.5, 1.5))
            if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose3d)):
                m.bias.copy_(uniform(gen, m.bias.shape, -0.2, 0.2))


def set_codebook(model, z, gen):
    """Codes near the data: half are latent vectors + noise, half random
    around the latents' mean; redrawn until every latent's nearest code wins
    by a clear margin (so float32 picks the same codes)."""
    cb = model.codebook
    flat = z.movedim(1, -1).reshape(-1, z.shape[1]).double()
    mu, sd = flat.mean(0), flat.std(0)
    for _ in range(100):
        half = cb.n_codes // 2
        pick = flat[torch.randperm(flat.shape[0], generator=gen)[:half]]
        e = torch.cat([pick + 0.4 * sd * torch.randn(pick.shape, generator=gen, dtype=torch.float64),
                       mu + 1.5 * sd * torch.randn(cb.n_codes - half, flat.shape[1], generator=gen,
                                                   dtype=torch.float64)]).float().double()
        dist = torch.cdist(flat, e) ** 2
        two = dist.topk(2, dim=1, largest=False).values
        if ((two[:, 1] - two[:, 0]) > 1e-3 * (sd ** 2).sum()).all():
            break
    else:
        raise RuntimeError('no codebook with a clear nearest code')
    with torch.no_grad():
        cb.embeddings.copy_(e.float())
        n = uniform(gen, (cb.n_codes,), 0.5, 3.0)
        cb.N.copy_(n.float())
        cb.z_avg.copy_((e * n[:, None] + 0.05 * torch.randn(e.shape, generator=gen, dtype=torch.float64)).float())
    cb.need_init = False


def state_dict_f32(model):
    return {k: v.detach().float().contiguous().clone() for k, v in model.state_dict().items()
            if not k.endswith('num_batches_tracked')}


def gen_records(model, x, seg, grads):
    """Forward, quantise, decode, the AE loss and its gradients (float64)."""
    m = model.double().eval()
    x = x.double()
    seg = seg.double() if seg is not None else None
    t = dict(x=x)
    if seg is not None:
        t['seg'] = seg
    with torch.no_grad():
        z = m.encode(x)
        codes, zq = m.quantize(z)
        y = m.decode(zq, seg)
    t.update(z=z, codes=codes.to(torch.int32), zq=zq, y=y)
    m.zero_grad()
    out = m(x, seg)
    commit = out['vq_output']['commitment_loss']
    loss = out['recon_loss'] + commit
    loss.backward()
    assert torch.equal(out['vq_output']['encodings'], codes)
    assert torch.allclose(out['x_recon'], y, rtol=0, atol=1e-12)
    t.update(commit=commit, perplexity=out['vq_output']['perplexity'], loss_ae=loss)
    params = dict(m.named_parameters())
    for name in grads:
        t['grad:' + name] = params[name].grad
    cb = copy.deepcopy(m.codebook).train()  # one EMA step, deterministic part only
    cb.no_random_restart = True
    with torch.no_grad():
        cb(z)
    t.update({'ema:N': cb.N, 'ema:z_avg': cb.z_avg, 'ema:embeddings': cb.embeddings})
    return {k: v.detach().numpy() for k, v in t.items()}


def disc_records(prefix, D0, real, fake):
    """One discriminator in training mode: D step and G step (see top)."""
    t = {prefix + ':real': real, prefix + ':fake': fake}
    D = copy.deepcopy(D0).double().train()
    logits_real, feats = D(real.double())
    logits_fake, _ = D(fake.double())
    d_loss = hinge_d_loss(logits_real, logits_fake)
    d_loss.backward()
    params = dict(D.named_parameters())
    for k, f in enumerate(feats):
        t['%s:feat%d' % (prefix, k)] = f
    t[prefix + ':logits_fake'] = logits_fake
    t[prefix + ':d_loss'] = d_loss
    for name in D_GRADS:
        t['%s:grad_d:%s' % (prefix, name)] = params[name].grad
    for name, buf in D.named_buffers():
        if 'running' in name:
            t['%s:after:%s' % (prefix, name)] = buf
    D = copy.deepcopy(D0).double().train()
    fk = fake.double().requires_grad_(True)
    g_adv, g_feat = gan_g_loss(D, fk, real.double(), G_FEAT_WEIGHT)
    g_loss = g_adv + g_feat
    g_loss.backward()
    params = dict(D.named_parameters())
    t.update({prefix + ':g_adv': g_adv, prefix + ':g_feat': g_feat, prefix + ':g_loss': g_loss,
              prefix + ':grad:fake': fk.grad})
    for name in D_GRADS:
        t['%s:grad:%s' % (prefix, name)] = params[name].grad
    return {k: v.detach().numpy() for k, v in t.items()}


def show(path, t):
    print('%s:' % os.path.relpath(path))
    for k, v in t.items():
        print('  %-60s %-16s max|v| %.4g' % (k, 'x'.join(map(str, v.shape)) or '1',
                                             float(np.abs(v).max())))


def make(name):
    cfg = parse_config(config_text(dict(parse_config(''), **CONFIGS[name])))
    torch.manual_seed(SEEDS[name])
    gen = torch.Generator().manual_seed(SEEDS[name])
    model = VQGAN(cfg)
    randomize(model, gen)
    x = smooth_volume(gen, (1, cfg['image_channels'], 8, 16, 16))
    seg = None
    if cfg['decoder'] == 'spade':
        # blocky label map: labels on a 2x4x4 grid, upsampled, some voxels flipped
        lab = torch.randint(0, cfg['label_nc'], (1, 1, 2, 4, 4), generator=gen)
        lab = F.interpolate(lab.float(), size=(8, 16, 16), mode='nearest').long()
        flip = torch.rand(lab.shape, generator=gen) < 0.1
        lab[flip] = torch.randint(0, cfg['label_nc'], (int(flip.sum()),), generator=gen)
        seg = F.one_hot(lab[:, 0], cfg['label_nc']).movedim(-1, 1).float()
    with torch.no_grad():
        z = model.double().encode(x.double())
    model.float()
    set_codebook(model, z, gen)
    sd = state_dict_f32(model)
    with open(os.path.join(OUT, name + '.conf'), 'w') as f:
        f.write('# tests/torch/make_vqgan.py: small %s VQ-GAN, reference layout\n' % name)
        f.write(config_text(cfg))
    save_file(sd, os.path.join(OUT, name + '.safetensors'), metadata={'config': config_text(cfg)})

    grads = SPADE_GRADS if seg is not None else GRADS
    if name == 'aniso':
        grads = grads + ['encoder.conv_blocks.1.down.conv.weight', 'decoder.conv_blocks.1.up.convt.weight']
    t = gen_records(copy.deepcopy(model), x, seg, grads)
    path = os.path.join(OUT, name + '.lsdm')
    write_stream(path, t)
    show(path, t)

    real = smooth_volume(gen, (2, cfg['image_channels'], 8, 16, 16))
    fake = torch.tanh(1.5 * smooth_volume(gen, (2, cfg['image_channels'], 8, 16, 16)))
    t = disc_records('d3', model.video_discriminator, real, fake)
    t.update(disc_records('d2', model.image_discriminator, real[:, :, 3], fake[:, :, 5]))
    t['g_feat_weight'] = np.array([G_FEAT_WEIGHT])
    path = os.path.join(OUT, name + '_disc.lsdm')
    write_stream(path, t)
    show(path, t)
    return model, cfg, x, seg


# ---- optional check against the reference source itself -------------------
def load_reference(gitdir):
    """The reference vqgan.py / vqgan_spade.py modules, with Lightning,
    LPIPS and the project's utils stubbed."""
    class LightningModule(nn.Module):
        def save_hyperparameters(self, *a, **k):
            pass

        def log(self, *a, **k):
            pass

    def shift_dim(x, src_dim=-1, dest_dim=-1, make_contiguous=True):
        return x.movedim(src_dim, dest_dim).contiguous()

    stubs = {
        'pytorch_lightning': types.SimpleNamespace(LightningModule=LightningModule),
        'vq_gan_3d': types.ModuleType('vq_gan_3d'),
        'vq_gan_3d.utils': types.SimpleNamespace(shift_dim=shift_dim, adopt_weight=None, comp_getattr=None),
        'vq_gan_3d.model': types.ModuleType('vq_gan_3d.model'),
        'vq_gan_3d.model.lpips': types.SimpleNamespace(LPIPS=nn.Module),
        'evaluation': types.ModuleType('evaluation'),
        'evaluation.metrics_vq_gan': types.SimpleNamespace(metrics=None),
    }
    sys.modules.update(stubs)
    mods = {}
    for name in ('codebook', 'vqgan', 'vqgan_spade'):
        src = subprocess.run(['git', '-C', gitdir, 'show', 'HEAD:vq_gan_3d/model/%s.py' % name],
                             check=True, capture_output=True, text=True).stdout
        mod = types.ModuleType('vq_gan_3d.model.' + name)
        sys.modules[mod.__name__] = mod
        exec(compile(src, 'ref/%s.py' % name, 'exec'), mod.__dict__)
        mods[name] = mod
    return mods


def check_reference(mods, name, model, cfg, x, seg):
    import tempfile
    c = types.SimpleNamespace(**cfg)
    c.norm_type, c.no_random_restart, c.restart_thres = 'group', False, 1.0
    c.gan_feat_weight, c.disc_loss_type, c.l1_weight = 4.0, 'hinge', 4.0
    c.image_gan_weight = c.video_gan_weight = 1.0
    c.perceptual_weight, c.name, c.default_root_dir_postfix = 0.0, 'x', ''
    c.default_root_dir = tempfile.mkdtemp()
    ds = types.SimpleNamespace(image_channels=cfg['image_channels'], label_nc=cfg['label_nc'])
    conf = types.SimpleNamespace(model=c, dataset=ds)
    if cfg['decoder'] == 'spade':
        m = mods['vqgan_spade']
        m.SPADEGroupNorm3D.__init__.__defaults__ = (3, 1e-5, cfg['spade_groups'], cfg['spade_hidden'])
        ref = m.VQGAN_SPADE(conf)
    else:
        ref = mods['vqgan'].VQGAN(conf)
    ours = model.state_dict()
    theirs = ref.state_dict()
    assert list(theirs) == list(ours), set(theirs) ^ set(ours)
    assert all(theirs[k].shape == ours[k].shape for k in ours)
    ref.load_state_dict(ours)
    ref.codebook._need_init = False
    ref.double().eval()
    model = model.double().eval()
    x = x.double()
    with torch.no_grad():
        args = (seg.double(),) if seg is not None else ()
        z = ref.encode(x, quantize=False)
        codes = ref.encode(x)
        y = ref.decode(codes, *args)
        err = [(z - model.encode(x)).abs().max(), (y - model.decode_codes(codes, *args)).abs().max()]
        assert torch.equal(codes, model.quantize(z)[0])
        vq_r, vq_o = ref.codebook(z), model.codebook(z)
        err.append((vq_r['commitment_loss'] - vq_o['commitment_loss']).abs())
        err.append((vq_r['perplexity'] - vq_o['perplexity']).abs())
        ref.train()
        model.train()
        xx = torch.cat([x, x.flip(-1)])
        for a, b in ((ref.video_discriminator, model.video_discriminator),
                     (ref.image_discriminator, model.image_discriminator)):
            inp = xx if a is ref.video_discriminator else xx[:, :, 2]
            fa, fb = a(inp)[1], b(inp)[1]
            err += [(u - v).abs().max() for u, v in zip(fa, fb)]
            err += [(u - v).abs().max() for u, v in zip(a.buffers(), b.buffers()) if u.is_floating_point()]
    worst = max(float(e) for e in err)
    print('reference check %s: %d names match, max abs diff %.3g' % (name, len(ours), worst))
    assert worst < 1e-10


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--ref', metavar='GITDIR', help='also check against the reference source in this git repo')
    a = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    mods = load_reference(a.ref) if a.ref else None
    for name in CONFIGS:
        model, cfg, x, seg = make(name)
        if mods:
            check_reference(mods, name, model, cfg, x, seg)
    for f in sorted(os.listdir(OUT)):
        print('%-24s %7d bytes' % (f, os.path.getsize(os.path.join(OUT, f))))


if __name__ == '__main__':
    main()
