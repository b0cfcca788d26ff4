#!/usr/bin/env bats
# vq-train: a few steps of the tiny VQ-GAN on small phantoms. Checkpoint
# contents, the CSV log, bit-identical --resume (with the GAN on), the
# checkpoint feeding vq-encode, previews, and bad input.
load helper
setup() {
    setup_tmp
    phantom -q -s 3 -n 2 --shape 8x32x32 -o "$TMP/train.lsdm"
    phantom -q -s 4 -n 1 --shape 8x32x32 -o "$TMP/val.lsdm"
    FAST=(--block 8x16x16 --batch 2 -j 1)
}

@test "trains: checkpoint with config, step and optimiser state; CSV log; PSNR and preview" {
    run_tool 0 vq-train "${FAST[@]}" --steps 4 --save-every 2 --log "$TMP/log.csv" --log-every 1 \
        --val "$TMP/val.lsdm" --preview "$TMP/p.png" -o "$TMP/m.st" "$TMP/train.lsdm"
    [ "$(st_meta "$TMP/m.st" step)" = 4 ]
    [ "$(st_meta "$TMP/m.st" codebook_ready)" = 1 ]
    st_meta "$TMP/m.st" config | grep -qx 'n_hiddens = 8'
    st_meta "$TMP/m.st" config | grep -qx 'downsample = 2,2,2'   # tiny: f 2
    python3 - "$TMP/m.st" <<'EOF'
import json, struct, sys
b = open(sys.argv[1], 'rb').read()
h = json.loads(b[8:8 + struct.unpack('<Q', b[:8])[0]])
assert h['codebook.embeddings']['shape'] == [1024, 8], h['codebook.embeddings']
assert h['encoder.conv_first.conv.weight']['shape'] == [8, 1, 3, 3, 3]
assert h['image_discriminator.model0.0.weight']['shape'] == [16, 1, 4, 4]
assert 'train_state.adam_gen.exp_avg' in h
EOF
    # header + 4 steps; the PSNR column is filled at the saves (steps 2 and 4)
    [ "$(wc -l <"$TMP/log.csv")" -eq 5 ]
    head -1 "$TMP/log.csv" | grep -q '^step,seconds,loss,recon,commit'
    awk -F, 'NR>1 { if ($3 <= 0 || $11 < 1) exit 1 } NR==5 { if ($15 < 0 || $15 > 60) exit 1 }' "$TMP/log.csv"
    [ "$(head -c 8 "$TMP/p.png" | xxd -p)" = 89504e470d0a1a0a ]
    [[ "$stderr" == *"validation PSNR"* ]]
}

@test "--resume continues bit-identically, GAN, discriminators and cosine schedule included" {
    run_tool 0 vq-train "${FAST[@]}" --disc-start 1 --steps 4 --cosine -o "$TMP/a.st" "$TMP/train.lsdm"
    # the same run stopped by --minutes after its first step
    run_tool 0 vq-train "${FAST[@]}" --disc-start 1 --steps 4 --cosine --save-every 2 --minutes 0.00001 \
        -o "$TMP/b.st" "$TMP/train.lsdm"
    [ "$(st_meta "$TMP/b.st" step)" = 1 ]
    ! cmp -s "$TMP/a.st" "$TMP/b.st"
    run_tool 0 vq-train "${FAST[@]}" --disc-start 1 --steps 4 --cosine --resume "$TMP/b.st" -o "$TMP/b.st" "$TMP/train.lsdm"
    cmp "$TMP/a.st" "$TMP/b.st"
    # and the same seed from scratch gives the same bytes again
    run_tool 0 vq-train "${FAST[@]}" --disc-start 1 --steps 4 --cosine -o "$TMP/c.st" "$TMP/train.lsdm"
    cmp "$TMP/a.st" "$TMP/c.st"
    run_tool 0 vq-train "${FAST[@]}" --disc-start 1 --steps 4 --cosine --seed 7 -o "$TMP/d.st" "$TMP/train.lsdm"
    ! cmp -s "$TMP/a.st" "$TMP/d.st"
}

@test "--export: the encoder, codebook and decoder alone, a model vq-encode and vq-decode load" {
    run_tool 0 vq-train "${FAST[@]}" --disc-start 1 --steps 2 --export "$TMP/x.st" -o "$TMP/m.st" "$TMP/train.lsdm"
    [ "$(st_meta "$TMP/x.st")" = "$(st_meta "$TMP/m.st")" ]
    [ "$(st_names "$TMP/x.st")" = "$(st_names "$TMP/m.st" | grep -v '^train_state\.\|^image_discriminator\.\|^video_discriminator\.')" ]
    st_names "$TMP/x.st" | grep -q '^decoder\.'
    st_names "$TMP/m.st" | grep -q '^video_discriminator\.'
    vq-encode -m "$TMP/m.st" "$TMP/val.lsdm" | vq-decode -m "$TMP/m.st" -o "$TMP/a.lsdm"
    vq-encode -m "$TMP/x.st" "$TMP/val.lsdm" | vq-decode -m "$TMP/x.st" -o "$TMP/b.lsdm"
    run_tool 0 vol-diff --atol 0 "$TMP/a.lsdm" "$TMP/b.lsdm"
    # it cannot resume a run
    run_tool 1 vq-train "${FAST[@]}" --steps 3 --resume "$TMP/x.st" -o "$TMP/r.st" "$TMP/train.lsdm"
    assert_one_error_line vq-train
}

@test "the checkpoint is a model vq-encode loads" {
    run_tool 0 vq-train "${FAST[@]}" --steps 2 -o "$TMP/m.st" "$TMP/train.lsdm"
    run_tool 0 vq-encode -m "$TMP/m.st" -o "$TMP/z.lsdm" "$TMP/val.lsdm"
    run_tool 0 vol-info --json --no-stats "$TMP/z.lsdm"
    [[ "$output" == *'"shape":[8,4,16,16]'* ]]   # tiny: f 2
}

@test "a config with per-axis downsampling (2,4,4): blocks, checkpoint, latents" {
    printf 'n_hiddens = 8\ndownsample = 2,4,4\nn_codes = 64\nnum_groups = 8\ndisc_channels = 16\n' >"$TMP/a.conf"
    run_tool 2 vq-train -c "$TMP/a.conf" --block 8x16x18 -o "$TMP/m.st" "$TMP/train.lsdm"
    [[ "$stderr" == *"--block: 18 is not a multiple of the downsampling 2,4,4"* ]]
    run_tool 0 vq-train -c "$TMP/a.conf" --block 6x16x16 --batch 2 -j 1 --steps 2 --val "$TMP/val.lsdm" \
        -o "$TMP/m.st" "$TMP/train.lsdm"
    st_meta "$TMP/m.st" config | grep -qx 'downsample = 2,4,4'
    run_tool 0 vq-encode -m "$TMP/m.st" -o "$TMP/z.lsdm" "$TMP/val.lsdm"
    run_tool 0 vol-info --json --no-stats "$TMP/z.lsdm"
    [[ "$output" == *'"shape":[8,4,8,8]'* ]]
}

@test "bad input: one error line, exit 1, the earlier checkpoint kept" {
    run_tool 0 vq-train "${FAST[@]}" --steps 1 -o "$TMP/m.st" "$TMP/train.lsdm"
    cp "$TMP/m.st" "$TMP/keep.st"
    # not a volume source
    printf 'x' > "$TMP/bad.lsdm"
    run_tool 1 vq-train "${FAST[@]}" --steps 1 -o "$TMP/m.st" "$TMP/bad.lsdm"
    assert_one_error_line vq-train
    cmp "$TMP/m.st" "$TMP/keep.st"
    # a volume smaller than the block
    run_tool 1 vq-train --block 16x64x64 --steps 1 -o "$TMP/m.st" "$TMP/train.lsdm"
    assert_one_error_line vq-train
    [[ "$stderr" == *"smaller than the block"* ]]
    # resuming a checkpoint of another config
    run_tool 1 vq-train "${FAST[@]}" -c med-lsdm --steps 1 --resume "$TMP/keep.st" -o "$TMP/m.st" "$TMP/train.lsdm"
    assert_one_error_line vq-train
    [[ "$stderr" == *"encoder.conv_first.conv.weight"* ]]
    cmp "$TMP/m.st" "$TMP/keep.st"
}

@test "NaN in the data is refused before training" {
    # a float NIfTI-1 volume 32x32x8 with one NaN (python stdlib only)
    python3 - "$TMP/nan.nii" <<'EOF'
import struct, sys
h = bytearray(348)
struct.pack_into('<i', h, 0, 348)
struct.pack_into('<8h', h, 40, 3, 32, 32, 8, 1, 1, 1, 1)
struct.pack_into('<hh', h, 70, 16, 32)
struct.pack_into('<8f', h, 76, 1, 1, 1, 1, 1, 1, 1, 1)
struct.pack_into('<f', h, 108, 352)
h[344:348] = b'n+1\0'
v = [0.5] * (32 * 32 * 8)
v[1000] = float('nan')
open(sys.argv[1], 'wb').write(bytes(h) + bytes(4) + struct.pack('<%df' % len(v), *v))
EOF
    run_tool 1 vq-train "${FAST[@]}" --steps 1 -o "$TMP/m.st" "$TMP/nan.nii"
    assert_one_error_line vq-train
    [[ "$stderr" == *"'nan' holds NaN"* ]]
    [ ! -e "$TMP/m.st" ]
}

@test "learning rate: cosine by default for tiny (lr column), constant on request; --foreground changes the blocks; --restart-threshold" {
    run_tool 0 vq-train "${FAST[@]}" --steps 4 --log "$TMP/c.csv" --log-every 1 -o "$TMP/c.st" "$TMP/train.lsdm"
    # lr of step s (counted from 0) is 1e-3 (1 + cos(pi s / 4)) / 2
    [ "$(awk -F, 'NR>1 { printf "%s ", $17 }' "$TMP/c.csv")" = "0.001 0.000853553 0.0005 0.000146447 " ]
    run_tool 0 vq-train "${FAST[@]}" --steps 2 --lr-schedule constant --lr 2e-3 --log "$TMP/k.csv" --log-every 1 \
        -o "$TMP/k.st" "$TMP/train.lsdm"
    [ "$(awk -F, 'NR>1 { printf "%s ", $17 }' "$TMP/k.csv")" = "0.002 0.002 " ]
    # restarts: the reference's threshold (an EMA count of 1) restarts most of
    # the 1024 codes of a small batch at every step; 0 restarts none
    awk -F, 'NR>2 { if ($13 < 500) exit 1 }' "$TMP/c.csv"
    run_tool 0 vq-train "${FAST[@]}" --steps 3 --restart-threshold 0 --log "$TMP/r.csv" --log-every 1 -o "$TMP/r.st" "$TMP/train.lsdm"
    [ "$(awk -F, 'NR>1 { printf "%s ", $13 }' "$TMP/r.csv")" = "0 0 0 " ]
    # the first step's loss (before any update) differs only by the blocks taken
    run_tool 0 vq-train "${FAST[@]}" --steps 1 --foreground 0 --log "$TMP/f0.csv" --log-every 1 -o "$TMP/f0.st" "$TMP/train.lsdm"
    run_tool 0 vq-train "${FAST[@]}" --steps 1 --foreground 1 --log "$TMP/f1.csv" --log-every 1 -o "$TMP/f1.st" "$TMP/train.lsdm"
    [ "$(sed -n 2p "$TMP/f0.csv" | cut -d, -f4)" != "$(sed -n 2p "$TMP/f1.csv" | cut -d, -f4)" ]
}

@test "usage errors exit 2" {
    run_tool 2 vq-train "$TMP/train.lsdm"
    [[ "$stderr" == *"-o CKPT"* ]]
    run_tool 2 vq-train -o "$TMP/m.st"
    run_tool 2 vq-train --block 5x16x16 -o "$TMP/m.st" "$TMP/train.lsdm"
    [[ "$stderr" == *"multiple of the downsampling 2"* ]]
    run_tool 2 vq-train -c tiny-spade -o "$TMP/m.st" "$TMP/train.lsdm"
    [[ "$stderr" == *"--seg"* ]]
    run_tool 2 vq-train --flip xyz -o "$TMP/m.st" "$TMP/train.lsdm"
    run_tool 2 vq-train --foreground 1.5 -o "$TMP/m.st" "$TMP/train.lsdm"
    [[ "$stderr" == *"--foreground: a probability in [0,1]"* ]]
    run_tool 2 vq-train --lr-schedule linear -o "$TMP/m.st" "$TMP/train.lsdm"
    [[ "$stderr" == *"--lr-schedule: constant or cosine"* ]]
    run_tool 2 vq-train --init a --resume b -o "$TMP/m.st" "$TMP/train.lsdm"
    run_tool 0 vq-train --help
    [[ "$output" == "Usage: vq-train"* ]]
}

@test "--lpips adds the perceptual term (reduced-width weights from the LPIPS fixture)" {
    W="$TOP/tests/fixtures/lpips/weights.safetensors"
    run_tool 0 vq-train "${FAST[@]}" --steps 2 --lpips "$W" --perceptual-weight 2 \
        --log "$TMP/log.csv" --log-every 1 -o "$TMP/m.st" "$TMP/train.lsdm"
    head -1 "$TMP/log.csv" | grep -q ',val_psnr,perceptual,lr$'
    # loss = recon + commit + perceptual, the perceptual part positive
    awk -F, 'NR>1 { if (!($16 > 0) || ($3 - $4 - $5 - $16) > 1e-4 || ($3 - $4 - $5 - $16) < -1e-4) exit 1 }' "$TMP/log.csv"
    # the VQ-GAN's own file is not LPIPS weights
    run_tool 1 vq-train "${FAST[@]}" --steps 1 --lpips "$TMP/m.st" -o "$TMP/n.st" "$TMP/train.lsdm"
    assert_one_error_line vq-train
    [[ "$stderr" == *"net.slice1.0.weight"* ]]
}

@test "a bad number names its option as written: --lr x, --lr=x, -jN" {
    run_tool 2 vq-train --lr -1 -o "$TMP/m.st" "$TMP/train.lsdm"
    [ "${stderr_lines[0]}" = "vq-train: error: --lr: not a number >= 0: -1" ]
    run_tool 2 vq-train --steps=x -o "$TMP/m.st" "$TMP/train.lsdm"
    [ "${stderr_lines[0]}" = "vq-train: error: --steps: 'x' is not an integer" ]
    run_tool 2 vq-train -j0 -o "$TMP/m.st" "$TMP/train.lsdm"
    [ "${stderr_lines[0]}" = "vq-train: error: -j: 0 is out of range 1..1024" ]
    run_tool 2 seg-train --foreground 2 "$TMP/train.lsdm" "$TMP/train.lsdm" -o "$TMP/m.st"
    [ "${stderr_lines[0]}" = "seg-train: error: --foreground: not a number in [0,1]: 2" ]
    [ ! -e "$TMP/m.st" ]
}

@test "the pipelines' tiny-f4, and a config file 'base = tiny' + 'downsample = 4' that is the same" {
    run_tool 0 vq-train "${FAST[@]}" --steps 1 -c tiny-f4 -o "$TMP/f4.st" "$TMP/train.lsdm"
    printf 'base = tiny\ndownsample = 4\n' >"$TMP/f4.conf"
    run_tool 0 vq-train "${FAST[@]}" --steps 1 -c "$TMP/f4.conf" -o "$TMP/f4b.st" "$TMP/train.lsdm"
    cmp "$TMP/f4.st" "$TMP/f4b.st"
    st_meta "$TMP/f4.st" config | grep -qx 'downsample = 4,4,4'
    st_meta "$TMP/f4.st" config | grep -qx 'n_codes = 1024'
    run_tool 0 vq-encode -m "$TMP/f4.st" "$TMP/val.lsdm" -o "$TMP/z.lsdm"
    run_tool 0 vol-info --json --no-stats "$TMP/z.lsdm"
    [[ "$output" == *'"shape":[8,2,8,8]'* ]]
    printf 'base = tiny\nbase = huge\n' >"$TMP/bad.conf"
    run_tool 1 vq-train "${FAST[@]}" --steps 1 -c "$TMP/bad.conf" -o "$TMP/bad.st" "$TMP/train.lsdm"
    assert_one_error_line vq-train
    [[ "$stderr" == *"line 2"*"huge"* ]]
}
