"""The identifying values of an original instance, by category — read at audit time only.

This is deliberately independent of the engine's own identifier collection: the audit is a
second opinion. Values come from every person name (PN) at any depth, every date (DA, and the
date part of DT) at any depth in its common written forms, the attributes the HIPAA Safe Harbor
table lists for addresses, telecom, IDs, accounts, institutions, and every non-registry UID.
The values are PHI: they live in memory for the comparison and are never written anywhere.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from functools import cache

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from anonlib.audit.elements import walk_elements
from anonlib.audit.safe_harbor.table import categories
from anonlib.dicomvalues import is_registry_uid, strings_of, text_of

__all__ = ["OriginalValues", "original_values", "date_forms", "patient_key_of"]

#: Extra attributes named by the audit issue (institutions, order and request numbers).
_EXTRA = {
    "institution": ["InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName"],
    "J accounts": ["AccessionNumber", "PlacerOrderNumberImagingServiceRequest",
                   "FillerOrderNumberImagingServiceRequest", "AdmissionID", "ServiceEpisodeID"],
    "R identifiers": ["StudyID", "RequestedProcedureID", "ScheduledProcedureStepID",
                      "PerformedProcedureStepID", "ClinicalTrialSubjectID"],
    "H record numbers": ["PatientID", "OtherPatientIDs", "IssuerOfPatientID", "MedicalRecordLocator"],
}
_SPLIT = re.compile(r"[\s^=,;\\/]+")


@dataclass
class OriginalValues:
    """category → set of identifying strings, plus the original's non-registry UIDs."""

    values: dict[str, set[str]] = field(default_factory=dict)
    uids: set[str] = field(default_factory=set)

    def add(self, category: str, value: str) -> None:
        """Keep ``value`` unless it is too short to be told from ordinary text: under 2
        characters, or a number of fewer than 6 digits (an ID such as 123 cannot be told apart
        from an instance number)."""
        value = value.strip(" \x00")
        digits = value.replace(".", "").replace("-", "")
        if len(value) < 2 or (digits.isdigit() and len(digits) < 6):
            return
        self.values.setdefault(category, set()).add(value)

    def merge(self, other: OriginalValues) -> None:
        for category, values in other.values.items():
            self.values.setdefault(category, set()).update(values)
        self.uids |= other.uids


@cache
def _category_tags() -> dict[int, str]:
    """tag → category for the Safe Harbor table's text-like categories and the extras."""
    wanted = {"B": "B address", "D": "D phone", "E": "E fax", "F": "F e-mail", "G": "G SSN",
              "H": "H record numbers", "I": "I health plan", "J": "J accounts", "N": "N URLs",
              "O": "O IP addresses"}
    tags: dict[int, str] = {}
    for letter, row in categories().items():  # in the table's order: the first category listing a tag wins
        category = wanted.get(letter)
        if category is None:
            continue
        for word in row.keywords:
            tag = tag_for_keyword(word)
            if tag is not None:
                tags.setdefault(int(tag), category)
    for category, words in _EXTRA.items():
        for word in words:
            tag = tag_for_keyword(word)
            if tag is not None:
                tags[int(tag)] = category
    return tags


def date_forms(day: dt.date) -> list[str]:
    """The common written forms of a date."""
    y, m, d = day.year, day.month, day.day
    return [f"{y:04d}{m:02d}{d:02d}", f"{y:04d}-{m:02d}-{d:02d}", f"{y:04d}/{m:02d}/{d:02d}",
            f"{y:04d}.{m:02d}.{d:02d}", f"{m:02d}/{d:02d}/{y:04d}", f"{d:02d}/{m:02d}/{y:04d}",
            f"{d:02d}.{m:02d}.{y:04d}", f"{d:02d}-{m:02d}-{y:04d}"]


def _as_date(text: str) -> dt.date | None:
    digits = text.strip().replace(".", "")[:8]
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None


def original_values(ds: Dataset) -> OriginalValues:
    """Every identifying value of one original instance (see the module docstring)."""
    found = OriginalValues()
    tags = _category_tags()
    for _, element in walk_elements(ds):
        if element.VR in ("SQ", "OB", "OW", "OD", "OF", "OL", "OV", "UN"):
            continue
        try:
            values = strings_of(element.value)
        except Exception:  # noqa: BLE001 - an undecodable value is skipped
            continue
        if element.VR == "PN":
            for value in values:
                for group in value.split("="):
                    components = group.split("^")[:3]  # family, given, middle: not titles
                    found.add("A names", "^".join(components).strip("^"))
                    for component in components:
                        for part in _SPLIT.split(component):
                            found.add("A names", part)
        elif element.VR in ("DA", "DT"):
            for value in values:
                day = _as_date(value)
                if day is not None:
                    for form in date_forms(day):
                        found.add("C dates", form)
        elif element.VR == "UI":
            found.uids.update(v.strip(" \x00") for v in values
                              if v.strip(" \x00") and not is_registry_uid(v.strip(" \x00")))
        category = tags.get(int(element.tag))
        if category is not None and element.VR != "UI":
            for value in values:
                if category in ("D phone", "E fax") and "@" in value:
                    found.add("F e-mail", value)  # telecom attributes hold e-mail addresses too
                    continue
                found.add(category, value)
                if category in ("B address", "institution"):
                    for part in re.split(r"[\^,;\r\n]+", value):
                        if len(part.strip()) >= 4:
                            found.add(category, part)
    return found


def patient_key_of(ds: Dataset) -> tuple[str, str]:
    """(PatientID, IssuerOfPatientID) of an original, as the consistency check groups by."""
    return text_of(ds, "PatientID"), text_of(ds, "IssuerOfPatientID")
