load helper
load viewers
setup() {
    setup_tmp
    mkdir -p "$TMP/a" "$TMP/b"
    # the same name in two folders; one voxel of b is 0.5 higher (10 -> 10.5)
    mknii "$TMP/a/x.nii" f32 4x4x4 "10 if (d,h,w) == (1,2,3) else d + h / 4 + w / 16"
    mknii "$TMP/b/x.nii" f32 4x4x4 "10.5 if (d,h,w) == (1,2,3) else d + h / 4 + w / 16"
}

@test "vol-diff: identical inputs: one ok line per record, exit 0" {
    phantom --seed 4 --count 2 --shape 2x8x8 -o "$TMP/p1.lsdm"
    phantom --seed 4 --count 2 --shape 2x8x8 -o "$TMP/p2.lsdm"
    run_tool 0 vol-diff "$TMP/p1.lsdm" "$TMP/p2.lsdm"
    [ "$output" = "[0] phantom-s4-0000: ok max_abs=0 mean_abs=0 rmse=0 over=0/128 nonfinite=0
[1] phantom-s4-0001: ok max_abs=0 mean_abs=0 rmse=0 over=0/128 nonfinite=0" ]
    [ -z "$stderr" ]
    # another seed: every record differs
    phantom --seed 5 --count 2 --shape 2x8x8 -o "$TMP/p3.lsdm"
    run_tool 1 vol-diff "$TMP/p1.lsdm" "$TMP/p3.lsdm"
    [ "$(grep -c ': FAIL max_abs=0\.[0-9]' <<<"$output")" -eq 2 ]
    [ "$stderr" = "vol-diff: error: 2 of 2 records differ" ]
}

@test "vol-diff: errors measured exactly, with absolute and relative tolerance" {
    run_tool 1 vol-diff "$TMP/a/x.nii" "$TMP/b/x.nii"
    [ "$output" = "[0] x: FAIL max_abs=0.5 mean_abs=0.0078125 rmse=0.0625 over=1/64 nonfinite=0" ]
    assert_one_error_line vol-diff
    run_tool 0 vol-diff --atol 0.5 "$TMP/a/x.nii" "$TMP/b/x.nii"
    [ "$output" = "[0] x: ok max_abs=0.5 mean_abs=0.0078125 rmse=0.0625 over=0/64 nonfinite=0" ]
    run_tool 1 vol-diff --atol 0.4 "$TMP/a/x.nii" "$TMP/b/x.nii"
    # |a-b| = 0.5 against rtol * |b| = 0.1 * 10.5 and 0.01 * 10.5
    run_tool 0 vol-diff --rtol 0.1 "$TMP/a/x.nii" "$TMP/b/x.nii"
    run_tool 1 vol-diff --rtol 0.01 "$TMP/a/x.nii" "$TMP/b/x.nii"
    [[ "$output" == *" over=1/64 "* ]]
    run_tool 0 vol-diff --atol 0.4 --rtol 0.01 "$TMP/a/x.nii" "$TMP/b/x.nii"
}

@test "vol-diff: --mean-atol alone checks the mean only" {
    run_tool 0 vol-diff --mean-atol 0.01 "$TMP/a/x.nii" "$TMP/b/x.nii"
    [ "$output" = "[0] x: ok max_abs=0.5 mean_abs=0.0078125 rmse=0.0625 over=1/64 nonfinite=0" ]
    run_tool 1 vol-diff --mean-atol 0.005 "$TMP/a/x.nii" "$TMP/b/x.nii"
    [ "$output" = "[0] x: FAIL max_abs=0.5 mean_abs=0.0078125 rmse=0.0625 over=1/64 nonfinite=0; mean abs error over 0.005" ]
    # with --atol as well, both must hold
    run_tool 1 vol-diff --mean-atol 0.01 --atol 0.1 "$TMP/a/x.nii" "$TMP/b/x.nii"
}

@test "vol-diff: NaN in one input and not the other is a difference" {
    mknii "$TMP/a/n.nii" f32 1x2x4 "nan if w == 1 else inf if w == 2 else w"
    mknii "$TMP/b/n.nii" f32 1x2x4 "nan if w == 1 else inf if w == 2 else w"
    run_tool 0 vol-diff "$TMP/a/n.nii" "$TMP/b/n.nii"
    [ "$output" = "[0] n: ok max_abs=0 mean_abs=0 rmse=0 over=0/8 nonfinite=0" ]
    mknii "$TMP/b/n.nii" f32 1x2x4 "nan if (w, h) in ((1, 0), (3, 1)) else inf if w == 2 else -inf if (w, h) == (1, 1) else w"
    run_tool 1 vol-diff --atol 1e9 "$TMP/a/n.nii" "$TMP/b/n.nii"
    [ "$output" = "[0] n: FAIL max_abs=0 mean_abs=0 rmse=0 over=2/8 nonfinite=2" ]
}

@test "vol-diff: shape, dtype and geometry mismatches fail" {
    mknii "$TMP/b/x.nii" f32 4x4x2 "0"
    run_tool 1 vol-diff "$TMP/a/x.nii" "$TMP/b/x.nii"
    [ "$output" = "[0] x: FAIL; shape 1,4,4,4 != 1,4,4,2" ]
    assert_one_error_line vol-diff

    mknii "$TMP/a/i.nii" i16 1x2x2 "h * 2 + w"
    mknii "$TMP/b/i.nii" f32 1x2x2 "h * 2 + w"
    run_tool 1 vol-diff "$TMP/a/i.nii" "$TMP/b/i.nii"
    [ "$output" = "[0] i: FAIL max_abs=0 mean_abs=0 rmse=0 over=0/4 nonfinite=0; dtype i16 != f32" ]

    mknii "$TMP/a/g.nii" u8 1x2x2 "w" 1,1,1 "1 0 0 0  0 1 0 0  0 0 1 0"
    mknii "$TMP/b/g.nii" u8 1x2x2 "w" 1,1,1 "1 0 0 1  0 1 0 0  0 0 1 0"
    run_tool 1 vol-diff "$TMP/a/g.nii" "$TMP/b/g.nii"
    [ "$output" = "[0] g: FAIL max_abs=0 mean_abs=0 rmse=0 over=0/4 nonfinite=0; affine differs by 1 mm" ]
    run_tool 0 vol-diff --ignore-geometry "$TMP/a/g.nii" "$TMP/b/g.nii"
    # within 1e-6 mm is the same geometry; 2e-6 is not
    mknii "$TMP/b/g.nii" u8 1x2x2 "w" 1,1,1 "1 0 0 5e-7  0 1 0 0  0 0 1 0"
    run_tool 0 vol-diff "$TMP/a/g.nii" "$TMP/b/g.nii"
    mknii "$TMP/b/g.nii" u8 1x2x2 "w" 1,1,1 "1 0 0 2e-6  0 1 0 0  0 0 1 0"
    run_tool 1 vol-diff "$TMP/a/g.nii" "$TMP/b/g.nii"
    [[ "$output" == *"; affine differs by 2e-06 mm" ]]
    # spacing is geometry too
    mknii "$TMP/b/g.nii" u8 1x2x2 "w" 1,1,3 "1 0 0 0  0 1 0 0  0 0 1 0"
    run_tool 1 vol-diff "$TMP/a/g.nii" "$TMP/b/g.nii"
    [[ "$output" == *"; spacing differs by 2 mm" ]]
}

@test "vol-diff: names are compared and reported, not failed" {
    cp "$TMP/a/x.nii" "$TMP/y.nii"
    run_tool 0 vol-diff "$TMP/a/x.nii" "$TMP/y.nii"
    [ "$output" = "[0] x: ok max_abs=0 mean_abs=0 rmse=0 over=0/64 nonfinite=0; name differs: x != y" ]
}

@test "vol-diff: a different record count fails" {
    phantom --seed 4 --count 3 --shape 2x8x8 -o "$TMP/three.lsdm"
    phantom --seed 4 --count 2 --shape 2x8x8 -o "$TMP/two.lsdm"
    run_tool 1 vol-diff "$TMP/three.lsdm" "$TMP/two.lsdm"
    [ "$(sed -n 3p <<<"$output")" = "records: FAIL A has 3, B has 2" ]
    [ "$(grep -c ': ok ' <<<"$output")" -eq 2 ]
    [ "$stderr" = "vol-diff: error: record count differs: A has 3, B has 2" ]
    # standard input as one side
    run_tool 1 vol-diff - "$TMP/three.lsdm" <"$TMP/two.lsdm"
    [ "$(tail -1 <<<"$output")" = "records: FAIL A has 2, B has 3" ]
}

@test "vol-diff: --quiet prints nothing, the status tells" {
    run_tool 1 vol-diff -q "$TMP/a/x.nii" "$TMP/b/x.nii"
    [ -z "$output" ]
    assert_one_error_line vol-diff
    run_tool 0 vol-diff --quiet "$TMP/a/x.nii" "$TMP/a/x.nii"
    [ -z "$output" ] && [ -z "$stderr" ]
}

@test "vol-diff: unreadable input and usage errors" {
    phantom --seed 4 --count 2 --shape 2x16x16 -o "$TMP/p.lsdm"
    head -c $(($(stat -c %s "$TMP/p.lsdm") - 30)) "$TMP/p.lsdm" >"$TMP/cut.lsdm"
    run_tool 1 vol-diff "$TMP/p.lsdm" "$TMP/cut.lsdm"
    assert_one_error_line vol-diff
    [[ "$stderr" == *cut.lsdm* ]]
    run_tool 1 vol-diff "$TMP/p.lsdm" "$TMP/missing.lsdm"
    assert_one_error_line vol-diff
    run_tool 2 vol-diff "$TMP/p.lsdm"
    [[ "$stderr" == "vol-diff: error: need two inputs A and B (got 1)"* ]]
    run_tool 2 vol-diff --atol -1 "$TMP/p.lsdm" "$TMP/p.lsdm"
    run_tool 2 vol-diff --rtol x "$TMP/p.lsdm" "$TMP/p.lsdm"
    run_tool 2 vol-diff - - <"$TMP/p.lsdm"
}
