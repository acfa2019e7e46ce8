#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: unit, property and
# simulation tests, adapter tests (plain and TLS), doc tests, the Autobahn
# conformance suite for server and client of both adapters (cases 1-11
# without permessage-deflate, then the whole suite including 12.*/13.* with
# permessage-deflate on), permessage-deflate interop with Python's
# websockets, and a fuzz smoke of every target. It installs what it needs
# itself (the kosoku and websockets virtualenvs, cargo-fuzz). Each stage
# prints its time; the summary at the end lists them all.
#
# Usage: ./test.sh                  everything (about 40 minutes on 2 cores)
#        SKIP_FUZZ=1 ./test.sh      without the fuzz smoke
#        SKIP_DEFLATE=1 ./test.sh   without the Autobahn permessage-deflate
#                                   runs (the slow part: 4-5 minutes each)
# AUTOBAHN_PARALLELISM (default 2) is how many Autobahn cases run at a time.
set -euo pipefail
cd "$(dirname "$0")"

passed=0
failed=0
failures=()
times=()
total_start=$SECONDS

stage() {
    local name=$1
    shift
    echo
    echo "=== test.sh: $name"
    local start=$SECONDS
    local verdict=passed
    if "$@"; then
        passed=$((passed + 1))
    else
        verdict=FAILED
        failed=$((failed + 1))
        failures+=("$name")
    fi
    echo "=== test.sh: $name $verdict ($((SECONDS - start))s)"
    times+=("$(printf '%5ss  %-6s  %s' "$((SECONDS - start))" "$verdict" "$name")")
}

stage "cargo test (workspace)" cargo test --workspace --locked

stage "release build" cargo build --release --locked -p hookup-cli -p autobahn

# Autobahn, plain: cases 1-11 (301 cases; 12.*/13.* need permessage-deflate)
# against a server and a client that have no permessage-deflate configured.
# Server mode: kosoku runs AUTOBAHN_PARALLELISM cases at a time; client mode:
# the client does ({parallelism}), kosoku's fuzzing server serves them.
stage "autobahn server (hookup-tokio)" \
    autobahn/run.sh server hookup-tokio -- target/release/hookup serve --listen '{addr}'
stage "autobahn client (hookup-tokio)" \
    autobahn/run.sh client hookup-tokio -- \
    target/release/autobahn-client --parallelism '{parallelism}' '{url}' '{agent}'
stage "autobahn server (hookup-async-std)" \
    autobahn/run.sh server hookup-async-std -- target/release/autobahn-server-async-std '{addr}'
stage "autobahn client (hookup-async-std)" \
    autobahn/run.sh client hookup-async-std -- \
    target/release/autobahn-client-async-std --parallelism '{parallelism}' '{url}' '{agent}'

# Autobahn with permessage-deflate: the whole suite (517 cases: 1-11 again,
# now with the extension configured, and the 216 compression cases 12.*/13.*),
# every message compressed (threshold 0: kosoku's text cases require it).
# These are the slow runs (kosoku compresses and hashes 1000 messages of up
# to 128 KiB per case), hence the longer timeout.
if [[ -z "${SKIP_DEFLATE:-}" ]]; then
    deflate_run() {  # deflate_run MODE NAME CMD...
        env AUTOBAHN_EXCLUDE="" AUTOBAHN_TIMEOUT=2400 autobahn/run.sh "$1" "$2" -- "${@:3}"
    }
    stage "autobahn server (hookup-tokio, deflate)" \
        deflate_run server hookup-tokio-deflate \
        target/release/hookup serve --deflate --deflate-threshold 0 --listen '{addr}'
    stage "autobahn client (hookup-tokio, deflate)" \
        deflate_run client hookup-tokio-deflate \
        target/release/autobahn-client --deflate --parallelism '{parallelism}' '{url}' '{agent}'
    stage "autobahn server (hookup-async-std, deflate)" \
        deflate_run server hookup-async-std-deflate \
        target/release/autobahn-server-async-std --deflate '{addr}'
    stage "autobahn client (hookup-async-std, deflate)" \
        deflate_run client hookup-async-std-deflate \
        target/release/autobahn-client-async-std --deflate --parallelism '{parallelism}' '{url}' '{agent}'
fi

# permessage-deflate interop with Python's websockets (both directions).
stage "permessage-deflate interop (Python websockets)" interop/deflate.sh target/release/hookup

if [[ -z "${SKIP_FUZZ:-}" ]]; then
    stage "fuzz smoke" fuzz/smoke.sh
fi

echo
echo "=== test.sh: stage times"
printf '%s\n' "${times[@]}"
echo "total $((SECONDS - total_start))s"
if ((failed > 0)); then
    echo "failed stages: ${failures[*]}"
fi
echo "test.sh: $passed passed, $failed failed"
((failed == 0))
