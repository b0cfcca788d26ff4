"""Fixtures for fid3d (tests/c/test_frechet.c, test_resnet3d.c, tests/bats/15-fid3d.bats).

1. Feature-matrix pairs (stat_CASE.lsdm: records real and fake, role
   features, f32 (n, d)) and the reference FID / KID of each in
   expected.txt ("CASE fid kid"): the FID as the Med-LSDM reference
   (evaluation/3d_fid.py: scipy.linalg.sqrtm(S1 S2), .real, numpy.cov),
   the KID as torch-fidelity's unbiased MMD^2 with (x.y/d + 1)^3 (over all
   samples of each set), both in float64 from the stored f32 values.
2. MedicalNet 3D ResNets (evaluation/resnet3D.py with the widths made a
   parameter; width 64 is the reference) with random weights and random
   BatchNorm statistics: resnet10 shortcut B width 2, resnet18 shortcut
   A width 1 and resnet50 (Bottlenecks) shortcut B width 1 (weights
   stored as f16 to keep the files small), saved as a
   DataParallel .pth (with conv_seg.* and num_batches_tracked, as
   MedicalNet's files) and converted with
   tools/contrib/convert_medicalnet.py to resnetNN.safetensors; the
   features of one 1x1x16x24x24 volume computed in float64 from the
   converted weights go to resnet.lsdm (records input, resnet10, resnet18,
   resnet50).

Run: /opt/torchenv/bin/python tests/torch/make_fid.py
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import linalg
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(__file__))
from lsdmio import write_stream  # noqa: E402

TOP = os.path.join(os.path.dirname(__file__), '..', '..')
OUT = os.path.join(TOP, 'tests', 'fixtures', 'fid')


# ---- statistics, as the reference code ----

def fid_reference(f1, f2):
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = linalg.sqrtm(s1.dot(s2))
    covmean = covmean.real
    diff = mu1 - mu2
    return diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)


def fid_eigen(f1, f2):
    """The same through symmetric eigenvalues (what the C code does)."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    w, v = np.linalg.eigh(s1)
    r = (v * np.sqrt(np.maximum(w, 0))) @ v.T
    m = r @ s2 @ r
    tr = np.sqrt(np.maximum(np.linalg.eigvalsh((m + m.T) / 2), 0)).sum()
    diff = mu1 - mu2
    return diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * tr


def kid_reference(f1, f2):
    d = f1.shape[1]

    def k(a, b):
        return (a @ b.T / d + 1) ** 3
    m, n = len(f1), len(f2)
    kxx, kyy, kxy = k(f1, f1), k(f2, f2), k(f1, f2)
    return ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
            - 2 * kxy.sum() / (m * n))


def feature_cases(rng):
    cases = []
    # n=40, d=8: different means, correlated covariances
    a = rng.normal(size=(8, 8))
    cases.append(('small', rng.normal(size=(40, 8)) @ a, rng.normal(0.5, 1.3, size=(40, 8))))
    # n=12 < d+1 = 17: singular covariances
    cases.append(('singular', rng.normal(size=(12, 16)), rng.normal(0.2, 0.9, size=(12, 16))))
    # n=200 and 180, d=32, feature-like (non-negative, as pooled ReLU outputs)
    b = rng.normal(size=(32, 32)) / 6
    cases.append(('large', np.abs(rng.normal(1.0, 1.0, size=(200, 32)) @ b),
                  np.abs(rng.normal(1.1, 0.9, size=(180, 32)) @ b)))
    return cases


# ---- the MedicalNet ResNet with a width parameter ----

def conv3x3x3(cin, cout, stride=1, dilation=1):
    return nn.Conv3d(cin, cout, kernel_size=3, dilation=dilation, stride=stride, padding=dilation, bias=False)


def downsample_basic_block(x, planes, stride):
    out = F.avg_pool3d(x, kernel_size=1, stride=stride)
    zero = torch.zeros(out.size(0), planes - out.size(1), *out.shape[2:], dtype=out.dtype)
    return torch.cat([out, zero], dim=1)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, dilation=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3x3(inplanes, planes, stride=stride, dilation=dilation)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = conv3x3x3(planes, planes, dilation=dilation)
        self.bn2 = nn.BatchNorm3d(planes)
        self.downsample = downsample

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        res = self.downsample(x) if self.downsample is not None else x
        return F.relu(out + res)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, dilation=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv3d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, kernel_size=3, stride=stride, dilation=dilation, padding=dilation,
                               bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * 4)
        self.downsample = downsample

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        res = self.downsample(x) if self.downsample is not None else x
        return F.relu(out + res)


class ResNet(nn.Module):
    def __init__(self, block, layers, shortcut_type='B', width=64):
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv3d(1, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(width)
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, width, layers[0], shortcut_type)
        self.layer2 = self._make_layer(block, 2 * width, layers[1], shortcut_type, stride=2)
        self.layer3 = self._make_layer(block, 4 * width, layers[2], shortcut_type, dilation=2)
        self.layer4 = self._make_layer(block, 8 * width, layers[3], shortcut_type, dilation=4)
        # the segmentation head's first conv, so the .pth holds conv_seg.* as MedicalNet's
        self.conv_seg = nn.Sequential(nn.ConvTranspose3d(8 * width * block.expansion, 4, 2, stride=2))
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out')

    def _make_layer(self, block, planes, blocks, shortcut_type, stride=1, dilation=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            if shortcut_type == 'A':
                p, s = planes * block.expansion, stride
                downsample = lambda x: downsample_basic_block(x, p, s)  # noqa: E731
            else:
                downsample = nn.Sequential(
                    nn.Conv3d(self.inplanes, planes * block.expansion, kernel_size=1, stride=stride, bias=False),
                    nn.BatchNorm3d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride=stride, dilation=dilation, downsample=downsample)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, dilation=dilation))
        return nn.Sequential(*layers)

    def features(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3, 4))


LAYOUT = {10: (BasicBlock, [1, 1, 1, 1]), 18: (BasicBlock, [2, 2, 2, 2]), 34: (BasicBlock, [3, 4, 6, 3]),
          50: (Bottleneck, [3, 4, 6, 3])}


def make_resnet(depth, shortcut, width, seed, x, dtype):
    """Writes resnetNN.safetensors; returns the float64 features of x."""
    torch.manual_seed(seed)
    block, layers = LAYOUT[depth]
    m = ResNet(block, layers, shortcut, width)
    with torch.no_grad():  # BatchNorm statistics that do something
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm3d):
                mod.weight.uniform_(0.6, 1.4)
                mod.bias.normal_(0, 0.1)
                mod.running_mean.normal_(0, 0.1)
                mod.running_var.uniform_(0.6, 1.4)
    m.eval()
    name = 'resnet%d' % depth
    out = os.path.join(OUT, name + '.safetensors')
    with tempfile.TemporaryDirectory() as tmp:
        pth = os.path.join(tmp, name + '.pth')
        sd = {'module.' + k: v for k, v in m.state_dict().items()}
        torch.save({'epoch': 1, 'state_dict': sd}, pth)
        conv = os.path.join(TOP, 'tools', 'contrib', 'convert_medicalnet.py')
        subprocess.run([sys.executable, conv, '--dtype', dtype, pth, out], check=True)
    # the reference features from the converted weights, in float64
    loaded = load_file(out)
    m = m.double()
    missing, unexpected = m.load_state_dict({k: v.double() for k, v in loaded.items()}, strict=False)
    assert all('num_batches_tracked' in k or k.startswith('conv_seg.') for k in missing), missing
    assert not unexpected, unexpected
    with torch.no_grad():
        f = m.features(x.double())
    print('%s shortcut %s width %d: features %s, |f| max %.4g' % (name, shortcut, width, tuple(f.shape),
                                                                  f.abs().max()))
    return f.numpy()


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240606)
    lines = []
    for name, f1, f2 in feature_cases(rng):
        f1, f2 = f1.astype(np.float32), f2.astype(np.float32)
        write_stream(os.path.join(OUT, 'stat_%s.lsdm' % name), {'real': f1, 'fake': f2})
        a, b = f1.astype(np.float64), f2.astype(np.float64)
        fid, fe, kid = fid_reference(a, b), fid_eigen(a, b), kid_reference(a, b)
        print('%-8s n=%d/%d d=%d  fid %.15g (eigen %.15g, rel %.2g)  kid %.15g' % (
            name, len(a), len(b), a.shape[1], fid, fe, abs(fid - fe) / abs(fid), kid))
        lines.append('%s %.17g %.17g\n' % (name, fid, kid))
    with open(os.path.join(OUT, 'expected.txt'), 'w') as f:
        f.write('# case fid kid (scipy sqrtm / numpy, from stat_CASE.lsdm; tests/torch/make_fid.py)\n')
        f.writelines(lines)
    x = torch.rand(1, 1, 16, 24, 24, generator=torch.Generator().manual_seed(7))
    f10 = make_resnet(10, 'B', 2, 1, x, 'f16')
    f18 = make_resnet(18, 'A', 1, 2, x, 'f16')
    f50 = make_resnet(50, 'B', 1, 3, x, 'f16')
    write_stream(os.path.join(OUT, 'resnet.lsdm'), {'input': x[0].numpy(), 'resnet10': f10, 'resnet18': f18,
                                                    'resnet50': f50})


if __name__ == '__main__':
    main()
