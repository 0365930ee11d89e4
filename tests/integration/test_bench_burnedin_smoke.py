"""bench/burnedin.py --smoke end to end: 8 generated images through ``anonlib deidentify
--ocr-engine rapidocr`` (the real pipeline, real OCR), every input accounted for, scored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import burnedin as bench

pytestmark = pytest.mark.slow


def test_the_smoke_run_scores_every_file_of_the_set(tmp_path: Path) -> None:
    summary_file = tmp_path / "summary.json"
    assert bench.main(["--smoke", "--engines", "rapidocr", "--work", str(tmp_path), "--json",
                       str(summary_file)]) == 0
    summary = json.loads(summary_file.read_text())["rapidocr"]
    assert summary["files"] == 8 and summary["incomparable"] == 0
    assert summary["phi_boxes"] > 0
    assert summary["recall_phi"] >= 0.8  # a smoke bound; the benchmark's numbers are in RESULTS.md
    assert summary["free_released"] + summary["withheld_free"] >= 1
