load helper
load viewers
setup() {
    setup_tmp
    # D=4, H=8, W=16; every voxel tells its own (d, h, w); RAS by default
    mknii "$TMP/ramp.nii" f32 4x8x16 "50*d + 5*h + w"
}

# seq_row FIRST STEP N: "FIRST FIRST+STEP ..." (N numbers)
seq_row() { seq -s ' ' "$1" "$2" $(($1 + $2 * ($3 - 1))); }

@test "vol-png: axial slice, exact grey values, anterior up for RAS" {
    run_tool 0 vol-png "$TMP/ramp.nii" --slice 2 --window 0,255 -o "$TMP/ax.png"
    [ -z "$output" ]
    run pngq "$TMP/ax.png" size text row 0 row 7
    [ "${lines[0]}" = "16 8 1" ]
    [ "${lines[1]}" = "vol-png/0.1.0 record=0 name=ramp plane=axial slice=2 window=0,255" ]
    # h points to A, so the top row is the last h (7): 100 + 35 + w
    [ "${lines[2]}" = "$(seq_row 135 1 16)" ]
    [ "${lines[3]}" = "$(seq_row 100 1 16)" ]
    # LPS: h points to P, rows stay in array order
    mknii "$TMP/lps.nii" f32 4x8x16 "50*d + 5*h + w" 1,1,1 "-1 0 0 0  0 -1 0 0  0 0 1 0"
    run_tool 0 vol-png "$TMP/lps.nii" --slice 2 --window 0,255 -o "$TMP/lps.png"
    [ "$(pngq "$TMP/lps.png" row 0)" = "$(seq_row 100 1 16)" ]
}

@test "vol-png: coronal and sagittal planes, superior up" {
    run_tool 0 vol-png "$TMP/ramp.nii" --plane coronal --slice 3 --window 0,255 -o "$TMP/cor.png"
    run pngq "$TMP/cor.png" size row 0 row 3
    [ "${lines[0]}" = "16 4 1" ]
    [ "${lines[1]}" = "$(seq_row 165 1 16)" ]   # d = 3 (superior) on top
    [ "${lines[2]}" = "$(seq_row 15 1 16)" ]
    run_tool 0 vol-png "$TMP/ramp.nii" --plane sagittal --slice 5 --window 0,255 -o "$TMP/sag.png"
    run pngq "$TMP/sag.png" size row 0 row 3
    [ "${lines[0]}" = "8 4 1" ]
    [ "${lines[1]}" = "$(seq_row 155 5 8)" ]    # columns are h
    [ "${lines[2]}" = "$(seq_row 5 5 8)" ]
    # default slice: the middle (count / 2)
    run_tool 0 vol-png "$TMP/ramp.nii" --plane sagittal -o "$TMP/mid.png"
    [[ "$(pngq "$TMP/mid.png" text)" == *" plane=sagittal slice=8 "* ]]
    run_tool 0 vol-png "$TMP/ramp.nii" --plane coronal -o "$TMP/mid.png"
    [[ "$(pngq "$TMP/mid.png" text)" == *" plane=coronal slice=4 "* ]]
}

@test "vol-png: default window is the 1st to 99th percentile of the volume" {
    run_tool 0 vol-png "$TMP/ramp.nii" --slice 0 -o "$TMP/w.png"
    pngq "$TMP/w.png" text row 0 row 7 >"$TMP/q"
    python3 - "$TMP/q" <<'PY'
import sys
v = sorted(50*d + 5*h + w for d in range(4) for h in range(8) for w in range(16))
def pct(p):
    pos = p / 100 * (len(v) - 1); k = int(pos)
    return v[k] + (pos - k) * (v[min(k + 1, len(v) - 1)] - v[k])
lo, hi = pct(1), pct(99)
out = open(sys.argv[1]).read().split("\n")
assert out[0].endswith(" window=%.9g,%.9g" % (lo, hi)), (out[0], lo, hi)
for i, h in ((1, 7), (2, 0)):  # rows 0 and 7 of the picture: h = 7 and 0
    want = [max(0, min(255, round(255.0 * (5*h + w - lo) / (hi - lo)))) for w in range(16)]
    assert out[i] == " ".join(map(str, want)), (out[i], want)
PY
    # many repeated values (quickselect with runs of equal values)
    mknii "$TMP/rep.nii" f32 4x8x16 "((d*37 + h*11 + w*5) % 101) ** 1.5"
    run_tool 0 vol-png "$TMP/rep.nii" --montage 2x2 -o "$TMP/rep.png"
    pngq "$TMP/rep.png" text >"$TMP/q"
    python3 - "$TMP/q" <<'PY'
import struct, sys
f32 = lambda x: struct.unpack("<f", struct.pack("<f", x))[0]  # the file holds f32
v = sorted(f32(((d*37 + h*11 + w*5) % 101) ** 1.5) for d in range(4) for h in range(8) for w in range(16))
def pct(p):
    pos = p / 100 * (len(v) - 1); k = int(pos)
    return v[k] + (pos - k) * (v[min(k + 1, len(v) - 1)] - v[k])
text = open(sys.argv[1]).read().strip()
assert text.endswith(" window=%.9g,%.9g" % (pct(1), pct(99))), (text, pct(1), pct(99))
PY
}

@test "vol-png: square pixels from the spacing, --scale" {
    mknii "$TMP/thick.nii" f32 4x8x16 "50*d + 5*h + w" 3,1,1
    run_tool 0 vol-png "$TMP/thick.nii" --plane coronal --slice 0 --window 0,255 -o "$TMP/c.png"
    run pngq "$TMP/c.png" size row 0 row 2 row 3 row 11
    [ "${lines[0]}" = "16 12 1" ]                 # 4 slices of 3 mm: 12 rows of 1 mm
    [ "${lines[1]}" = "$(seq_row 150 1 16)" ]
    [ "${lines[2]}" = "${lines[1]}" ]
    [ "${lines[3]}" = "$(seq_row 100 1 16)" ]
    [ "${lines[4]}" = "$(seq_row 0 1 16)" ]
    run_tool 0 vol-png "$TMP/thick.nii" --plane sagittal --window 0,255 -o "$TMP/s.png"
    [ "$(pngq "$TMP/s.png" size)" = "8 12 1" ]
    run_tool 0 vol-png "$TMP/thick.nii" --window 0,255 -o "$TMP/a.png"
    [ "$(pngq "$TMP/a.png" size)" = "16 8 1" ]
    # --scale 2: every pixel twice each way; --scale 0.5: every other one
    run_tool 0 vol-png "$TMP/ramp.nii" --slice 2 --window 0,255 --scale 2 -o "$TMP/x2.png"
    run pngq "$TMP/x2.png" size row 0 row 1
    [ "${lines[0]}" = "32 16 1" ]
    [ "${lines[1]}" = "$(seq_row 135 1 16 | sed -E 's/([0-9]+)/\1 \1/g')" ]
    [ "${lines[2]}" = "${lines[1]}" ]
    run_tool 0 vol-png "$TMP/ramp.nii" --slice 2 --window 0,255 --scale 0.5 -o "$TMP/half.png"
    run pngq "$TMP/half.png" size row 0
    [ "${lines[0]}" = "8 4 1" ]
    [ "${lines[1]}" = "$(seq_row 131 2 8)" ]     # h = 6, w = 1, 3, 5, ...
}

@test "vol-png: a label map in the fixed palette" {
    mknii "$TMP/lab.nii" u8 1x2x4 "[0, 1, 2, 3, 4, 5, 20, 21][h*4 + w]"
    vol-import --labels "$TMP/lab.nii" -o "$TMP/lab.lsdm"
    run_tool 0 vol-png "$TMP/lab.lsdm" -o "$TMP/lab.png"
    run pngq "$TMP/lab.png" size row 0 row 1 text
    [ "${lines[0]}" = "4 2 3" ]
    [ "${lines[1]}" = "0,130,200 245,130,48 128,128,128 230,25,75" ]   # h = 1 on top: 4 5 20 21
    [ "${lines[2]}" = "0,0,0 230,25,75 60,180,75 255,225,25" ]         # 0 1 2 3
    [[ "${lines[3]}" != *window* ]]
    # a semantic record: class indices, or one-hot channels (argmax)
    phantom --seed 3 --shape 4x16x16 --masks "$TMP/m.lsdm" -o /dev/null
    run_tool 0 vol-png "$TMP/m.lsdm" -o "$TMP/m.png"
    [ "$(pngq "$TMP/m.png" size)" = "16 16 3" ]
    mask2sem -q --onehot -n 5 "$TMP/m.lsdm" -o "$TMP/onehot.lsdm"
    run_tool 0 vol-png "$TMP/onehot.lsdm" -o "$TMP/oh.png"
    mask2sem -q "$TMP/m.lsdm" -o "$TMP/idx.lsdm"
    run_tool 0 vol-png "$TMP/idx.lsdm" -o "$TMP/idx.png"
    [ "$(pngq "$TMP/oh.png" sum)" = "$(pngq "$TMP/m.png" sum)" ]
    [ "$(pngq "$TMP/idx.png" sum)" = "$(pngq "$TMP/m.png" sum)" ]
    [ "$(pngq "$TMP/m.png" sum)" -gt 0 ]
}

@test "vol-png: --labels overlays colour with alpha over grey" {
    mknii "$TMP/img.nii" f32 1x2x4 "100"
    mknii "$TMP/lab.nii" u8 1x2x4 "1 if (h, w) == (0, 1) else 3 if (h, w) == (1, 3) else 0"
    run_tool 0 vol-png "$TMP/img.nii" --labels "$TMP/lab.nii" --alpha 0.4 --window 0,255 -o "$TMP/o.png"
    run pngq "$TMP/o.png" size row 0 row 1
    [ "${lines[0]}" = "4 2 3" ]
    [ "${lines[1]}" = "100,100,100 100,100,100 100,100,100 162,150,70" ]
    [ "${lines[2]}" = "100,100,100 152,70,90 100,100,100 100,100,100" ]
    # a phantom pair: the overlay is exactly grey and palette blended
    phantom --seed 2 --count 2 --shape 4x32x32 -o "$TMP/im.lsdm" --masks "$TMP/m.lsdm"
    run_tool 0 vol-png "$TMP/im.lsdm" --record 1 --window 0,1 -o "$TMP/g.png"
    run_tool 0 vol-png "$TMP/m.lsdm" --record 1 -o "$TMP/l.png"
    run_tool 0 vol-png "$TMP/im.lsdm" --record 1 --window 0,1 --labels "$TMP/m.lsdm" --alpha 0.25 -o "$TMP/ov.png"
    [[ "$(pngq "$TMP/ov.png" text)" == *"record=1 name=phantom-s2-0001 "* ]]
    for y in 0 9 16 23 31; do
        python3 - "$(pngq "$TMP/g.png" row $y)" "$(pngq "$TMP/l.png" row $y)" "$(pngq "$TMP/ov.png" row $y)" <<'PY'
import sys
g, l, o = (s.split() for s in sys.argv[1:4])
for gv, lv, ov in zip(g, l, o):
    c = [int(x) for x in lv.split(",")]
    want = [int(gv)] * 3 if c == [0, 0, 0] else [round(0.75 * int(gv) + 0.25 * k) for k in c]
    assert [int(x) for x in ov.split(",")] == want, (gv, lv, ov, want)
PY
    done
}

@test "vol-png: montage of evenly spaced slices" {
    mknii "$TMP/deep.nii" f32 8x4x4 "100 + 10*d + h"
    run_tool 0 vol-png "$TMP/deep.nii" --montage 4x1 --window 0,255 -o "$TMP/m.png"
    run pngq "$TMP/m.png" size text row 0
    [ "${lines[0]}" = "16 4 1" ]
    [[ "${lines[1]}" == *" plane=axial slices=1,3,5,7 window=0,255" ]]
    [ "${lines[2]}" = "113 113 113 113 133 133 133 133 153 153 153 153 173 173 173 173" ]
    run_tool 0 vol-png "$TMP/deep.nii" --montage=2x2 --window 0,255 -o "$TMP/m.png"
    run pngq "$TMP/m.png" size text px 4 0 px 4 4
    [ "${lines[0]}" = "8 8 1" ]
    [[ "${lines[1]}" == *" slices=1,3,5,7 "* ]]
    [ "${lines[2]}" = "153" ] && [ "${lines[3]}" = "173" ]
    # default grid: all 8 slices in 3x3; the ninth tile stays black
    run_tool 0 vol-png "$TMP/deep.nii" --montage --window 0,255 -o "$TMP/m.png"
    run pngq "$TMP/m.png" size text px 11 11 px 8 0 px 8 4
    [ "${lines[0]}" = "12 12 1" ]
    [[ "${lines[1]}" == *" slices=0,1,2,3,4,5,6,7 "* ]]
    [ "${lines[2]}" = "0" ] && [ "${lines[3]}" = "163" ] && [ "${lines[4]}" = "173" ]
}

@test "vol-png: real data: ch2 coronal slice matches the voxels, superior up" {
    run_tool 0 vol-png "$TEMPLATES/ch2.nii.gz" --plane coronal --window 0,254 -o "$TMP/cor.png"
    pngq "$TMP/cor.png" size $(for y in $(seq 0 9 180); do echo row $y; done) >"$TMP/q"
    python3 - "$TMP/q" <<'PY'
import gzip, struct, sys
d = gzip.open("/usr/share/mricron/templates/ch2.nii.gz").read()
v = d[int(struct.unpack("<f", d[108:112])[0]):]
W, H, D = 181, 217, 181
h = H // 2
out = open(sys.argv[1]).read().split("\n")
assert out[0] == "181 181 1", out[0]
for i, y in enumerate(range(0, D, 9)):
    dd = D - 1 - y  # superior (last d) on top
    want = [round(255.0 * v[w + W * (h + H * dd)] / 254) for w in range(W)]
    assert out[1 + i] == " ".join(map(str, want)), y
PY
    run_tool 0 vol-png "$TEMPLATES/ch2.nii.gz" --labels "$TEMPLATES/aal.nii.gz" -o "$TMP/ax.png"
    [ "$(pngq "$TMP/ax.png" size)" = "181 217 3" ]
}

@test "vol-png: output is atomic; '-' writes the same bytes to stdout" {
    echo old >"$TMP/out.png"
    run_tool 1 vol-png "$TMP/ramp.nii" --slice 4 -o "$TMP/out.png"
    [ "$(cat "$TMP/out.png")" = old ]
    run_tool 0 vol-png "$TMP/ramp.nii" -o "$TMP/out.png"
    vol-png "$TMP/ramp.nii" -o - >"$TMP/stdout.png"
    cmp "$TMP/out.png" "$TMP/stdout.png"
    [ "$(ls -A "$TMP" | grep -c tmp)" -eq 0 ]
}

@test "vol-png: bad input: one error line, exit 1" {
    run_tool 1 vol-png "$TMP/ramp.nii" --slice 4 -o "$TMP/x.png"
    assert_one_error_line vol-png
    [[ "$stderr" == *"slice 4 is out of range"* ]]
    run_tool 1 vol-png "$TMP/ramp.nii" --plane sagittal --slice 16 -o "$TMP/x.png"
    assert_one_error_line vol-png
    run_tool 1 vol-png "$TMP/ramp.nii" --record 1 -o "$TMP/x.png"
    assert_one_error_line vol-png
    mknii "$TMP/small.nii" u8 4x8x8 "1"
    run_tool 1 vol-png "$TMP/ramp.nii" --labels "$TMP/small.nii" -o "$TMP/x.png"
    assert_one_error_line vol-png
    [[ "$stderr" == *"4x8x8"*"4x8x16"* ]]
    phantom --seed 1 --shape 2x8x8 --masks "$TMP/m.lsdm" -o /dev/null
    run_tool 1 vol-png "$TMP/m.lsdm" --labels "$TMP/m.lsdm" -o "$TMP/x.png"
    assert_one_error_line vol-png
    mask2sem -q --blocks 8 --drop-partial "$TMP/m.lsdm" -o "$TMP/none.lsdm"
    run_tool 1 vol-png "$TMP/none.lsdm" -o "$TMP/x.png"
    assert_one_error_line vol-png
    [[ "$stderr" == *"no records"* ]]
    head -c 100 "$TMP/m.lsdm" >"$TMP/cut.lsdm"
    run_tool 1 vol-png "$TMP/cut.lsdm" -o "$TMP/x.png"
    assert_one_error_line vol-png
    [ ! -e "$TMP/x.png" ]
}

@test "vol-png: usage errors exit 2" {
    run_tool 2 vol-png "$TMP/ramp.nii" --plane oblique -o "$TMP/x.png"
    [[ "$stderr" == "vol-png: error: --plane: 'oblique' is not axial, coronal or sagittal"* ]]
    run_tool 2 vol-png "$TMP/ramp.nii" --slice 1 --montage -o "$TMP/x.png"
    run_tool 2 vol-png "$TMP/ramp.nii" --montage=0x3 -o "$TMP/x.png"
    run_tool 2 vol-png "$TMP/ramp.nii" --alpha 1.5 -o "$TMP/x.png"
    run_tool 2 vol-png "$TMP/ramp.nii" --window 5,1 -o "$TMP/x.png"
    run_tool 2 vol-png "$TMP/ramp.nii" --scale 0 -o "$TMP/x.png"
    run_tool 2 vol-png $(for i in $(seq 17); do echo "$TMP/ramp.nii"; done) -o "$TMP/x.png"
    [[ "$stderr" == "vol-png: error: at most 16 INPUTs (got 17)"* ]]
    run_tool 2 vol-png - - -o "$TMP/x.png" </dev/null
    [ ! -e "$TMP/x.png" ]
}

@test "vol-png: a PNG is not written to a terminal unless -f" {
    command -v script >/dev/null || skip "script(1) not installed"
    run script -qec "$BIN/vol-png $TMP/ramp.nii" /dev/null
    [[ "$output" == *"vol-png: error: refusing to write binary data to a terminal"* ]]
    run script -qec "$BIN/vol-png -f $TMP/ramp.nii" /dev/null
    [[ "$output" == *PNG*IHDR* && "$output" != *error* ]]
}

@test "vol-png: several INPUTs side by side, each image with its own window" {
    mknii "$TMP/ramp2.nii" f32 4x8x16 "2*(50*d + 5*h + w)"
    run_tool 0 vol-png "$TMP/ramp.nii" "$TMP/ramp2.nii" --slice 2 -o "$TMP/two.png"
    run pngq "$TMP/two.png" size row 0
    [ "${lines[0]}" = "36 8 1" ]                     # 16 + 4 black + 16
    read -r -a px <<<"${lines[1]}"
    [ "${px[16]} ${px[17]} ${px[18]} ${px[19]}" = "0 0 0 0" ]
    # twice the values under their own percentile window: the same greys
    [ "${px[*]:0:16}" = "${px[*]:20:16}" ]
    # a label map beside an image: RGB, the labels in colour, the image grey
    mknii "$TMP/lab.nii" u8 4x8x16 "2 if w >= 8 else 0"
    vol-import --labels "$TMP/lab.nii" -o "$TMP/lab.lsdm"
    run_tool 0 vol-png "$TMP/lab.lsdm" "$TMP/ramp.nii" --slice 2 --window 0,255 -o "$TMP/mix.png"
    run pngq "$TMP/mix.png" size px 0 0 px 0 8 px 0 20
    [ "${lines[0]}" = "36 8 3" ]
    [ "${lines[1]}" = "0,0,0" ]
    [ "${lines[2]}" = "60,180,75" ]                  # label 2: palette[1]
    [ "${lines[3]}" = "135,135,135" ]                # ramp at h = 7, w = 0
    # panels need one shape
    mknii "$TMP/small.nii" f32 4x8x8 "w"
    run_tool 1 vol-png "$TMP/ramp.nii" "$TMP/small.nii" -o "$TMP/bad.png"
    assert_one_error_line vol-png
    [[ "$stderr" == *"panels side by side need one shape"* ]]
    [ ! -e "$TMP/bad.png" ]
}
