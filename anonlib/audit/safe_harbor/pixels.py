"""Instance-level Safe Harbor findings read from the header: pixels at risk of burned-in text
or a recognizable face (categories P/Q), and the de-identification markers."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydicom.dataset import Dataset

from anonlib.audit.model import Verdict
from anonlib.audit.safe_harbor.values import method_codes
from anonlib.data import read_yaml
from anonlib.dicomvalues import text_of

__all__ = ["pixel_findings", "marker_findings", "PIXEL_KEYWORDS", "PIXEL_CATEGORY",
           "MARKER_CATEGORY"]

PIXEL_CATEGORY = "P/Q pixels"
MARKER_CATEGORY = "markers"
#: Bulk data judged once per instance here, not element by element.
PIXEL_KEYWORDS = frozenset({"PixelData", "FloatPixelData", "DoubleFloatPixelData", "WaveformData"})
_CLEAN_PIXELS = "113101"
_CLEAN_FACES = "113102"
#: Volumes from which a face can be rendered (164.514(b)(2)(i)(Q), "comparable images").
_VOLUME_MODALITIES = frozenset({"CT", "MR", "PT", "NM"})
_HEAD_PARTS = frozenset({"HEAD", "BRAIN", "SKULL", "FACE", "HEADNECK", "NECK", "ORBIT", "SINUS", "JAW",
                         "TMJ", "EAR", "NOSE", "EYE", "IAC", "CEREBRUM"})

Row = tuple[str, Verdict, str, str]  # (category, verdict, path, detail)


@cache
def _burned_in() -> tuple[frozenset[str], frozenset[str]]:
    data: dict[str, Any] = read_yaml("burned_in.yaml")
    return frozenset(str(uid) for uid in data["sop_classes"]), frozenset(data["modalities"])


def _text(ds: Dataset, keyword: str) -> str:
    return text_of(ds, keyword).upper()


def pixel_findings(ds: Dataset) -> list[Row]:
    """One finding on the instance's pixels (none when it has no pixel or waveform data)."""
    if not any(keyword in ds for keyword in PIXEL_KEYWORDS):
        return []
    codes = method_codes(ds)
    burned, visual = _text(ds, "BurnedInAnnotation"), _text(ds, "RecognizableVisualFeatures")
    sop_classes, modalities = _burned_in()
    modality, body_part = _text(ds, "Modality"), _text(ds, "BodyPartExamined").replace(" ", "")
    if burned == "YES":
        return [(PIXEL_CATEGORY, "fail", "(0028,0301)",
                 "BurnedInAnnotation YES: identifying text is burned into the pixels")]
    if visual == "YES":
        return [(PIXEL_CATEGORY, "fail", "(0028,0302)",
                 "RecognizableVisualFeatures YES: the images show a recognizable face (Q)")]
    at_risk = str(ds.get("SOPClassUID", "")) in sop_classes or modality in modalities
    if at_risk and burned != "NO":
        cleaned = " (Clean Pixel Data claimed)" if _CLEAN_PIXELS in codes else ""
        return [(PIXEL_CATEGORY, "warn", "(0028,0301)",
                 f"modality or SOP class at risk of burned-in text and BurnedInAnnotation is not NO"
                 f"{cleaned}: inspect the pixels")]
    if modality in _VOLUME_MODALITIES and body_part in _HEAD_PARTS and _CLEAN_FACES not in codes:
        return [(PIXEL_CATEGORY, "warn", "(7FE0,0010)",
                 "head volume: a face may be rendered from it (Q, comparable images); not defaced")]
    if at_risk:
        return [(PIXEL_CATEGORY, "pass", "(0028,0301)", "at-risk object with BurnedInAnnotation NO")]
    return [(PIXEL_CATEGORY, "pass", "(7FE0,0010)", "no burned-in text declared or expected")]


def marker_findings(ds: Dataset) -> list[Row]:
    """PatientIdentityRemoved must be YES and DeidentificationMethodCodeSequence present."""
    rows: list[Row] = []
    if _text(ds, "PatientIdentityRemoved") != "YES":
        rows.append((MARKER_CATEGORY, "fail", "(0012,0062)", "PatientIdentityRemoved is not YES"))
    if not ds.get("DeidentificationMethodCodeSequence", None):
        rows.append((MARKER_CATEGORY, "fail", "(0012,0064)",
                     "DeidentificationMethodCodeSequence missing or empty"))
    if not rows:
        rows.append((MARKER_CATEGORY, "pass", "(0012,0062)",
                     "PatientIdentityRemoved YES and de-identification method codes present"))
    return rows
