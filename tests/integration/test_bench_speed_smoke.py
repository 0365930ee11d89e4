"""bench/speed.py --smoke end to end: the tiny corpora through the real ``anonlib deidentify``,
the floors and ``anonlib audit`` as whole processes, into a Markdown section of RESULTS.md.
No timing assertion: the numbers only have to be there and sane (a benchmark's numbers are
read in bench/RESULTS.md, not asserted)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench import speed
from bench.speed_report import SECTION

pytestmark = pytest.mark.slow

EXPECTED = [("ct", "anonlib w1"), ("ct", "anonlib w2"), ("ct", "floor: cp -r"), ("ct", "floor: pydicom read+write"),
            ("ct", "anonlib audit, no dciodvfy"), ("ct", "anonlib audit, dciodvfy"), ("mixed", "anonlib w1"),
            ("one", "anonlib w1"), ("study-10", "anonlib w1")]
FILES = {"ct": 4, "mixed": 5, "one": 1, "study-10": 10}


def _rows(markdown: str) -> dict[tuple[str, str], list[str]]:
    rows = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 13 and cells[0] in FILES:
            rows[(cells[0], cells[1])] = cells
    return rows


def test_the_smoke_run_writes_a_section_with_every_row(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Burned-in text (issue 10)\n\nkept\n", encoding="utf-8")
    runs_file = tmp_path / "runs.json"
    assert speed.main(["--smoke", "--no-install", "--profile", "--work", str(tmp_path / "work"), "--out", str(results),
                       "--json", str(runs_file)]) == 0

    text = results.read_text(encoding="utf-8")
    assert text.index(SECTION) < text.index("## Burned-in text (issue 10)") and text.endswith("kept\n")
    assert re.search(r"^### \d{4}-\d\d-\d\d \d\d:\d\d UTC, smoke run, .* at [0-9a-f]{7}", text, re.M)
    assert "Load average before:" in text and "Python 3." in text
    rows = _rows(text)
    for key in EXPECTED:
        assert key in rows, f"no row for {key}"
        corpus, tool, files, megabytes, runs, wall, cpu, per_second, mb_per_second, peak, ratio, outputs, note = rows[key]
        assert int(files) == FILES[corpus] and float(megabytes) > 0 and runs == "1"
        assert float(wall.split()[0]) > 0 and float(per_second) > 0
        # user + system of the process and its children: a 2-worker run's workers are counted too
        assert 0 < float(cpu) < 4 * float(wall.split()[0]) + 1, f"{key}: CPU {cpu} s, wall {wall}"
        assert 1 <= float(peak) < 2000, f"{key}: peak RSS {peak} MB"
        if tool.startswith("anonlib audit"):
            assert note == "audit PASS", f"{key}: {note}"  # anonlib's own output passes its audit
        else:
            assert int(outputs) == FILES[corpus] and note == "", f"{key}: {outputs} outputs, {note}"
    assert rows[("ct", "anonlib w1")][10] == "1.00"
    assert "| start-up: `anonlib deidentify` of one file ≤ 0.25 s |" in text
    assert re.search(r"\| start-up: .* \| [0-9.]+ s \(CPU [0-9.]+ s\) \|", text)
    assert re.search(r"\| audit without dciodvfy .* \| [0-9.]+/s \(on CPU time [0-9.]+/s\) \|", text)

    # --profile: the tiny CT corpus and the one file profiled (phases from the samples), the
    # imports by package, and a gap line for the start-up when it is not met
    assert re.search(r"^CT, anonlib w1 \(4 files\): [0-9.]+ s CPU \(timed runs' median [0-9.]+ s\)", text, re.M)
    # (4 small files: a phase of a few ms may get no sample; these always do)
    for phase in ("interpreter", "imports", r"main pass: [a-z]+"):
        assert re.search(rf"^\| {phase} \| \d+ \| \d+ \|$", text, re.M), f"no {phase} row"
    assert re.search(r"^Start-up, one file: [0-9.]+ s CPU .* the first file written after \d+ ms CPU", text, re.M)
    assert re.search(r"^CT, `anonlib audit` without dciodvfy \(4 files\): [0-9.]+ s CPU", text, re.M)
    # imports by package: pydicom is there; numpy is not (deferred until a pixel is decoded)
    assert re.search(r"^\| pydicom \| \d+ \|$", text, re.M)
    assert not re.search(r"^\| numpy \| \d+ \|$", text, re.M)
    gaps = [line for line in text.splitlines() if line.startswith("- gap: ")]
    startup_met = re.search(r"^\| start-up: .* \| met \|$", text, re.M) is not None
    # a start-up over 0.25 s (a loaded machine) is explained by where its time goes
    assert startup_met or any(line.startswith("- gap: start-up") and "imports" in line for line in gaps), gaps
    runs = json.loads(runs_file.read_text())
    assert {(r["corpus"], r["tool"]) for r in runs} >= set(EXPECTED)
    assert all(not r["timed_out"] for r in runs)


def test_a_second_run_goes_first_under_the_section_and_keeps_the_first(tmp_path: Path) -> None:
    from bench.speed_report import insert_section

    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Burned-in text (issue 10)\n\nkept\n", encoding="utf-8")
    insert_section(results, "### run A\n\nfirst")
    insert_section(results, "### run B\n\nsecond")
    text = results.read_text(encoding="utf-8")
    assert text.index(SECTION) < text.index("### run B") < text.index("### run A") < text.index("## Burned-in")
    assert text.count(SECTION) == 1 and text.endswith("kept\n")


CONSTELLATION_FILES = {"const-ct-3": 3, "const-3x2": 6}


def test_the_smoke_run_measures_the_constellation_against_orthanc(tmp_path: Path) -> None:
    """``--constellation --corpora const``: only the constellation's rows, each run in a real
    constellation (intake, research, PostgreSQL; 2 workers or Orthanc's own anonymize + a peer
    store), every instance delivered, and its two targets measured."""
    from bench.constellation import ANONLIB, NATIVE

    results = tmp_path / "RESULTS.md"
    assert speed.main(["--smoke", "--no-install", "--constellation", "--corpora", "const", "--work",
                       str(tmp_path / "work"), "--out", str(results)]) == 0
    text = results.read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 13 and cells[0] in CONSTELLATION_FILES:
            rows[(cells[0], cells[1])] = cells
    assert set(rows) == {(corpus, tool) for corpus in CONSTELLATION_FILES for tool in (ANONLIB, NATIVE)}
    for (corpus, tool), cells in rows.items():
        assert int(cells[2]) == CONSTELLATION_FILES[corpus] and float(cells[7]) > 0
        assert int(cells[11]) == CONSTELLATION_FILES[corpus], f"{corpus} {tool}: {cells[11]} delivered"
        assert "StableAge 1 s" in cells[12] and "timed out" not in cells[12]
        assert 1 <= float(cells[9]) < 2000, f"{corpus} {tool}: peak RSS {cells[9]} MB"
        if tool == ANONLIB:
            assert "succeeded" in cells[12] and "failed" not in cells[12], cells[12]
    targets = [line for line in text.splitlines() if line.startswith(("| constellation end to end", "| 3-instance"))]
    assert len(targets) == 2 and all("instances/s vs Orthanc" in line for line in targets), targets
