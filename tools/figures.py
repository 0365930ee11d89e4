"""Print the hardening figures of the latest test run as Markdown, or write them into the README.

    .venv/bin/python tools/figures.py              # the table, from test-artifacts/figures.jsonl
    .venv/bin/python tools/figures.py --readme     # replace the block between the README's markers

The tests write only figures whose assertions passed (``tests/fixtures/figures.py``); a fault the
issue asks for that did not record is listed as "not run or failed", never as survived.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "test-artifacts" / "figures.jsonl"
START, END = "<!-- figures:start -->", "<!-- figures:end -->"
FAULTS = (  # issue 11, item 5
    "worker SIGKILLed mid-study, restarted",
    "PostgreSQL unreachable past the heartbeat window, then back",
    "intake killed mid-ingest, restarted",
    "research down past the retry budget, then back",
    "destination crashing on one instance (failed for good, reported)",
    "study enqueued while still arriving",
    "intake crashed by a 20,000-level nesting, restarted",
)


def load(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise SystemExit(f"{path}: no figures (run the tests first)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _sum(rows: list[dict[str, Any]], key: str) -> int:
    return int(sum(r.get(key, 0) for r in rows))


def render(rows: list[dict[str, Any]], when: datetime) -> str:
    faults = [r for r in rows if r["kind"] == "fault"]
    malformed = [r for r in rows if r["kind"] == "malformed"]
    access = [r for r in rows if r["kind"] == "access"]
    recorded = {r["name"] for r in faults}
    missing = [f for f in FAULTS if f not in recorded]
    lines = [f"Figures from the test run of {when:%Y-%m-%d %H:%M} UTC (`tools/figures.py`):", "",
             "| | |", "|---|---|",
             f"| faults injected and survived | {len(recorded)} of {len(FAULTS)}"
             + (f" (not run or failed: {'; '.join(missing)})" if missing else "") + " |",
             f"| instances sent through the faults | {_sum(faults, 'instances')} |",
             f"| instances lost | {_sum(faults, 'lost')} |",
             f"| instances duplicated | {_sum(faults, 'duplicated')} |",
             f"| PHI hits in logs and CLI output | {_sum(faults, 'phi_in_logs') + _sum(malformed, 'phi_in_logs')} |",
             f"| malformed inputs tried | {_sum(malformed, 'files')}"
             + "".join(f"; {r['name']}: {r['files']}" for r in malformed) + " |",
             f"| malformed inputs without a named reason, or with a traceback | "
             f"{_sum(malformed, 'unnamed') + _sum(malformed, 'tracebacks')} |"]
    for r in malformed:
        if "refused_at_c_store" in r:  # every generated file by C-STORE: what became of each
            lines.append(f"| {r['name']}: what became of the {r['files']} files | "
                         f"{r.get('refused_by_sender', 0)} refused by the sender (cannot be framed), "
                         f"{r['refused_at_c_store']} refused at C-STORE, {r.get('rejected', 0)} stored and "
                         f"rejected with a reason, {r.get('duplicates', 0)} duplicates kept once, "
                         f"{r.get('delivered', 0)} delivered |")
    peak = max((r.get("peak_rss_mb", 0) for r in malformed), default=0)
    if peak:
        lines.append(f"| peak memory on malformed inputs | {peak:.0f} MB |")
    by_answer: dict[str, int] = defaultdict(int)
    for r in access:
        by_answer[str(r.get("answer", "refused"))] += int(r.get("refused", 0))
    if access:
        lines.append(f"| unauthorised requests refused | {_sum(access, 'refused')} of {_sum(access, 'attempts')} ("
                     + ", ".join(f"{n} × {a}" for a, n in sorted(by_answer.items())) + ") |")
    lines += ["", "| fault | instances | delivered | lost | duplicated | PHI in logs |", "|---|---|---|---|---|---|"]
    for r in sorted(faults, key=lambda r: FAULTS.index(r["name"]) if r["name"] in FAULTS else len(FAULTS)):
        lines.append(f"| {r['name']} | {r['instances']} | {r['delivered']} | {r['lost']} | {r['duplicated']} "
                     f"| {r['phi_in_logs']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", action="store_true", help="write the figures into README.md")
    parser.add_argument("--figures", type=Path, default=FIGURES)
    args = parser.parse_args(argv)
    when = datetime.fromtimestamp(args.figures.stat().st_mtime, UTC) if args.figures.is_file() else datetime.now(UTC)
    table = render(load(args.figures), when)
    if not args.readme:
        sys.stdout.write(table)
        return 0
    readme = ROOT / "README.md"
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"README.md has no {START} … {END} block")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{table}{END}{tail}")
    print("README.md: figures updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
