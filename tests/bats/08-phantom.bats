#!/usr/bin/env bats
# phantom: seeded synthetic image/label pairs. Shapes, keys and geometry,
# byte-identical output per seed, distinct anatomy across seeds, classes
# and intensities measured in the written files, NIfTI output, errors.
load helper
setup() { setup_tmp; }

# field NAME of the first JSON line of vol-info --json
info_field() { python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())[sys.argv[1]])' "$1"; }

# Per-class mean of a NIfTI image over a NIfTI label map (python stdlib):
# prints "class count mean" lines.
class_means() {
    python3 - "$1" "$2" <<'EOF'
import gzip, struct, sys
def load(path):
    b = gzip.open(path).read()
    dims = struct.unpack_from('<8h', b, 40)
    code = struct.unpack_from('<h', b, 70)[0]
    off = int(struct.unpack_from('<f', b, 108)[0])
    n = dims[1] * dims[2] * dims[3]
    fmt = {2: 'B', 4: 'h', 8: 'i', 16: 'f'}[code]
    return struct.unpack_from('<%d%s' % (n, fmt), b, off)
img, lab = load(sys.argv[1]), load(sys.argv[2])
s, c = {}, {}
for v, l in zip(img, lab):
    s[l] = s.get(l, 0) + v
    c[l] = c.get(l, 0) + 1
for l in sorted(c):
    print(l, c[l], '%.4f' % (s[l] / c[l]))
EOF
}

@test "default pair: shape, types, names, keys, centred RAS affine" {
    run_tool 0 phantom -o "$TMP/i.lsdm" --masks "$TMP/m.lsdm"
    [ -z "$output" ]
    run_tool 0 vol-info --json --no-stats "$TMP/i.lsdm"
    line=${lines[0]}
    [ "$(info_field shape <<<"$line")" = "[1, 32, 256, 256]" ]
    [ "$(info_field dtype <<<"$line")" = "f32" ]
    [ "$(info_field role <<<"$line")" = "image" ]
    [ "$(info_field name <<<"$line")" = "phantom-s0-0000" ]
    # diag(spacing) in NIfTI order (w->x, h->y, d->z), centre at 0
    [ "$(info_field affine <<<"$line")" = "[[0, 0, 0.7, -89.25], [0, 0.7, 0, -89.25], [2, 0, 0, -31], [0, 0, 0, 1]]" ]
    [ "$(info_field orientation <<<"$line")" = "RAS" ]
    [[ "$line" == *'"class-means":"0=0.00,1=0.80,2=0.35,3=0.90,4=0.20"'* ]]
    [[ "$line" == *'"provenance":"phantom/'*' seed=0 index=0"'* ]]
    run_tool 0 vol-info --json "$TMP/m.lsdm"
    line=${lines[0]}
    [ "$(info_field dtype <<<"$line")" = "u8" ]
    [ "$(info_field role <<<"$line")" = "labels" ]
    [ "$(info_field name <<<"$line")" = "phantom-s0-0000" ]
    [[ "$line" == *'"labels":"0=background,1=fat,2=fibroglandular,3=vessel,4=muscle"'* ]]
    [[ "$line" == *'"affine":"0 0 0.7 -89.25 '* ]]
    # labels 0..4, every class present
    python3 -c '
import json, sys
r = json.loads(sys.argv[1])
assert r["stats"]["min"] == 0 and r["stats"]["max"] == 4, r["stats"]
counts = {x["value"]: x["count"] for x in r["labels"]}
assert sorted(counts) == [0, 1, 2, 3, 4], counts
assert all(counts[c] > 0 for c in counts), counts
total = 32 * 256 * 256
assert 0.4 < counts[0] / total < 0.9 and counts[1] > counts[2] > counts[3], counts
' "$line"
}

@test "image values lie in [0,1]; spacing and shape options are used" {
    run_tool 0 phantom --seed 3 --shape 4x6x8 --spacing 3,1.5,0.5 -o "$TMP/i.lsdm"
    run_tool 0 vol-info --json "$TMP/i.lsdm"
    python3 -c '
import json, sys
r = json.loads(sys.argv[1])
assert r["shape"] == [1, 4, 6, 8], r["shape"]
assert r["affine"] == [[0, 0, 0.5, -1.75], [0, 1.5, 0, -3.75], [3, 0, 0, -4.5], [0, 0, 0, 1]], r["affine"]
assert r["spacing"] == [3, 1.5, 0.5]
s = r["stats"]
assert s["finite"] == 192 and 0 <= s["min"] and s["max"] <= 1, s
' "${lines[0]}"
    run_tool 0 phantom --seed 3 --shape 16x48x40 -o "$TMP/j.lsdm"
    run_tool 0 vol-info --json "$TMP/j.lsdm"
    python3 -c '
import json, sys
s = json.loads(sys.argv[1])["stats"]
assert s["count"] == 16 * 48 * 40 and s["min"] >= 0 and s["max"] <= 1 and 0.05 < s["mean"] < 0.6, s
' "${lines[0]}"
}

@test "the same seed gives identical bytes; other seeds give other anatomy" {
    phantom --seed 11 --count 2 --shape 8x32x32 -o "$TMP/a1" --masks "$TMP/m1"
    phantom --seed 11 --count 2 --shape 8x32x32 -o "$TMP/a2" --masks "$TMP/m2"
    cmp "$TMP/a1" "$TMP/a2"
    cmp "$TMP/m1" "$TMP/m2"
    phantom --seed 12 --count 2 --shape 8x32x32 -o "$TMP/a3" --masks "$TMP/m3"
    run cmp -s "$TMP/m1" "$TMP/m3"
    [ "$status" -eq 1 ]
    # the masks really differ (not just the names): compare the voxels
    run_tool 1 vol-diff --ignore-geometry "$TMP/m1" "$TMP/m3"
    # and the two records of one run differ from each other
    run_tool 0 vol-info --json "$TMP/m1"
    python3 -c '
import json, sys
a, b = (json.loads(l) for l in sys.argv[1:3])
assert a["name"] == "phantom-s11-0000" and b["name"] == "phantom-s11-0001"
assert [x["count"] for x in a["labels"]] != [x["count"] for x in b["labels"]]
' "${lines[0]}" "${lines[1]}"
}

@test "record I does not depend on --count" {
    phantom --seed 5 --count 2 --shape 8x24x24 -o "$TMP/two"
    phantom --seed 5 --count 3 --shape 8x24x24 -o "$TMP/three"
    run_tool 0 vol-info --json "$TMP/three"
    [ "${#lines[@]}" -eq 4 ] # 3 records and the summary
    [[ "${lines[2]}" == *'"name":"phantom-s5-0002"'* ]]
    three=("${lines[@]}")
    run_tool 0 vol-info --json "$TMP/two"
    [ "${lines[0]//two/X}" = "${three[0]//three/X}" ]
    [ "${lines[1]//two/X}" = "${three[1]//three/X}" ]
}

@test "class intensities match the class-means key (measured in NIfTI output)" {
    run_tool 0 phantom --seed 2 --shape 16x64x64 --spacing 1,1,1 --nifti "$TMP/n"
    [ -f "$TMP/n/phantom-s2-0000_image.nii.gz" ] && [ -f "$TMP/n/phantom-s2-0000_mask.nii.gz" ]
    run class_means "$TMP/n/phantom-s2-0000_image.nii.gz" "$TMP/n/phantom-s2-0000_mask.nii.gz"
    [ "$status" -eq 0 ]
    echo "$output"
    [ "${#lines[@]}" -eq 5 ] # every class present
    python3 -c '
import sys
want = {0: 0.025, 1: 0.80, 2: 0.35, 3: 0.90, 4: 0.20} # background: Rician floor 0.02*sqrt(pi/2)
for line in sys.argv[1].splitlines():
    c, n, m = line.split(); c, m = int(c), float(m)
    assert abs(m - want[c]) < 0.04, (c, m)
' "$output"
    # without noise the background is exactly 0
    run_tool 0 phantom --seed 2 --shape 16x64x64 --spacing 1,1,1 --noise 0 --nifti "$TMP/q"
    run class_means "$TMP/q/phantom-s2-0000_image.nii.gz" "$TMP/q/phantom-s2-0000_mask.nii.gz"
    [[ "${lines[0]}" == "0 "*" 0.0000" ]]
}

@test "--nifti writes the same voxels and geometry as the streams" {
    phantom --seed 4 --count 2 --shape 6x20x24 -o "$TMP/i.lsdm" --masks "$TMP/m.lsdm"
    run_tool 0 phantom --seed 4 --count 2 --shape 6x20x24 --nifti "$TMP/n"
    run ls "$TMP/n"
    [ "$output" = "$(printf '%s\n' phantom-s4-0000_image.nii.gz phantom-s4-0000_mask.nii.gz phantom-s4-0001_image.nii.gz phantom-s4-0001_mask.nii.gz)" ]
    mkdir "$TMP/img" "$TMP/lab"
    mv "$TMP"/n/*_image.nii.gz "$TMP/img"
    mv "$TMP"/n/*_mask.nii.gz "$TMP/lab"
    # identical voxels (the NIfTI affine is f32, compared below)
    run_tool 0 vol-diff --ignore-geometry "$TMP/img" "$TMP/i.lsdm"
    run_tool 0 vol-diff --ignore-geometry "$TMP/lab" "$TMP/m.lsdm"
    run_tool 0 vol-info --json --no-stats "$TMP/img/phantom-s4-0001_image.nii.gz"
    nii=${lines[0]}
    run_tool 0 vol-info --json --no-stats "$TMP/i.lsdm"
    python3 -c '
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert a["shape"] == b["shape"] == [1, 6, 20, 24]
for ra, rb in zip(a["affine"], b["affine"]):
    for x, y in zip(ra, rb):
        assert abs(x - y) < 1e-5, (a["affine"], b["affine"])
' "$nii" "${lines[1]}"
}

@test "streams to standard output, and the pair split over stdout and a file" {
    run_pipe 0 "phantom --seed 1 --shape 4x8x8 | vol-info --json --no-stats - | head -1"
    [[ "$output" == *'"name":"phantom-s1-0000"'*'"role":"image"'* ]]
    run_pipe 0 "phantom --seed 1 --shape 4x8x8 -o '$TMP/i.lsdm' --masks - | vol-info --json --no-stats - | head -1"
    [[ "$output" == *'"role":"labels"'* ]]
    [ -s "$TMP/i.lsdm" ]
}

@test "a 32x256x256 pair is made in reasonable time" {
    start=$(date +%s%N)
    phantom --seed 9 -o /dev/null --masks /dev/null
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    echo "took $ms ms"
    [ "$ms" -lt 5000 ]
}

@test "usage errors exit 2" {
    for args in "--shape 0x8x8" "--shape 8x8" "--shape 8x8x8x8" "--shape 4097x8x8" "--spacing 1,1" \
                "--spacing 0,1,1" "--spacing 1,1,1,1" "--count 0" "--seed -1" "--seed x" "--noise 2" \
                "--nifti $TMP/d -o $TMP/x" "--nifti $TMP/d --masks $TMP/x" "--masks -" "extra"; do
        run_tool 2 phantom $args
        [[ "${stderr_lines[0]}" == "phantom: error: "* ]] || { echo "$args: $stderr"; return 1; }
        [ -z "$output" ]
    done
}

@test "runtime errors exit 1 with one line and leave no output behind" {
    run_tool 1 phantom --shape 4x8x8 -o "$TMP/no/such/dir/i.lsdm"
    assert_one_error_line phantom
    touch "$TMP/file"
    run_tool 1 phantom --shape 4x8x8 --nifti "$TMP/file"
    assert_one_error_line phantom
    [[ "$stderr" == *"not a directory"* ]]
    echo precious > "$TMP/keep.lsdm"
    run_tool 1 phantom --shape 4x8x8 -o "$TMP/keep.lsdm" --masks "$TMP/no/dir/m.lsdm"
    assert_one_error_line phantom
    [ "$(cat "$TMP/keep.lsdm")" = precious ]
    [ -z "$(ls "$TMP" | grep lsdm-tmp || true)" ]
}
