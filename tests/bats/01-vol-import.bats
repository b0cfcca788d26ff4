#!/usr/bin/env bats
# vol-import: NIfTI files (real templates and patched copies), directories,
# archives, streams and stdin -> one stream; geometry keys, exact voxels,
# names, and one clean error line for every kind of bad input.
load helper

setup() { setup_tmp; }

CH2=$TEMPLATES/ch2.nii.gz
AAL=$TEMPLATES/aal.nii.gz

# key FILE KEY: the value of KEY in the first record of a stream file.
key() { zstd -dc "$1" | head -c 65536 | tail -c +17 | grep -a -m1 "^$2: " | cut -d' ' -f2-; }
# keys FILE KEY: the values of KEY in every record (small volumes only).
keys() { zstd -dc "$1" | grep -a "^$2: " | cut -d' ' -f2-; }
# data FILE NBYTES: the voxel bytes of the first record.
data() {
    local hl
    hl=$(zstd -dc "$1" | od -An -tu4 -j8 -N4 | tr -d ' ')
    zstd -dc "$1" | tail -c +$((16 + hl + 1)) | head -c "$2"
}
# patch FILE OFFSET BYTES...: overwrite bytes (given as \xNN escapes) in place.
patch() { printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
# A small valid .nii (u8, 4x6x5, sform) made from a slice of ch2's header.
small_nii() {
    gzip -dc "$CH2" | head -c 352 >"$1"
    patch "$1" 40 '\x03\x00\x05\x00\x06\x00\x04\x00'
    head -c 120 /dev/urandom >>"$1"
}

@test "ch2.nii.gz: shape, dtype, geometry keys and every voxel exact" {
    run_tool 0 vol-import "$CH2" -o "$TMP/ch2.lsdm"
    [ -z "$output" ] && [ -z "$stderr" ]
    [ "$(key "$TMP/ch2.lsdm" name)" = ch2 ]
    [ "$(key "$TMP/ch2.lsdm" role)" = image ]
    [ "$(key "$TMP/ch2.lsdm" dtype)" = u8 ]
    [ "$(key "$TMP/ch2.lsdm" shape)" = 1,181,217,181 ]
    # srow x = (1 0 0 -90): record columns are (d,h,w) = NIfTI (k,j,i)
    [ "$(key "$TMP/ch2.lsdm" affine)" = "0 0 1 -90 0 1 0 -125 1 0 0 -71 0 0 0 1" ]
    [ "$(key "$TMP/ch2.lsdm" affine-source)" = sform ]
    [ "$(key "$TMP/ch2.lsdm" spacing)" = "1 1 1" ]
    [ "$(key "$TMP/ch2.lsdm" provenance)" = "vol-import/0.1.0" ]
    cmp <(data "$TMP/ch2.lsdm" 7109137) <(gzip -dc "$CH2" | tail -c +353)
    # nothing else of the header: exactly these keys
    [ "$(zstd -dc "$TMP/ch2.lsdm" | head -c 4096 | tail -c +17 | sed '/^END$/q' | cut -d: -f1 | tr '\n' ' ')" = \
        "dtype shape name role affine affine-source spacing provenance END " ]
}

@test "aal.nii.gz --labels: role labels, u8, voxels exact, no scaling" {
    run_tool 0 vol-import --labels "$AAL" -o "$TMP/aal.lsdm"
    [ "$(key "$TMP/aal.lsdm" role)" = labels ]
    [ "$(key "$TMP/aal.lsdm" dtype)" = u8 ]
    [ "$(key "$TMP/aal.lsdm" name)" = aal ]
    cmp <(data "$TMP/aal.lsdm" 7109137) <(gzip -dc "$AAL" | tail -c +353)
}

@test "a header with extensions (vox_offset 1952) and a negative pixdim[0]" {
    run_tool 0 vol-import "$TEMPLATES/HarvardOxford-cort-maxprob-thr0-1mm.nii.gz" -o "$TMP/ho.lsdm"
    [ "$(key "$TMP/ho.lsdm" shape)" = 1,182,218,182 ]
    [ "$(key "$TMP/ho.lsdm" affine)" = "0 0 -1 90 0 1 0 -126 1 0 0 -72 0 0 0 1" ]
    cmp <(data "$TMP/ho.lsdm" $((182 * 218 * 182))) \
        <(gzip -dc "$TEMPLATES/HarvardOxford-cort-maxprob-thr0-1mm.nii.gz" | tail -c +1953)
}

@test "qform-only and xform-less files: affine-source qform / spacing" {
    gzip -dc "$CH2" >"$TMP/q.nii"
    patch "$TMP/q.nii" 252 '\x01\x00\x00\x00'   # qform_code 1, sform_code 0
    patch "$TMP/q.nii" 256 '\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x20\x41\x00\x00\xa0\xc1\x00\x00\x80\x3f'
    #                       quatern b c d = 0, offsets x y z = 10 -20 1
    run_tool 0 vol-import "$TMP/q.nii" -o "$TMP/q.lsdm"
    [ "$(key "$TMP/q.lsdm" affine-source)" = qform ]
    [ "$(key "$TMP/q.lsdm" affine)" = "0 0 1 10 0 1 0 -20 1 0 0 1 0 0 0 1" ]
    patch "$TMP/q.nii" 252 '\x00\x00'           # no xform at all
    patch "$TMP/q.nii" 80 '\x00\x00\x00\x40'    # pixdim[1] = 2
    run_tool 0 vol-import "$TMP/q.nii" -o "$TMP/s.lsdm"
    [ "$(key "$TMP/s.lsdm" affine-source)" = spacing ]
    [ "$(key "$TMP/s.lsdm" affine)" = "0 0 2 0 0 1 0 0 1 0 0 0 0 0 0 1" ]
    [ "$(key "$TMP/s.lsdm" spacing)" = "1 1 2" ]
}

@test "scl_slope/scl_inter scale an image to f32 but never a label map" {
    small_nii "$TMP/a.nii"
    patch "$TMP/a.nii" 112 '\x00\x00\x00\x40\x00\x00\x80\xbf'   # slope 2, inter -1
    run_tool 0 vol-import "$TMP/a.nii" -o "$TMP/img.lsdm"
    [ "$(key "$TMP/img.lsdm" dtype)" = f32 ]
    local v f
    v=$(od -An -tu1 -j352 -N1 "$TMP/a.nii" | tr -d ' ')
    f=$(data "$TMP/img.lsdm" 4 | od -An -tf4 | tr -d ' ')
    [ "$f" = "$((2 * v - 1))" ]
    run_tool 0 vol-import --labels "$TMP/a.nii" -o "$TMP/lab.lsdm"
    [ "$(key "$TMP/lab.lsdm" dtype)" = u8 ]
    cmp <(data "$TMP/lab.lsdm" 120) <(tail -c +353 "$TMP/a.nii")
}

@test "a float map: an image as is, but not a label map (non-integer values)" {
    phantom --shape 4x8x8 --nifti "$TMP/ph"
    run_tool 0 vol-import --labels "$TMP/ph/phantom-s0-0000_mask.nii.gz" -o "$TMP/m.lsdm"
    [ "$(key "$TMP/m.lsdm" dtype)" = u8 ]
    run_tool 1 vol-import --labels "$TMP/ph/phantom-s0-0000_image.nii.gz" -o "$TMP/x.lsdm"
    assert_one_error_line vol-import
    [[ "$stderr" == *"phantom-s0-0000_image.nii.gz: label map has a non-integer value"* ]]
    [ ! -e "$TMP/x.lsdm" ]
}

@test "a directory: NIfTI files sorted by name, other files skipped" {
    mkdir "$TMP/d"
    small_nii "$TMP/d/b.nii"
    gzip -c "$TMP/d/b.nii" >"$TMP/d/a.nii.gz"
    cp "$TMP/d/b.nii" "$TMP/d/c.nii"
    echo notes >"$TMP/d/README.txt"
    run_tool 0 vol-import "$TMP/d" -o "$TMP/d.lsdm"
    [ "$(keys "$TMP/d.lsdm" name | tr '\n' ' ')" = "a b c " ]
    [ "$(keys "$TMP/d.lsdm" shape | sort -u)" = 1,4,6,5 ]
}

@test "archives: tar, tar.gz, tar.zst and stdin, entries in archive order" {
    mkdir -p "$TMP/a/sub"
    small_nii "$TMP/a/sub/z.nii"
    gzip -c "$TMP/a/sub/z.nii" >"$TMP/a/y.nii.gz"
    echo text >"$TMP/a/notes.txt"
    tar -C "$TMP/a" -cf "$TMP/x.tar" sub/z.nii notes.txt y.nii.gz
    gzip -c "$TMP/x.tar" >"$TMP/x.tar.gz"
    zstd -q "$TMP/x.tar" -o "$TMP/x.tar.zst"
    for f in x.tar x.tar.gz x.tar.zst; do
        run_tool 0 vol-import "$TMP/$f" -o "$TMP/o.lsdm"
        [ "$(keys "$TMP/o.lsdm" name | tr '\n' ' ')" = "z y " ] || { echo "$f"; return 1; }
        cmp <(data "$TMP/o.lsdm" 120) <(tail -c +353 "$TMP/a/sub/z.nii")
    done
    run_pipe 0 "vol-import - <'$TMP/x.tar.zst' >'$TMP/p.lsdm'"
    [ "$(keys "$TMP/p.lsdm" name | tr '\n' ' ')" = "z y " ]
    tar -C "$TMP/a" -czf "$TMP/none.tar.gz" notes.txt
    run_tool 1 vol-import "$TMP/none.tar.gz" -o "$TMP/n.lsdm"
    assert_one_error_line vol-import
    [[ "$stderr" == *"none.tar.gz: no NIfTI volume (.nii, .nii.gz) in the archive"* ]]
}

@test "NIfTI on stdin, plain or gzip, is named 'stdin'" {
    run_pipe 0 "vol-import - <'$CH2' >'$TMP/s.lsdm'"
    [ "$(key "$TMP/s.lsdm" name)" = stdin ]
    cmp <(data "$TMP/s.lsdm" 7109137) <(gzip -dc "$CH2" | tail -c +353)
    run_pipe 0 "gzip -dc '$CH2' | vol-import - >'$TMP/p.lsdm'"
    [ "$(key "$TMP/p.lsdm" shape)" = 1,181,217,181 ]
    [ "$(key "$TMP/p.lsdm" name)" = stdin ]
}

@test "a stream passes through untouched, mixed with NIfTI inputs; --name names all" {
    phantom --shape 4x8x8 --count 2 -o "$TMP/ph.lsdm"
    run_tool 0 vol-import "$TMP/ph.lsdm" -o "$TMP/same.lsdm"
    cmp <(zstd -dc "$TMP/ph.lsdm") <(zstd -dc "$TMP/same.lsdm")
    small_nii "$TMP/v.nii"
    run_tool 0 vol-import "$TMP/v.nii" "$TMP/ph.lsdm" "$TMP/v.nii" -o "$TMP/mix.lsdm"
    [ "$(keys "$TMP/mix.lsdm" name | tr '\n' ' ')" = "v phantom-s0-0000 phantom-s0-0001 v " ]
    run_tool 0 vol-import --name 'case_%03d-{name}' "$TMP/v.nii" "$TMP/ph.lsdm" "$TMP/v.nii" -o "$TMP/n.lsdm"
    [ "$(keys "$TMP/n.lsdm" name | tr '\n' ' ')" = "case_000-v case_001-phantom-s0-0000 case_002-phantom-s0-0001 case_003-v " ]
    # renaming a stream changes the name key and nothing else
    run_tool 0 vol-import --name 'x%d' "$TMP/ph.lsdm" -o "$TMP/x.lsdm"
    [ "$(keys "$TMP/x.lsdm" name | tr '\n' ' ')" = "x0 x1 " ]
    run_tool 0 vol-diff "$TMP/x.lsdm" "$TMP/ph.lsdm"
    [ "$(keys "$TMP/x.lsdm" provenance)" = "$(keys "$TMP/ph.lsdm" provenance)" ]
}

@test "--role and --labels; conflicting or bad options are usage errors" {
    small_nii "$TMP/v.nii"
    run_tool 0 vol-import --role semantic "$TMP/v.nii" -o "$TMP/r.lsdm"
    [ "$(key "$TMP/r.lsdm" role)" = semantic ]
    run_tool 0 vol-import --role labels "$TMP/v.nii" -o "$TMP/l.lsdm"
    [ "$(key "$TMP/l.lsdm" role)" = labels ]
    run_tool 2 vol-import --labels --role image "$TMP/v.nii"
    [[ "${stderr_lines[0]}" == "vol-import: error: --labels gives role 'labels'"* ]]
    run_tool 2 vol-import --role cat "$TMP/v.nii"
    [[ "${stderr_lines[0]}" == "vol-import: error: --role: unknown role 'cat'"* ]]
    run_tool 2 vol-import --name 'x%s' "$TMP/v.nii"
    [[ "${stderr_lines[0]}" == "vol-import: error: --name: bad pattern 'x%s'"* ]]
    run_tool 2 vol-import -o "$TMP/x.lsdm"
    [[ "${stderr_lines[0]}" == "vol-import: error: no INPUT given"* ]]
}

@test "-v lists each volume on stderr" {
    small_nii "$TMP/v.nii"
    run_tool 0 vol-import -v "$TMP/v.nii" --labels -o "$TMP/v.lsdm"
    [ "$stderr" = "vol-import: v: u8 1,4,6,5 labels affine from sform" ]
}

# bad FILE WORDS: vol-import fails with one error line containing WORDS
# and writes nothing.
bad() {
    run_tool 1 vol-import "$1" -o "$TMP/out.lsdm"
    assert_one_error_line vol-import
    [[ "$stderr" == *"$2"* ]] || { echo "want '$2' in: $stderr"; return 1; }
    [ ! -e "$TMP/out.lsdm" ]
}

@test "truncated, empty and unknown files: one error line, no output" {
    head -c 1000000 "$CH2" >"$TMP/cut.nii.gz"
    bad "$TMP/cut.nii.gz" "cut.nii.gz: truncated gzip data"
    head -c 200 "$CH2" >"$TMP/tiny.nii.gz"
    bad "$TMP/tiny.nii.gz" "tiny.nii.gz: truncated"
    gzip -dc "$CH2" | head -c 5000000 >"$TMP/cut.nii"
    bad "$TMP/cut.nii" "cut.nii: truncated NIfTI file (header needs 7109489 bytes, file has 5000000)"
    gzip -dc "$CH2" | head -c 300 >"$TMP/hdr.nii"
    bad "$TMP/hdr.nii" "hdr.nii: truncated NIfTI header"
    : >"$TMP/empty.nii"
    bad "$TMP/empty.nii" "empty"
    echo "hello" >"$TMP/hello.dat"
    bad "$TMP/hello.dat" "hello.dat: not a tensor stream, NIfTI file or known archive"
    bad "$TMP/missing.nii" "missing.nii: No such file or directory"
    mkdir "$TMP/nothing"
    bad "$TMP/nothing" "nothing: no NIfTI volume (.nii, .nii.gz) in the directory"
}

@test "inconsistent dims, 5D, unsupported datatypes: one error line" {
    small_nii "$TMP/base.nii"
    cp "$TMP/base.nii" "$TMP/d0.nii"; patch "$TMP/d0.nii" 40 '\x09\x00'
    bad "$TMP/d0.nii" "d0.nii: inconsistent dims: dim[0] = 9 (must be 1 to 7)"
    cp "$TMP/base.nii" "$TMP/d2.nii"; patch "$TMP/d2.nii" 44 '\x00\x00'
    bad "$TMP/d2.nii" "inconsistent dims: dim[2] = 0"
    cp "$TMP/base.nii" "$TMP/neg.nii"; patch "$TMP/neg.nii" 46 '\xfc\xff'
    bad "$TMP/neg.nii" "inconsistent dims: dim[3] = -4"
    cp "$TMP/base.nii" "$TMP/big.nii"; patch "$TMP/big.nii" 42 '\xff\x7f\xff\x7f\xff\x7f'
    bad "$TMP/big.nii" "big.nii: image too large"
    cp "$TMP/base.nii" "$TMP/5d.nii"; patch "$TMP/5d.nii" 40 '\x05\x00\x05\x00\x03\x00\x04\x00\x01\x00\x02\x00'
    bad "$TMP/5d.nii" "5D image (dim[5] = 2): only 3D and 4D volumes are supported"
    cp "$TMP/base.nii" "$TMP/cx.nii"; patch "$TMP/cx.nii" 70 '\x20\x00'
    bad "$TMP/cx.nii" "unsupported datatype COMPLEX64 (32)"
    cp "$TMP/base.nii" "$TMP/rgb.nii"; patch "$TMP/rgb.nii" 70 '\x80\x00'
    bad "$TMP/rgb.nii" "unsupported datatype RGB24 (128)"
    cp "$TMP/base.nii" "$TMP/magic.nii"; patch "$TMP/magic.nii" 344 'ni1'
    bad "$TMP/magic.nii" "two-file NIfTI (.hdr/.img) is not supported"
}

@test "a bad input after good ones: nothing written, old output kept" {
    small_nii "$TMP/good.nii"
    echo "old" >"$TMP/out.lsdm"
    head -c 100 "$CH2" >"$TMP/bad.nii.gz"
    run_tool 1 vol-import "$TMP/good.nii" "$TMP/bad.nii.gz" -o "$TMP/out.lsdm"
    assert_one_error_line vol-import
    [ "$(cat "$TMP/out.lsdm")" = old ]
    [ -z "$(find "$TMP" -name '.lsdm-tmp*')" ]
}

@test "a 35 MB .nii.gz imports in well under two seconds" {
    [[ "$BIN" != *asan* ]] || skip "timing means nothing under sanitizers"
    gzip -dc "$CH2" >"$TMP/ch2.nii"
    # 4D: ch2's voxels 10 times (71 MB): dim[0] = 4, dim[4] = 10
    head -c 352 "$TMP/ch2.nii" >"$TMP/h"
    patch "$TMP/h" 40 '\x04\x00'
    patch "$TMP/h" 48 '\x0a\x00'
    { cat "$TMP/h"; for i in 1 2 3 4 5 6 7 8 9 10; do tail -c +353 "$TMP/ch2.nii"; done; } | gzip -1 >"$TMP/big.nii.gz"
    [ "$(stat -c %s "$TMP/big.nii.gz")" -gt 30000000 ]
    local t0 t1 ms
    t0=$(date +%s%N)
    run_tool 0 vol-import "$TMP/big.nii.gz" -o "$TMP/big.lsdm"
    t1=$(date +%s%N)
    ms=$(((t1 - t0) / 1000000))
    echo "vol-import took $ms ms" >&3
    [ "$ms" -lt 2000 ]
    [ "$(key "$TMP/big.lsdm" shape)" = 10,181,217,181 ]
}

@test "--records keeps the records at the listed positions over all inputs" {
    phantom -n 3 -s 1 --shape 4x8x8 -o "$TMP/a.lsdm"
    phantom -n 3 -s 2 --shape 4x8x8 -o "$TMP/b.lsdm"
    names() { vol-info --json "$1" | python3 -c 'import json,sys; print(" ".join(r["name"] for r in map(json.loads, sys.stdin) if "name" in r))'; }
    run_tool 0 vol-import --records 1-2,4 "$TMP/a.lsdm" "$TMP/b.lsdm" -o "$TMP/o.lsdm"
    [ "$(names "$TMP/o.lsdm")" = "phantom-s1-0001 phantom-s1-0002 phantom-s2-0001" ]
    run_tool 0 vol-import --records 5- "$TMP/a.lsdm" "$TMP/b.lsdm" -o "$TMP/o.lsdm"
    [ "$(names "$TMP/o.lsdm")" = "phantom-s2-0002" ]
    run_tool 0 vol-import --records -0 "$TMP/a.lsdm" -o "$TMP/o.lsdm"
    [ "$(names "$TMP/o.lsdm")" = "phantom-s1-0000" ]
    # the voxels pass through untouched
    run_tool 0 vol-import --records 2 "$TMP/a.lsdm" -o "$TMP/o.lsdm"
    run_tool 0 vol-diff "$TMP/o.lsdm" <(vol-import --records 2- "$TMP/a.lsdm")
    for bad in 2-1 x 1-y "" 1,,2; do
        run_tool 2 vol-import --records "$bad" "$TMP/a.lsdm" -o "$TMP/bad.lsdm"
        [[ "$stderr" == "vol-import: error: --records: "* ]]
    done
    [ ! -e "$TMP/bad.lsdm" ]
}

@test "--crop: centred crop or zero pad, the affine moved so voxels keep their world positions" {
    run_tool 0 vol-import --crop 32x192x160 "$CH2" -o "$TMP/c.lsdm"
    [ "$(key "$TMP/c.lsdm" shape)" = 1,32,192,160 ]
    # the same grid as mask2sem's crop of the atlas on the same grid
    mask2sem --crop 32x192x160 "$TEMPLATES/aal.nii.gz" -o "$TMP/m.lsdm"
    [ "$(key "$TMP/c.lsdm" affine)" = "$(key "$TMP/m.lsdm" affine)" ]
    # voxel (d,h,w) of the crop is voxel (d+74, h+12, w+10) of ch2: floor((181-32)/2), ...
    vol-export --no-gz "$TMP/c.lsdm" -o "$TMP/c.nii"
    python3 - "$TMP/c.nii" "$CH2" <<'PY'
import gzip, struct, sys
def vox(b):
    return b[int(struct.unpack_from("<f", b, 108)[0]):]
c, a = vox(open(sys.argv[1], "rb").read()), vox(gzip.open(sys.argv[2]).read())
assert len(c) == 32 * 192 * 160
for d, h, w in [(0, 0, 0), (5, 100, 80), (31, 191, 159), (16, 7, 150)]:
    assert c[(d * 192 + h) * 160 + w] == a[((d + 74) * 217 + h + 12) * 181 + w + 10], (d, h, w)
assert sum(c) > 0
PY
    # padding is zeros: a crop larger than the volume keeps it whole in the middle
    run_tool 0 vol-import --crop 4x12x12 "$TMP/c.lsdm" -o "$TMP/s.lsdm"
    run_tool 0 vol-import --crop 8x16x16 "$TMP/s.lsdm" -o "$TMP/p.lsdm"
    run_tool 0 vol-import --crop 4x12x12 "$TMP/p.lsdm" -o "$TMP/s2.lsdm"
    run_tool 0 vol-diff "$TMP/s.lsdm" "$TMP/s2.lsdm"
    [ "$(key "$TMP/s.lsdm" affine)" = "$(key "$TMP/s2.lsdm" affine)" ]
    vol-info "$TMP/p.lsdm" | grep -q "min: *0$"
    run_tool 2 vol-import --crop 4x12 "$TMP/c.lsdm"
}
