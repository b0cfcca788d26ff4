#!/usr/bin/env bats
# The tensor stream as programs see it: damage, crashes upstream, full
# disks, concatenation, atomic outputs, and memory that does not grow with
# the number of records.
load helper
setup() { setup_tmp; }

@test "a clean stream reads; concatenated streams read as one" {
    phantom --seed 1 --count 2 --shape 4x8x8 -o "$TMP/a.lsdm"
    phantom --seed 2 --count 3 --shape 4x8x8 -o "$TMP/b.lsdm"
    run_pipe 0 "cat '$TMP/a.lsdm' '$TMP/b.lsdm' | vol-info --json --no-stats"
    [ "$(printf '%s\n' "$output" | grep -c '"name"')" -eq 5 ]
}

@test "a producer that died mid-stream is reported, not taken as the end" {
    phantom --seed 1 --count 3 --shape 8x16x16 -o "$TMP/a.lsdm"
    size=$(stat -c %s "$TMP/a.lsdm")
    for cut in 10 100 $((size / 2)) $((size - 1)); do
        head -c "$cut" "$TMP/a.lsdm" > "$TMP/cut.lsdm"
        run_tool 1 vol-info "$TMP/cut.lsdm"
        assert_one_error_line vol-info
        [[ "$stderr" == *"truncated"* || "$stderr" == *"end-of-stream"* ]]
    done
}

@test "a stream cut at a record boundary (no end-of-stream record) is an error too" {
    phantom --seed 1 --count 2 --shape 4x8x8 -o "$TMP/two.lsdm"
    # records are whole zstd frames; the last frame is the end-of-stream record
    last=$(python3 -c 'import sys; b=open(sys.argv[1],"rb").read(); print(b.rfind(bytes([0x28,0xb5,0x2f,0xfd])))' "$TMP/two.lsdm")
    [ "$last" -gt 0 ]
    head -c "$last" "$TMP/two.lsdm" > "$TMP/noeos.lsdm"
    run_tool 1 vol-info "$TMP/noeos.lsdm"
    assert_one_error_line vol-info
    [[ "$stderr" == *"without its end-of-stream record"* ]]
}

@test "a flipped byte fails the checksum or the frame, never passes silently" {
    phantom --seed 3 --count 1 --shape 8x16x16 -o "$TMP/a.lsdm"
    size=$(stat -c %s "$TMP/a.lsdm")
    for pos in 20 $((size / 2)) $((size - 30)); do
        cp "$TMP/a.lsdm" "$TMP/bad.lsdm"
        printf '\xff' | dd of="$TMP/bad.lsdm" bs=1 seek="$pos" conv=notrunc status=none
        cmp -s "$TMP/a.lsdm" "$TMP/bad.lsdm" && continue
        run_tool 1 vol-info "$TMP/bad.lsdm"
        assert_one_error_line vol-info
    done
}

@test "not a stream at all, and empty input" {
    echo "hello world, not a stream" > "$TMP/text"
    run_tool 1 vol-info "$TMP/text"
    assert_one_error_line vol-info
    : > "$TMP/empty"
    run_tool 1 vol-info "$TMP/empty"
    assert_one_error_line vol-info
}

@test "a full disk is an error, not a silent short stream" {
    run_tool 1 phantom --shape 8x64x64 --count 4 -o /dev/full
    assert_one_error_line phantom
    run_pipe 1 "phantom --shape 8x64x64 --count 4 > /dev/full"
}

@test "a failed run leaves an existing output file as it was" {
    echo "precious" > "$TMP/out.lsdm"
    mkdir "$TMP/vols"
    phantom --seed 1 --shape 4x8x8 --nifti "$TMP/vols"
    printf 'garbage that is not nifti at all........' | gzip > "$TMP/vols/zz_broken.nii.gz"
    run_tool 1 vol-import "$TMP/vols" -o "$TMP/out.lsdm"
    assert_one_error_line vol-import
    [ "$(cat "$TMP/out.lsdm")" = "precious" ]
    [ -z "$(ls -A "$TMP" | grep lsdm-tmp || true)" ]
}

@test "memory does not grow with the number of records" {
    phantom --seed 1 --count 1 --shape 32x128x128 -o "$TMP/one.lsdm"
    phantom --seed 1 --count 24 --shape 32x128x128 -o "$TMP/many.lsdm"
    rss() { /usr/bin/time -f %M vol-info --no-stats "$1" 2>&1 >/dev/null | tail -1; }
    one=$(rss "$TMP/one.lsdm"); many=$(rss "$TMP/many.lsdm")
    echo "max RSS: one record ${one} KiB, 24 records ${many} KiB"
    # 24 records of 2 MiB each would add 48 MiB if they were held together
    [ "$many" -lt $(( one + 8192 )) ]
}
