#!/usr/bin/env bats
# vol-metrics: identical inputs, exact errors of a constant offset, the
# values of scikit-image / pytorch_msssim on the fixture pairs through the
# program (tests/fixtures/metrics, made by tests/torch/make_metrics.py),
# the three output formats, metric choice, masks, and every error.
load helper
setup() { setup_tmp; FX="$TOP/tests/fixtures/metrics"; }

# mkvol FILE DTYPE DxHxW EXPR: a NIfTI-1 file (gzip if FILE ends in .gz)
# whose voxel (d,h,w) (linear index i, w fastest) holds the Python
# expression EXPR; sform diag(1,1,1).
mkvol() {
    python3 - "$@" <<'EOF'
import gzip, math, struct, sys
out, dt, shape, expr = sys.argv[1:5]
D, H, W = map(int, shape.split('x'))
code, bits, fmt = {'u8': (2, 8, 'B'), 'i16': (4, 16, 'h'), 'f32': (16, 32, 'f')}[dt]
f = eval('lambda d, h, w, i: ' + expr)
vals = [f(d, h, w, (d * H + h) * W + w) for d in range(D) for h in range(H) for w in range(W)]
h = bytearray(352)
struct.pack_into('<i', h, 0, 348)
struct.pack_into('<8h', h, 40, 3, W, H, D, 1, 1, 1, 1)
struct.pack_into('<hh', h, 70, code, bits)
struct.pack_into('<8f', h, 76, 1, 1, 1, 1, 1, 1, 1, 1)
struct.pack_into('<f', h, 108, 352)
struct.pack_into('<h', h, 254, 1)
struct.pack_into('<12f', h, 280, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0)
h[344:348] = b'n+1\0'
data = struct.pack('<%d%s' % (len(vals), fmt), *[(float(v) if dt == 'f32' else int(v)) for v in vals])
(gzip.open if out.endswith('.gz') else open)(out, 'wb').write(bytes(h) + data)
EOF
}

# jcheck JSON PYTHON-EXPR...: each expression over d (the document) is true.
jcheck() {
    python3 -c '
import json, math, sys
d = json.loads(sys.argv[1])
for e in sys.argv[2:]:
    assert eval(e), (e, d)
' "$@"
}

# A: values k/64 - 0.5 (exact in f32); B = A + 0.125, also exact.
A_EXPR='((d * 7 + h * 3 + w * 5 + (h * w) % 11) % 64) / 64 - 0.5'

@test "identical inputs: psnr inf, ssim and ms_ssim 1, rmse and mae 0" {
    phantom --seed 3 --count 2 --shape 12x24x24 -o "$TMP/p.lsdm"
    run_tool 0 vol-metrics "$TMP/p.lsdm" "$TMP/p.lsdm"
    [ "$(tr -s ' ' <<<"${lines[0]}")" = "record psnr ssim ms_ssim rmse mae" ]
    [ "$(tr -s ' ' <<<"${lines[1]}")" = "phantom-s3-0000 inf 1.000000 1.000000 0 0" ]
    [ "$(tr -s ' ' <<<"${lines[2]}")" = "phantom-s3-0001 inf 1.000000 1.000000 0 0" ]
    [ "$(tr -s ' ' <<<"${lines[3]}")" = "(mean) inf 1.000000 1.000000 0 0" ]
    [ "${#lines[@]}" -eq 4 ]
    run_tool 0 vol-metrics --json "$TMP/p.lsdm" "$TMP/p.lsdm"
    jcheck "$output" "len(d['records']) == 2" "d['range'] == 2" \
        "all(r['psnr'] is None and r['psnr_infinite'] is True for r in d['records'])" \
        "all(r['ssim'] == 1 and r['ms_ssim'] == 1 and r['rmse'] == 0 and r['mae'] == 0 for r in d['records'])" \
        "d['records'][0]['voxels'] == 12 * 24 * 24 and d['records'][0]['ssim_window'] == 11" \
        "d['records'][0]['ms_ssim_scales'] == 2" \
        "d['mean'] == {'records': 2, 'psnr': None, 'psnr_infinite': True, 'ssim': 1, 'ms_ssim': 1, 'rmse': 0, 'mae': 0}"
    run_tool 0 vol-metrics --csv -m psnr,rmse "$TMP/p.lsdm" "$TMP/p.lsdm"
    [ "${lines[0]}" = "record,psnr,rmse" ]
    [ "${lines[1]}" = "phantom-s3-0000,inf,0" ]
    [ "${lines[3]}" = "(mean),inf,0" ]
}

@test "a constant offset c gives MAE = RMSE = c exactly and PSNR 10 log10(R^2 / c^2)" {
    mkvol "$TMP/a.nii" f32 12x24x24 "$A_EXPR"
    mkvol "$TMP/b.nii.gz" f32 12x24x24 "$A_EXPR + 0.125"
    run_tool 0 vol-metrics --csv -m mae,rmse,psnr "$TMP/a.nii" "$TMP/b.nii.gz"
    [ "${lines[0]}" = "record,mae,rmse,psnr" ]
    [ "${lines[1]}" = "a,0.125,0.125,24.082399653118497" ] # 10 log10(4 / 2^-6) = 80 log10 2
    run_tool 0 vol-metrics --json --range 0.5 -m psnr,rmse,mae "$TMP/b.nii.gz" "$TMP/a.nii"
    jcheck "$output" "d['records'][0]['name'] == 'b'" "d['records'][0]['mae'] == 0.125" \
        "d['records'][0]['rmse'] == 0.125" "abs(d['records'][0]['psnr'] - 20 * math.log10(4)) < 1e-12" \
        "d['range'] == 0.5 and d['records'][0]['range'] == 0.5"
    # --range auto: max(A) - min(A) = 63/64
    run_tool 0 vol-metrics --json --range auto -m psnr "$TMP/a.nii" "$TMP/b.nii.gz"
    jcheck "$output" "d['range'] == 'auto'" "d['records'][0]['range'] == 63 / 64" \
        "abs(d['records'][0]['psnr'] - 10 * math.log10((63 / 64) ** 2 / 2 ** -6)) < 1e-12"
}

@test "--rescale minmax maps each volume of A and B to [-1,1] by its own min and max" {
    mkvol "$TMP/a.nii" f32 12x24x24 "$A_EXPR"
    mkvol "$TMP/b.nii" f32 12x24x24 "3 * ($A_EXPR) + 7"
    mkvol "$TMP/c.nii" f32 12x24x24 "2 * (($A_EXPR) + 0.5) / (63 / 64) - 1"
    run_tool 0 vol-metrics --json --rescale minmax -m psnr,ssim,mae "$TMP/a.nii" "$TMP/b.nii"
    jcheck "$output" "d['rescale'] == 'minmax'" "d['records'][0]['psnr_infinite']" \
        "d['records'][0]['ssim'] == 1" "d['records'][0]['mae'] == 0"
    # c is a rescaled by hand: minmax of a against c as it is
    run_tool 0 vol-metrics --json --rescale minmax -m rmse "$TMP/a.nii" "$TMP/c.nii"
    jcheck "$output" "d['records'][0]['rmse'] < 1e-7"
    run_tool 0 vol-metrics --json -m rmse "$TMP/a.nii" "$TMP/b.nii"
    jcheck "$output" "d['rescale'] == 'none'" "d['records'][0]['rmse'] > 6"
    mkvol "$TMP/k.nii" f32 12x24x24 "0.25"
    run_tool 1 vol-metrics --rescale minmax "$TMP/a.nii" "$TMP/k.nii"
    assert_one_error_line vol-metrics
    [[ "$stderr" == *"record 'a': --rescale minmax: B is constant (0.25)"* ]]
    run_tool 2 vol-metrics --rescale max "$TMP/a.nii" "$TMP/k.nii"
}

@test "the fixture pairs give scikit-image's PSNR/SSIM and pytorch_msssim's MS-SSIM" {
    run_tool 0 vol-metrics --json "$FX/a.lsdm" "$FX/b.lsdm"
    echo "$stderr"
    python3 - "$output" "$FX/expected.json" <<'EOF'
import json, sys
d = json.loads(sys.argv[1])
want = json.load(open(sys.argv[2]))
names = [r['name'] for r in d['records']]
assert names == ['smooth', 'phantom', 'thin', 'multi', 'neg', 'flat'], names
rel = lambda a, b: abs(a - b) / max(abs(b), 1e-300) if b else abs(a)
for r in d['records']:
    e = want[r['name']]
    for k in ('psnr', 'rmse', 'mae'):
        assert rel(r[k], e[k]) < 1e-9, (r['name'], k, r[k], e[k])
    for k in ('ssim', 'ms_ssim'):
        assert rel(r[k], e[k]) < 1e-6, (r['name'], k, r[k], e[k])
    assert r['ssim_window'] == e['ssim_window'] and r['ms_ssim_scales'] == e['ms_ssim_levels'], r
    c = 1
    for s in e['shape'][:-3]:
        c *= s
    assert r['voxels'] == c * e['shape'][-3] * e['shape'][-2] * e['shape'][-1]
assert d['records'][4]['ms_ssim'] == 0  # 'neg': negative cs, relu
n = len(names)
for k in ('psnr', 'ssim', 'ms_ssim', 'rmse', 'mae'):
    assert abs(d['mean'][k] - sum(want[m][k] for m in names) / n) < 1e-9, k
EOF
    # one note per kind of shortening, not one per record
    [[ "$stderr" == *"'smooth' (16x24x24) is too small for 5 MS-SSIM scales: using 2"* ]]
    [[ "$stderr" == *"'thin' (3x20x20) is thinner than 11 voxels: SSIM window 3"* ]]
    [ "$(grep -c . <<<"$stderr")" -eq 2 ]
    run_tool 0 vol-metrics -q --json --range auto -m ssim,psnr "$FX/a.lsdm" "$FX/b.lsdm"
    [ -z "$stderr" ]
    python3 - "$output" "$FX/expected.json" <<'EOF'
import json, sys
d = json.loads(sys.argv[1])
want = json.load(open(sys.argv[2]))
assert d['metrics'] == ['ssim', 'psnr']
for r in d['records']:
    e = want[r['name']]
    assert abs(r['range'] - e['range_auto']) < 1e-15
    assert abs(r['psnr'] - e['psnr_auto']) < 1e-9 * e['psnr_auto'], r
    assert abs(r['ssim'] - e['ssim_auto']) < 1e-6 * e['ssim_auto'], r
    assert 'ms_ssim' not in r and 'rmse' not in r
EOF
}

@test "--csv and the table agree with --json; --metrics picks and orders columns" {
    run_tool 0 vol-metrics -q --json "$FX/a.lsdm" "$FX/b.lsdm"
    json=$output
    run_tool 0 vol-metrics -q --csv "$FX/a.lsdm" "$FX/b.lsdm"
    [ "${lines[0]}" = "record,psnr,ssim,ms_ssim,rmse,mae" ]
    [ "${#lines[@]}" -eq 8 ]
    [ "${lines[7]%%,*}" = "(mean)" ]
    python3 - "$json" "$output" <<'EOF'
import csv, io, json, sys
d = json.loads(sys.argv[1])
rows = list(csv.DictReader(io.StringIO(sys.argv[2])))
for r, j in zip(rows, d['records'] + [dict(d['mean'], name='(mean)')]):
    assert r['record'] == j['name']
    for k in ('psnr', 'ssim', 'ms_ssim', 'rmse', 'mae'):
        assert float(r[k]) == j[k], (k, r[k], j[k])  # shortest exact form
EOF
    run_tool 0 vol-metrics -q -m rmse,ms-ssim "$FX/a.lsdm" "$FX/b.lsdm"
    [ "$(tr -s ' ' <<<"${lines[0]}")" = "record rmse ms_ssim" ]
    [ "$(tr -s ' ' <<<"${lines[1]}")" = "smooth 0.0321147 0.983348" ]
    [ "$(tr -s ' ' <<<"${lines[5]}")" = "neg 0.417349 0.000000" ]
    run_tool 0 vol-metrics -q "$FX/a.lsdm" "$FX/b.lsdm"
    [ "$(tr -s ' ' <<<"${lines[2]}")" = "phantom 24.7887 0.812864 0.951171 0.115238 0.0668881" ]
}

@test "phantoms: a stream on standard input, directories of NIfTI files, any thread count" {
    phantom --seed 1 --count 2 --shape 12x32x32 -o "$TMP/a.lsdm"
    phantom --seed 2 --count 2 --shape 12x32x32 -o "$TMP/b.lsdm"
    run_tool 0 vol-metrics --csv -j 1 "$TMP/a.lsdm" "$TMP/b.lsdm"
    ref=$output
    python3 -c '
import sys
rows = [l.split(",") for l in sys.argv[1].splitlines()[1:]]
for r in rows:
    psnr, ssim, ms, rmse, mae = map(float, r[1:])
    assert 0 < mae <= rmse and 0 < ssim < 1 and 0 < ms <= 1 and 0 < psnr < 60, r
' "$ref"
    run_pipe 0 "phantom --seed 2 --count 2 --shape 12x32x32 | vol-metrics --csv -j 2 '$TMP/a.lsdm' -"
    [ "$output" = "$ref" ]
    phantom --seed 1 --count 2 --shape 12x32x32 --nifti "$TMP/na"
    phantom --seed 2 --count 2 --shape 12x32x32 --nifti "$TMP/nb"
    mkdir "$TMP/ia" "$TMP/ib"
    mv "$TMP"/na/*_image.nii.gz "$TMP/ia"; mv "$TMP"/nb/*_image.nii.gz "$TMP/ib"
    run_tool 0 vol-metrics --csv "$TMP/ia" "$TMP/ib"
    [ "${output//_image/}" = "$ref" ]
}

@test "--mask: psnr, rmse and mae over the voxels with a nonzero label" {
    mkvol "$TMP/a.nii" f32 12x24x24 "$A_EXPR"
    mkvol "$TMP/b.nii" f32 12x24x24 "$A_EXPR + (0.5 if w < 12 else 0.25)"
    mkvol "$TMP/m.nii" u8 12x24x24 "2 if w < 12 else 0"
    run_tool 0 vol-metrics --json --mask "$TMP/m.nii" -m mae,rmse,psnr,ssim "$TMP/a.nii" "$TMP/b.nii"
    jcheck "$output" "d['masked'] is True" "d['records'][0]['voxels'] == 12 * 24 * 12" \
        "d['records'][0]['mae'] == 0.5 and d['records'][0]['rmse'] == 0.5" \
        "abs(d['records'][0]['psnr'] - 10 * math.log10(16)) < 1e-12"
    masked=$output
    # ssim stays whole-volume: the same with and without the mask
    run_tool 0 vol-metrics --json -m mae,ssim "$TMP/a.nii" "$TMP/b.nii"
    jcheck "$output" "d['masked'] is False" "d['records'][0]['mae'] == 0.375"
    python3 -c 'import json, sys; a, b = (json.loads(x)["records"][0]["ssim"] for x in sys.argv[1:]); assert a == b < 0.5, (a, b)' "$masked" "$output"
    mkvol "$TMP/z.nii" u8 12x24x24 "0"
    run_tool 1 vol-metrics --mask "$TMP/z.nii" -m mae "$TMP/a.nii" "$TMP/b.nii"
    assert_one_error_line vol-metrics
    [[ "$stderr" == *"record 'a': the mask has no foreground voxel"* ]]
    mkvol "$TMP/ms.nii" u8 12x24x12 "1"
    run_tool 1 vol-metrics --mask "$TMP/ms.nii" -m mae "$TMP/a.nii" "$TMP/b.nii"
    assert_one_error_line vol-metrics
    [[ "$stderr" == *"the mask 'ms' has shape 1,12,24,12, not the D,H,W of 1,12,24,24"* ]]
}

@test "count and shape mismatches name the records; NaN is an error" {
    phantom --seed 1 --count 2 --shape 12x24x24 -o "$TMP/s2.lsdm"
    phantom --seed 1 --count 3 --shape 12x24x24 -o "$TMP/s3.lsdm"
    phantom --seed 1 --count 2 --shape 12x24x20 -o "$TMP/w.lsdm"
    run_tool 1 vol-metrics "$TMP/s2.lsdm" "$TMP/s3.lsdm"
    assert_one_error_line vol-metrics
    [[ "$stderr" == *"s2.lsdm has 2 records, $TMP/s3.lsdm more"* ]]
    [ -z "$output" ]
    run_tool 1 vol-metrics "$TMP/s3.lsdm" "$TMP/s2.lsdm"
    assert_one_error_line vol-metrics
    [[ "$stderr" == *"s2.lsdm has 2 records, $TMP/s3.lsdm more"* ]]
    run_tool 1 vol-metrics "$TMP/s2.lsdm" "$TMP/w.lsdm"
    assert_one_error_line vol-metrics
    [[ "$stderr" == *"records 'phantom-s1-0000' (A) and 'phantom-s1-0000' (B): shapes differ: A 1,12,24,24, B 1,12,24,20"* ]]
    mkvol "$TMP/a.nii" f32 12x24x24 "$A_EXPR"
    mkvol "$TMP/nan.nii" f32 12x24x24 "float('nan') if i == 77 else 0"
    run_tool 1 vol-metrics "$TMP/a.nii" "$TMP/nan.nii"
    assert_one_error_line vol-metrics
    [[ "$stderr" == *"record 'nan': B has a NaN at voxel 77"* ]]
    run_tool 1 vol-metrics "$TMP/nan.nii" "$TMP/a.nii"
    assert_one_error_line vol-metrics
    [[ "$stderr" == *"A has a NaN"* ]]
    [ -z "$output" ]
}

@test "too small for MS-SSIM, a constant reference with --range auto, empty input: errors" {
    mkvol "$TMP/a.nii" f32 4x10x32 "$A_EXPR"
    run_tool 1 vol-metrics "$TMP/a.nii" "$TMP/a.nii"
    assert_one_error_line vol-metrics
    [[ "$stderr" == *"record 'a': volume 4x10x32 is too small for MS-SSIM"* ]]
    # without ms_ssim it works, with a smaller SSIM window (skimage win_size 3)
    run_tool 0 vol-metrics --json -m ssim,rmse "$TMP/a.nii" "$TMP/a.nii"
    jcheck "$output" "d['records'][0]['ssim'] == 1 and d['records'][0]['ssim_window'] == 3"
    [[ "$stderr" == *"SSIM window 3"* ]]
    mkvol "$TMP/c.nii" f32 12x24x24 "0.25"
    mkvol "$TMP/b.nii" f32 12x24x24 "$A_EXPR"
    run_tool 1 vol-metrics --range auto -m psnr "$TMP/c.nii" "$TMP/b.nii"
    assert_one_error_line vol-metrics
    [[ "$stderr" == *"record 'c': --range auto: A is constant (0.25)"* ]]
    # a stream with no record (vol-import keeps none of the 2)
    phantom --seed 1 --count 2 --shape 4x8x8 -o "$TMP/two.lsdm"
    vol-import --records 5- "$TMP/two.lsdm" -o "$TMP/empty.lsdm"
    run_tool 1 vol-metrics "$TMP/empty.lsdm" "$TMP/empty.lsdm"
    assert_one_error_line vol-metrics
    [[ "$stderr" == *"no records to compare"* ]]
}

@test "usage errors exit 2" {
    f="$FX/a.lsdm"
    for args in "" "$f" "$f $f $f" "- -" "--mask - - $f" "--json --csv $f $f" "--range 0 $f $f" \
                "--range -1 $f $f" "--range x $f $f" "-m psnr,foo $f $f" "-m psnr,psnr $f $f" "-m , $f $f" \
                "-m psnr, $f $f" "-j 0 $f $f"; do
        run_tool 2 vol-metrics $args
        [[ "${stderr_lines[0]}" == "vol-metrics: error: "* ]] || { echo "$args: $stderr"; return 1; }
        [ -z "$output" ]
    done
    run_tool 0 vol-metrics --help
    [[ "${lines[0]}" == "Usage: vol-metrics [OPTION]... A B" ]]
}
