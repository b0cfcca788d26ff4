#!/usr/bin/env bats
# vq-decode: image shapes and keys, the geometry round trip through
# vq-encode, snapping, codes vs quantized, --range, the SPADE decoder's
# mask, tiling, several records and every error, with the small fixture
# VQ-GANs (tests/fixtures/vqgan: f = 4, 32 codes of dim 4; SPADE: 3 classes).
load helper
load vq_helper

setup() {
    setup_tmp
    PLAIN="$TOP/tests/fixtures/vqgan/plain.safetensors"
    SPADE="$TOP/tests/fixtures/vqgan/spade.safetensors"
    export OMP_NUM_THREADS=2
    KEY_ABSENT='<absent>'
}


# masks of the phantom reduced to the SPADE fixture's 3 classes
seg3() { mask2sem --map '0=0,1=1,*=2' "$@"; }

@test "--help; encode | decode gives a 1x8x16x16 f32 image, geometry bit for bit, latent keys gone" {
    run_tool 0 vq-decode --help
    [[ "$output" == "Usage: vq-decode "* ]]
    phantom --shape 8x16x16 -o "$TMP/p.lsdm"
    vq-encode -m "$PLAIN" "$TMP/p.lsdm" | vq-decode -m "$PLAIN" >"$TMP/y.lsdm"
    [ "$(field "$TMP/y.lsdm" 0 'r["dtype"], r["shape"], r["role"], r["name"]')" = \
      "('f32', [1, 8, 16, 16], 'image', 'phantom-s0-0000')" ]
    for k in affine spacing class-means; do [ "$(key "$TMP/y.lsdm" 0 $k)" = "$(key "$TMP/p.lsdm" 0 $k)" ]; done
    for k in latent vq-factor vq-model source-range image-shape; do [ "$(key "$TMP/y.lsdm" 0 $k)" = "<absent>" ]; done
    [ "$(key "$TMP/y.lsdm" 0 provenance)" = "phantom/0.1.0 seed=0 index=0; vq-encode/0.1.0; vq-decode/0.1.0" ]
    # tanh output, default range [-1,1]
    [ "$(field "$TMP/y.lsdm" 0 '-1 < r["stats"]["min"] < r["stats"]["max"] < 1')" = True ]
    # a NIfTI grid (1.5 mm flipped x, odd origins) comes back exactly too
    nii "$TMP/a.nii" 20 12 8 1 'x * y + z' -1.5,0,0,90.3,0,1.25,0,-126.7,0,0,2.5,-72.1
    vq-encode -m "$PLAIN" "$TMP/a.nii" | vq-decode -m "$PLAIN" >"$TMP/ya.lsdm"
    [ "$(key "$TMP/ya.lsdm" 0 affine)" = "$(key "$TMP/a.nii" 0 affine)" ]
    [ "$(key "$TMP/ya.lsdm" 0 spacing)" = "$(key "$TMP/a.nii" 0 spacing)" ]
}

@test "codes, quantized and snapped prequant latents decode to the same image; --no-snap differs" {
    phantom --shape 8x16x16 -o "$TMP/p.lsdm"
    for k in prequant quantized codes; do
        vq-encode -m "$PLAIN" --output $k "$TMP/p.lsdm" | vq-decode -m "$PLAIN" >"$TMP/y-$k.lsdm"
    done
    run_tool 0 vol-diff "$TMP/y-codes.lsdm" "$TMP/y-quantized.lsdm"
    [[ "$output" == *"ok max_abs=0 "* ]]
    run_tool 0 vol-diff "$TMP/y-codes.lsdm" "$TMP/y-prequant.lsdm"
    vq-encode -m "$PLAIN" "$TMP/p.lsdm" | vq-decode -m "$PLAIN" --no-snap >"$TMP/y-raw.lsdm"
    run_tool 1 vol-diff -q --atol 1e-3 "$TMP/y-codes.lsdm" "$TMP/y-raw.lsdm"
    # deterministic; another thread count changes float sums in the
    # decoder's kernels only (max 1e-6 measured)
    vq-encode -m "$PLAIN" "$TMP/p.lsdm" | vq-decode -m "$PLAIN" >"$TMP/y-again.lsdm"
    cmp "$TMP/y-prequant.lsdm" "$TMP/y-again.lsdm"
    vq-encode -m "$PLAIN" "$TMP/p.lsdm" | vq-decode -m "$PLAIN" -j 1 >"$TMP/y-j1.lsdm"
    run_tool 0 vol-diff --atol 1e-5 "$TMP/y-prequant.lsdm" "$TMP/y-j1.lsdm"
}

@test "--range source maps back to the encoder's source range; --range lo,hi" {
    nii "$TMP/a.nii" 16 16 8 1 '100 + 50 * math.sin(x / 3 + y / 5 + z)' 1,0,0,0,0,1,0,0,0,0,1,0
    vq-encode -m "$PLAIN" "$TMP/a.nii" -o "$TMP/z.lsdm"
    range=$(key "$TMP/z.lsdm" 0 source-range)
    vq-decode -m "$PLAIN" "$TMP/z.lsdm" -o "$TMP/y.lsdm"
    vq-decode -m "$PLAIN" --range source "$TMP/z.lsdm" -o "$TMP/ys.lsdm"
    vq-decode -m "$PLAIN" --range "$range" "$TMP/z.lsdm" -o "$TMP/yr.lsdm"
    run_tool 0 vol-diff "$TMP/ys.lsdm" "$TMP/yr.lsdm"
    # y in [-1,1] -> lo + (y + 1) / 2 (hi - lo): every value, through the means
    want=$(field "$TMP/y.lsdm" 0 "round($(cut -d, -f1 <<<"$range") + (r['stats']['mean'] + 1) / 2 * ($(cut -d, -f2 <<<"$range") - $(cut -d, -f1 <<<"$range")), 3)")
    [ "$(field "$TMP/ys.lsdm" 0 'round(r["stats"]["mean"], 3)')" = "$want" ]
    [ "$(field "$TMP/ys.lsdm" 0 '50 < r["stats"]["min"] and r["stats"]["max"] < 150')" = True ]
    vq-decode -m "$PLAIN" --range 0,2 "$TMP/z.lsdm" -o "$TMP/y02.lsdm"
    [ "$(field "$TMP/y02.lsdm" 0 'round(r["stats"]["min"], 5)')" = "$(field "$TMP/y.lsdm" 0 'round(r["stats"]["min"] + 1, 5)')" ]
    run_tool 2 vq-decode -m "$PLAIN" --range 1 "$TMP/z.lsdm"
}

@test "SPADE: the mask stream pairs record by record; one-hot (any dtype) or class indices" {
    phantom --shape 8x16x16 --count 2 -o "$TMP/p.lsdm" --masks "$TMP/m.lsdm"
    seg3 --onehot "$TMP/m.lsdm" -o "$TMP/s16.lsdm"
    seg3 --onehot --dtype u8 "$TMP/m.lsdm" -o "$TMP/s8.lsdm"
    seg3 "$TMP/m.lsdm" -o "$TMP/si.lsdm"
    vq-encode -m "$SPADE" "$TMP/p.lsdm" -o "$TMP/z.lsdm"
    run_tool 0 vq-decode -m "$SPADE" --seg "$TMP/s16.lsdm" "$TMP/z.lsdm" -o "$TMP/y16.lsdm"
    [ "$(field "$TMP/y16.lsdm" 1 'r["shape"], r["name"]')" = "([1, 8, 16, 16], 'phantom-s0-0001')" ]
    vq-decode -m "$SPADE" --seg "$TMP/s8.lsdm" "$TMP/z.lsdm" -o "$TMP/y8.lsdm"
    vq-decode -m "$SPADE" --seg "$TMP/si.lsdm" "$TMP/z.lsdm" -o "$TMP/yi.lsdm"
    run_tool 0 vol-diff "$TMP/y16.lsdm" "$TMP/y8.lsdm"
    run_tool 0 vol-diff "$TMP/y16.lsdm" "$TMP/yi.lsdm"
    # the mask matters: an all-background mask gives another image
    mask2sem --map '*=0' --classes 3 --onehot "$TMP/m.lsdm" -o "$TMP/s0.lsdm"
    vq-decode -m "$SPADE" --seg "$TMP/s0.lsdm" "$TMP/z.lsdm" -o "$TMP/y0.lsdm"
    run_tool 1 vol-diff -q --atol 1e-4 "$TMP/y16.lsdm" "$TMP/y0.lsdm"
}

@test "tiling: one tile is exactly untiled; 8x16x16 tiles of 16x32x32 stay close" {
    phantom --shape 16x32x32 -o "$TMP/p.lsdm" --masks "$TMP/m.lsdm"
    vq-encode -m "$PLAIN" "$TMP/p.lsdm" -o "$TMP/z.lsdm"
    vq-decode -m "$PLAIN" "$TMP/z.lsdm" -o "$TMP/y.lsdm"
    vq-decode -m "$PLAIN" --tile 16x32x32 "$TMP/z.lsdm" -o "$TMP/y1.lsdm"
    cmp "$TMP/y.lsdm" "$TMP/y1.lsdm"
    # 2x2x2 tiles grown by 2 latent voxels: mean abs difference 0.027 with
    # this random-weight model (image std 0.22, max 0.25): per-tile GroupNorm
    # statistics; without overlap 0.16
    vq-decode -m "$PLAIN" --tile 8x16x16 "$TMP/z.lsdm" -o "$TMP/yt.lsdm"
    run_tool 0 vol-diff --mean-atol 0.04 "$TMP/y.lsdm" "$TMP/yt.lsdm"
    vq-decode -m "$PLAIN" --tile 8x16x16 --overlap 0 "$TMP/z.lsdm" -o "$TMP/y0.lsdm"
    run_tool 1 vol-diff --mean-atol 0.1 "$TMP/y.lsdm" "$TMP/y0.lsdm"
    # SPADE: the mask is tiled with the latent
    seg3 --onehot "$TMP/m.lsdm" -o "$TMP/s.lsdm"
    vq-encode -m "$SPADE" "$TMP/p.lsdm" -o "$TMP/zs.lsdm"
    vq-decode -m "$SPADE" --seg "$TMP/s.lsdm" "$TMP/zs.lsdm" -o "$TMP/ys.lsdm"
    vq-decode -m "$SPADE" --seg "$TMP/s.lsdm" --tile 8x16x16 --overlap 4 "$TMP/zs.lsdm" -o "$TMP/yst.lsdm"
    run_tool 0 vol-diff --atol 1e-5 "$TMP/ys.lsdm" "$TMP/yst.lsdm"
}

@test "a stream of several records" {
    phantom --shape 8x16x16 --count 3 --seed 5 | vq-encode -m "$PLAIN" --output codes >"$TMP/c.lsdm"
    cat "$TMP/c.lsdm" | vq-decode -m "$PLAIN" >"$TMP/y.lsdm"
    run_tool 0 vol-info --no-stats "$TMP/y.lsdm"
    [ "$(tail -1 <<<"$output")" = "3 records in 1 input" ]
    [ "$(field "$TMP/y.lsdm" 2 'r["name"], r["shape"]')" = "('phantom-s5-0002', [1, 8, 16, 16])" ]
    [ "$(field "$TMP/y.lsdm" 0 'r["stats"]')" != "$(field "$TMP/y.lsdm" 1 'r["stats"]')" ]
}

@test "errors: mask, channels, another VQ-GAN, NaN, codes - one line each, no output" {
    phantom --shape 8x16x16 --count 2 -o "$TMP/p.lsdm" --masks "$TMP/m.lsdm"
    vq-encode -m "$PLAIN" "$TMP/p.lsdm" -o "$TMP/z.lsdm"
    seg3 --onehot "$TMP/m.lsdm" -o "$TMP/s.lsdm"
    run_tool 1 vq-decode -m "$SPADE" "$TMP/z.lsdm" -o "$TMP/y.lsdm"
    assert_one_error_line vq-decode
    [[ "$stderr" == *"the SPADE decoder needs --seg"* ]]
    [ ! -e "$TMP/y.lsdm" ]
    run_tool 1 vq-decode -m "$PLAIN" --seg "$TMP/s.lsdm" "$TMP/z.lsdm" -o "$TMP/y.lsdm"
    assert_one_error_line vq-decode
    [[ "$stderr" == *"plain, it takes no mask"* ]]
    # latents of the plain model's codebook for the SPADE model
    run_tool 1 vq-decode -m "$SPADE" --seg "$TMP/s.lsdm" "$TMP/z.lsdm" -o "$TMP/y.lsdm"
    assert_one_error_line vq-decode
    [[ "$stderr" == *"phantom-s0-0000: latent of another VQ-GAN (vq-model $(key "$TMP/z.lsdm" 0 vq-model)"* ]]
    run_tool 0 vq-decode -m "$SPADE" --seg "$TMP/s.lsdm" --force-model "$TMP/z.lsdm" -o "$TMP/y.lsdm"
    # mask stream too short, too long, wrong class count
    phantom --shape 8x16x16 --count 1 --masks "$TMP/m1.lsdm" >/dev/null
    seg3 --onehot "$TMP/m1.lsdm" -o "$TMP/s1.lsdm"
    run_tool 1 vq-decode -m "$SPADE" --force-model --seg "$TMP/s1.lsdm" "$TMP/z.lsdm" -o "$TMP/y2.lsdm"
    assert_one_error_line vq-decode
    [[ "$stderr" == *"phantom-s0-0001: --seg: the mask stream ended before the latents"* ]]
    [ ! -e "$TMP/y2.lsdm" ]
    cat "$TMP/s.lsdm" "$TMP/s1.lsdm" >"$TMP/s3.lsdm"
    run_tool 1 vq-decode -m "$SPADE" --force-model --seg "$TMP/s3.lsdm" "$TMP/z.lsdm" -o "$TMP/y2.lsdm"
    assert_one_error_line vq-decode
    [[ "$stderr" == *"more records than the latents"* ]]
    mask2sem --onehot "$TMP/m.lsdm" -o "$TMP/s5.lsdm"
    run_tool 1 vq-decode -m "$SPADE" --force-model --seg "$TMP/s5.lsdm" "$TMP/z.lsdm" -o "$TMP/y2.lsdm"
    assert_one_error_line vq-decode
    [[ "$stderr" == *"--seg: mask of shape 5,8,16,16, expected 3,8,16,16"* ]]
    # an image is no latent: 1 channel for a codebook of dimension 4
    run_tool 1 vq-decode -m "$PLAIN" "$TMP/p.lsdm" -o "$TMP/y2.lsdm"
    assert_one_error_line vq-decode
    [[ "$stderr" == *"phantom-s0-0000: the latent has 1 channels, the model's codebook has dimension 4"* ]]
    # NaN in a 4-channel latent-shaped stream
    nii "$TMP/nan.nii" 4 4 2 4 'float("nan") if (x, y, z, t) == (1, 2, 1, 3) else 0.5' 1,0,0,0,0,1,0,0,0,0,1,0
    vol-import "$TMP/nan.nii" -o "$TMP/nan.lsdm"
    run_tool 1 vq-decode -m "$PLAIN" "$TMP/nan.lsdm" -o "$TMP/y2.lsdm"
    assert_one_error_line vq-decode
    [[ "$stderr" == *"nan: 1 NaN or Inf value(s) in the latent"* ]]
    # a 16-code codebook's index 40: outside this one
    nii "$TMP/codes.nii" 4 4 2 1 '40 if x == 3 else 1' 1,0,0,0,0,1,0,0,0,0,1,0
    vol-import --labels "$TMP/codes.nii" -o "$TMP/codes.lsdm"
    run_tool 1 vq-decode -m "$PLAIN" "$TMP/codes.lsdm" -o "$TMP/y2.lsdm"
    assert_one_error_line vq-decode
    [[ "$stderr" == *"code 40 at 3 is outside the codebook (0..31)"* ]]
    [ ! -e "$TMP/y2.lsdm" ]
}
