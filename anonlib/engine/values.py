"""Dummy values per VR (action D) and the length limits that replacements must respect."""

from __future__ import annotations

from typing import Any

from anonlib.dicomvalues import dummy_value, strings_of, text_of

__all__ = ["dummy_value", "empty_value", "MAX_LENGTH", "TEXT_VRS", "fit", "text_of", "strings_of"]

#: VRs whose values are free or short text that can carry identifying words.
TEXT_VRS = frozenset({"AE", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "UR"})

#: Maximum value lengths (PS3.5 Table 6.2-1) of the text VRs we may rewrite.
MAX_LENGTH = {"AE": 16, "CS": 16, "LO": 64, "SH": 16, "PN": 64, "ST": 1024, "LT": 10240, "AS": 4,
              "DA": 8, "DT": 26, "TM": 14}

def empty_value(vr: str) -> Any:
    """The zero-length value of ``vr`` (an empty list for sequences)."""
    if vr == "SQ":
        return []
    if vr in ("OB", "OW", "OD", "OF", "OL", "OV", "UN"):
        return b""
    if vr in ("FL", "FD", "SL", "SS", "UL", "US", "SV", "UV", "IS", "DS", "AT"):
        return None
    return ""


def fit(text: str, vr: str) -> str:
    """``text`` cut to the maximum length of ``vr``."""
    limit = MAX_LENGTH.get(vr)
    return text[:limit] if limit and len(text) > limit else text
