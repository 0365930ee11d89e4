"""A reviewer's decision applied to what the pixel stage found: what to mask, release or hold.

The pixel stage decides alone (mask what OCR found and release, or quarantine what it could not
read); a reviewer may overrule it per instance (:class:`~anonlib.store.base.ReviewDecision`,
kept in the lookup store). :func:`apply_review` combines the two — a pure function, called by the
pipeline each time an instance is processed, so a decision is applied on every later run:

- no decision: the pixel stage's own verdict;
- ``release``: released, not quarantined; the boxes OCR found are still masked;
- ``mask``: the boxes OCR found and the reviewer's regions are masked, then released;
- ``reject``: quarantined with :data:`REJECTED`.

:func:`reviewed_scan` applies it to the pixel stage's :class:`~anonlib.pixels.stage.PixelScan`
before the engine sees it; :func:`machine_findings` says what the stage itself found (recorded
in the store for the review, whatever the decision); :data:`REVIEWED` is how an instance a
reviewer decided about is read (every frame, even where sampling would skip it).
:func:`pixel_boxes` turns :class:`~anonlib.pixels.TextBox` into the store's
:class:`~anonlib.store.base.PixelBox` (coordinates and score; the text is dropped).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from anonlib.errors import PixelError
from anonlib.pixels import TextBox
from anonlib.pixels.select import Reading
from anonlib.pixels.stage import PixelScan
from anonlib.store.base import REVIEW_DECISIONS, PixelBox, PixelFindings, Region, ReviewDecision

__all__ = ["PixelAction", "REJECTED", "REVIEWED", "REVIEWER_SCORE", "apply_review", "machine_findings",
           "pixel_boxes", "region_box", "reviewed_scan"]

REJECTED = "pixels: rejected by reviewer"
"""The quarantine reason of an instance a reviewer rejected."""

REVIEWED = Reading("all", "a reviewer decided about it")
"""How an instance with a review decision is read: in full, whatever the series' sampling."""

_PIXELS = "pixels: "

REVIEWER_SCORE = 1.0
"""The score of a region a reviewer asked to mask (certain: a person drew it)."""


@dataclass(frozen=True)
class PixelAction:
    """What the pipeline does with an instance's pixels: mask ``boxes`` (possibly none), then
    release it, or quarantine it with ``quarantine`` (a PHI-free reason; "" when released).
    ``decision`` names the reviewer's decision that was applied ("" when none was)."""

    boxes: tuple[TextBox, ...]
    quarantine: str = ""
    decision: str = ""

    @property
    def released(self) -> bool:
        return not self.quarantine


def region_box(region: Region) -> TextBox:
    """A reviewer's region as a box to mask (score :data:`REVIEWER_SCORE`, no text)."""
    return TextBox(region.frame, region.x, region.y, region.width, region.height, REVIEWER_SCORE)


def apply_review(decision: ReviewDecision | None, found: Sequence[TextBox], quarantine: str = "") -> PixelAction:
    """What to do with an instance, given the reviewer's ``decision`` about it (or ``None``),
    the boxes OCR ``found`` in it and the pixel stage's own verdict ``quarantine`` (its PHI-free
    reason, "" when the stage would mask ``found`` and release).

    Only the pixel verdict is overruled: the caller keeps any other reason to quarantine.
    Raises :class:`PixelError` for a decision this code does not know (never guessed).
    """
    boxes = tuple(found)
    if decision is None:
        return PixelAction(boxes, quarantine)
    if decision.decision not in REVIEW_DECISIONS:
        raise PixelError(f"unknown review decision {decision.decision!r}")
    if decision.decision == "reject":
        return PixelAction(boxes, REJECTED, "reject")
    if decision.decision == "mask":
        return PixelAction(boxes + tuple(region_box(r) for r in decision.regions), "", "mask")
    return PixelAction(boxes, "", "release")


def pixel_boxes(boxes: Sequence[TextBox]) -> tuple[PixelBox, ...]:
    """The boxes as the store records them: frame, x, y, width, height and score — no text."""
    return tuple(PixelBox(b.frame, b.x, b.y, b.width, b.height, float(b.score)) for b in boxes)


def reviewed_scan(scan: PixelScan, decision: ReviewDecision | None) -> PixelScan:
    """``scan`` as the engine should see it once ``decision`` is applied (:func:`apply_review`):
    released (no error) with the found boxes, or the reviewer's regions added, or quarantined
    with :data:`REJECTED`. A scan whose reading failed and that a reviewer released claims no
    full reading (the engine then says nothing about the pixels being clean)."""
    if decision is None:
        return scan
    verdict = _PIXELS + scan.error if scan.error else ""
    action = apply_review(decision, scan.boxes, verdict)
    return replace(scan, boxes=action.boxes, error=action.quarantine.removeprefix(_PIXELS),
                   every_frame=scan.every_frame and not scan.error)


def machine_findings(original_sop_uid: str, new_sop_uid: str, scan: PixelScan | None,
                     quarantine: str | None, decided: bool) -> PixelFindings | None:
    """What the pixel stage found and would have done by itself, for the store: quarantined
    (the scan's error, or — without a decision — the engine's own ``pixels:`` quarantine reason,
    e.g. boxes that could not be masked or an image not read), masked (its boxes), or None
    (nothing found)."""
    if scan is not None and scan.error:
        return PixelFindings(original_sop_uid, new_sop_uid, "quarantined", _PIXELS + scan.error)
    boxes = pixel_boxes(scan.boxes) if scan is not None else ()
    if not decided and quarantine and quarantine.startswith(_PIXELS):
        return PixelFindings(original_sop_uid, new_sop_uid, "quarantined", quarantine, boxes)
    if boxes:
        return PixelFindings(original_sop_uid, new_sop_uid, "masked", "", boxes)
    return None
