"""PyTorch side of the codebook benchmark: the reference Codebook.forward's
nearest-code search (vq_gan_3d/model/codebook.py: the full vectors x codes
distance matrix, then argmin) on the same shape as build/bench/codebook,
float32, no autograd. Prints "nearest MS 0" (median of R runs after a
warm-up) and the peak resident memory on stderr.

    python bench/codebook.py [--reps R] [--threads T] [-n VECTORS] [-k CODES] [-c DIM]
"""
import argparse
import resource
import statistics
import sys
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('-n', type=int, default=8 * 64 * 64)
    ap.add_argument('-k', type=int, default=16384)
    ap.add_argument('-c', type=int, default=8)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    flat = torch.rand(a.n, a.c) * 2 - 1
    emb = torch.rand(a.k, a.c) * 2 - 1

    def nearest():
        with torch.no_grad():
            d = (flat ** 2).sum(dim=1, keepdim=True) - 2 * flat @ emb.t() \
                + (emb.t() ** 2).sum(dim=0, keepdim=True)
            return torch.argmin(d, dim=1)

    ts = []
    for _ in range(a.reps + 1):
        t0 = time.perf_counter()
        nearest()
        ts.append((time.perf_counter() - t0) * 1e3)
    print('nearest %.3f 0' % statistics.median(ts[1:]), flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    print('torch peak resident memory %.2f GiB' % rss, file=sys.stderr)


if __name__ == '__main__':
    main()
