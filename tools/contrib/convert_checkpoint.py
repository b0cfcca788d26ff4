#!/usr/bin/env python3
"""Convert a PyTorch checkpoint of the reference code to lsdm's safetensors.

Reads a PyTorch Lightning checkpoint (.ckpt: the Med-LSDM / medicaldiffusion
VQ-GAN), a diffusion trainer checkpoint (.pt with 'model' and 'ema' state
dicts: Unet3D_SPADE inside GaussianDiffusion) or a plain state_dict, and
writes every tensor under its PyTorch name (the identity mapping: lsdm's
model code uses the reference names; see tools/contrib/README.md).

Needs torch and safetensors. Not needed at run time by any lsdm program.

  convert_checkpoint.py vqgan.ckpt vqgan.safetensors
  convert_checkpoint.py --ema --select denoise_fn. model-100.pt unet.safetensors
  convert_checkpoint.py --list vqgan.ckpt
"""
import argparse
import fnmatch
import json
import os
import sys
import tempfile

VERSION = '1'
# prefixes stripped when every kept name carries them (the identity otherwise)
WRAPPER_PREFIXES = ('state_dict.', 'module.', 'model.')
DTYPES = {'f32': 'float32', 'f16': 'float16', 'bf16': 'bfloat16', 'keep': None}


def die(msg):
    print('convert_checkpoint: error: %s' % msg, file=sys.stderr)
    sys.exit(1)


def load(path, trust):
    import pickle
    import torch
    try:
        return torch.load(path, map_location='cpu', weights_only=not trust)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds
        refused = isinstance(e, pickle.UnpicklingError) or 'weights_only' in str(e)
        hint = ' (if you trust the file, --trust allows the pickled objects Lightning stores)' if refused and not trust else ''
        die('%s: cannot load: %s%s' % (path, str(e).splitlines()[0] if str(e) else type(e).__name__, hint))


def is_state_dict(d):
    import torch
    return isinstance(d, dict) and d and all(isinstance(v, torch.Tensor) for v in d.values())


def pick_state_dict(obj, ema):
    """(state_dict, where it came from): Lightning's 'state_dict', the
    trainer's 'ema' (with --ema) or 'model', or the object itself."""
    if not isinstance(obj, dict):
        if hasattr(obj, 'state_dict'):
            return obj.state_dict(), 'module'
        die('not a checkpoint dictionary (%s)' % type(obj).__name__)
    if ema:
        for k in ('ema', 'ema_model', 'model_ema', 'ema_state_dict'):
            if k in obj and isinstance(obj[k], dict):
                return obj[k], k
        die("--ema: no EMA weights ('ema') in the checkpoint; keys: %s" % ', '.join(map(str, obj)))
    for k in ('state_dict', 'model', 'model_state_dict'):
        if k in obj and isinstance(obj[k], dict):
            return obj[k], k
    if is_state_dict(obj):
        return obj, 'state_dict'
    die('no state_dict in the checkpoint; keys: %s' % ', '.join(map(str, obj)))


def strip_common(names):
    """Repeatedly strip a wrapper prefix that every name shares."""
    names = list(names)
    stripped = []
    changed = True
    while changed and names:
        changed = False
        for p in WRAPPER_PREFIXES:
            if all(n.startswith(p) for n in names):
                names = [n[len(p):] for n in names]
                stripped.append(p)
                changed = True
    return names, stripped


def convert(sd, args):
    import torch
    items = [(k, v) for k, v in sd.items() if isinstance(v, torch.Tensor)]
    if args.select:
        items = [(k[len(args.select):], v) for k, v in items if k.startswith(args.select)]
        if not items:
            die('no tensor name starts with %r' % args.select)
    names, stripped = strip_common(k for k, _ in items)
    out = {}
    for name, (_, v) in zip(names, items):
        for p in args.strip:
            if name.startswith(p):
                name = name[len(p):]
        if any(fnmatch.fnmatchcase(name, pat) for pat in args.exclude):
            continue
        if name in out:
            die('two tensors map to the name %r' % name)
        v = v.detach().to('cpu')
        if v.is_floating_point() and DTYPES[args.dtype]:
            v = v.to(getattr(torch, DTYPES[args.dtype]))
        out[name] = v.contiguous().clone()  # no shared storage for safetensors
    if not out:
        die('nothing to write')
    return out, stripped


def metadata(obj, src, where, stripped, extra):
    meta = {'converter': 'lsdm convert_checkpoint.py ' + VERSION,
            'converted_from': os.path.basename(src), 'source_dict': where}
    if stripped:
        meta['stripped_prefixes'] = ','.join(stripped)
    if isinstance(obj, dict):
        for k, mk in (('global_step', 'step'), ('step', 'step'), ('epoch', 'epoch')):
            if isinstance(obj.get(k), int):
                meta[mk] = str(obj[k])
        hp = obj.get('hyper_parameters')
        if hp is not None:
            meta['config'] = json.dumps(hp, default=str, sort_keys=True)
    for kv in extra:
        k, sep, v = kv.partition('=')
        if not sep or not k:
            die('--meta wants KEY=VALUE, got %r' % kv)
        meta[k] = v
    return meta


def main():
    ap = argparse.ArgumentParser(prog='convert_checkpoint.py', description=__doc__.split('\n')[0])
    ap.add_argument('input', help='.ckpt (Lightning) or .pt (state_dict or trainer dict)')
    ap.add_argument('output', nargs='?', help='.safetensors to write (not with --list)')
    ap.add_argument('--ema', action='store_true', help="take the EMA weights ('ema') instead of 'model'")
    ap.add_argument('--select', metavar='PREFIX', help='keep only names under PREFIX, without it (e.g. denoise_fn.)')
    ap.add_argument('--strip', metavar='PREFIX', action='append', default=[], help='strip PREFIX where present')
    ap.add_argument('--exclude', metavar='GLOB', action='append', default=[],
                    help='drop names matching GLOB (after stripping), e.g. "*.num_batches_tracked"')
    ap.add_argument('--dtype', choices=sorted(DTYPES), default='f32', help='float tensors stored as (default f32)')
    ap.add_argument('--meta', metavar='KEY=VALUE', action='append', default=[], help='extra metadata')
    ap.add_argument('--trust', action='store_true', help='allow arbitrary pickled objects (Lightning hyper-parameters)')
    ap.add_argument('--list', action='store_true', help='print the tensors and metadata; write nothing')
    args = ap.parse_args()
    if not args.list and not args.output:
        ap.error('an output file is needed (or --list)')

    obj = load(args.input, args.trust)
    sd, where = pick_state_dict(obj, args.ema)
    tensors, stripped = convert(sd, args)
    meta = metadata(obj, args.input, where, stripped, args.meta)
    if args.list:
        for k, v in tensors.items():
            print('%s\t%s\t%s' % (k, str(v.dtype).replace('torch.', ''), ','.join(map(str, v.shape)) or '()'))
        for k, v in sorted(meta.items()):
            print('# %s: %s' % (k, v))
        return
    from safetensors.torch import save_file
    d = os.path.dirname(os.path.abspath(args.output))
    fd, tmp = tempfile.mkstemp(dir=d, prefix='.convert-', suffix='.tmp')
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp made it 0600
        with open(tmp, 'rb') as f:
            os.fsync(f.fileno())
        os.replace(tmp, args.output)  # atomic: the old file stays until this
    except BaseException:
        os.unlink(tmp)
        raise
    print('convert_checkpoint: %d tensors -> %s' % (len(tensors), args.output), file=sys.stderr)


if __name__ == '__main__':
    main()
