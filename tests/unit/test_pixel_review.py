"""A reviewer's decision applied to the pixel stage's verdict (anonlib.pixels.review)."""

from __future__ import annotations

import pytest

from anonlib.errors import PixelError
from anonlib.pixels import TextBox
from anonlib.pixels.review import REJECTED, REVIEWER_SCORE, PixelAction, apply_review, pixel_boxes
from anonlib.store import PixelBox, Region, ReviewDecision

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
