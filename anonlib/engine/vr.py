"""The VR an element will have once pydicom decodes it — without decoding it when possible."""

from __future__ import annotations

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

__all__ = ["element_vr", "raw_elements", "codec_of", "peek_strings"]


def raw_elements(ds: Dataset) -> dict[int, object]:
    """The data set's elements as stored, raw or decoded, keyed by tag — read without the tag
    conversion ``Dataset.get_item`` does on every call (the engine looks at each element several
    times). This is pydicom 3.0's storage (``Dataset._dict``); pyproject pins pydicom < 3.1."""
    return ds._dict  # type: ignore[return-value]


def element_vr(ds: Dataset, tag: int) -> str:
    """The element's VR. A raw explicit VR is trusted except ``UN``: for a public tag pydicom
    replaces UN by the dictionary VR when the value is decoded (a sequence written as UN is a
    sequence), so the engine must treat it as that VR too — or it would skip the UIDs inside."""
    raw = raw_elements(ds).get(tag)
    vr = getattr(raw, "VR", None)
    if vr and vr != "UN":
        return str(vr)
    if (tag >> 16) % 2:  # private: never decoded just to learn its VR
        return str(vr) if vr else ("SQ" if getattr(raw, "length", 0) == 0xFFFFFFFF else "UN")
    try:
        known = dictionary_VR(tag)
    except KeyError:
        known = None
    if known and " or " not in known:
        return str(known)
    return str(ds[tag].VR)  # ambiguous (US or SS, OB or OW...) or private: let pydicom decide


#: Character sets whose raw bytes can be decoded directly (single-byte or UTF-8, no escapes).
_CODECS = {"": "ascii", "ISO_IR 6": "ascii", "ISO 2022 IR 6": "ascii", "ISO_IR 100": "latin-1",
           "ISO_IR 192": "utf-8"}
_SINGLE_VALUED = frozenset({"LT", "ST", "UT", "UR"})


def codec_of(ds: Dataset) -> str | None:
    """The Python codec for the data set's SpecificCharacterSet, when it is a simple one."""
    raw = raw_elements(ds).get(0x00080005)
    if raw is None:
        return "ascii"
    value = getattr(raw, "value", None)
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    text = value if isinstance(value, str) else "\\".join(str(v) for v in value or [])
    return _CODECS.get(text.strip())


def peek_strings(ds: Dataset, tag: int, vr: str, codec: str | None) -> list[str] | None:
    """The values of a still-raw string element, decoded without converting the element (so an
    element that stays unchanged is written back byte for byte); None when it must be decoded
    by pydicom (already decoded, unusual character set, undecodable bytes)."""
    raw = raw_elements(ds).get(tag)
    if codec is None or not isinstance(raw, RawDataElement) or not isinstance(raw.value, bytes):
        return None
    try:
        text = raw.value.decode(codec)
    except UnicodeDecodeError:
        return None
    text = text.rstrip(" \x00")
    if not text:
        return []
    values = [text] if vr in _SINGLE_VALUED else text.split("\\")
    return [v.strip(" \x00") if vr not in _SINGLE_VALUED else v for v in values]
