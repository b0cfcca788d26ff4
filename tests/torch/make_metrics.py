"""Reference values for vol-metrics / libshared/imgmetrics.c.

Run: nice -n 19 /opt/torchenv/bin/python tests/torch/make_metrics.py
(needs numpy, scikit-image, torch and pytorch-msssim).

Writes tests/fixtures/metrics/:
  a.lsdm, b.lsdm  the reference (A) and test (B) volumes of each case, f16
                  records named after the case (values k/256, exact in f16)
  expected.json   per case: psnr (data range 2), psnr_auto (range
                  max(A)-min(A)), rmse, mae, ssim (range 2), ssim_auto,
                  ssim_window, ms_ssim (range 2), ms_ssim_levels; and the
                  procedural case "big" (built by the same integer formula
                  in the C test, too large to store) with 5 MS-SSIM scales.

SSIM: skimage.metrics.structural_similarity(gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=R) per channel on the
np.squeeze()d volume, with win_size 11 or the largest odd size that fits.
MS-SSIM: pytorch_msssim.ms_ssim itself where 5 scales fit; for smaller
volumes the same loop (its _ssim, its avg_pool3d padding) with fewer scales
and the first L weights renormalised, since ms_ssim asserts H,W > 160. All
in float64 with an exact float64 window (ms_ssim's own window is computed
in float32).
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import pytorch_msssim
from pytorch_msssim.ssim import _ssim

from lsdmio import write_stream

OUT = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'metrics')
WEIGHTS = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]


def quant(x):
    return np.clip(np.round(x * 256), -256, 256) / 256


def smooth(rng, shape, sigma):
    x = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return x / np.abs(x).max()


def phantom(shape):
    c, d, h, w = shape
    z, y, x = np.meshgrid(np.linspace(-1, 1, d), np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing='ij')
    v = np.full((d, h, w), -1.0)
    v[(x / 0.9) ** 2 + (y / 0.8) ** 2 + (z / 1.2) ** 2 < 1] = -0.2
    v[((x - 0.3) / 0.3) ** 2 + (y / 0.4) ** 2 + (z / 0.8) ** 2 < 1] = 0.5
    v[((x + 0.4) / 0.15) ** 2 + ((y + 0.2) / 0.15) ** 2 < 1] = 0.9
    return v.reshape(shape)


def make_cases():
    rng = np.random.default_rng(6)
    cases = {}
    a = quant(smooth(rng, (1, 16, 24, 24), 2.0))
    cases['smooth'] = (a, quant(np.clip(a + 0.15 * smooth(rng, a.shape, 0.7), -1, 1)))
    a = quant(phantom((1, 24, 40, 40)))
    b = ndimage.gaussian_filter(a, (0, 0.8, 0.8, 0.8)) + 0.05 * rng.standard_normal(a.shape)
    cases['phantom'] = (a, quant(np.clip(b, -1, 1)))
    a = quant(smooth(rng, (1, 3, 20, 20), 1.5))  # thinner than the window: skimage win 3
    cases['thin'] = (a, quant(a + 0.1 * rng.standard_normal(a.shape)))
    a = quant(smooth(rng, (2, 12, 16, 16), 1.5))
    cases['multi'] = (a, quant(0.8 * a + 0.1 * rng.standard_normal(a.shape)))
    a = quant(smooth(rng, (1, 12, 24, 24), 2.0))
    cases['neg'] = (a, quant(-a + 0.05 * rng.standard_normal(a.shape)))  # negative cs: relu
    a = quant(smooth(rng, (1, 1, 24, 32), 2.0))  # one slice: 2-D for skimage and pytorch_msssim
    cases['flat'] = (a, quant(a + 0.1 * rng.standard_normal(a.shape)))
    return cases


def big_case():
    """The procedural 20x168x168 pair; tests/c/test_imgmetrics.c builds it alike."""
    d, h, w = np.meshgrid(np.arange(20), np.arange(168), np.arange(168), indexing='ij')
    k = (3 * d * d + 7 * (h // 8) * (w // 8) + 11 * ((h + w) // 16)) % 50
    a = k / 25.0 - 1.0
    i = np.arange(a.size, dtype=np.uint64).reshape(a.shape)
    q = ((i * np.uint64(2654435761)) % np.uint64(1 << 32)) >> np.uint64(16)
    b = a + ((q % np.uint64(21)).astype(np.int64) - 10) / 200.0
    return a[None], b[None]


def ssim_window(shape):
    thin = min([11] + [s for s in shape if s > 1])
    return thin if thin % 2 else thin - 1


def ssim_ref(a, b, rng_):
    win = ssim_window(a.shape[1:])
    vals = [structural_similarity(np.squeeze(a[c]), np.squeeze(b[c]), gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False, data_range=rng_, win_size=win)
            for c in range(a.shape[0])]
    return float(np.mean(vals)), win


def window(channels):
    x = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-x ** 2 / (2 * 1.5 ** 2))
    g /= g.sum()
    return g.reshape(1, 1, 1, 1, 11).repeat(channels, 1, 1, 1, 1)


def ms_ssim_ref(a, b, data_range):
    """pytorch_msssim.ms_ssim on (1,C,D,H,W) float64, unit axes squeezed."""
    X = torch.from_numpy(a[None].astype(np.float64))
    Y = torch.from_numpy(b[None].astype(np.float64))
    for d in range(4, 1, -1):
        X, Y = X.squeeze(dim=d), Y.squeeze(dim=d)
    win = window(a.shape[0])
    if X.dim() == 4:
        win = win[:, :, 0]  # (C,1,1,11) for 2-D inputs
    side = min(X.shape[-2:])
    levels = max(L for L in range(6) if L == 0 or side > 10 * 2 ** (L - 1))
    assert levels >= 1
    if levels == 5:
        v = pytorch_msssim.ms_ssim(X, Y, data_range=data_range, win=win)
        return float(v), levels
    w = torch.tensor(WEIGHTS[:levels], dtype=torch.float64)
    w = w / w.sum()
    pool = F.avg_pool2d if X.dim() == 4 else F.avg_pool3d
    mcs = []
    for i in range(levels):
        s, cs = _ssim(X, Y, data_range=data_range, win=win, size_average=False, K=(0.01, 0.03))
        if i < levels - 1:
            mcs.append(torch.relu(cs))
            padding = [n % 2 for n in X.shape[2:]]
            X = pool(X, kernel_size=2, padding=padding)
            Y = pool(Y, kernel_size=2, padding=padding)
    v = torch.prod(torch.stack(mcs + [torch.relu(s)], dim=0) ** w.view(-1, 1, 1), dim=0)
    return float(v.mean()), levels


def metrics(a, b):
    auto = float(a.max() - a.min())
    mse = float(np.mean((a - b) ** 2))
    e = {'shape': list(a.shape), 'rmse': mse ** 0.5, 'mae': float(np.mean(np.abs(a - b))), 'range_auto': auto,
         'psnr': float(peak_signal_noise_ratio(a, b, data_range=2)),
         'psnr_auto': float(peak_signal_noise_ratio(a, b, data_range=auto))}
    e['ssim'], e['ssim_window'] = ssim_ref(a, b, 2.0)
    e['ssim_auto'], _ = ssim_ref(a, b, auto)
    e['ms_ssim'], e['ms_ssim_levels'] = ms_ssim_ref(a, b, 2.0)
    return e


def main():
    os.makedirs(OUT, exist_ok=True)
    cases = make_cases()
    expected = {}
    for name, (a, b) in cases.items():
        assert np.array_equal(a.astype(np.float16).astype(np.float64), a)
        assert np.array_equal(b.astype(np.float16).astype(np.float64), b)
        expected[name] = metrics(a, b)
    big = metrics(*big_case())
    assert big['ms_ssim_levels'] == 5
    expected['big'] = big
    write_stream(os.path.join(OUT, 'a.lsdm'), {n: a.astype(np.float16) for n, (a, b) in cases.items()}, role='image')
    write_stream(os.path.join(OUT, 'b.lsdm'), {n: b.astype(np.float16) for n, (a, b) in cases.items()}, role='image')
    with open(os.path.join(OUT, 'expected.json'), 'w') as f:
        json.dump(expected, f, indent=1)
        f.write('\n')
    for n, e in expected.items():
        print('%-8s psnr %.4f ssim %.6f (win %d) ms_ssim %.6f (%d levels) rmse %.6f mae %.6f' % (
            n, e['psnr'], e['ssim'], e['ssim_window'], e['ms_ssim'], e['ms_ssim_levels'], e['rmse'], e['mae']))


if __name__ == '__main__':
    main()
