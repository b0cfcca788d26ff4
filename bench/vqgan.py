"""PyTorch side of the VQ-GAN benchmark: the reference-size model
(tests/torch/vqgan_ref.py, config med-lsdm) on one volume, float32, eval
mode, no autograd. Prints one line per stage on stdout:

    NAME MEDIAN_MS PEAK_RSS_MIB

(read by bench.h's torch_times as "name a b": a = ms, b = MiB), stages:

    encode        x (1,1,D,H,W) -> prequant z = pre_vq_conv(encoder(x))
    quantize      z -> codes -> embeddings: the reference codebook's distance
                  expansion, argmin and lookup (F.embedding + channel move)
    decode        zq -> post_vq_conv -> plain decoder -> image
    decode_spade  zq, one-hot mask (label_nc 5) -> post_vq_conv -> SPADE decoder

Each stage runs in a fresh subprocess (model, random weights and inputs
built there; one warm-up, median of R timed runs), so PEAK_RSS_MIB is that
process's peak resident size (getrusage ru_maxrss, Python + torch included);
the RSS right before timing is on stderr ("setup").

    python bench/vqgan.py [--reps R] [--threads T] [--shape D,H,W] [--config FILE]
                          [--only NAME]

Threads: --threads, else OMP_NUM_THREADS, else all CPUs. Default shape
32,256,256 (the reference input); decode needs several GiB and, on a few
cores, tens of seconds per run: use e.g. --shape 8,32,32 to check it works.
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
from vqgan_ref import VQGAN, parse_config, read_config  # noqa: E402

STAGES = ('encode', 'quantize', 'decode', 'decode_spade')
MED_LSDM = """model = vqgan
n_hiddens = 16
downsample = 4,4,4
image_channels = 1
embedding_dim = 8
n_codes = 16384
num_groups = 32
padding_type = replicate
decoder = plain
"""


def rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def cur_rss_mib():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def time_it(f, reps):
    ts = []
    for _ in range(reps + 1):
        t0 = time.perf_counter()
        f()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts[1:])


def run_stage(stage, cfg, shape, reps):
    """Build what `stage` needs, time it; returns median ms."""
    torch.manual_seed(0)
    if stage == 'decode_spade':
        cfg = dict(cfg, decoder='spade', label_nc=5)
    model = VQGAN(cfg, discriminators=False).eval()
    ds = cfg['downsample']
    lat = (1, cfg['embedding_dim']) + tuple(s // d for s, d in zip(shape, ds))
    with torch.no_grad():
        if stage == 'encode':
            x = torch.rand(1, cfg['image_channels'], *shape) * 2 - 1
            f = lambda: model.encode(x)  # noqa: E731
        elif stage == 'quantize':
            z = torch.randn(lat)
            cb = model.codebook

            def f():
                flat = z.movedim(1, -1).reshape(-1, z.shape[1])
                codes = cb.nearest(flat).view(z.shape[0], *z.shape[2:])
                return F.embedding(codes, cb.embeddings).movedim(-1, 1).contiguous()
        else:
            zq = torch.randn(lat)
            seg = None
            if stage == 'decode_spade':
                lab = torch.randint(0, cfg['label_nc'], (1,) + tuple(shape))
                seg = F.one_hot(lab, cfg['label_nc']).movedim(-1, 1).float().contiguous()
            f = lambda: model.decode(zq, seg)  # noqa: E731
        print('%s: setup %.0f MiB' % (stage, cur_rss_mib()), file=sys.stderr, flush=True)
        return time_it(f, reps)


def main():
    ap = argparse.ArgumentParser(description='PyTorch VQ-GAN stage timings (see the top of the file)')
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--threads', type=int, default=int(os.environ.get('OMP_NUM_THREADS') or os.cpu_count()))
    ap.add_argument('--shape', default='32,256,256', help='volume D,H,W (default 32,256,256)')
    ap.add_argument('--config', help='model config file (default: med-lsdm, plain decoder)')
    ap.add_argument('--only', default=None, help='only stages whose name contains this')
    ap.add_argument('--stage', choices=STAGES, help=argparse.SUPPRESS)  # the child process
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = read_config(a.config) if a.config else parse_config(MED_LSDM)
    shape = tuple(int(s) for s in a.shape.split(','))
    if len(shape) != 3 or any(s % d for s, d in zip(shape, cfg['downsample'])):
        ap.error('--shape wants D,H,W divisible by downsample %s' % (cfg['downsample'],))
    if a.stage:
        ms = run_stage(a.stage, cfg, shape, a.reps)
        print('%s %.3f %.1f' % (a.stage, ms, rss_mib()), flush=True)
        return
    print('torch %s, %d threads, shape 1,%d,%d,%d, %d reps' % ((torch.__version__, a.threads) + shape + (a.reps,)),
          file=sys.stderr, flush=True)
    for stage in STAGES:
        if a.only and a.only not in stage:
            continue
        cmd = [sys.executable, os.path.abspath(__file__), '--stage', stage, '--reps', str(a.reps),
               '--threads', str(a.threads), '--shape', a.shape] + (['--config', a.config] if a.config else [])
        subprocess.run(cmd, check=True)


if __name__ == '__main__':
    main()
