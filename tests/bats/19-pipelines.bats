#!/usr/bin/env bats
# pipelines/experiment.mk and sweep.mk on tiny phantoms with a few steps
# per model: every stage runs and leaves its .prov, the report has every
# section, a changed setting reruns only the stages that depend on it, and
# a sweep writes one table.
load helper

setup_file() {
    export OUT="$BATS_FILE_TMPDIR/run"
    export ARGS="OUT=$OUT PHANTOM_SHAPE=32x64x64 N_TRAIN=2 N_TEST=2 VQ_STEPS=2 LDM_STEPS=2 SEG_STEPS=2 SAMPLE_STEPS=2"
    export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive
    # shellcheck disable=SC2086
    make -s -C "$TOP" -f pipelines/experiment.mk $ARGS LSDM_BIN="$BIN" >"$BATS_FILE_TMPDIR/first.log" 2>&1
}

setup() { setup_tmp; }

# stages LOG: the outputs a make run rebuilt, in order
stages() { grep -o "^$TOP/pipelines/stage [^ ]*\|^pipelines/stage [^ ]*" "$1" | awk '{print $2}' | sed "s|^$OUT/||"; }
rerun() { make -C "$TOP" -f pipelines/experiment.mk $ARGS LSDM_BIN="$BIN" "$@" >"$TMP/log" 2>&1; }

@test "experiment.mk: every stage, its .prov, and a report with every section" {
    S="$OUT/synth/ldm-ddim2-g1.5-s0"
    for f in data/train-img.lsdm data/test-sem.lsdm vq/vq.st ldm/ldm.st seg/seg.st eval/real-dice.json \
             eval/recon-metrics.json; do
        [ -s "$OUT/$f" ] || { echo "missing $f"; return 1; }
        grep -q "^command: " "$OUT/$f.prov"
        grep -q "^seconds: " "$OUT/$f.prov"
    done
    for f in z.lsdm images.lsdm pred.lsdm dice.json fid.json metrics.json montage.png report.md; do
        [ -s "$S/$f" ] || { echo "missing $f"; return 1; }
    done
    [ "$(ls "$S/nifti" | wc -l)" -eq 2 ]
    # inputs are named and hashed: the diffusion model records the VQ-GAN's digest
    grep -q "^input: $OUT/vq/vq.st sha256=$(sha256sum <"$OUT/vq/vq.st" | cut -c1-64)$" "$OUT/ldm/ldm.st.prov"
    # real and synthetic volumes pair by name
    [ "$(vol-info --json --no-stats "$S/images.lsdm" | python3 -c 'import json,sys; print(" ".join(json.loads(l)["name"] for l in sys.stdin if "name" in l))')" = "test-000 test-001" ]
    [ "$(readlink "$OUT/report.md")" = "synth/ldm-ddim2-g1.5-s0/report.md" ]
    for h in "## Dice" "## 3D-FID" "## Paired image metrics" "## Pictures" "## Provenance"; do
        grep -q "^$h" "$OUT/report.md" || { echo "no section $h"; return 1; }
    done
    grep -q "^| real | [0-9.]* | " "$OUT/report.md"
    grep -q "^| synthetic | [0-9.]* | [0-9.]* | [0-9.]* | [0-9.]* | [0-9.]* |$" "$OUT/report.md"
    grep -q "^FID [0-9.]* from 2 real and 2 synthetic volumes" "$OUT/report.md"
}

@test "experiment.mk: nothing to do twice; a setting reruns only what depends on it" {
    rerun
    [ -z "$(stages "$TMP/log")" ]
    rerun GUIDANCE=0 synth
    [ "$(stages "$TMP/log" | tr '\n' ' ')" = "synth/ldm-ddim2-g0-s0/z.lsdm synth/ldm-ddim2-g0-s0/images.lsdm synth/ldm-ddim2-g0-s0/nifti.done " ]
    rerun LDM_STEPS=3 synth
    [ "$(stages "$TMP/log" | tr '\n' ' ')" = "ldm/ldm.st synth/ldm-ddim2-g1.5-s0/z.lsdm synth/ldm-ddim2-g1.5-s0/images.lsdm synth/ldm-ddim2-g1.5-s0/nifti.done " ]
    # the segmenter's Dice on real volumes does not depend on the diffusion model
    rerun LDM_STEPS=3 eval
    ! stages "$TMP/log" | grep -q "^eval/real\|^seg/"
}

@test "sweep.mk: the noise baseline beside the diffusion model, one table" {
    run_tool 0 make -s -C "$TOP" -f pipelines/sweep.mk $ARGS LSDM_BIN="$BIN" SWEEP=GENERATOR VALUES="ldm noise"
    T="$OUT/sweep-GENERATOR.md"
    [ "$(grep -c '^| ldm \|^| noise ' "$T")" -eq 2 ]
    grep -q "^| noise | [0-9.]* | [0-9.]* | [0-9.]* | [0-9.-]* | [0-9.]* | [0-9.]* | $OUT/synth/noise-ddim2-g1.5-s0/report.md |$" "$T"
    grep -q "baseline=noise" <(vol-info --no-stats "$OUT/synth/noise-ddim2-g1.5-s0/z.lsdm")
}

@test "experiment.mk on user data: NIfTI images and masks given as DATA_IMAGES / DATA_MASKS" {
    phantom -q --seed 5 -n 4 --shape 32x64x64 --nifti "$TMP/nii"
    mkdir "$TMP/img" "$TMP/seg"
    mv "$TMP"/nii/*_image.nii.gz "$TMP/img/"
    mv "$TMP"/nii/*_mask.nii.gz "$TMP/seg/"
    run_tool 0 make -s -C "$TOP" -f pipelines/experiment.mk OUT="$TMP/run" DATA_IMAGES="$TMP/img/" \
        DATA_MASKS="$TMP/seg/" N_TRAIN=2 N_TEST=2 VQ_STEPS=2 LDM_STEPS=2 SEG_STEPS=2 SAMPLE_STEPS=2 LSDM_BIN="$BIN"
    grep -q "^command: 'vol-import' '-q' '$TMP/img/'" "$TMP/run/data/all-img.lsdm.prov"
    grep -q "^| synthetic | " "$TMP/run/report.md"
    # the synthetic NIfTI files keep the geometry of the user's test masks
    vol-import "$TMP/run/synth/ldm-ddim2-g1.5-s0/nifti/test-000.nii.gz" -o "$TMP/s.lsdm"
    vol-import --labels "$(ls "$TMP"/seg/*.nii.gz | sed -n 3p)" -o "$TMP/m.lsdm"
    [ "$(vol-info --json --no-stats "$TMP/s.lsdm" | head -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["keys"]["affine"])')" = \
      "$(vol-info --json --no-stats "$TMP/m.lsdm" | head -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["keys"]["affine"])')" ]
}
