"""What an element's value *is*, without ever returning it: blank, a known dummy, free text.

The Safe Harbor scan judges values by shape only. Nothing here returns or formats a value; the
functions answer yes/no questions about it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from anonlib.dicomvalues import dummy_value

__all__ = ["present_values", "is_dummy", "all_dummies", "is_free_text", "as_text", "method_codes",
           "FREE_TEXT_VRS"]

#: VRs of unstructured text. Those listed in a category (e.g. PatientTelecomInformation, LT)
#: are judged by their category; the others are free text.
FREE_TEXT_VRS = frozenset({"LT", "ST", "UT"})
_TEXT_VRS = FREE_TEXT_VRS | {"LO", "SH", "UC"}
#: Keywords of narrative attributes: descriptions, comments, histories, reasons, SR text.
_NARRATIVE = re.compile(r"Description|Comment|History|Impression|Reason|Finding|TextValue|Note")

_STRING_VRS = ("AE", "CS", "DA", "DT", "TM", "AS", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "UR",
               "DS", "IS")
#: anonlib's dummies (engine/values.py) and the usual words other de-identifiers write.
_DUMMY_WORDS = frozenset(
    {str(dummy_value(vr)).upper() for vr in _STRING_VRS}
    | {"ANONYMIZED", "ANONYMISED", "ANONYMOUS", "ANON", "REMOVED", "DEIDENTIFIED",
       "DE-IDENTIFIED", "REDACTED", "NONE", "XXX", "XXXX"}
)
#: Placeholders the text scrubber writes in place of what it removed: [NAME], [ID], [DATE] ...
_PLACEHOLDER = re.compile(r"\[[A-Z_ ]{1,20}\]")
_SEPARATORS = re.compile(r"[\s\^=,;:.()/\\\-]+")
_ZERO_NUMBER = re.compile(r"^[+-]?0*\.?0*(?:[eE][+-]?\d+)?$")


def _blank(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, bytes | bytearray):
        return len(value) == 0
    if isinstance(value, str | PersonName):
        return not str(value).strip(" \x00^=")
    return False


def present_values(element: DataElement) -> list[object]:
    """The element's non-blank values (a multi-valued element gives several)."""
    value = element.value
    items: Iterable[object] = value if isinstance(value, MultiValue | list | tuple) else [value]
    return [item for item in items if not _blank(item)]


def as_text(value: object) -> str:
    """A value as text, for shape tests only (never for output)."""
    if isinstance(value, bytes | bytearray):
        return value.decode("latin-1")
    return str(value).strip(" \x00")


def is_dummy(value: object, vr: str) -> bool:
    """True for a value that identifies no one by construction: anonlib's dummy for the VR,
    a usual placeholder word, scrubber placeholders alone, a zero number, zero bytes."""
    if isinstance(value, bytes | bytearray):
        return not value.strip(b"\x00")
    if isinstance(value, int | float):
        return value == 0
    text = as_text(value)
    if vr in ("DS", "IS", "FL", "FD", "SL", "SS", "UL", "US", "SV", "UV"):
        return bool(_ZERO_NUMBER.match(text))
    if vr == "DA":
        return text == "19000101"
    if vr == "DT":
        return text.startswith("19000101") and not text[8:].strip("0.+-")
    if vr == "TM":
        return not text.strip("0.:")
    if vr == "AS":
        return text == "000Y"
    if vr == "UR":
        return text.lower() == str(dummy_value("UR")).lower()
    rest = _SEPARATORS.sub(" ", _PLACEHOLDER.sub(" ", text)).strip()
    return not rest or all(word.upper() in _DUMMY_WORDS for word in rest.split())


def all_dummies(values: list[object], vr: str) -> bool:
    return all(is_dummy(value, vr) for value in values)


def is_free_text(keyword: str, vr: str, in_category: bool) -> bool:
    """Narrative text: descriptions, comments, histories and SR text whatever the VR's length;
    LT/ST/UT outside every category. Structured text of a category (a telecom address in LT,
    a name in PN) is judged by the category instead."""
    if vr not in _TEXT_VRS:
        return False
    if _NARRATIVE.search(keyword):
        return True
    return vr in FREE_TEXT_VRS and not in_category


def method_codes(ds: Dataset) -> frozenset[str]:
    """The CID 7050 code values of the instance's DeidentificationMethodCodeSequence."""
    items = ds.get("DeidentificationMethodCodeSequence", None) or []
    return frozenset(str(item.get("CodeValue", "")).strip() for item in items)
