"""The Markdown of a ``bench/speed.py`` run: the machine, one table row per corpus and tool
(medians over the repeats), the issue's targets with what was measured, and its insertion
into ``bench/RESULTS.md`` under "Issue 12: speed", newest run first."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.speed_corpora import Corpus
from bench.speed_measure import Run

__all__ = ["Row", "rows", "table", "targets", "insert_section", "SECTION"]

SECTION = "## Issue 12: speed"
BASELINE = "anonlib w1"

_INTRO = """{section}

`bench/speed.py` (see its docstring): one command generates the corpora, installs the peers from
PyPI in their own virtualenvs, and runs every tool as a whole process, alternating tools and
repeating. Numbers are medians over the repeats; "× anonlib w1" is the tool's time divided by
`anonlib deidentify --workers 1`'s on the same corpus (below 1: faster than anonlib). CPU s is
user + system time of the process and the children it waited for (a worker pool included, from
`wait4`): the machine is shared, so wall time gives the verdicts and CPU time is the cross-check
(given beside the targets' ratios). Peak RSS is the largest single process (a worker or the
parent), not a sum. The profile below the targets (`--profile`) comes from extra untimed runs.

"""


@dataclass(frozen=True)
class Row:
    """Medians of one tool on one corpus."""

    corpus: Corpus
    tool: str
    runs: list[Run]

    @property
    def ok(self) -> bool:
        return bool(self.runs) and not any(r.timed_out for r in self.runs)

    @property
    def seconds(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def cpu(self) -> float | None:
        """Median CPU seconds (user + system, children included); None when not measured."""
        measured = [r.cpu for r in self.runs if r.cpu > 0]
        return statistics.median(measured) if measured else None

    @property
    def peak_mb(self) -> float:
        return max(r.peak_mb for r in self.runs)

    def note(self) -> str:
        notes = sorted({r.note for r in self.runs if r.note})
        codes = sorted({r.returncode for r in self.runs if r.returncode})
        text = "; ".join(notes)
        return (f"exit {', '.join(map(str, codes))}: " if codes else "") + text


def rows(corpora: Sequence[Corpus], tools: Sequence[str], runs: Sequence[Run]) -> list[Row]:
    """One row per corpus and tool that ran, in corpus then tool order."""
    made = []
    for corpus in corpora:
        for tool in tools:
            mine = [r for r in runs if r.corpus == corpus.name and r.tool == tool]
            if mine:
                made.append(Row(corpus, tool, mine))
    return made


def _baseline(all_rows: Sequence[Row], corpus: str) -> Row | None:
    return next((r for r in all_rows if r.corpus.name == corpus and r.tool == BASELINE and r.ok), None)


def table(all_rows: Sequence[Row]) -> str:
    """The results table."""
    lines = ["| corpus | tool | files | MB | runs | wall s, median (min-max) | CPU s, median | files/s | MB/s "
             "| peak RSS MB | × anonlib w1 | outputs | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in all_rows:
        times = [r.seconds for r in row.runs]
        base = _baseline(all_rows, row.corpus.name)
        ratio = f"{row.seconds / base.seconds:.2f}" if base and row.ok else "—"
        wall = f"{_s(row.seconds)} ({_s(min(times))}-{_s(max(times))})" if row.ok else f"> {max(times):.0f}"
        speed = (f"{row.corpus.files / row.seconds:.1f}", f"{row.corpus.megabytes / row.seconds:.2f}") \
            if row.ok else ("—", "—")
        lines.append(f"| {row.corpus.name} | {row.tool} | {row.corpus.files} | {row.corpus.megabytes:.2f} "
                     f"| {len(row.runs)} | {wall} | {_cpu(row)} | {speed[0]} | {speed[1]} | {row.peak_mb:.0f} | {ratio} "
                     f"| {row.runs[-1].outputs} | {row.note()} |")
    return "\n".join(lines)


def _cpu(row: Row) -> str:
    cpu = row.cpu
    return _s(cpu) if cpu is not None and row.ok else "—"


def _cpu_ratio(slow: Row, fast: Row) -> str:
    """`` (CPU a.bc×)``: the same ratio on CPU time, when both were measured."""
    a, b = slow.cpu, fast.cpu
    return f" (CPU {a / b:.2f}×)" if a and b else ""


def _s(seconds: float) -> str:
    return f"{seconds:.3f}" if seconds < 1 else f"{seconds:.2f}"


def _find(all_rows: Sequence[Row], corpus: str, tool: str) -> Row | None:
    return next((r for r in all_rows if r.corpus.name == corpus and r.tool == tool and r.ok), None)


def _verdict(met: bool | None) -> str:
    return "not measured" if met is None else ("met" if met else "**not met**")


def targets(all_rows: Sequence[Row]) -> str:
    """The issue's targets, each with what this run measured."""
    out = []

    def add(target: str, measured: str, met: bool | None) -> None:
        out.append(f"| {target} | {measured} | {_verdict(met)} |")

    w1, w2 = _find(all_rows, "ct", "anonlib w1"), _find(all_rows, "ct", "anonlib w2")
    dcm, dicognito = _find(all_rows, "ct", "dcmanon"), _find(all_rows, "ct", "dicognito")
    one = _find(all_rows, "one", "anonlib w1")
    if w1 and dcm:
        add("CT: anonlib w1 time ≤ 1.0× dcmanon's", f"{w1.seconds / dcm.seconds:.2f}×{_cpu_ratio(w1, dcm)}",
            w1.seconds <= dcm.seconds)
    else:
        add("CT: anonlib w1 time ≤ 1.0× dcmanon's", "—", None)
    if w1 and dicognito:
        add("CT: anonlib w1 ≥ 2× dicognito's speed", f"{dicognito.seconds / w1.seconds:.2f}×{_cpu_ratio(dicognito, w1)}",
            dicognito.seconds >= 2 * w1.seconds)
    else:
        add("CT: anonlib w1 ≥ 2× dicognito's speed", "—", None)
    add("start-up: `anonlib deidentify` of one file ≤ 0.25 s",
        f"{one.seconds:.2f} s" + (f" (CPU {one.cpu:.2f} s)" if one.cpu else "") if one else "—",
        one.seconds <= 0.25 if one else None)
    add("CT: 2 workers ≥ 1.8× one worker",
        f"{w1.seconds / w2.seconds:.2f}× (CPU w2/w1 {w2.cpu / w1.cpu:.2f}×: the pool's extra work)"
        if w1 and w2 and w1.cpu and w2.cpu else (f"{w1.seconds / w2.seconds:.2f}×" if w1 and w2 else "—"),
        w1.seconds / w2.seconds >= 1.8 if w1 and w2 else None)
    studies = [r for r in all_rows if r.corpus.kind == "study" and r.tool in ("anonlib w1", "anonlib w2") and r.ok]
    if studies:
        peaks = ", ".join(f"{r.tool} {r.corpus.name} {r.peak_mb:.0f} MB" for r in studies)
        add("peak RSS < 300 MB, flat from 500 to 5,000 instances", peaks, all(r.peak_mb < 300 for r in studies))
    else:
        add("peak RSS < 300 MB, flat from 500 to 5,000 instances", "—", None)
    audit = _find(all_rows, "ct", "anonlib audit, no dciodvfy")
    add("audit without dciodvfy ≥ 100 instances/s (CT)",
        f"{audit.corpus.files / audit.seconds:.1f}/s" + (f" (on CPU time {audit.corpus.files / audit.cpu:.1f}/s)"
                                                         if audit.cpu else "")
        if audit else _timed_out(all_rows, "ct", "anonlib audit, no dciodvfy"),
        audit.corpus.files / audit.seconds >= 100 if audit else (False if _ran(all_rows, "ct", "anonlib audit, no dciodvfy") else None))
    scaled = [r for r in all_rows if r.corpus.kind == "study" and r.tool == "anonlib audit, no dciodvfy" and r.ok]
    if len(scaled) >= 2:
        small, large = min(scaled, key=lambda r: r.corpus.files), max(scaled, key=lambda r: r.corpus.files)
        growth = (large.seconds / large.corpus.files) / (small.seconds / small.corpus.files)
        add(f"audit linear: time per instance at {large.corpus.files} ≤ 1.2× that at {small.corpus.files}",
            f"{growth:.2f}×", growth <= 1.2)
    else:
        add("audit linear (time per instance, large / small study ≤ 1.2)", "—", None)
    _constellation_targets(all_rows, add)
    return "\n".join(["| target | measured | verdict |", "|---|---|---|", *out])


# bench/constellation.py's tools (not imported: the report reads rows only)
_CONSTELLATION, _NATIVE = "constellation w2", "orthanc anonymize + peer store"


def _rate(row: Row | None) -> float | None:
    return row.corpus.files / row.seconds if row else None


def _constellation_targets(all_rows: Sequence[Row], add: Callable[[str, str, bool | None], None]) -> None:
    """The constellation's two targets, from ``bench/constellation.py``'s rows: one CT study
    (``const-ct-*``) and the 3-instance studies (``const-3x*``)."""
    def pair(prefix: str) -> tuple[float | None, float | None, bool]:
        mine = [r for r in all_rows if r.corpus.name.startswith(prefix)]
        ours = next((r for r in mine if r.tool == _CONSTELLATION and r.ok), None)
        native = next((r for r in mine if r.tool == _NATIVE and r.ok), None)
        return _rate(ours), _rate(native), any(r.tool == _CONSTELLATION for r in mine)

    # (corpus prefix, target, instances/s floor, share of Orthanc's rate to reach)
    targets = (("const-ct", "constellation end to end ≥ Orthanc anonymize + peer store, ≥ 100 instances/s "
                "(one CT study, 2 workers)", 100, 1.0),
               ("const-3x", "3-instance studies ≥ half of that (≥ 50 instances/s, ≥ ½ Orthanc's rate on them)",
                50, 0.5))
    for prefix, text, floor, share in targets:
        ours, native, ran = pair(prefix)
        if ours is None:
            add(text, "timed out" if ran else "—", False if ran else None)
            continue
        versus = f" vs Orthanc {native:.1f}/s ({ours / native:.2f}×)" if native else ""
        add(text, f"{ours:.1f} instances/s{versus}", ours >= floor and (native is None or ours >= native * share))


def _ran(all_rows: Sequence[Row], corpus: str, tool: str) -> bool:
    return any(r.corpus.name == corpus and r.tool == tool for r in all_rows)


def _timed_out(all_rows: Sequence[Row], corpus: str, tool: str) -> str:
    row = next((r for r in all_rows if r.corpus.name == corpus and r.tool == tool), None)
    return f"> {max(r.seconds for r in row.runs):.0f} s (timed out)" if row else "—"


def insert_section(results: Path, run_markdown: str) -> None:
    """Put ``run_markdown`` first under the "Issue 12: speed" section of ``results`` (made
    at the top, under the title, when missing); the other sections are kept as they are."""
    text = results.read_text(encoding="utf-8") if results.exists() else "# Benchmark results\n\n"
    if SECTION not in text:
        title_end = text.find("\n\n") + 2 if text.startswith("# ") else 0
        text = text[:title_end] + _INTRO.format(section=SECTION) + text[title_end:]
    start = text.index(SECTION)
    next_section = text.find("\n## ", start + len(SECTION))
    end = len(text) if next_section < 0 else next_section + 1
    first_run = text.find("\n### ", start, end)
    at = end if first_run < 0 else first_run + 1
    results.write_text(text[:at] + run_markdown.rstrip() + "\n\n" + text[at:], encoding="utf-8")
