#!/usr/bin/env bats
# ldm-denoise: the latent record (shape, keys, geometry as vq-encode's),
# seeds, --samples, guidance (S = 0 ignores the mask; the reference formula
# at 0 is the standard one at 1), samplers, depth windows on a long mask,
# vq-decode of the output and every error. The checkpoints: the small UNet
# config of tests/fixtures/unet with random weights, 20 timesteps, trained
# depth 4 latent slices, for the plain fixture VQ-GAN (f = 4, codes of dim
# 4), written by test_diffusion --write-ldm.
load helper
load vq_helper

setup_file() {
    local mk="${LSDM_CTESTS:-$TOP/build/tests}/test_diffusion"
    export PLAIN="$TOP/tests/fixtures/vqgan/plain.safetensors"
    export SPADE="$TOP/tests/fixtures/vqgan/spade.safetensors"
    export LDM="$BATS_FILE_TMPDIR/t20.safetensors" NANLDM="$BATS_FILE_TMPDIR/nan.safetensors"
    "$mk" --write-ldm "$LDM" "$TOP/tests/fixtures/unet/small.conf" "$PLAIN" 20 4,8,8
    "$mk" --write-ldm "$NANLDM" "$TOP/tests/fixtures/unet/small.conf" "$PLAIN" 20 4,8,8 nan
    export P="$BATS_FILE_TMPDIR/p.lsdm" M="$BATS_FILE_TMPDIR/m.lsdm"
    PATH="$BIN:$PATH" phantom --shape 8x32x32 --count 2 -o "$P" --masks "$M"
}

setup() {
    setup_tmp
    # 2 threads that sleep at barriers: the UNet's many small parallel
    # loops stall when spinning threads share busy cores
    export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive
    KEY_ABSENT='<absent>'
}

@test "--help; one latent per mask: shape, keys, provenance, the geometry of vq-encode's latent" {
    run_tool 0 ldm-denoise --help
    [[ "$output" == "Usage: ldm-denoise "* ]]
    run_tool 0 ldm-denoise -m "$LDM" "$M" -o "$TMP/z.lsdm"
    [ -z "$stderr" ]
    [ "$(field "$TMP/z.lsdm" 0 'r["dtype"], r["shape"], r["role"], r["name"]')" = \
      "('f32', [4, 2, 8, 8], 'latent', 'phantom-s0-0000')" ]
    [ "$(field "$TMP/z.lsdm" 1 'r["name"], r["stats"]["nan"], r["stats"]["inf"]')" = "('phantom-s0-0001', 0, 0)" ]
    [ "$(key "$TMP/z.lsdm" 0 latent)" = prequant ]
    [ "$(key "$TMP/z.lsdm" 0 vq-factor)" = 4 ]
    [ "$(key "$TMP/z.lsdm" 0 image-shape)" = 8,32,32 ]
    [ "$(key "$TMP/z.lsdm" 0 provenance)" = \
      "phantom/0.1.0 seed=0 index=0; ldm-denoise/0.1.0 ddim steps=20 guidance=1.5 seed=0 sample=0" ]
    for k in labels encoding classes source-range; do [ "$(key "$TMP/z.lsdm" 0 $k)" = "<absent>" ]; done
    # the VQ-GAN's digest, affine and spacing exactly as vq-encode gives
    # them for the image of the mask's grid
    vq-encode -m "$PLAIN" "$P" -o "$TMP/e.lsdm"
    for k in vq-model affine spacing; do [ "$(key "$TMP/z.lsdm" 1 $k)" = "$(key "$TMP/e.lsdm" 1 $k)" ]; done
    [[ "$(key "$TMP/z.lsdm" 0 vq-model)" =~ ^[0-9a-f]{16}$ ]]
    # in the VQ-GAN's scale: x0 clipped to [-1,1], denormalised to the
    # codebook's range, which this random model reaches at both ends
    run_tool 0 ldm-denoise -v -m "$LDM" "$M" -o "$TMP/z2.lsdm"
    cmp "$TMP/z.lsdm" "$TMP/z2.lsdm"
    [[ "$stderr" == *"(f 4, range $(field "$TMP/z.lsdm" 0 '"%g..%g" % (r["stats"]["min"], r["stats"]["max"])')), trained on 4x8x8"* ]]
    # vq-decode takes it: an image on the mask's grid
    vq-decode -m "$PLAIN" "$TMP/z.lsdm" -o "$TMP/y.lsdm"
    [ "$(field "$TMP/y.lsdm" 0 'r["shape"], r["role"]')" = "([1, 8, 32, 32], 'image')" ]
    # the mask's geometry (to rounding: vq-encode | vq-decode's round trip)
    geom='[round(v, 9) for row in r["affine"] for v in row], r["spacing"]'
    [ "$(field "$TMP/y.lsdm" 0 "$geom")" = "$(field "$M" 0 "$geom")" ]
    [ "$(field "$M" 0 "$geom")" = "([0, 0, 0.7, -10.85, 0, 0.7, 0, -10.85, 2, 0, 0, -7, 0, 0, 0, 1], [2, 0.7, 0.7])" ]
}

@test "seeds: the same seed gives the same bytes, another seed other latents; records get their own noise" {
    ldm-denoise -m "$LDM" --seed 7 "$M" -o "$TMP/a.lsdm"
    cat "$M" | ldm-denoise -m "$LDM" --seed 7 >"$TMP/b.lsdm"
    cmp "$TMP/a.lsdm" "$TMP/b.lsdm"
    ldm-denoise -m "$LDM" --seed 8 "$M" -o "$TMP/c.lsdm"
    run_tool 1 vol-diff -q --atol 1e-3 "$TMP/a.lsdm" "$TMP/c.lsdm"
    [[ "$output" == *"2 of 2 records differ"* || "$stderr" == *"2 of 2 records differ"* ]]
    [ "$(key "$TMP/c.lsdm" 0 provenance)" = \
      "phantom/0.1.0 seed=0 index=0; ldm-denoise/0.1.0 ddim steps=20 guidance=1.5 seed=8 sample=0" ]
    # guidance 0 ignores the mask: the same mask twice still gets two noises
    phantom --shape 8x32x32 --masks "$TMP/m1.lsdm" -o /dev/null
    cat "$TMP/m1.lsdm" "$TMP/m1.lsdm" | ldm-denoise -m "$LDM" --guidance 0 -o "$TMP/u.lsdm"
    [ "$(field "$TMP/u.lsdm" 0 'r["stats"]["mean"]')" != "$(field "$TMP/u.lsdm" 1 'r["stats"]["mean"]')" ]
}

@test "--samples K: K records per mask named NAME-sK; sample 0 is the default sample" {
    ldm-denoise -m "$LDM" --samples 3 "$M" -o "$TMP/s.lsdm"
    [ "$(vol-info --json --no-stats "$TMP/s.lsdm" | python3 -c '
import json, sys
print(" ".join(json.loads(l)["name"] for l in sys.stdin if l.startswith("{\"input\"")))')" = \
      "phantom-s0-0000-s0 phantom-s0-0000-s1 phantom-s0-0000-s2 phantom-s0-0001-s0 phantom-s0-0001-s1 phantom-s0-0001-s2" ]
    [ "$(key "$TMP/s.lsdm" 2 provenance)" = \
      "phantom/0.1.0 seed=0 index=0; ldm-denoise/0.1.0 ddim steps=20 guidance=1.5 seed=0 sample=2" ]
    ldm-denoise -m "$LDM" "$M" -o "$TMP/z.lsdm"
    [ "$(field "$TMP/s.lsdm" 0 'r["stats"]')" = "$(field "$TMP/z.lsdm" 0 'r["stats"]')" ]
    [ "$(field "$TMP/s.lsdm" 3 'r["stats"]')" = "$(field "$TMP/z.lsdm" 1 'r["stats"]')" ]
    [ "$(field "$TMP/s.lsdm" 1 'r["stats"]["mean"]')" != "$(field "$TMP/s.lsdm" 0 'r["stats"]["mean"]')" ]
}

@test "guidance: S = 0 ignores the mask; the reference formula at S = 0 is cond alone (S = 1); -v says the passes" {
    phantom --shape 8x32x32 --seed 3 --masks "$TMP/m3.lsdm" -o /dev/null
    # unconditional: another mask at the same record index, the same latent
    ldm-denoise -m "$LDM" --guidance 0 "$M" -o "$TMP/u.lsdm"
    ldm-denoise -m "$LDM" --guidance 0 "$TMP/m3.lsdm" -o "$TMP/u3.lsdm"
    [ "$(field "$TMP/u.lsdm" 0 'r["stats"]')" = "$(field "$TMP/u3.lsdm" 0 'r["stats"]')" ]
    ldm-denoise -m "$LDM" "$M" -o "$TMP/g.lsdm"
    ldm-denoise -m "$LDM" "$TMP/m3.lsdm" -o "$TMP/g3.lsdm"
    [ "$(field "$TMP/g.lsdm" 0 'r["stats"]["mean"]')" != "$(field "$TMP/g3.lsdm" 0 'r["stats"]["mean"]')" ]
    # cond alone both ways, bit for bit (provenance aside)
    run_tool 0 ldm-denoise -v -m "$LDM" --guidance 1 "$M" -o "$TMP/c1.lsdm"
    [[ "$stderr" == *"guidance 1 (standard: cond alone)"* ]]
    run_tool 0 ldm-denoise -v -m "$LDM" --guidance 0 --guidance-mode reference "$M" -o "$TMP/c0.lsdm"
    [[ "$stderr" == *"guidance 0 (reference: cond alone)"* ]]
    run_tool 0 vol-diff "$TMP/c1.lsdm" "$TMP/c0.lsdm"
    [[ "$output" == *"[1] phantom-s0-0001: ok max_abs=0 "* ]]
    run_tool 0 ldm-denoise -v -m "$LDM" "$M" -o "$TMP/g2.lsdm"
    [[ "$stderr" == *"guidance 1.5 (standard: cond and uncond as a batch of 2)"* ]]
    cmp "$TMP/g.lsdm" "$TMP/g2.lsdm"
    # the reference formula at 1.5 is another eps
    ldm-denoise -m "$LDM" --guidance-mode reference "$M" -o "$TMP/r.lsdm"
    run_tool 1 vol-diff -q --atol 1e-4 "$TMP/g.lsdm" "$TMP/r.lsdm"
    [[ "$(key "$TMP/r.lsdm" 0 provenance)" == *"guidance=1.5 guidance-mode=reference seed=0 sample=0" ]]
}

@test "samplers: ddpm over all 20 timesteps, respaced ddpm, ddim with eta, --no-clip, -v" {
    run_tool 0 ldm-denoise -v -m "$LDM" --sampler ddpm "$M" -o "$TMP/p1.lsdm"
    [[ "$stderr" == *"sampler ddpm, 20 steps (t 19 .. 0)"* ]]
    [[ "$stderr" == *"phantom-s0-0000: mask 8x32x32 -> latent 4x2x8x8, 1 window(s) of 2 slice(s), 1 sample(s)"* ]]
    [[ "$stderr" == *"20 timesteps, latents of VQ-GAN $(key "$TMP/p1.lsdm" 0 vq-model) (f 4,"* ]]
    ldm-denoise -m "$LDM" --sampler ddpm "$M" -o "$TMP/p2.lsdm"
    cmp "$TMP/p1.lsdm" "$TMP/p2.lsdm"
    [[ "$(key "$TMP/p1.lsdm" 0 provenance)" == *"ldm-denoise/0.1.0 ddpm steps=20 guidance=1.5 seed=0 sample=0" ]]
    ldm-denoise -m "$LDM" "$M" -o "$TMP/d.lsdm"
    run_tool 1 vol-diff -q --atol 1e-3 "$TMP/p1.lsdm" "$TMP/d.lsdm"
    run_tool 0 ldm-denoise -v -m "$LDM" --sampler ddpm --steps 5 "$M" -o "$TMP/p5.lsdm"
    [[ "$stderr" == *"sampler ddpm (respaced: DDIM eta 1), 5 steps (t 19 .. 0)"* ]]
    # DDIM: 4 steps of t 19, 13, 6, 0; eta adds noise; no clipping lets x0 leave [-1,1]
    run_tool 0 ldm-denoise -v -m "$LDM" --steps 4 "$M" -o "$TMP/d4.lsdm"
    [[ "$stderr" == *"sampler ddim, 4 steps (t 19 .. 0)"* ]]
    run_tool 0 ldm-denoise -v -m "$LDM" --steps 4 --eta 1 "$M" -o "$TMP/e1.lsdm"
    [[ "$stderr" == *"sampler ddim, 4 steps (t 19 .. 0), eta 1, guidance 1.5"* ]]
    run_tool 1 vol-diff -q --atol 1e-3 "$TMP/d4.lsdm" "$TMP/e1.lsdm"
    [[ "$(key "$TMP/e1.lsdm" 0 provenance)" == *"ddim steps=4 eta=1 guidance=1.5 seed=0 sample=0" ]]
    ldm-denoise -m "$LDM" --steps 4 --no-clip "$M" -o "$TMP/nc.lsdm"
    [ "$(field "$TMP/nc.lsdm" 0 'r["stats"]["max"] - r["stats"]["min"] > 3.2')" = True ]
    [ "$(field "$TMP/d4.lsdm" 0 'r["stats"]["max"] - r["stats"]["min"] <= 3.12')" = True ]
}

@test "a mask deeper than the trained depth: overlapping windows, blended, the latent of the whole mask" {
    phantom --shape 48x32x32 --masks "$TMP/long.lsdm" -o /dev/null
    run_tool 0 ldm-denoise -v -m "$LDM" --steps 5 "$TMP/long.lsdm" -o "$TMP/z.lsdm"
    # 12 latent slices in windows of 4, 2 apart: 0, 2, 4, 6, 8
    [[ "$stderr" == *"mask 48x32x32 -> latent 4x12x8x8, 5 window(s) of 4 slice(s)"* ]]
    [ "$(field "$TMP/z.lsdm" 0 'r["shape"], r["stats"]["nan"]')" = "([4, 12, 8, 8], 0)" ]
    [ "$(key "$TMP/z.lsdm" 0 image-shape)" = 48,32,32 ]
    ldm-denoise -m "$LDM" --steps 5 "$TMP/long.lsdm" -o "$TMP/z2.lsdm"
    cmp "$TMP/z.lsdm" "$TMP/z2.lsdm"
    # 14 slices: windows 0, 2, .., 10 (the last one ending at the end)
    phantom --shape 56x32x32 --masks "$TMP/l14.lsdm" -o /dev/null
    run_tool 0 ldm-denoise -v -m "$LDM" --steps 2 "$TMP/l14.lsdm" -o "$TMP/z14.lsdm"
    [[ "$stderr" == *"latent 4x14x8x8, 6 window(s) of 4 slice(s)"* ]]
    [ "$(field "$TMP/z14.lsdm" 0 'r["shape"]')" = "[4, 14, 8, 8]" ]
    vq-decode -m "$PLAIN" "$TMP/z14.lsdm" -o "$TMP/y14.lsdm"
    [ "$(field "$TMP/y14.lsdm" 0 'r["shape"]')" = "[1, 56, 32, 32]" ]
}

@test "errors: steps, checkpoints, another VQ-GAN, classes, grids, NaN - one line each, no output" {
    run_tool 1 ldm-denoise -m "$LDM" --steps 21 "$M" -o "$TMP/z.lsdm"
    assert_one_error_line ldm-denoise
    [[ "$stderr" == *"--steps: 21 sampling steps: the model has 20 timesteps (1 to 20 steps)" ]]
    run_tool 2 ldm-denoise -m "$LDM" --steps 0 "$M"
    run_tool 2 ldm-denoise -m "$LDM" --sampler euler "$M"
    run_tool 2 ldm-denoise -m "$LDM" --eta -1 "$M"
    run_tool 2 ldm-denoise -m "$LDM" --guidance-mode other "$M"
    run_tool 2 ldm-denoise "$M"
    [[ "${stderr_lines[0]}" == "ldm-denoise: error: no model: give -m LDM" ]]
    # the checkpoint's VQ-GAN: the same passes, another one is refused
    run_tool 0 ldm-denoise -m "$LDM" --vq "$PLAIN" "$M" -o "$TMP/ok.lsdm"
    run_tool 1 ldm-denoise -m "$LDM" --vq "$SPADE" "$M" -o "$TMP/z.lsdm"
    assert_one_error_line ldm-denoise
    [[ "$stderr" == *"is a latent checkpoint of another VQ-GAN (vq_model "* ]]
    # no diffusion checkpoint: a VQ-GAN, a bare UNet
    run_tool 1 ldm-denoise -m "$PLAIN" "$M" -o "$TMP/z.lsdm"
    assert_one_error_line ldm-denoise
    [[ "$stderr" == *"is not a diffusion UNet"* ]]
    run_tool 1 ldm-denoise -m "$TOP/tests/fixtures/unet/small.safetensors" "$M" -o "$TMP/z.lsdm"
    assert_one_error_line ldm-denoise
    [[ "$stderr" == *"small.safetensors is no diffusion checkpoint (no 'diffusion' metadata"* ]]
    # 3 classes one-hot, class 5 of 5: the model takes 5
    mask2sem --map '0=0,1=1,*=2' --onehot "$M" -o "$TMP/s3.lsdm"
    run_tool 1 ldm-denoise -m "$LDM" "$TMP/s3.lsdm" -o "$TMP/z.lsdm"
    assert_one_error_line ldm-denoise
    [[ "$stderr" == *"mask of shape 3,8,32,32, expected 5 one-hot channels or class indices"* ]]
    mask2sem --map '0=0,1=1,2=2,3=3,4=5' "$M" -o "$TMP/s6.lsdm"
    run_tool 1 ldm-denoise -m "$LDM" "$TMP/s6.lsdm" -o "$TMP/z.lsdm"
    [[ "$stderr" == *"mask class 5, the model knows 5 classes"* ]]
    # grids: depth not a multiple of f; a plane the UNet cannot halve
    phantom --shape 10x32x32 --masks "$TMP/odd.lsdm" -o /dev/null
    run_tool 1 ldm-denoise -m "$LDM" "$TMP/odd.lsdm" -o "$TMP/z.lsdm"
    assert_one_error_line ldm-denoise
    [[ "$stderr" == *"phantom-s0-0000: mask 10x32x32 is not a multiple of the latent downsampling 4" ]]
    phantom --shape 8x36x36 --masks "$TMP/odd2.lsdm" -o /dev/null
    run_tool 1 ldm-denoise -m "$LDM" "$TMP/odd2.lsdm" -o "$TMP/z.lsdm"
    [[ "$stderr" == *"mask 8x36x36: height and width must be multiples of 8"* ]]
    # NaN from the model: named with its step; nothing written, not even
    # the records before
    run_tool 1 ldm-denoise -m "$NANLDM" "$M" -o "$TMP/z.lsdm"
    assert_one_error_line ldm-denoise
    [[ "$stderr" == *"phantom-s0-0000: 128 NaN or Inf value(s) in the model's noise prediction (step 1 of 20, t 19)" ]]
    run_pipe 1 "cat '$M' '$TMP/odd.lsdm' | ldm-denoise -m '$LDM' -o '$TMP/z.lsdm'"
    assert_one_error_line ldm-denoise
    [ ! -e "$TMP/z.lsdm" ]
}

@test "--baseline noise: the seed's clipped start noise, scaled to the latent range; the mask is ignored" {
    ldm-denoise -m "$LDM" --baseline noise --seed 4 "$M" -o "$TMP/n.lsdm"
    [ "$(key "$TMP/n.lsdm" 0 provenance)" = "phantom/0.1.0 seed=0 index=0; ldm-denoise/0.1.0 baseline=noise seed=4 sample=0" ]
    [ "$(key "$TMP/n.lsdm" 0 shape)" = "$(key "$TMP/n.lsdm" 1 shape)" ]
    # the model never runs: a checkpoint with NaN weights gives the same bytes
    ldm-denoise -m "$NANLDM" --baseline noise --seed 4 "$M" -o "$TMP/n2.lsdm"
    cmp <(zstd -dc "$TMP/n.lsdm") <(zstd -dc "$TMP/n2.lsdm")
    # another mask in the same place: the same latent; x_T clipped at +-1 fills the range
    phantom --shape 8x32x32 --seed 9 --count 2 --masks "$TMP/m9.lsdm" -o /dev/null
    ldm-denoise -m "$LDM" --baseline noise --seed 4 "$TMP/m9.lsdm" -o "$TMP/n9.lsdm"
    run_tool 0 vol-diff "$TMP/n.lsdm" "$TMP/n9.lsdm"
    ldm-denoise -m "$LDM" --baseline noise --seed 5 "$M" -o "$TMP/n5.lsdm"
    for k in min max; do
        [ "$(field "$TMP/n.lsdm" 0 "r['stats']['$k']")" = "$(field "$TMP/n5.lsdm" 1 "r['stats']['$k']")" ]
    done
    run_tool 1 vol-diff -q "$TMP/n.lsdm" "$TMP/n5.lsdm"
    run_tool 2 ldm-denoise -m "$LDM" --baseline zero "$M"
    [[ "$stderr" == "ldm-denoise: error: --baseline: 'zero' is not noise"* ]]
}

@test "--first-index: a job over records N.. samples them as one run over all (job arrays)" {
    ldm-denoise -m "$LDM" --seed 3 --steps 4 "$M" -o "$TMP/all.lsdm"
    vol-import --records 1 "$M" | ldm-denoise -m "$LDM" --seed 3 --steps 4 --first-index 1 -o "$TMP/part.lsdm"
    vol-import --records 1 "$TMP/all.lsdm" -o "$TMP/all1.lsdm"
    run_tool 0 vol-diff --atol 0 "$TMP/all1.lsdm" "$TMP/part.lsdm"
    # without it the part is sampled as record 0: other noise
    vol-import --records 1 "$M" | ldm-denoise -m "$LDM" --seed 3 --steps 4 -o "$TMP/part0.lsdm"
    run_tool 1 vol-diff -q --atol 1e-3 "$TMP/all1.lsdm" "$TMP/part0.lsdm"
    run_tool 2 ldm-denoise -m "$LDM" --first-index -1 "$M"
}
