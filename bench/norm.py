"""PyTorch side of the GroupNorm benchmark (bench/norm.c): same shapes,
float32, median ms of forward and backward (input, weight and bias
gradients through aten's native_group_norm_backward, no autograd
overhead), and SiLU forward/backward.

    /opt/torchenv/bin/python bench/norm.py [--reps R] [--threads T] [--cuda]
"""
import argparse
import statistics
import time

import torch

SHAPES = [('vq_gn32_64@8x64x64', 1, 64, 8 * 64 * 64, 32),
          ('vq_gn32_32@16x128x128', 2, 32, 16 * 128 * 128, 32),
          ('unet_gn8_64@8x64x64', 2, 64, 8 * 64 * 64, 8)]


def timed(f, reps, sync):
    ts = []
    for _ in range(reps + 1):
        sync()
        t0 = time.perf_counter()
        f()
        sync()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts[1:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--reps', type=int, default=9)
    ap.add_argument('--threads', type=int, default=torch.get_num_threads())
    ap.add_argument('--cuda', action='store_true')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dev = 'cuda' if a.cuda else 'cpu'
    sync = torch.cuda.synchronize if a.cuda else (lambda: None)
    aten = torch.ops.aten
    print('torch %s, %s, threads %d' % (torch.__version__, dev, a.threads))
    print('%-24s %9s %9s %9s %9s' % ('shape', 'fwd_ms', 'bwd_ms', 'silu_f_ms', 'silu_b_ms'))
    with torch.no_grad():
        for name, N, C, S, G in SHAPES:
            x = torch.rand(N, C, S, device=dev)
            dy = torch.rand(N, C, S, device=dev) - 0.5
            w = torch.ones(C, device=dev)
            b = torch.zeros(C, device=dev)
            out, mean, rstd = aten.native_group_norm(x, w, b, N, C, S, G, 1e-6)
            tf = timed(lambda: aten.native_group_norm(x, w, b, N, C, S, G, 1e-6), a.reps, sync)
            tb = timed(lambda: aten.native_group_norm_backward(dy, x, mean, rstd, w, N, C, S, G,
                                                               [True, True, True]), a.reps, sync)
            tsf = timed(lambda: torch.nn.functional.silu(x), a.reps, sync)
            tsb = timed(lambda: aten.silu_backward(dy, x), a.reps, sync)
            print('%-24s %9.3f %9.3f %9.3f %9.3f' % (name, tf, tb, tsf, tsb))


if __name__ == '__main__':
    main()
