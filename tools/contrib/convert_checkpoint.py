#!/usr/bin/env python3
"""Convert a PyTorch checkpoint of the reference code to lsdm's safetensors.

Reads a PyTorch Lightning checkpoint (.ckpt: the Med-LSDM / medicaldiffusion
VQ-GAN), a diffusion trainer checkpoint (.pt with 'model' and 'ema' state
dicts: Unet3D_SPADE inside GaussianDiffusion) or a plain state_dict, and
writes every tensor under its PyTorch name (the identity mapping: lsdm's
model code uses the reference names; see tools/contrib/README.md).
BatchNorm's *.num_batches_tracked counters and the VQ-GAN's LPIPS network
(perceptual_model.*) are not model tensors for lsdm and are dropped unless
--keep-all is given.

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

VERSION = '2'  # 2: drops num_batches_tracked and perceptual_model.* by default
# prefixes stripped when every kept name carries them (the identity otherwise)
WRAPPER_PREFIXES = ('state_dict.', 'module.', 'model.')
# dropped by default (--keep-all keeps them): not model tensors for lsdm
DEFAULT_EXCLUDE = ('*.num_batches_tracked', 'perceptual_model.*')
DTYPES = {'f32': 'float32', 'f16': 'float16', 'bf16': 'bfloat16', 'keep': None}


def die(msg):
    print('convert_checkpoint: error: %s' % msg, file=sys.stderr)
    sys.exit(1)


class Placeholder:
    """Stands in for a pickled class that is not loaded (the Hydra/OmegaConf
    config Lightning stores, enums, typing.Any): inert, keeps its state."""

    def __init__(self, *args, **kwargs):
        if args:
            self.__dict__['args'] = list(args)

    def __setstate__(self, state):
        self.__dict__.update(state if isinstance(state, dict) else {'state': state})


def placeholder(path):
    mod, _, name = path.rpartition('.')
    cls = type(name, (Placeholder,), {})
    cls.__module__, cls.__qualname__ = mod, name
    return cls


def load(path, trust):
    """torch.load; without --trust with weights_only=True, every class it
    refuses replaced by an inert Placeholder (nothing of the file's choosing
    runs), so a Lightning checkpoint loads without its config classes."""
    import pickle
    import re
    import torch
    stubs = []
    while True:
        try:
            if trust:
                return torch.load(path, map_location='cpu', weights_only=False)
            with torch.serialization.safe_globals(stubs):
                obj = torch.load(path, map_location='cpu', weights_only=True)
            if stubs:
                print('convert_checkpoint: read as plain data (pickled classes not loaded): %s'
                      % ', '.join('%s.%s' % (c.__module__, c.__qualname__) for c in stubs), file=sys.stderr)
            return obj
        except Exception as e:  # noqa: BLE001 - torch raises many kinds
            m = re.search(r'GLOBAL ([\w.]+) was not an allowed global', str(e))
            if not trust and isinstance(e, pickle.UnpicklingError) and m and len(stubs) < 200:
                stubs.append(placeholder(m.group(1)))
                continue
            refused = isinstance(e, pickle.UnpicklingError) or 'weights_only' in str(e)
            hint = ' (if you trust the file, --trust loads any pickled object)' if refused and not trust else ''
            die('%s: cannot load: %s%s' % (path, str(e).splitlines()[0] if str(e) else type(e).__name__, hint))


def plain(obj):
    """Placeholders (an OmegaConf config: _content of nodes with _val) as
    plain dicts and lists for the JSON metadata."""
    if isinstance(obj, Placeholder):
        d = vars(obj)
        for k in ('_content', '_val', 'args', 'state'):
            if k in d:
                return plain(d[k])
        return {k: plain(v) for k, v in d.items() if not k.startswith('_')}
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


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
    exclude = list(args.exclude) + ([] if args.keep_all else list(DEFAULT_EXCLUDE))
    out = {}
    dropped = 0
    for name, (_, v) in zip(names, items):
        for p in args.strip:
            if name.startswith(p):
                name = name[len(p):]
        if any(fnmatch.fnmatchcase(name, pat) for pat in exclude):
            dropped += 1
            continue
        if name in out:
            die('two tensors map to the name %r' % name)
        v = v.detach().to('cpu')
        if v.is_floating_point() and DTYPES[args.dtype]:
            v = v.to(getattr(torch, DTYPES[args.dtype]))
        out[name] = v.contiguous().clone()  # no shared storage for safetensors
    if not out:
        die('nothing to write')
    if dropped:
        print('convert_checkpoint: %d tensors dropped (%s)' % (dropped, ', '.join(exclude)), file=sys.stderr)
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
            meta['config'] = json.dumps(plain(hp), default=str, sort_keys=True)
    for kv in extra:
        k, sep, v = kv.partition('=')
        if not sep or not k:
            die('--meta wants KEY=VALUE, got %r' % kv)
        meta[k] = v
    return meta


def main():
    ap = argparse.ArgumentParser(
        prog='convert_checkpoint.py', description=__doc__.split('\n')[0],
        epilog='By default %s are dropped: they are not model tensors for lsdm (BatchNorm '
        'step counters, the VQ-GAN\'s LPIPS network). --keep-all keeps them.' % ' and '.join(DEFAULT_EXCLUDE))
    ap.add_argument('input', help='.ckpt (Lightning) or .pt (state_dict or trainer dict)')
    ap.add_argument('output', nargs='?', help='.safetensors to write (not with --list)')
    ap.add_argument('--ema', action='store_true', help="take the EMA weights ('ema') instead of 'model'")
    ap.add_argument('--select', metavar='PREFIX', help='keep only names under PREFIX, without it (e.g. denoise_fn.)')
    ap.add_argument('--strip', metavar='PREFIX', action='append', default=[], help='strip PREFIX where present')
    ap.add_argument('--exclude', metavar='GLOB', action='append', default=[],
                    help='also drop names matching GLOB (after stripping)')
    ap.add_argument('--keep-all', action='store_true',
                    help='keep %s (dropped by default)' % ' and '.join(DEFAULT_EXCLUDE))
    ap.add_argument('--dtype', choices=sorted(DTYPES), default='f32', help='float tensors stored as (default f32)')
    ap.add_argument('--meta', metavar='KEY=VALUE', action='append', default=[], help='extra metadata')
    ap.add_argument('--trust', action='store_true',
                    help='load every pickled object as is (may run code from the file); without it, '
                    'classes outside torch\'s safe list (e.g. the Hydra config Lightning stores) '
                    'are read as plain data')
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
