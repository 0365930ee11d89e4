"""Burned-in pixel PHI: quarantine instances at risk, or blank known regions (PS3.15 E.3.1)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from anonlib.engine.values import text_of
from anonlib.profile.plan import Plan
from anonlib.profile.site import MaskRule

__all__ = ["PixelVerdict", "assess_pixels", "blank_regions"]


@dataclass(frozen=True)
class PixelVerdict:
    """``action`` is ``pass``, ``quarantine`` or ``mask``; ``reason`` is PHI-free."""

    action: str
    reason: str = ""
    mask: MaskRule | None = None


def assess_pixels(ds: Dataset, plan: Plan) -> PixelVerdict:
    """Whether the pixels of ``ds`` may carry identifying text, from its header alone."""
    burned = text_of(ds, "BurnedInAnnotation").upper()
    visual = text_of(ds, "RecognizableVisualFeatures").upper()
    sop_class = text_of(ds, "SOPClassUID")
    modality = text_of(ds, "Modality").upper()
    reason = ""
    if visual == "YES":
        return PixelVerdict("quarantine", "RecognizableVisualFeatures is YES (faces cannot be cleaned)")
    if burned == "YES":
        reason = "BurnedInAnnotation is YES"
    elif burned != "NO":
        if sop_class in plan.burned_in_sop_classes:
            reason = f"SOP class {sop_class} often carries burned-in text"
        elif modality in plan.burned_in_modalities:
            reason = f"modality {modality} often carries burned-in text"
    if not reason or not plan.quarantine_burned_in:
        return PixelVerdict("pass")
    rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    for rule in plan.masks:
        if rule.matches(text_of(ds, "Manufacturer"), text_of(ds, "ManufacturerModelName"), rows, columns):
            return PixelVerdict("mask", reason, rule)
    return PixelVerdict("quarantine", reason + "; no pixel-mask rule matches")


def blank_regions(ds: Dataset, rule: MaskRule) -> None:
    """Set the rule's rectangles to 0 in every frame and sample, and store the pixels
    uncompressed (Explicit VR Little Endian) so they are re-encoded correctly."""
    array = ds.pixel_array.copy()
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    view = array if frames > 1 else array[np.newaxis, ...]
    for x, y, width, height in rule.regions:
        view[:, y:y + height, x:x + width, ...] = 0
    photometric = str(ds.PhotometricInterpretation)
    if photometric.startswith("YBR"):
        photometric = "RGB"  # pixel_array converted YBR to RGB
    ds.set_pixel_data(array, photometric, int(ds.BitsStored))
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.BurnedInAnnotation = "NO"
