#!/usr/bin/env bats
# Every program: --help, --version, usage errors and exit codes, a man page.
load helper

programs() { for p in "$TOP"/tools/*.c; do basename "$p" .c; done; }

@test "every program has a binary and a man page" {
    [ "$(programs | wc -l)" -ge 8 ]
    for p in $(programs); do
        [ -x "$BIN/$p" ] || { echo "no binary for $p"; return 1; }
        [ -f "$TOP/man/man1/$p.1" ] || { echo "no man page for $p"; return 1; }
        man -l "$TOP/man/man1/$p.1" 2>/dev/null | grep -q "^NAME" || { echo "man page of $p does not render"; return 1; }
    done
}

@test "--help prints usage on stdout and exits 0" {
    for p in $(programs); do
        run_tool 0 "$p" --help
        [[ "$output" == "Usage: $p "* ]] || { echo "$p --help: $output"; return 1; }
        [ -z "$stderr" ]
    done
}

@test "--version names the program and version" {
    for p in $(programs); do
        run_tool 0 "$p" --version
        [[ "$output" == "$p (lsdm) "[0-9]* ]] || { echo "$p: $output"; return 1; }
    done
}

@test "an unknown option is a usage error: exit 2, 'prog: error:' and a hint" {
    for p in $(programs); do
        run_tool 2 "$p" --no-such-option
        [[ "${stderr_lines[0]}" == "$p: error: unknown option '--no-such-option'" ]] || { echo "$p: $stderr"; return 1; }
        [[ "${stderr_lines[1]}" == "Try '$p --help' for more information." ]]
        [ -z "$output" ]
    done
}

@test "a missing option value is a usage error" {
    run_tool 2 vol-import --name
    [[ "$stderr" == "vol-import: error: option '--name' needs a value"* ]]
    run_tool 2 phantom --seed
    [[ "$stderr" == "phantom: error: option '--seed' needs a value"* ]]
}

@test "binary output to a terminal is refused" {
    command -v script >/dev/null || skip "script(1) not installed"
    # script(1) gives the program a terminal as stdout
    run script -qec "$BIN/phantom --shape 4x8x8" /dev/null
    [[ "$output" == *"phantom: error: refusing to write binary data to a terminal"* ]]
}
