"""``burned_in: {mask: phi}``: of the text found, only what may identify the patient is masked.

A box is identifying when its recognized text contains one of the instance's identifying header
values (names and their parts, IDs, dates — given by the caller, who knows the plan) as whole
words, or looks like a date, a long number or identifier, or a telephone number. Technical
tokens (laterality, orientation, kV/mAs, scale marks) are never identifying; a site adds its own
with ``allow_tokens``. A box whose text could not be recognized is masked (fail closed).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

from anonlib.pixels import TextBox

__all__ = ["TECHNICAL_TOKENS", "identifying_boxes", "is_identifying"]

#: Tokens burned into ordinary images that never identify anyone.
TECHNICAL_TOKENS = frozenset(t.lower() for t in (
    "L", "R", "A", "P", "H", "F", "S", "I", "HFS", "HFP", "FFS", "FFP", "HFDR", "HFDL", "FFDR", "FFDL",
    "AP", "PA", "LAT", "LL", "RL", "OBL", "AX", "COR", "SAG", "kV", "kVp", "mA", "mAs", "ms", "s",
    "mm", "cm", "m", "Hz", "MHz", "dB", "Gn", "FR", "DR", "PRF", "W", "WL", "WW", "C", "ST", "SL",
    "TR", "TE", "TI", "FA", "FOV", "ROI", "DFOV", "Zoom", "IMA", "SE", "IM", "Ser", "Img", "MIP",
    "CTDIvol", "DLP", "mGy", "cGy", "Gy", "Scout", "Topogram", "SUP", "INF", "ANT", "POST",
    "LEFT", "RIGHT", "UPRIGHT", "SUPINE", "PRONE", "ERECT", "PORTABLE", "CHEST", "ABD", "PELVIS",
))
_DATE = re.compile(r"\b\d{1,4}[./\-]\d{1,2}[./\-]\d{2,4}\b|\b(19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])\b"
                   r"|\b\d{1,2}[ \-.]?(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*[ \-.]?\d{2,4}\b",
                   re.IGNORECASE)
_LONG_NUMBER = re.compile(r"\d{5,}")
_MIXED_ID = re.compile(r"\b(?=[A-Za-z0-9\-]*\d)(?=[A-Za-z0-9\-]*[A-Za-z])[A-Za-z0-9\-]{6,}\b")
_PHONE = re.compile(r"\(?\+?\d[\d ()\-]{7,}\d")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c)).casefold()


def _words(text: str) -> list[str]:
    return _WORD.findall(_fold(text))


def is_identifying(text: str, values: Iterable[str], allow: Iterable[str] = ()) -> bool:
    """Whether recognized ``text`` may identify the patient (see the module)."""
    allowed = TECHNICAL_TOKENS | {_fold(t) for t in allow}
    words = [w for w in _words(text) if w not in allowed]
    if not words:
        return False
    kept = " ".join(words)
    if _DATE.search(text) or _PHONE.search(text) or _LONG_NUMBER.search(kept) or _MIXED_ID.search(kept):
        return True
    sequence = f" {kept} "
    for value in values:
        parts = _words(value)
        if not parts or (len(parts) == 1 and len(parts[0]) < 3):
            continue
        if f" {' '.join(parts)} " in sequence:
            return True
        if any(len(part) >= 3 and f" {part} " in sequence for part in parts if not part.isdigit()):
            return True
    return False


def identifying_boxes(boxes: Sequence[TextBox], values: Iterable[str],
                      allow: Iterable[str] = ()) -> list[TextBox]:
    """The boxes to mask under ``mask: phi``: identifying text, and text that was not read."""
    values, allow = list(values), list(allow)
    return [box for box in boxes if not box.text.strip() or is_identifying(box.text, values, allow)]
