"""Which UIDs an instance *is*, and which UIDs it *points at*.

A de-identifier that replaces UIDs must replace each reference exactly as it replaces the
identity it points at, or an RT Structure Set stops outlining its CT. These pure functions
list both sides so the two can be compared before and after de-identification.

Paths name tags only, never values: ``(3006,0010)[0]>(3006,0012)[0]>(3006,0014)[0]>(0020,000E)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

from anonlib.audit.elements import Trail, elements
from anonlib.dicomvalues import format_path

__all__ = ["Reference", "identities", "references", "KINDS"]

KINDS = ("sop", "series", "study", "frame_of_reference", "patient", "other")
"""Reference kinds. ``patient`` is a Referenced Patient Sequence item (a patient record, not an
instance); ``other`` any further UID inside a sequence that names a thing, not a class."""

_IDENTITIES = {
    "sop": 0x00080018,  # SOPInstanceUID
    "series": 0x0020000E,  # SeriesInstanceUID
    "study": 0x0020000D,  # StudyInstanceUID
    "frame_of_reference": 0x00200052,  # FrameOfReferenceUID
}
_ANY_DEPTH = {
    0x00081155: "sop",  # ReferencedSOPInstanceUID
    0x00041511: "sop",  # ReferencedSOPInstanceUIDInFile
    0x30060024: "frame_of_reference",  # ReferencedFrameOfReferenceUID
    0x300600C2: "frame_of_reference",  # RelatedFrameOfReferenceUID
    0x00640003: "frame_of_reference",  # SourceFrameOfReferenceUID (registration)
}
_IN_SEQUENCE = {
    0x00080018: "sop",  # SOPInstanceUID, as in Source Image Sequence of some writers
    0x0020000E: "series",
    0x0020000D: "study",
    0x00200052: "frame_of_reference",
}
_STUDY_MANAGEMENT = {"1.2.840.10008.3.1.2.3.1", "1.2.840.10008.3.1.2.3.2"}
_PATIENT_MANAGEMENT = {"1.2.840.10008.3.1.2.1.1"}
# UIDs that name a kind of thing (class, transfer syntax, coding scheme, mapping resource,
# private dictionary) rather than a thing: never references.
_NOT_REFERENCES = {
    0x00020010,  # TransferSyntaxUID
    0x00041512,  # ReferencedTransferSyntaxUIDInFile
    0x00080117,  # ContextUID
    0x00080118,  # MappingResourceUID
    0x0008010C,  # CodingSchemeUID
    0x0008010D,  # ContextGroupExtensionCreatorUID
    0x00020100,  # PrivateInformationCreatorUID
    0x04000010,  # MACCalculationTransferSyntaxUID
    0x04000510,  # EncryptedContentTransferSyntaxUID
}
_WELL_KNOWN = "1.2.840.10008."
_WALKED = frozenset({"SQ", "UI", "UN"})  # only these are decoded: references are UIDs


@dataclass(frozen=True)
class Reference:
    """One UID an instance points at: where (tag path), what kind, which UID."""

    path: str
    kind: str
    uid: str


def _is_class_uid(tag: BaseTag) -> bool:
    if tag in _NOT_REFERENCES:
        return True
    keyword = keyword_for_tag(tag) if not tag.is_private else ""
    return keyword.endswith("ClassUID") or keyword.endswith("ClassUIDInFile")


def _values(elem: DataElement) -> list[str]:
    value = elem.value
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple, MultiValue)):
        return [str(v).strip("\0 ") for v in value if str(v).strip("\0 ")]
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    return [v.strip("\0 ") for v in text.split("\\") if v.strip("\0 ")]


def identities(ds: Dataset) -> dict[str, str]:
    """The instance's own UIDs, by kind: sop, series, study, frame_of_reference (those present)."""
    found = {}
    for kind, tag in _IDENTITIES.items():
        elem = ds.get(tag)
        values = _values(elem) if elem is not None else []
        if values:
            found[kind] = values[0]
    return found


def _walk(ds: Dataset, trail: Trail) -> Iterator[Reference]:
    sibling_class = ds.get(0x00081150)  # ReferencedSOPClassUID beside a ReferencedSOPInstanceUID
    sibling = str(sibling_class.value) if sibling_class is not None else ""
    for elem in elements(ds, _WALKED):
        if elem.VR == "SQ":
            for index, item in enumerate(elem.value or []):
                yield from _walk(item, trail + ((int(elem.tag), index),))
            continue
        if elem.VR != "UI":
            continue
        tag = elem.tag
        if tag in _ANY_DEPTH:
            kind = _ANY_DEPTH[tag]
            if tag == 0x00081155 and sibling in _STUDY_MANAGEMENT:
                kind = "study"
            elif tag == 0x00081155 and sibling in _PATIENT_MANAGEMENT:
                kind = "patient"
        elif not trail:
            continue
        elif tag in _IN_SEQUENCE:
            kind = _IN_SEQUENCE[tag]
        elif _is_class_uid(tag):
            continue
        else:
            kind = "other"
        for uid in _values(elem):
            if kind == "other" and uid.startswith(_WELL_KNOWN):
                continue
            yield Reference(format_path(trail, int(tag)), kind, uid)


def references(ds: Dataset) -> list[Reference]:
    """Every UID reference in ``ds``, at any depth, in dataset order.

    - ReferencedSOPInstanceUID: ``sop``; ``study`` when its ReferencedSOPClassUID is a study
      management class (RT Referenced Study Sequence), ``patient`` for the patient one;
    - SeriesInstanceUID / StudyInstanceUID / SOPInstanceUID inside a sequence: ``series`` /
      ``study`` / ``sop``;
    - ReferencedFrameOfReferenceUID, RelatedFrameOfReferenceUID, SourceFrameOfReferenceUID, and
      FrameOfReferenceUID inside a sequence: ``frame_of_reference``;
    - any other UI element inside a sequence (private ones included, when their VR is known)
      that is not a class, transfer syntax or coding-scheme UID, nor a DICOM-defined UID:
      ``other``.

    Top-level identities (the instance's own UIDs) are not references; see :func:`identities`.
    File meta information is not looked at.
    """
    return list(_walk(ds, ()))
