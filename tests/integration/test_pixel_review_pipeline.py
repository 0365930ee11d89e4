"""A reviewer's decision applied when an instance is processed again (real OCR, real SQLite
store, real folder runs): the pixel stage masks a burned-in image and records its findings; a
decision (reject, release, mask more) changes what the next run does, and an instance that moves
between the output and quarantine trees leaves no stale copy or manifest row behind."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pydicom
import pytest

from anonlib.folder_run import RunSettings, RunSummary, run_folder
from anonlib.pixels.review import REJECTED
from anonlib.store import Region, ReviewDecision, SqlStore
from tests.burned_in import CORNER, LINES, burned_in_dataset, write_burned_in

pytestmark = pytest.mark.integration


def _rows(manifest: Path) -> set[str]:
    if not manifest.exists():
        return set()
    with manifest.open(newline="") as handle:
        return {row["path"] for row in csv.DictReader(handle)}


class Folder:
    def __init__(self, tmp_path: Path, source: Path) -> None:
        self.source, self.out = source, tmp_path / "out"
        self.quarantine = tmp_path / "out-quarantine"
        self.db = tmp_path / "lookup.sqlite3"
        self.url = f"sqlite:///{self.db}"
        self.settings = RunSettings(source, self.out, db_url=self.url)

    def run(self) -> RunSummary:
        return run_folder(self.settings)

    def store(self) -> SqlStore:
        return SqlStore(self.url)

    def decide(self, decision: ReviewDecision) -> None:
        with self.store() as store:
            store.record_review(decision)


def test_decisions_are_applied_by_the_next_run(tmp_path: Path) -> None:
    source = tmp_path / "in"
    uid = str(pydicom.dcmread(write_burned_in(source), stop_before_pixels=True).SOPInstanceUID)
    folder = Folder(tmp_path, source)
    [first] = folder.run().results
    assert first.status == "written", first.reason
    with folder.store() as store:
        [found] = store.pixel_findings()
        record = store.instance(uid)
    assert found.original_sop_uid == uid and found.outcome == "masked" and found.reason == ""
    assert record is not None and record.status == "written"
    tops = sorted(b.y for b in found.boxes)
    assert len(found.boxes) >= 2 and tops[0] <= LINES[0][1] + 8 and tops[-1] >= LINES[1][1] - 8
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("lookup.sqlite3*"))
    assert b"JANE" not in stored and b"4471902" not in stored  # boxes, never the text
    released = folder.out / record.output

    folder.decide(ReviewDecision(uid, "reject", reviewer="test"))
    [rejected] = folder.run().results
    assert (rejected.status, rejected.reason) == ("quarantined", REJECTED)
    assert not released.exists() and (folder.quarantine / record.output).is_file()  # no stale release
    assert record.output not in _rows(folder.out / "manifest.csv")
    assert record.output in _rows(folder.quarantine / "quarantine.csv")
    with folder.store() as store:
        assert store.instance(uid).status == "quarantined"  # type: ignore[union-attr]
        assert store.pixel_findings() == [found]  # the machine's verdict, whatever was decided

    folder.decide(ReviewDecision(uid, "release"))
    [again] = folder.run().results
    assert again.status in ("written", "replaced") and released.is_file()
    assert not (folder.quarantine / record.output).exists()
    assert record.output not in _rows(folder.quarantine / "quarantine.csv")
    assert record.output in _rows(folder.out / "manifest.csv")
    x, y, w, h = CORNER
    corner = pydicom.dcmread(released).pixel_array[y:y + h, x:x + w]
    assert corner.std() > 0  # released as the pixel stage masked it: the corner untouched

    folder.decide(ReviewDecision(uid, "mask", (Region(0, x, y, w, h),)))
    [masked] = folder.run().results
    assert masked.status == "replaced"
    out = pydicom.dcmread(released)
    corner = out.pixel_array[y:y + h, x:x + w]
    assert corner.min() == corner.max()  # the reviewer's region masked too
    text = out.pixel_array[LINES[0][1]:LINES[0][1] + 20, LINES[0][0]:LINES[0][0] + 100]
    assert int((text == 255).sum()) == 0  # and the text OCR found is still masked
    assert out.BurnedInAnnotation == "NO"


def test_an_unreadable_image_released_by_a_reviewer_is_released_unchanged(tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    ds = burned_in_dataset("unreadable")
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]  # half the pixels: cannot be decoded
    ds.save_as(source / "short.dcm", enforce_file_format=True)
    folder = Folder(tmp_path, source)
    [held] = folder.run().results
    assert held.status == "quarantined" and held.reason.startswith("pixels:")
    with folder.store() as store:
        [found] = store.pixel_findings()
    assert (found.outcome, found.reason, found.boxes) == ("quarantined", held.reason, ())

    folder.decide(ReviewDecision(found.original_sop_uid, "release", reviewer="radiologist"))
    [released] = folder.run().results
    assert released.status == "written", released.reason
    out = pydicom.dcmread(folder.out / released.output)
    assert out.PixelData == ds.PixelData  # nothing could be masked: released as it was
    assert out.get("BurnedInAnnotation") != "NO"  # and never claimed clean
    assert not (folder.quarantine / released.output).exists()


def test_a_decision_makes_a_sampled_image_be_read(tmp_path: Path) -> None:
    """An image the run's sampling would not read (a slice in the middle of a large CT series)
    is read when a reviewer decided about it: the decision is never skipped."""
    from tests.helpers import encoded, sample

    source = tmp_path / "in"
    source.mkdir()
    study, series = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    uids = []
    for n in range(24):
        ds = sample()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, pydicom.uid.generate_uid()
        ds.InstanceNumber = n + 1
        uids.append(str(ds.SOPInstanceUID))
        (source / f"{n:03d}.dcm").write_bytes(encoded(ds))
    folder = Folder(tmp_path, source)
    assert folder.run().count("written") == 24
    with folder.store() as store:
        assert store.pixel_findings() == []
    middle = uids[7]  # neither first, middle nor last
    folder.decide(ReviewDecision(middle, "mask", (Region(0, 0, 0, 16, 16),)))
    summary = folder.run()
    with folder.store() as store:
        record = store.instance(middle)
    assert record is not None and summary.count("written", "unchanged", "replaced") == 24
    pixels = pydicom.dcmread(folder.out / record.output).pixel_array
    assert np.unique(pixels[:16, :16]).size == 1


def test_a_deflated_image_is_read_and_masked(tmp_path: Path) -> None:
    """A deflated file is read whole at once (no header-only read): its pixels still go through
    the pixel stage — masked, recorded — never released unread."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    source = tmp_path / "in"
    source.mkdir()
    ds = burned_in_dataset("deflated")
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(source / "deflated.dcm", enforce_file_format=True)
    folder = Folder(tmp_path, source)
    [result] = folder.run().results
    assert result.status == "written", result.reason
    with folder.store() as store:
        [found] = store.pixel_findings()
    assert found.outcome == "masked" and len(found.boxes) >= 2
    out = pydicom.dcmread(folder.out / result.output)
    x, y = LINES[0][0], LINES[0][1]
    assert int((out.pixel_array[y:y + 20, x:x + 100] == 255).sum()) == 0
    assert out.BurnedInAnnotation == "NO"
