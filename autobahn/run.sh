#!/usr/bin/env bash
# Run the Autobahn TestSuite conformance cases (via kosoku) against a
# WebSocket server or client under test, then validate the reports.
#
#   autobahn/run.sh server NAME -- CMD [ARG...]
#       CMD must start a WebSocket echo server on $AUTOBAHN_ADDR
#       (127.0.0.1:PORT) that echoes every text/binary message back on any
#       request path (kosoku connects to ws://$AUTOBAHN_ADDR/echo).
#
#   autobahn/run.sh setup
#       Only create (or update) the virtualenv with kosoku, e.g. before
#       runs that start side by side.
#
#   autobahn/run.sh client NAME -- CMD [ARG...]
#       CMD must act as the client under test against the fuzzing server at
#       $AUTOBAHN_URL (ws://127.0.0.1:PORT, no trailing slash):
#         1. GET $AUTOBAHN_URL/getCaseCount            -> one text message: N
#         2. for i in 1..N:
#            GET $AUTOBAHN_URL/runCase?case=i&agent=$AUTOBAHN_AGENT
#            and echo every message back until the connection closes
#         3. GET $AUTOBAHN_URL/updateReports?agent=$AUTOBAHN_AGENT
#            (kosoku upgrades, then drops the TCP connection without a close
#            frame, and writes the reports)
#
# In CMD's arguments the literal strings {addr}, {port}, {url}, {agent} and
# {parallelism} are replaced by the values below, so no `sh -c` wrapper is
# needed.
#
# Environment passed to CMD:
#   AUTOBAHN_ADDR   127.0.0.1:PORT   (server mode: where to listen)
#   AUTOBAHN_HOST   127.0.0.1
#   AUTOBAHN_PORT   PORT
#   AUTOBAHN_URL    server mode: ws://127.0.0.1:PORT/echo (the URL kosoku hits)
#                   client mode: ws://127.0.0.1:PORT      (fuzzing server base)
#   AUTOBAHN_AGENT  NAME
#   AUTOBAHN_PARALLELISM  cases at a time (see below); a client under test
#                   may run that many cases concurrently (kosoku's fuzzing
#                   server serves them) or ignore it
#
# Knobs (environment):
#   AUTOBAHN_CASES            include patterns, space/comma separated, e.g.
#                             "1.* 7.1.1" (default: empty = every case)
#   AUTOBAHN_EXCLUDE          exclude patterns (default "12.* 13.*", i.e. no
#                             permessage-deflate cases; set to "" to run all)
#   AUTOBAHN_TIMEOUT          seconds for the kosoku run / the client CMD
#                             (default 600)
#   AUTOBAHN_PARALLELISM      cases at a time (default 2): server mode passes
#                             it to kosoku (-p); client mode only hands it to
#                             CMD ({parallelism}, $AUTOBAHN_PARALLELISM)
#   AUTOBAHN_STARTUP_TIMEOUT  seconds to wait for the server port (default 30)
#   AUTOBAHN_PORT             fixed port instead of a free ephemeral one
#   AUTOBAHN_REPORTS          report dir (default autobahn/reports/MODE-NAME)
#   AUTOBAHN_EXPECTED         expected summary file (default
#                             autobahn/expected/MODE-NAME.json; "" disables).
#                             Only used with the default case selection
#                             or the whole suite (AUTOBAHN_EXCLUDE="").
#   AUTOBAHN_UPDATE=1         rewrite the expected summary from this run
#   AUTOBAHN_PYTHON           interpreter for the venv (default python3)
#
# Exit status: 0 only if every selected case is OK or INFORMATIONAL (for both
# behavior and behaviorClose), the expected summary matches, and the command
# under test behaved (server stayed up / client exited 0).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
PY="${AUTOBAHN_PYTHON:-python3}"
HOST=127.0.0.1

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
    exit 2
}
log() { printf 'autobahn: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

# ---------------------------------------------------------------- venv
# The virtualenv with kosoku: created and brought up to date here, or alone
# with `autobahn/run.sh setup` (before runs that start side by side).
ensure_venv() {
    if [[ ! -x $VENV/bin/python ]]; then
        log "creating virtualenv $VENV"
        "$PY" -m venv "$VENV"
    fi
    if ! cmp -s "$HERE/requirements.txt" "$VENV/requirements.installed"; then
        log "installing $(grep -v '^#' "$HERE/requirements.txt" | tr '\n' ' ')"
        "$VENV/bin/pip" install -q --disable-pip-version-check -r "$HERE/requirements.txt"
        cp "$HERE/requirements.txt" "$VENV/requirements.installed"
    fi
}

# ---------------------------------------------------------------- arguments
[[ $# -ge 1 && ( $1 == -h || $1 == --help ) ]] && usage
if [[ $# -eq 1 && $1 == setup ]]; then
    ensure_venv
    exit 0
fi
[[ $# -ge 4 && $3 == -- ]] || usage
MODE=$1 NAME=$2
shift 3
[[ $MODE == server || $MODE == client ]] || die "mode must be 'server' or 'client', not '$MODE'"
[[ $NAME =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || die "NAME must match [A-Za-z0-9][A-Za-z0-9_.-]*"

TIMEOUT=${AUTOBAHN_TIMEOUT:-600}
PARALLELISM=${AUTOBAHN_PARALLELISM:-2}
[[ $PARALLELISM =~ ^[1-9][0-9]*$ ]] || die "AUTOBAHN_PARALLELISM must be a positive integer, not '$PARALLELISM'"
STARTUP_TIMEOUT=${AUTOBAHN_STARTUP_TIMEOUT:-30}
REPORTS=${AUTOBAHN_REPORTS:-$HERE/reports/$MODE-$NAME}
EXPECTED=${AUTOBAHN_EXPECTED-$HERE/expected/$MODE-$NAME.json}

# Case selection -> kosoku/validator flags. `read -a` does not glob-expand.
IFS=', ' read -r -a INCLUDES <<< "${AUTOBAHN_CASES:-}"
IFS=', ' read -r -a EXCLUDES <<< "${AUTOBAHN_EXCLUDE-12.* 13.*}"
SELECT=()
for p in "${INCLUDES[@]}"; do [[ -n $p ]] && SELECT+=(-i "$p"); done
for p in "${EXCLUDES[@]}"; do [[ -n $p ]] && SELECT+=(-x "$p"); done
# The summary file is compared for the default selection and for the whole
# suite (AUTOBAHN_EXCLUDE=""): a NAME's file describes the one its runs use.
DEFAULT_SELECTION=0
if [[ -z ${AUTOBAHN_CASES:-} ]]; then
    case ${AUTOBAHN_EXCLUDE-12.* 13.*} in
    "12.* 13.*" | "") DEFAULT_SELECTION=1 ;;
    esac
fi

ensure_venv
KOSOKU="$VENV/bin/kosoku"

# ---------------------------------------------------------------- processes
CHILD_PIDS=()   # each started in its own session, so pgid == pid

# kill_group PID: TERM PID's whole process group (the command under test may
# have forked), KILL whatever is left after 3 s.
kill_group() {
    local pid=$1
    kill -TERM -- "-$pid" 2>/dev/null || return 0   # nothing left in the group
    for _ in $(seq 30); do
        kill -0 -- "-$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local pid
    for pid in "${CHILD_PIDS[@]}"; do kill_group "$pid"; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_bg LOGFILE CMD...: run CMD in its own session/process group (so cleanup
# can kill it with all its children), output to LOGFILE; sets BG_PID. Commands
# are always started in the background and `wait`ed for, so that a signal to
# this script runs the traps immediately.
start_bg() {
    local logfile=$1
    shift
    setsid "$@" >> "$logfile" 2>&1 < /dev/null &
    BG_PID=$!
    CHILD_PIDS+=("$BG_PID")
}
show_log() {  # show_log FILE: print its last lines
    [[ -s $1 ]] || return 0
    log "last lines of $1:"
    tail -n "${2:-20}" "$1" | sed 's/^/    /' >&2
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

free_port() {
    "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Replace {addr} {port} {url} {agent} {parallelism} in the command under test.
substitute() {
    CMD=()
    local a
    for a in "$@"; do
        a=${a//\{addr\}/$AUTOBAHN_ADDR}
        a=${a//\{port\}/$AUTOBAHN_PORT}
        a=${a//\{url\}/$AUTOBAHN_URL}
        a=${a//\{agent\}/$AUTOBAHN_AGENT}
        a=${a//\{parallelism\}/$AUTOBAHN_PARALLELISM}
        CMD+=("$a")
    done
}

# Tell a fuzzing server that the run is over (what a client's updateReports
# does), so it writes the reports of whatever cases ran.
poke_update_reports() {
    "$VENV/bin/python" - "$HOST" "$1" "$NAME" <<'EOF' || true
import base64, os, socket, sys
host, port, agent = sys.argv[1], int(sys.argv[2]), sys.argv[3]
key = base64.b64encode(os.urandom(16)).decode()
with socket.create_connection((host, port), timeout=5) as s:
    s.sendall((f"GET /updateReports?agent={agent} HTTP/1.1\r\nHost: {host}:{port}\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    s.recv(1024)
EOF
}

# Clear what an earlier run left (only kosoku's and our own files).
mkdir -p "$REPORTS"
rm -f "$REPORTS"/index.json "$REPORTS"/index.html "$REPORTS"/*_case_*.json \
    "$REPORTS"/*_case_*.html "$REPORTS"/*.log
export AUTOBAHN_HOST=$HOST AUTOBAHN_AGENT=$NAME AUTOBAHN_PARALLELISM=$PARALLELISM
FAIL=0
START=$SECONDS

# ---------------------------------------------------------------- server mode
if [[ $MODE == server ]]; then
    AUTOBAHN_PORT=${AUTOBAHN_PORT:-$(free_port)}
    export AUTOBAHN_PORT AUTOBAHN_ADDR=$HOST:$AUTOBAHN_PORT
    export AUTOBAHN_URL=ws://$AUTOBAHN_ADDR/echo
    substitute "$@"
    log "starting server under test on $AUTOBAHN_ADDR: ${CMD[*]}"
    start_bg "$REPORTS/server-under-test.log" "${CMD[@]}"
    SERVER_PID=$BG_PID

    deadline=$((SECONDS + STARTUP_TIMEOUT))
    until port_open "$AUTOBAHN_PORT"; do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            wait "$SERVER_PID" && rc=0 || rc=$?
            show_log "$REPORTS/server-under-test.log"
            die "server under test exited (status $rc) before listening on $AUTOBAHN_ADDR"
        fi
        if ((SECONDS >= deadline)); then
            show_log "$REPORTS/server-under-test.log"
            die "server under test did not listen on $AUTOBAHN_ADDR within ${STARTUP_TIMEOUT}s"
        fi
        sleep 0.1
    done
    log "server is up; running kosoku against $AUTOBAHN_URL ($PARALLELISM cases at a time, timeout ${TIMEOUT}s)"

    start_bg "$REPORTS/kosoku.log" \
        timeout -k 10 "$TIMEOUT" "$KOSOKU" "$AUTOBAHN_URL" -p "$PARALLELISM" "${SELECT[@]}" -o "$REPORTS"
    wait "$BG_PID" && rc=0 || rc=$?
    # kosoku exits 1 when a case FAILED; the validator gives the details.
    if ((rc == 124 || rc == 137)); then
        log "error: kosoku did not finish within ${TIMEOUT}s (no reports are written on timeout);"
        log "       narrow the run with AUTOBAHN_CASES to find the hanging case"
        FAIL=1
    elif ((rc != 0 && rc != 1)); then
        log "error: kosoku exited with status $rc"
        show_log "$REPORTS/kosoku.log"
        FAIL=1
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        wait "$SERVER_PID" && rc=0 || rc=$?
        log "error: server under test exited during the run (status $rc)"
        show_log "$REPORTS/server-under-test.log"
        FAIL=1
    fi
    kill_group "$SERVER_PID"

# ---------------------------------------------------------------- client mode
else
    start_bg "$REPORTS/kosoku.log" \
        timeout -k 10 "$((TIMEOUT + 60))" "$KOSOKU" -m fuzzingserver "$HOST:${AUTOBAHN_PORT:-0}" \
        "${SELECT[@]}" -o "$REPORTS"
    KOSOKU_PID=$BG_PID

    # kosoku prints "fuzzingserver listening on ws://HOST:PORT" once bound.
    deadline=$((SECONDS + STARTUP_TIMEOUT))
    until grep -q '^fuzzingserver listening on ' "$REPORTS/kosoku.log" 2>/dev/null; do
        if ! kill -0 "$KOSOKU_PID" 2>/dev/null; then
            show_log "$REPORTS/kosoku.log"
            die "kosoku fuzzingserver exited during startup"
        fi
        ((SECONDS < deadline)) || die "kosoku fuzzingserver did not start within ${STARTUP_TIMEOUT}s"
        sleep 0.1
    done
    AUTOBAHN_PORT=$(sed -n 's/^fuzzingserver listening on ws:\/\/.*:\([0-9]*\)$/\1/p' "$REPORTS/kosoku.log" | head -n 1)
    export AUTOBAHN_PORT AUTOBAHN_ADDR=$HOST:$AUTOBAHN_PORT
    export AUTOBAHN_URL=ws://$AUTOBAHN_ADDR
    substitute "$@"
    log "fuzzingserver at $AUTOBAHN_URL; running client under test (timeout ${TIMEOUT}s): ${CMD[*]}"

    start_bg "$REPORTS/client-under-test.log" timeout -k 10 "$TIMEOUT" "${CMD[@]}"
    wait "$BG_PID" && rc=0 || rc=$?
    if ((rc == 124 || rc == 137)); then
        log "error: client under test did not finish within ${TIMEOUT}s"
        show_log "$REPORTS/client-under-test.log"
        FAIL=1
    elif ((rc != 0)); then
        log "error: client under test exited with status $rc"
        show_log "$REPORTS/client-under-test.log"
        FAIL=1
    fi

    # A well-behaved client has called updateReports and kosoku is finishing.
    for _ in $(seq 100); do kill -0 "$KOSOKU_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$KOSOKU_PID" 2>/dev/null; then
        log "error: kosoku still running after the client exited (client did not call updateReports?);"
        log "       sending updateReports so the cases that ran are reported"
        FAIL=1
        poke_update_reports "$AUTOBAHN_PORT"
        for _ in $(seq 300); do kill -0 "$KOSOKU_PID" 2>/dev/null || break; sleep 0.1; done
    fi
    rc=0
    if kill -0 "$KOSOKU_PID" 2>/dev/null; then
        log "error: kosoku fuzzingserver did not exit; killing it (no reports)"
        kill_group "$KOSOKU_PID"
        FAIL=1
    else
        wait "$KOSOKU_PID" || rc=$?
        if ((rc != 0 && rc != 1)); then
            log "error: kosoku exited with status $rc"
            FAIL=1
        fi
    fi
fi
log "$MODE run took $((SECONDS - START))s; reports in $REPORTS"

# ---------------------------------------------------------------- validate
VALIDATE=("$VENV/bin/python" "$HERE/validate.py" "$REPORTS" "${SELECT[@]}")
[[ $MODE == client ]] && VALIDATE+=(--agent "$NAME")
if [[ -n $EXPECTED ]]; then
    if ((DEFAULT_SELECTION)); then
        VALIDATE+=(--expected "$EXPECTED")
        [[ ${AUTOBAHN_UPDATE:-0} == 1 ]] && VALIDATE+=(--update)
    else
        log "custom case selection: not comparing with $EXPECTED"
    fi
fi
"${VALIDATE[@]}" || FAIL=1
exit "$FAIL"
