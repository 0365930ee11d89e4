"""The 18 HIPAA Safe Harbor categories and the DICOM attributes that carry each.

Read once from the bundled ``hipaa_safe_harbor.csv`` (checksum-verified); both keyword columns
(``dicom_keywords_typical`` and ``dicom_keywords_in_table_e1_1``) count. Keywords are resolved
with pydicom's dictionary (repeating groups such as OverlayData included); the few that pydicom
3.0.2 does not know are kept aside (:func:`unresolved_keywords`) and caught by VR instead where
their VR implies a category (PN, DA/DT/TM/AS, UI, UR).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache

from pydicom.datadict import repeater_has_keyword, tag_for_keyword

from anonlib.data import read_verified
from anonlib.errors import StandardDataError

__all__ = ["Category", "categories", "keyword_letters", "letters_for", "label", "plain_name", "unresolved_keywords",
           "LABELS", "VR_LETTERS"]

TABLE = "hipaa_safe_harbor.csv"
_KEYWORD_COLUMNS = ("dicom_keywords_typical", "dicom_keywords_in_table_e1_1")

#: Short labels for tables and charts (the CSV's ``category`` column holds the full wording).
LABELS: Mapping[str, str] = {
    "A": "names", "B": "geography", "C": "dates", "D": "phone", "E": "fax", "F": "e-mail",
    "G": "SSN", "H": "MRN", "I": "health plan", "J": "account", "K": "licence", "L": "vehicle",
    "M": "device", "N": "URL", "O": "IP", "P": "biometric", "Q": "face", "R": "other IDs",
}

#: Categories implied by a VR whatever the attribute (PS3.15 E.1.1 Note 4 treats dates by VR;
#: every person name, UID and URL is checked the same way).
VR_LETTERS: Mapping[str, str] = {"PN": "A", "DA": "C", "DT": "C", "TM": "C", "AS": "C", "UI": "R",
                                 "UR": "N"}


@dataclass(frozen=True)
class Category:
    """One row of the table: ``letter`` A–R, the CFR paragraph and the category's wording."""

    letter: str
    cfr: str
    name: str
    keywords: frozenset[str]


def _known(keyword: str) -> bool:
    return tag_for_keyword(keyword) is not None or repeater_has_keyword(keyword)


@cache
def categories() -> dict[str, Category]:
    """The 18 categories by letter."""
    text = read_verified(TABLE).decode("utf-8")
    found: dict[str, Category] = {}
    for row in csv.DictReader(io.StringIO(text)):
        words = {word.strip() for column in _KEYWORD_COLUMNS for word in row[column].split(";")}
        words = {word for word in words if word and not word.startswith("(")}
        found[row["letter"]] = Category(row["letter"], row["cfr"], row["category"], frozenset(words))
    if sorted(found) != sorted(LABELS):
        raise StandardDataError(f"{TABLE}: expected the letters A-R, found {''.join(sorted(found))}")
    return found


@cache
def keyword_letters() -> dict[str, frozenset[str]]:
    """Every keyword pydicom knows, with the letters of the categories that list it."""
    letters: dict[str, set[str]] = {}
    for category in categories().values():
        for word in category.keywords:
            if _known(word):
                letters.setdefault(word, set()).add(category.letter)
    return {word: frozenset(found) for word, found in letters.items()}


@cache
def unresolved_keywords() -> frozenset[str]:
    """Keywords of the table that pydicom's dictionary does not know (newer than pydicom 3.0.2)."""
    return frozenset(word for category in categories().values() for word in category.keywords
                     if not _known(word))


def letters_for(keyword: str, vr: str) -> frozenset[str]:
    """The categories an element belongs to, by its keyword and by its VR."""
    letters = keyword_letters().get(keyword, frozenset())
    implied = VR_LETTERS.get(vr)
    return letters | {implied} if implied else letters


def label(letters: Iterable[str], *, uid: bool = False) -> str:
    """``"G/H SSN, MRN"``; R reads ``UIDs`` for UI elements (``"R UIDs"``)."""
    ordered = sorted(set(letters))
    words = ["UIDs" if uid and letter == "R" else LABELS[letter] for letter in ordered]
    return f"{'/'.join(ordered)} {', '.join(words)}"


def plain_name(letter: str) -> str:
    """The category's name in plain words, from the table's wording up to its first parenthesis
    or semicolon, without the rule's "All elements of": ``"Names"``, ``"Dates"``, ``"Device
    identifiers and serial numbers"``."""
    name = re.split(r"\s*[(;]", categories()[letter].name, maxsplit=1)[0].strip()
    name = re.sub(r"^all elements of\s+", "", name, flags=re.IGNORECASE)
    return name[:1].upper() + name[1:]
