# Shared by the bats files of the model programs (vq-*, ldm-*, the demo).

# key FILE INDEX KEY: a header key of record INDEX ($KEY_ABSENT, default "", if absent).
key() { vol-info --json --no-stats "$1" | python3 -c '
import json, sys
recs = [json.loads(l) for l in sys.stdin if l.startswith("{\"input\"")]
print(recs[int(sys.argv[1])]["keys"].get(sys.argv[2], sys.argv[3]))' "$2" "$3" "${KEY_ABSENT-}"; }
# field FILE INDEX EXPR: a python expression over record INDEX's vol-info JSON r.
field() { vol-info --json "$1" | python3 -c '
import json, sys
recs = [json.loads(l) for l in sys.stdin if l.startswith("{\"input\"")]
r = recs[int(sys.argv[1])]
print(eval(sys.argv[2]))' "$2" "$3"; }

# nii OUT NX NY NZ NT EXPR SROW12: a float32 NIfTI-1 (sform) with values
# EXPR of the voxel indices x, y, z, t (python).
nii() { python3 - "$@" <<'PY'
import math, struct, sys
out, nx, ny, nz, nt, expr = sys.argv[1], *map(int, sys.argv[2:6]), sys.argv[6]
srow = [float(v) for v in sys.argv[7].split(",")]
h = bytearray(352)
struct.pack_into("<i", h, 0, 348)
h[39] = ord("r")
struct.pack_into("<8h", h, 40, 4 if nt > 1 else 3, nx, ny, nz, nt, 1, 1, 1)
struct.pack_into("<hh", h, 70, 16, 32)
struct.pack_into("<8f", h, 76, 1, abs(srow[0]), abs(srow[5]), abs(srow[10]), 1, 1, 1, 1)
struct.pack_into("<fff", h, 108, 352, 1, 0)
struct.pack_into("<B", h, 123, 10)
struct.pack_into("<hh", h, 252, 0, 1)
struct.pack_into("<12f", h, 280, *srow)
h[344:348] = b"n+1\0"
vals = [eval(expr, {"math": math, "x": x, "y": y, "z": z, "t": t})
        for t in range(nt) for z in range(nz) for y in range(ny) for x in range(nx)]
open(out, "wb").write(bytes(h) + struct.pack("<%df" % len(vals), *vals))
PY
}
