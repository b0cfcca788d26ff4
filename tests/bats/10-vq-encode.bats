#!/usr/bin/env bats
# vq-encode: latent shapes, dtypes and keys, the latent grid's geometry,
# min-max rescaling, determinism, tiling, several records and every error,
# with the small fixture VQ-GANs (tests/fixtures/vqgan: f = 4, 4 hidden
# channels, 32 codes of dim 4).
load helper
load vq_helper

setup() {
    setup_tmp
    PLAIN="$TOP/tests/fixtures/vqgan/plain.safetensors"
    SPADE="$TOP/tests/fixtures/vqgan/spade.safetensors"
    export OMP_NUM_THREADS=2
}


@test "--help; a 1x8x16x16 image becomes a 4x2x4x4 prequant latent with its keys" {
    run_tool 0 vq-encode --help
    [[ "$output" == "Usage: vq-encode "* ]]
    phantom --shape 8x16x16 -o "$TMP/p.lsdm"
    run_tool 0 vq-encode -m "$PLAIN" "$TMP/p.lsdm" -o "$TMP/z.lsdm"
    [ -z "$stderr" ]
    [ "$(field "$TMP/z.lsdm" 0 'r["dtype"], r["shape"], r["role"], r["name"]')" = \
      "('f32', [4, 2, 4, 4], 'latent', 'phantom-s0-0000')" ]
    [ "$(key "$TMP/z.lsdm" 0 latent)" = prequant ]
    [ "$(key "$TMP/z.lsdm" 0 vq-factor)" = 4 ]
    [[ "$(key "$TMP/z.lsdm" 0 vq-model)" =~ ^[0-9a-f]{16}$ ]]
    [ "$(key "$TMP/z.lsdm" 0 image-shape)" = 8,16,16 ]
    # the input's other keys are kept, provenance added
    [ "$(key "$TMP/z.lsdm" 0 class-means)" = "$(key "$TMP/p.lsdm" 0 class-means)" ]
    [ "$(key "$TMP/z.lsdm" 0 provenance)" = "phantom/0.1.0 seed=0 index=0; vq-encode/0.1.0" ]
    # source-range: the image's min and max (as f32, 9 digits)
    want=$(field "$TMP/p.lsdm" 0 '"%.9g,%.9g" % (r["stats"]["min"], r["stats"]["max"])')
    [ "$(key "$TMP/z.lsdm" 0 source-range)" = "$want" ]
    # finite values of the encoder's scale
    [ "$(field "$TMP/z.lsdm" 0 'r["stats"]["finite"] == 128 and 0.05 < r["stats"]["std"] < 5')" = True ]
}

@test "latent grid: columns times 4, origin at the centre of the first 4x4x4 block" {
    phantom --shape 8x16x16 -o "$TMP/p.lsdm"
    # phantom: affine 0 0 0.7 -5.25 / 0 0.7 0 -5.25 / 2 0 0 -7, spacing 2 0.7 0.7
    [ "$(key "$TMP/p.lsdm" 0 affine)" = "0 0 0.7 -5.25 0 0.7 0 -5.25 2 0 0 -7 0 0 0 1" ]
    vq-encode -m "$PLAIN" "$TMP/p.lsdm" -o "$TMP/z.lsdm"
    # origin + 1.5 columns: -5.25 + 1.5 * 0.7 = -4.2, -7 + 1.5 * 2 = -4
    [ "$(key "$TMP/z.lsdm" 0 affine)" = "0 0 2.8 -4.2 0 2.8 0 -4.2 8 0 0 -4 0 0 0 1" ]
    [ "$(key "$TMP/z.lsdm" 0 spacing)" = "8 2.8 2.8" ]
    # a NIfTI input (any volsrc input): a flipped x axis
    nii "$TMP/a.nii" 16 12 8 1 'math.sin(x) + y * z / 10' -1.5,0,0,90,0,1.25,0,-126,0,0,2.5,-72
    run_tool 0 vq-encode -m "$PLAIN" "$TMP/a.nii" -o "$TMP/za.lsdm"
    [ "$(field "$TMP/za.lsdm" 0 'r["shape"], r["name"]')" = "([4, 2, 3, 4], 'a')" ]
    # (d,h,w) columns: z (0,0,2.5), y (0,1.25,0), x (-1.5,0,0); origin + 1.5 of each
    [ "$(key "$TMP/za.lsdm" 0 affine)" = "0 0 -6 87.75 0 5 0 -124.125 10 0 0 -68.25 0 0 0 1" ]
}

@test "per-axis downsampling 2,4,4: latent grid, key, geometry there and back" {
    ANISO="$TOP/tests/fixtures/vqgan/aniso.safetensors"
    phantom --shape 8x16x16 -o "$TMP/p.lsdm"
    run_tool 0 vq-encode -v -m "$ANISO" "$TMP/p.lsdm" -o "$TMP/z.lsdm"
    [[ "$stderr" == *"factor 2,4,4,"* ]]
    [ "$(field "$TMP/z.lsdm" 0 'r["shape"]')" = "[4, 4, 4, 4]" ]
    [ "$(key "$TMP/z.lsdm" 0 vq-factor)" = 2,4,4 ]
    # columns times 2 (depth) and 4; origin + 0.5 depth and 1.5 in-plane voxels
    [ "$(key "$TMP/z.lsdm" 0 affine)" = "0 0 2.8 -4.2 0 2.8 0 -4.2 4 0 0 -6 0 0 0 1" ]
    [ "$(key "$TMP/z.lsdm" 0 spacing)" = "4 2.8 2.8" ]
    vq-decode -m "$ANISO" "$TMP/z.lsdm" -o "$TMP/y.lsdm"
    [ "$(field "$TMP/y.lsdm" 0 'r["shape"]')" = "[1, 8, 16, 16]" ]
    for k in affine spacing; do [ "$(key "$TMP/y.lsdm" 0 $k)" = "$(key "$TMP/p.lsdm" 0 $k)" ]; done
    # a shape that fits 2 along depth but not 4: accepted; 4,4,4 refuses it
    phantom --shape 6x16x16 -o "$TMP/p6.lsdm"
    run_tool 0 vq-encode -m "$ANISO" "$TMP/p6.lsdm" -o "$TMP/z6.lsdm"
    [ "$(field "$TMP/z6.lsdm" 0 'r["shape"]')" = "[4, 3, 4, 4]" ]
    run_tool 1 vq-encode -m "$PLAIN" "$TMP/p6.lsdm" -o "$TMP/z6p.lsdm"
    # the other model's latent: the factors differ (and so does the digest)
    run_tool 1 vq-decode -m "$PLAIN" --force-model "$TMP/z.lsdm" -o "$TMP/bad.lsdm"
    [ "$stderr" = "vq-decode: error: phantom-s0-0000: latent of downsampling 2,4,4, the model's is 4" ]
    run_tool 1 vq-encode -m "$ANISO" --tile 6x16x10 "$TMP/p.lsdm" -o "$TMP/t.lsdm"
    [[ "$stderr" == *"multiples of the model's downsampling 2,4,4" ]]
}

@test "codes are the nearest codes of the prequant latent, quantized their vectors" {
    phantom --shape 8x16x16 -o "$TMP/p.lsdm"
    vq-encode -m "$PLAIN" --output codes "$TMP/p.lsdm" -o "$TMP/c.lsdm"
    vq-encode -m "$PLAIN" --output quantized "$TMP/p.lsdm" -o "$TMP/q.lsdm"
    [ "$(field "$TMP/c.lsdm" 0 'r["dtype"], r["shape"]')" = "('i32', [2, 4, 4])" ]
    [ "$(key "$TMP/c.lsdm" 0 latent)" = codes ]
    [ "$(field "$TMP/c.lsdm" 0 '0 <= r["stats"]["min"] and r["stats"]["max"] <= 31 and r["stats"]["std"] > 0')" = True ]
    [ "$(field "$TMP/q.lsdm" 0 'r["dtype"], r["shape"]')" = "('f32', [4, 2, 4, 4])" ]
    [ "$(key "$TMP/q.lsdm" 0 latent)" = quantized ]
    # decoding the codes and the quantized latent gives the same image, bit for bit
    vq-decode -m "$PLAIN" "$TMP/c.lsdm" -o "$TMP/yc.lsdm"
    vq-decode -m "$PLAIN" --no-snap "$TMP/q.lsdm" -o "$TMP/yq.lsdm"
    run_tool 0 vol-diff "$TMP/yc.lsdm" "$TMP/yq.lsdm"
    [[ "$output" == *"ok max_abs=0 "* ]]
}

@test "min-max rescale: an affine change of intensities gives the same latent" {
    nii "$TMP/a.nii" 16 16 8 1 'math.sin(x / 3) + y * z / 50' 1,0,0,0,0,1,0,0,0,0,1,0
    nii "$TMP/b.nii" 16 16 8 1 '(math.sin(x / 3) + y * z / 50) * 4 + 100' 1,0,0,0,0,1,0,0,0,0,1,0
    vq-encode -m "$PLAIN" "$TMP/a.nii" -o "$TMP/za.lsdm"
    vq-encode -m "$PLAIN" "$TMP/b.nii" -o "$TMP/zb.lsdm"
    # equal up to f32 rounding of the rescale
    run_tool 0 vol-diff --ignore-geometry --atol 1e-4 "$TMP/za.lsdm" "$TMP/zb.lsdm"
    [ "$(key "$TMP/zb.lsdm" 0 source-range)" = "$(field "$TMP/b.nii" 0 '"%.9g,%.9g" % (r["stats"]["min"], r["stats"]["max"])')" ]
    # --rescale none: taken as it is, source-range -1,1, a different latent
    vq-encode -m "$PLAIN" --rescale none "$TMP/a.nii" -o "$TMP/zn.lsdm"
    [ "$(key "$TMP/zn.lsdm" 0 source-range)" = "-1,1" ]
    run_tool 1 vol-diff -q --atol 1e-3 "$TMP/za.lsdm" "$TMP/zn.lsdm"
}

@test "deterministic; -v names the device and the model" {
    phantom --shape 8x16x16 -o "$TMP/p.lsdm"
    vq-encode -m "$PLAIN" "$TMP/p.lsdm" -o "$TMP/z1.lsdm"
    vq-encode -m "$PLAIN" -j 1 "$TMP/p.lsdm" -o "$TMP/z2.lsdm"
    cmp "$TMP/z1.lsdm" "$TMP/z2.lsdm"
    run_tool 0 vq-encode -v -m "$PLAIN" "$TMP/p.lsdm" -o "$TMP/z3.lsdm"
    [[ "$stderr" == *"vq-encode: device cpu"* ]]
    digest=$(key "$TMP/z1.lsdm" 0 vq-model)
    [[ "$stderr" == *"model $digest: $PLAIN, n_hiddens 4, factor 4, 1 image channel(s), 32 codes of dim 4, plain decoder"* ]]
    # the SPADE model has another codebook: another digest
    vq-encode -m "$SPADE" "$TMP/p.lsdm" -o "$TMP/zs.lsdm"
    [ "$(key "$TMP/zs.lsdm" 0 vq-model)" != "$digest" ]
}

@test "a stream of several records: one latent each, names and order kept" {
    phantom --shape 8x16x16 --count 3 --seed 7 -o "$TMP/p.lsdm"
    cat "$TMP/p.lsdm" | vq-encode -m "$PLAIN" >"$TMP/z.lsdm"
    [ "$(field "$TMP/z.lsdm" 0 'r["name"]')" = phantom-s7-0000 ]
    [ "$(field "$TMP/z.lsdm" 2 'r["name"]')" = phantom-s7-0002 ]
    run_tool 0 vol-info --no-stats "$TMP/z.lsdm"
    [ "$(tail -1 <<<"$output")" = "3 records in 1 input" ]
    # each record is encoded on its own: the first as when it comes alone
    phantom --shape 8x16x16 --count 1 --seed 7 | vq-encode -m "$PLAIN" >"$TMP/z1.lsdm"
    [ "$(field "$TMP/z.lsdm" 0 'r["stats"]')" = "$(field "$TMP/z1.lsdm" 0 'r["stats"]')" ]
    [ "$(field "$TMP/z.lsdm" 1 'r["stats"]')" != "$(field "$TMP/z1.lsdm" 0 'r["stats"]')" ]
}

@test "tiling: one tile is exactly untiled; 8x16x16 tiles of 16x32x32 stay close" {
    phantom --shape 16x32x32 -o "$TMP/p.lsdm"
    vq-encode -m "$PLAIN" "$TMP/p.lsdm" -o "$TMP/z.lsdm"
    vq-encode -m "$PLAIN" --tile 16x32x32 "$TMP/p.lsdm" -o "$TMP/z1.lsdm"
    cmp "$TMP/z.lsdm" "$TMP/z1.lsdm"
    # 2x2x2 tiles, each grown by 2 latent voxels: with this random-weight
    # model the mean abs difference is 0.060 (latent std 0.36; max 0.41) -
    # the tiles' own GroupNorm statistics, not a seam; overlap 0 gives 0.27
    run_tool 0 vq-encode -m "$PLAIN" --tile 8x16x16 "$TMP/p.lsdm" -o "$TMP/zt.lsdm"
    run_tool 0 vol-diff --mean-atol 0.08 "$TMP/z.lsdm" "$TMP/zt.lsdm"
    vq-encode -m "$PLAIN" --tile 8x16x16 --overlap 0 "$TMP/p.lsdm" -o "$TMP/z0.lsdm"
    run_tool 1 vol-diff --mean-atol 0.15 "$TMP/z.lsdm" "$TMP/z0.lsdm"
    # windows grown to the whole volume: the untiled result up to rounding
    vq-encode -m "$PLAIN" --tile 8x16x16 --overlap 4 "$TMP/p.lsdm" -o "$TMP/z4.lsdm"
    run_tool 0 vol-diff --atol 1e-6 "$TMP/z.lsdm" "$TMP/z4.lsdm"
}

@test "errors: shape, NaN, channels, model, config, tile - one line each" {
    phantom --shape 10x16x16 -o "$TMP/odd.lsdm"
    run_tool 1 vq-encode -m "$PLAIN" "$TMP/odd.lsdm" -o "$TMP/z.lsdm"
    assert_one_error_line vq-encode
    [[ "$stderr" == *"phantom-s0-0000: shape 10x16x16 is not a multiple of the model's downsampling 4"* ]]
    [ ! -e "$TMP/z.lsdm" ]
    nii "$TMP/nan.nii" 16 16 8 1 'float("nan") if (x, y, z) == (3, 2, 1) else x' 1,0,0,0,0,1,0,0,0,0,1,0
    run_tool 1 vq-encode -m "$PLAIN" "$TMP/nan.nii" -o "$TMP/z.lsdm"
    assert_one_error_line vq-encode
    [[ "$stderr" == *"nan: 1 NaN or Inf value(s) in the image"* ]]
    nii "$TMP/two.nii" 16 16 8 2 'x + t' 1,0,0,0,0,1,0,0,0,0,1,0
    run_tool 1 vq-encode -m "$PLAIN" "$TMP/two.nii" -o "$TMP/z.lsdm"
    assert_one_error_line vq-encode
    [[ "$stderr" == *"two: the image has 2 channel(s), the model takes 1"* ]]
    # a config that does not fit the checkpoint names the first tensor that differs
    run_tool 1 vq-encode -m "$PLAIN" --config tiny "$TMP/odd.lsdm"
    assert_one_error_line vq-encode
    [[ "$stderr" == *"encoder.conv_first.conv.weight"* ]]
    run_tool 1 vq-encode -m "$TMP/none.safetensors" "$TMP/odd.lsdm"
    assert_one_error_line vq-encode
    phantom --shape 8x16x16 -o "$TMP/p.lsdm"
    run_tool 1 vq-encode -m "$PLAIN" --tile 8x10x16 "$TMP/p.lsdm"
    assert_one_error_line vq-encode
    [[ "$stderr" == *"multiples of the model's downsampling 4"* ]]
    run_tool 2 vq-encode -m "$PLAIN" --output codez "$TMP/p.lsdm"
    run_tool 2 vq-encode "$TMP/p.lsdm"
    [[ "$stderr" == *"no model"* ]]
}
