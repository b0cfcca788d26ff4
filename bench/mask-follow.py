#!/usr/bin/env python3
"""How well synthetic phantom images follow their masks.

The phantom program draws each class around a known mean intensity
(libshared/phantom.c: background 0, fat 0.80, fibroglandular 0.35, vessel
0.90, muscle 0.20, in [0,1]). For each synthetic image and the mask it was
made from, this prints per class the mean intensity inside the class's
region and its distance to the class mean, and the Dice of the nearest-mean
labelling (every voxel takes the class whose mean is closest to its
intensity) against the mask. A model that ignores the mask scores low
Dice; one that follows it scores near the Dice of the real phantom images
(run it on phantom's own images for that ceiling).

    bench/mask-follow.py IMAGES.lsdm MASKS.lsdm [--range LO,HI]

IMAGES: image records (1,D,H,W), values in [0,1] (--range maps LO,HI to
[0,1] first, e.g. -1,1 for vq-decode's default output); MASKS: label
records (class indices), paired in order. Needs numpy and zstandard.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'torch'))
import lsdmio  # noqa: E402

MEANS = np.array([0.00, 0.80, 0.35, 0.90, 0.20])
NAMES = ['background', 'fat', 'fibroglandular', 'vessel', 'muscle']


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('images')
    ap.add_argument('masks')
    ap.add_argument('--range', default='0,1')
    a = ap.parse_args()
    lo, hi = (float(v) for v in a.range.split(','))
    imgs, masks = lsdmio.read_stream(a.images), lsdmio.read_stream(a.masks)
    if len(imgs) != len(masks):
        sys.exit('mask-follow: %d images, %d masks' % (len(imgs), len(masks)))
    K = len(MEANS)
    dev, dice = np.zeros((len(imgs), K)), np.zeros((len(imgs), K))
    for i, ((_, x), (_, m)) in enumerate(zip(imgs, masks)):
        x = (x.astype(np.float64).reshape(-1) - lo) / (hi - lo)
        m = m.reshape(-1).astype(np.int64)
        if x.size != m.size:
            sys.exit('mask-follow: record %d: image and mask sizes differ' % i)
        nearest = np.abs(x[:, None] - MEANS[None, :]).argmin(1)
        for c in range(K):
            r = m == c
            dev[i, c] = abs(x[r].mean() - MEANS[c]) if r.any() else np.nan
            s = r.sum() + (nearest == c).sum()
            dice[i, c] = 2 * (r & (nearest == c)).sum() / s if s else np.nan
    print('%-15s %12s %12s' % ('class', '|mean-true|', 'Dice'))
    for c in range(K):
        print('%-15s %12.4f %12.4f' % (NAMES[c], np.nanmean(dev[:, c]), np.nanmean(dice[:, c])))
    print('%-15s %12.4f %12.4f' % ('foreground mean', np.nanmean(dev[:, 1:]), np.nanmean(dice[:, 1:])))


if __name__ == '__main__':
    main()
