"""PyTorch reference values for LPIPS (libshared/lpips.h).

Builds the reference LPIPS module tree (vq_gan_3d/model/lpips.py: ScalingLayer,
torchvision's VGG16 `features` cut into slice1..slice5, NetLinLayer lin0..lin4)
in plain PyTorch (no torchvision needed), with random weights and every
channel width divided by --div (16: 4,8,16,32,32), so the fixture stays small.
The weights go through tools/contrib/convert_lpips.py exactly as the real
ones would: they are saved as a torchvision-style vgg16 state_dict
(features.I.*, plus a classifier to be ignored) and an lpips-style vgg.pth
(linK.model.1.weight), converted, and the result is checked to be the
module's state_dict. Writes tests/fixtures/lpips/:

  weights.safetensors  the converted weights (f32)
  cases.lsdm           x, y (2,1,32,32) in [-1,1]: value (2) = LPIPS(x, y) per
                       sample, dx, dy = d mean(value) / d x, y; and a 3-channel
                       case with odd sizes: x3, y3 (1,3,20,28), value3, dx3, dy3

Computed in float64 from the stored float32 weights and inputs.

    /opt/torchenv/bin/python tests/torch/make_lpips.py
"""
import argparse
import os
import subprocess
import sys
import tempfile

import torch
import torch.nn as nn
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from lsdmio import write_stream  # noqa: E402

OUT = os.path.join(HERE, '..', 'fixtures', 'lpips')
CONVERT = os.path.join(HERE, '..', '..', 'tools', 'contrib', 'convert_lpips.py')
VGG16 = [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M']
SLICES = [(0, 4), (4, 9), (9, 16), (16, 23), (23, 30)]


def vgg16_features(div):
    """torchvision.models.vgg16().features with widths / div (same indices)."""
    layers, cin = [], 3
    for v in VGG16:
        if v == 'M':
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(cin, v // div, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            cin = v // div
    return nn.Sequential(*layers)


class ScalingLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer('shift', torch.Tensor([-.030, -.088, -.188])[None, :, None, None])
        self.register_buffer('scale', torch.Tensor([.458, .448, .450])[None, :, None, None])

    def forward(self, inp):
        return (inp - self.shift) / self.scale


class NetLinLayer(nn.Module):
    def __init__(self, chn_in, chn_out=1, use_dropout=True):
        super().__init__()
        layers = [nn.Dropout()] if use_dropout else []
        layers += [nn.Conv2d(chn_in, chn_out, 1, stride=1, padding=0, bias=False)]
        self.model = nn.Sequential(*layers)


class VGG(nn.Module):
    def __init__(self, features):
        super().__init__()
        for k, (a, b) in enumerate(SLICES):
            s = nn.Sequential()
            for x in range(a, b):
                s.add_module(str(x), features[x])
            setattr(self, 'slice%d' % (k + 1), s)

    def forward(self, x):
        outs = []
        for k in range(5):
            x = getattr(self, 'slice%d' % (k + 1))(x)
            outs.append(x)
        return outs


def normalize_tensor(x, eps=1e-10):
    return x / (torch.sqrt(torch.sum(x ** 2, dim=1, keepdim=True)) + eps)


class LPIPS(nn.Module):
    def __init__(self, div):
        super().__init__()
        self.scaling_layer = ScalingLayer()
        self.chns = [c // div for c in (64, 128, 256, 512, 512)]
        self.features = vgg16_features(div)  # not a submodule name of the reference: dropped below
        self.net = VGG(self.features)
        for k, c in enumerate(self.chns):
            setattr(self, 'lin%d' % k, NetLinLayer(c))

    def forward(self, a, b):
        o0, o1 = self.net(self.scaling_layer(a)), self.net(self.scaling_layer(b))
        val = 0
        for k in range(5):
            d = (normalize_tensor(o0[k]) - normalize_tensor(o1[k])) ** 2
            val = val + getattr(self, 'lin%d' % k).model(d).mean([2, 3], keepdim=True)
        return val


def reference_state(model):
    """The reference LPIPS state_dict (without our `features` alias)."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith('features.')}


def randomise(model, g):
    for m in model.features:
        if isinstance(m, nn.Conv2d):  # He init keeps the deep features well scaled
            fan_in = m.weight.shape[1] * 9
            m.weight.data = torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5
            m.bias.data = torch.randn(m.bias.shape, generator=g) * 0.05
    for k in range(5):  # trained LPIPS lin weights are non-negative
        w = getattr(model, 'lin%d' % k).model[1].weight
        w.data = torch.rand(w.shape, generator=g) / w.shape[1]
    for p in model.parameters():
        p.data = p.data.float()


def convert(model, tmp):
    """Save as torchvision + lpips files, run convert_lpips.py, load back."""
    vgg = {'features.%s' % k: v.clone() for k, v in model.features.state_dict().items()}
    vgg['classifier.0.weight'] = torch.zeros(4, 2)  # ignored by the converter
    lin = {k: v.clone() for k, v in model.state_dict().items() if k.startswith('lin')}
    pv, pl, out = (os.path.join(tmp, n) for n in ('vgg16.pth', 'vgg.pth', 'lpips.safetensors'))
    torch.save(vgg, pv)
    torch.save(lin, pl)
    subprocess.run([sys.executable, CONVERT, pl, pv, out], check=True)
    return out


def case(model, shape, g):
    x = (torch.rand(shape, generator=g) * 2 - 1).float().double().requires_grad_()
    y = (torch.rand(shape, generator=g) * 2 - 1).float().double().requires_grad_()
    val = model(x, y).reshape(-1)
    val.mean().backward()
    return x.detach(), y.detach(), val.detach(), x.grad, y.grad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--div', type=int, default=16)
    args = ap.parse_args()
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1234)
    model = LPIPS(args.div)
    randomise(model, g)
    model.eval()
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = convert(model, tmp)
        got = load_file(path)
        want = reference_state(model)
        assert sorted(got) == sorted(want), (sorted(got), sorted(want))
        for k in want:
            assert torch.equal(got[k], want[k].float()), k
        with open(path, 'rb') as f, open(os.path.join(OUT, 'weights.safetensors'), 'wb') as o:
            o.write(f.read())
    model = model.double()
    t = {}
    for suffix, shape in (('', (2, 1, 32, 32)), ('3', (1, 3, 20, 28))):
        x, y, val, dx, dy = case(model, shape, g)
        t.update({'x' + suffix: x, 'y' + suffix: y, 'value' + suffix: val,
                  'dx' + suffix: dx, 'dy' + suffix: dy})
        print('case %s: LPIPS %s' % (suffix or '1', val.tolist()))
    write_stream(os.path.join(OUT, 'cases.lsdm'), {k: v.numpy() for k, v in t.items()})


if __name__ == '__main__':
    main()
