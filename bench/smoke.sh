#!/usr/bin/env bash
# Keeps the benchmarks from rotting: builds bench/ (release, with the hookup
# servers) and runs every mode of bench-run for a few seconds — the echo
# throughput cases and idle memory against the peers, reliable mode, and
# permessage-deflate — checking that each finishes and that every hookup row
# has a measured figure. The numbers mean nothing (cells of a fraction of a
# second on a machine busy with other tests); BENCHMARKS.md says how to
# measure.
#
#   bench/smoke.sh        (CARGO_TARGET_DIR is honoured, as in run.sh)
set -euo pipefail
cd "$(dirname "$0")"
export BENCH_QUIET_WAIT=0 BENCH_DURATION=0.3 BENCH_WARMUP=0.1 BENCH_IDLE_CONNS=100
export BENCH_REPS=1 BENCH_REL_MESSAGES=20000 BENCH_REL_SLOW_MESSAGES=2000
export BENCH_REL_RTTS=300 BENCH_REL_ALWAYS_MESSAGES=30
unset BENCH_IMPLS BENCH_CASES BENCH_REL_VARIANTS

target=${CARGO_TARGET_DIR:-target}
cargo build --release --locked --features hookup
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

failed=0
# check FILE PATTERN WHAT: every table row whose first cell matches PATTERN
# has a number in its second cell, and there is at least one such row.
check() {
    local rows bad
    rows=$(grep -cE "^\| ($2)( ⚠)? \|" "$1" || true)
    bad=$(grep -E "^\| ($2)( ⚠)? \|" "$1" | awk -F'|' '$3 !~ /[0-9]/' || true)
    if [[ $rows -eq 0 || -n $bad ]]; then
        echo "bench smoke: $3: no measured hookup row" >&2
        [[ -n $bad ]] && echo "$bad" >&2
        failed=1
    else
        echo "bench smoke: $3 ok ($rows hookup rows)"
    fi
}
for mode in all reliable deflate; do
    echo "bench smoke: bench-run $mode"
    if ! timeout 600 "$target/release/bench-run" "$mode" > "$out/$mode.md" 2> "$out/$mode.err"; then
        echo "bench smoke: bench-run $mode failed" >&2
        tail -20 "$out/$mode.err" >&2
        failed=1
        continue
    fi
done
check "$out/all.md" 'hookup[a-z-]*' "echo throughput and idle memory"
check "$out/reliable.md" 'raw[a-z-]*|reliable[a-z0-9-]*|rtt-[a-z-]*' "reliable mode"
check "$out/deflate.md" 'hookup-deflate' "permessage-deflate"
exit "$failed"
