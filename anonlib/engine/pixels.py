"""Burned-in pixel PHI (PS3.15 E.3.1 Clean Pixel Data): mask what the pixel stage found, or
quarantine what could not be read.

The pixel stage (:mod:`anonlib.pixels.stage`, OCR) runs before the engine and hands it a
:class:`~anonlib.pixels.stage.PixelScan`; the engine stays pure: it masks the boxes (and the
regions of a matching pixel-mask rule), or quarantines the instance with the reason. Under
``burned_in: quarantine`` nothing is read and instances at risk are quarantined unless a
pixel-mask rule matches; under ``allow`` the data is trusted.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset

from anonlib.dicomvalues import text_of
from anonlib.engine.changes import Change
from anonlib.pixels import TextBox
from anonlib.pixels.select import is_image, never_read, read_reason
from anonlib.pixels.stage import PixelScan
from anonlib.profile.plan import Plan
from anonlib.profile.site import MaskRule

__all__ = ["PixelVerdict", "assess_pixels", "mask_boxes", "rule_boxes", "pixel_change"]


@dataclass(frozen=True)
class PixelVerdict:
    """``action``: pass (release the pixels as they are), quarantine, mask (``boxes``) or
    checked (read in full, nothing to mask); ``reason`` is PHI-free."""

    action: str
    reason: str = ""
    mask: MaskRule | None = None
    boxes: tuple[TextBox, ...] = ()


def _header_risk(ds: Dataset, plan: Plan) -> str:
    """Why the quarantine mode holds this instance back ("" when it does not)."""
    burned = text_of(ds, "BurnedInAnnotation").upper()
    if burned == "YES":
        return "BurnedInAnnotation is YES"
    if burned == "NO":
        return ""
    sop_class = text_of(ds, "SOPClassUID")
    modality = text_of(ds, "Modality").upper()
    if sop_class in plan.burned_in_sop_classes:
        return f"SOP class {sop_class} often carries burned-in text"
    if modality in plan.burned_in_modalities:
        return f"modality {modality} often carries burned-in text"
    return ""


def _matching_rule(ds: Dataset, plan: Plan) -> MaskRule | None:
    rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    for rule in plan.masks:
        if rule.matches(text_of(ds, "Manufacturer"), text_of(ds, "ManufacturerModelName"), rows, columns):
            return rule
    return None


def rule_boxes(ds: Dataset, rule: MaskRule) -> tuple[TextBox, ...]:
    """A pixel-mask rule's rectangles as boxes on every frame."""
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return tuple(TextBox(frame, x, y, width, height, 1.0)
                 for frame in range(frames) for x, y, width, height in rule.regions)


def assess_pixels(ds: Dataset, plan: Plan, scan: PixelScan | None = None) -> PixelVerdict:
    """What to do with the pixels of ``ds``: from its header, the plan and the pixel stage's
    ``scan`` (None when the stage did not read this instance)."""
    if text_of(ds, "RecognizableVisualFeatures").upper() == "YES":
        return PixelVerdict("quarantine", "RecognizableVisualFeatures is YES (faces cannot be cleaned)")
    policy = plan.burned_in
    rule = _matching_rule(ds, plan)
    if policy.mode == "allow":
        return PixelVerdict("pass")
    if policy.mode == "quarantine":
        reason = _header_risk(ds, plan)
        if not reason:
            return PixelVerdict("pass")
        if rule is not None:
            return PixelVerdict("mask", reason, rule, rule_boxes(ds, rule))
        return PixelVerdict("quarantine", reason + "; no pixel-mask rule matches")
    # burned_in: ocr
    if not is_image(ds):
        if text_of(ds, "SOPClassUID") in plan.burned_in_sop_classes:
            return PixelVerdict("quarantine", "pixels: an encapsulated document is not read by OCR")
        return PixelVerdict("pass")
    if scan is None:
        if never_read(ds, plan):
            return PixelVerdict("pass")
        reason = read_reason(ds, plan)
        if reason:  # the header says read it, and nobody did: never release it unread
            return PixelVerdict("quarantine", f"pixels: not read ({reason})")
        return PixelVerdict("pass")  # an image of a sampled series, not in the sample
    if scan.error:
        return PixelVerdict("quarantine", f"pixels: {scan.error}")
    boxes = scan.boxes + (rule_boxes(ds, rule) if rule is not None else ())
    if boxes:
        return PixelVerdict("mask", f"{len(boxes)} text region(s) masked", rule, boxes)
    return PixelVerdict("checked" if scan.every_frame else "pass")


def mask_boxes(ds: Dataset, boxes: tuple[TextBox, ...]) -> None:
    """Mask ``boxes`` in the pixels of ``ds`` and re-encode them (anonlib.pixels.mask_text)."""
    from anonlib.pixels import mask_text

    mask_text(ds, boxes)


_PIXEL_DATA = 0x7FE00010


def pixel_change(boxes: tuple[TextBox, ...], outcome: str) -> Change:
    """The change record's entry for the pixels: every box (frame, x, y, width, height, score),
    never the text."""
    listed = "; ".join(f"frame {b.frame} x {b.x} y {b.y} w {b.width} h {b.height} score {b.score:.2f}"
                       for b in boxes)
    return Change((), _PIXEL_DATA, "OB", "C", "C", "cleaned" if outcome == "masked" else "kept",
                  "PS3.15 E.3.1 Clean Pixel Data", note=f"{len(boxes)} text box(es) {outcome}: {listed}")
