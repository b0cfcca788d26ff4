#!/usr/bin/env bats
# fid3d: a set against itself is 0, different sets are not; the feature
# matrices round-trip; the statistics of given matrices match scipy's;
# the small-sample warning; the three output formats; input ranges;
# MedicalNet weights (converted fixture) and every bad input an error.
load helper
load viewers
setup() { setup_tmp; }

FIX="$TOP/tests/fixtures/fid"
# a small fixed-seed network: resnet10 at width 4 (32 features)
NET=(--arch resnet10 --width 4)

phantoms() { phantom -s "$1" -n "$2" --shape 16x32x32 -o "$3"; }

# json_get EXPR: evaluate EXPR on the JSON document J read from stdin
json_get() { python3 -c "import json,sys; J=json.load(sys.stdin); print($1)"; }

@test "fid3d: a set against itself is 0, two phantom seeds are not" {
    phantoms 1 4 "$TMP/a.lsdm"
    phantoms 2 4 "$TMP/b.lsdm"
    run_tool 0 fid3d "${NET[@]}" --json "$TMP/a.lsdm" "$TMP/a.lsdm"
    [ "$(json_get 'abs(J["fid"]) < 1e-9' <<<"$output")" = True ]
    [ "$(json_get '(J["n_real"], J["n_fake"], J["dims"], J["arch"], J["shortcut"], J["width"])' <<<"$output")" = \
      "(4, 4, 32, 'resnet10', 'B', 4)" ]
    run_tool 0 fid3d "${NET[@]}" --json "$TMP/a.lsdm" "$TMP/b.lsdm"
    fid=$(json_get 'J["fid"]' <<<"$output")
    [ "$(json_get 'J["fid"] > 1e-6' <<<"$output")" = True ]
    # symmetric, and the fixed-seed network is the same network every run
    run_tool 0 fid3d "${NET[@]}" --json "$TMP/b.lsdm" "$TMP/a.lsdm"
    [ "$(json_get "abs(J['fid'] - $fid) <= 1e-9 * $fid" <<<"$output")" = True ]
    # another seed is another network, another number
    run_tool 0 fid3d "${NET[@]}" --seed 5 --json "$TMP/a.lsdm" "$TMP/b.lsdm"
    [ "$(json_get "J['fid'] != $fid" <<<"$output")" = True ]
    # standard input for one of them
    run_tool 0 bash -c "fid3d ${NET[*]} --json - '$TMP/b.lsdm' < '$TMP/a.lsdm'"
    [ "$(json_get "J['fid'] == $fid" <<<"$output")" = True ]
}

@test "fid3d: the text table says which network, and that it has no weights" {
    phantoms 1 3 "$TMP/a.lsdm"
    run_tool 0 fid3d "${NET[@]}" "$TMP/a.lsdm" "$TMP/a.lsdm"
    [ "$(sed 1d <<<"$output")" = "n_real: 3
n_fake: 3
dims: 32
arch: resnet10 (shortcut B, width 4)
weights: none (fixed-seed network, seed 0)
input range: -1,1" ]
    [[ "$(head -1 <<<"$output")" == "fid: "* ]]
}

@test "fid3d: fewer samples than dimensions warns, and still gives the number" {
    phantoms 1 3 "$TMP/a.lsdm"
    phantoms 2 3 "$TMP/b.lsdm"
    run_tool 0 fid3d "${NET[@]}" --json "$TMP/a.lsdm" "$TMP/b.lsdm"
    [ "$stderr" = "fid3d: warning: 3 samples < 32 feature dimensions: the covariance is singular, the FID is unreliable" ]
    [ "$(json_get '(J["singular"], J["fid"] > 0)' <<<"$output")" = "(True, True)" ]
    # 40 samples of 32 features: no warning
    run_tool 0 fid3d --from-features "$FIX/stat_small.lsdm"
    [ -z "$stderr" ]
}

@test "fid3d: --features-out then --from-features gives the same number" {
    phantoms 1 3 "$TMP/a.lsdm"
    phantoms 2 4 "$TMP/b.lsdm"
    run_tool 0 fid3d "${NET[@]}" --kid --json --features-out "$TMP/f.lsdm" "$TMP/a.lsdm" "$TMP/b.lsdm"
    direct=$output
    run_tool 0 vol-info --json "$TMP/f.lsdm"
    [ "$(head -2 <<<"$output" | python3 -c 'import json,sys; print([(r["name"], r["role"], r["dtype"], r["shape"], r["keys"]["arch"]) for r in map(json.loads, sys.stdin)])')" = \
      "[('real', 'features', 'f32', [3, 32], 'resnet10'), ('fake', 'features', 'f32', [4, 32], 'resnet10')]" ]
    run_tool 0 fid3d --kid --json --from-features "$TMP/f.lsdm"
    [ "$output" = "$direct" ]
}

@test "fid3d: statistics of given feature matrices match scipy / numpy" {
    # expected.txt: CASE FID KID from tests/torch/make_fid.py
    for c in small singular large; do
        read -r _ fid kid < <(grep "^$c " "$FIX/expected.txt")
        run_tool 0 fid3d --kid --json --from-features "$FIX/stat_$c.lsdm"
        [ "$(json_get "abs(J['fid'] - $fid) <= 1e-6 * abs($fid) and abs(J['kid'] - $kid) <= 1e-6 * abs($kid)" <<<"$output")" = True ]
    done
    run_tool 0 fid3d --from-features "$FIX/stat_large.lsdm" --json
    [ "$(json_get '(J["n_real"], J["n_fake"], J["dims"], J["singular"], J["arch"], J["weights"])' <<<"$output")" = \
      "(200, 180, 32, False, None, None)" ]
    # KID over subsets: mean and spread; same seed, same draws
    run_tool 0 fid3d --kid-subsets 10 --kid-subset-size 50 --json --from-features "$FIX/stat_large.lsdm"
    [ "$(json_get '(J["kid_subsets"], J["kid_subset_size"], J["kid_std"] > 0, abs(J["kid"] - 0.164) < 0.15)' <<<"$output")" = \
      "(10, 50, True, True)" ]
    first=$output
    run_tool 0 fid3d --kid-subsets 10 --kid-subset-size 50 --json --from-features "$FIX/stat_large.lsdm"
    [ "$output" = "$first" ]
    run_tool 1 fid3d --kid-subset-size 190 --from-features "$FIX/stat_large.lsdm"
    assert_one_error_line fid3d
}

@test "fid3d: --json parses, --csv has a header and one row" {
    phantoms 1 2 "$TMP/a.lsdm"
    run_tool 0 fid3d "${NET[@]}" --kid --json "$TMP/a.lsdm" "$TMP/a.lsdm"
    python3 -m json.tool <<<"$output" >/dev/null
    [ "$(json_get 'sorted(J)' <<<"$output")" = \
      "['arch', 'dims', 'fid', 'input_range', 'kid', 'kid_std', 'kid_subset_size', 'kid_subsets', 'n_fake', 'n_real', 'shortcut', 'singular', 'weights', 'width']" ]
    [ "$(json_get 'J["weights"]' <<<"$output")" = "none (fixed-seed network, seed 0)" ]
    run_tool 0 fid3d "${NET[@]}" --csv "$TMP/a.lsdm" "$TMP/a.lsdm"
    [ "$(wc -l <<<"$output")" -eq 2 ]
    [ "$(head -1 <<<"$output")" = "fid,kid,kid_std,kid_subsets,kid_subset_size,n_real,n_fake,dims,arch,shortcut,width,weights,input_range" ]
    [ "$(sed -n 2p <<<"$output" | cut -d, -f2-)" = ',,,,2,2,32,resnet10,B,4,"none (fixed-seed network, seed 0)","-1,1"' ]
}

@test "fid3d: input ranges: minmax ignores each volume's scale, the others do not" {
    mkdir "$TMP/x" "$TMP/y"
    mknii "$TMP/x/1.nii" f32 8x16x16 "(d * 3 + h * w) % 7"
    mknii "$TMP/x/2.nii" f32 8x16x16 "(d + h + 2 * w) % 5"
    mknii "$TMP/y/1.nii" f32 8x16x16 "2 * ((d * 3 + h * w) % 7) + 3"
    mknii "$TMP/y/2.nii" f32 8x16x16 "2 * ((d + h + 2 * w) % 5) + 3"
    run_tool 0 fid3d "${NET[@]}" --input-range minmax --json "$TMP/x" "$TMP/y"
    [ "$(json_get '(abs(J["fid"]) < 1e-9, J["input_range"])' <<<"$output")" = "(True, 'minmax')" ]
    run_tool 0 fid3d "${NET[@]}" --input-range 0,1 --json "$TMP/x" "$TMP/y"
    f01=$(json_get 'J["fid"]' <<<"$output")
    [ "$(json_get 'J["fid"] > 1e-6' <<<"$output")" = True ]
    run_tool 0 fid3d "${NET[@]}" --json "$TMP/x" "$TMP/y"
    [ "$(json_get "J['fid'] > 1e-6 and J['fid'] != $f01" <<<"$output")" = True ]
}

@test "fid3d: converted MedicalNet weights set the network from their metadata" {
    phantoms 1 2 "$TMP/a.lsdm"
    run_tool 0 fid3d --weights "$FIX/resnet10.safetensors" "$TMP/a.lsdm" "$TMP/a.lsdm"
    grep -qx "dims: 16" <<<"$output"
    grep -qx "arch: resnet10 (shortcut B, width 2)" <<<"$output"
    grep -qx "weights: $FIX/resnet10.safetensors" <<<"$output"
    # the same layout asked for explicitly is fine
    run_tool 0 fid3d --weights "$FIX/resnet18.safetensors" --arch resnet18 --shortcut A "$TMP/a.lsdm" "$TMP/a.lsdm"
    grep -qx "arch: resnet18 (shortcut A, width 1)" <<<"$output"
}

@test "fid3d: bad inputs are one error line and exit 1" {
    phantoms 1 2 "$TMP/a.lsdm"
    # weights of another network than asked for
    run_tool 1 fid3d --weights "$FIX/resnet10.safetensors" --arch resnet18 "$TMP/a.lsdm" "$TMP/a.lsdm"
    assert_one_error_line fid3d
    [[ "$stderr" == *"hold resnet10, shortcut B, width 2"* ]]
    # a missing weights file
    run_tool 1 fid3d --weights "$TMP/none.safetensors" "$TMP/a.lsdm" "$TMP/a.lsdm"
    assert_one_error_line fid3d
    [[ "$stderr" == *"none.safetensors"* ]]
    # not a safetensors file
    run_tool 1 fid3d --weights "$TMP/a.lsdm" "$TMP/a.lsdm" "$TMP/a.lsdm"
    assert_one_error_line fid3d
    # multi-channel volumes (one-hot semantic maps)
    phantom -s 1 -n 2 --shape 8x16x16 -o /dev/null --masks "$TMP/m.lsdm"
    mask2sem --onehot "$TMP/m.lsdm" -o "$TMP/s.lsdm"
    run_tool 1 fid3d "${NET[@]}" "$TMP/a.lsdm" "$TMP/s.lsdm"
    assert_one_error_line fid3d
    [[ "$stderr" == *"FAKE record 'mask-0000': shape 5,8,16,16: fid3d takes single-channel volumes"* ]]
    # a NaN voxel
    mkdir "$TMP/n"
    mknii "$TMP/n/1.nii" f32 8x16x16 "nan if (d, h, w) == (3, 4, 5) else 0.5"
    run_tool 1 fid3d "${NET[@]}" "$TMP/n" "$TMP/a.lsdm"
    assert_one_error_line fid3d
    [[ "$stderr" == *"REAL record '1': 1 NaN or Inf value(s)"* ]]
    # one volume: no covariance
    phantoms 1 1 "$TMP/one.lsdm"
    run_tool 1 fid3d "${NET[@]}" "$TMP/one.lsdm" "$TMP/a.lsdm"
    assert_one_error_line fid3d
    # a stream whose feature records are not matrices
    run_tool 1 fid3d --from-features "$FIX/resnet.lsdm"
    assert_one_error_line fid3d
    [[ "$stderr" == *"record 'input' is not a matrix of n rows of d features" ]]
}

@test "fid3d: usage errors exit 2" {
    run_tool 2 fid3d "$TMP/a.lsdm"
    run_tool 2 fid3d --json --csv a b
    run_tool 2 fid3d --input-range 0,2 a b
    run_tool 2 fid3d --arch resnet101 a b
    run_tool 2 fid3d --shortcut C a b
    run_tool 2 fid3d --from-features x a b
    run_tool 2 fid3d - -
    run_tool 0 fid3d --help
    [[ "$output" == "Usage: fid3d "* ]]
}
