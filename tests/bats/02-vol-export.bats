#!/usr/bin/env bats
# vol-export: stream -> NIfTI files. Round trips through vol-import must be
# exact (every voxel, the affine, its source); header fields, file names,
# patterns, compression, NIfTI-2, and clean failures.
load helper

setup() { setup_tmp; }

CH2=$TEMPLATES/ch2.nii.gz
AAL=$TEMPLATES/aal.nii.gz

key() { zstd -dc "$1" | head -c 65536 | tail -c +17 | grep -a -m1 "^$2: " | cut -d' ' -f2-; }
patch() { printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
# i16 / i32 / f32 fields of a (plain) file: field FILE OFFSET TYPE [COUNT]
field() { od -An -t"$3" -j"$2" -N$(( ${4:-1} * ${3#?} )) "$1" | tr -s ' \n' ' ' | sed 's/^ //; s/ $//'; }

# import -> export -> import gives the very same stream (provenance too:
# both imports write the same one).
round_trip() {
    local in=$1; shift
    run_tool 0 vol-import "$@" "$in" -o "$TMP/a.lsdm"
    run_tool 0 vol-export "$TMP/a.lsdm" -o "$TMP/rt"
    local f
    f=$(ls "$TMP/rt")
    run_tool 0 vol-import "$@" "$TMP/rt/$f" -o "$TMP/b.lsdm"
    cmp <(zstd -dc "$TMP/a.lsdm") <(zstd -dc "$TMP/b.lsdm")
    rm -r "$TMP/rt"
}

@test "ch2 round trip: identical stream; the file holds the same voxels and sform" {
    round_trip "$CH2"
    run_tool 0 vol-import "$CH2" -o "$TMP/ch2.lsdm"
    run_tool 0 vol-export "$TMP/ch2.lsdm" -o "$TMP/out" --no-gz
    [ -z "$output" ] && [ -z "$stderr" ]
    [ "$(ls -A "$TMP/out")" = ch2.nii ]
    local f=$TMP/out/ch2.nii
    [ "$(stat -c %s "$f")" -eq $((352 + 181 * 217 * 181)) ]
    cmp <(tail -c +353 "$f") <(gzip -dc "$CH2" | tail -c +353)
    [ "$(field "$f" 0 d4)" = 348 ]
    [ "$(head -c 348 "$f" | tail -c 4 | tr -d '\0')" = "n+1" ]
    [ "$(field "$f" 40 d2 4)" = "3 181 217 181" ]
    [ "$(field "$f" 70 d2)" = 2 ]                       # DT_UINT8
    [ "$(field "$f" 76 f4 4)" = "1 1 1 1" ]             # qfac, pixdim
    [ "$(field "$f" 108 f4)" = 352 ]                    # vox_offset
    [ "$(field "$f" 252 d2 2)" = "1 1" ]                # qform_code, sform_code
    [ "$(field "$f" 280 f4 12)" = "1 0 0 -90 0 1 0 -125 0 0 1 -71" ]
    [ "$(field "$f" 268 f4 3)" = "-90 -125 -71" ]       # qoffset
    [ "$(field "$f" 123 d1)" = 2 ]                      # xyzt_units: mm
}

@test "aal --labels round trip, and real files with extensions and 2 mm grids" {
    round_trip "$AAL" --labels
    round_trip "$TEMPLATES/HarvardOxford-cort-maxprob-thr0-1mm.nii.gz" --labels
    round_trip "$TEMPLATES/AICHAmc.nii.gz" --labels
    round_trip "$TEMPLATES/inia19-NeuroMaps.nii.gz" --labels
}

@test "qform-only and xform-less files come back the same way" {
    gzip -dc "$CH2" >"$TMP/q.nii"
    patch "$TMP/q.nii" 252 '\x01\x00\x00\x00'
    patch "$TMP/q.nii" 256 '\xcd\xcc\xcc\x3d\x00\x00\x00\x00\xcd\xcc\x4c\xbe\x00\x00\x20\x41\x00\x00\xa0\xc1\x00\x00\x80\x3f'
    #                       quatern b = 0.1, c = 0, d = -0.2, offsets 10 -20 1
    round_trip "$TMP/q.nii"
    run_tool 0 vol-import "$TMP/q.nii" -o "$TMP/q.lsdm"
    [ "$(key "$TMP/q.lsdm" affine-source)" = qform ]
    run_tool 0 vol-export --no-gz "$TMP/q.lsdm" -o "$TMP/o"
    [ "$(field "$TMP/o/q.nii" 252 d2 2)" = "1 0" ]      # written as qform only
    patch "$TMP/q.nii" 252 '\x00\x00'
    round_trip "$TMP/q.nii"
    run_tool 0 vol-import "$TMP/q.nii" -o "$TMP/s.lsdm"
    [ "$(key "$TMP/s.lsdm" affine-source)" = spacing ]
}

@test "4D volumes: C,D,H,W <-> dim[4]; NIfTI-2 keeps them exactly too" {
    gzip -dc "$CH2" | head -c $((352 + 181 * 217 * 12)) >"$TMP/t.nii"
    patch "$TMP/t.nii" 40 '\x04\x00\xb5\x00\xd9\x00\x04\x00\x03\x00'   # 181x217x4, t = 3
    round_trip "$TMP/t.nii"
    run_tool 0 vol-import "$TMP/t.nii" -o "$TMP/t.lsdm"
    [ "$(key "$TMP/t.lsdm" shape)" = 3,4,217,181 ]
    run_tool 0 vol-export --nifti2 --no-gz "$TMP/t.lsdm" -o "$TMP/n2"
    local f=$TMP/n2/t.nii
    [ "$(field "$f" 0 d4)" = 540 ]
    [ "$(head -c 12 "$f" | tail -c 8 | od -An -c | tr -s ' ')" = " n + 2 \\0 \\r \\n 032 \\n" ]
    [ "$(field "$f" 16 d8 5)" = "4 181 217 4 3" ]
    [ "$(field "$f" 168 d8)" = 544 ]
    [ "$(stat -c %s "$f")" -eq $((544 + 181 * 217 * 12)) ]
    cmp <(tail -c +545 "$f") <(tail -c +353 "$TMP/t.nii")
    run_tool 0 vol-import "$f" -o "$TMP/t2.lsdm"
    cmp <(zstd -dc "$TMP/t.lsdm") <(zstd -dc "$TMP/t2.lsdm")
}

@test "phantom streams: f32 images and u8 masks keep values, spacing and affine" {
    phantom --shape 4x16x16 --count 2 --spacing 2.5,0.75,0.5 -o "$TMP/img.lsdm" --masks "$TMP/msk.lsdm"
    run_tool 0 vol-export -v "$TMP/img.lsdm" -o "$TMP/img"
    [ "$stderr" = "vol-export: $TMP/img/phantom-s0-0000.nii.gz
vol-export: $TMP/img/phantom-s0-0001.nii.gz" ]
    run_tool 0 vol-export "$TMP/msk.lsdm" -o "$TMP/msk"
    gzip -dc "$TMP/img/phantom-s0-0001.nii.gz" >"$TMP/p.nii"
    [ "$(field "$TMP/p.nii" 70 d2)" = 16 ]              # DT_FLOAT32
    [ "$(field "$TMP/p.nii" 76 f4 4)" = "1 0.5 0.75 2.5" ]
    gzip -dc "$TMP/msk/phantom-s0-0000.nii.gz" >"$TMP/m.nii"
    [ "$(field "$TMP/m.nii" 70 d2)" = 2 ]               # DT_UINT8
    run_tool 0 vol-import "$TMP/img" -o "$TMP/img2.lsdm"
    run_tool 0 vol-import --labels "$TMP/msk" -o "$TMP/msk2.lsdm"
    for k in 1 2; do
        run_tool 0 vol-diff "$TMP/img.lsdm" "$TMP/img2.lsdm"
        run_tool 0 vol-diff "$TMP/msk.lsdm" "$TMP/msk2.lsdm"
    done
    [ "$(key "$TMP/img2.lsdm" affine)" = "$(key "$TMP/img.lsdm" affine)" ]
    [ "$(key "$TMP/img2.lsdm" spacing)" = "2.5 0.75 0.5" ]
    # the voxels, byte for byte
    local hl
    hl=$(zstd -dc "$TMP/img.lsdm" | od -An -tu4 -j8 -N4 | tr -d ' ')
    gzip -dc "$TMP/img/phantom-s0-0000.nii.gz" | tail -c +353 >"$TMP/v"
    cmp "$TMP/v" <(zstd -dc "$TMP/img.lsdm" | tail -c +$((16 + hl + 1)) | head -c 4096)
}

@test "-o patterns: %d and {name}, suffix decides compression, dirs made" {
    phantom --shape 4x8x8 --count 3 -o "$TMP/p.lsdm"
    run_tool 0 vol-export "$TMP/p.lsdm" -o "$TMP/x/y/vol_%02d"
    [ "$(ls "$TMP/x/y" | tr '\n' ' ')" = "vol_00.nii.gz vol_01.nii.gz vol_02.nii.gz " ]
    run_tool 0 vol-export --no-gz "$TMP/p.lsdm" -o "$TMP/q/{name}-%d"
    [ "$(ls "$TMP/q" | tr '\n' ' ')" = "phantom-s0-0000-0.nii phantom-s0-0001-1.nii phantom-s0-0002-2.nii " ]
    run_tool 0 vol-export --no-gz "$TMP/p.lsdm" -o "$TMP/r/%d.nii.gz"
    [ "$(ls "$TMP/r" | tr '\n' ' ')" = "0.nii.gz 1.nii.gz 2.nii.gz " ]
    gzip -t "$TMP/r/2.nii.gz"
    run_tool 0 vol-export "$TMP/p.lsdm" -o "$TMP/s/%%_%d.nii"
    [ "$(ls "$TMP/s" | tr '\n' ' ')" = "%_0.nii %_1.nii %_2.nii " ]
    [ "$(field "$TMP/s/%_1.nii" 0 d4)" = 348 ]
    run_tool 2 vol-export "$TMP/p.lsdm" -o "$TMP/t/%f"
    [[ "${stderr_lines[0]}" == "vol-export: error: -o: bad pattern"* ]]
}

@test "names are made safe: no '/', no leading '.'; no temp files left" {
    phantom --shape 4x8x8 --nifti "$TMP/ph"
    vol-import --name '../evil/.x' "$TMP/ph/phantom-s0-0000_image.nii.gz" >"$TMP/e.lsdm"
    run_tool 0 vol-export "$TMP/e.lsdm" -o "$TMP/out"
    [ "$(ls -A "$TMP/out")" = "_._evil_.x.nii.gz" ]
    [ -z "$(find "$TMP" -name '.lsdm-tmp*')" ]
}

@test "two records that map to one file: an error, not an overwrite" {
    phantom --shape 4x8x8 -o "$TMP/p.lsdm"
    cat "$TMP/p.lsdm" "$TMP/p.lsdm" >"$TMP/twice.lsdm"
    run_tool 1 vol-export "$TMP/twice.lsdm" -o "$TMP/o"
    assert_one_error_line vol-export
    [[ "$stderr" == *"records 0 and 1 would both be written to $TMP/o/phantom-s0-0000.nii.gz"* ]]
    run_tool 0 vol-export "$TMP/twice.lsdm" -o "$TMP/o/%d-{name}"
    [ "$(ls "$TMP/o" | wc -l)" -eq 3 ]
}

@test "stdin input, and NIfTI input converted (NIfTI-1 -> NIfTI-2)" {
    run_pipe 0 "vol-import '$CH2' | vol-export -o '$TMP/o'"
    [ -f "$TMP/o/ch2.nii.gz" ]
    run_tool 0 vol-export --nifti2 "$CH2" -o "$TMP/n2"
    gzip -dc "$TMP/n2/ch2.nii.gz" | head -c 4 >"$TMP/h"
    [ "$(field "$TMP/h" 0 d4)" = 540 ]
    cmp <(gzip -dc "$TMP/n2/ch2.nii.gz" | tail -c +545) <(gzip -dc "$CH2" | tail -c +353)
}

@test "bad input or unwritable output: one error line, exit 1" {
    phantom --shape 4x8x8 --count 2 -o "$TMP/p.lsdm"
    head -c 300 "$TMP/p.lsdm" >"$TMP/cut.lsdm"
    run_tool 1 vol-export "$TMP/cut.lsdm" -o "$TMP/o"
    assert_one_error_line vol-export
    [[ "$stderr" == *"truncated"* ]]
    [ -z "$(ls -A "$TMP/o")" ]
    touch "$TMP/file"
    run_tool 1 vol-export "$TMP/p.lsdm" -o "$TMP/file/sub"
    assert_one_error_line vol-export
    [[ "$stderr" == *"cannot make directory"* ]]
    run_tool 1 vol-export "$TMP/missing.lsdm" -o "$TMP/o"
    assert_one_error_line vol-export
    run_tool 2 vol-export "$TMP/p.lsdm" "$TMP/p.lsdm"
    [[ "${stderr_lines[0]}" == "vol-export: error: one INPUT at most (got 2)" ]]
    run_tool 2 vol-export "$TMP/p.lsdm" -o -
    [[ "${stderr_lines[0]}" == "vol-export: error: -o: NIfTI files go to a directory or a pattern"* ]]
}

@test "-o FILE.nii.gz writes that one file; a second record is refused" {
    phantom --seed 4 --shape 4x8x8 --masks "$TMP/m.lsdm" -o /dev/null
    run_tool 0 vol-export "$TMP/m.lsdm" -o "$TMP/one.nii.gz"
    [ -f "$TMP/one.nii.gz" ]
    run_tool 0 vol-import --labels "$TMP/one.nii.gz" -o "$TMP/back.lsdm"
    run_tool 0 vol-diff "$TMP/m.lsdm" "$TMP/back.lsdm"
    phantom --seed 4 --count 2 --shape 4x8x8 -o "$TMP/two.lsdm"
    run_tool 1 vol-export "$TMP/two.lsdm" -o "$TMP/two.nii"
    assert_one_error_line vol-export
}
