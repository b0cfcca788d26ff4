# Test data makers and readers for the viewer tests (03-vol-info,
# 04-vol-diff, 05-vol-png): small NIfTI files with exact values and a PNG
# reader, in python3 with the standard library only.

# mknii OUT DTYPE DxHxW EXPR [SPACING [SROW]]: a NIfTI-1 file (.nii) of
# dtype u8|i16|i32|f32 whose voxel (d,h,w) is the python expression EXPR
# (names d, h, w, nan, inf). SPACING "d,h,w" (default 1,1,1). SROW: the 12
# numbers of srow_x, srow_y, srow_z (NIfTI i,j,k columns = w,h,d) for the
# sform; default diag(spacing w, h, d). Written little-endian.
mknii() {
    python3 - "$@" <<'PY'
import struct, sys
out, dtype, shape, expr = sys.argv[1:5]
sp = [float(x) for x in (sys.argv[5] if len(sys.argv) > 5 else "1,1,1").split(",")]
D, H, W = (int(x) for x in shape.split("x"))
if len(sys.argv) > 6:
    srow = [float(x) for x in sys.argv[6].split()]
else:
    srow = [sp[2], 0, 0, 0, 0, sp[1], 0, 0, 0, 0, sp[0], 0]
code, bitpix, fmt = {"u8": (2, 8, "B"), "i16": (4, 16, "h"), "i32": (8, 32, "i"), "f32": (16, 32, "f")}[dtype]
env = {"nan": float("nan"), "inf": float("inf")}
vals = []
for d in range(D):
    for h in range(H):
        for w in range(W):
            env.update(d=d, h=h, w=w)
            vals.append(eval(expr, env))
hdr = bytearray(348)
struct.pack_into("<i", hdr, 0, 348)
struct.pack_into("<8h", hdr, 40, 3, W, H, D, 1, 1, 1, 1)
struct.pack_into("<hh", hdr, 70, code, bitpix)
struct.pack_into("<8f", hdr, 76, 1, sp[2], sp[1], sp[0], 1, 1, 1, 1)
struct.pack_into("<fff", hdr, 108, 352, 1, 0)
struct.pack_into("<hh", hdr, 252, 0, 2)
struct.pack_into("<12f", hdr, 280, *srow)
hdr[344:348] = b"n+1\0"
with open(out, "wb") as f:
    f.write(bytes(hdr) + b"\0" * 4 + struct.pack("<%d%s" % (len(vals), fmt), *vals))
PY
}

# pngq FILE QUERY...: facts about a PNG, one line per query:
#   size        "WIDTH HEIGHT CHANNELS" (1 grey, 3 RGB)
#   text        the tEXt Comment
#   px Y X      the pixel: "g" or "r,g,b"
#   row Y       the pixels of row Y, space-separated
#   sum         the sum of all samples
pngq() {
    python3 - "$@" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, text = 8, b"", {}
while pos < len(data):
    n, typ = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    pos += 12 + n
    if typ == b"IHDR":
        W, H, depth, ct = struct.unpack(">IIBB", body[:10])
        assert depth == 8
    elif typ == b"IDAT":
        idat += body
    elif typ == b"tEXt":
        k, v = body.split(b"\0", 1)
        text[k.decode()] = v.decode()
ch = {0: 1, 2: 3}[ct]
raw, stride, rows, prev, i = zlib.decompress(idat), W * ch, [], bytearray(W * ch), 0
for y in range(H):
    f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
    i += 1 + stride
    for x in range(stride):
        a = line[x - ch] if x >= ch else 0
        b = prev[x]
        c = prev[x - ch] if x >= ch else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + b) & 255
        elif f == 3: line[x] = (line[x] + ((a + b) >> 1)) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(line)
    prev = line
px = lambda y, x: ",".join(str(v) for v in rows[y][x * ch:(x + 1) * ch])
q = sys.argv[2:]
while q:
    w = q.pop(0)
    if w == "size": print(W, H, ch)
    elif w == "text": print(text.get("Comment", ""))
    elif w == "px": y, x = int(q.pop(0)), int(q.pop(0)); print(px(y, x))
    elif w == "row": y = int(q.pop(0)); print(" ".join(px(y, x) for x in range(W)))
    elif w == "sum": print(sum(sum(r) for r in rows))
    else: sys.exit("pngq: unknown query " + w)
PY
}

# json_get 'EXPR' < JSON Lines: evaluate a python expression over the list
# L of parsed lines (json.loads each) and print it.
json_get() {
    python3 -c 'import json, sys; L = [json.loads(l) for l in sys.stdin]; print(eval(sys.argv[1]))' "$1"
}
