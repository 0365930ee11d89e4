"""The burned-in benchmark's scoring (bench/burnedin.py) on a tiny generated set, without OCR:
a perfect masker scores recall 1.0, one that skips a box less; withheld instances count as
hidden; over-masking counts only pixels outside the truth boxes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from anonlib.synthetic.burnedin import TRUTH_FILE, write_set
from bench import burnedin as bench

PAD = 3


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    write_set(out, count=6, seed=5)
    return out


def _entries(set_dir: Path) -> list[dict[str, Any]]:
    return list(json.loads((set_dir / TRUTH_FILE).read_text())["files"])


def _masked(before: np.ndarray, boxes: list[dict[str, Any]]) -> np.ndarray:
    """What a perfect masker writes: each padded box filled with the frame's minimum."""
    after = before.copy()
    for box in boxes:
        f = box["frame"]
        y0, x0 = max(0, box["y"] - PAD), max(0, box["x"] - PAD)
        after[f, y0:box["y"] + box["height"] + PAD, x0:box["x"] + box["width"] + PAD] = before[f].min(axis=(0, 1))
    return after


def _score(set_dir: Path, skip: int | None = None) -> dict[str, Any]:
    result = bench.Score()
    seen = 0
    for entry in _entries(set_dir):
        before = bench.comparable(pydicom.dcmread(set_dir / entry["path"]))
        boxes = list(entry["boxes"])
        if skip is not None and boxes and seen <= skip < seen + len(boxes):
            boxes.pop(skip - seen)
        seen += len(entry["boxes"])
        bench.score_file(result, entry, before, _masked(before, boxes))
    return bench.summarize(result)


def test_a_perfect_masker_scores_full_recall_and_touches_no_text_free_image(tiny_set: Path) -> None:
    summary = _score(tiny_set)
    assert summary["boxes"] > 0 and summary["phi_boxes"] > 0
    assert summary["recall_all"] == 1.0 and summary["recall_phi"] == 1.0
    assert summary["withheld_phi"] == 0
    assert summary["free_released"] >= 1 and summary["over_free_p95"] == 0.0
    assert 0.0 < summary["over_text_median"] < 0.2  # only the padding


def test_a_masker_that_skips_one_box_scores_less(tiny_set: Path) -> None:
    entries = _entries(tiny_set)
    total = sum(len(entry["boxes"]) for entry in entries)
    summary = _score(tiny_set, skip=0)
    assert summary["recall_all"] == pytest.approx((total - 1) / total)
    missed = sum(m for m, _ in summary["misses"]["kind"].values())
    assert missed == 1


def test_background_that_already_had_the_fill_value_counts_as_masked() -> None:
    before = np.zeros((1, 20, 40, 1), dtype=np.int16)
    before[0, 5:15:2, 5:35:3] = 900  # sparse ink on a black background
    box = {"frame": 0, "x": 5, "y": 5, "width": 30, "height": 10}
    assert bench.box_share(before, np.zeros_like(before), box) == 1.0
    half = before.copy()
    half[0, 5:15, 5:20] = 0
    assert bench.box_share(before, half, box) < bench.MASKED_SHARE
    assert bench.box_share(before, before, box) == 0.0
    assert bench.outside_share(before, np.zeros_like(before), [box]) == 0.0


def test_withheld_instances_count_as_hidden_and_released_ones_are_compared(tiny_set: Path) -> None:
    entries = [entry for entry in _entries(tiny_set) if entry["boxes"]]
    withheld, released = entries[0], entries[1:]
    verdicts = {withheld["sop_instance_uid"]: bench.Verdict(False, reason="pixels: test")}
    for entry in released:  # released unchanged: nothing masked
        verdicts[entry["sop_instance_uid"]] = bench.Verdict(True, tiny_set / entry["path"])
    summary = bench.score_run(tiny_set, verdicts)
    assert summary["withheld"]["pixels: test"] == 1
    hidden = len(withheld["boxes"])
    assert summary["recall_all"] == pytest.approx(hidden / sum(len(e["boxes"]) for e in entries))
    assert summary["over_text_median"] == 0.0
    text_free = [e for e in _entries(tiny_set) if not e["boxes"]]
    assert summary["withheld"]["no output, no record"] == len(text_free)


def test_the_markdown_row_names_every_metric(tiny_set: Path) -> None:
    summary = _score(tiny_set)
    summary["images_per_second"] = 2.0
    row = bench.markdown_row("rapidocr", "direct", summary)
    assert row.startswith("| rapidocr | direct | 1.000") and row.count("|") == bench.TABLE_HEAD.split("\n")[0].count("|")
