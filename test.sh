#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: unit, property and
# simulation tests, adapter tests (plain and TLS), doc tests, the Autobahn
# conformance suite for server and client, and a fuzz smoke of every target.
# It installs what it needs itself (the kosoku virtualenv, cargo-fuzz).
#
# Usage: ./test.sh            everything
#        SKIP_FUZZ=1 ./test.sh   without the fuzz smoke
set -euo pipefail
cd "$(dirname "$0")"

passed=0
failed=0
failures=()

stage() {
    local name=$1
    shift
    echo
    echo "=== test.sh: $name"
    local start=$SECONDS
    if "$@"; then
        passed=$((passed + 1))
        echo "=== test.sh: $name passed ($((SECONDS - start))s)"
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "=== test.sh: $name FAILED ($((SECONDS - start))s)"
    fi
}

stage "cargo test (workspace)" cargo test --workspace --locked

stage "release build" cargo build --release --locked -p hookup-tokio -p autobahn

stage "autobahn server (hookup-tokio)" \
    autobahn/run.sh server hookup-tokio -- target/release/hookup serve --listen '{addr}'
stage "autobahn client (hookup-tokio)" \
    autobahn/run.sh client hookup-tokio -- target/release/autobahn-client '{url}' '{agent}'

if [[ -z "${SKIP_FUZZ:-}" ]]; then
    stage "fuzz smoke" fuzz/smoke.sh
fi

echo
if ((failed > 0)); then
    echo "failed stages: ${failures[*]}"
fi
echo "test.sh: $passed passed, $failed failed"
((failed == 0))
