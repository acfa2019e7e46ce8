#!/usr/bin/env bash
# Runs the hookup-proto criterion benchmark with short timings and prints a
# markdown table: throughput of each case and its ratio to the memcpy
# baselines of the same group (measured in the same run).
#
# Usage: hookup-proto/benches/report.sh [FILTER]
#   FILTER   criterion filter (regex on group/case), e.g. 'rx_' or 'rx_64KiB'
#   WARMUP   warm-up seconds per case (default 1)
#   MEASURE  measurement seconds per case (default 2)
#   NO_RUN=1 only print the table from the last results
#
# Throughput "mean" is criterion's mean estimate; "best" is the fastest
# sample (time/iterations), which is far less sensitive to other load on a
# shared machine. Ratios use the best samples, with the mean-based ratio in
# parentheses. Needs python3 (standard library only).
set -euo pipefail
cd "$(dirname "$0")/../.."

WARMUP=${WARMUP:-1}
MEASURE=${MEASURE:-2}
TARGET=${CARGO_TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')}
STAMP=$(date +%s)
if [ "${NO_RUN:-0}" = 1 ]; then
    STAMP=0
else
    echo "+ cargo bench -p hookup-proto --bench proto -- --warm-up-time $WARMUP --measurement-time $MEASURE ${1:-}" >&2
    cargo bench -p hookup-proto --bench proto -- \
        --warm-up-time "$WARMUP" --measurement-time "$MEASURE" ${1:+"$1"} >&2
fi

python3 - "$TARGET/criterion" "$STAMP" <<'EOF'
import json, os, sys

root, stamp = sys.argv[1], float(sys.argv[2])

def load(path):
    with open(path) as f:
        return json.load(f)

def fmt(tp, kind):
    if kind == "Elements":
        return f"{tp / 1e6:.2f} M frames/s"
    gib = tp / (1 << 30)
    return f"{gib:.2f} GiB/s" if gib >= 1 else f"{tp / (1 << 20):.0f} MiB/s"

groups = {}
for group in sorted(os.listdir(root)) if os.path.isdir(root) else []:
    gdir = os.path.join(root, group)
    if not os.path.isdir(gdir) or group == "report":
        continue
    for case in sorted(os.listdir(gdir)):
        new = os.path.join(gdir, case, "new")
        if not os.path.isfile(os.path.join(new, "benchmark.json")):
            continue
        if os.path.getmtime(os.path.join(new, "estimates.json")) < stamp:
            continue  # not part of this run
        bench = load(os.path.join(new, "benchmark.json"))
        est = load(os.path.join(new, "estimates.json"))
        sample = load(os.path.join(new, "sample.json"))
        (kind, amount), = bench["throughput"].items()
        mean_ns = est["mean"]["point_estimate"]
        best_ns = min(t / i for t, i in zip(sample["times"], sample["iters"]))
        groups.setdefault(group, []).append(
            dict(case=case, kind=kind, mean=amount / mean_ns * 1e9, best=amount / best_ns * 1e9))

if not groups:
    sys.exit(f"no results under {root}")

def order(g):
    kinds = ["rx_", "tx_", "mask_"]
    sizes = ["16B", "1KiB", "64KiB", "1MiB"]
    k = next((i for i, p in enumerate(kinds) if g.startswith(p)), 9)
    s = next((i for i, p in enumerate(sizes) if g.endswith("_" + p) or ("_" + p + "_") in g), 9)
    return (k, "frames" in g or "read" in g, s, g)

print("| case | thrpt (mean) | thrpt (best) | vs memcpy | vs cache-resident memcpy |")
print("|---|---:|---:|---:|---:|")
for group in sorted(groups, key=order):
    rows = sorted(groups[group], key=lambda r: (not r["case"].startswith("memcpy"), r["case"]))
    base = {r["case"]: r for r in rows if r["case"].startswith("memcpy")}
    plain = base.get("memcpy")
    cached = base.get("memcpy_64KiB") or base.get("memcpy_per_msg")
    def ratio(r, b):
        if b is None or b is r:
            return ""
        return f"{r['best'] / b['best']:.2f} ({r['mean'] / b['mean']:.2f})"
    for r in rows:
        print(f"| {group}/{r['case']} | {fmt(r['mean'], r['kind'])} | {fmt(r['best'], r['kind'])} "
              f"| {ratio(r, plain)} | {ratio(r, cached)} |")
print()
print("rx throughput counts wire bytes, tx payload bytes; ratios are best-sample "
      "(mean-based in parentheses). Cache-resident memcpy: `memcpy_64KiB` (rx) or "
      "`memcpy_per_msg` (tx).")
EOF
