#!/usr/bin/env bats
# dice-eval: exact Dice values on hand-made label maps, empty classes,
# aggregates over records, the reference's global Dice, the three output
# formats, and every mismatch that must be an error.
load helper
setup() { setup_tmp; }

# mknii FILE DTYPE DxHxW d,h,w VALUES...: a NIfTI-1 file (gzip if FILE
# ends in .gz) with values in C order (w fastest), sform diag(spacing).
mknii() {
    python3 - "$@" <<'EOF'
import gzip, struct, sys
out, dt, shape, sp = sys.argv[1:5]
vals = sys.argv[5:]
D, H, W = map(int, shape.split('x'))
sd, sh, sw = map(float, sp.split(','))
code, bits, fmt = {'u8': (2, 8, 'B'), 'i16': (4, 16, 'h'), 'i32': (8, 32, 'i'), 'f32': (16, 32, 'f')}[dt]
assert len(vals) == D * H * W, 'need %d values' % (D * H * W)
h = bytearray(352)
struct.pack_into('<i', h, 0, 348)
struct.pack_into('<8h', h, 40, 3, W, H, D, 1, 1, 1, 1)
struct.pack_into('<hh', h, 70, code, bits)
struct.pack_into('<8f', h, 76, 1, sw, sh, sd, 1, 1, 1, 1)
struct.pack_into('<f', h, 108, 352)
struct.pack_into('<h', h, 254, 1)
struct.pack_into('<12f', h, 280, sw, 0, 0, 0, 0, sh, 0, 0, 0, 0, sd, 0)
h[344:348] = b'n+1\0'
data = struct.pack('<%d%s' % (len(vals), fmt), *[(float(v) if dt == 'f32' else int(v)) for v in vals])
(gzip.open if out.endswith('.gz') else open)(out, 'wb').write(bytes(h) + data)
EOF
}

# The worked example of the tests (1x2x4, classes 0..2):
#   ref   0 0 1 1 / 2 2 2 0      pred  0 1 1 1 / 2 2 0 0
#   class 0: |P|=3 |R|=3 I=2 -> 4/6;  class 1: 3, 2, 2 -> 4/5;
#   class 2: 2, 3, 2 -> 4/5;  mean-fg 0.8;  global (2*6+1)/(16+1) = 13/17
make_example() {
    mkdir -p "$TMP/pred" "$TMP/ref"
    mknii "$TMP/ref/a.nii" u8 1x2x4 1,1,1 0 0 1 1 2 2 2 0
    mknii "$TMP/pred/a.nii.gz" u8 1x2x4 1,1,1 0 1 1 1 2 2 0 0
}

# jcheck JSON PYTHON-EXPR...: each expression over d (the document) is true.
jcheck() {
    python3 -c '
import json, sys
d = json.loads(sys.argv[1])
close = lambda a, b: a is not None and abs(a - b) < 1e-12
for e in sys.argv[2:]:
    assert eval(e), (e, d)
' "$@"
}

@test "exact Dice per class, foreground mean and global on a hand-made pair" {
    make_example
    run_tool 0 dice-eval "$TMP/pred/a.nii.gz" "$TMP/ref/a.nii"
    [ "$(tr -s ' ' <<<"${lines[0]}")" = "record 0 1 2 mean-fg global" ]
    [ "$(tr -s ' ' <<<"${lines[1]}")" = "a 0.66667 0.80000 0.80000 0.80000 0.76471" ]
    [ "$(tr -s ' ' <<<"${lines[2]}")" = "(mean) 0.66667 0.80000 0.80000 0.80000 0.76471" ]
    [ "$(tr -s ' ' <<<"${lines[3]}")" = "(pooled) 0.66667 0.80000 0.80000 0.80000 0.76471" ]
    [ "${#lines[@]}" -eq 4 ]
    run_tool 0 dice-eval --json "$TMP/pred/a.nii.gz" "$TMP/ref/a.nii"
    r='d["records"][0]'
    jcheck "$output" "len(d['records']) == 1" "$r['name'] == 'a'" "$r['voxels'] == 8" \
        "$r['pred'] == [3, 3, 2] and $r['ref'] == [3, 2, 3] and $r['intersection'] == [2, 2, 2]" \
        "$r['dice'] == [4 / 6, 4 / 5, 4 / 5]" "$r['mean_foreground'] == 0.8" "$r['global'] == 13 / 17" \
        "d['classes'] == [{'id': 0, 'name': None}, {'id': 1, 'name': None}, {'id': 2, 'name': None}]"
}

@test "swapping PRED and REF gives the same Dice" {
    make_example
    run_tool 0 dice-eval --csv "$TMP/ref/a.nii" "$TMP/pred/a.nii.gz"
    # shortest form that reads back exactly: 0.8, but 2/3 needs 17 digits
    [ "${lines[1]}" = "a,0.66666666666666663,0.8,0.8,0.8,0.76470588235294112" ]
    swapped=${lines[1]}
    run_tool 0 dice-eval --csv "$TMP/pred/a.nii.gz" "$TMP/ref/a.nii"
    [ "${lines[1]/a,/}" = "${swapped/a,/}" ]
}

@test "a class empty in both maps is reported as empty, not scored or divided by 0" {
    make_example
    run_tool 0 dice-eval --classes 4 "$TMP/pred/a.nii.gz" "$TMP/ref/a.nii"
    [ "$(tr -s ' ' <<<"${lines[0]}")" = "record 0 1 2 3 mean-fg global" ]
    [ "$(tr -s ' ' <<<"${lines[1]}")" = "a 0.66667 0.80000 0.80000 empty 0.80000 0.76471" ]
    [ "$(tr -s ' ' <<<"${lines[3]}")" = "(pooled) 0.66667 0.80000 0.80000 empty 0.80000 0.76471" ]
    run_tool 0 dice-eval --classes 4 --json "$TMP/pred/a.nii.gz" "$TMP/ref/a.nii"
    jcheck "$output" "d['records'][0]['dice'][3] is None" "d['mean']['dice'][3] is None" \
        "d['pooled']['dice'][3] is None" "d['records'][0]['mean_foreground'] == 0.8" \
        "d['records'][0]['pred'][3] == 0 and d['records'][0]['ref'][3] == 0"
    run_tool 0 dice-eval --classes 4 --csv "$TMP/pred/a.nii.gz" "$TMP/ref/a.nii"
    [ "${lines[0]}" = "record,0,1,2,3,mean_foreground,global" ]
    [[ "${lines[1]}" == "a,0.66666666666666663,"*",,0.8"*",0.76470588235294112" ]]
    # only background: no foreground class at all -> the mean is empty
    mknii "$TMP/z1.nii" u8 1x1x4 1,1,1 0 0 0 0
    mknii "$TMP/z2.nii" u8 1x1x4 1,1,1 0 0 0 0
    run_tool 0 dice-eval --classes 2 "$TMP/z1.nii" "$TMP/z2.nii"
    [ "$(tr -s ' ' <<<"${lines[1]}")" = "z2 1.00000 empty empty 1.00000" ]
}

@test "aggregates: mean over records (empty left out) and pooled counts" {
    make_example
    # record b: identical maps without class 1
    mknii "$TMP/ref/b.nii" u8 1x2x4 1,1,1 0 0 2 2 0 0 0 0
    mknii "$TMP/pred/b.nii" u8 1x2x4 1,1,1 0 0 2 2 0 0 0 0
    run_tool 0 dice-eval --json "$TMP/pred" "$TMP/ref"
    jcheck "$output" "[r['name'] for r in d['records']] == ['a', 'b']" \
        "d['records'][1]['dice'] == [1, None, 1]" "d['records'][1]['global'] == 1" \
        "close(d['mean']['dice'][0], (4 / 6 + 1) / 2)" "d['mean']['dice'][1] == 0.8" \
        "close(d['mean']['dice'][2], 0.9)" "close(d['mean']['mean_foreground'], 0.9)" \
        "close(d['mean']['global'], (13 / 17 + 1) / 2)" \
        "d['pooled']['voxels'] == 16" "d['pooled']['intersection'] == [8, 2, 4]" \
        "d['pooled']['pred'] == [9, 3, 4] and d['pooled']['ref'] == [9, 2, 5]" \
        "close(d['pooled']['dice'][0], 16 / 18) and close(d['pooled']['dice'][2], 8 / 9)" \
        "close(d['pooled']['mean_foreground'], (0.8 + 8 / 9) / 2)" "close(d['pooled']['global'], 29 / 33)"
    run_tool 0 dice-eval "$TMP/pred" "$TMP/ref"
    [ "$(tr -s ' ' <<<"${lines[2]}")" = "b 1.00000 empty 1.00000 1.00000 1.00000" ]
    [ "$(tr -s ' ' <<<"${lines[3]}")" = "(mean) 0.83333 0.80000 0.90000 0.90000 0.88235" ]
    [ "$(tr -s ' ' <<<"${lines[4]}")" = "(pooled) 0.88889 0.80000 0.88889 0.84444 0.87879" ]
}

@test "phantom masks against themselves: class names from the labels key, all 1" {
    phantom --seed 1 --count 2 --shape 8x32x32 -o /dev/null --masks "$TMP/m.lsdm"
    run_tool 0 dice-eval "$TMP/m.lsdm" "$TMP/m.lsdm"
    [ "$(tr -s ' ' <<<"${lines[0]}")" = "record background fat fibroglandular vessel muscle mean-fg global" ]
    [ "$(tr -s ' ' <<<"${lines[1]}")" = "phantom-s1-0000 1.00000 1.00000 1.00000 1.00000 1.00000 1.00000 1.00000" ]
    [ "${#lines[@]}" -eq 5 ]
    # a stream on standard input
    run_pipe 0 "phantom --seed 1 --count 2 --shape 8x32x32 -o /dev/null --masks - | dice-eval --csv - '$TMP/m.lsdm'"
    [ "${lines[0]}" = "record,background,fat,fibroglandular,vessel,muscle,mean_foreground,global" ]
    [ "${lines[3]}" = "(mean),1,1,1,1,1,1,1" ]
}

@test "two different phantoms: scores agree with the counts and the reference formula" {
    phantom --seed 1 --shape 8x48x48 --nifti "$TMP/a"
    phantom --seed 2 --shape 8x48x48 --nifti "$TMP/b"
    run_tool 0 dice-eval --json "$TMP/a/phantom-s1-0000_mask.nii.gz" "$TMP/b/phantom-s2-0000_mask.nii.gz"
    python3 -c '
import json, sys
d = json.loads(sys.argv[1])
r = d["records"][0]
P, R, I, V = r["pred"], r["ref"], r["intersection"], r["voxels"]
assert len(P) == 5 and sum(P) == V == sum(R) == 8 * 48 * 48
dice = [2 * i / (p + q) if p + q else None for p, q, i in zip(P, R, I)]
assert r["dice"] == dice, (r["dice"], dice)
fg = [x for x in dice[1:] if x is not None]
assert abs(r["mean_foreground"] - sum(fg) / len(fg)) < 1e-12
# Med-LSDM dice_coefficient(smooth=1) on one-hot maps over all classes
assert r["global"] == (2 * sum(I) + 1) / (sum(P) + sum(R) + 1)
assert r["global"] == (2 * sum(I) + 1) / (2 * V + 1)
assert 0.3 < r["global"] < 1 and r["mean_foreground"] < 0.9
' "$output"
}

@test "a float record is an error" {
    phantom --seed 1 --shape 4x8x8 -o "$TMP/i.lsdm" --masks "$TMP/m.lsdm"
    run_tool 1 dice-eval "$TMP/i.lsdm" "$TMP/m.lsdm"
    assert_one_error_line dice-eval
    [[ "$stderr" == *"PRED holds f32 values, not a label map"* ]]
    run_tool 1 dice-eval "$TMP/m.lsdm" "$TMP/i.lsdm"
    assert_one_error_line dice-eval
    [[ "$stderr" == *"REF holds f32 values"* ]]
    [ -z "$output" ]
    # a float NIfTI file with a non-integer value
    mknii "$TMP/f.nii" f32 1x1x4 1,1,1 0 1 1.5 0
    mknii "$TMP/g.nii" u8 1x1x4 1,1,1 0 1 1 0
    run_tool 1 dice-eval "$TMP/g.nii" "$TMP/f.nii"
    assert_one_error_line dice-eval
    [[ "$stderr" == *"non-integer value 1.5"* ]]
}

@test "shape and geometry mismatches are errors; --ignore-geometry lets the affine go" {
    make_example
    mknii "$TMP/shape.nii" u8 1x4x2 1,1,1 0 0 1 1 2 2 2 0
    run_tool 1 dice-eval "$TMP/pred/a.nii.gz" "$TMP/shape.nii"
    assert_one_error_line dice-eval
    [[ "$stderr" == *"shapes differ: PRED 1,1,2,4, REF 1,1,4,2"* ]]
    run_tool 1 dice-eval --ignore-geometry "$TMP/pred/a.nii.gz" "$TMP/shape.nii"
    assert_one_error_line dice-eval
    mknii "$TMP/geo.nii" u8 1x2x4 1,2,1 0 0 1 1 2 2 2 0
    run_tool 1 dice-eval "$TMP/pred/a.nii.gz" "$TMP/geo.nii"
    assert_one_error_line dice-eval
    [[ "$stderr" == *"affines differ"* ]]
    run_tool 0 dice-eval --ignore-geometry "$TMP/pred/a.nii.gz" "$TMP/geo.nii"
    [ "$(tr -s ' ' <<<"${lines[1]}")" = "geo 0.66667 0.80000 0.80000 0.80000 0.76471" ]
}

@test "names, record counts and labels that do not match are errors" {
    phantom --seed 1 --count 2 --shape 4x8x8 -o /dev/null --masks "$TMP/s1.lsdm"
    phantom --seed 2 --count 2 --shape 4x8x8 -o /dev/null --masks "$TMP/s2.lsdm"
    phantom --seed 1 --count 3 --shape 4x8x8 -o /dev/null --masks "$TMP/s3.lsdm"
    run_tool 1 dice-eval "$TMP/s1.lsdm" "$TMP/s2.lsdm"
    assert_one_error_line dice-eval
    [[ "$stderr" == *"record names differ: PRED 'phantom-s1-0000', REF 'phantom-s2-0000'"* ]]
    run_tool 1 dice-eval "$TMP/s1.lsdm" "$TMP/s3.lsdm"
    assert_one_error_line dice-eval
    [[ "$stderr" == *"s1.lsdm has 2 records, $TMP/s3.lsdm more"* ]]
    run_tool 1 dice-eval "$TMP/s3.lsdm" "$TMP/s1.lsdm"
    assert_one_error_line dice-eval
    [ -z "$output" ]
    # a label at or over --classes, and a negative label
    make_example
    run_tool 1 dice-eval --classes 2 "$TMP/pred/a.nii.gz" "$TMP/ref/a.nii"
    assert_one_error_line dice-eval
    [[ "$stderr" == *"label 2, outside 0..1 (--classes 2)"* ]]
    mknii "$TMP/neg.nii" i16 1x2x4 1,1,1 0 0 -1 1 2 2 2 0
    run_tool 1 dice-eval "$TMP/pred/a.nii.gz" "$TMP/neg.nii"
    assert_one_error_line dice-eval
    [[ "$stderr" == *"negative label -1"* ]]
    # a truncated stream
    size=$(stat -c %s "$TMP/s1.lsdm")
    head -c $((size - 20)) "$TMP/s1.lsdm" > "$TMP/cut.lsdm"
    run_tool 1 dice-eval "$TMP/s1.lsdm" "$TMP/cut.lsdm"
    assert_one_error_line dice-eval
    [[ "$stderr" == *"truncated"* ]]
}

@test "usage errors exit 2" {
    make_example
    for args in "" "$TMP/ref/a.nii" "$TMP/ref/a.nii $TMP/ref/a.nii $TMP/ref/a.nii" "- -" \
                "--json --csv $TMP/ref/a.nii $TMP/ref/a.nii" "--classes 0 $TMP/ref/a.nii $TMP/ref/a.nii" \
                "--classes x $TMP/ref/a.nii $TMP/ref/a.nii"; do
        run_tool 2 dice-eval $args
        [[ "${stderr_lines[0]}" == "dice-eval: error: "* ]] || { echo "$args: $stderr"; return 1; }
        [ -z "$output" ]
    done
}
