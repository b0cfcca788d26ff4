#!/usr/bin/env python3
"""Make lsdm's LPIPS weights (libshared/lpips.h) from the two published files.

LPIPS (the VQ-GAN's perceptual loss) is torchvision's VGG16 `features` plus
five learned 1x1 "lin" layers. Download both yourself (nothing is fetched
here or at run time):

  vgg.pth               the lin layers: the `lpips` package's
                        lpips/weights/v0.1/vgg.pth (or taming-transformers'
                        vgg_lpips vgg.pth): lin0..lin4.model.1.weight
  vgg16-397923af.pth    torchvision's ImageNet VGG16 (features.I.weight/bias)

and write one safetensors file with the LPIPS module's state_dict names:
scaling_layer.shift/scale, net.sliceK.I.weight/bias (I the torchvision
feature index, K its slice: 0-3, 4-8, 9-15, 16-22, 23-29) and
linK.model.1.weight, all F32.

  convert_lpips.py vgg.pth vgg16-397923af.pth lpips.safetensors

A file that already holds net.slice* tensors (a whole LPIPS state_dict) may
be given as both inputs. Needs torch and safetensors.
"""
import argparse
import os
import re
import sys
import tempfile

SLICES = [(0, 4), (4, 9), (9, 16), (16, 23), (23, 30)]
CONVS = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
SHIFT = [-.030, -.088, -.188]
SCALE = [.458, .448, .450]


def die(msg):
    print('convert_lpips: error: %s' % msg, file=sys.stderr)
    sys.exit(1)


def load(path, torch):
    try:
        sd = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is a user error
        die('%s: cannot read: %s' % (path, e))
    for key in ('state_dict', 'model'):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        die('%s: not a state_dict' % path)
    if sd and all(k.startswith('module.') for k in sd):  # DataParallel
        sd = {k[len('module.'):]: v for k, v in sd.items()}
    # the reference VQ-GAN keeps its LPIPS as perceptual_model.*
    pm = {k[len('perceptual_model.'):]: v for k, v in sd.items() if k.startswith('perceptual_model.')}
    return pm or sd


def slice_of(i):
    return next(k + 1 for k, (a, b) in enumerate(SLICES) if a <= i < b)


def gather(lin_sd, vgg_sd, torch):
    out = {}
    for k in range(5):
        name = 'lin%d.model.1.weight' % k
        w = lin_sd.get(name, lin_sd.get('lin%d.weight' % k))
        if w is None:
            die('the lin file has no %s (is it lpips\' vgg.pth?)' % name)
        out[name] = w
    for i in CONVS:
        for part in ('weight', 'bias'):
            name = 'net.slice%d.%d.%s' % (slice_of(i), i, part)
            t = vgg_sd.get('features.%d.%s' % (i, part), vgg_sd.get(name))
            if t is None:
                die('the VGG16 file has no features.%d.%s (is it torchvision\'s vgg16?)' % (i, part))
            out[name] = t
    feats = [k for k in vgg_sd if re.match(r'features\.(\d+)\.', k)]
    extra = [k for k in feats if int(k.split('.')[1]) not in CONVS and int(k.split('.')[1]) < 30]
    if extra:
        die('unexpected VGG16 feature tensors %s (not VGG16 without batch norm?)' % extra[:3])
    out['scaling_layer.shift'] = torch.tensor(SHIFT).reshape(1, 3, 1, 1)
    out['scaling_layer.scale'] = torch.tensor(SCALE).reshape(1, 3, 1, 1)
    return {k: v.detach().float().contiguous() for k, v in out.items()}


def check(t):
    cin = 3
    for i in CONVS:
        w = t['net.slice%d.%d.weight' % (slice_of(i), i)]
        b = t['net.slice%d.%d.bias' % (slice_of(i), i)]
        if w.dim() != 4 or tuple(w.shape[1:]) != (cin, 3, 3) or tuple(b.shape) != (w.shape[0],):
            die('features.%d: weight %s, bias %s: want (Cout,%d,3,3), (Cout)'
                % (i, tuple(w.shape), tuple(b.shape), cin))
        cin = w.shape[0]
        if i in (2, 7, 14, 21, 28):
            k = (2, 7, 14, 21, 28).index(i)
            lw = t['lin%d.model.1.weight' % k]
            if tuple(lw.shape) != (1, cin, 1, 1):
                die('lin%d: shape %s, want (1,%d,1,1)' % (k, tuple(lw.shape), cin))


def main():
    ap = argparse.ArgumentParser(description='LPIPS weights for lsdm from vgg.pth + torchvision vgg16.')
    ap.add_argument('lin', help="lpips' vgg.pth (lin layers)")
    ap.add_argument('vgg', help="torchvision's vgg16-397923af.pth (features)")
    ap.add_argument('out', help='output .safetensors')
    a = ap.parse_args()
    import torch
    from safetensors.torch import save_file
    t = gather(load(a.lin, torch), load(a.vgg, torch), torch)
    check(t)
    meta = {'converter': 'convert_lpips/1', 'lin_from': os.path.basename(a.lin),
            'vgg_from': os.path.basename(a.vgg)}
    d = os.path.dirname(os.path.abspath(a.out))
    fd, tmp = tempfile.mkstemp(dir=d, prefix='.convert_lpips.')
    os.close(fd)
    try:
        save_file(t, tmp, metadata=meta)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, a.out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    print('%s: %d tensors, widths %s' % (a.out, len(t), [t['lin%d.model.1.weight' % k].shape[1]
                                                          for k in range(5)]), file=sys.stderr)


if __name__ == '__main__':
    main()
