"""Reference values for the training helpers (losses, Adam/AdamW, gradient
clipping, EMA, safetensors, the checkpoint converter), computed with
PyTorch and written to tests/fixtures/train/ for tests/c/test_loss.c,
test_optim.c and test_safetensors.c.

Run from the repository root:  /opt/torchenv/bin/python tests/torch/make_train.py
Needs torch, numpy, zstandard and safetensors. If build/tests/test_safetensors
exists it is also asked to write a file, which is checked to load in
Python's safetensors with the expected values.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file, load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lsdmio import write_stream  # noqa: E402

OUT = 'tests/fixtures/train'
torch.manual_seed(1234)


def f32(*shape, scale=1.0):
    """Random float32 values, returned as float64 so that the reference is
    computed exactly on the values the C test reads back."""
    return (torch.randn(*shape) * scale).float().double()


def grad_of(fn, *xs):
    xs = [x.clone().requires_grad_(True) for x in xs]
    loss = fn(*xs)
    loss.backward()
    return loss.detach(), [x.grad for x in xs]


def soft_dice_ref(logits, target, batch_dice, do_bg, smooth, smooth_nom):
    """The reference seg code's SoftDiceLoss(apply_nonlin=softmax) with
    integer targets: soft_dice / soft_dice_per_batch_2."""
    p = torch.softmax(logits, 1)
    onehot = F.one_hot(target.long(), logits.shape[1]).movedim(-1, 1).to(p.dtype)
    if not do_bg:
        p, onehot = p[:, 1:], onehot[:, 1:]
    axes = (0, 2) if batch_dice else (2,)
    tp = (p * onehot).sum(axes)
    fp = (p * (1 - onehot)).sum(axes)
    fn = ((1 - p) * onehot).sum(axes)
    return (-((2 * tp + smooth_nom) / (2 * tp + fp + fn + smooth))).mean()


def make_losses():
    t = {}
    pred, target = f32(2, 3, 4, 5), f32(2, 3, 4, 5)
    for name, fn in (('l1', lambda p: F.l1_loss(p, target)), ('mse', lambda p: F.mse_loss(p, target))):
        loss, (g,) = grad_of(fn, pred)
        t.update({name + '.pred': pred, name + '.target': target, name + '.loss': loss, name + '.grad': g})
    real, fake = f32(2, 1, 3, 4, 4, scale=1.5), f32(3, 1, 2, 5, scale=1.5)
    loss, (dr, df) = grad_of(lambda r, f: F.relu(1 - r).mean() + F.relu(1 + f).mean(), real, fake)
    t.update({'hd.real': real, 'hd.fake': fake, 'hd.loss': loss, 'hd.dreal': dr, 'hd.dfake': df})
    loss, (df,) = grad_of(lambda f: -f.mean(), fake)
    t.update({'hg.loss': loss, 'hg.dfake': df})
    N, C, S = 2, 4, 30
    logits = f32(N, C, S, scale=2.0)
    tgt = torch.randint(0, C, (N, S))
    loss, (g,) = grad_of(lambda x: F.cross_entropy(x, tgt), logits)
    t.update({'ce.logits': logits, 'ce.target': tgt.double(), 'ce.loss': loss, 'ce.grad': g})
    for name, args in (('dice_ref', (True, False, 1e-5, 1e-5)), ('dice_alt', (False, True, 1.0, 1.0))):
        loss, (g,) = grad_of(lambda x: soft_dice_ref(x, tgt, *args), logits)
        t.update({name + '.loss': loss, name + '.grad': g})
    write_stream(os.path.join(OUT, 'loss.lsdm'), t)
    print('loss.lsdm: %d tensors' % len(t))


SHAPES = [(3, 5), (7,)]


def flat(ts):
    return torch.cat([x.detach().reshape(-1) for x in ts]).double()


def run_adam(name, opt_cls, steps=5, **kw):
    torch.manual_seed(sum(map(ord, name)))
    ps = [torch.randn(*s).float().requires_grad_(True) for s in SHAPES]
    t = {name + '.w0': flat(ps)}
    opt = opt_cls(ps, foreach=False, **kw)
    for k in range(steps):
        gs = [torch.randn(*s).float() * (0.1 + k) for s in SHAPES]
        for p, g in zip(ps, gs):
            p.grad = g.clone()
        opt.step()
        t['%s.g%d' % (name, k)] = flat(gs)
    t[name + '.w'] = flat(ps)
    t[name + '.m'] = flat([opt.state[p]['exp_avg'] for p in ps])
    t[name + '.v'] = flat([opt.state[p]['exp_avg_sq'] for p in ps])
    return t


def make_optim():
    t = {}
    t.update(run_adam('adam', torch.optim.Adam, lr=1e-3))
    t.update(run_adam('adam_vq', torch.optim.Adam, lr=3e-4, betas=(0.5, 0.9)))
    t.update(run_adam('adam_wd', torch.optim.Adam, lr=1e-2, weight_decay=0.1))
    t.update(run_adam('adamw', torch.optim.AdamW, lr=1e-2, weight_decay=0.05))
    # clipping: one case that clips, one that does not
    for name, max_norm in (('clip', 0.5), ('noclip', 100.0)):
        gs = [torch.randn(*s).float() for s in SHAPES]
        t[name + '.g_in'] = flat(gs)
        ps = [torch.zeros(*s).requires_grad_(True) for s in SHAPES]
        for p, g in zip(ps, gs):
            p.grad = g.clone()
        total = torch.nn.utils.clip_grad_norm_(ps, max_norm)
        t[name + '.g_out'] = flat([p.grad for p in ps])
        t[name + '.total'] = total.double()
    # a small training loop: clip 1.0, Adam (0.5, 0.9), EMA 0.9 (reference update_average)
    torch.manual_seed(7)
    ps = [torch.randn(*s).float().requires_grad_(True) for s in SHAPES]
    ema = [p.detach().clone() for p in ps]
    t['loop.w0'] = flat(ps)
    opt = torch.optim.Adam(ps, lr=1e-2, betas=(0.5, 0.9), foreach=False)
    for k in range(6):
        gs = [torch.randn(*s).float() * 2 for s in SHAPES]
        t['loop.g%d' % k] = flat(gs)
        for p, g in zip(ps, gs):
            p.grad = g.clone()
        torch.nn.utils.clip_grad_norm_(ps, 1.0)
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema, ps):
                e.copy_(e * 0.9 + (1 - 0.9) * p)
    t['loop.w'] = flat(ps)
    t['loop.ema'] = flat(ema)
    write_stream(os.path.join(OUT, 'optim.lsdm'), t)
    print('optim.lsdm: %d tensors' % len(t))


def make_safetensors():
    g = torch.Generator().manual_seed(5)
    ts = {
        'enc.conv1.weight': torch.randn(2, 1, 3, 3, 3, generator=g),
        'enc.conv1.bias': torch.randn(2, generator=g),
        'half': torch.randn(3, 4, generator=g).half(),
        'brain': torch.randn(5, generator=g).bfloat16(),
        'ints': torch.arange(-3, 3, dtype=torch.int32).reshape(2, 3),
        'longs': torch.tensor([-1, 1 << 40], dtype=torch.int64),
        'bytes': torch.tensor([0, 7, 255], dtype=torch.uint8),
        'scalar': torch.tensor(2.5),
    }
    path = os.path.join(OUT, 'py.safetensors')
    save_file(ts, path, metadata={'config': 'dim=4 mults=1,2', 'step': '12'})
    os.chmod(path, 0o644)
    vals = {'py.' + k: v.double() for k, v in ts.items() if k != 'longs'}
    write_stream(os.path.join(OUT, 'py_values.lsdm'), vals)
    print('py.safetensors: %d bytes' % os.path.getsize(path))


def check_c_written():
    exe = 'build/tests/test_safetensors'
    if not os.path.exists(exe):
        print('note: %s not built; C-written file not checked' % exe)
        return
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, 'c.safetensors')
        subprocess.run([exe, '--write', path], check=True)
        ts = load_file(path)
        with safe_open(path, 'pt') as f:
            meta = f.metadata()
        assert meta == {'config': 'c-test', 'step': '7'}, meta
        assert torch.equal(ts['f32'], (torch.arange(6).float() * 0.5 - 1).reshape(2, 3))
        assert ts['f16'].dtype == torch.float16 and torch.equal(ts['f16'].float(), torch.arange(4) * 0.25)
        assert ts['bf16'].dtype == torch.bfloat16 and torch.equal(ts['bf16'].float(), torch.tensor([1.0, -2.0, 3.0]))
        assert torch.equal(ts['i32'], torch.arange(-2, 3, dtype=torch.int32))
        assert torch.equal(ts['i64'], torch.tensor([-1, 1 << 40]))
        assert torch.equal(ts['u8'], torch.tensor([0, 128, 255], dtype=torch.uint8))
        assert ts['empty'].shape == (0, 3)
        print('C-written safetensors file loads in Python: ok (%d tensors)' % len(ts))


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv3d(1, 2, 3)
        self.norm = torch.nn.GroupNorm(1, 2)
        self.bn = torch.nn.BatchNorm1d(2)


def make_converter():
    torch.manual_seed(3)
    m = Tiny()
    sd = {'model.' + k: v for k, v in m.state_dict().items()}
    ckpt = {'state_dict': sd, 'global_step': 42, 'epoch': 3,
            'hyper_parameters': {'dim': 4, 'betas': [0.5, 0.9]}}
    out = os.path.join(OUT, 'converted.safetensors')
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, 'tiny.ckpt')
        torch.save(ckpt, src)
        subprocess.run([sys.executable, 'tools/contrib/convert_checkpoint.py', '--exclude',
                        '*.num_batches_tracked', src, out], check=True)
        # a plain state_dict and an EMA pick from a diffusion-trainer dict
        plain = os.path.join(d, 'plain.pt')
        torch.save(m.state_dict(), plain)
        subprocess.run([sys.executable, 'tools/contrib/convert_checkpoint.py', '--keep-all', plain,
                        os.path.join(d, 'plain.safetensors')], check=True)
        got = load_file(os.path.join(d, 'plain.safetensors'))
        assert set(got) == set(m.state_dict()), got.keys()
        ema = {k: v + 1 for k, v in m.state_dict().items() if v.is_floating_point()}
        trainer = os.path.join(d, 'trainer.pt')
        torch.save({'step': 9, 'model': m.state_dict(), 'ema': ema}, trainer)
        subprocess.run([sys.executable, 'tools/contrib/convert_checkpoint.py', '--ema', trainer,
                        os.path.join(d, 'ema.safetensors')], check=True)
        got = load_file(os.path.join(d, 'ema.safetensors'))
        assert set(got) == set(ema) and all(torch.equal(got[k], ema[k]) for k in ema)
    got = load_file(out)
    want = {k: v for k, v in m.state_dict().items() if not k.endswith('num_batches_tracked')}
    assert set(got) == set(want), (sorted(got), sorted(want))
    assert all(torch.equal(got[k], want[k]) for k in want)
    with safe_open(out, 'pt') as f:
        meta = f.metadata()
    assert meta['step'] == '42' and meta['epoch'] == '3', meta
    write_stream(os.path.join(OUT, 'converted_values.lsdm'), {'conv.' + k: v.double() for k, v in want.items()})
    print('converter: ok (%d tensors, metadata %s)' % (len(got), sorted(meta)))


if __name__ == '__main__':
    os.makedirs(OUT, exist_ok=True)
    torch.set_default_dtype(torch.float32)
    make_losses()
    make_optim()
    make_safetensors()
    make_converter()
    check_c_written()
