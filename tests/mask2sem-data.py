#!/usr/bin/env python3
"""Test data and checks for tests/bats/06-mask2sem.bats (stdlib only).

  marked OUT MARKER [--dtype u8|i16|f32] [--frac]
      a small NIfTI-1 label volume (D,H,W = 6,10,12) with MARKER planted in
      descrip, intent_name, aux_file, db_name, a DICOM extension (ecode 2)
      and a JSON extension (ecode 32); --frac makes a float image with
      non-integral values. OUT ending in .gz is gzip-compressed.
  flip IN OUT AXES
      flip the voxel axes named in AXES (i, j, k) of a NIfTI-1 file and
      change its sform to match, so every voxel keeps its world position.
  stream OUT KEY=VALUE...
      a tensor stream of the same label volume with extra header keys
      (compressed with the zstd program).
  dump [--at C,D,H,W]...
      read a decompressed tensor stream (zstd -dc) on stdin; per record print
      its header lines, data-sha256, per-value counts of u8 data, and for
      one-hot data 'onehot: ok' (each voxel exactly one channel 1, the rest 0)
      and the argmax-sha256 of the class indices.
  nifti IN [--slices K0:K1] [--zero-outside]
      a NIfTI-1 integer volume's data-sha256 and per-value counts, of slices
      K0..K1-1 along k (z) only, or of the whole volume with the other slices
      set to 0 (--zero-outside).
"""
import array
import gzip
import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile

DT = {'u8': (2, 'B', 1), 'i16': (4, 'h', 2), 'f32': (16, 'f', 4)}
SHAPE = (6, 10, 12)  # D, H, W = NIfTI nz, ny, nx


def label_volume():
    """Labels 0..3 in blocks: deterministic, every class present."""
    d, h, w = SHAPE
    return [((z // 2) + (y // 5) * 2 + (x // 6)) % 4 for z in range(d) for y in range(h) for x in range(w)]


def put(buf, off, fmt, *vals):
    struct.pack_into('<' + fmt, buf, off, *vals)


def nifti_header(dims, code, bitpix, pix, srow, vox_offset, descrip=b'', intent=b'', aux=b'', db=b''):
    h = bytearray(348)
    put(h, 0, 'i', 348)
    h[14:14 + len(db)] = db                     # db_name[18]
    h[39] = ord('r')                            # regular
    put(h, 40, '8h', len(dims), *dims, *([1] * (7 - len(dims))))
    put(h, 70, 'hh', code, bitpix)
    put(h, 76, '8f', 1.0, *pix, *([1.0] * (7 - len(pix))))
    put(h, 108, 'f', vox_offset)
    put(h, 112, 'ff', 1.0, 0.0)                 # scl_slope, scl_inter
    put(h, 123, 'B', 10)                        # xyzt_units: mm, s
    h[148:148 + len(descrip)] = descrip         # descrip[80]
    h[228:228 + len(aux)] = aux                 # aux_file[24]
    put(h, 252, 'hh', 0, 1)                     # qform_code 0, sform_code 1
    put(h, 280, '12f', *srow)
    h[328:328 + len(intent)] = intent           # intent_name[16]
    h[344:348] = b'n+1\0'
    return h


def extension(code, data):
    size = (8 + len(data) + 15) // 16 * 16
    return struct.pack('<ii', size, code) + data + b'\0' * (size - 8 - len(data))


def write_file(path, data):
    if path.endswith('.gz'):
        data = gzip.compress(bytes(data), mtime=0)
    with open(path, 'wb') as f:
        f.write(data)


def cmd_marked(args):
    out, marker = args[0], args[1].encode()
    dtype = args[args.index('--dtype') + 1] if '--dtype' in args else 'u8'
    frac = '--frac' in args
    code, fmt, size = DT['f32' if frac else dtype]
    vals = label_volume()
    if frac:
        vals = [v + 0.25 * ((i % 3) + 1) for i, v in enumerate(vals)]
    data = struct.pack('<%d%s' % (len(vals), fmt), *vals)
    # (0010,0010) PatientName, explicit VR little endian, inside a DICOM extension
    name = marker + b'^DICOM^Doe'
    dicom = struct.pack('<HH2sH', 0x0010, 0x0010, b'PN', len(name)) + name
    js = json.dumps({'PatientName': marker.decode() + '-json', 'PatientID': marker.decode() + '-id'}).encode()
    exts = extension(2, dicom) + extension(32, js)
    d, h, w = SHAPE
    srow = (1.5, 0, 0, -10.0, 0, 1.25, 0, 20.0, 0, 0, 2.0, -3.5)
    hdr = nifti_header((w, h, d), code, size * 8, (1.5, 1.25, 2.0), srow, 352 + len(exts),
                       descrip=marker + b'-descrip', intent=marker[:10] + b'-int', aux=marker + b'-aux',
                       db=marker[:12] + b'-db')
    write_file(out, hdr + b'\1\0\0\0' + exts + data)


def read_nifti(path):
    raw = open(path, 'rb').read()
    if raw[:2] == b'\x1f\x8b':
        raw = gzip.decompress(raw)
    hdr = bytearray(raw[:348])
    dims = struct.unpack_from('<8h', hdr, 40)
    code, bitpix = struct.unpack_from('<hh', hdr, 70)
    off = int(struct.unpack_from('<f', hdr, 108)[0])
    nx, ny, nz = dims[1], dims[2], dims[3]
    nb = bitpix // 8
    return hdr, raw[348:off], raw[off:off + nx * ny * nz * nb], (nx, ny, nz), nb, code


def cmd_flip(args):
    src, out, axes = args
    hdr, ext, data, (nx, ny, nz), nb, code = read_nifti(src)
    if struct.unpack_from('<h', hdr, 254)[0] <= 0:
        sys.exit('flip: %s has no sform' % src)
    srow = list(struct.unpack_from('<12f', hdr, 280))
    row = nx * nb
    if 'i' in axes:  # reverse every row, voxel by voxel
        a = array.array({1: 'B', 2: 'H', 4: 'I', 8: 'Q'}[nb])
        a.frombytes(data)
        data = b''.join(a[p:p + nx][::-1].tobytes() for p in range(0, len(a), nx))
    if 'j' in axes:
        plane = ny * row
        data = b''.join(data[p + (ny - 1 - y) * row:p + (ny - y) * row]
                        for p in range(0, len(data), plane) for y in range(ny))
    if 'k' in axes:
        plane = ny * row
        data = b''.join(data[(nz - 1 - z) * plane:(nz - z) * plane] for z in range(nz))
    # column c of the sform negated, its translation moved to the far end
    for c, n in (('i', nx), ('j', ny), ('k', nz)):
        if c not in axes:
            continue
        col = 'ijk'.index(c)
        for r in range(3):
            srow[4 * r + 3] += srow[4 * r + col] * (n - 1)
            srow[4 * r + col] = -srow[4 * r + col]
    put(hdr, 252, 'hh', 0, struct.unpack_from('<h', hdr, 254)[0])
    put(hdr, 280, '12f', *srow)
    write_file(out, bytes(hdr) + ext + data)


def cmd_stream(args):
    out, kvs = args[0], args[1:]
    d, h, w = SHAPE
    data = bytes(label_volume())
    text = 'dtype: u8\nshape: 1,%d,%d,%d\n' % (d, h, w)
    text += ''.join('%s: %s\n' % tuple(kv.split('=', 1)) for kv in kvs) + 'END\n'
    frames = []
    for kind, body, payload in ((0, text, data), (1, 'records: 1\nEND\n', b'')):
        hl = (16 + len(body) + 63) // 64 * 64 - 16
        rec = b'LSDM' + bytes([1, kind, 0, 0]) + struct.pack('<II', hl, 0) + body.encode().ljust(hl, b'\0') + payload
        with tempfile.NamedTemporaryFile(delete=False) as f:
            f.write(rec)
        frames.append(subprocess.run(['zstd', '-q', '-c', f.name], check=True, capture_output=True).stdout)
        os.unlink(f.name)
    with open(out, 'wb') as f:
        f.write(b''.join(frames))


ONE = {'u8': b'\1', 'f16': b'\x00\x3c', 'bf16': b'\x80\x3f', 'f32': b'\x00\x00\x80\x3f',
       'i16': b'\1\0', 'i32': b'\1\0\0\0'}
SIZE = {'u8': 1, 'i16': 2, 'i32': 4, 'f16': 2, 'bf16': 2, 'f32': 4}


def onehot_planes(data, dtype, c, n):
    """0/1 bytes per voxel of each channel, or None if a value is not 0 or 1."""
    e, one = SIZE[dtype], ONE[dtype]
    planes = []
    for k in range(c):
        ch = data[k * n * e:(k + 1) * n * e]
        bits = None
        for j in range(e):
            p = ch[j::e]
            if one[j] == 0:
                if p.count(0) != n:
                    return None
                continue
            t = p.translate(bytes(1 if v == one[j] else (0 if v == 0 else 2) for v in range(256)))
            if t.count(2) or (bits is not None and t != bits):
                return None
            bits = t
        planes.append(bits)
    return planes


def cmd_dump(args):
    ats = [tuple(int(v) for v in args[i + 1].split(',')) for i, a in enumerate(args) if a == '--at']
    raw = sys.stdin.buffer.read()
    pos, index = 0, 0
    while pos < len(raw):
        assert raw[pos:pos + 4] == b'LSDM', 'bad magic at %d' % pos
        kind = raw[pos + 5]
        hl = struct.unpack_from('<I', raw, pos + 8)[0]
        text = raw[pos + 16:pos + 16 + hl].rstrip(b'\0').decode()
        keys = dict(l.split(': ', 1) for l in text.splitlines() if ': ' in l)
        pos += 16 + hl
        if kind == 1:
            print('end: ' + keys.get('records', '?'))
            continue
        shape = [int(v) for v in keys['shape'].split(',')]
        numel = 1
        for v in shape:
            numel *= v
        data = raw[pos:pos + numel * SIZE[keys['dtype']]]
        pos += len(data)
        print('record %d' % index)
        index += 1
        print(text.replace('END\n', '').rstrip('\n'))
        print('data-sha256: ' + hashlib.sha256(data).hexdigest())
        if keys['dtype'] == 'u8' and keys.get('encoding') != 'onehot':
            for v in range(256):
                n = data.count(bytes([v]))
                if n:
                    print('count %d: %d' % (v, n))
        if keys.get('encoding') == 'onehot':
            c, n = shape[0], numel // shape[0]
            planes = onehot_planes(data, keys['dtype'], c, n)
            total = sum(int.from_bytes(p, 'little') for p in planes) if planes else 0
            ok = planes is not None and total == int.from_bytes(b'\1' * n, 'little')
            print('onehot: ' + ('ok' if ok else 'BAD'))
            if ok:
                idx = sum(k * int.from_bytes(p, 'little') for k, p in enumerate(planes)).to_bytes(n, 'little')
                print('argmax-sha256: ' + hashlib.sha256(idx).hexdigest())
        e = SIZE[keys['dtype']]
        for at in ats:
            flat = 0
            for a, s in zip(at, shape):
                flat = flat * s + a
            v = data[flat * e:(flat + 1) * e]
            print('at %s: %s' % (','.join(map(str, at)), v.hex()))


def cmd_nifti(args):
    hdr, ext, data, (nx, ny, nz), nb, code = read_nifti(args[0])
    assert nb == 1, 'nifti: only u8 volumes'
    k0, k1 = 0, nz
    if '--slices' in args:
        k0, k1 = (int(v) for v in args[args.index('--slices') + 1].split(':'))
    plane = nx * ny
    part = data[k0 * plane:k1 * plane]
    if '--zero-outside' in args:
        part = bytes(k0 * plane) + part + bytes((nz - k1) * plane)
    print('data-sha256: ' + hashlib.sha256(part).hexdigest())
    for v in range(256):
        n = part.count(bytes([v]))
        if n:
            print('count %d: %d' % (v, n))


if __name__ == '__main__':
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet under | head
    cmds = {'marked': cmd_marked, 'flip': cmd_flip, 'stream': cmd_stream, 'dump': cmd_dump, 'nifti': cmd_nifti}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.exit(__doc__)
    cmds[sys.argv[1]](sys.argv[2:])
