"""Write and read lsdm tensor streams (man 5 lsdm-stream) from Python.

Used by the fixture scripts under tests/torch/ (which need PyTorch) to store
reference values as small .lsdm files that the C tests read with the
project's own reader, so the tests pass without PyTorch installed.
Needs numpy and zstandard.
"""
import struct

import numpy as np
import zstandard

_DTYPES = {np.dtype('uint8'): 'u8', np.dtype('int16'): 'i16', np.dtype('int32'): 'i32',
           np.dtype('float16'): 'f16', np.dtype('float32'): 'f32'}
_NUMPY = {v: k for k, v in _DTYPES.items()}
_NUMPY['bf16'] = None


def _frame(kind, text, data=b''):
    body = text.encode() + b'END\n'
    hlen = (16 + len(body) + 63) // 64 * 64 - 16
    prefix = b'LSDM' + bytes([1, kind, 0, 0]) + struct.pack('<II', hlen, 0)
    raw = prefix + body + b'\0' * (hlen - len(body)) + data
    cctx = zstandard.ZstdCompressor(level=19, write_checksum=True, write_content_size=True)
    return cctx.compress(raw)


def write_stream(path, tensors, role='features', keys=None):
    """tensors: dict name -> array (float64 arrays are stored as f32)."""
    out = []
    for name, arr in tensors.items():
        a = np.asarray(arr)
        if a.dtype == np.float64:
            a = a.astype(np.float32)
        if a.ndim == 0:
            a = a.reshape(1)
        a = np.ascontiguousarray(a.astype(a.dtype.newbyteorder('<')))
        text = 'dtype: %s\nshape: %s\nname: %s\nrole: %s\n' % (
            _DTYPES[a.dtype], ','.join(str(s) for s in a.shape), name, role)
        for k, v in (keys or {}).items():
            text += '%s: %s\n' % (k, v)
        out.append(_frame(0, text, a.tobytes()))
    out.append(_frame(1, 'records: %d\n' % len(tensors)))
    with open(path, 'wb') as f:
        f.write(b''.join(out))


def read_stream(path):
    """[(keys, array)] of every tensor record of the stream at path (bf16
    records come back as float32)."""
    data = open(path, 'rb').read()
    out, pos = [], 0
    while pos < len(data):
        obj = zstandard.ZstdDecompressor().decompressobj()
        raw = obj.decompress(data[pos:])
        pos = len(data) - len(obj.unused_data)
        kind, hlen = raw[5], struct.unpack('<I', raw[8:12])[0]
        if kind != 0:
            continue
        text = raw[16:16 + hlen].split(b'END\n')[0].decode()
        keys = dict(line.split(': ', 1) for line in text.strip().split('\n'))
        shape = [int(v) for v in keys['shape'].split(',')]
        body = raw[16 + hlen:]
        if keys['dtype'] == 'bf16':
            a = (np.frombuffer(body, '<u2').astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(body, _NUMPY[keys['dtype']].newbyteorder('<'))
        out.append((keys, a.reshape(shape)))
    return out
