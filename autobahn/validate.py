#!/usr/bin/env python3
"""Validate kosoku (Autobahn TestSuite) reports.

    validate.py REPORT_DIR [-i PAT]... [-x PAT]... [--agent NAME]
                [--expected FILE [--update]]

Reads REPORT_DIR/index.json (and the per-case JSON files it points to), then:

* prints how many cases got each `behavior` and `behaviorClose` verdict;
* lists every case whose behavior or behaviorClose is not OK or INFORMATIONAL,
  with the report's description, expectation, result and close details
  (NON-STRICT, UNIMPLEMENTED, FAILED, ERROR, UNCLEAN, WRONG CODE, ... all fail);
* checks that exactly the selected cases were reported (-i/-x take the same
  patterns as kosoku; without them the whole suite is expected) -- this
  catches a client under test that skipped cases;
* with --expected, compares {case id: [behavior, behaviorClose]} with the
  committed summary FILE and fails on any difference; --update rewrites FILE
  from this run instead.

Exit status: 0 if all of the above pass, 1 if any does not, 2 on usage or
missing reports.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

PASSING = {"OK", "INFORMATIONAL"}
BEHAVIORS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
CLOSE_BEHAVIORS = ["OK", "INFORMATIONAL", "FAILED", "FAILED BY CLIENT", "UNCLEAN", "WRONG CODE"]


def case_key(case_id: str) -> list[int]:
    return [int(p) if p.isdigit() else 0 for p in case_id.split(".")]


def select_cases(all_ids: list[str], include: list[str], exclude: list[str]) -> set[str]:
    """Mirror kosoku's selection: a plain id matches exactly; a pattern with `*`
    is anchored at the start, `.` literal and `*` = `.*` (so "1.*" is not 12.x)."""

    def expand(patterns: list[str]) -> set[str]:
        out: set[str] = set()
        for pat in patterns:
            if "*" in pat:
                rx = re.compile("^" + pat.replace(".", r"\.").replace("*", ".*"))
                out.update(i for i in all_ids if rx.match(i))
            elif pat in all_ids:
                out.add(pat)
        return out

    selected = expand(include) if include else set(all_ids)
    return selected - expand(exclude)


def suite_case_ids() -> list[str] | None:
    try:
        from kosoku.cases import CASES  # the case index kosoku itself runs from
    except Exception:  # noqa: BLE001 - not in the venv, or an incompatible kosoku
        return None
    return list(CASES)


def clip(value: object, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 4] + " ..."


def print_counts(title: str, counter: Counter[str], canonical: list[str]) -> None:
    names = canonical + sorted(k for k in counter if k not in canonical)
    print(f"{title}:")
    for name in names:
        print(f"  {name:<17}{counter.get(name, 0):>5}")


def describe_failure(report_dir: Path, case_id: str, entry: dict) -> None:
    print(
        f"\nFAIL {case_id}: behavior={entry['behavior']} "
        f"behaviorClose={entry['behaviorClose']} ({entry.get('duration', '?')} ms)"
    )
    path = report_dir / entry.get("reportfile", "")
    try:
        case = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        print(f"    (no case report: {err})")
        return
    rows = [
        ("description", case.get("description")),
        ("expectation", case.get("expectation")),
        ("result", case.get("result")),
        ("resultClose", case.get("resultClose")),
        (
            "close",
            f"remote={case.get('remoteCloseCode')} {case.get('remoteCloseReason')!r} "
            f"local={case.get('localCloseCode')} {case.get('localCloseReason')!r} "
            f"wasClean={case.get('wasClean')} closedByMe={case.get('closedByMe')} "
            f"droppedByMe={case.get('droppedByMe')}"
            + (f" wasNotCleanReason={case['wasNotCleanReason']!r}" if case.get("wasNotCleanReason") else ""),
        ),
        ("expected", case.get("expected")),
        ("received", case.get("received")),
        ("report", path.with_suffix(".html")),
    ]
    for name, value in rows:
        if value not in (None, ""):
            print(f"    {name + ':':<13}{clip(value if not isinstance(value, Path) else str(value))}")


def write_summary(path: Path, summary: dict[str, list[str]]) -> None:
    # One case per line: readable, and diffs show exactly which cases changed.
    lines = [f"  {json.dumps(cid)}: {json.dumps(v)}" for cid, v in summary.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{\n" + ",\n".join(lines) + "\n}\n")


def compare_summary(expected: dict[str, list[str]], actual: dict[str, list[str]]) -> list[str]:
    diffs = []
    for cid in sorted(set(expected) | set(actual), key=case_key):
        old, new = expected.get(cid), actual.get(cid)
        if old == new:
            continue
        was = "/".join(old) if old else "(not in file)"
        now = "/".join(new) if new else "(not run)"
        diffs.append(f"  {cid:<10} expected {was:<30} got {now}")
    return diffs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report_dir", type=Path, help="kosoku -o directory (holds index.json)")
    ap.add_argument("-i", "--include", action="append", default=[], metavar="PAT",
                    help="case id or glob that was selected (as for kosoku; default: all)")
    ap.add_argument("-x", "--exclude", action="append", default=[], metavar="PAT",
                    help="case id or glob that was excluded (as for kosoku)")
    ap.add_argument("--agent", help="fail unless every result is from this agent (client mode)")
    ap.add_argument("--expected", type=Path, help="committed summary {case: [behavior, behaviorClose]}")
    ap.add_argument("--update", action="store_true", help="rewrite --expected from this run")
    args = ap.parse_args()
    if args.update and not args.expected:
        ap.error("--update needs --expected FILE")

    index_path = args.report_dir / "index.json"
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError) as err:
        print(f"validate: cannot read {index_path}: {err}", file=sys.stderr)
        return 2

    # index.json is {agent: {case id: {behavior, behaviorClose, ..., reportfile}}}.
    # In fuzzingserver mode the agent is the runCase `agent` query parameter
    # (else the client's User-Agent); in fuzzingclient mode it is the server's
    # `Server` header, or "host:port" when there is none or the connection
    # failed -- so one run can hold several agents. All are merged.
    ok = True
    agents = sorted(index)
    if args.agent is not None and agents != [args.agent]:
        print(f"ERROR: expected results for agent {args.agent!r} only, report has {agents}"
              " (does the client pass agent=NAME on every runCase?)")
        ok = False
    merged: dict[str, dict] = {}
    for agent in agents:
        merged.update(index[agent])
    results = dict(sorted(merged.items(), key=lambda kv: case_key(kv[0])))
    print(f"{len(results)} cases reported in {args.report_dir} (agent: {', '.join(map(repr, agents))})")

    # 1. counts
    print_counts("behavior", Counter(e["behavior"] for e in results.values()), BEHAVIORS)
    print_counts("behaviorClose", Counter(e["behaviorClose"] for e in results.values()), CLOSE_BEHAVIORS)

    # 2. failing cases
    failing = [cid for cid, e in results.items()
               if e["behavior"] not in PASSING or e["behaviorClose"] not in PASSING]
    for cid in failing:
        describe_failure(args.report_dir, cid, results[cid])
    if failing:
        ok = False
        print(f"\n{len(failing)} case(s) not OK/INFORMATIONAL: {' '.join(failing)}")

    # 3. coverage of the selection
    all_ids = suite_case_ids()
    if all_ids is None:
        print("\nnote: kosoku not importable; not checking that every selected case ran")
    else:
        selected = select_cases(all_ids, args.include, args.exclude)
        missing = sorted(selected - set(results), key=case_key)
        extra = sorted(set(results) - selected, key=case_key)
        if missing:
            ok = False
            print(f"\n{len(missing)} selected case(s) have no result: {' '.join(missing)}")
        if extra:
            ok = False
            print(f"\n{len(extra)} reported case(s) were not selected: {' '.join(extra)}")

    # 4. committed summary
    summary = {cid: [e["behavior"], e["behaviorClose"]] for cid, e in results.items()}
    if args.update:
        write_summary(args.expected, summary)
        print(f"\nwrote {args.expected} ({len(summary)} cases)")
    elif args.expected:
        try:
            expected = json.loads(args.expected.read_text())
        except OSError:
            print(f"\nno expected summary {args.expected}; create it with --update "
                  "(run.sh: AUTOBAHN_UPDATE=1)")
            ok = False
        else:
            diffs = compare_summary(expected, summary)
            if diffs:
                ok = False
                print(f"\n{len(diffs)} case(s) differ from {args.expected} "
                      "(if intended, rerun with --update / AUTOBAHN_UPDATE=1):")
                print("\n".join(diffs))
            else:
                print(f"\nmatches {args.expected}")

    passed = sum(1 for cid in results if cid not in failing)
    # Plain closing line (read by CI log scrapers).
    print(f"\nautobahn: {passed} passed, {len(failing)} failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
