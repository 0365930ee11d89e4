"""Dummy values per VR (action D) and the length limits that replacements must respect."""

from __future__ import annotations

from typing import Any

from pydicom.multival import MultiValue

__all__ = ["dummy_value", "empty_value", "MAX_LENGTH", "TEXT_VRS", "fit", "text_of", "strings_of"]

#: VRs whose values are free or short text that can carry identifying words.
TEXT_VRS = frozenset({"AE", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "UR"})

#: Maximum value lengths (PS3.5 Table 6.2-1) of the text VRs we may rewrite.
MAX_LENGTH = {"AE": 16, "CS": 16, "LO": 64, "SH": 16, "PN": 64, "ST": 1024, "LT": 10240, "AS": 4,
              "DA": 8, "DT": 26, "TM": 14}

_DUMMIES: dict[str, Any] = {
    "AE": "ANONYMOUS", "AS": "000Y", "CS": "ANONYMIZED", "DA": "19000101", "DT": "19000101000000",
    "TM": "000000", "DS": "0", "IS": "0", "LO": "ANONYMIZED", "LT": "ANONYMIZED",
    "PN": "ANONYMIZED", "SH": "ANONYMIZED", "ST": "ANONYMIZED", "UC": "ANONYMIZED",
    "UT": "ANONYMIZED", "UR": "urn:anonymized", "FL": 0.0, "FD": 0.0, "SL": 0, "SS": 0, "UL": 0,
    "US": 0, "SV": 0, "UV": 0, "OB": b"\x00\x00", "OW": b"\x00\x00", "OD": b"\x00" * 8,
    "OF": b"\x00" * 4, "OL": b"\x00" * 4, "OV": b"\x00" * 8, "UN": b"\x00\x00",
}


def dummy_value(vr: str) -> Any:
    """A non-empty value valid for ``vr`` that identifies no one (UIDs are handled elsewhere)."""
    return _DUMMIES.get(vr, "ANONYMIZED")


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


def text_of(ds: Any, keyword: str) -> str:
    """The value of ``keyword`` in ``ds`` as stripped text; "" when absent, empty or undecodable."""
    try:
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001 - an undecodable value counts as missing
        return ""
    return str(value).strip(" \x00") if value not in (None, "") else ""


def strings_of(value: object) -> list[str]:
    """An element value as a list of non-empty strings (one per value of a multi-valued one)."""
    if value is None:
        return []
    if isinstance(value, (list, MultiValue)):
        return [str(v) for v in value if v not in (None, "")]
    return [str(value)] if str(value) else []
