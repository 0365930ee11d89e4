"""Small builders for unit tests: synthetic datasets from pydicom's offline test files."""

from __future__ import annotations

import copy
import io
from functools import cache

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from anonlib.engine import Lookup, Outcome, deidentify
from anonlib.profile import Plan, SiteProfile, build_plan, parse_site_profile

SECRET = b"unit-test-secret-0123456789abcdef"
PSEUDONYM = "ANONTEST0001"
SHIFT = -400
LOOKUP = Lookup(SECRET, PSEUDONYM, SHIFT)

CT = "1.2.840.10008.5.1.4.1.1.2"
RTSTRUCT = "1.2.840.10008.5.1.4.1.1.481.3"
SEG = "1.2.840.10008.5.1.4.1.1.66.4"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"


@cache
def _read(name: str) -> Dataset:
    return pydicom.dcmread(get_testdata_file(name), force=True)


def sample(name: str = "CT_small.dcm") -> Dataset:
    """A private copy of one of pydicom's offline test files."""
    return copy.deepcopy(_read(name))


def minimal(sop_class: str = CT, **values: object) -> Dataset:
    """A tiny dataset of ``sop_class`` with the given keyword values."""
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.10.543.1234567.1.1"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.10.543.1234567.2"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.10.543.1234567.3"
    ds.PatientID = "1234567"
    ds.PatientName = "DOE^JOHN"
    ds.Modality = "CT"
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def plan_of(**profile: object) -> Plan:
    """A plan from inline site-profile values (empty: the defaults)."""
    return build_plan(parse_site_profile(dict(profile)) if profile else SiteProfile())


def run(ds: Dataset, plan: Plan | None = None, **kwargs: object) -> Outcome:
    return deidentify(ds, plan or plan_of(), LOOKUP, record_values=True, **kwargs)  # type: ignore[arg-type]


def encoded(ds: Dataset) -> bytes:
    """``ds`` as the bytes of a DICOM file (Explicit VR Little Endian, fresh file meta)."""
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
