#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: unit, property and
# simulation tests, adapter tests (plain and TLS), doc tests, the Autobahn
# conformance suite for server and client of both adapters, and a fuzz smoke
# of every target. It installs what it needs itself (the kosoku virtualenv,
# cargo-fuzz). DEFLATE=1 adds Autobahn 12.*/13.* and the deflate interop run.
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

# hookup-async-std: the same selection, 301 cases.
stage "autobahn server (hookup-async-std)" \
    autobahn/run.sh server hookup-async-std -- target/release/autobahn-server-async-std '{addr}'
stage "autobahn client (hookup-async-std)" \
    autobahn/run.sh client hookup-async-std -- target/release/autobahn-client-async-std '{url}' '{agent}'

# permessage-deflate: Autobahn 12.*/13.* (216 more cases, 10-15 minutes per
# mode on 2 cores) and interop with Python's websockets. Not yet part of the
# default run: set DEFLATE=1.
if [[ -n "${DEFLATE:-}" ]]; then
    stage "autobahn server (hookup-tokio, deflate)" \
        env AUTOBAHN_EXCLUDE="" AUTOBAHN_TIMEOUT=2400 \
        autobahn/run.sh server hookup-tokio-deflate -- \
        target/release/hookup serve --deflate --deflate-threshold 0 --listen '{addr}'
    stage "autobahn client (hookup-tokio, deflate)" \
        env AUTOBAHN_EXCLUDE="" AUTOBAHN_TIMEOUT=2400 \
        autobahn/run.sh client hookup-tokio-deflate -- \
        target/release/autobahn-client --deflate '{url}' '{agent}'
    stage "permessage-deflate interop (Python websockets)" interop/deflate.sh target/release/hookup
fi

if [[ -z "${SKIP_FUZZ:-}" ]]; then
    stage "fuzz smoke" fuzz/smoke.sh
fi

echo
if ((failed > 0)); then
    echo "failed stages: ${failures[*]}"
fi
echo "test.sh: $passed passed, $failed failed"
((failed == 0))
