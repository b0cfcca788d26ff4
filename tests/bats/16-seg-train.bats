#!/usr/bin/env bats
# seg-train: a few steps of a segmenter narrower than tiny (4 filters, 2
# poolings) on 8x32x32 phantoms: the checkpoint's tensors and metadata,
# the CSV log with validation Dice, same seed -> same bytes, bit-identical
# --resume, and bad input (NaN, labels vs classes, shapes, no labels).
load helper
load vq_helper

setup() {
    setup_tmp
    printf 'filters = 4\nnum_downs = 2\n' >"$TMP/small.conf"
    phantom -q -s 1 -n 2 --shape 8x32x32 -o "$TMP/img.lsdm" --masks "$TMP/lab.lsdm"
    SMALL=(-q -j 1 -c "$TMP/small.conf" --patch 8x16x16 --batch 2)
}

@test "trains: state-dict names, metadata, CSV log with validation Dice" {
    run_tool 0 seg-train --help
    [[ "$output" == "Usage: seg-train "* ]]
    run_tool 0 seg-train "${SMALL[@]}" --steps 4 --save-every 2 --log "$TMP/log.csv" --log-every 1 \
        --val-images "$TMP/img.lsdm" --val-labels "$TMP/lab.lsdm" --val-every 2 \
        "$TMP/img.lsdm" "$TMP/lab.lsdm" -o "$TMP/m.st"
    [ "$(st_meta "$TMP/m.st" model)" = segnet-unet3d ]
    [ "$(st_meta "$TMP/m.st" step)" = 4 ]
    [ "$(st_meta "$TMP/m.st" classes)" = 5 ]
    [ "$(st_meta "$TMP/m.st" labels)" = "0=background,1=fat,2=fibroglandular,3=vessel,4=muscle" ]
    [ "$(st_meta "$TMP/m.st" normalize)" = minmax ]
    [ "$(st_meta "$TMP/m.st" patch)" = 8x16x16 ]
    [ "$(st_meta "$TMP/m.st" config)" = "$(printf 'in_channels = 1\nclasses = 5\nfilters = 4\nnum_downs = 2')" ]
    [[ "$(st_meta "$TMP/m.st" seg_train)" == *"batch = 2"* ]]
    names=$(st_names "$TMP/m.st")
    [[ "$names" == *"model.model.0.0.weight"* ]]
    [[ "$names" == *"model.model.2.model.3.model.3.weight"* ]]   # innermost transposed conv
    [[ "$names" == *"model.model.5.bias"* ]]
    [[ "$names" == *"train_state.adam.exp_avg_sq"* ]]
    [ "$(echo "$names" | grep -c '^model\.')" = 26 ]
    [ "$(head -1 "$TMP/log.csv")" = "step,loss,ce,dice_loss,lr,seconds,val_dice" ]
    [ "$(wc -l <"$TMP/log.csv")" = 5 ]
    # validation Dice on steps 2 and 4 only, a number in [0,1]
    [ "$(awk -F, 'NR > 1 && $7 != "" {print $1}' "$TMP/log.csv" | tr '\n' ' ')" = "2 4 " ]
    awk -F, 'NR == 5 {exit !($7 >= 0 && $7 <= 1 && $3 > 0 && $4 < 0)}' "$TMP/log.csv"
}

@test "same seed: same bytes; --resume continues bit-identically" {
    run_tool 0 seg-train "${SMALL[@]}" --steps 6 --seed 3 "$TMP/img.lsdm" "$TMP/lab.lsdm" -o "$TMP/a.st"
    run_tool 0 seg-train "${SMALL[@]}" --steps 6 --seed 3 "$TMP/img.lsdm" "$TMP/lab.lsdm" -o "$TMP/b.st"
    cmp "$TMP/a.st" "$TMP/b.st"
    run_tool 0 seg-train "${SMALL[@]}" --steps 6 --seed 4 "$TMP/img.lsdm" "$TMP/lab.lsdm" -o "$TMP/c.st"
    ! cmp -s "$TMP/a.st" "$TMP/c.st"
    # interrupted (--minutes: after the first step), then resumed to 6 with
    # the options (cosine over 6 steps) from the checkpoint
    run_tool 0 seg-train "${SMALL[@]}" --steps 6 --minutes 0.00001 --seed 3 "$TMP/img.lsdm" "$TMP/lab.lsdm" -o "$TMP/r.st"
    [ "$(st_meta "$TMP/r.st" step)" = 1 ]
    run_tool 0 seg-train -q -j 1 --resume "$TMP/r.st" --steps 6 "$TMP/img.lsdm" "$TMP/lab.lsdm" -o "$TMP/r.st"
    [ "$(st_meta "$TMP/r.st" step)" = 6 ]
    cmp "$TMP/a.st" "$TMP/r.st"
}

@test "--export: the weights and config alone, a model seg-infer loads" {
    run_tool 0 seg-train "${SMALL[@]}" --steps 2 --export "$TMP/x.st" "$TMP/img.lsdm" "$TMP/lab.lsdm" -o "$TMP/m.st"
    [ "$(st_meta "$TMP/x.st")" = "$(st_meta "$TMP/m.st")" ]
    [ "$(st_names "$TMP/x.st")" = "$(st_names "$TMP/m.st" | grep -v '^train_state\.')" ]
    [ "$(st_names "$TMP/m.st" | grep -c '^train_state\.')" -gt 0 ]
    seg-infer -m "$TMP/m.st" "$TMP/img.lsdm" -o "$TMP/a.lsdm"
    seg-infer -m "$TMP/x.st" "$TMP/img.lsdm" -o "$TMP/b.lsdm"
    cmp "$TMP/a.lsdm" "$TMP/b.lsdm"
}

@test "tiny defaults: 16x64x64 patches, cosine 2e-3 over 1000 steps, foreground 0.5 (one step)" {
    phantom -q -s 1 -n 1 --shape 16x64x64 -o "$TMP/i.lsdm" --masks "$TMP/l.lsdm"
    run_tool 0 seg-train -q --minutes 0.00001 "$TMP/i.lsdm" "$TMP/l.lsdm" -o "$TMP/t.st"
    [ "$(st_meta "$TMP/t.st" step)" = 1 ]
    [ "$(st_meta "$TMP/t.st" patch)" = 16x64x64 ]
    [[ "$(st_meta "$TMP/t.st" config)" == *"filters = 16"* ]]
    [[ "$(st_meta "$TMP/t.st" seg_train)" == *"schedule = cosine"* ]]
    [[ "$(st_meta "$TMP/t.st" seg_train)" == *"lr = 0.002"* ]]
    [[ "$(st_meta "$TMP/t.st" seg_train)" == *"cosine_steps = 1000"* ]]
    [[ "$(st_meta "$TMP/t.st" seg_train)" == *"foreground = 0.5"* ]]
}

@test "errors: NaN, labels beyond --classes, shapes, counts, float labels, usage" {
    nii "$TMP/nan.nii" 32 32 8 1 'float("nan") if (x, y, z) == (3, 2, 1) else x' 1,0,0,0,0,1,0,0,0,0,1,0
    nii "$TMP/lab.nii" 32 32 8 1 '1 if x > 10 else 0' 1,0,0,0,0,1,0,0,0,0,1,0
    run_tool 1 seg-train "${SMALL[@]}" --steps 1 "$TMP/nan.nii" "$TMP/lab.lsdm" -o "$TMP/x.st"
    assert_one_error_line seg-train
    [[ "$stderr" == *"NaN"* ]]
    run_tool 1 seg-train "${SMALL[@]}" --steps 1 --classes 3 "$TMP/img.lsdm" "$TMP/lab.lsdm" -o "$TMP/x.st"
    assert_one_error_line seg-train
    [[ "$stderr" == *"label 4"*"3 classes"* ]]
    phantom -q -s 1 -n 2 --shape 8x32x16 -o "$TMP/i2.lsdm" --masks "$TMP/l2.lsdm"
    run_tool 1 seg-train "${SMALL[@]}" --steps 1 "$TMP/img.lsdm" "$TMP/l2.lsdm" -o "$TMP/x.st"
    assert_one_error_line seg-train
    [[ "$stderr" == *"shape"* ]]
    phantom -q -s 1 -n 1 --shape 8x32x32 --masks "$TMP/l1.lsdm" -o /dev/null
    run_tool 1 seg-train "${SMALL[@]}" --steps 1 "$TMP/img.lsdm" "$TMP/l1.lsdm" -o "$TMP/x.st"
    assert_one_error_line seg-train
    [[ "$stderr" == *"more volumes"* ]]
    # float "labels" (an image as labels)
    run_tool 1 seg-train "${SMALL[@]}" --steps 1 "$TMP/img.lsdm" "$TMP/img.lsdm" -o "$TMP/x.st"
    assert_one_error_line seg-train
    [[ "$stderr" == *"integer"* ]]
    [ ! -e "$TMP/x.st" ]
    run_tool 2 seg-train "${SMALL[@]}" --patch 8x10x16 "$TMP/img.lsdm" "$TMP/lab.lsdm" -o "$TMP/x.st"
    [[ "$stderr" == *"multiples of 4"* ]]
    run_tool 2 seg-train "$TMP/img.lsdm" -o "$TMP/x.st"
    run_tool 2 seg-train "$TMP/img.lsdm" "$TMP/lab.lsdm"
    run_tool 2 seg-train --normalize log "$TMP/img.lsdm" "$TMP/lab.lsdm" -o "$TMP/x.st"
}
