"""Reference values for tests/c/test_segnet.c: the Med-LSDM segmentation
UNet3D (u_net/RecursiveUnet3D.py, copied below unchanged in substance) at a
small width (initial_filter_size 4, in 1, classes 3, num_downs 2), seeded
PyTorch init, one input 1x1x8x16x16 and its labels; the DC_and_CE loss of
the reference trainer (batch Dice, no background, smooth 1e-5), the
gradients of a few weights after one backward and those weights after one
Adam step (lr 1e-3). Computed in float64 from float32 weights and input.

Writes tests/fixtures/segnet/weights.safetensors (the state dict, names as
PyTorch's) and tests/fixtures/segnet/case.lsdm.
Run: /opt/torchenv/bin/python tests/torch/make_segnet.py
"""
import os
import sys

import numpy as np
import torch
from torch import nn
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from lsdmio import write_stream  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'segnet')


class UNet3D(nn.Module):
    def __init__(self, num_classes=3, in_channels=1, initial_filter_size=64, kernel_size=3, num_downs=3,
                 norm_layer=nn.InstanceNorm3d):
        super().__init__()
        f = initial_filter_size
        blk = Block(f * 2 ** (num_downs - 1), f * 2 ** num_downs, num_classes, kernel_size,
                    norm_layer=norm_layer, innermost=True)
        for i in range(1, num_downs):
            blk = Block(f * 2 ** (num_downs - (i + 1)), f * 2 ** (num_downs - i), num_classes, kernel_size,
                        submodule=blk, norm_layer=norm_layer)
        self.model = Block(in_channels, f, num_classes, kernel_size, submodule=blk, norm_layer=norm_layer,
                           outermost=True)

    def forward(self, x):
        return self.model(x)


class Block(nn.Module):
    def __init__(self, in_channels, out_channels, num_classes, kernel_size=3, submodule=None, outermost=False,
                 innermost=False, norm_layer=nn.InstanceNorm3d):
        super().__init__()
        self.outermost = outermost
        pool = nn.MaxPool3d(2, stride=2)
        conv1 = self.contract(in_channels, out_channels, kernel_size, norm_layer)
        conv2 = self.contract(out_channels, out_channels, kernel_size, norm_layer)
        conv3 = self.expand(out_channels * 2, out_channels, kernel_size)
        conv4 = self.expand(out_channels, out_channels, kernel_size)
        if outermost:
            model = [conv1, conv2, submodule, conv3, conv4, nn.Conv3d(out_channels, num_classes, kernel_size=1)]
        elif innermost:
            model = [pool, conv1, conv2, nn.ConvTranspose3d(in_channels * 2, in_channels, kernel_size=2, stride=2)]
        else:
            model = [pool, conv1, conv2, submodule, conv3, conv4,
                     nn.ConvTranspose3d(in_channels * 2, in_channels, kernel_size=2, stride=2)]
        self.model = nn.Sequential(*model)

    @staticmethod
    def contract(i, o, k, norm_layer):
        return nn.Sequential(nn.Conv3d(i, o, k, padding=1), norm_layer(o), nn.LeakyReLU(inplace=True))

    @staticmethod
    def expand(i, o, k):
        return nn.Sequential(nn.Conv3d(i, o, k, padding=1), nn.LeakyReLU(inplace=True))

    def forward(self, x):
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


def dc_and_ce(logits, y):
    """The reference DC_and_CE_loss({batch_dice 1, smooth 1e-5, smooth_in_nom 1, do_bg 0}, {})."""
    K = logits.shape[1]
    p = torch.softmax(logits, 1)
    g = torch.zeros_like(p).scatter_(1, y[:, None], 1)
    p, g = p[:, 1:], g[:, 1:]
    axes = (0, 2, 3, 4)
    tp = (p * g).sum(axes)
    fp = (p * (1 - g)).sum(axes)
    fn = ((1 - p) * g).sum(axes)
    dc = -((2 * tp + 1e-5) / (2 * tp + fp + fn + 1e-5)).mean()
    ce = nn.functional.cross_entropy(logits, y)
    return ce + dc, ce, dc


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    m = UNet3D(num_classes=3, in_channels=1, initial_filter_size=4, num_downs=2)
    sd = {k: v.detach().float().contiguous() for k, v in m.state_dict().items()}
    save_file(sd, os.path.join(OUT, 'weights.safetensors'))
    m = m.double()
    x = torch.randn(1, 1, 8, 16, 16).float().double()
    # labels: blobs of classes 1 and 2 on background
    zz, yy, xx = np.meshgrid(np.arange(8), np.arange(16), np.arange(16), indexing='ij')
    lab = np.zeros((8, 16, 16), np.int64)
    lab[(yy - 5) ** 2 + (xx - 6) ** 2 < 12] = 1
    lab[(yy - 11) ** 2 + (xx - 10) ** 2 < 6] = 2
    y = torch.from_numpy(lab)[None]
    x = x + torch.from_numpy(lab)[None, None].double()  # the image shows the classes a little
    x = x.float().double()
    logits = m(x)
    loss, ce, dc = dc_and_ce(logits, y)
    loss.backward()
    names = ['model.model.0.0.weight', 'model.model.0.0.bias', 'model.model.2.model.1.0.weight',
             'model.model.2.model.3.model.2.0.bias', 'model.model.2.model.3.model.3.weight',
             'model.model.2.model.3.model.3.bias', 'model.model.2.model.6.weight', 'model.model.3.0.weight',
             'model.model.5.weight', 'model.model.5.bias']
    params = dict(m.named_parameters())
    out = {'x': x.numpy(), 'y': y.numpy().astype(np.int32), 'logits': logits.detach().numpy(),
           'loss': np.array([loss.item(), ce.item(), dc.item()])}
    for n in names:
        out['grad.' + n] = params[n].grad.numpy()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    opt.step()
    for n in names:
        out['adam.' + n] = params[n].detach().numpy()
    write_stream(os.path.join(OUT, 'case.lsdm'), out)
    print('loss %.6f ce %.6f dice %.6f, %d parameters' % (loss.item(), ce.item(), dc.item(),
                                                         sum(p.numel() for p in m.parameters())))


if __name__ == '__main__':
    main()
