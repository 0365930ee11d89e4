"""DICOM value helpers shared by the engine and the audit — and nothing else.

The audit is the independent witness of what the engine does, so it must not import the
engine. The few facts about DICOM *values* both need live here, apart from either: the text of
a value, date and age parsing, tag-path formatting, the dummy value of each VR, and the one
policy that decides which UIDs are never remapped (standard and registry UIDs, coding-scheme
UIDs, and the UIDs of attributes that name a class, syntax, coding scheme or template — read
from ``anonlib/data/registry_uids.yaml``). The engine keeps exactly those UIDs; the audit never
searches for them. Both are tested together (tests/unit/test_dicomvalues.py).
"""

from __future__ import annotations

import datetime as _dt
import re
from functools import cache
from typing import Any

from pydicom._uid_dict import UID_dictionary
from pydicom.datadict import tag_for_keyword
from pydicom.multival import MultiValue

from anonlib.data import load_yaml, read_verified

__all__ = [
    "text_of", "strings_of", "format_path", "parse_da", "age_in_years", "years_between",
    "AGE_CAP", "dummy_value", "is_registry_uid", "structural_uid_tags", "is_kept_uid",
    "is_standard_code", "date_forms",
]

AGE_CAP = "090Y"
_DA = re.compile(r"^(\d{4})\.?(\d{2})\.?(\d{2})$")
_AS = re.compile(r"^(\d{3})([DWMY])$")
_DICOM_ROOT = "1.2.840.10008."

_DUMMIES: dict[str, Any] = {
    "AE": "ANONYMOUS", "AS": "000Y", "CS": "ANONYMIZED", "DA": "19000101", "DT": "19000101000000",
    "TM": "000000", "DS": "0", "IS": "0", "LO": "ANONYMIZED", "LT": "ANONYMIZED",
    "PN": "ANONYMIZED", "SH": "ANONYMIZED", "ST": "ANONYMIZED", "UC": "ANONYMIZED",
    "UT": "ANONYMIZED", "UR": "urn:anonymized", "FL": 0.0, "FD": 0.0, "SL": 0, "SS": 0, "UL": 0,
    "US": 0, "SV": 0, "UV": 0, "OB": b"\x00\x00", "OW": b"\x00\x00", "OD": b"\x00" * 8,
    "OF": b"\x00" * 4, "OL": b"\x00" * 4, "OV": b"\x00" * 8, "UN": b"\x00\x00",
}


# -- values ------------------------------------------------------------------------------------

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


def dummy_value(vr: str) -> Any:
    """A non-empty value valid for ``vr`` that identifies no one (UIDs are handled elsewhere)."""
    return _DUMMIES.get(vr, "ANONYMIZED")


def format_path(trail: tuple[tuple[int, int], ...], tag: int) -> str:
    """A PHI-free path such as ``(0040,A730)[2]>(0040,A160)``."""
    parts = [f"({t >> 16:04X},{t & 0xFFFF:04X})[{i}]" for t, i in trail]
    parts.append(f"({tag >> 16:04X},{tag & 0xFFFF:04X})")
    return ">".join(parts)


# -- dates and ages ----------------------------------------------------------------------------

def parse_da(value: str) -> _dt.date | None:
    """A date from ``YYYYMMDD`` (or the ACR-NEMA ``YYYY.MM.DD``); None when invalid."""
    match = _DA.match(value.strip())
    if not match:
        return None
    try:
        return _dt.date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        return None


def date_forms(day: _dt.date) -> list[str]:
    """The common written forms of a date: DICOM, ISO, with slashes or dots, US and European
    orders, with and without leading zeros. The engine scrubs every one of them from text and
    the audit searches for every one."""
    y, m, d = day.year, day.month, day.day
    return [f"{y:04d}{m:02d}{d:02d}", f"{y:04d}-{m:02d}-{d:02d}", f"{y:04d}/{m:02d}/{d:02d}",
            f"{y:04d}.{m:02d}.{d:02d}", f"{m:02d}/{d:02d}/{y:04d}", f"{d:02d}/{m:02d}/{y:04d}",
            f"{d:02d}.{m:02d}.{y:04d}", f"{d:02d}-{m:02d}-{y:04d}", f"{m}/{d}/{y:04d}",
            f"{d}.{m}.{y:04d}"]


def age_in_years(value: str) -> float | None:
    """The age an AS value states, in years; None when it is not a valid AS."""
    match = _AS.match(value.strip())
    if not match:
        return None
    number, unit = int(match.group(1)), match.group(2)
    return {"D": number / 365.25, "W": number * 7 / 365.25, "M": number / 12, "Y": float(number)}[unit]


def years_between(born: _dt.date, seen: _dt.date) -> int:
    """Whole years from ``born`` to ``seen`` (the age on ``seen`` of someone born on ``born``)."""
    return seen.year - born.year - ((seen.month, seen.day) < (born.month, born.day))


# -- coded values -----------------------------------------------------------------------------

_CODING_SCHEME_DESIGNATOR = 0x00080102


def is_standard_code(item: Any) -> bool:
    """Whether the code item ``item`` (a dataset holding CodeValue, CodingSchemeDesignator and
    CodeMeaning) is from a standard or registered scheme: any designator but a private one
    (``99…``) or a local one (``L``, ``LOCAL``). The CodeMeaning of such a code is the scheme's
    own text and is never scrubbed or searched; a private or local code's meaning is written by
    a site and may name anyone, so the engine scrubs known values from it and the audit
    searches it."""
    try:
        element = item.get(_CODING_SCHEME_DESIGNATOR)
        scheme = str(element.value or "").strip() if element is not None else ""
    except Exception:  # noqa: BLE001 - an undecodable designator is not a standard one
        return False
    return bool(scheme) and not scheme.startswith("99") and scheme.upper() not in ("L", "LOCAL")


# -- the kept-UID policy -----------------------------------------------------------------------

@cache
def _registry() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(read_verified("registry_uids.yaml")) or {}
    return data


@cache
def _registry_values() -> tuple[frozenset[str], tuple[str, ...]]:
    data = _registry()
    uids = set(UID_dictionary)
    uids.update(str(uid) for uid in (data.get("coding_scheme_uids") or {}).values())
    prefixes = tuple({_DICOM_ROOT, *(str(p) for p in data.get("prefixes") or [])})
    return frozenset(uids), prefixes


@cache
def structural_uid_tags() -> frozenset[int]:
    """Tags whose UI values name a class, syntax, coding scheme or template, not an instance."""
    words = _registry()["keywords"]
    tags = (tag_for_keyword(str(word)) for word in words)
    return frozenset(int(tag) for tag in tags if tag is not None)


def is_registry_uid(uid: str) -> bool:
    """True for UIDs defined by a standard or registry (never remapped)."""
    values, prefixes = _registry_values()
    return uid in values or uid.startswith(prefixes)


def is_kept_uid(tag: int, uid: str) -> bool:
    """The one policy: is the UID ``uid``, found in the element ``tag``, kept as it is?

    True for standard and registry UIDs wherever they are, and for every value of an attribute
    that names a class, transfer syntax, coding scheme, context group, template, mapping
    resource or private dictionary (its value is a definition, not an instance: for example the
    DCMTK coding-scheme UID in an SR's Coding Scheme Identification Sequence)."""
    return int(tag) in structural_uid_tags() or is_registry_uid(uid.strip(" \x00"))
