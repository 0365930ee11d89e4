"""Issue 11: more than 200 generated malformed and hostile files through ``anonlib deidentify``
— no traceback, every file accounted for with a named reason, memory bounded."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from anonlib.synthetic.malformed import SOURCES, write_malformed
from tests.fixtures.figures import Figures, phi_hits

pytestmark = [pytest.mark.slow]

#: Runs the CLI as its child and reports the peak memory of everything it started.
_MEASURE = """
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=600)
print(json.dumps({"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr,
                  "peak_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""
UNCLEAR = ("internal error", "cannot read file", "not a readable DICOM file (OSError", "TypeError")


def _identifiers() -> list[str]:
    """The patients' names and IDs of the source files, and the names the generator plants."""
    found = {"Zorbalina", "Doe^John"}
    for name in SOURCES:
        ds = pydicom.dcmread(str(get_testdata_file(name)), force=True)
        for value in (str(ds.get("PatientName", "")), str(ds.get("PatientID", ""))):
            found |= {part for part in value.split("^") if len(part) >= 4} | ({value} if len(value) >= 4 else set())
    return sorted(found)


def test_malformed_files_through_the_folder_pipeline(tmp_path: Path, figures: Figures) -> None:
    files = write_malformed(tmp_path / "src")
    assert len(files) >= 200
    env = {**os.environ, "ANONLIB_HOME": str(tmp_path / "home")}
    cli = [sys.executable, "-m", "anonlib.cli", "deidentify", str(tmp_path / "src"), str(tmp_path / "out"),
           "--burned-in", "quarantine"]  # OCR is not what this test is about
    answer = subprocess.run([sys.executable, "-c", _MEASURE, *cli], capture_output=True, text=True,
                            env=env, timeout=700, check=True)
    run = json.loads(answer.stdout)
    assert run["rc"] == 0, run["stderr"][-2000:]
    assert "Traceback" not in run["stderr"] and "Traceback" not in run["stdout"]
    assert run["peak_kib"] < 1024 * 1024, f"peak {run['peak_kib'] // 1024} MiB"
    assert f"{len(files)} files:" in run["stdout"]

    quarantine = tmp_path / "out-quarantine"
    with open(quarantine / "rejected.csv", newline="") as handle:
        rejected = {row["source"]: row["reason"] for row in csv.DictReader(handle)}
    with open(quarantine / "conflicts.csv", newline="") as handle:
        skipped = {row["source"]: row["status"] for row in csv.DictReader(handle)}
    written = {p.name for p in (tmp_path / "out").rglob("*.dcm")} | {p.name for p in quarantine.rglob("*.dcm")}
    assert all(reason and not any(u in reason for u in UNCLEAR) for reason in rejected.values()), rejected
    assert len(rejected) + len(skipped) + len(written) == len(files)  # each one accounted for

    by_kind = {f.path.name: f.kind for f in files}
    reasons = Counter(by_kind[name] for name in rejected)
    for kind in ("deep nesting", "deflate bomb", "unclosed sequence", "huge text"):
        assert reasons[kind] == sum(1 for f in files if f.kind == kind), kind
    for name, reason in rejected.items():
        kind = by_kind[name]
        if kind == "deep nesting":
            assert reason.startswith("nesting too deep")
        elif kind == "deflate bomb":
            assert reason.startswith("deflate bomb")
        elif kind == "huge text":
            assert reason.startswith("value too large")
        elif kind == "unclosed sequence":
            assert "unclosed sequence" in reason or "truncated" in reason or "malformed" in reason
    assert sorted(skipped.values()) == ["conflict"] * 3 + ["duplicate"] * 3
    assert not any(by_kind[name] == "text as UN" for name in rejected)  # long text as UN is handled
    lists = (quarantine / "rejected.csv").read_text() + (quarantine / "conflicts.csv").read_text()
    hits = phi_hits(_identifiers(), run["stdout"], run["stderr"], lists)
    assert hits == 0
    figures.record("malformed", "folder pipeline", files=len(files), rejected=len(rejected),
                   unnamed=0, tracebacks=0, peak_rss_mb=round(run["peak_kib"] / 1024), phi_in_logs=hits)
