# Shared by every tests/bats/*.bats file.
bats_require_minimum_version 1.5.0

TOP="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
BIN="${LSDM_BIN:-$TOP/bin}"
PATH="$BIN:$PATH"
export LSDM_LEVEL=1
TEMPLATES=/usr/share/mricron/templates

# run_tool RC cmd args...: run with stdout and stderr apart ($output, $stderr)
# and fail, showing both, unless the exit status is RC.
run_tool() {
    local want=$1; shift
    run --separate-stderr "$@"
    if [ "$status" -ne "$want" ]; then
        echo "expected exit $want, got $status from: $*" >&2
        echo "stdout: $output" >&2
        echo "stderr: $stderr" >&2
        return 1
    fi
}

# A failed program says exactly one line "prog: error: ..." on stderr.
assert_one_error_line() {
    local prog=$1
    local n
    n=$(printf '%s\n' "$stderr" | grep -c .)
    if [ "$n" -ne 1 ] || [[ "$stderr" != "$prog: error: "* ]]; then
        echo "want one line '$prog: error: ...', got: $stderr" >&2
        return 1
    fi
}

# run_pipe RC 'shell pipeline': for pipelines; stdout/stderr as run_tool.
run_pipe() {
    local want=$1; shift
    run_tool "$want" bash -o pipefail -c "$*"
}

setup_tmp() { TMP="$BATS_TEST_TMPDIR"; }
