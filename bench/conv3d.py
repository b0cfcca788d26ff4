"""PyTorch side of the conv benchmark: reads the shape table of
`conv3d shapes` on stdin and prints "name fwd_ms bwd_ms" per shape.

    build/bench/conv3d shapes | python bench/conv3d.py [--reps R] [--threads T]

Same work as ours: float32, forward without autograd; backward computes
the input, weight and bias gradients (through F.pad for replicate padding,
as the reference model does); one warm-up, median of R runs.
"""
import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def time_shape(f, reps):
    ts = []
    for r in range(reps + 1):
        t0 = time.perf_counter()
        f()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts[1:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--only', default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    for line in sys.stdin:
        f = line.split()
        name, (tr, N, Cin, D, H, W, Cout, kd, kh, kw, s, pd, ph, pw, rep) = f[0], map(int, f[1:])
        if a.only and a.only not in name:
            continue
        x = torch.randn(N, Cin, D, H, W, requires_grad=True)
        wshape = (Cin, Cout, kd, kh, kw) if tr else (Cout, Cin, kd, kh, kw)
        w = torch.randn(*wshape, requires_grad=True)
        b = torch.randn(Cout, requires_grad=True)

        def fwd():
            if tr:
                return F.conv_transpose3d(x, w, b, stride=s, padding=(pd, ph, pw))
            if rep:
                xp = F.pad(x, (pw, pw, ph, ph, pd, pd), mode='replicate')
                return F.conv3d(xp, w, b, stride=s)
            return F.conv3d(x, w, b, stride=s, padding=(pd, ph, pw))

        def fwd_nograd():
            with torch.no_grad():
                fwd()

        tf = time_shape(fwd_nograd, a.reps)
        out = fwd()
        g = torch.randn_like(out)
        tb = time_shape(lambda: torch.autograd.grad(out, (x, w, b), g, retain_graph=True), a.reps)
        print('%s %.3f %.3f' % (name, tf, tb), flush=True)


if __name__ == '__main__':
    main()
