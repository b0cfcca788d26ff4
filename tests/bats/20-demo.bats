#!/usr/bin/env bats
# make demo's job (scripts/demo) with the shipped default model: the
# built-in phantom masks and a user's mask, NIfTI on the masks' grids,
# side-by-side pictures, the metrics table.
load helper
load vq_helper

# same_grid A B: the affines of record 0 of A and B agree within 1e-4 mm
# (NIfTI stores them in float32)
same_grid() {
    python3 -c 'import sys
a, b = ([float(x) for x in s.split()] for s in sys.argv[1:3])
assert len(a) == 16 and all(abs(x - y) < 1e-4 for x, y in zip(a, b)), (a, b)' "$(key "$1" 0 affine)" "$(key "$2" 0 affine)"
}

setup() {
    setup_tmp
    export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive
    # the demo finds the programs next to itself; tests use $BIN
    export PATH="$BIN:$PATH"
}

@test "the default model ships at most 20 MB, inference weights only" {
    [ "$(du -cb "$TOP"/models/default/*.safetensors | tail -1 | cut -f1)" -le 20000000 ]
    # the diffusion model names the VQ-GAN it models (ldm-denoise --vq checks it)
    st_meta "$TOP/models/default/ldm.safetensors" diffusion | grep -q '^vq_model = [0-9a-f]\{16\}$'
    st_names "$TOP/models/default/vq.safetensors" | grep -q '^decoder\.'
    ! st_names "$TOP/models/default/vq.safetensors" | grep -q '^train_state\.\|discriminator'
}

@test "make demo: phantom masks -> NIfTI volumes on their grids, montages, a metrics table" {
    run_tool 0 env OUT="$TMP/demo" "$TOP/scripts/demo"
    for k in 000 001; do
        for f in mask.nii.gz synthetic.nii.gz montage.png; do [ -s "$TMP/demo/demo-${k}_$f" ]; done
    done
    # the synthetic volume sits on its mask's grid: same shape, affine and spacing
    vol-import "$TMP/demo/demo-000_synthetic.nii.gz" -o "$TMP/s.lsdm"
    vol-import --labels "$TMP/demo/demo-000_mask.nii.gz" -o "$TMP/m.lsdm"
    same_grid "$TMP/s.lsdm" "$TMP/m.lsdm"
    [ "$(field "$TMP/s.lsdm" 0 "','.join(map(str, r['shape']))")" = 1,32,256,256 ]
    [ "$(field "$TMP/m.lsdm" 0 "','.join(map(str, r['shape']))")" = 1,32,256,256 ]
    # mask | synthetic side by side, each 4x2 slices of 256x256
    python3 - "$TMP/demo/demo-000_montage.png" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
w, h = struct.unpack(">II", b[16:24])
assert (w, h) == (2 * 4 * 256 + 4, 2 * 256), (w, h)
PY
    grep -q "^(mean) " "$TMP/demo/metrics.md"
    # the synthetic volumes follow their masks: fat is found where it was asked for
    fat=$(awk '/^\(pooled\)/ { print $3; exit }' "$TMP/demo/metrics.md")
    awk -v f="$fat" 'BEGIN { exit !(f > 0.6) }'
    [[ "$output" == *"demo: done in "* ]]
}

@test "make demo MASK=...: a user's NIfTI mask, MAP and CROP, the mask's geometry kept" {
    phantom -q --seed 11 --shape 40x272x256 --masks "$TMP/m.lsdm" -o /dev/null
    # the user's labels are 0,10,20,30,40: MAP puts them into the model's classes
    mask2sem -q --map '0=0,1=10,2=20,3=30,4=40' "$TMP/m.lsdm" | vol-export - -o "$TMP/user.nii.gz"
    run_tool 0 env OUT="$TMP/d" MASK="$TMP/user.nii.gz" CROP=32x256x256 SEED=3 \
        MAP='0=0,10=1,20=2,30=3,40=4' "$TOP/scripts/demo"
    [ -s "$TMP/d/demo-000_synthetic.nii.gz" ]
    [ ! -e "$TMP/d/real.lsdm" ]
    vol-import --labels "$TMP/user.nii.gz" -o "$TMP/u.lsdm"
    mask2sem --crop 32x256x256 "$TMP/u.lsdm" -o "$TMP/c.lsdm"
    vol-import "$TMP/d/demo-000_synthetic.nii.gz" -o "$TMP/s.lsdm"
    same_grid "$TMP/s.lsdm" "$TMP/c.lsdm"
    # and not on the uncropped one
    ! same_grid "$TMP/s.lsdm" "$TMP/u.lsdm" 2>/dev/null
}
