#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ in turn (never two at once) and says, per target, how
# many inputs it ran and whether it found a crash.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     # default: 60 s for each of all targets
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
# Environment: FUZZ_SANITIZER=address|none (default address); CARGO_BUILD_JOBS as for cargo.
# New corpus entries go to fuzz/corpus/TARGET (seeded from fuzz/seeds/TARGET), crashes to
# fuzz/artifacts/TARGET, the full libFuzzer output to fuzz/artifacts/TARGET.log.
# Exit status: 0 if no target crashed, 1 if one did, 2 on a setup problem.
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
all_targets=(rawsocket_frames json_decode msgpack_decode cbor_decode session_frames)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")
sanitizer=${FUZZ_SANITIZER:-address}

if ! [[ $seconds =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
    echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]  (targets: ${all_targets[*]})" >&2
    exit 2
fi
for t in "${targets[@]}"; do
    if ! [[ " ${all_targets[*]} " == *" $t "* ]]; then
        echo "fuzz.sh: unknown target '$t' (targets: ${all_targets[*]})" >&2
        exit 2
    fi
done
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: the nightly toolchain is missing: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
    exit 2
fi

# Build every target once, then run the binaries: all targets test the same snapshot of the
# tree, and no target's time goes into rebuilding.
mkdir -p fuzz/artifacts
echo "building fuzz targets (sanitizer: $sanitizer)..."
if ! cargo +nightly fuzz build -s "$sanitizer" >fuzz/artifacts/build.log 2>&1; then
    echo "fuzz.sh: build failed, see fuzz/artifacts/build.log" >&2
    exit 2
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_odr_violation=0}
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin_dir="fuzz/target/$triple/release"

# Per-input time limit (s): a session run may take up to 5 s of its own.
input_timeout() { [ "$1" = session_frames ] && echo 30 || echo 10; }

crashed=0
printf '%-18s %12s %10s  %s\n' target executions exec/s result
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t" "fuzz/seeds/$t"
    log="fuzz/artifacts/$t.log"
    fuzz_args=(-max_total_time="$seconds" -timeout="$(input_timeout "$t")" -print_final_stats=1)
    case $t in json_decode | session_frames) fuzz_args+=(-dict=fuzz/dict/wamp.dict) ;; esac
    "$bin_dir/$t" -artifact_prefix="fuzz/artifacts/$t/" "${fuzz_args[@]}" \
        "fuzz/corpus/$t" "fuzz/seeds/$t" >"$log" 2>&1
    status=$?
    runs=$(grep -oE 'stat::number_of_executed_units: +[0-9]+' "$log" | tail -1 | grep -oE '[0-9]+$')
    [ -z "$runs" ] && runs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
    rate=$(grep -oE 'stat::average_exec_per_sec: +[0-9]+' "$log" | tail -1 | grep -oE '[0-9]+$')
    if [ $status -eq 0 ]; then
        result="no crash"
    else
        crashed=1
        artifact=$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -1 | sed 's/.* //')
        result="CRASH (exit $status) ${artifact:-see $log}"
    fi
    printf '%-18s %12s %10s  %s\n' "$t" "${runs:-?}" "${rate:-?}" "$result"
done
exit $crashed
