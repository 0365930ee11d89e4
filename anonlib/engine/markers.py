"""The attributes that say an instance was de-identified, and how (PS3.15 E.1.1, E.3)."""

from __future__ import annotations

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from anonlib.profile.options import BASIC_PROFILE_CODE, DateMode
from anonlib.profile.plan import Plan

__all__ = ["add_markers", "rebuild_file_meta", "IMPLEMENTATION_CLASS_UID", "CLEAN_PIXEL_CODE"]

#: anonlib's implementation class UID (a fixed UUID-derived 2.25 UID).
IMPLEMENTATION_CLASS_UID = "2.25.178232925316460384337838476203744563459"
IMPLEMENTATION_VERSION = "ANONLIB_0_1"
CLEAN_PIXEL_CODE = ("113101", "Clean Pixel Data Option")
_LONGITUDINAL = {DateMode.SHIFT: "MODIFIED", DateMode.KEEP: "UNMODIFIED", DateMode.REMOVE: "REMOVED"}


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()  # elements by tag: the keyword lookups cost more than the rest of it
    item.add_new(0x00080100, "SH", value)  # CodeValue
    item.add_new(0x00080102, "SH", "DCM")  # CodingSchemeDesignator
    item.add_new(0x00080104, "LO", meaning)  # CodeMeaning
    return item


def add_markers(ds: Dataset, plan: Plan, *, pixels_cleaned: bool, version: str) -> None:
    """PatientIdentityRemoved, DeidentificationMethod(+CodeSequence), and the longitudinal flag."""
    codes = [BASIC_PROFILE_CODE] + sorted((o.code, o.meaning) for o in plan.options)
    if pixels_cleaned:
        codes.append(CLEAN_PIXEL_CODE)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = [
        f"anonlib {version}"[:64],
        f"PS3.15 {plan.table_edition} Basic Profile"[:64],
        f"profile {plan.name} {plan.fingerprint}"[:64],
    ]
    ds.DeidentificationMethodCodeSequence = Sequence([_code(v, m) for v, m in codes])
    ds.LongitudinalTemporalInformationModified = _LONGITUDINAL[plan.date_mode]


def rebuild_file_meta(ds: Dataset) -> None:
    """New File Meta Information from the de-identified dataset, and a zeroed preamble
    (PS3.15 E.1.1: the file meta and preamble are replaced)."""
    old = getattr(ds, "file_meta", None)
    syntax = old.get("TransferSyntaxUID") if old is not None else None
    if syntax is None:  # a file without File Meta Information: keep the encoding it was read in
        implicit, little = getattr(ds, "original_encoding", (None, True))
        syntax = (ImplicitVRLittleEndian if implicit
                  else ExplicitVRLittleEndian if little is not False else ExplicitVRBigEndian)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = UID(str(syntax))
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128
