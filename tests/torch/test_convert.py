"""Checks tools/contrib/convert_checkpoint.py on VQ-GAN checkpoints laid out
as the reference's Lightning .ckpt (tests/torch/vqgan_ref.py's model, plain
and SPADE, with a stand-in LPIPS perceptual_model.* and BatchNorm
num_batches_tracked counters):

- with no flags: exactly the model tensors (no num_batches_tracked, no
  perceptual_model.*), same values, float32, step/epoch/config metadata,
  and the same names as the fixture tests/fixtures/vqgan/NAME.safetensors;
- --keep-all keeps the dropped ones (num_batches_tracked stays int64);
- pickled hyper-parameters (Lightning stores the Hydra config object) are
  read as plain data without --trust (config metadata as JSON), as is with
  it; a file that is no checkpoint gives one error line and exit 1;
- the diffusion UNet (tests/torch/unet_ref.py, the small fixture config)
  inside a diffusion trainer's checkpoint ('model' and 'ema': the
  GaussianDiffusion state_dict, UNet under denoise_fn. next to the schedule
  buffers and the frozen vqgan.*): --select denoise_fn. (with --ema for the
  EMA weights) gives exactly the UNet's tensors, the rotary freqs buffers
  included, with the names of tests/fixtures/unet/small.safetensors.

    /opt/torchenv/bin/python tests/torch/test_convert.py     (exit 0: all passed)
"""
import json
import os
import subprocess
import sys
import tempfile
import types

import torch
from safetensors import safe_open
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from unet_ref import Unet3D_SPADE  # noqa: E402
from unet_ref import parse_config as unet_parse_config  # noqa: E402
from vqgan_ref import VQGAN, read_config  # noqa: E402

TOP = os.path.join(HERE, '..', '..')
CONVERT = os.path.join(TOP, 'tools', 'contrib', 'convert_checkpoint.py')
FIXTURES = os.path.join(TOP, 'tests', 'fixtures', 'vqgan')
LPIPS_NAMES = ['perceptual_model.net.slice1.0.weight', 'perceptual_model.lin0.model.1.weight']


def convert(*args):
    return subprocess.run([sys.executable, CONVERT] + list(args), capture_output=True, text=True)


def lightning_ckpt(model, hparams):
    sd = dict(model.state_dict())
    for k in LPIPS_NAMES:
        sd[k] = torch.randn(3, 2)
    return {'state_dict': sd, 'hyper_parameters': hparams, 'global_step': 1234, 'epoch': 5,
            'pytorch-lightning_version': '1.9.0',
            'optimizer_states': [{'state': {0: {'step': torch.tensor(3.0)}}, 'param_groups': []}]}


def check(name, d):
    cfg = read_config(os.path.join(FIXTURES, name + '.conf'))
    torch.manual_seed(1)
    model = VQGAN(cfg)
    with torch.no_grad():  # distinct running stats and counters, so a mix-up shows
        for k, v in model.state_dict().items():
            if 'running' in k or k.endswith('num_batches_tracked'):
                v.copy_(torch.randint(1, 50, v.shape))
    full = model.state_dict()
    want = {k: v for k, v in full.items() if not k.endswith('num_batches_tracked')}
    hp = {'cfg': {'model': dict(cfg, downsample=list(cfg['downsample'])), 'dataset': {'image_channels': 1}}}
    src, out = os.path.join(d, name + '.ckpt'), os.path.join(d, name + '.safetensors')
    torch.save(lightning_ckpt(model, hp), src)

    r = convert(src, out)
    assert r.returncode == 0, r.stderr
    got = load_file(out)
    assert set(got) == set(want), sorted(set(got) ^ set(want))
    assert all(got[k].dtype == torch.float32 and torch.equal(got[k], want[k].float()) for k in want)
    n_drop = len(full) - len(want) + len(LPIPS_NAMES)
    assert ('%d tensors dropped' % n_drop) in r.stderr, r.stderr
    with safe_open(out, 'pt') as f:
        meta = f.metadata()
    assert meta['step'] == '1234' and meta['epoch'] == '5' and meta['source_dict'] == 'state_dict', meta
    assert json.loads(meta['config']) == hp, meta['config']
    fixture = load_file(os.path.join(FIXTURES, name + '.safetensors'))
    assert set(fixture) == set(got), sorted(set(fixture) ^ set(got))
    assert all(fixture[k].shape == got[k].shape for k in got)
    for k in ('encoder.conv_first.conv.weight', 'encoder.conv_blocks.1.res.conv2.conv.bias',
              'pre_vq_conv.conv.weight', 'post_vq_conv.conv.weight', 'codebook.embeddings',
              'codebook.N', 'codebook.z_avg', 'image_discriminator.model1.1.running_var',
              'video_discriminator.model4.0.bias'):
        assert k in got, k

    r = convert('--keep-all', src, out)
    assert r.returncode == 0, r.stderr
    got = load_file(out)
    assert set(got) == set(full) | set(LPIPS_NAMES), sorted(set(got) ^ (set(full) | set(LPIPS_NAMES)))
    assert all(torch.equal(got[k], full[k]) and got[k].dtype == torch.int64
               for k in full if k.endswith('num_batches_tracked'))

    # Lightning pickles the Hydra config object: read as plain data without
    # --trust (an inert placeholder per class), as is with it
    torch.save(lightning_ckpt(model, {'cfg': types.SimpleNamespace(lr=3e-4, downsample=[4, 4, 4])}), src)
    for flags in ([], ['--trust']):
        r = convert(*flags, src, out)
        assert r.returncode == 0, r.stderr
        assert set(load_file(out)) == set(want)
        assert ('types.SimpleNamespace' in r.stderr) == (not flags), r.stderr
        with safe_open(out, 'pt') as f:
            conf = f.metadata()['config']
        if not flags:
            assert json.loads(conf) == {'cfg': {'lr': 3e-4, 'downsample': [4, 4, 4]}}, conf
    with open(src, 'wb') as f:  # not a checkpoint: one error line, exit 1
        f.write(b'PK\x03\x04 truncated')
    r = convert(src, out)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith('convert_checkpoint: error: '), r.stderr
    print('convert %s: ok (%d tensors, %d dropped by default)' % (name, len(want), n_drop))


def check_unet(d):
    with open(os.path.join(TOP, 'tests', 'fixtures', 'unet', 'small.conf')) as f:
        cfg = unet_parse_config(f.read())
    torch.manual_seed(2)
    unet, ema = Unet3D_SPADE(cfg), Unet3D_SPADE(cfg)  # different weights: a mix-up shows
    extra = {'betas': torch.rand(500), 'sqrt_alphas_cumprod': torch.rand(500),
             'vqgan.encoder.conv_first.conv.weight': torch.randn(4, 1, 3, 3, 3),
             'vqgan.codebook.embeddings': torch.randn(32, 4)}

    def diffusion_sd(m):  # GaussianDiffusion.state_dict(): denoise_fn + buffers + vqgan
        sd = {'denoise_fn.' + k: v for k, v in m.state_dict().items()}
        sd.update(extra)
        return sd

    src, out = os.path.join(d, 'model-1.pt'), os.path.join(d, 'unet.safetensors')
    torch.save({'step': 600, 'model': diffusion_sd(unet), 'ema': diffusion_sd(ema),
                'scaler': {'scale': 65536.0}}, src)
    fixture = load_file(os.path.join(TOP, 'tests', 'fixtures', 'unet', 'small.safetensors'))
    for flags, want in ((['--select', 'denoise_fn.'], unet), (['--ema', '--select', 'denoise_fn.'], ema)):
        r = convert(*flags, src, out)
        assert r.returncode == 0, r.stderr
        got, sd = load_file(out), want.state_dict()
        assert set(got) == set(sd) == set(fixture), sorted(set(got) ^ set(fixture))
        assert all(got[k].dtype == torch.float32 and torch.equal(got[k], sd[k]) for k in sd)
        assert all(fixture[k].shape == got[k].shape for k in got)
        assert 'init_temporal_attn.fn.fn.fn.rotary_emb.freqs' in got
        with safe_open(out, 'pt') as f:
            meta = f.metadata()
        assert meta['step'] == '600' and meta['source_dict'] == ('ema' if '--ema' in flags else 'model'), meta
    print('convert unet: ok (%d tensors from a diffusion trainer checkpoint, model and ema)' % len(got))


def main():
    with tempfile.TemporaryDirectory() as d:
        for name in ('plain', 'spade'):
            check(name, d)
        check_unet(d)


if __name__ == '__main__':
    main()
