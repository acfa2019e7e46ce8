#!/usr/bin/env bash
# Smoke-fuzzes every cargo-fuzz target for a bounded time; fails if any
# target crashes (panic, failed invariant, sanitizer report), hangs on one
# input (-timeout) or runs out of memory (-rss_limit_mb).
#
#   bash fuzz/smoke.sh                      # 10 s per target
#   FUZZ_SECONDS=120 bash fuzz/smoke.sh     # longer
#   FUZZ_TARGETS="frame_decode connection_ops" bash fuzz/smoke.sh
#
# Works on stable Rust: cargo-fuzz needs nightly flags, unlocked here with
# RUSTC_BOOTSTRAP=1. Installs cargo-fuzz (pinned) when `cargo fuzz` is missing.
# Seeds from fuzz/seeds/<target>/ are copied into a temporary corpus, so the
# run leaves fuzz/corpus/ alone; crash inputs land in fuzz/artifacts/<target>/.
set -euo pipefail

CARGO_FUZZ_VERSION=0.13.2
FUZZ_SECONDS=${FUZZ_SECONDS:-10}
# Longest time one input may take, in seconds, before it counts as a hang.
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-10}
FUZZ_RSS_MB=${FUZZ_RSS_MB:-2048}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"
export RUSTC_BOOTSTRAP=1

now() { date +%s; }
t0=$(now)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "smoke: installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi
cargo fuzz --version
t_install=$(now)

targets=${FUZZ_TARGETS:-$(cargo fuzz list)}
echo "smoke: building targets: $(echo $targets)"
cargo fuzz build
t_build=$(now)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

failed=()
for t in $targets; do
    corpus="$work/corpus/$t"
    mkdir -p "$corpus"
    if [ -d "seeds/$t" ]; then
        find "seeds/$t" -maxdepth 1 -type f -exec cp {} "$corpus/" \;
    fi
    log="$work/$t.log"
    echo "smoke: $t for ${FUZZ_SECONDS}s ($(ls "$corpus" | wc -l) seeds)"
    if cargo fuzz run "$t" "$corpus" -- \
        -max_total_time="$FUZZ_SECONDS" \
        -timeout="$FUZZ_TIMEOUT" \
        -rss_limit_mb="$FUZZ_RSS_MB" \
        -print_final_stats=1 >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
        echo "smoke: $t ok: ${runs:-?} runs, ${cov:-cov: ?}, corpus $(ls "$corpus" | wc -l)"
    else
        failed+=("$t")
        echo "smoke: $t FAILED; last lines of its log:"
        tail -n 60 "$log"
    fi
done
t_end=$(now)

echo "smoke: install $((t_install - t0))s, build $((t_build - t_install))s, fuzz $((t_end - t_build))s"
if [ ${#failed[@]} -gt 0 ]; then
    echo "smoke: FAILED targets: ${failed[*]} (inputs in fuzz/artifacts/<target>/;" \
        "reproduce with: RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>)"
    exit 1
fi
echo "smoke: all targets passed"
