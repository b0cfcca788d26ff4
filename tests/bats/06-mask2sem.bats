#!/usr/bin/env bats
# mask2sem: label remapping, resampling, crop/pad, blocks, encodings, and
# de-identification (no byte of NIfTI text fields, extensions, stream keys
# or file names in the output), on small made-up volumes and on the AAL
# atlas (mricron-data).
load helper

setup() {
    setup_tmp
    DATA="$TOP/tests/mask2sem-data.py"
    MAP="$TOP/tests/data/aal-groups.map"
    AAL="$TEMPLATES/aal.nii.gz"
    CH2="$TEMPLATES/ch2.nii.gz"
}

need_templates() { [ -f "$AAL" ] && [ -f "$CH2" ] || skip "mricron-data not installed"; }

# Header lines, data hash, value counts (and one-hot checks) of a stream.
dump() { zstd -dc "$1" | python3 "$DATA" dump "${@:2}"; }
# marked OUT: the small label volume (D,H,W 6,10,12; labels 0..3, 180 each).
marked() { python3 "$DATA" marked "$@"; }

# refute_bytes FILE STRING: FILE must not contain STRING anywhere.
refute_bytes() {
    if grep -a -q -F -- "$2" "$1"; then echo "'$2' found in $1" >&2; return 1; fi
}

# The output and its decompressed bytes hold none of the markers.
assert_clean() {
    local out=$1; shift
    zstd -dc "$out" > "$out.raw"
    [ -s "$out.raw" ]
    for m in "$@"; do
        refute_bytes "$out" "$m"
        refute_bytes "$out.raw" "$m"
    done
}

# --------------------------------------------------------------- basics

@test "--help prints usage; a small mask becomes class indices with geometry" {
    run_tool 0 mask2sem --help
    [[ "$output" == "Usage: mask2sem "* ]]
    marked "$TMP/m.nii.gz" MKx
    run_tool 0 mask2sem "$TMP/m.nii.gz" -o "$TMP/o.lsdm"
    [ -z "$stderr" ]
    run_tool 0 dump "$TMP/o.lsdm"
    [ "${lines[0]}" = "record 0" ]
    [ "${lines[1]}" = "dtype: u8" ]
    [ "${lines[2]}" = "shape: 1,6,10,12" ]
    [ "${lines[3]}" = "name: mask-0000" ]
    [ "${lines[4]}" = "role: semantic" ]
    [ "${lines[5]}" = "encoding: labels" ]
    [ "${lines[6]}" = "classes: 4" ]
    [ "${lines[7]}" = "labels: 0=background,1=class1,2=class2,3=class3" ]
    # NIfTI srow (i,j,k) columns in record order (d,h,w) = (k,j,i)
    [ "${lines[8]}" = "affine: 0 0 1.5 -10 0 1.25 0 20 2 0 0 -3.5 0 0 0 1" ]
    [ "${lines[9]}" = "spacing: 2 1.25 1.5" ]
    [ "${lines[10]}" = "provenance: mask2sem/0.1.0" ]
    # the voxels are the NIfTI's, byte for byte
    want=$(python3 "$DATA" nifti "$TMP/m.nii.gz" | head -1)
    [ "${lines[11]}" = "$want" ]
    [ "${lines[12]}" = "count 0: 180" ]
    [ "${lines[15]}" = "count 3: 180" ]
    [ "${lines[16]}" = "end: 1" ]
}

# ------------------------------------------------------- de-identification

@test "no byte of descrip, intent, aux, db name, DICOM/JSON extensions or file name survives" {
    marked "$TMP/MKfile7_Doe^John.nii.gz" MKmark7
    marked "$TMP/MKfile8_Roe.nii" MKmark8 --dtype i16
    # the markers really are in the inputs, in every field
    zcat "$TMP/MKfile7_Doe^John.nii.gz" > "$TMP/in.raw"
    for m in MKmark7-descrip MKmark7-int MKmark7-aux MKmark7-db 'MKmark7^DICOM^Doe' '"PatientName": "MKmark7-json"'; do
        grep -a -q -F -- "$m" "$TMP/in.raw" || { echo "marker $m not planted"; return 1; }
    done
    grep -a -q -F MKmark8-descrip "$TMP/MKfile8_Roe.nii"
    for mode in "" "--onehot" "--onehot --dtype u8 --spacing 1,1,1 --crop 8x8x8"; do
        # shellcheck disable=SC2086
        run_tool 0 mask2sem $mode "$TMP/MKfile7_Doe^John.nii.gz" "$TMP/MKfile8_Roe.nii" -o "$TMP/o.lsdm"
        assert_clean "$TMP/o.lsdm" MKmark MKfile Doe Roe John PatientName DICOM json
        run_tool 0 dump "$TMP/o.lsdm"
        [ "$(grep -c '^name: ' <<<"$output")" -eq 2 ]
        grep -q '^name: mask-0000$' <<<"$output"
        grep -q '^name: mask-0001$' <<<"$output"
    done
    # a directory and an archive of them: member names are file names too
    mkdir "$TMP/MKdir9"
    cp "$TMP/MKfile7_Doe^John.nii.gz" "$TMP/MKfile8_Roe.nii" "$TMP/MKdir9/"
    tar -C "$TMP" -czf "$TMP/MKtar9.tar.gz" MKdir9
    run_tool 0 mask2sem "$TMP/MKdir9" "$TMP/MKtar9.tar.gz" -o "$TMP/o.lsdm"
    assert_clean "$TMP/o.lsdm" MKmark MKfile MKdir MKtar Doe Roe John
    run_tool 0 dump "$TMP/o.lsdm"
    [ "$(grep '^name: ' <<<"$output" | tr '\n' ' ')" = "name: mask-0000 name: mask-0001 name: mask-0002 name: mask-0003 " ]
}

@test "stream input: every key but geometry and class names is dropped (whitelist)" {
    python3 "$DATA" stream "$TMP/in.lsdm" "name=MKname-Doe" role=labels "patient-id=MKpid4711" \
        "description=MKdesc scan" "provenance=vol-import/0.1.0 MKprov" "x-sidecar={\"PatientName\":\"MKjs\"}" \
        "affine=0 0 -2 7 0 3 0 -1 1 0 0 0.5 0 0 0 1" "spacing=1 3 2" "labels=0=bg,1=liver,2=kidney,3=spleen" \
        "affine-source=sform"
    zstd -dc "$TMP/in.lsdm" | grep -a -q MKpid4711
    run_tool 0 mask2sem "$TMP/in.lsdm" -o "$TMP/o.lsdm"
    assert_clean "$TMP/o.lsdm" MKname MKpid MKdesc MKprov MKjs PatientName Doe vol-import sform
    run_tool 0 dump "$TMP/o.lsdm"
    keys=$(sed -n '2,/^data-sha256/p' <<<"$output" | grep -v '^data-sha256' | cut -d: -f1 | tr '\n' ' ')
    [ "$keys" = "dtype shape name role encoding classes labels affine spacing provenance " ]
    grep -qx 'affine: 0 0 -2 7 0 3 0 -1 1 0 0 0.5 0 0 0 1' <<<"$output"
    grep -qx 'spacing: 1 3 2' <<<"$output"
    # class names kept when labels are kept as they are
    grep -qx 'labels: 0=bg,1=liver,2=kidney,3=spleen' <<<"$output"
    # a map renames: the input's names no longer apply
    run_tool 0 mask2sem --map '0=0,1-3=1' "$TMP/in.lsdm" -o "$TMP/o.lsdm"
    assert_clean "$TMP/o.lsdm" liver kidney spleen
    run_tool 0 dump "$TMP/o.lsdm"
    grep -qx 'labels: 0=background,1=class1' <<<"$output"
}

@test "--drop-affine keeps the spacing only; --name patterns are generic" {
    marked "$TMP/m.nii.gz" MKx
    run_tool 0 mask2sem --drop-affine --name 'case-%03d%%' "$TMP/m.nii.gz" "$TMP/m.nii.gz" -o "$TMP/o.lsdm"
    run_tool 0 dump "$TMP/o.lsdm"
    [ "$(grep -c '^affine' <<<"$output")" -eq 0 ]
    [ "$(grep -c '^spacing: 2 1.25 1.5$' <<<"$output")" -eq 2 ]
    [ "$(grep '^name: ' <<<"$output" | tr '\n' ' ')" = "name: case-000% name: case-001% " ]
    # the position is gone from the bytes too: -10 and 20 and -3.5 were the translation
    assert_clean "$TMP/o.lsdm" "-3.5" "affine"
    run_tool 2 mask2sem --name 'x-%s' "$TMP/m.nii.gz"
    assert_one_error_line_usage
    run_tool 2 mask2sem --name '%d-%d' "$TMP/m.nii.gz"
}

assert_one_error_line_usage() {
    [[ "${stderr_lines[0]}" == "mask2sem: error: "* ]] || return 1
    [[ "${stderr_lines[1]}" == "Try 'mask2sem --help'"* ]] || return 1
    [ "${#stderr_lines[@]}" -eq 2 ]
}

# --------------------------------------------------------------- labels

@test "--map inline and from a file, --names, --classes, --unknown background" {
    marked "$TMP/m.nii.gz" MKx
    run_tool 0 mask2sem --map '0=0, 1-2=1, 3=2' --names '0=bg,1=organ,2=lesion' "$TMP/m.nii.gz" -o "$TMP/o.lsdm"
    run_tool 0 dump "$TMP/o.lsdm"
    grep -qx 'classes: 3' <<<"$output"
    grep -qx 'labels: 0=bg,1=organ,2=lesion' <<<"$output"
    [ "$(grep '^count' <<<"$output" | tr '\n' ' ')" = "count 0: 180 count 1: 360 count 2: 180 " ]
    # '*' catches the rest; --classes widens; unnamed classes get default names
    run_tool 0 mask2sem --map '3=4,*=1' --classes 6 "$TMP/m.nii.gz" -o "$TMP/o.lsdm"
    run_tool 0 dump "$TMP/o.lsdm"
    grep -qx 'classes: 6' <<<"$output"
    grep -qx 'labels: 0=background,1=class1,2=class2,3=class3,4=class4,5=class5' <<<"$output"
    [ "$(grep '^count' <<<"$output" | tr '\n' ' ')" = "count 1: 540 count 4: 180 " ]
    # labels the map lacks (0 and 3) become background on request
    run_tool 0 mask2sem --map '1-2=1' --unknown background "$TMP/m.nii.gz" -o "$TMP/o.lsdm"
    run_tool 0 dump "$TMP/o.lsdm"
    [ "$(grep '^count' <<<"$output" | tr '\n' ' ')" = "count 0: 360 count 1: 360 " ]
    # a map file: names from the file
    printf '# test\n0 0 air\n1-2 2 soft tissue  # two words\n3 1 bone\n' > "$TMP/x.map"
    run_tool 0 mask2sem --map "@$TMP/x.map" "$TMP/m.nii.gz" -o "$TMP/o.lsdm"
    run_tool 0 dump "$TMP/o.lsdm"
    grep -qx 'labels: 0=air,1=bone,2=soft tissue' <<<"$output"
    [ "$(grep '^count' <<<"$output" | tr '\n' ' ')" = "count 0: 180 count 1: 180 count 2: 360 " ]
}

@test "bad input: unknown label, malformed map, too few classes, an image, a one-hot volume" {
    marked "$TMP/m.nii.gz" MKx
    run_tool 1 mask2sem --map '0-2=1' "$TMP/m.nii.gz" -o "$TMP/o.lsdm"
    assert_one_error_line mask2sem
    [[ "$stderr" == *"label 3 is not in the label map"* ]]
    [ ! -e "$TMP/o.lsdm" ]
    [ -z "$(ls -A "$TMP" | grep lsdm-tmp)" ]
    run_tool 1 mask2sem --map '1=2,1=3' "$TMP/m.nii.gz"
    assert_one_error_line mask2sem
    [[ "$stderr" == *"label 1 is mapped twice"* ]]
    run_tool 1 mask2sem --map '1=x' "$TMP/m.nii.gz"
    assert_one_error_line mask2sem
    printf '0 0\n1 1 a\nnonsense\n' > "$TMP/bad.map"
    run_tool 1 mask2sem --map "@$TMP/bad.map" "$TMP/m.nii.gz"
    assert_one_error_line mask2sem
    [[ "$stderr" == *"bad.map:3: "* ]]
    run_tool 1 mask2sem --map "@$TMP/missing.map" "$TMP/m.nii.gz"
    assert_one_error_line mask2sem
    # too few classes: from the data, from the map, from the names
    run_tool 1 mask2sem --classes 3 "$TMP/m.nii.gz"
    assert_one_error_line mask2sem
    [[ "$stderr" == *"label 3 gives class 3, but there are only 3 classes"* ]]
    run_tool 1 mask2sem --classes 2 --map '*=2' "$TMP/m.nii.gz"
    assert_one_error_line mask2sem
    [[ "$stderr" == *"gives class 2, but there are only 2 classes"* ]]
    run_tool 1 mask2sem --classes 4 --names '0=a,5=b' "$TMP/m.nii.gz"
    assert_one_error_line mask2sem
    # an image (non-integral floats) given as a mask
    marked "$TMP/img.nii.gz" MKx --frac
    run_tool 1 mask2sem "$TMP/img.nii.gz" -o "$TMP/o.lsdm"
    assert_one_error_line mask2sem
    [ ! -e "$TMP/o.lsdm" ]
    # a one-hot tensor is not a mask
    run_tool 0 mask2sem --onehot "$TMP/m.nii.gz" -o "$TMP/oh.lsdm"
    run_tool 1 mask2sem "$TMP/oh.lsdm"
    assert_one_error_line mask2sem
    [[ "$stderr" == *"a mask is one D,H,W volume"* ]]
    # a missing input, a truncated stream
    run_tool 1 mask2sem "$TMP/none.nii.gz"
    assert_one_error_line mask2sem
    head -c 100 "$TMP/oh.lsdm" > "$TMP/cut.lsdm"
    run_tool 1 mask2sem "$TMP/cut.lsdm"
    assert_one_error_line mask2sem
}

@test "usage errors exit 2" {
    marked "$TMP/m.nii.gz" MKx
    for args in "--like $TMP/m.nii.gz --spacing 1,1,1" "--offset 1,2,3" "--stride 4" "--drop-partial" \
        "--dtype f16" "--onehot --dtype i16" "--unknown keep" "--classes 0" "--classes 257" \
        "--shape 4x4" "--spacing 1,0,1" "--crop 0x4x4" "--crop 4x4x4 --offset 1,2" "--blocks 0"; do
        # shellcheck disable=SC2086
        run_tool 2 mask2sem $args "$TMP/m.nii.gz"
        assert_one_error_line_usage || { echo "args: $args: $stderr"; return 1; }
    done
}

# ------------------------------------------------------- grids and blocks

@test "crop/pad at an offset: voxels and world positions kept" {
    marked "$TMP/m.nii.gz" MKx
    run_tool 0 mask2sem --crop 3x4x5 --offset -1,2,3 "$TMP/m.nii.gz" -o "$TMP/o.lsdm"
    # output (d,h,w) = input (d-1, h+2, w+3); label ((z//2) + (y//5)*2 + (x//6)) % 4
    run_tool 0 dump "$TMP/o.lsdm" --at 0,0,3,4 --at 0,1,3,3 --at 0,2,3,0 --at 0,1,0,4 --at 0,1,0,0
    grep -qx 'shape: 1,3,4,5' <<<"$output"
    grep -qx 'affine: 0 0 1.5 -5.5 0 1.25 0 22.5 2 0 0 -5.5 0 0 0 1' <<<"$output"
    grep -qx 'at 0,0,3,4: 00' <<<"$output"   # padding
    grep -qx 'at 0,1,3,3: 03' <<<"$output"   # z0 y5 x6
    grep -qx 'at 0,2,3,0: 02' <<<"$output"   # z1 y5 x3
    grep -qx 'at 0,1,0,4: 01' <<<"$output"   # z0 y2 x7
    grep -qx 'at 0,1,0,0: 00' <<<"$output"   # z0 y2 x3
    grep -qx 'count 0: 38' <<<"$output"      # 20 padded + 2 slices of y2-4 x3-5
}

@test "resampling between voxel centres: 2x up about the centre, and back" {
    marked "$TMP/m.nii.gz" MKx
    run_tool 0 mask2sem --shape 12x20x24 "$TMP/m.nii.gz" -o "$TMP/up.lsdm"
    run_tool 0 dump "$TMP/up.lsdm"
    grep -qx 'shape: 1,12,20,24' <<<"$output"
    # half the spacing, the same world centre (-1.75, 25.625, 1.5)
    grep -qx 'affine: 0 0 0.75 -10.375 0 0.625 0 19.6875 1 0 0 -4 0 0 0 1' <<<"$output"
    grep -qx 'spacing: 1 0.625 0.75' <<<"$output"
    # output i sits at input 0.5*i - 0.25: every voxel exactly twice per axis
    [ "$(grep '^count' <<<"$output" | tr '\n' ' ')" = "count 0: 1440 count 1: 1440 count 2: 1440 count 3: 1440 " ]
    # back onto the original grid: input j is at 2j + 0.5, a half rounding up to a copy of j
    run_tool 0 mask2sem "$TMP/up.lsdm" --like "$TMP/m.nii.gz" -o "$TMP/back.lsdm"
    run_tool 0 mask2sem "$TMP/m.nii.gz" -o "$TMP/m.lsdm"
    cmp "$TMP/back.lsdm" "$TMP/m.lsdm"
}

@test "an axis flip (and LPS vs RAS) undone through the affines is exact" {
    marked "$TMP/m.nii.gz" MKx
    for axes in i j k ij ijk; do
        python3 "$DATA" flip "$TMP/m.nii.gz" "$TMP/f.nii.gz" $axes
        [ "$(python3 "$DATA" nifti "$TMP/f.nii.gz" | head -1)" != "$(python3 "$DATA" nifti "$TMP/m.nii.gz" | head -1)" ]
        run_tool 0 mask2sem "$TMP/f.nii.gz" --like "$TMP/m.nii.gz" -o "$TMP/f.lsdm"
        run_tool 0 mask2sem "$TMP/m.nii.gz" -o "$TMP/m.lsdm"
        cmp "$TMP/f.lsdm" "$TMP/m.lsdm" || { echo "flip $axes differs"; return 1; }
    done
}

@test "blocks along depth: stride, padded or dropped last block, names and affines" {
    marked "$TMP/m.nii.gz" MKx
    # 6 slices, blocks of 4 every 2: starts 0 and 2, none partial
    run_tool 0 mask2sem --blocks 4 --stride 2 "$TMP/m.nii.gz" -o "$TMP/o.lsdm"
    run_tool 0 dump "$TMP/o.lsdm"
    [ "$(grep '^name: ' <<<"$output" | tr '\n' ' ')" = "name: mask-0000-b00 name: mask-0000-b01 " ]
    [ "$(grep -c '^shape: 1,4,10,12$' <<<"$output")" -eq 2 ]
    grep -qx 'affine: 0 0 1.5 -10 0 1.25 0 20 2 0 0 0.5 0 0 0 1' <<<"$output"
    want=$(python3 "$DATA" nifti "$TMP/m.nii.gz" --slices 2:6 | head -1)
    [ "$(grep '^data-sha256' <<<"$output" | tail -1)" = "$want" ]
    # blocks of 4 every 4: the second is slices 4-5 plus two of padding
    run_tool 0 mask2sem --blocks 4 "$TMP/m.nii.gz" -o "$TMP/o.lsdm"
    run_tool 0 dump "$TMP/o.lsdm"
    [ "$(grep -c '^record' <<<"$output")" -eq 2 ]
    grep -qx 'affine: 0 0 1.5 -10 0 1.25 0 20 2 0 0 4.5 0 0 0 1' <<<"$output"
    [ "$(grep '^data-sha256' <<<"$output" | head -1)" = "$(python3 "$DATA" nifti "$TMP/m.nii.gz" --slices 0:4 | head -1)" ]
    # slices 4-5 hold 60 voxels of each label; 240 padded voxels are background
    [ "$(sed -n '/^record 1/,$p' <<<"$output" | grep '^count' | tr '\n' ' ')" = "count 0: 300 count 1: 60 count 2: 60 count 3: 60 " ]
    run_tool 0 mask2sem --blocks 4 --drop-partial "$TMP/m.nii.gz" -o "$TMP/o.lsdm"
    run_tool 0 dump "$TMP/o.lsdm"
    [ "$(grep -c '^record' <<<"$output")" -eq 1 ]
    # fewer slices than a block and --drop-partial: nothing written, said so
    run_tool 0 mask2sem --blocks 8 --drop-partial "$TMP/m.nii.gz" -o "$TMP/o.lsdm"
    [[ "$stderr" == "mask2sem: volume 0: 6 slices, no whole block of 8"* ]]
    run_tool 0 dump "$TMP/o.lsdm"
    [ "$output" = "end: 0" ]
}

@test "one-hot in every dtype: one channel set per voxel, argmax = class indices" {
    marked "$TMP/m.nii.gz" MKx
    run_tool 0 mask2sem "$TMP/m.nii.gz" -o "$TMP/c.lsdm"
    idx=$(dump "$TMP/c.lsdm" | sed -n 's/^data-sha256: //p')
    for t in f16 bf16 f32 u8; do
        run_tool 0 mask2sem --onehot --dtype $t --classes 6 "$TMP/m.nii.gz" -o "$TMP/o.lsdm"
        run_tool 0 dump "$TMP/o.lsdm" --at 3,5,9,11 --at 0,5,9,11
        grep -qx "dtype: $t" <<<"$output"
        grep -qx 'shape: 6,6,10,12' <<<"$output"
        grep -qx 'encoding: onehot' <<<"$output"
        grep -qx 'classes: 6' <<<"$output"
        grep -qx 'onehot: ok' <<<"$output"
        grep -qx "argmax-sha256: $idx" <<<"$output"
    done
    # voxel (5,9,11): z5 y9 x11 -> (2 + 2 + 1) % 4 = 1; in f32 channel 3 is 0... and channel 1 is 1.0
    run_tool 0 mask2sem --onehot --dtype f32 "$TMP/m.nii.gz" -o "$TMP/o.lsdm"
    run_tool 0 dump "$TMP/o.lsdm" --at 1,5,9,11 --at 0,5,9,11
    grep -qx 'at 1,5,9,11: 0000803f' <<<"$output"
    grep -qx 'at 0,5,9,11: 00000000' <<<"$output"
}

@test "phantom masks: class names carried, every record converted" {
    [ -x "$BIN/phantom" ] || skip "phantom not built"
    run_tool 0 phantom --seed 3 --count 2 --shape 8x32x32 -o "$TMP/img.lsdm" --masks "$TMP/masks.lsdm"
    run_tool 0 mask2sem --onehot "$TMP/masks.lsdm" -o "$TMP/o.lsdm"
    run_tool 0 dump "$TMP/o.lsdm"
    [ "$(grep -c '^onehot: ok$' <<<"$output")" -eq 2 ]
    [ "$(grep -c '^labels: 0=background,1=fat,2=fibroglandular,3=vessel,4=muscle$' <<<"$output")" -eq 2 ]
    [ "$(grep -c '^shape: 5,8,32,32$' <<<"$output")" -eq 2 ]
    [ "$(grep -c phantom-s3 <<<"$output")" -eq 0 ]
    # the images are not masks
    run_tool 1 mask2sem "$TMP/img.lsdm"
    assert_one_error_line mask2sem
    [[ "$stderr" == *"not an integer label"* ]]
}

# ------------------------------------------------------- real data: AAL

@test "AAL grouped by a map file, --like ch2 (same grid) is exact" {
    need_templates
    run_tool 0 mask2sem "$AAL" --like "$CH2" -o "$TMP/id.lsdm"
    run_tool 0 dump "$TMP/id.lsdm"
    grep -qx 'shape: 1,181,217,181' <<<"$output"
    grep -qx 'classes: 117' <<<"$output"
    grep -qx 'affine: 0 0 1 -90 0 1 0 -125 1 0 0 -71 0 0 0 1' <<<"$output"
    # every voxel is the atlas's own label
    [ "$(grep '^data-sha256' <<<"$output")" = "$(python3 "$DATA" nifti "$AAL" | head -1)" ]
    run_tool 0 mask2sem --map "@$MAP" "$AAL" -o "$TMP/g.lsdm"
    run_tool 0 mask2sem --map "@$MAP" "$AAL" --like "$CH2" -o "$TMP/gl.lsdm"
    cmp "$TMP/g.lsdm" "$TMP/gl.lsdm"
    run_tool 0 dump "$TMP/g.lsdm"
    grep -qx 'classes: 8' <<<"$output"
    grep -qx 'labels: 0=background,1=frontal,2=limbic,3=occipital,4=parietal,5=subcortical,6=temporal,7=cerebellum' <<<"$output"
    # per-class counts = the atlas's label counts summed over each group
    want=$(python3 "$DATA" nifti "$AAL" | awk '/^count/ { l = $2 + 0; n = $3
        c = l == 0 ? 0 : (l <= 28 || l == 69 || l == 70) ? 1 : l <= 42 ? 2 : l <= 56 ? 3 : l <= 68 ? 4 : l <= 78 ? 5 : l <= 90 ? 6 : 7
        s[c] += n } END { for (c = 0; c < 8; c++) printf "count %d: %d ", c, s[c] }')
    [ "$(grep '^count' <<<"$output" | tr '\n' ' ')" = "$want" ]
}

@test "AAL in LPS order onto the RAS ch2 grid is identical" {
    need_templates
    python3 "$DATA" flip "$AAL" "$TMP/aal-lps.nii.gz" ij
    run_tool 0 mask2sem --map "@$MAP" "$TMP/aal-lps.nii.gz" --like "$CH2" -o "$TMP/lps.lsdm"
    run_tool 0 mask2sem --map "@$MAP" "$AAL" -o "$TMP/ras.lsdm"
    cmp "$TMP/lps.lsdm" "$TMP/ras.lsdm"
    # without the resampling the voxel order differs
    run_tool 0 mask2sem --map "@$MAP" "$TMP/aal-lps.nii.gz" -o "$TMP/raw.lsdm"
    run cmp -s "$TMP/raw.lsdm" "$TMP/ras.lsdm"
    [ "$status" -eq 1 ]
}

@test "AAL at 2 mm: per-class counts 1/8 of the 1 mm counts, one-hot sums to 1" {
    need_templates
    run_tool 0 mask2sem --map "@$MAP" "$AAL" -o "$TMP/1mm.lsdm"
    run_tool 0 mask2sem --map "@$MAP" "$AAL" --spacing 2,2,2 -o "$TMP/2mm.lsdm"
    dump "$TMP/1mm.lsdm" > "$TMP/1mm.txt"
    dump "$TMP/2mm.lsdm" > "$TMP/2mm.txt"
    grep -qx 'shape: 1,91,109,91' "$TMP/2mm.txt"
    grep -qx 'spacing: 2 2 2' "$TMP/2mm.txt"
    # the same world centre: voxel 45,54,45 at 2 mm is voxel 90,108,90 at 1 mm
    grep -qx 'affine: 0 0 2 -90 0 2 0 -125 2 0 0 -71 0 0 0 1' "$TMP/2mm.txt"
    paste <(grep '^count' "$TMP/1mm.txt") <(grep '^count' "$TMP/2mm.txt") > "$TMP/counts"
    [ "$(wc -l < "$TMP/counts")" -eq 8 ]
    awk '{ r = $6 * 8 / $3; if (r < 0.97 || r > 1.03) { print "class " $2 " ratio " r; bad = 1 } } END { exit bad }' "$TMP/counts"
    # the same at --shape (extent kept), and one-hot at 2 mm in f16
    run_tool 0 mask2sem --map "@$MAP" "$AAL" --shape 91x109x91 --spacing 2,2,2 --onehot -o "$TMP/oh.lsdm"
    run_tool 0 dump "$TMP/oh.lsdm"
    grep -qx 'shape: 8,91,109,91' <<<"$output"
    grep -qx 'onehot: ok' <<<"$output"
    [ "$(sed -n 's/^argmax-sha256: //p' <<<"$output")" = "$(sed -n 's/^data-sha256: //p' "$TMP/2mm.txt")" ]
}

@test "AAL one-hot at 1 mm (u8) sums to 1 everywhere" {
    need_templates
    run_tool 0 mask2sem --map "@$MAP" "$AAL" --onehot --dtype u8 -o "$TMP/oh.lsdm"
    run_tool 0 dump "$TMP/oh.lsdm"
    grep -qx 'shape: 8,181,217,181' <<<"$output"
    grep -qx 'onehot: ok' <<<"$output"
}

@test "AAL cropped to 32x256x256 (crop depth, pad in-plane) keeps world coordinates" {
    need_templates
    run_tool 0 mask2sem "$AAL" --crop 32x256x256 -o "$TMP/c.lsdm"
    run_tool 0 dump "$TMP/c.lsdm"
    grep -qx 'shape: 1,32,256,256' <<<"$output"
    # offset floor((181-32)/2), floor((217-256)/2), floor((181-256)/2) = 74,-20,-38:
    # translation (-90,-125,-71) + 74*(0,0,1) - 20*(0,1,0) - 38*(1,0,0)
    grep -qx 'affine: 0 0 1 -128 0 1 0 -145 1 0 0 3 0 0 0 1' <<<"$output"
    # in-plane nothing is lost: the labels of slices 74..105, plus padding
    python3 "$DATA" nifti "$AAL" --slices 74:106 | grep '^count' | grep -v '^count 0:' > "$TMP/want"
    grep '^count' <<<"$output" | grep -v '^count 0:' > "$TMP/got"
    diff "$TMP/want" "$TMP/got"
    # back onto the atlas grid: the slab in place, background elsewhere
    run_tool 0 mask2sem "$TMP/c.lsdm" --like "$AAL" -o "$TMP/back.lsdm"
    [ "$(dump "$TMP/back.lsdm" | grep '^data-sha256')" = "$(python3 "$DATA" nifti "$AAL" --slices 74:106 --zero-outside | head -1)" ]
}
