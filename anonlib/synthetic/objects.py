"""Plain building blocks of the corpus: study and series descriptions, the pydicom test files
used as templates, and writing a dataset as a DICOM file."""

from __future__ import annotations

import copy
import datetime as dt
import functools
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from anonlib.synthetic.phi import UID_ROOT, Recorder, Site

__all__ = ["Study", "Series", "template", "pin_dates", "write"]


@dataclass
class Study:
    """One planted study; ``series_date`` is the text written in SeriesDate and
    AcquisitionDate (an invalid date for one patient)."""

    uid: str
    date: dt.date
    time: str
    accession: str
    study_id: str
    request_id: str
    step_id: str
    description: str
    series_date: str
    report_date: dt.date
    study_time_text: str = ""
    series_count: int = 0

    def next_series_number(self) -> int:
        self.series_count += 1
        return self.series_count


@dataclass
class Series:
    uid: str
    number: int
    modality: str
    description: str
    frame_of_reference: str = ""


@functools.cache
def _template(name: str) -> Dataset:
    path = get_testdata_file(name)
    if not isinstance(path, str):
        raise FileNotFoundError(f"pydicom test file {name} is not available offline")
    return dcmread(path)


def template(name: str) -> Dataset:
    """A fresh copy of one of pydicom's offline test files."""
    return copy.deepcopy(_template(name))


_PINNED_DATES = {
    "InstanceCreationDate": "InstanceCreationTime",
    "PresentationCreationDate": "PresentationCreationTime",
    "DateOfSecondaryCapture": "TimeOfSecondaryCapture",
    "ContentDate": "ContentTime",
}
_PINNED_DATETIMES = ("VerificationDateTime", "ContributionDateTime")


def pin_dates(ds: Dataset, day: str, time: str) -> None:
    """Replace the wall-clock dates highdicom writes (anywhere in ``ds``) by fixed ones."""
    for keyword, time_keyword in _PINNED_DATES.items():
        if keyword in ds:
            setattr(ds, keyword, day)
            setattr(ds, time_keyword, time)
    for keyword in _PINNED_DATETIMES:
        if keyword in ds:
            setattr(ds, keyword, day + time)
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                pin_dates(item, day, time)


def write(ds: Dataset, path: Path, site: Site, recorder: Recorder) -> None:
    """Write ``ds`` as a DICOM file (preamble, file meta, Explicit VR Little Endian)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(f"{UID_ROOT}.0.1")
    meta.ImplementationVersionName = "ACME_PACS_7"
    meta.SourceApplicationEntityTitle = site.ae_title
    recorder.add("device", site.ae_title)
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    if 0xFFFCFFFC in ds:
        del ds[0xFFFCFFFC]
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
