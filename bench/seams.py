#!/usr/bin/env python3
"""Seams of depth-windowed sampling: the intensity jump between neighbouring
slices at window borders against the jump elsewhere.

ldm-denoise samples a latent deeper than the trained depth as overlapping
windows (libshared/diffusion.c: windows of W latent slices starting about
W/2 apart, blended at every step). A seam would show as larger differences
between the image slices on either side of a window border than between
neighbouring slices inside a window. For each image record this prints the
mean absolute slice-to-slice difference |x[z+1] - x[z]| (over the plane)
averaged over the border pairs (z+1 = a window start or end, in image
slices), over the other latent-voxel boundaries (z+1 a multiple of f), and
over the pairs inside latent voxels.

    bench/seams.py IMAGES.lsdm --f 4 --window 8 --depth LATENT_DEPTH

Needs numpy and zstandard.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'torch'))
import lsdmio  # noqa: E402


def windows(depth, window):
    """Window offsets as diffusion_windows_init computes them."""
    D = min(depth, window)
    half = max(D // 2, 1)
    n = 1 if D == depth else (depth - D + half - 1) // half + 1
    return [(2 * i * (depth - D) + (n - 1)) // (2 * (n - 1)) if n > 1 else 0 for i in range(n)], D


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('images')
    ap.add_argument('--f', type=int, default=4)
    ap.add_argument('--window', type=int, default=8)
    a = ap.parse_args()
    for keys, x in lsdmio.read_stream(a.images):
        x = x.astype(np.float64)[0]
        Z = x.shape[0]
        offs, D = windows(Z // a.f, a.window)
        borders = set()
        for o in offs:
            for b in (o, o + D):
                if 0 < b < Z // a.f:
                    borders.add(b * a.f)
        jump = np.abs(np.diff(x, axis=0)).mean(axis=(1, 2))  # jump[z] = |x[z+1] - x[z]|
        at_border = [jump[z - 1] for z in sorted(borders)]
        at_latent = [jump[z - 1] for z in range(a.f, Z, a.f) if z not in borders]
        inside = [jump[z - 1] for z in range(1, Z) if z % a.f]
        print('%s: %d windows of %d latent slices at %s; mean |slice jump|: window borders %.5f '
              '(%d), other latent boundaries %.5f (%d), inside latent voxels %.5f (%d)' % (
                  keys.get('name', '?'), len(offs), D, offs, np.mean(at_border), len(at_border),
                  np.mean(at_latent), len(at_latent), np.mean(inside), len(inside)))


if __name__ == '__main__':
    main()
