"""Encoding changed elements without pydicom's per-element writer machinery.

pydicom's ``write_data_element`` writes each element through a fresh buffer, looks its
writer up, converts the character sets and (for sequence items) re-checks the item's
encoding on every call; for the thirty-odd elements the engine changes in a typical instance
and the new file meta that is a fifth of the per-file cost (issue 12). :func:`element_bytes`
produces the *same bytes* for the common cases — text, UIDs, names, dates as text, number
strings (DS, IS: each value's original string, so numpy is not loaded to rule out an array),
unsigned and signed integers, OB, and sequences of such items — calling pydicom's own value
encoders (``encode_string``, ``PersonName.encode``) for the text, and returns None for anything
else (ambiguous VRs, values over 64 KiB in a 16-bit length, items read in another encoding...):
the caller then uses pydicom's writer, as before. Tested element by element
against pydicom's writer (tests/unit/test_dicomio_encode.py).
"""

from __future__ import annotations

import struct
from collections.abc import MutableSequence
from decimal import Decimal

from pydicom.charset import convert_encodings, default_encoding, encode_string
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset, validate_file_meta
from pydicom.multival import MultiValue
from pydicom.valuerep import AMBIGUOUS_VR, EXPLICIT_VR_LENGTH_32, PersonName

__all__ = ["element_bytes", "dataset_bytes", "file_meta_bytes", "encodings_of"]

_TAG = struct.Struct("<HH")
_SHORT = struct.Struct("<HH2sH")
_LONG = struct.Struct("<HH2s2xL")
_IMPLICIT = struct.Struct("<HHL")
_ITEM = b"\xfe\xff\x00\xe0"
_ITEM_END = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
_SEQ_END = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_UNDEFINED = 0xFFFFFFFF
_LONG_VRS = frozenset(str(vr) for vr in EXPLICIT_VR_LENGTH_32)
_AMBIGUOUS = frozenset(str(vr) for vr in AMBIGUOUS_VR)
#: pydicom's ``write_string``: joined with backslashes, padded, encoded in the default encoding.
_STRING_VRS = frozenset({"AE", "AS", "CS", "UR", "UI"})
_DATE_VRS = frozenset({"DA", "DT", "TM"})
#: pydicom's ``write_text``: each value encoded in the data set's character sets.
_TEXT_VRS = frozenset({"LO", "LT", "SH", "ST", "UC", "UT"})
_NUMBER_FORMATS = {"US": "H", "UL": "L", "SS": "h", "SL": "l", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}
_MULTI = (MultiValue, list, tuple)
#: pydicom's ``write_number_string``: the original strings (or ``str``), joined, padded with a space.
_NUMBER_STRING_VRS = frozenset({"DS", "IS"})


class _Fallback(Exception):
    """This element (or something inside it) is left to pydicom's writer."""


def encodings_of(charset: object) -> list[str]:
    """The Python codecs pydicom's writer uses for a Specific Character Set value (as
    ``write_data_element`` computes them)."""
    return convert_encodings(charset or [default_encoding])  # type: ignore[arg-type]


def element_bytes(elem: DataElement | RawDataElement, encodings: list[str], implicit: bool) -> bytes | None:
    """The bytes pydicom's ``write_data_element`` writes for ``elem`` in little endian with
    ``implicit`` VR (``encodings``: :func:`encodings_of` the data set's character set), or
    None when this encoder does not handle the element (use pydicom's writer then)."""
    try:
        return _element(elem, encodings, implicit)
    except (_Fallback, struct.error, UnicodeError, TypeError, ValueError, AttributeError):
        return None


def dataset_bytes(ds: Dataset, encodings: list[str], implicit: bool) -> bytes | None:
    """The bytes of every element of ``ds`` as pydicom's ``write_dataset`` writes them into a
    stream of the same encoding as ``ds`` was read in (or a data set built in memory), or None."""
    try:
        return _dataset(ds, encodings, implicit)
    except (_Fallback, struct.error, UnicodeError, TypeError, ValueError, AttributeError):
        return None


def file_meta_bytes(meta: FileMetaDataset) -> bytes | None:
    """What ``write_file_meta_info(fp, meta, enforce_standard=True)`` writes (and the same
    changes to ``meta``: the version, implementation UID and name when missing, the group
    length), or None when it holds anything this encoder leaves to pydicom."""
    elements = meta._dict  # noqa: SLF001
    if any(isinstance(e, RawDataElement) for e in elements.values()):
        return None
    if elements.keys() == _REBUILT and all(not _empty(e.value) for e in elements.values()):
        # anonlib's own new meta (engine.markers.rebuild_file_meta): validate_file_meta would
        # only add the version (checked against pydicom's writer in the unit tests)
        meta.add_new(0x00020001, "OB", b"\x00\x01")
    else:
        validate_file_meta(meta, True)  # what enforce_standard adds and checks, as pydicom does first
    try:
        body = b"".join(_element(meta._dict[tag], [default_encoding], False)  # noqa: SLF001
                        for tag in sorted(meta._dict, key=int) if tag != 0x00020000)  # noqa: SLF001
    except (_Fallback, struct.error, UnicodeError, TypeError, ValueError, AttributeError):
        return None
    meta.add_new(0x00020000, "UL", len(body))  # as pydicom sets FileMetaInformationGroupLength
    return _SHORT.pack(0x0002, 0x0000, b"UL", 4) + struct.pack("<L", len(body)) + body


#: The elements of a meta built by rebuild_file_meta: media storage SOP class and instance,
#: transfer syntax, implementation class UID and version name.
_REBUILT = frozenset({0x00020002, 0x00020003, 0x00020010, 0x00020012, 0x00020013})


def _header(tag: int, vr: str, length: int, implicit: bool) -> bytes:
    if implicit:
        return _IMPLICIT.pack(tag >> 16, tag & 0xFFFF, length)
    if vr in _LONG_VRS:
        return _LONG.pack(tag >> 16, tag & 0xFFFF, vr.encode(), length)
    return _SHORT.pack(tag >> 16, tag & 0xFFFF, vr.encode(), length)


def _element(elem: DataElement | RawDataElement, encodings: list[str], implicit: bool) -> bytes:
    tag, vr = int(elem.tag), elem.VR or ""
    if isinstance(elem, RawDataElement):
        value = elem.value
        if value is None or elem.length == _UNDEFINED or (not implicit and (not vr or len(vr) != 2)):
            raise _Fallback
        if not implicit and vr not in _LONG_VRS and len(value) > 0xFFFF:
            raise _Fallback  # pydicom writes it as UN
        return _header(tag, vr, len(value), implicit) + value
    if vr == "SQ":
        body = b"".join(_item(item, encodings, implicit) for item in elem.value or ())
        if elem.is_undefined_length:
            return _header(tag, vr, _UNDEFINED, implicit) + body + _SEQ_END
        return _header(tag, vr, len(body), implicit) + body
    if elem.is_undefined_length:
        raise _Fallback
    value = _value(elem, vr, encodings)
    if not implicit and vr not in _LONG_VRS and len(value) > 0xFFFF:
        raise _Fallback
    return _header(tag, vr, len(value), implicit) + value


def _empty(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, str | bytes | PersonName):
        return not value
    if isinstance(value, _MULTI):
        return len(value) == 0
    if isinstance(value, int | float):
        return False
    raise _Fallback  # numpy arrays, buffers...


def _joined(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, _MULTI) and all(isinstance(v, str) for v in value):
        return "\\".join(value)
    raise _Fallback


def _value(elem: DataElement, vr: str, encodings: list[str]) -> bytes:
    value = elem.value
    if _empty(value):
        return b""
    if vr in _STRING_VRS or vr in _DATE_VRS:
        text = _joined(value)
        if len(text) % 2:
            text += "\0" if vr == "UI" else " "
        return text.encode(default_encoding)
    if vr in _TEXT_VRS:
        if isinstance(value, str):
            data = encode_string(value, encodings)
        elif isinstance(value, _MULTI) and isinstance(value[0], str) and all(isinstance(v, str) for v in value):
            data = b"\\".join(encode_string(v, encodings) for v in value)
        else:
            raise _Fallback
        return data + b" " if len(data) % 2 else data
    if vr == "PN":
        if isinstance(value, PersonName):
            names = [value]
        elif isinstance(value, _MULTI) and len(value) != 1 and all(isinstance(v, PersonName) for v in value):
            names = list(value)
        else:
            raise _Fallback
        data = b"\\".join(name.encode(encodings) for name in names)
        return data + b" " if len(data) % 2 else data
    if vr in _NUMBER_STRING_VRS:
        text = _number_string(value)
        return (text + " " if len(text) % 2 else text).encode(default_encoding)
    if vr in _NUMBER_FORMATS and elem.tag not in _LUT_DESCRIPTORS:
        fmt = _NUMBER_FORMATS[vr]
        if isinstance(value, int | float) and not isinstance(value, bool):
            return struct.pack("<" + fmt, value)
        if isinstance(value, MutableSequence):
            return struct.pack(f"<{len(value)}{fmt}", *value)
        raise _Fallback
    if vr == "OB" and isinstance(value, bytes):
        return value + b"\x00" if len(value) % 2 else value
    raise _Fallback


def _number_string(value: object) -> str:
    """pydicom's ``write_number_string``: each value's original string, or ``str`` of it."""
    if isinstance(value, _MULTI):
        return "\\".join(_one_number(v) for v in value)
    return _one_number(value)


def _one_number(value: object) -> str:
    if not isinstance(value, str | int | float | Decimal):
        raise _Fallback  # numpy arrays (pydicom joins their items), anything unusual
    if hasattr(value, "original_string"):
        original = value.original_string
        if not isinstance(original, str):
            raise _Fallback
        return original
    return str(value)


# pydicom writes the first value of these US-or-SS descriptors as US whatever the VR
_LUT_DESCRIPTORS = frozenset({0x00281101, 0x00281102, 0x00281103, 0x00283002})


def _item(item: Dataset, encodings: list[str], implicit: bool) -> bytes:
    if not isinstance(item, Dataset):
        raise _Fallback
    body = _dataset(item, encodings, implicit)
    if getattr(item, "is_undefined_length_sequence_item", False):
        return _ITEM + b"\xff\xff\xff\xff" + body + _ITEM_END
    return _ITEM + struct.pack("<L", len(body)) + body


def _dataset(ds: Dataset, parent: list[str], implicit: bool) -> bytes:
    elements = ds._dict  # noqa: SLF001 - pydicom 3.0's storage (see anonlib.engine.vr)
    if 0x00080005 in elements:
        raise _Fallback  # an item with its own character set: pydicom's writer
    same = (ds._read_implicit, ds._read_little) == (implicit, True)  # noqa: SLF001
    # read in another encoding: pydicom's writer converts and corrects the whole item, so
    # only new items (built in memory) are ours
    if (not same or ds.original_character_set != ds._character_set) and not _fresh(ds):  # noqa: SLF001
        raise _Fallback
    parts = []
    for tag in sorted(elements, key=int):
        if tag & 0xFFFF == 0 and tag >> 16 > 6:
            continue  # retired group lengths are never written (PS3.5 7.2)
        parts.append(_element(elements[tag], parent, implicit))
    return b"".join(parts)


def _fresh(ds: Dataset) -> bool:
    """A data set built in memory: no raw element and no ambiguous VR, at any depth."""
    for elem in ds._dict.values():  # noqa: SLF001
        if isinstance(elem, RawDataElement) or elem.VR in _AMBIGUOUS:
            return False
        if elem.VR == "SQ" and not all(isinstance(i, Dataset) and _fresh(i) for i in elem.value or ()):
            return False
    return True
