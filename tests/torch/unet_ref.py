"""The reference semantic diffusion UNet (Med-LSDM ddpm/semantic_diffusion.py,
Unet3D_SPADE, after lucidrains' video-diffusion-pytorch) in plain PyTorch:
no einops, einops_exts or rotary_embedding_torch, no trainer code.

Same math and the same state_dict names as the reference, so its
checkpoints (the diffusion trainer's 'model' / 'ema' dicts under
`denoise_fn.`) load here and our fixtures describe its layout:

    time_rel_pos_bias.relative_attention_bias.weight, init_conv.*,
    init_temporal_attn.fn.{norm.gamma, fn.fn.to_qkv.weight, fn.fn.to_out.weight,
    fn.fn.rotary_emb.freqs}, time_mlp.{1,3}.*, downs.I.0 (SDEResBlock: mlp.1,
    conv1, conv2, norm1, norm2, res_conv), downs.I.1.fn.{norm.gamma,
    fn.to_qkv.weight, fn.to_out.*} (linear attention), downs.I.2 (temporal
    attention), downs.I.3.* (downsampling conv), mid_block1 / mid_block2
    (SDDResBlock without time: conv1, conv2, spade_norm{1,2}.{mlp_shared.0,
    mlp_gamma, mlp_beta}), mid_spatial_attn, mid_temporal_attn, ups.I.0
    (SDDResBlock with mlp.1 and res_conv), ups.I.{1,2,3}, final_conv.0
    (ResnetBlock: block{1,2}.{proj,norm}, res_conv), final_conv.1,
    segconv3d.conv{1,2,3}

The rotary embedding is one module shared by every temporal attention, so
its `freqs` buffer appears once per attention in the state_dict, as in the
reference (rotary-embedding-torch 0.1.5, the version the reference pins).

Built from our model configuration text (parse_config; keys in DEFAULTS).
Reference quirks kept on purpose:
- the middle SDDResBlocks are built without groups (the reference's default
  8, whatever resnet_groups is) and without a time MLP;
- SpatialLinearAttention and the middle spatial Attention use the default
  dim_head 32 (`spatial_dim_head`), not attn_dim_head; the rotary embedding
  rotates min(32, attn_dim_head) features;
- SegConv3D's k(1,3,3) convs pad 1 on every axis, depth included: a mask of
  depth D gives features of depth ((D+2)//2+2)//2+2 (11 for 32), resized
  (nearest) to the latent depth by each SPADE norm;
- SinusoidalPosEmb forms its frequencies in float32 (torch's default dtype)
  even in a float64 model;
- the attention's `sim - amax` and focus_present_mask (never used: the
  trainer's prob_focus_present is 0) are left out of this copy, the former
  because softmax is shift-invariant.

Checked against the reference's own classes (make_unet.py --ref: its
ddpm/semantic_diffusion.py with einops 0.4.1, einops-exts 0.0.3 and
rotary-embedding-torch 0.1.5 installed in /opt/torchenv): identical
state_dict names and shapes for the small fixture config and for med-lsdm
(270 tensors, 37071632 parameters), and in float64 the same eps from the
same weights, latent, timesteps and mask (max abs difference 0).

Used by tests/torch/make_unet.py (fixtures) and test_convert.py.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# our config keys, their defaults (the med-lsdm reference run: diffusion.sh,
# Unet3D_SPADE(dim=64 (diffusion_img_size), dim_mults=[1,2,4,8], channels=8,
# segconv=1, spade_input_nc=8)) and types
DEFAULTS = dict(model='unet', dim=64, dim_mults=(1, 2, 4, 8), channels=8, label_nc=5,
                attn_heads=8, attn_dim_head=32, spatial_dim_head=32, init_kernel=7,
                groups=8, segconv=1, seg_hidden=(64, 128), spade_input_nc=8, spade_hidden=128)
TUPLES = ('dim_mults', 'seg_hidden')
MID_GROUPS = 8        # SDDResBlock's default groups (the middle blocks)
NUM_BUCKETS, MAX_DISTANCE = 32, 32


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
        if key in TUPLES:
            cfg[key] = tuple(int(v) for v in val.split(','))
        elif isinstance(DEFAULTS[key], int):
            cfg[key] = int(val)
        else:
            cfg[key] = val
    if cfg['model'] != 'unet' or len(cfg['seg_hidden']) != 2:
        raise ValueError('config: bad model or seg_hidden')
    return cfg


def config_text(cfg):
    lines = []
    for k in DEFAULTS:
        v = cfg[k]
        lines.append('%s = %s' % (k, ','.join(map(str, v)) if isinstance(v, tuple) else v))
    return '\n'.join(lines) + '\n'


# ---- small modules ----------------------------------------------------------

class RelativePositionBias(nn.Module):
    def __init__(self, heads, num_buckets=NUM_BUCKETS, max_distance=MAX_DISTANCE):
        super().__init__()
        self.num_buckets, self.max_distance = num_buckets, max_distance
        self.relative_attention_bias = nn.Embedding(num_buckets, heads)

    @staticmethod
    def bucket(rel, num_buckets, max_distance):
        n = -rel
        num_buckets //= 2
        ret = (n < 0).long() * num_buckets
        n = n.abs()
        max_exact = num_buckets // 2
        large = max_exact + (torch.log(n.float() / max_exact) / math.log(max_distance / max_exact)
                             * (num_buckets - max_exact)).long()
        large = torch.minimum(large, torch.full_like(large, num_buckets - 1))
        return ret + torch.where(n < max_exact, n, large)

    def forward(self, n):
        pos = torch.arange(n)
        b = self.bucket(pos[None, :] - pos[:, None], self.num_buckets, self.max_distance)
        return self.relative_attention_bias(b).permute(2, 0, 1)  # (heads, i, j)


class RotaryEmbedding(nn.Module):
    """rotary_embedding_torch 0.1.5 ('lang' frequencies, interleaved pairs)."""

    def __init__(self, dim, theta=10000):
        super().__init__()
        self.register_buffer('freqs', 1. / (theta ** (torch.arange(0, dim, 2)[:dim // 2].float() / dim)))

    def rotate_queries_or_keys(self, t):
        n = t.shape[-2]
        ang = torch.arange(n, dtype=self.freqs.dtype)[:, None] * self.freqs[None, :]
        ang = ang.repeat_interleave(2, dim=-1).to(t)
        d = ang.shape[-1]
        x, rest = t[..., :d], t[..., d:]
        pairs = x.reshape(*x.shape[:-1], d // 2, 2)
        rot = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).reshape(x.shape)
        return torch.cat((x * ang.cos() + rot * ang.sin(), rest), dim=-1)


class Residual(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x, **kw):
        return self.fn(x, **kw) + x


class LayerNorm(nn.Module):
    """Over the channel axis, biased variance, eps 1e-5, scale only."""

    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(1, dim, 1, 1, 1))

    def forward(self, x):
        var = torch.var(x, dim=1, unbiased=False, keepdim=True)
        mean = torch.mean(x, dim=1, keepdim=True)
        return (x - mean) / (var + self.eps).sqrt() * self.gamma


class PreNorm(nn.Module):
    def __init__(self, dim, fn):
        super().__init__()
        self.fn = fn
        self.norm = LayerNorm(dim)

    def forward(self, x, **kw):
        return self.fn(self.norm(x), **kw)


class SinusoidalPosEmb(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        half = self.dim // 2
        emb = math.log(10000) / (half - 1)
        emb = torch.exp(torch.arange(half) * -emb)  # float32, as the reference
        emb = x[:, None] * emb[None, :]
        return torch.cat((emb.sin(), emb.cos()), dim=-1)


class Attention(nn.Module):
    def __init__(self, dim, heads, dim_head, rotary_emb=None):
        super().__init__()
        self.scale = dim_head ** -0.5
        self.heads = heads
        hidden = dim_head * heads
        self.rotary_emb = rotary_emb
        self.to_qkv = nn.Linear(dim, hidden * 3, bias=False)
        self.to_out = nn.Linear(hidden, dim, bias=False)

    def forward(self, x, pos_bias=None):  # x (..., n, dim)
        q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        q, k, v = (t.reshape(*t.shape[:-1], self.heads, -1).transpose(-2, -3) for t in (q, k, v))
        q = q * self.scale
        if self.rotary_emb is not None:
            q = self.rotary_emb.rotate_queries_or_keys(q)
            k = self.rotary_emb.rotate_queries_or_keys(k)
        sim = q @ k.transpose(-1, -2)
        if pos_bias is not None:
            sim = sim + pos_bias
        out = sim.softmax(dim=-1) @ v  # (..., h, n, d)
        out = out.transpose(-2, -3).reshape(*x.shape[:-1], -1)
        return self.to_out(out)


class TemporalToAndFrom(nn.Module):
    """EinopsToAndFrom('b c f h w', 'b (h w) f c', fn)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x, **kw):
        b, c, f, h, w = x.shape
        y = self.fn(x.permute(0, 3, 4, 2, 1).reshape(b, h * w, f, c), **kw)
        return y.reshape(b, h, w, f, c).permute(0, 4, 3, 1, 2)


class SpatialToAndFrom(nn.Module):
    """EinopsToAndFrom('b c f h w', 'b f (h w) c', fn)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x, **kw):
        b, c, f, h, w = x.shape
        y = self.fn(x.permute(0, 2, 3, 4, 1).reshape(b, f, h * w, c), **kw)
        return y.reshape(b, f, h, w, c).permute(0, 4, 1, 2, 3)


class SpatialLinearAttention(nn.Module):
    def __init__(self, dim, heads, dim_head):
        super().__init__()
        self.scale = dim_head ** -0.5
        self.heads = heads
        hidden = dim_head * heads
        self.to_qkv = nn.Conv2d(dim, hidden * 3, 1, bias=False)
        self.to_out = nn.Conv2d(hidden, dim, 1)

    def forward(self, x):
        b, c, f, h, w = x.shape
        x = x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        q, k, v = (t.reshape(b * f, self.heads, -1, h * w) for t in self.to_qkv(x).chunk(3, dim=1))
        q = q.softmax(dim=-2) * self.scale
        k = k.softmax(dim=-1)
        context = torch.einsum('bhdn,bhen->bhde', k, v)
        out = torch.einsum('bhde,bhdn->bhen', context, q).reshape(b * f, -1, h, w)
        return self.to_out(out).reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)


def conv133(cin, cout):
    return nn.Conv3d(cin, cout, (1, 3, 3), padding=(0, 1, 1))


class SPADEGroupNorm3D(nn.Module):
    def __init__(self, dim_out, spade_input_nc, groups, dim_hidden):
        super().__init__()
        self.norm = nn.GroupNorm(groups, dim_out, affine=False)
        self.mlp_shared = nn.Sequential(conv133(spade_input_nc, dim_hidden), nn.ReLU())
        self.mlp_gamma = conv133(dim_hidden, dim_out)
        self.mlp_beta = conv133(dim_hidden, dim_out)

    def modulation(self, segmap, size):
        """(gamma, beta): a function of the mask only (cacheable per sample)."""
        actv = self.mlp_shared(F.interpolate(segmap, size=size, mode='nearest'))
        return self.mlp_gamma(actv), self.mlp_beta(actv)

    def forward(self, x, segmap):
        gamma, beta = self.modulation(segmap, x.shape[2:])
        return self.norm(x) * (1 + gamma) + beta


def time_mlp_block(time_emb_dim, dim_out):
    return nn.Sequential(nn.SiLU(), nn.Linear(time_emb_dim, dim_out * 2)) if time_emb_dim else None


def scale_shift(h, mlp, t):
    if mlp is None:
        return h
    scale, shift = mlp(t)[:, :, None, None, None].chunk(2, dim=1)
    return h * (scale + 1) + shift


class SDDResBlock(nn.Module):
    def __init__(self, dim, dim_out, time_emb_dim=None, spade_input_nc=37, groups=8,
                 spade_hidden=128):
        super().__init__()
        self.mlp = time_mlp_block(time_emb_dim, dim_out)
        self.conv1 = conv133(dim, dim_out)
        self.conv2 = conv133(dim_out, dim_out)
        self.spade_norm1 = SPADEGroupNorm3D(dim, spade_input_nc, groups, spade_hidden)
        self.spade_norm2 = SPADEGroupNorm3D(dim_out, spade_input_nc, groups, spade_hidden)
        self.act = nn.SiLU()
        self.res_conv = nn.Conv3d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

    def forward(self, x, seg, t=None):
        h = self.conv1(self.act(self.spade_norm1(x, seg)))
        h = scale_shift(self.spade_norm2(h, seg), self.mlp, t)
        return self.conv2(self.act(h)) + self.res_conv(x)


class SDEResBlock(nn.Module):
    def __init__(self, dim, dim_out, time_emb_dim=None, groups=8):
        super().__init__()
        self.mlp = time_mlp_block(time_emb_dim, dim_out)
        self.conv1 = conv133(dim, dim_out)
        self.conv2 = conv133(dim_out, dim_out)
        self.norm1 = nn.GroupNorm(groups, dim)
        self.norm2 = nn.GroupNorm(groups, dim_out)
        self.act = nn.SiLU()
        self.res_conv = nn.Conv3d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

    def forward(self, x, t=None):
        h = self.conv1(self.act(self.norm1(x)))
        h = scale_shift(self.norm2(h), self.mlp, t)
        return self.conv2(self.act(h)) + self.res_conv(x)


class Block(nn.Module):
    def __init__(self, dim, dim_out, groups=8):
        super().__init__()
        self.proj = conv133(dim, dim_out)
        self.norm = nn.GroupNorm(groups, dim_out)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.norm(self.proj(x)))


class ResnetBlock(nn.Module):
    """The final block: built without a time MLP by the reference."""

    def __init__(self, dim, dim_out, groups=8):
        super().__init__()
        self.mlp = None
        self.block1 = Block(dim, dim_out, groups)
        self.block2 = Block(dim_out, dim_out, groups)
        self.res_conv = nn.Conv3d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

    def forward(self, x):
        return self.block2(self.block1(x)) + self.res_conv(x)


class SegConv3D(nn.Module):
    def __init__(self, in_channels, output_channels, hidden=(64, 128)):
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, hidden[0], (1, 3, 3), padding=1)  # depth padded too
        self.pool1 = nn.MaxPool3d(2, 2)
        self.conv2 = nn.Conv3d(hidden[0], hidden[1], (1, 3, 3), padding=1)
        self.pool2 = nn.MaxPool3d(2, 2)
        self.conv3 = nn.Conv3d(hidden[1], output_channels, (1, 3, 3), padding=1)

    def forward(self, x):
        x = self.pool1(F.relu(self.conv1(x)))
        x = self.pool2(F.relu(self.conv2(x)))
        return F.relu(self.conv3(x))


# ---- the UNet -----------------------------------------------------------------

class Unet3D_SPADE(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        dim, heads, dh, groups = cfg['dim'], cfg['attn_heads'], cfg['attn_dim_head'], cfg['groups']
        sdh = cfg['spatial_dim_head']
        self.channels, self.label_nc = cfg['channels'], cfg['label_nc']
        self.segconv = bool(cfg['segconv'])
        self.spade_input_nc = cfg['spade_input_nc'] if self.segconv else cfg['label_nc']
        spade = dict(spade_input_nc=self.spade_input_nc, spade_hidden=cfg['spade_hidden'])
        rotary_emb = RotaryEmbedding(min(32, dh))

        def temporal_attn(d):
            return TemporalToAndFrom(Attention(d, heads, dh, rotary_emb))

        self.time_rel_pos_bias = RelativePositionBias(heads)
        k = cfg['init_kernel']
        self.init_conv = nn.Conv3d(self.channels, dim, (1, k, k), padding=(0, k // 2, k // 2))
        self.init_temporal_attn = Residual(PreNorm(dim, temporal_attn(dim)))
        dims = [dim] + [dim * m for m in cfg['dim_mults']]
        in_out = list(zip(dims[:-1], dims[1:]))
        time_dim = dim * 4
        self.time_mlp = nn.Sequential(SinusoidalPosEmb(dim), nn.Linear(dim, time_dim), nn.GELU(),
                                      nn.Linear(time_dim, time_dim))
        self.downs, self.ups = nn.ModuleList(), nn.ModuleList()
        last = len(in_out) - 1
        for i, (din, dout) in enumerate(in_out):
            self.downs.append(nn.ModuleList([
                SDEResBlock(din, dout, time_emb_dim=time_dim, groups=groups),
                Residual(PreNorm(dout, SpatialLinearAttention(dout, heads, sdh))),
                Residual(PreNorm(dout, temporal_attn(dout))),
                nn.Conv3d(dout, dout, (1, 4, 4), (1, 2, 2), (0, 1, 1)) if i < last else nn.Identity()]))
        mid = dims[-1]
        self.mid_block1 = SDDResBlock(mid, mid, groups=MID_GROUPS, **spade)
        self.mid_spatial_attn = Residual(PreNorm(mid, SpatialToAndFrom(Attention(mid, heads, sdh))))
        self.mid_temporal_attn = Residual(PreNorm(mid, temporal_attn(mid)))
        self.mid_block2 = SDDResBlock(mid, mid, groups=MID_GROUPS, **spade)
        for i, (din, dout) in enumerate(reversed(in_out)):
            self.ups.append(nn.ModuleList([
                SDDResBlock(dout * 2, din, time_emb_dim=time_dim, groups=groups, **spade),
                Residual(PreNorm(din, SpatialLinearAttention(din, heads, sdh))),
                Residual(PreNorm(din, temporal_attn(din))),
                nn.ConvTranspose3d(din, din, (1, 4, 4), (1, 2, 2), (0, 1, 1)) if i < last else nn.Identity()]))
        self.final_conv = nn.Sequential(ResnetBlock(dim * 2, dim, groups), nn.Conv3d(dim, self.channels, 1))
        self.segconv3d = SegConv3D(self.label_nc, self.spade_input_nc, cfg['seg_hidden']) if self.segconv else None

    def encode_mask(self, cond):
        """The mask features every SPADE norm reads (what lsdm caches)."""
        return self.segconv3d(cond) if self.segconv else cond

    def forward(self, x, time, cond=None, seg=None):
        """eps for latent x (N,C,D,H,W), time (N,) and one-hot mask cond
        (N,label_nc,...); seg: encode_mask(cond) computed before."""
        bias = self.time_rel_pos_bias(x.shape[2])
        x = self.init_conv(x)
        r = x.clone()
        x = self.init_temporal_attn(x, pos_bias=bias)
        t = self.time_mlp(time)
        seg = self.encode_mask(cond) if seg is None else seg
        h = []
        for block, spatial_attn, temporal_attn, downsample in self.downs:
            x = block(x, t)
            x = spatial_attn(x)
            x = temporal_attn(x, pos_bias=bias)
            h.append(x)
            x = downsample(x)
        x = self.mid_block1(x, seg)
        x = self.mid_spatial_attn(x)
        x = self.mid_temporal_attn(x, pos_bias=bias)
        x = self.mid_block2(x, seg)
        for block, spatial_attn, temporal_attn, upsample in self.ups:
            x = block(torch.cat((x, h.pop()), dim=1), seg, t)
            x = spatial_attn(x)
            x = temporal_attn(x, pos_bias=bias)
            x = upsample(x)
        return self.final_conv(torch.cat((x, r), dim=1))
