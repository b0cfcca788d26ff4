load helper
load viewers
setup() { setup_tmp; }

@test "vol-info: header lines, every key, orientation and the record count" {
    phantom --seed 1 --count 2 --shape 4x16x16 -o "$TMP/im.lsdm"
    run_tool 0 vol-info "$TMP/im.lsdm"
    grep -qx "$TMP/im.lsdm \[0\] phantom-s1-0000" <<<"$output"
    grep -qx "$TMP/im.lsdm \[1\] phantom-s1-0001" <<<"$output"
    grep -qx '  role: *image' <<<"$output"
    grep -qx '  dtype: *f32' <<<"$output"
    grep -qx '  shape: *1,4,16,16  (C,D,H,W)' <<<"$output"
    grep -qx '  orientation: *RAS' <<<"$output"
    [ "$(tail -1 <<<"$output")" = "2 records in 1 input" ]
    # every header key of the JSON view (unknown ones too) is in the text
    vol-info --json "$TMP/im.lsdm" >"$TMP/json"
    printf '%s\n' "$output" >"$TMP/text"
    python3 - "$TMP/json" "$TMP/text" <<'PY'
import json, re, sys
text = open(sys.argv[2]).read().split("\n")
keys = json.loads(open(sys.argv[1]).readline())["keys"]
assert "class-means" in keys and len(keys) >= 5, keys
for k, v in keys.items():
    if k != "affine":
        assert any(re.fullmatch("  " + re.escape(k + ":") + " +" + re.escape(v), l) for l in text), (k, v)
PY
}

@test "vol-info: exact statistics in double precision" {
    mknii "$TMP/ramp.nii" f32 4x4x4 "d*16 + h*4 + w"
    run_tool 0 vol-info --json "$TMP/ramp.nii"
    [ "$(head -1 <<<"$output" | json_get 'L[0]["stats"]')" = \
      "{'count': 64, 'finite': 64, 'nan': 0, 'inf': 0, 'min': 0, 'max': 63, 'mean': 31.5, 'std': 18.472953201911167}" ]
    run_tool 0 vol-info "$TMP/ramp.nii"
    grep -qx '  mean: *31.5' <<<"$output"
    grep -qx '  std: *18.4729532' <<<"$output"
    # a large offset: a one-pass sum of squares would lose the 0.5 entirely
    mknii "$TMP/big.nii" i32 2x4x4 "1000000000 + w % 2"
    run_tool 0 vol-info --json "$TMP/big.nii"
    [ "$(head -1 <<<"$output" | json_get '(L[0]["stats"]["mean"], L[0]["stats"]["std"])')" = "(1000000000.5, 0.5)" ]
}

@test "vol-info: NaN and Inf are counted, the rest summarised" {
    mknii "$TMP/nf.nii" f32 2x2x4 \
        "nan if d+h+w == 0 else inf if (d,h,w) == (1,1,3) else -inf if (d,h,w) == (1,0,3) else w"
    run_tool 0 vol-info --json "$TMP/nf.nii"
    [ "$(head -1 <<<"$output" | json_get 'L[0]["stats"]')" = \
      "{'count': 16, 'finite': 13, 'nan': 1, 'inf': 2, 'min': 0, 'max': 3, 'mean': 1.3846153846153846, 'std': 1.002954216185023}" ]
    run_tool 0 vol-info "$TMP/nf.nii"
    grep -qx '  nan: *1' <<<"$output"
    grep -qx '  inf: *2' <<<"$output"
    # nothing finite: min/max are null in JSON, nan in text
    mknii "$TMP/allnan.nii" f32 1x2x2 "nan"
    run_tool 0 vol-info --json "$TMP/allnan.nii"
    [ "$(head -1 <<<"$output" | json_get '(L[0]["stats"]["min"], L[0]["stats"]["max"], L[0]["stats"]["nan"])')" = "(None, None, 4)" ]
    run_tool 0 vol-info "$TMP/allnan.nii"
    grep -qx '  min: *nan' <<<"$output"
}

@test "vol-info: orientation codes and the affine in record (d,h,w) order" {
    mknii "$TMP/ras.nii" u8 2x2x2 "0"
    mknii "$TMP/lps.nii" u8 2x2x2 "0" 1,1,1 "-1 0 0 0  0 -1 0 0  0 0 1 0"
    mknii "$TMP/psr.nii" u8 2x2x2 "0" 2,1,1 "0 0 2 10  -1 0 0 20  0 1 0 30"
    # oblique: i and j both lean to x; i leans more, so j is matched to y
    mknii "$TMP/obl.nii" u8 2x2x2 "0" 1,1,1 "0.9 0.8 0 0  0.1 0.6 0 0  0 0 1 0"
    run_tool 0 vol-info --json "$TMP/ras.nii" "$TMP/lps.nii" "$TMP/psr.nii" "$TMP/obl.nii"
    [ "$(json_get '[l.get("orientation") for l in L]' <<<"$output")" = "['RAS', 'LPS', 'PSR', 'RAS', None]" ]
    [ "$(json_get 'L[2]["affine"]' <<<"$output")" = "[[2, 0, 0, 10], [0, 0, -1, 20], [0, 1, 0, 30], [0, 0, 0, 1]]" ]
    [ "$(json_get '(L[2]["spacing"], L[2]["keys"]["affine-source"])' <<<"$output")" = "([2, 1, 1], 'sform')" ]
    run_tool 0 vol-info "$TMP/psr.nii"
    grep -qx '  orientation: *PSR' <<<"$output"
    grep -qx '  affine: *2   0   0  10' <<<"$output"
    grep -qx ' *0   1   0  30' <<<"$output"
}

@test "vol-info: label histogram with counts, percentages and names" {
    mknii "$TMP/lab.nii" u8 2x2x4 "[0,0,0,0, 1,1,1,0, 3,3,0,0, 0,0,0,7][d*8 + h*4 + w]"
    vol-import --labels "$TMP/lab.nii" -o "$TMP/lab.lsdm"
    run_tool 0 vol-info --json "$TMP/lab.lsdm"
    [ "$(head -1 <<<"$output" | json_get '[(r["value"], r["count"], r["percent"], r["name"]) for r in L[0]["labels"]]')" = \
      "[(0, 10, 62.5, None), (1, 3, 18.75, None), (3, 2, 12.5, None), (7, 1, 6.25, None)]" ]
    run_tool 0 vol-info "$TMP/lab.lsdm"
    grep -qx '  histogram: *4 values present, 0 named' <<<"$output"
    grep -qx ' *7 *1 *6.250%  ' <<<"$output"
    # labels spread wide over i32 (counted by sorting, not in an array)
    mknii "$TMP/wide.nii" i32 1x2x3 "[-7, 100000000, -7, 2000000000, 100000000, -7][h*3 + w]"
    vol-import --labels "$TMP/wide.nii" -o "$TMP/wide.lsdm"
    run_tool 0 vol-info --json "$TMP/wide.lsdm"
    [ "$(head -1 <<<"$output" | json_get '[(r["value"], r["count"]) for r in L[0]["labels"]]')" = \
      "[(-7, 3), (100000000, 2), (2000000000, 1)]" ]
    # an image is not a label map: no histogram
    run_tool 0 vol-info --json "$TMP/lab.nii"
    [ "$(head -1 <<<"$output" | json_get '"labels" in L[0]')" = "False" ]
}

@test "vol-info: label names from the labels key, absent classes listed with 0" {
    phantom --seed 1 --shape 2x8x8 --masks "$TMP/m.lsdm" -o /dev/null
    run_tool 0 vol-info --json "$TMP/m.lsdm"
    [ "$(head -1 <<<"$output" | json_get '[(r["value"], r["name"]) for r in L[0]["labels"]]')" = \
      "[(0, 'background'), (1, 'fat'), (2, 'fibroglandular'), (3, 'vessel'), (4, 'muscle')]" ]
    [ "$(head -1 <<<"$output" | json_get 'sum(r["count"] for r in L[0]["labels"])')" = 128 ]
    [ "$(head -1 <<<"$output" | json_get 'all(abs(r["percent"] - 100 * r["count"] / 128) < 1e-12 for r in L[0]["labels"])')" = True ]
    run_tool 0 vol-info "$TMP/m.lsdm"
    grep -qx '  histogram: *[0-9] values present, 5 named' <<<"$output"
    grep -q '^ *2 *[0-9]* *[0-9.]*%  fibroglandular$' <<<"$output"
}

@test "vol-info: JSON strings are escaped, numbers are numbers" {
    mknii "$TMP/q.nii" u8 1x1x2 "w"
    vol-import --name $'we"ird\\na\tme\xff' "$TMP/q.nii" -o "$TMP/q.lsdm"
    run_tool 0 vol-info --json "$TMP/q.lsdm"
    [ "$(wc -l <<<"$output")" -eq 2 ]
    [ "$(head -1 <<<"$output" | json_get 'ascii(L[0]["name"])')" = "'we\"ird\\\\na\\tme\\ufffd'" ]
    [ "$(head -1 <<<"$output" | json_get '(L[0]["shape"], L[0]["index"], L[0]["dtype"], L[0]["role"])')" = "([1, 1, 1, 2], 0, 'u8', 'image')" ]
    [ "$(tail -1 <<<"$output")" = '{"summary":{"records":1,"inputs":1}}' ]
    grep -qF '"name":"we\"ird\\na\u0009me\ufffd"' <<<"$output"
}

@test "vol-info: several inputs, standard input, --no-stats" {
    mknii "$TMP/a.nii" u8 1x2x2 "h"
    phantom --seed 2 --count 2 --shape 2x8x8 -o "$TMP/im.lsdm"
    run_tool 0 vol-info --json "$TMP/a.nii" - <"$TMP/im.lsdm"
    [ "$(json_get '[(l.get("input"), l.get("index"), l.get("name")) for l in L[:3]]' <<<"$output")" = \
      "[('$TMP/a.nii', 0, 'a'), ('(stdin)', 0, 'phantom-s2-0000'), ('(stdin)', 1, 'phantom-s2-0001')]" ]
    [ "$(tail -1 <<<"$output")" = '{"summary":{"records":3,"inputs":2}}' ]
    run_tool 0 vol-info --no-stats "$TMP/im.lsdm"
    [ "$(tail -1 <<<"$output")" = "2 records in 1 input" ]
    [[ "$output" != *min:* && "$output" != *std:* && "$output" != *histogram:* ]]
    run_tool 0 vol-info --no-stats --json "$TMP/im.lsdm"
    [ "$(json_get '["stats" in l for l in L]' <<<"$output")" = "[False, False, False]" ]
}

@test "vol-info: real data: ch2 statistics and the 116 AAL labels" {
    run_tool 0 vol-info --json "$TEMPLATES/ch2.nii.gz"
    want=$(python3 - <<'PY'
import gzip, math, struct
d = gzip.open("/usr/share/mricron/templates/ch2.nii.gz").read()
v = d[int(struct.unpack("<f", d[108:112])[0]):]
h = [v.count(bytes([i])) for i in range(256)]
n = sum(h); mean = sum(i * c for i, c in enumerate(h)) / n
std = math.sqrt(sum(c * (i - mean) ** 2 for i, c in enumerate(h)) / n)
print(n, min(i for i in range(256) if h[i]), max(i for i in range(256) if h[i]), mean, std)
PY
)
    got=$(head -1 <<<"$output" | json_get '" ".join(str(L[0]["stats"][k]) for k in ("count", "min", "max", "mean", "std"))')
    python3 -c "import sys; a, b = sys.argv[1].split(), sys.argv[2].split()
assert a[:3] == b[:3], (a, b)
assert all(abs(float(x) - float(y)) <= 1e-9 * abs(float(y)) for x, y in zip(a[3:], b[3:])), (a, b)" "$got" "$want"
    [ "$(head -1 <<<"$output" | json_get '(L[0]["shape"], L[0]["dtype"], L[0]["orientation"])')" = "([1, 181, 217, 181], 'u8', 'RAS')" ]

    vol-import --labels "$TEMPLATES/aal.nii.gz" -o "$TMP/aal.lsdm"
    run_tool 0 vol-info --json "$TMP/aal.lsdm"
    [ "$(head -1 <<<"$output" | json_get '[r["value"] for r in L[0]["labels"]] == list(range(117))')" = True ]
    got=$(head -1 <<<"$output" | json_get '[r["count"] for r in L[0]["labels"]]')
    want=$(python3 -c '
import gzip, struct
d = gzip.open("/usr/share/mricron/templates/aal.nii.gz").read()
v = d[int(struct.unpack("<f", d[108:112])[0]):]
print([v.count(bytes([i])) for i in range(117)])')
    [ "$got" = "$want" ]
}

@test "vol-info: damaged or missing input: one error line, exit 1" {
    phantom --seed 1 --count 2 --shape 2x16x16 -o "$TMP/im.lsdm"
    size=$(stat -c %s "$TMP/im.lsdm")
    head -c $((size - 20)) "$TMP/im.lsdm" >"$TMP/cut.lsdm"
    run_tool 1 vol-info "$TMP/cut.lsdm"
    assert_one_error_line vol-info
    # what was read before the damage is shown, but no summary
    grep -qx "$TMP/cut.lsdm \[0\] phantom-s1-0000" <<<"$output"
    [[ "$output" != *"records in"* ]]
    python3 -c "import sys; b = bytearray(open(sys.argv[1], 'rb').read()); b[len(b) // 2] ^= 0x10; open(sys.argv[2], 'wb').write(b)" \
        "$TMP/im.lsdm" "$TMP/flip.lsdm"
    run_tool 1 vol-info "$TMP/flip.lsdm"
    assert_one_error_line vol-info
    : >"$TMP/empty.lsdm"
    run_tool 1 vol-info "$TMP/empty.lsdm"
    assert_one_error_line vol-info
    run_tool 1 vol-info "$TMP/missing.lsdm"
    assert_one_error_line vol-info
    run_tool 2 vol-info --bogus
    [[ "$stderr" == "vol-info: error: unknown option '--bogus'"* ]]
}
