"""A reviewer's decision applied to the pixel stage's verdict (anonlib.pixels.review)."""

from __future__ import annotations

from pathlib import Path

import pytest

from anonlib.errors import PixelError
from anonlib.pixels import TextBox
from anonlib.pixels.review import (
    REJECTED,
    REVIEWER_SCORE,
    PixelAction,
    apply_review,
    machine_findings,
    pixel_boxes,
    reviewed_scan,
)
from anonlib.pixels.select import Reading
from anonlib.pixels.stage import PixelScan
from anonlib.store import PixelBox, PixelFindings, Region, ReviewDecision

FOUND = (TextBox(0, 10, 12, 80, 14, 0.93, text="DOE^JANE"), TextBox(1, 4, 200, 60, 10, 0.71, text="19700101"))
CANNOT_READ = "pixels: OCR failed (engine rapidocr)"


def test_without_a_decision_the_pixel_stage_decides() -> None:
    assert apply_review(None, FOUND) == PixelAction(FOUND, "")
    assert apply_review(None, FOUND).released
    held = apply_review(None, (), CANNOT_READ)
    assert held == PixelAction((), CANNOT_READ) and not held.released and held.decision == ""


@pytest.mark.parametrize("verdict", ["", CANNOT_READ])
def test_release_releases_and_still_masks_what_ocr_found(verdict: str) -> None:
    action = apply_review(ReviewDecision("1.2.3", "release"), FOUND, verdict)
    assert action.released and action.quarantine == "" and action.decision == "release"
    assert action.boxes == FOUND


@pytest.mark.parametrize("verdict", ["", CANNOT_READ])
def test_mask_adds_the_reviewers_regions_and_releases(verdict: str) -> None:
    regions = (Region(0, 300, 0, 100, 40), Region(2, 0, 0, 16, 16))
    action = apply_review(ReviewDecision("1.2.3", "mask", regions), FOUND, verdict)
    assert action.released and action.decision == "mask"
    assert action.boxes[:2] == FOUND
    assert [(b.frame, b.x, b.y, b.width, b.height, b.score) for b in action.boxes[2:]] == [
        (0, 300, 0, 100, 40, REVIEWER_SCORE), (2, 0, 0, 16, 16, REVIEWER_SCORE)]
    assert all(b.text == "" for b in action.boxes[2:])


@pytest.mark.parametrize("verdict", ["", CANNOT_READ])
def test_reject_quarantines_with_its_reason(verdict: str) -> None:
    action = apply_review(ReviewDecision("1.2.3", "reject"), FOUND, verdict)
    assert not action.released and action.quarantine == REJECTED == "pixels: rejected by reviewer"
    assert action.decision == "reject" and action.boxes == FOUND


def test_an_unknown_decision_is_an_error_not_a_release() -> None:
    with pytest.raises(PixelError, match="unknown review decision"):
        apply_review(ReviewDecision("1.2.3", "approve"), FOUND)


def test_boxes_for_the_store_carry_no_text() -> None:
    stored = pixel_boxes(FOUND)
    assert stored == (PixelBox(0, 10, 12, 80, 14, 0.93), PixelBox(1, 4, 200, 60, 10, 0.71))
    assert "DOE" not in repr(stored) and not any(hasattr(b, "text") for b in stored)


# -- on the pixel stage's scan (what the pipeline hands the engine) ----------------------------

def _scan(boxes: tuple[TextBox, ...] = FOUND, error: str = "") -> PixelScan:
    return PixelScan(Reading("all", "test"), boxes=boxes, found=len(boxes), frames_read=2, every_frame=True,
                     error=error, engine="rapidocr")


def test_a_scan_without_decision_is_left_alone() -> None:
    scan = _scan()
    assert reviewed_scan(scan, None) is scan


def test_decisions_on_a_scan() -> None:
    failed = _scan((), "OCR failed (engine rapidocr)")
    released = reviewed_scan(failed, ReviewDecision("1.2", "release"))
    assert released.error == "" and released.boxes == () and not released.every_frame  # never claimed clean
    assert reviewed_scan(_scan(), ReviewDecision("1.2", "release")) == _scan()
    rejected = reviewed_scan(_scan(), ReviewDecision("1.2", "reject"))
    assert "pixels: " + rejected.error == REJECTED and rejected.boxes == FOUND
    masked = reviewed_scan(failed, ReviewDecision("1.2", "mask", (Region(0, 1, 2, 3, 4),)))
    assert masked.error == "" and [(b.x, b.y, b.width, b.height) for b in masked.boxes] == [(1, 2, 3, 4)]


def test_the_machines_findings_whatever_was_decided() -> None:
    stored = pixel_boxes(FOUND)
    assert machine_findings("1.2", "2.25.1", _scan(), None, False) == PixelFindings("1.2", "2.25.1", "masked", "", stored)
    assert machine_findings("1.2", "2.25.1", _scan(), REJECTED, True) == PixelFindings("1.2", "2.25.1", "masked", "", stored)
    failed = machine_findings("1.2", "2.25.1", _scan((), "cannot decode (JPEG 2000)"), None, True)
    assert failed == PixelFindings("1.2", "2.25.1", "quarantined", "pixels: cannot decode (JPEG 2000)")
    unmaskable = machine_findings("1.2", "2.25.1", _scan(), "pixels: cannot be masked (x)", False)
    assert unmaskable == PixelFindings("1.2", "2.25.1", "quarantined", "pixels: cannot be masked (x)", stored)
    unread = machine_findings("1.2", "2.25.1", None, "pixels: not read (modality US)", False)
    assert unread is not None and unread.outcome == "quarantined" and unread.boxes == ()
    assert machine_findings("1.2", "2.25.1", _scan(()), None, False) is None
    assert machine_findings("1.2", "2.25.1", None, "RecognizableVisualFeatures is YES", False) is None


def test_the_processor_reads_decisions_once_per_batch(tmp_path: Path) -> None:
    """Decisions are read from the store in one query, again after each flush (a batch, a study)
    or once they are older than REVIEWS_MAX_AGE — never one query per instance."""
    from anonlib.pipeline import InstanceProcessor
    from anonlib.profile import SiteProfile, build_plan
    from anonlib.sinks.folder import FolderSink
    from anonlib.store import MemoryStore
    from tests.helpers import sample

    root = tmp_path
    store = MemoryStore()
    processor = InstanceProcessor(build_plan(SiteProfile()), store, FolderSink(root / "o"), FolderSink(root / "q"))
    first, second = sample(), sample()
    second.SOPInstanceUID = "1.2.826.0.1.3680043.2.1125.999"
    store.record_review(ReviewDecision(str(first.SOPInstanceUID), "reject"))
    assert processor.review(first) is not None and processor.review(second) is None
    store.record_review(ReviewDecision(str(second.SOPInstanceUID), "release"))
    assert processor.review(second) is None  # within the batch: the decisions read at its start
    processor.flush()
    found = processor.review(second)
    assert found is not None and found.decision == "release"
    store.record_review(ReviewDecision(str(second.SOPInstanceUID), "reject"))
    processor.REVIEWS_MAX_AGE = 0.0
    assert processor.review(second).decision == "reject"  # type: ignore[union-attr]
