#!/usr/bin/env python3
"""Convert a MedicalNet 3D ResNet checkpoint (PyTorch .pth) to the
safetensors file that fid3d --weights loads.

MedicalNet (https://github.com/Tencent/MedicalNet) saves
{'state_dict': model.state_dict(), ...} of an nn.DataParallel model; the
Med-LSDM reference (evaluation/3d_fid.py) loads resnet_50.pth that way.
This script:
  - takes ckpt['state_dict'] (or the file itself if it is a state_dict),
  - strips the "module." prefix (DataParallel),
  - drops conv_seg.* (the segmentation head: fid3d uses the pooled
    features of layer4) and *.num_batches_tracked (BatchNorm counters),
  - infers the layout from the names (BasicBlock or Bottleneck, blocks per
    layer, shortcut A or B, width = conv1's output channels) and stores it
    as metadata arch=resnetNN, shortcut=A|B, width=N, which fid3d reads.

    convert_medicalnet.py resnet_50.pth resnet50.safetensors
    convert_medicalnet.py --list resnet_10.pth

Needs torch and safetensors (pip install torch safetensors).
"""
import argparse
import os
import sys

import torch
from safetensors.torch import save_file

LAYOUTS = {(1, 1, 1, 1, False): 10, (2, 2, 2, 2, False): 18, (3, 4, 6, 3, False): 34,
           (3, 4, 6, 3, True): 50}


def load_state_dict(path):
    ckpt = torch.load(path, map_location='cpu', weights_only=False)
    sd = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict):
        sys.exit('convert_medicalnet: %s holds no state_dict' % path)
    out = {}
    for k, v in sd.items():
        if k.startswith('module.'):
            k = k[len('module.'):]
        if k.startswith('conv_seg.') or k.endswith('.num_batches_tracked'):
            continue
        if torch.is_tensor(v):
            out[k] = v
    return out


def infer_layout(sd):
    """(depth, shortcut, width) of a MedicalNet ResNet state_dict."""
    if 'conv1.weight' not in sd:
        sys.exit('convert_medicalnet: no conv1.weight: not a MedicalNet ResNet')
    bottleneck = 'layer1.0.conv3.weight' in sd
    blocks = []
    for layer in range(1, 5):
        n = 0
        while 'layer%d.%d.conv1.weight' % (layer, n) in sd:
            n += 1
        blocks.append(n)
    depth = LAYOUTS.get(tuple(blocks) + (bottleneck,))
    if depth is None:
        sys.exit('convert_medicalnet: blocks per layer %s (%s) match no resnet10/18/34/50'
                 % (blocks, 'Bottleneck' if bottleneck else 'BasicBlock'))
    shortcut = 'B' if any('.downsample.0.weight' in k for k in sd) else 'A'
    return depth, shortcut, int(sd['conv1.weight'].shape[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('input', help='MedicalNet .pth checkpoint')
    ap.add_argument('output', nargs='?', help='safetensors file to write')
    ap.add_argument('--list', action='store_true', help='print the tensors and the layout, write nothing')
    ap.add_argument('--dtype', choices=['f32', 'f16'], default='f32', help='stored float type (default f32)')
    a = ap.parse_args()
    sd = load_state_dict(a.input)
    depth, shortcut, width = infer_layout(sd)
    if a.list:
        for k, v in sd.items():
            print('%-40s %-8s %s' % (k, str(v.dtype).replace('torch.', ''), tuple(v.shape)))
        print('arch=resnet%d shortcut=%s width=%d' % (depth, shortcut, width))
        return
    if not a.output:
        sys.exit('convert_medicalnet: no output file (or --list)')
    dt = torch.float16 if a.dtype == 'f16' else torch.float32
    tensors = {k: v.detach().to(dt).contiguous() for k, v in sd.items()}
    meta = {'arch': 'resnet%d' % depth, 'shortcut': shortcut, 'width': str(width),
            'converter': 'convert_medicalnet.py', 'converted_from': os.path.basename(a.input)}
    save_file(tensors, a.output, metadata=meta)
    print('%s: %d tensors, arch=resnet%d shortcut=%s width=%d' % (a.output, len(tensors), depth, shortcut, width),
          file=sys.stderr)


if __name__ == '__main__':
    main()
