#!/usr/bin/env bash
# permessage-deflate interop with Python's `websockets` (pinned in
# requirements.txt, installed into interop/.venv on first use):
#   1. websockets clients, with several offers, against `hookup serve --deflate`;
#   2. `hookup connect --deflate` against a websockets echo server.
# Usage: interop/deflate.sh [HOOKUP_BINARY]   (default target/release/hookup)
# Everything listens on 127.0.0.1 and every step is bounded by `timeout`.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
HOOKUP=${1:-$ROOT/target/release/hookup}
VENV=$HERE/.venv
PY=${INTEROP_PYTHON:-python3}

[[ -x $HOOKUP ]] || { echo "interop: no $HOOKUP (cargo build --release -p hookup-cli)" >&2; exit 2; }
if [[ ! -x $VENV/bin/python ]]; then
    "$PY" -m venv "$VENV"
fi
if ! cmp -s "$HERE/requirements.txt" "$VENV/requirements.installed"; then
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$HERE/requirements.txt"
    cp "$HERE/requirements.txt" "$VENV/requirements.installed"
fi

free_port() {
    "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
fail=0

# 1. websockets clients -> hookup serve --deflate
port=$(free_port)
"$HOOKUP" serve --deflate --listen "127.0.0.1:$port" 2>"$TMP/serve.log" &
PIDS+=($!)
wait_port "$port" || { echo "interop: hookup serve did not start" >&2; cat "$TMP/serve.log" >&2; exit 1; }
timeout 120 "$VENV/bin/python" "$HERE/deflate_peer.py" client "ws://127.0.0.1:$port/echo" || fail=1

# 2. hookup connect --deflate -> websockets server
port=$(free_port)
timeout 90 "$VENV/bin/python" "$HERE/deflate_peer.py" server "$port" "$TMP/summary.json" >"$TMP/server.log" 2>&1 &
PIDS+=($!)
wait_port "$port" || { echo "interop: websockets server did not start" >&2; cat "$TMP/server.log" >&2; exit 1; }
"$VENV/bin/python" - "$TMP/lines.txt" <<'PYEOF'
import json, sys
lines = ["short", "x" * 127, "y" * 128] + [json.dumps({"line": i, "data": ["abc", i] * 40}) for i in range(20)]
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
PYEOF
timeout 30 "$HOOKUP" connect --deflate --linger 2s "ws://127.0.0.1:$port/" <"$TMP/lines.txt" >"$TMP/out.txt" 2>"$TMP/connect.log" || {
    echo "FAIL hookup connect exited with $?"; cat "$TMP/connect.log"; fail=1; }
wait "${PIDS[-1]}" || true
if cmp -s "$TMP/lines.txt" "$TMP/out.txt" \
    && "$VENV/bin/python" - "$TMP/summary.json" <<'PYEOF'
import json, sys
s = json.load(open(sys.argv[1]))
offer = s["headers"][0]
print(f"    offer {offer!r}, response {s['response']!r}, frames {s['frames']}")
assert offer == "permessage-deflate; client_max_window_bits", offer
assert s["response"] == "permessage-deflate; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits=10", s["response"]
assert s["messages"] == 23 and s["frames"] == {"compressed": 21, "plain": 2}, s
PYEOF
then
    echo "ok   hookup connect --deflate against a websockets server"
else
    echo "FAIL hookup connect --deflate against a websockets server"
    diff "$TMP/lines.txt" "$TMP/out.txt" | head; cat "$TMP/connect.log"
    fail=1
fi

if ((fail)); then echo "interop: FAILED"; exit 1; fi
echo "interop: permessage-deflate with websockets $(grep -v '^#' "$HERE/requirements.txt" | cut -d= -f3): all passed"
