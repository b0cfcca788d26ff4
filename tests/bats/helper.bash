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

# safetensors files: st_names FILE, the tensor names one a line, sorted;
# st_meta FILE KEY, a metadata value (ABSENT when missing); st_meta FILE,
# all metadata as sorted JSON.
st_header() { python3 -c 'import struct,sys; f=open(sys.argv[1],"rb"); n=struct.unpack("<Q",f.read(8))[0]; print(f.read(n).decode())' "$1"; }
st_names() { st_header "$1" | python3 -c 'import json,sys; print("\n".join(sorted(k for k in json.load(sys.stdin) if k != "__metadata__")))'; }
st_meta() {
    st_header "$1" | python3 -c 'import json,sys
m = json.load(sys.stdin).get("__metadata__", {})
print(m.get(sys.argv[1], "ABSENT") if len(sys.argv) > 1 else json.dumps(m, sort_keys=True))' "${@:2}"
}
