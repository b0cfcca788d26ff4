"""PyTorch side of the diffusion UNet benchmark: the reference-size
Unet3D_SPADE (tests/torch/unet_ref.py, config med-lsdm: dim 64, mults
1,2,4,8, 8 latent channels, 5 classes) at one denoising step, float32,
eval mode, no autograd. Prints one line per stage on stdout:

    NAME MEDIAN_MS PEAK_RSS_MIB

(read by bench.h's torch_times as "name a b": a = ms, b = MiB), stages:

    step_batch2  one forward of a batch of 2 (the conditional and the
                 unconditional pass of guidance), mask features made before
                 (forward(x, t, seg=...)): what ldm-denoise does per step
    step_2pass   two forwards of batch 1, mask features made before: the
                 reference's forward_with_cond_scale without its mask encoding
    maskfeat     the mask encoder (SegConv3D) of one mask: once per sample
                 in ldm-denoise. (PyTorch's SPADE norms compute gamma and
                 beta inside the forward, so the step rows include them;
                 ours makes them with the mask features.)
    step_ref     the reference's step as it runs: forward_with_cond_scale,
                 two forwards of batch 1 each encoding its mask (the real
                 mask, then the all-zero one)

Each stage runs in a fresh subprocess (model, random weights and inputs
built there; one warm-up, median of R timed runs), so PEAK_RSS_MIB is that
process's peak resident size (Python + torch included).

    python bench/ldm.py [--reps R] [--threads T] [--shape D,H,W] [--only NAME]

--shape is the latent grid (default 8,64,64, the reference's 32x256x256
volume); the mask is 4x it on every axis. Threads: --threads, else
OMP_NUM_THREADS, else all CPUs. A step takes seconds on a few cores: use
e.g. --shape 2,16,16 to check that it works.
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'torch'))
from unet_ref import Unet3D_SPADE, parse_config  # noqa: E402

STAGES = ('step_batch2', 'step_2pass', 'maskfeat', 'step_ref')


def rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def time_it(f, reps):
    ts = []
    for _ in range(reps + 1):
        t0 = time.perf_counter()
        f()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts[1:])


def run_stage(stage, shape, reps):
    torch.manual_seed(0)
    cfg = parse_config('')  # the defaults: med-lsdm
    model = Unet3D_SPADE(cfg).eval()
    D, H, W = shape
    L, C = cfg['label_nc'], cfg['channels']
    lab = torch.randint(0, L, (1, 1, D, H // 4, W // 4))
    lab = F.interpolate(lab.float(), size=(4 * D, 4 * H, 4 * W), mode='nearest').long()[:, 0]
    cond = F.one_hot(lab, L).movedim(-1, 1).float().contiguous()
    null = torch.zeros_like(cond)
    x1 = torch.randn(1, C, D, H, W)
    t1 = torch.full((1,), 250.0)
    with torch.no_grad():
        if stage == 'maskfeat':
            f = lambda: model.encode_mask(cond)  # noqa: E731
        elif stage == 'step_ref':
            def f():
                logits = model(x1, t1, cond)
                null_logits = model(x1, t1, null)
                return logits + (logits - null_logits) * 1.5
        else:
            sc, sn = model.encode_mask(cond), model.encode_mask(null)
            if stage == 'step_batch2':
                x2, t2, s2 = torch.cat([x1, x1]), torch.cat([t1, t1]), torch.cat([sc, sn])
                f = lambda: model(x2, t2, seg=s2)  # noqa: E731
            else:
                def f():
                    a = model(x1, t1, seg=sc)
                    b = model(x1, t1, seg=sn)
                    return b + 1.5 * (a - b)
        return time_it(f, reps)


def main():
    ap = argparse.ArgumentParser(description='PyTorch diffusion UNet step timings (see the top of the file)')
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--threads', type=int, default=int(os.environ.get('OMP_NUM_THREADS') or os.cpu_count()))
    ap.add_argument('--shape', default='8,64,64', help='latent D,H,W (default 8,64,64)')
    ap.add_argument('--only', default=None, help='only stages whose name contains this')
    ap.add_argument('--stage', choices=STAGES, help=argparse.SUPPRESS)  # the child process
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    shape = tuple(int(s) for s in a.shape.split(','))
    if len(shape) != 3 or shape[1] % 8 or shape[2] % 8:
        ap.error('--shape wants D,H,W with H and W multiples of 8 (4 levels)')
    if a.stage:
        ms = run_stage(a.stage, shape, a.reps)
        print('%s %.3f %.1f' % (a.stage, ms, rss_mib()), flush=True)
        return
    print('torch %s, %d threads, latent 8,%d,%d,%d, %d reps' % ((torch.__version__, a.threads) + shape + (a.reps,)),
          file=sys.stderr, flush=True)
    for stage in STAGES:
        if a.only and a.only not in stage:
            continue
        cmd = [sys.executable, os.path.abspath(__file__), '--stage', stage, '--reps', str(a.reps),
               '--threads', str(a.threads), '--shape', a.shape]
        subprocess.run(cmd, check=True)


if __name__ == '__main__':
    main()
