#!/usr/bin/env bash
# Echo benchmark driver: builds bench/ in release mode and runs every case and impl once,
# then the idle-memory mode. Prints markdown tables (also saved to target/bench-last.md).
#
#   bench/run.sh [all|throughput|idle|reliable|deflate]
#
# `reliable` (not part of `all`) compares hookup's reliable mode (hookup.v1: acks, journal)
# with raw hookup, variants interleaved over BENCH_REPS repetitions; it always builds with
# the hookup feature (see src/bin/bench-run/reliable.rs for its settings).
# `deflate` (not part of `all`) compares hookup with permessage-deflate against the peers
# that implement it (yawc, soketto), BENCH_REPS repetitions (default 3), also built with
# the hookup feature (see src/bin/bench-run/deflate.rs).
#
# Environment (see src/bin/bench-run.rs for all of them):
#   BENCH_DURATION=3   measured seconds per case/impl     BENCH_WARMUP=1
#   BENCH_IMPLS=a,b    subset of impls                    BENCH_CASES=1,3   subset of cases
#   BENCH_IDLE_CONNS=5000
#   BENCH_FEATURES=hookup   build with the hookup servers (tokio, async-std, smol) enabled
#   BENCH_REPS=5 BENCH_REL_MESSAGES=200000 BENCH_REL_RTTS=20000   (reliable mode)
set -euo pipefail
cd "$(dirname "$0")"

# Room for 5,000 idle connections per process (load and server each hold one fd per conn).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $(( ${BENCH_IDLE_CONNS:-5000} + 200 )) ]; then
    echo "run.sh: open-files limit $(ulimit -n) is too low for ${BENCH_IDLE_CONNS:-5000} idle connections" >&2
fi
command -v taskset >/dev/null || echo "run.sh: taskset not found (util-linux): running unpinned" >&2

features=()
case "${1:-all}" in reliable|deflate) [ -n "${BENCH_FEATURES:-}" ] || BENCH_FEATURES=hookup ;; esac
if [ -n "${BENCH_FEATURES:-}" ]; then features=(--features "$BENCH_FEATURES"); fi
cargo build --release "${features[@]}" >&2

target=${CARGO_TARGET_DIR:-target}
mkdir -p "$target"
"$target/release/bench-run" "${1:-all}" | tee "$target/bench-last.md"
