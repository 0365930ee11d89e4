"""The identifying values of an original instance, by category — read at audit time only.

This is deliberately independent of the engine's own identifier collection: the audit is a
second opinion. Values come from every person name (PN) at any depth — the whole name and each
part, split on ``^ =``, spaces, hyphens, apostrophes and commas, and on control characters as
well as with them dropped —, every date (DA, and the date part of DT) at any depth in its
common written forms, the attributes the HIPAA Safe Harbor table lists for addresses, telecom,
IDs, accounts, institutions, and every UID the shared policy does not keep
(:func:`anonlib.dicomvalues.is_kept_uid`, the engine's own rule), when it is a valid UID of 10
characters or more with 3 components or more. Values too short to be told from ordinary text
are left out (:func:`anonlib.audit.matching.is_searchable_value`), and so is 1900-01-01, the
engine's dummy date. The values are PHI: they live in memory for the comparison and are never
written anywhere.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from functools import cache

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from anonlib.audit.elements import walk_elements
from anonlib.audit.matching import DATE_CATEGORY, NAME_CATEGORY, is_searchable_uid, is_searchable_value
from anonlib.audit.safe_harbor.table import categories
from anonlib.dicomvalues import date_forms, is_kept_uid, strings_of, text_of

__all__ = ["OriginalValues", "original_values", "name_parts", "patient_key_of"]

#: Extra attributes named by the audit issue (institutions, order and request numbers).
_EXTRA = {
    "institution": ["InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName"],
    "J accounts": ["AccessionNumber", "PlacerOrderNumberImagingServiceRequest",
                   "FillerOrderNumberImagingServiceRequest", "AdmissionID", "ServiceEpisodeID"],
    "R identifiers": ["StudyID", "RequestedProcedureID", "ScheduledProcedureStepID",
                      "PerformedProcedureStepID", "ClinicalTrialSubjectID"],
    "H record numbers": ["PatientID", "OtherPatientIDs", "IssuerOfPatientID", "MedicalRecordLocator"],
}
_PARTS = re.compile(r"[\s^=,;\\/'\u2019`\-\x00-\x1f\x7f-\x9f]+")
_CONTROLS = re.compile(r"[\x01-\x08\x0e-\x1f\x7f-\x9f]")
_DUMMY_DATE = dt.date(1900, 1, 1)
#: The VRs values are read from (numbers, codes and binary data are never decoded: faster).
_READ = frozenset({"AE", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "UC", "UI", "UR", "UT", "UN"})


@dataclass
class OriginalValues:
    """category → set of identifying strings, the original's UIDs to search for, and the UIDs
    the shared policy keeps (never searched, even where another original holds them elsewhere)."""

    values: dict[str, set[str]] = field(default_factory=dict)
    uids: set[str] = field(default_factory=set)
    kept: set[str] = field(default_factory=set)

    def add(self, category: str, value: str) -> None:
        """Keep ``value`` unless it cannot be told from ordinary text (see
        :func:`~anonlib.audit.matching.is_searchable_value`)."""
        value = value.strip(" \x00")
        if is_searchable_value(value):
            self.values.setdefault(category, set()).add(value)

    def merge(self, other: OriginalValues) -> None:
        """Add ``other``'s values to these."""
        for category, values in other.values.items():
            self.values.setdefault(category, set()).update(values)
        self.uids |= other.uids
        self.kept |= other.kept

    def shared(self, pool: dict[frozenset[str], set[str]]) -> OriginalValues:
        """These values with each set replaced by an equal one already in ``pool`` (added when
        new): the instances of a study hold the same names, dates and IDs, kept once. The sets
        are never changed after the original is read."""
        def one(found: set[str]) -> set[str]:
            return pool.setdefault(frozenset(found), found)

        return OriginalValues({category: one(found) for category, found in self.values.items()},
                              self.uids, one(self.kept))

    def searched_uids(self) -> set[str]:
        """The UIDs to search for: never one that the policy keeps anywhere."""
        return self.uids - self.kept


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



def name_parts(value: str) -> set[str]:
    """The whole name (each ``=`` group, family to middle name: not prefixes and suffixes) and
    each of its parts, split on ``^``, spaces, hyphens, apostrophes and commas; a control
    character is taken both as a separator and as nothing."""
    found: set[str] = set()
    for text in {value, _CONTROLS.sub("", value)}:
        for group in text.split("="):
            components = group.split("^")[:3]
            found.add("^".join(components).strip("^ "))
            for component in components:
                found.update(part for part in _PARTS.split(component) if part)
    return found


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
    for _, element in walk_elements(ds, vrs=_READ):
        if element.VR not in _READ or element.VR == "UN":
            continue
        try:
            values = strings_of(element.value)
        except Exception:  # noqa: BLE001 - an undecodable value is skipped
            continue
        if element.VR == "PN":
            for value in values:
                for part in name_parts(value):
                    found.add(NAME_CATEGORY, part)
        elif element.VR in ("DA", "DT"):
            for value in values:
                day = _as_date(value)
                if day is not None and day != _DUMMY_DATE:
                    for form in date_forms(day):
                        found.add(DATE_CATEGORY, form)
        elif element.VR == "UI":
            for value in values:
                uid = value.strip(" \x00")
                if is_kept_uid(int(element.tag), uid):
                    found.kept.add(uid)
                elif is_searchable_uid(uid):
                    found.uids.add(uid)
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
    """(PatientID, IssuerOfPatientID) of an original, as the consistency check groups by. As the
    engine does, an instance without a PatientID is its study's own patient (``~study:<uid>``,
    or lacking that ``~series:`` / ``~instance:``): such instances are never pooled."""
    issuer = text_of(ds, "IssuerOfPatientID")
    patient_id = text_of(ds, "PatientID")
    if patient_id:
        return patient_id, issuer
    for prefix, keyword in (("study", "StudyInstanceUID"), ("series", "SeriesInstanceUID"),
                            ("instance", "SOPInstanceUID")):
        uid = text_of(ds, keyword)
        if uid:
            return f"~{prefix}:{uid}", issuer
    return "", issuer
