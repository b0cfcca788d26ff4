"""The reference 3D VQ-GAN (Med-LSDM vq_gan_3d/model/vqgan.py and
vqgan_spade.py) in plain PyTorch: no Lightning, Hydra, LPIPS or data code.

Same math and the same state_dict names as the reference, so its
checkpoints load here (model.load_state_dict(sd, strict=False) with
perceptual_model.* dropped) and our fixtures describe its layout:

    encoder.conv_first.conv.weight, encoder.conv_blocks.I.{down,res}...,
    encoder.final_block.0.*, pre_vq_conv.conv.*, post_vq_conv.conv.*,
    codebook.{embeddings,N,z_avg}, decoder.final_block.0.*,
    decoder.conv_blocks.I.{up.convt,res1,res2}..., decoder.conv_last.conv.*
    (SPADE: decoder.final_block_spade.*, decoder.conv_blocks_spade.I...,
    decoder.conv_last_spade.conv.*), image_discriminator.modelK.J.*,
    video_discriminator.modelK.J.*

Built from our model configuration text (read_config; keys in DEFAULTS).
Reference quirks kept on purpose: padding_type only reaches the encoder's
conv_first and down convs (and the 1x1x1 pre_vq_conv); every ResBlock,
transposed conv and conv_last pads with replicate. SPADE norms are
GroupNorm(spade_groups, affine=False, eps 1e-5); the reference hard-codes
8 groups and 128 hidden channels.

Used by tests/torch/make_vqgan.py (fixtures), test_convert.py and
bench/vqgan.py.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# our config keys, their defaults (the med-lsdm reference run) and types
DEFAULTS = dict(model='vqgan', n_hiddens=16, downsample=(4, 4, 4), image_channels=1,
                embedding_dim=8, n_codes=16384, num_groups=32, padding_type='replicate',
                decoder='plain', label_nc=5, spade_hidden=128, spade_groups=8,
                disc_channels=64, disc_layers=3)
SPADE_KEYS = ('label_nc', 'spade_hidden', 'spade_groups')


def parse_config(text):
    """Config text ('key = value' lines, '#' comments) -> dict over DEFAULTS."""
    cfg = dict(DEFAULTS)
    for no, line in enumerate(text.splitlines(), 1):
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        key, sep, val = (s.strip() for s in line.partition('='))
        if not sep or key not in DEFAULTS:
            raise ValueError('config line %d: %r' % (no, line))
        if key == 'downsample':
            cfg[key] = tuple(int(v) for v in val.split(','))
        elif isinstance(DEFAULTS[key], int):
            cfg[key] = int(val)
        else:
            cfg[key] = val
    if cfg['model'] != 'vqgan' or cfg['decoder'] not in ('plain', 'spade') \
            or cfg['padding_type'] not in ('replicate', 'zeros') or len(cfg['downsample']) != 3 \
            or any(d < 1 or d & (d - 1) for d in cfg['downsample']):
        raise ValueError('config: bad model, decoder, padding_type or downsample')
    return cfg


def read_config(path):
    with open(path) as f:
        return parse_config(f.read())


def config_text(cfg):
    """The config as text (SPADE keys only for the SPADE decoder)."""
    lines = []
    for k in DEFAULTS:
        if k in SPADE_KEYS and cfg['decoder'] != 'spade':
            continue
        v = cfg[k]
        lines.append('%s = %s' % (k, ','.join(map(str, v)) if isinstance(v, tuple) else v))
    return '\n'.join(lines) + '\n'


def silu(x):
    return x * torch.sigmoid(x)


def group_norm(ch, groups):  # the reference Normalize(norm_type='group')
    return nn.GroupNorm(groups, ch, eps=1e-6, affine=True)


def same_pad(kernel, stride):
    """F.pad argument: total k-s per axis, the odd one on the left, W first."""
    pad = []
    for k, s in reversed(list(zip(kernel, stride))):
        p = k - s
        pad += [p // 2 + p % 2, p // 2]
    return tuple(pad)


def triple(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * 3


class SamePadConv3d(nn.Module):
    def __init__(self, cin, cout, kernel, stride=1, padding_type='replicate'):
        super().__init__()
        kernel, stride = triple(kernel), triple(stride)
        self.pad = same_pad(kernel, stride)
        self.mode = 'constant' if padding_type == 'zeros' else padding_type
        self.conv = nn.Conv3d(cin, cout, kernel, stride=stride, padding=0)

    def forward(self, x):
        return self.conv(F.pad(x, self.pad, mode=self.mode))


class SamePadConvTranspose3d(nn.Module):
    def __init__(self, cin, cout, kernel, stride=1):
        super().__init__()
        kernel, stride = triple(kernel), triple(stride)
        self.pad = same_pad(kernel, stride)
        self.convt = nn.ConvTranspose3d(cin, cout, kernel, stride=stride,
                                        padding=tuple(k - 1 for k in kernel))

    def forward(self, x):  # replicate always, as the reference
        return self.convt(F.pad(x, self.pad, mode='replicate'))


class ResBlock(nn.Module):
    """x + conv2(silu(norm2(conv1(silu(norm1(x)))))), channels kept."""

    def __init__(self, ch, groups):
        super().__init__()
        self.norm1 = group_norm(ch, groups)
        self.conv1 = SamePadConv3d(ch, ch, 3)
        self.norm2 = group_norm(ch, groups)
        self.conv2 = SamePadConv3d(ch, ch, 3)

    def forward(self, x):
        h = self.conv1(silu(self.norm1(x)))
        return x + self.conv2(silu(self.norm2(h)))


def n_stages(factors):
    """(number of stages, per-stage strides) for down/upsample factors."""
    times = [int(math.log2(d)) for d in factors]
    strides = []
    for _ in range(max(times)):
        strides.append(tuple(2 if t > 0 else 1 for t in times))
        times = [t - 1 for t in times]
    return strides


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        nh, pt = cfg['n_hiddens'], cfg['padding_type']
        self.conv_blocks = nn.ModuleList()  # registered first, as the reference
        self.conv_first = SamePadConv3d(cfg['image_channels'], nh, 3, padding_type=pt)
        for i, stride in enumerate(n_stages(cfg['downsample'])):
            block = nn.Module()
            block.down = SamePadConv3d(nh * 2**i, nh * 2**(i + 1), 4, stride, padding_type=pt)
            block.res = ResBlock(nh * 2**(i + 1), cfg['num_groups'])
            self.conv_blocks.append(block)
        self.out_channels = nh * 2**len(self.conv_blocks)
        self.final_block = nn.Sequential(group_norm(self.out_channels, cfg['num_groups']), nn.SiLU())

    def forward(self, x):
        h = self.conv_first(x)
        for block in self.conv_blocks:
            h = block.res(block.down(h))
        return self.final_block(h)


def decoder_channels(cfg):
    """(in, out, stride) per decoder stage: the reference's channel rule."""
    strides = n_stages(cfg['downsample'])
    nh, m = cfg['n_hiddens'], len(strides)
    return [(nh * 2**m if i == 0 else nh * 2**(m - i + 1), nh * 2**(m - i), s)
            for i, s in enumerate(strides)]


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        stages = decoder_channels(cfg)
        g = cfg['num_groups']
        self.final_block = nn.Sequential(group_norm(stages[0][0], g), nn.SiLU())
        self.conv_blocks = nn.ModuleList()
        for cin, cout, stride in stages:
            block = nn.Module()
            block.up = SamePadConvTranspose3d(cin, cout, 4, stride)
            block.res1 = ResBlock(cout, g)
            block.res2 = ResBlock(cout, g)
            self.conv_blocks.append(block)
        self.conv_last = SamePadConv3d(stages[-1][1], cfg['image_channels'], 3)

    def forward(self, x, seg=None):
        h = self.final_block(x)
        for block in self.conv_blocks:
            h = block.res2(block.res1(block.up(h)))
        return torch.tanh(self.conv_last(h))


class SPADEGroupNorm3D(nn.Module):
    """GroupNorm (no affine, eps 1e-5) scaled and shifted by convs of the
    mask resized (nearest) to x: x_n * (1 + gamma) + beta."""

    def __init__(self, ch, label_nc, groups, hidden):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch, eps=1e-5, affine=False)
        k, p = (1, 3, 3), (0, 1, 1)
        self.mlp_shared = nn.Sequential(nn.Conv3d(label_nc, hidden, k, padding=p), nn.ReLU())
        self.mlp_gamma = nn.Conv3d(hidden, ch, k, padding=p)
        self.mlp_beta = nn.Conv3d(hidden, ch, k, padding=p)

    def forward(self, x, seg):
        seg = F.interpolate(seg, size=x.shape[2:], mode='nearest')
        actv = self.mlp_shared(seg)
        return self.norm(x) * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class SpadeResBlock(nn.Module):
    def __init__(self, ch, spade):
        super().__init__()
        self.spade_norm1 = SPADEGroupNorm3D(ch, *spade)
        self.conv1 = SamePadConv3d(ch, ch, 3)
        self.spade_norm2 = SPADEGroupNorm3D(ch, *spade)
        self.conv2 = SamePadConv3d(ch, ch, 3)

    def forward(self, x, seg):
        h = self.conv1(silu(self.spade_norm1(x, seg)))
        return x + self.conv2(silu(self.spade_norm2(h, seg)))


class SpadeDecoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        stages = decoder_channels(cfg)
        spade = (cfg['label_nc'], cfg['spade_groups'], cfg['spade_hidden'])
        self.final_block_spade = SPADEGroupNorm3D(stages[0][0], *spade)
        self.conv_blocks_spade = nn.ModuleList()
        for cin, cout, stride in stages:
            block = nn.Module()
            block.up = SamePadConvTranspose3d(cin, cout, 4, stride)
            block.res1 = SpadeResBlock(cout, spade)
            block.res2 = SpadeResBlock(cout, spade)
            self.conv_blocks_spade.append(block)
        self.conv_last_spade = SamePadConv3d(stages[-1][1], cfg['image_channels'], 3)

    def forward(self, x, seg):
        h = silu(self.final_block_spade(x, seg))
        for block in self.conv_blocks_spade:
            h = block.res2(block.res1(block.up(h), seg), seg)
        return torch.tanh(self.conv_last_spade(h))


class Codebook(nn.Module):
    """Nearest-code quantiser with the reference's EMA update (decay 0.99)
    and random restart of codes whose usage N falls below restart_thres.
    need_init: the reference re-initialises the codes from the first
    training batch (its flag is not saved in checkpoints)."""

    def __init__(self, n_codes, dim, no_random_restart=False, restart_thres=1.0, need_init=True):
        super().__init__()
        self.register_buffer('embeddings', torch.randn(n_codes, dim))
        self.register_buffer('N', torch.zeros(n_codes))
        self.register_buffer('z_avg', self.embeddings.clone())
        self.n_codes, self.dim = n_codes, dim
        self.need_init = need_init
        self.no_random_restart, self.restart_thres = no_random_restart, restart_thres

    def _tile(self, x):  # repeat + noise up to n_codes rows
        d, ew = x.shape
        if d < self.n_codes:
            x = x.repeat((self.n_codes + d - 1) // d, 1)
            x = x + torch.randn_like(x) * (0.01 / math.sqrt(ew))
        return x

    def nearest(self, flat):
        """(M, dim) -> code index (M,): the reference's distance expansion."""
        e = self.embeddings
        dist = (flat ** 2).sum(1, keepdim=True) - 2 * flat @ e.t() + (e.t() ** 2).sum(0, keepdim=True)
        return dist.argmin(1)

    @torch.no_grad()
    def _ema_update(self, flat, onehot):
        self.N.mul_(0.99).add_(onehot.sum(0), alpha=0.01)
        self.z_avg.mul_(0.99).add_((flat.t() @ onehot).t(), alpha=0.01)
        n = self.N.sum()
        weights = (self.N + 1e-7) / (n + self.n_codes * 1e-7) * n
        self.embeddings.copy_(self.z_avg / weights.unsqueeze(1))
        y = self._tile(flat)
        k_rand = y[torch.randperm(y.shape[0])][:self.n_codes]
        if not self.no_random_restart:
            usage = (self.N.view(-1, 1) >= self.restart_thres).to(flat.dtype)
            self.embeddings.mul_(usage).add_(k_rand * (1 - usage))

    def forward(self, z):
        """z (B,C,D,H,W) -> dict(embeddings (straight-through), encodings
        (B,D,H,W), commitment_loss, perplexity); EMA update in training."""
        flat = z.movedim(1, -1).reshape(-1, self.dim)
        if self.need_init and self.training:
            self.need_init = False
            y = self._tile(flat.detach())
            k = y[torch.randperm(y.shape[0])][:self.n_codes]
            self.embeddings.copy_(k)
            self.z_avg.copy_(k)
            self.N.fill_(1)
        idx = self.nearest(flat)
        onehot = F.one_hot(idx, self.n_codes).to(flat.dtype)
        idx = idx.view(z.shape[0], *z.shape[2:])
        emb = F.embedding(idx, self.embeddings).movedim(-1, 1)
        commitment = 0.25 * F.mse_loss(z, emb.detach())
        if self.training:
            self._ema_update(flat.detach(), onehot)
        avg = onehot.float().mean(0)  # float32 even in double, as the reference
        avg = avg / avg.sum()
        perplexity = torch.exp(-torch.sum(avg * torch.log(avg + 1e-10)))
        return dict(embeddings=(emb - z).detach() + z, encodings=idx,
                    commitment_loss=commitment, perplexity=perplexity)


class NLayerDiscriminator(nn.Module):
    """PatchGAN, 2D (BatchNorm2d) or 3D (BatchNorm3d): modelK holds layer K;
    forward returns (logits, [every layer's output, logits last])."""

    def __init__(self, input_nc, ndf, n_layers, dims):
        super().__init__()
        conv, norm = (nn.Conv2d, nn.BatchNorm2d) if dims == 2 else (nn.Conv3d, nn.BatchNorm3d)
        self.n_layers = n_layers
        seq = [[conv(input_nc, ndf, 4, stride=2, padding=2), nn.LeakyReLU(0.2)]]
        nf = ndf
        for n in range(1, n_layers + 1):  # the last of these has stride 1
            nf_prev, nf = nf, min(nf * 2, 512)
            seq.append([conv(nf_prev, nf, 4, stride=2 if n < n_layers else 1, padding=2),
                        norm(nf), nn.LeakyReLU(0.2)])
        seq.append([conv(nf, 1, 4, stride=1, padding=2)])
        for n, layers in enumerate(seq):
            setattr(self, 'model%d' % n, nn.Sequential(*layers))

    def forward(self, x):
        feats = []
        for n in range(self.n_layers + 2):
            x = getattr(self, 'model%d' % n)(x)
            feats.append(x)
        return x, feats


def hinge_d_loss(logits_real, logits_fake):
    return 0.5 * (F.relu(1. - logits_real).mean() + F.relu(1. + logits_fake).mean())


def gan_g_loss(D, fake, real, feat_weight):
    """The generator's terms for one discriminator, as the reference
    training_step: -mean(D(fake)) + feat_weight * sum over all but the last
    feature of L1(fake feature, detached real feature). feat_weight is
    gan_feat_weight * 4/(3+1)."""
    logits_fake, feats_fake = D(fake)
    _, feats_real = D(real)
    feat = sum(F.l1_loss(f, r.detach()) for f, r in zip(feats_fake[:-1], feats_real[:-1]))
    return -logits_fake.mean(), feat_weight * feat


class VQGAN(nn.Module):
    """cfg: dict from parse_config. Training weights (train dict) default to
    the reference run: l1 4, gan_feat 4, image/video gan 1, hinge.
    discriminators=False leaves them out (no GAN losses then)."""

    def __init__(self, cfg, no_random_restart=False, restart_thres=1.0, discriminators=True):
        super().__init__()
        self.cfg = cfg
        self.spade = cfg['decoder'] == 'spade'
        self.encoder = Encoder(cfg)
        self.decoder = SpadeDecoder(cfg) if self.spade else Decoder(cfg)
        ch = self.encoder.out_channels
        self.pre_vq_conv = SamePadConv3d(ch, cfg['embedding_dim'], 1, padding_type=cfg['padding_type'])
        self.post_vq_conv = SamePadConv3d(cfg['embedding_dim'], ch, 1)
        self.codebook = Codebook(cfg['n_codes'], cfg['embedding_dim'], no_random_restart, restart_thres)
        if not discriminators:  # inference only (bench/vqgan.py)
            return
        ic, dc, dl = cfg['image_channels'], cfg['disc_channels'], cfg['disc_layers']
        self.image_discriminator = NLayerDiscriminator(ic, dc, dl, 2)
        self.video_discriminator = NLayerDiscriminator(ic, dc, dl, 3)

    def encode(self, x):
        """x (B,C,D,H,W) -> prequant z (B,embedding_dim,D/d,H/h,W/w)."""
        return self.pre_vq_conv(self.encoder(x))

    @torch.no_grad()
    def quantize(self, z):
        """z -> (codes (B,d,h,w) int64, zq (B,E,d,h,w)): nearest code, no update."""
        idx = self.codebook.nearest(z.movedim(1, -1).reshape(-1, z.shape[1]))
        codes = idx.view(z.shape[0], *z.shape[2:])
        return codes, F.embedding(codes, self.codebook.embeddings).movedim(-1, 1)

    def decode(self, zq, seg=None):
        """zq (quantised embeddings) [, seg one-hot mask] -> image in [-1,1]."""
        return self.decoder(self.post_vq_conv(zq), seg)

    def decode_codes(self, codes, seg=None):
        return self.decode(F.embedding(codes, self.codebook.embeddings).movedim(-1, 1), seg)

    def forward(self, x, seg=None, optimizer_idx=None, frame_idx=None, train=None):
        """Reconstruction with the codebook's straight-through estimator.
        optimizer_idx None: dict(x_recon, z, vq_output, recon_loss).
        0: the generator losses (dict, 'loss' = their sum); 1: the
        discriminator loss. frame_idx (B,) picks the 2D frames (random if None);
        the GAN terms are on from the start (disc_factor 1)."""
        t = dict(l1_weight=4.0, gan_feat_weight=4.0, image_gan_weight=1.0, video_gan_weight=1.0)
        t.update(train or {})
        z = self.encode(x)
        vq = self.codebook(z)
        x_recon = self.decode(vq['embeddings'], seg)
        recon_loss = F.l1_loss(x_recon, x) * t['l1_weight']
        if optimizer_idx is None:
            return dict(x_recon=x_recon, z=z, vq_output=vq, recon_loss=recon_loss)
        B, C, T, H, W = x.shape
        if frame_idx is None:
            frame_idx = torch.randint(0, T, [B], device=x.device)
        sel = frame_idx.reshape(-1, 1, 1, 1, 1).repeat(1, C, 1, H, W)
        frames, frames_recon = torch.gather(x, 2, sel).squeeze(2), torch.gather(x_recon, 2, sel).squeeze(2)
        wi, wv = t['image_gan_weight'], t['video_gan_weight']
        if optimizer_idx == 0:
            fw = t['gan_feat_weight'] * 4.0 / (3 + 1)
            gi, fi = gan_g_loss(self.image_discriminator, frames_recon, frames, fw)
            gv, fv = gan_g_loss(self.video_discriminator, x_recon, x, fw)
            out = dict(recon_loss=recon_loss, commitment_loss=vq['commitment_loss'],
                       aeloss=wi * gi + wv * gv, gan_feat_loss=(fi if wi > 0 else 0) + (fv if wv > 0 else 0))
            out['loss'] = out['recon_loss'] + out['commitment_loss'] + out['aeloss'] + out['gan_feat_loss']
            return out
        li_real, _ = self.image_discriminator(frames.detach())
        lv_real, _ = self.video_discriminator(x.detach())
        li_fake, _ = self.image_discriminator(frames_recon.detach())
        lv_fake, _ = self.video_discriminator(x_recon.detach())
        return wi * hinge_d_loss(li_real, li_fake) + wv * hinge_d_loss(lv_real, lv_fake)
