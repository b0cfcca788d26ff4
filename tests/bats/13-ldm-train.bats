#!/usr/bin/env bats
# ldm-train: a few steps of a UNet smaller than tiny (dim 8, 2 levels, 4
# latent channels) on the latents of the small fixture VQ-GAN (f = 4, 32
# codes of dim 4) of 8x32x32 phantoms (latents 4x2x8x8). The checkpoint's
# diffusion metadata, the CSV log, images encoded as vq-encode does,
# bit-identical --resume, learning, previews, and bad input.
load helper
load vq_helper

setup() {
    setup_tmp
    VQ="$TOP/tests/fixtures/vqgan/plain.safetensors"
    cat >"$TMP/small.conf" <<'EOF'
dim = 8
dim_mults = 1,2
channels = 4
label_nc = 5
attn_heads = 2
attn_dim_head = 8
spatial_dim_head = 8
groups = 4
seg_hidden = 8,8
spade_input_nc = 4
spade_hidden = 8
EOF
    phantom -q -s 3 -n 2 --shape 8x32x32 -o "$TMP/img.lsdm" --masks "$TMP/lab.lsdm"
    mask2sem -q "$TMP/lab.lsdm" -o "$TMP/sem.lsdm"
    vq-encode -q -m "$VQ" "$TMP/img.lsdm" -o "$TMP/z.lsdm"
    SMALL=(-j 1 -c "$TMP/small.conf" --vq "$VQ" --block 2x8x8)
    FAST=("${SMALL[@]}" --seg "$TMP/sem.lsdm")
}

# True if tensors A and B of a safetensors file hold the same bytes
st_same() {
    python3 -c 'import json,struct,sys
b=open(sys.argv[1],"rb").read(); n=struct.unpack("<Q",b[:8])[0]; h=json.loads(b[8:8+n])
t=[b[8+n+h[k]["data_offsets"][0]:8+n+h[k]["data_offsets"][1]] for k in sys.argv[2:4]]
print(t[0] == t[1])' "$@"
}

@test "trains: a diffusion checkpoint with the VQ-GAN's codebook range and digest; CSV log" {
    run_tool 0 ldm-train --help
    [[ "$output" == "Usage: ldm-train "* ]]
    run_tool 0 ldm-train "${FAST[@]}" --steps 5 --save-every 2 --log "$TMP/log.csv" --log-every 1 \
        -o "$TMP/m.st" "$TMP/z.lsdm"
    [ "$(st_meta "$TMP/m.st" step)" = 5 ]
    [ "$(st_meta "$TMP/m.st" seed)" = 0 ]
    st_meta "$TMP/m.st" config | grep -x 'dim_mults = 1,2' >/dev/null
    # latent_min/max: the codebook's min and max (%.9g of the f32 values)
    want=$(python3 - "$VQ" <<'EOF'
import json, struct, sys
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
t = json.loads(b[8:8 + n])['codebook.embeddings']
o0, o1 = t['data_offsets']
v = struct.unpack('<%df' % ((o1 - o0) // 4), b[8 + n + o0:8 + n + o1])
print('latent_min = %.9g\nlatent_max = %.9g' % (min(v), max(v)))
EOF
)
    st_meta "$TMP/m.st" diffusion >"$TMP/diff.txt"
    [ "$(grep '^latent_m' "$TMP/diff.txt")" = "$want" ]
    grep -qx "vq_model = $(key "$TMP/z.lsdm" 0 vq-model)" "$TMP/diff.txt"
    for l in 'timesteps = 500' 'schedule = cosine' 'objective = eps' 'loss = l1' 'null_mask = zeros' \
             'cond_drop = 0.1' 'downsample = 4' 'train_shape = 2,8,8'; do
        grep -qx "$l" "$TMP/diff.txt" || { echo "no '$l' in: $(cat "$TMP/diff.txt")"; return 1; }
    done
    # the model's tensors (the EMA) and the trainer's state
    st_names "$TMP/m.st" >"$TMP/names"
    grep -qx init_conv.weight "$TMP/names"
    grep -qx segconv3d.conv1.weight "$TMP/names"
    grep -qx train_state.weights.init_conv.weight "$TMP/names"
    grep -qx train_state.adam.exp_avg_sq "$TMP/names"
    # the model tensors are the EMA: a copy of the weights during --ema-start
    # (100 steps for small configs), their average after it
    run_tool 0 ldm-train "${FAST[@]}" --steps 3 --ema-start 1 -o "$TMP/e.st" "$TMP/z.lsdm"
    [ "$(st_same "$TMP/m.st" init_conv.weight train_state.weights.init_conv.weight)" = True ]
    [ "$(st_same "$TMP/e.st" init_conv.weight train_state.weights.init_conv.weight)" = False ]
    # header + 5 steps: loss > 0, lr, 4 samples a step, mean timestep in 0..499
    [ "$(head -1 "$TMP/log.csv")" = "step,seconds,loss,lr,grad_norm,t_mean,cond_dropped,samples,mask_on" ]
    [ "$(wc -l <"$TMP/log.csv")" -eq 6 ]
    [ "$(cut -d, -f1 "$TMP/log.csv" | tail -5 | tr '\n' ' ')" = "1 2 3 4 5 " ]
    awk -F, 'NR>1 { if (!($3 > 0 && $3 < 5) || $4 != 0.001 || !($5 > 0) || $6 < 0 || $6 > 499 || $8 != 4 || !($9 > 0 && $9 <= 1)) exit 1 }' "$TMP/log.csv"
    # -l2 and other settings reach the metadata
    run_tool 0 ldm-train "${FAST[@]}" --steps 1 --loss l2 --cond-drop 0.25 --timesteps 100 -o "$TMP/l2.st" "$TMP/z.lsdm"
    st_meta "$TMP/l2.st" diffusion | grep -x 'loss = l2' >/dev/null
    st_meta "$TMP/l2.st" diffusion | grep -x 'cond_drop = 0.25' >/dev/null
    st_meta "$TMP/l2.st" diffusion | grep -x 'timesteps = 100' >/dev/null
}

@test "a VQ-GAN with per-axis downsampling 2,4,4: latents, masks and the stored factors" {
    ANISO="$TOP/tests/fixtures/vqgan/aniso.safetensors"
    vq-encode -q -m "$ANISO" "$TMP/img.lsdm" -o "$TMP/za.lsdm"
    run_tool 0 ldm-train -v -j 1 -c "$TMP/small.conf" --vq "$ANISO" --block 2x8x8 --seg "$TMP/sem.lsdm" \
        --steps 3 -o "$TMP/a.st" "$TMP/za.lsdm"
    # latent blocks 2x8x8 take mask blocks 4x32x32
    [[ "$stderr" == *"block 2x8x8 (masks x2,4,4)"* ]]
    st_meta "$TMP/a.st" diffusion | grep -x 'downsample = 2,4,4' >/dev/null
    # images are encoded with the same factors: the same checkpoint
    ldm-train -q -j 1 -c "$TMP/small.conf" --vq "$ANISO" --block 2x8x8 --seg "$TMP/sem.lsdm" \
        --steps 3 -o "$TMP/b.st" "$TMP/img.lsdm"
    cmp "$TMP/a.st" "$TMP/b.st"
    # the samples: latents of 4x8x8 for the 8x32x32 masks, decoded on the masks' grid
    ldm-denoise -q -m "$TMP/a.st" --steps 2 "$TMP/sem.lsdm" -o "$TMP/s.lsdm"
    [ "$(field "$TMP/s.lsdm" 0 'r["shape"]')" = "[4, 4, 8, 8]" ]
    [ "$(key "$TMP/s.lsdm" 0 vq-factor)" = 2,4,4 ]
    for k in affine spacing; do [ "$(key "$TMP/s.lsdm" 0 $k)" = "$(key "$TMP/za.lsdm" 0 $k)" ]; done
    vq-decode -q -m "$ANISO" "$TMP/s.lsdm" -o "$TMP/y.lsdm"
    [ "$(field "$TMP/y.lsdm" 0 'r["shape"]')" = "[1, 8, 32, 32]" ]
    geom='[round(v, 9) for row in r["affine"] for v in row], r["spacing"]'
    [ "$(field "$TMP/y.lsdm" 0 "$geom")" = "$(field "$TMP/sem.lsdm" 0 "$geom")" ]
    # a mask whose depth is a multiple of 2 but whose width is not of 4
    phantom -q --shape 6x32x30 --masks "$TMP/odd.lsdm" -o /dev/null
    run_tool 1 ldm-denoise -m "$TMP/a.st" --steps 2 "$TMP/odd.lsdm" -o "$TMP/bad.lsdm"
    [[ "$stderr" == *"mask 6x32x30 is not a multiple of the latent downsampling 2,4,4" ]]
}

@test "--export: the EMA UNet and the diffusion metadata alone, a model ldm-denoise loads" {
    run_tool 0 ldm-train "${FAST[@]}" --steps 2 --export "$TMP/x.st" -o "$TMP/m.st" "$TMP/z.lsdm"
    [ "$(st_meta "$TMP/x.st")" = "$(st_meta "$TMP/m.st")" ]
    [ "$(st_names "$TMP/x.st")" = "$(st_names "$TMP/m.st" | grep -v '^train_state\.')" ]
    [ "$(st_names "$TMP/m.st" | grep -c '^train_state\.')" -gt 0 ]
    ldm-denoise -m "$TMP/m.st" --steps 2 "$TMP/sem.lsdm" -o "$TMP/a.lsdm"
    ldm-denoise -m "$TMP/x.st" --steps 2 "$TMP/sem.lsdm" -o "$TMP/b.lsdm"
    cmp "$TMP/a.lsdm" "$TMP/b.lsdm"
}

@test "a config file over a named base: 'base = tiny' then changes (the mask-encoder ablation)" {
    printf 'base = tiny\nchannels = 4\nseg_hidden = 32,64\n' >"$TMP/wide.conf"
    run_tool 0 ldm-train -j 1 -c "$TMP/wide.conf" --vq "$VQ" --seg "$TMP/sem.lsdm" --block 2x8x8 --steps 1 \
        -o "$TMP/w.st" "$TMP/z.lsdm"
    st_meta "$TMP/w.st" config | grep -qx 'dim = 16'            # tiny's
    st_meta "$TMP/w.st" config | grep -qx 'seg_hidden = 32,64'   # the change
    st_meta "$TMP/w.st" config | grep -qx 'channels = 4'
    # the shipped ablation configs parse the same way
    for f in "$TOP"/pipelines/configs/ldm-tiny-*-mask.conf; do
        { cat "$f"; printf 'channels = 4\n'; } >"$TMP/c.conf"   # the fixture VQ-GAN's latents
        run_tool 0 ldm-train -j 1 -c "$TMP/c.conf" --vq "$VQ" --seg "$TMP/sem.lsdm" --block 2x8x8 --steps 1 \
            -o "$TMP/c.st" "$TMP/z.lsdm"
        st_meta "$TMP/c.st" config | grep -qx "$(grep '^seg_hidden' "$f")"
    done
    printf 'base = nosuch\n' >"$TMP/bad.conf"
    run_tool 1 ldm-train -j 1 -c "$TMP/bad.conf" --vq "$VQ" --seg "$TMP/sem.lsdm" -o "$TMP/b.st" "$TMP/z.lsdm"
    assert_one_error_line ldm-train
    [[ "$stderr" == *"unknown model config 'nosuch'"* ]]
}

@test "images are encoded at load exactly as vq-encode does (stream and NIfTI directory)" {
    run_tool 0 ldm-train "${FAST[@]}" --steps 2 -o "$TMP/a.st" "$TMP/z.lsdm"
    run_tool 0 ldm-train "${FAST[@]}" --steps 2 -o "$TMP/b.st" "$TMP/img.lsdm"
    cmp "$TMP/a.st" "$TMP/b.st"
    phantom -q -s 3 -n 2 --shape 8x32x32 --nifti "$TMP/nii"
    mkdir "$TMP/imgs"
    mv "$TMP"/nii/*_image.nii.gz "$TMP/imgs/"
    # the same f32 voxels from NIfTI files: the same latents, the same run
    run_tool 0 ldm-train "${FAST[@]}" --steps 2 -o "$TMP/c.st" "$TMP/imgs"
    cmp "$TMP/a.st" "$TMP/c.st"
    # and another image changes it
    phantom -q -s 4 -n 2 --shape 8x32x32 -o "$TMP/img4.lsdm"
    run_tool 0 ldm-train "${FAST[@]}" --steps 2 -o "$TMP/d.st" "$TMP/img4.lsdm"
    ! cmp -s "$TMP/a.st" "$TMP/d.st"
}

@test "--resume continues bit-identically, with the run's own options" {
    OPTS=(--batch 2 --accum 2 --lr 5e-4 --flip dw --ema 0.9 --ema-start 2 --cond-drop 0.3)
    run_tool 0 ldm-train "${FAST[@]}" "${OPTS[@]}" --steps 4 -o "$TMP/a.st" "$TMP/z.lsdm"
    # the same run stopped by --minutes after its first step
    run_tool 0 ldm-train "${FAST[@]}" "${OPTS[@]}" --steps 4 --minutes 0.00001 -o "$TMP/b.st" "$TMP/z.lsdm"
    [ "$(st_meta "$TMP/b.st" step)" = 1 ]
    ! cmp -s "$TMP/a.st" "$TMP/b.st"
    # resumed without repeating the options: the checkpoint holds them
    run_tool 0 ldm-train -j 1 --vq "$VQ" --seg "$TMP/sem.lsdm" --steps 4 --resume "$TMP/b.st" \
        -o "$TMP/b.st" "$TMP/z.lsdm"
    cmp "$TMP/a.st" "$TMP/b.st"
    # the same seed from scratch gives the same bytes, another seed others
    run_tool 0 ldm-train "${FAST[@]}" "${OPTS[@]}" --steps 4 -o "$TMP/c.st" "$TMP/z.lsdm"
    cmp "$TMP/a.st" "$TMP/c.st"
    run_tool 0 ldm-train "${FAST[@]}" "${OPTS[@]}" --steps 4 --seed 7 -o "$TMP/d.st" "$TMP/z.lsdm"
    ! cmp -s "$TMP/a.st" "$TMP/d.st"
    # the diffusion settings are the checkpoint's
    run_tool 2 ldm-train -j 1 --vq "$VQ" --seg "$TMP/sem.lsdm" --steps 5 --loss l2 --resume "$TMP/b.st" \
        -o "$TMP/e.st" "$TMP/z.lsdm"
    [[ "$stderr" == *"are the checkpoint's (500, l1, 0.3)"* ]]
}

@test "the loss falls on one volume (mean of the last 20 of 100 steps < 0.7 x the first 20)" {
    phantom -q -s 5 --shape 8x32x32 -o "$TMP/one.lsdm" --masks "$TMP/one-lab.lsdm"
    vq-encode -q -m "$VQ" "$TMP/one.lsdm" -o "$TMP/one-z.lsdm"
    # 3e-3: fast enough for 100 steps (the tiny default 1e-3 keeps the mask
    # encoder alive over long runs, which this test does not need)
    run_tool 0 ldm-train "${SMALL[@]}" --seg "$TMP/one-lab.lsdm" --flip '' --steps 100 --lr 3e-3 \
        --log "$TMP/log.csv" --log-every 1 -o "$TMP/m.st" "$TMP/one-z.lsdm"
    run awk -F, 'NR>1 && NR<=21 { a += $3 } NR>81 { b += $3 } END { printf "%.4f %.4f\n", a / 20, b / 20; exit !(b < 0.7 * a) }' "$TMP/log.csv"
    echo "first 20, last 20: $output"
    [ "$status" -eq 0 ]
}

@test "--preview: mask | sample through ldm-denoise and vq-decode; without them a note, not a failure" {
    # a copy of ldm-train alone in a directory: no ldm-denoise next to it
    mkdir "$TMP/bin"
    cp "$BIN/ldm-train" "$TMP/bin/"
    run_tool 0 "$TMP/bin/ldm-train" "${FAST[@]}" --steps 1 --preview "$TMP/p.png" -o "$TMP/m.st" "$TMP/z.lsdm"
    [[ "$stderr" == *"warning: no preview: no ldm-denoise in "*"/bin"$'\n'* ]]
    [ ! -e "$TMP/p.png" ]
    [ "$(st_meta "$TMP/m.st" step)" = 1 ]
    [ -x "$BIN/ldm-denoise" ] || skip "no ldm-denoise built yet"
    run_tool 0 ldm-train "${FAST[@]}" --steps 1 --preview "$TMP/p.png" -o "$TMP/m.st" "$TMP/z.lsdm"
    [[ "$stderr" != *warning* ]]
    # an RGB PNG twice as wide as the 32x32 mask block
    [ "$(python3 -c 'import struct,sys; b=open(sys.argv[1],"rb").read(); print(b[:8].hex(), *struct.unpack(">II", b[16:24]), b[25])' "$TMP/p.png")" = "89504e470d0a1a0a 64 32 2" ]
}

# write a copy of latent stream IN to OUT with value VALUE at the first voxel
# of its first record (python stdlib and the zstd command)
patch_latent() { python3 - "$@" <<'EOF'
import os, struct, subprocess, sys, tempfile
src, out, value = sys.argv[1], sys.argv[2], float(sys.argv[3])
raw = subprocess.run(['zstd', '-dc', src], check=True, capture_output=True).stdout
frames, i = [], 0
while i < len(raw):
    hlen = struct.unpack('<I', raw[i + 8:i + 12])[0]
    head = raw[i + 16:i + 16 + hlen].split(b'END\n')[0].decode()
    keys = dict(l.split(': ', 1) for l in head.splitlines())
    n = 0
    if raw[i + 5] == 0:
        n = 4
        for s in keys['shape'].split(','):
            n *= int(s)
    rec = bytearray(raw[i:i + 16 + hlen + n])
    if not frames:
        struct.pack_into('<f', rec, 16 + hlen, value)
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(rec)
    frames.append(subprocess.run(['zstd', '-q', '-c', f.name], check=True, capture_output=True).stdout)
    os.unlink(f.name)
    i += 16 + hlen + n
open(out, 'wb').write(b''.join(frames))
EOF
}

@test "bad data: one error line, exit 1, the earlier checkpoint kept" {
    run_tool 0 ldm-train "${FAST[@]}" --steps 1 -o "$TMP/m.st" "$TMP/z.lsdm"
    cp "$TMP/m.st" "$TMP/keep.st"
    # masks of another number of one-hot channels than the UNet's label_nc
    mask2sem -q --onehot -n 6 "$TMP/lab.lsdm" -o "$TMP/sem6.lsdm"
    run_tool 1 ldm-train "${SMALL[@]}" --seg "$TMP/sem6.lsdm" --steps 1 -o "$TMP/m.st" "$TMP/z.lsdm"
    assert_one_error_line ldm-train
    [[ "$stderr" == *"mask 'mask-0000' for 'phantom-s3-0000': mask of shape 6,8,32,32, expected 5,8,32,32"* ]]
    # masks not on the latents' grid (the latent times f = 4)
    phantom -q -s 3 -n 2 --shape 8x16x16 --masks "$TMP/lab16.lsdm" -o /dev/null
    run_tool 1 ldm-train "${SMALL[@]}" --seg "$TMP/lab16.lsdm" --steps 1 -o "$TMP/m.st" "$TMP/z.lsdm"
    assert_one_error_line ldm-train
    [[ "$stderr" == *"mask of shape 1,8,16,16, expected 5,8,32,32"* ]]
    # fewer masks than inputs
    run_tool 1 ldm-train "${FAST[@]}" --steps 1 -o "$TMP/m.st" "$TMP/z.lsdm" "$TMP/z.lsdm"
    assert_one_error_line ldm-train
    [[ "$stderr" == *"--seg has fewer records than the inputs ('phantom-s3-0000' has no mask)"* ]]
    # and more
    run_tool 1 ldm-train "${FAST[@]}" --seg "$TMP/sem.lsdm" --steps 1 -o "$TMP/m.st" "$TMP/z.lsdm"
    assert_one_error_line ldm-train
    [[ "$stderr" == *"--seg has more records than the inputs"* ]]
    # latents of another VQ-GAN
    vq-encode -q -m "$TOP/tests/fixtures/vqgan/spade.safetensors" "$TMP/img.lsdm" -o "$TMP/zs.lsdm"
    run_tool 1 ldm-train "${FAST[@]}" --steps 1 -o "$TMP/m.st" "$TMP/zs.lsdm"
    assert_one_error_line ldm-train
    [[ "$stderr" == *"latents of VQ-GAN $(key "$TMP/zs.lsdm" 0 vq-model), not of --vq ($(key "$TMP/z.lsdm" 0 vq-model))"* ]]
    # codes are no latents to train on
    vq-encode -q -m "$VQ" --output codes "$TMP/img.lsdm" -o "$TMP/codes.lsdm"
    run_tool 1 ldm-train "${FAST[@]}" --steps 1 -o "$TMP/m.st" "$TMP/codes.lsdm"
    assert_one_error_line ldm-train
    [[ "$stderr" == *"--output prequant"* ]]
    # NaN in a latent
    patch_latent "$TMP/z.lsdm" "$TMP/znan.lsdm" nan
    run_tool 1 ldm-train "${FAST[@]}" --steps 1 -o "$TMP/m.st" "$TMP/znan.lsdm"
    assert_one_error_line ldm-train
    [[ "$stderr" == *"'phantom-s3-0000': NaN or Inf in the latent"* ]]
    # a UNet of other latent channels than the VQ-GAN's
    run_tool 1 ldm-train -j 1 --vq "$VQ" --seg "$TMP/sem.lsdm" --steps 1 -o "$TMP/m.st" "$TMP/z.lsdm"
    assert_one_error_line ldm-train
    [[ "$stderr" == *"the UNet takes 8 latent channels, the VQ-GAN makes 4"* ]]
    # resuming with another VQ-GAN
    run_tool 1 ldm-train -j 1 --vq "$TOP/tests/fixtures/vqgan/spade.safetensors" --seg "$TMP/sem.lsdm" \
        --steps 2 --resume "$TMP/keep.st" -o "$TMP/m.st" "$TMP/zs.lsdm"
    assert_one_error_line ldm-train
    [[ "$stderr" == *"trained on latents of VQ-GAN $(key "$TMP/z.lsdm" 0 vq-model)"* ]]
    cmp "$TMP/m.st" "$TMP/keep.st"
}

@test "divergence (a latent of 3e38: NaN loss) stops with exit 1 and keeps the last checkpoint" {
    patch_latent "$TMP/z.lsdm" "$TMP/zbig.lsdm" 3e38
    run_tool 0 ldm-train "${FAST[@]}" --steps 1 -o "$TMP/m.st" "$TMP/z.lsdm"
    cp "$TMP/m.st" "$TMP/keep.st"
    run_tool 1 ldm-train "${FAST[@]}" --steps 3 -o "$TMP/m.st" "$TMP/zbig.lsdm"
    assert_one_error_line ldm-train
    [[ "$stderr" == *"training diverged"* ]]
    cmp "$TMP/m.st" "$TMP/keep.st"
}

@test "usage errors exit 2" {
    run_tool 2 ldm-train "${FAST[@]}" "$TMP/z.lsdm"
    [[ "$stderr" == *"-o CKPT"* ]]
    run_tool 2 ldm-train -c "$TMP/small.conf" --seg "$TMP/sem.lsdm" -o "$TMP/m.st" "$TMP/z.lsdm"
    [[ "$stderr" == *"--vq VQ"* ]]
    run_tool 2 ldm-train "${SMALL[@]}" -o "$TMP/m.st" "$TMP/z.lsdm"
    [[ "$stderr" == *"--seg SEM"* ]]
    run_tool 2 ldm-train "${FAST[@]}" -o "$TMP/m.st"
    run_tool 2 ldm-train "${FAST[@]}" --block 2x8x7 -o "$TMP/m.st" "$TMP/z.lsdm"
    [[ "$stderr" == *"multiples of 2"* ]]
    run_tool 2 ldm-train "${FAST[@]}" --loss huber -o "$TMP/m.st" "$TMP/z.lsdm"
    run_tool 2 ldm-train "${FAST[@]}" --cond-drop 1.5 -o "$TMP/m.st" "$TMP/z.lsdm"
    run_tool 2 ldm-train "${FAST[@]}" --flip xyz -o "$TMP/m.st" "$TMP/z.lsdm"
    run_tool 2 ldm-train "${FAST[@]}" --init a --resume b -o "$TMP/m.st" "$TMP/z.lsdm"
    run_tool 2 ldm-train "${FAST[@]}" --resume b -o "$TMP/m.st" "$TMP/z.lsdm"
    [[ "$stderr" == *"drop -c"* ]]
    [ ! -e "$TMP/m.st" ]
}
