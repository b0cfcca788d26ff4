#!/usr/bin/env bats
# seg-infer: label maps from a small seg-train model (4 filters, 2
# poolings, patch 8x16x16, 3 steps): the labels record (dtype, shape,
# name, geometry, labels key, provenance), the sliding window over a
# volume larger than the window and one smaller than it, --probs, dice-eval
# on the output, and bad input (NaN, channels, a VQ-GAN as model).
load helper
load vq_helper

setup() {
    setup_tmp
    printf 'filters = 4\nnum_downs = 2\n' >"$TMP/small.conf"
    phantom -q -s 1 -n 2 --shape 8x32x32 -o "$TMP/img.lsdm" --masks "$TMP/lab.lsdm"
    seg-train -q -j 1 -c "$TMP/small.conf" --patch 8x16x16 --steps 3 "$TMP/img.lsdm" "$TMP/lab.lsdm" -o "$TMP/m.st"
}

@test "labels stream: u8, the image's name, shape and geometry, labels key, provenance" {
    run_tool 0 seg-infer --help
    [[ "$output" == "Usage: seg-infer "* ]]
    run_tool 0 seg-infer -q -j 1 -m "$TMP/m.st" "$TMP/img.lsdm" -o "$TMP/pred.lsdm"
    [ "$(field "$TMP/pred.lsdm" 1 'r["dtype"]')" = u8 ]
    [ "$(field "$TMP/pred.lsdm" 1 'r["shape"]')" = "[1, 8, 32, 32]" ]
    for k in name affine spacing; do
        [ "$(key "$TMP/pred.lsdm" 1 $k)" = "$(key "$TMP/img.lsdm" 1 $k)" ]
    done
    [ "$(key "$TMP/pred.lsdm" 1 name)" = phantom-s1-0001 ]
    [ "$(key "$TMP/pred.lsdm" 0 role)" = labels ]
    [ "$(key "$TMP/pred.lsdm" 0 labels)" = "0=background,1=fat,2=fibroglandular,3=vessel,4=muscle" ]
    [[ "$(key "$TMP/pred.lsdm" 0 provenance)" == *"; seg-infer/0.1.0 model-step=3" ]]
    # every label is a class of the model
    [ "$(field "$TMP/pred.lsdm" 0 'r["stats"]["max"] <= 4 and r["stats"]["min"] >= 0')" = True ]
    # dice-eval reads it against the reference masks
    run_tool 0 dice-eval --csv "$TMP/pred.lsdm" "$TMP/lab.lsdm"
    [[ "$output" == *phantom-s1-0000* ]]
    [[ "$output" == *phantom-s1-0001* ]]
    # the same model and input: the same bytes
    run_tool 0 seg-infer -q -j 1 -m "$TMP/m.st" "$TMP/img.lsdm" -o "$TMP/pred2.lsdm"
    cmp "$TMP/pred.lsdm" "$TMP/pred2.lsdm"
}

@test "sliding window: larger and smaller volumes than the window; --tile, --overlap, --probs" {
    phantom -q -s 5 -n 1 --shape 12x40x24 -o "$TMP/big.lsdm" --masks "$TMP/bigl.lsdm"
    run_tool 0 seg-infer -q -m "$TMP/m.st" --probs "$TMP/p.lsdm" "$TMP/big.lsdm" -o "$TMP/bp.lsdm"
    [ "$(field "$TMP/bp.lsdm" 0 'r["shape"]')" = "[1, 12, 40, 24]" ]
    [ "$(field "$TMP/p.lsdm" 0 'r["shape"]')" = "[5, 12, 40, 24]" ]
    [ "$(field "$TMP/p.lsdm" 0 'r["dtype"]')" = f32 ]
    [ "$(key "$TMP/p.lsdm" 0 role)" = features ]
    # probabilities in [0,1]
    [ "$(field "$TMP/p.lsdm" 0 'r["stats"]["min"] >= 0 and r["stats"]["max"] <= 1')" = True ]
    # its mean is 1/5 (the five classes sum to 1 at every voxel)
    [ "$(field "$TMP/p.lsdm" 0 'round(r["stats"]["mean"], 5)')" = 0.2 ]
    run_tool 0 seg-infer -q -m "$TMP/m.st" --tile 8x8x8 --overlap 0.25 "$TMP/big.lsdm" -o "$TMP/bt.lsdm"
    [ "$(field "$TMP/bt.lsdm" 0 'r["shape"]')" = "[1, 12, 40, 24]" ]
    # smaller than the window in every axis: padded and cropped back
    phantom -q -s 6 -n 1 --shape 3x7x5 -o "$TMP/small.lsdm" --masks /dev/null
    run_tool 0 seg-infer -q -m "$TMP/m.st" "$TMP/small.lsdm" -o "$TMP/sp.lsdm"
    [ "$(field "$TMP/sp.lsdm" 0 'r["shape"]')" = "[1, 3, 7, 5]" ]
    run_tool 0 dice-eval "$TMP/bp.lsdm" "$TMP/bigl.lsdm"
    run_tool 2 seg-infer -m "$TMP/m.st" --tile 8x12x16 "$TMP/big.lsdm" -o "$TMP/x.lsdm"
    run_tool 2 seg-infer -m "$TMP/m.st" --overlap 1 "$TMP/big.lsdm" -o "$TMP/x.lsdm"
    run_tool 2 seg-infer "$TMP/big.lsdm" -o "$TMP/x.lsdm"
}

@test "errors: NaN, channels, not a segmenter - one line, no output" {
    nii "$TMP/nan.nii" 16 16 8 1 'float("nan") if (x, y, z) == (3, 2, 1) else x' 1,0,0,0,0,1,0,0,0,0,1,0
    run_tool 1 seg-infer -m "$TMP/m.st" "$TMP/nan.nii" -o "$TMP/x.lsdm"
    assert_one_error_line seg-infer
    [[ "$stderr" == *"NaN"* ]]
    [ ! -e "$TMP/x.lsdm" ]
    nii "$TMP/two.nii" 16 16 8 2 'x + t' 1,0,0,0,0,1,0,0,0,0,1,0
    run_tool 1 seg-infer -m "$TMP/m.st" "$TMP/two.nii" -o "$TMP/x.lsdm"
    assert_one_error_line seg-infer
    [[ "$stderr" == *"2 channel(s)"* ]]
    [ ! -e "$TMP/x.lsdm" ]
    run_tool 1 seg-infer -m "$TOP/tests/fixtures/vqgan/plain.safetensors" "$TMP/img.lsdm" -o "$TMP/x.lsdm"
    assert_one_error_line seg-infer
    [[ "$stderr" == *"not a segmenter checkpoint"* ]]
    [ ! -e "$TMP/x.lsdm" ]
    run_tool 1 seg-infer -m "$TMP/nothere.st" "$TMP/img.lsdm" -o "$TMP/x.lsdm"
    assert_one_error_line seg-infer
}

@test "--config: a converted PyTorch UNet3D without seg-train's metadata (the parity fixture)" {
    W="$TOP/tests/fixtures/segnet/weights.safetensors"   # torch state_dict: 4 filters, 2 poolings, 3 classes
    phantom -q -n 1 --shape 8x16x16 -o "$TMP/ph.lsdm"
    run_tool 1 seg-infer -m "$W" "$TMP/ph.lsdm" -o "$TMP/x.lsdm"
    assert_one_error_line seg-infer
    [[ "$stderr" == *"is not a segmenter checkpoint"*"needs --config"* ]]
    printf 'filters = 4\nnum_downs = 2\n' >"$TMP/small.conf"
    run_tool 0 seg-infer -c "$TMP/small.conf" -m "$W" "$TMP/ph.lsdm" -o "$TMP/x.lsdm"
    [ "$(vol-info --json "$TMP/x.lsdm" | head -1 | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["role"], r["dtype"], r["shape"])')" = "labels u8 [1, 8, 16, 16]" ]
    run_tool 1 seg-infer -c "$TMP/small.conf" --classes 5 -m "$W" "$TMP/ph.lsdm" -o "$TMP/y.lsdm"
    [[ "$stderr" == *"tensor 'model.model.5.weight' has shape 3,4,1,1,1, model expects 5,4,1,1,1"* ]]
    [ ! -e "$TMP/y.lsdm" ]
}
